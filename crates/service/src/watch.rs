//! The change feed: subscribe, replay from the changelog, go live, in
//! bounded pieces taken when the subscriber's transport asks for them.
//!
//! Every committed revision, whatever its tenant, is published to the
//! [`Feed`] exactly once and in revision order; the feed keeps the most
//! recent change sets in a ring bounded by count and by (approximate) bytes.
//! A subscription replays the changelog after the subscriber's revision,
//! then takes the revision after the last one it delivered from the ring,
//! one at a time. That makes the stream contiguous by construction and
//! checked: a revision the ring no longer holds ends the stream with
//! [`WatchError::Lagged`], and a revision that was never published (the ring
//! holds a later one instead) ends it with [`WatchError::Gap`]; both name the
//! revision to resume after. Nothing is ever skipped silently.
//!
//! A revision reaches the subscriber as one or more [`Piece`]s, each at most
//! about [`Pacing::piece_bytes`] (one record larger than that travels alone),
//! the last one marked complete, so one write's hundred thousand permission
//! changes never make a message too large to receive. A subscription has no
//! task and no queue of its own: it does its work when its transport asks
//! for the next event, so a subscriber that stops reading (its HTTP/2
//! window full, its transport no longer asking) costs nothing per write,
//! holds only what it handed over last, and lags out of the ring. What
//! subscriptions hold is bounded for all of them together (see `budget`).
//! An idle subscription gets progress events carrying the revision it has
//! reached.
//!
//! Work per revision is done once per kind of subscriber, not once per
//! subscriber: the pieces a filter lets through of a revision in the ring
//! are cut by the first subscriber with that filter that gets there, kept
//! beside the change set (counted in the ring's byte bound), and shared by
//! every other subscriber with an equal filter, together with the slot
//! ([`Wire`]) where the transport keeps the piece's encoding.
//! Must not read the store itself (the replay is handed in) and must not
//! know protobuf: sizes here are estimates of the encoded size.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::watch;
use tokio_stream::Stream as _;
use tokio_stream::wrappers::WatchStream;

use authzd_core::model::{
    Change, ChangeSet, Effect, Permission, Place, Principal, Revision, SubjectId, TenantId,
    Timestamp,
};
use authzd_core::schema::PermissionPattern;

mod budget;

pub use budget::Held;
use budget::{Account, Budget, Charge};

/// Why a subscription ended early, or was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// The subscriber fell further behind than the live buffer holds.
    #[error(
        "the subscriber fell behind the live feed; resume with after_revision = {resume_after}"
    )]
    Lagged {
        /// The last revision delivered completely.
        resume_after: Revision,
    },
    /// The live feed offered a revision that does not follow the last one
    /// delivered: the ones between were never published to it.
    #[error(
        "the live feed went from revision {resume_after} to {received}; resume with after_revision = {resume_after}"
    )]
    Gap {
        /// The last revision delivered completely.
        resume_after: Revision,
        /// The revision the feed offered next.
        received: Revision,
    },
    /// The requested revision has not been committed.
    #[error(
        "after_revision {requested} is beyond the latest committed revision {latest}; watch with after_revision at most {latest}"
    )]
    Ahead {
        /// What was asked for.
        requested: Revision,
        /// The latest committed revision when the subscription was asked for.
        latest: Revision,
    },
    /// The requested revision is older than the retained changelog.
    #[error(
        "revision {requested} is older than the retained changelog (oldest retained: {oldest}); resync: list with ListEffectivePermissions or ListSubjectsWithPermission, then watch with after_revision = the revision those answers carry"
    )]
    TooOld {
        /// What was asked for.
        requested: Revision,
        /// The oldest revision still retained.
        oldest: Revision,
    },
    /// The changelog could not be read.
    #[error("the changelog could not be read")]
    Replay,
    /// The server is shutting down; another server (or this one, restarted)
    /// continues the feed.
    #[error("the server is shutting down; resume with after_revision = {resume_after}")]
    ShuttingDown {
        /// The last revision delivered completely.
        resume_after: Revision,
    },
}

/// Where a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Strictly after this revision (0: from the first revision ever).
    After(Revision),
    /// At the oldest revision the changelog still retains.
    OldestRetained,
}

/// What a subscription delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A piece of a committed revision, as much of it as the filter lets
    /// through; shared by the subscribers whose filters are equal.
    Committed(Arc<Piece>),
    /// Nothing to deliver for a while; the stream has reached this revision.
    Progress(Revision),
}

/// A bounded part of one revision's visible changes and effects. The pieces
/// of a revision come one after another, numbered from 0, and only the last
/// is `complete`; a revision nothing of which is visible sends none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// The revision.
    pub revision: Revision,
    /// On whose behalf it was written.
    pub actor: Option<SubjectId>,
    /// When it committed.
    pub committed_at: Timestamp,
    /// Its position among the revision's pieces, from 0.
    pub part: u32,
    /// True on the revision's last piece: the subscriber has all of it.
    pub complete: bool,
    /// Raw changes, in the order applied (those of earlier pieces first).
    pub changes: Vec<Change>,
    /// Effects, in the change set's order (those of earlier pieces first).
    pub effects: Vec<Effect>,
    /// The piece as the transport encodes it, once for every subscriber
    /// sharing the piece.
    pub wire: Wire,
}

/// Where the transport keeps a piece's encoding: made by the first
/// subscription that sends the piece, reused by every other subscription
/// sharing it. Opaque to the feed, which neither reads nor fills it. It
/// takes no part in comparing pieces, and a clone (which may then be
/// changed) starts empty.
#[derive(Default)]
pub struct Wire(OnceLock<Arc<[u8]>>);

