//! `tenantctl tenants ...`: list, get, create, update, delete, retry, events, watch.

use api::tenants::{EventsQuery, ListQuery, Page, Tenant};

use super::print;
use crate::backend::Backend;
use crate::cli::{TenantsCommand, Wait};
use crate::failure::{Exit, Failure};
use crate::follow;
use crate::output::{self, Format};
use crate::request::{CreateRequest, UpdateRequest};

pub(crate) async fn tenants(
    backend: &Backend,
    command: TenantsCommand,
    format: Format,
) -> Result<Exit, Failure> {
    match command {
        TenantsCommand::List {
            status,
            limit,
            next,
            all,
        } => {
            let page = pages(all, next, |next| {
                let query = ListQuery {
                    limit,
                    next,
                    status: status.clone(),
                };
                async move { backend.list(&query).await }
            })
            .await?;
            show_page(&page, format, output::tenants);
            Ok(Exit::Ok)
        }
        TenantsCommand::Get { tenant } => {
            let found = backend.get(&tenant).await?;
            match format {
                Format::Json => print(&output::json(&found.view)),
                Format::Table => print(&output::tenant(&found)),
            }
            Ok(Exit::Ok)
        }
        TenantsCommand::Drift {
            tenant: Some(tenant),
            ..
        } => {
            let found = backend.get(&tenant).await?;
            match format {
                Format::Json => print(&output::json(&found.view.drift)),
                Format::Table => print(&output::drift(&found.view)),
            }
            Ok(Exit::Ok)
        }
        TenantsCommand::Drift {
            tenant: None,
            drifted,
        } => {
            let page = pages(true, None, |next| {
                let query = ListQuery {
                    limit: Some(100),
                    next,
                    status: None,
                };
                async move { backend.list(&query).await }
            })
            .await?;
            let tenants: Vec<_> = page
                .items
                .into_iter()
                .filter(|t| {
                    !drifted
                        || t.drift
                            .as_ref()
                            .is_some_and(|d| d.status == model::drift::DriftStatus::Drifted)
                })
                .collect();
            match format {
                Format::Json => print(&output::json(
                    &tenants
                        .iter()
                        .map(|t| serde_json::json!({"tenant_id": t.tenant_id, "drift": t.drift}))
                        .collect::<Vec<_>>(),
                )),
                Format::Table => print(&output::fleet_drift(&tenants)),
            }
            Ok(Exit::Ok)
        }
        TenantsCommand::Create {
            tenant,
            account,
            region,
            config,
            template_version,
            decommission_date,
            drift_policy,
            idempotency_key,
            wait,
        } => {
            let request = CreateRequest {
                tenant_id: tenant,
                account_id: account,
                region,
                config: config.config(),
                template_version,
                decommission_date,
                drift_policy,
            };
            let created = backend
                .create(&request.body(), idempotency_key.as_deref())
                .await?;
            written(backend, created, wait, format, false).await
        }
        TenantsCommand::Update {
            tenant,
            config,
            unset_config,
            template_version,
            decommission_date,
            clear_decommission_date,
            account,
            region,
            drift_policy,
            clear_drift_policy,
            if_match,
            wait,
        } => {
            let request = UpdateRequest {
                drift_policy: if clear_drift_policy {
                    Some(None)
                } else {
                    drift_policy.map(Some)
                },
                set_config: config.config(),
                unset_config,
                template_version,
                decommission_date: if clear_decommission_date {
                    Some(None)
                } else {
                    decommission_date.map(Some)
                },
                account_id: account,
                region,
            };
            let patch = request.patch().map_err(Failure::Usage)?;
            let updated = match if_match {
                Some(etag) => backend.patch(&tenant, &patch, &etag).await?,
                // Read just before: the ETag covers what the control plane records too, so a
                // status written between the read and the change makes it stale (412). The
                // change does not depend on what was read, so it is read and sent again.
                None => {
                    let mut attempt = 0;
                    loop {
                        let etag = backend.get(&tenant).await?.etag.ok_or_else(|| {
                            Failure::from(api::problem::Problem::not_found(&tenant))
                        })?;
                        match backend.patch(&tenant, &patch, &etag).await {
                            Err(Failure::Problem(p)) if p.status == 412 && attempt < 3 => {
                                attempt += 1;
                            }
                            other => break other?,
                        }
                    }
                }
            };
            written(backend, updated, wait, format, false).await
        }
        TenantsCommand::Delete {
            tenant,
            if_match,
            wait,
        } => {
            let deleted = backend.delete(&tenant, if_match.as_deref()).await?;
            written(backend, deleted, wait, format, true).await
        }
        TenantsCommand::Retry { tenant, wait } => {
            let retried = backend.retry(&tenant).await?;
            written(backend, retried, wait, format, false).await
        }
        TenantsCommand::Events {
            tenant,
            limit,
            next,
            all,
        } => {
            let tenant = tenant.as_str();
            let page = pages(all, next, |next| {
                let query = EventsQuery { limit, next };
                async move { backend.events(tenant, &query).await }
            })
            .await?;
            show_page(&page, format, output::events);
            Ok(Exit::Ok)
        }
    }
}

/// One page from `first`, or (`all`) every page from there on, as one.
pub(crate) async fn pages<T, F, Fut>(
    all: bool,
    first: Option<String>,
    fetch: F,
) -> Result<Page<T>, Failure>
where
    F: Fn(Option<String>) -> Fut,
    Fut: Future<Output = Result<Page<T>, Failure>>,
{
    let page = fetch(first).await?;
    if !all {
        return Ok(page);
    }
    let mut items = page.items;
    let mut next = page.next;
    while let Some(token) = next {
        let more = fetch(Some(token)).await?;
        items.extend(more.items);
        next = more.next;
    }
    Ok(Page { items, next: None })
}

pub(crate) fn show_page<T: serde::Serialize>(
    page: &Page<T>,
    format: Format,
    table: fn(&[T]) -> String,
) {
    match format {
        Format::Json => print(&output::json(page)),
        Format::Table => {
            print(&table(&page.items));
            if let Some(next) = &page.next {
                eprintln!("more: add --next {next} (or --all)");
            }
        }
    }
}

/// After a write: the answer, or (`--wait`) the final status and reason.
pub(crate) async fn written(
    backend: &Backend,
    tenant: Tenant,
    wait: Wait,
    format: Format,
    deleting: bool,
) -> Result<Exit, Failure> {
    let view = if wait.wait {
        follow::follow(backend, &tenant.view.tenant_id, wait.timeout, deleting).await?
    } else {
        tenant.view
    };
    match format {
        Format::Json => print(&output::json(&view)),
        Format::Table => print(&output::summary(&view)),
    }
    Ok(if wait.wait && view.status == "failed" {
        Exit::Refused
    } else {
        Exit::Ok
    })
}
