//! The ways of moving an image's bytes into its destination, each behind one small trait.
//! What to copy (and whether) is decided once, in `copy`, for every engine alike; an engine
//! only moves the bytes it is told to and says what the destination serves afterwards.
//! `docker` pulls, tags and pushes with the docker CLI; `registry` speaks the OCI
//! distribution API from registry to registry. Emits events; never prints.

pub mod docker;
pub mod kind;
pub mod memo;
pub mod registry;
pub mod turns;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use anyhow::Context as _;
use futures_util::future::BoxFuture;

use crate::outcome::{self, Fate};
use crate::plan::{CopyJob, CopyOptions, JobSettings};
use crate::provider::Provider;
use crate::reference::Reference;
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
    /// The digest the source's HEAD named during the check, if it answered.
    pub source_digest: Option<&'a str>,
    /// Whether that HEAD named an index (or manifest list).
    pub source_index: bool,
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
/// error is the failure itself, each other's is this, which repeats it, and means what it
/// meant (`outcome`).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SourceFailed {
    pub message: String,
    /// What the first destination's failure means for the run.
    pub fate: Fate,
}

/// `error`, met once for `count` destinations: the first gets it, the others a
/// `SourceFailed` that repeats it.
pub fn for_each_destination(error: anyhow::Error, count: usize) -> Vec<anyhow::Result<Delivered>> {
    let message = format!("{error:#}");
    let fate = outcome::of(&error);
    let mut errors = vec![Err(error)];
    errors.extend((1..count).map(|_| {
        Err(SourceFailed {
            message: message.clone(),
            fate,
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

/// What the copies of one run know of a destination repository, read and changed under its
/// turn. The turn is held only while the repository is made or removed: copies into one
/// repository write side by side, and a failed copy removes a repository the run created
/// only when it is the last copy in it and none landed there.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Shared {
    /// It is known to exist: later copies need not ask its provider again.
    exists: bool,
    /// This run created it.
    created: bool,
    /// Copies that made sure of it and have not ended yet.
    writing: usize,
    /// A copy ended well in it.
    landed: bool,
}

impl Shared {
    /// A copy that made sure the repository exists (`created`: by this very call) starts
    /// writing into it.
    fn join(&mut self, created: bool) {
        self.exists = true;
        self.created |= created;
        self.writing += 1;
    }

    /// A copy that joined ended (`landed`: well); whether the repository is to be removed
    /// now. Then the run forgets it: a later copy makes it anew.
    fn leave(&mut self, landed: bool) -> bool {
        self.writing = self.writing.saturating_sub(1);
        self.landed |= landed;
        let remove = self.created && !self.landed && self.writing == 0;
        if remove {
            *self = Shared::default();
        }
        remove
    }
}

/// The destination repositories of one run, each with its turn.
pub type Repositories = Turns<Shared>;

/// The destination's repository during one transfer (or several into one repository):
/// made through its provider's API (ECR's) on first `ensure`, and removed again by `end` if
/// the run made it and no copy landed there.
pub struct Repository<'a> {
    destination: &'a Reference,
    provider: &'a dyn Provider,
    settings: &'a JobSettings,
    repositories: &'a Repositories,
    /// Whether this handle counts among the repository's writers.
    joined: tokio::sync::Mutex<bool>,
}

impl<'a> Repository<'a> {
    /// `provider` is the destination's; `settings` the job's.
    pub fn new(
        destination: &'a Reference,
        provider: &'a dyn Provider,
        settings: &'a JobSettings,
        repositories: &'a Repositories,
    ) -> Self {
        Repository {
            destination,
            provider,
            settings,
            repositories,
            joined: tokio::sync::Mutex::new(false),
        }
    }

    /// Which repository it is: its registry and name.
    pub fn key(&self) -> String {
        format!(
            "{}/{}",
            self.destination.registry(),
            self.destination.repository()
        )
    }

    /// Makes sure the repository exists: a provider that makes repositories (ECR) creates it
    /// with the job's settings; plain registries create them on the first write, and nothing
    /// of theirs is removed, so copies into them need no turn at all.
    pub async fn ensure(&self) -> anyhow::Result<()> {
        if !self.provider.makes_repositories() {
            return Ok(());
        }
        let mut joined = self.joined.lock().await;
        if *joined {
            return Ok(());
        }
        let mut shared = self.repositories.take(&self.key()).await;
        let created = if shared.exists {
            false
        } else {
            self.provider
                .ensure_repository(
                    self.destination.registry(),
                    self.destination.repository(),
                    self.settings,
                )
                .await
                .with_context(|| format!("cannot create repository '{}'", self.destination.repository()))?
        };
        shared.join(created);
        *joined = true;
        Ok(())
    }

    /// Says how the copies through this handle ended (`landed`: at least one well). The last
    /// copy to end in a repository the run created removes it again (if it is still empty)
    /// when none landed there.
    pub async fn end(&self, landed: bool) {
        let mut joined = self.joined.lock().await;
        if !std::mem::take(&mut *joined) {
            return;
        }
        if !self.provider.makes_repositories() {
            return;
        }
        let mut shared = self.repositories.take(&self.key()).await;
        if shared.leave(landed) {
            self.provider
                .remove_empty_repository(
                    self.destination.registry(),
                    self.destination.repository(),
                    self.settings,
                )
                .await;
        } else if !landed {
            tracing::debug!(
                repository = self.destination.repository(),
                writing = shared.writing,
                landed = shared.landed,
                "a failed copy leaves the repository to the others"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::future::BoxFuture;

    use super::{Repositories, Repository, Shared};
    use crate::plan::JobSettings;
    use crate::provider::Provider;
    use crate::reference::Reference;

    /// A provider that records what the repository handles ask of it.
    struct Recording {
        makes: bool,
        calls: std::sync::Mutex<Vec<String>>,
    }

    impl Provider for Recording {
        fn registry(&self, _host: &str) -> Option<String> {
            None
        }

        fn makes_repositories(&self) -> bool {
            self.makes
        }

        fn ensure_repository<'a>(
            &'a self,
            host: &'a str,
            name: &'a str,
            _settings: &'a JobSettings,
        ) -> BoxFuture<'a, anyhow::Result<bool>> {
            self.calls.lock().unwrap().push(format!("ensure {host}/{name}"));
            Box::pin(async { Ok(true) })
        }

        fn remove_empty_repository<'a>(
            &'a self,
            host: &'a str,
            name: &'a str,
            _settings: &'a JobSettings,
        ) -> BoxFuture<'a, ()> {
            self.calls.lock().unwrap().push(format!("remove {host}/{name}"));
            Box::pin(async {})
        }
    }

    #[tokio::test]
    async fn the_destination_s_provider_makes_its_repository_once_and_removes_it_when_no_copy_landed() {
        // Whether the provider makes repositories, how two copies into one repository
        // ended, and what the provider was asked.
        let cases: [(bool, [bool; 2], &[&str]); 4] = [
            (
                true,
                [false, false],
                &[
                    "ensure registry.example/team/app",
                    "remove registry.example/team/app",
                ],
            ),
            (true, [false, true], &["ensure registry.example/team/app"]),
            (true, [true, true], &["ensure registry.example/team/app"]),
            (false, [false, false], &[]),
        ];
        let destination = Reference::parse("registry.example/team/app:1").unwrap();
        let settings = JobSettings::default();
        for (makes, landed, expected) in cases {
            let provider = Recording {
                makes,
                calls: std::sync::Mutex::default(),
            };
            let repositories = Repositories::default();
            let first = Repository::new(&destination, &provider, &settings, &repositories);
            let second = Repository::new(&destination, &provider, &settings, &repositories);
            first.ensure().await.unwrap();
            second.ensure().await.unwrap();
            first.end(landed[0]).await;
            second.end(landed[1]).await;
            assert_eq!(*provider.calls.lock().unwrap(), expected, "{makes} {landed:?}");
        }
    }

    #[test]
    fn a_created_repository_is_removed_by_the_last_copy_to_end_when_none_landed() {
        // Copies joining (true: created it) and leaving (true: landed); whether each leave
        // removes the repository.
        enum Step {
            Join(bool),
            Leave(bool, bool),
        }
        use Step::{Join, Leave};
        let cases: &[(&str, &[Step])] = &[
            ("the creator fails alone", &[Join(true), Leave(false, true)]),
            ("the creator lands", &[Join(true), Leave(true, false)]),
            ("not created by the run", &[Join(false), Leave(false, false)]),
            (
                "the creator fails while another writes, which then lands",
                &[Join(true), Join(false), Leave(false, false), Leave(true, false)],
            ),
            (
                "the creator fails after another landed",
                &[Join(true), Join(false), Leave(true, false), Leave(false, false)],
            ),
            (
                "both fail: the last one out removes it",
                &[Join(true), Join(false), Leave(false, false), Leave(false, true)],
            ),
            (
                "removed, then made anew by a later copy that fails",
                &[Join(true), Leave(false, true), Join(true), Leave(false, true)],
            ),
            (
                "removed, then found by a later copy that did not make it",
                &[Join(true), Leave(false, true), Join(false), Leave(false, false)],
            ),
        ];
        for (name, steps) in cases {
            let mut shared = Shared::default();
            for (index, step) in steps.iter().enumerate() {
                match *step {
                    Join(created) => shared.join(created),
                    Leave(landed, removes) => {
                        assert_eq!(shared.leave(landed), removes, "{name}: step {index}");
                    }
                }
            }
        }
    }
}
