//! A docker daemon that goes away under a copy (`systemctl restart docker`, a package
//! upgrade, a crash): the copy asks it until it answers again, up to the daemon patience
//! (the command limit), and then runs its step again. A daemon that does not come back fails
//! the copy with `DaemonGone`, which stops the run; the copies after it do not wait again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::docker::{DockerCommand, DockerError, DockerOutput};
use crate::reference::Reference;

use super::DockerEngine;

/// How often a daemon that does not answer is asked again.
const POLL: Duration = Duration::from_millis(500);

/// What the engine knows of its daemon across copies.
#[derive(Debug, Default)]
pub(super) struct Daemon {
    /// A wait ran out: later failures do not wait again (each would cost the patience).
    gone: AtomicBool,
}

/// What a wait for the daemon found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Back {
    /// It answered at once: the failure was something else.
    NeverLeft,
    /// It did not answer, and answered again after this long.
    After(Duration),
}

impl DockerEngine<'_> {
    /// Runs one docker command; when the daemon does not answer, waits for it and runs
    /// the command once more. A pull or push cut mid-way is [`DockerEngine::docker_retrying`]'s.
    pub(super) async fn docker(&self, command: &DockerCommand) -> Result<DockerOutput, DockerError> {
        match self.docker.run(command).await {
            Err(error @ DockerError::DaemonUnreachable { .. }) => {
                if let Back::After(waited) = self.wait_for_daemon(&error).await? {
                    tracing::info!(
                        argv = ?command.args(),
                        waited_ms = millis(waited),
                        "the docker daemon answers again; running the step again"
                    );
                }
                self.docker.run(command).await
            }
            result => result,
        }
    }

    /// After `error`, which says the daemon may be away: asks it until it answers, within
    /// the patience. `Err(DaemonGone)` when it stays away, or another error (a cancelled run)
    /// that ends the wait.
    pub(super) async fn wait_for_daemon(&self, error: &DockerError) -> Result<Back, DockerError> {
        let patience = self.docker.daemon_patience();
        let started = Instant::now();
        let mut last = match self.ping(patience).await {
            Ok(()) => return Ok(Back::NeverLeft),
            Err(last) => last?,
        };
        if self.daemon.gone.load(Ordering::SeqCst) {
            return Err(gone(patience, &last));
        }
        tracing::info!(
            %error,
            patience_ms = millis(patience),
            "the docker daemon does not answer; waiting for it to come back"
        );
        loop {
            let left = patience.saturating_sub(started.elapsed());
            if left.is_zero() {
                self.daemon.gone.store(true, Ordering::SeqCst);
                return Err(gone(patience, &last));
            }
            tokio::time::sleep(POLL.min(left)).await;
            match self.ping(patience.saturating_sub(started.elapsed())).await {
                Ok(()) => {
                    self.daemon.gone.store(false, Ordering::SeqCst);
                    return Ok(Back::After(started.elapsed()));
                }
                Err(now) => last = now?,
            }
        }
    }

    /// `Ok(())` when the daemon answers within `limit`; `Err(Ok(why))` when it does not;
    /// `Err(Err(error))` when the ping itself cannot run (the run was cancelled).
    async fn ping(&self, limit: Duration) -> Result<(), Result<String, DockerError>> {
        let limit = limit.max(POLL);
        match tokio::time::timeout(limit, self.docker.run(&DockerCommand::ping())).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error @ DockerError::Cancelled { .. })) => Err(Err(error)),
            Ok(Err(DockerError::DaemonUnreachable { detail })) => Err(Ok(detail)),
            Ok(Err(error)) => Err(Ok(error
                .to_string()
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned())),
            Err(_) => Err(Ok(format!(
                "no answer within {}",
                crate::process::show_limit(limit)
            ))),
        }
    }

    /// Once the daemon is back, puts the destination's local tag back on the pulled source
    /// if the restart lost it, so that the push sends the image this copy pulled and no other.
    pub(super) async fn restore_tag(
        &self,
        source: &Reference,
        destination: &Reference,
    ) -> Result<(), DockerError> {
        if self.docker(&DockerCommand::inspect(destination)).await.is_ok() {
            return Ok(());
        }
        tracing::info!(image = %destination, "the local tag was lost with the daemon; tagging again");
        self.docker(&DockerCommand::tag(source, destination))
            .await
            .map(drop)
    }
}

fn gone(patience: Duration, last: &str) -> DockerError {
    DockerError::DaemonGone {
        waited: patience,
        detail: last.to_owned(),
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
