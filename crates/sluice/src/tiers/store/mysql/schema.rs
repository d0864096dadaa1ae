//! Reading a table's schema from `information_schema`, and mapping MySQL / MariaDB types to
//! column kinds.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::errors::classify;
use crate::error::StoreError;
use crate::tiers::store::{ColumnInfo, ColumnType, TableSchema};

fn kind_of(data_type: &str, column_type: &str) -> ColumnType {
    let column_type = column_type.to_ascii_lowercase();
    match data_type.to_ascii_lowercase().as_str() {
        "tinyint" if column_type.starts_with("tinyint(1)") => ColumnType::Boolean,
        "bool" | "boolean" => ColumnType::Boolean,
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "year" => {
            ColumnType::Integer
        }
        "decimal" | "numeric" => ColumnType::Numeric,
        "float" | "double" | "real" => ColumnType::Real,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" | "bit" => {
            ColumnType::Blob
        }
        "json" => ColumnType::Json,
        "date" | "datetime" | "timestamp" | "time" => ColumnType::Timestamp,
        _ => ColumnType::Text,
    }
}

/// `schema.table` split, the schema defaulting to the connection's database.
fn split_table(table: &str) -> (Option<&str>, &str) {
    match table.split_once('.') {
        Some((s, t)) => (Some(s), t),
        None => (None, table),
    }
}

