//! The client's request path: every request to a registry's API goes through
//! [`RegistryClient::request`] (answer read, bounded) or [`RegistryClient::open`] (answer left
//! to stream), which send it through the authorization layer, turn an answer the caller does
//! not read into an error ([`super::error::status_error`]), and try again as the host's retry
//! policy ([`super::hosts`]) and the error's own [`RegistryError::pause`] say, or as the request
//! says for a refusal that may pass by itself ([`Request::asked_again_when`]). No caller wraps
//! itself in retries: a request that must not be sent twice says so ([`Request::once`]).

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};

use super::error::{status_error, Asked};
use super::hosts::Entry;
use super::transport::{error_chain, read_response, Outgoing, Response};
use super::{Access, Limit, RegistryClient, RegistryError, Scopes};
use crate::redact;
use crate::reference::Reference;
use crate::retry::Attempts;

/// A request as the request path takes it: what to send, which answers the caller reads,
/// what a refusal of it means, and whether it may be sent again.
pub(crate) struct Request {
    outgoing: Outgoing,
    /// The statuses the caller reads; any other becomes an error.
    accepts: fn(StatusCode) -> bool,
    /// How a refusal names it; `METHOD URL` unless named.
    what: Option<String>,
    /// What a 403 says the login may not do.
    access: Access,
    /// What a 429 limits.
    limit: Limit,
    /// Sent once, never again after a failure.
    once: bool,
    /// A body that streams, taken by the one try ([`Request::streaming`]).
    streamed: Mutex<Option<reqwest::Body>>,
    /// A refusal asked again after set pauses ([`Request::asked_again_when`]).
    again: Option<Again>,
}

/// A refusal that may pass by itself (the registry has not caught up yet), and the pauses
/// after which the request is sent again, one per try.
struct Again {
    refused: fn(&RegistryError) -> bool,
    pauses: &'static [Duration],
}

impl Request {
    /// A request that takes any success, reads, and may be sent again.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Request {
            outgoing: Outgoing::new(method, url),
            accepts: |status| status.is_success(),
            what: None,
            access: Access::Pull,
            limit: Limit::Requests,
            once: false,
            streamed: Mutex::new(None),
            again: None,
        }
    }

    /// The statuses the caller reads (2xx unless said).
    pub fn accepting(mut self, accepts: fn(StatusCode) -> bool) -> Self {
        self.accepts = accepts;
        self
    }

    /// Names the request in a refusal of it.
    pub fn named(mut self, what: impl Into<String>) -> Self {
        self.what = Some(what.into());
        self
    }

    /// A write: a 403 says the login may not push.
    pub fn writing(mut self) -> Self {
        self.access = Access::Push;
        self
    }

    /// A manifest GET: a 429 is Docker Hub's pull quota, which asking again may spend.
    pub fn pulling(mut self) -> Self {
        self.limit = Limit::Pulls;
        self
    }

    /// Never sent again after a failure: its effect must not happen twice, or nobody waits
    /// for it.
    pub fn once(mut self) -> Self {
        self.once = true;
        self
    }

    /// Sent again after each of `pauses` while the registry answers with a refusal that
    /// `refused` says may pass by itself; any other failure goes by the host's policy.
    pub fn asked_again_when(
        mut self,
        refused: fn(&RegistryError) -> bool,
        pauses: &'static [Duration],
    ) -> Self {
        self.again = Some(Again { refused, pauses });
        self
    }

    /// Its answer's body comes after the headers for as long as it keeps moving (a blob).
    pub fn long(mut self) -> Self {
        self.outgoing.long = true;
        self
    }

    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.outgoing.headers.insert(name, value);
        self
    }

    pub fn body(mut self, body: Bytes) -> Self {
        self.outgoing.body = Some(body);
        self
    }

    /// A body that streams as it is sent (a blob's upload): gone once sent, so the request
    /// is sent [`Request::once`], with the authorization already known (a 401 cannot be
    /// answered by sending it again: [`RegistryError::TokenExpired`]), and its answer may
    /// come long after its headers.
    pub fn streaming(self, body: reqwest::Body) -> Self {
        *self.streamed.lock().expect("request body poisoned") = Some(body);
        self.once().long()
    }

    fn asked(&self) -> (String, Access, Limit) {
        let what = self
            .what
            .clone()
            .unwrap_or_else(|| format!("{} {}", self.outgoing.method, self.outgoing.url));
        (what, self.access, self.limit)
    }
}

impl RegistryClient {
    /// The answer to `request` on `image`'s registry, its body read (at most
    /// [`super::MAX_MANIFEST_BYTES`]; none for HEAD).
    pub(crate) async fn request(
        &self,
        image: &Reference,
        scopes: &Scopes,
        request: &Request,
    ) -> Result<Response, RegistryError> {
        let host = image.api_host();
        self.retried(host, request, || async {
            let response = self.answered(image, scopes, request).await?;
            read_response(response, &request.outgoing.method, host, &request.outgoing.url).await
        })
        .await
    }

    /// The answer to `request` with its body left to the caller to stream.
    pub(crate) async fn open(
        &self,
        image: &Reference,
        scopes: &Scopes,
        request: &Request,
    ) -> Result<reqwest::Response, RegistryError> {
        self.retried(image.api_host(), request, || {
            self.answered(image, scopes, request)
        })
        .await
    }

