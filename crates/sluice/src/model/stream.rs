//! The encoding of a stream, as the cache, the write-back buffer and the journal hold it, and
//! the rules Redis 7.0 applies to it (IDs, trimming, deletion).
//!
//! The image is framed as a hash ([`super::hash::encode`]): a LEB128 count of rows, then each
//! row as a length-prefixed member and a length-prefixed value, in member order:
//!
//! - first the stream's metadata ([`StreamMeta`]) under the empty member;
//! - then one row per entry under its ID as 16 big-endian bytes ([`StreamId::key`]), so byte
//!   order is ID order: a flags byte ([`DELETED`], [`NODE_START`]) then the entry's
//!   field-value pairs framed as a hash.
//!
//! The built-in table keeps each row as a `sluice_members` row (`member`, bytes in `value`),
//! so XADD stores two rows (the entry and the metadata) whatever the stream's length.
//!
//! Redis keeps a stream in nodes of at most 100 entries or 4096 bytes (a listpack each), and
//! `MAXLEN ~` / `MINID ~` trim whole nodes only, so how many entries an approximate trim
//! removes depends on where the nodes begin. To answer as Redis does, a stream here keeps
//! the same nodes: the entry that begins one carries [`NODE_START`], an entry XDEL removes
//! stays as a [`DELETED`] row while its node holds a live entry (Redis keeps it in the
//! listpack too), and a node's size is the size of its listpack ([`NodeSize`]), computed
//! from its entries as Redis encodes them.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use super::hash::{self, MalformedHash};
use super::listpack;

/// Redis's `stream-node-max-bytes` default: a node whose listpack would reach it is closed.
pub const NODE_MAX_BYTES: usize = 4096;
/// Redis's `stream-node-max-entries` default: entries (live and deleted) per node.
pub const NODE_MAX_ENTRIES: usize = 100;

/// Row flag: the entry was deleted (XDEL, or an exact trim within a node); kept while its
/// node lives, never shown.
pub const DELETED: u8 = 1;
/// Row flag: the entry begins a node (see the module notes).
pub const NODE_START: u8 = 2;

/// A stream entry ID: milliseconds, then a sequence number within them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    /// Unix milliseconds (or any number the client chose).
    pub ms: u64,
    /// Sequence number within `ms`.
    pub seq: u64,
}

impl StreamId {
    /// `0-0`, below every entry.
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    /// The largest ID.
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    /// An ID.
    pub fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    /// The 16 bytes a row is keyed by: big-endian, so byte order is ID order.
    pub fn key(self) -> [u8; 16] {
        let mut out = [0; 16];
        out[..8].copy_from_slice(&self.ms.to_be_bytes());
        out[8..].copy_from_slice(&self.seq.to_be_bytes());
        out
    }

    /// The ID of a row key; `None` for bytes of another length.
    pub fn from_key(key: &[u8]) -> Option<StreamId> {
        let bytes: &[u8; 16] = key.try_into().ok()?;
        let (ms, seq) = bytes.split_at(8);
        Some(StreamId {
            ms: u64::from_be_bytes(ms.try_into().ok()?),
            seq: u64::from_be_bytes(seq.try_into().ok()?),
        })
    }

    /// The next ID; `None` after [`StreamId::MAX`].
    pub fn next(self) -> Option<StreamId> {
        match self.seq.checked_add(1) {
            Some(seq) => Some(StreamId { ms: self.ms, seq }),
            None => Some(StreamId {
                ms: self.ms.checked_add(1)?,
                seq: 0,
            }),
        }
    }

    /// The previous ID; `None` before [`StreamId::MIN`].
    pub fn prev(self) -> Option<StreamId> {
        match self.seq.checked_sub(1) {
            Some(seq) => Some(StreamId { ms: self.ms, seq }),
            None => Some(StreamId {
                ms: self.ms.checked_sub(1)?,
                seq: u64::MAX,
            }),
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// What a stream knows beyond its entries (XINFO STREAM shows it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamMeta {
    /// Live entries (XLEN).
    pub length: u64,
    /// The largest ID ever added (or set by XSETID): a new one must be above it.
    pub last_id: StreamId,
    /// Entries ever added.
    pub entries_added: u64,
    /// The largest ID XDEL removed.
    pub max_deleted: StreamId,
    /// The consumer groups, encoded (see [`super::stream_groups`]); empty when there is none.
    pub groups: Bytes,
}

/// The version byte of the metadata encoding.
const META_VERSION: u8 = 1;
/// Bytes of the metadata before the groups.
const META_FIXED: usize = 1 + 8 * 6;

impl StreamMeta {
    /// The metadata row's bytes.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(META_FIXED + self.groups.len());
        out.put_u8(META_VERSION);
        for n in [
            self.length,
            self.last_id.ms,
            self.last_id.seq,
            self.entries_added,
            self.max_deleted.ms,
            self.max_deleted.seq,
        ] {
            out.put_u64(n);
        }
        out.put_slice(&self.groups);
        out.freeze()
    }

    fn decode(bytes: &Bytes) -> Result<StreamMeta, MalformedHash> {
        if bytes.len() < META_FIXED || bytes[0] != META_VERSION {
            return Err(MalformedHash);
        }
        let n = |i: usize| {
            let at = 1 + 8 * i;
            u64::from_be_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]))
        };
        Ok(StreamMeta {
            length: n(0),
            last_id: StreamId::new(n(1), n(2)),
            entries_added: n(3),
            max_deleted: StreamId::new(n(4), n(5)),
            groups: bytes.slice(META_FIXED..),
        })
    }
}

