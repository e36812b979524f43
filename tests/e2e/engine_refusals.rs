//! The registry engine against refusals ECR is known for, played by the bed's ECR front
//! (tests/testbed/front.py): a cross-repository mount answered 202 with an upload session
//! (an account without BLOB_MOUNTING), and a referrer manifest (one with a `subject`)
//! answered 405. Both copies must still land, through the command line.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use ecrcp::registry::digest::sha256;
use ecrcp::registry::manifest::{OCI_INDEX, OCI_MANIFEST};

use crate::support::{front_requests, Bed, Faults, ECR, ECR_PASSWORD, HUB, HUB_ADMIN};

/// The blobs (configs and layers) of every child of an index in `registry`.
fn blobs_of_index(bed: &Bed, registry: &str, repo: &str, reference: &str) -> BTreeSet<String> {
    let mut blobs = BTreeSet::new();
    for child in bed.manifest(registry, repo, reference)["manifests"]
        .as_array()
        .expect("an index")
    {
        let image = bed.manifest(registry, repo, child["digest"].as_str().unwrap());
        blobs.insert(image["config"]["digest"].as_str().unwrap().to_owned());
        for layer in image["layers"].as_array().unwrap() {
            blobs.insert(layer["digest"].as_str().unwrap().to_owned());
        }
    }
    blobs
}

/// The digest a mount POST asks for (`?mount=sha256%3A...`).
fn mounted_digest(entry: &serde_json::Value) -> String {
    let path = entry["path"]
        .as_str()
        .unwrap()
        .replace("%3A", ":")
        .replace("%3a", ":");
    let (_, query) = path.split_once('?').expect("a query");
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("mount="))
        .expect("a mount parameter")
        .to_owned()
}

/// The path of a URL or of a request target, without its query.
fn path_only(url: &str) -> &str {
    let after_host = url.find("://").map_or(url, |scheme| {
        let rest = &url[scheme + 3..];
        rest.find('/').map_or("", |slash| &rest[slash..])
    });
    after_host.split('?').next().unwrap_or_default()
}

fn statuses(entries: &[serde_json::Value]) -> Vec<String> {
    entries.iter().map(|entry| entry["status"].to_string()).collect()
}

#[test]
#[ignore = "needs the test bed"]
fn registry_engine_uploads_the_blobs_when_ecr_refuses_a_cross_repository_mount() {
    let bed = Bed::get("refuse-mount");
    let upstream = bed.unique("refusals/mount-src");
    let digest = bed.push_index(
        HUB,
        HUB_ADMIN,
        &upstream,
        "1",
        "1",
        "linux/amd64,linux/arm64",
        "oci",
        64 * 1024,
    );
    let (a, b, c) = (
        bed.unique("refusals/mount-a"),
        bed.unique("refusals/mount-b"),
        bed.unique("refusals/mount-c"),
    );
    bed.run(&[
        "--engine",
        "registry",
        &format!("{upstream}:1"),
        &format!("{ECR}/{a}:1"),
    ])
    .assert_code(0);
    let blobs = blobs_of_index(&bed, ECR, &a, "1");
    assert_eq!(blobs.len(), 4, "two configs and two layers: {blobs:?}");

    // Repository b's account has no blob mounting: every mount opens a session instead.
    let faults = Faults::set(ECR, &b, &serde_json::json!([{"refuse_mount": true}]));
    bed.run(&[
        "--engine",
        "registry",
        &format!("{ECR}/{a}:1"),
        &format!("{ECR}/{b}:1"),
    ])
    .assert_code(0);

    assert_eq!(
        bed.digest(ECR, &b, "1").as_deref(),
        Some(digest.as_str()),
        "the copy landed byte for byte"
    );
    assert_eq!(faults.fired(), [4], "every blob's mount was refused");
    let mounts = front_requests(ECR, &b, "POST", "mount=");
    assert_eq!(statuses(&mounts), ["202"; 4], "{mounts:#?}");
    let asked: BTreeSet<String> = mounts.iter().map(mounted_digest).collect();
    assert_eq!(asked, blobs, "a mount was asked for each blob, from {a}");
    // Each blob went, once, into the session its refused mount opened: one POST per blob,
    // nothing cancelled (ECR without BLOB_MOUNTING would cost two more requests a blob).
    let posts = front_requests(ECR, &b, "POST", "/blobs/uploads/");
    assert_eq!(posts.len(), 4, "one POST per blob, the mount's: {posts:#?}");
    let deletes = front_requests(ECR, &b, "DELETE", "/blobs/uploads/");
    assert!(deletes.is_empty(), "no session cancelled: {deletes:#?}");
    for mount in &mounts {
        let blob = mounted_digest(mount);
        let session = path_only(mount["location"].as_str().expect("a session's Location"));
        let puts = front_requests(ECR, &b, "PUT", &blob);
        assert_eq!(statuses(&puts), ["201"], "one upload of {blob}: {puts:#?}");
        assert_eq!(
            path_only(puts[0]["path"].as_str().unwrap()),
            session,
            "{blob} went into the session its refused mount opened"
        );
    }
    drop(faults);

    // Where mounting works, nothing is sent.
    bed.run(&[
        "--engine",
        "registry",
        &format!("{ECR}/{a}:1"),
        &format!("{ECR}/{c}:1"),
    ])
    .assert_code(0);
    assert_eq!(bed.digest(ECR, &c, "1").as_deref(), Some(digest.as_str()));
    let mounts = front_requests(ECR, &c, "POST", "mount=");
    assert_eq!(statuses(&mounts), ["201"; 4], "{mounts:#?}");
    assert!(front_requests(ECR, &c, "PUT", "/blobs/uploads/").is_empty());
    assert!(front_requests(ECR, &c, "DELETE", "/blobs/uploads/").is_empty());
}

