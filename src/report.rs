//! What one sync run did, kept where people and machines read it: a record of the run and
//! each image ([`RunRecord`]), rendered as Prometheus text for a textfile collector
//! (`--metrics-file`), as JSON for a CI artefact (`--report`), and kept in the state
//! directory as the last run for `ecrcp status`. Rendering is pure; files are written
//! atomically ([`crate::state_file::write_atomically`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::state_file;

/// The file in the state directory that holds the last run's record.
const LAST_RUN: &str = "last-run.json";

/// One sync run, as it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// When it started and ended, in seconds since the Unix epoch.
    pub started: f64,
    pub ended: f64,
    /// Its exit status.
    pub exit: u8,
    /// When a run last ended with nothing failed or deferred (this one, or an earlier one).
    pub last_success: Option<f64>,
    pub dry_run: bool,
    /// This worker's share (`K/N`), when the list was split.
    pub shard: Option<String>,
    /// What became of its images.
    #[serde(flatten)]
    pub counts: Counts,
    /// Blob bytes the registry engine sent to destinations (docker's pushes are not counted).
    pub bytes_copied: u64,
    pub hub_pulls_spent: u64,
    pub hub_pulls_remaining: Option<u64>,
    /// Throttles (429) registries and their token servers answered.
    pub throttles: u64,
    pub images: Vec<ImageRecord>,
}

/// What became of a run's images, counted by outcome: the sync's summary, its record, its
/// metrics and `ecrcp status` all count with these.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub copied: usize,
    /// Already at the destination (or skipped by `-n`/`-u` rules).
    pub unchanged: usize,
    /// `--dry-run`: copies that would run.
    pub would_copy: usize,
    pub deferred: usize,
    pub failed: usize,
    pub not_started: usize,
    /// Referrers and signature tags copied beside the images (`referrers = true`), those of
    /// unchanged images included.
    pub referrers_added: usize,
}

/// One image of a run: where it went, what was decided and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The image as the config names it.
    pub image: String,
    /// Where it went; empty when it failed before that was known.
    pub destination: String,
    /// `copied`, `unchanged`, `skipped`, `would copy`, `deferred`, `failed` or `not started`.
    pub outcome: String,
    /// Why it was copied, or what went wrong.
    pub why: String,
    /// The source's digest, when the checks saw it.
    pub source_digest: Option<String>,
    pub duration_ms: u64,
}

impl RunRecord {
    /// Whether nothing failed, was deferred or left unstarted.
    pub fn succeeded(&self) -> bool {
        self.exit == 0
    }

    /// The record's last success: this run's end when it succeeded, else `earlier`'s.
    #[must_use]
    pub fn after(mut self, earlier: Option<&RunRecord>) -> RunRecord {
        self.last_success = if self.succeeded() {
            Some(self.ended)
        } else {
            earlier.and_then(|earlier| earlier.last_success)
        };
        self
    }
}

/// Seconds since the Unix epoch of `at`.
pub fn unix(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

/// The record as Prometheus text exposition format (version 0.0.4).
pub fn prometheus(record: &RunRecord) -> String {
    let mut text = String::new();
    let mut gauge = |name: &str, help: &str, samples: &[(String, String)]| {
        let _ = writeln!(text, "# HELP ecrcp_sync_{name} {help}");
        let _ = writeln!(text, "# TYPE ecrcp_sync_{name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(text, "ecrcp_sync_{name}{labels} {value}");
        }
    };
    let one = |value: String| [(String::new(), value)];
    gauge(
        "last_run_start_timestamp_seconds",
        "When the last sync run started.",
        &one(record.started.to_string()),
    );
    gauge(
        "last_run_end_timestamp_seconds",
        "When the last sync run ended.",
        &one(record.ended.to_string()),
    );
    gauge(
        "last_run_exit_code",
        "The last run's exit status (0 success, 1 an image failed, 75 deferred).",
        &one(record.exit.to_string()),
    );
    if let Some(success) = record.last_success {
        gauge(
            "last_success_timestamp_seconds",
            "When a run last ended with every image copied or unchanged.",
            &one(success.to_string()),
        );
    }
    let outcomes = [
        ("copied", record.counts.copied),
        ("unchanged", record.counts.unchanged),
        ("would_copy", record.counts.would_copy),
        ("deferred", record.counts.deferred),
        ("failed", record.counts.failed),
        ("not_started", record.counts.not_started),
    ];
    gauge(
        "images",
        "Images of the last run, by outcome.",
        &outcomes.map(|(outcome, count)| (format!("{{outcome=\"{outcome}\"}}"), count.to_string())),
    );
    gauge(
        "referrers_added",
        "Referrers and signature tags the last run copied beside the images.",
        &one(record.counts.referrers_added.to_string()),
    );
    gauge(
        "bytes_copied",
        "Blob bytes the last run's registry engine sent to destinations.",
        &one(record.bytes_copied.to_string()),
    );
    gauge(
        "docker_hub_pulls_spent",
        "Docker Hub pulls the last run spent.",
        &one(record.hub_pulls_spent.to_string()),
    );
    if let Some(remaining) = record.hub_pulls_remaining {
        gauge(
            "docker_hub_pulls_remaining",
            "Docker Hub's remaining pull allowance at the last run's end.",
            &one(remaining.to_string()),
        );
    }
    gauge(
        "throttles",
        "Throttles (429) the last run met at registries and token servers.",
        &one(record.throttles.to_string()),
    );
    let failed: Vec<(String, String)> = record
        .images
        .iter()
        .filter(|image| image.outcome == "failed")
        .map(|image| {
            let destination = if image.destination.is_empty() {
                &image.image
            } else {
                &image.destination
            };
            (
                format!("{{destination=\"{}\"}}", label_value(destination)),
                "1".to_owned(),
            )
        })
        .collect();
    gauge(
        "destination_failed",
        "Destinations the last run failed to copy to (1 each).",
        &failed,
    );
    text
}

/// `value` escaped for a Prometheus label: backslash, double quote and newline.
fn label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes the metrics of `record` to `path`, atomically: a collector never reads half a file.
pub fn write_metrics(path: &Path, record: &RunRecord) -> std::io::Result<()> {
    state_file::write_atomically(path, prometheus(record).as_bytes())
}

/// Writes `record` as JSON to `path` (`--report`), atomically.
pub fn write_report(path: &Path, record: &RunRecord) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
    state_file::write_atomically(path, &json)
}

