//! How ecrcp writes the files of its state directory (the copy ledger, the kept tag lists):
//! whole or not at all, so a crash, a kill or a full disk leaves the old file or the new
//! one, never a torn one, and no temporary file behind; and which state directories it
//! accepts: its own, that nobody else can write to, since ecrcp may run as root.

use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher as _, Hasher as _};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a state directory is refused. Whoever can write to it can put a link where ecrcp
/// writes (`sync.lock`, `copies.json`) and make ecrcp, run as root, overwrite any file.
#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    #[error("refusing the state directory '{dir}': it belongs to uid {owner}, and ecrcp runs as uid {user}\nnote: its owner could make ecrcp overwrite files that are yours; `chown {user} '{dir}'` if it should be yours (not if it is a service's, such as /var/lib/ecrcp: start that one's pass with `systemctl start ecrcp.service`), or point --state-dir (ECRCP_STATE_DIR) at a directory of your own")]
    NotOwned { dir: String, owner: u32, user: u32 },
    #[error("refusing the state directory '{dir}': others can write to it (mode {mode:o})\nnote: they could make ecrcp overwrite files that are yours; {}", writable_hint(dir, *mode))]
    Writable { dir: String, mode: u32 },
    #[error("cannot use the state directory '{dir}': {source}\nnote: point --state-dir (ECRCP_STATE_DIR) at a directory you can write")]
    Io { dir: String, source: std::io::Error },
}

/// What to do about a state directory others can write to: a shared one (sticky, as `/tmp`)
/// stays shared, so the way out is a directory inside it.
fn writable_hint(dir: &str, mode: u32) -> String {
    if mode & 0o1000 != 0 {
        format!(
            "a shared directory is never a state directory: make one of your own (`mkdir -m 700 '{dir}/ecrcp'`) and point --state-dir (ECRCP_STATE_DIR) at it"
        )
    } else {
        format!("`chmod go-w '{dir}'`, or point --state-dir (ECRCP_STATE_DIR) at a directory of your own")
    }
}

/// Creates `dir` (mode 0700) if it is missing, then [`check_dir`]s it.
pub fn prepare_dir(dir: &Path) -> Result<(), StateDirError> {
    let io = |source| StateDirError::Io {
        dir: dir.display().to_string(),
        source,
    };
    if let Some(parent) = dir.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(error) if error.kind() != std::io::ErrorKind::AlreadyExists => return Err(io(error)),
        _ => {}
    }
    check_dir(dir)
}

/// Refuses `dir`, if it exists, unless it belongs to the user ecrcp runs as and nobody
/// else can write to it. A link to such a directory is fine (systemd's `/var/lib/ecrcp`
/// for a `DynamicUser=` service is one): what matters is who can change what is inside.
pub fn check_dir(dir: &Path) -> Result<(), StateDirError> {
    let found = match std::fs::metadata(dir) {
        Ok(found) => found,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(StateDirError::Io {
                dir: dir.display().to_string(),
                source,
            })
        }
    };
    let user = rustix::process::geteuid().as_raw();
    judge_dir(dir, found.uid(), found.mode(), user)
}

