//! The local system started the way `make up` starts it: rows written with the SDK as automation
//! would, and the STATUS rows and stacks in the tenant accounts awaited.

use std::time::Duration;

use anyhow::Result;
use integration_tests::tenant_cloudformation;
use local::emulator::free_port;
use local::system::{LocalConfig, RunningSystem, demo_rows, put_spec};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(60);

async fn start() -> Result<RunningSystem> {
    start_with(LocalConfig::default()).await
}

async fn start_with(config: LocalConfig) -> Result<RunningSystem> {
    let config = LocalConfig {
        aws_port: free_port()?,
        api_port: 0,
        ..config
    };
    Ok(RunningSystem::start(config).await?)
}

/// A subscriber of the lifecycle topic, as an SQS queue (raw delivery); its URL.
async fn subscribe_inbox(system: &RunningSystem) -> Result<String> {
    let sqs = aws_sdk_sqs::Client::new(&system.sdk);
    let inbox = sqs
        .create_queue()
        .queue_name("lifecycle-inbox")
        .send()
        .await?;
    aws_sdk_sns::Client::new(&system.sdk)
        .subscribe()
        .topic_arn(&system.lifecycle_topic_arn)
        .protocol("sqs")
        .endpoint("arn:aws:sqs:us-east-1:123456789012:lifecycle-inbox")
        .attributes("RawMessageDelivery", "true")
        .send()
        .await?;
    Ok(inbox.queue_url().unwrap_or_default().to_owned())
}

/// Lifecycle events received by the inbox, waiting until `count` arrived (or 20 s passed).
async fn receive_events(system: &RunningSystem, inbox: &str, count: usize) -> Result<Vec<Value>> {
    let sqs = aws_sdk_sqs::Client::new(&system.sdk);
    let mut events: Vec<Value> = Vec::new();
    for _ in 0..20 {
        let received = sqs
            .receive_message()
            .queue_url(inbox)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await?;
        for message in received.messages() {
            events.push(serde_json::from_str(message.body().unwrap_or("{}"))?);
        }
        if events.len() >= count {
            break;
        }
    }
    Ok(events)
}

fn status(statuses: &std::collections::BTreeMap<String, Value>, tenant: &str) -> String {
    statuses
        .get(tenant)
        .and_then(|s| s["status"].as_str())
        .unwrap_or("<none>")
        .to_owned()
}

