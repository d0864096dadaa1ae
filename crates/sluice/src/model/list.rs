//! The encoding of a list, as the cache, the write-back buffer and the journal hold it: a
//! LEB128 count, then each element as its position (8 bytes, see [`position_key`]), a LEB128
//! length and its bytes, head first. Empty bytes are the empty list.
//!
//! Every element carries a position that orders it and never changes while it stays in the
//! list: a push at the head takes the head's position minus [`POSITION_STEP`], one at the tail
//! the tail's plus it, LINSERT the midpoint of its neighbours. The built-in table keeps each
//! element as a row of its own keyed by that position (`sluice_members.member`, the element in
//! `value`), so LPUSH, RPOP, LSET, LREM or LTRIM of a long list store the rows they touched and
//! nothing else. When no position is left between two neighbours (after about 24 LINSERTs at
//! one spot) or past an end (after 2^38 pushes at one end), the list is renumbered: every
//! position changes and the write replaces the whole list, once.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};

use super::hash::{items, put_len, take, Items, MalformedHash};

/// The gap a push leaves between an end's element and the new one: room for about 24
/// LINSERTs at one spot before a renumbering.
pub const POSITION_STEP: i64 = 1 << 24;

/// Positions stay within ±2^62, so a step never overflows.
const POSITION_LIMIT: i64 = 1 << 62;

/// A position as the 8 bytes the image and the table keep: big-endian with the sign bit
/// flipped, so that byte order is numeric order (a `member` column sorts the list).
pub fn position_key(position: i64) -> [u8; 8] {
    ((position as u64) ^ (1 << 63)).to_be_bytes()
}

/// The position [`position_key`] encoded; `None` for bytes of another length.
pub fn position_of(key: &[u8]) -> Option<i64> {
    let bytes: [u8; 8] = key.try_into().ok()?;
    Some((u64::from_be_bytes(bytes) ^ (1 << 63)) as i64)
}

/// Iterates the (position, element) entries of an encoded list, head first; yields `Err`
/// once and stops on malformed bytes.
pub type Elements<'a> = Items<'a, (i64, &'a [u8])>;

/// The entries of an encoded list, head first.
pub fn elements(image: &[u8]) -> Elements<'_> {
    items(image, |buf, at| {
        let end = at.checked_add(8).ok_or(MalformedHash)?;
        let key = buf.get(*at..end).ok_or(MalformedHash)?;
        let position = position_of(key).ok_or(MalformedHash)?;
        *at = end;
        Ok((position, take(buf, at)?))
    })
}

/// The element at `position` of an encoded list, found by a walk of its bytes (no decoding of
/// the whole list); `None` when no element has it, or for malformed bytes.
pub fn element_at(image: &[u8], position: i64) -> Option<&[u8]> {
    elements(image)
        .map_while(Result::ok)
        .find(|(p, _)| *p == position)
        .map(|(_, e)| e)
}

/// The number of elements; 0 for empty or malformed bytes.
pub fn len(image: &[u8]) -> usize {
    super::hash::len(image)
}

/// The elements of an encoded list as slices (no copy), head first; empty for malformed
/// bytes, which no write ever stores.
pub fn view(image: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::with_capacity(len(image).min(1 << 16));
    for entry in elements(image) {
        match entry {
            Ok((_, element)) => out.push(element),
            Err(_) => return Vec::new(),
        }
    }
    out
}

/// Where an encoded list's entries start, and how many there are.
fn body(image: &[u8]) -> Option<(usize, usize)> {
    if image.is_empty() {
        return Some((0, 0));
    }
    let mut at = 0;
    let count = super::hash::take_len(image, &mut at).ok()?;
    Some((count, at))
}

/// Reads the entry at `*at` (position and element), moving past it.
fn take_entry<'a>(image: &'a [u8], at: &mut usize) -> Option<(i64, &'a [u8])> {
    let end = at.checked_add(8)?;
    let position = position_of(image.get(*at..end)?)?;
    *at = end;
    let element = take(image, at).ok()?;
    Some((position, element))
}

