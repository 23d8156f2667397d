//! The writes change only what they name: a PATCH, a retry and `tenantctl tenants update` keep
//! every other attribute of the stored SPEC (a writer's own `owner_team` too), and numbers keep
//! their exact decimal text, up to DynamoDB's 38 digits, in the row, in GET and in what the stack
//! is given.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, header};
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_dynamo::{AttributeValue, Item};
use serde_json::Value;
use tower::ServiceExt;

use api::auth::LocalTokens;
use api::{ApiState, router, with_local_tokens};
use controlplane::reconcile::Reconciler;
use controlplane::testing::{FakeStacks, FakeTemplateValidator, InMemoryStore, World};
use model::spec::TenantKey;

/// Cases per property: 256, or `PROPTEST_CASES` (e.g. a long soak).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

struct Fixture {
    app: axum::Router,
    store: Arc<InMemoryStore>,
    stacks: Arc<FakeStacks>,
    reconciler: Reconciler,
    token: String,
    runtime: tokio::runtime::Runtime,
}

fn fixture() -> Fixture {
    let store = Arc::new(InMemoryStore::default());
    let stacks = Arc::new(FakeStacks::default());
    let tokens = LocalTokens::new("lossless");
    let token = tokens.mint("ops@example.com", None, 1).unwrap();
    let state = ApiState::on_table(
        store.clone(),
        Arc::new(FakeTemplateValidator::default()),
        Arc::new(controlplane::testing::FakeTemplateObjects::default()),
        "us-east-1",
    )
    .unwrap();
    let reconciler = World::builder()
        .store(store.clone())
        .stacks(stacks.clone())
        .templates(state.templates.clone())
        .build()
        .reconciler;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    Fixture {
        app: with_local_tokens(router(state), tokens),
        store,
        stacks,
        reconciler,
        token,
        runtime,
    }
}

impl Fixture {
    /// Sends `body` as raw text (so a number's digits reach the API as written) and answers the
    /// status, the ETag and the raw response text.
    fn send(
        &self,
        method: &str,
        uri: &str,
        body: &str,
        etag: Option<&str>,
    ) -> (u16, String, String) {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token));
        if !body.is_empty() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(etag) = etag {
            request = request.header(header::IF_MATCH, etag);
        }
        let request = request.body(Body::from(body.to_owned())).unwrap();
        self.runtime.block_on(async {
            let response = self.app.clone().oneshot(request).await.unwrap();
            let status = response.status().as_u16();
            let etag = response
                .headers()
                .get(header::ETAG)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            (status, etag, String::from_utf8_lossy(&bytes).into_owned())
        })
    }

    fn etag(&self) -> String {
        self.send("GET", "/tenants/acme", "", None).1
    }
}

fn acme() -> TenantKey {
    TenantKey::new("acme")
}

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_owned())
}

fn n(text: &str) -> AttributeValue {
    AttributeValue::N(text.to_owned())
}

/// A stored SPEC as a direct writer may have put it: the known fields and `extra`.
fn stored_spec(
    config: HashMap<String, AttributeValue>,
    extra: HashMap<String, AttributeValue>,
) -> Item {
    let mut item: HashMap<String, AttributeValue> = extra;
    item.insert("pk".into(), s("TENANT#acme"));
    item.insert("sk".into(), s("SPEC"));
    item.insert("tenant_id".into(), s("acme"));
    item.insert("account_id".into(), s("111111111111"));
    item.insert("config".into(), AttributeValue::M(config));
    Item::from(item)
}

/// Any number DynamoDB stores: up to 38 significant digits, in any of the forms it accepts
/// (sign, leading zeros, a bare point, an exponent), well inside its range.
fn any_dynamo_number() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["", "-", "+"]),
        "0{0,2}[1-9][0-9]{0,24}",
        prop::option::of("[0-9]{0,12}"),
        prop::option::of(-60i32..60),
    )
        .prop_map(|(sign, whole, fraction, exponent)| {
            let mut text = format!("{sign}{whole}");
            if let Some(fraction) = fraction {
                text.push('.');
                text.push_str(&fraction);
            }
            if let Some(exponent) = exponent {
                text.push_str(&format!("E{exponent}"));
            }
            text
        })
}

/// Any number as JSON writes it: up to 37 significant digits. (serde_json keeps a number's text,
/// but writes an unsigned exponent with its `+`: `1e5` is stored as `1e+5`, the same number.)
fn any_json_number() -> impl Strategy<Value = String> {
    "-?(0|[1-9][0-9]{0,24})(\\.[0-9]{1,12})?(e[+-][1-9][0-9]?)?"
}

fn any_value() -> impl Strategy<Value = AttributeValue> {
    let leaf = prop_oneof![
        "[ -~]{0,16}".prop_map(AttributeValue::S),
        any_dynamo_number().prop_map(AttributeValue::N),
        any::<bool>().prop_map(AttributeValue::Bool),
        Just(AttributeValue::Null(true)),
        prop::collection::vec(any::<u8>(), 1..8).prop_map(AttributeValue::B),
        prop::collection::btree_set("[a-z]{1,6}", 1..4)
            .prop_map(|set| AttributeValue::Ss(set.into_iter().collect())),
        prop::collection::btree_set(1u64..10_000, 1..4)
            .prop_map(|set| AttributeValue::Ns(set.into_iter().map(|n| n.to_string()).collect())),
    ];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(AttributeValue::L),
            prop::collection::hash_map("[a-z_]{1,8}", inner, 0..4).prop_map(AttributeValue::M),
        ]
    })
}

