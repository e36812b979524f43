//! The copy ledger: which source digest produced which destination digest, so that `-u`
//! can tell "unchanged" from HEAD requests alone. A docker push re-compresses layers, so the
//! destination's digest differs from the source's even for the same image; the ledger is
//! what links the two. Losing it costs a re-check, never a failure, and ecrcp never
//! overwrites a ledger it cannot read or understand.
//!
//! On disk it is `copies.json` in the state directory: compact JSON, format version 2
//! (version 1, pretty-printed and without `last_used`, is still read). Every save is a
//! read-modify-write under a lock on `copies.json.lock`, so concurrent runs keep each
//! other's records, and lands by rename, so a reader sees the old file or the new one.
//! Records are saved in batches, at most one save every few seconds and a last one when the
//! ledger is dropped, so that a run of a thousand copies does not write the file a thousand
//! times; a run killed outright loses at most those few seconds of records. A run's
//! concurrent copies share it through `shared`, which writes the saves, in the order they
//! fall due, on a thread of its own: an async worker never waits on the lock or the disk.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::lock::{self, LockError};
use crate::state_file::{self, sibling, write_atomically, StateDirError};

pub mod shared;

/// One finished copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub source: String,
    /// The platform asked for, or "default" for the daemon's own.
    pub platform: String,
    pub source_digest: String,
    pub destination_digest: String,
    /// The config digest, identical in source and destination.
    pub image_id: String,
}

/// A record as the file keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    #[serde(flatten)]
    record: Record,
    /// When the record was last written or used by `-u`, in seconds since the Unix epoch.
    /// Version 1 records had none: they count as used when first read.
    #[serde(default = "now")]
    last_used: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct File {
    version: u32,
    #[serde(default)]
    copies: BTreeMap<String, Entry>,
}

/// Just the version, to tell a newer format from a corrupt file.
#[derive(Debug, Deserialize)]
struct Header {
    version: u32,
}

/// The ledger and what it held when loaded, keyed by destination reference.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Where saves go; `None` when this ledger saves nothing (in memory only, a dry run, or
    /// a file it must not overwrite).
    file: Option<PathBuf>,
    copies: BTreeMap<String, Entry>,
    /// Destinations used this run whose `last_used` is due to be saved.
    used: BTreeSet<String>,
    /// Copies recorded since the last save.
    recorded: BTreeMap<String, Entry>,
    /// When the last save was, if any.
    saved_at: Option<Instant>,
}

const FILE_NAME: &str = "copies.json";
const VERSION: u32 = 2;
/// Entries neither written nor used for this long are dropped at the next save: their
/// destination has most likely left every config.
const PRUNE_AFTER: Duration = Duration::from_secs(90 * 24 * 60 * 60);
/// A used entry's `last_used` is saved again only when it is older than this, so that a
/// no-change run saves the ledger at most once a day.
const RESTAMP_AFTER: Duration = Duration::from_secs(24 * 60 * 60);
/// The least time between two saves of records: the first record of a run is saved at
/// once, later ones with the next record after this, or when the ledger is dropped.
const SAVE_EVERY: Duration = Duration::from_secs(5);
/// How long a save waits for another run's save to finish.
const LOCK_PATIENCE: Duration = Duration::from_secs(10);

/// Why a ledger file cannot be used as it is.
#[derive(Debug, thiserror::Error)]
enum LedgerError {
    #[error("format version {found}, newer than the {VERSION} this ecrcp reads")]
    Newer { found: u32 },
    #[error("cannot read it: {0}")]
    Unreadable(std::io::Error),
    #[error("not a ledger: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    StateDir(#[from] StateDirError),
    #[error("cannot write it: {0}")]
    Write(#[from] std::io::Error),
}

impl LedgerError {
    /// Whether overwriting the file could destroy records that a newer ecrcp, or a fixed
    /// file, would still hold.
    fn forbids_overwrite(&self) -> bool {
        matches!(self, LedgerError::Newer { .. } | LedgerError::Unreadable(_))
    }

    /// Whether writing failed for want of space: a message of its own, since the fix is
    /// the disk's, not the ledger's.
    fn is_disk_full(&self) -> bool {
        matches!(self, LedgerError::Write(error) if error.kind() == std::io::ErrorKind::StorageFull)
    }
}

impl Ledger {
    /// A ledger that remembers nothing across runs.
    pub fn in_memory() -> Self {
        Ledger::default()
    }

