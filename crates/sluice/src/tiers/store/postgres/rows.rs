//! The SQL of a mapped row (a hash keyspace) on PostgreSQL: the row's columns resolved
//! against the table, the statements of a write, and the row image a statement returns.

use bytes::Bytes;
use tokio_postgres::types::ToSql;

use super::schema::{PgColumn, PgTable};
use super::sql::{column_bytes, convert, quote, MappedSql, Param};
use crate::config::OnDelete;
use crate::error::StoreError;
use crate::tiers::store::rows::{self, RowSet};
use crate::tiers::store::{ColumnType, MappedRow};

/// A parameter as a row statement takes it: text cast to the column's type, or bytea; `None`
/// is NULL.
pub(super) type RowParam = Box<dyn ToSql + Sync + Send>;

/// A mapped row resolved against its table.
pub(super) struct RowSql<'t> {
    table: &'t PgTable,
    key: &'t PgColumn,
    /// The mapped columns, in configured order.
    columns: Vec<&'t PgColumn>,
}

impl<'t> RowSql<'t> {
    pub(super) fn new(table: &'t PgTable, r: &MappedRow) -> Result<RowSql<'t>, StoreError> {
        let col = |name: &str| {
            table.column(name).ok_or_else(|| {
                StoreError::permanent(format!(
                    "PostgreSQL table {} has no column {name:?}",
                    r.table
                ))
            })
        };
        Ok(RowSql {
            table,
            key: col(&r.key_column)?,
            columns: r
                .columns
                .iter()
                .map(|c| col(&c.name))
                .collect::<Result<_, _>>()?,
        })
    }

    fn placeholder(c: &PgColumn, n: usize) -> String {
        if c.kind == ColumnType::Blob {
            format!("${n}::bytea")
        } else {
            format!("${n}::text::{}", c.cast)
        }
    }

    fn param(p: Param<'_>) -> RowParam {
        match p {
            Param::Text(t) => Box::new(Some(t.into_owned())),
            Param::Bytes(b) => Box::new(Some(b.to_vec())),
        }
    }

    /// The key capture as the first parameter of every statement.
    pub(super) fn key_param(&self, r: &MappedRow, key: &[u8]) -> Result<RowParam, StoreError> {
        let first = r.columns.first().ok_or_else(|| {
            StoreError::permanent(format!("keyspace table {} maps no column", r.table))
        })?;
        convert(&r.as_column(first), Some(self.key), key, key, true).map(Self::param)
    }

    /// The value of column `i` (`None`: NULL), refused when the column cannot hold it.
    pub(super) fn value_param(
        &self,
        r: &MappedRow,
        i: usize,
        value: Option<&Bytes>,
        key: &[u8],
    ) -> Result<RowParam, StoreError> {
        let pg = self.columns[i];
        let Some(v) = value else {
            return Ok(if pg.kind == ColumnType::Blob {
                Box::new(None::<Vec<u8>>)
            } else {
                Box::new(None::<String>)
            });
        };
        let col = &r.columns[i];
        convert(&r.as_column(col), Some(pg), v, key, false)
            .map(Self::param)
            .map_err(|mut e| {
                e.message = format!("field {:?}: {}", col.name, e.message);
                e
            })
    }

    /// The mapped columns as reads select them.
    fn out(&self) -> String {
        self.columns
            .iter()
            .map(|c| MappedSql::out(c))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn key_is(&self) -> String {
        format!(
            "{} = {}",
            quote(&self.key.name),
            Self::placeholder(self.key, 1)
        )
    }

    /// The row's mapped columns, where its key is `$1`.
    pub(super) fn select(&self) -> String {
        format!(
            "SELECT {} FROM {} WHERE {}",
            self.out(),
            self.table.qualified,
            self.key_is()
        )
    }

    /// A DEL of the row at `$1`.
    pub(super) fn delete(&self, on_delete: OnDelete) -> String {
        match on_delete {
            OnDelete::SetNull => format!(
                "UPDATE {} SET {} WHERE {}",
                self.table.qualified,
                self.columns
                    .iter()
                    .map(|c| format!("{} = NULL", quote(&c.name)))
                    .collect::<Vec<_>>()
                    .join(", "),
                self.key_is()
            ),
            OnDelete::DeleteRow => {
                format!(
                    "DELETE FROM {} WHERE {}",
                    self.table.qualified,
                    self.key_is()
                )
            }
        }
    }

    /// The statement that sets `set`'s columns of the row at `$1` (values `$2…`, in `set`
    /// order) and returns the row's mapped columns; and how many parameters it takes.
    pub(super) fn set(&self, set: &RowSet) -> (String, usize) {
        let names: Vec<String> = set
            .sets
            .iter()
            .map(|(i, _)| quote(&self.columns[*i].name))
            .collect();
        if set.sets.is_empty() {
            return (self.select(), 1);
        }
        if set.all_null() {
            // Only NULLs: clear the columns of an existing row, never create one.
            return (
                format!(
                    "UPDATE {} SET {} WHERE {} RETURNING {}",
                    self.table.qualified,
                    names
                        .iter()
                        .map(|n| format!("{n} = NULL"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    self.key_is(),
                    self.out()
                ),
                1,
            );
        }
        let values: Vec<String> = std::iter::once(Self::placeholder(self.key, 1))
            .chain(
                set.sets
                    .iter()
                    .enumerate()
                    .map(|(n, (i, _))| Self::placeholder(self.columns[*i], n + 2)),
            )
            .collect();
        (
            format!(
                "INSERT INTO {t} ({k}, {names}) VALUES ({values}) ON CONFLICT ({k}) DO UPDATE SET {updates} RETURNING {out}",
                t = self.table.qualified,
                k = quote(&self.key.name),
                names = names.join(", "),
                values = values.join(", "),
                updates = names
                    .iter()
                    .map(|n| format!("{n} = EXCLUDED.{n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                out = self.out(),
            ),
            set.sets.len() + 1,
        )
    }

    /// The image of a row selected by [`RowSql::select`] or returned by [`RowSql::set`].
    pub(super) fn image(&self, r: &MappedRow, row: &tokio_postgres::Row) -> Bytes {
        let values = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| column_bytes(row, i, c.kind))
            .collect();
        rows::image(r, values)
    }
}

/// `a IS NOT NULL OR b IS NOT NULL …`.
pub(super) fn not_all_null(columns: &[&str]) -> String {
    columns
        .iter()
        .map(|c| format!("{} IS NOT NULL", quote(c)))
        .collect::<Vec<_>>()
        .join(" OR ")
}
