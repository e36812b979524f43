//! When the docker engine runs a failed pull or push again: while the failure may pass and
//! the attempts make progress (docker reports more layers at the far end than any attempt
//! before), within one time budget per copy, waiting longer after each failure, with jitter.

use std::hash::{BuildHasher as _, Hasher as _};
use std::time::{Duration, Instant};

use crate::docker::DockerError;

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

/// The wait after the first failure, doubled after each further one up to `LONGEST_WAIT`.
const FIRST_WAIT: Duration = Duration::from_secs(1);
const LONGEST_WAIT: Duration = Duration::from_secs(30);

/// One docker command's attempts so far.
#[derive(Debug)]
pub(super) struct Attempts {
    deadline: Instant,
    /// The attempt that just ran, from 1.
    pub(super) attempt: u32,
    /// The most layers any attempt so far reported done.
    pub(super) best: usize,
    /// Attempts in a row that failed without progress.
    stalled: u32,
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
            deadline,
            attempt: 1,
            best: 0,
            stalled: 0,
        }
    }

    /// Decides after a failed attempt; `now` is when it failed.
    pub(super) fn after(&mut self, error: &DockerError, now: Instant) -> Next {
        if !error.is_transient() {
            return Next::GiveUp("the failure will not pass");
        }
        let layers = error.layers_done();
        let progressed = layers > self.best;
        if progressed {
            self.best = layers;
            self.stalled = 0;
        } else {
            self.stalled += 1;
        }
        if self.stalled >= ATTEMPTS_WITHOUT_PROGRESS {
            return Next::GiveUp("attempts in a row made no progress");
        }
        let wait = jittered(backoff(self.attempt));
        if now + wait >= self.deadline {
            return Next::GiveUp("the copy's retry budget is spent");
        }
        self.attempt += 1;
        Next::Again { wait, progressed }
    }
}

impl Attempts {
    /// Decides after an attempt that the daemon cut, once it answers again: run again at
    /// once while the budget lasts. It is no attempt without progress (the registry did
    /// nothing wrong), so a daemon restarted under a copy costs it no try of its four.
    pub(super) fn after_the_daemon_came_back(&mut self, now: Instant) -> Next {
        if now >= self.deadline {
            return Next::GiveUp("the copy's retry budget is spent");
        }
        self.attempt += 1;
        Next::Again {
            wait: Duration::ZERO,
            progressed: false,
        }
    }
}

/// The longest wait after failed attempt `attempt` (from 1): doubling from `FIRST_WAIT`.
fn backoff(attempt: u32) -> Duration {
    FIRST_WAIT
        .saturating_mul(2_u32.saturating_pow(attempt.saturating_sub(1)))
        .min(LONGEST_WAIT)
}

/// A wait between half of `longest` and all of it, so that copies that failed together
/// do not come back together.
fn jittered(longest: Duration) -> Duration {
    // RandomState is seeded randomly per process and per call: randomness enough for a
    // jitter, with no extra crate.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    let thousandths = u32::try_from(hasher.finish() % 1001).unwrap_or(1000);
    longest / 2 + longest / 2 * thousandths / 1000
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
        }
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
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(4));
        assert_eq!(backoff(40), LONGEST_WAIT);
        let waits: Vec<Duration> = (0..50).map(|_| jittered(Duration::from_secs(8))).collect();
        assert!(waits
            .iter()
            .all(|wait| (Duration::from_secs(4)..=Duration::from_secs(8)).contains(wait)));
        assert!(
            waits.iter().any(|wait| *wait != waits[0]),
            "jitter varies: {waits:?}"
        );
    }
}
