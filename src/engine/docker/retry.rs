//! When the docker engine runs a failed pull or push again: while the failure may pass and
//! the attempts make progress (docker reports more layers at the far end than any attempt
//! before), within one time budget per copy, waiting longer after each failure, with jitter.

use std::time::{Duration, Instant};

use crate::docker::DockerError;
use crate::retry::{self, GaveUp, Jitter, OnProgress, Policy};

/// How long one copy (its pull and its pushes) may spend trying again, counted from its
/// start: a registry that fails now and then costs a retry, one that is down costs at most
/// this before the copy fails and the run goes on.
pub(super) const RETRY_BUDGET: Duration = Duration::from_secs(10 * 60);

/// How many attempts in a row may fail without progress before the copy gives up. docker
/// names only the layers in its output: once they are all at the far end, the last steps
/// (the config blob, the manifest) show no progress and have this many attempts. When
/// docker's progress cannot be seen (it draws on the user's terminal), every attempt counts
/// as one without progress.
pub(super) const ATTEMPTS_WITHOUT_PROGRESS: u32 = 4;

/// The docker engine's retry policy: a wait of a second after the first failure, doubled
/// after each further one up to half a minute, taken at random from its upper half; an
/// attempt that got more layers across is forgiven, and the copy's deadline bounds them all.
const POLICY: Policy = Policy {
    first_wait: Duration::from_secs(1),
    longest_wait: Duration::from_secs(30),
    fruitless: ATTEMPTS_WITHOUT_PROGRESS,
    budget: RETRY_BUDGET,
    jitter: Jitter::HalfToWhole,
    progress: OnProgress::IsForgiven,
};

/// One docker command's attempts so far.
#[derive(Debug)]
pub(super) struct Attempts {
    tries: retry::Attempts,
    /// The attempt that just ran, from 1.
    pub(super) attempt: u32,
    /// The most layers any attempt so far reported done.
    pub(super) best: usize,
    /// The fewest layers any attempt so far named as still to move.
    fewest_left: Option<usize>,
}

/// What to do after a failed attempt.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// Run the command again after this wait.
    Again { wait: Duration, progressed: bool },
    /// Give up, for this reason (to log).
    GiveUp(&'static str),
}

impl Attempts {
    pub(super) fn new(deadline: Instant) -> Self {
        Attempts {
            tries: retry::Attempts::until(POLICY, deadline),
            attempt: 1,
            best: 0,
            fewest_left: None,
        }
    }

    /// Decides after a failed attempt; `now` is when it failed.
    pub(super) fn after(&mut self, error: &DockerError, now: Instant) -> Next {
        if !error.is_transient() {
            return Next::GiveUp("the failure will not pass");
        }
        let layers = error.layers_done();
        // Fewer layers left counts too: docker under the containerd image store names no
        // layer it sent, only those it still had to send when it failed.
        let left = error.layers_left();
        let fewer_left = matches!((left, self.fewest_left), (Some(left), Some(fewest)) if left < fewest);
        let progressed = layers > self.best || fewer_left;
        self.best = self.best.max(layers);
        self.fewest_left = match (left, self.fewest_left) {
            (Some(left), Some(fewest)) => Some(left.min(fewest)),
            (left, fewest) => left.or(fewest),
        };
        match self.tries.after_failure(progressed, now) {
            Ok(wait) => {
                self.attempt += 1;
                Next::Again { wait, progressed }
            }
            Err(gave_up) => Next::GiveUp(reason(gave_up)),
        }
    }

    /// Decides after an attempt that the daemon cut, once it answers again: run again at
    /// once while the budget lasts. It is no attempt without progress (the registry did
    /// nothing wrong), so a daemon restarted under a copy costs it no try of its four.
    pub(super) fn after_the_daemon_came_back(&mut self, now: Instant) -> Next {
        match self.tries.again_at_once(now) {
            Ok(()) => {
                self.attempt += 1;
                Next::Again {
                    wait: Duration::ZERO,
                    progressed: false,
                }
            }
            Err(gave_up) => Next::GiveUp(reason(gave_up)),
        }
    }
}

