//! The registry engine: copies an image from registry to registry over the OCI distribution
//! API, every platform and byte for byte unless narrowed, without docker. The order holds a
//! failed copy harmless: blobs first, then child manifests by digest, the tag last, checked
//! by the PUT's answer or else a HEAD. Emits events (and draws progress when asked); never
//! prints otherwise.

mod blobs;
mod limits;
mod referrers;
pub mod tree;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use anyhow::{anyhow, bail, Context as _};
use futures_util::future::BoxFuture;
use futures_util::{StreamExt as _, TryStreamExt as _};

use self::limits::Gates;
pub use self::limits::Limits;
use self::tree::{Descriptor, Parsed, Selection};
use super::memo::Memo;
use super::{Delivered, Engine, Extras, Lands, OverBudget, Pulls, Transfer};
use crate::plan::CopyJob;
use crate::progress::{BlobState, Board, ImageProgress};
use crate::reference::Reference;
use crate::registry::digest;
use crate::registry::manifests::{RawManifest, Stored};
use crate::registry::{Access, ManifestHead, RegistryClient, RegistryError, Scopes};

/// How deep indexes may nest: deeper is a loop or an attack, not an image.
const MAX_DEPTH: usize = 4;
/// The most bytes of manifests one copy reads and holds (each is at most 4 MiB): a nested
/// index of a few dozen platforms is well under 1 MiB, so only a hostile source comes near.
const MAX_MANIFEST_BYTES_PER_COPY: usize = 64 << 20;
/// Requests about an index's children (HEADs at the destination, reads at the source) under
/// way at once, per index walked.
const CHILD_REQUESTS: usize = 8;

pub struct RegistryEngine<'a> {
    registry: &'a RegistryClient,
    gates: Gates,
    /// The repositories known (this run) to hold each blob, per registry host: where a
    /// later copy into the same registry can mount it from.
    holders: Mutex<std::collections::HashMap<(String, String), Vec<String>>>,
    /// Blobs found or put at a destination so far: the progress retries go on for.
    landed: AtomicU64,
    board: Board,
}

impl<'a> RegistryEngine<'a> {
    /// `limits`: how many blobs move at once, overall and per registry host (a number sets both).
    pub fn new(registry: &'a RegistryClient, limits: impl Into<Limits>) -> Self {
        RegistryEngine {
            registry,
            gates: Gates::new(limits.into()),
            holders: Mutex::new(std::collections::HashMap::new()),
            landed: AtomicU64::new(0),
            board: Board::default(),
        }
    }

    /// Notes that `image`'s repository holds `digest`.
    fn holds(&self, image: &Reference, digest: &str) {
        self.landed.fetch_add(1, Ordering::SeqCst);
        let mut holders = self.holders.lock().expect("blob holders poisoned");
        let repositories = holders
            .entry((image.api_host().to_owned(), digest.to_owned()))
            .or_default();
        if !repositories.iter().any(|known| known == image.repository()) {
            repositories.push(image.repository().to_owned());
        }
    }

    /// How many times a destination was found or made to hold a blob so far.
    fn landed(&self) -> u64 {
        self.landed.load(Ordering::SeqCst)
    }

    /// A repository of `image`'s registry, other than its own, known to hold `digest`.
    fn mount_source(&self, image: &Reference, digest: &str) -> Option<String> {
        self.holders
            .lock()
            .expect("blob holders poisoned")
            .get(&(image.api_host().to_owned(), digest.to_owned()))?
            .iter()
            .find(|repository| *repository != image.repository())
            .cloned()
    }
}

