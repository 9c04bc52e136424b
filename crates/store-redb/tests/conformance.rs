//! The `Datastore` conformance suite against the redb backend: on a real
//! disk (the system temp folder, not /dev/shm), and the same behind the
//! failure-injecting wrapper with no fault armed, which must be invisible.
//!
//! redb locks its file to one process, so its several writers are handles
//! within one process: `Shared` hands out distinct handles on one open
//! database, which is how the suite's several-writers category meets
//! redb's conflict rule, commit ids and head signal.

#![allow(
    clippy::unwrap_used,
    reason = "a test: a failed setup is a failed test"
)]

use std::sync::Arc;

use authzd_store::conformance::{SharedStorage, Storage};
use authzd_store::faulty::Faulty;
use authzd_store::{Datastore, StoreError};

/// The embedded store in a fresh temp folder.
struct Redb(tempfile::TempDir);

impl Redb {
    fn new() -> Self {
        Redb(tempfile::tempdir().unwrap())
    }
}

#[async_trait::async_trait]
impl Storage for Redb {
    async fn open(&self) -> Result<Arc<dyn Datastore>, StoreError> {
        authzd_store_redb::open(self.0.path()).await
    }
}

/// The embedded store behind a [`Faulty`] wrapper that stays healthy.
struct HealthyFaulty(Redb);

impl HealthyFaulty {
    fn new() -> Self {
        HealthyFaulty(Redb::new())
    }
}

#[async_trait::async_trait]
impl Storage for HealthyFaulty {
    async fn open(&self) -> Result<Arc<dyn Datastore>, StoreError> {
        Ok(Faulty::new(self.0.open().await?))
    }
}

/// The embedded store in a fresh temp folder, written through several
/// handles at once.
struct Shared(Redb);

impl Shared {
    fn new() -> Self {
        Shared(Redb::new())
    }
}

#[async_trait::async_trait]
impl Storage for Shared {
    async fn open(&self) -> Result<Arc<dyn Datastore>, StoreError> {
        self.0.open().await
    }
}

#[async_trait::async_trait]
impl SharedStorage for Shared {
    /// A handle of its own (the healthy fault wrapper, which passes every
    /// call on) over the one open database.
    async fn another(&self, first: &Arc<dyn Datastore>) -> Result<Arc<dyn Datastore>, StoreError> {
        Ok(Faulty::new(first.clone()))
    }
}

authzd_store::conformance!(redb, Redb::new());
authzd_store::conformance!(redb_several_writers, Shared::new(), several_writers);
authzd_store::conformance!(redb_behind_the_fault_wrapper, HealthyFaulty::new());
