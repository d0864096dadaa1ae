//! Error types. Engine errors display as the exact Redis error line (code first), so the
//! server can send them verbatim.

use std::error::Error as StdError;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

/// What retrying a failed store operation can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Connection lost, timeout, lock or busy: retry with backoff.
    Transient,
    /// The database itself rolled the whole transaction back because it conflicted with
    /// another one (a deadlock, a serialization failure), and said so: nothing of it was
    /// committed, and it may be run again at once. Retryable like [`ErrorClass::Transient`].
    /// Never used when the outcome is unknown (a connection lost during COMMIT).
    Conflict,
    /// Constraint violation, a value the column cannot hold: retrying cannot help.
    Permanent,
}

impl ErrorClass {
    /// True when running the operation again may succeed: transient or conflict.
    pub fn is_retryable(self) -> bool {
        self != ErrorClass::Permanent
    }
}

/// A failure reported by a store backend.
///
/// `Display` is the message alone (clients see it after `ERR store failed for keyspace ...:`);
/// the driver's own error, where there is one, is the [`source`](StdError::source).
#[derive(Debug, Clone)]
pub struct StoreError {
    /// Transient, conflict or permanent.
    pub class: ErrorClass,
    /// What failed, naming the key and column where known.
    pub message: String,
    /// The driver's or the OS's error this one was made from, shared so the error stays
    /// cheap to clone (one batch failure reaches every writer of the batch).
    source: Option<Arc<dyn StdError + Send + Sync>>,
}

impl StoreError {
    fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        StoreError {
            class,
            message: message.into(),
            source: None,
        }
    }

    /// A permanent error: retrying the same entry cannot succeed.
    pub fn permanent(message: impl Into<String>) -> Self {
        StoreError::new(ErrorClass::Permanent, message)
    }

    /// A transient error: the same entry may succeed later.
    pub fn transient(message: impl Into<String>) -> Self {
        StoreError::new(ErrorClass::Transient, message)
    }

    /// An error for a transaction the database rolled back whole because of a conflict with
    /// another transaction ([`ErrorClass::Conflict`]): nothing of it was committed, and it may
    /// be run again at once.
    pub fn conflict(message: impl Into<String>) -> Self {
        StoreError::new(ErrorClass::Conflict, message)
    }

    /// The same error, keeping `source` (the driver's or the OS's error it was made from) as
    /// its [`source`](StdError::source). The message is unchanged.
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// True for errors that retrying cannot fix.
    pub fn is_permanent(&self) -> bool {
        self.class == ErrorClass::Permanent
    }

    /// True when the database rolled the transaction back because of a conflict with another
    /// one: nothing was committed and an immediate retry may succeed.
    pub fn is_conflict(&self) -> bool {
        self.class == ErrorClass::Conflict
    }

    /// True when running the operation again may succeed (transient or conflict).
    pub fn is_retryable(&self) -> bool {
        self.class.is_retryable()
    }
}

/// Two store errors are equal when they have the same class and say the same; their sources
/// (driver errors, which mostly cannot be compared) are left out.
impl PartialEq for StoreError {
    fn eq(&self, other: &Self) -> bool {
        self.class == other.class && self.message == other.message
    }
}

impl Eq for StoreError {}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

pub use crate::tiers::journal::error::JournalError;

