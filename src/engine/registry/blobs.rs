//! One blob from source to destination: skipped when the destination holds it, mounted when
//! another repository of the destination registry does, else streamed from the source's GET
//! into one PUT, hashed on the way. The last piece is held back until the digest checks out,
//! so a corrupt blob never completes an upload; a dropped source read resumes with `Range`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::Url;
use tokio::sync::mpsc;

use super::Copying;
use crate::progress::BlobState;
use crate::registry::blobs::Opened;
use crate::registry::digest::{self, Hasher};
use crate::registry::{error_chain, jitter, RegistryError, Scopes};

use super::tree::Descriptor;

/// Tries of one blob's upload, for passing failures (a reset, a 5xx, an expired token).
const ATTEMPTS: u32 = 4;
/// Times a dropped source read is resumed where it stopped, per attempt.
const RESUMES: u32 = 3;
/// The longest a source read may sit without a byte.
const STALL: Duration = Duration::from_secs(60);
/// Pieces in flight between the source read and the upload: memory stays flat in blob size.
const DEPTH: usize = 4;

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
}

impl BlobError {
    /// Whether starting the blob over may help.
    fn is_transient(&self) -> bool {
        match self {
            BlobError::Dropped { .. } => true,
            BlobError::Source { error, .. } | BlobError::Destination { error, .. } => {
                error.pause(Duration::ZERO).is_some()
            }
            BlobError::Mismatch { .. } | BlobError::Size { .. } | BlobError::Unverifiable { .. } => false,
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

impl Copying<'_> {
    /// Makes the destination hold `blob`.
    pub(super) async fn copy_blob(&self, blob: &Descriptor) -> Result<Moved, BlobError> {
        let digest = blob.digest.as_str();
        let destination = self.destination;
        let to_destination = |error| BlobError::Destination {
            image: destination.familiar(),
            digest: digest.to_owned(),
            error,
        };
        if !digest::verifiable(digest) {
            return Err(BlobError::Unverifiable {
                image: self.source.familiar(),
                digest: digest.to_owned(),
            });
        }
        let _permits = self
            .engine
            .permits(self.source.api_host(), destination.api_host())
            .await;
        if self
            .registry()
            .blob_exists(destination, &self.destination_scopes, digest)
            .await
            .map_err(to_destination)?
        {
            self.engine.holds(destination, digest);
            return Ok(Moved::Present);
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
                    return Ok(Moved::Mounted);
                }
                // Refused (ECR without blob mounting): the session it opened is given up.
                Opened::Session(session) => {
                    tracing::debug!(image = %destination, blob = digest, from = %from, "mount refused; uploading");
                    self.cancel(&scopes, &session).await;
                }
            }
        }
        let mut backoff = Duration::from_millis(500);
        let mut attempt = 1;
        loop {
            match self.upload(blob).await {
                Ok(sent) => {
                    self.engine.holds(destination, digest);
                    return Ok(Moved::Sent(sent));
                }
                Err(error) if attempt < ATTEMPTS && error.is_transient() => {
                    let wait = error.pause(backoff + jitter(backoff));
                    tracing::info!(image = %destination, blob = digest, attempt, wait_ms = wait.as_millis(), error = %error_chain(&error), "blob copy failed; starting it over");
                    self.progress.set(digest, BlobState::Waiting);
                    tokio::time::sleep(wait).await;
                    backoff *= 2;
                    attempt += 1;
                }
                Err(error) => {
                    self.progress.set(digest, BlobState::Failed);
                    return Err(error);
                }
            }
        }
    }

