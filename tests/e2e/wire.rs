//! The registry engine's requests on the wire, as the bed's fronts see them: the round trips
//! of a cold copy into ECR and at Docker Hub, what a refused tag PUT is reported as, the pulls the referrers
//! fallback spends at Docker Hub, an upload whose answer comes late, and a source that
//! serves manifests under a non-manifest type.

use std::process::Command;

use crate::support::{front_requests, front_stats, Bed, Faults, Run, ECR, HUB};

/// The copy of `source` into `destination` by the registry engine.
fn copy(bed: &Bed, source: &str, destination: &str) -> Run {
    bed.run(&["--engine", "registry", source, destination])
}

#[test]
#[ignore = "needs the test bed"]
fn registry_engine_sends_ecr_its_token_from_the_first_request_and_no_head_after_the_tag_put() {
    let bed = Bed::get("wire-cold-copy");
    let upstream = bed.unique("wire/cold-src");
    let digest = bed.push_upstream(&upstream, "1", "cold");
    let dest = bed.unique("wire/cold-dst");
    copy(&bed, &format!("{upstream}:1"), &format!("{ECR}/{dest}:1")).assert_code(0);
    // Read before the test's own look at the tag, which the front logs too.
    let log = front_stats(ECR, &dest)["log"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let heads = front_requests(ECR, &dest, "HEAD", "/manifests/");
    assert_eq!(bed.digest(ECR, &dest, "1").as_deref(), Some(digest.as_str()));
    let line =
        |entry: &serde_json::Value| format!("{} {} {}", entry["method"], entry["path"], entry["status"]);
    let lines: Vec<String> = log.iter().map(line).collect();
    // ECR checks its token as Basic credentials on every request: none goes without them
    // to fetch a 401 that says so.
    assert!(
        log.iter()
            .all(|entry| entry["authorized"] == true && entry["status"] != 401),
        "{lines:#?}"
    );
    // One manifest HEAD, the check before the copy (the tag is missing); the PUT's answer
    // names the digest stored under the tag, so no HEAD follows it.
    assert_eq!(heads.len(), 1, "{lines:#?}");
    assert_eq!(heads[0]["status"], 404, "{lines:#?}");
    let last = log.last().expect("requests at the destination");
    assert_eq!(
        (last["method"].as_str(), last["path"].as_str()),
        (Some("PUT"), Some(format!("/v2/{dest}/manifests/1").as_str())),
        "the tag PUT comes last: {lines:#?}"
    );
}

#[test]
#[ignore = "needs the test bed"]
fn registry_engine_asks_docker_hub_with_a_token_from_the_first_request() {
    let bed = Bed::get("wire-hub-first");
    let upstream = bed.unique("wire/hub-first");
    bed.push_upstream(&upstream, "1", "hub-first");
    let log = || {
        front_stats(HUB, &upstream)["log"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let before = log().len();
    let dest = bed.unique("wire/hub-first-dst");
    copy(&bed, &format!("{upstream}:1"), &format!("{ECR}/{dest}:1")).assert_code(0);
    let copied: Vec<serde_json::Value> = log().split_off(before);
    let lines: Vec<String> = copied
        .iter()
        .map(|entry| {
            format!(
                "{} {} {} {}",
                entry["method"], entry["path"], entry["status"], entry["authorized"]
            )
        })
        .collect();
    // Docker Hub's challenge is known: the first request goes with a token, instead of
    // going without one to fetch the 401 that names the token server.
    assert!(!copied.is_empty(), "the copy read nothing at the hub");
    assert!(
        copied
            .iter()
            .all(|entry| entry["authorized"] == true && entry["status"] != 401),
        "{lines:#?}"
    );
}

#[test]
#[ignore = "needs the test bed"]
fn registry_engine_tells_an_immutable_tag_from_other_refusals_of_the_tag_put() {
    let bed = Bed::get("wire-tag-put");
    let upstream = bed.unique("wire/tag-src");
    bed.push_upstream(&upstream, "1", "1");
    bed.push_upstream(&upstream, "2", "2");
    let dest = bed.unique("wire/tag-dst");
    let target = format!("{ECR}/{dest}:1");
    copy(&bed, &format!("{upstream}:1"), &target).assert_code(0);
    let newer = format!("{upstream}:2");
    // Each refusal as a registry words it, of a PUT that would move the tag to image 2.
    let refuse = |status: u16, code: &str, message: &str| {
        let faults = Faults::set(
            ECR,
            &dest,
            &serde_json::json!([{"method": "PUT", "path": "/manifests/1$", "status": status, "code": code, "message": message}]),
        );
        let run = copy(&bed, &newer, &target);
        // A blob the registry does not see yet may be seen a moment later: that PUT is asked
        // twice more. Every other refusal is final.
        let puts = if code == "MANIFEST_BLOB_UNKNOWN" { 3 } else { 1 };
        assert_eq!(faults.fired(), [puts], "the tag PUTs, refused: {}", run.stderr);
        assert_ne!(run.code, Some(0), "{}", run.stderr);
        run
    };

    // As ECR answers a push onto an immutable tag.
    let run = refuse(
        400,
        "TAG_INVALID",
        &format!("The image tag '1' already exists in the '{dest}' repository and cannot be overwritten because the tag already exists."),
    );
    assert!(run.stderr.contains("the tag is immutable"), "{}", run.stderr);
    assert!(
        run.stderr.contains("make the repository's tags mutable"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("cannot be overwritten"),
        "the registry's words: {}",
        run.stderr
    );

    // A mutable tag whose manifest is refused for what it is: the registry's words, and no
    // word of immutability.
    for (status, code, message) in [
        (400, "MANIFEST_INVALID", "manifest invalid"),
        (400, "MANIFEST_BLOB_UNKNOWN", "blob unknown to registry"),
        (405, "UNSUPPORTED", "The operation is unsupported."),
    ] {
        let run = refuse(status, code, message);
        assert!(
            run.stderr.contains(&format!("({status}")) && run.stderr.contains(&format!("{code}: {message}")),
            "what the registry said: {}",
            run.stderr
        );
        assert!(!run.stderr.contains("immutable"), "{}", run.stderr);
    }

    // A login that may not push: not a question of reading.
    let run = refuse(403, "DENIED", "not authorized to perform ecr:PutImage");
    assert!(run.stderr.contains("may push to it"), "{}", run.stderr);
    assert!(!run.stderr.contains("may read it"), "{}", run.stderr);
    assert!(!run.stderr.contains("immutable"), "{}", run.stderr);

    let held = bed.digest(ECR, &dest, "1");
    assert_eq!(held, bed.digest(HUB, &upstream, "1"), "the tag never moved");
}

#[test]
#[ignore = "needs the test bed"]
fn registry_engine_asks_docker_hub_for_the_referrers_fallback_tag_with_a_head() {
    let bed = Bed::get("wire-referrers");
    let upstream = bed.unique("wire/referrers-src");
    let digest = bed.push_upstream(&upstream, "1", "1");
    let dest = bed.unique("wire/referrers-dst");
    let run = bed.run(&[
        "--engine",
        "registry",
        "--referrers",
        &format!("{upstream}:1"),
        &format!("{ECR}/{dest}:1"),
    ]);
    run.assert_code(0);
    assert_eq!(bed.digest(ECR, &dest, "1").as_deref(), Some(digest.as_str()));

    // The hub has no referrers API (distribution 2.8): the tag schema is asked, by HEAD, and
    // so are cosign's tags beside it (sha256-HEX.sig, .att, .sbom).
    let fallback = digest.replace(':', "-");
    let heads = front_requests(HUB, &upstream, "HEAD", &format!("/manifests/{fallback}"));
    assert_eq!(heads.len(), 4, "{heads:#?}");
    assert!(heads.iter().all(|head| head["status"] == 404), "{heads:#?}");
    let gets = front_requests(HUB, &upstream, "GET", &format!("/manifests/{fallback}"));
    assert!(
        gets.is_empty(),
        "no GET, which Docker Hub counts as a pull: {gets:#?}"
    );
}

#[test]
#[ignore = "needs the test bed"]
fn registry_engine_counts_a_blob_that_landed_before_its_late_answer_as_uploaded() {
    let bed = Bed::get("wire-late-answer");
    let upstream = bed.unique("wire/late-src");
    let digest = bed.push_upstream_sized(&upstream, "1", "late", 16 * 1024);
    let dest = bed.unique("wire/late-dst");
    // The registry stores each blob, and its answer comes long after ecrcp's answer limit
    // (6 s at this scale), as a registry on object storage committing a large blob.
    let faults = Faults::set(
        ECR,
        &dest,
        &serde_json::json!([{"method": "PUT", "path": "/blobs/uploads/", "delay": 30, "on": "response"}]),
    );
    let run = Run::from(
        bed.ecrcp()
            .env("ECRCP_NET_TIMEOUT_SCALE", "0.05")
            .args([
                "--engine",
                "registry",
                &format!("{upstream}:1"),
                &format!("{ECR}/{dest}:1"),
            ])
            .output()
            .expect("ecrcp runs"),
    );
    run.assert_code(0);
    assert_eq!(bed.digest(ECR, &dest, "1").as_deref(), Some(digest.as_str()));
    assert_eq!(
        faults.fired(),
        [2],
        "the config's and the layer's answers were held"
    );
    let manifest = bed.manifest(ECR, &dest, "1");
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let config = manifest["config"]["digest"].as_str().unwrap();
    // Counted at the registry: the front logs a request once its answer is through.
    for blob in [config, layer] {
        let hex = blob.strip_prefix("sha256:").unwrap();
        let uploads = bed
            .log("ecr")
            .lines()
            .filter(|line| line.contains("\"PUT ") && line.contains(&dest) && line.contains(hex))
            .count();
        assert_eq!(uploads, 1, "{blob} was uploaded once");
    }
    assert_eq!(
        bed.requests("ecr", "DELETE", &format!("/v2/{dest}/blobs/uploads/")),
        0,
        "no session cancelled"
    );
}

#[test]
#[ignore = "needs the test bed"]
fn registry_engine_stores_a_manifest_served_as_json_under_its_own_media_type() {
    let bed = Bed::get("wire-content-type");
    let upstream = bed.unique("wire/type-src");
    let digest = bed.push_upstream(&upstream, "1", "1");
    let dest = bed.unique("wire/type-dst");
    let faults = Faults::set(
        HUB,
        &upstream,
        &serde_json::json!([{"method": "GET", "path": "/manifests/", "content_type": "application/json"}]),
    );
    copy(&bed, &format!("{upstream}:1"), &format!("{ECR}/{dest}:1")).assert_code(0);
    assert_eq!(faults.fired(), [1], "the manifest was served as application/json");
    assert_eq!(bed.digest(ECR, &dest, "1").as_deref(), Some(digest.as_str()));
    let output = Command::new("curl")
        .args([
            "-sSf",
            "-I",
            "-u",
            &format!("AWS:{}", crate::support::ECR_PASSWORD),
        ])
        .args([
            "-H",
            "Accept: application/vnd.docker.distribution.manifest.v2+json",
        ])
        .arg(format!("https://{ECR}/v2/{dest}/manifests/1"))
        .output()
        .expect("curl runs");
    let head = String::from_utf8_lossy(&output.stdout).to_ascii_lowercase();
    assert!(
        head.contains("content-type: application/vnd.docker.distribution.manifest.v2+json"),
        "{head}"
    );
}
