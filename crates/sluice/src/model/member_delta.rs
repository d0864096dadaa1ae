//! What one write changed in a large collection, as the write-back journal records it: each
//! changed member's new row (a sorted set member's score, a list element, a stream row; a set
//! member's presence), or its removal, and the key's expiry.
//!
//! A write to a set, sorted set, list or stream carries the collection's whole image
//! ([`PartialWrite::image`]); journaling that image with every write made one ZINCRBY of a
//! million-member leaderboard write twenty megabytes to disk. While a key's earlier records
//! (its *chain*, from its last record that holds the whole image) are kept by the journal, a
//! write journals only a [`MemberDelta`], and replay rebuilds the image from the chain
//! ([`ChainRows`]). Every row a delta names is absolute (the member's value, not an
//! increment), so a chain replayed onto rows that already hold some of it ends the same.

use std::collections::{HashMap, HashSet};

use bytes::{Bytes, BytesMut};

use super::hash::{self, MalformedHash};
use super::{list, rows_of, set, stream, zset, Kind, PartialWrite};

/// The changed members of one write to a collection stored by member, each with its new row
/// (`None`: removed), and the key's expiry after the write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDelta {
    /// The collection's kind: a set, sorted set, list or stream.
    pub kind: Kind,
    /// Each changed member (a list element's position key, a stream's row key) with its row
    /// as [`rows_of`] has it: a score's big-endian bits, an element, a stream row, nothing for
    /// a set member; `None` when the write removed it.
    pub rows: Vec<(Bytes, Option<Bytes>)>,
    /// Unix ms expiry of the key after the write.
    pub expires_at: Option<u64>,
}

/// Past this many changed members, a delta reads the image once into a map rather than
/// scanning it once per member.
const SCAN_PER_MEMBER_UP_TO: usize = 8;

impl MemberDelta {
    /// The delta of `write`: its changed members' rows, read from its image. `None` when it
    /// has none to give: a whole replace, a kind not stored by member, or an image that does
    /// not decode (the write is then journaled whole, and refused where it always was).
    pub fn of(write: &PartialWrite) -> Option<MemberDelta> {
        if write.replace || !write.kind.stored_by_member() {
            return None;
        }
        let image = &write.image;
        let mut rows = Vec::with_capacity(write.changed.len());
        if write.changed.len() > SCAN_PER_MEMBER_UP_TO {
            let all = rows_of(write.kind, image)?;
            for member in &write.changed {
                let row = all.get(&member[..]).map(|v| Bytes::copy_from_slice(v));
                rows.push((member.clone(), row));
            }
        } else {
            for member in &write.changed {
                rows.push((member.clone(), row_in(write.kind, image, member)?));
            }
        }
        Some(MemberDelta {
            kind: write.kind,
            rows,
            expires_at: write.expires_at,
        })
    }

    /// The length of [`MemberDelta::to_bytes`].
    pub fn encoded_len(&self) -> usize {
        hash::len_size(self.rows.len())
            + self
                .rows
                .iter()
                .map(|(m, row)| {
                    hash::len_size(m.len())
                        + m.len()
                        + 1
                        + row
                            .as_ref()
                            .map_or(0, |r| hash::len_size(r.len()) + r.len())
                })
                .sum::<usize>()
    }

    /// The bytes a journal record holds: a count, then per member its length-prefixed bytes,
    /// a byte saying whether a row follows (1) or it was removed (0), and the row,
    /// length-prefixed. The kind and the expiry are kept beside them.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        hash::put_len(&mut out, self.rows.len());
        for (member, row) in &self.rows {
            hash::put_len(&mut out, member.len());
            out.extend_from_slice(member);
            match row {
                Some(row) => {
                    out.extend_from_slice(&[1]);
                    hash::put_len(&mut out, row.len());
                    out.extend_from_slice(row);
                }
                None => out.extend_from_slice(&[0]),
            }
        }
        out.to_vec()
    }

    /// Reads back [`MemberDelta::to_bytes`] of a write to a `kind` expiring at `expires_at`;
    /// an error for bytes it did not write, or a kind not stored by member.
    pub fn from_bytes(
        bytes: &Bytes,
        kind: Kind,
        expires_at: Option<u64>,
    ) -> Result<MemberDelta, MalformedHash> {
        if !kind.stored_by_member() {
            return Err(MalformedHash);
        }
        let mut at = 0;
        let count = hash::take_len(bytes, &mut at)?;
        // Each member takes at least two bytes: a count past that is a lie, not an allocation.
        if count > bytes.len() / 2 {
            return Err(MalformedHash);
        }
        let mut rows = Vec::with_capacity(count.min(1 << 16));
        for _ in 0..count {
            let member = bytes.slice_ref(hash::take(bytes, &mut at)?);
            let present = *bytes.get(at).ok_or(MalformedHash)?;
            at += 1;
            let row = match present {
                0 => None,
                1 => Some(bytes.slice_ref(hash::take(bytes, &mut at)?)),
                _ => return Err(MalformedHash),
            };
            if !row_fits(kind, &member, row.as_deref()) {
                return Err(MalformedHash);
            }
            rows.push((member, row));
        }
        if at != bytes.len() {
            return Err(MalformedHash);
        }
        Ok(MemberDelta {
            kind,
            rows,
            expires_at,
        })
    }
}

