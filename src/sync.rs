//! Many copies, as `ecrcp sync` runs them: one run at a time, HEAD checks for every image
//! first, a Docker Hub pull budget drawn from those checks, bounded parallelism, a clean stop
//! on request, and a summary. Every result is a `tracing` event; nothing here prints.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::stream::{self, StreamExt as _};

use crate::config::SyncConfig;
use crate::copy::{group, Check, Confirm, Copier, Member, Outcome, Skip};
use crate::docker::DockerCli;
use crate::exit::Exit;
use crate::ledger::Ledger;
use crate::lock;
use crate::outcome::{self, Fate};
use crate::plan::{CopyJob, CopyOptions, Overwrite};
use crate::provider::Pacing;
use crate::reference::Reference;
use crate::registry::{RateLimit, RegistryClient};
use crate::report::{self, Counts, ImageRecord, RunRecord};
use crate::setup::Setup;
use crate::shard::Shard;
use crate::state_file;
use crate::tags;

/// A request to stop, shared between whoever hears the signal and the run.
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub dry_run: bool,
    /// Where the ledger and the lock live.
    pub state_dir: PathBuf,
    /// This worker's share of the images, when several split them (`--shard`).
    pub shard: Option<Shard>,
    /// Where the run's metrics go, in Prometheus text (`--metrics-file`).
    pub metrics_file: Option<PathBuf>,
    /// Where the run's JSON report goes (`--report`).
    pub report: Option<PathBuf>,
}

/// What a sync did, image by image, added up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// What became of the images.
    pub counts: Counts,
    /// Docker Hub pulls this run spent: config comparisons and docker pulls, each counted
    /// when it ran.
    pub hub_pulls_spent: u64,
    /// Docker Hub's allowance at the last look, if it reported one.
    pub hub_allowance: Option<RateLimit>,
    pub stopped: bool,
    /// Where the copies that failed were going, in the config's order: with several
    /// destinations per image, which of them did not land.
    pub failed_destinations: Vec<String>,
}

impl Summary {
    pub fn exit(&self) -> Exit {
        if self.stopped {
            Exit::Terminated
        } else if self.counts.failed > 0 {
            Exit::CopyFailed
        } else if self.counts.deferred > 0 {
            Exit::Deferred
        } else {
            Exit::Success
        }
    }
}

/// How one image ended.
enum ImageResult {
    Done(Outcome),
    Deferred(String),
    Failed(anyhow::Error),
    NotStarted,
}

/// sync never asks: it runs unattended.
struct Unattended;

impl Confirm for Unattended {
    fn overwrite(&self, _destination: &Reference) -> bool {
        true
    }
}

/// An image whose checks answered: where it goes, and what the HEADs said.
struct Checked {
    destination: Reference,
    check: Check,
}

/// One image after its checks, on its way to being finished.
struct Planned {
    /// Its job's place in the run's jobs.
    index: usize,
    /// Checked, or why it goes no further.
    checked: Result<Checked, ImageResult>,
    /// How long its checks took.
    checking: Duration,
}

/// An image that ended, before it is logged.
struct Ended {
    index: usize,
    /// `None` when it ended before its checks answered.
    checked: Option<Checked>,
    result: ImageResult,
    checking: Duration,
    /// Its checks and its copy, once it ended.
    took: Duration,
}

/// How one image of the run ended, and where it was going.
struct Finished<'j> {
    job: &'j CopyJob,
    /// `None` when it failed before its destination was known.
    destination: Option<Reference>,
    result: ImageResult,
    /// The source's digest, when the checks saw it.
    source_digest: Option<String>,
    duration_ms: u64,
}

/// The parts of a run that every image uses.
struct Runner<'a> {
    copier: &'a Copier<'a>,
    setup: &'a Setup,
    stop: &'a Stop,
    /// Set by errors that every further image would hit too (no docker, no credentials).
    halt: Stop,
    concurrency: usize,
}

