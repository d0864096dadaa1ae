//! The three tiers a write passes through: the cache, the journal and the store.
//! Each is a small async trait with one file per backend.

pub mod cache;
pub mod changes;
pub mod journal;
pub mod store;
