//! The command line: clap types, and their conversion into a validated [`Plan`]. Reads only
//! the lifecycle policy file it is pointed at; no network, no docker.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand, ValueEnum};

use crate::engine::kind::{EngineError, EngineKind};
use crate::plan::{
    check_destinations, AwsOptions, CopyJob, CopyOptions, DestinationError, JobSettings, Overwrite, Plan,
    RepositorySettings, DEFAULT_TRANSFERS,
};
use crate::process::{self, Timeouts};
use crate::reference::{Destination, Reference};
use crate::settings::{self, EncryptionType, RepositoryInput, SettingsError};

/// The help text after the options; `program` is `ecrcp` or `docker ecrcp`.
fn after_help(program: &str) -> String {
    format!(
        "\
A DEST without a registry host (mirror/nginx:latest) means your own ECR registry in the \
current region. A DEST ending in '/' (or a bare registry host) is a directory: each SOURCE \
keeps its path and tag under it (nginx -> DEST/nginx:latest).

Exit status: 0 if every copy succeeded or was skipped, 1 if any copy failed, 2 for usage errors, \
130 when stopped by Ctrl-C (143 by SIGTERM): the copy under way is cancelled and leaves nothing behind.

Examples:
  {program} nginx:latest 123456789012.dkr.ecr.us-east-1.amazonaws.com/mirror/nginx:latest
  {program} -u nginx:1.27 redis:7 bitnami/kubectl:1.30 mirror/
  {program} -t 123456789012.dkr.ecr.eu-west-1.amazonaws.com/hub alpine:3.20 busybox"
    )
}

fn usage(program: &str) -> String {
    format!(
        "{program} [OPTIONS] SOURCE DEST\n       {program} [OPTIONS] SOURCE... DIRECTORY/\n       \
         {program} [OPTIONS] -t DIRECTORY SOURCE...\n       {program} sync [--config PATH] [--check | --dry-run]\n       \
         {program} iam-policy|permissions [--config PATH | [--source SOURCE]... DEST...]\n       {program} plugin install|uninstall"
    )
}

#[derive(Debug, Parser)]
#[command(
    name = "ecrcp",
    version,
    about = "Copy container images into AWS ECR (or any registry), as cp copies files",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub copy: CopyArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mirror the images listed in a config, copying only what changed upstream
    Sync(SyncArgs),
    /// Install or remove the `docker ecrcp` CLI plugin link
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Say what the last sync runs did: when, outcome counts, the images that failed or were
    /// deferred and why, and when the timer runs next
    Status(StatusArgs),
    /// Print the least-privilege IAM policy of ECR for a config's copies, or for copies into DEST
    IamPolicy(IamPolicyArgs),
    /// Print what a config's copies (or copies into DEST) need at every kind of registry they
    /// reach: ECR's IAM policy, Azure Container Registry's role assignments, Artifact
    /// Registry's roles, as one JSON object by kind
    Permissions(IamPolicyArgs),
    /// Write the man page or a shell completion into DIR, for packages
    #[command(hide = true)]
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 when nothing failed, 1 when some image failed, 2 for a config error, \
75 when copies were deferred (Docker Hub pull allowance) or another sync holds the lock, \
143 when stopped by SIGTERM or SIGINT."
)]
pub struct SyncArgs {
    /// The config to mirror
    #[arg(long, value_name = "PATH", env = "ECRCP_CONFIG", default_value = crate::config::DEFAULT_PATH)]
    pub config: PathBuf,

    /// Check the config and exit; touches no network
    #[arg(long, conflicts_with = "dry_run")]
    pub check: bool,

    /// Show what would be copied and why; change and write nothing, take no lock
    #[arg(long)]
    pub dry_run: bool,

