//! Rollout preview jobs and their per-tenant results.

use async_trait::async_trait;

use super::StoreError;

/// Where rollout previews live (the table): the job, and one item per tenant previewed.
#[async_trait]
pub trait PreviewStore: Send + Sync {
    /// Stores a new preview job; `Conflict` when the id exists.
    async fn create_preview(
        &self,
        job: &crate::rollout::preview::PreviewJob,
    ) -> Result<(), StoreError>;
    async fn preview(
        &self,
        id: &str,
    ) -> Result<Option<crate::rollout::preview::PreviewJob>, StoreError>;
    /// Writes the job if its stored `version` is still `expected`.
    async fn put_preview(
        &self,
        job: &crate::rollout::preview::PreviewJob,
        expected: u64,
    ) -> Result<(), StoreError>;
    /// Stores tenants' previews (one written again replaces the earlier one).
    async fn put_preview_results(
        &self,
        id: &str,
        results: &[crate::rollout::preview::TenantPreview],
    ) -> Result<(), StoreError>;
    /// A page of the job's tenant previews, by tenant id, and the token of the next page.
    async fn preview_results(
        &self,
        id: &str,
        page_token: Option<String>,
        limit: usize,
    ) -> Result<(Vec<crate::rollout::preview::TenantPreview>, Option<String>), StoreError>;
}
