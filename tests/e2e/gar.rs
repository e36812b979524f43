//! Google Artifact Registry on the bed's Google Cloud (`tests/testbed/gcp_front.py`): each
//! source of Application Default Credentials copies into it, a missing repository is
//! created through the Artifact Registry API (and removed again when the copy fails), its
//! settings reach the API, GAR is read as a source, and `ecrcp permissions` names the roles.

use std::path::PathBuf;
use std::process::Command;

use crate::support::{Bed, Faults, Run, ECR, HUB};

/// The bed's project, and its Artifact Registry hosts.
const PROJECT: &str = "ecrcp-testbed";
const GAR: &str = "us-docker.pkg.dev";
/// Where nothing listens: no metadata server to fall back on.
const NO_METADATA: &str = "127.0.0.1:9";

/// A credential file the bed wrote (`$ECRCP_TESTBED_GCP`).
fn credential_file(name: &str) -> PathBuf {
    PathBuf::from(std::env::var("ECRCP_TESTBED_GCP").expect("the bed exports ECRCP_TESTBED_GCP")).join(name)
}

/// An access token from the bed's metadata server, for reading what ecrcp did.
fn token() -> String {
    let output = Command::new("curl")
        .args(["-sSf", "-H", "Metadata-Flavor: Google"])
        .arg("http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token")
        .output()
        .expect("curl runs");
    let doc: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the metadata server answers JSON");
    doc["access_token"].as_str().expect("an access token").to_owned()
}

/// An Artifact Registry repository as the API describes it, or None.
fn ar_repository(id: &str) -> Option<serde_json::Value> {
    let output = Command::new("curl")
        .args(["-sS", "-H", &format!("Authorization: Bearer {}", token())])
        .arg(format!(
            "https://artifactregistry.googleapis.com/v1/projects/{PROJECT}/locations/us/repositories/{id}"
        ))
        .output()
        .expect("curl runs");
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    doc.get("name").is_some().then_some(doc)
}

