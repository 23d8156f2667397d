//! What is printed: human tables by default, the API's JSON with `--output json`.

use api::rollouts::RolloutDetails;
use api::templates::TemplateVersions;
use api::tenants::{Tenant, TenantView};
use comfy_table::{Table, presets};
use controlplane::rollout::preview::TenantPreview;
use model::audit::AuditEntry;
use model::rollout::{Counts, Selection};
use model::spec::{printable, reason_summary};
use serde::Serialize;
use serde_json::{Map, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

pub fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_header(header.to_vec());
    table
}

/// The table without the borders' padding at the line ends, and nothing a terminal would act
/// on: a control character a writer put in a SPEC (an escape sequence) is shown escaped.
fn render(table: &Table) -> String {
    table
        .to_string()
        .lines()
        .map(|line| printable(line.strip_prefix(' ').unwrap_or(line).trim_end()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// How much of a reason a listing shows (the tenant's own view shows all of it).
const LISTED_REASON_CHARS: usize = 100;

fn or_dash(text: Option<&str>) -> String {
    text.filter(|t| !t.is_empty()).unwrap_or("-").to_owned()
}

/// One account's instance of the bootstrap StackSet in one region: where, and its overrides
/// (the account's ExternalId; the roles, which are global, made in its first region only).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StackInstance {
    pub stack_set: String,
    pub organizational_unit: String,
    pub account: String,
    pub region: String,
    /// CloudFormation's `ParameterOverrides` shape.
    pub parameter_overrides: Vec<ParameterOverride>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ParameterOverride {
    pub parameter_key: String,
    pub parameter_value: String,
}

/// Each account's instances, one per region, with the ExternalId derived for it: the roles in
/// the first region (`CreateRoles=true`), the stack-event forwarding alone in the others.
pub fn stack_instances(
    ids: &controlplane::aws::sts::ExternalIds,
    accounts: &[String],
    ou: &str,
    regions: &[String],
    stack_set: &str,
) -> Vec<StackInstance> {
    let overrides = |pairs: [(&str, String); 2]| {
        pairs
            .into_iter()
            .map(|(key, value)| ParameterOverride {
                parameter_key: key.into(),
                parameter_value: value,
            })
            .collect()
    };
    accounts
        .iter()
        .flat_map(|account| {
            regions
                .iter()
                .enumerate()
                .map(move |(index, region)| StackInstance {
                    stack_set: stack_set.to_owned(),
                    organizational_unit: ou.to_owned(),
                    account: account.clone(),
                    region: region.clone(),
                    parameter_overrides: overrides([
                        ("ExternalId", ids.for_account(account)),
                        ("CreateRoles", (index == 0).to_string()),
                    ]),
                })
        })
        .collect()
}

/// The `aws cloudformation create-stack-instances` command of each instance.
pub fn stack_instance_commands(instances: &[StackInstance]) -> String {
    instances
        .iter()
        .map(|i| {
            format!(
                "aws cloudformation create-stack-instances --stack-set-name {} \\\n  \
                 --deployment-targets OrganizationalUnitIds={},Accounts={},AccountFilterType=INTERSECTION \\\n  \
                 --regions {} \\\n  \
                 --parameter-overrides {}",
                i.stack_set,
                i.organizational_unit,
                i.account,
                i.region,
                i.parameter_overrides
                    .iter()
                    .map(|p| format!(
                        "ParameterKey={},ParameterValue={}",
                        p.parameter_key, p.parameter_value
                    ))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `k=v, k=v` by key, with values as JSON would show them (strings bare). Sorted here: a JSON
/// object's order depends on serde_json's features, which other crates may turn on.
fn pairs(config: &Map<String, Value>) -> String {
    let mut entries: Vec<(&String, &Value)> = config.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
        .into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The template version a tenant runs: its pin, else what the fleet assigned it, and the
/// stack's when that differs (an update on its way, or one that failed).
fn template_of(view: &TenantView) -> String {
    let wanted = view
        .template_version
        .as_deref()
        .or(view.assigned_version.as_deref());
    let mut text = or_dash(wanted);
    if view.template_version.is_some() {
        text.push_str(" (pinned)");
    }
    if let Some(stack) = view.stack_template_version.as_deref()
        && Some(stack) != wanted
    {
        text.push_str(&format!(" (stack: {stack})"));
    }
    text
}

pub fn tenants(views: &[TenantView]) -> String {
    let mut out = table(&[
        "TENANT",
        "STATUS",
        "ACCOUNT",
        "REGION",
        "TEMPLATE",
        "UPDATED BY",
        "REASON",
    ]);
    for view in views {
        out.add_row(vec![
            view.tenant_id.clone(),
            view.status.clone(),
            or_dash(view.account_id.as_deref()),
            or_dash(view.region.as_deref()),
            template_of(view),
            or_dash(view.updated_by.as_deref()),
            or_dash(
                view.reason
                    .as_deref()
                    .map(|reason| reason_summary(reason, LISTED_REASON_CHARS))
                    .as_deref(),
            ),
        ]);
    }
    render(&out)
}

/// One tenant, field by field.
pub fn tenant(tenant: &Tenant) -> String {
    let view = &tenant.view;
    let mut out = Table::new();
    out.load_preset(presets::NOTHING);
    let mut row = |name: &str, value: String| {
        out.add_row(vec![name.to_owned(), value]);
    };
    row("tenant", view.tenant_id.clone());
    row("status", view.status.clone());
    if let Some(reason) = &view.reason {
        row("reason", reason.clone());
    }
    if view.retryable {
        row("retryable", "yes".into());
    }
    if let Some(at) = &view.next_attempt_at {
        row("next attempt", at.clone());
    }
    row("account", or_dash(view.account_id.as_deref()));
    row("region", or_dash(view.region.as_deref()));
    row("template", template_of(view));
    row("config", or_dash(Some(&pairs(&view.config))));
    if let Some(date) = &view.decommission_date {
        row("decommission", date.clone());
    }
    if let Some(retry) = &view.retry {
        row("retry", retry.to_string());
    }
    row("updated by", or_dash(view.updated_by.as_deref()));
    row("stack", or_dash(view.stack_status.as_deref()));
    for (name, value) in &view.outputs {
        row(&format!("output {name}"), value.clone());
    }
    row("status at", or_dash(view.status_updated_at.as_deref()));
    if let Some(policy) = &view.drift_policy {
        row("drift policy", policy.clone());
    }
    if let Some(drift) = &view.drift {
        row(
            "drift",
            format!("{} (checked {})", drift.summary(), drift.checked_at),
        );
    }
    row("etag", or_dash(tenant.etag.as_deref()));
    render(&out)
}

/// One tenant's last drift check: each drifted resource and property, and the revert.
pub fn drift(view: &TenantView) -> String {
    let Some(drift) = &view.drift else {
        return printable(&format!(
            "{}: not checked yet (the drift job checks settled stacks hourly, each at most once per DriftCheckIntervalHours)",
            view.tenant_id
        ));
    };
    let mut lines = vec![printable(&format!(
        "{}: {} (checked {})",
        view.tenant_id,
        drift.summary(),
        drift.checked_at
    ))];
    if drift.status != model::drift::DriftStatus::NotChecked
        && let Some(reason) = &drift.reason
    {
        lines.push(printable(&format!("note: {reason}")));
    }
    if !drift.resources.is_empty() {
        let mut out = table(&[
            "RESOURCE", "TYPE", "DRIFT", "PROPERTY", "EXPECTED", "ACTUAL",
        ]);
        for resource in &drift.resources {
            if resource.differences.is_empty() {
                out.add_row(vec![
                    resource.logical_id.clone(),
                    resource.resource_type.clone(),
                    resource.status.clone(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ]);
            }
            for d in &resource.differences {
                out.add_row(vec![
                    resource.logical_id.clone(),
                    resource.resource_type.clone(),
                    resource.status.clone(),
                    format!("{} ({})", d.path, d.kind),
                    d.expected.clone(),
                    d.actual.clone(),
                ]);
            }
        }
        lines.push(render(&out));
    }
    if drift.omitted_differences > 0 {
        lines.push(format!(
            "{} more property differences were left out to fit the STATUS row",
            drift.omitted_differences
        ));
    }
    if let Some(revert) = &drift.revert {
        lines.push(match (&revert.failed, revert.nothing_to_revert) {
            (Some(failed), _) => printable(&format!("revert refused: {failed}")),
            (None, true) => format!("revert at {}: nothing to revert", revert.started_at),
            (None, false) => format!("reverted at {}", revert.started_at),
        });
        for left in &revert.not_reverted {
            lines.push(printable(&format!(
                "  not reverted: {} {} ({})",
                left.logical_id, left.path, left.reason
            )));
        }
    }
    lines.join("\n")
}

/// Every tenant's last drift check, one line each.
pub fn fleet_drift(tenants: &[TenantView]) -> String {
    let mut out = table(&["TENANT", "DRIFT", "CHECKED", "SUMMARY"]);
    for view in tenants {
        let (status, checked, summary) = match &view.drift {
            Some(d) => (
                d.status.as_str().to_owned(),
                d.checked_at.clone(),
                reason_summary(&d.summary(), LISTED_REASON_CHARS),
            ),
            None => ("-".into(), "-".into(), "not checked yet".into()),
        };
        out.add_row(vec![view.tenant_id.clone(), status, checked, summary]);
    }
    render(&out)
}

pub fn events(entries: &[AuditEntry]) -> String {
    let mut out = table(&["AT", "ACTION", "ACTOR", "REQUESTED BY", "RESULT", "REASON"]);
    for entry in entries {
        out.add_row(vec![
            entry.at.clone(),
            entry.action.to_string(),
            entry.actor.clone(),
            or_dash(entry.requested_by.as_deref()),
            entry.result.clone(),
            or_dash(entry.reason.as_deref()),
        ]);
    }
    render(&out)
}

/// The one line that ends a write: the tenant and its status, with the reason if any.
pub fn summary(view: &TenantView) -> String {
    match &view.reason {
        Some(reason) if !reason.is_empty() => {
            printable(&format!("{}: {} ({reason})", view.tenant_id, view.status))
        }
        _ => printable(&format!("{}: {}", view.tenant_id, view.status)),
    }
}

pub fn template_versions(versions: &TemplateVersions) -> String {
    let mut out = table(&[
        "VERSION",
        "CURRENT",
        "SHA256",
        "PUBLISHED BY",
        "PUBLISHED AT",
        "DESCRIPTION",
    ]);
    for version in &versions.versions {
        out.add_row(vec![
            version.version.clone(),
            if version.version == versions.current {
                "*".into()
            } else {
                String::new()
            },
            version.sha256.chars().take(12).collect(),
            version.published_by.clone(),
            // A shipped version was never published: no time to show.
            if version.published_at == controlplane::template_source::SHIPPED_PUBLISHED_AT {
                "-".into()
            } else {
                version.published_at.clone()
            },
            or_dash(version.description.as_deref()),
        ]);
    }
    render(&out)
}

/// Tenants on their way (forward or back).
fn in_flight(counts: &Counts) -> u32 {
    counts.moving + counts.rolling_back
}

/// The progress line of a rollout (the progress bar's message).
pub fn progress_message(rollout: &RolloutDetails) -> String {
    let c = &rollout.counts;
    format!(
        "done {} · in flight {} · failed {} · remaining {} · state {}",
        c.done,
        in_flight(c),
        c.failed + c.rollback_failed,
        c.pending,
        rollout.state
    )
}

/// One line: the rollout, its state and versions, and why, if it says.
pub fn rollout_line(rollout: &RolloutDetails) -> String {
    let line = format!(
        "{}: {} ({} -> {})",
        rollout.id, rollout.state, rollout.previous_version, rollout.target_version
    );
    match &rollout.reason {
        Some(reason) if !reason.is_empty() => printable(&format!("{line}: {reason}")),
        _ => line,
    }
}

pub fn rollouts(rollouts: &[RolloutDetails]) -> String {
    let mut out = table(&[
        "ROLLOUT",
        "STATE",
        "FROM",
        "TO",
        "SETTLED",
        "FAILED",
        "CREATED BY",
        "CREATED AT",
    ]);
    for rollout in rollouts {
        out.add_row(vec![
            rollout.id.clone(),
            rollout.state.to_string(),
            rollout.previous_version.clone(),
            rollout.target_version.clone(),
            format!("{}/{}", rollout.settled(), rollout.counts.total),
            (rollout.counts.failed + rollout.counts.rollback_failed).to_string(),
            rollout.created_by.clone(),
            rollout.created_at.clone(),
        ]);
    }
    render(&out)
}

fn selection_text(selection: &Selection) -> String {
    if selection.is_whole_fleet() {
        return "the whole fleet".into();
    }
    let mut parts = Vec::new();
    if !selection.tenants.is_empty() {
        parts.push(format!("tenants {}", selection.tenants.join(",")));
    }
    for (key, value) in &selection.config {
        parts.push(format!("config {key}={value}"));
    }
    if let Some(percent) = selection.percent {
        parts.push(format!("{percent}% of them"));
    }
    parts.join(", ")
}

/// One rollout, field by field, then its waves (and members, if read).
pub fn rollout(rollout: &RolloutDetails) -> String {
    let mut fields = Table::new();
    fields.load_preset(presets::NOTHING);
    let mut row = |name: &str, value: String| {
        fields.add_row(vec![name.to_owned(), value]);
    };
    let o = &rollout.options;
    row("rollout", rollout.id.clone());
    row("state", rollout.state.to_string());
    if let Some(reason) = &rollout.reason {
        row("reason", reason.clone());
    }
    row(
        "version",
        format!("{} -> {}", rollout.previous_version, rollout.target_version),
    );
    row("tenants", selection_text(&rollout.selection));
    row(
        "options",
        format!(
            "canary {}, bake {}s, growth x{}, wave bake {}s, max concurrency {}, \
             failure tolerance {}, auto rollback {}",
            o.canary,
            o.bake_seconds,
            o.growth,
            o.wave_bake_seconds,
            o.max_concurrency,
            o.failure_tolerance,
            if o.auto_rollback { "on" } else { "off" }
        ),
    );
    row("progress", progress_message(rollout));
    let c = &rollout.counts;
    row(
        "counts",
        format!(
            "{} tenants: {} pending, {} moving, {} done, {} failed, {} skipped, \
             {} rolling back, {} rolled back, {} rollback failed",
            c.total,
            c.pending,
            c.moving,
            c.done,
            c.failed,
            c.skipped,
            c.rolling_back,
            c.rolled_back,
            c.rollback_failed
        ),
    );
    row(
        "created",
        format!("{} by {}", rollout.created_at, rollout.created_by),
    );
    row("updated", rollout.updated_at.clone());
    let mut text = render(&fields);
    if !rollout.waves.is_empty() {
        let mut waves = table(&[
            "WAVE",
            "TENANTS",
            "PENDING",
            "IN FLIGHT",
            "DONE",
            "FAILED",
            "SKIPPED",
        ]);
        for wave in &rollout.waves {
            let c = &wave.counts;
            waves.add_row(vec![
                if wave.wave == 0 {
                    "0 (canary)".to_owned()
                } else {
                    wave.wave.to_string()
                },
                c.total.to_string(),
                c.pending.to_string(),
                in_flight(c).to_string(),
                c.done.to_string(),
                (c.failed + c.rollback_failed).to_string(),
                c.skipped.to_string(),
            ]);
        }
        text.push_str("\n\n");
        text.push_str(&render(&waves));
    }
    if let Some(members) = &rollout.members {
        let mut out = table(&["TENANT", "STATE", "FROM", "REASON"]);
        for member in members {
            out.add_row(vec![
                member.tenant_id.clone(),
                serde_json::to_value(member.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                member.from_version.clone(),
                or_dash(member.reason.as_deref()),
            ]);
        }
        text.push_str("\n\n");
        text.push_str(&render(&out));
    }
    text
}

/// `doctor`'s findings: each row's key, what is wrong and how to fix it; then a count.
pub fn row_problems(findings: &crate::doctor::Findings) -> String {
    let mut text = String::new();
    for found in &findings.problems {
        text.push_str(&format!(
            "pk {:?} sk {:?}: {}\n  fix: {}\n",
            found.pk, found.sk, found.problem, found.fix
        ));
    }
    let rows = findings.rows;
    let table = &findings.table;
    match findings.problems.len() {
        0 => text.push_str(&format!(
            "{rows} row(s) of {table} read: every tenant row keeps the key contract"
        )),
        problems => text.push_str(&format!(
            "{rows} row(s) of {table} read: {problems} problem(s) with the key contract \
             (pk \"TENANT#<tenant_id>\", sk \"SPEC\")"
        )),
    }
    text
}

/// The previews of a rollout to `target`: per tenant its versions and counts
/// (`+added ~modified !replaced ?may-replace -removed`), then each resource that is or may be
/// replaced, by name.
pub fn previews(previews: &[TenantPreview], target: &str) -> String {
    let mut out = table(&["TENANT", "VERSION", "CHANGES"]);
    let mut replacing = 0;
    let mut maybe_replacing = 0;
    for preview in previews {
        let versions = format!("{} -> {target}", preview.from_version);
        if let Some(error) = &preview.error {
            out.add_row(vec![
                preview.tenant_id.clone(),
                versions,
                format!("cannot preview: {error}"),
            ]);
            continue;
        }
        let counts = preview.summary();
        out.add_row(vec![
            preview.tenant_id.clone(),
            versions,
            format!(
                "+{} ~{} !{} ?{} -{}",
                counts.added, counts.modified, counts.replaced, counts.may_replace, counts.removed
            ),
        ]);
        if counts.replaced > 0 {
            replacing += 1;
        } else if counts.may_replace > 0 {
            maybe_replacing += 1;
        }
        for change in &preview.changes {
            let how = match (change.action.as_str(), change.replacement.as_deref()) {
                ("Add" | "Remove", _) | (_, Some("False")) => continue,
                (_, Some("True")) => "replaced",
                (_, Some("Conditional")) => "may be replaced",
                // moto, for one, never says.
                (_, _) => "may be replaced (CloudFormation did not say)",
            };
            out.add_row(vec![
                String::new(),
                String::new(),
                format!("! {} ({}) {how}", change.logical_id, change.resource_type),
            ]);
        }
    }
    let mut text = render(&out);
    text.push_str(&format!(
        "\n\n{} tenant(s) previewed; {replacing} would have resources replaced",
        previews.len()
    ));
    if maybe_replacing > 0 {
        text.push_str(&format!(", {maybe_replacing} may"));
    }
    text.push_str("\n(+ added, ~ modified in place, ! replaced, ? may be replaced, - removed)");
    text
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_modify_moto_leaves_unanswered_shows_as_may_replace() {
        // A change set as moto describes it: `Replacement` left out.
        let preview: TenantPreview = serde_json::from_value(json!({
            "tenant_id": "acme",
            "from_version": "v1",
            "changes": [{
                "action": "Modify",
                "logical_id": "JobsQueue",
                "resource_type": "AWS::SQS::Queue"
            }]
        }))
        .expect("a preview");
        let text = previews(&[preview], "v2");
        for expected in [
            "+0 ~0 !0 ?1 -0",
            "! JobsQueue (AWS::SQS::Queue) may be replaced (CloudFormation did not say)",
            "1 tenant(s) previewed; 0 would have resources replaced, 1 may",
        ] {
            assert!(text.contains(expected), "{expected:?} in\n{text}");
        }
    }

    #[test]
    fn each_account_gets_its_own_stack_instance_and_external_id() {
        let ids = controlplane::aws::sts::ExternalIds::new(b"k".to_vec());
        let accounts = ["111111111111".to_owned(), "222222222222".to_owned()];
        let regions = ["eu-west-1".to_owned(), "us-east-1".to_owned()];
        let instances = stack_instances(&ids, &accounts, "ou-ab12-cdef3456", &regions, "boot");
        assert_eq!(instances.len(), 4, "one per account and region");
        assert_eq!(
            instances[2].parameter_overrides[0].parameter_value,
            ids.for_account("222222222222")
        );
        // The roles are global: made in each account's first region only.
        let creates: Vec<(&str, &str, &str)> = instances
            .iter()
            .map(|i| {
                (
                    i.account.as_str(),
                    i.region.as_str(),
                    i.parameter_overrides[1].parameter_value.as_str(),
                )
            })
            .collect();
        assert_eq!(
            creates,
            [
                ("111111111111", "eu-west-1", "true"),
                ("111111111111", "us-east-1", "false"),
                ("222222222222", "eu-west-1", "true"),
                ("222222222222", "us-east-1", "false"),
            ]
        );
        let json: serde_json::Value = serde_json::from_str(&json(&instances)).unwrap();
        assert_eq!(
            json[0]["parameter_overrides"][0],
            serde_json::json!({"ParameterKey": "ExternalId", "ParameterValue": ids.for_account("111111111111")})
        );
        let commands = stack_instance_commands(&instances);
        assert_eq!(commands.matches("create-stack-instances").count(), 4);
        assert!(
            commands.contains("Accounts=111111111111,AccountFilterType=INTERSECTION")
                && commands.contains("--regions us-east-1")
                && commands.contains("ParameterKey=CreateRoles,ParameterValue=false"),
            "{commands}"
        );
    }

    fn view() -> TenantView {
        serde_json::from_value(json!({
            "tenant_id": "acme", "account_id": "222222222222", "config": {"player_count": 5, "difficulty": "hard"},
            "status": "failed", "reason": "config.player_count: must be a Number", "retryable": false,
            "outputs": {"JobsQueueUrl": "http://q"}, "updated_by": "ops"
        }))
        .unwrap()
    }

    #[test]
    fn the_template_column_shows_the_pin_or_the_assignment_and_a_stack_on_another_version() {
        let mut v = view();
        v.assigned_version = Some("v2".into());
        v.stack_template_version = Some("v1".into());
        assert_eq!(template_of(&v), "v2 (stack: v1)");
        v.template_version = Some("v1".into());
        assert_eq!(template_of(&v), "v1 (pinned)");
        v.template_version = None;
        v.stack_template_version = Some("v2".into());
        assert_eq!(template_of(&v), "v2");
    }

    #[test]
    fn nothing_a_writer_put_in_a_spec_reaches_the_terminal_as_a_control_sequence() {
        let mut hostile = view();
        hostile.reason = Some(format!(
            "invalid SPEC: {}",
            (0..300)
                .map(|i| format!("config.k{i}: \u{1b}]0;owned\u{7} unknown"))
                .collect::<Vec<_>>()
                .join("; ")
        ));
        let listed = tenants(std::slice::from_ref(&hostile));
        assert!(
            !listed.chars().any(|c| c.is_control() && c != '\n'),
            "{listed:?}"
        );
        // The listing summarises; one line per tenant.
        assert_eq!(listed.lines().count(), 2, "{listed}");
        assert!(listed.contains("more"), "{listed}");
        let line = summary(&hostile);
        assert!(!line.chars().any(char::is_control), "{line:?}");
        assert!(line.contains("\\u{1b}]0;owned"), "{line}");
    }

    #[test]
    fn tables_show_each_tenant_and_each_field() {
        let list = tenants(&[view()]);
        assert!(
            list.starts_with("TENANT  ") && !list.lines().any(|l| l.ends_with(' ')),
            "{list:?}"
        );
        assert!(
            list.contains("TENANT") && list.contains("acme") && list.contains("failed"),
            "{list}"
        );
        let one = tenant(&Tenant {
            view: view(),
            etag: Some("\"e1\"".into()),
        });
        assert!(one.contains("difficulty=hard, player_count=5"), "{one}");
        assert!(
            one.contains("output JobsQueueUrl") && one.contains("\"e1\""),
            "{one}"
        );
        assert_eq!(
            summary(&view()),
            "acme: failed (config.player_count: must be a Number)"
        );
    }

    fn rollout_details() -> RolloutDetails {
        serde_json::from_value(json!({
            "id": "r-20261123T101500Z-abc123", "target_version": "v2", "previous_version": "v1",
            "selection": {"config": {"tier": "gold"}},
            "options": {"canary": "1", "bake_seconds": 600, "growth": 2, "wave_bake_seconds": 0,
                        "max_concurrency": "10%", "failure_tolerance": "0", "auto_rollback": true},
            "state": "running", "created_by": "ops", "created_at": "2026-11-23T10:15:00.000Z",
            "updated_at": "2026-11-23T10:25:00.000Z", "planned": 7,
            "counts": {"total": 7, "pending": 3, "moving": 2, "done": 1, "failed": 1, "skipped": 0,
                       "rolling_back": 0, "rolled_back": 0, "rollback_failed": 0},
            "waves": [
                {"wave": 0, "counts": {"total": 1, "pending": 0, "moving": 0, "done": 1, "failed": 0,
                 "skipped": 0, "rolling_back": 0, "rolled_back": 0, "rollback_failed": 0}},
                {"wave": 1, "counts": {"total": 2, "pending": 0, "moving": 1, "done": 0, "failed": 1,
                 "skipped": 0, "rolling_back": 0, "rolled_back": 0, "rollback_failed": 0}}
            ],
            "members": [
                {"tenant_id": "acme", "state": "done", "from_version": "v1",
                 "updated_at": "2026-11-23T10:20:00.000Z"},
                {"tenant_id": "globex", "state": "failed", "from_version": "v1",
                 "reason": "JobsQueue: limit exceeded", "updated_at": "2026-11-23T10:24:00.000Z"}
            ]
        }))
        .expect("a rollout as the API sends it")
    }

    #[test]
    fn a_rollout_shows_its_progress_waves_and_members() {
        let rollout = rollout_details();
        assert_eq!(
            progress_message(&rollout),
            "done 1 · in flight 2 · failed 1 · remaining 3 · state running"
        );
        assert_eq!(rollout.settled(), 2);
        assert_eq!(
            rollout_line(&rollout),
            "r-20261123T101500Z-abc123: running (v1 -> v2)"
        );
        let text = super::rollout(&rollout);
        for expected in [
            "config tier=gold",
            "canary 1, bake 600s, growth x2",
            "max concurrency 10%",
            "0 (canary)",
            "WAVE",
            "globex",
            "JobsQueue: limit exceeded",
        ] {
            assert!(text.contains(expected), "{expected:?} in\n{text}");
        }
        assert!(!text.lines().any(|l| l.ends_with(' ')), "{text:?}");
        let listing = rollouts(std::slice::from_ref(&rollout));
        assert!(
            listing.starts_with("ROLLOUT") && listing.contains("2/7"),
            "{listing}"
        );
        // JSON is the API's document, and reads back as the same rollout.
        let round_trip: RolloutDetails = serde_json::from_str(&json(&rollout)).unwrap();
        assert_eq!(round_trip, rollout);
    }

    #[test]
    fn template_versions_mark_the_current_one() {
        let versions: TemplateVersions = serde_json::from_value(json!({
            "current": "v2",
            "versions": [
                {"version": "v1", "sha256": "a".repeat(64), "published_by": "control-plane",
                 "published_at": "1970-01-01T00:00:00.000Z", "description": "shipped"},
                {"version": "v2", "sha256": "b".repeat(64), "published_by": "ops",
                 "published_at": "2026-11-23T10:00:00.000Z"}
            ]
        }))
        .unwrap();
        let text = template_versions(&versions);
        let v2 = text
            .lines()
            .find(|l| l.starts_with("v2"))
            .expect("v2's row");
        assert!(v2.contains(" * ") && v2.contains(&"b".repeat(12)), "{text}");
        assert!(!v2.contains(&"b".repeat(13)), "{text}");
        let v1 = text
            .lines()
            .find(|l| l.starts_with("v1"))
            .expect("v1's row");
        assert!(!v1.contains('*') && v1.contains("shipped"), "{text}");
        // Shipped, never published: no time, not the epoch.
        assert!(!v1.contains("1970"), "{text}");
        assert!(v2.contains("2026-11-23T10:00:00.000Z"), "{text}");
    }
}
