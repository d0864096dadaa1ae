//! The types every layer shares: a key in a logical database, the type of a value, the change
//! to one key, and a live key as a read returns it. They belong to no tier: the cache, the
//! write-back buffer, the journal and the store all speak them, so none of those imports
//! another for them.

use std::borrow::Cow;

use bytes::Bytes;

pub mod events;
pub mod hash;
pub mod list;
pub mod listpack;
pub mod member_delta;
pub mod set;
pub mod stream;
pub mod stream_groups;
pub mod zset;

/// A key in one logical database (SELECT 0-15): what the cache, the write-back buffer, the
/// key locks and single-flight reads are keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DbKey {
    /// Redis database index (SELECT).
    pub db: u8,
    /// The full Redis key.
    pub key: Bytes,
}

/// The Redis type of a value. A value's bytes are the string itself, or the encoding of its
/// type (for a hash, [`hash`]). Stored as a small integer (the discriminant) in the built-in
/// table and the journal, so the numbers never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum Kind {
    /// A string (TYPE `string`).
    #[default]
    String = 0,
    /// A hash (TYPE `hash`): field → value, in insertion order.
    Hash = 1,
    /// A set (TYPE `set`), encoded as [`set`]. On the built-in table its members are rows of
    /// their own, so a write stores only the members it changed.
    Set = 2,
    /// A sorted set (TYPE `zset`), encoded as [`zset`]. On the built-in table its members are
    /// rows of their own with their scores, as a set's.
    ZSet = 3,
    /// A list (TYPE `list`), encoded as [`list`]. On the built-in table each element is a row
    /// of its own keyed by its position in the list.
    List = 4,
    /// A stream (TYPE `stream`), encoded as [`stream`]. On the built-in table its metadata
    /// and each entry are rows of their own, so XADD stores two rows.
    Stream = 5,
}

impl Kind {
    /// The stored number of a kind, or `None` for a number no kind has.
    pub fn from_code(code: u8) -> Option<Kind> {
        match code {
            0 => Some(Kind::String),
            1 => Some(Kind::Hash),
            2 => Some(Kind::Set),
            3 => Some(Kind::ZSet),
            4 => Some(Kind::List),
            5 => Some(Kind::Stream),
            _ => None,
        }
    }

    /// The stored number.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// What TYPE answers.
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Hash => "hash",
            Kind::Set => "set",
            Kind::ZSet => "zset",
            Kind::List => "list",
            Kind::Stream => "stream",
        }
    }

    /// Whether the built-in table keeps this kind's members as rows of their own
    /// (`sluice_members`) rather than in the key's row: a write then names the members it
    /// changed ([`StoreWrite::Partial`]) and a store writes those rows only.
    pub fn stored_by_member(self) -> bool {
        matches!(self, Kind::Set | Kind::ZSet | Kind::List | Kind::Stream)
    }
}

/// What to do to one key: what the write-back buffer holds per key, what the journal records
/// and what a store applies to a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreWrite {
    /// Insert or replace the whole value (and expiry, on the built-in table).
    Upsert {
        /// New value: the string, or the encoding of `kind`.
        value: Bytes,
        /// Its type.
        kind: Kind,
        /// Unix ms expiry; `None` for no expiry.
        expires_at: Option<u64>,
    },
    /// Remove the key.
    Delete,
    /// Set some fields of a row of a mapped hash keyspace (a hash is a row: field → column),
    /// leaving its other columns as they are.
    Partial(PartialWrite),
}

impl StoreWrite {
    /// A string upsert.
    pub fn string(value: Bytes, expires_at: Option<u64>) -> StoreWrite {
        StoreWrite::Upsert {
            value,
            kind: Kind::String,
            expires_at,
        }
    }

