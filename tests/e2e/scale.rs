//! Fleet scale on the test bed: a no-change sync pass costs one HEAD per image upstream and
//! one at the mirror, plus token requests that cover many repositories each, so that they
//! grow with the image count only by a fiftieth. Counted by the bed (the registries' fronts
//! and the token server's log), never by ecrcp.

use std::fmt::Write as _;
use std::process::Command;

use ecrcp::registry::prefetch::MAX_SCOPES_PER_TOKEN;

use crate::support::{Bed, ECR, ECR_PASSWORD, HUB};

/// Requests of a pass that no test's repositories can be told by, when tests run side by
/// side: the ping that learns how Docker Hub authenticates (`GET /v2/`) and ECR's
/// GetAuthorizationToken. `benches/sync-scale` runs alone and counts them exactly.
const FIXED_PER_RUN: usize = 2;

/// What one no-change pass over `images` images cost.
#[derive(Debug)]
struct Pass {
    images: usize,
    hub_requests: usize,
    ecr_requests: usize,
    tokens: usize,
}

impl Pass {
    fn per_image(&self) -> f64 {
        let total = self.hub_requests + self.ecr_requests + self.tokens + FIXED_PER_RUN;
        #[allow(clippy::cast_precision_loss)]
        let ratio = total as f64 / self.images as f64;
        ratio
    }
}

/// Requests each front counted so far, summed over the repositories whose names start
/// with `prefix`.
fn front_requests_under(registry: &str, prefix: &str) -> usize {
    let output = Command::new("curl")
        .args(["-sSf", &format!("https://{registry}/_testbed/stats")])
        .output()
        .expect("curl runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stats: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    stats["repositories"]
        .as_object()
        .expect("the front counts by repository")
        .iter()
        .filter(|(name, _)| name.starts_with(prefix))
        .map(|(_, counts)| usize::try_from(counts["requests"].as_u64().unwrap()).unwrap())
        .sum()
}

/// Token requests in the token server's log, from line `from` on, that name a repository
/// under `prefix`.
fn token_requests(bed: &Bed, from: usize, prefix: &str) -> usize {
    let scope = format!("scope=repository%3A{}", prefix.replace('/', "%2F"));
    bed.log("hub-front")
        .lines()
        .skip(from)
        .filter(|line| line.contains("hub_front: token") && line.contains("/token?") && line.contains(&scope))
        .count()
}

/// Seeds `images` Docker Hub repositories of one tiny image and an ECR mirror that holds
/// them all, then runs a no-change sync pass over them and counts what it sent.
fn no_change_pass(bed: &Bed, images: usize) -> Pass {
    let upstream = bed.unique(&format!("scale{images}"));
    let mirror = bed.unique(&format!("mirror{images}"));
    let seeded = Command::new(std::env::var("ECRCP_TESTBED_PYTHON").unwrap_or_else(|_| "python3".into()))
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/seed-many.py"))
        .args(["--count", &images.to_string(), "--tag", "1", "--jobs", "8"])
        .args(["--repo-prefix", &format!("{upstream}/img")])
        .args(["--mirror", ECR, "--mirror-prefix", &format!("{mirror}/")])
        .args(["--mirror-user", &format!("AWS:{ECR_PASSWORD}")])
        .output()
        .expect("seed-many.py runs");
    assert!(
        seeded.status.success(),
        "{}",
        String::from_utf8_lossy(&seeded.stderr)
    );
    let sources = (1..=images).fold(String::new(), |mut text, index| {
        writeln!(text, "[[image]]\nsource = \"{upstream}/img{index}:1\"").unwrap();
        text
    });
    let config = bed.sync_config(&format!(
        "version = 1\n[defaults]\ndestination = \"{ECR}/{mirror}/\"\n{sources}"
    ));

    let hub_before = front_requests_under(HUB, &format!("{upstream}/"));
    let ecr_before = front_requests_under(ECR, &format!("{mirror}/"));
    let token_log_lines = bed.log("hub-front").lines().count();
    let run = bed.sync(&config, &[]);
    run.assert_code(0);
    assert_eq!(run.summary()["unchanged"], images, "{}", run.summary());
    // The token server logs as it answers; the answer may come just before the line.
    std::thread::sleep(std::time::Duration::from_millis(300));
    Pass {
        images,
        hub_requests: front_requests_under(HUB, &format!("{upstream}/")) - hub_before,
        ecr_requests: front_requests_under(ECR, &format!("{mirror}/")) - ecr_before,
        tokens: token_requests(bed, token_log_lines, &upstream),
    }
}

#[test]
#[ignore = "needs the test bed"]
fn a_no_change_pass_costs_two_requests_per_image_and_tokens_do_not_grow_with_the_images() {
    let bed = Bed::get("scale");
    let small = no_change_pass(&bed, 50);
    let large = no_change_pass(&bed, 200);
    for pass in [&small, &large] {
        // One HEAD per image at each side: no 401 before the token, no GET, no retry.
        assert_eq!(pass.hub_requests, pass.images, "{pass:?}");
        assert_eq!(pass.ecr_requests, pass.images, "{pass:?}");
        // Each token covers as many repositories as one request may ask for.
        assert_eq!(
            pass.tokens,
            pass.images.div_ceil(MAX_SCOPES_PER_TOKEN),
            "{pass:?}"
        );
    }
    assert!(
        large.per_image() <= 2.05,
        "{:.3} requests per image: {large:?}",
        large.per_image()
    );
    // Four times the images, and the tokens are still a handful, not four times as many
    // per image: what grows is the HEADs, one per image and side.
    assert!(large.tokens < large.images / 10, "{large:?}");
    assert!(large.per_image() <= small.per_image(), "{small:?} {large:?}");
    // Nothing per image outside the HTTP client: no docker process at all.
    assert_eq!(bed.docker_calls(), Vec::<String>::new());
}
