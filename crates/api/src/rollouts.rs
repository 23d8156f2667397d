//! Fleet rollouts (admins only): start one, read its progress, pause, resume, cancel or roll it
//! back. The API only records what is asked; the rollout driver function moves the tenants, wave
//! by wave. A preview of a rollout (`previews.rs`) is recorded the same way and run by the
//! preview function: the API never reaches a tenant account.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use controlplane::rollout::driver::{RolloutError, StartRollout, wave_counts};
use model::rollout::{
    Amount, Command, Counts, Member, MemberState, Rollout, RolloutOptions, RolloutState, Selection,
};
use model::spec::{FieldError, check_tenant_id};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ApiState;
use crate::auth::{Admin, Caller};
use crate::body::JsonBody;
use crate::idempotency::{Once, post_once};
use crate::problem::Problem;
use crate::templates::unknown_fields;
use crate::tenants::{Page, created_response, query};

/// A rollout as the API shows it: what it does, where it is, and how its tenants fare.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutDetails {
    pub id: String,
    pub target_version: String,
    /// The fleet's current version when it started (a rollback of a completed whole-fleet
    /// rollout makes it current again).
    pub previous_version: String,
    #[serde(default)]
    pub selection: Selection,
    pub options: RolloutOptions,
    pub state: RolloutState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    /// Tenants found by planning (the waves are cut from this number).
    pub planned: u32,
    /// Members in each state (read from the members for one rollout; as last recorded by the
    /// driver in a listing).
    pub counts: Counts,
    /// Counts per wave (wave 0 is the canary), for one rollout.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waves: Vec<WaveCounts>,
    /// Every member, when asked for (`?members=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<MemberDetails>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveCounts {
    pub wave: usize,
    pub counts: Counts,
}

/// One tenant of a rollout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberDetails {
    pub tenant_id: String,
    pub state: MemberState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Where a rollback takes it.
    pub from_version: String,
    pub updated_at: String,
}

impl From<&Member> for MemberDetails {
    fn from(member: &Member) -> Self {
        Self {
            tenant_id: member.tenant_id.clone(),
            state: member.state,
            reason: member.reason.clone(),
            from_version: member.from_version.clone(),
            updated_at: member.updated_at.clone(),
        }
    }
}

impl RolloutDetails {
    /// The rollout as stored, with the counts it last recorded (no member is read).
    pub fn recorded(rollout: Rollout) -> Self {
        let counts = rollout.counts;
        Self {
            id: rollout.id,
            target_version: rollout.target_version,
            previous_version: rollout.previous_version,
            selection: rollout.selection,
            options: rollout.options,
            state: rollout.state,
            reason: rollout.reason,
            created_by: rollout.created_by,
            created_at: rollout.created_at,
            updated_at: rollout.updated_at,
            planned: rollout.planned,
            counts,
            waves: Vec::new(),
            members: None,
        }
    }

    /// The rollout with counts (overall and per wave) from its members, and the members
    /// themselves if `with_members`.
    pub fn observed(rollout: Rollout, members: &[Member], with_members: bool) -> Self {
        let waves = wave_counts(&rollout, members)
            .into_iter()
            .map(|(wave, counts)| WaveCounts { wave, counts })
            .collect();
        Self {
            counts: Counts::of(members),
            waves,
            members: with_members.then(|| members.iter().map(MemberDetails::from).collect()),
            ..Self::recorded(rollout)
        }
    }

    /// Members that will not change any more in this direction: done, failed, skipped, or
    /// (rolling back) rolled back or failed to.
    pub fn settled(&self) -> u32 {
        let c = &self.counts;
        c.done + c.failed + c.skipped + c.rolled_back + c.rollback_failed
    }
}

/// Is the rollout at rest: finished, or halted waiting for an operator.
pub fn at_rest(state: RolloutState) -> bool {
    state.is_finished() || state == RolloutState::Halted
}

// ------------------------------------------------------------------------------------------------
// The start request

