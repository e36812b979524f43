//! The container image on the bed: built by `packaging/container`, run under the bed's docker
//! exactly as `deploy/kubernetes/cronjob.yaml` runs it (user, read-only root, capabilities,
//! environment, the ConfigMap and the emptyDir), with AWS credentials only the way EKS gives
//! them: IRSA's web identity token exchanged at STS, or Pod Identity's credentials endpoint.

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::support::{api_calls, Bed, Run, ECR};

const TAG: &str = "ecrcp:e2e";
/// Where the test mounts the bed's CA bundle (the image trusts the public CAs only).
const BED_CA: &str = "/etc/ecrcp-bed/ca-bundle.crt";
/// Variables that would hand the container credentials other than the ones under test.
const OTHER_CREDENTIALS: [&str; 5] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
];

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn bed_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("ECRCP_TESTBED").expect("inside the bed"))
}

/// Builds the image once per bed (the bed's docker goes with it; the tests of this file run
/// in processes of their own, at once, hence flock). From the test's own ecrcp with its
/// debug info stripped, since a release build (fat LTO) took 5 minutes on this machine;
/// `ECRCP_TEST_IMAGE_BINARY=target/release/ecrcp` builds it from another binary.
fn image() -> &'static str {
    let root = bed_dir();
    let stripped = root.join("ecrcp-for-image");
    let script = format!(
        "set -e; [ -e '{built}' ] && exit 0; binary=${{ECRCP_TEST_IMAGE_BINARY:-}}; \
         if [ -z \"$binary\" ]; then objcopy --strip-debug '{debug}' '{stripped}'; binary='{stripped}'; fi; \
         CARGO_TARGET_DIR='{target}' bash packaging/container --binary \"$binary\" --tag {TAG}; \
         touch '{built}'",
        built = root.join("image.built").display(),
        debug = env!("CARGO_BIN_EXE_ecrcp"),
        stripped = stripped.display(),
        target = root.join("image-target").display(),
    );
    let output = Command::new("flock")
        .arg(root.join("image.lock"))
        .args(["bash", "-c", &script])
        .current_dir(repo_root())
        .output()
        .expect("flock runs");
    assert!(
        output.status.success(),
        "packaging/container failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    TAG
}

/// A file of deploy/, YAML read as JSON (the bed's Python has PyYAML).
fn manifest(path: &str) -> serde_json::Value {
    let python = std::env::var("ECRCP_TESTBED_PYTHON").unwrap_or_else(|_| "python3".into());
    let output = Command::new(python)
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(repo_root().join("deploy").join(path))
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON")
}

fn text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

/// The CronJob's pod as `docker run` options and the container's args.
struct Pod {
    options: Vec<String>,
    args: Vec<String>,
}

impl Pod {
    /// What the kubelet would do with deploy/kubernetes/cronjob.yaml: its user and group
    /// (and fsGroup), read-only root, no privilege escalation, dropped capabilities, its
    /// memory limit, its environment, its ConfigMap (holding `config`, read-only) and its
    /// emptyDir (a fresh directory anyone may write, as the kubelet makes it). Plus what
    /// the bed needs: its network (names, registries, moto's endpoint) and its CA.
    fn from_cronjob(bed: &Bed, config: &str) -> Pod {
        Pod::from_manifest(bed, "kubernetes/cronjob.yaml", "pod", config)
    }