fn put_entry(out: &mut BytesMut, position: i64, element: &[u8]) {
    out.put_slice(&position_key(position));
    put_len(out, element.len());
    out.put_slice(element);
}

/// LPUSH / RPUSH on the encoded list in one pass, without building a [`ListValue`] (a queue's
/// and an event log's hot path): the new image and the pushed elements' positions. `None`
/// for malformed bytes, or when the end has no room left (the caller then edits a
/// [`ListValue`], which renumbers).
pub fn with_pushed(image: &[u8], elements: &[Bytes], front: bool) -> Option<(Bytes, Vec<i64>)> {
    let (count, start) = body(image)?;
    let k = i64::try_from(elements.len()).ok()?;
    let first = if count == 0 {
        None
    } else if front {
        let mut at = start;
        Some(take_entry(image, &mut at)?.0)
    } else {
        // The tail's position: a walk that only skips lengths.
        let mut at = start;
        let mut last = 0;
        for _ in 0..count {
            last = take_entry(image, &mut at)?.0;
        }
        Some(last)
    };
    let step = if front { -POSITION_STEP } else { POSITION_STEP };
    let base = match first {
        Some(end) => end,
        // A new list: its first element at 0.
        None => -step,
    };
    let furthest = base.checked_add(step.checked_mul(k)?)?;
    if !(-POSITION_LIMIT..=POSITION_LIMIT).contains(&furthest) {
        return None;
    }
    let positions: Vec<i64> = (1..=k).map(|i| base + step * i).collect();
    let added: usize = elements.iter().map(|e| e.len() + 18).sum();
    let mut out = BytesMut::with_capacity(image.len() + added + 10);
    put_len(&mut out, count + elements.len());
    if front {
        // LPUSH a b c leaves c b a at the head.
        for (position, element) in positions.iter().zip(elements).rev() {
            put_entry(&mut out, *position, element);
        }
        out.put_slice(&image[start..]);
    } else {
        out.put_slice(&image[start..]);
        for (position, element) in positions.iter().zip(elements) {
            put_entry(&mut out, *position, element);
        }
    }
    Some((out.freeze(), positions))
}

/// LPOP / RPOP of up to `count` elements on the encoded list in one pass: the new image and
/// the popped (position, element) entries in the order they leave. `None` for malformed
/// bytes.
pub fn with_popped(image: &Bytes, count: usize, front: bool) -> Option<(Bytes, Vec<(i64, Bytes)>)> {
    let (len, start) = body(image)?;
    let k = count.min(len);
    let mut popped = Vec::with_capacity(k);
    let mut at = start;
    let mut out = BytesMut::new();
    if front {
        for _ in 0..k {
            let (position, element) = take_entry(image, &mut at)?;
            popped.push((position, image.slice_ref(element)));
        }
        if len > k {
            out.reserve(image.len() - at + 10);
            put_len(&mut out, len - k);
            out.put_slice(&image[at..]);
        }
    } else {
        for _ in 0..len - k {
            take_entry(image, &mut at)?;
        }
        let cut = at;
        for _ in 0..k {
            let (position, element) = take_entry(image, &mut at)?;
            popped.push((position, image.slice_ref(element)));
        }
        popped.reverse();
        if len > k {
            out.reserve(cut - start + 10);
            put_len(&mut out, len - k);
            out.put_slice(&image[start..cut]);
        }
    }
    Some((out.freeze(), popped))
}

/// LTRIM on the encoded list in one pass: keeps the elements at `keep` (indexes from the head,
/// clamped to the list), returning the new image (empty: the list is gone) and the positions
/// removed. `None` for malformed bytes.
pub fn with_trimmed(image: &[u8], keep: std::ops::Range<usize>) -> Option<(Bytes, Vec<i64>)> {
    let (len, start) = body(image)?;
    let end = keep.end.min(len);
    let first = keep.start.min(end);
    let mut removed = Vec::with_capacity(len - (end - first));
    let mut at = start;
    for _ in 0..first {
        removed.push(take_entry(image, &mut at)?.0);
    }
    let kept_from = at;
    for _ in first..end {
        take_entry(image, &mut at)?;
    }
    let kept_to = at;
    for _ in end..len {
        removed.push(take_entry(image, &mut at)?.0);
    }
    if first == end {
        return Some((Bytes::new(), removed));
    }
    let mut out = BytesMut::with_capacity(kept_to - kept_from + 10);
    put_len(&mut out, end - first);
    out.put_slice(&image[kept_from..kept_to]);
    Some((out.freeze(), removed))
}

