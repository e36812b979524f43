//! Manifests as bytes: read with the media type the registry served them under, written back
//! byte for byte under that same type (never re-serialised, so digests hold), and the OCI
//! referrers API. The reading of what a manifest says lives in the engine.

use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::{Method, StatusCode};

use super::error::explanation;
use super::request::Request;
use super::retry::UNKNOWN_BLOB_PAUSES;
use super::transport::Response;
use super::{header, repository_url, RegistryClient, RegistryError, Scopes};
use crate::reference::Reference;

/// A manifest as a registry served it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawManifest {
    pub bytes: Vec<u8>,
    /// The `Content-Type` it was served with, to be sent back as is; the `mediaType` it
    /// names for itself when that header is not a manifest type ([`super::manifest::media_type_of`]).
    pub media_type: String,
    /// The digest registries name it by: the sha256 of `bytes`, or of the signed part of a
    /// signed schema 1 manifest ([`super::manifest::digest_of`]).
    pub digest: String,
}

impl RegistryClient {
    /// The manifest `reference` (a tag or digest) of `image`'s repository, or `None` when the
    /// registry has none. A manifest asked for by digest must hash to it. On Docker Hub this
    /// is a pull, which this client counts (`hub_manifest_reads`).
    pub async fn get_manifest(
        &self,
        image: &Reference,
        scopes: &Scopes,
        reference: &str,
    ) -> Result<Option<RawManifest>, RegistryError> {
        let response = self
            .manifest_request(Method::GET, image, scopes, reference)
            .await?;
        if response.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let served = header(&response.headers, CONTENT_TYPE.as_str());
        let media_type =
            super::manifest::media_type_of(served.as_deref(), &response.body).ok_or_else(|| {
                RegistryError::Protocol {
                    host: image.registry().to_owned(),
                    detail: format!("manifest '{reference}' of '{image}' comes without a media type"),
                }
            })?;
        let computed = super::manifest::digest_of(&media_type, &response.body);
        if reference.starts_with("sha256:") && computed != reference {
            return Err(RegistryError::DigestMismatch {
                host: image.registry().to_owned(),
                image: image.familiar(),
                requested: reference.to_owned(),
                answered: computed,
            });
        }
        Ok(Some(RawManifest {
            bytes: response.body,
            media_type,
            digest: computed,
        }))
    }

    /// Stores `bytes` as the manifest `reference` (a tag or its digest), under `media_type`.
    /// Returns whether the registry took note of the manifest's `subject` (the
    /// `OCI-Subject` header): if not, referrers need the tag schema to be found.
    pub async fn put_manifest(
        &self,
        image: &Reference,
        scopes: &Scopes,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Stored, RegistryError> {
        let url = repository_url(image, &format!("manifests/{reference}"));
        let content_type = HeaderValue::from_str(media_type).map_err(|_| RegistryError::Protocol {
            host: image.registry().to_owned(),
            detail: format!("media type '{media_type}' cannot be sent"),
        })?;
        let schema1 = super::manifest::is_schema1(media_type);
        // A blob committed a moment ago may not be visible yet to the manifest check
        // (storage that is eventually consistent, or another writer rewriting its link at
        // the same instant): asked again shortly, the same PUT goes through. A blob that is
        // truly missing is refused again, and reported.
        let mut request = Request::new(Method::PUT, url.clone())
            .header(CONTENT_TYPE, content_type)
            .body(bytes::Bytes::copy_from_slice(bytes))
            .named(format!("manifest '{reference}' of '{}'", image.familiar()))
            .writing()
            .asked_again_when(RegistryError::names_an_unknown_blob, &UNKNOWN_BLOB_PAUSES);
        if schema1 {
            // Answered, not retried: see `schema1_refusal`.
            request = request
                .accepting(|status| status.is_success() || status == StatusCode::INTERNAL_SERVER_ERROR);
        }
        let response = self.request(image, scopes, &request).await?;
        if response.status == StatusCode::INTERNAL_SERVER_ERROR {
            return Err(schema1_refusal(image, reference, &url, &response));
        }
        Ok(Stored {
            digest: header(&response.headers, "docker-content-digest"),
            subject_noted: header(&response.headers, "oci-subject").is_some(),
        })
    }

    /// The referrers of `digest` by the OCI referrers API, as an index's bytes; `None` when
    /// the registry does not serve the API.
    pub async fn referrers(
        &self,
        image: &Reference,
        scopes: &Scopes,
        digest: &str,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        let url = repository_url(image, &format!("referrers/{digest}"));
        let request = Request::new(Method::GET, url)
            .header(ACCEPT, HeaderValue::from_static(super::manifest::OCI_INDEX))
            // Registries without the API: no such route.
            .accepting(|status| {
                matches!(
                    status,
                    StatusCode::OK
                        | StatusCode::NOT_FOUND
                        | StatusCode::METHOD_NOT_ALLOWED
                        | StatusCode::BAD_REQUEST
                )
            });
        let response = self.request(image, scopes, &request).await?;
        Ok((response.status == StatusCode::OK).then_some(response.body))
    }
}

/// A 500 to the PUT of a schema 1 manifest. Distribution 2.7 and 2.8 refuse schema 1 so
/// when they do not store it (`compatibility.schema1.enabled` off, their default), as
/// `UNKNOWN` ("unknown error": the detail, "manifest schema v1 unsupported", is lost on the
/// way): no retry changes that, so it is a refusal. Any other 500 is the server failing.
fn schema1_refusal(image: &Reference, reference: &str, url: &str, response: &Response) -> RegistryError {
    let host = image.registry().to_owned();
    let detail = explanation(&response.body);
    if detail.starts_with("UNKNOWN") {
        return RegistryError::Refused {
            host,
            what: format!("manifest '{reference}' of '{}'", image.familiar()),
            status: response.status,
            detail,
        };
    }
    RegistryError::Server {
        host,
        status: response.status,
        url: crate::redact::redact(url).into_owned(),
        retry_after: super::error::retry_after(&response.headers),
    }
}

/// What a manifest PUT answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The digest the registry says it stored, when it says.
    pub digest: Option<String>,
    /// Whether it indexed the manifest's `subject` for the referrers API.
    pub subject_noted: bool,
}
