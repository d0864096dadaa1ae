//! Dead letters: write-back entries the store refused permanently, parked where an operator
//! can see, retry or drop them (`SLUICE.DEADLETTERS`). Kept in `<data-dir>/deadletters.db`, so
//! they survive restarts. A dead letter is dropped automatically once a newer write to the
//! same key is stored, so retrying can never bring back an older value.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use parking_lot::Mutex;
use rusqlite::{params, Connection};

use crate::error::DeadLetterError;
use crate::model::{Kind, PartialWrite, StoreWrite};

/// One parked write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Keyspace name.
    pub keyspace: String,
    /// Redis database index.
    pub db: u8,
    /// The full Redis key.
    pub key: Bytes,
    /// The refused write.
    pub write: StoreWrite,
    /// Its sequence number.
    pub seq: u64,
    /// The store's error.
    pub error: String,
    /// Unix ms when it was parked.
    pub failed_at_ms: u64,
}

/// Which dead letters an operation applies to.
#[derive(Debug, Clone)]
pub enum DeadLetterSelector {
    /// Every dead letter.
    All,
    /// The dead letters of one key in one database.
    Key {
        /// Redis database index.
        db: u8,
        /// The full Redis key.
        key: Bytes,
    },
    /// Every dead letter of one keyspace (by name).
    Keyspace(String),
}

/// The dead-letter registry.
pub(crate) struct DeadLetters {
    /// The registry file, named by its errors.
    path: PathBuf,
    conn: Mutex<Connection>,
    /// Parked keys with their highest parked sequence number, so the flush path can tell
    /// cheaply whether a stored write supersedes one.
    parked: Mutex<HashMap<(u8, Bytes), u64>>,
}

impl DeadLetters {
    /// Opens (creating) the registry file.
    pub(crate) fn open(path: &Path) -> Result<DeadLetters, DeadLetterError> {
        let conn = Connection::open(path).map_err(|source| DeadLetterError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS dead_letters (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 keyspace TEXT NOT NULL,
                 db INTEGER NOT NULL,
                 key BLOB NOT NULL,
                 op TEXT NOT NULL,
                 value BLOB,
                 expires_at INTEGER,
                 seq INTEGER NOT NULL,
                 error TEXT NOT NULL,
                 failed_at INTEGER NOT NULL
             );
             -- Counted per keyspace on every INFO, SLUICE.KEYSPACES and status-page sample.
             CREATE INDEX IF NOT EXISTS dead_letters_by_keyspace ON dead_letters (keyspace);",
        )
        .map_err(|source| DeadLetterError::Prepare {
            path: path.to_path_buf(),
            source,
        })?;
        let access = access_error(path);
        let parked = {
            let mut st = conn
                .prepare("SELECT db, key, MAX(seq) FROM dead_letters GROUP BY db, key")
                .map_err(&access)?;
            let rows = st
                .query_map([], |r| {
                    Ok((
                        (
                            r.get::<_, i64>(0)? as u8,
                            Bytes::from(r.get::<_, Vec<u8>>(1)?),
                        ),
                        r.get::<_, i64>(2)? as u64,
                    ))
                })
                .map_err(&access)?
                .collect::<Result<HashMap<_, _>, _>>()
                .map_err(&access)?;
            rows
        };
        Ok(DeadLetters {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
            parked: Mutex::new(parked),
        })
    }

