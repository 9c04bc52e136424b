//! authzd: a gRPC RBAC authorization service.
//!
//! Backend services ask it "may subject S do P here?", "what may S do?" and
//! "who may do P?"; administrators change groups and roles through it; and
//! subscribers follow a feed of every committed change. See `DESIGN.md` in
//! the repository's shared folder for the contract and `README.md` for use.
//!
//! # Layout
//!
//! Imports flow downward only: `api → service → engine, store, watch →
//! schema → model`.
//!
//! - [`model`]: checked value types shared by every layer (ids, permissions,
//!   revisions, directory records, changes).
//! - [`schema`]: the permission catalog, parsed, validated (every error with
//!   file, line and key) and compiled to bit positions with implications
//!   closed.

pub mod model;
pub mod schema;
