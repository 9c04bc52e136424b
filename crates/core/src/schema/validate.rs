//! Stage two: [`RawSchema`] → [`ValidSchema`], where every name is a checked
//! model type, every reference resolves, and the `follows` and derived
//! permission graphs are acyclic.
//!
//! This stage owns the *meaning* of the file and reports every problem it
//! finds, each at the line and key of the offending value, instead of
//! stopping at the first. It must not build bitsets or closures (that is
//! [`super::compile`]'s job): its output is plain model values.
//!
//! To keep one mistake from producing a cascade of errors, a resource type
//! whose verbs could not be read (already reported) is "unsure": references
//! into it are neither accepted nor reported.

use crate::limits::{MAX_GRANTS, MAX_PERMISSIONS};
use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::model::{Grant, Name, Permission, Quoted, Role, RoleId, check_text};

use super::graph::{Adjacency, components, describe_cycle, is_cycle, member_of, shortest_cycle};
use super::parse::{
    Field, Item, Position, RawClass, RawDerived, RawResource, RawRole, RawSchema, Unreadable,
};
use super::{Cardinality, Diagnostics, PermissionPattern, RuleKind};

/// A schema whose every name and reference has been checked.
#[derive(Debug)]
pub(crate) struct ValidSchema {
    /// In name order.
    pub resources: Vec<ValidResource>,
    /// In dependency order: a derived permission comes after every derived
    /// permission among its terms.
    pub derived: Vec<ValidDerived>,
    pub classes: Vec<ValidClass>,
    pub roles: Vec<Role>,
    /// Where each role's `requires` is written, for reporting circular
    /// prerequisites once closures are known.
    pub requires_at: BTreeMap<RoleId, Position>,
}

#[derive(Debug)]
pub(crate) struct ValidResource {
    pub name: Name,
    /// Distinct, non-empty; for a ladder, lowest first.
    pub verbs: Vec<Name>,
    /// Whether `verbs` is an ordered ladder (levels) rather than actions.
    pub ladder: bool,
    /// Declared types, each defining a subset of this type's verbs.
    pub follows: Vec<Name>,
    pub inherit: bool,
}

#[derive(Debug)]
pub(crate) struct ValidDerived {
    pub resource: Name,
    pub verb: Name,
    pub kind: RuleKind,
    /// Known, specific, distinct, non-empty.
    pub terms: Vec<Permission>,
}

#[derive(Debug)]
pub(crate) struct ValidClass {
    pub name: String,
    pub per_subject: Cardinality,
    /// Each names declared types and permissions only.
    pub patterns: Vec<PermissionPattern>,
}

/// What validation knows about a declared resource type.
struct TypeInfo {
    /// `None` when the type's verbs could not be read: references into it
    /// are then not judged.
    verbs: Option<BTreeSet<String>>,
    ladder: bool,
}

/// A directed graph over names, each edge remembering where it was written.
pub(crate) type Graph = BTreeMap<String, Vec<(String, Position)>>;

/// Validates `raw`, reporting into `out`. Returns `None` if anything was
/// reported, by this stage or an earlier one.
pub(crate) fn validate(raw: &RawSchema, out: &mut Diagnostics) -> Option<ValidSchema> {
    let mut v = Validator {
        out,
        unreadable: &raw.unreadable,
        types: BTreeMap::new(),
        derived: BTreeSet::new(),
        classes: BTreeSet::new(),
    };
    let mut resources: Vec<ValidResource> =
        raw.resources.iter().filter_map(|r| v.resource(r)).collect();
    let follows = v.follows(&raw.resources);
    for resource in &mut resources {
        if let Some(edges) = follows.get(resource.name.as_str()) {
            resource.follows = edges.iter().filter_map(|(to, _)| to.parse().ok()).collect();
        }
    }
    v.follows_cycles(&follows);

    for d in &raw.permissions {
        v.derived_name(d);
    }
    let mut rules = BTreeMap::new();
    let mut uses = Graph::new();
    for d in &raw.permissions {
        if let Some(rule) = v.derived_rule(d, &mut uses) {
            rules.insert(d.name.value.clone(), rule);
        }
    }
    let (order, knots) = walk(&uses, "derived permissions");
    for knot in knots {
        v.report(&knot.at, format!("derived permission cycle: {}", knot.text));
    }
    v.check_count(raw);
    // `walk` lists only names that take part in the graph, terms before
    // users; the rest can go anywhere, and name order keeps bits stable.
    let mut derived = Vec::with_capacity(rules.len());
    for name in &order {
        if let Some(rule) = rules.remove(name) {
            derived.push(rule);
        }
    }
    derived.extend(rules.into_values());

    let classes: Vec<ValidClass> = raw.role_classes.iter().filter_map(|c| v.class(c)).collect();
    let roles: Vec<Role> = raw.roles.iter().filter_map(|r| v.role(r)).collect();
    let requires_at = raw
        .roles
        .iter()
        .filter_map(|r| {
            let id = RoleId::try_from(r.name.value.as_str()).ok()?;
            Some((id, r.requires.given()?.at.clone()))
        })
        .collect();

    if !v.out.is_empty() {
        return None;
    }
    Some(ValidSchema {
        resources,
        derived,
        classes,
        roles,
        requires_at,
    })
}

