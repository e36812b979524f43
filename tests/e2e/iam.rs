//! `ecrcp iam-policy` against what ecrcp really does: the ECR API calls enforced by moto's
//! IAM (a user holding the printed policy copies; one missing any of its actions cannot),
//! and every registry request the ECR front saw during a sync mapped to its ECR action and
//! repository ARN, each checked to be allowed by the printed policy.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use crate::support::{front_stats, Bed, Faults, ECR};

const ECR_ARN: &str = "arn:aws:ecr:us-east-1:123456789012";

/// The ECR actions (and the repositories they act on) that a registry API request is
/// authorized as, after AWS's documentation of the permissions docker push and pull need.
/// An unknown request fails the test, so that a new kind of request is mapped here first.
fn ecr_actions(method: &str, path: &str, bytes_in: u64) -> Vec<(&'static str, String)> {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let rest = path.strip_prefix("/v2/").expect("a registry API path");
    let split = |kind: &str| {
        rest.split_once(kind)
            .map(|(repo, tail)| (repo.to_owned(), tail.to_owned()))
    };
    if let Some((repo, _)) = split("/manifests/") {
        return match method {
            "HEAD" | "GET" => vec![("ecr:BatchGetImage", repo)],
            "PUT" => vec![("ecr:PutImage", repo)],
            _ => panic!("unmapped request {method} {path}"),
        };
    }
    if let Some((repo, tail)) = split("/blobs/uploads/") {
        return match (method, tail.is_empty()) {
            ("POST", true) => {
                let mut actions = vec![("ecr:InitiateLayerUpload", repo)];
                // A mount asks for pull access to the repository it mounts from.
                if let Some(from) = query.split('&').find_map(|pair| pair.strip_prefix("from=")) {
                    let from = from.replace("%2F", "/").replace("%2f", "/");
                    actions.push(("ecr:BatchGetImage", from.clone()));
                    actions.push(("ecr:GetDownloadUrlForLayer", from));
                }
                actions
            }
            ("PATCH", false) => vec![("ecr:UploadLayerPart", repo)],
            ("PUT", false) if bytes_in > 0 => {
                vec![
                    ("ecr:UploadLayerPart", repo.clone()),
                    ("ecr:CompleteLayerUpload", repo),
                ]
            }
            ("PUT", false) => vec![("ecr:CompleteLayerUpload", repo)],
            // Giving up a session is part of the upload it opened.
            ("DELETE", false) => vec![("ecr:InitiateLayerUpload", repo)],
            _ => panic!("unmapped request {method} {path}"),
        };
    }
    if let Some((repo, _)) = split("/blobs/") {
        return match method {
            "HEAD" => vec![("ecr:BatchCheckLayerAvailability", repo)],
            "GET" => vec![("ecr:GetDownloadUrlForLayer", repo)],
            _ => panic!("unmapped request {method} {path}"),
        };
    }
    if let Some((repo, _)) = split("/tags/list").or_else(|| split("/referrers/")) {
        return vec![("ecr:ListImages", repo)];
    }
    panic!("unmapped request {method} {path}")
}

/// IAM's wildcards, written here again so that the check does not lean on ecrcp's own.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            text.starts_with(head)
                && (0..=text.len() - head.len()).any(|skip| glob(tail, &text[head.len() + skip..]))
        }
    }
}

