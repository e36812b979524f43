//! A tag rule and what it selects from a repository's tag list: an include and an exclude
//! pattern, a semantic-version range, the newest N versions, and the reading of tags as
//! versions. Pure: no I/O, table-tested.
//!
//! How a tag reads as a version: an optional `v`, one to three numbers joined by dots (a
//! missing minor or patch is 0: `1.27` is 1.27.0), then optionally `-` and a pre-release
//! (`1.28.0-rc.1`; and, as semver reads it, `1.27-alpine`). Anything else (`latest`,
//! `stable`, `1.27.3.4`, `alpine-3.20`) is not a version: a range or "newest N" leaves it
//! out; patterns alone still select it.

use std::cmp::Ordering;
use std::fmt;

use regex::Regex;
use semver::{Prerelease, Version, VersionReq};

/// How many tags a rule may keep by "newest N" at most.
pub const MOST_NEWEST: u64 = 1000;

/// Which tags of the source repository an `[[image]]` follows.
#[derive(Debug, Clone, Default)]
pub struct TagRule {
    include: Option<Pattern>,
    exclude: Option<Pattern>,
    range: Option<(String, VersionReq)>,
    newest: Option<usize>,
    prereleases: bool,
}

/// A regular expression that must match the whole tag, and its text as written.
#[derive(Debug, Clone)]
struct Pattern {
    text: String,
    regex: Regex,
}

/// A rule value that cannot be used, with what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("{key} = '{value}' is not a valid regular expression: {detail}\nnote: the pattern must match the whole tag, like '1\\.27\\..*' or '.*-alpine'")]
    Pattern {
        key: &'static str,
        value: String,
        detail: String,
    },
    #[error("tag_semver = '{value}' is not a version range: {detail}\nnote: write comparators separated by commas, like '>=1.25, <2' or '~1.27'")]
    Range { value: String, detail: String },
    #[error("tag_newest = {value} is out of range: expected 1 to {MOST_NEWEST}")]
    Newest { value: i64 },
}

impl PartialEq for TagRule {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for TagRule {}

impl TagRule {
    /// Keeps only tags the whole of which `pattern` matches.
    pub fn include(mut self, pattern: &str) -> Result<Self, RuleError> {
        self.include = Some(Pattern::new("tag_include", pattern)?);
        Ok(self)
    }

    /// Leaves out tags the whole of which `pattern` matches.
    pub fn exclude(mut self, pattern: &str) -> Result<Self, RuleError> {
        self.exclude = Some(Pattern::new("tag_exclude", pattern)?);
        Ok(self)
    }

    /// Keeps only versions in `range` (`>=1.25, <2`), its numbers read as tags read (`>=22.04`
    /// is `>=22.4`, as the tag `22.04` is 22.4.0).
    pub fn range(mut self, range: &str) -> Result<Self, RuleError> {
        let parsed = VersionReq::parse(&without_leading_zeros(range)).map_err(|error| RuleError::Range {
            value: range.to_owned(),
            detail: error.to_string(),
        })?;
        self.range = Some((range.to_owned(), parsed));
        Ok(self)
    }

    /// Keeps the `count` highest versions of what is left.
    pub fn newest(mut self, count: i64) -> Result<Self, RuleError> {
        let kept = u64::try_from(count)
            .ok()
            .filter(|count| (1..=MOST_NEWEST).contains(count))
            .and_then(|count| usize::try_from(count).ok())
            .ok_or(RuleError::Newest { value: count })?;
        self.newest = Some(kept);
        Ok(self)
    }

    /// Lets pre-releases (`1.28.0-rc.1`, `1.27-alpine`) through a range or "newest N".
    #[must_use]
    pub fn with_prereleases(mut self, prereleases: bool) -> Self {
        self.prereleases = prereleases;
        self
    }

    /// Whether it asks for versions, and so leaves out tags that are not.
    fn wants_versions(&self) -> bool {
        self.range.is_some() || self.newest.is_some()
    }

    /// Whether the rule selects anything by itself; an exclude pattern alone does not.
    pub fn selects(&self) -> bool {
        self.include.is_some() || self.wants_versions()
    }