    /// [`Pod::from_cronjob`] for the CronJob in `path`, its volumes this test's `name`d
    /// directories (each pod of an Indexed Job has its own emptyDir).
    fn from_manifest(bed: &Bed, path: &str, name: &str, config: &str) -> Pod {
        let cron = manifest(path);
        let pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        assert!(container.get("command").is_none(), "the image's ENTRYPOINT runs");
        let mut options: Vec<String> = vec!["--network".into(), "host".into()];
        // a flag with an empty value is a switch (`--read-only`)
        let mut option = |name: &str, value: String| {
            options.push(name.to_owned());
            if !value.is_empty() {
                options.push(value);
            }
        };

        let pod_security = &pod["securityContext"];
        let user = text(&pod_security["runAsUser"]);
        assert_eq!(pod_security["runAsNonRoot"], true);
        assert_ne!(user, "0", "runAsNonRoot refuses uid 0");
        option("--user", format!("{user}:{}", text(&pod_security["runAsGroup"])));
        if let Some(group) = pod_security.get("fsGroup") {
            option("--group-add", text(group));
        }
        let security = &container["securityContext"];
        assert_eq!(security["readOnlyRootFilesystem"], true);
        option("--read-only", String::new());
        assert_eq!(security["allowPrivilegeEscalation"], false);
        option("--security-opt", "no-new-privileges=true".into());
        for capability in security["capabilities"]["drop"].as_array().into_iter().flatten() {
            option("--cap-drop", text(capability));
        }
        if let Some(memory) = container["resources"]["limits"]["memory"].as_str() {
            let mebibytes = memory.strip_suffix("Mi").expect("a limit in Mi");
            option("--memory", format!("{mebibytes}m"));
        }
        for variable in container["env"].as_array().into_iter().flatten() {
            option(
                "-e",
                format!("{}={}", text(&variable["name"]), text(&variable["value"])),
            );
        }

        let volumes = pod["volumes"].as_array().unwrap();
        for mount in container["volumeMounts"].as_array().unwrap() {
            let volume_name = text(&mount["name"]);
            let volume = volumes
                .iter()
                .find(|volume| volume["name"] == volume_name.as_str())
                .unwrap();
            let host = bed.scratch().join(format!("{name}-{volume_name}"));
            std::fs::create_dir_all(&host).unwrap();
            if volume.get("configMap").is_some() {
                let configmap = manifest("kubernetes/configmap.yaml");
                assert_eq!(volume["configMap"]["name"], configmap["metadata"]["name"]);
                for key in configmap["data"].as_object().unwrap().keys() {
                    std::fs::write(host.join(key), config).unwrap();
                }
                chmod(&host, 0o755);
            } else {
                assert!(volume.get("emptyDir").is_some(), "volume {volume_name}: {volume}");
                chmod(&host, 0o777);
            }
            let read_only = if mount["readOnly"] == true { ":ro" } else { "" };
            option(
                "-v",
                format!("{}:{}{read_only}", host.display(), text(&mount["mountPath"])),
            );
        }

        let ca = std::env::var("SSL_CERT_FILE").expect("the bed exports SSL_CERT_FILE");
        option("-v", format!("{ca}:{BED_CA}:ro"));
        option("-e", format!("SSL_CERT_FILE={BED_CA}"));
        let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("the bed exports AWS_ENDPOINT_URL");
        option("-e", format!("AWS_ENDPOINT_URL={endpoint}"));

        let args = container["args"].as_array().unwrap().iter().map(text).collect();
        Pod { options, args }
    }

    /// `docker run` of the pod's container, with `more` options (its credentials) before
    /// the image.
    fn command(&self, image: &str, more: &[String]) -> Command {
        let mut argv: Vec<&str> = vec!["run", "--rm"];
        argv.extend(self.options.iter().map(String::as_str));
        argv.extend(more.iter().map(String::as_str));
        for variable in OTHER_CREDENTIALS {
            assert!(
                !argv.iter().any(|arg| arg.starts_with(variable)),
                "{variable} reaches the container: {argv:?}"
            );
        }
        argv.push(image);
        argv.extend(self.args.iter().map(String::as_str));
        let mut docker = Command::new("docker");
        docker.args(&argv).stdin(Stdio::null());
        docker
    }

    fn run(&self, image: &str, more: &[String]) -> Run {
        Run::from(self.command(image, more).output().expect("docker runs"))
    }
}

/// A small image upstream and a config that mirrors it into this test's prefix of ECR;
/// returns the config, the repository it lands in, and its digest.
fn small_image(bed: &Bed, name: &str) -> (String, String, String) {
    let upstream = bed.unique(&format!("e2e/{name}"));
    let digest = bed.push_upstream(&upstream, "1", name);
    let prefix = bed.unique("image");
    let config = format!(
        "version = 1\n[defaults]\ndestination = \"{ECR}/{prefix}/\"\n\n[[image]]\nsource = \"{upstream}:1\"\n"
    );
    (config, format!("{prefix}/{upstream}"), digest)
}

