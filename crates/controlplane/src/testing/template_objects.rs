//! The template buckets, faked: one bucket per region, with the URLs CloudFormation would read.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

use async_trait::async_trait;

use super::lock;
use crate::ports::{ObjectError, TemplateObjects};

/// Every fake bucket's objects by URL: what a TemplateURL gives CloudFormation (the fake stacks
/// and the fake validator read it). Each fake's buckets have names of their own, so tests never
/// see each other's objects.
static BY_URL: LazyLock<Mutex<HashMap<String, String>>> = LazyLock::new(Default::default);
static NEXT_FAKE: AtomicU64 = AtomicU64::new(0);

/// The object a TemplateURL names, as CloudFormation would fetch it; `None`: no such object.
pub fn object_at(url: &str) -> Option<String> {
    lock(&BY_URL).get(url).cloned()
}

/// Buckets in us-east-1 (home), eu-west-1, us-west-2 and ap-southeast-2 unless made `in_regions`.
pub struct FakeTemplateObjects {
    prefix: String,
    home: String,
    regions: Vec<String>,
    /// (region, key) -> body.
    objects: Mutex<BTreeMap<(String, String), String>>,
    faults: Mutex<VecDeque<ObjectError>>,
    puts: AtomicU64,
}

impl Default for FakeTemplateObjects {
    fn default() -> Self {
        Self::in_regions("us-east-1", ["eu-west-1", "us-west-2", "ap-southeast-2"])
    }
}

impl FakeTemplateObjects {
    pub fn in_regions<'a>(home: &str, others: impl IntoIterator<Item = &'a str>) -> Self {
        let mut regions: Vec<String> = others.into_iter().map(str::to_owned).collect();
        regions.push(home.to_owned());
        regions.sort();
        regions.dedup();
        Self {
            prefix: format!(
                "fake-templates-{}-",
                NEXT_FAKE.fetch_add(1, Ordering::Relaxed)
            ),
            home: home.to_owned(),
            regions,
            objects: Mutex::default(),
            faults: Mutex::default(),
            puts: AtomicU64::new(0),
        }
    }

    fn url(&self, region: &str, key: &str) -> String {
        format!(
            "https://{}{region}.s3.{region}.amazonaws.com/{key}",
            self.prefix
        )
    }

    /// Overwrites an object in every bucket, as a hand edit of the buckets would.
    pub fn overwrite(&self, key: &str, body: &str) {
        for region in &self.regions {
            lock(&self.objects).insert((region.clone(), key.to_owned()), body.to_owned());
            lock(&BY_URL).insert(self.url(region, key), body.to_owned());
        }
    }

    /// Deletes an object from every bucket.
    pub fn remove(&self, key: &str) {
        for region in &self.regions {
            lock(&self.objects).remove(&(region.clone(), key.to_owned()));
            lock(&BY_URL).remove(&self.url(region, key));
        }
    }

    /// The keys stored in `region`'s bucket.
    pub fn keys_in(&self, region: &str) -> Vec<String> {
        lock(&self.objects)
            .keys()
            .filter(|(r, _)| r == region)
            .map(|(_, key)| key.clone())
            .collect()
    }

    /// The next calls fail with these errors, in order.
    pub fn fail_next(&self, errors: impl IntoIterator<Item = ObjectError>) {
        lock(&self.faults).extend(errors);
    }

    /// How many objects were written (a copy per region counts once per region).
    pub fn puts(&self) -> u64 {
        self.puts.load(Ordering::Relaxed)
    }

    fn fault(&self) -> Result<(), ObjectError> {
        match lock(&self.faults).pop_front() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl TemplateObjects for FakeTemplateObjects {
    async fn put(&self, key: &str, body: &str) -> Result<(), ObjectError> {
        self.fault()?;
        for region in &self.regions {
            self.puts.fetch_add(1, Ordering::Relaxed);
            lock(&self.objects).insert((region.clone(), key.to_owned()), body.to_owned());
            lock(&BY_URL).insert(self.url(region, key), body.to_owned());
        }
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<String>, ObjectError> {
        self.fault()?;
        Ok(lock(&self.objects)
            .get(&(self.home.clone(), key.to_owned()))
            .cloned())
    }

    fn urls(&self, key: &str) -> BTreeMap<String, String> {
        self.regions
            .iter()
            .map(|region| (region.clone(), self.url(region, key)))
            .collect()
    }

    fn home_region(&self) -> &str {
        &self.home
    }
}

/// A tenant template as the CDK synthesises it with the bootstrapless synthesizer, at least
/// `bytes` long: JSON, the sample template's parameters, settings parameter and job queue
/// (retention `retention_seconds`), and as many more settings parameters, each with its
/// `aws:cdk:path`, as the size takes. It needs no CDK bootstrap and creates only what the tenant
/// role may create.
pub fn cdk_style_template(retention_seconds: u32, bytes: usize) -> String {
    use serde_json::{Map, Value, json};
    let mut resources = Map::new();
    resources.insert(
        "SettingsParameter".into(),
        json!({
            "Type": "AWS::SSM::Parameter",
            "Properties": {
                "Name": {"Fn::Sub": "/tenants/${TenantId}/settings"},
                "Type": "String",
                "Value": {"Fn::Sub": "difficulty=${Difficulty};players=${PlayerCount};seed=${Seed}"},
            },
            "Metadata": {"aws:cdk:path": "TenantStack/SettingsParameter/Resource"},
        }),
    );
    resources.insert(
        "JobsQueue".into(),
        json!({
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": {"Fn::Sub": "${AWS::StackName}-jobs"},
                "MessageRetentionPeriod": retention_seconds,
                "SqsManagedSseEnabled": true,
            },
            "UpdateReplacePolicy": "Delete",
            "DeletionPolicy": "Delete",
            "Metadata": {"aws:cdk:path": "TenantStack/JobsQueue/Resource"},
        }),
    );
    let template = |resources: &Map<String, Value>| {
        json!({
            "Description": "Tenant stack (synthesised by the CDK, BootstraplessSynthesizer)",
            "Parameters": {
                "TenantId": {"Type": "String", "AllowedPattern": "^[a-z][a-z0-9-]{2,39}$"},
                "Difficulty": {"Type": "String", "Default": "normal",
                               "AllowedValues": ["peaceful", "easy", "normal", "hard"]},
                "PlayerCount": {"Type": "Number", "Default": 4, "MinValue": 1, "MaxValue": 100},
                "Seed": {"Type": "String", "Default": ""},
            },
            "Resources": resources,
            "Outputs": {
                "JobsQueueUrl": {"Value": {"Ref": "JobsQueue"}},
                "JobsQueueArn": {"Value": {"Fn::GetAtt": ["JobsQueue", "Arn"]}},
            },
        })
    };
    let mut part = 0;
    while serde_json::to_string_pretty(&template(&resources)).map_or(0, |t| t.len()) < bytes {
        part += 1;
        // 4,000 characters: under SSM's 4,096 for a standard parameter.
        let value = format!("part {part} ")
            .repeat(400)
            .chars()
            .take(4000)
            .collect::<String>();
        resources.insert(
            format!("LevelData{part:03}"),
            json!({
                "Type": "AWS::SSM::Parameter",
                "Properties": {
                    "Name": {"Fn::Sub": format!("/tenants/${{TenantId}}/levels/{part:03}")},
                    "Type": "String",
                    "Value": value,
                },
                "Metadata": {"aws:cdk:path": format!("TenantStack/Levels/LevelData{part:03}/Resource")},
            }),
        );
    }
    serde_json::to_string_pretty(&template(&resources)).unwrap_or_default()
}
