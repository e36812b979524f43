//! The least-privilege IAM policy for what ecrcp does in ECR (`ecrcp iam-policy`): which ECR
//! and KMS actions each destination and source of a plan needs, on which ARNs, merged into
//! few statements in a stable order. Pure: `for_plan` asks ECR for the caller's own
//! registry and puts a plan's accesses together; the command layer prints the policy and its
//! notes.
//!
//! Where each action comes from (AWS's names; the registry API calls are authorized as the
//! ECR actions AWS documents for them):
//! - `GetAuthorizationToken`: the registry login (`src/provider/ecr.rs`), on `*` (it names no resource).
//! - `DescribeRepositories`: every copy into ECR first asks whether its repository exists.
//! - `BatchGetImage`: manifest HEADs and GETs (the checks, the verification, referrers).
//! - `BatchCheckLayerAvailability`: blob HEADs; `InitiateLayerUpload`: the upload POST;
//!   `UploadLayerPart`: the bytes (docker's PATCHes, the registry engine's one PUT);
//!   `CompleteLayerUpload`: the closing PUT; `PutImage`: the manifest PUT.
//! - `GetDownloadUrlForLayer`: blob GETs from an ECR source, and the pull access a
//!   cross-repository mount asks for on the repository it mounts from. Both engines mount
//!   from destinations: the registry engine a blob one destination received into the next
//!   of the same registry, docker any blob it pushed to or pulled from another repository
//!   of that registry (its own record, kept across runs), so every destination has it.
//! - `ListImages`: the tag list of an ECR source (tag rules, the referrers tag schema).
//! - `CreateRepository` and, to roll back a repository a failed copy created,
//!   `DeleteRepository`; `PutLifecyclePolicy` when a lifecycle policy is set; `TagResource`
//!   when repository tags are set (ECR authorizes tags on create as TagResource too).
//! - KMS, for repositories created with `kms` encryption: a customer key needs
//!   `kms:CreateGrant`, `kms:DescribeKey` and `kms:RetireGrant` on it; the AWS managed key
//!   (`aws/ecr`) needs `kms:RetireGrant` to delete a repository (AWS: "Encryption at rest",
//!   required IAM permissions).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::plan::{CopyJob, Encryption, JobSettings, OWN_REGISTRY_PLACEHOLDER};
use crate::reference::{Destination, EcrHost, ReferenceError};

pub mod for_plan;

/// IAM's limit on a customer managed policy, counted without whitespace. A longer list of
/// exact repositories is folded into prefixes.
pub const MANAGED_POLICY_LIMIT: usize = 6144;

/// An ECR registry as far as it is known: the caller's own registry lacks its account when
/// there were no credentials to ask (and its region when none is configured).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Registry {
    pub account: Option<String>,
    pub region: Option<String>,
}

impl Registry {
    pub fn of(host: &EcrHost) -> Registry {
        Registry {
            account: Some(host.account.clone()),
            region: Some(host.region.clone()),
        }
    }

    /// The AWS partition of the region: ARNs in China and GovCloud differ from `aws`.
    fn partition(&self) -> &'static str {
        match self.region.as_deref() {
            Some(region) if region.starts_with("cn-") => "aws-cn",
            Some(region) if region.starts_with("us-gov-") => "aws-us-gov",
            Some(region) if region.starts_with("us-isob-") => "aws-iso-b",
            Some(region) if region.starts_with("us-iso-") => "aws-iso",
            _ => "aws",
        }
    }

    fn arn(&self, service: &str, resource: &str) -> String {
        format!(
            "arn:{}:{service}:{}:{}:{resource}",
            self.partition(),
            self.region.as_deref().unwrap_or("*"),
            self.account.as_deref().unwrap_or("*")
        )
    }
}

/// Repositories named exactly, or every repository under a prefix (a directory destination
/// given without its sources).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repositories {
    Exact(String),
    /// The prefix without its trailing `/`; empty for a whole registry.
    Under(String),
}

impl Repositories {
    fn resource(&self) -> String {
        match self {
            Repositories::Exact(name) => format!("repository/{name}"),
            Repositories::Under(prefix) if prefix.is_empty() => "repository/*".to_owned(),
            Repositories::Under(prefix) => format!("repository/{prefix}/*"),
        }
    }
}

/// What a run does with some repositories of one ECR registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub registry: Registry,
    pub repositories: Repositories,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// An ECR source.
    Read,
    /// A destination; `create` when ecrcp may create (and roll back) its repository.
    Write { create: Option<Creation> },
}

/// The settings a repository is created with that call for more permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creation {
    pub lifecycle_policy: bool,
    pub tags: bool,
    pub encryption: Encryption,
}

impl Creation {
    fn of(settings: &JobSettings) -> Creation {
        Creation {
            lifecycle_policy: settings.repository.lifecycle_policy.is_some(),
            tags: !settings.repository.tags.is_empty(),
            encryption: settings.repository.encryption.clone(),
        }
    }
}

