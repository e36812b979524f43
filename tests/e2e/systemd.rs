//! `ecrcp sync` as systemd runs it on a user's machine: a real Debian systemd booted in a
//! container inside the bed (`tests/testbed/nspawn`), with the repository's own
//! `systemd/ecrcp.service` and `ecrcp.timer`, their hardening, and the real journal. Only
//! the timer is sped up (a drop-in fires it 2 s after boot). Needs the cached root of
//! `tests/testbed/nspawn prepare`, which runs outside the bed.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::container::{docker_commands_naming, Container};
use crate::support::{write_executable, Bed, ECR, HUB_ADMIN};

/// Boot, the 2 s timer and one small copy take about 5 s; a loaded CI machine gets slack.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
#[ignore = "needs the test bed"]
fn the_timer_starts_the_service_which_mirrors_the_config_and_logs_fields_to_the_journal() {
    let bed = Bed::get("systemd-timer");
    let prefix = bed.unique("sync");
    let config = bed.sync_config(&format!(
        r#"version = 1

[defaults]
destination = "{ECR}/{prefix}/"

[[image]]
source = "alpine:3.20"
"#
    ));

    let container = Container::boot(&bed, Path::new(env!("CARGO_BIN_EXE_ecrcp")), Some(&config));
    let journal = container.wait_for_the_run(RUN_TIMEOUT);

    assert!(
        bed.digest(ECR, &format!("{prefix}/alpine"), "3.20").is_some(),
        "the service copied alpine:3.20 into {ECR}/{prefix}/alpine\n{}",
        container.diagnostics()
    );
    let timers = container.exec(&["systemctl", "list-timers", "--all", "--no-legend"]);
    assert!(
        timers.stdout.contains("ecrcp.timer"),
        "list-timers:\n{}",
        timers.stdout
    );
    assert_ne!(
        container.properties("ecrcp.timer", &["LastTriggerUSecMonotonic"]),
        "LastTriggerUSecMonotonic=0",
        "the timer, not something else, started the service"
    );
    assert_eq!(
        container.properties("ecrcp.service", &["Result", "ExecMainStatus"]),
        "ExecMainStatus=0\nResult=success",
        "the service succeeded\n{}",
        container.diagnostics()
    );

    let logins = container.exec(&["cat", "/var/lib/ecrcp/docker/config.json"]);
    assert!(
        logins.stdout.contains(ECR),
        "the service's docker login is kept in its state directory: {logins:?}"
    );
    assert_ne!(
        container.exec(&["test", "-e", "/root/.docker"]).code,
        Some(0),
        "and not in root's home"
    );

    let own: Vec<&Value> = journal
        .iter()
        .filter(|entry| entry["SYSLOG_IDENTIFIER"] == "ecrcp")
        .collect();
    assert!(
        !own.is_empty(),
        "entries from ecrcp itself\n{}",
        container.diagnostics()
    );
    let image = own
        .iter()
        .find(|entry| {
            entry["IMAGE"]
                .as_str()
                .is_some_and(|image| image.contains("alpine"))
        })
        .unwrap_or_else(|| panic!("an event with IMAGE=...alpine...\n{}", container.diagnostics()));
    assert_eq!(image["OUTCOME"], "copied", "the image's event: {image:#}");
    assert_eq!(
        image["DESTINATION"],
        format!("{ECR}/{prefix}/alpine:3.20").as_str(),
        "the image's event: {image:#}"
    );
    assert_eq!(
        (&image["_SYSTEMD_UNIT"], &image["_COMM"]),
        (&Value::from("ecrcp.service"), &Value::from("ecrcp")),
        "sent to journald by ecrcp itself, in the service: {image:#}"
    );
}

#[test]
#[ignore = "needs the test bed"]
fn a_missing_config_skips_the_service_without_failing() {
    let bed = Bed::get("systemd-no-config");
    // A stand-in that fails loudly: only the unit's condition can keep this run green.
    let stand_in = bed.scratch().join("ecrcp-must-not-run");
    write_executable(
        &stand_in,
        "#!/bin/sh\necho 'ecrcp ran without a config' >&2\nexit 1\n",
    );

    let container = Container::boot(&bed, &stand_in, None);
    container.wait_for_the_run(RUN_TIMEOUT);

    assert_eq!(
        container.properties("ecrcp.service", &["ActiveState", "ConditionResult", "Result"]),
        "ActiveState=inactive\nConditionResult=no\nResult=success",
        "the condition skipped the service, which is not failed\n{}",
        container.diagnostics()
    );
    let failed = container.exec(&["systemctl", "list-units", "--failed", "--no-legend", "ecrcp*"]);
    assert_eq!(failed.stdout.trim(), "", "no failed ecrcp unit");
    let journal = container.exec(&["journalctl", "-u", "ecrcp", "--no-pager"]);
    assert!(
        journal
            .stdout
            .contains("unmet condition check (ConditionPathExists=/etc/ecrcp/images.toml)"),
        "{}",
        journal.stdout
    );
    assert!(
        !journal.stdout.contains("ran without a config"),
        "{}",
        journal.stdout
    );
}