/// One entry as a read sees it: its ID and field-value pairs, sliced out of the image.
pub type EntryView<'a> = (StreamId, Vec<(&'a [u8], &'a [u8])>);

/// The metadata of an encoded stream; an error for bytes no write stores.
pub fn meta(image: &Bytes) -> Result<StreamMeta, MalformedHash> {
    let (member, value) = hash::pairs(image).next().ok_or(MalformedHash)??;
    if !member.is_empty() {
        return Err(MalformedHash);
    }
    StreamMeta::decode(&image.slice_ref(value))
}

/// The live entries of an encoded stream from `start` to `end` (inclusive), in ID order (or
/// reversed with `rev`), at most `count` of them. Only the entries answered are parsed: a
/// reversed read with a count keeps the last `count` rows it passed, not the whole range.
pub fn range(
    image: &[u8],
    start: StreamId,
    end: StreamId,
    rev: bool,
    count: Option<usize>,
) -> Result<Vec<EntryView<'_>>, MalformedHash> {
    let mut rows: std::collections::VecDeque<(StreamId, &[u8])> = std::collections::VecDeque::new();
    if start > end || count == Some(0) {
        return Ok(Vec::new());
    }
    for row in hash::pairs(image).skip(1) {
        let (key, value) = row?;
        let id = StreamId::from_key(key).ok_or(MalformedHash)?;
        if id > end {
            break;
        }
        let (&flags, pairs) = value.split_first().ok_or(MalformedHash)?;
        if id < start || flags & DELETED != 0 {
            continue;
        }
        if rev && count.is_some_and(|c| rows.len() >= c) {
            rows.pop_front();
        }
        rows.push_back((id, pairs));
        if !rev && count.is_some_and(|c| rows.len() >= c) {
            break;
        }
    }
    if rev {
        rows.into_iter().rev().map(parse_entry).collect()
    } else {
        rows.into_iter().map(parse_entry).collect()
    }
}

/// The live entries of `ids` (ascending, each once) in one walk of the encoded stream: for
/// each ID its entry, or `None` where there is no live entry (XCLAIM's, XAUTOCLAIM's and a
/// history read's lookups of pending IDs).
pub fn entries_at<'a>(
    image: &'a [u8],
    ids: &[StreamId],
) -> Result<Vec<Option<EntryView<'a>>>, MalformedHash> {
    let mut out: Vec<Option<EntryView<'a>>> = Vec::with_capacity(ids.len());
    let mut rows = hash::pairs(image).skip(1);
    let mut row: Option<(StreamId, &[u8])> = None;
    for &id in ids {
        while row.is_none_or(|(row_id, _)| row_id < id) {
            match rows.next() {
                None => {
                    row = None;
                    break;
                }
                Some(next) => {
                    let (key, value) = next?;
                    row = Some((StreamId::from_key(key).ok_or(MalformedHash)?, value));
                }
            }
        }
        out.push(match row {
            Some((row_id, value)) if row_id == id && !row_deleted(value) => {
                Some(parse_entry((row_id, value.get(1..).ok_or(MalformedHash)?))?)
            }
            _ => None,
        });
    }
    Ok(out)
}

/// The image with its metadata row replaced by `meta` and every entry row as it was: how a
/// command that changes only the metadata (a consumer group's) writes, without decoding the
/// entries.
pub fn with_meta(image: &[u8], meta: &StreamMeta) -> Result<Bytes, MalformedHash> {
    let mut at = 0;
    let count = hash::take_len(image, &mut at)?;
    let member = hash::take(image, &mut at)?;
    if !member.is_empty() {
        return Err(MalformedHash);
    }
    hash::take(image, &mut at)?;
    let meta_row = meta.encode();
    let tail = &image[at..];
    let mut out = BytesMut::with_capacity(tail.len() + meta_row.len() + 16);
    hash::put_len(&mut out, count);
    hash::put_len(&mut out, 0);
    hash::put_len(&mut out, meta_row.len());
    out.put_slice(&meta_row);
    out.put_slice(tail);
    Ok(out.freeze())
}

/// The key of each node Redis would hold for an encoded stream (the ID of the row that begins
/// it), in order: XINFO STREAM's `radix-tree-keys` and what its `radix-tree-nodes` counts.
pub fn node_keys(image: &[u8]) -> Result<Vec<[u8; 16]>, MalformedHash> {
    let mut nodes = Vec::new();
    let mut previous = None;
    for row in hash::pairs(image).skip(1) {
        let (key, value) = row?;
        let id = StreamId::from_key(key).ok_or(MalformedHash)?;
        if previous.is_some_and(|p| p >= id) {
            return Err(MalformedHash);
        }
        previous = Some(id);
        if *value.first().ok_or(MalformedHash)? & NODE_START != 0 {
            nodes.push(id.key());
        }
    }
    Ok(nodes)
}

/// The first live entry's ID of an encoded stream.
pub fn first_live_id(image: &[u8]) -> Result<Option<StreamId>, MalformedHash> {
    for row in hash::pairs(image).skip(1) {
        let (key, value) = row?;
        if !row_deleted(value) {
            return Ok(Some(StreamId::from_key(key).ok_or(MalformedHash)?));
        }
    }
    Ok(None)
}

/// An entry's ID and its field-value pairs, sliced out of its row.
fn parse_entry((id, pairs): (StreamId, &[u8])) -> Result<EntryView<'_>, MalformedHash> {
    Ok((id, hash::pairs(pairs).collect::<Result<Vec<_>, _>>()?))
}

