//! Copies that succeed: the promised usage line, directories, own registry, -n, -u, -i,
//! --dry-run, --platform, repository settings, and a destination that is not ECR.

use crate::support::{containerd_store, Bed, Run, ECR, HUB, PLAIN, PLAIN_USER};

/// What `-u -v` says of a destination that holds the source's image: under the containerd
/// store the push sent the source's manifest as it was, so the digests match before the
/// ledger is asked; under the classic store docker's own manifest needs the ledger.
fn same_image_word() -> &'static str {
    if containerd_store() {
        "(already there)"
    } else {
        "(unchanged)"
    }
}

#[test]
#[ignore = "needs the test bed"]
fn the_usage_line_lands_nginx_in_ecr_with_the_repository_created() {
    let bed = Bed::get("usage");
    let repo = bed.unique("usage/nginx");
    let destination = format!("{ECR}/{repo}:latest");
    assert!(bed.repository(&repo).is_none(), "the repository starts missing");

    bed.run(&["nginx:latest", &destination]).assert_code(0);

    let created = bed.repository(&repo).expect("ecrcp created the ECR repository");
    assert_eq!(created["repositoryName"], repo.as_str());
    assert!(bed.digest(ECR, &repo, "latest").is_some(), "the tag is served");
    assert_eq!(
        bed.image_id(ECR, &repo, "latest"),
        bed.image_id(HUB, "library/nginx", "latest"),
        "the destination holds the source's linux/amd64 image"
    );
    let leftovers: Vec<_> = bed
        .docker_calls()
        .into_iter()
        .filter(|argv| argv.contains(&repo) && argv.starts_with("tag"))
        .collect();
    assert_eq!(leftovers.len(), 1, "one temporary tag");
    assert!(
        bed.docker_calls()
            .iter()
            .any(|argv| argv == &format!("image rm {destination}")),
        "the temporary local tag is removed: {:?}",
        bed.docker_calls()
    );
}

#[test]
#[ignore = "needs the test bed"]
fn several_sources_go_into_a_directory_keeping_their_paths() {
    let bed = Bed::get("directory");
    let prefix = bed.unique("dir");
    let run = bed.run(&[
        "-v",
        "nginx:1.27",
        "bitnami/kubectl:1.30",
        "alpine:3.20",
        &format!("{ECR}/{prefix}/"),
    ]);
    run.assert_code(0);
    for (repo, tag) in [("nginx", "1.27"), ("bitnami/kubectl", "1.30"), ("alpine", "3.20")] {
        let path = format!("{prefix}/{repo}");
        assert!(bed.digest(ECR, &path, tag).is_some(), "{path}:{tag} landed");
        assert!(
            run.stdout.contains(&format!("-> '{ECR}/{path}:{tag}'")),
            "-v names each copy: {}",
            run.stdout
        );
    }
    assert_eq!(
        run.stdout.lines().count(),
        3,
        "one -v line per copy: {}",
        run.stdout
    );
}

#[test]
#[ignore = "needs the test bed"]
fn a_destination_without_a_host_goes_to_the_callers_own_registry() {
    let bed = Bed::get("own");
    let prefix = bed.unique("own");
    bed.run(&["redis:7", &format!("{prefix}/")]).assert_code(0);
    assert!(bed.digest(ECR, &format!("{prefix}/redis"), "7").is_some());
}

#[test]
#[ignore = "needs the test bed"]
fn target_directory_takes_every_positional_as_a_source() {
    let bed = Bed::get("target");
    let prefix = bed.unique("t");
    bed.run(&["-t", &format!("{ECR}/{prefix}"), "redis:7", "redis:7.4"])
        .assert_code(0);
    assert!(bed.digest(ECR, &format!("{prefix}/redis"), "7").is_some());
    assert!(bed.digest(ECR, &format!("{prefix}/redis"), "7.4").is_some());
}

#[test]
#[ignore = "needs the test bed"]
fn no_clobber_leaves_an_existing_tag_alone_without_pulling() {
    let bed = Bed::get("noclobber");
    let repo = bed.unique("nc/img");
    let destination = format!("{ECR}/{repo}:1");
    bed.run(&["alpine:3.20", &destination]).assert_code(0);
    let before = bed.digest(ECR, &repo, "1");
    let pulls = bed.docker_calls_of("pull");

    let run = bed.run(&["-n", "-v", "redis:7", &destination]);
    run.assert_code(0);
    assert_eq!(bed.digest(ECR, &repo, "1"), before, "the tag still holds alpine");
    assert_eq!(bed.docker_calls_of("pull"), pulls, "no docker pull");
    assert!(run.stdout.contains("(exists)"), "{}", run.stdout);
}

