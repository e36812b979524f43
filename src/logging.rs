//! The one place that decides where `tracing` events go: the systemd journal (with each
//! field as a journal field) when stderr is the journal, JSON lines when asked (on stderr, or
//! on stdout for a container whose stdout is its log), readable
//! text otherwise. Filtered by `ECRCP_LOG` (or `RUST_LOG`), else to ecrcp's own events at
//! the caller's level: the libraries' chatter (aws-config's WARN lines with HTTP dumps when
//! there is no instance metadata) stays out unless asked for.

use std::io::IsTerminal as _;
use std::os::fd::AsFd as _;
use std::os::unix::fs::MetadataExt as _;

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::EnvFilter;

/// Where events go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// The journal when running under systemd, text otherwise.
    #[default]
    Auto,
    /// Readable lines on stderr
    Text,
    /// One JSON object per event on stderr, fields flattened
    Json,
    /// One JSON object per event on stdout, for containers whose stdout is the log (the
    /// image's default)
    JsonStdout,
    /// The systemd journal, each field a journal field
    Journald,
}

/// Installs the subscriber. `level` is the level of ecrcp's own events when no environment
/// variable sets a filter.
pub fn init(format: Format, level: &str) {
    let filter = std::env::var("ECRCP_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|spec| EnvFilter::try_new(spec).ok())
        .unwrap_or_else(|| EnvFilter::new(format!("{}={level}", env!("CARGO_CRATE_NAME"))));
    let format = match format {
        Format::Auto if stderr_is_journal() => Format::Journald,
        Format::Auto => Format::Text,
        chosen => chosen,
    };
    let registry = tracing_subscriber::registry().with(filter);
    let installed = match format {
        Format::Journald => match tracing_journald::layer() {
            Ok(layer) => registry
                .with(
                    layer
                        .with_syslog_identifier("ecrcp".into())
                        .with_field_prefix(None),
                )
                .try_init(),
            // No journal socket after all: text on stderr still reaches the journal.
            Err(_) => registry.with(text_layer()).try_init(),
        },
        Format::Json => registry.with(json_layer(std::io::stderr)).try_init(),
        Format::JsonStdout => registry.with(json_layer(std::io::stdout)).try_init(),
        Format::Text | Format::Auto => registry.with(text_layer()).try_init(),
    };
    // A second init (tests) keeps the first subscriber.
    drop(installed);
}

/// One JSON object per event, fields flattened, to `writer`.
fn json_layer<S, W>(writer: W) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    W: for<'writer> tracing_subscriber::fmt::MakeWriter<'writer> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_writer(writer)
}

fn text_layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
}

/// systemd sets `JOURNAL_STREAM=DEV:INODE` for the stream it connects stderr (or stdout) to;
/// it names stderr when the two match.
fn stderr_is_journal() -> bool {
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((device, inode)) = stream.split_once(':') else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    let Ok(metadata) = std::fs::File::from(fd).metadata() else {
        return false;
    };
    device.parse() == Ok(metadata.dev()) && inode.parse() == Ok(metadata.ino())
}
