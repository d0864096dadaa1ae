//! The encoding of a set value, as the cache, the write-back buffer and the journal hold it: a
//! LEB128 count, then each member as a LEB128 length and its bytes (the framing of [`hash`],
//! one part per entry). Empty bytes are the empty set. The built-in table keeps a set's
//! members as rows of their own and builds this image when it reads the key.
//!
//! The order is Redis 7.0's where Redis fixes one: a set of at most
//! [`MAX_INTSET_ENTRIES`] members that are all integers is an `intset` in Redis, which SMEMBERS
//! walks in ascending numeric order; so is this image. Any other set is a hash table in Redis,
//! whose order no client can rely on; this image keeps insertion order.
//!
//! [`hash`]: super::hash

use bytes::{BufMut, Bytes, BytesMut};
use foldhash::fast::RandomState;
use indexmap::IndexSet;

use super::hash::{items, put_len, take, Items, MalformedHash};

/// Redis 7.0's default `set-max-intset-entries`: the largest set of integers kept sorted.
pub const MAX_INTSET_ENTRIES: usize = 512;

/// Iterates the members of an encoded set; yields `Err` once and stops on malformed bytes.
pub type Members<'a> = Items<'a, &'a [u8]>;

/// The members of an encoded set, in order.
pub fn members(image: &[u8]) -> Members<'_> {
    items(image, take)
}

/// Whether `member` is in the encoded set, by a scan of the bytes (no set is built: cheaper
/// than [`SetValue::decode`] for one lookup); false for malformed bytes.
pub fn contains(image: &[u8], member: &[u8]) -> bool {
    members(image).any(|m| m.is_ok_and(|m| m == member))
}

/// The number of members; 0 for empty or malformed bytes.
pub fn len(image: &[u8]) -> usize {
    super::hash::len(image)
}

/// The member as an `i64` if Redis would keep it in an intset: the canonical decimal text of
/// a 64-bit integer (no sign but `-`, no leading zero, no spaces), as `string2ll` accepts.
pub fn as_intset_entry(member: &[u8]) -> Option<i64> {
    if member.len() > 20 {
        return None;
    }
    let n: i64 = std::str::from_utf8(member).ok()?.parse().ok()?;
    (itoa::Buffer::new().format(n).as_bytes() == member).then_some(n)
}

/// A set being read or changed by a command, its members sliced out of the image they came
/// from. Membership is a hash lookup; the order is the image's (see the module's note).
#[derive(Debug, Clone, Default)]
pub struct SetValue {
    members: IndexSet<Bytes, RandomState>,
}

impl PartialEq for SetValue {
    fn eq(&self, other: &SetValue) -> bool {
        self.members.len() == other.members.len()
            && self.members.iter().all(|m| other.members.contains(m))
    }
}

impl Eq for SetValue {}

impl SetValue {
    /// An empty set.
    pub fn new() -> SetValue {
        SetValue::default()
    }

    /// Decodes an image.
    pub fn decode(image: &Bytes) -> Result<SetValue, MalformedHash> {
        let mut members =
            IndexSet::with_capacity_and_hasher(len(image).min(1 << 16), RandomState::default());
        for member in self::members(image) {
            members.insert(image.slice_ref(member?));
        }
        Ok(SetValue { members })
    }

    /// A set of these members (repeats count once).
    pub fn from_members(members: impl IntoIterator<Item = Bytes>) -> SetValue {
        SetValue {
            members: members.into_iter().collect(),
        }
    }

    /// The encoded image, in Redis's order (see the module's note).
    pub fn encode(&self) -> Bytes {
        let count = self.members.len();
        if count == 0 {
            return Bytes::new();
        }
        let size = self.members.iter().fold(10, |n, m| n + 10 + m.len());
        let mut out = BytesMut::with_capacity(size);
        put_len(&mut out, count);
        let mut put = |m: &[u8]| {
            put_len(&mut out, m.len());
            out.put_slice(m);
        };
        match self.intset_order() {
            Some(sorted) => sorted.iter().for_each(|(_, m)| put(m)),
            None => self.members.iter().for_each(|m| put(m)),
        }
        out.freeze()
    }

    /// The members sorted by value when the set is an intset in Redis; `None` otherwise.
    fn intset_order(&self) -> Option<Vec<(i64, &Bytes)>> {
        if self.members.len() > MAX_INTSET_ENTRIES {
            return None;
        }
        let mut sorted = self
            .members
            .iter()
            .map(|m| as_intset_entry(m).map(|n| (n, m)))
            .collect::<Option<Vec<_>>>()?;
        sorted.sort_unstable_by_key(|(n, _)| *n);
        Some(sorted)
    }

    /// What OBJECT ENCODING answers for this set in Redis 7.0.
    pub fn encoding_name(&self) -> &'static str {
        if self.intset_order().is_some() {
            "intset"
        } else {
            "hashtable"
        }
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True when there is no member (the key does not exist).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether `member` is in the set.
    pub fn contains(&self, member: &[u8]) -> bool {
        self.members.contains(member)
    }

    /// Adds `member`; true if it is new.
    pub fn insert(&mut self, member: Bytes) -> bool {
        self.members.insert(member)
    }

