//! Copies that fail, and what they leave: a bad source among good ones, bad references, no
//! credentials, no docker daemon, and the ECR password kept out of argv and logs.

use std::time::{Duration, Instant};

use crate::support::{Bed, Run, ECR, ECR_PASSWORD, PLAIN};

#[test]
#[ignore = "needs the test bed"]
fn one_missing_source_fails_alone_and_leaves_nothing_behind() {
    let bed = Bed::get("mixed");
    let prefix = bed.unique("mixed");
    let run = bed.run(&[
        "nginx:1.27",
        "nope/missing:1",
        "alpine:3.20",
        &format!("{ECR}/{prefix}/"),
    ]);
    run.assert_code(1);
    let failures: Vec<&str> = run
        .stderr
        .lines()
        .filter(|line| line.starts_with("ecrcp: cannot copy"))
        .collect();
    assert_eq!(failures.len(), 1, "{}", run.stderr);
    assert!(
        failures[0].starts_with("ecrcp: cannot copy 'nope/missing:1': "),
        "{}",
        failures[0]
    );
    assert!(
        bed.digest(ECR, &format!("{prefix}/nginx"), "1.27").is_some(),
        "the copy before it landed"
    );
    assert!(
        bed.digest(ECR, &format!("{prefix}/alpine"), "3.20").is_some(),
        "the copy after it landed"
    );
    assert!(
        bed.repository(&format!("{prefix}/nope/missing")).is_none(),
        "no empty repository"
    );
}

#[test]
#[ignore = "needs the test bed"]
fn a_source_that_fails_to_pull_removes_nothing_and_creates_nothing() {
    // The tag exists (HEAD answers) but docker cannot pull it for this platform.
    let bed = Bed::get("pullfail");
    let repo = bed.unique("pf/nginx");
    let run = bed.run(&[
        "--platform",
        "windows/amd64",
        "nginx:latest",
        &format!("{ECR}/{repo}:latest"),
    ]);
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("ecrcp: cannot copy 'nginx:latest': cannot pull 'nginx:latest'"),
        "{}",
        run.stderr
    );
    assert!(bed.repository(&repo).is_none(), "no repository was created");
    assert_eq!(bed.docker_calls_of("push"), 0);
}

#[test]
#[ignore = "needs the test bed"]
fn bad_references_are_refused_before_any_docker_or_network_call() {
    let bed = Bed::get("badref");
    let exact = format!("{ECR}/x/nginx:1");
    let pinned = format!("{ECR}/x@sha256:{}", "a".repeat(64));
    let cases = [
        (vec!["Nginx", "mirror/"], "'Nginx'"),
        (vec!["nginx:", "mirror/"], "'nginx:'"),
        (vec!["nginx", "redis", &exact], "not a directory"),
        (vec!["nginx", &pinned], "digest"),
    ];
    for (args, expected) in cases {
        let run = bed.run(&args);
        run.assert_code(2);
        assert!(run.stderr.contains(expected), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("--help"), "{}", run.stderr);
    }
    assert!(
        bed.docker_calls().is_empty(),
        "no docker call: {:?}",
        bed.docker_calls()
    );
}

#[test]
#[ignore = "needs the test bed"]
fn missing_credentials_fail_fast_and_say_what_to_set() {
    let bed = Bed::get("nocreds");
    let started = Instant::now();
    let output = bed
        .ecrcp()
        .args(["nginx:latest", &format!("{ECR}/nocreds/nginx:latest")])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_EC2_METADATA_DISABLED")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .output()
        .unwrap();
    let run = Run::from(output);
    run.assert_code(1);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    assert!(run.stderr.contains("no AWS credentials"), "{}", run.stderr);
    assert!(run.stderr.contains("AWS_ACCESS_KEY_ID"), "{}", run.stderr);
    assert!(bed.docker_calls().is_empty());
}

