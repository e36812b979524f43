//! The packages of `bash packaging/build` as a user meets them: `apt install ecrcp` from the
//! signed apt repository into a booted Debian systemd that has no ecrcp at all
//! (`tests/testbed/nspawn boot-bare`), then what the package promises: the binary, man
//! pages, completions, the docker plugin, the timer and the service it runs, upgrades that keep
//! the admin's config and the sync under way, removal and purge; the unit that syncs without
//! docker (`ecrcp-registry.service`), its hardening, and an admin's switch to its timer kept
//! through upgrade, removal and reinstall; and the .rpm against the .deb. The packages are
//! built outside the bed; these tests fail, not skip, without them.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::container::{docker_commands_naming, exposure, Container, Docker};
use crate::support::{Bed, Faults, Run, ECR, HUB};

/// Where the apt repository is inside the container: the URI of its `ecrcp.sources`.
const APT_MOUNT: &str = "/srv/ecrcp-apt";
/// One small copy through the installed service; a loaded CI machine gets slack.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
#[ignore = "needs the test bed"]
fn apt_install_from_the_signed_repository_sets_up_ecrcp_and_starts_only_the_timer() {
    let bed = Bed::get("packages-install");
    let container = Container::boot_bare(&bed, &packages_dir().join("apt"));
    let sources = container.add_the_repository();
    assert!(
        sources.contains("Signed-By:") && !sources.to_lowercase().contains("trusted"),
        "the repository is trusted through its key, not trusted=yes:\n{sources}"
    );
    container.refuses_a_tampered_copy_of_the_repository();
    container.apt(&["install", "ecrcp"]).assert_code(0);

    let version = container.exec(&["ecrcp", "--version"]);
    assert_eq!(
        version.stdout.trim(),
        format!("ecrcp {}", env!("CARGO_PKG_VERSION")),
        "{version:?}"
    );
    // man-db is not in the container's root: the pages are checked as files man would read.
    for page in ["/usr/share/man/man1/ecrcp.1.gz", &container.images_toml_page()] {
        let roff = container.exec(&["sh", "-c", &format!("zcat {page} | grep -c '^\\.TH '")]);
        assert_eq!(roff.stdout.trim(), "1", "{page} is a gzipped man page: {roff:?}");
    }
    let bash = container.exec(&[
        "bash",
        "-c",
        ". /usr/share/bash-completion/completions/ecrcp && complete -p ecrcp",
    ]);
    assert!(
        bash.code == Some(0) && bash.stdout.contains("ecrcp"),
        "bash completes ecrcp: {bash:?}"
    );
    for file in [
        "/usr/share/zsh/vendor-completions/_ecrcp",
        "/usr/share/fish/vendor_completions.d/ecrcp.fish",
        // where the "no config" error points
        "/usr/share/doc/ecrcp/examples/images.toml",
    ] {
        let present = container.exec(&["test", "-s", file]);
        assert_eq!(present.code, Some(0), "{file} is installed");
    }
    let link = container.exec(&["readlink", "-f", "/usr/libexec/docker/cli-plugins/docker-ecrcp"]);
    assert_eq!(link.stdout.trim(), "/usr/bin/ecrcp", "the plugin link: {link:?}");
    let docker = container.exec(&["docker", "--help"]);
    assert!(
        docker
            .stdout
            .lines()
            .any(|line| line.trim_start().starts_with("ecrcp*") && line.contains("ECR")),
        "docker finds the plugin in /usr/libexec/docker/cli-plugins and lists it:\n{}",
        docker.stdout
    );

    assert_eq!(
        container
            .exec(&["systemctl", "is-enabled", "ecrcp.timer"])
            .stdout
            .trim(),
        "enabled"
    );
    assert_eq!(
        container
            .exec(&["systemctl", "is-active", "ecrcp.timer"])
            .stdout
            .trim(),
        "active"
    );
    let timers = container.exec(&["systemctl", "list-timers", "--no-legend", "ecrcp.timer"]);
    let scheduled = timers.stdout.split_whitespace().next().unwrap_or_default();
    assert!(
        !scheduled.is_empty() && scheduled != "-" && scheduled != "n/a",
        "the timer has a next run: {timers:?}"
    );
    assert_eq!(
        container.properties("ecrcp.service", &["ActiveState", "InvocationID"]),
        "ActiveState=inactive\nInvocationID=",
        "the service never ran\n{}",
        container.diagnostics()
    );
    let journal = container.exec(&["journalctl", "-u", "ecrcp.service", "-q", "--no-pager"]);
    assert_eq!(journal.stdout.trim(), "", "nothing ran during the install");
    assert_eq!(
        container.timer_state("ecrcp-registry.timer"),
        ("disabled".to_owned(), "inactive".to_owned()),
        "the timer of the sync without docker is the admin's choice, not the package's"
    );
    let journal = container.exec(&["journalctl", "-u", "ecrcp-registry.service", "-q", "--no-pager"]);
    assert_eq!(journal.stdout.trim(), "", "the registry service never ran either");
}

