//! The `ecrcp` binary (and `docker-ecrcp`, the same file as a docker CLI plugin): answer the
//! plugin handshake, take docker's part off the argv, parse, run, print a fatal error once.

use std::process::ExitCode;

use ecrcp::cli::{self, Cli, Command, PluginCommand};
use ecrcp::docker::{progress_wanted, DockerCli};
use ecrcp::exit::Exit;
use ecrcp::plugin::{self, install, Invocation};
use ecrcp::ui::Terminal;

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
        Err(error) => return fail(&Invocation::default(), Exit::Usage, &anyhow::anyhow!(error)),
    };
    let cli = cli::parse(&invocation.program, &invocation.args).unwrap_or_else(|error| error.exit());
    ecrcp::logging::init(invocation.log_level.as_deref().unwrap_or("warn"));
    match run(cli, &invocation) {
        Ok(exit) => exit.into(),
        Err((exit, error)) => fail(&invocation, exit, &error),
    }
}

fn fail(invocation: &Invocation, exit: Exit, error: &anyhow::Error) -> ExitCode {
    eprintln!("ecrcp: {error:#}");
    if exit == Exit::Usage {
        let program = if invocation.program.is_empty() {
            "ecrcp"
        } else {
            &invocation.program
        };
        eprintln!("Try '{program} --help' for more information.");
    }
    exit.into()
}

fn run(cli: Cli, invocation: &Invocation) -> Result<Exit, (Exit, anyhow::Error)> {
    match cli.command {
        Some(Command::Plugin(command)) => plugin_link(&command).map_err(|error| (Exit::CopyFailed, error)),
        None => copy(cli, invocation),
    }
}

fn copy(cli: Cli, invocation: &Invocation) -> Result<Exit, (Exit, anyhow::Error)> {
    let verbose = cli.copy.verbose;
    let plan = cli
        .copy
        .into_plan(progress_wanted(false))
        .map_err(|error| (Exit::Usage, error.into()))?;
    let terminal = Terminal {
        verbose,
        dry_run: plan.options.dry_run,
    };
    let docker = DockerCli::from_env().with_global_args(invocation.docker_args.clone());
    let runtime = tokio::runtime::Runtime::new().map_err(|error| (Exit::CopyFailed, error.into()))?;
    runtime.block_on(async {
        tokio::select! {
            result = ecrcp::app::run(&plan, &docker, &terminal) => result.map_err(|error| (Exit::CopyFailed, error)),
            // Dropping the run kills the docker command under way.
            () = plugin::socket::docker_gone() => Err((Exit::Interrupted, anyhow::anyhow!("docker went away; stopped"))),
        }
    })
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