/// The row `member` has in `image` (`Some(None)`: absent), as [`rows_of`] gives it; `None`
/// for a member or image that does not decode.
fn row_in(kind: Kind, image: &Bytes, member: &[u8]) -> Option<Option<Bytes>> {
    Some(match kind {
        Kind::Set => set::contains(image, member).then(Bytes::new),
        Kind::ZSet => {
            zset::score(image, member).map(|s| Bytes::copy_from_slice(&s.to_bits().to_be_bytes()))
        }
        Kind::List => {
            list::element_at(image, list::position_of(member)?).map(Bytes::copy_from_slice)
        }
        Kind::Stream => hash::get(image, member),
        Kind::String | Kind::Hash => return None,
    })
}

/// Whether a row has the shape its kind's rows have: a score is 8 bytes, a list's member is a
/// position key, a set member's row is empty.
fn row_fits(kind: Kind, member: &[u8], row: Option<&[u8]>) -> bool {
    match (kind, row) {
        (Kind::List, _) if list::position_of(member).is_none() => false,
        (Kind::Set, Some(row)) => row.is_empty(),
        (Kind::ZSet, Some(row)) => row.len() == 8,
        _ => true,
    }
}

/// A collection being rebuilt from its journal chain at replay: the rows of its last whole
/// record, each delta applied onto them, and what is still to be stored (the whole record's
/// changes and every delta's members).
#[derive(Debug, Clone)]
pub struct ChainRows {
    kind: Kind,
    rows: HashMap<Bytes, Bytes>,
    changed: Vec<Bytes>,
    named: HashSet<Bytes>,
    replace: bool,
    expires_at: Option<u64>,
}

impl ChainRows {
    /// The rows of `write`, a whole record of a collection stored by member; `None` for
    /// another kind or an image that does not decode.
    pub fn from_write(write: &PartialWrite) -> Option<ChainRows> {
        if !write.kind.stored_by_member() {
            return None;
        }
        let rows = rows_of(write.kind, &write.image)?
            .into_iter()
            .map(|(m, v)| (Bytes::copy_from_slice(&m), Bytes::copy_from_slice(&v)))
            .collect();
        let changed = if write.replace {
            Vec::new()
        } else {
            write.changed.clone()
        };
        Some(ChainRows {
            kind: write.kind,
            rows,
            named: changed.iter().cloned().collect(),
            changed,
            replace: write.replace,
            expires_at: write.expires_at,
        })
    }

    /// An empty collection of `kind`, for member records with no whole record before them.
    pub fn empty(kind: Kind) -> ChainRows {
        ChainRows {
            kind,
            rows: HashMap::new(),
            changed: Vec::new(),
            named: HashSet::new(),
            replace: false,
            expires_at: None,
        }
    }

    /// The collection's kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Applies the next delta of the chain; false (nothing applied) for a delta of another kind.
    pub fn apply(&mut self, delta: MemberDelta) -> bool {
        if delta.kind != self.kind {
            return false;
        }
        for (member, row) in delta.rows {
            match row {
                Some(row) => {
                    self.rows.insert(member.clone(), row);
                }
                None => {
                    self.rows.remove(&member);
                }
            }
            if !self.replace && self.named.insert(member.clone()) {
                self.changed.push(member);
            }
        }
        self.expires_at = delta.expires_at;
        true
    }

