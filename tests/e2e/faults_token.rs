//! Issue 11, row 3: an ECR registry that refuses the authorization token it accepted so far,
//! as ECR does once the 12-hour token expired (the front's `expire_token` knob). Each
//! engine fetches one new token (the docker engine logs docker in with it) and the copy goes
//! on from the refused step; a refusal that persists after the new token is one clear
//! error, after exactly one more token and login, with nothing tagged, and a sync goes on
//! with its other images.

use std::fmt::Write as _;

use crate::support::{front_requests, Bed, Faults, Run, ECR, HUB};

/// The statuses the front answered, in order, to `dest`'s requests of `method` on `needle`.
fn statuses(dest: &str, method: &str, needle: &str) -> Vec<String> {
    front_requests(ECR, dest, method, needle)
        .iter()
        .map(|entry| entry["status"].to_string())
        .collect()
}

/// `ecrcp --engine ENGINE SOURCE DEST` with info logs.
fn copy(bed: &Bed, engine: &str, source: &str, dest: &str) -> Run {
    copy_via(bed, engine, source, dest, None)
}

/// [`copy`], with the ECR API at `api` when given.
fn copy_via(bed: &Bed, engine: &str, source: &str, dest: &str, api: Option<&ApiFront>) -> Run {
    let mut command = bed.ecrcp();
    if let Some(api) = api {
        command.env("AWS_ENDPOINT_URL", &api.endpoint);
    }
    Run::from(
        command
            .env("ECRCP_LOG", "ecrcp=info")
            .args(["--engine", engine, source, dest])
            .output()
            .expect("ecrcp runs"),
    )
}

/// How many lines of `stderr` contain `needle`.
fn lines_with(stderr: &str, needle: &str) -> usize {
    stderr.lines().filter(|line| line.contains(needle)).count()
}

/// ecrcp's words for fetching a token because the registry refused the one it had.
const RENEWING: &str = "the registry refused the ECR authorization token; fetching a new one";

#[test]
#[ignore = "needs the test bed"]
fn docker_engine_logs_in_again_when_the_token_expires_before_the_manifest_put() {
    let bed = Bed::get("tokendockercli");
    let upstream = bed.unique("token/dsrc");
    bed.push_upstream_with(&upstream, "1", "token-dcli", &["--layers", "2"]);
    let dest = bed.unique("token/ddst");
    let faults = Faults::set(
        ECR,
        &dest,
        &serde_json::json!([{"method": "PUT", "path": "/manifests/", "expire_token": true, "times": 1}]),
    );

    let run = copy(
        &bed,
        "docker",
        &format!("{upstream}:1"),
        &format!("{ECR}/{dest}:1"),
    );

    run.assert_code(0);
    assert_eq!(faults.fired(), [1]);
    assert_eq!(
        bed.docker_calls_of("login"),
        2,
        "one login at the start, one with the new token: {:?}",
        bed.docker_calls()
    );
    assert_eq!(statuses(&dest, "PUT", "/manifests/"), ["401", "201"]);
    assert_eq!(
        bed.image_id(ECR, &dest, "1"),
        bed.image_id(HUB, &upstream, "1"),
        "the destination holds the source's image"
    );
    assert_eq!(lines_with(&run.stderr, RENEWING), 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("logging in with a new token"),
        "the log says docker logged in again:\n{}",
        run.stderr
    );
}

#[test]
#[ignore = "needs the test bed"]
fn registry_engine_renews_the_token_when_it_expires_before_the_manifest_put() {
    let bed = Bed::get("tokenregcli");
    let upstream = bed.unique("token/rsrc");
    let digest = bed.push_upstream_with(&upstream, "1", "token-rcli", &["--layers", "2"]);
    let dest = bed.unique("token/rdst");
    // Two refusals: the registry engine first answers the 401's challenge with the
    // credentials it holds, as for any registry; only their refusal too says they expired.
    let faults = Faults::set(
        ECR,
        &dest,
        &serde_json::json!([{"method": "PUT", "path": "/manifests/", "expire_token": true, "times": 2}]),
    );

    let run = copy(
        &bed,
        "registry",
        &format!("{upstream}:1"),
        &format!("{ECR}/{dest}:1"),
    );

    run.assert_code(0);
    assert_eq!(faults.fired(), [2]);
    assert_eq!(statuses(&dest, "PUT", "/manifests/"), ["401", "401", "201"]);
    assert_eq!(
        bed.digest(ECR, &dest, "1"),
        Some(digest),
        "the image landed as it is"
    );
    assert_eq!(lines_with(&run.stderr, RENEWING), 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("accepted the new ECR authorization token"),
        "{}",
        run.stderr
    );
    assert_eq!(
        bed.docker_calls_of("login"),
        0,
        "the registry engine needs no docker"
    );
}

