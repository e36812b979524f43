//! Advisory locks on files in the state directory: one sync at a time (`acquire`), and short
//! exclusive sections around a read-modify-write of a shared file (`wait_for`). The kernel
//! drops a lock when the process ends, however it ends, so a crashed run never blocks the
//! next. Locks only; what they guard is the caller's business.

use std::fs::{File, TryLockError};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Held while it lives; dropping it releases the lock.
#[derive(Debug)]
pub struct Held {
    _file: File,
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another ecrcp sync is running ({holder}, lock '{path}'); this run does nothing")]
    Busy { path: String, holder: String },
    #[error("'{path}' stayed locked for {seconds} s\nnote: another ecrcp may be stopped or stuck; see `fuser -v {path}`")]
    Stuck { path: String, seconds: u64 },
    #[error("cannot lock '{path}': {source}\nnote: point --state-dir (or ECRCP_STATE_DIR) at a writable directory")]
    Io { path: String, source: std::io::Error },
    #[error("refusing to lock '{path}': it is {what}, not a plain file of its own\nnote: ecrcp writes its pid there and never through a link; remove it if you did not put it there")]
    NotPlain { path: String, what: &'static str },
}

const RUN_LOCK: &str = "sync.lock";
/// How often a waiting `wait_for` tries again.
const POLL: Duration = Duration::from_millis(2);

/// Takes the sync lock in `dir` (which must exist), or says who holds it.
pub fn acquire(dir: &Path) -> Result<Held, LockError> {
    let path = dir.join(RUN_LOCK);
    let io = |source| io_error(&path, source);
    let mut file = open(&path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "pid unknown".to_owned(),
                pid => format!("pid {pid}"),
            };
            return Err(LockError::Busy {
                path: path.display().to_string(),
                holder,
            });
        }
        Err(TryLockError::Error(error)) => return Err(io(error)),
    }
    // The pid is only for the message a second run prints.
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    write!(file, "{}", std::process::id()).map_err(io)?;
    Ok(Held { _file: file, path })
}

/// Waits up to `patience` for an exclusive lock on `path` (created if missing). Holders keep
/// it for milliseconds, but one that is stopped or hung must not hang this process too.
/// It blocks the thread while it waits: the ledger's writer thread calls it, no async worker.
pub fn wait_for(path: &Path, patience: Duration) -> Result<Held, LockError> {
    let file = open(path)?;
    let started = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => {
                return Ok(Held {
                    _file: file,
                    path: path.to_owned(),
                })
            }
            Err(TryLockError::WouldBlock) if started.elapsed() < patience => std::thread::sleep(POLL),
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::Stuck {
                    path: path.display().to_string(),
                    seconds: patience.as_secs(),
                })
            }
            Err(TryLockError::Error(error)) => return Err(io_error(path, error)),
        }
    }
}

/// Opens (or creates) the lock file at `path`, never through a link: a lock is truncated
/// once held, and ecrcp may run as root. A hard link would let it write another file as
/// well, so a file with more than one name is refused too.
fn open(path: &Path) -> Result<File, LockError> {
    use rustix::fs::{Mode, OFlags};
    use std::os::unix::fs::MetadataExt as _;
    let flags = OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let refused = |what| LockError::NotPlain {
        path: path.display().to_string(),
        what,
    };
    let file = match rustix::fs::open(path, flags, Mode::from_raw_mode(0o600)) {
        Ok(fd) => File::from(fd),
        Err(rustix::io::Errno::LOOP) => return Err(refused("a symbolic link")),
        Err(errno) => return Err(io_error(path, errno.into())),
    };
    let found = file.metadata().map_err(|source| io_error(path, source))?;
    if !found.is_file() {
        return Err(refused("not a regular file"));
    }
    if found.nlink() != 1 {
        return Err(refused("a hard link to another file"));
    }
    Ok(file)
}

fn io_error(path: &Path, source: std::io::Error) -> LockError {
    LockError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ecrcp-lock-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_second_lock_is_refused_with_the_holders_pid_until_the_first_is_dropped() {
        let dir = scratch_dir("run");
        let first = acquire(&dir).unwrap();
        let error = acquire(&dir).unwrap_err();
        assert!(
            error.to_string().contains(&format!("pid {}", std::process::id())),
            "{error}"
        );
        drop(first);
        assert!(acquire(&dir).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_lock_file_planted_as_a_link_is_refused_and_what_it_points_at_is_untouched() {
        let dir = scratch_dir("planted");
        let victim = dir.join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, dir.join(RUN_LOCK)).unwrap();
        let error = acquire(&dir).unwrap_err();
        assert!(error.to_string().contains("symbolic link"), "{error}");
        std::fs::remove_file(dir.join(RUN_LOCK)).unwrap();
        std::fs::hard_link(&victim, dir.join(RUN_LOCK)).unwrap();
        let error = acquire(&dir).unwrap_err();
        assert!(error.to_string().contains("hard link"), "{error}");
        let error = wait_for(&dir.join(RUN_LOCK), Duration::ZERO).unwrap_err();
        assert!(matches!(error, LockError::NotPlain { .. }), "{error}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_waiter_gets_the_lock_once_it_is_released_and_gives_up_when_it_is_not() {
        let path = scratch_dir("wait").join("file.lock");
        let held = wait_for(&path, Duration::ZERO).unwrap();
        let error = wait_for(&path, Duration::from_millis(50)).unwrap_err();
        assert!(matches!(error, LockError::Stuck { .. }), "{error}");
        let released = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(held);
        });
        assert!(wait_for(&path, Duration::from_secs(10)).is_ok());
        released.join().unwrap();
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
