//! What hangs off an image, copied along with it when asked and kept in step with the
//! source on every later pass: OCI referrers (signatures, SBOMs, attestations attached by
//! `subject`), listed by the referrers API or its tag schema (`sha256-HEX`), and cosign's
//! digest tags beside the image (`sha256-HEX.sig`, `.att`, `.sbom`). A pass over an
//! unchanged image costs HEAD requests (and a referrers API listing, which no registry
//! counts as a pull): a tag that serves the same digest at both ends is in step, and only
//! what is new is read from the source. Best effort: what the destination refuses becomes
//! a note, and nothing at the destination is ever removed.

use anyhow::anyhow;

use super::tree::{self, Descriptor, Parsed};
use super::{Copying, Plan};
use crate::engine::Extras;
use crate::registry::digest;
use crate::registry::manifest::OCI_INDEX;
use crate::registry::manifests::RawManifest;

/// The tags cosign keeps beside a subject: signatures, attestations, SBOMs.
const COSIGN_SUFFIXES: [&str; 3] = [".sig", ".att", ".sbom"];

/// The longest tag a registry takes.
const MAX_TAG: usize = 128;

/// The tag under which a registry without the referrers API lists a subject's referrers.
pub fn fallback_tag(subject: &str) -> Option<String> {
    let (algorithm, hex) = subject.split_once(':')?;
    Some(format!("{algorithm}-{hex}").chars().take(MAX_TAG).collect())
}

