//! What a manifest says, as the registry engine needs it: the blobs an image manifest
//! names, the children of an index, which children a `--platform` list keeps (with the buildx
//! attestations that describe them), and the index rewritten to just those. Pure; the bytes
//! of a manifest that is copied whole are never touched.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;

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
    media_type: Option<String>,
    manifests: Option<Vec<Descriptor>>,
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    /// OCI 1.1 artifact manifests name their content `blobs`.
    #[serde(default)]
    blobs: Vec<Descriptor>,
}

/// Whether `media_type` names an index.
pub fn is_index(media_type: &str) -> bool {
    let essence = media_type.split(';').next().unwrap_or_default().trim();
    essence == OCI_INDEX || essence == DOCKER_MANIFEST_LIST
}

/// Reads a manifest served as `media_type`.
pub fn parse(bytes: &[u8], media_type: &str) -> Result<Parsed, String> {
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