/// The access keys the ECR API's front has seen calls signed with (or repositories named).
fn api_keys() -> Vec<String> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let output = Command::new("curl")
        .args(["-sSf", &format!("{endpoint}/_testbed/stats")])
        .output()
        .expect("curl runs");
    let stats: serde_json::Value = serde_json::from_slice(&output.stdout).expect("stats JSON");
    stats["repositories"]
        .as_object()
        .map(|keys| keys.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
#[ignore = "needs the test bed"]
fn the_image_runs_as_its_non_root_user_and_starts() {
    let image = image();
    let output = Command::new("docker")
        .args(["image", "inspect", "--format", "{{json .Config}}", image])
        .output()
        .expect("docker runs");
    let config: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let cron = manifest("kubernetes/cronjob.yaml");
    let pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let user = format!(
        "{}:{}",
        text(&pod["securityContext"]["runAsUser"]),
        text(&pod["securityContext"]["runAsGroup"])
    );
    assert_eq!(config["User"], user.as_str(), "{config}");
    assert_eq!(config["Entrypoint"], serde_json::json!(["/usr/bin/ecrcp"]));
    assert_eq!(
        config["Cmd"], pod["containers"][0]["args"],
        "the manifest's args are the image's default"
    );
    assert_eq!(
        config["Labels"]["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    let run = Run::from(
        Command::new("docker")
            .args(["run", "--rm", "--read-only", image, "--version"])
            .output()
            .expect("docker runs"),
    );
    run.assert_code(0);
    assert_eq!(run.stdout.trim(), format!("ecrcp {}", env!("CARGO_PKG_VERSION")));
}

#[test]
#[ignore = "needs the test bed"]
fn the_cronjob_mirrors_with_irsa_web_identity_credentials() {
    let bed = Bed::get("image-irsa");
    let image = image();
    let (config, repository, digest) = small_image(&bed, "irsa");
    let pod = Pod::from_cronjob(&bed, &config);

    // What EKS's pod identity webhook adds for the annotated service account: the role,
    // and a projected service account token (a JWT; moto's STS takes it as issued).
    let account = manifest("kubernetes/serviceaccount.yaml");
    let role = text(&account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]);
    let tokens = bed.scratch().join("irsa");
    std::fs::create_dir_all(&tokens).unwrap();
    std::fs::write(tokens.join("token"), jwt("system:serviceaccount:ecrcp:ecrcp")).unwrap();
    chmod(&tokens.join("token"), 0o644);
    let mount = "/var/run/secrets/eks.amazonaws.com/serviceaccount";
    let before = api_keys();
    let run = pod.run(
        image,
        &[
            "-v".into(),
            format!("{}:{mount}:ro", tokens.display()),
            "-e".into(),
            format!("AWS_ROLE_ARN={role}"),
            "-e".into(),
            format!("AWS_WEB_IDENTITY_TOKEN_FILE={mount}/token"),
            "-e".into(),
            "AWS_STS_REGIONAL_ENDPOINTS=regional".into(),
        ],
    );
    run.assert_code(0);
    assert_eq!(
        bed.digest(ECR, &repository, "1").as_deref(),
        Some(digest.as_str())
    );
    // ECR's login was signed with a key that only STS handed out (moto's start ASIA)
    let issued: Vec<String> = api_keys()
        .into_iter()
        .filter(|key| key.starts_with("ASIA") && !key.starts_with("ASIAPOD") && !before.contains(key))
        .collect();
    assert!(
        issued
            .iter()
            .any(|key| api_calls(key).contains_key("GetAuthorizationToken")),
        "no GetAuthorizationToken signed with STS's credentials; new keys: {issued:?}\n{}",
        run.stderr
    );
}

#[test]
#[ignore = "needs the test bed"]
fn the_cronjob_mirrors_with_eks_pod_identity_credentials() {
    let bed = Bed::get("image-pod-identity");
    let image = image();
    let (config, repository, digest) = small_image(&bed, "pod-identity");
    let pod = Pod::from_cronjob(&bed, &config);

    let key = format!("ASIAPODID{}", std::process::id());
    let (agent, credentials) = pod_identity(&bed, &key);
    assert_eq!(
        agent.get("/v1/credentials", "not the token"),
        401,
        "the agent checks the token"
    );
    let run = pod.run(image, &credentials);
    run.assert_code(0);
    assert_eq!(
        bed.digest(ECR, &repository, "1").as_deref(),
        Some(digest.as_str())
    );
    let stats = agent.stats();
    assert!(stats["served"].as_u64() >= Some(1), "{stats}\n{}", run.stderr);
    assert_eq!(stats["refused"], 1, "only the test's own wrong token: {stats}");
    assert!(
        api_calls(&key).contains_key("GetAuthorizationToken"),
        "ECR's login not signed with the agent's credentials:\n{}",
        run.stderr
    );
}

#[test]
#[ignore = "needs the test bed"]
fn the_sharded_indexed_job_copies_every_image_once_across_its_pods() {
    let bed = Bed::get("image-shards");
    let image = image();
    let upstream = bed.unique("e2e/image-shards");
    let prefix = bed.unique("image");
    let mut config = format!("version = 1\n[defaults]\ndestination = \"{ECR}/{prefix}/\"\n");
    let digests: Vec<String> = (1..=6)
        .map(|n| {
            writeln!(config, "\n[[image]]\nsource = \"{upstream}:{n}\"").unwrap();
            bed.push_upstream(&upstream, &n.to_string(), &format!("image shards {n}"))
        })
        .collect();
    let job = manifest("kubernetes/sharded-cronjob.yaml");
    let completions = job["spec"]["jobTemplate"]["spec"]["completions"]
        .as_u64()
        .expect("completions");
    let key = format!("ASIAPODSHARDS{}", std::process::id());
    let (_agent, credentials) = pod_identity(&bed, &key);

    // The Job's pods at once, each with the index Kubernetes gives it and its own emptyDir.
    let pods: Vec<Child> = (0..completions)
        .map(|index| {
            let pod = Pod::from_manifest(
                &bed,
                "kubernetes/sharded-cronjob.yaml",
                &format!("pod-{index}"),
                &config,
            );
            let mut more = credentials.clone();
            more.extend(["-e".into(), format!("JOB_COMPLETION_INDEX={index}")]);
            pod.command(image, &more)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("docker runs")
        })
        .collect();
    let mut copied = std::collections::BTreeMap::<String, usize>::new();
    for child in pods {
        let run = Run::from(child.wait_with_output().expect("docker ends"));
        run.assert_code(0);
        for event in run.events("image synced") {
            assert_eq!(event["outcome"], "copied", "{}", run.stderr);
            *copied.entry(text(&event["destination"])).or_default() += 1;
        }
    }
    assert_eq!(copied.len(), 6, "every image copied by some pod: {copied:?}");
    assert!(copied.values().all(|&times| times == 1), "each once: {copied:?}");
    for (n, digest) in (1..=6).zip(&digests) {
        assert_eq!(
            bed.digest(ECR, &format!("{prefix}/{upstream}"), &n.to_string())
                .as_deref(),
            Some(digest.as_str())
        );
    }
}

/// What the Pod Identity agent and its webhook give a pod: a credentials endpoint (serving
/// `key`) and a service account token it checks on every request; the agent, and the
/// options that hand both to the container.
fn pod_identity(bed: &Bed, key: &str) -> (Agent, Vec<String>) {
    let tokens = bed.scratch().join("pod-identity");
    std::fs::create_dir_all(&tokens).unwrap();
    let token = tokens.join("eks-pod-identity-token");
    std::fs::write(&token, jwt("system:serviceaccount:ecrcp:ecrcp")).unwrap();
    chmod(&token, 0o644);
    let agent = Agent::start(&token, key);
    let mount = "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount";
    let options = vec![
        "-v".into(),
        format!("{}:{mount}:ro", tokens.display()),
        "-e".into(),
        format!(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI=http://{}/v1/credentials",
            agent.address
        ),
        "-e".into(),
        format!("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE={mount}/eks-pod-identity-token"),
    ];
    (agent, options)
}

/// A JWT as the kubelet projects one (header, claims, a signature nobody here checks).
fn jwt(subject: &str) -> String {
    use base64::Engine as _;
    let encode =
        |doc: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(doc.to_string());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    format!(
        "{}.{}.{}",
        encode(serde_json::json!({"alg": "RS256", "kid": "bed"})),
        encode(serde_json::json!({
            "iss": "https://oidc.eks.us-east-1.amazonaws.com/id/ECRCPBED",
            "sub": subject,
            "aud": ["sts.amazonaws.com"],
            "iat": now,
            "exp": now + 3600,
        })),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b"not checked by the bed")
    )
}