struct Validator<'o> {
    out: &'o mut Diagnostics,
    unreadable: &'o Unreadable,
    /// Every declared resource type by its name as written, valid or not,
    /// so that a bad declaration is reported once rather than at every use.
    types: BTreeMap<String, TypeInfo>,
    /// Every derived permission name as written that parsed as `type:name`.
    derived: BTreeSet<String>,
    /// Every declared role class name as written.
    classes: BTreeSet<String>,
}

impl Validator<'_> {
    fn report(&mut self, at: &Position, message: impl Into<String>) {
        self.out.push(at.line, &at.key, message);
    }

    fn name(&mut self, item: &Item<String>, what: &str) -> Option<Name> {
        match item.value.parse::<Name>() {
            Ok(name) => Some(name),
            Err(e) => {
                self.report(&item.at, format!("invalid {what}: {e}"));
                None
            }
        }
    }

    fn resource(&mut self, r: &RawResource) -> Option<ValidResource> {
        let name = self.name(&r.name, "resource type name");
        let mut readable = !r.levels.is_invalid() && !r.actions.is_invalid();
        let list = match (r.levels.given(), r.actions.given()) {
            (Some(levels), None) => Some((levels, true)),
            (None, Some(actions)) => Some((actions, false)),
            (Some(_), Some(_)) => {
                self.report(
                    &r.name.at,
                    "declares both levels and actions; a type has either an ordered ladder of levels or unordered actions",
                );
                readable = false;
                None
            }
            (None, None) => {
                if readable {
                    self.report(&r.name.at, "declares neither levels nor actions");
                }
                readable = false;
                None
            }
        };
        let mut verbs = Vec::new();
        let mut names = BTreeSet::new();
        let mut ladder = false;
        if let Some((list, is_ladder)) = list {
            ladder = is_ladder;
            let what = if ladder { "level" } else { "action" };
            if list.value.is_empty() {
                self.report(&list.at, format!("a type needs at least one {what}"));
            }
            for verb in &list.value {
                if !names.insert(verb.value.clone()) {
                    self.report(
                        &verb.at,
                        format!("{what} {} is listed twice", Quoted(&verb.value)),
                    );
                    continue;
                }
                if let Some(parsed) = self.name(verb, &format!("{what} name")) {
                    verbs.push(parsed);
                }
            }
        }
        self.types.insert(
            r.name.value.clone(),
            TypeInfo {
                verbs: readable.then_some(names),
                ladder,
            },
        );
        Some(ValidResource {
            name: name?,
            verbs,
            ladder,
            follows: Vec::new(),
            inherit: r.inherit.given().is_none_or(|i| i.value),
        })
    }

    /// Checks every `follows` entry; returns the graph of the valid ones.
    fn follows(&mut self, resources: &[RawResource]) -> Graph {
        let mut graph = Graph::new();
        for r in resources {
            let Some(list) = r.follows.given() else {
                continue;
            };
            let follower = &r.name.value;
            let mut seen = BTreeSet::new();
            for entry in &list.value {
                let leader = &entry.value;
                if !seen.insert(leader.clone()) {
                    self.report(&entry.at, format!("{} is listed twice", Quoted(leader)));
                    continue;
                }
                let Some(info) = self.types.get(leader) else {
                    let hint = self
                        .out
                        .suggest(leader, self.types.keys().map(String::as_str));
                    self.report(
                        &entry.at,
                        format!("unknown resource type {}{hint}", Quoted(leader)),
                    );
                    continue;
                };
                let mine = self.types.get(follower).and_then(|i| i.verbs.as_ref());
                if let (Some(theirs), Some(mine)) = (&info.verbs, mine) {
                    let missing: Vec<String> = theirs
                        .iter()
                        .filter(|v| !mine.contains(*v))
                        .map(|v| Quoted(v).to_string())
                        .collect();
                    if !missing.is_empty() {
                        self.report(
                            &entry.at,
                            format!(
                                "{} cannot follow {}: it lacks {}; a follower must define every verb of the type it follows",
                                Quoted(follower),
                                Quoted(leader),
                                missing.join(", ")
                            ),
                        );
                    }
                }
                graph
                    .entry(follower.clone())
                    .or_default()
                    .push((leader.clone(), entry.at.clone()));
            }
        }
        graph
    }

    fn follows_cycles(&mut self, graph: &Graph) {
        for knot in walk(graph, "types").1 {
            self.report(&knot.at, format!("follows cycle: {}", knot.text));
        }
    }

    /// Whether `p` names a declared permission: `Ok` if so, `Err(None)` if
    /// that cannot be told (the type is unreadable, already reported), and
    /// `Err(Some(why))` if not.
    fn known(&mut self, p: &Permission) -> Result<(), Option<String>> {
        let Permission::Specific { resource, verb } = p else {
            return Ok(());
        };
        let text = p.to_string();
        if self.derived.contains(&text) {
            return Ok(());
        }
        let Some(info) = self.types.get(resource.as_str()) else {
            if self.unreadable.resources {
                return Err(None);
            }
            let hint = self
                .out
                .suggest(resource.as_str(), self.types.keys().map(String::as_str));
            return Err(Some(format!(
                "unknown permission {}: no resource type {}{hint}",
                Quoted(&text),
                Quoted(resource.as_str())
            )));
        };
        let Some(verbs) = &info.verbs else {
            return Err(None);
        };
        if verbs.contains(verb.as_str()) {
            return Ok(());
        }
        if self.unreadable.permissions {
            return Err(None);
        }
        let kind = if info.ladder { "level" } else { "action" };
        let hint = if self.out.can_suggest() {
            let candidates = verbs
                .iter()
                .map(|v| format!("{resource}:{v}"))
                // Every "type:name" sorts between "type:" and "type;".
                .chain(
                    self.derived
                        .range(format!("{resource}:")..format!("{resource};"))
                        .cloned(),
                )
                .collect::<Vec<_>>();
            self.out
                .suggest(&text, candidates.iter().map(String::as_str))
        } else {
            String::new()
        };
        Err(Some(format!(
            "unknown permission {}: {} has no {kind} or derived permission {}{hint}",
            Quoted(&text),
            Quoted(resource.as_str()),
            Quoted(verb.as_str())
        )))
    }

    /// Checks a reference to a permission; `*` only if `allow_all`.
    fn permission(&mut self, item: &Item<String>, allow_all: bool) -> Option<Permission> {
        let p = match item.value.parse::<Permission>() {
            Ok(p) => p,
            Err(e) => {
                self.report(&item.at, e.reason);
                return None;
            }
        };
        if p == Permission::All && !allow_all {
            self.report(
                &item.at,
                "\"*\" is not allowed here; name a specific permission",
            );
            return None;
        }
        match self.known(&p) {
            Ok(()) => Some(p),
            Err(Some(why)) => {
                self.report(&item.at, why);
                None
            }
            Err(None) => None,
        }
    }

    fn derived_name(&mut self, d: &RawDerived) {
        let text = &d.name.value;
        let (resource, verb) = match text.parse::<Permission>() {
            Ok(Permission::Specific { resource, verb }) => (resource, verb),
            Ok(Permission::All) => {
                self.report(
                    &d.name.at,
                    "a derived permission is named \"type:name\", not \"*\"",
                );
                return;
            }
            Err(e) => {
                self.report(
                    &d.name.at,
                    format!("a derived permission is named \"type:name\": {e}"),
                );
                return;
            }
        };
        // Declared before judging it, so that its uses are not reported too.
        self.derived.insert(text.clone());
        match self.types.get(resource.as_str()) {
            None => {
                let hint = self
                    .out
                    .suggest(resource.as_str(), self.types.keys().map(String::as_str));
                self.report(
                    &d.name.at,
                    format!(
                        "unknown resource type {}; a derived permission is named after a declared type{hint}",
                        Quoted(resource.as_str())
                    ),
                );
            }
            Some(TypeInfo {
                verbs: Some(verbs),
                ladder,
            }) if verbs.contains(verb.as_str()) => {
                let kind = if *ladder { "level" } else { "action" };
                self.report(
                    &d.name.at,
                    format!(
                        "{} is already a {kind} of {}; a derived permission needs a name of its own",
                        Quoted(verb.as_str()),
                        Quoted(resource.as_str())
                    ),
                );
            }
            Some(_) => {}
        }
    }

    /// Checks the rule of a derived permission, adding an edge to `uses`
    /// for every term that is itself derived.
    fn derived_rule(&mut self, d: &RawDerived, uses: &mut Graph) -> Option<ValidDerived> {
        let (kind, list) = match (d.all_of.given(), d.any_of.given()) {
            (Some(list), None) => (RuleKind::AllOf, list),
            (None, Some(list)) => (RuleKind::AnyOf, list),
            (Some(_), Some(_)) => {
                self.report(&d.name.at, "sets both all_of and any_of; choose one");
                return None;
            }
            (None, None) => {
                if !d.all_of.is_invalid() && !d.any_of.is_invalid() {
                    self.report(&d.name.at, "needs a rule: all_of or any_of");
                }
                return None;
            }
        };
        if list.value.is_empty() {
            self.report(&list.at, "a rule needs at least one term");
        }
        let mut terms = Vec::with_capacity(list.value.len());
        let mut seen = HashSet::with_capacity(list.value.len());
        let mut ok = true;
        for term in &list.value {
            let Some(p) = self.permission(term, false) else {
                ok = false;
                continue;
            };
            if !seen.insert(p.clone()) {
                self.report(&term.at, format!("{} is listed twice", Quoted(&term.value)));
                ok = false;
                continue;
            }
            if self.derived.contains(&term.value) {
                uses.entry(d.name.value.clone())
                    .or_default()
                    .push((term.value.clone(), term.at.clone()));
            }
            terms.push(p);
        }
        let Ok(Permission::Specific { resource, verb }) = d.name.value.parse::<Permission>() else {
            return None;
        };
        (ok && !terms.is_empty()).then_some(ValidDerived {
            resource,
            verb,
            kind,
            terms,
        })
    }

    /// Reports the first value that takes the schema past
    /// [`MAX_PERMISSIONS`].
    fn check_count(&mut self, raw: &RawSchema) {
        let verbs = raw.resources.iter().filter_map(|r| {
            let list = r.levels.given().or(r.actions.given())?;
            Some((list.value.len(), &list.at))
        });
        let derived = raw.permissions.iter().map(|d| (1, &d.name.at));
        let mut total = 0usize;
        let mut crossing = None;
        for (n, at) in verbs.chain(derived) {
            total += n;
            if total > MAX_PERMISSIONS && crossing.is_none() {
                crossing = Some(at.clone());
            }
        }
        if let Some(at) = crossing {
            self.report(
                &at,
                format!("schema declares {total} permissions; the limit is {MAX_PERMISSIONS}"),
            );
        }
    }

    fn class(&mut self, c: &RawClass) -> Option<ValidClass> {
        self.classes.insert(c.name.value.clone());
        let name = self.name(&c.name, "role class name");
        let per_subject = match c.per_subject.given() {
            None => Some(Cardinality::default()),
            Some(item) => match item.value.as_str() {
                "exactly_one" => Some(Cardinality::ExactlyOne),
                "at_most_one" => Some(Cardinality::AtMostOne),
                "many" => Some(Cardinality::Many),
                other => {
                    let expected = ["exactly_one", "at_most_one", "many"];
                    let hint = self.out.suggest(other, expected);
                    self.report(
                        &item.at,
                        format!(
                            "unknown per_subject {}; expected exactly_one, at_most_one or many{hint}",
                            Quoted(other)
                        ),
                    );
                    None
                }
            },
        };
        let mut patterns = Vec::new();
        let mut ok = !c.cannot_grant.is_invalid();
        for item in c
            .cannot_grant
            .given()
            .map(|l| l.value.as_slice())
            .unwrap_or_default()
        {
            match self.pattern(item) {
                Some(p) => patterns.push(p),
                None => ok = false,
            }
        }
        Some(ValidClass {
            name: name?.to_string(),
            per_subject: per_subject?,
            patterns: ok.then_some(patterns)?,
        })
    }

    fn pattern(&mut self, item: &Item<String>) -> Option<PermissionPattern> {
        let pattern = match item.value.parse::<PermissionPattern>() {
            Ok(p) => p,
            Err(e) => {
                self.report(&item.at, e.reason);
                return None;
            }
        };
        let known = match &pattern {
            PermissionPattern::All => Ok(()),
            PermissionPattern::Resource(r) => {
                if self.types.contains_key(r.as_str()) {
                    Ok(())
                } else {
                    let hint = self
                        .out
                        .suggest(r.as_str(), self.types.keys().map(String::as_str));
                    Err(Some(format!(
                        "unknown resource type {} in pattern {}{hint}",
                        Quoted(r.as_str()),
                        Quoted(&item.value)
                    )))
                }
            }
            PermissionPattern::Exact { resource, verb } => self.known(&Permission::Specific {
                resource: resource.clone(),
                verb: verb.clone(),
            }),
        };
        match known {
            Ok(()) => Some(pattern),
            Err(Some(why)) => {
                self.report(&item.at, why);
                None
            }
            Err(None) => None,
        }
    }

    fn permissions(
        &mut self,
        field: &Field<Vec<Item<String>>>,
        allow_all: bool,
    ) -> Option<Vec<Permission>> {
        let mut list = Vec::new();
        let mut seen = HashSet::new();
        let mut ok = !field.is_invalid();
        for item in field
            .given()
            .map(|l| l.value.as_slice())
            .unwrap_or_default()
        {
            match self.permission(item, allow_all) {
                Some(p) if seen.insert(p.clone()) => list.push(p),
                Some(_) => {
                    self.report(&item.at, format!("{} is listed twice", Quoted(&item.value)));
                    ok = false;
                }
                None => ok = false,
            }
        }
        ok.then_some(list)
    }

    fn role(&mut self, r: &RawRole) -> Option<Role> {
        let id = match RoleId::try_from(r.name.value.as_str()) {
            Ok(id) => Some(id),
            Err(e) => {
                self.report(&r.name.at, format!("invalid role id: {e}"));
                None
            }
        };
        let title = match r.title.given() {
            None => Some(r.name.value.clone()),
            Some(t) => match check_text("title", &t.value) {
                Ok(()) => Some(t.value.clone()),
                Err(e) => {
                    self.report(&t.at, e.reason);
                    None
                }
            },
        };
        let grants = self.permissions(&r.grants, true);
        if let Some(list) = r.grants.given().filter(|l| l.value.len() > MAX_GRANTS) {
            self.report(
                &list.at,
                format!(
                    "{} grants given; the limit is {MAX_GRANTS}",
                    list.value.len()
                ),
            );
        }
        let class = match r.class.given() {
            None => Some(None),
            Some(c) if self.classes.contains(&c.value) => Some(Some(c.value.clone())),
            Some(_) if self.unreadable.role_classes => None,
            Some(c) => {
                let hint = self
                    .out
                    .suggest(&c.value, self.classes.iter().map(String::as_str));
                self.report(
                    &c.at,
                    format!("unknown role class {}{hint}", Quoted(&c.value)),
                );
                None
            }
        };
        let rank = match r.rank.given() {
            None => Some(0),
            Some(rank) => match i32::try_from(rank.value) {
                Ok(rank) => Some(rank),
                Err(_) => {
                    self.report(
                        &rank.at,
                        format!(
                            "rank {} is out of range; use {} to {}",
                            rank.value,
                            i32::MIN,
                            i32::MAX
                        ),
                    );
                    None
                }
            },
        };
        let requires = self.permissions(&r.requires, false);
        let managed_by = match r.managed_by.given() {
            None => Some(None),
            Some(item) => self.permission(item, false).map(Some),
        };
        let grantable_by = match r.grantable_by.given() {
            None => Some(None),
            Some(item) => self.permission(item, false).map(Some),
        };
        let grants = grants?
            .into_iter()
            .map(|permission| Grant {
                permission,
                scopes: Vec::new(),
            })
            .collect::<Vec<_>>();
        if grants.len() > MAX_GRANTS || r.title.is_invalid() || r.class.is_invalid() {
            return None;
        }
        Some(Role {
            id: id?,
            title: title?,
            grants,
            class: class?,
            rank: rank?,
            requires: requires?,
            managed_by: managed_by?,
            grantable_by: grantable_by?,
            self_removable: r.self_removable.given().is_some_and(|s| s.value),
        })
    }
}

