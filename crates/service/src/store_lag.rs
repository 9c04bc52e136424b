//! How far a node of a shared store (several nodes on one database) is
//! behind the database: the revisions it has not applied yet, and how long
//! ago it last knew itself in step (every revision the database held
//! applied). A database that cannot be reached keeps the node's last known
//! head, so the time since it was in step grows until it reaches the
//! database again and catches up.
//!
//! Owns only the measurement; the follow loop (in the service) feeds it,
//! the metrics and the health status read it. Must not decide health
//! itself: the bound is the edge's.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use authzd_core::model::Revision;

/// A shared-store node's lag behind the database, as last measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLag {
    /// Revisions the database was last known to hold beyond the node's
    /// applied one.
    pub behind: u64,
    /// Time since the node last knew it had applied every revision the
    /// database held: since it last caught up.
    pub since_in_step: Duration,
    /// Whether the last attempt to read the database's head succeeded.
    pub reachable: bool,
}

/// The lag's inputs, updated by the follow loop.
#[derive(Debug)]
pub(crate) struct LagTracker {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// The latest revision the database was known to hold.
    head: Revision,
    /// When the node last had applied `head` with `head` read fresh.
    in_step_at: Instant,
    /// Whether the last read of the head succeeded.
    reachable: bool,
}

impl LagTracker {
    /// A node that has just loaded the database's state at `head`: in step.
    pub(crate) fn new(head: Revision) -> Self {
        LagTracker {
            state: Mutex::new(State {
                head,
                in_step_at: Instant::now(),
                reachable: true,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The database said its head is `head` just now; the node has
    /// applied `applied`.
    pub(crate) fn heard(&self, head: Revision, applied: Revision) {
        let mut state = self.state();
        state.reachable = true;
        state.head = state.head.max(head);
        if applied >= state.head {
            state.in_step_at = Instant::now();
        }
    }

    /// Reading the database's head failed.
    pub(crate) fn unreachable(&self) {
        self.state().reachable = false;
    }

    /// The lag of a node that has applied `applied`.
    pub(crate) fn measure(&self, applied: Revision) -> StoreLag {
        let state = self.state();
        StoreLag {
            behind: state.head.0.saturating_sub(applied.0),
            since_in_step: state.in_step_at.elapsed(),
            reachable: state.reachable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behind_and_in_step() {
        let lag = LagTracker::new(Revision(3));
        assert_eq!(lag.measure(Revision(3)).behind, 0);
        lag.heard(Revision(7), Revision(3));
        let measured = lag.measure(Revision(3));
        assert_eq!(measured.behind, 4);
        assert!(measured.reachable);
        lag.unreachable();
        assert!(!lag.measure(Revision(3)).reachable);
        // A stale read never moves the known head back.
        lag.heard(Revision(5), Revision(5));
        assert_eq!(lag.measure(Revision(5)).behind, 2);
        assert!(lag.measure(Revision(5)).reachable);
    }
}
