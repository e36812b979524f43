//! `ecrcp sync` on the test bed: what a first and a second run cost, changed upstreams, bad
//! configs, concurrent runs, SIGTERM, and the Docker Hub pull budget.

use std::time::{Duration, Instant};

use crate::support::{Bed, RestoreRateLimit, Run, ECR, HUB};

/// A config that mirrors `sources` into this test's own prefix in the fake ECR.
fn config(bed: &Bed, prefix: &str, extra: &str, sources: &[&str]) -> std::path::PathBuf {
    let images = sources.iter().fold(String::new(), |text, source| {
        text + &format!("\n[[image]]\nsource = \"{source}\"\n")
    });
    bed.sync_config(&format!(
        "version = 1\n{extra}\n[defaults]\ndestination = \"{ECR}/{prefix}/\"\n{images}"
    ))
}

#[test]
#[ignore = "needs the test bed"]
fn a_second_sync_sends_only_heads_upstream_and_a_changed_image_is_copied_again() {
    let bed = Bed::get("sync-steady");
    let upstream = bed.unique("e2e/steady");
    bed.push_upstream(&upstream, "1", "one");
    bed.push_upstream(&upstream, "2", "two");
    let prefix = bed.unique("steady");
    let (one, two) = (format!("{upstream}:1"), format!("{upstream}:2"));
    let config = config(&bed, &prefix, "", &[&one, &two]);
    let manifests = format!("/v2/{upstream}/manifests/");

    let first = bed.sync(&config, &[]);
    first.assert_code(0);
    assert_eq!(first.summary()["copied"], 2, "{}", first.stderr);
    assert!(bed.digest(ECR, &format!("{prefix}/{upstream}"), "1").is_some());

    let gets = bed.requests("hub", "GET", &manifests);
    let heads = bed.answered("hub", "HEAD", &manifests, 200);
    let (pulls, pushes) = (bed.docker_calls_of("pull"), bed.docker_calls_of("push"));
    let second = bed.sync(&config, &[]);
    second.assert_code(0);
    assert_eq!(second.summary()["unchanged"], 2, "{}", second.stderr);
    assert_eq!(second.summary()["hub_pulls_spent"], 0);
    assert_eq!(
        bed.requests("hub", "GET", &manifests),
        gets,
        "no manifest GET upstream"
    );
    assert_eq!(
        bed.answered("hub", "HEAD", &manifests, 200),
        heads + 2,
        "one answered HEAD per image:\n{}",
        bed.log("hub")
            .lines()
            .filter(|line| line.contains(&manifests))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(bed.docker_calls_of("pull"), pulls, "no docker pull");
    assert_eq!(bed.docker_calls_of("push"), pushes, "no docker push");

    bed.push_upstream(&upstream, "1", "one, changed");
    let third = bed.sync(&config, &[]);
    third.assert_code(0);
    let outcomes = third.outcomes();
    assert_eq!(outcomes[&one], "copied", "{outcomes:?}");
    assert_eq!(outcomes[&two], "unchanged", "{outcomes:?}");
    assert_eq!(bed.docker_calls_of("push"), pushes + 1);
    assert_eq!(
        bed.image_id(ECR, &format!("{prefix}/{upstream}"), "1"),
        bed.image_id(crate::support::HUB, &upstream, "1")
    );
}

#[test]
#[ignore = "needs the test bed"]
fn a_dry_run_spends_no_docker_hub_pull_even_without_the_ledger() {
    let bed = Bed::get("sync-dry-noledger");
    let upstream = bed.unique("e2e/dry");
    bed.push_upstream(&upstream, "1", "one");
    let config = config(&bed, &bed.unique("dry"), "", &[&format!("{upstream}:1")]);
    bed.sync(&config, &[]).assert_code(0);
    std::fs::remove_file(bed.scratch().join("state/copies.json")).unwrap();
    let manifests = format!("/v2/{upstream}/manifests/");
    let gets = bed.requests("hub", "GET", &manifests);

    let dry = bed.sync(&config, &["--dry-run"]);
    dry.assert_code(0);
    let event = &dry.events("image synced")[0];
    // Under the containerd store the destination serves the source's own digest (the push
    // sent its manifest as it was): no ledger is needed to know it.
    let (outcome, why) = if crate::support::containerd_store() {
        ("unchanged", "same digest")
    } else {
        ("would copy", "compares image configs first")
    };
    assert_eq!(event["outcome"], outcome, "{event}");
    assert!(event["why"].as_str().unwrap().contains(why), "{event}");
    assert_eq!(
        bed.requests("hub", "GET", &manifests),
        gets,
        "no manifest GET upstream"
    );

    let real = bed.sync(&config, &[]);
    real.assert_code(0);
    assert_eq!(
        real.summary()["unchanged"],
        1,
        "the real run compared and found the same image"
    );
    // The classic store's copy is docker's own manifest: the real run reads the source's
    // config to compare (one pull). Under the containerd store the digests match already.
    let spent = u64::from(!crate::support::containerd_store());
    assert_eq!(real.summary()["hub_pulls_spent"], spent);
}

#[test]
#[ignore = "needs the test bed"]
fn a_failing_image_fails_alone_and_the_run_exits_1() {
    let bed = Bed::get("sync-fail");
    let prefix = bed.unique("fail");
    let config = config(&bed, &prefix, "", &["alpine:3.20", "nope/missing:1", "redis:7"]);
    let run = bed.sync(&config, &[]);
    run.assert_code(1);
    let outcomes = run.outcomes();
    assert_eq!(outcomes["alpine:3.20"], "copied", "{outcomes:?}");
    assert_eq!(outcomes["redis:7"], "copied", "{outcomes:?}");
    assert_eq!(outcomes["nope/missing:1"], "failed", "{outcomes:?}");
    let failed = &run.events("image failed")[0];
    assert!(
        failed["error"].as_str().unwrap().contains("does not exist"),
        "{failed}"
    );
    assert_eq!(run.summary()["failed"], 1);
    assert!(bed.repository(&format!("{prefix}/nope/missing")).is_none());
}

#[test]
#[ignore = "needs the test bed"]
fn a_config_with_an_unknown_key_copies_nothing_and_points_at_its_line() {
    let bed = Bed::get("sync-badkey");
    let prefix = bed.unique("badkey");
    let config = bed.sync_config(&format!(
        "version = 1\n[defaults]\ndestination = \"{ECR}/{prefix}/\"\n\n[[image]]\nsource = \"alpine:3.20\"\n\n[[image]]\nsource = \"redis:7\"\nplatfrom = \"linux/amd64\"\n"
    ));
    let run = bed.sync(&config, &[]);
    run.assert_code(2);
    let expected = format!("{}:10:1: unknown field `platfrom`", config.display());
    assert!(run.stderr.contains(&expected), "{}", run.stderr);
    assert!(
        run.stderr.contains("expected one of"),
        "says what is expected: {}",
        run.stderr
    );
    assert!(bed.docker_calls().is_empty(), "no docker command");
    assert!(
        bed.repository(&format!("{prefix}/alpine")).is_none(),
        "nothing copied"
    );
}

#[test]
#[ignore = "needs the test bed"]
fn check_validates_without_touching_the_network_and_dry_run_says_why() {
    let bed = Bed::get("sync-check");
    let prefix = bed.unique("check");
    let config = config(&bed, &prefix, "", &["alpine:3.20", "redis:7"]);
    let check = bed
        .ecrcp()
        .args(["sync", "--check", "--config", config.to_str().unwrap()])
        .env("DOCKER_HOST", "unix:///nonexistent.sock")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .output()
        .unwrap();
    let check = crate::support::Run::from(check);
    check.assert_code(0);
    assert!(check.stdout.contains("valid, 2 copies"), "{}", check.stdout);

    let dry = bed.sync(&config, &["--dry-run"]);
    dry.assert_code(0);
    let events = dry.events("image synced");
    assert_eq!(events.len(), 2, "{}", dry.stderr);
    for event in events {
        assert_eq!(event["outcome"], "would copy");
        assert_eq!(event["why"], "destination missing");
    }
    assert!(
        bed.repository(&format!("{prefix}/alpine")).is_none(),
        "dry run created nothing"
    );
    assert_eq!(bed.docker_calls_of("pull"), 0);
}

#[test]
#[ignore = "needs the test bed"]
fn a_second_concurrent_sync_finds_the_lock_and_exits_at_once() {
    let bed = Bed::get("sync-lock");
    let upstream = bed.unique("e2e/lockbig");
    bed.push_upstream_sized(&upstream, "1", "big", 48 * 1024 * 1024);
    let config = config(&bed, &bed.unique("lock"), "", &[&format!("{upstream}:1")]);
    let mut first = bed
        .sync_command(&config)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(20), || bed.docker_calls_of("pull") > 0);

    let started = Instant::now();
    let second = bed.sync(&config, &[]);
    second.assert_code(75);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        second
            .stderr
            .contains(&format!("another ecrcp sync is running (pid {}", first.id())),
        "{}",
        second.stderr
    );
    assert!(first.wait().unwrap().success(), "the first run finishes its work");
    bed.sync(&config, &[]).assert_code(0);
}

