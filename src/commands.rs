//! The glue of each subcommand: turn its arguments into a plan, wire up the boundaries,
//! run it on a runtime, and say which exit status the result means. `main` dispatches here.

use std::sync::{Arc, OnceLock};

use anyhow::anyhow;
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::cli::{CopyArgs, GenerateArgs, IamPolicyArgs, IamSubject, PluginCommand, StatusArgs, SyncArgs};
use crate::docker::{progress_wanted, DockerCli};
use crate::exit::Exit;
use crate::logging::{self, Format};
use crate::outcome::{self, Fate};
use crate::plugin::{self, install, Invocation};
use crate::process::{self, Timeouts};
use crate::report;
use crate::shard::Shard;
use crate::state_file;
use crate::sync::{self, Stop, SyncOptions};
use crate::ui::Terminal;

/// A command that did not run to its end: the exit status, and the error to print once.
pub type Failure = (Exit, anyhow::Error);

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Runtime::new().map_err(|error| (Exit::CopyFailed, error.into()))
}

fn docker(invocation: &Invocation, timeouts: Timeouts) -> DockerCli {
    DockerCli::from_env()
        .with_global_args(invocation.docker_args.clone())
        .with_timeouts(timeouts)
}

/// `ecrcp SOURCE... DEST`.
pub fn copy(args: &CopyArgs, invocation: &Invocation) -> Result<Exit, Failure> {
    logging::init(Format::Text, invocation.log_level.as_deref().unwrap_or("warn"));
    let plan = args
        .into_plan(progress_wanted())
        .map_err(|error| (Exit::Usage, error.into()))?;
    if let Some(dir) = &plan.state_dir {
        state_file::check_dir(dir).map_err(|error| (Exit::Config, error.into()))?;
    }
    let terminal = Terminal {
        verbose: args.verbose,
        dry_run: plan.options.dry_run,
    };
    let docker = docker(invocation, args.timeouts.timeouts());
    runtime()?.block_on(async {
        let signals = Signals::listen().map_err(|error| (Exit::CopyFailed, error.into()))?;
        let interrupted = Arc::new(OnceLock::new());
        tokio::spawn(cancel_on_signals(signals, docker.clone(), interrupted.clone()));
        let result = tokio::select! {
            result = crate::app::run(&plan, &docker, &terminal) => result.map_err(|error| (Exit::CopyFailed, error)),
            // Dropping the run kills the docker command under way, with its process group.
            () = plugin::socket::docker_gone() => Err((Exit::Interrupted, anyhow!("docker went away; stopped"))),
        };
        // The copy cut short has reported its failure; the status says why.
        interrupted.get().map_or(result, |&exit| Ok(exit))
    })
}

