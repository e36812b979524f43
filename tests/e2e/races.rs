//! Concurrent jobs in one run: shared sources, shared repositories, the pull budget.

use crate::support::{front_requests, Bed, Faults, RestoreRateLimit, ECR, HUB};

/// The config digest `registry` serves for `repo:reference` on `architecture`, following an
/// index to its child.
fn config_for(bed: &Bed, registry: &str, repo: &str, reference: &str, architecture: &str) -> String {
    let manifest = bed.manifest(registry, repo, reference);
    if let Some(children) = manifest["manifests"].as_array() {
        let child = children
            .iter()
            .find(|child| child["platform"]["architecture"] == architecture)
            .unwrap_or_else(|| panic!("no {architecture} child in {manifest}"));
        return config_for(
            bed,
            registry,
            repo,
            child["digest"].as_str().unwrap(),
            architecture,
        );
    }
    manifest["config"]["digest"]
        .as_str()
        .expect("a config digest")
        .to_owned()
}

#[test]
#[ignore = "needs the test bed"]
fn two_platforms_of_one_source_in_one_sync_each_land_with_their_own_architecture() {
    let bed = Bed::get("race-platforms");
    let repository = format!("{}/x", bed.unique("platforms"));
    let config = bed.sync_config(&format!(
        "version = 1\n[sync]\njobs = 2\n\
         [[image]]\nsource = \"nginx:latest\"\nplatform = \"linux/amd64\"\ndestination = \"{ECR}/{repository}:amd64\"\n\
         [[image]]\nsource = \"nginx:latest\"\nplatform = \"linux/arm64\"\ndestination = \"{ECR}/{repository}:arm64\"\n"
    ));

    // Slow tags give a second pull of the same name every chance to land in between.
    let run = bed
        .sync_command(&config)
        .env("ECRCP_TEST_DELAY", "tag docker.io/library/nginx:latest=2")
        .output()
        .map(crate::support::Run::from)
        .expect("ecrcp runs");
    run.assert_code(0);
    assert_eq!(run.summary()["copied"], 2, "{}", run.stderr);
    for (tag, architecture) in [("amd64", "amd64"), ("arm64", "arm64")] {
        assert_eq!(
            config_for(&bed, ECR, &repository, tag, architecture),
            config_for(&bed, HUB, "library/nginx", "latest", architecture),
            "{repository}:{tag} holds the {architecture} image\n{}",
            run.stderr
        );
    }
}

#[test]
#[ignore = "needs the test bed"]
fn a_failed_copy_does_not_remove_the_repository_another_tag_was_pushed_into() {
    let bed = Bed::get("race-rollback");
    let repository = bed.unique("rollback");
    let config = bed.sync_config(&format!(
        "version = 1\n[sync]\njobs = 2\n\
         [[image]]\nsource = \"alpine:3.20\"\ndestination = \"{ECR}/{repository}:a\"\n\
         [[image]]\nsource = \"alpine:3.20\"\ndestination = \"{ECR}/{repository}:b\"\n"
    ));
    let refused = format!("push {ECR}/{repository}:a");

    // The push to `:a` is refused late, after `:b` found the repository `:a` created.
    let run = bed
        .sync_command(&config)
        .env("ECRCP_TEST_REFUSE_PUSH_OF", &refused)
        .env("ECRCP_TEST_DELAY", format!("{refused}=3,{ECR}/{repository}:b=1"))
        .output()
        .map(crate::support::Run::from)
        .expect("ecrcp runs");
    run.assert_code(1);
    tag_b_landed_and_the_repository_stays(&bed, &run, &repository);
}

/// Whether two of the front's logged requests were under way at the same moment.
fn overlapped(first: &serde_json::Value, second: &serde_json::Value) -> bool {
    let span = |entry: &serde_json::Value| {
        let at = entry["at"].as_f64().expect("a start time");
        (at, at + entry["ms"].as_f64().expect("a duration") / 1000.0)
    };
    let ((start, end), (other_start, other_end)) = (span(first), span(second));
    start < other_end && other_start < end
}