    /// Which of `tags` the rule selects, highest version first (tags that are not versions
    /// after, by name), and which it leaves out and why.
    pub fn select<'t>(&self, tags: impl IntoIterator<Item = &'t str>) -> Selection {
        let mut left_out = Vec::new();
        let mut kept: Vec<(Option<Version>, &str)> = Vec::new();
        for tag in tags {
            match self.check(tag) {
                Ok(version) => kept.push((version, tag)),
                Err(reason) => left_out.push((tag.to_owned(), reason)),
            }
        }
        kept.sort_by(|(a_version, a_tag), (b_version, b_tag)| {
            newest_first(a_version.as_ref(), b_version.as_ref()).then(a_tag.cmp(b_tag))
        });
        kept.dedup_by(|(_, a), (_, b)| a == b);
        if let Some(count) = self.newest {
            for (_, tag) in kept.iter().skip(count) {
                left_out.push(((*tag).to_owned(), Reason::NotNewest(count)));
            }
            kept.truncate(count);
        }
        left_out.sort_by(|(a, _), (b, _)| a.cmp(b));
        Selection {
            selected: kept.into_iter().map(|(_, tag)| tag.to_owned()).collect(),
            left_out,
        }
    }

    /// Whether `tag` passes every condition but "newest N"; its version when it has one.
    fn check(&self, tag: &str) -> Result<Option<Version>, Reason> {
        if self.include.as_ref().is_some_and(|include| !include.matches(tag)) {
            return Err(Reason::NotIncluded);
        }
        if self.exclude.as_ref().is_some_and(|exclude| exclude.matches(tag)) {
            return Err(Reason::Excluded);
        }
        let version = version_of(tag);
        if !self.wants_versions() {
            return Ok(version);
        }
        let Some(version) = version else {
            return Err(Reason::NotAVersion);
        };
        if !version.pre.is_empty() && !self.prereleases {
            return Err(Reason::PreRelease);
        }
        if let Some((_, range)) = &self.range {
            // A pre-release, when asked for, counts as the release it precedes: semver's own
            // rule would take pre-releases only of versions the range names exactly.
            let release = Version::new(version.major, version.minor, version.patch);
            if !range.matches(&release) {
                return Err(Reason::OutOfRange);
            }
        }
        Ok(Some(version))
    }
}

/// Higher versions first; tags that are not versions last.
fn newest_first(a: Option<&Version>, b: Option<&Version>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => b.cmp(a),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// The rule as the config writes it, for messages.
impl fmt::Display for TagRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(include) = &self.include {
            parts.push(format!("tag_include = '{}'", include.text));
        }
        if let Some(exclude) = &self.exclude {
            parts.push(format!("tag_exclude = '{}'", exclude.text));
        }
        if let Some((text, _)) = &self.range {
            parts.push(format!("tag_semver = '{text}'"));
        }
        if let Some(count) = self.newest {
            parts.push(format!("tag_newest = {count}"));
        }
        if self.prereleases && self.wants_versions() {
            parts.push("tag_prereleases = true".to_owned());
        }
        f.write_str(&parts.join(", "))
    }
}

impl Pattern {
    fn new(key: &'static str, text: &str) -> Result<Self, RuleError> {
        let regex = Regex::new(&format!("^(?:{text})$")).map_err(|error| RuleError::Pattern {
            key,
            value: text.to_owned(),
            detail: regex_detail(&error),
        })?;
        Ok(Pattern {
            text: text.to_owned(),
            regex,
        })
    }

    fn matches(&self, tag: &str) -> bool {
        self.regex.is_match(tag)
    }
}

/// The one line of a regex error that says what is wrong (its others draw the pattern).
fn regex_detail(error: &regex::Error) -> String {
    let text = error.to_string();
    text.lines()
        .find_map(|line| line.trim().strip_prefix("error: "))
        .unwrap_or(text.lines().last().unwrap_or_default())
        .trim()
        .to_owned()
}

/// The version a tag names, by the rule in this module's header, or `None`.
pub fn version_of(tag: &str) -> Option<Version> {
    let unprefixed = tag.strip_prefix('v').unwrap_or(tag);
    let (core, pre) = match unprefixed.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (unprefixed, None),
    };
    let mut numbers = [0_u64; 3];
    for (index, part) in core.split('.').enumerate() {
        if index == 3 || part.is_empty() || !part.bytes().all(|byte| byte.is_ascii_digit()) {
            return None;
        }
        numbers[index] = part.parse().ok()?;
    }
    let mut version = Version::new(numbers[0], numbers[1], numbers[2]);
    if let Some(pre) = pre {
        version.pre = Prerelease::new(pre).ok().filter(|pre| !pre.is_empty())?;
    }
    Some(version)
}