/// Attributes no SPEC field is named like (a writer's own bookkeeping).
fn any_extra() -> impl Strategy<Value = HashMap<String, AttributeValue>> {
    prop::collection::hash_map("(owner_team|cost_center|x_[a-z]{1,8})", any_value(), 0..5)
}

/// The stored SPEC with `config.seed` set to `seed`, and `updated_by` the caller: what a PATCH of
/// that one key must leave.
fn with_seed(mut item: Item, seed: AttributeValue) -> Item {
    if let Some(AttributeValue::M(config)) = item.get_mut("config") {
        config.insert("seed".into(), seed);
    }
    item.insert("updated_by".into(), s("ops@example.com"));
    item
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn a_patch_of_one_config_key_changes_exactly_that_key(
        difficulty in prop::sample::select(vec!["peaceful", "easy", "normal", "hard"]),
        stored_seed in prop_oneof![any_dynamo_number().prop_map(AttributeValue::N), "[a-z0-9]{0,12}".prop_map(AttributeValue::S)],
        extra in any_extra(),
        new_seed in prop_oneof![
            any_json_number().prop_map(|n| (n.clone(), AttributeValue::N(n))),
            "[a-z0-9]{0,12}".prop_map(|t| (Value::String(t.clone()).to_string(), AttributeValue::S(t))),
        ],
    ) {
        let api = fixture();
        let before = stored_spec(
            HashMap::from([
                ("difficulty".to_owned(), s(difficulty)),
                ("seed".to_owned(), stored_seed),
            ]),
            extra,
        );
        api.store.put_spec(&acme(), before.clone());
        let (json_text, stored_as) = new_seed;
        let (status, _, body) = api.send(
            "PATCH",
            "/tenants/acme",
            &format!(r#"{{"config": {{"seed": {json_text}}}}}"#),
            Some(&api.etag()),
        );
        prop_assert_eq!(status, 202, "{}", body);
        let after = api.store.spec(&acme()).expect("still stored");
        prop_assert_eq!(after, with_seed(before, stored_as));
    }

    #[test]
    fn a_retry_changes_only_the_counter(extra in any_extra(), seed in any_json_number()) {
        let api = fixture();
        let before = stored_spec(HashMap::from([("seed".to_owned(), n(&seed))]), extra);
        api.store.put_spec(&acme(), before.clone());
        let (status, _, body) = api.send("POST", "/tenants/acme/retry", "", None);
        prop_assert_eq!(status, 202, "{}", body);
        let mut expected = before;
        expected.insert("retry".into(), n("1"));
        expected.insert("updated_by".into(), s("ops@example.com"));
        prop_assert_eq!(api.store.spec(&acme()).expect("still stored"), expected);
    }
}

/// The probe's case: a 29-digit number stays 29 digits in the row, in GET, and in the stack's
/// parameters; a writer's own attributes survive the PATCH.
#[test]
fn a_29_digit_number_reaches_the_stack_exactly_and_a_writers_attributes_survive() {
    let api = fixture();
    let (status, _, body) = api.send(
        "POST",
        "/tenants",
        r#"{"tenant_id": "acme", "account_id": "111111111111",
            "config": {"seed": 12345678901234567890123456789}}"#,
        None,
    );
    assert_eq!(status, 202, "{body}");
    assert!(
        body.contains(r#""seed":12345678901234567890123456789"#),
        "{body}"
    );
    let mut stored = api.store.spec(&acme()).unwrap();
    stored.insert("owner_team".into(), s("games"));
    stored.insert("cost_center".into(), n("4711.50"));
    api.store.put_spec(&acme(), stored);

    let (status, _, body) = api.send(
        "PATCH",
        "/tenants/acme",
        r#"{"config": {"difficulty": "hard"}}"#,
        Some(&api.etag()),
    );
    assert_eq!(status, 202, "{body}");
    let stored = api.store.spec(&acme()).unwrap();
    assert_eq!(stored.get("owner_team"), Some(&s("games")));
    assert_eq!(stored.get("cost_center"), Some(&n("4711.50")));
    let Some(AttributeValue::M(config)) = stored.get("config") else {
        panic!("config is a map: {stored:?}")
    };
    assert_eq!(
        config.get("seed"),
        Some(&n("12345678901234567890123456789"))
    );

    let (_, _, body) = api.send("GET", "/tenants/acme", "", None);
    assert!(
        body.contains(r#""seed":12345678901234567890123456789"#),
        "{body}"
    );
    assert!(!body.contains("e+28"), "{body}");

    api.runtime
        .block_on(api.reconciler.reconcile(&acme()))
        .expect("reconcile");
    let stack = api
        .stacks
        .live_stacks()
        .into_iter()
        .next()
        .and_then(|location| api.stacks.stack(&location))
        .expect("a stack");
    assert_eq!(
        stack.observed.parameters.get("Seed").map(String::as_str),
        Some("12345678901234567890123456789"),
        "{:?}",
        stack.observed.parameters
    );
}
