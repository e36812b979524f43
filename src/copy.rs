//! One copy, step by step: decide from HEAD requests whether it is needed, pull the source,
//! make sure the ECR repository exists, log in, tag, push, verify what the destination now
//! serves, and clean up. Emits events; never prints.

use std::collections::HashSet;
use std::sync::Mutex;

use anyhow::{anyhow, bail, Context as _};

use crate::decide::{self, Facts, Verdict};
use crate::docker::{DockerCommand, DockerError, DockerRunner};
use crate::ecr::Ecr;
use crate::ledger::{Ledger, Record};
use crate::plan::{CopyJob, CopyOptions};
use crate::reference::{EcrHost, Reference};
use crate::registry::credentials::Credentials;
use crate::registry::{RegistryClient, RegistryError};

/// How one copy ended, when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The destination now serves the source's image, under this manifest digest.
    Copied { digest: String },
    /// The push was refused (an immutable tag), but the tag already holds this very image.
    AlreadyThere { digest: String },
    /// Nothing was done, for this reason.
    Skipped(Skip),
    /// `--dry-run`: this copy would run.
    WouldCopy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// `-n` and the destination tag exists.
    Exists,
    /// `-u` and the destination holds what the source holds.
    Unchanged,
    /// `-i` and the user said no.
    Declined,
}

/// Asks the user whether to overwrite (`-i`). The terminal implementation lives in `ui`.
pub trait Confirm: Send + Sync {
    fn overwrite(&self, destination: &Reference) -> bool;
}

/// What the local docker knows of the image just pushed.
struct LocalImage {
    id: String,
    repo_digests: Vec<String>,
}

impl LocalImage {
    /// Whether docker saw this image under `digest`, in any repository.
    fn has_digest(&self, digest: &str) -> bool {
        let suffix = format!("@{digest}");
        self.repo_digests.iter().any(|known| known.ends_with(&suffix))
    }
}

/// Runs copies with the boundaries it is given; holds the per-run state (logins, ledger).
pub struct Copier<'a> {
    docker: &'a dyn DockerRunner,
    registry: &'a RegistryClient,
    ecr: Option<&'a Ecr>,
    options: &'a CopyOptions,
    confirm: &'a dyn Confirm,
    ledger: Mutex<Ledger>,
    docker_logins: tokio::sync::Mutex<HashSet<String>>,
    daemon_platform: tokio::sync::OnceCell<String>,
}

impl<'a> Copier<'a> {
    pub fn new(
        docker: &'a dyn DockerRunner,
        registry: &'a RegistryClient,
        ecr: Option<&'a Ecr>,
        options: &'a CopyOptions,
        confirm: &'a dyn Confirm,
        ledger: Ledger,
    ) -> Self {
        Copier {
            docker,
            registry,
            ecr,
            options,
            confirm,
            ledger: Mutex::new(ledger),
            docker_logins: tokio::sync::Mutex::new(HashSet::new()),
            daemon_platform: tokio::sync::OnceCell::new(),
        }
    }

    /// Copies `job.source` to `destination` (already resolved), or decides not to.
    pub async fn copy(&self, job: &CopyJob, destination: &Reference) -> anyhow::Result<Outcome> {
        let ecr_host = EcrHost::parse(destination.registry());
        if let Some(host) = &ecr_host {
            self.registry_credentials(host).await?;
        }
        let source_digest = self.source_digest(&job.source).await?;
        // Asked before anything is pulled, so a destination that cannot take the copy costs
        // no pull from the source's quota.
        let existing = self.destination_digest(destination).await?;
        if let Some(skip) = self
            .skip_reason(job, destination, source_digest.as_deref(), existing.as_deref())
            .await?
        {
            return Ok(Outcome::Skipped(skip));
        }
        if let (Some(source), Some(existing)) = (&source_digest, &existing) {
            if source == existing {
                return Ok(Outcome::AlreadyThere {
                    digest: existing.clone(),
                });
            }
        }
        if self.options.dry_run {
            return Ok(Outcome::WouldCopy);
        }
        self.transfer(job, destination, source_digest, ecr_host.as_ref())
            .await
    }

    /// The digest the destination tag holds now, or `None` when it is missing. With `-n`,
    /// `-u` or `-i` the answer decides the copy, so any error fails it; otherwise only errors
    /// that the push would meet too (no route, no login) fail it.
    async fn destination_digest(&self, destination: &Reference) -> anyhow::Result<Option<String>> {
        let overwrite = self.options.overwrite;
        let strict = overwrite.no_clobber || overwrite.update || overwrite.interactive;
        match self.registry.head_manifest(destination).await {
            Ok(head) => Ok(head.map(|head| head.digest)),
            Err(error) if strict || self.push_would_fail(destination, &error).await => {
                Err(error).with_context(|| format!("cannot check '{destination}'"))
            }
            Err(error) => {
                tracing::warn!(destination = %destination, %error, "cannot check the destination; copying anyway");
                Ok(None)
            }
        }
    }

