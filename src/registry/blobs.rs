//! Blobs over the distribution API: whether a repository holds one, reading one as a stream
//! (from an offset, to resume a dropped read), and upload sessions: opened (or answered by a
//! cross-repository mount), finished with one streamed PUT, or cancelled. Never buffers a
//! blob: bodies come and go as streams.

use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RANGE};
use tokio::time::Instant;

use reqwest::{Method, StatusCode, Url};

use super::request::Request;
use super::{header, read_bounded, repository_url, RegistryClient, RegistryError, Scopes};
use crate::net_timeouts;
use crate::reference::Reference;

/// A blob's body, as it streams in, and where in the blob it starts.
pub struct BlobBody {
    pub response: reqwest::Response,
    /// The offset of the first byte: the one asked for when the registry honoured the
    /// `Range`, else 0.
    pub offset: u64,
}

/// How a registry answered the opening of an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// The blob was mounted from the other repository: nothing to send.
    Mounted,
    /// An upload session, at this URL.
    Session(Url),
}

impl RegistryClient {
    /// Whether `image`'s repository holds the blob `digest`.
    pub async fn blob_exists(
        &self,
        image: &Reference,
        scopes: &Scopes,
        digest: &str,
    ) -> Result<bool, RegistryError> {
        Ok(self.head_blob(image, scopes, digest).await?.is_some())
    }

    /// The size of the blob `digest` in `image`'s repository, or `None` when it lacks it:
    /// for manifests that name blobs without sizes (schema 1).
    pub async fn blob_size(
        &self,
        image: &Reference,
        scopes: &Scopes,
        digest: &str,
    ) -> Result<Option<u64>, RegistryError> {
        let Some(headers) = self.head_blob(image, scopes, digest).await? else {
            return Ok(None);
        };
        header(&headers, CONTENT_LENGTH.as_str())
            .and_then(|length| length.parse().ok())
            .map(Some)
            .ok_or_else(|| RegistryError::Protocol {
                host: image.registry().to_owned(),
                detail: format!("no Content-Length in the answer for blob {digest} of '{image}'"),
            })
    }

    /// The headers of the blob `digest` in `image`'s repository, or `None` when it lacks it.
    async fn head_blob(
        &self,
        image: &Reference,
        scopes: &Scopes,
        digest: &str,
    ) -> Result<Option<HeaderMap>, RegistryError> {
        let url = repository_url(image, &format!("blobs/{digest}"));
        let request = Request::new(Method::HEAD, url)
            .accepting(|status| status.is_success() || status == StatusCode::NOT_FOUND);
        let response = self.request(image, scopes, &request).await?;
        Ok(response.status.is_success().then_some(response.headers))
    }

    /// Starts reading the blob `digest` at `offset` (0 for all of it). The body is left to
    /// the caller to stream; a registry that ignores the `Range` answers from 0.
    pub async fn read_blob(
        &self,
        image: &Reference,
        scopes: &Scopes,
        digest: &str,
        offset: u64,
    ) -> Result<BlobBody, RegistryError> {
        let url = repository_url(image, &format!("blobs/{digest}"));
        let mut request = Request::new(Method::GET, url.clone())
            .long()
            .accepting(|status| matches!(status, StatusCode::OK | StatusCode::PARTIAL_CONTENT));
        if offset > 0 {
            let range = HeaderValue::from_str(&format!("bytes={offset}-")).expect("a range is ASCII");
            request = request.header(RANGE, range);
        }
        let response = self.open(image, scopes, &request).await?;
        if response.status() == StatusCode::OK {
            return Ok(BlobBody { response, offset: 0 });
        }
        let start = header(response.headers(), "content-range")
            .as_deref()
            .and_then(content_range_start)
            .ok_or_else(|| RegistryError::Protocol {
                host: image.registry().to_owned(),
                detail: format!("a partial answer for {url} without a readable Content-Range"),
            })?;
        Ok(BlobBody {
            response,
            offset: start,
        })
    }

    /// A small blob (an image config) whole, at most [`super::MAX_MANIFEST_BYTES`], checked
    /// against its digest.
    pub async fn small_blob(
        &self,
        image: &Reference,
        scopes: &Scopes,
        digest: &str,
    ) -> Result<Vec<u8>, RegistryError> {
        let body = self.read_blob(image, scopes, digest, 0).await?;
        let url = crate::redact::redact(body.response.url().as_str()).into_owned();
        let bytes = read_bounded(body.response, image.api_host(), &url).await?;
        let answered = super::digest::sha256(&bytes);
        if answered != digest {
            return Err(RegistryError::DigestMismatch {
                host: image.registry().to_owned(),
                image: image.familiar(),
                requested: digest.to_owned(),
                answered,
            });
        }
        Ok(bytes)
    }

