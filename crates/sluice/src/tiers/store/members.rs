//! A collection on the built-in table, every backend alike: the key's row in `sluice_kv`
//! (kind and expiry, an empty value) and one row per member in `sluice_members`
//! (`db, key, member`, plus a sorted set's `score`, or a list element's bytes in `value` with
//! its position as the `member`), so a write stores only the members it changed. The database removes a key's member rows itself
//! (a trigger on `sluice_kv`) when the key's row is deleted, or rewritten with a kind that
//! does not keep them: every delete, expiry purge, FLUSHDB and SET over a set stays one
//! statement on `sluice_kv`, and costs nothing extra for keys that hold no members.

use bytes::Bytes;

use crate::error::StoreError;
use crate::model::list::ListValue;
use crate::model::set::SetValue;
use crate::model::zset::{self, ZSetValue};
use crate::model::{Kind, PartialWrite, StoreWrite};
use crate::tiers::store::Target;

/// Whether this store could make `sluice_members` and its triggers. A server that refuses
/// them (no TRIGGER privilege, or MySQL's binary log without `log_bin_trust_function_creators`)
/// still serves strings and hashes; only set writes are refused, with the reason.
#[derive(Debug, Default)]
pub(crate) struct MembersSupport(parking_lot::Mutex<Option<String>>);

impl MembersSupport {
    /// Records why sets cannot be stored.
    pub(crate) fn unavailable(&self, reason: String) {
        tracing::warn!("sets cannot be stored on the built-in table until this is fixed and Sluice restarted: {reason}");
        *self.0.lock() = Some(reason);
    }

    /// Refuses a member write when sets cannot be stored.
    pub(crate) fn check(&self, key: &[u8]) -> Result<(), StoreError> {
        match &*self.0.lock() {
            None => Ok(()),
            Some(reason) => Err(StoreError::permanent(format!(
                "key {:?}: sets cannot be stored, because the table sluice_members or its triggers could not be created at start-up ({reason})",
                String::from_utf8_lossy(&key[..key.len().min(64)])
            ))),
        }
    }
}

/// The kinds numbered from here on keep their members in `sluice_members` (see
/// [`Kind::stored_by_member`]); the triggers compare with it.
pub(crate) const FIRST_MEMBER_KIND: u8 = 2;

/// One row of `sluice_members` as a write sends it or a read gets it back.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MemberRow {
    /// A set's or sorted set's member; a list element's position key
    /// ([`crate::model::list::position_key`]).
    pub member: Bytes,
    /// A sorted set member's score; `None` for the other kinds.
    pub score: Option<f64>,
    /// A list's element; `None` for the other kinds.
    pub value: Option<Bytes>,
}

impl MemberRow {
    fn member(member: Bytes) -> MemberRow {
        MemberRow {
            member,
            score: None,
            value: None,
        }
    }

    fn scored(member: Bytes, score: f64) -> MemberRow {
        MemberRow {
            member,
            score: Some(score),
            value: None,
        }
    }

    fn valued(member: Bytes, value: Bytes) -> MemberRow {
        MemberRow {
            member,
            score: None,
            value: Some(value),
        }
    }

    fn element(position: i64, element: Bytes) -> MemberRow {
        MemberRow {
            member: Bytes::copy_from_slice(&crate::model::list::position_key(position)),
            score: None,
            value: Some(element),
        }
    }
}

/// What a member write does to `sluice_members`: first remove every member of the key
/// (`replace`), then remove `removed`, then upsert `present` (a member that is there already
/// takes the new score and value).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MemberChanges {
    /// Remove the key's members first (the value was replaced whole).
    pub replace: bool,
    /// Rows to insert or update.
    pub present: Vec<MemberRow>,
    /// Members to remove.
    pub removed: Vec<Bytes>,
}

/// The member write `op` stands for, or `None` when it is not one: a partial write of a kind
/// the built-in table keeps by member.
pub(crate) fn member_write<'a>(target: &Target, write: &'a StoreWrite) -> Option<&'a PartialWrite> {
    match (target, write) {
        (Target::Builtin { .. }, StoreWrite::Partial(p)) if p.kind.stored_by_member() => Some(p),
        _ => None,
    }
}

