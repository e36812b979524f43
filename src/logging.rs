//! The one place that decides where `tracing` events go: stderr as plain text, filtered by
//! `ECRCP_LOG` (or `RUST_LOG`), warnings and errors only by default.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// Installs the subscriber. `default` is the filter when no environment variable sets one.
pub fn init(default: &str) {
    let filter = std::env::var("ECRCP_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|spec| EnvFilter::try_new(spec).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
