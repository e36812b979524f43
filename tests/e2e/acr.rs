//! Azure Container Registry through the login `az acr login` leaves in docker's config: an
//! identity token, traded at ACR's token server for access tokens, never sent as Basic.

use std::process::Command;

use crate::support::{Bed, Run};

/// The bed's ACR (`tests/testbed/azure_front.py`).
const ACR: &str = "ecrcpbed.azurecr.io";
/// The bed's service principal with AcrPush on it, and its secret.
const PUSHER: &str = "7e57bed0-0000-4000-8000-0000000000a1";
const PUSHER_SECRET: &str = "ecrcpbed-push-secret";

/// Writes this test's docker config as `az acr login` leaves it: the GUID user with no
/// password, and an ACR refresh token as `identitytoken`.
fn az_acr_login(bed: &Bed) {
    let python = std::env::var("ECRCP_TESTBED_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testbed/azure_front.py");
    let output = Command::new(python)
        .arg(script)
        .args(["acr-login", "--registry", ACR, "--config-dir"])
        .arg(bed.docker_config())
        .env("AZURE_CLIENT_ID", PUSHER)
        .env("AZURE_CLIENT_SECRET", PUSHER_SECRET)
        .output()
        .expect("azure_front.py runs");
    assert!(
        output.status.success(),
        "acr-login: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let config = std::fs::read_to_string(bed.docker_config().join("config.json")).unwrap();
    assert!(config.contains("identitytoken"), "{config}");
}

#[test]
#[ignore = "needs the test bed"]
fn an_az_acr_login_config_copies_into_acr_with_either_engine() {
    let bed = Bed::get("acr");
    az_acr_login(&bed);
    for engine in ["registry", "docker"] {
        let destination = format!("{ACR}/{}:3.20", bed.unique(&format!("acr-{engine}")));
        bed.run(&["--engine", engine, "alpine:3.20", &destination])
            .assert_code(0);
        // The second run reads the tag back with the same login and finds the image there.
        let again = bed.run(&["--engine", engine, "-u", "-v", "alpine:3.20", &destination]);
        again.assert_code(0);
        assert!(
            again.stdout.contains("(unchanged)") || again.stdout.contains("(already there)"),
            "{engine}: {}",
            again.stdout
        );
    }
}

/// The bed's Entra ID tenant.
const TENANT: &str = "7e57bed0-0000-4000-8000-000000000001";

/// `ecrcp ARGS` with `vars` set and no docker login at all: the provider's own.
fn run_with(bed: &Bed, vars: &[(&str, &str)], args: &[&str]) -> Run {
    let mut command = bed.ecrcp();
    command.args(args);
    for (name, value) in vars {
        command.env(name, value);
    }
    Run::from(command.output().expect("ecrcp runs"))
}

/// A service principal's variables, as `az ad sp create-for-rbac` hands them out.
fn service_principal(secret: &str) -> [(&'static str, String); 3] {
    [
        ("AZURE_TENANT_ID", TENANT.to_owned()),
        ("AZURE_CLIENT_ID", PUSHER.to_owned()),
        ("AZURE_CLIENT_SECRET", secret.to_owned()),
    ]
}

fn vars<'a, const N: usize>(pairs: &'a [(&'static str, String); N]) -> Vec<(&'static str, &'a str)> {
    pairs
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect()
}

#[test]
#[ignore = "needs the test bed"]
fn a_service_principal_copies_into_acr_with_either_engine_and_no_login_of_the_user_s() {
    let bed = Bed::get("acr-sp");
    let sp = service_principal(PUSHER_SECRET);
    let config = || std::fs::read_to_string(bed.docker_config().join("config.json")).unwrap_or_default();
    for engine in ["registry", "docker"] {
        let destination = format!("{ACR}/{}:3.20", bed.unique(&format!("acr-sp-{engine}")));
        run_with(
            &bed,
            &vars(&sp),
            &["--engine", engine, "alpine:3.20", &destination],
        )
        .assert_code(0);
        let again = run_with(
            &bed,
            &vars(&sp),
            &["--engine", engine, "-u", "-v", "alpine:3.20", &destination],
        );
        again.assert_code(0);
        assert!(
            again.stdout.contains("(unchanged)") || again.stdout.contains("(already there)"),
            "{engine}: {}",
            again.stdout
        );
        if engine == "registry" {
            assert!(
                !config().contains(ACR),
                "the registry engine logs docker in nowhere: {}",
                config()
            );
        }
    }
    // The docker engine logged docker in as `az acr login` does: the GUID user and the
    // refresh token, which docker keeps as its identity token.
    let config = config();
    assert!(config.contains("identitytoken"), "{config}");
    let guid = base64_of("00000000-0000-0000-0000-000000000000:");
    assert!(config.contains(&guid), "{config}");
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[test]
#[ignore = "needs the test bed"]
fn a_wrong_client_secret_is_refused_in_entra_s_words() {
    let bed = Bed::get("acr-sp-wrong");
    let destination = format!("{ACR}/{}:3.20", bed.unique("acr-wrong"));
    let sp = service_principal("not-the-secret");
    let run = run_with(&bed, &vars(&sp), &["alpine:3.20", &destination]);
    assert_ne!(run.code, Some(0));
    assert!(run.stderr.contains("AADSTS7000215"), "{}", run.stderr);
    assert!(run.stderr.contains("AZURE_CLIENT_SECRET"), "{}", run.stderr);
}