/// What one copy job does in ECR: its destination when that is ECR (the caller's own
/// registry is `own`), its source when that is ECR.
pub fn job_accesses(job: &CopyJob, own: &Registry, create: bool) -> Result<Vec<Access>, ReferenceError> {
    let mut accesses = Vec::new();
    let resolved = job
        .destination
        .resolve(&job.source, Some(OWN_REGISTRY_PLACEHOLDER))?;
    if let Some(registry) = destination_registry(&job.destination, own) {
        accesses.push(Access {
            registry,
            repositories: Repositories::Exact(resolved.repository().to_owned()),
            kind: write(&job.settings, create),
        });
    }
    if let Some(host) = EcrHost::parse(job.source.registry()) {
        accesses.push(Access {
            registry: Registry::of(&host),
            repositories: Repositories::Exact(job.source.repository().to_owned()),
            kind: Kind::Read,
        });
    }
    Ok(accesses)
}

/// What copies into `destination` do, their sources unknown: a directory covers every
/// repository under its prefix.
pub fn destination_access(
    destination: &Destination,
    settings: &JobSettings,
    own: &Registry,
    create: bool,
) -> Option<Access> {
    let registry = destination_registry(destination, own)?;
    let repositories = match destination {
        Destination::Exact { repository, .. } => Repositories::Exact(repository.clone()),
        Destination::Directory { prefix, .. } => Repositories::Under(prefix.clone()),
    };
    Some(Access {
        registry,
        repositories,
        kind: write(settings, create),
    })
}

fn destination_registry(destination: &Destination, own: &Registry) -> Option<Registry> {
    match destination.registry() {
        None => Some(own.clone()),
        Some(host) => EcrHost::parse(host).map(|host| Registry::of(&host)),
    }
}

fn write(settings: &JobSettings, create: bool) -> Kind {
    Kind::Write {
        create: create.then(|| Creation::of(settings)),
    }
}

/// Why an action is granted; names the statement that grants it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Push,
    Create,
    Read,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Push => "Push",
            Role::Create => "CreateRepositories",
            Role::Read => "ReadSources",
        }
    }
}

/// What a copy into a repository does there; `GetDownloadUrlForLayer` (with
/// `BatchGetImage`) is the pull access a later copy's mount from it asks for.
const PUSH: &[&str] = &[
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:CompleteLayerUpload",
    "ecr:DescribeRepositories",
    "ecr:GetDownloadUrlForLayer",
    "ecr:InitiateLayerUpload",
    "ecr:PutImage",
    "ecr:UploadLayerPart",
];
const CREATE: &[&str] = &["ecr:CreateRepository", "ecr:DeleteRepository"];
const READ: &[&str] = &[
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:ListImages",
];
const KMS_CUSTOMER_KEY: &[&str] = &["kms:CreateGrant", "kms:DescribeKey", "kms:RetireGrant"];
const KMS_MANAGED_KEY: &[&str] = &["kms:RetireGrant"];

/// An IAM policy document, its keys in the order IAM's own examples use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    #[serde(rename = "Version")]
    pub version: &'static str,
    #[serde(rename = "Statement")]
    pub statements: Vec<Statement>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Statement {
    #[serde(rename = "Sid")]
    pub sid: String,
    #[serde(rename = "Effect")]
    pub effect: &'static str,
    #[serde(rename = "Action")]
    pub actions: Vec<String>,
    #[serde(rename = "Resource")]
    pub resources: Vec<String>,
    #[serde(rename = "Condition", skip_serializing_if = "Option::is_none")]
    pub condition: Option<BTreeMap<String, BTreeMap<String, Vec<String>>>>,
}

/// A policy, and what its reader should know about it (said on stderr).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub policy: Policy,
    pub notes: Vec<String>,
}

impl Policy {
    /// The policy as IAM takes it: indented JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a policy always serializes")
    }

    /// Its size as IAM counts it, without whitespace.
    pub fn size(&self) -> usize {
        serde_json::to_string(self)
            .expect("a policy always serializes")
            .len()
    }
}