/// The digest `GAR` serves for `repository:tag`, read with a token of the bed's own.
fn digest(bed: &Bed, host: &str, repository: &str, tag: &str) -> Option<String> {
    let user = format!("oauth2accesstoken:{}", token());
    let output = bed.image_py_output(&[
        "digest",
        "--registry",
        host,
        "--repo",
        repository,
        "--ref",
        tag,
        "--user",
        &user,
    ]);
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// A repository id of this test's own (Artifact Registry's rule: lowercase, digits, hyphens).
fn repository_id(bed: &Bed, prefix: &str) -> String {
    let id = bed.unique(prefix).to_ascii_lowercase();
    id.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches('-')
        .to_owned()
}

/// `ecrcp ARGS` with Google credentials from `file` (`None`: no variable) and no metadata
/// server unless `metadata`.
fn run_with(bed: &Bed, file: Option<PathBuf>, metadata: bool, args: &[&str]) -> Run {
    Run::from(
        command_with(bed, file, metadata)
            .args(args)
            .output()
            .expect("ecrcp runs"),
    )
}

/// ecrcp with Google credentials as [`run_with`] gives them.
fn command_with(bed: &Bed, file: Option<PathBuf>, metadata: bool) -> Command {
    let mut command = bed.ecrcp();
    // gcloud's well-known file, when a test wants one, is in this test's own directory.
    command.env("CLOUDSDK_CONFIG", bed.scratch().join("gcloud"));
    if let Some(file) = file {
        command.env("GOOGLE_APPLICATION_CREDENTIALS", file);
    }
    if !metadata {
        command.env("GCE_METADATA_HOST", NO_METADATA);
    }
    command
}

/// Copies a small image of this test's own into a new repository with the credentials
/// given, and checks it landed with what the hub holds.
fn copies_into_a_new_repository(test: &str, file: Option<PathBuf>, metadata: bool) {
    let bed = Bed::get(test);
    let upstream = bed.unique("e2e/gar");
    bed.push_upstream(&upstream, "1", test);
    let pushed = bed.digest(HUB, &upstream, "1").expect("the hub serves it");
    let id = repository_id(&bed, "r");
    let destination = format!("{GAR}/{PROJECT}/{id}/app:1");
    run_with(
        &bed,
        file,
        metadata,
        &["--engine", "registry", &format!("{upstream}:1"), &destination],
    )
    .assert_code(0);
    assert!(ar_repository(&id).is_some(), "the repository {id} was created");
    assert_eq!(
        digest(&bed, GAR, &format!("{PROJECT}/{id}/app"), "1").as_ref(),
        Some(&pushed)
    );
}

#[test]
#[ignore = "needs the test bed"]
fn a_service_account_key_copies_into_artifact_registry() {
    copies_into_a_new_repository("gar-sa", Some(credential_file("service-account.json")), false);
}

#[test]
#[ignore = "needs the test bed"]
fn an_authorized_user_file_copies_into_artifact_registry() {
    copies_into_a_new_repository("gar-user", Some(credential_file("authorized-user.json")), false);
}

#[test]
#[ignore = "needs the test bed"]
fn a_workload_identity_federation_file_copies_into_artifact_registry() {
    copies_into_a_new_repository("gar-wif", Some(credential_file("external-account.json")), false);
}

#[test]
#[ignore = "needs the test bed"]
fn a_federation_file_whose_subject_token_is_at_a_url_copies_into_artifact_registry() {
    copies_into_a_new_repository(
        "gar-wif-url",
        Some(credential_file("external-account-url.json")),
        false,
    );
}

#[test]
#[ignore = "needs the test bed"]
fn a_federation_file_that_impersonates_a_service_account_copies_into_artifact_registry() {
    // No other test impersonates: the bed's count of such tokens is this test's.
    let before = issued("impersonation");
    copies_into_a_new_repository(
        "gar-wif-sa",
        Some(credential_file("external-account-impersonated.json")),
        false,
    );
    assert!(
        issued("impersonation") > before,
        "the service account's token was asked for"
    );
}

/// How many tokens the bed's Google Cloud issued by `grant` so far.
fn issued(grant: &str) -> u64 {
    let output = Command::new("curl")
        .args(["-sSf", "https://artifactregistry.googleapis.com/_testbed/gcp"])
        .output()
        .expect("curl runs");
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).expect("the bed answers JSON");
    doc["issued"][grant].as_u64().unwrap_or(0)
}

#[test]
#[ignore = "needs the test bed"]
fn the_metadata_server_s_account_copies_into_artifact_registry() {
    copies_into_a_new_repository("gar-mds", None, true);
}

#[test]
#[ignore = "needs the test bed"]
fn gcloud_s_well_known_file_copies_into_artifact_registry() {
    let bed = Bed::get("gar-adc");
    let gcloud = bed.scratch().join("gcloud");
    std::fs::create_dir_all(&gcloud).unwrap();
    std::fs::copy(
        credential_file("authorized-user.json"),
        gcloud.join("application_default_credentials.json"),
    )
    .unwrap();
    let upstream = bed.unique("e2e/gar");
    bed.push_upstream(&upstream, "1", "adc");
    let pushed = bed.digest(HUB, &upstream, "1").expect("the hub serves it");
    let id = repository_id(&bed, "r");
    let destination = format!("{GAR}/{PROJECT}/{id}/app:1");
    run_with(
        &bed,
        None,
        false,
        &["--engine", "registry", &format!("{upstream}:1"), &destination],
    )
    .assert_code(0);
    assert_eq!(
        digest(&bed, GAR, &format!("{PROJECT}/{id}/app"), "1").as_ref(),
        Some(&pushed)
    );
}

