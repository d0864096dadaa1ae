//! # Sluice: a write-through / write-back cache in front of a SQL database
//!
//! A key is routed to its **keyspace** (a key template mapped onto a table column, or the
//! built-in `sluice_kv` table), and the keyspace's **policy** decides how a write crosses the
//! three **tiers**: the cache, the journal and the store.
//!
//! ```text
//! key ─▶ keyspace ─▶ policy ─┬─ write-through: store (commit) ─▶ cache ─▶ ack
//!                            ├─ invalidate:    store (commit) ─▶ evict ─▶ ack
//!                            └─ write-back:    journal ─▶ buffer ─▶ cache ─▶ ack
//!                                                           └─ flusher ─▶ store (batched)
//! ```
//!
//! ## What an acknowledgement means
//!
//! | policy | acknowledged after | a crash of Sluice loses |
//! |---|---|---|
//! | write-through | the database committed, and the cache holds the value (or had its copy removed) | nothing |
//! | invalidate | the database committed and the cached copy was removed | nothing |
//! | write-back, journal `fsync` | the journal record is fdatasync'ed, the buffer and cache hold it | nothing, even on power loss |
//! | write-back, journal `os` | the journal record is written to the OS | nothing on a process crash; up to the OS's unsynced writes on power loss |
//! | write-back, journal `interval` | the journal record is written; fsync runs every `fsync_interval` | up to one interval on power loss |
//! | write-back, journal `none` | the buffer and cache hold it | **every write not yet flushed** |
//!
//! With journal `none`, write-back is the seed's plain dirty-bit buffer: a crash, `kill -9`
//! or a drain that runs past its deadline loses the buffered writes, and Sluice says so in its
//! start-up log and at shutdown.
//!
//! ## Guarantees
//!
//! - Reads see every acknowledged write, deletes included: the write-back buffer is consulted
//!   before the cache and the store, even after the cached copy was evicted or expired.
//! - Per key, a newer write never loses to an older one: writes to a key are serialized, a
//!   flush drops a buffered entry only if it was not rewritten meanwhile, at most one store
//!   is in flight per key, and journal replay keeps the highest sequence number per key.
//! - Every write-back entry has an explicit fate: stored, retried with exponential backoff, or
//!   parked as a dead letter (see [`DeadLetter`]). One bad entry never blocks others.
//! - Under write-through a store failure is returned to the caller and the cached copy is
//!   removed, so the cache never holds a value the database refused.
//! - A read-through that races a write never installs the older value.
//!
//! ## Expiry
//!
//! On the built-in table expiry is Redis-exact: the expiry is stored in `expires_at`, and an
//! expired key is absent from buffer, cache and store alike; rows are removed lazily and by a
//! periodic reaper. On a mapped table a TTL (the keyspace `ttl`, or EX/PX on SET) bounds only
//! the cached copy: the row stays, and TTL reports -1.
//!
//! DEL on a mapped key sets the value column to NULL and keeps the row (a NULL value reads as
//! a missing key); `on_delete = "delete-row"` deletes the row instead.
//!
//! Mapped keyspaces live in database 0; SELECT 1-15 reach only the built-in table.

mod api;
pub mod clock;
pub mod config;
mod engine;
pub mod error;
pub mod keyspace;
pub mod metrics;
pub mod model;
pub mod numeric;
pub mod tiers;

pub use api::{
    Access, ExpireCondition, HashEdit, KeyTtl, KeyspaceInfo, KeyspaceSetting, KeyspaceSettings,
    Later, MovedElement, MovedMember, Mutation, SetCondition, SetExpiry, SetOptions, SetOutcome,
    Sluice, Stored, StoredSet, StreamAdded, Transaction, WatchSet, ZSetInputs,
};
pub use bytes::Bytes;
pub use config::{ChangesConfig, Config, Durability, KeyspaceConfig, Policy};
pub use engine::deadletter::{DeadLetter, DeadLetterSelector};
pub use engine::{
    check_config, drop_change_objects, take_deferred_durability, with_deferred_durability,
    with_durability_scope, DurabilityBatch, KeyspaceCounters, ShardedCounter, ShutdownReport,
    SluiceBuilder,
};
pub use error::{ConfigError, OpenError, ScriptKind, SluiceError, StoreError};
pub use model::events::{KeyEvent, KeyEventSink};
pub use model::hash::HashValue;
pub use model::list::ListValue;
pub use model::set::{SetAlgebra, SetValue};
pub use model::zset::{ZSetAlgebra, ZSetValue};
pub use model::{DbKey, Entry, Kind, StoreWrite};