/// A failure of the dead-letter registry (`<data-dir>/deadletters.db`).
#[derive(Debug, Error)]
pub enum DeadLetterError {
    /// The file could not be opened or created.
    #[error("cannot open dead-letter file {}: {source}", path.display())]
    Open {
        /// The registry file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The file was opened but its settings or its table could not be set up.
    #[error("cannot prepare dead-letter file {}: {source}", path.display())]
    Prepare {
        /// The registry file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// Reading, parking or removing letters failed. The text is SQLite's alone, as clients of
    /// `SLUICE.DEADLETTERS` have always seen it.
    #[error("{source}")]
    Access {
        /// The registry file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
}

impl DeadLetterError {
    /// The registry file that failed.
    pub fn path(&self) -> &Path {
        match self {
            DeadLetterError::Open { path, .. }
            | DeadLetterError::Prepare { path, .. }
            | DeadLetterError::Access { path, .. } => path,
        }
    }
}

/// Two dead-letter errors are equal when they are about the same file and say the same
/// (SQLite's errors themselves are compared by their text).
impl PartialEq for DeadLetterError {
    fn eq(&self, other: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
            && self.path() == other.path()
            && self.to_string() == other.to_string()
    }
}

impl Eq for DeadLetterError {}

/// Errors returned by engine operations. `Display` is the Redis error line without the `-`.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum SluiceError {
    /// The stored value is not a 64-bit integer, or the argument is not one.
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    /// The key holds a value of another type than the command works on.
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    /// A stored value could not be decoded (a built-in row written by something else).
    #[error("ERR {0}")]
    Malformed(#[from] crate::model::hash::MalformedHash),
    /// HINCRBY on a field whose value is not a 64-bit integer.
    #[error("ERR hash value is not an integer")]
    HashNotInteger,
    /// HINCRBYFLOAT by an infinite increment.
    #[error("ERR value is NaN or Infinity")]
    InfiniteIncrement,
    /// HINCRBYFLOAT on a field whose value is not a float.
    #[error("ERR hash value is not a float")]
    HashNotFloat,
    /// INCRBY/DECRBY result would not fit in 64 bits.
    #[error("ERR increment or decrement would overflow")]
    Overflow,
    /// The stored value or the increment is not a float.
    #[error("ERR value is not a valid float")]
    NotFloat,
    /// INCRBYFLOAT result would be NaN or infinite.
    #[error("ERR increment would produce NaN or Infinity")]
    NanOrInfinity,
    /// ZADD INCR / ZINCRBY would make a score NaN (`+inf` plus `-inf`); nothing was changed.
    #[error("ERR resulting score is not a number (NaN)")]
    NanScore,
    /// SETRANGE/APPEND would make the string larger than allowed.
    #[error("ERR string exceeds maximum allowed size (proto-max-bulk-len)")]
    TooLarge,
    /// The write-back buffer stayed full for the whole backpressure timeout; nothing was written.
    #[error("BUSY write-back buffer full (keyspace {0})")]
    BufferFull(String),
    /// The database refused or failed the write; under write-through nothing was acknowledged
    /// and the cached copy was removed.
    #[error("ERR store failed for keyspace '{keyspace}': {error}")]
    Store {
        /// The keyspace whose store failed.
        keyspace: String,
        /// The backend's error.
        error: StoreError,
    },
    /// The journal could not make the write durable; nothing was acknowledged.
    #[error("ERR journal failed: {0}")]
    Journal(String),
    /// A value or key the mapped column cannot hold, or a request the keyspace refuses.
    #[error("ERR {0}")]
    Refused(String),
    /// No keyspace has this name.
    #[error("ERR no keyspace named '{0}'")]
    NoSuchKeyspace(String),
    /// The dead-letter registry could not be read or written; the letters it holds are
    /// unchanged.
    #[error("ERR {0}")]
    DeadLetterIo(#[source] Arc<DeadLetterError>),
    /// A transaction needed a key another transaction holds; it is run again from the start
    /// (the server never shows this to a client).
    #[error("ERR a key of the transaction is held by another transaction; run it again")]
    Contended,
    /// The database refused a write of a transaction: nothing of the transaction was applied,
    /// in the database or the cache.
    #[error("ERR transaction not applied: the database refused the write of key '{key}' (keyspace '{keyspace}'): {error}; nothing of the transaction was applied")]
    TransactionRefused {
        /// The keyspace of the refused write.
        keyspace: String,
        /// The refused key, as text (empty when the database did not say which).
        key: String,
        /// The database's error.
        error: StoreError,
    },
    /// A transaction's write-through and invalidate writes were committed, but its
    /// write-back writes could not be journaled, so they were not applied.
    #[error("ERR transaction partly applied: its write-through and invalidate writes were committed, but its write-back writes could not be journaled ({0}) and were not applied")]
    CommittedJournalFailed(String),
    /// The engine is shutting down and accepts no more writes.
    #[error("ERR Sluice is shutting down")]
    ShuttingDown,
    /// A key is held by a script that has run past its busy threshold: the operation gave up
    /// instead of waiting for it, and did nothing (Redis's reply while a script runs long).
    #[error(
        "BUSY Redis is busy running a script. You can only call {} or SHUTDOWN NOSAVE.",
        .0.kill_command()
    )]
    Busy(ScriptKind),
}

/// The kind of script holding keys long enough for [`SluiceError::Busy`]; it names the
/// command that stops it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptKind {
    /// A script run by EVAL or EVALSHA.
    Eval,
    /// A function run by FCALL.
    Function,
}

impl ScriptKind {
    /// The command that stops a script of this kind.
    pub fn kill_command(self) -> &'static str {
        match self {
            ScriptKind::Eval => "SCRIPT KILL",
            ScriptKind::Function => "FUNCTION KILL",
        }
    }
}

impl From<DeadLetterError> for SluiceError {
    fn from(e: DeadLetterError) -> Self {
        SluiceError::DeadLetterIo(Arc::new(e))
    }
}

impl SluiceError {
    /// Wraps a store error for the named keyspace.
    pub fn store(keyspace: &str, error: StoreError) -> Self {
        SluiceError::Store {
            keyspace: keyspace.to_string(),
            error,
        }
    }
}

