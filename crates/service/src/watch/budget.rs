//! What the feed's subscriptions hold, bounded for every subscriber
//! together (the [`Budget`]). When the budget is full, the subscriber
//! furthest behind is ended first, with [`WatchError::Lagged`] naming the
//! last revision it took completely, and what it held is given back at
//! once.
//!
//! A subscription takes its messages from the live feed's ring when its
//! transport asks for them, so what it holds besides the ring is small:
//! the messages its transport took in its last batch (held encoded until
//! the transport asks again) and the replay page it delivers from. Every
//! byte held is a [`Charge`] that gives itself back when dropped, so a
//! subscription that is dropped or ended anywhere gives back everything it
//! held. Must not know what a piece contains beyond its revision (the feed
//! cuts them) nor protobuf.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;

use super::{Event, WatchError};
use authzd_core::model::Revision;

/// The estimated bytes every subscription holds together, and who holds
/// them.
#[derive(Debug)]
pub(super) struct Budget {
    /// Most estimated bytes held at once.
    limit: usize,
    /// Estimated bytes held now: the sum of every live [`Charge`]. An atomic,
    /// so taking a message never takes the registry's lock.
    held: AtomicUsize,
    /// The most ever held at once (never above `limit`).
    peak: AtomicUsize,
    /// A `std` mutex, held to register, unregister or choose whom to end,
    /// never across an await. Lock order: this, then an account's state.
    registry: Mutex<Registry>,
}

#[derive(Debug, Default)]
struct Registry {
    next: u64,
    accounts: BTreeMap<u64, Arc<Account>>,
}

/// What the budget holds now and the most it ever held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// Estimated bytes held now.
    pub now: usize,
    /// The most held at once since the feed was made.
    pub peak: usize,
    /// The bound.
    pub limit: usize,
}

impl Budget {
    pub(super) fn new(limit: usize) -> Self {
        Self {
            limit,
            held: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            registry: Mutex::new(Registry::default()),
        }
    }

    pub(super) fn held(&self) -> Held {
        Held {
            now: self.held.load(Ordering::Acquire),
            peak: self.peak.load(Ordering::Acquire),
            limit: self.limit,
        }
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        // The registry is a map changed by single statements: a poisoned
        // lock's data is still sound.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes `bytes` if they fit under the limit.
    fn try_take(&self, bytes: usize) -> bool {
        let taken = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|n| *n <= self.limit)
            });
        match taken {
            Ok(before) => {
                self.peak.fetch_max(before + bytes, Ordering::AcqRel);
                true
            }
            Err(_) => false,
        }
    }

    /// A new subscription's account, starting after revision `after`.
    pub(super) fn register(self: &Arc<Self>, after: Revision) -> Arc<Account> {
        let mut registry = self.registry();
        let id = registry.next;
        registry.next += 1;
        let account = Arc::new(Account {
            id,
            budget: self.clone(),
            held: AtomicUsize::new(0),
            state: Mutex::new(State {
                in_transport: Vec::new(),
                taken_through: after,
                end: None,
                ended: false,
                waker: None,
            }),
        });
        registry.accounts.insert(id, account.clone());
        account
    }

    /// Makes room for `bytes` more, ending the subscribers furthest behind
    /// while the budget is full. False when `account` itself is the one
    /// furthest behind (it has then been ended) or was already ended.
    fn make_room(&self, account: &Arc<Account>, bytes: usize) -> bool {
        loop {
            if account.state().ended {
                return false;
            }
            if self.try_take(bytes) {
                account.held.fetch_add(bytes, Ordering::AcqRel);
                return true;
            }
            match self.furthest_behind() {
                Some(victim) if !Arc::ptr_eq(&victim, account) => victim.end_lagged(),
                _ => {
                    account.end_lagged();
                    return false;
                }
            }
        }
    }

    /// The subscriber holding something that has taken the oldest revision
    /// (of those equally behind, the one holding most), not yet ended.
    fn furthest_behind(&self) -> Option<Arc<Account>> {
        let registry = self.registry();
        registry
            .accounts
            .values()
            .filter_map(|a| {
                let held = a.held.load(Ordering::Acquire);
                let state = a.state();
                (held > 0 && !state.ended).then(|| (state.taken_through, held, a))
            })
            .min_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
            .map(|(_, _, a)| a.clone())
    }

    fn unregister(&self, id: u64) {
        self.registry().accounts.remove(&id);
    }
}