impl Engine for RegistryEngine<'_> {
    fn lands<'a>(&'a self, job: &'a CopyJob) -> BoxFuture<'a, anyhow::Result<Lands>> {
        Box::pin(async move {
            Ok(match job.settings.platforms.as_slice() {
                [] => Lands::Whole,
                [one] => Lands::Platform(one.clone()),
                several => Lands::Platforms(several.to_vec()),
            })
        })
    }

    fn verify_reads_source<'a>(
        &'a self,
        _job: &'a CopyJob,
        _source: &'a ManifestHead,
    ) -> BoxFuture<'a, bool> {
        Box::pin(async { false })
    }

    fn keep_in_step<'a>(
        &'a self,
        job: &'a CopyJob,
        destination: &'a Reference,
        subject: &'a str,
        pulls: &'a Pulls,
    ) -> BoxFuture<'a, Extras> {
        Box::pin(async move {
            let source = &job.source;
            let progress = ImageProgress::off();
            // Nothing was booked: every read of the source comes out of the budget.
            let meter = Mutex::new(Meter {
                pulls,
                hub: source.is_docker_hub(),
                granted: 0,
                used: 0,
            });
            let children = Memo::default();
            let copying = Copying {
                engine: self,
                source,
                destination,
                source_scopes: Scopes::pull(source.repository()),
                destination_scopes: Scopes::push(destination.repository()),
                progress: &progress,
                meter: &meter,
                children: &children,
                platforms: &job.settings.platforms,
            };
            copying.copy_referrers(&[subject.to_owned()]).await
        })
    }

    /// Each manifest read once, each blob read once and streamed to every destination that
    /// lacks it.
    fn transfer_many<'a>(
        &'a self,
        transfers: Vec<Transfer<'a>>,
    ) -> BoxFuture<'a, Vec<anyhow::Result<Delivered>>> {
        Box::pin(self.transfer_all(transfers))
    }
}

impl RegistryEngine<'_> {
    /// Copies one source (the transfers share it, and the platforms asked for) to each
    /// transfer's destination; each destination fails on its own.
    async fn transfer_all(&self, transfers: Vec<Transfer<'_>>) -> Vec<anyhow::Result<Delivered>> {
        let Some(first) = transfers.first() else {
            return Vec::new();
        };
        let source = &first.job.source;
        let single = transfers.len() == 1;
        // On one registry, one token covers the read, the push and the mount between them.
        let scopes = |destination: &Reference| {
            if source.api_host() == destination.api_host() {
                Scopes::push(destination.repository()).with(source.repository(), Access::Pull)
            } else {
                Scopes::push(destination.repository())
            }
        };
        let source_scopes = if single && source.api_host() == first.destination.api_host() {
            scopes(first.destination)
        } else {
            Scopes::pull(source.repository())
        };
        let progress = if first.options.progress {
            let to = if single {
                first.destination.to_string()
            } else {
                format!("{} destinations", transfers.len())
            };
            self.board.image(&format!("{} -> {to}", source.familiar()))
        } else {
            ImageProgress::off()
        };
        let meter = Mutex::new(Meter {
            pulls: first.pulls,
            hub: source.is_docker_hub(),
            granted: first.booked_pulls,
            used: 0,
        });
        let children = Memo::default();
        let copyings: Vec<Copying> = transfers
            .iter()
            .map(|transfer| Copying {
                engine: self,
                source,
                destination: transfer.destination,
                source_scopes: source_scopes.clone(),
                destination_scopes: scopes(transfer.destination),
                progress: &progress,
                meter: &meter,
                children: &children,
                platforms: &first.job.settings.platforms,
            })
            .collect();
        let results = run(&copyings, &transfers).await;
        for (copying, result) in copyings.iter().zip(&results) {
            match result {
                Ok(delivered) => {
                    tracing::info!(image = %copying.destination, digest = %delivered.digest, outcome = if delivered.already_there { "already there" } else { "copied" }, "registry copy done");
                }
                Err(error) => {
                    tracing::info!(image = %copying.destination, error = %format!("{error:#}"), outcome = "failed", "registry copy failed");
                }
            }
        }
        let landed = results.iter().filter(|result| result.is_ok()).count();
        progress.finish(&match (landed, results.len()) {
            (0, _) => "failed".to_owned(),
            (1, 1) => format!(
                "{}: done",
                results[0]
                    .as_ref()
                    .map(|delivered| delivered.digest.as_str())
                    .unwrap_or_default()
            ),
            (landed, all) => format!("{landed} of {all} destinations done"),
        });
        results
    }
}

