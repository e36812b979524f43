//! Cross-account and ECR-source copies, credential helpers and logins, end to end.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::support::{write_executable, Bed, Run, ECR, ECR2, ECR2_PASSWORD, ECR_PASSWORD};

const OWN_ACCOUNT: &str = "123456789012";
const OTHER_ACCOUNT: &str = "222222222222";

/// `docker login` runs ecrcp made, by registry.
fn logins(bed: &Bed) -> Vec<String> {
    bed.docker_calls()
        .into_iter()
        .filter(|argv| argv.starts_with("login"))
        .collect()
}

#[test]
#[ignore = "needs the test bed"]
fn a_copy_into_another_accounts_registry_creates_the_repository_in_that_account() {
    let bed = Bed::get("xaccount");
    let repo = bed.unique("mirror/alpine");

    bed.run(&["alpine:3.20", &format!("{ECR2}/{repo}:3.20")])
        .assert_code(0);

    let created = bed
        .repository_in(OTHER_ACCOUNT, &repo)
        .expect("the repository is created in the destination's account");
    assert_eq!(created["registryId"], OTHER_ACCOUNT);
    assert!(
        bed.repository_in(OWN_ACCOUNT, &repo).is_none(),
        "no stray repository in the caller's account"
    );
    assert!(
        bed.digest(ECR2, &repo, "3.20").is_some(),
        "the image is in 222's registry"
    );
    assert!(bed.digest(ECR, &repo, "3.20").is_none(), "and not in 123's");
    assert_eq!(
        logins(&bed),
        [format!("login --username AWS --password-stdin {ECR2}")],
        "docker logged in to the destination's registry"
    );
}

#[test]
#[ignore = "needs the test bed"]
fn a_failed_copy_into_another_account_removes_the_repository_it_created_there() {
    let bed = Bed::get("xrollback");
    let repo = bed.unique("mirror/alpine");

    let run = Run::from(
        bed.ecrcp()
            .args(["alpine:3.20", &format!("{ECR2}/{repo}:3.20")])
            .env("ECRCP_TEST_REFUSE_PUSH", "denied: the push is refused")
            .output()
            .unwrap(),
    );
    run.assert_code(1);

    assert!(
        bed.docker_calls_of("push") > 0,
        "the push was tried: {:?}",
        bed.docker_calls()
    );
    assert!(
        bed.repository_in(OTHER_ACCOUNT, &repo).is_none(),
        "the repository created in 222 is removed again: {}",
        run.stderr
    );
    assert!(bed.repository_in(OWN_ACCOUNT, &repo).is_none());
}

#[test]
#[ignore = "needs the test bed"]
fn an_image_in_one_ecr_registry_copies_into_another_accounts_without_a_prior_login() {
    let bed = Bed::get("ecrsource");
    let repo = bed.unique("team/app");
    let source_host = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
    bed.push_image(ECR, &format!("AWS:{ECR_PASSWORD}"), &repo, "v1", "7");
    assert!(
        !bed.docker_config().join("config.json").exists(),
        "docker has no login anywhere"
    );

    bed.run(&[&format!("{source_host}/{repo}:v1"), &format!("{ECR2}/{repo}:v1")])
        .assert_code(0);

    assert_eq!(
        bed.image_id(ECR2, &repo, "v1"),
        bed.image_id(ECR, &repo, "v1"),
        "the source's image landed in 222's registry"
    );
    let logins = logins(&bed);
    assert!(
        logins.contains(&format!("login --username AWS --password-stdin {source_host}")),
        "docker logged in to the source registry before the pull: {logins:?}"
    );
    let calls = bed.docker_calls();
    let login_at = calls.iter().position(|argv| argv.ends_with(source_host));
    let pull_at = calls.iter().position(|argv| argv.starts_with("pull"));
    assert!(login_at < pull_at, "login before pull: {calls:?}");
}

/// A `docker-credential-ecr-login` stand-in in `dir`: `get` answers the bed's ECR login
/// (or, if not `answers`, nothing), `store` fails as amazon-ecr-credential-helper's does.
fn install_ecr_login_helper(dir: &Path, answers: bool) {
    let path = dir.join("docker-credential-ecr-login");
    let get = if answers {
        format!("read server; printf '{{\"ServerURL\":\"%s\",\"Username\":\"AWS\",\"Secret\":\"{ECR_PASSWORD}\"}}\\n' \"$server\"")
    } else {
        "echo 'credentials not found' >&2; exit 1".to_owned()
    };
    let script =
        format!("#!/bin/sh\ncase \"$1\" in\nget) {get} ;;\n*) echo 'not implemented' >&2; exit 1 ;;\nesac\n");
    write_executable(&path, &script);
}

fn path_with(dir: &Path) -> String {
    format!("{}:{}", dir.display(), std::env::var("PATH").unwrap())
}

