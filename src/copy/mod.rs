//! One copy, in two steps. `check` asks the registries with HEAD requests only: does the
//! source exist, what does the destination hold, is a copy needed. `finish` acts on that:
//! compares or asks where needed, then hands the transfer to the job's engine (`engine`),
//! removes again a repository the run created that no copy landed in, and records the result in the
//! ledger. The decision is the same for every engine; only the moving of bytes differs.
//! `finish_group` does the same for several destinations of one source, the engine reading
//! the source once for all that need a copy. Emits events; never prints.

pub mod group;

use std::sync::Arc;

use anyhow::{bail, Context as _};

use crate::decide::{self, Facts, Verdict, Why};
use crate::docker::DockerRunner;
use crate::engine::docker::DockerEngine;
use crate::engine::kind::EngineKind;
use crate::engine::registry::RegistryEngine;
use crate::engine::{Delivered, Engine, Extras, Lands, Pulls, Repositories, Repository, Transfer};
use crate::ledger::shared::Shared;
use crate::ledger::{Ledger, Record};
use crate::login::Logins;
use crate::outcome::Kind;
use crate::plan::{CopyJob, CopyOptions};
use crate::provider::Providers;
use crate::reference::Reference;
use crate::registry::{ManifestHead, RateLimit, RegistryClient, RegistryError};

use crate::engine::memo::Memo;

/// How one copy ended, when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The destination now serves the source's image, under this manifest digest; with
    /// referrers asked for, `extras` says which were copied along and which were refused.
    Copied {
        digest: String,
        why: Why,
        extras: Extras,
    },
    /// The destination already served this very image (same digest, or a push refused by
    /// an immutable tag that holds it); with referrers asked for, `extras` says what was
    /// added beside it to keep them in step with the source.
    AlreadyThere { digest: String, extras: Extras },
    /// Nothing was done, for this reason.
    Skipped(Skip),
    /// `--dry-run`: this copy would run, for this reason.
    WouldCopy(Why),
}

impl Outcome {
    /// What was done beside the image (referrers, signature tags), when anything could be.
    pub fn extras(&self) -> Option<&Extras> {
        match self {
            Outcome::Copied { extras, .. } | Outcome::AlreadyThere { extras, .. } => Some(extras),
            Outcome::Skipped(_) | Outcome::WouldCopy(_) => None,
        }
    }
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
    /// Whether the source's HEAD named an index (or manifest list).
    pub source_index: bool,
    /// Manifest GETs one look at a platform's config in the source takes: two out of an
    /// index (the index, then the child), else one.
    pub config_reads: u64,
    /// Manifest GETs the engine's transfer makes in the source, as far as the check can
    /// tell: docker pulls one platform (two GETs out of an index); the registry engine reads
    /// the index and each platform it copies (when it copies all, it learns how many only
    /// from the index, and takes them from the budget then).
    pub copy_reads: u64,
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
    /// The most pulls (on Docker Hub's count: every manifest GET) finishing may take from
    /// the source: a config comparison, the transfer, and a verification that reads the
    /// source's config.
    pub fn source_pulls(&self) -> u64 {
        let verify = if self.verify_reads_source {
            self.config_reads
        } else {
            0
        };
        match self.next {
            Next::Compare => self.config_reads + self.copy_reads + verify,
            Next::Copy(_) => self.copy_reads + verify,
            Next::Skip(_) | Next::AlreadyThere => 0,
        }
    }
}

/// Asks the user whether to overwrite (`-i`). The terminal implementation lives in `ui`.
pub trait Confirm: Send + Sync {
    fn overwrite(&self, destination: &Reference) -> bool;
}

/// Runs copies with the boundaries it is given; holds the per-run state (logins, ledger,
/// the engines). Safe to share between concurrent copies.
pub struct Copier<'a> {
    registry: &'a RegistryClient,
    /// The run's registry kinds: who makes a destination's repository, and logs in.
    providers: &'a Providers,
    options: CopyOptions,
    confirm: &'a dyn Confirm,
    /// Saved off the async workers: `close` waits for the last save.
    ledger: Shared,
    logins: Arc<Logins<'a>>,
    docker_engine: DockerEngine<'a>,
    registry_engine: RegistryEngine<'a>,
    /// What the run knows of each destination repository: made once, removed again only
    /// when no copy landed there.
    repositories: Repositories,
    /// Docker Hub pulls spent so far, and the budget's room beyond each copy's booking.
    pulls: Pulls,
    /// What each source's HEAD said this run: one HEAD however many destinations.
    source_heads: Memo<String, ManifestHead>,
    /// Each source's config digest per platform this run: compared once for all destinations.
    source_configs: Memo<(String, String), Option<String>>,
}