/// Runs one sync pass over `config`.
pub async fn run(
    config: &SyncConfig,
    options: &SyncOptions,
    docker: &DockerCli,
    stop: &Stop,
) -> anyhow::Result<Summary> {
    // A dry run writes nothing, so it cannot get in a real run's way, nor wait for one.
    let _lock = if options.dry_run {
        state_file::check_dir(&options.state_dir)?;
        None
    } else {
        state_file::prepare_dir(&options.state_dir)?;
        Some(lock::acquire(&options.state_dir)?)
    };
    let started = Instant::now();
    let started_at = SystemTime::now();
    let pacing = Pacing {
        workers: options.shard.map_or(1, Shard::count),
        quotas: config.api_quotas.clone(),
    };
    let setup = Setup::new(
        &tags::with_templates(&config.jobs, &config.rules),
        docker,
        &pacing,
    )
    .await?;
    let registry = &setup.registry;
    let expanded = expand_rules(config, options, &setup).await;
    let all = expanded.jobs(&config.jobs);
    let jobs = &*share(all, options.shard);
    let copy_options = CopyOptions {
        overwrite: Overwrite {
            update: true,
            ..Overwrite::default()
        },
        dry_run: options.dry_run,
        progress: false,
        transfers: config.transfers,
    };
    let copier = setup.copier(docker, copy_options, &Unattended, Some(&options.state_dir));
    let runner = Runner {
        copier: &copier,
        setup: &setup,
        stop,
        halt: Stop::default(),
        concurrency: config.concurrency,
    };

    let checks = runner.check_all(jobs).await;
    let allowance = checks
        .iter()
        .filter_map(|planned| planned.checked.as_ref().ok()?.check.rate_limit)
        .min_by_key(|limit| limit.remaining);
    let planned_groups = book(config, options.shard, jobs, &copier, checks, allowance);
    let results = runner.finish_all(jobs, planned_groups).await;

    copier.close().await;
    let mut summary = summarize(&results, stop.is_requested());
    summary.counts.failed += expanded.failures.len();
    summary.hub_pulls_spent = copier.hub_pulls_spent();
    summary.hub_allowance = allowance;
    if summary.hub_pulls_spent > 0 {
        summary.hub_allowance = refreshed_allowance(registry, &results).await.or(allowance);
    }
    log_summary(&summary, started);
    keep_record(
        options,
        RunRecord {
            started: report::unix(started_at),
            ended: report::unix(SystemTime::now()),
            exit: summary.exit().code(),
            last_success: None,
            dry_run: options.dry_run,
            shard: options.shard.map(|shard| shard.to_string()),
            counts: summary.counts,
            bytes_copied: registry.bytes_sent(),
            hub_pulls_spent: summary.hub_pulls_spent,
            hub_pulls_remaining: summary.hub_allowance.map(|limit| limit.remaining),
            throttles: registry.throttles_met(),
            images: results.iter().map(image_record).collect(),
        },
    );
    Ok(summary)
}

