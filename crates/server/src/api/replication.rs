//! `ReplicationService`, the primary's side of replication: `Snapshot`
//! streams the state at one revision in bounded chunks, `Follow` streams
//! every changelog entry after a revision, then live, with heartbeats.
//!
//! Records and entries travel in the changelog's own JSON encoding
//! (`authzd_proto::RECORD_FORMAT`): the model types already define it, every field
//! included, and a replica of the same format reads them back exactly
//! (converting each to protobuf messages would be a second definition of
//! the model to keep in step). Must not decide what a replica holds beyond
//! the tenants asked for and the token's binding.

use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::convert::id;
use super::guard;
use super::pb;
use super::status;
use authzd_core::model::{Change, ChangeSet, Revision, TenantId};
use authzd_proto::RECORD_FORMAT;
use authzd_service::ops::replication;
use authzd_service::{Error, Export, Service, Tenants, encode_record};

/// The tonic service.
#[derive(Debug, Clone)]
pub struct ReplicationApi {
    service: Service,
    /// Snapshots being streamed; each holds a copy of the state.
    snapshots: Arc<Semaphore>,
}

impl ReplicationApi {
    /// Serves `service`.
    pub fn new(service: Service) -> Self {
        Self {
            service,
            snapshots: Arc::new(Semaphore::new(authzd_core::limits::MAX_SNAPSHOTS)),
        }
    }
}

/// The tenants a request names, checked.
fn named(tenants: &[String]) -> Result<Vec<TenantId>, Error> {
    tenants
        .iter()
        .enumerate()
        .map(|(i, t)| id::<TenantId>(&format!("tenants[{i}]"), t))
        .collect()
}

/// Encodes a record or an entry (the model types always encode).
fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, Status> {
    encode_record(value).map_err(status)
}

/// A snapshot's messages, encoded one at a time as the stream is read, so
/// only the state (already copied) and one chunk are in memory.
struct Chunks {
    revision: Revision,
    schema: Option<String>,
    tenants: std::vec::IntoIter<(TenantId, Vec<Change>)>,
    current: Option<(TenantId, std::vec::IntoIter<Change>)>,
    done: bool,
    /// Released with the last message, before the client has it, so a
    /// client that read a snapshot to its end may take the next at once.
    permit: Option<OwnedSemaphorePermit>,
}

impl Chunks {
    fn new(export: Export, permit: OwnedSemaphorePermit) -> Self {
        Chunks {
            revision: export.revision,
            schema: Some(export.schema),
            tenants: export.tenants.into_iter(),
            current: None,
            done: false,
            permit: Some(permit),
        }
    }

    fn reply(&self) -> pb::SnapshotReply {
        pb::SnapshotReply {
            revision: self.revision.0,
            record_format: RECORD_FORMAT,
            ..Default::default()
        }
    }

    /// The next chunk of the tenant in hand, moving to the next tenant when
    /// it is exhausted; `None` once every tenant is sent.
    fn next_records(&mut self) -> Option<Result<pb::SnapshotReply, Status>> {
        loop {
            if self.current.is_none() {
                let (tenant, changes) = self.tenants.next()?;
                self.current = Some((tenant, changes.into_iter()));
            }
            let base = self.reply();
            let (tenant, changes) = self.current.as_mut()?;
            let mut reply = pb::SnapshotReply {
                tenant: tenant.to_string(),
                ..base
            };
            let mut bytes = 0usize;
            while reply.records.len() < authzd_core::limits::SNAPSHOT_CHUNK_RECORDS
                && bytes < authzd_core::limits::REPLICATION_MESSAGE_BYTES
            {
                let Some(change) = changes.next() else { break };
                match encode(&change) {
                    Ok(record) => {
                        bytes += record.len();
                        reply.records.push(record);
                    }
                    Err(status) => return Some(Err(status)),
                }
            }
            if reply.records.is_empty() {
                self.current = None;
                continue;
            }
            return Some(Ok(reply));
        }
    }
}

