//! Child processes (docker commands, credential helpers): each one runs in a process group
//! of its own, so that a terminal's Ctrl-C and systemd's stop reach ecrcp alone and ecrcp
//! decides what becomes of the work under way; each one has a time limit; and all of them
//! can be killed at once before ecrcp exits. Only `docker` and the credential helper lookup
//! spawn processes, and both do it through here: [`command`] finds the program, in PATH's
//! absolute directories only, so that a `.` or an empty entry in PATH (a root shell's
//! working directory may belong to anyone) never picks what runs.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rustix::process::{kill_process_group, Pid, Signal};
use tokio::process::{Child, Command};

/// The process groups of children that have not been waited for. Process groups belong to
/// the whole process, and so does this list: a second signal ends ecrcp from any thread.
static RUNNING: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// How long child processes may run before they are killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// `docker pull` and `docker push`: they move whole images.
    pub transfer: Duration,
    /// Every other docker command and every credential helper call: none of them moves much,
    /// so taking longer means a hang (a daemon that stopped answering, a helper waiting on a
    /// pinentry nobody sees).
    pub command: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            transfer: Duration::from_secs(60 * 60),
            command: Duration::from_secs(2 * 60),
        }
    }
}

/// The command-line option and environment variable that set each limit, for error notes.
pub const TRANSFER_SETTING: &str = "--transfer-timeout or ECRCP_TRANSFER_TIMEOUT";
pub const COMMAND_SETTING: &str = "--command-timeout or ECRCP_COMMAND_TIMEOUT";

/// Parses a time limit as users write it: `90s`, `30m`, `2h`, or plain seconds.
pub fn parse_limit(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit_seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 60 * 60,
        _ => {
            return Err(format!(
                "'{text}' has an unknown unit: use s, m or h (90s, 30m, 2h)"
            ))
        }
    };
    match number.parse::<u64>() {
        Ok(0) => Err(format!("'{text}' is no time at all: give a limit above zero")),
        Ok(count) => count
            .checked_mul(unit_seconds)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("'{text}' is too long")),
        Err(_) => Err(format!(
            "'{text}' is not a time limit: write it as 90s, 30m or 2h"
        )),
    }
}

/// A limit as `parse_limit` reads it, in the largest whole unit.
pub fn show_limit(limit: Duration) -> String {
    let seconds = limit.as_secs();
    match seconds {
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Where PATH is not set: the system's own directories, as execvp's default.
const DEFAULT_PATH: &str = "/usr/bin:/bin";

/// A command for `program`: a name without `/` is looked up in PATH's absolute directories
/// (see [`find_program`]); a path (`ECRCP_DOCKER=/opt/docker/bin/docker`) is taken as given.
pub fn command(program: &Path) -> std::io::Result<Command> {
    Ok(Command::new(find_program(program)?))
}

/// `program` as execvp would find it, except that PATH entries that are empty or relative
/// (`.`, `bin`, `::`) are skipped: they name the working directory, which is not the
/// user's to trust, least of all under sudo.
fn find_program(program: &Path) -> std::io::Result<PathBuf> {
    if program.as_os_str().as_encoded_bytes().contains(&b'/') {
        return Ok(program.to_owned());
    }
    let path = std::env::var_os("PATH");
    search_path(
        program.as_os_str(),
        path.as_deref().unwrap_or(OsStr::new(DEFAULT_PATH)),
    )
    .ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "no '{}' in the absolute directories of PATH (relative entries such as '.' are skipped)",
                program.display()
            ),
        )
    })
}

/// The first executable file `name` in the absolute directories of `path`.
fn search_path(name: &OsStr, path: &OsStr) -> Option<PathBuf> {
    std::env::split_paths(path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|found| found.is_file() && found.permissions().mode() & 0o111 != 0)
        })
}

/// A child in a process group of its own. Until it has been waited for, dropping it (a run
/// cancelled by dropping its future) kills the whole group.
pub struct Running {
    pub child: Child,
    group: Option<Pid>,
}

/// Spawns `command` as the leader of a new process group, listed in [`RUNNING`].
pub fn spawn(command: &mut Command) -> std::io::Result<Running> {
    let child = command.process_group(0).kill_on_drop(true).spawn()?;
    let group = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(Pid::from_raw);
    if let Some(group) = group {
        running().insert(group.as_raw_nonzero().get());
    }
    Ok(Running { child, group })
}

