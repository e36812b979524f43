//! One image into several destinations (two accounts, two regions) end to end: the source is
//! read once (one `docker pull`, or each manifest and blob GET once with the registry
//! engine), Docker Hub counts one copy, a destination that fails does not stop the others,
//! and a second pass is one upstream HEAD plus one HEAD per destination.

use std::collections::{BTreeMap, BTreeSet};

use crate::support::{front_requests, Bed, Faults, Run, ECR, ECR2, HUB, HUB_ADMIN};

const ECR_WEST: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";

/// The `outcome` of each destination, from the run's per-image events.
fn outcomes(run: &Run) -> BTreeMap<String, String> {
    ["image synced", "image failed", "image deferred"]
        .iter()
        .flat_map(|message| run.events(message))
        .map(|event| {
            (
                event["destination"].as_str().unwrap_or_default().to_owned(),
                event["outcome"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// A config copying `source` into 123's us-east-1 registry, 222's registry, and the own
/// registry (123) of eu-west-1, each under its own repository prefix.
fn three_destinations(engine: &str, source: &str, prefix: &str) -> String {
    format!(
        "version = 1\n[defaults]\nengine = \"{engine}\"\n\
         [[image]]\nsource = \"{source}\"\ndestination = [\n  \"{ECR}/{prefix}/east/\",\n  \
         \"{ECR2}/{prefix}/other/\",\n  {{ to = \"{prefix}/west/\", region = \"eu-west-1\" }},\n]\n"
    )
}

/// The three destination repositories of `three_destinations`, by registry, for `repo`.
fn destinations(prefix: &str, repo: &str) -> [(&'static str, &'static str, String); 3] {
    [
        (ECR, "ecr", format!("{prefix}/east/{repo}")),
        (ECR2, "ecr2", format!("{prefix}/other/{repo}")),
        (ECR_WEST, "ecr", format!("{prefix}/west/{repo}")),
    ]
}

/// Where the bed's helpers read `host`: 123's registries of both regions are one registry
/// in the bed, which the helpers log in to under the us-east-1 name.
fn read_host(host: &str) -> &str {
    if host == ECR_WEST {
        ECR
    } else {
        host
    }
}

/// The requests to Docker Hub's `repo` that `method` made at a path holding `needle` and that
/// were answered: the 401s that challenge a request without a token, which the client then
/// sends again with one, are the token exchange, not reads.
fn upstream(repo: &str, method: &str, needle: &str) -> usize {
    front_requests(HUB, repo, method, needle)
        .iter()
        .filter(|request| request["status"] == 200)
        .count()
}

/// Manifest HEADs answered for the image's repositories: upstream, then each destination.
fn heads(bed: &Bed, repo: &str, prefix: &str) -> (usize, Vec<usize>) {
    let upstream = upstream(repo, "HEAD", "/manifests/");
    let destinations = destinations(prefix, repo)
        .iter()
        // Both of 123's regions share one registry in the bed: the repositories tell them
        // apart.
        .map(|(_, log, repository)| bed.answered(log, "HEAD", &format!("/v2/{repository}/manifests/"), 200))
        .collect();
    (upstream, destinations)
}

#[test]
#[ignore = "needs the test bed"]
fn registry_engine_reads_each_manifest_and_blob_once_for_two_accounts_and_two_regions() {
    let bed = Bed::get("fanout-registry");
    let repo = bed.unique("e2e/fanout-reg");
    let prefix = bed.unique("fan");
    let digest = bed.push_index(
        HUB,
        HUB_ADMIN,
        &repo,
        "1",
        "1",
        "linux/amd64,linux/arm64",
        "oci",
        3 << 20,
    );
    let config = bed.sync_config(&three_destinations("registry", &format!("{repo}:1"), &prefix));
    let run = bed.sync(&config, &[]);
    run.assert_code(0);
    let summary = run.summary();
    assert_eq!(summary["copied"], 3, "{}", run.stderr);
    for (host, _, repository) in destinations(&prefix, &repo) {
        assert_eq!(
            bed.digest(read_host(host), &repository, "1").as_deref(),
            Some(digest.as_str()),
            "{host}/{repository} serves the source's index byte for byte"
        );
    }
    // The index and each child, once: what one copy costs on Docker Hub's count.
    assert_eq!(upstream(&repo, "GET", "/manifests/"), 3, "{}", run.stderr);
    assert_eq!(summary["hub_pulls_spent"], 3, "{summary}");
    // One in the checks for the three destinations, and the one after the copies that reads
    // Docker Hub's allowance again for the summary.
    assert_eq!(
        upstream(&repo, "HEAD", "/manifests/"),
        2,
        "one upstream HEAD in the checks"
    );
    // Every blob of every platform, each read once from the source.
    let blob_reads = upstream(&repo, "GET", "/blobs/");
    let index = bed.manifest(HUB, &repo, "1");
    let mut blobs = BTreeSet::new();
    for child in index["manifests"].as_array().unwrap() {
        let manifest = bed.manifest(HUB, &repo, child["digest"].as_str().unwrap());
        blobs.insert(manifest["config"]["digest"].as_str().unwrap().to_owned());
        for layer in manifest["layers"].as_array().unwrap() {
            blobs.insert(layer["digest"].as_str().unwrap().to_owned());
        }
    }
    for blob in &blobs {
        assert_eq!(
            upstream(&repo, "GET", &format!("/blobs/{blob}")),
            1,
            "blob {blob} read once for three destinations"
        );
    }
    assert_eq!(blob_reads, blobs.len(), "no other blob read");
    let reads = upstream(&repo, "GET", "/");

    let before = heads(&bed, &repo, &prefix);
    let run = bed.sync(&config, &[]);
    run.assert_code(0);
    assert_eq!(run.summary()["unchanged"], 3, "{}", run.stderr);
    let after = heads(&bed, &repo, &prefix);
    assert_eq!(after.0 - before.0, 1, "one upstream HEAD:\n{}", run.stderr);
    let per_destination: Vec<usize> = after.1.iter().zip(&before.1).map(|(a, b)| a - b).collect();
    assert_eq!(per_destination, [1, 1, 1], "one HEAD per destination");
    assert_eq!(upstream(&repo, "GET", "/"), reads, "no GET upstream");
}

#[test]
#[ignore = "needs the test bed"]
fn docker_engine_pulls_once_then_tags_and_pushes_each_destination() {
    let bed = Bed::get("fanout-docker");
    let repo = bed.unique("e2e/fanout-dkr");
    let prefix = bed.unique("fan");
    bed.push_upstream(&repo, "1", "fanout-docker");
    let config = bed.sync_config(&three_destinations("docker", &format!("{repo}:1"), &prefix));
    let run = bed.sync(&config, &[]);
    run.assert_code(0);
    let summary = run.summary();
    assert_eq!(summary["copied"], 3, "{}", run.stderr);
    assert_eq!(bed.docker_calls_of("pull"), 1, "{:?}", bed.docker_calls());
    assert_eq!(bed.docker_calls_of("push"), 3, "{:?}", bed.docker_calls());
    for (host, _, repository) in destinations(&prefix, &repo) {
        assert!(
            bed.digest(read_host(host), &repository, "1").is_some(),
            "{host}/{repository}:1 landed"
        );
    }
    assert_eq!(summary["hub_pulls_spent"], 1, "one Docker Hub pull: {summary}");
    assert_eq!(
        upstream(&repo, "GET", "/manifests/"),
        1,
        "docker read the manifest once"
    );

    let before = heads(&bed, &repo, &prefix);
    let run = bed.sync(&config, &[]);
    run.assert_code(0);
    assert_eq!(run.summary()["unchanged"], 3, "{}", run.stderr);
    assert_eq!(bed.docker_calls_of("pull"), 1, "nothing pulled the second time");
    let after = heads(&bed, &repo, &prefix);
    assert_eq!(after.0 - before.0, 1, "one upstream HEAD:\n{}", run.stderr);
    let per_destination: Vec<usize> = after.1.iter().zip(&before.1).map(|(a, b)| a - b).collect();
    assert_eq!(per_destination, [1, 1, 1], "one HEAD per destination");
}

#[test]
#[ignore = "needs the test bed"]
fn a_destination_that_refuses_the_blobs_fails_alone_with_either_engine() {
    for engine in ["registry", "docker"] {
        let bed = Bed::get(&format!("fanout-fail-{engine}"));
        let repo = bed.unique("e2e/fanout-fail");
        let prefix = bed.unique("fan");
        bed.push_upstream_sized(&repo, "1", &format!("fanout-fail-{engine}"), 1 << 20);
        let [east, other, west] = destinations(&prefix, &repo);
        // 123's us-east-1 repository takes no blob: every upload's last request is denied.
        let faults = Faults::set(
            ECR,
            &east.2,
            &serde_json::json!([{"method": "PUT", "path": "/blobs/uploads/", "status": 403}]),
        );
        let config = bed.sync_config(&three_destinations(engine, &format!("{repo}:1"), &prefix));
        let run = bed.sync(&config, &[]);
        run.assert_code(1);
        assert!(faults.fired()[0] > 0, "the fault fired ({engine})");
        let failed = format!("{}/{}:1", east.0, east.2);
        let landed = [
            format!("{}/{}:1", other.0, other.2),
            format!("{}/{}:1", west.0, west.2),
        ];
        let outcomes = outcomes(&run);
        assert_eq!(
            outcomes.get(&failed).map(String::as_str),
            Some("failed"),
            "{engine}: {outcomes:?}"
        );
        for destination in &landed {
            assert_eq!(
                outcomes.get(destination).map(String::as_str),
                Some("copied"),
                "{engine}: {outcomes:?}\n{}",
                run.stderr
            );
        }
        assert!(bed.digest(other.0, &other.2, "1").is_some(), "{engine}");
        assert!(bed.digest(read_host(west.0), &west.2, "1").is_some(), "{engine}");
        assert!(bed.digest(east.0, &east.2, "1").is_none(), "{engine}");
        let summary = run.summary();
        assert_eq!(
            (summary["copied"].as_u64(), summary["failed"].as_u64()),
            (Some(2), Some(1)),
            "{engine}: {summary}"
        );
        assert_eq!(
            summary["failed_destinations"],
            failed.as_str(),
            "{engine}: {summary}"
        );
        drop(faults);
    }
}

/// A destination whose connection stays open but takes no byte of an upload (a hung load
/// balancer, a flow-control stall) is dropped alone: the other destination, fed by the same
/// source read, gets the blob before its own silence limit runs out. The network limits are
/// scaled down (60 s of silence become 3 s) to keep it short. Here the kernel also ends the
/// stalled connection (TCP_USER_TIMEOUT, half the idle limit); a stall TCP cannot see (an
/// HTTP/2 stream's flow control) is covered by the unit tests of `hand_over` and the
/// upload's silence clock.
#[test]
#[ignore = "needs the test bed"]
fn a_destination_that_stops_reading_an_upload_is_dropped_alone() {
    let bed = Bed::get("fanout-stall");
    let repo = bed.unique("e2e/fanout-stall");
    let prefix = bed.unique("fan");
    // Larger than the socket buffers take, so the upload stops mid-body.
    bed.push_upstream_sized(&repo, "1", "fanout-stall", 16 << 20);
    let layer = bed.manifest(HUB, &repo, "1")["layers"][0]["digest"]
        .as_str()
        .expect("a layer")
        .to_owned();
    let stalled = format!("{prefix}/east/{repo}");
    let healthy = format!("{prefix}/other/{repo}");
    let faults = Faults::set(
        ECR,
        &stalled,
        &serde_json::json!([{
            "method": "PUT",
            "path": format!("digest=sha256(%3A|:){}", layer.trim_start_matches("sha256:")),
            "stall": 30,
            "times": 1,
        }]),
    );
    let config = bed.sync_config(&format!(
        "version = 1\n[defaults]\nengine = \"registry\"\n\
         [[image]]\nsource = \"{repo}:1\"\ndestination = [\"{ECR}/{prefix}/east/\", \"{ECR2}/{prefix}/other/\"]\n"
    ));

    let run = bed
        .sync_command(&config)
        .env("ECRCP_NET_TIMEOUT_SCALE", "0.05")
        .output()
        .map(Run::from)
        .expect("ecrcp runs");

    assert_eq!(faults.fired(), [1], "the front stalled the upload");
    let outcomes = outcomes(&run);
    assert_eq!(
        outcomes.get(&format!("{ECR2}/{healthy}:1")).map(String::as_str),
        Some("copied"),
        "the healthy destination is not held back by the stalled one: {outcomes:?}\n{}",
        run.stderr
    );
    assert!(bed.digest(ECR2, &healthy, "1").is_some());
}