#[test]
#[ignore = "needs the test bed"]
fn without_google_credentials_the_run_stops_before_any_copy_saying_how_to_log_in() {
    let bed = Bed::get("gar-none");
    let id = repository_id(&bed, "r");
    let run = run_with(
        &bed,
        None,
        false,
        &["alpine:3.20", &format!("{GAR}/{PROJECT}/{id}/alpine")],
    );
    assert_ne!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr.contains("no Google credentials found"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("gcloud auth application-default login"),
        "{}",
        run.stderr
    );
    assert!(ar_repository(&id).is_none());
    assert_eq!(bed.docker_calls_of("pull"), 0);
}

#[test]
#[ignore = "needs the test bed"]
fn the_docker_engine_logs_docker_in_with_the_token_and_pushes_into_a_new_repository() {
    let bed = Bed::get("gar-docker");
    let upstream = bed.unique("e2e/gar");
    bed.push_upstream(&upstream, "1", "docker");
    let id = repository_id(&bed, "r");
    let destination = format!("{GAR}/{PROJECT}/{id}/app:1");
    run_with(
        &bed,
        Some(credential_file("service-account.json")),
        false,
        &["--engine", "docker", &format!("{upstream}:1"), &destination],
    )
    .assert_code(0);
    assert!(ar_repository(&id).is_some());
    let logins: Vec<String> = bed
        .docker_calls()
        .into_iter()
        .filter(|argv| argv.starts_with("login"))
        .collect();
    assert!(
        logins.iter().any(
            |argv| argv.contains("-u oauth2accesstoken") || argv.contains("--username oauth2accesstoken")
        ),
        "{logins:?}"
    );
    assert!(
        logins.iter().all(|argv| argv.contains("--password-stdin")),
        "{logins:?}"
    );
    assert!(digest(&bed, GAR, &format!("{PROJECT}/{id}/app"), "1").is_some());
}

#[test]
#[ignore = "needs the test bed"]
fn a_failed_copy_removes_the_repository_it_created_and_only_that() {
    let bed = Bed::get("gar-fail");
    let upstream = bed.unique("e2e/gar");
    bed.push_upstream(&upstream, "1", "fail");
    let id = repository_id(&bed, "r");
    let image = format!("{PROJECT}/{id}/app");
    // Every manifest push is refused: the copy fails after the repository was made.
    let _faults = Faults::set(
        GAR,
        &image,
        &serde_json::json!([{"method": "PUT", "path": "/manifests/", "status": 400, "code": "MANIFEST_INVALID"}]),
    );
    let run = run_with(
        &bed,
        Some(credential_file("service-account.json")),
        false,
        &[&format!("{upstream}:1"), &format!("{GAR}/{image}:1")],
    );
    assert_ne!(run.code, Some(0), "{}", run.stderr);
    assert!(
        ar_repository(&id).is_none(),
        "the repository it made is gone: {}",
        run.stderr
    );
    // A repository that was there before the failed copy stays.
    let key = Some(credential_file("service-account.json"));
    let kept = format!("{PROJECT}/{id}/kept");
    run_with(
        &bed,
        key.clone(),
        false,
        &[
            "--engine",
            "registry",
            &format!("{upstream}:1"),
            &format!("{GAR}/{kept}:1"),
        ],
    )
    .assert_code(0);
    let failed = run_with(
        &bed,
        key,
        false,
        &[
            "--engine",
            "registry",
            &format!("{upstream}:1"),
            &format!("{GAR}/{image}:1"),
        ],
    );
    assert_ne!(failed.code, Some(0), "{}", failed.stderr);
    assert!(
        ar_repository(&id).is_some(),
        "a repository this copy did not make stays"
    );
    assert!(digest(&bed, GAR, &kept, "1").is_some());
}