/// A root run must not write through links that others can plant: a state directory others
/// can write to is refused before anything runs, naming it and the fix; a lock file planted
/// as a link in one's own is refused, and the file it points at is left as it was.
#[test]
#[ignore = "needs the test bed"]
fn a_state_directory_others_could_plant_links_in_is_refused_and_nothing_is_written_through() {
    use std::os::unix::fs::PermissionsExt as _;
    let bed = Bed::get("sync-statedir");
    let config = config(
        &bed,
        &bed.unique("statedir"),
        "",
        &[&format!("{HUB}/library/none:1")],
    );
    let shared = bed.scratch().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let run = Run::from(
        bed.sync_command(&config)
            .env("ECRCP_STATE_DIR", &shared)
            .output()
            .unwrap(),
    );
    run.assert_code(2);
    let named = format!("refusing the state directory '{}'", shared.display());
    assert!(
        run.stderr.contains(&named) && run.stderr.contains("mkdir -m 700"),
        "{}",
        run.stderr
    );

    let own = bed.scratch().join("own");
    std::fs::create_dir(&own).unwrap();
    std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o700)).unwrap();
    let victim = bed.scratch().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    std::os::unix::fs::symlink(&victim, own.join("sync.lock")).unwrap();
    let run = Run::from(
        bed.sync_command(&config)
            .env("ECRCP_STATE_DIR", &own)
            .output()
            .unwrap(),
    );
    run.assert_code(1);
    assert!(run.stderr.contains("refusing to lock"), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(bed.docker_calls().is_empty(), "{:?}", bed.docker_calls());
}

