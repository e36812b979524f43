//! Issue 11, row 5: dockerd restarted (SIGTERM, as `systemctl restart docker` does) or
//! killed (SIGKILL) in the middle of a pull or a push, and a daemon that stays down. Each
//! test has a dockerd of its own ([`PrivateDockerd`]): the bed's is shared by every test.
//! The copy under way waits for the daemon to answer again and runs its step again; sync
//! goes on with the other images; no tag ever names anything but the complete source image,
//! and no temporary local tag is left behind.

use std::io::Read as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::dockerd::PrivateDockerd;
use crate::support::{Bed, Faults, Run, ECR, HUB};

/// The limit of quick docker commands, which also bounds the wait for a daemon to answer
/// again: long enough for the private dockerd's restart, short enough for a test.
const COMMAND_LIMIT: &str = "20s";

/// How long the daemon stays down in a restart: longer than the docker engine's first
/// wait before it tries a failed step again, as a real daemon's restart takes (it stops its
/// containers first, up to 10 s each, then starts and restores them).
const DOWN: Duration = Duration::from_secs(5);

/// How a test deals the fault.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// SIGTERM (`systemctl restart docker`), down for [`DOWN`], then started again.
    Restart,
    /// SIGKILL (a crash), down for [`DOWN`], then started again.
    Kill,
    /// SIGTERM, and never started again.
    Stop,
}

fn deal(daemon: &mut PrivateDockerd, fault: Fault) {
    match fault {
        Fault::Restart => daemon.stop(),
        Fault::Kill => daemon.kill(),
        Fault::Stop => {
            daemon.stop();
            return;
        }
    }
    std::thread::sleep(DOWN);
    daemon.start_again();
}

/// One source of `bytes` of incompressible layer under `upstream:TAG`.
fn source(bed: &Bed, upstream: &str, tag: &str, bytes: usize) {
    bed.push_upstream_sized(upstream, tag, &format!("daemon {upstream} {tag}"), bytes);
}

/// Source blobs at 1 MiB/s from Docker Hub's front: a pull of a few MiB takes seconds.
fn slow_pulls(upstream: &str) -> Faults {
    Faults::set(
        HUB,
        upstream,
        &serde_json::json!([{"method": "GET", "path": "/blobs/", "rate": 1 << 20}]),
    )
}

/// Upload bodies at 1 MiB/s into ECR's front: a push of a few MiB takes seconds.
fn slow_pushes(destination: &str) -> Faults {
    Faults::set(
        ECR,
        destination,
        &serde_json::json!([{"method": ["PATCH", "PUT"], "path": "/blobs/uploads/", "rate": 1 << 20}]),
    )
}

/// `command` against `daemon`, started in the background with its output captured.
fn spawn(daemon: &PrivateDockerd, mut command: Command) -> Child {
    command
        .env("DOCKER_HOST", daemon.host())
        .env("ECRCP_COMMAND_TIMEOUT", COMMAND_LIMIT)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ecrcp runs")
}

