//! Conditional requests (RFC 9110 §13): `If-Match` on changes, `If-None-Match` on reads.

use axum::http::{HeaderMap, header};

/// An entity tag as sent: its opaque text (quotes included) and whether it is weak (`W/`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct EntityTag {
    weak: bool,
    opaque: String,
}

/// A condition's field value: absent, `*`, or a list of entity tags.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum Condition {
    #[default]
    Absent,
    Any,
    Tags(Vec<EntityTag>),
}

impl Condition {
    /// Every value of the header (a list may be split over several lines), as one list.
    fn from_headers(headers: &HeaderMap, name: header::HeaderName) -> Self {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.is_empty() {
            return Self::Absent;
        }
        Self::parse(&values.join(","))
    }

    /// `*`, or `"a", W/"b"`; anything unreadable in the list matches nothing.
    fn parse(value: &str) -> Self {
        if value.trim() == "*" {
            return Self::Any;
        }
        let mut tags = Vec::new();
        let mut rest = value;
        loop {
            rest = rest.trim_start_matches(|c: char| c == ',' || c.is_ascii_whitespace());
            if rest.is_empty() {
                break;
            }
            let (weak, tail) = match rest.strip_prefix("W/") {
                Some(tail) => (true, tail),
                None => (false, rest),
            };
            let Some(body) = tail.strip_prefix('"') else {
                // Not an entity tag: skip to the next element.
                rest = tail.split_once(',').map_or("", |(_, r)| r);
                continue;
            };
            let Some(end) = body.find('"') else { break };
            tags.push(EntityTag {
                weak,
                opaque: format!("\"{}\"", &body[..end]),
            });
            rest = &body[end + 1..];
        }
        Self::Tags(tags)
    }

    fn is_absent(&self) -> bool {
        matches!(self, Self::Absent)
    }
}

/// `If-Match`: the change applies only to the representation named (strong comparison).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IfMatch(Condition);

impl IfMatch {
    pub fn from_headers(headers: &HeaderMap) -> Self {
        Self(Condition::from_headers(headers, header::IF_MATCH))
    }

    /// One header value (`tenantctl --direct`), or none.
    pub fn header(value: Option<&str>) -> Self {
        Self(value.map_or(Condition::Absent, Condition::parse))
    }

    pub fn is_absent(&self) -> bool {
        self.0.is_absent()
    }

    /// Whether a representation with `current` (none: it does not exist) passes. Absent
    /// passes; `*` passes if it exists; a list, if it names `current` strongly.
    pub fn passes(&self, current: Option<&str>) -> bool {
        match (&self.0, current) {
            (Condition::Absent, _) => true,
            (Condition::Any, current) => current.is_some(),
            (Condition::Tags(_), None) => false,
            (Condition::Tags(tags), Some(current)) => {
                tags.iter().any(|t| !t.weak && t.opaque == current)
            }
        }
    }
}

/// `If-None-Match` on a read: "not modified" when it names the current representation (weak
/// comparison), or is `*` and the resource exists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IfNoneMatch(Condition);

impl IfNoneMatch {
    pub fn from_headers(headers: &HeaderMap) -> Self {
        Self(Condition::from_headers(headers, header::IF_NONE_MATCH))
    }

    pub fn not_modified(&self, current: Option<&str>) -> bool {
        let Some(current) = current else { return false };
        match &self.0 {
            Condition::Absent => false,
            Condition::Any => true,
            Condition::Tags(tags) => tags.iter().any(|t| t.opaque == current),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: &str = "\"0123abcd\"";

    #[test]
    fn if_match_takes_star_lists_and_only_strong_tags() {
        assert!(IfMatch::header(None).passes(Some(TAG)));
        assert!(IfMatch::header(Some("*")).passes(Some(TAG)));
        assert!(!IfMatch::header(Some("*")).passes(None));
        assert!(IfMatch::header(Some(TAG)).passes(Some(TAG)));
        assert!(IfMatch::header(Some("\"other\", \"0123abcd\"")).passes(Some(TAG)));
        assert!(IfMatch::header(Some("\"other\",\"0123abcd\"")).passes(Some(TAG)));
        // A weak tag never matches strongly (RFC 9110 §13.1.1).
        assert!(!IfMatch::header(Some("W/\"0123abcd\"")).passes(Some(TAG)));
        assert!(!IfMatch::header(Some("\"other\"")).passes(Some(TAG)));
        assert!(!IfMatch::header(Some("0123abcd")).passes(Some(TAG)));
        assert!(!IfMatch::header(Some("")).passes(Some(TAG)));
    }

    #[test]
    fn if_match_reads_every_header_line() {
        let mut headers = HeaderMap::new();
        headers.append(header::IF_MATCH, "\"a\"".parse().unwrap());
        headers.append(header::IF_MATCH, TAG.parse().unwrap());
        assert!(IfMatch::from_headers(&headers).passes(Some(TAG)));
        assert!(IfMatch::from_headers(&HeaderMap::new()).is_absent());
    }

    #[test]
    fn if_none_match_compares_weakly() {
        let check = |v: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::IF_NONE_MATCH, v.parse().unwrap());
            IfNoneMatch::from_headers(&headers).not_modified(Some(TAG))
        };
        assert!(check(TAG));
        assert!(check("W/\"0123abcd\""));
        assert!(check("\"x\", \"0123abcd\""));
        assert!(check("*"));
        assert!(!check("\"x\""));
        assert!(!IfNoneMatch::default().not_modified(Some(TAG)));
    }
}
