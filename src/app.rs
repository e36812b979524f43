//! Runs a copy plan (`ecrcp SOURCE... DEST`): sets up the boundaries it needs, resolves
//! destinations, runs each copy in turn as `cp` does, reports each result as it comes, and
//! turns the results into an exit status.

use crate::copy::{Confirm, Outcome};
use crate::docker::DockerCli;
use crate::exit::Exit;
use crate::outcome::{self, Fate};
use crate::plan::{CopyJob, Plan};
use crate::reference::Reference;
use crate::setup::Setup;

/// Hears about each finished copy. The terminal implementation lives in `ui`.
pub trait Reporter: Confirm {
    fn finished(&self, job: &CopyJob, destination: Option<&Reference>, result: &anyhow::Result<Outcome>);
    /// The run stopped early; `skipped` copies were not attempted.
    fn stopped(&self, reason: &anyhow::Error, skipped: usize);
}

/// Runs `plan` with the real docker CLI, registries and ECR.
pub async fn run(plan: &Plan, docker: &DockerCli, reporter: &dyn Reporter) -> anyhow::Result<Exit> {
    let setup = Setup::new(&plan.jobs, docker, &crate::provider::Pacing::default()).await?;
    let copier = setup.copier(docker, plan.options, reporter, plan.state_dir.as_deref());

    let mut failed = false;
    for (index, job) in plan.jobs.iter().enumerate() {
        let (destination, result) = match setup.resolve(job) {
            Ok(destination) => {
                let result = copier.copy(job, &destination).await;
                (Some(destination), result)
            }
            Err(error) => (None, Err(error.into())),
        };
        log_result(job, destination.as_ref(), &result);
        reporter.finished(job, destination.as_ref(), &result);
        if let Err(error) = result {
            failed = true;
            if outcome::of(&error) == Fate::Stop {
                reporter.stopped(&error, plan.jobs.len() - index - 1);
                break;
            }
        }
    }
    copier.close().await;
    Ok(if failed { Exit::CopyFailed } else { Exit::Success })
}

fn log_result(job: &CopyJob, destination: Option<&Reference>, result: &anyhow::Result<Outcome>) {
    let destination = destination.map(ToString::to_string).unwrap_or_default();
    match result {
        Ok(outcome) => tracing::info!(image = %job.source, %destination, outcome = ?outcome, "copy finished"),
        Err(error) => {
            tracing::info!(image = %job.source, %destination, outcome = "failed", error = %format!("{error:#}"), "copy finished");
        }
    }
}
