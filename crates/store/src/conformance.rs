//! The `Datastore` conformance suite: what every backend of authzd's store
//! must do, as async checks over any [`Storage`] (a place a backend opens,
//! closes and opens again on the same data).
//!
//! A backend runs it from its own tests by implementing [`Storage`] and
//! writing one line, `authzd_store::conformance!(name, storage);`: each
//! check then becomes one test of that backend. The caller needs tokio (with
//! `macros` and `rt-multi-thread`) among its dev-dependencies. The checks use only the trait, so they hold
//! a distributed database to exactly the embedded store's guarantees.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test suite: a failed expectation is a failed test"
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::faulty::{Fault, Faulty};
use crate::{CommitId, CommitOutcome, Datastore, PendingWrite, StoreError, TenantRecords};
use authzd_core::model::{
    AuditEntry, AuditKey, AuditOutcome, AuditQuery, Change, ChangeSet, GroupId, Membership, Origin,
    Principal, Revision, Subject, SubjectId, SubjectKind, SubjectStatus, TenantId, TenantSettings,
    Timestamp,
};

/// What a conformance check returns: an error fails the test.
pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Where a backend keeps its data: each call opens a handle on the same
/// data, after the previous handle was closed.
#[async_trait::async_trait]
pub trait Storage: Send + Sync {
    /// A handle on this storage's data.
    async fn open(&self) -> Result<Arc<dyn Datastore>, StoreError>;
}

/// A storage whose data several handles may write at once (processes or
/// nodes of a shared database; for an embedded store, handles in one
/// process): the suite's several-writers category runs on it.
#[async_trait::async_trait]
pub trait SharedStorage: Storage {
    /// Another handle on the data `first` holds, open beside it.
    async fn another(&self, first: &Arc<dyn Datastore>) -> Result<Arc<dyn Datastore>, StoreError>;
}

/// Longest any single check may take before it counts as hung (a guard,
/// not a speed claim: the checks finish in well under a second); a
/// runner wraps each check in it.
pub const HANG: Duration = Duration::from_secs(60);

/// Records enough for a snapshot of more batches than any backend reads
/// ahead, so that writers commit while one is being read.
const MANY_SUBJECTS: usize = 10_000;

fn tenant(id: &str) -> TenantId {
    TenantId::try_from(id).unwrap()
}

fn subject(id: &str) -> Subject {
    Subject {
        id: SubjectId::try_from(id).unwrap(),
        kind: SubjectKind::User,
        status: SubjectStatus::Active,
        attributes: [("department".to_owned(), "HR".to_owned())].into(),
        home_scope: None,
    }
}

fn member(group: &str, subject: &str) -> Membership {
    Membership {
        group: GroupId::try_from(group).unwrap(),
        member: Principal::Subject(SubjectId::try_from(subject).unwrap()),
    }
}

/// A validated write of `changes` to `tenant_id` (`None`: store-wide).
pub fn write(tenant_id: Option<&str>, changes: Vec<Change>) -> PendingWrite {
    PendingWrite {
        tenant: tenant_id.map(tenant),
        actor: None,
        committed_at: Timestamp(1_700_000_000_000_000_000),
        changes,
        effects: Vec::new(),
        expected_revision: None,
        idempotency_key: None,
        origin: Origin {
            caller: "conformance".into(),
            request_id: "r-1".into(),
            method: "Test/Write".into(),
            reason: None,
        },
        revision: None,
        prepared: None,
    }
}

/// [`write`] under idempotency key `key`.
fn keyed(tenant_id: Option<&str>, changes: Vec<Change>, key: &str) -> PendingWrite {
    let mut w = write(tenant_id, changes);
    w.idempotency_key = Some(key.to_owned());
    w
}

/// Writes touching every kind of record in two tenants, deletes and
/// removals included.
fn sample_writes() -> Vec<PendingWrite> {
    let settings = |off: &[&str]| TenantSettings {
        disabled_resources: off.iter().map(|r| r.parse().unwrap()).collect(),
    };
    vec![
        write(None, vec![Change::SchemaWritten("[resources]".to_owned())]),
        write(
            Some("acme"),
            vec![
                Change::TenantPut(settings(&[])),
                Change::SubjectPut(subject("zoe")),
                Change::SubjectPut(subject("alice")),
                Change::SubjectPut(subject("bob")),
            ],
        ),
        write(
            Some("beta"),
            vec![
                Change::SubjectPut(subject("alice")),
                Change::MemberAdded(member("staff", "alice")),
            ],
        ),
        write(
            Some("acme"),
            vec![
                Change::MemberAdded(member("staff", "alice")),
                Change::MemberAdded(member("staff", "bob")),
            ],
        ),
        write(
            Some("acme"),
            vec![
                Change::MemberRemoved(member("staff", "bob")),
                Change::SubjectDeleted(SubjectId::try_from("bob").unwrap()),
                Change::TenantPut(settings(&["widgets"])),
            ],
        ),
    ]
}

fn committed(outcome: CommitOutcome) -> ChangeSet {
    match outcome {
        CommitOutcome::Committed(set) => set,
        CommitOutcome::Replayed(r) => panic!("replayed at {r}, expected a commit"),
    }
}