impl Wire {
    /// The encoding kept here, made by `encode` if there is none yet.
    pub fn get_or_init(&self, encode: impl FnOnce() -> Arc<[u8]>) -> Arc<[u8]> {
        self.0.get_or_init(encode).clone()
    }
}

impl Clone for Wire {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for Wire {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Wire {}

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "Wire(encoded)"
        } else {
            "Wire"
        })
    }
}

/// The live feed every committed change set is published to.
#[derive(Debug, Clone)]
pub struct Feed {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// A `std` mutex: held only to push, evict or look up one entry, never
    /// across an await.
    ring: Mutex<Ring>,
    /// The latest revision published; subscribers wait on it for the next.
    published: watch::Sender<Revision>,
    /// Set at shutdown (and `published` nudged) so every stream ends, with
    /// [`WatchError::ShuttingDown`] naming where to resume.
    closing: AtomicBool,
    /// Most change sets the ring keeps.
    capacity: usize,
    /// Most estimated bytes the ring keeps (besides its newest set).
    capacity_bytes: usize,
    /// What every subscription holds, together.
    budget: Arc<Budget>,
}

/// The recent change sets, ascending and without holes unless a revision was
/// never published.
#[derive(Debug, Default)]
struct Ring {
    /// Each with the estimated size of the set and of the cuts kept for it.
    sets: VecDeque<(Arc<Entry>, usize)>,
    /// Sum of the estimated sizes in `sets`.
    bytes: usize,
    /// The newest revision evicted: a subscriber wanting it or an older one
    /// has lagged.
    evicted_through: Revision,
}

/// Most filters whose cut of one change set the ring keeps: subscribers
/// share a few kinds of filter (a tenant's everything, most often), and a
/// filter beyond these cuts for itself rather than grow the ring.
const SHARED_CUTS: usize = 4;

/// A change set in the ring, with the cuts made of it for subscribers.
#[derive(Debug)]
struct Entry {
    set: Arc<ChangeSet>,
    /// At most [`SHARED_CUTS`]. A `std` mutex, held only to find or add a
    /// cut, never while one is being made nor across an await.
    cuts: Mutex<Vec<Arc<Cut>>>,
}

/// The pieces one filter lets through of one change set, each with its
/// estimated size: made once, by the first subscriber that needs them.
#[derive(Debug)]
struct Cut {
    filter: Filter,
    piece_bytes: usize,
    pieces: OnceLock<Vec<(Arc<Piece>, usize)>>,
}

impl Entry {
    fn cuts(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Cut>>> {
        // Changed only by a push: a poisoned lock's data is still sound.
        self.cuts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the ring has for a subscriber wanting revision `want`.
enum Next {
    Set(Arc<Entry>),
    /// Not published yet.
    Pending,
    /// Evicted before the subscriber got to it.
    Lagged,
    /// Never published: the ring holds this later revision instead.
    Gap(Revision),
}

impl Ring {
    fn next(&self, want: Revision) -> Next {
        if want <= self.evicted_through {
            return Next::Lagged;
        }
        let at = self.sets.partition_point(|(e, _)| e.set.revision < want);
        match self.sets.get(at) {
            None => Next::Pending,
            Some((entry, _)) if entry.set.revision == want => Next::Set(entry.clone()),
            Some((entry, _)) => Next::Gap(entry.set.revision),
        }
    }

    /// Counts `bytes` more kept for the set of `revision`, if the ring still
    /// holds it (an evicted set's cuts go with the last subscriber using
    /// them).
    fn grow(&mut self, revision: Revision, bytes: usize) {
        let at = self
            .sets
            .partition_point(|(e, _)| e.set.revision < revision);
        if let Some((entry, size)) = self.sets.get_mut(at)
            && entry.set.revision == revision
        {
            *size += bytes;
            self.bytes += bytes;
        }
    }
}

/// Which kinds of events a subscriber wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kinds {
    /// Raw changes.
    pub changes: bool,
    /// Effective gains and losses.
    pub effects: bool,
    /// Progress events.
    pub progress: bool,
}

impl Default for Kinds {
    fn default() -> Self {
        Self {
            changes: true,
            effects: true,
            progress: true,
        }
    }
}

/// What a subscriber wants to see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// The tenant (store-wide change sets, such as schema writes, are
    /// delivered to every tenant's subscribers).
    pub tenant: TenantId,
    /// Only raw changes naming this subject, and effects of or over it.
    pub subject: Option<SubjectId>,
    /// Only effects whose permission matches.
    pub permission: Option<PermissionPattern>,
    /// Only effects at this target.
    pub target: Option<Place>,
    /// Which kinds of events.
    pub kinds: Kinds,
}

impl Filter {
    /// A filter passing everything of one tenant.
    pub fn tenant(tenant: TenantId) -> Self {
        Self {
            tenant,
            subject: None,
            permission: None,
            target: None,
            kinds: Kinds::default(),
        }
    }

    /// Whether any of this change set can be for this subscriber.
    fn sees(&self, set: &ChangeSet) -> bool {
        set.tenant.as_ref().is_none_or(|t| t == &self.tenant)
    }

    fn wants_change(&self, c: &Change) -> bool {
        self.kinds.changes && self.subject.as_ref().is_none_or(|s| names_subject(c, s))
    }

