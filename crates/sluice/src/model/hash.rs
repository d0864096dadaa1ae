//! The encoding of a hash value, as the cache, the write-back buffer, the journal and the
//! built-in table hold it: a LEB128 count, then per field a LEB128 length and the field, a
//! LEB128 length and the value, in insertion order (the order HGETALL answers in, as Redis's
//! small-hash encoding keeps it). Empty bytes are the empty hash.
//!
//! Decoding never trusts the bytes: a value read back from a table someone else wrote may be
//! anything, and a malformed one is reported, never a panic or an allocation sized by it.

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

/// A stored hash value that does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("a stored hash value is malformed (cut short or with a bad length)")]
pub struct MalformedHash;

pub(crate) fn put_len(out: &mut BytesMut, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.put_u8(byte);
            return;
        }
        out.put_u8(byte | 0x80);
    }
}

/// The bytes [`put_len`] writes for `n`.
pub(crate) fn len_size(n: usize) -> usize {
    let bits = usize::BITS - (n | 1).leading_zeros();
    bits.div_ceil(7) as usize
}

/// Reads a LEB128 length at `*at`, moving past it.
pub(crate) fn take_len(buf: &[u8], at: &mut usize) -> Result<usize, MalformedHash> {
    let mut n: usize = 0;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*at).ok_or(MalformedHash)?;
        *at += 1;
        n |= ((byte & 0x7f) as usize)
            .checked_shl(shift)
            .ok_or(MalformedHash)?;
        if byte & 0x80 == 0 {
            return Ok(n);
        }
    }
    Err(MalformedHash)
}

/// Reads a length-prefixed part at `*at`, moving past it.
pub(crate) fn take<'a>(buf: &'a [u8], at: &mut usize) -> Result<&'a [u8], MalformedHash> {
    let len = take_len(buf, at)?;
    let end = at.checked_add(len).ok_or(MalformedHash)?;
    let part = buf.get(*at..end).ok_or(MalformedHash)?;
    *at = end;
    Ok(part)
}

/// Iterates the items of an encoding framed as a LEB128 count then each item's parts (a
/// hash's field and value, a set's member); yields `Err` once and stops on malformed bytes.
pub struct Items<'a, T> {
    buf: &'a [u8],
    at: usize,
    /// Items still to read, or the error to report next (a bad count).
    left: Result<usize, MalformedHash>,
    /// Reads one item at `at`, moving past it.
    read: fn(&'a [u8], &mut usize) -> Result<T, MalformedHash>,
}

impl<'a, T> Iterator for Items<'a, T> {
    type Item = Result<T, MalformedHash>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.left {
            Ok(0) => None,
            Err(e) => {
                self.left = Ok(0);
                Some(Err(e))
            }
            Ok(n) => {
                let item = (self.read)(self.buf, &mut self.at);
                self.left = Ok(if item.is_ok() { n - 1 } else { 0 });
                Some(item)
            }
        }
    }
}

/// The items of `image`, each read by `read` (see [`Items`]).
pub(crate) fn items<'a, T>(
    image: &'a [u8],
    read: fn(&'a [u8], &mut usize) -> Result<T, MalformedHash>,
) -> Items<'a, T> {
    let mut at = 0;
    let left = if image.is_empty() {
        Ok(0)
    } else {
        take_len(image, &mut at)
    };
    Items {
        buf: image,
        at,
        left,
        read,
    }
}

/// Iterates the pairs of an encoded hash.
pub type Pairs<'a> = Items<'a, (&'a [u8], &'a [u8])>;

/// The pairs of an encoded hash, in order.
pub fn pairs(image: &[u8]) -> Pairs<'_> {
    items(image, |buf, at| Ok((take(buf, at)?, take(buf, at)?)))
}

/// Whether Redis 7.0 keeps a hash of these pairs as a listpack (its defaults: at most 128
/// fields, none and no value over 64 bytes) rather than a hash table: what OBJECT ENCODING
/// and MEMORY USAGE answer depends on it.
pub fn fits_listpack(pairs: &[(&[u8], &[u8])]) -> bool {
    pairs.len() <= 128 && pairs.iter().all(|(f, v)| f.len() <= 64 && v.len() <= 64)
}

/// The number of fields; 0 for empty or malformed bytes.
pub fn len(image: &[u8]) -> usize {
    if image.is_empty() {
        return 0;
    }
    take_len(image, &mut 0).unwrap_or(0)
}

/// The value of `field`, sliced out of `image` (no copy); `None` if absent or malformed.
pub fn get(image: &Bytes, field: &[u8]) -> Option<Bytes> {
    for pair in pairs(image) {
        let (f, v) = pair.ok()?;
        if f == field {
            return Some(image.slice_ref(v));
        }
    }
    None
}

