//! Signatures and attestations kept in step (`--referrers`, `referrers = true`): an image
//! signed after its first copy gets its signatures on the next pass, both as cosign's digest
//! tags (`sha256-HEX.sig`, `.att`) and as OCI referrers listed by the tag schema, and a pass
//! with nothing new costs no Docker Hub pull.

use ecrcp::reference::Reference;
use ecrcp::registry::blobs::Opened;
use ecrcp::registry::credentials::CredentialStore;
use ecrcp::registry::digest::sha256;
use ecrcp::registry::manifest::{OCI_INDEX, OCI_MANIFEST};
use ecrcp::registry::{RegistryClient, Scopes};

use crate::support::{Bed, ECR, HUB, HUB_ADMIN};

/// Pushes artifacts (signatures, referrers lists) to the fake Docker Hub as its admin, as
/// cosign or oras would.
struct Signer {
    client: RegistryClient,
    runtime: tokio::runtime::Runtime,
    repo: String,
}

impl Signer {
    fn new(bed: &Bed, repo: &str) -> Signer {
        use base64::Engine as _;
        // A config of its own: the copies under test log in to nothing upstream.
        let config = bed.scratch().join("signer");
        std::fs::create_dir_all(&config).unwrap();
        let auth = base64::engine::general_purpose::STANDARD.encode(HUB_ADMIN);
        std::fs::write(
            config.join("config.json"),
            format!(r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{auth}"}}}}}}"#),
        )
        .unwrap();
        Signer {
            client: RegistryClient::new(CredentialStore::with_config_dir(Some(config))).unwrap(),
            runtime: tokio::runtime::Runtime::new().unwrap(),
            repo: repo.to_owned(),
        }
    }

    /// Puts `manifest` under `reference` (a tag, or its digest) after the blobs it names.
    fn put(&self, reference: &str, media_type: &str, blobs: &[&[u8]], manifest: &[u8]) {
        let image = Reference::parse(&format!("docker.io/{}:x", self.repo)).unwrap();
        let scopes = Scopes::push(&self.repo);
        self.runtime.block_on(put_with_blobs(
            &self.client,
            &image,
            &scopes,
            (reference, media_type, manifest),
            blobs,
        ));
    }

    /// An artifact manifest whose one layer is `payload`, of `kind`, maybe with a subject;
    /// returns its bytes.
    fn artifact(&self, kind: &str, payload: &[u8], subject: Option<&serde_json::Value>) -> Vec<u8> {
        let mut artifact = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": kind,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(b"{}"), "size": 2},
            "layers": [{"mediaType": kind, "digest": sha256(payload), "size": payload.len()}],
        });
        if let Some(subject) = subject {
            artifact["subject"] = subject.clone();
        }
        let bytes = artifact.to_string().into_bytes();
        self.put(&sha256(&bytes), OCI_MANIFEST, &[b"{}", payload], &bytes);
        bytes
    }

    /// Signs `subject` as cosign does: an artifact under the tag `sha256-HEX.SUFFIX`.
    /// Returns the artifact's digest.
    fn cosign(&self, subject: &str, suffix: &str, payload: &[u8]) -> String {
        let bytes = self.artifact("application/vnd.dev.cosign.simplesigning.v1+json", payload, None);
        self.put(
            &format!("{}{suffix}", subject.replace(':', "-")),
            OCI_MANIFEST,
            &[],
            &bytes,
        );
        sha256(&bytes)
    }

    /// Attaches an SBOM to `subject` (an index) as a registry without the referrers API
    /// lists it: the artifact by digest, and a list of referrers under `sha256-HEX`.
    /// Returns the artifact's digest.
    fn attach(&self, subject: &str) -> String {
        let kind = "application/spdx+json";
        let subject_descriptor = serde_json::json!({"mediaType": OCI_INDEX, "digest": subject, "size": 0});
        let bytes = self.artifact(kind, b"an sbom, as syft would make it", Some(&subject_descriptor));
        let list = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha256(&bytes), "size": bytes.len(), "artifactType": kind}],
        })
        .to_string()
        .into_bytes();
        self.put(&subject.replace(':', "-"), OCI_INDEX, &[], &list);
        sha256(&bytes)
    }
}

