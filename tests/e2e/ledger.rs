//! The copy ledger under concurrent runs and dry runs, end to end.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::{write_executable, Bed, Run, ECR, PLAIN, PLAIN_USER};

fn ledger(bed: &Bed) -> PathBuf {
    bed.scratch().join("state/copies.json")
}

#[test]
#[ignore = "needs the test bed"]
fn two_update_copies_at_once_with_one_state_dir_keep_both_records() {
    let bed = Bed::get("ledger-concurrent");
    let upstream = bed.unique("e2e/ledger");
    let prefix = bed.unique("concurrent");
    let copies: Vec<(String, String)> = ["a", "b"]
        .iter()
        .map(|name| {
            bed.push_upstream(&format!("{upstream}-{name}"), "1", name);
            (format!("{upstream}-{name}:1"), format!("{ECR}/{prefix}/{name}:1"))
        })
        .collect();
    let children: Vec<_> = copies
        .iter()
        .map(|(source, destination)| {
            bed.ecrcp()
                .args(["-u", source, destination])
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        Run::from(child.wait_with_output().unwrap()).assert_code(0);
    }
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(ledger(&bed)).unwrap()).unwrap();
    assert_eq!(file["version"], 2);
    for (source, destination) in &copies {
        let record = &file["copies"][destination];
        assert!(
            record["source"].as_str().unwrap().ends_with(source),
            "{destination} recorded: {file}"
        );
    }
    let again = bed.run(&["-u", "-v", &copies[0].0, &copies[0].1]);
    again.assert_code(0);
    assert_eq!(
        bed.docker_calls_of("pull"),
        2,
        "the record was used: {}",
        again.stderr
    );
}

#[test]
#[ignore = "needs the test bed"]
fn a_ledger_of_a_newer_format_is_left_alone_and_the_copy_still_runs() {
    let bed = Bed::get("ledger-newer");
    let upstream = bed.unique("e2e/newer");
    bed.push_upstream(&upstream, "1", "newer");
    let newer = r#"{"version":3,"copies":[]}"#;
    std::fs::create_dir_all(ledger(&bed).parent().unwrap()).unwrap();
    std::fs::write(ledger(&bed), newer).unwrap();
    let destination = format!("{ECR}/{}:1", bed.unique("newer"));
    let run = bed.run(&["-u", &format!("{upstream}:1"), &destination]);
    run.assert_code(0);
    assert!(bed.digest(ECR, &bed.unique("newer"), "1").is_some());
    assert_eq!(std::fs::read_to_string(ledger(&bed)).unwrap(), newer);
    assert!(
        run.stderr.contains(&ledger(&bed).display().to_string())
            && run.stderr.contains("format version 3")
            && run.stderr.contains("upgrade ecrcp"),
        "names the file and says what to do: {}",
        run.stderr
    );
}

/// Pushes an image to the bed's plain registry (not Docker Hub, so a dry run compares
/// image configs there) and logs this test's docker in to it.
fn push_plain(bed: &Bed, repo: &str) {
    let script = std::env::var("ECRCP_TESTBED_IMAGE_PY").expect("the bed exports ECRCP_TESTBED_IMAGE_PY");
    let python = std::env::var("ECRCP_TESTBED_PYTHON").unwrap_or_else(|_| "python3".into());
    let args = [
        "push",
        "--registry",
        PLAIN,
        "--repo",
        repo,
        "--tag",
        "1",
        "--user",
        PLAIN_USER,
    ];
    let status = std::process::Command::new(python)
        .arg(script)
        .args(args)
        .args(["--seed", repo])
        .status()
        .unwrap();
    assert!(status.success(), "pushing {PLAIN}/{repo}:1");
    bed.docker_login(PLAIN, PLAIN_USER);
}

/// A copy from the plain registry into ECR, synced once, whose ledger is then lost: the
/// next run, dry or not, compares image configs (where a dry run used to record).
fn synced_then_ledger_lost(bed: &Bed) -> (PathBuf, String, String) {
    let repo = bed.unique("e2e/dry");
    push_plain(bed, &repo);
    let prefix = bed.unique("dry");
    let config = bed.sync_config(&format!(
        "version = 1\n[defaults]\ndestination = \"{ECR}/{prefix}/\"\n\n[[image]]\nsource = \"{PLAIN}/{repo}:1\"\n"
    ));
    let first = bed.sync(&config, &[]);
    first.assert_code(0);
    assert_eq!(first.summary()["copied"], 1, "{}", first.stderr);
    std::fs::remove_file(ledger(bed)).unwrap();
    (
        config,
        format!("{PLAIN}/{repo}:1"),
        format!("{ECR}/{prefix}/{repo}:1"),
    )
}

/// Every file in `dir`, with its contents.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            (path, text)
        })
        .collect()
}

#[test]
#[ignore = "needs the test bed"]
fn a_dry_run_leaves_the_state_directory_byte_identical() {
    let bed = Bed::get("ledger-dry");
    let (config, source, destination) = synced_then_ledger_lost(&bed);
    let state = bed.scratch().join("state");
    let before = snapshot(&state);

    let sync = bed.sync(&config, &["--dry-run"]);
    sync.assert_code(0);
    assert_eq!(sync.summary()["unchanged"], 1, "it compared: {}", sync.stderr);
    assert_eq!(snapshot(&state), before, "sync --dry-run wrote nothing");

    bed.run(&["-u", "--dry-run", &source, &destination])
        .assert_code(0);
    assert_eq!(snapshot(&state), before, "ecrcp --dry-run wrote nothing");

    let fresh = bed.scratch().join("fresh-state");
    let run = bed
        .sync_command(&config)
        .arg("--dry-run")
        .env("ECRCP_STATE_DIR", &fresh)
        .output()
        .unwrap();
    Run::from(run).assert_code(0);
    assert!(!fresh.exists(), "no state directory created");
}

#[test]
#[ignore = "needs the test bed"]
fn a_real_sync_started_while_a_dry_run_runs_is_not_refused() {
    let bed = Bed::get("ledger-dry-lock");
    let (config, _, _) = synced_then_ledger_lost(&bed);
    // A docker that holds the dry run in its config comparison (`docker version` asks the
    // daemon's platform) until the real sync is over, or 30 s at most.
    let (waiting, release) = (
        bed.scratch().join("dry-run-waiting"),
        bed.scratch().join("release"),
    );
    let slow = bed.scratch().join("bin/slow-docker");
    write_executable(
        &slow,
        &format!(
            "#!/bin/sh\nif [ \"$1\" = version ]; then\n  touch '{}'; i=0\n  \
             while [ ! -e '{}' ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done\nfi\nexec '{}' \"$@\"\n",
            waiting.display(),
            release.display(),
            bed.scratch().join("bin/docker").display()
        ),
    );
    let dry = bed
        .sync_command(&config)
        .arg("--dry-run")
        .env("ECRCP_DOCKER", &slow)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !waiting.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the dry run never compared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let real = bed.sync(&config, &[]);
    std::fs::write(&release, "").unwrap();
    real.assert_code(0);
    assert_eq!(real.summary()["unchanged"], 1, "{}", real.stderr);
    let dry = Run::from(dry.wait_with_output().unwrap());
    dry.assert_code(0);
    assert_eq!(dry.summary()["unchanged"], 1, "{}", dry.stderr);
}
