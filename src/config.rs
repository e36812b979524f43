//! The sync config, `/etc/ecrcp/images.toml`: its schema, `[defaults]` merged into each
//! `[[image]]`, and validation into copy jobs. `load` reads the file; everything else is
//! pure. Every error names the file, line and column and says what is expected.

mod destinations;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::engine::kind::{EngineError, EngineKind};
use crate::plan::{
    check_destinations, AwsOptions, CopyJob, DestinationError, JobSettings, DEFAULT_TRANSFERS,
};
use crate::reference::{Destination, Reference};
use crate::settings::{self, EncryptionType, RepositoryInput};
use crate::tags::{RuleEntry, TagRule};

use self::destinations::RawDestinations;

/// Where the service looks by default.
pub const DEFAULT_PATH: &str = "/etc/ecrcp/images.toml";

/// How many copies run at once unless the config says otherwise.
pub const DEFAULT_JOBS: usize = 4;
/// How many Docker Hub pulls a sync leaves unspent unless the config says otherwise, so
/// that the fleet pulling through the same address still gets some.
pub const DEFAULT_RESERVE: u64 = 10;

/// A config, validated: every copy it asks for, and how to run them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConfig {
    pub jobs: Vec<CopyJob>,
    /// The `[[image]]` entries that follow tags by a rule: jobs once the tags are listed.
    pub rules: Vec<RuleEntry>,
    /// How many copies run at once.
    pub concurrency: usize,
    /// Docker Hub pulls to leave unspent.
    pub reserve_pulls: u64,
    /// Blobs the registry engine moves at once.
    pub transfers: usize,
    /// Where each run writes its metrics in Prometheus text (`[sync] metrics_file`), relative
    /// paths from the config's directory.
    pub metrics_file: Option<PathBuf>,
    /// API quotas the account has raised (`[sync] api_quotas`): ECR action to requests a second.
    pub api_quotas: std::collections::BTreeMap<String, u32>,
}

impl SyncConfig {
    /// Copies every image with `engine` (`ecrcp sync --engine`), refusing settings it cannot
    /// honour.
    pub fn use_engine(&mut self, engine: EngineKind) -> Result<(), EngineError> {
        let templates = self.rules.iter_mut().flat_map(|rule| &mut rule.templates);
        for job in self.jobs.iter_mut().chain(templates) {
            job.settings.engine = engine;
            engine.check(&job.settings)?;
        }
        Ok(())
    }
}

/// A config that cannot be used; nothing is copied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {message}", position(*line, *column))]
pub struct ConfigError {
    pub file: String,
    /// 1-based; 0 when the error is about the whole file (it cannot be read).
    pub line: usize,
    pub column: usize,
    pub message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    version: Option<Spanned<i64>>,
    sync: Option<RawSync>,
    defaults: Option<Spanned<RawEntry>>,
    #[serde(default)]
    image: Vec<Spanned<RawEntry>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSync {
    jobs: Option<Spanned<i64>>,
    reserve_pulls: Option<Spanned<i64>>,
    transfers: Option<Spanned<i64>>,
    metrics_file: Option<Spanned<String>>,
    api_quotas: Option<Spanned<std::collections::BTreeMap<String, i64>>>,
}

/// `platform = "linux/amd64"` or, for the registry engine, `platform = ["linux/amd64", "linux/arm64"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum RawPlatforms {
    One(String),
    Several(Vec<String>),
}

/// `[defaults]` and each `[[image]]` share one shape; only images have a source and tags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    source: Option<Spanned<String>>,
    tags: Option<Spanned<Vec<String>>>,
    /// One destination, or a list: the source is read once for all of them.
    destination: Option<Spanned<RawDestinations>>,
    region: Option<String>,
    profile: Option<String>,
    platform: Option<Spanned<RawPlatforms>>,
    engine: Option<EngineKind>,
    referrers: Option<bool>,
    scan_on_push: Option<bool>,
    immutable_tags: Option<bool>,
    encryption: Option<EncryptionType>,
    kms_key: Option<Spanned<String>>,
    lifecycle_policy: Option<Spanned<String>>,
    repository_tags: Option<BTreeMap<String, String>>,
    tag_include: Option<Spanned<String>>,
    tag_exclude: Option<Spanned<String>>,
    tag_semver: Option<Spanned<String>>,
    tag_newest: Option<Spanned<i64>>,
    tag_prereleases: Option<bool>,
}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<SyncConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError {
        file: path.display().to_string(),
        line: 0,
        column: 0,
        message: format!(
            "cannot read the config: {error}{}",
            if error.kind() == std::io::ErrorKind::NotFound {
                " (start from /usr/share/doc/ecrcp/examples/images.toml, or pass --config)"
            } else {
                ""
            }
        ),
    })?;
    parse(&text, path)
}