/// The stored state as a map from each record's identity to the change
/// that recreates it, per tenant: what a snapshot yields and what
/// replaying the changelog must give.
type State = BTreeMap<TenantId, BTreeMap<String, Change>>;

/// Applies `change` to `state` as a store applies it.
fn apply(state: &mut State, tenant: &TenantId, change: &Change) {
    let records = state.entry(tenant.clone()).or_default();
    let (key, put) = match change {
        Change::TenantPut(_) => ("tenant".to_owned(), true),
        Change::SubjectPut(s) => (format!("subject {}", s.id), true),
        Change::SubjectDeleted(id) => (format!("subject {id}"), false),
        Change::MemberAdded(m) => (format!("member {} {:?}", m.group, m.member), true),
        Change::MemberRemoved(m) => (format!("member {} {:?}", m.group, m.member), false),
        other => panic!("the suite writes no {other:?}"),
    };
    if put {
        records.insert(key, change.clone());
    } else {
        records.remove(&key);
    }
}

/// What a snapshot's records describe, as a [`State`].
fn state_of(records: &TenantRecords) -> State {
    let mut state = State::new();
    for (tenant, changes) in records {
        for change in changes {
            apply(&mut state, tenant, change);
        }
    }
    state
}

/// Applies one write's changes to `state`, a tenant first seen with its
/// default settings (as a snapshot reports it).
fn apply_write(state: &mut State, tenant: Option<&TenantId>, changes: &[Change]) {
    let Some(t) = tenant else { return };
    if !state.contains_key(t) {
        apply(state, t, &Change::TenantPut(TenantSettings::default()));
    }
    for change in changes {
        apply(state, t, change);
    }
}

/// The state the changelog's entries up to `revision` leave.
fn replayed(log: &[ChangeSet], revision: Revision) -> State {
    let mut state = State::new();
    for set in log.iter().filter(|s| s.revision <= revision) {
        apply_write(&mut state, set.tenant.as_ref(), &set.changes);
    }
    state
}

/// The state `writes` leave, committed in order.
fn state_after(writes: &[PendingWrite]) -> State {
    let mut state = State::new();
    for w in writes {
        apply_write(&mut state, w.tenant.as_ref(), &w.changes);
    }
    state
}

/// Everything observable about a store: revision, oldest retained
/// revision, the whole changelog, schema and records of a snapshot.
#[derive(Debug, PartialEq)]
struct Observed {
    revision: Revision,
    oldest: Revision,
    log: Vec<ChangeSet>,
    schema: Option<String>,
    records: TenantRecords,
}

async fn observe(store: &dyn Datastore) -> Result<Observed, StoreError> {
    let snapshot = store.snapshot().await?;
    let schema = snapshot.schema.clone();
    let revision = snapshot.revision;
    Ok(Observed {
        revision,
        oldest: store.oldest_retained().await?,
        log: whole_log(store).await?,
        schema,
        records: snapshot.collect().await?,
    })
}

/// The whole retained changelog, paged.
async fn whole_log(store: &dyn Datastore) -> Result<Vec<ChangeSet>, StoreError> {
    let latest = store.revision().await?;
    let oldest = store.oldest_retained().await?;
    let mut log = Vec::new();
    // An empty changelog (oldest 0) retains nothing to page through.
    let mut after = oldest.0.checked_sub(1).map_or(latest, Revision);
    while after < latest {
        let page = store.changes_after(after, 100, usize::MAX).await?;
        let Some(last) = page.last() else { break };
        after = last.revision;
        log.extend(page);
    }
    Ok(log)
}

/// Commits `writes` and `denied` as one group on the store's latest
/// revision, under a fresh commit id.
async fn at_head(
    store: &dyn Datastore,
    writes: Vec<PendingWrite>,
    denied: Vec<AuditEntry>,
) -> Result<Vec<CommitOutcome>, StoreError> {
    let base = store.revision().await?;
    store
        .commit_group(base, CommitId::random(), writes, denied)
        .await
}

/// Commits every sample write, one at a time.
async fn fill(store: &dyn Datastore) -> Result<Vec<ChangeSet>, StoreError> {
    let mut sets = Vec::new();
    for w in sample_writes() {
        sets.push(committed(store.commit(w).await?));
    }
    Ok(sets)
}

/// A commit that fails leaves nothing: no records, no changelog entry, no
/// idempotency key, no audit entry, revision unchanged; whether a check of
/// one of its writes fails or the storage does.
pub async fn commit_atomicity(storage: &dyn Storage) -> TestResult {
    let store = storage.open().await?;
    fill(&*store).await?;
    let before = observe(&*store).await?;
    let audited = store.audit_page(AuditQuery::default(), 100, 100).await?;

    // A good write, then one naming a tenant's record without a tenant.
    let carol = keyed(
        Some("acme"),
        vec![Change::SubjectPut(subject("carol"))],
        "k",
    );
    let stray = write(None, vec![Change::SubjectPut(subject("dave"))]);
    let err = at_head(&*store, vec![carol.clone(), stray], Vec::new()).await;
    assert!(
        matches!(err, Err(StoreError::MissingTenant { index: 0 })),
        "{err:?}"
    );
    // A good write, then one against a stale revision.
    let mut stale = write(Some("acme"), vec![Change::SubjectPut(subject("erin"))]);
    stale.expected_revision = Some(Revision(1));
    let err = at_head(&*store, vec![carol.clone(), stale], Vec::new()).await;
    assert!(
        matches!(err, Err(StoreError::RevisionMismatch { .. })),
        "{err:?}"
    );
    // The storage failing under the commit.
    let faulty = Faulty::new(store.clone());
    faulty.arm(Fault::FailCommit);
    assert!(faulty.commit(carol.clone()).await.is_err());

    assert_eq!(observe(&*store).await?, before);
    let key = store
        .idempotent_revision(Some(tenant("acme")), "k".into())
        .await?;
    assert_eq!(key, None, "a failed commit recorded its idempotency key");
    let after = store.audit_page(AuditQuery::default(), 100, 100).await?;
    assert_eq!(after.entries, audited.entries);
    // The next commit is the next revision.
    let next = committed(store.commit(carol).await?);
    assert_eq!(next.revision, before.revision.next());
    store.close().await;
    Ok(())
}

