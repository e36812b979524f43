//! The `ecrcp` binary (and `docker-ecrcp`, the same file as a docker CLI plugin): answer the
//! plugin handshake, take docker's part off the argv, parse, run the command, print a fatal
//! error once.

use std::process::ExitCode;

use ecrcp::cli::{self, Command};
use ecrcp::commands;
use ecrcp::exit::Exit;
use ecrcp::plugin::{self, Invocation};

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
    let result = match &cli.command {
        Some(Command::Sync(sync_args)) => commands::sync(sync_args, &invocation),
        Some(Command::Plugin(command)) => commands::plugin(command),
        Some(Command::Status(status_args)) => commands::status(status_args),
        Some(Command::IamPolicy(iam_args)) => commands::iam_policy(iam_args, &invocation),
        Some(Command::Permissions(iam_args)) => commands::permissions(iam_args, &invocation),
        Some(Command::Generate(generate_args)) => commands::generate(generate_args),
        None => commands::copy(&cli.copy, &invocation),
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