/// A configuration that cannot be used. Each names the field and says what to do.
///
/// The engine reports `Invalid`; `Read` and `Parse` are for the front end that reads the
/// configuration file (the engine reads none), so every config error reads alike.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read config file {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        error: String,
    },
    /// TOML syntax, an unknown field, or a value of the wrong shape.
    #[error("invalid config: {0}")]
    Parse(String),
    /// A field whose value cannot be used.
    #[error("invalid config: {field}: {message}")]
    Invalid {
        /// Where, e.g. `keyspace[1] "product_price".value_column`.
        field: String,
        /// What is wrong and what to do.
        message: String,
    },
}

impl ConfigError {
    /// A field-level error.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Why `Sluice::open` failed.
#[derive(Debug, Error)]
pub enum OpenError {
    /// The configuration is invalid, alone or against the database.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be opened or inspected.
    #[error("cannot open store: {0}")]
    Store(StoreError),
    /// The journal could not be opened or replayed.
    #[error("cannot open journal: {0}")]
    Journal(#[from] JournalError),
    /// The data dir could not be created.
    #[error("cannot create data dir {}: {source}; set [server] data_dir or --data-dir to a writable directory", path.display())]
    Io {
        /// The data dir.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The dead-letter registry in the data dir could not be opened.
    #[error("{0}")]
    DeadLetters(#[from] DeadLetterError),
    /// `[changes] enabled = true`, and the change feed could not start.
    #[error("cannot follow changes: {0}")]
    Changes(#[from] ChangeError),
}

impl From<StoreError> for OpenError {
    fn from(e: StoreError) -> Self {
        OpenError::Store(e)
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn a_store_error_shows_its_message_and_keeps_its_source() {
        let io = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "pipe closed");
        let e = StoreError::transient("PostgreSQL commit: pipe closed").with_source(io);
        assert_eq!(e.to_string(), "PostgreSQL commit: pipe closed");
        assert_eq!(
            e.source().map(|s| s.to_string()).as_deref(),
            Some("pipe closed")
        );
        assert_eq!(
            SluiceError::store("ks", e.clone()).to_string(),
            "ERR store failed for keyspace 'ks': PostgreSQL commit: pipe closed"
        );
        assert_eq!(e, StoreError::transient("PostgreSQL commit: pipe closed"));
    }

    /// The texts clients and operators saw when these were strings.
    #[test]
    fn typed_errors_keep_their_texts() {
        assert_eq!(
            SluiceError::NoSuchKeyspace("prices".into()).to_string(),
            "ERR no keyspace named 'prices'"
        );
        let busy = || {
            rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                Some("database is locked".into()),
            )
        };
        let path = PathBuf::from("/data/deadletters.db");
        let access = DeadLetterError::Access {
            path: path.clone(),
            source: busy(),
        };
        assert_eq!(access.to_string(), "database is locked");
        assert_eq!(
            SluiceError::from(access).to_string(),
            "ERR database is locked"
        );
        let open = DeadLetterError::Open {
            path: path.clone(),
            source: busy(),
        };
        assert_eq!(
            open.to_string(),
            "cannot open dead-letter file /data/deadletters.db: database is locked"
        );
        assert!(open.source().is_some());
        assert_eq!(
            OpenError::from(open).to_string(),
            "cannot open dead-letter file /data/deadletters.db: database is locked"
        );
        let prepare = DeadLetterError::Prepare {
            path,
            source: busy(),
        };
        assert_eq!(
            prepare.to_string(),
            "cannot prepare dead-letter file /data/deadletters.db: database is locked"
        );
        let io = OpenError::Io {
            path: PathBuf::from("/ro/data"),
            source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, "Permission denied"),
        };
        assert_eq!(
            io.to_string(),
            "cannot create data dir /ro/data: Permission denied; set [server] data_dir or --data-dir to a writable directory"
        );
        assert!(io.source().is_some());
    }

    #[test]
    fn each_class_answers_its_predicates() {
        let t = StoreError::transient("t");
        let c = StoreError::conflict("c");
        let p = StoreError::permanent("p");
        assert!(!t.is_permanent() && !t.is_conflict() && t.is_retryable());
        assert!(!c.is_permanent() && c.is_conflict() && c.is_retryable());
        assert!(p.is_permanent() && !p.is_conflict() && !p.is_retryable());
    }
}

/// Why a feed failed. Feeds retry on their own; the engine logs and waits.
#[derive(Debug, Error)]
pub enum ChangeError {
    /// The database refused or failed an operation of the feed.
    #[error("change capture on {backend}: {what} failed: {source}")]
    Database {
        /// The backend.
        backend: &'static str,
        /// What the feed was doing.
        what: String,
        /// The driver's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The database lacks a setting or a right the feed needs; the message says how to fix it.
    #[error("change capture cannot start: {0}")]
    Unsupported(String),
}
