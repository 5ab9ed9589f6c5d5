//! Where "now" comes from: [`SystemClock`] in production, [`ManualClock`] in tests.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Duration, Utc};

/// A source of the current instant. Everything in ai-metering that needs "now" asks a
/// `Clock`, so tests move time forward instead of sleeping.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;

    /// True when this clock moves with real time (the default). `Metering` runs its
    /// background sweeper only on such a clock: a test that moves time by hand sweeps with
    /// `Metering::sweep` when it wants to.
    fn follows_real_time(&self) -> bool {
        true
    }
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until told to move; clones share the same time.
///
/// ```
/// use ai_metering_core::clock::{Clock, ManualClock};
/// use chrono::{Duration, TimeZone, Utc};
///
/// let clock = ManualClock::new(Utc.with_ymd_and_hms(2024, 1, 31, 23, 0, 0).unwrap());
/// clock.advance(Duration::hours(2));
/// assert_eq!(clock.now(), Utc.with_ymd_and_hms(2024, 2, 1, 1, 0, 0).unwrap());
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    /// A clock showing `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(at)))
    }

    /// Sets the time.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = at;
    }

    /// Moves the time forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn follows_real_time(&self) -> bool {
        false
    }
}