#[test]
#[ignore = "needs the test bed"]
fn sigterm_lets_the_copy_under_way_finish_starts_no_other_and_releases_the_lock() {
    let bed = Bed::get("sync-term");
    let upstream = bed.unique("e2e/termbig");
    bed.push_upstream_sized(&upstream, "1", "big", 48 * 1024 * 1024);
    let prefix = bed.unique("term");
    let big = format!("{upstream}:1");
    let config = config(
        &bed,
        &prefix,
        "[sync]\njobs = 1",
        &[&big, "alpine:3.20", "redis:7"],
    );
    // As systemd and a shell signal a job: the whole process group, docker children too.
    let child = std::os::unix::process::CommandExt::process_group(&mut bed.sync_command(&config), 0)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(20), || bed.docker_calls_of("pull") > 0);
    let group = format!("-{}", child.id());
    assert!(std::process::Command::new("kill")
        .args(["-TERM", "--", &group])
        .status()
        .unwrap()
        .success());
    let run = crate::support::Run::from(child.wait_with_output().unwrap());
    run.assert_code(143);
    let outcomes = run.outcomes();
    assert_eq!(
        outcomes[&big], "copied",
        "the copy under way finished: {outcomes:?}"
    );
    assert_eq!(outcomes["alpine:3.20"], "not started", "{outcomes:?}");
    assert_eq!(outcomes["redis:7"], "not started", "{outcomes:?}");
    assert_eq!(run.summary()["not_started"], 2);
    assert!(bed.repository(&format!("{prefix}/alpine")).is_none());

    let again = bed.sync(&config, &[]);
    again.assert_code(0);
    assert_eq!(
        again.summary()["copied"],
        2,
        "the lock was released: {}",
        again.stderr
    );
}

