//! Google Artifact Registry as a provider: its registries (`LOCATION-docker.pkg.dev` and the
//! `gcr.io` hosts it serves), logins from Application Default Credentials (`credentials`)
//! as Basic `oauth2accesstoken:TOKEN`, and the Artifact Registry repositories a path names,
//! made through its API (`api`) before the first push and removed again when a copy that
//! made one failed and it is still empty. What a plan needs of Google's IAM: `permissions`.
//! Host and path parsing, the naming rules and the settings check are pure.

pub mod api;
pub mod credentials;
pub mod permissions;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;

use self::api::Api;
use self::credentials::{Adc, Origin};
use super::{needs_refresh, next_serial, Login, Meaning, NameRefused, Provider, SettingRefused};
use crate::net_timeouts;
use crate::plan::{CopyJob, Encryption, JobSettings, RepositorySettings};
use crate::registry::credentials::{Credentials, Issued, Refusal, Renew};
use crate::secret::Secret;

/// The user name Artifact Registry takes an access token under.
pub const TOKEN_USER: &str = "oauth2accesstoken";

/// What users call it.
const KIND: &str = "Artifact Registry";

/// The way in, in Google's words, said after every credentials error.
const CREDENTIALS_NOTE: &str = "set GOOGLE_APPLICATION_CREDENTIALS to a service-account key or a workload \
     identity federation file, or run `gcloud auth application-default login`; on GCE, GKE or Cloud Run \
     the metadata server's service account is used (GCE_METADATA_HOST names another metadata server)";

#[derive(Debug, thiserror::Error)]
pub enum GarError {
    #[error("no Google credentials found for Artifact Registry: {detail}\nnote: {CREDENTIALS_NOTE}")]
    NoCredentials { detail: String },
    #[error("cannot use the Google credentials of {origin}: {detail}\nnote: {CREDENTIALS_NOTE}")]
    BadCredentials { origin: String, detail: String },
    #[error("Google refused an access token for {kind} from {origin} at '{url}' ({status}): {words}\nnote: check that the credentials are current (`gcloud auth application-default login` renews a user's; a deleted or disabled service-account key or pool provider is refused), or {CREDENTIALS_NOTE}")]
    TokenRefused {
        origin: String,
        kind: &'static str,
        url: String,
        status: u16,
        words: String,
    },
    #[error("cannot reach {what}: {detail}\nnote: check the network and any proxy; ecrcp talks to Google's APIs over HTTPS")]
    Unreachable { what: String, detail: String },
    #[error("Artifact Registry {operation} on '{resource}' failed ({status}): {words}{hint}")]
    Api {
        operation: &'static str,
        resource: String,
        status: u16,
        words: String,
        hint: String,
    },
    #[error("Artifact Registry {operation} was throttled: {words}\nnote: the project's Artifact Registry API quota (requests per minute) is used up, by this run or others; lower `jobs` in the config, spread runs apart, or ask for a higher quota (Google Cloud console, IAM & Admin, Quotas)")]
    Throttled { operation: &'static str, words: String },
    #[error("Artifact Registry {operation} kept failing on Google's side: {words}\nnote: try again later; https://status.cloud.google.com says whether Artifact Registry is failing")]
    ServerFailing { operation: &'static str, words: String },
    #[error("Artifact Registry {operation} of '{resource}' ended with an error: {message} (code {code})\nnote: these are Google's words; nothing was created")]
    OperationFailed {
        operation: &'static str,
        resource: String,
        code: i64,
        message: String,
    },
    #[error("Artifact Registry {operation} of '{resource}' did not finish within {}\nnote: the operation may still finish; run the copy again later", net_timeouts::seconds(*.after))]
    OperationTimeout {
        operation: &'static str,
        resource: String,
        after: Duration,
    },
    #[error("Artifact Registry answered {operation} without {what}")]
    Incomplete {
        operation: &'static str,
        what: &'static str,
    },
    #[error("'{0}' is not an Artifact Registry repository path: {1}")]
    Path(String, String),
}

/// One of Artifact Registry's registry hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GarHost {
    /// Lowercased, without `:443`.
    pub host: String,
    /// `LOCATION-docker.pkg.dev`'s location; for `gcr.io` hosts, the multi-region their
    /// repository lives in.
    pub location: String,
    /// For `gcr.io` hosts: the repository every path of the host lives in (named as the host).
    pub gcr: bool,
}

impl GarHost {
    /// Recognises an Artifact Registry host; `None` for anything else.
    pub fn parse(host: &str) -> Option<GarHost> {
        let lower = host.to_ascii_lowercase();
        let host = lower.strip_suffix(":443").unwrap_or(&lower);
        if let Some(location) = host.strip_suffix("-docker.pkg.dev") {
            let valid = !location.is_empty()
                && !location.starts_with('-')
                && location
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            return valid.then(|| GarHost {
                host: host.to_owned(),
                location: location.to_owned(),
                gcr: false,
            });
        }
        let location = match host {
            "gcr.io" | "us.gcr.io" => "us",
            "eu.gcr.io" => "europe",
            "asia.gcr.io" => "asia",
            _ => return None,
        };
        Some(GarHost {
            host: host.to_owned(),
            location: location.to_owned(),
            gcr: true,
        })
    }

