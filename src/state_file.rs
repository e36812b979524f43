//! How ecrcp writes the files of its state directory (the copy ledger, the kept tag lists):
//! whole or not at all, so a crash, a kill or a full disk leaves the old file or the new
//! one, never a torn one, and no temporary file behind.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Writes `bytes` to a temporary file beside `path`, syncs it, renames it over `path`, and
/// syncs the directory. Writers of one file take turns (the ledger's lock, the sync lock),
/// so one temporary name serves them all; a crash leaves at most that one file, which the
/// next save reuses, and a failed write removes it.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = sibling(path, "tmp");
    let written = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written?;
    std::fs::File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
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
}
