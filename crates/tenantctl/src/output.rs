//! What is printed: human tables by default, the API's JSON with `--output json`.

use api::tenants::{Tenant, TenantView};
use comfy_table::{Table, presets};
use controlplane::audit::AuditEntry;
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

/// The table without the borders' padding at the line ends.
fn render(table: &Table) -> String {
    table
        .to_string()
        .lines()
        .map(|line| line.strip_prefix(' ').unwrap_or(line).trim_end())
        .collect::<Vec<_>>()
        .join("\n")
}

fn or_dash(text: Option<&str>) -> String {
    text.filter(|t| !t.is_empty()).unwrap_or("-").to_owned()
}

/// `k=v, k=v` with values as JSON would show them (strings bare).
fn pairs(config: &Map<String, Value>) -> String {
    config
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
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
            or_dash(view.template_version.as_deref()),
            or_dash(view.updated_by.as_deref()),
            or_dash(view.reason.as_deref()),
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
    row("template", or_dash(view.template_version.as_deref()));
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
    row("etag", or_dash(tenant.etag.as_deref()));
    render(&out)
}

pub fn events(entries: &[AuditEntry]) -> String {
    let mut out = table(&["AT", "ACTION", "ACTOR", "REQUESTED BY", "RESULT", "REASON"]);
    for entry in entries {
        out.add_row(vec![
            entry.at.clone(),
            entry.action.clone(),
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
            format!("{}: {} ({reason})", view.tenant_id, view.status)
        }
        _ => format!("{}: {}", view.tenant_id, view.status),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn view() -> TenantView {
        serde_json::from_value(json!({
            "tenant_id": "acme", "account_id": "222222222222", "config": {"player_count": 5, "difficulty": "hard"},
            "status": "failed", "reason": "config.player_count: must be a Number", "retryable": false,
            "outputs": {"JobsQueueUrl": "http://q"}, "updated_by": "ops"
        }))
        .unwrap()
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
}
