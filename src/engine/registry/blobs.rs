//! One blob from source to destinations: skipped where a destination holds it, mounted where
//! another repository of the destination registry does, else streamed from one source GET
//! into a PUT per destination that lacks it (a tee: the slowest upload sets the pace, and one
//! that fails or stalls is dropped while the others go on), hashed on the way. The last piece
//! is held back until the digest checks out, so a corrupt blob never completes an upload; a
//! dropped source read resumes with `Range`. A failed upload is tried again while tries make
//! progress ([`crate::retry::Attempts`]); one whose answer was lost is checked with a HEAD first, since
//! the registry may have stored it, and a session the registry lost is replaced.

use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::Url;
use tokio::sync::mpsc;

use super::Copying;
use crate::net_timeouts::{self, net};
use crate::progress::BlobState;
use crate::registry::blobs::Opened;
use crate::registry::digest::{self, Hasher};
use crate::registry::{error_chain, retry, RegistryError, Scopes};
use crate::retry::Attempts;

use super::tree::Descriptor;

/// Times a dropped source read is resumed where it stopped, per attempt.
const RESUMES: u32 = 3;
/// Pieces waiting between the source read and each upload: one, taken before the next is
/// read ([`room`]).
const DEPTH: usize = 1;

/// What moving a blob came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    Present,
    Mounted,
    Sent(u64),
}

impl Moved {
    pub fn outcome(self) -> &'static str {
        match self {
            Moved::Present => "present",
            Moved::Mounted => "mounted",
            Moved::Sent(_) => "sent",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob {digest} of '{image}' does not match its digest: its bytes hash to {actual}\nnote: the source served corrupt content; none of it was kept at the destination")]
    Mismatch {
        image: String,
        digest: String,
        actual: String,
    },
    #[error("blob {digest} of '{image}' is {actual} bytes long, not the {expected} its manifest says\nnote: the source served other content than its manifest names; none of it was kept at the destination")]
    Size {
        image: String,
        digest: String,
        expected: u64,
        actual: u64,
    },
    #[error("blob {digest} of '{image}' names a digest ecrcp cannot check\nnote: ecrcp verifies sha256 digests only")]
    Unverifiable { image: String, digest: String },
    #[error("reading blob {digest} of '{image}' stopped at byte {offset}: {detail}")]
    Dropped {
        image: String,
        digest: String,
        offset: u64,
        detail: String,
    },
    #[error("cannot read blob {digest} of '{image}'")]
    Source {
        image: String,
        digest: String,
        #[source]
        error: RegistryError,
    },
    #[error("cannot copy blob {digest} to '{image}'")]
    Destination {
        image: String,
        digest: String,
        #[source]
        error: RegistryError,
    },
    /// The whole blob was sent, and the connection broke before the registry answered: it
    /// may have stored the blob or not.
    #[error("the upload of blob {digest} to '{image}' got no answer")]
    Unanswered {
        image: String,
        digest: String,
        #[source]
        error: RegistryError,
    },
    /// A failure of the source's read, met by every destination it fed: the first gets the
    /// error itself, the others this, which repeats it.
    #[error("{detail}")]
    Again { detail: String, transient: bool },
}

impl BlobError {
    /// Whether starting the blob over may help.
    fn is_transient(&self) -> bool {
        match self {
            BlobError::Dropped { .. } | BlobError::Unanswered { .. } => true,
            BlobError::Source { error, .. } | BlobError::Destination { error, .. } => {
                error.pause(Duration::ZERO).is_some()
            }
            BlobError::Again { transient, .. } => *transient,
            BlobError::Mismatch { .. } | BlobError::Size { .. } | BlobError::Unverifiable { .. } => false,
        }
    }

    /// This error, for another destination the same source read fed.
    fn again(&self) -> BlobError {
        BlobError::Again {
            detail: error_chain(self),
            transient: self.is_transient(),
        }
    }

