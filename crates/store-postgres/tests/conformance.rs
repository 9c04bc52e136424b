//! The `Datastore` conformance suite against a real PostgreSQL, with the
//! several-writers category (each handle is a node: a pool and a `LISTEN`
//! connection of its own), and the checks only a database server allows:
//! a `LISTEN` connection killed, a commit held open by another session
//! while a handle writes, an unrelated session idle in a transaction,
//! the start-up errors per cause.
//!
//! Each test runs on a database of its own on the server named by
//! `AUTHZD_TEST_POSTGRES_URL`; without it the tests skip with a notice
//! (and fail under `CI=true`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test: a failed setup is a failed test"
)]

use std::sync::Arc;
use std::time::Duration;

use authzd_core::model::{
    Change, ChangeSet, Revision, Subject, SubjectId, SubjectKind, SubjectStatus, TenantId,
    Timestamp,
};
use authzd_store::conformance::{SharedStorage, Storage, TestResult, write};
use authzd_store::{CommitId, CommitOutcome, Datastore, StoreError};
use authzd_store_postgres::{LISTEN_APPLICATION_NAME, Options, test_database};

/// A fresh database on the test server, created at the first open.
struct Pg {
    server: String,
    url: tokio::sync::OnceCell<String>,
    options: Options,
}

impl Pg {
    /// `None` (after a skip notice) without a test server.
    fn new() -> Option<Pg> {
        Some(Pg {
            server: test_database::server_url("PostgreSQL store tests")?,
            url: tokio::sync::OnceCell::new(),
            options: Options {
                poll_interval: Duration::from_millis(200),
                ..Options::default()
            },
        })
    }

    async fn url(&self) -> Result<&String, StoreError> {
        self.url
            .get_or_try_init(|| test_database::fresh(&self.server))
            .await
            .map_err(|e| StoreError::Unavailable(Box::new(e)))
    }

    /// Another node's handle, with its own options.
    async fn node(&self, options: Options) -> Result<Arc<dyn Datastore>, StoreError> {
        authzd_store_postgres::open(self.url().await?, options).await
    }

    /// A plain session on the test database, as another program would hold.
    async fn session(&self) -> tokio_postgres::Client {
        let url = self.url().await.unwrap();
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    }
}

#[async_trait::async_trait]
impl Storage for Pg {
    async fn open(&self) -> Result<Arc<dyn Datastore>, StoreError> {
        self.node(self.options.clone()).await
    }
}

#[async_trait::async_trait]
impl SharedStorage for Pg {
    /// A second node: its own pool and `LISTEN` connection.
    async fn another(&self, _first: &Arc<dyn Datastore>) -> Result<Arc<dyn Datastore>, StoreError> {
        self.open().await
    }
}

authzd_store::conformance!(
    postgres,
    match Pg::new() {
        Some(pg) => pg,
        None => return Ok(()),
    },
    several_writers
);

macro_rules! pg_or_skip {
    () => {
        match Pg::new() {
            Some(pg) => pg,
            None => return Ok(()),
        }
    };
}

fn subject(id: &str) -> Change {
    Change::SubjectPut(Subject {
        id: SubjectId::try_from(id).unwrap(),
        kind: SubjectKind::User,
        status: SubjectStatus::Active,
        attributes: Default::default(),
        home_scope: None,
    })
}

/// Waits (bounded) until `query` on `session` counts at least one row:
/// for a state of another session that cannot be awaited directly.
async fn until_counted(session: &tokio_postgres::Client, query: &str) {
    for _ in 0..400 {
        let n: i64 = session.query_one(query, &[]).await.unwrap().get(0);
        if n > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("never counted a row: {query}");
}

const LISTENERS: &str = "SELECT count(*) FROM pg_stat_activity \
    WHERE datname = current_database() AND application_name = 'authzd-listen'";

/// A node whose poll is an hour away wakes by its `LISTEN` connection
/// when another node commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_wakes_another_node() -> TestResult {
    let pg = pg_or_skip!();
    let a = pg.open().await?;
    let b = pg
        .node(Options {
            poll_interval: Duration::from_secs(3600),
            ..Options::default()
        })
        .await?;
    let session = pg.session().await;
    assert_eq!(LISTEN_APPLICATION_NAME, "authzd-listen");
    until_counted(&session, LISTENERS).await;
    for i in 0..5u64 {
        let waiting = tokio::spawn({
            let b = b.clone();
            async move { b.wait_beyond(Revision(i)).await }
        });
        a.commit(write(Some("acme"), vec![subject(&format!("s{i}"))]))
            .await?;
        assert_eq!(waiting.await??, Revision(i + 1));
    }
    a.close().await;
    b.close().await;
    Ok(())
}

