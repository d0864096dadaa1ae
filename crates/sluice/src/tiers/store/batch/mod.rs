//! Set-based batch application, shared by the network backends (PostgreSQL, MySQL).
//!
//! A batch is planned into phases of statement groups: within a phase every row is touched by
//! exactly one group (one target table and column pair, or the built-in table) and by one
//! entry of it: repeated entries for a row are collapsed to the last one, which is what applying
//! them in order would leave. A group becomes one upsert and one delete statement (a backend may
//! split them into chunks). Rows of a phase are disjoint, so its statements commute; a new phase
//! starts only when a row reappears under another group (two keyspaces mapping the same table),
//! which keeps the batch's order where it matters.
//!
//! Each statement runs under a savepoint. When it fails with a permanent error, the savepoint
//! is rolled back and the rows are bisected, each half under its own savepoint, until the
//! failing rows are alone; a failing row then falls back to its earlier entries, newest first,
//! until one applies, exactly as in-order application would have left the row. So a bad entry
//! costs O(log n) extra statements and every good entry still commits.

mod apply;
mod plan;

pub(crate) use apply::{
    apply_planned, match_returned, name_single_key, record_stored, SetApplier, StatementFailure,
    StatementStored,
};
pub(crate) use plan::{plan_batch, pow2_chunks, single_statement};

/// Builders shared by the planner's and the applier's tests.
#[cfg(test)]
mod testing {
    use bytes::Bytes;

    use crate::model::StoreWrite;
    use crate::tiers::store::{StoreOp, Target};

    pub(super) fn op(db: u8, key: &str, value: Option<&str>) -> StoreOp {
        StoreOp {
            target: Target::Builtin { db },
            key: Bytes::copy_from_slice(key.as_bytes()),
            write: match value {
                Some(v) => StoreWrite::string(Bytes::copy_from_slice(v.as_bytes()), None),
                None => StoreWrite::Delete,
            },
        }
    }
}
