//! Tag rules on the test bed: each rule kind selecting from a real tag list, a list longer
//! than one page, listing as no Docker Hub pull, a failing listing failing its entry alone,
//! and tags that leave a rule left alone at the destination.

use crate::support::{front_requests, Bed, Run, ECR, HUB};

/// The tags every test here pushes, all onto one tiny image.
const TAGS: &[&str] = &[
    "1.24.0",
    "1.25.1",
    "1.26.0",
    "1.27.0",
    "1.27.1",
    "1.27.1-alpine",
    "1.28.0-rc.1",
    "latest",
];

/// Pushes one image under each of `tags` into `repo` upstream.
fn push_tags(bed: &Bed, repo: &str, tags: &[&str]) {
    let mut options = Vec::new();
    for tag in &tags[1..] {
        options.extend(["--tag", tag]);
    }
    bed.push_upstream_with(repo, tags[0], "rules", &options);
}

/// What each `tag rule` event selected, in the config's order.
fn selections(run: &Run) -> Vec<String> {
    run.events("tag rule")
        .iter()
        .map(|event| event["selected"].as_str().unwrap().to_owned())
        .collect()
}

/// The tag lists of `repo` the fake Docker Hub answered, and its manifest GETs (pulls).
fn hub_reads(repo: &str) -> (usize, usize) {
    let lists = front_requests(HUB, repo, "GET", "/tags/list")
        .iter()
        .filter(|entry| entry["status"] == 200)
        .count();
    let pulls = front_requests(HUB, repo, "GET", "/manifests/").len();
    (lists, pulls)
}

#[test]
#[ignore = "needs the test bed"]
fn each_rule_kind_selects_its_tags_lists_once_and_costs_no_pull() {
    let bed = Bed::get("rules-kinds");
    let upstream = bed.unique("e2e/rules");
    push_tags(&bed, &upstream, TAGS);
    let prefix = bed.unique("rules");
    let config = bed.sync_config(&format!(
        r#"version = 1
[defaults]
engine = "registry"

[[image]]
source = "{upstream}"
tag_include = '1\.27\..*'
tag_exclude = '.*-alpine'
destination = "{ECR}/{prefix}/include/"

[[image]]
source = "{upstream}"
tag_semver = ">=1.25, <1.28"
destination = "{ECR}/{prefix}/semver/"

[[image]]
source = "{upstream}"
tag_newest = 2
tag_prereleases = true
destination = "{ECR}/{prefix}/newest/"

[[image]]
source = "{upstream}"
tags = ["latest"]
tag_include = 'latest|1\.24\.0'
destination = "{ECR}/{prefix}/both/"
"#
    ));
    let check = bed.run(&["sync", "--check", "--config", config.to_str().unwrap()]);
    check.assert_code(0);
    assert!(
        check.stdout.contains("valid, 1 copy and 4 tag rules to check"),
        "{}",
        check.stdout
    );
    let (lists, pulls) = hub_reads(&upstream);

    let dry = bed.sync(&config, &["--dry-run"]);
    dry.assert_code(0);
    let selected = selections(&dry);
    assert_eq!(
        selected,
        [
            "1.27.1, 1.27.0",
            "1.27.1, 1.27.0, 1.26.0, 1.25.1",
            "1.28.0-rc.1, 1.27.1",
            "1.24.0, latest",
        ],
        "{selected:#?}"
    );
    let semver = &dry
        .events("tag rule")
        .into_iter()
        .find(|event| event["rule"] == "tag_semver = '>=1.25, <1.28'")
        .unwrap();
    assert_eq!(
        semver["left_out"],
        "not a version: latest; pre-release: 1.27.1-alpine, 1.28.0-rc.1; outside tag_semver: 1.24.0",
        "{semver}"
    );
    assert_eq!(semver["listed"], TAGS.len());
    let images = dry.events("image synced");
    assert_eq!(
        images.len(),
        10,
        "the explicit latest and the rule's are one copy: {images:#?}"
    );
    assert!(
        images.iter().all(|event| event["outcome"] == "would copy"),
        "{images:#?}"
    );
    assert_eq!(dry.summary()["hub_pulls_spent"], 0);
    assert_eq!(
        hub_reads(&upstream),
        (lists + 1, pulls),
        "four rules of one repository list it once, and listing is no manifest GET"
    );

    let real = bed.sync(&config, &[]);
    real.assert_code(0);
    assert_eq!(real.summary()["copied"], 10, "{}", real.stderr);
    let landed = |dir: &str, tag: &str| {
        bed.digest(ECR, &format!("{prefix}/{dir}/{upstream}"), tag)
            .is_some()
    };
    for (dir, tag, expected) in [
        ("include", "1.27.0", true),
        ("include", "1.27.1-alpine", false),
        ("semver", "1.25.1", true),
        ("semver", "1.24.0", false),
        ("semver", "1.28.0-rc.1", false),
        ("newest", "1.28.0-rc.1", true),
        ("newest", "1.27.0", false),
        ("both", "latest", true),
        ("both", "1.24.0", true),
    ] {
        assert_eq!(landed(dir, tag), expected, "{dir}:{tag}");
    }
}

