//! The encoding of a sorted set, as the cache, the write-back buffer and the journal hold it: a
//! LEB128 count, then each member as a LEB128 length and its bytes followed by its score as 8
//! bytes (an IEEE 754 double, big-endian), in Redis's order: by score, then by member bytes.
//! Empty bytes are the empty sorted set. The built-in table keeps each member as a row of its
//! own, its score in the row's `score` column, and builds this image when it reads the key.
//!
//! Being in order, the image answers rank and score ranges by a walk from its head; a
//! [`ZSetValue`] is built only to change the set.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use bytes::{BufMut, Bytes, BytesMut};
use foldhash::fast::RandomState;
use hashbrown::HashMap;

use super::hash::{items, put_len, take, Items, MalformedHash};

/// Iterates the (member, score) entries of an encoded sorted set, in order; yields `Err` once
/// and stops on malformed bytes.
pub type Entries<'a> = Items<'a, (&'a [u8], f64)>;

/// The entries of an encoded sorted set, lowest score first.
pub fn entries(image: &[u8]) -> Entries<'_> {
    items(image, |buf, at| {
        let member = take(buf, at)?;
        let end = at.checked_add(8).ok_or(MalformedHash)?;
        let bits = buf.get(*at..end).ok_or(MalformedHash)?;
        *at = end;
        let mut be = [0u8; 8];
        be.copy_from_slice(bits);
        let score = f64::from_be_bytes(be);
        if score.is_nan() {
            return Err(MalformedHash);
        }
        Ok((member, score))
    })
}

/// The number of members; 0 for empty or malformed bytes.
pub fn len(image: &[u8]) -> usize {
    super::hash::len(image)
}

/// The score of `member`, by a scan of the bytes (no set is built); `None` if it is absent or
/// the bytes are malformed.
pub fn score(image: &[u8], member: &[u8]) -> Option<f64> {
    locate(image, member)?.score()
}

/// The entries of an encoded sorted set as a vector of slices (no copy), in order; empty for
/// malformed bytes, which no write ever stores.
pub fn view(image: &[u8]) -> Vec<(&[u8], f64)> {
    let mut out = Vec::with_capacity(len(image).min(1 << 16));
    for entry in entries(image) {
        match entry {
            Ok(e) => out.push(e),
            Err(_) => return Vec::new(),
        }
    }
    out
}

/// Encodes entries given in order (see the module's note).
pub fn encode<'a>(entries: impl ExactSizeIterator<Item = (&'a [u8], f64)> + Clone) -> Bytes {
    let count = entries.len();
    if count == 0 {
        return Bytes::new();
    }
    let size = entries.clone().fold(10, |n, (m, _)| n + 18 + m.len());
    let mut out = BytesMut::with_capacity(size);
    put_len(&mut out, count);
    for (member, score) in entries {
        put_len(&mut out, member.len());
        out.put_slice(member);
        out.put_f64(score);
    }
    out.freeze()
}

/// Where one member is in an encoded sorted set ([`locate`]).
#[derive(Debug, Clone)]
pub struct Located {
    /// The number of entries.
    count: usize,
    /// Where the entries begin (after the count).
    body: usize,
    /// The member's entry: its bytes in the image and its score.
    entry: Option<(std::ops::Range<usize>, f64)>,
}

impl Located {
    /// The member's score, if it is in the set.
    pub fn score(&self) -> Option<f64> {
        self.entry.as_ref().map(|(_, score)| *score)
    }
}

/// Finds `member` in the image by one walk that stops at it (the whole image when it is
/// absent). `None` for malformed bytes up to there.
pub fn locate(image: &[u8], member: &[u8]) -> Option<Located> {
    let mut at = 0;
    let count = if image.is_empty() {
        0
    } else {
        super::hash::take_len(image, &mut at).ok()?
    };
    let body = at;
    for _ in 0..count {
        let start = at;
        let m = take(image, &mut at).ok()?;
        let score = read_score(image, &mut at)?;
        if m == member {
            return Some(Located {
                count,
                body,
                entry: Some((start..at, score)),
            });
        }
    }
    (at == image.len()).then_some(Located {
        count,
        body,
        entry: None,
    })
}

