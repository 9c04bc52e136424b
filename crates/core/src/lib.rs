//! authzd's core: what an authorization decision is made of, with no I/O
//! and no async runtime.
//!
//! # Layout
//!
//! Imports flow downward only: `engine → schema → model`, and every module
//! may read [`limits`].
//!
//! - [`model`]: checked value types shared by every layer (ids, permissions,
//!   revisions, directory records, changes and their effects).
//! - [`schema`]: the permission catalog, staged parse → validate → compile.
//! - [`engine`]: the compiled cache, evaluation, explanations, listings,
//!   the effects of a change, and write planning with the actor rules.
//! - [`limits`]: every documented limit and default.
//!
//! Must not depend on tokio, tonic, prost or a database: the crate's
//! manifest holds that.

pub mod engine;
pub mod limits;
pub mod model;
pub mod schema;
