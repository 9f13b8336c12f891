//! The time handlers work with, held in the state so that tests can set it.
//!
//! The presign core, the rules and the token checks all take `now` as an argument; the
//! handlers read it here once per request. Timers that bound waiting (request and
//! store timeouts) stay on tokio's clock.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The time now.
    fn now(&self) -> SystemTime;
}

/// The system's clock: what the service runs with.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that stands still until moved: for tests of expiry.
#[derive(Debug)]
pub struct ManualClock(Mutex<SystemTime>);

impl ManualClock {
    /// A clock showing `at`.
    pub fn new(at: SystemTime) -> Self {
        Self(Mutex::new(at))
    }

    /// Moves the clock `by` forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// `time` in RFC 3339, UTC, as the API and the reports write times (fails only for a
/// year past 9999).
pub fn rfc3339(time: SystemTime) -> Result<String, time::error::Format> {
    time::OffsetDateTime::from(time).format(&time::format_description::well_known::Rfc3339)
}

/// `time` in whole seconds since the Unix epoch (0 before it).
pub fn unix(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}