#[test]
#[ignore = "needs the test bed"]
fn update_skips_an_unchanged_image_with_heads_only_and_copies_a_changed_one() {
    let bed = Bed::get("update");
    let upstream = bed.unique("e2e/upd");
    bed.push_upstream(&upstream, "1", "first");
    let source = format!("{upstream}:1");
    let destination = format!("{ECR}/{}:1", bed.unique("upd"));
    let dest_repo = destination
        .trim_start_matches(&format!("{ECR}/"))
        .trim_end_matches(":1")
        .to_owned();
    let manifest_path = format!("/v2/{upstream}/manifests/");

    bed.run(&["-u", &source, &destination]).assert_code(0);
    let first = bed.image_id(ECR, &dest_repo, "1");
    let gets = bed.requests("hub", "GET", &manifest_path);
    let heads = bed.requests("hub", "HEAD", &manifest_path);
    let (pulls, pushes) = (bed.docker_calls_of("pull"), bed.docker_calls_of("push"));

    let run = bed.run(&["-u", "-v", &source, &destination]);
    run.assert_code(0);
    assert!(run.stdout.contains(same_image_word()), "{}", run.stdout);
    assert_eq!(
        bed.requests("hub", "GET", &manifest_path),
        gets,
        "no manifest GET on the unchanged source"
    );
    assert!(
        bed.requests("hub", "HEAD", &manifest_path) > heads,
        "the source was checked with HEAD"
    );
    assert_eq!(bed.docker_calls_of("pull"), pulls, "no docker pull");
    assert_eq!(bed.docker_calls_of("push"), pushes, "no docker push");

    bed.push_upstream(&upstream, "1", "second");
    let run = bed.run(&["-u", "-v", &source, &destination]);
    run.assert_code(0);
    assert!(!run.stdout.contains("unchanged"), "{}", run.stdout);
    let second = bed.image_id(ECR, &dest_repo, "1");
    assert_ne!(first, second, "the changed image was copied");
    assert_eq!(second, bed.image_id(HUB, &upstream, "1"));
}

#[test]
#[ignore = "needs the test bed"]
fn update_without_a_ledger_recognises_the_same_image_by_its_config() {
    let bed = Bed::get("update-noledger");
    let repo = bed.unique("nl/redis");
    let destination = format!("{ECR}/{repo}:7");
    bed.run(&["redis:7", &destination]).assert_code(0);
    std::fs::remove_dir_all(bed.scratch().join("state")).unwrap();
    let pushes = bed.docker_calls_of("push");

    let run = bed.run(&["-u", "-v", "redis:7", &destination]);
    run.assert_code(0);
    assert!(run.stdout.contains(same_image_word()), "{}", run.stdout);
    assert_eq!(bed.docker_calls_of("push"), pushes, "no docker push");
}

#[test]
#[ignore = "needs the test bed"]
fn interactive_declined_keeps_the_destination() {
    let bed = Bed::get("interactive");
    let repo = bed.unique("i/img");
    let destination = format!("{ECR}/{repo}:1");
    bed.run(&["alpine:3.20", &destination]).assert_code(0);
    let before = bed.digest(ECR, &repo, "1");

    let mut child = bed
        .ecrcp()
        .args(["-i", "redis:7", &destination])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"n\n").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains(&format!("overwrite '{destination}'?")));
    assert_eq!(bed.digest(ECR, &repo, "1"), before);
}

#[test]
#[ignore = "needs the test bed"]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let bed = Bed::get("dryrun");
    let repo = bed.unique("dry/nginx");
    let run = bed.run(&["--dry-run", "nginx:latest", &format!("{ECR}/{repo}:latest")]);
    run.assert_code(0);
    assert!(
        run.stdout
            .contains(&format!("would copy 'nginx:latest' -> '{ECR}/{repo}:latest'")),
        "{}",
        run.stdout
    );
    assert!(bed.repository(&repo).is_none(), "no repository created");
    assert_eq!(bed.docker_calls(), Vec::<String>::new(), "no docker command");
}

#[test]
#[ignore = "needs the test bed"]
fn platform_picks_the_image_for_that_architecture() {
    let bed = Bed::get("platform");
    let repo = bed.unique("plat/nginx");
    bed.run(&[
        "--platform",
        "linux/arm64",
        "nginx:latest",
        &format!("{ECR}/{repo}:arm"),
    ])
    .assert_code(0);
    let manifest = bed.manifest(ECR, &repo, "arm");
    let config = manifest["config"]["digest"].as_str().unwrap().to_owned();
    let index = bed.manifest(HUB, "library/nginx", "latest");
    let arm = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|child| child["platform"]["architecture"] == "arm64")
        .unwrap();
    let arm_config = bed.manifest(HUB, "library/nginx", arm["digest"].as_str().unwrap())["config"]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(config, arm_config);
}

