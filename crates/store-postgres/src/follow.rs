//! Learning of other nodes' commits: one dedicated `LISTEN` connection per
//! handle, whose notifications carry the new head and, when they fit, the
//! commit's changelog entries (kept in [`Heard`] until followed), and a
//! poll of the counter row every [`crate::Options::poll_interval`] as the
//! backstop (a lost notification, a dropped or refused `LISTEN`
//! connection). A dropped connection is opened again at the next poll.
//!
//! Owns only the handle's head signal's updates and what notifications
//! carried; must not read the changelog (a follower does that when woken
//! and [`Heard`] lacks what it needs) and must not keep the handle alive:
//! it holds a weak reference and ends when the handle closes or is
//! dropped. A notification is handled on the connection's own task, with
//! no hop through another: it is what every other node waits for.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use authzd_core::model::Revision;
use futures_util::StreamExt;
use tokio::sync::oneshot;
use tokio_postgres::AsyncMessage;

use crate::datastore::{CHANNEL, Inner};

/// The application name of the `LISTEN` connection, so an operator (or a
/// test) can tell it apart in `pg_stat_activity`.
pub const LISTEN_APPLICATION_NAME: &str = "authzd-listen";

/// Most change sets [`Heard`] keeps: a node's own commits are heard too
/// and never followed, so the oldest make way.
const HEARD_MAX_SETS: usize = 1_024;
/// Most bytes of entries [`Heard`] keeps.
const HEARD_MAX_BYTES: usize = 1 << 20;

/// The changelog entries notifications carried, as the database stored
/// them (text, decoded only when followed): one run of consecutive
/// revisions. A notification that carried none (its group was too large)
/// or was lost leaves a gap, and the run starts again after it.
#[derive(Debug, Default)]
pub(crate) struct Heard {
    sets: VecDeque<(Revision, String)>,
    bytes: usize,
}

impl Heard {
    /// Keeps `bodies`, the entries of the revisions up to `head`.
    fn hear(&mut self, head: Revision, bodies: Vec<String>) {
        let Some(first) = u64::try_from(bodies.len())
            .ok()
            .and_then(|n| head.0.checked_sub(n))
            .map(|before| Revision(before).next())
        else {
            return;
        };
        if self
            .sets
            .back()
            .is_some_and(|(last, _)| last.next() != first)
        {
            self.sets.clear();
            self.bytes = 0;
        }
        for (offset, body) in (0u64..).zip(bodies) {
            self.bytes = self.bytes.saturating_add(body.len());
            self.sets
                .push_back((Revision(first.0.saturating_add(offset)), body));
        }
        while self.sets.len() > HEARD_MAX_SETS || self.bytes > HEARD_MAX_BYTES {
            match self.sets.pop_front() {
                Some((_, body)) => self.bytes = self.bytes.saturating_sub(body.len()),
                None => break,
            }
        }
    }

    /// The entries from `after + 1` on, at most `limit` of them, stopping
    /// before the one that would take their bytes past `max_bytes` (never
    /// empty), if `after + 1` is held; drops those at or below `after`
    /// (followed already).
    pub(crate) fn after(
        &mut self,
        after: Revision,
        limit: usize,
        max_bytes: usize,
    ) -> Option<Vec<String>> {
        while self.sets.front().is_some_and(|(r, _)| *r <= after) {
            if let Some((_, body)) = self.sets.pop_front() {
                self.bytes = self.bytes.saturating_sub(body.len());
            }
        }
        if self.sets.front().is_none_or(|(r, _)| *r != after.next()) {
            return None;
        }
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for (_, body) in self.sets.iter().take(limit.max(1)) {
            bytes = bytes.saturating_add(body.len());
            if bytes > max_bytes && !out.is_empty() {
                break;
            }
            out.push(body.clone());
        }
        Some(out)
    }
}