    /// Parks letters durably. Errors are returned so the caller can keep the entries buffered
    /// instead of losing them.
    pub(crate) fn park(&self, letters: &[DeadLetter]) -> Result<(), DeadLetterError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction().map_err(access_error(&self.path))?;
        for l in letters {
            let (op, value, expires_at) = match &l.write {
                StoreWrite::Upsert {
                    value,
                    kind: Kind::String,
                    expires_at,
                } => ("set", Some(value.to_vec()), expires_at.map(|e| e as i64)),
                // Never parked: the engine writes a whole set as its members (a partial write).
                StoreWrite::Upsert {
                    value,
                    kind: Kind::Set,
                    expires_at,
                } => (
                    "set-set",
                    Some(value.to_vec()),
                    expires_at.map(|e| e as i64),
                ),
                StoreWrite::Upsert {
                    value,
                    kind: Kind::ZSet,
                    expires_at,
                } => (
                    "set-zset",
                    Some(value.to_vec()),
                    expires_at.map(|e| e as i64),
                ),
                StoreWrite::Upsert {
                    value,
                    kind: Kind::List,
                    expires_at,
                } => (
                    "set-list",
                    Some(value.to_vec()),
                    expires_at.map(|e| e as i64),
                ),
                StoreWrite::Upsert {
                    value,
                    kind: Kind::Stream,
                    expires_at,
                } => (
                    "set-stream",
                    Some(value.to_vec()),
                    expires_at.map(|e| e as i64),
                ),
                StoreWrite::Upsert {
                    value,
                    kind: Kind::Hash,
                    expires_at,
                } => (
                    "set-hash",
                    Some(value.to_vec()),
                    expires_at.map(|e| e as i64),
                ),
                StoreWrite::Delete => ("del", None, None),
                StoreWrite::Partial(row) if row.kind == Kind::Hash => {
                    ("fields", Some(row.to_bytes()), None)
                }
                // The kind in the op's name, so `fields` keeps its meaning for the rows older
                // versions wrote.
                StoreWrite::Partial(row) => (
                    match row.kind {
                        Kind::ZSet => "members-zset",
                        Kind::List => "members-list",
                        Kind::Stream => "members-stream",
                        _ => "members-set",
                    },
                    Some(row.to_bytes()),
                    row.expires_at.map(|e| e as i64),
                ),
            };
            tx.execute(
                "INSERT INTO dead_letters (keyspace, db, key, op, value, expires_at, seq, error, failed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    l.keyspace,
                    l.db as i64,
                    &l.key[..],
                    op,
                    value,
                    expires_at,
                    l.seq as i64,
                    l.error,
                    l.failed_at_ms as i64
                ],
            )
            .map_err(access_error(&self.path))?;
        }
        tx.commit().map_err(access_error(&self.path))?;
        let mut parked = self.parked.lock();
        for l in letters {
            let e = parked.entry((l.db, l.key.clone())).or_insert(0);
            *e = (*e).max(l.seq);
        }
        Ok(())
    }

    /// Drops the letters of a key older than a write that was just stored.
    pub(crate) fn supersede(&self, db: u8, key: &Bytes, stored_seq: u64) {
        let hit = {
            let parked = self.parked.lock();
            if parked.is_empty() {
                return;
            }
            parked.get(&(db, key.clone())).copied()
        };
        if let Some(max_seq) = hit {
            let conn = self.conn.lock();
            let _ = conn.execute(
                "DELETE FROM dead_letters WHERE db = ?1 AND key = ?2 AND seq < ?3",
                params![db as i64, &key[..], stored_seq as i64],
            );
            if max_seq < stored_seq {
                self.parked.lock().remove(&(db, key.clone()));
            }
        }
    }

    /// Letters, oldest first, optionally of one keyspace.
    pub(crate) fn list(&self, keyspace: Option<&str>) -> Result<Vec<DeadLetter>, DeadLetterError> {
        self.list_first(keyspace, None)
    }

    /// The oldest `limit` letters (all with `None`), optionally of one keyspace: a listing that
    /// reads no more of a large registry than it shows.
    pub(crate) fn list_first(
        &self,
        keyspace: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<DeadLetter>, DeadLetterError> {
        // SQLite reads a negative LIMIT as none.
        let limit = limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let conn = self.conn.lock();
        let mut st = conn
            .prepare(
                "SELECT keyspace, db, key, op, value, expires_at, seq, error, failed_at
                 FROM dead_letters WHERE ?1 IS NULL OR keyspace = ?1 ORDER BY id LIMIT ?2",
            )
            .map_err(access_error(&self.path))?;
        let rows = st
            .query_map(params![keyspace, limit], |r| {
                let op: String = r.get(3)?;
                let value = Bytes::from(r.get::<_, Option<Vec<u8>>>(4)?.unwrap_or_default());
                let expires_at = r.get::<_, Option<i64>>(5)?.map(|e| e as u64);
                let upsert = |kind| StoreWrite::Upsert {
                    value: value.clone(),
                    kind,
                    expires_at,
                };
                let write = match op.as_str() {
                    "set" => upsert(Kind::String),
                    "set-hash" => upsert(Kind::Hash),
                    "set-set" => upsert(Kind::Set),
                    "set-zset" => upsert(Kind::ZSet),
                    "set-list" => upsert(Kind::List),
                    "set-stream" => upsert(Kind::Stream),
                    "fields" | "members-set" | "members-zset" | "members-list"
                    | "members-stream" => {
                        let kind = match op.as_str() {
                            "fields" => Kind::Hash,
                            "members-set" => Kind::Set,
                            "members-list" => Kind::List,
                            "members-stream" => Kind::Stream,
                            _ => Kind::ZSet,
                        };
                        let expires_at = if op == "fields" { None } else { expires_at };
                        StoreWrite::Partial(
                            PartialWrite::from_bytes(&value, kind, expires_at).map_err(|e| {
                                rusqlite::Error::FromSqlConversionFailure(
                                    4,
                                    rusqlite::types::Type::Blob,
                                    Box::new(e),
                                )
                            })?,
                        )
                    }
                    _ => StoreWrite::Delete,
                };
                Ok(DeadLetter {
                    keyspace: r.get(0)?,
                    db: r.get::<_, i64>(1)? as u8,
                    key: Bytes::from(r.get::<_, Vec<u8>>(2)?),
                    write,
                    seq: r.get::<_, i64>(6)? as u64,
                    error: r.get(7)?,
                    failed_at_ms: r.get::<_, i64>(8)? as u64,
                })
            })
            .map_err(access_error(&self.path))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(access_error(&self.path))?;
        Ok(rows)
    }

    /// Removes and returns the selected letters.
    pub(crate) fn take(
        &self,
        selector: &DeadLetterSelector,
    ) -> Result<Vec<DeadLetter>, DeadLetterError> {
        let all = self.list(None)?;
        let chosen: Vec<DeadLetter> = all
            .into_iter()
            .filter(|l| match selector {
                DeadLetterSelector::All => true,
                DeadLetterSelector::Key { db, key } => l.db == *db && l.key == *key,
                DeadLetterSelector::Keyspace(name) => l.keyspace == *name,
            })
            .collect();
        let conn = self.conn.lock();
        match selector {
            DeadLetterSelector::All => conn.execute("DELETE FROM dead_letters", []),
            DeadLetterSelector::Key { db, key } => conn.execute(
                "DELETE FROM dead_letters WHERE db = ?1 AND key = ?2",
                params![*db as i64, &key[..]],
            ),
            DeadLetterSelector::Keyspace(name) => conn.execute(
                "DELETE FROM dead_letters WHERE keyspace = ?1",
                params![name],
            ),
        }
        .map_err(access_error(&self.path))?;
        let mut parked = self.parked.lock();
        match selector {
            DeadLetterSelector::All => parked.clear(),
            DeadLetterSelector::Key { db, key } => {
                parked.remove(&(*db, key.clone()));
            }
            DeadLetterSelector::Keyspace(_) => {
                for l in &chosen {
                    parked.remove(&(l.db, l.key.clone()));
                }
            }
        }
        Ok(chosen)
    }

    /// How many letters a keyspace has parked.
    pub(crate) fn count(&self, keyspace: &str) -> u64 {
        let conn = self.conn.lock();
        conn.query_row(
            "SELECT COUNT(*) FROM dead_letters WHERE keyspace = ?1",
            params![keyspace],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n as u64)
        .unwrap_or(0)
    }
}

/// The error for a failed read or write of the registry at `path`.
fn access_error(path: &Path) -> impl Fn(rusqlite::Error) -> DeadLetterError + '_ {
    move |source| DeadLetterError::Access {
        path: path.to_path_buf(),
        source,
    }
}