    /// The Artifact Registry repository a registry path on this host is in.
    pub fn repository(&self, path: &str) -> Result<ArRepository, String> {
        let parts: Vec<&str> = path.split('/').collect();
        let (project, id) = if self.gcr {
            if parts.len() < 2 {
                return Err(format!("{} paths are PROJECT/IMAGE", self.host));
            }
            (parts[0], self.host.as_str())
        } else {
            if parts.len() < 3 {
                return Err(format!("{} paths are PROJECT/REPOSITORY/IMAGE", self.host));
            }
            (parts[0], parts[1])
        };
        check_project(project)?;
        if !self.gcr {
            check_repository_id(id)?;
        }
        Ok(ArRepository {
            project: project.to_owned(),
            location: self.location.clone(),
            id: id.to_owned(),
        })
    }
}

/// An Artifact Registry repository: `projects/PROJECT/locations/LOCATION/repositories/ID`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ArRepository {
    pub project: String,
    pub location: String,
    pub id: String,
}

impl ArRepository {
    pub fn parent(&self) -> String {
        format!("projects/{}/locations/{}", self.project, self.location)
    }

    pub fn name(&self) -> String {
        format!("{}/repositories/{}", self.parent(), self.id)
    }
}

/// Google's project id rule: 6 to 30 lowercase letters, digits and hyphens, starting with
/// a letter and not ending with a hyphen.
fn check_project(project: &str) -> Result<(), String> {
    let good = (6..=30).contains(&project.len())
        && project.starts_with(|c: char| c.is_ascii_lowercase())
        && !project.ends_with('-')
        && project
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if good {
        Ok(())
    } else {
        Err(format!(
            "'{}' is not a Google Cloud project id (6 to 30 lowercase letters, digits and hyphens, starting with a letter, not ending with a hyphen)",
            project.escape_debug()
        ))
    }
}

/// Artifact Registry's repository id rule: at most 63 lowercase letters, digits and
/// hyphens, starting with a letter and ending with a letter or digit.
fn check_repository_id(id: &str) -> Result<(), String> {
    let good = (1..=63).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if good {
        Ok(())
    } else {
        Err(format!(
            "repository '{}' breaks Artifact Registry's rule",
            id.escape_debug()
        ))
    }
}

/// Artifact Registry's naming rules, for a destination in one of its registries.
pub fn check_repository(registry: &str, own: bool, repository: &str) -> Result<(), NameRefused> {
    let Some(host) = GarHost::parse(registry).filter(|_| !own) else {
        return Ok(());
    };
    host.repository(repository)
        .map(|_| ())
        .map_err(|rule| NameRefused {
            kind: KIND,
            rule,
            note: "Artifact Registry paths are PROJECT/REPOSITORY/IMAGE on LOCATION-docker.pkg.dev and \
               PROJECT/IMAGE on gcr.io hosts; a repository id is at most 63 lowercase letters, digits and \
               hyphens, starting with a letter and ending with a letter or digit",
        })
}

