//! Kinds of registry: what a kind adds to plain OCI (repositories made through its own API,
//! logins of its own, the permissions a plan needs in its own policy language), behind one
//! trait, and found by host. [`KINDS`] registers every kind beyond plain OCI; a host no kind
//! claims is plain ([`Plain`]): its repositories appear on the first push, docker's config
//! holds its login, and it asks for no policy. The core asks [`Providers`] for a host's
//! provider and never names a kind. A new kind is one module beside `ecr` and one entry in
//! [`KINDS`]. Emits events; never prints.

pub mod acr;
pub mod ecr;
pub mod gar;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;

use crate::plan::{CopyJob, JobSettings, RepositorySettings};
use crate::reference::{Destination, ReferenceError};
use crate::registry::credentials::{Credentials, Issued, Renew};
use crate::registry::hosts::Paced;

/// A login a provider hands out for one of its registries.
pub struct Login {
    pub issued: Issued,
    /// Renews it once the registry refuses it: the registry client's credential store
    /// keeps it beside the login.
    pub renewer: Arc<dyn Renew>,
}

/// What a kind of registry adds to plain OCI, connected for the jobs of one run. Every
/// default is plain OCI's answer. `settings` are the job's: they pick the account and
/// credentials (for ECR, the AWS profile and region). Safe to share between copies.
pub trait Provider: Send + Sync {
    /// Whether `host` is one of this kind's registries: its name as logins know it
    /// (for ECR, lowercase and without `:443`), else `None`.
    fn registry(&self, host: &str) -> Option<String>;

    /// The registry a destination that names no host goes to under `settings`, when this
    /// kind serves such destinations.
    fn own_registry(&self, _settings: &JobSettings) -> Option<&str> {
        None
    }

    /// Whether repositories are made through the kind's API before the first push. Plain
    /// registries make them on the push, and nothing of theirs is ever removed, so copies
    /// into them take no turns.
    fn makes_repositories(&self) -> bool {
        false
    }

    /// Makes sure repository `name` exists in the registry `host`, created with
    /// `settings.repository` when missing. Says whether this very call created it.
    fn ensure_repository<'a>(
        &'a self,
        _host: &'a str,
        _name: &'a str,
        _settings: &'a JobSettings,
    ) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async { Ok(false) })
    }

    /// Removes repository `name` of `host`, which `ensure_repository` created for copies
    /// that all failed, if it still holds nothing. A failure is logged, not returned: the
    /// copy's own error is the one to report.
    fn remove_empty_repository<'a>(
        &'a self,
        _host: &'a str,
        _name: &'a str,
        _settings: &'a JobSettings,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    /// Whether its registries take its logins as Basic credentials from the first request
    /// (ECR's do): nobody need ask them how they authenticate.
    fn logs_in_with_basic(&self) -> bool {
        false
    }

    /// The kinds of request its registries hold to rates of their own (ECR's API quotas, per
    /// account and region), at the rates `pacing` allows this worker.
    fn paced(&self, _pacing: &Pacing) -> Vec<Paced> {
        Vec::new()
    }

    /// A login of the kind's own for the registry `host`; `None` when docker's config is the
    /// way in. `refused`: the serial of a login the registry refused, for a new one (shared
    /// by the copies that met the same refusal).
    fn login<'a>(
        &'a self,
        _host: &'a str,
        _settings: &'a JobSettings,
        _refused: Option<u64>,
    ) -> BoxFuture<'a, anyhow::Result<Option<Login>>> {
        Box::pin(async { Ok(None) })
    }

    /// What `docker login` is given for a login of the kind's own: the same, unless its
    /// registries want another user with it (ACR's refresh token goes with a fixed GUID).
    fn docker_login(&self, login: &Credentials) -> Credentials {
        login.clone()
    }
}

/// How fast a worker may go at its registries' API quotas: the quotas the user raised
/// (`[sync] api_quotas`, action name to requests a second) and how many workers share them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pacing {
    pub workers: u32,
    pub quotas: std::collections::BTreeMap<String, u32>,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            workers: 1,
            quotas: std::collections::BTreeMap::new(),
        }
    }
}

/// Connects a kind for the jobs of a run, before any copy (so that missing credentials stop
/// the run at once instead of failing every copy alike); `None` when no job reaches its
/// registries.
pub type Connect = for<'j> fn(&'j [CopyJob]) -> BoxFuture<'j, anyhow::Result<Option<Box<dyn Provider>>>>;

/// What the permissions of a plan are asked for (`ecrcp iam-policy`).
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// Each job's source and destination.
    Jobs(&'a [CopyJob]),
    /// Destinations whose sources are not known, all with these settings.
    Destinations(&'a [Destination], &'a JobSettings),
}

/// The permissions a plan needs at one kind of registry, in the kind's own policy language
/// (for ECR, an IAM policy's JSON), and what the kind could not know or wants said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    /// The kind, as `ecrcp permissions` keys its answer ("ecr", "acr", "gar").
    pub kind: &'static str,
    pub policy: String,
    pub notes: Vec<String>,
}

