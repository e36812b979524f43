//! The docker engine: pulls the source with the docker CLI (taking turns per local image
//! name), tags it as the destination, pushes it (copies into one repository side by side;
//! they take turns only to create it), verifies what the registry then serves, and removes the
//! temporary tag. One platform per copy; in its classic store docker re-compresses layers,
//! so the destination's digest is docker's own, while its containerd store pushes the pulled
//! manifest as it is (out of an index, the platform's own, pulled by digest). Several
//! destinations of one source: one pull, then a tag and a push for each.

mod daemon;
mod local;
mod retry;
mod space;

use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context as _};
use futures_util::future::BoxFuture;

use self::daemon::{Back, Daemon};
use self::local::{ImageStore, LocalImage};
use self::retry::{Attempts, Next};
use super::turns::Turns;
use super::{Delivered, Engine, Lands, Pulls, Transfer};
use crate::docker::{self, DockerCommand, DockerError, DockerOutput, DockerRunner};
use crate::login::{LoginRefusedAgain, Logins};
use crate::plan::{CopyJob, JobSettings};
use crate::reference::Reference;
use crate::registry::{ManifestHead, RegistryClient, RegistryError};

/// Copies through the docker CLI. Safe to share between concurrent copies.
pub struct DockerEngine<'a> {
    docker: &'a dyn DockerRunner,
    registry: &'a RegistryClient,
    logins: Arc<Logins<'a>>,
    daemon_platform: tokio::sync::OnceCell<String>,
    image_store: tokio::sync::OnceCell<ImageStore>,
    /// Turns per local image name, from pull to tag.
    local_names: Turns,
    daemon: Daemon,
}

impl<'a> DockerEngine<'a> {
    pub fn new(docker: &'a dyn DockerRunner, registry: &'a RegistryClient, logins: Arc<Logins<'a>>) -> Self {
        DockerEngine {
            docker,
            registry,
            logins,
            daemon_platform: tokio::sync::OnceCell::new(),
            image_store: tokio::sync::OnceCell::new(),
            local_names: Turns::default(),
            daemon: Daemon::default(),
        }
    }