/// SIGINT (Ctrl-C) and SIGTERM, as a terminal and systemd send them.
struct Signals {
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    /// Listens from now on: a signal that comes before the first docker command is heard.
    fn listen() -> std::io::Result<Signals> {
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// The exit status the next signal calls for: 130 for SIGINT, 143 for SIGTERM, as a
    /// shell reports a process killed by them.
    async fn next(&mut self) -> Exit {
        tokio::select! {
            _ = self.terminate.recv() => Exit::Terminated,
            _ = self.interrupt.recv() => Exit::Interrupted,
        }
    }
}

/// A copy on the command line stops at the first signal, as `docker pull` does on Ctrl-C:
/// the docker command under way is killed, the copy cleans up after itself (no temporary
/// tag, no repository it created left empty), and no further copy starts. A second signal
/// ends the process at once, its docker commands killed first. `interrupted` gets the exit
/// status the first signal calls for.
async fn cancel_on_signals(mut signals: Signals, docker: DockerCli, interrupted: Arc<OnceLock<Exit>>) {
    let _ = interrupted.set(signals.next().await);
    tracing::warn!("stopping: the copy under way is cancelled and cleaned up (signal again to end at once)");
    docker.cancel();
    let again = signals.next().await;
    process::kill_all();
    std::process::exit(i32::from(again.code()));
}

/// `ecrcp sync`.
pub fn sync(args: &SyncArgs, invocation: &Invocation) -> Result<Exit, Failure> {
    logging::init(args.log_format, invocation.log_level.as_deref().unwrap_or("info"));
    let shard = match (&args.shard, args.shards) {
        (Some(shard), _) => Some(Shard::parse(shard)),
        (None, Some(count)) => Some(Shard::indexed(
            count,
            std::env::var("JOB_COMPLETION_INDEX").ok().as_deref(),
        )),
        (None, None) => None,
    }
    .transpose()
    .map_err(|error| (Exit::Usage, error.into()))?;
    let mut config = crate::config::load(&args.config).map_err(|error| (Exit::Config, error.into()))?;
    if let Some(engine) = args.engine {
        config.use_engine(engine.into()).map_err(|error| {
            (
                Exit::Config,
                anyhow::Error::new(error).context(format!("{}", args.config.display())),
            )
        })?;
    }
    if args.check {
        let images = config.jobs.len();
        let rules = match config.rules.len() {
            0 => String::new(),
            1 => " and 1 tag rule".to_owned(),
            rules => format!(" and {rules} tag rules"),
        };
        println!(
            "{}: valid, {images} cop{}{rules} to check",
            args.config.display(),
            if images == 1 { "y" } else { "ies" }
        );
        return Ok(Exit::Success);
    }
    let state_dir = state_dir(args.state_dir.as_ref())?;
    state_file::check_dir(&state_dir).map_err(|error| (Exit::Config, error.into()))?;
    let options = SyncOptions {
        dry_run: args.dry_run,
        state_dir,
        shard,
        metrics_file: args.metrics_file.clone().or_else(|| config.metrics_file.clone()),
        report: args.report.clone(),
    };
    let docker = docker(invocation, args.timeouts.timeouts());
    let stop = Stop::default();
    runtime()?.block_on(async {
        let signals = Signals::listen().map_err(|error| (Exit::CopyFailed, error.into()))?;
        tokio::spawn(stop_on_signals(signals, stop.clone()));
        match sync::run(&config, &options, &docker, &stop).await {
            Ok(summary) => Ok(summary.exit()),
            Err(error) if outcome::of(&error) == Fate::Defer => Err((Exit::Deferred, error)),
            Err(error) => Err((Exit::CopyFailed, error)),
        }
    })
}

/// The first SIGTERM or SIGINT stops new copies and lets those under way finish (their
/// docker commands, in process groups of their own, do not get the signal); a second one
/// ends the process at once, its docker commands killed first.
async fn stop_on_signals(mut signals: Signals, stop: Stop) {
    signals.next().await;
    stop.request();
    tracing::warn!("stopping: no new copies; those under way finish (signal again to end at once)");
    signals.next().await;
    process::kill_all();
    std::process::exit(i32::from(Exit::Terminated.code()));
}

/// `ecrcp plugin install|uninstall`.
pub fn plugin(command: &PluginCommand) -> Result<Exit, Failure> {
    logging::init(Format::Text, "warn");
    plugin_link(command).map_err(|error| (Exit::CopyFailed, error))
}

fn plugin_link(command: &PluginCommand) -> anyhow::Result<Exit> {
    let (scope, installing) = match command {
        PluginCommand::Install(scope) => (scope, true),
        PluginCommand::Uninstall(scope) => (scope, false),
    };
    let scope = if scope.system {
        install::Scope::System
    } else {
        install::Scope::User
    };
    let dir = install::plugin_dir(scope)?;
    if installing {
        let link = install::install(&dir, scope)?;
        println!("installed '{}'; try: docker ecrcp --help", link.display());
    } else if install::uninstall(&dir)? {
        println!("removed '{}'", dir.join(plugin::PLUGIN_BINARY).display());
    } else {
        println!("nothing to remove in '{}'", dir.display());
    }
    Ok(Exit::Success)
}

/// The state directory as given (`--state-dir`, `ECRCP_STATE_DIR`), else the user's default.
fn state_dir(given: Option<&std::path::PathBuf>) -> Result<std::path::PathBuf, Failure> {
    given
        .cloned()
        .or_else(crate::ledger::Ledger::default_dir)
        .ok_or_else(|| {
            (
                Exit::Usage,
                anyhow!("no state directory: set --state-dir or ECRCP_STATE_DIR"),
            )
        })
}

/// `ecrcp status`: the last run recorded in the state directory, for a person (and when
/// the timer runs next, under systemd) or as JSON.
pub fn status(args: &StatusArgs) -> Result<Exit, Failure> {
    let dir = state_dir(args.state_dir.as_ref())?;
    let Some(record) = report::load_last(&dir) else {
        return Err((
            Exit::CopyFailed,
            anyhow!(
                "no sync run is recorded in '{}'\nnote: a run records itself when it ends (a dry run does not); \
                 name the state directory the syncs use with --state-dir (the service's is /var/lib/ecrcp)",
                dir.display()
            ),
        ));
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&record).expect("a record serializes")
        );
    } else {
        let now = report::unix(std::time::SystemTime::now());
        print!(
            "{}",
            report::status_text(&record, now, next_timer_run().as_deref())
        );
    }
    Ok(Exit::Success)
}

