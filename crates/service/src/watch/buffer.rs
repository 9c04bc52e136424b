//! What the feed's subscriptions hold, bounded twice: per subscriber (by
//! messages and estimated bytes) and for every subscriber together (the
//! [`Budget`]). When the budget is full, the subscriber furthest behind is
//! ended first, with [`WatchError::Lagged`] naming the last revision it took
//! completely, and what it held is given back at once.
//!
//! Every byte held is a [`Charge`] that gives itself back when dropped: a
//! message waiting in a [`Mailbox`], the piece a producer holds while it
//! waits for room, the replay page it delivers from, and the last message
//! the subscriber took, which the transport holds encoded until the
//! subscriber asks for the next. So a subscription that is dropped, ended
//! or cancelled anywhere gives back everything it held. Must not know what
//! a piece contains beyond its revision (the feed cuts them) nor protobuf.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use tokio::sync::Notify;

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
    /// never across an await. Lock order: this, then a mailbox's queue.
    registry: Mutex<Registry>,
}

#[derive(Debug, Default)]
struct Registry {
    next: u64,
    mailboxes: BTreeMap<u64, Arc<Mailbox>>,
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

    /// A new subscription's mailbox, starting after revision `after`.
    pub(super) fn register(self: &Arc<Self>, after: Revision, limits: Limits) -> Arc<Mailbox> {
        let mut registry = self.registry();
        let id = registry.next;
        registry.next += 1;
        let mailbox = Arc::new(Mailbox {
            id,
            budget: self.clone(),
            limits,
            held: AtomicUsize::new(0),
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                queued: 0,
                taken_through: after,
                end: None,
                stopped: false,
                producer_done: false,
                finished: false,
                consumer: None,
            }),
            producer: Notify::new(),
        });
        registry.mailboxes.insert(id, mailbox.clone());
        mailbox
    }

    /// Charges `bytes` to `mailbox`, first ending the subscribers furthest
    /// behind while the budget is full. `None` when `mailbox` itself is the
    /// one furthest behind (it has then been ended).
    fn charge(self: &Arc<Self>, mailbox: &Arc<Mailbox>, bytes: usize) -> Option<Charge> {
        loop {
            if mailbox.queue().stopped {
                return None;
            }
            if self.try_take(bytes) {
                mailbox.held.fetch_add(bytes, Ordering::AcqRel);
                return Some(Charge {
                    owner: mailbox.clone(),
                    bytes,
                });
            }
            let victim = self.furthest_behind();
            match victim {
                Some(victim) if !Arc::ptr_eq(&victim, mailbox) => victim.end_lagged(),
                _ => {
                    mailbox.end_lagged();
                    return None;
                }
            }
        }
    }

    /// The subscriber holding something that has taken the oldest revision
    /// (of those equally behind, the one holding most), not yet ended.
    fn furthest_behind(&self) -> Option<Arc<Mailbox>> {
        let registry = self.registry();
        registry
            .mailboxes
            .values()
            .filter_map(|m| {
                let held = m.held.load(Ordering::Acquire);
                let queue = m.queue();
                (held > 0 && !queue.stopped).then(|| (queue.taken_through, held, m))
            })
            .min_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
            .map(|(_, _, m)| m.clone())
    }

    fn unregister(&self, id: u64) {
        self.registry().mailboxes.remove(&id);
    }
}

/// How much one subscriber may have waiting.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Messages.
    pub(super) messages: usize,
    /// Estimated bytes; a larger message waits until nothing else does.
    pub(super) bytes: usize,
}

