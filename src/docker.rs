//! The docker CLI process boundary: every `docker` command is built here as a value and run
//! here, and nowhere else spawns `docker`. Secrets reach docker only through stdin.

use std::future::Future;
use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};

use tokio::io::AsyncWriteExt;

use crate::reference::Reference;
use crate::secret::Secret;

/// One docker invocation: its arguments, what it reads on stdin, and whether its progress
/// output may go to the user's terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerCommand {
    args: Vec<String>,
    stdin: Option<Secret>,
    progress: bool,
}

impl DockerCommand {
    fn new<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        DockerCommand {
            args: args.into_iter().map(Into::into).collect(),
            stdin: None,
            progress: false,
        }
    }

    /// `docker pull`: by digest when the reference has one, so a tag that moved meanwhile
    /// cannot change what is copied.
    pub fn pull(source: &Reference, platform: Option<&str>, progress: bool) -> Self {
        let mut args = vec!["pull".to_owned()];
        if let Some(platform) = platform {
            args.extend(["--platform".to_owned(), platform.to_owned()]);
        }
        if !progress {
            args.push("--quiet".to_owned());
        }
        args.push(local_name(source));
        DockerCommand {
            progress,
            ..DockerCommand::new(args)
        }
    }

    pub fn tag(source: &Reference, destination: &Reference) -> Self {
        DockerCommand::new(["tag".to_owned(), local_name(source), local_name(destination)])
    }

    pub fn push(destination: &Reference, progress: bool) -> Self {
        let mut args = vec!["push".to_owned()];
        if !progress {
            args.push("--quiet".to_owned());
        }
        args.push(local_name(destination));
        DockerCommand {
            progress,
            ..DockerCommand::new(args)
        }
    }

    /// `docker login` with the password on stdin: it never appears in an argv that `ps`
    /// or a process accounting log could show.
    pub fn login(host: &str, username: &str, password: Secret) -> Self {
        DockerCommand {
            stdin: Some(password),
            ..DockerCommand::new(["login", "--username", username, "--password-stdin", host])
        }
    }

    /// The local image ID (the digest of the image config, which survives a push to another
    /// registry unchanged) and the manifest digests docker recorded for the image, all on one
    /// line: `ID REPO@DIGEST...`. After a push these include the digest the destination serves.
    pub fn inspect(image: &Reference) -> Self {
        DockerCommand::new([
            "image".to_owned(),
            "inspect".to_owned(),
            "--format".to_owned(),
            "{{.Id}}{{range .RepoDigests}} {{.}}{{end}}".to_owned(),
            local_name(image),
        ])
    }

    /// Removes one local tag. The image stays while other tags (the pulled source) name it.
    pub fn untag(image: &Reference) -> Self {
        DockerCommand::new(["image".to_owned(), "rm".to_owned(), local_name(image)])
    }

    /// The daemon's own platform, which is what `docker pull` picks when none is given.
    pub fn server_platform() -> Self {
        DockerCommand::new(["version", "--format", "{{.Server.Os}}/{{.Server.Arch}}"])
    }

    /// The daemon's storage drivers, as JSON: the containerd image store reports
    /// `["driver-type", "io.containerd.snapshotter.v1"]` there.
    pub fn driver_status() -> Self {
        DockerCommand::new(["info", "--format", "{{json .DriverStatus}}"])
    }

    pub fn args(&self) -> &[String] {
        &self.args
    }

    pub fn stdin(&self) -> Option<&Secret> {
        self.stdin.as_ref()
    }

    pub fn shows_progress(&self) -> bool {
        self.progress
    }
}

/// The name docker knows an image by locally. With a digest, docker refuses `name:tag@digest`
/// in some versions, so the digest alone is used.
fn local_name(image: &Reference) -> String {
    match image.digest() {
        Some(digest) => format!("{}/{}@{digest}", image.registry(), image.repository()),
        None => image.to_string(),
    }
}

/// What a finished docker command printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerOutput {
    pub stdout: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("cannot run '{program}': {source}\nnote: install docker (apt install docker.io) or set ECRCP_DOCKER to the docker CLI")]
    NotInstalled { program: String, source: std::io::Error },
    #[error("cannot reach the docker daemon ({detail})\nnote: is dockerd running? check DOCKER_HOST and `docker context ls`")]
    DaemonUnreachable { detail: String },
    #[error("`{argv}` hit the registry's pull rate limit: {stderr}\nnote: wait for the window to pass, or `docker login` to an account with a higher limit")]
    RateLimited { argv: String, stderr: String },
    #[error("`{argv}` failed ({status}): {stderr}")]
    Failed {
        argv: String,
        status: String,
        stderr: String,
    },
}

