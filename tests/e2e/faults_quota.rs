//! Issue 11, row 4: Docker Hub's pull quota running out between the check (a free HEAD) and
//! the pull, and other registries' 429s. A sync defers the image (exit 75) and copies the
//! others; the command line fails with when the allowance renews; neither asks again. A
//! short `Retry-After` from another registry is waited out; a long one fails at once.

use std::time::{Duration, Instant};

use crate::support::{front_requests, hub_knob, Bed, Faults, Run, ECR, HUB};

fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Docker Hub's allowance spent for one repository (tests/testbed/hub_front.py's `spent`),
/// so that tests running at the same time pull on; whole again when dropped. The knob holds
/// one list for the hub, so tests that turn it take a lock first.
struct Spent {
    _lock: std::fs::File,
    repositories: Vec<String>,
}

impl Spent {
    fn lock() -> Spent {
        let bed = std::env::var_os("ECRCP_TESTBED").expect("end-to-end tests run inside the test bed");
        let file = std::fs::File::create(std::path::Path::new(&bed).join("hub-spent.lock")).unwrap();
        file.lock().unwrap();
        Spent {
            _lock: file,
            repositories: Vec::new(),
        }
    }

    fn spend(&mut self, repository: &str) {
        self.repositories.push(repository.to_owned());
        hub_knob("ratelimit", &serde_json::json!({ "spent": self.repositories }));
    }
}

impl Drop for Spent {
    fn drop(&mut self) {
        hub_knob("ratelimit", &serde_json::json!({ "spent": [] }));
    }
}

/// Runs `command` while Docker Hub's allowance runs out under it: the first manifest GET of
/// `upstream` is held at the front until the allowance is spent, so the check's HEAD saw
/// pulls left and the pull meets Docker Hub's own 429 (with its `ratelimit-*` headers).
/// Returns the run and how many manifest GETs of `upstream` the hub answered.
fn with_quota_gone_after_the_head(upstream: &str, command: &mut std::process::Command) -> (Run, usize) {
    let mut spent = Spent::lock();
    let held = Faults::set(
        HUB,
        upstream,
        &serde_json::json!([{"method": "GET", "path": "/manifests/", "delay": 2, "times": 1}]),
    );
    let child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(60), "the pull's manifest GET", || {
        held.fired() == [1]
    });
    spent.spend(upstream);
    let run = Run::from(child.wait_with_output().unwrap());
    let gets = front_requests(HUB, upstream, "GET", "/manifests/");
    assert!(
        gets.iter().all(|entry| entry["status"] == 429),
        "every manifest GET met the quota: {gets:?}"
    );
    (run, gets.len())
}

