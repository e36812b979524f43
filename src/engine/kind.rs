//! The kinds of engine as plain data, and the facts about each that the plan, the config
//! and the copy decision ask for: its name, which settings it honours, what the ledger
//! calls its copies, and how many source reads a copy books. No I/O: the engines themselves
//! live beside it.

use crate::plan::JobSettings;

/// The ways ecrcp moves an image's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// `docker pull`, `tag` and `push`: one platform, through the local daemon.
    #[default]
    Docker,
    /// Registry to registry over the distribution API: every platform, digests kept.
    Registry,
}

/// Settings the chosen engine cannot honour.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("the docker engine copies one platform, not several ({0})\nnote: use the registry engine (--engine registry, or engine = \"registry\") to copy several platforms")]
    DockerPlatforms(String),
    #[error("the docker engine cannot copy referrers (signatures, SBOMs)\nnote: use the registry engine (--engine registry, or engine = \"registry\") with referrers")]
    DockerReferrers,
}

impl EngineKind {
    /// Its name, as `--engine` and `engine =` spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Docker => "docker",
            EngineKind::Registry => "registry",
        }
    }

    /// Refuses what this engine cannot do with `settings`.
    pub fn check(self, settings: &JobSettings) -> Result<(), EngineError> {
        if self != EngineKind::Docker {
            return Ok(());
        }
        if settings.platforms.len() > 1 {
            return Err(EngineError::DockerPlatforms(settings.platforms.join(", ")));
        }
        if settings.referrers {
            return Err(EngineError::DockerReferrers);
        }
        Ok(())
    }

    /// Whether a copy of `platforms` (empty: the engine's default) keeps the source's
    /// manifest byte for byte (every platform), so that equal digests mean equal images and
    /// nothing else is needed to compare them.
    pub fn copies_whole(self, platforms: &[String]) -> bool {
        self == EngineKind::Registry && platforms.is_empty()
    }

    /// What the ledger records as the copy's platform: for the docker engine the platform
    /// asked for or "default" (the daemon's own); for the registry engine, prefixed with
    /// its name, since its copies of one platform are other manifests than docker's.
    pub fn ledger_label(self, platforms: &[String]) -> String {
        match (self, platforms) {
            (EngineKind::Docker, []) => "default".to_owned(),
            (EngineKind::Docker, platforms) => platforms.join(","),
            (EngineKind::Registry, []) => "registry:all".to_owned(),
            (EngineKind::Registry, platforms) => format!("registry:{}", platforms.join(",")),
        }
    }

    /// Manifest GETs a transfer of `platforms` makes in the source, as far as a HEAD can
    /// tell (`index`: the source names an index): docker pulls one platform (two GETs out of
    /// an index); the registry engine reads the index and each platform it copies (when it
    /// copies all, it learns how many only from the index, and takes them from the budget
    /// then).
    pub fn copy_reads(self, index: bool, platforms: &[String]) -> u64 {
        match self {
            EngineKind::Registry if index => 1 + platforms.len() as u64,
            EngineKind::Docker | EngineKind::Registry => 1 + u64::from(index),
        }
    }

    /// Whether the engine reads the source through ecrcp's own registry client, so that a
    /// source its HEAD cannot reach is one it cannot copy either (docker may still pull
    /// one ecrcp cannot ask).
    pub fn reads_the_source_itself(self) -> bool {
        self == EngineKind::Registry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platforms(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn the_ledger_tells_engines_and_platform_choices_apart() {
        // (engine, platforms, ledger label, copies whole)
        let cases = [
            (EngineKind::Docker, &[][..], "default", false),
            (EngineKind::Docker, &["linux/arm64"][..], "linux/arm64", false),
            (EngineKind::Registry, &[][..], "registry:all", true),
            (
                EngineKind::Registry,
                &["linux/arm64"][..],
                "registry:linux/arm64",
                false,
            ),
            (
                EngineKind::Registry,
                &["linux/amd64", "linux/arm64"][..],
                "registry:linux/amd64,linux/arm64",
                false,
            ),
        ];
        for (engine, names, label, whole) in cases {
            let platforms = platforms(names);
            assert_eq!(engine.ledger_label(&platforms), label);
            assert_eq!(engine.copies_whole(&platforms), whole, "{label}");
        }
    }

    #[test]
    fn the_docker_engine_refuses_several_platforms_and_referrers() {
        let settings = |platforms: &[&str], referrers| JobSettings {
            platforms: self::platforms(platforms),
            referrers,
            ..JobSettings::default()
        };
        // (settings, what the docker engine says, what the registry engine says)
        let cases = [
            (settings(&[], false), Ok(()), Ok(())),
            (settings(&["linux/arm64"], false), Ok(()), Ok(())),
            (
                settings(&["linux/amd64", "linux/arm64"], false),
                Err(EngineError::DockerPlatforms("linux/amd64, linux/arm64".into())),
                Ok(()),
            ),
            (settings(&[], true), Err(EngineError::DockerReferrers), Ok(())),
        ];
        for (settings, docker, registry) in cases {
            assert_eq!(EngineKind::Docker.check(&settings), docker, "{settings:?}");
            assert_eq!(EngineKind::Registry.check(&settings), registry, "{settings:?}");
        }
    }

    #[test]
    fn a_copy_books_the_source_reads_its_engine_makes() {
        let three = platforms(&["linux/amd64", "linux/arm64", "linux/386"]);
        // (engine, index, platforms, reads)
        let cases = [
            (EngineKind::Docker, false, &[][..], 1),
            (EngineKind::Docker, true, &[][..], 2),
            (EngineKind::Docker, true, &three[..1], 2),
            (EngineKind::Registry, false, &[][..], 1),
            (EngineKind::Registry, true, &[][..], 1),
            (EngineKind::Registry, true, &three[..], 4),
        ];
        for (engine, index, platforms, reads) in cases {
            assert_eq!(
                engine.copy_reads(index, platforms),
                reads,
                "{engine:?} {index} {platforms:?}"
            );
        }
    }
}
