//! What a run will do, as plain data: the copies and the options that shape them. Built from
//! the command line or the sync config before any I/O; the engine reads nothing else.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::engine::kind::EngineKind;
use crate::provider::{self, NameRefused, SettingRefused};
use crate::reference::{Destination, Reference, ReferenceError, OWN_REGISTRY_SHOWN};

/// One source, where it goes, and how. The destination is resolved against the caller's own
/// ECR registry at run time when it names no registry host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyJob {
    /// The source as the user wrote it, for messages.
    pub label: String,
    pub source: Reference,
    pub destination: Destination,
    pub settings: JobSettings,
}

/// The per-image settings: the same for every job of a command line, per `[[image]]` in a
/// sync config.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobSettings {
    /// Which engine moves the bytes.
    pub engine: EngineKind,
    /// `os/arch[/variant][:osversion]` platforms to copy (`crate::platform`), as written.
    /// Empty: the docker daemon's own platform with the docker engine, every platform with
    /// the registry engine. The docker engine takes one at most.
    pub platforms: Vec<String>,
    /// Copy the referrers (signatures, SBOMs, attestations) along; registry engine only.
    pub referrers: bool,
    pub repository: RepositorySettings,
    pub aws: AwsOptions,
}

/// How a copy treats an existing destination tag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overwrite {
    /// `-n`: never replace an existing tag.
    pub no_clobber: bool,
    /// `-u`: replace only when it holds something else than the source now holds.
    pub update: bool,
    /// `-i`: ask before replacing.
    pub interactive: bool,
}

impl Overwrite {
    /// Whether the destination's state decides the copy, so that failing to read it must
    /// fail the copy.
    pub fn consults_destination(self) -> bool {
        self.no_clobber || self.update || self.interactive
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Encryption {
    #[default]
    Aes256,
    /// KMS, with the AWS-managed key when no key is named.
    Kms { key: Option<String> },
}

/// What a missing ECR repository is created with. An existing repository is left as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RepositorySettings {
    pub scan_on_push: bool,
    pub immutable_tags: bool,
    pub encryption: Encryption,
    /// The lifecycle policy document (JSON text, already checked to parse).
    pub lifecycle_policy: Option<String>,
    pub tags: Vec<(String, String)>,
}

/// Where AWS credentials and the default region come from, beyond the standard chain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct AwsOptions {
    pub profile: Option<String>,
    pub region: Option<String>,
}

/// Options of the whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyOptions {
    pub overwrite: Overwrite,
    pub dry_run: bool,
    /// Show progress (docker's, or the registry engine's): a person watches a terminal.
    pub progress: bool,
    /// How many blobs the registry engine moves at once, overall and per registry host.
    pub transfers: usize,
}

/// The registry engine's default number of blobs moved at once.
pub const DEFAULT_TRANSFERS: u16 = 4;

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            overwrite: Overwrite::default(),
            dry_run: false,
            progress: false,
            transfers: usize::from(DEFAULT_TRANSFERS),
        }
    }
}

/// A validated run: `ecrcp SOURCE... DEST`, or one pass of `ecrcp sync`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub jobs: Vec<CopyJob>,
    pub options: CopyOptions,
    /// Where the copy ledger lives; `None` keeps it in memory for this run only.
    pub state_dir: Option<PathBuf>,
}

impl CopyJob {
    /// Whether the destination is left to the caller's own ECR registry.
    pub fn needs_own_registry(&self) -> bool {
        self.destination.registry().is_none()
    }
}

/// Stands in for the caller's own registry before it is known: still tells names apart.
pub const OWN_REGISTRY_PLACEHOLDER: &str = "own.registry.invalid";

