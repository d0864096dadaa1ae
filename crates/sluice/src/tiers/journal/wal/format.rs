//! The bytes on disk: record payloads, their framing, the segment header and file names.
//!
//! A segment is a 24-byte header (magic `SLUICEJ1`, version, starting position, CRC) followed
//! by records framed as `[len u32][crc32c u32][payload]`, all little-endian. A payload is
//! `seq u64, op u8, db u8, keyspace (u16 length + bytes), key (u32 length + bytes),
//! value (u32 length + bytes), expiry (0, or 1 + u64)`.

use bytes::Bytes;

use crate::model::member_delta::MemberDelta;
use crate::model::{Kind, PartialWrite, StoreWrite};
use crate::tiers::journal::{ClearScope, JournalOp, JournalRecord, TxnGroup};

const MAGIC: &[u8; 8] = b"SLUICEJ1";
/// Version 2 added member records (`OP_MEMBERS`): a binary that knows only version 1 refuses a
/// segment that may hold them, rather than reading one as a torn tail. Every start writes a
/// new segment, so a version 1 segment never gets one.
const VERSION: u32 = 2;
/// The oldest segment version this binary reads.
const OLDEST_VERSION: u32 = 1;
/// Length of a segment header.
pub(super) const HEADER_LEN: u64 = 24;
/// Largest record payload accepted on replay: a 512 MiB value plus its key and framing.
const MAX_PAYLOAD: u32 = 600 * 1024 * 1024;
/// Length and CRC before each payload.
const FRAME_HEADER: usize = 8;

/// A string upsert (the format of every upsert before values had types).
const OP_UPSERT: u8 = 0;
const OP_DELETE: u8 = 1;
const OP_CLEAR: u8 = 2;
/// An upsert of a value of another type: a kind byte follows the op byte.
const OP_UPSERT_KIND: u8 = 3;
/// A write to some fields of a mapped row: the value is [`PartialWrite::to_bytes`].
const OP_FIELDS: u8 = 4;
/// A write to some members of a collection of another kind: a kind byte follows the op byte,
/// the value is [`PartialWrite::to_bytes`], the expiry is the key's.
const OP_PARTIAL_KIND: u8 = 5;
/// Some members of a collection, without its image: a kind byte follows the op byte, the value
/// is [`MemberDelta::to_bytes`], the expiry is the key's.
const OP_MEMBERS: u8 = 6;
/// Flag on the op byte: the record belongs to a transaction's group; the group's first
/// sequence number (u64) and length (u32) follow the database byte.
const IN_GROUP: u8 = 0x80;
/// The database byte of a clear of every database.
const ALL_DBS: u8 = u8::MAX;

/// Encodes a record's payload.
pub fn encode_payload(r: &JournalRecord) -> Vec<u8> {
    let mut p = Vec::with_capacity(payload_capacity(r));
    encode_payload_into(r, &mut p);
    p
}

/// An upper bound of the payload's length, so encoding allocates once.
fn payload_capacity(r: &JournalRecord) -> usize {
    let value_len = match &r.op {
        JournalOp::Write(write) => write.value_len() + 16,
        JournalOp::Members(delta) => delta.encoded_len(),
        JournalOp::Clear(_) => 0,
    };
    8 + 3 + 12 + 2 + r.keyspace.len() + 4 + r.key.len() + 4 + value_len + 9
}

