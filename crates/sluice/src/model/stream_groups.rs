//! A stream's consumer groups, and the rules Redis 7.0 applies to them: each group's last
//! delivered ID and read counter, its pending entries list (PEL) and its consumers.
//!
//! The groups are kept in the stream's metadata row ([`super::stream::StreamMeta::groups`]),
//! so a command that changes only groups (XREADGROUP, XACK, XCLAIM, XGROUP) rewrites that row
//! and no entry row. The row grows with the pending entries, not with the stream: a group whose
//! consumers acknowledge what they read keeps it small.
//!
//! Encoding (empty bytes: no group), every integer big-endian:
//!
//! ```text
//! version u8 = 1, groups u32, then per group in name order:
//!   name (u32 length, bytes), last_id (u64 ms, u64 seq), entries_read i64 (-1: unknown),
//!   consumers u32, then per consumer in name order: name, seen_time u64
//!   pending u32, then per entry in ID order: id (u64, u64), consumer index u32,
//!     delivery_time u64, delivery_count u64
//! ```
//!
//! Times are Unix milliseconds from the caller's clock (the engine's, injectable in tests).

use std::collections::{BTreeMap, BTreeSet};

use bytes::{BufMut, Bytes, BytesMut};

use super::hash::MalformedHash;
use super::stream::StreamId;

const VERSION: u8 = 1;

/// One entry of a group's pending entries list: delivered, not yet acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The consumer it was last delivered to.
    pub consumer: Bytes,
    /// When it was last delivered (Unix ms).
    pub delivery_time: u64,
    /// How many times it was delivered.
    pub delivery_count: u64,
}

/// A consumer of a group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Consumer {
    /// When the consumer last read or claimed (Unix ms).
    pub seen_time: u64,
    /// The IDs pending for it (a view of the group's list, kept in step with it).
    pending: BTreeSet<StreamId>,
}

impl Consumer {
    /// How many entries are pending for this consumer.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// The IDs pending for this consumer, in ID order.
    pub fn pending(&self) -> impl DoubleEndedIterator<Item = StreamId> + '_ {
        self.pending.iter().copied()
    }

    /// The IDs pending for this consumer from `start` on, in ID order.
    pub fn pending_from(&self, start: StreamId) -> impl Iterator<Item = StreamId> + '_ {
        self.pending.range(start..).copied()
    }
}

/// A consumer group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Group {
    /// The last ID delivered to the group (`>` reads after it).
    pub last_id: StreamId,
    /// The group's logical read counter (`entries-read`); `None` when unknown (Redis's -1). A
    /// signed count, as Redis keeps it: ENTRIESREAD may set it near the top, where a read
    /// wraps it around.
    pub entries_read: Option<i64>,
    pending: BTreeMap<StreamId, Pending>,
    consumers: BTreeMap<Bytes, Consumer>,
}

/// What Redis's lag and read-counter rules look at in a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamFacts {
    /// Live entries.
    pub length: u64,
    /// The largest ID ever added or set.
    pub last_id: StreamId,
    /// Entries ever added.
    pub entries_added: u64,
    /// The largest ID deleted (0-0: none).
    pub max_deleted: StreamId,
    /// The first live entry's ID (0-0 in an empty stream).
    pub first_id: StreamId,
}

impl StreamFacts {
    /// Whether a deleted entry may lie at or after `start` (Redis's `streamRangeHasTombstones`
    /// over `start..`).
    fn tombstones_from(&self, start: StreamId) -> bool {
        if self.length == 0 || self.max_deleted == StreamId::MIN {
            return false;
        }
        if self.first_id > self.max_deleted {
            return false;
        }
        start <= self.max_deleted
    }

