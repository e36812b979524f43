//! Manifest media types, the digest a registry names a manifest by, and the two facts ecrcp
//! reads out of manifests: which child of an index serves a platform, and which config (image
//! ID) a manifest points at. Pure.

use base64::Engine as _;
use serde::Deserialize;

use crate::platform::Platform;

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker's schema 1, signed (what registries serve it as) and bare.
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// The artifact manifest of the OCI drafts before 1.1, which 1.1 dropped for image manifests
/// with an `artifactType`.
pub const OCI_ARTIFACT_MANIFEST: &str = "application/vnd.oci.artifact.manifest.v1+json";

/// The `Accept` header for manifest requests: everything ecrcp understands, the current
/// kinds first (a registry that stores schema 2 converts it to schema 1 only for a client
/// that accepts nothing newer).
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.oci.artifact.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v1+prettyjws, \
application/vnd.docker.distribution.manifest.v1+json";

/// Whether `media_type` (maybe with parameters) names a manifest or an index, of Docker's
/// schemas or OCI's: what a registry stores a manifest under.
pub fn is_manifest_type(media_type: &str) -> bool {
    let essence = media_type.split(';').next().unwrap_or_default().trim();
    essence.starts_with("application/vnd.docker.distribution.manifest.")
        || essence == OCI_MANIFEST
        || essence == OCI_INDEX
        || essence == OCI_ARTIFACT_MANIFEST
}

/// Whether `media_type` names Docker's schema 1, signed or bare.
pub fn is_schema1(media_type: &str) -> bool {
    let essence = media_type.split(';').next().unwrap_or_default().trim();
    essence == DOCKER_SCHEMA1_SIGNED || essence == DOCKER_SCHEMA1
}

/// The digest a registry names a manifest served as `media_type` by: the sha256 of its
/// bytes, but for a signed schema 1 manifest the sha256 of its signed part
/// ([`schema1_payload`]), as docker and distribution digest it (the signatures are left
/// out, so that signing again keeps the digest).
pub fn digest_of(media_type: &str, bytes: &[u8]) -> String {
    let essence = media_type.split(';').next().unwrap_or_default().trim();
    let current = [
        DOCKER_MANIFEST,
        DOCKER_MANIFEST_LIST,
        OCI_MANIFEST,
        OCI_INDEX,
        OCI_ARTIFACT_MANIFEST,
    ];
    // Only a manifest served as neither of those can be schema 1: the others are not read.
    let signed = if current.contains(&essence) {
        None
    } else {
        schema1_payload(bytes)
    };
    super::digest::sha256(signed.as_deref().unwrap_or(bytes))
}

/// The part of a signed schema 1 manifest (`v1+prettyjws`) its JWS signatures cover, by
/// libtrust's rules: the bytes up to `formatLength`, then the base64url `formatTail`, both
/// read from each signature's protected header (all must agree). `None` for anything else,
/// an unsigned schema 1 manifest included.
pub fn schema1_payload(bytes: &[u8]) -> Option<Vec<u8>> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Signed {
        schema_version: Option<u64>,
        signatures: Option<Vec<Signature>>,
    }
    #[derive(Deserialize)]
    struct Signature {
        protected: String,
    }
    #[derive(Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Protected {
        format_length: usize,
        format_tail: String,
    }
    let base64url = |text: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .ok()
    };
    let signed: Signed = serde_json::from_slice(bytes).ok()?;
    if signed.schema_version != Some(1) {
        return None;
    }
    let mut format: Option<Protected> = None;
    for signature in signed.signatures? {
        let protected: Protected = serde_json::from_slice(&base64url(&signature.protected)?).ok()?;
        match &format {
            None => format = Some(protected),
            Some(agreed) if *agreed == protected => {}
            Some(_) => return None,
        }
    }
    let format = format?;
    let mut payload = bytes.get(..format.format_length)?.to_vec();
    payload.extend(base64url(&format.format_tail)?);
    Some(payload)
}