/// Appends a record's payload to `p`.
fn encode_payload_into(r: &JournalRecord, p: &mut Vec<u8>) {
    let fields;
    let (op, kind, db, value, expires_at) = match &r.op {
        JournalOp::Write(StoreWrite::Upsert {
            value,
            kind: Kind::String,
            expires_at,
        }) => (OP_UPSERT, None, r.db, &value[..], *expires_at),
        JournalOp::Write(StoreWrite::Upsert {
            value,
            kind,
            expires_at,
        }) => (OP_UPSERT_KIND, Some(*kind), r.db, &value[..], *expires_at),
        JournalOp::Write(StoreWrite::Delete) => (OP_DELETE, None, r.db, &[][..], None),
        JournalOp::Write(StoreWrite::Partial(row)) if row.kind == Kind::Hash => {
            fields = row.to_bytes();
            (OP_FIELDS, None, r.db, &fields[..], None)
        }
        JournalOp::Write(StoreWrite::Partial(row)) => {
            fields = row.to_bytes();
            (
                OP_PARTIAL_KIND,
                Some(row.kind),
                r.db,
                &fields[..],
                row.expires_at,
            )
        }
        JournalOp::Members(delta) => {
            fields = delta.to_bytes();
            (
                OP_MEMBERS,
                Some(delta.kind),
                r.db,
                &fields[..],
                delta.expires_at,
            )
        }
        JournalOp::Clear(ClearScope::Db(db)) => (OP_CLEAR, None, *db, &[][..], None),
        JournalOp::Clear(ClearScope::AllDbs) => (OP_CLEAR, None, ALL_DBS, &[][..], None),
    };
    let ks = r.keyspace.as_bytes();
    p.extend_from_slice(&r.seq.to_le_bytes());
    p.push(if r.group.is_some() { op | IN_GROUP } else { op });
    if let Some(kind) = kind {
        p.push(kind.code());
    }
    p.push(db);
    if let Some(group) = r.group {
        p.extend_from_slice(&group.first_seq.to_le_bytes());
        p.extend_from_slice(&group.len.to_le_bytes());
    }
    p.extend_from_slice(&(ks.len() as u16).to_le_bytes());
    p.extend_from_slice(ks);
    p.extend_from_slice(&(r.key.len() as u32).to_le_bytes());
    p.extend_from_slice(&r.key);
    p.extend_from_slice(&(value.len() as u32).to_le_bytes());
    p.extend_from_slice(value);
    match expires_at {
        Some(e) => {
            p.push(1);
            p.extend_from_slice(&e.to_le_bytes());
        }
        None => p.push(0),
    }
}

/// A record framed as it goes to disk (`[len u32][crc32c u32][payload]`), encoded in place in
/// one allocation.
pub(super) fn encode_framed(r: &JournalRecord) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(FRAME_HEADER + payload_capacity(r));
    bytes.extend_from_slice(&[0; FRAME_HEADER]);
    encode_payload_into(r, &mut bytes);
    let payload = &bytes[FRAME_HEADER..];
    let (len, crc) = (payload.len() as u32, crc32c::crc32c(payload));
    bytes[..4].copy_from_slice(&len.to_le_bytes());
    bytes[4..FRAME_HEADER].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// Decodes a payload; `None` if it is malformed.
pub fn decode_payload(p: &[u8]) -> Option<JournalRecord> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let s = p.get(at..at.checked_add(n)?)?;
        at += n;
        Some(s)
    };
    let seq = u64::from_le_bytes(take(8)?.try_into().ok()?);
    let flagged = take(1)?[0];
    let op = flagged & !IN_GROUP;
    let kind = match op {
        OP_UPSERT_KIND | OP_PARTIAL_KIND | OP_MEMBERS => Kind::from_code(take(1)?[0])?,
        OP_FIELDS => Kind::Hash,
        _ => Kind::String,
    };
    let db = take(1)?[0];
    let group = if flagged & IN_GROUP != 0 {
        let first_seq = u64::from_le_bytes(take(8)?.try_into().ok()?);
        let len = u32::from_le_bytes(take(4)?.try_into().ok()?);
        let last = first_seq.checked_add(u64::from(len).checked_sub(1)?)?;
        if seq < first_seq || seq > last {
            return None;
        }
        Some(TxnGroup { first_seq, len })
    } else {
        None
    };
    let ks_len = u16::from_le_bytes(take(2)?.try_into().ok()?) as usize;
    let keyspace = String::from_utf8(take(ks_len)?.to_vec()).ok()?;
    let key_len = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
    let key = Bytes::copy_from_slice(take(key_len)?);
    let value_len = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
    let value = Bytes::copy_from_slice(take(value_len)?);
    let expires_at = match take(1)?[0] {
        0 => None,
        1 => Some(u64::from_le_bytes(take(8)?.try_into().ok()?)),
        _ => return None,
    };
    if at != p.len() {
        return None;
    }
    let op = match op {
        OP_UPSERT | OP_UPSERT_KIND => JournalOp::Write(StoreWrite::Upsert {
            value,
            kind,
            expires_at,
        }),
        OP_FIELDS | OP_PARTIAL_KIND => JournalOp::Write(StoreWrite::Partial(
            PartialWrite::from_bytes(&value, kind, expires_at).ok()?,
        )),
        OP_MEMBERS => JournalOp::Members(MemberDelta::from_bytes(&value, kind, expires_at).ok()?),
        OP_DELETE => JournalOp::Write(StoreWrite::Delete),
        OP_CLEAR if db == ALL_DBS => {
            return Some(JournalRecord::clear(seq, keyspace, ClearScope::AllDbs))
        }
        OP_CLEAR => return Some(JournalRecord::clear(seq, keyspace, ClearScope::Db(db))),
        _ => return None,
    };
    Some(JournalRecord {
        seq,
        keyspace,
        db,
        key,
        op,
        group,
    })
}

