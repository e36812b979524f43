//! Per-host settings as data: how many requests may be in flight to a registry host, how
//! fast they may go, and how they are tried again ([`HostSettings`]), looked up by host with
//! a default ([`Hosts`]); and the kinds of request a registry paces on its own ([`Paced`]:
//! ECR's API quotas, PutImage 10 a second per account and region), each with a rate that
//! backs off when the registry throttles it anyway and recovers as requests go through.
//! Changing one registry's retry policy or request rate is one entry here; the request path
//! ([`super::request`]) applies them to every request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
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

/// A kind of request a registry holds to a rate of its own, shared by every copy of a run
/// (an ECR API action: a manifest PUT is a PutImage call).
#[derive(Debug, Clone, Copy)]
pub struct Paced {
    /// The action, as the registry's quotas name it ("PutImage").
    pub action: &'static str,
    /// The most it may go at: the registry's quota, or this run's share of it.
    pub rate: Rate,
    /// Whether a request, by its method and its URL's path, is one of them.
    pub matches: fn(&Method, &str) -> bool,
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
    /// Per host: the kinds of its requests it paces on its own.
    paced: Mutex<HashMap<String, Vec<Paced>>>,
    /// Per host and paced action: its bucket, at the rate it goes at now.
    actions: Mutex<HashMap<(String, &'static str), Adaptive>>,
}

/// What [`Hosts::enter`] lets through: the right to have the request in flight (when the
/// host bounds it), and the paced action it counts against (when it is one).
#[derive(Debug, Default)]
pub(crate) struct Entry {
    /// Held, not read: the request keeps its place in flight until the entry is dropped.
    #[allow(dead_code)]
    pub in_flight: Option<OwnedSemaphorePermit>,
    pub action: Option<&'static str>,
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

    /// Paces `paced` kinds of `host`'s requests, each at its own rate, for the rest of the
    /// run (replacing what `host` had).
    pub fn pace(&self, host: &str, paced: Vec<Paced>) {
        self.paced
            .lock()
            .expect("paced hosts poisoned")
            .insert(host.to_owned(), paced);
    }

