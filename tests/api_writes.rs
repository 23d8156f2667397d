//! The API's writes on the local system, over real DynamoDB wire calls (moto): a change touches
//! only what it names, numbers keep every digit up to the stack, and one Idempotency-Key acts once
//! however many requests race with it.

use std::time::Duration;

use anyhow::Result;
use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::tenant_cloudformation;
use local::emulator::free_port;
use local::system::{LocalConfig, RunningSystem};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(60);

/// The local system, and an admin's way to its API.
struct Api {
    system: RunningSystem,
    base: String,
    http: reqwest::Client,
    admin: String,
}

async fn start() -> Result<Api> {
    let system = RunningSystem::start(LocalConfig {
        aws_port: free_port()?,
        api_port: 0,
        ..LocalConfig::default()
    })
    .await?;
    let admin = system
        .tokens
        .mint("ops@example.com", None, 1)
        .map_err(anyhow::Error::msg)?;
    Ok(Api {
        base: format!("http://{}", system.api_addr),
        http: reqwest::Client::new(),
        admin,
        system,
    })
}

async fn stored_spec(
    system: &RunningSystem,
    tenant: &str,
) -> Result<std::collections::HashMap<String, AttributeValue>> {
    Ok(system
        .dynamo()
        .get_item()
        .table_name(&system.config.table)
        .key("pk", AttributeValue::S(format!("TENANT#{tenant}")))
        .key("sk", AttributeValue::S("SPEC".into()))
        .consistent_read(true)
        .send()
        .await?
        .item
        .unwrap_or_default())
}

/// Six requests with one key and six bodies, all at once: one acts, and each of the others is
/// told to retry (409, Retry-After) or that the key belongs to another request (422). The key's
/// own request, sent again, gets the first answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_racing_creates_with_one_idempotency_key_create_one_tenant() -> Result<()> {
    let Api {
        system,
        base,
        http,
        admin,
    } = start().await?;
    let body = |n: usize| json!({"tenant_id": format!("race-{n}"), "account_id": "111111111111"});
    let requests = (0..6).map(|n| {
        let http = http.clone();
        let (base, admin) = (base.clone(), admin.clone());
        async move {
            let response = http
                .post(format!("{base}/tenants"))
                .bearer_auth(&admin)
                .header("idempotency-key", "one-key")
                .json(&body(n))
                .send()
                .await?;
            let status = response.status().as_u16();
            let retry_after = response.headers().get("retry-after").cloned();
            let reply: Value = response.json().await?;
            anyhow::Ok((n, status, retry_after, reply))
        }
    });
    let answers = futures::future::try_join_all(requests).await?;
    let accepted: Vec<usize> = answers
        .iter()
        .filter(|(_, status, _, _)| *status == 202)
        .map(|(n, ..)| *n)
        .collect();
    assert_eq!(accepted.len(), 1, "{answers:?}");
    for (_, status, retry_after, reply) in &answers {
        match status {
            202 => {}
            409 => {
                assert_eq!(
                    reply["type"], "/problems/idempotency-key-in-flight",
                    "{reply}"
                );
                assert!(retry_after.is_some(), "409 without Retry-After: {reply}");
            }
            422 => assert_eq!(reply["type"], "/problems/idempotency-key-reused", "{reply}"),
            other => panic!("unexpected {other}: {reply}"),
        }
    }
    let mut created = Vec::new();
    for n in 0..6 {
        if !stored_spec(&system, &format!("race-{n}")).await?.is_empty() {
            created.push(n);
        }
    }
    assert_eq!(created, accepted, "{answers:?}");

    let replay = http
        .post(format!("{base}/tenants"))
        .bearer_auth(&admin)
        .header("idempotency-key", "one-key")
        .json(&body(accepted[0]))
        .send()
        .await?;
    assert_eq!(replay.status(), 202);
    let other = http
        .post(format!("{base}/tenants"))
        .bearer_auth(&admin)
        .header("idempotency-key", "one-key")
        .json(&body(9))
        .send()
        .await?;
    assert_eq!(other.status(), 422);
    Ok(())
}

