//! Image references, Docker Hub defaulting, destination parsing and mapping, ECR host parsing; pure, no I/O.
//!
//! Sources follow Docker's reference grammar (`distribution/reference`) so that
//! whatever `docker pull` accepts names the same image here. Destinations use
//! the same grammar with one twist: a name with no registry host means the
//! caller's own ECR registry, not Docker Hub, because that is where `ecrcp`
//! copies to.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

const DOCKER_HUB: &str = "docker.io";
/// docker.io itself serves no registry API; Docker's clients talk to this host.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
const DOCKER_HUB_ALIASES: &[&str] = &["index.docker.io", "registry-1.docker.io"];
const OFFICIAL_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";
// Docker's limit on the repository path, counting Docker Hub's implicit `library/` and not
// the registry host.
const MAX_PATH_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;
/// How a destination written without a registry host shows the caller's own registry.
pub const OWN_REGISTRY_SHOWN: &str = "<your ECR registry>";

/// Why a reference or destination was refused. Inputs are kept verbatim and
/// escaped only when shown, so a stray newline cannot break the message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("invalid image reference '{}': {reason}", .input.escape_debug())]
    InvalidReference { input: String, reason: String },

    #[error("invalid digest in '{}': {reason}", .input.escape_debug())]
    InvalidDigest { input: String, reason: String },

    #[error("invalid destination '{}': {reason}", .input.escape_debug())]
    InvalidDestination { input: String, reason: String },

    #[error(
        "cannot copy '{image}' to '{destination}': it names only a digest, so there is no tag \
         to give the copy; give DEST with a tag, as REPO:TAG"
    )]
    DigestOnlySource { image: String, destination: String },

    #[error(
        "cannot resolve '{destination}': it names no registry host and your own ECR registry \
         is not known; give DEST with a host, as HOST/REPO[:TAG] or HOST/PREFIX/"
    )]
    NoOwnRegistry { destination: String },
}

/// A fully qualified image reference. Fields are stored normalised, so two
/// spellings of the same image (`nginx`, `docker.io/library/nginx:latest`)
/// compare and hash equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    // Invariant: at least one of tag and digest is set.
    tag: Option<String>,
    digest: Option<String>,
}

impl Reference {
    /// Parses a source image as `docker pull` would.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        let bad = |reason: String| ReferenceError::InvalidReference {
            input: s.to_owned(),
            reason,
        };
        check_common(s).map_err(bad)?;
        check_not_image_id(s).map_err(bad)?;
        let (rest, digest) = split_digest(s).map_err(bad)?;
        if let Some(digest) = digest {
            check_digest(digest).map_err(|reason| ReferenceError::InvalidDigest {
                input: s.to_owned(),
                reason,
            })?;
        }
        let (name, tag) = split_tag(rest);
        if let Some(tag) = tag {
            check_tag(tag).map_err(bad)?;
        }
        // Docker would read "nginx/" as an empty last component; saying so
        // directly is clearer, and a SOURCE has no directory form.
        if name.ends_with('/') {
            return Err(bad("trailing '/'; expected a repository name after it".to_owned()));
        }
        let (host, path) = split_host(name);
        let registry = match host {
            Some(host) => normalise_host(host).map_err(bad)?,
            None => DOCKER_HUB.to_owned(),
        };
        Self::build(registry, path, tag, digest).map_err(bad)
    }

    /// Builds a reference from parts, validating each as `parse` would.
    /// A single-name Docker Hub repository gets `library/` so that the
    /// result matches what `parse` gives for the same image.
    pub fn new(
        registry: &str,
        repository: &str,
        tag: Option<&str>,
        digest: Option<&str>,
    ) -> Result<Reference, ReferenceError> {
        let input = spell(registry, repository, tag, digest);
        if let Some(digest) = digest {
            if let Err(reason) = check_digest(digest) {
                return Err(ReferenceError::InvalidDigest { input, reason });
            }
        }
        let bad = |reason: String| ReferenceError::InvalidReference {
            input: input.clone(),
            reason,
        };
        if let Some(tag) = tag {
            check_tag(tag).map_err(bad)?;
        }
        let registry = normalise_host(registry).map_err(bad)?;
        Self::build(registry, repository, tag, digest).map_err(bad)
    }

    fn build(
        registry: String,
        path: &str,
        tag: Option<&str>,
        digest: Option<&str>,
    ) -> Result<Reference, String> {
        check_path(path)?;
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("{OFFICIAL_PREFIX}{path}")
        } else {
            path.to_owned()
        };
        let tag = match (tag, digest) {
            (None, None) => Some(DEFAULT_TAG),
            (tag, _) => tag,
        };
        let reference = Reference {
            registry,
            repository,
            tag: tag.map(str::to_owned),
            digest: digest.map(str::to_owned),
        };
        let len = reference.repository.len();
        if len > MAX_PATH_LEN {
            return Err(format!(
                "repository path is {len} characters long; at most {MAX_PATH_LEN} allowed \
                 (Docker Hub's implicit 'library/' counts, the registry host does not)"
            ));
        }
        Ok(reference)
    }

    /// `docker.io` for Docker Hub, else the host (lowercased) and any port.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host that serves the registry HTTP API for this image.
    pub fn api_host(&self) -> &str {
        if self.is_docker_hub() {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    pub fn is_docker_hub(&self) -> bool {
        self.registry == DOCKER_HUB
    }

    /// The repository path on its registry, e.g. `library/nginx`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag; `latest` when neither tag nor digest was given.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, as `ALGORITHM:HEX` (sha256, sha384 or sha512).
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// What to put in `/v2/<repo>/manifests/<ref>`. A digest wins over a tag
    /// because it pins the exact content the user asked for.
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or(DEFAULT_TAG)
    }

    /// The repository as it should appear under a destination directory.
    /// Docker Hub's implicit `library/` is dropped because users never wrote
    /// it: `nginx` should land in `mirror/nginx`, not `mirror/library/nginx`.
    pub fn path_in_directory(&self) -> &str {
        if self.is_docker_hub() {
            docker_hub_short_name(&self.repository)
        } else {
            &self.repository
        }
    }

    /// The same repository with `tag` and no digest; the digest goes because
    /// it would no longer describe what the new tag points at.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        check_tag(tag).map_err(|reason| ReferenceError::InvalidReference {
            input: spell(&self.registry, &self.repository, Some(tag), None),
            reason,
        })?;
        Ok(Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag.to_owned()),
            digest: None,
        })
    }

    /// Docker's short form, as `docker images` shows it.
    pub fn familiar(&self) -> String {
        let mut out = self.familiar_name();
        push_tag_and_digest(&mut out, self.tag(), self.digest());
        out
    }

    fn familiar_name(&self) -> String {
        let short = self.path_in_directory();
        // Docker drops `docker.io/`, but `docker.io/my.org/app` shown as `my.org/app` would
        // name an image on host `my.org`.
        if self.is_docker_hub() && split_host(short).0.is_none() {
            short.to_owned()
        } else {
            format!("{}/{}", self.registry, self.repository)
        }
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&spell(
            &self.registry,
            &self.repository,
            self.tag(),
            self.digest(),
        ))
    }
}

/// Where a copy goes. `registry: None` means "the caller's own ECR registry"
/// (a destination written with no registry host, e.g. `mirror/nginx:latest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// `HOST/REPO:TAG` or `HOST/REPO` (tag `None`: keep the source's tag).
    Exact {
        registry: Option<String>,
        repository: String,
        tag: Option<String>,
    },
    /// `HOST/prefix/` (ends in '/'), or a bare registry host `HOST` / `HOST/`:
    /// each source keeps its path and tag under `prefix` (prefix may be empty).
    Directory {
        registry: Option<String>,
        prefix: String,
    },
}

impl Destination {
    /// Parses DEST as written on the command line.
    pub fn parse(s: &str) -> Result<Destination, ReferenceError> {
        let bad = |reason: String| ReferenceError::InvalidDestination {
            input: s.to_owned(),
            reason,
        };
        check_destination_common(s).map_err(bad)?;
        check_not_image_id(s).map_err(bad)?;
        if let Some(body) = s.strip_suffix('/') {
            return parse_directory(body).map_err(bad);
        }
        // Without a '/', only a name that cannot be a repository in the
        // caller's registry is taken as a host, so `nginx:1.27` stays an image.
        if !s.contains('/') && is_bare_host(s) {
            return Ok(Destination::Directory {
                registry: Some(normalise_host(s).map_err(bad)?),
                prefix: String::new(),
            });
        }
        let (name, tag) = split_tag(s);
        if let Some(tag) = tag {
            check_tag(tag).map_err(bad)?;
        }
        let (host, path) = split_host(name);
        let registry = host.map(normalise_host).transpose().map_err(bad)?;
        check_path(path).map_err(bad)?;
        let repository = if registry.as_deref() == Some(DOCKER_HUB) && !path.contains('/') {
            format!("{OFFICIAL_PREFIX}{path}")
        } else {
            path.to_owned()
        };
        Ok(Destination::Exact {
            registry,
            repository,
            tag: tag.map(str::to_owned),
        })
    }