#[test]
#[ignore = "needs the test bed"]
fn immutable_tags_and_labels_reach_the_api_and_a_setting_without_meaning_is_refused_by_name() {
    let bed = Bed::get("gar-settings");
    let upstream = bed.unique("e2e/gar");
    bed.push_upstream(&upstream, "1", "settings");
    let id = repository_id(&bed, "r");
    let source = format!("{upstream}:1");
    let destination = format!("{GAR}/{PROJECT}/{id}/app:1");
    let key = Some(credential_file("service-account.json"));
    let refused = run_with(
        &bed,
        key.clone(),
        false,
        &["--scan-on-push", &source, &destination],
    );
    refused.assert_code(2);
    assert!(
        refused
            .stderr
            .contains("`scan_on_push` (--scan-on-push) has no meaning for Artifact Registry"),
        "{}",
        refused.stderr
    );
    assert!(ar_repository(&id).is_none());

    let config = bed.sync_config(&format!(
        "version = 1\n[[image]]\nsource = \"{source}\"\ndestination = \"{destination}\"\n\
         immutable_tags = true\nrepository_tags = {{ team = \"platform\", env = \"prod\" }}\n"
    ));
    let mut sync = bed.sync_command(&config);
    sync.env(
        "GOOGLE_APPLICATION_CREDENTIALS",
        credential_file("service-account.json"),
    )
    .env("GCE_METADATA_HOST", NO_METADATA);
    Run::from(sync.output().unwrap()).assert_code(0);
    let made = ar_repository(&id).expect("the sync created the repository");
    assert_eq!(made["format"], "DOCKER");
    assert_eq!(made["dockerConfig"]["immutableTags"], true);
    assert_eq!(
        made["labels"],
        serde_json::json!({"team": "platform", "env": "prod"})
    );

    let bad = bed.sync_config(&format!(
        "version = 1\n[[image]]\nsource = \"{source}\"\ndestination = \"{GAR}/{PROJECT}/{id}-x/app\"\nlifecycle_policy = \"p.json\"\n"
    ));
    std::fs::write(bad.with_file_name("p.json"), "{\"rules\": []}").unwrap();
    let refused = bed.sync(&bad, &[]);
    refused.assert_code(2);
    assert!(
        refused.stderr.contains("`lifecycle_policy`"),
        "{}",
        refused.stderr
    );
}

#[test]
#[ignore = "needs the test bed"]
fn an_image_in_artifact_registry_copies_into_ecr_and_gcr_io_paths_reach_the_gcr_io_repository() {
    let bed = Bed::get("gar-source");
    let upstream = bed.unique("e2e/gar");
    bed.push_upstream(&upstream, "1", "source");
    let pushed = bed.digest(HUB, &upstream, "1").expect("the hub serves it");
    let id = repository_id(&bed, "r");
    let key = Some(credential_file("service-account.json"));
    let in_gar = format!("{GAR}/{PROJECT}/{id}/app:1");
    run_with(
        &bed,
        key.clone(),
        false,
        &["--engine", "registry", &format!("{upstream}:1"), &in_gar],
    )
    .assert_code(0);
    let in_ecr = bed.unique("from-gar");
    run_with(
        &bed,
        key.clone(),
        false,
        &["--engine", "registry", &in_gar, &format!("{ECR}/{in_ecr}:1")],
    )
    .assert_code(0);
    assert_eq!(bed.digest(ECR, &in_ecr, "1").as_ref(), Some(&pushed));
    // gcr.io/PROJECT/IMAGE lives in the repository `gcr.io` of location us.
    let image = bed.unique("gcr");
    run_with(
        &bed,
        key,
        false,
        &[
            "--engine",
            "registry",
            &format!("{upstream}:1"),
            &format!("gcr.io/{PROJECT}/{image}:1"),
        ],
    )
    .assert_code(0);
    assert_eq!(
        digest(&bed, "gcr.io", &format!("{PROJECT}/{image}"), "1"),
        Some(pushed)
    );
    assert!(ar_repository("gcr.io").is_some());
}