/// One request to the bed's ECR registry with its login, past ecrcp: the answer's status,
/// headers (lowercase names) and body.
fn ecr_request(
    bed: &Bed,
    method: &str,
    url: &str,
    headers: &[&str],
    body: Option<&[u8]>,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use std::io::Write as _;
    let url = if url.starts_with("https://") {
        url.to_owned()
    } else {
        format!("https://{ECR}{url}")
    };
    let saved = bed.scratch().join("curl-body");
    let mut curl = Command::new("curl");
    curl.args(["-sS", "-X", method, "-u", &format!("AWS:{ECR_PASSWORD}")])
        .args(["-D", "-", "-o"])
        .arg(&saved);
    for header in headers {
        curl.args(["-H", header]);
    }
    if body.is_some() {
        curl.args(["--data-binary", "@-"]);
    }
    let mut child = curl
        .arg(&url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.unwrap_or_default())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "curl {method} {url}");
    let head = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    (status, headers, std::fs::read(&saved).unwrap_or_default())
}

/// Uploads `bytes` as a blob of the ECR repository `repo` (POST, then one PUT).
fn push_blob(bed: &Bed, repo: &str, bytes: &[u8]) {
    let (status, headers, _) =
        ecr_request(bed, "POST", &format!("/v2/{repo}/blobs/uploads/"), &[], Some(b""));
    assert_eq!(status, 202);
    let location = headers
        .iter()
        .find(|(name, _)| name == "location")
        .map(|(_, value)| value.clone())
        .expect("a session");
    let separator = if location.contains('?') { '&' } else { '?' };
    let finish = format!(
        "{location}{separator}digest={}",
        sha256(bytes).replace(':', "%3A")
    );
    let (status, _, _) = ecr_request(
        bed,
        "PUT",
        &finish,
        &["Content-Type: application/octet-stream"],
        Some(bytes),
    );
    assert_eq!(status, 201, "the blob {}", sha256(bytes));
}

fn put_manifest(bed: &Bed, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) {
    let (status, _, body) = ecr_request(
        bed,
        "PUT",
        &format!("/v2/{repo}/manifests/{reference}"),
        &[&format!("Content-Type: {media_type}")],
        Some(bytes),
    );
    assert_eq!(status, 201, "{reference}: {}", String::from_utf8_lossy(&body));
}

