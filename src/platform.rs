//! Platforms as `--platform` names them and as indexes and configs describe them, with
//! containerd's rules (its `platforms` package): the names normalised (`x86_64` is amd64,
//! `aarch64` arm64, `armhf` arm/v7; arm64/v8 is plain arm64 and a bare arm is arm/v7), one
//! matcher, and one choice of the best child of an index. Every place that compares
//! platforms uses this one. Pure.

use std::fmt;

use serde::Deserialize;

/// A platform: `os/arch[/variant]`, and for Windows the OS build it was made for
/// (`os.version`; an ltsc2019 image does not run on an ltsc2022 host).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default, rename = "os.version")]
    pub os_version: Option<String>,
}

/// A `--platform` (or `platform =`) that is not `os/arch[/variant][:osversion]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform '{0}': expected os/arch[/variant][:osversion]\nnote: like linux/amd64, linux/arm/v7 or windows/amd64:10.0.20348")]
pub struct PlatformError(pub String);

impl Platform {
    /// Reads `os/arch[/variant]`, with a Windows build as `:osversion` after it or, as
    /// containerd writes it, `os(osversion)/arch`. Names are kept as written (a variant
    /// written out is preferred to the default one); comparisons normalise them.
    pub fn parse(text: &str) -> Result<Platform, PlatformError> {
        let bad = || PlatformError(text.to_owned());
        let (path, suffix_version) = match text.split_once(':') {
            Some((path, version)) => (path, Some(version)),
            None => (text, None),
        };
        let mut parts = path.split('/');
        let os_part = parts.next().unwrap_or_default();
        let (os, os_version) = match os_part.split_once('(') {
            Some((os, rest)) => (os, Some(rest.strip_suffix(')').ok_or_else(bad)?)),
            None => (os_part, suffix_version),
        };
        if suffix_version.is_some() && os_part.contains('(') {
            return Err(bad());
        }
        let architecture = parts.next().ok_or_else(bad)?;
        let variant = parts.next();
        let word = |part: &str| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        let version_ok = os_version.is_none_or(|version| {
            !version.is_empty() && version.chars().all(|c| c.is_ascii_digit() || c == '.')
        });
        if parts.next().is_some()
            || !word(os)
            || !word(architecture)
            || !variant.is_none_or(word)
            || !version_ok
        {
            return Err(bad());
        }
        Ok(Platform {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.map(str::to_owned),
            os_version: os_version.map(str::to_owned),
        })
    }

    /// The same platform as containerd names it: lowercase, the architecture's usual name,
    /// and no variant where it is the default one (amd64/v1, arm64/v8); a bare arm is v7.
    #[must_use]
    pub fn normalized(&self) -> Platform {
        let os = match self.os.to_ascii_lowercase().as_str() {
            "macos" => "darwin".to_owned(),
            os => os.to_owned(),
        };
        let variant = self.variant.as_deref().map(str::to_ascii_lowercase);
        let (architecture, variant) = match (
            self.architecture.to_ascii_lowercase().as_str(),
            variant.as_deref(),
        ) {
            ("i386", _) => ("386".to_owned(), None),
            ("x86_64" | "x86-64" | "amd64", Some("v1") | None) => ("amd64".to_owned(), None),
            ("x86_64" | "x86-64" | "amd64", Some(variant)) => ("amd64".to_owned(), Some(variant.to_owned())),
            ("aarch64" | "arm64", Some("8" | "v8" | "v8.0") | None) => ("arm64".to_owned(), None),
            ("aarch64" | "arm64", Some(variant)) => ("arm64".to_owned(), Some(variant.to_owned())),
            ("armhf", _) | ("arm", None | Some("7")) => ("arm".to_owned(), Some("v7".to_owned())),
            ("armel", _) => ("arm".to_owned(), Some("v6".to_owned())),
            ("arm", Some(variant @ ("5" | "6" | "8"))) => ("arm".to_owned(), Some(format!("v{variant}"))),
            (architecture, variant) => (architecture.to_owned(), variant.map(str::to_owned)),
        };
        Platform {
            os,
            architecture,
            variant,
            os_version: self.os_version.clone(),
        }
    }