#[test]
#[ignore = "needs the test bed"]
fn permissions_names_the_writer_role_and_repository_creation_only_when_asked() {
    let bed = Bed::get("gar-iam");
    let destination = format!("{GAR}/{PROJECT}/mirror/");
    let printed = bed.run(&["permissions", &destination]);
    printed.assert_code(0);
    let printed_json: serde_json::Value = serde_json::from_str(&printed.stdout).expect(&printed.stdout);
    let policy = &printed_json["gar"];
    let bindings = policy["artifactRegistry"].as_array().expect("bindings");
    let roles: Vec<(&str, &str)> = bindings
        .iter()
        .map(|binding| {
            (
                binding["resource"].as_str().unwrap(),
                binding["role"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        [
            (
                "projects/ecrcp-testbed/locations/us",
                "roles/artifactregistry.admin"
            ),
            (
                "projects/ecrcp-testbed/locations/us/repositories/mirror",
                "roles/artifactregistry.writer"
            ),
        ]
    );
    let without = bed.run(&["permissions", "--no-create", &destination]);
    without.assert_code(0);
    assert!(
        !without.stdout.contains("artifactregistry.repositories.create"),
        "{}",
        without.stdout
    );
    assert!(
        without
            .stdout
            .contains("artifactregistry.repositories.uploadArtifacts"),
        "{}",
        without.stdout
    );
}

#[test]
#[ignore = "needs the test bed"]
fn whole_google_cloud_a_token_google_stops_taking_mid_copy_is_renewed_and_the_copy_goes_on() {
    let bed = Bed::get("gar-renew");
    let upstream = bed.unique("e2e/gar");
    bed.push_upstream(&upstream, "1", "renew");
    let pushed = bed.digest(HUB, &upstream, "1").expect("the hub serves it");
    let id = repository_id(&bed, "r");
    let image = format!("{PROJECT}/{id}/app");
    // The first blob request is held while every token issued so far expires (the bed's
    // whole Google Cloud: the test runs alone, .config/nextest.toml).
    let faults = Faults::set(
        GAR,
        &image,
        &serde_json::json!([{"path": "/blobs/", "delay": 2, "times": 1}]),
    );
    let child = command_with(&bed, Some(credential_file("authorized-user.json")), false)
        .args([
            "--engine",
            "registry",
            &format!("{upstream}:1"),
            &format!("{GAR}/{image}:1"),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ecrcp starts");
    while faults.fired() != [1] {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let expired = Command::new("curl")
        .args([
            "-sSf",
            "-o",
            "/dev/null",
            "-X",
            "POST",
            "--data",
            r#"{"expire_tokens": true}"#,
        ])
        .arg("https://artifactregistry.googleapis.com/_testbed/gcp")
        .status()
        .expect("curl runs");
    assert!(expired.success());
    Run::from(child.wait_with_output().unwrap()).assert_code(0);
    assert_eq!(digest(&bed, GAR, &image, "1"), Some(pushed));
}

#[test]
#[ignore = "needs the test bed"]
fn one_sync_pass_fans_a_source_out_to_ecr_and_two_images_of_one_new_artifact_registry_repository() {
    let bed = Bed::get("gar-fanout");
    let upstream = bed.unique("e2e/gar");
    bed.push_upstream(&upstream, "1", "fanout");
    let pushed = bed.digest(HUB, &upstream, "1").expect("the hub serves it");
    let id = repository_id(&bed, "r");
    let in_ecr = bed.unique("fan");
    let config = bed.sync_config(&format!(
        "version = 1\n[defaults]\nengine = \"registry\"\n\
         [[image]]\nsource = \"{upstream}:1\"\ndestination = [\"{ECR}/{in_ecr}:1\", \"{GAR}/{PROJECT}/{id}/one:1\"]\n\
         [[image]]\nsource = \"{upstream}:1\"\ndestination = \"{GAR}/{PROJECT}/{id}/two:1\"\n"
    ));
    let mut sync = bed.sync_command(&config);
    sync.env(
        "GOOGLE_APPLICATION_CREDENTIALS",
        credential_file("service-account.json"),
    )
    .env("GCE_METADATA_HOST", NO_METADATA);
    let run = Run::from(sync.output().unwrap());
    run.assert_code(0);
    assert_eq!(bed.digest(ECR, &in_ecr, "1").as_ref(), Some(&pushed));
    for image in ["one", "two"] {
        assert_eq!(
            digest(&bed, GAR, &format!("{PROJECT}/{id}/{image}"), "1").as_ref(),
            Some(&pushed),
            "{image}"
        );
    }
    // Both images went into one repository, made once.
    assert_eq!(
        run.events("created Artifact Registry repository").len(),
        1,
        "{}",
        run.stderr
    );
}

#[test]
#[ignore = "needs the test bed"]
fn credentials_google_refuses_stop_the_run_in_google_s_words() {
    let bed = Bed::get("gar-refused");
    let mut key: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(credential_file("service-account.json")).unwrap())
            .unwrap();
    key["client_email"] = "gone@ecrcp-testbed.iam.gserviceaccount.com".into();
    let file = bed.scratch().join("deleted-account.json");
    std::fs::write(&file, key.to_string()).unwrap();
    let id = repository_id(&bed, "r");
    let run = run_with(
        &bed,
        Some(file.clone()),
        false,
        &["alpine:3.20", &format!("{GAR}/{PROJECT}/{id}/alpine")],
    );
    assert_ne!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr.contains("Google refused an access token"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("invalid_grant: Invalid grant: account not found"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(&file.display().to_string()), "{}", run.stderr);
    assert_eq!(bed.docker_calls_of("pull"), 0);
    std::fs::write(&file, "{\"type\": \"service_account\"}").unwrap();
    let run = run_with(
        &bed,
        Some(file),
        false,
        &["alpine:3.20", &format!("{GAR}/{PROJECT}/{id}/alpine")],
    );
    assert!(
        run.stderr
            .contains("a \"service_account\" file, but missing field"),
        "{}",
        run.stderr
    );
}

#[test]
#[ignore = "needs the test bed"]
fn docker_ecrcp_copies_into_artifact_registry_and_out_of_it_with_the_docker_engine() {
    let bed = Bed::get("gar-plugin");
    let upstream = bed.unique("e2e/gar");
    bed.push_upstream(&upstream, "1", "plugin");
    let id = repository_id(&bed, "r");
    let in_gar = format!("{GAR}/{PROJECT}/{id}/app:1");
    let in_ecr = bed.unique("plugin-from-gar");
    for (source, destination) in [
        (format!("{upstream}:1"), in_gar.clone()),
        (in_gar.clone(), format!("{ECR}/{in_ecr}:1")),
    ] {
        let output = bed
            .docker_cli()
            .env(
                "GOOGLE_APPLICATION_CREDENTIALS",
                credential_file("service-account.json"),
            )
            .env("GCE_METADATA_HOST", NO_METADATA)
            .args(["ecrcp", "--engine", "docker", &source, &destination])
            .output()
            .expect("docker runs");
        Run::from(output).assert_code(0);
    }
    assert!(digest(&bed, GAR, &format!("{PROJECT}/{id}/app"), "1").is_some());
    assert!(bed.digest(ECR, &in_ecr, "1").is_some());
    assert!(
        bed.docker_calls()
            .iter()
            .any(|argv| argv.starts_with("pull") && argv.contains(GAR)),
        "{:?}",
        bed.docker_calls()
    );
}

/// Turns knobs of the bed's whole Google Cloud (`POST /_testbed/gcp`).
fn google_cloud(knobs: &serde_json::Value) {
    let status = Command::new("curl")
        .args([
            "-sSf",
            "-o",
            "/dev/null",
            "-X",
            "POST",
            "--data",
            &knobs.to_string(),
        ])
        .arg("https://artifactregistry.googleapis.com/_testbed/gcp")
        .status()
        .expect("curl runs");
    assert!(status.success(), "{knobs}");
}

/// Lets creates through again when dropped, whatever the test did.
struct AllowCreates;

impl Drop for AllowCreates {
    fn drop(&mut self) {
        google_cloud(&serde_json::json!({"deny_create": false, "fail_operations": 0, "throttle_api": 0}));
    }
}

#[test]
#[ignore = "needs the test bed"]
fn whole_google_cloud_a_failed_create_operation_and_a_denied_create_are_reported_in_google_s_words() {
    let bed = Bed::get("gar-opfail");
    let _allow = AllowCreates;
    let upstream = bed.unique("e2e/gar");
    bed.push_upstream(&upstream, "1", "opfail");
    let id = repository_id(&bed, "r");
    let copy = [
        "--engine".to_owned(),
        "registry".to_owned(),
        format!("{upstream}:1"),
        format!("{GAR}/{PROJECT}/{id}/app:1"),
    ];
    let copy: Vec<&str> = copy.iter().map(String::as_str).collect();
    let key = Some(credential_file("service-account.json"));
    google_cloud(
        &serde_json::json!({"fail_operations": 1, "error": {"code": 9, "message": "the bed says no"}}),
    );
    let failed = run_with(&bed, key.clone(), false, &copy);
    failed.assert_code(1);
    assert!(
        failed
            .stderr
            .contains("repositories.create of 'projects/ecrcp-testbed/locations/us/repositories/")
            && failed
                .stderr
                .contains("ended with an error: the bed says no (code 9)"),
        "{}",
        failed.stderr
    );
    assert!(ar_repository(&id).is_none());

    google_cloud(&serde_json::json!({"deny_create": true}));
    let denied = run_with(&bed, key.clone(), false, &copy);
    denied.assert_code(1);
    assert!(
        denied
            .stderr
            .contains("(403): PERMISSION_DENIED: Permission 'artifactregistry.repositories.create' denied"),
        "{}",
        denied.stderr
    );
    assert!(
        denied.stderr.contains("`ecrcp permissions DEST` lists the roles"),
        "{}",
        denied.stderr
    );
    google_cloud(&serde_json::json!({"deny_create": false}));
    run_with(&bed, key, false, &copy).assert_code(0);
    assert!(ar_repository(&id).is_some());
}

#[test]
#[ignore = "needs the test bed"]
fn whole_google_cloud_an_api_throttle_that_outlasts_the_retries_defers_the_image() {
    let bed = Bed::get("gar-throttle");
    let _allow = AllowCreates;
    let upstream = bed.unique("e2e/gar");
    bed.push_upstream(&upstream, "1", "throttle");
    let id = repository_id(&bed, "r");
    let config = bed.sync_config(&format!(
        "version = 1\n[[image]]\nsource = \"{upstream}:1\"\ndestination = \"{GAR}/{PROJECT}/{id}/app:1\"\nengine = \"registry\"\n"
    ));
    google_cloud(&serde_json::json!({"throttle_api": 1000}));
    let mut sync = bed.sync_command(&config);
    // The API's retries last a third of the API operation limit: 1.2 s at this scale.
    sync.env(
        "GOOGLE_APPLICATION_CREDENTIALS",
        credential_file("service-account.json"),
    )
    .env("GCE_METADATA_HOST", NO_METADATA)
    .env("ECRCP_NET_TIMEOUT_SCALE", "0.02");
    let run = Run::from(sync.output().unwrap());
    run.assert_code(75);
    let outcomes = run.outcomes();
    assert_eq!(
        outcomes.values().collect::<Vec<_>>(),
        ["deferred"],
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("RESOURCE_EXHAUSTED"), "{}", run.stderr);
    google_cloud(&serde_json::json!({"throttle_api": 0}));
    // Lifted, the next pass copies it (with the metadata server's account).
    bed.sync(&config, &[]).assert_code(0);
}
