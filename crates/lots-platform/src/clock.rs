//! The time source. Services read "now" through a `Clock` so tests can set and move time,
//! and demos can run it faster.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

/// The current time: the system's, one a test controls, or one running faster (demos).
#[derive(Clone, Default)]
pub struct Clock {
    manual: Option<Arc<Mutex<DateTime<Utc>>>>,
    fast: Option<(DateTime<Utc>, std::time::Instant, u32)>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock that stands still at `at` until set or advanced.
    pub fn manual(at: DateTime<Utc>) -> Clock {
        Clock { manual: Some(Arc::new(Mutex::new(at))), fast: None }
    }

    /// A clock that starts at `at` and runs `factor` times faster than real time (demos).
    pub fn accelerated(at: DateTime<Utc>, factor: u32) -> Clock {
        Clock { manual: None, fast: Some((at, std::time::Instant::now(), factor.max(1))) }
    }

    /// Now.
    pub fn now(&self) -> DateTime<Utc> {
        if let Some(t) = &self.manual {
            return *t.lock().unwrap_or_else(|p| p.into_inner());
        }
        match self.fast {
            None => Utc::now(),
            Some((start, real, factor)) => {
                start + Duration::from_std(real.elapsed() * factor).unwrap_or_else(|_| Duration::zero())
            }
        }
    }

    /// Sets a manual clock; no effect on other clocks.
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
        match (&self.manual, self.fast) {
            (Some(_), _) => write!(f, "Clock::manual({})", self.now()),
            (None, Some((_, _, factor))) => {
                write!(f, "Clock::accelerated(x{factor}, {})", self.now())
            }
            (None, None) => f.write_str("Clock::system"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let start = Utc::now() - Duration::days(100);
        let clock = Clock::manual(start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::hours(2));
        assert_eq!(clock.now(), start + Duration::hours(2));
    }

    #[test]
    fn an_accelerated_clock_runs_faster() {
        let start = Utc::now();
        let clock = Clock::accelerated(start, 3600);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(clock.now() - start >= Duration::seconds(60));
    }
}