/// Syncs three tags of one source repository into one new ECR repository with `jobs = 3`,
/// each tag's manifest PUT held a second by the front, and asserts the copies overlapped.
fn copies_into_one_repository_overlap(engine: &str) {
    let bed = Bed::get(&format!("race-side-{engine}"));
    let upstream = bed.unique("e2e/side");
    let prefix = bed.unique("side");
    let tags = ["1", "2", "3"];
    for tag in tags {
        bed.push_upstream(&upstream, tag, tag);
    }
    let images = tags.iter().fold(String::new(), |text, tag| {
        text + &format!("[[image]]\nsource = \"{upstream}:{tag}\"\n")
    });
    let config = bed.sync_config(&format!(
        "version = 1\n[sync]\njobs = 3\n[defaults]\nengine = \"{engine}\"\ndestination = \"{ECR}/{prefix}/\"\n{images}"
    ));
    let destination = format!("{prefix}/{upstream}");
    let _slow = Faults::set(
        ECR,
        &destination,
        &serde_json::json!([{"method": "PUT", "path": "/manifests/", "delay": 1}]),
    );

    let run = bed.sync(&config, &[]);
    run.assert_code(0);
    assert_eq!(run.summary()["copied"], 3, "{}", run.stderr);
    let puts = front_requests(ECR, &destination, "PUT", "/manifests/");
    assert_eq!(puts.len(), 3, "one manifest PUT per tag: {puts:?}");
    let pairs = (0..puts.len())
        .flat_map(|first| (first + 1..puts.len()).map(move |second| (first, second)))
        .filter(|&(first, second)| overlapped(&puts[first], &puts[second]))
        .count();
    assert!(
        pairs > 0,
        "the {engine} engine copied the tags of one repository one at a time: {puts:?}\n{}",
        run.stderr
    );
}

#[test]
#[ignore = "needs the test bed"]
fn tags_of_one_repository_are_copied_side_by_side_by_the_registry_engine() {
    copies_into_one_repository_overlap("registry");
}

#[test]
#[ignore = "needs the test bed"]
fn tags_of_one_repository_are_copied_side_by_side_by_the_docker_engine() {
    copies_into_one_repository_overlap("docker");
}

#[test]
#[ignore = "needs the test bed"]
fn a_creator_that_fails_while_another_tag_is_pushed_leaves_the_repository_to_it() {
    let bed = Bed::get("race-creator");
    let upstream = bed.unique("e2e/creator");
    let prefix = bed.unique("creator");
    for tag in ["a", "b"] {
        bed.push_upstream(&upstream, tag, tag);
    }
    let config = bed.sync_config(&format!(
        "version = 1\n[sync]\njobs = 2\n[defaults]\nengine = \"registry\"\ndestination = \"{ECR}/{prefix}/\"\n\
         [[image]]\nsource = \"{upstream}:a\"\n[[image]]\nsource = \"{upstream}:b\"\n"
    ));
    let destination = format!("{prefix}/{upstream}");
    // `:b` reads its source a second late, so `:a` creates the repository; `:a`'s manifest
    // is refused while `:b`'s is still on its way.
    let _late = Faults::set(
        HUB,
        &upstream,
        &serde_json::json!([{"method": "GET", "path": "/manifests/b$", "delay": 1}]),
    );
    let _refused = Faults::set(
        ECR,
        &destination,
        &serde_json::json!([
            {"method": "PUT", "path": "/manifests/a$", "delay": 2, "status": 403},
            {"method": "PUT", "path": "/manifests/b$", "delay": 3},
        ]),
    );

    let run = bed.sync(&config, &[]);
    run.assert_code(1);
    tag_b_landed_and_the_repository_stays(&bed, &run, &destination);
}

