//! One copy, in two steps. `check` asks the registries with HEAD requests only: does the
//! source exist, what does the destination hold, is a copy needed. `finish` acts on that:
//! pull, make sure the ECR repository exists, log in, tag, push, verify what the destination
//! now serves, and clean up. Emits events; never prints.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};

use crate::decide::{self, Facts, Verdict, Why};
use crate::docker::{DockerCommand, DockerError, DockerOutput, DockerRunner};
use crate::ecr::Ecr;
use crate::ledger::{Ledger, Record};
use crate::login::Logins;
use crate::plan::{CopyJob, CopyOptions};
use crate::reference::{EcrHost, Reference};
use crate::registry::{RateLimit, RegistryClient, RegistryError};

/// How one copy ended, when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The destination now serves the source's image, under this manifest digest.
    Copied { digest: String, why: Why },
    /// The destination already served this very image (same digest, or a push refused by
    /// an immutable tag that holds it).
    AlreadyThere { digest: String },
    /// Nothing was done, for this reason.
    Skipped(Skip),
    /// `--dry-run`: this copy would run, for this reason.
    WouldCopy(Why),
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

/// What the HEAD requests said, and what follows from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub source_digest: Option<String>,
    /// The digest the destination tag holds, if it exists.
    pub existing: Option<String>,
    /// The source registry's pull allowance, when it reports one (Docker Hub).
    pub rate_limit: Option<RateLimit>,
    pub next: Next,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Decided already: nothing to do.
    Skip(Skip),
    /// The destination serves the same manifest digest.
    AlreadyThere,
    /// `-u` with a destination of unknown origin: compare image configs (manifest GETs).
    Compare,
    /// Copy it.
    Copy(Why),
}

impl Check {
    /// The most pulls (on Docker Hub's count) finishing may take from the source: a config
    /// comparison reads the source's manifest, and a copy pulls it, so comparing and then
    /// copying takes two.
    pub fn source_pulls(&self) -> u64 {
        match self.next {
            Next::Compare => 2,
            Next::Copy(_) => 1,
            Next::Skip(_) | Next::AlreadyThere => 0,
        }
    }
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

/// One async mutex per key, made on first use, so that the jobs of a run that touch the
/// same thing take turns while the others run on.
#[derive(Default)]
struct Turns(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl Turns {
    async fn take(&self, key: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let turn = Arc::clone(
            self.0
                .lock()
                .expect("turns poisoned")
                .entry(key.to_owned())
                .or_default(),
        );
        turn.lock_owned().await
    }
}

/// How often, and how far apart, a docker pull or push that failed for a passing reason is
/// tried again.
const DOCKER_ATTEMPTS: u32 = 3;
const DOCKER_RETRY_DELAY: Duration = Duration::from_secs(1);

/// Runs copies with the boundaries it is given; holds the per-run state (logins, ledger).
/// Safe to share between concurrent copies.
pub struct Copier<'a> {
    docker: &'a dyn DockerRunner,
    registry: &'a RegistryClient,
    options: CopyOptions,
    confirm: &'a dyn Confirm,
    ledger: Mutex<Ledger>,
    logins: Logins<'a>,
    daemon_platform: tokio::sync::OnceCell<String>,
    /// Turns per local image name, from pull to tag.
    local_names: Turns,
    /// Turns per destination repository, from its creation to a rollback.
    repositories: Turns,
    /// Docker Hub pulls spent so far: manifest reads and docker pulls of Docker Hub sources.
    hub_pulls: AtomicU64,
}

impl<'a> Copier<'a> {
    pub fn new(
        docker: &'a dyn DockerRunner,
        registry: &'a RegistryClient,
        options: CopyOptions,
        confirm: &'a dyn Confirm,
        ledger: Ledger,
    ) -> Self {
        Copier {
            docker,
            registry,
            options,
            confirm,
            ledger: Mutex::new(ledger),
            logins: Logins::new(docker, registry),
            daemon_platform: tokio::sync::OnceCell::new(),
            local_names: Turns::default(),
            repositories: Turns::default(),
            hub_pulls: AtomicU64::new(0),
        }
    }

    /// Docker Hub pulls the copies spent so far.
    pub fn hub_pulls_spent(&self) -> u64 {
        self.hub_pulls.load(Ordering::SeqCst)
    }

    /// Checks and finishes one copy. `ecr` serves ECR destinations.
    pub async fn copy(
        &self,
        job: &CopyJob,
        destination: &Reference,
        ecr: Option<&Ecr>,
    ) -> anyhow::Result<Outcome> {
        let check = self.check(job, destination, ecr).await?;
        self.finish(job, destination, ecr, &check).await
    }

