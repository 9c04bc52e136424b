//! Access questions: one check (explained on request), a batch of checks,
//! a subject's effective permissions, and who holds a permission. Each
//! admits the caller to the tenant, validates the question as asked
//! (errors name the contract's fields: `subject`, `permission`, `scope`,
//! `target_subject`, `checks[i].…`), then asks a snapshot of the compiled
//! cache at the revision the caller needs.
//!
//! The plain check allocates nothing of its own: it borrows the question
//! and validates ids in place. Must not evaluate anything itself: what a
//! check answers is the engine's.

use super::page::{Cursor, Listing, Page, PageRequest, Pager};
use super::{Call, Stamped, UseCase};
use crate::{Error, Service};
use authzd_core::engine::{Explanation, Holder, PlaceRef, Question, TargetHoldings};
use authzd_core::limits::MAX_BATCH_CHECKS;
use authzd_core::model::{ROOT_SCOPE, Revision};

/// One check as the caller asked it: nothing checked yet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Check {
    /// The acting subject's id.
    pub subject: String,
    /// The permission (`type:level`, `type:action`, a derived name).
    pub permission: String,
    /// The scope; empty means the tenant root, unless `target_subject` is
    /// given.
    pub scope: String,
    /// The subject the check is about (its home scope and populations);
    /// empty when the check is at a scope.
    pub target_subject: String,
}

/// The answer to one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Whether the subject holds the permission there.
    pub allowed: bool,
    /// Why, when asked for.
    pub explanation: Option<Explanation>,
}

/// Who holds a permission where, as the caller asked it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holders {
    /// The permission.
    pub permission: String,
    /// The scope; empty means the tenant root, unless `target_subject` is
    /// given.
    pub scope: String,
    /// The subject whose home scope and populations are the place.
    pub target_subject: String,
}

fn invalid(field: &str, reason: impl ToString) -> Error {
    Error::InvalidArgument {
        field: field.to_string(),
        reason: reason.to_string(),
    }
}

fn nonempty<'a>(field: &str, value: &'a str) -> Result<&'a str, Error> {
    if value.is_empty() {
        Err(invalid(field, "must not be empty"))
    } else {
        Ok(value)
    }
}

/// A well-formed id, checked without allocating unless it is refused (the
/// check path's budget).
fn valid_id<'a>(field: &str, value: &'a str) -> Result<&'a str, Error> {
    authzd_core::model::check_id(field, value).map_err(|e| invalid(field, e))?;
    Ok(value)
}

/// An optional id: empty, or well-formed.
fn optional_id<'a>(field: &str, value: &'a str) -> Result<&'a str, Error> {
    if value.is_empty() {
        Ok(value)
    } else {
        valid_id(field, value)
    }
}

/// The place a question names: a scope, or a target subject, not both.
fn place<'a>(scope: &'a str, target_subject: &'a str) -> Result<PlaceRef<'a>, Error> {
    let scope = optional_id("scope", scope)?;
    let target_subject = optional_id("target_subject", target_subject)?;
    match (scope.is_empty(), target_subject.is_empty()) {
        (_, true) => Ok(PlaceRef::Scope(scope)),
        (true, false) => Ok(PlaceRef::Subject(target_subject)),
        (false, false) => Err(invalid(
            "target_subject",
            "give either scope or target_subject, not both",
        )),
    }
}

impl Check {
    /// The checked question.
    fn question(&self) -> Result<Question<'_>, Error> {
        Ok(Question {
            subject: valid_id("subject", &self.subject)?,
            permission: nonempty("permission", &self.permission)?,
            at: place(&self.scope, &self.target_subject)?,
        })
    }
}

/// Locates a refused field inside `checks[i]`.
fn in_item(i: usize, e: Error) -> Error {
    match e {
        Error::InvalidArgument { field, reason } => Error::InvalidArgument {
            field: format!("checks[{i}].{field}"),
            reason,
        },
        other => other,
    }
}

/// Whether the subject holds the permission at the place, at a revision
/// at least `at_least`; with `explain`, with the path or the reasons.
pub async fn check(
    service: &Service,
    call: &Call,
    tenant: &str,
    asked: &Check,
    explain: bool,
    at_least: Revision,
) -> Result<Stamped<Answer>, Error> {
    call.admit(service, tenant)?;
    let tenant = valid_id("tenant", tenant)?;
    let question = asked.question()?;
    let snapshot = service.snapshot_at(at_least).await?;
    let now = service.now();
    let revision = snapshot.revision;
    if !explain {
        let allowed = snapshot.check(tenant, &question, now)?;
        return Ok(Stamped {
            value: Answer {
                allowed,
                explanation: None,
            },
            revision,
        });
    }
    // Explaining walks every source of the subject's grants: off the async
    // workers, unlike the plain check, which is a few lookups.
    let (tenant, asked) = (tenant.to_string(), asked.clone());
    let (allowed, explanation) = service
        .off_runtime(move || -> Result<_, Error> {
            Ok(snapshot.explain(&tenant, &asked.question()?, now)?)
        })
        .await??;
    Ok(Stamped {
        value: Answer {
            allowed,
            explanation: Some(explanation),
        },
        revision,
    })
}

