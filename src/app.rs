//! Runs a copy plan: sets up the boundaries it needs, resolves destinations, runs each copy,
//! reports each result as it comes, and turns the results into an exit status.

use anyhow::Context as _;

use crate::copy::{Confirm, Copier, Outcome};
use crate::docker::{DockerCli, DockerError};
use crate::ecr::{Ecr, EcrError};
use crate::exit::Exit;
use crate::ledger::Ledger;
use crate::plan::{CopyJob, Plan};
use crate::reference::{EcrHost, Reference};
use crate::registry::credentials::CredentialStore;
use crate::registry::RegistryClient;

/// Hears about each finished copy. The terminal implementation lives in `ui`.
pub trait Reporter: Confirm {
    fn finished(&self, job: &CopyJob, destination: Option<&Reference>, result: &anyhow::Result<Outcome>);
    /// The run stopped early; `skipped` copies were not attempted.
    fn stopped(&self, reason: &anyhow::Error, skipped: usize);
}

/// Runs `plan` with the real docker CLI, registries and ECR.
pub async fn run(plan: &Plan, docker: &DockerCli, reporter: &dyn Reporter) -> anyhow::Result<Exit> {
    let uses_ecr = plan.needs_own_registry()
        || plan
            .jobs
            .iter()
            .any(|job| job.destination.registry().and_then(EcrHost::parse).is_some());
    let ecr = if uses_ecr {
        Some(Ecr::connect(&plan.aws).await?)
    } else {
        None
    };
    let own_registry = match (&ecr, plan.needs_own_registry()) {
        (Some(ecr), true) => {
            let region = ecr.default_region().ok_or(EcrError::NoRegion)?.to_owned();
            let authorization = ecr
                .authorization(&region)
                .await
                .context("cannot find your own ECR registry")?;
            Some(authorization.registry_host)
        }
        _ => None,
    };
    let registry = RegistryClient::new(CredentialStore::with_config_dir(docker.config_dir()))?;
    let ledger = plan
        .state_dir
        .as_deref()
        .map_or_else(Ledger::in_memory, Ledger::load);
    let copier = Copier::new(docker, &registry, ecr.as_ref(), &plan.options, reporter, ledger);

    let mut failed = false;
    for (index, job) in plan.jobs.iter().enumerate() {
        let destination = job.destination.resolve(&job.source, own_registry.as_deref());
        let (destination, result) = match destination {
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
            if stops_the_run(&error) {
                reporter.stopped(&error, plan.jobs.len() - index - 1);
                break;
            }
        }
    }
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

/// Failures that every further copy would hit too: no docker, no daemon, no credentials.
fn stops_the_run(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<DockerError>(),
            Some(DockerError::NotInstalled { .. } | DockerError::DaemonUnreachable { .. })
        ) || matches!(
            cause.downcast_ref::<EcrError>(),
            Some(EcrError::NoCredentials { .. })
        )
    })
}
