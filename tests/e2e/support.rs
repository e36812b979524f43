//! The test bed as tests see it: run the real `ecrcp` binary, push upstream images, and read
//! registries, moto and the registries' access logs with tools independent of ecrcp.

// Every helper is a method of the bed, whether or not it needs this test's scratch state.
#![allow(clippy::unused_self)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

pub const ECR: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
pub const ECR_PASSWORD: &str = "123456789012-auth-token";
pub const HUB: &str = "registry-1.docker.io";
pub const HUB_ADMIN: &str = "hubadmin:hubadmin-secret";
pub const PLAIN: &str = "registry.example.test";
pub const PLAIN_USER: &str = "alice:alice-secret";
/// A second AWS account's ECR registry, and the password moto hands out for it.
pub const ECR2: &str = "222222222222.dkr.ecr.us-east-1.amazonaws.com";
pub const ECR2_PASSWORD: &str = "222222222222-auth-token";

/// One test's view of the bed: its own scratch directory, ledger and docker-argv log.
pub struct Bed {
    root: PathBuf,
    scratch: PathBuf,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Bed {
    /// The bed this process runs in; panics with the way to start it when there is none.
    pub fn get(test: &str) -> Bed {
        let root = std::env::var_os("ECRCP_TESTBED")
            .map(PathBuf::from)
            .expect("end-to-end tests run inside the test bed: bash tests/testbed/run cargo nextest run --run-ignored all");
        let unique = format!(
            "{test}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let scratch = root.join("e2e").join(unique);
        std::fs::create_dir_all(scratch.join("bin")).unwrap();
        let bed = Bed { root, scratch };
        bed.install_docker_recorder();
        bed
    }

    /// A name unique to this test, for repositories that no other test touches.
    pub fn unique(&self, prefix: &str) -> String {
        let name = self
            .scratch
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace('_', "-");
        format!("{prefix}-{name}")
    }

    /// A `docker` in front of the real one that records every argv, one per line.
    /// `ECRCP_TEST_REFUSE_PUSH=MESSAGE` makes it refuse every push with MESSAGE, as a
    /// registry with immutable tags does; everything else reaches the real docker.
    /// `ECRCP_TEST_DELAY=TEXT=SECONDS[,TEXT=SECONDS...]` waits before any command whose argv
    /// contains TEXT; `ECRCP_TEST_REFUSE_PUSH_OF=TEXT` refuses the pushes whose argv contains
    /// TEXT.
    fn install_docker_recorder(&self) {
        let real = which("docker");
        let script = format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\n\
             if [ \"$1\" = push ] && [ -n \"$ECRCP_TEST_REFUSE_PUSH\" ]; then\n\
             \x20 echo \"$ECRCP_TEST_REFUSE_PUSH\" >&2; exit 1\nfi\n\
             argv=\"$*\"; IFS=,\nfor rule in $ECRCP_TEST_DELAY; do case \"$argv\" in *\"${{rule%=*}}\"*)\n\
             \x20 sleep \"${{rule##*=}}\";; esac; done\nunset IFS\n\
             if [ \"$1\" = push ] && [ -n \"$ECRCP_TEST_REFUSE_PUSH_OF\" ]; then case \"$*\" in *\"$ECRCP_TEST_REFUSE_PUSH_OF\"*)\n\
             \x20 echo 'unknown: push refused by the test' >&2; exit 1;; esac; fi\n\
             exec '{}' \"$@\"\n",
            self.docker_log().display(),
            real.display()
        );
        write_executable(&self.scratch.join("bin/docker"), &script);
    }

    pub fn docker_log(&self) -> PathBuf {
        self.scratch.join("docker-argv.log")
    }

    /// Every docker argv ecrcp ran so far in this test.
    pub fn docker_calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.docker_log())
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    pub fn docker_calls_of(&self, subcommand: &str) -> usize {
        self.docker_calls()
            .iter()
            .filter(|argv| argv.split_whitespace().next() == Some(subcommand))
            .count()
    }

    /// The ecrcp binary with the bed's environment, this test's ledger and docker recorder.
    pub fn ecrcp(&self) -> Command {
        self.in_this_test(Command::new(env!("CARGO_BIN_EXE_ecrcp")))
    }

    /// `command` with this test's ledger, docker recorder and docker config.
    fn in_this_test(&self, mut command: Command) -> Command {
        command
            .env("ECRCP_STATE_DIR", self.scratch.join("state"))
            .env("ECRCP_DOCKER", self.scratch.join("bin/docker"))
            .env("DOCKER_CONFIG", self.docker_config())
            .stdin(Stdio::null());
        command
    }

    /// The real docker CLI, with ecrcp installed as its `docker-ecrcp` plugin in this
    /// test's docker config, and the same ledger and recorder as [`Bed::ecrcp`].
    pub fn docker_cli(&self) -> Command {
        let plugins = self.docker_config().join("cli-plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        let link = plugins.join("docker-ecrcp");
        if !link.exists() {
            std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_ecrcp"), &link).unwrap();
        }
        self.in_this_test(Command::new("docker"))
    }

    /// Runs `docker ARGS` with the plugin installed.
    pub fn docker(&self, args: &[&str]) -> Run {
        Run::from(self.docker_cli().args(args).output().expect("docker runs"))
    }

    /// Writes a sync config into this test's scratch directory.
    pub fn sync_config(&self, text: &str) -> PathBuf {
        let path = self.scratch.join("images.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `ecrcp sync --log-format json --config CONFIG`, to add arguments to and run.
    pub fn sync_command(&self, config: &Path) -> Command {
        let mut command = self.ecrcp();
        command.args([
            "sync",
            "--log-format",
            "json",
            "--config",
            config.to_str().unwrap(),
        ]);
        command
    }

    /// Runs `ecrcp sync --log-format json --config CONFIG ARGS` and returns what it did.
    pub fn sync(&self, config: &Path, args: &[&str]) -> Run {
        Run::from(self.sync_command(config).args(args).output().expect("ecrcp runs"))
    }

    /// Sets the fake Docker Hub's pull allowance (`limit`, `remaining`, `enforce`).
    pub fn hub_rate_limit(&self, settings: &serde_json::Value) {
        hub_knob("ratelimit", settings);
    }

    /// Makes an upstream repository private: anonymous callers get no access to it, as on
    /// Docker Hub, and only a login can read it.
    pub fn hub_private(&self, repository: &str) {
        hub_knob("private", &serde_json::json!({ "repository": repository }));
    }

    /// Runs ecrcp with `args` and returns what it did.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.ecrcp().args(args).output().expect("ecrcp runs"))
    }

    pub fn log(&self, registry: &str) -> String {
        std::fs::read_to_string(self.root.join("logs").join(format!("{registry}.log"))).unwrap_or_default()
    }

    /// Requests in a registry's access log whose request line contains `needle`.
    pub fn requests(&self, registry: &str, method: &str, needle: &str) -> usize {
        let prefix = format!("\"{method} ");
        self.log(registry)
            .lines()
            .filter(|line| line.contains(&prefix) && line.contains(needle))
            .count()
    }

    /// Like [`Bed::requests`], counting only those the registry answered with `status`.
    pub fn answered(&self, registry: &str, method: &str, needle: &str, status: u16) -> usize {
        let prefix = format!("\"{method} ");
        let answer = format!("\" {status} ");
        self.log(registry)
            .lines()
            .filter(|line| line.contains(&prefix) && line.contains(needle) && line.contains(&answer))
            .count()
    }

    /// Pushes an image to the fake Docker Hub (as its admin); returns its digest.
    pub fn push_upstream(&self, repo: &str, tag: &str, seed: &str) -> String {
        self.push_upstream_sized(repo, tag, seed, 0)
    }

    /// Like [`Bed::push_upstream`], with `bytes` of incompressible filler in the layer.
    pub fn push_upstream_sized(&self, repo: &str, tag: &str, seed: &str, bytes: usize) -> String {
        self.push_sized(HUB, HUB_ADMIN, repo, tag, seed, bytes)
    }

    /// The digest a registry serves for `repo:reference`, by HEAD, or None.
    pub fn digest(&self, registry: &str, repo: &str, reference: &str) -> Option<String> {
        let output = self.image_py_output(&read_args("digest", registry, repo, reference));
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// The manifest a registry serves, parsed.
    pub fn manifest(&self, registry: &str, repo: &str, reference: &str) -> serde_json::Value {
        let output = self.image_py_output(&read_args("manifest", registry, repo, reference));
        assert!(
            output.status.success(),
            "manifest {registry}/{repo}:{reference}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("manifest is JSON")
    }

    /// The config digest (image ID) of `repo:reference` for linux/amd64.
    pub fn image_id(&self, registry: &str, repo: &str, reference: &str) -> String {
        let manifest = self.manifest(registry, repo, reference);
        if let Some(children) = manifest["manifests"].as_array() {
            let child = children
                .iter()
                .find(|child| child["platform"]["architecture"] == "amd64")
                .expect("an amd64 child");
            return self.image_id(registry, repo, child["digest"].as_str().unwrap());
        }
        manifest["config"]["digest"]
            .as_str()
            .expect("a config digest")
            .to_owned()
    }

    pub fn image_py(&self, args: &[&str]) -> String {
        let output = self.image_py_output(args);
        assert!(
            output.status.success(),
            "image.py {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    pub fn image_py_output(&self, args: &[&str]) -> Output {
        let python = std::env::var("ECRCP_TESTBED_PYTHON").unwrap_or_else(|_| "python3".into());
        let script = std::env::var("ECRCP_TESTBED_IMAGE_PY").expect("the bed exports ECRCP_TESTBED_IMAGE_PY");
        Command::new(python)
            .arg(script)
            .args(args)
            .output()
            .expect("image.py runs")
    }

    /// Calls the ECR API emulator directly (unsigned JSON, which moto accepts).
    pub fn ecr_api(&self, operation: &str, body: &serde_json::Value) -> serde_json::Value {
        let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("the bed exports AWS_ENDPOINT_URL");
        let output = Command::new("curl")
            .args(["-sS", "-X", "POST", &endpoint])
            .args(["-H", &format!("X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.{operation}")])
            .args(["-H", "Content-Type: application/x-amz-json-1.1"])
            .args([
                "-H",
                "Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ecr/aws4_request, SignedHeaders=host, Signature=0",
            ])
            .args(["--data", &body.to_string()])
            .output()
            .expect("curl runs");
        serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// The ECR repository as moto describes it, or None.
    pub fn repository(&self, name: &str) -> Option<serde_json::Value> {
        let answer = self.ecr_api(
            "DescribeRepositories",
            &serde_json::json!({"repositoryNames": [name]}),
        );
        answer["repositories"]
            .as_array()
            .and_then(|list| list.first().cloned())
    }

    /// This test's own docker config, so that one test's logins do not help another.
    pub fn docker_config(&self) -> PathBuf {
        self.scratch.join("docker-config")
    }

    /// Logs this test's docker CLI in to a registry (as a user would have done).
    pub fn docker_login(&self, registry: &str, user_pass: &str) {
        let (user, pass) = user_pass.split_once(':').unwrap();
        let mut child = Command::new("docker")
            .env("DOCKER_CONFIG", self.docker_config())
            .args(["login", "--username", user, "--password-stdin", registry])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(pass.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success(), "docker login {registry}");
    }

    pub fn scratch(&self) -> &Path {
        &self.scratch
    }

    /// The ECR repository `name` in `account`'s registry as moto describes it, or None.
    pub fn repository_in(&self, account: &str, name: &str) -> Option<serde_json::Value> {
        let answer = self.ecr_api(
            "DescribeRepositories",
            &serde_json::json!({"registryId": account, "repositoryNames": [name]}),
        );
        answer["repositories"]
            .as_array()
            .and_then(|list| list.first().cloned())
    }

    /// Pushes a one-platform image into `registry` as `user`; returns its digest.
    pub fn push_image(&self, registry: &str, user: &str, repo: &str, tag: &str, seed: &str) -> String {
        self.push_sized(registry, user, repo, tag, seed, 0)
    }

    fn push_sized(
        &self,
        registry: &str,
        user: &str,
        repo: &str,
        tag: &str,
        seed: &str,
        bytes: usize,
    ) -> String {
        let size = bytes.to_string();
        self.image_py(&[
            "push",
            "--layer-size",
            &size,
            "--registry",
            registry,
            "--repo",
            repo,
            "--tag",
            tag,
            "--seed",
            seed,
            "--user",
            user,
        ])
    }
}

/// `image.py digest|manifest` arguments, with the bed's login for `registry`.
fn read_args<'a>(verb: &'a str, registry: &'a str, repo: &'a str, reference: &'a str) -> Vec<&'a str> {
    let mut args = vec![verb, "--registry", registry, "--repo", repo, "--ref", reference];
    if let Some(user) = user_for(registry) {
        args.extend(["--user", user]);
    }
    args
}

fn user_for(registry: &str) -> Option<&'static str> {
    match registry {
        ECR => Some("AWS:123456789012-auth-token"),
        ECR2 => Some("AWS:222222222222-auth-token"),
        PLAIN => Some(PLAIN_USER),
        _ => None,
    }
}

fn which(program: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{program} is not on PATH"))
}

/// What one ecrcp run did.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    /// The JSON log events (`--log-format json`) whose message is `message`.
    pub fn events(&self, message: &str) -> Vec<serde_json::Value> {
        self.stderr
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|event| event["message"] == message)
            .collect()
    }

    /// The `outcome` each image got, by image label.
    pub fn outcomes(&self) -> std::collections::BTreeMap<String, String> {
        [
            "image synced",
            "image deferred",
            "image failed",
            "image not started: the run is stopping",
        ]
        .iter()
        .flat_map(|message| self.events(message))
        .map(|event| {
            (
                event["image"].as_str().unwrap_or_default().to_owned(),
                event["outcome"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
    }

    /// The `sync finished` summary event.
    pub fn summary(&self) -> serde_json::Value {
        self.events("sync finished")
            .pop()
            .unwrap_or_else(|| panic!("no summary in:\n{}", self.stderr))
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "exit status; stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Posts `settings` to one of the fake Docker Hub's test knobs, `/_testbed/KNOB`
/// (`ratelimit`, `private`, `token`; tests/testbed/hub_front.py).
/// Whether the bed's docker runs the containerd image store (`ECRCP_TESTBED_DOCKER=containerd`:
/// Debian 13's dockerd 26.1), where a push sends the pulled manifest byte for byte, so a copy
/// of a one-platform image serves the source's own digest.
pub fn containerd_store() -> bool {
    std::env::var("ECRCP_TESTBED_DOCKER").as_deref() == Ok("containerd")
}

pub fn hub_knob(knob: &str, settings: &serde_json::Value) {
    let status = Command::new("curl")
        .args(["-sSf", "-o", "/dev/null", "-X", "POST", "--data"])
        .arg(settings.to_string())
        .arg(format!("https://{HUB}/_testbed/{knob}"))
        .status()
        .expect("curl runs");
    assert!(status.success(), "setting the hub's {knob} knob to {settings}");
}

/// Resets the fake Docker Hub's allowance when dropped, even when the test fails.
pub struct RestoreRateLimit<'a>(pub &'a Bed);

impl Drop for RestoreRateLimit<'_> {
    fn drop(&mut self) {
        self.0
            .hub_rate_limit(&serde_json::json!({"limit": 5000, "remaining": 5000, "enforce": false}));
    }
}

/// Writes a script (a stand-in for docker, a credential helper) and makes it executable.
pub fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

// Registry engine helpers (tests/e2e/engine.rs).
impl Bed {
    /// Pushes an image for each of `platforms` (`linux/amd64,linux/arm64`) as an index in
    /// `format` (`docker` or `oci`) into `registry` as `user`; returns the index digest.
    #[allow(clippy::too_many_arguments)]
    pub fn push_index(
        &self,
        registry: &str,
        user: &str,
        repo: &str,
        tag: &str,
        seed: &str,
        platforms: &str,
        format: &str,
        bytes: usize,
    ) -> String {
        let size = bytes.to_string();
        self.image_py(&[
            "push",
            "--index",
            "--platforms",
            platforms,
            "--format",
            format,
            "--layer-size",
            &size,
            "--registry",
            registry,
            "--repo",
            repo,
            "--tag",
            tag,
            "--seed",
            seed,
            "--user",
            user,
        ])
    }

    /// The file a registry of the bed (`hub`, `ecr`, ...) stores the blob `digest` in.
    pub fn blob_file(&self, registry: &str, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        self.root
            .join(registry)
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

// ---- the registries' fronts (tests/testbed/front.py): faults and counters, by repository ----

/// Fault rules on one repository at a registry's front (`HUB` or `ECR`), lifted when
/// dropped, even when the test fails. Rules are front.py's: `{"method", "path", "times",
/// "status" | "drop" | "reset_after" | "corrupt", "retry_after", "delay", ...}`.
pub struct Faults {
    registry: &'static str,
    repository: String,
}

impl Faults {
    /// Replaces the rules of `repository` at `registry`'s front.
    pub fn set(registry: &'static str, repository: &str, rules: &serde_json::Value) -> Faults {
        let doc = serde_json::json!({ "repository": repository, "rules": rules });
        front_call(registry, "POST", "faults", Some(&doc));
        Faults {
            registry,
            repository: repository.to_owned(),
        }
    }

    /// How many times each rule fired so far, in the order they were given.
    pub fn fired(&self) -> Vec<u64> {
        let rules = front_call(
            self.registry,
            "GET",
            &format!("faults?repo={}", self.repository),
            None,
        );
        rules[&self.repository]
            .as_array()
            .map(|rules| rules.iter().filter_map(|rule| rule["fired"].as_u64()).collect())
            .unwrap_or_default()
    }
}

impl Drop for Faults {
    fn drop(&mut self) {
        let doc = serde_json::json!({ "repository": self.repository, "rules": [] });
        front_call(self.registry, "POST", "faults", Some(&doc));
    }
}

/// What `registry`'s front counted for `repository`: `requests`, `bytes_in` (request bodies,
/// what was sent to the registry), `bytes_out`, `by_method`, `by_status`, and `log`, one
/// `{method, path, status, bytes_in, bytes_out, fault, at, ms}` per request.
pub fn front_stats(registry: &str, repository: &str) -> serde_json::Value {
    front_call(registry, "GET", &format!("stats?repo={repository}"), None)
}

/// The requests in a front's log for `repository` whose method is `method` and whose path
/// contains `needle`. Colons count unescaped: an upload's `?digest=sha256%3A...` matches
/// `sha256:...`.
pub fn front_requests(
    registry: &str,
    repository: &str,
    method: &str,
    needle: &str,
) -> Vec<serde_json::Value> {
    front_stats(registry, repository)["log"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|entry| {
            entry["method"] == method
                && entry["path"]
                    .as_str()
                    .is_some_and(|path| path.replace("%3A", ":").replace("%3a", ":").contains(needle))
        })
        .cloned()
        .collect()
}

fn front_call(
    registry: &str,
    method: &str,
    knob: &str,
    body: Option<&serde_json::Value>,
) -> serde_json::Value {
    let mut curl = Command::new("curl");
    curl.args(["-sSf", "-X", method]);
    if let Some(body) = body {
        curl.arg("--data").arg(body.to_string());
    }
    let output = curl
        .arg(format!("https://{registry}/_testbed/{knob}"))
        .output()
        .expect("curl runs");
    assert!(
        output.status.success(),
        "{method} {registry}/_testbed/{knob} {body:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the front answers JSON")
}

impl Bed {
    /// Pushes an image to the fake Docker Hub with more of image.py's options (`--layers 3`,
    /// `--platforms a,b,c`, `--layer-size 1M`); returns its digest.
    pub fn push_upstream_with(&self, repo: &str, tag: &str, seed: &str, options: &[&str]) -> String {
        let mut args = vec![
            "push",
            "--registry",
            HUB,
            "--user",
            HUB_ADMIN,
            "--repo",
            repo,
            "--tag",
            tag,
            "--seed",
            seed,
        ];
        args.extend_from_slice(options);
        self.image_py(&args)
    }
}

// ---- the ECR API's front (tests/testbed/api_front.py): faults and counters, by key ----

/// Fault rules at the ECR API's front for one key (a repository name, or the access key id
/// of calls that name none), lifted when dropped, even when the test fails. Rules are
/// front.py's plus `"operation"` and `"error"` (api_front.py's header).
pub struct ApiFaults {
    key: String,
}

impl ApiFaults {
    /// Replaces the rules of `key` at the ECR API's front.
    pub fn set(key: &str, rules: &serde_json::Value) -> ApiFaults {
        let doc = serde_json::json!({ "repository": key, "rules": rules });
        api_front_call("POST", "faults", Some(&doc));
        ApiFaults { key: key.to_owned() }
    }

    /// How many times each rule fired so far, in the order they were given.
    pub fn fired(&self) -> Vec<u64> {
        let rules = api_front_call("GET", &format!("faults?repo={}", self.key), None);
        rules[&self.key]
            .as_array()
            .map(|rules| rules.iter().filter_map(|rule| rule["fired"].as_u64()).collect())
            .unwrap_or_default()
    }
}

impl Drop for ApiFaults {
    fn drop(&mut self) {
        let doc = serde_json::json!({ "repository": self.key, "rules": [] });
        api_front_call("POST", "faults", Some(&doc));
    }
}

/// How many calls of each operation the ECR API's front saw for `key` (its `by_method`).
pub fn api_calls(key: &str) -> std::collections::BTreeMap<String, u64> {
    let stats = api_front_call("GET", &format!("stats?repo={key}"), None);
    stats["by_method"]
        .as_object()
        .map(|calls| {
            calls
                .iter()
                .map(|(operation, count)| (operation.clone(), count.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

fn api_front_call(method: &str, knob: &str, body: Option<&serde_json::Value>) -> serde_json::Value {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("the bed exports AWS_ENDPOINT_URL");
    let mut curl = Command::new("curl");
    curl.args(["-sSf", "-X", method]);
    if let Some(body) = body {
        curl.arg("--data").arg(body.to_string());
    }
    let output = curl
        .arg(format!("{endpoint}/_testbed/{knob}"))
        .output()
        .expect("curl runs");
    assert!(
        output.status.success(),
        "{method} {endpoint}/_testbed/{knob} {body:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the API front answers JSON")
}
