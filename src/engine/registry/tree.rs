//! What a manifest says, as the registry engine needs it: the blobs an image manifest
//! names (or a schema 1 or pre-1.1 OCI artifact manifest, which name no config), the
//! children of an index, which children a `--platform` list keeps (with the buildx
//! attestations that describe them), the index rewritten to just those, and whether a
//! destination's refusal says it does not store a manifest's kind. Pure; the bytes of a
//! manifest that is copied whole are never touched.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;

#[cfg(doc)]
use crate::registry::manifest::DOCKER_SCHEMA1_SIGNED;
use crate::registry::manifest::{is_schema1, DOCKER_MANIFEST_LIST, OCI_ARTIFACT_MANIFEST, OCI_INDEX};
use crate::registry::{digest, RegistryError};

/// A content descriptor, as manifests hold them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: Option<String>,
    pub digest: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Where a foreign (non-distributable) layer is served instead of the registry.
    #[serde(default)]
    pub urls: Vec<String>,
    /// What an artifact (a referrer) is: a signature, an SBOM.
    #[serde(default)]
    pub artifact_type: Option<String>,
}

pub use crate::platform::Platform;

/// What a manifest is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // one per manifest read, moved once
pub enum Parsed {
    /// An index (or Docker manifest list): its children.
    Index { children: Vec<Descriptor> },
    /// An image (or artifact) manifest: its config and layers, the blobs to copy.
    Image {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
    /// A manifest of a [`Legacy`] kind: the blobs it names (no config), and the platform
    /// it says it is for, if it says.
    Legacy {
        kind: Legacy,
        blobs: Vec<Descriptor>,
        platform: Option<Platform>,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    schema_version: Option<u64>,
    media_type: Option<String>,
    manifests: Option<Vec<Descriptor>>,
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    /// OCI 1.1 artifact manifests name their content `blobs`.
    #[serde(default)]
    blobs: Vec<Descriptor>,
}

/// A kind of manifest that names blobs and no config, which the registry engine copies byte
/// for byte where the destination stores it (ECR takes schema 1), and which many
/// destinations refuse: the way out then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Legacy {
    /// Docker's schema 1 ([`DOCKER_SCHEMA1_SIGNED`]): `fsLayers`, without sizes or config,
    /// under JWS signatures that name the repository and the tag it was pushed as.
    Schema1,
    /// [`OCI_ARTIFACT_MANIFEST`]: `blobs` and maybe a `subject`.
    ArtifactManifest,
}

impl Legacy {
    /// What it is, as a message names it.
    pub fn name(self) -> &'static str {
        match self {
            Legacy::Schema1 => "schema 1 manifests",
            Legacy::ArtifactManifest => {
                "OCI artifact manifests (application/vnd.oci.artifact.manifest.v1+json, dropped from OCI 1.1)"
            }
        }
    }

    /// What to do when a destination does not store it.
    pub fn way_out(self) -> &'static str {
        match self {
            Legacy::Schema1 => "copy it with `--engine docker`, whose docker daemon pulls schema 1 and pushes it as schema 2 (Docker releases from 28 on refuse schema 1 pulls), or convert it where it is: `skopeo copy --format v2s2`, or a pull and push with such a docker daemon",
            Legacy::ArtifactManifest => "push the artifact again as an OCI 1.1 image manifest with an `artifactType`, as `oras push` 1.0 and later do, or copy it to a registry that stores artifact manifests",
        }
    }
}

/// Whether a manifest served as `media_type` is of a [`Legacy`] kind, by its media type
/// (served or declared) or, for schema 1, its `schemaVersion`.
pub fn legacy(bytes: &[u8], media_type: &str) -> Option<Legacy> {
    let essence = |media_type: &str| media_type.split(';').next().unwrap_or_default().trim().to_owned();
    let document: Option<Document> = serde_json::from_slice(bytes).ok();
    let declared = document.as_ref().and_then(|document| document.media_type.clone());
    let types = [Some(essence(media_type)), declared.as_deref().map(essence)];
    if document.as_ref().and_then(|document| document.schema_version) == Some(1)
        || types.iter().flatten().any(|kind| is_schema1(kind))
    {
        Some(Legacy::Schema1)
    } else if types.iter().flatten().any(|kind| kind == OCI_ARTIFACT_MANIFEST) {
        Some(Legacy::ArtifactManifest)
    } else {
        None
    }
}

