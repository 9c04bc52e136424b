//! The operations over a real service (a store in a temporary folder),
//! without an edge: what any edge gets from them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "unit tests: a failed expectation is a failed test"
)]

use super::access::{self, Check};
use super::directory::{self, AssignmentFilter};
use super::page::Page;
use super::{Call, PageRequest, UseCase, audit};
use crate::auth::{Callers, Kind, Limits, new_token};
use crate::config::Config;
use crate::{Error, Service, WriteOptions};
use authzd_core::engine::{Operation, Precondition};
use authzd_core::model::{
    Assignment, AssignmentKey, AuditOutcome, AuditQuery, Principal, Revision, Role, Subject,
    SubjectKind, SubjectStatus, Target, TenantSettings,
};

const ACME: &str = "acme";

/// A service over a new data folder (kept alive with it).
async fn service() -> (Service, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    (Service::open(config).await.unwrap(), dir)
}

/// A call of `use_case` by the trusted caller of a server without tokens
/// (an unbound administrator).
fn anyone(use_case: UseCase) -> Call {
    let caller = Callers::trust_all().anonymous();
    Call::new(caller, use_case.rule(), "test".into(), false)
}

/// A call of `use_case` by a token of `kind` bound to `tenant`.
fn bound(dir: &tempfile::TempDir, use_case: UseCase, kind: Kind, tenant: &str) -> Call {
    let token = new_token("bound", kind, Some(tenant)).unwrap();
    let file = dir.path().join("tokens.toml");
    std::fs::write(&file, &token.entry).unwrap();
    let callers = Callers::load(&file, Limits::default()).unwrap();
    let header = format!("Bearer {}", token.secret);
    let caller = callers.authenticate(Some(header.as_bytes())).unwrap();
    Call::new(caller, use_case.rule(), "test".into(), false)
}

fn subject(id: &str) -> Subject {
    Subject {
        id: id.parse().unwrap(),
        kind: SubjectKind::User,
        status: SubjectStatus::Active,
        attributes: Default::default(),
        home_scope: None,
    }
}

async fn create_subject(service: &Service, tenant: &str, id: &str) {
    let call = anyone(UseCase::CreateSubject);
    let options = WriteOptions::default();
    directory::create_subject(service, &call, tenant, subject(id), options)
        .await
        .unwrap();
}

async fn delete_subject(service: &Service, id: &str) {
    let call = anyone(UseCase::DeleteSubject);
    let options = WriteOptions::default();
    directory::delete_subject(service, &call, ACME, id.parse().unwrap(), options)
        .await
        .unwrap();
}

fn assignment(role: &str, subject: &str) -> Assignment {
    Assignment {
        key: AssignmentKey {
            role: role.parse().unwrap(),
            principal: Principal::Subject(subject.parse().unwrap()),
            target: Target::Scope("root".parse().unwrap()),
        },
        expires_at: None,
    }
}

async fn manage(service: &Service, operations: Vec<Operation>) {
    let call = anyone(UseCase::ManageMembership);
    let options = WriteOptions::default();
    super::membership::manage(service, &call, ACME, operations, options)
        .await
        .unwrap();
}

fn page(size: u32, token: &Option<String>) -> PageRequest {
    PageRequest {
        size,
        token: token.clone().unwrap_or_default(),
    }
}

async fn subjects_page(service: &Service, size: u32, token: &Option<String>) -> Page<String> {
    let call = anyone(UseCase::ListSubjects);
    let listed = directory::list_subjects(service, &call, ACME, &page(size, token), Revision(0))
        .await
        .unwrap();
    listed.value.map(|s| s.id.to_string())
}

fn is_foreign<T: std::fmt::Debug>(result: Result<T, Error>) -> bool {
    matches!(&result, Err(Error::InvalidArgument { field, .. }) if field == "page_token")
}

