//! One sync at a time: an advisory lock on a file in the state directory. The kernel drops
//! it when the process ends, however it ends, so a crashed run never blocks the next.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

/// Held for the whole run; dropping it releases the lock.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another ecrcp sync is running ({holder}, lock '{path}'); this run does nothing")]
    Busy { path: String, holder: String },
    #[error("cannot lock '{path}': {source}\nnote: point --state-dir (or ECRCP_STATE_DIR) at a writable directory")]
    Io { path: String, source: std::io::Error },
}

const FILE_NAME: &str = "sync.lock";

/// Takes the lock in `dir`, or says who holds it.
pub fn acquire(dir: &Path) -> Result<RunLock, LockError> {
    let path = dir.join(FILE_NAME);
    let io = |source| LockError::Io {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
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
    Ok(RunLock { _file: file, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_with_the_holders_pid_until_the_first_is_dropped() {
        let dir = std::env::temp_dir().join(format!("ecrcp-lock-{}", std::process::id()));
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
}
