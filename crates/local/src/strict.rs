//! The HTTP client of the local system's SDK clients: it makes moto answer as AWS does, and
//! holds every function to the calls it declares.
//!
//! - moto answers a denied call of a JSON-protocol service (DynamoDB, SQS, SSM) with an HTTP 403
//!   XML `ErrorResponse`, which the SDK cannot read: it sees no error code, where real AWS sends
//!   `AccessDeniedException`. The denial is rewritten into the JSON error AWS sends, so the
//!   control plane classifies it as it would on AWS; so is an access key moto does not know
//!   (after a reset: `UnrecognizedClientException`).
//! - A function's call whose IAM action is missing from its declared calls
//!   (`controlplane::wiring::FUNCTION_CALLS`) is refused before it is sent, with the code
//!   `UndeclaredOperation`, and recorded: the local system and the emulator tests fail on it, so
//!   the lists (and through the permission check, the roles) cannot drift from the code.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use http_body_util::BodyExt;

/// Calls refused for not being declared, as `function: action`.
#[derive(Clone, Debug, Default)]
pub struct Violations(Arc<Mutex<Vec<String>>>);

impl Violations {
    pub fn record(&self, violation: String) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(violation);
    }

    pub fn list(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The violations so far, forgotten (a test that made one on purpose).
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Fails (panics) if any function made a call it does not declare: what the local system
    /// and the emulator tests do when they end. Not while already panicking.
    pub fn fail_if_any(&self) {
        let undeclared = self.list();
        if !undeclared.is_empty() && !std::thread::panicking() {
            panic!(
                "functions made AWS calls they do not declare \
                 (controlplane::wiring::FUNCTION_CALLS): {undeclared:?}"
            );
        }
    }
}

/// Who makes the calls, and which actions they may make (`None`: any; an event source acting
/// for a function).
#[derive(Clone, Debug)]
pub struct Guard {
    pub function: String,
    pub allowed: Option<BTreeSet<String>>,
    pub violations: Violations,
    /// Every call sent, counted by function and action.
    pub counts: CallCounts,
}

/// The calls the functions sent (a transaction counts once, as its own call), by function
/// logical id and the request's action (`dynamodb:TransactWriteItems`, ...): what the
/// calls-per-tenant test holds to its table.
#[derive(Clone, Debug, Default)]
pub struct CallCounts(Arc<Mutex<BTreeMap<(String, String), u64>>>);

impl CallCounts {
    fn record(&self, function: &str, action: String) {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *counts.entry((function.to_owned(), action)).or_default() += 1;
    }

    /// Every count so far.
    pub fn snapshot(&self) -> BTreeMap<(String, String), u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The strict client around `inner` (moto speaks plain HTTP on loopback).
pub fn strict_client(inner: SharedHttpClient, guard: Option<Guard>) -> SharedHttpClient {
    SharedHttpClient::new(StrictClient {
        inner,
        guard: guard.map(Arc::new),
    })
}

#[derive(Debug, Clone)]
struct StrictClient {
    inner: SharedHttpClient,
    guard: Option<Arc<Guard>>,
}

impl HttpClient for StrictClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(StrictConnector {
            inner: self.inner.http_connector(settings, components),
            guard: self.guard.clone(),
        })
    }
}

#[derive(Debug)]
struct StrictConnector {
    inner: SharedHttpConnector,
    guard: Option<Arc<Guard>>,
}

