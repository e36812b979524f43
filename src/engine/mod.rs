//! The ways of moving an image's bytes into its destination, each behind one small trait.
//! What to copy (and whether) is decided once, in `copy`, for every engine alike; an engine
//! only moves the bytes it is told to and says what the destination serves afterwards.
//! `docker` pulls, tags and pushes with the docker CLI; `registry` speaks the OCI
//! distribution API from registry to registry. Emits events; never prints.

pub mod docker;
pub mod memo;
pub mod registry;
pub mod turns;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use anyhow::Context as _;
use futures_util::future::BoxFuture;

use crate::ecr::Ecr;
use crate::plan::{CopyJob, CopyOptions};
use crate::reference::{EcrHost, Reference};
use crate::registry::ManifestHead;

use self::turns::Turns;

/// What a copy of a job puts at its destination, which decides how source and destination
/// are compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lands {
    /// The source's manifest byte for byte, every platform: the destination serves the
    /// source's digest, so digests alone compare them.
    Whole,
    /// One platform's image, compared by its config digest (image ID) when the ledger does
    /// not know the pair.
    Platform(String),
    /// An index rewritten to these platforms: a digest of its own, which only the ledger
    /// links to the source.
    Platforms(Vec<String>),
}

/// What the destination serves after a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The manifest digest the destination tag serves now.
    pub digest: String,
    /// The tag held this very image already (an immutable tag that refused the push).
    pub already_there: bool,
    /// The source digest the copy is known to have read, when it is the one the check saw:
    /// the ledger links it to `digest`. `None` when the tag may have moved in between.
    pub source_digest: Option<String>,
    /// The config digest (image ID) of a single-platform copy, when known.
    pub image_id: Option<String>,
    /// What the user should hear about (say, referrers the destination refused).
    pub notes: Vec<String>,
    /// Referrers and signature tags added beside the image, one line each.
    pub added: Vec<String>,
}

/// What bringing an image's referrers and signature tags in step did at one destination.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extras {
    /// What was added, one line each ("signature tag sha256-….sig", say).
    pub added: Vec<String>,
    /// What the user should hear about (a referrer the destination refused, say).
    pub notes: Vec<String>,
}

/// One transfer, as the engine is handed it.
pub struct Transfer<'a> {
    pub job: &'a CopyJob,
    pub destination: &'a Reference,
    pub ecr: Option<&'a Ecr>,
    /// The digest the source's HEAD named during the check, if it answered.
    pub source_digest: Option<&'a str>,
    pub options: CopyOptions,
    /// The destination repository: `ensure` it before writing anything into it.
    pub repository: &'a Repository<'a>,
    /// Docker Hub pulls: ecrcp's own registry client counts the manifest GETs it makes;
    /// an engine whose reads it cannot see (docker's pulls) books them here.
    pub pulls: &'a Pulls,
    /// The manifest GETs in the source the check booked for this transfer
    /// (`Check::copy_reads`); reads beyond them must be taken with `Pulls::take_extra` first.
    pub booked_pulls: u64,
}

/// A way of moving an image's bytes.
pub trait Engine: Send + Sync {
    /// Its name, as `--engine` and `engine =` spell it.
    fn name(&self) -> &'static str;

    /// What a copy of `job` puts at the destination.
    fn lands<'a>(&'a self, job: &'a CopyJob) -> BoxFuture<'a, anyhow::Result<Lands>>;

    /// Whether verifying a copy of `source` reads the source's manifest once more (a
    /// Docker Hub pull the budget must plan).
    fn verify_reads_source<'a>(&'a self, job: &'a CopyJob, source: &'a ManifestHead) -> BoxFuture<'a, bool>;

    /// Moves one source's bytes to several destinations (transfers of one job group: one
    /// source, engine and platform choice), reading the source once, the tag last at each,
    /// and says what each destination serves now. Each destination succeeds or fails on its
    /// own; the results come in the transfers' order. A failed transfer leaves no tag
    /// pointing at something else than before.
    fn transfer_many<'a>(
        &'a self,
        transfers: Vec<Transfer<'a>>,
    ) -> BoxFuture<'a, Vec<anyhow::Result<Delivered>>>;

    /// Brings the referrers and signature tags of `subject`, an image `destination` already
    /// holds, in step with `job`'s source, at HEAD cost when nothing changed: a source pull
    /// (taken from `pulls`' budget) only for what is new. Engines that cannot copy them do
    /// nothing.
    fn keep_in_step<'a>(
        &'a self,
        _job: &'a CopyJob,
        _destination: &'a Reference,
        _subject: &'a str,
        _pulls: &'a Pulls,
    ) -> BoxFuture<'a, Extras> {
        Box::pin(async { Extras::default() })
    }

    /// `transfer_many` for one destination.
    fn transfer<'a>(&'a self, transfer: Transfer<'a>) -> BoxFuture<'a, anyhow::Result<Delivered>> {
        Box::pin(async move {
            self.transfer_many(vec![transfer])
                .await
                .pop()
                .expect("one result per transfer")
        })
    }
}