    /// Loads `DIR/copies.json` to read and record in. A missing file is an empty ledger; so
    /// is a corrupt one, which the first save replaces, keeping it as `copies.json.corrupt`.
    /// A newer or unreadable one is left alone: the run uses and records nothing in it.
    pub fn load(dir: &Path) -> Self {
        Ledger::open(dir, true)
    }

    /// Loads `DIR/copies.json` to read only (`--dry-run`): nothing is ever written.
    pub fn load_read_only(dir: &Path) -> Self {
        Ledger::open(dir, false)
    }

    fn open(dir: &Path, writable: bool) -> Self {
        let path = dir.join(FILE_NAME);
        let (copies, writable) = match read(&path) {
            Ok(copies) => (copies, writable),
            Err(error @ LedgerError::Corrupt(_)) if writable => {
                tracing::warn!(file = %path.display(), %error, "ignoring the corrupt copy ledger; the next record replaces it and keeps it as {FILE_NAME}.corrupt");
                (BTreeMap::new(), true)
            }
            Err(error) if error.forbids_overwrite() && writable => {
                tracing::warn!(file = %path.display(), %error, "{REFUSAL}");
                (BTreeMap::new(), false)
            }
            Err(error) => {
                tracing::warn!(file = %path.display(), %error, "ignoring the copy ledger; unchanged images will be re-checked");
                (BTreeMap::new(), false)
            }
        };
        Ledger {
            file: writable.then_some(path),
            copies,
            used: BTreeSet::new(),
            recorded: BTreeMap::new(),
            saved_at: None,
        }
    }

    /// Where the ledger (and a sync's lock) live by default: systemd's `STATE_DIRECTORY`,
    /// else the XDG state directory (`~/.local/state/ecrcp`), for root too. Root is not sent
    /// to the service's `/var/lib/ecrcp`: that belongs to the service's dynamic user, who
    /// could plant links there for a root run to write through.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("STATE_DIRECTORY") {
            // systemd may pass several, colon-separated; the first is ours.
            let first = dir
                .to_string_lossy()
                .split(':')
                .next()
                .unwrap_or_default()
                .to_owned();
            return Some(PathBuf::from(first));
        }
        let base = std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .filter(|dir| dir.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state")))?;
        Some(base.join("ecrcp"))
    }

    /// The record of the last copy to `destination`. Looking it up counts as a use, which
    /// keeps it from being pruned; the use is saved with the next record, or when the
    /// ledger is dropped.
    pub fn get(&mut self, destination: &str) -> Option<&Record> {
        let entry = self.copies.get(destination)?;
        if now().saturating_sub(entry.last_used) >= RESTAMP_AFTER.as_secs() {
            self.used.insert(destination.to_owned());
        }
        Some(&entry.record)
    }

    /// Every record, by destination reference, without counting as a use: what a sync
    /// reads to say which earlier copies its tag rules no longer select.
    pub fn destinations(&self) -> impl Iterator<Item = (&str, &Record)> {
        self.copies
            .iter()
            .map(|(destination, entry)| (destination.as_str(), &entry.record))
    }

    /// Records a copy. The file is saved at once when no save happened in the last few
    /// seconds, else with a later record or when the ledger is dropped; each save merges
    /// what other runs saved meanwhile. A failed save is a warning: the copy itself
    /// succeeded, and the next save tries again.
    pub fn record(&mut self, destination: &str, record: Record) {
        if let Some(save) = self.note(destination, record) {
            self.run(save);
        }
    }

    /// Records a copy in memory, as `record` does, and hands back the save that is due now,
    /// if any, for the caller to `run` or hand to `Save::write` and `settle`, saves in the
    /// order they were handed out.
    pub fn note(&mut self, destination: &str, record: Record) -> Option<Save> {
        let entry = Entry {
            record,
            last_used: now(),
        };
        self.copies.insert(destination.to_owned(), entry.clone());
        self.used.remove(destination);
        self.recorded.insert(destination.to_owned(), entry);
        if self
            .saved_at
            .is_none_or(|saved_at| saved_at.elapsed() >= SAVE_EVERY)
        {
            self.take_save()
        } else {
            None
        }
    }

