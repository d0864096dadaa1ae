//! Sorted-set operations: read a sorted set, change some of its members in one
//! read-modify-write, store the result of ZUNION / ZINTER / ZDIFF / ZRANGE.
//!
//! As with sets, a write names the members it changed ([`StoreWrite::Partial`]), and the
//! built-in table stores only those member rows with their scores: one ZINCRBY on a sorted set
//! of a million members writes one row. Sorted sets live on the built-in keyspace.

use bytes::Bytes;

use super::access::Access;
use super::sets::{owned, StoredSet};
use super::types::Stored;
use crate::error::SluiceError;
use crate::model::set::SetValue;
use crate::model::zset::{self, AddFlags, Added, ZSetValue};
use crate::model::{Entry, Kind, PartialWrite, StoreWrite};

/// Which types a command that reads several keys as sorted sets accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZSetInputs {
    /// Sorted sets, and sets read as sorted sets whose members all score 1 (ZUNION, ZINTER,
    /// ZDIFF and their STORE forms, ZINTERCARD, as Redis).
    AllowSets,
    /// Sorted sets only (ZRANGESTORE).
    ZSetsOnly,
}

impl Access<'_> {
    /// The encoded sorted set at `key` (see [`crate::model::zset`]): `None` if the key does not
    /// exist, `WRONGTYPE` if it holds another type.
    pub async fn zset_image(&mut self, db: u8, key: Bytes) -> Result<Option<Bytes>, SluiceError> {
        match self.get_entry(db, key).await? {
            None => Ok(None),
            Some(e) if e.kind != Kind::ZSet => Err(SluiceError::WrongType),
            Some(e) => Ok(Some(e.value)),
        }
    }

    /// The sorted sets at several keys, read as at one instant, as `inputs` says; `WRONGTYPE`
    /// if any holds another type (every key is looked at). Keys are moved out of `keys`.
    pub async fn zset_inputs(
        &mut self,
        db: u8,
        keys: &mut [Bytes],
        inputs: ZSetInputs,
    ) -> Result<Vec<Option<ZSetValue>>, SluiceError> {
        self.get_entries(db, keys)
            .await?
            .into_iter()
            .map(|e| zset_input(e, inputs))
            .collect()
    }

    /// Atomic read-modify-write of a sorted set: `f` edits the current one (empty if the key
    /// does not exist) and returns the members whose scores it set or that it removed, with its
    /// result; no member changed is no write. A sorted set left empty is deleted, as in Redis;
    /// the key keeps its expiry. `WRONGTYPE`, and nothing written, if the key holds another
    /// type; an error from `f` writes nothing.
    pub async fn update_zset<T>(
        &mut self,
        db: u8,
        key: &Bytes,
        f: impl FnOnce(&mut ZSetValue) -> Result<(Vec<Bytes>, T), SluiceError>,
    ) -> Result<T, SluiceError> {
        let route = self.route(db, key.clone());
        let fresh_key_replaces = route.fresh_key_replaces();
        self.write_routed(route, true, |current| {
            let expires_at = current.as_ref().and_then(|e| e.expires_at);
            // A key that reads as absent may still have rows (expired, not yet purged): a
            // sorted set made there replaces them.
            let replace = current.is_none() && fresh_key_replaces;
            let mut zset = zset_of(current)?.unwrap_or_default();
            let (changed, result) = f(&mut zset)?;
            let write = if changed.is_empty() {
                None
            } else if zset.is_empty() {
                Some(StoreWrite::Delete)
            } else {
                Some(StoreWrite::Partial(PartialWrite {
                    kind: Kind::ZSet,
                    image: zset.encode(),
                    changed: if replace { Vec::new() } else { owned(changed) },
                    replace,
                    expires_at,
                }))
            };
            Ok((write, result))
        })
        .await
    }

    /// ZADD or ZINCRBY of one member, as [`ZSetValue::add`] decides it, edited in the encoded
    /// set in one pass (no set built: a leaderboard's hot path). `NanScore`, and nothing
    /// written, for an INCR whose sum is NaN; `WRONGTYPE` if the key holds another type.
    pub async fn zadd_one(
        &mut self,
        db: u8,
        key: &Bytes,
        member: &Bytes,
        score: f64,
        flags: AddFlags,
    ) -> Result<Added, SluiceError> {
        let route = self.route(db, key.clone());
        let fresh_key_replaces = route.fresh_key_replaces();
        self.write_routed(route, true, |current| {
            let expires_at = current.as_ref().and_then(|e| e.expires_at);
            let replace = current.is_none() && fresh_key_replaces;
            let image = match current {
                None => Bytes::new(),
                Some(e) if e.kind != Kind::ZSet => return Err(SluiceError::WrongType),
                Some(e) => e.value,
            };
            let located = zset::locate(&image, member).ok_or(crate::model::hash::MalformedHash)?;
            let added = flags
                .decide(located.score(), score)
                .map_err(|_| SluiceError::NanScore)?;
            let (Added::New(new) | Added::Updated(new)) = added else {
                return Ok((None, added));
            };
            let image = zset::with_located(&image, &located, member, new)
                .ok_or(crate::model::hash::MalformedHash)?;
            let write = StoreWrite::Partial(PartialWrite {
                kind: Kind::ZSet,
                image,
                changed: if replace {
                    Vec::new()
                } else {
                    owned(vec![member.clone()])
                },
                replace,
                expires_at,
            });
            Ok((Some(write), added))
        })
        .await
    }

    /// ZUNIONSTORE / ZINTERSTORE / ZDIFFSTORE / ZRANGESTORE: `f` computes a sorted set from
    /// the inputs at `keys` (read as `inputs` says), stored at `dst` (replacing whatever it
    /// held, without expiry), or `dst` deleted if the result is empty. All or none: the reads
    /// and the write are one transaction.
    pub async fn store_zset(
        &mut self,
        db: u8,
        dst: &Bytes,
        keys: &[Bytes],
        inputs: ZSetInputs,
        f: impl FnOnce(Vec<Option<ZSetValue>>) -> ZSetValue,
    ) -> Result<StoredSet, SluiceError> {
        let (len, stored) = self
            .store_from(db, dst, keys, |entries| {
                let values = entries
                    .into_iter()
                    .map(|e| zset_input(e, inputs))
                    .collect::<Result<Vec<_>, _>>()?;
                let result = f(values);
                let len = result.len();
                Ok(((len > 0).then(|| (result.encode(), Kind::ZSet)), len))
            })
            .await?;
        Ok(StoredSet {
            len,
            deleted: stored == Stored::Deleted,
        })
    }
}

/// The sorted set an entry holds; `WRONGTYPE` for another type.
fn zset_of(entry: Option<Entry>) -> Result<Option<ZSetValue>, SluiceError> {
    match entry {
        None => Ok(None),
        Some(e) if e.kind != Kind::ZSet => Err(SluiceError::WrongType),
        Some(e) => Ok(Some(ZSetValue::decode(&e.value)?)),
    }
}

/// An entry read as a sorted set, as `inputs` allows: a set's members score 1.
fn zset_input(entry: Option<Entry>, inputs: ZSetInputs) -> Result<Option<ZSetValue>, SluiceError> {
    match entry {
        Some(e) if e.kind == Kind::Set && inputs == ZSetInputs::AllowSets => {
            let set = SetValue::decode(&e.value)?;
            Ok(Some(ZSetValue::from_entries(
                set.iter().map(|m| (m.clone(), 1.0)),
            )))
        }
        other => zset_of(other),
    }
}