/// Revisions are contiguous and increasing: each commit takes the next
/// one, a group consecutive ones in order, and a write given its revision
/// (a replica's copy) commits only as exactly the next.
pub async fn revision_order(storage: &dyn Storage) -> TestResult {
    let store = storage.open().await?;
    assert_eq!(store.revision().await?, Revision(0));
    let single = fill(&*store).await?;
    let revisions: Vec<u64> = single.iter().map(|s| s.revision.0).collect();
    assert_eq!(revisions, vec![1, 2, 3, 4, 5]);
    let group = at_head(&*store, sample_writes(), Vec::new()).await?;
    let revisions: Vec<u64> = group.into_iter().map(|o| committed(o).revision.0).collect();
    assert_eq!(revisions, vec![6, 7, 8, 9, 10]);
    assert_eq!(store.revision().await?, Revision(10));
    let logged: Vec<u64> = whole_log(&*store)
        .await?
        .iter()
        .map(|s| s.revision.0)
        .collect();
    assert_eq!(logged, (1..=10).collect::<Vec<_>>());

    for given in [10, 12] {
        let mut copy = write(Some("acme"), vec![Change::SubjectPut(subject("x"))]);
        copy.revision = Some(Revision(given));
        let err = store.commit(copy).await;
        assert!(
            matches!(err, Err(StoreError::OutOfSequence { .. })),
            "{err:?}"
        );
    }
    let mut copy = write(Some("acme"), vec![Change::SubjectPut(subject("x"))]);
    copy.revision = Some(Revision(11));
    assert_eq!(committed(store.commit(copy).await?).revision, Revision(11));
    store.close().await;
    Ok(())
}

/// The changelog pages after any revision, bounded in count and bytes, and
/// walking it page by page gives every entry once, in order.
pub async fn changelog_paging(storage: &dyn Storage) -> TestResult {
    let store = storage.open().await?;
    let writes: Vec<PendingWrite> = (0..30)
        .map(|i| {
            write(
                Some("acme"),
                vec![Change::SubjectPut(subject(&format!("s{i}")))],
            )
        })
        .collect();
    let all: Vec<ChangeSet> = at_head(&*store, writes, Vec::new())
        .await?
        .into_iter()
        .map(committed)
        .collect();
    for (limit, max_bytes) in [(7, usize::MAX), (100, 1), (4, 600)] {
        let mut seen = Vec::new();
        let mut after = Revision(0);
        for _ in 0..100 {
            let page = store.changes_after(after, limit, max_bytes).await?;
            assert!(page.len() <= limit);
            let Some(last) = page.last() else { break };
            assert_eq!(page[0].revision, after.next(), "a page skipped a revision");
            after = last.revision;
            seen.extend(page);
        }
        assert_eq!(seen, all, "paging by {limit} within {max_bytes} bytes");
    }
    assert!(
        store
            .changes_after(Revision(30), 10, usize::MAX)
            .await?
            .is_empty()
    );
    assert!(
        store
            .changes_after(Revision(99), 10, usize::MAX)
            .await?
            .is_empty()
    );
    assert!(
        store
            .changes_after(Revision(0), 0, usize::MAX)
            .await?
            .is_empty()
    );
    store.close().await;
    Ok(())
}

