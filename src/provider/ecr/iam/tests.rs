//! Table tests of the policy builder: which actions on which ARNs each kind of plan yields.

use std::fmt::Write as _;

use super::*;
use crate::engine::kind::EngineKind;
use crate::plan::RepositorySettings;

/// A case: what it shows, the config, whether repositories may be created, and the
/// statements after Login.
type Case<'a> = (&'a str, String, bool, Vec<Expected<'a>>);
/// A statement: its Sid, its actions as changes to PUSH_AND_CREATE ("+x", "-x", or "=x" for
/// a list of its own), and its resources.
type Expected<'a> = (&'a str, Vec<&'a str>, Vec<&'a str>);
/// A KMS case: the key as configured, the resource, the alias condition, the actions.
type KmsCase<'a> = (Option<&'a str>, &'a str, Option<&'a str>, &'a [&'a str]);

const EAST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
const WEST_OTHER: &str = "222222222222.dkr.ecr.eu-west-1.amazonaws.com";

fn own() -> Registry {
    Registry {
        account: Some("123456789012".into()),
        region: Some("us-east-1".into()),
    }
}

/// The accesses of a sync config's jobs.
fn from_config(text: &str, own: &Registry, create: bool) -> Vec<Access> {
    let config = crate::config::parse(text, std::path::Path::new("images.toml")).expect("a valid config");
    config
        .jobs
        .iter()
        .flat_map(|job| job_accesses(job, own, create).unwrap())
        .collect()
}

fn statements(accesses: &[Access]) -> Vec<(String, Vec<String>, Vec<String>)> {
    build(accesses)
        .expect("a policy")
        .policy
        .statements
        .into_iter()
        .map(|statement| (statement.sid, statement.actions, statement.resources))
        .collect()
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|&item| item.to_owned()).collect()
}

const PUSH_AND_CREATE: &[&str] = &[
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:CompleteLayerUpload",
    "ecr:CreateRepository",
    "ecr:DeleteRepository",
    "ecr:DescribeRepositories",
    "ecr:GetDownloadUrlForLayer",
    "ecr:InitiateLayerUpload",
    "ecr:PutImage",
    "ecr:UploadLayerPart",
];

fn login() -> (String, Vec<String>, Vec<String>) {
    (
        "Login".into(),
        strings(&["ecr:GetAuthorizationToken"]),
        strings(&["*"]),
    )
}

#[test]
fn a_copy_into_ecr_may_push_into_and_create_exactly_its_repositories() {
    let config = format!(
        "version = 1\n[defaults]\ndestination = \"{EAST}/mirror/\"\n\
         [[image]]\nsource = \"nginx:1.27\"\n[[image]]\nsource = \"redis\"\ntags = [\"7\", \"7.4\"]\n"
    );
    assert_eq!(
        statements(&from_config(&config, &own(), true)),
        vec![
            login(),
            (
                "PushAndCreateRepositories".into(),
                strings(PUSH_AND_CREATE),
                strings(&[
                    "arn:aws:ecr:us-east-1:123456789012:repository/mirror/nginx",
                    "arn:aws:ecr:us-east-1:123456789012:repository/mirror/redis",
                ]),
            ),
        ]
    );
}