/// The media type to store a manifest under: the `Content-Type` it was served with when that
/// names a manifest, else the `mediaType` it names for itself. A source that serves
/// manifests as `application/json` or `text/plain` (or with none) would have them stored, or
/// refused, as that.
pub fn media_type_of(content_type: Option<&str>, body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Declared {
        media_type: Option<String>,
    }
    let served = content_type.map(str::trim).filter(|value| !value.is_empty());
    if let Some(served) = served.filter(|served| is_manifest_type(served)) {
        return Some(served.to_owned());
    }
    let declared = (body.len() <= super::MAX_MANIFEST_BYTES)
        .then(|| serde_json::from_slice::<Declared>(body).ok())
        .flatten()
        .and_then(|declared| declared.media_type)
        .filter(|declared| !declared.is_empty());
    declared.or_else(|| served.map(str::to_owned))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    media_type: Option<String>,
    manifests: Option<Vec<Descriptor>>,
    config: Option<Descriptor>,
}

#[derive(Debug, Deserialize)]
struct Descriptor {
    digest: String,
    platform: Option<Platform>,
}

/// What a manifest body says about the image it describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A single-platform manifest and its config digest (the image ID).
    Image { config: String },
    /// An index: the digest of the child manifest for the requested platform, if any.
    Index { child: Option<String> },
}

