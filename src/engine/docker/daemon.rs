//! A docker daemon that goes away under a copy (`systemctl restart docker`, a package
//! upgrade, a crash): the copy asks it until it answers again, up to the daemon patience
//! (the command limit), and then runs its step again. A daemon that does not come back fails
//! the copy with `DaemonGone`, which stops the run; the copies after it do not wait again.
//! A daemon that never answered in this run is no restart but a setup to fix (not started,
//! a wrong `DOCKER_HOST`): that fails at once, as `DaemonUnreachable`.

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
    /// It answered a command in this run: not answering now means it is restarting.
    answered: AtomicBool,
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
            result => {
                if result.is_ok() {
                    self.daemon.answered.store(true, Ordering::SeqCst);
                }
                result
            }
        }
    }

    /// Logs docker in to `image`'s registry; `docker login` asks the daemon, so a daemon
    /// that does not answer is waited for, and the login tried once more.
    pub(super) async fn docker_login(
        &self,
        image: &Reference,
        settings: &crate::plan::JobSettings,
    ) -> anyhow::Result<()> {
        let Err(error) = self.logins.docker_login(image, settings).await else {
            return Ok(());
        };
        let away = error
            .chain()
            .find_map(|cause| cause.downcast_ref::<DockerError>())
            .filter(|docker| matches!(docker, DockerError::DaemonUnreachable { .. }));
        let Some(away) = away else {
            return Err(error);
        };
        let back = match self.wait_for_daemon(away).await {
            // Never there in this run: the login's own error says it, with its context.
            Err(DockerError::DaemonUnreachable { .. }) => return Err(error),
            back => back?,
        };
        if let Back::After(waited) = back {
            tracing::info!(
                registry = image.registry(),
                waited_ms = millis(waited),
                "the docker daemon answers again; logging in again"
            );
        }
        self.logins.docker_login(image, settings).await
    }

    /// After `error`, which says the daemon may be away: asks it until it answers, within
    /// the patience. `Err(DaemonGone)` when it stays away, `Err(DaemonUnreachable)` at once
    /// when it never answered in this run, or another error (a cancelled run) that ends the
    /// wait.
    pub(super) async fn wait_for_daemon(&self, error: &DockerError) -> Result<Back, DockerError> {
        let patience = self.docker.daemon_patience();
        let started = Instant::now();
        let mut last = match self.ping(patience).await {
            Ok(()) => return Ok(Back::NeverLeft),
            Err(last) => last?,
        };
        // A command cut mid-way had reached the daemon.
        let was_there =
            self.daemon.answered.load(Ordering::SeqCst) || matches!(error, DockerError::Failed { .. });
        if !was_there {
            return Err(DockerError::DaemonUnreachable { detail: last });
        }
        if self.daemon.gone.load(Ordering::SeqCst) {
            return Err(gone(patience, &last));
        }
        tracing::warn!(
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

pub(super) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Mutex;

    use super::*;
    use crate::docker::DockerRunner;
    use crate::login::Logins;
    use crate::plan::JobSettings;
    use crate::provider::Providers;
    use crate::registry::credentials::CredentialStore;
    use crate::registry::RegistryClient;

    const CANNOT_CONNECT: &str =
        "Cannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon running?";

    /// What one scripted command answers: success, or docker's last stderr line.
    type Answer = Result<(), &'static str>;

    /// A docker whose answers come from a script, per subcommand (`version` for the pings,
    /// `push`, `image` for inspect, `tag`); an empty script answers success.
    #[derive(Default)]
    struct ScriptedDocker {
        script: Mutex<Vec<(&'static str, VecDeque<Answer>)>>,
        calls: Mutex<Vec<String>>,
    }

    impl ScriptedDocker {
        fn answers(self, subcommand: &'static str, answers: &[Answer]) -> Self {
            self.script
                .lock()
                .unwrap()
                .push((subcommand, answers.iter().copied().collect()));
            self
        }

        fn calls_of(&self, subcommand: &str) -> usize {
            let calls = self.calls.lock().unwrap();
            calls.iter().filter(|argv| argv.starts_with(subcommand)).count()
        }
    }

    impl DockerRunner for ScriptedDocker {
        fn run<'a>(
            &'a self,
            command: &'a DockerCommand,
        ) -> Pin<Box<dyn Future<Output = Result<DockerOutput, DockerError>> + Send + 'a>> {
            let subcommand = command.args()[0].clone();
            self.calls.lock().unwrap().push(command.args().join(" "));
            let answer = self
                .script
                .lock()
                .unwrap()
                .iter_mut()
                .find(|(name, _)| *name == subcommand)
                .and_then(|(_, answers)| answers.pop_front())
                .unwrap_or(Ok(()));
            Box::pin(async move {
                match answer {
                    Ok(()) => Ok(DockerOutput::default()),
                    Err(text) if text == CANNOT_CONNECT => Err(DockerError::DaemonUnreachable {
                        detail: text.to_owned(),
                    }),
                    Err(text) => Err(DockerError::Failed {
                        argv: subcommand,
                        status: "exit status 1".into(),
                        stderr: text.into(),
                        layers_done: 0,
                        layers_left: None,
                    }),
                }
            })
        }

        fn daemon_patience(&self) -> Duration {
            Duration::from_millis(1600)
        }
    }

    fn reference(text: &str) -> Reference {
        Reference::parse(text).unwrap()
    }

    async fn with_engine<T>(docker: &ScriptedDocker, test: impl AsyncFnOnce(&DockerEngine<'_>) -> T) -> T {
        let registry = RegistryClient::new(CredentialStore::with_config_dir(None)).unwrap();
        let providers = Providers::default();
        let engine = DockerEngine::new(
            docker,
            &registry,
            std::sync::Arc::new(Logins::new(docker, &registry, &providers)),
        );
        test(&engine).await
    }

    #[tokio::test]
    async fn a_step_that_meets_no_daemon_waits_for_it_and_runs_again() {
        let docker = ScriptedDocker::default()
            .answers("tag", &[Err(CANNOT_CONNECT)])
            .answers("version", &[Err(CANNOT_CONNECT), Err(CANNOT_CONNECT)]);
        let tag = DockerCommand::tag(&reference("a:1"), &reference("b:1"));
        let result = with_engine(&docker, async |engine| {
            engine.docker(&DockerCommand::driver_status()).await.unwrap();
            engine.docker(&tag).await
        })
        .await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(docker.calls_of("tag"), 2, "the step ran again");
        assert_eq!(docker.calls_of("version"), 3, "asked until it answered");
    }

    #[tokio::test]
    async fn a_daemon_that_stays_away_fails_the_step_within_the_patience_and_later_steps_wait_no_more() {
        let always = [Err(CANNOT_CONNECT); 20];
        let docker = ScriptedDocker::default()
            .answers("tag", &always)
            .answers("version", &always);
        let tag = DockerCommand::tag(&reference("a:1"), &reference("b:1"));
        let (first, second, took) = with_engine(&docker, async |engine| {
            engine.docker(&DockerCommand::driver_status()).await.unwrap();
            let started = Instant::now();
            let first = engine.docker(&tag).await;
            let second_started = Instant::now();
            let second = engine.docker(&tag).await;
            (first, second, (started.elapsed(), second_started.elapsed()))
        })
        .await;
        let first = first.unwrap_err();
        assert!(
            matches!(&first, DockerError::DaemonGone { waited, detail } if *waited == Duration::from_millis(1600) && detail == CANNOT_CONNECT),
            "{first:?}"
        );
        assert!(first.stops_the_run());
        assert!(
            took.0 >= Duration::from_millis(1600) && took.0 < Duration::from_secs(5),
            "{took:?}"
        );
        assert!(
            matches!(second, Err(DockerError::DaemonGone { .. })),
            "{second:?}"
        );
        assert!(
            took.1 < Duration::from_millis(500),
            "the second step did not wait: {took:?}"
        );
    }

    #[tokio::test]
    async fn a_daemon_that_never_answered_in_this_run_fails_at_once() {
        let docker = ScriptedDocker::default()
            .answers("pull", &[Err(CANNOT_CONNECT)])
            .answers("version", &[Err(CANNOT_CONNECT)]);
        let pull = DockerCommand::pull(&reference("a:1"), None, false);
        let started = Instant::now();
        let result = with_engine(&docker, async |engine| engine.docker(&pull).await).await;
        assert!(
            matches!(&result, Err(DockerError::DaemonUnreachable { detail }) if detail == CANNOT_CONNECT),
            "{result:?}"
        );
        assert!(
            started.elapsed() < Duration::from_millis(400),
            "{:?}",
            started.elapsed()
        );
        assert_eq!((docker.calls_of("pull"), docker.calls_of("version")), (1, 1));
    }

    #[tokio::test]
    async fn a_push_cut_by_the_daemon_runs_again_once_it_answers_with_its_tag_put_back() {
        let docker = ScriptedDocker::default()
            .answers("push", &[Err("unexpected EOF")])
            .answers("version", &[Err(CANNOT_CONNECT), Err(CANNOT_CONNECT)])
            .answers("image", &[Err("Error response from daemon: No such image: b:1")]);
        let (source, destination) = (reference("a:1"), reference("b:1"));
        let push = DockerCommand::push(&destination, false);
        let result = with_engine(&docker, async |engine| {
            let deadline = Instant::now() + super::super::retry::RETRY_BUDGET;
            engine
                .docker_retrying(
                    &push,
                    None,
                    Some((&source, &destination)),
                    deadline,
                    (&destination, &JobSettings::default()),
                )
                .await
        })
        .await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(docker.calls_of("push"), 2);
        assert_eq!(
            docker.calls_of("tag docker.io/library/a:1 docker.io/library/b:1"),
            1,
            "the lost tag was put back on the source: {:?}",
            docker.calls.lock().unwrap()
        );
    }

    #[tokio::test]
    async fn a_registrys_cut_is_not_mistaken_for_the_daemon() {
        let docker = ScriptedDocker::default().answers("push", &[Err("unexpected EOF")]);
        let push = DockerCommand::push(&reference("b:1"), false);
        let result = with_engine(&docker, async |engine| {
            engine
                .docker_retrying(
                    &push,
                    None,
                    None,
                    Instant::now() + Duration::from_secs(60),
                    (&reference("b:1"), &JobSettings::default()),
                )
                .await
        })
        .await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(docker.calls_of("version"), 1, "one ping found the daemon there");
        assert_eq!(docker.calls_of("push"), 2, "the retry policy ran it again");
    }
}
