//! Replication, both sides: what a primary hands its replicas (a snapshot
//! of the state at one revision, its changelog after a revision) and how a
//! replica takes them in (through the sequencer, as the primary's
//! revisions, so the replica's store, cache and feed stay in revision order
//! and a client that goes away never leaves a change half-applied).
//!
//! Must not know protobuf or the network: the API streams what this gives,
//! and the follower feeds it what it receives. Must not skip a revision: a
//! hole is refused ([`Error::OutOfSequence`]), never papered over.

use std::sync::Arc;
use std::time::Duration;

use super::{Error, Service};
use crate::watch::WatchError;
use authzd_core::model::{Change, ChangeSet, Revision, TenantId};
use authzd_core::schema::{self, Catalog};
use authzd_store::{Datastore, StoreError};
use authzd_store_redb::{self as storage, FILE_NAME};

pub use authzd_core::model::Export;

/// Writes `export` as a new store in `dir` (which must hold none): a
/// backup any server can open with `--data`.
pub async fn write_backup(dir: &std::path::Path, export: Export) -> Result<(), Error> {
    let store = storage::open(dir).await.map_err(Error::Open)?;
    let existing = store.revision().await;
    let written = match existing {
        Ok(Revision(0)) => match store.restore() {
            Some(restore) => {
                let tenants = Arc::new(export.tenants);
                restore
                    .replace_all(export.revision, export.schema, tenants)
                    .await
                    .map_err(Error::from)
            }
            None => Err(StoreError::Unsupported("replace its data set").into()),
        },
        Ok(existing) => Err(Error::InvalidArgument {
            field: "--out".into(),
            reason: format!(
                "{} already holds a store (at revision {existing})",
                dir.display()
            ),
        }),
        Err(e) => Err(e.into()),
    };
    store.close().await;
    written
}

/// What a data folder's store holds, as a server would load it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSummary {
    /// The revision it reflects.
    pub revision: Revision,
    /// Each tenant, in id order, with the number of its records.
    pub tenants: Vec<(TenantId, u64)>,
}

/// Opens the store in `dir` as a server would (the format version
/// checked), reads every record through a snapshot, and closes it: what
/// `dir` would serve. `dir` must already hold a store file; nothing is
/// created.
pub async fn inspect_store(dir: &std::path::Path) -> Result<StoreSummary, Error> {
    if !dir.join(FILE_NAME).is_file() {
        return Err(Error::InvalidArgument {
            field: dir.display().to_string(),
            reason: format!("holds no authzd store (no {FILE_NAME})"),
        });
    }
    let store = storage::open(dir).await.map_err(Error::Open)?;
    let summary = summarise(store.as_ref()).await;
    store.close().await;
    summary
}

/// Counts each tenant's records in one snapshot of `store`.
async fn summarise(store: &dyn Datastore) -> Result<StoreSummary, Error> {
    let mut snapshot = store.snapshot().await.map_err(Error::Open)?;
    let mut tenants = std::collections::BTreeMap::<TenantId, u64>::new();
    while let Some(batch) = snapshot.next_batch().await {
        for (tenant, _) in batch.map_err(Error::Open)? {
            *tenants.entry(tenant).or_default() += 1;
        }
    }
    Ok(StoreSummary {
        revision: snapshot.revision,
        tenants: tenants.into_iter().collect(),
    })
}

impl Error {
    /// Whether this is a store another process (a running server) holds.
    pub fn in_use(&self) -> bool {
        matches!(self, Error::Open(StoreError::InUse { .. }))
    }
}

/// Which tenants a replica holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tenants {
    /// Every tenant.
    All,
    /// Only these.
    Only(Vec<TenantId>),
}

impl Tenants {
    fn holds(&self, tenant: &TenantId) -> bool {
        match self {
            Tenants::All => true,
            Tenants::Only(ids) => ids.contains(tenant),
        }
    }
}

/// A change set committed elsewhere (by a primary, by another writer of
/// the store) with the schema it writes, if any, compiled.
pub(super) struct Replicated {
    pub(super) set: ChangeSet,
    pub(super) catalog: Option<Arc<Catalog>>,
}

impl Replicated {
    /// Compiles the schema `set` writes, if it writes one.
    pub(super) fn prepare(set: ChangeSet) -> Result<Replicated, Error> {
        let text = set.changes.iter().find_map(|c| match c {
            Change::SchemaWritten(text) => Some(text.as_str()),
            _ => None,
        });
        let catalog = match text {
            Some(text) => Some(Arc::new(schema::load("replicated schema", text)?)),
            None => None,
        };
        Ok(Replicated { set, catalog })
    }
}

/// A snapshot to install, with its schema compiled.
pub(super) struct Installed {
    pub(super) export: Export,
    pub(super) catalog: Arc<Catalog>,
}

