//! Classifying MySQL / MariaDB failures by server error code: transient (retry with backoff),
//! conflict (InnoDB rolled the whole transaction back as a deadlock victim; run it again at
//! once) or permanent; whether a failure is about the statement rather than its rows; and the
//! errors of a COMMIT whose outcome may be unknown.

use crate::error::StoreError;
use crate::tiers::store::batch::StatementFailure;

/// Server error codes worth retrying: transient ones, and the deadlock (1213), which
/// [`classify`] marks as a conflict.
fn transient_code(code: u16) -> bool {
    matches!(
        code,
        1205 // lock wait timeout
            | 1213 // deadlock
            | 1040 // too many connections
            | 1203 // too many user connections
            | 1053 // server shutdown in progress
            | 1077 | 1078 | 1079 | 1080 // shutdown
            | 1152
            ..=1161 // aborted connection, network read/write errors
            | 1317 // query interrupted
            | 1927 // connection killed (MariaDB)
            | 1969 // statement timeout (MariaDB max_statement_time)
            | 3024 // statement timeout (MySQL max_execution_time)
            | 1037 | 1038 | 1041 // out of memory
            | 1021 // disk full
            | 1290 // --read-only (a replica after failover)
            | 1792 // read-only transaction
            | 1615 // prepared statement needs to be re-prepared
            | 2006 | 2013 // server gone away, lost connection
    )
}

/// Server errors about the statement itself rather than its rows.
fn whole_statement_code(code: u16) -> bool {
    matches!(
        code,
        1044 | 1045 | 1046 | 1049 | 1054 | 1064 | 1142 | 1143 | 1146 | 1149
    )
}

/// Classifies a mysql_async error, which becomes the source of the result.
pub(super) fn classify(e: mysql_async::Error, doing: &str) -> StatementFailure {
    use mysql_async::{DriverError, Error};
    let msg = format!("MySQL {doing}: {e}");
    let (transient, whole) = match &e {
        Error::Server(s) => (transient_code(s.code), whole_statement_code(s.code)),
        Error::Io(_) => (true, false),
        Error::Driver(d) => (
            matches!(
                d,
                DriverError::ConnectionClosed
                    | DriverError::PoolDisconnected
                    | DriverError::PacketOutOfOrder
                    | DriverError::UnexpectedPacket { .. }
                    | DriverError::BadCompressedPacketHeader
            ),
            false,
        ),
        Error::Url(_) => (false, true),
        Error::Other(_) => (true, false),
    };
    let deadlock = matches!(&e, Error::Server(s) if s.code == 1213);
    StatementFailure {
        error: if deadlock {
            StoreError::conflict(msg)
        } else if transient {
            StoreError::transient(msg)
        } else {
            StoreError::permanent(msg)
        }
        .with_source(e),
        whole_statement: whole,
    }
}

/// A failed COMMIT. Without an answer from the server (the connection broke) the transaction
/// may have been applied, and the error must not claim it was not.
pub(super) fn commit_error(e: mysql_async::Error) -> StoreError {
    let answered = matches!(e, mysql_async::Error::Server(_));
    let mut err = classify(e, "commit").error;
    if !answered {
        err.message
            .push_str("; the outcome is unknown: the transaction may have been committed");
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_deadlock_is_a_conflict() {
        let server = |code: u16| {
            mysql_async::Error::Server(mysql_async::ServerError {
                code,
                message: "x".into(),
                state: "40001".into(),
            })
        };
        let deadlock = classify(server(1213), "write").error;
        assert!(deadlock.is_conflict() && !deadlock.is_permanent());
        for code in [1205, 2013, 1062] {
            assert!(
                !classify(server(code), "write").error.is_conflict(),
                "{code}"
            );
        }
    }

    #[test]
    fn error_codes() {
        assert!(transient_code(1205));
        assert!(transient_code(1213));
        for c in [1264, 1366, 1406, 1062, 1048, 1292, 4025] {
            assert!(!transient_code(c), "{c}");
        }
    }
}