    /// How long to wait before starting over: the registry's `Retry-After` if it gave one.
    fn pause(&self, backoff: Duration) -> Duration {
        match self {
            BlobError::Source { error, .. } | BlobError::Destination { error, .. } => {
                error.pause(backoff).unwrap_or(backoff)
            }
            _ => backoff,
        }
    }
}

/// Makes every one of `copyings` (copies of one source) hold `blob`, reading the source once
/// for all that lack it. Each gets its own result, in order.
pub(super) async fn fan_blob(copyings: &[&Copying<'_>], blob: &Descriptor) -> Vec<Result<Moved, BlobError>> {
    let Some(first) = copyings.first() else {
        return Vec::new();
    };
    let digest = blob.digest.as_str();
    if !digest::verifiable(digest) {
        let mut refused = Vec::with_capacity(copyings.len());
        for _ in copyings {
            refused.push(Err(BlobError::Unverifiable {
                image: first.source.familiar(),
                digest: digest.to_owned(),
            }));
        }
        return refused;
    }
    let mut hosts = vec![first.source.api_host()];
    hosts.extend(copyings.iter().map(|copying| copying.destination.api_host()));
    let _permits = first.engine.gates.enter(&hosts).await;
    let (mut results, mut sessions) = place_all(copyings, blob).await;
    let mut attempts = Attempts::new(retry::blob_policy());
    let mut landed_before = first.engine.landed();
    let mut furthest = 0;
    loop {
        let pending: Vec<usize> = (0..copyings.len())
            .filter(|&index| results[index].is_none())
            .collect();
        if pending.is_empty() {
            break;
        }
        let targets: Vec<&Copying> = pending.iter().map(|&index| copyings[index]).collect();
        let opened: Vec<Option<Url>> = pending.iter().map(|&index| sessions[index].take()).collect();
        let uploaded = upload(&targets, blob, opened).await;
        let mut failed = Vec::new();
        let mut progress = false;
        for (index, uploaded) in pending.into_iter().zip(uploaded) {
            let copying = copyings[index];
            match uploaded {
                Ok(sent) => {
                    copying.engine.holds(copying.destination, digest);
                    results[index] = Some(Ok(Moved::Sent(sent)));
                }
                Err(error @ BlobError::Unanswered { .. }) => {
                    // The registry may have stored it before the connection broke.
                    if copying.landed_unanswered(blob, &error).await {
                        results[index] = Some(Ok(Moved::Sent(blob.size)));
                    } else {
                        failed.push((index, error));
                    }
                }
                Err(error) if error.is_transient() => {
                    if let BlobError::Dropped { offset, .. } = error {
                        progress |= offset > furthest;
                        furthest = furthest.max(offset);
                    }
                    failed.push((index, error));
                }
                Err(error) => results[index] = Some(Err(error)),
            }
        }
        if failed.is_empty() {
            continue;
        }
        // Blobs landing (this one elsewhere, or others of the run) say the registry works.
        let landed = first.engine.landed();
        progress |= landed > landed_before;
        landed_before = landed;
        let Ok(backoff) = attempts.after_failure(progress, Instant::now()) else {
            for (index, error) in failed {
                tracing::info!(image = %copyings[index].destination, blob = digest, attempts = attempts.tries(), error = %error_chain(&error), "blob copy failed; giving up");
                results[index] = Some(Err(error));
            }
            continue;
        };
        let mut wait = Duration::ZERO;
        for (index, error) in &failed {
            let pause = error.pause(backoff);
            tracing::warn!(image = %copyings[*index].destination, blob = digest, attempt = attempts.tries(), progress, wait_ms = pause.as_millis(), error = %error_chain(error), "blob copy failed; retrying it");
            wait = wait.max(pause);
        }
        first.progress.set(
            digest,
            BlobState::Retrying {
                at: Instant::now() + wait,
            },
        );
        tokio::time::sleep(wait).await;
        first.progress.set(digest, BlobState::Waiting);
    }
    // Every destination has its result by now.
    let results: Vec<Result<Moved, BlobError>> = results.into_iter().flatten().collect();
    if results.iter().any(Result::is_err) {
        first.progress.set(digest, BlobState::Failed);
    }
    results
}

/// Where `blob` stands at each of `copyings`: a result for those that hold it (or failed),
/// `None` for those it must be sent to; beside it, the session a refused mount opened, which
/// takes the first upload.
async fn place_all(
    copyings: &[&Copying<'_>],
    blob: &Descriptor,
) -> (Vec<Option<Result<Moved, BlobError>>>, Vec<Option<Url>>) {
    let placed = futures_util::future::join_all(copyings.iter().map(|copying| copying.place(blob))).await;
    placed
        .into_iter()
        .map(|placed| match placed {
            Ok(Placed::Done(moved)) => (Some(Ok(moved)), None),
            Ok(Placed::Send(opened)) => (None, opened),
            Err(error) => (Some(Err(error)), None),
        })
        .unzip()
}

/// One try at sending the blob to each of `copyings`: a session each (the one in `opened`,
/// else a new one), and one source read streamed into all their PUTs.
async fn upload(
    copyings: &[&Copying<'_>],
    blob: &Descriptor,
    opened: Vec<Option<Url>>,
) -> Vec<Result<u64, BlobError>> {
    let first = copyings[0];
    let opened =
        futures_util::future::join_all(copyings.iter().zip(opened).map(|(copying, session)| async move {
            match session {
                Some(session) => Ok(session),
                None => copying.open(blob).await,
            }
        }))
        .await;
    let mut senders = Vec::new();
    let mut writes = Vec::new();
    for (copying, opened) in copyings.iter().zip(&opened) {
        let Ok(session) = opened else {
            senders.push(None);
            continue;
        };
        let (sender, receiver) = mpsc::channel::<Result<Bytes, std::io::Error>>(DEPTH);
        senders.push(Some(sender));
        let body = futures_util::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|piece| (piece, receiver))
        });
        writes.push(copying.registry().finish_upload(
            copying.destination,
            &copying.destination_scopes,
            session,
            &blob.digest,
            blob.size,
            body,
        ));
    }
    let ((read, stalled), written) =
        tokio::join!(first.read(blob, senders), futures_util::future::join_all(writes));
    let mut written = written.into_iter();
    let mut results = Vec::with_capacity(copyings.len());
    let (read, mut source_error) = match read {
        Ok(sent) => (Ok(sent), None),
        Err(error) => (Err(()), error),
    };
    for ((copying, opened), stalled) in copyings.iter().zip(opened).zip(stalled) {
        let session = match opened {
            Ok(session) => session,
            Err(error) => {
                results.push(Err(error));
                continue;
            }
        };
        let written = written.next().expect("one write per session");
        let to_destination = |error| BlobError::Destination {
            image: copying.destination.familiar(),
            digest: blob.digest.clone(),
            error,
        };
        let error = if stalled {
            to_destination(RegistryError::Stalled {
                host: copying.destination.registry().to_owned(),
                what: format!("the upload of {}", blob.digest),
                after: net().idle,
            })
        } else if let Some(error) = source_error.take() {
            // The read's failure is the cause; the upload only broke off because of it. The
            // first destination it fed gets it, the others a repetition.
            let again = error.again();
            results.push(Err(error));
            source_error = Some(again);
            copying.cancel(&copying.destination_scopes, &session).await;
            continue;
        } else {
            match (read, written) {
                (Ok(sent), Ok(())) => {
                    results.push(Ok(sent));
                    continue;
                }
                (Ok(_), Err(error @ RegistryError::Connect { .. })) => BlobError::Unanswered {
                    image: copying.destination.familiar(),
                    digest: blob.digest.clone(),
                    error,
                },
                (_, Err(error)) => to_destination(error),
                (Err(()), Ok(())) => to_destination(RegistryError::Protocol {
                    host: copying.destination.registry().to_owned(),
                    detail: "the upload finished before the blob was sent".into(),
                }),
            }
        };
        copying.cancel(&copying.destination_scopes, &session).await;
        results.push(Err(error));
    }
    results
}

/// Where a blob stands at a destination before any of it is sent.
enum Placed {
    /// There already, or mounted: nothing to send.
    Done(Moved),
    /// To be sent; into this session when a refused mount opened one.
    Send(Option<Url>),
}

impl Copying<'_> {
    /// Whether the destination holds `blob` already, or can mount it from a repository of
    /// its registry; else it must be sent.
    async fn place(&self, blob: &Descriptor) -> Result<Placed, BlobError> {
        let digest = blob.digest.as_str();
        let destination = self.destination;
        let to_destination = |error| BlobError::Destination {
            image: destination.familiar(),
            digest: digest.to_owned(),
            error,
        };
        if self
            .registry()
            .blob_exists(destination, &self.destination_scopes, digest)
            .await
            .map_err(to_destination)?
        {
            self.engine.holds(destination, digest);
            return Ok(Placed::Done(Moved::Present));
        }
        // On one registry the source repository holds every blob of the image; else another
        // repository this run copied the blob into may.
        let same_registry = self.source.api_host() == destination.api_host();
        let from = (same_registry && self.source.repository() != destination.repository())
            .then(|| self.source.repository().to_owned())
            .or_else(|| self.engine.mount_source(destination, digest));
        if let Some(from) = from {
            // The token must cover the repository mounted from as well.
            let scopes = self
                .destination_scopes
                .clone()
                .with(&from, crate::registry::Access::Pull);
            match self
                .registry()
                .open_upload(destination, &scopes, Some((digest, &from)))
                .await
                .map_err(to_destination)?
            {
                Opened::Mounted => {
                    self.engine.holds(destination, digest);
                    return Ok(Placed::Done(Moved::Mounted));
                }
                // Refused (ECR without blob mounting): the blob goes into the session the
                // registry opened instead, which saves cancelling it and opening another.
                Opened::Session(session) => {
                    tracing::debug!(image = %destination, blob = digest, from = %from, "mount refused; uploading");
                    return Ok(Placed::Send(Some(session)));
                }
            }
        }
        Ok(Placed::Send(None))
    }