/// The score at `*at`, moving past it; `None` past the end.
fn read_score(image: &[u8], at: &mut usize) -> Option<f64> {
    let bits = image.get(*at..at.checked_add(8)?)?;
    *at += 8;
    Some(f64::from_be_bytes(bits.try_into().ok()?))
}

/// The image with the member [`locate`] found (or did not) at `score`: it walks only the
/// entries between the member's old place and its new one (a ZINCRBY moves a member a few
/// places), then copies the image in at most three runs around the old entry and the new
/// one, what a write of one member costs. `None` for malformed bytes on that walk.
pub fn with_located(image: &[u8], located: &Located, member: &[u8], score: f64) -> Option<Bytes> {
    // As `ZSetValue::insert`: -0 is kept as 0.
    let new = (Score(if score == 0.0 { 0.0 } else { score }), member);
    // The first entry at or after `from` that sorts after the new one, else `to`.
    let first_after = |from: usize, to: usize| -> Option<usize> {
        let mut at = from;
        while at < to {
            let start = at;
            let m = take(image, &mut at).ok()?;
            let s = read_score(image, &mut at)?;
            if new < (Score(s), m) {
                return Some(start);
            }
        }
        (at == to).then_some(to)
    };
    let (cut, insert_at) = match &located.entry {
        None => (
            image.len()..image.len(),
            first_after(located.body, image.len())?,
        ),
        Some((range, old)) if new < (Score(*old), member) => {
            (range.clone(), first_after(located.body, range.start)?)
        }
        Some((range, _)) => (range.clone(), first_after(range.end, image.len())?),
    };
    let total = located.count - usize::from(located.entry.is_some()) + 1;
    let mut out = BytesMut::with_capacity(image.len() + member.len() + 20);
    put_len(&mut out, total);
    let put_new = |out: &mut BytesMut| {
        put_len(out, member.len());
        out.put_slice(member);
        out.put_f64(new.0 .0);
    };
    // `insert_at` is the start of an entry other than the old one, or an end: never inside
    // the cut.
    if insert_at <= cut.start {
        out.put_slice(&image[located.body..insert_at]);
        put_new(&mut out);
        out.put_slice(&image[insert_at..cut.start]);
        out.put_slice(&image[cut.end..]);
    } else {
        out.put_slice(&image[located.body..cut.start]);
        out.put_slice(&image[cut.end..insert_at]);
        put_new(&mut out);
        out.put_slice(&image[insert_at..]);
    }
    Some(out.freeze())
}

/// The image with `member` at `score` (moved if it was there, added if not), or without it
/// (`score` `None`): [`locate`] then [`with_located`], or the image without the member's
/// entry. `None` for malformed bytes.
pub fn with_entry(image: &[u8], member: &[u8], score: Option<f64>) -> Option<Bytes> {
    let located = locate(image, member)?;
    match (score, &located.entry) {
        (Some(score), _) => with_located(image, &located, member, score),
        (None, None) => Some(Bytes::copy_from_slice(image)),
        (None, Some((range, _))) => {
            if located.count == 1 {
                return Some(Bytes::new());
            }
            let mut out = BytesMut::with_capacity(image.len());
            put_len(&mut out, located.count - 1);
            out.put_slice(&image[located.body..range.start]);
            out.put_slice(&image[range.end..]);
            Some(out.freeze())
        }
    }
}

/// Whether Redis 7.0 keeps a sorted set as a listpack (its defaults: at most 128 members,
/// none over 64 bytes) rather than a skiplist: what OBJECT ENCODING, MEMORY USAGE and ZSCAN's
/// paging depend on.
pub fn fits_listpack<'a>(mut members: impl ExactSizeIterator<Item = &'a [u8]>) -> bool {
    members.len() <= 128 && members.all(|m| m.len() <= 64)
}