#[test]
#[ignore = "needs the test bed"]
fn the_package_installs_a_verified_registry_service_without_docker_exposed_at_most_2() {
    let bed = Bed::get("packages-registry-unit");
    // A machine without docker: the package installs all the same.
    let container = Container::boot_bare_with(&bed, &packages_dir().join("apt"), Docker::Absent);
    container.add_the_repository();
    container.apt(&["install", "ecrcp"]).assert_code(0);

    let verify = container.exec(&[
        "systemd-analyze",
        "verify",
        "ecrcp-registry.service",
        "ecrcp-registry.timer",
    ]);
    assert!(
        verify.code == Some(0) && verify.stdout.trim().is_empty() && verify.stderr.trim().is_empty(),
        "systemd-analyze verify has nothing to say about the installed units: {verify:?}"
    );
    let show = container.properties(
        "ecrcp-registry.service",
        &["DynamicUser", "PrivateUsers", "SupplementaryGroups", "User"],
    );
    assert_eq!(
        show, "DynamicUser=yes\nPrivateUsers=yes\nSupplementaryGroups=\nUser=ecrcp",
        "no docker group, a user namespace of its own, the user of ecrcp.service"
    );
    let exec = container.properties("ecrcp-registry.service", &["ExecStart"]);
    assert!(
        exec.contains("argv[]=/usr/bin/ecrcp sync --engine registry ;"),
        "it runs the registry engine: {exec}"
    );
    let timer = container.properties("ecrcp-registry.timer", &["Unit"]);
    assert_eq!(timer, "Unit=ecrcp-registry.service");

    // As the container's systemd loaded the unit, and as the file reads offline.
    for command in [
        &[
            "systemd-analyze",
            "security",
            "--no-pager",
            "ecrcp-registry.service",
        ][..],
        &[
            "systemd-analyze",
            "security",
            "--offline=true",
            "/usr/lib/systemd/system/ecrcp-registry.service",
        ],
    ] {
        let run = container.exec(command);
        let level = exposure(&run.stdout, "ecrcp-registry.service");
        assert!(
            level <= 2.0,
            "{command:?}: exposure {level} is above 2.0:\n{}",
            run.stdout
        );
        assert!(
            run.stdout.contains("Service has no supplementary groups"),
            "{command:?} finds no supplementary group:\n{}",
            run.stdout
        );
    }
}