impl Iterator for Chunks {
    type Item = Result<pb::SnapshotReply, Status>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if let Some(schema) = self.schema.take() {
            return Some(Ok(pb::SnapshotReply {
                schema,
                ..self.reply()
            }));
        }
        match self.next_records() {
            Some(Err(status)) => {
                self.done = true;
                self.permit = None;
                Some(Err(status))
            }
            Some(ok) => Some(ok),
            None => {
                self.done = true;
                self.permit = None;
                Some(Ok(pb::SnapshotReply {
                    done: true,
                    ..self.reply()
                }))
            }
        }
    }
}

/// Where a Follow stream is.
struct Following {
    service: Service,
    tenants: Tenants,
    /// The last revision sent.
    after: Revision,
    /// A page read before the stream began (so its errors are the call's).
    first: Option<Vec<ChangeSet>>,
    /// Whether anything was sent yet.
    greeted: bool,
    ended: bool,
}

impl Following {
    /// The next message: entries if there are any, else (after the
    /// heartbeat interval) a heartbeat; `None` once the server closes or
    /// the stream failed.
    async fn next(&mut self) -> Option<Result<pb::FollowReply, Status>> {
        if self.ended {
            return None;
        }
        loop {
            let page = match self.first.take() {
                Some(page) => page,
                None => match self.service.entries_after(self.after, &self.tenants).await {
                    Ok(page) => page,
                    Err(e) => {
                        self.ended = true;
                        return Some(Err(super::status(e)));
                    }
                },
            };
            if let Some(last) = page.last() {
                self.after = last.revision;
                self.greeted = true;
                return Some(self.entries(&page));
            }
            // A follower that is in step learns so at once, not after the
            // first heartbeat interval.
            if !std::mem::replace(&mut self.greeted, true) {
                return Some(Ok(self.heartbeat(self.service.snapshot().revision)));
            }
            let head = self
                .service
                .wait_beyond(self.after, authzd_core::limits::FOLLOW_HEARTBEAT)
                .await;
            if self.service.is_closing() {
                return None;
            }
            if head <= self.after {
                return Some(Ok(self.heartbeat(head)));
            }
        }
    }

    fn entries(&self, page: &[ChangeSet]) -> Result<pb::FollowReply, Status> {
        let entries = page.iter().map(encode).collect::<Result<Vec<_>, _>>()?;
        let head = self.service.snapshot().revision.max(self.after);
        Ok(pb::FollowReply {
            entries,
            head_revision: head.0,
            record_format: RECORD_FORMAT,
        })
    }

    fn heartbeat(&self, head: Revision) -> pb::FollowReply {
        pb::FollowReply {
            entries: Vec::new(),
            head_revision: head.max(self.after).0,
            record_format: RECORD_FORMAT,
        }
    }
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<pb::SnapshotReply, Status>> + Send>>;
type FollowStream = Pin<Box<dyn Stream<Item = Result<pb::FollowReply, Status>> + Send>>;

#[tonic::async_trait]
impl pb::replication_service_server::ReplicationService for ReplicationApi {
    type SnapshotStream = SnapshotStream;
    type FollowStream = FollowStream;

    async fn snapshot(
        &self,
        request: Request<pb::SnapshotRequest>,
    ) -> Result<Response<SnapshotStream>, Status> {
        let call = guard::call(&request).map_err(status)?;
        let named = named(&request.get_ref().tenants).map_err(status)?;
        let tenants = replication::tenants(&self.service, &call, named).map_err(status)?;
        let permit = self
            .snapshots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Error::SnapshotsBusy {
                limit: authzd_core::limits::MAX_SNAPSHOTS,
            })
            .map_err(status)?;
        let export = self.service.export(tenants).await.map_err(status)?;
        let chunks = Chunks::new(export, permit);
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }

    async fn follow(
        &self,
        request: Request<pb::FollowRequest>,
    ) -> Result<Response<FollowStream>, Status> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        let named = named(&r.tenants).map_err(status)?;
        let tenants = replication::tenants(&self.service, &call, named).map_err(status)?;
        let after = Revision(r.after_revision);
        let first = self
            .service
            .entries_after(after, &tenants)
            .await
            .map_err(status)?;
        let following = Following {
            service: self.service.clone(),
            tenants,
            after,
            first: Some(first),
            greeted: false,
            ended: false,
        };
        let stream = futures_util::stream::unfold(following, |mut f| async move {
            f.next().await.map(|item| (item, f))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