/// The permissions `subject` needs at a kind's registries (`create`: copies may create
/// repositories); `None` when nothing in it reaches them.
pub type AskPermissions =
    for<'a> fn(Subject<'a>, bool) -> BoxFuture<'a, Result<Option<Permissions>, ReferenceError>>;

/// The serial of the next login any provider hands out: unique in the process and rising,
/// so that a renewed login is told from the one a registry refused even when both read the
/// same (emulators hand out one text forever).
pub fn next_serial() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// How long before its expiry a login is replaced.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// Whether a cached login should be fetched again at `now`. Only one that was valid for
/// longer than the margin when fetched is ever refreshed: anything else would loop.
pub fn needs_refresh(expires_at: Option<SystemTime>, fetched_at: SystemTime, now: SystemTime) -> bool {
    let Some(expires_at) = expires_at else {
        return false;
    };
    let Some(refresh_at) = expires_at.checked_sub(REFRESH_MARGIN) else {
        return false;
    };
    refresh_at > fetched_at && now >= refresh_at
}

/// What one of a kind's own failures means for the run (`crate::outcome` reads it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    /// Its API throttled every attempt the retries allow: the image can wait for the next run.
    Throttled,
    /// There are no credentials for its API: every further copy would fail alike.
    NoCredentials,
}

/// A repository name one of a kind's registries refuses, and the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameRefused {
    /// The kind, as users name it ("ECR").
    pub kind: &'static str,
    /// What is wrong with this name.
    pub rule: String,
    /// The kind's naming rule in full, said as the way out.
    pub note: &'static str,
}

/// A repository setting one of a kind's registries has no use for, named as the user wrote
/// it, and what to do instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingRefused {
    /// The kind, as users name it ("Artifact Registry").
    pub kind: &'static str,
    /// The config key (`scan_on_push`).
    pub key: &'static str,
    /// The command line's option (`scan-on-push`).
    pub flag: &'static str,
    /// What is wrong with it there.
    pub rule: String,
    /// The way out.
    pub note: String,
}

