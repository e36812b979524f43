//! Property tests of the reference and destination parsers: arbitrary input never panics,
//! and whatever parses is shown as text that parses back to the same value. The plain tests
//! at the end keep each bug they found.
//!
//! The strategies for written references are `pub(crate)` so that the config's property
//! tests build their `source` and `destination` values from the same grammar.

use std::net::Ipv6Addr;

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

use super::*;

/// 256 cases unless `PROPTEST_CASES` says otherwise, so that the unit test step stays a
/// matter of seconds and a longer hunt is one variable away.
pub(crate) fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

fn port() -> impl Strategy<Value = Option<u16>> {
    prop::option::of(1..=u16::MAX)
}

fn with_port(host: String, port: Option<u16>) -> String {
    match port {
        Some(port) => format!("{host}:{port}"),
        None => host,
    }
}

fn label() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9]([a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?"
}

fn ipv6() -> impl Strategy<Value = String> {
    // Display writes IPv4-mapped addresses with dots, which docker refuses in a host.
    any::<u128>()
        .prop_map(|bits| Ipv6Addr::from(bits).to_string())
        .prop_filter("no embedded IPv4", |address| !address.contains('.'))
}

/// A registry host as someone might write it, in any case, with or without a port.
pub(crate) fn written_host() -> impl Strategy<Value = String> {
    prop_oneof![
        (prop::collection::vec(label(), 2..=4), port())
            .prop_map(|(labels, port)| with_port(labels.join("."), port)),
        (prop_oneof![Just("localhost"), Just("LocalHost")], port())
            .prop_map(|(host, port)| with_port(host.to_owned(), port)),
        (any::<[u8; 4]>(), port())
            .prop_map(|(ip, port)| { with_port(format!("{}.{}.{}.{}", ip[0], ip[1], ip[2], ip[3]), port) }),
        (ipv6(), port(), any::<bool>()).prop_map(|(address, port, upper)| {
            let address = if upper {
                address.to_ascii_uppercase()
            } else {
                address
            };
            with_port(format!("[{address}]"), port)
        }),
        // One label is a host when a port follows it...
        ("[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?", 1..=u16::MAX).prop_map(|(host, port)| format!("{host}:{port}")),
        // ...or, as docker reads it, when it has a capital letter.
        "[a-z0-9]{0,3}[A-Z][a-zA-Z0-9]{0,3}",
        Just("docker.io".to_owned()),
        Just("index.docker.io".to_owned()),
        Just("Registry-1.Docker.IO".to_owned()),
    ]
}

/// One path component: lowercase letters and digits joined by '.', '_', '__' or dashes.
pub(crate) fn component() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,6}((\\.|_|__|-{1,3})[a-z0-9]{1,6}){0,3}"
}

pub(crate) fn tag() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}",
        "[A-Za-z0-9_][A-Za-z0-9_.-]{127}",
    ]
}

pub(crate) fn digest() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9a-f]{64}".prop_map(|hex| format!("sha256:{hex}")),
        "[0-9a-f]{96}".prop_map(|hex| format!("sha384:{hex}")),
        "[0-9a-f]{128}".prop_map(|hex| format!("sha512:{hex}")),
    ]
}

/// A valid source as written, and the reference it names, worked out from its parts
/// (not by the parser under test).
pub(crate) fn written_reference() -> impl Strategy<Value = (String, Reference)> {
    (
        prop::option::of(written_host()),
        prop::collection::vec(component(), 1..=4),
        prop::option::of(tag()),
        prop::option::of(digest()),
    )
        .prop_map(|(host, mut path, tag, digest)| {
            if host.is_none() {
                // Without a host, a first component with a '.' (or `localhost`) would be
                // read as one: keep it a name.
                path[0] = path[0].replace('.', "-");
                if path.len() > 1 && path[0] == "localhost" {
                    path[0].insert(0, 'x');
                }
            }
            let path = path.join("/");
            let mut written = host.as_ref().map_or_else(String::new, |host| format!("{host}/"));
            written.push_str(&path);
            push_tag_and_digest(&mut written, tag.as_deref(), digest.as_deref());
            // Hosts are spelled in lowercase, except a single name that only its capitals
            // make a host: lowercase would make it a repository name.
            let registry = match host.map(|host| host.to_ascii_lowercase()) {
                None => DOCKER_HUB.to_owned(),
                Some(host) if DOCKER_HUB_ALIASES.contains(&host.as_str()) => DOCKER_HUB.to_owned(),
                Some(host) if host.contains(['.', ':']) || host == "localhost" => host,
                Some(host) => host.to_ascii_uppercase(),
            };
            let repository = if registry == DOCKER_HUB && !path.contains('/') {
                format!("library/{path}")
            } else {
                path
            };
            let tag = match (tag, &digest) {
                (None, None) => Some("latest".to_owned()),
                (tag, _) => tag,
            };
            let expected = Reference {
                registry,
                repository,
                tag,
                digest,
            };
            (written, expected)
        })
}