/// The token expires under the registry engine's second blob upload (a streamed PUT that
/// cannot be sent twice): one new token, the upload starts over, the copy completes.
#[test]
#[ignore = "needs the test bed"]
fn registry_engine_renews_the_token_when_it_expires_under_a_blob_upload() {
    let bed = Bed::get("tokenregblob");
    let upstream = bed.unique("token/bsrc");
    let digest = bed.push_upstream_with(&upstream, "1", "token-rblob", &["--layers", "2"]);
    let dest = bed.unique("token/bdst");
    let faults = Faults::set(
        ECR,
        &dest,
        &serde_json::json!([{"method": "PUT", "path": "/blobs/uploads/", "expire_token": true,
                             "skip": 1, "times": 1}]),
    );
    let api = ApiFront::start(&bed, 0);

    let run = copy_via(
        &bed,
        "registry",
        &format!("{upstream}:1"),
        &format!("{ECR}/{dest}:1"),
        Some(&api),
    );

    run.assert_code(0);
    assert_eq!(faults.fired(), [1]);
    assert_eq!(
        bed.digest(ECR, &dest, "1"),
        Some(digest),
        "the image landed as it is"
    );
    assert_eq!(lines_with(&run.stderr, RENEWING), 1, "{}", run.stderr);
    assert_eq!(api.token_calls(), 2, "the first token and one new one");
    let puts = statuses(&dest, "PUT", "/blobs/uploads/");
    assert_eq!(
        puts.iter().filter(|status| *status == "401").count(),
        1,
        "{puts:?}"
    );
}

/// A repository whose every authorized manifest PUT is refused: the new token is refused
/// too. Each engine fails with one clear error after one more token, nothing tagged.
#[test]
#[ignore = "needs the test bed"]
fn a_token_refused_again_after_renewal_is_a_clear_error_with_either_engine() {
    let bed = Bed::get("tokenrefused");
    let upstream = bed.unique("token/xsrc");
    bed.push_upstream_with(&upstream, "1", "token-refused", &["--layers", "1"]);
    for engine in ["docker", "registry"] {
        let dest = bed.unique(&format!("token/x{engine}"));
        let _faults = Faults::set(
            ECR,
            &dest,
            &serde_json::json!([{"method": "PUT", "path": "/manifests/", "expire_token": true}]),
        );
        let logins_before = bed.docker_calls_of("login");
        let api = ApiFront::start(&bed, 0);

        let run = copy_via(
            &bed,
            engine,
            &format!("{upstream}:1"),
            &format!("{ECR}/{dest}:1"),
            Some(&api),
        );

        run.assert_code(1);
        assert_eq!(
            api.token_calls(),
            2,
            "{engine}: the first token and one new one reached ECR:\n{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("again right after ecrcp fetched a new"),
            "{engine}: the error says the new token was refused too:\n{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("clock") && run.stderr.contains("IAM policy"),
            "{engine}: the note says what to check:\n{}",
            run.stderr
        );
        assert_eq!(
            lines_with(&run.stderr, RENEWING),
            1,
            "{engine}: one new token, never a loop:\n{}",
            run.stderr
        );
        let manifest_puts = statuses(&dest, "PUT", "/manifests/");
        assert!(
            !manifest_puts.is_empty() && manifest_puts.iter().all(|status| status == "401"),
            "{engine}: {manifest_puts:?}"
        );
        assert!(manifest_puts.len() <= 3, "{engine}: bounded: {manifest_puts:?}");
        assert_eq!(bed.digest(ECR, &dest, "1"), None, "{engine}: nothing tagged");
        if engine == "docker" {
            assert_eq!(
                bed.docker_calls_of("login") - logins_before,
                2,
                "{engine}: the first login and one with the new token: {:?}",
                bed.docker_calls()
            );
        }
    }
}