    async fn push_would_fail(&self, destination: &Reference, error: &RegistryError) -> bool {
        match error {
            RegistryError::Connect { .. } => true,
            RegistryError::Unauthorized { .. } => self
                .registry
                .credentials()
                .lookup(destination.registry())
                .await
                .is_none(),
            _ => false,
        }
    }

    /// The digest the source names now, from a HEAD request, which Docker Hub does not count
    /// as a pull. `None` when the registry cannot be asked directly but docker may still
    /// pull (say, a credential setup ecrcp does not read); `-u` needs the digest and fails.
    async fn source_digest(&self, source: &Reference) -> anyhow::Result<Option<String>> {
        match self.registry.head_manifest(source).await {
            Ok(Some(head)) => {
                if let Some(limit) = head.rate_limit {
                    tracing::info!(image = %source, remaining = limit.remaining, limit = limit.limit, "registry pull allowance");
                }
                Ok(Some(head.digest))
            }
            Ok(None) => bail!(
                "'{}' does not exist: check the repository name and tag",
                source.familiar()
            ),
            Err(error) if self.options.overwrite.update => {
                Err(error).with_context(|| format!("cannot look up '{}'", source.familiar()))
            }
            Err(error) => {
                tracing::warn!(image = %source, %error, "cannot look up the source digest; letting docker pull by tag");
                Ok(None)
            }
        }
    }

    async fn skip_reason(
        &self,
        job: &CopyJob,
        destination: &Reference,
        source_digest: Option<&str>,
        existing: Option<&str>,
    ) -> anyhow::Result<Option<Skip>> {
        let overwrite = self.options.overwrite;
        let Some(existing) = existing else { return Ok(None) };
        if overwrite.no_clobber {
            return Ok(Some(Skip::Exists));
        }
        if overwrite.update {
            let source_digest = source_digest.expect("-u fails earlier without a source digest");
            let record = self
                .ledger
                .lock()
                .expect("ledger poisoned")
                .get(&destination.to_string())
                .cloned();
            let verdict = decide::update(Facts {
                destination: Some(existing),
                source: source_digest,
                record: record.as_ref(),
                platform: self.platform_label(),
            });
            tracing::debug!(image = %job.source, destination = %destination, ?verdict, "update decision");
            let unchanged = match verdict {
                Verdict::Unchanged(_) => true,
                Verdict::Copy(_) => false,
                Verdict::CompareConfigs => self.same_image(job, destination, source_digest, existing).await?,
            };
            if unchanged {
                return Ok(Some(Skip::Unchanged));
            }
        }
        if overwrite.interactive && !self.options.dry_run && !self.confirm.overwrite(destination) {
            return Ok(Some(Skip::Declined));
        }
        Ok(None)
    }

    /// Compares image configs (image IDs) of source and destination. Costs a manifest GET
    /// on each side; on success the ledger learns the pair, so the next run needs HEADs only.
    async fn same_image(
        &self,
        job: &CopyJob,
        destination: &Reference,
        source_digest: &str,
        destination_digest: &str,
    ) -> anyhow::Result<bool> {
        let platform = self.platform().await?;
        let source = self
            .registry
            .config_digest(&job.source, &platform)
            .await
            .with_context(|| format!("cannot read '{}'", job.source.familiar()))?;
        let target = self
            .registry
            .config_digest(destination, &platform)
            .await
            .with_context(|| format!("cannot read '{destination}'"))?;
        let same = source.is_some() && source == target;
        if same {
            self.remember(
                job,
                destination,
                source_digest,
                destination_digest,
                source.unwrap_or_default(),
            );
        }
        Ok(same)
    }

    async fn transfer(
        &self,
        job: &CopyJob,
        destination: &Reference,
        source_digest: Option<String>,
        ecr_host: Option<&EcrHost>,
    ) -> anyhow::Result<Outcome> {
        // Pulled as named, not by the digest just seen: docker keeps one local image per
        // `name@digest`, so pulling an index digest for a second platform would fail.
        let source = &job.source;
        self.docker(&DockerCommand::pull(
            source,
            self.options.platform.as_deref(),
            self.options.progress,
        ))
        .await
        .with_context(|| format!("cannot pull '{}'", source.familiar()))?;
        let created = match (ecr_host, self.ecr) {
            (Some(host), Some(ecr)) => ecr
                .ensure_repository(&host.region, destination.repository(), &self.options.repository)
                .await
                .with_context(|| format!("cannot create repository '{}'", destination.repository()))?,
            _ => false,
        };
        let pushed = self.push(source, destination, ecr_host).await;
        if let (Err(_), true, Some(host), Some(ecr)) = (&pushed, created, ecr_host, self.ecr) {
            ecr.delete_empty_repository(&host.region, destination.repository())
                .await;
        }
        let (outcome, image) = pushed?;
        // The ledger links the digest seen by HEAD only if docker pulled that very digest;
        // if the tag moved in between, the next `-u` re-checks instead.
        let pulled = source_digest.filter(|digest| image.has_digest(digest));
        if let (Some(source_digest), Outcome::Copied { digest } | Outcome::AlreadyThere { digest }) =
            (&pulled, &outcome)
        {
            self.remember(job, destination, source_digest, digest, image.id);
        }
        Ok(outcome)
    }

