//! Engine contract tests: each test states one promise Sluice makes about what an
//! acknowledged write means, and checks it against a real SQLite file read with a separate
//! connection. Failures are injected with `FaultyStore`; time is a `ManualClock`.
//!
//! - `policies`: what each policy leaves in the database when a write is acknowledged.
//! - `failures`: store outages, transient and permanent failures, backpressure, dead letters.
//! - `group_commit`: concurrent write-through writes share transactions; a failure reaches only
//!   the writers it concerns; one key's writes stay in order; shutdown never leaves one hanging.
//! - `read_your_writes`: reads see every acknowledged write even after cache eviction.
//! - `races`: a read-through racing a write never installs the older value.
//! - `transactions`: all or nothing, isolated from readers, WATCH; hashes on every policy;
//!   write-back transactions spanning keyspaces stored in one database transaction (refused,
//!   retried, rewritten, replayed, reloaded after a journal failure).
//! - `coalescing`: write-back folds repeated writes to a key into one row write per flush.
//! - `flush_trigger`: the size trigger counts fresh keys, so a hot set coalesces until the
//!   interval while a bulk load of new keys flushes every `flush_batch` keys.
//! - `expiry`: Redis expiry semantics on the built-in table, cache-only TTL on mapped tables.
//! - `config_validation`: a config that cannot work is refused, naming the field.
//! - `refused_values`: values and keys a mapped column cannot hold are refused up front.
//! - `restart`: a graceful shutdown stores everything; a reopened engine reads it back.
//! - `waitless`: GET, SET and INCR finish at once when nothing needs a wait, and otherwise hand
//!   back the rest of the operation.
//!
//! The randomized ordering property lives in `ordering_proptest.rs`.

mod common;

#[path = "engine/changes.rs"]
mod changes;
#[path = "engine/coalescing.rs"]
mod coalescing;
#[path = "engine/config_validation.rs"]
mod config_validation;
#[path = "engine/expiry.rs"]
mod expiry;
#[path = "engine/failures.rs"]
mod failures;
#[path = "engine/flush_trigger.rs"]
mod flush_trigger;
#[path = "engine/group_commit.rs"]
mod group_commit;
#[path = "engine/policies.rs"]
mod policies;
#[path = "engine/races.rs"]
mod races;
#[path = "engine/read_your_writes.rs"]
mod read_your_writes;
#[path = "engine/refused_values.rs"]
mod refused_values;
#[path = "engine/restart.rs"]
mod restart;
#[path = "engine/transactions.rs"]
mod transactions;
#[path = "engine/waitless.rs"]
mod waitless;