/// In sync, with each engine: one image's token expires after its first blob upload
/// started and is renewed; another's is refused for good and fails alone; a third copies
/// untouched.
#[test]
#[ignore = "needs the test bed"]
fn sync_renews_an_expired_token_and_goes_on_with_the_other_images() {
    let bed = Bed::get("tokensync");
    let sources: Vec<String> = ["renewed", "refused", "plain"]
        .iter()
        .map(|name| {
            let repo = bed.unique(&format!("token/sync{name}"));
            bed.push_upstream_with(&repo, "1", &format!("token-sync-{name}"), &["--layers", "2"]);
            repo
        })
        .collect();
    for engine in ["docker", "registry"] {
        let prefix = bed.unique(&format!("tsync{engine}"));
        let dest = |source: &String| format!("{prefix}/{source}");
        // The docker engine gives up on a refused upload start at once; the registry
        // engine first answers the challenge with the credentials it holds (see above).
        let refusals = if engine == "docker" { 1 } else { 2 };
        let renewed = Faults::set(
            ECR,
            &dest(&sources[0]),
            &serde_json::json!([{"method": "POST", "path": "/blobs/uploads/", "expire_token": true,
                                 "skip": 1, "times": refusals}]),
        );
        let _refused = Faults::set(
            ECR,
            &dest(&sources[1]),
            &serde_json::json!([{"method": "PUT", "path": "/manifests/", "expire_token": true}]),
        );
        let mut images = String::new();
        for source in &sources {
            writeln!(images, "\n[[image]]\nsource = \"{source}:1\"").unwrap();
        }
        let config = bed.sync_config(&format!(
            "version = 1\n[sync]\njobs = 1\n[defaults]\nengine = \"{engine}\"\ndestination = \"{ECR}/{prefix}/\"\n{images}"
        ));

        let run = Run::from(
            bed.sync_command(&config)
                .env("ECRCP_LOG", "ecrcp=info")
                .output()
                .expect("ecrcp runs"),
        );

        run.assert_code(1);
        assert_eq!(renewed.fired(), [refusals], "{engine}");
        let summary = run.summary();
        assert_eq!(summary["copied"], 2, "{engine}: {}", run.stderr);
        assert_eq!(summary["failed"], 1, "{engine}: {}", run.stderr);
        for (source, lands) in sources.iter().zip([true, false, true]) {
            if lands {
                // docker pushes the image anew (its own manifest), so the image ID it is.
                assert_eq!(
                    bed.image_id(ECR, &dest(source), "1"),
                    bed.image_id(HUB, source, "1"),
                    "{engine}: {source}"
                );
            } else {
                assert_eq!(bed.digest(ECR, &dest(source), "1"), None, "{engine}: {source}");
            }
        }
        let posts = statuses(&dest(&sources[0]), "POST", "/blobs/uploads/");
        assert_eq!(
            posts.iter().filter(|status| *status == "401").count(),
            usize::try_from(refusals).unwrap(),
            "{engine}: {posts:?}"
        );
        // The refused image meets the token the first renewal brought: the registry
        // engine knows it is a renewed one and fetches none again; docker's push knows
        // only its own attempts, and logs in once more before it gives up.
        let fetches = if engine == "docker" { 2 } else { 1 };
        assert_eq!(
            run.events(RENEWING).len(),
            fetches,
            "{engine}: one new token per refusal, never a loop:\n{}",
            run.stderr
        );
    }
}

