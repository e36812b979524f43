//! The registry engine's progress on a terminal, as docker shows a push: one line per image
//! and per blob, with bytes, a bar and the rate, redrawn in place on stderr. Only drawn when
//! the run's options ask for progress (a person is watching); nothing reaches logs or pipes.
//! The formatting is pure; [`Board`] owns the drawing.

use std::io::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often byte counts may redraw the board; state changes redraw at once.
const REDRAW_EVERY: Duration = Duration::from_millis(100);

/// What became of one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobState {
    Waiting,
    /// The destination had it.
    Exists,
    /// Mounted from another repository of the destination registry.
    Mounted,
    /// Being sent: bytes so far, since when.
    Sending {
        done: u64,
        since: Instant,
    },
    /// Sent: how many bytes, in how long.
    Sent {
        bytes: u64,
        took: Duration,
    },
    /// A try failed; the next starts at `at` (docker's "Retrying in N seconds").
    Retrying {
        at: Instant,
    },
    Failed,
}

struct Blob {
    digest: String,
    size: u64,
    state: BlobState,
}

struct Image {
    /// Stable while images before it leave the board.
    id: usize,
    label: String,
    blobs: Vec<Blob>,
    /// The last line: what happened, once it is over.
    outcome: Option<String>,
}

#[derive(Default)]
struct State {
    images: Vec<Image>,
    next_id: usize,
    /// Lines drawn last time, which the next drawing overwrites.
    drawn: usize,
    last: Option<Instant>,
}

/// Every image's progress in one block of lines at the bottom of the terminal.
#[derive(Default)]
pub struct Board {
    state: Mutex<State>,
}

/// One image's part of the board; a no-op when progress is off.
pub struct ImageProgress<'a> {
    board: Option<&'a Board>,
    id: usize,
}

impl Board {
    /// An image's section of the board, drawn from now on.
    pub fn image(&self, label: &str) -> ImageProgress<'_> {
        let mut state = self.state.lock().expect("progress board poisoned");
        let id = state.next_id;
        state.next_id += 1;
        state.images.push(Image {
            id,
            label: label.to_owned(),
            blobs: Vec::new(),
            outcome: None,
        });
        ImageProgress {
            board: Some(self),
            id,
        }
    }

    fn update(&self, id: usize, force: bool, change: impl FnOnce(&mut Image)) {
        let mut state = self.state.lock().expect("progress board poisoned");
        if let Some(image) = state.images.iter_mut().find(|image| image.id == id) {
            change(image);
        }
        let now = Instant::now();
        if force
            || state
                .last
                .is_none_or(|last| now.duration_since(last) >= REDRAW_EVERY)
        {
            state.last = Some(now);
            draw(&mut state, now);
        }
    }
}

impl ImageProgress<'_> {
    /// Progress that shows nothing.
    pub fn off() -> Self {
        ImageProgress { board: None, id: 0 }
    }

    /// A blob the copy will look after.
    pub fn blob(&self, digest: &str, size: u64) {
        if let Some(board) = self.board {
            board.update(self.id, true, |image| {
                if !image.blobs.iter().any(|blob| blob.digest == digest) {
                    image.blobs.push(Blob {
                        digest: digest.to_owned(),
                        size,
                        state: BlobState::Waiting,
                    });
                }
            });
        }
    }

    /// A blob's new state; byte counts (`Sending`) redraw at most every tenth of a second.
    pub fn set(&self, digest: &str, state: BlobState) {
        if let Some(board) = self.board {
            let force = !matches!(state, BlobState::Sending { .. });
            board.update(self.id, force, |image| {
                if let Some(blob) = image.blobs.iter_mut().find(|blob| blob.digest == digest) {
                    blob.state = state;
                }
            });
        }
    }

    /// The image's last line.
    pub fn finish(&self, outcome: &str) {
        if let Some(board) = self.board {
            board.update(self.id, true, |image| image.outcome = Some(outcome.to_owned()));
        }
    }
}

/// Redraws the board over what was drawn last, and lets finished images scroll away above
/// it for good, so that the block that is redrawn stays small.
fn draw(state: &mut State, now: Instant) {
    let text = render(state, now);
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(text.as_bytes());
    let _ = stderr.flush();
}

/// The text that redraws the board, and the board as it stands once it is drawn.
fn render(state: &mut State, now: Instant) -> String {
    let mut text = String::new();
    if state.drawn > 0 {
        // Back up over the lines drawn last time.
        text = format!("\x1b[{}A", state.drawn);
    }
    let mut drawn = 0;
    let mut finished = Vec::new();
    for (index, image) in state.images.iter().enumerate() {
        let lines = image_lines(image, now);
        for line in &lines {
            text.push_str("\r\x1b[2K");
            text.push_str(line);
            text.push('\n');
        }
        if image.outcome.is_some() && finished.len() == index {
            finished.push(index);
        } else {
            drawn += lines.len();
        }
    }
    // Only a leading run of finished images can leave the redrawn block: the lines below
    // them are still redrawn in place.
    let leaving = finished.len();
    if leaving > 0 {
        state.images.drain(..leaving);
    }
    state.drawn = drawn;
    text
}

fn image_lines(image: &Image, now: Instant) -> Vec<String> {
    let mut lines = vec![image.label.clone()];
    lines.extend(
        image
            .blobs
            .iter()
            .map(|blob| blob_line(&blob.digest, blob.size, blob.state, now)),
    );
    if let Some(outcome) = &image.outcome {
        lines.push(outcome.clone());
    }
    lines
}