#[test]
#[ignore = "needs the test bed"]
fn an_admins_switch_to_the_registry_timer_survives_upgrade_removal_and_reinstall() {
    let bed = Bed::get("packages-registry-switch");
    let container = Container::boot_bare(&bed, &packages_dir().join("apt"));
    let before = container.ecrcp_paths();
    container.add_the_repository();
    container.apt(&["install", "ecrcp"]).assert_code(0);
    let switched = (
        "disabled".to_owned(),
        "inactive".to_owned(),
        "enabled".to_owned(),
        "active".to_owned(),
    );

    // The documented switch.
    for command in [
        &["systemctl", "disable", "--now", "ecrcp.timer"][..],
        &["systemctl", "enable", "--now", "ecrcp-registry.timer"],
    ] {
        container.exec(command).assert_code(0);
    }
    assert_eq!(
        container.timers(),
        switched,
        "(ecrcp.timer, ecrcp-registry.timer) after the switch"
    );

    let started = container.properties("ecrcp-registry.timer", &["ActiveEnterTimestampMonotonic"]);
    let newer = container.newer_package();
    container.apt(&["install", &newer]).assert_code(0);
    assert_eq!(
        container.timers(),
        switched,
        "the upgrade neither re-enabled nor started ecrcp.timer"
    );
    assert_ne!(
        container.properties("ecrcp-registry.timer", &["ActiveEnterTimestampMonotonic"]),
        started,
        "the upgrade restarted the enabled timer"
    );

    container.apt(&["remove", "ecrcp"]).assert_code(0);
    for timer in ["ecrcp.timer", "ecrcp-registry.timer"] {
        let active = container.exec(&["systemctl", "is-active", timer]);
        assert_eq!(active.stdout.trim(), "inactive", "apt remove stopped {timer}");
    }
    let masked = container.exec(&["systemctl", "is-enabled", "ecrcp-registry.timer"]);
    assert_eq!(
        masked.stdout.trim(),
        "masked",
        "removed, so masked as debhelper does: {masked:?}"
    );

    container.apt(&["install", "ecrcp"]).assert_code(0);
    assert_eq!(
        container.timers(),
        switched,
        "the reinstall kept the admin's choice of timer"
    );

    container.apt(&["purge", "ecrcp"]).assert_code(0);
    let after = container.ecrcp_paths();
    let left: Vec<&String> = after.difference(&before).collect();
    assert!(
        left.is_empty(),
        "purge left these behind (the registry timer's enablement too): {left:#?}"
    );
}

#[test]
#[ignore = "needs the test bed"]
fn the_installed_timer_runs_the_service_which_copies_the_image_and_logs_fields_to_the_journal() {
    let bed = Bed::get("packages-service");
    let prefix = bed.unique("pkg");
    let container = Container::boot_bare(&bed, &packages_dir().join("apt"));
    container.add_the_repository();
    container.apt(&["install", "ecrcp"]).assert_code(0);
    container.configure(&format!(
        "version = 1\n[defaults]\ndestination = \"{ECR}/{prefix}/\"\n[[image]]\nsource = \"alpine:3.20\"\n"
    ));
    // Keys in the environment, as an instance role's would be, and no AWS file: the unit's
    // credentials of them (LoadCredential=) must not fail it.
    let etc = container.exec(&["ls", "-A", "/etc/ecrcp"]);
    assert_eq!(etc.stdout, "images.toml\n", "no /etc/ecrcp/aws-*: {etc:?}");

    container.fire_the_timer_now("ecrcp.timer");
    container.wait_for_the_run(RUN_TIMEOUT);

    assert_ne!(
        container.properties("ecrcp.timer", &["LastTriggerUSecMonotonic"]),
        "LastTriggerUSecMonotonic=0",
        "the timer started the service"
    );
    assert_eq!(
        container.properties("ecrcp.service", &["ExecMainStatus", "Result"]),
        "ExecMainStatus=0\nResult=success",
        "{}",
        container.diagnostics()
    );
    assert!(
        bed.digest(ECR, &format!("{prefix}/alpine"), "3.20").is_some(),
        "the packaged service copied alpine:3.20\n{}",
        container.diagnostics()
    );
    let event = container
        .journal()
        .into_iter()
        .find(|entry| entry["SYSLOG_IDENTIFIER"] == "ecrcp" && entry["IMAGE"] == "alpine:3.20")
        .unwrap_or_else(|| panic!("an event with IMAGE=alpine:3.20\n{}", container.diagnostics()));
    assert_eq!(event["OUTCOME"], "copied", "{event:#}");
    assert_eq!(
        event["DESTINATION"],
        format!("{ECR}/{prefix}/alpine:3.20").as_str(),
        "{event:#}"
    );
}