    /// How well `candidate` (a child of an index, an image's config) serves this wanted
    /// platform, `None` when it does not: the same variant as written (3), the same once
    /// normalised (2), any variant when none was asked of an architecture without a default
    /// one (1), an older arm variant (0). An `os.version` asked for must be the candidate's, or a prefix of it at a dot
    /// (`10.0.20348` is served by `10.0.20348.2113`).
    pub fn rank(&self, candidate: &Platform) -> Option<u8> {
        let (wanted, found) = (self.normalized(), candidate.normalized());
        if wanted.os != found.os || wanted.architecture != found.architecture {
            return None;
        }
        if let Some(version) = &wanted.os_version {
            let served = found.os_version.as_deref().is_some_and(|have| {
                have == version
                    || have
                        .strip_prefix(version.as_str())
                        .is_some_and(|rest| rest.starts_with('.'))
            });
            if !served {
                return None;
            }
        }
        if wanted.variant == found.variant {
            let literal = self.variant.as_deref().map(str::to_ascii_lowercase)
                == candidate.variant.as_deref().map(str::to_ascii_lowercase);
            return Some(if literal { 3 } else { 2 });
        }
        let defaulted = matches!(wanted.architecture.as_str(), "amd64" | "arm64" | "arm");
        if self.variant.is_none() && !defaulted {
            return Some(1);
        }
        // An arm/vN machine runs the older arm variants too (containerd's `Only`).
        let level = |variant: &Option<String>| {
            variant
                .as_deref()
                .and_then(|variant| variant.strip_prefix('v')?.parse::<u8>().ok())
        };
        let older = wanted.architecture == "arm"
            && level(&found.variant)
                .zip(level(&wanted.variant))
                .is_some_and(|(found, wanted)| found < wanted);
        older.then_some(0)
    }

    /// Whether `candidate` serves this wanted platform.
    pub fn matches(&self, candidate: &Platform) -> bool {
        self.rank(candidate).is_some()
    }

