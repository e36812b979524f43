//! The OCI distribution boundary: ecrcp's own HTTP client for registries. It answers "what
//! does this tag hold?" with HEAD requests, which Docker Hub does not count against its pull
//! limit, and reads manifests with GET only where a caller accepts that cost. It trusts what
//! docker trusts: the system's CAs, `SSL_CERT_FILE`, and docker's per-registry certs.d.

pub mod auth;
pub mod blobs;
pub mod credentials;
pub mod digest;
pub mod error;
pub mod manifest;
pub mod manifests;
pub mod origin;
pub mod prefetch;
pub mod retry;
pub mod scope;
pub mod tags;
pub mod tokens;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};

use self::auth::Challenge;
use self::credentials::{CredentialStore, RenewalFailed};
pub use self::error::{explanation, rate_limit, Limit, RateLimit, RegistryError};
use self::error::{status_error, Asked};
pub use self::scope::{Access, Scopes};
use self::tokens::{Authorization, TokenCache};
use crate::net_timeouts;
use crate::redact;
use crate::reference::Reference;

/// What a HEAD on a manifest told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    pub digest: String,
    pub media_type: Option<String>,
    pub rate_limit: Option<RateLimit>,
}

impl ManifestHead {
    /// Whether it names an index (a manifest list) rather than one platform's manifest.
    pub fn names_an_index(&self) -> bool {
        self.media_type.as_deref().is_some_and(|media_type| {
            media_type.starts_with(manifest::OCI_INDEX)
                || media_type.starts_with(manifest::DOCKER_MANIFEST_LIST)
        })
    }
}

/// The most of a manifest (or a token answer) ecrcp reads: ECR, like most registries,
/// refuses manifests over 4 MiB.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// A registry client with a token cache per host and scope, and the challenge each host
/// answered with.
pub struct RegistryClient {
    /// Trusts the system's CAs (and `SSL_CERT_FILE`).
    http: reqwest::Client,
    /// For hosts with CAs of their own in docker's certs.d, clients that trust those too.
    with_docker_cas: Mutex<HashMap<String, reqwest::Client>>,
    credentials: CredentialStore,
    /// `Authorization` values by API host and scopes, until they expire.
    tokens: TokenCache,
    /// How each host asked to authenticate, once it did.
    challenges: Mutex<HashMap<String, Challenge>>,
    attempts: u32,
    /// Manifest GETs Docker Hub answered: each is a pull on its count.
    hub_manifest_reads: AtomicU64,
    /// Hosts that stopped answering, and when ([`RegistryError::StillSilent`]).
    silent: Mutex<HashMap<String, Instant>>,
}

struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// A request before authorization is added: replayable, since a 401 asks for it again.
pub(crate) struct Outgoing {
    pub method: Method,
    pub url: String,
    pub headers: HeaderMap,
    pub body: Option<bytes::Bytes>,
    /// Has no total time limit, only one on the wait for the answer's headers: a blob
    /// body comes after them, as long as it keeps moving (its reader times each piece).
    pub long: bool,
}

impl Outgoing {
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Outgoing {
            method,
            url: url.into(),
            headers: HeaderMap::new(),
            body: None,
            long: false,
        }
    }
}

impl RegistryClient {
    pub fn new(credentials: CredentialStore) -> Result<Self, RegistryError> {
        Ok(RegistryClient {
            http: http_client("(none)", &[])?,
            with_docker_cas: Mutex::new(HashMap::new()),
            credentials,
            tokens: TokenCache::default(),
            challenges: Mutex::new(HashMap::new()),
            attempts: retry::REQUEST_ATTEMPTS,
            hub_manifest_reads: AtomicU64::new(0),
            silent: Mutex::default(),
        })
    }

    pub fn credentials(&self) -> &CredentialStore {
        &self.credentials
    }

    /// The manifest GETs Docker Hub answered so far: the pulls this client spent there.
    pub fn hub_manifest_reads(&self) -> u64 {
        self.hub_manifest_reads.load(Ordering::SeqCst)
    }