/// The jobs of `shard` (all of them when there is none), said in the log.
fn share(all: std::borrow::Cow<'_, [CopyJob]>, shard: Option<Shard>) -> std::borrow::Cow<'_, [CopyJob]> {
    let Some(shard) = shard else {
        return all;
    };
    let mine: Vec<CopyJob> = all
        .iter()
        .filter(|job| shard.owns(&job.source.to_string()))
        .cloned()
        .collect();
    tracing::info!(%shard, images = mine.len(), of = all.len(), "this shard's share of the images");
    std::borrow::Cow::Owned(mine)
}

/// The Docker Hub pulls this worker may count on of the `remaining` the hub reports: all of
/// them alone; as one of several shards behind one address (which share the hub's
/// allowance), the reserve kept once and an even share of the rest.
fn allowance_of(remaining: u64, reserve: u64, shard: Option<Shard>) -> u64 {
    match shard {
        None => remaining,
        Some(shard) => reserve.min(remaining) + shard.share_of(remaining.saturating_sub(reserve)),
    }
}

/// Groups the checked jobs by source and books each group's Docker Hub pulls against the
/// allowance (this shard's share of it): a group that does not fit is deferred whole. Gives
/// the copier the room left beyond the bookings.
fn book(
    config: &SyncConfig,
    shard: Option<Shard>,
    jobs: &[CopyJob],
    copier: &Copier<'_>,
    checks: Vec<Planned>,
    allowance: Option<RateLimit>,
) -> Vec<Vec<Planned>> {
    // Destinations of one source are one group: the source is read, and booked, once.
    let groups = group::by_source(jobs);
    let costs: Vec<u64> = groups
        .iter()
        .map(|members| {
            let hub = jobs[members[0]].source.is_docker_hub();
            let checked = members
                .iter()
                .filter_map(|&index| checks[index].checked.as_ref().ok().map(|checked| &checked.check));
            if hub {
                group::source_pulls(checked)
            } else {
                0
            }
        })
        .collect();
    let remaining = allowance.map(|limit| allowance_of(limit.remaining, config.reserve_pulls, shard));
    let allowed = budget(&costs, remaining, config.reserve_pulls);
    // What the copies may take beyond their bookings: the registry engine learns how many
    // platforms an index holds only when it reads it.
    let booked: u64 = costs
        .iter()
        .zip(&allowed)
        .filter(|(_, allowed)| **allowed)
        .map(|(cost, _)| cost)
        .sum();
    copier.limit_extra_pulls(remaining.map(|remaining| {
        remaining
            .saturating_sub(config.reserve_pulls)
            .saturating_sub(booked)
    }));
    let mut job_allowed = vec![true; jobs.len()];
    for (members, allowed) in groups.iter().zip(&allowed) {
        for &index in members {
            job_allowed[index] = *allowed;
        }
    }
    let mut planned: Vec<Option<Planned>> = checks
        .into_iter()
        .zip(job_allowed)
        .map(|(planned, allowed)| match planned.checked {
            Ok(_) if !allowed => Some(Planned {
                checked: Err(ImageResult::Deferred(format!(
                    "Docker Hub allows {} more pulls and {} are kept in reserve",
                    allowance.map_or(0, |limit| limit.remaining),
                    config.reserve_pulls
                ))),
                ..planned
            }),
            _ => Some(planned),
        })
        .collect();
    groups
        .iter()
        .map(|members| {
            members
                .iter()
                .map(|&index| planned[index].take().expect("each job is in one group"))
                .collect()
        })
        .collect()
}

/// The config's tag rules as jobs: each source repository listed once, tag lists kept in
/// the state directory (but for a dry run), rule entries that cannot be listed logged as
/// failed images, and earlier copies that left a rule named.
async fn expand_rules(config: &SyncConfig, options: &SyncOptions, setup: &Setup) -> tags::Expanded {
    if config.rules.is_empty() {
        return tags::Expanded::default();
    }
    let mut listings = tags::Listings::load(&options.state_dir, !options.dry_run);
    let expanded = tags::expand(
        &config.jobs,
        &config.rules,
        &setup.registry,
        &mut listings,
        config.concurrency,
    )
    .await;
    // Written and synced off the async workers, as the ledger is.
    if let Err(error) = tokio::task::spawn_blocking(move || listings.save()).await {
        tracing::warn!(%error, "cannot save the tag lists; the next run lists them anew");
    }
    for failure in &expanded.failures {
        tracing::error!(image = %failure.label, outcome = "failed", error = %format!("{:#}", failure.error), "image failed");
    }
    tags::report_left_behind(
        &Ledger::load_read_only(&options.state_dir),
        &config.rules,
        &expanded.jobs(&config.jobs),
        |job| setup.resolve(job).ok(),
    );
    expanded
}

impl Runner<'_> {
    fn stopping(&self) -> bool {
        self.stop.is_requested() || self.halt.is_requested()
    }

    /// HEAD checks for every image, in parallel; nothing is pulled. Each comes with the time
    /// it took. Their tokens are asked for first, many repositories per request, where the
    /// checks would ask one per image.
    async fn check_all(&self, jobs: &[CopyJob]) -> Vec<Planned> {
        self.setup
            .registry
            .prepare_reads(&checked_images(jobs, self.setup))
            .await;
        bounded(
            jobs.iter().enumerate(),
            checks_at_once(self.concurrency),
            |(index, job)| async move {
                let started = Instant::now();
                let checked = if self.stopping() {
                    Err(ImageResult::NotStarted)
                } else {
                    async {
                        let destination = self.setup.resolve(job)?;
                        let check = self.copier.check(job, &destination).await?;
                        Ok::<_, anyhow::Error>(Checked { destination, check })
                    }
                    .await
                    .map_err(|error| self.failure(error))
                };
                Planned {
                    index,
                    checked,
                    checking: started.elapsed(),
                }
            },
        )
        .await
    }

    /// Finishes the checked images, a group of one source at a time and groups in parallel,
    /// logging each image as it ends. The results come in the jobs' order.
    async fn finish_all<'j>(&self, jobs: &'j [CopyJob], groups: Vec<Vec<Planned>>) -> Vec<Finished<'j>> {
        let finished = bounded(groups.into_iter(), self.concurrency, |members| async move {
            let image_started = Instant::now();
            // Each starts as not started; those that run get their result when they end.
            let mut ready = Vec::new();
            let mut ended = Vec::new();
            for planned in members {
                let mut image = Ended {
                    index: planned.index,
                    checked: None,
                    result: ImageResult::NotStarted,
                    checking: planned.checking,
                    took: planned.checking,
                };
                match planned.checked {
                    Ok(checked) => {
                        image.checked = Some(checked);
                        if self.stopping() {
                            ended.push(image);
                        } else {
                            ready.push(image);
                        }
                    }
                    Err(result) => {
                        image.result = result;
                        ended.push(image);
                    }
                }
            }
            let outcomes = {
                let members: Vec<Member> = ready
                    .iter()
                    .map(|image| {
                        let checked = image.checked.as_ref().expect("a ready image is checked");
                        Member {
                            job: &jobs[image.index],
                            destination: &checked.destination,
                            check: &checked.check,
                        }
                    })
                    .collect();
                self.copier.finish_group(&members).await
            };
            for (mut image, outcome) in ready.into_iter().zip(outcomes) {
                image.result = match outcome {
                    Ok(outcome) => ImageResult::Done(outcome),
                    Err(error) => self.failure(error),
                };
                ended.push(image);
            }
            for image in &mut ended {
                image.took = image.checking + image_started.elapsed();
                let checked = image.checked.as_ref();
                log_image(
                    &jobs[image.index],
                    checked.map(|checked| &checked.destination),
                    checked.map(|checked| &checked.check),
                    &image.result,
                    image.took.as_millis(),
                );
            }
            ended
        })
        .await;
        let mut ended: Vec<Ended> = finished.into_iter().flatten().collect();
        ended.sort_by_key(|image| image.index);
        ended
            .into_iter()
            .map(|image| Finished {
                job: &jobs[image.index],
                source_digest: image
                    .checked
                    .as_ref()
                    .and_then(|checked| checked.check.source_digest.clone()),
                destination: image.checked.map(|checked| checked.destination),
                result: image.result,
                duration_ms: u64::try_from(image.took.as_millis()).unwrap_or(u64::MAX),
            })
            .collect()
    }

    /// What a failed image's error means (`outcome`): a failure, or a deferral when a
    /// quota or a throttle was the reason, with either engine alike: the next run will do.
    /// A failure that every further image would meet too stops the run.
    fn failure(&self, error: anyhow::Error) -> ImageResult {
        match outcome::of(&error) {
            Fate::Defer => ImageResult::Deferred(format!("{error:#}")),
            Fate::Fail => ImageResult::Failed(error),
            Fate::Stop => {
                self.halt.request();
                ImageResult::Failed(error)
            }
        }
    }
}