    fn wants_effect(&self, e: &Effect) -> bool {
        self.kinds.effects
            && e.tenant == self.tenant
            && self
                .subject
                .as_ref()
                .is_none_or(|s| &e.subject == s || e.target == Place::Subject(s.clone()))
            && self
                .permission
                .as_ref()
                .is_none_or(|p| p.matches(&e.permission))
            && self.target.as_ref().is_none_or(|t| &e.target == t)
    }
}

fn names_subject(change: &Change, subject: &SubjectId) -> bool {
    let is = |p: &Principal| matches!(p, Principal::Subject(s) if s == subject);
    match change {
        Change::SubjectPut(s) => &s.id == subject,
        Change::SubjectDeleted(id) => id == subject,
        Change::MemberAdded(m) | Change::MemberRemoved(m) => is(&m.member),
        Change::RoleAssigned(a) => is(&a.key.principal),
        Change::RoleUnassigned(k) | Change::RoleExpired(k) => is(&k.principal),
        _ => false,
    }
}

/// Estimated encoded size of a piece's fixed part (revision, time, actor,
/// part, flags), in bytes.
const PIECE_HEADER_BYTES: usize = 64 + authzd_core::limits::MAX_ID_LEN;
/// Estimated framing of one effect beyond its strings: field tags, lengths,
/// the flag, and room for a few small fields more.
const EFFECT_OVERHEAD_BYTES: usize = 48;

/// The estimated encoded size of an effect. Computed from lengths, without
/// allocating: it runs for every effect published and every effect sent.
fn effect_bytes(e: &Effect) -> usize {
    let permission = match &e.permission {
        Permission::All => 1,
        Permission::Specific { resource, verb } => {
            resource.as_str().len() + verb.as_str().len() + 1
        }
    };
    let target = match &e.target {
        Place::Scope(s) => s.as_str().len(),
        Place::Subject(s) => s.as_str().len(),
    };
    EFFECT_OVERHEAD_BYTES + e.subject.as_str().len() + permission + target
}

/// The estimated encoded size of a raw change: the length of its `Debug`
/// form, which names every field and quotes every string, and so is at
/// least what protobuf's tags and lengths take.
fn change_bytes(c: &Change) -> usize {
    struct Count(usize);
    impl std::fmt::Write for Count {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0 += s.len();
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing to a counter cannot fail; were it to, the partial count plus
    // the margin below is still an estimate.
    let _ = std::fmt::Write::write_fmt(&mut count, format_args!("{c:?}"));
    count.0 + 16
}

/// The estimated size of a whole change set, for the ring's byte bound.
fn set_bytes(set: &ChangeSet) -> usize {
    PIECE_HEADER_BYTES
        + set.changes.iter().map(change_bytes).sum::<usize>()
        + set.effects.iter().map(effect_bytes).sum::<usize>()
}

/// Cuts what a filter lets through of a change set into pieces, one at a
/// time, owning what it cuts from so that a subscription can keep it
/// between two requests of its transport. A piece is started only for a
/// record that goes into it, so every piece but the last is followed by
/// another and the last is the complete one.
struct Cutter {
    set: Arc<ChangeSet>,
    filter: Arc<Filter>,
    piece_bytes: usize,
    /// The next record the filter lets through (changes first, then
    /// effects), or past the end: found once, when the piece before looked
    /// whether it could take it.
    at: usize,
    part: u32,
}

impl Cutter {
    fn new(set: Arc<ChangeSet>, filter: Arc<Filter>, piece_bytes: usize) -> Self {
        let mut cutter = Self {
            set,
            filter,
            piece_bytes,
            at: 0,
            part: 0,
        };
        cutter.at = cutter.visible_from(0);
        cutter
    }

    fn records(&self) -> usize {
        self.set.changes.len() + self.set.effects.len()
    }

    /// The first record at or after `from` the filter lets through, or the
    /// number of records.
    fn visible_from(&self, from: usize) -> usize {
        let end = self.records();
        if !self.filter.sees(&self.set) {
            return end;
        }
        (from..end)
            .find(|&i| match self.set.changes.get(i) {
                Some(c) => self.filter.wants_change(c),
                None => self
                    .set
                    .effects
                    .get(i - self.set.changes.len())
                    .is_some_and(|e| self.filter.wants_effect(e)),
            })
            .unwrap_or(end)
    }

    /// Record `i`'s estimated size, and it.
    fn record(&self, i: usize) -> (usize, Option<&Change>, Option<&Effect>) {
        match self.set.changes.get(i) {
            Some(c) => (change_bytes(c), Some(c), None),
            None => match self.set.effects.get(i - self.set.changes.len()) {
                Some(e) => (effect_bytes(e), None, Some(e)),
                None => (0, None, None),
            },
        }
    }
}

impl Iterator for Cutter {
    /// A piece and its estimated size.
    type Item = (Piece, usize);

    fn next(&mut self) -> Option<(Piece, usize)> {
        if self.at >= self.records() {
            return None;
        }
        let (first, change, effect) = self.record(self.at);
        let mut piece = Piece {
            revision: self.set.revision,
            actor: self.set.actor.clone(),
            committed_at: self.set.committed_at,
            part: self.part,
            complete: false,
            changes: change.cloned().into_iter().collect(),
            effects: effect.cloned().into_iter().collect(),
            wire: Wire::default(),
        };
        let mut bytes = PIECE_HEADER_BYTES + first;
        loop {
            self.at = self.visible_from(self.at + 1);
            if self.at >= self.records() {
                break;
            }
            let (more, change, effect) = self.record(self.at);
            if bytes + more > self.piece_bytes {
                break;
            }
            bytes += more;
            piece.changes.extend(change.cloned());
            piece.effects.extend(effect.cloned());
        }
        piece.complete = self.at >= self.records();
        self.part = self.part.saturating_add(1);
        Some((piece, bytes))
    }
}

/// How a subscription runs.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// Most messages a subscription hands its transport in one go (one
    /// write of HTTP/2 DATA when the transport asks for all it can take).
    pub buffer: usize,
    /// Most estimated bytes a subscription hands its transport in one go
    /// (a single piece larger than this goes alone).
    pub buffer_bytes: usize,
    /// Estimated size a piece is filled to; a single record larger than
    /// this travels alone.
    pub piece_bytes: usize,
    /// Idle time after which a progress event is sent.
    pub progress_every: Duration,
}

impl Feed {
    /// A feed keeping up to `capacity` change sets and about `bytes` of them
    /// for subscribers that are momentarily behind (the newest set is kept
    /// whatever its size), whose subscriptions hold at most about `held`
    /// bytes together.
    pub fn new(capacity: usize, bytes: usize, held: usize) -> Self {
        let (published, _) = watch::channel(Revision(0));
        Self {
            shared: Arc::new(Shared {
                ring: Mutex::new(Ring::default()),
                published,
                closing: AtomicBool::new(false),
                capacity: capacity.max(1),
                capacity_bytes: bytes,
                budget: Arc::new(Budget::new(held)),
            }),
        }
    }

