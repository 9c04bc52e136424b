//! Synthetic directory data for benchmarks: a tree of scopes, nested groups,
//! subjects with memberships and role assignments, and a stream of random
//! check questions drawn from them.
//!
//! The data is built for the built-in schema (`src/schema/default.toml`) and
//! is shaped so that checks meet every part of evaluation: inherited scopes
//! (roles assigned high in a tree of depth 4, checked mostly at leaves),
//! nested groups (three levels), direct assignments, locked subjects, a
//! tenant administrator, a non-inheriting permission and a derived one, with
//! a mix of allowed and denied answers.
//!
//! Pure and deterministic: the same sizes and seed give the same data and the
//! same questions. Elements are referred to by index; the `*_id` functions
//! name them. Must not do I/O, and must not know how the data is loaded (the
//! `bench` subcommand sends it over gRPC, the criterion bench builds the
//! cache from it directly).

/// Groups at the top of the group forest; every further group is nested in
/// one of the groups before it, three to a parent.
pub const GROUP_ROOTS: usize = 10;

/// The builtin roles the data assigns (besides one `admin`).
pub const ROLES: [&str; 4] = ["viewer", "editor", "manager", "approver"];

/// The permissions questions ask about: ladder levels, a follower type, an
/// action, a non-inheriting action and a derived permission.
pub const PERMISSIONS: [&str; 9] = [
    "document:read",
    "document:edit",
    "document:manage",
    "document:admin",
    "comment:read",
    "comment:edit",
    "users:invite",
    "approval:approve",
    "document:publish",
];

/// A permission only the tenant administrator holds: who holds it is a
/// listing of one among every subject.
pub const RARE_PERMISSION: &str = "users:admin";

/// A permission most subjects hold through their groups.
pub const COMMON_PERMISSION: &str = "document:read";

/// The subject that `authzd bench scale` puts into every group, whose
/// effective permissions it lists.
pub const MEMBER_OF_ALL: usize = 2;

/// The depth the scope tree is shaped for (below the root).
pub const SCOPE_DEPTH: u32 = 4;

/// A small, fast, seedable generator (SplitMix64). Not for secrets.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        // Multiply-shift: unbiased enough for load generation, no division.
        let wide = u128::from(self.next_u64()) * n as u128;
        usize::try_from(wide >> 64).unwrap_or(0)
    }

    /// True with probability `1 / n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// One of `items`, each as likely (`items` must not be empty).
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items
            .get(self.below(items.len()))
            .copied()
            .unwrap_or_default()
    }
}

/// How much data to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// Subjects (users).
    pub subjects: usize,
    /// Groups.
    pub groups: usize,
    /// Scopes below the root.
    pub scopes: usize,
}

/// Who receives a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// A subject, by index.
    Subject(usize),
    /// A group, by index.
    Group(usize),
}

/// A role given at a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assign {
    /// A builtin role of the default schema.
    pub role: &'static str,
    /// Who holds it.
    pub who: Who,
    /// The scope by index; `None` is the tenant root.
    pub scope: Option<usize>,
}

/// One check question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Question {
    /// The acting subject, by index.
    pub subject: usize,
    /// The permission.
    pub permission: &'static str,
    /// The scope by index; `None` is the tenant root.
    pub scope: Option<usize>,
}

/// A synthetic tenant.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The sizes it was made for.
    pub sizes: Sizes,
    /// Children per scope: the smallest (at least 2) for which a tree of
    /// [`SCOPE_DEPTH`] levels holds every scope.
    pub fanout: usize,
    /// Each scope's parent (`None`: the root), in breadth-first order, so a
    /// parent always comes before its children.
    pub scope_parents: Vec<Option<usize>>,
    /// Each scope's depth below the root (1 for the root's children).
    pub scope_depths: Vec<u32>,
    /// Which subjects are created locked (one in a hundred).
    pub locked: Vec<bool>,
    /// Group nestings: (parent group, child group).
    pub nestings: Vec<(usize, usize)>,
    /// Subject memberships: (group, subject).
    pub memberships: Vec<(usize, usize)>,
    /// Role assignments: one per group, then direct ones to subjects.
    pub assignments: Vec<Assign>,
}

/// The smallest fan-out (at least 2) whose tree of `SCOPE_DEPTH` levels
/// holds `n` scopes.
fn fanout_for(n: usize) -> usize {
    let mut f: usize = 2;
    loop {
        let capacity: usize = (1..=SCOPE_DEPTH).map(|d| f.saturating_pow(d)).sum();
        if capacity >= n {
            return f;
        }
        f += 1;
    }
}

