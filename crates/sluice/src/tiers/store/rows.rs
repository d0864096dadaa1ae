//! Mapped rows (hash keyspaces), shared by every backend: what a write does to a row's
//! columns, validating fields against the configured columns, and the row image a read
//! returns. The backends only turn a [`RowAction`] into their own SQL.

use bytes::Bytes;

use super::{MappedRow, MappedTable};
use crate::config::OnDelete;
use crate::error::StoreError;
use crate::model::{hash, Kind, StoreWrite};

/// What one write does to one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RowAction {
    /// A DEL: set every mapped column NULL, or delete the row, as `on_delete` says.
    Delete,
    /// Set some columns (and, under `delete-row`, delete the row first).
    Set(RowSet),
}

/// Columns to set on one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RowSet {
    /// Index into [`MappedRow::columns`] and the new value; `None` sets NULL. Each column at
    /// most once, in configured order.
    pub sets: Vec<(usize, Option<Bytes>)>,
    /// The write replaces the row and the keyspace deletes rows: delete it first, so columns
    /// the keyspace does not map start from their defaults, as after a DEL and a new write.
    pub delete_first: bool,
}

impl RowSet {
    /// True when every column set is NULL: such a write never creates a row (it would be a
    /// row for a key that does not exist), it only clears columns of an existing one.
    pub(crate) fn all_null(&self) -> bool {
        self.sets.iter().all(|(_, v)| v.is_none())
    }
}

/// The permanent error for a write of another type than a hash to a row keyspace.
fn not_a_hash(row: &MappedRow, key: &[u8]) -> StoreError {
    StoreError::permanent(format!(
        "key {:?}: keyspace table {} maps hashes (a row, a field per column); a string cannot be stored there",
        lossy(key),
        row.table
    ))
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(64)]).into_owned()
}