    /// Opens an upload into `image`'s repository; with `mount` (the blob's digest and a
    /// repository of the same registry holding it), asks the registry to mount it instead.
    pub async fn open_upload(
        &self,
        image: &Reference,
        scopes: &Scopes,
        mount: Option<(&str, &str)>,
    ) -> Result<Opened, RegistryError> {
        let base = repository_url(image, "blobs/uploads/");
        let url = match mount {
            Some((digest, from)) => {
                let mut url = Url::parse(&base).map_err(|_| bad_url(image, &base))?;
                url.query_pairs_mut()
                    .append_pair("mount", digest)
                    .append_pair("from", from);
                url.to_string()
            }
            None => base,
        };
        let request = Request::new(Method::POST, url.clone())
            .body(bytes::Bytes::new())
            .header(CONTENT_LENGTH, HeaderValue::from_static("0"))
            .writing()
            .accepting(if mount.is_some() {
                |status| matches!(status, StatusCode::CREATED | StatusCode::ACCEPTED)
            } else {
                |status| status == StatusCode::ACCEPTED
            });
        let response = self.open(image, scopes, &request).await?;
        if response.status() == StatusCode::CREATED {
            return Ok(Opened::Mounted);
        }
        let location = header(response.headers(), LOCATION.as_str())
            .and_then(|location| resolve(response.url(), &location))
            .ok_or_else(|| RegistryError::Protocol {
                host: image.registry().to_owned(),
                detail: format!("no usable Location in the answer to POST {url}"),
            })?;
        Ok(Opened::Session(upload_target(image, location)?))
    }

    /// Finishes an upload session with the whole blob in one streamed PUT: `size` bytes
    /// named `digest`. Sent once ([`Request::streaming`]): the body is gone once sent. A 404 says the registry
    /// lost the session ([`RegistryError::UploadUnknown`]): the caller opens another. No
    /// limit on the whole upload, so a slow but live one of a large layer goes on; it fails
    /// once the registry takes no byte for a while, or does not answer after the last one
    /// and does not hold the blob either (asked with a HEAD).
    pub async fn finish_upload<S>(
        &self,
        image: &Reference,
        scopes: &Scopes,
        session: &Url,
        digest: &str,
        size: u64,
        body: S,
    ) -> Result<(), RegistryError>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static,
    {
        let url = with_digest(session, digest);
        let limits = net_timeouts::net();
        let activity = Activity::default();
        let request = Request::new(Method::PUT, url.as_str())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"))
            .header(CONTENT_LENGTH, HeaderValue::from(size))
            .accepting(|status| status.is_success() || status == StatusCode::NOT_FOUND)
            .named(format!("the upload of {digest}"))
            .writing()
            .streaming(reqwest::Body::wrap_stream(activity.watch(body, size)));
        let answered = tokio::select! {
            sent = self.open(image, scopes, &request) => Ok(sent?),
            after = activity.silence(limits.idle, limits.answer) => Err(after),
        };
        let response = match answered {
            Ok(response) => response,
            // The whole blob went and no answer came: a registry on object storage may take
            // minutes to commit a large blob. If it is there, it landed.
            Err(_) if activity.ended() && self.blob_exists(image, scopes, digest).await.unwrap_or(false) => {
                tracing::warn!(image = %image, blob = digest, "the registry did not answer the upload in time, but holds the blob");
                return Ok(());
            }
            Err(after) => {
                return Err(RegistryError::Stalled {
                    host: image.registry().to_owned(),
                    what: format!("the upload of {digest}"),
                    after,
                })
            }
        };
        if response.status() == StatusCode::NOT_FOUND {
            // BLOB_UPLOAD_UNKNOWN: the session expired or the registry lost it.
            return Err(RegistryError::UploadUnknown {
                host: image.registry().to_owned(),
                digest: digest.to_owned(),
            });
        }
        Ok(())
    }

    /// Cancels an upload session, so that the registry drops what it received.
    pub async fn cancel_upload(
        &self,
        image: &Reference,
        scopes: &Scopes,
        session: &Url,
    ) -> Result<(), RegistryError> {
        // Nobody waits for it: a session that stays is the registry's to expire.
        let request = Request::new(Method::DELETE, session.as_str())
            .accepting(|status| status.is_success() || status == StatusCode::NOT_FOUND)
            .named("the cancelling of an upload")
            .writing()
            .once();
        self.request(image, scopes, &request).await?;
        Ok(())
    }
}

