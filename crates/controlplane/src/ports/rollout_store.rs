//! Rollouts, their members and the driver lease.

use async_trait::async_trait;

use super::StoreError;

/// Where rollouts and their members live (the table).
#[async_trait]
pub trait RolloutStore: Send + Sync {
    /// Stores a new rollout; `Conflict` when the id exists.
    async fn create_rollout(&self, rollout: &model::rollout::Rollout) -> Result<(), StoreError>;
    async fn rollout(&self, id: &str) -> Result<Option<model::rollout::Rollout>, StoreError>;
    /// Every rollout, newest first.
    async fn list_rollouts(&self) -> Result<Vec<model::rollout::Rollout>, StoreError>;
    /// Writes the rollout if its stored `version` is still `expected`.
    async fn put_rollout(
        &self,
        rollout: &model::rollout::Rollout,
        expected: u64,
    ) -> Result<(), StoreError>;
    /// The rollout that holds the fleet (at most one runs at a time).
    async fn active_rollout(&self) -> Result<Option<String>, StoreError>;
    /// Makes `id` the active rollout if none is, or if `replacing` is (a finished one);
    /// `Conflict` otherwise.
    async fn claim_active(&self, id: &str, replacing: Option<&str>) -> Result<(), StoreError>;
    /// Frees the fleet if `id` holds it (a no-op otherwise).
    async fn release_active(&self, id: &str) -> Result<(), StoreError>;
    /// Every member of the rollout, sorted by `order`.
    async fn members(&self, id: &str) -> Result<Vec<model::rollout::Member>, StoreError>;
    /// Adds members; one already stored is kept as it is (planning a page twice is harmless).
    async fn add_members(
        &self,
        id: &str,
        members: &[model::rollout::Member],
    ) -> Result<(), StoreError>;
    /// Writes a member if its stored state is still `expected`.
    async fn put_member(
        &self,
        id: &str,
        member: &model::rollout::Member,
        expected: model::rollout::MemberState,
    ) -> Result<(), StoreError>;
    /// Takes or renews the driver lease for `holder` until `until` (epoch seconds): granted when
    /// no lease is stored, `holder` has it, or the stored one ended before `now`; `Conflict`
    /// while another driver's lease runs. One driver steps the rollouts at a time.
    async fn hold_driver_lease(&self, holder: &str, now: i64, until: i64)
    -> Result<(), StoreError>;
    /// Gives the lease up if `holder` has it (a no-op otherwise).
    async fn release_driver_lease(&self, holder: &str) -> Result<(), StoreError>;
}
