//! Live task lists: a watcher sends the officer's open tasks, then every change after its
//! cursor. Postgres NOTIFY (sent in the changing transaction) wakes watchers on every replica.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The NOTIFY channel of task changes; the payload is `<tenant>/<officer>`.
pub const CHANNEL: &str = "lots_routing_tasks";

/// Wakes watchers of one officer when their tasks change.
#[derive(Clone, Default)]
pub struct Hub {
    officers: Arc<Mutex<HashMap<String, watch::Sender<u64>>>>,
}

impl Hub {
    /// A receiver that changes whenever `key`'s tasks change.
    pub fn subscribe(&self, key: &str) -> watch::Receiver<u64> {
        let mut map = self.officers.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(key.to_owned()).or_insert_with(|| watch::channel(0).0).subscribe()
    }

    fn wake(&self, key: &str) {
        let map = self.officers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = map.get(key) {
            tx.send_modify(|n| *n += 1);
        }
    }

    fn wake_all(&self) {
        let map = self.officers.lock().unwrap_or_else(|p| p.into_inner());
        for tx in map.values() {
            tx.send_modify(|n| *n += 1);
        }
    }

    /// Listens for NOTIFY until cancelled; on a lost connection it reconnects and wakes everyone
    /// (a watcher re-reads from its cursor, so nothing is missed).
    pub async fn listen(self, pool: PgPool, token: CancellationToken) {
        loop {
            let mut listener = match PgListener::connect_with(&pool).await {
                Ok(l) => l,
                Err(err) => {
                    tracing::warn!(error = %err, "task listener cannot connect; retrying");
                    tokio::select! {
                        _ = token.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            if let Err(err) = listener.listen(CHANNEL).await {
                tracing::warn!(error = %err, "task listener cannot LISTEN; retrying");
                continue;
            }
            self.wake_all();
            loop {
                tokio::select! {
                    _ = token.cancelled() => return,
                    n = listener.try_recv() => match n {
                        Ok(Some(n)) => self.wake(n.payload()),
                        Ok(None) => { self.wake_all(); }
                        Err(err) => {
                            tracing::warn!(error = %err, "task listener lost its connection");
                            break;
                        }
                    }
                }
            }
        }
    }
}
