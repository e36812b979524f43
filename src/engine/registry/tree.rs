//! What a manifest says, as the registry engine needs it: the blobs an image manifest
//! names, the children of an index, which children a `--platform` list keeps (with the buildx
//! attestations that describe them), and the index rewritten to just those. Pure; the bytes
//! of a manifest that is copied whole are never touched.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;

use crate::registry::digest;
use crate::registry::manifest::{DOCKER_MANIFEST_LIST, OCI_INDEX};

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

/// The artifact manifest of the OCI drafts before 1.1, which 1.1 dropped for image manifests
/// with an `artifactType`.
pub const OCI_ARTIFACT_MANIFEST: &str = "application/vnd.oci.artifact.manifest.v1+json";

/// A kind of manifest the registry engine does not copy, with the way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsupported {
    /// Docker's schema 1 (`application/vnd.docker.distribution.manifest.v1+prettyjws`):
    /// its layers come without sizes, and current registries and Docker refuse it.
    Schema1,
    /// [`OCI_ARTIFACT_MANIFEST`]: ECR and most registries never stored it.
    ArtifactManifest,
}

impl Unsupported {
    /// Why it is refused, and what to do instead: said after the image's name.
    pub fn explain(self) -> &'static str {
        match self {
            Unsupported::Schema1 => "is a schema 1 manifest; schema 1 manifests are not supported by the registry engine (their layers come without sizes)\nnote: convert the image to schema 2 where it is (`skopeo copy --format v2s2`), or copy it with `--engine docker` where the docker daemon still pulls schema 1 (recent Docker releases refuse it)",
            Unsupported::ArtifactManifest => "is an OCI artifact manifest (application/vnd.oci.artifact.manifest.v1+json, dropped from OCI 1.1); such manifests are not supported by the registry engine, and ECR and most registries do not store them\nnote: push the artifact again as an OCI 1.1 image manifest with an `artifactType`, as `oras push` 1.0 and later do",
        }
    }
}

/// Whether a manifest served as `media_type` is of a kind the registry engine refuses.
pub fn unsupported(bytes: &[u8], media_type: &str) -> Option<Unsupported> {
    let essence = |media_type: &str| media_type.split(';').next().unwrap_or_default().trim().to_owned();
    let document: Option<Document> = serde_json::from_slice(bytes).ok();
    let declared = document.as_ref().and_then(|document| document.media_type.clone());
    let types = [Some(essence(media_type)), declared.as_deref().map(essence)];
    if document.as_ref().and_then(|document| document.schema_version) == Some(1)
        || types
            .iter()
            .flatten()
            .any(|kind| kind.starts_with("application/vnd.docker.distribution.manifest.v1"))
    {
        Some(Unsupported::Schema1)
    } else if types.iter().flatten().any(|kind| kind == OCI_ARTIFACT_MANIFEST) {
        Some(Unsupported::ArtifactManifest)
    } else {
        None
    }
}

/// Whether `media_type` names an index.
pub fn is_index(media_type: &str) -> bool {
    let essence = media_type.split(';').next().unwrap_or_default().trim();
    essence == OCI_INDEX || essence == DOCKER_MANIFEST_LIST
}

/// Reads a manifest served as `media_type`.
pub fn parse(bytes: &[u8], media_type: &str) -> Result<Parsed, String> {
    if let Some(kind) = unsupported(bytes, media_type) {
        return Err(format!("it {}", kind.explain()));
    }
    let document: Document =
        serde_json::from_slice(bytes).map_err(|error| format!("manifest is not valid JSON: {error}"))?;
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
            other @ Parsed::Image { .. } => panic!("{other:?}"),
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
    fn schema_1_and_pre_1_1_artifact_manifests_are_refused_by_name_not_as_configless() {
        let schema1 = br#"{"schemaVersion":1,"name":"library/old","tag":"1","architecture":"amd64",
          "fsLayers":[{"blobSum":"sha256:l1"}],"history":[{"v1Compatibility":"{}"}],"signatures":[]}"#;
        let artifact = br#"{"mediaType":"application/vnd.oci.artifact.manifest.v1+json","artifactType":"a",
          "blobs":[{"mediaType":"s","digest":"sha256:sig","size":3}],
          "subject":{"mediaType":"m","digest":"sha256:amd","size":10}}"#;
        let image = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
          "config":{"mediaType":"c","digest":"sha256:cfg","size":5},"layers":[]}"#;
        let cases: [(&[u8], &str, Option<Unsupported>); 7] = [
            (
                schema1,
                "application/vnd.docker.distribution.manifest.v1+prettyjws",
                Some(Unsupported::Schema1),
            ),
            (
                schema1,
                "application/vnd.docker.distribution.manifest.v1+json",
                Some(Unsupported::Schema1),
            ),
            // Served as plain JSON: its schemaVersion tells.
            (schema1, "application/json", Some(Unsupported::Schema1)),
            (
                artifact,
                OCI_ARTIFACT_MANIFEST,
                Some(Unsupported::ArtifactManifest),
            ),
            (artifact, "application/json", Some(Unsupported::ArtifactManifest)),
            (image, "application/vnd.oci.image.manifest.v1+json", None),
            (INDEX.as_bytes(), OCI_INDEX, None),
        ];
        for (bytes, served, expected) in cases {
            assert_eq!(unsupported(bytes, served), expected, "{served}");
            if let Some(kind) = expected {
                let refused = parse(bytes, served).unwrap_err();
                assert_eq!(refused, format!("it {}", kind.explain()));
                assert!(!refused.contains("names no config"), "{refused}");
                assert!(refused.contains("are not supported by"), "{refused}");
                assert!(refused.contains("\nnote: "), "the way out: {refused}");
            }
        }
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