    /// The child of an index that best serves this platform (`platform_of` reads a child's):
    /// the best rank, the earliest of equals.
    pub fn best<'a, T>(
        &self,
        children: &'a [T],
        platform_of: impl Fn(&T) -> Option<&Platform>,
    ) -> Option<&'a T> {
        let mut best: Option<(u8, &T)> = None;
        for child in children {
            let Some(rank) = platform_of(child).and_then(|platform| self.rank(platform)) else {
                continue;
            };
            if best.is_none_or(|(known, _)| rank > known) {
                best = Some((rank, child));
            }
        }
        best.map(|(_, child)| child)
    }

    /// `os/arch[/variant]`, without the OS build: what `docker --platform` takes.
    pub fn without_os_version(&self) -> String {
        match &self.variant {
            Some(variant) => format!("{}/{}/{variant}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.without_os_version())?;
        if let Some(version) = &self.os_version {
            write!(f, ":{version}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(os: &str, architecture: &str, variant: Option<&str>, os_version: Option<&str>) -> Platform {
        Platform {
            os: os.into(),
            architecture: architecture.into(),
            variant: variant.map(Into::into),
            os_version: os_version.map(Into::into),
        }
    }

    #[test]
    fn platforms_parse_into_containerd_s_names() {
        let cases = [
            ("linux/amd64", Some("linux/amd64")),
            ("linux/x86_64", Some("linux/amd64")),
            ("Linux/X86-64", Some("linux/amd64")),
            ("linux/amd64/v1", Some("linux/amd64")),
            ("linux/amd64/v3", Some("linux/amd64/v3")),
            ("linux/aarch64", Some("linux/arm64")),
            ("linux/arm64/v8", Some("linux/arm64")),
            ("linux/arm64/v9", Some("linux/arm64/v9")),
            ("linux/armhf", Some("linux/arm/v7")),
            ("linux/armel", Some("linux/arm/v6")),
            ("linux/arm", Some("linux/arm/v7")),
            ("linux/arm/7", Some("linux/arm/v7")),
            ("linux/arm/6", Some("linux/arm/v6")),
            ("linux/i386", Some("linux/386")),
            ("linux/ppc64le", Some("linux/ppc64le")),
            ("macos/arm64", Some("darwin/arm64")),
            ("windows/amd64", Some("windows/amd64")),
            ("windows/amd64:10.0.20348", Some("windows/amd64:10.0.20348")),
            ("windows(10.0.17763)/amd64", Some("windows/amd64:10.0.17763")),
            ("linux", None),
            ("linux/", None),
            ("/amd64", None),
            ("linux/arm/v7/x", None),
            ("linux amd64", None),
            ("windows/amd64:", None),
            ("windows/amd64:ltsc", None),
            ("windows(10.0.17763/amd64", None),
            ("windows(10.0.17763)/amd64:10.0.17763", None),
        ];
        for (text, expected) in cases {
            assert_eq!(
                Platform::parse(text)
                    .map(|platform| platform.normalized().to_string())
                    .ok()
                    .as_deref(),
                expected,
                "{text}"
            );
        }
    }

    #[test]
    fn a_wanted_platform_matches_as_containerd_matches() {
        let cases = [
            ("linux/arm64", platform("linux", "arm64", Some("v8"), None), true),
            ("linux/arm64/v8", platform("linux", "arm64", None, None), true),
            (
                "linux/aarch64",
                platform("linux", "arm64", Some("v8"), None),
                true,
            ),
            ("linux/arm64", platform("linux", "arm64", Some("v9"), None), false),
            ("linux/x86_64", platform("linux", "amd64", None, None), true),
            ("linux/amd64", platform("linux", "386", None, None), false),
            ("linux/arm", platform("linux", "arm", Some("v7"), None), true),
            ("linux/arm", platform("linux", "arm", None, None), true),
            ("linux/arm", platform("linux", "arm", Some("v6"), None), true),
            ("linux/arm/v6", platform("linux", "arm", Some("v6"), None), true),
            ("linux/arm/v6", platform("linux", "arm", Some("v7"), None), false),
            ("linux/arm64", platform("linux", "arm", Some("v7"), None), false),
            (
                "linux/riscv64",
                platform("linux", "riscv64", Some("rva22"), None),
                true,
            ),
            ("linux/amd64", platform("windows", "amd64", None, None), false),
            (
                "windows/amd64",
                platform("windows", "amd64", None, Some("10.0.17763.5576")),
                true,
            ),
            (
                "windows/amd64:10.0.20348",
                platform("windows", "amd64", None, Some("10.0.20348.2113")),
                true,
            ),
            (
                "windows/amd64:10.0.20348",
                platform("windows", "amd64", None, Some("10.0.17763.5576")),
                false,
            ),
            (
                "windows/amd64:10.0.2034",
                platform("windows", "amd64", None, Some("10.0.20348.2113")),
                false,
            ),
            (
                "windows/amd64:10.0.20348",
                platform("windows", "amd64", None, None),
                false,
            ),
        ];
        for (wanted, candidate, matches) in cases {
            assert_eq!(
                Platform::parse(wanted).unwrap().matches(&candidate),
                matches,
                "{wanted} against {candidate}"
            );
        }
    }

    #[test]
    fn the_best_child_of_an_index_is_picked() {
        let children = [
            (
                "ltsc2019",
                platform("windows", "amd64", None, Some("10.0.17763.5576")),
            ),
            (
                "ltsc2022",
                platform("windows", "amd64", None, Some("10.0.20348.2113")),
            ),
            ("armv6", platform("linux", "arm", Some("v6"), None)),
            ("armv7", platform("linux", "arm", Some("v7"), None)),
            ("arm64", platform("linux", "arm64", None, None)),
            ("arm64v8", platform("linux", "arm64", Some("v8"), None)),
            ("amd64", platform("linux", "amd64", None, None)),
        ];
        let cases = [
            // The OS build asked for, not the first Windows child.
            ("windows/amd64:10.0.20348", Some("ltsc2022")),
            ("windows(10.0.17763)/amd64", Some("ltsc2019")),
            ("windows/amd64", Some("ltsc2019")),
            ("windows/amd64:10.0.26100", None),
            // Docker's pick for a bare arm is v7, not the first arm child.
            ("linux/arm", Some("armv7")),
            ("linux/armhf", Some("armv7")),
            ("linux/arm/v6", Some("armv6")),
            // The variant as written beats the default one.
            ("linux/arm64/v8", Some("arm64v8")),
            ("linux/arm64", Some("arm64")),
            ("linux/aarch64", Some("arm64")),
            ("linux/x86_64", Some("amd64")),
            ("linux/s390x", None),
        ];
        for (wanted, expected) in cases {
            let best = Platform::parse(wanted)
                .unwrap()
                .best(&children, |(_, platform)| Some(platform))
                .map(|(name, _)| *name);
            assert_eq!(best, expected, "{wanted}");
        }
    }
}