#[test]
#[ignore = "needs the test bed"]
fn the_services_read_root_only_aws_files_through_systemd_and_secrets_stay_root_only() {
    let bed = Bed::get("packages-secrets");
    let prefix = bed.unique("secrets");
    let container = Container::boot_bare(&bed, &packages_dir().join("apt"));
    container.add_the_repository();
    container.apt(&["install", "ecrcp"]).assert_code(0);
    let modes = ["/etc/default/ecrcp", "/etc/ecrcp"];
    assert_eq!(
        container.modes(&modes),
        "600 root root /etc/default/ecrcp\n755 root root /etc/ecrcp\n",
        "a proxy's password in /etc/default/ecrcp is root's alone; images.toml is the services'"
    );
    for unit in ["ecrcp.service", "ecrcp-registry.service"] {
        assert_eq!(
            container.properties(unit, &["LimitCORE"]),
            "LimitCORE=0",
            "{unit} dumps no core with credentials in it"
        );
    }

    // docs/service.md's setup: the keys in a root-only /etc/ecrcp/aws-credentials, the rest of
    // the bed's AWS settings (moto) in /etc/default/ecrcp, no key in any environment. The
    // bed's moto checks no signature: a secret of this test's own can be looked for in logs.
    let (key, secret) = (env_or("AWS_ACCESS_KEY_ID", "testing"), format!("{prefix}-secret"));
    container.write(
        "/etc/ecrcp/aws-credentials",
        &format!("[default]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n"),
    );
    container
        .exec(&["chmod", "0600", "/etc/ecrcp/aws-credentials"])
        .assert_code(0);
    let mut settings = container.read(&["/etc/default/ecrcp"]);
    for name in ["AWS_ENDPOINT_URL", "AWS_REGION", "AWS_EC2_METADATA_DISABLED"] {
        writeln!(settings, "{name}={}", env_or(name, "")).unwrap();
    }
    container.write("/etc/default/ecrcp", &settings);
    let direct = container.exec(&[
        "systemd-run",
        "--quiet",
        "--pipe",
        "--wait",
        "--collect",
        "-p",
        "DynamicUser=yes",
        "-p",
        "User=ecrcp",
        "cat",
        "/etc/ecrcp/aws-credentials",
    ]);
    assert!(
        direct.code != Some(0)
            && direct.stderr.contains("Permission denied")
            && !direct.stdout.contains(&secret),
        "the services' user cannot read the file itself: {direct:?}"
    );

    // Each service copies (a destination of its own: a real copy, an ECR login of its own).
    for (unit, destination) in [
        ("ecrcp-registry.service", "registry"),
        ("ecrcp.service", "docker"),
    ] {
        container.write(
            "/etc/ecrcp/images.toml",
            &format!(
                "version = 1\n[defaults]\ndestination = \"{ECR}/{prefix}-{destination}/\"\n[[image]]\nsource = \"alpine:3.20\"\n"
            ),
        );
        let start = container.exec(&["systemctl", "start", unit]);
        assert_eq!(start.code, Some(0), "{start:?}\n{}", container.diagnostics());
        assert_eq!(
            container.properties(unit, &["ExecMainStatus", "Result"]),
            "ExecMainStatus=0\nResult=success",
            "{unit} read the keys systemd handed it\n{}",
            container.diagnostics()
        );
        assert!(
            bed.digest(ECR, &format!("{prefix}-{destination}/alpine"), "3.20")
                .is_some(),
            "{unit} copied alpine:3.20\n{}",
            container.diagnostics()
        );
    }
    let journal = container.exec(&["journalctl", "-o", "cat", "--no-pager"]);
    assert!(!journal.stdout.contains(&secret), "the secret key is in no log");

    // An earlier package's edited /etc/default/ecrcp, world-readable: dpkg keeps the
    // admin's text and mode, postinst takes every user's read away.
    container
        .exec(&["chmod", "0644", "/etc/default/ecrcp"])
        .assert_code(0);
    let newer = container.newer_package();
    container.apt(&["install", &newer]).assert_code(0);
    assert_eq!(
        container.modes(&modes),
        "600 root root /etc/default/ecrcp\n755 root root /etc/ecrcp\n",
        "the upgrade made the edited file root's alone"
    );
    assert_eq!(
        container.read(&["/etc/default/ecrcp"]),
        settings,
        "and kept its text"
    );
    assert_eq!(
        container.modes(&["/etc/ecrcp/aws-credentials"]),
        "600 root root /etc/ecrcp/aws-credentials\n"
    );
}

