//! The Docker CLI plugin protocol: the metadata handshake, and docker's argv as a plugin gets
//! it (docker's global options, then `ecrcp`, then ecrcp's own arguments). Pure; the socket
//! that says docker has gone lives in `socket`, the install links in `install`.

pub mod install;
pub mod socket;

/// The first argument docker passes to ask a plugin who it is.
pub const METADATA_COMMAND: &str = "docker-cli-plugin-metadata";

/// The name docker finds the plugin under, and the subcommand it adds.
pub const PLUGIN_BINARY: &str = "docker-ecrcp";
pub const SUBCOMMAND: &str = "ecrcp";

/// The handshake answer. docker runs this for every plugin on `docker --help` and `docker
/// info`, so it is a constant: no config, no logging, no I/O but one write.
pub const METADATA: &str = concat!(
    r#"{"SchemaVersion":"0.1.0","Vendor":"ecrcp","Version":""#,
    env!("CARGO_PKG_VERSION"),
    r#"","ShortDescription":"Copy images into AWS ECR, as cp copies files","URL":""#,
    env!("CARGO_PKG_HOMEPAGE"),
    r#""}"#
);

/// How ecrcp was started, once docker's part of the argv is taken off.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Invocation {
    /// The name to show in help and messages: `ecrcp` or `docker ecrcp`.
    pub program: String,
    /// ecrcp's own arguments, without a program name.
    pub args: Vec<String>,
    /// docker's global options that the docker commands ecrcp runs must get too.
    pub docker_args: Vec<String>,
    /// A log filter from docker's `--log-level` or `--debug`.
    pub log_level: Option<String>,
}

/// docker's global options that take a value, and whether ecrcp hands them to the docker
/// commands it runs (it does for those that say which daemon and which config to use).
const VALUED: [(&str, Option<char>, bool); 7] = [
    ("config", None, true),
    ("context", Some('c'), true),
    ("host", Some('H'), true),
    ("log-level", Some('l'), false),
    ("tlscacert", None, true),
    ("tlscert", None, true),
    ("tlskey", None, true),
];
const FLAGS: [(&str, Option<char>, bool); 3] = [
    ("debug", Some('D'), false),
    ("tls", None, true),
    ("tlsverify", None, true),
];

/// Splits the argv of `ecrcp` or `docker-ecrcp` (program name first).
pub fn parse(argv: &[String]) -> Result<Invocation, String> {
    let invoked_as = argv.first().map_or(SUBCOMMAND, String::as_str);
    let is_plugin = std::path::Path::new(invoked_as)
        .file_name()
        .is_some_and(|name| name == PLUGIN_BINARY);
    let rest = argv.get(1..).unwrap_or_default();
    if !is_plugin {
        return Ok(Invocation {
            program: SUBCOMMAND.into(),
            args: rest.to_vec(),
            ..Invocation::default()
        });
    }
    let mut invocation = Invocation {
        program: format!("docker {SUBCOMMAND}"),
        ..Invocation::default()
    };
    let mut index = 0;
    while let Some(arg) = rest.get(index) {
        index += 1;
        if arg == SUBCOMMAND {
            invocation.args = rest[index..].to_vec();
            return Ok(invocation);
        }
        if arg == "help" && rest.get(index).map(String::as_str) == Some(SUBCOMMAND) {
            invocation.args = vec!["--help".into()];
            return Ok(invocation);
        }
        let Some((name, inline)) = option_name(arg) else {
            // Run directly as docker-ecrcp, not through docker: all of it is ecrcp's.
            invocation.args = rest[index - 1..].to_vec();
            return Ok(invocation);
        };
        if let Some(&(long, _, forward)) = FLAGS
            .iter()
            .find(|(long, short, _)| matches_option(&name, long, *short))
        {
            if forward {
                invocation.docker_args.push(arg.clone());
            }
            if long == "debug" {
                invocation.log_level = Some("debug".into());
            }
            continue;
        }
        let Some(&(long, _, forward)) = VALUED
            .iter()
            .find(|(long, short, _)| matches_option(&name, long, *short))
        else {
            return Err(format!("unknown docker option '{arg}' before '{SUBCOMMAND}'"));
        };
        let value = if let Some(value) = inline {
            value
        } else {
            index += 1;
            rest.get(index - 1)
                .cloned()
                .ok_or_else(|| format!("docker option '{arg}' needs a value"))?
        };
        if forward {
            invocation.docker_args.push(format!("--{long}={value}"));
        }
        if long == "log-level" && invocation.log_level.is_none() {
            invocation.log_level = Some(log_filter(&value));
        }
    }
    Ok(invocation)
}

