//! The core pipeline against moto server: rows written with the SDK, the table's real stream read
//! by the Lambda-faithful poller, the handler reconciling, and stacks checked in the tenants'
//! own accounts through the assumed role. Each test runs its own emulator; none is skipped when
//! the emulator cannot start: it fails.

use std::sync::Mutex;

use anyhow::Result;
use integration_tests::{LocalSystem, parameters};
use local::stream_poller::Invocation;
use serde_json::{Value, json};

const ACCOUNT_A: &str = "111111111111";
const ACCOUNT_B: &str = "222222222222";

fn seed_row() -> Value {
    // The demo's sample row (docs/table-contract.md), as-is.
    json!({
        "pk": "TENANT#gs1234", "sk": "SPEC",
        "tenant_id": "gs1234", "account_id": ACCOUNT_A,
        "username": "player@example.com",
        "created_at": "2023-05-13T14:06:33Z",
        "config": {"difficulty": "peaceful", "player_count": 5, "seed": "bailao9SheeSi1i"}
    })
}

fn status_of(status: &Option<Value>) -> &str {
    status
        .as_ref()
        .and_then(|s| s["status"].as_str())
        .unwrap_or("<none>")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_become_stacks_change_and_go_away() -> Result<()> {
    let system = LocalSystem::start().await?;
    let mut poller = system.poller().await?;

    system.put_spec(seed_row()).await?;
    system
        .put_spec(json!({
            "pk": "TENANT#beta-co", "sk": "SPEC", "tenant_id": "beta-co", "account_id": ACCOUNT_B,
            "config": {"difficulty": "hard"}, "updated_by": "terraform"
        }))
        .await?;
    // Bad rows in the same batch: each ends failed with its reason; the good ones are unaffected.
    system
        .put_spec(json!({"pk": "TENANT#bad-account", "sk": "SPEC", "tenant_id": "bad-account", "account_id": "12"}))
        .await?;
    system
        .put_spec(json!({
            "pk": "TENANT#bad-key", "sk": "SPEC", "tenant_id": "bad-key", "account_id": ACCOUNT_B,
            "config": {"colour": "red"}
        }))
        .await?;

    let stats = system.drain(&mut poller).await?;
    assert_eq!(stats.records_sent_to_on_failure, 0);

    let gs = system.status("gs1234").await?;
    assert_eq!(status_of(&gs), "ready", "{gs:?}");
    let gs = gs.unwrap_or_default();
    assert_eq!(gs["location"]["account_id"], ACCOUNT_A);
    assert_eq!(gs["location"]["region"], "us-east-1");
    assert_eq!(gs["template_version"], "v1");
    assert!(
        gs["outputs"]["JobsQueueUrl"]
            .as_str()
            .is_some_and(|u| u.contains("tenant-gs1234-jobs")),
        "{gs}"
    );
    let stack = system
        .stack(ACCOUNT_A, "gs1234")
        .await?
        .expect("stack in the tenant account");
    let params = parameters(&stack);
    assert_eq!(params["PlayerCount"], "5");
    assert_eq!(params["Difficulty"], "peaceful");
    assert_eq!(params["Seed"], "bailao9SheeSi1i");
    assert_eq!(params["TenantId"], "gs1234");
    assert!(
        stack
            .tags()
            .iter()
            .any(|t| t.key() == Some("tenant-id") && t.value() == Some("gs1234"))
    );
    assert_eq!(gs["stack_id"].as_str(), stack.stack_id());
    // The stack lives only in the tenant's account.
    assert!(system.stack(ACCOUNT_B, "gs1234").await?.is_none());

    assert_eq!(status_of(&system.status("beta-co").await?), "ready");
    assert!(system.stack(ACCOUNT_B, "beta-co").await?.is_some());

    let bad = system.status("bad-account").await?.unwrap_or_default();
    assert_eq!(bad["status"], "failed");
    assert!(
        bad["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("account_id: must be exactly 12 digits"),
        "{bad}"
    );
    let bad = system.status("bad-key").await?.unwrap_or_default();
    assert_eq!(bad["status"], "failed");
    let reason = bad["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("config.colour") && reason.contains("no parameter Colour"),
        "{reason}"
    );
    assert!(system.stack(ACCOUNT_B, "bad-key").await?.is_none());

    // STATUS writes are in the control-plane table: the stream holds the writers' rows alone.
    assert_eq!(stats.records_delivered, 4, "{stats:?}");
    assert_eq!(stats.records_read, stats.records_delivered, "{stats:?}");

    // Update: a config change reaches the stack; the fingerprint moves.
    let before = gs["spec_fingerprint"].clone();
    let mut changed = seed_row();
    changed["config"]["difficulty"] = json!("hard");
    system.put_spec(changed.clone()).await?;
    system.drain(&mut poller).await?;
    let gs = system.status("gs1234").await?.unwrap_or_default();
    assert_eq!(gs["status"], "ready", "{gs}");
    assert_ne!(gs["spec_fingerprint"], before);
    let stack = system.stack(ACCOUNT_A, "gs1234").await?.expect("stack");
    assert_eq!(parameters(&stack)["Difficulty"], "hard");

    // The same row written again changes nothing: same fingerprint, same STATUS version.
    let version = gs["version"].clone();
    system.put_spec(changed).await?;
    system.drain(&mut poller).await?;
    let again = system.status("gs1234").await?.unwrap_or_default();
    assert_eq!(again["version"], version, "{again}");

    // Fixing a bad row provisions it.
    system
        .put_spec(json!({"pk": "TENANT#bad-account", "sk": "SPEC", "tenant_id": "bad-account", "account_id": ACCOUNT_A}))
        .await?;
    system.drain(&mut poller).await?;
    assert_eq!(status_of(&system.status("bad-account").await?), "ready");

    // Delete: removing the SPEC removes the stack.
    system.delete_spec("gs1234").await?;
    system.drain(&mut poller).await?;
    let gs = system.status("gs1234").await?.unwrap_or_default();
    assert_eq!(gs["status"], "deleted", "{gs}");
    assert!(system.stack(ACCOUNT_A, "gs1234").await?.is_none());

    // One AssumeRole per account, not one per tenant or record: gs1234 and bad-account share
    // account A's session, beta-co has B's (this test inspects the accounts as their owner,
    // not through the control plane).
    assert_eq!(system.plane.credentials.assume_calls(), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_before_insert_is_acted_on_leaves_no_stack() -> Result<()> {
    let system = LocalSystem::start().await?;
    let mut poller = system.poller().await?;
    system.put_spec(seed_row()).await?;
    system.delete_spec("gs1234").await?;
    let stats = system.drain(&mut poller).await?;
    assert_eq!(stats.records_delivered, 2);
    assert!(system.stack(ACCOUNT_A, "gs1234").await?.is_none());
    assert!(system.status("gs1234").await?.is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reported_failure_is_retried_from_its_sequence_number() -> Result<()> {
    let system = LocalSystem::start().await?;
    let mut poller = system.poller().await?;
    for tenant in ["alpha", "bravo", "charlie"] {
        system
            .put_spec(json!({"pk": format!("TENANT#{tenant}"), "sk": "SPEC", "tenant_id": tenant, "account_id": ACCOUNT_A}))
            .await?;
    }
    // The first invocation reports bravo's record as failed, as a transient failure would.
    let batches: Mutex<Vec<Vec<String>>> = Mutex::new(Vec::new());
    let invoke = |event: Value| {
        let records = event["Records"].as_array().cloned().unwrap_or_default();
        let tenants: Vec<String> = records
            .iter()
            .map(|r| {
                r["dynamodb"]["Keys"]["pk"]["S"]
                    .as_str()
                    .unwrap_or_default()
                    .trim_start_matches("TENANT#")
                    .to_owned()
            })
            .collect();
        let first_call = {
            let mut seen = batches.lock().unwrap_or_else(|p| p.into_inner());
            seen.push(tenants.clone());
            seen.len() == 1
        };
        let bravo = records
            .iter()
            .find(|r| r["dynamodb"]["Keys"]["pk"]["S"] == "TENANT#bravo")
            .and_then(|r| r["dynamodb"]["SequenceNumber"].as_str())
            .map(str::to_owned);
        let system = &system;
        async move {
            if first_call {
                // Handle alpha for real; report bravo (and so everything after it) for retry.
                let _ = system
                    .invoke(json!({"Records": records[..1].to_vec()}))
                    .await;
                Invocation::Response(json!({"batchItemFailures": [{"itemIdentifier": bravo}]}))
            } else {
                system.invoke(event).await
            }
        }
    };
    poller.drain(&invoke).await?;
    let batches = batches.into_inner().unwrap_or_default();
    assert_eq!(batches[0], ["alpha", "bravo", "charlie"]);
    assert_eq!(batches[1], ["bravo", "charlie"], "{batches:?}");
    for tenant in ["alpha", "bravo", "charlie"] {
        assert_eq!(
            status_of(&system.status(tenant).await?),
            "ready",
            "{tenant}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_keeps_failing_goes_to_the_on_failure_destination() -> Result<()> {
    let system = LocalSystem::start().await?;
    let mut poller = system.poller().await?;
    system.put_spec(seed_row()).await?;
    let calls = Mutex::new(0usize);
    let invoke = |event: Value| {
        *calls.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        let sequence = event["Records"][0]["dynamodb"]["SequenceNumber"].clone();
        async move { Invocation::Response(json!({"batchItemFailures": [{"itemIdentifier": sequence}]})) }
    };
    let stats = poller.drain(&invoke).await?;
    // MaximumRetryAttempts is 10 in template.yaml: the first try and ten retries.
    assert_eq!(*calls.lock().unwrap_or_else(|p| p.into_inner()), 11);
    assert_eq!(stats.records_sent_to_on_failure, 1);
    let messages = poller.take_on_failure_messages();
    assert_eq!(messages.len(), 1);
    let info = &messages[0]["DDBStreamBatchInfo"];
    assert_eq!(
        messages[0]["requestContext"]["condition"],
        "RetryAttemptsExhausted"
    );
    assert_eq!(info["streamArn"], system.stream_arn.as_str());
    assert_eq!(info["batchSize"], 1);
    assert!(info["startSequenceNumber"].is_string() && info["shardId"].is_string());

    // The on-failure consumer re-reads that range from the real stream and provisions the tenant
    // whose records were given up on.
    let sqs_event = json!({"Records": [{
        "messageId": "m-1", "receiptHandle": "r-1", "body": messages[0].to_string(),
        "attributes": {}, "messageAttributes": {}, "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:tenants-stream-failures",
        "awsRegion": "us-east-1"
    }]});
    let consumer = system.function("StreamFailuresFunction").await?;
    let response = controlplane::triggers::stream_failures::handle_stream_failures(
        &consumer.reconciler,
        consumer.stream_records.as_ref(),
        &consumer.stream,
        &sqs_event,
    )
    .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(status_of(&system.status("gs1234").await?), "ready");
    assert!(system.stack(ACCOUNT_A, "gs1234").await?.is_some());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decommission_and_the_audit_timeline_on_the_real_table() -> Result<()> {
    use model::spec::TenantKey;
    use model::status::Status;

    let system = LocalSystem::start().await?;
    let mut row = seed_row();
    row["decommission_date"] = json!("2020-01-31");
    row["updated_by"] = json!("alice@example.com");
    system.put_spec(row).await?;
    let mut poller = system.poller().await?;
    system.drain(&mut poller).await?;
    assert_eq!(status_of(&system.status("gs1234").await?), "ready");

    // Grace period zero: announced on the first run, removed on the next.
    let decommissioning = system.function("DecommissionFunction").await?;
    let store = decommissioning.store.as_ref();
    let reconciler = &decommissioning.reconciler;
    let grace = std::time::Duration::ZERO;
    let first =
        controlplane::triggers::decommission::decommission(store, reconciler, grace, 4).await?;
    assert_eq!((first.announced, first.removed), (1, 0));
    let second =
        controlplane::triggers::decommission::decommission(store, reconciler, grace, 4).await?;
    assert_eq!(second.removed, 1);
    // The normal removal path: the stream's REMOVE record deletes the stack.
    system.drain(&mut poller).await?;
    assert_eq!(status_of(&system.status("gs1234").await?), "deleted");
    assert!(system.stack(ACCOUNT_A, "gs1234").await?.is_none());

    // The timeline, in order, read back from the table; none of it shows up as a tenant.
    let inspector = system.inspector();
    let store: &dyn controlplane::ports::TenantStore = &inspector;
    let tenant = TenantKey::new("gs1234");
    let (timeline, _) = store.audit_trail(&tenant, None, 100).await?;
    let lines: Vec<(&str, &str, &str)> = timeline
        .iter()
        .map(|e| (e.action.as_str(), e.actor.as_str(), e.result.as_str()))
        .collect();
    assert_eq!(
        lines,
        vec![
            ("spec-written", "alice@example.com", "accepted"),
            ("create", "system", "started"),
            ("create", "system", "ready"),
            ("decommission-scheduled", "system", "scheduled"),
            ("decommission", "system", "accepted"),
            ("spec-removed", "unknown", "accepted"),
            ("delete", "system", "started"),
            ("delete", "system", "deleted"),
        ]
    );
    // Deleted, with no SPEC: the sweep passes over it (both pages).
    let (specs, next) = store.list_tenants(None).await?;
    let (statuses, last) = store.list_tenants(next).await?;
    assert!(
        specs.is_empty() && statuses.is_empty() && last.is_none(),
        "{specs:?} {statuses:?}"
    );
    let (deleted, _) = store.list_in_status(Status::Deleted, None).await?;
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].tenant, tenant);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_reconciler_alone_provisions_rows_whose_records_were_never_read() -> Result<()>
{
    let system = LocalSystem::start().await?;
    let reconciler = system.function("ReconcilerFunction").await?;
    // The stream trigger is "off": no poller runs.
    system.put_spec(seed_row()).await?;
    let report =
        controlplane::triggers::sweep::sweep(reconciler.store.as_ref(), &reconciler.reconciler, 4)
            .await?;
    assert_eq!(report.tenants, 1);
    assert_eq!(status_of(&system.status("gs1234").await?), "ready");
    assert!(system.stack(ACCOUNT_A, "gs1234").await?.is_some());
    // And a row removed while the trigger is off: the stack goes.
    system.delete_spec("gs1234").await?;
    controlplane::triggers::sweep::sweep(reconciler.store.as_ref(), &reconciler.reconciler, 4)
        .await?;
    assert_eq!(status_of(&system.status("gs1234").await?), "deleted");
    assert!(system.stack(ACCOUNT_A, "gs1234").await?.is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_spec_writes_see_any_concurrent_change_on_the_real_table() -> Result<()> {
    use controlplane::aws::dynamodb::DynamoStore;
    use controlplane::ports::{SpecStore, StoreError};
    use model::spec::TenantKey;

    let system = LocalSystem::start().await?;
    let specs = DynamoStore::new(
        system.dynamo.clone(),
        controlplane::aws::dynamodb::Tables::of(&system.table),
    );
    let tenant = TenantKey::new("gs1234");
    let item = |extra: Value| -> Result<serde_dynamo::Item> {
        let mut row = seed_row();
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            row[k] = v;
        }
        Ok(model::item_json::item_of_json(&row))
    };
    let first = item(json!({"updated_by": "alice", "notes": null}))?;
    specs.create_spec(&tenant, &first).await?;
    assert_eq!(
        specs.create_spec(&tenant, &first).await,
        Err(StoreError::Conflict)
    );
    // Another writer adds a field (same author, so nothing it had changed): still a conflict.
    let theirs =
        item(json!({"updated_by": "alice", "notes": null, "decommission_date": "2027-01-31"}))?;
    specs.replace_spec(&tenant, &theirs, &first).await?;
    let mine = item(json!({"updated_by": "alice", "region": "eu-west-1"}))?;
    assert_eq!(
        specs.replace_spec(&tenant, &mine, &first).await,
        Err(StoreError::Conflict)
    );
    // Against what is really there (a NULL attribute included), the write goes through.
    specs.replace_spec(&tenant, &mine, &theirs).await?;
    assert_eq!(
        specs.delete_spec(&tenant, &theirs).await,
        Err(StoreError::Conflict)
    );
    specs.delete_spec(&tenant, &mine).await?;
    Ok(())
}

/// moto stores a number real DynamoDB refuses (more than 38 significant digits); such a SPEC,
/// written straight to the table, ends failed with a reason naming the field, and the other
/// tenants provision as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_with_a_39_digit_number_written_to_the_table_ends_failed_naming_the_field()
-> Result<()> {
    use aws_sdk_dynamodb::types::AttributeValue;

    let system = LocalSystem::start().await?;
    let mut poller = system.poller().await?;
    system.put_spec(seed_row()).await?;
    // As `aws dynamodb put-item` sends it: DynamoDB's N text (a JSON number would be an f64).
    let mut item: std::collections::HashMap<String, AttributeValue> =
        model::item_json::item_of_json(&json!({
            "pk": "TENANT#precise", "sk": "SPEC", "tenant_id": "precise", "account_id": ACCOUNT_B,
            "config": {"difficulty": "hard"}
        }))
        .into();
    if let Some(AttributeValue::M(config)) = item.get_mut("config") {
        config.insert("player_count".into(), AttributeValue::N("1".repeat(39)));
    }
    system.put_item(item).await?;

    let stats = system.drain(&mut poller).await?;
    assert_eq!(stats.records_sent_to_on_failure, 0, "{stats:?}");
    assert_eq!(status_of(&system.status("gs1234").await?), "ready");
    let status = system.status("precise").await?;
    assert_eq!(status_of(&status), "failed", "{status:?}");
    let reason = status
        .as_ref()
        .and_then(|s| s["reason"].as_str())
        .unwrap_or_default();
    assert!(
        reason.starts_with("invalid SPEC: config.player_count: ")
            && reason.contains("has 39 significant digits: DynamoDB keeps at most 38"),
        "{reason}"
    );
    assert!(system.stack(ACCOUNT_B, "precise").await?.is_none());
    Ok(())
}

/// The negative controls of IAM enforcement: a role without an action its function needs
/// fails the way real AWS makes it fail, and says so on the tenant's STATUS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_get_item_the_stream_handler_cannot_provision_a_new_tenant_and_says_why()
-> Result<()> {
    use local::system::LocalConfig;
    let config = LocalConfig::default().revoke("StreamHandlerFunction", "dynamodb:GetItem");
    assert!(
        config.enforce_iam,
        "LOCAL_IAM=off: the negative controls need enforcement"
    );
    let system = integration_tests::LocalSystem::start_with(config).await?;
    let mut poller = system.poller().await?;
    system.put_spec(seed_row()).await?;
    system.drain(&mut poller).await?;
    let status = system.status("gs1234").await?;
    assert_eq!(status_of(&status), "failed", "{status:?}");
    let reason = status
        .as_ref()
        .and_then(|s| s["reason"].as_str())
        .unwrap_or_default();
    assert!(
        reason.contains("AccessDenied") && reason.contains("dynamodb:GetItem"),
        "{reason}"
    );
    assert!(system.stack(ACCOUNT_A, "gs1234").await?.is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_whose_role_lacks_sts_assume_role_reaches_no_tenant_account() -> Result<()> {
    use local::system::LocalConfig;
    let config = LocalConfig::default().revoke("StreamHandlerFunction", "sts:AssumeRole");
    assert!(
        config.enforce_iam,
        "LOCAL_IAM=off: the negative controls need enforcement"
    );
    let system = integration_tests::LocalSystem::start_with(config).await?;
    let mut poller = system.poller().await?;
    system.put_spec(seed_row()).await?;
    system.drain(&mut poller).await?;
    let status = system.status("gs1234").await?;
    assert_eq!(status_of(&status), "failed", "{status:?}");
    let reason = status
        .as_ref()
        .and_then(|s| s["reason"].as_str())
        .unwrap_or_default();
    assert!(
        reason.contains("AccessDenied") && reason.contains("sts:AssumeRole"),
        "{reason}"
    );
    Ok(())
}

/// The guard of declared calls: a call a function's list lacks is refused before it is sent,
/// with a code of its own, and recorded (the run would fail on it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_a_function_does_not_declare_is_refused_before_it_is_sent() -> Result<()> {
    use aws_sdk_dynamodb::error::ProvideErrorMetadata;
    let system = LocalSystem::start().await?;
    let identities = &system.infrastructure.identities;
    // The stream handler reads one tenant's rows; it never pages through the table.
    let sdk = identities.function_sdk("StreamHandlerFunction").await?;
    let refused = aws_sdk_dynamodb::Client::new(&sdk)
        .scan()
        .table_name(&system.table)
        .index_name("tenants")
        .send()
        .await
        .expect_err("an undeclared call went through");
    assert_eq!(refused.code(), Some("UndeclaredOperation"), "{refused:?}");
    assert!(
        refused
            .message()
            .is_some_and(|m| m.contains("StreamHandlerFunction calls dynamodb:Scan")),
        "{refused:?}"
    );
    assert_eq!(
        identities.violations.take(),
        ["StreamHandlerFunction: dynamodb:Scan"]
    );
    // A declared one goes through.
    aws_sdk_dynamodb::Client::new(&sdk)
        .get_item()
        .table_name(&system.table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("TEMPLATES".into()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("CURRENT".into()),
        )
        .send()
        .await?;
    Ok(())
}

/// Rows any writer may put in a tenant's partition never hide its STATUS: three 350 KB rows
/// sorting between SPEC and STATUS (past a Query's 1 MB page) and the SPEC's change is still
/// applied, first time, with nothing sent to the on-failure destination.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_beside_the_spec_never_hide_the_status() -> Result<()> {
    let system = LocalSystem::start().await?;
    let mut poller = system.poller().await?;
    system.put_spec(seed_row()).await?;
    system.drain(&mut poller).await?;
    let status = system.status("gs1234").await?;
    assert_eq!(status_of(&status), "ready", "{status:?}");

    for n in 1..=3 {
        system
            .put_spec(json!({
                "pk": "TENANT#gs1234", "sk": format!("SPEC.bak{n}"),
                "note": "x".repeat(350 * 1024),
            }))
            .await?;
    }
    let mut changed = seed_row();
    changed["config"]["difficulty"] = json!("hard");
    system.put_spec(changed).await?;
    let stats = system.drain(&mut poller).await?;
    assert_eq!(stats.records_sent_to_on_failure, 0, "{stats:?}");
    assert_eq!(stats.retries, 0, "{stats:?}");
    let status = system.status("gs1234").await?;
    assert_eq!(status_of(&status), "ready", "{status:?}");
    let stack = system.stack(ACCOUNT_A, "gs1234").await?.expect("the stack");
    assert_eq!(
        parameters(&stack).get("Difficulty").map(String::as_str),
        Some("hard")
    );
    Ok(())
}

/// The sweep's list of tenants, on the real tables: every SPEC, then every tenant whose SPEC is
/// gone but whose STATUS is not `deleted` (its stack may still be there: the stream's record of
/// the delete lost), each once; tenants recorded deleted are passed over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tenant_is_listed_once_a_status_without_a_spec_included() -> Result<()> {
    use aws_sdk_dynamodb::types::AttributeValue;
    use controlplane::aws::dynamodb::{DynamoStore, Tables};
    use controlplane::ports::TenantStore;

    let system = LocalSystem::start().await?;
    let tables = Tables::of(&system.table);
    let put = |table: String, tenant: &str, sk: &str, status: Option<&str>| {
        let mut request = system
            .dynamo
            .put_item()
            .table_name(table)
            .item("pk", AttributeValue::S(format!("TENANT#{tenant}")))
            .item("sk", AttributeValue::S(sk.into()))
            .item("tenant_id", AttributeValue::S(tenant.into()));
        if let Some(status) = status {
            request = request.item("status", AttributeValue::S(status.into()));
        }
        request.send()
    };
    put(tables.specs.clone(), "spec-only", "SPEC", None).await?;
    put(tables.specs.clone(), "both", "SPEC", None).await?;
    put(tables.control.clone(), "both", "STATUS", Some("ready")).await?;
    put(tables.control.clone(), "orphaned", "STATUS", Some("ready")).await?;
    put(tables.control.clone(), "gone", "STATUS", Some("deleted")).await?;
    // A writer's STATUS-looking row in the SPEC table lists nothing of its own.
    put(tables.specs.clone(), "forged", "STATUS", Some("ready")).await?;

    let store = DynamoStore::new(system.dynamo.clone(), tables);
    let mut listed = Vec::new();
    let mut token = None;
    loop {
        let (page, next) = store.list_tenants(token).await?;
        listed.extend(page.into_iter().map(|t| t.as_str().to_owned()));
        match next {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    listed.sort();
    assert_eq!(listed, ["both", "orphaned", "spec-only"]);
    Ok(())
}

/// `007` and `5.50` (README's own example of a number written as text, and a DynamoDB N with a
/// trailing zero) reach `ready` once, and the scheduled reconciler then leaves them alone: no
/// stack update, no STATUS write, sweep after sweep, however moto echoes the Number back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_written_in_any_form_converge_once_and_stay_quiet() -> Result<()> {
    let system = LocalSystem::start().await?;
    let reconciler = system.function("ReconcilerFunction").await?;
    let rows = [
        ("zero07", json!({"S": "007"})),
        ("five50", json!({"N": "5.50"})),
    ];
    for (tenant, players) in &rows {
        let item = serde_json::from_value::<serde_dynamo::Item>(json!({
            "pk": {"S": format!("TENANT#{tenant}")}, "sk": {"S": "SPEC"},
            "tenant_id": {"S": tenant}, "account_id": {"S": ACCOUNT_A},
            "config": {"M": {"player_count": players}},
        }))?;
        system.put_item(item.into()).await?;
    }
    controlplane::triggers::sweep::sweep(reconciler.store.as_ref(), &reconciler.reconciler, 4)
        .await?;
    let mut versions = Vec::new();
    for (tenant, _) in &rows {
        let status = system.status(tenant).await?;
        assert_eq!(status_of(&status), "ready", "{tenant}: {status:?}");
        versions.push(status.as_ref().map(|s| s["version"].clone()));
    }
    for _ in 0..5 {
        controlplane::triggers::sweep::sweep(reconciler.store.as_ref(), &reconciler.reconciler, 4)
            .await?;
    }
    for ((tenant, _), version) in rows.iter().zip(versions) {
        let status = system.status(tenant).await?;
        assert_eq!(status_of(&status), "ready", "{tenant}");
        assert_eq!(
            status.as_ref().map(|s| s["version"].clone()),
            version,
            "{tenant}: STATUS written again"
        );
        let stack = system.stack(ACCOUNT_A, tenant).await?.expect("the stack");
        assert_eq!(
            stack.stack_status().map(|s| s.as_str()),
            Some("CREATE_COMPLETE"),
            "{tenant}: the stack was updated"
        );
        assert!(stack.last_updated_time().is_none(), "{tenant}: updated");
    }
    Ok(())
}

/// In a fleet whose STATUS rows are nearly all listed by their SPEC, one call of the listing of
/// the others (deleted tenants, invalid SPECs) reads a bounded number of index pages: it answers
/// with what it found, perhaps nothing, and where to go on, instead of scanning the whole index
/// within one API request. Followed page by page, it finds each of them once.
#[tokio::test]
async fn the_listing_of_tenants_without_a_spec_reads_a_bounded_number_of_index_pages() -> Result<()>
{
    use controlplane::ports::{SpecStore, TenantStore};
    use model::spec::TenantKey;
    use model::status::{Status, TenantStatus};

    let system = LocalSystem::start().await?;
    let store = system.inspector().with_scan_page(3);
    for i in 0..12 {
        let id = format!("t{i:02}");
        let status = TenantStatus::new(&id, Status::Ready, "2026-12-03T10:00:00.000Z");
        store
            .put_status(&TenantKey::new(&id), &status, None)
            .await?;
        if i < 10 {
            system
                .put_spec(json!({
                    "pk": format!("TENANT#{id}"), "sk": "SPEC", "tenant_id": id,
                    "account_id": ACCOUNT_A, "config": {}
                }))
                .await?;
        }
    }
    // Two pages of three index entries cannot cover twelve: the first call stops early.
    let (first, mut next) = store.list_unindexed(None, 10).await?;
    assert!(first.len() <= 2 && next.is_some(), "{first:?} {next:?}");
    let mut found: Vec<String> = first.iter().map(|(t, _)| t.as_str().to_owned()).collect();
    let mut calls = 1;
    while let Some(token) = next {
        let (page, after) = store.list_unindexed(Some(token), 10).await?;
        found.extend(page.iter().map(|(t, _)| t.as_str().to_owned()));
        next = after;
        calls += 1;
        assert!(calls <= 12, "the listing does not end");
    }
    found.sort();
    assert_eq!(found, vec!["t10", "t11"]);
    Ok(())
}