#[test]
#[ignore = "needs the test bed"]
fn a_tag_list_longer_than_a_page_is_read_to_its_end() {
    let bed = Bed::get("rules-pages");
    let upstream = bed.unique("e2e/rules-pages");
    // 1010 versions, then one that sorts last by name, so that only the second page of the
    // lexically ordered list holds the newest version.
    let tags: Vec<String> = (0..1010)
        .map(|patch| format!("1.0.{patch}"))
        .chain(["9.9.9".to_owned()])
        .collect();
    // Four pushers at once: a tag is one manifest PUT, and the bed answers them in parallel.
    // The blobs go first, alone: four pushers uploading the same blob at once race in the
    // registry (DIGEST_INVALID).
    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
    push_tags(&bed, &upstream, &tags[..1]);
    let rest = &tags[1..];
    std::thread::scope(|scope| {
        for chunk in rest.chunks(rest.len().div_ceil(4)) {
            scope.spawn(|| push_tags(&bed, &upstream, chunk));
        }
    });
    let config = bed.sync_config(&format!(
        "version = 1\n[[image]]\nsource = \"{upstream}\"\ntag_newest = 3\ndestination = \"{ECR}/{}/\"\n",
        bed.unique("pages")
    ));
    let (lists, pulls) = hub_reads(&upstream);

    let dry = bed.sync(&config, &["--dry-run"]);
    dry.assert_code(0);
    let event = &dry.events("tag rule")[0];
    assert_eq!(event["selected"], "9.9.9, 1.0.1009, 1.0.1008", "{event}");
    assert_eq!(event["listed"], 1011);
    assert_eq!(event["list_requests"], 2, "{event}");
    let pages: Vec<String> = front_requests(HUB, &upstream, "GET", "/tags/list")
        .iter()
        .filter(|entry| entry["status"] == 200)
        .map(|entry| entry["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(pages.len(), lists + 2, "{pages:?}");
    assert!(pages[lists].ends_with("/tags/list?n=1000"), "{pages:?}");
    assert!(
        pages[lists + 1].contains("last="),
        "the Link header's next page: {pages:?}"
    );
    assert_eq!(hub_reads(&upstream).1, pulls, "no manifest GET");
    assert_eq!(dry.summary()["hub_pulls_spent"], 0);
    assert_eq!(dry.outcomes().len(), 3);
}

#[test]
#[ignore = "needs the test bed"]
fn a_rule_whose_listing_fails_fails_alone_and_bad_rules_are_config_errors() {
    let bed = Bed::get("rules-fail");
    let upstream = bed.unique("e2e/rules-ok");
    push_tags(&bed, &upstream, &["1.0.0", "2.0.0"]);
    let missing = bed.unique("e2e/rules-missing");
    let prefix = bed.unique("rfail");
    let config = bed.sync_config(&format!(
        "version = 1\n[defaults]\ndestination = \"{ECR}/{prefix}/\"\n\
         [[image]]\nsource = \"{missing}\"\ntag_newest = 1\n\
         [[image]]\nsource = \"{upstream}\"\ntag_semver = \"^2\"\n"
    ));
    let run = bed.sync(&config, &["--dry-run"]);
    run.assert_code(1);
    let outcomes = run.outcomes();
    assert_eq!(outcomes[&missing], "failed", "{outcomes:?}");
    assert_eq!(
        outcomes[&format!("{upstream}:2.0.0")],
        "would copy",
        "{outcomes:?}"
    );
    let failed = &run.events("image failed")[0];
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains(&format!(
            "cannot list the tags of '{missing}' for the tag rule at {}:5:10",
            config.display()
        )),
        "{error}"
    );
    assert_eq!(run.summary()["failed"], 1);

    let bad = bed.sync_config(&format!(
        "version = 1\n[[image]]\nsource = \"{upstream}\"\ndestination = \"m/\"\ntag_semver = \">=1.25 <2\"\n"
    ));
    let check = bed.run(&["sync", "--check", "--config", bad.to_str().unwrap()]);
    check.assert_code(2);
    let expected = format!(
        "{}:5:14: tag_semver = '>=1.25 <2' is not a version range",
        bad.display()
    );
    assert!(check.stderr.contains(&expected), "{}", check.stderr);
}

#[test]
#[ignore = "needs the test bed"]
fn a_tag_that_leaves_the_rule_stays_at_the_destination_and_the_run_says_so() {
    let bed = Bed::get("rules-left");
    let upstream = bed.unique("e2e/rules-left");
    push_tags(&bed, &upstream, &["1.0.0", "1.1.0", "1.2.0"]);
    let prefix = bed.unique("left");
    let config = |newest: u32| {
        bed.sync_config(&format!(
            "version = 1\n[[image]]\nsource = \"{upstream}\"\ntag_newest = {newest}\nengine = \"registry\"\ndestination = \"{ECR}/{prefix}/\"\n"
        ))
    };
    let first = bed.sync(&config(2), &[]);
    first.assert_code(0);
    assert_eq!(first.summary()["copied"], 2, "{}", first.stderr);
    assert!(first
        .events(
            "tags no longer selected by the rule are left alone at the destination (ecrcp deletes nothing)"
        )
        .is_empty());

    push_tags(&bed, &upstream, &["1.3.0"]);
    let second = bed.sync(&config(2), &[]);
    second.assert_code(0);
    assert_eq!(second.outcomes()[&format!("{upstream}:1.3.0")], "copied");
    let left = second.events(
        "tags no longer selected by the rule are left alone at the destination (ecrcp deletes nothing)",
    );
    assert_eq!(left.len(), 1, "{}", second.stderr);
    assert_eq!(left[0]["tags"], "1.1.0", "{}", left[0]);
    assert_eq!(
        left[0]["destination"],
        format!("{ECR}/{prefix}/{upstream}"),
        "{}",
        left[0]
    );
    assert!(
        bed.digest(ECR, &format!("{prefix}/{upstream}"), "1.1.0")
            .is_some(),
        "nothing is deleted"
    );
}

#[test]
#[ignore = "needs the test bed"]
fn a_list_that_came_with_an_etag_is_revalidated_next_run_in_one_request() {
    let bed = Bed::get("rules-etag");
    let upstream = bed.unique("e2e/rules-etag");
    push_tags(&bed, &upstream, &["1.0.0", "2.0.0"]);
    // The bed's registries send no ETag; the front adds one for this repository.
    let status = std::process::Command::new("curl")
        .args(["-sSf", "-o", "/dev/null", "-X", "POST", "--data"])
        .arg(serde_json::json!({ "repository": upstream }).to_string())
        .arg(format!("https://{HUB}/_testbed/etags"))
        .status()
        .unwrap();
    assert!(status.success());
    let config = bed.sync_config(&format!(
        "version = 1\n[[image]]\nsource = \"{upstream}\"\ntag_newest = 1\nengine = \"registry\"\ndestination = \"{ECR}/{}/\"\n",
        bed.unique("etag")
    ));
    let rule = |run: &Run| run.events("tag rule").pop().unwrap();

    let first = bed.sync(&config, &[]);
    first.assert_code(0);
    assert_eq!(rule(&first)["revalidated"], false, "{}", first.stderr);
    let kept: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bed.scratch().join("state/tags.json")).unwrap()).unwrap();
    assert_eq!(
        kept["lists"][format!("docker.io/{upstream}")]["tags"],
        serde_json::json!(["1.0.0", "2.0.0"])
    );

    let second = bed.sync(&config, &[]);
    second.assert_code(0);
    let event = rule(&second);
    assert_eq!(event["revalidated"], true, "{event}");
    assert_eq!(event["list_requests"], 1);
    assert_eq!(event["selected"], "2.0.0");
    assert_eq!(second.outcomes()[&format!("{upstream}:2.0.0")], "unchanged");
    let answers: Vec<_> = front_requests(HUB, &upstream, "GET", "/tags/list")
        .iter()
        .map(|entry| entry["status"].as_u64().unwrap())
        .filter(|status| *status != 401)
        .collect();
    assert_eq!(answers, [200, 304], "one listing, then one revalidation");

    push_tags(&bed, &upstream, &["3.0.0"]);
    let third = bed.sync(&config, &[]);
    third.assert_code(0);
    assert_eq!(rule(&third)["revalidated"], false, "a changed list is sent again");
    assert_eq!(third.outcomes()[&format!("{upstream}:3.0.0")], "copied");
}

