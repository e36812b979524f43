//! Artifact Registry's answer to `ecrcp permissions`: the IAM roles (and, within them, the
//! permissions) the principal ecrcp runs as needs on each repository a plan reads or writes,
//! and on the project where it may create repositories. Pure: the plan alone says it.

use std::collections::BTreeMap;

use futures_util::future::BoxFuture;

use super::GarHost;
use crate::plan::CopyJob;
use crate::provider::{Permissions, Subject};
use crate::reference::{Destination, ReferenceError};

/// What a plan does at one place, from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Access {
    Read,
    Write,
    /// Create (and, after a failed copy, remove) repositories under a location.
    Create,
}

const READ: &[&str] = &["artifactregistry.repositories.downloadArtifacts"];
const WRITE: &[&str] = &[
    "artifactregistry.repositories.get",
    "artifactregistry.repositories.downloadArtifacts",
    "artifactregistry.repositories.uploadArtifacts",
    "artifactregistry.tags.create",
    "artifactregistry.tags.update",
];
const CREATE: &[&str] = &[
    "artifactregistry.repositories.get",
    "artifactregistry.repositories.create",
    "artifactregistry.repositories.delete",
    "artifactregistry.dockerimages.list",
];

impl Access {
    fn role(self) -> &'static str {
        match self {
            Access::Read => "roles/artifactregistry.reader",
            Access::Write => "roles/artifactregistry.writer",
            Access::Create => "roles/artifactregistry.admin",
        }
    }

    fn permissions(self) -> &'static [&'static str] {
        match self {
            Access::Read => READ,
            Access::Write => WRITE,
            Access::Create => CREATE,
        }
    }
}

/// Where a grant goes: a repository's or a location's resource name (the project's
/// `projects/PROJECT` when the location is all that is known).
type Resource = String;

/// The permissions `subject` needs at Artifact Registry; `None` when nothing in it reaches
/// Artifact Registry.
pub fn permissions(
    subject: Subject<'_>,
    create: bool,
) -> BoxFuture<'_, Result<Option<Permissions>, ReferenceError>> {
    Box::pin(async move { needed(subject, create) })
}

fn needed(subject: Subject<'_>, create: bool) -> Result<Option<Permissions>, ReferenceError> {
    let mut grants: BTreeMap<Resource, Access> = BTreeMap::new();
    let mut notes = Vec::new();
    let mut grant = |resource: String, access: Access| {
        let held = grants.entry(resource).or_insert(access);
        *held = (*held).max(access);
    };
    match subject {
        Subject::Jobs(jobs) => {
            for job in jobs {
                job_accesses(job, create, &mut grant)?;
            }
        }
        Subject::Destinations(destinations, _) => {
            for destination in destinations {
                if let Some(note) = destination_access(destination, create, &mut grant) {
                    notes.push(note);
                }
            }
        }
    }
    if grants.is_empty() {
        return Ok(None);
    }
    let bindings: Vec<serde_json::Value> = grants
        .iter()
        .map(|(resource, access)| {
            serde_json::json!({
                "resource": resource,
                "role": access.role(),
                "permissions": access.permissions(),
            })
        })
        .collect();
    let policy = serde_json::to_string_pretty(&serde_json::json!({"artifactRegistry": bindings}))
        .expect("JSON values serialise");
    notes.push(
        "Artifact Registry: grant each role to the principal ecrcp runs as on its resource, e.g. \
         `gcloud artifacts repositories add-iam-policy-binding REPOSITORY --project=PROJECT --location=LOCATION \
         --member=PRINCIPAL --role=ROLE`; a custom role with just the permissions listed is narrower (docs/google.md)"
            .to_owned(),
    );
    if grants.values().any(|access| *access == Access::Create) {
        notes.push(
            "Artifact Registry: no predefined role short of roles/artifactregistry.admin may create repositories; \
             grant it, or a custom role with the permissions listed, on the project (`gcloud projects add-iam-policy-binding`), \
             or create the repositories beforehand (then `ecrcp permissions --no-create` leaves this out)"
                .to_owned(),
        );
    }
    Ok(Some(Permissions {
        kind: "gar",
        policy,
        notes,
    }))
}

/// The repository (or, when creating, the location too) a job reads or writes there.
fn job_accesses(
    job: &CopyJob,
    create: bool,
    grant: &mut impl FnMut(String, Access),
) -> Result<(), ReferenceError> {
    if let Some(host) = GarHost::parse(job.source.registry()) {
        if let Ok(repository) = host.repository(job.source.repository()) {
            grant(repository.name(), Access::Read);
        }
    }
    let Some(host) = job.destination.registry().and_then(GarHost::parse) else {
        return Ok(());
    };
    let destination = job.destination.resolve(&job.source, None)?;
    if let Ok(repository) = host.repository(destination.repository()) {
        grant(repository.name(), Access::Write);
        if create {
            grant(repository.parent(), Access::Create);
        }
    }
    Ok(())
}