/// One destination of a group: a checked copy to finish.
pub struct Member<'m> {
    pub job: &'m CopyJob,
    pub destination: &'m Reference,
    pub check: &'m Check,
}

/// A member of a group that needs a transfer, and why.
struct Moving {
    /// Its place among the group's members.
    member: usize,
    why: Why,
}

/// A destination repository of a group's transfers, and the transfers that write into it
/// (their places among those moving).
struct Handle<'r> {
    repository: Repository<'r>,
    writers: Vec<usize>,
}

/// What a member needs once compared and asked: nothing more, or a transfer.
enum Decided {
    Done(Outcome),
    Transfer(Why),
}

impl<'a> Copier<'a> {
    pub fn new(
        docker: &'a dyn DockerRunner,
        registry: &'a RegistryClient,
        providers: &'a Providers,
        options: CopyOptions,
        confirm: &'a dyn Confirm,
        ledger: Ledger,
    ) -> Self {
        let logins = Arc::new(Logins::new(docker, registry, providers));
        Copier {
            registry,
            providers,
            options,
            confirm,
            ledger: Shared::new(ledger),
            docker_engine: DockerEngine::new(docker, registry, Arc::clone(&logins)),
            registry_engine: RegistryEngine::new(registry, options.transfers),
            logins,
            repositories: Repositories::default(),
            pulls: Pulls::default(),
            source_heads: Memo::default(),
            source_configs: Memo::default(),
        }
    }

    /// Limits the Docker Hub pulls copies may take beyond what their checks booked (sync's
    /// budget); until then, there is no limit.
    pub fn limit_extra_pulls(&self, extra: Option<u64>) {
        self.pulls.limit_extra(extra);
    }

    /// Ends the run's copies: waits, off the async workers, until the ledger has saved
    /// what they recorded.
    pub async fn close(&self) {
        self.ledger.close().await;
    }

    /// Docker Hub pulls the copies spent so far: the manifest GETs ecrcp made there, and
    /// those of docker's pulls.
    pub fn hub_pulls_spent(&self) -> u64 {
        self.registry.hub_manifest_reads() + self.pulls.total()
    }

    /// The engine that moves `job`'s bytes.
    fn engine(&self, job: &CopyJob) -> &dyn Engine {
        match job.settings.engine {
            EngineKind::Docker => &self.docker_engine,
            EngineKind::Registry => &self.registry_engine,
        }
    }

    /// Checks and finishes one copy.
    pub async fn copy(&self, job: &CopyJob, destination: &Reference) -> anyhow::Result<Outcome> {
        let check = self.check(job, destination).await?;
        self.finish(job, destination, &check).await
    }

