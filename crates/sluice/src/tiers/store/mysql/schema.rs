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

/// The values an integer column of MySQL declared type `column_type` (`int(11) unsigned`,
/// `TINYINT`, ...) holds, where that is less than every `i64`: MySQL refuses an out-of-range
/// value only when the statement runs, so a write the range would refuse is refused before it
/// is acknowledged instead. `None` for a signed BIGINT or a type that is not an integer.
pub(super) fn integer_range(column_type: &str) -> Option<(i64, i64)> {
    let t = column_type.trim().to_ascii_lowercase();
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
    } else {
        return None;
    };
    match (bits, unsigned) {
        (64, false) => None,
        (64, true) => Some((0, i64::MAX)),
        (b, false) => Some((-(1i64 << (b - 1)), (1i64 << (b - 1)) - 1)),
        (b, true) => Some((0, (1i64 << b) - 1)),
    }
}

#[cfg(test)]
mod range_tests {
    use super::integer_range;

    #[test]
    fn narrow_and_unsigned_integers_have_ranges() {
        assert_eq!(integer_range("tinyint(4)"), Some((-128, 127)));
        assert_eq!(integer_range("tinyint(3) unsigned"), Some((0, 255)));
        assert_eq!(integer_range("smallint(6)"), Some((-32768, 32767)));
        assert_eq!(integer_range("MEDIUMINT UNSIGNED"), Some((0, 16_777_215)));
        assert_eq!(
            integer_range("int(11)"),
            Some((-2_147_483_648, 2_147_483_647))
        );
        assert_eq!(integer_range("int(10) unsigned"), Some((0, 4_294_967_295)));
        assert_eq!(
            integer_range("integer"),
            Some((-2_147_483_648, 2_147_483_647))
        );
        assert_eq!(integer_range("bigint(20) unsigned"), Some((0, i64::MAX)));
        assert_eq!(integer_range("bigint(20)"), None);
        assert_eq!(integer_range("varchar(20)"), None);
        assert_eq!(integer_range("decimal(10,2)"), None);
    }
}