/// The image of a stream read back from its rows (member, value), in any order: what the
/// built-in table's `sluice_members` rows of a stream make. An error for rows no write stores.
pub fn from_rows(mut rows: Vec<(Bytes, Bytes)>) -> Result<Bytes, MalformedHash> {
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let image = hash::encode(rows.iter().map(|(m, v)| (&m[..], &v[..])));
    StreamValue::decode(&image)?;
    Ok(image)
}

/// How many rows (metadata and entries, deleted ones included) an image holds.
pub fn rows(image: &[u8]) -> usize {
    hash::len(image)
}

/// A trim: what stays, and how exactly (XADD's and XTRIM's `MAXLEN` / `MINID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trim {
    /// What to keep.
    pub strategy: TrimStrategy,
    /// `~`: remove whole nodes only.
    pub approx: bool,
    /// `LIMIT`: remove at most this many entries (0: no limit).
    pub limit: u64,
}

/// What a trim keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrimStrategy {
    /// At most this many entries, the newest.
    MaxLen(u64),
    /// The entries from this ID on.
    MinId(StreamId),
}

/// One entry row of a decoded stream: its ID and its stored value (flags byte, then pairs).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    id: StreamId,
    value: Bytes,
}

impl Row {
    fn flags(&self) -> u8 {
        self.value.first().copied().unwrap_or(0)
    }

    fn is_deleted(&self) -> bool {
        self.flags() & DELETED != 0
    }

    fn starts_node(&self) -> bool {
        self.flags() & NODE_START != 0
    }

    fn pairs(&self) -> hash::Pairs<'_> {
        hash::pairs(self.value.get(1..).unwrap_or_default())
    }

    fn with_flags(&mut self, flags: u8) {
        let mut value = BytesMut::from(&self.value[..]);
        value[0] = flags;
        self.value = value.freeze();
    }
}

/// A stream being changed by a command: its metadata and rows, each row's bytes sliced out of
/// the image it came from, and what the change touched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamValue {
    meta: StreamMeta,
    rows: Vec<Row>,
    /// IDs of the rows added, changed or removed.
    touched: Vec<StreamId>,
    /// The metadata changed.
    meta_changed: bool,
}

impl StreamValue {
    /// An empty stream, as XADD makes one (nothing is stored until it changes).
    pub fn new() -> StreamValue {
        StreamValue::default()
    }

    /// Reads an encoded stream; an error for bytes no write stores.
    pub fn decode(image: &Bytes) -> Result<StreamValue, MalformedHash> {
        let mut pairs = hash::pairs(image);
        let (member, value) = pairs.next().ok_or(MalformedHash)??;
        if !member.is_empty() {
            return Err(MalformedHash);
        }
        let meta = StreamMeta::decode(&image.slice_ref(value))?;
        let mut rows = Vec::with_capacity(hash::len(image).saturating_sub(1).min(1 << 16));
        let mut previous: Option<StreamId> = None;
        for pair in pairs {
            let (key, value) = pair?;
            let id = StreamId::from_key(key).ok_or(MalformedHash)?;
            if previous.is_some_and(|p| p >= id) || value.is_empty() {
                return Err(MalformedHash);
            }
            for pair in hash::pairs(&value[1..]) {
                pair?;
            }
            previous = Some(id);
            rows.push(Row {
                id,
                value: image.slice_ref(value),
            });
        }
        Ok(StreamValue {
            meta,
            rows,
            touched: Vec::new(),
            meta_changed: false,
        })
    }

    /// The image: metadata, then every row in ID order.
    pub fn encode(&self) -> Bytes {
        let meta = self.meta.encode();
        let keys: Vec<[u8; 16]> = self.rows.iter().map(|r| r.id.key()).collect();
        let mut rows: Vec<(&[u8], &[u8])> = Vec::with_capacity(self.rows.len() + 1);
        rows.push((b"", &meta));
        rows.extend(
            keys.iter()
                .zip(&self.rows)
                .map(|(k, r)| (&k[..], &r.value[..])),
        );
        hash::encode(rows.into_iter())
    }

    /// The metadata.
    pub fn meta(&self) -> &StreamMeta {
        &self.meta
    }

    /// Live entries.
    pub fn len(&self) -> u64 {
        self.meta.length
    }

    /// Whether the stream holds no live entry (it still exists, as in Redis).
    pub fn is_empty(&self) -> bool {
        self.meta.length == 0
    }

    /// Whether a command changed the stream.
    pub fn changed(&self) -> bool {
        self.meta_changed || !self.touched.is_empty()
    }

    /// The row keys the change touched: the metadata's (empty) and each touched entry's.
    pub fn changes(&self) -> Vec<Bytes> {
        let mut out = Vec::with_capacity(self.touched.len() + 1);
        if self.meta_changed {
            out.push(Bytes::new());
        }
        let mut touched = self.touched.clone();
        touched.sort_unstable();
        touched.dedup();
        out.extend(touched.iter().map(|id| Bytes::copy_from_slice(&id.key())));
        out
    }

    fn touch(&mut self, id: StreamId) {
        self.touched.push(id);
        self.meta_changed = true;
    }