/// Listening connections that have run their `LISTEN`.
const LISTENING: &str = "SELECT count(*) FROM pg_stat_activity \
    WHERE datname = current_database() AND application_name = 'authzd-listen' \
    AND query LIKE 'LISTEN%' HAVING count(*) >= 2";

/// A notification carries a small group's changelog entries, so another
/// node follows it without reading the changelog (it still does once the
/// rows are deleted); the entries of a group too large for a notification
/// are read from the changelog (deleted, they are gone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_carry_small_groups_entries() -> TestResult {
    let pg = pg_or_skip!();
    let a = pg.open().await?;
    let b = pg
        .node(Options {
            poll_interval: Duration::from_secs(3600),
            ..Options::default()
        })
        .await?;
    let session = pg.session().await;
    until_counted(&session, LISTENING).await;
    let writes = (0..3)
        .map(|i| write(Some("acme"), vec![subject(&format!("n{i}"))]))
        .collect();
    let sets: Vec<ChangeSet> = a
        .commit_group(Revision(0), CommitId::random(), writes, Vec::new())
        .await?
        .into_iter()
        .filter_map(|o| match o {
            CommitOutcome::Committed(set) => Some(set),
            CommitOutcome::Replayed(_) => None,
        })
        .collect();
    assert_eq!(sets.len(), 3);
    session.execute("DELETE FROM authzd_changelog", &[]).await?;
    assert!(matches!(
        b.changes_after(Revision(0), 10, usize::MAX).await,
        Err(StoreError::Pruned { .. })
    ));
    // The notification reaches b at a moment nothing shows: looked for
    // until it has (bounded).
    let mut followed = Vec::new();
    for _ in 0..400 {
        match b.followed_changes(Revision(0), 10, usize::MAX).await {
            Ok(found) => {
                followed = found;
                break;
            }
            Err(StoreError::Pruned { .. }) => tokio::time::sleep(Duration::from_millis(25)).await,
            Err(e) => return Err(e.into()),
        }
    }
    assert_eq!(followed, sets);
    assert_eq!(
        b.followed_changes(Revision(1), 1, usize::MAX).await?,
        sets[1..2]
    );

    // 200 subjects in one write: far beyond a notification's 8,000 bytes.
    let large = (0..200)
        .map(|i| subject(&format!("large-{i:04}")))
        .collect();
    let CommitOutcome::Committed(set) = a.commit(write(Some("acme"), large)).await? else {
        panic!("the large write was replayed");
    };
    assert_eq!(set.revision, Revision(4));
    assert_eq!(
        b.followed_changes(Revision(3), 10, usize::MAX).await?,
        [set]
    );
    session.execute("DELETE FROM authzd_changelog", &[]).await?;
    assert!(matches!(
        b.followed_changes(Revision(3), 10, usize::MAX).await,
        Err(StoreError::Pruned { .. })
    ));
    a.close().await;
    b.close().await;
    Ok(())
}

/// With its `LISTEN` connection killed (`pg_terminate_backend`), a node
/// still learns of another's commits by polling, and listens again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_wakes_a_node_whose_listen_connection_was_killed() -> TestResult {
    let pg = pg_or_skip!();
    let a = pg
        .node(Options {
            listen: false,
            ..Options::default()
        })
        .await?;
    let b = pg.open().await?;
    let session = pg.session().await;
    until_counted(&session, LISTENERS).await;
    session
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'authzd-listen'",
            &[],
        )
        .await?;
    let waiting = tokio::spawn({
        let b = b.clone();
        async move { b.wait_beyond(Revision(0)).await }
    });
    a.commit(write(Some("acme"), vec![subject("x")])).await?;
    assert_eq!(waiting.await??, Revision(1));
    until_counted(&session, LISTENERS).await;
    a.close().await;
    b.close().await;
    Ok(())
}

/// A node that does not listen (a database without `LISTEN`) follows by
/// polling alone, and sends no notifications.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_listen_follows_by_polling() -> TestResult {
    let pg = pg_or_skip!();
    let quiet = Options {
        listen: false,
        poll_interval: Duration::from_millis(100),
        ..Options::default()
    };
    let a = pg.node(quiet.clone()).await?;
    let b = pg.node(quiet).await?;
    let session = pg.session().await;
    for i in 0..3u64 {
        let waiting = tokio::spawn({
            let b = b.clone();
            async move { b.wait_beyond(Revision(i)).await }
        });
        a.commit(write(Some("acme"), vec![subject(&format!("p{i}"))]))
            .await?;
        assert_eq!(waiting.await??, Revision(i + 1));
    }
    let listeners: i64 = session.query_one(LISTENERS, &[]).await?.get(0);
    assert_eq!(listeners, 0);
    a.close().await;
    b.close().await;
    Ok(())
}