fn write_docker_config(bed: &Bed, text: &str) -> PathBuf {
    std::fs::create_dir_all(bed.docker_config()).unwrap();
    let path = bed.docker_config().join("config.json");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
#[ignore = "needs the test bed"]
fn the_ecr_credential_helper_is_used_and_docker_is_not_logged_in() {
    let bed = Bed::get("credhelper");
    let helpers = bed.scratch().join("helpers");
    std::fs::create_dir_all(&helpers).unwrap();
    install_ecr_login_helper(&helpers, true);
    write_docker_config(&bed, &format!(r#"{{"credHelpers": {{"{ECR}": "ecr-login"}}}}"#));
    let repo = bed.unique("helper/alpine");

    let run = Run::from(
        bed.ecrcp()
            .args(["alpine:3.20", &format!("{ECR}/{repo}:3.20")])
            .env("PATH", path_with(&helpers))
            .output()
            .unwrap(),
    );
    run.assert_code(0);

    assert!(
        logins(&bed).is_empty(),
        "no docker login: {:?}",
        bed.docker_calls()
    );
    assert!(
        bed.digest(ECR, &repo, "3.20").is_some(),
        "pushed with the helper's login"
    );
}

#[test]
#[ignore = "needs the test bed"]
fn a_credential_helper_without_a_login_fails_the_copy_with_a_note_naming_it() {
    let bed = Bed::get("credhelperfail");
    let helpers = bed.scratch().join("helpers");
    std::fs::create_dir_all(&helpers).unwrap();
    install_ecr_login_helper(&helpers, false);
    write_docker_config(&bed, r#"{"credsStore": "ecr-login"}"#);

    let run = Run::from(
        bed.ecrcp()
            .args([
                "alpine:3.20",
                &format!("{ECR}/{}:3.20", bed.unique("helper/alpine")),
            ])
            .env("PATH", path_with(&helpers))
            .output()
            .unwrap(),
    );
    run.assert_code(1);
    let note = format!("note: docker's config hands '{ECR}' to docker-credential-ecr-login");
    assert!(run.stderr.contains(&note), "{}", run.stderr);
}

#[test]
#[ignore = "needs the test bed"]
fn a_working_stored_login_is_left_byte_identical() {
    let bed = Bed::get("storedlogin");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{ECR_PASSWORD}"));
    let text = format!(r#"{{"auths":{{"{ECR}":{{"auth":"{auth}"}}}},"detachKeys":"ctrl-x"}}"#);
    let config = write_docker_config(&bed, &text);
    let repo = bed.unique("stored/alpine");

    bed.run(&["alpine:3.20", &format!("{ECR}/{repo}:3.20")])
        .assert_code(0);

    assert!(
        logins(&bed).is_empty(),
        "no docker login: {:?}",
        bed.docker_calls()
    );
    assert_eq!(
        std::fs::read_to_string(config).unwrap(),
        text,
        "config.json untouched"
    );
    assert!(bed.digest(ECR, &repo, "3.20").is_some());
}

#[test]
#[ignore = "needs the test bed"]
fn a_stored_login_the_registry_refuses_is_replaced_by_a_fresh_one() {
    let bed = Bed::get("stalelogin");
    let auth = base64::engine::general_purpose::STANDARD.encode("AWS:an-expired-token");
    write_docker_config(&bed, &format!(r#"{{"auths":{{"{ECR2}":{{"auth":"{auth}"}}}}}}"#));
    let repo = bed.unique("stale/alpine");

    bed.run(&["alpine:3.20", &format!("{ECR2}/{repo}:3.20")])
        .assert_code(0);

    assert_eq!(
        logins(&bed).len(),
        1,
        "docker logged in: {:?}",
        bed.docker_calls()
    );
    let config = std::fs::read_to_string(bed.docker_config().join("config.json")).unwrap();
    let fresh = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{ECR2_PASSWORD}"));
    assert!(config.contains(&fresh), "the fresh token is stored: {config}");
}

#[test]
#[ignore = "needs the test bed"]
fn without_aws_credentials_stderr_is_one_error_line_and_its_note() {
    let bed = Bed::get("quietnocreds");
    let started = Instant::now();
    let run = Run::from(
        bed.ecrcp()
            .args(["alpine:3.20", &format!("{ECR}/quiet/alpine:3.20")])
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_EC2_METADATA_DISABLED")
            .output()
            .unwrap(),
    );
    run.assert_code(1);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "exactly an error and a note:\n{}", run.stderr);
    assert_eq!(lines[0], "ecrcp: no AWS credentials found");
    assert!(
        lines[1].starts_with("note: set AWS_ACCESS_KEY_ID"),
        "{}",
        run.stderr
    );
}

#[test]
#[ignore = "needs the test bed"]
fn a_copy_without_instance_metadata_prints_no_sdk_warnings() {
    let bed = Bed::get("quietcopy");
    let repo = bed.unique("quiet/alpine");
    // No region in the environment: the SDK looks for one in instance metadata, which is
    // unreachable here, and warns about it with HTTP dumps unless filtered.
    let run = Run::from(
        bed.ecrcp()
            .args(["alpine:3.20", &format!("{ECR}/{repo}:3.20")])
            .env_remove("AWS_REGION")
            .env_remove("AWS_EC2_METADATA_DISABLED")
            .output()
            .unwrap(),
    );
    run.assert_code(0);
    assert_eq!(run.stderr, "", "nothing on stderr");

    let widened = Run::from(
        bed.ecrcp()
            .args(["alpine:3.20", &format!("{ECR}/{repo}:3.20")])
            .env_remove("AWS_REGION")
            .env_remove("AWS_EC2_METADATA_DISABLED")
            .env("RUST_LOG", "warn")
            .output()
            .unwrap(),
    );
    widened.assert_code(0);
    assert!(
        widened.stderr.contains("IMDS"),
        "RUST_LOG still shows the libraries' events: {}",
        widened.stderr
    );
}
