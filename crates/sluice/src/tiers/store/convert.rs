//! Converting Redis bytes to column values: the shared parsers and the error for bytes a
//! column cannot hold.

use crate::error::StoreError;
use crate::tiers::store::{ColumnType, MappedTable};

pub use crate::numeric::{parse_bool, parse_finite_f64, parse_strict_i64};

/// The permanent error for a key or value a column cannot hold.
pub fn conversion_error(
    what: &str,
    bytes: &[u8],
    key: &[u8],
    mapped: &MappedTable,
    column: &str,
    kind: ColumnType,
) -> StoreError {
    let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(64)]).into_owned();
    StoreError::permanent(format!(
        "{what} {shown:?} for key {:?} cannot be stored in column {}.{} ({kind})",
        String::from_utf8_lossy(key),
        mapped.table,
        column
    ))
}
