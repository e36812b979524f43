//! `docker ecrcp`: the same binary as a docker CLI plugin, driven through the real docker CLI
//! and daemon.

use std::time::{Duration, Instant};

use crate::support::{Bed, Run, ECR};

#[test]
#[ignore = "needs the test bed"]
fn docker_lists_the_plugin_and_info_shows_no_plugin_error() {
    let bed = Bed::get("plugin-list");
    let help = bed.docker(&["--help"]);
    help.assert_code(0);
    let line = help
        .stdout
        .lines()
        .find(|line| line.trim_start().starts_with("ecrcp"))
        .unwrap_or_default();
    assert!(
        line.contains("Copy images into AWS ECR"),
        "docker --help:\n{}",
        help.stdout
    );

    let info = bed.docker(&["info"]);
    info.assert_code(0);
    assert!(
        info.stdout.contains("ecrcp: Copy images into AWS ECR"),
        "{}",
        info.stdout
    );
    let plugin_lines: Vec<&str> = info
        .stdout
        .lines()
        .filter(|line| line.contains("ecrcp"))
        .collect();
    assert!(
        plugin_lines
            .iter()
            .all(|line| !line.to_lowercase().contains("error")),
        "{plugin_lines:?}"
    );
    assert!(!info.stderr.contains("ecrcp"), "{}", info.stderr);
}

#[test]
#[ignore = "needs the test bed"]
fn docker_ecrcp_copies_an_image() {
    let bed = Bed::get("plugin-copy");
    let repo = bed.unique("plug/nginx");
    let run = bed.docker(&["ecrcp", "-v", "nginx:1.27", &format!("{ECR}/{repo}")]);
    run.assert_code(0);
    assert!(
        run.stdout
            .contains(&format!("'nginx:1.27' -> '{ECR}/{repo}:1.27'")),
        "{}",
        run.stdout
    );
    assert!(bed.digest(ECR, &repo, "1.27").is_some());
}

#[test]
#[ignore = "needs the test bed"]
fn docker_global_options_before_ecrcp_are_accepted() {
    let bed = Bed::get("plugin-global");
    let repo = bed.unique("plug/alpine");
    let config = bed.docker_config();
    bed.docker(&[
        "--log-level",
        "warn",
        "--config",
        config.to_str().unwrap(),
        "ecrcp",
        "alpine:3.20",
        &format!("{ECR}/{repo}:3.20"),
    ])
    .assert_code(0);
    assert!(bed.digest(ECR, &repo, "3.20").is_some());
    assert!(
        bed.docker_calls()
            .iter()
            .all(|argv| argv.starts_with(&format!("--config={}", config.display()))),
        "docker's --config reaches every docker command: {:?}",
        bed.docker_calls()
    );
}

#[test]
#[ignore = "needs the test bed"]
fn docker_help_ecrcp_prints_help_under_the_docker_name() {
    let bed = Bed::get("plugin-help");
    for args in [&["help", "ecrcp"][..], &["ecrcp", "--help"][..]] {
        let run = bed.docker(args);
        run.assert_code(0);
        assert!(
            run.stdout.contains("Usage: docker ecrcp [OPTIONS] SOURCE DEST"),
            "{args:?}: {}",
            run.stdout
        );
    }
}

#[test]
#[ignore = "needs the test bed"]
fn a_failing_copy_gives_docker_exit_status_1_and_the_same_error_line() {
    let bed = Bed::get("plugin-fail");
    let run = bed.docker(&["ecrcp", "nope/missing:1", &format!("{ECR}/{}/", bed.unique("pf"))]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("ecrcp: cannot copy 'nope/missing:1': "),
        "{}",
        run.stderr
    );
    let usage = bed.docker(&["ecrcp", "Nginx", "mirror/"]);
    usage.assert_code(2);
    assert!(
        usage.stderr.contains("Try 'docker ecrcp --help'"),
        "{}",
        usage.stderr
    );
}

#[test]
#[ignore = "needs the test bed"]
fn the_handshake_prints_only_metadata_and_touches_nothing() {
    let bed = Bed::get("plugin-meta");
    let output = bed
        .ecrcp()
        .arg("docker-cli-plugin-metadata")
        .env_clear()
        .env("ECRCP_DOCKER", "/nonexistent")
        .output()
        .unwrap();
    let run = Run::from(output);
    run.assert_code(0);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    let metadata: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("only JSON on stdout");
    assert_eq!(metadata["SchemaVersion"], "0.1.0");
    assert_eq!(metadata["Vendor"], "ecrcp");
    assert!(bed.docker_calls().is_empty());
}

