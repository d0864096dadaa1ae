//! A set, sorted set or list mapped onto an existing table, every backend alike: the
//! collection at `leaderboard:{game}` is the rows whose owner column holds the capture, one row
//! per member (`(owner, member)` unique together), with a sorted set's score in its own column.
//! A list is an event table: a row per element, `(owner, position)` unique together, the
//! element in its own column and the list ordered by position. A write stores only the members
//! it changed, as on the built-in table ([`super::members`]): an upsert per present member, a
//! delete per removed one, and every row of the owner deleted first when the value was replaced
//! whole (DEL deletes them all).
//!
//! The cache must hold what the table holds, byte for byte, so a member or score the column
//! would store as another text is refused before the write is acknowledged, never rounded
//! behind the client's back: an integer member must be in canonical form (`7`, not `007`), a
//! score for an integer column integral and within ±2^53, a score for a double column finite.
//!
//! A list's element keeps its position while it stays in the list ([`crate::model::list`]):
//! pushes step [`POSITION_STEP`] past an end. A table's position column holds the position
//! divided by that step, so an RPUSH onto rows 1..=3 inserts row 4 and an LPUSH row 0: the
//! sequence numbers an event table expects. An LINSERT between two neighbours one apart has no
//! whole sequence number to take, and is refused before anything is written.

use std::borrow::Cow;

use bytes::Bytes;

use crate::error::StoreError;
use crate::model::list::{self, ListValue, POSITION_STEP};
use crate::model::set::SetValue;
use crate::model::zset::ZSetValue;
use crate::model::Kind;
use crate::model::{PartialWrite, StoreWrite};
use crate::tiers::store::members::{plan_members, MemberChanges, MemberRow};
use crate::tiers::store::{
    conversion_error, ColumnInfo, ColumnType, MappedMembers, MappedTable, StoredValue,
};

/// What one write does to the owner's rows.
#[derive(Debug)]
pub(crate) enum MembersAction {
    /// Delete every row of the owner (DEL, or a value emptied whole).
    DeleteAll,
    /// Replace, remove and upsert rows as planned. A list's members are its elements'
    /// sequence numbers as decimal text ([`sequence_text`]).
    Changes(MemberChanges),
}

/// The statements `write` stands for on a mapped member table; a permanent error for a write
/// of another type (which the engine refuses earlier with WRONGTYPE), or for a list element at
/// a position the position column cannot hold.
pub(crate) fn plan_mapped_members(
    mm: &MappedMembers,
    key: &[u8],
    write: &StoreWrite,
) -> Result<MembersAction, StoreError> {
    let kind = mm.kind();
    let mut planned = match write {
        StoreWrite::Delete => return Ok(MembersAction::DeleteAll),
        StoreWrite::Partial(p) if p.kind == kind => plan_members(key, p)?,
        StoreWrite::Upsert { value, kind: k, .. } if *k == kind => {
            plan_members(key, &PartialWrite::whole(kind, value.clone(), None))?
        }
        StoreWrite::Partial(PartialWrite { kind: other, .. })
        | StoreWrite::Upsert { kind: other, .. } => {
            return Err(StoreError::permanent(format!(
                "key {:?}: table {} maps a {} per key ({}), which cannot hold a {}",
                shown(key),
                mm.table,
                kind.type_name(),
                describe(mm),
                other.type_name()
            )))
        }
    };
    if planned.replace && planned.present.is_empty() {
        return Ok(MembersAction::DeleteAll);
    }
    if kind == Kind::List {
        for row in &mut planned.present {
            row.member = sequence_text(mm, key, &row.member)?;
        }
        for member in &mut planned.removed {
            *member = sequence_text(mm, key, member)?;
        }
    }
    Ok(MembersAction::Changes(planned))
}

