//! `ecrcp plugin install|uninstall`: the `docker-ecrcp` link in a docker CLI plugin
//! directory, for users who installed with cargo (packages ship the link themselves).

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

/// Links `DIR/docker-ecrcp` to this binary, replacing an older link of ours.
pub fn install(dir: &Path) -> Result<PathBuf, InstallError> {
    let target = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .map_err(InstallError::CurrentExe)?;
    let link = dir.join(PLUGIN_BINARY);
    std::fs::create_dir_all(dir).map_err(|source| io("create", dir, source))?;
    if link.symlink_metadata().is_ok() {
        remove_ours(&link)?;
    }
    std::os::unix::fs::symlink(&target, &link).map_err(|source| io("create", &link, source))?;
    Ok(link)
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
        let link = install(&dir).unwrap();
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
}