/// The permanent error for a field that is not a configured column.
pub(crate) fn unknown_field(row: &MappedRow, key: &[u8], field: &[u8]) -> StoreError {
    StoreError::permanent(format!(
        "field {:?} of key {:?} is not a column of {}; the fields are its mapped columns: {}",
        lossy(field),
        lossy(key),
        row.table,
        row.columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

fn malformed(row: &MappedRow, key: &[u8], e: hash::MalformedHash) -> StoreError {
    StoreError::permanent(format!("key {:?} of {}: {e}", lossy(key), row.table)).with_source(e)
}

/// What `write` does to the row of `key`; an error (permanent) for a write a row cannot take:
/// a string, a field that is not a configured column, malformed hash bytes. Values are not
/// converted here: [`check_row`] does that with the backend's converter.
pub(crate) fn plan_row_write(
    row: &MappedRow,
    key: &[u8],
    write: &StoreWrite,
) -> Result<RowAction, StoreError> {
    let (image, changed, replace): (&Bytes, &[Bytes], bool) = match write {
        StoreWrite::Delete => return Ok(RowAction::Delete),
        StoreWrite::Upsert {
            kind: Kind::String | Kind::Set | Kind::ZSet | Kind::List | Kind::Stream,
            ..
        } => return Err(not_a_hash(row, key)),
        StoreWrite::Partial(f) if f.kind != Kind::Hash => return Err(not_a_hash(row, key)),
        // A whole hash replaces the row, as a DEL followed by setting every field would.
        StoreWrite::Upsert {
            kind: Kind::Hash,
            value,
            ..
        } => (value, &[], true),
        StoreWrite::Partial(f) => (&f.image, &f.changed, f.replace),
    };
    let mut values: Vec<Option<Bytes>> = vec![None; row.columns.len()];
    let mut touched = vec![replace; row.columns.len()];
    // Every field of the image must be a column: the image is the hash after the write.
    for pair in hash::pairs(image) {
        let (field, value) = pair.map_err(|e| malformed(row, key, e))?;
        let i = column_index(row, field).ok_or_else(|| unknown_field(row, key, field))?;
        values[i] = Some(image.slice_ref(value));
    }
    for field in changed {
        let i = column_index(row, field).ok_or_else(|| unknown_field(row, key, field))?;
        touched[i] = true;
    }
    Ok(RowAction::Set(RowSet {
        sets: values
            .into_iter()
            .enumerate()
            .filter(|(i, _)| touched[*i])
            .collect(),
        delete_first: replace && row.on_delete == OnDelete::DeleteRow,
    }))
}

fn column_index(row: &MappedRow, field: &[u8]) -> Option<usize> {
    row.columns.iter().position(|c| c.name.as_bytes() == field)
}

/// Validates, without the database, that `write` (if any) can be applied to the row of `key`:
/// the key capture and every value set must convert for their columns (`convert` is the
/// backend's converter, given the column as a mapped column and whether the bytes are the key).
/// A conversion error names the field, the key and the column.
pub(crate) fn check_row(
    row: &MappedRow,
    key: &[u8],
    write: Option<&StoreWrite>,
    mut convert: impl FnMut(&MappedTable, &[u8], bool) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let Some(first) = row.columns.first() else {
        return Err(StoreError::permanent(format!(
            "keyspace table {} maps no column",
            row.table
        )));
    };
    convert(&row.as_column(first), key, true)?;
    let Some(write) = write else {
        return Ok(());
    };
    if let RowAction::Set(set) = plan_row_write(row, key, write)? {
        for (i, value) in &set.sets {
            if let Some(v) = value {
                let col = &row.columns[*i];
                convert(&row.as_column(col), v, false).map_err(|mut e| {
                    e.message = format!("field {:?}: {}", col.name, e.message);
                    e
                })?;
            }
        }
    }
    Ok(())
}

/// The row image as [`Store::read`](super::Store::read) returns it: the non-NULL columns, in
/// configured order, encoded as a hash (empty bytes when every one is NULL).
pub(crate) fn image(row: &MappedRow, values: Vec<Option<Bytes>>) -> Bytes {
    let pairs: Vec<(&[u8], &[u8])> = row
        .columns
        .iter()
        .zip(&values)
        .filter_map(|(c, v)| v.as_ref().map(|v| (c.name.as_bytes(), &v[..])))
        .collect();
    hash::encode(pairs.into_iter())
}

/// A read result from a row image: no row, or every column NULL, is no key.
pub(crate) fn stored_value(image: Bytes) -> Option<super::StoredValue> {
    (!image.is_empty()).then_some(super::StoredValue {
        value: image,
        kind: Kind::Hash,
        expires_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PartialWrite;
    use crate::tiers::store::{ColumnInfo, ColumnType};

    fn row(on_delete: OnDelete) -> MappedRow {
        let col = |name: &str, kind| ColumnInfo {
            name: name.into(),
            declared_type: String::new(),
            kind,
        };
        MappedRow {
            table: "users".into(),
            key_column: "id".into(),
            key_type: ColumnType::Integer,
            columns: vec![
                col("name", ColumnType::Text),
                col("email", ColumnType::Text),
                col("age", ColumnType::Integer),
            ],
            on_delete,
        }
    }

    fn h(pairs: &[(&str, &str)]) -> Bytes {
        hash::encode(pairs.iter().map(|(f, v)| (f.as_bytes(), v.as_bytes())))
    }

    fn fields(image: Bytes, changed: &[&str], replace: bool) -> StoreWrite {
        StoreWrite::Partial(PartialWrite {
            kind: crate::model::Kind::Hash,
            expires_at: None,
            image,
            changed: changed.iter().map(|c| Bytes::from(c.to_string())).collect(),
            replace,
        })
    }

    #[test]
    fn a_partial_write_sets_only_the_changed_columns() {
        let r = row(OnDelete::SetNull);
        let w = fields(
            h(&[("name", "ann"), ("age", "7")]),
            &["age", "email"],
            false,
        );
        let RowAction::Set(set) = plan_row_write(&r, b"1", &w).unwrap() else {
            panic!("a set")
        };
        assert_eq!(set.sets, vec![(1, None), (2, Some(Bytes::from("7")))]);
        assert!(!set.delete_first && !set.all_null());
    }

    #[test]
    fn a_replace_sets_every_column_and_deletes_first_under_delete_row() {
        let w = fields(h(&[("email", "e")]), &[], true);
        for (on_delete, first) in [(OnDelete::SetNull, false), (OnDelete::DeleteRow, true)] {
            let RowAction::Set(set) = plan_row_write(&row(on_delete), b"1", &w).unwrap() else {
                panic!("a set")
            };
            assert_eq!(
                set.sets,
                vec![(0, None), (1, Some(Bytes::from("e"))), (2, None)]
            );
            assert_eq!(set.delete_first, first);
        }
        let whole = StoreWrite::Upsert {
            value: h(&[("age", "3")]),
            kind: Kind::Hash,
            expires_at: None,
        };
        let RowAction::Set(set) = plan_row_write(&row(OnDelete::SetNull), b"1", &whole).unwrap()
        else {
            panic!("a set")
        };
        assert_eq!(set.sets.len(), 3, "a whole hash replaces the row");
    }

    #[test]
    fn unknown_fields_strings_and_bad_values_are_refused() {
        let r = row(OnDelete::SetNull);
        let e = plan_row_write(&r, b"1", &fields(h(&[("x", "1")]), &["x"], false)).unwrap_err();
        assert!(e.is_permanent() && e.message.contains("\"x\""), "{e}");
        let e = plan_row_write(&r, b"1", &StoreWrite::string(Bytes::from("v"), None)).unwrap_err();
        assert!(e.is_permanent(), "{e}");
        let convert = |m: &MappedTable, bytes: &[u8], is_key: bool| {
            let (kind, column, what) = m.conversion_target(is_key);
            if kind == ColumnType::Integer && crate::numeric::parse_strict_i64(bytes).is_none() {
                return Err(super::super::conversion_error(
                    what, bytes, b"1", m, column, kind,
                ));
            }
            Ok(())
        };
        let bad = fields(h(&[("age", "old")]), &["age"], false);
        let e = check_row(&r, b"1", Some(&bad), convert).unwrap_err();
        assert!(
            e.message.contains("field \"age\"") && e.message.contains("users.age"),
            "{e}"
        );
        assert!(
            check_row(&r, b"x", None, convert).is_err(),
            "the key is checked"
        );
    }

    #[test]
    fn images_keep_column_order_and_skip_nulls() {
        let r = row(OnDelete::SetNull);
        let img = image(
            &r,
            vec![Some(Bytes::from("a")), None, Some(Bytes::from("3"))],
        );
        assert_eq!(img, h(&[("name", "a"), ("age", "3")]));
        assert_eq!(stored_value(image(&r, vec![None, None, None])), None);
    }
}