/// Waits until ecrcp has run `docker SUBCOMMAND` (whose argv contains `needle`) `after`
/// ago, so that the fault lands in the middle of it.
fn when_running(bed: &Bed, subcommand: &str, needle: &str, after: Duration) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !bed
        .docker_calls()
        .iter()
        .any(|argv| argv.split_whitespace().next() == Some(subcommand) && argv.contains(needle))
    {
        assert!(
            Instant::now() < deadline,
            "ecrcp never ran docker {subcommand}: {:?}",
            bed.docker_calls()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(after);
}

fn finish(mut child: Child) -> Run {
    let mut stderr = String::new();
    let mut stdout = String::new();
    // stderr first: it is where ecrcp writes much, and a full pipe would block it.
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    let status = child.wait().unwrap();
    Run {
        code: status.code(),
        stdout,
        stderr,
    }
}

/// The local names the daemon holds: ecrcp's temporary destination tags must be gone.
fn assert_no_local_destination_tag(daemon: &PrivateDockerd) {
    let listed = daemon.docker(&["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        !listed.contains(ECR),
        "a temporary local tag was left behind: {listed}"
    );
}

/// The destination serves the source's image, or nothing at all.
fn assert_right_or_absent(bed: &Bed, upstream: &str, destination: &str, tag: &str) -> bool {
    if bed.digest(ECR, destination, tag).is_none() {
        return false;
    }
    assert_eq!(
        bed.image_id(ECR, destination, tag),
        bed.image_id(HUB, upstream, tag),
        "{destination}:{tag} holds the source's image"
    );
    true
}

/// `ecrcp SOURCE DEST` with `fault` dealt `after` the start of its `docker SUBCOMMAND`.
fn command_line_copy(
    test: &str,
    subcommand: &str,
    fault: Fault,
) -> (Bed, PrivateDockerd, Run, String, String) {
    let bed = Bed::get(test);
    let mut daemon = PrivateDockerd::start(&bed);
    let upstream = bed.unique("faults/dd");
    source(&bed, &upstream, "1", 8 << 20);
    let destination = bed.unique("faults/ddd");
    let slow = match subcommand {
        "pull" => slow_pulls(&upstream),
        _ => slow_pushes(&destination),
    };
    let mut command = bed.ecrcp();
    // At the command line's own level: the wait for the daemon shows without asking.
    command.args([format!("{upstream}:1"), format!("{ECR}/{destination}:1")]);
    let child = spawn(&daemon, command);
    when_running(&bed, subcommand, "", Duration::from_secs(3));
    let dealt = Instant::now();
    deal(&mut daemon, fault);
    eprintln!("{fault:?} took {:?}", dealt.elapsed());
    let run = finish(child);
    drop(slow);
    eprintln!("ecrcp exited {:?}:\n{}", run.code, run.stderr);
    (bed, daemon, run, upstream, destination)
}

fn assert_rode_it_out(bed: &Bed, daemon: &PrivateDockerd, run: &Run, upstream: &str, destination: &str) {
    run.assert_code(0);
    assert!(
        assert_right_or_absent(bed, upstream, destination, "1"),
        "the copy landed"
    );
    assert!(
        run.stderr.contains("the docker daemon answers again"),
        "the log says the step ran again once the daemon was back: {}",
        run.stderr
    );
    assert_no_local_destination_tag(daemon);
}

#[test]
#[ignore = "needs the test bed"]
fn a_daemon_restarted_mid_pull_is_waited_for_and_the_copy_completes() {
    let (bed, daemon, run, upstream, destination) =
        command_line_copy("daemon_restart_pull", "pull", Fault::Restart);
    assert_rode_it_out(&bed, &daemon, &run, &upstream, &destination);
}

#[test]
#[ignore = "needs the test bed"]
fn a_daemon_restarted_mid_push_is_waited_for_and_the_copy_completes() {
    let (bed, daemon, run, upstream, destination) =
        command_line_copy("daemon_restart_push", "push", Fault::Restart);
    assert_rode_it_out(&bed, &daemon, &run, &upstream, &destination);
}

#[test]
#[ignore = "needs the test bed"]
fn a_daemon_killed_mid_push_is_waited_for_and_the_copy_completes() {
    let (bed, daemon, run, upstream, destination) =
        command_line_copy("daemon_kill_push", "push", Fault::Kill);
    assert_rode_it_out(&bed, &daemon, &run, &upstream, &destination);
}

#[test]
#[ignore = "needs the test bed"]
fn a_daemon_that_stays_down_fails_the_copy_in_bounded_time_with_a_clear_error() {
    let started = Instant::now();
    let (bed, daemon, run, upstream, destination) = command_line_copy("daemon_gone", "push", Fault::Stop);
    run.assert_code(1);
    assert!(
        started.elapsed() < Duration::from_secs(150),
        "bounded by the command limit: {:?}",
        started.elapsed()
    );
    assert!(
        run.stderr
            .contains(&format!("did not answer again within {COMMAND_LIMIT}")),
        "the error says how long ecrcp waited: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("note: is dockerd running?"),
        "the error says what to check: {}",
        run.stderr
    );
    assert!(!assert_right_or_absent(&bed, &upstream, &destination, "1"));
    drop(daemon);
}

/// One synced image: its source repository and its destination repository, tag `1` each.
struct Image {
    upstream: String,
    destination: String,
}

/// Three images from three repositories into three (pushes to one repository take turns:
/// these may run at once), `jobs` at a time; the daemon is dealt `fault` mid-push of the
/// second.
fn sync_with(test: &str, fault: Fault, jobs: usize) -> (Bed, PrivateDockerd, Run, Vec<Image>) {
    let bed = Bed::get(test);
    let mut daemon = PrivateDockerd::start(&bed);
    let prefix = bed.unique("dsync");
    let images: Vec<Image> = ["a", "b", "c"]
        .iter()
        .map(|name| {
            let upstream = bed.unique(&format!("faults/dds{name}"));
            source(&bed, &upstream, "1", 4 << 20);
            Image {
                destination: format!("{prefix}/{upstream}"),
                upstream,
            }
        })
        .collect();
    let entries = images.iter().fold(String::new(), |text, image| {
        text + &format!("\n[[image]]\nsource = \"{}:1\"\n", image.upstream)
    });
    let config = bed.sync_config(&format!(
        "version = 1\n[sync]\njobs = {jobs}\n[defaults]\nengine = \"docker\"\ndestination = \"{ECR}/{prefix}/\"\n{entries}"
    ));
    let slow: Vec<Faults> = images
        .iter()
        .map(|image| slow_pushes(&image.destination))
        .collect();
    let child = spawn(&daemon, bed.sync_command(&config));
    when_running(&bed, "push", &images[1].destination, Duration::from_secs(2));
    deal(&mut daemon, fault);
    let run = finish(child);
    drop(slow);
    eprintln!("ecrcp sync exited {:?}:\n{}", run.code, run.stderr);
    landed(&bed, &images);
    (bed, daemon, run, images)
}

/// How many of `images` landed; each that did holds its source's image.
fn landed(bed: &Bed, images: &[Image]) -> usize {
    images
        .iter()
        .filter(|image| assert_right_or_absent(bed, &image.upstream, &image.destination, "1"))
        .count()
}

#[test]
#[ignore = "needs the test bed"]
fn sync_rides_out_a_daemon_restarted_mid_push_and_copies_every_image() {
    let (bed, daemon, run, images) = sync_with("daemon_sync_restart", Fault::Restart, 1);
    run.assert_code(0);
    assert_eq!(run.summary()["copied"], 3, "{}", run.stderr);
    assert_eq!(landed(&bed, &images), 3);
    assert!(
        !run.events("the docker daemon answers again; running the step again")
            .is_empty(),
        "{}",
        run.stderr
    );
    assert_no_local_destination_tag(&daemon);
}

#[test]
#[ignore = "needs the test bed"]
fn sync_rides_out_a_daemon_killed_mid_push_and_copies_every_image() {
    let (bed, daemon, run, images) = sync_with("daemon_sync_kill", Fault::Kill, 1);
    run.assert_code(0);
    assert_eq!(run.summary()["copied"], 3, "{}", run.stderr);
    assert_eq!(landed(&bed, &images), 3);
    assert_no_local_destination_tag(&daemon);
}

/// Every copy under way when the daemon restarts: each waits for it, and each lands.
#[test]
#[ignore = "needs the test bed"]
fn sync_rides_out_a_daemon_restarted_under_three_copies_at_once() {
    let (bed, daemon, run, images) = sync_with("daemon_sync_parallel", Fault::Restart, 3);
    run.assert_code(0);
    assert_eq!(run.summary()["copied"], 3, "{}", run.stderr);
    assert_eq!(landed(&bed, &images), 3);
    assert!(
        run.events("the docker daemon answers again; running the step again")
            .len()
            >= 2,
        "the copies under way each waited: {}",
        run.stderr
    );
    assert_no_local_destination_tag(&daemon);
}

#[test]
#[ignore = "needs the test bed"]
fn sync_stops_when_the_daemon_stays_down_and_says_why() {
    let started = Instant::now();
    let (_bed, _daemon, run, ..) = sync_with("daemon_sync_gone", Fault::Stop, 1);
    run.assert_code(1);
    assert!(
        started.elapsed() < Duration::from_secs(180),
        "{:?}",
        started.elapsed()
    );
    let outcomes = run.outcomes();
    assert_eq!(
        outcomes.values().filter(|outcome| *outcome == "failed").count(),
        1,
        "{outcomes:?}"
    );
    assert!(
        run.stderr
            .contains(&format!("did not answer again within {COMMAND_LIMIT}")),
        "{}",
        run.stderr
    );
}