    /// The ID the next XADD takes for `requested`, as Redis 7.0's `streamAppendItem` picks
    /// it at `now_ms`: an error line for an ID that is not above the last one.
    pub fn next_id(&self, requested: RequestedId, now_ms: u64) -> Result<StreamId, &'static str> {
        next_id(self.meta.last_id, requested, now_ms)
    }

    /// XADD: the entry (its ID picked from `requested` at `now_ms`), then `trim`; the ID and
    /// how many entries the trim removed, or Redis's error line (nothing changed).
    pub fn xadd(
        &mut self,
        requested: RequestedId,
        now_ms: u64,
        pairs: &[(Bytes, Bytes)],
        trim: Option<Trim>,
    ) -> Result<(StreamId, u64), &'static str> {
        if self.meta.last_id == StreamId::MAX {
            return Err(EXHAUSTED);
        }
        let id = self.next_id(requested, now_ms)?;
        self.add(id, pairs);
        Ok((id, trim.map_or(0, |t| self.trim(t))))
    }

    /// Appends an entry (`id` above the last one, see [`StreamValue::next_id`]) in the node
    /// Redis would put it in.
    pub fn add(&mut self, id: StreamId, pairs: &[(Bytes, Bytes)]) {
        // After an XSETID below a deleted entry kept in its node, that entry's row would sort
        // after the new one: such rows (deleted ones only: the last ID is above every live
        // entry) go, so the rows stay in ID order. Redis keeps them in its listpack, so a later
        // `~` trim may count that node differently.
        let above = self.rows.partition_point(|r| r.id < id);
        if above < self.rows.len() {
            let gone: Vec<StreamId> = self.rows.drain(above..).map(|r| r.id).collect();
            for stale in gone {
                self.touch(stale);
            }
        }
        let new_node = match self.last_node() {
            None => true,
            Some(node) => starts_node(&row_views(&self.rows[node]), pairs),
        };
        self.rows.push(Row {
            id,
            value: entry_row(new_node, pairs),
        });
        self.meta.length += 1;
        self.meta.last_id = id;
        self.meta.entries_added += 1;
        self.touch(id);
    }

    /// The rows of the last node.
    fn last_node(&self) -> Option<std::ops::Range<usize>> {
        let start = self.rows.iter().rposition(Row::starts_node)?;
        Some(start..self.rows.len())
    }

    /// The rows of the node holding row `at`.
    fn node_of(&self, at: usize) -> std::ops::Range<usize> {
        let start = self.rows[..=at]
            .iter()
            .rposition(Row::starts_node)
            .unwrap_or(0);
        start..self.node_from(start).end
    }

    /// The rows of the node that begins at row `start`.
    fn node_from(&self, start: usize) -> std::ops::Range<usize> {
        let end = self.rows[start + 1..]
            .iter()
            .position(Row::starts_node)
            .map_or(self.rows.len(), |n| start + 1 + n);
        start..end
    }

    /// Marks row `at` deleted.
    fn mark_deleted(&mut self, at: usize) {
        let flags = self.rows[at].flags() | DELETED;
        self.rows[at].with_flags(flags);
        let id = self.rows[at].id;
        self.touch(id);
        self.meta.length -= 1;
    }

    /// XDEL of one ID: whether a live entry had it.
    pub fn delete(&mut self, id: StreamId) -> bool {
        self.delete_many(&[id]) == 1
    }

    /// XDEL: marks the live entries with these IDs deleted and removes each node left with no
    /// live entry by them (Redis frees such a node), in one pass over the rows however many
    /// IDs there are. Answers how many were deleted (an ID named twice counts once).
    pub fn delete_many(&mut self, ids: &[StreamId]) -> usize {
        let mut deleted = 0;
        let mut emptied = Vec::new();
        for &id in ids {
            let Ok(at) = self.rows.binary_search_by(|r| r.id.cmp(&id)) else {
                continue;
            };
            if self.rows[at].is_deleted() {
                continue;
            }
            self.mark_deleted(at);
            deleted += 1;
            if id > self.meta.max_deleted {
                self.meta.max_deleted = id;
            }
            let node = self.node_of(at);
            if self.rows[node.clone()].iter().all(Row::is_deleted) {
                emptied.push(node);
            }
        }
        if !emptied.is_empty() {
            let mut doomed = vec![false; self.rows.len()];
            for node in emptied {
                for at in node {
                    doomed[at] = true;
                }
            }
            let mut at = 0;
            let mut gone = Vec::new();
            self.rows.retain(|row| {
                let keep = !doomed[at];
                at += 1;
                if !keep {
                    gone.push(row.id);
                }
                keep
            });
            for id in gone {
                self.touch(id);
            }
        }
        deleted
    }

    /// Trims as Redis 7.0's `streamTrim`: whole nodes from the oldest while what stays is
    /// still enough (within `limit` entries); then, unless approximate, the oldest entries of
    /// the next node one by one. Answers how many entries it removed. The whole nodes leave
    /// the rows in one cut.
    pub fn trim(&mut self, trim: Trim) -> u64 {
        let flags: Vec<(StreamId, u8)> = self.rows.iter().map(|r| (r.id, r.flags())).collect();
        let cut = plan_cut(&flags, self.meta.length, trim);
        let mut removed = cut.removed;
        if cut.rows > 0 {
            let gone: Vec<StreamId> = self.rows.drain(..cut.rows).map(|r| r.id).collect();
            for id in gone {
                self.touch(id);
            }
        }
        self.meta.length = cut.length;
        let partial = cut.partial.map(|p| p.start - cut.rows..p.end - cut.rows);
        for at in partial.unwrap_or_default() {
            let stop = match trim.strategy {
                TrimStrategy::MaxLen(max) => self.meta.length <= max,
                TrimStrategy::MinId(min) => self.rows[at].id >= min,
            };
            if stop {
                break;
            }
            if !self.rows[at].is_deleted() {
                self.mark_deleted(at);
                removed += 1;
            }
        }
        removed
    }

    /// XSETID: sets the last ID, and optionally the entries-added count and the largest
    /// deleted ID.
    pub fn set_id(
        &mut self,
        last: StreamId,
        entries_added: Option<u64>,
        max_deleted: Option<StreamId>,
    ) {
        self.meta.last_id = last;
        if let Some(n) = entries_added {
            self.meta.entries_added = n;
        }
        if let Some(id) = max_deleted {
            self.meta.max_deleted = id;
        }
        self.meta_changed = true;
    }

    /// The last live entry's ID (below the last ID once the newest entries were deleted).
    pub fn last_live_id(&self) -> Option<StreamId> {
        self.rows
            .iter()
            .rev()
            .find(|r| !r.is_deleted())
            .map(|r| r.id)
    }

    /// The first live entry's ID.
    pub fn first_id(&self) -> Option<StreamId> {
        self.rows.iter().find(|r| !r.is_deleted()).map(|r| r.id)
    }

    /// The live entries, oldest first: each ID and pairs.
    pub fn entries(&self) -> impl Iterator<Item = EntryView<'_>> + '_ {
        self.rows
            .iter()
            .filter(|r| !r.is_deleted())
            .map(|r| (r.id, r.pairs().filter_map(Result::ok).collect::<Vec<_>>()))
    }

    /// The nodes as Redis would hold them: each node's listpack size and entry counts.
    pub fn nodes(&self) -> Vec<NodeSize> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < self.rows.len() {
            let node = self.node_of(at);
            at = node.end;
            out.push(NodeSize::of(&row_views(&self.rows[node])));
        }
        out
    }
}

