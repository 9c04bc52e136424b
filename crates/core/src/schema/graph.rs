//! Graph algorithms the schema stages share: strongly connected components
//! and a shortest cycle through a node, both linear in nodes plus edges, and
//! the compact wording of a cycle in a diagnostic.
//!
//! A schema of the maximum size can declare thousands of mutually dependent
//! names; listing every elementary cycle (or every back edge's cycle) grows
//! with the cube of that number. Here each knot of dependencies is found
//! once and named by one short cycle through it. This module must not know
//! what the nodes mean.

use std::collections::VecDeque;

/// Most names a cycle lists before it says how many more it has.
pub(crate) const MAX_CYCLE_NAMES: usize = 8;

/// A directed graph over nodes `0..len`, as adjacency lists. An edge to a
/// node outside `0..len` is ignored.
pub(crate) type Adjacency = Vec<Vec<usize>>;

/// The strongly connected components of `graph` (Tarjan's algorithm,
/// iterative so that a long chain cannot exhaust the stack), each a list of
/// its nodes. A component comes after every component it reaches: listing
/// them in order lists dependencies first.
pub(crate) fn components(graph: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut t = Tarjan {
        index: vec![None; graph.len()],
        low: vec![0; graph.len()],
        on_stack: vec![false; graph.len()],
        stack: Vec::new(),
        counter: 0,
    };
    let no_edges = Vec::new();
    let edges = |v: usize| graph.get(v).unwrap_or(&no_edges);
    let mut out = Vec::new();
    // Each frame: a node and the position of its next edge to follow.
    let mut frames: Vec<(usize, usize)> = Vec::new();
    for root in 0..graph.len() {
        if t.seen(root).is_some() {
            continue;
        }
        t.visit(root);
        frames.push((root, 0));
        while let Some((v, next)) = frames.last_mut() {
            let v = *v;
            if let Some(&w) = edges(v).get(*next) {
                *next += 1;
                match t.seen(w) {
                    None if w < graph.len() => {
                        t.visit(w);
                        frames.push((w, 0));
                    }
                    Some(w_index) if t.on_stack.get(w) == Some(&true) => t.lower(v, w_index),
                    _ => {}
                }
                continue;
            }
            frames.pop();
            let v_low = t.low.get(v).copied().unwrap_or(0);
            if let Some(&(parent, _)) = frames.last() {
                t.lower(parent, v_low);
            }
            if t.seen(v) == Some(v_low) {
                out.push(t.pop_component(v));
            }
        }
    }
    out
}

/// The bookkeeping of Tarjan's algorithm.
struct Tarjan {
    /// Visit order of each node; `None` while unvisited.
    index: Vec<Option<usize>>,
    /// Lowest visit order reachable through the node's subtree.
    low: Vec<usize>,
    on_stack: Vec<bool>,
    stack: Vec<usize>,
    counter: usize,
}

impl Tarjan {
    fn seen(&self, v: usize) -> Option<usize> {
        self.index.get(v).copied().flatten()
    }

    fn visit(&mut self, v: usize) {
        if let (Some(i), Some(l), Some(s)) = (
            self.index.get_mut(v),
            self.low.get_mut(v),
            self.on_stack.get_mut(v),
        ) {
            *i = Some(self.counter);
            *l = self.counter;
            *s = true;
        }
        self.counter += 1;
        self.stack.push(v);
    }

    fn lower(&mut self, v: usize, to: usize) {
        if let Some(l) = self.low.get_mut(v) {
            *l = (*l).min(to);
        }
    }

    fn pop_component(&mut self, root: usize) -> Vec<usize> {
        let mut component = Vec::new();
        while let Some(w) = self.stack.pop() {
            if let Some(s) = self.on_stack.get_mut(w) {
                *s = false;
            }
            component.push(w);
            if w == root {
                break;
            }
        }
        component
    }
}

/// For each of `len` nodes, the index in `components` of the component
/// holding it (`usize::MAX` for a node in none).
pub(crate) fn member_of(components: &[Vec<usize>], len: usize) -> Vec<usize> {
    let mut member_of = vec![usize::MAX; len];
    for (c, component) in components.iter().enumerate() {
        for &v in component {
            if let Some(slot) = member_of.get_mut(v) {
                *slot = c;
            }
        }
    }
    member_of
}

/// Whether a component is a knot: more than one node, or one node with an
/// edge to itself.
pub(crate) fn is_cycle(graph: &[Vec<usize>], component: &[usize]) -> bool {
    match component {
        [] => false,
        [only] => graph.get(*only).is_some_and(|e| e.contains(only)),
        _ => true,
    }
}

