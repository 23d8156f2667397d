//! What DynamoDB itself refuses in an item, checked before anything is sent and on every SPEC
//! read. The local emulator (moto) accepts more than DynamoDB does, and what it then holds breaks
//! the local system in ways real AWS never would (a map with an empty key made every later read
//! of the row unparseable; a number-typed `tenant_id` made every scan of the `tenants` index
//! fail). So the project never writes such an item, and treats a SPEC that holds one as invalid.
//!
//! Every rule broken is reported, each under the attribute path it is about (`config.player_count`,
//! `selection.config.""`, `tags[2]`), as a [`FieldError`].
//!
//! The rules, from Amazon DynamoDB's developer guide:
//! - "Supported data types and naming rules"
//!   (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html>)
//! - "Amazon DynamoDB service, account, and table quotas"
//!   (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html>)
//! - "DynamoDB item sizes and formats"
//!   (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html>)

use std::collections::{HashMap, HashSet};

use crate::spec::FieldError;

/// The SPEC table's sparse index of SPEC rows (template.yaml's `TenantsTable`).
pub const TENANTS_INDEX: &str = "tenants";
/// The control-plane table's sparse index of STATUS rows (template.yaml's `ControlTable`).
pub const STATUSES_INDEX: &str = "statuses";
/// The control-plane table's sparse index of STATUS rows by status.
pub const BY_STATUS_INDEX: &str = "by-status";

/// Quotas, "Items": an item, names and values together, is at most 400 KB (1 KB = 1024 bytes).
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
/// Quotas, "Partition keys and sort keys": a partition key value is 1 to 2048 bytes.
pub const MAX_PARTITION_KEY_BYTES: usize = 2048;
/// Quotas, "Partition keys and sort keys": a sort key value is 1 to 1024 bytes.
pub const MAX_SORT_KEY_BYTES: usize = 1024;
/// Naming rules: attribute names are at least one character and less than 64 KB.
pub const MAX_ATTRIBUTE_NAME_BYTES: usize = 64 * 1024 - 1;
/// Quotas, "Attributes": nested attributes up to 32 levels deep (the attribute itself is level
/// 1, so 31 maps or lists around a value is the deepest DynamoDB takes).
pub const MAX_NESTING_LEVELS: usize = 32;
/// Data types, "Number": up to 38 digits of precision.
pub const MAX_SIGNIFICANT_DIGITS: usize = 38;
/// Data types, "Number": positive range 1E-130 to 9.9999999999999999999999999999999999999E+125
/// (negatives alike): the exponent of the leading digit, in scientific notation.
const MIN_EXPONENT: i64 = -130;
const MAX_EXPONENT: i64 = 125;
const NUMBER_RANGE: &str = "1E-130 to 9.9999999999999999999999999999999999999E+125";

/// The two tables (template.yaml's `TenantsTable` and `ControlTable`): each has its own
/// indexes, so an attribute is a key in one and plain data in the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyTable {
    /// The SPEC table: writers' rows.
    Specs,
    /// The control-plane table: what the control plane records.
    Control,
}

const BOTH: &[KeyTable] = &[KeyTable::Specs, KeyTable::Control];
const SPECS: &[KeyTable] = &[KeyTable::Specs];
const CONTROL: &[KeyTable] = &[KeyTable::Control];

/// A key attribute's role in the table or one of its indexes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyRole {
    /// `HASH`
    Partition,
    /// `RANGE`
    Sort,
}

/// The scalar types a key attribute may be declared with (`AttributeType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScalarType {
    S,
    N,
    B,
}

/// One key of the table (`index: None`) or of a global secondary index, as template.yaml's
/// `TenantsTable` declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyAttribute {
    /// The tables it is a key of.
    pub tables: &'static [KeyTable],
    pub index: Option<&'static str>,
    pub name: &'static str,
    pub role: KeyRole,
    pub declared: ScalarType,
}

/// Every key attribute of the two tables (the same `pk`/`sk`) and their indexes, with its
/// declared type. A test compares this with template.yaml, so the two cannot drift.
pub const TABLE_KEYS: &[KeyAttribute] = &[
    KeyAttribute {
        tables: BOTH,
        index: None,
        name: "pk",
        role: KeyRole::Partition,
        declared: ScalarType::S,
    },
    KeyAttribute {
        tables: BOTH,
        index: None,
        name: "sk",
        role: KeyRole::Sort,
        declared: ScalarType::S,
    },
    KeyAttribute {
        tables: SPECS,
        index: Some(TENANTS_INDEX),
        name: "tenant_id",
        role: KeyRole::Partition,
        declared: ScalarType::S,
    },
    KeyAttribute {
        tables: SPECS,
        index: Some(TENANTS_INDEX),
        name: "sk",
        role: KeyRole::Sort,
        declared: ScalarType::S,
    },
    KeyAttribute {
        tables: CONTROL,
        index: Some(STATUSES_INDEX),
        name: "tenant_id",
        role: KeyRole::Partition,
        declared: ScalarType::S,
    },
    KeyAttribute {
        tables: CONTROL,
        index: Some(STATUSES_INDEX),
        name: "sk",
        role: KeyRole::Sort,
        declared: ScalarType::S,
    },
    KeyAttribute {
        tables: CONTROL,
        index: Some(BY_STATUS_INDEX),
        name: "status",
        role: KeyRole::Partition,
        declared: ScalarType::S,
    },
    KeyAttribute {
        tables: CONTROL,
        index: Some(BY_STATUS_INDEX),
        name: "tenant_id",
        role: KeyRole::Sort,
        declared: ScalarType::S,
    },
];