/// A snapshot is exactly the state at its revision, as replaying the
/// changelog up to it gives, however many commits land while it is read:
/// first with writes committed between its first batch and the rest, then
/// with a writer running free beside repeated snapshots. Dropping a
/// snapshot half-read lets the store close.
pub async fn snapshot_consistency(storage: &dyn Storage) -> TestResult {
    let store = storage.open().await?;
    let mut seed = vec![Change::TenantPut(TenantSettings::default())];
    seed.extend((0..MANY_SUBJECTS).map(|i| Change::SubjectPut(subject(&format!("s{i:05}")))));
    store.commit(write(Some("acme"), seed)).await?;

    let mut snapshot = store.snapshot().await?;
    let first = snapshot.next_batch().await.ok_or("an empty snapshot")??;
    for i in 0..10 {
        let gone = SubjectId::try_from(format!("s{:05}", MANY_SUBJECTS - 1 - i).as_str())?;
        let changes = vec![
            Change::SubjectDeleted(gone),
            Change::SubjectPut(subject(&format!("z{i}"))),
        ];
        store.commit(write(Some("acme"), changes)).await?;
    }
    let mut records = vec![(tenant("acme"), first.into_iter().map(|(_, c)| c).collect())];
    records.extend(snapshot.collect().await?);
    let log = whole_log(&*store).await?;
    assert_eq!(state_of(&records), replayed(&log, Revision(1)));

    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..40usize {
                let gone = SubjectId::try_from(format!("s{:05}", i * 7).as_str()).unwrap();
                let changes = vec![
                    Change::SubjectDeleted(gone),
                    Change::SubjectPut(subject(&format!("new{i}"))),
                    Change::MemberAdded(member("staff", &format!("s{:05}", i * 11))),
                ];
                store.commit(write(Some("acme"), changes)).await?;
                tokio::task::yield_now().await;
            }
            Ok::<_, StoreError>(())
        })
    };
    let mut snapshots = Vec::new();
    for _ in 0..40 {
        let mut snapshot = store.snapshot().await?;
        let revision = snapshot.revision;
        let mut records: TenantRecords = Vec::new();
        while let Some(batch) = snapshot.next_batch().await {
            let changes = batch?.into_iter().map(|(_, change)| change).collect();
            records.push((tenant("acme"), changes));
            // Read slowly, so the writer commits during the read.
            tokio::task::yield_now().await;
        }
        snapshots.push((revision, state_of(&records)));
        if writer.is_finished() {
            break;
        }
    }
    writer.await??;
    let log = whole_log(&*store).await?;
    for (revision, state) in &snapshots {
        assert_eq!(state, &replayed(&log, *revision), "snapshot at {revision}");
    }

    let mut half_read = store.snapshot().await?;
    assert!(half_read.next_batch().await.is_some());
    drop(half_read);
    store.close().await;
    Ok(())
}

/// Retention prunes the changelog to its window with each commit; a read
/// after a pruned revision fails with `Pruned` naming the oldest retained
/// one, and so does one before a snapshot install (which keeps no
/// changelog), while the records stay whole.
pub async fn prune(storage: &dyn Storage) -> TestResult {
    let store = storage.open().await?;
    store.retain(3);
    fill(&*store).await?;
    fill(&*store).await?;
    assert_eq!(store.oldest_retained().await?, Revision(8));
    let kept = store.changes_after(Revision(7), 10, usize::MAX).await?;
    let revisions: Vec<u64> = kept.iter().map(|s| s.revision.0).collect();
    assert_eq!(revisions, vec![8, 9, 10]);
    for after in [0, 6] {
        let err = store.changes_after(Revision(after), 10, usize::MAX).await;
        assert!(
            matches!(
                err,
                Err(StoreError::Pruned {
                    oldest: Revision(8),
                    ..
                })
            ),
            "after {after}: {err:?}"
        );
    }
    let before = observe(&*store).await?;
    assert_eq!(state_of(&before.records), state_after(&sample_writes()));

    // What follows needs the capability to replace the data set, which a
    // store shared by several writers does not offer.
    let Some(restore) = store.restore() else {
        store.close().await;
        return Ok(());
    };
    let epoch = store.epoch().await?;
    restore
        .replace_all(
            Revision(40),
            "schema".into(),
            Arc::new(before.records.clone()),
        )
        .await?;
    assert_eq!(store.oldest_retained().await?, Revision(0));
    let err = store.changes_after(Revision(39), 10, usize::MAX).await;
    assert!(
        matches!(
            err,
            Err(StoreError::Pruned {
                oldest: Revision(41),
                ..
            })
        ),
        "{err:?}"
    );
    assert!(
        store
            .changes_after(Revision(40), 10, usize::MAX)
            .await?
            .is_empty()
    );
    let installed = observe(&*store).await?;
    assert_eq!(installed.records, before.records);
    assert_ne!(
        store.epoch().await?,
        epoch,
        "a replaced data set keeps its epoch"
    );
    assert_eq!(installed.schema.as_deref(), Some("schema"));
    let mut next = write(Some("acme"), vec![Change::SubjectPut(subject("y"))]);
    next.revision = Some(Revision(41));
    store.commit(next).await?;
    store.close().await;
    Ok(())
}

/// A write whose idempotency key was committed before, in its tenant or
/// store-wide, is not applied again: it replays the first revision, even
/// with other content or a stale expected revision; the same key in
/// another tenant is another write.
pub async fn idempotency(storage: &dyn Storage) -> TestResult {
    let store = storage.open().await?;
    fill(&*store).await?;
    let mut first = keyed(
        Some("acme"),
        vec![Change::SubjectPut(subject("carol"))],
        "req-1",
    );
    first.expected_revision = Some(Revision(5));
    assert_eq!(
        committed(store.commit(first.clone()).await?).revision,
        Revision(6)
    );
    let after_first = observe(&*store).await?;

    first.changes = vec![Change::SubjectPut(subject("dave"))];
    assert_eq!(
        store.commit(first.clone()).await?,
        CommitOutcome::Replayed(Revision(6))
    );
    assert_eq!(observe(&*store).await?, after_first);
    let known = store
        .idempotent_revision(Some(tenant("acme")), "req-1".into())
        .await?;
    assert_eq!(known, Some(Revision(6)));
    assert_eq!(
        store
            .idempotent_revision(Some(tenant("beta")), "req-1".into())
            .await?,
        None
    );
    assert_eq!(store.idempotent_revision(None, "req-1".into()).await?, None);

    let elsewhere = keyed(
        Some("beta"),
        vec![Change::SubjectPut(subject("dave"))],
        "req-1",
    );
    let store_wide = keyed(None, vec![Change::SchemaWritten("[x]".into())], "req-1");
    let outcomes = at_head(
        &*store,
        vec![elsewhere.clone(), store_wide, elsewhere],
        Vec::new(),
    )
    .await?;
    assert!(matches!(&outcomes[0], CommitOutcome::Committed(s) if s.revision == Revision(7)));
    assert!(matches!(&outcomes[1], CommitOutcome::Committed(s) if s.revision == Revision(8)));
    assert_eq!(outcomes[2], CommitOutcome::Replayed(Revision(7)));
    assert_eq!(store.revision().await?, Revision(8));
    store.close().await;
    Ok(())
}

