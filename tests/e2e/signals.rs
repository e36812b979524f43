//! What a sync leaves for a monitoring system and a person on the test bed: the metrics file
//! (checked by prometheus-client's own parser), the JSON report, and `ecrcp status`.
// The samples compared are small counts and the file's own timestamps, read back exactly.
#![allow(clippy::float_cmp)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::support::{Bed, ECR};

/// Every sample of the Prometheus text file at `path`, as prometheus-client's parser reads
/// it (it refuses a file that is not valid text format): `name{k="v",...}` -> value.
fn parsed_metrics(path: &Path) -> BTreeMap<String, f64> {
    let python = std::env::var("ECRCP_TESTBED_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
samples = {}
for family in text_string_to_metric_families(open(sys.argv[1]).read()):
    assert family.type == "gauge", family
    assert family.documentation, family
    for sample in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
        samples[sample.name + ("{" + labels + "}" if labels else "")] = sample.value
print(json.dumps(samples))
"#;
    let output = Command::new(python)
        .args(["-c", script])
        .arg(path)
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "the metrics file does not parse: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
#[ignore = "needs the test bed"]
fn a_sync_leaves_valid_metrics_a_report_and_a_status_that_say_what_failed() {
    let bed = Bed::get("signals");
    let upstream = bed.unique("e2e/signals");
    bed.push_upstream(&upstream, "1", "signals");
    let prefix = bed.unique("signals");
    let missing = format!("{upstream}-missing:1");
    let config = bed.sync_config(&format!(
        "version = 1\n[defaults]\ndestination = \"{ECR}/{prefix}/\"\n\
         [[image]]\nsource = \"{upstream}:1\"\n[[image]]\nsource = \"{missing}\"\n"
    ));
    let metrics = bed.scratch().join("textfile/ecrcp.prom");
    std::fs::create_dir_all(metrics.parent().unwrap()).unwrap();
    let report = bed.scratch().join("report.json");
    let metrics_arg = metrics.to_str().unwrap();
    let report_arg = report.to_str().unwrap();

    let run = bed.sync(
        &config,
        &[
            "--engine",
            "registry",
            "--metrics-file",
            metrics_arg,
            "--report",
            report_arg,
        ],
    );
    run.assert_code(1);
    let samples = parsed_metrics(&metrics);
    let sample = |name: &str| {
        samples
            .get(name)
            .copied()
            .unwrap_or_else(|| panic!("no {name} in {samples:#?}"))
    };
    assert_eq!(sample("ecrcp_sync_images{outcome=\"copied\"}"), 1.0);
    assert_eq!(sample("ecrcp_sync_images{outcome=\"failed\"}"), 1.0);
    assert_eq!(sample("ecrcp_sync_last_run_exit_code"), 1.0);
    assert!(sample("ecrcp_sync_bytes_copied") > 0.0);
    assert!(
        sample("ecrcp_sync_last_run_end_timestamp_seconds")
            >= sample("ecrcp_sync_last_run_start_timestamp_seconds")
    );
    assert!(
        !samples.contains_key("ecrcp_sync_last_success_timestamp_seconds"),
        "{samples:#?}"
    );
    let failed: Vec<&String> = samples
        .keys()
        .filter(|name| name.starts_with("ecrcp_sync_destination_failed"))
        .collect();
    assert_eq!(failed.len(), 1, "{samples:#?}");
    assert!(failed[0].contains("-missing"), "{failed:?}");

    let reported: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let images = reported["images"].as_array().unwrap();
    assert_eq!(images.len(), 2);
    let outcome = |label: &str| {
        images
            .iter()
            .find(|image| image["image"] == label)
            .unwrap_or_else(|| panic!("{label} not in {reported}"))["outcome"]
            .clone()
    };
    assert_eq!(outcome(&format!("{upstream}:1")), "copied");
    assert_eq!(outcome(&missing), "failed");

    let status = bed.run(&["status"]);
    status.assert_code(0);
    assert!(status.stdout.starts_with("last run: "), "{}", status.stdout);
    assert!(
        status.stdout.contains("1 copied, 0 unchanged, 1 failed"),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains(&format!("failed: {missing}")),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains("no run recorded has succeeded yet"),
        "{}",
        status.stdout
    );

    // The next run, with the missing image gone from the list, succeeds: the metrics say
    // when, and the status no longer lists the failure.
    let fixed = bed.sync_config(&format!(
        "version = 1\n[sync]\nmetrics_file = \"{metrics_arg}\"\n[defaults]\ndestination = \"{ECR}/{prefix}/\"\n\
         [[image]]\nsource = \"{upstream}:1\"\n"
    ));
    bed.sync(&fixed, &["--engine", "registry"]).assert_code(0);
    let samples = parsed_metrics(&metrics);
    assert_eq!(samples["ecrcp_sync_images{outcome=\"unchanged\"}"], 1.0);
    assert_eq!(samples["ecrcp_sync_last_run_exit_code"], 0.0);
    assert_eq!(
        samples["ecrcp_sync_last_success_timestamp_seconds"],
        samples["ecrcp_sync_last_run_end_timestamp_seconds"]
    );
    let json = bed.run(&["status", "--json"]);
    json.assert_code(0);
    let last: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(last["unchanged"], 1);
    assert_eq!(last["failed"], 0);
}

#[test]
#[ignore = "needs the test bed"]
fn json_stdout_sends_the_log_to_stdout_as_a_container_s_log_wants_it() {
    let bed = Bed::get("signals-stdout");
    let upstream = bed.unique("e2e/stdout");
    bed.push_upstream(&upstream, "1", "stdout");
    let prefix = bed.unique("stdout");
    let config = bed.sync_config(&format!(
        "version = 1\n[defaults]\ndestination = \"{ECR}/{prefix}/\"\n[[image]]\nsource = \"{upstream}:1\"\n"
    ));
    let run = crate::support::Run::from(
        bed.ecrcp()
            .args([
                "sync",
                "--engine",
                "registry",
                "--log-format",
                "json-stdout",
                "--config",
            ])
            .arg(&config)
            .output()
            .expect("ecrcp runs"),
    );
    run.assert_code(0);
    let events: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not a JSON line: {line}")))
        .collect();
    assert!(
        events
            .iter()
            .any(|event| event["message"] == "sync finished" && event["copied"] == 1),
        "{}",
        run.stdout
    );
    assert!(!run.stderr.contains("sync finished"), "{}", run.stderr);
}