    /// The key as a reader sees it once this write is applied: `Some((value, kind,
    /// expires_at))`, or `None` if the key is gone (a delete, or a row with every mapped
    /// column NULL).
    pub fn visible(&self) -> Option<(&Bytes, Kind, Option<u64>)> {
        match self {
            StoreWrite::Upsert {
                value,
                kind,
                expires_at,
            } => Some((value, *kind, *expires_at)),
            StoreWrite::Delete => None,
            StoreWrite::Partial(f) if f.image_is_empty() => None,
            StoreWrite::Partial(f) => Some((&f.image, f.kind, f.expires_at)),
        }
    }

    /// The key's expiry after this write (Unix ms); `None` for no expiry or a delete.
    pub fn expires_at(&self) -> Option<u64> {
        match self {
            StoreWrite::Upsert { expires_at, .. } => *expires_at,
            StoreWrite::Partial(p) => p.expires_at,
            StoreWrite::Delete => None,
        }
    }

    /// Bytes this write holds (value or image), for buffer accounting.
    pub fn value_len(&self) -> usize {
        match self {
            StoreWrite::Upsert { value, .. } => value.len(),
            StoreWrite::Delete => 0,
            StoreWrite::Partial(f) => {
                f.image.len() + f.changed.iter().map(Bytes::len).sum::<usize>()
            }
        }
    }

    /// This write applied after `older` to the same key, as one write: what a coalescing
    /// buffer keeps. A partial write after another of the same kind keeps the union of their
    /// changed fields or members (for a collection stored by member, the whole value once that
    /// union outnumbers its members); after a delete, or a value of another kind, it replaces the
    /// whole value (the key's other members, or the row's other mapped columns, are gone).
    pub fn coalesce_after(self, older: &StoreWrite) -> StoreWrite {
        match (self, older) {
            (StoreWrite::Partial(mut newer), StoreWrite::Partial(older))
                if newer.kind == older.kind =>
            {
                if newer.replace {
                    // Replaces everything: what the older one changed no longer matters.
                } else if older.replace {
                    newer.replace = true;
                    newer.changed = Vec::new();
                } else if !older.changed.is_empty() {
                    // A set, not a scan per field: a hot key's list of changed members may
                    // be long, and this runs under the write-back buffer's lock.
                    let known: std::collections::HashSet<Bytes> =
                        newer.changed.iter().cloned().collect();
                    newer.changed.extend(
                        older
                            .changed
                            .iter()
                            .filter(|f| !known.contains(*f))
                            .cloned(),
                    );
                    // More members changed than the collection holds (a queue's pushes and
                    // pops, a small set's churn): storing it whole is no more work, and the
                    // list of changes, journaled with every write, stops growing.
                    if newer.kind.stored_by_member()
                        && newer.changed.len() > hash::len(&newer.image)
                    {
                        newer.replace = true;
                        newer.changed = Vec::new();
                    }
                }
                StoreWrite::Partial(newer)
            }
            (StoreWrite::Partial(mut newer), _) => {
                newer.replace = true;
                newer.changed = Vec::new();
                StoreWrite::Partial(newer)
            }
            (newer, _) => newer,
        }
    }
}

/// The rows a collection image is stored as, by member (a list's position key, a stream's row
/// key) with the bytes that row holds (a score's bits, an element, a stream row; nothing for a
/// set member): what [`PartialWrite::prune_stored`] and
/// [`PartialWrite::rebase_on_stored_whole`] compare. `None` for a malformed image or a kind not
/// stored by member.
type Rows<'a> = std::collections::HashMap<Cow<'a, [u8]>, Cow<'a, [u8]>>;

fn rows_of(kind: Kind, image: &[u8]) -> Option<Rows<'_>> {
    let mut rows = Rows::new();
    match kind {
        Kind::Set => {
            for m in set::members(image) {
                rows.insert(Cow::Borrowed(m.ok()?), Cow::Borrowed(&[][..]));
            }
        }
        Kind::ZSet => {
            for e in zset::entries(image) {
                let (m, score) = e.ok()?;
                rows.insert(
                    Cow::Borrowed(m),
                    Cow::Owned(score.to_bits().to_be_bytes().to_vec()),
                );
            }
        }
        Kind::List => {
            for e in list::elements(image) {
                let (position, element) = e.ok()?;
                rows.insert(
                    Cow::Owned(list::position_key(position).to_vec()),
                    Cow::Borrowed(element),
                );
            }
        }
        Kind::Stream => {
            for pair in hash::pairs(image) {
                let (m, v) = pair.ok()?;
                rows.insert(Cow::Borrowed(m), Cow::Borrowed(v));
            }
        }
        Kind::String | Kind::Hash => return None,
    }
    Some(rows)
}