    /// Parses a `-t PREFIX` target, which is a directory whether or not it
    /// ends in '/'.
    pub fn directory(s: &str) -> Result<Destination, ReferenceError> {
        let bad = |reason: String| ReferenceError::InvalidDestination {
            input: s.to_owned(),
            reason,
        };
        check_destination_common(s).map_err(bad)?;
        parse_directory(s.strip_suffix('/').unwrap_or(s)).map_err(bad)
    }

    pub fn is_directory(&self) -> bool {
        matches!(self, Destination::Directory { .. })
    }

    pub fn registry(&self) -> Option<&str> {
        match self {
            Destination::Exact { registry, .. } | Destination::Directory { registry, .. } => {
                registry.as_deref()
            }
        }
    }

    /// Maps one source to its final destination reference. `own_registry`
    /// stands in for a destination written without a host. The result never
    /// carries a digest: a copy is pushed by tag.
    pub fn resolve(
        &self,
        source: &Reference,
        own_registry: Option<&str>,
    ) -> Result<Reference, ReferenceError> {
        let Some(registry) = self.registry().or(own_registry) else {
            return Err(ReferenceError::NoOwnRegistry {
                destination: self.to_string(),
            });
        };
        let (repository, tag) = match self {
            Destination::Exact { repository, tag, .. } => (repository.clone(), tag.as_deref()),
            Destination::Directory { prefix, .. } if prefix.is_empty() => {
                (source.path_in_directory().to_owned(), None)
            }
            Destination::Directory { prefix, .. } => {
                (format!("{prefix}/{}", source.path_in_directory()), None)
            }
        };
        let tag = tag
            .or_else(|| source.tag())
            .ok_or_else(|| ReferenceError::DigestOnlySource {
                image: source.familiar(),
                destination: self.to_string(),
            })?;
        Reference::new(registry, &repository, Some(tag), None)
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let registry = self.registry().unwrap_or(OWN_REGISTRY_SHOWN);
        match self {
            Destination::Exact { repository, tag, .. } => {
                let mut out = format!("{registry}/{repository}");
                push_tag_and_digest(&mut out, tag.as_deref(), None);
                f.write_str(&out)
            }
            Destination::Directory { prefix, .. } if prefix.is_empty() => {
                write!(f, "{registry}/")
            }
            Destination::Directory { prefix, .. } => write!(f, "{registry}/{prefix}/"),
        }
    }
}

/// An ECR registry host, e.g. `123456789012.dkr.ecr.us-east-1.amazonaws.com`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrHost {
    pub account: String,
    pub region: String,
    pub fips: bool,
    /// Lowercased, without a port.
    pub host: String,
}

// Every host name form ECR serves its registry API on, as
// (label between account and region, DNS suffix after region, FIPS).
const ECR_HOST_FORMS: &[(&str, &str, bool)] = &[
    ("dkr.ecr", "amazonaws.com", false),
    ("dkr.ecr", "amazonaws.com.cn", false),
    ("dkr.ecr-fips", "amazonaws.com", true),
    ("dkr-ecr", "on.aws", false),
    ("dkr-ecr-fips", "on.aws", true),
];

impl EcrHost {
    /// Recognises an ECR registry host; `None` for anything else. An explicit
    /// `:443` is accepted and dropped since it names the same HTTPS endpoint;
    /// any other port cannot be ECR.
    pub fn parse(host: &str) -> Option<EcrHost> {
        let lower = host.to_ascii_lowercase();
        let host = lower.strip_suffix(":443").unwrap_or(&lower);
        let (account, rest) = host.split_once('.')?;
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        ECR_HOST_FORMS.iter().find_map(|&(service, suffix, fips)| {
            let region = rest
                .strip_prefix(service)?
                .strip_prefix('.')?
                .strip_suffix(suffix)?
                .strip_suffix('.')?;
            is_region(region).then(|| EcrHost {
                account: account.to_owned(),
                region: region.to_owned(),
                fips,
                host: host.to_owned(),
            })
        })
    }
}

/// `us-east-1`, `us-gov-west-1`, `cn-north-1`: letters, then letter groups,
/// then a number, all joined by dashes.
fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let Some((number, words)) = parts.split_last() else {
        return false;
    };
    words.len() >= 2
        && words
            .iter()
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
}

fn spell(registry: &str, repository: &str, tag: Option<&str>, digest: Option<&str>) -> String {
    let mut out = format!("{registry}/{repository}");
    push_tag_and_digest(&mut out, tag, digest);
    out
}

fn push_tag_and_digest(out: &mut String, tag: Option<&str>, digest: Option<&str>) {
    if let Some(tag) = tag {
        out.push(':');
        out.push_str(tag);
    }
    if let Some(digest) = digest {
        out.push('@');
        out.push_str(digest);
    }
}

fn docker_hub_short_name(repository: &str) -> &str {
    // Docker only shortens `library/x`; `library/x/y` is a real namespace.
    match repository.strip_prefix(OFFICIAL_PREFIX) {
        Some(rest) if !rest.contains('/') => rest,
        _ => repository,
    }
}

/// Checks that give a clearer message than the grammar would for mistakes
/// people actually make, such as pasting a URL.
fn check_common(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("empty".to_owned());
    }
    if s.chars().any(char::is_whitespace) {
        return Err("whitespace is not allowed".to_owned());
    }
    if s.contains("://") {
        return Err("expected HOST/REPO without a URL scheme such as 'https://'".to_owned());
    }
    if s.contains("//") {
        return Err("'//' is not allowed; expected one '/' between path components".to_owned());
    }
    Ok(())
}

fn check_destination_common(s: &str) -> Result<(), String> {
    check_common(s)?;
    if s.contains('@') {
        return Err("a destination cannot name a digest; give a tag".to_owned());
    }
    Ok(())
}

fn split_digest(s: &str) -> Result<(&str, Option<&str>), String> {
    match s.split_once('@') {
        Some((_, "")) => Err("empty digest".to_owned()),
        Some((rest, digest)) => Ok((rest, Some(digest))),
        None => Ok((s, None)),
    }
}

/// A ':' is a tag separator only after the last '/'; before it, it belongs
/// to a registry port (`localhost:5000/x`) or an IPv6 address.
fn split_tag(s: &str) -> (&str, Option<&str>) {
    match s.rfind(':') {
        Some(i) if !s[i..].contains('/') => (&s[..i], Some(&s[i + 1..])),
        _ => (s, None),
    }
}

/// Docker's rule: the first component is a host only if it could not be a
/// repository name component, i.e. it has a '.', a ':', an uppercase letter,
/// or is `localhost`.
fn split_host(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest)) if looks_like_host(first) => (Some(first), rest),
        _ => (None, name),
    }
}

fn looks_like_host(component: &str) -> bool {
    component.contains(['.', ':'])
        || component == "localhost"
        || component.bytes().any(|b| b.is_ascii_uppercase())
}

/// Stricter than `looks_like_host`: a destination with no '/' is an image in the caller's
/// own registry unless it can only be a host: an `[IPv6]` address, or `localhost` or a name
/// with a '.', either with nothing or a number after its ':'. So `nginx:1.27`, `nginx:5000`
/// and `my.app:1.27` are images; `registry.example.com` and `registry.example.com:5000` are
/// hosts.
fn is_bare_host(s: &str) -> bool {
    let (name, port) = match s.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (s, None),
    };
    let numeric_port = port.is_none_or(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
    s.starts_with('[') || (numeric_port && (name.contains('.') || name == "localhost"))
}

fn parse_directory(body: &str) -> Result<Destination, String> {
    if body.is_empty() {
        return Err("expected a registry host or repository prefix before '/'".to_owned());
    }
    // Followed by '/', even a lone first component gets the host test.
    let (host, prefix) = match body.split_once('/') {
        Some((first, rest)) if looks_like_host(first) => (Some(first), rest),
        None if looks_like_host(body) => (Some(body), ""),
        _ => (None, body),
    };
    let registry = host.map(normalise_host).transpose()?;
    if prefix.contains(':') {
        return Err(
            "a directory destination (ending in '/') cannot have a tag; each image keeps its own".to_owned(),
        );
    }
    if !prefix.is_empty() {
        check_path(prefix)?;
    }
    Ok(Destination::Directory {
        registry,
        prefix: prefix.to_owned(),
    })
}

/// Validates `host[:port]`, gives it one spelling (lowercase, or uppercase for a single
/// name without a port), and folds Docker Hub's other names into `docker.io` so they
/// compare equal.
fn normalise_host(host: &str) -> Result<String, String> {
    if host.is_empty() {
        return Err("empty registry host".to_owned());
    }
    let shown = host.escape_debug();
    if let Some(port) = split_port(host)? {
        if !port.bytes().all(|b| b.is_ascii_digit()) || !matches!(port.parse::<u16>(), Ok(1..)) {
            return Err(format!(
                "invalid port '{}' in registry host '{shown}'; expected a number from 1 to 65535",
                port.escape_debug()
            ));
        }
    }
    let lower = host.to_ascii_lowercase();
    if DOCKER_HUB_ALIASES.contains(&lower.as_str()) {
        Ok(DOCKER_HUB.to_owned())
    } else if looks_like_host(&lower) {
        Ok(lower)
    } else {
        // A single name like `MyReg` is a host only by its capitals (docker's rule), and
        // `myreg/x` names docker.io/myreg/x: its one spelling is in capitals, so that it
        // still shows as a host.
        Ok(host.to_ascii_uppercase())
    }
}

