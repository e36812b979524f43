//! Registry logins for one run: hands ECR tokens to ecrcp's own registry client (for HEAD
//! requests) and logs the docker CLI in (for pulls and pushes). Remembers what it did so a
//! run logs in once per registry. Emits events; never prints.

use std::collections::HashMap;

use anyhow::{anyhow, Context as _};

use crate::docker::{DockerCommand, DockerRunner};
use crate::ecr::Ecr;
use crate::reference::EcrHost;
use crate::registry::credentials::Credentials;
use crate::registry::RegistryClient;
use crate::secret::Secret;

/// The logins of one run. Safe to share between concurrent copies.
pub struct Logins<'a> {
    docker: &'a dyn DockerRunner,
    registry: &'a RegistryClient,
    /// The password each registry host was `docker login`-ed with in this run.
    docker_passwords: tokio::sync::Mutex<HashMap<String, Secret>>,
}

impl<'a> Logins<'a> {
    pub fn new(docker: &'a dyn DockerRunner, registry: &'a RegistryClient) -> Self {
        Logins {
            docker,
            registry,
            docker_passwords: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Hands the ECR token to the registry client, for HEAD requests on the destination.
    pub async fn registry_credentials(&self, host: &EcrHost, ecr: Option<&Ecr>) -> anyhow::Result<()> {
        let ecr = ecr.ok_or_else(|| anyhow!("'{}' is an ECR registry, but ECR is not set up", host.host))?;
        let authorization = ecr
            .authorization(&host.region)
            .await
            .with_context(|| format!("cannot log in to '{}'", host.host))?;
        self.registry.credentials().insert(
            &host.host,
            Credentials {
                username: authorization.username,
                password: authorization.password,
            },
        );
        Ok(())
    }

    /// `docker login` to an ECR registry: once per run, and again only when ECR handed out
    /// a new token.
    pub async fn docker_login(&self, host: &EcrHost, ecr: Option<&Ecr>) -> anyhow::Result<()> {
        let ecr = ecr.ok_or_else(|| anyhow!("'{}' is an ECR registry, but ECR is not set up", host.host))?;
        let authorization = ecr.authorization(&host.region).await?;
        let mut logged_in = self.docker_passwords.lock().await;
        if logged_in.get(&host.host) == Some(&authorization.password) {
            return Ok(());
        }
        let login = DockerCommand::login(
            &host.host,
            &authorization.username,
            authorization.password.clone(),
        );
        self.docker
            .run(&login)
            .await
            .with_context(|| format!("cannot log docker in to '{}'", host.host))?;
        tracing::info!(registry = %host.host, "docker logged in");
        logged_in.insert(host.host.clone(), authorization.password);
        Ok(())
    }
}