    /// Publishes a committed change set. Every revision must be published,
    /// once, in ascending order: subscribers end with [`WatchError::Gap`] at
    /// a revision that was not. Having no subscriber is not an error.
    pub fn publish(&self, set: Arc<ChangeSet>) {
        let revision = set.revision;
        {
            let mut ring = self.ring();
            if let Some((newest, _)) = ring.sets.back()
                && newest.set.revision >= revision
            {
                // Subscribers take revisions in order from the ring; an
                // out-of-order one cannot be placed. It is in the changelog,
                // where a resumed subscriber reads it.
                tracing::error!(%revision, newest = %newest.set.revision, "feed published out of order; ignored");
                return;
            }
            let bytes = set_bytes(&set);
            ring.bytes += bytes;
            let entry = Entry {
                set,
                cuts: Mutex::new(Vec::new()),
            };
            ring.sets.push_back((Arc::new(entry), bytes));
            while ring.sets.len() > 1
                && (ring.sets.len() > self.shared.capacity
                    || ring.bytes > self.shared.capacity_bytes)
            {
                if let Some((old, bytes)) = ring.sets.pop_front() {
                    ring.bytes -= bytes;
                    ring.evicted_through = old.set.revision;
                }
            }
        }
        self.shared.published.send_replace(revision);
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        // The ring's invariants hold between statements that cannot panic,
        // so a poisoned lock's data is still sound.
        self.shared
            .ring
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends every subscription (at shutdown).
    pub fn close(&self) {
        self.shared.closing.store(true, Ordering::Release);
        // Wakes every waiting subscription to see it.
        self.shared.published.send_modify(|_| {});
    }

    /// Starts a subscription after revision `after`. `replay(r, bytes)`
    /// must return committed change sets after `r`, ascending, starting
    /// with `r + 1`, of about `bytes` at most (at least one, whatever its
    /// size; empty when there are none). The returned subscription yields
    /// events, then at most one error, then ends. It does its work when it
    /// is asked for its next event, so one that is not asked costs nothing
    /// however much is published.
    pub fn subscribe<R, F>(
        &self,
        filter: Filter,
        after: Revision,
        pacing: Pacing,
        replay: R,
    ) -> Subscription
    where
        R: Fn(Revision, usize) -> F + Send + 'static,
        F: Future<Output = Result<Vec<ChangeSet>, WatchError>> + Send + 'static,
    {
        let account = self.shared.budget.register(after);
        // A page is charged whole: a sixteenth of the budget leaves room
        // for the subscribers that are not replaying.
        let page_bytes = (self.held().limit / 16).max(1);
        let read: Box<dyn Fn(Revision, usize) -> PageRead + Send> =
            Box::new(move |from, bytes| Box::pin(replay(from, bytes)));
        Subscription {
            feed: self.clone(),
            account,
            filter: Arc::new(filter),
            piece_bytes: pacing.piece_bytes.max(1),
            batch_messages: pacing.buffer.max(1),
            batch_bytes: pacing.buffer_bytes.max(1),
            progress_every: pacing.progress_every,
            last: after,
            handing: None,
            replay: Some(Replay {
                read,
                page_bytes,
                reading: None,
                page: VecDeque::new(),
                held: None,
            }),
            published: WatchStream::from_changes(self.shared.published.subscribe()),
            idle: None,
            last_sent: tokio::time::Instant::now(),
            batch: (0, 0),
            paused: false,
            done: false,
        }
    }

    /// What the subscriptions hold together, against the bound.
    pub fn held(&self) -> Held {
        self.shared.budget.held()
    }

    /// The pieces `filter` lets through of `entry`'s set, cut once and
    /// shared by every subscriber with an equal filter and piece size;
    /// `None` when the set already keeps [`SHARED_CUTS`] other cuts (the
    /// subscriber then cuts for itself).
    fn shared_cut(
        &self,
        entry: &Entry,
        filter: &Arc<Filter>,
        piece_bytes: usize,
    ) -> Option<Arc<Cut>> {
        let cut = {
            let mut cuts = entry.cuts();
            match cuts
                .iter()
                .find(|c| c.piece_bytes == piece_bytes && c.filter == **filter)
            {
                Some(cut) => cut.clone(),
                None if cuts.len() < SHARED_CUTS => {
                    let cut = Arc::new(Cut {
                        filter: Filter::clone(filter),
                        piece_bytes,
                        pieces: OnceLock::new(),
                    });
                    cuts.push(cut.clone());
                    cut
                }
                None => return None,
            }
        };
        // The first to get here cuts; the others wait for its pieces, which
        // takes no longer than cutting them again would.
        cut.pieces.get_or_init(|| {
            let pieces: Vec<(Arc<Piece>, usize)> =
                Cutter::new(entry.set.clone(), filter.clone(), piece_bytes)
                    .map(|(piece, bytes)| (Arc::new(piece), bytes))
                    .collect();
            let kept = pieces.iter().map(|(_, bytes)| bytes).sum();
            self.ring().grow(entry.set.revision, kept);
            pieces
        });
        Some(cut)
    }
}

/// Reading one page of the changelog.
type PageRead = Pin<Box<dyn Future<Output = Result<Vec<ChangeSet>, WatchError>> + Send>>;

/// A subscription's replay from the changelog, until it reaches the end.
struct Replay {
    read: Box<dyn Fn(Revision, usize) -> PageRead + Send>,
    page_bytes: usize,
    /// The page being read.
    reading: Option<PageRead>,
    /// The rest of the page being delivered, charged whole while it is.
    page: VecDeque<ChangeSet>,
    held: Option<Charge>,
}

/// The pieces of one revision a subscription is handing over.
struct Handing {
    revision: Revision,
    from: Source,
}

enum Source {
    /// Cut once for every subscriber with an equal filter: the next to hand
    /// over.
    Shared(Arc<Cut>, usize),
    /// Cut for this subscriber alone, each piece just before it goes.
    Own(Cutter),
}

impl Handing {
    fn next(&mut self) -> Option<(Arc<Piece>, usize)> {
        match &mut self.from {
            Source::Shared(cut, at) => {
                // `shared_cut` made the pieces before handing the cut out.
                let (piece, bytes) = cut.pieces.get()?.get(*at)?;
                *at += 1;
                Some((piece.clone(), *bytes))
            }
            Source::Own(cutter) => cutter.next().map(|(p, bytes)| (Arc::new(p), bytes)),
        }
    }
}

/// A running subscription: a stream of events, then at most one error.
///
/// It takes the revisions after the last one it delivered from the
/// changelog, then from the live feed's ring, when its transport asks for
/// its next event: a transport that stops asking (an HTTP/2 stream whose
/// window is full) leaves it costing nothing per write, and whatever was
/// published meanwhile is handed over together when it asks again, in
/// batches of at most [`Pacing::buffer`] messages and
/// [`Pacing::buffer_bytes`]. The messages of the current batch count
/// against the budget until the transport asks again after a pause (until
/// then it holds them).
pub struct Subscription {
    feed: Feed,
    account: Arc<Account>,
    /// Shared with the cuts and cutters made for this subscription.
    filter: Arc<Filter>,
    piece_bytes: usize,
    batch_messages: usize,
    batch_bytes: usize,
    progress_every: Duration,
    /// The last revision handed over completely (or passed over by the
    /// filter).
    last: Revision,
    /// The revision being handed over, if its pieces are not all gone.
    handing: Option<Handing>,
    /// Until the changelog has nothing more after `last`.
    replay: Option<Replay>,
    /// Changes when a revision is published (or the feed closes).
    published: WatchStream<Revision>,
    /// When progress is due, once the subscription waited.
    idle: Option<Pin<Box<tokio::time::Sleep>>>,
    /// When the last message was handed over; progress is due
    /// `progress_every` after it.
    last_sent: tokio::time::Instant,
    /// Messages and estimated bytes handed over in the current batch.
    batch: (usize, usize),
    /// The last poll answered pending: the next one starts a batch.
    paused: bool,
    /// The stream has ended.
    done: bool,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("filter", &self.filter)
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// The next event, or `None` once the subscription has ended.
    pub async fn next(&mut self) -> Option<Result<Event, WatchError>> {
        std::future::poll_fn(|cx| self.poll_take(cx)).await
    }