#[test]
#[ignore = "needs the test bed"]
fn new_repositories_get_the_requested_settings() {
    let bed = Bed::get("settings");
    let repo = bed.unique("set/alpine");
    let policy = bed.scratch().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":5},"action":{"type":"expire"}}]}"#,
    )
    .unwrap();
    bed.run(&[
        "--scan-on-push",
        "--immutable-tags",
        "--encryption",
        "kms",
        "--repository-tag",
        "team=platform",
        "--lifecycle-policy",
        policy.to_str().unwrap(),
        "alpine:3.20",
        &format!("{ECR}/{repo}:3.20"),
    ])
    .assert_code(0);
    let created = bed.repository(&repo).unwrap();
    assert_eq!(created["imageScanningConfiguration"]["scanOnPush"], true);
    assert_eq!(created["imageTagMutability"], "IMMUTABLE");
    assert_eq!(created["encryptionConfiguration"]["encryptionType"], "KMS");
    let arn = created["repositoryArn"].as_str().unwrap();
    let tags = bed.ecr_api("ListTagsForResource", &serde_json::json!({"resourceArn": arn}));
    assert_eq!(tags["tags"][0]["Key"], "team", "{tags}");
    let lifecycle = bed.ecr_api("GetLifecyclePolicy", &serde_json::json!({"repositoryName": repo}));
    assert!(
        lifecycle["lifecyclePolicyText"]
            .as_str()
            .unwrap_or_default()
            .contains("imageCountMoreThan"),
        "{lifecycle}"
    );
}

#[test]
#[ignore = "needs the test bed"]
fn a_plain_registry_destination_works_without_any_aws_setup() {
    let bed = Bed::get("plain");
    bed.docker_login(PLAIN, PLAIN_USER);
    let repo = bed.unique("plain/alpine");
    let run = Run::from(
        bed.ecrcp()
            .args(["alpine:3.20", &format!("{PLAIN}/{repo}:3.20")])
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_ENDPOINT_URL")
            .output()
            .unwrap(),
    );
    run.assert_code(0);
    assert!(bed.digest(PLAIN, &repo, "3.20").is_some());
}

/// What ECR answers a push to an existing tag of a repository with immutable tags.
const IMMUTABLE: &str = "tag invalid: The image tag '1' already exists in the repository and cannot be overwritten because the repository is immutable.";

#[test]
#[ignore = "needs the test bed"]
fn pushing_the_same_image_to_an_immutable_tag_is_a_success_and_a_conflict_says_so() {
    let bed = Bed::get("immutable");
    let repo = bed.unique("imm/img");
    let destination = format!("{ECR}/{repo}:1");
    bed.run(&["alpine:3.20", &destination]).assert_code(0);
    let before = bed.digest(ECR, &repo, "1");

    let same = Run::from(
        bed.ecrcp()
            .args(["-v", "alpine:3.20", &destination])
            .env("ECRCP_TEST_REFUSE_PUSH", IMMUTABLE)
            .output()
            .unwrap(),
    );
    same.assert_code(0);
    assert!(same.stdout.contains("(already there)"), "{}", same.stdout);

    let conflict = Run::from(
        bed.ecrcp()
            .args(["redis:7", &destination])
            .env("ECRCP_TEST_REFUSE_PUSH", IMMUTABLE)
            .output()
            .unwrap(),
    );
    conflict.assert_code(1);
    assert!(
        conflict.stderr.contains(&format!(
            "'{destination}' is an immutable tag that holds a different image"
        )),
        "{}",
        conflict.stderr
    );
    assert_eq!(bed.digest(ECR, &repo, "1"), before, "the tag still holds alpine");
    let calls = bed.docker_calls();
    let tagged = calls
        .iter()
        .filter(|argv| argv.starts_with("tag ") && argv.ends_with(&destination))
        .count();
    let untagged = calls
        .iter()
        .filter(|argv| **argv == format!("image rm {destination}"))
        .count();
    // The classic store pulls and tags the same image again and meets the refusal; the
    // containerd store's copy serves the source's digest, so the second run is done before
    // any pull.
    let tags = if containerd_store() { 2 } else { 3 };
    assert_eq!(
        (tagged, untagged),
        (tags, tags),
        "every temporary tag was removed: {calls:?}"
    );
}
