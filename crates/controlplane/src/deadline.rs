//! An invocation's deadline, as a function can trust it.
//!
//! Lambda states each invocation's deadline (`lambda-runtime-deadline-ms`, milliseconds since the
//! epoch), and the functions stop starting work a margin before it. An emulator may state one
//! that means nothing: cargo-lambda's `watch` sends a fixed 600000, a moment in 1970, so every
//! invocation would look out of time before it began. A deadline that is absent, already past at
//! the invocation's start, or later than the function's configured timeout allows is replaced by
//! the start plus that timeout, and that is logged once per process.
//!
//! Lambda does not tell a function its configured timeout: template.yaml states it to the
//! function as FUNCTION_TIMEOUT_SECONDS, beside each `Timeout:` (a test holds them equal).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use tracing::warn;

use crate::config::ConfigError;

/// The environment variable that states the function's configured timeout, in seconds.
pub const FUNCTION_TIMEOUT_VAR: &str = "FUNCTION_TIMEOUT_SECONDS";

/// Lambda's longest timeout: no invocation runs longer, so it stands in when the function's own
/// timeout is not stated.
pub const MAX_FUNCTION_TIMEOUT: Duration = Duration::from_secs(900);

/// How much later than start + timeout a stated deadline may be and still be believed: the
/// service starts the clock a moment before the handler does, never after.
const TOLERANCE: Duration = Duration::from_secs(1);

/// Why a stated deadline was not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnusableDeadline {
    #[error("no deadline was stated")]
    Absent,
    #[error(
        "the stated deadline ({stated_ms} ms since the epoch) had passed when the invocation started"
    )]
    Past { stated_ms: u64 },
    #[error(
        "the stated deadline ({stated_ms} ms since the epoch) is later than the function's timeout ({timeout:?}) allows"
    )]
    Implausible { stated_ms: u64, timeout: Duration },
}

/// The deadline an invocation works to: the one stated (`stated_ms`, milliseconds since the
/// epoch; 0 when none was), unless it is absent, already past at `started` or later than
/// `timeout` after it; then `started + timeout`, with the reason the stated one was not used.
pub fn effective_deadline(
    stated_ms: u64,
    started: SystemTime,
    timeout: Duration,
) -> (SystemTime, Option<UnusableDeadline>) {
    let fallback = started.checked_add(timeout).unwrap_or(started);
    if stated_ms == 0 {
        return (fallback, Some(UnusableDeadline::Absent));
    }
    let stated = SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(stated_ms));
    match stated {
        Some(stated) if stated <= started => (fallback, Some(UnusableDeadline::Past { stated_ms })),
        Some(stated) if stated <= fallback.checked_add(TOLERANCE).unwrap_or(fallback) => {
            (stated, None)
        }
        _ => (
            fallback,
            Some(UnusableDeadline::Implausible { stated_ms, timeout }),
        ),
    }
}

/// Whether the fallback was logged in this process.
static FALLBACK_LOGGED: AtomicBool = AtomicBool::new(false);

/// [`effective_deadline`] for the invocation starting now, logging the first fallback of the
/// process (an emulator states the same unusable deadline every time).
pub fn invocation_deadline(stated_ms: u64, timeout: Duration) -> SystemTime {
    let (deadline, unusable) = effective_deadline(stated_ms, SystemTime::now(), timeout);
    if let Some(reason) = unusable
        && first_time(&FALLBACK_LOGGED)
    {
        warn!(
            %reason,
            ?timeout,
            "using the function's configured timeout from the invocation's start instead \
             (logged once per process)"
        );
    }
    deadline
}

fn first_time(flag: &AtomicBool) -> bool {
    !flag.swap(true, Ordering::Relaxed)
}

/// The function's configured timeout, from FUNCTION_TIMEOUT_SECONDS (whole seconds, 1 to 900);
/// Lambda's longest when it is not set.
pub fn function_timeout_from_env() -> Result<Duration, ConfigError> {
    parse_timeout(std::env::var(FUNCTION_TIMEOUT_VAR).ok().as_deref())
}

fn parse_timeout(text: Option<&str>) -> Result<Duration, ConfigError> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(MAX_FUNCTION_TIMEOUT);
    };
    let invalid = || ConfigError::Invalid {
        name: FUNCTION_TIMEOUT_VAR,
        reason: format!(
            "must be whole seconds from 1 to {}, got {text:?}",
            MAX_FUNCTION_TIMEOUT.as_secs()
        ),
    };
    let seconds: u64 = text.parse().map_err(|_| invalid())?;
    let timeout = Duration::from_secs(seconds);
    if seconds == 0 || timeout > MAX_FUNCTION_TIMEOUT {
        return Err(invalid());
    }
    Ok(timeout)
}

