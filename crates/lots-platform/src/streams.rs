//! Limits on long-lived server streams (`WatchAlerts`, `WatchTasks`): a caller may keep a few
//! open, a replica a bounded number. A stream holds a [`StreamPermit`] for its life; dropping
//! it (the stream ended, the client went away) frees the place.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tonic::Status;

use crate::auth::Caller;

/// Open streams one caller (issuer and subject) may hold on one replica.
pub const PER_CALLER: usize = 8;
/// Open streams one replica serves at most.
pub const PER_REPLICA: usize = 2048;

/// Counts open streams per caller and in total.
#[derive(Clone)]
pub struct StreamLimits {
    per_caller: usize,
    per_replica: usize,
    open: Arc<Mutex<Open>>,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_caller: HashMap<String, usize>,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self::new(PER_CALLER, PER_REPLICA)
    }
}

/// One open stream's place; freed on drop.
pub struct StreamPermit {
    key: String,
    open: Arc<Mutex<Open>>,
}

impl StreamLimits {
    pub fn new(per_caller: usize, per_replica: usize) -> Self {
        StreamLimits { per_caller, per_replica, open: Arc::default() }
    }

    /// A place for one more stream of `caller`, or RESOURCE_EXHAUSTED naming the limit.
    pub fn admit(&self, caller: &Caller) -> Result<StreamPermit, Status> {
        let key = format!("{}\u{0}{}", caller.issuer, caller.subject);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.total >= self.per_replica {
            return Err(Status::resource_exhausted(format!(
                "this replica serves at most {} open streams (streams per replica); try again shortly",
                self.per_replica
            )));
        }
        let mine = open.by_caller.entry(key.clone()).or_default();
        if *mine >= self.per_caller {
            return Err(Status::resource_exhausted(format!(
                "at most {} open streams per caller (streams per caller); close one first",
                self.per_caller
            )));
        }
        *mine += 1;
        open.total += 1;
        Ok(StreamPermit { key, open: self.open.clone() })
    }

    /// Streams open now.
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_caller.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.by_caller.remove(&self.key);
            }
        }
    }
}
