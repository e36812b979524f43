//! What a run will do, as plain data: the copies and the options that shape them. Built from
//! the command line or the sync config before any I/O; the engine reads nothing else.

use std::path::PathBuf;

use crate::reference::{Destination, Reference, ReferenceError};

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
    /// `os/arch[/variant]` to pull; the daemon's own platform when `None`.
    pub platform: Option<String>,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CopyOptions {
    pub overwrite: Overwrite,
    pub dry_run: bool,
    /// Show docker's progress output (a person is watching a terminal).
    pub progress: bool,
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

/// Why a set of jobs cannot run: job `index` has no destination tag, or shares one with an
/// earlier job (they would overwrite each other, which `cp` refuses too).
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
}

impl DestinationError {
    /// The job the error is about.
    pub fn index(&self) -> usize {
        match self {
            DestinationError::Unmappable { index, .. } | DestinationError::Clash { index, .. } => *index,
        }
    }
}

/// The destination each job maps to, with the own registry as a placeholder; checks that
/// every job maps and that no two meet.
pub fn check_destinations(jobs: &[CopyJob]) -> Result<Vec<Reference>, DestinationError> {
    let mut seen: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
    let mut destinations = Vec::with_capacity(jobs.len());
    for (index, job) in jobs.iter().enumerate() {
        let destination = job
            .destination
            .resolve(&job.source, Some(OWN_REGISTRY_PLACEHOLDER))
            .map_err(|error| DestinationError::Unmappable { index, error })?;
        let key = destination.to_string();
        if let Some(first) = seen.insert(key.clone(), &job.label) {
            return Err(DestinationError::Clash {
                index,
                first: first.to_owned(),
                second: job.label.clone(),
                destination: key.replace(OWN_REGISTRY_PLACEHOLDER, "<your ECR registry>"),
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
