//! Trying again, for the whole crate: how long to keep at something that fails now and then.
//! A [`Policy`] is data (the first wait and the longest, how many tries in a row may make no
//! progress, a time budget, the jitter's shape); [`Attempts`] follows one job's tries under
//! it: on while tries make progress, within the budget, waiting longer after each failure.
//! The registry client, the registry engine's blob copies and the docker engine all decide
//! here; each does its own waiting. Pure but for the jitter's randomness.

use std::hash::{BuildHasher as _, Hasher as _};
use std::time::{Duration, Instant};

/// How long to keep trying one job, and how long to wait between tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The wait after the first failure; it doubles after each further one.
    pub first_wait: Duration,
    /// The most the wait grows to.
    pub longest_wait: Duration,
    /// Tries in a row without progress that end the attempts (at least 1).
    pub fruitless: u32,
    /// How long the tries may go on, counted from the first failure unless the job names a
    /// deadline of its own ([`Attempts::until`]); a wait that would end past it is not waited.
    pub budget: Duration,
    pub jitter: Jitter,
    pub progress: OnProgress,
}

/// How a wait is spread around the backoff, so that jobs that failed together do not come
/// back together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// The backoff and up to a quarter more.
    UpToAQuarterMore,
    /// Between half the backoff and all of it.
    HalfToWhole,
}

/// What a failed try that made progress does to the count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnProgress {
    /// The count starts over with it (it is the first try of a new run, not the last) and
    /// the backoff goes back to the first wait.
    StartsOver,
    /// It is not counted against the tries without progress; the backoff keeps growing.
    IsForgiven,
}

/// Why the attempts end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GaveUp {
    /// [`Policy::fruitless`] tries in a row made no progress.
    Fruitless,
    /// The next wait would end past the budget.
    Budget,
}

/// One job's tries so far.
#[derive(Debug, Clone)]
pub struct Attempts {
    policy: Policy,
    backoff: Duration,
    fruitless: u32,
    tries: u32,
    deadline: Option<Instant>,
}

impl Attempts {
    /// Tries under `policy`, its budget counted from the first failure.
    pub fn new(policy: Policy) -> Self {
        Attempts {
            policy,
            backoff: policy.first_wait,
            fruitless: 0,
            tries: 0,
            deadline: None,
        }
    }

    /// Tries under `policy` that end at `deadline` (a budget shared by many jobs, counted
    /// from their start) instead of the policy's own budget.
    pub fn until(policy: Policy, deadline: Instant) -> Self {
        Attempts {
            deadline: Some(deadline),
            ..Attempts::new(policy)
        }
    }

    /// Tries that failed so far.
    pub fn tries(&self) -> u32 {
        self.tries
    }

    /// After a failed try (failed at `now`) that made `progress` or not: the wait before the
    /// next, jittered, or why to give up.
    pub fn after_failure(&mut self, progress: bool, now: Instant) -> Result<Duration, GaveUp> {
        self.decide(progress, now, roll())
    }

    /// After a try that failed through no fault of the far end (a local daemon restarted
    /// under it): again at once while the budget lasts. It counts as a try, so later waits
    /// grow, but not as one without progress.
    pub fn again_at_once(&mut self, now: Instant) -> Result<(), GaveUp> {
        if now >= self.deadline(now) {
            return Err(GaveUp::Budget);
        }
        self.tries += 1;
        self.grow();
        Ok(())
    }

    /// [`Attempts::after_failure`] with the jitter's roll (0 to 1000) given.
    fn decide(&mut self, progress: bool, now: Instant, roll: u32) -> Result<Duration, GaveUp> {
        self.tries += 1;
        let deadline = self.deadline(now);
        match (progress, self.policy.progress) {
            (true, OnProgress::StartsOver) => {
                self.fruitless = 1;
                self.backoff = self.policy.first_wait;
            }
            (true, OnProgress::IsForgiven) => self.fruitless = 0,
            (false, _) => self.fruitless += 1,
        }
        if self.fruitless >= self.policy.fruitless.max(1) {
            return Err(GaveUp::Fruitless);
        }
        let wait = match self.policy.jitter {
            Jitter::UpToAQuarterMore => self.backoff + spread(self.backoff / 4, roll),
            Jitter::HalfToWhole => self.backoff / 2 + spread(self.backoff / 2, roll),
        };
        if now + wait >= deadline {
            return Err(GaveUp::Budget);
        }
        self.grow();
        Ok(wait)
    }