/// The largest image [`PartialWrite::rebase_on_stored_whole`] diffs; a larger whole value is
/// stored whole again.
pub const REBASE_MAX_MEMBERS: usize = 50_000;

/// A write to part of a collection ([`StoreWrite::Partial`]): some fields of a mapped row, or
/// some members of a collection the built-in table stores by member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialWrite {
    /// The kind of the collection: [`Kind::Hash`] for a mapped row.
    pub kind: Kind,
    /// The whole value after the write, encoded as its kind's encoding (a row's NULL columns
    /// absent): what a reader sees while the write waits in a buffer, and where the store
    /// takes the changed fields' or members' values from.
    pub image: Bytes,
    /// The fields (column names) or members the write changes; one absent from `image` is set
    /// NULL (a column) or removed (a member). Empty when `replace` is set: the image says it
    /// all.
    pub changed: Vec<Bytes>,
    /// The whole value is replaced: every mapped column not in `image` is set NULL (or, with
    /// `on_delete = "delete-row"`, the row is deleted first), every member not in `image` is
    /// removed, as after a DEL.
    pub replace: bool,
    /// Unix ms expiry of the key (the built-in table only; `None` on a mapped row).
    pub expires_at: Option<u64>,
}

impl PartialWrite {
    /// True when the row is left with every mapped column NULL: the key does not exist.
    pub fn image_is_empty(&self) -> bool {
        hash::len(&self.image) == 0
    }

    /// The new value of a changed field; `None` sets it NULL.
    pub fn value_of(&self, field: &[u8]) -> Option<Bytes> {
        hash::get(&self.image, field)
    }

    /// Drops from `changed` what `stored` (an older write of this key, now committed to the
    /// database) wrote as this write has it: a member `stored` changed whose value in this
    /// image equals its value in `stored`'s image, absent from both included. The database
    /// holds exactly those values now, so writing them again would change nothing. A member
    /// `stored` did not write stays, even when both images agree on it: the images need not
    /// match the table (another program may have changed the row since they were read). A
    /// leaderboard's key, rewritten while every flush is in flight, otherwise carries each
    /// flush's players into the next one too (an event log's key, each flush's events). Sorted
    /// sets, sets and lists (an element by its position; a stream's rows are not compared),
    /// and only when neither write replaces the whole value.
    pub fn prune_stored(&mut self, stored: &PartialWrite) {
        if self.replace
            || stored.replace
            || self.kind != stored.kind
            || self.changed.is_empty()
            || !matches!(self.kind, Kind::ZSet | Kind::Set | Kind::List)
        {
            return;
        }
        let (Some(ours), Some(theirs)) = (
            rows_of(self.kind, &self.image),
            rows_of(stored.kind, &stored.image),
        ) else {
            return;
        };
        let written: std::collections::HashSet<&[u8]> =
            stored.changed.iter().map(|m| &m[..]).collect();
        self.changed
            .retain(|m| !written.contains(&m[..]) || ours.get(&m[..]) != theirs.get(&m[..]));
    }