    fn poll_take(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Event, WatchError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if std::mem::take(&mut self.paused) {
            self.account.new_batch();
            self.batch = (0, 0);
        }
        if let Some(end) = self.account.take_end() {
            return self.end(end);
        }
        if self.batch.0 >= self.batch_messages || self.batch.1 >= self.batch_bytes {
            // Lets the transport send what it took before taking more.
            self.paused = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        match self.poll_event(cx) {
            Poll::Ready(Ok(Some((event, bytes)))) => {
                let complete = match &event {
                    Event::Committed(piece) => piece.complete.then_some(piece.revision),
                    Event::Progress(revision) => Some(*revision),
                };
                if !self.account.hand_over(bytes, complete) {
                    let end = self.account.take_end().unwrap_or(WatchError::Lagged {
                        resume_after: self.last,
                    });
                    return self.end(end);
                }
                self.batch = (self.batch.0 + 1, self.batch.1.saturating_add(bytes));
                self.last_sent = tokio::time::Instant::now();
                Poll::Ready(Some(Ok(event)))
            }
            Poll::Ready(Ok(None)) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Err(e)) => self.end(e),
            Poll::Pending => {
                self.paused = true;
                self.account.park(cx.waker());
                Poll::Pending
            }
        }
    }

    fn end(&mut self, error: WatchError) -> Poll<Option<Result<Event, WatchError>>> {
        self.done = true;
        self.handing = None;
        self.replay = None;
        Poll::Ready(Some(Err(error)))
    }