/// `range` with the leading zeros of its version numbers dropped (`>=22.04` becomes `>=22.4`):
/// semver refuses them, but `version_of` reads the tag `22.04` as 22.4.0, and a range must be
/// writable as the tags are. Pre-release and build text (after `-` or `+`) stays as written,
/// as `version_of` refuses a leading zero there too.
fn without_leading_zeros(range: &str) -> String {
    let comparators = range.split(',').map(|comparator| {
        let (core, rest) = comparator.split_at(comparator.find(['-', '+']).unwrap_or(comparator.len()));
        let mut kept = String::with_capacity(comparator.len());
        let mut chars = core.chars().peekable();
        while let Some(char) = chars.next() {
            let in_number = kept.chars().last().is_some_and(|last| last.is_ascii_digit());
            let digit_follows = chars.peek().is_some_and(char::is_ascii_digit);
            if char != '0' || in_number || !digit_follows {
                kept.push(char);
            }
        }
        kept + rest
    });
    comparators.collect::<Vec<_>>().join(",")
}

/// What a rule made of a tag list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selection {
    /// Highest version first; tags that are not versions after, by name.
    pub selected: Vec<String>,
    /// By tag name.
    pub left_out: Vec<(String, Reason)>,
}

/// Why a rule left a tag out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    NotIncluded,
    Excluded,
    NotAVersion,
    PreRelease,
    OutOfRange,
    NotNewest(usize),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NotIncluded => f.write_str("not matched by tag_include"),
            Reason::Excluded => f.write_str("matched by tag_exclude"),
            Reason::NotAVersion => f.write_str("not a version"),
            Reason::PreRelease => f.write_str("pre-release"),
            Reason::OutOfRange => f.write_str("outside tag_semver"),
            Reason::NotNewest(count) => write!(f, "older than the newest {count}"),
        }
    }
}