/// Encodes pairs, in the order given (the caller keeps fields unique).
pub fn encode<'a>(pairs: impl ExactSizeIterator<Item = (&'a [u8], &'a [u8])> + Clone) -> Bytes {
    let count = pairs.len();
    if count == 0 {
        return Bytes::new();
    }
    // One allocation of the exact size, not a doubling per growth: a hash is re-encoded
    // whole on every change.
    let size = pairs.clone().fold(len_size(count), |n, (f, v)| {
        n + len_size(f.len()) + f.len() + len_size(v.len()) + v.len()
    });
    let mut out = BytesMut::with_capacity(size);
    put_len(&mut out, count);
    for (field, value) in pairs {
        put_len(&mut out, field.len());
        out.put_slice(field);
        put_len(&mut out, value.len());
        out.put_slice(value);
    }
    out.freeze()
}

/// A hash being read or changed by a command: its pairs in insertion order, the fields and
/// values sliced out of the encoded image they came from.
///
/// Lookups are linear, as in Redis's small-hash encoding; hashes are rows and objects, rarely
/// more than a few dozen fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HashValue {
    pairs: Vec<(Bytes, Bytes)>,
}

impl HashValue {
    /// An empty hash.
    pub fn new() -> HashValue {
        HashValue::default()
    }

    /// Decodes an image.
    pub fn decode(image: &Bytes) -> Result<HashValue, MalformedHash> {
        let mut out = Vec::with_capacity(len(image).min(1024));
        for pair in pairs(image) {
            let (f, v) = pair?;
            out.push((image.slice_ref(f), image.slice_ref(v)));
        }
        Ok(HashValue { pairs: out })
    }

    /// The encoded image.
    pub fn encode(&self) -> Bytes {
        encode(self.pairs.iter().map(|(f, v)| (&f[..], &v[..])))
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// True when there is no field (the key does not exist).
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The value of `field`.
    pub fn get(&self, field: &[u8]) -> Option<&Bytes> {
        self.pairs.iter().find(|(f, _)| f == field).map(|(_, v)| v)
    }

    /// Sets `field`; true if it is new. A field that exists keeps its place.
    pub fn set(&mut self, field: Bytes, value: Bytes) -> bool {
        match self.pairs.iter_mut().find(|(f, _)| *f == field) {
            Some((_, v)) => {
                *v = value;
                false
            }
            None => {
                self.pairs.push((field, value));
                true
            }
        }
    }

    /// Removes `field`; true if it was there. The others keep their order.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self.pairs.iter().position(|(f, _)| f == field) {
            Some(i) => {
                self.pairs.remove(i);
                true
            }
            None => false,
        }
    }

    /// The pairs, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &(Bytes, Bytes)> {
        self.pairs.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_in_insertion_order() {
        let mut h = HashValue::new();
        assert!(h.set(Bytes::from("b"), Bytes::from("2")));
        assert!(h.set(Bytes::from("a"), Bytes::from("")));
        assert!(!h.set(Bytes::from("b"), Bytes::from("22")));
        let big = Bytes::from(vec![7u8; 300]);
        assert!(h.set(Bytes::from("c"), big.clone()));
        let image = h.encode();
        assert_eq!(len(&image), 3);
        let back = HashValue::decode(&image).unwrap();
        assert_eq!(back, h);
        let order: Vec<&[u8]> = back.iter().map(|(f, _)| &f[..]).collect();
        assert_eq!(order, vec![&b"b"[..], b"a", b"c"]);
        assert_eq!(get(&image, b"c"), Some(big));
        assert_eq!(get(&image, b"b"), Some(Bytes::from("22")));
        assert_eq!(get(&image, b"zz"), None);
        assert!(h.remove(b"b"));
        assert!(!h.remove(b"b"));
        assert_eq!(HashValue::decode(&h.encode()).unwrap().len(), 2);
    }

    #[test]
    fn the_encoding_is_sized_exactly_before_it_is_written() {
        for n in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u32::MAX as usize,
            usize::MAX,
        ] {
            let mut out = BytesMut::new();
            put_len(&mut out, n);
            assert_eq!(len_size(n), out.len(), "{n}");
        }
        let mut h = HashValue::new();
        h.set(Bytes::from("f"), Bytes::from(vec![1u8; 200]));
        h.set(Bytes::from(vec![2u8; 130]), Bytes::new());
        let image = h.encode();
        assert_eq!(image.len(), 1 + 1 + 1 + 2 + 200 + 2 + 130 + 1);
        assert_eq!(HashValue::decode(&image).unwrap(), h);
    }

    #[test]
    fn empty_bytes_are_the_empty_hash() {
        assert_eq!(len(b""), 0);
        assert!(HashValue::decode(&Bytes::new()).unwrap().is_empty());
        assert!(HashValue::new().encode().is_empty());
    }

    #[test]
    fn malformed_bytes_are_reported_never_trusted() {
        for bad in [
            &[0x02, 0x01, b'a'][..],
            &[0x01, 0x05, b'a'],
            &[0xff; 12],
            &[
                0x01, 0x01, b'a', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
        ] {
            let image = Bytes::copy_from_slice(bad);
            assert_eq!(HashValue::decode(&image), Err(MalformedHash), "{bad:?}");
            assert_eq!(get(&image, b"a"), None);
        }
    }
}