    /// Directory of the ledger and the lock, yours and writable by you alone (default:
    /// $STATE_DIRECTORY, else ~/.local/state/ecrcp)
    #[arg(long, value_name = "DIR", env = "ECRCP_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// Where log events go
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t)]
    pub log_format: crate::logging::Format,

    /// Copy every image with this engine, whatever the config says (the
    /// ecrcp-registry.service unit runs `--engine registry`)
    #[arg(long, value_enum, value_name = "ENGINE")]
    pub engine: Option<EngineArg>,

    /// Mirror only this worker's share of the images: shard K of N workers, K from 1. Every
    /// image falls to one shard by its source's name; the destinations of one source stay
    /// together
    #[arg(long, value_name = "K/N", env = "ECRCP_SHARD", conflicts_with = "shards")]
    pub shard: Option<String>,

    /// Mirror a share of the images as one of N workers, this one numbered by
    /// JOB_COMPLETION_INDEX (from 0), as a Kubernetes Indexed Job sets it
    #[arg(long, value_name = "N")]
    pub shards: Option<u32>,

    /// Write the run's metrics in Prometheus text to PATH at the end of every run, atomically
    /// (for node_exporter's textfile collector; overrides `[sync] metrics_file`)
    #[arg(long, value_name = "PATH", env = "ECRCP_METRICS_FILE")]
    pub metrics_file: Option<PathBuf>,

    /// Write a JSON report of the run to FILE: every image with its outcome, why, digest and
    /// time (for CI artefacts)
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    #[command(flatten)]
    pub timeouts: TimeoutArgs,
}

/// `ecrcp status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The state directory the syncs keep their ledger and last run in (default: as `ecrcp
    /// sync` picks it)
    #[arg(long, value_name = "DIR", env = "ECRCP_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// Print the last run's record as JSON, for scripts
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Link this binary into a docker CLI plugin directory as docker-ecrcp
    Install(PluginScope),
    /// Remove that link
    Uninstall(PluginScope),
}

#[derive(Debug, Args)]
pub struct PluginScope {
    /// For the current user: $DOCKER_CONFIG/cli-plugins or ~/.docker/cli-plugins (default)
    #[arg(long, conflicts_with = "system")]
    pub user: bool,
    /// For everyone: /usr/local/lib/docker/cli-plugins (needs root, and a binary only root can
    /// change)
    #[arg(long)]
    pub system: bool,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The man page (DIR/ecrcp.1) or the completion for a shell (DIR/ecrcp, DIR/_ecrcp,
    /// DIR/ecrcp.fish)
    #[arg(value_enum)]
    pub what: Generated,
    /// Where to write it; created if missing
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Generated {
    Man,
    Bash,
    Zsh,
    Fish,
}

/// The clap command, with help written for the name ecrcp was started under.
pub fn command(program: &str) -> clap::Command {
    Cli::command()
        .name(program.to_owned())
        .bin_name(program.to_owned())
        .override_usage(usage(program))
        .after_help(after_help(program))
}

/// Parses ecrcp's arguments (without the program name). Help, version and usage errors come
/// back as clap errors, which know their exit status.
pub fn parse(program: &str, args: &[String]) -> Result<Cli, clap::Error> {
    let with_name = std::iter::once(program.to_owned()).chain(args.iter().cloned());
    let matches = command(program).try_get_matches_from(with_name)?;
    Cli::from_arg_matches(&matches)
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Images to copy, then the destination (unless -t gives it)
    #[arg(value_name = "SOURCE... DEST", required = true)]
    pub paths: Vec<String>,

    /// Copy every SOURCE into this repository prefix (a directory destination)
    #[arg(short = 't', long, value_name = "PREFIX")]
    pub target_directory: Option<String>,

    /// Never overwrite an existing destination tag
    #[arg(short = 'n', long)]
    pub no_clobber: bool,

    /// Copy only when the destination is missing or holds another image than the source
    /// (decided with HEAD requests: an unchanged image costs no pull)
    #[arg(short = 'u', long)]
    pub update: bool,

    /// Ask before overwriting an existing destination tag
    #[arg(short = 'i', long)]
    pub interactive: bool,

    /// Print 'SOURCE' -> 'DEST' for each copy
    #[arg(short = 'v', long)]
    pub verbose: bool,

    /// Show what would be copied; change and write nothing (not even the ledger)
    #[arg(long)]
    pub dry_run: bool,

    /// Hide the progress output even on a terminal
    #[arg(short = 'q', long)]
    pub quiet: bool,

    #[command(flatten)]
    pub engine: EngineArgs,

    /// AWS profile (default: AWS_PROFILE, then "default")
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,

    /// AWS region for destinations without an ECR host (default: AWS_REGION, then the profile)
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,

    /// Directory of the copy ledger used by -u (default: ~/.local/state/ecrcp)
    #[arg(long, value_name = "DIR", env = "ECRCP_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    #[command(flatten)]
    pub repository: RepositoryArgs,

    #[command(flatten)]
    pub timeouts: TimeoutArgs,
}

/// How the bytes move.
#[derive(Debug, Args)]
#[command(next_help_heading = "Engine")]
pub struct EngineArgs {
    /// How to copy: `docker` pulls, tags and pushes one platform through the docker daemon;
    /// `registry` copies registry to registry with no docker, every platform, digests kept
    #[arg(
        long,
        value_enum,
        value_name = "ENGINE",
        env = "ECRCP_ENGINE",
        default_value_t
    )]
    pub engine: EngineArg,

