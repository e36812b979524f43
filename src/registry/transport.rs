//! The transport layer: how bytes reach a registry host. One reqwest client per host (the
//! system's CAs, plus docker's certs.d for hosts that have their own), time limits at every
//! stage, bounded reads of answers, the silent-host breaker (a host that went silent is not
//! asked again for a while), and errors that name URLs only redacted. Knows nothing of
//! credentials or retries: the layers above add those.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use reqwest::header::{HeaderMap, AUTHORIZATION};
use reqwest::{Method, StatusCode};

use super::RegistryError;
use crate::net_timeouts;
use crate::redact;

/// The most of a manifest (or a token answer) ecrcp reads: ECR, like most registries,
/// refuses manifests over 4 MiB.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

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

/// An answer with its body read.
pub(crate) struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Per-host HTTP clients and the hosts that went silent.
pub(crate) struct Transport {
    /// Trusts the system's CAs (and `SSL_CERT_FILE`).
    http: reqwest::Client,
    /// For hosts with CAs of their own in docker's certs.d, clients that trust those too.
    with_docker_cas: Mutex<DockerCaClients>,
    /// Hosts that stopped answering, and when ([`RegistryError::StillSilent`]).
    silent: Mutex<HashMap<String, Instant>>,
}

/// The clients for hosts with CAs in docker's certs.d: one per set of CAs, shared by the
/// hosts that name the same set (a private CA often signs several registries).
#[derive(Default)]
struct DockerCaClients {
    by_host: HashMap<String, reqwest::Client>,
    /// Keyed by the CA files' contents.
    by_cas: HashMap<Vec<u8>, reqwest::Client>,
}

impl Transport {
    pub fn new() -> Result<Self, RegistryError> {
        Ok(Transport {
            http: http_client("(none)", &[])?,
            with_docker_cas: Mutex::default(),
            silent: Mutex::default(),
        })
    }

    /// The client for `host`: one that also trusts the CAs docker trusts for that registry
    /// (`/etc/docker/certs.d/HOST/*.crt`), so a private registry that docker reaches, ecrcp
    /// reaches too.
    fn http_for(&self, host: &str) -> Result<reqwest::Client, RegistryError> {
        let mut known = self.with_docker_cas.lock().expect("client cache poisoned");
        if let Some(found) = known.by_host.get(host) {
            return Ok(found.clone());
        }
        let (pems, cas) = docker_cas(&Path::new(DOCKER_CERTS_DIR).join(host));
        let found = if cas.is_empty() {
            self.http.clone()
        } else if let Some(shared) = known.by_cas.get(&pems) {
            shared.clone()
        } else {
            let client = http_client(host, &cas)?;
            known.by_cas.insert(pems, client.clone());
            client
        };
        known.by_host.insert(host.to_owned(), found.clone());
        Ok(found)
    }

    /// One HTTP request as it is, no retries, no challenge.
    pub async fn send(
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
        let started = Instant::now();
        let sent = match tokio::time::timeout(limit, builder.send()).await {
            Ok(sent) => sent.map_err(|error| send_error(host, &what(), &error)),
            Err(_) => Err(RegistryError::Stalled {
                host: host.to_owned(),
                what: what(),
                after: limit,
            }),
        };
        if let Err(RegistryError::Stalled { .. }) = &sent {
            self.went_silent(host);
        }
        if let Ok(response) = &sent {
            tracing::trace!(request = %what(), status = response.status().as_u16(), ms = started.elapsed().as_millis(), authorized = authorization.is_some(), "answered");
        }
        sent
    }

    /// Fails at once for a host that stopped answering a request within the hold.
    pub fn refuse_if_silent(&self, host: &str) -> Result<(), RegistryError> {
        let silent = self.silent.lock().expect("silent hosts poisoned");
        match silent.get(host).map(Instant::elapsed) {
            Some(ago) if ago < net_timeouts::net().silent_hold => Err(RegistryError::StillSilent {
                host: host.to_owned(),
                ago,
            }),
            _ => Ok(()),
        }
    }

    /// Notes that `host` stopped answering: it is not asked again within the hold.
    fn went_silent(&self, host: &str) {
        self.silent
            .lock()
            .expect("silent hosts poisoned")
            .insert(host.to_owned(), Instant::now());
    }

