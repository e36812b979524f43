//! Property tests of the config loader: any text, TOML or not, is a config or an error
//! that points inside it, never a panic; and configs generated from the schema load into
//! the jobs they describe.

use std::fmt::Write as _;
use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::reference::proptests::{config, digest, tag, written_host, written_reference};

const ECR: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
// Never read: a relative lifecycle policy path resolves under a directory that does not exist.
const PATH: &str = "/nonexistent/images.toml";

const KEYS: &[&str] = &[
    "version",
    "jobs",
    "reserve_pulls",
    "transfers",
    "source",
    "tags",
    "destination",
    "to",
    "region",
    "profile",
    "platform",
    "engine",
    "referrers",
    "scan_on_push",
    "immutable_tags",
    "encryption",
    "kms_key",
    "lifecycle_policy",
    "repository_tags",
    "tag_include",
    "tag_exclude",
    "tag_semver",
    "tag_newest",
    "tag_prereleases",
];

/// A TOML basic string of text that never names a file outside the config's directory.
fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        written_reference().prop_map(|(written, _)| written),
        tag(),
        digest(),
        written_host().prop_map(|host| format!("{host}/")),
        "[a-zA-Z0-9:@._ *+^~<>=,|$()\\[\\]-]{0,24}",
        Just("docker".to_owned()),
        Just("registry".to_owned()),
        Just("kms".to_owned()),
        Just("linux/amd64".to_owned()),
        Just(format!("{ECR}/mirror/")),
    ]
    .prop_map(|text| format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\"")))
}

fn value() -> impl Strategy<Value = String> {
    let scalar = prop_oneof![
        4 => string(),
        2 => any::<i64>().prop_map(|n| n.to_string()),
        1 => (0..70i64).prop_map(|n| n.to_string()),
        1 => any::<bool>().prop_map(|b| b.to_string()),
        1 => Just("1.5".to_owned()),
        1 => Just("1979-05-27".to_owned()),
    ];
    scalar.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|items| format!("[{}]", items.join(", "))),
            prop::collection::btree_map(prop::sample::select(KEYS), inner, 0..3).prop_map(|pairs| {
                let pairs: Vec<String> = pairs
                    .iter()
                    .map(|(key, value)| format!("{key} = {value}"))
                    .collect();
                format!("{{ {} }}", pairs.join(", "))
            }),
        ]
    })
}

/// A table of the config's own vocabulary: its header and distinct keys with values of
/// any type.
fn table(header: &'static str) -> impl Strategy<Value = String> {
    // Most keys take strings: lean on them, to get past the types to the checks of values.
    let value = prop_oneof![2 => string(), 1 => value()];
    prop::collection::btree_map(prop::sample::select(KEYS), value, 0..6).prop_map(move |pairs| {
        let mut lines = vec![header.to_owned()];
        lines.extend(pairs.iter().map(|(key, value)| format!("{key} = {value}")));
        lines.join("\n")
    })
}

/// Text near a config: a version line, its tables in their places, and now and then a
/// table where it does not belong or a stray line.
fn tomlish() -> impl Strategy<Value = String> {
    let version = prop_oneof![
        4 => Just("version = 1".to_owned()),
        1 => "version = -?[0-9]{1,3}",
        1 => Just(String::new()),
    ];
    let odd = prop_oneof![table("[image]"), table("[sync]"), "\\PC{0,16}"];
    (
        version,
        prop::option::of(table("[sync]")),
        prop::option::of(table("[defaults]")),
        prop::collection::vec(table("[[image]]"), 0..4),
        prop::option::weighted(0.2, (odd, any::<prop::sample::Index>())),
    )
        .prop_map(|(version, sync, defaults, images, odd)| {
            let mut lines: Vec<String> = std::iter::once(version)
                .chain(sync)
                .chain(defaults)
                .chain(images)
                .collect();
            if let Some((line, at)) = odd {
                lines.insert(at.index(lines.len() + 1), line);
            }
            lines.join("\n")
        })
}

/// An error points at a line and column inside the text (or at the whole file).
fn assert_points_inside(text: &str, result: &Result<SyncConfig, ConfigError>) -> Result<(), TestCaseError> {
    if let Err(error) = result {
        let lines = text.split('\n').count();
        prop_assert!(
            (1..=lines).contains(&error.line),
            "line {} of {lines}: {error}",
            error.line
        );
        let width = text
            .split('\n')
            .nth(error.line - 1)
            .map_or(0, |line| line.chars().count());
        prop_assert!(
            (1..=width + 1).contains(&error.column),
            "column {} of {width}: {error}",
            error.column
        );
        prop_assert!(!error.message.is_empty());
    }
    Ok(())
}

