//! `ecrcp plugin install|uninstall`: the `docker-ecrcp` link in a docker CLI plugin
//! directory, for users who installed with cargo (packages ship the link themselves).
//! A system-wide link is made only to a binary that root alone can change: docker runs
//! every plugin it finds (`docker --help` asks each one for its metadata), as whoever runs
//! docker, root included.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use super::PLUGIN_BINARY;

/// Where docker looks: the user's config dir, or a system directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    User,
    System,
}

/// The system directory docker searches that is meant for locally installed plugins.
pub const SYSTEM_DIR: &str = "/usr/local/lib/docker/cli-plugins";

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("cannot find the running ecrcp binary: {0}")]
    CurrentExe(std::io::Error),
    #[error("no home directory: set DOCKER_CONFIG or HOME, or use --system")]
    NoHome,
    #[error("cannot {action} '{path}': {source}{hint}")]
    Io {
        action: &'static str,
        path: String,
        source: std::io::Error,
        hint: &'static str,
    },
    #[error("'{0}' is not a link to ecrcp; remove it yourself if it should go")]
    Foreign(String),
    #[error("refusing to link '{binary}' into {SYSTEM_DIR}: '{path}' {problem}\nnote: docker runs the plugins there for every user, root included, so whoever can change that file could run anything as root; install ecrcp where only root can change it (`sudo install -m 755 '{binary}' /usr/local/bin/ecrcp`, then `sudo /usr/local/bin/ecrcp plugin install --system`), or install the plugin for yourself alone: `ecrcp plugin install --user`")]
    NotRootOnly {
        binary: String,
        path: String,
        problem: String,
    },
}

/// The plugin directory for `scope`: `$DOCKER_CONFIG/cli-plugins` (or `~/.docker/...`).
pub fn plugin_dir(scope: Scope) -> Result<PathBuf, InstallError> {
    match scope {
        Scope::System => Ok(PathBuf::from(SYSTEM_DIR)),
        Scope::User => crate::docker::default_config_dir()
            .map(|dir| dir.join("cli-plugins"))
            .ok_or(InstallError::NoHome),
    }
}

/// Links `DIR/docker-ecrcp` to this binary, replacing an older link of ours. For the
/// system directory, the binary must be one that root alone can change
/// ([`check_root_only`]).
pub fn install(dir: &Path, scope: Scope) -> Result<PathBuf, InstallError> {
    let target = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .map_err(InstallError::CurrentExe)?;
    if scope == Scope::System {
        check_root_only(&target)?;
    }
    let link = dir.join(PLUGIN_BINARY);
    std::fs::create_dir_all(dir).map_err(|source| io("create", dir, source))?;
    if link.symlink_metadata().is_ok() {
        remove_ours(&link)?;
    }
    std::os::unix::fs::symlink(&target, &link).map_err(|source| io("create", &link, source))?;
    Ok(link)
}

/// Refuses `binary` (a path without links, as `canonicalize` gives) unless it and every
/// directory above it belong to root and nobody else can write to them: whoever could
/// replace the file, or rename a directory on its way, could choose what root runs.
pub fn check_root_only(binary: &Path) -> Result<(), InstallError> {
    for path in binary.ancestors() {
        let found = std::fs::symlink_metadata(path).map_err(|source| io("inspect", path, source))?;
        if let Some(problem) = root_only_problem(found.uid(), found.mode()) {
            return Err(InstallError::NotRootOnly {
                binary: binary.display().to_string(),
                path: path.display().to_string(),
                problem,
            });
        }
    }
    Ok(())
}

/// What keeps a file or directory owned by `owner` with `mode` from being root's alone.
/// Group-writable counts: a group is other people, even root's.
fn root_only_problem(owner: u32, mode: u32) -> Option<String> {
    if owner != 0 {
        return Some(format!("belongs to uid {owner}, not root"));
    }
    if mode & 0o022 != 0 {
        return Some(format!("can be written by others (mode {:o})", mode & 0o7777));
    }
    None
}

/// Removes `DIR/docker-ecrcp` if it is a link to an ecrcp binary. Returns whether there
/// was one.
pub fn uninstall(dir: &Path) -> Result<bool, InstallError> {
    let link = dir.join(PLUGIN_BINARY);
    if link.symlink_metadata().is_err() {
        return Ok(false);
    }
    remove_ours(&link)?;
    Ok(true)
}

fn remove_ours(link: &Path) -> Result<(), InstallError> {
    let ours = std::fs::read_link(link)
        .ok()
        .and_then(|target| target.file_name().map(|name| name == "ecrcp"))
        .unwrap_or(false);
    if !ours {
        return Err(InstallError::Foreign(link.display().to_string()));
    }
    std::fs::remove_file(link).map_err(|source| io("remove", link, source))
}

