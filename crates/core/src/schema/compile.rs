//! Stage three: [`ValidSchema`] → [`Catalog`], the form the engine reads.
//!
//! Every permission becomes a bit position; every ladder and `follows`
//! implication is closed once here, so the engine's hot path is bitset
//! arithmetic and hash lookups that never allocate. The only user errors it
//! reports are those only the compiled form can find — circular
//! prerequisites (`requires` that no role can ever meet) — with the same
//! diagnostics as validation; every other failure is a broken internal
//! invariant, reported rather than panicked on.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;

use crate::model::{Name, Permission, Role, RoleId};

use super::graph::{Adjacency, components, describe_cycle, member_of, shortest_cycle};
use super::parse::Position;
use super::validate::ValidSchema;
use super::{DOCUMENT_KEY, Diagnostics, PermBit, PermSet, PermissionPattern, RoleClass, Rule};

/// The compiled permission catalog: shared by every tenant, immutable once
/// built, meant to be held in an `Arc`.
///
/// Bit layout: resource types in name order, each type's verbs in declared
/// order (a ladder lowest first), then the derived permissions ordered so
/// that every derived term has a lower bit than the permission using it.
pub struct Catalog {
    /// The TOML text it was compiled from, as given.
    source: Box<str>,
    /// Indexed by bit position.
    bits: Vec<BitInfo>,
    /// In name order.
    resources: Vec<ResourceInfo>,
    /// Resource name → index into `resources`; keyed by `str` so lookups from
    /// borrowed text do not allocate.
    resource_index: HashMap<Box<str>, usize>,
    /// `"type:verb"` → bit, for every verb of every type: what a check
    /// resolves its permission text with, one hash of the whole text
    /// rather than a split and two lookups.
    by_name: HashMap<Box<str>, PermBit, foldhash::fast::RandomState>,
    /// Every bit.
    all: PermSet,
    /// The bits that hold below the scope they are granted at.
    inheriting: PermSet,
    /// The derived bits, in increasing (evaluation) order.
    derived: Vec<PermBit>,
    classes: BTreeMap<String, RoleClass>,
    roles: BTreeMap<RoleId, Role>,
    /// What a bit from another catalog reads as: a request holding a stale
    /// bit after a schema change gets neutral answers instead of a panic.
    foreign: BitInfo,
}

struct ResourceInfo {
    name: Name,
    /// Verb (level, action or derived name) → bit.
    verbs: HashMap<Box<str>, PermBit>,
    /// Every bit of the type, derived ones included.
    mask: PermSet,
}

struct BitInfo {
    permission: Permission,
    /// `type:verb`, kept so that naming a bit does not allocate.
    name: Box<str>,
    resource: Name,
    inherits: bool,
    /// The bit and everything it implies, transitively.
    closure: PermSet,
    /// `Some` exactly for derived permissions.
    rule: Option<Rule>,
    /// Direct implications and why they hold, for explanations.
    implies: Vec<(PermBit, Reason)>,
}

/// Why one permission directly implies another.
#[derive(Clone, Debug)]
enum Reason {
    /// A higher level of a ladder implies every lower one.
    Ladder,
    /// `follower` follows `leader`.
    Follows { follower: Name, leader: Name },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Ladder => f.write_str("ladder"),
            Reason::Follows { follower, leader } => write!(f, "{follower} follows {leader}"),
        }
    }
}