/// A label key as Artifact Registry takes it: a lowercase letter, then at most 62 lowercase
/// letters, digits, underscores and dashes.
fn is_label_key(key: &str) -> bool {
    key.len() <= 63 && key.starts_with(|c: char| c.is_ascii_lowercase()) && key.bytes().all(is_label_byte)
}

/// A label value: at most 63 lowercase letters, digits, underscores and dashes.
fn is_label_value(value: &str) -> bool {
    value.len() <= 63 && value.bytes().all(is_label_byte)
}

fn is_label_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
}

/// Whether `key` names a Cloud KMS key as Artifact Registry takes it.
fn is_kms_key_name(key: &str) -> bool {
    let parts: Vec<&str> = key.split('/').collect();
    parts.len() == 8
        && parts
            .iter()
            .step_by(2)
            .copied()
            .eq(["projects", "locations", "keyRings", "cryptoKeys"])
        && parts.iter().skip(1).step_by(2).all(|part| !part.is_empty())
}

/// The repository settings that mean something for Artifact Registry, for a destination in
/// one of its registries: immutable tags, a Cloud KMS key, labels (`repository_tags`).
pub fn check_settings(
    registry: &str,
    own: bool,
    settings: &RepositorySettings,
) -> Result<(), SettingRefused> {
    if own || GarHost::parse(registry).is_none() {
        return Ok(());
    }
    let refused = |key: &'static str, rule: String, note: &str| {
        let flag = match key {
            "repository_tags" => "repository-tag",
            "scan_on_push" => "scan-on-push",
            "lifecycle_policy" => "lifecycle-policy",
            "kms_key" => "kms-key",
            _ => key,
        };
        Err(SettingRefused {
            kind: KIND,
            key,
            flag,
            rule,
            note: note.to_owned(),
        })
    };
    if settings.scan_on_push {
        return refused(
            "scan_on_push",
            "Artifact Registry has no per-repository scan on push".into(),
            "vulnerability scanning is turned on per project (`gcloud services enable containerscanning.googleapis.com`); \
             leave scan_on_push out for Artifact Registry destinations",
        );
    }
    if settings.lifecycle_policy.is_some() {
        return refused(
            "lifecycle_policy",
            "ECR's lifecycle policies mean nothing to Artifact Registry".into(),
            "Artifact Registry has cleanup policies of its own (`gcloud artifacts repositories set-cleanup-policies`); \
             leave lifecycle_policy out for Artifact Registry destinations",
        );
    }
    match &settings.encryption {
        Encryption::Kms { key: None } => {
            return refused(
                "encryption",
                "Artifact Registry has no service-managed KMS key to pick".into(),
                "name the key with kms_key = \"projects/PROJECT/locations/LOCATION/keyRings/RING/cryptoKeys/KEY\", \
                 or leave encryption out (Google encrypts every repository with its own keys)",
            )
        }
        Encryption::Kms { key: Some(key) } if !is_kms_key_name(key) => {
            return refused(
                "kms_key",
                format!("'{key}' is not a Cloud KMS key name"),
                "Artifact Registry takes projects/PROJECT/locations/LOCATION/keyRings/RING/cryptoKeys/KEY, \
                 in the repository's location",
            )
        }
        Encryption::Aes256 | Encryption::Kms { key: Some(_) } => {}
    }
    if let Some((key, value)) = settings
        .tags
        .iter()
        .find(|(key, value)| !is_label_key(key) || !is_label_value(value))
    {
        return refused(
            "repository_tags",
            format!("'{key}={value}' is not an Artifact Registry label"),
            "labels are lowercase: keys start with a letter, and keys and values hold at most 63 lowercase letters, \
             digits, underscores and dashes",
        );
    }
    Ok(())
}

