//! String operations: GET, SET and its variants, counters, MSET.

use bytes::Bytes;

use super::access::{Access, Later};
use super::types::{Mutation, SetCondition, SetExpiry, SetOptions, SetOutcome};
use crate::engine::Route;
use crate::error::SluiceError;
use crate::model::{Entry, Kind, PartialWrite, StoreWrite};
use crate::numeric::{self, FloatIncrError};

impl<'a> Access<'a> {
    /// The value of `key`, seeing every acknowledged write (buffered ones included).
    /// `WRONGTYPE` if the key holds another type.
    pub async fn get(&mut self, db: u8, key: Bytes) -> Result<Option<Bytes>, SluiceError> {
        Ok(string_of(self.get_entry(db, key).await?)?.map(|e| e.value))
    }

    /// [`Access::get`], answered at once when no wait is needed (the key in the write-back
    /// buffer or an in-process cache, outside a transaction): no future is built for it.
    /// Otherwise `Err` holds the rest of the read, to await.
    pub fn get_now(
        mut self,
        db: u8,
        key: Bytes,
    ) -> Result<Result<Option<Bytes>, SluiceError>, Later<'a, Option<Bytes>>> {
        let route = self.route(db, key);
        if !self.in_transaction() {
            if let Some(entry) = self.engine().read_now(&route, &self.op_time()) {
                return Ok(string_of(entry).map(|e| e.map(|e| e.value)));
            }
        }
        Err(Box::pin(async move {
            let now = self.op_time();
            Ok(string_of(self.read(&route, &now).await?)?.map(|e| e.value))
        }))
    }

    /// The entries of several keys, as at one instant (MGET is atomic in Redis): no write and no
    /// transaction lands between the reads. Keys are moved out of `keys`.
    pub async fn get_entries(
        &mut self,
        db: u8,
        keys: &mut [Bytes],
    ) -> Result<Vec<Option<Entry>>, SluiceError> {
        let mut out = Vec::with_capacity(keys.len());
        if keys.len() < 2 || self.in_transaction() {
            // One key is read at one instant anyway; a transaction holds what it reads.
            for key in keys.iter_mut() {
                out.push(self.get_entry(db, std::mem::take(key)).await?);
            }
            return Ok(out);
        }
        let engine = self.engine();
        let routes: Vec<_> = keys
            .iter_mut()
            .map(|k| engine.route(db, std::mem::take(k)))
            .collect();
        let now = self.op_time();
        // Optimistic: read with no lock, then check that no stripe's version moved (an even
        // version that stayed put means no write and no transaction touched those keys).
        let before: Vec<u64> = routes
            .iter()
            .map(|r| engine.locks.version(r.stripe))
            .collect();
        if before.iter().all(|v| v & 1 == 0) {
            for route in &routes {
                out.push(engine.read_at(route, &now).await?);
            }
            if routes
                .iter()
                .zip(&before)
                .all(|(r, v)| engine.locks.version(r.stripe) == *v)
            {
                return Ok(out);
            }
            out.clear();
        }
        // Writers got in between: read again holding every key's lock.
        let _guards = self
            .lock_many(routes.iter().map(|r| r.stripe).collect())
            .await?;
        for route in &routes {
            out.push(engine.read_at(route, &now).await?);
        }
        Ok(out)
    }

    /// The value, type and expiry of `key`.
    pub async fn get_entry(&mut self, db: u8, key: Bytes) -> Result<Option<Entry>, SluiceError> {
        let route = self.route(db, key);
        let now = self.op_time();
        self.read(&route, &now).await
    }

    /// Atomic read-modify-write of one key: `f` sees the current entry and decides.
    pub async fn update<T>(
        &mut self,
        db: u8,
        key: &Bytes,
        f: impl FnOnce(Option<Entry>) -> Result<(Mutation, T), SluiceError>,
    ) -> Result<T, SluiceError> {
        self.update_owned(db, key.clone(), f).await
    }

    /// [`Access::update`] for a string command: `WRONGTYPE`, and nothing written, if the key
    /// holds another type; `f` sees only a string or nothing.
    pub async fn update_string<T>(
        &mut self,
        db: u8,
        key: &Bytes,
        f: impl FnOnce(Option<Entry>) -> Result<(Mutation, T), SluiceError>,
    ) -> Result<T, SluiceError> {
        self.update_owned(db, key.clone(), |cur| f(string_of(cur)?))
            .await
    }

    /// [`Access::update`] taking the key by value, for callers that own it.
    pub(crate) async fn update_owned<T>(
        &mut self,
        db: u8,
        key: Bytes,
        f: impl FnOnce(Option<Entry>) -> Result<(Mutation, T), SluiceError>,
    ) -> Result<T, SluiceError> {
        let route = self.route(db, key);
        self.update_routed(route, true, f).await
    }

    /// Atomic read-modify-write of the key of `route`; with `needs_read` false, `f` sees
    /// nothing (the key is not read).
    async fn update_routed<T>(
        &mut self,
        route: Route<'a>,
        needs_read: bool,
        f: impl FnOnce(Option<Entry>) -> Result<(Mutation, T), SluiceError>,
    ) -> Result<T, SluiceError> {
        self.write_routed(route, needs_read, |current| {
            // A value stored by member (a set) that a command keeps as it is (EXPIRE,
            // PERSIST): only the key's expiry is written, not every member again.
            let kept = current
                .as_ref()
                .filter(|e| e.kind.stored_by_member())
                .map(|e| (e.value.clone(), e.kind));
            let (mutation, result) = f(current)?;
            let write = match (Option::<StoreWrite>::from(mutation), kept) {
                (
                    Some(StoreWrite::Upsert {
                        value,
                        kind,
                        expires_at,
                    }),
                    Some((before, kind_before)),
                ) if kind == kind_before && value == before => {
                    Some(StoreWrite::Partial(PartialWrite {
                        kind,
                        image: value,
                        changed: Vec::new(),
                        replace: false,
                        expires_at,
                    }))
                }
                (write, _) => write,
            };
            Ok((write, result))
        })
        .await
    }

    /// Atomic read-modify-write of the key of `route`, `f` deciding the write itself (none:
    /// nothing written); with `needs_read` false, `f` sees nothing (the key is not read).
    pub(crate) async fn write_routed<T>(
        &mut self,
        route: Route<'a>,
        needs_read: bool,
        f: impl FnOnce(Option<Entry>) -> Result<(Option<StoreWrite>, T), SluiceError>,
    ) -> Result<T, SluiceError> {
        let guard = self.lock(&route).await?;
        let now = self.op_time();
        let current = if needs_read {
            self.read_uncounted(&route, &now).await?
        } else {
            None
        };
        let (write, result) = f(current)?;
        let applied = match write {
            Some(write) => self.write(&route, write, &now).await?,
            None => None,
        };
        drop(guard);
        self.durable(applied).await?;
        Ok(result)
    }

    /// [`Access::update_routed`] run to its end at once when nothing needs a wait (see
    /// [`Access::runs_now`]: the key's lock free, its value in the buffer or an in-process
    /// cache, room in the write-back buffer); otherwise `Err` holds the rest, to await.
    fn update_now<T: Send + 'a>(
        mut self,
        db: u8,
        key: Bytes,
        needs_read: bool,
        f: impl FnOnce(Option<Entry>) -> Result<(Mutation, T), SluiceError> + Send + 'a,
    ) -> Result<Result<T, SluiceError>, Later<'a, T>> {
        let route = self.route(db, key);
        // The key's lock and its current entry, if both are to be had now.
        let ready = self
            .runs_now()
            .then(|| self.lock_now(&route))
            .flatten()
            .and_then(|guard| {
                let now = self.op_time();
                let current = if needs_read {
                    self.engine().read_for_write_now(&route, &now)?
                } else {
                    None
                };
                Some((guard, now, current))
            });
        let Some((guard, now, current)) = ready else {
            // Nothing done yet (the lock, if taken, is released): the whole operation waits.
            return Err(Box::pin(async move {
                self.update_routed(route, needs_read, f).await
            }));
        };
        let (mutation, result) = match f(current) {
            Ok(decided) => decided,
            Err(e) => return Ok(Err(e)),
        };
        let Some(write) = Option::<StoreWrite>::from(mutation) else {
            return Ok(Ok(result));
        };
        match self.engine().apply_now(&route, write, &now) {
            Ok(applied) => {
                drop(guard);
                Ok(applied
                    .and_then(|applied| self.durable_now(applied))
                    .map(|()| result))
            }
            // Checked but not applied (a full buffer, a remote cache, another policy): it is
            // applied with the lock still held.
            Err(prepared) => Err(Box::pin(async move {
                let applied = self.engine().apply_prepared(&route, prepared, &now).await?;
                drop(guard);
                self.durable(applied).await?;
                Ok(result)
            })),
        }
    }

    /// SET with NX / XX, an expiry, KEEPTTL and GET.
    pub async fn set(
        &mut self,
        db: u8,
        key: Bytes,
        value: Bytes,
        opts: SetOptions,
    ) -> Result<SetOutcome, SluiceError> {
        let route = self.route(db, key);
        self.update_routed(route, set_reads(&opts), set_decision(value, opts))
            .await
    }

    /// [`Access::set`], run to its end at once when nothing needs a wait (see
    /// [`Access::get_now`]); otherwise `Err` holds the rest, to await.
    pub fn set_now(
        self,
        db: u8,
        key: Bytes,
        value: Bytes,
        opts: SetOptions,
    ) -> Result<Result<SetOutcome, SluiceError>, Later<'a, SetOutcome>> {
        self.update_now(db, key, set_reads(&opts), set_decision(value, opts))
    }

    /// INCRBY / DECRBY: atomic in the engine; under write-back, repeated increments of one key
    /// coalesce into one row write per flush.
    pub async fn incr_by(&mut self, db: u8, key: Bytes, delta: i64) -> Result<i64, SluiceError> {
        self.update_owned(db, key, incr_decision(delta)).await
    }

    /// [`Access::incr_by`], run to its end at once when nothing needs a wait (see
    /// [`Access::get_now`]); otherwise `Err` holds the rest, to await.
    pub fn incr_by_now(
        self,
        db: u8,
        key: Bytes,
        delta: i64,
    ) -> Result<Result<i64, SluiceError>, Later<'a, i64>> {
        self.update_now(db, key, true, incr_decision(delta))
    }

    /// INCRBYFLOAT, computed and printed exactly as Redis does.
    pub async fn incr_by_float(
        &mut self,
        db: u8,
        key: &Bytes,
        increment: &[u8],
    ) -> Result<Bytes, SluiceError> {
        self.update(db, key, |cur| {
            let cur = string_of(cur)?;
            let next = numeric::incr_by_float(cur.as_ref().map(|e| &e.value[..]), increment)
                .map_err(|e| match e {
                    FloatIncrError::NotFloat => SluiceError::NotFloat,
                    FloatIncrError::NanOrInfinity => SluiceError::NanOrInfinity,
                })?;
            let next = Bytes::from(next);
            Ok((
                Mutation::Put {
                    value: next.clone(),
                    kind: Kind::String,
                    expires_at: cur.and_then(|e| e.expires_at),
                },
                next,
            ))
        })
        .await
    }

    /// Sets several keys, all or none (one transaction: in the database, the journal and the
    /// cache; no reader sees some of them set and not the others).
    pub async fn mset(&mut self, db: u8, pairs: Vec<(Bytes, Bytes)>) -> Result<(), SluiceError> {
        self.set_all(db, pairs, false).await.map(drop)
    }

    /// Sets several keys only if none exists; true if they were set. All or none, as
    /// [`Access::mset`].
    pub async fn msetnx(
        &mut self,
        db: u8,
        pairs: Vec<(Bytes, Bytes)>,
    ) -> Result<bool, SluiceError> {
        self.set_all(db, pairs, true).await
    }

    /// MSET / MSETNX: inside the enclosing transaction, or in one of their own.
    async fn set_all(
        &mut self,
        db: u8,
        pairs: Vec<(Bytes, Bytes)>,
        only_if_none_exists: bool,
    ) -> Result<bool, SluiceError> {
        if self.in_transaction() {
            return self.stage_set_all(db, pairs, only_if_none_exists).await;
        }
        let engine = self.engine();
        let mut txn = engine
            .begin_txn(pairs.iter().map(|(k, _)| (db, &k[..])))
            .await?;
        let staged = Access::in_txn(engine, &mut txn)
            .stage_set_all(db, pairs, only_if_none_exists)
            .await;
        engine.finish_txn(txn, staged).await
    }

    /// MSET / MSETNX inside a transaction: optionally check that none exists, then write them
    /// all.
    async fn stage_set_all(
        &mut self,
        db: u8,
        pairs: Vec<(Bytes, Bytes)>,
        only_if_none_exists: bool,
    ) -> Result<bool, SluiceError> {
        let now = self.op_time();
        if only_if_none_exists {
            for (key, _) in &pairs {
                let route = self.route(db, key.clone());
                if self.read(&route, &now).await?.is_some() {
                    return Ok(false);
                }
            }
        }
        for (key, value) in pairs {
            let route = self.route(db, key);
            self.write(&route, StoreWrite::string(value, None), &now)
                .await?;
        }
        Ok(true)
    }
}