/// Builds the catalog. `None` (with a diagnostic) only if an invariant that
/// validation guarantees turns out broken.
pub(crate) fn compile(source: &str, valid: ValidSchema, out: &mut Diagnostics) -> Option<Catalog> {
    let internal = |out: &mut Diagnostics, what: &str| {
        out.push(
            1,
            DOCUMENT_KEY,
            format!("internal error while compiling: {what}"),
        );
    };
    let mut bits: Vec<BitInfo> = Vec::new();
    let mut resources: Vec<ResourceInfo> = Vec::with_capacity(valid.resources.len());
    let mut resource_index = HashMap::with_capacity(valid.resources.len());
    let mut inherit = Vec::with_capacity(valid.resources.len());

    let new_bit = |bits: &mut Vec<BitInfo>, resource: &Name, verb: &Name, inherits: bool| {
        let bit = PermBit::from_index(bits.len())?;
        let permission = Permission::Specific {
            resource: resource.clone(),
            verb: verb.clone(),
        };
        bits.push(BitInfo {
            name: permission.to_string().into(),
            permission,
            resource: resource.clone(),
            inherits,
            closure: PermSet::default(),
            rule: None,
            implies: Vec::new(),
        });
        Some(bit)
    };

    for r in &valid.resources {
        let mut verbs = HashMap::with_capacity(r.verbs.len());
        for verb in &r.verbs {
            let Some(bit) = new_bit(&mut bits, &r.name, verb, r.inherit) else {
                internal(out, "too many permissions");
                return None;
            };
            verbs.insert(verb.as_str().into(), bit);
        }
        resource_index.insert(r.name.as_str().into(), resources.len());
        inherit.push(r.inherit);
        resources.push(ResourceInfo {
            name: r.name.clone(),
            verbs,
            mask: PermSet::default(),
        });
    }

    let mut derived = Vec::with_capacity(valid.derived.len());
    for d in &valid.derived {
        let Some(&index) = resource_index.get(d.resource.as_str()) else {
            internal(out, "derived permission of an unknown type");
            return None;
        };
        let inherits = inherit.get(index).copied().unwrap_or(true);
        let Some(bit) = new_bit(&mut bits, &d.resource, &d.verb, inherits) else {
            internal(out, "too many permissions");
            return None;
        };
        if let Some(r) = resources.get_mut(index) {
            r.verbs.insert(d.verb.as_str().into(), bit);
        }
        derived.push(bit);
    }

    let find = |resources: &[ResourceInfo], resource: &Name, verb: &str| {
        let r = resources.get(*resource_index.get(resource.as_str())?)?;
        r.verbs.get(verb).copied()
    };

    // Rules: terms resolve now that every bit exists.
    for (d, bit) in valid.derived.iter().zip(&derived) {
        let mut terms = Vec::with_capacity(d.terms.len());
        for term in &d.terms {
            let found = match term {
                Permission::Specific { resource, verb } => {
                    find(&resources, resource, verb.as_str())
                }
                Permission::All => None,
            };
            let Some(found) = found else {
                internal(out, "derived permission with an unknown term");
                return None;
            };
            terms.push(found);
        }
        if let Some(info) = bits.get_mut(bit.index()) {
            info.rule = Some(Rule {
                kind: d.kind,
                terms,
            });
        }
    }

    // Direct implications: ladder steps, then follows.
    for r in &valid.resources {
        let ladder: Vec<PermBit> = r
            .verbs
            .iter()
            .filter_map(|v| find(&resources, &r.name, v.as_str()))
            .collect();
        if r.ladder {
            // One step down per level: a ladder of n levels is n - 1 edges
            // (not n² / 2), and its closure the same.
            for pair in ladder.windows(2) {
                if let [lower, higher] = pair
                    && let Some(info) = bits.get_mut(higher.index())
                {
                    info.implies.push((*lower, Reason::Ladder));
                }
            }
        }
        for leader in &r.follows {
            let Some(leader_info) = resource_index
                .get(leader.as_str())
                .and_then(|i| valid.resources.get(*i))
            else {
                internal(out, "follows an unknown type");
                return None;
            };
            for verb in &leader_info.verbs {
                let (Some(from), Some(to)) = (
                    find(&resources, leader, verb.as_str()),
                    find(&resources, &r.name, verb.as_str()),
                ) else {
                    internal(out, "follower lacks a verb");
                    return None;
                };
                if let Some(info) = bits.get_mut(from.index()) {
                    info.implies.push((
                        to,
                        Reason::Follows {
                            follower: r.name.clone(),
                            leader: leader.clone(),
                        },
                    ));
                }
            }
        }
    }

    // Ladder steps first: among equally short chains, explanations then
    // stay within a type before crossing to its followers.
    for info in &mut bits {
        info.implies
            .sort_by_key(|(_, reason)| matches!(reason, Reason::Follows { .. }));
    }

    let len = bits.len();
    let closed = closures(&bits_graph(&bits), len);
    for (info, closure) in bits.iter_mut().zip(closed) {
        info.closure = closure;
    }

    let mut all = PermSet::empty(len);
    let mut inheriting = PermSet::empty(len);
    for r in &mut resources {
        r.mask = PermSet::empty(len);
    }
    for (i, info) in bits.iter().enumerate() {
        let Some(bit) = PermBit::from_index(i) else {
            continue;
        };
        all.insert(bit);
        if info.inherits {
            inheriting.insert(bit);
        }
        if let Some(r) = resource_index
            .get(info.resource.as_str())
            .and_then(|&r| resources.get_mut(r))
        {
            r.mask.insert(bit);
        }
    }

    let Ok(foreign_name) = "foreign".parse::<Name>() else {
        internal(out, "placeholder name");
        return None;
    };
    let foreign = BitInfo {
        permission: Permission::Specific {
            resource: foreign_name.clone(),
            verb: foreign_name.clone(),
        },
        name: "foreign:foreign".into(),
        resource: foreign_name,
        inherits: false,
        closure: PermSet::empty(len),
        rule: None,
        implies: Vec::new(),
    };

    let by_name = resources
        .iter()
        .flat_map(|r| {
            r.verbs
                .iter()
                .map(move |(verb, bit)| (format!("{}:{verb}", r.name).into_boxed_str(), *bit))
        })
        .collect();
    let mut catalog = Catalog {
        source: source.into(),
        bits,
        resources,
        resource_index,
        by_name,
        all,
        inheriting,
        derived,
        classes: BTreeMap::new(),
        roles: BTreeMap::new(),
        foreign,
    };

    for class in valid.classes {
        let mut cannot_grant = PermSet::empty(len);
        for pattern in &class.patterns {
            match catalog.pattern_set(pattern) {
                Some(set) => cannot_grant.union_with(&set),
                None => {
                    internal(out, "pattern of an unknown permission");
                    return None;
                }
            }
        }
        catalog.classes.insert(
            class.name.clone(),
            RoleClass {
                name: class.name,
                per_subject: class.per_subject,
                cannot_grant,
                patterns: class.patterns,
            },
        );
    }
    catalog.roles = valid.roles.into_iter().map(|r| (r.id.clone(), r)).collect();
    requires_cycles(&catalog, &valid.requires_at, out);
    Some(catalog)
}