#[test]
#[ignore = "needs the test bed"]
fn copies_beyond_the_docker_hub_allowance_are_deferred_not_spent() {
    let bed = Bed::get("sync-ratelimit");
    let upstream = bed.unique("e2e/rl");
    for tag in ["1", "2", "3"] {
        bed.push_upstream(&upstream, tag, tag);
    }
    let sources: Vec<String> = ["1", "2", "3"]
        .iter()
        .map(|tag| format!("{upstream}:{tag}"))
        .collect();
    let sources: Vec<&str> = sources.iter().map(String::as_str).collect();
    let config = config(
        &bed,
        &bed.unique("rl"),
        "[sync]\njobs = 1\nreserve_pulls = 10",
        &sources,
    );
    let _restore = RestoreRateLimit(&bed);
    bed.hub_rate_limit(&serde_json::json!({"limit": 100, "remaining": 11, "enforce": true}));
    let gets = bed.requests("hub", "GET", &format!("/v2/{upstream}/manifests/"));

    let run = bed.sync(&config, &[]);
    run.assert_code(75);
    let summary = run.summary();
    assert_eq!(
        (summary["copied"].as_u64(), summary["deferred"].as_u64()),
        (Some(1), Some(2)),
        "{}",
        run.stderr
    );
    assert_eq!(summary["hub_pulls_remaining"], 10, "the reserve is intact");
    assert_eq!(
        bed.requests("hub", "GET", &format!("/v2/{upstream}/manifests/")),
        gets + 1,
        "one manifest GET: the one copy's pull"
    );
    let deferred = run.events("image deferred");
    assert!(
        deferred[0]["why"]
            .as_str()
            .unwrap_or_default()
            .contains("kept in reserve"),
        "{deferred:?}"
    );
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "needs the test bed"]
fn a_docker_pull_of_a_multi_platform_image_is_booked_and_reported_as_the_two_pulls_docker_hub_counts() {
    let bed = Bed::get("sync-index-pulls");
    let upstream = bed.unique("e2e/index-pulls");
    bed.push_index(
        HUB,
        crate::support::HUB_ADMIN,
        &upstream,
        "1",
        "one",
        "linux/amd64,linux/arm64",
        "docker",
        0,
    );
    let source = format!("{upstream}:1");
    let config = config(&bed, &bed.unique("index-pulls"), "", &[&source]);
    let manifests = format!("/v2/{upstream}/manifests/");
    let gets = bed.answered("hub", "GET", &manifests, 200);

    let run = bed.sync(&config, &[]);
    run.assert_code(0);
    assert_eq!(run.outcomes()[&source], "copied", "{}", run.stderr);
    let counted = bed.answered("hub", "GET", &manifests, 200) - gets;
    assert_eq!(counted, 2, "docker read the index, then its platform's manifest");
    assert_eq!(
        run.summary()["hub_pulls_spent"],
        counted,
        "ecrcp reports what Docker Hub counted"
    );
}