#[test]
#[ignore = "needs the test bed"]
fn an_upgrade_keeps_the_edited_config_and_lets_the_sync_under_way_finish() {
    let bed = Bed::get("packages-upgrade");
    let upstream = bed.unique("e2e/upgradebig");
    bed.push_upstream_sized(&upstream, "1", "big", 64 * 1024 * 1024);
    // The pull is held to about 6 MB/s, so that the sync is surely still under way when the
    // upgrade ends: on a fast bed a 64 MiB copy may otherwise finish first.
    let _slow = Faults::set(
        HUB,
        &upstream,
        &serde_json::json!([{"method": "GET", "path": "/blobs/", "rate": 6_000_000}]),
    );
    let prefix = bed.unique("upgrade");
    let container = Container::boot_bare(&bed, &packages_dir().join("apt"));
    container.add_the_repository();
    container.apt(&["install", "ecrcp"]).assert_code(0);
    container.configure(&format!(
        "version = 1\n[defaults]\ndestination = \"{ECR}/{prefix}/\"\n[[image]]\nsource = \"{upstream}:1\"\n"
    ));
    let edited = container.read(&["/etc/ecrcp/images.toml", "/etc/default/ecrcp"]);
    let newer = container.newer_package();

    let start = container.exec(&["systemctl", "start", "--no-block", "ecrcp.service"]);
    assert_eq!(start.code, Some(0), "{start:?}");
    container.wait_for_a_docker_command_naming(&upstream);
    let run = container.properties("ecrcp.service", &["InvocationID"]);
    container.apt(&["install", &newer]).assert_code(0);
    assert_eq!(
        container
            .exec(&["systemctl", "is-active", "ecrcp.service"])
            .stdout
            .trim(),
        "activating",
        "the sync was still under way when the upgrade ended (else this test proves nothing)"
    );

    let installed = container.exec(&["dpkg-query", "-W", "-f", "${Version}", "ecrcp"]);
    assert!(installed.stdout.ends_with("+upgrade"), "upgraded: {installed:?}");
    assert_eq!(
        container.read(&["/etc/ecrcp/images.toml", "/etc/default/ecrcp"]),
        edited,
        "the upgrade kept the admin's images.toml and /etc/default/ecrcp"
    );
    container.wait_until_done("ecrcp.service");
    assert_eq!(
        container.properties("ecrcp.service", &["ExecMainStatus", "Result"]),
        "ExecMainStatus=0\nResult=success",
        "the sync under way ran to its end, not stopped by the upgrade (143)\n{}",
        container.diagnostics()
    );
    assert_eq!(
        container.properties("ecrcp.service", &["InvocationID"]),
        run,
        "and it is the same run: the upgrade restarted nothing\n{}",
        container.diagnostics()
    );
    assert!(
        bed.digest(ECR, &format!("{prefix}/{upstream}"), "1").is_some(),
        "and copied its image\n{}",
        container.diagnostics()
    );
    assert_eq!(
        container
            .exec(&["systemctl", "is-active", "ecrcp.timer"])
            .stdout
            .trim(),
        "active",
        "the timer runs on after the upgrade"
    );
}

