//! Issue 17's security read of the registry client, on the bed: capability URLs stay out
//! of errors and logs, and the registry's credentials go to the registry's own origin only.

use std::path::Path;

use crate::support::{front_requests, front_stats, Bed, Faults, Run, ECR, HUB, PLAIN};

/// Where the bed serves the fake ECR's front (`ECR` on :443) and its registry behind it.
const ECR_IP: &str = "127.0.0.3";
const ECR_BACKEND: &str = "127.0.0.3:5000";
/// Where `PLAIN` (`registry.example.test`, in the bed's certificate) is.
const PLAIN_IP: &str = "127.0.0.5";

/// Every file under `dir`, read as text (lossily), with its path.
fn files_under(dir: &Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for path in entries.flatten().map(|entry| entry.path()) {
        if path.is_dir() {
            found.extend(files_under(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            found.push((
                path.display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
    }
    found
}

#[test]
#[ignore = "needs the test bed"]
fn a_presigned_blob_url_stays_out_of_errors_and_logs() {
    const SIGNATURE: &str = "c0ffee5ecret5ignature";
    let bed = Bed::get("presigned");
    let upstream = bed.unique("wiresec/presigned");
    bed.push_upstream(&upstream, "1", "presigned");
    // The source's blobs are served from "storage" by a presigned URL, which then fails
    // with a wait too long to retry: the error names the URL it got.
    let signed = format!(
        "https://{HUB}/v2/{upstream}/blobs/stored?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature={SIGNATURE}"
    );
    let faults = Faults::set(
        HUB,
        &upstream,
        &serde_json::json!([
            {"method": "GET", "path": "/blobs/sha256:[0-9a-f]+$", "redirect": signed},
            {"method": "GET", "path": "X-Amz-Signature", "status": 500, "retry_after": "3600"},
        ]),
    );
    let destination = format!("{ECR}/{}:1", bed.unique("wiresec/presigned"));
    let run = Run::from(
        bed.ecrcp()
            .env("ECRCP_LOG", "ecrcp=debug")
            .args(["--engine", "registry", &format!("{upstream}:1"), &destination])
            .output()
            .expect("ecrcp runs"),
    );
    assert_ne!(run.code, Some(0), "the blob cannot be read:\n{}", run.stderr);
    assert!(
        faults.fired()[1] >= 1,
        "the presigned URL was asked: {:?}",
        faults.fired()
    );
    for (what, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        assert!(!text.contains(SIGNATURE), "the signature in {what}:\n{text}");
    }
    assert!(
        run.stderr.contains("/blobs/stored?[redacted]"),
        "the error says where the read went:\n{}",
        run.stderr
    );
    for (path, text) in files_under(&bed.scratch().join("state")) {
        assert!(!text.contains(SIGNATURE), "the signature in {path}:\n{text}");
    }
}

/// A plain-HTTP listener at `address` that answers every request 400 and keeps the head of
/// each (request line and headers), to show what reached it.
struct Recorder {
    heads: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Recorder {
    fn listen(address: &str) -> Recorder {
        use std::io::{Read as _, Write as _};
        let listener = std::net::TcpListener::bind(address).expect("the recorder's address is free");
        let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = std::sync::Arc::clone(&heads);
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                    head.push(byte[0]);
                }
                kept.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head).into_owned());
                let _ = stream
                    .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            }
        });
        Recorder { heads }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

#[test]
#[ignore = "needs the test bed"]
fn an_http_upload_location_from_an_https_registry_goes_over_https() {
    let bed = Bed::get("offload");
    let upstream = bed.unique("wiresec/offload");
    let digest = bed.push_upstream(&upstream, "1", "offload");
    let dest = bed.unique("wiresec/offload");
    // Behind TLS offload the registry believes it is on plain HTTP, and says so in its
    // upload Locations; nothing of ecrcp's may reach port 80 (where this listener is).
    let plain = Recorder::listen(&format!("{ECR_IP}:80"));
    let faults = Faults::set(
        ECR,
        &dest,
        &serde_json::json!([{"method": "POST", "path": "/blobs/uploads/", "relocate": format!("http://{ECR}")}]),
    );
    let run = bed.run(&[
        "--engine",
        "registry",
        &format!("{upstream}:1"),
        &format!("{ECR}/{dest}:1"),
    ]);
    assert_eq!(plain.heads(), Vec::<String>::new(), "requests over plain HTTP");
    run.assert_code(0);
    assert!(
        faults.fired()[0] >= 1,
        "no upload was relocated: {:?}",
        faults.fired()
    );
    assert_eq!(bed.digest(ECR, &dest, "1").as_deref(), Some(digest.as_str()));
    let finished = front_requests(ECR, &dest, "PUT", "/blobs/uploads/");
    assert!(
        !finished.is_empty() && finished.iter().all(|entry| entry["authorized"] == true),
        "the uploads were finished at the registry's https origin: {finished:#?}"
    );
}

/// A second TLS front (front.py, the bed's certificate) on `registry.example.test:PORT`,
/// before the fake ECR's own registry: an origin other than the registry's that can finish
/// its uploads, and that counts whether each request carried an Authorization header.
struct OtherOrigin {
    child: std::process::Child,
    origin: String,
}

impl OtherOrigin {
    fn start(bed: &Bed) -> OtherOrigin {
        let port = std::net::TcpListener::bind(format!("{PLAIN_IP}:0"))
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let root = std::path::PathBuf::from(std::env::var_os("ECRCP_TESTBED").expect("in the bed"));
        let tls = root.join("tls");
        let child = std::process::Command::new(std::env::var_os("ECRCP_TESTBED_PYTHON").expect("in the bed"))
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testbed/front.py"))
            .args(["--listen", &format!("{PLAIN_IP}:{port}")])
            .args(["--upstream", ECR_BACKEND, "--label", "other-origin"])
            .arg("--cert")
            .arg(tls.join("server.crt"))
            .arg("--key")
            .arg(tls.join("server.key"))
            .stderr(std::fs::File::create(bed.scratch().join("other-origin.log")).unwrap())
            .spawn()
            .expect("front.py starts");
        let address = format!("{PLAIN_IP}:{port}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "front.py did not come up on {address}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        OtherOrigin {
            child,
            origin: format!("https://{PLAIN}:{port}"),
        }
    }
}

impl Drop for OtherOrigin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "needs the test bed"]
fn an_upload_session_on_another_origin_gets_none_of_the_registry_s_credentials() {
    let bed = Bed::get("elsewhere");
    let upstream = bed.unique("wiresec/elsewhere");
    bed.push_upstream(&upstream, "1", "elsewhere");
    let dest = bed.unique("wiresec/elsewhere");
    let other = OtherOrigin::start(&bed);
    let _faults = Faults::set(
        ECR,
        &dest,
        &serde_json::json!([{"method": "POST", "path": "/blobs/uploads/", "relocate": other.origin}]),
    );
    let run = bed.run(&[
        "--engine",
        "registry",
        &format!("{upstream}:1"),
        &format!("{ECR}/{dest}:1"),
    ]);
    let seen = front_stats(&other.origin["https://".len()..], &dest);
    let log = seen["log"].as_array().cloned().unwrap_or_default();
    assert!(
        log.iter().any(|entry| entry["method"] == "PUT"),
        "the upload went to the other origin: {seen:#}"
    );
    assert!(
        log.iter().all(|entry| entry["authorized"] == false),
        "the registry's credentials reached another origin: {log:#?}"
    );
    assert_ne!(
        run.code,
        Some(0),
        "the other origin wants credentials:\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!(
            "'{}', where registry '{ECR}' sent ecrcp, asks for credentials",
            other.origin
        )),
        "{}",
        run.stderr
    );
}