/// Parses the framed record at `at` of a segment's bytes, returning it and its framed length;
/// `None` if the length, CRC or payload is bad, or the record runs past the end.
pub(super) fn parse_record(buf: &[u8], at: usize) -> Option<(JournalRecord, usize)> {
    let head = buf.get(at..at.checked_add(FRAME_HEADER)?)?;
    let len = u32::from_le_bytes(head[..4].try_into().ok()?);
    if len > MAX_PAYLOAD {
        return None;
    }
    let crc = u32::from_le_bytes(head[4..8].try_into().ok()?);
    let start = at + FRAME_HEADER;
    let payload = buf.get(start..start + len as usize)?;
    if crc32c::crc32c(payload) != crc {
        return None;
    }
    Some((decode_payload(payload)?, FRAME_HEADER + len as usize))
}

/// The header of a segment whose first record sits at journal-wide offset `start`.
pub(super) fn header(start: u64) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&start.to_le_bytes());
    let crc = crc32c::crc32c(&h[..20]);
    h[20..24].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The starting position a segment header declares; `None` unless magic, version and CRC
/// are right.
pub(super) fn parse_header(h: &[u8]) -> Option<u64> {
    if h.len() < HEADER_LEN as usize || &h[..8] != MAGIC {
        return None;
    }
    let version = u32::from_le_bytes(h[8..12].try_into().ok()?);
    if !(OLDEST_VERSION..=VERSION).contains(&version) {
        return None;
    }
    if crc32c::crc32c(&h[..20]) != u32::from_le_bytes(h[20..24].try_into().ok()?) {
        return None;
    }
    Some(u64::from_le_bytes(h[12..20].try_into().ok()?))
}

/// The file name of the segment starting at `start`; zero-padded so names sort by position.
pub(super) fn segment_name(start: u64) -> String {
    format!("seg-{start:020}.wal")
}