/// Splits a member write into the rows to remove and insert; a permanent error for an image
/// that does not decode (never stored half).
pub(crate) fn plan_members(key: &[u8], p: &PartialWrite) -> Result<MemberChanges, StoreError> {
    let malformed = |e: crate::model::hash::MalformedHash| {
        StoreError::permanent(format!(
            "key {:?}: the {} to store is malformed: {e}",
            String::from_utf8_lossy(&key[..key.len().min(64)]),
            p.kind.type_name()
        ))
    };
    let (present, removed) = match p.kind {
        Kind::Set => {
            let after = SetValue::decode(&p.image).map_err(malformed)?;
            if p.replace {
                (
                    after.iter().map(|m| MemberRow::member(m.clone())).collect(),
                    Vec::new(),
                )
            } else {
                let (present, removed): (Vec<Bytes>, Vec<Bytes>) =
                    p.changed.iter().cloned().partition(|m| after.contains(m));
                (
                    present.into_iter().map(MemberRow::member).collect(),
                    removed,
                )
            }
        }
        Kind::ZSet => {
            let after = ZSetValue::decode(&p.image).map_err(malformed)?;
            if p.replace {
                let all = after
                    .iter()
                    .map(|(m, s)| MemberRow::scored(m.clone(), s))
                    .collect();
                (all, Vec::new())
            } else {
                let mut present = Vec::with_capacity(p.changed.len());
                let mut removed = Vec::new();
                for m in &p.changed {
                    match after.score(m) {
                        Some(s) => present.push(MemberRow::scored(m.clone(), s)),
                        None => removed.push(m.clone()),
                    }
                }
                (present, removed)
            }
        }
        Kind::List => {
            let after = ListValue::decode(&p.image).map_err(malformed)?;
            if p.replace {
                let all = after
                    .entries()
                    .map(|(position, e)| MemberRow::element(position, e.clone()))
                    .collect();
                (all, Vec::new())
            } else {
                let mut present = Vec::with_capacity(p.changed.len());
                let mut removed = Vec::new();
                for key in &p.changed {
                    let found = crate::model::list::position_of(key)
                        .and_then(|position| Some((position, after.at_position(position)?)));
                    match found {
                        Some((position, e)) => {
                            present.push(MemberRow::element(position, e.clone()))
                        }
                        None => removed.push(key.clone()),
                    }
                }
                (present, removed)
            }
        }
        Kind::Stream => {
            // Validates the whole image: a row is never stored from bytes that do not decode.
            crate::model::stream::StreamValue::decode(&p.image).map_err(malformed)?;
            let rows = stream_rows(&p.image);
            if p.replace {
                (
                    rows.map(|(m, v)| MemberRow::valued(m, v)).collect(),
                    Vec::new(),
                )
            } else {
                let wanted: std::collections::HashSet<&Bytes> = p.changed.iter().collect();
                let mut after: std::collections::HashMap<Bytes, Bytes> =
                    rows.filter(|(m, _)| wanted.contains(m)).collect();
                let mut present = Vec::with_capacity(p.changed.len());
                let mut removed = Vec::new();
                for key in &p.changed {
                    match after.remove(key) {
                        Some(value) => present.push(MemberRow::valued(key.clone(), value)),
                        None => removed.push(key.clone()),
                    }
                }
                (present, removed)
            }
        }
        other => {
            return Err(StoreError::permanent(format!(
                "key {:?}: a {} is not stored by member",
                String::from_utf8_lossy(&key[..key.len().min(64)]),
                other.type_name()
            )))
        }
    };
    Ok(MemberChanges {
        replace: p.replace,
        present,
        removed,
    })
}

/// The rows of an encoded stream (metadata first, then each entry), sliced out of it.
fn stream_rows(image: &Bytes) -> impl Iterator<Item = (Bytes, Bytes)> + '_ {
    crate::model::hash::pairs(image)
        .filter_map(Result::ok)
        .map(|(m, v)| (image.slice_ref(m), image.slice_ref(v)))
}

/// The largest member a member write sends (every member of a replaced value, else the
/// changed ones), for a backend's packet limit; 0 for an image that does not decode (refused
/// later, by [`plan_members`]).
pub(crate) fn largest_member(p: &PartialWrite) -> usize {
    if p.replace {
        match p.kind {
            Kind::Set => crate::model::set::members(&p.image)
                .filter_map(Result::ok)
                .map(<[u8]>::len)
                .max()
                .unwrap_or(0),
            Kind::ZSet => zset::entries(&p.image)
                .filter_map(Result::ok)
                .map(|(m, _)| m.len())
                .max()
                .unwrap_or(0),
            Kind::List => crate::model::list::elements(&p.image)
                .filter_map(Result::ok)
                .map(|(_, e)| e.len() + 8)
                .max()
                .unwrap_or(0),
            Kind::Stream => stream_rows(&p.image)
                .map(|(m, v)| m.len() + v.len())
                .max()
                .unwrap_or(0),
            Kind::String | Kind::Hash => 0,
        }
    } else if p.kind == Kind::Stream {
        let wanted: std::collections::HashSet<&Bytes> = p.changed.iter().collect();
        stream_rows(&p.image)
            .filter(|(m, _)| wanted.contains(m))
            .map(|(m, v)| m.len() + v.len())
            .max()
            .unwrap_or(16)
    } else if p.kind == Kind::List {
        // A list's rows carry their elements: the largest changed one still in the list, found
        // in one walk of the image (a push onto a long list must not decode all of it).
        let wanted: std::collections::HashSet<i64> = p
            .changed
            .iter()
            .filter_map(|k| crate::model::list::position_of(k))
            .collect();
        crate::model::list::elements(&p.image)
            .filter_map(Result::ok)
            .filter(|(position, _)| wanted.contains(position))
            .map(|(_, e)| e.len() + 8)
            .max()
            .unwrap_or(8)
    } else {
        p.changed.iter().map(Bytes::len).max().unwrap_or(0)
    }
}