/// Whether an Allow statement without conditions grants `action` on `resource`.
fn allows(policy: &Value, action: &str, resource: &str) -> bool {
    let list = |value: &Value| -> Vec<String> {
        match value {
            Value::String(one) => vec![one.clone()],
            Value::Array(many) => many
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    };
    policy["Statement"].as_array().unwrap().iter().any(|statement| {
        statement["Effect"] == "Allow"
            && statement.get("Condition").is_none()
            && list(&statement["Action"]).iter().any(|a| glob(a, action))
            && list(&statement["Resource"]).iter().any(|r| glob(r, resource))
    })
}

/// The (action, ARN) pairs a policy does not allow among `used`.
fn refused(policy: &Value, used: &[(String, String)]) -> Vec<(String, String)> {
    used.iter()
        .filter(|(action, arn)| !allows(policy, action, arn))
        .cloned()
        .collect()
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
#[ignore = "needs the test bed"]
fn every_registry_request_of_a_sync_is_allowed_by_the_printed_policy() {
    let bed = Bed::get("iamrec");
    let u = bed.unique("iam");
    bed.push_upstream(&format!("{u}/app"), "1", "iam-upstream");
    bed.push_image(
        ECR,
        "AWS:123456789012-auth-token",
        &format!("{u}/base"),
        "1",
        "iam-base",
    );
    // One copy at a time, so that the second registry-engine copy mounts from the first.
    let config = bed.sync_config(&format!(
        "version = 1\n[sync]\njobs = 1\n\
         [[image]]\nsource = \"{u}/app:1\"\ndestination = \"{ECR}/{u}/docker/\"\n\
         [[image]]\nsource = \"{u}/app:1\"\ndestination = \"{ECR}/{u}/reg/\"\nengine = \"registry\"\n\
         [[image]]\nsource = \"{u}/app:1\"\ndestination = \"{ECR}/{u}/reg2/\"\nengine = \"registry\"\n\
         [[image]]\nsource = \"{ECR}/{u}/base:1\"\ndestination = \"{ECR}/{u}/fromecr/\"\nengine = \"registry\"\n\
         [[image]]\nsource = \"{u}/app\"\ntag_include = \"1\"\ndestination = \"{ECR}/{u}/rule/\"\n"
    ));
    let printed = bed.run(&["iam-policy", "--config", config.to_str().unwrap()]);
    printed.assert_code(0);
    let policy: Value = serde_json::from_str(&printed.stdout).expect("the policy is JSON");
    let started = now();
    bed.sync(&config, &[]).assert_code(0);

    let repositories = [
        format!("{u}/docker/{u}/app"),
        format!("{u}/reg/{u}/app"),
        format!("{u}/reg2/{u}/app"),
        format!("{u}/fromecr/{u}/base"),
        // A tag rule's copies: the policy covers them though their tags are listed later.
        format!("{u}/rule/{u}/app"),
        format!("{u}/base"),
    ];
    let mut used = Vec::new();
    let mut mounts = 0;
    for repository in &repositories {
        let log = front_stats(ECR, repository)["log"].clone();
        for entry in log.as_array().into_iter().flatten() {
            if entry["at"].as_f64().unwrap_or(0.0) < started {
                continue; // the test's own seeding
            }
            let (method, path) = (entry["method"].as_str().unwrap(), entry["path"].as_str().unwrap());
            mounts += usize::from(method == "POST" && path.contains("mount="));
            for (action, repo) in ecr_actions(method, path, entry["bytes_in"].as_u64().unwrap_or(0)) {
                used.push((action.to_owned(), format!("{ECR_ARN}:repository/{repo}")));
            }
        }
    }
    used.sort();
    used.dedup();
    let kinds: std::collections::BTreeSet<&str> = used.iter().map(|(action, _)| action.as_str()).collect();
    for expected in [
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:CompleteLayerUpload",
        "ecr:GetDownloadUrlForLayer",
        "ecr:InitiateLayerUpload",
        "ecr:PutImage",
        "ecr:UploadLayerPart",
    ] {
        assert!(
            kinds.contains(expected),
            "the sync sent no request needing {expected}: {used:?}"
        );
    }
    assert!(mounts > 0, "no cross-repository mount was tried: {used:?}");
    assert_eq!(
        refused(&policy, &used),
        Vec::<(String, String)>::new(),
        "policy:\n{}",
        printed.stdout
    );
    // The check has teeth: without PutImage, or scoped to another prefix, it refuses.
    let mut without_put = policy.clone();
    for statement in without_put["Statement"].as_array_mut().unwrap() {
        if let Some(actions) = statement["Action"].as_array_mut() {
            actions.retain(|action| action != "ecr:PutImage");
        }
    }
    assert!(refused(&without_put, &used)
        .iter()
        .any(|(action, _)| action == "ecr:PutImage"));
    let elsewhere: Value = serde_json::from_str(
        &printed
            .stdout
            .replace(&format!("repository/{u}/"), "repository/other/"),
    )
    .unwrap();
    assert!(!refused(&elsewhere, &used).is_empty());
}

/// A moto server of this test's own, so that turning its IAM enforcement on touches no
/// other test. Stopped (by its own pid) when dropped.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start(bed: &Bed) -> Moto {
        let python = std::env::var("ECRCP_TESTBED_PYTHON").expect("the bed exports ECRCP_TESTBED_PYTHON");
        let server = std::path::Path::new(&python).with_file_name("moto_server");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(bed.scratch().join("moto.log")).unwrap();
        let child = Command::new(server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !curl_ok(&format!("{}/moto-api/", moto.endpoint)) {
            assert!(Instant::now() < deadline, "moto did not come up");
            std::thread::sleep(Duration::from_millis(200));
        }
        moto
    }

    /// From the next request on, every ECR call needs a signature and a policy allowing it
    /// (`0`); or none does again (a large number).
    fn enforce(&self, unchecked_requests: u64) {
        let status = Command::new("curl")
            .args([
                "-sSf",
                "-o",
                "/dev/null",
                "-X",
                "POST",
                "-H",
                "Content-Type: text/plain",
                "--data",
            ])
            .arg(unchecked_requests.to_string())
            .arg(format!("{}/moto-api/reset-auth", self.endpoint))
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Whether moto holds repository `name` (asked while enforcement is off).
    fn has_repository(&self, name: &str) -> bool {
        let output = Command::new("curl")
            .args(["-sS", "-X", "POST", &self.endpoint])
            .args(["-H", "X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.DescribeRepositories"])
            .args(["-H", "Content-Type: application/x-amz-json-1.1"])
            .args([
                "-H",
                "Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ecr/aws4_request, SignedHeaders=host, Signature=0",
            ])
            .args(["--data", &json!({"repositoryNames": [name]}).to_string()])
            .output()
            .unwrap();
        let answer: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        answer["repositories"]
            .as_array()
            .is_some_and(|list| !list.is_empty())
    }

    /// Creates one IAM user per policy and returns each one's access key and secret.
    fn users(&self, policies: &[(String, Value)]) -> Vec<(String, String)> {
        let python = std::env::var("ECRCP_TESTBED_PYTHON").unwrap();
        let script = "import boto3, json, sys\n\
            iam = boto3.client('iam', endpoint_url=sys.argv[1], region_name='us-east-1',\n\
                               aws_access_key_id='testing', aws_secret_access_key='testing')\n\
            keys = []\n\
            for name, policy in json.load(sys.stdin):\n\
            \x20   iam.create_user(UserName=name)\n\
            \x20   iam.put_user_policy(UserName=name, PolicyName='ecrcp', PolicyDocument=json.dumps(policy))\n\
            \x20   key = iam.create_access_key(UserName=name)['AccessKey']\n\
            \x20   keys.append([key['AccessKeyId'], key['SecretAccessKey']])\n\
            print(json.dumps(keys))\n";
        let mut child = Command::new(python)
            .args(["-c", script, &self.endpoint])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        serde_json::to_writer(child.stdin.take().unwrap(), &json!(policies)).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn curl_ok(url: &str) -> bool {
    Command::new("curl")
        .args(["-sf", "-o", "/dev/null", url])
        .status()
        .is_ok_and(|status| status.success())
}

/// `policy` without `action`, and with every ECR resource widened to `*`: moto authorizes
/// ECR calls against the resource `*` alone, so it enforces the action list, not the ARNs
/// (those are checked against real requests in the test above).
fn for_moto(policy: &Value, without: Option<&str>) -> Value {
    let mut policy = policy.clone();
    for statement in policy["Statement"].as_array_mut().unwrap() {
        let actions = statement["Action"].as_array_mut().unwrap();
        actions.retain(|action| Some(action.as_str().unwrap()) != without);
        if actions
            .iter()
            .any(|action| action.as_str().unwrap().starts_with("ecr:"))
        {
            statement["Resource"] = json!("*");
        }
    }
    policy["Statement"]
        .as_array_mut()
        .unwrap()
        .retain(|statement| !statement["Action"].as_array().unwrap().is_empty());
    policy
}

#[test]
#[ignore = "needs the test bed"]
fn moto_lets_the_printed_policy_copy_and_refuses_it_any_one_action_less() {
    let bed = Bed::get("iammoto");
    let u = bed.unique("iam");
    bed.push_upstream(&format!("{u}/app"), "1", "iam-moto");
    let lifecycle = bed.scratch().join("keep.json");
    std::fs::write(
        &lifecycle,
        r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":10},"action":{"type":"expire"}}]}"#,
    )
    .unwrap();
    let lifecycle = lifecycle.to_str().unwrap().to_owned();
    let options = ["--engine", "registry", "--lifecycle-policy", &lifecycle];
    let directory = format!("{ECR}/{u}/");
    let printed = bed.run(&[&["iam-policy"][..], &options, &[&directory]].concat());
    printed.assert_code(0);
    let policy: Value = serde_json::from_str(&printed.stdout).unwrap();
    let needed = [
        "ecr:GetAuthorizationToken",
        "ecr:DescribeRepositories",
        "ecr:CreateRepository",
        "ecr:PutLifecyclePolicy",
        "ecr:DeleteRepository",
    ];
    for action in needed {
        assert!(
            printed.stdout.contains(action),
            "{action} missing:\n{}",
            printed.stdout
        );
    }

    let moto = Moto::start(&bed);
    let mut policies = vec![("full".to_owned(), for_moto(&policy, None))];
    for action in needed {
        policies.push((
            format!("without-{}", action.trim_start_matches("ecr:")),
            for_moto(&policy, Some(action)),
        ));
    }
    let keys = moto.users(&policies);
    moto.enforce(0);
    let copy = |(key, secret): &(String, String), repository: &str| {
        let source = format!("{u}/app:1");
        let destination = format!("{ECR}/{u}/{repository}/app:1");
        let run = bed
            .ecrcp()
            .env("AWS_ENDPOINT_URL", &moto.endpoint)
            .env("AWS_ACCESS_KEY_ID", key)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .args(options)
            .args([source.as_str(), destination.as_str()])
            .output()
            .unwrap();
        crate::support::Run::from(run)
    };
    // A copy whose manifest the registry refuses: the repository it created is rolled back.
    let refusing = |repository: &str| {
        Faults::set(
            ECR,
            &format!("{u}/{repository}/app"),
            &json!([{"method": "PUT", "path": "/manifests/", "status": 400}]),
        )
    };

    copy(&keys[0], "full").assert_code(0);
    let rollback = refusing("full-rollback");
    copy(&keys[0], "full-rollback").assert_code(1);
    drop(rollback);
    for (index, action) in needed.iter().enumerate() {
        let name = action.trim_start_matches("ecr:").to_ascii_lowercase();
        let faults = (*action == "ecr:DeleteRepository").then(|| refusing(&name));
        let run = copy(&keys[index + 1], &name);
        assert_eq!(run.code, Some(1), "without {action}: {run:?}");
        let operation = action.trim_start_matches("ecr:");
        assert!(run.stderr.contains(operation), "without {action}: {}", run.stderr);
        drop(faults);
    }

    moto.enforce(1_000_000_000);
    assert!(moto.has_repository(&format!("{u}/full/app")));
    assert!(
        !moto.has_repository(&format!("{u}/full-rollback/app")),
        "the rollback needs DeleteRepository"
    );
    assert!(
        moto.has_repository(&format!("{u}/deleterepository/app")),
        "without DeleteRepository the rollback is refused"
    );
    assert!(!moto.has_repository(&format!("{u}/createrepository/app")));
}

#[test]
#[ignore = "needs the test bed"]
fn the_own_registry_is_asked_for_its_account_and_docker_ecrcp_prints_the_same() {
    let bed = Bed::get("iamown");
    let with_credentials = bed.run(&["iam-policy", "--source", "nginx:1.27", "mirror/"]);
    with_credentials.assert_code(0);
    assert!(
        with_credentials
            .stdout
            .contains("\"arn:aws:ecr:us-east-1:123456789012:repository/mirror/nginx\""),
        "{}",
        with_credentials.stdout
    );
    assert_eq!(with_credentials.stderr, "");
    let plugin = bed.docker(&["ecrcp", "iam-policy", "--source", "nginx:1.27", "mirror/"]);
    assert_eq!(plugin.code, Some(0), "{plugin:?}");
    assert_eq!(plugin.stdout, with_credentials.stdout);

    let without = crate::support::Run::from(
        bed.ecrcp()
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .args(["iam-policy", "--region", "eu-west-1", "mirror/"])
            .output()
            .unwrap(),
    );
    without.assert_code(0);
    assert!(
        without
            .stdout
            .contains("\"arn:aws:ecr:eu-west-1:*:repository/mirror/*\""),
        "{}",
        without.stdout
    );
    assert!(
        without.stderr.contains("no AWS credentials"),
        "{}",
        without.stderr
    );
    assert!(without.stderr.contains("any account ('*')"), "{}", without.stderr);
}
