//! The audit trail's table: recording entries inside a commit's
//! transaction, pruning by age, and paging newest first with filters.
//!
//! Entries are keyed by time, then a store-wide sequence number, so age
//! pruning removes a key range from the front and a listing walks back from
//! its cursor. Must not decide what is audited (the sequencer does) and must
//! not hold the rules of who may read it (the API does).

use authzd_core::limits::MAX_PRUNED_PER_COMMIT;
use redb::{ReadTransaction, ReadableTable, TableError, WriteTransaction};

use super::tables::{AUDIT, META_AUDIT_SEQ};
use super::{codec, db_err};
use authzd_core::model::{AuditEntry, AuditKey, AuditQuery, Timestamp};
use authzd_store::{AuditPage, StoreError};

/// The store-wide counters table, as a write transaction holds it.
type Meta<'txn> = redb::Table<'txn, &'static str, u64>;

/// The audit table and the counter that numbers its entries, opened once
/// per transaction.
pub(super) struct AuditTable<'txn> {
    table: redb::Table<'txn, (i64, u64), &'static [u8]>,
    next_seq: u64,
}

impl<'txn> AuditTable<'txn> {
    pub(super) fn open(txn: &'txn WriteTransaction, meta: &Meta<'_>) -> Result<Self, StoreError> {
        let next_seq = meta
            .get(META_AUDIT_SEQ)
            .map_err(db_err)?
            .map_or(0, |v| v.value());
        Ok(AuditTable {
            table: txn.open_table(AUDIT).map_err(db_err)?,
            next_seq,
        })
    }

    /// Appends `entry` under the next key at its time; returns the key.
    pub(super) fn record(&mut self, mut entry: AuditEntry) -> Result<AuditKey, StoreError> {
        entry.key.seq = self.next_seq;
        self.next_seq += 1;
        let value = codec::encode("audit entry", &entry)?;
        self.table
            .insert((entry.key.at.0, entry.key.seq), value.as_slice())
            .map_err(db_err)?;
        Ok(entry.key)
    }

    /// Removes entries older than `before`, at most
    /// [`MAX_PRUNED_PER_COMMIT`] of them (the rest go with later commits).
    pub(super) fn prune(&mut self, before: Timestamp) -> Result<(), StoreError> {
        let old: Vec<(i64, u64)> = self
            .table
            .range(..(before.0, 0))
            .map_err(db_err)?
            .take(MAX_PRUNED_PER_COMMIT)
            .map(|row| row.map(|(k, _)| k.value()).map_err(db_err))
            .collect::<Result<_, _>>()?;
        for key in &old {
            self.table.remove(key).map_err(db_err)?;
        }
        Ok(())
    }

    /// Saves the sequence counter; call once, after the last record.
    pub(super) fn finish(&self, meta: &mut Meta<'_>) -> Result<(), StoreError> {
        meta.insert(META_AUDIT_SEQ, self.next_seq).map_err(db_err)?;
        Ok(())
    }
}

/// Reads up to `limit` entries matching `query`, newest first, examining at
/// most `max_scanned` entries: a filter that matches little cannot make one
/// call walk the whole trail; the page then comes back short with a cursor.
pub(super) fn page(
    txn: &ReadTransaction,
    query: &AuditQuery,
    limit: usize,
    max_scanned: usize,
) -> Result<AuditPage, StoreError> {
    let table = match txn.open_table(AUDIT) {
        Ok(table) => table,
        Err(TableError::TableDoesNotExist(_)) => return Ok(AuditPage::default()),
        Err(e) => return Err(db_err(e)),
    };
    let low = query.since.map_or((i64::MIN, 0), |t| (t.0, 0));
    let mut high = query.until.map_or((i64::MAX, u64::MAX), |t| (t.0, 0));
    if let Some(before) = query.before {
        high = high.min((before.at.0, before.seq));
    }
    let mut page = AuditPage::default();
    if low >= high {
        return Ok(page);
    }
    // The next page starts right below the last entry examined, matched or
    // not: every entry above it has been looked at.
    let mut last_examined = None;
    for (scanned, row) in table.range(low..high).map_err(db_err)?.rev().enumerate() {
        let (key, value) = row.map_err(db_err)?;
        if page.entries.len() == limit || scanned == max_scanned {
            page.next = last_examined;
            break;
        }
        let (at, seq) = key.value();
        last_examined = Some(AuditKey {
            at: Timestamp(at),
            seq,
        });
        let entry: AuditEntry = codec::decode("audit entry", value.value())?;
        if query.matches(&entry) {
            page.entries.push(entry);
        }
    }
    Ok(page)
}