async fn stack_parameter(
    system: &RunningSystem,
    account: &str,
    tenant: &str,
    name: &str,
) -> Result<Option<String>> {
    let cfn = tenant_cloudformation(&system.identities, account).await?;
    let stacks = match cfn
        .describe_stacks()
        .stack_name(format!("tenant-{tenant}"))
        .send()
        .await
    {
        Ok(output) => output.stacks.unwrap_or_default(),
        Err(_) => return Ok(None),
    };
    Ok(stacks.first().and_then(|s| {
        s.parameters()
            .iter()
            .find(|p| p.parameter_key() == Some(name))
            .and_then(|p| p.parameter_value().map(str::to_owned))
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_up_provisions_updates_and_removes_tenants() -> Result<()> {
    let system = start().await?;
    let health = reqwest::get(format!("http://{}/health", system.api_addr)).await?;
    assert_eq!(health.status(), 200);
    assert!(
        system.lifecycle_topic_arn.ends_with(":tenants-lifecycle"),
        "{}",
        system.lifecycle_topic_arn
    );

    // Every local tenant account was bootstrapped as its owner would: the role exists there.
    for account in &system.config.tenant_accounts {
        let owner = tenant_cloudformation(&system.identities, account).await?;
        let bootstrap = owner
            .describe_stacks()
            .stack_name(local::system::BOOTSTRAP_STACK)
            .send()
            .await?;
        let stack = bootstrap.stacks().first().expect("bootstrap stack");
        assert_eq!(
            stack.stack_status().map(|s| s.as_str()),
            Some("CREATE_COMPLETE")
        );
        let role = stack
            .outputs()
            .iter()
            .find(|o| o.output_key() == Some("RoleArn"))
            .and_then(|o| o.output_value());
        assert_eq!(
            role,
            Some(format!("arn:aws:iam::{account}:role/TenantControlRole").as_str())
        );
    }

    let inbox_url = subscribe_inbox(&system).await?;

    let dynamo = system.writer_dynamo().await;
    let table = system.config.table.clone();
    for row in demo_rows() {
        put_spec(&dynamo, &table, row).await?;
    }
    put_spec(
        &dynamo,
        &table,
        json!({"pk": "TENANT#broken", "sk": "SPEC", "tenant_id": "broken", "account_id": "111111111111",
               "config": {"player_count": "lots"}}),
    )
    .await?;
    let statuses = system
        .wait_for(LIMIT, |s| {
            ["gs1234", "acme", "globex"]
                .iter()
                .all(|t| status(s, t) == "ready")
                && status(s, "broken") == "failed"
        })
        .await?;
    for tenant in ["gs1234", "acme", "globex"] {
        assert_eq!(
            status(&statuses, tenant),
            "ready",
            "{tenant}: {:?}",
            statuses.get(tenant)
        );
    }
    let reason = statuses["broken"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        reason.contains("config.player_count") && reason.contains("Number"),
        "{reason}"
    );
    assert_eq!(statuses["globex"]["location"]["region"], "eu-west-1");

    // Lifecycle events reached the subscriber: provisioned for each good tenant, failed for the
    // bad one, each with an id to drop duplicates by.
    let events = receive_events(&system, &inbox_url, 4).await?;
    let mut seen: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["tenant_id"].as_str().unwrap_or("").to_owned(),
                e["kind"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    seen.sort();
    let expected: Vec<(String, String)> = [
        ("acme", "provisioned"),
        ("broken", "failed"),
        ("globex", "provisioned"),
        ("gs1234", "provisioned"),
    ]
    .iter()
    .map(|(t, k)| ((*t).to_owned(), (*k).to_owned()))
    .collect();
    assert_eq!(seen, expected, "{events:?}");
    assert!(
        events
            .iter()
            .all(|e| e["id"].as_str().is_some_and(|id| id.contains(':')))
    );
    assert_eq!(
        stack_parameter(&system, "111111111111", "gs1234", "PlayerCount")
            .await?
            .as_deref(),
        Some("5")
    );

    // Update as automation would: rewrite the row.
    let mut acme = demo_rows()[1].clone();
    acme["config"]["player_count"] = json!(20);
    put_spec(&dynamo, &table, acme).await?;
    // The new SPEC is done when STATUS reflects its fingerprint and is ready.
    let before = statuses["acme"]["spec_fingerprint"].clone();
    system
        .wait_for(LIMIT, |s| {
            s.get("acme")
                .is_some_and(|a| a["spec_fingerprint"] != before && a["status"] == "ready")
        })
        .await?;
    assert_eq!(
        stack_parameter(&system, "222222222222", "acme", "PlayerCount")
            .await?
            .as_deref(),
        Some("20")
    );

    // Remove: the stack goes away.
    dynamo
        .delete_item()
        .table_name(&table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("TENANT#globex".into()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("SPEC".into()),
        )
        .send()
        .await?;
    let statuses = system
        .wait_for(LIMIT, |s| status(s, "globex") == "deleted")
        .await?;
    assert_eq!(status(&statuses, "globex"), "deleted");
    assert_eq!(
        stack_parameter(&system, "333333333333", "globex", "Seed").await?,
        None
    );

    // Nothing was given up on.
    let queue = aws_sdk_sqs::Client::new(&system.sdk)
        .get_queue_attributes()
        .queue_url(&system.failure_queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await?;
    let depth = queue
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages))
        .cloned()
        .unwrap_or_default();
    assert_eq!(depth, "0");
    system.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decommission_runs_on_its_local_schedule() -> Result<()> {
    let system = start_with(LocalConfig {
        decommission_interval: Duration::from_secs(1),
        decommission_grace: Duration::from_secs(2),
        ..LocalConfig::default()
    })
    .await?;
    let inbox = subscribe_inbox(&system).await?;
    let mut row = demo_rows()[0].clone();
    row["decommission_date"] = json!("2026-01-31");
    put_spec(&system.writer_dynamo().await, &system.config.table, row).await?;

    // Provisioned, announced, removed after the grace period, and its stack deleted.
    let statuses = system
        .wait_for(LIMIT, |s| status(s, "gs1234") == "deleted")
        .await?;
    assert_eq!(status(&statuses, "gs1234"), "deleted");
    assert_eq!(
        stack_parameter(&system, "111111111111", "gs1234", "Seed").await?,
        None
    );
    let events = receive_events(&system, &inbox, 3).await?;
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        vec!["provisioned", "decommission_scheduled", "deleted"],
        "{events:?}"
    );
    assert!(events[1]["remove_after"].is_string());
    system.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_on_the_local_system_writes_specs_the_control_plane_provisions() -> Result<()> {
    let system = start().await?;
    let base = format!("http://{}", system.api_addr);
    let http = reqwest::Client::new();
    let admin = system
        .tokens
        .mint("ops@example.com", None, 1)
        .map_err(anyhow::Error::msg)?;
    let acme = system
        .tokens
        .mint("user@acme", Some("acme"), 1)
        .map_err(anyhow::Error::msg)?;

    // Create through the API, with an idempotency key sent twice, and a few more to page through.
    let body = json!({"tenant_id": "acme", "account_id": "222222222222",
                      "config": {"difficulty": "hard", "player_count": 12}});
    for _ in 0..2 {
        let created = http
            .post(format!("{base}/tenants"))
            .bearer_auth(&admin)
            .header("idempotency-key", "create-acme")
            .json(&body)
            .send()
            .await?;
        assert_eq!(created.status(), 202);
    }
    for n in 0..4 {
        let created = http
            .post(format!("{base}/tenants"))
            .bearer_auth(&admin)
            .json(&json!({"tenant_id": format!("extra-{n}"), "account_id": "111111111111"}))
            .send()
            .await?;
        assert_eq!(created.status(), 202);
    }
    let conflict = http
        .post(format!("{base}/tenants"))
        .bearer_auth(&admin)
        .json(&body)
        .send()
        .await?;
    assert_eq!(conflict.status(), 409);
    assert_eq!(
        conflict.headers()["content-type"],
        "application/problem+json"
    );

    // The stream provisions it; the API shows ready with outputs.
    let statuses = system
        .wait_for(LIMIT, |s| status(s, "acme") == "ready")
        .await?;
    assert_eq!(status(&statuses, "acme"), "ready");
    let read = http
        .get(format!("{base}/tenants/acme"))
        .bearer_auth(&acme)
        .send()
        .await?;
    assert_eq!(read.status(), 200);
    let etag = read.headers()["etag"].to_str()?.to_owned();
    let view: Value = read.json().await?;
    assert_eq!(view["status"], "ready");
    assert!(view["outputs"].as_object().is_some_and(|o| !o.is_empty()));

    // The tenant changes its own config with If-Match; the stack follows.
    let patched = http
        .patch(format!("{base}/tenants/acme"))
        .bearer_auth(&acme)
        .header("if-match", &etag)
        .json(&json!({"config": {"player_count": 20}}))
        .send()
        .await?;
    assert_eq!(patched.status(), 202);
    let stale = http
        .patch(format!("{base}/tenants/acme"))
        .bearer_auth(&acme)
        .header("if-match", &etag)
        .json(&json!({"config": {"player_count": 21}}))
        .send()
        .await?;
    assert_eq!(stale.status(), 412);
    let mut updated = None;
    for _ in 0..100 {
        updated = stack_parameter(&system, "222222222222", "acme", "PlayerCount").await?;
        if updated.as_deref() == Some("20") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(updated.as_deref(), Some("20"));

    // Another tenant's data is a 404; the admin pages through everyone on the real index.
    let other = http
        .get(format!("{base}/tenants/extra-0"))
        .bearer_auth(&acme)
        .send()
        .await?;
    assert_eq!(other.status(), 404);
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let mut request = http.get(format!("{base}/tenants")).bearer_auth(&admin);
        request = match &next {
            Some(token) => request.query(&[("limit", "2"), ("next", token.as_str())]),
            None => request.query(&[("limit", "2")]),
        };
        let page: Value = request.send().await?.json().await?;
        seen.extend(
            page["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["tenant_id"].as_str().map(str::to_owned)),
        );
        match page["next"].as_str() {
            Some(token) => next = Some(token.to_owned()),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        vec!["acme", "extra-0", "extra-1", "extra-2", "extra-3"]
    );

    // Delete through the API: the stack goes, and the timeline names who removed it.
    let deleted = http
        .delete(format!("{base}/tenants/acme"))
        .bearer_auth(&admin)
        .send()
        .await?;
    assert_eq!(deleted.status(), 202);
    let statuses = system
        .wait_for(LIMIT, |s| status(s, "acme") == "deleted")
        .await?;
    assert_eq!(status(&statuses, "acme"), "deleted");
    let events: Value = http
        .get(format!("{base}/tenants/acme/events"))
        .bearer_auth(&admin)
        .send()
        .await?
        .json()
        .await?;
    let removal = events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["action"] == "spec-removed" && e["actor"] == "ops@example.com");
    assert!(removal.is_some(), "{events}");
    system.shutdown().await;
    Ok(())
}

/// The stack's template body as CloudFormation holds it (GetTemplate).
async fn stack_template(system: &RunningSystem, account: &str, tenant: &str) -> Result<String> {
    let cfn = tenant_cloudformation(&system.identities, account).await?;
    let output = cfn
        .get_template()
        .stack_name(format!("tenant-{tenant}"))
        .send()
        .await?;
    Ok(output.template_body().unwrap_or_default().to_owned())
}

/// Steps of the local rollout driver until the rollout reaches `state` (or the limit passes).
async fn wait_for_rollout(
    system: &RunningSystem,
    id: &str,
    state: model::rollout::RolloutState,
) -> Result<controlplane::rollout::driver::RolloutView> {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let view = system.rollouts.view(id).await?;
        if view.rollout.state == state {
            return Ok(view);
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "rollout {id} is {} ({:?}), never {state}",
            view.rollout.state,
            view.counts
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_moves_tenants_to_a_new_template_version_and_a_rollback_moves_them_back()
-> Result<()> {
    use controlplane::ports::TemplateStore;
    use controlplane::rollout::driver::StartRollout;
    use controlplane::template_source::{BundledTemplates, NewTemplate, TableTemplates, publish};
    use model::rollout::{Amount, Command, RolloutOptions, RolloutState, Selection};
    use std::sync::Arc;

    let system = start().await?;
    let table = system.config.table.clone();
    let dynamo = system.writer_dynamo().await;
    let tenants = [
        ("gs1234", "111111111111"),
        ("acme", "222222222222"),
        ("initech", "111111111111"),
        ("umbrella", "333333333333"),
    ];
    for (tenant, account) in tenants {
        put_spec(
            &dynamo,
            &table,
            json!({
                "pk": format!("TENANT#{tenant}"), "sk": "SPEC", "tenant_id": tenant,
                "account_id": account, "config": {"player_count": 3}, "updated_by": "test"
            }),
        )
        .await?;
    }
    system
        .wait_for(LIMIT, |s| {
            tenants.iter().all(|(t, _)| status(s, t) == "ready")
        })
        .await?;

    // Publish v2, a CDK-synthesised (bootstrapless) 200 KB template, about four times CloudFormation's inline
    // limit, through the real checks: stored in the template buckets, validated through its
    // URL (moto's ValidateTemplate), deployed with TemplateURL.
    let store = Arc::new(controlplane::aws::dynamodb::DynamoStore::new(
        dynamo.clone(),
        controlplane::aws::dynamodb::Tables::of(&table),
    ));
    let buckets = controlplane::aws::s3::TemplateBuckets::local("us-east-1");
    let objects = Arc::new(controlplane::aws::s3::S3TemplateObjects::new(
        &system.sdk,
        buckets.clone(),
    ));
    let templates = TableTemplates::new(store.clone(), objects, BundledTemplates::sample()?);
    let v2 = controlplane::testing::cdk_style_template(1_209_600, 200_000);
    assert!(
        v2.len() >= 200_000 && v2.len() > model::template::TEMPLATE_BODY_MAX,
        "{}",
        v2.len()
    );
    publish(
        NewTemplate {
            version: "v2".into(),
            body: v2,
            description: Some("longer job retention".into()),
            published_by: "test".into(),
            published_at: "2026-11-23T12:00:00.000Z".into(),
        },
        &templates,
        store.as_ref(),
        store.as_ref(),
        &controlplane::aws::cloudformation::CloudFormationValidator::new(&system.sdk),
    )
    .await?;

    let rollout = system
        .rollouts
        .start(StartRollout {
            target_version: "v2".into(),
            selection: Selection::default(),
            options: RolloutOptions {
                canary: Amount::Count(1),
                bake_seconds: 2,
                max_concurrency: Amount::Count(2),
                ..RolloutOptions::default()
            },
            created_by: "test".into(),
        })
        .await?;
    let done = wait_for_rollout(&system, &rollout.id, RolloutState::Completed).await?;
    assert_eq!((done.counts.done, done.counts.failed), (4, 0));
    assert_eq!(
        store
            .current_template()
            .await?
            .map(|c| c.version)
            .as_deref(),
        Some("v2")
    );
    let statuses = system.statuses().await?;
    for (tenant, account) in tenants {
        let row = &statuses[tenant];
        assert_eq!(row["status"], "ready", "{tenant}: {row}");
        assert_eq!(row["template_version"], "v2", "{tenant}");
        assert_eq!(row["assigned_version"], "v2", "{tenant}");
        assert!(
            stack_template(&system, account, tenant)
                .await?
                .contains("1209600"),
            "{tenant}'s stack runs v2"
        );
    }

    // Rolled back by command: every tenant's stack runs v1 again, and v1 is current again.
    system
        .rollouts
        .command(&rollout.id, Command::Rollback, "test")
        .await?;
    let back = wait_for_rollout(&system, &rollout.id, RolloutState::RolledBack).await?;
    assert_eq!(back.counts.rolled_back, 4, "{:?}", back.counts);
    assert_eq!(
        store
            .current_template()
            .await?
            .map(|c| c.version)
            .as_deref(),
        Some("v1")
    );
    let statuses = system.statuses().await?;
    for (tenant, account) in tenants {
        assert_eq!(statuses[tenant]["template_version"], "v1", "{tenant}");
        assert!(
            stack_template(&system, account, tenant)
                .await?
                .contains("345600"),
            "{tenant}'s stack runs v1 again"
        );
    }
    system.shutdown().await;
    Ok(())
}

/// moto stores an index key of the wrong type, which DynamoDB refuses (a number `tenant_id`):
/// from then on every scan of the `tenants` index fails with an HTTP 500 page. The scheduled
/// reconciler logs it, goes on running, and `/health` says which component fails and why, in a
/// sentence rather than the page; the stream keeps provisioning other tenants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_moto_breaks_its_index_with_shows_on_health_and_stops_nothing_else() -> Result<()> {
    let system = start_with(LocalConfig {
        sweep_interval: Duration::from_millis(500),
        ..LocalConfig::default()
    })
    .await?;
    let health = format!("http://{}/health", system.api_addr);
    let http = reqwest::Client::new();
    let report: Value = http.get(&health).send().await?.json().await?;
    assert_eq!(report["status"], "ok", "{report}");

    // A tenant's SPEC, so the index holds a string key beside the number one (what moto's
    // scan then fails on).
    put_spec(
        &system.writer_dynamo().await,
        &system.config.table,
        json!({"pk": "TENANT#before", "sk": "SPEC", "tenant_id": "before", "account_id": "111111111111"}),
    )
    .await?;
    // As a careless writer would put it, straight into moto (real DynamoDB refuses it).
    let mut item = std::collections::HashMap::new();
    for (name, value) in [("pk", "TENANT#poison"), ("sk", "SPEC")] {
        item.insert(
            name.to_owned(),
            aws_sdk_dynamodb::types::AttributeValue::S(value.into()),
        );
    }
    item.insert(
        "tenant_id".to_owned(),
        aws_sdk_dynamodb::types::AttributeValue::N("7".into()),
    );
    system
        .dynamo()
        .put_item()
        .table_name(&system.config.table)
        .set_item(Some(item))
        .send()
        .await?;

    let started = std::time::Instant::now();
    let failing = loop {
        let report: Value = http.get(&health).send().await?.json().await?;
        if report["components"]["reconciler"]["status"] == "failing" {
            break report;
        }
        assert!(
            started.elapsed() < LIMIT,
            "the sweep's failure never showed: {report}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(failing["status"], "degraded", "{failing}");
    let error = failing["components"]["reconciler"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        !error.is_empty()
            && !error.contains("<html")
            && !error.contains("<!doctype")
            && error.len() < 400,
        "a short reason, not moto's page: {error}"
    );

    // Everything else goes on: a tenant written now is provisioned through the stream.
    put_spec(
        &system.writer_dynamo().await,
        &system.config.table,
        json!({"pk": "TENANT#after", "sk": "SPEC", "tenant_id": "after", "account_id": "111111111111"}),
    )
    .await?;
    let statuses = system
        .wait_for(LIMIT, |s| {
            s.get("after").is_some_and(|r| r["status"] == "ready")
        })
        .await?;
    assert_eq!(statuses["after"]["status"], "ready", "{statuses:?}");
    let report: Value = http.get(&health).send().await?.json().await?;
    assert_eq!(
        report["components"]["stream-poller"]["status"], "ok",
        "{report}"
    );
    Ok(())
}

/// What `/health` answers: its status code and report.
async fn health(system: &RunningSystem) -> Result<(u16, Value)> {
    let response = reqwest::get(format!("http://{}/health", system.api_addr)).await?;
    Ok((response.status().as_u16(), response.json().await?))
}

/// `/health` until `done` holds for it (or the limit passes: the last answer).
async fn health_until(
    system: &RunningSystem,
    limit: Duration,
    done: impl Fn(u16, &Value) -> bool,
) -> Result<(u16, Value)> {
    let started = std::time::Instant::now();
    loop {
        let (code, report) = health(system).await?;
        if done(code, &report) || started.elapsed() > limit {
            return Ok((code, report));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn signal_process(signal: &str, pid: u32) -> Result<()> {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()?;
    anyhow::ensure!(status.success(), "kill {signal} {pid}: {status}");
    Ok(())
}

/// An emulator left behind by an earlier run (its table still in it) holds the port: the start
/// stops at once and says which process holds it and what to do, instead of failing later
/// with `Table already exists` (the old server had answered the readiness check). The old
/// server is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_emulator_on_the_port_stops_the_start_and_says_what_to_do() -> Result<()> {
    let stale = local::emulator::Emulator::start().await?;
    let port: u16 = stale
        .endpoint
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .parse()?;
    let stale_dynamo = aws_sdk_dynamodb::Client::new(&stale.sdk_config("us-east-1").await);
    local::emulator::create_tables(
        &stale_dynamo,
        &controlplane::aws::dynamodb::Tables::of("tenants"),
    )
    .await?;

    let error = match RunningSystem::start(LocalConfig {
        aws_port: port,
        api_port: 0,
        ..LocalConfig::default()
    })
    .await
    {
        Ok(system) => {
            system.shutdown().await;
            anyhow::bail!("the start went on with another server on its port");
        }
        Err(e) => e.to_string(),
    };
    let pid = stale.pid().unwrap_or_default();
    for needed in [
        format!("127.0.0.1:{port} is already in use"),
        format!("pid {pid}"),
        "moto_server.py".to_owned(),
        format!("kill {pid}"),
        "LOCAL_AWS_PORT".to_owned(),
    ] {
        assert!(error.contains(&needed), "{needed:?} missing from: {error}");
    }
    assert!(!error.contains("already exists"), "{error}");
    assert_eq!(error.lines().count(), 1, "one line: {error}");
    // Neither stopped nor reset.
    let tables = stale_dynamo.list_tables().send().await?;
    let mut names = tables.table_names().to_vec();
    names.sort();
    assert_eq!(names, ["tenants", "tenants-control"]);
    Ok(())
}

/// moto server killed under the running system: `/health` turns 503 within seconds and names
/// it, and the system says it is gone (what `make up` stops on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_moto_dies_health_turns_503_names_it_and_the_system_knows_it_is_gone() -> Result<()> {
    let system = start().await?;
    let (code, report) = health_until(&system, LIMIT, |code, _| code == 200).await?;
    assert_eq!(code, 200, "{report}");
    let pid = system.emulator.pid().expect("moto server's pid");

    signal_process("-KILL", pid)?;
    let (code, report) =
        health_until(&system, Duration::from_secs(20), |code, _| code == 503).await?;
    assert_eq!(code, 503, "{report}");
    assert_eq!(report["status"], "down", "{report}");
    let error = report["components"]["emulator"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        error.contains("moto server")
            && error.contains(&format!("pid {pid}"))
            && error.contains("exited"),
        "{report}"
    );
    let gone = tokio::time::timeout(Duration::from_secs(10), system.emulator_gone()).await?;
    assert!(gone.contains("exited") && gone.contains("lost"), "{gone}");
    Ok(())
}

/// moto server stopped (as a laptop's sleep, or a debugger, stops it) turns `/health` 503 while
/// it does not answer, and 200 again once it does; the system goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moto_that_stops_answering_turns_health_503_until_it_answers_again() -> Result<()> {
    let system = start().await?;
    let pid = system.emulator.pid().expect("moto server's pid");
    signal_process("-STOP", pid)?;
    let stopped = health_until(&system, Duration::from_secs(20), |code, _| code == 503).await;
    // Whatever happened, let it go on.
    signal_process("-CONT", pid)?;
    let (code, report) = stopped?;
    assert_eq!(code, 503, "{report}");
    let error = report["components"]["emulator"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("does not answer"), "{report}");

    let (code, report) =
        health_until(&system, Duration::from_secs(20), |code, _| code == 200).await?;
    assert_eq!(code, 200, "{report}");
    assert_eq!(report["components"]["emulator"]["status"], "ok", "{report}");
    let gone = tokio::time::timeout(Duration::from_secs(1), system.emulator_gone()).await;
    assert!(gone.is_err(), "not gone: {gone:?}");
    // And it still provisions.
    put_spec(
        &system.writer_dynamo().await,
        &system.config.table,
        json!({"pk": "TENANT#woke", "sk": "SPEC", "tenant_id": "woke", "account_id": "111111111111"}),
    )
    .await?;
    let statuses = system
        .wait_for(LIMIT, |s| status(s, "woke") == "ready")
        .await?;
    assert_eq!(status(&statuses, "woke"), "ready", "{statuses:?}");
    Ok(())
}

/// moto server reset under the running system (`POST /moto-api/reset`): the table and the
/// identities are gone; `/health` says so (503) and the system knows it is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moto_reset_under_the_system_turns_health_503_and_the_system_knows_it_is_gone()
-> Result<()> {
    let system = start().await?;
    reqwest::Client::new()
        .post(format!("{}/moto-api/reset", system.emulator.endpoint))
        .send()
        .await?
        .error_for_status()?;
    let (code, report) =
        health_until(&system, Duration::from_secs(20), |code, _| code == 503).await?;
    assert_eq!(code, 503, "{report}");
    let error = report["components"]["emulator"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("reset or replaced"), "{report}");
    let gone = tokio::time::timeout(Duration::from_secs(10), system.emulator_gone()).await?;
    assert!(gone.contains("reset or replaced"), "{gone}");
    Ok(())
}

/// Requests moto server has answered so far (its log has one line per request).
fn moto_requests(system: &RunningSystem) -> Result<usize> {
    let log = std::fs::read_to_string(&system.emulator.log)?;
    Ok(log.lines().filter(|l| l.contains(" HTTP/1.1\"")).count())
}

/// Idle, the system backs off its polling (it kept moto busy with about 20 calls a second),
/// and a write after the idle spell is still picked up: the pause never passes its cap (the
/// pacing itself is `local::backoff`'s unit tests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_system_backs_off_and_still_picks_up_a_write_after_the_idle() -> Result<()> {
    let system = start().await?;
    // Long enough for every poller to reach its longest pause.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let window = Duration::from_secs(10);
    let before = moto_requests(&system)?;
    tokio::time::sleep(window).await;
    let calls = moto_requests(&system)? - before;
    let per_second = calls as f64 / window.as_secs_f64();
    println!("idle: {calls} calls to moto server in {window:?} ({per_second:.1}/s)");
    assert!(
        per_second < 8.0,
        "idle, the system still calls moto server {per_second:.1} times a second"
    );

    put_spec(
        &system.writer_dynamo().await,
        &system.config.table,
        json!({"pk": "TENANT#late", "sk": "SPEC", "tenant_id": "late", "account_id": "222222222222"}),
    )
    .await?;
    let statuses = system
        .wait_for(LIMIT, |s| status(s, "late") == "ready")
        .await?;
    assert_eq!(status(&statuses, "late"), "ready", "{statuses:?}");
    Ok(())
}

/// moto cannot detect drift (it answers DetectStackDrift with HTTP 500): the drift job runs on
/// the local system with the reconciler's role, under strict IAM, and records `not_checked`
/// with that reason after a bounded try, leaving the tenant ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drift_job_runs_on_moto_and_records_not_checked() -> Result<()> {
    let system = start_with(LocalConfig {
        drift_interval: Duration::from_secs(2),
        ..LocalConfig::default()
    })
    .await?;
    let dynamo = system.writer_dynamo().await;
    let row = demo_rows().into_iter().next().expect("a demo row");
    let tenant = row["tenant_id"].as_str().expect("tenant_id").to_owned();
    put_spec(&dynamo, &system.config.table, row).await?;
    let statuses = system
        .wait_for(LIMIT, |s| {
            status(s, &tenant) == "ready"
                && s.get(&tenant)
                    .is_some_and(|r| r["drift"]["status"] == "not_checked")
        })
        .await?;
    let row = statuses.get(&tenant).expect("a STATUS row");
    assert_eq!(row["status"], "ready", "{row}");
    assert_eq!(row["drift"]["status"], "not_checked", "{row}");
    let reason = row["drift"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("DetectStackDrift failed:") && reason.contains("500"),
        "{reason}"
    );
    assert!(row["drift"]["checked_at"].is_string(), "{row}");
    Ok(())
}

/// The calls a new tenant's create makes, from its INSERT record to STATUS `ready`, with warm
/// caches (a tenant of the same account was created first: its role's credentials and the
/// template are cached), counted as sent by the functions themselves (the event sources'
/// polls are not theirs): BENCHMARKS.md's calls-per-tenant table, and not one more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_tenants_create_makes_no_more_calls_than_the_table_says() -> Result<()> {
    let hour = Duration::from_secs(3600);
    let system = start_with(LocalConfig {
        sweep_interval: hour,
        drift_interval: hour,
        decommission_interval: hour,
        ..LocalConfig::default()
    })
    .await?;
    let dynamo = system.writer_dynamo().await;
    let table = system.config.table.clone();
    let row = |tenant: &str| {
        json!({"pk": format!("TENANT#{tenant}"), "sk": "SPEC", "tenant_id": tenant,
               "account_id": "111111111111", "config": {"player_count": 3},
               "updated_by": "calls-test"})
    };
    put_spec(&dynamo, &table, row("warmup")).await?;
    system
        .wait_for(LIMIT, |s| status(s, "warmup") == "ready")
        .await?;
    // Whatever the first create left in flight settles first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = system.identities.counts.snapshot();
    put_spec(&dynamo, &table, row("counted")).await?;
    let statuses = system
        .wait_for(LIMIT, |s| status(s, "counted") == "ready")
        .await?;
    assert_eq!(status(&statuses, "counted"), "ready");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = system.identities.counts.snapshot();
    let mut made: std::collections::BTreeMap<String, u64> = Default::default();
    for ((function, action), count) in &after {
        if !["StreamHandlerFunction", "CompletionFunction"].contains(&function.as_str()) {
            continue;
        }
        let earlier = before
            .get(&(function.clone(), action.clone()))
            .copied()
            .unwrap_or(0);
        if count > &earlier {
            *made.entry(action.clone()).or_default() += count - earlier;
        }
    }
    // BENCHMARKS.md, "calls per new tenant": each one beyond CreateStack is justified there.
    let table: std::collections::BTreeMap<String, u64> = [
        ("dynamodb:BatchGetItem", 1),
        ("cloudformation:DescribeStacks", 2),
        ("cloudformation:CreateStack", 1),
        ("dynamodb:TransactWriteItems", 2),
        ("dynamodb:PutItem", 1),
        ("sns:Publish", 1),
    ]
    .into_iter()
    .map(|(a, n)| (a.to_owned(), n))
    .collect();
    let total: u64 = made.values().sum();
    assert_eq!(made, table, "the calls of one new tenant's create");
    assert!(total <= 8, "at most 8 calls per new tenant: {total}");
    Ok(())
}