    /// The read counter of `id` when it can be known (Redis's
    /// `streamEstimateDistanceFromFirstEverEntry`).
    fn read_counter_at(&self, id: StreamId) -> Option<u64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if self.length == 0 && id <= self.last_id {
            return Some(self.entries_added);
        }
        match id.cmp(&self.last_id) {
            std::cmp::Ordering::Equal => return Some(self.entries_added),
            std::cmp::Ordering::Greater => return None,
            std::cmp::Ordering::Less => {}
        }
        if self.max_deleted == StreamId::MIN || self.max_deleted < self.first_id {
            match id.cmp(&self.first_id) {
                std::cmp::Ordering::Less => {
                    return Some(self.entries_added.saturating_sub(self.length))
                }
                std::cmp::Ordering::Equal => {
                    return Some(self.entries_added.saturating_sub(self.length) + 1)
                }
                std::cmp::Ordering::Greater => {}
            }
        }
        None
    }
}

impl Group {
    /// A group whose reads start after `last_id`.
    pub fn new(last_id: StreamId, entries_read: Option<i64>) -> Group {
        Group {
            last_id,
            entries_read,
            ..Group::default()
        }
    }

    /// The pending entries list, in ID order.
    pub fn pending(&self) -> &BTreeMap<StreamId, Pending> {
        &self.pending
    }

    /// The consumers, in name order.
    pub fn consumers(&self) -> &BTreeMap<Bytes, Consumer> {
        &self.consumers
    }

    /// A consumer by name.
    pub fn consumer(&self, name: &[u8]) -> Option<&Consumer> {
        self.consumers.get(name)
    }

    /// Creates a consumer seen at `now`; false if it exists (XGROUP CREATECONSUMER).
    pub fn create_consumer(&mut self, name: &Bytes, now: u64) -> bool {
        if self.consumers.contains_key(name) {
            return false;
        }
        self.consumers.insert(
            name.clone(),
            Consumer {
                seen_time: now,
                pending: BTreeSet::new(),
            },
        );
        true
    }

    /// The consumer `name`, created if missing, marked seen at `now`; whether it was created.
    pub fn touch_consumer(&mut self, name: &Bytes, now: u64) -> bool {
        match self.consumers.get_mut(name) {
            Some(c) => {
                c.seen_time = now;
                false
            }
            None => self.create_consumer(name, now),
        }
    }