    /// Whether a blob whose upload got no answer is at the destination after all (the
    /// registry stored it, then the connection broke): asked with a HEAD.
    async fn landed_unanswered(&self, blob: &Descriptor, error: &BlobError) -> bool {
        let digest = blob.digest.as_str();
        match self
            .registry()
            .blob_exists(self.destination, &self.destination_scopes, digest)
            .await
        {
            Ok(true) => {
                tracing::warn!(image = %self.destination, blob = digest, error = %error_chain(error), "blob landed although its answer was lost");
                self.engine.holds(self.destination, digest);
                true
            }
            Ok(false) => false,
            Err(head) => {
                tracing::debug!(image = %self.destination, blob = digest, error = %head, "cannot check whether an unanswered upload landed");
                false
            }
        }
    }

    /// An upload session at the destination.
    async fn open(&self, blob: &Descriptor) -> Result<Url, BlobError> {
        match self
            .registry()
            .open_upload(self.destination, &self.destination_scopes, None)
            .await
        {
            Ok(Opened::Session(session)) => Ok(session),
            Ok(Opened::Mounted) => unreachable!("an upload without a mount is never mounted"),
            Err(error) => Err(BlobError::Destination {
                image: self.destination.familiar(),
                digest: blob.digest.clone(),
                error,
            }),
        }
    }

