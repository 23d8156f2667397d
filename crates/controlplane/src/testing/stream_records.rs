//! The stream, faked by range.

use std::sync::Mutex;

use async_trait::async_trait;

use super::lock;
use model::spec::TenantKey;

/// A stream whose ranges name the given tenants; unknown ranges are gone (trimmed).
#[derive(Default)]
pub struct FakeStreamRecords {
    ranges: Mutex<Vec<(crate::ports::ShardRange, Vec<TenantKey>)>>,
    transient: Mutex<bool>,
}

impl FakeStreamRecords {
    pub fn holds(&self, range: crate::ports::ShardRange, tenants: Vec<TenantKey>) {
        lock(&self.ranges).push((range, tenants));
    }

    pub fn set_unavailable(&self, unavailable: bool) {
        *lock(&self.transient) = unavailable;
    }
}

#[async_trait]
impl crate::ports::StreamRecords for FakeStreamRecords {
    async fn tenants_in(
        &self,
        range: &crate::ports::ShardRange,
    ) -> Result<Vec<TenantKey>, crate::ports::StreamReadError> {
        if *lock(&self.transient) {
            return Err(crate::ports::StreamReadError::Transient(
                "ThrottlingException: rate exceeded".into(),
            ));
        }
        lock(&self.ranges)
            .iter()
            .find(|(held, _)| held == range)
            .map(|(_, tenants)| tenants.clone())
            .ok_or_else(|| {
                crate::ports::StreamReadError::Gone(
                    "TrimmedDataAccessException: records past the retention period".into(),
                )
            })
    }
}
