//! CloudWatch alarms, faked: each named alarm is OK until the test breaches it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::lock;
use crate::ports::{AlarmError, Alarms, Breach};

#[derive(Default)]
pub struct FakeAlarms {
    /// Alarm name -> the reason it is in ALARM (`None`: OK).
    alarms: Mutex<BTreeMap<String, Option<String>>>,
    unreadable: Mutex<Option<String>>,
    reads: Mutex<usize>,
}

impl FakeAlarms {
    /// An alarm that exists, in OK.
    pub fn add(&self, name: &str) {
        lock(&self.alarms).insert(name.to_owned(), None);
    }

    /// Puts the alarm in ALARM with `reason` (creating it).
    pub fn breach(&self, name: &str, reason: &str) {
        lock(&self.alarms).insert(name.to_owned(), Some(reason.to_owned()));
    }

    /// Deletes the alarm.
    pub fn delete(&self, name: &str) {
        lock(&self.alarms).remove(name);
    }

    /// Back to OK.
    pub fn clear(&self, name: &str) {
        lock(&self.alarms).insert(name.to_owned(), None);
    }

    /// Every read fails with `reason` (None: reads work again).
    pub fn set_unreadable(&self, reason: Option<&str>) {
        *lock(&self.unreadable) = reason.map(str::to_owned);
    }

    pub fn reads(&self) -> usize {
        *lock(&self.reads)
    }
}

#[async_trait]
impl Alarms for FakeAlarms {
    async fn breached(&self, names: &[String]) -> Result<Option<Breach>, AlarmError> {
        *lock(&self.reads) += 1;
        if let Some(reason) = lock(&self.unreadable).clone() {
            return Err(AlarmError::Unavailable(reason));
        }
        let alarms = lock(&self.alarms);
        let missing: Vec<String> = names
            .iter()
            .filter(|n| !alarms.contains_key(*n))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(AlarmError::Missing(missing));
        }
        let mut watched: Vec<&String> = names.iter().collect();
        watched.sort();
        Ok(watched.into_iter().find_map(|name| {
            alarms[name].as_ref().map(|reason| Breach {
                alarm: name.clone(),
                reason: reason.clone(),
            })
        }))
    }
}