fn sync_defers_the_image_and_copies_the_others(test: &str, engine: &str) {
    let bed = Bed::get(test);
    let limited = bed.unique("quota/limited");
    let other = bed.unique("quota/other");
    bed.push_upstream(&limited, "1", "limited");
    bed.push_upstream(&other, "1", "other");
    let prefix = bed.unique("quota");
    // One copy at a time, the other image first: it lands before the allowance runs out.
    let config = bed.sync_config(&format!(
        "version = 1\n[sync]\njobs = 1\n[defaults]\nengine = \"{engine}\"\ndestination = \"{ECR}/{prefix}/\"\n\
         [[image]]\nsource = \"{other}:1\"\n[[image]]\nsource = \"{limited}:1\"\n"
    ));

    let (run, gets) = with_quota_gone_after_the_head(&limited, &mut bed.sync_command(&config));
    run.assert_code(75);
    let outcomes = run.outcomes();
    assert_eq!(outcomes[&format!("{limited}:1")], "deferred", "{outcomes:?}");
    assert_eq!(outcomes[&format!("{other}:1")], "copied", "{outcomes:?}");
    assert_eq!(gets, 1, "one pull attempt, never a loop");
    let why = run.events("image deferred")[0]["why"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(why.contains("pull rate limit"), "{why}");
    assert!(
        bed.repository(&format!("{prefix}/{limited}"))
            .is_none_or(|_| bed.digest(ECR, &format!("{prefix}/{limited}"), "1").is_none()),
        "no tag for the deferred image"
    );
    assert!(bed.digest(ECR, &format!("{prefix}/{other}"), "1").is_some());
}

#[test]
#[ignore = "needs the test bed"]
fn docker_engine_hub_quota_gone_after_the_head_defers_the_image_in_sync() {
    sync_defers_the_image_and_copies_the_others("quota-sync-docker", "docker");
}

#[test]
#[ignore = "needs the test bed"]
fn registry_engine_hub_quota_gone_after_the_head_defers_the_image_in_sync() {
    sync_defers_the_image_and_copies_the_others("quota-sync-registry", "registry");
}

fn command_line_fails_saying_when_the_allowance_renews(test: &str, engine: &str) {
    let bed = Bed::get(test);
    let limited = bed.unique("quota/cli");
    bed.push_upstream(&limited, "1", "cli");
    let destination = bed.unique("quota/cli");
    let mut command = bed.ecrcp();
    command.args([
        "--engine",
        engine,
        &format!("{limited}:1"),
        &format!("{ECR}/{destination}:1"),
    ]);

    let started = Instant::now();
    let (run, gets) = with_quota_gone_after_the_head(&limited, &mut command);
    run.assert_code(1);
    assert_eq!(gets, 1, "one pull attempt, never a loop");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "gave up at once, took {:?}",
        started.elapsed()
    );
    assert!(run.stderr.contains("pull rate limit"), "{}", run.stderr);
    // The bed's hub counts 100 pulls per 21600 s, as Docker Hub does for anonymous pulls.
    assert!(
        run.stderr.contains("renews within 6 h 0 min, by ") && run.stderr.contains(" UTC"),
        "the message says when the allowance renews: {}",
        run.stderr
    );
    assert!(bed.digest(ECR, &destination, "1").is_none(), "no tag");
}

#[test]
#[ignore = "needs the test bed"]
fn docker_engine_hub_quota_gone_after_the_head_fails_the_command_line_with_the_renewal_time() {
    command_line_fails_saying_when_the_allowance_renews("quota-cli-docker", "docker");
}

#[test]
#[ignore = "needs the test bed"]
fn registry_engine_hub_quota_gone_after_the_head_fails_the_command_line_with_the_renewal_time() {
    command_line_fails_saying_when_the_allowance_renews("quota-cli-registry", "registry");
}

/// ECR answers the manifest PUT with 429 and `Retry-After: retry_after`, `times` times
/// (always with `None`). Returns the run, the manifest PUTs, the image the tag holds after
/// it ("" when none) and the source's.
fn another_registrys_retry_after(
    test: &str,
    engine: &str,
    retry_after: &str,
    times: Option<u32>,
) -> (Run, Vec<serde_json::Value>, String, String) {
    let bed = Bed::get(test);
    let upstream = bed.unique("quota/src");
    bed.push_upstream(&upstream, "1", "throttled");
    let destination = bed.unique("quota/dst");
    let faults = Faults::set(
        ECR,
        &destination,
        &serde_json::json!([{"method": "PUT", "path": "/manifests/", "status": 429, "retry_after": retry_after, "times": times}]),
    );
    let run = bed.run(&[
        "--engine",
        engine,
        &format!("{upstream}:1"),
        &format!("{ECR}/{destination}:1"),
    ]);
    let puts = front_requests(ECR, &destination, "PUT", "/manifests/");
    drop(faults);
    let copied = bed
        .digest(ECR, &destination, "1")
        .map(|_| bed.image_id(ECR, &destination, "1"))
        .unwrap_or_default();
    (run, puts, copied, bed.image_id(HUB, &upstream, "1"))
}

/// The copy lands after one 429; returns how long after it the manifest went again.
fn a_short_retry_after_is_waited_out(test: &str, engine: &str) -> f64 {
    let (run, puts, copied, source) = another_registrys_retry_after(test, engine, "2", Some(1));
    run.assert_code(0);
    assert_eq!(copied, source, "the copy landed");
    assert_eq!(puts.len(), 2, "one 429, then the manifest: {puts:?}");
    assert_eq!(puts[0]["status"], 429, "{puts:?}");
    let waited = puts[1]["at"].as_f64().unwrap() - puts[0]["at"].as_f64().unwrap();
    assert!(waited < 30.0, "{waited:.2} s between the 429 and the retry");
    waited
}

