//! A redb storage backend for the embedded store's own tests that fails on
//! command, page by page (faults at the trait's level are
//! `authzd_store::faulty`'s).
//!
//! It owns the fault model only: a [`Disk`] shared by every handle the store
//! opens on it, whose writes and syncs can be made to fail. It must not be
//! used outside tests.
//!
//! The disk keeps two images. `live` is what reads see, like an OS page
//! cache; `synced` is what the last successful sync made durable. A failed
//! sync models the worst case — the machine crashing before the data reached
//! the platter — by throwing away every write since the last good sync.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use redb::StorageBackend;
use redb::backends::InMemoryBackend;

/// Storage that outlives the store handles opened on it.
#[derive(Debug, Default)]
pub(crate) struct Disk {
    live: InMemoryBackend,
    synced: Mutex<Vec<u8>>,
    /// Writes still allowed before every write fails; `u64::MAX` when healthy.
    writes_left: AtomicU64,
    fail_syncs: AtomicBool,
}

impl Disk {
    /// A healthy, empty disk.
    pub(crate) fn new() -> Arc<Disk> {
        let disk = Disk::default();
        disk.writes_left.store(u64::MAX, Ordering::SeqCst);
        Arc::new(disk)
    }

    /// A backend for one database handle on this disk.
    pub(crate) fn backend(self: &Arc<Self>) -> FaultyBackend {
        FaultyBackend(Arc::clone(self))
    }

    /// Lets `n` more writes through, then fails every write.
    pub(crate) fn fail_writes_after(&self, n: u64) {
        self.writes_left.store(n, Ordering::SeqCst);
    }

    /// Makes every sync fail (and lose the unsynced writes) until healed.
    pub(crate) fn fail_syncs(&self) {
        self.fail_syncs.store(true, Ordering::SeqCst);
    }

    /// Clears every fault.
    pub(crate) fn heal(&self) {
        self.writes_left.store(u64::MAX, Ordering::SeqCst);
        self.fail_syncs.store(false, Ordering::SeqCst);
    }

    /// Whether a write fault is armed and has fired.
    pub(crate) fn write_fault_fired(&self) -> bool {
        self.writes_left.load(Ordering::SeqCst) == 0
    }

    fn take_write(&self) -> Result<(), std::io::Error> {
        let allowed = self
            .writes_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| match left {
                0 => None,
                u64::MAX => Some(u64::MAX),
                n => Some(n - 1),
            })
            .is_ok();
        if allowed {
            Ok(())
        } else {
            Err(std::io::Error::other("injected write failure"))
        }
    }

    fn image(&self) -> Result<Vec<u8>, std::io::Error> {
        let len = usize::try_from(self.live.len()?).map_err(std::io::Error::other)?;
        let mut image = vec![0; len];
        self.live.read(0, &mut image)?;
        Ok(image)
    }
}

/// One handle's view of a [`Disk`].
#[derive(Debug)]
pub(crate) struct FaultyBackend(Arc<Disk>);

impl StorageBackend for FaultyBackend {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.0.live.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.0.live.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.0.take_write()?;
        self.0.live.set_len(len)
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        let mut synced = self.0.synced.lock().unwrap_or_else(PoisonError::into_inner);
        if self.0.fail_syncs.load(Ordering::SeqCst) {
            self.0.live.set_len(synced.len() as u64)?;
            self.0.live.write(0, &synced)?;
            return Err(std::io::Error::other("injected sync failure"));
        }
        *synced = self.0.image()?;
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        self.0.take_write()?;
        self.0.live.write(offset, data)
    }
}
