//! Per-host settings as data: how many requests may be in flight to a registry host, how
//! fast they may go, and how they are tried again ([`HostSettings`]), looked up by host with
//! a default ([`Hosts`]). Changing one registry's retry policy or request rate is one entry
//! here; the request path ([`super::request`]) applies them to every request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::retry::Policy;

/// What ecrcp holds to when it talks to one registry host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostSettings {
    /// Requests in flight to the host at once (each try, until its answer is read or handed
    /// over to stream); `None`: as many as the engines send.
    pub concurrency: Option<usize>,
    /// How fast requests may go to the host; `None`: as fast as they come.
    pub rate: Option<Rate>,
    /// How a failed request is tried again.
    pub retry: Policy,
}

impl Default for HostSettings {
    fn default() -> Self {
        HostSettings {
            concurrency: None,
            rate: None,
            retry: super::retry::request_policy(),
        }
    }
}

/// A request rate: `per_second` on average, up to `burst` at once after a quiet spell
/// (ECR takes 10 PutImage calls a second, for one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

/// The settings of every host, and the state that applies them.
#[derive(Debug, Default)]
pub struct Hosts {
    default: HostSettings,
    by_host: HashMap<String, HostSettings>,
    /// Per host with a rate: its token bucket.
    buckets: Mutex<HashMap<String, Bucket>>,
    /// Per host with a concurrency: the requests in flight.
    gates: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Hosts {
    /// `default` for every host not named otherwise.
    pub fn new(default: HostSettings) -> Self {
        Hosts {
            default,
            ..Hosts::default()
        }
    }

    /// `host` (`NAME[:PORT]`, as the API is reached) with `settings` of its own.
    #[must_use]
    pub fn with(mut self, host: &str, settings: HostSettings) -> Self {
        self.by_host.insert(host.to_owned(), settings);
        self
    }

    /// What holds for `host`.
    pub fn settings(&self, host: &str) -> &HostSettings {
        self.by_host.get(host).unwrap_or(&self.default)
    }

    /// Waits until `host`'s rate lets one more request go, and the right to have it in
    /// flight, when the host bounds either.
    pub(crate) async fn enter(&self, host: &str) -> Option<OwnedSemaphorePermit> {
        let settings = *self.settings(host);
        if let Some(rate) = settings.rate {
            let wait = self
                .buckets
                .lock()
                .expect("host buckets poisoned")
                .entry(host.to_owned())
                .or_insert_with(|| Bucket::full(rate, Instant::now()))
                .take(rate, Instant::now());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
        let limit = settings.concurrency?;
        let gate = self
            .gates
            .lock()
            .expect("host gates poisoned")
            .entry(host.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(limit.max(1))))
            .clone();
        gate.acquire_owned().await.ok()
    }
}

/// A token bucket: a request takes a token, tokens come back at the rate, at most `burst`
/// are kept.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Self {
        Bucket {
            tokens: f64::from(rate.burst.max(1)),
            at: now,
        }
    }

    /// The wait before one more request may go at `now`. Its token is taken at once, ahead
    /// if need be (the bucket goes below empty), so requests that wait keep their order and
    /// none waits for a token another took.
    fn take(&mut self, rate: Rate, now: Instant) -> Duration {
        let per_second = f64::from(rate.per_second.max(1));
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_second).min(f64::from(rate.burst.max(1)));
        self.at = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / per_second)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::{Jitter, OnProgress};

    #[test]
    fn a_bucket_lets_a_burst_go_then_paces_at_the_rate() {
        let rate = Rate {
            per_second: 10,
            burst: 2,
        };
        let start = Instant::now();
        let mut bucket = Bucket::full(rate, start);
        let ms = |ms: u64| Duration::from_millis(ms);
        let waits: Vec<u128> = (0..5).map(|_| bucket.take(rate, start).as_millis()).collect();
        assert_eq!(waits, [0, 0, 100, 200, 300], "two at once, then one per 100 ms");
        // Quiet for a while: the burst again, never more.
        let later = start + Duration::from_secs(10);
        let waits: Vec<Duration> = (0..3).map(|_| bucket.take(rate, later)).collect();
        assert_eq!(waits, [ms(0), ms(0), ms(100)]);
        // Half a token's time later, the next waits the other half.
        assert_eq!(bucket.take(rate, later + ms(150)), ms(50));
    }

    #[tokio::test]
    async fn a_host_named_has_its_own_settings_and_the_rest_the_default() {
        let slow = HostSettings {
            concurrency: Some(1),
            rate: Some(Rate {
                per_second: 20,
                burst: 1,
            }),
            retry: Policy {
                fruitless: 2,
                jitter: Jitter::HalfToWhole,
                progress: OnProgress::IsForgiven,
                ..HostSettings::default().retry
            },
        };
        let hosts = Hosts::default().with("ecr.example:443", slow);
        assert_eq!(*hosts.settings("ecr.example:443"), slow);
        assert_eq!(*hosts.settings("ecr.example"), HostSettings::default());
        assert_eq!(
            HostSettings::default().retry,
            super::super::retry::request_policy()
        );
        // The default host goes unbounded and unpaced.
        assert!(hosts.enter("other.example").await.is_none());
        // The slow host: one request in flight; the next waits for it.
        let first = hosts.enter("ecr.example:443").await;
        assert!(first.is_some());
        let second = tokio::time::timeout(Duration::from_millis(100), hosts.enter("ecr.example:443")).await;
        assert!(
            second.is_err(),
            "a second request went while the first was in flight"
        );
        drop(first);
        assert!(hosts.enter("ecr.example:443").await.is_some());
        // A paced host: the second request right after the first waits its 50 ms.
        let paced = Hosts::default().with(
            "p.example",
            HostSettings {
                rate: Some(Rate {
                    per_second: 20,
                    burst: 1,
                }),
                ..HostSettings::default()
            },
        );
        let started = Instant::now();
        paced.enter("p.example").await;
        paced.enter("p.example").await;
        assert!(
            started.elapsed() >= Duration::from_millis(45),
            "{:?}",
            started.elapsed()
        );
    }
}
