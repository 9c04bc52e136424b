//! A subject's memoised grants: for each scope where one of its roles
//! applies, the permission bits that hold there, already closed under ladders
//! and `follows` and masked by role classes.
//!
//! This is the structure the check path reads, so it is laid out for lookups
//! without allocation: entries sorted by scope, a binary search per scope on
//! the target's ancestor chain. Must not know where the grants came from
//! (that is the explain path's job, which walks the directory instead).

use crate::model::{GroupId, ScopeId, Timestamp};
use crate::schema::{PermBit, PermSet};

/// What one or more assignments give at one place.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GrantEntry<K> {
    /// The scope (or population group) it holds at.
    pub at: K,
    /// The permissions.
    pub perms: PermSet,
    /// When it stops counting; `None` for never. Entries with the same place
    /// and expiry are merged.
    pub expires_at: Option<Timestamp>,
}

impl GrantEntry<ScopeId> {
    /// An entry at a scope.
    pub fn new(at: ScopeId, perms: PermSet, expires_at: Option<Timestamp>) -> Self {
        Self {
            at,
            perms,
            expires_at,
        }
    }
}

impl GrantEntry<GroupId> {
    /// An entry over a population.
    pub fn new_population(at: GroupId, perms: PermSet, expires_at: Option<Timestamp>) -> Self {
        Self {
            at,
            perms,
            expires_at,
        }
    }
}

impl<K> GrantEntry<K> {
    fn live(&self, now: Timestamp) -> bool {
        self.expires_at.is_none_or(|t| now < t)
    }
}

/// Everything a subject's roles give it. Equal when they give the same:
/// the scope numbers, which depend on the order the tenant's scopes were
/// created in, do not count.
#[derive(Debug, Clone, Default)]
pub struct SubjectGrants {
    /// Every group the subject is in, directly or nested; sorted.
    pub groups: Vec<GroupId>,
    /// Grants at scopes; sorted by scope, then expiry.
    pub scopes: Vec<GrantEntry<ScopeId>>,
    /// The number the tenant gave each entry's scope, `scopes[i]`'s at
    /// `i` (see [`super::TenantState::scope_number`]): what the check
    /// compares with the place's numbered ancestor chain, integers where
    /// comparing ids would compare text.
    pub scope_numbers: Vec<u32>,
    /// Grants over populations; sorted by group, then expiry.
    pub populations: Vec<GrantEntry<GroupId>>,
}

impl PartialEq for SubjectGrants {
    fn eq(&self, other: &Self) -> bool {
        (&self.groups, &self.scopes, &self.populations)
            == (&other.groups, &other.scopes, &other.populations)
    }
}

impl Eq for SubjectGrants {}

fn merge<K: Ord + Clone>(mut entries: Vec<GrantEntry<K>>) -> Vec<GrantEntry<K>> {
    entries.sort_by(|a, b| (&a.at, a.expires_at).cmp(&(&b.at, b.expires_at)));
    let mut out: Vec<GrantEntry<K>> = Vec::with_capacity(entries.len());
    for e in entries {
        match out.last_mut() {
            Some(last) if last.at == e.at && last.expires_at == e.expires_at => {
                last.perms.union_with(&e.perms)
            }
            _ => out.push(e),
        }
    }
    out.retain(|e| !e.perms.is_empty());
    out
}

fn entries_at<'a, K: Ord + std::borrow::Borrow<str>>(
    entries: &'a [GrantEntry<K>],
    at: &str,
) -> &'a [GrantEntry<K>] {
    let start = entries.partition_point(|e| e.at.borrow() < at);
    #[expect(
        clippy::indexing_slicing,
        reason = "partition_point is at most its slice's length, so start <= end <= entries.len(); on the check path"
    )]
    let end = start + entries[start..].partition_point(|e| e.at.borrow() == at);
    #[expect(
        clippy::indexing_slicing,
        reason = "start <= end <= entries.len(), as above"
    )]
    &entries[start..end]
}

impl SubjectGrants {
    /// Builds the sorted, merged form; `number` gives a scope's number.
    pub fn build(
        mut groups: Vec<GroupId>,
        scopes: Vec<GrantEntry<ScopeId>>,
        populations: Vec<GrantEntry<GroupId>>,
        number: impl Fn(&ScopeId) -> u32,
    ) -> Self {
        groups.sort();
        groups.dedup();
        let scopes = merge(scopes);
        Self {
            groups,
            scope_numbers: scopes.iter().map(|e| number(&e.at)).collect(),
            scopes,
            populations: merge(populations),
        }
    }

    /// Whether the subject is in `group` (directly or nested).
    pub fn in_group(&self, group: &str) -> bool {
        self.groups
            .binary_search_by(|g| g.as_str().cmp(group))
            .is_ok()
    }

    /// Whether a live grant holding `bit` is at the place (counted when
    /// `exact`, or when `bit` `inherits`) or at one of its ancestors (when
    /// `bit` `inherits`); `chain` is the numbers of the place's scope and
    /// its ancestors, itself first. The check path: the subject's few
    /// entries against a short slice of integers, without a lookup per
    /// level or a comparison of ids.
    pub fn holds_on_chain(
        &self,
        chain: &[u32],
        bit: PermBit,
        inherits: bool,
        exact: bool,
        now: Timestamp,
    ) -> bool {
        let Some((&here, ancestors)) = chain.split_first() else {
            return false;
        };
        // The numbers first: they are one small array, and most entries
        // are at scopes off the chain, whose grant need not be read.
        self.scope_numbers
            .iter()
            .zip(&self.scopes)
            .any(|(&number, e)| {
                (if number == here {
                    exact || inherits
                } else {
                    inherits && ancestors.contains(&number)
                }) && e.perms.contains(bit)
                    && e.live(now)
            })
    }

    /// Whether a live grant over population `group` holds `bit`.
    pub fn holds_over(&self, group: &str, bit: PermBit, now: Timestamp) -> bool {
        entries_at(&self.populations, group)
            .iter()
            .any(|e| e.live(now) && e.perms.contains(bit))
    }

    /// Adds what live grants at exactly `scope` give to `out`, only the bits
    /// of `mask` when one is given.
    pub fn gather_at(
        &self,
        scope: &str,
        now: Timestamp,
        mask: Option<&PermSet>,
        out: &mut PermSet,
    ) {
        for e in entries_at(&self.scopes, scope)
            .iter()
            .filter(|e| e.live(now))
        {
            match mask {
                Some(mask) => out.union_masked(&e.perms, mask),
                None => out.union_with(&e.perms),
            }
        }
    }

    /// Adds what live grants over the populations `target` is in give to
    /// `out`.
    pub fn gather_over(&self, target: &SubjectGrants, now: Timestamp, out: &mut PermSet) {
        for e in &self.populations {
            if e.live(now) && target.in_group(e.at.as_str()) {
                out.union_with(&e.perms);
            }
        }
    }

    /// Whether the subject has any grant at all (live or not).
    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty() && self.populations.is_empty()
    }
}
