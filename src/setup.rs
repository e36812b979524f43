//! What a run sets up before its first copy, the same for `ecrcp SOURCE... DEST` (`app`) and
//! `ecrcp sync` (`sync`): the providers of the registries its jobs reach (their credentials
//! checked before any copy), ecrcp's own registry client with docker's logins, the ledger,
//! and the copier that holds the engines. Each command adds only what is its own (the
//! lock, the tag rules, the options).

use std::path::Path;

use crate::copy::{Confirm, Copier};
use crate::docker::DockerCli;
use crate::ledger::Ledger;
use crate::plan::{CopyJob, CopyOptions};
use crate::provider::{Pacing, Providers};
use crate::reference::{Reference, ReferenceError};
use crate::registry::credentials::CredentialStore;
use crate::registry::{RegistryClient, RegistryError};

/// The boundaries of one run, shared by all its copies.
pub struct Setup {
    pub registry: RegistryClient,
    pub providers: Providers,
}

impl Setup {
    /// Connects the providers `jobs` need (every job the run may copy: for sync, those its
    /// tag rules may make too) and ecrcp's registry client, which paces each registry's
    /// requests at the rates its kind sets (`pacing`: quotas raised, and how many workers
    /// share them). Missing credentials stop the run here, before any copy.
    pub async fn new(jobs: &[CopyJob], docker: &DockerCli, pacing: &Pacing) -> anyhow::Result<Setup> {
        let providers = Providers::connect(jobs).await?;
        let registry = registry_client(docker)?;
        let setup = Setup { registry, providers };
        let mut paced = std::collections::HashSet::new();
        for job in jobs {
            for image in [Some(job.source.clone()), setup.resolve(job).ok()]
                .into_iter()
                .flatten()
            {
                // A host no kind claims gets `Plain`, whose logins are not Basic.
                let provider = setup.providers.for_host(image.registry());
                if provider.logs_in_with_basic() {
                    setup.registry.expect_basic(image.api_host());
                }
                if paced.insert(image.api_host().to_owned()) {
                    setup.registry.pace(image.api_host(), provider.paced(pacing));
                }
            }
        }
        Ok(setup)
    }

    /// The copier for this run, with the ledger of `state_dir` (read-only on a dry run; in
    /// memory without a state directory).
    pub fn copier<'a>(
        &'a self,
        docker: &'a DockerCli,
        options: CopyOptions,
        confirm: &'a dyn Confirm,
        state_dir: Option<&Path>,
    ) -> Copier<'a> {
        let ledger = match state_dir {
            None => Ledger::in_memory(),
            Some(dir) if options.dry_run => Ledger::load_read_only(dir),
            Some(dir) => Ledger::load(dir),
        };
        Copier::new(docker, &self.registry, &self.providers, options, confirm, ledger)
    }

    /// The job's destination as a full reference, the own registry filled in.
    pub fn resolve(&self, job: &CopyJob) -> Result<Reference, ReferenceError> {
        job.destination
            .resolve(&job.source, self.providers.own_registry(&job.settings))
    }
}

/// ecrcp's own registry client for a run: the logins docker would use, from its config
/// directory, with credential helpers held to docker's command time limit.
fn registry_client(docker: &DockerCli) -> Result<RegistryClient, RegistryError> {
    RegistryClient::new(
        CredentialStore::with_config_dir(docker.config_dir()).with_helper_timeout(docker.timeouts().command),
    )
}
