//! Items and JSON without loss, for the writers (the API, `tenantctl`): a DynamoDB number keeps
//! its decimal text both ways, and nothing goes through f64.
//!
//! serde_dynamo cannot do this: it reads a number as u64, i64 or f64, so 29 digits become 17, and
//! it writes serde_json's arbitrary-precision number as a map. With serde_json's
//! `arbitrary_precision` (on for the workspace), a JSON number holds its text, and this module
//! moves that text into and out of `N` unchanged. A change applied here (a JSON Merge Patch)
//! touches only what it names: every other attribute, including ones this project does not know,
//! stays exactly as stored.

use std::collections::HashMap;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_dynamo::{AttributeValue, Item};
use serde_json::{Map, Number, Value};

/// A stored value as JSON. A number's text is kept when it is valid JSON; a number DynamoDB took
/// in a form JSON lacks (`+5`, `.5`, `007`) is written in JSON's form of the same value. Binary
/// values are base64 text; sets are arrays.
pub fn to_json(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => Value::Number(json_number(n)),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::B(bytes) => Value::String(STANDARD.encode(bytes)),
        AttributeValue::M(map) => Value::Object(map_to_json(map)),
        AttributeValue::L(list) => Value::Array(list.iter().map(to_json).collect()),
        AttributeValue::Ss(set) => Value::Array(set.iter().cloned().map(Value::String).collect()),
        AttributeValue::Ns(set) => {
            Value::Array(set.iter().map(|n| Value::Number(json_number(n))).collect())
        }
        AttributeValue::Bs(set) => Value::Array(
            set.iter()
                .map(|bytes| Value::String(STANDARD.encode(bytes)))
                .collect(),
        ),
    }
}

/// A stored item as a JSON object (see [`to_json`]).
pub fn item_to_json(item: &Item) -> Map<String, Value> {
    let map: &HashMap<String, AttributeValue> = item.as_ref();
    map_to_json(map)
}

fn map_to_json(map: &HashMap<String, AttributeValue>) -> Map<String, Value> {
    // Sorted, so that the same item always reads as the same text (ETags hash it).
    let mut names: Vec<&String> = map.keys().collect();
    names.sort();
    names
        .into_iter()
        .map(|name| (name.clone(), to_json(&map[name])))
        .collect()
}

/// A JSON value as DynamoDB stores it: a number's text unchanged, `null` as NULL. Numbers are
/// not checked here: the item's DynamoDB rules are (`dynamo_rules`), naming the field.
pub fn from_json(value: &Value) -> AttributeValue {
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::String(s) => AttributeValue::S(s.clone()),
        Value::Array(items) => AttributeValue::L(items.iter().map(from_json).collect()),
        Value::Object(map) => AttributeValue::M(
            map.iter()
                .map(|(name, value)| (name.clone(), from_json(value)))
                .collect(),
        ),
    }
}

/// A JSON object as an item; a top-level `null` is an absent attribute, as in a merge patch.
pub fn item_from_json(fields: &Map<String, Value>) -> Item {
    attributes(fields.iter().filter(|(_, value)| !value.is_null()))
}

fn attributes<'a>(fields: impl Iterator<Item = (&'a String, &'a Value)>) -> Item {
    let map: HashMap<String, AttributeValue> = fields
        .map(|(name, value)| (name.clone(), from_json(value)))
        .collect();
    Item::from(map)
}

/// A row written as JSON (the demo rows, tests, benchmarks) as `put-item` would store it: every
/// attribute, `null` as NULL. Anything but an object is no item (empty).
pub fn item_of_json(value: &Value) -> Item {
    match value {
        Value::Object(fields) => attributes(fields.iter()),
        _ => attributes(std::iter::empty()),
    }
}

/// Applies a JSON Merge Patch (RFC 7396) to a stored item: a `null` removes, an object merges
/// into a map (recursively), anything else replaces. Nothing the patch does not name changes.
pub fn merge_patch(item: &mut Item, patch: &Map<String, Value>) {
    let map: &mut HashMap<String, AttributeValue> = item.as_mut();
    merge_into_map(map, patch);
}

fn merge_into_map(map: &mut HashMap<String, AttributeValue>, patch: &Map<String, Value>) {
    for (name, change) in patch {
        match change {
            Value::Null => {
                map.remove(name);
            }
            Value::Object(inner) => {
                let target = map
                    .entry(name.clone())
                    .or_insert_with(|| AttributeValue::M(HashMap::new()));
                if !matches!(target, AttributeValue::M(_)) {
                    *target = AttributeValue::M(HashMap::new());
                }
                if let AttributeValue::M(target) = target {
                    merge_into_map(target, inner);
                }
            }
            other => {
                map.insert(name.clone(), from_json(other));
            }
        }
    }
}