    /// The client for `host`: one that also trusts the CAs docker trusts for that registry
    /// (`/etc/docker/certs.d/HOST/*.crt`), so a private registry that docker reaches, ecrcp
    /// reaches too.
    fn http_for(&self, host: &str) -> Result<reqwest::Client, RegistryError> {
        let mut known = self.with_docker_cas.lock().expect("client cache poisoned");
        if let Some(found) = known.get(host) {
            return Ok(found.clone());
        }
        let cas = docker_cas(&Path::new(DOCKER_CERTS_DIR).join(host));
        let found = if cas.is_empty() {
            self.http.clone()
        } else {
            http_client(host, &cas)?
        };
        known.insert(host.to_owned(), found.clone());
        Ok(found)
    }

    /// The digest `image` names now, or `None` when the registry does not have it.
    pub async fn head_manifest(&self, image: &Reference) -> Result<Option<ManifestHead>, RegistryError> {
        self.head_manifest_as(
            image,
            &Scopes::pull(image.repository()),
            image.manifest_reference(),
        )
        .await
    }

    /// The digest `reference` (a tag or digest) in `image`'s repository names now, asked with a
    /// token for `scopes`, or `None` when the registry does not have it.
    pub async fn head_manifest_as(
        &self,
        image: &Reference,
        scopes: &Scopes,
        reference: &str,
    ) -> Result<Option<ManifestHead>, RegistryError> {
        let response = self
            .manifest_request(Method::HEAD, image, scopes, reference)
            .await?;
        if response.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let digest =
            header(&response.headers, "docker-content-digest").ok_or_else(|| RegistryError::Protocol {
                host: image.registry().to_owned(),
                detail: format!("no Docker-Content-Digest in the answer for '{image}'"),
            })?;
        Ok(Some(ManifestHead {
            digest,
            media_type: header(&response.headers, CONTENT_TYPE.as_str()),
            rate_limit: rate_limit(&response.headers),
        }))
    }

    /// The config digest (image ID) of what `image` holds for `platform`, following an index
    /// to its child. Costs manifest GETs: on Docker Hub, one pull from the quota.
    pub async fn config_digest(
        &self,
        image: &Reference,
        platform: &str,
    ) -> Result<Option<String>, RegistryError> {
        let scopes = Scopes::pull(image.repository());
        let mut reference = image.manifest_reference().to_owned();
        // An index points at a child, which is an image manifest; two hops at most.
        for _ in 0..2 {
            let response = self
                .manifest_request(Method::GET, image, &scopes, &reference)
                .await?;
            if response.status == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            let content_type = header(&response.headers, CONTENT_TYPE.as_str());
            let parsed =
                manifest::parse(&response.body, content_type.as_deref(), platform).map_err(|detail| {
                    RegistryError::Protocol {
                        host: image.registry().to_owned(),
                        detail,
                    }
                })?;
            match parsed {
                manifest::Parsed::Image { config } => return Ok(Some(config)),
                manifest::Parsed::Index { child: Some(child) } => {
                    // It goes into the next request's path.
                    digest::checked("child", &child).map_err(|detail| RegistryError::Protocol {
                        host: image.registry().to_owned(),
                        detail: format!("the index of '{image}' is refused: {detail}"),
                    })?;
                    reference = child;
                }
                manifest::Parsed::Index { child: None } => return Ok(None),
            }
        }
        Err(RegistryError::Protocol {
            host: image.registry().to_owned(),
            detail: format!("'{image}' is an index of indexes"),
        })
    }

    /// Runs `attempt` until it succeeds, fails for good, or its [`retry::Persistence`] gives
    /// up (attempts or time), waiting between tries as [`RegistryError::pause`] says, with
    /// a backoff that doubles and jitter. Each retry is logged with what failed and why.
    pub(crate) async fn retrying<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, RegistryError>>,
    {
        let mut persistence = retry::Persistence::request(self.attempts);
        loop {
            let result = attempt().await;
            let Err(error) = &result else {
                return result;
            };
            let Some(pause) = persistence
                .next_backoff(false)
                .and_then(|backoff| error.pause(backoff + jitter(backoff)))
            else {
                let what = redact::redact(what);
                if persistence.tries() > 1 {
                    tracing::info!(request = %what, error = %error_chain(error), attempts = persistence.tries(), "registry request failed; giving up");
                }
                return result;
            };
            tracing::warn!(request = %redact::redact(what), error = %error_chain(error), attempt = persistence.tries(), wait_ms = pause.as_millis(), "registry request failed; retrying");
            tokio::time::sleep(pause).await;
        }
    }

