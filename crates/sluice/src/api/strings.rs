//! String operations: GET, SET and its variants, counters, MSET.

use bytes::Bytes;

use super::types::{Mutation, SetCondition, SetExpiry, SetOptions, SetOutcome};
use crate::engine::durable;
use crate::error::SluiceError;
use crate::model::{Entry, Kind, StoreWrite};
use crate::numeric::{self, FloatIncrError};
use crate::Sluice;

impl Sluice {
    /// The value of `key`, seeing every acknowledged write (buffered ones included).
    /// `WRONGTYPE` if the key holds another type.
    pub async fn get(&self, db: u8, key: Bytes) -> Result<Option<Bytes>, SluiceError> {
        Ok(string_of(self.get_entry(db, key).await?)?.map(|e| e.value))
    }

    /// The value, type and expiry of `key`.
    pub async fn get_entry(&self, db: u8, key: Bytes) -> Result<Option<Entry>, SluiceError> {
        let engine = self.engine();
        engine.read(&engine.route(db, key)).await
    }

    /// Atomic read-modify-write of one key: `f` sees the current entry and decides.
    pub async fn update<T>(
        &self,
        db: u8,
        key: &Bytes,
        f: impl FnOnce(Option<Entry>) -> Result<(Mutation, T), SluiceError>,
    ) -> Result<T, SluiceError> {
        self.update_owned(db, key.clone(), f).await
    }

    /// [`Sluice::update`] for a string command: `WRONGTYPE`, and nothing written, if the key
    /// holds another type; `f` sees only a string or nothing.
    pub async fn update_string<T>(
        &self,
        db: u8,
        key: &Bytes,
        f: impl FnOnce(Option<Entry>) -> Result<(Mutation, T), SluiceError>,
    ) -> Result<T, SluiceError> {
        self.update_owned(db, key.clone(), |cur| f(string_of(cur)?))
            .await
    }

    /// [`Sluice::update`] taking the key by value, for callers that own it.
    pub(super) async fn update_owned<T>(
        &self,
        db: u8,
        key: Bytes,
        f: impl FnOnce(Option<Entry>) -> Result<(Mutation, T), SluiceError>,
    ) -> Result<T, SluiceError> {
        let engine = self.engine();
        let route = engine.route(db, key);
        let guard = engine.locks.lock(route.stripe).await;
        let now = engine.op_time();
        let current = engine.read_at(&route, &now).await?;
        let (mutation, result) = f(current)?;
        let applied = match Option::<StoreWrite>::from(mutation) {
            Some(write) => engine.apply_at(&route, write, &now).await?,
            None => None,
        };
        drop(guard);
        durable(applied).await?;
        Ok(result)
    }

    /// SET with NX / XX, an expiry, KEEPTTL and GET.
    pub async fn set(
        &self,
        db: u8,
        key: Bytes,
        value: Bytes,
        opts: SetOptions,
    ) -> Result<SetOutcome, SluiceError> {
        let engine = self.engine();
        let route = engine.route(db, key);
        let guard = engine.locks.lock(route.stripe).await;
        let now = engine.op_time();
        let needs_read = opts.condition != SetCondition::Always
            || opts.return_old
            || opts.expiry == SetExpiry::Keep;
        let current = if needs_read {
            engine.read_at(&route, &now).await?
        } else {
            None
        };
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
            return Ok(SetOutcome {
                written: false,
                old,
            });
        }
        let expires_at = match opts.expiry {
            SetExpiry::Clear => None,
            SetExpiry::Keep => current.and_then(|e| e.expires_at),
            SetExpiry::At(t) => Some(t),
        };
        let applied = engine
            .apply_at(&route, StoreWrite::string(value, expires_at), &now)
            .await?;
        drop(guard);
        durable(applied).await?;
        Ok(SetOutcome { written: true, old })
    }

    /// INCRBY / DECRBY: atomic in the engine; under write-back, repeated increments of one key
    /// coalesce into one row write per flush.
    pub async fn incr_by(&self, db: u8, key: Bytes, delta: i64) -> Result<i64, SluiceError> {
        self.update_owned(db, key, |cur| {
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
        })
        .await
    }

    /// INCRBYFLOAT, computed and printed exactly as Redis does.
    pub async fn incr_by_float(
        &self,
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

    /// Sets several keys, holding all their locks so no reader of the engine's writers sees
    /// a partial interleaving with another MSET.
    pub async fn mset(&self, db: u8, pairs: Vec<(Bytes, Bytes)>) -> Result<(), SluiceError> {
        self.set_all(db, pairs, false).await.map(drop)
    }

    /// Sets several keys only if none exists; true if they were set.
    pub async fn msetnx(&self, db: u8, pairs: Vec<(Bytes, Bytes)>) -> Result<bool, SluiceError> {
        self.set_all(db, pairs, true).await
    }

    /// MSET / MSETNX: under every key's lock, optionally check that none exists, then write
    /// them all; durability is awaited after the locks are released.
    async fn set_all(
        &self,
        db: u8,
        pairs: Vec<(Bytes, Bytes)>,
        only_if_none_exists: bool,
    ) -> Result<bool, SluiceError> {
        let engine = self.engine();
        let stripes = pairs
            .iter()
            .map(|(k, _)| engine.locks.stripe(db, k))
            .collect();
        let guards = engine.locks.lock_many(stripes).await;
        if only_if_none_exists {
            for (key, _) in &pairs {
                if engine.read(&engine.route(db, key.clone())).await?.is_some() {
                    return Ok(false);
                }
            }
        }
        let mut pending = Vec::with_capacity(pairs.len());
        for (key, value) in pairs {
            let route = engine.route(db, key);
            let write = StoreWrite::string(value, None);
            pending.push(engine.apply(&route, write).await?);
        }
        drop(guards);
        for applied in pending {
            durable(applied).await?;
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