    /// Deletes a consumer and its pending entries (they are acknowledged as Redis does); how
    /// many were pending, or `None` if there was no such consumer (XGROUP DELCONSUMER).
    pub fn delete_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let consumer = self.consumers.remove(name)?;
        for id in &consumer.pending {
            self.pending.remove(id);
        }
        Some(consumer.pending.len())
    }

    /// Records `id` as delivered to `consumer` at `now` (a `>` read without NOACK): a new
    /// pending entry, or one that another consumer held given to this one with its count
    /// reset, as Redis does after XGROUP SETID moved the group back.
    pub fn deliver(&mut self, id: StreamId, consumer: &Bytes, now: u64) {
        if let Some(previous) = self.pending.get(&id) {
            let previous = previous.consumer.clone();
            if let Some(c) = self.consumers.get_mut(&previous) {
                c.pending.remove(&id);
            }
        }
        self.pending.insert(
            id,
            Pending {
                consumer: consumer.clone(),
                delivery_time: now,
                delivery_count: 1,
            },
        );
        if let Some(c) = self.consumers.get_mut(consumer) {
            c.pending.insert(id);
        }
    }

    /// Moves the group's last delivered ID to `id` (an entry a `>` read served), keeping its
    /// read counter as Redis 7.0's `streamReplyWithRange` does.
    pub fn advance(&mut self, facts: &StreamFacts, id: StreamId) {
        if id <= self.last_id {
            return;
        }
        match self.entries_read {
            Some(n) if !facts.tombstones_from(id) => {
                self.entries_read = Some(n.wrapping_add(1)).filter(|n| *n != -1)
            }
            _ if facts.entries_added > 0 => {
                self.entries_read = facts.read_counter_at(id).map(|n| n as i64)
            }
            _ => {}
        }
        self.last_id = id;
    }

    /// The group's lag: entries added after its last delivered ID, `None` when unknown
    /// (Redis's `streamReplyWithCGLag`, in its signed arithmetic: a read counter set above
    /// the entries added makes it negative).
    pub fn lag(&self, facts: &StreamFacts) -> Option<i64> {
        let added = facts.entries_added as i64;
        if added == 0 {
            return Some(0);
        }
        if let Some(read) = self.entries_read {
            if !facts.tombstones_from(self.last_id) {
                return Some(added.wrapping_sub(read));
            }
        }
        facts
            .read_counter_at(self.last_id)
            .map(|read| added.wrapping_sub(read as i64))
    }

    /// Acknowledges `id`: whether it was pending.
    pub fn ack(&mut self, id: StreamId) -> bool {
        match self.pending.remove(&id) {
            Some(p) => {
                if let Some(c) = self.consumers.get_mut(&p.consumer) {
                    c.pending.remove(&id);
                }
                true
            }
            None => false,
        }
    }

    /// A pending entry, changed by `f` (its consumer may not change here: see
    /// [`Group::assign`]).
    pub fn pending_mut(&mut self, id: StreamId) -> Option<&mut Pending> {
        self.pending.get_mut(&id)
    }

    /// Gives pending entry `id` to `consumer` (which must exist), creating the entry (count 1,
    /// delivered at `now`) if there was none; the entry.
    pub fn assign(&mut self, id: StreamId, consumer: &Bytes, now: u64) -> &mut Pending {
        let previous = self.pending.get(&id).map(|p| p.consumer.clone());
        if let Some(previous) = previous.filter(|p| p != consumer) {
            if let Some(c) = self.consumers.get_mut(&previous) {
                c.pending.remove(&id);
            }
        }
        if let Some(c) = self.consumers.get_mut(consumer) {
            c.pending.insert(id);
        }
        let entry = self.pending.entry(id).or_insert_with(|| Pending {
            consumer: consumer.clone(),
            delivery_time: now,
            delivery_count: 1,
        });
        entry.consumer = consumer.clone();
        entry
    }
}

/// A stream's consumer groups, by name (byte order, as Redis lists them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Groups {
    groups: BTreeMap<Bytes, Group>,
}

impl Groups {
    /// Reads the groups of a stream's metadata; an error for bytes no write stores.
    pub fn decode(bytes: &[u8]) -> Result<Groups, MalformedHash> {
        let mut groups = BTreeMap::new();
        if bytes.is_empty() {
            return Ok(Groups { groups });
        }
        let mut r = Reader { buf: bytes, at: 0 };
        if r.u8()? != VERSION {
            return Err(MalformedHash);
        }
        let count = r.u32()?;
        for _ in 0..count {
            let name = r.bytes()?;
            // Names and IDs are written in order, each once: anything else is not ours.
            if groups
                .last_key_value()
                .is_some_and(|(last, _)| *last >= name)
            {
                return Err(MalformedHash);
            }
            let last_id = r.id()?;
            let entries_read = r.u64()? as i64;
            let consumers_count = r.u32()?;
            let mut consumers: BTreeMap<Bytes, Consumer> = BTreeMap::new();
            let mut names = Vec::new();
            for _ in 0..consumers_count {
                let name = r.bytes()?;
                let seen_time = r.u64()?;
                if names.last().is_some_and(|last| *last >= name) {
                    return Err(MalformedHash);
                }
                names.push(name.clone());
                consumers.insert(
                    name,
                    Consumer {
                        seen_time,
                        pending: BTreeSet::new(),
                    },
                );
            }
            let pending_count = r.u32()?;
            let mut pending = BTreeMap::new();
            for _ in 0..pending_count {
                let id = r.id()?;
                if pending
                    .last_key_value()
                    .is_some_and(|(last, _)| *last >= id)
                {
                    return Err(MalformedHash);
                }
                let owner = names.get(r.u32()? as usize).ok_or(MalformedHash)?.clone();
                let delivery_time = r.u64()?;
                let delivery_count = r.u64()?;
                consumers
                    .get_mut(&owner)
                    .ok_or(MalformedHash)?
                    .pending
                    .insert(id);
                pending.insert(
                    id,
                    Pending {
                        consumer: owner,
                        delivery_time,
                        delivery_count,
                    },
                );
            }
            groups.insert(
                name,
                Group {
                    last_id,
                    entries_read: Some(entries_read).filter(|n| *n != -1),
                    pending,
                    consumers,
                },
            );
        }
        if r.at != bytes.len() {
            return Err(MalformedHash);
        }
        Ok(Groups { groups })
    }