    /// Streams the blob from the source into every sender, hashing it, resuming a dropped
    /// read where it stopped. `Err(None)`: every upload went away (their own errors say
    /// why). Beside it, per sender, whether its upload stalled.
    async fn read(
        &self,
        blob: &Descriptor,
        mut senders: Vec<Option<mpsc::Sender<Result<Bytes, std::io::Error>>>>,
    ) -> (Result<u64, Option<BlobError>>, Vec<bool>) {
        let mut stalled = vec![false; senders.len()];
        let result = self.read_into(blob, &mut senders, &mut stalled).await;
        if result.is_err() {
            // The uploads must fail, not end short as if the blob were complete.
            for sender in senders.iter().flatten() {
                let _ = sender
                    .send(Err(std::io::Error::other("the source read failed")))
                    .await;
            }
        }
        (result, stalled)
    }

    async fn read_into(
        &self,
        blob: &Descriptor,
        senders: &mut [Option<mpsc::Sender<Result<Bytes, std::io::Error>>>],
        stalled: &mut [bool],
    ) -> Result<u64, Option<BlobError>> {
        let source = self.source;
        let digest = blob.digest.as_str();
        let from_source = |error| {
            Some(BlobError::Source {
                image: source.familiar(),
                digest: digest.to_owned(),
                error,
            })
        };
        if senders.iter().all(Option::is_none) {
            return Err(None);
        }
        let registry = self.registry();
        let mut body = registry
            .read_blob(source, &self.source_scopes, digest, 0)
            .await
            .map_err(from_source)?;
        let mut hasher = Hasher::default();
        let mut offset = 0u64;
        let mut resumes = 0;
        let since = Instant::now();
        loop {
            // A piece is read only once every live upload took the one before: a piece that
            // waited in ecrcp beside the next would hold the read buffer it came in, and the
            // source connection would take a new one for each (memory grows with the
            // pieces in flight, not with the blob). Once all of it went, the uploads may
            // be over: the source's end is read without them.
            let permits = if offset < blob.size {
                room(senders, stalled, net().idle).await?
            } else {
                Vec::new()
            };
            let failure = match tokio::time::timeout(net().idle, body.response.chunk()).await {
                Ok(Ok(Some(piece))) => {
                    offset += piece.len() as u64;
                    if offset > blob.size {
                        return Err(Some(self.size_error(blob, offset)));
                    }
                    hasher.update(&piece);
                    self.progress
                        .set(digest, BlobState::Sending { done: offset, since });
                    if offset == blob.size {
                        // The piece that completes the blob goes only once it proved the
                        // digest: a destination never receives all of a blob that is wrong.
                        if let Some(mismatch) = self.mismatch(blob, hasher.clone()) {
                            return Err(Some(mismatch));
                        }
                    }
                    for permit in permits.into_iter().flatten() {
                        permit.send(Ok(piece.clone()));
                    }
                    continue;
                }
                Ok(Ok(None)) => break,
                Ok(Err(error)) => error_chain(&error),
                Err(_) => format!("no byte for {}", net_timeouts::seconds(net().idle)),
            };
            let dropped = || {
                Some(BlobError::Dropped {
                    image: source.familiar(),
                    digest: digest.to_owned(),
                    offset,
                    detail: failure.clone(),
                })
            };
            if resumes == RESUMES {
                return Err(dropped());
            }
            resumes += 1;
            tracing::info!(image = %source, blob = digest, bytes = offset, detail = %failure, "source read dropped; resuming");
            body = registry
                .read_blob(source, &self.source_scopes, digest, offset)
                .await
                .map_err(from_source)?;
            if body.offset != offset {
                // The source cannot resume: the blob starts over.
                return Err(dropped());
            }
        }
        if offset != blob.size {
            return Err(Some(self.size_error(blob, offset)));
        }
        // An empty blob has no piece that checked it.
        match self.mismatch(blob, hasher) {
            Some(mismatch) => Err(Some(mismatch)),
            None => Ok(offset),
        }
    }

