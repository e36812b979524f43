//! The `ecrcp` binary: parse, validate, run, and print a fatal error once.

use std::process::ExitCode;

use clap::Parser as _;
use ecrcp::cli::Cli;
use ecrcp::docker::{progress_wanted, DockerCli};
use ecrcp::exit::Exit;
use ecrcp::ui::Terminal;

fn main() -> ExitCode {
    let cli = Cli::parse();
    ecrcp::logging::init("warn");
    match run(cli) {
        Ok(exit) => exit.into(),
        Err((exit, error)) => {
            eprintln!("ecrcp: {error:#}");
            if exit == Exit::Usage {
                eprintln!("Try 'ecrcp --help' for more information.");
            }
            exit.into()
        }
    }
}

fn run(cli: Cli) -> Result<Exit, (Exit, anyhow::Error)> {
    let verbose = cli.copy.verbose;
    let plan = cli
        .copy
        .into_plan(progress_wanted(false))
        .map_err(|error| (Exit::Usage, error.into()))?;
    let terminal = Terminal {
        verbose,
        dry_run: plan.options.dry_run,
    };
    let runtime = tokio::runtime::Runtime::new().map_err(|error| (Exit::CopyFailed, error.into()))?;
    runtime
        .block_on(ecrcp::app::run(&plan, &DockerCli::from_env(), &terminal))
        .map_err(|error| (Exit::CopyFailed, error))
}