    fn deadline(&mut self, now: Instant) -> Instant {
        *self.deadline.get_or_insert(now + self.policy.budget)
    }

    fn grow(&mut self) {
        self.backoff = (self.backoff * 2).min(self.policy.longest_wait);
    }
}

/// Some part of `span`, at random: the jitter that keeps retries from marching in step.
pub fn jitter(span: Duration) -> Duration {
    spread(span, roll())
}

/// `roll` thousandths of `span`.
fn spread(span: Duration, roll: u32) -> Duration {
    span * roll.min(1000) / 1000
}

/// A number from 0 to 1000, at random.
fn roll() -> u32 {
    // RandomState is seeded randomly per process and per call: randomness enough for a
    // jitter, with no extra crate.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    u32::try_from(hasher.finish() % 1001).unwrap_or(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn policy(fruitless: u32, budget: Duration, jitter: Jitter, progress: OnProgress) -> Policy {
        Policy {
            first_wait: MS(500),
            longest_wait: Duration::from_secs(8),
            fruitless,
            budget,
            jitter,
            progress,
        }
    }

    #[test]
    fn waits_double_up_to_the_longest_and_the_fruitless_try_ends_it() {
        let mut attempts = Attempts::new(policy(
            7,
            Duration::from_secs(3600),
            Jitter::UpToAQuarterMore,
            OnProgress::StartsOver,
        ));
        let now = Instant::now();
        let waits: Vec<Result<Duration, GaveUp>> = (0..7).map(|_| attempts.decide(false, now, 0)).collect();
        assert_eq!(
            waits,
            [
                Ok(MS(500)),
                Ok(MS(1000)),
                Ok(MS(2000)),
                Ok(MS(4000)),
                Ok(MS(8000)),
                Ok(MS(8000)),
                Err(GaveUp::Fruitless)
            ]
        );
        assert_eq!(attempts.tries(), 7);
    }

    #[test]
    fn the_jitter_stays_within_its_shape() {
        let now = Instant::now();
        let cases = [
            (Jitter::UpToAQuarterMore, 0, MS(2000)),
            (Jitter::UpToAQuarterMore, 1000, MS(2500)),
            (Jitter::UpToAQuarterMore, 500, MS(2250)),
            (Jitter::HalfToWhole, 0, MS(1000)),
            (Jitter::HalfToWhole, 1000, MS(2000)),
        ];
        for (jitter, roll, expected) in cases {
            let mut policy = policy(9, Duration::from_secs(60), jitter, OnProgress::StartsOver);
            policy.first_wait = MS(2000);
            let mut attempts = Attempts::new(policy);
            assert_eq!(
                attempts.decide(false, now, roll),
                Ok(expected),
                "{jitter:?} {roll}"
            );
        }
        let waits: Vec<Duration> = (0..50).map(|_| jitter(Duration::from_secs(4))).collect();
        assert!(waits.iter().all(|wait| *wait <= Duration::from_secs(4)));
        assert!(
            waits.iter().any(|wait| *wait != waits[0]),
            "jitter varies: {waits:?}"
        );
    }

    #[test]
    fn progress_starts_the_count_over_or_is_forgiven() {
        let now = Instant::now();
        // Starting over: the try with progress is the first of three allowed.
        let mut over = Attempts::new(policy(
            3,
            Duration::from_secs(3600),
            Jitter::HalfToWhole,
            OnProgress::StartsOver,
        ));
        let outcomes: Vec<bool> = [true, false, false]
            .map(|progress| over.decide(progress, now, 0).is_ok())
            .to_vec();
        assert_eq!(outcomes, [true, true, false]);
        // Forgiven: three tries without progress follow it before the third ends it.
        let mut forgiven = Attempts::new(policy(
            3,
            Duration::from_secs(3600),
            Jitter::HalfToWhole,
            OnProgress::IsForgiven,
        ));
        let outcomes: Vec<bool> = [true, false, false, false]
            .map(|progress| forgiven.decide(progress, now, 0).is_ok())
            .to_vec();
        assert_eq!(outcomes, [true, true, true, false]);
        // Starting over resets the backoff; being forgiven does not.
        let mut over = Attempts::new(policy(
            9,
            Duration::from_secs(3600),
            Jitter::UpToAQuarterMore,
            OnProgress::StartsOver,
        ));
        let mut forgiven = Attempts::new(policy(
            9,
            Duration::from_secs(3600),
            Jitter::UpToAQuarterMore,
            OnProgress::IsForgiven,
        ));
        for attempts in [&mut over, &mut forgiven] {
            attempts.decide(false, now, 0).unwrap();
            attempts.decide(false, now, 0).unwrap();
        }
        assert_eq!(over.decide(true, now, 0), Ok(MS(500)));
        assert_eq!(forgiven.decide(true, now, 0), Ok(MS(2000)));
    }

    #[test]
    fn no_wait_ends_past_the_budget() {
        let start = Instant::now();
        let mut attempts = Attempts::new(policy(
            99,
            Duration::from_secs(60),
            Jitter::UpToAQuarterMore,
            OnProgress::StartsOver,
        ));
        assert!(attempts.decide(true, start, 0).is_ok());
        assert!(attempts.decide(true, start + Duration::from_secs(59), 0).is_ok());
        assert_eq!(
            attempts.decide(true, start + Duration::from_millis(59_600), 0),
            Err(GaveUp::Budget),
            "a half-second wait from 59.6 s ends past the minute"
        );
        // A deadline of the job's own, and a try again at once that counts but costs no
        // try without progress.
        let mut shared = Attempts::until(
            policy(
                2,
                Duration::from_secs(3600),
                Jitter::HalfToWhole,
                OnProgress::IsForgiven,
            ),
            start + Duration::from_secs(10),
        );
        for _ in 0..5 {
            assert_eq!(shared.again_at_once(start), Ok(()));
        }
        assert_eq!(shared.tries(), 5);
        assert_eq!(
            shared.decide(false, start, 1000),
            Ok(MS(8000)),
            "the backoff grew"
        );
        assert_eq!(
            shared.again_at_once(start + Duration::from_secs(10)),
            Err(GaveUp::Budget)
        );
    }

    #[test]
    fn a_registry_request_is_tried_its_attempts_with_a_doubling_capped_backoff() {
        use crate::registry::retry::{request_policy, LONGEST_BACKOFF, REQUEST_ATTEMPTS};
        let mut attempts = Attempts::new(request_policy());
        let now = Instant::now();
        let waits: Vec<Result<Duration, GaveUp>> = (0..REQUEST_ATTEMPTS)
            .map(|_| attempts.decide(false, now, 0))
            .collect();
        assert_eq!(
            waits,
            [
                Ok(MS(250)),
                Ok(MS(500)),
                Ok(MS(1000)),
                Ok(MS(2000)),
                Ok(MS(4000)),
                Err(GaveUp::Fruitless)
            ],
            "six tries, five waits"
        );
        assert_eq!(attempts.tries(), REQUEST_ATTEMPTS);
        let mut long = Attempts::new(Policy {
            first_wait: Duration::from_secs(4),
            fruitless: 10,
            budget: Duration::from_secs(3600),
            ..request_policy()
        });
        let waits: Vec<u64> = (0..4)
            .map(|_| long.decide(false, now, 0).unwrap().as_secs())
            .collect();
        assert_eq!(
            waits,
            [4, 8, 8, 8],
            "the backoff stops growing at {LONGEST_BACKOFF:?}"
        );
    }

    #[test]
    fn a_blob_copy_goes_on_while_it_makes_progress_until_the_budget_is_spent() {
        let blob = crate::registry::retry::blob_policy();
        let start = Instant::now();
        let mut attempts = Attempts::new(Policy {
            fruitless: 2,
            budget: Duration::from_secs(60),
            ..blob
        });
        // Progress every time: far more tries than the fruitless limit, the backoff reset.
        for second in 0..20 {
            let at = start + Duration::from_secs(second);
            assert_eq!(attempts.decide(true, at, 0), Ok(MS(500)), "try {second}");
        }
        // Two tries in a row without progress end it.
        let at = start + Duration::from_secs(21);
        assert_eq!(attempts.decide(false, at, 0), Err(GaveUp::Fruitless));
        // Progress or not, the budget ends it.
        let mut budgeted = Attempts::new(Policy {
            fruitless: 5,
            budget: Duration::from_secs(60),
            ..blob
        });
        assert!(budgeted.decide(true, start, 0).is_ok());
        assert!(budgeted.decide(true, start + Duration::from_secs(59), 0).is_ok());
        assert_eq!(
            budgeted.decide(true, start + Duration::from_secs(60), 0),
            Err(GaveUp::Budget)
        );
    }
}
