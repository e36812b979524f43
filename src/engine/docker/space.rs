//! What a docker engine copy that ran out of disk space finds out for its message: where the
//! space ran out (docker's data root, as the daemon names it: a path on the daemon's
//! machine) and how big the image is (its layers and config, as the source's manifest lists
//! them). Asked only after such a failure; anything it cannot learn is left out.

use serde::Deserialize;

use crate::docker::{DockerCommand, DockerRunner, Space};
use crate::reference::Reference;
use crate::registry::{manifest, RegistryClient, Scopes};

/// The sizes an image manifest lists.
#[derive(Debug, Deserialize)]
struct Sizes {
    config: Option<Sized>,
    #[serde(default)]
    layers: Vec<Sized>,
}

#[derive(Debug, Deserialize)]
struct Sized {
    size: u64,
}

/// The bytes of an image manifest's config and layers; `None` for anything else (an index).
fn image_bytes(body: &[u8]) -> Option<u64> {
    let sizes: Sizes = serde_json::from_slice(body).ok()?;
    let config = sizes.config?.size;
    Some(config + sizes.layers.iter().map(|layer| layer.size).sum::<u64>())
}

/// docker's data root, as the daemon names it; `None` when it does not say.
pub(super) async fn data_root(docker: &dyn DockerRunner) -> Option<String> {
    match docker.run(&DockerCommand::data_root()).await {
        Ok(output) => Some(output.stdout.trim().to_owned()).filter(|root| !root.is_empty()),
        Err(error) => {
            tracing::debug!(%error, "cannot ask docker for its data root");
            None
        }
    }
}

/// Where a pull of `source` (for `platform`) ran out of space, and what the image needs.
/// The size is left out for Docker Hub sources: reading a manifest there is a pull from the
/// quota, and a disk that stays full would spend pulls on every run for a message.
pub(super) async fn of_pull(
    docker: &dyn DockerRunner,
    registry: &RegistryClient,
    source: &Reference,
    source_digest: Option<&str>,
    platform: &str,
) -> Space {
    Space {
        data_root: data_root(docker).await,
        image_bytes: if source.is_docker_hub() {
            None
        } else {
            size_of(registry, source, source_digest, platform).await
        },
    }
}

async fn size_of(
    registry: &RegistryClient,
    source: &Reference,
    source_digest: Option<&str>,
    platform: &str,
) -> Option<u64> {
    let scopes = Scopes::pull(source.repository());
    let mut reference = source_digest
        .unwrap_or_else(|| source.manifest_reference())
        .to_owned();
    // An index points at the platform's image manifest: two reads at most.
    for _ in 0..2 {
        let raw = match registry.get_manifest(source, &scopes, &reference).await {
            Ok(Some(raw)) => raw,
            Ok(None) => return None,
            Err(error) => {
                tracing::debug!(image = %source, %error, "cannot read the source's size");
                return None;
            }
        };
        match manifest::parse(&raw.bytes, Some(&raw.media_type), platform).ok()? {
            manifest::Parsed::Image { .. } => return image_bytes(&raw.bytes),
            manifest::Parsed::Index { child } => reference = child?,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_images_size_is_its_config_and_layers() {
        let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
            "config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":1469,"digest":"sha256:c"},
            "layers":[{"size":12582912,"digest":"sha256:a"},{"size":3000,"digest":"sha256:b"}]}"#;
        assert_eq!(image_bytes(manifest), Some(1469 + 12_582_912 + 3000));
        let index = br#"{"schemaVersion":2,"manifests":[{"digest":"sha256:a","size":1,"platform":{"os":"linux","architecture":"amd64"}}]}"#;
        assert_eq!(image_bytes(index), None);
        assert_eq!(image_bytes(b"not json"), None);
    }
}
