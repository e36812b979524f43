//! docker child processes: signals as systemd and terminals deliver them (to the whole
//! process group), time limits on docker commands and credential helpers, and docker's
//! stderr read on a terminal too.

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{write_executable, Bed, Run, ECR};

/// A docker in front of the bed's recorder: before running `subcommand`, it writes `MARK`
/// into `started` (so a test knows the step is under way) and sleeps `seconds`.
fn slow_docker(bed: &Bed, subcommand: &str, seconds: u32) -> (PathBuf, PathBuf) {
    let started = bed.scratch().join(format!("{subcommand}-started"));
    let path = bed.scratch().join("bin/slow-docker");
    let script = format!(
        "#!/bin/sh\nif [ \"$1\" = {subcommand} ]; then echo MARK >> '{}'; sleep {seconds}; fi\nexec '{}' \"$@\"\n",
        started.display(),
        bed.scratch().join("bin/docker").display()
    );
    write_executable(&path, &script);
    (path, started)
}

/// Starts `command` as a shell starts a job: leader of a process group of its own, which
/// is where a terminal's Ctrl-C and a `kill -- -PGID` go.
fn spawn_as_a_job(command: &mut Command) -> Child {
    command
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ecrcp runs")
}

/// `kill -SIGNAL -- -PGID`: the signal to every process of the job, as a terminal's Ctrl-C
/// (SIGINT) or `systemctl stop` with the default KillMode (SIGTERM) delivers it.
fn signal_the_job(job: &Child, signal: &str) {
    let group = format!("-{}", job.id());
    let status = Command::new("kill")
        .args(["-s", signal, "--", &group])
        .status()
        .unwrap();
    assert!(status.success(), "kill -s {signal} -- {group}");
}

/// Waits for `job` to end, at most `limit`; kills its group and fails the test after that.
fn finish_within(mut job: Child, limit: Duration) -> (Run, Duration) {
    let started = Instant::now();
    while job.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            signal_the_job(&job, "KILL");
            let run = Run::from(job.wait_with_output().unwrap());
            panic!("still running after {limit:?}; stderr:\n{}", run.stderr);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (Run::from(job.wait_with_output().unwrap()), started.elapsed())
}

fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Live processes started for this test (they all carry its DOCKER_CONFIG), as `pid argv`.
fn processes_of(bed: &Bed) -> Vec<String> {
    let marker = format!("DOCKER_CONFIG={}", bed.docker_config().display());
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let dir = entry.path();
        let Ok(environ) = std::fs::read(dir.join("environ")) else {
            continue;
        };
        let ours = environ
            .split(|&byte| byte == 0)
            .any(|var| var == marker.as_bytes());
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
        if ours && !stat.contains(") Z ") {
            let argv = std::fs::read(dir.join("cmdline")).unwrap_or_default();
            found.push(format!(
                "{} {}",
                entry.file_name().to_string_lossy(),
                String::from_utf8_lossy(&argv).replace('\0', " ")
            ));
        }
    }
    found
}

/// Asserts that nothing this test started outlived ecrcp (allowing a moment for the kernel).
#[track_caller]
fn assert_no_leftover_processes(bed: &Bed) {
    let started = Instant::now();
    let mut left = processes_of(bed);
    while !left.is_empty() && started.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(50));
        left = processes_of(bed);
    }
    assert!(left.is_empty(), "processes left behind: {left:#?}");
}