/// A JSON number of the same value as DynamoDB number text. Valid JSON text is kept as it is
/// (serde_json writes an exponent as `e+5`/`e-5`); otherwise a sign `+`, leading zeros and a
/// bare `.` are dropped or completed. Text that is no
/// number at all (never stored by DynamoDB; a fake's) reads as 0 rather than failing a read.
fn json_number(text: &str) -> Number {
    Number::from_str(text)
        .or_else(|_| Number::from_str(&json_number_text(text)))
        .unwrap_or_else(|_| Number::from(0))
}

fn json_number_text(text: &str) -> String {
    let (sign, unsigned) = match text.as_bytes().first() {
        Some(b'-') => ("-", &text[1..]),
        Some(b'+') => ("", &text[1..]),
        _ => ("", text),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], &unsigned[at..]),
        None => (unsigned, ""),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let whole = whole.trim_start_matches('0');
    let whole = if whole.is_empty() { "0" } else { whole };
    if fraction.is_empty() {
        format!("{sign}{whole}{exponent}")
    } else {
        format!("{sign}{whole}.{fraction}{exponent}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(entries: &[(&str, AttributeValue)]) -> Item {
        Item::from(
            entries
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect::<HashMap<_, _>>(),
        )
    }

    #[test]
    fn numbers_keep_every_digit_both_ways() {
        let body: Value =
            serde_json::from_str(r#"{"n": 12345678901234567890123456789, "f": 5.50}"#).unwrap();
        let Value::Object(fields) = body else {
            unreachable!()
        };
        let stored = item_from_json(&fields);
        assert_eq!(
            stored.get("n"),
            Some(&AttributeValue::N("12345678901234567890123456789".into()))
        );
        assert_eq!(stored.get("f"), Some(&AttributeValue::N("5.50".into())));
        let read = item_to_json(&stored);
        assert_eq!(read["n"].to_string(), "12345678901234567890123456789");
        assert_eq!(read["f"].to_string(), "5.50");
    }

    #[test]
    fn numbers_json_cannot_write_read_as_the_same_value() {
        for (stored, shown) in [
            ("+5", "5"),
            (".5", "0.5"),
            ("-.5", "-0.5"),
            ("007", "7"),
            ("5.", "5"),
            ("1E+5", "1e+5"),
            ("5.e3", "5e+3"),
            ("-0012.30e-2", "-12.30e-2"),
        ] {
            assert_eq!(
                to_json(&AttributeValue::N(stored.into())).to_string(),
                shown,
                "{stored}"
            );
        }
    }

    #[test]
    fn a_merge_patch_changes_only_what_it_names() {
        let mut stored = item(&[
            ("owner_team", AttributeValue::S("games".into())),
            ("cost_center", AttributeValue::N("0042".into())),
            (
                "config",
                AttributeValue::M(HashMap::from([
                    (
                        "big".to_owned(),
                        AttributeValue::N("1.000000000000000000001".into()),
                    ),
                    ("mode".to_owned(), AttributeValue::S("pvp".into())),
                    ("gone".to_owned(), AttributeValue::S("x".into())),
                ])),
            ),
        ]);
        let before = stored.clone();
        let patch = json!({"config": {"mode": "pve", "gone": null, "new": 3}});
        merge_patch(&mut stored, patch.as_object().unwrap());
        let AttributeValue::M(config) = stored.get("config").unwrap() else {
            panic!("config is a map")
        };
        assert_eq!(config.get("mode"), Some(&AttributeValue::S("pve".into())));
        assert_eq!(config.get("new"), Some(&AttributeValue::N("3".into())));
        assert!(!config.contains_key("gone"));
        assert_eq!(
            config.get("big"),
            Some(&AttributeValue::N("1.000000000000000000001".into()))
        );
        assert_eq!(stored.get("owner_team"), before.get("owner_team"));
        assert_eq!(stored.get("cost_center"), before.get("cost_center"));
    }

    #[test]
    fn a_top_level_null_removes_and_an_object_replaces_a_scalar() {
        let mut stored = item(&[
            ("template_version", AttributeValue::S("v1".into())),
            ("config", AttributeValue::S("not a map".into())),
        ]);
        merge_patch(
            &mut stored,
            json!({"template_version": null, "config": {"a": "b"}})
                .as_object()
                .unwrap(),
        );
        assert!(stored.get("template_version").is_none());
        assert_eq!(
            stored.get("config"),
            Some(&AttributeValue::M(HashMap::from([(
                "a".to_owned(),
                AttributeValue::S("b".into())
            )])))
        );
    }
}
