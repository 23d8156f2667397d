//! The desired state of a tenant (its SPEC row) and every validation rule of the table contract.
//!
//! Validation works on the decoded `serde_dynamo::Item` rather than a derived struct so that each
//! error can name its field and say what was found; all rules report together, not first-only.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate};
use serde::{Deserialize, Serialize};
use serde_dynamo::{AttributeValue, Item};

pub const PK_PREFIX: &str = "TENANT#";
pub const SPEC_SK: &str = "SPEC";
pub const STATUS_SK: &str = "STATUS";
/// The attributes of the SPEC row's contract (docs/table-contract.md); others are kept and
/// ignored.
pub const SPEC_ATTRIBUTES: &[&str] = &[
    "tenant_id",
    "account_id",
    "region",
    "config",
    "template_version",
    "decommission_date",
    "retry",
    "drift_policy",
    "updated_by",
];

/// The tenant a row belongs to, as named by its partition key. Not validated: a SPEC with a bad
/// tenant id still gets its `failed` STATUS under the same key, so the writer can see why.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TenantKey(String);

impl TenantKey {
    /// The key of `pk = "TENANT#<id>"`; `None` when the pk is not a tenant's.
    pub fn from_pk(pk: &str) -> Option<Self> {
        pk.strip_prefix(PK_PREFIX)
            .filter(|id| !id.is_empty())
            .map(|id| Self(id.to_owned()))
    }

    pub fn new(tenant_id: impl Into<String>) -> Self {
        Self(tenant_id.into())
    }

    /// The key of a tenant id that may name a stored row, valid or not: any id DynamoDB takes
    /// in a partition key. A SPEC written around the API with a bad id (`t1`) is recorded
    /// `failed` under it, and must stay readable and removable by that id.
    pub fn addressable(tenant_id: &str) -> Option<Self> {
        let key = Self::new(tenant_id);
        (!tenant_id.is_empty() && key.pk().len() <= crate::dynamo_rules::MAX_PARTITION_KEY_BYTES)
            .then_some(key)
    }