/// When an upload's body last moved: the HTTP client takes a piece only once it has room to
/// send it, so a registry that stops reading stops the pieces too. While the client asks for
/// a piece that is not there yet (the source, or another destination fed by the same read,
/// holds it up), the registry is not the one silent: its clock does not run.
#[derive(Clone)]
struct Activity(Arc<Mutex<Moved>>);

/// What an upload's body did last.
#[derive(Clone, Copy)]
struct Moved {
    at: Instant,
    /// The body ended: the answer is awaited.
    done: bool,
    /// The client asked for the next piece, and it is not there yet.
    waiting: bool,
}

impl Default for Activity {
    fn default() -> Self {
        Activity(Arc::new(Mutex::new(Moved {
            at: Instant::now(),
            done: false,
            waiting: false,
        })))
    }
}

impl Activity {
    /// `body`, noting each piece the client takes, each it asks for in vain, and its end: the
    /// stream's, or its `size`th byte, after which an HTTP client that sent a Content-Length
    /// asks for no more.
    fn watch<S, E>(&self, body: S, size: u64) -> impl futures_util::Stream<Item = S::Item> + Send + 'static
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Send + 'static,
    {
        let activity = self.clone();
        let mut body = Box::pin(body);
        let mut taken = 0u64;
        futures_util::stream::poll_fn(move |cx| {
            let polled = body.as_mut().poll_next(cx);
            let mut moved = activity.0.lock().expect("upload activity poisoned");
            moved.at = Instant::now();
            moved.waiting = polled.is_pending();
            if let Poll::Ready(piece) = &polled {
                if let Some(Ok(piece)) = piece {
                    taken += piece.len() as u64;
                }
                moved.done = piece.is_none() || taken >= size;
            }
            polled
        })
    }

    /// Whether the client took the body's end: all of it was sent.
    fn ended(&self) -> bool {
        self.0.lock().expect("upload activity poisoned").done
    }

