//! Registry logins for one run, for ECR registries (sources and destinations): hands ECR
//! tokens to ecrcp's own registry client (for HEAD requests), and makes sure the docker CLI
//! can pull and push. docker keeps the user's own way in when its config has one that the
//! registry accepts (amazon-ecr-credential-helper, or a stored login); only otherwise is it
//! `docker login`-ed, so a user's login is never replaced with a 12-hour token without need.
//! Decides once per registry and run. When an ECR registry refuses the token that worked
//! (it expired), both get one new token, and docker one new login. Emits events; never
//! prints.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::{anyhow, Context as _};

use crate::docker::{DockerCommand, DockerError, DockerRunner};
use crate::ecr::{Authorization, Ecr, TokenRenewer};
use crate::reference::{EcrHost, Reference};
use crate::registry::credentials::{CredentialStore, Credentials, Issued, Renew};
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

/// An ECR registry refused docker's login with the token ecrcp had just fetched anew
/// because it refused the one before: a new token is not what is missing.
#[derive(Debug, thiserror::Error)]
#[error("registry '{host}' refused docker's login again right after ecrcp fetched a new ECR authorization token\nnote: check this machine's clock (ECR tokens are signed with a time), that the IAM policy allows ecr:GetAuthorizationToken and the pull and push actions on the repository (docs/iam.md), and that '{host}' is the registry meant")]
pub struct LoginRefusedAgain {
    pub host: String,
}

/// How docker reaches one registry in this run.
enum DockerAccess {
    /// Through docker's own config: a credential helper or a stored login.
    Own,
    /// Through the `docker login` ecrcp ran, with the token of this serial.
    LoggedIn(u64),
}

impl Renew for TokenRenewer {
    fn renew(&self, rejected: u64) -> Pin<Box<dyn Future<Output = Result<Issued, String>> + Send + '_>> {
        Box::pin(async move {
            TokenRenewer::renew(self, rejected)
                .await
                .map(issued)
                .map_err(|error| error.to_string())
        })
    }
}

fn issued(authorization: Authorization) -> Issued {
    Issued {
        credentials: Credentials {
            username: authorization.username,
            password: authorization.password,
        },
        serial: authorization.serial,
    }
}

/// The logins of one run. Safe to share between concurrent copies.
pub struct Logins<'a> {
    docker: &'a dyn DockerRunner,
    registry: &'a RegistryClient,
    docker_access: tokio::sync::Mutex<HashMap<String, DockerAccess>>,
}

impl<'a> Logins<'a> {
    pub fn new(docker: &'a dyn DockerRunner, registry: &'a RegistryClient) -> Self {
        Logins {
            docker,
            registry,
            docker_access: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Hands the ECR token for `image`'s registry to the registry client, for HEAD requests.
    /// Nothing to do for other registries.
    pub async fn registry_credentials(&self, image: &Reference, ecr: Option<&Ecr>) -> anyhow::Result<()> {
        let Some(host) = EcrHost::parse(image.registry()) else {
            return Ok(());
        };
        let ecr = ecr_for(&host, ecr)?;
        let authorization = ecr
            .authorization(&host)
            .await
            .with_context(|| format!("cannot log in to '{}'", host.host))?;
        self.registry.credentials().insert_renewable(
            &host.host,
            issued(authorization),
            Arc::new(ecr.renewer(&host).await),
        );
        Ok(())
    }

    /// Makes sure docker may pull or push `image`, when it is in an ECR registry: with
    /// docker's own login if the registry accepts it, else by `docker login` (once per run,
    /// and again only when ECR handed out a new token).
    pub async fn docker_login(&self, image: &Reference, ecr: Option<&Ecr>) -> anyhow::Result<()> {
        let Some(host) = EcrHost::parse(image.registry()) else {
            return Ok(());
        };
        let authorization = ecr_for(&host, ecr)?.authorization(&host).await?;
        let mut access = self.docker_access.lock().await;
        match access.get(&host.host) {
            Some(DockerAccess::Own) => return Ok(()),
            Some(DockerAccess::LoggedIn(serial)) if *serial == authorization.serial => return Ok(()),
            None if self.docker_has_login(image).await => {
                tracing::info!(registry = %host.host, "docker's own login for the registry works; not logging in");
                access.insert(host.host, DockerAccess::Own);
                return Ok(());
            }
            // A new token, or no login of docker's own that works.
            Some(DockerAccess::LoggedIn(_)) | None => {}
        }
        self.log_docker_in(&host, &authorization, &mut access).await
    }

    /// Which login docker holds for `image`'s registry from ecrcp: the serial of its token,
    /// `None` when it is docker's own (or the registry is no ECR registry).
    pub async fn docker_login_serial(&self, image: &Reference) -> Option<u64> {
        let host = EcrHost::parse(image.registry())?;
        match self.docker_access.lock().await.get(&host.host)? {
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
        ecr: Option<&Ecr>,
        rejected: u64,
    ) -> anyhow::Result<()> {
        let Some(host) = EcrHost::parse(image.registry()) else {
            return Ok(());
        };
        let ecr = ecr_for(&host, ecr)?;
        let mut access = self.docker_access.lock().await;
        if let Some(DockerAccess::LoggedIn(serial)) = access.get(&host.host) {
            if *serial != rejected {
                return Ok(());
            }
        }
        tracing::warn!(registry = %host.host, "the registry refused docker's ECR login (the token expired); logging in with a new token");
        let authorization = ecr
            .renew(&host, rejected)
            .await
            .with_context(|| format!("cannot log in to '{}' again", host.host))?;
        self.log_docker_in(&host, &authorization, &mut access).await
    }

    /// `docker login` with `authorization`, remembered in `access`.
    async fn log_docker_in(
        &self,
        host: &EcrHost,
        authorization: &Authorization,
        access: &mut HashMap<String, DockerAccess>,
    ) -> anyhow::Result<()> {
        let login = DockerCommand::login(
            &host.host,
            &authorization.username,
            authorization.password.clone(),
        );
        if let Err(docker) = self.docker.run(&login).await {
            let error = match self.registry.credentials().docker_helper(&host.host) {
                Some(helper) => anyhow::Error::new(HelperLoginFailed {
                    docker,
                    host: host.host.clone(),
                    helper,
                }),
                None => anyhow::Error::new(docker),
            };
            return Err(error.context(format!("cannot log docker in to '{}'", host.host)));
        }
        tracing::info!(registry = %host.host, "docker logged in");
        access.insert(host.host.clone(), DockerAccess::LoggedIn(authorization.serial));
        Ok(())
    }

    /// Whether docker's config holds a login for `image`'s registry (from a credential
    /// helper, or stored) that the registry accepts, asked with a HEAD on `image`.
    async fn docker_has_login(&self, image: &Reference) -> bool {
        let host = image.registry();
        let Some(credentials) = self.registry.credentials().docker_credentials(host).await else {
            return false;
        };
        let Ok(probe) = RegistryClient::new(CredentialStore::with_config_dir(None)) else {
            return false;
        };
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

fn ecr_for<'e>(host: &EcrHost, ecr: Option<&'e Ecr>) -> anyhow::Result<&'e Ecr> {
    ecr.ok_or_else(|| anyhow!("'{}' is an ECR registry, but ECR is not set up", host.host))
}