/// A shortest cycle from `start` back to itself whose nodes all satisfy
/// `inside` (breadth-first, linear in the edges it looks at), as the nodes
/// from `start` on, without repeating `start` at the end. Empty if there is
/// none.
pub(crate) fn shortest_cycle(
    graph: &[Vec<usize>],
    start: usize,
    inside: impl Fn(usize) -> bool,
) -> Vec<usize> {
    let no_edges = Vec::new();
    let edges = |v: usize| graph.get(v).unwrap_or(&no_edges);
    let mut came_from = vec![usize::MAX; graph.len()];
    let mut queue = VecDeque::from([start]);
    let mut last = None;
    'search: while let Some(v) = queue.pop_front() {
        for &w in edges(v) {
            if w == start {
                last = Some(v);
                break 'search;
            }
            if !inside(w) {
                continue;
            }
            if let Some(slot) = came_from.get_mut(w).filter(|slot| **slot == usize::MAX) {
                *slot = v;
                queue.push_back(w);
            }
        }
    }
    let Some(mut at) = last else {
        return Vec::new();
    };
    let mut path = vec![at];
    // Each step follows a recorded predecessor: at most `len` of them.
    while at != start && path.len() <= graph.len() {
        at = came_from.get(at).copied().unwrap_or(start);
        path.push(at);
    }
    path.reverse();
    path
}

/// `a -> b -> c -> a`, naming at most [`MAX_CYCLE_NAMES`] of the cycle and
/// saying how many it leaves out; `others` more `noun` take part in the same
/// knot without being on this cycle.
pub(crate) fn describe_cycle(cycle: &[String], others: usize, noun: &str) -> String {
    let Some(first) = cycle.first() else {
        return String::new();
    };
    let shown = cycle.len().min(MAX_CYCLE_NAMES);
    let mut text = cycle
        .iter()
        .take(shown)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" -> ");
    if cycle.len() > shown {
        text.push_str(&format!(" -> … ({} more)", cycle.len() - shown));
    }
    text.push_str(" -> ");
    text.push_str(first);
    if others > 0 {
        text.push_str(&format!(
            "; {others} more {noun} depend on these in circles"
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(mut components: Vec<Vec<usize>>) -> Vec<Vec<usize>> {
        for c in &mut components {
            c.sort_unstable();
        }
        components
    }

    #[test]
    fn components_come_after_what_they_reach() {
        // 0 -> 1 -> 2 -> 1, 2 -> 3, 4 alone.
        let graph = vec![vec![1], vec![2], vec![1, 3], vec![], vec![]];
        let found = sorted(components(&graph));
        assert_eq!(found, vec![vec![3], vec![1, 2], vec![0], vec![4]]);
        assert!(is_cycle(&graph, &[1, 2]));
        assert!(!is_cycle(&graph, &[3]));
        assert!(is_cycle(&[vec![0]], &[0]));
    }

    #[test]
    fn a_long_chain_does_not_exhaust_the_stack() {
        let n = 200_000;
        let mut graph: Adjacency = (0..n).map(|i| vec![i + 1]).collect();
        if let Some(last) = graph.last_mut() {
            *last = vec![0];
        }
        let found = components(&graph);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].len(), n);
        assert_eq!(shortest_cycle(&graph, 0, |_| true).len(), n);
    }

    #[test]
    fn shortest_cycle_prefers_the_short_way_back() {
        // 0 -> 1 -> 2 -> 0 and 0 -> 3 -> 0.
        let graph = vec![vec![1, 3], vec![2], vec![0], vec![0]];
        assert_eq!(shortest_cycle(&graph, 0, |_| true), vec![0, 3]);
        assert_eq!(shortest_cycle(&graph, 0, |v| v != 3), vec![0, 1, 2]);
        assert_eq!(shortest_cycle(&[vec![0]], 0, |_| true), vec![0]);
        assert!(shortest_cycle(&[vec![], vec![0]], 0, |_| true).is_empty());
    }

    #[test]
    fn cycles_are_described_compactly() {
        let names = |n: usize| (0..n).map(|i| format!("r{i}")).collect::<Vec<_>>();
        assert_eq!(describe_cycle(&names(1), 0, "roles"), "r0 -> r0");
        assert_eq!(
            describe_cycle(&names(3), 0, "roles"),
            "r0 -> r1 -> r2 -> r0"
        );
        assert_eq!(
            describe_cycle(&names(1000), 5, "roles"),
            "r0 -> r1 -> r2 -> r3 -> r4 -> r5 -> r6 -> r7 -> … (992 more) -> r0; \
             5 more roles depend on these in circles"
        );
    }
}