/// Names that depend on each other in circles: one strongly connected
/// component of a [`Graph`], told by one shortest cycle through its smallest
/// name.
pub(crate) struct Knot {
    /// The cycle, as [`describe_cycle`] words it.
    pub text: String,
    /// Where the cycle's first edge was written.
    pub at: Position,
}

/// Orders `graph` and finds its knots, in time linear in its size. Returns
/// every name of the graph with each after every name it reaches
/// (dependencies first; within a knot, in no particular order), and one
/// [`Knot`] per set of names that depend on each other, `noun` naming them.
pub(crate) fn walk(graph: &Graph, noun: &str) -> (Vec<String>, Vec<Knot>) {
    let names: Vec<&str> = graph
        .iter()
        .flat_map(|(from, edges)| {
            std::iter::once(from.as_str()).chain(edges.iter().map(|(to, _)| to.as_str()))
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let id = |name: &str| names.binary_search(&name).ok();
    let mut adjacency: Adjacency = vec![Vec::new(); names.len()];
    let mut written: Vec<Vec<&Position>> = vec![Vec::new(); names.len()];
    for (from, edges) in graph {
        let Some(f) = id(from) else { continue };
        for (to, at) in edges {
            if let (Some(t), Some(list), Some(ats)) =
                (id(to), adjacency.get_mut(f), written.get_mut(f))
            {
                list.push(t);
                ats.push(at);
            }
        }
    }
    let found = components(&adjacency);
    let member_of = member_of(&found, names.len());
    let name = |v: usize| names.get(v).copied().unwrap_or_default().to_owned();
    let mut knots = Vec::new();
    for (c, component) in found.iter().enumerate() {
        if !is_cycle(&adjacency, component) {
            continue;
        }
        let Some(&start) = component.iter().min() else {
            continue;
        };
        let cycle = shortest_cycle(&adjacency, start, |v| member_of.get(v) == Some(&c));
        let second = cycle.get(1).copied().unwrap_or(start);
        let at = adjacency
            .get(start)
            .and_then(|edges| edges.iter().position(|&t| t == second))
            .and_then(|i| written.get(start)?.get(i));
        let Some(at) = at else { continue };
        let cycle_names: Vec<String> = cycle.iter().map(|&v| name(v)).collect();
        knots.push(Knot {
            text: describe_cycle(&cycle_names, component.len() - cycle.len(), noun),
            at: (*at).clone(),
        });
    }
    let order = found.into_iter().flatten().map(name).collect();
    (order, knots)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: usize) -> Position {
        Position {
            line,
            key: format!("k{line}"),
        }
    }

    fn graph(edges: &[(&str, &str, usize)]) -> Graph {
        let mut g = Graph::new();
        for (from, to, line) in edges {
            g.entry((*from).to_owned())
                .or_default()
                .push(((*to).to_owned(), at(*line)));
        }
        g
    }

    #[test]
    fn walk_orders_dependencies_first() {
        let (order, cycles) = walk(
            &graph(&[("a", "b", 1), ("b", "c", 2), ("d", "c", 3)]),
            "names",
        );
        assert!(cycles.is_empty());
        let pos = |n: &str| order.iter().position(|x| x == n).unwrap();
        assert!(pos("c") < pos("b") && pos("b") < pos("a") && pos("c") < pos("d"));
    }

    #[test]
    fn walk_names_cycles_from_their_smallest_node() {
        let (_, cycles) = walk(
            &graph(&[
                ("b", "c", 1),
                ("c", "a", 2),
                ("a", "b", 3),
                ("x", "x", 4),
                ("c", "d", 5),
                ("d", "b", 6),
            ]),
            "names",
        );
        let mut named: Vec<_> = cycles
            .iter()
            .map(|k| (k.text.as_str(), k.at.line))
            .collect();
        named.sort();
        assert_eq!(
            named,
            vec![
                (
                    "a -> b -> c -> a; 1 more names depend on these in circles",
                    3
                ),
                ("x -> x", 4)
            ]
        );
    }
}