/// A score in Redis's order: by value, `-0` equal to `0`. Never NaN (nothing stores one).
#[derive(Debug, Clone, Copy)]
struct Score(f64);

impl PartialEq for Score {
    fn eq(&self, other: &Score) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Score) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Score) -> Ordering {
        self.0.partial_cmp(&other.0).unwrap_or(Ordering::Equal)
    }
}

/// A sorted set being changed by a command: each member's score, and the members in Redis's
/// order (score, then member bytes).
#[derive(Debug, Clone, Default)]
pub struct ZSetValue {
    scores: HashMap<Bytes, f64, RandomState>,
    order: BTreeSet<(Score, Bytes)>,
}

impl PartialEq for ZSetValue {
    fn eq(&self, other: &ZSetValue) -> bool {
        self.scores.len() == other.scores.len()
            && self.scores.iter().all(|(m, s)| {
                other
                    .scores
                    .get(m)
                    .is_some_and(|o| o.to_bits() == s.to_bits())
            })
    }
}

impl Eq for ZSetValue {}

/// What [`ZSetValue::add`] did to one member.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Added {
    /// The member is new, with this score.
    New(f64),
    /// The member's score changed to this one.
    Updated(f64),
    /// The member kept its score (it equals the new one), which is this one.
    Same(f64),
    /// Nothing was done: NX on an existing member, XX on a missing one, or GT/LT refused it.
    Skipped,
}

/// ZADD's conditions (NX, XX, GT, LT) and INCR.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddFlags {
    /// Only add new members.
    pub nx: bool,
    /// Only update existing members.
    pub xx: bool,
    /// Only update to a greater score.
    pub gt: bool,
    /// Only update to a lower score.
    pub lt: bool,
    /// Add the score to the current one (ZINCRBY).
    pub incr: bool,
}

impl AddFlags {
    /// What ZADD of `score` does to a member whose score is `current` (`None`: absent), as
    /// Redis's `zsetAdd` decides: the conditions first, then INCR's sum (an error if it is
    /// NaN), then GT/LT against the current score.
    pub fn decide(self, current: Option<f64>, score: f64) -> Result<Added, NanScore> {
        match current {
            Some(_) if self.nx => Ok(Added::Skipped),
            Some(current) => {
                let score = if self.incr { current + score } else { score };
                if score.is_nan() {
                    return Err(NanScore);
                }
                if (self.lt && score >= current) || (self.gt && score <= current) {
                    Ok(Added::Skipped)
                } else if score == current {
                    Ok(Added::Same(score))
                } else {
                    Ok(Added::Updated(score))
                }
            }
            None if self.xx => Ok(Added::Skipped),
            None => Ok(Added::New(score)),
        }
    }
}

/// The sum of an INCR is NaN (`+inf` plus `-inf`): Redis refuses it and changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NanScore;

impl ZSetValue {
    /// An empty sorted set.
    pub fn new() -> ZSetValue {
        ZSetValue::default()
    }

    /// Decodes an image.
    pub fn decode(image: &Bytes) -> Result<ZSetValue, MalformedHash> {
        let mut z = ZSetValue::new();
        z.scores.reserve(len(image).min(1 << 16));
        for entry in entries(image) {
            let (member, score) = entry?;
            z.insert(image.slice_ref(member), score);
        }
        Ok(z)
    }

    /// A sorted set of these entries (a repeated member keeps the last score).
    pub fn from_entries(entries: impl IntoIterator<Item = (Bytes, f64)>) -> ZSetValue {
        let mut z = ZSetValue::new();
        for (member, score) in entries {
            z.insert(member, score);
        }
        z
    }

    /// The encoded image, in order (`-0` as `0`).
    pub fn encode(&self) -> Bytes {
        encode(
            self.order
                .iter()
                .map(|(s, m)| (&m[..], if s.0 == 0.0 { 0.0 } else { s.0 })),
        )
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// True when there is no member (the key does not exist).
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// The score of `member`.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).copied()
    }

