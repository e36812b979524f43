//! The `Authorization` values a run has obtained, by API host and scope, each kept until
//! shortly before the token server said it expires. One value may serve many scopes (a token
//! asked for many repositories at once): it is shared, not copied, so a thousand cached
//! scopes cost one token's bytes. Pure bookkeeping; never asks anything.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An `Authorization` header value, and how long it stays good from when it was handed out
/// (`None`: Basic credentials, good for the whole run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub value: Arc<str>,
    pub lifetime: Option<Duration>,
}

impl Authorization {
    pub fn lasting(value: String) -> Self {
        Authorization {
            value: value.into(),
            lifetime: None,
        }
    }
}

struct Cached {
    value: Arc<str>,
    /// When to stop using it: a little before the token server's expiry, so that a request
    /// sent just before it does not arrive just after.
    renew_at: Option<Instant>,
}

/// The share of a token's lifetime it is used for; the rest is a margin for clock and
/// round trips (30 s of Docker Hub's 300 s).
fn usable(lifetime: Duration) -> Duration {
    lifetime * 9 / 10
}

#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<(String, String), Cached>>,
}

impl TokenCache {
    /// The value cached for `key` on `host`, unless it is due for renewal (then it is dropped).
    pub fn get(&self, host: &str, key: &str) -> Option<Arc<str>> {
        self.get_at(host, key, Instant::now())
    }

    fn get_at(&self, host: &str, key: &str, now: Instant) -> Option<Arc<str>> {
        let mut entries = self.entries.lock().expect("token cache poisoned");
        let lookup = (host.to_owned(), key.to_owned());
        let cached = entries.get(&lookup)?;
        if cached.renew_at.is_some_and(|renew_at| now >= renew_at) {
            entries.remove(&lookup);
            return None;
        }
        Some(Arc::clone(&cached.value))
    }

    /// Whether `key` on `host` has a value that is still good.
    pub fn holds(&self, host: &str, key: &str) -> bool {
        self.get(host, key).is_some()
    }

    /// Keeps `authorization` for each of `keys` on `host`, as handed out now.
    pub fn put<'k>(
        &self,
        host: &str,
        keys: impl IntoIterator<Item = &'k str>,
        authorization: &Authorization,
    ) {
        self.put_at(host, keys, authorization, Instant::now());
    }

    fn put_at<'k>(
        &self,
        host: &str,
        keys: impl IntoIterator<Item = &'k str>,
        authorization: &Authorization,
        now: Instant,
    ) {
        let renew_at = authorization.lifetime.map(|lifetime| now + usable(lifetime));
        let mut entries = self.entries.lock().expect("token cache poisoned");
        for key in keys {
            entries.insert(
                (host.to_owned(), key.to_owned()),
                Cached {
                    value: Arc::clone(&authorization.value),
                    renew_at,
                },
            );
        }
    }

    /// Drops what is cached for `key` on `host` (the registry refused it).
    pub fn forget(&self, host: &str, key: &str) {
        self.entries
            .lock()
            .expect("token cache poisoned")
            .remove(&(host.to_owned(), key.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_used_until_shortly_before_it_expires_and_basic_auth_for_the_run() {
        let cache = TokenCache::default();
        let start = Instant::now();
        let token = Authorization {
            value: "Bearer t".into(),
            lifetime: Some(Duration::from_secs(300)),
        };
        cache.put_at("h", ["repository:a:pull", "repository:b:pull"], &token, start);
        cache.put_at(
            "h",
            ["repository:c:pull"],
            &Authorization::lasting("Basic x".into()),
            start,
        );
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        let cases = [
            ("repository:a:pull", 0, Some("Bearer t")),
            ("repository:b:pull", 269, Some("Bearer t")),
            // 30 s before Docker Hub's expiry, a request could arrive too late.
            ("repository:b:pull", 270, None),
            ("repository:c:pull", 100_000, Some("Basic x")),
            ("repository:d:pull", 0, None),
        ];
        for (key, seconds, expected) in cases {
            assert_eq!(
                cache.get_at("h", key, at(seconds)).as_deref(),
                expected,
                "{key} after {seconds} s"
            );
        }
        assert_eq!(cache.get_at("other", "repository:c:pull", start), None);
        // Dropped once due: asking earlier again does not bring it back.
        assert_eq!(cache.get_at("h", "repository:b:pull", start), None);
        assert_eq!(
            cache.get_at("h", "repository:a:pull", start).as_deref(),
            Some("Bearer t")
        );
    }

    #[test]
    fn many_scopes_share_one_token_and_forgetting_one_keeps_the_others() {
        let cache = TokenCache::default();
        let keys: Vec<String> = (0..1000).map(|n| format!("repository:r{n}:pull")).collect();
        let token = Authorization {
            value: "Bearer shared".into(),
            lifetime: Some(Duration::from_secs(60)),
        };
        cache.put("h", keys.iter().map(String::as_str), &token);
        let first = cache.get("h", &keys[0]).unwrap();
        let last = cache.get("h", &keys[999]).unwrap();
        assert!(Arc::ptr_eq(&first, &last), "one token, not a thousand copies");
        cache.forget("h", &keys[0]);
        assert!(!cache.holds("h", &keys[0]));
        assert!(cache.holds("h", &keys[1]));
    }
}