/// Reports roles whose prerequisites can only be met through each other
/// (or through themselves), so that no subject could ever qualify for them.
/// A role can qualify if it has no prerequisites, or if each permission it
/// requires is granted by a role that can qualify — or by no role of the
/// schema at all (custom roles may grant it at run time). The roles left
/// over are reported once per knot among them: role R depends on role S
/// when S grants (after ladders and follows) something R requires.
///
/// Linear in the size of the schema: qualification spreads from role to
/// role through counters (each role counts the prerequisites it still
/// lacks), and knots are the strongly connected components of a graph with
/// a node per role and per permission — R → p for each unmet prerequisite
/// p, p → q when q directly implies p, q → S when S grants q — which has as
/// many edges as the schema has grants, prerequisites and implications,
/// where a role-to-role graph could have the square of the number of roles.
fn requires_cycles(
    catalog: &Catalog,
    requires_at: &BTreeMap<RoleId, Position>,
    out: &mut Diagnostics,
) {
    let len = catalog.len();
    let roles: Vec<(&RoleId, &Role)> = catalog.roles.iter().collect();
    let granted: Vec<PermSet> = roles
        .iter()
        .map(|(_, role)| {
            let mut set = PermSet::empty(len);
            for g in &role.grants {
                if let Some(s) = catalog.grant_set(&g.permission) {
                    set.union_with(&s);
                }
            }
            set
        })
        .collect();
    let mut offered = PermSet::empty(len);
    for set in &granted {
        offered.union_with(set);
    }
    // A prerequisite no builtin role grants can always be met (by a custom
    // role), so only offered ones are needs.
    let needs: Vec<Vec<PermBit>> = roles
        .iter()
        .map(|(_, role)| {
            let mut bits: Vec<PermBit> = role
                .requires
                .iter()
                .filter_map(|p| catalog.bit(p))
                .filter(|b| offered.contains(*b))
                .collect();
            bits.sort_unstable();
            bits.dedup();
            bits
        })
        .collect();
    let mut needed_by: Vec<Vec<usize>> = vec![Vec::new(); len];
    for (r, bits) in needs.iter().enumerate() {
        for b in bits {
            if let Some(list) = needed_by.get_mut(b.index()) {
                list.push(r);
            }
        }
    }
    let mut missing: Vec<usize> = needs.iter().map(Vec::len).collect();
    let mut qualifies = vec![false; roles.len()];
    // Bits granted by a role that qualifies.
    let mut met = PermSet::empty(len);
    let mut ready: Vec<usize> = (0..roles.len())
        .filter(|&r| missing.get(r) == Some(&0))
        .collect();
    while let Some(r) = ready.pop() {
        match qualifies.get_mut(r) {
            Some(q) if !*q => *q = true,
            _ => continue,
        }
        let Some(gives) = granted.get(r) else {
            continue;
        };
        let mut fresh = gives.clone();
        fresh.subtract(&met);
        met.union_with(gives);
        for b in fresh.iter() {
            for &other in needed_by.get(b.index()).into_iter().flatten() {
                if let Some(m) = missing.get_mut(other) {
                    *m = m.saturating_sub(1);
                    if *m == 0 {
                        ready.push(other);
                    }
                }
            }
        }
    }

    // Nodes: roles, then one per permission bit, then one standing for
    // "everything" (what a `*` grant gives).
    let bit_node = |b: PermBit| roles.len() + b.index();
    let everything = roles.len() + len;
    let mut graph: Adjacency = vec![Vec::new(); everything + 1];
    let stuck = |r: usize| qualifies.get(r) == Some(&false);
    for (r, bits) in needs.iter().enumerate().filter(|(r, _)| stuck(*r)) {
        if let Some(edges) = graph.get_mut(r) {
            edges.extend(
                bits.iter()
                    .filter(|b| !met.contains(**b))
                    .map(|b| bit_node(*b)),
            );
        }
    }
    for (from, to) in bits_graph(&catalog.bits)
        .iter()
        .enumerate()
        .flat_map(|(from, to)| to.iter().map(move |to| (from, *to)))
    {
        if let (Some(edges), Some(from)) =
            (graph.get_mut(roles.len() + to), PermBit::from_index(from))
        {
            edges.push(bit_node(from));
        }
    }
    for (r, (_, role)) in roles.iter().enumerate().filter(|(r, _)| stuck(*r)) {
        for g in &role.grants {
            let node = match &g.permission {
                Permission::All => Some(everything),
                p => catalog.bit(p).map(bit_node),
            };
            if let Some(edges) = node.and_then(|n| graph.get_mut(n)) {
                edges.push(r);
            }
        }
    }
    if roles.iter().enumerate().any(|(r, (_, role))| {
        stuck(r) && role.grants.iter().any(|g| g.permission == Permission::All)
    }) {
        for b in 0..len {
            if let Some(edges) = graph.get_mut(roles.len() + b) {
                edges.push(everything);
            }
        }
    }

    let found = components(&graph);
    let member_of = member_of(&found, graph.len());
    let is_role = |v: usize| v < roles.len();
    for (c, component) in found.iter().enumerate() {
        // Roles have no edge to themselves, so a lone node is never a knot.
        let Some(&start) = component.iter().filter(|&&v| is_role(v)).min() else {
            continue;
        };
        if component.len() < 2 {
            continue;
        }
        let Some((id, _)) = roles.get(start) else {
            continue;
        };
        let Some(at) = requires_at.get(*id) else {
            continue;
        };
        let cycle: Vec<String> = shortest_cycle(&graph, start, |v| member_of.get(v) == Some(&c))
            .into_iter()
            .filter(|&v| is_role(v))
            .filter_map(|v| roles.get(v).map(|(id, _)| id.to_string()))
            .collect();
        let in_knot = component.iter().filter(|&&v| is_role(v)).count();
        let why = if in_knot == 1 {
            "it requires a permission only it grants, so it can never count"
        } else {
            "each role requires a permission only the next grants, so none can ever count"
        };
        out.push(
            at.line,
            &at.key,
            format!(
                "circular prerequisites: {} ({why})",
                describe_cycle(&cycle, in_knot.saturating_sub(cycle.len()), "roles")
            ),
        );
    }
}