    pub fn pk(&self) -> String {
        format!("{PK_PREFIX}{}", self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TenantKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One rule broken by a SPEC, naming the field (`config.player_count` for config entries).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Field errors as one line: `field: message; field: message`.
pub fn joined(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// How much of one field error a reason keeps (a huge bad value is quoted in full otherwise).
pub const REASON_ERROR_MAX_BYTES: usize = 512;
/// How much a reason keeps in all: the STATUS row, its lifecycle event and its audit line each
/// carry it, and each must stay within DynamoDB's 400 KB per item, however bad the SPEC.
pub const REASON_MAX_BYTES: usize = 8 * 1024;

/// How a reason made of a SPEC's field errors starts.
pub const INVALID_SPEC_PREFIX: &str = "invalid SPEC: ";

/// Joins field errors into the one readable `reason` a STATUS row carries, bounded.
pub fn describe_errors(errors: &[FieldError]) -> String {
    let parts: Vec<String> = errors
        .iter()
        .map(|e| bounded(e.to_string(), REASON_ERROR_MAX_BYTES))
        .collect();
    let reason = format!("{INVALID_SPEC_PREFIX}{}", parts.join("; "));
    if reason.len() <= REASON_MAX_BYTES {
        return reason;
    }
    let mut cut = bounded(reason, REASON_MAX_BYTES);
    cut.push_str(&format!(" ({} fields at fault in all)", errors.len()));
    cut
}

/// A reason for one line of a console or a table: whole when it fits in `max_chars`, else, for
/// a SPEC's field errors, the first ones that fit and how many more there are (`… and 297
/// more`); anything else cut, marked `…`. The whole reason stays on STATUS.
pub fn reason_summary(reason: &str, max_chars: usize) -> String {
    let length = |text: &str| text.chars().count();
    if length(reason) <= max_chars {
        return reason.to_owned();
    }
    let cut = |text: &str, max: usize| -> String {
        let mut kept: String = text.chars().take(max.saturating_sub(1)).collect();
        kept.push('…');
        kept
    };
    let Some(errors) = reason.strip_prefix(INVALID_SPEC_PREFIX) else {
        return cut(reason, max_chars);
    };
    // A reason bounded by `describe_errors` says how many there were in all.
    let (errors, in_all) = match errors
        .strip_suffix(" fields at fault in all)")
        .and_then(|rest| rest.rsplit_once(" ("))
        .and_then(|(rest, count)| Some((rest, count.parse::<usize>().ok()?)))
    {
        Some((rest, count)) => (rest, Some(count)),
        None => (errors, None),
    };
    let parts: Vec<&str> = errors.split("; ").collect();
    let total = in_all.unwrap_or(parts.len()).max(parts.len());
    let mut shown = INVALID_SPEC_PREFIX.to_owned();
    for (index, part) in parts.iter().enumerate() {
        let more = format!(" … and {} more", total - index);
        let separator = if index == 0 { "" } else { "; " };
        if length(&shown) + length(separator) + length(part) + length(&more) > max_chars {
            if index == 0 {
                return cut(reason, max_chars);
            }
            shown.push_str(&more);
            return shown;
        }
        shown.push_str(separator);
        shown.push_str(part);
    }
    shown
}

/// `text` with control characters (a terminal's escapes among them, and line breaks) shown
/// escaped, not sent to the terminal: a reason quotes what a writer put in a SPEC.
pub fn printable(text: &str) -> String {
    let mut shown = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    shown
}

/// `text` cut to at most `max` bytes (on a character boundary), marked `…` when cut.
fn bounded(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push('…');
    text
}

/// A config entry: the value types a stack parameter can be rendered from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum ConfigValue {
    String(String),
    /// Kept as DynamoDB's decimal text so `5` stays `5`, never `5.0`.
    Number(String),
    Bool(bool),
    StringList(Vec<String>),
}

/// A valid SPEC row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantSpec {
    pub tenant_id: String,
    pub account_id: String,
    /// `None`: the control plane's own region.
    pub region: Option<String>,
    pub config: BTreeMap<String, ConfigValue>,
    /// `None`: the current template version.
    pub template_version: Option<String>,
    pub decommission_date: Option<String>,
    /// The retry counter as written (decimal text); a new value re-runs a failed tenant.
    pub retry: Option<String>,
    /// What to do when the stack drifts; `None`: the deployment's DRIFT_POLICY.
    pub drift_policy: Option<crate::drift::DriftPolicy>,
    pub updated_by: Option<String>,
}

pub const TENANT_ID_MIN: usize = 3;
pub const TENANT_ID_MAX: usize = 40;
pub const UPDATED_BY_MAX: usize = 256;
pub const TEMPLATE_VERSION_MAX: usize = 64;

impl TenantSpec {
    /// Validates a SPEC item against every rule of the table contract, and against DynamoDB's own
    /// rules (a row only the emulator could hold, written around the control plane, is invalid
    /// too). Unknown attributes are kept by the table and ignored here, but DynamoDB's rules
    /// apply to them as well.
    pub fn parse(key: &TenantKey, item: &Item) -> Result<Self, Vec<FieldError>> {
        let refused =
            crate::dynamo_rules::check_item(crate::dynamo_rules::KeyTable::Specs, item.inner())
                .err()
                .unwrap_or_default();
        let mut errors = Vec::new();
        let tenant_id = required_string(item, "tenant_id", &mut errors);
        let account_id = required_string(item, "account_id", &mut errors);
        let region = optional_string(item, "region", &mut errors);
        let template_version = optional_string(item, "template_version", &mut errors);
        let decommission_date = optional_string(item, "decommission_date", &mut errors);
        let updated_by = optional_string(item, "updated_by", &mut errors);
        let retry = optional_number(item, "retry", &mut errors);
        let drift_policy_text = optional_string(item, "drift_policy", &mut errors);
        let config = parse_config(item.get("config"), &mut errors);

        if let Some(id) = &tenant_id {
            if let Err(message) = check_tenant_id(id) {
                errors.push(FieldError::new("tenant_id", message));
            } else if id != key.as_str() {
                errors.push(FieldError::new(
                    "tenant_id",
                    format!(
                        "must equal the pk suffix: pk is {:?} but tenant_id is {id:?}",
                        key.pk()
                    ),
                ));
            }
        }
        if let Some(account) = &account_id
            && !(account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()))
        {
            errors.push(FieldError::new(
                "account_id",
                format!("must be exactly 12 digits, got {account:?}"),
            ));
        }
        if let Some(region) = &region
            && !is_region_name(region)
        {
            errors.push(FieldError::new(
                "region",
                format!("must be an AWS region name such as \"eu-west-1\", got {region:?}"),
            ));
        }
        if let Some(version) = &template_version
            && let Err(reason) = check_template_version(version)
        {
            errors.push(FieldError::new("template_version", reason));
        }
        if let Some(date) = &decommission_date
            && decommission_instant(date).is_none()
        {
            errors.push(FieldError::new(
                "decommission_date",
                format!(
                    "must be an RFC 3339 date (2027-01-31) or date-time (2027-01-31T00:00:00Z), got {date:?}"
                ),
            ));
        }
        let drift_policy = drift_policy_text.as_deref().and_then(|text| {
            let policy = crate::drift::DriftPolicy::parse(text);
            if policy.is_none() {
                errors.push(FieldError::new(
                    "drift_policy",
                    format!(
                        "must be one of {}, got {text:?}",
                        crate::drift::DriftPolicy::NAMES.join(", ")
                    ),
                ));
            }
            policy
        });
        if let Some(who) = &updated_by
            && who.len() > UPDATED_BY_MAX
        {
            errors.push(FieldError::new(
                "updated_by",
                format!("must be at most {UPDATED_BY_MAX} characters"),
            ));
        }

        // A field DynamoDB refuses is named once, with DynamoDB's reason.
        errors.retain(|e| !refused.iter().any(|r| r.field == e.field));
        let errors: Vec<FieldError> = refused.into_iter().chain(errors).collect();

        match (tenant_id, account_id) {
            (Some(tenant_id), Some(account_id)) if errors.is_empty() => Ok(Self {
                tenant_id,
                account_id,
                region,
                config,
                template_version,
                decommission_date,
                retry,
                drift_policy,
                updated_by,
            }),
            _ => Err(errors),
        }
    }
}

/// The instant a `decommission_date` names: a date means its first moment, UTC.
pub fn decommission_instant(date: &str) -> Option<DateTime<chrono::Utc>> {
    DateTime::parse_from_rfc3339(date)
        .map(|t| t.with_timezone(&chrono::Utc))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(date, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        })
}

