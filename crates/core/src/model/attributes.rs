//! A subject's attributes, stored once per distinct set. Subjects of a
//! large tenant mostly repeat a few sets (`dept=d7`): each subject holds a
//! pointer to a shared, immutable map, taken from a process-wide pool when
//! the attributes are made (decoded from the store, converted from a
//! request), instead of a map and strings of its own (about 600 bytes for
//! one pair). No attributes cost nothing.
//!
//! The pool keeps only sets some subject still holds: it drops the others
//! each time it has doubled since it last did. Must not change what the
//! attributes are: equality, order, hashing and the serialised form are the
//! map's.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The map every empty set reads as.
static EMPTY: BTreeMap<String, String> = BTreeMap::new();

/// Sets smaller than this are not swept for.
const SWEEP_FLOOR: usize = 1024;

/// The distinct sets in use, and the size at which the next sweep runs.
struct Pool {
    sets: HashSet<Arc<BTreeMap<String, String>>>,
    sweep_at: usize,
}

static POOL: LazyLock<Mutex<Pool>> = LazyLock::new(|| {
    Mutex::new(Pool {
        sets: HashSet::new(),
        sweep_at: SWEEP_FLOOR,
    })
});

/// A subject's attributes: reads as a `BTreeMap` of key to value (through
/// `Deref`); made from one, or from pairs.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Attributes(Option<Arc<BTreeMap<String, String>>>);

impl Attributes {
    /// The shared copy of `map`, added to the pool when it is new.
    fn intern(map: BTreeMap<String, String>) -> Self {
        if map.is_empty() {
            return Self(None);
        }
        let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(shared) = pool.sets.get(&map) {
            return Self(Some(shared.clone()));
        }
        if pool.sets.len() >= pool.sweep_at {
            // Sets only the pool still holds belong to no subject.
            pool.sets.retain(|set| Arc::strong_count(set) > 1);
            pool.sweep_at = (pool.sets.len() * 2).max(SWEEP_FLOOR);
        }
        let shared = Arc::new(map);
        pool.sets.insert(shared.clone());
        Self(Some(shared))
    }
}

impl Deref for Attributes {
    type Target = BTreeMap<String, String>;

    fn deref(&self) -> &Self::Target {
        self.0.as_deref().unwrap_or(&EMPTY)
    }
}

impl From<BTreeMap<String, String>> for Attributes {
    fn from(map: BTreeMap<String, String>) -> Self {
        Self::intern(map)
    }
}

impl<const N: usize> From<[(String, String); N]> for Attributes {
    fn from(pairs: [(String, String); N]) -> Self {
        Self::intern(BTreeMap::from(pairs))
    }
}

impl FromIterator<(String, String)> for Attributes {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Self {
        Self::intern(pairs.into_iter().collect())
    }
}

impl IntoIterator for Attributes {
    type Item = (String, String);
    type IntoIter = std::collections::btree_map::IntoIter<String, String>;

    fn into_iter(self) -> Self::IntoIter {
        self.0
            .map(Arc::unwrap_or_clone)
            .unwrap_or_default()
            .into_iter()
    }
}

impl fmt::Debug for Attributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl Serialize for Attributes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Attributes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeMap::deserialize(deserializer).map(Self::intern)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dept(d: &str) -> Attributes {
        [("dept".to_string(), d.to_string())].into()
    }

    #[test]
    fn equal_sets_share_one_map() {
        let (a, b) = (dept("d7"), dept("d7"));
        assert_eq!(a, b);
        let (Some(x), Some(y)) = (&a.0, &b.0) else {
            panic!("not empty");
        };
        assert!(Arc::ptr_eq(x, y));
        assert_ne!(a, dept("d8"));
        assert_eq!(a.get("dept").map(String::as_str), Some("d7"));
    }

    #[test]
    fn empty_sets_hold_nothing() {
        let empty = Attributes::from(BTreeMap::new());
        assert!(empty.0.is_none() && empty.is_empty());
        assert_eq!(empty, Attributes::default());
    }

    #[test]
    fn reads_and_prints_as_the_map() {
        let a = dept("d1");
        assert_eq!(format!("{a:?}"), r#"{"dept": "d1"}"#);
        let pairs: Vec<(String, String)> = a.into_iter().collect();
        assert_eq!(pairs, vec![("dept".to_string(), "d1".to_string())]);
        let again: Attributes = pairs.into_iter().collect();
        assert_eq!(again, dept("d1"));
    }

    #[test]
    fn sets_no_subject_holds_are_swept() {
        for i in 0..3 * SWEEP_FLOOR {
            drop(dept(&format!("sweep-{i}")));
        }
        let held = POOL.lock().unwrap().sets.len();
        assert!(held <= 2 * SWEEP_FLOOR + 1, "{held}");
    }
}