/// Rows as `(ID, stored value)` slices, as [`NodeSize::of`] reads them.
fn row_views(rows: &[Row]) -> Vec<(StreamId, &[u8])> {
    rows.iter().map(|r| (r.id, &r.value[..])).collect()
}

/// Whether a stored row value is flagged deleted.
fn row_deleted(value: &[u8]) -> bool {
    value.first().is_some_and(|f| f & DELETED != 0)
}

/// The field-value pairs of a stored row value.
fn row_pairs(value: &[u8]) -> hash::Pairs<'_> {
    hash::pairs(value.get(1..).unwrap_or_default())
}

/// Whether an entry of `pairs` added after the node `last` begins a node of its own, as
/// Redis's `streamAppendItem` decides: the node's listpack would reach its byte limit, or it
/// holds its most entries (deleted ones count).
fn starts_node(last: &[(StreamId, &[u8])], pairs: &[(Bytes, Bytes)]) -> bool {
    let payload: usize = pairs.iter().map(|(f, v)| f.len() + v.len()).sum();
    let size = NodeSize::of(last);
    size.bytes + payload >= NODE_MAX_BYTES || size.live + size.deleted >= NODE_MAX_ENTRIES
}

/// The stored value of a new entry: its flags byte, then its pairs.
fn entry_row(new_node: bool, pairs: &[(Bytes, Bytes)]) -> Bytes {
    let encoded = hash::encode(pairs.iter().map(|(f, v)| (&f[..], &v[..])));
    let mut value = BytesMut::with_capacity(1 + encoded.len());
    value.put_u8(if new_node { NODE_START } else { 0 });
    value.put_slice(&encoded);
    value.freeze()
}

/// What a trim removes whole: the rows of the leading nodes it cuts, the entries among them,
/// and the length after; and, for an exact trim, the rows of the node it goes on into.
struct Cut {
    rows: usize,
    removed: u64,
    length: u64,
    partial: Option<std::ops::Range<usize>>,
}

/// Plans `trim` over rows given as (ID, flags) from the oldest, of a stream of `length` live
/// entries, as Redis 7.0's `streamTrim` walks its nodes.
fn plan_cut(rows: &[(StreamId, u8)], mut length: u64, trim: Trim) -> Cut {
    let mut removed = 0u64;
    let mut cut = 0;
    let mut partial = None;
    while cut < rows.len() {
        if let TrimStrategy::MaxLen(max) = trim.strategy {
            if length <= max {
                break;
            }
        }
        let end = rows[cut + 1..]
            .iter()
            .position(|(_, f)| f & NODE_START != 0)
            .map_or(rows.len(), |n| cut + 1 + n);
        let live = rows[cut..end]
            .iter()
            .filter(|(_, f)| f & DELETED == 0)
            .count() as u64;
        if trim.limit > 0 && removed + live > trim.limit {
            break;
        }
        let whole = match trim.strategy {
            TrimStrategy::MaxLen(max) => length.saturating_sub(live) >= max,
            TrimStrategy::MinId(min) => rows[end - 1].0 < min,
        };
        if whole {
            cut = end;
            length = length.saturating_sub(live);
            removed += live;
            continue;
        }
        if !trim.approx {
            partial = Some(cut..end);
        }
        break;
    }
    Cut {
        rows: cut,
        removed,
        length,
        partial,
    }
}

