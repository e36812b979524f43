//! What a failure means for the run, in one table: whether it fails the image, defers it to
//! the next run, or stops the run. The command line and sync both ask here; nobody else
//! downcasts an error to decide it. Classifying only: what the caller then does is its
//! own business. Sync defers an image (exit 75 when nothing failed); the command line,
//! which has no next run to defer to, counts a deferral as the failure it is there (exit
//! 1), and both stop on `Stop`.

use crate::docker::DockerError;
use crate::engine::{OverBudget, SourceFailed};
use crate::lock::LockError;
use crate::provider::{self, Meaning};
use crate::registry::RegistryError;

/// What a failure means for the image it hit, and for the run. Ordered by weight: an error
/// whose causes say several things means the heaviest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fate {
    /// The image failed; the others go on.
    Fail,
    /// The image is put off for a reason that passes (a quota, a throttle, another run
    /// holding the lock): the next run will do, and the others go on.
    Defer,
    /// The image failed, and every further one would fail alike: the run stops.
    Stop,
}

/// The kinds of failure the table tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Docker Hub's pull allowance, as docker reports it.
    PullQuota,
    /// A registry's quota or throttle (429, `toomanyrequests`), with either engine.
    RegistryThrottled,
    /// A registry kind's API (ECR's) throttled every attempt the retries allow.
    ApiThrottled,
    /// The copy needed more Docker Hub pulls than the run's budget had left.
    OverBudget,
    /// Another sync holds the state directory's lock.
    LockBusy,
    /// No docker, no daemon, a daemon that stopped answering, or a cancelled run.
    DockerGone,
    /// No credentials for a registry kind's API (AWS's for ECR).
    NoApiCredentials,
    /// A later destination of a group whose source read failed first at another: it means
    /// what that failure meant.
    SourceFailed(Fate),
    /// Anything else: this image's own failure.
    Other,
}

impl Kind {
    /// The table.
    pub fn fate(self) -> Fate {
        match self {
            Kind::PullQuota
            | Kind::RegistryThrottled
            | Kind::ApiThrottled
            | Kind::OverBudget
            | Kind::LockBusy => Fate::Defer,
            Kind::DockerGone | Kind::NoApiCredentials => Fate::Stop,
            Kind::SourceFailed(fate) => fate,
            Kind::Other => Fate::Fail,
        }
    }

