//! Fencing tokens for cluster nodes' store writes.
//!
//! A node's name is claimed in NATS (`tiers/journal/jetstream.rs`), and a node checks its
//! claim before it writes; but a node that freezes just after that check (a long pause, a
//! stopped VM) still commits when it thaws, possibly after another process took the name over
//! and stored newer writes of the same keys. So the claim is also made in the database: the
//! row of the node's name in `sluice_fence` holds a generation that every claim raises, and
//! every write transaction of a fenced store first reads it under a share lock and writes
//! nothing unless it is still its own. A claim's update waits for the transactions that
//! already passed their check, so what the previous holder commits lands before anything the
//! new one writes, and nothing it commits comes after.

use std::sync::OnceLock;

use crate::error::{ErrorClass, StoreError};

/// The table of claims: one row per node name.
pub(crate) const TABLE: &str = "sluice_fence";

/// One store's claim on a node name: the generation it raised the row to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The node name (`[cluster] node_name`).
    pub node: String,
    /// The generation this claim set; a later claim sets a higher one.
    pub generation: i64,
}

impl Fence {
    /// `Ok` if the generation read in a write transaction (`None`: no row) is still this
    /// claim's; otherwise the error that refuses the whole transaction, unwritten. The error
    /// is transient, so a refused flush is retried (and refused again) rather than turned into
    /// dead letters: its writes stay in the journal, which the name's new holder stores.
    pub(crate) fn check(&self, found: Option<i64>) -> Result<(), StoreError> {
        if found == Some(self.generation) {
            return Ok(());
        }
        let now = match found {
            Some(g) => format!("holds generation {g}"),
            None => "has no row for it".to_string(),
        };
        Err(StoreError::transient(format!(
            "node {:?} is fenced off the database: this process claimed the name at generation {}, and {TABLE} now {now} (another process claimed the name since: a restart of the node, or a takeover of its journal); this process writes nothing more to the database, so stop it",
            self.node, self.generation
        )))
    }

    /// A failure to read the claim in a write transaction, made transient whatever its
    /// class (a dropped `sluice_fence` reads as a missing table, which would otherwise be
    /// permanent): a batch refused permanently is split and its entries become dead letters,
    /// and nothing about the claim is the entries' fault.
    pub(crate) fn unreadable(&self, mut error: StoreError) -> StoreError {
        error.class = ErrorClass::Transient;
        error.message = format!(
            "cannot check node {:?}'s claim in {TABLE}, so nothing is written: {}",
            self.node, error.message
        );
        error
    }

    /// The error for a second claim on one store.
    fn claimed_twice(&self, node: &str) -> StoreError {
        StoreError::permanent(format!(
            "this store is already fenced for node {:?}; open another store for node {node:?}",
            self.node
        ))
    }
}

/// Where a store keeps its claim: set once, by [`crate::tiers::store::Store::claim_fence`].
#[derive(Debug, Default)]
pub(crate) struct FenceSlot(OnceLock<Fence>);

impl FenceSlot {
    /// The claim, once made.
    pub(crate) fn get(&self) -> Option<&Fence> {
        self.0.get()
    }

    /// `Ok` while no claim was made: a store claims one name for its life.
    pub(crate) fn unclaimed(&self, node: &str) -> Result<(), StoreError> {
        match self.0.get() {
            Some(fence) => Err(fence.claimed_twice(node)),
            None => Ok(()),
        }
    }

    /// Keeps the claim the database granted; returns its generation.
    pub(crate) fn keep(&self, node: &str, generation: i64) -> Result<i64, StoreError> {
        self.0
            .set(Fence {
                node: node.to_string(),
                generation,
            })
            .map_err(|fence| fence.claimed_twice(node))?;
        Ok(generation)
    }
}
