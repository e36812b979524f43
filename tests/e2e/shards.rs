//! `ecrcp sync --shard K/N` on the test bed: workers that split one list at once copy each
//! image once and all of them together, and replicas that do not split it stay correct.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::{Child, Stdio};

use crate::support::{Bed, Run, ECR};

/// Starts `ecrcp sync --engine registry` on `config` with its own state directory `state`
/// (workers on other hosts share nothing) and `args`.
fn start(bed: &Bed, config: &std::path::Path, state: &str, args: &[&str]) -> Child {
    bed.sync_command(config)
        .args(["--engine", "registry"])
        .args(args)
        .env("ECRCP_STATE_DIR", bed.scratch().join(state))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ecrcp sync starts")
}

fn finish(child: Child) -> Run {
    Run::from(child.wait_with_output().expect("ecrcp sync ends"))
}

/// Six images, one of them fanned out into two destinations, mirrored under `prefix`.
fn config(bed: &Bed, prefix: &str, sources: &[String]) -> std::path::PathBuf {
    let mut text = format!("version = 1\n[defaults]\ndestination = \"{ECR}/{prefix}/\"\n");
    for (index, source) in sources.iter().enumerate() {
        writeln!(text, "\n[[image]]\nsource = \"{source}\"").unwrap();
        if index == 0 {
            writeln!(
                text,
                "destination = [\"{ECR}/{prefix}/a/\", \"{ECR}/{prefix}/b/\"]"
            )
            .unwrap();
        }
    }
    bed.sync_config(&text)
}

fn sources(bed: &Bed, name: &str) -> (Vec<String>, BTreeMap<String, String>) {
    let upstream = bed.unique(name);
    let mut digests = BTreeMap::new();
    let sources = (1..=6)
        .map(|n| {
            let digest = bed.push_upstream(&upstream, &n.to_string(), &format!("{name} {n}"));
            digests.insert(n.to_string(), digest);
            format!("{upstream}:{n}")
        })
        .collect();
    (sources, digests)
}

#[test]
#[ignore = "needs the test bed"]
fn three_shards_at_once_copy_every_image_once_and_a_fan_out_stays_in_one_shard() {
    let bed = Bed::get("shards-split");
    let (sources, digests) = sources(&bed, "e2e/shards");
    let prefix = bed.unique("shards");
    let config = config(&bed, &prefix, &sources);

    let dry = bed.sync(&config, &["--dry-run", "--shard", "2/3"]);
    dry.assert_code(0);
    let share = dry.events("this shard's share of the images");
    assert_eq!(share.len(), 1, "{}", dry.stderr);
    assert_eq!(share[0]["of"], 7, "{}", dry.stderr);

    let workers: Vec<Child> = (1..=3)
        .map(|k| {
            start(
                &bed,
                &config,
                &format!("shard-{k}"),
                &["--shard", &format!("{k}/3")],
            )
        })
        .collect();
    let runs: Vec<Run> = workers.into_iter().map(finish).collect();
    let mut copied: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut shares = 0;
    for (k, run) in runs.iter().enumerate() {
        run.assert_code(0);
        shares += run.events("this shard's share of the images")[0]["images"]
            .as_u64()
            .unwrap();
        for event in run.events("image synced") {
            assert_eq!(event["outcome"], "copied", "{}", run.stderr);
            let destination = event["destination"].as_str().unwrap().to_owned();
            copied.entry(destination).or_default().push(k + 1);
        }
    }
    assert_eq!(shares, 7, "the shares add up to the whole list");
    // Every destination copied, and by one worker alone.
    assert_eq!(copied.len(), 7, "{copied:#?}");
    assert!(copied.values().all(|workers| workers.len() == 1), "{copied:#?}");
    // The fanned-out source went to both its destinations from the same worker.
    let fanned: Vec<&Vec<usize>> = copied
        .iter()
        .filter(|(destination, _)| {
            destination.contains(&format!("{prefix}/a/")) || destination.contains(&format!("{prefix}/b/"))
        })
        .map(|(_, workers)| workers)
        .collect();
    assert_eq!(fanned.len(), 2, "{copied:#?}");
    assert_eq!(fanned[0], fanned[1], "{copied:#?}");
    let upstream = sources[1].rsplit_once(':').unwrap().0;
    for (tag, digest) in digests.iter().skip(1) {
        assert_eq!(
            bed.digest(ECR, &format!("{prefix}/{upstream}"), tag).as_deref(),
            Some(digest.as_str()),
            "{tag}"
        );
    }
}

#[test]
#[ignore = "needs the test bed"]
fn three_unsharded_replicas_at_once_leave_every_image_right() {
    let bed = Bed::get("shards-replicas");
    let (sources, digests) = sources(&bed, "e2e/replicas");
    let prefix = bed.unique("replicas");
    let config = config(&bed, &prefix, &sources);
    let workers: Vec<Child> = (1..=3)
        .map(|k| start(&bed, &config, &format!("replica-{k}"), &[]))
        .collect();
    for run in workers.into_iter().map(finish) {
        run.assert_code(0);
        let outcomes = run.outcomes();
        assert_eq!(outcomes.len(), 6, "{}", run.stderr);
        assert!(
            run.events("image synced")
                .iter()
                .all(|event| event["outcome"] == "copied" || event["outcome"] == "unchanged"),
            "{}",
            run.stderr
        );
    }
    let upstream = sources[1].rsplit_once(':').unwrap().0;
    for (tag, digest) in &digests {
        let repositories: Vec<String> = if tag == "1" {
            vec![format!("{prefix}/a/{upstream}"), format!("{prefix}/b/{upstream}")]
        } else {
            vec![format!("{prefix}/{upstream}")]
        };
        for repository in repositories {
            assert_eq!(
                bed.digest(ECR, &repository, tag).as_deref(),
                Some(digest.as_str()),
                "{repository}:{tag}"
            );
        }
    }
}