/// The tenant id rule: 3-40 of a-z, 0-9 and '-', starting with a letter.
pub fn check_tenant_id(id: &str) -> Result<(), String> {
    let length_ok = (TENANT_ID_MIN..=TENANT_ID_MAX).contains(&id.len());
    let starts_with_letter = id.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
    let charset_ok = id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if length_ok && starts_with_letter && charset_ok {
        Ok(())
    } else {
        Err(format!(
            "must be {TENANT_ID_MIN}-{TENANT_ID_MAX} of a-z, 0-9 and '-', starting with a letter, got {id:?}"
        ))
    }
}

/// `xx-name-N` (and the partitions' `us-gov-west-1`, `cn-north-1`, `eu-isoe-west-1`...).
fn is_region_name(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && region.len() <= 32
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

fn type_name(value: &AttributeValue) -> &'static str {
    match value {
        AttributeValue::N(_) => "N",
        AttributeValue::S(_) => "S",
        AttributeValue::Bool(_) => "BOOL",
        AttributeValue::B(_) => "B",
        AttributeValue::Null(_) => "NULL",
        AttributeValue::M(_) => "M",
        AttributeValue::L(_) => "L",
        AttributeValue::Ss(_) => "SS",
        AttributeValue::Ns(_) => "NS",
        AttributeValue::Bs(_) => "BS",
    }
}

fn required_string(item: &Item, field: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    match item.get(field) {
        None | Some(AttributeValue::Null(_)) => {
            errors.push(FieldError::new(field, "is required"));
            None
        }
        Some(_) => optional_string(item, field, errors),
    }
}

