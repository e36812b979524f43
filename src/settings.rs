//! Checks for the per-image settings that the command line and the sync config share:
//! platform strings, encryption, resource tags and the lifecycle policy file. Pure, but for
//! reading that one file.

use std::path::Path;

use crate::plan::{Encryption, RepositorySettings};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error(transparent)]
    Platform(#[from] crate::platform::PlatformError),
    #[error("invalid repository tag '{0}': expected KEY=VALUE with a non-empty key")]
    RepositoryTag(String),
    #[error("a KMS key needs kms encryption, not aes256")]
    KmsKeyWithAes,
    #[error("cannot read lifecycle policy '{path}': {detail}")]
    LifecyclePolicy { path: String, detail: String },
}

/// The encryption asked for, before a KMS key is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncryptionType {
    Aes256,
    Kms,
}

/// Repository settings as written, before checking.
#[derive(Debug, Clone, Default)]
pub struct RepositoryInput<'a> {
    pub scan_on_push: bool,
    pub immutable_tags: bool,
    pub encryption: Option<EncryptionType>,
    pub kms_key: Option<&'a str>,
    pub lifecycle_policy: Option<&'a Path>,
    pub tags: Vec<(String, String)>,
}

/// `os/arch[/variant][:osversion]` (`crate::platform`), kept as written: the ledger knows
/// copies by it, and every comparison normalises it.
pub fn platform(text: &str) -> Result<String, SettingsError> {
    crate::platform::Platform::parse(text)?;
    Ok(text.to_owned())
}

/// `KEY=VALUE`, as given to `--repository-tag`.
pub fn repository_tag(text: &str) -> Result<(String, String), SettingsError> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(SettingsError::RepositoryTag(text.to_owned())),
    }
}

/// Checks repository settings and reads the lifecycle policy, which must be JSON.
pub fn repository(input: RepositoryInput<'_>) -> Result<RepositorySettings, SettingsError> {
    let encryption = match (input.encryption, input.kms_key) {
        (Some(EncryptionType::Aes256), Some(_)) => return Err(SettingsError::KmsKeyWithAes),
        (Some(EncryptionType::Kms) | None, Some(key)) => Encryption::Kms {
            key: Some(key.to_owned()),
        },
        (Some(EncryptionType::Kms), None) => Encryption::Kms { key: None },
        (Some(EncryptionType::Aes256) | None, None) => Encryption::Aes256,
    };
    if let Some((key, _)) = input.tags.iter().find(|(key, _)| key.is_empty()) {
        return Err(SettingsError::RepositoryTag(format!("{key}=")));
    }
    let lifecycle_policy = input.lifecycle_policy.map(read_policy).transpose()?;
    Ok(RepositorySettings {
        scan_on_push: input.scan_on_push,
        immutable_tags: input.immutable_tags,
        encryption,
        lifecycle_policy,
        tags: input.tags,
    })
}

fn read_policy(path: &Path) -> Result<String, SettingsError> {
    let error = |detail: String| SettingsError::LifecyclePolicy {
        path: path.display().to_string(),
        detail,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    serde_json::from_str::<serde_json::Value>(&text).map_err(|e| error(format!("not JSON: {e}")))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms() {
        for good in [
            "linux/amd64",
            "linux/arm/v7",
            "windows/amd64",
            "linux/x86_64",
            "windows/amd64:10.0.20348",
        ] {
            assert_eq!(platform(good), Ok(good.to_owned()));
        }
        for bad in [
            "linux",
            "linux/",
            "/amd64",
            "linux/arm/v7/x",
            "linux amd64",
            "windows/amd64:x",
        ] {
            assert_eq!(
                platform(bad),
                Err(SettingsError::Platform(crate::platform::PlatformError(
                    bad.to_owned()
                ))),
                "{bad}"
            );
        }
    }

    #[test]
    fn repository_tags() {
        assert_eq!(
            repository_tag("team=platform"),
            Ok(("team".into(), "platform".into()))
        );
        assert_eq!(repository_tag("empty="), Ok(("empty".into(), String::new())));
        assert!(repository_tag("=x").is_err());
        assert!(repository_tag("novalue").is_err());
    }

    #[test]
    fn encryption_choices() {
        let settings = |encryption, kms_key| {
            repository(RepositoryInput {
                encryption,
                kms_key,
                ..RepositoryInput::default()
            })
        };
        assert_eq!(settings(None, None).unwrap().encryption, Encryption::Aes256);
        assert_eq!(
            settings(None, Some("alias/k")).unwrap().encryption,
            Encryption::Kms {
                key: Some("alias/k".into())
            }
        );
        assert_eq!(
            settings(Some(EncryptionType::Kms), None).unwrap().encryption,
            Encryption::Kms { key: None }
        );
        assert_eq!(
            settings(Some(EncryptionType::Aes256), Some("k")),
            Err(SettingsError::KmsKeyWithAes)
        );
    }

    #[test]
    fn a_missing_or_broken_policy_names_the_file() {
        let missing = repository(RepositoryInput {
            lifecycle_policy: Some(Path::new("/nonexistent/p.json")),
            ..RepositoryInput::default()
        });
        assert!(
            matches!(missing, Err(SettingsError::LifecyclePolicy { ref path, .. }) if path == "/nonexistent/p.json")
        );
    }
}