/// Estimated bytes given back to the budget (and its subscriber's count)
/// when dropped.
#[derive(Debug)]
pub(super) struct Charge {
    owner: Arc<Account>,
    bytes: usize,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.owner.held.fetch_sub(self.bytes, Ordering::AcqRel);
        self.owner
            .budget
            .held
            .fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// What memory a message in the transport's hands costs besides its
/// estimated encoded size.
pub(super) const ENTRY_BYTES: usize = std::mem::size_of::<(Event, Charge)>();

/// One subscription's standing with the budget: what it holds, how far it
/// has taken the feed, and whether the budget ended it.
#[derive(Debug)]
pub(super) struct Account {
    id: u64,
    budget: Arc<Budget>,
    /// Estimated bytes of this subscription's live charges: what ending it
    /// can give back, and whether it holds anything at all.
    held: AtomicUsize,
    /// A `std` mutex, held to hand a message over, start a batch or end
    /// the subscription, never across an await.
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// The charges of the messages the transport took in its current
    /// batch: it holds them (encoded) until it asks again after a pause.
    in_transport: Vec<Charge>,
    /// The last revision the transport took completely: where a subscriber
    /// ended now resumes.
    taken_through: Revision,
    /// The error the subscriber gets next, once the budget ended it.
    end: Option<WatchError>,
    /// The budget ended this subscription: it takes nothing more.
    ended: bool,
    /// Woken when the budget ends the subscription while it waits.
    waker: Option<Waker>,
}

impl Account {
    fn state(&self) -> MutexGuard<'_, State> {
        // Every change to the state is made of statements that cannot
        // panic: a poisoned lock's data is still sound.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends the subscription at what it took, giving back what it holds;
    /// it gets [`WatchError::Lagged`] when it is next asked for a message.
    fn end_lagged(&self) {
        let (dropped, waker) = {
            let mut state = self.state();
            if !state.ended {
                state.ended = true;
                state.end = Some(WatchError::Lagged {
                    resume_after: state.taken_through,
                });
            }
            (std::mem::take(&mut state.in_transport), state.waker.take())
        };
        // Given back outside the lock.
        drop(dropped);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// The error the budget ended this subscription with, once.
    pub(super) fn take_end(&self) -> Option<WatchError> {
        self.state().end.take()
    }

    /// Charges `bytes` for what the subscription is about to hold (a replay
    /// page), or ends it if it is the furthest behind of a full budget.
    pub(super) fn hold(self: &Arc<Self>, bytes: usize) -> Option<Charge> {
        self.budget.make_room(self, bytes).then(|| Charge {
            owner: self.clone(),
            bytes,
        })
    }

    /// Hands a message of estimated size `bytes` to the transport, charged
    /// until the transport's next batch; `complete` is the revision it
    /// completes, if any. False when the budget ended the subscription
    /// instead.
    pub(super) fn hand_over(self: &Arc<Self>, bytes: usize, complete: Option<Revision>) -> bool {
        let bytes = bytes.saturating_add(ENTRY_BYTES);
        {
            let mut state = self.state();
            if state.ended {
                return false;
            }
            // The common case, under one lock: room in the budget.
            if self.budget.try_take(bytes) {
                self.held.fetch_add(bytes, Ordering::AcqRel);
                state.in_transport.push(Charge {
                    owner: self.clone(),
                    bytes,
                });
                if let Some(revision) = complete {
                    state.taken_through = revision;
                }
                return true;
            }
        }
        if !self.budget.make_room(self, bytes) {
            return false;
        }
        let charge = Charge {
            owner: self.clone(),
            bytes,
        };
        let mut state = self.state();
        if state.ended {
            // Ended between making room and now: the charge goes back.
            return false;
        }
        state.in_transport.push(charge);
        if let Some(revision) = complete {
            state.taken_through = revision;
        }
        true
    }

    /// The transport asks again after a pause: it no longer holds the
    /// messages of its last batch apart from what it sends.
    pub(super) fn new_batch(&self) {
        let dropped = std::mem::take(&mut self.state().in_transport);
        drop(dropped);
    }

    /// Keeps `waker` to wake if the budget ends the subscription while it
    /// waits; wakes it at once if that already happened.
    pub(super) fn park(&self, waker: &Waker) {
        let mut state = self.state();
        if state.ended {
            drop(state);
            waker.wake_by_ref();
            return;
        }
        match &state.waker {
            Some(w) if w.will_wake(waker) => {}
            _ => state.waker = Some(waker.clone()),
        }
    }

    /// Leaves the budget, giving back what the subscription holds.
    pub(super) fn leave(&self) {
        self.budget.unregister(self.id);
        let dropped = {
            let mut state = self.state();
            state.ended = true;
            std::mem::take(&mut state.in_transport)
        };
        drop(dropped);
    }
}
