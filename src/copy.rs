//! One copy, in two steps. `check` asks the registries with HEAD requests only: does the
//! source exist, what does the destination hold, is a copy needed. `finish` acts on that:
//! pull, tag, make sure the ECR repository exists, log in, push, verify what the destination
//! now serves, and clean up. Jobs of one run that share a local image name or a destination
//! repository take turns there. Emits events; never prints.

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
use crate::registry::{manifest, ManifestHead, RateLimit, RegistryClient, RegistryError};

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
    /// Whether verifying a copy reads the source's manifest once more: docker's containerd
    /// store pushes one platform's manifest out of an index, and only the source can vouch
    /// for it.
    pub verify_reads_source: bool,
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
        let verify = u64::from(self.verify_reads_source);
        match self.next {
            Next::Compare => 2 + verify,
            Next::Copy(_) => 1 + verify,
            Next::Skip(_) | Next::AlreadyThere => 0,
        }
    }
}

/// Asks the user whether to overwrite (`-i`). The terminal implementation lives in `ui`.
pub trait Confirm: Send + Sync {
    fn overwrite(&self, destination: &Reference) -> bool;
}

/// Where docker keeps its images, which decides what an image's `.Id` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ImageStore {
    /// The graph drivers (overlay2, vfs): `.Id` is the config digest, and a push
    /// compresses the layers anew, so the pushed manifest is docker's own.
    Classic,
    /// The containerd image store (the default of fresh Docker Engine 29 installs): `.Id`
    /// is the digest of the manifest or index pulled, and a push sends that content as it
    /// is, or from an index with one platform present, that platform's manifest.
    Containerd,
}

impl ImageStore {
    /// From `docker info --format '{{json .DriverStatus}}'`.
    fn from_driver_status(json: &str) -> Self {
        if json.contains("io.containerd.snapshotter") {
            ImageStore::Containerd
        } else {
            ImageStore::Classic
        }
    }
}

/// What the local docker knows of the image just pushed.
#[derive(Debug, PartialEq, Eq)]
struct LocalImage {
    /// docker's `.Id`, which means what `store` says.
    id: String,
    repo_digests: Vec<String>,
    store: ImageStore,
}

impl LocalImage {
    /// Whether docker holds this image under the manifest (or index) `digest`.
    fn has_digest(&self, digest: &str) -> bool {
        let suffix = format!("@{digest}");
        (self.store == ImageStore::Containerd && self.id == digest)
            || self.repo_digests.iter().any(|known| known.ends_with(&suffix))
    }

