//! The metrics as CloudWatch receives them: EMF lines from the recorder the functions install.
//! One test in this binary: the recorder is process-global.

mod common;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use controlplane::metrics::{DEFAULT_STUCK_AFTER, count_fleet, describe};
use controlplane::testing::{Behaviour, World};
use controlplane::triggers::sweep::sweep;
use model::spec::TenantKey;
use model::status::Status;

use common::seed_image;

fn spec(tenant: &str) -> serde_dynamo::Item {
    let mut item = seed_image();
    item.insert(
        "pk".into(),
        serde_dynamo::AttributeValue::S(format!("TENANT#{tenant}")),
    );
    item.insert(
        "tenant_id".into(),
        serde_dynamo::AttributeValue::S(tenant.into()),
    );
    item
}

#[tokio::test]
async fn fleet_counts_and_operation_metrics_are_emitted_as_emf() {
    let collector = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace("TenantControlPlaneTest")
        .init()
        .expect("the recorder installs");
    describe();

    let start: DateTime<Utc> = "2026-11-23T12:00:00Z".parse().unwrap();
    let World {
        store,
        stacks,
        clock,
        reconciler,
        ..
    } = World::builder().starting_at(start).build();

    // Two ready at once; one whose create runs 90 seconds; one that hangs for two hours.
    for tenant in ["ready-one", "ready-two"] {
        store.put_spec(&TenantKey::new(tenant), spec(tenant));
    }
    stacks.set_behaviour("tenant-slow-one", Behaviour::Hang);
    stacks.set_behaviour("tenant-stuck-one", Behaviour::Hang);
    store.put_spec(&TenantKey::new("slow-one"), spec("slow-one"));
    store.put_spec(&TenantKey::new("stuck-one"), spec("stuck-one"));
    sweep(store.as_ref(), &reconciler, 4).await.expect("sweep");
    stacks.set_behaviour("tenant-slow-one", Behaviour::Succeed);
    stacks.finish_in_progress();
    stacks.set_behaviour("tenant-stuck-one", Behaviour::Hang);
    clock.set(start + Duration::seconds(90));
    reconciler
        .reconcile(&TenantKey::new("slow-one"))
        .await
        .expect("reconcile");
    assert_eq!(
        store.status(&TenantKey::new("slow-one")).unwrap().status,
        Status::Ready
    );

    let later = start + Duration::hours(2);
    count_fleet(store.as_ref(), later, DEFAULT_STUCK_AFTER)
        .await
        .expect("counts")
        .record();

    let mut out = Vec::new();
    collector.flush(&mut out).expect("flush");
    let lines: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is one JSON document"))
        .collect();
    let value_of = |metric: &str, dimension: Option<(&str, &str)>| -> Option<Value> {
        lines.iter().find_map(|doc| {
            let declared = &doc["_aws"]["CloudWatchMetrics"][0];
            assert_eq!(declared["Namespace"], "TenantControlPlaneTest");
            let names: Vec<&str> = declared["Metrics"]
                .as_array()?
                .iter()
                .filter_map(|m| m["Name"].as_str())
                .collect();
            let matches = names.contains(&metric)
                && dimension.is_none_or(|(k, v)| doc[k] == v)
                && (dimension.is_some() || declared["Dimensions"][0].as_array()?.is_empty());
            matches.then(|| doc[metric].clone())
        })
    };
    // Every status, zeros included.
    for (status, expected) in [
        ("ready", 3.0),
        ("creating", 1.0),
        ("updating", 0.0),
        ("deleting", 0.0),
        ("failed", 0.0),
        ("deleted", 0.0),
    ] {
        assert_eq!(
            value_of("TenantsByStatus", Some(("Status", status))),
            Some(Value::from(expected)),
            "{status}"
        );
    }
    assert_eq!(value_of("TenantsStuck", None), Some(Value::from(1.0)));
    assert_eq!(value_of("Tenants", None), Some(Value::from(4.0)));
    // Every finished create, in milliseconds, as a histogram value list: the fake finished two
    // at once, and the slow one after 90 seconds. The hanging one has not finished.
    assert_eq!(
        value_of("OperationDuration", Some(("Operation", "create"))),
        Some(serde_json::json!([0.0, 0.0, 90000.0]))
    );
}