    /// The write the chain adds up to: the rebuilt image, with every member still to be stored
    /// (or the whole value, when the chain began with a replace). `None` for rows that make
    /// no valid stream.
    pub fn into_write(self) -> Option<PartialWrite> {
        let ChainRows {
            kind,
            rows,
            changed,
            replace,
            expires_at,
            ..
        } = self;
        let image = match kind {
            Kind::Set => set::SetValue::from_members(rows.into_keys()).encode(),
            Kind::ZSet => zset::ZSetValue::from_entries(rows.into_iter().map(|(m, bits)| {
                let bits: [u8; 8] = bits[..].try_into().unwrap_or_default();
                (m, f64::from_bits(u64::from_be_bytes(bits)))
            }))
            .encode(),
            Kind::List => list::ListValue::from_rows(rows).encode(),
            Kind::Stream => stream::from_rows(rows.into_iter().collect()).ok()?,
            Kind::String | Kind::Hash => return None,
        };
        Some(PartialWrite {
            kind,
            image,
            changed,
            replace,
            expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn partial(kind: Kind, image: Bytes, changed: &[Bytes]) -> PartialWrite {
        PartialWrite {
            kind,
            image,
            changed: changed.to_vec(),
            replace: false,
            expires_at: None,
        }
    }

    fn zset(entries: &[(&str, f64)]) -> Bytes {
        zset::ZSetValue::from_entries(entries.iter().map(|(m, s)| (b(m), *s))).encode()
    }

    /// Replays `base` then each write's delta, and checks the rebuilt image equals the last
    /// write's, with every member any of them changed still to be stored.
    fn rebuilds(base: PartialWrite, writes: &[PartialWrite]) {
        let mut chain = ChainRows::from_write(&base).expect("a whole record");
        let mut named: Vec<Bytes> = base.changed.clone();
        let base_replaces = base.replace;
        for w in writes {
            let delta = MemberDelta::of(w).expect("a delta");
            let back =
                MemberDelta::from_bytes(&Bytes::from(delta.to_bytes()), w.kind, w.expires_at)
                    .expect("round trip");
            assert_eq!(back, delta);
            assert_eq!(delta.to_bytes().len(), delta.encoded_len());
            assert!(chain.apply(back));
            named.extend(w.changed.iter().cloned());
        }
        let last = writes.last().unwrap_or(&base);
        let rebuilt = chain.into_write().expect("rebuilds");
        assert_eq!(
            rows_of(rebuilt.kind, &rebuilt.image),
            rows_of(last.kind, &last.image)
        );
        assert_eq!(rebuilt.expires_at, last.expires_at);
        // After a whole replace the image says it all; else every member named is still to
        // be stored.
        assert_eq!(rebuilt.replace, base_replaces);
        let mut want: Vec<Bytes> = if base_replaces { Vec::new() } else { named };
        want.sort();
        want.dedup();
        let mut got = rebuilt.changed.clone();
        got.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn a_sorted_set_chain_rebuilds_its_image() {
        let base = partial(Kind::ZSet, zset(&[("a", 1.0), ("b", 2.0)]), &[b("a")]);
        let w1 = partial(
            Kind::ZSet,
            zset(&[("a", 5.0), ("b", 2.0), ("c", -0.0)]),
            &[b("a"), b("c")],
        );
        let mut w2 = partial(Kind::ZSet, zset(&[("a", 5.0), ("c", -0.0)]), &[b("b")]);
        w2.expires_at = Some(99);
        rebuilds(base, &[w1, w2]);
    }

    #[test]
    fn a_set_chain_rebuilds_its_image_with_many_members_changed_at_once() {
        let members = |r: std::ops::Range<u32>| {
            set::SetValue::from_members(r.map(|i| b(&format!("m{i}")))).encode()
        };
        let base = PartialWrite::whole(Kind::Set, members(0..10), None);
        let changed: Vec<Bytes> = (0..20).map(|i| b(&format!("m{i}"))).collect();
        let w1 = partial(Kind::Set, members(5..20), &changed);
        rebuilds(base, &[w1]);
    }

    #[test]
    fn a_list_chain_rebuilds_pushes_pops_and_sets() {
        let (image, _) = list::with_pushed(&[], &[b("x"), b("y")], false).expect("push");
        let base = PartialWrite::whole(Kind::List, image.clone(), None);
        let (pushed, positions) = list::with_pushed(&image, &[b("z")], true).expect("push");
        let key = |p: i64| Bytes::copy_from_slice(&list::position_key(p));
        let w1 = partial(
            Kind::List,
            pushed.clone(),
            &positions.iter().map(|p| key(*p)).collect::<Vec<_>>(),
        );
        let (popped, gone) = list::with_popped(&pushed, 1, false).expect("pop");
        let w2 = partial(
            Kind::List,
            popped,
            &gone.iter().map(|(p, _)| key(*p)).collect::<Vec<_>>(),
        );
        rebuilds(base, &[w1, w2]);
    }

    #[test]
    fn deltas_of_replaces_and_of_rows_are_refused() {
        let whole = PartialWrite::whole(Kind::ZSet, zset(&[("a", 1.0)]), None);
        assert!(MemberDelta::of(&whole).is_none());
        let row = partial(Kind::Hash, Bytes::new(), &[b("f")]);
        assert!(MemberDelta::of(&row).is_none());
    }

    #[test]
    fn every_cut_or_bad_byte_of_a_delta_is_refused_without_a_panic() {
        let w = partial(
            Kind::ZSet,
            zset(&[("a", 1.0), ("b", 2.0)]),
            &[b("a"), b("gone")],
        );
        let bytes = MemberDelta::of(&w).expect("delta").to_bytes();
        for cut in 0..bytes.len() {
            let short = Bytes::copy_from_slice(&bytes[..cut]);
            assert!(MemberDelta::from_bytes(&short, Kind::ZSet, None).is_err());
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(MemberDelta::from_bytes(&Bytes::from(long), Kind::ZSet, None).is_err());
        let whole = Bytes::from(bytes);
        assert!(MemberDelta::from_bytes(&whole, Kind::Hash, None).is_err());
        // A score must be 8 bytes; a list's member a position key.
        assert!(MemberDelta::from_bytes(&whole, Kind::List, None).is_err());
        let huge_count = Bytes::from_static(&[0xff, 0xff, 0xff, 0x7f]);
        assert!(MemberDelta::from_bytes(&huge_count, Kind::Set, None).is_err());
    }
}
