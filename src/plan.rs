//! What a run will do, as plain data: the copies and the options that shape them. Built from
//! the command line (or a config) before any I/O; the engine reads nothing else.

use crate::reference::{Destination, Reference};

/// One source and where it goes. The destination is resolved against the caller's own ECR
/// registry at run time when it names no registry host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyJob {
    /// The source as the user wrote it, for messages.
    pub label: String,
    pub source: Reference,
    pub destination: Destination,
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
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AwsOptions {
    pub profile: Option<String>,
    pub region: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CopyOptions {
    pub overwrite: Overwrite,
    pub dry_run: bool,
    /// `os/arch[/variant]` to pull; the daemon's own platform when `None`.
    pub platform: Option<String>,
    pub repository: RepositorySettings,
    /// Show docker's progress output (a person is watching a terminal).
    pub progress: bool,
}

/// A validated run of `ecrcp SOURCE... DEST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub jobs: Vec<CopyJob>,
    pub options: CopyOptions,
    pub aws: AwsOptions,
    /// Where the copy ledger lives; `None` keeps it in memory for this run only.
    pub state_dir: Option<std::path::PathBuf>,
}

impl Plan {
    /// Whether any destination is left to the caller's own ECR registry.
    pub fn needs_own_registry(&self) -> bool {
        self.jobs.iter().any(|job| job.destination.registry().is_none())
    }
}
