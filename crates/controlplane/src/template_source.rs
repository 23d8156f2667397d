//! Where tenant template versions come from: the sample template shipped as `v1`, and the
//! versions published since (stored immutably in the table), with the fleet's current version.
//! Publishing checks a version before it is stored.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};

use crate::ports::{
    StackError, StoreError, TemplateObjects, TemplateRecord, TemplateSource, TemplateSourceError,
    TemplateStore, TemplateValidator, TenantStore, template_object_key,
};
use model::spec::{TenantKey, TenantSpec, check_template_version, describe_errors};
use model::template::{
    StoredTemplate, TEMPLATE_URL_MAX, Template, TemplateError, TemplateLocation, stack_parameters,
};

pub const SAMPLE_TEMPLATE: &str = include_str!("../../../templates/tenant-template.yaml");
pub const SAMPLE_VERSION: &str = "v1";

/// Template versions held in memory; the current one is what unpinned tenants get.
pub struct BundledTemplates {
    versions: BTreeMap<String, Arc<Template>>,
    current: String,
}

impl BundledTemplates {
    /// The shipped sample template as `v1`, the current version.
    pub fn sample() -> Result<Self, TemplateError> {
        Self::from_versions([(SAMPLE_VERSION, SAMPLE_TEMPLATE)], SAMPLE_VERSION)
    }

    pub fn from_versions<'a>(
        versions: impl IntoIterator<Item = (&'a str, &'a str)>,
        current: &str,
    ) -> Result<Self, TemplateError> {
        let versions = versions
            .into_iter()
            .map(|(version, body)| {
                Ok((
                    version.to_owned(),
                    Arc::new(Template::parse(version, body)?),
                ))
            })
            .collect::<Result<BTreeMap<_, _>, TemplateError>>()?;
        if !versions.contains_key(current) {
            return Err(TemplateError {
                version: current.to_owned(),
                message: "the current version is not among the versions given".into(),
            });
        }
        Ok(Self {
            versions,
            current: current.to_owned(),
        })
    }
}

#[async_trait]
impl TemplateSource for BundledTemplates {
    async fn current_version(&self) -> Result<String, TemplateSourceError> {
        Ok(self.current.clone())
    }

    async fn get(&self, version: &str) -> Result<Option<Arc<Template>>, TemplateSourceError> {
        Ok(self.versions.get(version).cloned())
    }
}

/// The `published_at` of a version shipped with the control plane: it was never published, so
/// it has no time of its own (readers show it as unknown). The epoch keeps the field a valid
/// RFC 3339 time, sorted before every published version.
pub const SHIPPED_PUBLISHED_AT: &str = "1970-01-01T00:00:00.000Z";

impl BundledTemplates {
    /// The versions shipped, as published records (`published_by` the control plane).
    pub fn records(&self) -> Vec<TemplateRecord> {
        self.versions
            .values()
            .map(|template| TemplateRecord {
                version: template.version.clone(),
                key: None,
                size: template.body.len(),
                sha256: sha256_hex(&template.body),
                inline_body: None,
                description: Some("shipped with the control plane".into()),
                published_by: model::audit::SYSTEM_ACTOR.into(),
                published_at: SHIPPED_PUBLISHED_AT.into(),
            })
            .collect()
    }
}

pub fn sha256_hex(body: &str) -> String {
    hex::encode(Sha256::digest(body.as_bytes()))
}

/// A version's record with its body, as `GET /template-versions/{version}` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TemplateVersion {
    #[serde(flatten)]
    pub record: TemplateRecord,
    pub body: String,
}

