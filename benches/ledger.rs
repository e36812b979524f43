//! How long a 10,000-image copy ledger takes to load and to record one copy into (goal:
//! milliseconds), in the old on-disk form (version 1, pretty-printed) and the new one
//! (version 2, compact), side by side in one run; and to record a thousand copies, which it
//! saves in batches. Recording the first copy is the full save: lock, read, merge, write,
//! fsync, rename, fsync the directory.
//!
//!     cargo bench --bench ledger

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ecrcp::ledger::{Ledger, Record};

const IMAGES: usize = 10_000;
const RUNS: usize = 30;

/// A distinct 64-hex-digit digest per image and `kind` (one hex digit).
fn digest(index: usize, kind: char) -> String {
    format!("sha256:{kind}{index:063x}")
}

fn record(index: usize) -> Record {
    Record {
        source: format!("docker.io/library/image-{index}:1.{index}"),
        platform: "default".into(),
        source_digest: digest(index, 'a'),
        destination_digest: digest(index, 'b'),
        image_id: digest(index, 'c'),
    }
}

fn destination(index: usize) -> String {
    format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/mirror/image-{index}:1.{index}")
}

/// The old form, as ecrcp wrote it before version 2.
fn old_form() -> Vec<u8> {
    let copies: serde_json::Map<String, serde_json::Value> = (0..IMAGES)
        .map(|index| (destination(index), serde_json::to_value(record(index)).unwrap()))
        .collect();
    serde_json::to_vec_pretty(&serde_json::json!({"version": 1, "copies": copies})).unwrap()
}

fn fresh_dir(name: &str, ledger: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ecrcp-bench-ledger-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("copies.json"), ledger).unwrap();
    dir
}

/// Times `step` over `RUNS` runs, after one warm-up; `setup` runs untimed before each.
fn measure<T>(mut setup: impl FnMut() -> T, mut step: impl FnMut(T)) -> Vec<Duration> {
    step(setup());
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let input = setup();
            let started = Instant::now();
            step(input);
            started.elapsed()
        })
        .collect();
    times.sort();
    times
}

fn report(name: &str, times: &[Duration]) {
    let mean = times.iter().sum::<Duration>() / u32::try_from(times.len()).unwrap();
    let ms = |time: Duration| time.as_secs_f64() * 1e3;
    println!(
        "{name:<44} mean {:>7.2} ms   p50 {:>7.2} ms   max {:>7.2} ms",
        ms(mean),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    );
}

fn size(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("copies.json")).unwrap().len()
}

fn main() {
    let old = fresh_dir("old", &old_form());
    // The first record rewrites the old form as the new one.
    Ledger::load(&old).record(&destination(0), record(0));
    let new = fresh_dir("new", &std::fs::read(old.join("copies.json")).unwrap());
    std::fs::write(old.join("copies.json"), old_form()).unwrap();
    let old_bytes = std::fs::read(old.join("copies.json")).unwrap();

    println!("{IMAGES} images, {RUNS} runs each");
    println!(
        "file size: old form {} KiB, new form {} KiB",
        size(&old) / 1024,
        size(&new) / 1024
    );
    report(
        "load, old form (v1, pretty)",
        &measure(|| (), |()| drop(Ledger::load_read_only(&old))),
    );
    report(
        "load, new form (v2, compact)",
        &measure(|| (), |()| drop(Ledger::load_read_only(&new))),
    );
    report(
        "record one copy into the old form (upgrades)",
        &measure(
            || {
                std::fs::write(old.join("copies.json"), &old_bytes).unwrap();
                Ledger::load(&old)
            },
            |mut ledger| ledger.record(&destination(1), record(IMAGES + 1)),
        ),
    );
    report(
        "record one copy into the new form (a save)",
        &measure(
            || Ledger::load(&new),
            |mut ledger| ledger.record(&destination(1), record(IMAGES + 2)),
        ),
    );
    // A run that copies a thousand images: their records are saved in batches, not once
    // per copy (which took a thousand saves).
    report(
        "record 1,000 copies and drop (batched)",
        &measure(
            || Ledger::load(&new),
            |mut ledger| {
                for index in 0..1000 {
                    ledger.record(&destination(index), record(IMAGES + index));
                }
                drop(ledger);
            },
        ),
    );
    for dir in [old, new] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}