    /// Everything that HEAD requests can tell about this copy. Costs no pull anywhere.
    pub async fn check(
        &self,
        job: &CopyJob,
        destination: &Reference,
        ecr: Option<&Ecr>,
    ) -> anyhow::Result<Check> {
        if let Some(host) = EcrHost::parse(destination.registry()) {
            self.logins.registry_credentials(&host, ecr).await?;
        }
        let (source_digest, rate_limit) = self.source_digest(&job.source).await?;
        // Asked before anything is pulled, so a destination that cannot take the copy costs
        // no pull from the source's quota.
        let existing = self.destination_digest(destination).await?;
        let next = self.next_step(job, destination, source_digest.as_deref(), existing.as_deref());
        tracing::debug!(image = %job.source, %destination, ?next, "checked");
        Ok(Check {
            source_digest,
            existing,
            rate_limit,
            next,
        })
    }

    fn next_step(
        &self,
        job: &CopyJob,
        destination: &Reference,
        source: Option<&str>,
        existing: Option<&str>,
    ) -> Next {
        let overwrite = self.options.overwrite;
        let Some(existing) = existing else {
            return Next::Copy(Why::DestinationMissing);
        };
        if overwrite.no_clobber {
            return Next::Skip(Skip::Exists);
        }
        if source == Some(existing) {
            return Next::AlreadyThere;
        }
        if !overwrite.update {
            return Next::Copy(Why::Requested);
        }
        let source = source.expect("-u fails earlier without a source digest");
        let record = self
            .ledger
            .lock()
            .expect("ledger poisoned")
            .get(&destination.to_string())
            .cloned();
        match decide::update(Facts {
            destination: Some(existing),
            source,
            record: record.as_ref(),
            platform: platform_label(job),
        }) {
            Verdict::Unchanged(_) => Next::Skip(Skip::Unchanged),
            Verdict::Copy(why) => Next::Copy(why),
            Verdict::CompareConfigs => Next::Compare,
        }
    }

    /// Acts on a check: compares, asks, pulls and pushes as needed.
    pub async fn finish(
        &self,
        job: &CopyJob,
        destination: &Reference,
        ecr: Option<&Ecr>,
        check: &Check,
    ) -> anyhow::Result<Outcome> {
        let why = match check.next {
            Next::Skip(skip) => return Ok(Outcome::Skipped(skip)),
            Next::AlreadyThere => {
                return Ok(Outcome::AlreadyThere {
                    digest: check.existing.clone().unwrap_or_default(),
                })
            }
            Next::Copy(why) => why,
            Next::Compare if self.options.dry_run && job.source.is_docker_hub() => {
                return Ok(Outcome::WouldCopy(Why::Unverified));
            }
            Next::Compare => {
                let source = check.source_digest.as_deref().unwrap_or_default();
                let existing = check.existing.as_deref().unwrap_or_default();
                if self.same_image(job, destination, source, existing).await? {
                    return Ok(Outcome::Skipped(Skip::Unchanged));
                }
                Why::Differs
            }
        };
        if self.options.overwrite.interactive
            && check.existing.is_some()
            && !self.options.dry_run
            && !self.confirm.overwrite(destination)
        {
            return Ok(Outcome::Skipped(Skip::Declined));
        }
        if self.options.dry_run {
            return Ok(Outcome::WouldCopy(why));
        }
        self.transfer(job, destination, ecr, check.source_digest.as_deref(), why)
            .await
    }

