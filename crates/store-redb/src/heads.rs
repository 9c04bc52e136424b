//! The conflict rule per tenant: which tenants the commits since a group's
//! base wrote, so that a group conflicts only with commits to its own
//! tenants (or store-wide ones), as [`authzd_store::Datastore`] requires.
//!
//! Every writer of the file is in this process (redb locks the file), so
//! the heads are kept in memory, from the first commit this process makes;
//! a base older than that is refused whenever the store moved, as the
//! tenants of those commits are not known. Owns only that bookkeeping:
//! the transaction that checks and updates it is the core's.

use std::collections::HashMap;

use authzd_core::model::{ChangeSet, Revision, TenantId};
use authzd_store::PendingWrite;

/// The latest revision that wrote each tenant, and the latest store-wide one.
#[derive(Debug, Default)]
pub(super) struct Heads {
    /// The store's head when this process began keeping heads: what was
    /// committed before is not known per tenant.
    floor: Option<Revision>,
    /// The latest store-wide commit (a schema; a write that needed the
    /// whole store).
    store_wide: Revision,
    tenants: HashMap<TenantId, Revision>,
}

impl Heads {
    /// Whether `writes`, planned on `base`, conflict with what was committed
    /// up to `head`: some commit since `base` wrote one of their tenants or
    /// the whole store, or one of them needs the whole store unchanged.
    pub(super) fn conflict(
        &mut self,
        base: Revision,
        head: Revision,
        writes: &[PendingWrite],
    ) -> bool {
        let floor = *self.floor.get_or_insert(head);
        if base == head {
            return false;
        }
        if base > head || base < floor || self.store_wide > base {
            return true;
        }
        writes.iter().any(|w| match w.conflict_scope() {
            Some(tenant) => self.tenants.get(tenant).is_some_and(|at| *at > base),
            None => true,
        })
    }

    /// Records what a commit wrote.
    pub(super) fn record(&mut self, set: &ChangeSet) {
        match &set.tenant {
            Some(tenant) => {
                self.tenants.insert(tenant.clone(), set.revision);
            }
            None => self.store_wide = set.revision,
        }
    }

    /// Forgets every tenant's head: a commit whose outcome is unknown, or a
    /// replaced data set, leaves only `head` known (a base before it then
    /// conflicts whenever the store moved).
    pub(super) fn reset(&mut self, head: Revision) {
        self.floor = Some(head);
        self.store_wide = Revision(0);
        self.tenants.clear();
    }
}
