//! How many blobs move at once: a bound over the whole run and one per registry host, so
//! that one slow registry or a sync of many images cannot open connections without end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The engine's concurrency bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Blobs moving at once in the whole run.
    pub overall: usize,
    /// Blobs moving at once from or to one registry host.
    pub per_host: usize,
}

/// `--transfers N`: N blobs at once overall, and as many per host.
impl From<usize> for Limits {
    fn from(transfers: usize) -> Self {
        Limits {
            overall: transfers,
            per_host: transfers,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            overall: 4,
            per_host: 4,
        }
    }
}

pub(super) struct Gates {
    limits: Limits,
    overall: Arc<Semaphore>,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// The right to move one blob; dropping it lets the next one go.
pub(super) struct Permits {
    _held: Vec<OwnedSemaphorePermit>,
}

impl Gates {
    pub fn new(limits: Limits) -> Self {
        let limits = Limits {
            overall: limits.overall.max(1),
            per_host: limits.per_host.max(1),
        };
        Gates {
            limits,
            overall: Arc::new(Semaphore::new(limits.overall)),
            hosts: Mutex::new(HashMap::new()),
        }
    }

    pub fn overall(&self) -> usize {
        self.limits.overall
    }

    /// Waits for a place overall and at each host (the source's and each destination's;
    /// one place per host however often it is named). Every caller takes them in the same
    /// order, overall first, then hosts by name, so that two copies never wait on each other.
    pub async fn enter(&self, hosts: &[&str]) -> Permits {
        let mut hosts = hosts.to_vec();
        hosts.sort_unstable();
        hosts.dedup();
        let mut held = vec![Arc::clone(&self.overall)
            .acquire_owned()
            .await
            .expect("gates are never closed")];
        for host in hosts {
            let gate = Arc::clone(
                self.hosts
                    .lock()
                    .expect("host gates poisoned")
                    .entry(host.to_owned())
                    .or_insert_with(|| Arc::new(Semaphore::new(self.limits.per_host))),
            );
            held.push(gate.acquire_owned().await.expect("gates are never closed"));
        }
        Permits { _held: held }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_host_admits_no_more_than_its_limit_and_the_run_no_more_than_overall() {
        let gates = Gates::new(Limits {
            overall: 3,
            per_host: 2,
        });
        let a = gates.enter(&["src", "dst"]).await;
        let b = gates.enter(&["src", "dst"]).await;
        // A third copy between the same hosts waits; one elsewhere goes.
        let blocked =
            tokio::time::timeout(std::time::Duration::from_millis(50), gates.enter(&["src", "dst"])).await;
        assert!(blocked.is_err());
        let c = gates.enter(&["other", "else"]).await;
        // The run is full now, whatever the hosts.
        let full = tokio::time::timeout(std::time::Duration::from_millis(50), gates.enter(&["x", "y"])).await;
        assert!(full.is_err());
        drop((a, c));
        let d =
            tokio::time::timeout(std::time::Duration::from_millis(50), gates.enter(&["src", "dst"])).await;
        assert!(d.is_ok());
        drop(b);
    }

    #[test]
    fn limits_of_zero_still_let_one_blob_through() {
        let gates = Gates::new(Limits {
            overall: 0,
            per_host: 0,
        });
        assert_eq!(gates.overall(), 1);
    }
}
