//! Copies through registries that fail: the bed's fronts (tests/testbed/front.py) answer 5xx
//! and 429s, reset connections mid-blob and corrupt blobs, for one repository at a time.
//! Tests named `registry_engine_*` drive `--engine registry`; the others the docker engine.

use std::time::Duration;

use crate::support::{front_requests, front_stats, Bed, Faults, ECR, HUB};

/// The digests of an upstream image's layers (single-platform manifest).
fn layers(bed: &Bed, repo: &str, tag: &str) -> Vec<(String, u64)> {
    bed.manifest(HUB, repo, tag)["layers"]
        .as_array()
        .expect("a single-platform manifest")
        .iter()
        .map(|layer| {
            (
                layer["digest"].as_str().unwrap().to_owned(),
                layer["size"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn layers_of(manifest: &serde_json::Value) -> Vec<String> {
    manifest["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|layer| layer["digest"].as_str().unwrap().to_owned())
        .collect()
}

fn statuses(entries: &[serde_json::Value]) -> Vec<String> {
    entries.iter().map(|entry| entry["status"].to_string()).collect()
}

// ---- the docker engine (today's default) ----

#[test]
#[ignore = "needs the test bed"]
fn a_503_on_a_source_blob_is_retried_and_the_copy_lands() {
    let bed = Bed::get("flaky503");
    let upstream = bed.unique("flaky/src503");
    bed.push_upstream_with(&upstream, "1", "503", &["--layer-size", "256K"]);
    let (layer, _) = layers(&bed, &upstream, "1").remove(0);
    let faults = Faults::set(
        HUB,
        &upstream,
        &serde_json::json!([{"method": "GET", "path": &layer, "status": 503, "times": 1}]),
    );
    let dest = bed.unique("flaky/dst503");

    bed.run(&[&format!("{upstream}:1"), &format!("{ECR}/{dest}:1")])
        .assert_code(0);

    assert_eq!(faults.fired(), [1], "the 503 was sent");
    let gets = front_requests(HUB, &upstream, "GET", &layer);
    assert_eq!(
        statuses(&gets),
        ["503", "200"],
        "one 503, then the layer again: {gets:?}"
    );
    assert!(bed.digest(ECR, &dest, "1").is_some(), "the copy landed");
    assert_eq!(
        bed.image_id(ECR, &dest, "1"),
        bed.image_id(HUB, &upstream, "1"),
        "the destination holds the source's image"
    );
}

#[test]
#[ignore = "needs the test bed"]
fn a_connection_reset_midway_through_a_source_blob_is_retried_and_the_copy_lands() {
    let bed = Bed::get("flakyreset");
    let upstream = bed.unique("flaky/srcreset");
    bed.push_upstream_with(&upstream, "1", "reset", &["--layer-size", "4M"]);
    let (layer, size) = layers(&bed, &upstream, "1").remove(0);
    let faults = Faults::set(
        HUB,
        &upstream,
        &serde_json::json!([{"method": "GET", "path": &layer, "reset_after": 1 << 20, "times": 1}]),
    );
    let dest = bed.unique("flaky/dstreset");

    bed.run(&[&format!("{upstream}:1"), &format!("{ECR}/{dest}:1")])
        .assert_code(0);

    assert_eq!(faults.fired(), [1], "the reset happened");
    let gets = front_requests(HUB, &upstream, "GET", &layer);
    assert!(gets.len() >= 2, "the layer was asked for again: {gets:?}");
    assert!(
        gets[0]["bytes_out"].as_u64().unwrap() < size,
        "the first answer was cut short: {gets:?}"
    );
    assert_eq!(
        bed.image_id(ECR, &dest, "1"),
        bed.image_id(HUB, &upstream, "1"),
        "the copy landed whole"
    );
}

#[test]
#[ignore = "needs the test bed"]
fn a_503_on_a_destination_upload_is_retried_and_the_copy_lands() {
    let bed = Bed::get("flakypush");
    let upstream = bed.unique("flaky/srcpush");
    bed.push_upstream_with(&upstream, "1", "push", &["--layer-size", "256K"]);
    let dest = bed.unique("flaky/dstpush");
    // docker uploads a blob with POST, PATCH, then PUT ?digest=: fail the first PUT.
    let faults = Faults::set(
        ECR,
        &dest,
        &serde_json::json!([{"method": "PUT", "path": "/blobs/uploads/", "status": 503, "times": 1}]),
    );

    bed.run(&[&format!("{upstream}:1"), &format!("{ECR}/{dest}:1")])
        .assert_code(0);

    assert_eq!(faults.fired(), [1], "the 503 was sent");
    assert!(bed.digest(ECR, &dest, "1").is_some(), "the copy landed");
    assert_eq!(bed.image_id(ECR, &dest, "1"), bed.image_id(HUB, &upstream, "1"));
}

// ---- the registry engine (`--engine registry`) ----

#[test]
#[ignore = "needs the test bed"]
fn registry_engine_rides_out_5xx_and_resets_and_keeps_the_digest() {
    let bed = Bed::get("regflaky");
    let upstream = bed.unique("flaky/regsrc");
    let digest = bed.push_upstream_with(
        &upstream,
        "1",
        "regflaky",
        &[
            "--platforms",
            "linux/amd64,linux/arm64/v8",
            "--format",
            "oci",
            "--layers",
            "2",
            "--layer-size",
            "2M",
        ],
    );
    let dest = bed.unique("flaky/regdst");
    let first_child = bed.manifest(HUB, &upstream, "1")["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let first_layer = layers_of(&bed.manifest(HUB, &upstream, &first_child)).remove(0);
    let upstream_faults = Faults::set(
        HUB,
        &upstream,
        &serde_json::json!([
            {"method": "GET", "path": "/manifests/", "status": 502, "times": 1},
            {"method": "GET", "path": "/blobs/", "status": 503, "times": 1},
            {"method": "GET", "path": &first_layer, "reset_after": 512 * 1024, "times": 1},
        ]),
    );
    let dest_faults = Faults::set(
        ECR,
        &dest,
        &serde_json::json!([
            {"method": "HEAD", "path": "/blobs/", "status": 500, "times": 1},
            {"method": "POST", "path": "/blobs/uploads/", "drop": true, "times": 1},
            {"method": "PUT", "path": "/blobs/uploads/", "reset_after": 256 * 1024, "times": 1},
            {"method": "PUT", "path": "/manifests/", "status": 503, "times": 1},
        ]),
    );

    bed.run(&[
        "--engine",
        "registry",
        &format!("{upstream}:1"),
        &format!("{ECR}/{dest}:1"),
    ])
    .assert_code(0);

    assert_eq!(upstream_faults.fired(), [1, 1, 1], "every source fault fired");
    assert_eq!(dest_faults.fired(), [1, 1, 1, 1], "every destination fault fired");
    assert_eq!(
        bed.digest(ECR, &dest, "1").as_deref(),
        Some(digest.as_str()),
        "the index landed byte for byte"
    );
}

#[test]
#[ignore = "needs the test bed"]
fn registry_engine_refuses_a_corrupt_blob_naming_it_and_writes_no_tag() {
    let bed = Bed::get("regcorrupt");
    let upstream = bed.unique("flaky/corruptsrc");
    bed.push_upstream_with(
        &upstream,
        "1",
        "corrupt",
        &["--layers", "2", "--layer-size", "1M"],
    );
    let bad = layers(&bed, &upstream, "1").remove(1).0;
    // Every time, so that no retry can get the true bytes.
    let faults = Faults::set(
        HUB,
        &upstream,
        &serde_json::json!([{"method": "GET", "path": &bad, "corrupt": true}]),
    );
    let dest = bed.unique("flaky/corruptdst");

    let run = bed.run(&[
        "--engine",
        "registry",
        &format!("{upstream}:1"),
        &format!("{ECR}/{dest}:1"),
    ]);

    run.assert_code(1);
    assert!(faults.fired()[0] >= 1, "the corrupt bytes were served");
    assert!(
        run.stderr.contains(&bad),
        "the error names the blob: {}",
        run.stderr
    );
    assert_eq!(bed.digest(ECR, &dest, "1"), None, "no tag was written");
    let landed: Vec<_> = front_requests(ECR, &dest, "PUT", &bad)
        .into_iter()
        .filter(|entry| entry["status"] == 201)
        .collect();
    assert!(landed.is_empty(), "the corrupt blob was not stored: {landed:?}");
    assert!(
        front_requests(ECR, &dest, "PUT", "/manifests/").is_empty(),
        "no manifest was sent"
    );
}

#[test]
#[ignore = "needs the test bed"]
fn registry_engine_honours_retry_after_on_a_429() {
    let bed = Bed::get("reg429");
    let upstream = bed.unique("flaky/src429");
    let digest = bed.push_upstream_with(&upstream, "1", "429", &["--layer-size", "64K"]);
    let dest = bed.unique("flaky/dst429");
    let faults = Faults::set(
        ECR,
        &dest,
        &serde_json::json!([{"method": "PUT", "path": "/manifests/", "status": 429, "retry_after": "2", "times": 1}]),
    );

    bed.run(&[
        "--engine",
        "registry",
        &format!("{upstream}:1"),
        &format!("{ECR}/{dest}:1"),
    ])
    .assert_code(0);

    assert_eq!(faults.fired(), [1]);
    let puts = front_requests(ECR, &dest, "PUT", "/manifests/");
    assert_eq!(statuses(&puts), ["429", "201"], "{puts:?}");
    let waited = puts[1]["at"].as_f64().unwrap() - puts[0]["at"].as_f64().unwrap();
    assert!(
        waited >= 1.9,
        "the retry came {waited:.2} s after the 429, before the 2 s it asked for"
    );
    assert!(
        Duration::from_secs_f64(waited) < Duration::from_secs(30),
        "and not much later"
    );
    assert_eq!(bed.digest(ECR, &dest, "1").as_deref(), Some(digest.as_str()));
}

#[test]
#[ignore = "needs the test bed"]
fn registry_engine_a_failed_copy_leaves_no_tag_and_the_rerun_sends_only_the_missing_blob() {
    let bed = Bed::get("regrerun");
    let upstream = bed.unique("flaky/rerunsrc");
    let digest = bed.push_upstream_with(&upstream, "1", "rerun", &["--layers", "3", "--layer-size", "1M"]);
    let all = layers(&bed, &upstream, "1");
    let (broken, broken_size) = all[2].clone();
    let dest = bed.unique("flaky/rerundst");
    let destination = format!("{ECR}/{dest}:1");
    {
        // Every read of one layer breaks: the copy runs out of retries.
        let _faults = Faults::set(
            HUB,
            &upstream,
            &serde_json::json!([{"method": "GET", "path": &broken, "reset_after": 4096}]),
        );
        let run = bed.run(&["--engine", "registry", &format!("{upstream}:1"), &destination]);
        run.assert_code(1);
        assert!(
            run.stderr.contains(&broken),
            "the error names the blob: {}",
            run.stderr
        );
        assert_eq!(
            bed.digest(ECR, &dest, "1"),
            None,
            "no tag before the copy is whole"
        );
    }
    // What the failed copy stored: the rerun must not send it again.
    let landed: Vec<&(String, u64)> = all
        .iter()
        .filter(|(layer, _)| {
            front_requests(ECR, &dest, "PUT", layer)
                .iter()
                .any(|entry| entry["status"] == 201)
        })
        .collect();
    assert!(
        !landed.is_empty() && !landed.iter().any(|(layer, _)| *layer == broken),
        "the layers that could be read landed in the failed copy, the broken one did not: {landed:?}"
    );
    let missing: u64 = all
        .iter()
        .filter(|layer| !landed.contains(layer))
        .map(|(_, size)| size)
        .sum();
    let before = front_stats(ECR, &dest)["bytes_in"].as_u64().unwrap();
    let puts_before: Vec<usize> = landed
        .iter()
        .map(|(layer, _)| front_requests(ECR, &dest, "PUT", layer).len())
        .collect();

    bed.run(&["--engine", "registry", &format!("{upstream}:1"), &destination])
        .assert_code(0);

    assert_eq!(bed.digest(ECR, &dest, "1").as_deref(), Some(digest.as_str()));
    let sent = front_stats(ECR, &dest)["bytes_in"].as_u64().unwrap() - before;
    assert!(
        sent >= broken_size && sent < missing + 64 * 1024,
        "the rerun sent {sent} bytes; the layers still missing hold {missing}, and nothing else is big"
    );
    for ((layer, _), puts) in landed.iter().zip(puts_before) {
        assert_eq!(
            front_requests(ECR, &dest, "PUT", layer).len(),
            puts,
            "{layer} landed before and was not sent again"
        );
    }
}