/// Runs one source's copies: the source's manifests read once, the blobs read once for
/// every destination that lacks them, then each destination's manifests and tag.
async fn run(copyings: &[Copying<'_>], transfers: &[Transfer<'_>]) -> Vec<anyhow::Result<Delivered>> {
    let first = &copyings[0];
    let source = first.source;
    // Each repository is made while the source's manifests are read and walked: all are
    // round trips, and nothing is written into a repository before the blobs. A copy that
    // fails after its repository was made has it removed again (`Repository::end`).
    let ensured =
        futures_util::future::join_all(transfers.iter().map(|transfer| transfer.repository.ensure()));
    let read = async {
        let top = first
            .fetch(source.manifest_reference(), 1)
            .await?
            .ok_or_else(|| {
                anyhow!(
                    "'{}' does not exist\nnote: check the name and the tag",
                    source.familiar()
                )
            })?;
        tracing::debug!(image = %source, digest = %top.digest, "source manifest read");
        let landing = first.landing(top.clone()).await?;
        // The walks go one after the other, so that a child manifest missing at several
        // destinations is read once.
        let mut plans = Vec::with_capacity(copyings.len());
        for copying in copyings {
            let mut plan = Plan::default();
            let walked = copying.walk(&landing, &mut plan, 0).await;
            plan.subjects.push(landing.digest.clone());
            plans.push(walked.map(|()| plan));
        }
        Ok::<_, anyhow::Error>((top, landing, plans))
    };
    let (ensured, read) = tokio::join!(ensured, read);
    let (top, landing, plans) = match read {
        Ok(read) => read,
        Err(error) => return super::for_each_destination(error, copyings.len()),
    };
    let (mut failed, plans): (Vec<Option<anyhow::Error>>, Vec<Plan>) = ensured
        .into_iter()
        .zip(plans)
        .map(|(ensured, plan)| match (ensured, plan) {
            (Err(error), _) | (Ok(()), Err(error)) => (Some(error), Plan::default()),
            (Ok(()), Ok(plan)) => (None, plan),
        })
        .unzip();
    let targets: Vec<&Copying> = copyings.iter().collect();
    copy_blobs(&targets, &plans, &mut failed).await;
    let (top, landing) = (&top, &landing);
    let finished =
        futures_util::future::join_all(copyings.iter().zip(&plans).zip(transfers).zip(&failed).map(
            |(((copying, plan), transfer), failed)| async move {
                match failed {
                    None => Some(copying.finish(top, landing, plan, transfer).await),
                    Some(_) => None,
                }
            },
        ))
        .await;
    finished
        .into_iter()
        .zip(failed)
        .map(|(finished, failed)| match (finished, failed) {
            (Some(result), _) => result,
            (None, Some(error)) => Err(error),
            (None, None) => unreachable!("a destination either failed or finished"),
        })
        .collect()
}

/// Copies the blobs every destination's plan names, as many at once as the gates let
/// through; each blob is read once for all destinations that lack it. A destination that
/// fails gets its error in `failed` and is left out of the blobs after.
async fn copy_blobs(copyings: &[&Copying<'_>], plans: &[Plan], failed: &mut [Option<anyhow::Error>]) {
    let blobs = largest_first(plans.iter().flat_map(|plan| &plan.blobs));
    let progress = copyings[0].progress;
    for blob in &blobs {
        progress.blob(&blob.digest, blob.size);
    }
    let failures = Mutex::new(failed.iter().map(Option::is_some).collect::<Vec<_>>());
    let errors: Mutex<Vec<(usize, anyhow::Error)>> = Mutex::new(Vec::new());
    let parallel = copyings[0].engine.gates.overall();
    futures_util::stream::iter(blobs)
        .for_each_concurrent(parallel, |blob| {
            let (failures, errors) = (&failures, &errors);
            async move {
                let needing: Vec<usize> = {
                    let failures = failures.lock().expect("failures poisoned");
                    (0..copyings.len())
                        .filter(|&index| {
                            !failures[index] && plans[index].blobs.iter().any(|known| known.digest == blob.digest)
                        })
                        .collect()
                };
                if needing.is_empty() {
                    return;
                }
                let started = std::time::Instant::now();
                let targets: Vec<&Copying> = needing.iter().map(|&index| copyings[index]).collect();
                let moved = blobs::fan_blob(&targets, blob).await;
                let mut state = None;
                for (index, moved) in needing.into_iter().zip(moved) {
                    match moved {
                        Ok(moved) => {
                            tracing::debug!(image = %copyings[index].destination, blob = %blob.digest, outcome = moved.outcome(), "blob copied");
                            let this = match moved {
                                blobs::Moved::Present => BlobState::Exists,
                                blobs::Moved::Mounted => BlobState::Mounted,
                                blobs::Moved::Sent(bytes) => {
                                    copyings[index].registry().count_sent(bytes);
                                    BlobState::Sent {
                                        bytes,
                                        took: started.elapsed(),
                                    }
                                }
                            };
                            state = Some(this);
                        }
                        Err(error) => {
                            failures.lock().expect("failures poisoned")[index] = true;
                            errors
                                .lock()
                                .expect("errors poisoned")
                                .push((index, anyhow::Error::new(error)));
                        }
                    }
                }
                if let Some(state) = state {
                    progress.set(&blob.digest, state);
                }
            }
        })
        .await;
    for (index, error) in errors.into_inner().expect("errors poisoned") {
        failed[index].get_or_insert(error);
    }
}

/// Each blob once, the largest first: the copy ends when its last blob does, so a small
/// one (a config, a short layer) started first would hold a place a large one then waits
/// for, and one started last ends soon after the large ones.
fn largest_first<'a>(blobs: impl IntoIterator<Item = &'a Descriptor>) -> Vec<&'a Descriptor> {
    let mut unique: Vec<&Descriptor> = Vec::new();
    for blob in blobs {
        if !unique.iter().any(|known| known.digest == blob.digest) {
            unique.push(blob);
        }
    }
    // Stable: blobs of one size keep the order the manifests list them in.
    unique.sort_by_key(|blob| std::cmp::Reverse(blob.size));
    unique
}