/// The verdict of [`check_dir`] on a directory owned by `owner` with `mode`.
fn judge_dir(dir: &Path, owner: u32, mode: u32, user: u32) -> Result<(), StateDirError> {
    let dir = dir.display().to_string();
    if owner != user {
        return Err(StateDirError::NotOwned { dir, owner, user });
    }
    // Group-writable too: a group is other people. The sticky bit (`/tmp`) does not help,
    // since the names ecrcp writes can be taken before it writes them.
    if mode & 0o022 != 0 {
        return Err(StateDirError::Writable {
            dir,
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

/// Writes `bytes` to a new temporary file beside `path`, syncs it, renames it over `path`,
/// and syncs the directory. The temporary file gets a random name and must not exist
/// before (`O_EXCL`), so nothing planted under that name is written through. Writers of
/// one file take turns (the ledger's lock, the sync lock), so temporary files of that file
/// left by a crash are removed first; a failed write removes its own.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    remove_leftovers(path);
    let (temporary, mut file) = create_temporary(path)?;
    let written = (|| {
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written?;
    File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
}

/// `NAME.tmp.RANDOM` beside `path`, created new.
fn create_temporary(path: &Path) -> std::io::Result<(PathBuf, File)> {
    let mut last = None;
    for _ in 0..8 {
        let temporary = sibling(path, &format!("tmp.{:016x}", random()));
        match OpenOptions::new().write(true).create_new(true).open(&temporary) {
            Ok(file) => return Ok((temporary, file)),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => last = Some(error),
            Err(error) => return Err(error),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free temporary name")))
}

/// Removes `NAME.tmp` (the one name earlier versions used) and `NAME.tmp.*` beside `path`;
/// links among them are removed, never followed.
fn remove_leftovers(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!("{}.tmp", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let entry_name = entry.file_name();
        let entry_name = entry_name.to_string_lossy();
        if entry_name == prefix.as_str()
            || entry_name
                .strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.starts_with('.'))
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A number nobody can guess ahead: std's hasher keys are random per process, mixed with
/// the time and a counter.
fn random() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::hash::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    hasher.finish()
}

/// `NAME.SUFFIX`, beside `path`.
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(".{suffix}"));
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_no_temporary_file_and_the_old_file_intact() {
        let dir = std::env::temp_dir().join(format!("ecrcp-state-file-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // A non-empty directory where the file goes: the rename over it fails.
        let target = dir.join("copies.json");
        std::fs::create_dir_all(target.join("in-the-way")).unwrap();
        assert!(write_atomically(&target, b"{}").is_err());
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["copies.json"]);
        assert!(target.join("in-the-way").is_dir());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_write_replaces_the_file_whole() {
        let dir = std::env::temp_dir().join(format!("ecrcp-state-file-whole-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("tags.json");
        write_atomically(&target, b"old").unwrap();
        write_atomically(&target, b"new").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary file left"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
    #[test]
    fn a_link_planted_where_the_temporary_file_goes_is_not_written_through() {
        let dir = std::env::temp_dir().join(format!("ecrcp-state-file-link-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let target = dir.join("tags.json");
        std::os::unix::fs::symlink(&victim, dir.join("tags.json.tmp")).unwrap();
        write_atomically(&target, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        assert!(!target.is_symlink());
        // A crash's leftover is cleared by the next write; so is the planted link.
        std::fs::write(dir.join("tags.json.tmp.0123456789abcdef"), "torn").unwrap();
        write_atomically(&target, b"newer").unwrap();
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["tags.json", "victim"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn state_directories_are_judged_by_owner_and_mode() {
        let dir = Path::new("/d");
        let cases: [(u32, u32, u32, Option<&str>); 8] = [
            (0, 0o40700, 0, None),
            (0, 0o40755, 0, None),
            (1000, 0o40700, 1000, None),
            (0, 0o40775, 0, Some("others can write to it (mode 775)")),
            (0, 0o41777, 0, Some("(mode 1777)\nnote: they could make ecrcp overwrite files that are yours; a shared directory is never")),
            (0, 0o40757, 0, Some("(mode 757)\nnote: they could make ecrcp overwrite files that are yours; `chmod go-w '/d'`")),
            (
                65534,
                0o40700,
                0,
                Some("it belongs to uid 65534, and ecrcp runs as uid 0"),
            ),
            (0, 0o40700, 1000, Some("`chown 1000 '/d'`")),
        ];
        for (owner, mode, user, expected) in cases {
            match (judge_dir(dir, owner, mode, user), expected) {
                (Ok(()), None) => {}
                (Err(error), Some(needle)) => {
                    let text = error.to_string();
                    assert!(text.contains(needle) && text.contains("--state-dir"), "{text}");
                }
                (got, _) => panic!("{owner} {mode:o} {user}: {got:?}"),
            }
        }
    }

    #[test]
    fn a_state_directory_is_made_private_and_one_others_control_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let base = std::env::temp_dir().join(format!("ecrcp-state-dir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let fresh = base.join("fresh");
        prepare_dir(&fresh).unwrap();
        assert_eq!(std::fs::metadata(&fresh).unwrap().mode() & 0o7777, 0o700);
        let shared = base.join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let error = prepare_dir(&shared).unwrap_err();
        assert!(matches!(error, StateDirError::Writable { .. }), "{error}");
        assert!(
            error.to_string().contains(&shared.display().to_string()),
            "{error}"
        );
        assert!(check_dir(Path::new("/tmp")).is_err(), "/tmp itself");
        if rustix::process::geteuid().is_root() {
            let theirs = base.join("theirs");
            std::fs::create_dir(&theirs).unwrap();
            std::os::unix::fs::chown(&theirs, Some(65534), None).unwrap();
            let error = check_dir(&theirs).unwrap_err();
            assert!(
                matches!(error, StateDirError::NotOwned { owner: 65534, .. }),
                "{error}"
            );
        }
        // A link to a directory of one's own is fine: systemd's /var/lib/ecrcp is one.
        let link = base.join("link");
        std::os::unix::fs::symlink(&fresh, &link).unwrap();
        check_dir(&link).unwrap();
        check_dir(&base.join("missing")).unwrap();
        std::fs::remove_dir_all(&base).unwrap();
    }
}