    /// Platform to copy, as os/arch[/variant][:osversion] (default: the docker daemon's with the docker
    /// engine, every platform with the registry engine). Repeatable with the registry engine:
    /// a subset of an index is written as a new index, so its digest differs from the source's
    #[arg(long, value_name = "OS/ARCH", action = ArgAction::Append)]
    pub platform: Vec<String>,

    /// Copy the referrers too (signatures, SBOMs, attestations, and cosign's .sig, .att and
    /// .sbom tags), and keep those of images already there in step; registry engine only.
    /// Those the destination refuses are skipped and named
    #[arg(long)]
    pub referrers: bool,

    /// Blobs the registry engine moves at once
    #[arg(long, value_name = "N", default_value_t = DEFAULT_TRANSFERS,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub transfers: u16,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
    #[default]
    Docker,
    Registry,
}

impl From<EngineArg> for EngineKind {
    fn from(engine: EngineArg) -> Self {
        match engine {
            EngineArg::Docker => EngineKind::Docker,
            EngineArg::Registry => EngineKind::Registry,
        }
    }
}

/// How long the processes ecrcp runs may take before they are killed (the environment
/// variables suit the systemd service's /etc/default/ecrcp).
#[derive(Debug, Args)]
#[command(next_help_heading = "Time limits (90s, 30m, 2h)")]
pub struct TimeoutArgs {
    /// Longest a docker pull or push may run
    #[arg(long, value_name = "LIMIT", env = "ECRCP_TRANSFER_TIMEOUT", value_parser = process::parse_limit,
          default_value = process::show_limit(Timeouts::default().transfer))]
    pub transfer_timeout: Duration,

    /// Longest any other docker command, or a docker credential helper, may run
    #[arg(long, value_name = "LIMIT", env = "ECRCP_COMMAND_TIMEOUT", value_parser = process::parse_limit,
          default_value = process::show_limit(Timeouts::default().command))]
    pub command_timeout: Duration,
}

impl TimeoutArgs {
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            transfer: self.transfer_timeout,
            command: self.command_timeout,
        }
    }
}

/// Settings for ECR repositories that ecrcp creates. Existing repositories are not changed.
#[derive(Debug, Args)]
#[command(next_help_heading = "New ECR repositories")]
pub struct RepositoryArgs {
    /// Scan images on push
    #[arg(long)]
    pub scan_on_push: bool,

    /// Make tags immutable
    #[arg(long)]
    pub immutable_tags: bool,

    /// Encryption at rest
    #[arg(long, value_enum, value_name = "TYPE")]
    pub encryption: Option<EncryptionArg>,

    /// KMS key (ARN, id or alias) for --encryption kms; implies it
    #[arg(long, value_name = "KEY")]
    pub kms_key: Option<String>,

    /// Lifecycle policy (a JSON file) to attach
    #[arg(long, value_name = "FILE")]
    pub lifecycle_policy: Option<PathBuf>,

    /// Resource tag to set, repeatable
    #[arg(long = "repository-tag", value_name = "KEY=VALUE", action = ArgAction::Append)]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EncryptionArg {
    Aes256,
    Kms,
}