/// cosign's tags beside `subject` (`sha256-HEX.sig`, `.att`, `.sbom`); none for a digest
/// whose tag would be too long.
pub fn cosign_tags(subject: &str) -> Vec<String> {
    let Some((algorithm, hex)) = subject.split_once(':') else {
        return Vec::new();
    };
    COSIGN_SUFFIXES
        .iter()
        .map(|suffix| format!("{algorithm}-{hex}{suffix}"))
        .filter(|tag| tag.len() <= MAX_TAG)
        .collect()
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

/// The digests a referrers list names, in its order.
fn listed_digests(index: &[u8]) -> Result<Vec<String>, String> {
    match tree::parse(index, OCI_INDEX)? {
        Parsed::Index { children } => Ok(children.into_iter().map(|child| child.digest).collect()),
        Parsed::Image { .. } | Parsed::Legacy { .. } => Err("the referrers list is not an index".to_owned()),
    }
}

/// What goes under the fallback tag at the destination, which holds `held` there and lacks
/// the source's list `source`: the source's list as it is when it names every referrer the
/// destination listed (so that both tags serve one digest, and the next pass sees them in
/// step), else the destination's list with the source's referrers added.
pub fn listing_for_destination(source: &[u8], held: Option<&[u8]>) -> Result<Vec<u8>, String> {
    let Some(held) = held else {
        return Ok(source.to_vec());
    };
    let wanted = listed_digests(source)?;
    if listed_digests(held)?.iter().all(|digest| wanted.contains(digest)) {
        return Ok(source.to_vec());
    }
    let Parsed::Index { children } = tree::parse(source, OCI_INDEX)? else {
        unreachable!("listed_digests read it as an index")
    };
    merged_index(Some(held), &children)
}

/// How a referrer reads in a report: its digest and kind.
fn describe(referrer: &Descriptor) -> String {
    format!(
        "referrer {} ({})",
        referrer.digest,
        referrer
            .artifact_type
            .as_deref()
            .or(referrer.media_type.as_deref())
            .unwrap_or("unknown type")
    )
}

/// A tag the source has and the destination does not serve alike.
struct TagAtBoth {
    /// What the source's tag serves.
    digest: String,
    /// What the destination's serves, if it has the tag.
    held: Option<String>,
}

impl Copying<'_> {
    /// Brings the referrers and digest tags of `subjects` in step at this destination;
    /// returns what was added and what the user should hear about.
    pub(super) async fn copy_referrers(&self, subjects: &[String]) -> Extras {
        let mut extras = Extras::default();
        for subject in subjects {
            if let Err(error) = self.copy_referrers_of(subject, &mut extras).await {
                extras
                    .notes
                    .push(format!("referrers of {subject} not copied: {error:#}"));
            }
            for tag in cosign_tags(subject) {
                if let Err(error) = self.mirror_tag(&tag, &mut extras).await {
                    extras.notes.push(format!("tag {tag} not copied: {error:#}"));
                }
            }
        }
        for added in &extras.added {
            tracing::info!(image = %self.destination, added = %added, outcome = "added", "referrer added");
        }
        for note in &extras.notes {
            tracing::warn!(image = %self.destination, note = %note, outcome = "skipped", "referrer not copied");
        }
        extras
    }

    /// Copies the referrers of `subject` the destination lacks. The source lists them by
    /// the referrers API, or else under the fallback tag, which is then mirrored: once each
    /// listed referrer landed, the destination's tag serves the source's list, so that the
    /// next pass finds both tags on one digest by HEAD and reads nothing.
    async fn copy_referrers_of(&self, subject: &str, extras: &mut Extras) -> anyhow::Result<()> {
        let tag = fallback_tag(subject).ok_or_else(|| anyhow!("'{subject}' is not a digest"))?;
        let by_api = self
            .registry()
            .referrers(self.source, &self.source_scopes, subject)
            .await?;
        let (listed, by_tag) = if let Some(listed) = by_api {
            (listed, None)
        } else {
            let Some(source) = self.in_step_or_new(&tag).await? else {
                return Ok(());
            };
            let raw = self
                .fetch(&source.digest, 1)
                .await?
                .ok_or_else(|| anyhow!("the source lists its referrers but does not serve the list"))?;
            (raw.bytes.clone(), Some((raw, source.held)))
        };
        let referrers = match tree::parse_checked(&listed, OCI_INDEX) {
            Ok(Parsed::Index { children }) => children,
            Ok(Parsed::Image { .. } | Parsed::Legacy { .. }) => {
                return Err(anyhow!("the source's referrers list is not an index"))
            }
            Err(detail) => return Err(anyhow!("the source's referrers list is refused: {detail}")),
        };
        let mut copied = Vec::new();
        let mut indexed = true;
        let mut refused = false;
        // parse_checked refused the whole list if any digest in it could not be checked.
        for referrer in referrers {
            if self.held_as(&referrer.digest).await?.is_some() {
                continue;
            }
            match self.copy_referrer(&referrer).await {
                Ok(subject_indexed) => {
                    indexed &= subject_indexed;
                    extras.added.push(describe(&referrer));
                    copied.push(referrer);
                }
                Err(error) => {
                    refused = true;
                    extras
                        .notes
                        .push(format!("{} of {subject} skipped: {error:#}", describe(&referrer)));
                }
            }
        }
        match by_tag {
            // All there: the source's list, as it is where it can be.
            Some((raw, Some(_))) if !refused => {
                let held = self
                    .registry()
                    .get_manifest(self.destination, &self.destination_scopes, &tag)
                    .await?;
                let bytes =
                    listing_for_destination(&raw.bytes, held.as_ref().map(|held| held.bytes.as_slice()))
                        .map_err(|detail| anyhow!(detail))?;
                self.put_tag(&tag, &raw.media_type, &bytes).await?;
            }
            Some((raw, None)) if !refused => self.put_tag(&tag, &raw.media_type, &raw.bytes).await?,
            // Some refused, or listed by the API: the ones copied join the destination's list
            // where it does not index subjects itself.
            _ if !copied.is_empty() && !indexed => self.list_at_destination(&tag, &copied).await?,
            _ => {}
        }
        Ok(())
    }

    /// The source's manifest under `tag` and what the destination's `tag` holds, unless the
    /// source has no such tag or both serve one digest (two HEAD requests).
    async fn in_step_or_new(&self, tag: &str) -> anyhow::Result<Option<TagAtBoth>> {
        let Some(source) = self
            .registry()
            .head_manifest_as(self.source, &self.source_scopes, tag)
            .await?
        else {
            return Ok(None);
        };
        if !digest::verifiable(&source.digest) {
            return Err(anyhow!(
                "the source names it by '{}', not a sha256 digest",
                source.digest
            ));
        }
        let held = self.held_as(tag).await?;
        if held.as_deref() == Some(source.digest.as_str()) {
            return Ok(None);
        }
        Ok(Some(TagAtBoth {
            digest: source.digest,
            held,
        }))
    }

    /// Whether the destination holds the manifest `reference` names, and which digest.
    async fn held_as(&self, reference: &str) -> anyhow::Result<Option<String>> {
        let head = self
            .registry()
            .head_manifest_as(self.destination, &self.destination_scopes, reference)
            .await?;
        Ok(head.map(|head| head.digest))
    }

    /// Makes the destination's cosign `tag` serve what the source's does: the artifact
    /// read, what it names copied, and the tag put, unless both serve one digest already.
    async fn mirror_tag(&self, tag: &str, extras: &mut Extras) -> anyhow::Result<()> {
        let Some(source) = self.in_step_or_new(tag).await? else {
            return Ok(());
        };
        let raw = self
            .fetch(&source.digest, 1)
            .await?
            .ok_or_else(|| anyhow!("the source names it but does not serve it"))?;
        self.copy_named(&raw).await?;
        self.put_tag(tag, &raw.media_type, &raw.bytes).await?;
        extras.added.push(format!("tag {tag}"));
        Ok(())
    }

    async fn put_tag(&self, tag: &str, media_type: &str, bytes: &[u8]) -> anyhow::Result<()> {
        self.registry()
            .put_manifest(self.destination, &self.destination_scopes, tag, media_type, bytes)
            .await?;
        Ok(())
    }

    /// Copies one referrer manifest and its blobs; returns whether the destination indexed
    /// its subject itself (else it must be listed under the fallback tag).
    async fn copy_referrer(&self, referrer: &Descriptor) -> anyhow::Result<bool> {
        let Some(raw) = self.fetch(&referrer.digest, 1).await? else {
            return Err(anyhow!("the source lists it but does not serve it"));
        };
        self.copy_named(&raw).await?;
        let stored = self.store(&raw).await?;
        tracing::debug!(image = %self.destination, digest = %raw.digest, outcome = "copied", "referrer copied");
        Ok(stored.subject_noted)
    }

    /// Copies what `manifest` names (its blobs, and child manifests by digest) to this
    /// destination, so that the manifest itself can be put there next.
    async fn copy_named(&self, manifest: &RawManifest) -> anyhow::Result<()> {
        let mut plan = Plan::default();
        self.walk(manifest, &mut plan, 0).await?;
        self.copy_blobs(&plan.blobs).await?;
        for child in &plan.manifests {
            self.store(child).await?;
        }
        Ok(())
    }

    /// Adds `referrers` to the destination's fallback tag list `tag`.
    async fn list_at_destination(&self, tag: &str, referrers: &[Descriptor]) -> anyhow::Result<()> {
        let existing = self
            .registry()
            .get_manifest(self.destination, &self.destination_scopes, tag)
            .await?;
        let bytes = merged_index(existing.as_ref().map(|index| index.bytes.as_slice()), referrers)
            .map_err(|detail| anyhow!(detail))?;
        self.put_tag(tag, OCI_INDEX, &bytes).await
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
    fn cosign_tags_sit_beside_the_digest_they_sign() {
        let hex = "a".repeat(64);
        assert_eq!(
            cosign_tags(&format!("sha256:{hex}")),
            [
                format!("sha256-{hex}.sig"),
                format!("sha256-{hex}.att"),
                format!("sha256-{hex}.sbom")
            ]
        );
        assert!(cosign_tags("latest").is_empty());
        // A sha512 digest's tag would pass the 128 characters a tag may have.
        assert!(cosign_tags(&format!("sha512:{}", "b".repeat(128))).is_empty());
    }

    #[test]
    fn the_destination_list_is_the_sources_unless_it_lists_more() {
        let list = |digests: &[&str]| {
            let descriptors: Vec<Descriptor> = digests.iter().map(|digest| referrer(digest)).collect();
            merged_index(None, &descriptors).unwrap()
        };
        let digests = |bytes: &[u8]| listed_digests(bytes).unwrap();
        let source = list(&["sha256:a", "sha256:b"]);
        // Nothing there yet, or a list the source's covers: the source's bytes, one digest.
        assert_eq!(listing_for_destination(&source, None).unwrap(), source);
        assert_eq!(
            listing_for_destination(&source, Some(&list(&["sha256:a"]))).unwrap(),
            source
        );
        // The destination lists one of its own: it is kept, and the source's are added.
        let kept = listing_for_destination(&source, Some(&list(&["sha256:c", "sha256:a"]))).unwrap();
        assert_eq!(digests(&kept), ["sha256:c", "sha256:a", "sha256:b"]);
        assert!(listing_for_destination(&source, Some(b"not json")).is_err());
    }

    fn referrer(digest: &str) -> Descriptor {
        Descriptor {
            media_type: Some("application/vnd.oci.image.manifest.v1+json".into()),
            digest: digest.into(),
            size: 10,
            platform: None,
            annotations: std::collections::BTreeMap::new(),
            urls: Vec::new(),
            artifact_type: Some("application/vnd.dev.cosign.artifact.sig.v1+json".into()),
        }
    }

    #[test]
    fn a_referrers_list_gains_each_referrer_once() {
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