#[test]
#[ignore = "needs the test bed"]
fn apt_remove_stops_the_timer_and_purge_leaves_nothing_behind() {
    let bed = Bed::get("packages-purge");
    let prefix = bed.unique("purge");
    let container = Container::boot_bare(&bed, &packages_dir().join("apt"));
    let before = container.ecrcp_paths();
    container.add_the_repository();
    container.apt(&["install", "ecrcp"]).assert_code(0);
    // a run, so that there is state to purge: the ledger, the service's docker logins
    container.configure(&format!(
        "version = 1\n[defaults]\ndestination = \"{ECR}/{prefix}/\"\n[[image]]\nsource = \"alpine:3.20\"\n"
    ));
    let start = container.exec(&["systemctl", "start", "ecrcp.service"]);
    assert_eq!(start.code, Some(0), "{start:?}\n{}", container.diagnostics());
    assert!(
        bed.digest(ECR, &format!("{prefix}/alpine"), "3.20").is_some(),
        "systemctl start ecrcp.service copied alpine:3.20\n{}",
        container.diagnostics()
    );
    let state = container.exec(&["test", "-d", "/var/lib/private/ecrcp"]);
    assert_eq!(state.code, Some(0), "the run left state to purge");

    container.apt(&["remove", "ecrcp"]).assert_code(0);
    assert_eq!(
        container
            .exec(&["systemctl", "is-active", "ecrcp.timer"])
            .stdout
            .trim(),
        "inactive",
        "apt remove stopped the timer"
    );
    let timers = container.exec(&["systemctl", "list-timers", "--no-legend"]);
    assert!(
        !timers.stdout.contains("ecrcp"),
        "nothing of ecrcp is scheduled:\n{}",
        timers.stdout
    );

    container.apt(&["purge", "ecrcp"]).assert_code(0);
    let after = container.ecrcp_paths();
    let left: Vec<&String> = after.difference(&before).collect();
    assert!(left.is_empty(), "purge left these behind: {left:#?}");
    let units = container.exec(&["systemctl", "list-unit-files", "--no-legend", "ecrcp*"]);
    assert_eq!(units.stdout.trim(), "", "no ecrcp unit is known to systemd");
}

#[test]
#[ignore = "needs the test bed"]
fn the_rpm_ships_the_files_and_scripts_of_the_deb() {
    // packaging/check compares the two packages of this checkout's target/packages: file
    // types, modes, link targets and contents (but for its listed differences), and what
    // the scripts do to the units; then lintian and rpmlint.
    let check = Run::from(
        Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/check"))
            .stdin(Stdio::null())
            .output()
            .expect("bash runs"),
    );
    assert!(
        check.code == Some(0) && check.stdout.contains("agree"),
        "packaging/check (without packages: run `bash packaging/build` first):\n{check:?}"
    );
}

/// `$ECRCP_PACKAGES`, or `target/packages` of this checkout: what `bash packaging/build`
/// wrote. Panics, with the command to run, when it is missing.
fn packages_dir() -> PathBuf {
    let dir = std::env::var_os("ECRCP_PACKAGES").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/packages"),
        PathBuf::from,
    );
    assert!(
        dir.join("apt/InRelease").is_file(),
        "no signed apt repository in {}\nnote: run `bash packaging/build` outside the test bed first \
         (or point ECRCP_PACKAGES at its output)",
        dir.join("apt").display()
    );
    dir
}

/// What the package tests do in a container, beyond what every systemd test does.
impl Container {
    /// The files' contents, one after the other.
    fn read(&self, paths: &[&str]) -> String {
        let mut args = vec!["cat"];
        args.extend_from_slice(paths);
        let run = self.exec(&args);
        assert_eq!(run.code, Some(0), "{run:?}");
        run.stdout
    }