/// Checks the part before any port and returns the port, still unchecked.
fn split_port(host: &str) -> Result<Option<&str>, String> {
    let shown = host.escape_debug();
    let Some(bracketed) = host.strip_prefix('[') else {
        let (name, port) = match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        };
        if !name.split('.').all(is_host_label) {
            return Err(format!(
                "invalid registry host '{shown}'; expected a host name, IPv4 address or \
                 [IPv6] address, with an optional :PORT"
            ));
        }
        return Ok(port);
    };
    let (address, after) = bracketed
        .split_once(']')
        .ok_or_else(|| format!("unclosed '[' in registry host '{shown}'"))?;
    // Docker allows only hex digits and ':' here: no zone, no embedded IPv4.
    if !address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') || address.parse::<Ipv6Addr>().is_err() {
        return Err(format!(
            "'{}' in registry host '{shown}' is not an IPv6 address",
            address.escape_debug()
        ));
    }
    match after {
        "" => Ok(None),
        _ => after
            .strip_prefix(':')
            .map(Some)
            .ok_or_else(|| format!("expected ':PORT' after ']' in registry host '{shown}'")),
    }
}

fn is_host_label(label: &str) -> bool {
    !label.is_empty()
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("missing repository name".to_owned());
    }
    // Registries are case-sensitive but Docker refuses uppercase outright, so
    // say that rather than calling 'N' an invalid character.
    if path.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err("repository names must be lowercase".to_owned());
    }
    if let Some(c) = path
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '-' | '/'))
    {
        return Err(format!(
            "invalid character '{}' in repository name; expected lowercase letters, digits, \
             '.', '_', '-' and '/'",
            c.escape_debug()
        ));
    }
    path.split('/').try_for_each(check_component)
}

fn check_component(component: &str) -> Result<(), String> {
    if component.is_empty() {
        return Err("empty path component; expected a name before each '/'".to_owned());
    }
    let alphanumeric = |c: char| c.is_ascii_alphanumeric();
    if !component.starts_with(alphanumeric) || !component.ends_with(alphanumeric) {
        return Err(format!(
            "path component '{component}' must start and end with a lowercase letter or digit"
        ));
    }
    match component
        .split(alphanumeric)
        .find(|sep| !sep.is_empty() && !is_separator(sep))
    {
        Some(sep) => Err(format!(
            "'{sep}' cannot join parts of '{component}'; expected '.', '_', '__' or dashes"
        )),
        None => Ok(()),
    }
}

fn is_separator(sep: &str) -> bool {
    matches!(sep, "." | "_" | "__") || sep.bytes().all(|b| b == b'-')
}

fn check_tag(tag: &str) -> Result<(), String> {
    if tag.is_empty() {
        return Err("empty tag".to_owned());
    }
    if let Some(c) = tag
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "invalid character '{}' in tag; expected letters, digits, '_', '.' and '-'",
            c.escape_debug()
        ));
    }
    if tag.starts_with(['.', '-']) {
        return Err("a tag must start with a letter, digit or '_'".to_owned());
    }
    // Only ASCII is left, so bytes are characters.
    if tag.len() > MAX_TAG_LEN {
        return Err(format!(
            "tag is {} characters long; at most {MAX_TAG_LEN} allowed",
            tag.len()
        ));
    }
    Ok(())
}

/// The digest algorithms docker accepts (those go-digest registers), with their length in
/// hex digits.
const DIGEST_ALGORITHMS: &[(&str, usize)] = &[("sha256", 64), ("sha384", 96), ("sha512", 128)];

/// Checks `ALGORITHM:HEX` as docker does: a known algorithm, and exactly its length in
/// lowercase hex, so a mistyped digest stops before any request.
fn check_digest(digest: &str) -> Result<(), String> {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Err("expected ALGORITHM:HEX, such as sha256: and 64 hex digits".to_owned());
    };
    let Some(&(_, len)) = DIGEST_ALGORITHMS.iter().find(|(name, _)| *name == algorithm) else {
        return Err(format!(
            "unsupported digest algorithm '{}'; expected sha256, sha384 or sha512",
            algorithm.escape_debug()
        ));
    };
    if hex.len() != len || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(format!("expected {algorithm}: and {len} lowercase hex digits"));
    }
    Ok(())
}

/// Docker refuses a whole reference of 64 lowercase hex digits: it is an image ID pasted
/// where a name belongs, and pulling `library/<ID>` would only fail later.
fn check_not_image_id(s: &str) -> Result<(), String> {
    if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err("64 hex digits name an image ID, not a repository; give REPO[:TAG]".to_owned());
    }
    Ok(())
}

