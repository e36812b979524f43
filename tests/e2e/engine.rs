//! The registry engine against the bed's registries: every platform byte for byte, narrowed
//! to platforms, an interrupted copy rerun, a corrupt blob refused, mounts within one
//! registry, Docker Hub pulls booked, a credential helper's login. Driven through the
//! library until the command line has `--engine registry`. What one registry's answers show
//! alone (a resumed read, an immutable tag, retried uploads) is tested without the bed, on
//! the fake registry of the unit tests (src/testing/engine_blobs.rs).

use std::future::Future;
use std::time::Duration;

use ecrcp::engine::registry::{Limits, RegistryEngine};
use ecrcp::engine::turns::Turns;
use ecrcp::engine::{Delivered, Engine as _, Pulls, Repository, Transfer};
use ecrcp::plan::{CopyJob, CopyOptions, JobSettings};
use ecrcp::provider::Plain;
use ecrcp::reference::{Destination, Reference};
use ecrcp::registry::credentials::{CredentialStore, Credentials};
use ecrcp::registry::digest::sha256;
use ecrcp::registry::manifest::{OCI_INDEX, OCI_MANIFEST};
use ecrcp::registry::{RegistryClient, Scopes};
use ecrcp::secret::Secret;

use crate::signatures::put_with_blobs;
use crate::support::{write_executable, Bed, Run, ECR, ECR_PASSWORD, HUB, HUB_ADMIN, PLAIN};

/// The engine and what a transfer is handed, for one test.
struct Rig {
    client: RegistryClient,
    runtime: tokio::runtime::Runtime,
}

/// How one copy is asked for.
struct Ask {
    source: String,
    destination: String,
    platforms: &'static [&'static str],
    limits: Limits,
    source_digest: Option<String>,
    /// Docker Hub pulls beyond the one the check books (`None`: no limit).
    extra_pulls: Option<u64>,
    referrers: bool,
}

impl Ask {
    fn new(source: String, destination: String) -> Self {
        Ask {
            source,
            destination,
            platforms: &[],
            limits: Limits::default(),
            source_digest: None,
            extra_pulls: None,
            referrers: false,
        }
    }
}