    /// Sets `member`'s score, adding it if it is new; its old score. A score of `-0` keeps
    /// its sign here (ZUNION answers `-0` as Redis does) and is encoded as `0`, as Redis's
    /// listpack keeps it (ZSCORE answers `0`).
    pub fn insert(&mut self, member: Bytes, score: f64) -> Option<f64> {
        let old = self.scores.insert(member.clone(), score);
        if let Some(old) = old {
            self.order.remove(&(Score(old), member.clone()));
        }
        self.order.insert((Score(score), member));
        old
    }

    /// Removes `member`; its score if it was there.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let (member, score) = self.scores.remove_entry(member)?;
        self.order.remove(&(Score(score), member));
        Some(score)
    }

    /// ZADD of one member as Redis's `zsetAdd` does it (see [`AddFlags::decide`]).
    pub fn add(&mut self, member: &Bytes, score: f64, flags: AddFlags) -> Result<Added, NanScore> {
        let added = flags.decide(self.score(member), score)?;
        if let Added::New(s) | Added::Updated(s) = added {
            self.insert(member.clone(), s);
        }
        Ok(added)
    }

    /// The entries in order as [`view`] gives them for an image, for the range functions,
    /// without encoding the set.
    pub fn view(&self) -> Vec<(&[u8], f64)> {
        self.iter().map(|(m, s)| (&m[..], s)).collect()
    }

    /// The entries in order, lowest score first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&Bytes, f64)> + ExactSizeIterator {
        self.order.iter().map(|(s, m)| (m, s.0))
    }

    /// Removes and returns the lowest (`max` false) or highest entry.
    pub fn pop(&mut self, max: bool) -> Option<(Bytes, f64)> {
        let (score, member) = if max {
            self.order.pop_last()?
        } else {
            self.order.pop_first()?
        };
        self.scores.remove(&member);
        Some((member, score.0))
    }
}

/// One end of a score range (ZRANGEBYSCORE's `min` / `max`): a value, and whether it is
/// excluded (`(`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreBound {
    /// The score.
    pub value: f64,
    /// `(`: the bound itself is outside the range.
    pub exclusive: bool,
}

/// A score range, as Redis's `zrangespec`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreRange {
    /// The lower end.
    pub min: ScoreBound,
    /// The upper end.
    pub max: ScoreBound,
}

impl ScoreRange {
    /// Whether `score` is not below the lower end.
    pub fn above_min(&self, score: f64) -> bool {
        if self.min.exclusive {
            score > self.min.value
        } else {
            score >= self.min.value
        }
    }

    /// Whether `score` is not above the upper end.
    pub fn below_max(&self, score: f64) -> bool {
        if self.max.exclusive {
            score < self.max.value
        } else {
            score <= self.max.value
        }
    }

    /// Whether the range can hold anything (Redis answers empty at once when it cannot).
    pub fn is_empty(&self) -> bool {
        self.min.value > self.max.value
            || (self.min.value == self.max.value && (self.min.exclusive || self.max.exclusive))
    }

    /// The positions (in order) of the entries of `entries` inside the range.
    pub fn positions(&self, entries: &[(&[u8], f64)]) -> std::ops::Range<usize> {
        if self.is_empty() {
            return 0..0;
        }
        let start = entries.partition_point(|(_, s)| !self.above_min(*s));
        let end = entries.partition_point(|(_, s)| self.below_max(*s));
        start..end.max(start)
    }
}

/// One end of a lexicographic range (ZRANGEBYLEX's `min` / `max`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LexBound {
    /// `-`: below every member.
    Min,
    /// `+`: above every member.
    Max,
    /// `[member` (inclusive) or `(member` (exclusive).
    Member {
        /// The member.
        member: Bytes,
        /// `(`: the member itself is outside the range.
        exclusive: bool,
    },
}

