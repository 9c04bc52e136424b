//! The change feed: subscribe, replay from the changelog, go live, with
//! bounded buffers.
//!
//! A subscription first listens to the live feed, then replays the changelog
//! after the subscriber's revision, then forwards live change sets, skipping
//! any revision the replay already sent. Listening before replaying is what
//! makes the stream gapless: a change set committed during the replay is
//! either read from the changelog or received live, and de-duplicated by
//! revision. A subscriber that falls behind the live buffer is ended with
//! [`WatchError::Lagged`] naming the revision to resume from, so the server's
//! memory stays bounded whatever the subscribers do. An idle subscription
//! gets progress events carrying the revision it has reached. Must not drop
//! an event silently, and must not read the store itself (the replay is
//! handed in).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, watch};

use crate::model::{
    Change, ChangeSet, Effect, EffectTarget, Principal, Revision, SubjectId, TenantId,
};
use crate::schema::PermissionPattern;

/// Why a subscription ended early.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// The subscriber fell further behind than the live buffer holds.
    #[error(
        "the subscriber fell behind the live feed; resume with after_revision = {resume_after}"
    )]
    Lagged {
        /// The last revision delivered.
        resume_after: Revision,
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
}

/// What a subscription delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A committed revision, as much of it as the filter lets through.
    Committed(Arc<ChangeSet>),
    /// Nothing to deliver for a while; the stream has reached this revision.
    Progress(Revision),
}

/// The live feed every committed change set is published to.
#[derive(Debug, Clone)]
pub struct Feed {
    live: broadcast::Sender<Arc<ChangeSet>>,
    /// Flips to true at shutdown so every stream ends cleanly.
    closing: watch::Sender<bool>,
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
#[derive(Debug, Clone)]
pub struct Filter {
    /// The tenant (store-wide change sets, such as schema writes, are
    /// delivered to every tenant's subscribers).
    pub tenant: TenantId,
    /// Only raw changes naming this subject, and effects of or over it.
    pub subject: Option<SubjectId>,
    /// Only effects whose permission matches.
    pub permission: Option<PermissionPattern>,
    /// Only effects at this target.
    pub target: Option<EffectTarget>,
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

    /// The part of a change set this subscriber sees, if any.
    pub fn apply(&self, set: &Arc<ChangeSet>) -> Option<Arc<ChangeSet>> {
        if set.tenant.as_ref().is_some_and(|t| t != &self.tenant) {
            return None;
        }
        let changes: Vec<Change> = if self.kinds.changes {
            set.changes
                .iter()
                .filter(|c| self.subject.as_ref().is_none_or(|s| names_subject(c, s)))
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        let effects: Vec<Effect> = if self.kinds.effects {
            set.effects
                .iter()
                .filter(|e| self.wants(e))
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        if changes.is_empty() && effects.is_empty() {
            return None;
        }
        if changes.len() == set.changes.len() && effects.len() == set.effects.len() {
            return Some(set.clone());
        }
        Some(Arc::new(ChangeSet {
            changes,
            effects,
            ..(**set).clone()
        }))
    }

    fn wants(&self, e: &Effect) -> bool {
        e.tenant == self.tenant
            && self
                .subject
                .as_ref()
                .is_none_or(|s| &e.subject == s || e.target == EffectTarget::Subject(s.clone()))
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

/// How a subscription runs.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// Events buffered on their way to the network.
    pub buffer: usize,
    /// Idle time after which a progress event is sent.
    pub progress_every: Duration,
}

impl Feed {
    /// A feed keeping up to `capacity` change sets for lagging subscribers.
    pub fn new(capacity: usize) -> Self {
        let (live, _) = broadcast::channel(capacity.max(1));
        let (closing, _) = watch::channel(false);
        Self { live, closing }
    }

    /// Publishes a committed change set. Having no subscriber is not an error.
    pub fn publish(&self, set: Arc<ChangeSet>) {
        let _ = self.live.send(set);
    }

    /// Ends every subscription (at shutdown).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Starts a subscription after revision `after`. `replay(r)` must return
    /// the committed change sets after `r`, ascending (empty when there are
    /// none). The returned receiver yields events, then at most one error,
    /// then closes; the producing task exits as soon as the receiver is
    /// dropped.
    pub fn subscribe<R, F>(
        &self,
        filter: Filter,
        after: Revision,
        pacing: Pacing,
        replay: R,
    ) -> mpsc::Receiver<Result<Event, WatchError>>
    where
        R: Fn(Revision) -> F + Send + 'static,
        F: Future<Output = Result<Vec<ChangeSet>, WatchError>> + Send,
    {
        let (tx, rx) = mpsc::channel(pacing.buffer.max(1));
        let live = self.live.subscribe();
        let closing = self.closing.subscribe();
        tokio::spawn(async move {
            let mut stream = Stream {
                filter,
                last: after,
                tx,
                progress_every: pacing.progress_every,
                last_sent: tokio::time::Instant::now(),
            };
            if let Err(e) = stream.run(live, closing, replay).await {
                let _ = stream.tx.send(Err(e)).await;
            }
        });
        rx
    }
}

struct Stream {
    filter: Filter,
    /// The last revision delivered (or passed over by the filter).
    last: Revision,
    tx: mpsc::Sender<Result<Event, WatchError>>,
    progress_every: Duration,
    /// When the subscriber last received something; progress is due
    /// `progress_every` after it.
    last_sent: tokio::time::Instant,
}

/// Whether the subscriber is still there.
enum Delivery {
    Sent,
    Gone,
}

impl Stream {
    async fn run<R, F>(
        &mut self,
        mut live: broadcast::Receiver<Arc<ChangeSet>>,
        mut closing: watch::Receiver<bool>,
        replay: R,
    ) -> Result<(), WatchError>
    where
        R: Fn(Revision) -> F,
        F: Future<Output = Result<Vec<ChangeSet>, WatchError>>,
    {
        loop {
            let page = replay(self.last).await?;
            if page.is_empty() {
                break;
            }
            for set in page {
                if let Delivery::Gone = self.deliver(Arc::new(set)).await {
                    return Ok(());
                }
            }
        }
        loop {
            let idle = tokio::time::sleep_until(self.last_sent + self.progress_every);
            tokio::select! {
                received = live.recv() => match received {
                    Ok(set) => {
                        if let Delivery::Gone = self.deliver(set).await {
                            return Ok(());
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        return Err(WatchError::Lagged { resume_after: self.last });
                    }
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
                _ = idle, if self.filter.kinds.progress => {
                    if let Delivery::Gone = self.send(Event::Progress(self.last)).await {
                        return Ok(());
                    }
                }
                _ = async { closing.wait_for(|c| *c).await.is_ok() } => return Ok(()),
                _ = self.tx.closed() => return Ok(()),
            }
        }
    }

    async fn deliver(&mut self, set: Arc<ChangeSet>) -> Delivery {
        if set.revision <= self.last {
            return Delivery::Sent;
        }
        self.last = set.revision;
        match self.filter.apply(&set) {
            Some(visible) => self.send(Event::Committed(visible)).await,
            None => Delivery::Sent,
        }
    }

    async fn send(&mut self, event: Event) -> Delivery {
        self.last_sent = tokio::time::Instant::now();
        match self.tx.send(Ok(event)).await {
            Ok(()) => Delivery::Sent,
            Err(_) => Delivery::Gone,
        }
    }
}