/// Reads the columns and the single-column unique indexes of `table` (`schema.table`, or a
/// table of the connection's database); `None` when there is no such table.
pub(super) async fn load_schema(
    conn: &mut Conn,
    table: &str,
) -> Result<Option<TableSchema>, StoreError> {
    let (schema, name) = split_table(table);
    let q = |e: mysql_async::Error| classify(e, &format!("read the schema of {table}")).error;
    let rows: Vec<(String, String, String)> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND BINARY TABLE_NAME = ? \
             ORDER BY ORDINAL_POSITION",
            (schema, name),
        )
        .await
        .map_err(q)?;
    if rows.is_empty() {
        return Ok(None);
    }
    // MariaDB's JSON is LONGTEXT with a json_valid() check; find those columns.
    let checks: Vec<String> = conn
        .exec(
            "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
             WHERE CONSTRAINT_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?",
            (schema, name),
        )
        .await
        .unwrap_or_default();
    let columns = rows
        .into_iter()
        .map(|(col, data_type, column_type)| {
            let json_check = format!("json_valid(`{col}`)");
            let kind = if checks.iter().any(|c| c.eq_ignore_ascii_case(&json_check)) {
                ColumnType::Json
            } else {
                kind_of(&data_type, &column_type)
            };
            ColumnInfo {
                name: col,
                declared_type: column_type,
                kind,
            }
        })
        .collect();
    let unique_columns: Vec<String> = conn
        .exec(
            "SELECT MAX(COLUMN_NAME) FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND BINARY TABLE_NAME = ? \
               AND NON_UNIQUE = 0 \
             GROUP BY INDEX_NAME HAVING COUNT(*) = 1 \
             ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME",
            (schema, name),
        )
        .await
        .map_err(q)?;
    // Whole-column indexes only: a prefix index (SUB_PART) makes distinct values collide, and
    // an index on an expression has no column (NULL) to name.
    let unique_keys: Vec<Option<String>> = conn
        .exec(
            "SELECT GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX SEPARATOR '\\n') \
             FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND BINARY TABLE_NAME = ? \
               AND NON_UNIQUE = 0 GROUP BY INDEX_NAME \
             HAVING COUNT(SUB_PART) = 0 AND COUNT(COLUMN_NAME) = COUNT(*)",
            (schema, name),
        )
        .await
        .map_err(q)?;
    Ok(Some(TableSchema {
        columns,
        unique_columns,
        unique_keys: unique_keys
            .iter()
            .flatten()
            .map(|k| k.split('\n').map(str::to_string).collect())
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_mapping() {
        assert_eq!(kind_of("tinyint", "tinyint(1)"), ColumnType::Boolean);
        assert_eq!(kind_of("tinyint", "tinyint(4)"), ColumnType::Integer);
        assert_eq!(kind_of("bigint", "bigint(20)"), ColumnType::Integer);
        assert_eq!(kind_of("decimal", "decimal(10,2)"), ColumnType::Numeric);
        assert_eq!(kind_of("double", "double"), ColumnType::Real);
        assert_eq!(kind_of("longblob", "longblob"), ColumnType::Blob);
        assert_eq!(kind_of("varbinary", "varbinary(16)"), ColumnType::Blob);
        assert_eq!(kind_of("json", "json"), ColumnType::Json);
        assert_eq!(kind_of("datetime", "datetime"), ColumnType::Timestamp);
        assert_eq!(kind_of("varchar", "varchar(20)"), ColumnType::Text);
    }
}

/// What a MySQL column holds that MySQL checks only when a statement runs (and, outside strict
/// mode, enforces by silently cutting the value): a write it would refuse or cut is refused
/// before it is acknowledged instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ColumnLimit {
    /// An integer column narrower than a signed BIGINT: the values it holds.
    Integers(i64, i64),
    /// `VARCHAR(n)` / `CHAR(n)`: at most this many characters.
    Chars(usize),
    /// `VARBINARY(n)`, `TINYTEXT`, `TEXT`, `TINYBLOB`, `BLOB`, `MEDIUMTEXT`, `MEDIUMBLOB`: at
    /// most this many bytes.
    Bytes(usize),
}

/// The limit of a column of MySQL declared type `column_type` (`int(11) unsigned`,
/// `varchar(20)`, `TEXT`, ...); `None` for a signed BIGINT, a LONGTEXT or LONGBLOB, or a type
/// without one.
pub(super) fn column_limit(column_type: &str) -> Option<ColumnLimit> {
    let t = column_type.trim().to_ascii_lowercase();
    let size = || -> Option<usize> {
        let open = t.find('(')?;
        let close = t[open..].find(')')? + open;
        t[open + 1..close].trim().parse().ok()
    };
    let unsigned = t.contains("unsigned");
    let bits = if t.starts_with("bigint") {
        64
    } else if t.starts_with("tinyint") {
        8
    } else if t.starts_with("smallint") {
        16
    } else if t.starts_with("mediumint") {
        24
    } else if t.starts_with("int") {
        32
    } else if t.starts_with("varchar") || t.starts_with("char") {
        return size().map(ColumnLimit::Chars);
    } else if t.starts_with("varbinary") {
        return size().map(ColumnLimit::Bytes);
    } else if t.starts_with("tinytext") || t.starts_with("tinyblob") {
        return Some(ColumnLimit::Bytes(255));
    } else if t.starts_with("text") || t.starts_with("blob") {
        return Some(ColumnLimit::Bytes(65_535));
    } else if t.starts_with("mediumtext") || t.starts_with("mediumblob") {
        return Some(ColumnLimit::Bytes(16_777_215));
    } else {
        return None;
    };
    match (bits, unsigned) {
        (64, false) => None,
        (64, true) => Some(ColumnLimit::Integers(0, i64::MAX)),
        (b, false) => Some(ColumnLimit::Integers(
            -(1i64 << (b - 1)),
            (1i64 << (b - 1)) - 1,
        )),
        (b, true) => Some(ColumnLimit::Integers(0, (1i64 << b) - 1)),
    }
}

#[cfg(test)]
mod limit_tests {
    use super::{column_limit, ColumnLimit::*};

    #[test]
    fn columns_have_the_limits_mysql_enforces() {
        assert_eq!(column_limit("tinyint(4)"), Some(Integers(-128, 127)));
        assert_eq!(column_limit("tinyint(3) unsigned"), Some(Integers(0, 255)));
        assert_eq!(column_limit("smallint(6)"), Some(Integers(-32768, 32767)));
        assert_eq!(
            column_limit("MEDIUMINT UNSIGNED"),
            Some(Integers(0, 16_777_215))
        );
        assert_eq!(
            column_limit("int(11)"),
            Some(Integers(-2_147_483_648, 2_147_483_647))
        );
        assert_eq!(
            column_limit("int(10) unsigned"),
            Some(Integers(0, 4_294_967_295))
        );
        assert_eq!(
            column_limit("bigint(20) unsigned"),
            Some(Integers(0, i64::MAX))
        );
        assert_eq!(column_limit("bigint(20)"), None);
        assert_eq!(column_limit("varchar(20)"), Some(Chars(20)));
        assert_eq!(column_limit("char(3)"), Some(Chars(3)));
        assert_eq!(column_limit("varbinary(16)"), Some(Bytes(16)));
        assert_eq!(column_limit("text"), Some(Bytes(65_535)));
        assert_eq!(column_limit("tinyblob"), Some(Bytes(255)));
        assert_eq!(column_limit("longtext"), None);
        assert_eq!(column_limit("decimal(10,2)"), None);
        assert_eq!(column_limit("double"), None);
    }
}