#[test]
#[ignore = "needs the test bed"]
fn an_index_naming_digests_ecrcp_cannot_check_is_refused_before_any_request_for_them() {
    let bed = Bed::get("hostile-index");
    let upstream = bed.unique("wiresec/hostile");
    bed.push_upstream(&upstream, "1", "hostile");
    let dest = bed.unique("wiresec/hostile");
    // No registry takes such an index, so the source's front serves it in the registry's
    // place.
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": "md5:d41d8cd98f00b204e9800998ecf8427e", "size": 10,
             "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": "sha256:../../../wiresec/elsewhere/manifests/latest", "size": 10,
             "platform": {"os": "linux", "architecture": "arm64"}},
        ],
    });
    let served = Faults::set(
        HUB,
        &upstream,
        &serde_json::json!([{
            "method": ["GET", "HEAD"],
            "path": "/manifests/1$",
            "serve": {"content_type": "application/vnd.oci.image.index.v1+json", "body": index.to_string()},
        }]),
    );
    let run = bed.run(&[
        "--engine",
        "registry",
        &format!("{upstream}:1"),
        &format!("{ECR}/{dest}:1"),
    ]);
    assert!(served.fired()[0] >= 1, "the hostile index was served");
    let asked: Vec<String> = [(HUB, &upstream), (ECR, &dest)]
        .into_iter()
        .flat_map(|(registry, repository)| {
            front_stats(registry, repository)["log"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|entry| entry["path"].as_str().map(str::to_owned))
        .filter(|path| path.contains("md5") || path.contains(".."))
        .collect();
    assert_eq!(asked, Vec::<String>::new(), "requests for the hostile digests");
    assert_ne!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("its child 'md5:d41d8cd98f00b204e9800998ecf8427e' is not a digest ecrcp can check"),
        "{}",
        run.stderr
    );
}

