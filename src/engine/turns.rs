//! Turns: one async mutex per key, so that jobs of one run that touch the same thing (a
//! local image name, a destination repository) wait for each other while the rest run on.
//! The mutex may guard what the run knows of that thing (`T`), read and changed in turn.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One async mutex per key, made on first use, so that the jobs of a run that touch the
/// same thing take turns while the others run on.
pub struct Turns<T = ()>(Mutex<HashMap<String, Arc<tokio::sync::Mutex<T>>>>);

impl<T> Default for Turns<T> {
    fn default() -> Self {
        Turns(Mutex::default())
    }
}

impl<T: Default> Turns<T> {
    pub async fn take(&self, key: &str) -> tokio::sync::OwnedMutexGuard<T> {
        let turn = Arc::clone(
            self.0
                .lock()
                .expect("turns poisoned")
                .entry(key.to_owned())
                .or_default(),
        );
        turn.lock_owned().await
    }
}
