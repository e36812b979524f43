//! Turns: one async mutex per key, so that jobs of one run that touch the same thing (a
//! local image name, a destination repository) wait for each other while the rest run on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One async mutex per key, made on first use, so that the jobs of a run that touch the
/// same thing take turns while the others run on.
#[derive(Default)]
pub struct Turns(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl Turns {
    pub async fn take(&self, key: &str) -> tokio::sync::OwnedMutexGuard<()> {
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
