//! Building SQL for PostgreSQL: identifier quoting, the built-in table's statements, the
//! statements of a mapped target, and converting keys and values to the parameters they take.

use std::borrow::Cow;

use bytes::Bytes;
use tokio_postgres::types::ToSql;

use super::schema::{PgColumn, PgTable};
use crate::error::StoreError;
use crate::tiers::store::{
    conversion_error, parse_bool, parse_finite_f64, parse_strict_i64, ColumnType, MappedTable,
};

pub(super) const UPSERT_KV: &str = "INSERT INTO sluice_kv (db, key, value, expires_at, kind) \
     SELECT * FROM UNNEST($1::int2[], $2::bytea[], $3::bytea[], $4::int8[], $5::int2[]) \
     ON CONFLICT (db, key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at, \
     kind = EXCLUDED.kind";
/// Every member of some keys (a value replaced whole).
pub(super) const DELETE_ALL_MEMBERS: &str =
    "DELETE FROM sluice_members AS t USING UNNEST($1::int2[], $2::bytea[]) AS d(db, key) \
     WHERE t.db = d.db AND t.key = d.key";
/// Some members of some keys.
pub(super) const DELETE_MEMBERS: &str = "DELETE FROM sluice_members AS t \
     USING UNNEST($1::int2[], $2::bytea[], $3::bytea[]) AS d(db, key, member) \
     WHERE t.db = d.db AND t.key = d.key AND t.member = d.member";
/// Members that must be there, with their scores or elements (one already there takes the new
/// ones). A statement names each member once: `ON CONFLICT DO UPDATE` may not touch a row
/// twice.
pub(super) const UPSERT_MEMBERS: &str =
    "INSERT INTO sluice_members (db, key, member, score, value) \
     SELECT * FROM UNNEST($1::int2[], $2::bytea[], $3::bytea[], $4::float8[], $5::bytea[]) \
     ON CONFLICT (db, key, member) DO UPDATE SET score = EXCLUDED.score, value = EXCLUDED.value";
pub(super) const DELETE_KV: &str =
    "DELETE FROM sluice_kv AS t USING UNNEST($1::int2[], $2::bytea[]) AS d(db, key) \
     WHERE t.db = d.db AND t.key = d.key";

/// Quotes one identifier part, doubling embedded quotes.
pub(super) fn quote(part: &str) -> String {
    format!("\"{}\"", part.replace('"', "\"\""))
}

/// A key or value as it is sent: text to be cast to the column type, or raw bytea.
pub(super) enum Param<'a> {
    Text(Cow<'a, str>),
    Bytes(&'a [u8]),
}

/// Converts bytes for a mapped column, refusing what the column cannot hold. `pg` adds the
/// column's range limits when the table has been resolved.
pub(super) fn convert<'a>(
    m: &MappedTable,
    pg: Option<&PgColumn>,
    bytes: &'a [u8],
    key: &[u8],
    is_key: bool,
) -> Result<Param<'a>, StoreError> {
    let (kind, column, what) = m.conversion_target(is_key);
    let fail = || conversion_error(what, bytes, key, m, column, kind);
    let text = || std::str::from_utf8(bytes).map_err(|_| fail());
    let base = pg.map(|c| c.base.as_str()).unwrap_or("");
    Ok(match kind {
        ColumnType::Integer => {
            let i = parse_strict_i64(bytes).ok_or_else(fail)?;
            let fits = match base {
                "int2" => i16::try_from(i).is_ok(),
                "int4" => i32::try_from(i).is_ok(),
                _ => true,
            };
            if !fits {
                return Err(fail());
            }
            Param::Text(Cow::Borrowed(text()?))
        }
        ColumnType::Real => {
            let f = parse_finite_f64(bytes).ok_or_else(fail)?;
            if base == "float4" && f.abs() > f32::MAX as f64 {
                return Err(fail());
            }
            Param::Text(Cow::Borrowed(text()?))
        }
        ColumnType::Numeric => {
            if parse_strict_i64(bytes).is_none() && parse_finite_f64(bytes).is_none() {
                return Err(fail());
            }
            Param::Text(Cow::Borrowed(text()?))
        }
        ColumnType::Boolean => Param::Text(Cow::Borrowed(if parse_bool(bytes).ok_or_else(fail)? {
            "true"
        } else {
            "false"
        })),
        ColumnType::Text | ColumnType::Json | ColumnType::Timestamp => {
            let s = text()?;
            // PostgreSQL text cannot hold NUL.
            if s.contains('\0') {
                return Err(fail());
            }
            // varchar(n) and char(n) refuse a longer value when the statement runs: after a
            // write-back write was acknowledged.
            if let Some(n) = pg.and_then(character_limit) {
                if s.chars().count() > n {
                    return Err(fail());
                }
            }
            Param::Text(Cow::Borrowed(s))
        }
        ColumnType::Blob => Param::Bytes(bytes),
    })
}

/// The most characters a `varchar(n)` or `char(n)` column (or a domain over one) holds.
fn character_limit(c: &PgColumn) -> Option<usize> {
    if !matches!(c.base.as_str(), "varchar" | "bpchar") {
        return None;
    }
    let open = c.declared.rfind('(')?;
    let close = c.declared[open..].find(')')? + open;
    c.declared[open + 1..close].trim().parse().ok()
}

