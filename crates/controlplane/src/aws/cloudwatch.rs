//! The rollout's alarms in CloudWatch (DescribeAlarms: metric and composite alarms).

use async_trait::async_trait;
use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::types::{AlarmType, StateValue};

use super::{AwsFailure, Call, Resource};
use crate::ports::{AlarmError, Alarms, Breach};

/// The calls of [`CloudWatchAlarms`]. DescribeAlarms takes no resource-level permission.
pub const CALLS: &[Call] = &[Call::new("cloudwatch:DescribeAlarms", Resource::Unscoped)];

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
        let answer = self
            .client
            .describe_alarms()
            .set_alarm_names(Some(names.to_vec()))
            .alarm_types(AlarmType::MetricAlarm)
            .alarm_types(AlarmType::CompositeAlarm)
            .max_records(100)
            .send()
            .await
            .map_err(|e| AlarmError(AwsFailure::from_sdk(&e).message))?;
        let mut states: Vec<(String, StateValue, String)> = answer
            .metric_alarms()
            .iter()
            .map(|a| {
                (
                    a.alarm_name().unwrap_or_default().to_owned(),
                    a.state_value()
                        .cloned()
                        .unwrap_or(StateValue::InsufficientData),
                    a.state_reason().unwrap_or_default().to_owned(),
                )
            })
            .chain(answer.composite_alarms().iter().map(|a| {
                (
                    a.alarm_name().unwrap_or_default().to_owned(),
                    a.state_value()
                        .cloned()
                        .unwrap_or(StateValue::InsufficientData),
                    a.state_reason().unwrap_or_default().to_owned(),
                )
            }))
            .collect();
        let missing: Vec<&str> = names
            .iter()
            .filter(|name| !states.iter().any(|(found, _, _)| found == *name))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(AlarmError(format!(
                "no such alarm: {} (DescribeAlarms answered without it)",
                missing.join(", ")
            )));
        }
        states.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(states
            .into_iter()
            .find(|(_, state, _)| *state == StateValue::Alarm)
            .map(|(alarm, _, reason)| Breach { alarm, reason }))
    }
}