    /// After `stored`, an older write of this key that replaced its whole value, is committed
    /// to a table where the key's rows are exactly what such a write left (the built-in table,
    /// which no other program writes): this write, if it replaces the whole value too, becomes
    /// a write of only the members whose values differ between the two images (absent from
    /// one included). A key rewritten while every flush is in flight otherwise stays a whole
    /// replace for as long as it is hot, since each write coalesced onto a replace is one: a
    /// new event log rewritten whole at every flush. Sets, sorted sets, lists and streams.
    ///
    /// Not after a stored value with an expiry: it may have been stored as a delete (expired
    /// by then), or its rows deleted by the reaper since, so the rows are not its image. Not for
    /// images of more than [`REBASE_MAX_MEMBERS`] members either: the difference is computed
    /// under the write-back buffer's lock.
    pub fn rebase_on_stored_whole(&mut self, stored: &PartialWrite) {
        if !(self.replace && stored.replace && self.kind == stored.kind)
            || stored.expires_at.is_some()
            || hash::len(&self.image) > REBASE_MAX_MEMBERS
            || hash::len(&stored.image) > REBASE_MAX_MEMBERS
        {
            return;
        }
        let (Some(ours), Some(theirs)) = (
            rows_of(self.kind, &self.image),
            rows_of(stored.kind, &stored.image),
        ) else {
            return;
        };
        let mut changed: Vec<Bytes> = ours
            .iter()
            .filter(|(m, v)| theirs.get(*m) != Some(*v))
            .map(|(m, _)| Bytes::copy_from_slice(m))
            .collect();
        changed.extend(
            theirs
                .keys()
                .filter(|m| !ours.contains_key(*m))
                .map(|m| Bytes::copy_from_slice(m)),
        );
        self.replace = false;
        self.changed = changed;
    }

    /// A write of every member of `image`, replacing what the key held: how a whole value of a
    /// kind stored by member (a RENAME, a SUNIONSTORE) reaches the built-in table.
    pub fn whole(kind: Kind, image: Bytes, expires_at: Option<u64>) -> PartialWrite {
        PartialWrite {
            kind,
            image,
            changed: Vec::new(),
            replace: true,
            expires_at,
        }
    }

    /// The bytes the journal and the dead-letter file keep: `replace` (one byte), the changed
    /// fields (a count, then each length-prefixed), then the image. The kind and the expiry
    /// are kept beside them.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = bytes::BytesMut::with_capacity(
            1 + self.image.len() + self.changed.iter().map(|f| f.len() + 2).sum::<usize>(),
        );
        out.extend_from_slice(&[u8::from(self.replace)]);
        hash::put_len(&mut out, self.changed.len());
        for field in &self.changed {
            hash::put_len(&mut out, field.len());
            out.extend_from_slice(field);
        }
        out.extend_from_slice(&self.image);
        out.to_vec()
    }

    /// Reads back [`PartialWrite::to_bytes`] of a write of `kind` expiring at `expires_at`; an
    /// error for bytes it did not write.
    pub fn from_bytes(
        bytes: &Bytes,
        kind: Kind,
        expires_at: Option<u64>,
    ) -> Result<PartialWrite, hash::MalformedHash> {
        let replace = match bytes.first() {
            Some(0) => false,
            Some(1) => true,
            _ => return Err(hash::MalformedHash),
        };
        let mut at = 1;
        let count = hash::take_len(bytes, &mut at)?;
        let mut changed = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            changed.push(bytes.slice_ref(hash::take(bytes, &mut at)?));
        }
        let image = bytes.slice(at..);
        // The image must decode too, or a reader would fail later, far from the cause.
        match kind {
            Kind::Hash => {
                for pair in hash::pairs(&image) {
                    pair?;
                }
            }
            Kind::Set => {
                for member in set::members(&image) {
                    member?;
                }
            }
            Kind::ZSet => {
                for entry in zset::entries(&image) {
                    entry?;
                }
            }
            Kind::List => {
                list::ListValue::decode(&image)?;
            }
            Kind::Stream => {
                stream::StreamValue::decode(&image)?;
            }
            Kind::String => return Err(hash::MalformedHash),
        }
        Ok(PartialWrite {
            kind,
            image,
            changed,
            replace,
            expires_at,
        })
    }
}