/// A lexicographic range, as Redis's `zlexrangespec`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexRange {
    /// The lower end.
    pub min: LexBound,
    /// The upper end.
    pub max: LexBound,
}

impl LexRange {
    /// Redis's `sdscmplex`: `-` below and `+` above everything.
    fn cmp(a: &LexBound, b: &LexBound) -> Ordering {
        match (a, b) {
            (LexBound::Min, LexBound::Min) | (LexBound::Max, LexBound::Max) => Ordering::Equal,
            (LexBound::Min, _) | (_, LexBound::Max) => Ordering::Less,
            (LexBound::Max, _) | (_, LexBound::Min) => Ordering::Greater,
            (LexBound::Member { member: x, .. }, LexBound::Member { member: y, .. }) => x.cmp(y),
        }
    }

    fn exclusive(b: &LexBound) -> bool {
        match b {
            LexBound::Min | LexBound::Max => true,
            LexBound::Member { exclusive, .. } => *exclusive,
        }
    }

    fn value_cmp(member: &[u8], bound: &LexBound) -> Ordering {
        match bound {
            LexBound::Min => Ordering::Greater,
            LexBound::Max => Ordering::Less,
            LexBound::Member { member: b, .. } => member.cmp(b),
        }
    }

    /// Whether `member` is not below the lower end.
    pub fn above_min(&self, member: &[u8]) -> bool {
        let c = Self::value_cmp(member, &self.min);
        if Self::exclusive(&self.min) {
            c == Ordering::Greater
        } else {
            c != Ordering::Less
        }
    }

    /// Whether `member` is not above the upper end.
    pub fn below_max(&self, member: &[u8]) -> bool {
        let c = Self::value_cmp(member, &self.max);
        if Self::exclusive(&self.max) {
            c == Ordering::Less
        } else {
            c != Ordering::Greater
        }
    }

    /// Whether the range can hold anything, as Redis's `zslIsInLexRange` checks it.
    fn can_hold_anything(&self) -> bool {
        match Self::cmp(&self.min, &self.max) {
            Ordering::Greater => false,
            Ordering::Equal => !(Self::exclusive(&self.min) || Self::exclusive(&self.max)),
            Ordering::Less => true,
        }
    }

    /// The positions of the entries in the range, found as Redis walks a listpack: the range
    /// must overlap the first and last members; then from the first member not below `min`,
    /// while members are not above `max`. (Redis leaves the answer unspecified when the scores
    /// differ; this is what it answers for a small set.)
    pub fn positions(&self, entries: &[(&[u8], f64)]) -> std::ops::Range<usize> {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return 0..0;
        };
        if !self.can_hold_anything() || !self.above_min(last.0) || !self.below_max(first.0) {
            return 0..0;
        }
        let Some(start) = entries.iter().position(|(m, _)| self.above_min(m)) else {
            return 0..0;
        };
        let len = entries[start..]
            .iter()
            .take_while(|(m, _)| self.below_max(m))
            .count();
        start..start + len
    }
}

/// How ZUNION / ZINTER combine the scores of a member found in several inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Aggregate {
    /// Add them (`+inf` plus `-inf` is 0, as in Redis).
    #[default]
    Sum,
    /// Keep the lowest.
    Min,
    /// Keep the highest.
    Max,
}

impl Aggregate {
    fn combine(self, into: &mut f64, value: f64) {
        match self {
            Aggregate::Sum => {
                *into += value;
                if into.is_nan() {
                    *into = 0.0;
                }
            }
            Aggregate::Min => {
                if value < *into {
                    *into = value
                }
            }
            Aggregate::Max => {
                if value > *into {
                    *into = value
                }
            }
        }
    }
}

/// ZUNION / ZINTER / ZDIFF and their STORE forms over sorted sets (a plain set's members score
/// 1, a missing key is empty), as Redis's `zunionInterDiffGenericCommand` computes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZSetAlgebra {
    /// Members in any input.
    Union,
    /// Members in every input.
    Intersection,
    /// Members of the first input in none of the others (scores from the first).
    Difference,
}