/// Another session holds a commit open between its counter update and
/// its `COMMIT` while a node writes: the node's group waits on the
/// counter row, readers see neither, and once the other commits, the
/// node's group is refused with a conflict and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_held_open_makes_a_rival_wait_then_conflict() -> TestResult {
    let pg = pg_or_skip!();
    let node = pg.open().await?;
    node.commit(write(Some("acme"), vec![subject("first")]))
        .await?;
    let mut holder = pg.session().await;
    let watcher = pg.session().await;
    let held = holder.transaction().await?;
    held.query_one(
        "SELECT revision FROM authzd_meta WHERE id = 1 FOR UPDATE",
        &[],
    )
    .await?;
    held.execute(
        "UPDATE authzd_meta SET revision = 2 WHERE id = 1 AND revision = 1",
        &[],
    )
    .await?;
    let set = ChangeSet {
        revision: Revision(2),
        tenant: Some(TenantId::try_from("acme")?),
        actor: None,
        committed_at: Timestamp(1),
        changes: vec![subject("held")],
        effects: Vec::new(),
    };
    held.execute(
        "INSERT INTO authzd_changelog (revision, body) VALUES (2, $1)",
        &[&serde_json::to_string(&set)?],
    )
    .await?;
    held.execute(
        "UPDATE authzd_tenant_heads SET revision = 2 WHERE tenant = 'acme'",
        &[],
    )
    .await?;
    let rival = tokio::spawn({
        let node = node.clone();
        async move {
            node.commit_group(
                Revision(1),
                CommitId::random(),
                vec![write(Some("acme"), vec![subject("rival")])],
                Vec::new(),
            )
            .await
        }
    });
    until_counted(
        &watcher,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND wait_event_type = 'Lock'",
    )
    .await;
    assert_eq!(
        node.revision().await?,
        Revision(1),
        "an uncommitted head was seen"
    );
    assert!(
        node.changes_after(Revision(1), 10, usize::MAX)
            .await?
            .is_empty()
    );
    held.commit().await?;
    let refused = rival.await?;
    assert!(
        matches!(
            refused,
            Err(StoreError::Conflict {
                base: Revision(1),
                head: Revision(2)
            })
        ),
        "{refused:?}"
    );
    let log = node.changes_after(Revision(0), 10, usize::MAX).await?;
    let revisions: Vec<u64> = log.iter().map(|s| s.revision.0).collect();
    assert_eq!(revisions, vec![1, 2]);
    assert_eq!(log[1], set, "the refused group wrote something");
    node.close().await;
    Ok(())
}

/// A reservation cannot be beaten: a writer of the reserved tenant on
/// another node waits for the reserving handle's commit, which lands on
/// the state the reservation read, and then conflicts; a writer of another
/// tenant passes by meanwhile. A reservation no commit used is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_makes_rivals_of_its_tenant_wait() -> TestResult {
    let pg = pg_or_skip!();
    let reserving = pg.open().await?;
    let rival = pg.open().await?;
    let watcher = pg.session().await;
    let acme = TenantId::try_from("acme")?;
    reserving
        .commit(write(Some("acme"), vec![subject("first")]))
        .await?;
    let head = reserving.reserve(&[Some(acme.clone())]).await?;
    assert_eq!(head, Revision(1));
    rival
        .commit(write(Some("other"), vec![subject("elsewhere")]))
        .await?;
    let rivalling = tokio::spawn({
        let rival = rival.clone();
        async move {
            rival
                .commit_group(
                    Revision(2),
                    CommitId::random(),
                    vec![write(Some("acme"), vec![subject("rival")])],
                    Vec::new(),
                )
                .await
        }
    });
    until_counted(
        &watcher,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND wait_event_type = 'Lock'",
    )
    .await;
    let landed = reserving
        .commit_group(
            head,
            CommitId::random(),
            vec![write(Some("acme"), vec![subject("reserved")])],
            Vec::new(),
        )
        .await?;
    assert!(
        matches!(&landed[..], [CommitOutcome::Committed(set)] if set.revision == Revision(3)),
        "{landed:?}"
    );
    let refused = rivalling.await?;
    assert!(
        matches!(
            refused,
            Err(StoreError::Conflict {
                base: Revision(2),
                head: Revision(3)
            })
        ),
        "{refused:?}"
    );
    reserving.reserve(&[Some(acme)]).await?;
    reserving.release().await;
    rival
        .commit(write(Some("acme"), vec![subject("after")]))
        .await?;
    let log = rival.changes_after(Revision(0), 10, usize::MAX).await?;
    let revisions: Vec<u64> = log.iter().map(|s| s.revision.0).collect();
    assert_eq!(revisions, vec![1, 2, 3, 4]);
    reserving.close().await;
    rival.close().await;
    Ok(())
}

