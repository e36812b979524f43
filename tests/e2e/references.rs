//! Destinations, ECR repository names and docker's reference rules, end to end.

use std::process::Command;

use crate::support::{Bed, ECR};

const ECR_WEST: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";

/// The ECR repository as moto describes it in `region`, or None: moto keeps regions apart,
/// and takes the region from the request's credential scope.
fn repository_in(region: &str, name: &str) -> Option<serde_json::Value> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("the bed exports AWS_ENDPOINT_URL");
    let output = Command::new("curl")
        .args(["-sS", "-X", "POST", &endpoint])
        .args([
            "-H",
            "X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.DescribeRepositories",
        ])
        .args(["-H", "Content-Type: application/x-amz-json-1.1"])
        .args([
            "-H",
            &format!(
                "Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/{region}/ecr/aws4_request, SignedHeaders=host, Signature=0"
            ),
        ])
        .args(["--data", &serde_json::json!({"repositoryNames": [name]}).to_string()])
        .output()
        .expect("curl runs");
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    answer["repositories"]
        .as_array()
        .and_then(|list| list.first().cloned())
}

#[test]
#[ignore = "needs the test bed"]
fn a_dest_like_name_and_dotted_tag_is_an_image_in_the_own_registry() {
    let bed = Bed::get("bare-dest");
    // A single-name repository of its own, so that no other test touches it.
    let name = bed.unique("bare");
    bed.push_upstream(&format!("library/{name}"), "1.27", "bare");
    let image = format!("{name}:1.27");

    bed.run(&[&image, &image]).assert_code(0);
    let created = repository_in("us-east-1", &name).expect("ecrcp created the repository in moto");
    assert_eq!(created["repositoryName"], name.as_str());
    assert!(
        bed.digest(ECR, &name, "1.27").is_some(),
        "the registry serves {name}:1.27"
    );

    let config = bed.sync_config(&format!(
        "version = 1\n[[image]]\nsource = \"{image}\"\ndestination = \"{name}:1.27-synced\"\n"
    ));
    let run = bed.sync(&config, &[]);
    run.assert_code(0);
    assert_eq!(run.summary()["copied"], 1, "{}", run.stderr);
    assert!(
        bed.digest(ECR, &name, "1.27-synced").is_some(),
        "the config's destination landed in the own registry"
    );
}

#[test]
#[ignore = "needs the test bed"]
fn one_image_mirrors_into_the_own_registry_of_two_regions() {
    let bed = Bed::get("two-regions");
    let prefix = bed.unique("mirror");
    let config = bed.sync_config(&format!(
        "version = 1\n[defaults]\ndestination = \"{prefix}/\"\n\
         [[image]]\nsource = \"alpine:3.20\"\nregion = \"us-east-1\"\n\
         [[image]]\nsource = \"alpine:3.20\"\nregion = \"eu-west-1\"\n"
    ));
    let run = bed.sync(&config, &[]);
    run.assert_code(0);
    assert_eq!(run.summary()["copied"], 2, "{}", run.stderr);
    let repository = format!("{prefix}/alpine");
    for region in ["us-east-1", "eu-west-1"] {
        assert!(
            repository_in(region, &repository).is_some(),
            "moto has {repository} in {region}"
        );
    }
    for host in [ECR, ECR_WEST] {
        let pushed = format!(" {host}/{repository}:3.20");
        assert!(
            bed.docker_calls()
                .iter()
                .any(|argv| argv.starts_with("push ") && argv.ends_with(&pushed)),
            "a push to {host} in {:?}",
            bed.docker_calls()
        );
    }
    assert!(bed.digest(ECR, &repository, "3.20").is_some());
}

#[test]
#[ignore = "needs the test bed"]
fn ecr_repository_names_ecr_refuses_stop_the_run_before_any_docker_call() {
    let bed = Bed::get("ecr-names");
    let prefix = bed.unique("names");
    let cases = [
        (
            format!("{prefix}/a__b:1"),
            format!("'{prefix}/a__b' is not a valid ECR repository name: '__' in 'a__b' is not allowed"),
        ),
        (
            format!("{ECR}/{prefix}/a--b"),
            format!("'{prefix}/a--b' is not a valid ECR repository name: '--' in 'a--b' is not allowed"),
        ),
        (
            "x:1".to_owned(),
            "'x' is not a valid ECR repository name: it is 1 characters long; ECR needs 2 to 256".to_owned(),
        ),
    ];
    for (destination, expected) in &cases {
        let run = bed.run(&["alpine:3.20", destination]);
        run.assert_code(2);
        assert!(run.stderr.contains(expected), "{destination}: {}", run.stderr);
        assert!(
            run.stderr
                .contains("note: ECR repository names are 2 to 256 characters"),
            "{}",
            run.stderr
        );
    }
    let config = bed.sync_config(&format!(
        "version = 1\n[[image]]\nsource = \"alpine:3.20\"\ndestination = \"{prefix}/x--y/\"\n"
    ));
    let run = bed.sync(&config, &[]);
    run.assert_code(2);
    assert!(
        run.stderr.contains(&format!(
            "'{prefix}/x--y/alpine' is not a valid ECR repository name"
        )),
        "{}",
        run.stderr
    );
    assert_eq!(bed.docker_calls(), Vec::<String>::new(), "no docker call");
    assert!(repository_in("us-east-1", &format!("{prefix}/a--b")).is_none());
}

#[test]
#[ignore = "needs the test bed"]
fn an_image_id_pasted_as_the_source_is_refused_before_any_docker_call() {
    let bed = Bed::get("image-id");
    let id = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a";
    let run = bed.run(&[id, "mirror/"]);
    run.assert_code(2);
    assert!(
        run.stderr
            .contains(&format!("'{id}': 64 hex digits name an image ID")),
        "{}",
        run.stderr
    );
    assert_eq!(bed.docker_calls(), Vec::<String>::new(), "no docker call");
}