    /// Tags, pushes and verifies; the local destination tag is removed whatever happens.
    async fn push(
        &self,
        source: &Reference,
        destination: &Reference,
        ecr_host: Option<&EcrHost>,
    ) -> anyhow::Result<(Outcome, LocalImage)> {
        if let Some(host) = ecr_host {
            self.docker_login(host).await?;
        }
        self.docker(&DockerCommand::tag(source, destination))
            .await
            .with_context(|| format!("cannot tag the image as '{destination}'"))?;
        let pushed = self
            .docker(&DockerCommand::push(destination, self.options.progress))
            .await;
        let image = self.inspect(destination).await;
        if let Err(error) = self.docker(&DockerCommand::untag(destination)).await {
            tracing::warn!(image = %destination, %error, "cannot remove the temporary local tag");
        }
        let image = image?;
        match pushed {
            Ok(_) => {
                let digest = self.verify(destination, &image).await?;
                Ok((Outcome::Copied { digest }, image))
            }
            Err(error) => match self.verify(destination, &image).await {
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
    async fn verify(&self, destination: &Reference, image: &LocalImage) -> anyhow::Result<String> {
        let head = self
            .registry
            .head_manifest(destination)
            .await
            .with_context(|| format!("cannot verify '{destination}'"))?
            .ok_or_else(|| anyhow!("'{destination}' is missing right after the push"))?;
        if image.has_digest(&head.digest) {
            return Ok(head.digest);
        }
        let platform = self.platform().await?;
        let config = self
            .registry
            .config_digest(destination, &platform)
            .await
            .with_context(|| format!("cannot verify '{destination}'"))?;
        if config.as_deref() == Some(image.id.as_str()) {
            Ok(head.digest)
        } else {
            bail!("'{destination}' serves {} after the push, which is not the image pushed; did another push race this one?", head.digest)
        }
    }

    async fn inspect(&self, image: &Reference) -> anyhow::Result<LocalImage> {
        let id = self
            .docker(&DockerCommand::image_id(image))
            .await?
            .stdout
            .trim()
            .to_owned();
        let repo_digests = self
            .docker(&DockerCommand::repo_digests(image))
            .await?
            .stdout
            .lines()
            .map(str::to_owned)
            .collect();
        Ok(LocalImage { id, repo_digests })
    }

    fn remember(
        &self,
        job: &CopyJob,
        destination: &Reference,
        source_digest: &str,
        destination_digest: &str,
        image_id: String,
    ) {
        let record = Record {
            source: job.source.to_string(),
            platform: self.platform_label().to_owned(),
            source_digest: source_digest.to_owned(),
            destination_digest: destination_digest.to_owned(),
            image_id,
        };
        self.ledger
            .lock()
            .expect("ledger poisoned")
            .record(&destination.to_string(), record);
    }

    /// The platform as the ledger records it: as asked, or "default".
    fn platform_label(&self) -> &str {
        self.options.platform.as_deref().unwrap_or("default")
    }

    /// The platform that `docker pull` will fetch: as asked, or the daemon's own.
    async fn platform(&self) -> anyhow::Result<String> {
        if let Some(platform) = &self.options.platform {
            return Ok(platform.clone());
        }
        let platform = self
            .daemon_platform
            .get_or_try_init(|| async {
                let output = self.docker(&DockerCommand::server_platform()).await?;
                Ok::<_, DockerError>(output.stdout.trim().to_owned())
            })
            .await?;
        Ok(platform.clone())
    }

    /// Hands the ECR token to the registry client, for HEAD requests on the destination.
    async fn registry_credentials(&self, host: &EcrHost) -> anyhow::Result<()> {
        let ecr = self
            .ecr
            .ok_or_else(|| anyhow!("'{}' is an ECR registry, but ECR is not set up", host.host))?;
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

    /// `docker login` to an ECR registry, once per run.
    async fn docker_login(&self, host: &EcrHost) -> anyhow::Result<()> {
        let mut logged_in = self.docker_logins.lock().await;
        if logged_in.contains(&host.host) {
            return Ok(());
        }
        let ecr = self
            .ecr
            .ok_or_else(|| anyhow!("'{}' is an ECR registry, but ECR is not set up", host.host))?;
        let authorization = ecr.authorization(&host.region).await?;
        self.docker(&DockerCommand::login(
            &host.host,
            &authorization.username,
            authorization.password,
        ))
        .await
        .with_context(|| format!("cannot log docker in to '{}'", host.host))?;
        tracing::info!(registry = %host.host, "docker logged in");
        logged_in.insert(host.host.clone());
        Ok(())
    }

    async fn docker(&self, command: &DockerCommand) -> Result<crate::docker::DockerOutput, DockerError> {
        self.docker.run(command).await
    }
}