/// A session idle in a transaction (holding a snapshot, not the counter
/// row) delays neither commits nor following.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_transaction_elsewhere_does_not_delay_following() -> TestResult {
    let pg = pg_or_skip!();
    let a = pg.open().await?;
    let b = pg.open().await?;
    let mut idle = pg.session().await;
    let txn = idle.transaction().await?;
    txn.query("SELECT count(*) FROM authzd_records", &[])
        .await?;
    let waiting = tokio::spawn({
        let b = b.clone();
        async move { b.wait_beyond(Revision(0)).await }
    });
    a.commit(write(Some("acme"), vec![subject("y")])).await?;
    assert_eq!(waiting.await??, Revision(1));
    assert_eq!(b.changes_after(Revision(0), 10, usize::MAX).await?.len(), 1);
    txn.rollback().await?;
    a.close().await;
    b.close().await;
    Ok(())
}

/// Each way start-up fails has its own error, and none shows a password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_errors_name_their_cause_without_the_password() -> TestResult {
    let pg = pg_or_skip!();
    let url = pg.url().await?.clone();
    let quick = Options {
        connect_timeout: Duration::from_secs(5),
        ..Options::default()
    };

    let (scheme, rest) = url.split_once("://").unwrap();
    let (_, host_and_db) = rest.split_once('@').unwrap();
    let wrong = format!("{scheme}://postgres:wrong-secret-pw@{host_and_db}");
    let err = authzd_store_postgres::open(&wrong, quick.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::AuthenticationFailed { .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains("wrong-secret-pw"), "{err}");
    assert!(!format!("{err:?}").contains("wrong-secret-pw"), "{err:?}");

    let missing = test_database::with_database(&url, "authzd_no_such_database");
    let err = authzd_store_postgres::open(&missing, quick.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::DatabaseMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("authzd_no_such_database"), "{err}");

    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.local_addr()?.port()
    };
    let nowhere = format!("postgres://postgres:pw-nowhere@127.0.0.1:{port}/x");
    let err = authzd_store_postgres::open(&nowhere, quick.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
    assert!(!err.to_string().contains("pw-nowhere"), "{err}");

    let node = pg.open().await?;
    node.close().await;
    pg.session()
        .await
        .execute(
            "INSERT INTO authzd_schema_version (version) VALUES (999)",
            &[],
        )
        .await?;
    let err = authzd_store_postgres::open(&url, quick).await.unwrap_err();
    assert!(
        matches!(err, StoreError::NewerSchema { found: 999, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("newer authzd"), "{err}");
    Ok(())
}

/// `migrate` reads a new database's version (0) without writing it, then
/// applies every migration once and nothing the second time; a node told
/// not to migrate refuses the database until it is up to date; a newer
/// version is refused by the check too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_checks_applies_once_and_a_node_may_require_it() -> TestResult {
    use authzd_store_postgres::Mode;
    let pg = pg_or_skip!();
    let url = pg.url().await?.clone();
    let options = Options::default();
    let checked = authzd_store_postgres::migrate(&url, &options, Mode::Check).await?;
    assert_eq!((checked.found, checked.applied.len()), (0, 0));
    assert!(checked.latest >= 1);
    let strict = Options {
        migrate: false,
        ..Options::default()
    };
    let err = authzd_store_postgres::open(&url, strict.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::OlderSchema { found: 0, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("authzd migrate"), "{err}");
    let applied = authzd_store_postgres::migrate(&url, &options, Mode::Apply).await?;
    assert_eq!(applied.found, 0);
    assert_eq!(applied.applied, (1..=applied.latest).collect::<Vec<_>>());
    let again = authzd_store_postgres::migrate(&url, &options, Mode::Apply).await?;
    assert_eq!((again.found, again.applied.len()), (again.latest, 0));
    authzd_store_postgres::open(&url, strict)
        .await?
        .close()
        .await;

    pg.session()
        .await
        .execute(
            "INSERT INTO authzd_schema_version (version) VALUES (999)",
            &[],
        )
        .await?;
    let err = authzd_store_postgres::migrate(&url, &options, Mode::Check)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NewerSchema { found: 999, .. }),
        "{err:?}"
    );
    Ok(())
}