/// Subjects created and deleted between pages move nothing else: every
/// subject that exists throughout is listed exactly once, in id order,
/// and one created ahead of the cursor is listed too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_is_gapless_and_duplicate_free_under_writes() {
    let (service, _dir) = service().await;
    for i in 0..20 {
        create_subject(&service, ACME, &format!("s{i:02}")).await;
    }
    let mut seen = Vec::new();
    let mut token = None;
    let mut round = 0;
    loop {
        let page = subjects_page(&service, 4, &token).await;
        seen.extend(page.items.iter().cloned());
        let Some(next) = page.next else { break };
        token = Some(next);
        // Behind the cursor: one listed subject goes, one arrives before it.
        delete_subject(&service, &seen[round]).await;
        create_subject(&service, ACME, &format!("a{round:02}")).await;
        // Ahead of it: one goes, one arrives.
        delete_subject(&service, &format!("s{:02}", 19 - round)).await;
        create_subject(&service, ACME, &format!("t{round:02}")).await;
        round += 1;
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen, sorted, "out of order or repeated");
    let kept = (0..20)
        .map(|i| format!("s{i:02}"))
        .filter(|s| !(20 - round..20).contains(&s[1..].parse::<usize>().unwrap()));
    for s in kept {
        assert!(seen.contains(&s), "{s} was skipped");
    }
    assert!(
        seen.iter().all(|s| !s.starts_with('a')),
        "listed behind the cursor"
    );
    assert!(
        seen.contains(&"t00".to_string()),
        "missed one created ahead"
    );
}

/// Assignment pages continue after a key, not an offset: unassigning one
/// already listed does not make the next page skip one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assignment_pages_survive_an_unassignment() {
    let (service, _dir) = service().await;
    for s in ["a", "b", "c", "d", "e"] {
        create_subject(&service, ACME, s).await;
    }
    let assign = |s| Operation::AssignRole(assignment("viewer", s), Precondition::None);
    manage(&service, ["a", "b", "c", "d", "e"].map(assign).to_vec()).await;
    let call = anyone(UseCase::ListAssignments);
    let filter = AssignmentFilter {
        role: Some("viewer".parse().unwrap()),
        ..AssignmentFilter::default()
    };
    let list = |token: Option<String>| {
        let (service, call, filter) = (&service, &call, &filter);
        async move {
            directory::list_assignments(service, call, ACME, filter, &page(2, &token), Revision(0))
                .await
                .map(|l| l.value)
        }
    };
    let first = list(None).await.unwrap();
    let holders = |p: &Page<Assignment>| -> Vec<String> {
        p.items
            .iter()
            .map(|a| match &a.key.principal {
                Principal::Subject(s) => s.to_string(),
                Principal::Group(g) => g.to_string(),
            })
            .collect()
    };
    assert_eq!(holders(&first), ["a", "b"]);
    manage(
        &service,
        vec![Operation::UnassignRole(
            assignment("viewer", "a").key,
            Precondition::None,
        )],
    )
    .await;
    let second = list(first.next.clone()).await.unwrap();
    assert_eq!(holders(&second), ["c", "d"]);
    let third = list(second.next.clone()).await.unwrap();
    assert_eq!((holders(&third), third.next), (vec!["e".to_string()], None));
    // The same token under another filter is refused.
    let other = AssignmentFilter::default();
    let token = page(2, &first.next);
    let refused =
        directory::list_assignments(&service, &call, ACME, &other, &token, Revision(0)).await;
    assert!(is_foreign(refused));
}

/// A token is honoured only by the list and tenant that issued it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_another_list_or_tenant_are_refused() {
    let (service, _dir) = service().await;
    for s in ["a", "b", "c"] {
        create_subject(&service, ACME, s).await;
        create_subject(&service, "globex", s).await;
    }
    let token = subjects_page(&service, 1, &None).await.next;
    assert!(token.is_some());
    let call = anyone(UseCase::ListGroups);
    let groups = directory::list_groups(&service, &call, ACME, &page(1, &token), Revision(0)).await;
    assert!(is_foreign(groups));
    let call = anyone(UseCase::ListSubjects);
    let next = page(1, &token);
    let other = directory::list_subjects(&service, &call, "globex", &next, Revision(0)).await;
    assert!(is_foreign(other));
    let good = subjects_page(&service, 1, &token).await;
    assert_eq!(good.items, ["b"]);
}