/// A list being changed by a command, its elements sliced out of the image they came from.
/// It remembers which positions its edits touched, so that a write names only those rows.
#[derive(Debug, Clone, Default)]
pub struct ListValue {
    items: VecDeque<(i64, Bytes)>,
    /// Positions added, removed or given a new element since the list was decoded.
    touched: Vec<i64>,
    /// Every position changed: the write must replace the whole list.
    renumbered: bool,
}

impl PartialEq for ListValue {
    fn eq(&self, other: &ListValue) -> bool {
        self.items.len() == other.items.len() && self.iter().zip(other.iter()).all(|(a, b)| a == b)
    }
}

impl Eq for ListValue {}

impl ListValue {
    /// An empty list.
    pub fn new() -> ListValue {
        ListValue::default()
    }

    /// Decodes an image.
    pub fn decode(image: &Bytes) -> Result<ListValue, MalformedHash> {
        let mut items = VecDeque::with_capacity(len(image).min(1 << 16));
        let mut last = None;
        for entry in elements(image) {
            let (position, element) = entry?;
            // Positions strictly increase, or the image is not one a list wrote.
            if last.is_some_and(|l| l >= position) {
                return Err(MalformedHash);
            }
            last = Some(position);
            items.push_back((position, image.slice_ref(element)));
        }
        Ok(ListValue {
            items,
            ..ListValue::default()
        })
    }

    /// A list of these elements, head first, at fresh positions.
    pub fn from_elements(elements: impl IntoIterator<Item = Bytes>) -> ListValue {
        let mut list = ListValue::new();
        list.push(elements, false);
        list
    }

    /// A list of these rows (position key, element) as a table holds them, in any order; a
    /// row whose position is not 8 bytes (written by hand) is left out.
    pub fn from_rows(rows: impl IntoIterator<Item = (Bytes, Bytes)>) -> ListValue {
        let mut items: Vec<(i64, Bytes)> = rows
            .into_iter()
            .filter_map(|(key, element)| Some((position_of(&key)?, element)))
            .collect();
        items.sort_unstable_by_key(|(p, _)| *p);
        items.dedup_by_key(|(p, _)| *p);
        ListValue {
            items: items.into(),
            ..ListValue::default()
        }
    }