fn optional_string(item: &Item, field: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    match item.get(field) {
        None | Some(AttributeValue::Null(_)) => None,
        Some(AttributeValue::S(s)) => Some(s.clone()),
        Some(other) => {
            errors.push(FieldError::new(
                field,
                format!("must be a string (S), got {}", type_name(other)),
            ));
            None
        }
    }
}

fn optional_number(item: &Item, field: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    match item.get(field) {
        None | Some(AttributeValue::Null(_)) => None,
        Some(AttributeValue::N(n)) => Some(n.clone()),
        Some(other) => {
            errors.push(FieldError::new(
                field,
                format!("must be a number (N), got {}", type_name(other)),
            ));
            None
        }
    }
}

fn parse_config(
    value: Option<&AttributeValue>,
    errors: &mut Vec<FieldError>,
) -> BTreeMap<String, ConfigValue> {
    let mut config = BTreeMap::new();
    let entries = match value {
        None | Some(AttributeValue::Null(_)) => return config,
        Some(AttributeValue::M(entries)) => entries,
        Some(other) => {
            errors.push(FieldError::new(
                "config",
                format!("must be a map (M), got {}", type_name(other)),
            ));
            return config;
        }
    };
    for (key, value) in entries {
        let field = format!("config.{key}");
        let parsed = match value {
            AttributeValue::S(s) => Ok(ConfigValue::String(s.clone())),
            AttributeValue::N(n) => Ok(ConfigValue::Number(n.clone())),
            AttributeValue::Bool(b) => Ok(ConfigValue::Bool(*b)),
            AttributeValue::Ss(list) => Ok(ConfigValue::StringList(list.clone())),
            AttributeValue::L(list) => list
                .iter()
                .map(|element| match element {
                    AttributeValue::S(s) => Ok(s.clone()),
                    other => Err(format!(
                        "a list must hold only strings (S), found {}",
                        type_name(other)
                    )),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(ConfigValue::StringList),
            other => Err(format!(
                "unsupported type {}: use S, N, BOOL, or a list of strings",
                type_name(other)
            )),
        };
        let text_error = match &parsed {
            Ok(ConfigValue::String(text)) => xml_text_error(text),
            Ok(ConfigValue::StringList(list)) => list.iter().find_map(|text| xml_text_error(text)),
            _ => None,
        };
        if let Some(message) = text_error {
            errors.push(FieldError::new(field, message));
            continue;
        }
        match parsed {
            Ok(ConfigValue::StringList(list)) if list.iter().any(|s| s.contains(',')) => errors
                .push(FieldError::new(
                    field,
                    "list entries cannot contain ',' (they are passed as a CommaDelimitedList)",
                )),
            Ok(parsed) => {
                config.insert(key.clone(), parsed);
            }
            Err(message) => errors.push(FieldError::new(field, message)),
        }
    }
    config
}

/// Why `text` cannot be a stack parameter's value, if it cannot. CloudFormation answers in XML
/// 1.0, which cannot carry most control characters: a stack given a NUL in a parameter is made,
/// and then every DescribeStacks of it fails to parse, so the tenant could never be looked at
/// again. Tab, line feed and carriage return are XML text, and pass.
pub fn xml_text_error(text: &str) -> Option<String> {
    let bad = text.chars().find(|&c| {
        ((c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r'))
            || matches!(c, '\u{fffe}' | '\u{ffff}')
    })?;
    Some(format!(
        "contains the control character U+{:04X}, which CloudFormation cannot carry",
        bad as u32
    ))
}

/// A template version name: what a SPEC may pin and what may be published.
pub fn check_template_version(version: &str) -> Result<(), String> {
    if version.is_empty()
        || version.len() > TEMPLATE_VERSION_MAX
        || !version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(format!(
            "must be 1-{TEMPLATE_VERSION_MAX} of letters, digits, '-', '_' or '.', got {version:?}"
        ));
    }
    // A path segment of its own (`/template-versions/..`) that clients remove (RFC 3986
    // §5.2.4) before sending: it could never be read back.
    if version == "." || version == ".." {
        return Err(format!(
            "must not be {version:?}: it names no path segment a client sends as is"
        ));
    }
    Ok(())
}

/// The attributes of a stored SPEC row the control plane reads before (or without) validating
/// it: the one place they are read by name. Each is `None` when absent or not a string.
#[derive(Clone, Copy, Debug)]
pub struct SpecRow<'a>(pub &'a Item);

impl<'a> SpecRow<'a> {
    fn string(&self, name: &str) -> Option<&'a str> {
        match self.0.get(name) {
            Some(AttributeValue::S(value)) => Some(value.as_str()),
            _ => None,
        }
    }

    /// The version the SPEC pins, as written (not yet checked to name a version).
    pub fn pin(&self) -> Option<&'a str> {
        self.string("template_version")
    }

    /// Whether the SPEC has a `template_version` attribute at all (of any type): an unpinned
    /// SPEC follows the fleet.
    pub fn is_pinned(&self) -> bool {
        self.0.get("template_version").is_some()
    }

    /// Who wrote the SPEC last, as the writer said.
    pub fn updated_by(&self) -> Option<&'a str> {
        self.string("updated_by")
    }

    /// The decommission date, as written.
    pub fn decommission_date(&self) -> Option<&'a str> {
        self.string("decommission_date")
    }

    /// The tenant's drift policy, if it sets a valid one.
    pub fn drift_policy(&self) -> Option<crate::drift::DriftPolicy> {
        self.string("drift_policy")
            .and_then(crate::drift::DriftPolicy::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.to_owned())
    }

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect::<HashMap<String, AttributeValue>>()
            .into()
    }

    fn valid() -> Vec<(&'static str, AttributeValue)> {
        vec![
            ("pk", s("TENANT#gs1234")),
            ("sk", s("SPEC")),
            ("tenant_id", s("gs1234")),
            ("account_id", s("111111111111")),
        ]
    }

    #[test]
    fn config_text_cloudformation_cannot_carry_is_refused_naming_the_field() {
        for (value, code) in [
            ("a\u{0}b", "0000"),
            ("\u{1b}[31m", "001B"),
            ("x\u{ffff}", "FFFF"),
        ] {
            let config = AttributeValue::M(HashMap::from([
                ("seed".to_owned(), AttributeValue::S(value.into())),
                (
                    "tags".to_owned(),
                    AttributeValue::L(vec![AttributeValue::S(value.into())]),
                ),
            ]));
            let errors = TenantSpec::parse(&TenantKey::new("gs1234"), &with(&[("config", config)]))
                .unwrap_err();
            let mut fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
            fields.sort_unstable();
            assert_eq!(fields, ["config.seed", "config.tags"], "{errors:?}");
            assert!(
                errors
                    .iter()
                    .all(|e| e.message.contains(&format!("U+{code}"))),
                "{errors:?}"
            );
        }
        let config = AttributeValue::M(HashMap::from([(
            "seed".to_owned(),
            AttributeValue::S("line one\nline two\ttabbed\r".into()),
        )]));
        assert!(TenantSpec::parse(&TenantKey::new("gs1234"), &with(&[("config", config)])).is_ok());
    }

    fn with(extra: &[(&'static str, AttributeValue)]) -> Item {
        let mut pairs = valid();
        for (k, v) in extra {
            pairs.retain(|(key, _)| key != k);
            pairs.push((k, v.clone()));
        }
        item(&pairs)
    }

    fn errors_of(item: &Item) -> Vec<FieldError> {
        TenantSpec::parse(&TenantKey::new("gs1234"), item).expect_err("must be rejected")
    }

    fn only_error(item: &Item) -> FieldError {
        let errors = errors_of(item);
        assert_eq!(errors.len(), 1, "{errors:?}");
        errors.into_iter().next().unwrap()
    }

    #[test]
    fn the_seed_row_parses() {
        let config = AttributeValue::M(HashMap::from([
            ("difficulty".to_owned(), s("peaceful")),
            ("player_count".to_owned(), AttributeValue::N("5".into())),
            ("seed".to_owned(), s("bailao9SheeSi1i")),
        ]));
        let spec =
            TenantSpec::parse(&TenantKey::new("gs1234"), &with(&[("config", config)])).unwrap();
        assert_eq!(spec.tenant_id, "gs1234");
        assert_eq!(spec.config["player_count"], ConfigValue::Number("5".into()));
        assert_eq!(spec.region, None);
    }

    #[test]
    fn unknown_attributes_are_ignored() {
        let spec = TenantSpec::parse(
            &TenantKey::new("gs1234"),
            &with(&[
                ("created_at", s("2023-05-13T14:06:33Z")),
                ("username", s("x")),
            ]),
        );
        assert!(spec.is_ok());
    }

    #[test]
    fn tenant_id_is_required() {
        let mut pairs = valid();
        pairs.retain(|(k, _)| *k != "tenant_id");
        let e = only_error(&item(&pairs));
        assert_eq!(e.to_string(), "tenant_id: is required");
    }

    #[test]
    fn tenant_id_rules() {
        for bad in [
            "ab",
            "Gs1234",
            "1abc",
            "gs_1234",
            "-abc",
            &"a".repeat(41),
            "gs 12",
        ] {
            let e = TenantSpec::parse(&TenantKey::new(bad), &with(&[("tenant_id", s(bad))]))
                .expect_err(bad);
            assert_eq!(e.len(), 1, "{bad}: {e:?}");
            assert_eq!(e[0].field, "tenant_id");
            assert!(e[0].message.contains("starting with a letter"), "{e:?}");
        }
        for good in ["abc", "a-1", &"a".repeat(40)] {
            assert!(
                TenantSpec::parse(&TenantKey::new(good), &with(&[("tenant_id", s(good))])).is_ok()
            );
        }
    }

    #[test]
    fn tenant_id_must_match_the_pk() {
        let e = only_error(&with(&[("tenant_id", s("other"))]));
        assert_eq!(e.field, "tenant_id");
        assert!(e.message.contains("must equal the pk suffix"), "{e}");
    }

    #[test]
    fn tenant_id_of_wrong_type() {
        // An index key: DynamoDB itself refuses it, and says why (named once).
        let e = only_error(&with(&[("tenant_id", AttributeValue::N("1".into()))]));
        assert_eq!(e.field, "tenant_id");
        assert!(
            e.message
                .starts_with("must be a string (S), got N: DynamoDB requires it of"),
            "{e}"
        );
    }

    #[test]
    fn what_dynamodb_refuses_is_reported_with_the_contracts_faults() {
        let config = AttributeValue::M(HashMap::from([
            ("".to_owned(), s("x")),
            ("player_count".to_owned(), AttributeValue::N("1".repeat(39))),
        ]));
        let errors = errors_of(&with(&[
            ("config", config),
            ("account_id", s("12")),
            ("extra", AttributeValue::Ss(Vec::new())),
        ]));
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["config.\"\"", "config.player_count", "extra", "account_id"]
        );
        assert!(
            errors[1].message.contains("39 significant digits"),
            "{}",
            errors[1]
        );
        // The keys the row is stored under are DynamoDB's to check too.
        let mut pairs = valid();
        pairs.retain(|(k, _)| *k != "sk");
        assert_eq!(only_error(&item(&pairs)).field, "sk");
    }

    #[test]
    fn a_reason_stays_bounded_whatever_the_faults() {
        let huge = FieldError::new("account_id", format!("got {:?}", "9".repeat(100_000)));
        let reason = describe_errors(&[huge, FieldError::new("region", "bad")]);
        assert!(
            reason.len() < REASON_ERROR_MAX_BYTES + 64,
            "{}",
            reason.len()
        );
        assert!(reason.contains("…; region: bad"), "{reason}");
        let many: Vec<FieldError> = (0..2000)
            .map(|i| FieldError::new(format!("config.k{i}"), "unknown"))
            .collect();
        let reason = describe_errors(&many);
        assert!(reason.len() <= REASON_MAX_BYTES + 64, "{}", reason.len());
        assert!(
            reason.ends_with("(2000 fields at fault in all)"),
            "{reason}"
        );
        let few = describe_errors(&[FieldError::new("region", "bad")]);
        assert_eq!(few, "invalid SPEC: region: bad");
    }

    #[test]
    fn a_long_reason_is_summarised_to_its_first_errors_and_a_count() {
        let unknown: Vec<FieldError> = (0..300)
            .map(|i| FieldError::new(format!("config.key{i}"), "template v1 has no parameter"))
            .collect();
        let reason = describe_errors(&unknown);
        let line = reason_summary(&reason, 120);
        assert!(line.chars().count() <= 120, "{line}");
        assert!(
            line.starts_with(
                "invalid SPEC: config.key0: template v1 has no parameter; config.key1"
            ),
            "{line}"
        );
        assert!(line.ends_with(" more"), "{line}");
        let shown = line.matches("config.key").count();
        assert!(
            line.ends_with(&format!("… and {} more", 300 - shown)),
            "{line}"
        );
        // Bounded by describe_errors (2,000 errors): the count is the whole one.
        let many: Vec<FieldError> = (0..2000)
            .map(|i| FieldError::new(format!("config.k{i}"), "unknown"))
            .collect();
        let line = reason_summary(&describe_errors(&many), 100);
        let shown = line.matches("config.k").count();
        assert!(
            line.ends_with(&format!("… and {} more", 2000 - shown)),
            "{line}"
        );
        // Short reasons whole; other long ones cut.
        assert_eq!(
            reason_summary("invalid SPEC: region: bad", 100),
            "invalid SPEC: region: bad"
        );
        let cfn = "x".repeat(300);
        let cut = reason_summary(&cfn, 100);
        assert_eq!(cut.chars().count(), 100);
        assert!(cut.ends_with('…'));
        // One error longer than the line: cut too.
        let one = describe_errors(&[FieldError::new("region", "y".repeat(300))]);
        assert!(reason_summary(&one, 50).ends_with('…'));
    }

    #[test]
    fn account_id_rules() {
        let mut pairs = valid();
        pairs.retain(|(k, _)| *k != "account_id");
        assert_eq!(
            only_error(&item(&pairs)).to_string(),
            "account_id: is required"
        );
        for bad in ["11111111111", "1111111111111", "11111111111a", ""] {
            let e = only_error(&with(&[("account_id", s(bad))]));
            assert!(e.message.contains("exactly 12 digits"), "{e}");
        }
        let e = only_error(&with(&[(
            "account_id",
            AttributeValue::N("111111111111".into()),
        )]));
        assert_eq!(e.to_string(), "account_id: must be a string (S), got N");
    }

    #[test]
    fn region_rules() {
        for good in [
            "eu-west-1",
            "us-gov-west-1",
            "ap-southeast-2",
            "eu-isoe-west-1",
        ] {
            assert!(
                TenantSpec::parse(&TenantKey::new("gs1234"), &with(&[("region", s(good))])).is_ok()
            );
        }
        for bad in ["EU-WEST-1", "eu-west", "euwest1", "eu-west-x", "", "eu--1"] {
            let e = only_error(&with(&[("region", s(bad))]));
            assert_eq!(e.field, "region", "{bad}");
        }
    }

    #[test]
    fn template_version_rules() {
        assert!(
            TenantSpec::parse(
                &TenantKey::new("gs1234"),
                &with(&[("template_version", s("v2.1_rc-1"))])
            )
            .is_ok()
        );
        for bad in ["", "v 1", "v/1", ".", "..", &"v".repeat(65)] {
            assert_eq!(
                only_error(&with(&[("template_version", s(bad))])).field,
                "template_version"
            );
        }
    }

    #[test]
    fn decommission_date_rules() {
        for good in [
            "2027-01-31",
            "2027-01-31T00:00:00Z",
            "2027-01-31T10:00:00+02:00",
        ] {
            assert!(
                TenantSpec::parse(
                    &TenantKey::new("gs1234"),
                    &with(&[("decommission_date", s(good))])
                )
                .is_ok(),
                "{good}"
            );
        }
        for bad in ["31/01/2027", "2027-13-01", "tomorrow", "2027-01-31 00:00"] {
            let e = only_error(&with(&[("decommission_date", s(bad))]));
            assert!(e.message.contains("RFC 3339"), "{e}");
        }
    }

    #[test]
    fn drift_policy_is_report_or_revert() {
        let spec = TenantSpec::parse(
            &TenantKey::new("gs1234"),
            &with(&[("drift_policy", s("revert"))]),
        )
        .unwrap();
        assert_eq!(spec.drift_policy, Some(crate::drift::DriftPolicy::Revert));
        let e = only_error(&with(&[("drift_policy", s("fix"))]));
        assert_eq!(
            e.to_string(),
            "drift_policy: must be one of report, revert, got \"fix\""
        );
    }

    #[test]
    fn retry_must_be_a_number() {
        let spec = TenantSpec::parse(
            &TenantKey::new("gs1234"),
            &with(&[("retry", AttributeValue::N("3".into()))]),
        )
        .unwrap();
        assert_eq!(spec.retry.as_deref(), Some("3"));
        let e = only_error(&with(&[("retry", s("3"))]));
        assert_eq!(e.to_string(), "retry: must be a number (N), got S");
    }

    #[test]
    fn updated_by_rules() {
        let spec = TenantSpec::parse(
            &TenantKey::new("gs1234"),
            &with(&[("updated_by", s("terraform"))]),
        )
        .unwrap();
        assert_eq!(spec.updated_by.as_deref(), Some("terraform"));
        assert_eq!(
            only_error(&with(&[("updated_by", s(&"x".repeat(257)))])).field,
            "updated_by"
        );
        assert_eq!(
            only_error(&with(&[("updated_by", AttributeValue::Bool(true))])).field,
            "updated_by"
        );
    }

    #[test]
    fn config_value_types() {
        let config = AttributeValue::M(HashMap::from([
            ("a".to_owned(), s("x")),
            ("b".to_owned(), AttributeValue::N("1.5".into())),
            ("c".to_owned(), AttributeValue::Bool(false)),
            ("d".to_owned(), AttributeValue::L(vec![s("x"), s("y")])),
            (
                "e".to_owned(),
                AttributeValue::Ss(vec!["p".into(), "q".into()]),
            ),
        ]));
        let spec =
            TenantSpec::parse(&TenantKey::new("gs1234"), &with(&[("config", config)])).unwrap();
        assert_eq!(spec.config.len(), 5);
        assert_eq!(
            spec.config["d"],
            ConfigValue::StringList(vec!["x".into(), "y".into()])
        );
    }

    #[test]
    fn config_rejects_what_cannot_be_a_parameter() {
        let cases = [
            (AttributeValue::M(HashMap::new()), "unsupported type M"),
            (AttributeValue::B(vec![1]), "unsupported type B"),
            (AttributeValue::Ns(vec!["1".into()]), "unsupported type NS"),
            (
                AttributeValue::L(vec![AttributeValue::N("1".into())]),
                "only strings (S), found N",
            ),
            (AttributeValue::L(vec![s("a,b")]), "cannot contain ','"),
        ];
        for (value, expected) in cases {
            let config = AttributeValue::M(HashMap::from([("k".to_owned(), value)]));
            let e = only_error(&with(&[("config", config)]));
            assert_eq!(e.field, "config.k");
            assert!(e.message.contains(expected), "{e}");
        }
        let e = only_error(&with(&[("config", s("x"))]));
        assert_eq!(e.to_string(), "config: must be a map (M), got S");
    }

    #[test]
    fn all_errors_are_reported_together() {
        let mut errors = errors_of(&with(&[
            ("account_id", s("12")),
            ("region", s("nowhere")),
            ("retry", s("x")),
        ]));
        errors.sort_by(|a, b| a.field.cmp(&b.field));
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["account_id", "region", "retry"]);
        let reason = describe_errors(&errors);
        assert!(
            reason.starts_with("invalid SPEC: account_id: must be exactly 12 digits"),
            "{reason}"
        );
    }

    #[test]
    fn tenant_key_from_pk() {
        assert_eq!(
            TenantKey::from_pk("TENANT#abc"),
            Some(TenantKey::new("abc"))
        );
        assert_eq!(TenantKey::from_pk("TENANT#"), None);
        assert_eq!(TenantKey::from_pk("ROLLOUT#1"), None);
        assert_eq!(TenantKey::new("abc").pk(), "TENANT#abc");
        assert_eq!(TenantKey::addressable("t1"), Some(TenantKey::new("t1")));
        assert_eq!(TenantKey::addressable(""), None);
        assert_eq!(TenantKey::addressable(&"a".repeat(2048)), None);
    }
}
