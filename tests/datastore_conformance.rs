//! Runs the `Datastore` conformance suite (`tests/datastore/mod.rs`)
//! against every implementation: the embedded redb store on a real disk
//! (the system temp folder, not /dev/shm), and the same behind the
//! failure-injecting wrapper with no fault armed, which must be invisible.
//!
//! A new backend implements [`datastore::Storage`] here and adds one line
//! to the `conformance!` list at the bottom.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod datastore;

use std::sync::Arc;

use authzd::store::faulty::Faulty;
use authzd::store::{self, Datastore, StoreError};
use datastore::Storage;

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
        store::open(self.0.path()).await
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

/// One test per check of the suite, for one backend.
macro_rules! conformance {
    ($backend:ident, $storage:expr) => {
        mod $backend {
            use super::*;

            conformance!(@checks $storage;
                commit_atomicity,
                revision_order,
                changelog_paging,
                snapshot_consistency,
                prune,
                idempotency,
                audit_with_writes,
                crash_safety,
                reopen_equality,
            );
        }
    };
    (@checks $storage:expr; $($check:ident),* $(,)?) => {
        $(
            /// The suite's check of the same name (see `tests/datastore`).
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() -> datastore::TestResult {
                let storage = $storage;
                tokio::time::timeout(datastore::HANG, datastore::$check(&storage)).await?
            }
        )*
    };
}

conformance!(redb, Redb::new());
conformance!(redb_behind_the_fault_wrapper, HealthyFaulty::new());
