//! Roles compiled against the catalog: every grant closed under ladders and
//! `follows`, then masked by the role's class, once, so that evaluation only
//! tests bits; and the check that a custom role's definition names only
//! permissions the catalog declares.
//!
//! Must not look at assignments or subjects: a compiled role depends only on
//! the role's definition and the catalog.

use std::sync::Arc;

use crate::model::{Grant, Permission, Role, ScopeId};
use crate::schema::{Catalog, PermBit, PermSet};

/// A role ready for evaluation.
#[derive(Debug, Clone)]
pub struct CompiledRole {
    /// The definition it was compiled from.
    pub role: Arc<Role>,
    /// Whether it comes from the schema (read-only through the API).
    pub builtin: bool,
    /// What holds at the assignment's own target: the closure of every
    /// unpinned grant, minus the class mask.
    pub at_target: PermSet,
    /// Pinned grants: what holds at each named scope, sorted by scope and
    /// merged per scope. Counts only where the scope is at or below the
    /// assignment's scope.
    pub pinned: Vec<(ScopeId, PermSet)>,
    /// Prerequisites: the role counts for a subject only while the subject
    /// holds each of these at or below the assignment's scope.
    pub requires: Vec<PermBit>,
}

/// Why a role definition cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPermission(pub Permission);

impl CompiledRole {
    /// Compiles `role` against `catalog`. Fails on the first grant naming a
    /// permission the catalog does not have.
    pub fn compile(
        catalog: &Catalog,
        role: Arc<Role>,
        builtin: bool,
    ) -> Result<Self, UnknownPermission> {
        let mask = role
            .class
            .as_deref()
            .and_then(|c| catalog.role_class(c))
            .map(|c| &c.cannot_grant);
        let mut at_target = PermSet::empty(catalog.len());
        let mut pinned: Vec<(ScopeId, PermSet)> = Vec::new();
        for Grant { permission, scopes } in &role.grants {
            let mut set = catalog
                .grant_set(permission)
                .ok_or_else(|| UnknownPermission(permission.clone()))?;
            if let Some(mask) = mask {
                set.subtract(mask);
            }
            if scopes.is_empty() {
                at_target.union_with(&set);
            }
            for scope in scopes {
                match pinned.binary_search_by(|(s, _)| s.cmp(scope)) {
                    #[expect(
                        clippy::indexing_slicing,
                        reason = "binary_search's Ok(i) is the index of an element of pinned"
                    )]
                    Ok(i) => pinned[i].1.union_with(&set),
                    Err(i) => pinned.insert(i, (scope.clone(), set.clone())),
                }
            }
        }
        let requires = role
            .requires
            .iter()
            .map(|p| catalog.bit(p).ok_or_else(|| UnknownPermission(p.clone())))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            role,
            builtin,
            at_target,
            pinned,
            requires,
        })
    }

    /// The role's class mask, if its class exists in `catalog`.
    pub fn class_mask<'c>(&self, catalog: &'c Catalog) -> Option<&'c PermSet> {
        self.role
            .class
            .as_deref()
            .and_then(|c| catalog.role_class(c))
            .map(|c| &c.cannot_grant)
    }
}

/// Every permission a role's definition names, for validating a custom role
/// before it is stored.
pub fn unknown_permissions(catalog: &Catalog, role: &Role) -> Vec<Permission> {
    role.grants
        .iter()
        .map(|g| &g.permission)
        .chain(&role.requires)
        .chain(&role.managed_by)
        .chain(&role.grantable_by)
        .filter(|p| catalog.grant_set(p).is_none())
        .cloned()
        .collect()
}
