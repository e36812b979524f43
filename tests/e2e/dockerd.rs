//! A dockerd of a test's own, beside the bed's shared one: for faults that would break every
//! other test if dealt to the shared daemon (restarting it, filling its disk).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::Bed;

/// A real dockerd on a private socket, data root and exec root (its own containerd too),
/// using the bed's registry certificates (`/etc/docker/certs.d`). Stopped when dropped.
pub struct PrivateDockerd {
    dir: PathBuf,
    data_root: PathBuf,
    /// A tmpfs mounted on the data root, when the test asked for a small disk.
    tmpfs: bool,
    child: Option<Child>,
}

impl PrivateDockerd {
    /// Starts one under the test's scratch directory and waits until it answers.
    pub fn start(bed: &Bed) -> PrivateDockerd {
        Self::start_with(bed, None)
    }

    /// Starts one whose data root is a tmpfs of `megabytes`, so that a pull can fill it.
    pub fn with_disk_of(bed: &Bed, megabytes: u64) -> PrivateDockerd {
        Self::start_with(bed, Some(megabytes))
    }

    fn start_with(bed: &Bed, megabytes: Option<u64>) -> PrivateDockerd {
        // Unix socket paths are limited to 108 bytes: keep the directory short.
        let dir = bed.scratch().join("dd");
        let data_root = dir.join("data");
        std::fs::create_dir_all(&data_root).unwrap();
        std::fs::create_dir_all(dir.join("exec")).unwrap();
        if let Some(megabytes) = megabytes {
            let status = Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
                .arg(&data_root)
                .status()
                .expect("mount runs");
            assert!(
                status.success(),
                "cannot mount a tmpfs on {}",
                data_root.display()
            );
        }
        let mut daemon = PrivateDockerd {
            dir,
            data_root,
            tmpfs: megabytes.is_some(),
            child: None,
        };
        daemon.launch();
        daemon
    }

    /// `DOCKER_HOST` for clients of this daemon.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    pub fn data_root(&self) -> &Path {
        &self.data_root
    }

    /// Its log so far (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    /// Runs the real docker CLI against this daemon.
    pub fn docker(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker")
            .env("DOCKER_HOST", self.host())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("docker runs")
    }

    /// Stops it as an administrator's `systemctl restart docker` would (SIGTERM, wait for it
    /// and its containerd to exit), then starts it again on the same data root.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// SIGTERM and wait; the data root stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// Kills it and its containerd with SIGKILL, as a crash followed by systemd's cleanup
    /// of the unit's processes would: no shutdown, its connections just close. A containerd
    /// left running would keep its socket, and the next dockerd could not start its own.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("pkill")
                .args(["-KILL", "-P", &child.id().to_string()])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again after [`PrivateDockerd::stop`] or [`PrivateDockerd::kill`], on the
    /// same data root, and waits until it answers.
    pub fn start_again(&mut self) {
        if self.child.is_none() {
            self.launch();
        }
    }

    /// Whether `/_ping` answers now.
    pub fn answers(&self) -> bool {
        Command::new("curl")
            .args(["-sf", "--max-time", "2", "--unix-socket"])
            .arg(self.socket())
            .arg("http://docker/_ping")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("d.sock")
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("dockerd.log"))
            .unwrap();
        let child = Command::new("dockerd")
            .arg("--data-root")
            .arg(&self.data_root)
            .arg("--exec-root")
            .arg(self.dir.join("exec"))
            .arg("--pidfile")
            .arg(self.dir.join("dockerd.pid"))
            .arg("--host")
            .arg(self.host())
            .args(storage_driver())
            .args(["--iptables=false", "--ip-masq=false"])
            .args(["--bridge=none", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("dockerd starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.answers() {
            assert!(
                Instant::now() < deadline,
                "the private dockerd did not answer within 60 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The bed's own daemon's storage: vfs for dockerd 20.10's classic store; under the
/// containerd image store (`ECRCP_TESTBED_DOCKER=containerd`) the engine's default
/// snapshotter, overlayfs, as the bed's shared daemon has it (there `--storage-driver` names
/// a snapshotter, and vfs is none).
fn storage_driver() -> &'static [&'static str] {
    if crate::support::containerd_store() {
        &[]
    } else {
        &["--storage-driver", "vfs"]
    }
}

impl Drop for PrivateDockerd {
    fn drop(&mut self) {
        self.stop();
        if self.tmpfs {
            let _ = Command::new("umount").arg("-l").arg(&self.data_root).status();
        }
        // vfs layers are whole copies: don't leave them in the bed's scratch space.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
#[ignore = "runs on the test bed"]
fn a_private_dockerd_pulls_from_the_bed_and_keeps_its_images_over_a_restart() {
    let bed = Bed::get("private_dockerd");
    let mut daemon = PrivateDockerd::start(&bed);
    let pulled = daemon.docker(&["pull", "alpine:3.20"]);
    assert!(
        pulled.status.success(),
        "{}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    daemon.restart();
    let listed = daemon.docker(&["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("alpine:3.20"),
        "the image outlives the restart: {listed}"
    );
}

#[test]
#[ignore = "runs on the test bed"]
fn a_private_dockerd_can_have_a_small_disk_of_its_own() {
    let bed = Bed::get("private_dockerd_disk");
    let daemon = PrivateDockerd::with_disk_of(&bed, 64);
    let mounted = Command::new("findmnt")
        .args(["-no", "FSTYPE,SIZE", "--target"])
        .arg(daemon.data_root())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&mounted.stdout)
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["tmpfs", "64M"]
    );
    assert!(daemon.docker(&["info"]).status.success());
}
