//! Classifying PostgreSQL failures by SQLSTATE: transient (retry with backoff), conflict (the
//! server rolled the transaction back for another one; run it again at once) or permanent; and
//! the errors of a COMMIT whose outcome may be unknown.

use crate::error::StoreError;
use crate::tiers::store::batch::StatementFailure;

/// SQLSTATEs worth retrying: transient ones, and the conflicts among them, which [`classify`]
/// tells apart first.
fn transient_state(code: &str) -> bool {
    code.starts_with("08") // connection exception
        || code.starts_with("53") // insufficient resources, too_many_connections (53300)
        || matches!(
            code,
            "40001" // serialization_failure
                | "40P01" // deadlock_detected
                | "55P03" // lock_not_available
                | "55006" // object_in_use
                | "57P01" // admin_shutdown
                | "57P02" // crash_shutdown
                | "57P03" // cannot_connect_now
                | "57014" // query_canceled (statement_timeout)
                | "58000" // system_error
                | "58030" // io_error
                | "25006" // read_only_sql_transaction (a standby after failover)
        )
}

/// SQLSTATEs of a transaction the server rolled back because of another transaction: nothing
/// of it committed, and running it again may succeed.
fn conflict_state(code: &str) -> bool {
    matches!(
        code,
        "40001" // serialization_failure
            | "40P01" // deadlock_detected
    )
}

/// Classifies a tokio-postgres error, which becomes the source of the result.
pub(super) fn classify(e: tokio_postgres::Error, doing: &str) -> StoreError {
    let error = if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let mut msg = format!("PostgreSQL {doing}: {} (SQLSTATE {code})", db.message());
        if let Some(detail) = db.detail() {
            msg.push_str(&format!("; {detail}"));
        }
        if conflict_state(code) {
            StoreError::conflict(msg)
        } else if transient_state(code) {
            StoreError::transient(msg)
        } else {
            StoreError::permanent(msg)
        }
    } else {
        classify_client(&e, doing)
    };
    error.with_source(e)
}

/// A tokio-postgres error without a server answer: a broken or unusable connection is
/// transient, anything else (a bad parameter, a type mismatch) permanent.
fn classify_client(e: &tokio_postgres::Error, doing: &str) -> StoreError {
    let msg = format!("PostgreSQL {doing}: {e}");
    let text = e.to_string();
    let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
    if e.is_closed()
        || io
        || text.starts_with("timeout")
        || text.starts_with("error connecting")
        || text.starts_with("error communicating")
        || text.starts_with("unexpected message")
        || text.starts_with("error parsing response")
        || text.starts_with("error performing TLS")
    {
        StoreError::transient(msg)
    } else {
        StoreError::permanent(msg)
    }
}

/// A failed COMMIT. Without an answer from the server (the connection broke once COMMIT was
/// sent) the transaction may have committed, and the error must not claim it did not.
pub(super) fn commit_error(e: tokio_postgres::Error) -> StoreError {
    let answered = e.as_db_error().is_some();
    let mut err = classify(e, "commit");
    if !answered {
        err.message
            .push_str("; the outcome is unknown: the transaction may have been committed");
    }
    err
}

/// A statement failure; class 42 (a missing table or column, a privilege), 0A and 25 are
/// about the statement itself, not its rows.
pub(super) fn statement_failure(e: tokio_postgres::Error, doing: &str) -> StatementFailure {
    let whole = e.code().is_some_and(|c| {
        let c = c.code();
        c.starts_with("42") || c.starts_with("0A") || c.starts_with("25")
    });
    StatementFailure {
        error: classify(e, doing),
        whole_statement: whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_are_marked() {
        for c in ["40001", "40P01"] {
            assert!(conflict_state(c), "{c}");
        }
        // Rolled back too, but not for a conflict with another transaction; 40003 is a
        // statement whose completion is unknown.
        for c in ["40000", "40002", "40003", "55P03", "08006", "57014"] {
            assert!(!conflict_state(c), "{c}");
        }
    }

    #[test]
    fn sqlstate_classes() {
        for t in ["08006", "40001", "40P01", "55P03", "57P01", "53300"] {
            assert!(transient_state(t), "{t}");
        }
        for p in ["22001", "22P02", "23505", "42P01", "54000"] {
            assert!(!transient_state(p), "{p}");
        }
    }
}