/// What one of Artifact Registry's own failures means for the run.
pub fn meaning(cause: &(dyn std::error::Error + 'static)) -> Option<Meaning> {
    match cause.downcast_ref::<GarError>()? {
        GarError::Throttled { .. } => Some(Meaning::Throttled),
        GarError::NoCredentials { .. } | GarError::BadCredentials { .. } => Some(Meaning::NoCredentials),
        // Refused, not failing: a 5xx of the token endpoint is Google's, and passes.
        GarError::TokenRefused { status, .. } if *status < 500 => Some(Meaning::NoCredentials),
        _ => None,
    }
}

/// An access token as the run holds it.
#[derive(Debug, Clone)]
pub struct Token {
    pub secret: Secret,
    expires_at: Option<SystemTime>,
    fetched_at: SystemTime,
    pub serial: u64,
}

/// The run's Google credentials and the access token they last gave, shared by the API
/// calls and the registry client's renewals.
pub struct Tokens {
    adc: Adc,
    http: reqwest::Client,
    /// Held while fetching, so that copies asking at once share one request.
    cached: tokio::sync::Mutex<Option<Token>>,
}

impl Tokens {
    /// The token: the one cached, unless it is due for refresh or is the one numbered
    /// `rejected` (refused by a registry or the API).
    pub async fn token(&self, rejected: Option<u64>) -> Result<Token, GarError> {
        let mut cached = self.cached.lock().await;
        if let Some(found) = cached.as_ref() {
            match rejected {
                None if !needs_refresh(found.expires_at, found.fetched_at, SystemTime::now()) => {
                    return Ok(found.clone());
                }
                None => tracing::info!("refreshing the Google access token before it expires"),
                Some(rejected) if found.serial != rejected => return Ok(found.clone()),
                Some(_) => tracing::warn!("Google refused the access token; fetching a new one"),
            }
        }
        let fetched = self.adc.fetch(&self.http).await?;
        let token = Token {
            secret: fetched.secret,
            expires_at: fetched.expires_at,
            fetched_at: SystemTime::now(),
            serial: next_serial(),
        };
        *cached = Some(token.clone());
        Ok(token)
    }
}

fn issued(token: Token) -> Issued {
    Issued {
        credentials: Credentials {
            username: TOKEN_USER.to_owned(),
            password: token.secret,
        },
        serial: token.serial,
    }
}

impl Renew for Tokens {
    fn renew(&self, rejected: u64) -> BoxFuture<'_, Result<Issued, String>> {
        Box::pin(async move {
            self.token(Some(rejected))
                .await
                .map(issued)
                .map_err(|error| error.to_string())
        })
    }

    fn refusal(&self) -> Refusal {
        Refusal {
            login: "Google access token",
            note: "check this machine's clock, that the principal of the Google credentials holds \
                   roles/artifactregistry.writer on the repository (reader for a source; `ecrcp permissions` \
                   names the roles, docs/google.md), and that the registry is the one meant",
        }
    }
}

/// What the run knows of one Artifact Registry repository it wrote to.
#[derive(Debug, Default)]
struct Holding {
    /// This run created it.
    created: bool,
    /// The registry repositories (images) in it whose copies have not all failed yet.
    open: HashSet<String>,
}

/// Artifact Registry, connected for a run.
pub struct Gar {
    tokens: Arc<Tokens>,
    /// The repositories this run made sure of, each held while it is created or removed, so
    /// that copies of several images into one new repository create it once, and copies
    /// into other repositories do not wait for it.
    holdings: std::sync::Mutex<HashMap<ArRepository, Arc<tokio::sync::Mutex<Option<Holding>>>>>,
}

/// Whether a job reads or writes one of Artifact Registry's registries.
fn reaches_gar(job: &CopyJob) -> bool {
    GarHost::parse(job.source.registry()).is_some()
        || job
            .destination
            .registry()
            .is_some_and(|registry| GarHost::parse(registry).is_some())
}

