//! Learning of other nodes' commits: one dedicated `LISTEN` connection per
//! handle, whose notifications carry the new head, and a poll of the
//! counter row every [`crate::Options::poll_interval`] as the backstop (a
//! lost notification, a dropped or refused `LISTEN` connection). A dropped
//! connection is opened again at the next poll.
//!
//! Owns only the handle's head signal's updates; must not read the
//! changelog (a follower does that when woken) and must not keep the
//! handle alive: it holds a weak reference and ends when the handle
//! closes or is dropped.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use authzd_core::model::Revision;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use crate::datastore::{CHANNEL, Inner};

/// The application name of the `LISTEN` connection, so an operator (or a
/// test) can tell it apart in `pg_stat_activity`.
pub const LISTEN_APPLICATION_NAME: &str = "authzd-listen";

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
                head = async {
                    match listener.as_mut() {
                        Some(l) => l.heads.recv().await,
                        None => std::future::pending().await,
                    }
                } => Event::Notified(head),
                _ = ticker.tick() => Event::Tick,
                _ = closed.wait_for(|h| h.closed) => return,
            };
            match event {
                Event::Notified(Some(head)) => {
                    let Some(inner) = weak.upgrade() else { return };
                    inner.announce(head);
                }
                Event::Notified(None) => {
                    tracing::warn!("the LISTEN connection was lost; polling until it is back");
                    listener = None;
                    if !tick(&weak, &mut listener).await {
                        return;
                    }
                }
                Event::Tick => {
                    if !tick(&weak, &mut listener).await {
                        return;
                    }
                }
            }
        }
    });
}

/// What woke the follower.
enum Event {
    /// A notification's head, or `None`: the connection ended.
    Notified(Option<Revision>),
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
/// and the heads its notifications carry.
struct Listener {
    _client: tokio_postgres::Client,
    heads: mpsc::UnboundedReceiver<Revision>,
}

/// Why no `LISTEN` connection could be had.
enum Refused {
    /// The database answered `LISTEN` with an error: it does not offer it.
    Unsupported(tokio_postgres::Error),
    /// The connection failed; try again later.
    Failed(tokio_postgres::Error),
}

impl Listener {
    async fn open(inner: &Inner) -> Result<Listener, Refused> {
        let mut config = inner.config.clone();
        config.application_name(LISTEN_APPLICATION_NAME);
        let (client, mut connection) = config
            .connect(inner.tls.clone())
            .await
            .map_err(Refused::Failed)?;
        let (tx, heads) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(n)) => {
                        if let Ok(head) = n.payload().parse::<u64>() {
                            if tx.send(Revision(head)).is_err() {
                                return;
                            }
                        }
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
                heads,
            }),
            Err(e) if e.as_db_error().is_some() => Err(Refused::Unsupported(e)),
            Err(e) => Err(Refused::Failed(e)),
        }
    }
}
