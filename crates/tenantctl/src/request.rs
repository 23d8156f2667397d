//! From arguments to the API's request bodies: typed config values, the create body, and the
//! JSON Merge Patch of an update.

use serde_json::{Map, Value};

/// `key=value`, the value typed: a JSON number (`5`, `2.5`, not `007`) becomes a number,
/// `true`/`false` a boolean, anything else a string. `--config-json` gives exact types.
pub fn parse_config_pair(text: &str) -> Result<(String, Value), String> {
    let (key, raw) = text
        .split_once('=')
        .ok_or_else(|| format!("expected key=value, got {text:?}"))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(format!("the key is empty in {text:?}"));
    }
    Ok((key.to_owned(), typed_value(raw)))
}

fn typed_value(raw: &str) -> Value {
    match raw {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => match serde_json::from_str::<serde_json::Number>(raw) {
            Ok(number) => Value::Number(number),
            Err(_) => Value::String(raw.to_owned()),
        },
    }
}

/// `--config-json`: a JSON object.
pub fn parse_config_json(text: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("must be a JSON object, e.g. '{\"player_count\": 5}'".into()),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

/// A 12-digit AWS account id.
pub fn parse_account(text: &str) -> Result<String, String> {
    if text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit()) {
        Ok(text.to_owned())
    } else {
        Err(format!("an account id is 12 digits, got {text:?}"))
    }
}

/// The config of a request: `--config-json` first, `--config` pairs over it.
pub fn config_of(
    json: Option<Map<String, Value>>,
    pairs: &[(String, Value)],
) -> Map<String, Value> {
    let mut config = json.unwrap_or_default();
    for (key, value) in pairs {
        config.insert(key.clone(), value.clone());
    }
    config
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct CreateRequest {
    pub tenant_id: String,
    pub account_id: String,
    pub region: Option<String>,
    pub config: Map<String, Value>,
    pub template_version: Option<String>,
    pub decommission_date: Option<String>,
    /// `report` or `revert`; none: the deployment's DRIFT_POLICY.
    pub drift_policy: Option<String>,
}

impl CreateRequest {
    /// The body of POST /tenants.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("tenant_id".into(), self.tenant_id.clone().into());
        body.insert("account_id".into(), self.account_id.clone().into());
        if let Some(region) = &self.region {
            body.insert("region".into(), region.clone().into());
        }
        if !self.config.is_empty() {
            body.insert("config".into(), Value::Object(self.config.clone()));
        }
        if let Some(version) = &self.template_version {
            body.insert("template_version".into(), version.clone().into());
        }
        if let Some(date) = &self.decommission_date {
            body.insert("decommission_date".into(), date.clone().into());
        }
        if let Some(policy) = &self.drift_policy {
            body.insert("drift_policy".into(), policy.clone().into());
        }
        Value::Object(body)
    }
}

/// What an update changes; `None` leaves a field alone.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UpdateRequest {
    pub set_config: Map<String, Value>,
    pub unset_config: Vec<String>,
    pub template_version: Option<String>,
    /// `Some(None)`: clear it.
    pub decommission_date: Option<Option<String>>,
    pub account_id: Option<String>,
    pub region: Option<String>,
    /// `Some(None)`: back to the deployment's DRIFT_POLICY.
    pub drift_policy: Option<Option<String>>,
}

