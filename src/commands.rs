//! The glue of each subcommand: turn its arguments into a plan, wire up the boundaries,
//! run it on a runtime, and say which exit status the result means. `main` dispatches here.

use anyhow::anyhow;

use crate::cli::{CopyArgs, PluginCommand, SyncArgs};
use crate::docker::{progress_wanted, DockerCli};
use crate::exit::Exit;
use crate::lock::LockError;
use crate::logging::{self, Format};
use crate::plugin::{self, install, Invocation};
use crate::sync::{self, Stop, SyncOptions};
use crate::ui::Terminal;

/// A command that did not run to its end: the exit status, and the error to print once.
pub type Failure = (Exit, anyhow::Error);

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Runtime::new().map_err(|error| (Exit::CopyFailed, error.into()))
}

fn docker(invocation: &Invocation) -> DockerCli {
    DockerCli::from_env().with_global_args(invocation.docker_args.clone())
}

/// `ecrcp SOURCE... DEST`.
pub fn copy(args: &CopyArgs, invocation: &Invocation) -> Result<Exit, Failure> {
    logging::init(Format::Text, invocation.log_level.as_deref().unwrap_or("warn"));
    let plan = args
        .into_plan(progress_wanted())
        .map_err(|error| (Exit::Usage, error.into()))?;
    let terminal = Terminal {
        verbose: args.verbose,
        dry_run: plan.options.dry_run,
    };
    let docker = docker(invocation);
    runtime()?.block_on(async {
        tokio::select! {
            result = crate::app::run(&plan, &docker, &terminal) => result.map_err(|error| (Exit::CopyFailed, error)),
            // Dropping the run kills the docker command under way.
            () = plugin::socket::docker_gone() => Err((Exit::Interrupted, anyhow!("docker went away; stopped"))),
        }
    })
}

/// `ecrcp sync`.
pub fn sync(args: &SyncArgs, invocation: &Invocation) -> Result<Exit, Failure> {
    logging::init(args.log_format, invocation.log_level.as_deref().unwrap_or("info"));
    let config = crate::config::load(&args.config).map_err(|error| (Exit::Config, error.into()))?;
    if args.check {
        let images = config.jobs.len();
        println!(
            "{}: valid, {images} cop{} to check",
            args.config.display(),
            if images == 1 { "y" } else { "ies" }
        );
        return Ok(Exit::Success);
    }
    let state_dir = args
        .state_dir
        .clone()
        .or_else(sync::default_state_dir)
        .ok_or_else(|| {
            (
                Exit::Usage,
                anyhow!("no state directory: set --state-dir or ECRCP_STATE_DIR"),
            )
        })?;
    let options = SyncOptions {
        dry_run: args.dry_run,
        state_dir,
    };
    let docker = docker(invocation);
    let stop = Stop::default();
    runtime()?.block_on(async {
        tokio::spawn(stop_on_signals(stop.clone()));
        match sync::run(&config, &options, &docker, &stop).await {
            Ok(summary) => Ok(summary.exit()),
            Err(error)
                if error
                    .downcast_ref::<LockError>()
                    .is_some_and(|e| matches!(e, LockError::Busy { .. })) =>
            {
                Err((Exit::Deferred, error))
            }
            Err(error) => Err((Exit::CopyFailed, error)),
        }
    })
}

/// The first SIGTERM or SIGINT stops new copies and lets those under way finish; a second
/// one ends the process at once.
async fn stop_on_signals(stop: Stop) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut terminate), Ok(mut interrupt)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        return;
    };
    loop {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        if stop.is_requested() {
            std::process::exit(i32::from(Exit::Terminated.code()));
        }
        stop.request();
        tracing::warn!("stopping: no new copies; those under way finish (signal again to end at once)");
    }
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
    let dir = install::plugin_dir(if scope.system {
        install::Scope::System
    } else {
        install::Scope::User
    })?;
    if installing {
        let link = install::install(&dir)?;
        println!("installed '{}'; try: docker ecrcp --help", link.display());
    } else if install::uninstall(&dir)? {
        println!("removed '{}'", dir.join(plugin::PLUGIN_BINARY).display());
    } else {
        println!("nothing to remove in '{}'", dir.display());
    }
    Ok(Exit::Success)
}