/// Many checks at one revision, answered in order; the first refused
/// check fails the batch, naming it.
pub async fn batch_check(
    service: &Service,
    call: &Call,
    tenant: &str,
    checks: &[Check],
    at_least: Revision,
) -> Result<Stamped<Vec<bool>>, Error> {
    call.admit(service, tenant)?;
    let tenant = valid_id("tenant", tenant)?;
    if checks.len() > MAX_BATCH_CHECKS {
        return Err(invalid(
            "checks",
            format!("at most {MAX_BATCH_CHECKS} checks per call"),
        ));
    }
    let snapshot = service.snapshot_at(at_least).await?;
    let now = service.now();
    // The tenant is found once for the whole batch; an unknown tenant
    // still refuses the first well-formed check, as a check of its own
    // would be refused.
    let state = snapshot.tenant(tenant);
    let mut answers = Vec::with_capacity(checks.len());
    for (i, c) in checks.iter().enumerate() {
        let question = c.question().map_err(|e| in_item(i, e))?;
        let allowed = state
            .clone()
            .and_then(|state| snapshot.check_in(state, &question, now))
            .map_err(|error| Error::Refused {
                list: "checks",
                index: i,
                error,
            })?;
        answers.push(allowed);
    }
    Ok(Stamped {
        value: answers,
        revision: snapshot.revision,
    })
}

/// What `subject` holds, per target: at `scope` if given (empty: at every
/// scope and population where one of its roles applies).
pub async fn effective_permissions(
    service: &Service,
    call: &Call,
    tenant: String,
    subject: String,
    scope: String,
    at_least: Revision,
) -> Result<Stamped<Vec<TargetHoldings>>, Error> {
    call.admit(service, &tenant)?;
    valid_id("tenant", &tenant)?;
    valid_id("subject", &subject)?;
    let snapshot = service.snapshot_at(at_least).await?;
    let now = service.now();
    let revision = snapshot.revision;
    // A subject in many groups has many sources to collect: off the async
    // workers, so checks keep their latency meanwhile.
    let targets = service
        .off_runtime(move || {
            let scope = (!scope.is_empty()).then_some(scope.as_str());
            snapshot.effective_permissions(&tenant, &subject, scope, now)
        })
        .await??;
    Ok(Stamped {
        value: targets,
        revision,
    })
}

/// Who holds a permission at a place, in subject id order, a page at a
/// time.
pub async fn holders(
    service: &Service,
    call: &Call,
    tenant: String,
    asked: Holders,
    page: &PageRequest,
    at_least: Revision,
) -> Result<Stamped<Page<Holder>>, Error> {
    call.admit(service, &tenant)?;
    valid_id("tenant", &tenant)?;
    nonempty("permission", &asked.permission)?;
    // The place as the listing sees it: an empty scope is the root.
    let (scope, target_subject) = match place(&asked.scope, &asked.target_subject)? {
        PlaceRef::Scope("") => (Some(ROOT_SCOPE), None),
        PlaceRef::Scope(scope) => (Some(scope), None),
        PlaceRef::Subject(subject) => (None, Some(subject)),
    };
    let listing = Listing::new(UseCase::ListSubjectsWithPermission, Some(&tenant))
        .filter("permission", Some(&asked.permission))
        .filter("scope", scope)
        .filter("target_subject", target_subject);
    let pager = Pager::new(listing, page)?;
    let snapshot = service.snapshot_at(at_least).await?;
    let now = service.now();
    let revision = snapshot.revision;
    // Finding holders can visit every subject of the tenant: off the async
    // workers, so checks keep their latency meanwhile.
    let page = service
        .off_runtime(move || -> Result<_, Error> {
            let at = place(&asked.scope, &asked.target_subject)?;
            let after = pager.after().map(Cursor::as_id).transpose()?;
            let (holders, next) =
                snapshot.holders(&tenant, &asked.permission, at, after, pager.size(), now)?;
            Ok(pager.ending(holders, next.as_deref().map(Cursor::id)))
        })
        .await??;
    Ok(Stamped {
        value: page,
        revision,
    })
}