    /// One try: sent with its authorization; an answer the caller does not read is an
    /// error.
    async fn answered(
        &self,
        image: &Reference,
        scopes: &Scopes,
        request: &Request,
    ) -> Result<reqwest::Response, RegistryError> {
        let streamed = request.streamed.lock().expect("request body poisoned").take();
        let response = match streamed {
            Some(body) => {
                self.auth
                    .send_streaming(image, scopes, &request.outgoing, body)
                    .await?
            }
            None => self.auth.send(image, scopes, &request.outgoing).await?,
        };
        if (request.accepts)(response.status()) {
            return Ok(response);
        }
        let (what, access, limit) = request.asked();
        let asked = Asked {
            what: &what,
            access,
            limit,
        };
        Err(status_error(image, asked, response).await)
    }

    /// Counts a throttle, and tells a paced action's rate how its request fared: a 429
    /// slows it.
    fn fared<T>(&self, host: &str, entry: &Entry, result: &Result<T, RegistryError>) {
        let throttled = matches!(result, Err(RegistryError::RateLimited { .. }));
        if throttled {
            self.throttles.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if let Some(action) = entry.action {
            self.hosts.fared(host, action, throttled);
        }
    }

    /// Runs `attempt` until it succeeds, fails for good, or the host's retry policy gives up
    /// (tries or time), waiting between tries as [`RegistryError::pause`] says; each try
    /// within the host's rate and concurrency. Each retry is logged with what failed and why.
    async fn retried<T, F, Fut>(
        &self,
        host: &str,
        request: &Request,
        mut attempt: F,
    ) -> Result<T, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, RegistryError>>,
    {
        let (method, path) = (&request.outgoing.method, request_path(&request.outgoing.url));
        if request.once {
            let entry = self.hosts.enter(host, method, path).await;
            let result = attempt().await;
            self.fared(host, &entry, &result);
            return result;
        }
        let what = format!(
            "{} {}",
            request.outgoing.method,
            redact::redact(&request.outgoing.url)
        );
        let mut attempts = Attempts::new(self.hosts.settings(host).retry);
        let mut again = request
            .again
            .as_ref()
            .map(|again| (again.refused, again.pauses.iter()));
        loop {
            let entry = self.hosts.enter(host, method, path).await;
            let result = attempt().await;
            self.fared(host, &entry, &result);
            drop(entry);
            let Err(error) = &result else {
                return result;
            };
            if let Some(pause) = again
                .as_mut()
                .filter(|(refused, _)| refused(error))
                .and_then(|(_, pauses)| pauses.next())
            {
                tracing::info!(request = %what, error = %error_chain(error), wait_ms = pause.as_millis(), "the registry refused what may pass by itself; asking again");
                tokio::time::sleep(*pause).await;
                continue;
            }
            let Some(pause) = attempts
                .after_failure(false, Instant::now())
                .ok()
                .and_then(|backoff| error.pause(backoff))
            else {
                if attempts.tries() > 1 {
                    tracing::info!(request = %what, error = %error_chain(error), attempts = attempts.tries(), "registry request failed; giving up");
                }
                return result;
            };
            tracing::warn!(request = %what, error = %error_chain(error), attempt = attempts.tries(), wait_ms = pause.as_millis(), "registry request failed; retrying");
            tokio::time::sleep(pause).await;
        }
    }
}

/// The path of `url` (what a paced action is told apart by), without its query.
fn request_path(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = after_scheme.find('/').map_or("/", |at| &after_scheme[at..]);
    path.split_once('?').map_or(path, |(path, _)| path)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::registry::credentials::CredentialStore;
    use crate::registry::hosts::{HostSettings, Hosts};
    use crate::retry::Policy;

    /// A registry host that takes each connection and hangs up at once, so that every
    /// request fails as one that may pass; and the count of connections it took.
    async fn hanging_up() -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        (host, connections)
    }

    #[tokio::test]
    async fn a_host_is_tried_as_its_policy_says_and_a_request_sent_once_is_never_retried() {
        let (host, connections) = hanging_up().await;
        let quick = HostSettings {
            retry: Policy {
                first_wait: Duration::from_millis(1),
                fruitless: 3,
                ..HostSettings::default().retry
            },
            ..HostSettings::default()
        };
        let hosts = Hosts::default().with(&host, quick);
        let client = RegistryClient::with_hosts(CredentialStore::with_config_dir(None), hosts).unwrap();
        let image: Reference = format!("{host}/team/app:1").parse().unwrap();
        let scopes = Scopes::pull("team/app");
        let digest = format!("sha256:{}", "a".repeat(64));
        let error = client.blob_exists(&image, &scopes, &digest).await.unwrap_err();
        assert!(error.is_transient(), "{error}");
        assert_eq!(connections.load(Ordering::SeqCst), 3, "three tries: {error}");
        connections.store(0, Ordering::SeqCst);
        let session = reqwest::Url::parse(&format!("http://{host}/v2/team/app/blobs/uploads/1")).unwrap();
        let error = client.cancel_upload(&image, &scopes, &session).await.unwrap_err();
        assert_eq!(connections.load(Ordering::SeqCst), 1, "one try: {error}");
    }
}