    /// The encoding (see the module notes); empty when there is no group.
    pub fn encode(&self) -> Bytes {
        if self.groups.is_empty() {
            return Bytes::new();
        }
        let mut out = BytesMut::new();
        out.put_u8(VERSION);
        out.put_u32(self.groups.len() as u32);
        for (name, g) in &self.groups {
            put_bytes(&mut out, name);
            out.put_u64(g.last_id.ms);
            out.put_u64(g.last_id.seq);
            out.put_i64(g.entries_read.unwrap_or(-1));
            out.put_u32(g.consumers.len() as u32);
            let mut index = BTreeMap::new();
            for (i, (cname, c)) in g.consumers.iter().enumerate() {
                put_bytes(&mut out, cname);
                out.put_u64(c.seen_time);
                index.insert(cname, i as u32);
            }
            out.put_u32(g.pending.len() as u32);
            for (id, p) in &g.pending {
                out.put_u64(id.ms);
                out.put_u64(id.seq);
                out.put_u32(index.get(&p.consumer).copied().unwrap_or(0));
                out.put_u64(p.delivery_time);
                out.put_u64(p.delivery_count);
            }
        }
        out.freeze()
    }

    /// How many groups there are.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether there is no group.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// A group by name.
    pub fn get(&self, name: &[u8]) -> Option<&Group> {
        self.groups.get(name)
    }

    /// A group by name, to change.
    pub fn get_mut(&mut self, name: &[u8]) -> Option<&mut Group> {
        self.groups.get_mut(name)
    }

    /// The groups, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &Group)> {
        self.groups.iter()
    }

    /// Creates a group; false if one of that name exists (XGROUP CREATE's BUSYGROUP).
    pub fn create(&mut self, name: Bytes, group: Group) -> bool {
        if self.groups.contains_key(&name) {
            return false;
        }
        self.groups.insert(name, group);
        true
    }

    /// Removes a group; whether it existed.
    pub fn destroy(&mut self, name: &[u8]) -> bool {
        self.groups.remove(name).is_some()
    }
}

fn put_bytes(out: &mut BytesMut, b: &[u8]) {
    out.put_u32(b.len() as u32);
    out.put_slice(b);
}

/// Reads the encoding without trusting it: every length is checked against what is left.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], MalformedHash> {
        let end = self.at.checked_add(n).ok_or(MalformedHash)?;
        let out = self.buf.get(self.at..end).ok_or(MalformedHash)?;
        self.at = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, MalformedHash> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, MalformedHash> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes(b.try_into().map_err(|_| MalformedHash)?))
    }

    fn u64(&mut self) -> Result<u64, MalformedHash> {
        let b = self.take(8)?;
        Ok(u64::from_be_bytes(b.try_into().map_err(|_| MalformedHash)?))
    }

    fn id(&mut self) -> Result<StreamId, MalformedHash> {
        Ok(StreamId::new(self.u64()?, self.u64()?))
    }

    fn bytes(&mut self) -> Result<Bytes, MalformedHash> {
        let n = self.u32()? as usize;
        Ok(Bytes::copy_from_slice(self.take(n)?))
    }
}