/// ECR's repository name rule, stricter than docker's: 2 to 256 characters; in each
/// '/'-separated component, lowercase letters and digits joined by a single '.', '_' or
/// '-' (no `__`, no `--`).
pub fn check_ecr_repository(name: &str) -> Result<(), String> {
    let len = name.chars().count();
    if !(2..=256).contains(&len) {
        return Err(format!("it is {len} characters long; ECR needs 2 to 256"));
    }
    let alphanumeric = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    for component in name.split('/') {
        if let Some(sep) = component
            .split(alphanumeric)
            .find(|sep| !sep.is_empty() && !matches!(*sep, "." | "_" | "-"))
        {
            return Err(format!(
                "'{}' in '{}' is not allowed; ECR joins letters and digits with a single '.', '_' or '-'",
                sep.escape_debug(),
                component.escape_debug()
            ));
        }
        if !component.starts_with(alphanumeric) || !component.ends_with(alphanumeric) {
            return Err(format!(
                "path component '{}' must start and end with a lowercase letter or digit",
                component.escape_debug()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const ECR: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

    fn parse(s: &str) -> Reference {
        Reference::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn with_digest(s: &str) -> String {
        s.replace("DIGEST", D)
    }

    fn with_host(s: &str) -> String {
        s.replace("$ECR", ECR)
    }

    #[test]
    fn sources_parse_into_canonical_parts() {
        type Parts = (&'static str, &'static str, Option<&'static str>, bool);
        let cases: &[(&str, Parts)] = &[
            ("nginx", ("docker.io", "library/nginx", Some("latest"), false)),
            ("nginx:1.27", ("docker.io", "library/nginx", Some("1.27"), false)),
            (
                "library/nginx",
                ("docker.io", "library/nginx", Some("latest"), false),
            ),
            (
                "docker.io/nginx",
                ("docker.io", "library/nginx", Some("latest"), false),
            ),
            (
                "index.docker.io/library/nginx",
                ("docker.io", "library/nginx", Some("latest"), false),
            ),
            (
                "registry-1.docker.io/nginx",
                ("docker.io", "library/nginx", Some("latest"), false),
            ),
            (
                "bitnami/kubectl:1.30",
                ("docker.io", "bitnami/kubectl", Some("1.30"), false),
            ),
            (
                "localhost:5000/a/b",
                ("localhost:5000", "a/b", Some("latest"), false),
            ),
            ("localhost/foo", ("localhost", "foo", Some("latest"), false)),
            ("127.0.0.1:5000/x:y", ("127.0.0.1:5000", "x", Some("y"), false)),
            ("[::1]:5000/x", ("[::1]:5000", "x", Some("latest"), false)),
            ("[::1]/x", ("[::1]", "x", Some("latest"), false)),
            ("ghcr.io/foo/bar:1", ("ghcr.io", "foo/bar", Some("1"), false)),
            ("nginx@DIGEST", ("docker.io", "library/nginx", None, true)),
            (
                "nginx:1.27@DIGEST",
                ("docker.io", "library/nginx", Some("1.27"), true),
            ),
            (
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/mirror/nginx:latest",
                (
                    "123456789012.dkr.ecr.us-east-1.amazonaws.com",
                    "mirror/nginx",
                    Some("latest"),
                    false,
                ),
            ),
            // Uppercase marks a host, as in Docker; hosts are then lowercased, except one
            // that lowercase would make a repository name.
            ("Foo/bar", ("FOO", "bar", Some("latest"), false)),
            ("GHCR.io/foo/bar", ("ghcr.io", "foo/bar", Some("latest"), false)),
            (
                "my-registry.example.com:443/team/app:v1",
                ("my-registry.example.com:443", "team/app", Some("v1"), false),
            ),
            // Without a '/', Docker reads "localhost:5000" as image localhost, tag 5000.
            (
                "localhost:5000",
                ("docker.io", "library/localhost", Some("5000"), false),
            ),
            (
                "foo/a.b_c__d---e",
                ("docker.io", "foo/a.b_c__d---e", Some("latest"), false),
            ),
            (
                "docker.io/library/foo/bar",
                ("docker.io", "library/foo/bar", Some("latest"), false),
            ),
            ("nginx:_x", ("docker.io", "library/nginx", Some("_x"), false)),
            (
                "nginx:V1.2-RC_3",
                ("docker.io", "library/nginx", Some("V1.2-RC_3"), false),
            ),
        ];
        for &(input, (registry, repository, tag, has_digest)) in cases {
            let r = parse(&with_digest(input));
            let digest = has_digest.then_some(D);
            assert_eq!(
                (r.registry(), r.repository(), r.tag(), r.digest()),
                (registry, repository, tag, digest),
                "{input}"
            );
        }
    }

    #[test]
    fn display_is_the_full_canonical_form_and_parses_back_to_the_same_reference() {
        let cases: &[(&str, &str)] = &[
            ("nginx", "docker.io/library/nginx:latest"),
            ("bitnami/kubectl:1.30", "docker.io/bitnami/kubectl:1.30"),
            ("localhost:5000/a/b@DIGEST", "localhost:5000/a/b@DIGEST"),
            ("ghcr.io/x/y:1.0@DIGEST", "ghcr.io/x/y:1.0@DIGEST"),
            ("[::1]:5000/x", "[::1]:5000/x:latest"),
        ];
        for &(input, expected) in cases {
            let r = parse(&with_digest(input));
            assert_eq!(r.to_string(), with_digest(expected), "{input}");
            assert_eq!(parse(&r.to_string()), r, "{input}");
        }
    }

    #[test]
    fn spellings_of_one_image_are_equal() {
        let cases: &[(&str, &str)] = &[
            ("nginx", "docker.io/library/nginx:latest"),
            ("nginx", "index.docker.io/library/nginx"),
            ("library/nginx:latest", "registry-1.docker.io/nginx"),
            ("GHCR.IO/foo/bar:1", "ghcr.io/foo/bar:1"),
        ];
        for &(a, b) in cases {
            assert_eq!(parse(a), parse(b), "{a} vs {b}");
            assert_eq!(a.parse::<Reference>(), Reference::parse(b), "{a} via FromStr");
        }
    }

    #[test]
    fn familiar_form_drops_docker_hub_defaults_only() {
        let cases: &[(&str, &str)] = &[
            ("nginx", "nginx:latest"),
            ("docker.io/library/nginx:1.27", "nginx:1.27"),
            ("bitnami/kubectl:1.30", "bitnami/kubectl:1.30"),
            ("docker.io/library/foo/bar", "library/foo/bar:latest"),
            ("ghcr.io/foo/bar:1", "ghcr.io/foo/bar:1"),
            ("nginx@DIGEST", "nginx@DIGEST"),
            ("nginx:1.27@DIGEST", "nginx:1.27@DIGEST"),
            ("localhost:5000/a", "localhost:5000/a:latest"),
        ];
        for &(input, expected) in cases {
            assert_eq!(
                parse(&with_digest(input)).familiar(),
                with_digest(expected),
                "{input}"
            );
        }
    }

    #[test]
    fn api_host_sends_docker_hub_requests_to_its_registry_endpoint() {
        let cases: &[(&str, &str, bool)] = &[
            ("nginx", "registry-1.docker.io", true),
            ("index.docker.io/foo/bar", "registry-1.docker.io", true),
            ("ghcr.io/foo/bar", "ghcr.io", false),
            ("localhost:5000/a", "localhost:5000", false),
            ("docker.io:443/a/b", "docker.io:443", false),
        ];
        for &(input, api_host, hub) in cases {
            let r = parse(input);
            assert_eq!((r.api_host(), r.is_docker_hub()), (api_host, hub), "{input}");
        }
    }

    #[test]
    fn manifest_reference_prefers_the_digest_over_the_tag() {
        let cases: &[(&str, &str)] = &[
            ("nginx", "latest"),
            ("nginx:1.27", "1.27"),
            ("nginx@DIGEST", "DIGEST"),
            ("nginx:1.27@DIGEST", "DIGEST"),
        ];
        for &(input, expected) in cases {
            assert_eq!(
                parse(&with_digest(input)).manifest_reference(),
                with_digest(expected),
                "{input}"
            );
        }
    }

    #[test]
    fn path_in_directory_drops_only_docker_hubs_implicit_library() {
        let cases: &[(&str, &str)] = &[
            ("nginx", "nginx"),
            ("docker.io/library/nginx", "nginx"),
            ("bitnami/kubectl", "bitnami/kubectl"),
            ("ghcr.io/foo/bar", "foo/bar"),
            ("docker.io/library/foo/bar", "library/foo/bar"),
            ("ghcr.io/library/x", "library/x"),
        ];
        for &(input, expected) in cases {
            assert_eq!(parse(input).path_in_directory(), expected, "{input}");
        }
    }

    #[test]
    fn invalid_sources_are_rejected_with_a_message_quoting_them() {
        let cases: &[(&str, &str)] = &[
            ("", "invalid image reference '': empty"),
            ("Nginx", "invalid image reference 'Nginx': repository names must be lowercase"),
            ("ghcr.io/Foo/bar", "invalid image reference 'ghcr.io/Foo/bar': repository names must be lowercase"),
            ("nginx:", "invalid image reference 'nginx:': empty tag"),
            ("nginx:@DIGEST", "invalid image reference 'nginx:@DIGEST': empty tag"),
            ("nginx@", "invalid image reference 'nginx@': empty digest"),
            ("nginx:bad tag", "invalid image reference 'nginx:bad tag': whitespace is not allowed"),
            (" nginx", "invalid image reference ' nginx': whitespace is not allowed"),
            ("nginx\n", "invalid image reference 'nginx\\n': whitespace is not allowed"),
            ("a//b", "invalid image reference 'a//b': '//' is not allowed; expected one '/' between path components"),
            ("nginx/", "invalid image reference 'nginx/': trailing '/'; expected a repository name after it"),
            ("ghcr.io/", "invalid image reference 'ghcr.io/': trailing '/'; expected a repository name after it"),
            ("/nginx", "invalid image reference '/nginx': empty path component; expected a name before each '/'"),
            ("-nginx", "invalid image reference '-nginx': path component '-nginx' must start and end with a lowercase letter or digit"),
            ("nginx-", "invalid image reference 'nginx-': path component 'nginx-' must start and end with a lowercase letter or digit"),
            ("a..b", "invalid image reference 'a..b': '..' cannot join parts of 'a..b'; expected '.', '_', '__' or dashes"),
            ("a___b", "invalid image reference 'a___b': '___' cannot join parts of 'a___b'; expected '.', '_', '__' or dashes"),
            ("a.-b", "invalid image reference 'a.-b': '.-' cannot join parts of 'a.-b'; expected '.', '_', '__' or dashes"),
            ("ngi+nx", "invalid image reference 'ngi+nx': invalid character '+' in repository name; expected lowercase letters, digits, '.', '_', '-' and '/'"),
            ("nginx:-x", "invalid image reference 'nginx:-x': a tag must start with a letter, digit or '_'"),
            ("nginx:.x", "invalid image reference 'nginx:.x': a tag must start with a letter, digit or '_'"),
            ("nginx:a+b", "invalid image reference 'nginx:a+b': invalid character '+' in tag; expected letters, digits, '_', '.' and '-'"),
            (":1.0", "invalid image reference ':1.0': missing repository name"),
            ("https://ghcr.io/foo/bar", "invalid image reference 'https://ghcr.io/foo/bar': expected HOST/REPO without a URL scheme such as 'https://'"),
            ("localhost:0/a", "invalid image reference 'localhost:0/a': invalid port '0' in registry host 'localhost:0'; expected a number from 1 to 65535"),
            ("localhost:65536/a", "invalid image reference 'localhost:65536/a': invalid port '65536' in registry host 'localhost:65536'; expected a number from 1 to 65535"),
            ("localhost:+80/a", "invalid image reference 'localhost:+80/a': invalid port '+80' in registry host 'localhost:+80'; expected a number from 1 to 65535"),
            ("localhost:/a", "invalid image reference 'localhost:/a': invalid port '' in registry host 'localhost:'; expected a number from 1 to 65535"),
            ("-bad.io/a", "invalid image reference '-bad.io/a': invalid registry host '-bad.io'; expected a host name, IPv4 address or [IPv6] address, with an optional :PORT"),
            ("a..io/a", "invalid image reference 'a..io/a': invalid registry host 'a..io'; expected a host name, IPv4 address or [IPv6] address, with an optional :PORT"),
            ("my_host.io/a", "invalid image reference 'my_host.io/a': invalid registry host 'my_host.io'; expected a host name, IPv4 address or [IPv6] address, with an optional :PORT"),
            ("[::1/a", "invalid image reference '[::1/a': unclosed '[' in registry host '[::1'"),
            ("[zz]:5000/a", "invalid image reference '[zz]:5000/a': 'zz' in registry host '[zz]:5000' is not an IPv6 address"),
            ("[::1]x/a", "invalid image reference '[::1]x/a': expected ':PORT' after ']' in registry host '[::1]x'"),
            ("it's", "invalid image reference 'it\\'s': invalid character '\\'' in repository name; expected lowercase letters, digits, '.', '_', '-' and '/'"),
        ];
        for &(input, expected) in cases {
            let input = with_digest(input);
            let err = Reference::parse(&input).expect_err(&input);
            assert!(
                matches!(err, ReferenceError::InvalidReference { .. }),
                "{input}: {err:?}"
            );
            assert_eq!(err.to_string(), with_digest(expected), "{input}");
        }
    }

    fn hex(len: usize) -> String {
        "0123456789abcdef".chars().cycle().take(len).collect()
    }

    #[test]
    fn digests_may_be_sha256_sha384_or_sha512_and_reach_the_registry_as_written() {
        for (algorithm, len) in [("sha256", 64), ("sha384", 96), ("sha512", 128)] {
            let digest = format!("{algorithm}:{}", hex(len));
            let pinned = parse(&format!("ghcr.io/a/b:1@{digest}"));
            assert_eq!(pinned.digest(), Some(digest.as_str()));
            // The registry HEAD asks for exactly this; docker pulls `REGISTRY/REPO@DIGEST`.
            assert_eq!(pinned.manifest_reference(), digest);
            assert_eq!(pinned.to_string(), format!("ghcr.io/a/b:1@{digest}"));
            let built = Reference::new("ghcr.io", "a/b", Some("1"), Some(&digest)).unwrap();
            assert_eq!(built, pinned);
        }
    }

    #[test]
    fn digests_of_unknown_algorithms_or_the_wrong_length_are_refused_with_the_rule() {
        let cases: Vec<(String, &str)> = vec![
            (
                format!("sha256:{}", hex(63)),
                "expected sha256: and 64 lowercase hex digits",
            ),
            (
                format!("sha256:{}", hex(65)),
                "expected sha256: and 64 lowercase hex digits",
            ),
            (
                format!("sha256:{}", hex(64).to_uppercase()),
                "expected sha256: and 64 lowercase hex digits",
            ),
            (
                format!("sha512:{}", hex(64)),
                "expected sha512: and 128 lowercase hex digits",
            ),
            (
                format!("sha384:{}", hex(128)),
                "expected sha384: and 96 lowercase hex digits",
            ),
            (
                format!("sha256:{0}@sha256:{0}", hex(64)),
                "expected sha256: and 64 lowercase hex digits",
            ),
            (
                "sha256:zz".to_owned(),
                "expected sha256: and 64 lowercase hex digits",
            ),
            (
                format!("md5:{}", hex(32)),
                "unsupported digest algorithm 'md5'; expected sha256, sha384 or sha512",
            ),
            (
                format!("SHA256:{}", hex(64)),
                "unsupported digest algorithm 'SHA256'; expected sha256, sha384 or sha512",
            ),
            (
                format!("blake3:{}", hex(64)),
                "unsupported digest algorithm 'blake3'; expected sha256, sha384 or sha512",
            ),
            (
                "latest".to_owned(),
                "expected ALGORITHM:HEX, such as sha256: and 64 hex digits",
            ),
        ];
        for (digest, reason) in cases {
            let input = format!("nginx@{digest}");
            let expected = ReferenceError::InvalidDigest {
                input: input.clone(),
                reason: reason.to_owned(),
            };
            assert_eq!(Reference::parse(&input), Err(expected), "{input}");
        }
        assert_eq!(
            Reference::parse("x@md5:abc").unwrap_err().to_string(),
            "invalid digest in 'x@md5:abc': unsupported digest algorithm 'md5'; expected sha256, sha384 or sha512"
        );
    }

    /// Docker's own test vectors (github.com/distribution/reference: reference_test.go,
    /// normalize_test.go, regexp_test.go), read as `docker pull` reads them (normalised),
    /// with what each means in ecrcp's canonical spelling. Placeholders: SHA256 (sha256 of
    /// 64 f), SHA512 (sha512 of 128 f), BE (a real sha256 digest), ID (an image ID), DEEP
    /// (`a/` 127 times, then `a`), A255 and A256 (that many `a`).
    const DOCKER_ACCEPTS: &[(&str, &str)] = &[
        ("test_com", "docker.io/library/test_com:latest"),
        ("test.com:tag", "docker.io/library/test.com:tag"),
        ("test.com:5000", "docker.io/library/test.com:5000"),
        ("test.com/repo:tag", "test.com/repo:tag"),
        ("test:5000/repo", "test:5000/repo:latest"),
        ("test:5000/repo:tag@SHA256", "test:5000/repo:tag@SHA256"),
        ("test:5000/repo@SHA256", "test:5000/repo@SHA256"),
        ("lowercase:Uppercase", "docker.io/library/lowercase:Uppercase"),
        (
            "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
            "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
        ),
        (
            "b.gcr.io/test.example.com/my-app:test.example.com",
            "b.gcr.io/test.example.com/my-app:test.example.com",
        ),
        (
            "xn--n3h.com/myimage:xn--n3h.com",
            "xn--n3h.com/myimage:xn--n3h.com",
        ),
        (
            "xn--7o8h.com/myimage:xn--7o8h.com@SHA256",
            "xn--7o8h.com/myimage:xn--7o8h.com@SHA256",
        ),
        (
            "xn--7o8h.com/myimage:xn--7o8h.com@SHA512",
            "xn--7o8h.com/myimage:xn--7o8h.com@SHA512",
        ),
        ("foo_bar.com:8080", "docker.io/library/foo_bar.com:8080"),
        ("foo/foo_bar.com:8080", "docker.io/foo/foo_bar.com:8080"),
        ("192.168.1.1", "docker.io/library/192.168.1.1:latest"),
        ("192.168.1.1:5000", "docker.io/library/192.168.1.1:5000"),
        ("192.168.1.1/repo", "192.168.1.1/repo:latest"),
        ("192.168.1.1:5000/repo:5050", "192.168.1.1:5000/repo:5050"),
        ("[2001:db8::1]/repo", "[2001:db8::1]/repo:latest"),
        (
            "[2001:db8:1:2:3:4:5:6]/repo:tag",
            "[2001:db8:1:2:3:4:5:6]/repo:tag",
        ),
        (
            "[2001:db8::1]:5000/repo:tag@SHA256",
            "[2001:db8::1]:5000/repo:tag@SHA256",
        ),
        ("[2001:db8::]:5000/repo", "[2001:db8::]:5000/repo:latest"),
        ("[::1]:5000/repo", "[::1]:5000/repo:latest"),
        ("example.com/A255:tag", "example.com/A255:tag"),
        (
            "DEEP:tag-puts-this-over-max",
            "docker.io/DEEP:tag-puts-this-over-max",
        ),
        ("docker/docker", "docker.io/docker/docker:latest"),
        ("library/debian", "docker.io/library/debian:latest"),
        ("debian", "docker.io/library/debian:latest"),
        ("docker.io/debian", "docker.io/library/debian:latest"),
        ("index.docker.io/docker/docker", "docker.io/docker/docker:latest"),
        ("index.docker.io/debian", "docker.io/library/debian:latest"),
        (
            "127.0.0.1:5000/library/debian",
            "127.0.0.1:5000/library/debian:latest",
        ),
        ("127.0.0.1:5000/debian", "127.0.0.1:5000/debian:latest"),
        ("192.168.0.1:80", "docker.io/library/192.168.0.1:80"),
        ("192.168.0.1:8/debian", "192.168.0.1:8/debian:latest"),
        (
            "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
            "[fc00:1:2:3:4:5:6:7]:5000/library/debian:latest",
        ),
        (
            "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
            "docker.io/library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev:latest",
        ),
        ("docker.io/ID", "docker.io/library/ID:latest"),
        ("docker---rules/docker", "docker.io/docker---rules/docker:latest"),
        ("d/docker", "docker.io/d/docker:latest"),
        ("jess/t", "docker.io/jess/t:latest"),
        ("dock__er/docker", "docker.io/dock__er/docker:latest"),
        ("library/foo/bar", "docker.io/library/foo/bar:latest"),
        ("store/foo/bar", "docker.io/store/foo/bar:latest"),
        (
            "example.com:8000/privatebasee",
            "example.com:8000/privatebasee:latest",
        ),
        (
            "registry.io/foo/project--id.module--name.ver---sion--name",
            "registry.io/foo/project--id.module--name.ver---sion--name:latest",
        ),
        ("localhost:8080/name@BE", "localhost:8080/name@BE"),
        ("localhost@BE", "docker.io/library/localhost@BE"),
        ("busybox:latest@BE", "docker.io/library/busybox:latest@BE"),
        ("dbcc1", "docker.io/library/dbcc1:latest"),
    ];

    /// What docker refuses, from the same tables; placeholders as above, plus F34 and F64
    /// (that many `f`).
    const DOCKER_REFUSES: &[&str] = &[
        "",
        ":justtag",
        "@SHA256",
        "repo@sha256:F34",
        "validname@invaliddigest:F64",
        "Uppercase:tag",
        "test:5000/Uppercase/lowercase:tag",
        "domain/A256:tag",
        "aa/asdf$$^/aa",
        "[2001:db8::1]",
        "[2001:db8::1]:5000",
        "[2001:db8::1]:tag",
        "[fe80::1%eth0]:5000/repo",
        "[fe80::1%@invalidzone]:5000/repo",
        "https://github.com/docker/docker",
        "docker/Docker",
        "-docker",
        "-docker/docker",
        "-docker.io/docker/docker",
        "docker///docker",
        "docker.io/docker/Docker",
        "docker.io/docker///docker",
        "[fc00::1]",
        "[fc00::1]:5000",
        "fc00::1:5000/debian",
        "[2001:db8:3:4::192.0.2.33]:5000/debian",
        "ID",
        "docker-/docker",
        "-docker-/docker",
        "____/____",
        "_docker/_docker",
        "dock..er/docker",
        "dock_.er/docker",
        "dock-.er/docker",
        "docker/",
        "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255/docker",
        "a^a",
        "foo.com/",
        "foo.com:http/bar",
        "a-/a/a/a",
        "foo/bar-",
        "foo/-bar",
        "foo_bar.com:8080/app",
        "example.com/__underscore/myimage",
        "example.com/..dots/myimage",
        "example.com/.dots/myimage",
        "docker./docker",
        ".docker/docker",
        "do__cker:8080/docker",
        "Foo/FarB",
        "registry.com:8080/myapp@sha256:badbadbadbad",
        "registry.com:8080/myapp:invalid~tag",
        "bad_hostname.com:8080/myapp:tag",
        "localhost:http/name@BE",
        "registry.com:8080/myapp@bad",
        "registry.com:8080/myapp@2bad",
    ];

    fn fill_vector(s: &str) -> String {
        let f = |n: usize| "f".repeat(n);
        let a = |n: usize| "a".repeat(n);
        s.replace("SHA256", &format!("sha256:{}", f(64)))
            .replace("SHA512", &format!("sha512:{}", f(128)))
            .replace(
                "BE",
                "sha256:be178c0543eb17f5f3043021c9e5fcf30285e557a4fc309cce97ff9ca6182912",
            )
            .replace(
                "ID",
                "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
            )
            .replace("DEEP", &format!("{}a", "a/".repeat(127)))
            .replace("A255", &a(255))
            .replace("A256", &a(256))
            .replace("F34", &f(34))
            .replace("F64", &f(64))
    }

    #[test]
    fn what_docker_accepts_parses_to_the_image_docker_would_pull() {
        for &(input, expected) in DOCKER_ACCEPTS {
            let input = fill_vector(input);
            assert_eq!(parse(&input).to_string(), fill_vector(expected), "{input}");
        }
    }

    #[test]
    fn what_docker_refuses_is_refused() {
        for input in DOCKER_REFUSES {
            let input = fill_vector(input);
            assert!(Reference::parse(&input).is_err(), "{input} should be refused");
        }
    }

    /// Where ecrcp knowingly differs from docker's reference library; docs/usage.md lists why.
    #[test]
    fn deviations_from_docker_are_the_listed_ones() {
        // Docker accepts these; ecrcp refuses them.
        for input in [
            "192.168.1.1:75050/repo",
            "localhost:0/repo",
            "[fd00123123123]:5000/repo",
            "[1:2:3]/repo",
        ] {
            assert!(Reference::parse(input).is_err(), "{input}");
        }
        // Docker keeps these hosts apart; ecrcp folds them into one spelling.
        for (input, expected) in [
            ("Docker/docker", "DOCKER/docker:latest"),
            ("Asdf.com/foo/bar", "asdf.com/foo/bar:latest"),
            ("registry-1.docker.io/foo", "docker.io/library/foo:latest"),
            ("INDEX.DOCKER.IO/foo", "docker.io/library/foo:latest"),
        ] {
            assert_eq!(parse(input).to_string(), expected, "{input}");
        }
    }

    #[test]
    fn tags_may_be_128_characters_but_not_129() {
        let ok = format!("nginx:{}", "a".repeat(128));
        assert_eq!(parse(&ok).tag().map(str::len), Some(128));
        let bad = format!("nginx:{}", "a".repeat(129));
        assert_eq!(
            Reference::parse(&bad).unwrap_err().to_string(),
            format!("invalid image reference '{bad}': tag is 129 characters long; at most 128 allowed")
        );
    }

    #[test]
    fn the_255_character_limit_counts_the_repository_path_with_library_and_without_the_host() {
        let a = |n: usize| "a".repeat(n);
        // Docker Hub's implicit `library/` is 8 characters and counts, however it is spelled.
        let fits = [
            format!("ghcr.io/{}", a(255)),
            format!("{}.example.com:5000/{}", a(60), a(255)),
            a(247),
            format!("docker.io/library/{}", a(247)),
            format!("{}/{}", a(100), a(154)),
        ];
        for input in &fits {
            assert!(Reference::parse(input).is_ok(), "{input}");
        }
        let too_long = [
            (format!("ghcr.io/{}", a(256)), 256),
            (a(248), 256),
            (format!("docker.io/{}", a(248)), 256),
            (format!("{}/{}", a(100), a(155)), 256),
        ];
        for (input, len) in &too_long {
            assert_eq!(
                Reference::parse(input).unwrap_err().to_string(),
                format!(
                    "invalid image reference '{input}': repository path is {len} characters long; \
                     at most 255 allowed (Docker Hub's implicit 'library/' counts, the registry \
                     host does not)"
                )
            );
        }
    }

    #[test]
    fn an_image_id_is_refused_where_a_name_belongs_as_docker_does() {
        let id = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a";
        let expected = "64 hex digits name an image ID, not a repository; give REPO[:TAG]";
        assert_eq!(
            Reference::parse(id).unwrap_err().to_string(),
            format!("invalid image reference '{id}': {expected}")
        );
        assert_eq!(
            Destination::parse(id).unwrap_err().to_string(),
            format!("invalid destination '{id}': {expected}")
        );
        // With a host, a tag, or one digit fewer it is a name again, as in docker.
        for name in [format!("docker.io/{id}"), format!("{id}:1"), id[..63].to_owned()] {
            assert!(Reference::parse(&name).is_ok(), "{name}");
        }
    }

    #[test]
    fn new_validates_and_normalises_like_parse() {
        type Args = (
            &'static str,
            &'static str,
            Option<&'static str>,
            Option<&'static str>,
        );
        let cases: &[(Args, &str)] = &[
            (("docker.io", "nginx", None, None), "nginx"),
            (("docker.io", "library/nginx", Some("1.27"), None), "nginx:1.27"),
            (
                ("index.docker.io", "bitnami/kubectl", Some("1.30"), None),
                "bitnami/kubectl:1.30",
            ),
            (
                ("GHCR.io", "foo/bar", Some("1"), Some(D)),
                "ghcr.io/foo/bar:1@DIGEST",
            ),
            (
                ("localhost:5000", "a/b", None, Some(D)),
                "localhost:5000/a/b@DIGEST",
            ),
            (("localhost", "foo", None, None), "localhost/foo"),
            (
                (ECR, "mirror/nginx", Some("latest"), None),
                "$ECR/mirror/nginx:latest",
            ),
        ];
        for &((registry, repository, tag, digest), expected) in cases {
            let built = Reference::new(registry, repository, tag, digest)
                .unwrap_or_else(|e| panic!("{registry} {repository}: {e}"));
            assert_eq!(built, parse(&with_host(&with_digest(expected))), "{expected}");
        }
    }

    #[test]
    fn new_rejects_invalid_parts() {
        type Args = (
            &'static str,
            &'static str,
            Option<&'static str>,
            Option<&'static str>,
        );
        let cases: &[(Args, &str)] = &[
            (("", "nginx", None, None), "invalid image reference '/nginx': empty registry host"),
            (("ghcr.io", "Foo", None, None), "invalid image reference 'ghcr.io/Foo': repository names must be lowercase"),
            (("ghcr.io", "", None, None), "invalid image reference 'ghcr.io/': missing repository name"),
            (("ghcr.io", "a//b", None, None), "invalid image reference 'ghcr.io/a//b': empty path component; expected a name before each '/'"),
            (("ghcr.io", "a", Some(""), None), "invalid image reference 'ghcr.io/a:': empty tag"),
            (("ghcr.io", "a", None, Some("sha256:1")), "invalid digest in 'ghcr.io/a@sha256:1': expected sha256: and 64 lowercase hex digits"),
            (("bad host", "a", None, None), "invalid image reference 'bad host/a': invalid registry host 'bad host'; expected a host name, IPv4 address or [IPv6] address, with an optional :PORT"),
        ];
        for &((registry, repository, tag, digest), expected) in cases {
            let err = Reference::new(registry, repository, tag, digest).expect_err(expected);
            assert_eq!(err.to_string(), expected);
        }
    }

    #[test]
    fn with_tag_replaces_the_tag_and_drops_the_digest() {
        let cases: &[(&str, &str, &str)] = &[
            ("nginx", "1.27", "docker.io/library/nginx:1.27"),
            ("nginx@DIGEST", "v2", "docker.io/library/nginx:v2"),
            ("ghcr.io/foo/bar:1@DIGEST", "2", "ghcr.io/foo/bar:2"),
        ];
        for &(input, tag, expected) in cases {
            let retagged = parse(&with_digest(input)).with_tag(tag).expect(input);
            assert_eq!(retagged.to_string(), expected, "{input}");
            assert_eq!(retagged.digest(), None, "{input}");
        }
    }

    #[test]
    fn with_tag_rejects_invalid_tags() {
        let cases: &[(&str, &str)] = &[
            ("", "invalid image reference 'docker.io/library/nginx:': empty tag"),
            ("bad tag", "invalid image reference 'docker.io/library/nginx:bad tag': invalid character ' ' in tag; expected letters, digits, '_', '.' and '-'"),
            ("-x", "invalid image reference 'docker.io/library/nginx:-x': a tag must start with a letter, digit or '_'"),
        ];
        for &(tag, expected) in cases {
            assert_eq!(parse("nginx").with_tag(tag).unwrap_err().to_string(), expected);
        }
    }

    #[test]
    fn destinations_parse_into_exact_targets_or_directories() {
        let exact = |registry: Option<&str>, repository: &str, tag: Option<&str>| Destination::Exact {
            registry: registry.map(str::to_owned),
            repository: repository.to_owned(),
            tag: tag.map(str::to_owned),
        };
        let dir = |registry: Option<&str>, prefix: &str| Destination::Directory {
            registry: registry.map(str::to_owned),
            prefix: prefix.to_owned(),
        };
        let cases: &[(&str, Destination)] = &[
            ("mirror/nginx:latest", exact(None, "mirror/nginx", Some("latest"))),
            ("nginx", exact(None, "nginx", None)),
            ("nginx:5000", exact(None, "nginx", Some("5000"))),
            ("mirror/", dir(None, "mirror")),
            ("a/b/", dir(None, "a/b")),
            ("$ECR/mirror/", dir(Some(ECR), "mirror")),
            ("$ECR/a/b/", dir(Some(ECR), "a/b")),
            ("$ECR", dir(Some(ECR), "")),
            ("$ECR/", dir(Some(ECR), "")),
            (
                "123456789012.DKR.ECR.us-east-1.amazonaws.com/",
                dir(Some(ECR), ""),
            ),
            ("localhost:5000", dir(Some("localhost:5000"), "")),
            ("localhost", dir(Some("localhost"), "")),
            ("localhost/", dir(Some("localhost"), "")),
            ("[::1]:5000", dir(Some("[::1]:5000"), "")),
            ("$ECR/mirror/nginx", exact(Some(ECR), "mirror/nginx", None)),
            (
                "$ECR/mirror/nginx:1.27",
                exact(Some(ECR), "mirror/nginx", Some("1.27")),
            ),
            (
                "localhost:5000/x:y",
                exact(Some("localhost:5000"), "x", Some("y")),
            ),
            // Docker Hub written out keeps its rules.
            ("docker.io/nginx", exact(Some("docker.io"), "library/nginx", None)),
            (
                "index.docker.io/me/app:1",
                exact(Some("docker.io"), "me/app", Some("1")),
            ),
            ("docker.io/", dir(Some("docker.io"), "")),
            // A '.' marks a host even without a '/', so a bare ECR host works.
            ("registry.local", dir(Some("registry.local"), "")),
            // Before a '/', a ':' marks a host even without a '.', as in Docker.
            ("registry:5000/", dir(Some("registry:5000"), "")),
            // Without a '/', only what cannot be an image in the own registry is a host:
            // a '.' (or localhost) with no port or a numeric one, or an [IPv6] address.
            ("nginx:1.27", exact(None, "nginx", Some("1.27"))),
            ("nginx:latest", exact(None, "nginx", Some("latest"))),
            ("my.app:1.27", exact(None, "my.app", Some("1.27"))),
            ("ghcr.io:latest", exact(None, "ghcr.io", Some("latest"))),
            ("localhost:latest", exact(None, "localhost", Some("latest"))),
            ("registry.example.com", dir(Some("registry.example.com"), "")),
            (
                "registry.example.com:5000",
                dir(Some("registry.example.com:5000"), ""),
            ),
            ("192.168.1.1:5000", dir(Some("192.168.1.1:5000"), "")),
            ("192.168.1.1", dir(Some("192.168.1.1"), "")),
        ];
        for (input, expected) in cases {
            let input = with_host(input);
            assert_eq!(Destination::parse(&input).as_ref(), Ok(expected), "{input}");
            assert_eq!(
                expected.is_directory(),
                matches!(expected, Destination::Directory { .. })
            );
        }
    }

    #[test]
    fn invalid_destinations_are_rejected_with_a_message_quoting_them() {
        let cases: &[(&str, &str)] = &[
            ("", "invalid destination '': empty"),
            ("/", "invalid destination '/': expected a registry host or repository prefix before '/'"),
            ("$ECR/x@DIGEST", "invalid destination '$ECR/x@DIGEST': a destination cannot name a digest; give a tag"),
            ("x@", "invalid destination 'x@': a destination cannot name a digest; give a tag"),
            ("mirror//", "invalid destination 'mirror//': '//' is not allowed; expected one '/' between path components"),
            ("Mirror", "invalid destination 'Mirror': repository names must be lowercase"),
            ("mirror/Nginx", "invalid destination 'mirror/Nginx': repository names must be lowercase"),
            ("mirror/nginx:", "invalid destination 'mirror/nginx:': empty tag"),
            ("mirror/ nginx", "invalid destination 'mirror/ nginx': whitespace is not allowed"),
            ("$ECR/m:1/", "invalid destination '$ECR/m:1/': a directory destination (ending in '/') cannot have a tag; each image keeps its own"),
            ("localhost:99999", "invalid destination 'localhost:99999': invalid port '99999' in registry host 'localhost:99999'; expected a number from 1 to 65535"),
            ("registry.example.com:99999", "invalid destination 'registry.example.com:99999': invalid port '99999' in registry host 'registry.example.com:99999'; expected a number from 1 to 65535"),
            ("nginx:1.27:x", "invalid destination 'nginx:1.27:x': invalid character ':' in repository name; expected lowercase letters, digits, '.', '_', '-' and '/'"),
            ("$ECR/-x/", "invalid destination '$ECR/-x/': path component '-x' must start and end with a lowercase letter or digit"),
        ];
        for &(input, expected) in cases {
            let input = with_host(&with_digest(input));
            let err = Destination::parse(&input).expect_err(&input);
            assert_eq!(err.to_string(), with_host(&with_digest(expected)), "{input}");
        }
    }

    #[test]
    fn directory_targets_are_directories_with_or_without_a_trailing_slash() {
        let cases: &[(&str, Option<&str>, &str)] = &[
            ("mirror", None, "mirror"),
            ("mirror/", None, "mirror"),
            ("a/b", None, "a/b"),
            ("$ECR", Some(ECR), ""),
            ("$ECR/", Some(ECR), ""),
            ("$ECR/mirror", Some(ECR), "mirror"),
            ("localhost:5000/team/", Some("localhost:5000"), "team"),
            ("registry:5000", Some("registry:5000"), ""),
        ];
        for &(input, registry, prefix) in cases {
            let input = with_host(input);
            let expected = Destination::Directory {
                registry: registry.map(str::to_owned),
                prefix: prefix.to_owned(),
            };
            assert_eq!(Destination::directory(&input), Ok(expected), "{input}");
        }
        for bad in ["", "/", "$ECR/m:1", "x@y", "a//b", "-x"] {
            let bad = with_host(bad);
            assert!(Destination::directory(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn destination_display_is_normalised_and_names_the_own_registry() {
        let cases: &[(&str, &str)] = &[
            ("mirror/nginx:latest", "<your ECR registry>/mirror/nginx:latest"),
            ("mirror/", "<your ECR registry>/mirror/"),
            ("$ECR", "$ECR/"),
            ("$ECR/mirror/", "$ECR/mirror/"),
            ("$ECR/mirror/nginx", "$ECR/mirror/nginx"),
            ("LOCALHOST:5000/x:1", "localhost:5000/x:1"),
            ("docker.io/nginx", "docker.io/library/nginx"),
        ];
        for &(input, expected) in cases {
            let parsed = Destination::parse(&with_host(input)).expect(input);
            assert_eq!(parsed.to_string(), with_host(expected), "{input}");
            assert_eq!(parsed.registry().is_none(), expected.starts_with('<'), "{input}");
        }
    }

    #[test]
    fn resolve_maps_each_source_to_its_final_reference() {
        // (destination, source, own registry, expected)
        let cases: &[(&str, &str, Option<&str>, &str)] = &[
            ("$ECR/mirror/", "nginx", None, "$ECR/mirror/nginx:latest"),
            (
                "$ECR/mirror/",
                "bitnami/kubectl:1.30",
                None,
                "$ECR/mirror/bitnami/kubectl:1.30",
            ),
            ("$ECR/mirror/", "ghcr.io/foo/bar:1", None, "$ECR/mirror/foo/bar:1"),
            (
                "$ECR/mirror/",
                "docker.io/library/foo/bar",
                None,
                "$ECR/mirror/library/foo/bar:latest",
            ),
            (
                "$ECR/mirror/",
                "nginx:1.27@DIGEST",
                None,
                "$ECR/mirror/nginx:1.27",
            ),
            ("$ECR", "nginx:1.27", None, "$ECR/nginx:1.27"),
            ("nginx:1.27", "nginx:1.27", Some(ECR), "$ECR/nginx:1.27"),
            ("$ECR", "localhost:5000/a/b", None, "$ECR/a/b:latest"),
            ("$ECR/mirror/nginx", "nginx:1.27", None, "$ECR/mirror/nginx:1.27"),
            (
                "$ECR/mirror/nginx:stable",
                "nginx:1.27",
                None,
                "$ECR/mirror/nginx:stable",
            ),
            (
                "$ECR/mirror/nginx:stable",
                "nginx@DIGEST",
                None,
                "$ECR/mirror/nginx:stable",
            ),
            // A written host wins over the caller's own registry.
            (
                "$ECR/mirror/",
                "nginx",
                Some("localhost:5000"),
                "$ECR/mirror/nginx:latest",
            ),
            (
                "mirror/nginx:latest",
                "nginx:1.27",
                Some(ECR),
                "$ECR/mirror/nginx:latest",
            ),
            ("mirror/", "ghcr.io/foo/bar:1", Some(ECR), "$ECR/mirror/foo/bar:1"),
            (
                "nginx",
                "nginx:1.27",
                Some("LOCALHOST:5000"),
                "localhost:5000/nginx:1.27",
            ),
            // Copying into Docker Hub puts single names back under library/.
            ("docker.io/", "ghcr.io/x:1", None, "docker.io/library/x:1"),
        ];
        for &(dest, source, own, expected) in cases {
            let dest = Destination::parse(&with_host(dest)).expect(dest);
            let source = parse(&with_digest(source));
            let resolved = dest.resolve(&source, own).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(resolved.to_string(), with_host(expected), "{dest} <- {source}");
        }
    }

    #[test]
    fn resolve_refuses_what_has_no_tag_or_no_registry() {
        let cases: &[(&str, &str, Option<&str>, &str)] = &[
            (
                "$ECR/mirror/",
                "nginx@DIGEST",
                None,
                "cannot copy 'nginx@DIGEST' to '$ECR/mirror/': it names only a digest, so there is \
                 no tag to give the copy; give DEST with a tag, as REPO:TAG",
            ),
            (
                "$ECR/mirror/nginx",
                "ghcr.io/a/b@DIGEST",
                None,
                "cannot copy 'ghcr.io/a/b@DIGEST' to '$ECR/mirror/nginx': it names only a digest, \
                 so there is no tag to give the copy; give DEST with a tag, as REPO:TAG",
            ),
            (
                "mirror/nginx:latest",
                "nginx",
                None,
                "cannot resolve '<your ECR registry>/mirror/nginx:latest': it names no registry \
                 host and your own ECR registry is not known; give DEST with a host, as \
                 HOST/REPO[:TAG] or HOST/PREFIX/",
            ),
            (
                "mirror/",
                "nginx",
                Some(""),
                "invalid image reference '/mirror/nginx:latest': empty registry host",
            ),
        ];
        for &(dest, source, own, expected) in cases {
            let dest = Destination::parse(&with_host(dest)).expect(dest);
            let source = parse(&with_digest(source));
            let err = dest.resolve(&source, own).expect_err(expected);
            assert_eq!(err.to_string(), with_host(&with_digest(expected)));
        }
    }

    #[test]
    fn resolving_into_a_directory_still_enforces_the_name_limit() {
        let dest = Destination::parse(&format!("ghcr.io/{}/", "a".repeat(200))).unwrap();
        let source = parse(&format!("ghcr.io/{}", "b".repeat(100)));
        let err = dest.resolve(&source, None).unwrap_err();
        assert!(err.to_string().contains("at most 255 allowed"), "{err}");
    }

    #[test]
    fn ecr_repository_names_follow_aws_s_pattern() {
        let a = |n: usize| "a".repeat(n);
        let long = format!("{}/{}", a(128), a(127));
        let too_long = format!("{}/{}", a(128), a(128));
        for name in ["ab", "a/b", "mirror/nginx", "a.b_c-d/e1", "0x/9", long.as_str()] {
            assert_eq!(check_ecr_repository(name), Ok(()), "{name}");
        }
        let cases: &[(&str, &str)] = &[
            ("a", "it is 1 characters long; ECR needs 2 to 256"),
            (&too_long, "it is 257 characters long; ECR needs 2 to 256"),
            (
                "a__b",
                "'__' in 'a__b' is not allowed; ECR joins letters and digits with a single '.', '_' or '-'",
            ),
            (
                "m/a--b",
                "'--' in 'a--b' is not allowed; ECR joins letters and digits with a single '.', '_' or '-'",
            ),
            (
                "a._b",
                "'._' in 'a._b' is not allowed; ECR joins letters and digits with a single '.', '_' or '-'",
            ),
            (
                "Ab",
                "'A' in 'Ab' is not allowed; ECR joins letters and digits with a single '.', '_' or '-'",
            ),
            (
                "-ab",
                "path component '-ab' must start and end with a lowercase letter or digit",
            ),
            (
                "ab/",
                "path component '' must start and end with a lowercase letter or digit",
            ),
        ];
        for &(name, rule) in cases {
            assert_eq!(check_ecr_repository(name), Err(rule.to_owned()), "{name}");
        }
    }

    #[test]
    fn ecr_hosts_are_recognised_in_every_partition_and_endpoint_form() {
        // (input, Some((account, region, fips, host)))
        type Ecr = Option<(&'static str, &'static str, bool, &'static str)>;
        let cases: &[(&str, Ecr)] = &[
            (
                "123456789012.dkr.ecr.us-east-1.amazonaws.com",
                Some((
                    "123456789012",
                    "us-east-1",
                    false,
                    "123456789012.dkr.ecr.us-east-1.amazonaws.com",
                )),
            ),
            (
                "123456789012.DKR.ECR.US-EAST-1.AMAZONAWS.COM",
                Some((
                    "123456789012",
                    "us-east-1",
                    false,
                    "123456789012.dkr.ecr.us-east-1.amazonaws.com",
                )),
            ),
            (
                "123456789012.dkr.ecr.us-east-1.amazonaws.com:443",
                Some((
                    "123456789012",
                    "us-east-1",
                    false,
                    "123456789012.dkr.ecr.us-east-1.amazonaws.com",
                )),
            ),
            (
                "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
                Some((
                    "123456789012",
                    "cn-north-1",
                    false,
                    "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
                )),
            ),
            (
                "123456789012.dkr.ecr.us-gov-west-1.amazonaws.com",
                Some((
                    "123456789012",
                    "us-gov-west-1",
                    false,
                    "123456789012.dkr.ecr.us-gov-west-1.amazonaws.com",
                )),
            ),
            (
                "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com",
                Some((
                    "123456789012",
                    "us-east-1",
                    true,
                    "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com",
                )),
            ),
            (
                "123456789012.dkr-ecr.eu-west-1.on.aws",
                Some((
                    "123456789012",
                    "eu-west-1",
                    false,
                    "123456789012.dkr-ecr.eu-west-1.on.aws",
                )),
            ),
            (
                "123456789012.dkr-ecr-fips.us-west-2.on.aws",
                Some((
                    "123456789012",
                    "us-west-2",
                    true,
                    "123456789012.dkr-ecr-fips.us-west-2.on.aws",
                )),
            ),
            ("123456789012.dkr.ecr.us-east-1.amazonaws.com:5000", None),
            ("12345678901.dkr.ecr.us-east-1.amazonaws.com", None),
            ("1234567890123.dkr.ecr.us-east-1.amazonaws.com", None),
            ("12345678901a.dkr.ecr.us-east-1.amazonaws.com", None),
            ("123456789012.dkr.ecr.us-east.amazonaws.com", None),
            ("123456789012.dkr.ecr.useast1.amazonaws.com", None),
            ("123456789012.dkr.ecr..amazonaws.com", None),
            ("123456789012.dkr.ecr.us-east-1.amazonaws.com.", None),
            ("123456789012.dkr.ecr.us-east-1.amazonaws.org", None),
            ("123456789012.dkr-ecr.us-east-1.amazonaws.com", None),
            ("123456789012.dkr.ecr.us-east-1.on.aws", None),
            ("public.ecr.aws", None),
            ("ghcr.io", None),
            ("", None),
        ];
        for &(input, expected) in cases {
            let expected = expected.map(|(account, region, fips, host)| EcrHost {
                account: account.to_owned(),
                region: region.to_owned(),
                fips,
                host: host.to_owned(),
            });
            assert_eq!(EcrHost::parse(input), expected, "{input}");
        }
    }
}