const START_FIELDS: &[&str] = &["target_version", "selection", "options"];
const SELECTION_FIELDS: &[&str] = &["tenants", "config", "percent"];
const OPTION_FIELDS: &[&str] = &[
    "canary",
    "bake_seconds",
    "growth",
    "wave_bake_seconds",
    "max_concurrency",
    "failure_tolerance",
    "auto_rollback",
    "alarms",
];

/// A rollout to start, read from a `POST /rollouts` body. Options not given keep their defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutRequest {
    pub target_version: String,
    pub selection: Selection,
    pub options: RolloutOptions,
}

/// An amount: `"10"`, `"5%"` or the number 10.
fn amount(value: &Value, field: &str) -> Result<Amount, FieldError> {
    match value {
        Value::String(text) => Amount::parse(text).map_err(|e| FieldError::new(field, e)),
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Amount::Count)
            .ok_or_else(|| FieldError::new(field, format!("{n} is not a count of tenants"))),
        _ => Err(FieldError::new(
            field,
            "must be a count (10) or a percentage (\"5%\")",
        )),
    }
}

fn whole_number(value: &Value, field: &str) -> Result<u64, FieldError> {
    value
        .as_u64()
        .ok_or_else(|| FieldError::new(field, "must be a whole number, 0 or more"))
}

/// The required `target_version` of a body; a field error saying it is `what` when it is not
/// a version's name.
pub(crate) fn target_version_of(
    fields: &Map<String, Value>,
    errors: &mut Vec<FieldError>,
    what: &str,
) -> Option<String> {
    match fields.get("target_version") {
        Some(Value::String(version)) if !version.trim().is_empty() => Some(version.clone()),
        _ => {
            errors.push(FieldError::new(
                "target_version",
                format!("is required: {what}"),
            ));
            None
        }
    }
}

pub(crate) fn object<'a>(
    value: &'a Value,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<&'a Map<String, Value>> {
    match value {
        Value::Object(map) => Some(map),
        Value::Null => None,
        _ => {
            errors.push(FieldError::new(field, "must be an object"));
            None
        }
    }
}

pub(crate) fn selection_of(fields: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Selection {
    let mut selection = Selection::default();
    errors.extend(unknown_fields(fields, SELECTION_FIELDS, "selection."));
    match fields.get("tenants") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(tenant) if check_tenant_id(tenant).is_ok() => {
                        selection.tenants.push(tenant.to_owned());
                    }
                    Some(tenant) => errors.push(FieldError::new(
                        format!("selection.tenants[{i}]"),
                        format!("{tenant:?} is not a tenant id"),
                    )),
                    None => errors.push(FieldError::new(
                        format!("selection.tenants[{i}]"),
                        "must be a string",
                    )),
                }
            }
        }
        Some(_) => errors.push(FieldError::new(
            "selection.tenants",
            "must be an array of tenant ids",
        )),
    }
    if let Some(config) = fields
        .get("config")
        .and_then(|v| object(v, "selection.config", errors))
    {
        for (key, value) in config {
            // Compared with the value as the stack parameter renders it.
            let rendered = match value {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            };
            match rendered {
                Some(text) => {
                    selection.config.insert(key.clone(), text);
                }
                None => errors.push(FieldError::new(
                    format!("selection.config.{key}"),
                    "must be a string, a number or a boolean",
                )),
            }
        }
    }
    match fields.get("percent") {
        None | Some(Value::Null) => {}
        Some(value) => match value.as_u64() {
            Some(p @ 1..=100) => selection.percent = u8::try_from(p).ok(),
            _ => errors.push(FieldError::new(
                "selection.percent",
                "must be a whole number from 1 to 100",
            )),
        },
    }
    selection
}

/// Sets `slot` from the option `name`, if given; a bad value is a field error.
fn set_option<T>(
    fields: &Map<String, Value>,
    name: &str,
    parse: fn(&Value, &str) -> Result<T, FieldError>,
    slot: &mut T,
    errors: &mut Vec<FieldError>,
) {
    if let Some(value) = fields.get(name).filter(|v| !v.is_null()) {
        match parse(value, &format!("options.{name}")) {
            Ok(parsed) => *slot = parsed,
            Err(e) => errors.push(e),
        }
    }
}