impl UpdateRequest {
    /// The JSON Merge Patch (RFC 7396) of PATCH /tenants/{id}: config keys merge, `null`
    /// removes. An error names what makes no sense (nothing to change, a key set and unset).
    pub fn patch(&self) -> Result<Value, String> {
        let mut patch = Map::new();
        let mut config = self.set_config.clone();
        for key in &self.unset_config {
            if config.contains_key(key) {
                return Err(format!("config key {key:?} is both set and unset"));
            }
            config.insert(key.clone(), Value::Null);
        }
        if !config.is_empty() {
            patch.insert("config".into(), Value::Object(config));
        }
        if let Some(version) = &self.template_version {
            patch.insert("template_version".into(), version.clone().into());
        }
        match &self.decommission_date {
            Some(Some(date)) => {
                patch.insert("decommission_date".into(), date.clone().into());
            }
            Some(None) => {
                patch.insert("decommission_date".into(), Value::Null);
            }
            None => {}
        }
        if let Some(account) = &self.account_id {
            patch.insert("account_id".into(), account.clone().into());
        }
        if let Some(region) = &self.region {
            patch.insert("region".into(), region.clone().into());
        }
        match &self.drift_policy {
            Some(Some(policy)) => {
                patch.insert("drift_policy".into(), policy.clone().into());
            }
            Some(None) => {
                patch.insert("drift_policy".into(), Value::Null);
            }
            None => {}
        }
        if patch.is_empty() {
            return Err(
                "nothing to change: give --config, --unset-config, --config-json, \
                        --template-version, --decommission-date, --clear-decommission-date, \
                        --drift-policy, --clear-drift-policy, \
                        --account or --region"
                    .into(),
            );
        }
        Ok(Value::Object(patch))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn config_values_are_typed() {
        let pair = |t: &str| parse_config_pair(t).unwrap();
        assert_eq!(pair("player_count=5"), ("player_count".into(), json!(5)));
        assert_eq!(pair("ratio=2.5"), ("ratio".into(), json!(2.5)));
        assert_eq!(pair("offset=-3"), ("offset".into(), json!(-3)));
        assert_eq!(pair("pvp=true"), ("pvp".into(), json!(true)));
        assert_eq!(pair("pvp=false"), ("pvp".into(), json!(false)));
        assert_eq!(
            pair("difficulty=hard"),
            ("difficulty".into(), json!("hard"))
        );
        // Not JSON numbers: kept as written.
        assert_eq!(pair("zip=007"), ("zip".into(), json!("007")));
        assert_eq!(pair("n=+5"), ("n".into(), json!("+5")));
        assert_eq!(pair("b=True"), ("b".into(), json!("True")));
        // Only the first `=` splits; an empty value is an empty string.
        assert_eq!(pair("motd=a=b"), ("motd".into(), json!("a=b")));
        assert_eq!(pair("motd="), ("motd".into(), json!("")));
        assert!(parse_config_pair("player_count").is_err());
        assert!(parse_config_pair("=5").is_err());
    }

    #[test]
    fn config_json_is_an_object_and_pairs_override_it() {
        let base = parse_config_json(r#"{"seed": "123", "player_count": 2}"#).unwrap();
        let config = config_of(Some(base), &[("player_count".into(), json!(5))]);
        assert_eq!(
            Value::Object(config),
            json!({"seed": "123", "player_count": 5})
        );
        assert!(parse_config_json("[1]").is_err());
        assert!(parse_config_json("{").is_err());
    }

    #[test]
    fn accounts_are_12_digits() {
        assert_eq!(parse_account("111111111111").unwrap(), "111111111111");
        assert!(parse_account("11111111111").is_err());
        assert!(parse_account("11111111111a").is_err());
    }

    #[test]
    fn a_create_sends_only_what_was_given() {
        let minimal = CreateRequest {
            tenant_id: "acme".into(),
            account_id: "222222222222".into(),
            ..CreateRequest::default()
        };
        assert_eq!(
            minimal.body(),
            json!({"tenant_id": "acme", "account_id": "222222222222"})
        );
        let full = CreateRequest {
            region: Some("eu-west-1".into()),
            config: config_of(None, &[("player_count".into(), json!(5))]),
            template_version: Some("v1".into()),
            decommission_date: Some("2030-01-31".into()),
            ..minimal
        };
        assert_eq!(
            full.body(),
            json!({"tenant_id": "acme", "account_id": "222222222222", "region": "eu-west-1",
                   "config": {"player_count": 5}, "template_version": "v1",
                   "decommission_date": "2030-01-31"})
        );
    }

    #[test]
    fn an_update_is_a_merge_patch() {
        let update = UpdateRequest {
            set_config: config_of(None, &[("player_count".into(), json!(20))]),
            unset_config: vec!["seed".into()],
            decommission_date: Some(None),
            ..UpdateRequest::default()
        };
        assert_eq!(
            update.patch().unwrap(),
            json!({"config": {"player_count": 20, "seed": null}, "decommission_date": null})
        );
        let moved = UpdateRequest {
            template_version: Some("v1".into()),
            decommission_date: Some(Some("2030-01-31".into())),
            account_id: Some("111111111111".into()),
            region: Some("eu-west-1".into()),
            ..UpdateRequest::default()
        };
        assert_eq!(
            moved.patch().unwrap(),
            json!({"template_version": "v1", "decommission_date": "2030-01-31",
                   "account_id": "111111111111", "region": "eu-west-1"})
        );
        assert!(UpdateRequest::default().patch().is_err());
        let both = UpdateRequest {
            set_config: config_of(None, &[("seed".into(), json!("x"))]),
            unset_config: vec!["seed".into()],
            ..UpdateRequest::default()
        };
        assert!(both.patch().unwrap_err().contains("both set and unset"));
    }
}