/// A refusal as the sequencer records it: a message and a reason code.
fn refused() -> AuditOutcome {
    AuditOutcome::Denied {
        message: "no".into(),
        reason: Some("NOT_MANAGER".into()),
    }
}

/// Every committed write leaves an audit entry in its own transaction,
/// naming its caller and revision; refusals commit alone without taking a
/// revision and keep their reason code; a replica's copy (given its revision) is audited on the
/// primary, not here; a failed commit leaves no entry.
pub async fn audit_with_writes(storage: &dyn Storage) -> TestResult {
    let store = storage.open().await?;
    let mut writes = sample_writes();
    for (i, w) in writes.iter_mut().enumerate() {
        w.committed_at = Timestamp(1_000 + i as i64);
    }
    at_head(&*store, writes, Vec::new()).await?;
    let denied = AuditEntry {
        key: AuditKey {
            at: Timestamp(2_000),
            seq: 0,
        },
        tenant: Some(tenant("acme")),
        actor: None,
        origin: Origin::default(),
        concerned: Vec::new(),
        more_concerned: false,
        outcome: refused(),
    };
    assert!(at_head(&*store, Vec::new(), vec![denied]).await?.is_empty());
    assert_eq!(store.revision().await?, Revision(5));
    let faulty = Faulty::new(store.clone());
    faulty.arm(Fault::FailCommit);
    assert!(faulty.commit(write(Some("acme"), vec![])).await.is_err());
    let mut copy = write(Some("acme"), vec![Change::SubjectPut(subject("x"))]);
    copy.revision = Some(Revision(6));
    copy.committed_at = Timestamp(3_000);
    store.commit(copy).await?;

    let page = store.audit_page(AuditQuery::default(), 100, 100).await?;
    let outcomes: Vec<AuditOutcome> = page.entries.iter().map(|e| e.outcome.clone()).collect();
    // The refusal's reason code is kept with its message.
    let mut expected = vec![refused()];
    expected.extend((1..=5).rev().map(|r| AuditOutcome::Committed(Revision(r))));
    assert_eq!(outcomes, expected);
    assert!(
        page.entries[1..]
            .iter()
            .all(|e| e.origin.caller == "conformance")
    );
    // Pages of two walk the trail without gaps or repeats.
    let mut seen = Vec::new();
    let mut query = AuditQuery::default();
    for _ in 0..10 {
        let page = store.audit_page(query.clone(), 2, 100).await?;
        seen.extend(page.entries.into_iter().map(|e| e.outcome));
        match page.next {
            Some(next) => query.before = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, expected);
    store.close().await;
    Ok(())
}

/// After an injected failure and a reopen, the state is exactly the last
/// durable commit: a commit lost before its fsync is gone, one whose
/// acknowledgement was lost after it is there, and either way the store
/// goes on at the next revision. Failing reads and a broken snapshot
/// change nothing.
pub async fn crash_safety(storage: &dyn Storage) -> TestResult {
    let store = Faulty::new(storage.open().await?);
    fill(&*store).await?;
    let durable = observe(&*store).await?;
    let extra = || write(Some("acme"), vec![Change::SubjectPut(subject("late"))]);

    let lost = CommitId::random();
    let store = uncertain_then_reopen(storage, store, Fault::LoseCommit, lost, extra()).await?;
    assert_eq!(observe(&*store).await?, durable);
    assert_eq!(store.find_commit(lost, Revision(0)).await?, None);

    let kept = CommitId::random();
    let store =
        uncertain_then_reopen(storage, store, Fault::FailAfterCommit, kept, extra()).await?;
    let landed = observe(&*store).await?;
    assert_eq!(landed.revision, durable.revision.next());
    assert_eq!(
        store.find_commit(kept, durable.revision).await?,
        Some(landed.revision),
        "the commit whose acknowledgement was lost is found by its id"
    );
    assert_eq!(&landed.log[..durable.log.len()], &durable.log[..]);
    let mut expected = sample_writes();
    expected.push(extra());
    assert_eq!(state_of(&landed.records), state_after(&expected));

    store.arm(Fault::FailReads);
    assert!(store.revision().await.is_err());
    assert!(
        store
            .changes_after(Revision(0), 10, usize::MAX)
            .await
            .is_err()
    );
    assert!(store.snapshot().await.is_err());
    store.heal();
    store.arm(Fault::FailSnapshotAfter(0));
    assert!(store.snapshot().await?.collect().await.is_err());
    store.heal();
    assert_eq!(observe(&*store).await?, landed);
    let next = committed(store.commit(extra()).await?);
    assert_eq!(next.revision, landed.revision.next());
    store.close().await;
    Ok(())
}

/// Commits `write` as `id` with `fault` armed, expects an uncertain
/// outcome, and opens the storage again, as a restart after the crash
/// would.
async fn uncertain_then_reopen(
    storage: &dyn Storage,
    store: Arc<Faulty>,
    fault: Fault,
    id: CommitId,
    write: PendingWrite,
) -> Result<Arc<Faulty>, Box<dyn std::error::Error + Send + Sync>> {
    store.arm(fault);
    let base = store.revision().await?;
    let err = store.commit_group(base, id, vec![write], Vec::new()).await;
    assert!(
        matches!(err, Err(StoreError::CommitUncertain(_))),
        "{err:?}"
    );
    store.close().await;
    Ok(Faulty::new(storage.open().await?))
}

/// Closing and reopening changes nothing observable: revision, changelog,
/// schema, records and idempotency keys come back equal; a closed handle
/// refuses every operation.
pub async fn reopen_equality(storage: &dyn Storage) -> TestResult {
    let store = storage.open().await?;
    fill(&*store).await?;
    let retried = keyed(Some("beta"), vec![Change::SubjectPut(subject("k"))], "key");
    store.commit(retried).await?;
    let before = observe(&*store).await?;
    let epoch = store.epoch().await?;
    store.close().await;
    let err = store.revision().await;
    assert!(matches!(err, Err(StoreError::Closed)), "{err:?}");

    let again = storage.open().await?;
    assert_eq!(observe(&*again).await?, before);
    assert_eq!(again.epoch().await?, epoch, "the data set changed identity");
    let key = again
        .idempotent_revision(Some(tenant("beta")), "key".into())
        .await?;
    assert_eq!(key, Some(Revision(6)));
    again.close().await;
    Ok(())
}

/// A group planned on a revision the store has moved past is refused whole
/// with a conflict naming the head, and writes nothing; denials alone
/// commit whatever the base. A committed group is found by its id from any
/// revision before its first, and not from one at or after it.
pub async fn commit_ids_and_conflicts(storage: &dyn Storage) -> TestResult {
    let store = storage.open().await?;
    fill(&*store).await?;
    let before = observe(&*store).await?;
    let stale = Revision(2);
    let err = store
        .commit_group(stale, CommitId::random(), sample_writes(), Vec::new())
        .await;
    assert!(
        matches!(err, Err(StoreError::Conflict { base, head }) if base == stale && head == before.revision),
        "{err:?}"
    );
    assert!(err.is_err_and(|e| e.is_retryable()));
    assert_eq!(
        observe(&*store).await?,
        before,
        "a conflict wrote something"
    );
    let denied = AuditEntry {
        key: AuditKey {
            at: Timestamp(5_000),
            seq: 0,
        },
        tenant: Some(tenant("acme")),
        actor: None,
        origin: Origin::default(),
        concerned: Vec::new(),
        more_concerned: false,
        outcome: refused(),
    };
    let alone = store
        .commit_group(stale, CommitId::random(), Vec::new(), vec![denied])
        .await?;
    assert!(alone.is_empty());

    let id = CommitId::random();
    let outcomes = store
        .commit_group(before.revision, id, sample_writes(), Vec::new())
        .await?;
    let first = committed(outcomes.into_iter().next().unwrap()).revision;
    assert_eq!(first, before.revision.next());
    for after in [Revision(0), before.revision] {
        assert_eq!(store.find_commit(id, after).await?, Some(first));
    }
    assert_eq!(store.find_commit(id, first).await?, None);
    assert_eq!(
        store.find_commit(CommitId::random(), Revision(0)).await?,
        None
    );
    store.close().await;
    Ok(())
}

/// A wait for a revision beyond the latest returns once a commit makes
/// one, with the new latest; a wait for one already passed returns at
/// once; closing the store ends a wait.
pub async fn waiting_for_commits(storage: &dyn Storage) -> TestResult {
    let store = storage.open().await?;
    fill(&*store).await?;
    let latest = store.revision().await?;
    assert_eq!(store.wait_beyond(Revision(1)).await?, latest);
    let waiting = tokio::spawn({
        let store = store.clone();
        async move { store.wait_beyond(latest).await }
    });
    store.commit(sample_writes().remove(0)).await?;
    assert_eq!(waiting.await??, latest.next());
    let waiting = tokio::spawn({
        let store = store.clone();
        async move { store.wait_beyond(latest.next()).await }
    });
    store.close().await;
    let err = waiting.await?;
    assert!(matches!(err, Err(StoreError::Closed)), "{err:?}");
    Ok(())
}

/// Commits `write` through `store` on its latest revision, planning again
/// (reading the head again) after each conflict; returns its revision.
async fn commit_retrying(
    store: &dyn Datastore,
    id: CommitId,
    write: PendingWrite,
) -> Result<Revision, StoreError> {
    loop {
        let base = store.revision().await?;
        match store
            .commit_group(base, id, vec![write.clone()], Vec::new())
            .await
        {
            Ok(mut outcomes) => match outcomes.pop() {
                Some(CommitOutcome::Committed(set)) => return Ok(set.revision),
                Some(CommitOutcome::Replayed(revision)) => return Ok(revision),
                None => return Err(StoreError::CommitUncertain("no outcome".into())),
            },
            Err(e) if e.is_retryable() => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Two handles: what one commits, the other's stale group conflicts with
/// and writes nothing; caught up, it commits on the new head. One
/// idempotency key through both handles gives one revision.
pub async fn writers_conflict_and_write_nothing(storage: &dyn SharedStorage) -> TestResult {
    let a = storage.open().await?;
    let b = storage.another(&a).await?;
    fill(&*a).await?;
    let base = b.revision().await?;
    let first = keyed(
        Some("acme"),
        vec![Change::SubjectPut(subject("kim"))],
        "once",
    );
    a.commit_group(base, CommitId::random(), vec![first.clone()], Vec::new())
        .await?;
    let after_a = observe(&*a).await?;
    let rival = write(Some("acme"), vec![Change::SubjectPut(subject("lee"))]);
    let err = b
        .commit_group(base, CommitId::random(), vec![rival.clone()], Vec::new())
        .await;
    assert!(
        matches!(err, Err(StoreError::Conflict { head, .. }) if head == base.next()),
        "{err:?}"
    );
    assert_eq!(
        observe(&*b).await?,
        after_a,
        "the refused group wrote something"
    );
    let caught_up = b.changes_after(base, 10, usize::MAX).await?;
    assert_eq!(caught_up.len(), 1);
    let outcomes = b
        .commit_group(base.next(), CommitId::random(), vec![rival], Vec::new())
        .await?;
    assert_eq!(
        committed(outcomes.into_iter().next().unwrap()).revision,
        base.next().next()
    );
    let again = b
        .commit_group(
            base.next().next(),
            CommitId::random(),
            vec![first],
            Vec::new(),
        )
        .await?;
    assert_eq!(again, vec![CommitOutcome::Replayed(base.next())]);
    a.close().await;
    Ok(())
}

/// The conflict rule is per tenant: two handles writing different tenants
/// from the same stale base both commit, at consecutive revisions after
/// the head; a group to a tenant written since its base conflicts and
/// writes nothing, and so does a store-wide write (or one expecting a
/// revision) once anything was committed since its base. A handle's next
/// group to its own tenant, planned on its own last commit, lands after
/// the other tenant's commit without a conflict.
pub async fn writers_to_other_tenants_do_not_conflict(storage: &dyn SharedStorage) -> TestResult {
    let a = storage.open().await?;
    let b = storage.another(&a).await?;
    fill(&*a).await?;
    let base = a.revision().await?;
    let to = |tenant_id: &str, name: &str| {
        write(Some(tenant_id), vec![Change::SubjectPut(subject(name))])
    };
    let first = a
        .commit_group(
            base,
            CommitId::random(),
            vec![to("acme", "ann")],
            Vec::new(),
        )
        .await?;
    assert_eq!(
        committed(first.into_iter().next().unwrap()).revision,
        base.next()
    );
    let other = b
        .commit_group(
            base,
            CommitId::random(),
            vec![to("beta", "ben"), to("gamma", "gus")],
            Vec::new(),
        )
        .await?;
    let revisions: Vec<Revision> = other.into_iter().map(|o| committed(o).revision).collect();
    assert_eq!(revisions, vec![Revision(base.0 + 2), Revision(base.0 + 3)]);
    let head = Revision(base.0 + 3);

    let before = observe(&*b).await?;
    let mut expecting = to("beta", "bea");
    expecting.expected_revision = Some(base);
    for refused in [
        vec![to("acme", "amy")],
        vec![to("beta", "bea"), to("acme", "amy")],
        vec![write(
            None,
            vec![Change::SchemaWritten("[resources]".to_owned())],
        )],
        vec![expecting],
    ] {
        let err = b
            .commit_group(base, CommitId::random(), refused, Vec::new())
            .await;
        assert!(
            matches!(err, Err(StoreError::Conflict { head: h, .. }) if h == head),
            "{err:?}"
        );
    }
    assert_eq!(observe(&*b).await?, before, "a conflict wrote something");

    let own = a
        .commit_group(
            base.next(),
            CommitId::random(),
            vec![to("acme", "amy")],
            Vec::new(),
        )
        .await?;
    assert_eq!(
        committed(own.into_iter().next().unwrap()).revision,
        head.next()
    );
    let log = whole_log(&*a).await?;
    let revisions: Vec<u64> = log.iter().map(|s| s.revision.0).collect();
    assert_eq!(revisions, (1..=head.next().0).collect::<Vec<_>>());
    a.close().await;
    Ok(())
}

/// Four handles commit 25 writes each at once, re-planning after every
/// conflict: the changelog holds revisions 1..=100 without a hole, each
/// commit id once, at distinct revisions; a reader paging the changelog
/// all the while never sees a hole.
pub async fn concurrent_writers_keep_the_changelog_gapless(
    storage: &dyn SharedStorage,
) -> TestResult {
    const WRITERS: usize = 4;
    const EACH: usize = 25;
    let first = storage.open().await?;
    let mut handles = vec![first.clone()];
    for _ in 1..WRITERS {
        handles.push(storage.another(&first).await?);
    }
    let reader = {
        let store = storage.another(&first).await?;
        tokio::spawn(async move {
            let mut after = Revision(0);
            while after.0 < (WRITERS * EACH) as u64 {
                let page = store.changes_after(after, 7, usize::MAX).await?;
                if let Some(head) = page.first() {
                    assert_eq!(head.revision, after.next(), "the reader saw a hole");
                }
                for (i, set) in page.iter().enumerate() {
                    assert_eq!(set.revision.0, after.0 + 1 + i as u64);
                }
                match page.last() {
                    Some(last) => after = last.revision,
                    None => {
                        store.wait_beyond(after).await?;
                    }
                }
            }
            Ok::<_, StoreError>(after)
        })
    };
    let mut tasks = Vec::new();
    for (w, store) in handles.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..EACH {
                let id = CommitId::random();
                let change = Change::SubjectPut(subject(&format!("w{w}-{i}")));
                commit_retrying(&*store, id, write(Some("acme"), vec![change])).await?;
                ids.push(id);
            }
            Ok::<_, StoreError>(ids)
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.extend(task.await??);
    }
    assert_eq!(reader.await??, Revision((WRITERS * EACH) as u64));
    let log = whole_log(&*first).await?;
    let revisions: Vec<u64> = log.iter().map(|s| s.revision.0).collect();
    assert_eq!(revisions, (1..=(WRITERS * EACH) as u64).collect::<Vec<_>>());
    let mut found = std::collections::BTreeSet::new();
    for id in ids {
        let at = first.find_commit(id, Revision(0)).await?;
        assert!(
            at.is_some_and(|r| found.insert(r)),
            "commit id {id} at {at:?}"
        );
    }
    first.close().await;
    Ok(())
}

/// A wait on one handle ends with another handle's commit.
pub async fn a_commit_wakes_the_other_handles(storage: &dyn SharedStorage) -> TestResult {
    let a = storage.open().await?;
    let b = storage.another(&a).await?;
    fill(&*a).await?;
    let latest = b.revision().await?;
    let waiting = tokio::spawn(async move { b.wait_beyond(latest).await });
    a.commit(sample_writes().remove(0)).await?;
    assert_eq!(waiting.await??, latest.next());
    a.close().await;
    Ok(())
}

/// A commit whose outcome was lost is found by its id even though a rival
/// handle committed after it; one lost before its fsync is not found,
/// whatever the rival committed.
pub async fn an_uncertain_commit_is_found_beside_a_rival(
    storage: &dyn SharedStorage,
) -> TestResult {
    let first = storage.open().await?;
    let rival = storage.another(&first).await?;
    let a = Faulty::new(first.clone());
    fill(&*a).await?;
    for (fault, lands) in [(Fault::FailAfterCommit, true), (Fault::LoseCommit, false)] {
        let base = a.revision().await?;
        let id = CommitId::random();
        a.arm(fault);
        let change = Change::SubjectPut(subject(&format!("{fault:?}")));
        let err = a
            .commit_group(
                base,
                id,
                vec![write(Some("acme"), vec![change])],
                Vec::new(),
            )
            .await;
        a.heal();
        assert!(
            matches!(err, Err(StoreError::CommitUncertain(_))),
            "{err:?}"
        );
        commit_retrying(&*rival, CommitId::random(), sample_writes().remove(1)).await?;
        let found = a.find_commit(id, base).await?;
        assert_eq!(found.is_some(), lands, "{fault:?}: {found:?}");
        if lands {
            assert_eq!(found, Some(base.next()));
        }
    }
    first.close().await;
    Ok(())
}

/// One test per check of the suite for one backend: `conformance!(name,
/// storage)` makes a module `name` whose tests each run one check against a
/// fresh `storage` (an expression giving a [`Storage`]);
/// `conformance!(name, storage, several_writers)` adds the several-writers
/// category, for a [`SharedStorage`].
#[macro_export]
macro_rules! conformance {
    ($backend:ident, $storage:expr) => {
        mod $backend {
            #[allow(unused_imports, reason = "the storage expression may name the caller's items")]
            use super::*;

            $crate::conformance!(@every_backend $storage);
        }
    };
    ($backend:ident, $storage:expr, several_writers) => {
        mod $backend {
            #[allow(unused_imports, reason = "the storage expression may name the caller's items")]
            use super::*;

            $crate::conformance!(@every_backend $storage);
            $crate::conformance!(@checks $storage;
                writers_conflict_and_write_nothing,
                writers_to_other_tenants_do_not_conflict,
                concurrent_writers_keep_the_changelog_gapless,
                a_commit_wakes_the_other_handles,
                an_uncertain_commit_is_found_beside_a_rival,
            );
        }
    };
    (@every_backend $storage:expr) => {
        $crate::conformance!(@checks $storage;
            commit_atomicity,
            revision_order,
            changelog_paging,
            snapshot_consistency,
            prune,
            idempotency,
            audit_with_writes,
            crash_safety,
            reopen_equality,
            commit_ids_and_conflicts,
            waiting_for_commits,
        );
    };
    (@checks $storage:expr; $($check:ident),* $(,)?) => {
        $(
            /// The conformance suite's check of the same name.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() -> $crate::conformance::TestResult {
                let storage = $storage;
                tokio::time::timeout(
                    $crate::conformance::HANG,
                    $crate::conformance::$check(&storage),
                )
                .await?
            }
        )*
    };
}
