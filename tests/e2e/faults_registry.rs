//! Issue 11, row 1 for the registry engine: a destination registry that refuses upload
//! starts, loses the answers to uploads it stored, refuses a repository's first manifest
//! PUT and resets blob HEADs, on a deterministic hostile schedule (one request in 3 or 4 of
//! each kind). Every copy completes, on the command line and in sync, with the digest kept
//! at both ends, no blob the registry stored is sent twice, and the log says what was
//! retried and why.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::support::{front_requests, Bed, Faults, Run, ECR, HUB};

/// The hostile schedule, for one destination repository. POST and PATCH on
/// `/blobs/uploads/` open and feed upload sessions, a PUT there finishes one; the second
/// such PUT finds its session lost (404, as after a registry restart).
fn hostile() -> serde_json::Value {
    serde_json::json!([
        {"method": "PUT", "path": "/blobs/uploads/", "status": 404, "skip": 1, "times": 1},
        {"method": "POST", "path": "/blobs/uploads/", "status": 503, "every": 3},
        {"method": ["PUT", "PATCH"], "path": "/blobs/uploads/", "lose_answer": true, "every": 3},
        {"method": "PUT", "path": "/manifests/", "status": 500, "times": 1},
        {"method": "HEAD", "path": "/blobs/", "drop": true, "every": 4},
    ])
}

/// The index's digest and its children's at the source.
fn tree(bed: &Bed, registry: &str, repo: &str, tag: &str) -> (Option<String>, Vec<String>) {
    let index = bed.digest(registry, repo, tag);
    let children = index
        .as_ref()
        .map(|_| {
            bed.manifest(registry, repo, tag)["manifests"]
                .as_array()
                .expect("an index")
                .iter()
                .map(|child| child["digest"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default();
    (index, children)
}

/// Per blob, the finishing PUTs the registry stored (answered 201, or stored with its
/// answer lost): each blob must be stored once, a lost answer re-checked, not re-sent.
fn stored_twice(repo: &str) -> BTreeMap<String, usize> {
    let mut stored: BTreeMap<String, usize> = BTreeMap::new();
    for entry in front_requests(ECR, repo, "PUT", "/blobs/uploads/") {
        let status = entry["status"].to_string();
        if !(status == "201" || status == "\"lost 201\"") {
            continue;
        }
        let path = entry["path"].as_str().unwrap().replace("%3A", ":");
        let digest = path
            .split("digest=")
            .nth(1)
            .map(|rest| rest.split('&').next().unwrap().to_owned())
            .unwrap_or(path);
        *stored.entry(digest).or_default() += 1;
    }
    stored.retain(|_, count| *count > 1);
    stored
}

fn push_source(bed: &Bed, upstream: &str, seed: &str) -> String {
    bed.push_upstream_with(
        upstream,
        "1",
        seed,
        &[
            "--platforms",
            "linux/amd64,linux/arm64/v8",
            "--format",
            "oci",
            "--layers",
            "3",
            "--base-layers",
            "1",
            "--layer-size",
            "512K",
        ],
    )
}

#[test]
#[ignore = "needs the test bed"]
fn registry_engine_copies_through_a_hostile_registry_from_the_command_line() {
    let bed = Bed::get("regfaults-cli");
    let upstream = bed.unique("faults/clisrc");
    let digest = push_source(&bed, &upstream, "hostile-cli");
    let dest = bed.unique("faults/clidst");
    let faults = Faults::set(ECR, &dest, &hostile());

    let run = Run::from(
        // At the command line's own level: what was retried shows without asking for it.
        bed.ecrcp()
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

    let fired = faults.fired();
    assert!(
        fired[0] == 1 && fired[1] >= 1 && fired[2] >= 2 && fired[3] == 1 && fired[4] >= 1,
        "the schedule bit: {fired:?}"
    );
    let (source_index, source_children) = tree(&bed, HUB, &upstream, "1");
    assert_eq!(source_index.as_deref(), Some(digest.as_str()));
    assert_eq!(
        tree(&bed, ECR, &dest, "1"),
        (Some(digest.clone()), source_children.clone()),
        "the index landed byte for byte"
    );
    for child in &source_children {
        assert_eq!(
            bed.digest(ECR, &dest, child).as_deref(),
            Some(child.as_str()),
            "child {child} landed"
        );
    }
    assert_eq!(
        stored_twice(&dest),
        BTreeMap::new(),
        "a blob the registry stored (its answer lost) was re-checked with HEAD, not sent again"
    );
    for why in ["503", "500", "POST", "PUT", "HEAD"] {
        assert!(
            run.stderr
                .lines()
                .any(|line| line.contains("retrying") && line.contains(why)),
            "the log says a {why} was retried:\n{}",
            run.stderr
        );
    }
    assert!(
        run.stderr.contains("lost the upload session"),
        "the log says an upload session was lost and started over:\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("landed although its answer was lost"),
        "the log says a lost answer's blob was found at the destination:\n{}",
        run.stderr
    );
}

#[test]
#[ignore = "needs the test bed"]
fn registry_engine_syncs_several_images_through_a_hostile_registry() {
    let bed = Bed::get("regfaults-sync");
    let prefix = bed.unique("faults/sync");
    let mut images = Vec::new();
    let mut faults = Vec::new();
    let mut config = String::from("version = 1\n[defaults]\nengine = \"registry\"\n");
    for name in ["a", "b", "c"] {
        let upstream = format!("{prefix}-src{name}");
        let digest = push_source(&bed, &upstream, &format!("hostile-sync-{name}"));
        let dest = format!("{prefix}/dst{name}");
        faults.push(Faults::set(ECR, &dest, &hostile()));
        writeln!(
            config,
            "\n[[image]]\nsource = \"{upstream}:1\"\ndestination = \"{ECR}/{dest}:1\""
        )
        .unwrap();
        images.push((upstream, dest, digest));
    }
    let config = bed.sync_config(&config);

    let run = bed.sync(&config, &[]);
    run.assert_code(0);

    for (upstream, dest, digest) in &images {
        let (_, children) = tree(&bed, HUB, upstream, "1");
        assert_eq!(
            tree(&bed, ECR, dest, "1"),
            (Some(digest.clone()), children),
            "{dest} holds the source's index and children"
        );
        assert_eq!(
            stored_twice(dest),
            BTreeMap::new(),
            "{dest}: no blob stored twice"
        );
    }
    for faults in &faults {
        let fired = faults.fired();
        assert_eq!(
            (fired[0], fired[3]),
            (1, 1),
            "each repository lost a session and had its first manifest PUT refused: {fired:?}"
        );
    }
    let outcomes = run.outcomes();
    assert_eq!(outcomes.len(), 3, "{outcomes:?}");
    assert!(
        outcomes.values().all(|outcome| outcome == "copied"),
        "{outcomes:?}"
    );
    let retried = run.events("registry request failed; retrying");
    assert!(
        retried
            .iter()
            .any(|event| event["error"].as_str().is_some_and(|error| error.contains("503"))),
        "the 503s were logged: {retried:#?}"
    );
    assert!(
        !run.events("blob landed although its answer was lost").is_empty(),
        "the lost answers were logged:\n{}",
        run.stderr
    );
}
