//! Key operations: DEL, expiry, RENAME, KEYS and DBSIZE, FLUSHDB and FLUSHALL.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::access::Access;
use super::types::{ExpireCondition, KeyTtl, Mutation, Stored};
use crate::config::Durability;
use crate::error::SluiceError;
use crate::model::{DbKey, Entry, Kind, StoreWrite};
use crate::tiers::journal::{ClearScope, JournalRecord};

impl Access<'_> {
    /// Deletes `key`; true if it existed.
    pub async fn del(&mut self, db: u8, key: &Bytes) -> Result<bool, SluiceError> {
        self.update(db, key, |cur| {
            Ok(match cur {
                Some(_) => (Mutation::Delete, true),
                None => (Mutation::Keep, false),
            })
        })
        .await
    }

    /// Sets the expiry of `key` to `at_ms` (Unix ms) under a Redis 7 condition; an expiry in
    /// the past deletes the key. On a mapped keyspace only the cached copy is bounded.
    pub async fn expire(
        &mut self,
        db: u8,
        key: &Bytes,
        at_ms: i64,
        condition: ExpireCondition,
    ) -> Result<bool, SluiceError> {
        let now = self.now_ms() as i64;
        if !self.engine().keyspace_of(db, key).is_builtin() {
            return self.expire_cached_copy(db, key, at_ms, now).await;
        }
        self.update(db, key, |cur| {
            let Some(entry) = cur else {
                return Ok((Mutation::Keep, false));
            };
            let current = entry.expires_at.map(|e| e as i64);
            if !condition.allows(current, at_ms) {
                return Ok((Mutation::Keep, false));
            }
            if at_ms <= now {
                return Ok((Mutation::Delete, true));
            }
            Ok((
                Mutation::Put {
                    value: entry.value,
                    kind: entry.kind,
                    expires_at: Some(at_ms as u64),
                },
                true,
            ))
        })
        .await
    }

    /// EXPIRE on a mapped key: bounds the cached copy only (the row never expires). Not a
    /// write: inside a transaction it takes effect at once.
    async fn expire_cached_copy(
        &mut self,
        db: u8,
        key: &Bytes,
        at_ms: i64,
        now: i64,
    ) -> Result<bool, SluiceError> {
        let engine = self.engine();
        let route = engine.route(db, key.clone());
        let _guard = self.lock(&route).await?;
        let op_time = self.op_time();
        let Some(entry) = self.read(&route, &op_time).await? else {
            return Ok(false);
        };
        engine.locks.bump(route.stripe);
        if at_ms <= now {
            let _ = engine.cache.remove(&route.key).await;
        } else {
            let copy = crate::tiers::cache::CachedValue {
                value: entry.value,
                kind: entry.kind,
                expires_at: None,
                cache_until: Some(at_ms as u64),
            };
            let _ = engine.cache.put(route.key.clone(), copy).await;
        }
        Ok(true)
    }

    /// The remaining lifetime of `key`.
    pub async fn ttl(&mut self, db: u8, key: &Bytes) -> Result<KeyTtl, SluiceError> {
        Ok(ttl_of(self.get_entry(db, key.clone()).await?))
    }

    /// [`Access::ttl`] without counting a keyspace hit or miss: for a server's own looks at
    /// its keys (INFO's count of keys with an expiry), which are not client reads.
    pub async fn peek_ttl(&mut self, db: u8, key: &Bytes) -> Result<KeyTtl, SluiceError> {
        let route = self.route(db, key.clone());
        let now = self.op_time();
        Ok(ttl_of(self.read_uncounted(&route, &now).await?))
    }

    /// Removes the expiry of `key`; true if it had one.
    pub async fn persist(&mut self, db: u8, key: &Bytes) -> Result<bool, SluiceError> {
        self.update(db, key, |cur| {
            Ok(match cur {
                Some(Entry {
                    value,
                    kind,
                    expires_at: Some(_),
                }) => (
                    Mutation::Put {
                        value,
                        kind,
                        expires_at: None,
                    },
                    true,
                ),
                _ => (Mutation::Keep, false),
            })
        })
        .await
    }

    /// Reads the keys `sources` and writes `dst` from what they hold, all as one transaction
    /// (SINTERSTORE, BITOP): `f` sees each source's entry (`None`: absent) and returns the new
    /// value of `dst`, written without expiry, or `None` to delete `dst`. Reports what `dst`
    /// underwent besides `f`'s own result.
    pub async fn store_from<T>(
        &mut self,
        db: u8,
        dst: &Bytes,
        sources: &[Bytes],
        f: impl FnOnce(Vec<Option<Entry>>) -> Result<(Option<(Bytes, Kind)>, T), SluiceError>,
    ) -> Result<(T, Stored), SluiceError> {
        if self.in_transaction() {
            return self.stage_store_from(db, dst, sources, f).await;
        }
        let engine = self.engine();
        let mut txn = engine
            .begin_txn(sources.iter().chain([dst]).map(|k| (db, &k[..])))
            .await?;
        let staged = Access::in_txn(engine, &mut txn)
            .stage_store_from(db, dst, sources, f)
            .await;
        engine.finish_txn(txn, staged).await
    }

    async fn stage_store_from<T>(
        &mut self,
        db: u8,
        dst: &Bytes,
        sources: &[Bytes],
        f: impl FnOnce(Vec<Option<Entry>>) -> Result<(Option<(Bytes, Kind)>, T), SluiceError>,
    ) -> Result<(T, Stored), SluiceError> {
        let now = self.op_time();
        let mut entries = Vec::with_capacity(sources.len());
        for key in sources {
            let route = self.route(db, key.clone());
            entries.push(self.read(&route, &now).await?);
        }
        let (value, result) = f(entries)?;
        let route = self.route(db, dst.clone());
        let stored = match value {
            Some((value, kind)) => {
                let write = StoreWrite::Upsert {
                    value,
                    kind,
                    expires_at: None,
                };
                self.write(&route, write, &now).await?;
                Stored::Written
            }
            None if self.read_uncounted(&route, &now).await?.is_some() => {
                self.write(&route, StoreWrite::Delete, &now).await?;
                Stored::Deleted
            }
            None => Stored::Untouched,
        };
        Ok((result, stored))
    }

    /// COPY: `src` of database `db` copied to `dst` of database `dst_db`, with its type and
    /// expiry; false if `src` does not exist, or `dst` does and `replace` is not set. All or
    /// none: the reads and the write are one transaction.
    pub async fn copy(
        &mut self,
        db: u8,
        src: &Bytes,
        dst_db: u8,
        dst: &Bytes,
        replace: bool,
    ) -> Result<bool, SluiceError> {
        if self.in_transaction() {
            return self.stage_copy(db, src, dst_db, dst, replace).await;
        }
        let engine = self.engine();
        let mut txn = engine
            .begin_txn([(db, &src[..]), (dst_db, &dst[..])])
            .await?;
        let staged = Access::in_txn(engine, &mut txn)
            .stage_copy(db, src, dst_db, dst, replace)
            .await;
        engine.finish_txn(txn, staged).await
    }

    async fn stage_copy(
        &mut self,
        db: u8,
        src: &Bytes,
        dst_db: u8,
        dst: &Bytes,
        replace: bool,
    ) -> Result<bool, SluiceError> {
        let now = self.op_time();
        let src_route = self.route(db, src.clone());
        let Some(entry) = self.read(&src_route, &now).await? else {
            return Ok(false);
        };
        let dst_route = self.route(dst_db, dst.clone());
        if !replace && self.read_uncounted(&dst_route, &now).await?.is_some() {
            return Ok(false);
        }
        let copied = StoreWrite::Upsert {
            value: entry.value,
            kind: entry.kind,
            expires_at: entry.expires_at,
        };
        self.write(&dst_route, copied, &now).await?;
        Ok(true)
    }

    /// RENAME / RENAMENX: `None` if `src` does not exist; `Some(false)` if `only_if_absent`
    /// and `dst` exists. The value keeps its type and expiry. All or none: the new key and the
    /// removal of the old one are one transaction.
    pub async fn rename(
        &mut self,
        db: u8,
        src: &Bytes,
        dst: &Bytes,
        only_if_absent: bool,
    ) -> Result<Option<bool>, SluiceError> {
        if self.in_transaction() {
            return self.stage_rename(db, src, dst, only_if_absent).await;
        }
        let engine = self.engine();
        let mut txn = engine.begin_txn([(db, &src[..]), (db, &dst[..])]).await?;
        let staged = Access::in_txn(engine, &mut txn)
            .stage_rename(db, src, dst, only_if_absent)
            .await;
        engine.finish_txn(txn, staged).await
    }

    /// RENAME inside a transaction.
    async fn stage_rename(
        &mut self,
        db: u8,
        src: &Bytes,
        dst: &Bytes,
        only_if_absent: bool,
    ) -> Result<Option<bool>, SluiceError> {
        let now = self.op_time();
        let src_route = self.route(db, src.clone());
        let Some(entry) = self.read(&src_route, &now).await? else {
            return Ok(None);
        };
        if src == dst {
            return Ok(Some(!only_if_absent));
        }
        let dst_route = self.route(db, dst.clone());
        if only_if_absent && self.read(&dst_route, &now).await?.is_some() {
            return Ok(Some(false));
        }
        let moved = StoreWrite::Upsert {
            value: entry.value,
            kind: entry.kind,
            expires_at: entry.expires_at,
        };
        self.write(&dst_route, moved, &now).await?;
        self.write(&src_route, StoreWrite::Delete, &now).await?;
        Ok(Some(true))
    }

    /// Every live key of `db`, sorted: buffered writes, cached copies and table rows alike;
    /// keys of mapped keyspaces are rebuilt from their templates.
    /// Inside a transaction, its own writes count.
    pub async fn keys(&mut self, db: u8) -> Result<Vec<Bytes>, SluiceError> {
        let engine = self.engine();
        let now = self.now_ms();
        let mut keys = BTreeSet::new();
        for ks in &engine.keyspaces {
            if !ks.is_builtin() && db != 0 {
                continue;
            }
            // Buffer first, then the store: an entry flushed in between is in the store.
            let buffered = ks
                .buffer
                .as_ref()
                .map(|b| b.snapshot(db))
                .unwrap_or_default();
            let stored = engine
                .store
                .scan_keys(&ks.target(db), now)
                .await
                .map_err(|e| SluiceError::store(&ks.name, e))?;
            for capture in stored {
                let key = match &ks.template {
                    Some(t) => Bytes::from(t.render(&capture)),
                    None => capture,
                };
                if engine.keyspace_of(db, &key).id == ks.id {
                    keys.insert(key);
                }
            }
            for (key, write) in buffered {
                match write.visible() {
                    Some((_, _, expires_at)) if expires_at.is_none_or(|e| e >= now) => {
                        keys.insert(key);
                    }
                    _ => {
                        keys.remove(&key);
                    }
                }
            }
        }
        if let Some(txn) = self.txn() {
            for (key, exists) in txn.staged_in(db) {
                if exists {
                    keys.insert(key.clone());
                } else {
                    keys.remove(key);
                }
            }
        }
        Ok(keys.into_iter().collect())
    }

    /// The number of live keys in `db`.
    pub async fn dbsize(&mut self, db: u8) -> Result<u64, SluiceError> {
        Ok(self.keys(db).await?.len() as u64)
    }

    /// FLUSHDB (`Some(db)`) or FLUSHALL (`None`). Refused when it would empty a mapped table
    /// whose keyspace does not set `allow_flush = true`.
    ///
    /// Not inside a transaction: a clear of whole databases cannot be staged with the other
    /// writes of one, so MULTI/EXEC and scripts get an error for it.
    pub async fn flush_db(&mut self, db: Option<u8>) -> Result<(), SluiceError> {
        if self.in_transaction() {
            return Err(SluiceError::Refused(
                "FLUSHDB and FLUSHALL cannot run inside MULTI/EXEC or a script in Sluice; run them on their own".into(),
            ));
        }
        let engine = self.engine();
        let touches_mapped = db.is_none_or(|d| d == 0);
        if touches_mapped {
            if let Some(ks) = engine
                .keyspaces
                .iter()
                .find(|k| !k.is_builtin() && !k.config.allow_flush)
            {
                return Err(SluiceError::Refused(format!(
                    "flush refused: keyspace '{}' maps table '{}'; set allow_flush = true on it to let FLUSHDB/FLUSHALL delete its rows",
                    ks.name,
                    ks.table_name().unwrap_or("")
                )));
            }
        }
        // The clear must be journaled, or a restart would replay the writes it removed:
        // refuse before anything is cleared while the journal is out of service.
        if engine.keyspaces.iter().any(|k| k.buffer.is_some())
            && engine.journal.durability() != Durability::None
        {
            if let Some(e) = engine.journal.health().error() {
                return Err(SluiceError::Journal(e.to_string()));
            }
        }
        let dbs: Vec<u8> = match db {
            Some(d) => vec![d],
            None => (0..16).collect(),
        };
        // WATCHed keys that exist now are changed by the flush (Redis's
        // touchAllWatchedKeysInDb): find them before they are gone.
        let mut watched_alive: Vec<DbKey> = Vec::new();
        for key in engine.watches.watched_in(db) {
            let route = engine.route(key.db, key.key.clone());
            if engine.read(&route).await?.is_some() {
                watched_alive.push(key);
            }
        }
        let targets: Vec<&crate::engine::Keyspace> = engine
            .keyspaces
            .iter()
            .filter(|ks| ks.is_builtin() || touches_mapped)
            .map(|ks| &**ks)
            .collect();
        // No write in progress while the clear runs: a write-back write holds its key's lock
        // from its journal append (which numbers it before the clear record) to its buffer
        // insert and cache install. One that got its number before the clear but reached the
        // buffer or the cache after it would show until a crash, then be voided by the clear
        // record on replay: an acknowledged write lost. A write-through write committed
        // before the store's clear but installed after the cache's would leave a copy of a
        // row that no longer exists. Then no flush in progress either (a batch taken before
        // the clear would store its rows again after it). Key locks first, then flush locks
        // in keyspace order: the order the journal reload takes them in. A busy script's
        // stripe makes it `BUSY`, as in Redis. Every write waits while the clear runs (its
        // deletes and its record's fsync): FLUSHDB is rare, and never half-applied.
        let _writers = engine
            .locks
            .lock_all_unless_busy()
            .await
            .map_err(SluiceError::Busy)?;
        let mut flushing = Vec::with_capacity(targets.len());
        for ks in &targets {
            flushing.push(ks.flush_lock.lock().await);
        }
        let mut outcome = Ok(());
        for ks in targets {
            let clearing = ks
                .buffer
                .as_ref()
                .map(|buffer| buffer.begin_clear(engine.seq.load(Ordering::SeqCst)));
            let cleared = clear_keyspace(engine, ks, db, &dbs).await;
            // The buffered writes go only once the clear is journaled: if the store's clear
            // or the record failed, a replay would bring them back, so they stay (visible,
            // and flushed in time) as the replay would have them.
            if let (Some(buffer), Ok(_)) = (&ks.buffer, &cleared) {
                buffer.clear_db(if ks.is_builtin() { db } else { None });
            }
            if let Some(clearing) = clearing {
                clearing.end(cleared.as_ref().ok().copied().flatten());
            }
            if let Err(e) = cleared {
                outcome = Err(e);
                break;
            }
        }
        // Before the cache is cleared: a read-through that read a row before the store's
        // clear must find its version moved when it installs, even after the cache's clear.
        engine.locks.bump_all();
        // Even after a failed clear: the keyspaces cleared before it must not keep cached
        // copies of rows that are gone, and the rest only lose theirs to a read-through.
        let _ = engine.cache.clear(db).await;
        for key in &watched_alive {
            engine.watches.touch(key);
        }
        outcome
    }
}