    /// One try at sending the blob: a session, and the source's bytes streamed into its PUT.
    async fn upload(&self, blob: &Descriptor) -> Result<u64, BlobError> {
        let destination = self.destination;
        let to_destination = |error| BlobError::Destination {
            image: destination.familiar(),
            digest: blob.digest.clone(),
            error,
        };
        let Opened::Session(session) = self
            .registry()
            .open_upload(destination, &self.destination_scopes, None)
            .await
            .map_err(to_destination)?
        else {
            unreachable!("an upload without a mount is never mounted")
        };
        let (sender, receiver) = mpsc::channel::<Result<Bytes, std::io::Error>>(DEPTH);
        let body = reqwest::Body::wrap_stream(futures_util::stream::unfold(
            receiver,
            |mut receiver| async move { receiver.recv().await.map(|piece| (piece, receiver)) },
        ));
        let read = async {
            let result = self.read(blob, &sender).await;
            if result.is_err() {
                // The upload must fail, not end short as if the blob were complete.
                let _ = sender
                    .send(Err(std::io::Error::other("the source read failed")))
                    .await;
            }
            drop(sender);
            result
        };
        let write = self.registry().finish_upload(
            destination,
            &self.destination_scopes,
            &session,
            &blob.digest,
            blob.size,
            body,
        );
        let (read, written) = tokio::join!(read, write);
        let result = match (read, written) {
            (Ok(sent), Ok(())) => return Ok(sent),
            // The read's failure is the cause; the upload only broke off because of it.
            (Err(Some(error)), _) => error,
            (_, Err(error)) => to_destination(error),
            (Err(None), Ok(())) => to_destination(RegistryError::Protocol {
                host: destination.registry().to_owned(),
                detail: "the upload finished before the blob was sent".into(),
            }),
        };
        self.cancel(&self.destination_scopes, &session).await;
        Err(result)
    }

    /// Streams the blob from the source into `sender`, hashing it, resuming a dropped read
    /// where it stopped. `Err(None)`: the upload went away (its own error says why).
    async fn read(
        &self,
        blob: &Descriptor,
        sender: &mpsc::Sender<Result<Bytes, std::io::Error>>,
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
        let registry = self.registry();
        let mut body = registry
            .read_blob(source, &self.source_scopes, digest, 0)
            .await
            .map_err(from_source)?;
        let mut hasher = Hasher::default();
        let mut offset = 0u64;
        let mut resumes = 0;
        let mut held: Option<Bytes> = None;
        let since = Instant::now();
        loop {
            let failure = match tokio::time::timeout(STALL, body.response.chunk()).await {
                Ok(Ok(Some(piece))) => {
                    offset += piece.len() as u64;
                    if offset > blob.size {
                        return Err(Some(self.size_error(blob, offset)));
                    }
                    hasher.update(&piece);
                    self.progress
                        .set(digest, BlobState::Sending { done: offset, since });
                    if let Some(previous) = held.replace(piece) {
                        self.hand_over(sender, previous, blob).await?;
                    }
                    continue;
                }
                Ok(Ok(None)) => break,
                Ok(Err(error)) => error_chain(&error),
                Err(_) => format!("no byte for {} s", STALL.as_secs()),
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
        let actual = hasher.finish();
        if actual != blob.digest {
            tracing::warn!(image = %source, blob = digest, actual = %actual, outcome = "refused", "blob does not match its digest");
            return Err(Some(BlobError::Mismatch {
                image: source.familiar(),
                digest: digest.to_owned(),
                actual,
            }));
        }
        if let Some(last) = held {
            self.hand_over(sender, last, blob).await?;
        }
        Ok(offset)
    }

    /// Hands a piece to the upload. `Err(None)`: the upload went away; a destination that
    /// takes nothing for a while is as good as gone.
    async fn hand_over(
        &self,
        sender: &mpsc::Sender<Result<Bytes, std::io::Error>>,
        piece: Bytes,
        blob: &Descriptor,
    ) -> Result<(), Option<BlobError>> {
        match tokio::time::timeout(STALL, sender.send(Ok(piece))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(None),
            Err(_) => Err(Some(BlobError::Destination {
                image: self.destination.familiar(),
                digest: blob.digest.clone(),
                error: RegistryError::Connect {
                    host: self.destination.registry().to_owned(),
                    detail: format!("the upload took no byte for {} s", STALL.as_secs()),
                },
            })),
        }
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