/// The direct implications between bits, as a graph over bit positions.
fn bits_graph(bits: &[BitInfo]) -> Adjacency {
    bits.iter()
        .map(|info| info.implies.iter().map(|(to, _)| to.index()).collect())
        .collect()
}

/// Every bit's closure under `implies`, in one pass over the components of
/// the implication graph (dependencies first), so each edge costs one set
/// union: linear in the edges, where a search from every bit would be
/// quadratic. Validation keeps the graph acyclic; a knot, were there one,
/// would give all its members the same closure.
fn closures(graph: &[Vec<usize>], len: usize) -> Vec<PermSet> {
    let mut done: Vec<Option<PermSet>> = vec![None; graph.len()];
    for component in components(graph) {
        let mut set = PermSet::empty(len);
        for &v in &component {
            if let Some(bit) = PermBit::from_index(v) {
                set.insert(bit);
            }
            for &to in graph.get(v).into_iter().flatten() {
                if let Some(Some(below)) = done.get(to) {
                    set.union_with(below);
                }
            }
        }
        for &v in &component {
            if let Some(slot) = done.get_mut(v) {
                *slot = Some(set.clone());
            }
        }
    }
    done.into_iter()
        .map(|c| c.unwrap_or_else(|| PermSet::empty(len)))
        .collect()
}

