//! Kinds of registry: what a kind adds to plain OCI (repositories made through its own API,
//! logins of its own), behind one trait, and found by host. [`KINDS`] registers every kind
//! beyond plain OCI; a host no kind claims is plain ([`Plain`]): its repositories appear on
//! the first push, and docker's config holds its login. The core asks [`Providers`] for a
//! host's provider and never names a kind. A new kind is one module beside `ecr` and one
//! line in [`KINDS`]. Emits events; never prints.

pub mod ecr;

use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::plan::{CopyJob, JobSettings};
use crate::registry::credentials::{Issued, Renew};

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
}

/// Connects a kind for the jobs of a run, before any copy (so that missing credentials stop
/// the run at once instead of failing every copy alike); `None` when no job reaches its
/// registries.
pub type Connect = for<'j> fn(&'j [CopyJob]) -> BoxFuture<'j, anyhow::Result<Option<Box<dyn Provider>>>>;

/// Every kind of registry beyond plain OCI, asked in this order which one a host is.
pub const KINDS: &[Connect] = &[ecr::connect];

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
        for connect in KINDS {
            connected.extend(connect(jobs).await?);
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
    use super::{Provider, Providers};

    /// A kind (named first) whose registries are the hosts under one domain (second).
    struct Under(&'static str, &'static str);

    impl Provider for Under {
        fn registry(&self, host: &str) -> Option<String> {
            let host = host.to_ascii_lowercase();
            host.ends_with(self.1).then(|| format!("{}: {host}", self.0))
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
}
