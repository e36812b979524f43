//! ECR's API quotas on the test bed: a first sync of many multi-platform images into a
//! registry that throttles PutImage beyond 10 calls a second, as ECR does by default, is
//! paced under the quota instead of being throttled, and takes little longer than the
//! quota's own arithmetic floor.

use std::time::{Duration, Instant};

use crate::support::{Bed, Faults, ECR, HUB, HUB_ADMIN};

#[test]
#[ignore = "needs the test bed"]
fn a_first_sync_of_many_indexes_keeps_under_ecr_s_put_image_quota_and_near_its_floor() {
    // 32 PutImage calls evenly spaced at 10 a second: 3.1 s of pacing at least (AWS's own
    // bucket, which lets 10 go at once, would allow 2.2 s).
    let took = first_sync_under_quota("pacing", 10, "");
    let floor = Duration::from_millis(3100);
    assert!(took >= floor, "faster than the quota allows: {took:?}");
    assert!(
        took < floor + Duration::from_secs(6),
        "far slower than the quota's floor: {took:?}"
    );
}

#[test]
#[ignore = "needs the test bed"]
fn a_raised_put_image_quota_in_the_config_is_used_and_kept() {
    // 40 a second: the same 32 PutImage calls take about 0.8 s of pacing instead of 3.1 s.
    let took = first_sync_under_quota("pacing-raised", 40, "api_quotas = { PutImage = 40 }\n");
    assert!(
        took < Duration::from_millis(3100),
        "paced at the default, not the raised quota: {took:?}"
    );
}

/// A first sync of 8 three-platform indexes into a repository whose front throttles PutImage
/// beyond `quota` a second, as ECR's token bucket does (`sync`: more of the config's
/// `[sync]`): every image lands and no PutImage is throttled. How long the sync took.
fn first_sync_under_quota(name: &str, quota: u32, sync: &str) -> Duration {
    let bed = Bed::get(name);
    let upstream = bed.unique("e2e/paced");
    let tags: Vec<String> = (1..=8).map(|n| n.to_string()).collect();
    for tag in &tags {
        bed.push_index(
            HUB,
            HUB_ADMIN,
            &upstream,
            tag,
            &format!("paced {tag}"),
            "linux/amd64,linux/arm64,linux/arm/v7",
            "oci",
            0,
        );
    }
    let prefix = bed.unique("paced");
    let repository = format!("{prefix}/{upstream}");
    let images = tags.iter().fold(String::new(), |text, tag| {
        text + &format!("\n[[image]]\nsource = \"{upstream}:{tag}\"\n")
    });
    let config = bed.sync_config(&format!(
        "version = 1\n[sync]\njobs = 8\n{sync}[defaults]\ndestination = \"{ECR}/{prefix}/\"\n{images}"
    ));
    let limit = Faults::set(
        ECR,
        &repository,
        &serde_json::json!([{"method": "PUT", "path": "/manifests/", "over": quota, "status": 429,
            "code": "TOOMANYREQUESTS", "message": "Rate exceeded"}]),
    );

    let started = Instant::now();
    let run = bed.sync(&config, &["--engine", "registry"]);
    let took = started.elapsed();
    run.assert_code(0);
    assert_eq!(run.summary()["copied"], 8, "{}", run.stderr);
    assert_eq!(limit.fired(), [0], "no PutImage was throttled: {}", run.stderr);
    // Three children and the index each: 32 PutImage calls.
    let puts = bed.requests("ecr", "PUT", &format!("/v2/{repository}/manifests/"));
    assert_eq!(puts, 32, "{}", run.stderr);
    took
}
