//! Hash operations: read a hash, or change some of its fields in one read-modify-write.
//!
//! On the built-in keyspace a hash is one value (its [`hash`] encoding, kind
//! [`Kind::Hash`]), written whole with the key's expiry. On a keyspace that maps a row, a hash
//! is that row: a change writes only the fields (columns) it changed ([`StoreWrite::Partial`]),
//! so the row's other columns, which other programs may be writing, keep their values.

use bytes::Bytes;

use super::access::Access;
use crate::error::SluiceError;
use crate::model::hash::HashValue;
use crate::model::{Entry, Kind, PartialWrite, StoreWrite};
use crate::numeric;

/// What a hash edit reports besides its result: whether Redis counts it as a write (one that
/// wakes WATCH), even if no field changed value (HSET of the value a field already holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashEdit {
    /// Nothing was written.
    Untouched,
    /// The hash was written.
    Written,
}

impl Access<'_> {
    /// The hash at `key`: `None` if the key does not exist, `WRONGTYPE` if it holds a string.
    pub async fn hash(&mut self, db: u8, key: Bytes) -> Result<Option<HashValue>, SluiceError> {
        hash_of(self.get_entry(db, key).await?)
    }

    /// Atomic read-modify-write of a hash: `f` edits the current hash (empty if the key does
    /// not exist) and says whether it wrote. A hash left empty is deleted, as in Redis.
    /// `WRONGTYPE`, and nothing written, if the key holds a string.
    pub async fn update_hash<T>(
        &mut self,
        db: u8,
        key: &Bytes,
        f: impl FnOnce(&mut HashValue) -> Result<(HashEdit, T), SluiceError>,
    ) -> Result<T, SluiceError> {
        let route = self.route(db, key.clone());
        let guard = self.lock(&route).await?;
        let now = self.op_time();
        let current = self.read_uncounted(&route, &now).await?;
        let expires_at = current.as_ref().and_then(|e| e.expires_at);
        let mut after = hash_of(current)?.unwrap_or_default();
        // A mapped row writes only the columns the edit changed, found by comparing with the
        // hash as it was; the built-in keyspace writes the whole value and needs no copy.
        let maps_row = route.ks.holds_only() == Some(Kind::Hash);
        let before = maps_row.then(|| after.clone());
        let (edit, result) = f(&mut after)?;
        if edit == HashEdit::Untouched {
            return Ok(result);
        }
        let write = if let Some(before) = before {
            // A mapped row: only the columns this edit changed.
            let changed = changed_fields(&before, &after);
            if changed.is_empty() {
                // Nothing for the row, but Redis counts the command as a write: WATCH sees it.
                // (Under the key's lock; inside a transaction the commit touches only what it
                // staged, so there it goes unseen.)
                if !self.in_transaction() {
                    self.engine().watches.touch(&route.key);
                }
                return Ok(result);
            }
            StoreWrite::Partial(PartialWrite {
                kind: Kind::Hash,
                image: after.encode(),
                changed,
                replace: false,
                expires_at: None,
            })
        } else if after.is_empty() {
            StoreWrite::Delete
        } else {
            StoreWrite::Upsert {
                value: after.encode(),
                kind: Kind::Hash,
                expires_at,
            }
        };
        let applied = self.write(&route, write, &now).await?;
        drop(guard);
        self.durable(applied).await?;
        Ok(result)
    }

    /// HSET / HMSET: sets each pair in order (a repeated field keeps the last value); the
    /// number of fields that were new.
    pub async fn hset(
        &mut self,
        db: u8,
        key: &Bytes,
        pairs: Vec<(Bytes, Bytes)>,
    ) -> Result<usize, SluiceError> {
        self.update_hash(db, key, |h| {
            let added = pairs
                .into_iter()
                .map(|(field, value)| h.set(field, value))
                .filter(|&new| new)
                .count();
            Ok((HashEdit::Written, added))
        })
        .await
    }

    /// HSETNX: sets `field` only if the hash lacks it; whether it did.
    pub async fn hsetnx(
        &mut self,
        db: u8,
        key: &Bytes,
        field: Bytes,
        value: Bytes,
    ) -> Result<bool, SluiceError> {
        self.update_hash(db, key, |h| {
            if h.get(&field).is_some() {
                return Ok((HashEdit::Untouched, false));
            }
            h.set(field, value);
            Ok((HashEdit::Written, true))
        })
        .await
    }

    /// HDEL: removes the fields; how many were there.
    pub async fn hdel(
        &mut self,
        db: u8,
        key: &Bytes,
        fields: &[Bytes],
    ) -> Result<usize, SluiceError> {
        self.update_hash(db, key, |h| {
            let removed = fields.iter().filter(|f| h.remove(f)).count();
            let edit = if removed > 0 {
                HashEdit::Written
            } else {
                HashEdit::Untouched
            };
            Ok((edit, removed))
        })
        .await
    }

    /// HINCRBY: adds `delta` to the integer in `field` (0 if absent); the new value.
    pub async fn hincr_by(
        &mut self,
        db: u8,
        key: &Bytes,
        field: Bytes,
        delta: i64,
    ) -> Result<i64, SluiceError> {
        self.update_hash(db, key, |h| {
            let current = match h.get(&field) {
                Some(v) => numeric::parse_strict_i64(v).ok_or(SluiceError::HashNotInteger)?,
                None => 0,
            };
            let next = current.checked_add(delta).ok_or(SluiceError::Overflow)?;
            h.set(field, numeric::int_bytes(next));
            Ok((HashEdit::Written, next))
        })
        .await
    }

    /// HINCRBYFLOAT: adds `increment` to the float in `field` (0 if absent), computed and
    /// printed as Redis does; the new value.
    pub async fn hincr_by_float(
        &mut self,
        db: u8,
        key: &Bytes,
        field: Bytes,
        increment: &[u8],
    ) -> Result<Bytes, SluiceError> {
        // The increment is checked before the key is read, as Redis does.
        if !numeric::is_redis_float(increment) {
            return Err(SluiceError::NotFloat);
        }
        // `strtold` reads "inf" and "infinity" (any case, signed); no finite text overflows,
        // as `is_redis_float` refused those.
        let unsigned = increment
            .strip_prefix(b"-")
            .or_else(|| increment.strip_prefix(b"+"))
            .unwrap_or(increment);
        if unsigned.eq_ignore_ascii_case(b"inf") || unsigned.eq_ignore_ascii_case(b"infinity") {
            return Err(SluiceError::InfiniteIncrement);
        }
        self.update_hash(db, key, |h| {
            let next =
                numeric::incr_by_float(h.get(&field).map(|v| &v[..]), increment).map_err(|e| {
                    match e {
                        numeric::FloatIncrError::NotFloat => SluiceError::HashNotFloat,
                        numeric::FloatIncrError::NanOrInfinity => SluiceError::NanOrInfinity,
                    }
                })?;
            let next = Bytes::from(next);
            h.set(field, next.clone());
            Ok((HashEdit::Written, next))
        })
        .await
    }
}

/// The hash an entry holds; `WRONGTYPE` for a string.
fn hash_of(entry: Option<Entry>) -> Result<Option<HashValue>, SluiceError> {
    match entry {
        None => Ok(None),
        Some(e) if e.kind != Kind::Hash => Err(SluiceError::WrongType),
        Some(e) => Ok(Some(HashValue::decode(&e.value)?)),
    }
}

/// The fields whose value differs between `before` and `after`, removed ones included, in
/// `after`'s order then the removed ones.
fn changed_fields(before: &HashValue, after: &HashValue) -> Vec<Bytes> {
    // Copied: a field sliced from an image (or a request) would keep all of it alive while
    // the write-back buffer holds the write.
    let mut changed: Vec<Bytes> = after
        .iter()
        .filter(|(f, v)| before.get(f) != Some(v))
        .map(|(f, _)| Bytes::copy_from_slice(f))
        .collect();
    changed.extend(
        before
            .iter()
            .filter(|(f, _)| after.get(f).is_none())
            .map(|(f, _)| Bytes::copy_from_slice(f)),
    );
    changed
}