impl Service {
    /// The state of `tenants` at the store's latest revision, read in one
    /// transaction.
    pub async fn export(&self, tenants: Tenants) -> Result<Export, Error> {
        let snapshot = self.inner.store.snapshot().await?;
        let revision = snapshot.revision;
        let schema = snapshot
            .schema
            .clone()
            .unwrap_or_else(|| schema::DEFAULT_SCHEMA.to_string());
        let tenants = snapshot
            .collect()
            .await?
            .into_iter()
            .filter(|(id, _)| tenants.holds(id))
            .collect();
        Ok(Export {
            revision,
            schema,
            tenants,
        })
    }

    /// The changelog entries after `after`, ascending and without holes, at
    /// most a replay page of them; entries of tenants outside `tenants`
    /// come emptied (no tenant, actor, changes or effects), so a follower
    /// keeps every revision without another tenant's data. Refused if
    /// `after` is ahead of the store or before what the changelog retains.
    pub async fn entries_after(
        &self,
        after: Revision,
        tenants: &Tenants,
    ) -> Result<Vec<ChangeSet>, Error> {
        let store = &self.inner.store;
        let latest = store.revision().await?;
        if after > latest {
            return Err(WatchError::Ahead {
                requested: after,
                latest,
            }
            .into());
        }
        let page = store
            .changes_after(
                after,
                authzd_core::limits::REPLAY_PAGE,
                authzd_core::limits::REPLICATION_MESSAGE_BYTES,
            )
            .await
            .map_err(super::changelog_error)?;
        Ok(page
            .into_iter()
            .map(|set| match &set.tenant {
                Some(t) if !tenants.holds(t) => emptied(set),
                _ => set,
            })
            .collect())
    }

    /// Waits until a revision after `revision` is applied, the server
    /// closes, or `idle` passes; returns the latest applied revision.
    pub async fn wait_beyond(&self, revision: Revision, idle: Duration) -> Revision {
        let mut applied = self.inner.applied.subscribe();
        let mut closing = self.inner.closing.subscribe();
        tokio::select! {
            _ = applied.wait_for(|r| *r > revision) => {}
            _ = closing.wait_for(|c| *c) => {}
            _ = tokio::time::sleep(idle) => {}
        }
        self.snapshot().revision
    }

    /// Applies a primary's change sets, in order, as the primary's
    /// revisions; returns the last one applied. The first must follow the
    /// replica's latest revision and each the one before.
    pub async fn replicate(&self, sets: Vec<ChangeSet>) -> Result<Revision, Error> {
        let sets = self
            .off_runtime(move || {
                sets.into_iter()
                    .map(Replicated::prepare)
                    .collect::<Result<Vec<_>, _>>()
            })
            .await??;
        self.submit(|reply| super::Job::Replicate { sets, reply })
            .await
    }

    /// Applies change sets another writer committed to this node's store to
    /// its cache and feed, without storing them again: those already
    /// applied are skipped, the rest must follow without a gap. Returns the
    /// cache's revision.
    pub async fn observe(&self, sets: Vec<ChangeSet>) -> Result<Revision, Error> {
        let sets = self
            .off_runtime(move || {
                sets.into_iter()
                    .map(Replicated::prepare)
                    .collect::<Result<Vec<_>, _>>()
            })
            .await??;
        self.submit(|reply| super::Job::Observe { sets, reply })
            .await
    }

    /// Replaces the replica's store and cache with a primary's snapshot.
    pub async fn install(&self, export: Export) -> Result<Revision, Error> {
        let (catalog, export) = self
            .off_runtime(move || {
                let catalog = schema::load("replicated schema", &export.schema)?;
                Ok::<_, Error>((Arc::new(catalog), export))
            })
            .await??;
        let snapshot = Box::new(Installed { export, catalog });
        self.submit(|reply| super::Job::Install { snapshot, reply })
            .await
    }
}

/// Encodes a replication record (a change, a change set) in the
/// changelog's own JSON form ([`authzd_core::model`] defines it).
pub fn encode_record<T: serde::Serialize>(record: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(record).map_err(|source| Error::Record {
        what: "record encoding",
        source,
    })
}

/// Decodes a replication record received from a primary.
pub fn decode_record<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|source| Error::Record {
        what: "record",
        source,
    })
}

/// A change set with nothing of its tenant left but its revision and time.
fn emptied(set: ChangeSet) -> ChangeSet {
    ChangeSet {
        revision: set.revision,
        tenant: None,
        actor: None,
        committed_at: set.committed_at,
        changes: Vec::new(),
        effects: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only the listed tenants are held; `All` holds any.
    #[test]
    fn tenants_hold_what_they_list() {
        let a = TenantId::try_from("a").unwrap();
        let b = TenantId::try_from("b").unwrap();
        assert!(Tenants::All.holds(&a));
        let only = Tenants::Only(vec![a.clone()]);
        assert!(only.holds(&a));
        assert!(!only.holds(&b));
    }
}