/// `ecrcp iam-policy` and `ecrcp permissions`: the copies to print what they need for.
#[derive(Debug, Args)]
#[command(after_help = "\
The policy goes to stdout, notes about it (an account or region it could not know) to stderr. \
Repositories are named by their exact ARNs; a DEST directory given without --source covers \
every repository under it. Destinations without a registry host are your own registry: its \
account comes from GetAuthorizationToken when AWS credentials are at hand, else the ARNs \
name any account ('*') and a note says so. `ecrcp iam-policy` prints ECR's policy alone (a document \
`aws iam put-role-policy` takes) and names the other kinds the copies reach on stderr; `ecrcp \
permissions` prints one JSON object by kind: \"ecr\" the IAM policy, \"acr\" Azure Container \
Registry's role assignments (AcrPush where copies write, AcrPull where they only read, scoped to \
the registry), \"gar\" Artifact Registry's IAM roles per repository and on the location where \
repositories may be created (docs/iam.md, docs/azure.md, docs/google.md).")]
pub struct IamPolicyArgs {
    /// The sync config whose copies the policy is for (the default without DEST:
    /// /etc/ecrcp/images.toml)
    #[arg(long, value_name = "PATH", conflicts_with_all = ["destinations", "sources"])]
    pub config: Option<PathBuf>,

    /// Destinations, as `ecrcp SOURCE... DEST` takes them
    #[arg(value_name = "DEST")]
    pub destinations: Vec<String>,

    /// An image the copies read, repeatable: with them, DEST directories resolve to exact
    /// repositories, and ECR and Artifact Registry sources get read access
    #[arg(long = "source", value_name = "SOURCE", action = ArgAction::Append)]
    pub sources: Vec<String>,

    /// The repositories exist already (made elsewhere): leave out the actions that create
    /// and roll back repositories
    #[arg(long)]
    pub no_create: bool,

    /// The engine the copies use (the config's own choice with --config). Both engines
    /// need the same actions; this checks that the settings suit the engine
    #[arg(long, value_enum, value_name = "ENGINE")]
    pub engine: Option<EngineArg>,

    /// AWS profile, to find your own registry (default: AWS_PROFILE, then "default")
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,

    /// AWS region of your own registry (default: AWS_REGION, then the profile)
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,

    #[command(flatten)]
    pub repository: RepositoryArgs,
}

/// What `ecrcp iam-policy` was asked about, checked.
#[derive(Debug)]
pub enum IamSubject {
    /// A sync config to load.
    Config(PathBuf),
    /// Each source into each destination.
    Jobs(Vec<CopyJob>),
    /// Destinations whose sources are not known.
    Destinations(Vec<Destination>, JobSettings),
}

impl IamPolicyArgs {
    /// Validates the arguments, as a copy's would be: references parsed, settings checked.
    pub fn subject(&self) -> Result<IamSubject, UsageError> {
        if !self.sources.is_empty() && self.destinations.is_empty() {
            return Err(UsageError::MissingDestination(self.sources.join(" ")));
        }
        let config = self.config.clone().or_else(|| {
            self.destinations
                .is_empty()
                .then(|| PathBuf::from(crate::config::DEFAULT_PATH))
        });
        if let Some(config) = config {
            let repository = &self.repository;
            if repository.scan_on_push
                || repository.immutable_tags
                || repository.encryption.is_some()
                || repository.kms_key.is_some()
                || repository.lifecycle_policy.is_some()
                || !repository.tags.is_empty()
            {
                return Err(UsageError::IamWithConfig);
            }
            return Ok(IamSubject::Config(config));
        }
        let settings = JobSettings {
            engine: self.engine.unwrap_or_default().into(),
            repository: self.repository.settings()?,
            aws: AwsOptions {
                profile: self.profile.clone(),
                region: self.region.clone(),
            },
            ..JobSettings::default()
        };
        let destinations = self
            .destinations
            .iter()
            .map(|destination| Destination::parse(destination))
            .collect::<Result<Vec<_>, _>>()?;
        if self.sources.is_empty() {
            return Ok(IamSubject::Destinations(destinations, settings));
        }
        let mut jobs = Vec::new();
        for destination in &destinations {
            for label in &self.sources {
                jobs.push(CopyJob {
                    label: label.clone(),
                    source: Reference::parse(label)?,
                    destination: destination.clone(),
                    settings: settings.clone(),
                });
            }
        }
        check_destinations(&jobs)?;
        Ok(IamSubject::Jobs(jobs))
    }
}