impl Selection {
    /// The tags left out, grouped by reason, each group naming at most `shown` tags:
    /// `pre-release: 1.28.0-rc.1; not a version: latest, stable (and 3 more)`.
    pub fn left_out_briefly(&self, shown: usize) -> String {
        let mut groups: Vec<(Reason, Vec<&str>)> = Vec::new();
        for (tag, reason) in &self.left_out {
            match groups.iter_mut().find(|(known, _)| known == reason) {
                Some((_, tags)) => tags.push(tag),
                None => groups.push((*reason, vec![tag])),
            }
        }
        groups.sort_by_key(|(reason, _)| *reason);
        groups
            .iter()
            .map(|(reason, tags)| {
                let named = tags.iter().take(shown).copied().collect::<Vec<_>>().join(", ");
                let more = tags.len().saturating_sub(shown);
                if more == 0 {
                    format!("{reason}: {named}")
                } else {
                    format!("{reason}: {named} (and {more} more)")
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_read_as_versions_by_the_documented_rule() {
        let cases: &[(&str, Option<&str>)] = &[
            ("1.27.3", Some("1.27.3")),
            ("v1.27.3", Some("1.27.3")),
            ("1.27", Some("1.27.0")),
            ("7", Some("7.0.0")),
            ("1.28.0-rc.1", Some("1.28.0-rc.1")),
            ("1.27-alpine", Some("1.27.0-alpine")),
            ("1.27.3-bookworm-slim", Some("1.27.3-bookworm-slim")),
            ("20240105", Some("20240105.0.0")),
            ("01.2", Some("1.2.0")),
            ("latest", None),
            ("stable-alpine", None),
            ("alpine-3.20", None),
            ("1.27.3.4", None),
            ("1..2", None),
            ("v", None),
            ("1.27-", None),
            ("1.27-rc.01", None),
            ("V1.2", None),
        ];
        for &(tag, expected) in cases {
            assert_eq!(
                version_of(tag).map(|version| version.to_string()),
                expected.map(str::to_owned),
                "{tag}"
            );
        }
    }

    const TAGS: &[&str] = &[
        "latest",
        "stable",
        "1",
        "1.24.0",
        "1.25.5",
        "1.26.2",
        "1.27",
        "1.27.2",
        "1.27.3",
        "1.27.3-alpine",
        "1.28.0-rc.1",
        "v2.0.0",
        "2.0.0-rc.1",
        "mainline-alpine",
    ];

    fn rule(build: impl FnOnce(TagRule) -> Result<TagRule, RuleError>) -> TagRule {
        build(TagRule::default()).unwrap()
    }

    #[test]
    fn each_rule_kind_selects_what_its_doc_says_highest_first() {
        let cases: Vec<(TagRule, &[&str])> = vec![
            (
                rule(|r| r.include(r"1\.27.*")),
                &["1.27.3", "1.27.3-alpine", "1.27.2", "1.27"],
            ),
            // Anchored: a pattern must match the whole tag, not a part of it.
            (rule(|r| r.include("alpine")), &[]),
            (
                rule(|r| r.include(".*alpine")),
                &["1.27.3-alpine", "mainline-alpine"],
            ),
            (
                rule(|r| r.include(r"1\.27.*")?.exclude(".*-alpine")),
                &["1.27.3", "1.27.2", "1.27"],
            ),
            (
                rule(|r| r.range(">=1.25, <2")),
                &["1.27.3", "1.27.2", "1.27", "1.26.2", "1.25.5"],
            ),
            (
                rule(|r| r.range(">=1.25, <2").map(|r| r.with_prereleases(true))),
                &[
                    "1.28.0-rc.1",
                    "1.27.3",
                    "1.27.3-alpine",
                    "1.27.2",
                    "1.27",
                    "1.26.2",
                    "1.25.5",
                ],
            ),
            (rule(|r| r.range("~1.27")), &["1.27.3", "1.27.2", "1.27"]),
            (rule(|r| r.range(">=2")), &["v2.0.0"]),
            (rule(|r| r.newest(3)), &["v2.0.0", "1.27.3", "1.27.2"]),
            (
                rule(|r| r.newest(2).map(|r| r.with_prereleases(true))),
                &["v2.0.0", "2.0.0-rc.1"],
            ),
            (
                rule(|r| r.range("<2")?.newest(2)?.exclude(r"1\.27\.3")),
                &["1.27.2", "1.27"],
            ),
            (
                rule(|r| r.newest(100)),
                &[
                    "v2.0.0", "1.27.3", "1.27.2", "1.27", "1.26.2", "1.25.5", "1.24.0", "1",
                ],
            ),
        ];
        for (rule, expected) in cases {
            let selection = rule.select(TAGS.iter().copied());
            assert_eq!(selection.selected, expected, "{rule}");
            assert_eq!(
                selection.selected.len() + selection.left_out.len(),
                TAGS.len(),
                "every tag is selected or left out: {rule}"
            );
        }
    }

    #[test]
    fn ranges_read_leading_zeros_as_tags_do() {
        let tags = ["20.04", "22.04", "22.10", "24.04", "jammy", "007"];
        let cases: &[(&str, &[&str])] = &[
            (">=22.04", &["24.04", "22.10", "22.04"]),
            (">=22.04, <24.04", &["22.10", "22.04"]),
            ("~22.04", &["22.04"]),
            ("=22.04.0", &["22.04"]),
            ("<=07", &["007"]),
            ("<1", &[]),
            (">=0.0", &["24.04", "22.10", "22.04", "20.04", "007"]),
            (">= 20.010", &["24.04", "22.10", "22.04"]),
        ];
        for &(range, expected) in cases {
            let rule = rule(|r| r.range(range));
            assert_eq!(rule.select(tags).selected, expected, "{range}");
            assert_eq!(
                rule.to_string(),
                format!("tag_semver = '{range}'"),
                "kept as written"
            );
        }
        assert_eq!(without_leading_zeros(">=1.0.0-rc.01, <02"), ">=1.0.0-rc.01, <2");
        assert!(
            TagRule::default().range(">=1.0.0-rc.01").is_err(),
            "as version_of refuses it"
        );
    }

    #[test]
    fn floating_tags_rank_as_their_zero_patch() {
        // docs/sync.md and debian/images.toml say so: `1.27` is 1.27.0, below 1.27.3, so "newest
        // N" drops it; a tag_include of floating tags alone keeps the newest of those.
        let tags = ["1", "1.26", "1.26.5", "1.27", "1.27.2", "1.27.3"];
        assert_eq!(rule(|r| r.newest(2)).select(tags).selected, ["1.27.3", "1.27.2"]);
        assert_eq!(
            rule(|r| r.include(r"\d+\.\d+")?.newest(2)).select(tags).selected,
            ["1.27", "1.26"]
        );
    }

    #[test]
    fn each_tag_left_out_says_why() {
        let rule = rule(|r| r.exclude("stable")?.range(">=1.25")?.newest(2));
        let selection = rule.select(TAGS.iter().copied());
        let why = |tag: &str| {
            selection
                .left_out
                .iter()
                .find(|(left, _)| left == tag)
                .map(|(_, reason)| *reason)
        };
        assert_eq!(why("stable"), Some(Reason::Excluded));
        assert_eq!(why("latest"), Some(Reason::NotAVersion));
        assert_eq!(why("1.28.0-rc.1"), Some(Reason::PreRelease));
        assert_eq!(why("1.24.0"), Some(Reason::OutOfRange));
        assert_eq!(why("1.27.2"), Some(Reason::NotNewest(2)));
        assert_eq!(why("v2.0.0"), None);
        assert_eq!(
            rule.select(["x", "1.0"]).left_out,
            [
                ("1.0".to_owned(), Reason::OutOfRange),
                ("x".to_owned(), Reason::NotAVersion)
            ]
        );
        let brief = selection.left_out_briefly(2);
        assert!(
            brief.starts_with(
                "matched by tag_exclude: stable; not a version: latest, mainline-alpine; pre-release: "
            ),
            "{brief}"
        );
        assert!(
            brief.ends_with(
                "outside tag_semver: 1, 1.24.0; older than the newest 2: 1.25.5, 1.26.2 (and 2 more)"
            ),
            "{brief}"
        );
    }

    #[test]
    fn patterns_alone_keep_tags_that_are_not_versions_and_pre_releases() {
        let selection = rule(|r| r.include(".*")).select(["latest", "1.0-rc.1", "1.0"]);
        assert_eq!(selection.selected, ["1.0", "1.0-rc.1", "latest"]);
        assert!(selection.left_out.is_empty());
        assert!(!rule(|r| r.exclude("x")).selects());
        assert!(rule(|r| r.newest(1)).selects());
    }

    #[test]
    fn a_tag_listed_twice_is_selected_once() {
        let selection = rule(|r| r.newest(5)).select(["1.0", "1.0", "2.0"]);
        assert_eq!(selection.selected, ["2.0", "1.0"]);
    }

    #[test]
    fn bad_values_say_what_is_wrong_and_what_is_expected() {
        let cases: Vec<(Result<TagRule, RuleError>, &str)> = vec![
            (
                TagRule::default().include("(1.27"),
                "tag_include = '(1.27' is not a valid regular expression: unclosed group",
            ),
            (
                TagRule::default().exclude("*x"),
                "tag_exclude = '*x' is not a valid regular expression: repetition operator missing expression",
            ),
            (
                TagRule::default().range(">=1.25 <2"),
                "tag_semver = '>=1.25 <2' is not a version range: ",
            ),
            (TagRule::default().range("latest"), "tag_semver = 'latest' is not a version range"),
            (TagRule::default().newest(0), "tag_newest = 0 is out of range: expected 1 to 1000"),
            (TagRule::default().newest(-3), "tag_newest = -3 is out of range"),
            (TagRule::default().newest(1001), "tag_newest = 1001 is out of range"),
        ];
        for (result, expected) in cases {
            let error = result.expect_err(expected).to_string();
            assert!(error.starts_with(expected), "{error}");
            assert!(
                !error.lines().next().unwrap().contains('^'),
                "one line of detail: {error}"
            );
        }
    }

    #[test]
    fn the_rule_reads_back_as_the_config_writes_it() {
        let rule = rule(|r| {
            r.include(r"1\..*")?
                .exclude(".*-rc.*")?
                .range(">=1.25, <2")?
                .newest(3)
                .map(|r| r.with_prereleases(true))
        });
        assert_eq!(
            rule.to_string(),
            r"tag_include = '1\..*', tag_exclude = '.*-rc.*', tag_semver = '>=1.25, <2', tag_newest = 3, tag_prereleases = true"
        );
    }
}