    /// The encoded image.
    pub fn encode(&self) -> Bytes {
        if self.items.is_empty() {
            return Bytes::new();
        }
        let size = self.items.iter().fold(10, |n, (_, e)| n + 18 + e.len());
        let mut out = BytesMut::with_capacity(size);
        put_len(&mut out, self.items.len());
        for (position, element) in &self.items {
            out.put_slice(&position_key(*position));
            put_len(&mut out, element.len());
            out.put_slice(element);
        }
        out.freeze()
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when there is no element (the key does not exist).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The elements, head first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Bytes> + ExactSizeIterator {
        self.items.iter().map(|(_, e)| e)
    }

    /// The (position, element) entries, head first.
    pub fn entries(&self) -> impl DoubleEndedIterator<Item = (i64, &Bytes)> + ExactSizeIterator {
        self.items.iter().map(|(p, e)| (*p, e))
    }

    /// The element at `position`, if one is there.
    pub fn at_position(&self, position: i64) -> Option<&Bytes> {
        let i = self
            .items
            .binary_search_by_key(&position, |(p, _)| *p)
            .ok()?;
        self.items.get(i).map(|(_, e)| e)
    }

    /// The element at `index` (0 is the head).
    pub fn get(&self, index: usize) -> Option<&Bytes> {
        self.items.get(index).map(|(_, e)| e)
    }

    /// The positions the edits so far touched, as the keys a write names, and whether the
    /// list was renumbered (the write replaces it whole; the keys are then empty).
    pub fn changes(&self) -> (Vec<Bytes>, bool) {
        if self.renumbered {
            return (Vec::new(), true);
        }
        let mut keys: Vec<Bytes> = self
            .touched
            .iter()
            .map(|p| Bytes::copy_from_slice(&position_key(*p)))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        (keys, false)
    }

    /// Whether an edit changed anything.
    pub fn changed(&self) -> bool {
        self.renumbered || !self.touched.is_empty()
    }

    /// Pushes `elements` one by one at the head (`front`) or the tail: LPUSH of `a b` leaves
    /// `b a ...`, as Redis.
    pub fn push(&mut self, elements: impl IntoIterator<Item = Bytes>, front: bool) {
        for element in elements {
            let index = if front { 0 } else { self.items.len() };
            self.insert_at(index, element);
        }
    }

    /// Removes and returns the head (`front`) or tail element.
    pub fn pop(&mut self, front: bool) -> Option<Bytes> {
        let (position, element) = if front {
            self.items.pop_front()?
        } else {
            self.items.pop_back()?
        };
        self.touched.push(position);
        Some(element)
    }

    /// Replaces the element at `index`; false if there is none.
    pub fn set(&mut self, index: usize, element: Bytes) -> bool {
        match self.items.get_mut(index) {
            None => false,
            Some((position, slot)) => {
                *slot = element;
                self.touched.push(*position);
                true
            }
        }
    }

    /// LINSERT: puts `element` before (or `after`) the first element equal to `pivot`; the
    /// new length, or `None` if no element equals it.
    pub fn insert(&mut self, pivot: &[u8], element: Bytes, after: bool) -> Option<usize> {
        let at = self.items.iter().position(|(_, e)| e == pivot)?;
        self.insert_at(if after { at + 1 } else { at }, element);
        Some(self.items.len())
    }

    /// Puts `element` at `index` (at most the length), renumbering first if no position is
    /// free there.
    fn insert_at(&mut self, index: usize, element: Bytes) {
        let position = match self.position_before(index) {
            Some(p) => p,
            None => {
                self.renumber();
                // Renumbered around 0 with steps of POSITION_STEP, every gap and both ends
                // have room for a list of fewer than 2^37 elements (more than memory holds).
                self.position_before(index).unwrap_or_default()
            }
        };
        self.touched.push(position);
        self.items.insert(index, (position, element));
    }

    /// A free position for an element inserted at `index` (between `index - 1` and
    /// `index`), or `None` if there is no room.
    fn position_before(&self, index: usize) -> Option<i64> {
        let below = index
            .checked_sub(1)
            .and_then(|i| self.items.get(i))
            .map(|e| e.0);
        let above = self.items.get(index).map(|e| e.0);
        // Checked: a row written by hand may hold any position.
        let p = match (below, above) {
            (None, None) => 0,
            (Some(b), None) => b.checked_add(POSITION_STEP)?,
            (None, Some(a)) => a.checked_sub(POSITION_STEP)?,
            (Some(b), Some(a)) if i128::from(a) - i128::from(b) >= 2 => {
                i64::try_from((i128::from(a) + i128::from(b)).div_euclid(2)).ok()?
            }
            (Some(_), Some(_)) => return None,
        };
        (-POSITION_LIMIT..=POSITION_LIMIT).contains(&p).then_some(p)
    }

    /// Gives every element a fresh position, centred on 0: the write replaces the list.
    fn renumber(&mut self) {
        let half = (self.items.len() / 2) as i64;
        for (i, (position, _)) in self.items.iter_mut().enumerate() {
            *position = (i as i64 - half) * POSITION_STEP;
        }
        self.renumbered = true;
        self.touched.clear();
    }

    /// LREM: removes up to `count` elements equal to `element` from the head (`count` > 0),
    /// from the tail (`count` < 0), or all of them (0); how many.
    pub fn remove(&mut self, element: &[u8], count: i64) -> usize {
        let limit = if count == 0 {
            usize::MAX
        } else {
            count.unsigned_abs().try_into().unwrap_or(usize::MAX)
        };
        let mut removed = 0;
        let mut keep = VecDeque::with_capacity(self.items.len());
        let items = std::mem::take(&mut self.items);
        if count >= 0 {
            for (position, e) in items {
                if removed < limit && e == element {
                    removed += 1;
                    self.touched.push(position);
                } else {
                    keep.push_back((position, e));
                }
            }
        } else {
            for (position, e) in items.into_iter().rev() {
                if removed < limit && e == element {
                    removed += 1;
                    self.touched.push(position);
                } else {
                    keep.push_front((position, e));
                }
            }
        }
        self.items = keep;
        removed
    }

    /// Keeps the elements at `range` (indexes from the head), removing the rest.
    pub fn retain_range(&mut self, range: std::ops::Range<usize>) {
        let end = range.end.min(self.items.len());
        let start = range.start.min(end);
        for (position, _) in self.items.drain(end..) {
            self.touched.push(position);
        }
        for (position, _) in self.items.drain(..start) {
            self.touched.push(position);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn elements_of(list: &ListValue) -> Vec<&[u8]> {
        list.iter().map(|e| &e[..]).collect()
    }

    #[test]
    fn position_keys_sort_as_their_positions() {
        let mut positions = [i64::MIN, -POSITION_STEP, -1, 0, 1, POSITION_STEP, i64::MAX];
        let mut keys: Vec<[u8; 8]> = positions.iter().map(|p| position_key(*p)).collect();
        keys.sort();
        positions.sort();
        let back: Vec<i64> = keys.iter().map(|k| position_of(k).unwrap()).collect();
        assert_eq!(back, positions);
    }

    #[test]
    fn an_image_round_trips_with_its_positions() {
        let mut list = ListValue::from_elements([b("a"), b("b")]);
        list.push([b("z")], true);
        let image = list.encode();
        let back = ListValue::decode(&image).unwrap();
        assert_eq!(elements_of(&back), vec![&b"z"[..], b"a", b"b"]);
        assert_eq!(back.items, list.items);
        assert_eq!(view(&image), vec![&b"z"[..], b"a", b"b"]);
        assert_eq!(len(&image), 3);
    }

    #[test]
    fn a_push_touches_only_its_own_position() {
        let image = ListValue::from_elements([b("a"), b("b")]).encode();
        let mut list = ListValue::decode(&image).unwrap();
        list.push([b("c")], false);
        let (keys, replace) = list.changes();
        assert!(!replace);
        assert_eq!(
            keys,
            vec![Bytes::copy_from_slice(&position_key(2 * POSITION_STEP))]
        );
    }

    #[test]
    fn inserts_at_one_spot_renumber_once_the_gap_is_used_up() {
        let image = ListValue::from_elements([b("a"), b("z")]).encode();
        let mut list = ListValue::decode(&image).unwrap();
        for i in 0..24 {
            assert_eq!(list.insert(b"z", b(&i.to_string()), false), Some(3 + i));
            assert!(!list.changes().1, "no renumbering after {i} inserts");
        }
        list.insert(b"z", b("last"), false);
        assert!(list.changes().1);
        let last = list.len() - 1;
        assert_eq!(&list.get(last - 1).unwrap()[..], b"last");
        let back = ListValue::decode(&list.encode()).unwrap();
        assert_eq!(back, list);
    }

    #[test]
    fn rows_read_back_in_position_order() {
        let list = ListValue::from_elements([b("x"), b("y"), b("x")]);
        let rows: Vec<(Bytes, Bytes)> = list
            .items
            .iter()
            .rev()
            .map(|(p, e)| (Bytes::copy_from_slice(&position_key(*p)), e.clone()))
            .collect();
        assert_eq!(ListValue::from_rows(rows), list);
    }

    #[test]
    fn lrem_counts_from_either_end() {
        let list = ListValue::from_elements([b("a"), b("b"), b("a"), b("a")]);
        let mut from_head = list.clone();
        assert_eq!(from_head.remove(b"a", 2), 2);
        assert_eq!(elements_of(&from_head), vec![&b"b"[..], b"a"]);
        let mut from_tail = list.clone();
        assert_eq!(from_tail.remove(b"a", -2), 2);
        assert_eq!(elements_of(&from_tail), vec![&b"a"[..], b"b"]);
        let mut all = list;
        assert_eq!(all.remove(b"a", 0), 3);
        assert_eq!(elements_of(&all), vec![&b"b"[..]]);
    }

    #[test]
    fn a_malformed_image_is_an_error() {
        let image = ListValue::from_elements([b("a"), b("b")]).encode();
        assert!(ListValue::decode(&image.slice(..image.len() - 1)).is_err());
        // Positions out of order.
        let mut bad = BytesMut::new();
        put_len(&mut bad, 2);
        for p in [5i64, 1] {
            bad.put_slice(&position_key(p));
            put_len(&mut bad, 1);
            bad.put_slice(b"x");
        }
        assert!(ListValue::decode(&bad.freeze()).is_err());
    }

    #[test]
    fn one_pass_pushes_and_pops_match_the_list_edits() {
        let elements = [b("a"), b("b"), b("c")];
        for front in [true, false] {
            let mut list = ListValue::from_elements([b("x"), b("y")]);
            let image = list.encode();
            let (pushed, positions) = with_pushed(&image, &elements, front).unwrap();
            list.push(elements.clone(), front);
            assert_eq!(pushed, list.encode(), "push front={front}");
            assert_eq!(positions.len(), 3);
            let (from_empty, _) = with_pushed(&[], &elements, front).unwrap();
            let mut fresh = ListValue::new();
            fresh.push(elements.clone(), front);
            assert_eq!(from_empty, fresh.encode());

            for count in [0, 1, 4, 5, 9] {
                let mut edited = list.clone();
                let mut want = Vec::new();
                for _ in 0..count {
                    match edited.pop(front) {
                        Some(e) => want.push(e),
                        None => break,
                    }
                }
                let (left, popped) = with_popped(&pushed, count, front).unwrap();
                assert_eq!(left, edited.encode(), "pop {count} front={front}");
                let got: Vec<Bytes> = popped.into_iter().map(|(_, e)| e).collect();
                assert_eq!(got, want);
            }
        }
        // LTRIM in one pass keeps what the list edit keeps.
        let list = ListValue::from_elements((0..7).map(|i| b(&i.to_string())));
        let image = list.encode();
        for (first, end) in [(0, 7), (1, 6), (0, 0), (3, 3), (2, 100), (6, 7), (7, 9)] {
            let mut edited = ListValue::decode(&image).unwrap();
            edited.retain_range(first..end);
            let (trimmed, removed) = with_trimmed(&image, first..end).unwrap();
            assert_eq!(trimmed, edited.encode(), "{first}..{end}");
            assert_eq!(removed.len(), 7 - edited.len());
        }
        // Positions a row written by hand may hold: pushes and inserts renumber, never overflow.
        let mut extreme = ListValue::from_rows([
            (Bytes::copy_from_slice(&position_key(i64::MIN)), b("lo")),
            (Bytes::copy_from_slice(&position_key(i64::MAX)), b("hi")),
        ]);
        extreme.push([b("front")], true);
        extreme.push([b("back")], false);
        assert_eq!(extreme.insert(b"hi", b("mid"), false), Some(5));
        assert_eq!(
            extreme.iter().map(|e| &e[..]).collect::<Vec<_>>(),
            vec![&b"front"[..], b"lo", b"mid", b"hi", b"back"]
        );
        assert!(with_pushed(&extreme.encode(), &elements, true).is_some());
        // No room past the end: the caller renumbers.
        let near_limit = ListValue::from_rows([(
            Bytes::copy_from_slice(&position_key(POSITION_LIMIT)),
            b("end"),
        )])
        .encode();
        assert!(with_pushed(&near_limit, &elements, false).is_none());
        let mut list = ListValue::decode(&near_limit).unwrap();
        list.push(elements.clone(), false);
        assert!(list.changes().1, "renumbered");
        assert_eq!(list.len(), 4);
        assert!(with_popped(&Bytes::from_static(&[3, 0]), 1, true).is_none());
    }
}
