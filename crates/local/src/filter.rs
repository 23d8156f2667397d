//! Lambda event filtering (FilterCriteria) applied to stream records, as the event source mapping
//! does before invoking the function: a record is delivered when any pattern matches it.
//!
//! Supports the pattern syntax DynamoDB stream filters use: nested objects, arrays of literal
//! values, and the `prefix`, `suffix`, `anything-but`, `exists` and `equals-ignore-case` matchers.

use serde_json::Value;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid filter pattern {pattern}: {reason}")]
pub struct PatternError {
    pub pattern: String,
    pub reason: String,
}

/// One filter's pattern, parsed from its JSON text.
#[derive(Clone, Debug, PartialEq)]
pub struct FilterPattern(Value);

impl FilterPattern {
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let error = |reason: String| PatternError {
            pattern: text.to_owned(),
            reason,
        };
        let value: Value = serde_json::from_str(text).map_err(|e| error(e.to_string()))?;
        if !value.is_object() {
            return Err(error("a pattern must be a JSON object".into()));
        }
        check(&value).map_err(error)?;
        Ok(Self(value))
    }

    /// The record keys the pattern filters on (`dynamodb`, `eventName`, ...).
    pub fn top_level_keys(&self) -> impl Iterator<Item = &str> {
        self.0
            .as_object()
            .into_iter()
            .flat_map(|o| o.keys().map(String::as_str))
    }

    pub fn matches(&self, record: &Value) -> bool {
        matches_object(&self.0, Some(record))
    }
}

/// True when any of the patterns matches (no patterns: every record passes).
pub fn passes(patterns: &[FilterPattern], record: &Value) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| p.matches(record))
}

fn check(pattern: &Value) -> Result<(), String> {
    match pattern {
        Value::Object(fields) => fields.values().try_for_each(check),
        Value::Array(options) => options.iter().try_for_each(|option| match option {
            Value::Object(matcher) => {
                let known = [
                    "prefix",
                    "suffix",
                    "anything-but",
                    "exists",
                    "equals-ignore-case",
                ];
                match matcher.keys().next() {
                    Some(name) if matcher.len() == 1 && known.contains(&name.as_str()) => Ok(()),
                    _ => Err(format!("unsupported matcher {option}")),
                }
            }
            Value::Array(_) => Err("nested arrays are not a pattern".into()),
            _ => Ok(()),
        }),
        other => Err(format!("a pattern leaf must be an array, found {other}")),
    }
}

fn matches_object(pattern: &Value, record: Option<&Value>) -> bool {
    let Value::Object(fields) = pattern else {
        return false;
    };
    fields.iter().all(|(name, expected)| {
        // A missing parent is a missing field: `{"a":{"b":[{"exists":false}]}}` matches `{}`.
        let actual = record.and_then(|r| r.get(name));
        match expected {
            Value::Object(_) => matches_object(expected, actual),
            Value::Array(options) => options.iter().any(|option| match actual {
                // A field holding an array matches when any element does.
                Some(Value::Array(elements)) if !is_exists(option) => {
                    elements.iter().any(|e| matches_leaf(option, Some(e)))
                }
                _ => matches_leaf(option, actual),
            }),
            _ => false,
        }
    })
}

fn is_exists(option: &Value) -> bool {
    option.get("exists").is_some()
}

/// Literal equality, numbers compared by value (`5` equals `5.0`).
fn equal(literal: &Value, actual: &Value) -> bool {
    match (literal.as_f64(), actual.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => literal == actual,
    }
}