#[test]
#[ignore = "needs the test bed"]
fn plugin_install_and_uninstall_manage_the_link_docker_finds() {
    let bed = Bed::get("plugin-install");
    let config = bed.scratch().join("fresh-config");
    let ecrcp = |args: &[&str]| {
        Run::from(
            bed.ecrcp()
                .args(args)
                .env("DOCKER_CONFIG", &config)
                .output()
                .unwrap(),
        )
    };
    let run = ecrcp(&["plugin", "install", "--user"]);
    run.assert_code(0);
    let link = config.join("cli-plugins/docker-ecrcp");
    assert!(
        link.symlink_metadata().unwrap().file_type().is_symlink(),
        "{}",
        run.stdout
    );
    let version = Run::from(
        std::process::Command::new("docker")
            .args(["ecrcp", "--version"])
            .env("DOCKER_CONFIG", &config)
            .output()
            .unwrap(),
    );
    version.assert_code(0);
    assert!(
        version.stdout.contains(env!("CARGO_PKG_VERSION")),
        "{}",
        version.stdout
    );

    ecrcp(&["plugin", "uninstall"]).assert_code(0);
    assert!(link.symlink_metadata().is_err(), "the link is gone");
    let again = ecrcp(&["plugin", "uninstall"]);
    again.assert_code(0);
    assert!(again.stdout.contains("nothing to remove"), "{}", again.stdout);
}

/// `sudo ~/.cargo/bin/ecrcp plugin install --system`: docker would run a binary its user can
/// change as root on every `docker --help`, so the link is refused, naming the file and what
/// to do, and nothing is created.
#[test]
#[ignore = "needs the test bed"]
fn a_system_install_of_a_binary_a_user_can_change_is_refused() {
    let bed = Bed::get("plugin-system");
    let copy = bed.scratch().join("home-bin/ecrcp");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_ecrcp"), &copy).unwrap();
    std::os::unix::fs::chown(&copy, Some(65534), None).unwrap();
    let link = std::path::Path::new("/usr/local/lib/docker/cli-plugins/docker-ecrcp");
    let there_before = link.symlink_metadata().is_ok();
    let run = Run::from(
        std::process::Command::new(&copy)
            .args(["plugin", "install", "--system"])
            .output()
            .unwrap(),
    );
    run.assert_code(1);
    let named = format!("'{}' belongs to uid 65534, not root", copy.display());
    assert!(
        run.stderr.contains(&named)
            && run.stderr.contains("/usr/local/bin/ecrcp")
            && run.stderr.contains("--user"),
        "{}",
        run.stderr
    );
    if !there_before {
        assert!(link.symlink_metadata().is_err(), "no link was made");
    }
}

#[test]
#[ignore = "needs the test bed"]
fn the_plugin_stops_when_docker_goes_away() {
    let bed = Bed::get("plugin-gone");
    let upstream = bed.unique("e2e/big");
    // A large image keeps the pull busy long enough to pull the rug from under it.
    bed.push_upstream_sized(&upstream, "1", "big", 64 * 1024 * 1024);
    let repo = bed.unique("gone");
    let mut docker = bed
        .docker_cli()
        .args(["ecrcp", &format!("{upstream}:1"), &format!("{ECR}/{repo}:1")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let plugin = loop {
        if let Some(plugin) = child_of(docker.id()) {
            if bed.docker_calls_of("pull") > 0 {
                break plugin;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "docker never started the plugin's pull"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    docker.kill().unwrap();
    docker.wait().unwrap();
    let stopped = Instant::now();
    while is_running(plugin) {
        assert!(
            stopped.elapsed() < Duration::from_secs(10),
            "the plugin outlived docker"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        bed.docker_calls_of("push"),
        0,
        "the plugin stopped before pushing"
    );
    assert!(bed.digest(ECR, &repo, "1").is_none(), "nothing landed");
}

/// The first process whose parent is `parent`.
fn child_of(parent: u32) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let candidate: u32 = entry.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
        let its_parent: u32 = stat.rsplit(')').next()?.split_whitespace().nth(1)?.parse().ok()?;
        (its_parent == parent).then_some(candidate)
    })
}

/// Alive and not a zombie.
fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}