/// A live key: its value, type and, on the built-in keyspace, its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The value: the string, or the encoding of `kind`.
    pub value: Bytes,
    /// Its type.
    pub kind: Kind,
    /// Unix ms at which the key expires; always `None` on mapped keyspaces.
    pub expires_at: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list_write(list: &list::ListValue) -> StoreWrite {
        let (changed, replace) = list.changes();
        StoreWrite::Partial(PartialWrite {
            kind: Kind::List,
            image: list.encode(),
            changed,
            replace,
            expires_at: None,
        })
    }

    #[test]
    fn a_queue_s_coalesced_changes_never_outnumber_its_elements() {
        let b = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        let mut list = list::ListValue::from_elements([b("job0")]);
        let mut buffered: Option<StoreWrite> = None;
        for i in 1..100 {
            let mut next = list::ListValue::decode(&list.encode()).unwrap();
            next.push([b(&format!("job{i}"))], false);
            next.pop(true);
            let write = list_write(&next);
            let coalesced = match buffered.take() {
                Some(older) => write.coalesce_after(&older),
                None => write,
            };
            if let (StoreWrite::Partial(p), true) = (&coalesced, i > 1) {
                assert!(p.changed.len() <= hash::len(&p.image), "step {i}");
            }
            buffered = Some(coalesced);
            list = next;
        }
        let Some(StoreWrite::Partial(p)) = buffered else {
            panic!("a partial write");
        };
        assert!(
            p.replace,
            "stored whole once the changes outnumber the elements"
        );
        assert_eq!(list::view(&p.image), vec![&b"job99"[..]]);
    }

    #[test]
    fn a_stored_write_prunes_the_members_it_left_as_they_are() {
        let b = |v: &[&'static str]| v.iter().map(|m| Bytes::from(*m)).collect::<Vec<_>>();
        let z = |v: &[(&'static str, f64)]| {
            zset::ZSetValue::from_entries(v.iter().map(|(m, s)| (Bytes::from(*m), *s))).encode()
        };
        let partial = |kind, image, changed| PartialWrite {
            kind,
            image,
            changed,
            replace: false,
            expires_at: None,
        };
        // Flushed: a=1, b=2 (and c removed). Since: b rescored, d added.
        let stored = partial(
            Kind::ZSet,
            z(&[("a", 1.0), ("b", 2.0)]),
            b(&["a", "b", "c"]),
        );
        let mut newer = partial(
            Kind::ZSet,
            z(&[("a", 1.0), ("b", 3.0), ("d", 4.0)]),
            b(&["a", "b", "c", "d"]),
        );
        newer.prune_stored(&stored);
        assert_eq!(newer.changed, b(&["b", "d"]));
        // A member changed and changed back is as stored: nothing to write.
        let mut back = partial(Kind::ZSet, z(&[("a", 1.0), ("b", 2.0)]), b(&["a", "b"]));
        back.prune_stored(&stored);
        assert!(back.changed.is_empty());

        let s = |v: &[&'static str]| set::SetValue::from_members(b(v)).encode();
        let stored = partial(Kind::Set, s(&["x"]), b(&["x", "y"]));
        let mut newer = partial(Kind::Set, s(&["x", "z"]), b(&["x", "y", "z"]));
        newer.prune_stored(&stored);
        assert_eq!(newer.changed, b(&["z"]));
        // A member the stored write did not write stays, though both images agree on it:
        // another program may have added it to the table (SADD w then SREM w since).
        let stored = partial(Kind::Set, s(&["a", "b"]), b(&["b"]));
        let mut newer = partial(Kind::Set, s(&["a", "b"]), b(&["w", "b"]));
        newer.prune_stored(&stored);
        assert_eq!(newer.changed, b(&["w"]));

        // A replace on either side, or another kind, keeps everything.
        let mut whole = partial(Kind::Set, s(&["x"]), b(&["x"]));
        whole.replace = true;
        let mut kept = partial(Kind::Set, s(&["x"]), b(&["x"]));
        kept.prune_stored(&whole);
        assert_eq!(kept.changed, b(&["x"]));
        let mut stream = partial(Kind::Stream, Bytes::new(), b(&["p"]));
        stream.prune_stored(&partial(Kind::Stream, Bytes::new(), b(&["p"])));
        assert_eq!(stream.changed, b(&["p"]));

        // A list by position: flushed e0, e1 (pushed); since: e2 pushed and e0 set anew.
        let key = |p: i64| Bytes::copy_from_slice(&list::position_key(p * list::POSITION_STEP));
        let l = |v: &[(i64, &'static str)]| {
            list::ListValue::from_rows(v.iter().map(|(p, e)| (key(*p), Bytes::from(*e)))).encode()
        };
        let stored = partial(Kind::List, l(&[(0, "e0"), (1, "e1")]), vec![key(0), key(1)]);
        let mut newer = partial(
            Kind::List,
            l(&[(0, "E0"), (1, "e1"), (2, "e2")]),
            vec![key(0), key(1), key(2)],
        );
        newer.prune_stored(&stored);
        assert_eq!(newer.changed, vec![key(0), key(2)]);
        // An element popped since is still removed.
        let mut popped = partial(Kind::List, l(&[(1, "e1")]), vec![key(0), key(1)]);
        popped.prune_stored(&stored);
        assert_eq!(popped.changed, vec![key(0)]);
    }

    #[test]
    fn a_whole_value_after_a_stored_whole_value_stores_their_difference() {
        let whole = |kind, image| PartialWrite::whole(kind, image, None);
        let sorted = |mut v: Vec<Bytes>| {
            v.sort();
            v
        };
        // A new list stored whole (e0, e1); since: e2 pushed, e0 popped, e1 set anew.
        let key = |p: i64| Bytes::copy_from_slice(&list::position_key(p));
        let l = |v: &[(i64, &'static str)]| {
            list::ListValue::from_rows(v.iter().map(|(p, e)| (key(*p), Bytes::from(*e)))).encode()
        };
        let stored = whole(Kind::List, l(&[(0, "e0"), (1, "e1")]));
        let mut newer = whole(Kind::List, l(&[(1, "E1"), (2, "e2")]));
        newer.rebase_on_stored_whole(&stored);
        assert!(!newer.replace);
        assert_eq!(sorted(newer.changed), vec![key(0), key(1), key(2)]);
        // The same value: nothing to write.
        let mut same = whole(Kind::List, l(&[(0, "e0"), (1, "e1")]));
        same.rebase_on_stored_whole(&stored);
        assert!(!same.replace && same.changed.is_empty());

        let z = |v: &[(&'static str, f64)]| {
            zset::ZSetValue::from_entries(v.iter().map(|(m, s)| (Bytes::from(*m), *s))).encode()
        };
        let stored = whole(Kind::ZSet, z(&[("a", 1.0), ("b", 2.0)]));
        let mut newer = whole(Kind::ZSet, z(&[("a", 1.0), ("b", 3.0), ("c", 1.0)]));
        newer.rebase_on_stored_whole(&stored);
        assert_eq!(
            sorted(newer.changed),
            vec![Bytes::from("b"), Bytes::from("c")]
        );

        // Only a whole value after a whole value of the same kind.
        let mut partial_newer = PartialWrite {
            replace: false,
            changed: vec![Bytes::from("x")],
            ..whole(Kind::ZSet, z(&[("x", 1.0)]))
        };
        partial_newer.rebase_on_stored_whole(&stored);
        assert_eq!(partial_newer.changed, vec![Bytes::from("x")]);
        let mut set = whole(
            Kind::Set,
            set::SetValue::from_members([Bytes::from("a")]).encode(),
        );
        set.rebase_on_stored_whole(&stored);
        assert!(set.replace);
        // Not after a stored value with an expiry: it may have been stored as a delete, or
        // reaped since, so the table need not hold its members.
        let expiring = PartialWrite::whole(Kind::ZSet, z(&[("a", 1.0)]), Some(1));
        let mut after = whole(Kind::ZSet, z(&[("a", 1.0)]));
        after.rebase_on_stored_whole(&expiring);
        assert!(after.replace);
    }
}