#[test]
#[allow(clippy::too_many_lines)] // one table
fn each_kind_of_plan_gets_the_actions_it_needs_and_no_others() {
    let ecr_source = format!("{EAST}/base/alpine:3.20");
    let cases: Vec<Case> = vec![
        (
            "repositories that exist already: no create-time actions",
            format!("version = 1\n[[image]]\nsource = \"nginx:1.27\"\ndestination = \"{EAST}/m/\"\n"),
            false,
            vec![(
                "Push",
                vec!["-ecr:CreateRepository", "-ecr:DeleteRepository"],
                vec!["arn:aws:ecr:us-east-1:123456789012:repository/m/nginx"],
            )],
        ),
        (
            "either engine may mount from any destination: both need the same",
            format!(
                "version = 1\n[[image]]\nsource = \"nginx:1.27\"\ndestination = \"{EAST}/m/\"\nengine = \"registry\"\n\
                 [[image]]\nsource = \"redis:7\"\ndestination = \"{EAST}/m/\"\nengine = \"docker\"\n"
            ),
            true,
            vec![(
                "PushAndCreateRepositories",
                vec![],
                vec![
                    "arn:aws:ecr:us-east-1:123456789012:repository/m/nginx",
                    "arn:aws:ecr:us-east-1:123456789012:repository/m/redis",
                ],
            )],
        ),
        (
            "repository tags, only where they are set",
            format!(
                "version = 1\n[[image]]\nsource = \"nginx:1.27\"\ndestination = \"{EAST}/m/\"\n\
                 repository_tags = {{ team = \"platform\" }}\n\
                 [[image]]\nsource = \"redis:7\"\ndestination = \"{EAST}/m/\"\n"
            ),
            true,
            vec![
                (
                    "PushAndCreateRepositories",
                    vec!["+ecr:TagResource"],
                    vec!["arn:aws:ecr:us-east-1:123456789012:repository/m/nginx"],
                ),
                (
                    "PushAndCreateRepositories2",
                    vec![],
                    vec!["arn:aws:ecr:us-east-1:123456789012:repository/m/redis"],
                ),
            ],
        ),
        (
            "an ECR source is read, its tags listed",
            format!("version = 1\n[[image]]\nsource = \"{ecr_source}\"\ndestination = \"{WEST_OTHER}/m/\"\n"),
            true,
            vec![
                (
                    "PushAndCreateRepositories",
                    vec![],
                    vec!["arn:aws:ecr:eu-west-1:222222222222:repository/m/base/alpine"],
                ),
                (
                    "ReadSources",
                    vec!["=ecr:BatchGetImage", "=ecr:GetDownloadUrlForLayer", "=ecr:ListImages"],
                    vec!["arn:aws:ecr:us-east-1:123456789012:repository/base/alpine"],
                ),
            ],
        ),
        (
            "a repository both read and written holds both sets",
            format!(
                "version = 1\n[[image]]\nsource = \"{EAST}/m/a:1\"\ndestination = \"{EAST}/m/a:2\"\n"
            ),
            true,
            vec![(
                "PushAndCreateRepositoriesAndReadSources",
                vec!["+ecr:ListImages"],
                vec!["arn:aws:ecr:us-east-1:123456789012:repository/m/a"],
            )],
        ),
        (
            "registries other than ECR need nothing but the login of the ECR ones",
            format!(
                "version = 1\n[[image]]\nsource = \"ghcr.io/org/app:1\"\ndestination = \"registry.example.com/m/\"\n\
                 [[image]]\nsource = \"nginx:1\"\ndestination = \"{EAST}/m/\"\n"
            ),
            true,
            vec![(
                "PushAndCreateRepositories",
                vec![],
                vec!["arn:aws:ecr:us-east-1:123456789012:repository/m/nginx"],
            )],
        ),
        (
            "destinations without a host land in the caller's own registry",
            "version = 1\n[[image]]\nsource = \"nginx:1\"\ndestination = \"mirror/\"\n".to_owned(),
            true,
            vec![(
                "PushAndCreateRepositories",
                vec![],
                vec!["arn:aws:ecr:us-east-1:123456789012:repository/mirror/nginx"],
            )],
        ),
        (
            "China and GovCloud registries have partitions of their own",
            "version = 1\n[[image]]\nsource = \"nginx:1\"\n\
             destination = \"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/m/\"\n\
             [[image]]\nsource = \"redis:1\"\n\
             destination = \"123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com/m/\"\n"
                .to_owned(),
            true,
            vec![(
                "PushAndCreateRepositories",
                vec![],
                vec![
                    "arn:aws-cn:ecr:cn-north-1:123456789012:repository/m/nginx",
                    "arn:aws-us-gov:ecr:us-gov-west-1:123456789012:repository/m/redis",
                ],
            )],
        ),
    ];
    for (what, config, create, expected) in cases {
        let expected: Vec<_> = std::iter::once(login())
            .chain(expected.into_iter().map(|(sid, changes, resources)| {
                let mut actions: BTreeSet<String> = if changes.iter().any(|c| c.starts_with('=')) {
                    BTreeSet::new()
                } else {
                    PUSH_AND_CREATE.iter().map(|&a| a.to_owned()).collect()
                };
                for change in changes {
                    let (sign, action) = change.split_at(1);
                    if sign == "-" {
                        actions.remove(action);
                    } else {
                        actions.insert(action.to_owned());
                    }
                }
                (sid.to_owned(), actions.into_iter().collect(), strings(&resources))
            }))
            .collect();
        assert_eq!(
            statements(&from_config(&config, &own(), create)),
            expected,
            "{what}"
        );
    }
}