    /// Saves the records and uses not saved yet, if any.
    pub fn flush(&mut self) {
        if let Some(save) = self.pending() {
            self.run(save);
        }
    }

    /// The save of the records and uses not saved yet, if any: `flush` without the writing.
    pub fn pending(&mut self) -> Option<Save> {
        if self.used.is_empty() && self.recorded.is_empty() {
            None
        } else {
            self.take_save()
        }
    }

    fn run(&mut self, save: Save) {
        let written = save.write();
        self.settle(save, written);
    }

    /// The save of everything not saved yet, taken out of the ledger; `None` when this
    /// ledger saves nothing.
    fn take_save(&mut self) -> Option<Save> {
        self.saved_at = Some(Instant::now());
        let stamps = self.stamps();
        let recorded = std::mem::take(&mut self.recorded);
        self.used.clear();
        Some(Save {
            path: self.file.clone()?,
            stamps,
            recorded,
        })
    }

    /// Takes in how a save handed out went: a failed one is tried again with the next, but
    /// for what was recorded or used anew since; a file it must not overwrite is left alone
    /// from now on.
    pub fn settle(&mut self, save: Save, written: Result<(), SaveError>) {
        let SaveError(error) = match written {
            Ok(()) => return,
            Err(error) => error,
        };
        let path = &save.path;
        if error.forbids_overwrite() {
            tracing::warn!(file = %path.display(), %error, "{REFUSAL}");
            self.file = None;
            return;
        }
        if error.is_disk_full() {
            tracing::warn!(
                file = %path.display(),
                %error,
                "cannot save the copy ledger: the disk is full; the copies themselves landed, and the next run re-checks them. \
                 Free space there or point --state-dir (ECRCP_STATE_DIR) at another disk"
            );
        } else {
            tracing::warn!(file = %path.display(), %error, "cannot save the copy ledger");
        }
        for (destination, _) in save.stamps {
            if !self.recorded.contains_key(&destination) {
                self.used.insert(destination);
            }
        }
        for (destination, entry) in save.recorded {
            self.recorded.entry(destination).or_insert(entry);
        }
    }

    /// The entries used this run, stamped now.
    fn stamps(&self) -> Vec<(String, Entry)> {
        let now = now();
        self.used
            .iter()
            .filter_map(|destination| {
                let entry = self.copies.get(destination)?;
                Some((
                    destination.clone(),
                    Entry {
                        record: entry.record.clone(),
                        last_used: now,
                    },
                ))
            })
            .collect()
    }
}

/// One save of a ledger: what it merges into its file.
#[derive(Debug)]
pub struct Save {
    path: PathBuf,
    stamps: Vec<(String, Entry)>,
    recorded: BTreeMap<String, Entry>,
}

/// Why a save failed; the ledger's `settle` says what it means.
#[derive(Debug)]
pub struct SaveError(LedgerError);

impl Save {
    /// Merges the save into the file, under its lock: blocks on the lock, the disk and its
    /// syncs, so async code runs it off its workers (`shared`).
    pub fn write(&self) -> Result<(), SaveError> {
        merge_into(&self.path, &self.stamps, &self.recorded).map_err(SaveError)
    }
}

impl Drop for Ledger {
    /// Saves the records not saved yet, and the uses, so that entries still in use are not
    /// pruned.
    fn drop(&mut self) {
        self.flush();
    }
}

/// What a ledger that must not overwrite its file says.
const REFUSAL: &str = "not using the copy ledger and leaving it as it is: this run records nothing in it; \
    upgrade ecrcp if a newer one wrote it, make it readable, or point --state-dir (ECRCP_STATE_DIR) at another directory";

/// Reads the file at `path`; a missing file is an empty ledger.
fn read(path: &Path) -> Result<BTreeMap<String, Entry>, LedgerError> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(error) => return Err(LedgerError::Unreadable(error)),
    };
    match serde_json::from_slice::<File>(&text) {
        Ok(file) if (1..=VERSION).contains(&file.version) => Ok(file.copies),
        Ok(File { version, .. }) if version > VERSION => Err(LedgerError::Newer { found: version }),
        Ok(File { version, .. }) => Err(LedgerError::Corrupt(format!("unknown format version {version}"))),
        // A newer format may differ in more than the version.
        Err(error) => match serde_json::from_slice::<Header>(&text) {
            Ok(Header { version }) if version > VERSION => Err(LedgerError::Newer { found: version }),
            _ => Err(LedgerError::Corrupt(error.to_string())),
        },
    }
}