/// The shipped versions and those published to the table, whose bodies are S3 objects; the
/// current version is the table's once a rollout has set one, else the shipped one. Versions
/// never change once stored, so each is parsed once per process; its record and object are read
/// again at most every [`TEMPLATE_RECHECK`], so a body changed in place (an object overwritten
/// in the bucket) is refused by every instance within that time, not only by those that never
/// read it (which would make its tenants flap).
pub struct TableTemplates {
    store: Arc<dyn TemplateStore>,
    objects: Arc<dyn TemplateObjects>,
    bundled: BundledTemplates,
    parsed: Mutex<BTreeMap<String, (std::time::Instant, Arc<Template>)>>,
    recheck: std::time::Duration,
    /// The fleet's current version as the reconcile last read it, and when.
    current: Mutex<Option<(std::time::Instant, String, crate::ports::CurrentGuard)>>,
}

/// How long a warm instance assigns new tenants the current version it read, without reading it
/// again: the write that assigns it holds only while the CURRENT row is unchanged (a rollout's
/// move of it makes that write lose, and the version is read afresh).
pub const CURRENT_CACHED_FOR: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a verified published version is used before its record is read and checked again.
pub const TEMPLATE_RECHECK: std::time::Duration = std::time::Duration::from_secs(60);

impl TableTemplates {
    pub fn new(
        store: Arc<dyn TemplateStore>,
        objects: Arc<dyn TemplateObjects>,
        bundled: BundledTemplates,
    ) -> Self {
        Self {
            store,
            objects,
            bundled,
            parsed: Mutex::new(BTreeMap::new()),
            recheck: TEMPLATE_RECHECK,
            current: Mutex::new(None),
        }
    }

    /// Reads a version's record again once it was verified this long ago.
    pub fn with_recheck(mut self, recheck: std::time::Duration) -> Self {
        self.recheck = recheck;
        self
    }

    pub fn objects(&self) -> &dyn TemplateObjects {
        self.objects.as_ref()
    }

    /// Every version: shipped first, then published, oldest first.
    pub async fn records(&self) -> Result<Vec<TemplateRecord>, StoreError> {
        let mut records = self.bundled.records();
        records.extend(self.store.list_templates().await?.into_iter().map(sized));
        Ok(records)
    }

    /// A version's record as stored (its body not read).
    pub async fn record(&self, version: &str) -> Result<Option<TemplateRecord>, StoreError> {
        if let Some(record) = self
            .bundled
            .records()
            .into_iter()
            .find(|r| r.version == version)
        {
            return Ok(Some(record));
        }
        Ok(self.store.template(version).await?.map(sized))
    }

    /// A version with its body, verified as [`TemplateSource::get`] verifies it.
    pub async fn version(
        &self,
        version: &str,
    ) -> Result<Option<TemplateVersion>, TemplateSourceError> {
        let Some(record) = self.record(version).await? else {
            return Ok(None);
        };
        let Some(template) = self.get(version).await? else {
            return Ok(None);
        };
        Ok(Some(TemplateVersion {
            record,
            body: template.body.clone(),
        }))
    }

    /// A published version's record and body, if the body is still the one published. Versions
    /// are written once; a body changed in place afterwards (an object overwritten by hand) is
    /// never deployed or served as the version.
    async fn published(
        &self,
        version: &str,
    ) -> Result<Option<(TemplateRecord, String)>, TemplateSourceError> {
        let Some(record) = self.store.template(version).await? else {
            return Ok(None);
        };
        let body = match (&record.key, &record.inline_body) {
            (Some(key), _) => self.objects.get(key).await?.ok_or_else(|| {
                TemplateSourceError::Corrupt(format!(
                    "template version {version}'s body is gone from the template bucket \
                     ({key}); publish it again as a new version"
                ))
            })?,
            (None, Some(body)) => body.clone(),
            (None, None) => {
                return Err(TemplateSourceError::Corrupt(format!(
                    "template version {version} names no object for its body"
                )));
            }
        };
        let sha256 = sha256_hex(&body);
        if sha256 != record.sha256 {
            return Err(TemplateSourceError::Corrupt(format!(
                "template version {version} was changed after it was published: its body's \
                 sha256 is {sha256}, not the {} recorded; publish a new version",
                record.sha256
            )));
        }
        Ok(Some((record, body)))
    }

