//! Manifests of kinds that name no config, with the registry engine: schema 1 copied byte for
//! byte into a registry that stores it (the bed's ECR, as ECR does) and a second run finding
//! it in place, and schema 1 and the pre-1.1 OCI artifact manifest refused plainly, with
//! the way out and no tag written, by registries that do not store them.

use crate::support::{front_requests, Bed, Faults, ECR, HUB, HUB_ADMIN, PLAIN, PLAIN_USER};

const ARTIFACT: &str = "application/vnd.oci.artifact.manifest.v1+json";

/// Pushes a docker v2 image to the fake Docker Hub and stores its tag again as the schema 1
/// manifest the registry converts it to, as an old docker pushed it; returns its digest.
fn push_schema1(bed: &Bed, repo: &str, seed: &str) -> String {
    bed.push_upstream(repo, "1", seed);
    bed.image_py(&[
        "schema1",
        "--registry",
        HUB,
        "--repo",
        repo,
        "--tag",
        "1",
        "--user",
        HUB_ADMIN,
    ])
}

/// A manifest without its signatures: a registry signs schema 1 anew on every read.
fn unsigned(mut manifest: serde_json::Value) -> serde_json::Value {
    manifest
        .as_object_mut()
        .expect("a manifest is an object")
        .remove("signatures");
    manifest
}

#[test]
#[ignore = "needs the test bed"]
fn schema_1_is_copied_byte_for_byte_where_the_destination_stores_it() {
    let bed = Bed::get("schema1-copied");
    let repo = bed.unique("legacy/schema1");
    let digest = push_schema1(&bed, &repo, "schema1");
    let source = bed.manifest(HUB, &repo, "1");
    assert_eq!(source["schemaVersion"], 1, "the source serves schema 1: {source}");
    let copy = || {
        bed.run(&[
            "--engine",
            "registry",
            &format!("{repo}:1"),
            &format!("{ECR}/{repo}:1"),
        ])
    };

    copy().assert_code(0);
    // The registry checked the source's signatures on the PUT (it refuses a schema 1
    // manifest whose signed part changed) and names it by the same digest.
    assert_eq!(bed.digest(ECR, &repo, "1").as_deref(), Some(digest.as_str()));
    assert_eq!(unsigned(bed.manifest(ECR, &repo, "1")), unsigned(source));
    let puts = front_requests(ECR, &repo, "PUT", "/manifests/1");
    assert_eq!(puts.len(), 1, "{puts:#?}");
    assert_eq!(puts[0]["status"], 201, "{puts:#?}");
    // Sent as the source served it: not re-serialised (the signature check above would
    // also refuse a changed signed part).
    let served: Vec<serde_json::Value> = front_requests(HUB, &repo, "GET", "/manifests/1")
        .into_iter()
        .map(|get| get["bytes_out"].clone())
        .collect();
    assert!(served.contains(&puts[0]["bytes_in"]), "{puts:#?} {served:?}");
    // Its one layer went (schema 1 names no config), sized at the source.
    let uploads = front_requests(ECR, &repo, "PUT", "/blobs/uploads/");
    assert_eq!(uploads.len(), 1, "{uploads:#?}");

    // A second run finds it in place: nothing is written.
    let writes = || -> usize {
        ["PUT", "POST", "PATCH", "DELETE"]
            .into_iter()
            .map(|method| front_requests(ECR, &repo, method, "/").len())
            .sum()
    };
    let first = writes();
    copy().assert_code(0);
    assert_eq!(writes(), first, "the second run wrote nothing");
}

#[test]
#[ignore = "needs the test bed"]
fn schema_1_is_refused_plainly_by_a_destination_that_does_not_store_it() {
    let bed = Bed::get("schema1-refused");
    let repo = bed.unique("legacy/schema1-refused");
    push_schema1(&bed, &repo, "schema1-refused");
    bed.docker_login(PLAIN, PLAIN_USER);
    let started = std::time::Instant::now();
    let run = bed.run(&[
        "--engine",
        "registry",
        &format!("{repo}:1"),
        &format!("{PLAIN}/{repo}:1"),
    ]);
    run.assert_code(1);
    assert!(
        run.stderr
            .contains(&format!("schema 1 manifests are not supported by '{PLAIN}'")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("(500 Internal Server Error): UNKNOWN: unknown error"),
        "the registry's words: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("`--engine docker`"),
        "the way out: {}",
        run.stderr
    );
    // Its refusal, a 500, is not asked again and again.
    assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
    assert_eq!(
        bed.answered("plain", "PUT", &format!("/v2/{repo}/manifests/"), 500),
        1
    );
    assert_eq!(bed.digest(PLAIN, &repo, "1"), None, "no tag was written");
}

#[test]
#[ignore = "needs the test bed"]
fn an_oci_artifact_manifest_is_refused_plainly_by_a_destination_that_does_not_store_it() {
    let bed = Bed::get("artifact-refused");
    let repo = bed.unique("legacy/artifact");
    bed.push_upstream(&repo, "1", "artifact");
    let layer = bed.manifest(HUB, &repo, "1")["layers"][0].clone();
    // No registry of the bed stores one, so the source's front serves it in the registry's
    // place; its blob is the image's layer, which the source has.
    let artifact = serde_json::json!({
        "mediaType": ARTIFACT,
        "artifactType": "application/vnd.example.sbom",
        "blobs": [{"mediaType": "application/vnd.example.sbom", "digest": layer["digest"], "size": layer["size"]}],
    });
    let served = Faults::set(
        HUB,
        &repo,
        &serde_json::json!([{
            "method": ["GET", "HEAD"],
            "path": "/manifests/1$",
            "serve": {"content_type": ARTIFACT, "body": artifact.to_string()},
        }]),
    );
    let run = bed.run(&[
        "--engine",
        "registry",
        &format!("{repo}:1"),
        &format!("{ECR}/{repo}:1"),
    ]);
    assert!(served.fired()[0] >= 1, "the artifact manifest was served");
    run.assert_code(1);
    assert!(
        run.stderr
            .contains(&format!("OCI artifact manifests (application/vnd.oci.artifact.manifest.v1+json, dropped from OCI 1.1) are not supported by '{ECR}'")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("MANIFEST_INVALID"),
        "the registry's words: {}",
        run.stderr
    );
    assert!(run.stderr.contains("`oras push`"), "the way out: {}", run.stderr);
    // Its blob went first, as for any manifest; the manifest PUT was refused, once.
    let puts = front_requests(ECR, &repo, "PUT", "/manifests/1");
    assert_eq!(puts.len(), 1, "{puts:#?}");
    assert_eq!(puts[0]["status"], 400, "{puts:#?}");
    assert_eq!(bed.digest(ECR, &repo, "1"), None, "no tag was written");
}
