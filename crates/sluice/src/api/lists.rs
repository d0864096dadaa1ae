//! List operations: read a list, change it in one read-modify-write, move an element between
//! lists.
//!
//! Each element keeps a position for as long as it stays in the list (see
//! [`crate::model::list`]), and a write names the positions it touched
//! ([`StoreWrite::Partial`]): the write-back buffer coalesces them per key, the journal
//! records them, and the built-in table stores only those rows, so RPUSH to a list of a
//! million elements, or LPOP from it, writes one row. Lists live on the built-in keyspace.

use bytes::Bytes;

use super::access::Access;
use crate::error::SluiceError;
use crate::model::list::{self, ListValue};
use crate::model::{Entry, Kind, PartialWrite, StoreWrite};

/// What [`Access::lmove`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedElement {
    /// The element moved.
    pub element: Bytes,
    /// The source list lost its last element and was deleted.
    pub src_deleted: bool,
}

impl Access<'_> {
    /// The encoded list at `key` (see [`crate::model::list`]): `None` if the key does not
    /// exist, `WRONGTYPE` if it holds another type.
    pub async fn list_image(&mut self, db: u8, key: Bytes) -> Result<Option<Bytes>, SluiceError> {
        Ok(image_of(self.get_entry(db, key).await?)?.map(|(image, _)| image))
    }

    /// Atomic read-modify-write of a list: `f` edits the current list (empty if the key does
    /// not exist) and returns its result; a list `f` left unchanged is no write. A list left
    /// empty is deleted, as in Redis; the key keeps its expiry. `WRONGTYPE`, and nothing
    /// written, if the key holds another type; an error from `f` writes nothing.
    pub async fn update_list<T>(
        &mut self,
        db: u8,
        key: &Bytes,
        f: impl FnOnce(&mut ListValue) -> Result<T, SluiceError>,
    ) -> Result<T, SluiceError> {
        let route = self.route(db, key.clone());
        let fresh_key_replaces = route.fresh_key_replaces();
        self.write_routed(route, true, |current| {
            let expires_at = current.as_ref().and_then(|e| e.expires_at);
            // A key that reads as absent may still have rows (expired, not yet purged): a
            // list made there replaces them. On a mapped table no rows were read, and rows
            // another program inserts meanwhile stay.
            let fresh = current.is_none() && fresh_key_replaces;
            let mut list = list_of(current)?.unwrap_or_default();
            let result = f(&mut list)?;
            Ok((list_write(&list, fresh, expires_at), result))
        })
        .await
    }

    /// LPUSH / RPUSH (`front`: the head), and with `only_existing` LPUSHX / RPUSHX, which push
    /// nothing onto a missing key: the length after, 0 if nothing was pushed. Edits the
    /// encoded list in one pass ([`list::with_pushed`]); a list whose end has no room left
    /// is renumbered. `WRONGTYPE` if the key holds another type.
    pub async fn push_list(
        &mut self,
        db: u8,
        key: &Bytes,
        elements: Vec<Bytes>,
        front: bool,
        only_existing: bool,
    ) -> Result<usize, SluiceError> {
        let route = self.route(db, key.clone());
        let fresh_key_replaces = route.fresh_key_replaces();
        self.write_routed(route, true, |current| {
            let (image, expires_at, fresh) = match image_of(current)? {
                None if only_existing => return Ok((None, 0)),
                None => (Bytes::new(), None, fresh_key_replaces),
                Some((image, expires_at)) => (image, expires_at, false),
            };
            if elements.is_empty() {
                return Ok((None, list::len(&image)));
            }
            let Some((image, positions)) = list::with_pushed(&image, &elements, front) else {
                let mut list = ListValue::decode(&image)?;
                list.push(elements, front);
                return Ok((list_write(&list, fresh, expires_at), list.len()));
            };
            let len = list::len(&image);
            Ok((Some(partial(image, &positions, fresh, expires_at)), len))
        })
        .await
    }

    /// LPOP / RPOP of up to `count` elements, in the order they leave; `None` if the key does
    /// not exist, else also whether the list was emptied (deleted). Edits the encoded list in
    /// one pass ([`list::with_popped`]). `WRONGTYPE` if the key holds another type.
    pub async fn pop_list(
        &mut self,
        db: u8,
        key: &Bytes,
        front: bool,
        count: usize,
    ) -> Result<Option<(Vec<Bytes>, bool)>, SluiceError> {
        let route = self.route(db, key.clone());
        self.write_routed(route, true, |current| {
            let Some((image, expires_at)) = image_of(current)? else {
                return Ok((None, None));
            };
            let (image, popped) =
                list::with_popped(&image, count, front).ok_or(crate::model::hash::MalformedHash)?;
            let emptied = image.is_empty();
            let positions: Vec<i64> = popped.iter().map(|(p, _)| *p).collect();
            let write = edited(image, &positions, expires_at);
            let elements = popped.into_iter().map(|(_, e)| e).collect();
            Ok((write, Some((elements, emptied))))
        })
        .await
    }

    /// LTRIM: keeps the elements `keep` picks from the list's length (indexes from the head),
    /// in one pass over the encoded list ([`list::with_trimmed`]); `None` if the key does not
    /// exist, else whether the list was emptied (deleted). `WRONGTYPE` if the key holds
    /// another type.
    pub async fn trim_list(
        &mut self,
        db: u8,
        key: &Bytes,
        keep: impl FnOnce(usize) -> std::ops::Range<usize>,
    ) -> Result<Option<bool>, SluiceError> {
        let route = self.route(db, key.clone());
        self.write_routed(route, true, |current| {
            let Some((image, expires_at)) = image_of(current)? else {
                return Ok((None, None));
            };
            let (image, removed) = list::with_trimmed(&image, keep(list::len(&image)))
                .ok_or(crate::model::hash::MalformedHash)?;
            let emptied = image.is_empty();
            Ok((edited(image, &removed, expires_at), Some(emptied)))
        })
        .await
    }

    /// LMOVE: pops the head (`from_front`) or tail of `src` and pushes it at the head
    /// (`to_front`) or tail of `dst`; `None` if `src` does not exist. `WRONGTYPE`, nothing
    /// moved, if `src` or (when `src` exists) `dst` holds another type. All or none: the pop
    /// and the push are one transaction.
    pub async fn lmove(
        &mut self,
        db: u8,
        src: &Bytes,
        dst: &Bytes,
        from_front: bool,
        to_front: bool,
    ) -> Result<Option<MovedElement>, SluiceError> {
        if src == dst {
            // One list: a rotation, never a delete.
            return self
                .update_list(db, src, |list| {
                    Ok(list.pop(from_front).map(|element| {
                        list.push([element.clone()], to_front);
                        MovedElement {
                            element,
                            src_deleted: false,
                        }
                    }))
                })
                .await;
        }
        if self.in_transaction() {
            return self.stage_lmove(db, src, dst, from_front, to_front).await;
        }
        let engine = self.engine();
        let mut txn = engine.begin_txn([(db, &src[..]), (db, &dst[..])]).await?;
        let staged = Access::in_txn(engine, &mut txn)
            .stage_lmove(db, src, dst, from_front, to_front)
            .await;
        engine.finish_txn(txn, staged).await
    }

    async fn stage_lmove(
        &mut self,
        db: u8,
        src: &Bytes,
        dst: &Bytes,
        from_front: bool,
        to_front: bool,
    ) -> Result<Option<MovedElement>, SluiceError> {
        // As Redis: a missing source moves nothing, whatever the destination holds.
        let Some(source) = self.list_image(db, src.clone()).await? else {
            return Ok(None);
        };
        self.list_image(db, dst.clone()).await?;
        let end = if from_front {
            list::elements(&source).next()
        } else {
            list::elements(&source).last()
        };
        let Some((_, element)) = end.transpose()? else {
            return Ok(None);
        };
        let element = Bytes::copy_from_slice(element);
        // The push first: a destination that refuses it (a mapped table whose column cannot
        // hold the element) leaves the source as it was, in a transaction too, where a failed
        // command's earlier writes stay staged.
        self.update_list(db, dst, |list| {
            list.push([element.clone()], to_front);
            Ok(())
        })
        .await?;
        let src_deleted = self
            .update_list(db, src, |list| {
                list.pop(from_front);
                Ok(list.is_empty())
            })
            .await?;
        Ok(Some(MovedElement {
            element,
            src_deleted,
        }))
    }
}