impl Catalog {
    fn info(&self, b: PermBit) -> &BitInfo {
        self.bits.get(b.index()).unwrap_or(&self.foreign)
    }

    /// The TOML text the catalog was compiled from, as given.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The number of permission bits: the capacity of every [`PermSet`] built
    /// for this catalog.
    pub fn len(&self) -> usize {
        self.bits.len()
    }

    /// Whether the schema declares no permission at all.
    pub fn is_empty(&self) -> bool {
        self.bits.is_empty()
    }

    /// The bit of `"type:verb"`; `None` for unknown permissions and for `*`.
    /// Does not allocate.
    pub fn lookup(&self, text: &str) -> Option<PermBit> {
        self.by_name.get(text).copied()
    }

    /// The bit of a parsed permission; `None` for unknown ones and for `*`.
    /// Does not allocate.
    pub fn bit(&self, p: &Permission) -> Option<PermBit> {
        match p {
            Permission::All => None,
            Permission::Specific { resource, verb } => self.find(resource.as_str(), verb.as_str()),
        }
    }

    fn find(&self, resource: &str, verb: &str) -> Option<PermBit> {
        let r = self.resources.get(*self.resource_index.get(resource)?)?;
        r.verbs.get(verb).copied()
    }

    /// The permission at `b`. A bit from another catalog reads as the
    /// placeholder `foreign:foreign`.
    pub fn permission(&self, b: PermBit) -> &Permission {
        &self.info(b).permission
    }

    /// `"type:verb"` of `b`.
    pub fn name(&self, b: PermBit) -> &str {
        &self.info(b).name
    }

