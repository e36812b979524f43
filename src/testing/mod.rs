//! Test support for the fast tier: the in-process fake registry, and what tests of the
//! registry client and the registry engine build on it (a client that reads no docker
//! login, a small image to serve, one copy through the engine). Compiled for tests only;
//! the tests of the HTTP paths live beside it, against the surface a caller uses.

pub(crate) mod fake_registry;

mod client_wire;
mod engine_blobs;

use std::path::PathBuf;

use self::fake_registry::{Answer, FakeRegistry};
use crate::engine::registry::RegistryEngine;
use crate::engine::turns::Turns;
use crate::engine::{Delivered, Engine as _, Pulls, Repository, Transfer};
use crate::plan::{CopyJob, CopyOptions, JobSettings};
use crate::provider::Plain;
use crate::reference::{Destination, Reference};
use crate::registry::credentials::{CredentialStore, Credentials};
use crate::registry::digest::sha256;
use crate::registry::manifest::OCI_MANIFEST;
use crate::registry::RegistryClient;
use crate::secret::Secret;

/// A docker config directory that does not exist: no login of the machine running the
/// tests leaks in.
fn no_docker_config() -> PathBuf {
    std::env::temp_dir().join("ecrcp-fast-tier-no-docker-config")
}

/// A client with no credentials at all.
pub(crate) fn anonymous_client() -> RegistryClient {
    RegistryClient::new(CredentialStore::with_config_dir(Some(no_docker_config())))
        .expect("a registry client")
}

/// A client that logs in to `host` as `username` with `password`.
pub(crate) fn client_for(host: &str, username: &str, password: &str) -> RegistryClient {
    let credentials = CredentialStore::with_config_dir(Some(no_docker_config()));
    credentials.insert(
        host,
        Credentials {
            username: username.to_owned(),
            password: Secret::new(password),
        },
    );
    RegistryClient::new(credentials).expect("a registry client")
}

pub(crate) fn reference(text: &str) -> Reference {
    Reference::parse(text).expect("a reference")
}

/// A single-platform OCI image: its manifest, config and one layer, with their digests.
pub(crate) struct Image {
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    pub config: Vec<u8>,
    pub config_digest: String,
    pub layer: Vec<u8>,
    pub layer_digest: String,
}

impl Image {
    /// An image whose layer is `layer_size` bytes that do not repeat in short runs.
    pub fn new(layer_size: u32) -> Image {
        let layer: Vec<u8> = (0..layer_size)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
            .collect();
        let config =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
        let (layer_digest, config_digest) = (sha256(&layer), sha256(&config));
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config.len(), "digest": config_digest},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "size": layer.len(), "digest": layer_digest}],
        })
        .to_string()
        .into_bytes();
        Image {
            manifest_digest: sha256(&manifest),
            manifest,
            config,
            config_digest,
            layer,
            layer_digest,
        }
    }

    /// The manifest as a registry serves it.
    pub fn manifest_answer(&self) -> Answer {
        Answer::status(200)
            .header("Content-Type", OCI_MANIFEST)
            .header("Docker-Content-Digest", self.manifest_digest.clone())
            .body(self.manifest.clone())
    }

    /// Scripts `fake` to serve this image as `repository:1`: the manifest by tag and by
    /// digest, the config, and the layer (unless the test scripts it itself).
    pub fn serve(&self, fake: &FakeRegistry, repository: &str, with_layer: bool) {
        fake.route(
            "GET",
            &format!("/v2/{repository}/manifests/1"),
            [self.manifest_answer()],
        );
        fake.route(
            "GET",
            &format!("/v2/{repository}/manifests/{}", self.manifest_digest),
            [self.manifest_answer()],
        );
        fake.route(
            "GET",
            &format!("/v2/{repository}/blobs/{}", self.config_digest),
            [Answer::status(200).body(self.config.clone())],
        );
        if with_layer {
            fake.route(
                "GET",
                &format!("/v2/{repository}/blobs/{}", self.layer_digest),
                [Answer::status(200).body(self.layer.clone())],
            );
        }
    }
}

/// Copies `source` to `destination` with the registry engine, as a copy job with default
/// settings does, one blob at a time: the requests come in an order a test can assert.
pub(crate) async fn copy(
    client: &RegistryClient,
    source: &str,
    destination: &str,
) -> anyhow::Result<Delivered> {
    let job = CopyJob {
        label: source.to_owned(),
        source: reference(source),
        destination: Destination::parse(destination).expect("a destination"),
        settings: JobSettings::default(),
    };
    let destination = reference(destination);
    let turns = Turns::default();
    let repository = Repository::new(&destination, &Plain, &job.settings, &turns);
    let pulls = Pulls::default();
    let engine = RegistryEngine::new(client, 1);
    engine
        .transfer(Transfer {
            job: &job,
            destination: &destination,
            source_digest: None,
            source_index: false,
            options: CopyOptions::default(),
            repository: &repository,
            pulls: &pulls,
            booked_pulls: 1,
        })
        .await
}