/// A kind of registry beyond plain OCI, as it is registered: how it connects for a run, and
/// what it knows before any I/O (its naming rules, what its errors mean, the permissions a
/// plan needs).
pub struct Kind {
    pub connect: Connect,
    pub permissions: AskPermissions,
    /// What one cause of an error means, when it is one of this kind's errors.
    pub meaning: fn(&(dyn std::error::Error + 'static)) -> Option<Meaning>,
    /// Checks the repository a destination names at `registry` (`own`: the destination
    /// names no host, and a kind's own registry takes it): `Ok` for registries not its own.
    pub check_repository: fn(registry: &str, own: bool, repository: &str) -> Result<(), NameRefused>,
    /// Checks the settings a repository would be created with at `registry` (`own` as
    /// above): `Ok` for registries not its own, and for every setting that means something
    /// there.
    pub check_settings:
        fn(registry: &str, own: bool, settings: &RepositorySettings) -> Result<(), SettingRefused>,
}

/// A kind whose registries take every repository setting (ECR's are where they come from).
pub fn takes_every_setting(
    _registry: &str,
    _own: bool,
    _settings: &RepositorySettings,
) -> Result<(), SettingRefused> {
    Ok(())
}

/// Every kind of registry beyond plain OCI, asked in this order which one a host is.
pub const KINDS: &[Kind] = &[
    Kind {
        connect: ecr::connect,
        permissions: ecr::iam::for_plan::permissions,
        meaning: ecr::meaning,
        check_repository: ecr::check_repository,
        check_settings: takes_every_setting,
    },
    Kind {
        connect: acr::connect,
        permissions: acr::permissions,
        meaning: acr::meaning,
        check_repository: acr::check_repository,
        // ACR makes repositories on the first push: the settings are ignored, said once a run.
        check_settings: takes_every_setting,
    },
    Kind {
        connect: gar::connect,
        permissions: gar::permissions::permissions,
        meaning: gar::meaning,
        check_repository: gar::check_repository,
        check_settings: gar::check_settings,
    },
];

/// What `cause` means, when it is a registry kind's own failure.
pub fn meaning(cause: &(dyn std::error::Error + 'static)) -> Option<Meaning> {
    KINDS.iter().find_map(|kind| (kind.meaning)(cause))
}

/// Checks the repository a destination names against the rules of each kind it reaches.
pub fn check_repository(registry: &str, own: bool, repository: &str) -> Result<(), NameRefused> {
    KINDS
        .iter()
        .try_for_each(|kind| (kind.check_repository)(registry, own, repository))
}

/// Checks the settings a destination's repository would be created with against each kind
/// it reaches.
pub fn check_settings(
    registry: &str,
    own: bool,
    settings: &RepositorySettings,
) -> Result<(), SettingRefused> {
    KINDS
        .iter()
        .try_for_each(|kind| (kind.check_settings)(registry, own, settings))
}

/// The permissions `subject` needs, from each kind whose registries it reaches.
pub async fn permissions(subject: Subject<'_>, create: bool) -> Result<Vec<Permissions>, ReferenceError> {
    let mut needed = Vec::new();
    for kind in KINDS {
        needed.extend((kind.permissions)(subject, create).await?);
    }
    Ok(needed)
}

/// A registry no kind claims: plain OCI, every answer the trait's default.
pub struct Plain;

impl Provider for Plain {
    fn registry(&self, _host: &str) -> Option<String> {
        None
    }
}

/// The providers of one run: each registered kind that some job reaches, connected.
#[derive(Default)]
pub struct Providers {
    connected: Vec<Box<dyn Provider>>,
}

impl Providers {
    /// Connects every kind the jobs reach.
    pub async fn connect(jobs: &[CopyJob]) -> anyhow::Result<Providers> {
        let mut connected = Vec::new();
        for kind in KINDS {
            connected.extend((kind.connect)(jobs).await?);
        }
        Ok(Providers { connected })
    }

    /// The provider of `host`: the kind that claims it, else plain OCI.
    pub fn for_host(&self, host: &str) -> &dyn Provider {
        self.connected
            .iter()
            .find(|provider| provider.registry(host).is_some())
            .map_or(&Plain, |provider| &**provider)
    }

    /// The registry a destination that names no host goes to under `settings`.
    pub fn own_registry(&self, settings: &JobSettings) -> Option<&str> {
        self.connected
            .iter()
            .find_map(|provider| provider.own_registry(settings))
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::{needs_refresh, Destination, Provider, Providers, Subject};

    /// A kind (named first) whose registries are the hosts under one domain (second).
    struct Under(&'static str, &'static str);

    impl Provider for Under {
        fn registry(&self, host: &str) -> Option<String> {
            let host = host.to_ascii_lowercase();
            host.ends_with(self.1).then(|| format!("{}: {host}", self.0))
        }
    }

    #[test]
    fn tokens_are_refreshed_before_expiry_but_never_in_a_loop() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let hours = |h: u64| Duration::from_secs(h * 3600);
        let cases = [
            (
                "fresh 12h token",
                Some(start + hours(12)),
                start + hours(1),
                false,
            ),
            (
                "4 minutes before expiry",
                Some(start + hours(12)),
                start + hours(12) - Duration::from_secs(240),
                true,
            ),
            (
                "born expired (emulator)",
                Some(start - hours(24)),
                start + hours(1),
                false,
            ),
            (
                "born nearly expired",
                Some(start + Duration::from_secs(60)),
                start + Duration::from_secs(59),
                false,
            ),
            ("no expiry given", None, start + hours(100), false),
        ];
        for (name, expires_at, now, expected) in cases {
            assert_eq!(needs_refresh(expires_at, start, now), expected, "{name}");
        }
    }

    #[test]
    fn a_host_goes_to_the_first_kind_that_claims_it_else_to_plain_oci() {
        let providers = Providers {
            connected: vec![
                Box::new(Under("one", ".one.example")),
                Box::new(Under("any", ".example")),
            ],
        };
        let cases = [
            ("r.one.example", Some("one: r.one.example")),
            ("R.One.Example", Some("one: r.one.example")),
            ("r.two.example", Some("any: r.two.example")),
            ("docker.io", None),
        ];
        for (host, expected) in cases {
            assert_eq!(
                providers.for_host(host).registry(host).as_deref(),
                expected,
                "{host}"
            );
        }
        assert!(!Providers::default()
            .for_host("r.one.example")
            .makes_repositories());
    }

    #[tokio::test]
    async fn each_kind_a_plan_reaches_answers_its_permissions_and_plain_registries_need_none() {
        let settings = crate::plan::JobSettings::default();
        let destinations = |names: &[&str]| -> Vec<Destination> {
            names
                .iter()
                .map(|name| Destination::parse(name).expect("a destination"))
                .collect()
        };
        let plain = destinations(&["registry.example.com/mirror/"]);
        let none = super::permissions(Subject::Destinations(&plain, &settings), true)
            .await
            .unwrap();
        assert_eq!(none, []);

        let ecr = destinations(&[
            "registry.example.com/mirror/",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mirror/",
        ]);
        let needed = super::permissions(Subject::Destinations(&ecr, &settings), false)
            .await
            .unwrap();
        let [only] = needed.as_slice() else {
            panic!("one kind answers: {needed:?}");
        };
        assert!(only.policy.contains("ecr:PutImage"), "{}", only.policy);
        assert!(
            only.policy
                .contains("arn:aws:ecr:eu-west-1:123456789012:repository/mirror/*"),
            "{}",
            only.policy
        );
        assert!(!only.policy.contains("ecr:CreateRepository"), "{}", only.policy);
    }
}