/// One blob's line: `0123456789ab: Sending [====>     ]  1.2 MB/4.5 MB  3.1 MB/s`.
pub fn blob_line(digest: &str, size: u64, state: BlobState, now: Instant) -> String {
    let short: String = digest
        .split_once(':')
        .map_or(digest, |(_, hex)| hex)
        .chars()
        .take(12)
        .collect();
    let status = match state {
        BlobState::Waiting => "Waiting".to_owned(),
        BlobState::Exists => "Layer already exists".to_owned(),
        BlobState::Mounted => "Mounted from another repository".to_owned(),
        BlobState::Sending { done, since } => {
            let elapsed = now.saturating_duration_since(since);
            format!(
                "Sending {} {:>9}/{:<9} {}",
                bar(done, size, 30),
                bytes(done),
                bytes(size),
                rate(done, elapsed)
            )
        }
        BlobState::Sent { bytes: sent, took } => {
            format!("Sent {} in {:.1} s", bytes(sent), took.as_secs_f64())
        }
        BlobState::Retrying { at } => {
            let wait = at.saturating_duration_since(now);
            format!(
                "Retrying in {} s",
                wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
            )
        }
        BlobState::Failed => "Failed".to_owned(),
    };
    format!("{short}: {status}")
}

/// A size as docker prints it: decimal units, one decimal.
pub fn bytes(count: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    #[allow(clippy::cast_precision_loss)]
    let mut value = count as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{count} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Bytes per second over `elapsed`, blank until there is something to measure.
pub fn rate(count: u64, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    if seconds < 0.05 || count == 0 {
        return String::new();
    }
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let per_second = (count as f64 / seconds) as u64;
    format!("{}/s", bytes(per_second))
}

/// `[=====>    ]`, `width` cells inside the brackets.
pub fn bar(done: u64, total: u64, width: usize) -> String {
    let filled = if total == 0 {
        width
    } else {
        let ratio = u128::from(done.min(total)) * width as u128 / u128::from(total);
        usize::try_from(ratio).unwrap_or(width)
    };
    let mut text = String::with_capacity(width + 2);
    text.push('[');
    for cell in 0..width {
        text.push(match cell {
            cell if cell + 1 < filled => '=',
            cell if cell + 1 == filled => '>',
            _ => ' ',
        });
    }
    text.push(']');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_images_scroll_away_and_the_rest_is_redrawn_in_place() {
        let board = Board::default();
        let (_first, second) = (board.image("first"), board.image("second"));
        let now = Instant::now();
        {
            let mut state = board.state.lock().unwrap();
            for image in &mut state.images {
                image.blobs.push(Blob {
                    digest: "sha256:aaaaaaaaaaaaaaaa".into(),
                    size: 1,
                    state: BlobState::Exists,
                });
            }
            state.images[0].outcome = Some("first: done".into());
            let text = render(&mut state, now);
            // Nothing drawn before: no cursor move; both images drawn, the first for good.
            assert!(text.starts_with("\r\x1b[2Kfirst\n"), "{text:?}");
            assert!(text.contains("first: done\n"), "{text:?}");
            assert_eq!(state.images.len(), 1);
            assert_eq!(
                state.drawn, 2,
                "the second image's two lines stay in the redrawn block"
            );
            let again = render(&mut state, now);
            assert!(again.starts_with("\x1b[2A\r\x1b[2Ksecond\n"), "{again:?}");
        }
        // The second image is still found by its handle after the first left.
        second.finish("second: done");
        assert!(board.state.lock().unwrap().images.is_empty());
    }

    #[test]
    fn sizes_read_as_docker_prints_them() {
        let cases = [
            (0, "0 B"),
            (999, "999 B"),
            (1000, "1.0 kB"),
            (1_234_567, "1.2 MB"),
            (1_500, "1.5 kB"),
            (2_000_000_000, "2.0 GB"),
            (128 * 1024 * 1024, "134.2 MB"),
            (5_000_000_000, "5.0 GB"),
        ];
        for (count, text) in cases {
            assert_eq!(bytes(count), text);
        }
    }

    #[test]
    fn bars_fill_in_proportion_and_never_overflow() {
        let cases = [
            (0, 100, "[          ]"),
            (50, 100, "[====>     ]"),
            (100, 100, "[=========>]"),
            (200, 100, "[=========>]"),
            (0, 0, "[=========>]"),
        ];
        for (done, total, expected) in cases {
            assert_eq!(bar(done, total, 10), expected, "{done}/{total}");
        }
    }

    #[test]
    fn blob_lines_name_the_blob_by_its_short_digest_and_say_what_happened() {
        let now = Instant::now();
        let digest = format!("sha256:{}", "ab".repeat(32));
        let cases = [
            (BlobState::Exists, "abababababab: Layer already exists"),
            (
                BlobState::Mounted,
                "abababababab: Mounted from another repository",
            ),
            (
                BlobState::Sent {
                    bytes: 2_000_000,
                    took: Duration::from_millis(1500),
                },
                "abababababab: Sent 2.0 MB in 1.5 s",
            ),
            (
                BlobState::Retrying {
                    at: now + Duration::from_millis(2100),
                },
                "abababababab: Retrying in 3 s",
            ),
            (BlobState::Retrying { at: now }, "abababababab: Retrying in 0 s"),
        ];
        for (state, expected) in cases {
            assert_eq!(blob_line(&digest, 10, state, now), expected);
        }
        let sending = blob_line(
            &digest,
            4_000_000,
            BlobState::Sending {
                done: 2_000_000,
                since: now.checked_sub(Duration::from_secs(2)).unwrap(),
            },
            now,
        );
        assert!(
            sending.starts_with("abababababab: Sending [==============>"),
            "{sending}"
        );
        assert!(sending.contains("2.0 MB/4.0 MB"), "{sending}");
        assert!(sending.ends_with("1.0 MB/s"), "{sending}");
    }
}