/// The SQL pieces of one mapped target.
pub(super) struct MappedSql<'t> {
    pub(super) table: &'t PgTable,
    pub(super) key: &'t PgColumn,
    pub(super) value: &'t PgColumn,
}

impl<'t> MappedSql<'t> {
    pub(super) fn new(table: &'t PgTable, m: &MappedTable) -> Result<MappedSql<'t>, StoreError> {
        let col = |name: &str| {
            table.column(name).ok_or_else(|| {
                StoreError::permanent(format!(
                    "PostgreSQL table {} has no column {name:?}",
                    m.table
                ))
            })
        };
        Ok(MappedSql {
            table,
            key: col(&m.key_column)?,
            value: col(&m.value_column)?,
        })
    }

    fn param_type(c: &PgColumn) -> &'static str {
        if c.kind == ColumnType::Blob {
            "bytea"
        } else {
            "text"
        }
    }

    /// The upsert; with `returning`, it also returns each row's key and value as
    /// [`MappedSql::out`] renders them for reads and scans.
    pub(super) fn upsert(&self, returning: bool) -> String {
        let mut sql = format!(
            "INSERT INTO {t} ({k}, {v}) SELECT u.k::{kc}, u.v::{vc} \
             FROM UNNEST($1::{kp}[], $2::{vp}[]) AS u(k, v) \
             ON CONFLICT ({k}) DO UPDATE SET {v} = EXCLUDED.{v}",
            t = self.table.qualified,
            k = quote(&self.key.name),
            v = quote(&self.value.name),
            kc = self.key.cast,
            vc = self.value.cast,
            kp = Self::param_type(self.key),
            vp = Self::param_type(self.value),
        );
        if returning {
            sql.push_str(&format!(
                " RETURNING {}, {}",
                Self::out(self.key),
                self.value_out()
            ));
        }
        sql
    }

    pub(super) fn delete(&self, on_delete: crate::config::OnDelete) -> String {
        match on_delete {
            crate::config::OnDelete::SetNull => format!(
                "UPDATE {t} SET {v} = NULL WHERE {k} = ANY($1::{kp}[]::{kc}[])",
                t = self.table.qualified,
                k = quote(&self.key.name),
                v = quote(&self.value.name),
                kc = self.key.cast,
                kp = Self::param_type(self.key),
            ),
            crate::config::OnDelete::DeleteRow => format!(
                "DELETE FROM {t} WHERE {k} = ANY($1::{kp}[]::{kc}[])",
                t = self.table.qualified,
                k = quote(&self.key.name),
                kc = self.key.cast,
                kp = Self::param_type(self.key),
            ),
        }
    }

    /// The value column as read back: bytea raw, anything else in its text form.
    pub(super) fn value_out(&self) -> String {
        Self::out(self.value)
    }

    pub(super) fn out(c: &PgColumn) -> String {
        if c.kind == ColumnType::Blob {
            quote(&c.name)
        } else {
            format!("{}::text", quote(&c.name))
        }
    }

    pub(super) fn key_in(&self, n: usize) -> String {
        format!("${n}::{}::{}", Self::param_type(self.key), self.key.cast)
    }
}

/// Collects converted params into the two array shapes a statement takes.
#[derive(Default)]
pub(super) struct Column<'a> {
    text: Vec<Cow<'a, str>>,
    bytes: Vec<&'a [u8]>,
}

impl<'a> Column<'a> {
    pub(super) fn push(&mut self, p: Param<'a>) {
        match p {
            Param::Text(t) => self.text.push(t),
            Param::Bytes(b) => self.bytes.push(b),
        }
    }

    pub(super) fn as_sql<'s>(&'s self, kind: ColumnType) -> Box<dyn ToSql + Sync + Send + 's> {
        if kind == ColumnType::Blob {
            Box::new(self.bytes.clone())
        } else {
            Box::new(
                self.text
                    .iter()
                    .map(|s| s.as_ref())
                    .collect::<Vec<&'s str>>(),
            )
        }
    }
}

impl<'a> Column<'a> {
    /// The array parameter, owning its texts (the statement outlives this column).
    pub(super) fn into_sql(self, kind: ColumnType) -> Box<dyn ToSql + Sync + Send + 'a> {
        if kind == ColumnType::Blob {
            Box::new(self.bytes)
        } else {
            Box::new(
                self.text
                    .into_iter()
                    .map(Cow::into_owned)
                    .collect::<Vec<String>>(),
            )
        }
    }
}

/// A selected value: bytea raw, anything else already cast to text. NULL is no value.
pub(super) fn value_bytes(row: &tokio_postgres::Row, kind: ColumnType) -> Option<Bytes> {
    column_bytes(row, 0, kind)
}

/// Column `idx` of a row, selected as [`MappedSql::out`] renders a column of `kind`. NULL (or a
/// column of an unexpected type, which would be a bug) is no value.
pub(super) fn column_bytes(
    row: &tokio_postgres::Row,
    idx: usize,
    kind: ColumnType,
) -> Option<Bytes> {
    if kind == ColumnType::Blob {
        row.try_get::<_, Option<Vec<u8>>>(idx)
            .ok()
            .flatten()
            .map(Bytes::from)
    } else {
        row.try_get::<_, Option<String>>(idx)
            .ok()
            .flatten()
            .map(Bytes::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
    }
}