    fn parsed(
        &self,
    ) -> std::sync::MutexGuard<'_, BTreeMap<String, (std::time::Instant, Arc<Template>)>> {
        self.parsed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The parsed version, if it was verified less than `recheck` ago.
    fn cached(&self, version: &str) -> Option<Arc<Template>> {
        self.parsed()
            .get(version)
            .filter(|(verified, _)| verified.elapsed() < self.recheck)
            .map(|(_, template)| template.clone())
    }
}

/// A record with its size, also when written before sizes were (its body inline).
fn sized(mut record: TemplateRecord) -> TemplateRecord {
    if let (0, Some(body)) = (record.size, &record.inline_body) {
        record.size = body.len();
    }
    record
}

/// Where a stored version's copies are, for stack calls (none for an inline legacy body).
fn stored(objects: &dyn TemplateObjects, record: &TemplateRecord) -> Option<StoredTemplate> {
    record.key.as_ref().map(|key| StoredTemplate {
        key: key.clone(),
        urls: objects.urls(key),
    })
}

#[async_trait]
impl TemplateSource for TableTemplates {
    async fn current_version(&self) -> Result<String, TemplateSourceError> {
        match self.store.current_template().await {
            Ok(Some(current)) => Ok(current.version),
            Ok(None) => self.bundled.current_version().await,
            Err(e) => Err(e.into()),
        }
    }

    async fn current(
        &self,
    ) -> Result<(String, Option<crate::ports::CurrentGuard>), TemplateSourceError> {
        use crate::ports::CurrentGuard;
        if let Some((at, version, guard)) = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            && at.elapsed() < CURRENT_CACHED_FOR
        {
            return Ok((version, Some(guard)));
        }
        let (version, guard) = match self.store.current_template().await {
            Ok(Some(current)) => (
                current.version.clone(),
                CurrentGuard::Names(current.version),
            ),
            Ok(None) => (self.bundled.current_version().await?, CurrentGuard::NoRow),
            Err(e) => return Err(e.into()),
        };
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((std::time::Instant::now(), version.clone(), guard.clone()));
        Ok((version, Some(guard)))
    }

    fn forget_current(&self) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    async fn get(&self, version: &str) -> Result<Option<Arc<Template>>, TemplateSourceError> {
        if let Some(template) = self.bundled.get(version).await? {
            return Ok(Some(template));
        }
        if let Some(template) = self.cached(version) {
            return Ok(Some(template));
        }
        // Verified again (a stale parse is never used unverified); an unchanged body keeps its
        // parse.
        let Some((record, body)) = self.published(version).await? else {
            return Ok(None);
        };
        let kept = self
            .parsed()
            .get(version)
            .filter(|(_, template)| template.body == body)
            .map(|(_, template)| template.clone());
        let template = match kept {
            Some(template) => template,
            None => {
                let parsed = Template::parse(&record.version, &body)
                    .map_err(|e| TemplateSourceError::Corrupt(e.to_string()))?;
                Arc::new(match stored(self.objects.as_ref(), &record) {
                    Some(stored) => parsed.stored_at(stored),
                    None => parsed,
                })
            }
        };
        self.parsed().insert(
            version.to_owned(),
            (std::time::Instant::now(), template.clone()),
        );
        Ok(Some(template))
    }
}

/// Why a version was not published.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplatePublishError {
    /// The version or its body breaks a rule; every problem found, readable.
    #[error("the template version is not valid: {}", .0.join("; "))]
    Invalid(Vec<String>),
    /// Tenants following the fleet whose config the version cannot take (`count` of them;
    /// the first few `named` with the reason).
    #[error("the config of {count} tenants does not fit the template: {}", .named.join("; "))]
    BreaksTenants { count: usize, named: Vec<String> },
    /// The version exists with another body or description (`.1`): versions are immutable.
    #[error(
        "template version {0} already exists with another {1}; versions never change: publish a new version"
    )]
    Exists(String, &'static str),
    #[error("{0}")]
    Unavailable(String),
    /// DynamoDB would refuse the version's item: each field at fault. Nothing was stored.
    #[error("DynamoDB would refuse the template version: {}", model::spec::joined(.0))]
    Unstorable(Vec<model::spec::FieldError>),
}