#[test]
fn an_unknown_own_registry_is_any_account_and_the_notes_say_so() {
    let config = "version = 1\n[[image]]\nsource = \"nginx:1\"\ndestination = \"mirror/\"\n";
    let unknown = Registry {
        account: None,
        region: Some("eu-central-1".into()),
    };
    let built = build(&from_config(config, &unknown, true)).unwrap();
    assert_eq!(
        built.policy.statements[1].resources,
        ["arn:aws:ecr:eu-central-1:*:repository/mirror/nginx"]
    );
    assert_eq!(built.notes.len(), 1, "{:?}", built.notes);
    assert!(built.notes[0].contains("account of your own registry is unknown"));
    let nothing = Registry {
        account: None,
        region: None,
    };
    let built = build(&from_config(config, &nothing, true)).unwrap();
    assert_eq!(
        built.policy.statements[1].resources,
        ["arn:aws:ecr:*:*:repository/mirror/nginx"]
    );
    assert_eq!(built.notes.len(), 2, "{:?}", built.notes);
}

fn settings(encryption: Encryption) -> JobSettings {
    JobSettings {
        repository: RepositorySettings {
            encryption,
            lifecycle_policy: Some("{}".into()),
            ..RepositorySettings::default()
        },
        ..JobSettings::default()
    }
}

#[test]
fn destinations_without_sources_cover_their_directories() {
    let cases: &[(&str, &str)] = &[
        (
            "mirror/",
            "arn:aws:ecr:us-east-1:123456789012:repository/mirror/*",
        ),
        (
            "hub/library/",
            "arn:aws:ecr:us-east-1:123456789012:repository/hub/library/*",
        ),
        (EAST, "arn:aws:ecr:us-east-1:123456789012:repository/*"),
        (
            "mirror/nginx:1.27",
            "arn:aws:ecr:us-east-1:123456789012:repository/mirror/nginx",
        ),
        (
            "222222222222.dkr.ecr.eu-west-1.amazonaws.com/central/app",
            "arn:aws:ecr:eu-west-1:222222222222:repository/central/app",
        ),
    ];
    for &(destination, arn) in cases {
        let parsed = Destination::parse(destination).unwrap();
        let access = destination_access(&parsed, &JobSettings::default(), &own(), true).unwrap();
        assert_eq!(statements(&[access])[1].2, [arn], "{destination}");
    }
    let elsewhere = Destination::parse("registry.example.com/m/").unwrap();
    assert_eq!(
        destination_access(&elsewhere, &JobSettings::default(), &own(), true),
        None
    );
    assert!(build(&[]).is_none());
}

#[test]
fn a_directory_covers_exact_repositories_under_it_that_need_no_more() {
    let directory = destination_access(
        &Destination::parse("mirror/").unwrap(),
        &JobSettings::default(),
        &own(),
        true,
    )
    .unwrap();
    let exact = destination_access(
        &Destination::parse("mirror/nginx:1").unwrap(),
        &JobSettings::default(),
        &own(),
        true,
    )
    .unwrap();
    let lifecycle_policy = JobSettings {
        repository: RepositorySettings {
            lifecycle_policy: Some("{}".into()),
            ..RepositorySettings::default()
        },
        ..JobSettings::default()
    };
    let needs_more = destination_access(
        &Destination::parse("mirror/redis:1").unwrap(),
        &lifecycle_policy,
        &own(),
        true,
    )
    .unwrap();
    let resources: Vec<Vec<String>> = statements(&[exact, directory, needs_more])
        .into_iter()
        .map(|statement| statement.2)
        .collect();
    assert_eq!(
        resources,
        vec![
            strings(&["*"]),
            strings(&["arn:aws:ecr:us-east-1:123456789012:repository/mirror/redis"]),
            strings(&["arn:aws:ecr:us-east-1:123456789012:repository/mirror/*"]),
        ]
    );
}