/// XADD in one pass over an encoded stream, without decoding it (a stream is re-encoded whole
/// by every other write): the entry `id` added as [`StreamValue::add`] adds it, then `trim`
/// applied as [`StreamValue::trim`] applies it; the new image, the rows it touched (as
/// [`StreamValue::changes`] names them) and how many entries the trim removed. The image is
/// the one the decoded path makes, byte for byte. `None` when the edit needs the decoded
/// stream: an exact trim, a row at or above `id` (deleted rows kept above an XSETID), or bytes
/// that do not read as a stream.
pub fn with_added(
    image: &[u8],
    id: StreamId,
    pairs: &[(Bytes, Bytes)],
    trim: Option<Trim>,
) -> Option<(Bytes, Vec<Bytes>, u64)> {
    if trim.is_some_and(|t| !t.approx) {
        return None;
    }
    let mut all = hash::pairs(image);
    let (member, meta_bytes) = all.next()?.ok()?;
    if !member.is_empty() {
        return None;
    }
    let mut meta = StreamMeta::decode(&Bytes::copy_from_slice(meta_bytes)).ok()?;
    // Each entry row: its ID, stored value, and where it starts in the image.
    // The count comes from stored bytes: a capacity, never more than a bound, is taken from it.
    let mut rows: Vec<(StreamId, &[u8], usize)> = Vec::with_capacity(hash::len(image).min(1 << 16));
    for row in all {
        let (key, value) = row.ok()?;
        let row_id = StreamId::from_key(key)?;
        if value.is_empty() || rows.last().is_some_and(|r| r.0 >= row_id) {
            return None;
        }
        let at = key.as_ptr() as usize - image.as_ptr() as usize - hash::len_size(key.len());
        rows.push((row_id, value, at));
    }
    if rows.last().is_some_and(|r| r.0 >= id) {
        return None;
    }
    let new_node = match rows.iter().rposition(|r| r.1[0] & NODE_START != 0) {
        None => true,
        Some(start) => {
            let last: Vec<(StreamId, &[u8])> = rows[start..].iter().map(|r| (r.0, r.1)).collect();
            starts_node(&last, pairs)
        }
    };
    let added = entry_row(new_node, pairs);
    let mut flags: Vec<(StreamId, u8)> = rows.iter().map(|r| (r.0, r.1[0])).collect();
    flags.push((id, added[0]));
    let cut = match trim {
        Some(trim) => plan_cut(&flags, meta.length + 1, trim),
        None => Cut {
            rows: 0,
            removed: 0,
            length: meta.length + 1,
            partial: None,
        },
    };
    meta.length = cut.length;
    meta.last_id = id;
    meta.entries_added += 1;
    let meta_row = meta.encode();
    let kept_old = rows.len().saturating_sub(cut.rows);
    let keeps_new = cut.rows <= rows.len();
    let count = 1 + kept_old + usize::from(keeps_new);
    let tail = rows.get(cut.rows).map_or(&[][..], |r| &image[r.2..]);
    let key = id.key();
    let mut out = BytesMut::with_capacity(image.len() + added.len() + 64);
    hash::put_len(&mut out, count);
    hash::put_len(&mut out, 0);
    hash::put_len(&mut out, meta_row.len());
    out.put_slice(&meta_row);
    out.put_slice(tail);
    if keeps_new {
        hash::put_len(&mut out, key.len());
        out.put_slice(&key);
        hash::put_len(&mut out, added.len());
        out.put_slice(&added);
    }
    let mut changed = Vec::with_capacity(2 + cut.rows);
    changed.push(Bytes::new());
    changed.extend(
        flags[..cut.rows.min(rows.len())]
            .iter()
            .map(|(gone, _)| Bytes::copy_from_slice(&gone.key())),
    );
    changed.push(Bytes::copy_from_slice(&key));
    Some((out.freeze(), changed, cut.removed))
}

/// The ID XADD takes after `last` for `requested` at `now_ms`, as Redis 7.0's
/// `streamAppendItem` picks it: an error line for an ID that is not above the last one.
pub fn next_id(
    last: StreamId,
    requested: RequestedId,
    now_ms: u64,
) -> Result<StreamId, &'static str> {
    let id = match requested {
        RequestedId::Auto if now_ms > last.ms => StreamId::new(now_ms, 0),
        RequestedId::Auto => last.next().ok_or(EXHAUSTED)?,
        RequestedId::AutoSeq(ms) if ms == last.ms => {
            let seq = last.seq.checked_add(1).ok_or(NOT_ABOVE_TOP)?;
            StreamId::new(ms, seq)
        }
        RequestedId::AutoSeq(ms) => StreamId::new(ms, 0),
        RequestedId::Exact(id) => id,
    };
    if id <= last {
        return Err(NOT_ABOVE_TOP);
    }
    Ok(id)
}

/// The ID XADD asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestedId {
    /// `*`: the time now, or the next after the last.
    Auto,
    /// `ms-*`: these milliseconds, the next sequence number.
    AutoSeq(u64),
    /// An explicit ID.
    Exact(StreamId),
}

/// XADD's error for an ID not above the last one.
pub const NOT_ABOVE_TOP: &str =
    "ERR The ID specified in XADD is equal or smaller than the target stream top item";
/// XADD's error when no ID is left.
pub const EXHAUSTED: &str =
    "ERR The stream has exhausted the last possible ID, unable to add more items";

/// A node's listpack as Redis encodes it: its size in bytes, and its live and deleted
/// entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeSize {
    /// `lpBytes` of the node's listpack.
    pub bytes: usize,
    /// Live entries.
    pub live: usize,
    /// Deleted entries still in it.
    pub deleted: usize,
}