/// A sync that outlives its tokens (each good for 301 s, refreshed 300 s before it
/// expires, so after a second; ECR's last 12 hours): each copy gets the refreshed token,
/// and the docker engine logs docker in with it, not only fetches it.
#[test]
#[ignore = "needs the test bed"]
fn a_sync_longer_than_its_token_refreshes_it_and_logs_docker_in_again() {
    let bed = Bed::get("tokenlong");
    let sources: Vec<String> = (0..3)
        .map(|n| {
            let repo = bed.unique(&format!("token/long{n}"));
            bed.push_upstream_with(&repo, "1", &format!("token-long-{n}"), &["--layers", "1"]);
            repo
        })
        .collect();
    let prefix = bed.unique("tlong");
    let mut images = String::new();
    for source in &sources {
        writeln!(images, "\n[[image]]\nsource = \"{source}:1\"").unwrap();
    }
    let config = bed.sync_config(&format!(
        "version = 1\n[sync]\njobs = 1\n[defaults]\nengine = \"docker\"\ndestination = \"{ECR}/{prefix}/\"\n{images}"
    ));
    let api = ApiFront::start(&bed, 301);
    // Tokens are refreshed 300 s before they expire: 1 s after this front hands them out.
    // The second image's push is held that long, so that the third copy certainly outlives
    // the first token however fast the others go.
    let _slow = Faults::set(
        ECR,
        &format!("{prefix}/{}", sources[1]),
        &serde_json::json!([{"method": "PUT", "path": "/manifests/", "delay": 1.5}]),
    );

    let run = Run::from(
        bed.sync_command(&config)
            .env("ECRCP_LOG", "ecrcp=info")
            .env("AWS_ENDPOINT_URL", &api.endpoint)
            .output()
            .expect("ecrcp runs"),
    );

    run.assert_code(0);
    assert_eq!(run.summary()["copied"], 3, "{}", run.stderr);
    let fetched = api.token_calls();
    let refreshed = run
        .events("refreshing the ECR authorization token before it expires")
        .len();
    let logins = bed.docker_calls_of("login");
    eprintln!("{fetched} tokens fetched, {refreshed} refreshed, {logins} docker logins");
    assert!(refreshed >= 1, "a token was refreshed:\n{}", run.stderr);
    assert!(
        (2..=fetched).contains(&logins),
        "docker logged in again with a refreshed token: {logins} logins, {fetched} tokens"
    );
    assert!(run.events(RENEWING).is_empty(), "no token was refused");
}

/// A front of this test's own before the bed's ECR API (moto): counts the
/// GetAuthorizationToken calls that reach it, independently of ecrcp, and with
/// `expires_in` seconds makes each token expire that long after it is handed out (moto's
/// say 2015), so that a run outlives its token in seconds rather than 12 hours. Stopped
/// (by its own pid) when dropped.
struct ApiFront {
    child: std::process::Child,
    endpoint: String,
    calls: std::path::PathBuf,
}

/// How many API fronts this process started: each counts into a file of its own.
static FRONTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

const API_FRONT: &str = r#"
import http.client, http.server, json, sys, time, urllib.parse
upstream, calls, expires_in = urllib.parse.urlsplit(sys.argv[1]).netloc, sys.argv[2], int(sys.argv[3])

class Front(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        target = self.headers.get("X-Amz-Target", "")
        conn = http.client.HTTPConnection(upstream, timeout=60)
        conn.request("POST", self.path, body, {k: v for k, v in self.headers.items() if k.lower() != "host"})
        resp = conn.getresponse()
        answer = resp.read()
        if target.endswith(".GetAuthorizationToken"):
            with open(calls, "a") as log:
                log.write(f"{time.time()}\n")
            if expires_in and resp.status == 200:
                doc = json.loads(answer)
                for data in doc.get("authorizationData", []):
                    data["expiresAt"] = time.time() + expires_in
                answer = json.dumps(doc).encode()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Front)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

impl ApiFront {
    fn start(bed: &Bed, expires_in: u64) -> ApiFront {
        use std::io::BufRead as _;
        let python = std::env::var("ECRCP_TESTBED_PYTHON").expect("the bed exports ECRCP_TESTBED_PYTHON");
        let upstream = std::env::var("AWS_ENDPOINT_URL").expect("the bed exports AWS_ENDPOINT_URL");
        let front = FRONTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let calls = bed.scratch().join(format!("get-authorization-token-{front}.log"));
        let mut child = std::process::Command::new(python)
            .args(["-c", API_FRONT, &upstream])
            .arg(&calls)
            .arg(expires_in.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the API front starts");
        let mut port = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut port)
            .unwrap();
        ApiFront {
            child,
            endpoint: format!("http://127.0.0.1:{}", port.trim()),
            calls,
        }
    }

    /// How many GetAuthorizationToken calls reached ECR so far.
    fn token_calls(&self) -> usize {
        std::fs::read_to_string(&self.calls)
            .unwrap_or_default()
            .lines()
            .count()
    }
}

impl Drop for ApiFront {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