    async fn manifest_request(
        &self,
        method: Method,
        image: &Reference,
        scopes: &Scopes,
        reference: &str,
    ) -> Result<Response, RegistryError> {
        let what = format!("{method} {image} {reference}");
        self.retrying(&what, || {
            self.manifest_request_once(method.clone(), image, scopes, reference)
        })
        .await
    }

    async fn manifest_request_once(
        &self,
        method: Method,
        image: &Reference,
        scopes: &Scopes,
        reference: &str,
    ) -> Result<Response, RegistryError> {
        let url = repository_url(image, &format!("manifests/{reference}"));
        let mut request = Outgoing::new(method.clone(), url.clone());
        request
            .headers
            .insert(ACCEPT, HeaderValue::from_static(manifest::ACCEPT));
        let response = self.send_authorized(image, scopes, request).await?;
        let status = response.status();
        if !status.is_success() && status != StatusCode::NOT_FOUND {
            // Manifest GETs and HEADs: reads, whatever the token may also do.
            let asked = Asked {
                what: &format!("{method} {}", redact::redact(&url)),
                access: Access::Pull,
                limit: if method == Method::GET {
                    Limit::Pulls
                } else {
                    Limit::Requests
                },
            };
            return Err(status_error(image, asked, response).await);
        }
        let response = read_response(response, &method, image.api_host(), &url).await?;
        if method == Method::GET && status.is_success() && image.is_docker_hub() {
            self.hub_manifest_reads.fetch_add(1, Ordering::SeqCst);
        }
        check_digest(image, reference, response)
    }

    /// Sends `request` to `image`'s repository with the authorization `scopes` need: the
    /// token cached for them, or the answer to the host's challenge, asked once more after a
    /// 401. The response comes back unread, whatever its status but 401.
    pub(crate) async fn send_authorized(
        &self,
        image: &Reference,
        scopes: &Scopes,
        request: Outgoing,
    ) -> Result<reqwest::Response, RegistryError> {
        let host = image.api_host();
        let own = own_origin(image, &request.url);
        if !own {
            // Another origin (an upload session on a storage host): none of the registry's
            // credentials go there, and its challenges are none of the registry's.
            let response = self.send(&request, host, None).await?;
            return foreign_answer(image, response);
        }
        let authorization = self.authorization(image, scopes).await?;
        let response = self.send(&request, host, authorization.as_deref()).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        if !own_origin(image, response.url().as_str()) {
            // A redirect led elsewhere, and that origin asks for credentials.
            return foreign_answer(image, response);
        }
        // Nothing was known, or what was known no longer serves (a token for many
        // repositories that left this one out, say): answer this very challenge.
        let challenge = header(response.headers(), WWW_AUTHENTICATE.as_str())
            .and_then(|value| auth::parse_challenge(&value))
            .ok_or_else(|| RegistryError::Unauthorized {
                host: image.registry().to_owned(),
                repository: image.repository().to_owned(),
            })?;
        self.challenges
            .lock()
            .expect("challenge cache poisoned")
            .insert(host.to_owned(), challenge.clone());
        let token = matches!(challenge, Challenge::Bearer { .. });
        // Read before the credentials are: a renewal meanwhile then costs no second one.
        let serial = self.credentials.serial(image.registry());
        let mut fresh = self.authorize(image, scopes, challenge).await?;
        let mut response = self.send(&request, host, Some(&fresh.value)).await?;
        if let (StatusCode::UNAUTHORIZED, Some(serial)) = (response.status(), serial) {
            // The token that worked is refused (it expired): one new token, asked once more.
            fresh = self.renewed(image, serial).await?;
            response = self.send(&request, host, Some(&fresh.value)).await?;
            if response.status() == StatusCode::UNAUTHORIZED {
                return Err(RegistryError::TokenRefused {
                    host: image.registry().to_owned(),
                    repository: image.repository().to_owned(),
                    fetch_failed: None,
                });
            }
            tracing::info!(
                registry = image.registry(),
                "the registry accepted the new ECR authorization token; going on"
            );
        }
        if response.status() == StatusCode::UNAUTHORIZED {
            // A token was handed out and refused: for reads, Docker Hub's answer for a
            // repository that is missing or private; for writes, a login without push.
            return Err(if token && !scopes.pushes() {
                RegistryError::Inaccessible {
                    image: image.familiar(),
                    host: image.registry().to_owned(),
                }
            } else {
                RegistryError::Unauthorized {
                    host: image.registry().to_owned(),
                    repository: image.repository().to_owned(),
                }
            });
        }
        self.tokens.put(host, [scopes.key().as_str()], &fresh);
        Ok(response)
    }