/// Empties a keyspace's table (its rows in `dbs`, or the whole mapped table) and journals the
/// clear: the clear record's sequence number, if one was journaled.
async fn clear_keyspace(
    engine: &crate::engine::Engine,
    ks: &crate::engine::Keyspace,
    db: Option<u8>,
    dbs: &[u8],
) -> Result<Option<u64>, SluiceError> {
    if ks.is_builtin() {
        for d in dbs {
            engine
                .store
                .clear(&ks.target(*d))
                .await
                .map_err(|e| SluiceError::store(&ks.name, e))?;
        }
    } else {
        engine
            .store
            .clear(&ks.target(0))
            .await
            .map_err(|e| SluiceError::store(&ks.name, e))?;
    }
    if ks.buffer.is_none() || engine.journal.durability() == Durability::None {
        return Ok(None);
    }
    // Older journal records of this keyspace must not come back on replay.
    let seq = engine.seq.fetch_add(1, Ordering::SeqCst) + 1;
    engine
        .journal
        .append(JournalRecord::clear(
            seq,
            ks.name.clone(),
            db.map_or(ClearScope::AllDbs, ClearScope::Db),
        ))
        .await
        .map_err(|e| SluiceError::Journal(e.to_string()))?;
    Ok(Some(seq))
}

/// The lifetime an entry (or its absence) shows.
fn ttl_of(entry: Option<Entry>) -> KeyTtl {
    match entry {
        None => KeyTtl::Missing,
        Some(Entry {
            expires_at: None, ..
        }) => KeyTtl::Persistent,
        Some(Entry {
            expires_at: Some(at),
            ..
        }) => KeyTtl::ExpiresAt(at),
    }
}