/// A member row's `score` and `value` as MySQL/MariaDB can store them: their `DOUBLE`
/// refuses `inf` and `-inf` (error 1264, out of range), so an infinite score is kept as a NULL
/// `score` with `inf` or `-inf` in the row's `value` column (which no sorted set uses
/// otherwise).
pub(crate) fn mysql_columns(row: &MemberRow) -> (Option<f64>, Option<&[u8]>) {
    match (row.score, &row.value) {
        (_, Some(value)) => (row.score, Some(value)),
        (Some(s), None) if s == f64::INFINITY => (None, Some(b"inf")),
        (Some(s), None) if s == f64::NEG_INFINITY => (None, Some(b"-inf")),
        (score, None) => (score, None),
    }
}

/// A member row of a key of `kind` read back from MySQL/MariaDB (see [`mysql_columns`]):
/// only a sorted set's `inf` / `-inf` in `value` stands for a score; a list's is its element.
pub(crate) fn mysql_row(
    kind: Kind,
    member: Bytes,
    score: Option<f64>,
    value: Option<Vec<u8>>,
) -> MemberRow {
    match (kind, score, value.as_deref()) {
        (Kind::ZSet, None, Some(b"inf")) => MemberRow::scored(member, f64::INFINITY),
        (Kind::ZSet, None, Some(b"-inf")) => MemberRow::scored(member, f64::NEG_INFINITY),
        _ => MemberRow {
            member,
            score,
            value: value.map(Bytes::from),
        },
    }
}

/// The image of a key read back from its member rows. A sorted set's member with no score (a
/// row written by hand) reads as score 0, a list row with no value as an empty element.
pub(crate) fn image_of(kind: Kind, rows: Vec<MemberRow>) -> Bytes {
    match kind {
        Kind::Set => SetValue::from_members(rows.into_iter().map(|r| r.member)).encode(),
        Kind::ZSet => ZSetValue::from_entries(
            rows.into_iter()
                .map(|r| (r.member, r.score.filter(|s| !s.is_nan()).unwrap_or(0.0))),
        )
        .encode(),
        Kind::List => ListValue::from_rows(
            rows.into_iter()
                .map(|r| (r.member, r.value.unwrap_or_default())),
        )
        .encode(),
        // Rows no write stores (written by hand) read as an empty image: every stream command
        // on the key then answers that the stored value is malformed, rather than a wrong one.
        Kind::Stream => crate::model::stream::from_rows(
            rows.into_iter()
                .map(|r| (r.member, r.value.unwrap_or_default()))
                .collect(),
        )
        .unwrap_or_default(),
        Kind::String | Kind::Hash => Bytes::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn a_partial_write_inserts_what_the_image_holds_and_removes_the_rest() {
        let image = SetValue::from_members([b("a"), b("c")]).encode();
        let write = PartialWrite {
            kind: Kind::Set,
            image: image.clone(),
            changed: vec![b("a"), b("b")],
            replace: false,
            expires_at: None,
        };
        let plan = plan_members(b"k", &write).unwrap();
        assert_eq!(plan.present, vec![MemberRow::member(b("a"))]);
        assert_eq!(plan.removed, vec![b("b")]);
        let whole = plan_members(b"k", &PartialWrite::whole(Kind::Set, image, None)).unwrap();
        assert!(whole.replace);
        assert_eq!(whole.present.len(), 2);
        assert!(plan_members(
            b"k",
            &PartialWrite {
                image: Bytes::from_static(&[9, 1]),
                ..write
            }
        )
        .is_err());
    }

    #[test]
    fn a_list_write_stores_the_elements_at_the_positions_it_touched() {
        let before = ListValue::from_elements([b("a"), b("b"), b("c")]);
        let mut after = ListValue::decode(&before.encode()).unwrap();
        assert_eq!(after.pop(true), Some(b("a")));
        after.set(0, b("B"));
        let (changed, replace) = after.changes();
        assert!(!replace);
        let write = PartialWrite {
            kind: Kind::List,
            image: after.encode(),
            changed,
            replace: false,
            expires_at: None,
        };
        let plan = plan_members(b"k", &write).unwrap();
        assert_eq!(plan.removed.len(), 1);
        assert_eq!(plan.present.len(), 1);
        assert_eq!(plan.present[0].value, Some(b("B")));
        // Read back from rows in any order, the list is what was written.
        let mut rows = plan.present.clone();
        let (tail, _) = after.entries().last().unwrap();
        rows.push(MemberRow::element(tail, b("c")));
        rows.reverse();
        let image = image_of(Kind::List, rows);
        assert_eq!(crate::model::list::view(&image), vec![&b"B"[..], b"c"]);
        // The largest row the write sends: the set element (the popped one sends none).
        assert_eq!(largest_member(&write), 1 + 8);
        let mut pushed = ListValue::decode(&after.encode()).unwrap();
        pushed.push([b("a much longer element")], false);
        let (changed, _) = pushed.changes();
        let push = PartialWrite {
            image: pushed.encode(),
            changed,
            ..write
        };
        assert_eq!(largest_member(&push), 21 + 8);
    }
}
