//! A booted Debian with a real systemd (`tests/testbed/nspawn`), as the systemd and package
//! tests see it: boot one per test (with or without the bed's docker socket), run commands
//! in it, read units and the journal, and power it off on drop, so a failed assertion leaves
//! nothing running.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Bed, Run};

const NSPAWN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testbed/nspawn");

/// One booted container, private to a test (its own state directory).
pub struct Container {
    state: PathBuf,
}

/// Whether a container gets the bed's docker socket at `/run/docker.sock`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Docker {
    Socket,
    /// A machine without docker: nothing at `/run/docker.sock` (`ECRCP_NSPAWN_DOCKER=none`).
    Absent,
}

impl Container {
    /// `nspawn boot`: `binary` as /usr/bin/ecrcp, the repository's units, `config` (or
    /// none) as images.toml.
    pub fn boot(bed: &Bed, binary: &Path, config: Option<&Path>) -> Container {
        Container::boot_with(bed, binary, config, Docker::Socket)
    }

    /// [`Container::boot`], with or without the docker socket.
    pub fn boot_with(bed: &Bed, binary: &Path, config: Option<&Path>, docker: Docker) -> Container {
        let config = config.map_or_else(|| "none".into(), |path| path.display().to_string());
        Container::start(bed, &["boot", &binary.display().to_string(), &config], docker)
    }

    /// `nspawn boot-bare`: no ecrcp at all, and the apt `repository` at /srv/ecrcp-apt.
    pub fn boot_bare(bed: &Bed, repository: &Path) -> Container {
        Container::boot_bare_with(bed, repository, Docker::Socket)
    }

    /// [`Container::boot_bare`], with or without the docker socket.
    pub fn boot_bare_with(bed: &Bed, repository: &Path, docker: Docker) -> Container {
        Container::start(bed, &["boot-bare", &repository.display().to_string()], docker)
    }

    fn start(bed: &Bed, args: &[&str], docker: Docker) -> Container {
        let container = Container {
            state: bed.scratch().join("nspawn"),
        };
        let docker = match docker {
            Docker::Socket => "socket",
            Docker::Absent => "none",
        };
        let run = container.nspawn_with(args, None, &[("ECRCP_NSPAWN_DOCKER", docker)]);
        assert_eq!(
            run.code,
            Some(0),
            "nspawn {} (is the root prepared? bash tests/testbed/nspawn prepare):\n{}",
            args[0],
            run.stderr
        );
        container
    }

    /// Runs `tests/testbed/nspawn ARGS` for this container, with `input` on its stdin.
    pub fn nspawn(&self, args: &[&str], input: Option<&[u8]>) -> Run {
        self.nspawn_with(args, input, &[])
    }

