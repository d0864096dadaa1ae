//! Error types. Engine errors display as the exact Redis error line (code first), so the
//! server can send them verbatim.

use std::fmt;

use thiserror::Error;

/// Whether retrying a failed store operation can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Connection lost, timeout, lock or busy: retry with backoff.
    Transient,
    /// Constraint violation, a value the column cannot hold: retrying cannot help.
    Permanent,
}

/// A failure reported by a store backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    /// Transient or permanent.
    pub class: ErrorClass,
    /// What failed, naming the key and column where known.
    pub message: String,
    /// The database itself rolled the whole transaction back because it conflicted with
    /// another one (a deadlock, a serialization failure), and said so: nothing of it was
    /// committed, and running it again may well succeed. Always transient. Never set when the
    /// outcome is unknown (a connection lost during COMMIT).
    pub conflict: bool,
}

impl StoreError {
    /// A permanent error: retrying the same entry cannot succeed.
    pub fn permanent(message: impl Into<String>) -> Self {
        StoreError {
            class: ErrorClass::Permanent,
            message: message.into(),
            conflict: false,
        }
    }

    /// A transient error: the same entry may succeed later.
    pub fn transient(message: impl Into<String>) -> Self {
        StoreError {
            class: ErrorClass::Transient,
            message: message.into(),
            conflict: false,
        }
    }

    /// A transient error for a transaction the database rolled back whole because of a
    /// conflict with another transaction (see [`StoreError::conflict`]): nothing of it was
    /// committed, and it may be run again at once.
    pub fn conflict(message: impl Into<String>) -> Self {
        StoreError {
            class: ErrorClass::Transient,
            message: message.into(),
            conflict: true,
        }
    }

    /// True for errors that retrying cannot fix.
    pub fn is_permanent(&self) -> bool {
        self.class == ErrorClass::Permanent
    }

    /// True when the database rolled the transaction back because of a conflict with another
    /// one: nothing was committed and an immediate retry may succeed.
    pub fn is_conflict(&self) -> bool {
        self.conflict
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StoreError {}

pub use crate::tiers::journal::error::JournalError;

/// Errors returned by engine operations. `Display` is the Redis error line without the `-`.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum SluiceError {
    /// The stored value is not a 64-bit integer, or the argument is not one.
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    /// INCRBY/DECRBY result would not fit in 64 bits.
    #[error("ERR increment or decrement would overflow")]
    Overflow,
    /// The stored value or the increment is not a float.
    #[error("ERR value is not a valid float")]
    NotFloat,
    /// INCRBYFLOAT result would be NaN or infinite.
    #[error("ERR increment would produce NaN or Infinity")]
    NanOrInfinity,
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
    /// The engine is shutting down and accepts no more writes.
    #[error("ERR Sluice is shutting down")]
    ShuttingDown,
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
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The file could not be read.
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
    /// A file or directory in the data dir could not be created.
    #[error("{0}")]
    Io(String),
}

impl From<StoreError> for OpenError {
    fn from(e: StoreError) -> Self {
        OpenError::Store(e)
    }
}
