//! The `ecrcp` binary (and `docker-ecrcp`, the same file as a docker CLI plugin): answer the
//! plugin handshake, take docker's part off the argv, parse, run the command, print a fatal
//! error once.

use std::process::ExitCode;

use anyhow::anyhow;
use ecrcp::cli::{self, Command, CopyArgs, PluginCommand, SyncArgs};
use ecrcp::docker::{progress_wanted, DockerCli};
use ecrcp::exit::Exit;
use ecrcp::lock::LockError;
use ecrcp::logging::{self, Format};
use ecrcp::plugin::{self, install, Invocation};
use ecrcp::sync::{self, Stop, SyncOptions};
use ecrcp::ui::Terminal;

type Failure = (Exit, anyhow::Error);

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args_os()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    // docker asks every plugin this on each `docker --help`: answer before anything else.
    if argv.get(1).map(String::as_str) == Some(plugin::METADATA_COMMAND) {
        println!("{}", plugin::METADATA);
        return ExitCode::SUCCESS;
    }
    let invocation = match plugin::parse(&argv) {
        Ok(invocation) => invocation,
        Err(error) => return fail(&Invocation::default(), Exit::Usage, &anyhow!(error)),
    };
    let cli = cli::parse(&invocation.program, &invocation.args).unwrap_or_else(|error| error.exit());
    let result = match &cli.command {
        Some(Command::Sync(sync_args)) => sync_command(sync_args, &invocation),
        Some(Command::Plugin(command)) => {
            logging::init(Format::Text, "warn");
            plugin_link(command).map_err(|error| (Exit::CopyFailed, error))
        }
        None => copy_command(&cli.copy, &invocation),
    };
    match result {
        Ok(exit) => exit.into(),
        Err((exit, error)) => fail(&invocation, exit, &error),
    }
}

fn fail(invocation: &Invocation, exit: Exit, error: &anyhow::Error) -> ExitCode {
    eprintln!("ecrcp: {error:#}");
    if exit == Exit::Usage && !invocation.args.is_empty() {
        eprintln!("Try '{} --help' for more information.", invocation.program);
    }
    exit.into()
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Runtime::new().map_err(|error| (Exit::CopyFailed, error.into()))
}

fn docker(invocation: &Invocation) -> DockerCli {
    DockerCli::from_env().with_global_args(invocation.docker_args.clone())
}

fn copy_command(args: &CopyArgs, invocation: &Invocation) -> Result<Exit, Failure> {
    logging::init(Format::Text, invocation.log_level.as_deref().unwrap_or("warn"));
    let plan = args
        .into_plan(progress_wanted(false))
        .map_err(|error| (Exit::Usage, error.into()))?;
    let terminal = Terminal {
        verbose: args.verbose,
        dry_run: plan.options.dry_run,
    };
    let docker = docker(invocation);
    runtime()?.block_on(async {
        tokio::select! {
            result = ecrcp::app::run(&plan, &docker, &terminal) => result.map_err(|error| (Exit::CopyFailed, error)),
            // Dropping the run kills the docker command under way.
            () = plugin::socket::docker_gone() => Err((Exit::Interrupted, anyhow!("docker went away; stopped"))),
        }
    })
}

fn sync_command(args: &SyncArgs, invocation: &Invocation) -> Result<Exit, Failure> {
    logging::init(args.log_format, invocation.log_level.as_deref().unwrap_or("info"));
    let config = ecrcp::config::load(&args.config).map_err(|error| (Exit::Config, error.into()))?;
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
