//! The time source. Services read "now" through a `Clock` so tests can set and move time.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

/// The current time: the system's, or one a test controls.
#[derive(Clone, Default)]
pub struct Clock {
    manual: Option<Arc<Mutex<DateTime<Utc>>>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock { manual: None }
    }

    /// A clock that stands still at `at` until set or advanced.
    pub fn manual(at: DateTime<Utc>) -> Clock {
        Clock {
            manual: Some(Arc::new(Mutex::new(at))),
        }
    }

    /// Now.
    pub fn now(&self) -> DateTime<Utc> {
        match &self.manual {
            None => Utc::now(),
            Some(t) => *t.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// Sets a manual clock; no effect on the system clock.
    pub fn set(&self, at: DateTime<Utc>) {
        if let Some(t) = &self.manual {
            *t.lock().unwrap_or_else(|p| p.into_inner()) = at;
        }
    }

    /// Moves a manual clock forward.
    pub fn advance(&self, by: Duration) {
        if let Some(t) = &self.manual {
            let mut guard = t.lock().unwrap_or_else(|p| p.into_inner());
            *guard += by;
        }
    }

    /// Whether this is a test's manual clock.
    pub fn is_manual(&self) -> bool {
        self.manual.is_some()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.manual {
            None => f.write_str("Clock::system"),
            Some(_) => write!(f, "Clock::manual({})", self.now()),
        }
    }
}
