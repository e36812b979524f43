//! Registry logins for one run, for registries whose provider hands out logins of its own
//! (ECR's tokens, for sources and destinations): hands them to ecrcp's own registry client
//! (for HEAD requests), and makes sure the docker CLI can pull and push. docker keeps the
//! user's own way in when its config has one that the registry accepts
//! (amazon-ecr-credential-helper, or a stored login); only otherwise is it `docker
//! login`-ed, so a user's login is never replaced with a 12-hour token without need. Decides
//! once per registry and run. When a registry refuses the login that worked (it expired),
//! both get one new login from the provider, and docker one new login. Emits events; never
//! prints.

use std::collections::HashMap;

use anyhow::Context as _;

use crate::docker::{DockerCommand, DockerError, DockerRunner};
use crate::plan::JobSettings;
use crate::provider::{Login, Provider, Providers};
use crate::reference::Reference;
use crate::registry::credentials::{CredentialStore, Issued, Refusal};
use crate::registry::RegistryClient;

/// `docker login` failed for a registry that docker's config hands to a credential helper,
/// which had no login the registry accepts and could not store ecrcp's.
#[derive(Debug, thiserror::Error)]
#[error("{docker}\nnote: docker's config hands '{host}' to docker-credential-{helper}, which has no login the registry accepts and cannot store one (amazon-ecr-credential-helper never can): fix that helper's credentials, or take '{host}' out of credHelpers/credsStore in docker's config.json")]
pub struct HelperLoginFailed {
    docker: DockerError,
    host: String,
    helper: String,
}

/// A registry refused docker's login with the token ecrcp had just fetched anew because it
/// refused the one before: a new token is not what is missing.
#[derive(Debug, thiserror::Error)]
#[error("registry '{host}' refused docker's login again right after ecrcp fetched a new {}\nnote: {}", .refusal.login, .refusal.note)]
pub struct LoginRefusedAgain {
    pub host: String,
    /// What the login is and what to check, in its kind's words.
    pub refusal: Refusal,
}

/// How docker reaches one registry in this run.
enum DockerAccess {
    /// Through docker's own config: a credential helper or a stored login.
    Own,
    /// Through the `docker login` ecrcp ran, with the token of this serial.
    LoggedIn(u64),
}

/// The logins of one run. Safe to share between concurrent copies.
pub struct Logins<'a> {
    docker: &'a dyn DockerRunner,
    registry: &'a RegistryClient,
    providers: &'a Providers,
    docker_access: tokio::sync::Mutex<HashMap<String, DockerAccess>>,
}