#[test]
#[ignore = "needs the test bed"]
fn an_unreachable_docker_daemon_stops_the_run_with_a_hint() {
    let bed = Bed::get("nodaemon");
    let prefix = bed.unique("nd");
    let output = bed
        .ecrcp()
        .args(["nginx:1.27", "alpine:3.20", &format!("{ECR}/{prefix}/")])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    let run = Run::from(output);
    run.assert_code(1);
    assert!(
        run.stderr.contains("cannot reach the docker daemon"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("DOCKER_HOST"), "{}", run.stderr);
    assert!(run.stderr.contains("1 more copy not attempted"), "{}", run.stderr);
    assert!(bed.repository(&format!("{prefix}/nginx")).is_none());
}

#[test]
#[ignore = "needs the test bed"]
fn a_missing_docker_cli_is_named_with_a_hint() {
    let bed = Bed::get("nocli");
    let output = bed
        .ecrcp()
        .args(["nginx:1.27", &format!("{ECR}/{}/", bed.unique("nocli"))])
        .env("ECRCP_DOCKER", "/nonexistent/docker")
        .output()
        .unwrap();
    let run = Run::from(output);
    run.assert_code(1);
    assert!(
        run.stderr.contains("cannot run '/nonexistent/docker'"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("install docker"), "{}", run.stderr);
}

#[test]
#[ignore = "needs the test bed"]
fn the_ecr_password_never_appears_in_docker_argv_or_logs() {
    let bed = Bed::get("secret");
    let output = bed
        .ecrcp()
        .args([
            "-v",
            "alpine:3.20",
            &format!("{ECR}/{}:3.20", bed.unique("secret/alpine")),
        ])
        .env("ECRCP_LOG", "debug")
        .output()
        .unwrap();
    let run = Run::from(output);
    run.assert_code(0);
    let calls = bed.docker_calls();
    assert!(
        calls
            .iter()
            .any(|argv| argv == &format!("login --username AWS --password-stdin {ECR}")),
        "docker login ran with the password on stdin: {calls:?}"
    );
    for argv in &calls {
        assert!(!argv.contains(ECR_PASSWORD), "password in argv: {argv}");
    }
    assert!(!run.stderr.contains(ECR_PASSWORD), "password in the log");
    assert!(!run.stdout.contains(ECR_PASSWORD));
    assert!(
        run.stderr.contains("running docker"),
        "debug logging was on: {}",
        run.stderr
    );
}

#[test]
#[ignore = "needs the test bed"]
fn a_destination_that_wants_a_login_fails_before_anything_is_pulled() {
    let bed = Bed::get("nologin");
    let run = bed.run(&[
        "alpine:3.20",
        &format!("{PLAIN}/{}:3.20", bed.unique("nologin/alpine")),
    ]);
    run.assert_code(1);
    assert!(
        run.stderr.contains(&format!("run `docker login {PLAIN}`")),
        "{}",
        run.stderr
    );
    assert_eq!(
        bed.docker_calls_of("pull"),
        0,
        "no pull was spent: {:?}",
        bed.docker_calls()
    );
}

#[test]
#[ignore = "needs the test bed"]
fn an_unknown_destination_host_fails_before_anything_is_pulled() {
    let bed = Bed::get("nohost");
    let run = bed.run(&["alpine:3.20", "nosuch.example.com/x/alpine:1"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("cannot reach registry 'nosuch.example.com'"),
        "{}",
        run.stderr
    );
    assert_eq!(bed.docker_calls_of("pull"), 0);
}

#[test]
#[ignore = "needs the test bed"]
fn registries_are_trusted_through_dockers_certs_d_as_docker_trusts_them() {
    // Trust nothing but an unrelated CA: only /etc/docker/certs.d/HOST/ca.crt (which the bed
    // fills, as an admin would for a private registry) can make the HEAD checks work.
    let bed = Bed::get("certsd");
    let unrelated = bed.scratch().join("unrelated.pem");
    let bundle = std::fs::read_to_string(std::env::var("SSL_CERT_FILE").unwrap()).unwrap();
    let first = bundle.split("-----END CERTIFICATE-----").next().unwrap();
    std::fs::write(&unrelated, format!("{first}-----END CERTIFICATE-----\n")).unwrap();
    let repo = bed.unique("certsd/alpine");
    let run = Run::from(
        bed.ecrcp()
            .args(["-u", "alpine:3.20", &format!("{ECR}/{repo}:3.20")])
            .env("SSL_CERT_FILE", &unrelated)
            // Set, so that nothing probes the system's certificate directory in its place.
            .env("SSL_CERT_DIR", bed.scratch())
            .output()
            .unwrap(),
    );
    run.assert_code(0);
    assert!(bed.digest(ECR, &repo, "3.20").is_some());
}