/// A key read by a string command: `WRONGTYPE` if it holds another type.
pub(crate) fn string_of(entry: Option<Entry>) -> Result<Option<Entry>, SluiceError> {
    match entry {
        Some(e) if e.kind != Kind::String => Err(SluiceError::WrongType),
        other => Ok(other),
    }
}

/// What INCRBY decides: the key's integer plus `delta`, keeping its expiry.
fn incr_decision(
    delta: i64,
) -> impl FnOnce(Option<Entry>) -> Result<(Mutation, i64), SluiceError> + Send {
    move |cur| {
        let (current, expires_at) = match &string_of(cur)? {
            Some(e) => (
                numeric::parse_strict_i64(&e.value).ok_or(SluiceError::NotInteger)?,
                e.expires_at,
            ),
            None => (0, None),
        };
        let next = current.checked_add(delta).ok_or(SluiceError::Overflow)?;
        Ok((
            Mutation::Put {
                value: numeric::int_bytes(next),
                kind: Kind::String,
                expires_at,
            },
            next,
        ))
    }
}

/// Whether a SET with `opts` reads the key first.
fn set_reads(opts: &SetOptions) -> bool {
    opts.condition != SetCondition::Always || opts.return_old || opts.expiry == SetExpiry::Keep
}

/// What a SET of `value` with `opts` decides, given the key's current entry.
fn set_decision(
    value: Bytes,
    opts: SetOptions,
) -> impl FnOnce(Option<Entry>) -> Result<(Mutation, SetOutcome), SluiceError> + Send {
    move |current| {
        let old = if opts.return_old {
            // SET ... GET of a key of another type writes nothing.
            if current.as_ref().is_some_and(|e| e.kind != Kind::String) {
                return Err(SluiceError::WrongType);
            }
            current.as_ref().map(|e| e.value.clone())
        } else {
            None
        };
        let allowed = match opts.condition {
            SetCondition::Always => true,
            SetCondition::IfAbsent => current.is_none(),
            SetCondition::IfPresent => current.is_some(),
        };
        if !allowed {
            let outcome = SetOutcome {
                written: false,
                old,
            };
            return Ok((Mutation::Keep, outcome));
        }
        let expires_at = match opts.expiry {
            SetExpiry::Clear => None,
            SetExpiry::Keep => current.and_then(|e| e.expires_at),
            SetExpiry::At(t) => Some(t),
        };
        let put = Mutation::Put {
            value,
            kind: Kind::String,
            expires_at,
        };
        Ok((put, SetOutcome { written: true, old }))
    }
}
