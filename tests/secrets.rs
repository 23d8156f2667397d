//! No secret is stored in the table or written to the logs: the ExternalId key and every
//! ExternalId derived from it, the API token key and the tokens themselves, and the tenant-role
//! credentials STS hands out. The whole local system runs (stream, completion loop, API,
//! failures) with every log line captured at DEBUG, then the table and the logs are searched.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use aws_sdk_dynamodb::types::AttributeValue;
use controlplane::aws::sts::ExternalIds;
use local::emulator::free_port;
use local::system::{LocalConfig, RunningSystem, put_spec};
use serde_json::json;

/// Every log line, as the functions write them (JSON), kept in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_is_stored_in_the_table_or_written_to_the_logs() -> Result<()> {
    let logs = Captured::default();
    tracing_subscriber::fmt()
        .json()
        .with_env_filter("debug,aws=info,hyper=info,h2=info,rustls=info")
        .with_writer(logs.clone())
        .with_current_span(true)
        .init();

    let config = LocalConfig {
        aws_port: free_port()?,
        api_port: 0,
        ..LocalConfig::default()
    };
    let external_id_key = config.external_id_key.clone();
    let token_key = config.api_token_key.clone();
    let system = RunningSystem::start(config).await?;
    let table = system.config.table.clone();
    // Written as automation writes (the writer identity); searched as the harness reads.
    let writer = system.writer_dynamo().await;
    let dynamo = system.dynamo();

    // Direct writes, an invalid one, the API with a token, a delete.
    for (tenant, account, players) in [("gs1234", "111111111111", 5), ("acme", "222222222222", 500)]
    {
        put_spec(
            &writer,
            &table,
            json!({"pk": format!("TENANT#{tenant}"), "sk": "SPEC", "tenant_id": tenant,
                   "account_id": account, "config": {"player_count": players}}),
        )
        .await?;
    }
    let token = system
        .tokens
        .mint("ops@example.com", None, 1)
        .map_err(anyhow::Error::msg)?;
    let base = format!("http://{}", system.api_addr);
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{base}/tenants"))
        .bearer_auth(&token)
        .json(&json!({"tenant_id": "globex", "account_id": "333333333333"}))
        .send()
        .await?;
    assert_eq!(created.status(), 202);
    let statuses = system
        .wait_for(Duration::from_secs(60), |s| {
            ["gs1234", "globex"]
                .iter()
                .all(|t| s.get(*t).is_some_and(|r| r["status"] == "ready"))
                && s.get("acme").is_some_and(|r| r["status"] == "failed")
        })
        .await?;
    assert_eq!(statuses["gs1234"]["status"], "ready");
    let removed = http
        .delete(format!("{base}/tenants/globex"))
        .bearer_auth(&token)
        .send()
        .await?;
    assert!(removed.status().is_success());
    system
        .wait_for(Duration::from_secs(60), |s| {
            s.get("globex").is_some_and(|r| r["status"] == "deleted")
        })
        .await?;

    // What must never appear: the keys, every ExternalId, the token, the role credentials.
    let external_ids = ExternalIds::new(external_id_key.as_bytes().to_vec());
    let mut secrets = vec![
        ("the ExternalId key", external_id_key.clone()),
        ("the API token key", token_key),
        ("an API token", token.clone()),
    ];
    for account in ["111111111111", "222222222222", "333333333333"] {
        secrets.push(("an ExternalId", external_ids.for_account(account)));
    }
    let credentials = system
        .plane
        .credentials
        .for_tenant("111111111111", "gs1234")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    secrets.push((
        "a role's secret access key",
        credentials.secret_access_key().to_owned(),
    ));
    if let Some(session) = credentials.session_token() {
        secrets.push(("a role's session token", session.to_owned()));
    }

    let mut items = String::new();
    let mut pages = dynamo
        .scan()
        .table_name(&table)
        .into_paginator()
        .items()
        .send();
    while let Some(item) = pages.next().await {
        let item = item?;
        for (name, value) in &item {
            items.push_str(name);
            items.push('=');
            items.push_str(&format!("{value:?}"));
            items.push('\n');
        }
        assert!(!item.contains_key("external_id"), "{item:?}");
        let _: Option<&AttributeValue> = item.get("pk");
    }
    let logged = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(
        logged.contains("gs1234") && logged.contains("tenant_id"),
        "the logs were captured"
    );
    assert!(items.contains("gs1234"), "the table was read");
    for (what, secret) in &secrets {
        assert!(secret.len() >= 8, "{what} is a real value");
        assert!(
            !items.contains(secret.as_str()),
            "{what} is stored in the table"
        );
        assert!(!logged.contains(secret.as_str()), "{what} is in the logs");
    }
    if std::env::var("SHOW_LOGS").is_ok() {
        eprintln!("{logged}");
    }
    eprintln!(
        "secrets: {} secret values searched for in {} bytes of logs and {} bytes of table items; none found",
        secrets.len(),
        logged.len(),
        items.len()
    );
    system.shutdown().await;
    Ok(())
}
