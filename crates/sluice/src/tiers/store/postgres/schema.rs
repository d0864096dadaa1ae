//! Reading a table's schema from the catalog, and mapping PostgreSQL types to column kinds.

use deadpool_postgres::Object;

use super::errors::classify;
use super::sql::quote;
use crate::error::StoreError;
use crate::tiers::store::{ColumnInfo, ColumnType, TableSchema};

/// A column as this backend needs it: how to cast text to it, and its range limits.
#[derive(Debug, Clone)]
pub(super) struct PgColumn {
    pub(super) name: String,
    /// `format_type` with the modifier, e.g. `numeric(10,2)`.
    pub(super) declared: String,
    /// The column's type without modifier, schema-qualified and quoted, e.g.
    /// `"pg_catalog"."numeric"`; text is cast to it.
    pub(super) cast: String,
    /// The base type's name (a domain's underlying type), e.g. `int4`.
    pub(super) base: String,
    pub(super) kind: ColumnType,
}

/// A resolved table: its quoted name and columns.
#[derive(Debug)]
pub(super) struct PgTable {
    pub(super) qualified: String,
    pub(super) columns: Vec<PgColumn>,
    pub(super) unique: Vec<String>,
    /// The columns of every unique index an `ON CONFLICT` can name.
    pub(super) unique_keys: Vec<Vec<String>>,
}

impl PgTable {
    pub(super) fn column(&self, name: &str) -> Option<&PgColumn> {
        self.columns.iter().find(|c| c.name == name).or_else(|| {
            self.columns
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(name))
        })
    }

    /// The table as the [`Store`](crate::tiers::store::Store) trait reports it.
    pub(super) fn schema(&self) -> TableSchema {
        TableSchema {
            columns: self
                .columns
                .iter()
                .map(|c| ColumnInfo {
                    name: c.name.clone(),
                    declared_type: c.declared.clone(),
                    kind: c.kind,
                })
                .collect(),
            unique_columns: self.unique.clone(),
            unique_keys: self.unique_keys.clone(),
        }
    }
}

fn kind_of(base: &str) -> ColumnType {
    match base {
        "int2" | "int4" | "int8" => ColumnType::Integer,
        "numeric" => ColumnType::Numeric,
        "float4" | "float8" => ColumnType::Real,
        "bool" => ColumnType::Boolean,
        "bytea" => ColumnType::Blob,
        "json" | "jsonb" => ColumnType::Json,
        "timestamp" | "timestamptz" | "date" | "time" | "timetz" => ColumnType::Timestamp,
        // text, varchar, bpchar, name, uuid, enums, … all take text input.
        _ => ColumnType::Text,
    }
}

pub(super) async fn load_table(client: &Object, name: &str) -> Result<Option<PgTable>, StoreError> {
    let q = |e: tokio_postgres::Error| classify(e, &format!("read the schema of {name}"));
    let quoted = name.split('.').map(quote).collect::<Vec<_>>().join(".");
    // The quoted name first (exact spelling), then as PostgreSQL folds an unquoted name.
    let row = client
        .query_opt(
            "SELECT c.oid, n.nspname::text, c.relname::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.oid = COALESCE(to_regclass($1), to_regclass($2)) AND c.relkind IN ('r', 'p')",
            &[&quoted, &name],
        )
        .await
        .map_err(q)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let oid: u32 = row.get(0);
    let schema: String = row.get(1);
    let relname: String = row.get(2);
    let rows = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), \
                    quote_ident(tn.nspname) || '.' || quote_ident(t.typname), \
                    COALESCE(bt.typname, t.typname)::text \
             FROM pg_attribute a \
             JOIN pg_type t ON t.oid = a.atttypid \
             JOIN pg_namespace tn ON tn.oid = t.typnamespace \
             LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&oid],
        )
        .await
        .map_err(q)?;
    let columns = rows
        .iter()
        .map(|r| {
            let base: String = r.get(3);
            PgColumn {
                name: r.get(0),
                declared: r.get(1),
                cast: r.get(2),
                kind: kind_of(&base),
                base,
            }
        })
        .collect();
    // Unique on their own: one key column, not partial, not on an expression, valid and
    // not deferrable (ON CONFLICT needs all of that).
    let unique = client
        .query(
            "SELECT a.attname::text FROM pg_index i \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
             WHERE i.indrelid = $1 AND i.indisunique AND i.indnkeyatts = 1 \
               AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indisvalid AND i.indimmediate \
             ORDER BY i.indisprimary DESC, a.attnum",
            &[&oid],
        )
        .await
        .map_err(q)?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    // Every such index, whatever its number of columns (a member table's owner and member).
    let unique_keys = client
        .query(
            "SELECT ARRAY(SELECT a.attname::text FROM unnest(i.indkey[0:i.indnkeyatts - 1]) AS k(n) \
                          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n) \
             FROM pg_index i \
             WHERE i.indrelid = $1 AND i.indisunique AND i.indpred IS NULL \
               AND i.indexprs IS NULL AND i.indisvalid AND i.indimmediate",
            &[&oid],
        )
        .await
        .map_err(q)?
        .iter()
        .map(|r| r.get::<_, Vec<String>>(0))
        .collect();
    Ok(Some(PgTable {
        qualified: format!("{}.{}", quote(&schema), quote(&relname)),
        columns,
        unique,
        unique_keys,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_mapping() {
        assert_eq!(kind_of("int4"), ColumnType::Integer);
        assert_eq!(kind_of("numeric"), ColumnType::Numeric);
        assert_eq!(kind_of("float8"), ColumnType::Real);
        assert_eq!(kind_of("bool"), ColumnType::Boolean);
        assert_eq!(kind_of("bytea"), ColumnType::Blob);
        assert_eq!(kind_of("jsonb"), ColumnType::Json);
        assert_eq!(kind_of("timestamptz"), ColumnType::Timestamp);
        assert_eq!(kind_of("varchar"), ColumnType::Text);
        assert_eq!(kind_of("uuid"), ColumnType::Text);
    }
}