    /// Why what was read (`hasher`) is not `blob`, if it is not.
    fn mismatch(&self, blob: &Descriptor, hasher: Hasher) -> Option<BlobError> {
        let actual = hasher.finish();
        if actual == blob.digest {
            return None;
        }
        tracing::warn!(image = %self.source, blob = %blob.digest, actual = %actual, outcome = "refused", "blob does not match its digest");
        Some(BlobError::Mismatch {
            image: self.source.familiar(),
            digest: blob.digest.clone(),
            actual,
        })
    }

    fn size_error(&self, blob: &Descriptor, actual: u64) -> BlobError {
        BlobError::Size {
            image: self.source.familiar(),
            digest: blob.digest.clone(),
            expected: blob.size,
            actual,
        }
    }

    /// Gives an upload session up, so that the registry drops what it received; a failure
    /// only costs the registry some storage until it cleans up.
    async fn cancel(&self, scopes: &Scopes, session: &Url) {
        if let Err(error) = self
            .registry()
            .cancel_upload(self.destination, scopes, session)
            .await
        {
            tracing::debug!(image = %self.destination, %error, "cannot cancel an upload session");
        }
    }
}

/// Room for the next piece in every upload still going, all waited for at once, so that the
/// slowest sets the pace. An upload that went away is dropped (its own error says why); one
/// that makes no room for `patience` is as good as gone: dropped, and marked in `stalled`.
/// The others wait for it at most that long once, whatever the number of stalled ones;
/// their own silence clocks do not run while they wait for a piece (`finish_upload`).
/// `Err(None)`: no upload is left.
async fn room(
    senders: &mut [Option<mpsc::Sender<Result<Bytes, std::io::Error>>>],
    stalled: &mut [bool],
    patience: Duration,
) -> Result<Vec<Option<mpsc::OwnedPermit<Result<Bytes, std::io::Error>>>>, Option<BlobError>> {
    let reserved = futures_util::future::join_all(senders.iter().map(|sender| async move {
        match sender {
            Some(live) => Some(tokio::time::timeout(patience, live.clone().reserve_owned()).await),
            None => None,
        }
    }))
    .await;
    let mut permits = Vec::with_capacity(senders.len());
    for ((sender, stalled), reserved) in senders.iter_mut().zip(stalled.iter_mut()).zip(reserved) {
        permits.push(match reserved {
            Some(Ok(Ok(permit))) => Some(permit),
            None => None,
            Some(Ok(Err(_))) => {
                *sender = None;
                None
            }
            Some(Err(_)) => {
                *stalled = true;
                *sender = None;
                None
            }
        });
    }
    if senders.iter().all(Option::is_none) {
        return Err(None);
    }
    Ok(permits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn room_is_kept_in_the_live_uploads_while_stalled_ones_are_waited_for_once() {
        let patience = Duration::from_millis(300);
        let mut senders = Vec::new();
        let mut receivers = Vec::new();
        for _ in 0..3 {
            let (sender, receiver) = mpsc::channel(1);
            senders.push(Some(sender));
            receivers.push(receiver);
        }
        // The first and last uploads take nothing: their one place is taken already.
        for index in [0, 2] {
            senders[index]
                .as_ref()
                .unwrap()
                .try_send(Ok(Bytes::from_static(b"earlier")))
                .unwrap();
        }
        let mut healthy = receivers.remove(1);
        let mut stalled = vec![false; 3];
        let piece = Bytes::from_static(b"piece");
        let started = Instant::now();
        let permits = room(&mut senders, &mut stalled, patience)
            .await
            .expect("the live upload is left");
        assert!(
            started.elapsed() < patience * 2,
            "two stalled uploads are waited for side by side: {:?}",
            started.elapsed()
        );
        assert_eq!(
            permits.iter().map(Option::is_some).collect::<Vec<_>>(),
            [false, true, false]
        );
        for permit in permits.into_iter().flatten() {
            permit.send(Ok(piece.clone()));
        }
        assert_eq!(healthy.recv().await.unwrap().unwrap(), piece);
        assert_eq!(stalled, [true, false, true]);
        assert!(senders[1].is_some() && senders[0].is_none() && senders[2].is_none());
    }
}