/// The row a list element at `position_key` ([`list::position_key`]) is kept in: its sequence
/// number, the position divided by [`POSITION_STEP`], as decimal text. Refused for a position
/// between two sequence numbers (an LINSERT between neighbours one apart).
pub(crate) fn sequence_text(
    mm: &MappedMembers,
    key: &[u8],
    position_key: &[u8],
) -> Result<Bytes, StoreError> {
    let position = list::position_of(position_key).ok_or_else(|| {
        StoreError::permanent(format!(
            "key {:?}: a list element's position is malformed ({} bytes)",
            shown(key),
            position_key.len()
        ))
    })?;
    if position % POSITION_STEP != 0 {
        return Err(StoreError::permanent(format!(
            "key {:?}: the list is kept in {}, a row per element numbered by {}; LINSERT numbers the new row midway between its neighbours' rows, and rows numbered an odd distance apart (next to each other, say) have no number midway. Push at either end (LPUSH, RPUSH) instead (a list RENAMEd or COPYed here after an LINSERT elsewhere has such an element too)",
            shown(key),
            describe(mm),
            mm.member.name
        )));
    }
    Ok(Bytes::from(
        itoa::Buffer::new()
            .format(position / POSITION_STEP)
            .to_owned(),
    ))
}

/// `table(owner, member[, score or element])`, for errors and INFO.
pub(crate) fn describe(mm: &MappedMembers) -> String {
    match &mm.value {
        Some(s) => format!(
            "{}({}, {}, {})",
            mm.table, mm.key_column, mm.member.name, s.name
        ),
        None => format!("{}({}, {})", mm.table, mm.key_column, mm.member.name),
    }
}

fn shown(key: &[u8]) -> String {
    String::from_utf8_lossy(&key[..key.len().min(64)]).into_owned()
}

/// Refuses a member its column would store as another text (an integer column reads `007`
/// back as `7`), so the cached set never differs from the table.
pub(crate) fn check_member(
    mm: &MappedMembers,
    key: &[u8],
    member: &[u8],
) -> Result<(), StoreError> {
    if mm.member.kind != ColumnType::Integer {
        return Ok(());
    }
    let canonical = crate::numeric::parse_strict_i64(member)
        .is_some_and(|i| itoa::Buffer::new().format(i).as_bytes() == member);
    if canonical {
        return Ok(());
    }
    let column = mm.as_column(&mm.member);
    Err(conversion_error(
        "member",
        member,
        key,
        &column,
        &mm.member.name,
        mm.member.kind,
    ))
}

/// The text a score is sent as for the score column, refused when the column cannot hold it
/// exactly: an integer column takes integral scores within ±2^53 (where every integer is a
/// double), a double column finite ones (Rust's shortest round-trip form, which every backend
/// parses back to the same double).
pub(crate) fn score_text(
    mm: &MappedMembers,
    score_column: &ColumnInfo,
    key: &[u8],
    score: f64,
) -> Result<String, StoreError> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    let text = match score_column.kind {
        ColumnType::Integer if score.fract() == 0.0 && score.abs() <= EXACT => {
            Some(itoa::Buffer::new().format(score as i64).to_string())
        }
        ColumnType::Real if score.is_finite() => Some(format!("{score:?}")),
        _ => None,
    };
    text.ok_or_else(|| {
        let column: MappedTable = mm.as_column(score_column);
        let shown = score.to_string();
        conversion_error(
            "score",
            shown.as_bytes(),
            key,
            &column,
            &score_column.name,
            score_column.kind,
        )
    })
}

/// What a planned row sends for the column beside its member ([`MappedMembers::value`]): a
/// sorted set's score as [`score_text`], a list's element as it is; `None` for a set.
pub(crate) fn value_text<'r>(
    mm: &MappedMembers,
    key: &[u8],
    row: &'r MemberRow,
) -> Result<Option<Cow<'r, [u8]>>, StoreError> {
    let Some(column) = &mm.value else {
        return Ok(None);
    };
    match mm.kind() {
        Kind::ZSet => {
            let text = score_text(mm, column, key, row.score.unwrap_or_default())?;
            Ok(Some(Cow::Owned(text.into_bytes())))
        }
        _ => Ok(Some(Cow::Borrowed(
            row.value.as_deref().unwrap_or_default(),
        ))),
    }
}

