//! Template versions' bodies in S3: a copy in each region's template bucket (CloudFormation reads
//! a TemplateURL from a bucket in the stack's region), read from the home region's.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;

use super::{AwsFailure, Call, Resource};
use crate::config::{ConfigError, var};
use crate::ports::{Healing, ObjectError, TemplateObjects};

/// The calls of [`S3TemplateObjects::get`]: the home region's bucket.
pub const READ_CALLS: &[Call] = &[Call::new("s3:GetObject", Resource::TemplateObjects)];
/// The calls of [`S3TemplateObjects::put`]: every region's bucket.
pub const WRITE_CALLS: &[Call] = &[Call::new("s3:PutObject", Resource::TemplateCopies)];

/// template.yaml's default bucket names in the emulator's account: `tenant-templates-<account>-`.
pub const LOCAL_PREFIX: &str = "tenant-templates-123456789012-";

/// The template buckets: `<prefix><region>` in the home region and in each region tenants use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateBuckets {
    pub prefix: String,
    pub home_region: String,
    /// Every region with a bucket, the home region included, sorted.
    pub regions: Vec<String>,
}

impl TemplateBuckets {
    pub fn new(
        prefix: impl Into<String>,
        home_region: impl Into<String>,
        copy_regions: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        let home_region = home_region.into();
        let mut regions: Vec<String> = copy_regions.into_iter().map(Into::into).collect();
        regions.push(home_region.clone());
        regions.retain(|r| !r.trim().is_empty());
        regions.sort();
        regions.dedup();
        Self {
            prefix: prefix.into(),
            home_region,
            regions,
        }
    }

    /// The buckets as the local system (and template.yaml's defaults, in moto's account) name
    /// them: home in `home_region`, a copy in eu-west-1, where the demo's tenants are.
    pub fn local(home_region: &str) -> Self {
        Self::new(LOCAL_PREFIX, home_region, ["eu-west-1"])
    }

    /// TEMPLATE_BUCKET_PREFIX (template.yaml's `<TemplateBucketPrefix><account>-`) and
    /// TEMPLATE_REGIONS (comma-separated; the home region always has a bucket).
    pub fn from_env(home_region: &str) -> Result<Self, ConfigError> {
        let prefix =
            var("TEMPLATE_BUCKET_PREFIX").ok_or(ConfigError::Missing("TEMPLATE_BUCKET_PREFIX"))?;
        let regions = var("TEMPLATE_REGIONS").unwrap_or_default();
        let buckets = Self::new(prefix, home_region, regions.split(',').map(str::trim));
        if let Some(bad) = buckets.regions.iter().find(|r| {
            !r.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        }) {
            return Err(ConfigError::Invalid {
                name: "TEMPLATE_REGIONS",
                reason: format!("{bad:?} is not a region name"),
            });
        }
        Ok(buckets)
    }

    pub fn bucket(&self, region: &str) -> String {
        format!("{}{region}", self.prefix)
    }
}

/// One S3 client per region with a bucket (a bucket is reached through its own region).
pub struct S3TemplateObjects {
    buckets: TemplateBuckets,
    clients: BTreeMap<String, Client>,
}

impl S3TemplateObjects {
    pub fn new(sdk: &SdkConfig, buckets: TemplateBuckets) -> Self {
        let emulated = sdk.endpoint_url().is_some();
        let clients = buckets
            .regions
            .iter()
            .map(|region| {
                let config = aws_sdk_s3::config::Builder::from(sdk)
                    .region(aws_sdk_s3::config::Region::new(region.clone()))
                    // An emulator serves every bucket under its one address.
                    .force_path_style(emulated)
                    .build();
                (region.clone(), Client::from_conf(config))
            })
            .collect();
        Self { buckets, clients }
    }

    /// The buckets, each reached through the given region's client (tests answer them).
    pub fn with_clients(buckets: TemplateBuckets, clients: BTreeMap<String, Client>) -> Self {
        Self { buckets, clients }
    }

