//! What can go wrong, how it is printed, and the exit code each case gets.

use std::fmt;
use std::process::ExitCode;

use model::spec::FieldError;
use serde::{Deserialize, Serialize};

/// The exit codes, as `--help` and docs/cli.md document them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    /// The tenant ended `failed` (with `--wait`), a followed rollout ended other than
    /// completed (halted, rolled back, cancelled), the request was refused (4xx), or `doctor`
    /// found rows that break the key contract.
    Refused = 1,
    /// A usage error (clap's own code).
    Usage = 2,
    /// No such tenant (or not the caller's), template version or rollout.
    NotFound = 3,
    /// Conflict or precondition failed: the tenant exists already, or changed since it was read;
    /// a template version exists with another body; another rollout is running; a command the
    /// rollout's state does not allow.
    Conflict = 4,
    /// `--wait` ran out of time.
    Timeout = 5,
    /// The API or the table could not be reached (network, 5xx, `--direct` without the AWS
    /// settings it needs).
    Unreachable = 6,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  ok (a followed rollout: completed)
  1  the tenant ended `failed` (with --wait); a followed rollout (start --wait,
     status --watch) halted, rolled back or was cancelled; the request was refused (4xx);
     or doctor found rows that break the key contract
  2  usage error
  3  no such tenant (or not yours), template version or rollout
  4  conflict: the tenant exists already, or it changed since it was read (412); the
     template version exists with another body; another rollout is running; the rollout's
     state does not allow that command
  5  timed out waiting (--wait --timeout)
  6  cannot reach the API or the table (network, 5xx; --direct without a region
     or credentials)";

/// An `application/problem+json` document, as the API sends it (and as `--direct` gets it from
/// the same operations).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProblemDoc {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub status: u16,
    #[serde(default)]
    pub detail: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl From<api::problem::Problem> for ProblemDoc {
    fn from(problem: api::problem::Problem) -> Self {
        Self {
            kind: Some(problem.kind.to_owned()),
            title: problem.title.to_owned(),
            status: problem.status,
            detail: problem.detail,
            errors: problem.errors,
        }
    }
}

#[derive(Debug)]
pub enum Failure {
    /// The API (or the operation, with `--direct`) answered with a problem.
    Problem(ProblemDoc),
    /// No answer at all: network, DNS, TLS, or an answer that is not the API's.
    Unreachable(String),
    Timeout(String),
    /// Arguments that make no sense together (found after clap parsed them).
    Usage(String),
    /// What is needed to reach the table is not set (`--direct` without a region or
    /// credentials): nothing could be sent.
    Setup(String),
    /// Anything else.
    Other(String),
}

impl Failure {
    pub fn exit(&self) -> Exit {
        match self {
            Self::Problem(problem) => exit_for_status(problem.status),
            Self::Unreachable(_) | Self::Setup(_) => Exit::Unreachable,
            Self::Timeout(_) => Exit::Timeout,
            Self::Usage(_) => Exit::Usage,
            Self::Other(_) => Exit::Refused,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Problem(p) if p.status == 404)
    }
}

/// The exit code of an HTTP status the API answered with.
pub fn exit_for_status(status: u16) -> Exit {
    match status {
        200..=299 => Exit::Ok,
        404 => Exit::NotFound,
        409 | 412 | 428 => Exit::Conflict,
        400..=499 => Exit::Refused,
        _ => Exit::Unreachable,
    }
}

impl fmt::Display for Failure {
    /// A problem's title, its detail, then each field error on its own line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Problem(problem) => {
                write!(f, "error: {}", problem.title)?;
                if problem.status != 0 {
                    write!(f, " ({})", problem.status)?;
                }
                // The detail of a validation problem repeats the field errors: show those alone.
                if !problem.detail.is_empty() && problem.errors.is_empty() {
                    write!(f, "\n  {}", problem.detail)?;
                }
                for error in &problem.errors {
                    write!(f, "\n  {}: {}", error.field, error.message)?;
                }
                Ok(())
            }
            Self::Unreachable(detail) => {
                write!(f, "error: cannot reach the control plane\n  {detail}")
            }
            Self::Timeout(detail) => write!(f, "error: timed out\n  {detail}"),
            Self::Usage(detail) | Self::Setup(detail) | Self::Other(detail) => {
                write!(f, "error: {detail}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_the_documented_exit_codes() {
        assert_eq!(exit_for_status(200), Exit::Ok);
        assert_eq!(exit_for_status(202), Exit::Ok);
        assert_eq!(exit_for_status(400), Exit::Refused);
        assert_eq!(exit_for_status(401), Exit::Refused);
        assert_eq!(exit_for_status(403), Exit::Refused);
        assert_eq!(exit_for_status(422), Exit::Refused);
        assert_eq!(exit_for_status(404), Exit::NotFound);
        assert_eq!(exit_for_status(409), Exit::Conflict);
        assert_eq!(exit_for_status(412), Exit::Conflict);
        assert_eq!(exit_for_status(428), Exit::Conflict);
        assert_eq!(exit_for_status(500), Exit::Unreachable);
        assert_eq!(exit_for_status(503), Exit::Unreachable);
        assert_eq!(Failure::Timeout("x".into()).exit(), Exit::Timeout);
        assert_eq!(Failure::Unreachable("x".into()).exit(), Exit::Unreachable);
        assert_eq!(Failure::Other("x".into()).exit(), Exit::Refused);
        assert_eq!(Failure::Usage("x".into()).exit(), Exit::Usage);
        assert_eq!(ExitCode::from(Exit::Unreachable), ExitCode::from(6));
    }

    #[test]
    fn a_problem_prints_its_title_detail_and_each_field_error() {
        let invalid = Failure::Problem(ProblemDoc::from(api::problem::Problem::invalid(vec![
            FieldError::new("account_id", "must be 12 digits"),
            FieldError::new("config.player_count", "must be a Number"),
        ])));
        assert_eq!(
            invalid.to_string(),
            "error: The tenant is not valid (422)\n  account_id: must be 12 digits\n  \
             config.player_count: must be a Number"
        );
        let missing = Failure::Problem(api::problem::Problem::not_found("acme").into());
        assert_eq!(
            missing.to_string(),
            "error: Not found (404)\n  there is no tenant \"acme\""
        );
        assert_eq!(missing.exit(), Exit::NotFound);
    }
}