/// Roles list builtin and custom roles in one id order, across pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_merge_builtin_and_custom_in_id_order() {
    let (service, _dir) = service().await;
    let call = anyone(UseCase::CreateRole);
    for id in ["aaa-custom", "folk", "zzz-custom"] {
        let role = Role {
            id: id.parse().unwrap(),
            title: id.into(),
            grants: Vec::new(),
            class: None,
            rank: 0,
            requires: Vec::new(),
            managed_by: None,
            grantable_by: None,
            self_removable: false,
        };
        let options = WriteOptions::default();
        directory::create_role(&service, &call, ACME, role, options)
            .await
            .unwrap();
    }
    let call = anyone(UseCase::ListRoles);
    let mut listed = Vec::new();
    let mut token = None;
    loop {
        let page = directory::list_roles(&service, &call, ACME, &page(2, &token), Revision(0))
            .await
            .unwrap()
            .value;
        listed.extend(
            page.items
                .iter()
                .map(|r| (r.role.id.to_string(), r.builtin)),
        );
        match page.next {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    let ids: Vec<&str> = listed.iter().map(|(id, _)| id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    assert!(listed.contains(&("aaa-custom".into(), false)));
    assert!(listed.contains(&("folk".into(), false)));
    assert!(listed.contains(&("viewer".into(), true)));
    assert_eq!(ids.last(), Some(&"zzz-custom"));
}

/// A tenant-bound token may not write to another tenant; the refusal is
/// in the audit trail, which that token sees only for its own tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_token_is_held_to_its_tenant() {
    let (service, dir) = service().await;
    let call = bound(&dir, UseCase::CreateSubject, Kind::Write, ACME);
    let options = WriteOptions {
        actor: None,
        ..WriteOptions::default()
    };
    let refused = directory::create_subject(&service, &call, "globex", subject("x"), options).await;
    assert!(matches!(refused, Err(Error::Caller(_))), "{refused:?}");
    let admin = anyone(UseCase::ListAuditEntries);
    let trail = audit::list_audit_entries(&service, &admin, AuditQuery::default(), &page(0, &None))
        .await
        .unwrap();
    assert!(
        trail
            .items
            .iter()
            .any(|e| matches!(e.outcome, AuditOutcome::Denied { .. })
                && e.origin.method == "DirectoryService/CreateSubject")
    );
    let reader = bound(&dir, UseCase::ListAuditEntries, Kind::Admin, ACME);
    let asked = AuditQuery {
        tenant: Some("globex".parse().unwrap()),
        ..AuditQuery::default()
    };
    let refused = audit::list_audit_entries(&service, &reader, asked, &page(0, &None)).await;
    assert!(matches!(refused, Err(Error::Caller(_))));
}

/// Questions are validated below the edge, naming the contract's fields
/// (in a batch, the item's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn questions_are_validated_naming_their_fields() {
    let (service, _dir) = service().await;
    let call = anyone(UseCase::CreateTenant);
    directory::create_tenant(
        &service,
        &call,
        ACME,
        TenantSettings::default(),
        WriteOptions::default(),
    )
    .await
    .unwrap();
    let call = anyone(UseCase::CheckAccess);
    let field = |result: Result<_, Error>| match result {
        Err(Error::InvalidArgument { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    let both = Check {
        subject: "alice".into(),
        permission: "document:read".into(),
        scope: "eu".into(),
        target_subject: "bob".into(),
    };
    let asked = access::check(&service, &call, ACME, &both, false, Revision(0)).await;
    assert_eq!(field(asked.map(|_| ())), "target_subject");
    let fine = Check {
        scope: String::new(),
        target_subject: String::new(),
        ..both.clone()
    };
    let unnamed = Check {
        subject: String::new(),
        ..fine.clone()
    };
    let call = anyone(UseCase::BatchCheckAccess);
    let batch = access::batch_check(&service, &call, ACME, &[fine, unnamed], Revision(0)).await;
    assert_eq!(field(batch.map(|_| ())), "checks[1].subject");
}

/// The query a token is bound to is the listing's, not its spelling: an
/// empty scope is the root, so a token of one serves the other; another
/// permission is another query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holder_tokens_bind_the_place_not_its_spelling() {
    let (service, _dir) = service().await;
    for s in ["a", "b", "c"] {
        create_subject(&service, ACME, s).await;
    }
    let assign = |s| Operation::AssignRole(assignment("viewer", s), Precondition::None);
    manage(&service, ["a", "b", "c"].map(assign).to_vec()).await;
    let call = anyone(UseCase::ListSubjectsWithPermission);
    let asked = |permission: &str, scope: &str| access::Holders {
        permission: permission.into(),
        scope: scope.into(),
        target_subject: String::new(),
    };
    let holders = |asked, token: &Option<String>| {
        let (service, call, request) = (&service, &call, page(1, token));
        async move { access::holders(service, call, ACME.into(), asked, &request, Revision(0)).await }
    };
    let first = holders(asked("document:read", ""), &None).await.unwrap();
    let token = first.value.next;
    let at_root = holders(asked("document:read", "root"), &token)
        .await
        .unwrap();
    let names: Vec<String> = at_root
        .value
        .items
        .iter()
        .map(|h| h.subject.clone())
        .collect();
    assert_eq!(names, ["b"]);
    assert!(is_foreign(
        holders(asked("document:edit", "root"), &token).await
    ));
}