/// A writer's own attributes survive the API's PATCH and retry; a 29-digit number stays 29
/// digits in the row, in GET and in the stack's parameters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_keeps_a_writers_attributes_and_every_digit() -> Result<()> {
    let Api {
        system,
        base,
        http,
        admin,
    } = start().await?;
    let digits = "12345678901234567890123456789";
    let mut item = std::collections::HashMap::new();
    for (name, value) in [
        ("pk", "TENANT#acme"),
        ("sk", "SPEC"),
        ("tenant_id", "acme"),
        ("account_id", "222222222222"),
        ("owner_team", "games"),
    ] {
        item.insert(name.to_owned(), AttributeValue::S(value.into()));
    }
    item.insert("cost_center".into(), AttributeValue::N("4711.50".into()));
    item.insert(
        "config".into(),
        AttributeValue::M(
            [("seed".to_owned(), AttributeValue::N(digits.into()))]
                .into_iter()
                .collect(),
        ),
    );
    system
        .writer_dynamo()
        .await
        .put_item()
        .table_name(&system.config.table)
        .set_item(Some(item))
        .send()
        .await?;

    let read = http
        .get(format!("{base}/tenants/acme"))
        .bearer_auth(&admin)
        .send()
        .await?;
    let etag = read.headers()["etag"].to_str()?.to_owned();
    let text = read.text().await?;
    assert!(text.contains(&format!("\"seed\":{digits}")), "{text}");

    let patched = http
        .patch(format!("{base}/tenants/acme"))
        .bearer_auth(&admin)
        .header("if-match", etag)
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"config": {"difficulty": "hard"}}"#)
        .send()
        .await?;
    assert_eq!(patched.status(), 202, "{}", patched.text().await?);
    let retried = http
        .post(format!("{base}/tenants/acme/retry"))
        .bearer_auth(&admin)
        .send()
        .await?;
    assert_eq!(retried.status(), 202, "{}", retried.text().await?);

    let stored = stored_spec(&system, "acme").await?;
    assert_eq!(
        stored.get("owner_team"),
        Some(&AttributeValue::S("games".into()))
    );
    assert_eq!(
        stored.get("cost_center"),
        Some(&AttributeValue::N("4711.50".into()))
    );
    let config = stored
        .get("config")
        .and_then(|c| c.as_m().ok())
        .cloned()
        .unwrap_or_default();
    assert_eq!(config.get("seed"), Some(&AttributeValue::N(digits.into())));
    assert_eq!(
        config.get("difficulty"),
        Some(&AttributeValue::S("hard".into()))
    );

    system
        .wait_for(LIMIT, |s| {
            s.get("acme").is_some_and(|r| r["status"] == "ready")
        })
        .await?;
    let cfn = tenant_cloudformation(&system.identities, "222222222222").await?;
    let stack = cfn
        .describe_stacks()
        .stack_name("tenant-acme")
        .send()
        .await?;
    let seed = stack
        .stacks()
        .first()
        .and_then(|s| {
            s.parameters()
                .iter()
                .find(|p| p.parameter_key() == Some("Seed"))
        })
        .and_then(|p| p.parameter_value())
        .map(str::to_owned);
    assert_eq!(seed.as_deref(), Some(digits));
    Ok(())
}

/// A writer who forges a STATUS row in the SPEC table (fake outputs, a permanent failure, a
/// location in another account) changes nothing: the control plane reads STATUS from its own
/// table, which writers cannot reach, and the API shows only that. The delete that follows
/// still reaches the real stack.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_a_writer_forges_in_the_spec_table_is_never_read() -> Result<()> {
    let Api {
        system,
        base,
        http,
        admin,
    } = start().await?;
    let writer = system.writer_dynamo().await;
    let spec = model::item_json::item_of_json(&json!({
        "pk": "TENANT#acme", "sk": "SPEC", "tenant_id": "acme", "account_id": "222222222222",
    }));
    writer
        .put_item()
        .table_name(&system.config.table)
        .set_item(Some(spec.into()))
        .send()
        .await?;
    system
        .wait_for(LIMIT, |s| {
            s.get("acme").is_some_and(|r| r["status"] == "ready")
        })
        .await?;

    let forged = model::item_json::item_of_json(&json!({
        "pk": "TENANT#acme", "sk": "STATUS", "tenant_id": "acme", "status": "failed",
        "retryable": false, "reason": "forged", "version": 999, "updated_at": "2026-12-02T00:00:00Z",
        "outputs": {"JobsQueueUrl": "https://evil.example/steal"},
        "location": {"account_id": "333333333333", "region": "eu-west-1", "stack_name": "decoy"},
    }));
    writer
        .put_item()
        .table_name(&system.config.table)
        .set_item(Some(forged.into()))
        .send()
        .await?;
    let read = http
        .get(format!("{base}/tenants/acme"))
        .bearer_auth(&admin)
        .send()
        .await?;
    let text = read.text().await?;
    assert!(!text.contains("evil.example"), "{text}");
    assert!(!text.contains("forged"), "{text}");
    let shown: Value = serde_json::from_str(&text)?;
    assert_eq!(shown["status"], "ready", "{text}");

    writer
        .delete_item()
        .table_name(&system.config.table)
        .key("pk", AttributeValue::S("TENANT#acme".into()))
        .key("sk", AttributeValue::S("SPEC".into()))
        .send()
        .await?;
    system
        .wait_for(LIMIT, |s| {
            s.get("acme").is_some_and(|r| r["status"] == "deleted")
        })
        .await?;
    let cfn = tenant_cloudformation(&system.identities, "222222222222").await?;
    let live = cfn.describe_stacks().send().await?;
    assert!(
        !live
            .stacks()
            .iter()
            .any(|s| s.stack_name() == Some("tenant-acme")
                && s.stack_status()
                    .is_some_and(|st| st.as_str() != "DELETE_COMPLETE")),
        "the real stack was deleted: {live:?}"
    );
    Ok(())
}
