//! The replica's side of replication: a task that keeps the local service
//! in step with a primary, and reports how far behind it is.
//!
//! On an empty store (or when the primary's changelog no longer reaches the
//! local revision, or a hole shows) it takes a `Snapshot` and installs it;
//! otherwise it resumes with `Follow` after its local revision, handing
//! each batch of entries to the service, which applies them through its
//! sequencer as the primary's revisions. When the primary goes away it
//! retries with bounded exponential backoff while reads keep being
//! answered from the last applied state. Lag (revisions behind the
//! primary's head, seconds since it was last known in step) drives the
//! health status and is logged. Must not apply anything itself: every
//! change goes through [`Service::replicate`] or [`Service::install`].

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tonic::Code;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Channel;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use super::pb;
use super::pb::replication_service_client::ReplicationServiceClient;
use authzd_client::snapshot::{SnapshotFailure, decode_records, receive_snapshot, unknown_format};
use authzd_core::model::{ChangeSet, Revision, Timestamp};
use authzd_proto::RECORD_FORMAT;
use authzd_service::config::Follow;
use authzd_service::{Error, Service};

/// How long a stream may stay silent (no entries, no heartbeat) before the
/// replica takes the primary for gone and reconnects.
const SILENCE: Duration = authzd_core::limits::REPLICATION_SILENCE;
/// How often the lag is measured against the bound.
const LAG_TICK: Duration = Duration::from_millis(200);
/// How often a lagging replica logs its lag while nothing changes.
const LAG_LOG_EVERY: Duration = Duration::from_secs(30);

/// How far behind the primary the replica is.
#[derive(Debug, Default)]
struct Lag {
    state: Mutex<LagState>,
}

#[derive(Debug, Default)]
struct LagState {
    /// The primary's latest revision as last heard.
    head: Revision,
    /// When the replica last had applied everything the primary had.
    in_step_at: Option<Instant>,
    /// A session with the primary has ended in failure: from then on, not
    /// being in step is a fault, not the normal start.
    failed: bool,
}

impl Lag {
    fn state(&self) -> std::sync::MutexGuard<'_, LagState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The primary said its head is `head`; the replica has `applied`,
    /// the last of which the primary committed at `committed_at`. Behind
    /// the head, the replica is in step with the primary as it was then
    /// (on the primary's clock: a sidecar shares its host's).
    fn heard(&self, head: Revision, applied: Revision, committed_at: Option<Timestamp>) {
        let now = Instant::now();
        let mut state = self.state();
        state.head = head;
        if applied >= head {
            state.in_step_at = Some(now);
            return;
        }
        let Some(at) = committed_at else { return };
        let age = Timestamp::now().0.saturating_sub(at.0).max(0);
        let then = now
            .checked_sub(Duration::from_nanos(age as u64))
            .unwrap_or(now);
        if state.in_step_at.is_none_or(|known| known < then) {
            state.in_step_at = Some(then);
        }
    }

    /// A session with the primary ended in failure.
    fn failed(&self) {
        self.state().failed = true;
    }

    /// Whether a session with the primary has ended in failure.
    fn has_failed(&self) -> bool {
        self.state().failed
    }

    /// Revisions behind the last heard head, and time since the replica was
    /// last known in step (`None`: never yet).
    fn measure(&self, applied: Revision) -> (u64, Option<Duration>) {
        let state = self.state();
        (
            state.head.0.saturating_sub(applied.0),
            state.in_step_at.map(|at| at.elapsed()),
        )
    }
}

/// Why a session with the primary ended.
enum Ending {
    /// The local state cannot continue the primary's changelog: snapshot.
    Resync(String),
    /// The primary is unreachable or failed: try again later.
    Retry(String),
}

fn ending(status: &tonic::Status) -> Ending {
    let why = super::status_text(status);
    match status.code() {
        // The changelog no longer reaches the local revision, or the local
        // revision is one the primary never had (a primary restored from
        // an older copy).
        Code::FailedPrecondition | Code::OutOfRange => Ending::Resync(why),
        _ => Ending::Retry(why),
    }
}

/// Keeps a replica's service in step with its primary.
#[derive(Debug)]
pub struct Follower {
    service: Service,
    primary: Channel,
    /// The follow token's header, if any.
    authorization: Option<AsciiMetadataValue>,
    follow: Follow,
    lag: Arc<Lag>,
}