/// Whether a destination's refusal of a manifest PUT says it does not store the manifest's
/// kind: distribution answers `MANIFEST_INVALID` ("unsupported manifest media type"), and
/// 2.7-2.8 a 500 `UNKNOWN` to schema 1 (which the registry client tells from a server
/// failing), others 415 or 501. An immutable tag, a missing blob or a failed signature
/// check is something else.
pub fn refuses_the_kind(refusal: &RegistryError) -> bool {
    let RegistryError::Refused { status, detail, .. } = refusal else {
        return false;
    };
    if refusal.refuses_an_immutable_tag() {
        return false;
    }
    let detail = detail.to_ascii_lowercase();
    matches!(status.as_u16(), 415 | 500 | 501)
        || [
            "manifest_invalid",
            "manifest invalid",
            "unsupported",
            "not supported",
            "media type",
        ]
        .iter()
        .any(|words| detail.contains(words))
}

/// What a schema 1 manifest says, read from its signed part (what registries digest and
/// store): the layers and the platform.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Schema1 {
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    fs_layers: Vec<FsLayer>,
    #[serde(default)]
    history: Vec<History>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FsLayer {
    blob_sum: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct History {
    /// The image's v1 config, as a JSON string: the newest layer's names the platform.
    v1_compatibility: String,
}

/// The blobs and the platform of a schema 1 manifest. Its layers repeat (every empty layer
/// is one blob) and come without sizes: each blob is named once, of size 0 (unknown).
fn schema1(bytes: &[u8]) -> Result<Parsed, String> {
    let signed = crate::registry::manifest::schema1_payload(bytes);
    let document: Schema1 = serde_json::from_slice(signed.as_deref().unwrap_or(bytes))
        .map_err(|error| format!("schema 1 manifest is not valid JSON: {error}"))?;
    let mut seen = HashSet::new();
    let blobs = document
        .fs_layers
        .into_iter()
        .filter(|layer| seen.insert(layer.blob_sum.clone()))
        .map(|layer| Descriptor {
            media_type: None,
            digest: layer.blob_sum,
            size: 0,
            platform: None,
            annotations: BTreeMap::new(),
            urls: Vec::new(),
            artifact_type: None,
        })
        .collect();
    let newest: Option<Platform> = document
        .history
        .first()
        .and_then(|history| serde_json::from_str(&history.v1_compatibility).ok());
    let platform = newest.or_else(|| {
        document.architecture.map(|architecture| Platform {
            os: "linux".to_owned(),
            architecture,
            variant: None,
            os_version: None,
        })
    });
    Ok(Parsed::Legacy {
        kind: Legacy::Schema1,
        blobs,
        platform,
    })
}

/// Whether `media_type` names an index.
pub fn is_index(media_type: &str) -> bool {
    let essence = media_type.split(';').next().unwrap_or_default().trim();
    essence == OCI_INDEX || essence == DOCKER_MANIFEST_LIST
}

/// Reads a manifest served as `media_type`.
pub fn parse(bytes: &[u8], media_type: &str) -> Result<Parsed, String> {
    let kind = legacy(bytes, media_type);
    if kind == Some(Legacy::Schema1) {
        return schema1(bytes);
    }
    let document: Document =
        serde_json::from_slice(bytes).map_err(|error| format!("manifest is not valid JSON: {error}"))?;
    if let Some(kind) = kind {
        return Ok(Parsed::Legacy {
            kind,
            blobs: document.blobs,
            platform: None,
        });
    }
    let declared = document.media_type.as_deref().unwrap_or(media_type);
    if is_index(media_type)
        || is_index(declared)
        || (document.manifests.is_some() && document.config.is_none())
    {
        return Ok(Parsed::Index {
            children: document.manifests.unwrap_or_default(),
        });
    }
    let config = document
        .config
        .ok_or_else(|| format!("manifest of type '{media_type}' names no config"))?;
    let mut layers = document.layers;
    layers.extend(document.blobs);
    Ok(Parsed::Image { config, layers })
}

/// The most children ecrcp reads of one index: every one is a request at the destination and
/// maybe a manifest read, and a 4 MiB index could name tens of thousands. Real indexes name a
/// few dozen (each platform and its attestation).
pub const MAX_CHILDREN: usize = 500;

/// Reads a manifest served as `media_type`, as [`parse`], and refuses it when a digest it
/// names is not one ecrcp can check (each of them goes into request paths and fetches) or
/// when it is an index of more than [`MAX_CHILDREN`] children.
pub fn parse_checked(bytes: &[u8], media_type: &str) -> Result<Parsed, String> {
    let parsed = parse(bytes, media_type)?;
    match &parsed {
        Parsed::Index { children } if children.len() > MAX_CHILDREN => {
            return Err(format!(
                "it names {} children, more than the {MAX_CHILDREN} ecrcp reads of one index",
                children.len()
            ));
        }
        Parsed::Index { children } => {
            for child in children {
                digest::checked("child", &child.digest)?;
            }
        }
        Parsed::Image { config, layers } => {
            digest::checked("config", &config.digest)?;
            for layer in layers {
                digest::checked("layer", &layer.digest)?;
            }
        }
        Parsed::Legacy { blobs, .. } => {
            for blob in blobs {
                digest::checked("blob", &blob.digest)?;
            }
        }
    }
    Ok(parsed)
}

/// Whether a layer lives outside registries (Windows base layers): registries accept
/// manifests naming them without the blob, and copying one is neither needed nor allowed.
pub fn is_foreign(layer: &Descriptor) -> bool {
    !layer.urls.is_empty()
        || layer.media_type.as_deref().is_some_and(|media_type| {
            media_type.contains(".foreign.") || media_type.contains("nondistributable")
        })
}

/// Whether `candidate` is the platform `wanted` (`os/arch[/variant][:osversion]`), by
/// containerd's rules (`crate::platform`).
pub fn platform_matches(candidate: &Platform, wanted: &str) -> bool {
    Platform::parse(wanted).is_ok_and(|wanted| wanted.matches(candidate))
}

/// The annotation buildx puts on an attestation manifest: the image it describes.
const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";

/// What `--platform` keeps of an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// One platform: that child itself becomes the copy's top manifest.
    One(Descriptor),
    /// Several: these children (and the attestations of the kept ones), in the index's order.
    Several(Vec<Descriptor>),
}