/// Text made of the pieces references are made of, in any order: mostly invalid, but near
/// enough to valid to reach every branch of the parsers.
fn reference_soup() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => component(),
        2 => written_host(),
        2 => Just("/".to_owned()),
        2 => Just(":".to_owned()),
        1 => Just("@".to_owned()),
        1 => tag(),
        1 => digest(),
        1 => "[\\[\\]:.@/_A-Za-z0-9-]{1,4}",
        1 => Just("library".to_owned()),
        1 => Just("docker.io".to_owned()),
        1 => "\\PC",
    ];
    prop::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat())
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), reference_soup()]
}

/// How a destination written without a host is shown, as it was written.
fn own_registry_stripped(shown: &str) -> Option<&str> {
    shown.strip_prefix(OWN_REGISTRY_SHOWN)?.strip_prefix('/')
}

/// A parsed destination shown and parsed again is the same destination. One written with no
/// host is shown under the own registry's placeholder; without it, it is what was written.
fn assert_destination_round_trips(destination: &Destination) -> Result<(), TestCaseError> {
    let shown = destination.to_string();
    let again = match (destination.registry(), own_registry_stripped(&shown)) {
        (Some(_), _) => Destination::parse(&shown),
        (None, Some(written)) => Destination::parse(written),
        (None, None) => return Err(TestCaseError::fail(format!("'{shown}' hides its own registry"))),
    };
    prop_assert_eq!(again, Ok(destination.clone()), "shown as {}", shown);
    Ok(())
}

fn assert_reference_round_trips(reference: &Reference) -> Result<(), TestCaseError> {
    let shown = reference.to_string();
    prop_assert_eq!(
        Reference::parse(&shown),
        Ok(reference.clone()),
        "shown as {}",
        shown
    );
    let familiar = reference.familiar();
    prop_assert_eq!(
        Reference::parse(&familiar),
        Ok(reference.clone()),
        "familiar {}",
        familiar
    );
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn written_references_parse_to_their_parts_and_round_trip((written, expected) in written_reference()) {
        prop_assert_eq!(Reference::parse(&written), Ok(expected.clone()));
        assert_reference_round_trips(&expected)?;
        let rebuilt = Reference::new(
            expected.registry(),
            expected.repository(),
            expected.tag(),
            expected.digest(),
        );
        prop_assert_eq!(rebuilt, Ok(expected));
    }

    #[test]
    fn any_text_either_fails_to_parse_or_round_trips(text in any_text()) {
        if let Ok(reference) = Reference::parse(&text) {
            assert_reference_round_trips(&reference)?;
            prop_assert!(reference.tag().is_some() || reference.digest().is_some());
        }
    }

    #[test]
    fn retagging_a_reference_round_trips((_, reference) in written_reference(), tag in tag()) {
        let retagged = reference.with_tag(&tag).unwrap();
        prop_assert_eq!(retagged.tag(), Some(tag.as_str()));
        prop_assert_eq!(retagged.digest(), None);
        assert_reference_round_trips(&retagged)?;
    }

    #[test]
    fn written_destinations_parse_and_round_trip(
        host in prop::option::of(written_host()),
        path in prop::collection::vec(component(), 1..=3),
        tag in prop::option::of(tag()),
        directory in any::<bool>(),
    ) {
        let mut path = path;
        if host.is_none() {
            // Without a host, a first component with a '.' is read as one.
            path[0] = path[0].replace('.', "-");
        }
        let mut written = host.map_or_else(String::new, |host| format!("{host}/"));
        written.push_str(&path.join("/"));
        if directory {
            written.push('/');
        } else if let Some(tag) = &tag {
            written.push(':');
            written.push_str(tag);
        }
        let parsed = Destination::parse(&written).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(parsed.is_directory(), directory || (parsed.registry().is_some() && !written.contains('/')));
        assert_destination_round_trips(&parsed)?;
    }

    #[test]
    fn any_destination_text_either_fails_to_parse_or_round_trips(text in any_text()) {
        if let Ok(destination) = Destination::parse(&text) {
            assert_destination_round_trips(&destination)?;
        }
        if let Ok(directory) = Destination::directory(&text) {
            prop_assert!(directory.is_directory());
            assert_destination_round_trips(&directory)?;
        }
    }

    #[test]
    fn resolved_destinations_round_trip(
        (_, source) in written_reference(),
        destination in any_text(),
        own in prop::option::of(written_host()),
    ) {
        let Ok(destination) = Destination::parse(&destination) else {
            return Ok(());
        };
        if let Ok(resolved) = destination.resolve(&source, own.as_deref()) {
            prop_assert_eq!(resolved.digest(), None);
            prop_assert!(resolved.tag().is_some());
            assert_reference_round_trips(&resolved)?;
        }
    }

    #[test]
    fn ecr_hosts_are_recognised_and_anything_else_is_not_a_panic(
        account in "[0-9]{12}",
        region in "[a-z]{2,3}(-[a-z]{2,5}){1,2}-[0-9]{1,2}",
        form in 0..ECR_HOST_FORMS.len(),
        port in prop::option::of(Just(":443")),
        upper in any::<bool>(),
        text in any_text(),
    ) {
        let (service, suffix, fips) = ECR_HOST_FORMS[form];
        let host = format!("{account}.{service}.{region}.{suffix}");
        let mut written = format!("{host}{}", port.unwrap_or(""));
        if upper {
            written = written.to_ascii_uppercase();
        }
        let expected = EcrHost { account, region, fips, host };
        prop_assert_eq!(EcrHost::parse(&written), Some(expected));
        let _ = EcrHost::parse(&text);
        let _ = check_ecr_repository(&text);
    }
}