/// Where the state directory `dir` keeps the last run.
pub fn last_run_path(dir: &Path) -> PathBuf {
    dir.join(LAST_RUN)
}

/// The last run recorded in the state directory `dir`, if one was and it can be read.
pub fn load_last(dir: &Path) -> Option<RunRecord> {
    let bytes = std::fs::read(last_run_path(dir)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Keeps `record` in the state directory `dir` as the last run.
pub fn save_last(dir: &Path, record: &RunRecord) -> std::io::Result<()> {
    let json = serde_json::to_vec(record).map_err(std::io::Error::other)?;
    state_file::write_atomically(&last_run_path(dir), &json)
}

/// The record for a person at a terminal (`ecrcp status`), `now` seconds since the epoch;
/// `next` says when the timer runs next, when that is known.
pub fn status_text(record: &RunRecord, now: f64, next: Option<&str>) -> String {
    let mut text = String::new();
    let kind = if record.dry_run { "dry run" } else { "run" };
    let shard = record
        .shard
        .as_deref()
        .map(|shard| format!(" (shard {shard})"))
        .unwrap_or_default();
    let _ = writeln!(
        text,
        "last {kind}{shard}: {} ago, took {}, exit status {}",
        ago(now - record.ended),
        ago(record.ended - record.started),
        record.exit
    );
    let mut counts = vec![
        format!("{} copied", record.counts.copied),
        format!("{} unchanged", record.counts.unchanged),
    ];
    for (count, word) in [
        (record.counts.would_copy, "would copy"),
        (record.counts.deferred, "deferred"),
        (record.counts.failed, "failed"),
        (record.counts.not_started, "not started"),
    ] {
        if count > 0 {
            counts.push(format!("{count} {word}"));
        }
    }
    let _ = writeln!(text, "  {}", counts.join(", "));
    let _ = writeln!(
        text,
        "  Docker Hub pulls spent: {}{}",
        record.hub_pulls_spent,
        record
            .hub_pulls_remaining
            .map(|remaining| format!(", {remaining} left"))
            .unwrap_or_default()
    );
    match record.last_success {
        Some(at) if (at - record.ended).abs() < f64::EPSILON => {}
        Some(at) => {
            let _ = writeln!(text, "  last success: {} ago", ago(now - at));
        }
        None => {
            let _ = writeln!(text, "  no run recorded has succeeded yet");
        }
    }
    for image in record
        .images
        .iter()
        .filter(|image| matches!(image.outcome.as_str(), "failed" | "deferred" | "not started"))
    {
        let to = if image.destination.is_empty() {
            String::new()
        } else {
            format!(" -> {}", image.destination)
        };
        let why = image.why.lines().next().unwrap_or_default();
        let _ = writeln!(text, "  {}: {}{to}: {why}", image.outcome, image.image);
    }
    if let Some(next) = next {
        let _ = writeln!(text, "next run: {next}");
    }
    text
}

/// A duration in seconds, as a person reads it: `42s`, `3m 5s`, `2h 10m`, `3d 4h`.
fn ago(seconds: f64) -> String {
    // Whole seconds; a span beyond u64 seconds is not one a person waits for.
    let total = Duration::try_from_secs_f64(seconds.max(0.0).round()).map_or(u64::MAX, |span| span.as_secs());
    let (days, hours, minutes, secs) = (total / 86_400, total / 3600 % 24, total / 60 % 60, total % 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {minutes}m")
    } else if minutes > 0 {
        format!("{minutes}m {secs}s")
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> RunRecord {
        RunRecord {
            started: 1_800_000_000.0,
            ended: 1_800_000_042.5,
            exit: 1,
            last_success: None,
            dry_run: false,
            shard: Some("2/3".into()),
            counts: Counts {
                copied: 2,
                unchanged: 5,
                deferred: 1,
                failed: 1,
                ..Counts::default()
            },
            bytes_copied: 1_048_576,
            hub_pulls_spent: 3,
            hub_pulls_remaining: Some(97),
            throttles: 4,
            images: vec![
                ImageRecord {
                    image: "nginx:1.27".into(),
                    destination: "r.example/mirror/nginx:1.27".into(),
                    outcome: "copied".into(),
                    why: "destination missing".into(),
                    source_digest: Some("sha256:aa".into()),
                    duration_ms: 900,
                },
                ImageRecord {
                    image: "team/\"odd\"\\app:1".into(),
                    destination: String::new(),
                    outcome: "failed".into(),
                    why: "cannot reach registry 'x'\nnote: check the name".into(),
                    source_digest: None,
                    duration_ms: 20,
                },
                ImageRecord {
                    image: "redis:7".into(),
                    destination: "r.example/mirror/redis:7".into(),
                    outcome: "deferred".into(),
                    why: "Docker Hub allows 0 more pulls".into(),
                    source_digest: None,
                    duration_ms: 5,
                },
            ],
        }
    }

    #[test]
    fn the_metrics_name_every_figure_once_with_its_help_and_type() {
        let text = prometheus(&record());
        for (line, present) in [
            ("ecrcp_sync_last_run_start_timestamp_seconds 1800000000", true),
            ("ecrcp_sync_last_run_end_timestamp_seconds 1800000042.5", true),
            ("ecrcp_sync_last_run_exit_code 1", true),
            ("ecrcp_sync_images{outcome=\"copied\"} 2", true),
            ("ecrcp_sync_images{outcome=\"failed\"} 1", true),
            ("ecrcp_sync_images{outcome=\"deferred\"} 1", true),
            ("ecrcp_sync_bytes_copied 1048576", true),
            ("ecrcp_sync_docker_hub_pulls_spent 3", true),
            ("ecrcp_sync_docker_hub_pulls_remaining 97", true),
            ("ecrcp_sync_throttles 4", true),
            (
                r#"ecrcp_sync_destination_failed{destination="team/\"odd\"\\app:1"} 1"#,
                true,
            ),
            ("ecrcp_sync_last_success_timestamp_seconds", false),
        ] {
            assert_eq!(
                text.lines().any(|l| l.starts_with(line)),
                present,
                "{line}\n{text}"
            );
        }
        // Every sample's metric has its HELP and TYPE before it, once.
        let mut declared = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap().to_owned();
                assert!(!declared.contains(&name), "{name} declared twice");
                declared.push(name);
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert_eq!(declared.last().map(String::as_str), Some(name), "{line}");
            }
        }
    }

    #[test]
    fn a_success_is_remembered_through_the_runs_that_fail_after_it() {
        let mut good = record();
        good.exit = 0;
        let good = good.after(None);
        assert_eq!(good.last_success, Some(good.ended));
        assert!(prometheus(&good).contains("ecrcp_sync_last_success_timestamp_seconds 1800000042.5"));
        let mut bad = record();
        bad.ended += 3600.0;
        let bad = bad.after(Some(&good));
        assert_eq!(bad.last_success, Some(good.ended));
        assert_eq!(record().after(None).last_success, None);
    }

    #[test]
    fn status_says_when_what_and_which_images_did_not_land() {
        let text = status_text(
            &record(),
            1_800_000_042.5 + 3725.0,
            Some("Mon 2026-12-07 23:00:00 UTC"),
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "last run (shard 2/3): 1h 2m ago, took 43s, exit status 1"
        );
        assert_eq!(lines[1], "  2 copied, 5 unchanged, 1 deferred, 1 failed");
        assert_eq!(lines[2], "  Docker Hub pulls spent: 3, 97 left");
        assert_eq!(lines[3], "  no run recorded has succeeded yet");
        assert_eq!(
            lines[4],
            "  failed: team/\"odd\"\\app:1: cannot reach registry 'x'"
        );
        assert_eq!(
            lines[5],
            "  deferred: redis:7 -> r.example/mirror/redis:7: Docker Hub allows 0 more pulls"
        );
        assert_eq!(lines[6], "next run: Mon 2026-12-07 23:00:00 UTC");
    }

    #[test]
    fn durations_read_as_a_person_says_them() {
        for (seconds, said) in [
            (0.2, "0s"),
            (42.0, "42s"),
            (185.0, "3m 5s"),
            (7800.0, "2h 10m"),
            (273_600.0, "3d 4h"),
            (-5.0, "0s"),
        ] {
            assert_eq!(ago(seconds), said);
        }
    }

    #[test]
    fn the_last_run_is_kept_and_read_back_whole() {
        let dir = std::env::temp_dir().join(format!("ecrcp-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(load_last(&dir), None);
        save_last(&dir, &record()).unwrap();
        assert_eq!(load_last(&dir), Some(record()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