/// The source could not be read for a group of destinations: the first destination's
/// error is the failure itself, each other's is this, which repeats it. `sync` classifies
/// it (failed or deferred) as it classified the first.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SourceFailed {
    pub message: String,
}

/// `error`, met once for `count` destinations: the first gets it, the others a
/// `SourceFailed` that repeats it.
pub fn for_each_destination(error: anyhow::Error, count: usize) -> Vec<anyhow::Result<Delivered>> {
    let message = format!("{error:#}");
    let mut errors = vec![Err(error)];
    errors.extend((1..count).map(|_| {
        Err(SourceFailed {
            message: message.clone(),
        }
        .into())
    }));
    errors
}

/// Docker Hub pulls spent by a run, and the most it may still spend, when a budget limits it.
#[derive(Debug, Default)]
pub struct Pulls {
    spent: AtomicU64,
    /// Pulls granted beyond what the checks booked (`None`: no limit).
    extra: Mutex<Option<u64>>,
}

/// A copy needed more Docker Hub pulls than the budget had left.
#[derive(Debug, thiserror::Error)]
#[error("the copy needs {needed} more Docker Hub pulls than its check booked, and the budget has {left} left; deferred to the next run")]
pub struct OverBudget {
    pub needed: u64,
    pub left: u64,
}

impl Pulls {
    /// Limits the pulls that may be spent beyond each copy's booked cost: `None` for no limit.
    pub fn limit_extra(&self, extra: Option<u64>) {
        *self.extra.lock().expect("pull budget poisoned") = extra;
    }

    /// Counts `count` pulls that ran outside ecrcp's registry client (docker's), whether or
    /// not they succeeded.
    pub fn spent(&self, count: u64) {
        self.spent.fetch_add(count, Ordering::SeqCst);
    }

    pub fn total(&self) -> u64 {
        self.spent.load(Ordering::SeqCst)
    }

    /// Takes `count` pulls beyond what the check booked for a copy (say, the children of an
    /// index whose size the check could not know), or refuses when the budget has not that many.
    pub fn take_extra(&self, count: u64) -> Result<(), OverBudget> {
        let mut extra = self.extra.lock().expect("pull budget poisoned");
        match extra.as_mut() {
            None => Ok(()),
            Some(left) if *left >= count => {
                *left -= count;
                Ok(())
            }
            Some(left) => Err(OverBudget {
                needed: count,
                left: *left,
            }),
        }
    }
}

/// The destination's repository during one transfer: created (in ECR) on first `ensure`,
/// and removed again by the copier if the transfer that created it fails. Transfers into
/// one repository take turns from `ensure` until the repository is dropped, so that a
/// rollback never deletes a repository another copy of the run is writing into.
pub struct Repository<'a> {
    destination: &'a Reference,
    ecr: Option<&'a Ecr>,
    settings: &'a crate::plan::RepositorySettings,
    turns: &'a Turns,
    turn: tokio::sync::Mutex<Option<tokio::sync::OwnedMutexGuard<()>>>,
    created: Mutex<bool>,
}

impl<'a> Repository<'a> {
    pub fn new(
        destination: &'a Reference,
        ecr: Option<&'a Ecr>,
        settings: &'a crate::plan::RepositorySettings,
        turns: &'a Turns,
    ) -> Self {
        Repository {
            destination,
            ecr,
            settings,
            turns,
            turn: tokio::sync::Mutex::new(None),
            created: Mutex::new(false),
        }
    }

    /// Takes this repository's turn, and makes sure it exists: ECR repositories are created
    /// with the job's settings; other registries create them on the first write.
    pub async fn ensure(&self) -> anyhow::Result<()> {
        {
            let mut turn = self.turn.lock().await;
            if turn.is_none() {
                let key = format!(
                    "{}/{}",
                    self.destination.registry(),
                    self.destination.repository()
                );
                *turn = Some(self.turns.take(&key).await);
            }
        }
        let Some((host, ecr)) = EcrHost::parse(self.destination.registry()).zip(self.ecr) else {
            return Ok(());
        };
        let created = ecr
            .ensure_repository(&host, self.destination.repository(), self.settings)
            .await
            .with_context(|| format!("cannot create repository '{}'", self.destination.repository()))?;
        if created {
            *self.created.lock().expect("repository flag poisoned") = true;
        }
        Ok(())
    }

    /// Removes the repository if `ensure` created it (and it is still empty).
    pub async fn roll_back(&self) {
        let created = *self.created.lock().expect("repository flag poisoned");
        if let (true, Some((host, ecr))) =
            (created, EcrHost::parse(self.destination.registry()).zip(self.ecr))
        {
            ecr.delete_empty_repository(&host, self.destination.repository())
                .await;
        }
    }
}