/// Up to this many changed members are looked up one by one in the image; more, and the image
/// is decoded once.
const FEW: usize = 8;

/// Checks a write before it is acknowledged: the owner (`convert(.., is_key = true)`), then
/// every member it stores and its score or element against their columns (`convert` with the
/// column seen as a [`MappedTable`] value column), so that the store never refuses it later.
pub(crate) fn check_mapped_members(
    mm: &MappedMembers,
    key: &[u8],
    write: Option<&StoreWrite>,
    mut convert: impl FnMut(&MappedTable, &[u8], bool) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let member_column = mm.as_column(&mm.member);
    convert(&member_column, key, true)?;
    let Some(write) = write else {
        return Ok(());
    };
    let value_column = mm.value.as_ref().map(|s| mm.as_column(s));
    // A member the write keeps (with its score or element), or one it removes (`None`): a
    // member that cannot be in the column is in no row, but the delete would fail on the
    // conversion, so it is refused too.
    let mut check = |member: &[u8], kept: Option<Option<&[u8]>>| -> Result<(), StoreError> {
        if kept.is_some() {
            check_member(mm, key, member)?;
        }
        convert(&member_column, member, false)?;
        if let (Some(as_mapped), Some(Some(value))) = (&value_column, kept) {
            convert(as_mapped, value, false)?;
        }
        Ok(())
    };
    // A client's write of a few members (ZINCRBY, SADD, RPUSH): each looked up in the image by
    // a scan of its bytes, without building the collection, which for a large leaderboard or
    // log costs far more than the write itself.
    if let StoreWrite::Partial(p) = write {
        if !p.replace && p.kind == mm.kind() && p.changed.len() <= FEW {
            for member in &p.changed {
                match (mm.kind(), &mm.value) {
                    (Kind::ZSet, Some(column)) => match crate::model::zset::score(&p.image, member)
                    {
                        Some(score) => {
                            let text = score_text(mm, column, key, score)?;
                            check(member, Some(Some(text.as_bytes())))?;
                        }
                        None => check(member, None)?,
                    },
                    (Kind::List, _) => {
                        let sequence = sequence_text(mm, key, member)?;
                        let element = list::position_of(member)
                            .and_then(|position| list::element_at(&p.image, position));
                        check(&sequence, element.map(Some))?;
                    }
                    _ => {
                        let kept = crate::model::set::contains(&p.image, member).then_some(None);
                        check(member, kept)?;
                    }
                }
            }
            return Ok(());
        }
    }
    let MembersAction::Changes(plan) = plan_mapped_members(mm, key, write)? else {
        return Ok(());
    };
    for row in &plan.present {
        let value = value_text(mm, key, row)?;
        check(&row.member, Some(value.as_deref()))?;
    }
    for member in &plan.removed {
        check(member, None)?;
    }
    Ok(())
}

/// Of the members the owner's rows hold now (`existing`, as the backend selected them), those a
/// replace must delete: every one not in the new value. Rows the new value keeps are upserted,
/// never deleted and inserted again, so their other columns, child rows and triggers see an
/// update.
pub(crate) fn stale_members(existing: Vec<Bytes>, plan: &MemberChanges) -> Vec<Bytes> {
    let keep: std::collections::HashSet<&[u8]> =
        plan.present.iter().map(|r| &r.member[..]).collect();
    existing
        .into_iter()
        .filter(|m| !keep.contains(&m[..]))
        .collect()
}