    /// `"type:verb"` of every permission, in bit order: the candidates of a
    /// "did you mean" for an unknown permission.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.bits.iter().map(|b| &*b.name)
    }

    /// Whether `b` holds below the scope it was granted at; `false` for types
    /// declared with `inherit = false`.
    pub fn inherits(&self, b: PermBit) -> bool {
        self.info(b).inherits
    }

    /// Every bit that [`Catalog::inherits`]: what a grant at a scope gives
    /// the scopes below it.
    pub fn inheriting(&self) -> &PermSet {
        &self.inheriting
    }

    /// The resource type `b` belongs to.
    pub fn resource_of(&self, b: PermBit) -> &Name {
        &self.info(b).resource
    }

    /// `b` and every permission it implies through ladders and `follows`,
    /// transitively. A derived permission implies nothing but itself.
    pub fn closure(&self, b: PermBit) -> &PermSet {
        &self.info(b).closure
    }

    /// What granting `p` gives: its closure, every bit for `*`, `None` if the
    /// permission is unknown.
    pub fn grant_set(&self, p: &Permission) -> Option<PermSet> {
        match p {
            Permission::All => Some(self.all.clone()),
            Permission::Specific { .. } => self.bit(p).map(|b| self.closure(b).clone()),
        }
    }

    /// Every bit, derived ones included.
    pub fn all(&self) -> &PermSet {
        &self.all
    }

    /// The rule of a derived permission; `None` for levels and actions.
    pub fn rule(&self, b: PermBit) -> Option<&Rule> {
        self.info(b).rule.as_ref()
    }

    /// The derived bits in increasing order: evaluating their rules in this
    /// order sees every derived term already settled.
    pub fn derived(&self) -> &[PermBit] {
        &self.derived
    }

    /// Every bit of type `r` (derived permissions named under it included).
    pub fn resource_mask(&self, r: &Name) -> Option<&PermSet> {
        let index = *self.resource_index.get(r.as_str())?;
        self.resources.get(index).map(|r| &r.mask)
    }

    /// The declared resource types, in name order.
    pub fn resources(&self) -> impl Iterator<Item = &Name> {
        self.resources.iter().map(|r| &r.name)
    }

    /// The bits a pattern matches; `None` if it names an unknown type or
    /// permission.
    pub fn pattern_set(&self, pattern: &PermissionPattern) -> Option<PermSet> {
        match pattern {
            PermissionPattern::All => Some(self.all.clone()),
            PermissionPattern::Resource(r) => self.resource_mask(r).cloned(),
            PermissionPattern::Exact { resource, verb } => {
                let bit = self.find(resource.as_str(), verb.as_str())?;
                let mut set = PermSet::empty(self.len());
                set.insert(bit);
                Some(set)
            }
        }
    }

    /// Why `from` implies `to`, as one line of text along the shortest chain,
    /// e.g. `product:edit implies product:read (ladder), which implies
    /// price:read (price follows product)`. `None` if `from` does not imply
    /// `to` or they are the same permission.
    pub fn implication(&self, from: PermBit, to: PermBit) -> Option<String> {
        if from == to || !self.closure(from).contains(to) {
            return None;
        }
        // Breadth-first, so the chain told is a shortest one. A level implies
        // every lower level in one step, though only the next lower one is
        // stored: the step down a ladder walks the stored chain, and stops
        // at a level already walked past (everything below it is reached),
        // so each ladder is walked once per explanation, not once per level.
        let mut came_from: HashMap<PermBit, (PermBit, &Reason)> = HashMap::new();
        let mut walked: HashSet<PermBit> = HashSet::new();
        let mut queue = VecDeque::from([from]);
        while let Some(bit) = queue.pop_front() {
            if bit == to {
                break;
            }
            let mut reach = |next: PermBit, reason| {
                if next != from && !came_from.contains_key(&next) {
                    came_from.insert(next, (bit, reason));
                    queue.push_back(next);
                }
            };
            let mut level = bit;
            walked.insert(bit);
            while let Some((lower, reason)) = self.ladder_step(level) {
                if !walked.insert(lower) {
                    break;
                }
                reach(lower, reason);
                level = lower;
            }
            for (next, reason) in &self.info(bit).implies {
                if matches!(reason, Reason::Follows { .. }) {
                    reach(*next, reason);
                }
            }
        }
        let mut steps = Vec::new();
        let mut at = to;
        while at != from {
            let (previous, reason) = came_from.get(&at)?;
            steps.push((at, *reason));
            at = *previous;
        }
        let mut text = self.name(from).to_owned();
        for (i, (bit, reason)) in steps.iter().rev().enumerate() {
            let joint = if i == 0 {
                " implies "
            } else {
                ", which implies "
            };
            text.push_str(joint);
            text.push_str(self.name(*bit));
            text.push_str(&format!(" ({reason})"));
        }
        Some(text)
    }

    /// The next lower level of `b`'s ladder, if `b` is a level above the
    /// lowest.
    fn ladder_step(&self, b: PermBit) -> Option<(PermBit, &Reason)> {
        self.info(b)
            .implies
            .iter()
            .find(|(_, reason)| matches!(reason, Reason::Ladder))
            .map(|(lower, reason)| (*lower, reason))
    }

    /// The builtin roles, by id. Their grants carry no pinned scopes.
    pub fn roles(&self) -> &BTreeMap<RoleId, Role> {
        &self.roles
    }

    /// A role class by name.
    pub fn role_class(&self, name: &str) -> Option<&RoleClass> {
        self.classes.get(name)
    }

    /// The role classes, by name.
    pub fn role_classes(&self) -> &BTreeMap<String, RoleClass> {
        &self.classes
    }
}