/// Found by `written_references_parse_to_their_parts_and_round_trip`: docker reads `A/0`
/// as host `A` (a capital makes a single name a host), but the host was stored lowercased,
/// shown as `a/0`, and that names `docker.io/a/0`.
#[test]
fn a_host_named_a_host_by_its_capitals_alone_is_shown_as_a_host() {
    let cases: &[(&str, &str, &str)] = &[
        ("A/0", "A", "0"),
        ("MyReg/team/app:1", "MYREG", "team/app"),
        ("myREG/team/app:1", "MYREG", "team/app"),
        ("MyReg:5000/app", "myreg:5000", "app"),
        ("LOCALHOST/x", "localhost", "x"),
        ("Reg.Example/x", "reg.example", "x"),
    ];
    for &(written, registry, repository) in cases {
        let reference = Reference::parse(written).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (reference.registry(), reference.repository()),
            (registry, repository),
            "{written}"
        );
        assert_eq!(
            Reference::parse(&reference.to_string()),
            Ok(reference.clone()),
            "{written}"
        );
        assert_eq!(
            Reference::parse(&reference.familiar()),
            Ok(reference.clone()),
            "{written}"
        );
    }
    let destinations = [
        ("A/0", "A/0"),
        ("a/", "<your ECR registry>/a/"),
        ("A/", "A/"),
        ("MyReg/team/", "MYREG/team/"),
    ];
    for (written, shown) in destinations {
        let destination = Destination::parse(written).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(destination.to_string(), shown, "{written}");
        if destination.registry().is_some() {
            assert_eq!(Destination::parse(shown), Ok(destination), "{written}");
        }
    }
    // The own registry, given as a single name, is a host too.
    let source = Reference::parse("nginx:1").unwrap();
    let resolved = Destination::parse("mirror/")
        .unwrap()
        .resolve(&source, Some("own"))
        .unwrap();
    assert_eq!(resolved.to_string(), "OWN/mirror/nginx:1");
    assert_eq!(Reference::parse(&resolved.to_string()), Ok(resolved));
}

/// Found by `any_text_either_fails_to_parse_or_round_trips`: the familiar form dropped
/// `docker.io/` even when the first component of what was left then reads as a host, so
/// `docker.io/my.org/app` was shown as `my.org/app`, an image on another registry.
#[test]
fn the_familiar_form_keeps_docker_io_when_the_path_would_read_as_a_host() {
    let cases: &[(&str, &str)] = &[
        ("docker.io/my.org/app", "docker.io/my.org/app:latest"),
        (
            "docker.io/docker.io/library",
            "docker.io/docker.io/library:latest",
        ),
        ("docker.io/localhost/x:1", "docker.io/localhost/x:1"),
        ("docker.io/library/localhost", "localhost:latest"),
        ("docker.io/library/my.app", "my.app:latest"),
        ("docker.io/team/my.app", "team/my.app:latest"),
        ("ghcr.io/my.org/app", "ghcr.io/my.org/app:latest"),
    ];
    for &(written, familiar) in cases {
        let reference = Reference::parse(written).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reference.familiar(), familiar, "{written}");
        assert_eq!(Reference::parse(familiar), Ok(reference), "{written}");
    }
}
