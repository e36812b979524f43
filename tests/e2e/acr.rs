//! Azure Container Registry through the login `az acr login` leaves in docker's config: an
//! identity token, traded at ACR's token server for access tokens, never sent as Basic.

use std::process::Command;

use crate::support::Bed;

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
