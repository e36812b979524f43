//! The second half of a copy, once `check` decided it runs: pull and tag (taking turns per
//! local image name), create the ECR repository, push and verify (taking turns per
//! repository), roll back what a failed copy created, and record the result.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};

use super::local::LocalImage;
use super::{Copier, Outcome};
use crate::decide::Why;
use crate::docker::{self, DockerCommand, DockerError, DockerOutput};
use crate::ecr::Ecr;
use crate::plan::CopyJob;
use crate::reference::{EcrHost, Reference};

/// How often, and how far apart, a docker pull or push that failed for a passing reason is
/// tried again.
const DOCKER_ATTEMPTS: u32 = 3;
const DOCKER_RETRY_DELAY: Duration = Duration::from_secs(1);

impl Copier<'_> {
    /// Pulls, pushes and verifies; on success, records the pair in the ledger.
    pub(super) async fn transfer(
        &self,
        job: &CopyJob,
        destination: &Reference,
        ecr: Option<&Ecr>,
        source_digest: Option<&str>,
        why: Why,
    ) -> anyhow::Result<Outcome> {
        self.pull_and_tag(job, destination, ecr).await?;
        let published = self.publish(job, destination, ecr).await;
        if let Err(error) = self.docker(&DockerCommand::untag(destination)).await {
            tracing::warn!(image = %destination, %error, "cannot remove the temporary local tag");
        }
        let (outcome, image) = published?;
        // The ledger links the digest seen by HEAD only if docker pulled that very digest;
        // if the tag moved in between, the next `-u` re-checks instead.
        let pulled = source_digest.filter(|digest| image.has_digest(digest));
        let outcome = match outcome {
            Outcome::Copied { digest, .. } => Outcome::Copied { digest, why },
            other => other,
        };
        if let (Some(source_digest), Outcome::Copied { digest, .. } | Outcome::AlreadyThere { digest }) =
            (pulled, &outcome)
        {
            if let Some(image_id) = self.image_id(job, destination, &image).await {
                self.remember(job, destination, source_digest, digest, image_id);
            }
        }
        Ok(outcome)
    }

    /// The config digest of the image just pushed: docker's `.Id` in its classic store; with
    /// the containerd store, what the destination serves (read from the registry, which costs
    /// no Docker Hub pull). `None` when it cannot be read: the next `-u` re-checks.
    async fn image_id(&self, job: &CopyJob, destination: &Reference, image: &LocalImage) -> Option<String> {
        if let Some(config) = image.config() {
            return Some(config.to_owned());
        }
        let platform = self.platform(job).await.ok()?;
        match self.registry.config_digest(destination, &platform).await {
            Ok(config) => config,
            Err(error) => {
                tracing::warn!(image = %destination, %error, "cannot read the image ID; the next -u checks again");
                None
            }
        }
    }

    /// Pulls the source and tags it as the destination. Docker keeps one local image per
    /// name, so jobs that pull one name (for different platforms, say) take turns from the
    /// pull to the tag; otherwise one could tag the image the other just pulled.
    async fn pull_and_tag(
        &self,
        job: &CopyJob,
        destination: &Reference,
        ecr: Option<&Ecr>,
    ) -> anyhow::Result<()> {
        // Pulled as named, not by the digest just seen: docker keeps one local image per
        // `name@digest`, so pulling an index digest for a second platform would fail.
        let source = &job.source;
        self.logins.docker_login(source, ecr).await?;
        let pull = DockerCommand::pull(source, job.settings.platform.as_deref(), self.options.progress);
        let _turn = self.local_names.take(&docker::local_name(source)).await;
        let spent = source.is_docker_hub().then_some(&self.hub_pulls);
        self.docker_retrying(&pull, spent)
            .await
            .with_context(|| format!("cannot pull '{}'", source.familiar()))?;
        self.docker(&DockerCommand::tag(source, destination))
            .await
            .with_context(|| format!("cannot tag the image as '{destination}'"))?;
        Ok(())
    }

    /// Makes sure the ECR repository exists, pushes and verifies; removes the repository
    /// again if it was created for this copy and the copy failed. Jobs that push into one
    /// repository take turns from the creation to the rollback, so that a rollback never
    /// deletes a repository another job of the run is pushing into.
    async fn publish(
        &self,
        job: &CopyJob,
        destination: &Reference,
        ecr: Option<&Ecr>,
    ) -> anyhow::Result<(Outcome, LocalImage)> {
        let repository = format!("{}/{}", destination.registry(), destination.repository());
        let _turn = self.repositories.take(&repository).await;
        let ecr_target = EcrHost::parse(destination.registry()).zip(ecr);
        let created = match ecr_target {
            Some((ref host, ecr)) => ecr
                .ensure_repository(host, destination.repository(), &job.settings.repository)
                .await
                .with_context(|| format!("cannot create repository '{}'", destination.repository()))?,
            None => false,
        };
        let pushed = self.push(job, destination, ecr).await;
        if let (Err(_), true, Some((host, ecr))) = (&pushed, created, &ecr_target) {
            ecr.delete_empty_repository(host, destination.repository()).await;
        }
        pushed
    }

    /// Pushes the destination tag and verifies what the registry then serves.
    async fn push(
        &self,
        job: &CopyJob,
        destination: &Reference,
        ecr: Option<&Ecr>,
    ) -> anyhow::Result<(Outcome, LocalImage)> {
        self.logins.docker_login(destination, ecr).await?;
        let pushed = self
            .docker_retrying(&DockerCommand::push(destination, self.options.progress), None)
            .await;
        let image = self.inspect(destination).await?;
        match pushed {
            Ok(_) => {
                let digest = self.verify(job, destination, &image).await?;
                Ok((
                    Outcome::Copied {
                        digest,
                        why: Why::Requested,
                    },
                    image,
                ))
            }
            Err(error) => match self.verify(job, destination, &image).await {
                // Refused, yet the tag serves this image: an immutable tag pushed again.
                Ok(digest) => Ok((Outcome::AlreadyThere { digest }, image)),
                Err(_) if error.to_string().contains("immutable") => Err(anyhow!(
                    "'{destination}' is an immutable tag that holds a different image; choose another tag"
                )),
                Err(_) => Err(anyhow::Error::new(error).context(format!("cannot push '{destination}'"))),
            },
        }
    }

    /// Checks that `destination` now serves the image docker holds locally, and returns the
    /// digest it serves.
    async fn verify(
        &self,
        job: &CopyJob,
        destination: &Reference,
        image: &LocalImage,
    ) -> anyhow::Result<String> {
        let head = self
            .registry
            .head_manifest(destination)
            .await
            .with_context(|| format!("cannot verify '{destination}'"))?
            .ok_or_else(|| anyhow!("'{destination}' is missing right after the push"))?;
        if image.has_digest(&head.digest) {
            return Ok(head.digest);
        }
        let platform = self.platform(job).await?;
        let served = self
            .registry
            .config_digest(destination, &platform)
            .await
            .with_context(|| format!("cannot verify '{destination}'"))?;
        let expected = match image.config() {
            Some(config) => Some(config.to_owned()),
            // The containerd store pushed one platform's manifest out of the local index
            // and knows no config digest: the source's manifest says which config it is.
            None => self.source_config(job, &platform).await?,
        };
        if served.is_some() && served == expected {
            Ok(head.digest)
        } else {
            bail!(
                "'{destination}' serves {} after the push, which is not the image pushed; did another push race this one?",
                head.digest
            )
        }
    }

    /// Runs a pull or push, again after a failure that may pass (a dropped connection, a
    /// registry's 5xx), never after one that will not (a quota, a refusal). Each attempt
    /// that docker ran, unless the registry refused it for its rate limit, counts in `spent`:
    /// docker may have read the manifest before it failed.
    async fn docker_retrying(
        &self,
        command: &DockerCommand,
        spent: Option<&AtomicU64>,
    ) -> Result<DockerOutput, DockerError> {
        let mut attempt = 1;
        loop {
            let result = self.docker(command).await;
            if let (Some(spent), Ok(_) | Err(DockerError::Failed { .. })) = (spent, &result) {
                spent.fetch_add(1, Ordering::SeqCst);
            }
            match result {
                Err(error) if error.is_transient() && attempt < DOCKER_ATTEMPTS => {
                    tracing::warn!(argv = ?command.args(), %error, attempt, "docker failed; trying again");
                    tokio::time::sleep(DOCKER_RETRY_DELAY * 2_u32.pow(attempt - 1)).await;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }
}
