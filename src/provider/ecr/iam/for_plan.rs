//! ECR's answer to `ecrcp iam-policy`: the caller's own registry asked of ECR once per AWS
//! profile and region that needs it, each copy's accesses, and the policy built from them.
//! Talks to ECR only to learn the own registry; the command layer loads the config and
//! prints the answer.

use std::collections::HashMap;

use futures_util::future::BoxFuture;

use crate::plan::AwsOptions;
use crate::provider::ecr::{Ecr, EcrError};
use crate::provider::{Permissions, Subject};
use crate::reference::{EcrHost, ReferenceError};

use super::{build, destination_access, job_accesses, Built, Registry};

/// The policy, if anything touches ECR, and what could not be known about the own
/// registries (said before the policy's own notes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub built: Option<Built>,
    pub notes: Vec<String>,
}

/// The permissions `subject` needs at ECR, as a provider answers them: the policy's JSON
/// and its notes; `None` when nothing in it touches ECR.
pub fn permissions(
    subject: Subject<'_>,
    create: bool,
) -> BoxFuture<'_, Result<Option<Permissions>, ReferenceError>> {
    Box::pin(async move {
        let answer = policy(subject, create).await?;
        Ok(answer.built.map(|built| Permissions {
            kind: "ecr",
            policy: built.policy.to_json(),
            notes: answer.notes.into_iter().chain(built.notes).collect(),
        }))
    })
}

/// The policy `subject` needs; `create`: copies may create repositories.
pub async fn policy(subject: Subject<'_>, create: bool) -> Result<Answer, ReferenceError> {
    let wanted: Vec<&AwsOptions> = match subject {
        Subject::Jobs(jobs) => jobs
            .iter()
            .filter(|job| job.needs_own_registry())
            .map(|job| &job.settings.aws)
            .collect(),
        Subject::Destinations(destinations, settings) => destinations
            .iter()
            .filter(|destination| destination.registry().is_none())
            .map(|_| &settings.aws)
            .collect(),
    };
    let mut notes = Vec::new();
    let mut owns = HashMap::new();
    for aws in wanted {
        if !owns.contains_key(aws) {
            let (registry, why) = own_registry(aws).await;
            notes.extend(why);
            owns.insert(aws.clone(), registry);
        }
    }
    let unknown = Registry {
        account: None,
        region: None,
    };
    let own = |aws: &AwsOptions| owns.get(aws).unwrap_or(&unknown);
    let accesses: Vec<_> = match subject {
        Subject::Jobs(jobs) => jobs
            .iter()
            .map(|job| job_accesses(job, own(&job.settings.aws), create))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect(),
        Subject::Destinations(destinations, settings) => destinations
            .iter()
            .filter_map(|destination| destination_access(destination, settings, own(&settings.aws), create))
            .collect(),
    };
    Ok(Answer {
        built: build(&accesses),
        notes,
    })
}

/// The caller's own registry under `aws`, as GetAuthorizationToken names it; without
/// credentials (or that permission), the region alone, and why the account is unknown.
async fn own_registry(aws: &AwsOptions) -> (Registry, Option<String>) {
    let configured = aws
        .region
        .clone()
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .filter(|region| !region.is_empty());
    let unknown = |region: Option<String>, why: String| {
        let registry = Registry {
            account: None,
            region,
        };
        (
            registry,
            Some(format!("cannot ask which account your own registry is in: {why}")),
        )
    };
    let ecr = match Ecr::connect(aws).await {
        Ok(ecr) => ecr,
        Err(error) => return unknown(configured, first_line(&error)),
    };
    let Some(region) = ecr.default_region().map(str::to_owned) else {
        return unknown(None, first_line(&EcrError::NoRegion));
    };
    match ecr.own_registry(&region).await {
        Ok(host) => match EcrHost::parse(&host) {
            Some(host) => (Registry::of(&host), None),
            None => unknown(
                Some(region),
                format!("GetAuthorizationToken named '{host}', which is no ECR registry"),
            ),
        },
        Err(error) => unknown(Some(region), first_line(&error)),
    }
}

fn first_line(error: &dyn std::fmt::Display) -> String {
    error.to_string().lines().next().unwrap_or_default().to_owned()
}
