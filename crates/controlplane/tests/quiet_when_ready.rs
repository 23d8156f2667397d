//! A ready tenant stays quiet: for any valid config, however its numbers are written (`007`,
//! `5.50`, `1e1`, DynamoDB N or S) and however CloudFormation echoes a Number parameter back
//! (as sent, `7.0`, in exponent form), sweep after sweep makes no stack update and writes no
//! STATUS.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};

use controlplane::ports::{StackError, StackRequest, StackTarget, Stacks, UpdateStarted};
use controlplane::testing::{FakeStacks, World};
use controlplane::triggers::sweep::sweep;
use model::spec::TenantKey;
use model::stack::ObservedStack;
use model::status::Status;

const SWEEPS: usize = 12;

/// How CloudFormation hands a Number parameter back on DescribeStacks.
#[derive(Clone, Copy, Debug)]
enum Echo {
    AsSent,
    /// With a point: `7` as `7.0`.
    Float,
    /// In exponent form: `7` as `7e0`, `5.5` as `55e-1`.
    Exponent,
}

/// The fake CloudFormation, echoing Number parameters in one `Echo` form, counting updates.
struct Echoing {
    inner: Arc<FakeStacks>,
    echo: Echo,
    updates: Mutex<usize>,
}

fn echoed(echo: Echo, sent: &str) -> String {
    match echo {
        Echo::AsSent => sent.to_owned(),
        Echo::Float if sent.contains('.') => sent.to_owned(),
        Echo::Float => format!("{sent}.0"),
        Echo::Exponent => match sent.split_once('.') {
            Some((whole, fraction)) => format!("{whole}{fraction}e-{}", fraction.len()),
            None => format!("{sent}e0"),
        },
    }
}

#[async_trait]
impl Stacks for Echoing {
    async fn describe(&self, at: &StackTarget) -> Result<Option<ObservedStack>, StackError> {
        let mut stack = self.inner.describe(at).await?;
        if let Some(players) = stack
            .as_mut()
            .and_then(|s| s.parameters.get_mut("PlayerCount"))
        {
            *players = echoed(self.echo, players);
        }
        Ok(stack)
    }
    async fn create(&self, at: &StackTarget, request: &StackRequest) -> Result<(), StackError> {
        self.inner.create(at, request).await
    }
    async fn update(
        &self,
        at: &StackTarget,
        request: &StackRequest,
    ) -> Result<UpdateStarted, StackError> {
        *self.updates.lock().unwrap() += 1;
        self.inner.update(at, request).await
    }
    async fn delete(&self, at: &StackTarget, token: &str) -> Result<(), StackError> {
        self.inner.delete(at, token).await
    }
    async fn continue_update_rollback(
        &self,
        at: &StackTarget,
        token: &str,
    ) -> Result<(), StackError> {
        self.inner.continue_update_rollback(at, token).await
    }
    async fn failure_reason(&self, at: &StackTarget) -> Result<Option<String>, StackError> {
        self.inner.failure_reason(at).await
    }
}

/// A number in 1..=100 (the sample template's PlayerCount range), written in any form.
fn player_count() -> impl Strategy<Value = Value> {
    (1u32..100, 0usize..7, any::<bool>()).prop_map(|(n, form, as_number)| {
        let text = match form {
            0 => n.to_string(),
            1 => format!("00{n}"),
            2 => format!("{n}.0"),
            3 => format!("{n}.50"),
            4 => format!("{n}e0"),
            5 => format!("{}e-1", n * 10),
            _ => format!("0{n}.250"),
        };
        // A DynamoDB N, or an S the template types as a Number.
        if as_number {
            json!({"N": text})
        } else {
            json!({"S": text})
        }
    })
}

fn config() -> impl Strategy<Value = Value> {
    (
        prop::option::of(player_count()),
        prop::option::of(prop::sample::select(vec![
            "peaceful", "easy", "normal", "hard",
        ])),
        // A String parameter: numbers in it are text, kept as written.
        prop::option::of(prop_oneof![
            "[a-z0-9]{0,8}".prop_map(|s| json!({"S": s})),
            Just(json!({"S": "007"})),
            Just(json!({"N": "5.50"})),
        ]),
    )
        .prop_map(|(players, difficulty, seed)| {
            let mut config = serde_json::Map::new();
            if let Some(players) = players {
                config.insert("player_count".into(), players);
            }
            if let Some(difficulty) = difficulty {
                config.insert("difficulty".into(), json!({"S": difficulty}));
            }
            if let Some(seed) = seed {
                config.insert("seed".into(), seed);
            }
            Value::Object(config)
        })
}

fn echo() -> impl Strategy<Value = Echo> {
    prop_oneof![Just(Echo::AsSent), Just(Echo::Float), Just(Echo::Exponent)]
}

fn run_case(config: Value, echo: Echo) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    runtime.block_on(async {
        let fake = Arc::new(FakeStacks::default());
        let stacks = Arc::new(Echoing {
            inner: fake.clone(),
            echo,
            updates: Mutex::new(0),
        });
        let World {
            store,
            clock,
            reconciler,
            ..
        } = World::builder()
            .starting_at(
                DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
                    .unwrap()
                    .with_timezone(&Utc),
            )
            .stacks(fake)
            .reached_through(stacks.clone())
            .build();
        let key = TenantKey::new("acme");
        let item: serde_dynamo::Item = serde_json::from_value(json!({
            "pk": {"S": "TENANT#acme"}, "sk": {"S": "SPEC"}, "tenant_id": {"S": "acme"},
            "account_id": {"S": "111111111111"}, "config": {"M": config},
        }))
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
        store.put_spec(&key, item);

        let sweep_once = || async {
            stacks.inner.finish_in_progress();
            clock.advance(chrono::Duration::minutes(5));
            let _ = sweep(store.as_ref(), &reconciler, 4).await;
        };
        for _ in 0..4 {
            sweep_once().await;
        }
        let ready = store.status(&key);
        prop_assert_eq!(
            ready.as_ref().map(|s| s.status),
            Some(Status::Ready),
            "{:?}",
            ready.as_ref().and_then(|s| s.reason.clone())
        );
        let updates = *stacks.updates.lock().unwrap();
        let status_writes = store.status_writes();
        for _ in 0..SWEEPS {
            sweep_once().await;
        }
        prop_assert_eq!(
            *stacks.updates.lock().unwrap(),
            updates,
            "a ready tenant was updated again"
        );
        prop_assert_eq!(
            store.status_writes(),
            status_writes,
            "a ready tenant's STATUS was written again"
        );
        Ok(())
    })
}

#[test]
fn a_ready_tenant_stays_quiet_across_sweeps_for_any_valid_config() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    if let Err(failure) = runner.run(&(config(), echo()), |(config, echo)| run_case(config, echo)) {
        panic!("{failure}");
    }
}