fn growth(value: &Value, field: &str) -> Result<u32, FieldError> {
    u32::try_from(whole_number(value, field)?).map_err(|_| FieldError::new(field, "is too large"))
}

fn boolean(value: &Value, field: &str) -> Result<bool, FieldError> {
    value
        .as_bool()
        .ok_or_else(|| FieldError::new(field, "must be true or false"))
}

fn options_of(fields: &Map<String, Value>, errors: &mut Vec<FieldError>) -> RolloutOptions {
    let mut o = RolloutOptions::default();
    errors.extend(unknown_fields(fields, OPTION_FIELDS, "options."));
    set_option(fields, "canary", amount, &mut o.canary, errors);
    set_option(
        fields,
        "bake_seconds",
        whole_number,
        &mut o.bake_seconds,
        errors,
    );
    set_option(fields, "growth", growth, &mut o.growth, errors);
    let wave_bake = &mut o.wave_bake_seconds;
    set_option(fields, "wave_bake_seconds", whole_number, wave_bake, errors);
    let concurrency = &mut o.max_concurrency;
    set_option(fields, "max_concurrency", amount, concurrency, errors);
    let tolerance = &mut o.failure_tolerance;
    set_option(fields, "failure_tolerance", amount, tolerance, errors);
    set_option(
        fields,
        "auto_rollback",
        boolean,
        &mut o.auto_rollback,
        errors,
    );
    set_option(fields, "alarms", alarm_names, &mut o.alarms, errors);
    o
}

fn alarm_names(value: &Value, field: &str) -> Result<Vec<String>, FieldError> {
    let names = value
        .as_array()
        .ok_or_else(|| FieldError::new(field, "must be a list of CloudWatch alarm names"))?;
    names
        .iter()
        .map(|name| {
            name.as_str()
                .map(str::to_owned)
                .ok_or_else(|| FieldError::new(field, "must be a list of CloudWatch alarm names"))
        })
        .collect()
}

impl RolloutRequest {
    /// Every field at fault, or the request.
    pub fn from_json(body: &Value) -> Result<Self, Problem> {
        let Value::Object(fields) = body else {
            return Err(Problem::bad_request("the body must be a JSON object"));
        };
        let mut errors = unknown_fields(fields, START_FIELDS, "");
        let target_version = target_version_of(
            fields,
            &mut errors,
            "the published template version to roll out",
        );
        let selection = fields
            .get("selection")
            .and_then(|v| object(v, "selection", &mut errors))
            .map(|s| selection_of(s, &mut errors))
            .unwrap_or_default();
        let options = fields
            .get("options")
            .and_then(|v| object(v, "options", &mut errors))
            .map(|o| options_of(o, &mut errors))
            .unwrap_or_default();
        match target_version {
            Some(target_version) if errors.is_empty() => Ok(Self {
                target_version,
                selection,
                options,
            }),
            _ => Err(Problem::invalid_rollout(errors)),
        }
    }
}

/// The field a driver's reason is about (its reasons are sentences).
fn field_of(reason: &str) -> &'static str {
    const FIELDS: &[(&str, &str)] = &[
        ("canary", "options.canary"),
        ("growth", "options.growth"),
        ("max_concurrency", "options.max_concurrency"),
        ("bake", "options.bake_seconds"),
        ("at most 100 alarms", "options.alarms"),
        ("alarm name", "options.alarms"),
        ("selection percent", "selection.percent"),
        ("no template version", "target_version"),
    ];
    FIELDS
        .iter()
        .find(|(start, _)| reason.starts_with(start))
        .map_or("rollout", |(_, field)| field)
}