    /// The kind of one cause in an error's chain.
    pub fn of_cause(cause: &(dyn std::error::Error + 'static)) -> Kind {
        if let Some(error) = cause.downcast_ref::<DockerError>() {
            if error.stops_the_run() {
                Kind::DockerGone
            } else if matches!(error, DockerError::RateLimited { .. }) {
                Kind::PullQuota
            } else if error.is_throttled() {
                Kind::RegistryThrottled
            } else {
                Kind::Other
            }
        } else if let Some(error) = cause.downcast_ref::<RegistryError>() {
            match error {
                RegistryError::RateLimited { .. } => Kind::RegistryThrottled,
                _ => Kind::Other,
            }
        } else if let Some(meaning) = provider::meaning(cause) {
            match meaning {
                Meaning::Throttled => Kind::ApiThrottled,
                Meaning::NoCredentials => Kind::NoApiCredentials,
            }
        } else if let Some(error) = cause.downcast_ref::<LockError>() {
            match error {
                LockError::Busy { .. } => Kind::LockBusy,
                _ => Kind::Other,
            }
        } else if cause.is::<OverBudget>() {
            Kind::OverBudget
        } else if let Some(error) = cause.downcast_ref::<SourceFailed>() {
            Kind::SourceFailed(error.fate)
        } else {
            Kind::Other
        }
    }

    /// Whether any cause in `error`'s chain is of this kind.
    pub fn in_chain(self, error: &anyhow::Error) -> bool {
        error.chain().any(|cause| Kind::of_cause(cause) == self)
    }
}

/// What `error` means: the heaviest fate among its causes.
pub fn of(error: &anyhow::Error) -> Fate {
    error
        .chain()
        .map(|cause| Kind::of_cause(cause).fate())
        .max()
        .unwrap_or(Fate::Fail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::ecr::EcrError;

    #[test]
    fn every_kind_has_its_fate() {
        for (kind, fate) in [
            (Kind::PullQuota, Fate::Defer),
            (Kind::RegistryThrottled, Fate::Defer),
            (Kind::ApiThrottled, Fate::Defer),
            (Kind::OverBudget, Fate::Defer),
            (Kind::LockBusy, Fate::Defer),
            (Kind::DockerGone, Fate::Stop),
            (Kind::NoApiCredentials, Fate::Stop),
            (Kind::SourceFailed(Fate::Defer), Fate::Defer),
            (Kind::SourceFailed(Fate::Fail), Fate::Fail),
            (Kind::Other, Fate::Fail),
        ] {
            assert_eq!(kind.fate(), fate, "{kind:?}");
        }
    }

    #[test]
    #[allow(clippy::too_many_lines)] // one table
    fn errors_are_classified_by_any_cause_in_their_chain() {
        use crate::registry::Limit;
        let docker_failed = |stderr: &str| DockerError::Failed {
            argv: "docker push x".into(),
            status: "exit status: 1".into(),
            stderr: stderr.into(),
            layers_done: 0,
            layers_left: None,
        };
        let cases: Vec<(&str, anyhow::Error, Kind, Fate)> = vec![
            (
                "docker hub's pull quota",
                DockerError::RateLimited {
                    argv: "docker pull nginx".into(),
                    stderr: "toomanyrequests: You have reached your pull rate limit".into(),
                }
                .into(),
                Kind::PullQuota,
                Fate::Defer,
            ),
            (
                "a registry throttling docker",
                docker_failed("toomanyrequests: retry later").into(),
                Kind::RegistryThrottled,
                Fate::Defer,
            ),
            (
                "a registry throttling ecrcp's client",
                RegistryError::RateLimited {
                    host: "ghcr.io".into(),
                    limit: Limit::Requests,
                    allowance: None,
                    retry_after: None,
                }
                .into(),
                Kind::RegistryThrottled,
                Fate::Defer,
            ),
            (
                "the ECR API throttled",
                anyhow::Error::new(EcrError::Throttled {
                    operation: "CreateRepository",
                    code: "ThrottlingException".into(),
                    message: "Rate exceeded".into(),
                })
                .context("cannot create repository 'mirror/nginx'"),
                Kind::ApiThrottled,
                Fate::Defer,
            ),
            (
                "the pull budget spent",
                OverBudget { needed: 3, left: 1 }.into(),
                Kind::OverBudget,
                Fate::Defer,
            ),
            (
                "another sync running",
                LockError::Busy {
                    path: "/state/sync.lock".into(),
                    holder: "pid 7".into(),
                }
                .into(),
                Kind::LockBusy,
                Fate::Defer,
            ),
            (
                "the docker daemon gone",
                anyhow::Error::new(DockerError::DaemonUnreachable {
                    detail: "Cannot connect to the Docker daemon".into(),
                })
                .context("cannot pull 'nginx'"),
                Kind::DockerGone,
                Fate::Stop,
            ),
            (
                "no AWS credentials",
                EcrError::NoCredentials { reason: None }.into(),
                Kind::NoApiCredentials,
                Fate::Stop,
            ),
            (
                "a later destination of a deferred source",
                SourceFailed {
                    message: "toomanyrequests".into(),
                    fate: Fate::Defer,
                }
                .into(),
                Kind::SourceFailed(Fate::Defer),
                Fate::Defer,
            ),
            (
                "an ECR API error that is no throttle",
                EcrError::Api {
                    operation: "CreateRepository",
                    code: "AccessDeniedException".into(),
                    message: "not authorized".into(),
                    hint: String::new(),
                }
                .into(),
                Kind::Other,
                Fate::Fail,
            ),
            (
                "a registry refusing",
                RegistryError::Inaccessible {
                    image: "ghcr.io/a/b:1".into(),
                    host: "ghcr.io".into(),
                }
                .into(),
                Kind::Other,
                Fate::Fail,
            ),
            (
                "a push docker failed otherwise",
                docker_failed("denied: requested access to the resource is denied").into(),
                Kind::Other,
                Fate::Fail,
            ),
            (
                "a stuck ledger lock",
                LockError::Stuck {
                    path: "/state/copies.json.lock".into(),
                    seconds: 10,
                }
                .into(),
                Kind::Other,
                Fate::Fail,
            ),
            (
                "plain text",
                anyhow::anyhow!("'x' does not exist"),
                Kind::Other,
                Fate::Fail,
            ),
        ];
        for (name, error, kind, fate) in cases {
            let kinds: Vec<Kind> = error.chain().map(Kind::of_cause).collect();
            assert!(kinds.contains(&kind), "{name}: {kinds:?}");
            assert_eq!(of(&error), fate, "{name}");
        }
    }
}
