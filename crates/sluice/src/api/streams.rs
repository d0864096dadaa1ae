//! Stream operations: read a stream, change it in one read-modify-write.
//!
//! A stream's metadata and each of its entries are rows of their own (see
//! [`crate::model::stream`]), and a write names the rows it touched ([`StoreWrite::Partial`]):
//! the write-back buffer coalesces them per key, the journal records them, and the built-in
//! table stores only those rows, so XADD to a stream of a million entries writes two rows.
//! Streams live on the built-in keyspace.

use bytes::Bytes;

use super::access::Access;
use crate::error::SluiceError;
use crate::model::stream::{self, RequestedId, StreamId, StreamMeta, StreamValue, Trim};
use crate::model::stream_groups::Groups;
use crate::model::{Entry, Kind, PartialWrite, StoreWrite};

impl Access<'_> {
    /// The encoded stream at `key` (see [`crate::model::stream`]): `None` if the key does not
    /// exist, `WRONGTYPE` if it holds another type.
    pub async fn stream_image(&mut self, db: u8, key: Bytes) -> Result<Option<Bytes>, SluiceError> {
        match self.get_entry(db, key).await? {
            None => Ok(None),
            Some(e) if e.kind != Kind::Stream => Err(SluiceError::WrongType),
            Some(e) => Ok(Some(e.value)),
        }
    }

    /// Atomic read-modify-write of a stream: `f` edits the current stream, or with `create` a
    /// new empty one where the key does not exist (else `f` is not called and the answer is
    /// `None`). A stream `f` left unchanged is no write; a new one is stored once `f` changed
    /// it, even if it holds no entry (XADD with `MAXLEN 0`), as in Redis. The key keeps its
    /// expiry. `WRONGTYPE`, and nothing written, if the key holds another type; an error
    /// from `f` writes nothing.
    pub async fn update_stream<T>(
        &mut self,
        db: u8,
        key: &Bytes,
        create: bool,
        f: impl FnOnce(&mut StreamValue) -> Result<T, SluiceError>,
    ) -> Result<Option<T>, SluiceError> {
        let route = self.route(db, key.clone());
        self.write_routed(route, true, |current| {
            let (mut stream, expires_at, fresh) = match stream_of(current)? {
                Some((stream, expires_at)) => (stream, expires_at, false),
                None if create => (StreamValue::new(), None, true),
                None => return Ok((None, None)),
            };
            let result = f(&mut stream)?;
            if !stream.changed() {
                return Ok((None, Some(result)));
            }
            let write = StoreWrite::Partial(PartialWrite {
                kind: Kind::Stream,
                image: stream.encode(),
                changed: if fresh { Vec::new() } else { stream.changes() },
                replace: fresh,
                expires_at,
            });
            Ok((Some(write), Some(result)))
        })
        .await
    }
}

impl Access<'_> {
    /// Atomic read-modify-write of a stream's consumer groups: `f` sees the stream's image
    /// and metadata and edits its groups; or with `create` (XGROUP CREATE MKSTREAM) a new empty
    /// stream where the key does not exist (else `f` is not called and the answer is `None`).
    /// Groups `f` left as they were are no write; changed ones rewrite the metadata row only
    /// ([`stream::with_meta`]), the entries untouched. The key keeps its expiry. `WRONGTYPE`,
    /// and nothing written, if the key holds another type; an error from `f` writes nothing.
    pub async fn update_stream_groups<T>(
        &mut self,
        db: u8,
        key: &Bytes,
        create: bool,
        f: impl FnOnce(&Bytes, &StreamMeta, &mut Groups) -> Result<T, SluiceError>,
    ) -> Result<Option<T>, SluiceError> {
        let mut route = self.route(db, key.clone());
        // A change to the groups leaves a WATCH of the key alone, as in Redis; a stream this
        // creates (MKSTREAM) fails it. (MKSTREAM over an existing stream fails it too, where
        // Redis would not.)
        route.wakes_watchers = create;
        self.write_routed(route, true, |current| {
            let (image, expires_at, fresh) = match current {
                Some(e) if e.kind != Kind::Stream => return Err(SluiceError::WrongType),
                Some(e) => (e.value, e.expires_at, false),
                None if create => (StreamValue::new().encode(), None, true),
                None => return Ok((None, None)),
            };
            let mut meta = stream::meta(&image)?;
            let mut groups = Groups::decode(&meta.groups)?;
            let result = f(&image, &meta, &mut groups)?;
            let encoded = groups.encode();
            // A new stream is stored only once it holds a group (XGROUP CREATE MKSTREAM with a
            // bad ID creates nothing, as in Redis).
            if encoded == meta.groups {
                return Ok((None, Some(result)));
            }
            meta.groups = encoded;
            let image = stream::with_meta(&image, &meta)?;
            let write = if fresh {
                PartialWrite::whole(Kind::Stream, image, None)
            } else {
                PartialWrite {
                    kind: Kind::Stream,
                    image,
                    changed: vec![Bytes::new()],
                    replace: false,
                    expires_at,
                }
            };
            Ok((Some(StoreWrite::Partial(write)), Some(result)))
        })
        .await
    }
}