/// The collection the owner's rows make (`(member, score text or element)` as the backend
/// selected them; `None` beside a set's member); `None` when it has no rows.
pub(crate) fn image_from_rows(
    mm: &MappedMembers,
    key: &[u8],
    rows: Vec<(Bytes, Option<Bytes>)>,
) -> Result<Option<StoredValue>, StoreError> {
    if rows.is_empty() {
        return Ok(None);
    }
    let value = match (&mm.value, mm.kind()) {
        (None, _) => SetValue::from_members(rows.into_iter().map(|(m, _)| m)).encode(),
        (Some(column), Kind::List) => list_from_rows(mm, column, key, rows)?.encode(),
        (Some(column), _) => {
            let mut entries = Vec::with_capacity(rows.len());
            for (member, score) in rows {
                // Only a score Sluice could write back unchanged: a value that is later
                // stored whole (a replace) rewrites every row from these scores.
                const EXACT: i64 = 1 << 53;
                let text = score
                    .as_deref()
                    .and_then(|s| std::str::from_utf8(s).ok())
                    .map(str::trim);
                let parsed = match column.kind {
                    ColumnType::Integer => text
                        .and_then(|s| s.parse::<i64>().ok())
                        .filter(|i| (-EXACT..=EXACT).contains(i))
                        .map(|i| i as f64),
                    _ => text
                        .and_then(|s| s.parse::<f64>().ok())
                        .filter(|s| s.is_finite()),
                };
                let Some(score) = parsed else {
                    return Err(StoreError::permanent(format!(
                        "key {:?}: member {:?} has no score Sluice can hold exactly in {}.{} ({:?}); set it to a finite number (an integer column: within ±2^53)",
                        shown(key),
                        String::from_utf8_lossy(&member[..member.len().min(64)]),
                        mm.table,
                        column.name,
                        score.as_deref().map(String::from_utf8_lossy)
                    )));
                };
                entries.push((member, score));
            }
            ZSetValue::from_entries(entries).encode()
        }
    };
    Ok(Some(StoredValue {
        value,
        kind: mm.kind(),
        expires_at: None,
    }))
}