/// A command line that cannot run; nothing was copied. Exit status 2.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error(transparent)]
    Reference(#[from] crate::reference::ReferenceError),
    #[error("missing destination after '{0}'")]
    MissingDestination(String),
    #[error("target '{0}' is not a directory: with several sources, DEST must end in '/' (a repository prefix) or be a registry host")]
    NotADirectory(String),
    #[error(transparent)]
    Destination(#[from] DestinationError),
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("--config and the new-repository options do not go together\nnote: the config's own settings (kms_key, lifecycle_policy, repository_tags, ...) decide the policy")]
    IamWithConfig,
}

impl CopyArgs {
    /// Validates the arguments into a plan: every reference parsed, every destination
    /// mapped, every option checked, before anything touches the network.
    pub fn into_plan(&self, progress: bool) -> Result<Plan, UsageError> {
        let (sources, destination) = self.split_paths()?;
        if sources.len() > 1 && !destination.is_directory() {
            return Err(UsageError::NotADirectory(destination.to_string()));
        }
        let settings = JobSettings {
            engine: self.engine.engine.into(),
            platforms: self
                .engine
                .platform
                .iter()
                .map(|platform| settings::platform(platform))
                .collect::<Result<_, _>>()?,
            referrers: self.engine.referrers,
            repository: self.repository.settings()?,
            aws: AwsOptions {
                profile: self.profile.clone(),
                region: self.region.clone(),
            },
        };
        settings.engine.check(&settings)?;
        let jobs = sources
            .iter()
            .map(|label| {
                Ok(CopyJob {
                    label: label.clone(),
                    source: Reference::parse(label)?,
                    destination: destination.clone(),
                    settings: settings.clone(),
                })
            })
            .collect::<Result<Vec<_>, UsageError>>()?;
        check_destinations(&jobs)?;
        Ok(Plan {
            jobs,
            options: CopyOptions {
                overwrite: Overwrite {
                    no_clobber: self.no_clobber,
                    update: self.update,
                    interactive: self.interactive,
                },
                dry_run: self.dry_run,
                progress: progress && !self.quiet,
                transfers: usize::from(self.engine.transfers),
            },
            state_dir: self.state_dir.clone().or_else(crate::ledger::Ledger::default_dir),
        })
    }

    fn split_paths(&self) -> Result<(Vec<String>, Destination), UsageError> {
        if let Some(target) = &self.target_directory {
            return Ok((self.paths.clone(), Destination::directory(target)?));
        }
        match self.paths.split_last() {
            Some((destination, sources)) if !sources.is_empty() => {
                Ok((sources.to_vec(), Destination::parse(destination)?))
            }
            _ => Err(UsageError::MissingDestination(self.paths.join(" "))),
        }
    }
}