    fn client(&self, region: &str) -> Result<&Client, ObjectError> {
        self.clients
            .get(region)
            .ok_or_else(|| ObjectError::Rejected(format!("no template bucket in {region}")))
    }
}

fn object_error(bucket: &str, failure: AwsFailure) -> ObjectError {
    let message = format!("{bucket}: {}", failure.message);
    match failure.healing {
        Healing::Transient => ObjectError::Unavailable(message),
        Healing::Permanent => ObjectError::Rejected(message),
    }
}

#[async_trait]
impl TemplateObjects for S3TemplateObjects {
    async fn put(&self, key: &str, body: &str) -> Result<(), ObjectError> {
        let puts = self.buckets.regions.iter().map(|region| async move {
            let bucket = self.buckets.bucket(region);
            self.client(region)?
                .put_object()
                .bucket(&bucket)
                .key(key)
                .body(ByteStream::from(body.as_bytes().to_vec()))
                .content_type(if key.ends_with(".json") {
                    "application/json"
                } else {
                    "application/yaml"
                })
                .send()
                .await
                .map(|_| ())
                .map_err(|e| object_error(&bucket, AwsFailure::from_sdk(&e)))
        });
        futures::future::try_join_all(puts).await.map(|_| ())
    }

    async fn get(&self, key: &str) -> Result<Option<String>, ObjectError> {
        let region = &self.buckets.home_region;
        let bucket = self.buckets.bucket(region);
        let answer = self
            .client(region)?
            .get_object()
            .bucket(&bucket)
            .key(key)
            .send()
            .await;
        let object = match answer {
            Ok(object) => object,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(object_error(&bucket, AwsFailure::from_sdk(&e))),
        };
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|e| ObjectError::Unavailable(format!("{bucket}/{key}: {e}")))?
            .into_bytes();
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| ObjectError::Rejected(format!("{bucket}/{key} is not UTF-8 text")))
    }

    fn urls(&self, key: &str) -> BTreeMap<String, String> {
        self.buckets
            .regions
            .iter()
            .map(|region| {
                // AWS's own form, on an emulator too: moto reads it from its own S3.
                let bucket = self.buckets.bucket(region);
                // The China partition has its own domain.
                let domain = if region.starts_with("cn-") {
                    "amazonaws.com.cn"
                } else {
                    "amazonaws.com"
                };
                let url = format!("https://{bucket}.s3.{region}.{domain}/{key}");
                (region.clone(), url)
            })
            .collect()
    }

    fn home_region(&self) -> &str {
        &self.buckets.home_region
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_region_has_one_bucket_and_the_home_region_always_has_one() {
        let buckets =
            TemplateBuckets::new("t-123-", "us-east-1", ["eu-west-1", "", " ", "us-east-1"]);
        assert_eq!(buckets.regions, ["eu-west-1", "us-east-1"]);
        assert_eq!(buckets.bucket("eu-west-1"), "t-123-eu-west-1");
    }

    #[tokio::test]
    async fn urls_are_aws_virtual_hosted_ones_on_an_emulator_too() {
        let buckets = TemplateBuckets::new("t-123-", "us-east-1", ["eu-west-1"]);
        let aws = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let on_aws = S3TemplateObjects::new(&aws, buckets.clone()).urls("templates/a.yaml");
        assert_eq!(
            on_aws["eu-west-1"],
            "https://t-123-eu-west-1.s3.eu-west-1.amazonaws.com/templates/a.yaml"
        );
        let local = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .endpoint_url("http://localhost:5000/")
            .build();
        let on_moto = S3TemplateObjects::new(&local, buckets).urls("templates/a.yaml");
        assert_eq!(
            on_moto["us-east-1"],
            "https://t-123-us-east-1.s3.us-east-1.amazonaws.com/templates/a.yaml"
        );
    }
}