/// The children of an index that `platforms` keep (for each, the child that serves it best),
/// or the first platform none serves.
pub fn select(children: &[Descriptor], platforms: &[String]) -> Result<Selection, String> {
    let mut kept: Vec<&Descriptor> = Vec::new();
    for wanted in platforms {
        let found = Platform::parse(wanted)
            .ok()
            .and_then(|platform| platform.best(children, |child| child.platform.as_ref()))
            .ok_or_else(|| wanted.clone())?;
        if !kept.iter().any(|child| child.digest == found.digest) {
            kept.push(found);
        }
    }
    if let [one] = kept[..] {
        return Ok(Selection::One(one.clone()));
    }
    let digests: HashSet<&str> = kept.iter().map(|child| child.digest.as_str()).collect();
    Ok(Selection::Several(
        children
            .iter()
            .filter(|child| {
                digests.contains(child.digest.as_str())
                    || child
                        .annotations
                        .get(REFERENCE_DIGEST)
                        .is_some_and(|described| digests.contains(described.as_str()))
            })
            .cloned()
            .collect(),
    ))
}

/// The index `bytes` with only the children in `keep`: every other field as it was.
pub fn rewrite_index(bytes: &[u8], keep: &[Descriptor]) -> Result<Vec<u8>, String> {
    let mut document: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|error| format!("index is not valid JSON: {error}"))?;
    let digests: HashSet<&str> = keep.iter().map(|child| child.digest.as_str()).collect();
    let manifests = document
        .get_mut("manifests")
        .and_then(serde_json::Value::as_array_mut)
        .ok_or("index has no manifests")?;
    manifests.retain(|child| {
        child
            .get("digest")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|digest| digests.contains(digest))
    });
    serde_json::to_vec(&document).map_err(|error| error.to_string())
}