impl Rig {
    fn new(bed: &Bed) -> Rig {
        let credentials = CredentialStore::with_config_dir(Some(bed.docker_config()));
        credentials.insert(
            ECR,
            Credentials {
                username: "AWS".into(),
                password: Secret::new(ECR_PASSWORD),
            },
        );
        Rig {
            client: RegistryClient::new(credentials).expect("a registry client"),
            runtime: tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    /// Runs the copy `ask` describes; returns what it delivered and the Docker Hub pulls spent.
    fn copy(&self, ask: &Ask) -> (anyhow::Result<Delivered>, u64) {
        self.copy_until(ask, std::future::pending())
            .expect("the copy ran to its end")
    }

    /// Like [`Rig::copy`], but gives the copy up (drops it) when `stop` completes first.
    fn copy_until(
        &self,
        ask: &Ask,
        stop: impl Future<Output = ()>,
    ) -> Option<(anyhow::Result<Delivered>, u64)> {
        let job = CopyJob {
            label: ask.source.clone(),
            source: Reference::parse(&ask.source).unwrap(),
            destination: Destination::parse(&ask.destination).unwrap(),
            settings: JobSettings {
                platforms: ask.platforms.iter().map(|p| (*p).to_owned()).collect(),
                referrers: ask.referrers,
                ..JobSettings::default()
            },
        };
        let destination = Reference::parse(&ask.destination).unwrap();
        let turns = Turns::default();
        let repository = Repository::new(&destination, &Plain, &job.settings, &turns);
        let pulls = Pulls::default();
        pulls.limit_extra(ask.extra_pulls);
        let before = self.client.hub_manifest_reads();
        let engine = RegistryEngine::new(&self.client, ask.limits);
        let transfer = Transfer {
            job: &job,
            destination: &destination,
            source_digest: ask.source_digest.as_deref(),
            // Only the docker engine reads it; this one reads the source itself.
            source_index: false,
            options: CopyOptions::default(),
            repository: &repository,
            pulls: &pulls,
            booked_pulls: 1,
        };
        self.runtime.block_on(async {
            tokio::select! {
                delivered = engine.transfer(transfer) => Some((delivered, self.client.hub_manifest_reads() - before)),
                () = stop => None,
            }
        })
    }
}

/// The digests of an index's children.
fn children(manifest: &serde_json::Value) -> Vec<String> {
    manifest["manifests"]
        .as_array()
        .expect("an index")
        .iter()
        .map(|child| child["digest"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
#[ignore = "needs the test bed"]
fn registry_engine_copies_a_multi_platform_index_with_its_digest_at_both_ends() {
    let bed = Bed::get("engine-index");
    let repo = bed.unique("e2e/engine-index");
    let digest = bed.push_index(
        HUB,
        HUB_ADMIN,
        &repo,
        "1",
        "1",
        "linux/amd64,linux/arm64",
        "oci",
        0,
    );
    let rig = Rig::new(&bed);
    let destination = format!("{ECR}/{repo}:1");
    let mut ask = Ask::new(format!("docker.io/{repo}:1"), destination);
    ask.source_digest = Some(digest.clone());
    ask.limits = Limits {
        overall: 2,
        per_host: 2,
    };
    let (delivered, pulls) = rig.copy(&ask);
    let delivered = delivered.expect("the copy succeeds");
    // The index and both children were read from Docker Hub: three pulls, as it counts them.
    assert_eq!(pulls, 3);
    assert_eq!(
        bed.answered("hub", "GET", &format!("/v2/{repo}/manifests/"), 200),
        3
    );
    assert_eq!(delivered.digest, digest);
    assert_eq!(delivered.source_digest.as_deref(), Some(digest.as_str()));
    assert!(!delivered.already_there);
    assert_eq!(
        bed.digest(ECR, &repo, "1").as_deref(),
        Some(digest.as_str()),
        "the tag serves the source's digest"
    );
    let source_children = children(&bed.manifest(HUB, &repo, "1"));
    assert_eq!(source_children.len(), 2);
    assert_eq!(children(&bed.manifest(ECR, &repo, "1")), source_children);
    for child in &source_children {
        assert_eq!(
            bed.digest(ECR, &repo, child).as_deref(),
            Some(child.as_str()),
            "child {child}"
        );
    }
    // The tag was written once, after everything else.
    let tag_puts = bed.requests("ecr", "PUT", &format!("/v2/{repo}/manifests/1 "));
    assert_eq!(tag_puts, 1);
    let log = bed.log("ecr");
    let last_put = log
        .lines()
        .rfind(|line| line.contains("\"PUT ") && line.contains(&format!("/v2/{repo}/")))
        .unwrap();
    assert!(
        last_put.contains(&format!("/v2/{repo}/manifests/1 ")),
        "the tag comes last: {last_put}"
    );
}

#[test]
#[ignore = "needs the test bed"]
fn registry_engine_copies_a_three_platform_index_and_a_single_platform_image() {
    let bed = Bed::get("engine-three");
    let rig = Rig::new(&bed);
    let repo = bed.unique("e2e/engine-three");
    let index = bed.push_index(
        HUB,
        HUB_ADMIN,
        &repo,
        "3",
        "1",
        "linux/amd64,linux/arm64,linux/arm/v7",
        "docker",
        4096,
    );
    let (delivered, _) = rig.copy(&Ask::new(
        format!("docker.io/{repo}:3"),
        format!("{ECR}/{repo}:3"),
    ));
    assert_eq!(delivered.expect("the index copy succeeds").digest, index);
    assert_eq!(bed.digest(ECR, &repo, "3").as_deref(), Some(index.as_str()));
    assert_eq!(children(&bed.manifest(ECR, &repo, "3")).len(), 3);

    let single = bed.push_upstream(&repo, "single", "2");
    let (delivered, pulls) = rig.copy(&Ask::new(
        format!("docker.io/{repo}:single"),
        format!("{ECR}/{repo}:single"),
    ));
    let delivered = delivered.expect("the single-platform copy succeeds");
    assert_eq!(delivered.digest, single);
    assert_eq!(pulls, 1, "one manifest, one pull");
    assert_eq!(
        delivered.image_id.as_deref(),
        Some(bed.image_id(HUB, &repo, "single").as_str()),
        "a single-platform copy knows its image ID"
    );
    assert_eq!(bed.digest(ECR, &repo, "single").as_deref(), Some(single.as_str()));
}

#[test]
#[ignore = "needs the test bed"]
fn registry_engine_narrows_to_the_platforms_asked_for() {
    let bed = Bed::get("engine-narrow");
    let rig = Rig::new(&bed);
    let repo = bed.unique("e2e/engine-narrow");
    let index = bed.push_index(
        HUB,
        HUB_ADMIN,
        &repo,
        "1",
        "1",
        "linux/amd64,linux/arm64,linux/arm/v7",
        "oci",
        0,
    );
    let source = format!("docker.io/{repo}:1");
    let source_children = children(&bed.manifest(HUB, &repo, "1"));

    // One platform: that child itself, with its own digest.
    let mut ask = Ask::new(source.clone(), format!("{ECR}/{repo}:arm64"));
    ask.platforms = &["linux/arm64"];
    let delivered = rig.copy(&ask).0.expect("one platform copies");
    assert_eq!(delivered.digest, source_children[1]);
    assert_eq!(
        bed.digest(ECR, &repo, "arm64").as_deref(),
        Some(source_children[1].as_str())
    );
    assert!(
        bed.manifest(ECR, &repo, "arm64")["config"].is_object(),
        "an image manifest, not an index"
    );

    // Two platforms: a new index holding just those children; its digest is its own.
    let mut ask = Ask::new(source.clone(), format!("{ECR}/{repo}:two"));
    ask.platforms = &["linux/arm/v7", "linux/amd64"];
    let delivered = rig.copy(&ask).0.expect("two platforms copy");
    assert_ne!(delivered.digest, index);
    assert_eq!(
        bed.digest(ECR, &repo, "two").as_deref(),
        Some(delivered.digest.as_str())
    );
    assert_eq!(
        children(&bed.manifest(ECR, &repo, "two")),
        [source_children[0].clone(), source_children[2].clone()]
    );

    // A platform the index lacks: refused before anything is written.
    let mut ask = Ask::new(source.clone(), format!("{ECR}/{repo}:none"));
    ask.platforms = &["linux/s390x"];
    let error = format!("{:#}", rig.copy(&ask).0.expect_err("no such platform"));
    assert!(
        error.contains("has no image for platform 'linux/s390x'"),
        "{error}"
    );
    assert!(
        error.contains("linux/amd64, linux/arm64, linux/arm/v7"),
        "{error}"
    );
    assert_eq!(bed.digest(ECR, &repo, "none"), None);
}

#[test]
#[ignore = "needs the test bed"]
fn registry_engine_resumes_an_interrupted_copy_without_sending_blobs_twice() {
    let bed = Bed::get("engine-rerun");
    let rig = Rig::new(&bed);
    let repo = bed.unique("e2e/engine-rerun");
    let platforms = "linux/amd64,linux/arm64,linux/arm/v7";
    let index = bed.push_index(HUB, HUB_ADMIN, &repo, "1", "1", platforms, "oci", 8 << 20);
    let uploads = format!("/v2/{repo}/blobs/uploads/");
    let mut ask = Ask::new(format!("docker.io/{repo}:1"), format!("{ECR}/{repo}:1"));
    // One blob at a time, so that the copy is surely midway when the first one lands.
    ask.limits = Limits {
        overall: 1,
        per_host: 1,
    };
    let stop = async {
        while bed.answered("ecr", "PUT", &uploads, 201) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    assert!(
        rig.copy_until(&ask, stop).is_none(),
        "the copy was interrupted midway"
    );
    assert_eq!(
        bed.digest(ECR, &repo, "1"),
        None,
        "no tag before the copy completed"
    );
    let first = bed.answered("ecr", "PUT", &uploads, 201);
    assert!(
        (1..6).contains(&first),
        "{first} of 6 blobs landed before the interruption"
    );

    let delivered = rig.copy(&ask).0.expect("the rerun completes");
    assert_eq!(delivered.digest, index);
    assert_eq!(bed.digest(ECR, &repo, "1").as_deref(), Some(index.as_str()));
    // Three layers and three configs in all: each sent once over both runs.
    let sent = bed.answered("ecr", "PUT", &uploads, 201);
    assert_eq!(sent, 6, "blobs that landed in the first run were not sent again");
}

#[test]
#[ignore = "needs the test bed"]
fn registry_engine_refuses_a_blob_that_does_not_match_its_digest() {
    let bed = Bed::get("engine-corrupt");
    let rig = Rig::new(&bed);
    let repo = bed.unique("e2e/engine-corrupt");
    bed.push_upstream_sized(&repo, "1", "corrupt", 300_000);
    let layer = bed.manifest(HUB, &repo, "1")["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    // The source registry now serves other bytes of the same length under the digest.
    let file = bed.blob_file("hub", &layer);
    let length = std::fs::metadata(&file).unwrap().len();
    std::fs::write(&file, vec![b'x'; usize::try_from(length).unwrap()]).unwrap();

    let error = rig
        .copy(&Ask::new(
            format!("docker.io/{repo}:1"),
            format!("{ECR}/{repo}:1"),
        ))
        .0
        .expect_err("a corrupt blob is refused");
    let text = format!("{error:#}");
    assert!(
        text.contains(&format!("blob {layer} of '{repo}:1' does not match its digest")),
        "{text}"
    );
    assert!(text.contains("its bytes hash to sha256:"), "{text}");
    assert_eq!(bed.digest(ECR, &repo, "1"), None, "no tag");
    let hex = layer.trim_start_matches("sha256:");
    assert!(bed.requests("ecr", "PUT", hex) <= 1, "not retried");
    assert_eq!(
        bed.answered("ecr", "PUT", hex, 201),
        0,
        "the layer's upload never completed"
    );
    assert_eq!(
        bed.answered("ecr", "HEAD", &format!("/v2/{repo}/blobs/{layer}"), 404),
        1,
        "not retried"
    );
}

#[test]
#[ignore = "needs the test bed"]
fn registry_engine_mounts_blobs_within_one_registry() {
    let bed = Bed::get("engine-mount");
    let rig = Rig::new(&bed);
    let repo = bed.unique("e2e/engine-mount");
    let digest = bed.push_index(
        HUB,
        HUB_ADMIN,
        &repo,
        "1",
        "1",
        "linux/amd64,linux/arm64",
        "oci",
        0,
    );
    rig.copy(&Ask::new(
        format!("docker.io/{repo}:1"),
        format!("{ECR}/{repo}/a:1"),
    ))
    .0
    .expect("the first copy");
    let delivered = rig
        .copy(&Ask::new(
            format!("{ECR}/{repo}/a:1"),
            format!("{ECR}/{repo}/b:1"),
        ))
        .0
        .expect("the copy within the registry");
    assert_eq!(delivered.digest, digest);
    assert_eq!(
        bed.digest(ECR, &format!("{repo}/b"), "1").as_deref(),
        Some(digest.as_str())
    );
    let uploads = format!("/v2/{repo}/b/blobs/uploads/");
    assert_eq!(
        bed.answered("ecr", "POST", &format!("{uploads}?mount="), 201),
        4,
        "every blob mounted"
    );
    assert_eq!(bed.requests("ecr", "PUT", &uploads), 0, "no blob sent");
}

#[test]
#[ignore = "needs the test bed"]
fn registry_engine_books_docker_hub_pulls_and_stops_beyond_the_budget() {
    let bed = Bed::get("engine-pulls");
    let rig = Rig::new(&bed);
    let repo = bed.unique("e2e/engine-pulls");
    bed.push_index(
        HUB,
        HUB_ADMIN,
        &repo,
        "1",
        "1",
        "linux/amd64,linux/arm64",
        "oci",
        0,
    );
    let mut ask = Ask::new(format!("docker.io/{repo}:1"), format!("{ECR}/{repo}:1"));
    ask.extra_pulls = Some(1);
    let (result, pulls) = rig.copy(&ask);
    let error = result.expect_err("two children need two pulls beyond the booked one");
    assert!(
        error
            .chain()
            .any(|cause| cause.downcast_ref::<ecrcp::engine::OverBudget>().is_some()),
        "{error:#}"
    );
    assert_eq!(pulls, 1, "only the index was read");
    assert_eq!(
        bed.answered("hub", "GET", &format!("/v2/{repo}/manifests/"), 200),
        1
    );
    assert_eq!(bed.digest(ECR, &repo, "1"), None);
    ask.extra_pulls = Some(2);
    let (result, pulls) = rig.copy(&ask);
    result.expect("the budget covers the children");
    assert_eq!(pulls, 3);
}

#[test]
#[ignore = "needs the test bed"]
fn registry_engine_logs_in_with_a_credential_helper() {
    copies_with_the_bedtest_helper(
        "engine-helper",
        &format!(r#"{{"credHelpers": {{"{PLAIN}": "bedtest"}}}}"#),
        false,
    );
}

/// As docker does: with a `credsStore`, docker's logins live in the store, and an inline one
/// left in `auths` (here under a URL key, as older docker versions wrote them) is stale.
#[test]
#[ignore = "needs the test bed"]
fn registry_engine_prefers_the_credential_store_to_a_stale_inline_login() {
    use base64::Engine as _;
    let stale = base64::engine::general_purpose::STANDARD.encode("alice:stale-secret");
    copies_with_the_bedtest_helper(
        "engine-store",
        &format!(r#"{{"auths": {{"https://{PLAIN}/v1/": {{"auth": "{stale}"}}}}, "credsStore": "bedtest"}}"#),
        true,
    );
}

/// Copies an image into the login-only registry with `docker_config` as docker's config
/// and a `docker-credential-bedtest` on PATH that answers alice's login there (and has none
/// elsewhere); `store` when the config makes it the `credsStore`.
fn copies_with_the_bedtest_helper(test: &str, docker_config: &str, store: bool) {
    let bed = Bed::get(test);
    let repo = bed.unique(&format!("e2e/{test}"));
    let digest = bed.push_upstream(&repo, "1", "1");
    let config = bed.docker_config();
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("config.json"), docker_config).unwrap();
    let bin = bed.scratch().join("helpers");
    std::fs::create_dir_all(&bin).unwrap();
    let calls = bed.scratch().join("helper-calls");
    write_executable(
        &bin.join("docker-credential-bedtest"),
        &format!(
            "#!/bin/sh\nread server\necho \"$1 $server\" >> '{}'\n\
             [ \"$server\" = '{PLAIN}' ] || {{ echo 'credentials not found in native keychain'; exit 1; }}\n\
             echo '{{\"ServerURL\":\"'$server'\",\"Username\":\"alice\",\"Secret\":\"alice-secret\"}}'\n",
            calls.display()
        ),
    );
    // nextest runs each test in a process of its own: the helper's PATH is this test's alone.
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    std::env::set_var("PATH", path);
    let rig = Rig::new(&bed);
    let delivered = rig
        .copy(&Ask::new(
            format!("docker.io/{repo}:1"),
            format!("{PLAIN}/{repo}:1"),
        ))
        .0
        .expect("the helper's login lets the copy in");
    assert_eq!(delivered.digest, digest);
    assert_eq!(bed.digest(PLAIN, &repo, "1").as_deref(), Some(digest.as_str()));
    let asked = std::fs::read_to_string(&calls).unwrap();
    let about_plain = |line: &str| line == format!("get {PLAIN}");
    // A store is asked about every registry; a per-registry helper about its own alone.
    if store {
        assert!(asked.lines().any(about_plain), "{asked}");
    } else {
        assert!(asked.lines().all(about_plain) && !asked.is_empty(), "{asked}");
    }
}

/// `ecrcp ARGS` with no docker anywhere: no CLI on PATH, no `ECRCP_DOCKER`, no daemon.
fn without_docker(bed: &Bed, args: &[&str]) -> Run {
    let empty = bed.scratch().join("no-docker");
    std::fs::create_dir_all(&empty).unwrap();
    let output = bed
        .ecrcp()
        .env("PATH", &empty)
        .env_remove("DOCKER_HOST")
        .env_remove("ECRCP_DOCKER")
        .args(args)
        .output()
        .expect("ecrcp runs");
    Run::from(output)
}

#[test]
#[ignore = "needs the test bed"]
fn registry_engine_copies_from_the_command_line_with_no_docker_anywhere() {
    let bed = Bed::get("engine-cli");
    let repo = bed.unique("e2e/engine-cli");
    let digest = bed.push_index(
        HUB,
        HUB_ADMIN,
        &repo,
        "1",
        "1",
        "linux/amd64,linux/arm64",
        "oci",
        0,
    );
    let destination = format!("{ECR}/{repo}:1");
    let run = without_docker(
        &bed,
        &["--engine", "registry", &format!("{repo}:1"), &destination],
    );
    run.assert_code(0);
    assert_eq!(bed.digest(ECR, &repo, "1").as_deref(), Some(digest.as_str()));
    for child in children(&bed.manifest(HUB, &repo, "1")) {
        assert_eq!(bed.digest(ECR, &repo, &child).as_deref(), Some(child.as_str()));
    }
    assert!(
        bed.repository(&repo).is_some(),
        "the ECR repository was created first"
    );
    assert!(bed.docker_calls().is_empty(), "{:?}", bed.docker_calls());

    // Unchanged: the digests alone say so, with HEADs; nothing is read or written again.
    let (reads, writes) = (
        bed.answered("hub", "GET", &format!("/v2/{repo}/manifests/"), 200),
        bed.requests("ecr", "PUT", &format!("/v2/{repo}/")),
    );
    let run = without_docker(
        &bed,
        &["--engine", "registry", "-u", &format!("{repo}:1"), &destination],
    );
    run.assert_code(0);
    assert_eq!(
        bed.answered("hub", "GET", &format!("/v2/{repo}/manifests/"), 200),
        reads
    );
    assert_eq!(bed.requests("ecr", "PUT", &format!("/v2/{repo}/")), writes);
}

#[test]
#[ignore = "needs the test bed"]
fn registry_engine_narrows_to_repeated_platform_options() {
    let bed = Bed::get("engine-cli-platforms");
    let repo = bed.unique("e2e/engine-cli-platforms");
    let index = bed.push_index(
        HUB,
        HUB_ADMIN,
        &repo,
        "1",
        "1",
        "linux/amd64,linux/arm64,linux/arm/v7",
        "docker",
        0,
    );
    let source_children = children(&bed.manifest(HUB, &repo, "1"));
    let run = without_docker(
        &bed,
        &[
            "--engine",
            "registry",
            "--platform",
            "linux/arm64",
            "--platform",
            "linux/amd64",
            &format!("{repo}:1"),
            &format!("{ECR}/{repo}:two"),
        ],
    );
    run.assert_code(0);
    let copied = bed.digest(ECR, &repo, "two").expect("the tag exists");
    assert_ne!(copied, index, "a subset is a new index");
    assert_eq!(children(&bed.manifest(ECR, &repo, "two")), source_children[..2]);
}

/// `--platform` is read as containerd reads it: a Windows build picks that build's child,
/// not the first Windows one; a bare `arm` is arm/v7, not the first arm child; `aarch64` is
/// arm64. A later `-u` compares configs with the same choice, so nothing is copied again.
#[test]
#[ignore = "needs the test bed"]
fn registry_engine_picks_the_child_containerd_would() {
    let bed = Bed::get("engine-containerd-platforms");
    let repo = bed.unique("e2e/engine-containerd-platforms");
    bed.push_index(
        HUB,
        HUB_ADMIN,
        &repo,
        "1",
        "1",
        "windows/amd64:10.0.17763.5576,windows/amd64:10.0.20348.2113,linux/arm/v6,linux/arm/v7,linux/arm64/v8",
        "oci",
        0,
    );
    let source_children = children(&bed.manifest(HUB, &repo, "1"));
    let cases = [
        ("windows/amd64:10.0.20348", "ltsc2022", 1),
        ("linux/arm", "arm", 3),
        ("linux/aarch64", "aarch64", 4),
    ];
    for (platform, tag, child) in cases {
        let run = without_docker(
            &bed,
            &[
                "--engine",
                "registry",
                "--platform",
                platform,
                &format!("{repo}:1"),
                &format!("{ECR}/{repo}:{tag}"),
            ],
        );
        run.assert_code(0);
        assert_eq!(
            bed.digest(ECR, &repo, tag).as_deref(),
            Some(source_children[child].as_str()),
            "{platform} lands as the child containerd picks\n{}",
            run.stderr
        );
    }
    // The ledger lost, `-u` compares the configs the same way: nothing to copy.
    std::fs::remove_dir_all(bed.scratch().join("state")).ok();
    let run = without_docker(
        &bed,
        &[
            "--engine",
            "registry",
            "-u",
            "-v",
            "--platform",
            "linux/arm",
            &format!("{repo}:1"),
            &format!("{ECR}/{repo}:arm"),
        ],
    );
    run.assert_code(0);
    assert!(
        run.stdout.contains("(unchanged)"),
        "the configs compare equal:\n{}\n{}",
        run.stdout,
        run.stderr
    );
}

#[test]
#[ignore = "needs the test bed"]
fn registry_engine_sync_without_a_state_directory_sends_only_heads_the_second_time() {
    let bed = Bed::get("engine-sync");
    let repo = bed.unique("e2e/engine-sync");
    let prefix = bed.unique("engine-sync");
    bed.push_index(
        HUB,
        HUB_ADMIN,
        &repo,
        "1",
        "1",
        "linux/amd64,linux/arm64",
        "oci",
        0,
    );
    let config = bed.sync_config(&format!(
        "version = 1\n[defaults]\nengine = \"registry\"\ndestination = \"{ECR}/{prefix}/\"\n\n[[image]]\nsource = \"{repo}:1\"\n"
    ));
    let state = bed.scratch().join("state");
    let run = bed.sync(&config, &[]);
    run.assert_code(0);
    let copied = format!("{prefix}/{repo}");
    assert_eq!(bed.digest(ECR, &copied, "1"), bed.digest(HUB, &repo, "1"));
    // A lost state directory costs nothing: the digests compare by HEAD alone.
    std::fs::remove_dir_all(&state).ok();
    // (The bed's token server lists tags to learn whether a repository exists: not ecrcp.)
    let reads = || {
        bed.answered("hub", "GET", &format!("/v2/{repo}/manifests/"), 200)
            + bed.answered("hub", "GET", &format!("/v2/{repo}/blobs/"), 200)
    };
    let (gets, puts) = (reads(), bed.requests("ecr", "PUT", &format!("/v2/{copied}/")));
    let run = bed.sync(&config, &[]);
    run.assert_code(0);
    assert_eq!(reads(), gets, "no GET upstream:\n{}", run.stderr);
    assert_eq!(
        bed.requests("ecr", "PUT", &format!("/v2/{copied}/")),
        puts,
        "nothing written"
    );
    assert!(bed.answered("hub", "HEAD", &format!("/v2/{repo}/manifests/1"), 200) >= 2);
}

impl Rig {
    /// Attaches a signature to `subject` (a manifest of `repo:1` at the fake Docker Hub) as
    /// a registry without the referrers API lists it: the artifact by digest, and an index
    /// of referrers under the `sha256-HEX` tag. Returns the signature's digest.
    fn attach_signature(&self, bed: &Bed, repo: &str, subject: &serde_json::Value) -> String {
        use base64::Engine as _;
        let auth = base64::engine::general_purpose::STANDARD.encode(HUB_ADMIN);
        std::fs::create_dir_all(bed.docker_config()).unwrap();
        std::fs::write(
            bed.docker_config().join("config.json"),
            format!(r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{auth}"}}}}}}"#),
        )
        .unwrap();
        let image = Reference::parse(&format!("docker.io/{repo}:1")).unwrap();
        let scopes = Scopes::push(repo);
        let (empty, signature) = (b"{}".to_vec(), b"a signature, as cosign would make it".to_vec());
        let kind = "application/vnd.example.signature";
        let artifact = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": kind,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(&empty), "size": 2},
            "layers": [{"mediaType": kind, "digest": sha256(&signature), "size": signature.len()}],
            "subject": subject,
        })
        .to_string()
        .into_bytes();
        let digest = sha256(&artifact);
        let subject_digest = subject["digest"].as_str().unwrap();
        let list = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": digest, "size": artifact.len(), "artifactType": kind}],
        })
        .to_string()
        .into_bytes();
        let tag = subject_digest.replace(':', "-");
        self.runtime.block_on(async {
            put_with_blobs(
                &self.client,
                &image,
                &scopes,
                (&digest, OCI_MANIFEST, &artifact),
                &[&empty, &signature],
            )
            .await;
            put_with_blobs(&self.client, &image, &scopes, (&tag, OCI_INDEX, &list), &[]).await;
        });
        digest
    }
}

#[test]
#[ignore = "needs the test bed"]
fn registry_engine_copies_referrers_when_asked_and_lists_them_by_the_tag_schema() {
    let bed = Bed::get("engine-referrers");
    let rig = Rig::new(&bed);
    let repo = bed.unique("e2e/engine-referrers");
    let digest = bed.push_index(HUB, HUB_ADMIN, &repo, "1", "1", "linux/amd64", "oci", 0);
    let subject = serde_json::json!({"mediaType": OCI_INDEX, "digest": digest, "size": 0});
    let signature = rig.attach_signature(&bed, &repo, &subject);
    let list_tag = digest.replace(':', "-");

    // Not asked: the image alone.
    rig.copy(&Ask::new(
        format!("docker.io/{repo}:1"),
        format!("{ECR}/{repo}/plain:1"),
    ))
    .0
    .expect("the copy");
    assert_eq!(bed.digest(ECR, &format!("{repo}/plain"), &signature), None);

    let mut ask = Ask::new(format!("docker.io/{repo}:1"), format!("{ECR}/{repo}:1"));
    ask.referrers = true;
    let delivered = rig.copy(&ask).0.expect("the copy with its referrers");
    assert_eq!(delivered.digest, digest);
    assert!(delivered.notes.is_empty(), "{:?}", delivered.notes);
    assert_eq!(
        bed.digest(ECR, &repo, &signature).as_deref(),
        Some(signature.as_str())
    );
    // The destination (distribution 2.8) has no referrers API either: the tag schema lists it.
    assert_eq!(children(&bed.manifest(ECR, &repo, &list_tag)), [signature]);
}