#[test]
#[ignore = "needs the test bed"]
fn a_tag_list_of_several_pages_is_listed_anew_each_run_not_trusted_by_its_first_page() {
    let bed = Bed::get("rules-etag-pages");
    let upstream = bed.unique("e2e/rules-etag-pages");
    push_tags(&bed, &upstream, &["1.0.0", "2.0.0", "3.0.0"]);
    // ETags of each page, and pages of two tags: the list spans two pages, and a new
    // release sorts onto the last, leaving the first page (and its ETag) as it was.
    let status = std::process::Command::new("curl")
        .args(["-sSf", "-o", "/dev/null", "-X", "POST", "--data"])
        .arg(serde_json::json!({ "repository": upstream, "page": 2 }).to_string())
        .arg(format!("https://{HUB}/_testbed/etags"))
        .status()
        .unwrap();
    assert!(status.success());
    let config = bed.sync_config(&format!(
        "version = 1\n[[image]]\nsource = \"{upstream}\"\ntag_newest = 1\nengine = \"registry\"\ndestination = \"{ECR}/{}/\"\n",
        bed.unique("etag-pages")
    ));
    let rule = |run: &Run| run.events("tag rule").pop().unwrap();

    let first = bed.sync(&config, &[]);
    first.assert_code(0);
    let event = rule(&first);
    assert_eq!(event["list_requests"], 2, "{event}");
    assert_eq!(event["selected"], "3.0.0", "{event}");

    push_tags(&bed, &upstream, &["4.0.0"]);
    let second = bed.sync(&config, &[]);
    second.assert_code(0);
    let event = rule(&second);
    assert_eq!(event["revalidated"], false, "{event}");
    assert_eq!(
        event["selected"], "4.0.0",
        "the release on the second page: {event}"
    );
    assert_eq!(second.outcomes()[&format!("{upstream}:4.0.0")], "copied");
    let answers: Vec<_> = front_requests(HUB, &upstream, "GET", "/tags/list")
        .iter()
        .map(|entry| entry["status"].as_u64().unwrap())
        .filter(|status| *status != 401)
        .collect();
    assert_eq!(answers, [200; 4], "each run listed both pages anew");
}