    /// The next event and its estimated size; `None` when the feed is gone.
    fn poll_event(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<(Event, usize)>, WatchError>> {
        loop {
            if let Some(handing) = &mut self.handing {
                match handing.next() {
                    Some((piece, bytes)) => {
                        if piece.complete {
                            self.last = handing.revision;
                            self.handing = None;
                        }
                        return Poll::Ready(Ok(Some((Event::Committed(piece), bytes))));
                    }
                    None => {
                        // Nothing (more) of it is visible: passed over.
                        self.last = handing.revision;
                        self.handing = None;
                    }
                }
            }
            if let Some(replay) = &mut self.replay {
                if let Some(set) = replay.page.pop_front() {
                    self.start(Arc::new(set), None);
                    continue;
                }
                replay.held = None;
                let (read, last, page_bytes) = (&replay.read, self.last, replay.page_bytes);
                let reading = replay.reading.get_or_insert_with(|| read(last, page_bytes));
                let page = match reading.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(page) => page?,
                };
                replay.reading = None;
                if page.is_empty() {
                    self.replay = None;
                    continue;
                }
                // Held while it is delivered: a replay page counts like the
                // messages cut from it.
                let Some(held) = self.account.hold(page.iter().map(set_bytes).sum()) else {
                    return Poll::Ready(Err(self.account.take_end().unwrap_or(
                        WatchError::Lagged {
                            resume_after: self.last,
                        },
                    )));
                };
                replay.held = Some(held);
                replay.page = page.into();
                continue;
            }
            let next = self.feed.ring().next(self.last.next());
            match next {
                Next::Set(entry) => {
                    let cut = self.feed.shared_cut(&entry, &self.filter, self.piece_bytes);
                    self.start(entry.set.clone(), cut);
                    continue;
                }
                Next::Lagged => {
                    return Poll::Ready(Err(WatchError::Lagged {
                        resume_after: self.last,
                    }));
                }
                Next::Gap(received) => {
                    return Poll::Ready(Err(WatchError::Gap {
                        resume_after: self.last,
                        received,
                    }));
                }
                Next::Pending => {}
            }
            if self.feed.shared.closing.load(Ordering::Acquire) {
                return Poll::Ready(Err(WatchError::ShuttingDown {
                    resume_after: self.last,
                }));
            }
            // Registers for the next publish; a publish since the look
            // above answers at once, and the look is made again.
            match Pin::new(&mut self.published).poll_next(cx) {
                Poll::Ready(Some(_)) => continue,
                Poll::Ready(None) => return Poll::Ready(Ok(None)),
                Poll::Pending => {}
            }
            if self.filter.kinds.progress {
                let due = self.last_sent + self.progress_every;
                let idle = self
                    .idle
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
                if idle.deadline() != due {
                    idle.as_mut().reset(due);
                }
                if idle.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Ok(Some((Event::Progress(self.last), 0))));
                }
            }
            return Poll::Pending;
        }
    }

    /// Starts handing over `set`, from `cut` if it is shared.
    fn start(&mut self, set: Arc<ChangeSet>, cut: Option<Arc<Cut>>) {
        if set.revision <= self.last {
            return;
        }
        let from = match cut {
            Some(cut) => Source::Shared(cut, 0),
            None => Source::Own(Cutter::new(
                set.clone(),
                self.filter.clone(),
                self.piece_bytes,
            )),
        };
        self.handing = Some(Handing {
            revision: set.revision,
            from,
        });
    }
}

