//! The docker CLI process boundary: every `docker` command is built here as a value and run
//! here, and nowhere else spawns `docker`. Secrets reach docker only through stdin. Every
//! command has a time limit, and its stderr is always read (and passed on to the terminal
//! when docker shows progress there), so that every failure can be classified.

use std::collections::VecDeque;
use std::future::Future;
use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWriteExt};

use crate::process::{self, Timeouts};
use crate::reference::Reference;
use crate::secret::Secret;

/// One docker invocation: its arguments, what it reads on stdin, whether its progress
/// output may go to the user's terminal, and what kind of step it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerCommand {
    args: Vec<String>,
    stdin: Option<Secret>,
    progress: bool,
    kind: Kind,
}

/// What a command is for: this decides its time limit, and whether it still runs once the
/// copy was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `pull` and `push` move whole images: the transfer limit.
    Transfer,
    /// `tag`, `login`, `version`: the command limit; not started once cancelled.
    Step,
    /// `image inspect`, `image rm`: the command limit; they still run once cancelled, to
    /// remove the temporary tag.
    Cleanup,
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
            kind: Kind::Step,
        }
    }

    /// `docker pull`: by digest when the reference has one, so a tag that moved meanwhile
    /// cannot change what is copied. Without `--quiet`: docker's line per layer step (see
    /// [`layers_done`]) is how a retry tells an attempt that made progress.
    pub fn pull(source: &Reference, platform: Option<&str>, progress: bool) -> Self {
        let mut args = vec!["pull".to_owned()];
        if let Some(platform) = platform {
            args.extend(["--platform".to_owned(), platform.to_owned()]);
        }
        args.push(local_name(source));
        DockerCommand {
            progress,
            kind: Kind::Transfer,
            ..DockerCommand::new(args)
        }
    }

    pub fn tag(source: &Reference, destination: &Reference) -> Self {
        DockerCommand::new(["tag".to_owned(), local_name(source), local_name(destination)])
    }

    /// `docker push`, without `--quiet` for the same reason as [`DockerCommand::pull`].
    pub fn push(destination: &Reference, progress: bool) -> Self {
        DockerCommand {
            progress,
            kind: Kind::Transfer,
            ..DockerCommand::new(["push".to_owned(), local_name(destination)])
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
    /// registry unchanged), its platform, and the manifest digests docker recorded for the
    /// image (where it was pulled from or pushed to), all on one line:
    /// `ID OS/ARCH[/VARIANT] REPO@DIGEST...`. `index` reads the variant: docker fails the
    /// template on a missing `.Variant` (an image without one).
    pub fn inspect(image: &Reference) -> Self {
        DockerCommand {
            kind: Kind::Cleanup,
            ..DockerCommand::new([
                "image".to_owned(),
                "inspect".to_owned(),
                "--format".to_owned(),
                "{{.Id}} {{.Os}}/{{.Architecture}}{{with index . \"Variant\"}}/{{.}}{{end}}{{range .RepoDigests}} {{.}}{{end}}"
                    .to_owned(),
                local_name(image),
            ])
        }
    }

    /// Removes one local tag. The image stays while other tags (the pulled source) name it.
    pub fn untag(image: &Reference) -> Self {
        DockerCommand {
            kind: Kind::Cleanup,
            ..DockerCommand::new(["image".to_owned(), "rm".to_owned(), local_name(image)])
        }
    }

    /// The daemon's own platform, which is what `docker pull` picks when none is given.
    pub fn server_platform() -> Self {
        DockerCommand::new(["version", "--format", "{{.Server.Os}}/{{.Server.Arch}}"])
    }

    /// docker's data root, where it keeps images: a path on the daemon's machine.
    pub fn data_root() -> Self {
        DockerCommand::new(["info", "--format", "{{.DockerRootDir}}"])
    }

    /// A question only the daemon answers, and at once: `docker version` prints the
    /// client's part without a daemon, then fails with "Cannot connect to the Docker daemon".
    pub fn ping() -> Self {
        DockerCommand::new(["version", "--format", "{{.Server.Version}}"])
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
pub fn local_name(image: &Reference) -> String {
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
    #[error("cannot run '{program}': {source}\nnote: install docker (apt install docker.io) or set ECRCP_DOCKER to the docker CLI; or copy without docker: --engine registry (engine = \"registry\" in images.toml)")]
    NotInstalled { program: String, source: std::io::Error },
    #[error("cannot reach the docker daemon ({detail})\nnote: is dockerd running? check DOCKER_HOST and `docker context ls`; or copy without docker: --engine registry (engine = \"registry\" in images.toml)")]
    DaemonUnreachable { detail: String },
    #[error("the docker daemon did not answer again within {} ({detail})\nnote: is dockerd running? check `systemctl status docker` and `journalctl -u docker`, DOCKER_HOST and `docker context ls`; to wait longer for a daemon that restarts, set {}", process::show_limit(*waited), process::COMMAND_SETTING)]
    DaemonGone {
        /// How long ecrcp waited for it: the command limit.
        waited: Duration,
        /// What docker said last.
        detail: String,
    },
    #[error("`{argv}` hit the registry's pull rate limit: {stderr}\nnote: wait for the window to pass, or `docker login` to an account with a higher limit")]
    RateLimited { argv: String, stderr: String },
    #[error("`{argv}` failed ({status}): {stderr}")]
    Failed {
        argv: String,
        status: String,
        stderr: String,
        /// The layers docker reported at the far end before it failed ([`layers_done`]).
        layers_done: usize,
        /// The layers docker named as still to move when it failed ([`layers_left`]), if
        /// it named any.
        layers_left: Option<usize>,
    },
    #[error("`{argv}` did not finish within {} and was stopped\nnote: to allow it longer, set {}", process::show_limit(*limit), if *transfer { process::TRANSFER_SETTING } else { process::COMMAND_SETTING })]
    TimedOut {
        argv: String,
        limit: Duration,
        /// Whether the transfer limit (pull, push) was hit, rather than the command limit.
        transfer: bool,
    },
    #[error("`{argv}` stopped: ecrcp was interrupted")]
    Cancelled { argv: String },
    /// The disk docker writes to filled up. Final: the same image needs the same room.
    #[error("`{argv}` ran out of disk space {}: {stderr}\nnote: free space there (`docker system prune` removes unused images), move docker's data root to a larger disk, or copy without docker: --engine registry (engine = \"registry\" in images.toml) streams from registry to registry and needs no disk", space.describe())]
    NoSpace {
        argv: String,
        stderr: String,
        space: Space,
    },
}

/// Where a docker command ran out of disk space, and how much the image needed, as far as
/// ecrcp could find out after the failure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Space {
    /// docker's data root, as the daemon reported it (`docker info`): a path on the
    /// daemon's machine, which need not be this one.
    pub data_root: Option<String>,
    /// The bytes of the image's layers and config as its manifest lists them (compressed).
    pub image_bytes: Option<u64>,
}

impl Space {
    fn describe(&self) -> String {
        let place = match &self.data_root {
            Some(root) => format!("in docker's data root '{root}' (on the docker daemon's machine)"),
            None => "in docker's data root (on the docker daemon's machine) or docker's config directory"
                .to_owned(),
        };
        match self.image_bytes {
            Some(bytes) => format!(
                "{place}; the image's layers are {} compressed, and take more once unpacked",
                crate::progress::bytes(bytes)
            ),
            None => place,
        }
    }
}

impl DockerError {
    /// Whether the same command may succeed if tried again: the network or the registry
    /// hiccuped. A quota or a refusal is final. The texts are docker's own, as the test bed's
    /// faulty registry front made it print them (see the table in the tests below).
    pub fn is_transient(&self) -> bool {
        match self {
            DockerError::Failed { stderr, .. } => is_passing(stderr),
            _ => false,
        }
    }

    /// Whether a registry throttled the command (429, `toomanyrequests`) past the retries:
    /// a registry saying "later", as Docker Hub's pull quota ([`DockerError::RateLimited`])
    /// does, so sync defers the image rather than counting it failed.
    pub fn is_throttled(&self) -> bool {
        match self {
            DockerError::RateLimited { .. } => true,
            DockerError::Failed { stderr, .. } => THROTTLED.iter().any(|needle| stderr.contains(needle)),
            _ => false,
        }
    }

    /// Whether the registry refused docker's login as ECR refuses an expired token (or a
    /// login docker no longer holds): a new token and `docker login` may get the command
    /// through, which trying again as it is never does.
    pub fn refuses_the_login(&self) -> bool {
        // ECR's own words, old and new, and docker's when a registry answers 401 to a
        // login it had taken or when it holds none for the registry; under the containerd
        // image store docker names the status alone (`unexpected status from PUT request to
        // URL: 401 Unauthorized`, dockerd 26.1).
        const REFUSED: [&str; 5] = [
            "authorization token has expired",
            "Authorization Token has expired",
            "unauthorized: authentication required",
            "no basic auth credentials",
            ": 401 Unauthorized",
        ];
        match self {
            DockerError::Failed { stderr, .. } => REFUSED.iter().any(|needle| stderr.contains(needle)),
            _ => false,
        }
    }

    /// How many layers docker reported at the far end (pushed, already there, pulled)
    /// before this failure: more than an earlier attempt means this one made progress.
    pub fn layers_done(&self) -> usize {
        match self {
            DockerError::Failed { layers_done, .. } => *layers_done,
            _ => 0,
        }
    }

    /// How many layers docker named as still to move when this failure came, if it named
    /// any: fewer than after an earlier attempt means this one made progress. Under the
    /// containerd image store a failed push names only these, never a layer it sent.
    pub fn layers_left(&self) -> Option<usize> {
        match self {
            DockerError::Failed { layers_left, .. } => *layers_left,
            _ => None,
        }
    }

    /// Whether the daemon may have gone away under this command: it refused the connection
    /// (not running, restarting), or the connection to it closed in the middle of a pull or
    /// push. For a cut, docker's CLI prints a bare `unexpected EOF` (seen on the test bed for
    /// dockerd stopped with SIGTERM and SIGKILL, mid-pull and mid-push), which a registry's
    /// cut never is: docker names the request (`Patch "URL": EOF`) for those. Only a ping
    /// tells for sure, which is what the docker engine asks next.
    pub fn daemon_may_be_away(&self) -> bool {
        match self {
            DockerError::DaemonUnreachable { .. } => true,
            DockerError::Failed { stderr, .. } => is_daemon_cut(stderr),
            _ => false,
        }
    }

    /// Whether every further copy would meet this failure too: no docker, no daemon, a
    /// daemon that stopped answering quick commands, or a cancelled run.
    pub fn stops_the_run(&self) -> bool {
        match self {
            DockerError::NotInstalled { .. }
            | DockerError::DaemonUnreachable { .. }
            | DockerError::DaemonGone { .. }
            | DockerError::Cancelled { .. } => true,
            DockerError::TimedOut { transfer, .. } => !transfer,
            DockerError::RateLimited { .. } | DockerError::Failed { .. } | DockerError::NoSpace { .. } => {
                false
            }
        }
    }

    /// This error with what ecrcp found out about the space a failed command ran out of;
    /// any other error as it is.
    #[must_use]
    pub fn with_space(self, found: Space) -> Self {
        match self {
            DockerError::NoSpace { argv, stderr, .. } => DockerError::NoSpace {
                argv,
                stderr,
                space: found,
            },
            other => other,
        }
    }
}

/// Whether `error` is docker running out of disk space ([`DockerError::NoSpace`]) itself,
/// not wrapped in a context that would be lost by taking it out.
pub fn is_no_space(error: &anyhow::Error) -> bool {
    matches!(
        error.downcast_ref::<DockerError>(),
        Some(DockerError::NoSpace { .. })
    ) && error.chain().count() == 1
}

/// Whether docker's last stderr line says the network or the registry failed in a way that
/// may pass: a connection reset or closed under a request (Go prints `Patch "URL": EOF` when
/// the connection closed before any answer), a timeout, a registry's 5xx, or a registry
/// throttling requests (429, `toomanyrequests`: another registry's throttle, since Docker
/// Hub's pull quota is classified `RateLimited` before this is asked). Docker Hub's quota
/// and a refusal (`denied`, `unauthorized`, `manifest unknown`, 4xx) are final: trying
/// again only spends more of the allowance or fails the same way.
fn is_passing(stderr: &str) -> bool {
    const PASSING: [&str; 15] = [
        "connection reset by peer",
        "connection refused",
        "broken pipe",
        "use of closed network connection",
        "unexpected EOF",
        "i/o timeout",
        "TLS handshake timeout",
        "net/http: timeout awaiting response headers",
        "net/http: request canceled",
        "context deadline exceeded",
        "server closed idle connection",
        "500 Internal Server Error",
        "502 Bad Gateway",
        "503 Service Unavailable",
        "504 Gateway Timeout",
    ];
    const FINAL: [&str; 4] = ["pull rate limit", "denied", "unauthorized", "no space left"];
    if FINAL.iter().any(|needle| stderr.contains(needle)) {
        return false;
    }
    // Go's `METHOD "URL": EOF`: the registry's connection closed before it answered.
    let closed_before_the_answer = stderr.lines().any(|line| line.trim_end().ends_with("\": EOF"));
    closed_before_the_answer
        || PASSING
            .iter()
            .chain(&THROTTLED)
            .any(|needle| stderr.contains(needle))
}

/// docker's words for a registry that throttles requests (HTTP 429): passing, and past the
/// retries a "later" rather than a failure.
const THROTTLED: [&str; 2] = ["toomanyrequests", "429 Too Many Requests"];

/// Whether docker's last stderr line says its connection to the daemon closed mid-command:
/// a bare EOF (the daemon's stream of progress ended without its last message), or an error
/// on the daemon's unix socket. Under the containerd image store a daemon that stops first
/// loses its own containerd, and sends the gRPC error of that as its last message instead
/// (`failed to copy: failed to send write: EOF: unknown` mid-pull, `failed to copy: rpc
/// error: code = Canceled desc = grpc: the client connection is closing` mid-push, seen on
/// the test bed with Debian 13's dockerd 26.1); a registry's failure is never gRPC's.
fn is_daemon_cut(stderr: &str) -> bool {
    const CONTAINERD_GONE: [&str; 3] = [
        "grpc: the client connection is closing",
        "failed to send write: EOF",
        "error reading from server: EOF",
    ];
    matches!(stderr.trim(), "unexpected EOF" | "EOF")
        || stderr.contains("read unix ")
        || stderr.contains("write unix ")
        || CONTAINERD_GONE.iter().any(|needle| stderr.contains(needle))
}

/// docker's statuses of a layer at the far end (pushed, already there, pulled).
const LAYER_DONE: [&str; 6] = [
    "Pushed",
    "Layer already exists",
    "Mounted from ",
    "Pull complete",
    "Already exists",
    "Download complete",
];

/// docker's statuses of a layer on its way, or waiting for its turn.
const LAYER_MOVING: [&str; 8] = [
    "Preparing",
    "Waiting",
    "Pushing",
    "Retrying",
    "Pulling fs layer",
    "Downloading",
    "Verifying Checksum",
    "Extracting",
];

/// docker's per-layer lines when stdout is not a terminal (`ID: STATUS`): each layer's ID
/// with whether a line said it is at the far end.
fn layer_states(stdout: &str) -> std::collections::BTreeMap<&str, bool> {
    let mut layers = std::collections::BTreeMap::new();
    for (id, status) in stdout.lines().filter_map(|line| line.trim().split_once(": ")) {
        if id.contains(' ') {
            continue;
        }
        if LAYER_DONE.iter().any(|done| status.starts_with(done)) {
            layers.insert(id, true);
        } else if LAYER_MOVING.iter().any(|moving| status.starts_with(moving)) {
            layers.entry(id).or_insert(false);
        }
    }
    layers
}

/// The layers docker's lines say are at the far end, counted once each.
pub fn layers_done(stdout: &str) -> usize {
    layer_states(stdout).values().filter(|done| **done).count()
}

/// The layers docker's lines name as on their way but never as at the far end; `None` when
/// they name no layer at all (a failure before the layers, or after them all).
pub fn layers_left(stdout: &str) -> Option<usize> {
    let layers = layer_states(stdout);
    (!layers.is_empty()).then(|| layers.values().filter(|done| !**done).count())
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs docker commands. The real one is [`DockerCli`]; tests may record argv instead.
pub trait DockerRunner: Send + Sync {
    fn run<'a>(&'a self, command: &'a DockerCommand) -> BoxFuture<'a, Result<DockerOutput, DockerError>>;

    /// How long a daemon that stopped answering is waited for before the copy fails: as
    /// long as a quick command may take (the command limit), which is also what tells a
    /// daemon that restarts from one that is gone.
    fn daemon_patience(&self) -> Duration {
        Timeouts::default().command
    }
}

/// The `docker` CLI found in PATH's absolute directories (or `ECRCP_DOCKER`), with docker's
/// global options (from the plugin invocation) put before every subcommand. DOCKER_HOST,
/// DOCKER_CONFIG and DOCKER_CONTEXT reach it through the inherited environment.
/// Clones share one cancellation.
#[derive(Debug, Clone)]
pub struct DockerCli {
    program: PathBuf,
    global_args: Vec<String>,
    timeouts: Timeouts,
    cancelled: Arc<AtomicBool>,
}

impl DockerCli {
    pub fn from_env() -> Self {
        let program = std::env::var_os("ECRCP_DOCKER").map_or_else(|| PathBuf::from("docker"), PathBuf::from);
        DockerCli {
            program,
            global_args: Vec::new(),
            timeouts: Timeouts::default(),
            cancelled: Arc::default(),
        }
    }

    #[must_use]
    pub fn with_global_args(mut self, args: Vec<String>) -> Self {
        self.global_args = args;
        self
    }

    #[must_use]
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// Stops the copy under way at once: kills every running child, and refuses every
    /// further command but those that clean up (inspect, removing the temporary tag).
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        process::kill_all();
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
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
        if self.is_cancelled() && command.kind != Kind::Cleanup {
            return Err(DockerError::Cancelled { argv });
        }
        tracing::debug!(argv = %argv, "running docker");
        let not_installed = |source| DockerError::NotInstalled {
            program: self.program.display().to_string(),
            source,
        };
        let mut child = process::command(&self.program).map_err(not_installed)?;
        child
            .args(&self.global_args)
            .args(command.args())
            .stdin(if command.stdin().is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::piped())
            .stdout(Stdio::piped());
        if command.shows_progress() {
            // docker draws its progress bars on stdout, and only when stdout is a terminal;
            // ecrcp's stdout is for `-v` lines, so they go to the terminal on stderr.
            if let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() {
                child.stdout(Stdio::from(fd));
            }
        }
        let mut running = process::spawn(&mut child).map_err(not_installed)?;
        if let (Some(secret), Some(mut stdin)) = (command.stdin(), running.child.stdin.take()) {
            // A write error shows up as docker's own failure below.
            let _ = stdin.write_all(secret.expose().as_bytes()).await;
            drop(stdin);
        }
        let (stdout, stderr) = (running.child.stdout.take(), running.child.stderr.take());
        let transfer = command.kind == Kind::Transfer;
        let limit = if transfer {
            self.timeouts.transfer
        } else {
            self.timeouts.command
        };
        let finished = tokio::time::timeout(limit, async {
            tokio::join!(
                running.child.wait(),
                read_all(stdout),
                tee(stderr, command.shows_progress())
            )
        })
        .await;
        let Ok((status, stdout, stderr)) = finished else {
            running.kill().await;
            return Err(DockerError::TimedOut {
                argv,
                limit,
                transfer,
            });
        };
        running.done();
        let status = status.map_err(not_installed)?;
        if status.success() {
            return Ok(DockerOutput { stdout });
        }
        if self.is_cancelled() {
            return Err(DockerError::Cancelled { argv });
        }
        let mut failure = classify_failure(argv, status, &stderr, layers_done(&stdout));
        if let DockerError::Failed { layers_left, .. } = &mut failure {
            *layers_left = self::layers_left(&stdout);
        }
        Err(failure)
    }
}

/// How many of docker's last stderr lines are kept to classify a failure, and how long each
/// may be: the line that says what went wrong comes last.
const TAIL_LINES: usize = 40;
const TAIL_LINE_BYTES: usize = 2048;

/// Reads a child's stdout to the end (nothing when it went to the terminal).
async fn read_all(stdout: Option<impl AsyncRead + Unpin>) -> String {
    let mut bytes = Vec::new();
    if let Some(mut stdout) = stdout {
        // A read error leaves what was read; the exit status tells the rest.
        let _ = stdout.read_to_end(&mut bytes).await;
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Reads docker's stderr to the end, passing each line on to ecrcp's stderr when `forward`
/// (the user watches docker's progress there), and returns its last lines.
async fn tee(stderr: Option<impl AsyncRead + Unpin>, forward: bool) -> String {
    let Some(stderr) = stderr else {
        return String::new();
    };
    let mut reader = tokio::io::BufReader::new(stderr);
    let mut tail = VecDeque::with_capacity(TAIL_LINES);
    let mut line = Vec::new();
    while reader
        .read_until(b'\n', &mut line)
        .await
        .is_ok_and(|read| read > 0)
    {
        if forward {
            // A short write to a terminal; one going away must not fail the copy.
            let _ = std::io::Write::write_all(&mut std::io::stderr(), &line);
        }
        line.truncate(TAIL_LINE_BYTES);
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(String::from_utf8_lossy(&line).trim_end().to_owned());
        line.clear();
    }
    Vec::from(tail).join("\n")
}

impl DockerRunner for DockerCli {
    fn run<'a>(&'a self, command: &'a DockerCommand) -> BoxFuture<'a, Result<DockerOutput, DockerError>> {
        Box::pin(self.run_command(command))
    }

    fn daemon_patience(&self) -> Duration {
        self.timeouts.command
    }
}

fn classify_failure(argv: String, status: ExitStatus, stderr: &str, layers_done: usize) -> DockerError {
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
    // Only Docker Hub's pull quota is a quota. Any other 429 (ECR's "Rate exceeded", Docker
    // Hub's own request throttle) passes in seconds, and calling it a pull rate limit would
    // send the user to wait hours for nothing.
    if stderr.contains("pull rate limit") {
        return DockerError::RateLimited {
            argv,
            stderr: last_line(stderr).to_owned(),
        };
    }
    // ENOSPC as Go prints it, from the daemon (writing a layer into its data root) or from
    // the CLI (saving its config).
    if stderr.contains("no space left on device") {
        return DockerError::NoSpace {
            argv,
            stderr: last_line(stderr).to_owned(),
            space: Space::default(),
        };
    }
    let status = status.code().map_or_else(
        || "killed by a signal".to_owned(),
        |code| format!("exit status {code}"),
    );
    let stderr = if stderr.is_empty() {
        "(no output)".to_owned()
    } else {
        // Go quotes the URL of a failed request (`Patch "https://h/v2/r/blobs/uploads/ID?_state=...":
        // EOF`): its query holds the registry's session state, or a presigned URL's signature.
        crate::redact::redact(last_line(stderr)).into_owned()
    };
    DockerError::Failed {
        argv,
        status,
        stderr,
        layers_done,
        layers_left: None,
    }
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
    fn a_registry_throttling_past_the_retries_reads_as_throttled_not_failed() {
        let failed = |stderr: &str| DockerError::Failed {
            argv: "docker push x".into(),
            status: "exit status: 1".into(),
            stderr: stderr.into(),
            layers_done: 0,
            layers_left: None,
        };
        let cases = [
            ("ECR's 429", failed("toomanyrequests: Rate exceeded"), true),
            (
                "a bare 429",
                failed("received unexpected HTTP status: 429 Too Many Requests"),
                true,
            ),
            (
                "Docker Hub's quota",
                DockerError::RateLimited {
                    argv: "docker pull x".into(),
                    stderr: "toomanyrequests: You have reached your pull rate limit".into(),
                },
                true,
            ),
            (
                "a 503",
                failed("received unexpected HTTP status: 503 Service Unavailable"),
                false,
            ),
            (
                "a refusal",
                failed("denied: requested access to the resource is denied"),
                false,
            ),
        ];
        for (name, error, expected) in cases {
            assert_eq!(error.is_throttled(), expected, "{name}");
        }
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
                vec!["pull", "docker.io/library/nginx:1.27"],
            ),
            (
                DockerCommand::pull(&nginx, Some("linux/arm64"), true),
                vec!["pull", "--platform", "linux/arm64", "docker.io/library/nginx:1.27"],
            ),
            (
                DockerCommand::pull(&pinned, None, false),
                vec![
                    "pull",
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
                    "{{.Id}} {{.Os}}/{{.Architecture}}{{with index . \"Variant\"}}/{{.}}{{end}}{{range .RepoDigests}} {{.}}{{end}}",
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
            0,
        );
        assert!(matches!(unreachable, DockerError::DaemonUnreachable { .. }));
        assert!(unreachable.to_string().contains("DOCKER_HOST"));

        let failed = classify_failure(
            "docker pull nope".into(),
            status,
            "Using default tag\nError response from daemon: manifest unknown",
            0,
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
            0,
        );
        assert!(matches!(limited, DockerError::RateLimited { .. }));
        assert!(!limited.is_transient(), "a quota is never retried");

        let throttled = classify_failure(
            "docker push 123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1".into(),
            status,
            "toomanyrequests: Rate exceeded",
            0,
        );
        assert!(
            matches!(&throttled, DockerError::Failed { stderr, .. } if stderr == "toomanyrequests: Rate exceeded"),
            "another registry's throttle is no pull quota: {throttled:?}"
        );
        assert!(throttled.is_transient(), "a throttle passes");

        let reset = classify_failure(
            "docker push x".into(),
            status,
            "read tcp 10.0.0.1:443: read: connection reset by peer",
            0,
        );
        assert!(reset.is_transient());
    }

    /// docker's last stderr line for each fault of the test bed's registry front
    /// (tests/testbed/front.py), as docker 20.10's daemon and the 28.x CLI printed them
    /// there (the upload URL shortened), and whether trying again may help.
    #[test]
    fn dockers_own_failure_texts_are_classified() {
        let cases = [
            // `lose_answer` on an upload PATCH or PUT: the registry stored it, docker saw a reset.
            (r#"Patch "https://123456789012.dkr.ecr.us-east-1.amazonaws.com/v2/f/blobs/uploads/39fced13?_state=x": read tcp 127.0.0.1:60828->127.0.0.3:443: read: connection reset by peer"#, true),
            (r#"Put "https://123456789012.dkr.ecr.us-east-1.amazonaws.com/v2/f/blobs/uploads/545ebcff?_state=x&digest=sha256%3A55d9": read tcp 127.0.0.1:58956->127.0.0.3:443: read: connection reset by peer"#, true),
            // The connection closed (no reset) before the answer: Go's url.Error around io.EOF.
            (r#"Patch "https://123456789012.dkr.ecr.us-east-1.amazonaws.com/v2/f/blobs/uploads/9d56?_state=x": EOF"#, true),
            (r#"Post "https://123456789012.dkr.ecr.us-east-1.amazonaws.com/v2/f/blobs/uploads/": EOF"#, true),
            (r#"Put "https://h/v2/f/blobs/uploads/1": write tcp 127.0.0.1:1->127.0.0.3:443: use of closed network connection"#, true),
            // A 5xx on an upload start (once docker's own retries ran out) and on the manifest PUT.
            ("received unexpected HTTP status: 503 Service Unavailable", true),
            ("received unexpected HTTP status: 500 Internal Server Error", true),
            ("received unexpected HTTP status: 502 Bad Gateway", true),
            ("received unexpected HTTP status: 504 Gateway Timeout", true),
            (r#"Get "https://h/v2/": net/http: TLS handshake timeout"#, true),
            (r#"Head "https://h/v2/f/blobs/sha256:1": dial tcp 127.0.0.3:443: i/o timeout"#, true),
            ("unexpected EOF", true),
            // Another registry throttling (ECR's "Rate exceeded"): tried again after a wait.
            ("toomanyrequests: Rate exceeded", true),
            ("received unexpected HTTP status: 429 Too Many Requests", true),
            // Final: Docker Hub's quota, a refusal, a missing image, a full disk.
            ("toomanyrequests: You have reached your pull rate limit.", false),
            ("denied: User: arn:aws:iam::1:user/x is not authorized to perform: ecr:InitiateLayerUpload", false),
            ("unauthorized: authentication required", false),
            ("manifest unknown: manifest unknown", false),
            ("tag invalid: The image tag '1' already exists in the 'f' repository and cannot be overwritten because the repository is immutable.", false),
            ("write /var/lib/docker/tmp/GetImageBlob1: no space left on device", false),
            (r#"Get "https://h/v2/": EOF in the middle"#, false),
        ];
        for (stderr, transient) in cases {
            let error = classify_failure("docker push x".into(), ExitStatus::from_raw(1 << 8), stderr, 0);
            assert_eq!(error.is_transient(), transient, "{stderr}");
        }
    }

    /// docker 20.10's own texts when its data root filled up: unpacking a layer (the path
    /// is the file's inside the layer) and downloading one (docker's temporary file).
    #[test]
    fn a_full_disk_is_final_and_says_where_and_what_to_do() {
        for stderr in [
            "1: Pulling from explore/big\nfailed to register layer: ApplyLayer exit status 1 stdout:  stderr: write /ecrcp-testbed.bin: no space left on device",
            "write /var/lib/docker/tmp/GetImageBlob1: no space left on device",
        ] {
            let error = classify_failure("docker pull big".into(), ExitStatus::from_raw(1 << 8), stderr, 2);
            assert!(matches!(error, DockerError::NoSpace { .. }), "{error:?}");
            assert!(!error.is_transient(), "the same image needs the same room: {stderr}");
            assert!(!error.stops_the_run(), "a smaller image may fit");
            let text = error.to_string();
            assert!(text.contains("ran out of disk space in docker's data root"), "{text}");
            assert!(text.ends_with("needs no disk"), "{text}");
            for hint in ["docker system prune", "--engine registry", "data root to a larger disk"] {
                assert!(text.contains(hint), "{hint}: {text}");
            }
        }
        let error = classify_failure(
            "docker pull big".into(),
            ExitStatus::from_raw(1 << 8),
            "write /ecrcp-testbed.bin: no space left on device",
            0,
        )
        .with_space(Space {
            data_root: Some("/var/lib/docker".into()),
            image_bytes: Some(37_758_976),
        });
        assert_eq!(
            error.to_string().lines().next().unwrap(),
            "`docker pull big` ran out of disk space in docker's data root '/var/lib/docker' (on the docker daemon's machine); \
             the image's layers are 37.8 MB compressed, and take more once unpacked: write /ecrcp-testbed.bin: no space left on device"
        );
        let other = classify_failure(
            "docker pull x".into(),
            ExitStatus::from_raw(1 << 8),
            "manifest unknown",
            0,
        );
        assert!(matches!(
            other.with_space(Space::default()),
            DockerError::Failed { .. }
        ));
    }

    /// Refusals a new ECR token and login may cure (ECR's texts for an expired token, old
    /// and new; docker's for a 401 to a login it had), and ones it does not (IAM).
    #[test]
    fn an_expired_login_is_told_from_other_refusals() {
        let cases = [
            ("denied: Your authorization token has expired. Reauthenticate and try again.", true),
            ("denied: Your Authorization Token has expired. Please run 'aws ecr get-login --no-include-email' to fetch a new one.", true),
            ("unauthorized: authentication required", true),
            ("no basic auth credentials", true),
            // dockerd 26.1 under the containerd image store, the token refused at the manifest PUT
            (r#"failed commit on ref "manifest-sha256:b6948b": unexpected status from PUT request to https://h/v2/r/manifests/1: 401 Unauthorized"#, true),
            ("denied: User: arn:aws:iam::1:user/x is not authorized to perform: ecr:InitiateLayerUpload", false),
            ("manifest unknown: manifest unknown", false),
        ];
        for (stderr, refused) in cases {
            let error = classify_failure("docker push x".into(), ExitStatus::from_raw(1 << 8), stderr, 0);
            assert_eq!(error.refuses_the_login(), refused, "{stderr}");
            assert!(!error.is_transient(), "never retried as it is: {stderr}");
        }
    }

    /// What docker's CLI printed last when the daemon went away under it (the test bed's
    /// private dockerd, SIGTERM and SIGKILL, mid-pull and mid-push), and texts that only look
    /// alike: a registry's cut names its request.
    #[test]
    fn a_daemon_gone_mid_command_is_told_from_a_registrys_cut() {
        let cases = [
            ("unexpected EOF", true),
            ("EOF", true),
            ("error during connect: Get \"http://%2Fvar%2Frun%2Fdocker.sock/v1.47/version\": read unix @->/var/run/docker.sock: read: connection reset by peer", true),
            ("Cannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon running?", true),
            // Under the containerd image store (dockerd 26.1 stopped with SIGTERM), mid-pull
            // and mid-push: the daemon's last word is its lost containerd connection.
            ("failed to copy: failed to send write: EOF: unknown", true),
            ("failed to copy: rpc error: code = Canceled desc = grpc: the client connection is closing", true),
            ("rpc error: code = Unavailable desc = error reading from server: EOF", true),
            (r#"Patch "https://h/v2/f/blobs/uploads/1": EOF"#, false),
            ("read tcp 127.0.0.1:5->127.0.0.3:443: read: connection reset by peer", false),
            ("received unexpected HTTP status: 503 Service Unavailable", false),
            ("manifest unknown: manifest unknown", false),
        ];
        for (stderr, away) in cases {
            let error = classify_failure("docker push x".into(), ExitStatus::from_raw(1 << 8), stderr, 0);
            assert_eq!(error.daemon_may_be_away(), away, "{stderr}");
        }
        let gone = DockerError::DaemonGone {
            waited: Duration::from_secs(120),
            detail: "Cannot connect to the Docker daemon at unix:///x.sock".into(),
        };
        assert!(gone.stops_the_run(), "a daemon that stays gone stops the run");
        assert!(!gone.daemon_may_be_away(), "it was waited for already");
        let text = gone.to_string();
        assert!(
            text.starts_with("the docker daemon did not answer again within 2m ("),
            "{text}"
        );
        assert!(
            text.contains("note: is dockerd running?") && text.contains("ECRCP_COMMAND_TIMEOUT"),
            "{text}"
        );
    }

    #[test]
    fn an_uploads_session_state_is_left_out_of_the_message() {
        let error = classify_failure(
            "docker push x".into(),
            ExitStatus::from_raw(1 << 8),
            r#"Patch "https://h/v2/f/blobs/uploads/39fc?_state=wJerHqw4BUqYuL252gGry6cdDQ%3D%3D&digest=sha256%3A55": read tcp 127.0.0.1:6->127.0.0.3:443: read: connection reset by peer"#,
            0,
        );
        assert_eq!(
            error.to_string(),
            r#"`docker push x` failed (exit status 1): Patch "https://h/v2/f/blobs/uploads/39fc?[redacted]": read tcp 127.0.0.1:6->127.0.0.3:443: read: connection reset by peer"#
        );
        assert!(error.is_transient());
        let eof = classify_failure(
            "docker push x".into(),
            ExitStatus::from_raw(1 << 8),
            r#"Put "https://h/v2/f/blobs/uploads/1?_state=x": EOF"#,
            0,
        );
        assert!(
            eof.to_string()
                .ends_with(r#"Put "https://h/v2/f/blobs/uploads/1?[redacted]": EOF"#),
            "{eof}"
        );
        assert!(eof.is_transient());
    }

    #[test]
    fn layers_at_the_far_end_are_counted_from_dockers_lines() {
        let push = "The push refers to repository [h/f]\n\
                    5f70bf18a086: Preparing\n5f70bf18a086: Pushed\n\
                    a3ed95caeb02: Layer already exists\n\
                    9e0ee2c1a1a7: Mounted from library/alpine\n\
                    77b3a8e6c9d4: Retrying in 5 seconds\n\
                    1: digest: sha256:abc size: 1234\n";
        assert_eq!(layers_done(push), 3);
        let pull = "1: Pulling from library/alpine\n\
                    c6a83fedfae6: Pulling fs layer\nc6a83fedfae6: Download complete\nc6a83fedfae6: Pull complete\n\
                    4abcf2066143: Already exists\n\
                    Digest: sha256:abc\nStatus: Downloaded newer image for alpine:3.20\n";
        assert_eq!(layers_done(pull), 2);
        assert_eq!(layers_done(""), 0);
        assert_eq!(layers_left(push), Some(1), "the layer docker was retrying");
        assert_eq!(layers_left(pull), Some(0));
        assert_eq!(layers_left(""), None);
        // Docker Engine 26's push under the containerd image store, cut by a registry's
        // 503: it names only the layers still to send, each as waiting, and no layer it sent.
        let containerd = "The push refers to repository [h/f]\n\
                          ea1cf472986e: Waiting\n3d2cdc48b878: Waiting\n3689eb6418e0: Waiting\n\
                          ea1cf472986e: Waiting\n3d2cdc48b878: Waiting\n";
        assert_eq!((layers_done(containerd), layers_left(containerd)), (0, Some(3)));
    }

    /// A "docker" that is `sh -c SCRIPT`: docker's arguments become the script's `$@`.
    fn fake_docker(script: &str, timeouts: Timeouts) -> DockerCli {
        DockerCli {
            program: PathBuf::from("sh"),
            global_args: vec!["-c".into(), script.into(), "docker".into()],
            timeouts,
            cancelled: Arc::default(),
        }
    }

    fn short(transfer: u64, command: u64) -> Timeouts {
        Timeouts {
            transfer: Duration::from_millis(transfer),
            command: Duration::from_millis(command),
        }
    }

    #[tokio::test]
    async fn a_hanging_command_is_killed_at_its_limit_with_its_children() {
        let pidfile = std::env::temp_dir().join(format!("ecrcp-hang-{}", std::process::id()));
        let script = format!("sleep 30 & echo $! > '{}'; wait", pidfile.display());
        let docker = fake_docker(&script, short(300, 60_000));
        let started = std::time::Instant::now();
        let error = docker
            .run(&DockerCommand::push(&reference("x.example/a:1"), false))
            .await
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        let text = error.to_string();
        assert!(text.starts_with("`sh -c "), "{text}");
        assert!(
            text.contains("push x.example/a:1` did not finish within"),
            "{text}"
        );
        assert!(text.contains("ECRCP_TRANSFER_TIMEOUT"), "{text}");
        assert!(!error.stops_the_run(), "a slow transfer fails that copy only");
        let sleeper = std::fs::read_to_string(&pidfile).unwrap();
        let _ = std::fs::remove_file(&pidfile);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", sleeper.trim())).unwrap_or_default();
        assert!(
            stat.is_empty() || stat.contains(") Z "),
            "the sleep outlived the limit: {stat}"
        );

        let quick = fake_docker("sleep 30", short(60_000, 300));
        let error = quick
            .run(&DockerCommand::tag(&reference("a"), &reference("b")))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("ECRCP_COMMAND_TIMEOUT"), "{error}");
        assert!(
            error.stops_the_run(),
            "a daemon that stopped answering quick commands stops the run"
        );
    }

    #[tokio::test]
    async fn stderr_is_classified_while_progress_goes_to_the_terminal() {
        let docker = fake_docker(
            "echo 'Cannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon running?' >&2; exit 1",
            Timeouts::default(),
        );
        let error = docker
            .run(&DockerCommand::pull(&reference("nginx"), None, true))
            .await
            .unwrap_err();
        assert!(matches!(error, DockerError::DaemonUnreachable { .. }), "{error}");
    }

    #[tokio::test]
    async fn once_cancelled_only_the_cleanup_runs() {
        let docker = fake_docker("echo ran", Timeouts::default());
        docker.cancel();
        let pull = docker
            .run(&DockerCommand::pull(&reference("nginx"), None, false))
            .await;
        assert!(matches!(pull, Err(DockerError::Cancelled { .. })), "{pull:?}");
        assert!(pull.unwrap_err().stops_the_run());
        let untag = docker
            .run(&DockerCommand::untag(&reference("nginx")))
            .await
            .unwrap();
        assert_eq!(untag.stdout, "ran\n");
    }
}
