//! The housekeeping lease: which node of a shared database prunes the
//! changelog, commit ids and audit trail, and sweeps expired assignments,
//! so that N nodes do not each do it. The lease is a PostgreSQL advisory
//! lock (session level) held by a dedicated connection (application name
//! [`HOUSEKEEPING_APPLICATION_NAME`]): the database releases it the moment
//! that connection ends — the node stopped, was killed, or lost the
//! database — and another node's next try, every poll interval, takes it.
//! PostgreSQL-only: a database without advisory locks would need a lease
//! row instead.
//!
//! Two nodes may briefly both think they hold it (the old holder learns of
//! its lost connection only at its next check): the work done under it is
//! safe twice — pruning deletes are idempotent, and an expiry sweep is a
//! write planned on a base, which conflicts if the other node's landed
//! first. Owns the lease's connection and the pruning it triggers when
//! another node's commits arrive; must not prune inside a commit's
//! transaction, and must not keep the handle alive (it holds a weak
//! reference and ends when the handle closes).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use authzd_core::model::Timestamp;

use crate::datastore::Inner;

/// The application name of the lease's connection, so an operator (or a
/// test) can tell which node holds it in `pg_stat_activity`.
pub const HOUSEKEEPING_APPLICATION_NAME: &str = "authzd-housekeeping";

/// The advisory lock key of the lease ("authzd" in ASCII, then "hk"): not
/// the migrations' key.
const HOUSEKEEPING_LOCK: i64 = 0x6175_7468_7a64_686b_u64 as i64;

/// The lease's connection, kept open whether or not it holds the lock
/// (opening one costs the database an authentication), and whether it
/// does.
pub(crate) struct Lease {
    client: Option<tokio_postgres::Client>,
    held: bool,
}

impl Lease {
    /// Tries once to take the lease, opening the connection if there is
    /// none; whether this node holds it now.
    pub(crate) async fn try_take(&mut self, inner: &Inner) -> bool {
        if self
            .client
            .as_ref()
            .is_none_or(tokio_postgres::Client::is_closed)
        {
            self.client = connect(inner).await;
        }
        let Some(client) = &self.client else {
            return false;
        };
        let taken = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&HOUSEKEEPING_LOCK])
            .await
            .and_then(|row| row.try_get::<_, bool>(0));
        match taken {
            Ok(taken) => self.held = taken,
            Err(e) => {
                tracing::debug!(store = %inner.location, error = %e, "cannot try the housekeeping lease");
                self.client = None;
            }
        }
        self.held
    }

    /// A lease not taken, without a connection yet.
    pub(crate) fn new() -> Self {
        Lease {
            client: None,
            held: false,
        }
    }

    /// Whether this node holds the lease.
    pub(crate) fn held(&self) -> bool {
        self.held
    }

    /// Whether the connection, and so the lock, is still there.
    async fn alive(&self) -> bool {
        match &self.client {
            Some(client) => !client.is_closed() && client.simple_query("SELECT 1").await.is_ok(),
            None => false,
        }
    }
}

/// Opens the lease's connection; `None` (logged) if it cannot.
async fn connect(inner: &Inner) -> Option<tokio_postgres::Client> {
    let mut config = inner.config.clone();
    config.application_name(HOUSEKEEPING_APPLICATION_NAME);
    match config.connect(inner.tls.clone()).await {
        Ok((client, connection)) => {
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "the housekeeping connection ended");
                }
            });
            Some(client)
        }
        Err(e) => {
            tracing::debug!(store = %inner.location, error = %e, "cannot open the housekeeping connection");
            None
        }
    }
}

/// Keeps trying to take the lease (every poll interval) while another node
/// holds it, checks it while this node does, and prunes whenever the
/// handle learns of a new head while holding it. `lease` is as start-up
/// left it.
pub(crate) fn spawn(inner: &Arc<Inner>, lease: Lease) {
    let weak = Arc::downgrade(inner);
    let mut heads = inner.head.subscribe();
    let poll = inner.options.poll_interval;
    tokio::spawn(async move {
        let mut lease = lease;
        let mut ticker = tokio::time::interval(poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let head_moved = tokio::select! {
                changed = heads.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    true
                }
                _ = ticker.tick() => false,
            };
            if heads.borrow().closed {
                return;
            }
            let Some(inner) = weak.upgrade() else { return };
            if head_moved {
                if lease.held() {
                    let head = heads.borrow().latest;
                    crate::datastore::prune(&inner, Some(head), Some(Timestamp::now())).await;
                }
                continue;
            }
            check(&inner, &mut lease).await;
        }
    });
}

/// One tick: a held lease is checked, a missing one tried.
async fn check(inner: &Inner, lease: &mut Lease) {
    if lease.held() {
        if !lease.alive().await {
            *lease = Lease::new();
            inner.lease_held.store(false, Ordering::SeqCst);
            tracing::warn!(store = %inner.location, "lost the housekeeping lease (its connection ended); another node takes it over");
        }
    } else if lease.try_take(inner).await {
        announce_taken(inner);
    }
}

/// Marks the lease held and says so.
pub(crate) fn announce_taken(inner: &Inner) {
    inner.lease_held.store(true, Ordering::SeqCst);
    tracing::info!(store = %inner.location, "holding the housekeeping lease: this node prunes the changelog and audit trail and sweeps expired assignments");
}