/// Docker Hub pulls during one copy: counted as manifests are read (the registry client
/// books them on the run's count), taken beyond the check's booking before reads it did
/// not plan.
struct Meter<'a> {
    pulls: &'a Pulls,
    hub: bool,
    granted: u64,
    used: u64,
}

impl Meter<'_> {
    /// Makes sure `count` more reads fit in what was booked, taking the rest from the budget.
    fn reserve(&mut self, count: u64) -> Result<(), OverBudget> {
        if !self.hub || self.used + count <= self.granted {
            return Ok(());
        }
        let extra = self.used + count - self.granted;
        self.pulls.take_extra(extra)?;
        self.granted += extra;
        Ok(())
    }

    fn spend(&mut self) {
        if self.hub {
            self.used += 1;
        }
    }
}

/// What one copy moves, found by walking the manifests before anything is written.
#[derive(Default)]
struct Plan {
    /// Each blob once, in the order met.
    blobs: Vec<Descriptor>,
    /// Child manifests to store by digest, children before their index.
    manifests: Vec<RawManifest>,
    /// Every manifest of the copy, for its referrers.
    subjects: Vec<String>,
    /// The config digest of the first image manifest met.
    image_id: Option<String>,
    /// Bytes of the manifests walked so far ([`MAX_MANIFEST_BYTES_PER_COPY`]).
    manifest_bytes: usize,
}

impl Plan {
    /// Counts a manifest of `bytes` walked; `false` once the copy's manifests pass
    /// [`MAX_MANIFEST_BYTES_PER_COPY`].
    fn read(&mut self, bytes: usize) -> bool {
        self.manifest_bytes = self.manifest_bytes.saturating_add(bytes);
        self.manifest_bytes <= MAX_MANIFEST_BYTES_PER_COPY
    }

    fn blob(&mut self, blob: Descriptor) {
        if !self.blobs.iter().any(|known| known.digest == blob.digest) {
            self.blobs.push(blob);
        }
    }
}

/// One transfer under way.
struct Copying<'a> {
    engine: &'a RegistryEngine<'a>,
    source: &'a Reference,
    destination: &'a Reference,
    source_scopes: Scopes,
    destination_scopes: Scopes,
    /// Shared by the copies of one source: one progress, one pull meter, and the child
    /// manifests read so far (each read once).
    progress: &'a ImageProgress<'a>,
    meter: &'a Mutex<Meter<'a>>,
    children: &'a Memo<String, RawManifest>,
    platforms: &'a [String],
}

