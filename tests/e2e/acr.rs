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

/// alpine:3.20 as the bed seeds it (tests/testbed/README.md).
const ALPINE: &str = "sha256:2fbd3d393bfd5b318867dbee2111b813d0c713155bfffcfaed14f3a360c95fea";

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

/// Copies alpine:3.20 into a new repository of the bed's ACR with the registry engine and
/// `vars`' credentials, and checks that a rerun finds it there.
fn copies_with(bed: &Bed, vars: &[(&str, &str)], repository: &str) {
    let destination = format!("{ACR}/{}:3.20", bed.unique(repository));
    run_with(bed, vars, &["--engine", "registry", "alpine:3.20", &destination]).assert_code(0);
    let again = run_with(
        bed,
        vars,
        &["--engine", "registry", "-u", "-v", "alpine:3.20", &destination],
    );
    again.assert_code(0);
    assert!(
        again.stdout.contains("(unchanged)") || again.stdout.contains("(already there)"),
        "{}",
        again.stdout
    );
}

#[test]
#[ignore = "needs the test bed"]
fn an_aks_workload_identity_copies_into_acr() {
    let bed = Bed::get("acr-workload");
    let file = format!(
        "{}/azure/federated-token",
        std::env::var("ECRCP_TESTBED").unwrap()
    );
    let vars = [
        ("AZURE_TENANT_ID", TENANT),
        ("AZURE_CLIENT_ID", "7e57bed0-0000-4000-8000-0000000000a3"),
        ("AZURE_FEDERATED_TOKEN_FILE", file.as_str()),
        ("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.com"),
    ];
    copies_with(&bed, &vars, "acr-workload");
}

#[test]
#[ignore = "needs the test bed"]
fn an_app_service_managed_identity_copies_into_acr() {
    let bed = Bed::get("acr-app-service");
    let vars = [
        ("IDENTITY_ENDPOINT", "http://127.0.0.43/msi/token"),
        ("IDENTITY_HEADER", "ecrcpbed-identity-header"),
    ];
    copies_with(&bed, &vars, "acr-app-service");
}