impl Follower {
    /// Follows over `primary` (a lazily connecting channel) as `follow`
    /// says, authenticating with `authorization`.
    pub fn new(
        service: Service,
        primary: Channel,
        authorization: Option<AsciiMetadataValue>,
        follow: Follow,
    ) -> Self {
        Follower {
            service,
            primary,
            authorization,
            follow,
            lag: Arc::new(Lag::default()),
        }
    }

    /// Follows until the server closes, keeping the health statuses named
    /// `services` at SERVING exactly while the lag is within its bound.
    pub async fn run(self, health: HealthReporter, services: Vec<&'static str>) {
        let lag = self.lag.clone();
        let watcher = report_lag(
            self.service.clone(),
            move |applied| {
                let (behind, since) = lag.measure(applied);
                (behind, since, lag.has_failed())
            },
            self.follow.max_lag,
            health,
            services,
            &REPLICA,
        );
        tokio::join!(watcher, self.follow_primary());
    }

    async fn follow_primary(&self) {
        let mut resync = self.service.snapshot().revision == Revision(0);
        let mut backoff = authzd_core::limits::FOLLOW_BACKOFF_MIN;
        loop {
            let mut progressed = false;
            let session = self.session(&mut resync, &mut progressed);
            let ended = tokio::select! {
                ended = session => ended,
                () = self.service.closed() => return,
            };
            if progressed {
                backoff = authzd_core::limits::FOLLOW_BACKOFF_MIN;
            }
            self.lag.failed();
            match ended {
                Ending::Resync(why) => {
                    tracing::warn!(primary = %self.follow.primary, reason = %why, "the local state cannot continue the primary's changelog; taking a new snapshot");
                    resync = true;
                }
                Ending::Retry(why) => {
                    tracing::warn!(primary = %self.follow.primary, reason = %why, retry_in_ms = backoff.as_millis() as u64, "lost the primary; serving the last applied state meanwhile");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = self.service.closed() => return,
            }
            backoff = (backoff * 2).min(authzd_core::limits::FOLLOW_BACKOFF_MAX);
        }
    }

    fn client(&self) -> ReplicationServiceClient<Channel> {
        ReplicationServiceClient::new(self.primary.clone())
            .max_decoding_message_size(authzd_core::limits::MAX_REPLICATION_MESSAGE_BYTES)
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(value) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        request
    }

    fn tenant_names(&self) -> Vec<String> {
        self.follow
            .tenants
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// One connection's worth of following: a snapshot first if needed,
    /// then entries until the stream ends or fails.
    async fn session(&self, resync: &mut bool, progressed: &mut bool) -> Ending {
        let mut client = self.client();
        if *resync {
            if let Err(ended) = self.bootstrap(&mut client).await {
                return ended;
            }
            *resync = false;
            *progressed = true;
        }
        let after = self.service.snapshot().revision;
        let request = self.request(pb::FollowRequest {
            after_revision: after.0,
            tenants: self.tenant_names(),
        });
        let mut stream = match client.follow(request).await {
            Ok(response) => response.into_inner(),
            Err(status) => return ending(&status),
        };
        tracing::info!(primary = %self.follow.primary, after = %after, "following the primary from the local revision");
        loop {
            let reply = match tokio::time::timeout(SILENCE, stream.message()).await {
                Err(_) => {
                    return Ending::Retry(format!("the primary sent nothing for {SILENCE:?}"));
                }
                Ok(Err(status)) => return ending(&status),
                Ok(Ok(None)) => return Ending::Retry("the primary ended the stream".into()),
                Ok(Ok(Some(reply))) => reply,
            };
            if reply.record_format != RECORD_FORMAT {
                return Ending::Retry(unknown_format(reply.record_format));
            }
            let sets = match decode_records::<ChangeSet>(&reply.entries) {
                Ok(sets) => sets,
                Err(why) => return Ending::Retry(why),
            };
            let committed_at = sets.last().map(|s| s.committed_at);
            if !sets.is_empty() {
                match self.service.replicate(sets).await {
                    Ok(_) => *progressed = true,
                    Err(e @ Error::OutOfSequence { .. }) => return Ending::Resync(e.to_string()),
                    Err(e) => return Ending::Retry(e.to_string()),
                }
            }
            self.lag.heard(
                Revision(reply.head_revision),
                self.service.snapshot().revision,
                committed_at,
            );
        }
    }

    /// Takes the primary's snapshot and installs it.
    async fn bootstrap(
        &self,
        client: &mut ReplicationServiceClient<Channel>,
    ) -> Result<(), Ending> {
        tracing::info!(primary = %self.follow.primary, "bootstrapping from a snapshot of the primary");
        let started = Instant::now();
        let request = self.request(pb::SnapshotRequest {
            tenants: self.tenant_names(),
        });
        let mut stream = client
            .snapshot(request)
            .await
            .map_err(|s| ending(&s))?
            .into_inner();
        let (export, records) =
            receive_snapshot(&mut stream)
                .await
                .map_err(|failure| match failure {
                    SnapshotFailure::Status(status) => ending(&status),
                    SnapshotFailure::Broken(why) => Ending::Retry(why),
                })?;
        let tenants = export.tenants.len();
        let revision = self
            .service
            .install(export)
            .await
            .map_err(|e| Ending::Retry(e.to_string()))?;
        tracing::info!(%revision, tenants, records, elapsed_ms = started.elapsed().as_millis() as u64, "installed the primary's snapshot");
        Ok(())
    }
}

/// What the lag's log lines call the server and what it follows.
pub(crate) struct Wording {
    /// Back within the bound.
    in_step: &'static str,
    /// Past the bound, as a fault.
    behind: &'static str,
    /// Not yet in step at start (the normal start).
    starting: &'static str,
    /// The periodic report while behind.
    lag: &'static str,
}

/// A read replica following its primary.
const REPLICA: Wording = Wording {
    in_step: "replica in step with the primary: SERVING",
    behind: "replica behind the primary past the bound: NOT_SERVING",
    starting: "replica starting, not yet in step with the primary: NOT_SERVING",
    lag: "replica lag",
};

/// A node of a shared database following the other nodes' commits.
pub(crate) const SHARED_NODE: Wording = Wording {
    in_step: "node in step with the database: SERVING",
    behind: "node behind the database past the bound (unreachable, or not catching up): NOT_SERVING",
    starting: "node starting, not yet in step with the database: NOT_SERVING",
    lag: "node lag behind the database",
};

/// Measures the lag every [`LAG_TICK`] until the server closes: sets the
/// health statuses when it crosses `max_lag` and logs it. `measure` gives,
/// for the applied revision, the revisions behind, the time since last in
/// step (`None`: never yet) and whether following has failed.
pub(crate) async fn report_lag(
    service: Service,
    measure: impl Fn(Revision) -> (u64, Option<Duration>, bool) + Send,
    max_lag: Duration,
    health: HealthReporter,
    services: Vec<&'static str>,
    words: &'static Wording,
) {
    let mut serving: Option<bool> = None;
    let mut warned = false;
    let mut logged = Instant::now();
    let mut tick = tokio::time::interval(LAG_TICK);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = service.closed() => return,
        }
        let applied = service.snapshot().revision;
        let (behind, since, failed) = measure(applied);
        let now_serving = since.is_some_and(|s| s <= max_lag);
        let lag = since.map_or_else(
            || "not yet in step".to_string(),
            |s| format!("{} ms", s.as_millis()),
        );
        // Not yet in step at start is the normal start (info); once in
        // step, or once catching up has failed, NOT_SERVING is a fault,
        // warned about once per spell.
        let fault = !now_serving && (since.is_some() || failed);
        if serving != Some(now_serving) || (fault && !warned) {
            let status = if now_serving {
                tracing::info!(%applied, behind, %lag, "{}", words.in_step);
                ServingStatus::Serving
            } else if fault {
                tracing::warn!(%applied, behind, %lag, max_lag_secs = max_lag.as_secs(), "{}", words.behind);
                ServingStatus::NotServing
            } else {
                tracing::info!(%applied, behind, %lag, "{}", words.starting);
                ServingStatus::NotServing
            };
            if serving != Some(now_serving) {
                for name in &services {
                    health.set_service_status(name, status).await;
                }
            }
            warned = fault;
            serving = Some(now_serving);
            logged = Instant::now();
        } else if logged.elapsed() >= LAG_LOG_EVERY && (behind > 0 || !now_serving) {
            tracing::info!(%applied, behind, %lag, "{}", words.lag);
            logged = Instant::now();
        }
    }
}