/// How many images are checked at once when `jobs` copies may run at once: eight times as
/// many, up to 32. A check is two HEADs and waits on round trips, not on bandwidth, so a
/// pass over a thousand unchanged images is bounded by latency divided by this; 32 images
/// (64 requests in flight, multiplexed over one connection per registry where it speaks
/// HTTP/2) stays a modest load for any registry.
fn checks_at_once(jobs: usize) -> usize {
    (jobs * 8).clamp(jobs.max(1), 32.max(jobs))
}

/// The images the checks HEAD: every source, and every destination that resolves.
fn checked_images(jobs: &[CopyJob], setup: &Setup) -> Vec<Reference> {
    jobs.iter()
        .flat_map(|job| [Some(job.source.clone()), setup.resolve(job).ok()])
        .flatten()
        .collect()
}

/// Which copies may run, given the most Docker Hub pulls each may spend (`costs`), so that
/// at least `reserve` pulls of the `remaining` allowance are left: in order, each one that
/// still fits. A copy is never started on a part of what it needs. No known allowance (no
/// `ratelimit-*` headers) means no limit.
pub fn budget(costs: &[u64], remaining: Option<u64>, reserve: u64) -> Vec<bool> {
    let mut left = remaining.map(|remaining| remaining.saturating_sub(reserve));
    costs
        .iter()
        .map(|&cost| match &mut left {
            None => true,
            Some(left) if cost <= *left => {
                *left -= cost;
                true
            }
            Some(_) => false,
        })
        .collect()
}