impl Copying<'_> {
    fn registry(&self) -> &RegistryClient {
        self.engine.registry
    }

    /// Copies `blobs` into this destination alone (a referrer's, say).
    async fn copy_blobs(&self, blobs: &[Descriptor]) -> anyhow::Result<()> {
        let plan = Plan {
            blobs: blobs.to_vec(),
            ..Plan::default()
        };
        let mut failed = [None];
        copy_blobs(&[self], std::slice::from_ref(&plan), &mut failed).await;
        failed[0].take().map_or(Ok(()), Err)
    }

    /// Finishes the copy into this destination once its blobs are there: the child
    /// manifests, the tag, the referrers.
    async fn finish(
        &self,
        top: &RawManifest,
        landing: &RawManifest,
        plan: &Plan,
        transfer: &Transfer<'_>,
    ) -> anyhow::Result<Delivered> {
        for manifest in &plan.manifests {
            self.store(manifest).await.map_err(|refusal| {
                let what = format!(
                    "cannot store manifest {} in '{}'",
                    manifest.digest,
                    self.destination.familiar()
                );
                self.refused(manifest, refusal, &what)
            })?;
            tracing::debug!(image = %self.destination, digest = %manifest.digest, outcome = "stored", "child manifest stored");
        }
        let already_there = self.tag(landing).await?;
        let extras = if transfer.job.settings.referrers {
            self.copy_referrers(&plan.subjects).await
        } else {
            Extras::default()
        };
        let image_id = match tree::parse(&landing.bytes, &landing.media_type) {
            Ok(Parsed::Image { config, .. }) => Some(config.digest),
            _ => None,
        };
        Ok(Delivered {
            digest: landing.digest.clone(),
            already_there,
            source_digest: transfer
                .source_digest
                .filter(|seen| *seen == top.digest)
                .map(str::to_owned),
            image_id,
            notes: extras.notes,
            added: extras.added,
        })
    }

    /// What goes under the destination tag: the source's top manifest, or the one platform
    /// asked for, or an index rewritten to the platforms asked for.
    async fn landing(&self, top: RawManifest) -> anyhow::Result<RawManifest> {
        let parsed = tree::parse_checked(&top.bytes, &top.media_type).map_err(|detail| {
            anyhow!(
                "cannot read the manifest of '{}': {detail}",
                self.source.familiar()
            )
        })?;
        let children = match parsed {
            _ if self.platforms.is_empty() => return Ok(top),
            Parsed::Image { config, .. } => {
                self.check_platform(&config).await?;
                return Ok(top);
            }
            Parsed::Legacy { platform, .. } => {
                if let Some(platform) = platform {
                    self.require_platform(&platform)?;
                }
                return Ok(top);
            }
            Parsed::Index { children } => children,
        };
        match tree::select(&children, self.platforms) {
            Err(missing) => {
                let served: Vec<String> = children
                    .iter()
                    .filter_map(|child| child.platform.as_ref())
                    .filter(|platform| platform.os != "unknown")
                    .map(|platform| {
                        let mut text = format!("{}/{}", platform.os, platform.architecture);
                        if let Some(variant) = &platform.variant {
                            text.push('/');
                            text.push_str(variant);
                        }
                        text
                    })
                    .collect();
                bail!(
                    "'{}' has no image for platform '{missing}'\nnote: it has {}",
                    self.source.familiar(),
                    served.join(", ")
                )
            }
            Ok(Selection::One(child)) => self.fetch(&child.digest, 1).await?.ok_or_else(|| {
                anyhow!(
                    "'{}' names a manifest {} it does not serve",
                    self.source.familiar(),
                    child.digest
                )
            }),
            Ok(Selection::Several(kept)) => {
                let bytes = tree::rewrite_index(&top.bytes, &kept).map_err(|detail| {
                    anyhow!(
                        "cannot narrow the index of '{}': {detail}",
                        self.source.familiar()
                    )
                })?;
                tracing::info!(image = %self.source, platforms = %self.platforms.join(","), "the index is rewritten to the platforms asked for: its digest changes");
                Ok(RawManifest {
                    digest: digest::sha256(&bytes),
                    bytes,
                    media_type: top.media_type,
                })
            }
        }
    }

    /// Stores `manifest` at the destination under its digest, as the source served it.
    async fn store(&self, manifest: &RawManifest) -> Result<Stored, RegistryError> {
        self.registry()
            .put_manifest(
                self.destination,
                &self.destination_scopes,
                &manifest.digest,
                &manifest.media_type,
                &manifest.bytes,
            )
            .await
    }

    /// A single-platform source asked for platforms: its config must be one of them, as
    /// `docker pull --platform` insists.
    async fn check_platform(&self, config: &Descriptor) -> anyhow::Result<()> {
        let bytes = self
            .registry()
            .small_blob(self.source, &self.source_scopes, &config.digest)
            .await
            .with_context(|| format!("cannot read the config of '{}'", self.source.familiar()))?;
        match tree::config_platform(&bytes) {
            Some(platform) => self.require_platform(&platform),
            None => Ok(()),
        }
    }

    /// Refuses a single-platform image for `platform` unless it is one asked for.
    fn require_platform(&self, platform: &tree::Platform) -> anyhow::Result<()> {
        if self
            .platforms
            .iter()
            .any(|wanted| tree::platform_matches(platform, wanted))
        {
            return Ok(());
        }
        let mut held = format!("{}/{}", platform.os, platform.architecture);
        if let Some(variant) = &platform.variant {
            held = format!("{held}/{variant}");
        }
        bail!(
            "'{}' is a single-platform image for {held}, not {}\nnote: drop --platform, or ask for {held}",
            self.source.familiar(),
            self.platforms.join(", ")
        )
    }

    /// Reads a source manifest, booking `reserve` Docker Hub pulls first (0 when the caller
    /// reserved a batch already).
    async fn fetch(&self, reference: &str, reserve: u64) -> anyhow::Result<Option<RawManifest>> {
        self.meter.lock().expect("pull meter poisoned").reserve(reserve)?;
        let result = self
            .registry()
            .get_manifest(self.source, &self.source_scopes, reference)
            .await;
        self.meter.lock().expect("pull meter poisoned").spend();
        result.with_context(|| {
            format!(
                "cannot read manifest '{reference}' of '{}'",
                self.source.familiar()
            )
        })
    }

    /// What `manifest` names, within the copy's budget of manifest bytes, and naming only
    /// digests ecrcp can check.
    fn parse_within(&self, manifest: &RawManifest, plan: &mut Plan) -> anyhow::Result<Parsed> {
        if !plan.read(manifest.bytes.len()) {
            bail!(
                "'{}' is made of more than {} MiB of manifests\nnote: ecrcp reads at most that much for one copy, so that a source cannot make it hold without bound; no real image comes near",
                self.source.familiar(),
                MAX_MANIFEST_BYTES_PER_COPY >> 20
            );
        }
        tree::parse_checked(&manifest.bytes, &manifest.media_type).map_err(|detail| {
            anyhow!(
                "cannot read manifest {} of '{}': {detail}",
                manifest.digest,
                self.source.familiar()
            )
        })
    }

    /// Collects the blobs and child manifests of `manifest`. Children the destination holds
    /// already are complete there (a registry takes a manifest only once it has what it
    /// names), so they are neither read nor sent: a rerun spends no pulls on them.
    fn walk<'s>(
        &'s self,
        manifest: &'s RawManifest,
        plan: &'s mut Plan,
        depth: usize,
    ) -> BoxFuture<'s, anyhow::Result<()>> {
        Box::pin(async move {
            let parsed = self.parse_within(manifest, plan)?;
            let children = match parsed {
                Parsed::Image { config, layers } => {
                    plan.image_id.get_or_insert_with(|| config.digest.clone());
                    plan.blob(config);
                    for layer in layers {
                        if tree::is_foreign(&layer) {
                            tracing::debug!(image = %self.source, blob = %layer.digest, "foreign layer left where it is");
                        } else {
                            plan.blob(layer);
                        }
                    }
                    return Ok(());
                }
                Parsed::Legacy { blobs, .. } => {
                    for blob in self.sized(blobs).await? {
                        plan.blob(blob);
                    }
                    return Ok(());
                }
                Parsed::Index { children } => children,
            };
            if depth >= MAX_DEPTH {
                bail!(
                    "'{}' nests indexes deeper than {MAX_DEPTH}",
                    self.source.familiar()
                );
            }
            let mut seen = HashSet::new();
            let children: Vec<Descriptor> = children
                .into_iter()
                .filter(|child| seen.insert(child.digest.clone()))
                .collect();
            plan.subjects
                .extend(children.iter().map(|child| child.digest.clone()));
            // The children are asked about, and read, side by side (each is a round trip),
            // a few at a time: an index may name hundreds.
            let heads: Vec<BoxFuture<'_, anyhow::Result<Option<ManifestHead>>>> = children
                .iter()
                .map(|child| {
                    Box::pin(async move {
                        self.registry()
                            .head_manifest_as(self.destination, &self.destination_scopes, &child.digest)
                            .await
                            .with_context(|| format!("cannot check '{}'", self.destination.familiar()))
                    }) as BoxFuture<'_, _>
                })
                .collect();
            let present: Vec<Option<ManifestHead>> = futures_util::stream::iter(heads)
                .buffered(CHILD_REQUESTS)
                .try_collect()
                .await?;
            let missing: Vec<&Descriptor> = children
                .iter()
                .zip(present)
                .filter_map(|(child, present)| present.is_none().then_some(child))
                .collect();
            // A child another destination of this source needed too was read already.
            let unread = missing
                .iter()
                .filter(|child| !self.children.has(&child.digest))
                .count();
            self.meter
                .lock()
                .expect("pull meter poisoned")
                .reserve(unread as u64)?;
            let reads: Vec<BoxFuture<'_, anyhow::Result<RawManifest>>> = missing
                .iter()
                .map(|child| {
                    Box::pin(
                        self.children
                            .get_or_try(child.digest.clone(), move || async move {
                                self.fetch(&child.digest, 0).await?.ok_or_else(|| {
                                    anyhow!(
                                        "'{}' names a manifest {} it does not serve",
                                        self.source.familiar(),
                                        child.digest
                                    )
                                })
                            }),
                    ) as BoxFuture<'_, _>
                })
                .collect();
            let read: Vec<RawManifest> = futures_util::stream::iter(reads)
                .buffered(CHILD_REQUESTS)
                .try_collect()
                .await?;
            for raw in read {
                self.walk(&raw, plan, depth + 1).await?;
                plan.manifests.push(raw);
            }
            Ok(())
        })
    }

    /// The error for `manifest` refused by the destination: [`NotStored`] when the
    /// refusal says the destination does not store its kind, else the refusal under `what`.
    fn refused(&self, manifest: &RawManifest, refusal: RegistryError, what: &str) -> anyhow::Error {
        match tree::legacy(&manifest.bytes, &manifest.media_type) {
            Some(kind) if tree::refuses_the_kind(&refusal) => NotStored {
                kind,
                host: self.destination.registry().to_owned(),
                destination: self.destination.to_string(),
                refusal: refusal.to_string(),
            }
            .into(),
            _ => anyhow::Error::new(refusal).context(what.to_owned()),
        }
    }

    /// `blobs` with their sizes: those a manifest names without one (schema 1's layers) are
    /// asked about at the source, a few at a time, since a blob is streamed against its size.
    async fn sized(&self, blobs: Vec<Descriptor>) -> anyhow::Result<Vec<Descriptor>> {
        let sizing = blobs.into_iter().map(|mut blob| async move {
            if blob.size == 0 {
                let size = self
                    .registry()
                    .blob_size(self.source, &self.source_scopes, &blob.digest)
                    .await
                    .with_context(|| {
                        format!("cannot read blob {} of '{}'", blob.digest, self.source.familiar())
                    })?;
                blob.size = size.ok_or_else(|| {
                    anyhow!(
                        "'{}' names a blob {} it does not serve",
                        self.source.familiar(),
                        blob.digest
                    )
                })?;
            }
            Ok::<_, anyhow::Error>(blob)
        });
        futures_util::stream::iter(sizing)
            .buffered(CHILD_REQUESTS)
            .try_collect()
            .await
    }

    /// Puts the landing manifest under the destination tag, then checks the tag serves it:
    /// by the digest the PUT's answer names, or by a HEAD when the answer names none (or
    /// another).
    /// Returns whether the tag held it already (an immutable tag refusing the same image).
    async fn tag(&self, landing: &RawManifest) -> anyhow::Result<bool> {
        let destination = self.destination;
        let tag = destination.manifest_reference();
        let put = self
            .registry()
            .put_manifest(
                destination,
                &self.destination_scopes,
                tag,
                &landing.media_type,
                &landing.bytes,
            )
            .await;
        let already_there = match put {
            // The registry names what it stored under the tag: the answer vouches for the
            // tag as a HEAD would, one round trip sooner.
            Ok(stored) if stored.digest.as_deref() == Some(landing.digest.as_str()) => return Ok(false),
            Ok(_) => false,
            Err(refusal @ RegistryError::Refused { .. }) => {
                let held = self
                    .registry()
                    .head_manifest_as(destination, &self.destination_scopes, tag)
                    .await
                    .with_context(|| format!("cannot check '{destination}'"))?;
                match held {
                    Some(held) if held.digest == landing.digest => true,
                    // Only the registry's own words tell an immutable tag from a manifest
                    // it refused for another reason (MANIFEST_INVALID, a 405 for `subject`).
                    Some(held) if refusal.refuses_an_immutable_tag() => {
                        return Err(TagHeld {
                            destination: destination.to_string(),
                            holds: held.digest,
                            wanted: landing.digest.clone(),
                            refusal,
                        }
                        .into())
                    }
                    _ => return Err(self.refused(landing, refusal, &format!("cannot tag '{destination}'"))),
                }
            }
            Err(error) => {
                return Err(anyhow::Error::new(error).context(format!("cannot tag '{destination}'")))
            }
        };
        let served = self
            .registry()
            .head_manifest_as(destination, &self.destination_scopes, tag)
            .await
            .with_context(|| format!("cannot check '{destination}' after the copy"))?;
        match served {
            Some(served) if served.digest == landing.digest => Ok(already_there),
            other => bail!(
                "'{destination}' serves {} after the copy, not {}\nnote: something else wrote the tag meanwhile; run the copy again",
                other.map_or_else(|| "nothing".to_owned(), |head| head.digest),
                landing.digest
            ),
        }
    }
}