/// A function's timeouts as template.yaml declares them, Globals applied as SAM applies them (a
/// function's own value over the global one; its variables merged into the global ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeclaredTimeout {
    /// `Timeout:`, in seconds.
    pub timeout: Option<u64>,
    /// FUNCTION_TIMEOUT_SECONDS in its environment.
    pub stated: Option<u64>,
}

/// The timeouts template.yaml (`template`, parsed) declares for the function `function` (its
/// logical id); `None` where the template does not say, or the function is not in it.
pub fn declared_timeout(template: &serde_yaml_ng::Value, function: &str) -> DeclaredTimeout {
    let globals = &template["Globals"]["Function"];
    let properties = &template["Resources"][function]["Properties"];
    let seconds = |value: &serde_yaml_ng::Value| match value {
        serde_yaml_ng::Value::Number(n) => n.as_u64(),
        serde_yaml_ng::Value::String(s) => s.parse().ok(),
        _ => None,
    };
    let own_or_global = |own: Option<&serde_yaml_ng::Value>,
                         global: Option<&serde_yaml_ng::Value>| {
        own.or(global).and_then(seconds)
    };
    DeclaredTimeout {
        timeout: own_or_global(properties.get("Timeout"), globals.get("Timeout")),
        stated: own_or_global(
            properties["Environment"]["Variables"].get(FUNCTION_TIMEOUT_VAR),
            globals["Environment"]["Variables"].get(FUNCTION_TIMEOUT_VAR),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(300);

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
    }

    /// 2026-11-23, in milliseconds since the epoch.
    const START_MS: u64 = 1_795_000_000_000;

    #[test]
    fn a_plausible_deadline_is_used_as_stated() {
        let stated = START_MS + 299_950;
        assert_eq!(
            effective_deadline(stated, at(START_MS), TIMEOUT),
            (at(stated), None)
        );
        // Up to the timeout itself, and a moment over it (the service's clock starts first).
        for stated in [START_MS + 1, START_MS + 300_000, START_MS + 300_900] {
            assert_eq!(
                effective_deadline(stated, at(START_MS), TIMEOUT),
                (at(stated), None)
            );
        }
    }

    #[test]
    fn cargo_lambda_watchs_fixed_deadline_falls_back_to_the_timeout() {
        assert_eq!(
            effective_deadline(600_000, at(START_MS), TIMEOUT),
            (
                at(START_MS + 300_000),
                Some(UnusableDeadline::Past { stated_ms: 600_000 })
            )
        );
    }

    #[test]
    fn an_absent_past_or_implausible_deadline_falls_back_to_start_plus_timeout() {
        let fallback = at(START_MS + 300_000);
        assert_eq!(
            effective_deadline(0, at(START_MS), TIMEOUT),
            (fallback, Some(UnusableDeadline::Absent))
        );
        // Exactly at the start is past too: no time at all was given.
        for stated_ms in [1, START_MS - 1, START_MS] {
            assert_eq!(
                effective_deadline(stated_ms, at(START_MS), TIMEOUT),
                (fallback, Some(UnusableDeadline::Past { stated_ms }))
            );
        }
        for stated_ms in [START_MS + 302_000, START_MS * 2, u64::MAX] {
            assert_eq!(
                effective_deadline(stated_ms, at(START_MS), TIMEOUT),
                (
                    fallback,
                    Some(UnusableDeadline::Implausible {
                        stated_ms,
                        timeout: TIMEOUT
                    })
                )
            );
        }
    }

    #[test]
    fn the_fallback_is_counted_from_the_invocations_start() {
        let later = START_MS + 3_600_000;
        assert_eq!(
            effective_deadline(600_000, at(later), TIMEOUT).0,
            at(later + 300_000)
        );
    }

    #[test]
    fn the_fallback_is_logged_once_per_process() {
        let flag = AtomicBool::new(false);
        assert!(first_time(&flag));
        assert!(!first_time(&flag));
        assert!(!first_time(&flag));
    }

    #[test]
    fn the_timeout_is_whole_seconds_from_1_to_900_or_lambdas_longest_when_unset() {
        assert_eq!(parse_timeout(Some("300")).ok(), Some(TIMEOUT));
        assert_eq!(
            parse_timeout(Some(" 900 ")).ok(),
            Some(MAX_FUNCTION_TIMEOUT)
        );
        assert_eq!(parse_timeout(Some("1")).ok(), Some(Duration::from_secs(1)));
        assert_eq!(parse_timeout(None).ok(), Some(MAX_FUNCTION_TIMEOUT));
        assert_eq!(parse_timeout(Some("")).ok(), Some(MAX_FUNCTION_TIMEOUT));
        for bad in ["0", "901", "-5", "5.5", "5m", "18446744073709551616"] {
            let error = parse_timeout(Some(bad)).expect_err(bad).to_string();
            assert!(error.contains(FUNCTION_TIMEOUT_VAR), "{bad}: {error}");
            assert!(error.contains(bad), "{bad}: {error}");
        }
    }
}