/// One `[[image]]`: its TOML, and the (source, destination) of each job it should make.
type Image = (String, Vec<(Reference, Reference)>);

fn image(index: usize) -> impl Strategy<Value = Image> {
    (
        written_reference(),
        prop::collection::btree_set(tag(), 1..4),
        any::<bool>(),
        0..3usize,
        prop::option::of(prop::sample::select(&["docker", "registry"][..])),
        any::<bool>(),
    )
        .prop_map(move |((written, source), tags, use_tags, form, engine, scan)| {
            let last = written.rsplit('/').next().unwrap_or_default();
            let untagged = !last.contains(':') && !written.contains('@');
            let repository = format!("{ECR}/m{index}/app");
            // A digest alone gives the copy no tag: the destination names one.
            let (to, destination_tag) = if source.tag().is_none() {
                (format!("{repository}:pinned"), Some("pinned"))
            } else {
                (repository.clone(), None)
            };
            let destination = match form {
                0 => format!("destination = \"{to}\""),
                1 => format!("destination = [\"{to}\"]"),
                _ => format!("destination = {{ to = \"{to}\" }}"),
            };
            let mut toml = format!("[[image]]\nsource = \"{written}\"\n{destination}\n");
            if let Some(engine) = engine {
                writeln!(toml, "engine = \"{engine}\"\nplatform = \"linux/arm64\"").unwrap();
            }
            if scan {
                toml.push_str("scan_on_push = true\nrepository_tags = { team = \"a\" }\n");
            }
            let to_reference = |tag: &str| Reference::parse(&format!("{repository}:{tag}")).unwrap();
            let jobs = if use_tags && untagged {
                let quoted: Vec<String> = tags.iter().map(|tag| format!("\"{tag}\"")).collect();
                writeln!(toml, "tags = [{}]", quoted.join(", ")).unwrap();
                tags.iter()
                    .map(|tag| (source.with_tag(tag).unwrap(), to_reference(tag)))
                    .collect()
            } else {
                let tag = destination_tag.or(source.tag()).unwrap();
                vec![(source.clone(), to_reference(tag))]
            };
            (toml, jobs)
        })
}

fn valid_config() -> impl Strategy<Value = (String, Vec<(Reference, Reference)>, usize)> {
    (
        prop::option::of((1..=32usize, 0..=u64::from(u32::MAX), 1..=64usize)),
        any::<bool>(),
        1..=5usize,
    )
        .prop_flat_map(|(sync, defaults, count)| {
            let images: Vec<_> = (0..count).map(image).collect();
            (Just(sync), Just(defaults), images)
        })
        .prop_map(|(sync, defaults, images)| {
            let mut text = "version = 1\n".to_owned();
            if let Some((jobs, reserve, transfers)) = sync {
                writeln!(
                    text,
                    "[sync]\njobs = {jobs}\nreserve_pulls = {reserve}\ntransfers = {transfers}"
                )
                .unwrap();
            }
            if defaults {
                writeln!(
                    text,
                    "[defaults]\ndestination = \"{ECR}/unused/\"\nreferrers = false"
                )
                .unwrap();
            }
            let mut expected = Vec::new();
            for (toml, jobs) in images {
                text.push_str(&toml);
                expected.extend(jobs);
            }
            let concurrency = sync.map_or(DEFAULT_JOBS, |(jobs, _, _)| jobs);
            (text, expected, concurrency)
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_text_is_a_config_or_an_error_inside_it(text in any::<String>()) {
        let result = parse(&text, Path::new(PATH));
        assert_points_inside(&text, &result)?;
    }

    #[test]
    fn any_bytes_read_as_utf8_are_a_config_or_an_error_inside_it(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let text = String::from_utf8_lossy(&bytes);
        let result = parse(&text, Path::new(PATH));
        assert_points_inside(&text, &result)?;
    }

    #[test]
    fn tomlish_text_is_a_config_or_an_error_inside_it(text in tomlish()) {
        let result = parse(&text, Path::new(PATH));
        assert_points_inside(&text, &result)?;
        if let Ok(config) = result {
            prop_assert!(!config.jobs.is_empty() || !config.rules.is_empty());
        }
    }

    #[test]
    fn generated_valid_configs_load_into_their_jobs((text, expected, concurrency) in valid_config()) {
        let config = parse(&text, Path::new(PATH)).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(config.concurrency, concurrency);
        let jobs: Vec<(Reference, Reference)> = config
            .jobs
            .iter()
            .map(|job| (job.source.clone(), job.destination.resolve(&job.source, None).unwrap()))
            .collect();
        prop_assert_eq!(jobs, expected, "{}", text);
    }
}