/// The destination tag holds another image and the registry will not move it.
#[derive(Debug, thiserror::Error)]
#[error("tag '{destination}' holds {holds} and the registry refused to point it at {wanted}: the tag is immutable\nnote: choose another tag for this copy (or make the repository's tags mutable)")]
pub struct TagHeld {
    destination: String,
    holds: String,
    wanted: String,
    #[source]
    refusal: RegistryError,
}

/// The destination does not store a manifest of a [`tree::Legacy`] kind.
#[derive(Debug, thiserror::Error)]
#[error("{} are not supported by '{host}': {refusal}\nnote: nothing was tagged at '{destination}'; {}", .kind.name(), .kind.way_out())]
pub struct NotStored {
    kind: tree::Legacy,
    host: String,
    destination: String,
    /// The registry's own words.
    refusal: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_go_largest_first_each_once_and_equal_sizes_keep_their_order() {
        let blob = |digest: &str, size: u64| -> Descriptor {
            serde_json::from_value(serde_json::json!({ "digest": digest, "size": size }))
                .expect("a descriptor")
        };
        let config = blob("sha256:c", 1_200);
        let layers = [
            blob("sha256:a", 30 << 20),
            blob("sha256:b", 2 << 20),
            blob("sha256:d", 30 << 20),
        ];
        let listed = [&config, &layers[0], &layers[1], &layers[2], &layers[0]];
        let order: Vec<&str> = largest_first(listed)
            .iter()
            .map(|blob| blob.digest.as_str())
            .collect();
        assert_eq!(order, ["sha256:a", "sha256:d", "sha256:b", "sha256:c"]);
    }