/// Connects Artifact Registry for the jobs that reach it: finds the credentials and fetches
/// a first token, so that missing credentials stop the run before any copy.
pub fn connect(jobs: &[CopyJob]) -> BoxFuture<'_, anyhow::Result<Option<Box<dyn Provider>>>> {
    Box::pin(async move {
        if !jobs.iter().any(reaches_gar) {
            return Ok(None);
        }
        let http = crate::registry::transport::http_client("Google APIs", &[])?;
        let adc = Adc::find(&http).await?;
        match &adc.origin {
            Origin::Metadata(host) => {
                tracing::info!(metadata = %host, "Google credentials: the metadata server");
            }
            origin => tracing::info!(credentials = %origin, kind = adc.kind(), "Google credentials"),
        }
        let tokens = Arc::new(Tokens {
            adc,
            http,
            cached: tokio::sync::Mutex::new(None),
        });
        tokens.token(None).await?;
        let connected: Box<dyn Provider> = Box::new(Gar {
            tokens,
            holdings: std::sync::Mutex::default(),
        });
        Ok(Some(connected))
    })
}

impl Gar {
    fn api(&self) -> Api<'_> {
        Api {
            http: &self.tokens.http,
            tokens: &self.tokens,
        }
    }

    /// The Artifact Registry repository of registry path `name` on `host`.
    fn repository_of(host: &str, name: &str) -> Result<ArRepository, GarError> {
        let host = GarHost::parse(host)
            .ok_or_else(|| GarError::Path(name.to_owned(), format!("'{host}' is not one of its hosts")))?;
        host.repository(name)
            .map_err(|rule| GarError::Path(name.to_owned(), rule))
    }

    /// The run's hold on `repository`, made on first use.
    fn holding(&self, repository: &ArRepository) -> Arc<tokio::sync::Mutex<Option<Holding>>> {
        let mut holdings = self.holdings.lock().expect("holdings poisoned");
        Arc::clone(holdings.entry(repository.clone()).or_default())
    }

    async fn ensure(&self, host: &str, name: &str, settings: &RepositorySettings) -> Result<bool, GarError> {
        let repository = Gar::repository_of(host, name)?;
        let holding = self.holding(&repository);
        let mut holding = holding.lock().await;
        if let Some(held) = holding.as_mut() {
            held.open.insert(name.to_owned());
            return Ok(held.created);
        }
        let api = self.api();
        let created = !api.exists(&repository).await? && api.create(&repository, settings).await?;
        if created {
            tracing::info!(repository = %repository.name(), "created Artifact Registry repository");
        }
        *holding = Some(Holding {
            created,
            open: HashSet::from([name.to_owned()]),
        });
        Ok(created)
    }

    /// Removes the repository of `name` when every image this run copied into it failed and
    /// it holds nothing.
    async fn remove_if_empty(&self, host: &str, name: &str) -> Result<(), GarError> {
        let repository = Gar::repository_of(host, name)?;
        let holding = self.holding(&repository);
        // Held until the repository is gone: a copy that wants it meanwhile makes it anew.
        let mut holding = holding.lock().await;
        let Some(held) = holding.as_mut() else {
            return Ok(());
        };
        held.open.remove(name);
        if !held.created || !held.open.is_empty() {
            return Ok(());
        }
        *holding = None;
        let api = self.api();
        if !api.is_empty(&repository).await? {
            tracing::info!(repository = %repository.name(), "the repository created for a failed copy holds images; keeping it");
            return Ok(());
        }
        api.delete(&repository).await?;
        tracing::info!(repository = %repository.name(), "removed the Artifact Registry repository created for a failed copy");
        Ok(())
    }
}

impl Provider for Gar {
    fn registry(&self, host: &str) -> Option<String> {
        GarHost::parse(host).map(|host| host.host)
    }

    fn makes_repositories(&self) -> bool {
        true
    }

    /// Artifact Registry takes the token as Basic on any request, as `docker login` with
    /// docker-credential-gcr's `oauth2accesstoken` login does.
    fn logs_in_with_basic(&self) -> bool {
        true
    }