/// PATH with the bed's `az` stand-in first.
fn path_with_az() -> String {
    let stand_in = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testbed/azure-cli");
    format!(
        "{}:{}",
        stand_in.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[test]
#[ignore = "needs the test bed"]
fn the_azure_cli_s_login_copies_into_acr() {
    let bed = Bed::get("acr-az");
    let az_config = bed.scratch().join("azure");
    let path = path_with_az();
    let login = Command::new("az")
        .env("PATH", &path)
        .env("AZURE_CONFIG_DIR", &az_config)
        .args([
            "login",
            "--service-principal",
            "-u",
            PUSHER,
            "-p",
            PUSHER_SECRET,
            "--tenant",
            TENANT,
        ])
        .output()
        .expect("az runs");
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    let az_config = az_config.to_str().unwrap();
    copies_with(
        &bed,
        &[("PATH", path.as_str()), ("AZURE_CONFIG_DIR", az_config)],
        "acr-az",
    );
}

#[test]
#[ignore = "needs the test bed"]
fn no_azure_credentials_at_all_says_what_to_do_before_any_copy() {
    let bed = Bed::get("acr-none");
    // The az stand-in is there, but nobody logged in.
    let path = path_with_az();
    let az_config = bed.scratch().join("azure");
    let destination = format!("{ACR}/{}:3.20", bed.unique("acr-none"));
    let run = run_with(
        &bed,
        &[
            ("PATH", path.as_str()),
            ("AZURE_CONFIG_DIR", az_config.to_str().unwrap()),
        ],
        &["--engine", "registry", "alpine:3.20", &destination],
    );
    assert_ne!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("no Azure credentials found for 'ecrcpbed.azurecr.io'"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("az login"), "{}", run.stderr);
    assert!(run.stderr.contains("AZURE_CLIENT_SECRET"), "{}", run.stderr);
    assert!(
        bed.docker_calls().is_empty(),
        "no copy began: {:?}",
        bed.docker_calls()
    );
}

#[test]
#[ignore = "needs the test bed"]
fn an_acr_source_copies_into_ecr_with_the_acrpull_role() {
    let bed = Bed::get("acr-source");
    let repository = bed.unique("acr-source");
    let pusher = service_principal(PUSHER_SECRET);
    let source = format!("{ACR}/{repository}:3.20");
    run_with(
        &bed,
        &vars(&pusher),
        &["--engine", "registry", "alpine:3.20", &source],
    )
    .assert_code(0);
    let puller = [
        ("AZURE_TENANT_ID", TENANT),
        ("AZURE_CLIENT_ID", "7e57bed0-0000-4000-8000-0000000000a2"),
        ("AZURE_CLIENT_SECRET", "ecrcpbed-pull-secret"),
    ];
    for engine in ["registry", "docker"] {
        let destination = format!("{}/{repository}-{engine}:3.20", crate::support::ECR);
        run_with(&bed, &puller, &["--engine", engine, &source, &destination]).assert_code(0);
        let copied = bed.digest(crate::support::ECR, &format!("{repository}-{engine}"), "3.20");
        if engine == "registry" {
            assert_eq!(copied.as_deref(), Some(ALPINE), "{engine}");
        } else {
            assert!(copied.is_some(), "{engine}");
        }
    }
}

#[test]
#[ignore = "needs the test bed"]
fn a_sync_fans_one_source_out_into_ecr_and_acr_and_ecr_s_settings_are_left_to_ecr() {
    let bed = Bed::get("acr-sync");
    let prefix = bed.unique("acr-sync");
    let ecr = crate::support::ECR;
    let config = bed.sync_config(&format!(
        "version = 1\n[defaults]\nengine = \"registry\"\nimmutable_tags = true\n\n[[image]]\nsource = \"alpine:3.20\"\ndestination = [\"{ecr}/{prefix}/\", \"{ACR}/{prefix}/\"]\n"
    ));
    let sp = service_principal(PUSHER_SECRET);
    let mut command = bed.sync_command(&config);
    for (name, value) in vars(&sp) {
        command.env(name, value);
    }
    let run = Run::from(command.output().expect("ecrcp runs"));
    run.assert_code(0);
    let outcomes: Vec<String> = run
        .events("image synced")
        .iter()
        .map(|event| {
            format!(
                "{} {}",
                event["destination"].as_str().unwrap_or_default(),
                event["outcome"]
            )
        })
        .collect();
    assert_eq!(outcomes.len(), 2, "{outcomes:?}\n{}", run.stderr);
    assert!(
        outcomes.iter().all(|line| line.ends_with("\"copied\"")),
        "{outcomes:?}"
    );
    assert!(outcomes.iter().any(|line| line.starts_with(ACR)), "{outcomes:?}");
    // ECR's repository was made with the setting; ACR's on the push, without it, said once.
    let repository = bed
        .repository(&format!("{prefix}/alpine"))
        .expect("ECR repository");
    assert_eq!(repository["imageTagMutability"], "IMMUTABLE", "{repository}");
    assert_eq!(
        run.stderr
            .matches("ACR makes repositories on the first push")
            .count(),
        1,
        "{}",
        run.stderr
    );
}

#[test]
#[ignore = "needs the test bed"]
fn permissions_names_the_acr_roles_and_the_registry_s_scope_and_iam_policy_points_there() {
    let bed = Bed::get("acr-iam");
    let printed = bed.run(&[
        "permissions",
        "--source",
        &format!("{ACR}/upstream/app:1"),
        &format!("{ACR}/mirror/"),
    ]);
    printed.assert_code(0);
    let printed_json: serde_json::Value = serde_json::from_str(&printed.stdout).expect("JSON on stdout");
    let policy = &printed_json["acr"];
    let assignments = policy["roleAssignments"].as_array().expect("role assignments");
    assert_eq!(assignments.len(), 1, "{policy}");
    assert_eq!(assignments[0]["role"], "AcrPush", "{policy}");
    assert_eq!(
        assignments[0]["scope"],
        "/subscriptions/SUBSCRIPTION_ID/resourceGroups/RESOURCE_GROUP/providers/Microsoft.ContainerRegistry/registries/ecrcpbed"
    );
    assert!(
        printed.stderr.contains("az role assignment create"),
        "{}",
        printed.stderr
    );
    let reads = bed.run(&[
        "permissions",
        "--source",
        &format!("{ACR}/upstream/app:1"),
        "mirror/",
    ]);
    reads.assert_code(0);
    assert!(reads.stdout.contains("\"AcrPull\""), "{}", reads.stdout);
    // The IAM policy alone stays a document the AWS CLI takes; the ACR roles are pointed to.
    let iam = bed.run(&[
        "iam-policy",
        "--source",
        &format!("{ACR}/upstream/app:1"),
        &format!("{ACR}/mirror/"),
    ]);
    iam.assert_code(0);
    assert!(iam.stdout.trim().is_empty(), "{}", iam.stdout);
    assert!(iam.stderr.contains("`ecrcp permissions`"), "{}", iam.stderr);
}

/// The bed's metadata endpoint served at the well-known 169.254.169.254, inside the bed's own
/// network namespace, while this lives (tests/testbed/README.md's recipe). Its test runs
/// alone (.config/nextest.toml): no other test may find a managed identity there.
struct InstanceMetadata(std::process::Child);

impl InstanceMetadata {
    fn serve() -> InstanceMetadata {
        let added = Command::new("ip")
            .args(["addr", "add", "169.254.169.254/32", "dev", "lo"])
            .status()
            .expect("ip runs");
        assert!(added.success(), "ip addr add");
        let socat = Command::new("socat")
            .args([
                "TCP-LISTEN:80,bind=169.254.169.254,fork,reuseaddr",
                "TCP:127.0.0.43:80",
            ])
            .spawn()
            .expect("socat runs");
        let serving = InstanceMetadata(socat);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::net::TcpStream::connect("169.254.169.254:80").is_err() {
            assert!(std::time::Instant::now() < deadline, "socat listens");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        serving
    }
}

impl Drop for InstanceMetadata {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = Command::new("ip")
            .args(["addr", "del", "169.254.169.254/32", "dev", "lo"])
            .status();
    }
}

#[test]
#[ignore = "needs the test bed"]
fn the_instance_metadata_service_s_managed_identity_copies_into_acr() {
    let bed = Bed::get("acr-imds");
    let _imds = InstanceMetadata::serve();
    // The VM's system-assigned identity (AcrPush), found with nothing set at all.
    copies_with(&bed, &[], "acr-imds");
}

#[test]
#[ignore = "needs the test bed"]
fn a_push_with_only_the_acrpull_role_is_refused_in_azure_s_words() {
    let bed = Bed::get("acr-pull-only");
    let destination = format!("{ACR}/{}:3.20", bed.unique("acr-pull-only"));
    let puller = [
        ("AZURE_TENANT_ID", TENANT),
        ("AZURE_CLIENT_ID", "7e57bed0-0000-4000-8000-0000000000a2"),
        ("AZURE_CLIENT_SECRET", "ecrcpbed-pull-secret"),
    ];
    let run = run_with(
        &bed,
        &puller,
        &["--engine", "registry", "alpine:3.20", &destination],
    );
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("refused the ACR refresh token again"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("AcrPush role"), "{}", run.stderr);
    assert!(!run.stderr.contains("ECR"), "no word of ECR: {}", run.stderr);
}

#[test]
#[ignore = "needs the test bed"]
fn the_docker_plugin_copies_into_acr_with_a_service_principal() {
    let bed = Bed::get("acr-plugin");
    let destination = format!("{ACR}/{}:3.20", bed.unique("acr-plugin"));
    let mut command = bed.docker_cli();
    command.args(["ecrcp", "--engine", "registry", "alpine:3.20", &destination]);
    for (name, value) in vars(&service_principal(PUSHER_SECRET)) {
        command.env(name, value);
    }
    Run::from(command.output().expect("docker runs")).assert_code(0);
}

#[test]
#[ignore = "needs the test bed"]
fn a_refused_acr_token_is_exchanged_anew_once_and_the_copy_goes_on_with_either_engine() {
    let bed = Bed::get("acr-renew");
    let sp = service_principal(PUSHER_SECRET);
    // The registry engine trades the same refresh token once more before it renews it;
    // docker does not, so a single refusal makes it log in anew.
    for (engine, refusals) in [("registry", 2_usize), ("docker", 1)] {
        let repository = bed.unique(&format!("acr-renew-{engine}"));
        // ACR's answer to a revoked login: 401 with its Bearer challenge, to the token that
        // worked and to a fresh one traded with the same refresh token.
        let faults = crate::support::Faults::set(
            ACR,
            &repository,
            &serde_json::json!([{"method": "PUT", "path": "/manifests/", "expire_token": true, "times": refusals}]),
        );
        let logins_before = bed.docker_calls_of("login");
        let mut with_info = vars(&sp);
        with_info.push(("ECRCP_LOG", "ecrcp=info"));
        let run = run_with(
            &bed,
            &with_info,
            &[
                "--engine",
                engine,
                "alpine:3.20",
                &format!("{ACR}/{repository}:3.20"),
            ],
        );
        run.assert_code(0);
        assert_eq!(faults.fired(), [u64::try_from(refusals).unwrap()], "{engine}");
        let statuses: Vec<String> = crate::support::front_requests(ACR, &repository, "PUT", "/manifests/")
            .iter()
            .map(|entry| entry["status"].to_string())
            .collect();
        let mut expected = vec!["401"; refusals];
        expected.push("201");
        assert_eq!(statuses, expected, "{engine}");
        assert_eq!(
            run.stderr
                .matches("the registry refused the ACR refresh token; fetching a new one")
                .count(),
            1,
            "{engine}: {}",
            run.stderr
        );
        if engine == "docker" {
            assert_eq!(
                bed.docker_calls_of("login") - logins_before,
                2,
                "one login at the start, one with the new token: {:?}",
                bed.docker_calls()
            );
        }
    }
}