/// Starts following for `inner`'s handle.
pub(crate) fn spawn(inner: &Arc<Inner>) {
    let weak = Arc::downgrade(inner);
    let mut closed = inner.head.subscribe();
    let poll = inner.options.poll_interval;
    tokio::spawn(async move {
        let mut listener: Option<Listener> = None;
        let mut ticker = tokio::time::interval(poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let event = tokio::select! {
                () = async {
                    match listener.as_mut() {
                        Some(l) => {
                            let _ = (&mut l.ended).await;
                        }
                        None => std::future::pending().await,
                    }
                } => Event::Lost,
                _ = ticker.tick() => Event::Tick,
                _ = closed.wait_for(|h| h.closed) => return,
            };
            if let Event::Lost = event {
                tracing::warn!("the LISTEN connection was lost; polling until it is back");
                listener = None;
            }
            if !tick(&weak, &mut listener).await {
                return;
            }
        }
    });
}

/// What woke the follower.
enum Event {
    /// The `LISTEN` connection ended.
    Lost,
    /// The poll interval passed.
    Tick,
}

/// One poll: reads the head and, when there is no `LISTEN` connection
/// and there should be, opens one. False once the handle is gone.
async fn tick(weak: &Weak<Inner>, listener: &mut Option<Listener>) -> bool {
    let Some(inner) = weak.upgrade() else {
        return false;
    };
    if inner.closed.load(Ordering::SeqCst) {
        return false;
    }
    if listener.is_none() && inner.notify.load(Ordering::SeqCst) {
        match Listener::open(&inner).await {
            Ok(opened) => *listener = Some(opened),
            Err(Refused::Unsupported(e)) => {
                tracing::warn!(store = %inner.location, error = %e, "the database refuses LISTEN; following by polling every {:?}", inner.options.poll_interval);
                inner.notify.store(false, Ordering::SeqCst);
            }
            Err(Refused::Failed(e)) => {
                tracing::warn!(store = %inner.location, error = %e, "cannot open the LISTEN connection; polling meanwhile");
            }
        }
    }
    // After (re)connecting too: notifications sent meanwhile are lost.
    match inner.read_head().await {
        Ok(head) => inner.announce(head),
        Err(e) => tracing::debug!(store = %inner.location, error = %e, "polling the head failed"),
    }
    true
}

/// The `LISTEN` connection: its client (dropping it ends the connection)
/// and what tells that the connection ended.
struct Listener {
    _client: tokio_postgres::Client,
    ended: oneshot::Receiver<()>,
}

/// Why no `LISTEN` connection could be had.
enum Refused {
    /// The database answered `LISTEN` with an error: it does not offer it.
    Unsupported(tokio_postgres::Error),
    /// The connection failed; try again later.
    Failed(tokio_postgres::Error),
}

impl Listener {
    async fn open(inner: &Arc<Inner>) -> Result<Listener, Refused> {
        let mut config = inner.config.clone();
        config.application_name(LISTEN_APPLICATION_NAME);
        let (client, mut connection) = config
            .connect(inner.tls.clone())
            .await
            .map_err(Refused::Failed)?;
        let (ended_tx, ended) = oneshot::channel::<()>();
        let weak = Arc::downgrade(inner);
        tokio::spawn(async move {
            // Dropped when the connection ends: the follower learns it.
            let _ended = ended_tx;
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(n)) => {
                        let Some(inner) = weak.upgrade() else { return };
                        heard(&inner, n.payload());
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "the LISTEN connection ended");
                        return;
                    }
                }
            }
        });
        match client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
            Ok(()) => Ok(Listener {
                _client: client,
                ended,
            }),
            Err(e) if e.as_db_error().is_some() => Err(Refused::Unsupported(e)),
            Err(e) => Err(Refused::Failed(e)),
        }
    }
}

/// A notification's payload: the head, then the entries it carried, one
/// a line. They are kept before the head is announced, so a follower
/// woken by it finds them.
fn heard(inner: &Inner, payload: &str) {
    let mut lines = payload.split('\n');
    let Some(Ok(head)) = lines.next().map(str::parse::<u64>) else {
        return;
    };
    let bodies: Vec<String> = lines.map(str::to_owned).collect();
    if !bodies.is_empty() {
        inner.heard().hear(Revision(head), bodies);
    }
    inner.announce(Revision(head));
}