impl tokio_stream::Stream for Subscription {
    type Item = Result<Event, WatchError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_take(cx)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.account.leave();
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        reason = "unit tests: a failed expectation is a failed test"
    )]

    use super::*;
    use authzd_core::model::ScopeId;

    fn tenant(t: &str) -> TenantId {
        TenantId::try_from(t).unwrap()
    }

    fn effect(subject: &str) -> Effect {
        Effect {
            tenant: tenant("t"),
            subject: SubjectId::try_from(subject).unwrap(),
            target: Place::Scope(ScopeId::try_from("root").unwrap()),
            permission: "document:read".parse().unwrap(),
            gained: true,
            reach: authzd_core::model::Reach::Subtree,
        }
    }

    fn set(revision: u64, of: &str, effects: Vec<Effect>) -> Arc<ChangeSet> {
        Arc::new(ChangeSet {
            revision: Revision(revision),
            tenant: Some(tenant(of)),
            actor: None,
            committed_at: Timestamp(0),
            changes: Vec::new(),
            effects,
        })
    }

    fn pacing(piece_bytes: usize, buffer_bytes: usize) -> Pacing {
        Pacing {
            buffer: 1024,
            buffer_bytes,
            piece_bytes,
            progress_every: Duration::from_secs(3600),
        }
    }

    async fn no_replay(_: Revision, _: usize) -> Result<Vec<ChangeSet>, WatchError> {
        Ok(Vec::new())
    }

    fn subscribe(feed: &Feed, after: u64, pacing: Pacing) -> Subscription {
        feed.subscribe(
            Filter::tenant(tenant("t")),
            Revision(after),
            pacing,
            no_replay,
        )
    }

    async fn next(sub: &mut Subscription) -> Result<Event, WatchError> {
        tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("the subscription hangs")
            .expect("the subscription ended")
    }

    fn revision_of(event: Result<Event, WatchError>) -> u64 {
        match event {
            Ok(Event::Committed(p)) if p.complete => p.revision.0,
            other => panic!("expected a complete revision, got {other:?}"),
        }
    }

    /// A revision missing from the ring ends the stream with a resumable
    /// error naming the last revision delivered, whether the gap is already
    /// in the ring when the subscriber gets there or is published while it
    /// waits; revisions of other tenants count as delivered.
    #[tokio::test]
    async fn a_gap_in_the_feed_ends_the_stream_naming_where_to_resume() {
        let feed = Feed::new(16, 1 << 30, 1 << 30);
        feed.publish(set(1, "t", vec![effect("a")]));
        feed.publish(set(2, "other", vec![effect("b")]));
        feed.publish(set(4, "t", vec![effect("c")]));
        let mut early = subscribe(&feed, 0, pacing(1 << 20, 1 << 20));
        assert_eq!(revision_of(next(&mut early).await), 1);
        assert_eq!(
            next(&mut early).await,
            Err(WatchError::Gap {
                resume_after: Revision(2),
                received: Revision(4),
            })
        );
        assert!(
            early.next().await.is_none(),
            "the stream ends after the error"
        );

        let mut waiting = subscribe(&feed, 4, pacing(1 << 20, 1 << 20));
        feed.publish(set(5, "t", vec![effect("d")]));
        assert_eq!(revision_of(next(&mut waiting).await), 5);
        feed.publish(set(7, "t", vec![effect("e")]));
        assert_eq!(
            next(&mut waiting).await,
            Err(WatchError::Gap {
                resume_after: Revision(5),
                received: Revision(7),
            })
        );
    }

    /// A revision larger than a piece arrives as numbered pieces within the
    /// budget, only the last marked complete, that concatenate to exactly
    /// the visible effects; a filtered-out tail still leaves the last piece
    /// sent marked complete.
    #[tokio::test]
    async fn a_large_revision_arrives_in_bounded_pieces() {
        let effects: Vec<Effect> = (0..1000).map(|i| effect(&format!("s{i:04}"))).collect();
        let one = effect_bytes(&effects[0]);
        let budget = PIECE_HEADER_BYTES + 50 * one;
        let feed = Feed::new(16, 1 << 30, 1 << 30);
        let mut all = subscribe(&feed, 0, pacing(budget, 1 << 20));
        let mut first_half = feed.subscribe(
            Filter {
                subject: Some(SubjectId::try_from("s0100").unwrap()),
                ..Filter::tenant(tenant("t"))
            },
            Revision(0),
            pacing(budget, 1 << 20),
            no_replay,
        );
        feed.publish(set(1, "t", effects.clone()));

        let mut got = Vec::new();
        for part in 0.. {
            let Ok(Event::Committed(piece)) = next(&mut all).await else {
                panic!("expected a piece");
            };
            assert_eq!((piece.revision, piece.part), (Revision(1), part));
            assert!(piece.effects.len() <= 50, "piece {part} is over the budget");
            got.extend(piece.effects.iter().cloned());
            if piece.complete {
                break;
            }
        }
        assert_eq!(got, effects);

        let Ok(Event::Committed(only)) = next(&mut first_half).await else {
            panic!("expected a piece");
        };
        assert!(only.complete && only.part == 0, "{only:?}");
        assert_eq!(only.effects, vec![effects[100].clone()]);
    }

    async fn pieces(sub: &mut Subscription) -> Vec<Arc<Piece>> {
        let mut got = Vec::new();
        loop {
            let Ok(Event::Committed(piece)) = next(sub).await else {
                panic!("expected a piece");
            };
            let complete = piece.complete;
            got.push(piece);
            if complete {
                return got;
            }
        }
    }

    /// Subscribers with equal filters get the very same pieces of a
    /// revision, cut once: the ring counts the cut once, not once per
    /// subscriber, and the transport encodes each piece once for all of
    /// them. A subscriber with another filter gets pieces of its own.
    #[tokio::test]
    async fn subscribers_with_equal_filters_share_pieces_and_their_encoding() {
        let effects: Vec<Effect> = (0..30).map(|i| effect(&format!("s{i:02}"))).collect();
        let one = effect_bytes(&effects[0]);
        let piece = PIECE_HEADER_BYTES + 10 * one;
        let feed = Feed::new(16, 1 << 30, 1 << 30);
        let mut same: Vec<Subscription> = (0..5)
            .map(|_| subscribe(&feed, 0, pacing(piece, 1 << 20)))
            .collect();
        let mut other = feed.subscribe(
            Filter {
                subject: Some(SubjectId::try_from("s05").unwrap()),
                ..Filter::tenant(tenant("t"))
            },
            Revision(0),
            pacing(piece, 1 << 20),
            no_replay,
        );
        let published = set(1, "t", effects);
        let set_size = set_bytes(&published);
        feed.publish(published);

        let mut encoded = 0;
        let mut first: Option<Vec<Arc<Piece>>> = None;
        for sub in &mut same {
            let got = pieces(sub).await;
            for p in &got {
                p.wire.get_or_init(|| {
                    encoded += 1;
                    Arc::from(vec![p.part as u8])
                });
            }
            match &first {
                None => first = Some(got),
                Some(first) => {
                    assert_eq!(got.len(), first.len());
                    for (a, b) in got.iter().zip(first) {
                        assert!(Arc::ptr_eq(a, b), "piece {} was cut again", a.part);
                    }
                }
            }
        }
        let first = first.unwrap();
        assert_eq!(first.len(), 3);
        assert_eq!(encoded, 3, "each shared piece is encoded once");

        let own = pieces(&mut other).await;
        assert_eq!(own.len(), 1);
        assert!(first.iter().all(|p| !Arc::ptr_eq(p, &own[0])));
        assert_eq!(own[0].wire, Wire::default());

        assert_eq!(
            feed.ring().bytes,
            set_size + 3 * piece + (PIECE_HEADER_BYTES + one),
            "the set, the shared cut once, and the other filter's cut"
        );
    }

    /// The ring is bounded by bytes: large change sets push older ones out
    /// long before the count limit, and a subscriber that needed them ends
    /// with a resumable lag instead of holding memory.
    #[tokio::test]
    async fn the_ring_is_bounded_by_bytes() {
        let big = || {
            (0..100)
                .map(|i| effect(&format!("s{i}")))
                .collect::<Vec<_>>()
        };
        let size = set_bytes(&set(1, "t", big()));
        let feed = Feed::new(1000, 3 * size, 1 << 30);
        for r in 1..=10 {
            feed.publish(set(r, "t", big()));
        }
        {
            let ring = feed.ring();
            assert!(
                ring.bytes <= 3 * size && ring.sets.len() == 3,
                "{}",
                ring.sets.len()
            );
            assert_eq!(ring.evicted_through, Revision(7));
        }
        let mut behind = subscribe(&feed, 2, pacing(1 << 20, 1 << 20));
        assert_eq!(
            next(&mut behind).await,
            Err(WatchError::Lagged {
                resume_after: Revision(2)
            })
        );
        let mut current = subscribe(&feed, 7, pacing(1 << 20, 1 << 20));
        for r in 8..=10 {
            assert_eq!(revision_of(next(&mut current).await), r);
        }
    }

    fn poll_once(sub: &mut Subscription) -> Poll<Option<Result<Event, WatchError>>> {
        sub.poll_take(&mut Context::from_waker(std::task::Waker::noop()))
    }

    /// A subscription nobody asks for events holds nothing and does no work
    /// however many revisions are published (it has no task of its own);
    /// asked again, it hands over what waits in order, in batches of at
    /// most its pacing's messages, and only the batch the transport took
    /// last counts against the budget.
    #[tokio::test]
    async fn an_unasked_subscription_costs_nothing_and_then_hands_over_in_batches() {
        let feed = Feed::new(1024, 1 << 30, 1 << 30);
        let mut sub = subscribe(
            &feed,
            0,
            Pacing {
                buffer: 10,
                ..pacing(1 << 20, 1 << 20)
            },
        );
        assert!(poll_once(&mut sub).is_pending(), "nothing published yet");
        for r in 1..=95 {
            feed.publish(set(r, "t", vec![effect("a")]));
        }
        assert_eq!(feed.held().now, 0, "an unasked subscription holds nothing");
        assert_eq!(sub.last, Revision(0), "and has taken nothing");

        let one = PIECE_HEADER_BYTES + effect_bytes(&effect("a")) + budget::ENTRY_BYTES;
        let mut batches = Vec::new();
        let mut taken = 0;
        while taken < 95 {
            let mut batch = 0;
            while let Poll::Ready(event) = poll_once(&mut sub) {
                taken += 1;
                assert_eq!(revision_of(event.unwrap()), taken);
                batch += 1;
            }
            assert_eq!(feed.held().now, batch * one, "the batch in transport");
            batches.push(batch);
        }
        assert_eq!(batches, [10, 10, 10, 10, 10, 10, 10, 10, 10, 5]);
        assert!(poll_once(&mut sub).is_pending(), "nothing more");
        assert_eq!(feed.held().now, 0, "the last batch was sent");
    }

    /// With the budget for all subscribers full, the one furthest behind (a
    /// subscriber whose transport took three revisions and stopped asking)
    /// is ended first, resumably at the last revision it took, while one
    /// that keeps reading gets every revision; the bytes held never exceed
    /// the budget, and dropping the subscriptions gives every byte back.
    #[tokio::test]
    async fn a_full_budget_ends_the_subscriber_furthest_behind() {
        let one = PIECE_HEADER_BYTES + effect_bytes(&effect("a")) + budget::ENTRY_BYTES;
        let limit = 3 * one + one / 2;
        let feed = Feed::new(64, 1 << 30, limit);
        let mut stalled = subscribe(&feed, 0, pacing(1 << 20, 1 << 20));
        let mut reader = subscribe(
            &feed,
            0,
            Pacing {
                buffer: 1,
                ..pacing(1 << 20, 1 << 20)
            },
        );
        for r in 1..=3 {
            feed.publish(set(r, "t", vec![effect("a")]));
        }
        for r in 1..=3 {
            let Poll::Ready(Some(event)) = poll_once(&mut stalled) else {
                panic!("revision {r} waits");
            };
            assert_eq!(revision_of(event), r);
        }
        assert_eq!(feed.held().now, 3 * one);
        for r in 1..=20 {
            if r > 3 {
                feed.publish(set(r, "t", vec![effect("a")]));
            }
            assert_eq!(revision_of(next(&mut reader).await), r);
        }
        assert_eq!(
            next(&mut stalled).await,
            Err(WatchError::Lagged {
                resume_after: Revision(3)
            })
        );
        assert!(stalled.next().await.is_none(), "it ends after the error");
        let held = feed.held();
        assert!(held.peak <= limit && held.peak > 0, "{held:?}");
        drop(stalled);
        drop(reader);
        assert_eq!(feed.held().now, 0, "dropped subscriptions give back all");
    }
}