impl Dataset {
    /// Makes the data for `sizes`, fixed by `seed`.
    pub fn generate(sizes: Sizes, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let fanout = fanout_for(sizes.scopes);
        let scope_parents: Vec<Option<usize>> = (0..sizes.scopes)
            .map(|i| (i >= fanout).then(|| i / fanout - 1))
            .collect();
        let mut scope_depths: Vec<u32> = Vec::with_capacity(sizes.scopes);
        for parent in &scope_parents {
            let depth = parent
                .and_then(|p| scope_depths.get(p).copied())
                .unwrap_or(0)
                + 1;
            scope_depths.push(depth);
        }
        let at_depth = |d: u32| -> Vec<usize> {
            (0..sizes.scopes)
                .filter(|&i| scope_depths.get(i) == Some(&d))
                .collect()
        };
        let (level1, level2) = (at_depth(1), at_depth(2));

        let locked = (0..sizes.subjects).map(|i| i % 100 == 99).collect();

        let nestings = (GROUP_ROOTS..sizes.groups)
            .map(|child| ((child - GROUP_ROOTS) / 3, child))
            .collect();

        let mut memberships = Vec::new();
        if sizes.groups > 0 {
            for subject in 0..sizes.subjects {
                let first = rng.below(sizes.groups);
                memberships.push((first, subject));
                if sizes.groups > 1 && rng.one_in(2) {
                    let second = (first + 1 + rng.below(sizes.groups - 1)) % sizes.groups;
                    memberships.push((second, subject));
                }
            }
        }

        // Group roles sit high in the tree (root, depth 1 or 2), so most of
        // what they give is inherited by the leaves where questions land.
        let mut assignments = Vec::new();
        for group in 0..sizes.groups {
            let role = ROLES[rng.below(ROLES.len())];
            let pick = |rng: &mut Rng, level: &[usize]| level.get(rng.below(level.len())).copied();
            let scope = match rng.below(10) {
                0 => None,
                1..=4 => pick(&mut rng, &level1),
                _ => pick(&mut rng, &level2).or_else(|| pick(&mut rng, &level1)),
            };
            assignments.push(Assign {
                role,
                who: Who::Group(group),
                scope,
            });
        }
        // Direct roles anywhere in the tree, for one subject in ten.
        for subject in 0..sizes.subjects {
            if rng.one_in(10) {
                let role = ROLES[rng.below(ROLES.len())];
                let scope = (sizes.scopes > 0).then(|| rng.below(sizes.scopes));
                assignments.push(Assign {
                    role,
                    who: Who::Subject(subject),
                    scope,
                });
            }
        }
        // One tenant administrator.
        if sizes.subjects > 0 {
            assignments.push(Assign {
                role: "admin",
                who: Who::Subject(0),
                scope: None,
            });
        }

        Self {
            sizes,
            fanout,
            scope_parents,
            scope_depths,
            locked,
            nestings,
            memberships,
            assignments,
        }
    }

    /// The id of subject `i`.
    pub fn subject_id(i: usize) -> String {
        format!("user-{i:06}")
    }

    /// The id of group `i`.
    pub fn group_id(i: usize) -> String {
        format!("group-{i:04}")
    }

    /// The id of scope `i`; `None` is the root, named by the empty string
    /// as the API does.
    pub fn scope_id(i: Option<usize>) -> String {
        i.map(|i| format!("scope-{i:05}")).unwrap_or_default()
    }

    /// The deepest scope's depth below the root (0 without scopes).
    pub fn depth(&self) -> u32 {
        self.scope_depths.iter().copied().max().unwrap_or(0)
    }

    /// The scopes level by level, each level a contiguous range of indexes
    /// whose parents are all in earlier levels.
    pub fn scope_levels(&self) -> Vec<std::ops::Range<usize>> {
        let mut levels = Vec::new();
        let mut start = 0;
        while start < self.scope_depths.len() {
            let depth = self.scope_depths[start];
            let end = start
                + self.scope_depths[start..]
                    .iter()
                    .take_while(|&&d| d == depth)
                    .count();
            levels.push(start..end);
            start = end;
        }
        levels
    }

    /// How many subjects are created locked.
    pub fn locked_count(&self) -> usize {
        self.locked.iter().filter(|&&l| l).count()
    }

    /// A random question: any subject, any of [`PERMISSIONS`], any scope
    /// (so mostly the leaves of the tree).
    pub fn question(&self, rng: &mut Rng) -> Question {
        Question {
            subject: rng.below(self.sizes.subjects),
            permission: PERMISSIONS[rng.below(PERMISSIONS.len())],
            scope: (self.sizes.scopes > 0).then(|| rng.below(self.sizes.scopes)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(subjects: usize, groups: usize, scopes: usize) -> Sizes {
        Sizes {
            subjects,
            groups,
            scopes,
        }
    }

    #[test]
    fn default_sizes_make_a_tree_of_depth_four() {
        let d = Dataset::generate(sizes(10_000, 100, 1_000), 1);
        assert_eq!(d.fanout, 6);
        assert_eq!(d.depth(), 4);
        let levels = d.scope_levels();
        assert_eq!(levels.len(), 4);
        assert_eq!(levels.iter().map(|l| l.len()).sum::<usize>(), 1_000);
        for (i, parent) in d.scope_parents.iter().enumerate() {
            if let Some(p) = parent {
                assert!(*p < i, "parent {p} of scope {i} comes later");
            }
        }
        assert_eq!(d.locked_count(), 100);
        assert_eq!(d.nestings.len(), 90);
        assert!(d.memberships.len() >= 10_000);
    }

    #[test]
    fn the_same_seed_gives_the_same_data() {
        let a = Dataset::generate(sizes(500, 20, 50), 7);
        let b = Dataset::generate(sizes(500, 20, 50), 7);
        assert_eq!(a.memberships, b.memberships);
        assert_eq!(a.assignments, b.assignments);
    }

    #[test]
    fn empty_sizes_are_fine() {
        let d = Dataset::generate(sizes(0, 0, 0), 1);
        assert!(d.assignments.is_empty() && d.memberships.is_empty());
        assert!(d.scope_levels().is_empty());
        let q = d.question(&mut Rng::new(1));
        assert_eq!(q.scope, None);
    }

    #[test]
    fn below_stays_in_range() {
        let mut rng = Rng::new(3);
        assert!((0..10_000).all(|_| rng.below(7) < 7));
        assert_eq!(rng.below(0), 0);
    }
}