/// Why the attempts ended, as the log says it.
fn reason(gave_up: GaveUp) -> &'static str {
    match gave_up {
        GaveUp::Fruitless => "attempts in a row made no progress",
        GaveUp::Budget => "the copy's retry budget is spent",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(stderr: &str, layers_done: usize) -> DockerError {
        DockerError::Failed {
            argv: "docker push x".into(),
            status: "exit status 1".into(),
            stderr: stderr.into(),
            layers_done,
            layers_left: None,
        }
    }

    /// A failure as docker under the containerd image store reports it: `left` layers still
    /// to send, none reported sent.
    fn failed_with_left(stderr: &str, left: usize) -> DockerError {
        DockerError::Failed {
            argv: "docker push x".into(),
            status: "exit status 1".into(),
            stderr: stderr.into(),
            layers_done: 0,
            layers_left: Some(left),
        }
    }

    #[test]
    fn fewer_layers_left_is_progress_as_the_containerd_store_reports_it() {
        let start = Instant::now();
        let mut attempts = Attempts::new(start + RETRY_BUDGET);
        let stalls = |attempts: &mut Attempts, left| {
            matches!(
                attempts.after(&failed_with_left(RESET, left), start),
                Next::Again {
                    progressed: false,
                    ..
                }
            )
        };
        assert!(stalls(&mut attempts, 9), "the first attempt has nothing to beat");
        for left in [8, 6, 3, 1] {
            assert!(
                matches!(
                    attempts.after(&failed_with_left(RESET, left), start),
                    Next::Again { progressed: true, .. }
                ),
                "{left} left after fewer before"
            );
        }
        // As many left as the fewest so far, again and again: no progress, and it ends.
        let mut next = Next::GiveUp("not yet");
        for _ in 0..ATTEMPTS_WITHOUT_PROGRESS {
            next = attempts.after(&failed_with_left(RESET, 1), start);
        }
        assert_eq!(next, Next::GiveUp("attempts in a row made no progress"));
    }

    const RESET: &str = "read tcp 127.0.0.1:5:443: read: connection reset by peer";

    #[test]
    fn attempts_go_on_while_they_make_progress_and_stop_when_they_stall() {
        let start = Instant::now();
        let mut attempts = Attempts::new(start + RETRY_BUDGET);
        // Five failures, each with one more layer at the far end: all tried again.
        for layers in 1..=5 {
            assert!(
                matches!(
                    attempts.after(&failed(RESET, layers), start),
                    Next::Again { progressed: true, .. }
                ),
                "layers {layers}"
            );
        }
        assert_eq!((attempts.attempt, attempts.best), (6, 5));
        // Then no progress: tried again three times, then given up.
        assert!(matches!(
            attempts.after(&failed(RESET, 5), start),
            Next::Again {
                progressed: false,
                ..
            }
        ));
        assert!(matches!(
            attempts.after(&failed(RESET, 3), start),
            Next::Again { .. }
        ));
        assert!(matches!(
            attempts.after(&failed(RESET, 0), start),
            Next::Again { .. }
        ));
        assert_eq!(
            attempts.after(&failed(RESET, 5), start),
            Next::GiveUp("attempts in a row made no progress")
        );
    }

    #[test]
    fn progress_resets_the_count_of_stalled_attempts() {
        let start = Instant::now();
        let mut attempts = Attempts::new(start + RETRY_BUDGET);
        for layers in [0, 0, 0, 1, 1, 1, 1, 2] {
            assert!(matches!(
                attempts.after(&failed(RESET, layers), start),
                Next::Again { .. }
            ));
        }
    }

    #[test]
    fn a_final_failure_is_never_tried_again() {
        let mut attempts = Attempts::new(Instant::now() + RETRY_BUDGET);
        for stderr in [
            "toomanyrequests: You have reached your pull rate limit.",
            "denied: User is not authorized",
            "manifest unknown",
        ] {
            assert_eq!(
                attempts.after(&failed(stderr, 9), Instant::now()),
                Next::GiveUp("the failure will not pass"),
                "{stderr}"
            );
        }
    }

    #[test]
    fn the_budget_bounds_the_retries() {
        let start = Instant::now();
        let mut attempts = Attempts::new(start + RETRY_BUDGET);
        let late = start + RETRY_BUDGET.saturating_sub(Duration::from_millis(100));
        assert_eq!(
            attempts.after(&failed(RESET, 1), late),
            Next::GiveUp("the copy's retry budget is spent")
        );
    }

    #[test]
    fn a_daemon_that_came_back_costs_no_attempt_but_the_budget_holds() {
        let start = Instant::now();
        let mut attempts = Attempts::new(start + RETRY_BUDGET);
        for _ in 0..10 {
            assert_eq!(
                attempts.after_the_daemon_came_back(start),
                Next::Again {
                    wait: Duration::ZERO,
                    progressed: false
                }
            );
        }
        assert_eq!(attempts.attempt, 11);
        // The registry's own failures still have all their tries without progress.
        for _ in 1..ATTEMPTS_WITHOUT_PROGRESS {
            assert!(matches!(
                attempts.after(&failed(RESET, 0), start),
                Next::Again { .. }
            ));
        }
        assert_eq!(
            attempts.after_the_daemon_came_back(start + RETRY_BUDGET),
            Next::GiveUp("the copy's retry budget is spent")
        );
    }

    #[test]
    fn waits_double_up_to_a_ceiling_with_jitter() {
        let start = Instant::now();
        let mut attempts = Attempts::new(start + RETRY_BUDGET);
        let mut waits = Vec::new();
        for layers in 1..=7 {
            let Next::Again { wait, .. } = attempts.after(&failed(RESET, layers), start) else {
                panic!("attempt {layers} given up");
            };
            waits.push(wait);
        }
        let longest = [1, 2, 4, 8, 16, 30, 30].map(Duration::from_secs);
        for (wait, longest) in waits.iter().zip(longest) {
            assert!(
                (longest / 2..=longest).contains(wait),
                "{wait:?} of at most {longest:?}"
            );
        }
    }
}
