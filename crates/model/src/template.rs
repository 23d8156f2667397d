//! Tenant templates and the mapping of a tenant's config onto the template's parameters.
//!
//! CloudFormation parameter names are alphanumeric, config keys are usually snake_case: a key maps
//! to its UpperCamelCase form (`player_count` -> `PlayerCount`; a key already in that form maps to
//! itself). The emulator accepts unknown parameters and never checks types, so every check real
//! CloudFormation would make at create time is made here first, with a reason naming the key.

use std::collections::{BTreeMap, HashMap};

use heck::{ToKebabCase, ToSnakeCase, ToUpperCamelCase};
use serde_yaml_ng::Value;

use crate::spec::{ConfigValue, FieldError, TenantSpec};

/// The parameter the control plane fills itself, when the template declares it.
pub const TENANT_ID_PARAMETER: &str = "TenantId";

/// One declared template parameter, as far as validation needs it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParameterDecl {
    pub kind: String,
    pub default: Option<String>,
    pub allowed_values: Vec<String>,
    pub allowed_pattern: Option<String>,
    /// `allowed_pattern`, compiled once when the template is read, anchored as CloudFormation
    /// matches it (the whole value): every SPEC validation uses it.
    pub anchored_pattern: Option<AnchoredPattern>,
    pub min_value: Option<f64>,
    pub max_value: Option<f64>,
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
}

impl Eq for ParameterDecl {}

/// A compiled AllowedPattern; two are equal when their patterns are.
#[derive(Clone, Debug)]
pub struct AnchoredPattern(regex::Regex);

impl AnchoredPattern {
    pub fn new(pattern: &str) -> Result<Self, regex::Error> {
        regex::Regex::new(&format!("^(?:{pattern})$")).map(Self)
    }
}

impl PartialEq for AnchoredPattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// A tenant template version: its body and its declared parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pub version: String,
    pub body: String,
    pub parameters: BTreeMap<String, ParameterDecl>,
    /// The transforms the template declares (`Transform`) or invokes (`Fn::Transform`), sorted.
    /// Any of them makes CloudFormation expand it in a change set, which the stack calls
    /// acknowledge with CAPABILITY_AUTO_EXPAND.
    pub transforms: Vec<String>,
    /// The usual config keys of each parameter (`player_count`, `player-count` for
    /// `PlayerCount`), those that [`parameter_name`] maps back to it: worked out once here
    /// rather than for every SPEC checked.
    config_keys: HashMap<String, String>,
    /// What in the template needs an account bootstrapped by the CDK (its asset parameters, its
    /// `BootstrapVersion` parameter and `CheckBootstrapVersion` rule), one line each.
    cdk_bootstrap_needs: Vec<String>,
    /// Where the version is stored for CloudFormation to read (`None`: passed inline, as the
    /// shipped versions are).
    pub stored: Option<StoredTemplate>,
}

/// A published version's objects: its content-addressed key, and the URL of its copy in each
/// region that has a template bucket (CloudFormation reads a TemplateURL in the stack's region).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTemplate {
    pub key: String,
    pub urls: BTreeMap<String, String>,
}

/// How a stack call passes its template: inline (at most [`TEMPLATE_BODY_MAX`] bytes) or as
/// the URL of an S3 object (at most [`TEMPLATE_URL_MAX`] bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateLocation {
    Body(String),
    Url(String),
}

/// The most CloudFormation takes as an inline TemplateBody.
pub const TEMPLATE_BODY_MAX: usize = 51_200;
/// The most CloudFormation reads from a TemplateURL (1 MB).
pub const TEMPLATE_URL_MAX: usize = 1_048_576;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("template {version}: {message}")]
pub struct TemplateError {
    pub version: String,
    pub message: String,
}