/// Builds the policy for `accesses`; `None` when nothing touches ECR.
pub fn build(accesses: &[Access]) -> Option<Built> {
    if accesses.is_empty() {
        return None;
    }
    let mut notes = Vec::new();
    let mut grants = Grants::default();
    for access in accesses {
        grants.add(access);
    }
    grants.drop_covered();
    let mut policy = grants.policy();
    if policy.size() > MANAGED_POLICY_LIMIT {
        grants.fold_into_prefixes();
        policy = grants.policy();
        notes.push(format!(
            "the repositories are named by their longest common prefixes: the exact list would pass IAM's {MANAGED_POLICY_LIMIT}-character limit for a managed policy"
        ));
    }
    if accesses.iter().any(|access| access.registry.account.is_none()) {
        notes.push(
            "the account of your own registry is unknown, so its ARNs name any account ('*'): run with AWS credentials, or put your account ID in their place".to_owned(),
        );
    }
    if accesses.iter().any(|access| access.registry.region.is_none()) {
        notes.push(
            "the region of your own registry is unknown, so its ARNs name any region ('*'): pass --region or set AWS_REGION".to_owned(),
        );
    }
    if grants
        .kms
        .keys()
        .any(|key| key.resource.ends_with(":key/*") && key.condition.is_none())
    {
        notes.push("repositories created with kms encryption and no --kms-key use the AWS managed key aws/ecr, whose ARN ecrcp cannot know: kms:RetireGrant (needed to remove a repository a failed copy created) names every key of that account and region; put the aws/ecr key's ARN in its place to narrow it".to_owned());
    }
    Some(Built { policy, notes })
}

type Actions = BTreeSet<&'static str>;

/// The repository ARNs and what each is granted, and the KMS keys.
#[derive(Default)]
struct Grants {
    repositories: BTreeMap<String, (BTreeSet<Role>, BTreeSet<&'static str>)>,
    kms: BTreeMap<KmsKey, BTreeSet<&'static str>>,
}

/// A KMS key as a policy names it: its ARN, or every key with an alias.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct KmsKey {
    resource: String,
    /// The alias a `key/*` resource is narrowed to (`kms:ResourceAliases`).
    condition: Option<String>,
}

impl Grants {
    fn add(&mut self, access: &Access) {
        let arn = access.registry.arn("ecr", &access.repositories.resource());
        let (roles, actions) = self.repositories.entry(arn).or_default();
        match &access.kind {
            Kind::Read => {
                roles.insert(Role::Read);
                actions.extend(READ);
            }
            Kind::Write { create } => {
                roles.insert(Role::Push);
                actions.extend(PUSH);
                if let Some(creation) = create {
                    roles.insert(Role::Create);
                    actions.extend(CREATE);
                    if creation.lifecycle_policy {
                        actions.insert("ecr:PutLifecyclePolicy");
                    }
                    if creation.tags {
                        actions.insert("ecr:TagResource");
                    }
                    if let Encryption::Kms { key } = &creation.encryption {
                        let (key, needs) = kms_key(key.as_deref(), &access.registry);
                        self.kms.entry(key).or_default().extend(needs);
                    }
                }
            }
        }
    }