/// The IAM action of a request: the signing service of its credential scope and the operation
/// (`X-Amz-Target` of JSON protocols, `Action=` of query protocols). DynamoDB Streams signs as
/// `dynamodb`, which is its actions' prefix too.
pub fn iam_action(request: &HttpRequest) -> Option<String> {
    let authorization = request.headers().get("authorization")?;
    let scope = authorization
        .split("Credential=")
        .nth(1)?
        .split([',', ' '])
        .next()?;
    let service = scope.split('/').nth(3)?;
    // S3's REST calls are named by their method (the control plane reads and writes objects
    // only; HeadObject is granted by s3:GetObject).
    if service == "s3" {
        let action = match request.method() {
            "GET" | "HEAD" => "GetObject",
            "PUT" => "PutObject",
            "DELETE" => "DeleteObject",
            other => return Some(format!("s3:{other}")),
        };
        return Some(format!("s3:{action}"));
    }
    let operation = match request.headers().get("x-amz-target") {
        Some(target) => target.rsplit('.').next()?.to_owned(),
        None => {
            let body = std::str::from_utf8(request.body().bytes()?).ok()?;
            body.split('&')
                .find_map(|pair| pair.strip_prefix("Action="))?
                .to_owned()
        }
    };
    Some(format!("{service}:{operation}"))
}

/// The actions of a TransactWriteItems request's items, as AWS checks them (an unreadable
/// body: the transaction's own name, which no function declares).
fn transaction_actions(request: &HttpRequest) -> Vec<String> {
    let items = request
        .body()
        .bytes()
        .and_then(|body| serde_json::from_slice::<serde_json::Value>(body).ok())
        .and_then(|body| body.get("TransactItems").cloned())
        .and_then(|items| items.as_array().cloned());
    let Some(items) = items else {
        return vec!["dynamodb:TransactWriteItems".into()];
    };
    items
        .iter()
        .flat_map(|item| item.as_object().into_iter().flat_map(|o| o.keys()))
        .map(|kind| match kind.as_str() {
            "Put" => "dynamodb:PutItem".to_owned(),
            "Update" => "dynamodb:UpdateItem".to_owned(),
            "Delete" => "dynamodb:DeleteItem".to_owned(),
            "ConditionCheck" => "dynamodb:ConditionCheckItem".to_owned(),
            other => format!("dynamodb:TransactWriteItems({other})"),
        })
        .collect()
}

/// The IAM actions AWS checks for a request: its own, each item's of a transaction (IAM has no
/// TransactWriteItems action), and s3:GetObject for a CloudFormation call passing a TemplateURL
/// (CloudFormation reads it with the caller's credentials; moto reads it unchecked).
pub fn needed_actions(request: &HttpRequest) -> Vec<String> {
    let action = iam_action(request).unwrap_or_else(|| "<unsigned request>".into());
    let mut needed = match action.as_str() {
        "dynamodb:TransactWriteItems" => transaction_actions(request),
        _ => vec![action.clone()],
    };
    if action.starts_with("cloudformation:") {
        if passes(request, "TemplateURL") {
            needed.push("s3:GetObject".into());
        }
        // A service role is passed: IAM checks iam:PassRole on it (moto does not).
        if passes(request, "RoleARN") {
            needed.push("iam:PassRole".into());
        }
    }
    needed
}

/// Whether a CloudFormation (query protocol) request passes `field`.
fn passes(request: &HttpRequest, field: &str) -> bool {
    let prefix = format!("{field}=");
    request
        .body()
        .bytes()
        .and_then(|body| std::str::from_utf8(body).ok())
        .is_some_and(|body| body.split('&').any(|pair| pair.starts_with(&prefix)))
}

fn is_json_protocol(request: &HttpRequest) -> bool {
    request.headers().get("x-amz-target").is_some()
}

/// An error response in the request's protocol.
fn error_response(json: bool, status: u16, code: &str, message: &str) -> HttpResponse {
    let (content_type, body) = if json {
        (
            "application/x-amz-json-1.0",
            serde_json::json!({"__type": code, "message": message}).to_string(),
        )
    } else {
        let escaped = message
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        (
            "text/xml",
            format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>\
                 <Message>{escaped}</Message></Error><RequestId>local</RequestId></ErrorResponse>"
            ),
        )
    };
    let status = StatusCode::try_from(status).unwrap_or_else(|_| {
        StatusCode::try_from(400).unwrap_or_else(|_| unreachable!("400 is a status code"))
    });
    let mut response = HttpResponse::new(status, SdkBody::from(body));
    response.headers_mut().insert("content-type", content_type);
    response
        .headers_mut()
        .insert("x-amzn-errortype", code.to_owned());
    response
}