/// The local docker still knows `image` (a temporary tag left behind).
fn local_image_exists(image: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[test]
#[ignore = "needs the test bed"]
fn sigterm_to_the_whole_job_lets_the_sync_copy_under_way_finish() {
    let bed = Bed::get("group-term");
    let prefix = bed.unique("groupterm");
    let config = bed.sync_config(&format!(
        "version = 1\n[sync]\njobs = 1\n[defaults]\ndestination = \"{ECR}/{prefix}/\"\n\
         [[image]]\nsource = \"alpine:3.20\"\n[[image]]\nsource = \"redis:7\"\n"
    ));
    let (docker, push_started) = slow_docker(&bed, "push", 3);
    let job = spawn_as_a_job(bed.sync_command(&config).env("ECRCP_DOCKER", &docker));
    wait_for(Duration::from_secs(30), "the first push", || {
        push_started.exists()
    });
    signal_the_job(&job, "TERM");

    let (run, _) = finish_within(job, Duration::from_secs(60));
    run.assert_code(143);
    let outcomes = run.outcomes();
    assert_eq!(
        outcomes["alpine:3.20"], "copied",
        "the copy under way finished: {outcomes:?}"
    );
    assert_eq!(outcomes["redis:7"], "not started", "{outcomes:?}");
    assert!(bed.digest(ECR, &format!("{prefix}/alpine"), "3.20").is_some());
    assert_no_leftover_processes(&bed);
}

#[test]
#[ignore = "needs the test bed"]
fn a_second_sigterm_ends_the_sync_at_once_and_orphans_no_docker_command() {
    let bed = Bed::get("group-term-twice");
    let prefix = bed.unique("termtwice");
    let config = bed.sync_config(&format!(
        "version = 1\n[defaults]\ndestination = \"{ECR}/{prefix}/\"\n[[image]]\nsource = \"alpine:3.20\"\n"
    ));
    let (docker, push_started) = slow_docker(&bed, "push", 600);
    let job = spawn_as_a_job(bed.sync_command(&config).env("ECRCP_DOCKER", &docker));
    wait_for(Duration::from_secs(30), "the push", || push_started.exists());
    signal_the_job(&job, "TERM");
    std::thread::sleep(Duration::from_millis(500));
    signal_the_job(&job, "TERM");

    let (run, took) = finish_within(job, Duration::from_secs(30));
    run.assert_code(143);
    assert!(took < Duration::from_secs(10), "ended at once: {took:?}");
    assert_no_leftover_processes(&bed);
}

#[test]
#[ignore = "needs the test bed"]
fn ctrl_c_cancels_a_copy_and_leaves_no_tag_repository_or_process_behind() {
    let bed = Bed::get("ctrl-c");
    let prefix = bed.unique("ctrlc");
    let destination = format!("{ECR}/{prefix}/alpine:3.20");
    let (docker, push_started) = slow_docker(&bed, "push", 600);
    let job = spawn_as_a_job(bed.ecrcp().env("ECRCP_DOCKER", &docker).args([
        "alpine:3.20",
        "redis:7",
        &format!("{ECR}/{prefix}/"),
    ]));
    wait_for(Duration::from_secs(30), "the push", || push_started.exists());
    signal_the_job(&job, "INT");

    let (run, took) = finish_within(job, Duration::from_secs(30));
    run.assert_code(130);
    assert!(took < Duration::from_secs(15), "stopped promptly: {took:?}");
    assert!(
        run.stderr.contains("ecrcp: cannot copy 'alpine:3.20': ") && run.stderr.contains("interrupted"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("1 more copy not attempted"), "{}", run.stderr);
    assert_eq!(
        bed.docker_calls_of("pull"),
        1,
        "redis was not pulled: {:?}",
        bed.docker_calls()
    );
    assert!(
        bed.repository(&format!("{prefix}/alpine")).is_none(),
        "the repository the copy created is removed again"
    );
    assert!(!local_image_exists(&destination), "the temporary tag is removed");
    assert_no_leftover_processes(&bed);
}

#[test]
#[ignore = "needs the test bed"]
fn a_hanging_push_is_killed_at_the_transfer_limit_and_cleaned_up() {
    let bed = Bed::get("hang-push");
    let prefix = bed.unique("hangpush");
    let (docker, _) = slow_docker(&bed, "push", 600);
    let job = spawn_as_a_job(
        bed.ecrcp()
            .env("ECRCP_DOCKER", &docker)
            .env("ECRCP_TRANSFER_TIMEOUT", "3s")
            .args(["alpine:3.20", &format!("{ECR}/{prefix}/alpine:3.20")]),
    );
    let (run, took) = finish_within(job, Duration::from_secs(60));
    run.assert_code(1);
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert!(
        run.stderr.contains("push") && run.stderr.contains("did not finish within 3s and was stopped"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("note: to allow it longer, set --transfer-timeout or ECRCP_TRANSFER_TIMEOUT"),
        "{}",
        run.stderr
    );
    assert_eq!(bed.docker_calls_of("push"), 0, "the push never reached docker");
    assert!(bed.repository(&format!("{prefix}/alpine")).is_none());
    assert!(!local_image_exists(&format!("{ECR}/{prefix}/alpine:3.20")));
    assert_no_leftover_processes(&bed);
}

#[test]
#[ignore = "needs the test bed"]
fn a_hanging_credential_helper_is_killed_at_the_command_limit() {
    let bed = Bed::get("hang-helper");
    let prefix = bed.unique("hanghelper");
    let helpers = bed.scratch().join("helpers");
    std::fs::create_dir_all(&helpers).unwrap();
    // A helper waiting on a pinentry nobody answers.
    write_executable(&helpers.join("docker-credential-hang"), "#!/bin/sh\nsleep 600\n");
    std::fs::create_dir_all(bed.docker_config()).unwrap();
    // ecrcp asks the helper about Docker Hub; docker itself pulls anonymously.
    std::fs::write(
        bed.docker_config().join("config.json"),
        r#"{"credHelpers": {"docker.io": "hang"}}"#,
    )
    .unwrap();
    let path = format!("{}:{}", helpers.display(), std::env::var("PATH").unwrap());
    let job = spawn_as_a_job(
        bed.ecrcp()
            .env("PATH", path)
            .env("ECRCP_COMMAND_TIMEOUT", "2s")
            .args(["alpine:3.20", &format!("{ECR}/{prefix}/alpine:3.20")]),
    );
    let (run, took) = finish_within(job, Duration::from_secs(60));
    run.assert_code(0);
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert!(
        run.stderr.contains("docker-credential-hang") && run.stderr.contains("ECRCP_COMMAND_TIMEOUT"),
        "the warning names the helper and the setting:\n{}",
        run.stderr
    );
    assert!(bed.digest(ECR, &format!("{prefix}/alpine"), "3.20").is_some());
    assert_no_leftover_processes(&bed);
}

/// Runs ecrcp under a pseudo-terminal (`script`), as a person at a terminal does, so that
/// docker shows its progress; returns what the terminal showed.
fn on_a_terminal(bed: &Bed, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut line = shell_quote(env!("CARGO_BIN_EXE_ecrcp"));
    for arg in args {
        line.push(' ');
        line.push_str(&shell_quote(arg));
    }
    let command = bed.ecrcp();
    let mut script = Command::new("script");
    script.args(["-qec", &line, "/dev/null"]);
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => script.env(key, value),
            None => script.env_remove(key),
        };
    }
    script.envs(env.iter().copied()).stdin(Stdio::null());
    let (run, _) = finish_within(spawn_as_a_job(&mut script), Duration::from_secs(120));
    run
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[test]
#[ignore = "needs the test bed"]
fn on_a_terminal_a_dead_daemon_stops_the_run_after_the_first_copy() {
    let bed = Bed::get("tty-daemon");
    let prefix = bed.unique("ttydaemon");
    let run = on_a_terminal(
        &bed,
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
        &["alpine:3.20", "redis:7", &format!("{ECR}/{prefix}/")],
    );
    run.assert_code(1);
    assert!(
        run.stdout.contains("cannot reach the docker daemon"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("note: is dockerd running?"), "{}", run.stdout);
    assert!(run.stdout.contains("1 more copy not attempted"), "{}", run.stdout);
    assert_eq!(bed.docker_calls_of("pull"), 1, "{:?}", bed.docker_calls());
}

#[test]
#[ignore = "needs the test bed"]
fn on_a_terminal_a_dropped_push_is_retried_and_its_error_shown() {
    let bed = Bed::get("tty-retry");
    let prefix = bed.unique("ttyretry");
    let run = on_a_terminal(
        &bed,
        &[(
            "ECRCP_TEST_REFUSE_PUSH",
            "read tcp 127.0.0.1:443: read: connection reset by peer",
        )],
        &["alpine:3.20", &format!("{ECR}/{prefix}/alpine:3.20")],
    );
    run.assert_code(1);
    // Every attempt fails alike and lands nothing: the docker engine stops after 4 attempts
    // without progress (src/engine/docker/retry.rs).
    assert_eq!(
        bed.docker_calls_of("push"),
        4,
        "tried four times: {:?}",
        bed.docker_calls()
    );
    assert!(
        run.stdout.matches("connection reset by peer").count() >= 4,
        "docker's stderr reached the terminal each time, and the error names it:\n{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("ecrcp: cannot copy 'alpine:3.20'"),
        "{}",
        run.stdout
    );
}