/// The problem a driver error is answered with (`tenantctl rollout plan` reports the same).
pub fn rollout_problem(error: RolloutError) -> Problem {
    match error {
        RolloutError::NotFound(id) => Problem::no_rollout(&id),
        RolloutError::Invalid(reasons) => Problem::invalid_rollout(
            reasons
                .into_iter()
                .map(|reason| FieldError::new(field_of(&reason), reason))
                .collect(),
        ),
        busy @ RolloutError::Busy(_) => Problem::rollout_busy(busy.to_string()),
        RolloutError::Refused(reason) => Problem::rollout_refused(reason),
        RolloutError::Conflict => {
            Problem::unavailable("the rollout changed meanwhile; send the request again")
        }
        RolloutError::Unavailable(reason) => Problem::store_unreachable(reason),
        // Its paths are the request's own (`selection.config."": ...`).
        RolloutError::Unstorable(errors) => Problem::invalid_rollout(errors),
    }
}

/// `GET /rollouts/{id}`'s query.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutQuery {
    /// Include every member.
    #[serde(default)]
    pub members: bool,
}

// ------------------------------------------------------------------------------------------------
// Operations (the routes below and `tenantctl --direct` call these).

impl ApiState {
    /// Starts a rollout from a `POST /rollouts` body, as `caller`. It is `planning` at first;
    /// the rollout driver takes it from there.
    pub async fn start_rollout(
        &self,
        caller: &Caller,
        body: &Value,
    ) -> Result<RolloutDetails, Problem> {
        caller.require_admin("starts rollouts")?;
        let request = RolloutRequest::from_json(body)?;
        let rollout = self
            .rollouts
            .start(StartRollout {
                target_version: request.target_version,
                selection: request.selection,
                options: request.options,
                created_by: caller.subject.clone(),
            })
            .await
            .map_err(rollout_problem)?;
        Ok(RolloutDetails::recorded(rollout))
    }

    /// Every rollout, newest first, with the counts each last recorded.
    pub async fn list_rollouts(&self, caller: &Caller) -> Result<Page<RolloutDetails>, Problem> {
        caller.require_admin("reads rollouts")?;
        let mut rollouts = self.rollouts.list().await.map_err(rollout_problem)?;
        // Ids order rollouts only to the second: the start time (RFC 3339, millis) orders
        // them finer; ties keep the store's order.
        rollouts.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        Ok(Page {
            items: rollouts.into_iter().map(RolloutDetails::recorded).collect(),
            next: None,
        })
    }

    /// One rollout with its counts read from its members (and the members, if asked).
    pub async fn get_rollout(
        &self,
        caller: &Caller,
        id: &str,
        with_members: bool,
    ) -> Result<RolloutDetails, Problem> {
        caller.require_admin("reads rollouts")?;
        let view = self.rollouts.view(id).await.map_err(rollout_problem)?;
        Ok(RolloutDetails::observed(
            view.rollout,
            &view.members,
            with_members,
        ))
    }

    /// Pauses, resumes, cancels or rolls back a rollout (a repeated command changes nothing).
    pub async fn command_rollout(
        &self,
        caller: &Caller,
        id: &str,
        command: Command,
    ) -> Result<RolloutDetails, Problem> {
        caller.require_admin("steers rollouts")?;
        let rollout = self
            .rollouts
            .command(id, command, &caller.subject)
            .await
            .map_err(rollout_problem)?;
        // Done; the counts are a courtesy, so a failed read of them is no failure.
        Ok(match self.rollouts.view(id).await {
            Ok(view) if view.rollout.version == rollout.version => {
                RolloutDetails::observed(view.rollout, &view.members, false)
            }
            _ => RolloutDetails::recorded(rollout),
        })
    }
}

// ------------------------------------------------------------------------------------------------
// Routes

pub async fn start(
    State(state): State<ApiState>,
    Admin(caller): Admin,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    let once = post_once(&state, &caller, &headers, "/rollouts", &body, || async {
        let started = state.start_rollout(&caller, &body).await?;
        Ok(Once::new(started, StatusCode::ACCEPTED.as_u16(), None))
    })
    .await?;
    let location = format!("/rollouts/{}", once.value.id);
    Ok(created_response(once, &location))
}

pub async fn list(State(state): State<ApiState>, caller: Caller) -> Result<Response, Problem> {
    Ok(Json(state.list_rollouts(&caller).await?).into_response())
}