#[test]
fn kms_keys_get_grant_actions_named_as_iam_can_match_them() {
    let registry = own();
    let customer = ["kms:CreateGrant", "kms:DescribeKey", "kms:RetireGrant"];
    let cases: &[KmsCase] = &[
        (
            Some("arn:aws:kms:us-east-1:999999999999:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
            "arn:aws:kms:us-east-1:999999999999:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            None,
            &customer,
        ),
        (
            Some("1234abcd-12ab-34cd-56ef-1234567890ab"),
            "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            None,
            &customer,
        ),
        (
            Some("alias/mirror"),
            "arn:aws:kms:us-east-1:123456789012:key/*",
            Some("alias/mirror"),
            &customer,
        ),
        (
            Some("arn:aws:kms:us-east-1:999999999999:alias/mirror"),
            "arn:aws:kms:us-east-1:999999999999:key/*",
            Some("alias/mirror"),
            &customer,
        ),
        (
            None,
            "arn:aws:kms:us-east-1:123456789012:key/*",
            None,
            &["kms:RetireGrant"],
        ),
    ];
    for &(key, resource, alias, actions) in cases {
        let access = destination_access(
            &Destination::parse("mirror/").unwrap(),
            &settings(Encryption::Kms {
                key: key.map(str::to_owned),
            }),
            &registry,
            true,
        )
        .unwrap();
        let built = build(&[access]).unwrap();
        let kms = built.policy.statements.last().unwrap();
        assert_eq!(kms.resources, [resource], "{key:?}");
        assert_eq!(kms.actions, actions, "{key:?}");
        let condition = kms
            .condition
            .as_ref()
            .map(|condition| condition["ForAnyValue:StringEquals"]["kms:ResourceAliases"].clone());
        assert_eq!(condition, alias.map(|alias| vec![alias.to_owned()]), "{key:?}");
        assert_eq!(
            built.notes.iter().any(|note| note.contains("aws/ecr")),
            key.is_none(),
            "{key:?}: {:?}",
            built.notes
        );
        // The lifecycle policy these settings carry is a create-time action.
        assert!(built.policy.statements[1]
            .actions
            .contains(&"ecr:PutLifecyclePolicy".to_owned()));
    }
    // No KMS without creation, nor with AES256.
    for (encryption, create) in [(Encryption::Kms { key: None }, false), (Encryption::Aes256, true)] {
        let access = destination_access(
            &Destination::parse("mirror/").unwrap(),
            &settings(encryption),
            &registry,
            create,
        )
        .unwrap();
        let built = build(&[access]).unwrap();
        assert!(
            built
                .policy
                .statements
                .iter()
                .all(|s| s.actions.iter().all(|a| a.starts_with("ecr:"))),
            "{built:?}"
        );
    }
}

#[test]
fn the_policy_is_valid_json_in_a_stable_order_whatever_the_order_of_the_plan() {
    let config = |order: &[&str]| {
        let mut text = "version = 1\n".to_owned();
        for source in order {
            write!(
                text,
                "[[image]]\nsource = \"{source}\"\ndestination = \"{EAST}/m/\"\n"
            )
            .unwrap();
        }
        write!(
            text,
            "[[image]]\nsource = \"{EAST}/base/x:1\"\ndestination = \"{WEST_OTHER}/m/\"\n"
        )
        .unwrap();
        text
    };
    let one = build(&from_config(
        &config(&["nginx:1", "redis:7", "alpine:3"]),
        &own(),
        true,
    ))
    .unwrap();
    let other = build(&from_config(
        &config(&["alpine:3", "nginx:1", "redis:7"]),
        &own(),
        true,
    ))
    .unwrap();
    let json = one.policy.to_json();
    assert_eq!(json, other.policy.to_json());
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed["Version"], "2012-10-17");
    assert!(json.find("\"Version\"") < json.find("\"Statement\""), "{json}");
    let sids: Vec<&str> = parsed["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|statement| statement["Sid"].as_str().unwrap())
        .collect();
    assert_eq!(sids, ["Login", "PushAndCreateRepositories", "ReadSources"]);
    assert!(parsed["Statement"][0].get("Condition").is_none());
}

#[test]
fn a_fleet_too_large_for_one_managed_policy_is_folded_into_prefixes() {
    let mut text = "version = 1\n".to_owned();
    for index in 0..300 {
        write!(
            text,
            "[[image]]\nsource = \"team/app{index}:1\"\ndestination = \"{EAST}/mirror/\"\n"
        )
        .unwrap();
    }
    write!(
        text,
        "[[image]]\nsource = \"nginx:1\"\ndestination = \"{WEST_OTHER}/central/\"\n"
    )
    .unwrap();
    let exact = build(&from_config(&text, &own(), true)).unwrap();
    assert_eq!(
        exact.policy.statements[1].resources,
        [
            "arn:aws:ecr:eu-west-1:222222222222:repository/central/nginx",
            "arn:aws:ecr:us-east-1:123456789012:repository/mirror/team/*",
        ]
    );
    assert!(exact.policy.size() <= MANAGED_POLICY_LIMIT);
    assert!(
        exact.notes[0].contains("longest common prefixes"),
        "{:?}",
        exact.notes
    );
}

#[test]
fn iam_wildcards_and_common_prefixes() {
    let cases = [
        ("a/*", "a/b/c", true),
        ("a/*", "a", false),
        ("a/?", "a/b", true),
        ("a/?", "a/bc", false),
        ("arn:*:x", "arn:aws:x", true),
        ("exact", "exact", true),
        ("exact", "exactly", false),
    ];
    for (pattern, text, expected) in cases {
        assert_eq!(matches(pattern, text), expected, "{pattern} {text}");
    }
    let prefix = |names: &[&str]| common_prefix(&strings(names));
    assert_eq!(prefix(&["m/a/x", "m/a/y", "m/b"]), "m");
    assert_eq!(prefix(&["m/app1", "m/app2"]), "m");
    assert_eq!(prefix(&["m/a", "m/a/b"]), "m");
    assert_eq!(prefix(&["m/", "m/a"]), "m");
    assert_eq!(prefix(&["a", "b"]), "");
    assert_eq!(prefix(&["only/one"]), "only/one");
}

#[test]
fn one_alias_in_two_registries_is_one_statement() {
    let settings = settings(Encryption::Kms {
        key: Some("alias/mirror".into()),
    });
    let accesses: Vec<Access> = [format!("{EAST}/m/"), format!("{WEST_OTHER}/m/")]
        .iter()
        .map(|destination| {
            destination_access(&Destination::parse(destination).unwrap(), &settings, &own(), true).unwrap()
        })
        .collect();
    let built = build(&accesses).unwrap();
    let kms: Vec<&Statement> = built
        .policy
        .statements
        .iter()
        .filter(|statement| statement.sid.starts_with("Kms"))
        .collect();
    assert_eq!(kms.len(), 1, "{built:?}");
    assert_eq!(
        kms[0].resources,
        [
            "arn:aws:kms:eu-west-1:222222222222:key/*",
            "arn:aws:kms:us-east-1:123456789012:key/*"
        ]
    );
}

/// `ecrcp iam-policy ARGS` as the command line hands it over.
fn subject(args: &[&str]) -> Result<crate::cli::IamSubject, String> {
    let args: Vec<String> = std::iter::once("iam-policy")
        .chain(args.iter().copied())
        .map(str::to_owned)
        .collect();
    let cli = crate::cli::parse("ecrcp", &args).map_err(|error| error.to_string())?;
    let Some(crate::cli::Command::IamPolicy(iam)) = cli.command else {
        panic!("not iam-policy: {args:?}");
    };
    iam.subject().map_err(|error| error.to_string())
}

#[test]
fn the_command_line_names_a_config_destinations_or_copies() {
    use crate::cli::IamSubject;
    assert!(
        matches!(subject(&[]), Ok(IamSubject::Config(path)) if path == std::path::Path::new(crate::config::DEFAULT_PATH))
    );
    assert!(
        matches!(subject(&["--config", "x.toml"]), Ok(IamSubject::Config(path)) if path == std::path::Path::new("x.toml"))
    );
    let Ok(IamSubject::Destinations(destinations, settings)) =
        subject(&["--engine", "registry", "--kms-key", "alias/k", "mirror/", EAST])
    else {
        panic!("destinations");
    };
    assert_eq!(destinations.len(), 2);
    assert_eq!(settings.engine, EngineKind::Registry);
    assert_eq!(
        settings.repository.encryption,
        Encryption::Kms {
            key: Some("alias/k".into())
        }
    );
    let Ok(IamSubject::Jobs(jobs)) = subject(&["--source", "nginx", "--source", "redis:7", "mirror/", EAST])
    else {
        panic!("jobs");
    };
    assert_eq!(jobs.len(), 4);
    let refused: &[(&[&str], &str)] = &[
        (&["--config", "x.toml", "mirror/"], "cannot be used with"),
        (
            &["--config", "x.toml", "--kms-key", "k"],
            "--config and the new-repository options",
        ),
        (&["--source", "nginx"], "missing destination after 'nginx'"),
        (
            &[
                "--source",
                "nginx",
                "--source",
                "docker.io/library/nginx",
                "mirror/",
            ],
            "would both be copied",
        ),
        (&["mirror/Nginx:1"], "mirror/Nginx:1"),
    ];
    for (args, expected) in refused {
        let error = subject(args).expect_err(&format!("{args:?}"));
        assert!(error.contains(expected), "{args:?}: {error}");
    }
}