impl RepositoryArgs {
    pub(crate) fn settings(&self) -> Result<RepositorySettings, SettingsError> {
        let tags = self
            .tags
            .iter()
            .map(|tag| settings::repository_tag(tag))
            .collect::<Result<_, _>>()?;
        settings::repository(RepositoryInput {
            scan_on_push: self.scan_on_push,
            immutable_tags: self.immutable_tags,
            encryption: self.encryption.map(|choice| match choice {
                EncryptionArg::Aes256 => EncryptionType::Aes256,
                EncryptionArg::Kms => EncryptionType::Kms,
            }),
            kms_key: self.kms_key.as_deref(),
            lifecycle_policy: self.lifecycle_policy.as_deref(),
            tags,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ECR: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

    fn plan(args: &[&str]) -> Result<Plan, UsageError> {
        let cli =
            Cli::try_parse_from(std::iter::once("ecrcp").chain(args.iter().copied())).expect("clap accepts");
        cli.copy.into_plan(false)
    }

    fn destinations(plan: &Plan) -> Vec<String> {
        crate::plan::preview_destinations(&plan.jobs)
    }

    #[test]
    fn arguments_become_jobs_with_mapped_destinations() {
        let ecr_nginx = format!("{ECR}/mirror/nginx:latest");
        let ecr_mirror = format!("{ECR}/mirror/");
        let ecr_repo = format!("{ECR}/mirror/nginx");
        let cases: Vec<(Vec<&str>, Vec<String>)> = vec![
            (
                vec!["nginx:latest", &ecr_nginx],
                vec![format!("{ECR}/mirror/nginx:latest")],
            ),
            (
                vec!["nginx:1.27", &ecr_repo],
                vec![format!("{ECR}/mirror/nginx:1.27")],
            ),
            (
                vec!["nginx", "bitnami/kubectl:1.30", &ecr_mirror],
                vec![
                    format!("{ECR}/mirror/nginx:latest"),
                    format!("{ECR}/mirror/bitnami/kubectl:1.30"),
                ],
            ),
            (
                vec!["-t", ECR, "alpine:3.20", "redis:7"],
                vec![format!("{ECR}/alpine:3.20"), format!("{ECR}/redis:7")],
            ),
            (
                vec!["redis:7", "cache/"],
                vec!["own.example/cache/redis:7".to_owned()],
            ),
            (
                vec!["redis:7", "cache/redis:stable"],
                vec!["own.example/cache/redis:stable".to_owned()],
            ),
            // A DEST without '/' is an image in the own registry unless it can only be a host.
            (
                vec!["nginx:1.27", "nginx:1.27"],
                vec!["own.example/nginx:1.27".to_owned()],
            ),
            (
                vec!["nginx:1.27", "registry.example.com:5000"],
                vec!["registry.example.com:5000/nginx:1.27".to_owned()],
            ),
            (
                vec!["nginx:1.27", "redis:7", "registry.example.com"],
                vec![
                    "registry.example.com/nginx:1.27".to_owned(),
                    "registry.example.com/redis:7".to_owned(),
                ],
            ),
        ];
        for (args, expected) in cases {
            let plan = plan(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert_eq!(destinations(&plan), expected, "{args:?}");
        }
    }

    #[test]
    fn bad_command_lines_are_refused_with_a_message_naming_the_input() {
        let ecr_nginx = format!("{ECR}/mirror/nginx:latest");
        let pinned = format!("nginx@sha256:{}", "0".repeat(64));
        let cases: Vec<(Vec<&str>, &str)> = vec![
            (vec!["nginx:latest"], "missing destination after 'nginx:latest'"),
            (vec![&pinned, "mirror/"], "give DEST with a tag"),
            (vec!["nginx", "redis", &ecr_nginx], "is not a directory"),
            (vec!["Nginx", "mirror/"], "'Nginx'"),
            (
                vec!["nginx", "redis", "docker.io/library/nginx", "mirror/"],
                "would both be copied",
            ),
            (
                vec!["--platform", "linux", "nginx", "mirror/"],
                "invalid platform 'linux'",
            ),
            (
                vec!["--repository-tag", "=x", "nginx", "mirror/"],
                "invalid repository tag '=x'",
            ),
            (
                vec!["--platform", "linux/amd64", "--platform", "linux/arm64", "nginx", "mirror/"],
                "the docker engine copies one platform, not several (linux/amd64, linux/arm64)\nnote: use the registry engine",
            ),
            (
                vec!["--referrers", "nginx", "mirror/"],
                "the docker engine cannot copy referrers",
            ),
            (
                vec!["--engine", "registry", "--platform", "linux/amd64", "--platform", "arm64", "nginx", "mirror/"],
                "invalid platform 'arm64'",
            ),
            (
                vec!["--encryption", "aes256", "--kms-key", "k", "nginx", "mirror/"],
                "a KMS key needs kms encryption",
            ),
            (
                vec!["--lifecycle-policy", "/nonexistent/p.json", "nginx", "mirror/"],
                "'/nonexistent/p.json'",
            ),
            (
                vec!["ghcr.io/a/b__c:1", "mirror/"],
                "'mirror/a/b__c' is not a valid ECR repository name: '__' in 'b__c'",
            ),
            (
                vec!["nginx:1.27", "x:1"],
                "'x' is not a valid ECR repository name: it is 1 characters long",
            ),
        ];
        for (args, expected) in cases {
            let error = plan(&args)
                .expect_err(&format!("{args:?} should fail"))
                .to_string();
            assert!(error.contains(expected), "{args:?}: {error}");
        }
    }

    #[test]
    fn the_engine_and_its_settings_reach_every_job() {
        let docker = plan(&["nginx", "mirror/"]).unwrap();
        let settings = &docker.jobs[0].settings;
        assert_eq!(
            (
                settings.engine,
                settings.platforms.len(),
                docker.options.transfers
            ),
            (EngineKind::Docker, 0, 4)
        );
        let registry = plan(&[
            "--engine",
            "registry",
            "--platform",
            "linux/amd64",
            "--platform",
            "linux/arm/v7",
            "--referrers",
            "--transfers",
            "8",
            "nginx",
            "redis",
            "mirror/",
        ])
        .unwrap();
        for job in &registry.jobs {
            assert_eq!(job.settings.engine, EngineKind::Registry);
            assert_eq!(job.settings.platforms, ["linux/amd64", "linux/arm/v7"]);
            assert!(job.settings.referrers);
        }
        assert_eq!(registry.options.transfers, 8);
        for bad in ["0", "65", "x"] {
            let args = [
                "ecrcp",
                "--engine",
                "registry",
                "--transfers",
                bad,
                "nginx",
                "mirror/",
            ];
            assert!(Cli::try_parse_from(args).is_err(), "--transfers {bad}");
        }
    }

    #[test]
    fn options_reach_the_plan() {
        let plan = plan(&[
            "-n",
            "-u",
            "-i",
            "--dry-run",
            "--platform",
            "linux/arm64",
            "--kms-key",
            "alias/k",
            "--repository-tag",
            "team=platform",
            "--scan-on-push",
            "--immutable-tags",
            "--region",
            "eu-west-1",
            "nginx",
            "mirror/",
        ])
        .unwrap();
        let options = &plan.options;
        assert!(options.overwrite.no_clobber && options.overwrite.update && options.overwrite.interactive);
        assert!(options.dry_run);
        let settings = &plan.jobs[0].settings;
        assert_eq!(settings.platforms, ["linux/arm64"]);
        assert_eq!(
            settings.repository.encryption,
            crate::plan::Encryption::Kms {
                key: Some("alias/k".into())
            }
        );
        assert_eq!(
            settings.repository.tags,
            vec![("team".to_owned(), "platform".to_owned())]
        );
        assert!(settings.repository.scan_on_push && settings.repository.immutable_tags);
        assert_eq!(settings.aws.region.as_deref(), Some("eu-west-1"));
        assert!(plan.jobs[0].needs_own_registry());
    }
}

#[cfg(test)]
mod command_tests {
    use super::*;

    #[test]
    fn help_is_written_for_the_name_ecrcp_was_started_under() {
        for program in ["ecrcp", "docker ecrcp"] {
            let help = command(program).render_help().to_string();
            assert!(
                help.contains(&format!("{program} [OPTIONS] SOURCE DEST")),
                "{help}"
            );
            assert!(help.contains(&format!("  {program} -u nginx:1.27")), "{help}");
        }
    }

    #[test]
    fn subcommands_and_copies_are_told_apart() {
        let args = |list: &[&str]| list.iter().map(|&arg| arg.to_owned()).collect::<Vec<_>>();
        let cli = parse("ecrcp", &args(&["plugin", "install", "--system"])).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Plugin(PluginCommand::Install(PluginScope {
                system: true,
                ..
            })))
        ));
        let cli = parse("ecrcp", &args(&["nginx", "mirror/"])).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.copy.paths, ["nginx", "mirror/"]);
        let error = parse("ecrcp", &args(&["plugin", "install", "--user", "--system"])).unwrap_err();
        assert_eq!(error.exit_code(), 2);
    }

    #[test]
    fn generate_is_a_command_for_packagers_that_help_does_not_show() {
        let args = ["generate", "zsh", "out/dir"].map(str::to_owned);
        let cli = parse("ecrcp", &args).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Generate(GenerateArgs { what: Generated::Zsh, ref dir })) if dir == std::path::Path::new("out/dir")
        ));
        let help = command("ecrcp").render_long_help().to_string();
        assert!(help.contains("sync") && !help.contains("generate"), "{help}");
    }
}