impl<'a> Logins<'a> {
    pub fn new(docker: &'a dyn DockerRunner, registry: &'a RegistryClient, providers: &'a Providers) -> Self {
        Logins {
            docker,
            registry,
            providers,
            docker_access: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// `image`'s registry as its provider names it, when the provider hands out logins of
    /// its own.
    fn provider(&self, image: &Reference) -> Option<(String, &'a dyn Provider)> {
        let provider = self.providers.for_host(image.registry());
        provider.registry(image.registry()).map(|host| (host, provider))
    }

    /// Hands the provider's login for `image`'s registry to the registry client, for HEAD
    /// requests. Nothing to do for registries without logins of their own.
    pub async fn registry_credentials(
        &self,
        image: &Reference,
        settings: &JobSettings,
    ) -> anyhow::Result<()> {
        let Some((host, provider)) = self.provider(image) else {
            return Ok(());
        };
        let login = provider
            .login(&host, settings, None)
            .await
            .with_context(|| format!("cannot log in to '{host}'"))?;
        if let Some(Login { issued, renewer }) = login {
            self.registry
                .credentials()
                .insert_renewable(&host, issued, renewer);
        }
        Ok(())
    }

    /// Makes sure docker may pull or push `image`, when its provider hands out logins: with
    /// docker's own login if the registry accepts it, else by `docker login` (once per run,
    /// and again only when the provider handed out a new login).
    pub async fn docker_login(&self, image: &Reference, settings: &JobSettings) -> anyhow::Result<()> {
        let Some((host, provider)) = self.provider(image) else {
            return Ok(());
        };
        let Some(Login { issued, .. }) = provider.login(&host, settings, None).await? else {
            return Ok(());
        };
        let mut access = self.docker_access.lock().await;
        match access.get(&host) {
            Some(DockerAccess::Own) => return Ok(()),
            Some(DockerAccess::LoggedIn(serial)) if *serial == issued.serial => return Ok(()),
            None if self.docker_has_login(image).await => {
                tracing::info!(registry = %host, "docker's own login for the registry works; not logging in");
                access.insert(host, DockerAccess::Own);
                return Ok(());
            }
            // A new login, or no login of docker's own that works.
            Some(DockerAccess::LoggedIn(_)) | None => {}
        }
        self.log_docker_in(&host, provider, &issued, &mut access).await
    }

    /// How the provider's login for `image`'s registry is named once refused for good, and
    /// what to check then.
    pub fn refusal(&self, image: &Reference) -> Refusal {
        let host = self
            .provider(image)
            .map_or_else(|| image.registry().to_owned(), |(host, _)| host);
        self.registry.credentials().refusal(&host)
    }

    /// Which login docker holds for `image`'s registry from ecrcp: the serial of its token,
    /// `None` when it is docker's own (or the registry's provider has no logins).
    pub async fn docker_login_serial(&self, image: &Reference) -> Option<u64> {
        let (host, _) = self.provider(image)?;
        match self.docker_access.lock().await.get(&host)? {
            DockerAccess::LoggedIn(serial) => Some(*serial),
            DockerAccess::Own => None,
        }
    }

    /// Logs docker in anew after `image`'s registry refused the login of token `rejected`
    /// (it expired): with the token another copy's renewal brought already, else with a
    /// new one. Only ecrcp's own logins are renewed: docker's own (a credential helper)
    /// is the user's to keep.
    pub async fn renew_docker_login(
        &self,
        image: &Reference,
        settings: &JobSettings,
        rejected: u64,
    ) -> anyhow::Result<()> {
        let Some((host, provider)) = self.provider(image) else {
            return Ok(());
        };
        let mut access = self.docker_access.lock().await;
        if let Some(DockerAccess::LoggedIn(serial)) = access.get(&host) {
            if *serial != rejected {
                return Ok(());
            }
        }
        tracing::warn!(registry = %host, "the registry refused docker's login (the token expired); logging in with a new token");
        let login = provider
            .login(&host, settings, Some(rejected))
            .await
            .with_context(|| format!("cannot log in to '{host}' again"))?;
        let Some(Login { issued, .. }) = login else {
            return Ok(());
        };
        self.log_docker_in(&host, provider, &issued, &mut access).await
    }

    /// `docker login` with `issued`, as `provider` has docker take it, remembered in `access`.
    async fn log_docker_in(
        &self,
        host: &str,
        provider: &dyn Provider,
        issued: &Issued,
        access: &mut HashMap<String, DockerAccess>,
    ) -> anyhow::Result<()> {
        let credentials = provider.docker_login(&issued.credentials);
        let login = DockerCommand::login(host, &credentials.username, credentials.password);
        if let Err(docker) = self.docker.run(&login).await {
            let error = match self.registry.credentials().docker_helper(host) {
                Some(helper) => anyhow::Error::new(HelperLoginFailed {
                    docker,
                    host: host.to_owned(),
                    helper,
                }),
                None => anyhow::Error::new(docker),
            };
            return Err(error.context(format!("cannot log docker in to '{host}'")));
        }
        tracing::info!(registry = %host, "docker logged in");
        access.insert(host.to_owned(), DockerAccess::LoggedIn(issued.serial));
        Ok(())
    }

    /// Whether docker's config holds a login for `image`'s registry (from a credential
    /// helper, or stored) that the registry accepts, asked with a HEAD on `image`.
    async fn docker_has_login(&self, image: &Reference) -> bool {
        let host = image.registry();
        let Some(credentials) = self.registry.credentials().docker_credentials(host).await else {
            return false;
        };
        let probe = self.registry.sharing(CredentialStore::with_config_dir(None));
        probe.credentials().insert(host, credentials);
        match probe.head_manifest(image).await {
            Ok(_) => true,
            Err(error) => {
                tracing::debug!(registry = host, %error, "docker's own login for the registry does not work");
                false
            }
        }
    }
}