impl fmt::Debug for Catalog {
    // A summary: the full tables (closures of up to 4096 bits each) would
    // drown any log line that prints a catalog.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Catalog")
            .field("permissions", &self.bits.len())
            .field("derived", &self.derived.len())
            .field(
                "resources",
                &self
                    .resources
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("role_classes", &self.classes.keys().collect::<Vec<_>>())
            .field("roles", &self.roles.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Cardinality, DEFAULT_SCHEMA, RuleKind, load};
    use super::*;

    fn catalog(text: &str) -> Catalog {
        match load("test.toml", text) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    fn bit(c: &Catalog, s: &str) -> PermBit {
        c.lookup(s).unwrap_or_else(|| panic!("{s} unknown"))
    }

    fn names(c: &Catalog, set: &PermSet) -> Vec<String> {
        let mut v: Vec<String> = set.iter().map(|b| c.name(b).to_owned()).collect();
        v.sort();
        v
    }

    const CORRELATED: &str = r#"
[resources.product]
levels = ["read", "edit", "manage", "admin"]
[resources.price]
levels = ["read", "edit", "manage", "admin"]
follows = ["product"]
[resources.discount]
levels = ["read", "edit", "manage", "admin", "own"]
follows = ["price"]
[resources.submissions]
actions = ["approve", "reject"]
inherit = false
[permissions."product:publish"]
all_of = ["product:edit", "submissions:approve"]
[permissions."submissions:review"]
any_of = ["submissions:approve", "submissions:reject"]
[permissions."product:review_and_publish"]
all_of = ["product:publish", "submissions:review"]
"#;

    #[test]
    fn ladders_imply_every_lower_level() {
        let c = catalog(CORRELATED);
        assert_eq!(
            names(&c, c.closure(bit(&c, "product:edit"))),
            [
                "discount:edit",
                "discount:read",
                "price:edit",
                "price:read",
                "product:edit",
                "product:read"
            ]
        );
        assert!(
            !c.closure(bit(&c, "product:read"))
                .contains(bit(&c, "product:edit"))
        );
    }

    #[test]
    fn follows_is_transitive_and_one_way() {
        let c = catalog(CORRELATED);
        assert!(
            c.closure(bit(&c, "product:admin"))
                .contains(bit(&c, "discount:admin"))
        );
        assert!(
            !c.closure(bit(&c, "product:admin"))
                .contains(bit(&c, "discount:own"))
        );
        assert!(
            !c.closure(bit(&c, "discount:admin"))
                .contains(bit(&c, "product:read"))
        );
        assert!(
            !c.closure(bit(&c, "price:read"))
                .contains(bit(&c, "product:read"))
        );
    }

    #[test]
    fn actions_imply_nothing_and_inherit_flag_is_per_type() {
        let c = catalog(CORRELATED);
        let approve = bit(&c, "submissions:approve");
        assert_eq!(c.closure(approve).len(), 1);
        assert!(!c.inherits(approve));
        assert!(!c.inherits(bit(&c, "submissions:review")));
        assert!(c.inherits(bit(&c, "product:read")));
    }

    #[test]
    fn derived_rules_resolve_in_evaluation_order() {
        let c = catalog(CORRELATED);
        let publish = bit(&c, "product:publish");
        let review = bit(&c, "submissions:review");
        let both = bit(&c, "product:review_and_publish");
        let rule = c.rule(publish).unwrap();
        assert_eq!(rule.kind, RuleKind::AllOf);
        assert_eq!(
            rule.terms,
            vec![bit(&c, "product:edit"), bit(&c, "submissions:approve")]
        );
        assert_eq!(c.rule(review).unwrap().kind, RuleKind::AnyOf);
        assert!(c.rule(bit(&c, "product:edit")).is_none());
        assert_eq!(c.closure(publish).len(), 1);
        // Terms before users: one pass in bit order settles every rule.
        assert!(publish < both && review < both);
        assert_eq!(c.derived().len(), 3);
        let mut held = c.grant_set(&"product:manage".parse().unwrap()).unwrap();
        held.union_with(c.closure(bit(&c, "submissions:approve")));
        for d in c.derived() {
            if c.rule(*d).unwrap().holds(&held) {
                held.insert(*d);
            }
        }
        assert!(held.contains(publish) && held.contains(review) && held.contains(both));
    }

    #[test]
    fn star_grants_every_bit_and_is_not_a_bit() {
        let c = catalog(CORRELATED);
        assert_eq!(c.lookup("*"), None);
        assert_eq!(c.bit(&Permission::All), None);
        let every = c.grant_set(&Permission::All).unwrap();
        assert_eq!(every.len(), c.len());
        assert_eq!(&every, c.all());
        assert_eq!(c.grant_set(&"product:nope".parse().unwrap()), None);
    }

    #[test]
    fn resource_masks_include_derived_permissions() {
        let c = catalog(CORRELATED);
        let product: Name = "product".parse().unwrap();
        assert_eq!(
            names(&c, c.resource_mask(&product).unwrap()),
            [
                "product:admin",
                "product:edit",
                "product:manage",
                "product:publish",
                "product:read",
                "product:review_and_publish"
            ]
        );
        assert!(c.resource_mask(&"nope".parse().unwrap()).is_none());
        let listed: Vec<&str> = c.resources().map(Name::as_str).collect();
        assert_eq!(listed, ["discount", "price", "product", "submissions"]);
    }

    #[test]
    fn lookup_and_naming_round_trip() {
        let c = catalog(CORRELATED);
        for b in c.all().iter() {
            assert_eq!(c.lookup(c.name(b)), Some(b));
            assert_eq!(c.bit(c.permission(b)), Some(b));
            assert_eq!(c.permission(b).to_string(), c.name(b));
            assert_eq!(
                c.resource_of(b).as_str(),
                c.name(b).split(':').next().unwrap()
            );
        }
        for unknown in [
            "",
            "product",
            "product:",
            "product:read:x",
            "nope:read",
            "product:own",
        ] {
            assert_eq!(c.lookup(unknown), None, "{unknown}");
        }
    }

    #[test]
    fn foreign_bits_never_panic() {
        let c = catalog(CORRELATED);
        let stale = PermBit::from_index(4000).unwrap();
        assert_eq!(c.name(stale), "foreign:foreign");
        assert!(c.closure(stale).is_empty());
        assert!(c.rule(stale).is_none());
        assert!(!c.inherits(stale));
        assert_eq!(c.implication(stale, bit(&c, "product:read")), None);
    }

    #[test]
    fn implication_explains_the_shortest_chain() {
        let c = catalog(CORRELATED);
        assert_eq!(
            c.implication(bit(&c, "product:edit"), bit(&c, "price:read"))
                .as_deref(),
            Some(
                "product:edit implies product:read (ladder), which implies price:read (price follows product)"
            )
        );
        assert_eq!(
            c.implication(bit(&c, "product:admin"), bit(&c, "product:read"))
                .as_deref(),
            Some("product:admin implies product:read (ladder)")
        );
        assert_eq!(
            c.implication(bit(&c, "product:read"), bit(&c, "discount:read"))
                .as_deref(),
            Some(
                "product:read implies price:read (price follows product), which implies discount:read (discount follows price)"
            )
        );
        assert_eq!(
            c.implication(bit(&c, "product:read"), bit(&c, "product:read")),
            None
        );
        assert_eq!(
            c.implication(bit(&c, "price:admin"), bit(&c, "product:read")),
            None
        );
    }

    #[test]
    fn default_schema_compiles_as_documented() {
        let c = catalog(DEFAULT_SCHEMA);
        assert_eq!(c.source(), DEFAULT_SCHEMA);
        let listed: Vec<&str> = c.resources().map(Name::as_str).collect();
        assert_eq!(listed, ["approval", "comment", "document", "users"]);
        assert!(
            c.closure(bit(&c, "document:manage"))
                .contains(bit(&c, "comment:edit"))
        );
        assert!(!c.inherits(bit(&c, "approval:approve")));
        let publish = c.rule(bit(&c, "document:publish")).unwrap();
        assert_eq!(
            publish.terms,
            vec![bit(&c, "document:edit"), bit(&c, "approval:approve")]
        );

        let guest = c.role_class("guest").unwrap();
        assert_eq!(guest.per_subject, Cardinality::AtMostOne);
        assert_eq!(
            names(&c, &guest.cannot_grant),
            ["users:admin", "users:invite"]
        );
        assert!(c.role_class("staff").is_none());

        let roles = c.roles();
        let ids: Vec<&str> = roles.keys().map(RoleId::as_str).collect();
        assert_eq!(
            ids,
            ["admin", "approver", "editor", "guest", "manager", "viewer"]
        );
        let admin = &roles["admin"];
        assert_eq!(admin.title, "Tenant administrator");
        assert_eq!(admin.grants[0].permission, Permission::All);
        assert_eq!(admin.rank, 100);
        let viewer = &roles["viewer"];
        assert_eq!(viewer.title, "viewer");
        assert!(viewer.self_removable);
        assert_eq!(viewer.managed_by, Some("users:admin".parse().unwrap()));
        assert_eq!(roles["guest"].class.as_deref(), Some("guest"));
        assert_eq!(roles["guest"].managed_by, None);
        assert_eq!(roles["manager"].grants.len(), 2);
    }

    #[test]
    fn class_masks_follow_their_patterns() {
        let c = catalog(
            r#"
[resources.a]
actions = ["x", "y"]
[resources.b]
levels = ["read"]
[role_classes.none]
[role_classes.one]
per_subject = "exactly_one"
cannot_grant = ["a:x", "b:*"]
[role_classes.everything]
cannot_grant = ["*"]
"#,
        );
        assert!(c.role_class("none").unwrap().cannot_grant.is_empty());
        assert_eq!(c.role_class("none").unwrap().per_subject, Cardinality::Many);
        assert_eq!(
            names(&c, &c.role_class("one").unwrap().cannot_grant),
            ["a:x", "b:read"]
        );
        assert_eq!(&c.role_class("everything").unwrap().cannot_grant, c.all());
    }

    #[test]
    fn catalog_can_be_shared_across_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Catalog>();
    }

    #[test]
    fn empty_schema_is_an_empty_catalog() {
        let c = catalog("");
        assert!(c.is_empty());
        assert!(c.all().is_empty());
        assert!(c.roles().is_empty());
    }
}