fn matches_leaf(option: &Value, actual: Option<&Value>) -> bool {
    match option {
        Value::Object(matcher) => {
            let Some((name, argument)) = matcher.iter().next() else {
                return false;
            };
            let text = actual.and_then(Value::as_str);
            match name.as_str() {
                "exists" => argument.as_bool() == Some(actual.is_some()),
                "prefix" => text
                    .zip(argument.as_str())
                    .is_some_and(|(t, p)| t.starts_with(p)),
                "suffix" => text
                    .zip(argument.as_str())
                    .is_some_and(|(t, s)| t.ends_with(s)),
                "equals-ignore-case" => text
                    .zip(argument.as_str())
                    .is_some_and(|(t, e)| t.eq_ignore_ascii_case(e)),
                "anything-but" => actual.is_some_and(|a| match argument {
                    Value::Array(excluded) => !excluded.iter().any(|x| equal(x, a)),
                    Value::Object(_) => !matches_leaf(argument, Some(a)),
                    single => !equal(single, a),
                }),
                _ => false,
            }
        }
        literal => actual.is_some_and(|a| equal(literal, a)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(event: &str, pk: &str, sk: &str) -> Value {
        json!({"eventName": event, "dynamodb": {"Keys": {"pk": {"S": pk}, "sk": {"S": sk}}}})
    }

    /// The stream handler's filter in template.yaml.
    const SPEC_FILTER: &str =
        r#"{"dynamodb":{"Keys":{"pk":{"S":[{"prefix":"TENANT#"}]},"sk":{"S":["SPEC"]}}}}"#;

    #[test]
    fn the_spec_filter_is_the_shipped_one() {
        assert!(include_str!("../../../template.yaml").contains(SPEC_FILTER));
    }

    #[test]
    fn the_spec_filter_passes_spec_items_only() {
        let p = FilterPattern::parse(SPEC_FILTER).unwrap();
        assert!(p.matches(&record("INSERT", "TENANT#a", "SPEC")));
        assert!(p.matches(&record("REMOVE", "TENANT#a", "SPEC")));
        assert!(!p.matches(&record("MODIFY", "TENANT#a", "STATUS")));
        assert!(!p.matches(&record("INSERT", "ROLLOUT#1", "SPEC")));
        assert!(!p.matches(&json!({"eventName": "INSERT"})));
    }

    #[test]
    fn matchers() {
        let p = FilterPattern::parse(r#"{"a":[{"anything-but":["x","y"]}],"b":[{"exists":false}],"c":[{"suffix":"z"}],"d":[{"equals-ignore-case":"Hi"}]}"#).unwrap();
        assert!(p.matches(&json!({"a": "q", "c": "zz", "d": "hI"})));
        assert!(!p.matches(&json!({"a": "x", "c": "zz", "d": "hi"})));
        assert!(!p.matches(&json!({"a": "q", "b": 1, "c": "zz", "d": "hi"})));
        assert!(!p.matches(&json!({"a": "q", "c": "za", "d": "hi"})));
        let numbers = FilterPattern::parse(r#"{"n":[5, true, null]}"#).unwrap();
        assert!(numbers.matches(&json!({"n": 5})));
        assert!(!numbers.matches(&json!({"n": "5"})));
    }

    #[test]
    fn missing_parents_numbers_and_arrays() {
        let absent = FilterPattern::parse(r#"{"a":{"b":[{"exists":false}]}}"#).unwrap();
        assert!(absent.matches(&json!({})));
        assert!(!absent.matches(&json!({"a": {"b": 1}})));
        let number = FilterPattern::parse(r#"{"n":[5]}"#).unwrap();
        assert!(number.matches(&json!({"n": 5.0})));
        let element = FilterPattern::parse(r#"{"tags":["blue"]}"#).unwrap();
        assert!(element.matches(&json!({"tags": ["red", "blue"]})));
        assert!(!element.matches(&json!({"tags": ["red"]})));
    }

    #[test]
    fn any_pattern_may_pass_a_record() {
        let a = FilterPattern::parse(r#"{"eventName":["INSERT"]}"#).unwrap();
        let b = FilterPattern::parse(r#"{"eventName":["REMOVE"]}"#).unwrap();
        assert!(passes(
            &[a.clone(), b.clone()],
            &json!({"eventName": "REMOVE"})
        ));
        assert!(!passes(&[a, b], &json!({"eventName": "MODIFY"})));
        assert!(passes(&[], &json!({})));
    }

    #[test]
    fn bad_patterns_are_rejected() {
        for bad in [
            "[1]",
            r#"{"a": 1}"#,
            r#"{"a": [{"numeric": [">", 1]}]}"#,
            "{",
            r#"{"a":[[1]]}"#,
        ] {
            assert!(FilterPattern::parse(bad).is_err(), "{bad}");
        }
    }
}
