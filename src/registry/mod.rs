//! The OCI distribution boundary: ecrcp's own HTTP client for registries. It answers "what
//! does this tag hold?" with HEAD requests, which Docker Hub does not count against its pull
//! limit, and reads manifests with GET only where a caller accepts that cost. It trusts what
//! docker trusts: the system's CAs, `SSL_CERT_FILE`, and docker's per-registry certs.d.
//!
//! In layers, from the wire up: [`transport`] (per-host clients, certs.d, bounded reads, the
//! silent-host breaker), [`authorize`] (challenges, tokens, renewal, credentials), and the
//! request path [`request`], which applies each host's settings ([`hosts`]: concurrency, a
//! request rate, the retry policy of [`crate::retry`]). [`error`] is the catalogue of what
//! goes wrong. The operations sit on top: manifests here and in [`manifests`], [`blobs`],
//! [`tags`], and [`prefetch`] (tokens ahead of a run's checks).

pub mod auth;
pub mod authorize;
pub mod blobs;
pub mod credentials;
pub mod digest;
pub mod error;
pub mod hosts;
pub mod manifest;
pub mod manifests;
pub mod origin;
pub mod prefetch;
pub mod request;
pub mod retry;
mod roots;
pub mod scope;
pub mod tags;
pub mod tokens;
pub mod transport;

use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::{Method, StatusCode};

use self::authorize::Authorizer;
use self::credentials::CredentialStore;
pub use self::error::{explanation, rate_limit, Limit, RateLimit, RegistryError};
use self::hosts::Hosts;
use self::request::Request;
pub use self::scope::{Access, Scopes};
pub(crate) use self::transport::{
    base_url, error_chain, host_name, is_loopback, read_bounded, Outgoing, MAX_MANIFEST_BYTES,
};
use self::transport::{Response, Transport};
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

/// A registry client, in layers: the transport ([`transport`]) carries requests to each
/// host, the authorization layer ([`authorize`]) adds what each registry wants, and the
/// request path here tries again as each host's retry policy says. The error catalogue is
/// [`error`].
pub struct RegistryClient {
    auth: Authorizer,
    /// Each host's concurrency, rate and retry policy.
    hosts: Hosts,
    /// Manifest GETs Docker Hub answered: each is a pull on its count.
    hub_manifest_reads: AtomicU64,
    /// Blob bytes sent to destinations.
    bytes_sent: AtomicU64,
    /// Throttles (429) answered.
    throttles: AtomicU64,
}

impl RegistryClient {
    pub fn new(credentials: CredentialStore) -> Result<Self, RegistryError> {
        RegistryClient::with_hosts(credentials, Hosts::default())
    }

    /// A client that holds to `hosts`' settings for each registry host.
    pub fn with_hosts(credentials: CredentialStore, hosts: Hosts) -> Result<Self, RegistryError> {
        let auth = Authorizer::new(Transport::new()?, credentials);
        auth.expect(crate::reference::DOCKER_HUB_API, auth::docker_hub());
        Ok(RegistryClient {
            auth,
            hosts,
            hub_manifest_reads: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            throttles: AtomicU64::new(0),
        })
    }

    /// A client that asks with `credentials` instead, over this one's connections (no new
    /// TLS session to a host this one reached) and knowing the challenges this one met.
    #[must_use]
    pub fn sharing(&self, credentials: CredentialStore) -> Self {
        RegistryClient {
            auth: self.auth.sharing(credentials),
            hosts: Hosts::default(),
            hub_manifest_reads: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            throttles: AtomicU64::new(0),
        }
    }

    pub fn credentials(&self) -> &CredentialStore {
        self.auth.credentials()
    }

    /// Takes it as known that the registry at `api_host` wants Basic credentials from the
    /// first request (a registry kind whose logins are Basic, such as ECR): nobody asks it.
    pub fn expect_basic(&self, api_host: &str) {
        self.auth.expect(api_host, auth::Challenge::Basic);
    }

    /// Paces `paced` kinds of the requests to `api_host` for the rest of the run, each at its
    /// own rate shared by every copy (a registry kind's API quotas, such as ECR's).
    pub fn pace(&self, api_host: &str, paced: Vec<hosts::Paced>) {
        if !paced.is_empty() {
            self.hosts.pace(api_host, paced);
        }
    }