    /// `true` for every image copied into a repository this run created, so that each of
    /// them, failing, says so; it goes once they all failed.
    fn ensure_repository<'a>(
        &'a self,
        host: &'a str,
        name: &'a str,
        settings: &'a JobSettings,
    ) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async move { Ok(self.ensure(host, name, &settings.repository).await?) })
    }

    fn remove_empty_repository<'a>(
        &'a self,
        host: &'a str,
        name: &'a str,
        _settings: &'a JobSettings,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Err(error) = self.remove_if_empty(host, name).await {
                tracing::warn!(repository = name, %error, "cannot remove the repository created for a failed copy");
            }
        })
    }

    fn login<'a>(
        &'a self,
        _host: &'a str,
        _settings: &'a JobSettings,
        refused: Option<u64>,
    ) -> BoxFuture<'a, anyhow::Result<Option<Login>>> {
        Box::pin(async move {
            let token = self.tokens.token(refused).await?;
            let renewer: Arc<dyn Renew> = self.tokens.clone();
            Ok(Some(Login {
                issued: issued(token),
                renewer,
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host, a path on it, and what they name (`None`: not Artifact Registry).
    type Case = (
        &'static str,
        &'static str,
        Option<Result<ArRepository, &'static str>>,
    );

    #[test]
    fn artifact_registry_hosts_and_the_repository_a_path_is_in() {
        let repo = |project: &str, location: &str, id: &str| ArRepository {
            project: project.into(),
            location: location.into(),
            id: id.into(),
        };
        let cases: &[Case] = &[
            (
                "us-docker.pkg.dev",
                "my-project/team/app",
                Some(Ok(repo("my-project", "us", "team"))),
            ),
            (
                "Europe-West1-Docker.pkg.dev:443",
                "my-project/r1/a/b",
                Some(Ok(repo("my-project", "europe-west1", "r1"))),
            ),
            (
                "gcr.io",
                "my-project/app",
                Some(Ok(repo("my-project", "us", "gcr.io"))),
            ),
            (
                "us.gcr.io",
                "my-project/a/b",
                Some(Ok(repo("my-project", "us", "us.gcr.io"))),
            ),
            (
                "eu.gcr.io",
                "my-project/app",
                Some(Ok(repo("my-project", "europe", "eu.gcr.io"))),
            ),
            (
                "asia.gcr.io",
                "my-project/app",
                Some(Ok(repo("my-project", "asia", "asia.gcr.io"))),
            ),
            (
                "us-docker.pkg.dev",
                "my-project/app",
                Some(Err("PROJECT/REPOSITORY/IMAGE")),
            ),
            ("gcr.io", "app", Some(Err("PROJECT/IMAGE"))),
            (
                "us-docker.pkg.dev",
                "my-project/Team/app",
                Some(Err("repository 'Team'")),
            ),
            (
                "us-docker.pkg.dev",
                "my-project/1team/app",
                Some(Err("repository '1team'")),
            ),
            (
                "us-docker.pkg.dev",
                "my-project/team-/app",
                Some(Err("repository 'team-'")),
            ),
            (
                "us-docker.pkg.dev",
                "my-project/te_am/app",
                Some(Err("repository 'te_am'")),
            ),
            (
                "us-docker.pkg.dev",
                "proj/team/app",
                Some(Err("'proj' is not a Google Cloud project id")),
            ),
            (
                "us-docker.pkg.dev",
                "my-project-/team/app",
                Some(Err("project id")),
            ),
            ("docker.pkg.dev", "my-project/team/app", None),
            ("-docker.pkg.dev", "my-project/team/app", None),
            ("us-docker.pkg.dev:5000", "my-project/team/app", None),
            ("k8s.gcr.io", "pause", None),
            ("registry-1.docker.io", "library/nginx", None),
        ];
        for (host, path, expected) in cases {
            let parsed = GarHost::parse(host);
            match (expected, parsed) {
                (None, None) => {}
                (Some(expected), Some(parsed)) => match (expected, parsed.repository(path)) {
                    (Ok(wanted), Ok(got)) => assert_eq!(&got, wanted, "{host}/{path}"),
                    (Err(words), Err(error)) => assert!(error.contains(words), "{host}/{path}: {error}"),
                    (_, got) => panic!("{host}/{path}: {got:?}"),
                },
                (_, parsed) => panic!("{host}: {parsed:?}"),
            }
        }
        assert_eq!(
            repo("p", "us", "r").name(),
            "projects/p/locations/us/repositories/r"
        );
        let long = "a".repeat(63);
        assert!(check_repository_id(&long).is_ok());
        assert!(check_repository_id(&format!("{long}a")).is_err());
    }

    #[test]
    fn only_settings_with_a_meaning_for_artifact_registry_are_taken() {
        const GAR: &str = "us-docker.pkg.dev";
        let with = |change: fn(&mut RepositorySettings)| {
            let mut settings = RepositorySettings::default();
            change(&mut settings);
            settings
        };
        let cases: &[(&str, RepositorySettings, Option<&str>)] = &[
            ("defaults", RepositorySettings::default(), None),
            ("immutable tags", with(|s| s.immutable_tags = true), None),
            (
                "scan on push",
                with(|s| s.scan_on_push = true),
                Some("scan_on_push"),
            ),
            (
                "lifecycle policy",
                with(|s| s.lifecycle_policy = Some("{}".into())),
                Some("lifecycle_policy"),
            ),
            (
                "kms without a key",
                with(|s| s.encryption = Encryption::Kms { key: None }),
                Some("encryption"),
            ),
            (
                "an AWS KMS alias",
                with(|s| {
                    s.encryption = Encryption::Kms {
                        key: Some("alias/mirror".into()),
                    }
                }),
                Some("kms_key"),
            ),
            (
                "a Cloud KMS key",
                with(|s| {
                    s.encryption = Encryption::Kms {
                        key: Some("projects/p/locations/us/keyRings/r/cryptoKeys/k".into()),
                    }
                }),
                None,
            ),
            (
                "labels",
                with(|s| s.tags = vec![("team".into(), "platform".into()), ("env".into(), String::new())]),
                None,
            ),
            (
                "an uppercase label",
                with(|s| s.tags = vec![("Team".into(), "x".into())]),
                Some("repository_tags"),
            ),
            (
                "a label value with a dot",
                with(|s| s.tags = vec![("v".into(), "1.2".into())]),
                Some("repository_tags"),
            ),
        ];
        for (name, settings, refused) in cases {
            let checked = check_settings(GAR, false, settings);
            assert_eq!(
                checked.as_ref().err().map(|refused| refused.key),
                *refused,
                "{name}: {checked:?}"
            );
            // Elsewhere, every setting is the other kinds' business.
            assert!(
                check_settings("registry.example.com", false, settings).is_ok(),
                "{name}"
            );
            assert!(check_settings(GAR, true, settings).is_ok(), "{name}");
        }
    }

    fn refused(status: u16) -> GarError {
        GarError::TokenRefused {
            origin: "o".into(),
            kind: "k",
            url: "https://oauth2.googleapis.com/token".into(),
            status,
            words: "w".into(),
        }
    }

    #[test]
    fn its_own_failures_mean_a_throttle_or_no_credentials() {
        let cases = [
            (
                GarError::Throttled {
                    operation: "repositories.get",
                    words: "RESOURCE_EXHAUSTED".into(),
                },
                Some(Meaning::Throttled),
            ),
            (
                GarError::NoCredentials {
                    detail: "none".into(),
                },
                Some(Meaning::NoCredentials),
            ),
            (
                GarError::BadCredentials {
                    origin: "x".into(),
                    detail: "y".into(),
                },
                Some(Meaning::NoCredentials),
            ),
            (GarError::Path("a".into(), "b".into()), None),
            (refused(400), Some(Meaning::NoCredentials)),
            (refused(503), None),
        ];
        for (error, expected) in cases {
            assert_eq!(meaning(&error), expected, "{error}");
        }
    }
}
