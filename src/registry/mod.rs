//! The OCI distribution boundary: ecrcp's own HTTP client for registries. It answers "what
//! does this tag hold?" with HEAD requests, which Docker Hub does not count against its pull
//! limit, and reads manifests with GET only where a caller accepts that cost. It trusts what
//! docker trusts: the system's CAs, `SSL_CERT_FILE`, and docker's per-registry certs.d.

pub mod auth;
pub mod credentials;
pub mod manifest;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode, Url};

use self::auth::Challenge;
use self::credentials::CredentialStore;
use crate::reference::Reference;

/// What a HEAD on a manifest told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    pub digest: String,
    pub media_type: Option<String>,
    pub rate_limit: Option<RateLimit>,
}

/// Docker Hub's pull allowance, from the `ratelimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: u64,
    pub remaining: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry '{host}' wants credentials for '{repository}'\nnote: run `docker login {host}`")]
    Unauthorized { host: String, repository: String },
    #[error("registry '{host}' denied access to '{repository}'\nnote: check that your login may read it")]
    Denied { host: String, repository: String },
    #[error("registry '{host}' says the pull rate limit is reached{detail}\nnote: wait for the window to pass, or `docker login` to a paid account")]
    RateLimited { host: String, detail: String },
    #[error("registry '{host}' answered {status} for {url}")]
    Server {
        host: String,
        status: StatusCode,
        url: String,
    },
    #[error("cannot reach registry '{host}': {detail}\nnote: check the name, the network, and that the registry's CA is trusted (system store, SSL_CERT_FILE, or /etc/docker/certs.d/HOST/ca.crt)")]
    Connect { host: String, detail: String },
    #[error("registry '{host}' sent something unexpected: {detail}")]
    Protocol { host: String, detail: String },
    #[error("'{image}' was not found in its registry")]
    NotFound { image: String },
}

impl RegistryError {
    /// Whether trying again may help: server errors and dropped connections, never a refusal
    /// or an exhausted pull quota (retrying that would spend what is left).
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Server { status, .. } => status.is_server_error(),
            RegistryError::Connect { .. } => true,
            _ => false,
        }
    }
}

/// A registry client with a token cache per host and repository, and the challenge each
/// host answered with.
pub struct RegistryClient {
    /// Trusts the system's CAs (and `SSL_CERT_FILE`).
    http: reqwest::Client,
    /// For hosts with CAs of their own in docker's certs.d, a client that trusts those too.
    with_docker_cas: Mutex<HashMap<String, reqwest::Client>>,
    credentials: CredentialStore,
    tokens: Mutex<HashMap<(String, String), String>>,
    /// How each host asked to authenticate, once it did.
    challenges: Mutex<HashMap<String, Challenge>>,
    attempts: u32,
}

struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl RegistryClient {
    pub fn new(credentials: CredentialStore) -> Result<Self, RegistryError> {
        Ok(RegistryClient {
            http: http_client("(none)", Vec::new())?,
            with_docker_cas: Mutex::new(HashMap::new()),
            credentials,
            tokens: Mutex::new(HashMap::new()),
            challenges: Mutex::new(HashMap::new()),
            attempts: 3,
        })
    }

    pub fn credentials(&self) -> &CredentialStore {
        &self.credentials
    }

    /// The client for `host`: one that also trusts the CAs docker trusts for that registry
    /// (`/etc/docker/certs.d/HOST/*.crt`), so a private registry that docker reaches, ecrcp
    /// reaches too.
    fn http_for(&self, host: &str) -> Result<reqwest::Client, RegistryError> {
        let mut clients = self.with_docker_cas.lock().expect("client cache poisoned");
        if let Some(client) = clients.get(host) {
            return Ok(client.clone());
        }
        let cas = docker_cas(&Path::new(DOCKER_CERTS_DIR).join(host));
        let client = if cas.is_empty() {
            self.http.clone()
        } else {
            http_client(host, cas)?
        };
        clients.insert(host.to_owned(), client.clone());
        Ok(client)
    }

    /// The digest `image` names now, or `None` when the registry does not have it.
    pub async fn head_manifest(&self, image: &Reference) -> Result<Option<ManifestHead>, RegistryError> {
        let response = self
            .manifest_request(Method::HEAD, image, image.manifest_reference())
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
        let mut reference = image.manifest_reference().to_owned();
        // An index points at a child, which is an image manifest; two hops at most.
        for _ in 0..2 {
            let response = self.manifest_request(Method::GET, image, &reference).await?;
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
                manifest::Parsed::Index { child: Some(child) } => reference = child,
                manifest::Parsed::Index { child: None } => return Ok(None),
            }
        }
        Err(RegistryError::Protocol {
            host: image.registry().to_owned(),
            detail: format!("'{image}' is an index of indexes"),
        })
    }

    async fn manifest_request(
        &self,
        method: Method,
        image: &Reference,
        reference: &str,
    ) -> Result<Response, RegistryError> {
        let mut delay = Duration::from_millis(250);
        let mut attempt = 1;
        loop {
            match self.manifest_request_once(method.clone(), image, reference).await {
                Err(error) if error.is_transient() && attempt < self.attempts => {
                    tracing::debug!(image = %image, %error, attempt, "retrying registry request");
                    tokio::time::sleep(delay + jitter(delay)).await;
                    delay *= 2;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn manifest_request_once(
        &self,
        method: Method,
        image: &Reference,
        reference: &str,
    ) -> Result<Response, RegistryError> {
        let host = image.api_host();
        let url = format!(
            "{}/v2/{}/manifests/{reference}",
            base_url(host),
            image.repository()
        );
        let key = (host.to_owned(), image.repository().to_owned());
        let mut authorization = self
            .tokens
            .lock()
            .expect("token cache poisoned")
            .get(&key)
            .cloned();
        if authorization.is_none() {
            // The host asked before, for another repository: answer its challenge up front and
            // save the round trip that would only fetch the same 401.
            let known = self
                .challenges
                .lock()
                .expect("challenge cache poisoned")
                .get(host)
                .cloned();
            if let Some(challenge) = known {
                authorization = Some(self.authorize(image, challenge).await?);
            }
        }
        let mut response = self
            .send(method.clone(), &url, host, authorization.as_deref())
            .await?;
        if response.status == StatusCode::UNAUTHORIZED {
            let challenge = header(&response.headers, WWW_AUTHENTICATE.as_str())
                .and_then(|value| auth::parse_challenge(&value))
                .ok_or_else(|| RegistryError::Unauthorized {
                    host: image.registry().to_owned(),
                    repository: image.repository().to_owned(),
                })?;
            self.challenges
                .lock()
                .expect("challenge cache poisoned")
                .insert(host.to_owned(), challenge.clone());
            let fresh = self.authorize(image, challenge).await?;
            response = self.send(method, &url, host, Some(&fresh)).await?;
            if response.status == StatusCode::UNAUTHORIZED {
                return Err(RegistryError::Unauthorized {
                    host: image.registry().to_owned(),
                    repository: image.repository().to_owned(),
                });
            }
            authorization = Some(fresh);
        }
        if let Some(authorization) = authorization {
            self.tokens
                .lock()
                .expect("token cache poisoned")
                .insert(key, authorization);
        }
        check_status(image, &url, response)
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        host: &str,
        authorization: Option<&str>,
    ) -> Result<Response, RegistryError> {
        let mut request = self
            .http_for(host)?
            .request(method.clone(), url)
            .header(ACCEPT, manifest::ACCEPT);
        if let Some(authorization) = authorization {
            request = request.header(AUTHORIZATION, authorization);
        }
        let response = request.send().await.map_err(|error| RegistryError::Connect {
            host: host.to_owned(),
            detail: error_chain(&error),
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = if method == Method::HEAD {
            Vec::new()
        } else {
            response
                .bytes()
                .await
                .map_err(|error| RegistryError::Connect {
                    host: host.to_owned(),
                    detail: error_chain(&error),
                })?
                .to_vec()
        };
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// Answers a challenge: the `Authorization` header value to send.
    async fn authorize(&self, image: &Reference, challenge: Challenge) -> Result<String, RegistryError> {
        let host = image.registry();
        let unauthorized = || RegistryError::Unauthorized {
            host: host.to_owned(),
            repository: image.repository().to_owned(),
        };
        let credentials = self.credentials.lookup(host).await;
        match challenge {
            Challenge::Basic => {
                let credentials = credentials.ok_or_else(unauthorized)?;
                Ok(basic(&credentials.username, credentials.password.expose()))
            }
            Challenge::Bearer { realm, service, .. } => {
                let mut url = Url::parse(&realm).map_err(|_| RegistryError::Protocol {
                    host: host.to_owned(),
                    detail: format!("bad token realm '{realm}'"),
                })?;
                {
                    let mut query = url.query_pairs_mut();
                    if let Some(service) = &service {
                        query.append_pair("service", service);
                    }
                    query.append_pair("scope", &format!("repository:{}:pull", image.repository()));
                }
                let authorization = credentials
                    .as_ref()
                    .map(|credentials| basic(&credentials.username, credentials.password.expose()));
                let response = self
                    .send(
                        Method::GET,
                        url.as_str(),
                        url.host_str().unwrap_or(host),
                        authorization.as_deref(),
                    )
                    .await?;
                match response.status {
                    StatusCode::UNAUTHORIZED => return Err(unauthorized()),
                    StatusCode::FORBIDDEN => {
                        return Err(RegistryError::Denied {
                            host: host.to_owned(),
                            repository: image.repository().to_owned(),
                        })
                    }
                    status if !status.is_success() => {
                        return Err(RegistryError::Server {
                            host: host.to_owned(),
                            status,
                            url: realm,
                        })
                    }
                    _ => {}
                }
                let token =
                    auth::parse_token_response(&response.body).ok_or_else(|| RegistryError::Protocol {
                        host: host.to_owned(),
                        detail: "the token server's answer holds no token".into(),
                    })?;
                Ok(format!("Bearer {token}"))
            }
        }
    }
}

/// Where the docker daemon keeps per-registry certificates.
const DOCKER_CERTS_DIR: &str = "/etc/docker/certs.d";

fn http_client(host: &str, extra_cas: Vec<reqwest::Certificate>) -> Result<reqwest::Client, RegistryError> {
    reqwest::Client::builder()
        .user_agent(concat!("ecrcp/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .tls_certs_merge(extra_cas)
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

fn check_status(image: &Reference, url: &str, response: Response) -> Result<Response, RegistryError> {
    let host = image.registry().to_owned();
    match response.status {
        status if status.is_success() || status == StatusCode::NOT_FOUND => Ok(response),
        StatusCode::FORBIDDEN => Err(RegistryError::Denied {
            host,
            repository: image.repository().to_owned(),
        }),
        StatusCode::TOO_MANY_REQUESTS => {
            let detail = rate_limit(&response.headers)
                .map(|limit| format!(" ({} of {} pulls left)", limit.remaining, limit.limit))
                .unwrap_or_default();
            Err(RegistryError::RateLimited { host, detail })
        }
        status => Err(RegistryError::Server {
            host,
            status,
            url: url.to_owned(),
        }),
    }
}

/// `https://HOST`, except for loopback registries, which docker also reaches over plain HTTP.
fn base_url(host: &str) -> String {
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    let loopback = name == "localhost" || name.starts_with("127.") || name == "[::1]";
    if loopback {
        format!("http://{host}")
    } else {
        format!("https://{host}")
    }
}

fn basic(username: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
    )
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name)?.to_str().ok().map(str::to_owned)
}

/// Parses Docker Hub's `ratelimit-limit: 100;w=21600` and `ratelimit-remaining: 76;w=21600`.
pub fn rate_limit(headers: &HeaderMap) -> Option<RateLimit> {
    let number =
        |name: &str| -> Option<u64> { header(headers, name)?.split(';').next()?.trim().parse().ok() };
    Some(RateLimit {
        limit: number("ratelimit-limit")?,
        remaining: number("ratelimit-remaining")?,
    })
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Up to a quarter of `delay`, so that retries from many images do not march in step.
fn jitter(delay: Duration) -> Duration {
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
    fn rate_limit_headers_parse_as_docker_hub_sends_them() {
        let mut headers = HeaderMap::new();
        assert_eq!(rate_limit(&headers), None);
        headers.insert("ratelimit-limit", HeaderValue::from_static("100;w=21600"));
        headers.insert("ratelimit-remaining", HeaderValue::from_static("76;w=21600"));
        assert_eq!(
            rate_limit(&headers),
            Some(RateLimit {
                limit: 100,
                remaining: 76
            })
        );
    }

    #[test]
    fn only_server_and_connection_errors_are_transient() {
        let server = RegistryError::Server {
            host: "h".into(),
            status: StatusCode::BAD_GATEWAY,
            url: "u".into(),
        };
        let quota = RegistryError::RateLimited {
            host: "h".into(),
            detail: String::new(),
        };
        let denied = RegistryError::Denied {
            host: "h".into(),
            repository: "r".into(),
        };
        assert!(server.is_transient());
        assert!(!quota.is_transient());
        assert!(!denied.is_transient());
    }

    #[test]
    fn loopback_registries_are_reached_over_http_others_over_https() {
        for (host, url) in [
            ("localhost:5000", "http://localhost:5000"),
            ("127.0.0.1:5000", "http://127.0.0.1:5000"),
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