/// Reads a manifest body. `platform` is `os/arch[/variant][:osversion]` and picks the child
/// of an index that serves it best (`crate::platform`), as the registry engine picks it.
pub fn parse(body: &[u8], content_type: Option<&str>, platform: &str) -> Result<Parsed, String> {
    let document: Document =
        serde_json::from_slice(body).map_err(|error| format!("manifest is not valid JSON: {error}"))?;
    let media_type = content_type
        .map(str::to_owned)
        .or(document.media_type)
        .unwrap_or_default();
    let is_index = media_type.starts_with(OCI_INDEX)
        || media_type.starts_with(DOCKER_MANIFEST_LIST)
        || (document.manifests.is_some() && document.config.is_none());
    if is_index {
        let wanted = Platform::parse(platform).map_err(|error| error.to_string())?;
        let children = document.manifests.unwrap_or_default();
        let child = wanted
            .best(&children, |descriptor| descriptor.platform.as_ref())
            .map(|descriptor| descriptor.digest.clone());
        return Ok(Parsed::Index { child });
    }
    match document.config {
        Some(config) => Ok(Parsed::Image {
            config: config.digest,
        }),
        None => Err(format!("manifest of type '{media_type}' names no config")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
        "manifests":[
          {"digest":"sha256:amd","platform":{"os":"linux","architecture":"amd64"}},
          {"digest":"sha256:armv6","platform":{"os":"linux","architecture":"arm","variant":"v6"}},
          {"digest":"sha256:armv7","platform":{"os":"linux","architecture":"arm","variant":"v7"}},
          {"digest":"sha256:arm64","platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
          {"digest":"sha256:ltsc2019","platform":{"os":"windows","architecture":"amd64","os.version":"10.0.17763.5576"}},
          {"digest":"sha256:ltsc2022","platform":{"os":"windows","architecture":"amd64","os.version":"10.0.20348.2113"}}]}"#;
    const IMAGE: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
        "config":{"digest":"sha256:cfg"},"layers":[]}"#;

    #[test]
    fn an_index_yields_the_child_for_the_platform() {
        let cases = [
            ("linux/amd64", Some("sha256:amd")),
            ("linux/arm/v7", Some("sha256:armv7")),
            ("linux/arm64", Some("sha256:arm64")),
            ("linux/arm64/v8", Some("sha256:arm64")),
            ("linux/aarch64", Some("sha256:arm64")),
            ("linux/arm", Some("sha256:armv7")),
            ("linux/x86_64", Some("sha256:amd")),
            ("windows/amd64:10.0.20348", Some("sha256:ltsc2022")),
            ("windows/amd64", Some("sha256:ltsc2019")),
            ("linux/s390x", None),
        ];
        for (platform, child) in cases {
            assert_eq!(
                parse(INDEX.as_bytes(), None, platform).unwrap(),
                Parsed::Index {
                    child: child.map(str::to_owned)
                },
                "{platform}"
            );
        }
    }

    #[test]
    fn a_manifest_is_stored_under_a_manifest_type_whatever_it_was_served_as() {
        let image = IMAGE.as_bytes();
        let cases: [(Option<&str>, &[u8], Option<&str>); 9] = [
            (Some(OCI_MANIFEST), image, Some(OCI_MANIFEST)),
            // The header wins over the body when it names a manifest: sent back as served.
            (Some(OCI_INDEX), image, Some(OCI_INDEX)),
            (
                Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
                b"{}",
                Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
            ),
            (Some("application/json"), image, Some(DOCKER_MANIFEST)),
            (Some("text/plain; charset=utf-8"), image, Some(DOCKER_MANIFEST)),
            (None, image, Some(DOCKER_MANIFEST)),
            (Some(""), image, Some(DOCKER_MANIFEST)),
            // Nothing better to go by: the header as served.
            (
                Some("application/json"),
                b"{\"schemaVersion\":2}",
                Some("application/json"),
            ),
            (None, b"<html>", None),
        ];
        for (served, body, expected) in cases {
            assert_eq!(
                media_type_of(served, body).as_deref(),
                expected,
                "{served:?} {}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn a_signed_schema_1_manifest_is_digested_without_its_signatures() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let unsigned = "{\n   \"schemaVersion\": 1,\n   \"name\": \"library/old\",\n   \"fsLayers\": []\n}";
        // As libtrust signs: the document up to its last value, the signatures, the tail.
        let length = unsigned.rfind(']').unwrap() + 1;
        let tail = &unsigned[length..];
        let protected = |length: usize, tail: &str| {
            URL_SAFE_NO_PAD.encode(format!(
                r#"{{"formatLength":{length},"formatTail":"{}","time":"2016-01-01T00:00:00Z"}}"#,
                URL_SAFE_NO_PAD.encode(tail)
            ))
        };
        let signed = |protections: &[String]| {
            let signatures: Vec<String> = protections
                .iter()
                .map(|protected| {
                    format!(r#"{{"header":{{"alg":"ES256"}},"signature":"c2ln","protected":"{protected}"}}"#)
                })
                .collect();
            format!(
                "{},\n   \"signatures\": [{}]\n}}",
                &unsigned[..length],
                signatures.join(",")
            )
        };
        let once = signed(&[protected(length, tail)]);
        let twice = signed(&[protected(length, tail), protected(length, tail)]);
        let conflicting = signed(&[protected(length, tail), protected(length - 1, tail)]);
        assert_eq!(
            schema1_payload(once.as_bytes()).as_deref(),
            Some(unsigned.as_bytes())
        );
        let expected = crate::registry::digest::sha256(unsigned.as_bytes());
        let cases = [
            (DOCKER_SCHEMA1_SIGNED, once.as_str(), expected.clone()),
            (DOCKER_SCHEMA1_SIGNED, twice.as_str(), expected.clone()),
            ("application/json", once.as_str(), expected),
            // Signatures that disagree, or none: the bytes as they are.
            (
                DOCKER_SCHEMA1_SIGNED,
                conflicting.as_str(),
                crate::registry::digest::sha256(conflicting.as_bytes()),
            ),
            (
                DOCKER_SCHEMA1,
                unsigned,
                crate::registry::digest::sha256(unsigned.as_bytes()),
            ),
            // Served as a current kind: never read as schema 1.
            (
                OCI_MANIFEST,
                once.as_str(),
                crate::registry::digest::sha256(once.as_bytes()),
            ),
            (
                DOCKER_MANIFEST,
                IMAGE,
                crate::registry::digest::sha256(IMAGE.as_bytes()),
            ),
        ];
        for (media_type, body, digest) in cases {
            assert_eq!(
                digest_of(media_type, body.as_bytes()),
                digest,
                "{media_type} {body}"
            );
        }
        assert_eq!(schema1_payload(IMAGE.as_bytes()), None);
    }

    #[test]
    fn an_image_manifest_yields_its_config_digest() {
        assert_eq!(
            parse(IMAGE.as_bytes(), Some(DOCKER_MANIFEST), "linux/amd64").unwrap(),
            Parsed::Image {
                config: "sha256:cfg".into()
            }
        );
        assert!(parse(b"{}", Some(OCI_MANIFEST), "linux/amd64").is_err());
        assert!(parse(b"<html>", None, "linux/amd64").is_err());
    }
}