/// The starting position in a segment file name; `None` for any other file.
pub(super) fn parse_segment_name(name: &str) -> Option<u64> {
    name.strip_prefix("seg-")?
        .strip_suffix(".wal")?
        .parse::<u64>()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64, key: &str, value: Option<&str>) -> JournalRecord {
        JournalRecord {
            seq,
            keyspace: "default".into(),
            db: 0,
            key: Bytes::copy_from_slice(key.as_bytes()),
            op: JournalOp::Write(match value {
                Some(v) => StoreWrite::string(
                    Bytes::copy_from_slice(v.as_bytes()),
                    Some(seq.saturating_mul(10)),
                ),
                None => StoreWrite::Delete,
            }),
            group: None,
        }
    }

    #[test]
    fn payload_round_trips() {
        for r in [
            rec(1, "a", Some("x")),
            rec(2, "", None),
            rec(u64::MAX, "k", Some("")),
        ] {
            assert_eq!(decode_payload(&encode_payload(&r)), Some(r));
        }
        for scope in [ClearScope::AllDbs, ClearScope::Db(0), ClearScope::Db(15)] {
            let clear = JournalRecord::clear(9, "ks", scope);
            assert_eq!(decode_payload(&encode_payload(&clear)), Some(clear));
        }
    }

    /// Every kind of write, in and out of a transaction's group, decodes to what was encoded.
    #[test]
    fn typed_writes_and_group_members_round_trip() {
        let mut hash = crate::model::hash::HashValue::new();
        hash.set(Bytes::from("f"), Bytes::from("v"));
        let row = crate::model::PartialWrite {
            kind: Kind::Hash,
            image: hash.encode(),
            changed: vec![Bytes::from("f"), Bytes::from("gone")],
            replace: true,
            expires_at: None,
        };
        let set = crate::model::set::SetValue::from_members([Bytes::from("m"), Bytes::from("7")]);
        let members = crate::model::PartialWrite {
            kind: Kind::Set,
            image: set.encode(),
            changed: vec![Bytes::from("m"), Bytes::from("gone")],
            replace: false,
            expires_at: Some(77),
        };
        let writes = [
            StoreWrite::Upsert {
                value: hash.encode(),
                kind: Kind::Hash,
                expires_at: Some(5),
            },
            StoreWrite::Partial(row),
            StoreWrite::Partial(members),
            StoreWrite::string(Bytes::from("s"), None),
        ];
        for (i, write) in writes.into_iter().enumerate() {
            let mut r = rec(10 + i as u64, "k", None);
            r.op = JournalOp::Write(write);
            assert_eq!(decode_payload(&encode_payload(&r)), Some(r.clone()));
            r.group = Some(TxnGroup {
                first_seq: 10,
                len: 4,
            });
            assert_eq!(decode_payload(&encode_payload(&r)), Some(r));
        }
        // A record outside the group it names is refused.
        let mut r = rec(20, "k", Some("v"));
        r.group = Some(TxnGroup {
            first_seq: 10,
            len: 3,
        });
        assert_eq!(decode_payload(&encode_payload(&r)), None);
    }

    /// Journals written before `ClearScope` existed stored FLUSHALL as a clear of database
    /// 255; those bytes still mean every database.
    /// A record of some members of a collection, with and without an expiry.
    #[test]
    fn member_deltas_round_trip() {
        let image = crate::model::zset::ZSetValue::from_entries([(Bytes::from("a"), 1.5)]).encode();
        for expires_at in [None, Some(42)] {
            let write = crate::model::PartialWrite {
                kind: Kind::ZSet,
                image: image.clone(),
                changed: vec![Bytes::from("a"), Bytes::from("gone")],
                replace: false,
                expires_at,
            };
            let mut r = rec(3, "k", None);
            r.op = JournalOp::Members(MemberDelta::of(&write).expect("a delta"));
            assert_eq!(decode_payload(&encode_payload(&r)), Some(r));
        }
    }

    #[test]
    fn a_clear_of_db_255_on_disk_is_every_database() {
        let mut p = Vec::new();
        p.extend_from_slice(&9u64.to_le_bytes());
        p.extend_from_slice(&[OP_CLEAR, 255]);
        p.extend_from_slice(&2u16.to_le_bytes());
        p.extend_from_slice(b"ks");
        p.extend_from_slice(&0u32.to_le_bytes());
        p.extend_from_slice(&0u32.to_le_bytes());
        p.push(0);
        let r = decode_payload(&p).expect("an old FLUSHALL record decodes");
        assert_eq!(r.op, JournalOp::Clear(ClearScope::AllDbs));
        assert_eq!(encode_payload(&r), p, "and encodes to the same bytes");
    }

    #[test]
    fn decode_refuses_garbage_without_panicking() {
        let good = encode_payload(&rec(7, "key", Some("value")));
        for cut in 0..good.len() {
            assert_eq!(decode_payload(&good[..cut]), None);
        }
        let mut long = good.clone();
        long.push(0);
        assert_eq!(decode_payload(&long), None);
    }
}