/// Estimated bytes given back to the budget (and its subscriber's count)
/// when dropped.
#[derive(Debug)]
pub(super) struct Charge {
    owner: Arc<Mailbox>,
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

/// What memory a queued message costs besides its estimated encoded size.
pub(super) const ENTRY_BYTES: usize = std::mem::size_of::<(Event, Charge)>();

/// One subscription's messages between its producer (the feed's task) and
/// its consumer (the [`Subscription`]).
#[derive(Debug)]
pub(super) struct Mailbox {
    id: u64,
    budget: Arc<Budget>,
    limits: Limits,
    /// Estimated bytes of this subscription's live charges: what ending it
    /// can give back, and whether it holds anything at all.
    held: AtomicUsize,
    /// A `std` mutex, held for a push, a take or an end, never across an
    /// await.
    queue: Mutex<Queue>,
    /// Wakes the producer: room in the queue, or the subscription stopped.
    producer: Notify,
}

#[derive(Debug)]
struct Queue {
    items: VecDeque<(Event, Charge)>,
    /// Estimated bytes of `items`.
    queued: usize,
    /// The last revision the consumer took completely: where a subscriber
    /// ended now resumes.
    taken_through: Revision,
    /// The error the consumer gets after `items`.
    end: Option<WatchError>,
    /// The producer must stop: the consumer is gone, or the budget ended it.
    stopped: bool,
    /// The producer has stopped: after `items` and `end`, nothing comes.
    producer_done: bool,
    /// The consumer has had the end.
    finished: bool,
    /// Woken when something arrives.
    consumer: Option<Waker>,
}

/// Whether a message was queued, or the subscription is over.
pub(super) enum Delivery {
    Sent,
    Gone,
}

impl Mailbox {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        // Every change to the queue is made of statements that cannot
        // panic: a poisoned lock's data is still sound.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends the subscription at what its consumer took, giving back what
    /// waits for it; its producer stops at its next step.
    fn end_lagged(&self) {
        let (dropped, waker) = {
            let mut queue = self.queue();
            queue.stopped = true;
            queue.queued = 0;
            if queue.end.is_none() {
                queue.end = Some(WatchError::Lagged {
                    resume_after: queue.taken_through,
                });
            }
            (std::mem::take(&mut queue.items), queue.consumer.take())
        };
        // Given back outside the lock; nothing else is waiting on it.
        drop(dropped);
        self.producer.notify_one();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Whether the producer must stop.
    pub(super) fn stopped(&self) -> bool {
        self.queue().stopped
    }

    /// Resolves when there may be room, or the subscription may have
    /// stopped.
    pub(super) async fn wake_producer(&self) {
        self.producer.notified().await;
    }

    /// Charges `bytes` for what the producer is about to hold (a replay
    /// page), or ends this subscription if it is the furthest behind of a
    /// full budget.
    pub(super) fn hold(self: &Arc<Self>, bytes: usize) -> Option<Charge> {
        self.budget.charge(self, bytes)
    }

    /// Queues `event` of estimated size `bytes`, charged before it waits for
    /// room (it is held meanwhile), waiting while this subscriber's own
    /// bounds are full.
    pub(super) async fn send(self: &Arc<Self>, event: Event, bytes: usize) -> Delivery {
        let bytes = bytes.saturating_add(ENTRY_BYTES);
        let Some(charge) = self.budget.charge(self, bytes) else {
            return Delivery::Gone;
        };
        let mut entry = Some((event, charge));
        loop {
            let room = self.producer.notified();
            let waker = {
                let mut queue = self.queue();
                if queue.stopped {
                    return Delivery::Gone;
                }
                let fits = queue.items.is_empty()
                    || (queue.items.len() < self.limits.messages
                        && queue.queued.saturating_add(bytes) <= self.limits.bytes);
                if fits && let Some(entry) = entry.take() {
                    queue.queued += bytes;
                    queue.items.push_back(entry);
                    Some(queue.consumer.take())
                } else {
                    None
                }
            };
            if let Some(waker) = waker {
                if let Some(waker) = waker {
                    waker.wake();
                }
                return Delivery::Sent;
            }
            room.await;
        }
    }

    /// The producer has stopped, with `error` if it ended the stream.
    pub(super) fn finish(&self, error: Option<WatchError>) {
        let waker = {
            let mut queue = self.queue();
            queue.producer_done = true;
            if queue.end.is_none() {
                queue.end = error;
            }
            queue.consumer.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// A running subscription: a stream of events, then at most one error.
/// Each message counts against its subscriber's bounds and the budget until
/// the one after it is asked for (until then the transport holds it).
#[derive(Debug)]
pub struct Subscription {
    mailbox: Arc<Mailbox>,
    /// The charge of the last message taken.
    in_transport: Option<Charge>,
}

impl Subscription {
    pub(super) fn new(mailbox: Arc<Mailbox>) -> Self {
        Self {
            mailbox,
            in_transport: None,
        }
    }

    /// The next event, or `None` once the subscription has ended.
    pub async fn next(&mut self) -> Option<Result<Event, WatchError>> {
        std::future::poll_fn(|cx| self.poll_take(cx)).await
    }

    fn poll_take(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Event, WatchError>>> {
        self.in_transport = None;
        let mut queue = self.mailbox.queue();
        if let Some((event, charge)) = queue.items.pop_front() {
            queue.queued = queue.queued.saturating_sub(charge.bytes);
            match &event {
                Event::Committed(piece) if piece.complete => queue.taken_through = piece.revision,
                Event::Progress(revision) => queue.taken_through = *revision,
                Event::Committed(_) => {}
            }
            drop(queue);
            self.in_transport = Some(charge);
            self.mailbox.producer.notify_one();
            return Poll::Ready(Some(Ok(event)));
        }
        if let Some(error) = queue.end.take() {
            queue.finished = true;
            return Poll::Ready(Some(Err(error)));
        }
        if queue.finished || queue.producer_done {
            return Poll::Ready(None);
        }
        queue.consumer = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl tokio_stream::Stream for Subscription {
    type Item = Result<Event, WatchError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Self::Item>> {
        self.poll_take(cx)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.mailbox.budget.unregister(self.mailbox.id);
        let dropped = {
            let mut queue = self.mailbox.queue();
            queue.stopped = true;
            queue.queued = 0;
            std::mem::take(&mut queue.items)
        };
        drop(dropped);
        self.mailbox.producer.notify_one();
    }
}