/// Why a set of jobs cannot run: job `index` has no destination tag, names a repository its
/// registry's kind refuses (ECR's naming rule), or shares a tag with an earlier job (they would overwrite each other, which `cp`
/// refuses too).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    #[error("{error}")]
    Unmappable { index: usize, error: ReferenceError },
    #[error("'{second}' and '{first}' would both be copied to '{destination}'")]
    Clash {
        index: usize,
        first: String,
        second: String,
        destination: String,
    },
    #[error(
        "cannot copy '{label}' to '{destination}': '{repository}' is not a valid {} repository \
         name: {}\nnote: {}",
        .refused.kind,
        .refused.rule,
        .refused.note
    )]
    RepositoryName {
        index: usize,
        label: String,
        destination: String,
        repository: String,
        /// Boxed: the rule is rare, and the error stays small.
        refused: Box<NameRefused>,
    },
    #[error(
        "cannot copy '{label}' to '{destination}': `{key}` (--{flag}) has no meaning for {kind}: {rule}\nnote: {note}",
        key = .refused.key,
        flag = .refused.flag,
        kind = .refused.kind,
        rule = .refused.rule,
        note = .refused.note
    )]
    Setting {
        index: usize,
        label: String,
        destination: String,
        refused: Box<SettingRefused>,
    },
}

impl DestinationError {
    /// The job the error is about.
    pub fn index(&self) -> usize {
        match self {
            DestinationError::Unmappable { index, .. }
            | DestinationError::Clash { index, .. }
            | DestinationError::RepositoryName { index, .. }
            | DestinationError::Setting { index, .. } => *index,
        }
    }
}

/// The destination each job maps to, with the own registry as a placeholder; checks that
/// every job maps, that each registry kind accepts the repository names of its registries,
/// and that no two meet.
pub fn check_destinations(jobs: &[CopyJob]) -> Result<Vec<Reference>, DestinationError> {
    // The own registry differs per AWS profile and region: `mirror/` in us-east-1 and in
    // eu-west-1 are two registries, so the AWS settings are part of where a copy lands.
    let mut seen: HashMap<(Option<&AwsOptions>, String), &str> = HashMap::new();
    let mut destinations = Vec::with_capacity(jobs.len());
    for (index, job) in jobs.iter().enumerate() {
        let destination = job
            .destination
            .resolve(&job.source, Some(OWN_REGISTRY_PLACEHOLDER))
            .map_err(|error| DestinationError::Unmappable { index, error })?;
        let own = job.needs_own_registry();
        let shown = destination
            .to_string()
            .replace(OWN_REGISTRY_PLACEHOLDER, OWN_REGISTRY_SHOWN);
        provider::check_repository(destination.registry(), own, destination.repository()).map_err(
            |refused| DestinationError::RepositoryName {
                index,
                label: job.label.clone(),
                destination: shown.clone(),
                repository: destination.repository().to_owned(),
                refused: Box::new(refused),
            },
        )?;
        provider::check_settings(destination.registry(), own, &job.settings.repository).map_err(
            |refused| DestinationError::Setting {
                index,
                label: job.label.clone(),
                destination: shown.clone(),
                refused: Box::new(refused),
            },
        )?;
        let key = (own.then_some(&job.settings.aws), destination.to_string());
        if let Some(first) = seen.insert(key, &job.label) {
            return Err(DestinationError::Clash {
                index,
                first: first.to_owned(),
                second: job.label.clone(),
                destination: shown,
            });
        }
        destinations.push(destination);
    }
    Ok(destinations)
}

