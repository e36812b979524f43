//! Property tests of the reference and destination parsers: arbitrary input never panics,
//! and whatever parses is shown as text that parses back to the same value. The plain tests
//! at the end keep each bug they found.

use super::*;

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