impl From<StoreError> for TemplatePublishError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unstorable(errors) => Self::Unstorable(errors),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

/// A version to publish.
#[derive(Clone, Debug)]
pub struct NewTemplate {
    pub version: String,
    pub body: String,
    pub description: Option<String>,
    pub published_by: String,
    pub published_at: String,
}

/// Whether the version was stored now or had been, with the very same body, before.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    pub record: TemplateRecord,
    pub already: bool,
}

/// How many tenants a check names before it says "and N more".
const NAMED_TENANTS: usize = 20;

/// Checks a new version (its name, size, parameters, CloudFormation's ValidateTemplate, and
/// that every tenant following the fleet could take it with its config), then stores it.
/// Publishing the same version with the same body again is a harmless repeat.
pub async fn publish(
    new: NewTemplate,
    templates: &TableTemplates,
    store: &dyn TemplateStore,
    tenants: &dyn TenantStore,
    validator: &dyn TemplateValidator,
) -> Result<Published, TemplatePublishError> {
    let mut problems = Vec::new();
    if let Err(reason) = check_template_version(&new.version) {
        problems.push(format!("version {reason}"));
    }
    if new.body.len() > TEMPLATE_URL_MAX {
        problems.push(format!(
            "the body is {} bytes; CloudFormation reads at most {TEMPLATE_URL_MAX} (1 MB) from \
             a TemplateURL",
            new.body.len()
        ));
    }
    let parsed = Template::parse(&new.version, &new.body);
    match &parsed {
        Err(e) => problems.push(e.message.clone()),
        Ok(template) => {
            for name in template.macros() {
                problems.push(format!(
                    "Transform {name} is a macro: it runs code of its own in every tenant \
                     account, which neither the tenant accounts nor their role provide; \
                     publish the expanded template instead (only {} are run)",
                    model::template::AWS_TRANSFORMS.join(", ")
                ));
            }
            problems.extend(template.cdk_bootstrap_needs().iter().cloned());
        }
    }
    if !problems.is_empty() {
        return Err(TemplatePublishError::Invalid(problems));
    }
    let sha256 = sha256_hex(&new.body);
    if let Some(existing) = templates.record(&new.version).await? {
        let repeat = same_version(existing, &sha256, new.description.as_ref())?;
        // The very body again: its objects are written again, which restores a copy that was
        // deleted or overwritten in a bucket since (the key is the body's hash).
        if let Some(key) = &repeat.record.key {
            templates.objects().put(key, &new.body).await.map_err(|e| {
                TemplatePublishError::Unavailable(format!("cannot store the template body: {e}"))
            })?;
        }
        return Ok(repeat);
    }
    // The body goes to every region's bucket first: a version is never recorded before its
    // copies exist. The key is the body's hash, so a repeat (or a retry) writes the same object.
    let key = template_object_key(&sha256, &new.body);
    let objects = templates.objects();
    objects.put(&key, &new.body).await.map_err(|e| {
        TemplatePublishError::Unavailable(format!("cannot store the template body: {e}"))
    })?;
    let home = objects.home_region().to_owned();
    let Some(url) = objects.urls(&key).remove(&home) else {
        return Err(TemplatePublishError::Unavailable(format!(
            "no template bucket in the home region {home}"
        )));
    };
    match validator
        .validate_template(&TemplateLocation::Url(url))
        .await
    {
        Ok(()) => {}
        Err(StackError::Rejected(reason)) => {
            return Err(TemplatePublishError::Invalid(vec![format!(
                "CloudFormation ValidateTemplate: {reason}"
            )]));
        }
        Err(e) => {
            return Err(TemplatePublishError::Unavailable(format!(
                "cannot validate the template: {e}"
            )));
        }
    }
    let template = parsed.map_err(|e| TemplatePublishError::Invalid(vec![e.message]))?;
    let mut broken = tenants_it_breaks(&template, templates, tenants).await?;
    if !broken.is_empty() {
        let count = broken.len();
        if count > NAMED_TENANTS {
            broken.truncate(NAMED_TENANTS);
            broken.push(format!("and {} more", count - NAMED_TENANTS));
        }
        return Err(TemplatePublishError::BreaksTenants {
            count,
            named: broken,
        });
    }
    let record = TemplateRecord {
        version: new.version.clone(),
        key: Some(key),
        size: new.body.len(),
        sha256,
        inline_body: None,
        description: new.description,
        published_by: new.published_by,
        published_at: new.published_at,
    };
    match store.put_template(&record).await {
        Ok(()) => Ok(Published {
            record,
            already: false,
        }),
        // Published concurrently: the same body is the same version.
        Err(StoreError::Conflict) => match templates.record(&record.version).await? {
            Some(existing) => same_version(existing, &record.sha256, record.description.as_ref()),
            None => Err(TemplatePublishError::Exists(record.version, "body")),
        },
        Err(e) => Err(e.into()),
    }
}