    /// The platform that `docker pull` will fetch: as asked, or the daemon's own.
    async fn platform(&self, job: &CopyJob) -> anyhow::Result<String> {
        if let Some(platform) = job.settings.platforms.first() {
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

    /// One pull for every transfer (they share the source and platform), a tag and a push
    /// per destination; a destination that fails does not stop the others.
    async fn run_transfers(&self, transfers: Vec<Transfer<'_>>) -> Vec<anyhow::Result<Delivered>> {
        // One retry budget for the whole copy: its pull and every push.
        let deadline = Instant::now() + retry::RETRY_BUDGET;
        // What the pushes need besides the image does not wait for the pull: each
        // destination's repository and docker's login there, and which store the daemon
        // runs (asked after each push). A repository made for a pull that then fails is
        // removed again when no copy lands in it (`Repository::end`).
        let (tagged, ready, _) = tokio::join!(
            self.pull_and_tag(&transfers, deadline),
            futures_util::future::join_all(transfers.iter().map(|transfer| self.prepare(transfer))),
            self.store(),
        );
        let (pulled, tagged) = match tagged {
            Ok(tagged) => tagged,
            Err(error) => return super::for_each_destination(error, transfers.len()),
        };
        let pulled = &pulled;
        futures_util::future::join_all(transfers.iter().zip(tagged).zip(ready).map(
            |((transfer, tagged), ready)| async move {
                tagged?;
                self.deliver(transfer, pulled, ready, deadline).await
            },
        ))
        .await
    }

    /// Makes sure a destination's repository exists and docker may push there.
    async fn prepare(&self, transfer: &Transfer<'_>) -> anyhow::Result<()> {
        transfer.repository.ensure().await?;
        self.docker_login(transfer.destination, &transfer.job.settings)
            .await
    }

    /// Pushes a pulled (`pulled`: the name docker pulled) and tagged image to its
    /// destination (`ready`: whether [`prepare`] did), and says what it serves now.
    async fn deliver(
        &self,
        transfer: &Transfer<'_>,
        pulled: &Reference,
        ready: anyhow::Result<()>,
        deadline: Instant,
    ) -> anyhow::Result<Delivered> {
        let Transfer { job, destination, .. } = *transfer;
        let pushed = match ready {
            Ok(()) => self.push(transfer, pulled, deadline).await,
            Err(error) => Err(error),
        };
        // The temporary tag goes while the registry says what it serves now: neither step
        // needs the other, and what docker holds was read during the push.
        let (published, ()) = tokio::join!(
            async {
                let (pushed, image) = pushed?;
                self.published(transfer, pushed, image).await
            },
            self.untag(destination),
        );
        let (digest, already_there, image) = published?;
        // The ledger links the digest seen by HEAD only if docker pulled that very digest
        // (or the platform's manifest read out of that very index); if the tag moved in
        // between, the next `-u` re-checks instead.
        let pulled_out_of_it = pulled != &job.source;
        let source_digest = transfer
            .source_digest
            .filter(|digest| pulled_out_of_it || image.has_digest(digest))
            .map(str::to_owned);
        let image_id = match source_digest {
            Some(_) => self.image_id(job, destination, &image).await,
            None => None,
        };
        Ok(Delivered {
            digest,
            already_there,
            source_digest,
            image_id,
            notes: Vec::new(),
            added: Vec::new(),
        })
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

    /// Pulls the source once and tags it as each destination: `Err` when the pull failed,
    /// else the name pulled and each tag's result. Docker keeps one local image per name,
    /// so jobs that pull one name (for different platforms, say) take turns from the pull
    /// to the last tag; otherwise one could tag the image the other just pulled.
    async fn pull_and_tag(
        &self,
        transfers: &[Transfer<'_>],
        deadline: Instant,
    ) -> anyhow::Result<(Reference, Vec<anyhow::Result<()>>)> {
        let Some(first) = transfers.first() else {
            return Err(anyhow!("no destination to copy to"));
        };
        // Pulled as named, not by the digest just seen: docker keeps one local image per
        // `name@digest`, so pulling an index digest for a second platform would fail. Under
        // the containerd store, out of an index, by the platform's manifest digest instead.
        let source = &first.job.source;
        self.docker_login(source, &first.job.settings).await?;
        let child = self.platform_child(first).await?;
        let pulled = child.as_ref().unwrap_or(source);
        // docker takes no OS build in `--platform`: a Windows daemon picks its own.
        let platform = first.job.settings.platforms.first().map(|platform| {
            crate::platform::Platform::parse(platform)
                .map_or_else(|_| platform.clone(), |platform| platform.without_os_version())
        });
        let pull = DockerCommand::pull(pulled, platform.as_deref(), first.options.progress);
        let _turn = self.local_names.take(&docker::local_name(source)).await;
        // ecrcp's own client counted its read of the index; docker reads the child alone.
        let spent = source.is_docker_hub().then_some((
            first.pulls,
            first.booked_pulls.saturating_sub(u64::from(child.is_some())),
        ));
        let result = self
            .docker_retrying(&pull, spent, None, deadline, (source, &first.job.settings))
            .await;
        self.out_of_space(result, Some(first))
            .await
            .with_context(|| format!("cannot pull '{}'", source.familiar()))?;
        // Each destination's tag at once: they name one image, and none waits for another.
        let tagged = futures_util::future::join_all(transfers.iter().map(|transfer| async move {
            let tag = self
                .docker(&DockerCommand::tag(pulled, transfer.destination))
                .await
                .map_err(anyhow::Error::from);
            self.out_of_space(tag, None)
                .await
                .map(drop)
                .with_context(|| format!("cannot tag the image as '{}'", transfer.destination))
        }))
        .await;
        Ok((pulled.clone(), tagged))
    }

    /// What docker pulls out of an index under the containerd image store: the platform's
    /// own manifest, by digest, read from the index the check saw (one manifest GET, which
    /// the check booked as docker's read of the index). Pulled by name, that store keeps
    /// the whole index as the local image, with only this platform's content: Docker Engine
    /// 26 then refuses to push it ("Make sure you have all the referenced content"), and
    /// once another platform of the same source is pulled too it pushes both. A local image
    /// that is one platform's manifest pushes as exactly that, in any version and store.
    /// `None`: pull the source as named (the classic store, a one-platform source, or an
    /// index without that platform, which `docker pull` then reports).
    async fn platform_child(&self, first: &Transfer<'_>) -> anyhow::Result<Option<Reference>> {
        if !first.source_index || self.store().await? != ImageStore::Containerd {
            return Ok(None);
        }
        let source = &first.job.source;
        let at = |digest: &str| Reference::new(source.registry(), source.repository(), None, Some(digest));
        let index = match first.source_digest {
            Some(digest) => at(digest)?,
            None => source.clone(),
        };
        let platform = self.platform(first.job).await?;
        let child = self
            .registry
            .platform_manifest(&index, &platform)
            .await
            .with_context(|| format!("cannot read '{}'", source.familiar()))?;
        tracing::debug!(image = %source, %platform, child = child.as_deref().unwrap_or("none"), "the containerd store pulls the platform's manifest");
        Ok(child.as_deref().map(at).transpose()?)
    }

    /// A command that ran out of disk space, with where: docker's data root. After a pull
    /// (`pulled`: its transfer), also how much the image needs; the pull tagged nothing, and
    /// the classic store removed the layers it had unpacked (the containerd store may keep
    /// some of the content it fetched for a while). After a tag or push the image is
    /// unpacked already, so its size says nothing.
    async fn out_of_space<T>(
        &self,
        result: anyhow::Result<T>,
        pulled: Option<&Transfer<'_>>,
    ) -> anyhow::Result<T> {
        match result {
            Err(error) if docker::is_no_space(&error) => {
                let error = error.downcast::<DockerError>().expect("checked above");
                let found = match pulled {
                    Some(transfer) => {
                        let platform = self.platform(transfer.job).await.unwrap_or_default();
                        space::of_pull(
                            self.docker,
                            self.registry,
                            &transfer.job.source,
                            transfer.source_digest,
                            &platform,
                        )
                        .await
                    }
                    None => docker::Space {
                        data_root: space::data_root(self.docker).await,
                        image_bytes: None,
                    },
                };
                tracing::debug!(
                    pull = pulled.is_some(),
                    data_root = found.data_root.as_deref().unwrap_or("unknown"),
                    image_bytes = found.image_bytes.unwrap_or_default(),
                    "docker ran out of disk space; not trying again"
                );
                Err(error.with_space(found).into())
            }
            other => other,
        }
    }

    /// Pushes the destination tag (its repository and login are ready): the push's result,
    /// unless it stopped the run, and what docker holds under that tag. That is read while
    /// docker pushes (a push changes neither the image's ID nor the manifest the containerd
    /// store sends), and read again after a push whose daemon went away meanwhile.
    async fn push(
        &self,
        transfer: &Transfer<'_>,
        pulled: &Reference,
        deadline: Instant,
    ) -> anyhow::Result<(anyhow::Result<DockerOutput>, LocalImage)> {
        let destination = transfer.destination;
        let push = DockerCommand::push(destination, transfer.options.progress);
        let (pushed, held) = tokio::join!(
            self.docker_retrying(
                &push,
                None,
                Some((pulled, destination)),
                deadline,
                (destination, &transfer.job.settings),
            ),
            self.inspect(destination),
        );
        let pushed = match pushed {
            // No daemon to ask what it holds: the registry's tag moved only if the push
            // sent its manifest, and that names the complete image.
            Err(error)
                if error
                    .downcast_ref::<DockerError>()
                    .is_some_and(DockerError::stops_the_run) =>
            {
                return Err(error.context(format!("cannot push '{destination}'")))
            }
            pushed => self.out_of_space(pushed, None).await,
        };
        let image = match held {
            Ok(image) => image,
            Err(error) => {
                tracing::debug!(image = %destination, %error, "cannot read the local image during the push; asking again");
                self.inspect(destination).await?
            }
        };
        Ok((pushed, image))
    }

    /// Verifies what the registry serves after the push (`pushed`: its result) against the
    /// `image` docker holds: its digest, and whether the tag held it already.
    async fn published(
        &self,
        transfer: &Transfer<'_>,
        pushed: anyhow::Result<DockerOutput>,
        image: LocalImage,
    ) -> anyhow::Result<(String, bool, LocalImage)> {
        let destination = transfer.destination;
        let head = self.registry.head_manifest(destination).await;
        match pushed {
            Ok(_) => {
                let digest = self.verify(transfer, &image, head).await?;
                Ok((digest, false, image))
            }
            Err(error) => match self.verify(transfer, &image, head).await {
                // Refused, yet the tag serves this image: an immutable tag pushed again.
                Ok(digest) => Ok((digest, true, image)),
                Err(_) if error.to_string().contains("immutable") => Err(anyhow!(
                    "'{destination}' is an immutable tag that holds a different image; choose another tag"
                )),
                Err(_) => Err(error.context(format!("cannot push '{destination}'"))),
            },
        }
    }

    /// Removes the temporary local tag; a failure is only worth a warning.
    async fn untag(&self, destination: &Reference) {
        if let Err(error) = self.docker(&DockerCommand::untag(destination)).await {
            tracing::warn!(image = %destination, %error, "cannot remove the temporary local tag");
        }
    }

    /// Checks that the destination now serves (`head`: its answer to a HEAD after the push)
    /// the image docker holds locally, and returns the digest it serves: a manifest docker
    /// knows the image by (the containerd store pushes the one it holds), else one whose
    /// config is the image's (the classic store pushes a manifest of its own making).
    async fn verify(
        &self,
        transfer: &Transfer<'_>,
        image: &LocalImage,
        head: Result<Option<ManifestHead>, RegistryError>,
    ) -> anyhow::Result<String> {
        let (job, destination) = (transfer.job, transfer.destination);
        let head = head
            .with_context(|| format!("cannot verify '{destination}'"))?
            .ok_or_else(|| anyhow!("'{destination}' is missing right after the push"))?;
        if image.has_digest(&head.digest) {
            return Ok(head.digest);
        }
        let platform = match image.platform() {
            Some(platform) => platform.to_owned(),
            None => self.platform(job).await?,
        };
        let served = self
            .registry
            .config_digest(destination, &platform)
            .await
            .with_context(|| format!("cannot verify '{destination}'"))?;
        let expected = if let Some(config) = image.config() {
            Some(config.to_owned())
        } else {
            // The containerd store pushed one platform's manifest out of the local index
            // and knows no config digest: the source's manifest says which config it is.
            self.registry
                .config_digest(&job.source, &platform)
                .await
                .with_context(|| format!("cannot read '{}'", job.source.familiar()))?
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
    /// registry's 5xx) while the attempts make progress and the copy's budget lasts
    /// ([`retry`]), never after one that will not (a quota, a refusal). Each attempt that
    /// docker ran, unless the registry refused it for its rate limit, counts its manifest
    /// reads in `spent`: docker may have read the manifests before it failed.
    ///
    /// A push that failed leaves no wrong tag: docker sends the manifest, which moves the
    /// tag, only after every layer is at the registry, and the registry refuses a manifest
    /// whose blobs it does not hold; `publish` then checks what the tag serves.
    ///
    /// When the registry of `login` (the image, and its job's settings) refuses the login
    /// ecrcp gave docker (the token expired), docker logs in with a new token and the
    /// command runs again at once, as an attempt of its own; refused again, it fails.
    ///
    /// A command cut by the daemon going away (a restart, a crash) runs again once the
    /// daemon answers ([`daemon`]); that attempt does not count as one without progress, as
    /// the registry did nothing wrong, but the copy's budget holds. `tag` (the source and
    /// the destination) is put back on the source if the daemon lost it meanwhile.
    async fn docker_retrying(
        &self,
        command: &DockerCommand,
        spent: Option<(&Pulls, u64)>,
        tag: Option<(&Reference, &Reference)>,
        deadline: Instant,
        login: (&Reference, &JobSettings),
    ) -> anyhow::Result<DockerOutput> {
        let mut attempts = Attempts::new(deadline);
        let mut renewed = false;
        loop {
            let serial = self.logins.docker_login_serial(login.0).await;
            let result = self.docker(command).await;
            if let (
                Some((pulls, reads)),
                Ok(_) | Err(DockerError::Failed { .. } | DockerError::NoSpace { .. }),
            ) = (spent, &result)
            {
                pulls.spent(reads);
            }
            let error = match result {
                Ok(output) => {
                    if attempts.attempt > 1 {
                        tracing::info!(argv = ?command.args(), attempts = attempts.attempt, "docker succeeded after trying again");
                    }
                    return Ok(output);
                }
                Err(error) => error,
            };
            if let (true, Some(serial)) = (error.refuses_the_login(), serial) {
                if renewed {
                    let host = login.0.registry().to_owned();
                    let refusal = self.logins.refusal(login.0);
                    return Err(anyhow::Error::new(error).context(LoginRefusedAgain { host, refusal }));
                }
                self.logins.renew_docker_login(login.0, login.1, serial).await?;
                renewed = true;
                continue;
            }
            if error.daemon_may_be_away() {
                if let Back::After(waited) = self.wait_for_daemon(&error).await? {
                    tracing::warn!(
                        argv = ?command.args(),
                        %error,
                        waited_ms = daemon::millis(waited),
                        "the docker daemon answers again; running the step again"
                    );
                    if let Some((source, destination)) = tag {
                        self.restore_tag(source, destination).await?;
                    }
                    if let Next::GiveUp(reason) = attempts.after_the_daemon_came_back(Instant::now()) {
                        tracing::warn!(argv = ?command.args(), %error, reason, "docker failed; not trying again");
                        return Err(error.into());
                    }
                    continue;
                }
            }
            let attempt = attempts.attempt;
            match attempts.after(&error, Instant::now()) {
                Next::Again { wait, progressed } => {
                    tracing::warn!(
                        argv = ?command.args(),
                        %error,
                        attempt,
                        layers_done = error.layers_done(),
                        progressed,
                        wait_ms = daemon::millis(wait),
                        "docker failed; trying again"
                    );
                    tokio::time::sleep(wait).await;
                }
                Next::GiveUp(reason) => {
                    if error.is_transient() {
                        tracing::warn!(
                            argv = ?command.args(),
                            %error,
                            attempt,
                            layers_done = attempts.best,
                            reason,
                            "docker failed; not trying again"
                        );
                    }
                    return Err(error.into());
                }
            }
        }
    }
}

impl Engine for DockerEngine<'_> {
    fn lands<'a>(&'a self, job: &'a CopyJob) -> BoxFuture<'a, anyhow::Result<Lands>> {
        Box::pin(async move { Ok(Lands::Platform(self.platform(job).await?)) })
    }

    /// Under docker's containerd store, a copy out of an index: the push sends the
    /// platform's manifest, and should the registry then serve another digest, only the
    /// source's config can vouch for it (booked, though the digests match as a rule).
    fn verify_reads_source<'a>(&'a self, _job: &'a CopyJob, source: &'a ManifestHead) -> BoxFuture<'a, bool> {
        Box::pin(
            async move { source.names_an_index() && self.store().await.ok() == Some(ImageStore::Containerd) },
        )
    }

    /// One `docker pull`, then a tag and a push per destination.
    fn transfer_many<'a>(
        &'a self,
        transfers: Vec<Transfer<'a>>,
    ) -> BoxFuture<'a, Vec<anyhow::Result<Delivered>>> {
        Box::pin(self.run_transfers(transfers))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::local::tests::FakeDocker;
    use super::*;
    use crate::engine::turns::Turns;
    use crate::engine::{Pulls, Repository};
    use crate::login::Logins;
    use crate::plan::{CopyJob, CopyOptions};
    use crate::provider::{Plain, Providers};
    use crate::reference::Destination;
    use crate::registry::digest::sha256;
    use crate::registry::manifest::{OCI_INDEX, OCI_MANIFEST};
    use crate::testing::fake_registry::{Answer, FakeRegistry};
    use crate::testing::{anonymous_client, reference};

    const AMD64: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const ARM64: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    /// A two-platform index served by its digest; returns that digest.
    fn serve_index(fake: &FakeRegistry) -> String {
        let child = |digest: &str, architecture: &str| {
            serde_json::json!({"mediaType": OCI_MANIFEST, "digest": digest, "size": 500,
                "platform": {"os": "linux", "architecture": architecture}})
        };
        let index = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
            "manifests": [child(AMD64, "amd64"), child(ARM64, "arm64")]}))
        .unwrap();
        let digest = sha256(&index);
        fake.route(
            "GET",
            &format!("/v2/team/app/manifests/{digest}"),
            [Answer::status(200)
                .header("Content-Type", OCI_INDEX)
                .header("Docker-Content-Digest", digest.clone())
                .body(index)],
        );
        digest
    }

    /// What the docker engine pulls for an arm64 copy of an index, under a daemon whose
    /// `docker info` says `driver_status`; and the manifest GETs that cost.
    async fn pulled_for_arm64(driver_status: &'static str) -> (Option<String>, usize) {
        let fake = FakeRegistry::start();
        let index = serve_index(&fake);
        let docker = FakeDocker {
            driver_status,
            inspect: String::new(),
            calls: Mutex::default(),
        };
        let registry = anonymous_client();
        let providers = Providers::default();
        let engine = DockerEngine::new(
            &docker,
            &registry,
            Arc::new(Logins::new(&docker, &registry, &providers)),
        );
        let settings = JobSettings {
            platforms: vec!["linux/arm64".to_owned()],
            ..JobSettings::default()
        };
        let job = CopyJob {
            label: "app".to_owned(),
            source: reference(&format!("{}/team/app:1", fake.host())),
            destination: Destination::parse("registry.example.test/mirror/app:1").unwrap(),
            settings,
        };
        let destination = reference("registry.example.test/mirror/app:1");
        let turns = Turns::default();
        let repository = Repository::new(&destination, &Plain, &job.settings, &turns);
        let pulls = Pulls::default();
        let transfer = Transfer {
            job: &job,
            destination: &destination,
            source_digest: Some(&index),
            source_index: true,
            options: CopyOptions::default(),
            repository: &repository,
            pulls: &pulls,
            booked_pulls: 2,
        };
        let child = engine.platform_child(&transfer).await.unwrap();
        let gets = fake.matching("GET", "/v2/team/app/manifests/*").len();
        (child.map(|child| docker::local_name(&child)), gets)
    }

    #[tokio::test]
    async fn under_the_containerd_store_a_platform_of_an_index_is_pulled_by_its_own_manifest() {
        let (pulled, gets) = pulled_for_arm64("[[\"driver-type\",\"io.containerd.snapshotter.v1\"]]\n").await;
        let pulled = pulled.expect("the platform's manifest, not the index");
        assert!(pulled.ends_with(&format!("/team/app@{ARM64}")), "{pulled}");
        assert_eq!(gets, 1, "one read of the index the check saw");
    }

    #[tokio::test]
    async fn a_pushed_manifest_of_docker_s_own_making_is_verified_by_its_config_for_the_image_s_platform() {
        // The classic store pushes a manifest it makes: docker's inspect read during the push
        // knows no digest of it, so the check compares configs, for the platform that inspect
        // gave, asking docker nothing more.
        let fake = FakeRegistry::start();
        let image = crate::testing::Image::new(10);
        fake.route("GET", "/v2/mirror/app/manifests/1", [image.manifest_answer()]);
        let docker = FakeDocker {
            driver_status: "[]\n",
            inspect: format!("{} linux/arm64 docker.io/team/app@{AMD64}\n", image.config_digest),
            calls: Mutex::default(),
        };
        let registry = anonymous_client();
        let providers = Providers::default();
        let engine = DockerEngine::new(
            &docker,
            &registry,
            Arc::new(Logins::new(&docker, &registry, &providers)),
        );
        let job = CopyJob {
            label: "app".to_owned(),
            source: reference("docker.io/team/app:1"),
            destination: Destination::parse(&format!("{}/mirror/app:1", fake.host())).unwrap(),
            settings: JobSettings::default(),
        };
        let destination = reference(&format!("{}/mirror/app:1", fake.host()));
        let turns = Turns::default();
        let repository = Repository::new(&destination, &Plain, &job.settings, &turns);
        let pulls = Pulls::default();
        let transfer = Transfer {
            job: &job,
            destination: &destination,
            source_digest: None,
            source_index: false,
            options: CopyOptions::default(),
            repository: &repository,
            pulls: &pulls,
            booked_pulls: 1,
        };
        let local = engine.inspect(&destination).await.unwrap();
        let head = Ok(Some(ManifestHead {
            digest: image.manifest_digest.clone(),
            media_type: None,
            rate_limit: None,
        }));

        let verified = engine.verify(&transfer, &local, head).await.unwrap();

        assert_eq!(verified, image.manifest_digest);
        let calls = docker.calls.lock().unwrap();
        assert!(
            calls.iter().all(|argv| !argv.starts_with("version")),
            "the platform came from the inspect: {calls:?}"
        );
    }

    #[tokio::test]
    async fn under_the_classic_store_the_source_is_pulled_as_named() {
        let (pulled, gets) = pulled_for_arm64("[]\n").await;
        assert_eq!(pulled, None);
        assert_eq!(gets, 0, "no read of the source");
    }
}