impl Running {
    /// The child's group is waited for: it is no longer anyone's to kill.
    pub fn done(&mut self) {
        if let Some(group) = self.group.take() {
            running().remove(&group.as_raw_nonzero().get());
        }
    }

    /// Kills the child's whole group (its own children too), and reaps the child.
    pub async fn kill(&mut self) {
        if let Some(group) = self.group {
            // Already gone is fine: that is what was wanted.
            let _ = kill_process_group(group, Signal::KILL);
        }
        let _ = self.child.wait().await;
        self.done();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(group) = self.group {
            let _ = kill_process_group(group, Signal::KILL);
        }
        self.done();
    }
}

/// Kills every child process group still running: before ecrcp exits without waiting for
/// them, and to stop the work under way at once.
pub fn kill_all() {
    for group in running().iter().filter_map(|&id| Pid::from_raw(id)) {
        let _ = kill_process_group(group, Signal::KILL);
    }
}

fn running() -> std::sync::MutexGuard<'static, BTreeSet<i32>> {
    // The set stays valid whatever panicked while holding it.
    RUNNING.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_as_users_write_them() {
        let cases: [(&str, Result<u64, &str>); 9] = [
            ("90", Ok(90)),
            ("90s", Ok(90)),
            ("30m", Ok(1800)),
            ("2h", Ok(7200)),
            (" 5m ", Ok(300)),
            ("0", Err("no time at all")),
            ("10d", Err("unknown unit")),
            ("m", Err("not a time limit")),
            ("1.5h", Err("unknown unit")),
        ];
        for (text, expected) in cases {
            match (parse_limit(text), expected) {
                (Ok(limit), Ok(seconds)) => assert_eq!(limit, Duration::from_secs(seconds), "{text}"),
                (Err(error), Err(needle)) => assert!(error.contains(needle), "{text}: {error}"),
                (got, _) => panic!("{text}: {got:?}"),
            }
        }
    }

    #[test]
    fn limits_are_shown_in_their_largest_whole_unit() {
        for (seconds, shown) in [(7200, "2h"), (1800, "30m"), (90, "90s"), (3660, "61m")] {
            assert_eq!(show_limit(Duration::from_secs(seconds)), shown);
            assert_eq!(parse_limit(shown), Ok(Duration::from_secs(seconds)));
        }
    }

    #[test]
    fn programs_are_found_in_absolute_path_entries_only() {
        let dir = std::env::temp_dir().join(format!("ecrcp-path-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("plain")).unwrap();
        let tool = dir.join("tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("plain/tool"), "not executable").unwrap();
        // The same directory as a relative entry, the way `.` names the working directory.
        let cwd = std::env::current_dir().unwrap();
        let up = "../".repeat(cwd.components().count() - 1);
        let relative = format!("{up}{}", dir.strip_prefix("/").unwrap().display());
        assert!(
            Path::new(&relative).join("tool").is_file(),
            "{relative} reaches the tool"
        );
        let absolute = dir.display().to_string();
        let plain = dir.join("plain").display().to_string();
        let cases = [
            (format!("{relative}:{absolute}"), Some(tool.clone())),
            (format!("{plain}:{absolute}"), Some(tool.clone())),
            (relative.clone(), None),
            (format!(":.:{relative}:{plain}"), None),
        ];
        for (path, expected) in cases {
            assert_eq!(
                search_path(OsStr::new("tool"), OsStr::new(&path)),
                expected,
                "PATH={path}"
            );
        }
        assert_eq!(find_program(&tool).unwrap(), tool, "a path is taken as given");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_killed_child_takes_its_own_children_along() {
        // The grandchild (sleep) would outlive a kill of the shell's pid alone.
        let mut running = spawn(
            Command::new("sh")
                .args(["-c", "sleep 30 & echo $!; wait"])
                .stdout(std::process::Stdio::piped()),
        )
        .unwrap();
        let mut stdout = running.child.stdout.take().unwrap();
        let mut line = String::new();
        tokio::io::AsyncBufReadExt::read_line(&mut tokio::io::BufReader::new(&mut stdout), &mut line)
            .await
            .unwrap();
        let grandchild = line.trim().to_owned();
        running.kill().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let alive = std::path::Path::new(&format!("/proc/{grandchild}")).exists()
            && !std::fs::read_to_string(format!("/proc/{grandchild}/stat"))
                .unwrap_or_default()
                .contains(") Z ");
        assert!(!alive, "sleep {grandchild} outlived the kill");
    }
}