/// An attribute value as the checks see it, whichever crate's type holds it.
pub enum Shape<'a, A> {
    S(&'a str),
    N(&'a str),
    B(&'a [u8]),
    Bool,
    Null,
    L(&'a [A]),
    M(&'a HashMap<String, A>),
    Ss(&'a [String]),
    Ns(&'a [String]),
    Bs(Vec<&'a [u8]>),
    /// A type the SDK does not know (a newer API's): never one the project could send.
    Unknown,
}

/// An attribute value type the rules can read. The model implements it for serde_dynamo's; the
/// DynamoDB adapter checks the SDK's items through serde_dynamo's conversion (the model has no
/// SDK to implement it for).
pub trait DynamoValue: Sized {
    fn shape(&self) -> Shape<'_, Self>;
}

impl DynamoValue for serde_dynamo::AttributeValue {
    fn shape(&self) -> Shape<'_, Self> {
        use serde_dynamo::AttributeValue as V;
        match self {
            V::S(s) => Shape::S(s),
            V::N(n) => Shape::N(n),
            V::B(b) => Shape::B(b),
            V::Bool(_) => Shape::Bool,
            V::Null(_) => Shape::Null,
            V::L(list) => Shape::L(list),
            V::M(map) => Shape::M(map),
            V::Ss(set) => Shape::Ss(set),
            V::Ns(set) => Shape::Ns(set),
            V::Bs(set) => Shape::Bs(set.iter().map(Vec::as_slice).collect()),
        }
    }
}

/// DynamoDB's name of a value's type (`S`, `N`, `M`...).
pub fn type_name<A: DynamoValue>(value: &A) -> &'static str {
    match value.shape() {
        Shape::S(_) => "S",
        Shape::N(_) => "N",
        Shape::B(_) => "B",
        Shape::Bool => "BOOL",
        Shape::Null => "NULL",
        Shape::L(_) => "L",
        Shape::M(_) => "M",
        Shape::Ss(_) => "SS",
        Shape::Ns(_) => "NS",
        Shape::Bs(_) => "BS",
        Shape::Unknown => "unknown",
    }
}

/// Every rule DynamoDB applies to an item `table` stores (PutItem): names, values, the table's
/// keys (required) and its indexes' keys (when present), and the item's size.
pub fn check_item<A: DynamoValue>(
    table: KeyTable,
    item: &HashMap<String, A>,
) -> Result<(), Vec<FieldError>> {
    let mut errors = attribute_errors(item);
    errors.extend(key_errors(table, item));
    if let Some(error) = size_error(item) {
        errors.push(error);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The rules DynamoDB applies to values it is only given to compare (a condition's
/// ExpressionAttributeValues, named here by the attributes they stand for): names and values,
/// but no key or size rule.
pub fn check_values<A: DynamoValue>(values: &HashMap<String, A>) -> Result<(), Vec<FieldError>> {
    let errors = attribute_errors(values);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The item's size as DynamoDB counts it against its 400 KB: each attribute's name and value.
pub fn item_size<A: DynamoValue>(item: &HashMap<String, A>) -> usize {
    item.iter()
        .map(|(name, value)| name.len().saturating_add(value_size(value, 1)))
        .fold(0, usize::saturating_add)
}

/// Whether DynamoDB takes `text` as a number: its syntax, at most 38 significant digits, and
/// its range.
pub fn check_number(text: &str) -> Result<(), String> {
    Decimal::parse(text).map(|_| ())
}

fn attribute_errors<A: DynamoValue>(item: &HashMap<String, A>) -> Vec<FieldError> {
    let mut names: Vec<&String> = item.keys().collect();
    names.sort();
    let mut errors = Vec::new();
    for name in names {
        let path = segment(name);
        if let Some(message) = name_error(name, "attribute name") {
            errors.push(FieldError::new(path.clone(), message));
        }
        value_errors(&path, &item[name], 1, &mut errors);
    }
    errors
}

/// Naming rules: at least one character, less than 64 KB; the same for map keys, which are the
/// names of nested attributes.
fn name_error(name: &str, what: &str) -> Option<String> {
    if name.is_empty() {
        Some(format!("DynamoDB refuses an empty {what}"))
    } else if name.len() > MAX_ATTRIBUTE_NAME_BYTES {
        Some(format!(
            "DynamoDB takes names of less than 64 KB; this {what} is {} bytes",
            name.len()
        ))
    } else {
        None
    }
}

fn value_errors<A: DynamoValue>(path: &str, value: &A, level: usize, errors: &mut Vec<FieldError>) {
    // Quotas, "Attributes": nesting; deeper values are not looked at (and never recursed into).
    if level > MAX_NESTING_LEVELS {
        errors.push(FieldError::new(
            path,
            format!("nested deeper than DynamoDB's {MAX_NESTING_LEVELS} levels"),
        ));
        return;
    }
    match value.shape() {
        Shape::S(_) | Shape::B(_) | Shape::Bool | Shape::Null => {}
        Shape::N(text) => {
            if let Err(message) = Decimal::parse(text) {
                errors.push(FieldError::new(path, message));
            }
        }
        Shape::L(list) => {
            for (i, element) in list.iter().enumerate() {
                value_errors(&format!("{path}[{i}]"), element, level + 1, errors);
            }
        }
        Shape::M(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for key in keys {
                let nested = format!("{path}.{}", segment(key));
                if let Some(message) = name_error(key, "map key") {
                    errors.push(FieldError::new(nested.clone(), message));
                }
                value_errors(&nested, &map[key], level + 1, errors);
            }
        }
        // Data types, "Sets": not empty, every value unique (empty strings and binaries are
        // allowed in a set).
        Shape::Ss(set) => set_errors(path, "SS", set.iter().map(|s| Ok(s.as_str())), errors),
        Shape::Bs(set) => set_errors(path, "BS", set.into_iter().map(Ok), errors),
        Shape::Ns(set) => set_errors(
            path,
            "NS",
            // Numbers are one value however written (`1` and `1.0`): parsed, they are equal.
            set.iter().map(|n| Decimal::parse(n)),
            errors,
        ),
        Shape::Unknown => errors.push(FieldError::new(
            path,
            "an attribute type this control plane does not know",
        )),
    }
}

fn set_errors<T: Eq + std::hash::Hash>(
    path: &str,
    kind: &str,
    elements: impl Iterator<Item = Result<T, String>>,
    errors: &mut Vec<FieldError>,
) {
    let mut seen = HashSet::new();
    let mut count = 0;
    for (i, element) in elements.enumerate() {
        count += 1;
        match element {
            Err(message) => errors.push(FieldError::new(format!("{path}[{i}]"), message)),
            Ok(value) if seen.contains(&value) => errors.push(FieldError::new(
                format!("{path}[{i}]"),
                format!("DynamoDB refuses a duplicate in a set ({kind})"),
            )),
            Ok(value) => {
                seen.insert(value);
            }
        }
    }
    if count == 0 {
        errors.push(FieldError::new(
            path,
            format!("DynamoDB refuses an empty set ({kind})"),
        ));
    }
}

/// The table's keys are required; every key attribute present (the indexes are sparse) must be
/// of its declared type, and not empty nor longer than its key may be.
fn key_errors<A: DynamoValue>(table: KeyTable, item: &HashMap<String, A>) -> Vec<FieldError> {
    let keys: Vec<&KeyAttribute> = TABLE_KEYS
        .iter()
        .filter(|k| k.tables.contains(&table))
        .collect();
    let mut names: Vec<&str> = keys.iter().map(|k| k.name).collect();
    names.sort_unstable();
    names.dedup();
    let mut errors = Vec::new();
    for name in names {
        let roles: Vec<&KeyAttribute> = keys.iter().copied().filter(|k| k.name == name).collect();
        let described = roles
            .iter()
            .map(|k| describe_role(k))
            .collect::<Vec<_>>()
            .join(" and ");
        let Some(value) = item.get(name) else {
            if roles.iter().any(|k| k.index.is_none()) {
                errors.push(FieldError::new(
                    name,
                    format!("is required: it is {described}"),
                ));
            }
            continue;
        };
        // One declared type per attribute (DynamoDB's AttributeDefinitions); the strictest length.
        let declared = roles[0].declared;
        let max_bytes = if roles.iter().any(|k| k.role == KeyRole::Sort) {
            MAX_SORT_KEY_BYTES
        } else {
            MAX_PARTITION_KEY_BYTES
        };
        let bytes = match (declared, value.shape()) {
            (ScalarType::S, Shape::S(s)) => s.len(),
            (ScalarType::B, Shape::B(b)) => b.len(),
            (ScalarType::N, Shape::N(_)) => continue,
            _ => {
                errors.push(FieldError::new(
                    name,
                    format!(
                        "must be {} ({declared:?}), got {}: DynamoDB requires it of {described}",
                        match declared {
                            ScalarType::S => "a string",
                            ScalarType::N => "a number",
                            ScalarType::B => "binary",
                        },
                        type_name(value)
                    ),
                ));
                continue;
            }
        };
        if bytes == 0 {
            errors.push(FieldError::new(
                name,
                format!("must not be empty: DynamoDB requires a value of {described}"),
            ));
        } else if bytes > max_bytes {
            errors.push(FieldError::new(
                name,
                format!("is {bytes} bytes: DynamoDB takes at most {max_bytes} in {described}"),
            ));
        }
    }
    errors
}

fn describe_role(key: &KeyAttribute) -> String {
    let role = match key.role {
        KeyRole::Partition => "partition key",
        KeyRole::Sort => "sort key",
    };
    match key.index {
        None => format!("the table's {role}"),
        Some(index) => format!("the {role} of index {index:?}"),
    }
}

/// Item sizes and formats: names and values, strings and binaries by their bytes, numbers by
/// their significant digits, 1 byte for a boolean or null, and 3 bytes for a list or map plus
/// 1 byte per element (with its key, for a map).
fn value_size<A: DynamoValue>(value: &A, level: usize) -> usize {
    // Beyond the nesting limit the item is refused anyway: not recursed into.
    if level > MAX_NESTING_LEVELS + 1 {
        return 0;
    }
    match value.shape() {
        Shape::S(s) => s.len(),
        Shape::B(b) => b.len(),
        Shape::N(n) => number_size(n),
        Shape::Bool | Shape::Null => 1,
        Shape::L(list) => list
            .iter()
            .map(|element| value_size(element, level + 1).saturating_add(1))
            .fold(3, usize::saturating_add),
        Shape::M(map) => map
            .iter()
            .map(|(key, element)| {
                key.len()
                    .saturating_add(value_size(element, level + 1))
                    .saturating_add(1)
            })
            .fold(3, usize::saturating_add),
        Shape::Ss(set) => set.iter().map(String::len).fold(0, usize::saturating_add),
        Shape::Bs(set) => set.iter().map(|b| b.len()).fold(0, usize::saturating_add),
        Shape::Ns(set) => set
            .iter()
            .map(|n| number_size(n))
            .fold(0, usize::saturating_add),
        Shape::Unknown => 0,
    }
}

/// 1 byte per two significant digits, plus 1 (a number DynamoDB would refuse: its text length).
fn number_size(text: &str) -> usize {
    match Decimal::parse(text) {
        Ok(decimal) => decimal.digits.len().div_ceil(2) + 1,
        Err(_) => text.len(),
    }
}

/// An item over 400 KB, named after its largest part (descending into maps and lists), which is
/// what a writer would shrink.
fn size_error<A: DynamoValue>(item: &HashMap<String, A>) -> Option<FieldError> {
    let size = item_size(item);
    if size <= MAX_ITEM_BYTES {
        return None;
    }
    let (name, mut value) = item
        .iter()
        .max_by_key(|&(name, value)| (name.len() + value_size(value, 1), name))?;
    let mut path = segment(name);
    let mut part = name.len() + value_size(value, 1);
    for level in 2..=MAX_NESTING_LEVELS {
        let largest = match value.shape() {
            Shape::M(map) => map
                .iter()
                .map(|(key, v)| (segment(key), key.len() + value_size(v, level), v))
                .max_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)))
                .map(|(key, bytes, v)| (format!("{path}.{key}"), bytes, v)),
            Shape::L(list) => list
                .iter()
                .enumerate()
                .map(|(i, v)| (i, value_size(v, level), v))
                .max_by_key(|(i, bytes, _)| (*bytes, std::cmp::Reverse(*i)))
                .map(|(i, bytes, v)| (format!("{path}[{i}]"), bytes, v)),
            _ => None,
        };
        match largest {
            Some((nested, bytes, v)) => {
                path = nested;
                part = bytes;
                value = v;
            }
            None => break,
        }
    }
    Some(FieldError::new(
        path,
        format!(
            "makes the item {size} bytes as DynamoDB counts them, over its 400 KB limit \
             ({MAX_ITEM_BYTES} bytes); this part is {part} bytes"
        ),
    ))
}

/// A path segment for a name: as is, or quoted when it would read as something else (empty, or
/// holding `.`, `[`, `]`, `"` or whitespace).
fn segment(name: &str) -> String {
    let plain = !name.is_empty()
        && !name
            .chars()
            .any(|c| matches!(c, '.' | '[' | ']' | '"') || c.is_whitespace() || c.is_control());
    if plain {
        name.to_owned()
    } else {
        format!("{name:?}")
    }
}

/// What a refused value looks like in a message: its start, so a huge value never makes a huge
/// reason.
fn shown(text: &str) -> String {
    const SHOWN: usize = 40;
    if text.chars().count() <= SHOWN {
        format!("{text:?}")
    } else {
        let start: String = text.chars().take(SHOWN).collect();
        format!("{start:?}… ({} bytes)", text.len())
    }
}

/// A DynamoDB number: sign, significant digits (no leading or trailing zeros; none for zero)
/// and the exponent of the first of them. Every way of writing one number parses to the same.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Decimal {
    negative: bool,
    digits: String,
    exponent: i64,
}

impl Decimal {
    /// The syntax DynamoDB's numbers take (as Java's BigDecimal reads them): an optional sign,
    /// digits with at most one decimal point, and an optional exponent; nothing else (no
    /// spaces, `NaN` or `Infinity`).
    fn parse(text: &str) -> Result<Self, String> {
        let not_a_number = || format!("{} is not a number DynamoDB accepts", shown(text));
        let (negative, unsigned) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
            Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
            None => (unsigned, None),
        };
        let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.len() + fraction.len() == 0 || !all_digits(whole) || !all_digits(fraction) {
            return Err(not_a_number());
        }
        let exponent = match exponent {
            None => 0,
            Some(e) => {
                let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
                if digits.is_empty() || !all_digits(digits) {
                    return Err(not_a_number());
                }
                // Saturates far beyond any range a 400 KB item could bring back.
                let magnitude = digits.bytes().fold(0i64, |acc, b| {
                    acc.saturating_mul(10)
                        .saturating_add(i64::from(b - b'0'))
                        .min(1 << 40)
                });
                if e.starts_with('-') {
                    -magnitude
                } else {
                    magnitude
                }
            }
        };
        let all: String = format!("{whole}{fraction}");
        let leading = all.bytes().take_while(|&b| b == b'0').count();
        let digits = all[leading..].trim_end_matches('0').to_owned();
        if digits.is_empty() {
            return Ok(Self {
                negative: false,
                digits,
                exponent: 0,
            });
        }
        let exponent = exponent
            .saturating_add(i64::try_from(whole.len()).unwrap_or(i64::MAX))
            .saturating_sub(i64::try_from(leading).unwrap_or(i64::MAX))
            .saturating_sub(1);
        if digits.len() > MAX_SIGNIFICANT_DIGITS {
            return Err(format!(
                "{} has {} significant digits: DynamoDB keeps at most {MAX_SIGNIFICANT_DIGITS}",
                shown(text),
                digits.len()
            ));
        }
        if !(MIN_EXPONENT..=MAX_EXPONENT).contains(&exponent) {
            return Err(format!(
                "{} is beyond DynamoDB's number range (magnitude {NUMBER_RANGE})",
                shown(text)
            ));
        }
        Ok(Self {
            negative,
            digits,
            exponent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_dynamo::AttributeValue as V;

    fn s(text: &str) -> V {
        V::S(text.to_owned())
    }

    fn n(text: &str) -> V {
        V::N(text.to_owned())
    }

    fn m(entries: &[(&str, V)]) -> V {
        V::M(
            entries
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        )
    }

    /// A SPEC-like item with valid keys, and `extra` attributes.
    fn item(extra: &[(&str, V)]) -> HashMap<String, V> {
        let mut item: HashMap<String, V> = [
            ("pk", s("TENANT#acme")),
            ("sk", s("SPEC")),
            ("tenant_id", s("acme")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (k, v) in extra {
            item.insert((*k).to_owned(), v.clone());
        }
        item
    }

    fn errors(item: &HashMap<String, V>) -> Vec<(String, String)> {
        errors_in(KeyTable::Specs, item)
    }

    fn errors_in(table: KeyTable, item: &HashMap<String, V>) -> Vec<(String, String)> {
        check_item(table, item)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.field, e.message))
            .collect()
    }

    fn only(item: &HashMap<String, V>) -> (String, String) {
        only_in(KeyTable::Specs, item)
    }

    fn only_in(table: KeyTable, item: &HashMap<String, V>) -> (String, String) {
        let found = errors_in(table, item);
        assert_eq!(found.len(), 1, "{found:?}");
        found.into_iter().next().unwrap_or_default()
    }

    fn nested(levels: usize) -> V {
        (0..levels).fold(s("leaf"), |inner, _| m(&[("n", inner)]))
    }

    #[test]
    fn a_valid_item_passes() {
        let valid = item(&[
            ("account_id", s("111111111111")),
            ("empty_string_is_fine", s("")),
            ("empty_binary_is_fine", V::B(Vec::new())),
            (
                "config",
                m(&[("player_count", n("5")), ("flag", V::Bool(true))]),
            ),
            ("list", V::L(vec![n("-1.5e3"), V::Null(true), m(&[])])),
            ("set", V::Ss(vec!["a".into(), "".into()])),
            ("numbers", V::Ns(vec!["1".into(), "2".into()])),
            ("blobs", V::Bs(vec![vec![1], vec![]])),
        ]);
        assert_eq!(check_item(KeyTable::Specs, &valid), Ok(()));
    }

    #[test]
    fn names_and_map_keys_must_not_be_empty() {
        assert_eq!(
            only(&item(&[("", s("x"))])),
            (
                "\"\"".into(),
                "DynamoDB refuses an empty attribute name".into()
            )
        );
        let selection = m(&[("config", m(&[("", s("hard"))]))]);
        assert_eq!(
            only(&item(&[("selection", selection)])),
            (
                "selection.config.\"\"".into(),
                "DynamoDB refuses an empty map key".into()
            )
        );
        let long = "k".repeat(MAX_ATTRIBUTE_NAME_BYTES + 1);
        let (field, message) = only(&item(&[("config", m(&[(long.as_str(), s("x"))]))]));
        assert!(field.starts_with("config.k"), "{field}");
        assert!(message.contains("less than 64 KB"), "{message}");
    }

    #[test]
    fn names_that_would_misread_are_quoted_in_paths() {
        let config = m(&[("a.b", m(&[("", s("x"))]))]);
        assert_eq!(only(&item(&[("config", config)])).0, "config.\"a.b\".\"\"");
        let list = V::L(vec![s("ok"), m(&[("", s("x"))])]);
        assert_eq!(only(&item(&[("tags", list)])).0, "tags[1].\"\"");
    }

    #[test]
    fn numbers_keep_at_most_38_significant_digits() {
        let max = "9".repeat(38);
        for good in [
            max.as_str(),
            "12345678901234567890123456789012345678000000", // 38 significant, then zeros
            "0.00000000000000000000000000000000000000000001",
            "1000000000000000000000000000000000000000", // 1 significant digit
            "-0",
            "0.000",
            "007",
        ] {
            assert_eq!(check_number(good), Ok(()), "{good}");
        }
        let too_precise = "1".repeat(39);
        let (field, message) = only(&item(&[(
            "config",
            m(&[("player_count", n(&too_precise))]),
        )]));
        assert_eq!(field, "config.player_count");
        assert!(
            message.contains("has 39 significant digits: DynamoDB keeps at most 38"),
            "{message}"
        );
        assert!(check_number("1.00000000000000000000000000000000000001").is_err());
    }

    #[test]
    fn numbers_stay_within_dynamodbs_range() {
        for good in [
            "1E-130",
            "-1e-130",
            "9.9999999999999999999999999999999999999E+125",
            "-9.9999999999999999999999999999999999999E125",
            "0.1e-129",
            "100e123",
        ] {
            assert_eq!(check_number(good), Ok(()), "{good}");
        }
        for bad in [
            "1E126",
            "10E125",
            "1E-131",
            "0.1E-130",
            "-1e200",
            "1e999999999999999999999",
        ] {
            let message = check_number(bad).expect_err(bad);
            assert!(
                message.contains("beyond DynamoDB's number range"),
                "{bad}: {message}"
            );
        }
    }

    #[test]
    fn numbers_take_dynamodbs_syntax_only() {
        for good in ["5", "+5", "-5", "5.", ".5", "5.5e-3", "5E+3", "0e0"] {
            assert_eq!(check_number(good), Ok(()), "{good}");
        }
        for bad in [
            "", " 5", "5 ", "-", "+", ".", "e5", "5e", "5e+", "1.2.3", "0x10", "NaN", "Infinity",
            "1_000", "--5", "5e1.5", "٥",
        ] {
            let message = check_number(bad).expect_err(bad);
            assert!(
                message.contains("is not a number DynamoDB accepts"),
                "{bad}: {message}"
            );
        }
        // A huge refused value is not copied whole into the message.
        let huge = format!("x{}", "9".repeat(10_000));
        assert!(check_number(&huge).expect_err("huge").len() < 200);
    }

    #[test]
    fn sets_are_not_empty_and_hold_no_duplicates() {
        assert_eq!(
            only(&item(&[("tags", V::Ss(Vec::new()))])),
            ("tags".into(), "DynamoDB refuses an empty set (SS)".into())
        );
        assert_eq!(
            only(&item(&[("ns", V::Ns(Vec::new()))])).1,
            "DynamoDB refuses an empty set (NS)"
        );
        assert_eq!(
            only(&item(&[("bs", V::Bs(Vec::new()))])).1,
            "DynamoDB refuses an empty set (BS)"
        );
        assert_eq!(
            only(&item(&[(
                "tags",
                V::Ss(vec!["a".into(), "b".into(), "a".into()])
            )])),
            (
                "tags[2]".into(),
                "DynamoDB refuses a duplicate in a set (SS)".into()
            )
        );
        // The same number however written.
        assert_eq!(
            only(&item(&[("ns", V::Ns(vec!["1".into(), "1.0".into()]))])).0,
            "ns[1]"
        );
        assert_eq!(
            only(&item(&[("ns", V::Ns(vec!["0".into(), "-0.00".into()]))])).0,
            "ns[1]"
        );
        assert_eq!(
            only(&item(&[("bs", V::Bs(vec![vec![1], vec![1]]))])).0,
            "bs[1]"
        );
        assert_eq!(
            only(&item(&[("ns", V::Ns(vec!["1".into(), "1e200".into()]))])).0,
            "ns[1]"
        );
    }

    #[test]
    fn nesting_stops_at_32_levels() {
        assert_eq!(
            check_item(KeyTable::Specs, &item(&[("doc", nested(31))])),
            Ok(())
        );
        let (field, message) = only(&item(&[("doc", nested(32))]));
        assert_eq!(field, format!("doc{}", ".n".repeat(32)));
        assert!(message.contains("32 levels"), "{message}");
        // Lists count as levels too; a very deep value is checked without recursing into it.
        let deep_list = (0..1_000).fold(s("leaf"), |inner, _| V::L(vec![inner]));
        assert_eq!(errors(&item(&[("doc", deep_list)])).len(), 1);
    }

    #[test]
    fn the_tables_keys_are_required_strings_within_their_lengths() {
        let mut no_keys = item(&[]);
        no_keys.remove("pk");
        no_keys.remove("sk");
        let found = errors(&no_keys);
        assert_eq!(
            found,
            [
                (
                    "pk".to_owned(),
                    "is required: it is the table's partition key".to_owned()
                ),
                (
                    "sk".to_owned(),
                    "is required: it is the table's sort key and the sort key of index \"tenants\""
                        .to_owned()
                ),
            ]
        );
        assert!(
            only(&item(&[("pk", s(""))]))
                .1
                .starts_with("must not be empty")
        );
        assert_eq!(
            only(&item(&[("pk", n("1"))])).1.split(':').next(),
            Some("must be a string (S), got N")
        );
        assert_eq!(
            check_item(KeyTable::Specs, &item(&[("pk", s(&"p".repeat(2048)))])),
            Ok(())
        );
        assert!(
            only(&item(&[("pk", s(&"p".repeat(2049)))]))
                .1
                .contains("at most 2048")
        );
        assert_eq!(
            check_item(KeyTable::Specs, &item(&[("sk", s(&"s".repeat(1024)))])),
            Ok(())
        );
        assert!(
            only(&item(&[("sk", s(&"s".repeat(1025)))]))
                .1
                .contains("at most 1024")
        );
    }

    #[test]
    fn index_keys_are_optional_but_of_their_declared_type() {
        let mut sparse = item(&[]);
        sparse.remove("tenant_id");
        assert_eq!(check_item(KeyTable::Specs, &sparse), Ok(()));
        assert_eq!(
            only(&item(&[("tenant_id", n("7"))])),
            (
                "tenant_id".into(),
                "must be a string (S), got N: DynamoDB requires it of the partition key of index \
                 \"tenants\""
                    .into()
            )
        );
        // The control-plane table's indexes: `status` is a key there, `tenant_id` a sort key
        // too (1024 bytes at most).
        let control = KeyTable::Control;
        assert_eq!(
            only_in(control, &item(&[("status", V::Bool(true))])).0,
            "status"
        );
        assert!(
            only_in(control, &item(&[("status", s(""))]))
                .1
                .starts_with("must not be empty")
        );
        assert!(
            only_in(control, &item(&[("tenant_id", s(&"t".repeat(1025)))]))
                .1
                .contains("at most 1024")
        );
        assert_eq!(
            check_item(
                KeyTable::Specs,
                &item(&[("tenant_id", s(&"t".repeat(1025)))])
            ),
            Ok(())
        );
    }

    #[test]
    fn sizes_are_counted_as_dynamodb_counts_them() {
        let sized: HashMap<String, V> = [
            ("id", s("abc")),                             // 2 + 3
            ("n", n("12345")),                            // 1 + 3 + 1
            ("flag", V::Bool(true)),                      // 4 + 1
            ("l", V::L(vec![s("xy")])),                   // 1 + 3 + (2 + 1)
            ("m", m(&[("k", s("v"))])),                   // 1 + 3 + (1 + 1 + 1)
            ("z", n("0")),                                // 1 + 1
            ("ss", V::Ss(vec!["ab".into(), "c".into()])), // 2 + 3
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(item_size(&sized), 5 + 5 + 5 + 7 + 7 + 2 + 5);
    }

    #[test]
    fn an_item_over_400_kb_is_refused_naming_its_largest_part() {
        let keys = item_size(&item(&[("config", m(&[("seed", s(""))]))]));
        let fits = MAX_ITEM_BYTES - keys;
        let at_limit = item(&[("config", m(&[("seed", s(&"x".repeat(fits)))]))]);
        assert_eq!(item_size(&at_limit), MAX_ITEM_BYTES);
        assert_eq!(check_item(KeyTable::Specs, &at_limit), Ok(()));
        // One byte more, and another entry (5 + 1 + 1 bytes): the largest part is named.
        let over = item(&[(
            "config",
            m(&[("seed", s(&"x".repeat(fits + 1))), ("other", s("y"))]),
        )]);
        let (field, message) = only(&over);
        assert_eq!(field, "config.seed");
        assert!(
            message.contains(&format!("makes the item {} bytes", MAX_ITEM_BYTES + 8)),
            "{message}"
        );
    }

    #[test]
    fn condition_values_get_the_value_rules_but_no_key_or_size_rule() {
        let values: HashMap<String, V> = [("config".to_owned(), m(&[("", n("1e300"))]))].into();
        let found = check_values(&values).expect_err("refused");
        let fields: Vec<&str> = found.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["config.\"\"", "config.\"\""]);
        let keyless: HashMap<String, V> = [("updated_by".to_owned(), s("x"))].into();
        assert_eq!(check_values(&keyless), Ok(()));
    }

    /// Each table's own index keys: `status` is a key of the control-plane table's `by-status`
    /// index, and plain data in the SPEC table, where DynamoDB takes any type.
    #[test]
    fn an_attribute_is_checked_as_a_key_only_in_the_table_that_indexes_it() {
        let numbered = item(&[("status", n("7"))]);
        assert_eq!(check_item(KeyTable::Specs, &numbered), Ok(()));
        let refused = check_item(KeyTable::Control, &numbered).unwrap_err();
        assert_eq!(refused[0].field, "status");
        assert!(
            refused[0].message.contains("index \"by-status\""),
            "{}",
            refused[0].message
        );
    }

    /// The key attributes and types above are template.yaml's `TenantsTable` and
    /// `ControlTable`, and nothing else.
    #[test]
    fn table_keys_match_template_yaml() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
        let text = std::fs::read_to_string(&path).expect("template.yaml");
        let template: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("parses");
        let text_of = |v: &serde_yaml_ng::Value| v.as_str().unwrap_or_default().to_owned();
        let mut declared: HashMap<String, String> = HashMap::new();
        let mut keys: Vec<(String, Option<String>, String, String, String)> = Vec::new();
        for (resource, ours_of) in [
            ("TenantsTable", KeyTable::Specs),
            ("ControlTable", KeyTable::Control),
        ] {
            let table = &template["Resources"][resource]["Properties"];
            let ours: HashMap<String, String> = table["AttributeDefinitions"]
                .as_sequence()
                .expect("AttributeDefinitions")
                .iter()
                .map(|d| (text_of(&d["AttributeName"]), text_of(&d["AttributeType"])))
                .collect();
            let mut add = |index: Option<String>, schema: &serde_yaml_ng::Value| {
                for key in schema.as_sequence().expect("KeySchema") {
                    let name = text_of(&key["AttributeName"]);
                    let kind = ours.get(&name).cloned().unwrap_or_default();
                    keys.push((
                        format!("{ours_of:?}"),
                        index.clone(),
                        name,
                        text_of(&key["KeyType"]),
                        kind,
                    ));
                }
            };
            add(None, &table["KeySchema"]);
            for index in table["GlobalSecondaryIndexes"]
                .as_sequence()
                .expect("GlobalSecondaryIndexes")
            {
                add(Some(text_of(&index["IndexName"])), &index["KeySchema"]);
            }
            for (name, kind) in ours {
                let previous = declared.insert(name.clone(), kind.clone());
                assert!(
                    previous.is_none_or(|p| p == kind),
                    "{name} is declared with one type in both tables"
                );
            }
        }
        let mut in_template = keys;
        in_template.sort();
        let mut ours: Vec<(String, Option<String>, String, String, String)> = TABLE_KEYS
            .iter()
            .flat_map(|k| {
                k.tables.iter().map(move |table| {
                    (
                        format!("{table:?}"),
                        k.index.map(str::to_owned),
                        k.name.to_owned(),
                        match k.role {
                            KeyRole::Partition => "HASH".to_owned(),
                            KeyRole::Sort => "RANGE".to_owned(),
                        },
                        format!("{:?}", k.declared),
                    )
                })
            })
            .collect();
        ours.sort();
        assert_eq!(ours, in_template);
        let mut defined: Vec<&String> = declared.keys().collect();
        defined.sort();
        let mut named: Vec<&str> = TABLE_KEYS.iter().map(|k| k.name).collect();
        named.sort_unstable();
        named.dedup();
        assert_eq!(defined, named);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn name() -> impl Strategy<Value = String> {
            prop_oneof![Just(String::new()), "[a-z_.]{1,6}", "\\PC{0,4}"]
        }

        fn number() -> impl Strategy<Value = String> {
            prop_oneof![
                "-?[0-9]{1,45}(\\.[0-9]{0,10})?([eE][+-]?[0-9]{1,4})?",
                "\\PC{0,8}",
                any::<i64>().prop_map(|n| n.to_string()),
                any::<f64>().prop_map(|f| f.to_string()),
            ]
        }

        fn value() -> impl Strategy<Value = V> {
            let leaf = prop_oneof![
                "\\PC{0,8}".prop_map(V::S),
                number().prop_map(V::N),
                any::<bool>().prop_map(V::Bool),
                Just(V::Null(true)),
                proptest::collection::vec(any::<u8>(), 0..4).prop_map(V::B),
                proptest::collection::vec("[a-c]{0,2}", 0..4).prop_map(V::Ss),
                proptest::collection::vec(number(), 0..3).prop_map(V::Ns),
                proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..2), 0..3)
                    .prop_map(V::Bs),
            ];
            leaf.prop_recursive(6, 48, 4, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..4).prop_map(V::L),
                    proptest::collection::hash_map(name(), inner, 0..4).prop_map(V::M),
                ]
            })
        }

        fn any_item() -> impl Strategy<Value = HashMap<String, V>> {
            (
                proptest::collection::hash_map(name(), value(), 0..5),
                any::<bool>(),
            )
                .prop_map(|(mut item, keyed)| {
                    if keyed {
                        item.insert("pk".into(), s("TENANT#acme"));
                        item.insert("sk".into(), s("SPEC"));
                    }
                    item
                })
        }

        proptest! {
            /// Never a panic; and what the checker accepts comes back unchanged through DynamoDB
            /// JSON (stream images). The SDK's type is the adapter's round trip (controlplane).
            #[test]
            fn accepted_items_round_trip_unchanged(item in any_item()) {
                let verdict = check_item(KeyTable::Specs, &item);
                if verdict.is_ok() {
                    let decoded = serde_dynamo::Item::from(item.clone());
                    let json = serde_json::to_string(&decoded).expect("DynamoDB JSON");
                    let parsed: serde_dynamo::Item = serde_json::from_str(&json).expect("parses");
                    let parsed: HashMap<String, V> = parsed.into();
                    prop_assert_eq!(&parsed, &item);
                } else {
                    let errors = verdict.err().unwrap_or_default();
                    prop_assert!(!errors.is_empty());
                    prop_assert!(errors.iter().all(|e| !e.message.is_empty()));
                }
            }
        }
    }
}