/// One read-modify-write under the lock: the file as it is now, with `stamps` applied to
/// the records they were taken from, `recorded` added, and old entries pruned.
fn merge_into(
    path: &Path,
    stamps: &[(String, Entry)],
    recorded: &BTreeMap<String, Entry>,
) -> Result<(), LedgerError> {
    state_file::prepare_dir(path.parent().unwrap_or(Path::new(".")))?;
    let _lock = lock::wait_for(&sibling(path, "lock"), LOCK_PATIENCE)?;
    let mut copies = match read(path) {
        Err(LedgerError::Corrupt(reason)) => {
            let aside = sibling(path, "corrupt");
            std::fs::rename(path, &aside)?;
            tracing::warn!(file = %path.display(), error = %reason, kept = %aside.display(), "replacing the corrupt copy ledger");
            BTreeMap::new()
        }
        other => other?,
    };
    for (destination, stamped) in stamps {
        // Another run may have recorded a newer copy meanwhile; a use of the old one must
        // not undo it. A record pruned meanwhile is in use after all: it comes back.
        match copies.get_mut(destination) {
            Some(entry) if entry.record == stamped.record => {
                entry.last_used = entry.last_used.max(stamped.last_used);
            }
            Some(_) => {}
            None => {
                copies.insert(destination.clone(), stamped.clone());
            }
        }
    }
    copies.extend(
        recorded
            .iter()
            .map(|(destination, entry)| (destination.clone(), entry.clone())),
    );
    let oldest = now().saturating_sub(PRUNE_AFTER.as_secs());
    copies.retain(|_, entry| entry.last_used >= oldest);
    let file = File {
        version: VERSION,
        copies,
    };
    write_atomically(path, &serde_json::to_vec(&file).map_err(std::io::Error::other)?)?;
    Ok(())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn record(source_digest: &str) -> Record {
        Record {
            source: "docker.io/library/nginx:latest".into(),
            platform: "default".into(),
            source_digest: source_digest.into(),
            destination_digest: "sha256:d".into(),
            image_id: "sha256:i".into(),
        }
    }

    pub(super) fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ecrcp-ledger-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The names in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn days_ago(days: u64) -> u64 {
        now() - days * 24 * 60 * 60
    }

    /// A version 2 file with one entry per `(destination, last_used)`.
    fn write_v2(dir: &Path, entries: &[(&str, u64)]) {
        let copies = entries
            .iter()
            .map(|(destination, last_used)| {
                let entry = Entry {
                    record: record("sha256:a"),
                    last_used: *last_used,
                };
                ((*destination).to_owned(), entry)
            })
            .collect();
        let file = File { version: 2, copies };
        std::fs::write(dir.join(FILE_NAME), serde_json::to_vec(&file).unwrap()).unwrap();
    }

    fn on_disk(dir: &Path) -> File {
        serde_json::from_slice(&std::fs::read(dir.join(FILE_NAME)).unwrap()).unwrap()
    }

    #[test]
    fn a_recorded_copy_survives_a_reload_in_a_compact_versioned_file() {
        let dir = scratch_dir("reload");
        Ledger::load(&dir).record("dest:1", record("sha256:a"));
        assert_eq!(Ledger::load(&dir).get("dest:1"), Some(&record("sha256:a")));
        let text = std::fs::read_to_string(dir.join(FILE_NAME)).unwrap();
        assert!(text.starts_with(r#"{"version":2,"#), "{text}");
        assert!(!text.contains('\n') && !text.contains(": "), "compact: {text}");
        assert_eq!(names(&dir), [FILE_NAME, "copies.json.lock"], "no temporary file");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn records_soon_after_a_save_wait_for_the_next_save_or_the_drop() {
        let dir = scratch_dir("batch");
        let mut ledger = Ledger::load(&dir);
        ledger.record("dest:1", record("sha256:a"));
        assert_eq!(on_disk(&dir).copies.len(), 1, "the first record is saved at once");
        for index in 2..=100 {
            ledger.record(&format!("dest:{index}"), record("sha256:a"));
        }
        assert_eq!(on_disk(&dir).copies.len(), 1, "the others wait");
        assert_eq!(
            ledger.get("dest:100"),
            Some(&record("sha256:a")),
            "and are known meanwhile"
        );
        ledger.flush();
        assert_eq!(on_disk(&dir).copies.len(), 100);
        ledger.record("dest:101", record("sha256:a"));
        drop(ledger);
        assert_eq!(on_disk(&dir).copies.len(), 101, "the drop saves the rest");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_version_1_ledger_is_read_and_upgraded_keeping_its_records() {
        let dir = scratch_dir("v1");
        let old = serde_json::json!({"version": 1, "copies": {"dest:old": record("sha256:a")}});
        std::fs::write(dir.join(FILE_NAME), serde_json::to_string_pretty(&old).unwrap()).unwrap();
        let mut ledger = Ledger::load(&dir);
        assert_eq!(ledger.get("dest:old"), Some(&record("sha256:a")));
        ledger.record("dest:new", record("sha256:b"));
        let file = on_disk(&dir);
        assert_eq!(file.version, 2);
        assert_eq!(file.copies["dest:old"].record, record("sha256:a"));
        assert!(
            file.copies["dest:old"].last_used >= days_ago(1),
            "counts as used when upgraded"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_newer_or_unreadable_ledger_is_never_overwritten() {
        let newer = r#"{"version":3,"copies":{"dest:1":{"some":"future form"}}}"#;
        // EACCES cannot be had as root; a directory (EISDIR) or a symlink loop (ELOOP) in
        // its place fails to read as an unreadable file does.
        let symlink_loop = |file: &Path| std::os::unix::fs::symlink(file, file).unwrap();
        for (name, setup) in [
            (
                "newer",
                &(|file: &Path| std::fs::write(file, newer).unwrap()) as &dyn Fn(&Path),
            ),
            ("a symlink loop", &symlink_loop),
            ("a directory", &|file: &Path| std::fs::create_dir(file).unwrap()),
        ] {
            let dir = scratch_dir(name);
            let file = dir.join(FILE_NAME);
            setup(&file);
            let mut ledger = Ledger::load(&dir);
            assert_eq!(ledger.get("dest:1"), None, "{name}");
            ledger.record("dest:2", record("sha256:b"));
            assert_eq!(
                ledger.get("dest:2"),
                Some(&record("sha256:b")),
                "{name}: kept in memory"
            );
            drop(ledger);
            match name {
                "newer" => assert_eq!(std::fs::read_to_string(&file).unwrap(), newer),
                "a directory" => assert!(file.is_dir()),
                _ => assert_eq!(std::fs::read_link(&file).unwrap(), file),
            }
            assert_eq!(names(&dir), [FILE_NAME], "{name}: nothing else written");
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn a_ledger_that_turns_newer_during_a_run_is_not_overwritten_by_it() {
        let dir = scratch_dir("turns-newer");
        let mut ledger = Ledger::load(&dir);
        let newer = r#"{"version":3,"entries":[]}"#;
        std::fs::write(dir.join(FILE_NAME), newer).unwrap();
        ledger.record("dest:1", record("sha256:a"));
        ledger.record("dest:2", record("sha256:b"));
        assert_eq!(std::fs::read_to_string(dir.join(FILE_NAME)).unwrap(), newer);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_corrupt_ledger_is_replaced_and_kept_aside() {
        for garbage in ["{not json", r#"{"version": 0}"#, ""] {
            let dir = scratch_dir("corrupt");
            std::fs::write(dir.join(FILE_NAME), garbage).unwrap();
            let mut ledger = Ledger::load(&dir);
            assert_eq!(ledger.get("dest:1"), None);
            ledger.record("dest:1", record("sha256:b"));
            assert_eq!(Ledger::load(&dir).get("dest:1"), Some(&record("sha256:b")));
            let aside = std::fs::read_to_string(dir.join("copies.json.corrupt")).unwrap();
            assert_eq!(aside, garbage);
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn a_full_disk_is_told_apart_from_other_write_failures() {
        let full = LedgerError::Write(std::io::Error::from_raw_os_error(28));
        assert!(full.is_disk_full(), "ENOSPC");
        let denied = LedgerError::Write(std::io::Error::from_raw_os_error(13));
        assert!(!denied.is_disk_full(), "EACCES");
        assert!(!LedgerError::Corrupt("x".into()).is_disk_full());
    }

    #[test]
    fn entries_unused_for_90_days_are_pruned_at_the_next_save() {
        let dir = scratch_dir("prune");
        write_v2(
            &dir,
            &[("dest:stale", days_ago(91)), ("dest:recent", days_ago(89))],
        );
        Ledger::load(&dir).record("dest:new", record("sha256:b"));
        let kept: Vec<String> = on_disk(&dir).copies.into_keys().collect();
        assert_eq!(kept, ["dest:new", "dest:recent"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_used_entry_is_stamped_when_the_ledger_is_dropped_and_so_not_pruned() {
        let dir = scratch_dir("stamp");
        let idle = days_ago(10);
        write_v2(&dir, &[("dest:used", days_ago(89)), ("dest:idle", idle)]);
        let mut ledger = Ledger::load(&dir);
        assert!(ledger.get("dest:used").is_some());
        drop(ledger);
        let copies = on_disk(&dir).copies;
        assert!(copies["dest:used"].last_used >= days_ago(1), "{copies:?}");
        assert_eq!(copies["dest:idle"].last_used, idle, "{copies:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_use_does_not_undo_a_newer_record_from_another_run() {
        let dir = scratch_dir("stamp-race");
        write_v2(&dir, &[("dest:1", days_ago(10))]);
        let mut ours = Ledger::load(&dir);
        assert!(ours.get("dest:1").is_some());
        Ledger::load(&dir).record("dest:1", record("sha256:newer"));
        drop(ours);
        assert_eq!(on_disk(&dir).copies["dest:1"].record, record("sha256:newer"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_read_only_ledger_writes_nothing() {
        let dir = scratch_dir("read-only");
        write_v2(&dir, &[("dest:1", days_ago(10))]);
        let before = std::fs::read(dir.join(FILE_NAME)).unwrap();
        let mut ledger = Ledger::load_read_only(&dir);
        assert!(ledger.get("dest:1").is_some());
        ledger.record("dest:2", record("sha256:b"));
        assert!(ledger.get("dest:2").is_some(), "remembered for this run");
        drop(ledger);
        assert_eq!(std::fs::read(dir.join(FILE_NAME)).unwrap(), before);
        assert_eq!(names(&dir), [FILE_NAME]);
        let missing = dir.join("missing");
        Ledger::load_read_only(&missing).record("dest:1", record("sha256:a"));
        assert!(!missing.exists(), "no state directory created");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    const WRITES: usize = 40;

    #[test]
    fn writers_in_several_threads_keep_every_record() {
        let dir = scratch_dir("threads");
        std::thread::scope(|scope| {
            for writer in 0..4 {
                let dir = &dir;
                scope.spawn(move || {
                    let mut ledger = Ledger::load(dir);
                    for index in 0..WRITES {
                        ledger.record(&format!("dest:{writer}-{index}"), record("sha256:a"));
                    }
                });
            }
        });
        assert_eq!(on_disk(&dir).copies.len(), 4 * WRITES);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Set in the child processes of the test below: `DIR:WRITER`.
    const WRITER: &str = "ECRCP_TEST_LEDGER_WRITER";

    #[test]
    fn writers_in_two_processes_keep_every_record() {
        let dir = scratch_dir("processes");
        let children: Vec<_> = (0..2)
            .map(|writer| {
                std::process::Command::new(std::env::current_exe().unwrap())
                    .args(["--exact", "ledger::tests::writer_process", "--ignored"])
                    .env(WRITER, format!("{}:{writer}", dir.display()))
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut child in children {
            assert!(child.wait().unwrap().success());
        }
        assert_eq!(on_disk(&dir).copies.len(), 2 * WRITES);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    #[ignore = "a child process of writers_in_two_processes_keep_every_record"]
    fn writer_process() {
        let Ok(spec) = std::env::var(WRITER) else { return };
        let (dir, writer) = spec.rsplit_once(':').unwrap();
        let mut ledger = Ledger::load(Path::new(dir));
        for index in 0..WRITES {
            ledger.record(&format!("dest:{writer}-{index}"), record("sha256:a"));
        }
    }
}