    /// Removes `member`; true if it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        self.members.swap_remove(member)
    }

    /// The member at `index` (in [`SetValue::iter`]'s order), for random picks.
    pub fn get_index(&self, index: usize) -> Option<&Bytes> {
        self.members.get_index(index)
    }

    /// Removes and returns the member at `index`.
    pub fn take_index(&mut self, index: usize) -> Option<Bytes> {
        self.members.swap_remove_index(index)
    }

    /// The members, in insertion order (not the image's order for an intset: see
    /// [`SetValue::sorted_like_redis`]).
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Bytes> {
        self.members.iter()
    }

    /// The members in the order SMEMBERS answers them (see the module's note).
    pub fn sorted_like_redis(&self) -> Vec<Bytes> {
        match self.intset_order() {
            Some(sorted) => sorted.into_iter().map(|(_, m)| m.clone()).collect(),
            None => self.members.iter().cloned().collect(),
        }
    }
}

/// A set operation over several sets (SINTER, SUNION, SDIFF and their STORE forms); a missing
/// key is the empty set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetAlgebra {
    /// Members in every set.
    Intersection,
    /// Members in any set.
    Union,
    /// Members of the first set in none of the others.
    Difference,
}

impl SetAlgebra {
    /// The result over `sets`, in order (the first is the base of a difference).
    pub fn apply(self, sets: &[Option<SetValue>]) -> SetValue {
        match self {
            SetAlgebra::Intersection => {
                if sets.iter().any(Option::is_none) {
                    return SetValue::new();
                }
                let mut all: Vec<&SetValue> = sets.iter().flatten().collect();
                // Walk the smallest set, probing the others, as Redis does.
                all.sort_by_key(|s| s.len());
                let Some((smallest, rest)) = all.split_first() else {
                    return SetValue::new();
                };
                SetValue::from_members(
                    smallest
                        .iter()
                        .filter(|m| rest.iter().all(|s| s.contains(m)))
                        .cloned(),
                )
            }
            SetAlgebra::Union => {
                SetValue::from_members(sets.iter().flatten().flat_map(|s| s.iter().cloned()))
            }
            SetAlgebra::Difference => {
                let Some(Some(first)) = sets.first() else {
                    return SetValue::new();
                };
                let others: Vec<&SetValue> = sets[1..].iter().flatten().collect();
                SetValue::from_members(
                    first
                        .iter()
                        .filter(|m| !others.iter().any(|s| s.contains(m)))
                        .cloned(),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(members: &[&str]) -> SetValue {
        SetValue::from_members(members.iter().map(|m| Bytes::copy_from_slice(m.as_bytes())))
    }

    fn order(image: &Bytes) -> Vec<String> {
        members(image)
            .map(|m| String::from_utf8(m.unwrap().to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn an_intset_is_encoded_in_numeric_order_and_others_in_insertion_order() {
        let ints = set(&["10", "-3", "7", "10"]);
        assert_eq!(ints.len(), 3);
        assert_eq!(order(&ints.encode()), vec!["-3", "7", "10"]);
        assert_eq!(ints.encoding_name(), "intset");
        let mixed = set(&["b", "1", "a"]);
        assert_eq!(order(&mixed.encode()), vec!["b", "1", "a"]);
        assert_eq!(mixed.encoding_name(), "hashtable");
        // Not canonical integers: Redis keeps them as strings.
        assert_eq!(set(&["01", "2"]).encoding_name(), "hashtable");
        assert_eq!(set(&["+1"]).encoding_name(), "hashtable");
        let many: Vec<String> = (0..=MAX_INTSET_ENTRIES).map(|i| i.to_string()).collect();
        let many = SetValue::from_members(many.into_iter().map(Bytes::from));
        assert_eq!(many.encoding_name(), "hashtable");
    }

    #[test]
    fn round_trips_and_edits() {
        let mut s = set(&["x", "y"]);
        assert!(s.insert(Bytes::from("z")));
        assert!(!s.insert(Bytes::from("x")));
        assert!(s.remove(b"y"));
        assert!(!s.remove(b"y"));
        let back = SetValue::decode(&s.encode()).unwrap();
        assert_eq!(back, s);
        assert!(back.contains(b"z") && !back.contains(b"y"));
        assert!(contains(&s.encode(), b"z") && !contains(&s.encode(), b"y"));
        assert!(!contains(b"", b"z") && !contains(&[0xff; 4], b"z"));
        assert_eq!(len(&s.encode()), 2);
        assert!(SetValue::decode(&Bytes::new()).unwrap().is_empty());
        assert!(SetValue::new().encode().is_empty());
    }

    #[test]
    fn the_algebra_treats_a_missing_key_as_empty() {
        let a = Some(set(&["a", "b", "c"]));
        let b = Some(set(&["b", "c", "d"]));
        let names = |s: SetValue| {
            let mut v: Vec<String> = s
                .iter()
                .map(|m| String::from_utf8(m.to_vec()).unwrap())
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            names(SetAlgebra::Intersection.apply(&[a.clone(), b.clone()])),
            ["b", "c"]
        );
        assert!(SetAlgebra::Intersection
            .apply(&[a.clone(), None])
            .is_empty());
        assert_eq!(
            names(SetAlgebra::Union.apply(&[a.clone(), None, b.clone()])),
            ["a", "b", "c", "d"]
        );
        assert_eq!(
            names(SetAlgebra::Difference.apply(&[a.clone(), b.clone()])),
            ["a"]
        );
        assert_eq!(
            names(SetAlgebra::Difference.apply(&[a, None])),
            ["a", "b", "c"]
        );
        assert!(SetAlgebra::Difference.apply(&[None, b]).is_empty());
    }

    #[test]
    fn malformed_bytes_are_reported_never_trusted() {
        for bad in [&[0x02, 0x01, b'a'][..], &[0x01, 0x05, b'a'], &[0xff; 12]] {
            let image = Bytes::copy_from_slice(bad);
            assert!(SetValue::decode(&image).is_err(), "{bad:?}");
        }
    }
}