    /// `apt-get -y COMMAND...`, non-interactive as in a provisioning script.
    fn apt(&self, args: &[&str]) -> Run {
        let mut command = vec!["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-y", "-q"];
        command.extend_from_slice(args);
        self.exec(&command)
    }

    /// `stat`'s octal mode, owner, group and name of each of `paths`, a line each.
    fn modes(&self, paths: &[&str]) -> String {
        let mut args = vec!["stat", "-c", "%a %U %G %n"];
        args.extend_from_slice(paths);
        let run = self.exec(&args);
        assert_eq!(run.code, Some(0), "{run:?}");
        run.stdout
    }

    /// What the install section tells a user to do: the key and `ecrcp.sources` from the
    /// repository in place, `apt-get update` without a warning. Returns the sources file.
    fn add_the_repository(&self) -> String {
        let sources = self.read(&[&format!("{APT_MOUNT}/ecrcp.sources")]);
        assert!(
            sources.contains(&format!("file:{APT_MOUNT}")),
            "ecrcp.sources points apt at {APT_MOUNT}:\n{sources}"
        );
        let keyring = signed_by(&sources);
        self.install_file(&format!("{APT_MOUNT}/ecrcp-archive-keyring.gpg"), &keyring);
        self.install_file(
            &format!("{APT_MOUNT}/ecrcp.sources"),
            "/etc/apt/sources.list.d/ecrcp.sources",
        );
        let update = self.apt(&["update"]);
        assert!(
            update.code == Some(0)
                && !update.stdout.contains("W:")
                && !update.stderr.contains("W:")
                && !update.stderr.contains("E:"),
            "apt-get update from the signed repository: {update:?}"
        );
        sources
    }

    fn install_file(&self, source: &str, destination: &str) {
        let run = self.exec(&["install", "-D", "-m", "0644", source, destination]);
        assert_eq!(run.code, Some(0), "{run:?}");
    }

    /// A copy of the repository whose InRelease was altered after signing must fail
    /// `apt-get update`: apt checks the signature with the key of `Signed-By`.
    fn refuses_a_tampered_copy_of_the_repository(&self) {
        let script = format!(
            "set -e; cp -r {APT_MOUNT} /tmp/tampered
             sed -i '0,/^Date:/s/^Date: .*/Date: Thu, 01 Jan 2026 00:00:00 UTC/' /tmp/tampered/InRelease
             sed 's|file:{APT_MOUNT}|file:/tmp/tampered|' {APT_MOUNT}/ecrcp.sources \
               >/etc/apt/sources.list.d/tampered.sources
             apt-get -q update 2>&1 || echo refused
             rm -r /tmp/tampered /etc/apt/sources.list.d/tampered.sources"
        );
        let update = self.exec(&["sh", "-c", &script]);
        assert!(
            update.stdout.contains("BADSIG") && update.stdout.contains("refused"),
            "apt refuses a repository whose signature does not match: {update:?}"
        );
        self.apt(&["update"]).assert_code(0);
    }

    /// The installed images.toml(5) page (cargo-deb and p2 may name it either way).
    fn images_toml_page(&self) -> String {
        let run = self.exec(&["sh", "-c", "ls /usr/share/man/man5/*images.toml.5.gz"]);
        assert_eq!(run.code, Some(0), "an images.toml man page in section 5: {run:?}");
        run.stdout.trim().to_owned()
    }

    /// The admin's setup: `config` as /etc/ecrcp/images.toml, and the bed's AWS settings
    /// (moto) added to /etc/default/ecrcp.
    fn configure(&self, config: &str) {
        self.write("/etc/ecrcp/images.toml", config);
        let mut settings = self.read(&["/etc/default/ecrcp"]);
        settings.push_str("# the test bed's AWS (moto)\n");
        for name in [
            "AWS_ENDPOINT_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_REGION",
            "AWS_EC2_METADATA_DISABLED",
        ] {
            if let Ok(value) = std::env::var(name) {
                writeln!(settings, "{name}={value}").unwrap();
            }
        }
        self.write("/etc/default/ecrcp", &settings);
    }