    #[test]
    fn a_copy_reads_manifests_up_to_its_budget() {
        let mut plan = Plan::default();
        assert!(plan.read(MAX_MANIFEST_BYTES_PER_COPY - 1));
        assert!(plan.read(1));
        assert!(!plan.read(1));
        assert!(!plan.read(usize::MAX));
    }

    #[test]
    fn reads_beyond_the_booking_are_taken_from_the_budget_before_they_run() {
        let pulls = Pulls::default();
        pulls.limit_extra(Some(2));
        let mut meter = Meter {
            pulls: &pulls,
            hub: true,
            granted: 1,
            used: 0,
        };
        // The top manifest: booked by the check.
        meter.reserve(1).unwrap();
        meter.spend();
        // Three children: two beyond the booking, and the budget has two.
        meter.reserve(3).expect_err("one more than the budget holds");
        meter.reserve(2).unwrap();
        meter.spend();
        meter.spend();
        assert_eq!(meter.granted, 3);
        // Nothing is left for a further read.
        let refused = meter.reserve(1).unwrap_err();
        assert_eq!((refused.needed, refused.left), (1, 0));
        // Reads elsewhere than Docker Hub are no pulls.
        let mut elsewhere = Meter {
            pulls: &pulls,
            hub: false,
            granted: 0,
            used: 0,
        };
        elsewhere.reserve(100).unwrap();
    }
}