impl Access<'_> {
    /// [`Access::update_stream_groups`] of each of `keys` in turn (`f` is told the key's
    /// index), as one transaction when there are several: XREADGROUP of several streams
    /// delivers from all of them or, if one fails, from none.
    pub async fn update_streams_groups<T>(
        &mut self,
        db: u8,
        keys: &[Bytes],
        mut f: impl FnMut(usize, &Bytes, &StreamMeta, &mut Groups) -> Result<T, SluiceError>,
    ) -> Result<Vec<Option<T>>, SluiceError> {
        if keys.len() < 2 || self.in_transaction() {
            return self.each_stream_groups(db, keys, &mut f).await;
        }
        let engine = self.engine();
        let mut txn = engine.begin_txn(keys.iter().map(|k| (db, &k[..]))).await?;
        let staged = Access::in_txn(engine, &mut txn)
            .each_stream_groups(db, keys, &mut f)
            .await;
        engine.finish_txn(txn, staged).await
    }

    async fn each_stream_groups<T>(
        &mut self,
        db: u8,
        keys: &[Bytes],
        f: &mut impl FnMut(usize, &Bytes, &StreamMeta, &mut Groups) -> Result<T, SluiceError>,
    ) -> Result<Vec<Option<T>>, SluiceError> {
        let mut out = Vec::with_capacity(keys.len());
        for (n, key) in keys.iter().enumerate() {
            let r = self
                .update_stream_groups(db, key, false, |image, meta, groups| {
                    f(n, image, meta, groups)
                })
                .await?;
            out.push(r);
        }
        Ok(out)
    }
}

/// What [`Access::add_to_stream`] did: the new entry's ID and how many entries its trim
/// removed, or Redis's error line (nothing written).
pub type StreamAdded = Result<(StreamId, u64), &'static str>;

impl Access<'_> {
    /// XADD: the entry, its ID picked from `requested` at `now_ms`, then `trim`; `None` if the
    /// key does not exist and `create` is false (NOMKSTREAM). An existing stream is edited in
    /// one pass over its encoding ([`stream::with_added`]) unless the trim is exact or an
    /// XSETID left deleted rows above the new ID; those, and a new stream, go through
    /// [`StreamValue`]. `WRONGTYPE`, and nothing written, if the key holds another type.
    #[allow(clippy::too_many_arguments)]
    pub async fn add_to_stream(
        &mut self,
        db: u8,
        key: &Bytes,
        create: bool,
        requested: RequestedId,
        now_ms: u64,
        pairs: &[(Bytes, Bytes)],
        trim: Option<Trim>,
    ) -> Result<Option<StreamAdded>, SluiceError> {
        let route = self.route(db, key.clone());
        self.write_routed(route, true, |current| {
            let (image, expires_at) = match current {
                Some(e) if e.kind != Kind::Stream => return Err(SluiceError::WrongType),
                Some(e) => (e.value, e.expires_at),
                None if !create => return Ok((None, None)),
                None => {
                    let mut s = StreamValue::new();
                    let added = s.xadd(requested, now_ms, pairs, trim);
                    let write = added.is_ok().then(|| {
                        StoreWrite::Partial(PartialWrite::whole(Kind::Stream, s.encode(), None))
                    });
                    return Ok((write, Some(added)));
                }
            };
            let meta = stream::meta(&image)?;
            if meta.last_id == StreamId::MAX {
                return Ok((None, Some(Err(stream::EXHAUSTED))));
            }
            let id = match stream::next_id(meta.last_id, requested, now_ms) {
                Ok(id) => id,
                Err(line) => return Ok((None, Some(Err(line)))),
            };
            let (image, changed, removed) = match stream::with_added(&image, id, pairs, trim) {
                Some(edit) => edit,
                None => {
                    let mut s = StreamValue::decode(&image)?;
                    s.add(id, pairs);
                    let removed = trim.map_or(0, |t| s.trim(t));
                    (s.encode(), s.changes(), removed)
                }
            };
            let write = StoreWrite::Partial(PartialWrite {
                kind: Kind::Stream,
                image,
                changed,
                replace: false,
                expires_at,
            });
            Ok((Some(write), Some(Ok((id, removed)))))
        })
        .await
    }
}

/// The stream an entry holds, with its expiry; `WRONGTYPE` for another type.
fn stream_of(entry: Option<Entry>) -> Result<Option<(StreamValue, Option<u64>)>, SluiceError> {
    match entry {
        None => Ok(None),
        Some(e) if e.kind != Kind::Stream => Err(SluiceError::WrongType),
        Some(e) => Ok(Some((StreamValue::decode(&e.value)?, e.expires_at))),
    }
}
