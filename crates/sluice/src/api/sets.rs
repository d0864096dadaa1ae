//! Set operations: read a set, change some of its members in one read-modify-write, move a
//! member between sets, store the result of SINTER / SUNION / SDIFF.
//!
//! A write names the members it changed ([`StoreWrite::Partial`]): the write-back buffer
//! coalesces them per key, the journal records them, and the built-in table stores only those
//! member rows, so SADD to a set of a million members writes one row. Sets live on the
//! built-in keyspace; a mapped keyspace refuses them (its table maps strings or rows).

use bytes::Bytes;

use super::access::Access;
use super::types::Stored;
use crate::error::SluiceError;
use crate::model::set::{SetAlgebra, SetValue};
use crate::model::{Entry, Kind, PartialWrite, StoreWrite};

/// What [`Access::store_set_algebra`] did to its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredSet {
    /// Members of the stored result (0: the destination was deleted, if it existed).
    pub len: usize,
    /// The result was empty and the destination existed, so it was deleted.
    pub deleted: bool,
}

/// What [`Access::smove`] did besides moving the member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MovedMember {
    /// The source set lost its last member and was deleted.
    pub src_deleted: bool,
    /// The member was new in the destination (it may have been there already).
    pub dst_added: bool,
}

impl Access<'_> {
    /// The set at `key`: `None` if the key does not exist, `WRONGTYPE` if it holds another
    /// type.
    pub async fn set_value(&mut self, db: u8, key: Bytes) -> Result<Option<SetValue>, SluiceError> {
        set_of(self.get_entry(db, key).await?)
    }

    /// The encoded set at `key` (see [`crate::model::set`]), for a command that looks at it
    /// once without building a [`SetValue`]: `None` if the key does not exist, `WRONGTYPE` if
    /// it holds another type.
    pub async fn set_image(&mut self, db: u8, key: Bytes) -> Result<Option<Bytes>, SluiceError> {
        match self.get_entry(db, key).await? {
            None => Ok(None),
            Some(e) if e.kind != Kind::Set => Err(SluiceError::WrongType),
            Some(e) => Ok(Some(e.value)),
        }
    }

    /// The sets at several keys, read as at one instant; `WRONGTYPE` if any holds another type
    /// (every key is looked at, as Redis does). Keys are moved out of `keys`.
    pub async fn set_values(
        &mut self,
        db: u8,
        keys: &mut [Bytes],
    ) -> Result<Vec<Option<SetValue>>, SluiceError> {
        self.get_entries(db, keys)
            .await?
            .into_iter()
            .map(set_of)
            .collect()
    }

    /// Atomic read-modify-write of a set: `f` edits the current set (empty if the key does not
    /// exist) and returns the members it added or removed with its result; no member changed
    /// is no write. A set left empty is deleted, as in Redis; the key keeps its expiry.
    /// `WRONGTYPE`, and nothing written, if the key holds another type.
    pub async fn update_set<T>(
        &mut self,
        db: u8,
        key: &Bytes,
        f: impl FnOnce(&mut SetValue) -> Result<(Vec<Bytes>, T), SluiceError>,
    ) -> Result<T, SluiceError> {
        let route = self.route(db, key.clone());
        let fresh_key_replaces = route.fresh_key_replaces();
        self.write_routed(route, true, |current| {
            let expires_at = current.as_ref().and_then(|e| e.expires_at);
            // A key that reads as absent may still have rows (expired, not yet purged): a set
            // made there replaces them, so no member of the expired set comes back.
            let replace = current.is_none() && fresh_key_replaces;
            let mut set = set_of(current)?.unwrap_or_default();
            let (changed, result) = f(&mut set)?;
            let write = if changed.is_empty() {
                None
            } else if set.is_empty() {
                Some(StoreWrite::Delete)
            } else {
                Some(StoreWrite::Partial(PartialWrite {
                    kind: Kind::Set,
                    image: set.encode(),
                    changed: if replace { Vec::new() } else { owned(changed) },
                    replace,
                    expires_at,
                }))
            };
            Ok((write, result))
        })
        .await
    }

    /// SADD: adds the members; how many were new.
    pub async fn sadd(
        &mut self,
        db: u8,
        key: &Bytes,
        members: Vec<Bytes>,
    ) -> Result<usize, SluiceError> {
        self.update_set(db, key, |set| {
            let added: Vec<Bytes> = members
                .into_iter()
                .filter(|m| set.insert(m.clone()))
                .collect();
            let n = added.len();
            Ok((added, n))
        })
        .await
    }

    /// SREM: removes the members; how many were there, and whether that emptied (deleted)
    /// the set.
    pub async fn srem(
        &mut self,
        db: u8,
        key: &Bytes,
        members: Vec<Bytes>,
    ) -> Result<(usize, bool), SluiceError> {
        self.update_set(db, key, |set| {
            let removed: Vec<Bytes> = members.into_iter().filter(|m| set.remove(m)).collect();
            let n = removed.len();
            let emptied = n > 0 && set.is_empty();
            Ok((removed, (n, emptied)))
        })
        .await
    }

    /// SPOP: removes and returns `count` random members (all of them if the set has fewer),
    /// chosen by `pick(len)`, which returns an index below `len`; and whether the set was
    /// emptied (deleted).
    pub async fn spop(
        &mut self,
        db: u8,
        key: &Bytes,
        count: usize,
        mut pick: impl FnMut(usize) -> usize,
    ) -> Result<(Vec<Bytes>, bool), SluiceError> {
        self.update_set(db, key, |set| {
            let n = count.min(set.len());
            let mut popped = Vec::with_capacity(n);
            for _ in 0..n {
                let i = pick(set.len());
                if let Some(m) = set.take_index(i) {
                    popped.push(m);
                }
            }
            let emptied = !popped.is_empty() && set.is_empty();
            Ok((popped.clone(), (popped, emptied)))
        })
        .await
    }

    /// SMOVE: moves `member` from `src` to `dst`; `None` if it was not in `src` (or `src`
    /// does not exist). An existing `src` and `dst` are checked for their type first
    /// (`WRONGTYPE`, nothing moved). All or none: the removal and the addition are one
    /// transaction.
    pub async fn smove(
        &mut self,
        db: u8,
        src: &Bytes,
        dst: &Bytes,
        member: Bytes,
    ) -> Result<Option<MovedMember>, SluiceError> {
        if self.in_transaction() {
            return self.stage_smove(db, src, dst, member).await;
        }
        let engine = self.engine();
        let mut txn = engine.begin_txn([(db, &src[..]), (db, &dst[..])]).await?;
        let staged = Access::in_txn(engine, &mut txn)
            .stage_smove(db, src, dst, member)
            .await;
        engine.finish_txn(txn, staged).await
    }

    async fn stage_smove(
        &mut self,
        db: u8,
        src: &Bytes,
        dst: &Bytes,
        member: Bytes,
    ) -> Result<Option<MovedMember>, SluiceError> {
        // As Redis: a missing source moves nothing, whatever the destination holds; otherwise
        // both keys' types are checked before the member is looked for.
        let Some(from) = self.set_value(db, src.clone()).await? else {
            return Ok(None);
        };
        self.set_value(db, dst.clone()).await?;
        if !from.contains(&member) {
            return Ok(None);
        }
        if src == dst {
            return Ok(Some(MovedMember {
                src_deleted: false,
                dst_added: false,
            }));
        }
        let (_, src_deleted) = self.srem(db, src, vec![member.clone()]).await?;
        let dst_added = self.sadd(db, dst, vec![member]).await? > 0;
        Ok(Some(MovedMember {
            src_deleted,
            dst_added,
        }))
    }

    /// SINTERSTORE / SUNIONSTORE / SDIFFSTORE: `algebra` over the sets at `keys`, stored at
    /// `dst` (replacing whatever it held, without expiry), or `dst` deleted if the result is
    /// empty. All or none: the reads and the write are one transaction.
    pub async fn store_set_algebra(
        &mut self,
        db: u8,
        dst: &Bytes,
        keys: &[Bytes],
        algebra: SetAlgebra,
    ) -> Result<StoredSet, SluiceError> {
        let (len, stored) = self
            .store_from(db, dst, keys, |entries| {
                let sets = entries
                    .into_iter()
                    .map(set_of)
                    .collect::<Result<Vec<_>, _>>()?;
                let result = algebra.apply(&sets);
                let len = result.len();
                Ok(((len > 0).then(|| (result.encode(), Kind::Set)), len))
            })
            .await?;
        Ok(StoredSet {
            len,
            deleted: stored == Stored::Deleted,
        })
    }
}

/// Members copied out of whatever they were sliced from: a member a command names is a slice
/// of its request's read buffer, one SPOP took is a slice of the set's old image. The
/// write-back buffer keeps a key's changed members until a flush stores them, so a slice
/// would keep that whole buffer or image alive with it (one image per SPOP of a hot set).
pub(super) fn owned(members: Vec<Bytes>) -> Vec<Bytes> {
    members
        .into_iter()
        .map(|m| Bytes::copy_from_slice(&m))
        .collect()
}

/// The set an entry holds; `WRONGTYPE` for another type.
fn set_of(entry: Option<Entry>) -> Result<Option<SetValue>, SluiceError> {
    match entry {
        None => Ok(None),
        Some(e) if e.kind != Kind::Set => Err(SluiceError::WrongType),
        Some(e) => Ok(Some(SetValue::decode(&e.value)?)),
    }
}
