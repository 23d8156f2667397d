//! The scheduled reconciler with fakes: it alone converges tenants whose triggers were all lost.

mod common;

use controlplane::ports::StackError;
use controlplane::testing::World;
use controlplane::triggers::sweep::sweep;
use model::spec::TenantKey;
use model::status::Status;

use common::{event, seed_image};

#[tokio::test]
async fn a_spec_written_while_the_trigger_was_off_is_provisioned_and_an_orphan_removed() {
    let World {
        store,
        stacks,
        reconciler,
        ..
    } = World::builder().build();
    let tenant = TenantKey::new("gs1234");
    // Written directly; no stream record is ever handled.
    store.put_spec(&tenant, seed_image());
    let report = sweep(store.as_ref(), &reconciler, 4).await.expect("sweep");
    assert_eq!((report.tenants, report.converged), (1, 1));
    assert_eq!(store.status(&tenant).map(|s| s.status), Some(Status::Ready));
    assert_eq!(stacks.live_stacks().len(), 1);

    // The SPEC goes while the trigger is off: the next sweep removes the orphaned stack.
    store.delete_spec(&tenant);
    sweep(store.as_ref(), &reconciler, 4).await.expect("sweep");
    assert_eq!(
        store.status(&tenant).map(|s| s.status),
        Some(Status::Deleted)
    );
    assert!(stacks.live_stacks().is_empty());
    // Converged: another sweep changes nothing.
    let writes = store.status_writes();
    sweep(store.as_ref(), &reconciler, 4).await.expect("sweep");
    assert_eq!(store.status_writes(), writes);
}

/// A quick retry is a retry now, in every trigger: the sweep runs it in its next pass over the
/// page, in the same invocation, instead of leaving it for the sweep five minutes later.
#[tokio::test]
async fn a_failure_that_may_heal_is_retried_within_the_same_sweep() {
    let World {
        store,
        stacks,
        reconciler,
        ..
    } = World::builder().build();
    let tenant = TenantKey::new("gs1234");
    store.put_spec(&tenant, seed_image());
    stacks.fail_next(
        "create",
        StackError::Transient("Throttling: Rate exceeded".into()),
    );
    let report = sweep(store.as_ref(), &reconciler, 4).await.expect("sweep");
    assert_eq!(
        (report.tenants, report.converged, report.retrying),
        (1, 1, 0)
    );
    assert_eq!(store.status(&tenant).map(|s| s.status), Some(Status::Ready));
    // The throttled call never reached CloudFormation: the one it saw is the retry's.
    assert_eq!(stacks.count_calls("create"), 1, "{:?}", stacks.calls());
    let retried = store.audit(&tenant);
    assert!(
        retried.iter().any(|e| e.result == "retrying"),
        "the failure was recorded before the retry: {retried:?}"
    );
}

/// Each scheduled sample is what EventBridge sends for a Schedule event template.yaml declares.
#[test]
fn the_scheduled_event_samples_match_the_schedules_in_template_yaml() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
    let template: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(path).expect("template.yaml"))
            .expect("template.yaml parses");
    for (sample, function, schedule) in [
        (
            "scheduled-reconcile.json",
            "ReconcilerFunction",
            "Every5Minutes",
        ),
        (
            "scheduled-decommission.json",
            "DecommissionFunction",
            "Hourly",
        ),
        ("scheduled-metrics.json", "MetricsFunction", "EveryMinute"),
        ("scheduled-rollout.json", "RolloutFunction", "EveryMinute"),
    ] {
        let scheduled = event(sample);
        assert_eq!(scheduled["detail-type"], "Scheduled Event", "{sample}");
        assert_eq!(scheduled["source"], "aws.events", "{sample}");
        let rule = scheduled["resources"][0].as_str().unwrap_or_default();
        assert!(
            rule.ends_with(&format!("{function}{schedule}")),
            "{sample}: {rule}"
        );
        let declared = &template["Resources"][function]["Properties"]["Events"][schedule]["Type"];
        assert_eq!(declared.as_str(), Some("Schedule"), "{function}.{schedule}");
    }
    // The drift job's schedule sends its Input as the whole event (no EventBridge envelope):
    // the sample is exactly that, and it is what the function dispatches on.
    let drift = &template["Resources"]["ReconcilerFunction"]["Properties"]["Events"]["DriftHourly"];
    assert_eq!(drift["Type"].as_str(), Some("Schedule"));
    let input: serde_json::Value =
        serde_json::from_str(drift["Properties"]["Input"].as_str().expect("an Input"))
            .expect("the Input is JSON");
    assert_eq!(input, event("scheduled-drift.json"));
    assert_eq!(input["job"], "drift");
}