    /// Resolves with the limit that ran out once the body takes no byte for the idle limit
    /// while one is there to take, or, after its last byte, no answer comes within the
    /// answer limit.
    async fn silence(&self, idle: Duration, answer: Duration) -> Duration {
        loop {
            let moved = *self.0.lock().expect("upload activity poisoned");
            let limit = if moved.done { answer } else { idle };
            if moved.waiting {
                tokio::time::sleep(limit).await;
                continue;
            }
            let deadline = moved.at + limit;
            if Instant::now() >= deadline {
                return limit;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

fn bad_url(image: &Reference, url: &str) -> RegistryError {
    RegistryError::Protocol {
        host: image.registry().to_owned(),
        detail: format!("cannot build a URL from '{url}'"),
    }
}

/// Where an upload session is finished: never over plain HTTP from an HTTPS registry
/// ([`super::origin::upload_target`]).
fn upload_target(image: &Reference, location: Url) -> Result<Url, RegistryError> {
    let refused = |location: Url| RegistryError::PlainLocation {
        host: image.registry().to_owned(),
        location: crate::redact::redact(location.as_str()).into_owned(),
    };
    match super::origin::registry_origin(image.api_host()) {
        Some(registry) => super::origin::upload_target(&registry, location).map_err(refused),
        None => Err(refused(location)),
    }
}

/// An upload's `Location`, which may be relative to the request it answers.
pub fn resolve(request: &Url, location: &str) -> Option<Url> {
    request.join(location).ok()
}

/// The session URL with the `digest` parameter that finishes it, keeping the parameters the
/// registry put there (its upload state).
pub fn with_digest(session: &Url, digest: &str) -> Url {
    let mut url = session.clone();
    url.query_pairs_mut().append_pair("digest", digest);
    url
}

/// The first byte of a `Content-Range: bytes START-END/SIZE`.
pub fn content_range_start(value: &str) -> Option<u64> {
    let range = value.trim().strip_prefix("bytes")?.trim_start();
    range.split('-').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_locations_resolve_against_the_request_and_keep_their_state() {
        let request = Url::parse("https://r.example/v2/team/app/blobs/uploads/").unwrap();
        let cases = [
            (
                "/v2/team/app/blobs/uploads/abc?_state=xyz",
                "https://r.example/v2/team/app/blobs/uploads/abc?_state=xyz&digest=sha256%3Add",
            ),
            (
                "https://upload.example/u/1",
                "https://upload.example/u/1?digest=sha256%3Add",
            ),
            (
                "abc",
                "https://r.example/v2/team/app/blobs/uploads/abc?digest=sha256%3Add",
            ),
        ];
        for (location, expected) in cases {
            let session = resolve(&request, location).unwrap();
            assert_eq!(
                with_digest(&session, "sha256:dd").as_str(),
                expected,
                "{location}"
            );
        }
    }

    type Piece = Result<bytes::Bytes, std::io::Error>;

    /// An upload body of `size` bytes under watch, fed piece by piece through the sender.
    fn watched(
        size: u64,
    ) -> (
        Activity,
        tokio::sync::mpsc::Sender<Piece>,
        std::pin::Pin<Box<impl futures_util::Stream<Item = Piece>>>,
    ) {
        let (sender, receiver) = tokio::sync::mpsc::channel(1);
        let activity = Activity::default();
        let body = Box::pin(activity.watch(
            futures_util::stream::unfold(
                receiver,
                |mut r| async move { r.recv().await.map(|piece| (piece, r)) },
            ),
            size,
        ));
        (activity, sender, body)
    }

    #[tokio::test]
    async fn an_upload_is_silent_once_its_body_stops_or_its_answer_does_not_come() {
        let (idle, answer) = (Duration::from_millis(300), Duration::from_millis(600));
        let (activity, sender, mut body) = watched(7);
        // A slow body that keeps moving is never silent, however long it takes in all.
        let silence = activity.silence(idle, answer);
        tokio::pin!(silence);
        for _ in 0..6 {
            tokio::select! {
                () = tokio::time::sleep(idle / 2) => {}
                _ = &mut silence => panic!("a moving body was called silent"),
            }
            sender.send(Ok(bytes::Bytes::from_static(b"x"))).await.unwrap();
            assert!(futures_util::StreamExt::next(&mut body).await.is_some());
        }
        // A body that stops is, after the idle limit.
        let stopped = Instant::now();
        assert_eq!(silence.await, idle);
        assert!(
            stopped.elapsed() >= idle / 2 && stopped.elapsed() < answer,
            "{:?}",
            stopped.elapsed()
        );
        // Its last byte (the 7th) ends it, though the stream has not said so: a client that
        // sent a Content-Length asks for no more. The answer gets the longer limit.
        assert!(!activity.ended());
        sender.send(Ok(bytes::Bytes::from_static(b"x"))).await.unwrap();
        assert!(futures_util::StreamExt::next(&mut body).await.is_some());
        assert!(activity.ended());
        let ended = Instant::now();
        assert_eq!(activity.silence(idle, answer).await, answer);
        assert!(ended.elapsed() >= answer, "{:?}", ended.elapsed());
    }

    #[tokio::test]
    async fn an_upload_waiting_for_its_next_piece_is_not_silent() {
        let (idle, answer) = (Duration::from_millis(200), Duration::from_millis(400));
        let (activity, sender, mut body) = watched(2);
        // The client asks for a piece that comes three idle limits later (the source, or a
        // stalled destination beside it, holds the read up): the registry was not silent.
        // The clock runs in a task of its own, as it does beside the HTTP client's.
        let watcher = activity.clone();
        let silence = tokio::spawn(async move { watcher.silence(idle, answer).await });
        let late = async {
            tokio::time::sleep(idle * 3).await;
            sender.send(Ok(bytes::Bytes::from_static(b"x"))).await.unwrap();
        };
        let (piece, ()) = tokio::join!(futures_util::StreamExt::next(&mut body), late);
        assert!(piece.is_some());
        assert!(
            !silence.is_finished(),
            "an upload waiting for its next piece was called silent"
        );
        // Once it has its piece and asks for no other, its clock runs again.
        let taken = Instant::now();
        assert_eq!(silence.await.unwrap(), idle);
        assert!(taken.elapsed() >= idle / 2, "{:?}", taken.elapsed());
    }

    #[test]
    fn a_content_range_names_where_the_body_starts() {
        let cases = [
            ("bytes 100-199/200", Some(100)),
            ("bytes 0-9/*", Some(0)),
            ("bytes  7-9/10", Some(7)),
            ("items 1-2/3", None),
            ("bytes */200", None),
        ];
        for (value, expected) in cases {
            assert_eq!(content_range_start(value), expected, "{value}");
        }
    }
}