/// When `ecrcp.timer` runs next, as systemd says it, when there is such a timer.
fn next_timer_run() -> Option<String> {
    // Looked up in PATH's absolute directories only, as every child program is.
    let output = process::command(std::path::Path::new("systemctl"))
        .ok()?
        .into_std()
        .args([
            "show",
            "ecrcp.timer",
            "--property=NextElapseUSecRealtime",
            "--value",
        ])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let next = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    (output.status.success() && !next.is_empty() && next != "n/a").then(|| format!("{next} (ecrcp.timer)"))
}

/// `ecrcp generate man|bash|zsh|fish DIR`, hidden: the files packages install.
pub fn generate(args: &GenerateArgs) -> Result<Exit, Failure> {
    crate::generate::write(args.what, &args.dir).map_err(|error| (Exit::CopyFailed, error.into()))?;
    Ok(Exit::Success)
}

/// `ecrcp iam-policy`: ECR's policy on stdout (a document `aws iam put-role-policy` takes),
/// what it could not know on stderr; other kinds of registry the copies reach are named
/// there, for `ecrcp permissions`.
pub fn iam_policy(args: &IamPolicyArgs, invocation: &Invocation) -> Result<Exit, Failure> {
    let needed = needed_permissions(args, invocation)?;
    let (ecr, others): (Vec<_>, Vec<_>) = needed.into_iter().partition(|needed| needed.kind == "ecr");
    if ecr.is_empty() {
        eprintln!("ecrcp: note: none of these copies reads or writes ECR: they need no IAM permissions");
    }
    for permissions in ecr {
        println!("{}", permissions.policy);
        for note in &permissions.notes {
            eprintln!("ecrcp: note: {note}");
        }
    }
    for other in others {
        eprintln!(
            "ecrcp: note: these copies also reach {}: `ecrcp permissions` prints what they need there",
            kind_name(other.kind)
        );
    }
    Ok(Exit::Success)
}

/// `ecrcp permissions`: what the copies need at every kind of registry they reach, one JSON
/// object keyed by kind (`ecr`: the IAM policy; `acr`: the role assignments; `gar`: the
/// roles) on stdout, what could not be known on stderr.
pub fn permissions(args: &IamPolicyArgs, invocation: &Invocation) -> Result<Exit, Failure> {
    let needed = needed_permissions(args, invocation)?;
    if needed.is_empty() {
        eprintln!(
            "ecrcp: note: none of these copies reads or writes ECR, Azure Container Registry or Artifact Registry: they need no cloud permissions"
        );
    }
    let mut by_kind = serde_json::Map::new();
    for permissions in needed {
        let policy: serde_json::Value = serde_json::from_str(&permissions.policy).map_err(|error| {
            (
                Exit::CopyFailed,
                anyhow!("the {} permissions are not JSON: {error}", permissions.kind),
            )
        })?;
        by_kind.insert(permissions.kind.to_owned(), policy);
        for note in &permissions.notes {
            eprintln!("ecrcp: note: {}: {note}", kind_name(permissions.kind));
        }
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&by_kind).expect("JSON values serialize")
    );
    Ok(Exit::Success)
}

/// A kind of registry as users name it.
fn kind_name(kind: &str) -> &str {
    match kind {
        "ecr" => "ECR",
        "acr" => "Azure Container Registry",
        "gar" => "Artifact Registry",
        other => other,
    }
}

/// What `args`' copies need at each kind of registry they reach.
fn needed_permissions(
    args: &IamPolicyArgs,
    invocation: &Invocation,
) -> Result<Vec<crate::provider::Permissions>, Failure> {
    logging::init(Format::Text, invocation.log_level.as_deref().unwrap_or("warn"));
    let subject = args.subject().map_err(|error| (Exit::Usage, error.into()))?;
    let from_config;
    let subject = match &subject {
        IamSubject::Config(path) => {
            let mut config = crate::config::load(path).map_err(|error| (Exit::Config, error.into()))?;
            if let Some(engine) = args.engine {
                config.use_engine(engine.into()).map_err(|error| {
                    (
                        Exit::Config,
                        anyhow::Error::new(error).context(path.display().to_string()),
                    )
                })?;
            }
            from_config = crate::tags::with_templates(&config.jobs, &config.rules).into_owned();
            crate::provider::Subject::Jobs(&from_config)
        }
        IamSubject::Jobs(jobs) => crate::provider::Subject::Jobs(jobs),
        IamSubject::Destinations(destinations, settings) => {
            crate::provider::Subject::Destinations(destinations, settings)
        }
    };
    runtime()?
        .block_on(crate::provider::permissions(subject, !args.no_create))
        .map_err(|error| (Exit::Usage, error.into()))
}