    /// Waits until `host`'s rate, and the rate of the action `method` on `path` counts
    /// against, let one more request go, and for the right to have it in flight, when the
    /// host bounds any of them.
    pub(crate) async fn enter(&self, host: &str, method: &Method, path: &str) -> Entry {
        let action = self
            .paced
            .lock()
            .expect("paced hosts poisoned")
            .get(host)
            .and_then(|paced| paced.iter().find(|paced| (paced.matches)(method, path)).copied());
        if let Some(paced) = action {
            let wait = self
                .actions
                .lock()
                .expect("action buckets poisoned")
                .entry((host.to_owned(), paced.action))
                .or_insert_with(|| Adaptive::new(paced.rate, Instant::now()))
                .take(Instant::now());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
        Entry {
            in_flight: self.enter_host(host).await,
            action: action.map(|paced| paced.action),
        }
    }

    /// Tells the pace of `action` at `host` how its request fared: a throttle halves the
    /// rate it goes at (to one a second at the least), an answer lets it climb back towards
    /// its ceiling, a tenth of a request a second at a time.
    pub(crate) fn fared(&self, host: &str, action: &'static str, throttled: bool) {
        let mut actions = self.actions.lock().expect("action buckets poisoned");
        let Some(adaptive) = actions.get_mut(&(host.to_owned(), action)) else {
            return;
        };
        if throttled {
            let before = adaptive.per_second;
            adaptive.per_second = (adaptive.per_second / 2.0).max(1.0);
            tracing::info!(
                registry = host,
                action,
                from = before,
                to = adaptive.per_second,
                "the registry throttled a paced action; slowing it for the rest of the run"
            );
        } else {
            adaptive.per_second =
                (adaptive.per_second + 0.1).min(f64::from(adaptive.ceiling.per_second.max(1)));
        }
    }

    async fn enter_host(&self, host: &str) -> Option<OwnedSemaphorePermit> {
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

/// A paced action's bucket, and the rate it goes at now: its ceiling at first, less after
/// a throttle (additive increase, multiplicative decrease).
#[derive(Debug)]
struct Adaptive {
    bucket: Bucket,
    ceiling: Rate,
    per_second: f64,
}

impl Adaptive {
    fn new(ceiling: Rate, now: Instant) -> Self {
        Adaptive {
            bucket: Bucket::full(ceiling, now),
            ceiling,
            per_second: f64::from(ceiling.per_second.max(1)),
        }
    }

    fn take(&mut self, now: Instant) -> Duration {
        // The burst shrinks with the rate: after a throttle, no burst at the old pace.
        let burst = f64::from(self.ceiling.burst.max(1)).min(self.per_second.max(1.0));
        self.bucket.take_at(self.per_second, burst, now)
    }
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
        self.take_at(
            f64::from(rate.per_second.max(1)),
            f64::from(rate.burst.max(1)),
            now,
        )
    }

    fn take_at(&mut self, per_second: f64, burst: f64, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_second).min(burst);
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

    fn put_image() -> Paced {
        Paced {
            action: "PutImage",
            rate: Rate {
                per_second: 10,
                burst: 2,
            },
            matches: |method, path| method == Method::PUT && path.contains("/manifests/"),
        }
    }

    #[tokio::test]
    async fn a_paced_action_goes_at_its_rate_and_other_requests_do_not_wait_for_it() {
        let hosts = Hosts::default();
        hosts.pace("ecr.example", vec![put_image()]);
        let put = Method::PUT;
        let started = Instant::now();
        for _ in 0..4 {
            let entry = hosts.enter("ecr.example", &put, "/v2/a/manifests/1").await;
            assert_eq!(entry.action, Some("PutImage"));
        }
        // A burst of two, then one per 100 ms.
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(190), "{took:?}");
        // Not a PutImage, not another host's: no wait, no action.
        let started = Instant::now();
        for _ in 0..20 {
            assert_eq!(
                hosts
                    .enter("ecr.example", &Method::HEAD, "/v2/a/manifests/1")
                    .await
                    .action,
                None
            );
            assert_eq!(
                hosts
                    .enter("other.example", &put, "/v2/a/manifests/1")
                    .await
                    .action,
                None
            );
        }
        assert!(started.elapsed() < Duration::from_millis(50));
    }

    #[test]
    fn a_throttle_halves_the_pace_and_answers_win_it_back_slowly() {
        let hosts = Hosts::default();
        hosts.pace("ecr.example", vec![put_image()]);
        let rate = || hosts.actions.lock().unwrap()[&("ecr.example".to_owned(), "PutImage")].per_second;
        // Nothing asked yet: nothing to slow.
        hosts.fared("ecr.example", "PutImage", true);
        assert!(hosts.actions.lock().unwrap().is_empty());
        let now = Instant::now();
        hosts.actions.lock().unwrap().insert(
            ("ecr.example".to_owned(), "PutImage"),
            Adaptive::new(put_image().rate, now),
        );
        assert!((rate() - 10.0).abs() < 1e-9);
        hosts.fared("ecr.example", "PutImage", true);
        assert!((rate() - 5.0).abs() < 1e-9);
        for _ in 0..4 {
            hosts.fared("ecr.example", "PutImage", true);
        }
        assert!((rate() - 1.0).abs() < 1e-9, "one a second at the least");
        for _ in 0..10 {
            hosts.fared("ecr.example", "PutImage", false);
        }
        assert!((rate() - 2.0).abs() < 1e-6, "a tenth per answer: {}", rate());
        for _ in 0..1000 {
            hosts.fared("ecr.example", "PutImage", false);
        }
        assert!((rate() - 10.0).abs() < 1e-9, "never above the ceiling");
        // After a throttle, the burst is gone: two at once wait a second apart at 1/s.
        let mut slow = Adaptive::new(put_image().rate, now);
        slow.per_second = 1.0;
        slow.bucket.tokens = 0.0;
        assert_eq!(slow.take(now), Duration::from_secs(1));
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
        let get = Method::GET;
        assert!(hosts
            .enter("other.example", &get, "/v2/")
            .await
            .in_flight
            .is_none());
        // The slow host: one request in flight; the next waits for it.
        let first = hosts.enter("ecr.example:443", &get, "/v2/").await.in_flight;
        assert!(first.is_some());
        let second = tokio::time::timeout(
            Duration::from_millis(100),
            hosts.enter("ecr.example:443", &get, "/v2/"),
        )
        .await;
        assert!(
            second.is_err(),
            "a second request went while the first was in flight"
        );
        drop(first);
        assert!(hosts
            .enter("ecr.example:443", &get, "/v2/")
            .await
            .in_flight
            .is_some());
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
        paced.enter("p.example", &get, "/v2/").await;
        paced.enter("p.example", &get, "/v2/").await;
        assert!(
            started.elapsed() >= Duration::from_millis(45),
            "{:?}",
            started.elapsed()
        );
    }
}