    /// The config digest (image ID as registries see it), when docker's store knows it.
    fn config(&self) -> Option<&str> {
        (self.store == ImageStore::Classic).then_some(self.id.as_str())
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
    image_store: tokio::sync::OnceCell<ImageStore>,
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
            image_store: tokio::sync::OnceCell::new(),
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
        self.logins.registry_credentials(&job.source, ecr).await?;
        self.logins.registry_credentials(destination, ecr).await?;
        let source = self.source_head(&job.source).await?;
        // Asked before anything is pulled, so a destination that cannot take the copy costs
        // no pull from the source's quota.
        let existing = self.destination_digest(destination).await?;
        let source_digest = source.as_ref().map(|head| head.digest.clone());
        let next = self.next_step(job, destination, source_digest.as_deref(), existing.as_deref());
        let verify_reads_source = source.as_ref().is_some_and(names_an_index)
            && matches!(next, Next::Compare | Next::Copy(_))
            && !self.options.dry_run
            && self.store().await.ok() == Some(ImageStore::Containerd);
        tracing::debug!(image = %job.source, %destination, ?next, "checked");
        Ok(Check {
            source_digest,
            existing,
            rate_limit: source.and_then(|head| head.rate_limit),
            verify_reads_source,
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

    /// What the source names now, from a HEAD request, which Docker Hub does not count
    /// as a pull. `None` when the registry cannot be asked directly but docker may still
    /// pull (say, a credential setup ecrcp does not read); `-u` needs the digest and fails.
    async fn source_head(&self, source: &Reference) -> anyhow::Result<Option<ManifestHead>> {
        match self.registry.head_manifest(source).await {
            Ok(Some(head)) => Ok(Some(head)),
            Ok(None) => bail!(
                "'{}' does not exist: check the repository name and tag",
                source.familiar()
            ),
            // It names the image and says what to do.
            Err(error @ RegistryError::Inaccessible { .. }) => Err(error.into()),
            Err(error) if self.options.overwrite.update || error.holds_for_docker() => {
                Err(error).with_context(|| format!("cannot look up '{}'", source.familiar()))
            }
            Err(error) => {
                tracing::warn!(image = %source, %error, "cannot look up the source digest; letting docker pull by tag");
                Ok(None)
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
        let source = self.source_config(job, &platform).await?;
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

    /// The config digest the source holds for `platform`. A manifest read: on Docker Hub,
    /// a pull.
    async fn source_config(&self, job: &CopyJob, platform: &str) -> anyhow::Result<Option<String>> {
        let config = self
            .registry
            .config_digest(&job.source, platform)
            .await
            .with_context(|| format!("cannot read '{}'", job.source.familiar()))?;
        if job.source.is_docker_hub() {
            self.hub_pulls.fetch_add(1, Ordering::SeqCst);
        }
        Ok(config)
    }

    async fn transfer(
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

    async fn inspect(&self, image: &Reference) -> anyhow::Result<LocalImage> {
        let store = self.store().await?;
        let output = self.docker(&DockerCommand::inspect(image)).await?.stdout;
        let mut words = output.split_whitespace().map(str::to_owned);
        let id = words.next().unwrap_or_default();
        Ok(LocalImage {
            id,
            repo_digests: words.collect(),
            store,
        })
    }

    /// Which image store the daemon uses, asked once per run.
    async fn store(&self) -> Result<ImageStore, DockerError> {
        let store = self
            .image_store
            .get_or_try_init(|| async {
                let output = self.docker(&DockerCommand::driver_status()).await?;
                Ok::<_, DockerError>(ImageStore::from_driver_status(&output.stdout))
            })
            .await?;
        Ok(*store)
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

fn names_an_index(head: &ManifestHead) -> bool {
    head.media_type.as_deref().is_some_and(|media_type| {
        media_type.starts_with(manifest::OCI_INDEX) || media_type.starts_with(manifest::DOCKER_MANIFEST_LIST)
    })
}

/// The platform as the ledger records it: as asked, or "default".
fn platform_label(job: &CopyJob) -> &str {
    job.settings.platform.as_deref().unwrap_or("default")
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;

    use super::*;
    use crate::registry::credentials::CredentialStore;

    const INDEX: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const CONFIG: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    /// A docker that records every argv and answers `info` and `image inspect` as the
    /// daemon would, given its `driver_status` and `inspect` output.
    struct FakeDocker {
        driver_status: &'static str,
        inspect: String,
        calls: Mutex<Vec<String>>,
    }

    impl DockerRunner for FakeDocker {
        fn run<'a>(
            &'a self,
            command: &'a DockerCommand,
        ) -> Pin<Box<dyn Future<Output = Result<DockerOutput, DockerError>> + Send + 'a>> {
            let argv = command.args().join(" ");
            let stdout = match command.args().first().map(String::as_str) {
                Some("info") => self.driver_status.to_owned(),
                Some("image") => self.inspect.clone(),
                _ => String::new(),
            };
            self.calls.lock().unwrap().push(argv);
            Box::pin(async move { Ok(DockerOutput { stdout }) })
        }
    }

    struct Yes;

    impl Confirm for Yes {
        fn overwrite(&self, _destination: &Reference) -> bool {
            true
        }
    }

    async fn inspected(docker: &FakeDocker) -> LocalImage {
        let registry = RegistryClient::new(CredentialStore::with_config_dir(None)).unwrap();
        let copier = Copier::new(
            docker,
            &registry,
            CopyOptions::default(),
            &Yes,
            Ledger::in_memory(),
        );
        let destination =
            Reference::parse("123456789012.dkr.ecr.us-east-1.amazonaws.com/mirror/nginx:latest").unwrap();
        copier.inspect(&destination).await.unwrap();
        copier.inspect(&destination).await.unwrap()
    }

    #[test]
    fn the_image_store_is_told_by_the_driver_status() {
        let cases = [
            (
                r#"[["driver-type","io.containerd.snapshotter.v1"]]"#,
                ImageStore::Containerd,
            ),
            (
                r#"[["Backing Filesystem","extfs"],["Supports d_type","true"],["Using metacopy","false"],["Native Overlay Diff","true"],["userxattr","false"]]"#,
                ImageStore::Classic,
            ),
            ("[]", ImageStore::Classic),
            ("null", ImageStore::Classic),
        ];
        for (status, store) in cases {
            assert_eq!(ImageStore::from_driver_status(status), store, "{status}");
        }
    }

    #[tokio::test]
    async fn under_the_containerd_store_the_image_id_is_the_pulled_digest_not_a_config() {
        // What Docker Engine 29 answers after `docker pull nginx` and `docker tag`.
        let docker = FakeDocker {
            driver_status: "[[\"driver-type\",\"io.containerd.snapshotter.v1\"]]\n",
            inspect: format!("{INDEX} docker.io/library/nginx@{INDEX}\n"),
            calls: Mutex::default(),
        };
        let image = inspected(&docker).await;
        assert_eq!(image.store, ImageStore::Containerd);
        assert!(image.has_digest(INDEX), "the pushed index is the local image");
        assert_eq!(image.config(), None, "`.Id` is no config digest there");
        let calls = docker.calls.lock().unwrap();
        assert_eq!(
            calls.iter().filter(|argv| argv.starts_with("info ")).count(),
            1,
            "the store is asked once per run: {calls:?}"
        );
    }

    #[tokio::test]
    async fn under_the_classic_store_the_image_id_is_the_config_digest() {
        let docker = FakeDocker {
            driver_status: "[]\n",
            inspect: format!("{CONFIG} docker.io/library/nginx@{INDEX}\n"),
            calls: Mutex::default(),
        };
        let image = inspected(&docker).await;
        assert_eq!(image.config(), Some(CONFIG));
        assert!(image.has_digest(INDEX));
        assert!(
            !image.has_digest(CONFIG),
            "a config digest is no manifest docker holds"
        );
    }

    #[test]
    fn a_check_books_the_pulls_finishing_may_take() {
        let cases = [
            (Next::Skip(Skip::Unchanged), false, 0),
            (Next::AlreadyThere, true, 0),
            (Next::Copy(Why::DestinationMissing), false, 1),
            (Next::Compare, false, 2),
            // The containerd store, copying out of an index: verifying reads the source.
            (Next::Copy(Why::SourceChanged), true, 2),
            (Next::Compare, true, 3),
        ];
        for (next, verify_reads_source, pulls) in cases {
            let check = Check {
                source_digest: None,
                existing: None,
                rate_limit: None,
                verify_reads_source,
                next,
            };
            assert_eq!(check.source_pulls(), pulls, "{next:?} {verify_reads_source}");
        }
    }
}