/// Validates config text; `path` names it in errors and anchors relative lifecycle policy
/// paths.
pub fn parse(text: &str, path: &Path) -> Result<SyncConfig, ConfigError> {
    let error = |span: Option<Range<usize>>, message: String| {
        let (line, column) = span.map_or((1, 1), |span| line_and_column(text, span.start));
        ConfigError {
            file: path.display().to_string(),
            line,
            column,
            message,
        }
    };
    let raw: RawConfig = toml::from_str(text).map_err(|e| error(e.span(), e.message().trim().to_owned()))?;
    match &raw.version {
        None => return Err(error(None, "missing `version = 1` at the top".into())),
        Some(version) if *version.get_ref() != 1 => {
            return Err(error(
                Some(version.span()),
                format!(
                    "unsupported version {}: this ecrcp reads version 1",
                    version.get_ref()
                ),
            ))
        }
        Some(_) => {}
    }
    let (concurrency, reserve_pulls, transfers) =
        sync_settings(raw.sync.as_ref()).map_err(|(span, m)| error(Some(span), m))?;
    let defaults = raw.defaults.as_ref().map(Spanned::get_ref);
    if let Some(defaults) = &raw.defaults {
        if let Some(key) = [
            ("source", defaults.get_ref().source.is_some()),
            ("tags", defaults.get_ref().tags.is_some()),
            ("tag_include", defaults.get_ref().tag_include.is_some()),
            ("tag_semver", defaults.get_ref().tag_semver.is_some()),
            ("tag_newest", defaults.get_ref().tag_newest.is_some()),
        ]
        .iter()
        .find_map(|(key, set)| set.then_some(key))
        {
            return Err(error(
                Some(defaults.span()),
                format!("`{key}` belongs in an [[image]], not in [defaults]"),
            ));
        }
    }
    if raw.image.is_empty() {
        return Err(error(
            None,
            "no [[image]] entries: list the images to mirror".into(),
        ));
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let mut jobs = Vec::new();
    let mut rules = Vec::new();
    for image in &raw.image {
        let (expanded, rule) = expand(image, defaults.unwrap_or(&RawEntry::default()), base)
            .map_err(|(span, message)| error(Some(span.unwrap_or(image.span())), message))?;
        jobs.extend(expanded);
        if let Some((mut entry, span)) = rule {
            check_destinations(&entry.templates).map_err(|e| error(Some(span.clone()), e.to_string()))?;
            let (line, column) = line_and_column(text, span.start);
            entry.at = format!("{}:{line}:{column}", path.display());
            rules.push(entry);
        }
    }
    let (jobs, spans): (Vec<CopyJob>, Vec<Range<usize>>) = jobs.into_iter().unzip();
    check_destinations(&jobs).map_err(|e| {
        let message = match &e {
            DestinationError::Clash { .. } => format!("{e}: give one of them another destination"),
            DestinationError::Unmappable { .. }
            | DestinationError::RepositoryName { .. }
            | DestinationError::Setting { .. } => e.to_string(),
        };
        error(Some(spans[e.index()].clone()), message)
    })?;
    let metrics_file =
        match raw.sync.as_ref().and_then(|sync| sync.metrics_file.as_ref()) {
            Some(path) if path.get_ref().trim().is_empty() => return Err(error(
                Some(path.span()),
                "metrics_file is empty: name a file (the node_exporter textfile collector's directory, say)"
                    .into(),
            )),
            Some(path) => Some(base.join(path.get_ref())),
            None => None,
        };
    let api_quotas = match raw.sync.as_ref().and_then(|sync| sync.api_quotas.as_ref()) {
        Some(quotas) => crate::provider::ecr::pace::check_quotas(quotas.get_ref())
            .map_err(|message| error(Some(quotas.span()), message))?,
        None => std::collections::BTreeMap::new(),
    };
    Ok(SyncConfig {
        jobs,
        rules,
        concurrency,
        reserve_pulls,
        transfers,
        metrics_file,
        api_quotas,
    })
}

type Failure = (Range<usize>, String);

fn sync_settings(sync: Option<&RawSync>) -> Result<(usize, u64, usize), Failure> {
    let Some(sync) = sync else {
        return Ok((DEFAULT_JOBS, DEFAULT_RESERVE, usize::from(DEFAULT_TRANSFERS)));
    };
    let concurrency = match &sync.jobs {
        None => DEFAULT_JOBS,
        Some(jobs) => usize::try_from(*jobs.get_ref())
            .ok()
            .filter(|jobs| (1..=32).contains(jobs))
            .ok_or_else(|| {
                (
                    jobs.span(),
                    format!("jobs = {} is out of range: expected 1 to 32", jobs.get_ref()),
                )
            })?,
    };
    let reserve = match &sync.reserve_pulls {
        None => DEFAULT_RESERVE,
        Some(reserve) => u64::try_from(*reserve.get_ref()).map_err(|_| {
            (
                reserve.span(),
                format!("reserve_pulls = {} must not be negative", reserve.get_ref()),
            )
        })?,
    };
    let transfers = match &sync.transfers {
        None => usize::from(DEFAULT_TRANSFERS),
        Some(transfers) => usize::try_from(*transfers.get_ref())
            .ok()
            .filter(|transfers| (1..=64).contains(transfers))
            .ok_or_else(|| {
                (
                    transfers.span(),
                    format!(
                        "transfers = {} is out of range: expected 1 to 64",
                        transfers.get_ref()
                    ),
                )
            })?,
    };
    Ok((concurrency, reserve, transfers))
}

/// An error message and where it points, when it points somewhere more precise than the
/// whole `[[image]]`.
type Located = (Option<Range<usize>>, String);

/// One `[[image]]` with the defaults merged in, as one job per tag, and its tag rule when it
/// has one, with the span of its source. Each job carries the span of the image's source,
/// for errors found later.
#[allow(clippy::type_complexity)]
fn expand(
    image: &Spanned<RawEntry>,
    defaults: &RawEntry,
    base: &Path,
) -> Result<(Vec<(CopyJob, Range<usize>)>, Option<(RuleEntry, Range<usize>)>), Located> {
    let entry = image.get_ref();
    let source = entry.source.as_ref().ok_or((
        None,
        "this [[image]] has no `source`: name the image to mirror, like source = \"nginx:1.27\"".to_owned(),
    ))?;
    let source_span = source.span();
    let reference =
        Reference::parse(source.get_ref()).map_err(|e| (Some(source_span.clone()), e.to_string()))?;
    let destinations = entry
        .destination
        .as_ref()
        .or(defaults.destination.as_ref())
        .ok_or_else(|| {
            (
                Some(source_span.clone()),
                format!(
                    "'{}' has no destination: set `destination` here or in [defaults]",
                    source.get_ref()
                ),
            )
        })?;
    let located = destinations.get_ref().each(&destinations.span());
    if located.is_empty() {
        return Err((
            Some(destinations.span()),
            "`destination` is an empty list: name at least one destination".into(),
        ));
    }
    let settings = merged_settings(entry, defaults, base)?;
    let rule = tag_rule(entry, defaults)?;
    let mut jobs = Vec::new();
    let mut templates: Option<RuleEntry> = None;
    for destination in located {
        let written = destination.destination;
        let at_destination = |message: String| (Some(destination.span.clone()), message);
        let parsed = Destination::parse(&written.to).map_err(|e| at_destination(e.to_string()))?;
        let mut settings = settings.clone();
        if written.region.is_some() || written.profile.is_some() {
            if parsed.registry().is_some() {
                return Err(at_destination(format!(
                    "'{}' names its registry: `region` and `profile` in a destination are for the own registry (a destination without a host)",
                    written.to
                )));
            }
            settings.aws.region = written.region.clone().or(settings.aws.region);
            settings.aws.profile = written.profile.clone().or(settings.aws.profile);
        }
        if let Some(rule) = &rule {
            // One template per destination: each tag the rule picks goes to every one.
            let entry = rule_entry(
                rule.clone(),
                source,
                &reference,
                (&written.to, destination.span.clone()),
                &parsed,
                &settings,
            )?;
            match &mut templates {
                None => templates = Some(entry),
                Some(known) => known.templates.extend(entry.templates),
            }
        }
        let sources = match &entry.tags {
            None if rule.is_some() => Vec::new(),
            None => vec![(source.get_ref().clone(), reference.clone())],
            Some(tags) => tagged_sources(source.get_ref(), &reference, tags, &written.to, &parsed)?,
        };
        // A clash found later points at the list element, or at the source when the image
        // has one destination.
        let span = if destination.in_list {
            destination.span.clone()
        } else {
            source_span.clone()
        };
        jobs.extend(sources.into_iter().map(|(label, source)| {
            let job = CopyJob {
                label,
                source,
                destination: parsed.clone(),
                settings: settings.clone(),
            };
            (job, span.clone())
        }));
    }
    Ok((jobs, templates.map(|rule| (rule, source_span))))
}

/// The image's tag rule, with `tag_exclude` and `tag_prereleases` from the defaults when
/// it sets none; `None` when the image selects no tags by rule.
fn tag_rule(entry: &RawEntry, defaults: &RawEntry) -> Result<Option<TagRule>, Located> {
    let at = |span: Range<usize>| move |e: crate::tags::rule::RuleError| (Some(span.clone()), e.to_string());
    let exclude = entry.tag_exclude.as_ref().or(defaults.tag_exclude.as_ref());
    let selects = entry.tag_include.is_some() || entry.tag_semver.is_some() || entry.tag_newest.is_some();
    if !selects {
        let alone = [
            ("tag_exclude", entry.tag_exclude.as_ref().map(Spanned::span)),
            ("tag_prereleases", entry.tag_prereleases.map(|_| 0..0)),
        ];
        if let Some((key, span)) = alone.into_iter().find_map(|(key, span)| Some((key, span?))) {
            return Err((
                (!span.is_empty()).then_some(span),
                format!("`{key}` needs a tag rule to refine: add tag_include, tag_semver or tag_newest"),
            ));
        }
        return Ok(None);
    }
    let mut rule = TagRule::default().with_prereleases(
        entry
            .tag_prereleases
            .or(defaults.tag_prereleases)
            .unwrap_or(false),
    );
    if let Some(include) = &entry.tag_include {
        rule = rule.include(include.get_ref()).map_err(at(include.span()))?;
    }
    if let Some(exclude) = exclude {
        rule = rule.exclude(exclude.get_ref()).map_err(at(exclude.span()))?;
    }
    if let Some(range) = &entry.tag_semver {
        rule = rule.range(range.get_ref()).map_err(at(range.span()))?;
    }
    if let Some(newest) = &entry.tag_newest {
        rule = rule.newest(*newest.get_ref()).map_err(at(newest.span()))?;
    }
    Ok(Some(rule))
}

/// An image with a tag rule as the jobs it makes for one tag (its source untagged, for now
/// `latest`), the rule, and where it is written (filled in by the caller).
fn rule_entry(
    rule: TagRule,
    source: &Spanned<String>,
    reference: &Reference,
    (destination, destination_span): (&str, Range<usize>),
    parsed_destination: &Destination,
    settings: &JobSettings,
) -> Result<RuleEntry, Located> {
    let written = source.get_ref();
    if reference.digest().is_some() || written.rsplit('/').next().is_some_and(|last| last.contains(':')) {
        return Err((
            Some(source.span()),
            format!(
                "'{written}' names a tag or digest, but a tag rule picks the tags: leave it out of `source`"
            ),
        ));
    }
    if let Destination::Exact { tag: Some(tag), .. } = parsed_destination {
        return Err((
            Some(destination_span),
            format!(
                "a tag rule copies several tags, which cannot all go to the one tag ':{tag}' of '{destination}': leave the tag out of `destination`"
            ),
        ));
    }
    Ok(RuleEntry {
        label: written.clone(),
        templates: vec![CopyJob {
            label: written.clone(),
            source: reference.clone(),
            destination: parsed_destination.clone(),
            settings: settings.clone(),
        }],
        rule,
        at: String::new(),
    })
}

/// The image's settings over the defaults'.
fn merged_settings(entry: &RawEntry, defaults: &RawEntry, base: &Path) -> Result<JobSettings, Located> {
    let platforms = match entry.platform.as_ref().or(defaults.platform.as_ref()) {
        None => Vec::new(),
        Some(platform) => {
            let written = match platform.get_ref() {
                RawPlatforms::One(one) => std::slice::from_ref(one),
                RawPlatforms::Several(several) => several.as_slice(),
            };
            written
                .iter()
                .map(|one| settings::platform(one))
                .collect::<Result<_, _>>()
                .map_err(|e| (Some(platform.span()), e.to_string()))?
        }
    };
    let policy = entry
        .lifecycle_policy
        .as_ref()
        .or(defaults.lifecycle_policy.as_ref());
    // A relative policy path is read from beside the config.
    let policy_path: Option<PathBuf> = policy.map(|policy| base.join(policy.get_ref()));
    let kms_key = entry.kms_key.as_ref().or(defaults.kms_key.as_ref());
    let mut tags: BTreeMap<String, String> = defaults.repository_tags.clone().unwrap_or_default();
    tags.extend(entry.repository_tags.clone().unwrap_or_default());
    let repository = settings::repository(RepositoryInput {
        scan_on_push: entry.scan_on_push.or(defaults.scan_on_push).unwrap_or(false),
        immutable_tags: entry.immutable_tags.or(defaults.immutable_tags).unwrap_or(false),
        encryption: entry.encryption.or(defaults.encryption),
        kms_key: kms_key.map(|key| key.get_ref().as_str()),
        lifecycle_policy: policy_path.as_deref(),
        tags: tags.into_iter().collect(),
    })
    .map_err(|e| {
        (
            policy.map(Spanned::span).or(kms_key.map(Spanned::span)),
            e.to_string(),
        )
    })?;
    let settings = JobSettings {
        engine: entry.engine.or(defaults.engine).unwrap_or_default(),
        platforms,
        referrers: entry.referrers.or(defaults.referrers).unwrap_or(false),
        repository,
        aws: AwsOptions {
            profile: entry.profile.clone().or_else(|| defaults.profile.clone()),
            region: entry.region.clone().or_else(|| defaults.region.clone()),
        },
    };
    settings
        .engine
        .check(&settings)
        .map_err(|e| (None, e.to_string()))?;
    Ok(settings)
}

/// `source = "redis"` with `tags = ["7", "7.4"]`: one source per tag, labelled as written.
fn tagged_sources(
    written: &str,
    reference: &Reference,
    tags: &Spanned<Vec<String>>,
    destination: &str,
    parsed_destination: &Destination,
) -> Result<Vec<(String, Reference)>, Located> {
    let at_tags = |message: String| (Some(tags.span()), message);
    if tags.get_ref().is_empty() {
        return Err(at_tags(
            "`tags` is empty: list at least one tag, or leave it out".into(),
        ));
    }
    if reference.digest().is_some() || written.rsplit('/').next().is_some_and(|last| last.contains(':')) {
        return Err(at_tags(format!(
            "'{written}' already names a tag or digest: give tags either in `source` or in `tags`, not both"
        )));
    }
    if let Destination::Exact { tag: Some(tag), .. } = parsed_destination {
        return Err(at_tags(format!(
            "several tags cannot all go to the one tag ':{tag}' of '{destination}': leave the tag out of `destination`"
        )));
    }
    tags.get_ref()
        .iter()
        .map(|tag| {
            let tagged = reference.with_tag(tag).map_err(|e| at_tags(e.to_string()))?;
            Ok((format!("{written}:{tag}"), tagged))
        })
        .collect()
}

/// `:LINE:COLUMN`, or nothing for an error about the whole file (line 0).
fn position(line: usize, column: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(":{line}:{column}")
    }
}

