//! The copy ledger: which source digest produced which destination digest, so that `-u`
//! can tell "unchanged" from HEAD requests alone. A docker push re-compresses layers, so the
//! destination's digest differs from the source's even for the same image; the ledger is
//! what links the two. Losing it costs a re-check, never a failure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    version: u32,
    #[serde(default)]
    copies: BTreeMap<String, Record>,
}

/// The ledger file and what it held when loaded, keyed by destination reference.
#[derive(Debug, Default)]
pub struct Ledger {
    path: Option<PathBuf>,
    copies: BTreeMap<String, Record>,
}

const FILE_NAME: &str = "copies.json";
const VERSION: u32 = 1;

impl Ledger {
    /// A ledger that remembers nothing across runs.
    pub fn in_memory() -> Self {
        Ledger::default()
    }

    /// Loads `DIR/copies.json`. A missing file is an empty ledger; an unreadable or corrupt
    /// one is too, with a warning, because every entry can be re-checked at the registries.
    pub fn load(dir: &Path) -> Self {
        let path = dir.join(FILE_NAME);
        let copies = read(&path).unwrap_or_else(|error| {
            tracing::warn!(file = %path.display(), %error, "ignoring the copy ledger; unchanged images will be re-checked");
            BTreeMap::new()
        });
        Ledger {
            path: Some(path),
            copies,
        }
    }

    /// Where the ledger lives by default: systemd's `STATE_DIRECTORY`, else the XDG state
    /// directory (`~/.local/state/ecrcp`).
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

    pub fn get(&self, destination: &str) -> Option<&Record> {
        self.copies.get(destination)
    }

    /// Records a copy and writes the file at once (atomically), merged with what other runs
    /// wrote meanwhile. A write failure is a warning: the copy itself succeeded.
    pub fn record(&mut self, destination: &str, record: Record) {
        self.copies.insert(destination.to_owned(), record.clone());
        let Some(path) = &self.path else { return };
        let mut on_disk = read(path).unwrap_or_default();
        on_disk.insert(destination.to_owned(), record);
        if let Err(error) = write(path, on_disk) {
            tracing::warn!(file = %path.display(), %error, "cannot save the copy ledger");
        }
    }
}

fn read(path: &Path) -> Result<BTreeMap<String, Record>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(error) => return Err(error.to_string()),
    };
    let file: File = serde_json::from_str(&text).map_err(|error| error.to_string())?;
    if file.version != VERSION {
        return Err(format!("unknown ledger version {}", file.version));
    }
    Ok(file.copies)
}

fn write(path: &Path, copies: BTreeMap<String, Record>) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = File {
        version: VERSION,
        copies,
    };
    let text = serde_json::to_string_pretty(&file).map_err(std::io::Error::other)?;
    let temporary = path.with_extension(format!("json.{}", std::process::id()));
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(source_digest: &str) -> Record {
        Record {
            source: "docker.io/library/nginx:latest".into(),
            platform: "default".into(),
            source_digest: source_digest.into(),
            destination_digest: "sha256:d".into(),
            image_id: "sha256:i".into(),
        }
    }

    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ecrcp-ledger-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_recorded_copy_survives_a_reload() {
        let dir = scratch_dir("reload");
        Ledger::load(&dir).record("dest:1", record("sha256:a"));
        assert_eq!(Ledger::load(&dir).get("dest:1"), Some(&record("sha256:a")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_corrupt_or_foreign_ledger_loads_empty_and_is_rewritten() {
        let dir = scratch_dir("corrupt");
        std::fs::create_dir_all(&dir).unwrap();
        for garbage in ["{not json", r#"{"version": 99, "copies": {}}"#, ""] {
            std::fs::write(dir.join(FILE_NAME), garbage).unwrap();
            let mut ledger = Ledger::load(&dir);
            assert_eq!(ledger.get("dest:1"), None);
            ledger.record("dest:1", record("sha256:b"));
            assert_eq!(Ledger::load(&dir).get("dest:1"), Some(&record("sha256:b")));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn two_writers_keep_each_others_records() {
        let dir = scratch_dir("merge");
        let mut first = Ledger::load(&dir);
        let mut second = Ledger::load(&dir);
        first.record("dest:1", record("sha256:a"));
        second.record("dest:2", record("sha256:b"));
        let merged = Ledger::load(&dir);
        assert!(merged.get("dest:1").is_some() && merged.get("dest:2").is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