    fn nspawn_with(&self, args: &[&str], input: Option<&[u8]>, env: &[(&str, &str)]) -> Run {
        let mut child = Command::new("bash")
            .arg(NSPAWN)
            .args(args)
            .env("ECRCP_NSPAWN_STATE", &self.state)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("bash runs");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.unwrap_or_default()).unwrap();
        drop(stdin);
        Run::from(child.wait_with_output().unwrap())
    }

    /// Runs a command inside the container.
    pub fn exec(&self, command: &[&str]) -> Run {
        let mut args = vec!["exec"];
        args.extend_from_slice(command);
        self.nspawn(&args, None)
    }

    /// Writes `text` to `path` inside the container, as an admin's editor would.
    pub fn write(&self, path: &str, text: &str) {
        let run = self.nspawn(
            &[
                "exec",
                "sh",
                "-c",
                "mkdir -p \"$(dirname \"$1\")\" && cat >\"$1\"",
                "sh",
                path,
            ],
            Some(text.as_bytes()),
        );
        assert_eq!(run.code, Some(0), "writing {path}: {run:?}");
    }

    /// `systemctl show UNIT -p ...`, sorted, one `Name=value` a line.
    pub fn properties(&self, unit: &str, names: &[&str]) -> String {
        let mut args = vec!["systemctl", "show", unit];
        for name in names {
            args.extend(["-p", name]);
        }
        let mut lines: Vec<String> = self.exec(&args).stdout.lines().map(str::to_owned).collect();
        lines.sort();
        lines.join("\n")
    }

    /// The journal of ecrcp.service, one JSON object per entry.
    pub fn journal(&self) -> Vec<Value> {
        self.journal_of("ecrcp.service")
    }

    /// The journal of `unit`, one JSON object per entry.
    pub fn journal_of(&self, unit: &str) -> Vec<Value> {
        self.exec(&["journalctl", "-u", unit, "-o", "json", "--no-pager"])
            .stdout
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Waits until systemd logged the end of a start job for ecrcp.service (finished,
    /// failed, or skipped by a condition); returns the journal.
    pub fn wait_for_the_run(&self, timeout: Duration) -> Vec<Value> {
        self.wait_for_the_run_of("ecrcp.service", timeout)
    }

    /// [`Container::wait_for_the_run`] of `unit`.
    pub fn wait_for_the_run_of(&self, unit: &str, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let journal = self.journal_of(unit);
            let done = journal.iter().any(|entry| {
                entry["UNIT"] == unit && entry["JOB_TYPE"] == "start" && entry["JOB_RESULT"].is_string()
            });
            if done {
                return journal;
            }
            assert!(
                Instant::now() < deadline,
                "{unit} did not run within {timeout:?}\n{}",
                self.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// A drop-in, as `systemctl edit TIMER` writes it, that makes `timer` fire a second
    /// after it is (re)started instead of within the hour; then that restart. An active
    /// timer also keeps its service loaded, so that `ExecMainStatus` outlives the run (a
    /// service nothing refers to is unloaded once it ends, and then shows 0).
    pub fn fire_the_timer_now(&self, timer: &str) {
        self.write(
            &format!("/etc/systemd/system/{timer}.d/now.conf"),
            "[Timer]\nOnCalendar=\nOnActiveSec=1s\nRandomizedDelaySec=0\nAccuracySec=1s\n",
        );
        for command in [&["daemon-reload"][..], &["restart", timer]] {
            let run = self.exec(&[&["systemctl"][..], command].concat());
            assert_eq!(run.code, Some(0), "systemctl {command:?}: {run:?}");
        }
    }

    /// What to read when a test fails: timers, the services' state and their journal.
    pub fn diagnostics(&self) -> String {
        const SERVICES: [&str; 2] = ["ecrcp.service", "ecrcp-registry.service"];
        let timers = self.exec(&["systemctl", "list-timers", "--all", "--no-legend"]);
        let status =
            self.exec(&[&["systemctl", "status", "--no-pager", "--lines=0"][..], &SERVICES].concat());
        let journal = self.exec(&[
            "journalctl",
            "-u",
            SERVICES[0],
            "-u",
            SERVICES[1],
            "--no-pager",
            "-o",
            "verbose",
        ]);
        format!(
            "--- timers\n{}--- status\n{}--- journal of {SERVICES:?}\n{}",
            timers.stdout, status.stdout, journal.stdout
        )
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let run = self.nspawn(&["stop"], None);
        assert!(
            run.code == Some(0) || std::thread::panicking(),
            "nspawn stop: {}",
            run.stderr
        );
    }
}

/// The docker commands running anywhere on the bed (the container's too) whose argv names
/// `needle`, as `pid argv`.
pub fn docker_commands_naming(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let argv = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let argv = String::from_utf8_lossy(&argv).replace('\0', " ");
        let program = argv.split(' ').next().unwrap_or_default();
        if program.ends_with("docker") && argv.contains(needle) {
            found.push(format!("{} {argv}", entry.file_name().to_string_lossy()));
        }
    }
    found
}

/// The overall exposure `systemd-analyze security` gives `unit` ("... for UNIT: 1.1 OK").
pub fn exposure(output: &str, unit: &str) -> f64 {
    let marker = format!("Overall exposure level for {unit}: ");
    output
        .lines()
        .find_map(|line| line.split_once(marker.as_str()))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure for {unit} in:\n{output}"))
}