impl Template {
    /// The parameters typed `Number`.
    pub fn number_parameters(&self) -> std::collections::BTreeSet<String> {
        self.parameters
            .iter()
            .filter(|(_, decl)| decl.kind == "Number")
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Reads the parameter declarations of a YAML or JSON CloudFormation template.
    pub fn parse(version: &str, body: &str) -> Result<Self, TemplateError> {
        let error = |message: String| TemplateError {
            version: version.to_owned(),
            message,
        };
        let document: Value = serde_yaml_ng::from_str(body)
            .map_err(|e| error(format!("is not valid YAML or JSON: {e}")))?;
        if document.get("Resources").is_none() {
            return Err(error("has no Resources section".into()));
        }
        let mut parameters = BTreeMap::new();
        if let Some(declared) = document.get("Parameters") {
            let declared = declared
                .as_mapping()
                .ok_or_else(|| error("Parameters must be a mapping".into()))?;
            for (name, decl) in declared {
                let name = name
                    .as_str()
                    .ok_or_else(|| error("a parameter name is not a string".into()))?;
                let kind = decl
                    .get("Type")
                    .and_then(scalar_text)
                    .ok_or_else(|| error(format!("parameter {name} has no Type")))?;
                let default = decl.get("Default").and_then(scalar_text);
                let allowed_values = decl
                    .get("AllowedValues")
                    .and_then(Value::as_sequence)
                    .map(|values| values.iter().filter_map(scalar_text).collect())
                    .unwrap_or_default();
                let number = |field: &str| {
                    decl.get(field)
                        .and_then(scalar_text)
                        .and_then(|t| t.parse::<f64>().ok())
                };
                let allowed_pattern = decl.get("AllowedPattern").and_then(scalar_text);
                let anchored_pattern = match &allowed_pattern {
                    Some(pattern) => Some(AnchoredPattern::new(pattern).map_err(|e| {
                        error(format!(
                            "parameter {name} has an AllowedPattern that is not a valid pattern: {e}"
                        ))
                    })?),
                    None => None,
                };
                parameters.insert(
                    name.to_owned(),
                    ParameterDecl {
                        kind,
                        default,
                        allowed_values,
                        allowed_pattern,
                        anchored_pattern,
                        min_value: number("MinValue"),
                        max_value: number("MaxValue"),
                        min_length: number("MinLength").map(|n| n as usize),
                        max_length: number("MaxLength").map(|n| n as usize),
                    },
                );
            }
        }
        let config_keys = parameters
            .keys()
            .flat_map(|name| {
                [name.to_snake_case(), name.to_kebab_case()]
                    .into_iter()
                    .filter(|key| parameter_name(key) == *name)
                    .map(|key| (key, name.clone()))
            })
            .collect();
        let mut transforms = Vec::new();
        transforms_in(&document, true, &mut transforms);
        transforms.sort();
        transforms.dedup();
        Ok(Self {
            version: version.to_owned(),
            body: body.to_owned(),
            cdk_bootstrap_needs: cdk_bootstrap_needs(body, &document, &parameters),
            parameters,
            transforms,
            config_keys,
            stored: None,
        })
    }

    /// The version as stored under `stored` (read from there by CloudFormation).
    pub fn stored_at(mut self, stored: StoredTemplate) -> Self {
        self.stored = Some(stored);
        self
    }

    /// How a stack call in `region` passes this version: the URL of the region's copy, or the
    /// body inline for a version that is not stored. `Err` names the missing copy.
    pub fn location(&self, region: &str) -> Result<TemplateLocation, String> {
        let Some(stored) = &self.stored else {
            return Ok(TemplateLocation::Body(self.body.clone()));
        };
        match stored.urls.get(region) {
            Some(url) => Ok(TemplateLocation::Url(url.clone())),
            None => Err(format!(
                "template version {} has no copy in {region}: CloudFormation reads a \
                 TemplateURL from a bucket in the stack's region, and the template buckets are in \
                 {}; add {region} to the deployment's TemplateCopyRegions and publish again",
                self.version,
                stored.urls.keys().cloned().collect::<Vec<_>>().join(", ")
            )),
        }
    }

    /// What in the template fails in an account the CDK has not bootstrapped, one line each
    /// (empty for a template synthesised with the bootstrapless synthesizer, or not by the CDK).
    pub fn cdk_bootstrap_needs(&self) -> &[String] {
        &self.cdk_bootstrap_needs
    }

    /// Whether its stack calls must pass CAPABILITY_AUTO_EXPAND.
    pub fn expands_transforms(&self) -> bool {
        !self.transforms.is_empty()
    }

    /// The transforms that are not CloudFormation's own: macros, which run code of their own in
    /// every tenant account.
    pub fn macros(&self) -> impl Iterator<Item = &str> {
        self.transforms
            .iter()
            .map(String::as_str)
            .filter(|name| !AWS_TRANSFORMS.contains(name))
    }

    /// The parameter a config key sets: a declared name as-is (`VPCId` stays `VPCId`), else
    /// its [`parameter_name`].
    pub fn parameter_for(&self, config_key: &str) -> String {
        if self.parameters.contains_key(config_key) {
            return config_key.to_owned();
        }
        match self.config_keys.get(config_key) {
            Some(name) => name.clone(),
            None => parameter_name(config_key),
        }
    }
}

/// The transforms CloudFormation hosts itself, which the tenant role may run (the bootstrap
/// grants cloudformation:CreateChangeSet on each): `sam package` output keeps
/// `AWS::Serverless-2016-10-31`; `AWS::Include` pulls snippets from S3.
pub const AWS_TRANSFORMS: &[&str] = &[
    "AWS::Serverless-2016-10-31",
    "AWS::Include",
    "AWS::LanguageExtensions",
];

/// How to synthesise a CDK stack that tenant accounts can take.
const BOOTSTRAPLESS: &str = "synthesise the stack with the CDK's BootstraplessSynthesizer \
    (`synthesizer: new BootstraplessSynthesizer()`), which keeps every asset out of the template";

fn cdk_bootstrap_needs(
    body: &str,
    document: &Value,
    parameters: &BTreeMap<String, ParameterDecl>,
) -> Vec<String> {
    let mut needs = Vec::new();
    let assets: Vec<&str> = parameters
        .keys()
        .map(String::as_str)
        .filter(|name| name.starts_with("AssetParameters"))
        .collect();
    if !assets.is_empty() {
        needs.push(format!(
            "parameters {} are CDK asset parameters: the assets live in the CDK's staging \
             bucket of the synthesising account, which tenant accounts cannot read; {BOOTSTRAPLESS}",
            assets.join(", ")
        ));
    }
    if parameters.contains_key("BootstrapVersion") {
        needs.push(format!(
            "parameter BootstrapVersion reads /cdk-bootstrap/.../version from SSM, which exists \
             only in CDK-bootstrapped accounts; {BOOTSTRAPLESS}"
        ));
    }
    if document
        .get("Rules")
        .and_then(|rules| rules.get("CheckBootstrapVersion"))
        .is_some()
    {
        needs.push(format!(
            "rule CheckBootstrapVersion fails in accounts the CDK has not bootstrapped; {BOOTSTRAPLESS}"
        ));
    }
    // The default synthesizer's staging buckets and repositories (`cdk-<qualifier>-assets-...`,
    // `cdk-<qualifier>-container-assets-...`), also without the rule
    // (`generateBootstrapVersionRule: false`).
    let staging = ["-assets-", "-container-assets-"].iter().any(|kind| {
        body.match_indices("cdk-").any(|(at, _)| {
            let rest = &body[at + 4..];
            let qualifier: String = rest
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect();
            !qualifier.is_empty() && rest[qualifier.len()..].starts_with(kind)
        })
    });
    if staging {
        needs.push(format!(
            "the template references the CDK's staging bucket or repository (cdk-<qualifier>-assets-...), \
             which exists only in CDK-bootstrapped accounts; {BOOTSTRAPLESS}"
        ));
    }
    needs
}

/// Collects transform names: the top-level `Transform` (a name or a list of names) and every
/// `Fn::Transform` (`!Transform`) `Name` below.
fn transforms_in(value: &Value, top_level: bool, found: &mut Vec<String>) {
    let name_of = |v: &Value| {
        v.get("Name")
            .and_then(scalar_text)
            .or_else(|| scalar_text(v))
    };
    match value {
        Value::Mapping(map) => {
            for (key, child) in map {
                match key.as_str() {
                    Some("Transform") if top_level => match child {
                        Value::Sequence(names) => found.extend(names.iter().filter_map(name_of)),
                        other => found.extend(name_of(other)),
                    },
                    Some("Fn::Transform") => found.extend(name_of(child)),
                    _ => {}
                }
                transforms_in(child, false, found);
            }
        }
        Value::Sequence(items) => items.iter().for_each(|i| transforms_in(i, false, found)),
        Value::Tagged(tagged) => {
            if tagged.tag == "!Transform" {
                found.extend(name_of(&tagged.value));
            }
            transforms_in(&tagged.value, false, found);
        }
        _ => {}
    }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The stack parameter name a config key maps to.
pub fn parameter_name(config_key: &str) -> String {
    config_key.to_upper_camel_case()
}

/// The value text CloudFormation receives for a config value.
pub fn render_value(value: &ConfigValue) -> String {
    match value {
        ConfigValue::String(s) | ConfigValue::Number(s) => s.clone(),
        ConfigValue::Bool(b) => b.to_string(),
        ConfigValue::StringList(list) => list.join(","),
    }
}

/// A Number's one canonical decimal text: `007` → `7`, `5.50` → `5.5`, `1e3` → `1000`, `-0` →
/// `0`. CloudFormation (and the emulator) may echo a Number parameter in another form than the
/// one it was given, so Number parameters are sent in this form and read back through it: a
/// ready stack never looks drifted for the way a number was written. `None` for anything but
/// a plain decimal (digits, one optional point, an optional exponent up to ±400).
pub fn canonical_number(text: &str) -> Option<String> {
    let (negative, unsigned) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let exponent: i64 = match exponent {
        None => 0,
        Some(e) => {
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            e.parse().ok().filter(|e: &i64| e.abs() <= 400)?
        }
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.len() + fraction.len() == 0 || !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    // The digits with the point `point` places from their start (may be outside them).
    let digits = format!("{whole}{fraction}");
    let point = i64::try_from(whole.len()).ok()? + exponent;
    let (whole, fraction) = if point <= 0 {
        (
            String::new(),
            format!("{}{digits}", "0".repeat(usize::try_from(-point).ok()?)),
        )
    } else if point >= i64::try_from(digits.len()).ok()? {
        let zeros = usize::try_from(point).ok()? - digits.len();
        (format!("{digits}{}", "0".repeat(zeros)), String::new())
    } else {
        let at = usize::try_from(point).ok()?;
        (digits[..at].to_owned(), digits[at..].to_owned())
    };
    let whole = whole.trim_start_matches('0');
    let fraction = fraction.trim_end_matches('0');
    let magnitude = match (whole.is_empty(), fraction.is_empty()) {
        (true, true) => return Some("0".to_owned()),
        (_, true) => whole.to_owned(),
        (true, false) => format!("0.{fraction}"),
        (false, false) => format!("{whole}.{fraction}"),
    };
    Some(if negative {
        format!("-{magnitude}")
    } else {
        magnitude
    })
}

/// Whether a stack's parameter `actual` holds `desired` (as `stack_parameters` made it): exactly,
/// or for a Number parameter, as the same number.
pub fn same_parameter_value(number: bool, desired: &str, actual: &str) -> bool {
    actual == desired || (number && canonical_number(actual).as_deref() == Some(desired))
}

/// CloudFormation's limits: the bytes of one parameter value, and parameters per template.
pub const PARAMETER_VALUE_MAX_BYTES: usize = 4096;
pub const PARAMETERS_MAX: usize = 200;

/// The stack parameters for a tenant, sorted by name, or every config key the template rejects.
pub fn stack_parameters(
    spec: &TenantSpec,
    template: &Template,
) -> Result<Vec<(String, String)>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut parameters: BTreeMap<String, String> = BTreeMap::new();
    let mut source_key: BTreeMap<String, &str> = BTreeMap::new();
    let known = || {
        template
            .parameters
            .keys()
            .filter(|name| name.as_str() != TENANT_ID_PARAMETER)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    };

    if spec.config.len() > PARAMETERS_MAX {
        errors.push(FieldError::new(
            "config",
            format!(
                "has {} entries; CloudFormation takes at most {PARAMETERS_MAX} parameters per stack",
                spec.config.len()
            ),
        ));
    }
    for (key, value) in &spec.config {
        let field = || format!("config.{key}");
        let name = template.parameter_for(key);
        // heck drops any other separator ("a.b" -> "AB"), so the key itself is checked.
        let key_ok = key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !key_ok || name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
            errors.push(FieldError::new(
                field(),
                "key must map to an alphanumeric parameter name (letters, digits, '_' or '-')",
            ));
            continue;
        }
        if name == TENANT_ID_PARAMETER {
            errors.push(FieldError::new(
                field(),
                format!("{TENANT_ID_PARAMETER} is set by the control plane from tenant_id"),
            ));
            continue;
        }
        let Some(decl) = template.parameters.get(&name) else {
            errors.push(FieldError::new(
                field(),
                format!(
                    "template {} has no parameter {name}; it takes: {}",
                    template.version,
                    known()
                ),
            ));
            continue;
        };
        if let Some(other) = source_key.insert(name.clone(), key) {
            errors.push(FieldError::new(
                field(),
                format!("maps to parameter {name}, as config.{other} does"),
            ));
            continue;
        }
        let mut rendered = render_value(value);
        if decl.kind == "Number"
            && let Some(canonical) = canonical_number(&rendered)
        {
            rendered = canonical;
        }
        if rendered.len() > PARAMETER_VALUE_MAX_BYTES {
            errors.push(FieldError::new(
                field(),
                format!(
                    "is {} bytes; CloudFormation takes at most {PARAMETER_VALUE_MAX_BYTES} bytes \
                     per parameter value",
                    rendered.len()
                ),
            ));
            continue;
        }
        if let Err(message) = check_value(decl, value, &rendered) {
            errors.push(FieldError::new(field(), format!("{name} {message}")));
            continue;
        }
        parameters.insert(name, rendered);
    }

    if template.parameters.contains_key(TENANT_ID_PARAMETER) {
        parameters.insert(TENANT_ID_PARAMETER.to_owned(), spec.tenant_id.clone());
    }
    for (name, decl) in &template.parameters {
        if decl.default.is_none()
            && !parameters.contains_key(name)
            && !source_key.contains_key(name)
        {
            // Suggest the snake_case key when it maps back to this name, else the name itself.
            let snake = heck::ToSnakeCase::to_snake_case(name.as_str());
            let key = if parameter_name(&snake) == *name {
                snake
            } else {
                name.clone()
            };
            errors.push(FieldError::new(
                format!("config.{key}"),
                format!(
                    "is required: template {} parameter {name} has no default",
                    template.version
                ),
            ));
        }
    }
    if errors.is_empty() {
        Ok(parameters.into_iter().collect())
    } else {
        Err(errors)
    }
}

fn check_value(decl: &ParameterDecl, value: &ConfigValue, rendered: &str) -> Result<(), String> {
    let is_list_type = decl.kind.starts_with("List<") || decl.kind == "CommaDelimitedList";
    match value {
        ConfigValue::StringList(_) if !is_list_type => {
            return Err(format!("is of type {}, not a list", decl.kind));
        }
        _ => {}
    }
    if decl.kind == "Number" {
        let Some(number) = rendered.parse::<f64>().ok().filter(|n| n.is_finite()) else {
            return Err(format!("is a Number, got {rendered:?}"));
        };
        if decl.min_value.is_some_and(|min| number < min)
            || decl.max_value.is_some_and(|max| number > max)
        {
            return Err(format!(
                "must be between {} and {}, got {rendered}",
                decl.min_value.map_or("-inf".into(), |v| v.to_string()),
                decl.max_value.map_or("inf".into(), |v| v.to_string()),
            ));
        }
    }
    let length = rendered.chars().count();
    if decl.min_length.is_some_and(|min| length < min)
        || decl.max_length.is_some_and(|max| length > max)
    {
        return Err(format!(
            "must be {}-{} characters long, got {length}",
            decl.min_length.unwrap_or(0),
            decl.max_length.map_or("any".into(), |v| v.to_string()),
        ));
    }
    if let Some(pattern) = &decl.allowed_pattern {
        // CloudFormation matches the whole value (each entry of a list). Compiled when the
        // template was read; a declaration built by hand is compiled here.
        let compiled;
        let anchored = match &decl.anchored_pattern {
            Some(anchored) => &anchored.0,
            None => {
                compiled = AnchoredPattern::new(pattern).map_err(|e| {
                    format!("cannot be checked: AllowedPattern {pattern:?} is invalid: {e}")
                })?;
                &compiled.0
            }
        };
        let values: Vec<&str> = match value {
            ConfigValue::StringList(list) => list.iter().map(String::as_str).collect(),
            _ => vec![rendered],
        };
        if let Some(bad) = values.iter().find(|v| !anchored.is_match(v)) {
            return Err(format!("must match the pattern {pattern}, got {bad:?}"));
        }
    }
    if !decl.allowed_values.is_empty() && !decl.allowed_values.iter().any(|v| v == rendered) {
        return Err(format!(
            "must be one of {}, got {rendered:?}",
            decl.allowed_values.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_number_has_one_canonical_text() {
        for (given, canonical) in [
            ("7", "7"),
            ("007", "7"),
            ("+7", "7"),
            ("5.50", "5.5"),
            ("5.0", "5"),
            ("5.", "5"),
            (".5", "0.5"),
            ("0", "0"),
            ("-0", "0"),
            ("-0.0e7", "0"),
            ("000.000", "0"),
            ("-007.250", "-7.25"),
            ("1e3", "1000"),
            ("1.5E+2", "150"),
            ("15e-1", "1.5"),
            ("25E-4", "0.0025"),
            (
                "12345678901234567890123456789012345678",
                "12345678901234567890123456789012345678",
            ),
        ] {
            assert_eq!(
                canonical_number(given).as_deref(),
                Some(canonical),
                "{given}"
            );
        }
        for not_plain in [
            "", "-", ".", "e3", "1e", "1e+", "1.2.3", "0x10", " 7", "7 ", "inf", "NaN", "1e401",
            "1_000", "١",
        ] {
            assert_eq!(canonical_number(not_plain), None, "{not_plain:?}");
        }
    }

    #[test]
    fn a_number_parameter_is_sent_canonical_and_compared_as_a_number() {
        let t = Template::parse("v1", SAMPLE).unwrap();
        let p = stack_parameters(
            &spec(&[
                ("player_count", ConfigValue::String("007".into())),
                ("seed", ConfigValue::String("007".into())),
            ]),
            &t,
        )
        .unwrap();
        let value = |name: &str| p.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        assert_eq!(value("PlayerCount"), Some("7"));
        // A String is CloudFormation's as given.
        assert_eq!(value("Seed"), Some("007"));
        assert_eq!(t.number_parameters(), ["PlayerCount".to_owned()].into());
        assert!(same_parameter_value(true, "7", "7.0"));
        assert!(same_parameter_value(true, "5.5", "5.50"));
        assert!(!same_parameter_value(true, "7", "8"));
        assert!(!same_parameter_value(false, "7", "007"));
        assert!(same_parameter_value(false, "007", "007"));
    }

    use super::*;

    #[test]
    fn a_cdk_template_that_needs_the_cdk_bootstrap_says_what_and_how_to_synthesise_instead() {
        let default_synth = r#"{
            "Parameters": {
                "AssetParameters1a2bS3Bucket": {"Type": "String"},
                "BootstrapVersion": {"Type": "AWS::SSM::Parameter::Value<String>",
                                     "Default": "/cdk-bootstrap/hnb659fds/version"}},
            "Rules": {"CheckBootstrapVersion": {"Assertions": []}},
            "Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}"#;
        let needs = Template::parse("v2", default_synth)
            .unwrap()
            .cdk_bootstrap_needs()
            .to_vec();
        assert_eq!(needs.len(), 3, "{needs:?}");
        assert!(
            needs[0].contains("AssetParameters1a2bS3Bucket"),
            "{needs:?}"
        );
        assert!(
            needs[1].starts_with("parameter BootstrapVersion"),
            "{needs:?}"
        );
        assert!(
            needs[2].starts_with("rule CheckBootstrapVersion"),
            "{needs:?}"
        );
        assert!(needs.iter().all(|n| n.contains("BootstraplessSynthesizer")));
        let staged = r#"{"Resources": {"F": {"Type": "AWS::Lambda::Function", "Properties": {
            "Code": {"S3Bucket": {"Fn::Sub": "cdk-hnb659fds-assets-${AWS::AccountId}-${AWS::Region}"},
                     "S3Key": "0a1b.zip"}}}}}"#;
        let needs = Template::parse("v2", staged)
            .unwrap()
            .cdk_bootstrap_needs()
            .to_vec();
        assert_eq!(needs.len(), 1, "{needs:?}");
        assert!(needs[0].contains("staging bucket"), "{needs:?}");
        let bootstrapless = r#"{"Resources": {"Q": {"Type": "AWS::SQS::Queue",
            "Metadata": {"aws:cdk:path": "TenantStack/Q/Resource"}}}}"#;
        assert!(
            Template::parse("v2", bootstrapless)
                .unwrap()
                .cdk_bootstrap_needs()
                .is_empty()
        );
    }

    #[test]
    fn a_stored_version_is_passed_by_the_url_of_its_copy_in_the_stacks_region() {
        let inline = Template::parse("v1", "Resources: {}").unwrap();
        assert_eq!(
            inline.location("eu-west-1"),
            Ok(TemplateLocation::Body("Resources: {}".into()))
        );
        let stored = inline.stored_at(StoredTemplate {
            key: "templates/ab.yaml".into(),
            urls: BTreeMap::from([
                (
                    "us-east-1".into(),
                    "https://b-us-east-1/templates/ab.yaml".into(),
                ),
                (
                    "eu-west-1".into(),
                    "https://b-eu-west-1/templates/ab.yaml".into(),
                ),
            ]),
        });
        assert_eq!(
            stored.location("eu-west-1"),
            Ok(TemplateLocation::Url(
                "https://b-eu-west-1/templates/ab.yaml".into()
            ))
        );
        let missing = stored.location("ap-south-1").unwrap_err();
        assert!(
            missing.contains("no copy in ap-south-1") && missing.contains("eu-west-1, us-east-1"),
            "{missing}"
        );
    }

    #[test]
    fn transforms_are_found_at_the_top_and_in_fn_transform() {
        let yaml = "Transform: AWS::Serverless-2016-10-31\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      Fn::Transform:\n        Name: AWS::Include\n        Parameters: {Location: s3://b/k}\n  R:\n    Type: AWS::SQS::Queue\n    Properties: !Transform {Name: Acme::Macro}\n";
        let t = Template::parse("v", yaml).unwrap();
        assert_eq!(
            t.transforms,
            ["AWS::Include", "AWS::Serverless-2016-10-31", "Acme::Macro"]
        );
        assert!(t.expands_transforms());
        assert_eq!(t.macros().collect::<Vec<_>>(), ["Acme::Macro"]);
        let json = r#"{"Transform": ["AWS::LanguageExtensions"], "Resources": {}}"#;
        let t = Template::parse("v", json).unwrap();
        assert_eq!(t.transforms, ["AWS::LanguageExtensions"]);
        assert_eq!(t.macros().count(), 0);
        let plain = Template::parse("v", "Resources: {}").unwrap();
        assert!(!plain.expands_transforms());
    }

    const SAMPLE: &str = include_str!("../../../templates/tenant-template.yaml");

    fn spec(config: &[(&str, ConfigValue)]) -> TenantSpec {
        TenantSpec {
            tenant_id: "gs1234".into(),
            account_id: "111111111111".into(),
            region: None,
            config: config
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            template_version: None,
            decommission_date: None,
            retry: None,
            drift_policy: None,
            updated_by: None,
        }
    }

    fn sample() -> Template {
        Template::parse("v1", SAMPLE).expect("the shipped template parses")
    }

    fn text(v: &str) -> ConfigValue {
        ConfigValue::String(v.into())
    }

    #[test]
    fn key_mapping() {
        assert_eq!(parameter_name("player_count"), "PlayerCount");
        assert_eq!(parameter_name("difficulty"), "Difficulty");
        assert_eq!(parameter_name("PlayerCount"), "PlayerCount");
        assert_eq!(parameter_name("max-players"), "MaxPlayers");
        assert_eq!(parameter_name("seed"), "Seed");
        // The keys worked out when the template is read give what `parameter_name` gives.
        let template = sample();
        for key in [
            "player_count",
            "player-count",
            "PlayerCount",
            "playerCount",
            "seed",
            "Seed",
            "x_y",
        ] {
            let expected = if template.parameters.contains_key(key) {
                key.to_owned()
            } else {
                parameter_name(key)
            };
            assert_eq!(template.parameter_for(key), expected, "{key}");
        }
    }

    #[test]
    fn a_key_that_is_a_parameter_name_is_used_as_is() {
        let template = Template::parse(
            "v9",
            "Parameters:\n  VPCId:\n    Type: String\nResources:\n  T:\n    Type: AWS::SNS::Topic\n",
        )
        .unwrap();
        let e = stack_parameters(&spec(&[]), &template).unwrap_err();
        assert_eq!(e[0].field, "config.VPCId");
        let params = stack_parameters(&spec(&[("VPCId", text("vpc-1"))]), &template).unwrap();
        assert_eq!(params, [("VPCId".to_owned(), "vpc-1".to_owned())]);
        let e = stack_parameters(&spec(&[("player_count", text("NaN"))]), &sample()).unwrap_err();
        assert!(e[0].message.contains("is a Number"), "{}", e[0]);
    }

    #[test]
    fn value_rendering() {
        assert_eq!(render_value(&ConfigValue::Number("5".into())), "5");
        assert_eq!(render_value(&ConfigValue::Bool(true)), "true");
        assert_eq!(
            render_value(&ConfigValue::StringList(vec!["a".into(), "b".into()])),
            "a,b"
        );
    }

    #[test]
    fn the_seed_row_maps_onto_the_sample_template() {
        let params = stack_parameters(
            &spec(&[
                ("difficulty", text("peaceful")),
                ("player_count", ConfigValue::Number("5".into())),
                ("seed", text("bailao9SheeSi1i")),
            ]),
            &sample(),
        )
        .unwrap();
        let params: BTreeMap<_, _> = params.into_iter().collect();
        assert_eq!(params["Difficulty"], "peaceful");
        assert_eq!(params["PlayerCount"], "5");
        assert_eq!(params["Seed"], "bailao9SheeSi1i");
        assert_eq!(params["TenantId"], "gs1234");
    }

    #[test]
    fn unknown_key_names_the_key_and_the_known_parameters() {
        let e = stack_parameters(&spec(&[("colour", text("red"))]), &sample()).unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].field, "config.colour");
        assert!(e[0].message.contains("has no parameter Colour"), "{}", e[0]);
        assert!(e[0].message.contains("PlayerCount"), "{}", e[0]);
    }

    #[test]
    fn cloudformations_own_limits_are_enforced_with_the_field_named() {
        let huge = "x".repeat(PARAMETER_VALUE_MAX_BYTES + 1);
        let e = stack_parameters(&spec(&[("seed", text(&huge))]), &sample()).unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].field, "config.seed");
        assert!(e[0].message.contains("at most 4096 bytes"), "{}", e[0]);
        let at_limit = "x".repeat(PARAMETER_VALUE_MAX_BYTES);
        assert!(stack_parameters(&spec(&[("seed", text(&at_limit))]), &sample()).is_ok());

        let keys: Vec<String> = (0..=PARAMETERS_MAX).map(|i| format!("k{i}")).collect();
        let many: Vec<(&str, ConfigValue)> = keys.iter().map(|k| (k.as_str(), text("v"))).collect();
        let e = stack_parameters(&spec(&many), &sample()).unwrap_err();
        assert!(
            e.iter()
                .any(|e| e.field == "config" && e.message.contains("at most 200 parameters")),
            "{e:?}"
        );
    }

    #[test]
    fn number_and_allowed_values_are_checked() {
        let e = stack_parameters(&spec(&[("player_count", text("many"))]), &sample()).unwrap_err();
        assert!(e[0].message.contains("is a Number"), "{}", e[0]);
        let e =
            stack_parameters(&spec(&[("difficulty", text("nightmare"))]), &sample()).unwrap_err();
        assert!(e[0].message.contains("must be one of"), "{}", e[0]);
        let e = stack_parameters(
            &spec(&[("seed", ConfigValue::StringList(vec!["a".into()]))]),
            &sample(),
        )
        .unwrap_err();
        assert!(e[0].message.contains("not a list"), "{}", e[0]);
    }

    #[test]
    fn ranges_lengths_and_patterns_are_checked() {
        let e = stack_parameters(
            &spec(&[("player_count", ConfigValue::Number("500".into()))]),
            &sample(),
        )
        .unwrap_err();
        assert!(e[0].message.contains("between 1 and 100"), "{}", e[0]);
        let template = Template::parse(
            "v9",
            "Parameters:\n  Code:\n    Type: String\n    Default: ab\n    AllowedPattern: '[a-z]+'\n    MaxLength: 4\nResources:\n  T:\n    Type: AWS::SNS::Topic\n",
        )
        .unwrap();
        let e = stack_parameters(&spec(&[("code", text("ab1"))]), &template).unwrap_err();
        assert!(e[0].message.contains("must match the pattern"), "{}", e[0]);
        let e = stack_parameters(&spec(&[("code", text("abcde"))]), &template).unwrap_err();
        assert!(e[0].message.contains("characters long"), "{}", e[0]);
        assert!(stack_parameters(&spec(&[("code", text("abcd"))]), &template).is_ok());
        let bad = Template::parse(
            "v9",
            "Parameters:\n  Code:\n    Type: String\n    AllowedPattern: '[a-z'\nResources:\n  T:\n    Type: AWS::SNS::Topic\n",
        );
        assert!(bad.unwrap_err().message.contains("not a valid pattern"));
    }

    #[test]
    fn colliding_keys_and_reserved_names_are_rejected() {
        let e = stack_parameters(
            &spec(&[
                ("player_count", ConfigValue::Number("1".into())),
                ("PlayerCount", ConfigValue::Number("2".into())),
            ]),
            &sample(),
        )
        .unwrap_err();
        assert_eq!(e.len(), 1);
        assert!(
            e[0].message.contains("maps to parameter PlayerCount"),
            "{}",
            e[0]
        );
        let e = stack_parameters(&spec(&[("tenant_id", text("x"))]), &sample()).unwrap_err();
        assert!(
            e[0].message.contains("set by the control plane"),
            "{}",
            e[0]
        );
        let e = stack_parameters(&spec(&[("a.b", text("x"))]), &sample()).unwrap_err();
        assert!(e[0].message.contains("alphanumeric"), "{}", e[0]);
    }

    #[test]
    fn parameters_without_default_are_required() {
        let template = Template::parse(
            "v9",
            "Parameters:\n  Size:\n    Type: String\nResources:\n  T:\n    Type: AWS::SNS::Topic\n",
        )
        .unwrap();
        let e = stack_parameters(&spec(&[]), &template).unwrap_err();
        assert_eq!(
            e[0].to_string(),
            "config.size: is required: template v9 parameter Size has no default"
        );
    }

    #[test]
    fn template_parsing_errors() {
        assert!(Template::parse("v1", "Resources: [").is_err());
        assert_eq!(
            Template::parse("v1", "Parameters: {}\n")
                .unwrap_err()
                .message,
            "has no Resources section"
        );
        let t = Template::parse("v1", SAMPLE).unwrap();
        assert_eq!(t.parameters["PlayerCount"].kind, "Number");
        assert!(
            t.parameters["Difficulty"]
                .allowed_values
                .contains(&"peaceful".to_owned())
        );
    }
}
