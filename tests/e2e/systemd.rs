//! `ecrcp sync` as systemd runs it on a user's machine: a real Debian systemd booted in a
//! container inside the bed (`tests/testbed/nspawn`), with the repository's own units
//! (`ecrcp.service` and `ecrcp.timer`; `ecrcp-registry.service`, the sync without docker),
//! their hardening, and the real journal. Only ecrcp.timer is sped up (a drop-in fires it
//! 2 s after boot). Needs the cached root of `tests/testbed/nspawn prepare`, which runs
//! outside the bed.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::container::{docker_commands_naming, exposure, Container, Docker};
use crate::support::{write_executable, Bed, Run, ECR, HUB_ADMIN};

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

    // docs/service.md's command, as an administrator types it: `docker login` as the service's
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

#[test]
#[ignore = "needs the test bed"]
fn the_registry_service_mirrors_byte_for_byte_on_a_machine_without_docker() {
    let bed = Bed::get("systemd-registry");
    let upstream = bed.unique("e2e/nodocker");
    let digest = bed.push_upstream(&upstream, "1", "nodocker");
    let prefix = bed.unique("registry");
    let container = Container::boot_with(&bed, Path::new(env!("CARGO_BIN_EXE_ecrcp")), None, Docker::Absent);
    // ecrcp.timer's run at boot, skipped for want of a config, is over before one appears.
    container.wait_for_the_run(RUN_TIMEOUT);
    assert_ne!(
        container.exec(&["test", "-e", "/run/docker.sock"]).code,
        Some(0),
        "no docker socket in this machine"
    );

    container.write(
        "/etc/ecrcp/images.toml",
        &format!(
            "version = 1\n[defaults]\ndestination = \"{ECR}/{prefix}/\"\n[[image]]\nsource = \"{upstream}:1\"\n"
        ),
    );
    // The documented switch of timers; the registry timer then fires a second after its start.
    container
        .exec(&["systemctl", "disable", "--now", "ecrcp.timer"])
        .assert_code(0);
    container
        .exec(&["systemctl", "enable", "ecrcp-registry.timer"])
        .assert_code(0);
    container.fire_the_timer_now("ecrcp-registry.timer");
    container.wait_for_the_run_of("ecrcp-registry.service", RUN_TIMEOUT);

    assert_ne!(
        container.properties("ecrcp-registry.timer", &["LastTriggerUSecMonotonic"]),
        "LastTriggerUSecMonotonic=0",
        "ecrcp-registry.timer started the service"
    );
    assert_eq!(
        container.properties("ecrcp-registry.service", &["ExecMainStatus", "Result"]),
        "ExecMainStatus=0\nResult=success",
        "{}",
        container.diagnostics()
    );
    assert_eq!(
        bed.digest(ECR, &format!("{prefix}/{upstream}"), "1"),
        Some(digest),
        "the registry engine copied the image, byte for byte: ECR serves the source's digest\n{}",
        container.diagnostics()
    );
    let journal = container.journal_of("ecrcp-registry.service");
    let event = journal
        .iter()
        .find(|entry| {
            entry["SYSLOG_IDENTIFIER"] == "ecrcp" && entry["IMAGE"] == format!("{upstream}:1").as_str()
        })
        .unwrap_or_else(|| panic!("an event with IMAGE={upstream}:1\n{}", container.diagnostics()));
    assert_eq!(event["OUTCOME"], "copied", "{event:#}");
    assert_eq!(
        event["_SYSTEMD_UNIT"], "ecrcp-registry.service",
        "logged by ecrcp in the registry service: {event:#}"
    );
    assert_eq!(
        container.properties(
            "ecrcp-registry.service",
            &["DynamicUser", "PrivateUsers", "SupplementaryGroups", "User"]
        ),
        "DynamicUser=yes\nPrivateUsers=yes\nSupplementaryGroups=\nUser=ecrcp",
        "it ran as the dynamic user, in a user namespace of its own, in no docker group"
    );
}

#[test]
#[ignore = "needs the test bed"]
fn the_registry_service_defers_to_a_docker_sync_under_way_through_their_shared_lock() {
    let bed = Bed::get("systemd-both");
    let upstream = bed.unique("e2e/bothbig");
    bed.push_upstream_sized(&upstream, "1", "big", 64 * 1024 * 1024);
    let prefix = bed.unique("both");
    let config = bed.sync_config(&format!(
        "version = 1\n[defaults]\ndestination = \"{ECR}/{prefix}/\"\n[[image]]\nsource = \"{upstream}:1\"\n"
    ));

    // ecrcp.timer fires 2 s after boot: ecrcp.service (docker) copies the big image.
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
    // Both timers active, as on a machine where the admin enabled the second without
    // disabling the first (the active timer also keeps the service's exit status loaded).
    container
        .exec(&["systemctl", "start", "ecrcp-registry.timer"])
        .assert_code(0);
    let start = container.exec(&["systemctl", "start", "ecrcp-registry.service"]);
    assert_eq!(start.code, Some(0), "{start:?}\n{}", container.diagnostics());

    assert_eq!(
        container.properties("ecrcp-registry.service", &["ExecMainStatus", "Result"]),
        "ExecMainStatus=75\nResult=success",
        "the same user opened the same lock in the same state directory, and found it held\n{}",
        container.diagnostics()
    );
    let said = container.exec(&[
        "journalctl",
        "-u",
        "ecrcp-registry.service",
        "-o",
        "cat",
        "--no-pager",
    ]);
    assert!(
        said.stdout.contains("another ecrcp sync is running"),
        "the journal says why it did nothing:\n{}",
        said.stdout
    );
    assert_eq!(
        container
            .exec(&["systemctl", "is-active", "ecrcp.service"])
            .stdout
            .trim(),
        "activating",
        "the docker sync was still under way (else the lock proved nothing)"
    );
    container.wait_for_the_run(RUN_TIMEOUT);
    assert_eq!(
        container.properties("ecrcp.service", &["ExecMainStatus", "Result"]),
        "ExecMainStatus=0\nResult=success",
        "and it finished undisturbed in the shared state directory\n{}",
        container.diagnostics()
    );
    assert!(bed.digest(ECR, &format!("{prefix}/{upstream}"), "1").is_some());
}

#[test]
#[ignore = "needs the test bed"]
fn the_repositorys_services_are_exposed_at_most_2_and_only_the_docker_one_joins_a_group() {
    // (unit, runs with a supplementary group, sees other users)
    for (unit, grouped, sees_users) in [
        ("ecrcp-registry.service", false, false),
        ("ecrcp.service", true, true),
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd").join(unit);
        let run = Run::from(
            Command::new("systemd-analyze")
                .args(["security", "--offline=true", "--no-pager"])
                .arg(&path)
                .output()
                .expect("systemd-analyze runs (apt-get install systemd)"),
        );
        let level = exposure(&run.stdout, unit);
        assert!(
            level <= 2.0,
            "{unit}: exposure {level} is above 2.0:\n{}",
            run.stdout
        );
        assert_eq!(
            run.stdout.contains("Service runs with supplementary groups"),
            grouped,
            "{unit}: only ecrcp.service is in a group (docker):\n{}",
            run.stdout
        );
        assert_eq!(
            run.stdout.contains("Service has access to other users"),
            sees_users,
            "{unit}: only ecrcp.service goes without PrivateUsers=:\n{}",
            run.stdout
        );
    }
}