/// What XCLAIM and XAUTOCLAIM do to one pending entry they claim: Redis 7.0's rules, shared.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRules {
    /// The new delivery time.
    pub delivery_time: u64,
    /// RETRYCOUNT: the delivery count to set.
    pub retry_count: Option<u64>,
    /// JUSTID: the delivery count is left as it is (unless `retry_count` sets it).
    pub just_id: bool,
}

impl Group {
    /// Claims pending entry `id` for `consumer` (created if missing, at `now`) under `rules`.
    pub fn claim(&mut self, id: StreamId, consumer: &Bytes, now: u64, rules: ClaimRules) {
        self.touch_consumer(consumer, now);
        let entry = self.assign(id, consumer, now);
        entry.delivery_time = rules.delivery_time;
        match rules.retry_count {
            Some(n) => entry.delivery_count = n,
            None if !rules.just_id => entry.delivery_count = entry.delivery_count.wrapping_add(1),
            None => {}
        }
    }
}

/// The node count of a radix tree (Redis's `rax`) holding `keys` (16-byte stream node IDs,
/// sorted, distinct): what XINFO STREAM answers as `radix-tree-nodes`. The tree keeps a node
/// for the root, for each branching point, for each place right after a branching byte, and
/// for each key; a run of bytes between them is one compressed node.
pub fn radix_nodes(keys: &[[u8; 16]]) -> u64 {
    fn below(keys: &[[u8; 16]], depth: usize) -> u64 {
        // Keys that are not distinct (never from a stream's nodes) end the walk at a leaf.
        if keys.len() <= 1 || depth >= 16 {
            return u64::from(!keys.is_empty() && depth < 16);
        }
        let (first, last) = (&keys[0], &keys[keys.len() - 1]);
        let common = (depth..16).take_while(|&i| first[i] == last[i]).count() + depth;
        if common >= 16 {
            return 1;
        }
        let mut n = u64::from(common > depth);
        let mut start = 0;
        while start < keys.len() {
            let byte = keys[start][common];
            let end = start
                + keys[start..]
                    .iter()
                    .take_while(|k| k[common] == byte)
                    .count();
            n += 1 + below(&keys[start..end], common + 1);
            start = end;
        }
        n
    }
    1 + below(keys, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(length: u64, last: u64, added: u64, max_deleted: u64, first: u64) -> StreamFacts {
        StreamFacts {
            length,
            last_id: StreamId::new(last, 0),
            entries_added: added,
            max_deleted: StreamId::new(max_deleted, 0),
            first_id: StreamId::new(first, 0),
        }
    }

    #[test]
    fn groups_round_trip_through_their_encoding() {
        let mut groups = Groups::default();
        assert_eq!(groups.encode(), Bytes::new());
        let mut g = Group::new(StreamId::new(5, 1), Some(3));
        let alice = Bytes::from_static(b"alice");
        let bob = Bytes::from_static(b"bob");
        g.create_consumer(&alice, 100);
        g.create_consumer(&bob, 200);
        g.deliver(StreamId::new(1, 0), &alice, 150);
        g.deliver(StreamId::new(2, 0), &bob, 250);
        g.deliver(StreamId::new(3, 0), &alice, 300);
        assert!(groups.create(Bytes::from_static(b"g1"), g));
        assert!(groups.create(Bytes::from_static(b"g0"), Group::new(StreamId::MIN, None)));
        let bytes = groups.encode();
        let back = Groups::decode(&bytes).expect("decodes");
        assert_eq!(back, groups);
        let names: Vec<&Bytes> = back.iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [&Bytes::from_static(b"g0"), &Bytes::from_static(b"g1")]
        );
        let g1 = back.get(b"g1").expect("g1");
        assert_eq!(g1.consumer(b"alice").expect("alice").pending_len(), 2);
        // Every cut is refused, never a panic.
        for cut in 0..bytes.len() {
            assert!(Groups::decode(&bytes[..cut]).is_err() || cut == 0);
        }
    }

    #[test]
    fn deleting_a_consumer_drops_its_pending_entries() {
        let mut g = Group::default();
        let a = Bytes::from_static(b"a");
        let b = Bytes::from_static(b"b");
        g.create_consumer(&a, 0);
        g.create_consumer(&b, 0);
        g.deliver(StreamId::new(1, 0), &a, 0);
        g.deliver(StreamId::new(2, 0), &b, 0);
        // Delivered again to b: a no longer holds it.
        g.deliver(StreamId::new(1, 0), &b, 0);
        assert_eq!(g.consumer(b"a").expect("a").pending_len(), 0);
        assert_eq!(g.delete_consumer(b"b"), Some(2));
        assert!(g.pending().is_empty());
        assert_eq!(g.delete_consumer(b"b"), None);
    }

    #[test]
    fn lag_follows_redis_rules() {
        // A fresh stream: lag 0.
        let g = Group::new(StreamId::MIN, None);
        assert_eq!(g.lag(&facts(0, 0, 0, 0, 0)), Some(0));
        // Five entries 1..5, nothing read: the counter at 0-0 (before the first) is 0.
        let f = facts(5, 5, 5, 0, 1);
        assert_eq!(g.lag(&f), Some(5));
        // Read through 3 with a valid counter: lag 2.
        let mut g = Group::new(StreamId::MIN, Some(0));
        for i in 1..=3 {
            g.advance(&f, StreamId::new(i, 0));
        }
        assert_eq!(g.entries_read, Some(3));
        assert_eq!(g.lag(&f), Some(2));
        // An entry after the group's position was deleted: the lag is unknown.
        let holed = facts(4, 5, 5, 4, 1);
        assert_eq!(g.lag(&holed), None);
        // At the last ID, the counter is exact whatever was deleted.
        let mut at_end = Group::new(StreamId::new(5, 0), None);
        assert_eq!(at_end.lag(&holed), Some(0));
        at_end.advance(&holed, StreamId::new(6, 0));
        assert_eq!(at_end.entries_read, None);
    }

    #[test]
    fn radix_node_counts_match_a_compressed_tree() {
        let key = |ms: u64, seq: u64| StreamId::new(ms, seq).key();
        assert_eq!(radix_nodes(&[]), 1);
        assert_eq!(radix_nodes(&[key(1, 0)]), 2);
        // Two keys differing in their last byte: root chain, branch, two leaves.
        assert_eq!(radix_nodes(&[key(1, 0), key(1, 1)]), 4);
        // Differing earlier: the branch's children are chains to their leaves.
        assert_eq!(radix_nodes(&[key(1, 0), key(2, 0)]), 6);
        assert_eq!(radix_nodes(&[key(1, 0), key(1, 1), key(1, 2)]), 5);
        // Keys no stream holds (repeated) never panic.
        assert_eq!(radix_nodes(&[key(1, 0), key(1, 0)]), 2);
    }

    #[test]
    fn claiming_counts_deliveries_unless_just_ids_are_asked() {
        let mut g = Group::default();
        let a = Bytes::from_static(b"a");
        let b = Bytes::from_static(b"b");
        g.create_consumer(&a, 0);
        g.deliver(StreamId::new(1, 0), &a, 10);
        let rules = ClaimRules {
            delivery_time: 50,
            retry_count: None,
            just_id: false,
        };
        g.claim(StreamId::new(1, 0), &b, 50, rules);
        let p = &g.pending()[&StreamId::new(1, 0)];
        assert_eq!(
            (p.consumer.clone(), p.delivery_count, p.delivery_time),
            (b.clone(), 2, 50)
        );
        g.claim(
            StreamId::new(1, 0),
            &a,
            60,
            ClaimRules {
                just_id: true,
                ..rules
            },
        );
        assert_eq!(g.pending()[&StreamId::new(1, 0)].delivery_count, 2);
        assert_eq!(g.consumer(b"b").expect("b").pending_len(), 0);
        assert_eq!(g.consumer(b"a").expect("a").pending_len(), 1);
    }
}
