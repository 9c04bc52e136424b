//! Where "now" comes from, and how to wait for an instant. Evaluation
//! (expiring assignments), commit times and the expiry timer all read a
//! [`Clock`], so tests move time with a [`ManualClock`] instead of sleeping.
//! Must not hold any other state.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::watch;

use authzd_core::model::Timestamp;

/// A future that resolves at (or after) an instant.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A source of time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant.
    fn now(&self) -> Timestamp;
    /// Resolves once `now() >= at`.
    fn sleep_until(&self, at: Timestamp) -> Sleep;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

/// Longest single timer; longer waits re-arm, so far-future instants never
/// overflow the runtime's timer.
const MAX_TIMER: Duration = Duration::from_secs(24 * 3600);

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn sleep_until(&self, at: Timestamp) -> Sleep {
        Box::pin(async move {
            loop {
                let left = at.0.saturating_sub(Timestamp::now().0);
                if left <= 0 {
                    return;
                }
                let left = Duration::from_nanos(u64::try_from(left).unwrap_or(u64::MAX));
                tokio::time::sleep(left.min(MAX_TIMER)).await;
            }
        })
    }
}

/// A clock that moves only when told to (for tests and simulations).
#[derive(Debug)]
pub struct ManualClock {
    now: watch::Sender<i64>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            now: watch::Sender::new(start.0),
        }
    }

    /// Moves the clock to `t`.
    pub fn set(&self, t: Timestamp) {
        self.now.send_replace(t.0);
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let nanos = i64::try_from(by.as_nanos()).unwrap_or(i64::MAX);
        self.now.send_modify(|n| *n = n.saturating_add(nanos));
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(*self.now.borrow())
    }

    fn sleep_until(&self, at: Timestamp) -> Sleep {
        let mut now = self.now.subscribe();
        Box::pin(async move {
            // The sender lives as long as the clock; if it is gone, time
            // will never reach `at`, so wait for ever.
            if now.wait_for(|n| *n >= at.0).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}
