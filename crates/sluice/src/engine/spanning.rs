//! Transactions whose write-back writes span keyspaces (a MULTI/EXEC, script, MSET or RENAME
//! writing the built-in keyspace and a mapped one, both write-back): stored whole, in one
//! database transaction.
//!
//! Each keyspace's buffer holds its own members, marked
//! [`BufferedGroup::spans_keyspaces`], and no keyspace's drain takes them. The engine keeps a
//! registry of these groups, each with the keyspaces it spans, entered once every member is
//! buffered (at the commit, at replay, at the reload after a journal failure). A flush of any of
//! those keyspaces then takes the group's members from every buffer and stores them with one
//! [`crate::tiers::store::Store::write_atomic`], holding the flush lock of each keyspace the
//! group spans: so at most one store is in flight per key, as with a keyspace's own drain. The
//! locks are taken in keyspace order with no other flush lock held (as the reload after a
//! journal failure takes them all), so two flushers never wait for each other.
//!
//! Each member's outcome is applied in its own keyspace (buffer, counters, dead letters), and
//! all members share it: stored together, refused together (each parked as a dead letter), or
//! kept together for the retry with backoff. A group leaves the registry once none of its members
//! is buffered any more (stored, parked, rewritten by later writes, or cleared by FLUSHDB).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::buffer::{BufferedGroup, FlushItem};
use super::flush::flush_op;
use super::keyspace::Keyspace;
use super::Engine;
use crate::error::StoreError;
use crate::metrics::events;
use crate::tiers::store::{BatchOutcome, StoreOp};

/// The transactions spanning write-back keyspaces that may still have members buffered, by the
/// first sequence number of their group.
#[derive(Default)]
pub(crate) struct SpanningGroups {
    groups: BTreeMap<u64, Spanning>,
}

/// One registered transaction: its group and the ids of the keyspaces it wrote.
#[derive(Debug, Clone)]
struct Spanning {
    group: BufferedGroup,
    keyspaces: Vec<usize>,
}

impl SpanningGroups {
    /// Registers `group`, written to `keyspaces`.
    pub(crate) fn insert(
        &mut self,
        group: BufferedGroup,
        keyspaces: impl IntoIterator<Item = usize>,
    ) {
        let keyspaces: BTreeSet<usize> = keyspaces.into_iter().collect();
        self.groups.insert(
            group.txn.first_seq,
            Spanning {
                group,
                keyspaces: keyspaces.into_iter().collect(),
            },
        );
    }

    /// Registers each group with its keyspaces (as replayed from the journal).
    pub(crate) fn extend(
        &mut self,
        groups: impl IntoIterator<Item = (BufferedGroup, BTreeSet<usize>)>,
    ) {
        for (group, keyspaces) in groups {
            self.insert(group, keyspaces);
        }
    }

    /// Forgets every group (the buffers are being rebuilt from the journal).
    pub(crate) fn clear(&mut self) {
        self.groups.clear();
    }
}

impl Engine {
    /// Registers a committed transaction's group spanning `keyspaces` (ids), once every member
    /// is buffered: from then on a flush of any of them stores the whole group.
    pub(super) fn register_spanning_group(
        &self,
        group: BufferedGroup,
        keyspaces: impl IntoIterator<Item = usize>,
    ) {
        self.spanning.lock().insert(group, keyspaces);
    }

    /// Stores every registered transaction that spans `keyspace` (an id), each in one database
    /// transaction, holding the flush locks of all the keyspaces they span. Returns
    /// the first error of a group left buffered for the retry; the other groups are still tried.
    pub(crate) async fn flush_spanning_groups(&self, keyspace: usize) -> Result<(), StoreError> {
        let groups: Vec<Spanning> = self
            .spanning
            .lock()
            .groups
            .values()
            .filter(|g| g.keyspaces.contains(&keyspace))
            .cloned()
            .collect();
        if groups.is_empty() {
            return Ok(());
        }
        let spanned: BTreeSet<usize> = groups
            .iter()
            .flat_map(|g| g.keyspaces.iter().copied())
            .collect();
        let keyspaces: Vec<&Keyspace> = spanned
            .iter()
            .filter_map(|id| self.keyspaces.iter().find(|k| k.id == *id))
            .map(|k| &**k)
            .collect();
        // In keyspace order, holding no other flush lock.
        let mut flushing = Vec::with_capacity(keyspaces.len());
        for ks in &keyspaces {
            flushing.push(ks.flush_lock.lock().await);
        }
        let taken: Vec<Vec<(&Keyspace, Vec<FlushItem>)>> = groups
            .iter()
            .map(|g| {
                keyspaces
                    .iter()
                    .filter(|ks| g.keyspaces.contains(&ks.id))
                    .filter_map(|ks| {
                        let members = ks.buffer.as_ref()?.take_group(g.group);
                        (!members.is_empty()).then_some((*ks, members))
                    })
                    .collect()
            })
            .collect();
        if taken.iter().any(|parts| !parts.is_empty()) {
            self.journal_barrier_before_flush().await?;
        }
        let mut first_error = None;
        for (g, parts) in groups.iter().zip(taken) {
            if !parts.is_empty() {
                if let Err(e) = self.store_spanning_group(&parts).await {
                    first_error.get_or_insert(e);
                }
            }
            let still_buffered = keyspaces
                .iter()
                .any(|ks| ks.buffer.as_ref().is_some_and(|b| b.holds_group(g.group)));
            if !still_buffered {
                self.spanning.lock().groups.remove(&g.group.txn.first_seq);
            }
        }
        drop(flushing);
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Stores one spanning transaction's members (per keyspace) in one database transaction,
    /// then applies the outcome to each member in its own keyspace.
    async fn store_spanning_group(
        &self,
        parts: &[(&Keyspace, Vec<FlushItem>)],
    ) -> Result<(), StoreError> {
        let now = self.now();
        let ops: Vec<StoreOp> = parts
            .iter()
            .flat_map(|(ks, items)| items.iter().map(move |item| flush_op(ks, item, now)))
            .collect();
        let len = ops.len();
        let started = Instant::now();
        let stored = self.store.write_atomic(ops).await;
        let took = started.elapsed();
        self.metrics.latency.record(events::KEYSPACE_FLUSH, took);
        let elapsed = took.as_micros() as u64;
        let committed = stored.is_ok();
        let mut outcome: BatchOutcome = match stored {
            Ok(written) => written.into_iter().map(Ok).collect(),
            Err(failure) => vec![Err(failure.error); len],
        };
        // A store owes one outcome per entry: none is not a success.
        outcome.resize_with(len, || {
            Err(StoreError::transient(
                "the store reported no outcome for this write",
            ))
        });
        let mut outcome = outcome.into_iter();
        let mut first_error = None;
        for (ks, items) in parts {
            ks.counters.last_flush_us.store(elapsed, Ordering::Relaxed);
            ks.counters.flush.record(took, items.len());
            if committed {
                ks.counters.flushes.fetch_add(1, Ordering::Relaxed);
            }
            let part: BatchOutcome = outcome.by_ref().take(items.len()).collect();
            if let Err(e) = self.settle_flushed(ks, items, part, now).await {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
