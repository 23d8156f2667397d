//! Rows of the SPEC table that look like a tenant's but break the key contract (README, "Table
//! contract": `pk = "TENANT#<tenant_id>"`, `sk = "SPEC"`). The control plane never sees such a
//! row as the writer meant it: a lowercase `tenant#acme` or a `spec` sort key is no tenant at
//! all, and a SPEC without its `tenant_id` is missing from every listing. So nothing answers the
//! writer; `tenantctl doctor` finds them with these checks, built on the keys' own rules
//! ([`TenantKey::from_pk`], [`TenantSpec::parse`]).

use serde::{Deserialize, Serialize};
use serde_dynamo::{AttributeValue, Item};

use crate::spec::{PK_PREFIX, SPEC_SK, STATUS_SK, TenantKey, TenantSpec};

/// One way a row breaks the key contract, and how to repair it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowProblem {
    pub pk: String,
    pub sk: String,
    pub problem: String,
    pub fix: String,
}

/// The attributes that make a row look like a tenant's desired state.
const TENANT_FIELDS: &[&str] = &["tenant_id", "account_id", "config"];

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(text)) => Some(text),
        _ => None,
    }
}

/// What is wrong with `item`, a row of the SPEC table; nothing for a valid SPEC's keys, and
/// nothing for a row that does not look like a tenant's (no tenant-like key, no tenant field).
pub fn spec_table_row_problems(item: &Item) -> Vec<RowProblem> {
    // The table declares both keys strings: a row always has them.
    let (Some(pk), Some(sk)) = (text(item, "pk"), text(item, "sk")) else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    let mut problem = |problem: String, fix: String| {
        problems.push(RowProblem {
            pk: pk.to_owned(),
            sk: sk.to_owned(),
            problem,
            fix,
        });
    };
    let tenant_pk = pk.trim().to_ascii_uppercase().starts_with(PK_PREFIX);
    let spec_sk = [SPEC_SK, STATUS_SK]
        .iter()
        .any(|known| sk.trim().eq_ignore_ascii_case(known));
    let tenant_fields: Vec<&str> = TENANT_FIELDS
        .iter()
        .copied()
        .filter(|field| item.contains_key(*field))
        .collect();
    if !tenant_pk && !spec_sk && tenant_fields.is_empty() {
        return problems;
    }
    // The tenant the writer most likely meant: the pk's suffix, else the row's tenant_id.
    let meant = pk
        .trim()
        .get(PK_PREFIX.len()..)
        .filter(|_| tenant_pk)
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .or_else(|| text(item, "tenant_id").map(str::trim))
        .unwrap_or("<tenant_id>");
    let rewrite = format!(
        "put the row again under pk \"{PK_PREFIX}{meant}\", sk \"{SPEC_SK}\" (e.g. `tenantctl \
         tenants create {meant} ...`), then delete this one"
    );

    if pk.chars().any(char::is_whitespace) {
        problem(format!("pk {pk:?} holds whitespace"), rewrite.clone());
    }
    if !pk.starts_with(PK_PREFIX) {
        if tenant_pk {
            problem(
                format!("pk {pk:?} must start with \"{PK_PREFIX}\" exactly (uppercase)"),
                rewrite.clone(),
            );
        } else {
            problem(
                format!(
                    "pk {pk:?} lacks the \"{PK_PREFIX}\" prefix, yet the row holds tenant \
                     fields ({})",
                    tenant_fields.join(", ")
                ),
                rewrite.clone(),
            );
        }
    }
    if sk == STATUS_SK {
        problem(
            "a STATUS row in the SPEC table: ignored (the control plane keeps STATUS in the \
             control-plane table)"
                .into(),
            "delete it: the tenant's next reconcile records its STATUS where it belongs".into(),
        );
    } else if sk != SPEC_SK {
        if spec_sk {
            problem(
                format!("sk {sk:?} must be exactly \"{SPEC_SK}\" (uppercase, no spaces)"),
                rewrite.clone(),
            );
        } else {
            problem(
                format!(
                    "sk {sk:?} is unknown: a tenant's row in the SPEC table has sk \"{SPEC_SK}\""
                ),
                format!("{rewrite}, if it was meant as the tenant's SPEC; else delete it"),
            );
        }
    }
    // A SPEC under a proper key: its tenant_id must name that key (the `tenants` index lists
    // SPECs by it). Its other fields are the STATUS reason's business.
    if sk == SPEC_SK
        && let Some(key) = TenantKey::from_pk(pk)
        && let Err(errors) = TenantSpec::parse(&key, item)
    {
        for error in errors.iter().filter(|e| e.field == "tenant_id") {
            let fix = if key.as_str().trim() == key.as_str()
                && crate::spec::check_tenant_id(key.as_str()).is_ok()
            {
                format!(
                    "set tenant_id to {:?} (`tenantctl tenants get {}` shows the tenant)",
                    key.as_str(),
                    key.as_str()
                )
            } else {
                format!(
                    "tenant ids are 3-40 of a-z, 0-9 and '-', starting with a letter: create the \
                     tenant under a valid id, then `tenantctl tenants delete {}`",
                    key.as_str()
                )
            };
            problem(format!("tenant_id: {}", error.message), fix);
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn problems_of(row: serde_json::Value) -> Vec<String> {
        spec_table_row_problems(&crate::item_json::item_of_json(&row))
            .into_iter()
            .map(|p| p.problem)
            .collect()
    }

    #[test]
    fn a_valid_spec_and_rows_of_no_tenant_are_clean() {
        assert!(
            problems_of(
                json!({"pk": "TENANT#acme", "sk": "SPEC", "tenant_id": "acme",
                               "account_id": "111111111111"})
            )
            .is_empty()
        );
        // Other fields at fault are for the STATUS reason, not the key contract.
        assert!(
            problems_of(
                json!({"pk": "TENANT#acme", "sk": "SPEC", "tenant_id": "acme",
                               "account_id": "12"})
            )
            .is_empty()
        );
        assert!(problems_of(json!({"pk": "SOMETHING", "sk": "ELSE", "note": "x"})).is_empty());
    }

    #[test]
    fn each_break_of_the_key_contract_is_named() {
        let cases = [
            (
                json!({"pk": "tenant#acme", "sk": "SPEC", "tenant_id": "acme"}),
                vec!["must start with \"TENANT#\" exactly"],
            ),
            (
                json!({"pk": "TENANT#acme", "sk": "spec", "tenant_id": "acme"}),
                vec!["sk \"spec\" must be exactly \"SPEC\""],
            ),
            (
                json!({"pk": "TENANT#acme", "sk": "SPEC", "account_id": "111111111111"}),
                vec!["tenant_id: is required"],
            ),
            (
                json!({"pk": "TENANT#acme", "sk": "SPEC", "tenant_id": "globex"}),
                vec!["tenant_id: must equal the pk suffix"],
            ),
            (
                json!({"pk": "TENANT#t1", "sk": "SPEC", "tenant_id": "t1"}),
                vec!["tenant_id: must be 3-40"],
            ),
            (
                json!({"pk": "TENANT# acme", "sk": "SPEC", "tenant_id": "acme"}),
                vec!["holds whitespace", "tenant_id: must equal the pk suffix"],
            ),
            (
                json!({"pk": "TENANT#acme", "sk": "CONFIG", "tenant_id": "acme"}),
                vec!["sk \"CONFIG\" is unknown"],
            ),
            (
                json!({"pk": "acme", "sk": "SPEC", "tenant_id": "acme"}),
                vec!["lacks the \"TENANT#\" prefix, yet the row holds tenant fields (tenant_id)"],
            ),
            (
                json!({"pk": "TENANT#acme", "sk": "STATUS", "status": "ready"}),
                vec!["a STATUS row in the SPEC table"],
            ),
        ];
        for (row, expected) in cases {
            let found = problems_of(row.clone());
            assert_eq!(found.len(), expected.len(), "{row}: {found:?}");
            for (found, expected) in found.iter().zip(expected) {
                assert!(
                    found.contains(expected),
                    "{row}: {found:?} names {expected:?}"
                );
            }
        }
    }

    #[test]
    fn the_fix_names_the_key_meant() {
        let found = spec_table_row_problems(&crate::item_json::item_of_json(
            &json!({"pk": "tenant#acme", "sk": "spec", "tenant_id": "acme"}),
        ));
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].fix.contains("pk \"TENANT#acme\", sk \"SPEC\""),
            "{found:?}"
        );
    }
}
