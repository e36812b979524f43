//! OCI referrers (signatures, SBOMs, attestations attached by `subject`), copied after the
//! image when asked: listed by the referrers API or its tag schema (`sha256-HEX`), each
//! copied with its blobs, and listed at the destination the same way when its registry does
//! not index subjects. Best effort: what the destination refuses becomes a note.

use anyhow::anyhow;

use super::tree::{self, Descriptor, Parsed};
use super::{Copying, Plan};
use crate::registry::manifest::OCI_INDEX;

/// The tag under which a registry without the referrers API lists a subject's referrers.
pub fn fallback_tag(subject: &str) -> Option<String> {
    let (algorithm, hex) = subject.split_once(':')?;
    Some(format!("{algorithm}-{hex}").chars().take(128).collect())
}

/// `index` (a referrers list, maybe absent) with `added` in it, each once.
pub fn merged_index(index: Option<&[u8]>, added: &[Descriptor]) -> Result<Vec<u8>, String> {
    let mut document: serde_json::Value = match index {
        Some(bytes) => serde_json::from_slice(bytes).map_err(|error| error.to_string())?,
        None => serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}),
    };
    let manifests = document
        .get_mut("manifests")
        .and_then(serde_json::Value::as_array_mut)
        .ok_or("the referrers list has no manifests")?;
    for descriptor in added {
        let present = manifests.iter().any(|known| {
            known.get("digest").and_then(serde_json::Value::as_str) == Some(descriptor.digest.as_str())
        });
        if !present {
            let mut entry = serde_json::json!({
                "mediaType": descriptor.media_type,
                "digest": descriptor.digest,
                "size": descriptor.size,
            });
            if !descriptor.annotations.is_empty() {
                entry["annotations"] = serde_json::json!(descriptor.annotations);
            }
            if let Some(kind) = &descriptor.artifact_type {
                entry["artifactType"] = serde_json::json!(kind);
            }
            manifests.push(entry);
        }
    }
    serde_json::to_vec(&document).map_err(|error| error.to_string())
}

impl Copying<'_> {
    /// Copies the referrers of `subjects`; returns what the user should hear about.
    pub(super) async fn copy_referrers(&self, subjects: &[String]) -> Vec<String> {
        let mut notes = Vec::new();
        for subject in subjects {
            if let Err(error) = self.copy_referrers_of(subject, &mut notes).await {
                notes.push(format!("referrers of {subject} not copied: {error:#}"));
            }
        }
        for note in &notes {
            tracing::warn!(image = %self.destination, note = %note, outcome = "skipped", "referrer not copied");
        }
        notes
    }

    async fn copy_referrers_of(&self, subject: &str, notes: &mut Vec<String>) -> anyhow::Result<()> {
        let by_api = self
            .registry()
            .referrers(self.source, &self.source_scopes, subject)
            .await?;
        let listed = if let Some(bytes) = by_api {
            bytes
        } else {
            // No referrers API at the source: the tag schema lists them, if anything does.
            let tag = fallback_tag(subject).ok_or_else(|| anyhow!("'{subject}' is not a digest"))?;
            match self.fetch(&tag, 1).await? {
                Some(index) => index.bytes,
                None => return Ok(()),
            }
        };
        let referrers = match tree::parse_checked(&listed, OCI_INDEX) {
            Ok(Parsed::Index { children }) => children,
            Ok(Parsed::Image { .. }) => return Err(anyhow!("the source's referrers list is not an index")),
            Err(detail) => return Err(anyhow!("the source's referrers list is refused: {detail}")),
        };
        let mut copied = Vec::new();
        let mut indexed = true;
        for referrer in referrers {
            match self.copy_referrer(&referrer).await {
                Ok(subject_indexed) => {
                    indexed &= subject_indexed;
                    copied.push(referrer);
                }
                Err(error) => notes.push(format!(
                    "referrer {} ({}) of {subject} skipped: {error:#}",
                    referrer.digest,
                    referrer
                        .artifact_type
                        .as_deref()
                        .or(referrer.media_type.as_deref())
                        .unwrap_or("unknown type")
                )),
            }
        }
        if !copied.is_empty() && !indexed {
            self.list_at_destination(subject, &copied).await?;
        }
        Ok(())
    }

    /// Copies one referrer manifest and its blobs; returns whether the destination indexed
    /// its subject itself (else it must be listed under the fallback tag).
    async fn copy_referrer(&self, referrer: &Descriptor) -> anyhow::Result<bool> {
        let Some(raw) = self.fetch(&referrer.digest, 1).await? else {
            return Err(anyhow!("the source lists it but does not serve it"));
        };
        let mut plan = Plan::default();
        self.walk(&raw, &mut plan, 0).await?;
        self.copy_blobs(&plan.blobs).await?;
        for manifest in plan.manifests.iter().chain(std::iter::once(&raw)) {
            let stored = self.store(manifest).await?;
            if manifest.digest == raw.digest {
                tracing::debug!(image = %self.destination, digest = %raw.digest, outcome = "copied", "referrer copied");
                return Ok(stored.subject_noted);
            }
        }
        unreachable!("the referrer itself is stored last")
    }

    /// Adds `referrers` to the destination's fallback tag list for `subject`.
    async fn list_at_destination(&self, subject: &str, referrers: &[Descriptor]) -> anyhow::Result<()> {
        let tag = fallback_tag(subject).ok_or_else(|| anyhow!("'{subject}' is not a digest"))?;
        let existing = self
            .registry()
            .get_manifest(self.destination, &self.destination_scopes, &tag)
            .await?;
        let bytes = merged_index(existing.as_ref().map(|index| index.bytes.as_slice()), referrers)
            .map_err(|detail| anyhow!(detail))?;
        self.registry()
            .put_manifest(
                self.destination,
                &self.destination_scopes,
                &tag,
                OCI_INDEX,
                &bytes,
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fallback_tag_spells_the_digest_with_a_dash() {
        let hex = "a".repeat(64);
        assert_eq!(
            fallback_tag(&format!("sha256:{hex}")),
            Some(format!("sha256-{hex}"))
        );
        assert_eq!(fallback_tag("latest"), None);
        // Tags are at most 128 characters; longer digests are cut, as the OCI spec says.
        assert_eq!(
            fallback_tag(&format!("sha512:{}", "b".repeat(128)))
                .unwrap()
                .len(),
            128
        );
    }

    #[test]
    fn a_referrers_list_gains_each_referrer_once() {
        let referrer = |digest: &str| Descriptor {
            media_type: Some("application/vnd.oci.image.manifest.v1+json".into()),
            digest: digest.into(),
            size: 10,
            platform: None,
            annotations: std::collections::BTreeMap::new(),
            urls: Vec::new(),
            artifact_type: Some("application/vnd.dev.cosign.artifact.sig.v1+json".into()),
        };
        let first = merged_index(None, &[referrer("sha256:a")]).unwrap();
        let second = merged_index(Some(&first), &[referrer("sha256:a"), referrer("sha256:b")]).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&second).unwrap();
        assert_eq!(value["mediaType"], OCI_INDEX);
        let digests: Vec<&str> = value["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["digest"].as_str().unwrap())
            .collect();
        assert_eq!(digests, ["sha256:a", "sha256:b"]);
        assert_eq!(
            value["manifests"][0]["artifactType"],
            "application/vnd.dev.cosign.artifact.sig.v1+json"
        );
        assert!(merged_index(Some(b"{}"), &[]).is_err());
    }
}
