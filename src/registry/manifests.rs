//! Manifests as bytes: read with the media type the registry served them under, written back
//! byte for byte under that same type (never re-serialised, so digests hold), and the OCI
//! referrers API. The reading of what a manifest says lives in the engine.

use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::{Method, StatusCode};

use super::blobs::{answer_error, explanation, write_refusal};
use super::{header, read_bounded, repository_url, Outgoing, RegistryClient, RegistryError, Scopes};
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
        let body = bytes::Bytes::copy_from_slice(bytes);
        self.retrying(&format!("PUT {url}"), || async {
            let mut request = Outgoing::new(Method::PUT, url.clone());
            request.headers.insert(CONTENT_TYPE, content_type.clone());
            request.body = Some(body.clone());
            let response = self.send_authorized(image, scopes, request).await?;
            if response.status() == StatusCode::INTERNAL_SERVER_ERROR
                && super::manifest::is_schema1(media_type)
            {
                return Err(schema1_refusal(image, reference, &url, response).await);
            }
            if !response.status().is_success() {
                let what = format!("manifest '{reference}' of '{}'", image.familiar());
                return Err(write_refusal(image, &what, response).await);
            }
            Ok(Stored {
                digest: header(response.headers(), "docker-content-digest"),
                subject_noted: header(response.headers(), "oci-subject").is_some(),
            })
        })
        .await
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
        self.retrying(&format!("GET {url}"), || async {
            let mut request = Outgoing::new(Method::GET, url.clone());
            request
                .headers
                .insert(ACCEPT, HeaderValue::from_static(super::manifest::OCI_INDEX));
            let response = self.send_authorized(image, scopes, request).await?;
            match response.status() {
                StatusCode::OK => Ok(Some(read_bounded(response, image.api_host(), &url).await?)),
                // Registries without the API: no such route.
                StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED | StatusCode::BAD_REQUEST => Ok(None),
                _ => Err(answer_error(image, &format!("GET {url}"), response).await),
            }
        })
        .await
    }
}

/// A 500 to the PUT of a schema 1 manifest. Distribution 2.7 and 2.8 refuse schema 1 so
/// when they do not store it (`compatibility.schema1.enabled` off, their default), as
/// `UNKNOWN` ("unknown error": the detail, "manifest schema v1 unsupported", is lost on the
/// way): no retry changes that, so it is a refusal. Any other 500 is the server failing.
async fn schema1_refusal(
    image: &Reference,
    reference: &str,
    url: &str,
    response: reqwest::Response,
) -> RegistryError {
    let status = response.status();
    let retry_after = super::retry_after(response.headers());
    let host = image.registry().to_owned();
    let detail = match read_bounded(response, image.api_host(), url).await {
        Ok(body) => explanation(&body),
        Err(error) => return error,
    };
    if detail.starts_with("UNKNOWN") {
        return RegistryError::Refused {
            host,
            what: format!("manifest '{reference}' of '{}'", image.familiar()),
            status,
            detail,
        };
    }
    RegistryError::Server {
        host,
        status,
        url: crate::redact::redact(url).into_owned(),
        retry_after,
    }
}

impl RegistryError {
    /// Whether this refusal of a manifest PUT says the tag is immutable, in the words
    /// registries use: ECR's `TAG_INVALID` "... cannot be overwritten because the tag already
    /// exists" or "... because the repository is immutable", Harbor's "configured as
    /// immutable". Other refusals (`MANIFEST_INVALID`, `MANIFEST_BLOB_UNKNOWN`, a 405) are not.
    pub fn refuses_an_immutable_tag(&self) -> bool {
        let RegistryError::Refused { detail, .. } = self else {
            return false;
        };
        let detail = detail.to_ascii_lowercase();
        detail.contains("immutable") || detail.contains("cannot be overwritten")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_immutable_tag_s_own_words_name_it_immutable() {
        let cases: [(StatusCode, &[u8], bool); 7] = [
            (
                StatusCode::BAD_REQUEST,
                br#"{"errors":[{"code":"TAG_INVALID","message":"The image tag '1' already exists in the 'a' repository and cannot be overwritten because the tag already exists."}]}"#,
                true,
            ),
            (
                StatusCode::BAD_REQUEST,
                br#"{"errors":[{"code":"TAG_INVALID","message":"The image tag '1' already exists in the 'a' repository and cannot be overwritten because the repository is immutable."}]}"#,
                true,
            ),
            (
                StatusCode::PRECONDITION_FAILED,
                br#"{"errors":[{"code":"PRECONDITION","message":"the tag 1 configured as immutable, cannot be updated"}]}"#,
                true,
            ),
            (
                StatusCode::BAD_REQUEST,
                br#"{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid"}]}"#,
                false,
            ),
            (
                StatusCode::BAD_REQUEST,
                br#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#,
                false,
            ),
            (
                StatusCode::BAD_REQUEST,
                br#"{"errors":[{"code":"TAG_INVALID","message":"manifest tag did not match URI"}]}"#,
                false,
            ),
            (StatusCode::METHOD_NOT_ALLOWED, b"", false),
        ];
        for (status, body, immutable) in cases {
            let refusal = RegistryError::Refused {
                host: "h".into(),
                what: "manifest '1' of 'a'".into(),
                status,
                detail: explanation(body),
            };
            assert_eq!(refusal.refuses_an_immutable_tag(), immutable, "{refusal}");
        }
        let denied = RegistryError::Denied {
            host: "h".into(),
            repository: "a".into(),
            access: crate::registry::Access::Push,
        };
        assert!(!denied.refuses_an_immutable_tag());
    }
}