#[test]
#[ignore = "needs the test bed"]
fn after_a_lost_ledger_a_compare_then_copy_takes_two_pulls_of_the_docker_hub_allowance() {
    let bed = Bed::get("race-budget");
    let upstream = bed.unique("e2e/budget");
    let tags = ["1", "2", "3"];
    let images = tags.iter().fold(String::new(), |text, tag| {
        text + &format!("\n[[image]]\nsource = \"{upstream}:{tag}\"\n")
    });
    let prefix = bed.unique("budget");
    let config = bed.sync_config(&format!(
        "version = 1\n[sync]\njobs = 1\nreserve_pulls = 10\n[defaults]\ndestination = \"{ECR}/{prefix}/\"\n{images}"
    ));
    for tag in tags {
        bed.push_upstream(&upstream, tag, "old");
    }
    bed.sync(&config, &[]).assert_code(0);
    // Upstream moves on, and the ledger that knew the destinations is lost: each image now
    // costs a config comparison (a manifest GET) and then a docker pull.
    for tag in tags {
        bed.push_upstream(&upstream, tag, "new");
    }
    std::fs::remove_dir_all(bed.scratch().join("state")).unwrap();
    let _restore = RestoreRateLimit(&bed);
    bed.hub_rate_limit(&serde_json::json!({"limit": 100, "remaining": 13, "enforce": true}));
    let manifests = format!("/v2/{upstream}/manifests/");
    let gets = bed.requests("hub", "GET", &manifests);

    let run = bed.sync(&config, &[]);
    run.assert_code(75);
    let summary = run.summary();
    assert_eq!(
        (summary["copied"].as_u64(), summary["deferred"].as_u64()),
        (Some(1), Some(2)),
        "three pulls above the reserve pay for one comparison and its copy\n{}",
        run.stderr
    );
    let spent = bed.requests("hub", "GET", &manifests) - gets;
    assert_eq!(spent, 2, "a comparison and a pull");
    assert_eq!(summary["hub_pulls_spent"].as_u64(), Some(spent as u64));
    assert_eq!(summary["hub_pulls_remaining"], 11, "the reserve is intact");
}

#[test]
#[ignore = "needs the test bed"]
fn a_copy_that_fails_after_a_comparison_reports_both_pulls_it_spent() {
    let bed = Bed::get("race-spent");
    let upstream = bed.unique("e2e/spent");
    let prefix = bed.unique("spent");
    let config = bed.sync_config(&format!(
        "version = 1\n[[image]]\nsource = \"{upstream}:1\"\ndestination = \"{ECR}/{prefix}/\"\n"
    ));
    bed.push_upstream(&upstream, "1", "old");
    bed.sync(&config, &[]).assert_code(0);
    bed.push_upstream(&upstream, "1", "new");
    std::fs::remove_dir_all(bed.scratch().join("state")).unwrap();
    let manifests = format!("/v2/{upstream}/manifests/");
    let gets = bed.requests("hub", "GET", &manifests);

    let run = bed
        .sync_command(&config)
        .env("ECRCP_TEST_REFUSE_PUSH", "unknown: the registry is read-only")
        .output()
        .map(crate::support::Run::from)
        .expect("ecrcp runs");
    run.assert_code(1);
    let spent = bed.requests("hub", "GET", &manifests) - gets;
    assert_eq!(spent, 2, "a comparison and a pull");
    assert_eq!(
        run.summary()["hub_pulls_spent"].as_u64(),
        Some(spent as u64),
        "{}",
        run.stderr
    );
}

/// A sync in which `:a` failed and `:b` landed in `repository`, which the run must not have
/// removed.
#[track_caller]
fn tag_b_landed_and_the_repository_stays(bed: &Bed, run: &crate::support::Run, repository: &str) {
    let summary = run.summary();
    assert_eq!(
        (summary["copied"].as_u64(), summary["failed"].as_u64()),
        (Some(1), Some(1)),
        "{}",
        run.stderr
    );
    assert!(bed.digest(ECR, repository, "b").is_some(), "the other tag landed");
    assert!(
        bed.repository(repository).is_some(),
        "the repository the other tag was pushed into stays:\n{}",
        run.stderr
    );
}