    /// The digest the destination tag holds now, or `None` when it is missing. With `-n`,
    /// `-u` or `-i` the answer decides the copy, so any error fails it; otherwise only errors
    /// that the push would meet too (no route, no login) fail it.
    async fn destination_digest(&self, destination: &Reference) -> anyhow::Result<Option<String>> {
        match self.registry.head_manifest(destination).await {
            Ok(head) => Ok(head.map(|head| head.digest)),
            Err(error)
                if self.options.overwrite.consults_destination()
                    || self.push_would_fail(destination, &error).await =>
            {
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
    async fn source_digest(&self, source: &Reference) -> anyhow::Result<(Option<String>, Option<RateLimit>)> {
        match self.registry.head_manifest(source).await {
            Ok(Some(head)) => Ok((Some(head.digest), head.rate_limit)),
            Ok(None) => bail!(
                "'{}' does not exist: check the repository name and tag",
                source.familiar()
            ),
            Err(error) if self.options.overwrite.update => {
                Err(error).with_context(|| format!("cannot look up '{}'", source.familiar()))
            }
            Err(error) => {
                tracing::warn!(image = %source, %error, "cannot look up the source digest; letting docker pull by tag");
                Ok((None, None))
            }
        }
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
        let platform = self.platform(job).await?;
        let source = self
            .registry
            .config_digest(&job.source, &platform)
            .await
            .with_context(|| format!("cannot read '{}'", job.source.familiar()))?;
        if job.source.is_docker_hub() {
            self.hub_pulls.fetch_add(1, Ordering::SeqCst);
        }
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
        ecr: Option<&Ecr>,
        source_digest: Option<&str>,
        why: Why,
    ) -> anyhow::Result<Outcome> {
        self.pull_and_tag(job, destination).await?;
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
            self.remember(job, destination, source_digest, digest, image.id);
        }
        Ok(outcome)
    }

    /// Pulls the source and tags it as the destination. Docker keeps one local image per
    /// name, so jobs that pull one name (for different platforms, say) take turns from the
    /// pull to the tag; otherwise one could tag the image the other just pulled.
    async fn pull_and_tag(&self, job: &CopyJob, destination: &Reference) -> anyhow::Result<()> {
        // Pulled as named, not by the digest just seen: docker keeps one local image per
        // `name@digest`, so pulling an index digest for a second platform would fail.
        let source = &job.source;
        let pull = DockerCommand::pull(source, job.settings.platform.as_deref(), self.options.progress);
        let local_name = pull.args().last().cloned().unwrap_or_default();
        let _turn = self.local_names.take(&local_name).await;
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
                .ensure_repository(&host.region, destination.repository(), &job.settings.repository)
                .await
                .with_context(|| format!("cannot create repository '{}'", destination.repository()))?,
            None => false,
        };
        let pushed = self.push(destination, ecr).await;
        if let (Err(_), true, Some((host, ecr))) = (&pushed, created, &ecr_target) {
            ecr.delete_empty_repository(&host.region, destination.repository())
                .await;
        }
        pushed
    }

    /// Pushes the destination tag and verifies what the registry then serves.
    async fn push(
        &self,
        destination: &Reference,
        ecr: Option<&Ecr>,
    ) -> anyhow::Result<(Outcome, LocalImage)> {
        if let Some(host) = EcrHost::parse(destination.registry()) {
            self.logins.docker_login(&host, ecr).await?;
        }
        let pushed = self
            .docker_retrying(&DockerCommand::push(destination, self.options.progress), None)
            .await;
        let image = self.inspect(destination).await?;
        match pushed {
            Ok(_) => {
                let digest = self.verify(destination, &image).await?;
                Ok((
                    Outcome::Copied {
                        digest,
                        why: Why::Requested,
                    },
                    image,
                ))
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
        // A pushed manifest is single-platform, so any platform reads its config.
        let config = self
            .registry
            .config_digest(destination, "linux/amd64")
            .await
            .with_context(|| format!("cannot verify '{destination}'"))?;
        if config.as_deref() == Some(image.id.as_str()) {
            Ok(head.digest)
        } else {
            bail!(
                "'{destination}' serves {} after the push, which is not the image pushed; did another push race this one?",
                head.digest
            )
        }
    }

    async fn inspect(&self, image: &Reference) -> anyhow::Result<LocalImage> {
        let output = self.docker(&DockerCommand::inspect(image)).await?.stdout;
        let mut words = output.split_whitespace().map(str::to_owned);
        let id = words.next().unwrap_or_default();
        Ok(LocalImage {
            id,
            repo_digests: words.collect(),
        })
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
            platform: platform_label(job).to_owned(),
            source_digest: source_digest.to_owned(),
            destination_digest: destination_digest.to_owned(),
            image_id,
        };
        self.ledger
            .lock()
            .expect("ledger poisoned")
            .record(&destination.to_string(), record);
    }

    /// The platform that `docker pull` will fetch: as asked, or the daemon's own.
    async fn platform(&self, job: &CopyJob) -> anyhow::Result<String> {
        if let Some(platform) = &job.settings.platform {
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

    async fn docker(&self, command: &DockerCommand) -> Result<DockerOutput, DockerError> {
        self.docker.run(command).await
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

/// The platform as the ledger records it: as asked, or "default".
fn platform_label(job: &CopyJob) -> &str {
    job.settings.platform.as_deref().unwrap_or("default")
}