impl DockerError {
    /// Whether the same command may succeed if tried again: the network or the registry
    /// hiccuped. A quota or a refusal is final.
    pub fn is_transient(&self) -> bool {
        const PASSING: [&str; 9] = [
            "connection reset",
            "i/o timeout",
            "TLS handshake timeout",
            "unexpected EOF",
            "500 Internal Server Error",
            "502 Bad Gateway",
            "503 Service Unavailable",
            "504 Gateway Timeout",
            "broken pipe",
        ];
        match self {
            DockerError::Failed { stderr, .. } => PASSING.iter().any(|needle| stderr.contains(needle)),
            _ => false,
        }
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs docker commands. The real one is [`DockerCli`]; tests may record argv instead.
pub trait DockerRunner: Send + Sync {
    fn run<'a>(&'a self, command: &'a DockerCommand) -> BoxFuture<'a, Result<DockerOutput, DockerError>>;
}

/// The `docker` CLI found on PATH (or `ECRCP_DOCKER`), with docker's global options (from the
/// plugin invocation) put before every subcommand. DOCKER_HOST, DOCKER_CONFIG and
/// DOCKER_CONTEXT reach it through the inherited environment.
#[derive(Debug, Clone)]
pub struct DockerCli {
    program: PathBuf,
    global_args: Vec<String>,
}

impl DockerCli {
    pub fn from_env() -> Self {
        let program = std::env::var_os("ECRCP_DOCKER").map_or_else(|| PathBuf::from("docker"), PathBuf::from);
        DockerCli {
            program,
            global_args: Vec::new(),
        }
    }

    #[must_use]
    pub fn with_global_args(mut self, args: Vec<String>) -> Self {
        self.global_args = args;
        self
    }

    /// docker's config directory, where its logins are: `--config` as given to docker,
    /// else `DOCKER_CONFIG`, else `~/.docker`, as the docker CLI decides.
    pub fn config_dir(&self) -> Option<PathBuf> {
        self.global_args
            .iter()
            .find_map(|arg| arg.strip_prefix("--config="))
            .map(PathBuf::from)
            .or_else(default_config_dir)
    }

    fn argv_text(&self, command: &DockerCommand) -> String {
        std::iter::once(self.program.display().to_string())
            .chain(self.global_args.iter().cloned())
            .chain(command.args().iter().cloned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    async fn run_command(&self, command: &DockerCommand) -> Result<DockerOutput, DockerError> {
        let argv = self.argv_text(command);
        tracing::debug!(argv = %argv, "running docker");
        let mut child = tokio::process::Command::new(&self.program);
        child
            .args(&self.global_args)
            .args(command.args())
            .stdin(if command.stdin().is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        if command.shows_progress() {
            // docker draws its progress on stdout; ecrcp's stdout is for `-v` lines, so the
            // progress goes to the terminal on stderr instead.
            if let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() {
                child.stdout(Stdio::from(fd));
            }
            child.stderr(Stdio::inherit());
        }
        let mut child = child.spawn().map_err(|source| DockerError::NotInstalled {
            program: self.program.display().to_string(),
            source,
        })?;
        if let (Some(secret), Some(mut stdin)) = (command.stdin(), child.stdin.take()) {
            // A write error shows up as docker's own failure below.
            let _ = stdin.write_all(secret.expose().as_bytes()).await;
            drop(stdin);
        }
        let output = child
            .wait_with_output()
            .await
            .map_err(|source| DockerError::NotInstalled {
                program: self.program.display().to_string(),
                source,
            })?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            return Ok(DockerOutput { stdout });
        }
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        Err(classify_failure(argv, output.status, &stderr))
    }
}

impl DockerRunner for DockerCli {
    fn run<'a>(&'a self, command: &'a DockerCommand) -> BoxFuture<'a, Result<DockerOutput, DockerError>> {
        Box::pin(self.run_command(command))
    }
}

fn classify_failure(argv: String, status: ExitStatus, stderr: &str) -> DockerError {
    const UNREACHABLE: [&str; 3] = [
        "Cannot connect to the Docker daemon",
        "error during connect",
        "Is the docker daemon running?",
    ];
    if UNREACHABLE.iter().any(|needle| stderr.contains(needle)) {
        return DockerError::DaemonUnreachable {
            detail: last_line(stderr).to_owned(),
        };
    }
    if stderr.contains("toomanyrequests") || stderr.contains("pull rate limit") {
        return DockerError::RateLimited {
            argv,
            stderr: last_line(stderr).to_owned(),
        };
    }
    let status = status.code().map_or_else(
        || "killed by a signal".to_owned(),
        |code| format!("exit status {code}"),
    );
    let stderr = if stderr.is_empty() {
        "(no output; docker showed its progress on the terminal)".to_owned()
    } else {
        last_line(stderr).to_owned()
    };
    DockerError::Failed { argv, status, stderr }
}

/// docker prints context before the line that says what went wrong; that line is the one
/// worth repeating.
fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or(text)
        .trim()
}

/// Whether docker's progress should be shown: only when a person watches a terminal.
pub fn progress_wanted() -> bool {
    std::io::stderr().is_terminal()
}

/// docker's config directory when no `--config` is given: `DOCKER_CONFIG`, else
/// `~/.docker`, as the docker CLI decides.
pub fn default_config_dir() -> Option<PathBuf> {
    std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn reference(text: &str) -> Reference {
        Reference::parse(text).unwrap()
    }

    #[test]
    fn commands_build_the_argv_docker_expects() {
        let nginx = reference("nginx:1.27");
        let dest = reference("123456789012.dkr.ecr.us-east-1.amazonaws.com/mirror/nginx:1.27");
        let pinned =
            reference("nginx:1.27@sha256:0000000000000000000000000000000000000000000000000000000000000001");
        let cases: Vec<(DockerCommand, Vec<&str>)> = vec![
            (
                DockerCommand::pull(&nginx, None, false),
                vec!["pull", "--quiet", "docker.io/library/nginx:1.27"],
            ),
            (
                DockerCommand::pull(&nginx, Some("linux/arm64"), true),
                vec!["pull", "--platform", "linux/arm64", "docker.io/library/nginx:1.27"],
            ),
            (
                DockerCommand::pull(&pinned, None, false),
                vec![
                    "pull",
                    "--quiet",
                    "docker.io/library/nginx@sha256:0000000000000000000000000000000000000000000000000000000000000001",
                ],
            ),
            (
                DockerCommand::tag(&nginx, &dest),
                vec![
                    "tag",
                    "docker.io/library/nginx:1.27",
                    "123456789012.dkr.ecr.us-east-1.amazonaws.com/mirror/nginx:1.27",
                ],
            ),
            (
                DockerCommand::push(&dest, false),
                vec![
                    "push",
                    "--quiet",
                    "123456789012.dkr.ecr.us-east-1.amazonaws.com/mirror/nginx:1.27",
                ],
            ),
            (
                DockerCommand::untag(&dest),
                vec![
                    "image",
                    "rm",
                    "123456789012.dkr.ecr.us-east-1.amazonaws.com/mirror/nginx:1.27",
                ],
            ),
            (
                DockerCommand::inspect(&nginx),
                vec![
                    "image",
                    "inspect",
                    "--format",
                    "{{.Id}}{{range .RepoDigests}} {{.}}{{end}}",
                    "docker.io/library/nginx:1.27",
                ],
            ),
        ];
        for (command, expected) in cases {
            assert_eq!(command.args(), expected.as_slice());
        }
    }

    #[test]
    fn login_passes_the_password_on_stdin_never_in_argv() {
        let command = DockerCommand::login("h.example", "AWS", Secret::new("s3cr3t-token"));
        assert_eq!(
            command.args(),
            ["login", "--username", "AWS", "--password-stdin", "h.example"]
        );
        assert!(command.args().iter().all(|arg| !arg.contains("s3cr3t")));
        assert_eq!(command.stdin().map(Secret::expose), Some("s3cr3t-token"));
        assert!(!format!("{command:?}").contains("s3cr3t"));
    }

    #[test]
    fn failures_are_classified_with_a_hint() {
        let status = ExitStatus::from_raw(1 << 8);
        let unreachable = classify_failure(
            "docker pull x".into(),
            status,
            "Cannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon running?",
        );
        assert!(matches!(unreachable, DockerError::DaemonUnreachable { .. }));
        assert!(unreachable.to_string().contains("DOCKER_HOST"));

        let failed = classify_failure(
            "docker pull nope".into(),
            status,
            "Using default tag\nError response from daemon: manifest unknown",
        );
        assert_eq!(
            failed.to_string(),
            "`docker pull nope` failed (exit status 1): Error response from daemon: manifest unknown"
        );
        assert!(!failed.is_transient());

        let limited = classify_failure(
            "docker pull nginx".into(),
            status,
            "Error response from daemon: toomanyrequests: You have reached your pull rate limit.",
        );
        assert!(matches!(limited, DockerError::RateLimited { .. }));
        assert!(!limited.is_transient(), "a quota is never retried");

        let reset = classify_failure(
            "docker push x".into(),
            status,
            "read tcp 10.0.0.1:443: read: connection reset by peer",
        );
        assert!(reset.is_transient());
    }
}