pub async fn get_one(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    rollout: Result<Query<RolloutQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    let rollout = query(rollout)?;
    Ok(Json(state.get_rollout(&caller, &id, rollout.members).await?).into_response())
}

async fn command(
    state: ApiState,
    Admin(caller): Admin,
    id: String,
    command: Command,
) -> Result<Response, Problem> {
    Ok(Json(state.command_rollout(&caller, &id, command).await?).into_response())
}

pub async fn pause(
    State(state): State<ApiState>,
    caller: Admin,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    command(state, caller, id, Command::Pause).await
}

pub async fn resume(
    State(state): State<ApiState>,
    caller: Admin,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    command(state, caller, id, Command::Resume).await
}

pub async fn cancel(
    State(state): State<ApiState>,
    caller: Admin,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    command(state, caller, id, Command::Cancel).await
}

pub async fn rollback(
    State(state): State<ApiState>,
    caller: Admin,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    command(state, caller, id, Command::Rollback).await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_start_body_takes_amounts_as_text_or_numbers_and_defaults_the_rest() {
        let request = RolloutRequest::from_json(&json!({
            "target_version": "v2",
            "selection": {"tenants": ["acme"], "config": {"player_count": 5, "pvp": true}, "percent": 50},
            "options": {"canary": "5%", "max_concurrency": 3, "bake_seconds": 60, "auto_rollback": false}
        }))
        .expect("valid");
        assert_eq!(request.options.canary, Amount::Percent(5));
        assert_eq!(request.options.max_concurrency, Amount::Count(3));
        assert_eq!(request.options.bake_seconds, 60);
        assert!(!request.options.auto_rollback);
        assert_eq!(request.options.growth, RolloutOptions::default().growth);
        assert_eq!(request.selection.config["player_count"], "5");
        assert_eq!(request.selection.config["pvp"], "true");
        assert_eq!(request.selection.percent, Some(50));
        let minimal = RolloutRequest::from_json(&json!({"target_version": "v2"})).expect("valid");
        assert_eq!(minimal.options, RolloutOptions::default());
        assert!(minimal.selection.is_whole_fleet());
    }

    #[test]
    fn a_bad_start_body_names_every_field_at_fault() {
        let problem = RolloutRequest::from_json(&json!({
            "selection": {"tenants": ["Not An Id", 3], "config": {"k": [1]}, "percent": 101, "x": 1},
            "options": {"canary": "150%", "bake_seconds": -1, "growth": "2", "auto_rollback": "yes", "y": 0},
            "z": true
        }))
        .expect_err("invalid");
        assert_eq!(problem.status, 422);
        let fields: Vec<&str> = problem.errors.iter().map(|e| e.field.as_str()).collect();
        for field in [
            "target_version",
            "selection.tenants[0]",
            "selection.tenants[1]",
            "selection.config.k",
            "selection.percent",
            "selection.x",
            "options.canary",
            "options.bake_seconds",
            "options.growth",
            "options.auto_rollback",
            "options.y",
            "z",
        ] {
            assert!(fields.contains(&field), "{field} in {fields:?}");
        }
        assert_eq!(
            RolloutRequest::from_json(&json!([]))
                .expect_err("not an object")
                .status,
            400
        );
    }

    #[test]
    fn driver_errors_become_problems() {
        let invalid = rollout_problem(RolloutError::Invalid(vec![
            "canary must be at least one tenant".into(),
            "no template version \"v9\" is published".into(),
        ]));
        assert_eq!(invalid.status, 422);
        assert_eq!(invalid.errors[0].field, "options.canary");
        assert_eq!(invalid.errors[1].field, "target_version");
        assert_eq!(
            rollout_problem(RolloutError::Busy("r-1".into())).status,
            409
        );
        assert_eq!(
            rollout_problem(RolloutError::Refused("cannot".into())).status,
            409
        );
        assert_eq!(
            rollout_problem(RolloutError::NotFound("r-1".into())).status,
            404
        );
        assert_eq!(rollout_problem(RolloutError::Conflict).status, 503);
    }
}
