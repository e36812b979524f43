//! Destinations that stop answering (issue 11, row 8): packets dropped or answers that never
//! come, never a refusal. Every run here must end within its bound with one clear line that
//! names the silent host, instead of sitting until the unit's 4-hour timeout.
//! `ECRCP_NET_TIMEOUT_SCALE` shortens ecrcp's network limits (src/net_timeouts.rs) so that
//! each test takes seconds.

use std::fmt::Write as _;
use std::io::Read as _;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Bed, Faults, Run, ECR, HUB};

/// The scale the tests run at: ecrcp's 60 s limits become 3 s, the 120 s answer wait 6 s,
/// an ECR API operation 9 s.
const SCALE: &str = "0.05";

/// How long the bed's front holds a stalled answer: longer than any bound under test, and
/// far shorter than ecrcp's limits were before they existed (the upload's answer: 600 s).
const STALL_SECONDS: u64 = 150;

/// Runs `command` with the scaled limits, killing it after `within` so that a hang fails
/// the test instead of holding it. Returns what it did and how long it took.
fn run_bounded(mut command: Command, within: Duration) -> (Run, Duration) {
    let started = Instant::now();
    let mut child = command
        .env("ECRCP_NET_TIMEOUT_SCALE", SCALE)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ecrcp runs");
    // Drain both pipes on the side, so a chatty run cannot block on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).ok();
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).ok();
        text
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > within {
            child.kill().ok();
            let stderr = err.join().unwrap();
            panic!("ecrcp still ran after {within:?}: it hangs on a silent peer; stderr:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let took = started.elapsed();
    let run = Run {
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    (run, took)
}

#[track_caller]
fn assert_stopped_answering(run: &Run, host: &str) {
    assert_ne!(
        run.code,
        Some(0),
        "the copy cannot have landed; stderr:\n{}",
        run.stderr
    );
    assert!(
        run.stderr
            .lines()
            .any(|line| line.contains("stopped answering") && line.contains(host)),
        "one line names '{host}' and says it stopped answering; stderr:\n{}",
        run.stderr
    );
}

/// The registry engine's upload of a blob reaches the destination, which then never
/// answers it (the front holds the PUT). Before the upload had a silence limit, only its
/// whole-transfer limit (10 minutes) ended it.
#[test]
#[ignore = "needs the test bed"]
fn registry_engine_an_upload_never_answered_fails_within_the_bound() {
    let bed = Bed::get("hang-put");
    let upstream = bed.unique("hang/putsrc");
    // Small enough for the socket buffers to take the whole body: the upload completes on
    // ecrcp's side, and only the answer is missing. (A larger body that the registry stops
    // reading ends sooner: the kernel gives up on an unacknowledged send.)
    bed.push_upstream_with(&upstream, "1", "hang-put", &["--layer-size", "16K"]);
    let dest = bed.unique("hang/putdst");
    let faults = Faults::set(
        ECR,
        &dest,
        &serde_json::json!([{"method": "PUT", "path": "/blobs/uploads/", "delay": STALL_SECONDS}]),
    );

    let mut command = bed.ecrcp();
    command.args([
        "--engine",
        "registry",
        &format!("{upstream}:1"),
        &format!("{ECR}/{dest}:1"),
    ]);
    let (run, took) = run_bounded(command, Duration::from_secs(60));

    assert_stopped_answering(&run, ECR);
    assert!(run.stderr.contains("cannot copy blob sha256:"), "{}", run.stderr);
    // The answer wait (6 s scaled) per upload, a few uploads side by side, and startup.
    assert!(took < Duration::from_secs(45), "took {took:?}");
    assert!(!faults.fired().is_empty(), "the front held an upload");
    assert_eq!(bed.digest(ECR, &dest, "1"), None, "no tag without its blobs");
}

/// The source stops sending a blob mid-way for longer than the idle limit: its read is
/// resumed with `Range`, and the upload it feeds waits meanwhile. The upload's silence clock
/// counts only the time the destination had bytes to take and took none; it used to run
/// out at the same moment as the source's, and the destination was blamed for the source.
#[test]
#[ignore = "needs the test bed"]
fn registry_engine_an_upload_waiting_on_a_paused_source_is_not_called_silent() {
    let bed = Bed::get("hang-paused-source");
    let upstream = bed.unique("hang/pausedsrc");
    bed.push_upstream_with(&upstream, "1", "hang-paused", &["--layer-size", "1M"]);
    let layer = bed.manifest(HUB, &upstream, "1")["layers"][0]["digest"]
        .as_str()
        .expect("a layer")
        .to_owned();
    // The front sends the first 256 KiB at once, then nothing for about six seconds.
    let faults = Faults::set(
        HUB,
        &upstream,
        &serde_json::json!([{"method": "GET", "path": format!("/blobs/{layer}"), "rate": 40_000, "times": 1}]),
    );
    let dest = bed.unique("hang/pauseddst");

    let mut command = bed.ecrcp();
    command.args([
        "--engine",
        "registry",
        &format!("{upstream}:1"),
        &format!("{ECR}/{dest}:1"),
    ]);
    let (run, _) = run_bounded(command, Duration::from_secs(60));

    assert_eq!(faults.fired(), [1], "the front paused the source");
    assert_eq!(
        run.code,
        Some(0),
        "the copy survives a paused source; stderr:\n{}",
        run.stderr
    );
    let resumed = crate::support::front_requests(HUB, &upstream, "GET", &layer)
        .iter()
        .any(|request| request["status"] == 206);
    assert!(resumed, "the read resumed with Range");
    assert!(bed.digest(ECR, &dest, "1").is_some());
}

/// In sync, a destination repository whose uploads go unanswered costs its own image only:
/// the other image lands, the run ends within the bound, and exits non-zero.
#[test]
#[ignore = "needs the test bed"]
fn registry_engine_sync_goes_on_past_a_silent_destination() {
    let bed = Bed::get("hang-sync");
    let silent = bed.unique("hang/syncsilent");
    let fine = bed.unique("hang/syncfine");
    bed.push_upstream_with(&silent, "1", "hang-sync-a", &["--layer-size", "16K"]);
    let fine_digest = bed.push_upstream_with(&fine, "1", "hang-sync-b", &["--layer-size", "16K"]);
    let prefix = bed.unique("hangsync");
    let _faults = Faults::set(
        ECR,
        &format!("{prefix}/{silent}"),
        &serde_json::json!([{"method": "PUT", "path": "/blobs/uploads/", "delay": STALL_SECONDS}]),
    );
    let config = bed.sync_config(&format!(
        "version = 1\n[defaults]\nengine = \"registry\"\ndestination = \"{ECR}/{prefix}/\"\n\n\
         [[image]]\nsource = \"{silent}:1\"\n\n[[image]]\nsource = \"{fine}:1\"\n"
    ));

    let (run, took) = run_bounded(bed.sync_command(&config), Duration::from_secs(60));

    assert_ne!(run.code, Some(0), "{}", run.stderr);
    assert!(took < Duration::from_secs(45), "took {took:?}");
    assert_eq!(
        bed.digest(ECR, &format!("{prefix}/{fine}"), "1").as_deref(),
        Some(fine_digest.as_str()),
        "the other image landed; stderr:\n{}",
        run.stderr
    );
    let outcomes = run.outcomes();
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    assert!(
        run.events("image failed")
            .iter()
            .any(|event| event.to_string().contains("stopped answering")),
        "the silent image failed saying why; stderr:\n{}",
        run.stderr
    );
}

/// Packets to the destination are dropped (an iptables DROP rule in the bed's own network
/// namespace): nothing ever answers, not even the TCP handshake. The rule holds only an
/// address of this test's own (a third ECR account's name, added to the bed's hosts file),
/// so tests running beside it see nothing of it.
#[test]
#[ignore = "needs the test bed"]
fn registry_engine_a_destination_dropping_packets_fails_within_the_bound() {
    let bed = Bed::get("hang-drop");
    let host = black_hole();
    let upstream = bed.unique("hang/dropsrc");
    bed.push_upstream_with(&upstream, "1", "hang-drop", &["--layer-size", "64K"]);

    let mut command = bed.ecrcp();
    command.args([
        "--engine",
        "registry",
        &format!("{upstream}:1"),
        &format!("{host}/{upstream}:1"),
    ]);
    let (run, took) = run_bounded(command, Duration::from_secs(60));

    assert_stopped_answering(&run, &host);
    assert!(took < Duration::from_secs(30), "took {took:?}");
}

/// A sync of more images into the black hole than it checks at once (8 per job slot): once
/// a request to it went unanswered, the later ones fail at once, saying so, instead of each
/// waiting out the limit again (1,000 images at 32 checks at once and 10 s each would take
/// five minutes).
#[test]
#[ignore = "needs the test bed"]
fn sync_into_a_silent_destination_waits_out_its_limit_once_not_once_per_image() {
    let bed = Bed::get("hang-syncdrop");
    let host = black_hole();
    let mut config = format!(
        "version = 1\n[sync]\njobs = 1\n[defaults]\nengine = \"registry\"\ndestination = \"{host}/\"\n"
    );
    let mut images = Vec::new();
    for index in 0..12 {
        let upstream = bed.unique(&format!("hang/many{index}"));
        bed.push_upstream_with(
            &upstream,
            "1",
            &format!("hang-many-{index}"),
            &["--layer-size", "16K"],
        );
        writeln!(config, "[[image]]\nsource = \"{upstream}:1\"").unwrap();
        images.push(upstream);
    }
    let config = bed.sync_config(&config);

    let (run, _) = run_bounded(bed.sync_command(&config), Duration::from_secs(120));

    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let failed = run.events("image failed");
    assert_eq!(failed.len(), images.len(), "{}", run.stderr);
    let waited = failed
        .iter()
        .filter(|event| event.to_string().contains("got no answer"))
        .count();
    let skipped = failed
        .iter()
        .filter(|event| event.to_string().contains("not asked again"))
        .count();
    assert!(
        waited <= 8 && skipped >= 4 && waited + skipped == images.len(),
        "only the checks in flight at once wait; the rest fail at once ({waited} waited, {skipped} skipped):\n{}",
        run.stderr
    );
}

/// The same black hole with the docker engine: ecrcp's own check of the destination finds
/// it silent, and no docker push is started into it.
#[test]
#[ignore = "needs the test bed"]
fn docker_engine_a_destination_dropping_packets_fails_within_the_bound() {
    let bed = Bed::get("hang-dropdocker");
    let host = black_hole();
    let upstream = bed.unique("hang/dropdsrc");
    bed.push_upstream_with(&upstream, "1", "hang-dropdocker", &["--layer-size", "64K"]);

    let mut command = bed.ecrcp();
    command.args([&format!("{upstream}:1"), &format!("{host}/{upstream}:1")]);
    let (run, took) = run_bounded(command, Duration::from_secs(120));

    assert_stopped_answering(&run, &host);
    assert!(took < Duration::from_secs(60), "took {took:?}");
    assert_eq!(bed.docker_calls_of("push"), 0, "{:?}", bed.docker_calls());
}

/// The docker engine against a registry that accepts the push and never answers its
/// upload: docker has no limit of its own on that wait, so ecrcp's transfer limit
/// (`--transfer-timeout`) must end it.
#[test]
#[ignore = "needs the test bed"]
fn docker_engine_a_push_never_answered_ends_at_the_transfer_limit() {
    let bed = Bed::get("hang-dockerput");
    let upstream = bed.unique("hang/dputsrc");
    bed.push_upstream_with(&upstream, "1", "hang-dockerput", &["--layer-size", "64K"]);
    let dest = bed.unique("hang/dputdst");
    let faults = Faults::set(
        ECR,
        &dest,
        &serde_json::json!([{"method": ["PUT", "PATCH"], "path": "/blobs/uploads/", "delay": STALL_SECONDS}]),
    );

    let mut command = bed.ecrcp();
    command
        .env("ECRCP_TRANSFER_TIMEOUT", "15s")
        .args([&format!("{upstream}:1"), &format!("{ECR}/{dest}:1")]);
    let (run, took) = run_bounded(command, Duration::from_secs(120));

    assert_ne!(run.code, Some(0), "{}", run.stderr);
    assert!(!faults.fired().is_empty(), "the front held docker's upload");
    assert!(took < Duration::from_secs(100), "took {took:?}");
    assert!(
        run.stderr.contains("15s") || run.stderr.contains("15 s"),
        "the error names the limit that ended docker; stderr:\n{}",
        run.stderr
    );
    assert_eq!(bed.digest(ECR, &dest, "1"), None);
}

/// The ECR API endpoint accepts connections and never answers (a listener of this test's
/// own that reads nothing). The SDK had a connect limit only: the run hung for good.
#[test]
#[ignore = "needs the test bed"]
fn an_ecr_api_that_never_answers_fails_within_the_bound() {
    let bed = Bed::get("hang-api");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });

    let mut command = bed.ecrcp();
    command
        .env("AWS_ENDPOINT_URL", &endpoint)
        .args(["alpine:3.20", &format!("{ECR}/hang/api:3.20")]);
    let (run, took) = run_bounded(command, Duration::from_secs(90));

    assert_ne!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr.contains("the ECR API stopped answering"),
        "stderr:\n{}",
        run.stderr
    );
    // One operation's bound (9 s scaled) per API call the run makes before it gives up.
    assert!(took < Duration::from_secs(40), "took {took:?}");
}

/// A host name of an ECR registry whose packets the bed's network drops: a third account's
/// name on a loopback address nothing listens on, with an iptables DROP rule for it.
fn black_hole() -> String {
    const ADDRESS: &str = "127.0.0.99";
    let host = "999999999999.dkr.ecr.us-east-1.amazonaws.com".to_owned();
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap();
    if !hosts.lines().any(|line| line.contains(&host)) {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open("/etc/hosts")
            .unwrap();
        std::io::Write::write_all(&mut file, format!("{ADDRESS} {host}\n").as_bytes()).unwrap();
    }
    let rule = ["OUTPUT", "-d", ADDRESS, "-p", "tcp", "-j", "DROP"];
    let present = Command::new("iptables")
        .arg("-C")
        .args(rule)
        .status()
        .unwrap()
        .success();
    if !present {
        let added = Command::new("iptables").arg("-A").args(rule).status().unwrap();
        assert!(added.success(), "iptables works in the bed's namespace");
    }
    host
}