impl ZSetAlgebra {
    /// The result; `weights` (one per input, or empty for all 1) multiply each input's scores
    /// (a NaN product is 0, as in Redis).
    pub fn apply(
        self,
        inputs: &[Option<ZSetValue>],
        weights: &[f64],
        aggregate: Aggregate,
    ) -> ZSetValue {
        let weight = |i: usize| weights.get(i).copied().unwrap_or(1.0);
        let weighted = |i: usize, score: f64| {
            let v = weight(i) * score;
            if v.is_nan() {
                0.0
            } else {
                v
            }
        };
        match self {
            ZSetAlgebra::Union => {
                // Smallest input first, as Redis adds them (the order changes float sums).
                let mut order: Vec<usize> = (0..inputs.len()).collect();
                order.sort_by_key(|&i| inputs[i].as_ref().map_or(0, ZSetValue::len));
                let mut acc: HashMap<Bytes, f64, RandomState> = HashMap::default();
                for i in order {
                    let Some(z) = &inputs[i] else { continue };
                    for (member, score) in z.iter() {
                        let v = weighted(i, score);
                        match acc.get_mut(member) {
                            Some(into) => aggregate.combine(into, v),
                            None => {
                                acc.insert(member.clone(), v);
                            }
                        }
                    }
                }
                ZSetValue::from_entries(acc)
            }
            ZSetAlgebra::Intersection => {
                if inputs
                    .iter()
                    .any(|z| z.as_ref().is_none_or(ZSetValue::is_empty))
                {
                    return ZSetValue::new();
                }
                // Walk the smallest input, probing the others in Redis's order (by size).
                let mut order: Vec<usize> = (0..inputs.len()).collect();
                order.sort_by_key(|&i| inputs[i].as_ref().map_or(0, ZSetValue::len));
                let Some((&first, rest)) = order.split_first() else {
                    return ZSetValue::new();
                };
                let Some(base) = &inputs[first] else {
                    return ZSetValue::new();
                };
                let mut out = ZSetValue::new();
                'members: for (member, score) in base.iter() {
                    let mut total = weighted(first, score);
                    for &i in rest {
                        let Some(other) = inputs[i].as_ref().and_then(|z| z.score(member)) else {
                            continue 'members;
                        };
                        // Unlike the first input's, a NaN product here is left to the
                        // aggregate (SUM makes it 0, MIN and MAX ignore it), as in Redis.
                        aggregate.combine(&mut total, weight(i) * other);
                    }
                    out.insert(member.clone(), total);
                }
                out
            }
            ZSetAlgebra::Difference => {
                let Some(Some(first)) = inputs.first() else {
                    return ZSetValue::new();
                };
                let others: Vec<&ZSetValue> = inputs[1..].iter().flatten().collect();
                ZSetValue::from_entries(
                    first
                        .iter()
                        .filter(|(m, _)| !others.iter().any(|z| z.score(m).is_some()))
                        .map(|(m, s)| (m.clone(), s)),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn z(entries: &[(&str, f64)]) -> ZSetValue {
        ZSetValue::from_entries(
            entries
                .iter()
                .map(|(m, s)| (Bytes::copy_from_slice(m.as_bytes()), *s)),
        )
    }

    fn names(image: &Bytes) -> Vec<String> {
        entries(image)
            .map(|e| String::from_utf8(e.unwrap().0.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn the_image_is_ordered_by_score_then_member_and_round_trips() {
        let set = z(&[("b", 1.0), ("a", 1.0), ("c", -0.5), ("d", f64::INFINITY)]);
        let image = set.encode();
        assert_eq!(names(&image), vec!["c", "a", "b", "d"]);
        assert_eq!(ZSetValue::decode(&image).unwrap(), set);
        assert_eq!(score(&image, b"d"), Some(f64::INFINITY));
        assert_eq!(score(&image, b"x"), None);
        assert_eq!(len(&image), 4);
        assert!(ZSetValue::new().encode().is_empty());
        // Malformed bytes: a truncated score, a NaN score.
        assert!(ZSetValue::decode(&Bytes::from_static(&[1, 1, b'a', 0])).is_err());
        let mut nan = vec![1, 1, b'a'];
        nan.extend_from_slice(&f64::NAN.to_be_bytes());
        assert!(ZSetValue::decode(&Bytes::from(nan)).is_err());
    }

    #[test]
    fn negative_zero_is_encoded_as_zero_and_ties_order_by_member() {
        let set = z(&[("b", -0.0), ("a", 0.0)]);
        assert_eq!(names(&set.encode()), vec!["a", "b"]);
        assert!(set.score(b"b").unwrap().is_sign_negative());
        let back = ZSetValue::decode(&set.encode()).unwrap();
        assert!(back.score(b"b").unwrap().is_sign_positive());
    }

    #[test]
    fn add_follows_zsetadd() {
        let mut set = z(&[("a", 1.0)]);
        let a = Bytes::from("a");
        let nx = AddFlags {
            nx: true,
            ..AddFlags::default()
        };
        assert_eq!(set.add(&a, 5.0, nx), Ok(Added::Skipped));
        let gt = AddFlags {
            gt: true,
            ..AddFlags::default()
        };
        assert_eq!(set.add(&a, 0.0, gt), Ok(Added::Skipped));
        assert_eq!(set.add(&a, 3.0, gt), Ok(Added::Updated(3.0)));
        let incr = AddFlags {
            incr: true,
            ..AddFlags::default()
        };
        assert_eq!(set.add(&a, 2.0, incr), Ok(Added::Updated(5.0)));
        assert_eq!(set.add(&a, 0.0, incr), Ok(Added::Same(5.0)));
        set.insert(a.clone(), f64::INFINITY);
        assert_eq!(set.add(&a, f64::NEG_INFINITY, incr), Err(NanScore));
        let xx = AddFlags {
            xx: true,
            ..AddFlags::default()
        };
        assert_eq!(set.add(&Bytes::from("new"), 1.0, xx), Ok(Added::Skipped));
        assert_eq!(set.len(), 1);
    }

    proptest::proptest! {
        /// Any sequence of single-member edits of the image (first, last, middle, a score
        /// tie, -0, infinities, a removal of an absent member) leaves exactly the image the
        /// set itself encodes.
        #[test]
        fn edits_in_the_image_match_the_set(
            start in proptest::collection::vec((0u8..24, 0usize..6), 0..24),
            edits in proptest::collection::vec((0u8..24, proptest::option::of(0usize..6)), 1..24),
        ) {
            const SCORES: [f64; 6] = [f64::NEG_INFINITY, -1.5, -0.0, 0.0, 2.0, f64::INFINITY];
            let name = |i: u8| Bytes::from(format!("m{}", i % 12).repeat(1 + usize::from(i / 12)));
            let mut set = ZSetValue::default();
            for (m, s) in start {
                set.insert(name(m), SCORES[s]);
            }
            let mut image = set.encode();
            for (m, s) in edits {
                let member = name(m);
                let score = s.map(|s| SCORES[s]);
                image = with_entry(&image, &member, score).unwrap();
                match score {
                    Some(score) => {
                        set.insert(member, score);
                    }
                    None => {
                        set.remove(&member);
                    }
                }
                proptest::prop_assert_eq!(&image, &set.encode());
            }
        }
    }

    #[test]
    fn an_entry_set_in_the_image_lands_where_the_set_would_put_it() {
        let mut set = z(&[("a", 1.0), ("b", 2.0), ("c", 3.0)]);
        let mut image = set.encode();
        for (member, score) in [
            ("b", Some(5.0)),
            ("new", Some(2.0)),
            ("a", None),
            ("zero", Some(-0.0)),
            ("c", Some(2.0)),
            ("gone", None),
        ] {
            image = with_entry(&image, member.as_bytes(), score).unwrap();
            let m = Bytes::copy_from_slice(member.as_bytes());
            match score {
                Some(s) => {
                    set.insert(m, s);
                }
                None => {
                    set.remove(&m);
                }
            }
            assert_eq!(image, set.encode(), "after {member} {score:?}");
        }
        let one = z(&[("x", 1.0)]).encode();
        assert!(with_entry(&one, b"x", None).unwrap().is_empty());
        // The count's own length changes at 128 entries.
        let mut big = ZSetValue::default();
        for i in 0..127 {
            big.insert(Bytes::from(format!("m{i}")), f64::from(i % 5));
        }
        let grown = with_entry(&big.encode(), b"new", Some(2.5)).unwrap();
        big.insert(Bytes::from("new"), 2.5);
        assert_eq!(grown, big.encode());
        let shrunk = with_entry(&grown, b"m3", None).unwrap();
        big.remove(&Bytes::from("m3"));
        assert_eq!(shrunk, big.encode());
        // Bytes past the count's entries, or too few of them.
        let mut long = one.to_vec();
        long.push(0);
        assert!(with_entry(&long, b"y", Some(1.0)).is_none());
        assert!(with_entry(&one[..3], b"y", Some(1.0)).is_none());
        assert_eq!(with_entry(b"", b"x", Some(1.0)).unwrap(), one);
        assert!(with_entry(&one[..one.len() - 1], b"x", Some(1.0)).is_none());
    }

    #[test]
    fn ranges_by_score_and_by_member() {
        let set = z(&[("a", 1.0), ("b", 2.0), ("c", 3.0)]);
        let image = set.encode();
        let v = view(&image);
        let bound = |value, exclusive| ScoreBound { value, exclusive };
        let r = ScoreRange {
            min: bound(1.0, true),
            max: bound(3.0, false),
        };
        assert_eq!(r.positions(&v), 1..3);
        let r = ScoreRange {
            min: bound(2.0, false),
            max: bound(2.0, true),
        };
        assert_eq!(r.positions(&v), 0..0);
        let lex = |m: &str, exclusive| LexBound::Member {
            member: Bytes::copy_from_slice(m.as_bytes()),
            exclusive,
        };
        let r = LexRange {
            min: lex("a", true),
            max: LexBound::Max,
        };
        assert_eq!(r.positions(&v), 1..3);
        let r = LexRange {
            min: LexBound::Max,
            max: LexBound::Min,
        };
        assert_eq!(r.positions(&v), 0..0);
    }

    #[test]
    fn algebra_weights_and_aggregates() {
        let a = Some(z(&[("x", 1.0), ("y", 2.0)]));
        let b = Some(z(&[("y", 10.0), ("w", f64::NEG_INFINITY)]));
        let u = ZSetAlgebra::Union.apply(&[a.clone(), b.clone()], &[2.0, 1.0], Aggregate::Sum);
        assert_eq!(u.score(b"y"), Some(14.0));
        assert_eq!(u.score(b"x"), Some(2.0));
        let i = ZSetAlgebra::Intersection.apply(&[a.clone(), b.clone()], &[], Aggregate::Max);
        assert_eq!(i.len(), 1);
        assert_eq!(i.score(b"y"), Some(10.0));
        let d = ZSetAlgebra::Difference.apply(&[a.clone(), b], &[], Aggregate::Sum);
        assert_eq!(d.len(), 1);
        assert_eq!(d.score(b"x"), Some(1.0));
        // inf * 0 is NaN, which counts as 0.
        let inf = Some(z(&[("x", f64::INFINITY)]));
        let u = ZSetAlgebra::Union.apply(&[inf, a], &[0.0, 1.0], Aggregate::Sum);
        assert_eq!(u.score(b"x"), Some(1.0));
    }
}