/// tests/testbed/pod_identity.py on a free loopback port, stopped when dropped.
struct Agent {
    child: Child,
    address: String,
}

impl Agent {
    fn start(token_file: &Path, key: &str) -> Agent {
        let python = std::env::var("ECRCP_TESTBED_PYTHON").unwrap_or_else(|_| "python3".into());
        let mut child = Command::new(python)
            .arg(repo_root().join("tests/testbed/pod_identity.py"))
            .args(["--listen", "127.0.0.1:0", "--access-key-id", key, "--token-file"])
            .arg(token_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("pod_identity.py starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("pod_identity.py said {line:?}"))
            .to_owned();
        Agent { child, address }
    }

    /// The status of GET PATH with `Authorization: authorization`.
    fn get(&self, path: &str, authorization: &str) -> u16 {
        let output = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
            .arg(format!("Authorization: {authorization}"))
            .arg(format!("http://{}{path}", self.address))
            .output()
            .expect("curl runs");
        String::from_utf8_lossy(&output.stdout).parse().unwrap()
    }

    fn stats(&self) -> serde_json::Value {
        let output = Command::new("curl")
            .args(["-sSf", &format!("http://{}/_testbed/stats", self.address)])
            .output()
            .expect("curl runs");
        serde_json::from_slice(&output.stdout).expect("stats JSON")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