fn io(action: &'static str, path: &Path, source: std::io::Error) -> InstallError {
    let hint = if source.kind() == std::io::ErrorKind::PermissionDenied {
        "\nnote: --system needs root; --user installs for you alone"
    } else {
        ""
    };
    InstallError::Io {
        action,
        path: path.display().to_string(),
        source,
        hint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_links_and_uninstall_removes_only_our_link() {
        let dir = std::env::temp_dir().join(format!("ecrcp-plugin-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // The test binary is not named ecrcp, so point a link at a file that is.
        let link = install(&dir, Scope::User).unwrap();
        assert!(link.ends_with(PLUGIN_BINARY));
        assert!(
            matches!(uninstall(&dir), Err(InstallError::Foreign(_))),
            "the test binary is not ecrcp"
        );

        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink("/usr/bin/ecrcp", &link).unwrap();
        assert!(uninstall(&dir).unwrap());
        assert!(!uninstall(&dir).unwrap(), "nothing left to remove");

        std::fs::write(&link, "#!/bin/sh\n").unwrap();
        assert!(
            matches!(uninstall(&dir), Err(InstallError::Foreign(_))),
            "a plain file stays"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_what_root_alone_can_change_is_root_only() {
        let cases = [
            (0, 0o100_755, None),
            (0, 0o40_755, None),
            (0, 0o40_700, None),
            (1000, 0o100_755, Some("belongs to uid 1000, not root")),
            (0, 0o100_775, Some("can be written by others (mode 775)")),
            (0, 0o41_777, Some("can be written by others (mode 1777)")),
            (0, 0o40_757, Some("can be written by others (mode 757)")),
        ];
        for (owner, mode, expected) in cases {
            assert_eq!(
                root_only_problem(owner, mode).as_deref(),
                expected,
                "{owner} {mode:o}"
            );
        }
    }

    #[test]
    fn a_binary_that_others_could_change_is_not_linked_system_wide() {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |path: &Path, mode| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        let refused_at = |binary: &Path| match check_root_only(binary) {
            Err(InstallError::NotRootOnly { path, .. }) => Some(PathBuf::from(path)),
            Ok(()) => None,
            Err(error) => panic!("{error}"),
        };
        // /tmp is writable by all: nothing under it is root's alone.
        let in_tmp = Path::new("/tmp").join(format!("ecrcp-root-only-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&in_tmp);
        std::fs::create_dir_all(&in_tmp).unwrap();
        std::fs::write(in_tmp.join("ecrcp"), "").unwrap();
        mode(&in_tmp.join("ecrcp"), 0o755);
        mode(&in_tmp, 0o755);
        assert_eq!(refused_at(&in_tmp.join("ecrcp")), Some(PathBuf::from("/tmp")));
        std::fs::remove_dir_all(&in_tmp).unwrap();
        let shell = std::fs::canonicalize("/bin/sh").unwrap();
        assert_eq!(refused_at(&shell), None, "{}", shell.display());

        // The rest needs root (to give files away) and a base directory that is root's alone.
        let base = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join(format!("root-only-{}", std::process::id()));
        let root = rustix::process::geteuid().is_root();
        if !root || check_root_only(Path::new(env!("CARGO_MANIFEST_DIR"))).is_err() {
            return;
        }
        let _ = std::fs::remove_dir_all(&base);
        let binary = base.join("home/bin/ecrcp");
        std::fs::create_dir_all(binary.parent().unwrap()).unwrap();
        std::fs::write(&binary, "").unwrap();
        for dir in [&base, &base.join("home"), &base.join("home/bin")] {
            mode(dir, 0o755);
        }
        mode(&binary, 0o755);
        assert_eq!(refused_at(&binary), None);
        std::os::unix::fs::chown(base.join("home"), Some(65534), None).unwrap();
        assert_eq!(refused_at(&binary), Some(base.join("home")));
        std::os::unix::fs::chown(base.join("home"), Some(0), None).unwrap();
        mode(&base.join("home/bin"), 0o775);
        assert_eq!(refused_at(&binary), Some(base.join("home/bin")));
        mode(&base.join("home/bin"), 0o755);
        std::os::unix::fs::chown(&binary, Some(65534), None).unwrap();
        assert_eq!(refused_at(&binary), Some(binary.clone()));
        std::os::unix::fs::chown(&binary, Some(0), None).unwrap();
        mode(&binary, 0o777);
        assert_eq!(refused_at(&binary), Some(binary.clone()));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