/// The write that stores an edited list: none if unchanged, a delete if emptied, else the
/// positions it touched (the whole list if it was renumbered, or is new and `fresh`: a new key
/// that replaces what its rows held).
fn list_write(list: &ListValue, fresh: bool, expires_at: Option<u64>) -> Option<StoreWrite> {
    if !list.changed() {
        return None;
    }
    if list.is_empty() {
        return Some(StoreWrite::Delete);
    }
    let (changed, renumbered) = list.changes();
    let replace = fresh || renumbered;
    Some(StoreWrite::Partial(PartialWrite {
        kind: Kind::List,
        image: list.encode(),
        changed: if replace { Vec::new() } else { changed },
        replace,
        expires_at,
    }))
}

/// The write of a one-pass edit of an existing list that left `image` and touched
/// `positions`: none if it touched nothing, a delete if it emptied the list.
fn edited(image: Bytes, positions: &[i64], expires_at: Option<u64>) -> Option<StoreWrite> {
    if positions.is_empty() {
        None
    } else if image.is_empty() {
        Some(StoreWrite::Delete)
    } else {
        Some(partial(image, positions, false, expires_at))
    }
}

/// A write of `image` that touched `positions` (the whole list if `fresh`).
fn partial(image: Bytes, positions: &[i64], fresh: bool, expires_at: Option<u64>) -> StoreWrite {
    StoreWrite::Partial(PartialWrite {
        kind: Kind::List,
        image,
        changed: if fresh {
            Vec::new()
        } else {
            positions
                .iter()
                .map(|p| Bytes::copy_from_slice(&list::position_key(*p)))
                .collect()
        },
        replace: fresh,
        expires_at,
    })
}

/// The encoded list an entry holds, with its expiry; `WRONGTYPE` for another type.
fn image_of(entry: Option<Entry>) -> Result<Option<(Bytes, Option<u64>)>, SluiceError> {
    match entry {
        None => Ok(None),
        Some(e) if e.kind != Kind::List => Err(SluiceError::WrongType),
        Some(e) => Ok(Some((e.value, e.expires_at))),
    }
}

/// The list an entry holds; `WRONGTYPE` for another type.
fn list_of(entry: Option<Entry>) -> Result<Option<ListValue>, SluiceError> {
    image_of(entry)?
        .map(|(image, _)| ListValue::decode(&image))
        .transpose()
        .map_err(Into::into)
}
