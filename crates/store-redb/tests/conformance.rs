//! The `Datastore` conformance suite against the redb backend: on a real
//! disk (the system temp folder, not /dev/shm), and the same behind the
//! failure-injecting wrapper with no fault armed, which must be invisible.

#![allow(
    clippy::unwrap_used,
    reason = "a test: a failed setup is a failed test"
)]

use std::sync::Arc;

use authzd_store::conformance::Storage;
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

authzd_store::conformance!(redb, Redb::new());
authzd_store::conformance!(redb_behind_the_fault_wrapper, HealthyFaulty::new());