/// A list from `(sequence number, element)` rows in any order: each element at its sequence
/// number times [`POSITION_STEP`]. A row with no element, or a sequence number past ±2^38
/// (where positions run out), is refused: the list could not be written back as it reads.
fn list_from_rows(
    mm: &MappedMembers,
    column: &ColumnInfo,
    key: &[u8],
    rows: Vec<(Bytes, Option<Bytes>)>,
) -> Result<ListValue, StoreError> {
    const LIMIT: i64 = 1 << 38;
    let mut items = Vec::with_capacity(rows.len());
    for (sequence, element) in rows {
        let number = std::str::from_utf8(&sequence)
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .filter(|n| (-LIMIT..=LIMIT).contains(n));
        let (Some(number), Some(element)) = (number, element) else {
            return Err(StoreError::permanent(format!(
                "key {:?}: row {} = {:?} of {} cannot be a list element; its {} must be an integer within ±2^38 and its {} not NULL",
                shown(key),
                mm.member.name,
                String::from_utf8_lossy(&sequence[..sequence.len().min(64)]),
                describe(mm),
                mm.member.name,
                column.name
            )));
        };
        items.push((
            Bytes::copy_from_slice(&list::position_key(number * POSITION_STEP)),
            element,
        ));
    }
    Ok(ListValue::from_rows(items))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaderboard(score: ColumnType, member: ColumnType) -> MappedMembers {
        MappedMembers {
            table: "scores".into(),
            key_column: "game_id".into(),
            key_type: ColumnType::Integer,
            member: ColumnInfo {
                name: "player_id".into(),
                declared_type: "bigint".into(),
                kind: member,
            },
            kind: Kind::ZSet,
            value: Some(ColumnInfo {
                name: "score".into(),
                declared_type: "double precision".into(),
                kind: score,
            }),
        }
    }

    #[test]
    fn scores_are_sent_exactly_or_refused() {
        let mm = leaderboard(ColumnType::Integer, ColumnType::Integer);
        let col = mm.value.clone().unwrap();
        assert_eq!(score_text(&mm, &col, b"k", 42.0).unwrap(), "42");
        assert_eq!(score_text(&mm, &col, b"k", -3.0).unwrap(), "-3");
        assert!(score_text(&mm, &col, b"k", 1.5).is_err());
        assert!(score_text(&mm, &col, b"k", f64::INFINITY).is_err());
        assert!(score_text(&mm, &col, b"k", 1e300).is_err());
        let mm = leaderboard(ColumnType::Real, ColumnType::Text);
        let col = mm.value.clone().unwrap();
        for s in [0.1, 1.0 / 3.0, 1e300, -2.5e-300, 42.0] {
            let text = score_text(&mm, &col, b"k", s).unwrap();
            assert_eq!(text.parse::<f64>().unwrap(), s);
        }
        assert!(score_text(&mm, &col, b"k", f64::NEG_INFINITY).is_err());
    }

    #[test]
    fn integer_members_must_be_canonical() {
        let mm = leaderboard(ColumnType::Real, ColumnType::Integer);
        assert!(check_member(&mm, b"k", b"7").is_ok());
        assert!(check_member(&mm, b"k", b"-12").is_ok());
        for bad in [&b"007"[..], b"+7", b" 7", b"7.0", b"abc", b""] {
            assert!(check_member(&mm, b"k", bad).is_err(), "{bad:?}");
        }
        let mm = leaderboard(ColumnType::Real, ColumnType::Text);
        assert!(check_member(&mm, b"k", b"007").is_ok());
    }

    #[test]
    fn a_write_of_few_members_is_checked_as_the_whole_plan_checks_it() {
        let mm = leaderboard(ColumnType::Integer, ColumnType::Integer);
        let image = ZSetValue::from_entries([
            (Bytes::from_static(b"1"), 1.0),
            (Bytes::from_static(b"2"), 2.5),
            (Bytes::from_static(b"3"), 3.0),
        ])
        .encode();
        let convert = |m: &MappedTable, bytes: &[u8], is_key: bool| {
            if is_key || m.value_type != ColumnType::Integer {
                return Ok(());
            }
            crate::numeric::parse_strict_i64(bytes)
                .map(drop)
                .ok_or_else(|| StoreError::permanent("not an integer"))
        };
        let write = |changed: &[&'static [u8]], replace: bool| {
            StoreWrite::Partial(PartialWrite {
                kind: Kind::ZSet,
                image: image.clone(),
                changed: changed.iter().map(|m| Bytes::from_static(m)).collect(),
                replace,
                expires_at: None,
            })
        };
        let verdict = |changed: &[&'static [u8]]| {
            check_mapped_members(&mm, b"7", Some(&write(changed, false)), convert).is_ok()
        };
        // Few members: looked up one by one; many: the plan over the decoded image.
        assert!(verdict(&[b"1"]));
        assert!(verdict(&[b"3", b"1"]));
        assert!(!verdict(&[b"2"]), "2.5 into an integer score column");
        assert!(!verdict(&[b"x"]), "a removed member the column cannot hold");
        assert!(verdict(&[b"9"]), "a removed integer member");
        let many: Vec<&'static [u8]> = vec![b"1"; FEW + 1];
        assert!(verdict(&many));
        let mut many_bad = many.clone();
        many_bad.push(b"2");
        assert!(!verdict(&many_bad));
        assert!(check_mapped_members(&mm, b"7", Some(&write(&[], true)), convert).is_err());
    }

    #[test]
    fn rows_make_the_collection() {
        let mm = leaderboard(ColumnType::Real, ColumnType::Text);
        assert!(image_from_rows(&mm, b"k", Vec::new()).unwrap().is_none());
        let got = image_from_rows(
            &mm,
            b"k",
            vec![
                (Bytes::from_static(b"b"), Some(Bytes::from_static(b"2"))),
                (Bytes::from_static(b"a"), Some(Bytes::from_static(b"10.50"))),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(got.kind, Kind::ZSet);
        let z = ZSetValue::decode(&got.value).unwrap();
        assert_eq!(z.score(b"a"), Some(10.5));
        assert_eq!(z.score(b"b"), Some(2.0));
        let bad = image_from_rows(&mm, b"k", vec![(Bytes::from_static(b"a"), None)]);
        assert!(bad.is_err());
    }

    fn event_log() -> MappedMembers {
        MappedMembers {
            table: "events".into(),
            key_column: "user_id".into(),
            key_type: ColumnType::Text,
            kind: Kind::List,
            member: ColumnInfo {
                name: "seq".into(),
                declared_type: "bigint".into(),
                kind: ColumnType::Integer,
            },
            value: Some(ColumnInfo {
                name: "payload".into(),
                declared_type: "text".into(),
                kind: ColumnType::Text,
            }),
        }
    }

    fn rows(items: &[(&'static str, Option<&'static str>)]) -> Vec<(Bytes, Option<Bytes>)> {
        items
            .iter()
            .map(|(s, e)| (Bytes::from_static(s.as_bytes()), e.map(Bytes::from)))
            .collect()
    }

    #[test]
    fn a_list_is_its_rows_in_sequence_order_and_pushes_number_on() {
        let mm = event_log();
        let read = image_from_rows(&mm, b"u1", rows(&[("7", Some("b")), ("3", Some("a"))]))
            .unwrap()
            .unwrap();
        assert_eq!(read.kind, Kind::List);
        let mut log = ListValue::decode(&read.value).unwrap();
        assert_eq!(list::view(&read.value), vec![&b"a"[..], &b"b"[..]]);
        log.push([Bytes::from_static(b"c")], false);
        log.push([Bytes::from_static(b"z")], true);
        let (changed, _) = log.changes();
        let write = StoreWrite::Partial(PartialWrite {
            kind: Kind::List,
            image: log.encode(),
            changed,
            replace: false,
            expires_at: None,
        });
        let MembersAction::Changes(plan) = plan_mapped_members(&mm, b"u1", &write).unwrap() else {
            panic!("changes");
        };
        let mut numbered: Vec<(String, String)> = plan
            .present
            .iter()
            .map(|r| {
                let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
                (text(&r.member), text(r.value.as_deref().unwrap()))
            })
            .collect();
        numbered.sort();
        assert_eq!(
            numbered,
            [("2".into(), "z".into()), ("8".into(), "c".into())]
        );
        // A row with no element, or numbered past where positions run out, is refused.
        assert!(image_from_rows(&mm, b"u1", rows(&[("1", None)])).is_err());
        assert!(image_from_rows(&mm, b"u1", rows(&[("274877906945", Some("x"))])).is_err());
        assert!(image_from_rows(&mm, b"u1", rows(&[("-274877906944", Some("x"))])).is_ok());
    }

    #[test]
    fn an_insert_between_neighbouring_rows_is_refused_before_the_write() {
        let mm = event_log();
        let read = image_from_rows(
            &mm,
            b"u1",
            rows(&[("1", Some("a")), ("2", Some("b")), ("4", Some("d"))]),
        )
        .unwrap()
        .unwrap();
        let write_of = |log: &ListValue| {
            let (changed, replace) = log.changes();
            StoreWrite::Partial(PartialWrite {
                kind: Kind::List,
                image: log.encode(),
                changed,
                replace,
                expires_at: None,
            })
        };
        let accept = |_: &MappedTable, _: &[u8], _: bool| Ok(());
        let mut between = ListValue::decode(&read.value).unwrap();
        between.insert(b"b", Bytes::from_static(b"x"), false);
        let refused = check_mapped_members(&mm, b"u1", Some(&write_of(&between)), accept)
            .unwrap_err()
            .message;
        assert!(
            refused.contains("LINSERT") && refused.contains("seq"),
            "{refused}"
        );
        // Rows two apart leave a number midway: seq 3.
        let mut gap = ListValue::decode(&read.value).unwrap();
        gap.insert(b"d", Bytes::from_static(b"c"), false);
        check_mapped_members(&mm, b"u1", Some(&write_of(&gap)), accept).unwrap();
        let MembersAction::Changes(plan) =
            plan_mapped_members(&mm, b"u1", &write_of(&gap)).unwrap()
        else {
            panic!("changes");
        };
        assert_eq!(plan.present.len(), 1);
        assert_eq!(&plan.present[0].member[..], b"3");
    }
}