    /// The `Authorization` value for `scopes` on `image`'s host, when one is known without
    /// asking the registry first: a cached token, or the answer to the challenge the host
    /// gave before (for another repository), which saves the round trip that would only
    /// fetch the same 401. A host ecrcp fetched an ECR token for is presumed to ask for
    /// Basic (ECR checks its token as Basic credentials on every request), so even its
    /// first request goes with them; a registry that wants otherwise answers 401 with its
    /// challenge, which is then answered as any other.
    pub(crate) async fn authorization(
        &self,
        image: &Reference,
        scopes: &Scopes,
    ) -> Result<Option<Arc<str>>, RegistryError> {
        let host = image.api_host();
        let key = scopes.key();
        if let Some(cached) = self.tokens.get(host, &key) {
            return Ok(Some(cached));
        }
        let known = self
            .challenges
            .lock()
            .expect("challenge cache poisoned")
            .get(host)
            .cloned()
            .or_else(|| {
                self.credentials
                    .serial(image.registry())
                    .map(|_| Challenge::Basic)
            });
        match known {
            Some(challenge) => {
                let fresh = self.authorize(image, scopes, challenge).await?;
                self.tokens.put(host, [key.as_str()], &fresh);
                Ok(Some(fresh.value))
            }
            None => Ok(None),
        }
    }

    /// The Basic authorization of the credentials that replace those numbered `serial`,
    /// which `image`'s registry refused.
    async fn renewed(&self, image: &Reference, serial: u64) -> Result<Authorization, RegistryError> {
        let host = image.registry();
        let refused = |fetch_failed| RegistryError::TokenRefused {
            host: host.to_owned(),
            repository: image.repository().to_owned(),
            fetch_failed,
        };
        match self.credentials.renew(host, serial).await {
            Some(Ok(credentials)) => Ok(Authorization::lasting(basic(
                &credentials.username,
                credentials.password.expose(),
            ))),
            Some(Err(RenewalFailed::Fetch(error))) => Err(refused(Some(error))),
            Some(Err(RenewalFailed::RefusedAgain)) | None => Err(refused(None)),
        }
    }

    /// Drops the token cached for `scopes` (it expired): the next request asks anew.
    pub(crate) fn forget_token(&self, image: &Reference, scopes: &Scopes) {
        self.tokens.forget(image.api_host(), &scopes.key());
    }

    /// One HTTP request as it is, no retries, no challenge.
    async fn send(
        &self,
        request: &Outgoing,
        host: &str,
        authorization: Option<&str>,
    ) -> Result<reqwest::Response, RegistryError> {
        let limit = net_timeouts::net().request;
        let mut builder = self
            .http_for(host)?
            .request(request.method.clone(), &request.url)
            .headers(request.headers.clone());
        if !request.long {
            builder = builder.timeout(limit);
        }
        if let Some(authorization) = authorization {
            builder = builder.header(AUTHORIZATION, authorization);
        }
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        self.refuse_if_silent(host)?;
        let what = || format!("{} {}", request.method, redact::redact(&request.url));
        let sent = match tokio::time::timeout(limit, builder.send()).await {
            Ok(sent) => sent.map_err(|error| send_error(host, &what(), &error)),
            Err(_) => Err(RegistryError::Stalled {
                host: host.to_owned(),
                what: what(),
                after: limit,
            }),
        };
        if let Err(RegistryError::Stalled { .. }) = &sent {
            self.silent
                .lock()
                .expect("silent hosts poisoned")
                .insert(host.to_owned(), Instant::now());
        }
        sent
    }

    /// Fails at once for a host that stopped answering a request within the hold.
    fn refuse_if_silent(&self, host: &str) -> Result<(), RegistryError> {
        let silent = self.silent.lock().expect("silent hosts poisoned");
        match silent.get(host).map(Instant::elapsed) {
            Some(ago) if ago < net_timeouts::net().silent_hold => Err(RegistryError::StillSilent {
                host: host.to_owned(),
                ago,
            }),
            _ => Ok(()),
        }
    }

