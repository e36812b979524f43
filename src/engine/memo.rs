//! Answers a run asks once however many copies ask: the source's HEAD, the source's config
//! digest. Concurrent askers of one key wait for the first; a failure is not kept, so the
//! next asker tries again.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

/// Values by key, each computed once per run.
pub struct Memo<K, V> {
    cells: Mutex<HashMap<K, Arc<OnceCell<V>>>>,
}

impl<K, V> Default for Memo<K, V> {
    fn default() -> Self {
        Memo {
            cells: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash, V: Clone> Memo<K, V> {
    /// The value for `key`: known already, or computed by `compute` (once, however many ask
    /// at the same time). An error is handed to the one who met it and not remembered.
    pub async fn get_or_try<E, F, Fut>(&self, key: K, compute: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let cell = Arc::clone(self.cells.lock().expect("memo poisoned").entry(key).or_default());
        cell.get_or_try_init(compute).await.cloned()
    }
}

impl<K: Eq + Hash, V> Memo<K, V> {
    /// Whether `key` has its value already.
    pub fn has(&self, key: &K) -> bool {
        self.cells
            .lock()
            .expect("memo poisoned")
            .get(key)
            .is_some_and(|cell| cell.initialized())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_askers_of_one_key_share_one_computation_and_failures_are_not_kept() {
        let memo: Memo<&str, u32> = Memo::default();
        let calls = AtomicUsize::new(0);
        let ask = |key| {
            let (memo, calls) = (&memo, &calls);
            async move {
                memo.get_or_try(key, || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    Ok::<_, ()>(7)
                })
                .await
            }
        };
        let answers = futures_util::future::join_all([ask("a"), ask("a"), ask("a"), ask("b")]).await;
        assert_eq!(answers, [Ok(7), Ok(7), Ok(7), Ok(7)]);
        assert_eq!(calls.load(Ordering::SeqCst), 2, "one computation per key");
        assert!(memo.has(&"a") && !memo.has(&"c"));
        let failed = memo.get_or_try("c", || async { Err::<u32, _>("down") }).await;
        assert_eq!(failed, Err("down"));
        let retried = memo.get_or_try("c", || async { Ok::<_, &str>(9) }).await;
        assert_eq!(retried, Ok(9), "a failure is asked again");
    }
}