    /// Sends a request built elsewhere (a streamed upload, which cannot be sent twice) as it
    /// is; `what` names it in errors.
    pub async fn execute(
        &self,
        host: &str,
        client: &reqwest::Client,
        request: reqwest::Request,
        what: &str,
    ) -> Result<reqwest::Response, RegistryError> {
        client
            .execute(request)
            .await
            .map_err(|error| send_error(host, what, &error))
    }

    /// A request builder on the long-transfer client for `host`.
    pub fn long_request(
        &self,
        method: Method,
        url: &str,
        host: &str,
    ) -> Result<reqwest::RequestBuilder, RegistryError> {
        Ok(self.http_for(host)?.request(method, url))
    }
}

/// A response with its body read (bounded), but for HEAD.
pub(crate) async fn read_response(
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
pub(crate) fn send_error(host: &str, what: &str, error: &reqwest::Error) -> RegistryError {
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
/// adds its own (see [`Transport::send`] and the blob readers and writers).
pub(crate) fn http_client(
    host: &str,
    extra_cas: &[reqwest::Certificate],
) -> Result<reqwest::Client, RegistryError> {
    client_with(host, extra_cas, true)
}

/// A client for a cloud's token service (Microsoft Entra ID, a registry's token exchange):
/// a registry client's limits and CAs, and no redirects, so that a token in a request body
/// goes to no other address.
pub(crate) fn token_service_client(host: &str) -> Result<reqwest::Client, RegistryError> {
    client_with(host, &[], false)
}

fn client_with(
    host: &str,
    extra_cas: &[reqwest::Certificate],
    follow_redirects: bool,
) -> Result<reqwest::Client, RegistryError> {
    crate::tls::install();
    let limits = net_timeouts::net();
    let builder = || {
        reqwest::Client::builder()
            .redirect(if follow_redirects {
                reqwest::redirect::Policy::default()
            } else {
                reqwest::redirect::Policy::none()
            })
            .user_agent(concat!("ecrcp/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(limits.connect)
            .tcp_user_timeout(limits.unacknowledged)
            .tcp_keepalive(limits.keepalive)
            .tcp_keepalive_interval(limits.keepalive)
    };
    let system = super::roots::system();
    // The system's CAs as read once for the process; where they cannot be (none read, or
    // one rustls refuses), reqwest's platform verifier reads them itself, as before.
    let read_once = if system.is_empty() {
        None
    } else {
        builder()
            .tls_certs_only(system.iter().chain(extra_cas).cloned())
            .build()
            .ok()
    };
    match read_once {
        Some(client) => Ok(client),
        None => builder().tls_certs_merge(extra_cas.to_vec()).build(),
    }
    .map_err(|error| RegistryError::Connect {
        host: host.to_owned(),
        detail: error_chain(&error),
    })
}

/// The CA certificates (`*.crt`, as docker reads them) in a certs.d directory, and the
/// contents of the files they came from, in name order. An unreadable one is logged and left
/// out: the system's CAs may still do.
fn docker_cas(dir: &Path) -> (Vec<u8>, Vec<reqwest::Certificate>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (Vec::new(), Vec::new());
    };
    let mut paths: Vec<_> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "crt"))
        .collect();
    paths.sort();
    let (mut pems, mut cas) = (Vec::new(), Vec::new());
    for path in paths {
        match std::fs::read(&path).map_err(|e| e.to_string()).and_then(|pem| {
            let found = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| e.to_string())?;
            Ok((pem, found))
        }) {
            Ok((pem, found)) => {
                pems.extend(pem);
                cas.extend(found);
            }
            Err(error) => {
                tracing::warn!(file = %path.display(), %error, "cannot read a registry CA certificate");
            }
        }
    }
    (pems, cas)
}

/// A response body, read as it streams in and refused past [`MAX_MANIFEST_BYTES`], so that a
/// broken or hostile server cannot make ecrcp hold gigabytes.
pub(crate) async fn read_bounded(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_request_names_where_it_went_but_not_the_query() {
        let url = "http://127.0.0.1:1/bucket/blob?X-Amz-Signature=s3cr3t&X-Amz-Credential=AKIA";
        crate::tls::install();
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