/// Uploads `blobs` into `image`'s repository through ecrcp's own client, then puts the
/// manifest (`reference`, media type, bytes) that names them.
pub async fn put_with_blobs(
    client: &RegistryClient,
    image: &Reference,
    scopes: &Scopes,
    (reference, media_type, manifest): (&str, &str, &[u8]),
    blobs: &[&[u8]],
) {
    for blob in blobs {
        let Opened::Session(session) = client.open_upload(image, scopes, None).await.unwrap() else {
            panic!("an upload session");
        };
        let body = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(blob.to_vec()))]);
        let size = u64::try_from(blob.len()).unwrap();
        client
            .finish_upload(image, scopes, &session, &sha256(blob), size, body)
            .await
            .unwrap();
    }
    client
        .put_manifest(image, scopes, reference, media_type, manifest)
        .await
        .unwrap();
}

/// Manifest GETs at the fake Docker Hub (pulls, on its count) in `repo`.
fn hub_pulls(bed: &Bed, repo: &str) -> usize {
    bed.requests("hub", "GET", &format!("/v2/{repo}/manifests/"))
}

#[test]
#[ignore = "needs the test bed"]
fn signatures_added_after_the_first_copy_follow_at_head_cost() {
    let bed = Bed::get("signatures-in-step");
    let repo = bed.unique("e2e/signed");
    let digest = bed.push_index(HUB, HUB_ADMIN, &repo, "1", "signed", "linux/amd64", "oci", 0);
    let source = format!("docker.io/{repo}:1");
    let destination = format!("{ECR}/{repo}:1");
    let copy = || bed.run(&["--engine", "registry", "--referrers", "-v", &source, &destination]);
    let tag = digest.replace(':', "-");

    copy().assert_code(0);
    assert_eq!(bed.digest(ECR, &repo, "1").as_deref(), Some(digest.as_str()));
    // The index and its one child; looking for referrers and signatures that are not
    // there costs HEAD requests, not pulls.
    assert_eq!(hub_pulls(&bed, &repo), 2, "{}", bed.log("hub"));
    assert_eq!(bed.digest(ECR, &repo, &format!("{tag}.sig")), None);

    // Signed upstream after the copy: a cosign signature and an SBOM by the tag schema.
    let signer = Signer::new(&bed, &repo);
    let signature = signer.cosign(&digest, ".sig", b"a signature");
    let sbom = signer.attach(&digest);
    let list = bed.digest(HUB, &repo, &tag).expect("the upstream list");

    let pulls = hub_pulls(&bed, &repo);
    let run = copy();
    run.assert_code(0);
    assert!(run.stdout.contains("(already there)"), "{}", run.stdout);
    assert!(
        run.stdout.contains(&format!("added tag {tag}.sig")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(&format!("added referrer {sbom} (application/spdx+json)")),
        "{}",
        run.stdout
    );
    assert_eq!(
        bed.digest(ECR, &repo, &format!("{tag}.sig")).as_deref(),
        Some(signature.as_str()),
        "the signature tag serves the source's very artifact"
    );
    assert_eq!(bed.digest(ECR, &repo, &sbom).as_deref(), Some(sbom.as_str()));
    assert_eq!(
        bed.digest(ECR, &repo, &tag).as_deref(),
        Some(list.as_str()),
        "the referrers list is the source's, byte for byte"
    );
    // Read upstream: the signature, the list and the SBOM it names; nothing else.
    assert_eq!(hub_pulls(&bed, &repo) - pulls, 3, "{}", bed.log("hub"));

    // Nothing new: HEAD requests only, and nothing added.
    let pulls = hub_pulls(&bed, &repo);
    let run = copy();
    run.assert_code(0);
    assert!(!run.stdout.contains("added"), "{}", run.stdout);
    assert_eq!(hub_pulls(&bed, &repo), pulls, "an in-step pass pulls nothing");

    // Attested later still, and kept in step by sync, which counts what it added.
    let attestation = signer.cosign(&digest, ".att", b"an attestation");
    let config = bed.sync_config(&format!(
        "version = 1\n[defaults]\nengine = \"registry\"\nreferrers = true\n\
         [[image]]\nsource = \"{source}\"\ndestination = \"{destination}\"\n"
    ));
    let run = bed.sync(&config, &[]);
    run.assert_code(0);
    assert_eq!(run.summary()["unchanged"], 1, "{}", run.stderr);
    assert_eq!(run.summary()["referrers_added"], 1, "{}", run.stderr);
    assert_eq!(
        bed.digest(ECR, &repo, &format!("{tag}.att")).as_deref(),
        Some(attestation.as_str())
    );
}
