//! Runs a copy plan (`ecrcp SOURCE... DEST`): sets up the boundaries it needs, resolves
//! destinations, runs each copy in turn as `cp` does, reports each result as it comes, and
//! turns the results into an exit status.

use crate::copy::{Confirm, Copier, Outcome};
use crate::docker::DockerCli;
use crate::ecr::EcrSessions;
use crate::exit::Exit;
use crate::ledger::Ledger;
use crate::outcome::{self, Fate};
use crate::plan::{CopyJob, Plan};
use crate::reference::{Reference, ReferenceError};
use crate::registry::credentials::CredentialStore;
use crate::registry::{RegistryClient, RegistryError};

/// Hears about each finished copy. The terminal implementation lives in `ui`.
pub trait Reporter: Confirm {
    fn finished(&self, job: &CopyJob, destination: Option<&Reference>, result: &anyhow::Result<Outcome>);
    /// The run stopped early; `skipped` copies were not attempted.
    fn stopped(&self, reason: &anyhow::Error, skipped: usize);
}

/// Runs `plan` with the real docker CLI, registries and ECR.
pub async fn run(plan: &Plan, docker: &DockerCli, reporter: &dyn Reporter) -> anyhow::Result<Exit> {
    let sessions = EcrSessions::connect(&plan.jobs).await?;
    let registry = registry_client(docker)?;
    let ledger = match plan.state_dir.as_deref() {
        None => Ledger::in_memory(),
        Some(dir) if plan.options.dry_run => Ledger::load_read_only(dir),
        Some(dir) => Ledger::load(dir),
    };
    let copier = Copier::new(docker, &registry, plan.options, reporter, ledger);

    let mut failed = false;
    for (index, job) in plan.jobs.iter().enumerate() {
        let (destination, result) = match resolve(job, &sessions) {
            Ok(destination) => {
                let result = copier
                    .copy(job, &destination, sessions.ecr(&job.settings.aws))
                    .await;
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

/// ecrcp's own registry client for a run: the logins docker would use, from its config
/// directory, with credential helpers held to docker's command time limit.
pub fn registry_client(docker: &DockerCli) -> Result<RegistryClient, RegistryError> {
    RegistryClient::new(
        CredentialStore::with_config_dir(docker.config_dir()).with_helper_timeout(docker.timeouts().command),
    )
}

/// The job's destination as a full reference, the own registry filled in.
pub fn resolve(job: &CopyJob, sessions: &EcrSessions) -> Result<Reference, ReferenceError> {
    job.destination
        .resolve(&job.source, sessions.own_registry(&job.settings.aws))
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
