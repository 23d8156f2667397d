//! Times as the rows store them.

use chrono::{DateTime, SecondsFormat, Utc};

/// A time as every row stores it: RFC 3339, UTC, milliseconds (fixed width, so the text sorts
/// as the times do).
pub fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}
