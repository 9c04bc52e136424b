//! [`Few`]: an ordered set for the per-principal indexes of a tenant, where
//! a million keys each hold one or two values.
//!
//! A persistent `OrdSet` allocates a whole B-tree leaf (sixteen slots) for
//! a single value; `Few` keeps up to [`INLINE_MAX`] values in one shared
//! sorted slice (copied on change, which costs nothing at that size) and
//! becomes an `OrdSet` beyond, so a principal with many values still
//! changes in O(log n). Clones are O(1) either way, as the copy-on-write
//! tenant state needs. Must not know what it indexes.

use std::sync::Arc;

use imbl::OrdSet;

/// Most values kept in the shared slice.
const INLINE_MAX: usize = 8;

/// An ordered set, compact while small.
#[derive(Debug, Clone)]
pub enum Few<V: Ord + Clone> {
    /// At most [`INLINE_MAX`] values, sorted, without repeats.
    Inline(Arc<[V]>),
    /// More.
    Tree(OrdSet<V>),
}

impl<V: Ord + Clone> Default for Few<V> {
    fn default() -> Self {
        Few::Inline(Arc::from(Vec::new()))
    }
}

impl<V: Ord + Clone> Few<V> {
    /// Adds `value`; nothing if it is there.
    pub fn insert(&mut self, value: V) {
        match self {
            Few::Inline(values) => {
                let Err(at) = values.binary_search(&value) else {
                    return;
                };
                if values.len() < INLINE_MAX {
                    let mut grown = Vec::with_capacity(values.len() + 1);
                    #[expect(
                        clippy::indexing_slicing,
                        reason = "binary_search's Err(at) is an insertion point, at most values.len()"
                    )]
                    {
                        grown.extend_from_slice(&values[..at]);
                        grown.push(value);
                        grown.extend_from_slice(&values[at..]);
                    }
                    *values = Arc::from(grown);
                } else {
                    let mut tree: OrdSet<V> = values.iter().cloned().collect();
                    tree.insert(value);
                    *self = Few::Tree(tree);
                }
            }
            Few::Tree(tree) => {
                tree.insert(value);
            }
        }
    }

    /// Removes `value`, if it is there.
    pub fn remove(&mut self, value: &V) {
        match self {
            Few::Inline(values) => {
                if let Ok(at) = values.binary_search(value) {
                    let mut shrunk = values.to_vec();
                    shrunk.remove(at);
                    *values = Arc::from(shrunk);
                }
            }
            Few::Tree(tree) => {
                tree.remove(value);
            }
        }
    }

    /// Whether `value` is in the set.
    pub fn contains(&self, value: &V) -> bool {
        match self {
            Few::Inline(values) => values.binary_search(value).is_ok(),
            Few::Tree(tree) => tree.contains(value),
        }
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        match self {
            Few::Inline(values) => values.is_empty(),
            Few::Tree(tree) => tree.is_empty(),
        }
    }

    /// The values in ascending order.
    pub fn iter(&self) -> Box<dyn Iterator<Item = &V> + '_> {
        match self {
            Few::Inline(values) => Box::new(values.iter()),
            Few::Tree(tree) => Box::new(tree.iter()),
        }
    }
}

impl<'a, V: Ord + Clone> IntoIterator for &'a Few<V> {
    type Item = &'a V;
    type IntoIter = Box<dyn Iterator<Item = &'a V> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<V: Ord + Clone> PartialEq for Few<V> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl<V: Ord + Clone> Eq for Few<V> {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Growing past the inline bound and shrinking back keeps the set's
    /// members and their order, whichever form holds them.
    #[test]
    fn inline_and_tree_hold_the_same_set() {
        let mut few: Few<u32> = Few::default();
        let mut reference = std::collections::BTreeSet::new();
        for v in [5, 3, 9, 3, 1, 12, 7, 8, 2, 11, 0, 4] {
            few.insert(v);
            reference.insert(v);
            assert!(few.iter().eq(reference.iter()));
        }
        assert!(matches!(few, Few::Tree(_)));
        for v in [3, 100, 0, 12] {
            few.remove(&v);
            reference.remove(&v);
            assert!(few.iter().eq(reference.iter()));
            assert_eq!(few.contains(&v), reference.contains(&v));
        }
        let mut small: Few<u32> = Few::default();
        small.insert(2);
        small.insert(1);
        small.remove(&2);
        assert!(small.iter().eq([1].iter()));
        small.remove(&1);
        assert!(small.is_empty());
    }
}