/// `--name`, `--name=value`, `-n`, `-nvalue` into the name and an inline value.
fn option_name(arg: &str) -> Option<(String, Option<String>)> {
    if let Some(long) = arg.strip_prefix("--") {
        return Some(match long.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (long.to_owned(), None),
        });
    }
    let short = arg.strip_prefix('-')?;
    let mut chars = short.chars();
    let name = chars.next()?;
    let inline: String = chars.collect();
    Some((name.to_string(), (!inline.is_empty()).then_some(inline)))
}

fn matches_option(name: &str, long: &str, short: Option<char>) -> bool {
    name == long || short.is_some_and(|short| name.len() == 1 && name.starts_with(short))
}

/// docker's log levels as a tracing filter.
fn log_filter(level: &str) -> String {
    match level {
        "fatal" | "panic" => "error".into(),
        "warning" => "warn".into(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<String> {
        args.iter().map(|&arg| arg.to_owned()).collect()
    }

    #[test]
    fn docker_argv_splits_into_docker_options_and_ecrcp_arguments() {
        let cases: Vec<(&[&str], Invocation)> = vec![
            (
                &["ecrcp", "nginx", "mirror/"],
                Invocation {
                    program: "ecrcp".into(),
                    args: argv(&["nginx", "mirror/"]),
                    ..Invocation::default()
                },
            ),
            (
                &[
                    "/usr/libexec/docker/cli-plugins/docker-ecrcp",
                    "ecrcp",
                    "-v",
                    "nginx",
                    "mirror/",
                ],
                Invocation {
                    program: "docker ecrcp".into(),
                    args: argv(&["-v", "nginx", "mirror/"]),
                    ..Invocation::default()
                },
            ),
            (
                &["docker-ecrcp", "--log-level", "warn", "ecrcp", "nginx", "mirror/"],
                Invocation {
                    program: "docker ecrcp".into(),
                    args: argv(&["nginx", "mirror/"]),
                    log_level: Some("warn".into()),
                    ..Invocation::default()
                },
            ),
            (
                &[
                    "docker-ecrcp",
                    "--config=/c",
                    "-c",
                    "prod",
                    "-H",
                    "unix:///d.sock",
                    "--tlsverify",
                    "-D",
                    "ecrcp",
                    "x",
                    "y/",
                ],
                Invocation {
                    program: "docker ecrcp".into(),
                    args: argv(&["x", "y/"]),
                    docker_args: argv(&[
                        "--config=/c",
                        "--context=prod",
                        "--host=unix:///d.sock",
                        "--tlsverify",
                    ]),
                    log_level: Some("debug".into()),
                },
            ),
            (
                &["docker-ecrcp", "help", "ecrcp"],
                Invocation {
                    program: "docker ecrcp".into(),
                    args: argv(&["--help"]),
                    ..Invocation::default()
                },
            ),
            (
                &["docker-ecrcp", "nginx", "mirror/"],
                Invocation {
                    program: "docker ecrcp".into(),
                    args: argv(&["nginx", "mirror/"]),
                    ..Invocation::default()
                },
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(parse(&argv(input)).unwrap(), expected, "{input:?}");
        }
    }

    #[test]
    fn broken_docker_argv_is_an_error_naming_the_option() {
        let error = parse(&argv(&["docker-ecrcp", "--frobnicate", "ecrcp"])).unwrap_err();
        assert!(error.contains("'--frobnicate'"), "{error}");
        let error = parse(&argv(&["docker-ecrcp", "--config"])).unwrap_err();
        assert!(error.contains("'--config' needs a value"), "{error}");
    }

    #[test]
    fn metadata_is_the_json_docker_expects() {
        let value: serde_json::Value = serde_json::from_str(METADATA).unwrap();
        assert_eq!(value["SchemaVersion"], "0.1.0");
        assert_eq!(value["Vendor"], "ecrcp");
        assert_eq!(value["Version"], env!("CARGO_PKG_VERSION"));
        assert!(value["ShortDescription"].as_str().unwrap().contains("ECR"));
        assert!(value["URL"].as_str().unwrap().starts_with("https://"));
    }
}