fn summarize(results: &[Finished], stopped: bool) -> Summary {
    let mut summary = Summary {
        stopped,
        ..Summary::default()
    };
    let counts = &mut summary.counts;
    for finished in results {
        if let ImageResult::Done(outcome) = &finished.result {
            counts.referrers_added += outcome.extras().map_or(0, |extras| extras.added.len());
        }
        match &finished.result {
            ImageResult::Done(Outcome::Copied { .. }) => counts.copied += 1,
            ImageResult::Done(Outcome::AlreadyThere { .. } | Outcome::Skipped(_)) => counts.unchanged += 1,
            ImageResult::Done(Outcome::WouldCopy(_)) => counts.would_copy += 1,
            ImageResult::Deferred(_) => counts.deferred += 1,
            ImageResult::Failed(_) => {
                counts.failed += 1;
                summary.failed_destinations.push(match &finished.destination {
                    Some(destination) => destination.to_string(),
                    None => format!("{} (from {})", finished.job.destination, finished.job.label),
                });
            }
            ImageResult::NotStarted => counts.not_started += 1,
        }
    }
    summary
}

fn log_summary(summary: &Summary, started: Instant) {
    tracing::info!(
        copied = summary.counts.copied,
        unchanged = summary.counts.unchanged,
        would_copy = summary.counts.would_copy,
        deferred = summary.counts.deferred,
        failed = summary.counts.failed,
        not_started = summary.counts.not_started,
        referrers_added = summary.counts.referrers_added,
        hub_pulls_spent = summary.hub_pulls_spent,
        hub_pulls_remaining = summary.hub_allowance.map(|limit| limit.remaining),
        failed_destinations = %summary.failed_destinations.join(", "),
        duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "sync finished"
    );
}