    /// Gets ready to HEAD the manifests of `images`: learns how each host authenticates and
    /// fetches pull tokens for many repositories at once ([`prefetch`]).
    pub async fn prepare_reads(&self, images: &[Reference]) {
        self.auth.prepare_reads(images).await;
    }

    /// Counts `bytes` of a blob sent to a destination.
    pub fn count_sent(&self, bytes: u64) {
        self.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Blob bytes sent to destinations so far.
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent.load(Ordering::Relaxed)
    }

    /// Throttles (429) registries and token servers answered so far.
    pub fn throttles_met(&self) -> u64 {
        self.throttles.load(Ordering::Relaxed)
    }

    /// The manifest GETs Docker Hub answered so far: the pulls this client spent there.
    pub fn hub_manifest_reads(&self) -> u64 {
        self.hub_manifest_reads.load(Ordering::SeqCst)
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
        let mut reference = image.manifest_reference().to_owned();
        // An index points at a child, which is an image manifest; two hops at most.
        for _ in 0..2 {
            match self.parsed_manifest(image, &reference, platform).await? {
                None | Some(manifest::Parsed::Index { child: None }) => return Ok(None),
                Some(manifest::Parsed::Image { config }) => return Ok(Some(config)),
                Some(manifest::Parsed::Index { child: Some(child) }) => reference = child,
            }
        }
        Err(RegistryError::Protocol {
            host: image.registry().to_owned(),
            detail: format!("'{image}' is an index of indexes"),
        })
    }

    /// The digest of `platform`'s manifest in the index `image` names: `None` when `image`
    /// is a single-platform manifest, is missing, or has no child for `platform`. One
    /// manifest GET (on Docker Hub, one pull from the quota).
    pub async fn platform_manifest(
        &self,
        image: &Reference,
        platform: &str,
    ) -> Result<Option<String>, RegistryError> {
        match self
            .parsed_manifest(image, image.manifest_reference(), platform)
            .await?
        {
            Some(manifest::Parsed::Index { child }) => Ok(child),
            None | Some(manifest::Parsed::Image { .. }) => Ok(None),
        }
    }

    /// GETs `reference` (a tag or digest) in `image`'s repository and reads it for
    /// `platform`; `None` when the registry has no such manifest. A child digest it names has
    /// been checked fit for the next request's path.
    async fn parsed_manifest(
        &self,
        image: &Reference,
        reference: &str,
        platform: &str,
    ) -> Result<Option<manifest::Parsed>, RegistryError> {
        let scopes = Scopes::pull(image.repository());
        let response = self
            .manifest_request(Method::GET, image, &scopes, reference)
            .await?;
        if response.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let content_type = header(&response.headers, CONTENT_TYPE.as_str());
        let protocol = |detail| RegistryError::Protocol {
            host: image.registry().to_owned(),
            detail,
        };
        let parsed = manifest::parse(&response.body, content_type.as_deref(), platform).map_err(protocol)?;
        if let manifest::Parsed::Index { child: Some(child) } = &parsed {
            digest::checked("child", child)
                .map_err(|detail| protocol(format!("the index of '{image}' is refused: {detail}")))?;
        }
        Ok(Some(parsed))
    }

    /// A manifest HEAD or GET, its answer (2xx or 404) read. A GET of Docker Hub's is a pull.
    async fn manifest_request(
        &self,
        method: Method,
        image: &Reference,
        scopes: &Scopes,
        reference: &str,
    ) -> Result<Response, RegistryError> {
        let url = repository_url(image, &format!("manifests/{reference}"));
        let mut request = Request::new(method.clone(), url)
            .header(ACCEPT, HeaderValue::from_static(manifest::ACCEPT))
            .accepting(|status| status.is_success() || status == StatusCode::NOT_FOUND);
        if method == Method::GET {
            request = request.pulling();
        }
        let response = self.request(image, scopes, &request).await?;
        if method == Method::GET && response.status.is_success() && image.is_docker_hub() {
            self.hub_manifest_reads.fetch_add(1, Ordering::SeqCst);
        }
        check_digest(image, reference, response)
    }
}

/// `BASE/v2/REPOSITORY/TAIL` for `image`'s repository.
pub(crate) fn repository_url(image: &Reference, tail: &str) -> String {
    format!("{}/v2/{}/{tail}", base_url(image.api_host()), image.repository())
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

pub(crate) fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name)?.to_str().ok().map(str::to_owned)
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
}