    /// Leaves out an ARN that a wildcard ARN with at least its actions covers already.
    fn drop_covered(&mut self) {
        let wildcards: Vec<(String, BTreeSet<&'static str>)> = self
            .repositories
            .iter()
            .filter(|(arn, _)| arn.ends_with('*'))
            .map(|(arn, (_, actions))| (arn.clone(), actions.clone()))
            .collect();
        self.repositories.retain(|arn, (_, actions)| {
            !wildcards.iter().any(|(pattern, granted)| {
                pattern != arn && matches(pattern, arn) && granted.is_superset(actions)
            })
        });
    }

    /// Replaces the repositories of each registry and action set by their longest common
    /// prefix of whole path components.
    fn fold_into_prefixes(&mut self) {
        let mut folded: BTreeMap<(String, Actions), (BTreeSet<Role>, Vec<String>)> = BTreeMap::new();
        for (arn, (roles, actions)) in std::mem::take(&mut self.repositories) {
            let (registry, name) = arn
                .split_once(":repository/")
                .expect("every repository ARN has a repository part");
            let entry = folded.entry((registry.to_owned(), actions)).or_default();
            entry.0.extend(roles);
            entry.1.push(name.trim_end_matches('*').to_owned());
        }
        for ((registry, actions), (roles, names)) in folded {
            let prefix = common_prefix(&names);
            let arn = if prefix.is_empty() {
                format!("{registry}:repository/*")
            } else if names.len() == 1 && !names[0].ends_with('/') {
                format!("{registry}:repository/{prefix}")
            } else {
                format!("{registry}:repository/{prefix}/*")
            };
            let (all_roles, all_actions) = self.repositories.entry(arn).or_default();
            all_roles.extend(roles);
            all_actions.extend(actions);
        }
    }

    fn policy(&self) -> Policy {
        let mut statements = vec![Statement {
            sid: "Login".to_owned(),
            effect: "Allow",
            actions: vec!["ecr:GetAuthorizationToken".to_owned()],
            resources: vec!["*".to_owned()],
            condition: None,
        }];
        // ARNs that need the same actions share a statement.
        let mut merged: BTreeMap<(BTreeSet<Role>, &BTreeSet<&'static str>), Vec<String>> = BTreeMap::new();
        for (arn, (roles, actions)) in &self.repositories {
            merged
                .entry((roles.clone(), actions))
                .or_default()
                .push(arn.clone());
        }
        let mut sids: BTreeMap<String, usize> = BTreeMap::new();
        for ((roles, actions), resources) in merged {
            let name: String = roles
                .iter()
                .map(|role| role.name())
                .collect::<Vec<_>>()
                .join("And");
            statements.push(Statement {
                sid: unique(&mut sids, name),
                effect: "Allow",
                actions: actions.iter().map(|&action| action.to_owned()).collect(),
                resources,
                condition: None,
            });
        }
        // Keys that need the same actions under the same alias condition share a statement.
        let mut keys: BTreeMap<(&Option<String>, &BTreeSet<&'static str>), Vec<String>> = BTreeMap::new();
        for (key, actions) in &self.kms {
            keys.entry((&key.condition, actions))
                .or_default()
                .push(key.resource.clone());
        }
        for ((condition, actions), resources) in keys {
            let name = if condition.is_none() && actions.len() == KMS_MANAGED_KEY.len() {
                "KmsManagedKeyOfNewRepositories"
            } else {
                "KmsKeyOfNewRepositories"
            };
            statements.push(Statement {
                sid: unique(&mut sids, name.to_owned()),
                effect: "Allow",
                actions: actions.iter().map(|&action| action.to_owned()).collect(),
                resources,
                condition: condition.as_ref().map(|alias| {
                    BTreeMap::from([(
                        "ForAnyValue:StringEquals".to_owned(),
                        BTreeMap::from([("kms:ResourceAliases".to_owned(), vec![alias.clone()])]),
                    )])
                }),
            });
        }
        Policy {
            version: "2012-10-17",
            statements,
        }
    }
}

/// `name`, or `name2`, `name3`... when taken: Sids are unique in a policy.
fn unique(taken: &mut BTreeMap<String, usize>, name: String) -> String {
    let count = taken.entry(name.clone()).or_insert(0);
    *count += 1;
    if *count == 1 {
        name
    } else {
        format!("{name}{count}")
    }
}

/// The key a repository created with `key` (as `--kms-key` or `kms_key` give it: a key ARN,
/// an alias ARN, `alias/NAME` or a key ID; `None` for the AWS managed key) is encrypted
/// with, and what creating and rolling back that repository needs on it. A key given by
/// alias is named by its alias, since IAM resolves no alias in a `Resource`.
fn kms_key(key: Option<&str>, registry: &Registry) -> (KmsKey, &'static [&'static str]) {
    let Some(key) = key else {
        let key = KmsKey {
            resource: registry.arn("kms", "key/*"),
            condition: None,
        };
        return (key, KMS_MANAGED_KEY);
    };
    let key = if let Some((arn_head, alias)) = key.split_once(":alias/") {
        KmsKey {
            resource: format!("{arn_head}:key/*"),
            condition: Some(format!("alias/{alias}")),
        }
    } else if key.starts_with("arn:") {
        KmsKey {
            resource: key.to_owned(),
            condition: None,
        }
    } else if key.starts_with("alias/") {
        KmsKey {
            resource: registry.arn("kms", "key/*"),
            condition: Some(key.to_owned()),
        }
    } else {
        KmsKey {
            resource: registry.arn("kms", &format!("key/{key}")),
            condition: None,
        }
    };
    (key, KMS_CUSTOMER_KEY)
}

/// Whether the IAM wildcard `pattern` (`*` any run of characters, `?` one) matches `text`.
pub fn matches(pattern: &str, text: &str) -> bool {
    fn from(pattern: &[u8], text: &[u8]) -> bool {
        match pattern.split_first() {
            None => text.is_empty(),
            Some((b'*', rest)) => (0..=text.len()).any(|skip| from(rest, &text[skip..])),
            Some((b'?', rest)) => !text.is_empty() && from(rest, &text[1..]),
            Some((c, rest)) => text.first() == Some(c) && from(rest, &text[1..]),
        }
    }
    from(pattern.as_bytes(), text.as_bytes())
}

/// The longest run of whole `/`-separated components that every name starts with.
fn common_prefix(names: &[String]) -> String {
    let Some((first, rest)) = names.split_first() else {
        return String::new();
    };
    let mut common: Vec<&str> = first.trim_end_matches('/').split('/').collect();
    if rest.is_empty() {
        return common.join("/");
    }
    for name in rest {
        let parts: Vec<&str> = name.trim_end_matches('/').split('/').collect();
        let shared = common.iter().zip(&parts).take_while(|(a, b)| a == b).count();
        common.truncate(shared);
    }
    // A prefix that is a whole name would not cover the others under a `/*`.
    if names
        .iter()
        .any(|name| !name.ends_with('/') && *name == common.join("/"))
    {
        common.pop();
    }
    common.join("/")
}

#[cfg(test)]
mod tests;