#[test]
#[ignore = "needs the test bed"]
fn docker_engine_another_registrys_429_with_a_short_retry_after_is_waited_out() {
    // docker's own answer to a 429 is to fail (it reads no Retry-After): ecrcp runs the push
    // again after its backoff (the first wait: 1 s, jittered down to half), which a
    // throttle outlasting its attempts would turn into a failure.
    let waited = a_short_retry_after_is_waited_out("quota-ra2-docker", "docker");
    assert!(waited >= 0.45, "the push ran again at once ({waited:.2} s)");
}

#[test]
#[ignore = "needs the test bed"]
fn registry_engine_another_registrys_429_with_a_short_retry_after_is_waited_out() {
    let waited = a_short_retry_after_is_waited_out("quota-ra2-registry", "registry");
    assert!(
        waited >= 1.9,
        "the retry came {waited:.2} s after a 429 that asked for 2 s"
    );
}

fn a_long_retry_after_fails_at_once(test: &str, engine: &str) {
    let started = Instant::now();
    let (run, puts, copied, _) = another_registrys_retry_after(test, engine, "3600", None);
    run.assert_code(1);
    assert!(copied.is_empty(), "no tag");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "no waiting, took {:?}",
        started.elapsed()
    );
    assert!(
        run.stderr.contains("429") || run.stderr.contains("toomanyrequests"),
        "{}",
        run.stderr
    );
    // The docker engine tries again while attempts make progress, and at most 4 times in a
    // row without: 5 PUTs at most. The registry engine honours the Retry-After: 1.
    assert!(
        (1..=5).contains(&puts.len()),
        "a few manifest PUTs at most, never a loop: {puts:?}"
    );
    assert!(
        !run.stderr.contains("pull rate limit"),
        "no quota: {}",
        run.stderr
    );
}

#[test]
#[ignore = "needs the test bed"]
fn docker_engine_another_registrys_429_with_a_long_retry_after_fails_without_a_loop() {
    a_long_retry_after_fails_at_once("quota-ra3600-docker", "docker");
}

#[test]
#[ignore = "needs the test bed"]
fn registry_engine_another_registrys_429_with_a_long_retry_after_fails_without_a_loop() {
    a_long_retry_after_fails_at_once("quota-ra3600-registry", "registry");
}

/// ECR throttles one destination's manifest PUT with `Retry-After: 3600`, past the retries:
/// sync defers that image (exit 75, the timer tries again) and copies the other, with either
/// engine alike.
fn sync_defers_an_image_its_destination_throttles(test: &str, engine: &str) {
    let bed = Bed::get(test);
    let throttled = bed.unique("quota/throttled");
    let other = bed.unique("quota/fine");
    bed.push_upstream(&throttled, "1", "throttled-sync");
    bed.push_upstream(&other, "1", "fine-sync");
    let prefix = bed.unique("quota");
    let faults = Faults::set(
        ECR,
        &format!("{prefix}/{throttled}"),
        &serde_json::json!([{"method": "PUT", "path": "/manifests/", "status": 429, "retry_after": "3600"}]),
    );
    let config = bed.sync_config(&format!(
        "version = 1\n[defaults]\nengine = \"{engine}\"\ndestination = \"{ECR}/{prefix}/\"\n\
         [[image]]\nsource = \"{throttled}:1\"\n[[image]]\nsource = \"{other}:1\"\n"
    ));
    let run = bed.sync(&config, &[]);
    drop(faults);
    run.assert_code(75);
    let outcomes = run.outcomes();
    assert_eq!(outcomes[&format!("{throttled}:1")], "deferred", "{outcomes:?}");
    assert_eq!(outcomes[&format!("{other}:1")], "copied", "{outcomes:?}");
    assert!(
        bed.digest(ECR, &format!("{prefix}/{throttled}"), "1").is_none(),
        "no tag"
    );
}

#[test]
#[ignore = "needs the test bed"]
fn docker_engine_a_destination_throttled_past_the_retries_defers_the_image_in_sync() {
    sync_defers_an_image_its_destination_throttles("quota-dst-sync-docker", "docker");
}

#[test]
#[ignore = "needs the test bed"]
fn registry_engine_a_destination_throttled_past_the_retries_defers_the_image_in_sync() {
    sync_defers_an_image_its_destination_throttles("quota-dst-sync-registry", "registry");
}