/// The status and code AWS answers with where moto sends a 403 XML page with `code`: a denial,
/// or an access key it does not know (the identities were reset); `None`: left as it is.
fn aws_error(json: bool, code: &str) -> Option<(u16, &'static str)> {
    match (code, json) {
        ("AccessDenied", true) => Some((400, "AccessDeniedException")),
        ("AccessDenied", false) => Some((403, "AccessDenied")),
        ("InvalidClientTokenId", true) => Some((400, "UnrecognizedClientException")),
        ("InvalidClientTokenId", false) => Some((403, "InvalidClientTokenId")),
        _ => None,
    }
}

/// The `<Code>` and `<Message>` of moto's XML error page, if it is one.
fn xml_error(body: &str) -> Option<(String, String)> {
    let between = |open: &str, close: &str| -> Option<String> {
        let start = body.find(open)? + open.len();
        let end = body[start..].find(close)? + start;
        Some(body[start..end].to_owned())
    };
    Some((
        between("<Code>", "</Code>")?,
        between("<Message>", "</Message>").unwrap_or_default(),
    ))
}

impl HttpConnector for StrictConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let json = is_json_protocol(&request);
        if let Some(guard) = &self.guard
            && let Some(allowed) = &guard.allowed
            && let Some(action) = needed_actions(&request)
                .into_iter()
                .find(|a| !allowed.contains(a))
        {
            let message = format!(
                "{} calls {action}, which its declared calls \
                 (controlplane::wiring::FUNCTION_CALLS) lack",
                guard.function
            );
            guard
                .violations
                .record(format!("{}: {action}", guard.function));
            tracing::error!(function = %guard.function, %action, "undeclared AWS call refused");
            return HttpConnectorFuture::ready(Ok(error_response(
                json,
                400,
                "UndeclaredOperation",
                &message,
            )));
        }
        if let Some(guard) = &self.guard {
            guard.counts.record(
                &guard.function,
                iam_action(&request).unwrap_or_else(|| "<unsigned request>".into()),
            );
        }
        let inner = self.inner.clone();
        HttpConnectorFuture::new(async move {
            let mut response = inner.call(request).await?;
            if response.status().as_u16() != 403 {
                return Ok(response);
            }
            // moto's denial: the error AWS sends instead (a JSON `AccessDeniedException`; for
            // query protocols AWS's `<ErrorResponse><Error>` shape, which moto's extra
            // `<Errors>` level keeps the SDK from reading).
            let body = response.take_body();
            let bytes = body
                .collect()
                .await
                .map(|collected| collected.to_bytes())
                .unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            let rewritten = xml_error(&text).and_then(|(code, message)| {
                let (status, code) = aws_error(json, &code)?;
                Some(error_response(json, status, code, &message))
            });
            Ok(rewritten.unwrap_or_else(|| {
                *response.body_mut() = SdkBody::from(bytes);
                response
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)], body: &str) -> HttpRequest {
        let mut request = HttpRequest::new(SdkBody::from(body.to_owned()));
        for (name, value) in headers {
            request
                .headers_mut()
                .insert(name.to_string(), value.to_string());
        }
        request
    }

    const SIGNED_DYNAMODB: &str = "AWS4-HMAC-SHA256 Credential=AKIA/20261202/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=x";

    #[test]
    fn the_action_comes_from_the_signing_service_and_the_operation() {
        let json = request(
            &[
                ("authorization", SIGNED_DYNAMODB),
                ("x-amz-target", "DynamoDBStreams_20120810.GetRecords"),
            ],
            "{}",
        );
        assert_eq!(iam_action(&json).as_deref(), Some("dynamodb:GetRecords"));
        let query = request(
            &[(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIA/20261202/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=x",
            )],
            "Action=AssumeRole&Version=2011-06-15&RoleArn=x",
        );
        assert_eq!(iam_action(&query).as_deref(), Some("sts:AssumeRole"));
        assert_eq!(iam_action(&request(&[], "Action=X")), None);
    }

    #[test]
    fn a_call_passing_a_template_url_needs_s3_get_object_and_s3_calls_are_named_by_method() {
        const SIGNED_CLOUDFORMATION: &str = "AWS4-HMAC-SHA256 Credential=AKIA/20261202/eu-west-1/cloudformation/aws4_request, SignedHeaders=host, Signature=x";
        let by_url = request(
            &[("authorization", SIGNED_CLOUDFORMATION)],
            "Action=CreateStack&StackName=tenant-x&TemplateURL=https%3A%2F%2Fb.s3.eu-west-1.amazonaws.com%2Ftemplates%2Fa.json&RoleARN=arn%3Aaws%3Aiam%3A%3A111111111111%3Arole%2FTenantControlDeployRole",
        );
        assert_eq!(
            needed_actions(&by_url),
            ["cloudformation:CreateStack", "s3:GetObject", "iam:PassRole"]
        );
        let inline = request(
            &[("authorization", SIGNED_CLOUDFORMATION)],
            "Action=CreateStack&StackName=tenant-x&TemplateBody=Resources%3A%20%7B%7D",
        );
        assert_eq!(needed_actions(&inline), ["cloudformation:CreateStack"]);
        const SIGNED_S3: &str = "AWS4-HMAC-SHA256 Credential=AKIA/20261202/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=x";
        for (method, action) in [
            ("GET", "s3:GetObject"),
            ("HEAD", "s3:GetObject"),
            ("PUT", "s3:PutObject"),
        ] {
            let mut object = request(&[("authorization", SIGNED_S3)], "");
            object.set_method(method).expect("a method");
            assert_eq!(needed_actions(&object), [action], "{method}");
        }
    }

    #[test]
    fn a_transaction_needs_each_of_its_items_actions() {
        let transaction = request(
            &[
                ("authorization", SIGNED_DYNAMODB),
                ("x-amz-target", "DynamoDB_20120810.TransactWriteItems"),
            ],
            r#"{"TransactItems": [{"Put": {}}, {"ConditionCheck": {}}, {"Delete": {}}]}"#,
        );
        assert_eq!(
            iam_action(&transaction).as_deref(),
            Some("dynamodb:TransactWriteItems")
        );
        assert_eq!(
            transaction_actions(&transaction),
            [
                "dynamodb:PutItem",
                "dynamodb:ConditionCheckItem",
                "dynamodb:DeleteItem"
            ]
        );
    }

    #[test]
    fn moto_error_pages_are_read() {
        let page = r#"<?xml version="1.0"?><ErrorResponse><Errors><Error><Code>AccessDenied</Code><Message>User: x is not authorized to perform: dynamodb:GetItem</Message></Error></Errors></ErrorResponse>"#;
        assert_eq!(
            xml_error(page),
            Some((
                "AccessDenied".into(),
                "User: x is not authorized to perform: dynamodb:GetItem".into()
            ))
        );
        assert_eq!(xml_error("<html>500</html>"), None);
    }

    #[test]
    fn an_unknown_access_key_is_answered_as_aws_answers_it() {
        // DynamoDB, SQS, SSM (JSON protocols): 400 UnrecognizedClientException.
        assert_eq!(
            aws_error(true, "InvalidClientTokenId"),
            Some((400, "UnrecognizedClientException"))
        );
        assert_eq!(
            aws_error(false, "InvalidClientTokenId"),
            Some((403, "InvalidClientTokenId"))
        );
        assert_eq!(
            aws_error(true, "AccessDenied"),
            Some((400, "AccessDeniedException"))
        );
        assert_eq!(aws_error(true, "Throttling"), None);
    }
}
