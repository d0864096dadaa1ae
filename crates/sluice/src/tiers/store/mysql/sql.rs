//! Building SQL for MySQL / MariaDB: identifier quoting, placeholders, how a column is
//! selected, and converting keys and values to the parameters a column takes.

use mysql_async::Value;

use crate::error::StoreError;
use crate::tiers::store::{
    conversion_error, parse_bool, parse_finite_f64, parse_strict_i64, ColumnType, MappedTable,
    StoreOp,
};

/// Quotes a validated identifier (optionally `schema.table`) with backticks for MySQL.
pub fn quote_mysql_identifier(name: &str) -> String {
    name.split('.')
        .map(|p| format!("`{}`", p.replace('`', "``")))
        .collect::<Vec<_>>()
        .join(".")
}

/// Converts bytes for a mapped column, refusing what the column cannot hold.
pub(super) fn convert(
    m: &MappedTable,
    bytes: &[u8],
    key: &[u8],
    is_key: bool,
) -> Result<Value, StoreError> {
    let (kind, column, what) = m.conversion_target(is_key);
    let fail = || conversion_error(what, bytes, key, m, column, kind);
    Ok(match kind {
        ColumnType::Integer => Value::Int(parse_strict_i64(bytes).ok_or_else(fail)?),
        ColumnType::Real => Value::Double(parse_finite_f64(bytes).ok_or_else(fail)?),
        ColumnType::Numeric => {
            if parse_strict_i64(bytes).is_none() && parse_finite_f64(bytes).is_none() {
                return Err(fail());
            }
            Value::Bytes(bytes.to_vec())
        }
        ColumnType::Boolean => Value::Int(parse_bool(bytes).ok_or_else(fail)? as i64),
        ColumnType::Text | ColumnType::Json | ColumnType::Timestamp => {
            std::str::from_utf8(bytes).map_err(|_| fail())?;
            Value::Bytes(bytes.to_vec())
        }
        ColumnType::Blob => Value::Bytes(bytes.to_vec()),
    })
}

/// The value column as selected: blobs raw, anything else in its text form.
pub(super) fn out(column: &str, kind: ColumnType) -> String {
    let q = quote_mysql_identifier(column);
    if kind == ColumnType::Blob {
        q
    } else {
        format!("CAST({q} AS CHAR)")
    }
}

pub(super) fn placeholders(rows: usize, per_row: usize) -> String {
    let one = format!("({})", vec!["?"; per_row].join(", "));
    vec![one; rows].join(", ")
}

pub(super) fn op_size(op: &StoreOp) -> usize {
    // A member write sends its key's row with an empty value; its members go in statements of
    // their own.
    let value = match crate::tiers::store::members::member_write(&op.target, &op.write) {
        Some(_) => 0,
        None => op.write.value_len(),
    };
    op.key.len() + 32 + value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backtick_quoting() {
        assert_eq!(quote_mysql_identifier("shop.products"), "`shop`.`products`");
        assert_eq!(quote_mysql_identifier("a`b"), "`a``b`");
    }
}