impl NodeSize {
    /// The listpack of the node made of `rows` (the first begins it): the master entry (live
    /// count, deleted count, the first entry's field names, a 0), then per entry its flags,
    /// ID deltas, its field names unless they are the master's, its values, and its element
    /// count.
    fn of(rows: &[(StreamId, &[u8])]) -> NodeSize {
        let Some(&(master, first)) = rows.first() else {
            return NodeSize::default();
        };
        let master_fields: Vec<&[u8]> = row_pairs(first)
            .filter_map(Result::ok)
            .map(|(f, _)| f)
            .collect();
        let deleted = rows.iter().filter(|(_, v)| row_deleted(v)).count();
        let live = rows.len() - deleted;
        // Listpack header (total bytes, element count) and end byte.
        let mut bytes = listpack::OVERHEAD;
        bytes += listpack::int_size(live as i64)
            + listpack::int_size(deleted as i64)
            + listpack::int_size(master_fields.len() as i64);
        bytes += master_fields
            .iter()
            .map(|f| listpack::entry_size(f))
            .sum::<usize>();
        bytes += listpack::int_size(0);
        for &(id, value) in rows {
            let pairs: Vec<(&[u8], &[u8])> = row_pairs(value).filter_map(Result::ok).collect();
            let same = pairs.len() == master_fields.len()
                && pairs.iter().zip(&master_fields).all(|((f, _), m)| f == m);
            // Redis's flags: 1 deleted, 2 same fields as the master entry.
            let flags = i64::from(row_deleted(value)) | if same { 2 } else { 0 };
            bytes += listpack::int_size(flags);
            bytes += listpack::int_size(id.ms.wrapping_sub(master.ms) as i64);
            bytes += listpack::int_size(id.seq.wrapping_sub(master.seq) as i64);
            let values: usize = pairs.iter().map(|(_, v)| listpack::entry_size(v)).sum();
            let n = pairs.len() as i64;
            if same {
                bytes += values + listpack::int_size(n + 3);
            } else {
                let fields: usize = pairs.iter().map(|(f, _)| listpack::entry_size(f)).sum();
                bytes += listpack::int_size(n) + fields + values + listpack::int_size(2 * n + 4);
            }
        }
        NodeSize {
            bytes,
            live,
            deleted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn add(s: &mut StreamValue, ms: u64, pairs: &[(&str, &str)]) {
        let pairs: Vec<(Bytes, Bytes)> = pairs.iter().map(|(f, v)| (b(f), b(v))).collect();
        s.add(StreamId::new(ms, 0), &pairs);
    }

    fn ids(s: &StreamValue) -> Vec<u64> {
        s.entries().map(|(id, _)| id.ms).collect()
    }

    #[test]
    fn an_image_round_trips_with_its_nodes_and_deleted_entries() {
        let mut s = StreamValue::new();
        for ms in 1..=250 {
            add(&mut s, ms, &[("f", "v")]);
        }
        assert!(s.delete(StreamId::new(5, 0)));
        assert!(!s.delete(StreamId::new(5, 0)));
        let image = s.encode();
        let back = StreamValue::decode(&image).expect("decodes");
        assert_eq!(back.len(), 249);
        assert_eq!(back.nodes().len(), 3);
        assert_eq!(back.nodes()[0].deleted, 1);
        assert_eq!(back.meta().max_deleted, StreamId::new(5, 0));
        let listed = range(&image, StreamId::MIN, StreamId::MAX, false, None).expect("reads");
        assert_eq!(listed.len(), 249);
        assert_eq!(listed[4].0, StreamId::new(6, 0));
    }

    #[test]
    fn an_approximate_trim_removes_whole_nodes_only() {
        let mut s = StreamValue::new();
        for ms in 1..=250 {
            add(&mut s, ms, &[("f", "v")]);
        }
        let trim = |n, approx| Trim {
            strategy: TrimStrategy::MaxLen(n),
            approx,
            limit: 0,
        };
        assert_eq!(
            s.trim(trim(180, true)),
            0,
            "removing a node would leave 150"
        );
        assert_eq!(s.trim(trim(150, true)), 100);
        assert_eq!(s.trim(trim(120, false)), 30);
        assert_eq!(ids(&s).first(), Some(&131));
        assert_eq!(s.len(), 120);
    }

    #[test]
    fn a_node_closes_at_its_byte_limit() {
        let mut s = StreamValue::new();
        let big = "x".repeat(1000);
        for ms in 1..=5 {
            add(&mut s, ms, &[("f", &big)]);
        }
        // 18 bytes of header and master entry, then 1012 per entry: after four (4066), a
        // fifth's 1001 bytes of payload would reach 4096 (redis-server 7.0 splits it so too).
        assert_eq!(s.nodes().iter().map(|n| n.live).collect::<Vec<_>>(), [4, 1]);
        assert_eq!(s.nodes()[0].bytes, 4066);
    }

    #[test]
    fn deleting_a_node_s_last_live_entry_removes_the_node() {
        let mut s = StreamValue::new();
        for ms in 1..=3 {
            add(&mut s, ms, &[("f", "v")]);
        }
        for ms in 1..=3 {
            assert!(s.delete(StreamId::new(ms, 0)));
        }
        assert!(s.is_empty());
        assert!(s.nodes().is_empty());
        assert_eq!(s.meta().last_id, StreamId::new(3, 0));
    }

    #[test]
    fn a_node_an_exact_minid_trim_empties_stays_as_in_redis() {
        let mut s = StreamValue::new();
        for ms in 1..=150 {
            add(&mut s, ms, &[("f", "v")]);
        }
        // As a command sees it: read back, nothing touched yet.
        let mut s = StreamValue::decode(&s.encode()).expect("decodes");
        let minid = |ms, approx| Trim {
            strategy: TrimStrategy::MinId(StreamId::new(ms, 0)),
            approx,
            limit: 0,
        };
        // The first node (1..=100) loses its last entry, then MINID 100 marks the other 99:
        // no live entry is left in it, and Redis keeps it (only XDEL frees a node).
        assert!(s.delete(StreamId::new(100, 0)));
        assert_eq!(s.trim(minid(100, false)), 99);
        assert_eq!(s.nodes().len(), 2);
        assert_eq!(s.nodes()[0].live, 0);
        // XDEL elsewhere leaves it; a trim past its last ID removes it whole.
        assert_eq!(
            s.delete_many(&[StreamId::new(120, 0), StreamId::new(120, 0)]),
            1
        );
        assert_eq!(s.nodes().len(), 2);
        assert_eq!(s.trim(minid(101, true)), 0);
        assert_eq!(s.nodes().len(), 1);
        assert_eq!(ids(&s).first(), Some(&101));
        assert_eq!(s.len(), 49);
        // Every row removed or marked is named for the store, with the metadata.
        assert_eq!(s.changes().len(), 1 + 100 + 1);
    }

    #[test]
    fn trimming_a_long_stream_to_nothing_cuts_its_nodes_at_once() {
        let mut s = StreamValue::new();
        for ms in 1..=200_000 {
            add(&mut s, ms, &[("f", "v")]);
        }
        let s = &mut StreamValue::decode(&s.encode()).expect("decodes");
        let trim = Trim {
            strategy: TrimStrategy::MaxLen(0),
            approx: true,
            limit: 0,
        };
        assert_eq!(s.trim(trim), 200_000);
        assert!(s.is_empty());
        assert_eq!(s.changes().len(), 200_001);
        let many: Vec<StreamId> = (1..=200_000).map(|ms| StreamId::new(ms, 0)).collect();
        let mut again = StreamValue::new();
        for ms in 1..=200_000 {
            add(&mut again, ms, &[("f", "v")]);
        }
        assert_eq!(again.delete_many(&many), 200_000);
        assert!(again.nodes().is_empty());
    }

    /// The one-pass XADD makes the image, the changed rows and the trim count the decoded path
    /// makes, over random streams: entries small and large, same and other fields, deletions,
    /// approximate MAXLEN and MINID trims with and without LIMIT, trims that empty the stream.
    #[test]
    fn a_one_pass_xadd_equals_the_decoded_one() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for _ in 0..40 {
            let mut image = StreamValue::new().encode();
            let mut ms = 0;
            for _ in 0..300 {
                let mut stream = StreamValue::decode(&image).expect("decodes");
                if next(10) == 0 && !stream.is_empty() {
                    let ids: Vec<StreamId> = stream.entries().map(|(id, _)| id).collect();
                    let victim = ids[next(ids.len() as u64) as usize];
                    stream.delete(victim);
                    image = stream.encode();
                    continue;
                }
                ms += next(3);
                let id = StreamId::new(ms, next(4));
                if id <= stream.meta().last_id {
                    continue;
                }
                let value = "v".repeat(next(8) as usize * next(200) as usize);
                let field = if next(4) == 0 { "other" } else { "f" };
                let pairs = [(b(field), b(&value)), (b("n"), b(&next(300).to_string()))];
                let trim = match next(5) {
                    0 => Some(Trim {
                        strategy: TrimStrategy::MaxLen(next(150)),
                        approx: true,
                        limit: [0, 10_000, 30][next(3) as usize],
                    }),
                    1 => Some(Trim {
                        strategy: TrimStrategy::MinId(StreamId::new(
                            ms.saturating_sub(next(40)),
                            0,
                        )),
                        approx: true,
                        limit: 0,
                    }),
                    _ => None,
                };
                let (fast, changed, removed) =
                    with_added(&image, id, &pairs, trim).expect("one pass");
                stream.add(id, &pairs);
                let slow_removed = trim.map_or(0, |t| stream.trim(t));
                assert_eq!(fast, stream.encode(), "image after {id}");
                assert_eq!(changed, stream.changes(), "rows named after {id}");
                assert_eq!(removed, slow_removed);
                image = fast;
            }
        }
        // An exact trim, or a deleted row above the new ID, goes the decoded way.
        let mut s = StreamValue::new();
        add(&mut s, 1, &[("f", "v")]);
        add(&mut s, 2, &[("f", "v")]);
        let image = s.encode();
        let exact = Trim {
            strategy: TrimStrategy::MaxLen(1),
            approx: false,
            limit: 0,
        };
        assert!(with_added(
            &image,
            StreamId::new(3, 0),
            &[(b("f"), b("v"))],
            Some(exact)
        )
        .is_none());
        s.delete(StreamId::new(2, 0));
        s.set_id(StreamId::new(1, 5), None, None);
        assert!(with_added(&s.encode(), StreamId::new(1, 6), &[(b("f"), b("v"))], None).is_none());
    }

    #[test]
    fn ids_are_picked_as_redis_does() {
        let mut s = StreamValue::new();
        assert_eq!(
            s.next_id(RequestedId::Exact(StreamId::MIN), 0),
            Err(NOT_ABOVE_TOP)
        );
        assert_eq!(s.next_id(RequestedId::Auto, 10), Ok(StreamId::new(10, 0)));
        add(&mut s, 10, &[("f", "v")]);
        assert_eq!(s.next_id(RequestedId::Auto, 5), Ok(StreamId::new(10, 1)));
        assert_eq!(
            s.next_id(RequestedId::AutoSeq(10), 0),
            Ok(StreamId::new(10, 1))
        );
        assert_eq!(s.next_id(RequestedId::AutoSeq(9), 0), Err(NOT_ABOVE_TOP));
        s.set_id(StreamId::MAX, None, None);
        assert_eq!(s.next_id(RequestedId::Auto, 0), Err(EXHAUSTED));
    }
}
