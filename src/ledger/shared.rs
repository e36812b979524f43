//! The ledger as a run's concurrent copies share it: reads and records in memory under a
//! short lock, and saves handed, in the order they fall due, to one writer thread of the
//! ledger's own, so that no async worker waits on the file's lock, the disk or its syncs.
//! What makes a save safe (the lock, the temporary file and its rename, the syncs) stays
//! the ledger's; this only moves where it runs.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::{Ledger, Record, Save};

/// A ledger shared by the copies of a run. `close` it at the end of the run: dropping it
/// instead waits for the last saves where it is dropped.
pub struct Shared {
    ledger: Arc<Mutex<Ledger>>,
    /// Started with the first save.
    writer: Mutex<Option<Writer>>,
}

struct Writer {
    saves: mpsc::Sender<Save>,
    thread: JoinHandle<()>,
}

impl Shared {
    pub fn new(ledger: Ledger) -> Self {
        Shared {
            ledger: Arc::new(Mutex::new(ledger)),
            writer: Mutex::new(None),
        }
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().expect("ledger poisoned")
    }

    /// The record of the last copy to `destination`; a use, as `Ledger::get` counts it.
    pub fn get(&self, destination: &str) -> Option<Record> {
        self.ledger().get(destination).cloned()
    }

    /// Records a copy; a save that falls due goes to the writer, behind those before it.
    pub fn record(&self, destination: &str, record: Record) {
        let mut ledger = self.ledger();
        if let Some(save) = ledger.note(destination, record) {
            // Queued under the ledger's lock, so saves are written in the order they were
            // taken out of it.
            self.queue(save);
        }
        drop(ledger);
    }

    /// Queues what is not saved yet and waits, off the async workers, until every save is
    /// written.
    pub async fn close(&self) {
        if let Some(thread) = self.finish() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    fn queue(&self, save: Save) {
        let mut writer = self.writer.lock().expect("ledger writer poisoned");
        let writer = writer.get_or_insert_with(|| spawn(Arc::clone(&self.ledger)));
        // The writer ends only once its sender is gone, or by a panic, which is reported.
        let _ = writer.saves.send(save);
    }

    /// Queues the last save and lets the writer end once it has written everything; the
    /// writer's thread, to wait for.
    fn finish(&self) -> Option<JoinHandle<()>> {
        let mut ledger = self.ledger();
        if let Some(save) = ledger.pending() {
            self.queue(save);
        }
        let writer = self.writer.lock().expect("ledger writer poisoned").take();
        drop(ledger);
        writer.map(|writer| writer.thread)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(thread) = self.finish() {
            let _ = thread.join();
        }
    }
}

/// The writer: writes each save as it comes, in order, and tells the ledger how it went;
/// once the saves stop coming, tries once more what failed, as a dropped ledger does.
fn spawn(ledger: Arc<Mutex<Ledger>>) -> Writer {
    let (saves, queue) = mpsc::channel::<Save>();
    let thread = std::thread::Builder::new()
        .name("ecrcp-ledger".to_owned())
        .spawn(move || {
            for save in queue {
                let written = save.write();
                if let Ok(mut ledger) = ledger.lock() {
                    ledger.settle(save, written);
                }
            }
            if let Ok(mut ledger) = ledger.lock() {
                ledger.flush();
            }
        })
        .expect("cannot start the ledger's writer thread");
    Writer { saves, thread }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::ledger::tests::{record, scratch_dir};
    use crate::lock;

    /// One thread runs every task: a save that waited for the file's lock there would hold
    /// up the other task for as long.
    #[tokio::test(flavor = "current_thread")]
    async fn a_save_waiting_for_the_file_s_lock_holds_up_no_task_and_saves_keep_their_order() {
        let dir = scratch_dir("shared-waits");
        let held = lock::wait_for(&dir.join("copies.json.lock"), Duration::ZERO).unwrap();
        let ticks = Arc::new(AtomicUsize::new(0));
        let ticking = tokio::spawn({
            let ticks = Arc::clone(&ticks);
            async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    ticks.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        let ledger = Shared::new(Ledger::load(&dir));
        let started = Instant::now();
        // The first record is saved at once, the second with the close: two saves of one
        // destination, which must land in this order.
        ledger.record("dest:1", record("sha256:a"));
        ledger.record("dest:1", record("sha256:b"));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "recording waited for the lock: {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            ticks.load(Ordering::SeqCst) >= 10,
            "the other task ran while the save waited"
        );
        assert!(!dir.join("copies.json").exists(), "the save waits for the lock");
        assert_eq!(ledger.get("dest:1"), Some(record("sha256:b")), "known meanwhile");
        drop(held);
        ledger.close().await;
        ticking.abort();
        assert_eq!(
            Ledger::load(&dir).get("dest:1"),
            Some(&record("sha256:b")),
            "the later save landed last"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
