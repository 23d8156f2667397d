//! Times as the rows store them.

use chrono::{DateTime, SecondsFormat, Utc};

/// A time as every row stores it: RFC 3339, UTC, milliseconds (fixed width, so the text sorts
/// as the times do).
pub fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A stored time read back: `None` when the text is not RFC 3339 (a hand-edited row). The one
/// parser of stored times; what an unreadable time means is each caller's decision, said where
/// it is made (a retry whose time cannot be read is due; an operation whose start cannot be read
/// is not proven young).
pub fn parse(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_time_reads_back_and_a_garbled_one_does_not() {
        let written = rfc3339(DateTime::UNIX_EPOCH + chrono::Duration::milliseconds(1_234));
        assert_eq!(written, "1970-01-01T00:00:01.234Z");
        assert_eq!(parse(&written).map(rfc3339), Some(written));
        assert_eq!(
            parse("2026-11-23T12:00:00+01:00").map(rfc3339).as_deref(),
            Some("2026-11-23T11:00:00.000Z")
        );
        assert_eq!(parse("yesterday"), None);
    }
}
