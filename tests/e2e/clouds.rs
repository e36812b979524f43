//! The three clouds in one pass on the test bed: one source fanned out to ECR, Google
//! Artifact Registry and Azure Container Registry by one `ecrcp sync`, each with its own
//! credentials and no docker login, and a second pass that finds all three in step.

use crate::support::{Bed, ECR};

const GAR: &str = "us-docker.pkg.dev";
const PROJECT: &str = "ecrcp-testbed";
const ACR: &str = "ecrcpbed.azurecr.io";

#[test]
#[ignore = "needs the test bed"]
fn one_sync_pass_fans_a_source_out_to_ecr_artifact_registry_and_acr() {
    let bed = Bed::get("clouds-fan");
    let prefix = bed.unique("clouds");
    // Artifact Registry's repository ids: lowercase letters, digits and hyphens.
    let repository = prefix.to_ascii_lowercase().chars().take(60).collect::<String>();
    let config = bed.sync_config(&format!(
        "version = 1\n[defaults]\nengine = \"registry\"\n\n[[image]]\nsource = \"alpine:3.20\"\n\
         destination = [\"{ECR}/{prefix}/\", \"{GAR}/{PROJECT}/{repository}/\", \"{ACR}/{prefix}/\"]\n"
    ));
    let gcp = std::env::var("ECRCP_TESTBED_GCP").expect("the bed exports ECRCP_TESTBED_GCP");
    let sync = || {
        let mut command = bed.sync_command(&config);
        command
            .env(
                "GOOGLE_APPLICATION_CREDENTIALS",
                format!("{gcp}/service-account.json"),
            )
            .env("CLOUDSDK_CONFIG", bed.scratch().join("gcloud"))
            .env("GCE_METADATA_HOST", "127.0.0.1:9")
            .env("AZURE_TENANT_ID", "7e57bed0-0000-4000-8000-000000000001")
            .env("AZURE_CLIENT_ID", "7e57bed0-0000-4000-8000-0000000000a1")
            .env("AZURE_CLIENT_SECRET", "ecrcpbed-push-secret");
        crate::support::Run::from(command.output().expect("ecrcp runs"))
    };
    let outcomes = |run: &crate::support::Run| {
        let mut found: Vec<(String, String)> = run
            .events("image synced")
            .iter()
            .map(|event| {
                let destination = event["destination"].as_str().unwrap_or_default();
                let host = destination.split('/').next().unwrap_or_default().to_owned();
                (host, event["outcome"].as_str().unwrap_or_default().to_owned())
            })
            .collect();
        found.sort();
        found
    };

    let first = sync();
    first.assert_code(0);
    let mut expected: Vec<(String, String)> = [ACR, ECR, GAR]
        .iter()
        .map(|host| ((*host).to_owned(), "copied".to_owned()))
        .collect();
    expected.sort();
    assert_eq!(outcomes(&first), expected, "{}", first.stderr);
    // One read of the source for the three.
    let digests: std::collections::BTreeSet<String> = first
        .events("image synced")
        .iter()
        .map(|event| event["source_digest"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(digests.len(), 1, "{}", first.stderr);
    assert_eq!(
        bed.digest(ECR, &format!("{prefix}/alpine"), "3.20"),
        digests.into_iter().next()
    );

    // The second pass finds each destination holding the source's digest (a HEAD at each,
    // with each cloud's credentials), and copies nothing.
    let second = sync();
    second.assert_code(0);
    let unchanged: Vec<(String, String)> = expected
        .iter()
        .map(|(host, _)| (host.clone(), "unchanged".to_owned()))
        .collect();
    assert_eq!(outcomes(&second), unchanged, "{}", second.stderr);
}