/// 1-based line and column of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |last| last.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Encryption;

    const ECR: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

    fn parse_text(text: &str) -> Result<SyncConfig, ConfigError> {
        parse(text, Path::new("/etc/ecrcp/images.toml"))
    }

    fn destinations(config: &SyncConfig) -> Vec<String> {
        crate::plan::preview_destinations(&config.jobs)
    }

    #[test]
    fn defaults_merge_into_images_and_tags_expand() {
        let config = parse_text(&format!(
            r#"
version = 1
[sync]
jobs = 2
reserve_pulls = 25
[defaults]
destination = "{ECR}/mirror/"
platform = "linux/amd64"
scan_on_push = true
repository_tags = {{ team = "platform", env = "prod" }}

[[image]]
source = "nginx:1.27"

[[image]]
source = "redis"
tags = ["7", "7.4"]
destination = "{ECR}/cache/redis"
platform = "linux/arm64"
encryption = "kms"
repository_tags = {{ env = "cache" }}

[[image]]
source = "bitnami/kubectl:1.30"
destination = "tools/"
"#
        ))
        .unwrap();
        assert_eq!(config.concurrency, 2);
        assert_eq!(config.reserve_pulls, 25);
        assert_eq!(
            destinations(&config),
            [
                format!("{ECR}/mirror/nginx:1.27"),
                format!("{ECR}/cache/redis:7"),
                format!("{ECR}/cache/redis:7.4"),
                "own.example/tools/bitnami/kubectl:1.30".to_owned(),
            ]
        );
        let nginx = &config.jobs[0].settings;
        assert_eq!(nginx.platforms, ["linux/amd64"]);
        assert!(nginx.repository.scan_on_push);
        let redis = &config.jobs[1].settings;
        assert_eq!(redis.platforms, ["linux/arm64"]);
        assert_eq!(redis.repository.encryption, Encryption::Kms { key: None });
        assert_eq!(
            redis.repository.tags,
            [
                ("env".to_owned(), "cache".to_owned()),
                ("team".to_owned(), "platform".to_owned())
            ]
        );
        assert_eq!(config.jobs[0].label, "nginx:1.27");
        assert_eq!(config.jobs[2].label, "redis:7.4");
    }

    #[test]
    fn a_minimal_config_uses_the_documented_defaults() {
        let config =
            parse_text("version = 1\n[[image]]\nsource = \"alpine\"\ndestination = \"m/\"\n").unwrap();
        assert_eq!(
            (config.concurrency, config.reserve_pulls),
            (DEFAULT_JOBS, DEFAULT_RESERVE)
        );
        assert_eq!(destinations(&config), ["own.example/m/alpine:latest"]);
    }

    #[test]
    fn bad_configs_point_at_the_line_and_column_and_say_what_is_expected() {
        let image =
            |body: &str| format!("version = 1\n[defaults]\ndestination = \"{ECR}/m/\"\n[[image]]\n{body}\n");
        let cases: Vec<(String, (usize, usize), &str)> = vec![
            (
                "[[image]]\nsource = \"nginx\"\n".into(),
                (1, 1),
                "missing `version = 1`",
            ),
            (
                "version = 2\n[[image]]\nsource = \"nginx\"\n".into(),
                (1, 11),
                "unsupported version 2",
            ),
            ("version = \"1\"\n".into(), (1, 11), "invalid type"),
            (
                image("source = \"nginx\"\nsorce = \"x\""),
                (6, 1),
                "unknown field `sorce`",
            ),
            (image("source = \"Nginx\""), (5, 10), "'Nginx'"),
            (image("source = 7"), (5, 10), "invalid type"),
            (image("destination = \"x/\""), (4, 1), "has no `source`"),
            (
                image("source = \"nginx\"\nplatform = \"linux\""),
                (6, 12),
                "invalid platform 'linux'",
            ),
            (
                image("source = \"redis:7\"\ntags = [\"7.4\"]"),
                (6, 8),
                "already names a tag",
            ),
            (image("source = \"redis\"\ntags = []"), (6, 8), "`tags` is empty"),
            (
                image(&format!(
                    "source = \"redis\"\ntags = [\"7\", \"8\"]\ndestination = \"{ECR}/r:x\""
                )),
                (6, 8),
                "several tags",
            ),
            (
                image("source = \"nginx\"\ndestination = \"x@sha256:abc\""),
                (6, 15),
                "digest",
            ),
            (
                image("source = \"nginx\"\nlifecycle_policy = \"missing.json\""),
                (6, 20),
                "/etc/ecrcp/missing.json",
            ),
            (
                image("source = \"nginx\"\nencryption = \"des\""),
                (6, 14),
                "unknown variant `des`",
            ),
            (
                format!(
                    "{}[[image]]\nsource = \"docker.io/library/nginx:latest\"\n",
                    image("source = \"nginx\"")
                ),
                (7, 10),
                "would both be copied",
            ),
            (
                "version = 1\n[[image]]\nsource = \"nginx\"\n".into(),
                (3, 10),
                "has no destination",
            ),
            (
                "version = 1\n[defaults]\nsource = \"x\"\n[[image]]\nsource = \"y\"\n".into(),
                (2, 1),
                "belongs in an [[image]]",
            ),
            (
                "version = 1\n[sync]\njobs = 0\n[[image]]\nsource = \"y\"\n".into(),
                (3, 8),
                "jobs = 0 is out of range",
            ),
            ("version = 1\n".into(), (1, 1), "no [[image]] entries"),
        ];
        for (text, (line, column), expected) in cases {
            let error = parse_text(&text).expect_err(&text);
            assert!(error.message.contains(expected), "{text}\n=> {error}");
            assert_eq!((error.line, error.column), (line, column), "{text}\n=> {error}");
            assert!(
                error.to_string().starts_with("/etc/ecrcp/images.toml:"),
                "{error}"
            );
        }
    }

    #[test]
    fn engine_settings_the_engine_cannot_honour_point_at_their_image() {
        let image =
            |body: &str| format!("version = 1\n[defaults]\ndestination = \"{ECR}/m/\"\n[[image]]\n{body}\n");
        let cases: Vec<(String, (usize, usize), &str)> = vec![
            (
                image("source = \"nginx\"\nplatform = [\"linux/amd64\", \"x\"]\nengine = \"registry\""),
                (6, 12),
                "invalid platform 'x'",
            ),
            (
                image("source = \"nginx\"\nengine = \"podman\""),
                (6, 10),
                "unknown variant `podman`, expected `docker` or `registry`",
            ),
            (
                image("source = \"nginx\"\nplatform = [\"linux/amd64\", \"linux/arm64\"]"),
                (4, 1),
                "the docker engine copies one platform, not several",
            ),
        ];
        for (text, (line, column), expected) in cases {
            let error = parse_text(&text).expect_err(&text);
            assert!(error.message.contains(expected), "{text}\n=> {error}");
            assert_eq!((error.line, error.column), (line, column), "{text}\n=> {error}");
        }
        let mut config = parse_text(&image(
            "source = \"nginx\"\nreferrers = true\nengine = \"registry\"",
        ))
        .unwrap();
        assert!(
            config.use_engine(EngineKind::Docker).is_err(),
            "--engine docker cannot copy referrers"
        );
        let mut config = parse_text(&image("source = \"nginx\"\nplatform = [\"linux/amd64\"]")).unwrap();
        config.use_engine(EngineKind::Registry).unwrap();
        assert_eq!(config.jobs[0].settings.engine, EngineKind::Registry);
        assert_eq!(config.jobs[0].settings.platforms, ["linux/amd64"]);
    }

    #[test]
    fn the_example_config_that_packages_install_is_valid() {
        let text = include_str!("../debian/images.toml");
        let config = parse(text, Path::new("debian/images.toml")).unwrap();
        assert_eq!(
            destinations(&config),
            [
                format!("{ECR}/mirror/nginx:1.27"),
                format!("{ECR}/mirror/redis:7"),
                format!("{ECR}/mirror/redis:7.4"),
            ]
        );
        // Every commented-out key is a real key too: uncommented, the file still loads.
        let uncommented: String = text
            .lines()
            .map(|line| match line.strip_prefix('#') {
                Some(rest) if rest.starts_with(|c: char| c.is_ascii_lowercase() || c == '[') => rest,
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let dir = std::env::temp_dir().join(format!("ecrcp-example-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("lifecycle.json"), r#"{"rules": []}"#).unwrap();
        let config =
            parse(&uncommented, &dir.join("images.toml")).unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(config.jobs.len(), 4);
        assert_eq!(config.jobs[3].settings.platforms, ["linux/arm64"]);
        assert_eq!(config.rules.len(), 1, "the commented tag rule");
        assert_eq!(config.rules[0].label, "postgres");
        assert!(config.jobs[0].settings.repository.lifecycle_policy.is_some());
    }

    #[test]
    fn ecr_repository_names_and_clashes_in_one_region_point_at_the_image() {
        let cases: &[(&str, (usize, usize), &str)] = &[
            (
                "[[image]]\nsource = \"ghcr.io/a/b--c\"\ndestination = \"m/\"\n",
                (3, 10),
                "'m/a/b--c' is not a valid ECR repository name: '--' in 'b--c' is not allowed",
            ),
            (
                "[[image]]\nsource = \"nginx\"\ndestination = \"m/\"\nregion = \"eu-west-1\"\n\
                 [[image]]\nsource = \"nginx\"\ndestination = \"m/\"\nregion = \"eu-west-1\"\n",
                (7, 10),
                "would both be copied to '<your ECR registry>/m/nginx:latest'",
            ),
        ];
        for &(images, (line, column), expected) in cases {
            let error = parse_text(&format!("version = 1\n{images}")).expect_err(images);
            assert!(error.message.contains(expected), "{images}\n=> {error}");
            assert_eq!((error.line, error.column), (line, column), "{images}\n=> {error}");
        }
    }

    #[test]
    fn one_image_into_the_own_registry_of_two_regions_is_two_copies() {
        let config = parse_text(
            r#"
version = 1
[defaults]
destination = "mirror/"
[[image]]
source = "nginx:1.27"
region = "us-east-1"
[[image]]
source = "nginx:1.27"
region = "eu-west-1"
[[image]]
source = "nginx:1.27"
destination = "nginx:1.27"
profile = "mirror-account"
"#,
        )
        .unwrap();
        let regions: Vec<_> = config
            .jobs
            .iter()
            .map(|job| job.settings.aws.region.as_deref())
            .collect();
        assert_eq!(regions, [Some("us-east-1"), Some("eu-west-1"), None]);
        assert_eq!(
            destinations(&config),
            [
                "own.example/mirror/nginx:1.27",
                "own.example/mirror/nginx:1.27",
                "own.example/nginx:1.27"
            ]
        );
    }

    #[test]
    fn a_list_of_destinations_is_one_copy_per_destination_and_tag() {
        let config = parse_text(&format!(
            r#"
version = 1
[defaults]
destination = ["{ECR}/mirror/", "central/"]
region = "us-east-1"
[[image]]
source = "redis"
tags = ["7", "7.4"]
[[image]]
source = "nginx:1.27"
destination = [
  "{ECR}/edge/",
  {{ to = "mirror/", region = "eu-west-1" }},
  {{ to = "mirror/", profile = "central" }},
]
"#
        ))
        .unwrap();
        assert_eq!(
            destinations(&config),
            [
                format!("{ECR}/mirror/redis:7"),
                format!("{ECR}/mirror/redis:7.4"),
                "own.example/central/redis:7".to_owned(),
                "own.example/central/redis:7.4".to_owned(),
                format!("{ECR}/edge/nginx:1.27"),
                "own.example/mirror/nginx:1.27".to_owned(),
                "own.example/mirror/nginx:1.27".to_owned(),
            ]
        );
        let aws: Vec<_> = config.jobs[4..]
            .iter()
            .map(|job| {
                (
                    job.settings.aws.region.as_deref(),
                    job.settings.aws.profile.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            aws,
            [
                (Some("us-east-1"), None),
                (Some("eu-west-1"), None),
                (Some("us-east-1"), Some("central"))
            ]
        );
        assert!(config
            .jobs
            .iter()
            .all(|job| job.label.starts_with("redis:") || job.label == "nginx:1.27"));
    }

    #[test]
    fn a_tag_rule_with_several_destinations_has_one_template_per_destination() {
        let config = parse_text(&format!(
            r#"
version = 1
[[image]]
source = "nginx"
tags = ["stable"]
tag_newest = 2
destination = ["{ECR}/mirror/", {{ to = "mirror/", region = "eu-west-1" }}]
"#
        ))
        .unwrap();
        assert_eq!(
            destinations(&config),
            [
                format!("{ECR}/mirror/nginx:stable"),
                "own.example/mirror/nginx:stable".to_owned()
            ]
        );
        let rule = &config.rules[0];
        let templates: Vec<(String, Option<&str>)> = rule
            .templates
            .iter()
            .map(|template| {
                (
                    template.destination.to_string(),
                    template.settings.aws.region.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            templates,
            [
                (format!("{ECR}/mirror/"), None),
                ("<your ECR registry>/mirror/".to_owned(), Some("eu-west-1"))
            ]
        );
        let error = parse_text(
            "version = 1\n[[image]]\nsource = \"nginx\"\ntag_newest = 2\ndestination = [\"m/\", \"n:x\"]\n",
        )
        .unwrap_err();
        assert!(error.message.contains("the one tag ':x' of 'n:x'"), "{error}");
        assert_eq!((error.line, error.column), (5, 22), "{error}");
    }

    #[test]
    fn bad_destination_lists_point_at_the_element() {
        let image = |destination: &str| {
            format!("version = 1\n[[image]]\nsource = \"nginx\"\ndestination = {destination}\n")
        };
        let cases: &[(&str, (usize, usize), &str)] = &[
            ("[]", (4, 15), "`destination` is an empty list"),
            ("[\"m/\", \"x@sha256:abc\"]", (4, 22), "digest"),
            (
                "[\"m/\", \"n/\", \"m/\"]",
                (4, 28),
                "would both be copied to '<your ECR registry>/m/nginx:latest'",
            ),
            (
                "[\"m/\", { to = \"m/\", regio = \"x\" }]",
                (4, 35),
                "unknown field `regio`",
            ),
            ("[\"m/\", { region = \"x\" }]", (4, 22), "missing field `to`"),
            ("[\"m/\", 7]", (4, 22), "a destination: a string, or a table"),
            (
                "[{ to = \"registry.example.com/m/\", region = \"eu-west-1\" }]",
                (4, 16),
                "names its registry",
            ),
        ];
        for &(destination, (line, column), expected) in cases {
            let text = image(destination);
            let error = parse_text(&text).expect_err(&text);
            assert!(error.message.contains(expected), "{text}\n=> {error}");
            assert_eq!((error.line, error.column), (line, column), "{text}\n=> {error}");
        }
        // The same destination in two regions is two registries.
        let config = parse_text(&image(
            "[{ to = \"m/\", region = \"us-east-1\" }, { to = \"m/\", region = \"eu-west-1\" }]",
        ))
        .unwrap();
        assert_eq!(config.jobs.len(), 2);
    }

    #[test]
    fn raised_api_quotas_are_read_and_an_unknown_action_points_at_its_table() {
        let config = parse_text(&format!(
            "version = 1\n[sync]\napi_quotas = {{ PutImage = 40 }}\n[[image]]\nsource = \"nginx\"\ndestination = \"{ECR}/m/\"\n"
        ))
        .unwrap();
        assert_eq!(config.api_quotas.get("PutImage"), Some(&40));
        let error = parse_text(&format!(
            "version = 1\n[sync]\napi_quotas = {{ PutImages = 40 }}\n[[image]]\nsource = \"nginx\"\ndestination = \"{ECR}/m/\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(error.contains(":3:") && error.contains("'PutImages'"), "{error}");
    }

    #[test]
    fn the_man_page_of_the_format_documents_every_key_of_the_example() {
        let example = include_str!("../debian/images.toml");
        let page = include_str!("../packaging/man/ecrcp-images.toml.5");
        let mut keys = std::collections::BTreeSet::new();
        for line in example.lines().map(|line| line.strip_prefix('#').unwrap_or(line)) {
            if let Some((key, _)) = line.split_once(" = ") {
                if key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                    keys.insert(format!(".BI \"{key} = "));
                }
            } else if line.starts_with('[') {
                keys.insert(line.trim().to_owned());
            }
        }
        assert!(keys.len() >= 17, "{keys:?}");
        for key in keys {
            assert!(page.contains(&key), "ecrcp-images.toml.5 lacks {key}");
        }
    }

    #[test]
    fn tag_rules_become_templates_beside_explicit_tags() {
        let config = parse_text(&format!(
            r#"
version = 1
[defaults]
destination = "{ECR}/mirror/"
tag_exclude = ".*-rc.*"
tag_prereleases = true

[[image]]
source = "nginx"
tags = ["stable"]
tag_semver = ">=1.25, <2"
tag_newest = 3

[[image]]
source = "ghcr.io/a/b"
tag_include = 'v\d+\.\d+'
tag_exclude = "v0.*"
tag_prereleases = false
destination = "{ECR}/other/b"
"#
        ))
        .unwrap();
        assert_eq!(destinations(&config), [format!("{ECR}/mirror/nginx:stable")]);
        assert_eq!(config.rules.len(), 2);
        let nginx = &config.rules[0];
        assert_eq!(nginx.label, "nginx");
        assert_eq!(nginx.at, "/etc/ecrcp/images.toml:9:10");
        assert_eq!(
            nginx.rule.to_string(),
            "tag_exclude = '.*-rc.*', tag_semver = '>=1.25, <2', tag_newest = 3, tag_prereleases = true"
        );
        assert_eq!(nginx.templates.len(), 1);
        assert_eq!(nginx.source().repository(), "library/nginx");
        assert_eq!(
            config.rules[1].rule.to_string(),
            r"tag_include = 'v\d+\.\d+', tag_exclude = 'v0.*'"
        );
        let selected = config.rules[1].rule.select(["v1.2", "v0.9", "v1.2.3", "latest"]);
        assert_eq!(selected.selected, ["v1.2"]);
        let mut config = config;
        config.use_engine(EngineKind::Registry).unwrap();
        assert_eq!(config.rules[1].templates[0].settings.engine, EngineKind::Registry);
        // iam-policy sees the rules' destinations too, not only the explicit tags'.
        let repositories: Vec<String> = crate::tags::with_templates(&config.jobs, &config.rules)
            .iter()
            .map(|job| {
                job.destination
                    .resolve(&job.source, None)
                    .unwrap()
                    .repository()
                    .to_owned()
            })
            .collect();
        assert_eq!(repositories, ["mirror/nginx", "mirror/nginx", "other/b"]);
    }

    #[test]
    fn bad_tag_rules_point_at_the_value() {
        let image =
            |body: &str| format!("version = 1\n[defaults]\ndestination = \"{ECR}/m/\"\n[[image]]\n{body}\n");
        let cases: Vec<(String, (usize, usize), &str)> = vec![
            (
                image("source = \"nginx\"\ntag_include = \"(1.27\""),
                (6, 15),
                "tag_include = '(1.27' is not a valid regular expression: unclosed group",
            ),
            (
                image("source = \"nginx\"\ntag_semver = \">=1.25, <2\"\ntag_exclude = \"[\""),
                (7, 15),
                "tag_exclude = '[' is not a valid regular expression",
            ),
            (
                image("source = \"nginx\"\ntag_semver = \"newest\""),
                (6, 14),
                "tag_semver = 'newest' is not a version range",
            ),
            (
                image("source = \"nginx\"\ntag_newest = 0"),
                (6, 14),
                "tag_newest = 0 is out of range",
            ),
            (
                image("source = \"nginx\"\ntag_newest = \"3\""),
                (6, 14),
                "invalid type",
            ),
            (
                image("source = \"nginx:1.27\"\ntag_newest = 3"),
                (5, 10),
                "names a tag or digest, but a tag rule picks the tags",
            ),
            (
                image(&format!(
                    "source = \"nginx\"\ntag_newest = 3\ndestination = \"{ECR}/n:1\""
                )),
                (7, 15),
                "cannot all go to the one tag ':1'",
            ),
            (
                image("source = \"nginx\"\ntag_exclude = \"x\""),
                (6, 15),
                "`tag_exclude` needs a tag rule to refine",
            ),
            (
                image("source = \"nginx\"\ntag_prereleases = true"),
                (4, 1),
                "`tag_prereleases` needs a tag rule to refine",
            ),
            (
                "version = 1\n[defaults]\ntag_newest = 2\n[[image]]\nsource = \"y\"\n".into(),
                (2, 1),
                "`tag_newest` belongs in an [[image]]",
            ),
            (
                image("source = \"ghcr.io/a/b--c\"\ntag_newest = 1"),
                (5, 10),
                "is not a valid ECR repository name",
            ),
        ];
        for (text, (line, column), expected) in cases {
            let error = parse_text(&text).expect_err(&text);
            assert!(error.message.contains(expected), "{text}\n=> {error}");
            assert_eq!((error.line, error.column), (line, column), "{text}\n=> {error}");
        }
    }

    #[test]
    fn positions_count_lines_and_characters_from_one() {
        assert_eq!(line_and_column("abc", 0), (1, 1));
        assert_eq!(line_and_column("a\nbc", 3), (2, 2));
        assert_eq!(line_and_column("a\n\n", 3), (3, 1));
    }
}