/// The destinations of `jobs` as text, the own registry written `own.example`: what the
/// table tests of the command line and the config compare against.
#[cfg(test)]
pub fn preview_destinations(jobs: &[CopyJob]) -> Vec<String> {
    check_destinations(jobs)
        .unwrap()
        .iter()
        .map(|destination| {
            destination
                .to_string()
                .replace(OWN_REGISTRY_PLACEHOLDER, "own.example")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ECR: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

    fn job(source: &str, destination: &str, region: Option<&str>, profile: Option<&str>) -> CopyJob {
        let destination = destination.replace("$ECR", ECR);
        CopyJob {
            label: source.to_owned(),
            source: Reference::parse(source).unwrap(),
            destination: Destination::parse(&destination).unwrap(),
            settings: JobSettings {
                aws: AwsOptions {
                    profile: profile.map(str::to_owned),
                    region: region.map(str::to_owned),
                },
                ..JobSettings::default()
            },
        }
    }

    #[test]
    fn ecr_destinations_follow_ecr_s_repository_name_rules_and_others_docker_s() {
        // (source, destination, None when accepted, else what the error says)
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("nginx", "mirror/", None),
            ("nginx", "$ECR/a.b_c-d/", None),
            ("ghcr.io/a/b__c", "mirror/", Some("'__' in 'b__c' is not allowed")),
            ("ghcr.io/a/b--c", "$ECR/m/", Some("'--' in 'b--c' is not allowed")),
            ("nginx", "mirror/a---b:1", Some("'---' in 'a---b' is not allowed")),
            (
                "nginx",
                "$ECR/x",
                Some("it is 1 characters long; ECR needs 2 to 256"),
            ),
            (
                "nginx",
                "x:1",
                Some("it is 1 characters long; ECR needs 2 to 256"),
            ),
            (
                "ghcr.io/x",
                "$ECR",
                Some("'x' is not a valid ECR repository name"),
            ),
            // Not ECR: docker's rules, which allow all of these.
            ("ghcr.io/a/b__c", "registry.example.com/m/", None),
            ("ghcr.io/x", "registry.example.com", None),
            ("nginx", "localhost:5000/a--b", None),
        ];
        for &(source, destination, expected) in cases {
            let result = check_destinations(&[job(source, destination, None, None)]);
            match expected {
                None => assert!(result.is_ok(), "{source} -> {destination}: {result:?}"),
                Some(message) => {
                    let error = result.expect_err(destination).to_string();
                    assert!(error.contains(message), "{source} -> {destination}: {error}");
                    assert!(
                        error.contains("\nnote: ECR repository names are 2 to 256"),
                        "{error}"
                    );
                }
            }
        }
        let error = check_destinations(&[job("ghcr.io/a/b__c", "mirror/", None, None)]).unwrap_err();
        assert_eq!(
            error.to_string().lines().next(),
            Some(
                "cannot copy 'ghcr.io/a/b__c' to '<your ECR registry>/mirror/a/b__c:latest': \
                 'mirror/a/b__c' is not a valid ECR repository name: '__' in 'b__c' is not \
                 allowed; ECR joins letters and digits with a single '.', '_' or '-'"
            )
        );
    }

    #[test]
    fn own_registry_destinations_clash_only_under_the_same_aws_profile_and_region() {
        let east = job("nginx:1.27", "mirror/", Some("us-east-1"), None);
        let west = job("nginx:1.27", "mirror/", Some("eu-west-1"), None);
        let other_profile = job("nginx:1.27", "mirror/", Some("us-east-1"), Some("other"));
        let explicit = job("nginx:1.27", "$ECR/mirror/", Some("us-east-1"), None);
        let explicit_west = job("nginx:1.27", "$ECR/mirror/", Some("eu-west-1"), None);
        assert!(check_destinations(&[east.clone(), west.clone()]).is_ok());
        assert!(check_destinations(&[east.clone(), other_profile]).is_ok());
        assert!(check_destinations(&[east.clone(), explicit.clone()]).is_ok());
        let clash = |jobs: &[CopyJob]| check_destinations(jobs).unwrap_err().to_string();
        assert_eq!(
            clash(&[east.clone(), west, east.clone()]),
            "'nginx:1.27' and 'nginx:1.27' would both be copied to '<your ECR registry>/mirror/nginx:1.27'"
        );
        // A registry host names one registry whatever the AWS settings.
        assert_eq!(
            clash(&[explicit, explicit_west]),
            format!("'nginx:1.27' and 'nginx:1.27' would both be copied to '{ECR}/mirror/nginx:1.27'")
        );
    }
}
