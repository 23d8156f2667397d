//! `tenantctl doctor`: the SPEC table's rows that look like a tenant's but break the key
//! contract. The control plane never answers such a write (no STATUS, no listing), so this is
//! where a writer finds out.

use controlplane::aws::dynamodb::DynamoStore;
use model::table_lint::{RowProblem, spec_table_row_problems};
use serde::Serialize;

use crate::failure::{Exit, Failure};
use crate::output::{self, Format};

/// What a scan found.
#[derive(Debug, Serialize)]
pub struct Findings {
    pub table: String,
    /// Rows read.
    pub rows: usize,
    pub problems: Vec<RowProblem>,
}

/// Reads every row of the SPEC table, a page at a time.
pub async fn scan(store: &DynamoStore) -> Result<Findings, Failure> {
    let mut findings = Findings {
        table: store.spec_table().to_owned(),
        rows: 0,
        problems: Vec::new(),
    };
    let mut page = None;
    loop {
        let (items, next) = store
            .scan_spec_table(page)
            .await
            .map_err(|e| Failure::Unreachable(format!("scanning {}: {e}", findings.table)))?;
        findings.rows += items.len();
        findings
            .problems
            .extend(items.iter().flat_map(spec_table_row_problems));
        match next {
            Some(next) => page = Some(next),
            None => return Ok(findings),
        }
    }
}

/// Prints the findings; exit 1 when there is any problem.
pub fn report(findings: &Findings, format: Format) -> Exit {
    match format {
        Format::Json => crate::print(&output::json(findings)),
        Format::Table => crate::print(&output::row_problems(findings)),
    }
    if findings.problems.is_empty() {
        Exit::Ok
    } else {
        Exit::Refused
    }
}