/// Attaches a signature to `repo:1` (an OCI index in the bed's ECR registry) as a registry
/// without the referrers API lists it: the artifact by digest, and an index of referrers
/// under the `sha256-HEX` tag. Returns the subject's and the signature's digests.
fn sign(bed: &Bed, repo: &str) -> (String, String) {
    let (status, _, subject) = ecr_request(
        bed,
        "GET",
        &format!("/v2/{repo}/manifests/1"),
        &[&format!("Accept: {OCI_INDEX}")],
        None,
    );
    assert_eq!(status, 200);
    let subject_digest = sha256(&subject);
    let (config, signature) = (b"{}".to_vec(), b"signed, as cosign would sign it".to_vec());
    push_blob(bed, repo, &config);
    push_blob(bed, repo, &signature);
    let kind = "application/vnd.example.signature";
    let artifact = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": kind,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(&config), "size": config.len()},
        "layers": [{"mediaType": kind, "digest": sha256(&signature), "size": signature.len()}],
        "subject": {"mediaType": OCI_INDEX, "digest": subject_digest, "size": subject.len()},
    })
    .to_string()
    .into_bytes();
    let artifact_digest = sha256(&artifact);
    put_manifest(bed, repo, &artifact_digest, OCI_MANIFEST, &artifact);
    let listed = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": artifact_digest, "size": artifact.len(), "artifactType": kind}],
    })
    .to_string()
    .into_bytes();
    put_manifest(bed, repo, &subject_digest.replace(':', "-"), OCI_INDEX, &listed);
    (subject_digest, artifact_digest)
}

#[test]
#[ignore = "needs the test bed"]
fn registry_engine_skips_a_referrer_the_destination_refuses_and_says_why() {
    let bed = Bed::get("refuse-referrer");
    let source = bed.unique("refusals/referrer-src");
    let digest = bed.push_index(
        ECR,
        &format!("AWS:{ECR_PASSWORD}"),
        &source,
        "1",
        "1",
        "linux/amd64",
        "oci",
        0,
    );
    let (subject, signature) = sign(&bed, &source);
    assert_eq!(subject, digest);
    let list_tag = subject.replace(':', "-");
    let (refusing, taking) = (
        bed.unique("refusals/referrer-405"),
        bed.unique("refusals/referrer-ok"),
    );
    let copy = |destination: &str| {
        bed.run(&[
            "--engine",
            "registry",
            "--referrers",
            &format!("{ECR}/{source}:1"),
            &format!("{ECR}/{destination}:1"),
        ])
    };

    // As ECR has answered manifests naming a subject.
    let faults = Faults::set(
        ECR,
        &refusing,
        &serde_json::json!([{"method": "PUT", "path": "/manifests/", "body": "\"subject\"", "status": 405}]),
    );
    let run = copy(&refusing);
    run.assert_code(0);

    assert_eq!(
        bed.digest(ECR, &refusing, "1").as_deref(),
        Some(digest.as_str()),
        "the image landed"
    );
    assert_eq!(faults.fired(), [1], "the referrer was refused once, not retried");
    let puts = front_requests(ECR, &refusing, "PUT", &signature);
    assert_eq!(statuses(&puts), ["405"], "{puts:#?}");
    assert_eq!(bed.digest(ECR, &refusing, &signature), None);
    assert_eq!(
        bed.digest(ECR, &refusing, &list_tag),
        None,
        "no list names a referrer that is not there"
    );
    let note = run
        .stderr
        .lines()
        .find(|line| line.starts_with("ecrcp: note: ") && line.contains(&signature))
        .unwrap_or_else(|| panic!("a note names the skipped referrer:\n{}", run.stderr));
    for words in [
        "application/vnd.example.signature",
        &format!("of {subject} skipped"),
        "405",
        "UNSUPPORTED",
    ] {
        assert!(note.contains(words), "the note says {words:?}: {note}");
    }
    drop(faults);

    // The same copy where referrers are welcome: the signature lands, and no note.
    let run = copy(&taking);
    run.assert_code(0);
    assert!(!run.stderr.contains("ecrcp: note:"), "{}", run.stderr);
    assert_eq!(
        bed.digest(ECR, &taking, &signature).as_deref(),
        Some(signature.as_str())
    );
}
