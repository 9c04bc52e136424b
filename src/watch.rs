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
//! memory stays bounded whatever the subscribers do. Must not drop an event
//! silently, and must not read the store itself (the replay is handed in).

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, watch};

use crate::model::{Change, ChangeSet, Principal, Revision, SubjectId, TenantId};

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
        "revision {requested} is older than the retained changelog (oldest retained: {oldest}); resync from a snapshot and watch from its revision"
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

/// The live feed every committed change set is published to.
#[derive(Debug, Clone)]
pub struct Feed {
    live: broadcast::Sender<Arc<ChangeSet>>,
    /// Flips to true at shutdown so every stream ends cleanly.
    closing: watch::Sender<bool>,
}

/// What a subscriber wants to see.
#[derive(Debug, Clone)]
pub struct Filter {
    /// The tenant (store-wide change sets, such as schema writes, are
    /// delivered to every tenant's subscribers).
    pub tenant: TenantId,
    /// Only changes that name this subject.
    pub subject: Option<SubjectId>,
}

impl Filter {
    /// The part of a change set this subscriber sees, if any.
    pub fn apply(&self, set: &Arc<ChangeSet>) -> Option<Arc<ChangeSet>> {
        if set.tenant.as_ref().is_some_and(|t| t != &self.tenant) {
            return None;
        }
        let Some(subject) = &self.subject else {
            return Some(set.clone());
        };
        let changes: Vec<Change> = set
            .changes
            .iter()
            .filter(|c| names_subject(c, subject))
            .cloned()
            .collect();
        (!changes.is_empty()).then(|| {
            Arc::new(ChangeSet {
                changes,
                ..(**set).clone()
            })
        })
    }
}

fn names_subject(change: &Change, subject: &SubjectId) -> bool {
    let is = |p: &Principal| matches!(p, Principal::Subject(s) if s == subject);
    match change {
        Change::SubjectPut(s) => &s.id == subject,
        Change::SubjectDeleted(id) => id == subject,
        Change::MemberAdded(m) | Change::MemberRemoved(m) => is(&m.member),
        Change::RoleAssigned(a) => is(&a.key.principal),
        Change::RoleUnassigned(k) => is(&k.principal),
        _ => false,
    }
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
    /// none). The returned receiver yields change sets, then at most one
    /// error, then closes; the producing task exits as soon as the receiver
    /// is dropped.
    pub fn subscribe<R, F>(
        &self,
        filter: Filter,
        after: Revision,
        buffer: usize,
        replay: R,
    ) -> mpsc::Receiver<Result<Arc<ChangeSet>, WatchError>>
    where
        R: Fn(Revision) -> F + Send + 'static,
        F: Future<Output = Result<Vec<ChangeSet>, WatchError>> + Send,
    {
        let (tx, rx) = mpsc::channel(buffer.max(1));
        let live = self.live.subscribe();
        let closing = self.closing.subscribe();
        tokio::spawn(async move {
            let mut stream = Stream {
                filter,
                last: after,
                tx,
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
    /// The last revision delivered (or skipped by the filter).
    last: Revision,
    tx: mpsc::Sender<Result<Arc<ChangeSet>, WatchError>>,
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
        let Some(visible) = self.filter.apply(&set) else {
            return Delivery::Sent;
        };
        match self.tx.send(Ok(visible)).await {
            Ok(()) => Delivery::Sent,
            Err(_) => Delivery::Gone,
        }
    }
}
