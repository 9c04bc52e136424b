//! `WatchService`: a tenant's committed change sets, with their effective
//! consequences, as a server stream of bounded pieces, over
//! [`authzd_service::ops::watch`]. Converts requests and pieces; must not
//! decide who may watch or how a revision is cut into pieces (the
//! operation and the feed do). A piece is encoded once, into the slot the
//! feed keeps beside it, and every subscriber sharing the piece sends those
//! bytes.

use std::pin::Pin;

use tokio_stream::Stream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};

use super::convert::{change_to_pb, id, optional_id, reach_to_pb, timestamp_to_pb};
use super::guard;
use super::status;
use super::{invalid, pb};
use authzd_core::model::{Effect, Place, Revision};
use authzd_core::schema::PermissionPattern;
use authzd_proto::codec::Encoded;
use authzd_service::ops;
use authzd_service::watch::{Event, Filter, Kinds, Piece};
use authzd_service::{Error, Service};

/// The tonic service.
#[derive(Debug, Clone)]
pub struct WatchApi {
    service: Service,
}

impl WatchApi {
    /// Serves `service`.
    pub fn new(service: Service) -> Self {
        Self { service }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<Encoded, Status>> + Send>>;

fn kinds(requested: &[i32]) -> Result<Kinds, Error> {
    if requested.is_empty() {
        return Ok(Kinds::default());
    }
    let mut kinds = Kinds {
        changes: false,
        effects: false,
        progress: false,
    };
    for k in requested {
        match pb::EventKind::try_from(*k) {
            Ok(pb::EventKind::Changes) => kinds.changes = true,
            Ok(pb::EventKind::PermissionChanges) => kinds.effects = true,
            Ok(pb::EventKind::Progress) => kinds.progress = true,
            _ => return Err(invalid("kinds", format!("unknown event kind {k}"))),
        }
    }
    Ok(kinds)
}

fn filter(r: &pb::WatchRequest) -> Result<Filter, Error> {
    let permission = if r.permission.is_empty() {
        None
    } else {
        Some(
            r.permission
                .parse::<PermissionPattern>()
                .map_err(|e| invalid("permission", e))?,
        )
    };
    Ok(Filter {
        tenant: id("tenant", &r.tenant)?,
        subject: optional_id("subject", &r.subject)?,
        permission,
        target: ops::watch::target(
            optional_id("scope", &r.scope)?,
            optional_id("target_subject", &r.target_subject)?,
        )?,
        kinds: kinds(&r.kinds)?,
    })
}

/// A gain or loss as the feed publishes it (and a dry run previews it).
pub(super) fn effect_to_pb(e: &Effect) -> pb::PermissionChange {
    let (scope, target_subject) = match &e.target {
        Place::Scope(s) => (s.to_string(), String::new()),
        Place::Subject(s) => (String::new(), s.to_string()),
    };
    pb::PermissionChange {
        subject: e.subject.to_string(),
        permission: e.permission.to_string(),
        scope,
        target_subject,
        gained: e.gained,
        direction: if e.gained {
            pb::Direction::Gained
        } else {
            pb::Direction::Lost
        } as i32,
        reach: reach_to_pb(e.reach) as i32,
    }
}

fn committed_to_pb(tenant: &str, piece: &Piece) -> pb::WatchResponse {
    pb::WatchResponse {
        revision: piece.revision.0,
        committed_at: Some(timestamp_to_pb(piece.committed_at)),
        actor: piece
            .actor
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        changes: piece
            .changes
            .iter()
            .map(|c| change_to_pb(tenant, c))
            .collect(),
        permission_changes: piece.effects.iter().map(effect_to_pb).collect(),
        progress: false,
        part: piece.part,
        revision_complete: piece.complete,
    }
}

#[tonic::async_trait]
impl pb::watch_service_server::WatchService for WatchApi {
    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        let filter = filter(r).map_err(status)?;
        let start = ops::watch::start(Revision(r.after_revision), r.from_oldest_retained)
            .map_err(status)?;
        // The filter's tenant, not the request's text: pieces are shared
        // between equal filters, so their encoding must depend on nothing
        // else.
        let tenant = filter.tenant.to_string();
        let subscription = ops::watch::watch(&self.service, &call, filter, start)
            .await
            .map_err(status)?;
        let service = self.service.clone();
        let stream = subscription.map(move |item| match item {
            Ok(Event::Committed(piece)) => {
                let latest = service.snapshot().revision.0;
                authzd_service::metrics::watch_lag(latest.saturating_sub(piece.revision.0));
                // Shared only between equal filters, which name the same
                // tenant: the encoding is the same for all of them.
                let bytes = piece.wire.get_or_init(|| {
                    Encoded::of(&committed_to_pb(&tenant, &piece))
                        .bytes()
                        .clone()
                });
                Ok(Encoded::shared(bytes))
            }
            Ok(Event::Progress(revision)) => Ok(Encoded::of(&pb::WatchResponse {
                revision: revision.0,
                progress: true,
                revision_complete: true,
                ..Default::default()
            })),
            Err(e) => Err(super::status(Error::from(e))),
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