/// Docker Hub's allowance after the copies, from one more HEAD (free on Docker Hub).
async fn refreshed_allowance(registry: &RegistryClient, results: &[Finished<'_>]) -> Option<RateLimit> {
    let finished = results
        .iter()
        .find(|finished| finished.job.source.is_docker_hub())?;
    registry
        .head_manifest(&finished.job.source)
        .await
        .ok()??
        .rate_limit
}

/// How a finished image is said, in the log and the records: its outcome and why.
fn done_words(done: &Outcome) -> (&'static str, &str) {
    match done {
        Outcome::Copied { why, .. } => ("copied", why.as_str()),
        Outcome::AlreadyThere { .. } => ("unchanged", "same digest"),
        Outcome::Skipped(Skip::Unchanged) => ("unchanged", "same image"),
        Outcome::Skipped(_) => ("skipped", ""),
        Outcome::WouldCopy(why) => ("would copy", why.as_str()),
    }
}

/// The record of one finished image.
fn image_record(finished: &Finished) -> ImageRecord {
    let (outcome, why) = match &finished.result {
        ImageResult::Done(done) => {
            let (outcome, why) = done_words(done);
            (outcome, why.to_owned())
        }
        ImageResult::Deferred(reason) => ("deferred", reason.clone()),
        ImageResult::Failed(error) => ("failed", format!("{error:#}")),
        ImageResult::NotStarted => ("not started", "the run was stopping".to_owned()),
    };
    ImageRecord {
        image: finished.job.label.clone(),
        destination: finished
            .destination
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        outcome: outcome.to_owned(),
        why,
        source_digest: finished.source_digest.clone(),
        duration_ms: finished.duration_ms,
    }
}

/// Keeps what the run did: the last run in the state directory (for `ecrcp status`; not on
/// a dry run, which writes nothing there), the metrics file (not on a dry run either) and
/// the JSON report. A file that cannot be written is logged; the run's outcome stands.
fn keep_record(options: &SyncOptions, record: RunRecord) {
    let record = record.after(report::load_last(&options.state_dir).as_ref());
    let mut written = Vec::new();
    if !options.dry_run {
        written.push((
            "last run",
            report::last_run_path(&options.state_dir),
            report::save_last(&options.state_dir, &record),
        ));
        if let Some(path) = &options.metrics_file {
            written.push(("metrics file", path.clone(), report::write_metrics(path, &record)));
        }
    }
    if let Some(path) = &options.report {
        written.push(("report", path.clone(), report::write_report(path, &record)));
    }
    for (what, path, result) in written {
        if let Err(error) = result {
            tracing::warn!(file = %path.display(), %error, "cannot write the run's {what}");
        }
    }
}

fn log_image(
    job: &CopyJob,
    destination: Option<&Reference>,
    check: Option<&Check>,
    result: &ImageResult,
    duration: u128,
) {
    let destination = destination.map(ToString::to_string).unwrap_or_default();
    let source_digest = check
        .and_then(|check| check.source_digest.as_deref())
        .unwrap_or_default();
    let duration_ms = u64::try_from(duration).unwrap_or(u64::MAX);
    let image = job.label.as_str();
    match result {
        ImageResult::Done(done) => {
            let (outcome, why) = done_words(done);
            let engine = job.settings.engine.as_str();
            tracing::info!(image, source_digest, %destination, outcome, why, engine, duration_ms, "image synced");
            for note in done.extras().map_or(&[][..], |extras| extras.notes.as_slice()) {
                tracing::warn!(image, %destination, note = %note, "image note");
            }
        }
        ImageResult::Deferred(reason) => {
            tracing::warn!(image, source_digest, %destination, outcome = "deferred", why = %reason, duration_ms, "image deferred");
        }
        ImageResult::Failed(error) => {
            tracing::error!(image, source_digest, %destination, outcome = "failed", error = %format!("{error:#}"), duration_ms, "image failed");
        }
        ImageResult::NotStarted => {
            tracing::warn!(image, %destination, outcome = "not started", duration_ms, "image not started: the run is stopping");
        }
    }
}

/// Runs `work` on every item, at most `limit` at once, and returns the results in the
/// items' order.
async fn bounded<I, T, F, Fut>(items: I, limit: usize, work: F) -> Vec<Fut::Output>
where
    I: Iterator<Item = T>,
    F: Fn(T) -> Fut,
    Fut: Future,
{
    let mut results: Vec<(usize, Fut::Output)> = stream::iter(items.enumerate())
        .map(|(index, item)| {
            let future = work(item);
            async move { (index, future.await) }
        })
        .buffer_unordered(limit.max(1))
        .collect()
        .await;
    results.sort_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, result)| result).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_status_says_what_happened() {
        let cases = [
            (Summary::default(), Exit::Success),
            (
                Summary {
                    counts: Counts {
                        copied: 3,
                        unchanged: 2,
                        ..Counts::default()
                    },
                    ..Summary::default()
                },
                Exit::Success,
            ),
            (
                Summary {
                    counts: Counts {
                        deferred: 1,
                        ..Counts::default()
                    },
                    ..Summary::default()
                },
                Exit::Deferred,
            ),
            (
                Summary {
                    counts: Counts {
                        deferred: 1,
                        failed: 1,
                        ..Counts::default()
                    },
                    ..Summary::default()
                },
                Exit::CopyFailed,
            ),
            (
                Summary {
                    counts: Counts {
                        failed: 1,
                        ..Counts::default()
                    },
                    stopped: true,
                    ..Summary::default()
                },
                Exit::Terminated,
            ),
        ];
        for (summary, exit) in cases {
            assert_eq!(summary.exit(), exit, "{summary:?}");
        }
    }

    #[test]
    fn the_pull_budget_books_each_copy_at_its_cost_and_keeps_the_reserve() {
        // costs (0: no pull, 1: a copy, 2: a comparison then a copy), remaining, reserve, allowed
        type Case<'a> = (&'a [u64], Option<u64>, u64, &'a [bool]);
        let t = true;
        let f = false;
        let cases: [Case; 10] = [
            (&[1, 1, 1], None, 10, &[t, t, t]),
            (&[2, 2, 2], None, 10, &[t, t, t]),
            (&[1, 1, 1], Some(100), 10, &[t, t, t]),
            (&[1, 1, 1], Some(12), 10, &[t, t, f]),
            (&[1, 0, 1, 1], Some(11), 10, &[t, t, f, f]),
            (&[1, 0], Some(5), 10, &[f, t]),
            (&[0, 0], Some(0), 10, &[t, t]),
            // A lost ledger: every copy compares first, and costs two.
            (&[2, 2, 2], Some(13), 10, &[t, f, f]),
            (&[2, 2, 2], Some(14), 10, &[t, t, f]),
            // What does not fit is deferred; a cheaper copy after it may still run.
            (&[2, 1, 2], Some(11), 10, &[f, t, f]),
        ];
        for (costs, remaining, reserve, expected) in cases {
            assert_eq!(
                budget(costs, remaining, reserve),
                expected,
                "{costs:?} {remaining:?} {reserve}"
            );
        }
    }

    #[test]
    fn shards_keep_the_reserve_once_and_split_the_rest() {
        let shard = |text: &str| Some(Shard::parse(text).unwrap());
        // remaining, reserve, shard -> what this worker may count on
        let cases = [
            (100, 10, None, 100),
            (100, 10, shard("1/3"), 10 + 30),
            (100, 10, shard("3/3"), 10 + 30),
            (101, 10, shard("1/3"), 10 + 31),
            (5, 10, shard("1/2"), 5),
            (0, 0, shard("2/2"), 0),
        ];
        for (remaining, reserve, shard, expected) in cases {
            assert_eq!(
                allowance_of(remaining, reserve, shard),
                expected,
                "{remaining} {reserve} {shard:?}"
            );
        }
        // Behind one address, the shards together book no more than one worker alone would.
        let together: u64 = (1..=3)
            .map(|k| allowance_of(100, 10, shard(&format!("{k}/3"))) - 10)
            .sum();
        assert_eq!(together, 90);
    }

    #[test]
    fn checks_run_eight_per_copy_slot_up_to_32() {
        for (jobs, checks) in [(0, 1), (1, 8), (2, 16), (4, 32), (5, 32), (32, 32)] {
            assert_eq!(checks_at_once(jobs), checks, "jobs = {jobs}");
        }
    }

    #[tokio::test]
    async fn bounded_keeps_order_and_the_limit() {
        use std::sync::atomic::AtomicUsize;
        let running = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let results = bounded(0..20_u64, 3, |n| {
            let (running, most) = (&running, &most);
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(20 - n)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                n * 2
            }
        })
        .await;
        assert_eq!(results, (0..20).map(|n| n * 2).collect::<Vec<_>>());
        assert_eq!(most.load(Ordering::SeqCst), 3);
    }
}