/// The platform a config blob describes, `os/arch[/variant]`.
pub fn config_platform(bytes: &[u8]) -> Option<Platform> {
    serde_json::from_slice(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
      "annotations":{"org.opencontainers.image.created":"2024-01-01"},
      "manifests":[
        {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:amd","size":10,
         "platform":{"os":"linux","architecture":"amd64"}},
        {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:arm64","size":11,
         "platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
        {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:armv7","size":12,
         "platform":{"os":"linux","architecture":"arm","variant":"v7"}},
        {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:att-amd","size":13,
         "platform":{"os":"unknown","architecture":"unknown"},
         "annotations":{"vnd.docker.reference.digest":"sha256:amd","vnd.docker.reference.type":"attestation-manifest"}},
        {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:att-arm64","size":14,
         "platform":{"os":"unknown","architecture":"unknown"},
         "annotations":{"vnd.docker.reference.digest":"sha256:arm64","vnd.docker.reference.type":"attestation-manifest"}}
      ]}"#;

    fn children() -> Vec<Descriptor> {
        match parse(INDEX.as_bytes(), OCI_INDEX).unwrap() {
            Parsed::Index { children } => children,
            other => panic!("{other:?}"),
        }
    }

    fn digests(selection: &Selection) -> Vec<&str> {
        match selection {
            Selection::One(child) => vec![child.digest.as_str()],
            Selection::Several(children) => children.iter().map(|child| child.digest.as_str()).collect(),
        }
    }

    #[test]
    fn manifests_parse_into_children_or_blobs() {
        let image = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
          "config":{"mediaType":"c","digest":"sha256:cfg","size":5},
          "layers":[{"mediaType":"l","digest":"sha256:l1","size":7},
                    {"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"sha256:win","size":9,"urls":["https://x"]}]}"#;
        let Parsed::Image { config, layers } =
            parse(image, "application/vnd.docker.distribution.manifest.v2+json").unwrap()
        else {
            panic!("an image");
        };
        assert_eq!((config.digest.as_str(), config.size), ("sha256:cfg", 5));
        assert_eq!(
            layers
                .iter()
                .map(|l| (l.digest.as_str(), is_foreign(l)))
                .collect::<Vec<_>>(),
            [("sha256:l1", false), ("sha256:win", true)]
        );
        // An OCI 1.1 artifact names its content `blobs`.
        let artifact = br#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"a",
          "config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:e","size":2},
          "blobs":[{"mediaType":"s","digest":"sha256:sig","size":3}],
          "subject":{"mediaType":"m","digest":"sha256:amd","size":10}}"#;
        let Parsed::Image { layers, .. } =
            parse(artifact, "application/vnd.oci.image.manifest.v1+json").unwrap()
        else {
            panic!("an image");
        };
        assert_eq!(layers[0].digest, "sha256:sig");
        // A Docker list served under its own type, and one with the type only inside.
        assert!(matches!(
            parse(
                br#"{"manifests":[]}"#,
                "application/vnd.docker.distribution.manifest.list.v2+json"
            )
            .unwrap(),
            Parsed::Index { .. }
        ));
        assert!(matches!(
            parse(INDEX.as_bytes(), "application/octet-stream").unwrap(),
            Parsed::Index { children } if children.len() == 5
        ));
        assert!(parse(b"{}", "application/vnd.oci.image.manifest.v1+json").is_err());
        assert!(parse(b"<html>", OCI_INDEX).is_err());
    }

    #[test]
    fn schema_1_and_pre_1_1_artifact_manifests_are_read_for_their_blobs() {
        let (l1, l2) = (
            format!("sha256:{}", "1".repeat(64)),
            format!("sha256:{}", "2".repeat(64)),
        );
        // Newest layer first; the empty layer (l1) comes again and again.
        let schema1 = format!(
            r#"{{"schemaVersion":1,"name":"library/old","tag":"1","architecture":"arm64",
          "fsLayers":[{{"blobSum":"{l1}"}},{{"blobSum":"{l2}"}},{{"blobSum":"{l1}"}}],
          "history":[{{"v1Compatibility":"{{\"os\":\"linux\",\"architecture\":\"arm64\",\"variant\":\"v8\"}}"}},
                     {{"v1Compatibility":"{{}}"}},{{"v1Compatibility":"{{}}"}}]}}"#
        );
        let schema1 = schema1.as_bytes();
        let artifact = br#"{"mediaType":"application/vnd.oci.artifact.manifest.v1+json","artifactType":"a",
          "blobs":[{"mediaType":"s","digest":"sha256:sig","size":3}],
          "subject":{"mediaType":"m","digest":"sha256:amd","size":10}}"#;
        let image = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
          "config":{"mediaType":"c","digest":"sha256:cfg","size":5},"layers":[]}"#;
        let cases: [(&[u8], &str, Option<Legacy>); 7] = [
            (
                schema1,
                "application/vnd.docker.distribution.manifest.v1+prettyjws",
                Some(Legacy::Schema1),
            ),
            (
                schema1,
                "application/vnd.docker.distribution.manifest.v1+json",
                Some(Legacy::Schema1),
            ),
            // Served as plain JSON: its schemaVersion tells.
            (schema1, "application/json", Some(Legacy::Schema1)),
            (artifact, OCI_ARTIFACT_MANIFEST, Some(Legacy::ArtifactManifest)),
            (artifact, "application/json", Some(Legacy::ArtifactManifest)),
            (image, "application/vnd.oci.image.manifest.v1+json", None),
            (INDEX.as_bytes(), OCI_INDEX, None),
        ];
        for (bytes, served, expected) in cases {
            assert_eq!(legacy(bytes, served), expected, "{served}");
        }
        let Parsed::Legacy {
            kind: Legacy::Schema1,
            blobs,
            platform: Some(platform),
        } = parse_checked(schema1, "application/json").unwrap()
        else {
            panic!("schema 1 with a platform");
        };
        let blobs: Vec<(&str, u64)> = blobs
            .iter()
            .map(|blob| (blob.digest.as_str(), blob.size))
            .collect();
        assert_eq!(
            blobs,
            [(l1.as_str(), 0), (l2.as_str(), 0)],
            "each once, size unknown"
        );
        assert_eq!(platform.to_string(), "linux/arm64/v8");
        // No history to read the platform from: its architecture, on linux.
        let bare =
            format!(r#"{{"schemaVersion":1,"architecture":"amd64","fsLayers":[{{"blobSum":"{l2}"}}]}}"#);
        let Ok(Parsed::Legacy {
            platform: Some(platform),
            ..
        }) = parse(bare.as_bytes(), "application/json")
        else {
            panic!("schema 1");
        };
        assert_eq!(platform.to_string(), "linux/amd64");
        assert_eq!(
            parse(artifact, OCI_ARTIFACT_MANIFEST).unwrap(),
            Parsed::Legacy {
                kind: Legacy::ArtifactManifest,
                blobs: vec![Descriptor {
                    media_type: Some("s".into()),
                    digest: "sha256:sig".into(),
                    size: 3,
                    platform: None,
                    annotations: BTreeMap::new(),
                    urls: Vec::new(),
                    artifact_type: None,
                }],
                platform: None,
            }
        );
        // Their digests go into requests: checked as any other's.
        let forged = br#"{"schemaVersion":1,"fsLayers":[{"blobSum":"sha256:../../x"}]}"#;
        assert!(parse_checked(forged, "application/json")
            .unwrap_err()
            .starts_with("its blob 'sha256:../../x'"));
        assert!(parse_checked(artifact, OCI_ARTIFACT_MANIFEST)
            .unwrap_err()
            .starts_with("its blob 'sha256:sig'"));
    }

    #[test]
    fn only_a_refusal_of_the_manifest_s_kind_reads_as_not_supported() {
        let cases: [(u16, &str, bool); 9] = [
            (400, "MANIFEST_INVALID: manifest invalid", true),
            (400, "MANIFEST_INVALID: unsupported manifest media type and no default available", true),
            (500, "UNKNOWN: unknown error", true),
            (415, "", true),
            (501, "not implemented", true),
            (400, "MANIFEST_BLOB_UNKNOWN: blob unknown to registry", false),
            (400, "MANIFEST_UNVERIFIED: manifest failed signature verification", false),
            (
                400,
                "TAG_INVALID: The image tag '1' already exists in the 'a' repository and cannot be overwritten because the tag already exists.",
                false,
            ),
            (404, "NAME_UNKNOWN: repository name not known to registry", false),
        ];
        for (status, detail, expected) in cases {
            let refusal = RegistryError::Refused {
                host: "h".into(),
                what: "manifest '1' of 'a'".into(),
                status: reqwest::StatusCode::from_u16(status).unwrap(),
                detail: detail.into(),
            };
            assert_eq!(refuses_the_kind(&refusal), expected, "{status} {detail}");
        }
        let server = RegistryError::Server {
            host: "h".into(),
            status: reqwest::StatusCode::INTERNAL_SERVER_ERROR,
            url: "u".into(),
            retry_after: None,
        };
        assert!(!refuses_the_kind(&server), "a server failing refuses nothing");
    }

    #[test]
    fn a_manifest_naming_a_digest_ecrcp_cannot_check_or_too_many_children_is_refused_whole() {
        let good = format!("sha256:{}", "a".repeat(64));
        let index = |child: &str| {
            format!(
                r#"{{"mediaType":"{OCI_INDEX}","manifests":[{{"digest":"{good}","size":1}},{{"digest":"{child}","size":1}}]}}"#
            )
        };
        let many = |count: usize| {
            let children: Vec<String> = (0..count)
                .map(|n| format!(r#"{{"digest":"sha256:{n:064x}","size":1}}"#))
                .collect();
            format!(
                r#"{{"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
                children.join(",")
            )
        };
        let image = |config: &str, layer: &str| {
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"digest":"{config}"}},"layers":[{{"digest":"{layer}"}}],"blobs":[]}}"#
            )
        };
        let cases = [
            (index(&good), None),
            (
                index("sha256:../../other/manifests/latest"),
                Some("its child 'sha256:../../other/manifests/latest'"),
            ),
            (
                index("md5:d41d8cd98f00b204e9800998ecf8427e"),
                Some("its child 'md5:"),
            ),
            (
                index(&format!("sha512:{}", "b".repeat(128))),
                Some("its child 'sha512:"),
            ),
            (image(&good, &good), None),
            (image("sha256:../x", &good), Some("its config 'sha256:../x'")),
            (image(&good, "sha256:abc"), Some("its layer 'sha256:abc'")),
            (many(MAX_CHILDREN), None),
            (
                many(MAX_CHILDREN + 1),
                Some("it names 501 children, more than the 500 ecrcp reads of one index"),
            ),
        ];
        for (manifest, refusal) in cases {
            // Each says what it is.
            let parsed = parse_checked(manifest.as_bytes(), "application/octet-stream");
            match refusal {
                None => assert!(parsed.is_ok(), "{manifest}: {parsed:?}"),
                Some(start) => {
                    let shown = &manifest[..manifest.len().min(200)];
                    let error = parsed.err().unwrap_or_else(|| panic!("accepted: {shown}"));
                    assert!(error.starts_with(start), "{manifest}: {error}");
                }
            }
        }
    }

    type Case<'a> = (&'a [&'a str], Result<&'a [&'a str], &'a str>);

    #[test]
    fn platforms_pick_children_and_the_attestations_of_the_kept_ones() {
        let children = children();
        let cases: &[Case] = &[
            (&["linux/amd64"], Ok(&["sha256:amd"])),
            (&["linux/arm64"], Ok(&["sha256:arm64"])),
            (&["linux/arm64/v8"], Ok(&["sha256:arm64"])),
            (&["linux/arm/v7"], Ok(&["sha256:armv7"])),
            (&["linux/amd64", "linux/amd64"], Ok(&["sha256:amd"])),
            (
                &["linux/arm64", "linux/amd64"],
                Ok(&["sha256:amd", "sha256:arm64", "sha256:att-amd", "sha256:att-arm64"]),
            ),
            (
                &["linux/amd64", "linux/arm/v7"],
                Ok(&["sha256:amd", "sha256:armv7", "sha256:att-amd"]),
            ),
            (&["linux/amd64", "linux/s390x"], Err("linux/s390x")),
            (&["linux/arm/v6"], Err("linux/arm/v6")),
            (&["windows/amd64"], Err("windows/amd64")),
        ];
        for &(platforms, expected) in cases {
            let platforms: Vec<String> = platforms.iter().map(|p| (*p).to_owned()).collect();
            let selection = select(&children, &platforms);
            match expected {
                Ok(expected) => assert_eq!(digests(&selection.unwrap()), expected, "{platforms:?}"),
                Err(missing) => assert_eq!(selection.unwrap_err(), missing, "{platforms:?}"),
            }
        }
    }

    #[test]
    fn a_rewritten_index_keeps_every_other_field_and_only_the_kept_children() {
        let children = children();
        let keep = [children[0].clone(), children[3].clone()];
        let rewritten = rewrite_index(INDEX.as_bytes(), &keep).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&rewritten).unwrap();
        assert_eq!(value["mediaType"], OCI_INDEX);
        assert_eq!(value["schemaVersion"], 2);
        assert_eq!(
            value["annotations"]["org.opencontainers.image.created"],
            "2024-01-01"
        );
        let kept: Vec<&str> = value["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|child| child["digest"].as_str().unwrap())
            .collect();
        assert_eq!(kept, ["sha256:amd", "sha256:att-amd"]);
        // The same choice always writes the same bytes, so reruns land on one digest.
        assert_eq!(rewrite_index(INDEX.as_bytes(), &keep).unwrap(), rewritten);
        assert!(rewrite_index(b"{}", &keep).is_err());
    }

    #[test]
    fn platform_matching_follows_docker_s_variant_rules() {
        let platform = |os: &str, architecture: &str, variant: Option<&str>| Platform {
            os: os.into(),
            architecture: architecture.into(),
            variant: variant.map(str::to_owned),
            os_version: None,
        };
        let cases = [
            (platform("linux", "arm64", None), "linux/arm64/v8", true),
            (platform("linux", "arm64", Some("v8")), "linux/arm64", true),
            (platform("linux", "arm", Some("v7")), "linux/arm/v6", false),
            (platform("linux", "arm", Some("v6")), "linux/arm", true),
            (platform("linux", "arm64", Some("v8")), "linux/aarch64", true),
            (platform("linux", "amd64", None), "linux/amd64/v2", false),
            (platform("windows", "amd64", None), "linux/amd64", false),
        ];
        for (candidate, wanted, expected) in cases {
            assert_eq!(
                platform_matches(&candidate, wanted),
                expected,
                "{candidate:?} {wanted}"
            );
        }
        assert!(is_index("application/vnd.oci.image.index.v1+json; charset=utf-8"));
        assert!(!is_index("application/vnd.oci.image.manifest.v1+json"));
    }
}