    /// Sends a request whose body streams (and so cannot be sent twice) with the
    /// authorization already known for `scopes`. A 401 means the token expired meanwhile:
    /// it is dropped, and the caller starts over.
    pub(crate) async fn send_streaming(
        &self,
        image: &Reference,
        scopes: &Scopes,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RegistryError> {
        let host = image.api_host();
        self.refuse_if_silent(host)?;
        let (client, request) = request.build_split();
        let mut request = request.map_err(|error| send_error(host, "an upload", &error))?;
        let own = own_origin(image, request.url().as_str());
        let serial = self.credentials.serial(image.registry());
        if own {
            if let Some(authorization) = self.authorization(image, scopes).await? {
                let mut value =
                    HeaderValue::from_str(&authorization).map_err(|_| RegistryError::Unauthorized {
                        host: image.registry().to_owned(),
                        repository: image.repository().to_owned(),
                    })?;
                value.set_sensitive(true);
                request.headers_mut().insert(AUTHORIZATION, value);
            }
        }
        let response = client
            .execute(request)
            .await
            .map_err(|error| send_error(host, "an upload", &error))?;
        if !own || !own_origin(image, response.url().as_str()) {
            return foreign_answer(image, response);
        }
        if response.status() == StatusCode::UNAUTHORIZED {
            self.forget_token(image, scopes);
            if let Some(serial) = serial {
                // ECR's token expired under the upload: the next start goes with a new one.
                self.renewed(image, serial).await?;
            }
            return Err(RegistryError::TokenExpired {
                host: image.registry().to_owned(),
            });
        }
        Ok(response)
    }

    /// A request builder on the long-transfer client for `host`.
    pub(crate) fn long_request(
        &self,
        method: Method,
        url: &str,
        host: &str,
    ) -> Result<reqwest::RequestBuilder, RegistryError> {
        Ok(self.http_for(host)?.request(method, url))
    }

    /// Answers a challenge: the `Authorization` header value to send, and how long it lasts.
    async fn authorize(
        &self,
        image: &Reference,
        scopes: &Scopes,
        challenge: Challenge,
    ) -> Result<Authorization, RegistryError> {
        let host = image.registry();
        let unauthorized = || RegistryError::Unauthorized {
            host: host.to_owned(),
            repository: image.repository().to_owned(),
        };
        let credentials = self.credentials.lookup(host).await;
        match challenge {
            Challenge::Basic => {
                let credentials = credentials.ok_or_else(unauthorized)?;
                Ok(Authorization::lasting(basic(
                    &credentials.username,
                    credentials.password.expose(),
                )))
            }
            Challenge::Bearer { realm, service, .. } => {
                let url = scope::token_url(&realm, service.as_deref(), scopes).ok_or_else(|| {
                    RegistryError::Protocol {
                        host: host.to_owned(),
                        detail: format!("bad token realm '{}'", redact::redact(&realm)),
                    }
                })?;
                if let Some(reason) = auth::realm_refusal(image.api_host(), &url) {
                    return Err(RegistryError::RealmRefused {
                        host: host.to_owned(),
                        realm: redact::redact(&realm).into_owned(),
                        reason,
                    });
                }
                let token_host = url.host_str().unwrap_or(host).to_owned();
                let mut request = Outgoing::new(Method::GET, url.as_str());
                if let Some(credentials) = &credentials {
                    let value = basic(&credentials.username, credentials.password.expose());
                    let mut value = HeaderValue::from_str(&value).map_err(|_| unauthorized())?;
                    value.set_sensitive(true);
                    request.headers.insert(AUTHORIZATION, value);
                }
                let response = self.send(&request, &token_host, None).await?;
                if !response.status().is_success() {
                    // Docker Hub's token server throttles on its own: no pull is spent yet.
                    let asked = Asked {
                        what: &format!("a token from '{}'", redact::redact(&realm)),
                        access: if scopes.pushes() {
                            Access::Push
                        } else {
                            Access::Pull
                        },
                        limit: Limit::Requests,
                    };
                    return Err(status_error(image, asked, response).await);
                }
                let response = read_response(response, &Method::GET, &token_host, &realm).await?;
                let answer =
                    auth::parse_token_response(&response.body).ok_or_else(|| RegistryError::Protocol {
                        host: host.to_owned(),
                        detail: "the token server's answer holds no token".into(),
                    })?;
                Ok(Authorization {
                    value: format!("Bearer {}", answer.token).into(),
                    lifetime: Some(answer.expires_in),
                })
            }
        }
    }
}

/// Whether `url` is on the origin of `image`'s registry, where its credentials may go.
fn own_origin(image: &Reference, url: &str) -> bool {
    match (
        origin::registry_origin(image.api_host()),
        reqwest::Url::parse(url),
    ) {
        (Some(registry), Ok(url)) => origin::same_origin(&registry, &url),
        _ => false,
    }
}

/// The answer of an origin other than the registry's, which gets no credentials: a 401
/// there is its own, not a challenge for the registry's login.
fn foreign_answer(
    image: &Reference,
    response: reqwest::Response,
) -> Result<reqwest::Response, RegistryError> {
    if response.status() != StatusCode::UNAUTHORIZED {
        return Ok(response);
    }
    let url = response.url();
    Err(RegistryError::ForeignChallenge {
        host: image.registry().to_owned(),
        origin: format!(
            "{}://{}",
            url.scheme(),
            url.host_str().map_or_else(String::new, |name| match url.port() {
                Some(port) => format!("{name}:{port}"),
                None => name.to_owned(),
            })
        ),
    })
}

/// `BASE/v2/REPOSITORY/TAIL` for `image`'s repository.
pub(crate) fn repository_url(image: &Reference, tail: &str) -> String {
    format!("{}/v2/{}/{tail}", base_url(image.api_host()), image.repository())
}

/// A response with its body read (bounded), but for HEAD.
async fn read_response(
    response: reqwest::Response,
    method: &Method,
    host: &str,
    url: &str,
) -> Result<Response, RegistryError> {
    let status = response.status();
    let headers = response.headers().clone();
    let body = if *method == Method::HEAD {
        Vec::new()
    } else {
        read_bounded(response, host, url).await?
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Where the docker daemon keeps per-registry certificates.
const DOCKER_CERTS_DIR: &str = "/etc/docker/certs.d";

/// Why a request got no answer: a registry gone silent (a connection that timed out, in
/// ecrcp or in the kernel), or one that could not be reached at all.
fn send_error(host: &str, what: &str, error: &reqwest::Error) -> RegistryError {
    let limits = net_timeouts::net();
    let detail = error_chain(error);
    // The kernel's own give-up (TCP_USER_TIMEOUT, keepalive) reads "timed out" too.
    if error.is_timeout() || detail.contains("timed out") {
        RegistryError::Stalled {
            host: host.to_owned(),
            what: what.to_owned(),
            after: if error.is_connect() {
                limits.connect
            } else {
                limits.unacknowledged
            },
        }
    } else {
        RegistryError::Connect {
            host: host.to_owned(),
            detail,
        }
    }
}

/// One client for every request to a host, blob or not, so that they share connections.
/// Its limits catch silence at every stage: connecting, sent data never acknowledged
/// (`TCP_USER_TIMEOUT`), and idle connections whose peer is gone (keepalive); each request
/// adds its own (see [`RegistryClient::send`] and the blob readers and writers).
fn http_client(host: &str, extra_cas: &[reqwest::Certificate]) -> Result<reqwest::Client, RegistryError> {
    let limits = net_timeouts::net();
    reqwest::Client::builder()
        .user_agent(concat!("ecrcp/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(limits.connect)
        .tcp_user_timeout(limits.unacknowledged)
        .tcp_keepalive(limits.keepalive)
        .tcp_keepalive_interval(limits.keepalive)
        .tls_certs_merge(extra_cas.to_vec())
        .build()
        .map_err(|error| RegistryError::Connect {
            host: host.to_owned(),
            detail: error_chain(&error),
        })
}

/// The CA certificates (`*.crt`, as docker reads them) in a certs.d directory. An unreadable
/// one is logged and left out: the system's CAs may still do.
fn docker_cas(dir: &Path) -> Vec<reqwest::Certificate> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut cas = Vec::new();
    for path in entries.flatten().map(|entry| entry.path()) {
        if path.extension().is_none_or(|extension| extension != "crt") {
            continue;
        }
        match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|pem| reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| e.to_string()))
        {
            Ok(found) => cas.extend(found),
            Err(error) => {
                tracing::warn!(file = %path.display(), %error, "cannot read a registry CA certificate");
            }
        }
    }
    cas
}

/// Refuses an answer to a request by digest that names another digest of the same algorithm.
/// A registry that indexes content by sha256 answers a sha384 or sha512 request with the
/// sha256 digest, which says nothing either way.
fn check_digest(image: &Reference, requested: &str, response: Response) -> Result<Response, RegistryError> {
    // Tags cannot hold a colon; digests always do.
    let algorithm = |digest: &str| digest.split_once(':').map(|(algorithm, _)| algorithm.to_owned());
    match header(&response.headers, "docker-content-digest") {
        Some(answered)
            if response.status.is_success()
                && algorithm(requested).is_some()
                && algorithm(&answered) == algorithm(requested)
                && answered != requested =>
        {
            Err(RegistryError::DigestMismatch {
                host: image.registry().to_owned(),
                image: image.familiar(),
                requested: requested.to_owned(),
                answered,
            })
        }
        _ => Ok(response),
    }
}

/// A response body, read as it streams in and refused past [`MAX_MANIFEST_BYTES`], so that a
/// broken or hostile server cannot make ecrcp hold gigabytes.
async fn read_bounded(
    mut response: reqwest::Response,
    host: &str,
    url: &str,
) -> Result<Vec<u8>, RegistryError> {
    let too_large = || RegistryError::TooLarge {
        host: host.to_owned(),
        url: redact::redact(url).into_owned(),
    };
    if response
        .content_length()
        .is_some_and(|length| length > MAX_MANIFEST_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|error| RegistryError::Connect {
        host: host.to_owned(),
        detail: error_chain(&error),
    })? {
        if body.len() + chunk.len() > MAX_MANIFEST_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `https://HOST`, except for loopback registries, which docker also reaches over plain HTTP.
pub(crate) fn base_url(host: &str) -> String {
    if is_loopback(host) {
        format!("http://{host}")
    } else {
        format!("https://{host}")
    }
}

/// Whether `host` (`NAME[:PORT]`, an IPv6 address in brackets) is this machine: the exact
/// name `localhost` or a loopback address. A name is never read by its look: `127.example.com`
/// is anyone's host, and plain HTTP would hand it the credentials in clear text.
pub(crate) fn is_loopback(host: &str) -> bool {
    let name = host_name(host);
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// The name or address of `host` (`NAME[:PORT]`, `[IPV6][:PORT]`), without port or brackets.
pub(crate) fn host_name(host: &str) -> &str {
    match host.strip_prefix('[') {
        Some(bracketed) => bracketed
            .split_once(']')
            .map_or(bracketed, |(address, _)| address),
        None => host.split_once(':').map_or(host, |(name, _)| name),
    }
}

fn basic(username: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
    )
}

pub(crate) fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name)?.to_str().ok().map(str::to_owned)
}

/// `error` and its causes, one after the other, with the queries of the URLs they name left
/// out (reqwest names the URL it sent to, after redirects: maybe a presigned one).
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    redact::redact(&text).into_owned()
}

/// Up to a quarter of `delay`, so that retries from many images do not march in step.
pub(crate) fn jitter(delay: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |now| now.subsec_nanos());
    delay / 4 * (nanos % 100) / 100
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn an_answer_by_digest_must_name_that_digest() {
        let image: Reference = "nginx:latest".parse().unwrap();
        let answer = |status: StatusCode, digest: Option<&'static str>| Response {
            status,
            headers: digest
                .map(|digest| {
                    let mut headers = HeaderMap::new();
                    headers.insert("docker-content-digest", HeaderValue::from_static(digest));
                    headers
                })
                .unwrap_or_default(),
            body: Vec::new(),
        };
        let cases = [
            ("sha256:a", StatusCode::OK, Some("sha256:a"), true),
            ("sha256:a", StatusCode::OK, Some("sha256:b"), false),
            ("sha256:a", StatusCode::OK, None, true),
            ("sha256:a", StatusCode::NOT_FOUND, Some("sha256:b"), true),
            ("latest", StatusCode::OK, Some("sha256:b"), true),
            // A registry that indexes by sha256 answers a sha512 request in sha256.
            ("sha512:a", StatusCode::OK, Some("sha256:b"), true),
            ("sha512:a", StatusCode::OK, Some("sha512:b"), false),
        ];
        for (requested, status, answered, accepted) in cases {
            let result = check_digest(&image, requested, answer(status, answered));
            assert_eq!(result.is_ok(), accepted, "{requested} {status} {answered:?}");
        }
    }

    #[tokio::test]
    async fn a_failed_request_names_where_it_went_but_not_the_query() {
        let url = "http://127.0.0.1:1/bucket/blob?X-Amz-Signature=s3cr3t&X-Amz-Credential=AKIA";
        let error = reqwest::Client::new().get(url).send().await.unwrap_err();
        let failed = send_error("r.example", "GET", &error);
        for text in [error_chain(&error), failed.to_string(), format!("{failed:?}")] {
            assert!(
                text.contains("http://127.0.0.1:1/bucket/blob?[redacted]"),
                "{text}"
            );
            assert!(!text.contains("s3cr3t") && !text.contains("AKIA"), "{text}");
        }
    }

    /// Renews nothing: the test's ECR token is never refused.
    struct NoRenewal;

    impl credentials::Renew for NoRenewal {
        fn renew(
            &self,
            _rejected: u64,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<credentials::Issued, String>> + Send + '_>,
        > {
            Box::pin(async { Err("not in this test".to_owned()) })
        }
    }

    #[tokio::test]
    async fn an_ecr_token_goes_with_the_first_request_and_another_login_waits_for_the_challenge() {
        let client = RegistryClient::new(CredentialStore::with_config_dir(None)).unwrap();
        let ecr: Reference = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1"
            .parse()
            .unwrap();
        let other: Reference = "registry.example.test/team/app:1".parse().unwrap();
        let login = |username: &str, password: &str| credentials::Credentials {
            username: username.into(),
            password: crate::secret::Secret::new(password),
        };
        client.credentials().insert_renewable(
            ecr.registry(),
            credentials::Issued {
                credentials: login("AWS", "ecr-token"),
                serial: 1,
            },
            Arc::new(NoRenewal),
        );
        // A login of docker's or the user's: the registry may want a token for it.
        client
            .credentials()
            .insert(other.registry(), login("alice", "alice-secret"));
        let first = client.authorization(&ecr, &Scopes::push("app")).await.unwrap();
        assert_eq!(first.as_deref(), Some(basic("AWS", "ecr-token").as_str()));
        let first = client
            .authorization(&other, &Scopes::pull("team/app"))
            .await
            .unwrap();
        assert_eq!(first, None);
    }

    #[tokio::test]
    async fn a_token_realm_the_credentials_must_not_reach_is_never_asked() {
        let client = RegistryClient::new(CredentialStore::with_config_dir(None)).unwrap();
        client.credentials().insert(
            "registry.example.test",
            credentials::Credentials {
                username: "alice".into(),
                password: crate::secret::Secret::new("alice-secret"),
            },
        );
        let image: Reference = "registry.example.test/team/app:1".parse().unwrap();
        // Both would be refused connections, were they asked.
        for realm in ["http://127.0.0.2:1/token", "https://127.0.0.2:1/token"] {
            let challenge = Challenge::Bearer {
                realm: realm.into(),
                service: None,
                scope: None,
            };
            let error = client
                .authorize(&image, &Scopes::pull("team/app"), challenge)
                .await
                .unwrap_err();
            let text = error.to_string();
            assert!(matches!(error, RegistryError::RealmRefused { .. }), "{text}");
            assert!(
                text.starts_with(&format!(
                    "registry 'registry.example.test' asks ecrcp to fetch its tokens from '{realm}', "
                )),
                "{text}"
            );
        }
    }

    #[test]
    fn loopback_registries_are_reached_over_http_others_over_https_whatever_their_name_looks_like() {
        for (host, url) in [
            ("localhost:5000", "http://localhost:5000"),
            ("localhost", "http://localhost"),
            ("127.0.0.1:5000", "http://127.0.0.1:5000"),
            ("127.1.2.3", "http://127.1.2.3"),
            ("[::1]:5000", "http://[::1]:5000"),
            ("[::1]", "http://[::1]"),
            // Names that only look local belong to whoever registered them.
            ("127.example.com", "https://127.example.com"),
            ("127.0.0.1.nip.io:5000", "https://127.0.0.1.nip.io:5000"),
            ("localhost.example.com", "https://localhost.example.com"),
            ("127.evil", "https://127.evil"),
            ("[::2]:5000", "https://[::2]:5000"),
            ("10.0.0.1:5000", "https://10.0.0.1:5000"),
            ("registry-1.docker.io", "https://registry-1.docker.io"),
            (
                "123456789012.dkr.ecr.us-east-1.amazonaws.com",
                "https://123456789012.dkr.ecr.us-east-1.amazonaws.com",
            ),
        ] {
            assert_eq!(base_url(host), url);
        }
    }
}