    /// Everything that HEAD requests can tell about this copy. Costs no pull anywhere.
    pub async fn check(&self, job: &CopyJob, destination: &Reference) -> anyhow::Result<Check> {
        // Both asked before anything is pulled (side by side: each is a round trip), so a
        // destination that cannot take the copy costs no pull from the source's quota. Each
        // side waits only for its own login: the source's HEAD needs no token of the
        // destination's, and fetching one is a round trip of its own.
        let source = async {
            self.logins
                .registry_credentials(&job.source, &job.settings)
                .await?;
            self.source_head(job).await
        };
        let existing = async {
            self.logins
                .registry_credentials(destination, &job.settings)
                .await?;
            self.destination_digest(destination).await
        };
        let (source, existing) = tokio::try_join!(source, existing)?;
        let source_digest = source.as_ref().map(|head| head.digest.clone());
        let next = self.next_step(job, destination, source_digest.as_deref(), existing.as_deref());
        let copies = matches!(next, Next::Compare | Next::Copy(_)) && !self.options.dry_run;
        let verify_reads_source = match &source {
            Some(head) if copies => self.engine(job).verify_reads_source(job, head).await,
            _ => false,
        };
        let index = source.as_ref().is_some_and(ManifestHead::names_an_index);
        let config_reads = 1 + u64::from(index);
        let copy_reads = job.settings.engine.copy_reads(index, &job.settings.platforms);
        tracing::debug!(image = %job.source, %destination, ?next, engine = job.settings.engine.as_str(), "checked");
        Ok(Check {
            source_digest,
            existing,
            rate_limit: source.and_then(|head| head.rate_limit),
            verify_reads_source,
            source_index: index,
            config_reads,
            copy_reads,
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
        // A byte-for-byte copy serves the source's digest: any other digest is another image
        // (or an older one), and neither the ledger nor a comparison can say otherwise.
        if job.settings.engine.copies_whole(&job.settings.platforms) {
            return Next::Copy(Why::Differs);
        }
        let source = source.expect("-u fails earlier without a source digest");
        let record = self.ledger.get(&destination.to_string());
        match decide::update(Facts {
            destination: Some(existing),
            source,
            record: record.as_ref(),
            platform: &job.settings.engine.ledger_label(&job.settings.platforms),
        }) {
            Verdict::Unchanged(_) => Next::Skip(Skip::Unchanged),
            Verdict::Copy(why) => Next::Copy(why),
            Verdict::CompareConfigs => Next::Compare,
        }
    }

    /// Acts on a check: compares, asks, and transfers as needed.
    pub async fn finish(
        &self,
        job: &CopyJob,
        destination: &Reference,
        check: &Check,
    ) -> anyhow::Result<Outcome> {
        let why = match self.decide(job, destination, check).await? {
            Decided::Done(outcome) => return Ok(outcome),
            Decided::Transfer(why) => why,
        };
        let delivered = self.transfer(job, destination, check).await?;
        Ok(self.delivered(job, destination, why, delivered))
    }

    /// Finishes several checked copies of one source (`group::by_source`): each decided as
    /// `finish` decides, then one transfer by the engine for all that need one, which reads
    /// the source once. One destination failing does not stop the others. The results come
    /// in the members' order.
    pub async fn finish_group(&self, members: &[Member<'_>]) -> Vec<anyhow::Result<Outcome>> {
        let decided = futures_util::future::join_all(
            members
                .iter()
                .map(|member| self.decide(member.job, member.destination, member.check)),
        )
        .await;
        let mut results: Vec<Option<anyhow::Result<Outcome>>> = Vec::with_capacity(members.len());
        let mut moving = Vec::new();
        for (index, decided) in decided.into_iter().enumerate() {
            match decided {
                Ok(Decided::Done(outcome)) => results.push(Some(Ok(outcome))),
                Err(error) => results.push(Some(Err(error))),
                Ok(Decided::Transfer(why)) => {
                    results.push(None);
                    moving.push(Moving { member: index, why });
                }
            }
        }
        if let [Moving { member, why }] = moving.as_slice() {
            let Member {
                job,
                destination,
                check,
            } = members[*member];
            results[*member] = Some(
                self.transfer(job, destination, check)
                    .await
                    .map(|delivered| self.delivered(job, destination, *why, delivered)),
            );
        } else if let Some(first) = moving.first() {
            // Destinations in one repository (two tags, say) share one handle: it ends once,
            // landed when any of them landed.
            let mut handles: Vec<Handle> = Vec::new();
            for (position, moving) in moving.iter().enumerate() {
                let member = &members[moving.member];
                let repository = self.repository(member.job, member.destination);
                match handles
                    .iter_mut()
                    .find(|handle| handle.repository.key() == repository.key())
                {
                    Some(handle) => handle.writers.push(position),
                    None => handles.push(Handle {
                        repository,
                        writers: vec![position],
                    }),
                }
            }
            let transfers = moving
                .iter()
                .enumerate()
                .map(|(position, moving)| {
                    let handle = handles
                        .iter()
                        .find(|handle| handle.writers.contains(&position))
                        .expect("every transfer has its repository");
                    self.transfer_of(&members[moving.member], &handle.repository)
                })
                .collect();
            let job = members[first.member].job;
            tracing::debug!(image = %job.source, destinations = moving.len(), engine = job.settings.engine.as_str(), "one read into several destinations");
            let delivered = self.engine(job).transfer_many(transfers).await;
            for handle in &handles {
                let landed = handle.writers.iter().any(|&position| delivered[position].is_ok());
                handle.repository.end(landed).await;
            }
            for (moving, delivered) in moving.iter().zip(delivered) {
                let member = &members[moving.member];
                results[moving.member] = Some(
                    delivered
                        .map(|delivered| {
                            self.delivered(member.job, member.destination, moving.why, delivered)
                        })
                        .map_err(|error| with_renewal(error, member.check)),
                );
            }
        }
        results
            .into_iter()
            .map(|result| result.expect("every member decided"))
            .collect()
    }

    /// Compares and asks as the check says: the outcome when no transfer is needed, else why
    /// one is.
    async fn decide(&self, job: &CopyJob, destination: &Reference, check: &Check) -> anyhow::Result<Decided> {
        let why = match check.next {
            Next::Skip(skip) => return Ok(Decided::Done(Outcome::Skipped(skip))),
            Next::AlreadyThere => {
                let digest = check.existing.clone().unwrap_or_default();
                let extras = self.keep_in_step(job, destination, &digest).await;
                return Ok(Decided::Done(Outcome::AlreadyThere { digest, extras }));
            }
            Next::Copy(why) => why,
            Next::Compare if self.options.dry_run && job.source.is_docker_hub() => {
                return Ok(Decided::Done(Outcome::WouldCopy(Why::Unverified)));
            }
            Next::Compare => {
                let source = check.source_digest.as_deref().unwrap_or_default();
                let existing = check.existing.as_deref().unwrap_or_default();
                if self.same_image(job, destination, source, existing).await? {
                    return Ok(Decided::Done(Outcome::Skipped(Skip::Unchanged)));
                }
                Why::Differs
            }
        };
        if self.options.overwrite.interactive
            && check.existing.is_some()
            && !self.options.dry_run
            && !self.confirm.overwrite(destination)
        {
            return Ok(Decided::Done(Outcome::Skipped(Skip::Declined)));
        }
        if self.options.dry_run {
            return Ok(Decided::Done(Outcome::WouldCopy(why)));
        }
        Ok(Decided::Transfer(why))
    }

    /// With referrers asked for, brings those of an image the destination holds already in
    /// step with the source (see `Engine::keep_in_step`); nothing on a dry run.
    async fn keep_in_step(&self, job: &CopyJob, destination: &Reference, digest: &str) -> Extras {
        if !job.settings.referrers || self.options.dry_run || digest.is_empty() {
            return Extras::default();
        }
        self.engine(job)
            .keep_in_step(job, destination, digest, &self.pulls)
            .await
    }

    /// Records what a transfer delivered in the ledger, and says how the copy ended.
    fn delivered(&self, job: &CopyJob, destination: &Reference, why: Why, delivered: Delivered) -> Outcome {
        if let (Some(source_digest), Some(image_id)) = (&delivered.source_digest, &delivered.image_id) {
            self.remember(
                job,
                destination,
                source_digest,
                &delivered.digest,
                image_id.clone(),
            );
        }
        if delivered.already_there {
            Outcome::AlreadyThere {
                digest: delivered.digest,
                extras: Extras {
                    added: delivered.added,
                    notes: delivered.notes,
                },
            }
        } else {
            Outcome::Copied {
                digest: delivered.digest,
                why,
                extras: Extras {
                    added: delivered.added,
                    notes: delivered.notes,
                },
            }
        }
    }

    /// The transfer the engine is handed for `member`, into `repository`.
    fn transfer_of<'t>(&'t self, member: &Member<'t>, repository: &'t Repository<'t>) -> Transfer<'t> {
        Transfer {
            job: member.job,
            destination: member.destination,
            source_digest: member.check.source_digest.as_deref(),
            source_index: member.check.source_index,
            options: self.options,
            repository,
            pulls: &self.pulls,
            booked_pulls: member.check.copy_reads,
        }
    }

    /// Hands the copy to its engine; removes the repository again if the run created it and
    /// no copy landed there.
    async fn transfer(
        &self,
        job: &CopyJob,
        destination: &Reference,
        check: &Check,
    ) -> anyhow::Result<Delivered> {
        let repository = self.repository(job, destination);
        let member = Member {
            job,
            destination,
            check,
        };
        let transfer = self.transfer_of(&member, &repository);
        let delivered = self.engine(job).transfer(transfer).await;
        repository.end(delivered.is_ok()).await;
        delivered.map_err(|error| with_renewal(error, check))
    }

    /// The handle on `destination`'s repository for copies of `job`.
    fn repository<'r>(&'r self, job: &'r CopyJob, destination: &'r Reference) -> Repository<'r> {
        Repository::new(
            destination,
            self.providers.for_host(destination.registry()),
            &job.settings,
            &self.repositories,
        )
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
            RegistryError::Connect { .. }
            | RegistryError::Stalled { .. }
            | RegistryError::StillSilent { .. } => true,
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
    /// pull (say, a credential setup ecrcp does not read); `-u` needs the digest and fails,
    /// and so does the registry engine, which reads the registry itself.
    async fn source_head(&self, job: &CopyJob) -> anyhow::Result<Option<ManifestHead>> {
        let source = &job.source;
        let head = self
            .source_heads
            .get_or_try(source.to_string(), || async {
                match self.registry.head_manifest(source).await {
                    Ok(Some(head)) => Ok(head),
                    other => Err(other),
                }
            })
            .await;
        match head.map(Some).or_else(|other| other) {
            Ok(Some(head)) => Ok(Some(head)),
            Ok(None) => bail!(
                "'{}' does not exist: check the repository name and tag",
                source.familiar()
            ),
            // It names the image and says what to do.
            Err(error @ RegistryError::Inaccessible { .. }) => Err(error.into()),
            Err(error)
                if self.options.overwrite.update
                    || error.holds_for_docker()
                    || job.settings.engine.reads_the_source_itself() =>
            {
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
    /// A copy of several platforms has no one config to compare: it is copied again.
    async fn same_image(
        &self,
        job: &CopyJob,
        destination: &Reference,
        source_digest: &str,
        destination_digest: &str,
    ) -> anyhow::Result<bool> {
        let Lands::Platform(platform) = self.engine(job).lands(job).await? else {
            return Ok(false);
        };
        let source = self
            .source_configs
            .get_or_try((job.source.to_string(), platform.clone()), || {
                self.registry.config_digest(&job.source, &platform)
            })
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
            platform: job.settings.engine.ledger_label(&job.settings.platforms),
            source_digest: source_digest.to_owned(),
            destination_digest: destination_digest.to_owned(),
            image_id,
        };
        self.ledger.record(&destination.to_string(), record);
    }
}

/// docker says only that the pull rate limit is reached; the check's HEAD saw the window
/// Docker Hub counts pulls over, so say when the allowance is whole again.
fn with_renewal(error: anyhow::Error, check: &Check) -> anyhow::Error {
    let quota = Kind::PullQuota.in_chain(&error);
    match check
        .rate_limit
        .and_then(|limit| limit.renewal(std::time::SystemTime::now()))
    {
        Some(renewal) if quota => error.context(format!("the pull rate limit is reached; {renewal}")),
        _ => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A check whose pull bookings alone matter (the group tests use it too).
    pub(super) fn check(next: Next, verify_reads_source: bool, config_reads: u64, copy_reads: u64) -> Check {
        Check {
            source_digest: None,
            existing: None,
            rate_limit: None,
            verify_reads_source,
            source_index: false,
            config_reads,
            copy_reads,
            next,
        }
    }

    #[test]
    fn a_check_books_the_pulls_finishing_may_take() {
        // (next, verify reads the source, config reads, copy reads, pulls)
        let cases = [
            (Next::Skip(Skip::Unchanged), false, 1, 1, 0),
            (Next::AlreadyThere, true, 2, 2, 0),
            (Next::Copy(Why::DestinationMissing), false, 1, 1, 1),
            (Next::Compare, false, 1, 1, 2),
            // Out of an index: the index, then the platform's manifest.
            (Next::Copy(Why::DestinationMissing), false, 2, 2, 2),
            (Next::Compare, false, 2, 2, 4),
            // The containerd store, copying out of an index: verifying reads the source.
            (Next::Copy(Why::SourceChanged), true, 2, 2, 4),
            (Next::Compare, true, 2, 2, 6),
            // The registry engine, three platforms out of an index.
            (Next::Copy(Why::Requested), false, 2, 4, 4),
        ];
        for (next, verify_reads_source, config_reads, copy_reads, pulls) in cases {
            let check = check(next, verify_reads_source, config_reads, copy_reads);
            assert_eq!(
                check.source_pulls(),
                pulls,
                "{next:?} {verify_reads_source} {config_reads} {copy_reads}"
            );
        }
    }
}