/// A destination whose sources are not known: its repository when the path names it, else
/// its location (every repository there), with a note saying so.
fn destination_access(
    destination: &Destination,
    create: bool,
    grant: &mut impl FnMut(String, Access),
) -> Option<String> {
    let host = destination.registry().and_then(GarHost::parse)?;
    let path = match destination {
        Destination::Exact { repository, .. } => repository.clone(),
        // Any image under the directory is in the same repository, if the prefix names one.
        Destination::Directory { prefix, .. } => format!("{prefix}/image"),
    };
    if let Ok(repository) = host.repository(&path) {
        grant(repository.name(), Access::Write);
        if create {
            grant(repository.parent(), Access::Create);
        }
        return None;
    }
    let project = path
        .split('/')
        .next()
        .filter(|project| !project.is_empty() && *project != "image");
    let resource = match project {
        Some(project) => format!("projects/{project}/locations/{}", host.location),
        None => "projects/PROJECT".to_owned(),
    };
    grant(
        resource.clone(),
        if create { Access::Create } else { Access::Write },
    );
    Some(format!(
        "'{destination}' names no Artifact Registry repository: the grant covers every repository of {resource}; \
         pass --source to name them"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::JobSettings;
    use crate::reference::Reference;

    fn job(source: &str, destination: &str) -> CopyJob {
        CopyJob {
            label: source.to_owned(),
            source: Reference::parse(source).unwrap(),
            destination: Destination::parse(destination).unwrap(),
            settings: JobSettings::default(),
        }
    }

    fn bindings(permissions: &Permissions) -> Vec<(String, String)> {
        let doc: serde_json::Value = serde_json::from_str(&permissions.policy).unwrap();
        doc["artifactRegistry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|binding| {
                (
                    binding["resource"].as_str().unwrap().to_owned(),
                    binding["role"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn a_plan_needs_the_writer_role_where_it_pushes_the_reader_role_where_it_reads_and_create_only_when_it_may(
    ) {
        let repo = "projects/my-project/locations/us/repositories";
        let jobs = [
            job("nginx:1.27", "us-docker.pkg.dev/my-project/mirror/"),
            job(
                "us-docker.pkg.dev/my-project/base/alpine:3",
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/x/",
            ),
            job("redis:7", "gcr.io/my-project/redis"),
        ];
        let cases: &[(bool, &[(&str, &str)])] = &[
            (
                false,
                &[
                    ("base", "roles/artifactregistry.reader"),
                    ("gcr.io", "roles/artifactregistry.writer"),
                    ("mirror", "roles/artifactregistry.writer"),
                ],
            ),
            (
                true,
                &[
                    ("", "roles/artifactregistry.admin"),
                    ("base", "roles/artifactregistry.reader"),
                    ("gcr.io", "roles/artifactregistry.writer"),
                    ("mirror", "roles/artifactregistry.writer"),
                ],
            ),
        ];
        for (create, expected) in cases {
            let needed = needed(Subject::Jobs(&jobs), *create).unwrap().unwrap();
            let expected: Vec<(String, String)> = expected
                .iter()
                .map(|(id, role)| {
                    let resource = if id.is_empty() {
                        "projects/my-project/locations/us".to_owned()
                    } else {
                        format!("{repo}/{id}")
                    };
                    (resource, (*role).to_owned())
                })
                .collect();
            assert_eq!(bindings(&needed), expected, "create: {create}");
            assert_eq!(
                needed.policy.contains("artifactregistry.repositories.create"),
                *create,
                "{}",
                needed.policy
            );
        }
        let elsewhere = [job("nginx", "registry.example.com/m/")];
        assert_eq!(needed(Subject::Jobs(&elsewhere), true).unwrap(), None);
    }

    #[test]
    fn a_destination_without_its_repository_covers_its_location_and_says_so() {
        let settings = JobSettings::default();
        let destinations = [
            Destination::parse("europe-docker.pkg.dev/my-project/").unwrap(),
            Destination::parse("europe-docker.pkg.dev/my-project/team/").unwrap(),
        ];
        let needed = needed(Subject::Destinations(&destinations, &settings), false)
            .unwrap()
            .unwrap();
        assert_eq!(
            bindings(&needed),
            [
                (
                    "projects/my-project/locations/europe".to_owned(),
                    "roles/artifactregistry.writer".to_owned()
                ),
                (
                    "projects/my-project/locations/europe/repositories/team".to_owned(),
                    "roles/artifactregistry.writer".to_owned()
                ),
            ]
        );
        assert!(
            needed.notes[0].contains("names no Artifact Registry repository"),
            "{:?}",
            needed.notes
        );
    }
}