    /// A newer version of the installed package inside the container: the repository's
    /// .deb with `+upgrade` appended to its version, files and scripts unchanged, which is
    /// what an upgrade exercises. Returns its path, for `apt-get install PATH`.
    fn newer_package(&self) -> String {
        let script = "set -e; cd /tmp; apt-get download -q ecrcp >/dev/null
            dpkg-deb -R ecrcp_*.deb newer
            sed -i 's/^Version: .*/&+upgrade/' newer/DEBIAN/control
            dpkg-deb -Zgzip -z1 --build newer /tmp/ecrcp-newer.deb >/dev/null
            echo /tmp/ecrcp-newer.deb";
        let run = self.exec(&["sh", "-c", script]);
        assert_eq!(run.code, Some(0), "repacking a newer version: {run:?}");
        run.stdout.trim().to_owned()
    }

    /// Paths with "ecrcp" in their name on the container's own file system, but for the
    /// repository the test adds (its mount, key, sources, apt's lists and download).
    fn ecrcp_paths(&self) -> BTreeSet<String> {
        let run = self.exec(&["find", "/", "-xdev", "-name", "*ecrcp*"]);
        run.stdout
            .lines()
            .filter(|path| {
                !path.starts_with("/srv/ecrcp-apt")
                    && !path.starts_with("/var/lib/apt/lists/")
                    && !path.starts_with("/tmp/")
                    && *path != "/etc/apt/sources.list.d/ecrcp.sources"
                    && !path.ends_with("/ecrcp-archive-keyring.gpg")
            })
            .map(str::to_owned)
            .collect()
    }

    /// `systemctl is-enabled` and `is-active` of a timer.
    fn timer_state(&self, timer: &str) -> (String, String) {
        let enabled = self.exec(&["systemctl", "is-enabled", timer]).stdout;
        let active = self.exec(&["systemctl", "is-active", timer]).stdout;
        (enabled.trim().to_owned(), active.trim().to_owned())
    }

    /// [`Container::timer_state`] of ecrcp.timer, then of ecrcp-registry.timer.
    fn timers(&self) -> (String, String, String, String) {
        let (docker_enabled, docker_active) = self.timer_state("ecrcp.timer");
        let (registry_enabled, registry_active) = self.timer_state("ecrcp-registry.timer");
        (docker_enabled, docker_active, registry_enabled, registry_active)
    }

    /// Waits until `unit` has neither a start nor a stop under way.
    fn wait_until_done(&self, unit: &str) {
        let deadline = Instant::now() + RUN_TIMEOUT;
        loop {
            let state = self.exec(&["systemctl", "is-active", unit]).stdout;
            if matches!(state.trim(), "inactive" | "failed") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{unit} still {} after {RUN_TIMEOUT:?}\n{}",
                state.trim(),
                self.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Waits until the service's copy of `needle` is under way: a docker command naming it
    /// (the container's processes show in the bed's /proc).
    fn wait_for_a_docker_command_naming(&self, needle: &str) {
        let deadline = Instant::now() + RUN_TIMEOUT;
        while docker_commands_naming(needle).is_empty() {
            assert!(
                Instant::now() < deadline,
                "no docker command for {needle} started\n{}",
                self.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The bed's value of the variable `name`, or `default`.
fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// The keyring path of a deb822 sources file's `Signed-By:` field.
fn signed_by(sources: &str) -> String {
    sources
        .lines()
        .find_map(|line| line.strip_prefix("Signed-By:"))
        .map(|path| path.trim().to_owned())
        .filter(|path| path.starts_with('/'))
        .unwrap_or_else(|| panic!("ecrcp.sources names its keyring in Signed-By:\n{sources}"))
}