#[test]
#[ignore = "needs the test bed"]
fn the_service_uses_a_docker_hub_login_made_the_documented_way() {
    let bed = Bed::get("systemd-hub-login");
    let prefix = bed.unique("sync");
    let repository = format!("{prefix}/private");
    bed.push_upstream(&repository, "1", "private");
    bed.hub_private(&repository);
    let container = Container::boot(&bed, Path::new(env!("CARGO_BIN_EXE_ecrcp")), None);
    container.wait_for_the_run(RUN_TIMEOUT);

    // The README's command, as an administrator types it: `docker login` as the service's
    // own dynamic user, into the service's own DOCKER_CONFIG, the token on stdin.
    let (user, password) = HUB_ADMIN.split_once(':').unwrap();
    let login = container.exec(&[
        "sh",
        "-c",
        &format!(
            "printf '%s\\n' '{password}' | systemd-run --quiet --pipe --wait --collect \\
               -p DynamicUser=yes -p User=ecrcp -p StateDirectory=ecrcp -p SupplementaryGroups=docker \\
               -E DOCKER_CONFIG=/var/lib/ecrcp/docker \\
               docker login --username {user} --password-stdin"
        ),
    ]);
    assert_eq!(login.code, Some(0), "the documented login: {login:?}");

    let config = format!(
        r#"version = 1
[[image]]
source = "{repository}:1"
destination = "{ECR}/"
"#
    );
    let write = container.exec(&[
        "sh",
        "-c",
        &format!("printf '%s' '{config}' > /etc/ecrcp/images.toml"),
    ]);
    assert_eq!(write.code, Some(0), "{write:?}");
    let start = container.exec(&["systemctl", "start", "ecrcp.service"]);
    assert_eq!(start.code, Some(0), "{start:?}\n{}", container.diagnostics());

    assert_eq!(
        container.properties("ecrcp.service", &["Result", "ExecMainStatus"]),
        "ExecMainStatus=0\nResult=success",
        "the service copied a private Docker Hub image with its own login\n{}",
        container.diagnostics()
    );
    assert!(
        bed.digest(ECR, &repository, "1").is_some(),
        "the private image landed\n{}",
        container.diagnostics()
    );
    let logins = container.exec(&["cat", "/var/lib/ecrcp/docker/config.json"]);
    assert!(
        logins.stdout.contains("https://index.docker.io/v1/") && logins.stdout.contains(ECR),
        "one docker config holds the Docker Hub login and the service's ECR login: {logins:?}"
    );
}

#[test]
#[ignore = "needs the test bed"]
fn systemctl_stop_lets_the_copy_under_way_finish() {
    let bed = Bed::get("systemd-stop");
    let upstream = bed.unique("e2e/stopbig");
    bed.push_upstream_sized(&upstream, "1", "big", 64 * 1024 * 1024);
    let prefix = bed.unique("stop");
    let big = format!("{upstream}:1");
    let config = bed.sync_config(&format!(
        "version = 1\n[sync]\njobs = 1\n[defaults]\ndestination = \"{ECR}/{prefix}/\"\n\
         [[image]]\nsource = \"{big}\"\n[[image]]\nsource = \"alpine:3.20\"\n"
    ));

    let container = Container::boot(&bed, Path::new(env!("CARGO_BIN_EXE_ecrcp")), Some(&config));
    let deadline = Instant::now() + RUN_TIMEOUT;
    while docker_commands_naming(&upstream).is_empty() {
        assert!(
            Instant::now() < deadline,
            "no docker command for {upstream} started\n{}",
            container.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let stop = container.exec(&["systemctl", "stop", "ecrcp.service"]);
    assert_eq!(stop.code, Some(0), "systemctl stop: {}", stop.stderr);

    assert_eq!(
        container.properties("ecrcp.service", &["Result", "ExecMainStatus"]),
        "ExecMainStatus=143\nResult=success",
        "stopped by SIGTERM, which the unit counts as success\n{}",
        container.diagnostics()
    );
    let outcomes: Vec<(Value, Value)> = container
        .journal()
        .iter()
        .filter(|entry| entry["SYSLOG_IDENTIFIER"] == "ecrcp" && entry["IMAGE"].is_string())
        .map(|entry| (entry["IMAGE"].clone(), entry["OUTCOME"].clone()))
        .collect();
    assert!(
        outcomes.contains(&(Value::from(big.as_str()), Value::from("copied"))),
        "the copy under way finished: {outcomes:?}\n{}",
        container.diagnostics()
    );
    assert!(
        outcomes.contains(&(Value::from("alpine:3.20"), Value::from("not started"))),
        "{outcomes:?}"
    );
    assert!(bed.digest(ECR, &format!("{prefix}/{upstream}"), "1").is_some());
    assert_eq!(
        docker_commands_naming(&upstream),
        Vec::<String>::new(),
        "no docker command left"
    );
}
