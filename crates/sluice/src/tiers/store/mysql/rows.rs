//! The SQL of a mapped row (a hash keyspace) on MySQL / MariaDB: the statements of a write and
//! the row image read back in the same transaction.

use bytes::Bytes;
use mysql_async::Value;

use super::sql::{convert, out, quote_mysql_identifier};
use crate::config::OnDelete;
use crate::error::StoreError;
use crate::tiers::store::rows::RowSet;
use crate::tiers::store::MappedRow;

/// The key capture as the statements of a row take it.
pub(super) fn key_param(r: &MappedRow, key: &[u8]) -> Result<Value, StoreError> {
    let first = r.columns.first().ok_or_else(|| {
        StoreError::permanent(format!("keyspace table {} maps no column", r.table))
    })?;
    convert(&r.as_column(first), key, key, true)
}

/// The value of column `i` (`None`: NULL), refused when the column cannot hold it.
pub(super) fn value_param(
    r: &MappedRow,
    i: usize,
    value: Option<&Bytes>,
    key: &[u8],
) -> Result<Value, StoreError> {
    let Some(v) = value else {
        return Ok(Value::NULL);
    };
    let col = &r.columns[i];
    convert(&r.as_column(col), v, key, false).map_err(|mut e| {
        e.message = format!("field {:?}: {}", col.name, e.message);
        e
    })
}

fn key_is(r: &MappedRow) -> String {
    format!("{} = ?", quote_mysql_identifier(&r.key_column))
}

/// The row's mapped columns as reads select them, where its key is the one parameter.
pub(super) fn select(r: &MappedRow) -> String {
    format!(
        "SELECT {} FROM {} WHERE {}",
        r.columns
            .iter()
            .map(|c| out(&c.name, c.kind))
            .collect::<Vec<_>>()
            .join(", "),
        quote_mysql_identifier(&r.table),
        key_is(r)
    )
}

/// A DEL of the row whose key is the one parameter.
pub(super) fn delete(r: &MappedRow, on_delete: OnDelete) -> String {
    let t = quote_mysql_identifier(&r.table);
    match on_delete {
        OnDelete::SetNull => format!(
            "UPDATE {t} SET {} WHERE {}",
            null_all(r.columns.iter().map(|c| c.name.as_str())),
            key_is(r)
        ),
        OnDelete::DeleteRow => format!("DELETE FROM {t} WHERE {}", key_is(r)),
    }
}

/// `a = NULL, b = NULL …`.
pub(super) fn null_all<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|n| format!("{} = NULL", quote_mysql_identifier(n)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `a IS NOT NULL OR b IS NOT NULL …`.
pub(super) fn not_all_null(r: &MappedRow) -> String {
    r.columns
        .iter()
        .map(|c| format!("{} IS NOT NULL", quote_mysql_identifier(&c.name)))
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// The statement that sets `set`'s columns (parameters: the key, then the values in `set`
/// order) and how many parameters it takes; `None` when there is nothing to set.
pub(super) fn set(r: &MappedRow, set: &RowSet) -> Option<(String, usize)> {
    if set.sets.is_empty() {
        return None;
    }
    let t = quote_mysql_identifier(&r.table);
    let k = quote_mysql_identifier(&r.key_column);
    let names: Vec<String> = set
        .sets
        .iter()
        .map(|(i, _)| quote_mysql_identifier(&r.columns[*i].name))
        .collect();
    if set.all_null() {
        // Only NULLs: clear the columns of an existing row, never create one.
        return Some((
            format!(
                "UPDATE {t} SET {} WHERE {}",
                null_all(set.sets.iter().map(|(i, _)| r.columns[*i].name.as_str())),
                key_is(r)
            ),
            1,
        ));
    }
    // ON DUPLICATE KEY UPDATE fires on any unique index: when the row it found has another
    // key, a value collides with that row on some other unique index; fail (a subquery of two
    // rows) instead of silently updating the wrong row.
    Some((
        format!(
            "INSERT INTO {t} ({k}, {}) VALUES ({}) ON DUPLICATE KEY UPDATE {}",
            names.join(", "),
            vec!["?"; names.len() + 1].join(", "),
            names
                .iter()
                .map(|n| format!(
                    "{n} = IF({k} <=> VALUES({k}), VALUES({n}), (SELECT 1 UNION SELECT 2))"
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        names.len() + 1,
    ))
}

/// The image of a row selected by [`select`].
pub(super) fn image(r: &MappedRow, row: &mysql_async::Row) -> Bytes {
    let values = (0..r.columns.len())
        .map(|i| {
            row.get_opt::<Option<Vec<u8>>, _>(i)
                .and_then(Result::ok)
                .flatten()
                .map(Bytes::from)
        })
        .collect();
    crate::tiers::store::rows::image(r, values)
}