/// A publish of a version that exists: a harmless repeat only if the body and the description
/// are the same (nothing published is ever changed, so another description would be lost).
fn same_version(
    existing: TemplateRecord,
    sha256: &str,
    description: Option<&String>,
) -> Result<Published, TemplatePublishError> {
    if existing.sha256 != sha256 {
        Err(TemplatePublishError::Exists(existing.version, "body"))
    } else if existing.description.as_ref() != description {
        Err(TemplatePublishError::Exists(
            existing.version,
            "description",
        ))
    } else {
        Ok(Published {
            record: existing,
            already: true,
        })
    }
}

/// Every tenant that follows the fleet (no pin) whose valid SPEC the template cannot take,
/// with the reason, sorted.
async fn tenants_it_breaks(
    template: &Template,
    templates: &TableTemplates,
    tenants: &dyn TenantStore,
) -> Result<Vec<String>, TemplatePublishError> {
    let keys: Vec<TenantKey> = crate::triggers::sweep::all_tenants(tenants).await?;
    let broken: Vec<Option<String>> = futures::stream::iter(keys)
        .map(|key| async move {
            let snapshot = tenants.load(&key).await?;
            let Some(item) = snapshot.spec else {
                return Ok::<_, TemplatePublishError>(None);
            };
            // An invalid SPEC already fails on its own; a pinned one does not follow the fleet.
            let Ok(spec) = TenantSpec::parse(&key, &item) else {
                return Ok(None);
            };
            if spec.template_version.is_some() {
                return Ok(None);
            }
            // Nor does one that fails on the version it is on (an unknown key, a value out of
            // range): it stays failed whatever is published, and must not hold the fleet back.
            let on_its_version = crate::validation::validate(
                &key,
                &item,
                snapshot.status.as_ref().and_then(|s| s.fleet_version()),
                templates,
            )
            .await
            .map_err(|e| TemplatePublishError::Unavailable(e.to_string()))?;
            if matches!(on_its_version, crate::validation::Validation::Invalid(_)) {
                return Ok(None);
            }
            Ok(stack_parameters(&spec, template)
                .err()
                .map(|errors| format!("{}: {}", key.as_str(), describe_errors(&errors))))
        })
        .buffer_unordered(16)
        .try_collect()
        .await?;
    let mut broken: Vec<String> = broken.into_iter().flatten().collect();
    broken.sort();
    Ok(broken)
}