/// The most requests of `log` (a front's log entries) that were under way at one moment.
fn most_at_once(log: &[serde_json::Value]) -> usize {
    let mut edges: Vec<(f64, i32)> = Vec::new();
    for entry in log {
        let start = entry["at"].as_f64().unwrap_or_default();
        let end = start + entry["ms"].as_f64().unwrap_or_default() / 1000.0;
        edges.push((start, 1));
        edges.push((end, -1));
    }
    // An end before a start at the same moment: touching is not overlapping.
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut most) = (0i32, 0i32);
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    usize::try_from(most).unwrap_or_default()
}

#[test]
#[ignore = "needs the test bed"]
fn the_children_of_an_index_are_asked_about_a_few_at_a_time() {
    let bed = Bed::get("fanout-bound");
    let upstream = bed.unique("wiresec/wide");
    let platforms = [
        "linux/amd64",
        "linux/amd64/v2",
        "linux/amd64/v3",
        "linux/arm64/v8",
        "linux/arm/v5",
        "linux/arm/v6",
        "linux/arm/v7",
        "linux/386",
        "linux/ppc64le",
        "linux/s390x",
        "linux/riscv64",
        "linux/mips64le",
    ];
    let digest = bed.push_upstream_with(&upstream, "1", "wide", &["--platforms", &platforms.join(",")]);
    let dest = bed.unique("wiresec/wide");
    // Each HEAD of a child at the destination takes a while, so that all would overlap if
    // they were sent at once.
    let _slow = Faults::set(
        ECR,
        &dest,
        &serde_json::json!([{"method": "HEAD", "path": "/manifests/sha256:", "delay": 0.4}]),
    );
    let run = bed.run(&[
        "--engine",
        "registry",
        &format!("{upstream}:1"),
        &format!("{ECR}/{dest}:1"),
    ]);
    run.assert_code(0);
    assert_eq!(bed.digest(ECR, &dest, "1").as_deref(), Some(digest.as_str()));
    let heads = front_requests(ECR, &dest, "HEAD", "/manifests/sha256:");
    assert!(
        heads.len() >= platforms.len(),
        "every child was asked about: {heads:#?}"
    );
    let most = most_at_once(&heads);
    assert!(
        (2..=8).contains(&most),
        "children asked about at once: {most} (8 at most, and side by side)"
    );
}
