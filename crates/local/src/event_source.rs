//! The stream event source settings of a function, read from template.yaml, so the local poller
//! behaves as the deployed event source mapping does and the two cannot drift.

use std::path::Path;
use std::time::Duration;

use serde_yaml_ng::Value;

use crate::filter::{FilterPattern, PatternError};

#[derive(Debug, thiserror::Error)]
pub enum EventSourceError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("template.yaml has no DynamoDB event {event} on function {function}")]
    NotFound { function: String, event: String },
    #[error("event {event}: {reason}")]
    Invalid { event: String, reason: String },
    #[error(transparent)]
    Pattern(#[from] PatternError),
}

/// The settings of one `Type: DynamoDB` event of an `AWS::Serverless::Function`.
#[derive(Clone, Debug)]
pub struct EventSourceSettings {
    pub function: String,
    pub batch_size: usize,
    pub filters: Vec<FilterPattern>,
    pub report_batch_item_failures: bool,
    pub bisect_on_function_error: bool,
    /// `None`: retry until the record expires (Lambda's -1).
    pub maximum_retry_attempts: Option<u32>,
    /// `None`: records never age out (Lambda's -1).
    pub maximum_record_age: Option<Duration>,
    pub has_on_failure_destination: bool,
}

impl EventSourceSettings {
    pub fn from_template_file(
        path: &Path,
        function: &str,
        event: &str,
    ) -> Result<Self, EventSourceError> {
        let text = std::fs::read_to_string(path).map_err(|e| EventSourceError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::from_template(&text, function, event)
    }

    pub fn from_template(
        text: &str,
        function: &str,
        event: &str,
    ) -> Result<Self, EventSourceError> {
        let invalid = |reason: String| EventSourceError::Invalid {
            event: event.to_owned(),
            reason,
        };
        let document: Value = serde_yaml_ng::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let properties = document
            .get("Resources")
            .and_then(|r| r.get(function))
            .and_then(|f| f.get("Properties"))
            .and_then(|p| p.get("Events"))
            .and_then(|e| e.get(event))
            .filter(|e| e.get("Type").and_then(Value::as_str) == Some("DynamoDB"))
            .and_then(|e| e.get("Properties"))
            .ok_or_else(|| EventSourceError::NotFound {
                function: function.to_owned(),
                event: event.to_owned(),
            })?;
        let number = |name: &str| properties.get(name).and_then(Value::as_i64);
        let batch_size = number("BatchSize").unwrap_or(100);
        if !(1..=10_000).contains(&batch_size) {
            return Err(invalid(format!("BatchSize {batch_size} is out of range")));
        }
        let filters = properties
            .get("FilterCriteria")
            .and_then(|c| c.get("Filters"))
            .and_then(Value::as_sequence)
            .map(|filters| {
                filters
                    .iter()
                    .map(|f| {
                        let pattern = f
                            .get("Pattern")
                            .and_then(Value::as_str)
                            .ok_or_else(|| invalid("a filter has no Pattern string".into()))?;
                        let parsed = FilterPattern::parse(pattern)?;
                        // Lambda's rule for DynamoDB event source mappings: a pattern that
                        // names any other key (`eventName`, say) is not applied as written.
                        let stray = parsed
                            .top_level_keys()
                            .find(|key| *key != "dynamodb")
                            .map(str::to_owned);
                        match stray {
                            Some(key) => Err(invalid(format!(
                                "filter pattern {pattern} names {key:?}: DynamoDB event \
                                 source mappings filter only on the \"dynamodb\" key"
                            ))),
                            None => Ok(parsed),
                        }
                    })
                    .collect::<Result<Vec<_>, EventSourceError>>()
            })
            .transpose()?
            .unwrap_or_default();
        let response_types = properties
            .get("FunctionResponseTypes")
            .and_then(Value::as_sequence)
            .map(|types| types.iter().filter_map(Value::as_str).collect::<Vec<_>>())
            .unwrap_or_default();
        Ok(Self {
            function: function.to_owned(),
            batch_size: batch_size as usize,
            filters,
            report_batch_item_failures: response_types.contains(&"ReportBatchItemFailures"),
            bisect_on_function_error: properties
                .get("BisectBatchOnFunctionError")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            maximum_retry_attempts: number("MaximumRetryAttempts")
                .filter(|n| *n >= 0)
                .map(|n| n as u32),
            maximum_record_age: number("MaximumRecordAgeInSeconds")
                .filter(|n| *n >= 0)
                .map(|n| Duration::from_secs(n as u64)),
            has_on_failure_destination: properties
                .get("DestinationConfig")
                .and_then(|d| d.get("OnFailure"))
                .is_some(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = include_str!("../../../template.yaml");

    #[test]
    fn the_shipped_stream_event_is_read() {
        let s =
            EventSourceSettings::from_template(TEMPLATE, "StreamHandlerFunction", "SpecChanges")
                .unwrap();
        assert_eq!(s.batch_size, 100);
        assert_eq!(s.filters.len(), 1);
        assert!(s.report_batch_item_failures);
        assert!(s.bisect_on_function_error);
        assert_eq!(s.maximum_retry_attempts, Some(10));
        assert_eq!(s.maximum_record_age, Some(Duration::from_secs(3600)));
        assert!(s.has_on_failure_destination);
    }

    #[test]
    fn a_filter_on_anything_but_the_dynamodb_key_is_refused_as_lambda_does() {
        let with_event_name = TEMPLATE.replace(
            r#"- Pattern: '{"dynamodb":"#,
            r#"- Pattern: '{"eventName":["INSERT","MODIFY","REMOVE"],"dynamodb":"#,
        );
        assert_ne!(with_event_name, TEMPLATE, "the shipped pattern was found");
        let e = EventSourceSettings::from_template(
            &with_event_name,
            "StreamHandlerFunction",
            "SpecChanges",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("\"eventName\"") && e.to_string().contains("only on"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_event_is_an_error() {
        let e = EventSourceSettings::from_template(TEMPLATE, "StreamHandlerFunction", "Nope")
            .unwrap_err();
        assert!(e.to_string().contains("no DynamoDB event Nope"), "{e}");
    }
}
