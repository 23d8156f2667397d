//! The rollout's alarms in CloudWatch (DescribeAlarms: metric and composite alarms).

use async_trait::async_trait;
use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::types::{AlarmType, StateValue};

use super::{AwsFailure, Call, Resource};
use crate::ports::{AlarmError, Alarms, Breach};

/// The calls of [`CloudWatchAlarms`]: the alarms of the control plane's account and region.
pub const CALLS: &[Call] = &[Call::new("cloudwatch:DescribeAlarms", Resource::Alarms)];

pub struct CloudWatchAlarms {
    client: Client,
}

impl CloudWatchAlarms {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Alarms for CloudWatchAlarms {
    async fn breached(&self, names: &[String]) -> Result<Option<Breach>, AlarmError> {
        if names.is_empty() {
            return Ok(None);
        }
        let mut states: Vec<(String, StateValue, String)> = Vec::new();
        // DescribeAlarms takes at most 100 names a call.
        for chunk in names.chunks(100) {
            let answer = self
                .client
                .describe_alarms()
                .set_alarm_names(Some(chunk.to_vec()))
                .alarm_types(AlarmType::MetricAlarm)
                .alarm_types(AlarmType::CompositeAlarm)
                .max_records(100)
                .send()
                .await
                .map_err(|e| AlarmError::Unavailable(AwsFailure::from_sdk(&e).message))?;
            let state = |name: Option<&str>, value: Option<&StateValue>, reason: Option<&str>| {
                (
                    name.unwrap_or_default().to_owned(),
                    value.cloned().unwrap_or(StateValue::InsufficientData),
                    reason.unwrap_or_default().to_owned(),
                )
            };
            states.extend(
                answer
                    .metric_alarms()
                    .iter()
                    .map(|a| state(a.alarm_name(), a.state_value(), a.state_reason())),
            );
            states.extend(
                answer
                    .composite_alarms()
                    .iter()
                    .map(|a| state(a.alarm_name(), a.state_value(), a.state_reason())),
            );
        }
        let missing: Vec<String> = names
            .iter()
            .filter(|name| !states.iter().any(|(found, _, _)| found == *name))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(AlarmError::Missing(missing));
        }
        states.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(states
            .into_iter()
            .find(|(_, state, _)| *state == StateValue::Alarm)
            .map(|(alarm, _, reason)| Breach { alarm, reason }))
    }
}
