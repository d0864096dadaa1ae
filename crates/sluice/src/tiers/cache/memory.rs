//! The in-process cache: sharded, byte-bounded, approximated LRU.
//!
//! Written here rather than taken from a crate on purpose: the cache holds every hot key, so
//! its per-entry cost decides how many keys fit in RAM, and it sits on every GET. moka spent
//! ~400 bytes and several allocations per entry; this one keeps one allocation per entry
//! (`db`, flags, lengths, deadlines, key and value packed together), a 24-byte slot and a 4-byte
//! index entry. Eviction samples a few entries of a shard and drops the least recently used
//! one, preferring copies already past their deadline, as Redis's `allkeys-lru` does.
//!
//! Keys and values are copied into the entry, so a cached copy never pins the connection
//! buffer its request arrived in.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use hashbrown::HashTable;
use parking_lot::RwLock;

use super::{Cache, CacheError, CacheStats, CachedValue, DbKey, EvictionListener, LocalCache};
use crate::clock::SharedClock;
use crate::model::Kind;

/// Bytes charged per entry on top of key and value: slot, index and allocator overhead.
const ENTRY_OVERHEAD: u64 = 48;
/// Shards: a power of two, enough that two cores rarely meet on one lock.
const SHARDS: usize = 64;
/// Entries examined per eviction.
const EVICTION_SAMPLES: usize = 5;

const HAS_EXPIRY: u8 = 1;
const HAS_CACHE_UNTIL: u8 = 2;
/// The value's [`Kind`] code lives in the flags' high nibble.
const KIND_SHIFT: u8 = 4;
/// db, flags, key length (u32).
const FIXED_HEADER: usize = 6;

/// One cached copy, packed: `[db][flags][key_len: u32][expires_at: u64]?[cache_until: u64]?
/// [key][value]`.
struct Packed(Box<[u8]>);

impl Packed {
    fn new(
        key: &DbKey,
        value: &[u8],
        kind: Kind,
        expires_at: Option<u64>,
        cache_until: Option<u64>,
    ) -> Packed {
        let mut flags = kind.code() << KIND_SHIFT;
        let mut header = FIXED_HEADER;
        if expires_at.is_some() {
            flags |= HAS_EXPIRY;
            header += 8;
        }
        if cache_until.is_some() {
            flags |= HAS_CACHE_UNTIL;
            header += 8;
        }
        let mut data = Vec::with_capacity(header + key.key.len() + value.len());
        data.push(key.db);
        data.push(flags);
        data.extend_from_slice(&(key.key.len() as u32).to_le_bytes());
        if let Some(e) = expires_at {
            data.extend_from_slice(&e.to_le_bytes());
        }
        if let Some(u) = cache_until {
            data.extend_from_slice(&u.to_le_bytes());
        }
        data.extend_from_slice(&key.key);
        data.extend_from_slice(value);
        Packed(data.into_boxed_slice())
    }

    fn db(&self) -> u8 {
        self.0[0]
    }

    fn flags(&self) -> u8 {
        self.0[1]
    }

    fn header_len(&self) -> usize {
        FIXED_HEADER
            + if self.flags() & HAS_EXPIRY != 0 { 8 } else { 0 }
            + if self.flags() & HAS_CACHE_UNTIL != 0 {
                8
            } else {
                0
            }
    }

    fn key_len(&self) -> usize {
        u32::from_le_bytes([self.0[2], self.0[3], self.0[4], self.0[5]]) as usize
    }

    fn u64_at(&self, at: usize) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[at..at + 8]);
        u64::from_le_bytes(b)
    }

    fn expires_at(&self) -> Option<u64> {
        (self.flags() & HAS_EXPIRY != 0).then(|| self.u64_at(FIXED_HEADER))
    }

    fn cache_until(&self) -> Option<u64> {
        let at = FIXED_HEADER + if self.flags() & HAS_EXPIRY != 0 { 8 } else { 0 };
        (self.flags() & HAS_CACHE_UNTIL != 0).then(|| self.u64_at(at))
    }

    fn key(&self) -> &[u8] {
        let h = self.header_len();
        &self.0[h..h + self.key_len()]
    }

    fn value(&self) -> &[u8] {
        &self.0[self.header_len() + self.key_len()..]
    }

    fn is(&self, db: u8, key: &[u8]) -> bool {
        self.db() == db && self.key() == key
    }

    fn weight(&self) -> u64 {
        (self.key_len() + self.value().len()) as u64 + ENTRY_OVERHEAD
    }

    fn deadline(&self) -> Option<u64> {
        super::earlier(self.expires_at(), self.cache_until())
    }

    fn kind(&self) -> Kind {
        // Only `Packed::new` writes the flags, from a `Kind`.
        Kind::from_code(self.flags() >> KIND_SHIFT).unwrap_or_default()
    }

    fn to_cached(&self) -> CachedValue {
        CachedValue {
            value: Bytes::copy_from_slice(self.value()),
            kind: self.kind(),
            expires_at: self.expires_at(),
            cache_until: self.cache_until(),
        }
    }
}

struct Slot {
    packed: Packed,
    /// The cache's tick when this copy was last read or written; the LRU clock.
    touched: AtomicU32,
}

/// One shard: the entries in a dense vector (so eviction can sample at random) and an index
/// from hash to position.
struct Shard {
    index: HashTable<u32>,
    slots: Vec<Slot>,
    /// xorshift state for sampling; needs no quality beyond "not always the same slots".
    rng: u64,
}

impl Shard {
    fn find(&self, hash: u64, db: u8, key: &[u8]) -> Option<usize> {
        self.index
            .find(hash, |&i| self.slots[i as usize].packed.is(db, key))
            .map(|&i| i as usize)
    }

    /// Removes the slot at `pos`, moving the last slot into its place. Returns its weight.
    fn remove_at(&mut self, pos: usize, hash: u64, hasher: &impl BuildHasher) -> u64 {
        if let Ok(entry) = self.index.find_entry(hash, |&i| i as usize == pos) {
            entry.remove();
        }
        let last = self.slots.len() - 1;
        if pos != last {
            let moved = &self.slots[last].packed;
            let moved_hash = hash_of(hasher, moved.db(), moved.key());
            if let Some(i) = self.index.find_mut(moved_hash, |&i| i as usize == last) {
                *i = pos as u32;
            }
        }
        self.slots.swap_remove(pos).packed.weight()
    }

    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// The position of the best eviction victim among a few sampled slots: a copy past its
    /// deadline first, else the least recently touched. Ages are counted back from `tick` with
    /// wrapping arithmetic, so the u32 clock wrapping around never makes fresh copies look old.
    fn victim(&mut self, now_ms: u64, tick: u32) -> Option<usize> {
        let len = self.slots.len();
        if len == 0 {
            return None;
        }
        let mut best: Option<(usize, u32)> = None;
        for _ in 0..EVICTION_SAMPLES.min(len) {
            let pos = (self.next_random() % len as u64) as usize;
            let slot = &self.slots[pos];
            if slot.packed.deadline().is_some_and(|d| d <= now_ms) {
                return Some(pos);
            }
            let age = tick.wrapping_sub(slot.touched.load(Ordering::Relaxed));
            if best.is_none_or(|(_, oldest)| age > oldest) {
                best = Some((pos, age));
            }
        }
        best.map(|(pos, _)| pos)
    }
}

#[inline]
fn hash_of(hasher: &impl BuildHasher, db: u8, key: &[u8]) -> u64 {
    hasher.hash_one((db, key))
}

/// The memory cache.
///
/// Guarantees: it never holds more than `capacity` bytes of keys, values and per-entry
/// overhead once a `put` returns, except transiently by one entry per concurrent writer; an
/// entry heavier than an eighth of the capacity is not cached at all (the read goes to the
/// store instead); `get` returns exactly what the last `put` for the key stored.
pub struct MemoryCache {
    shards: Box<[RwLock<Shard>]>,
    hasher: foldhash::fast::RandomState,
    capacity: u64,
    bytes: AtomicU64,
    entries: AtomicU64,
    /// The LRU clock: advances on every write, read by every hit.
    tick: AtomicU32,
    /// Round-robin start for eviction, so no shard is drained alone.
    evict_cursor: AtomicU32,
    clock: SharedClock,
    /// Told of each eviction once installed (keyspace notifications): until then eviction
    /// copies no key.
    on_evict: std::sync::OnceLock<std::sync::Arc<dyn EvictionListener>>,
}

impl MemoryCache {
    /// A cache holding at most `capacity` bytes of keys, values and per-entry overhead.
    /// Copies past their deadline on the engine's clock are evicted first.
    pub fn new(capacity: u64, clock: SharedClock) -> MemoryCache {
        let seed = rand::random::<u64>() | 1;
        MemoryCache {
            shards: (0..SHARDS)
                .map(|i| {
                    RwLock::new(Shard {
                        index: HashTable::new(),
                        slots: Vec::new(),
                        rng: seed.rotate_left(i as u32) | 1,
                    })
                })
                .collect(),
            hasher: foldhash::fast::RandomState::default(),
            capacity,
            bytes: AtomicU64::new(0),
            entries: AtomicU64::new(0),
            tick: AtomicU32::new(1),
            evict_cursor: AtomicU32::new(0),
            clock,
            on_evict: std::sync::OnceLock::new(),
        }
    }

    fn locate(&self, key: &DbKey) -> (u64, &RwLock<Shard>) {
        let hash = hash_of(&self.hasher, key.db, &key.key);
        // hashbrown uses the low bits for the bucket and the top seven for tags; take the
        // shard from the middle so neither loses entropy within a shard.
        let shard = ((hash >> 32) as usize) & (SHARDS - 1);
        (hash, &self.shards[shard])
    }

    fn lookup(&self, key: &DbKey) -> Option<CachedValue> {
        let (hash, shard) = self.locate(key);
        let shard = shard.read();
        let pos = shard.find(hash, key.db, &key.key)?;
        let slot = &shard.slots[pos];
        let tick = self.tick.load(Ordering::Relaxed);
        // Skip the store when unchanged, so hot reads do not bounce the line between cores.
        if slot.touched.load(Ordering::Relaxed) != tick {
            slot.touched.store(tick, Ordering::Relaxed);
        }
        Some(slot.packed.to_cached())
    }

    fn store(
        &self,
        key: &DbKey,
        value: &[u8],
        kind: Kind,
        expires_at: Option<u64>,
        cache_until: Option<u64>,
    ) {
        let packed = Packed::new(key, value, kind, expires_at, cache_until);
        let weight = packed.weight();
        if weight > self.capacity / 8 {
            // Too big to be worth the room: reads of it go to the store.
            self.discard(key);
            return;
        }
        let tick = self.tick.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        let (hash, shard) = self.locate(key);
        {
            let mut shard = shard.write();
            match shard.find(hash, key.db, &key.key) {
                Some(pos) => {
                    let slot = &mut shard.slots[pos];
                    let old = std::mem::replace(&mut slot.packed, packed);
                    slot.touched.store(tick, Ordering::Relaxed);
                    self.bytes.fetch_add(weight, Ordering::Relaxed);
                    self.bytes.fetch_sub(old.weight(), Ordering::Relaxed);
                }
                None => {
                    let pos = shard.slots.len() as u32;
                    shard.slots.push(Slot {
                        packed,
                        touched: AtomicU32::new(tick),
                    });
                    let hasher = &self.hasher;
                    let Shard { index, slots, .. } = &mut *shard;
                    index.insert_unique(hash, pos, |&i| {
                        let p = &slots[i as usize].packed;
                        hash_of(hasher, p.db(), p.key())
                    });
                    self.bytes.fetch_add(weight, Ordering::Relaxed);
                    self.entries.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.evict_to_capacity(shard);
    }

    fn discard(&self, key: &DbKey) {
        let (hash, shard) = self.locate(key);
        let mut shard = shard.write();
        if let Some(pos) = shard.find(hash, key.db, &key.key) {
            let weight = shard.remove_at(pos, hash, &self.hasher);
            self.bytes.fetch_sub(weight, Ordering::Relaxed);
            self.entries.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Evicts until the cache is within capacity: from the shard just written to, which
    /// keeps the shards as even as the hash spreads the inserts, else round-robin over the
    /// others. Each shard lock is taken alone, so eviction cannot deadlock with writers.
    fn evict_to_capacity(&self, written: &RwLock<Shard>) {
        if self.bytes.load(Ordering::Relaxed) <= self.capacity {
            return;
        }
        let now = self.clock.now_ms();
        let listener = self.on_evict.get().filter(|l| l.wanted());
        // The evicted keys, for the listener, told once every shard lock is released.
        let mut evicted: Vec<(u8, Bytes)> = Vec::new();
        {
            let mut shard = written.write();
            while self.bytes.load(Ordering::Relaxed) > self.capacity && shard.slots.len() > 1 {
                let Some(pos) = shard.victim(now, self.tick.load(Ordering::Relaxed)) else {
                    break;
                };
                let victim = &shard.slots[pos].packed;
                if listener.is_some() {
                    evicted.push((victim.db(), Bytes::copy_from_slice(victim.key())));
                }
                let hash = hash_of(&self.hasher, victim.db(), victim.key());
                let weight = shard.remove_at(pos, hash, &self.hasher);
                self.bytes.fetch_sub(weight, Ordering::Relaxed);
                self.entries.fetch_sub(1, Ordering::Relaxed);
            }
        }
        let mut empty_in_a_row = 0;
        while self.bytes.load(Ordering::Relaxed) > self.capacity && empty_in_a_row < SHARDS {
            let i = self.evict_cursor.fetch_add(1, Ordering::Relaxed) as usize & (SHARDS - 1);
            let mut shard = self.shards[i].write();
            let Some(pos) = shard.victim(now, self.tick.load(Ordering::Relaxed)) else {
                empty_in_a_row += 1;
                continue;
            };
            empty_in_a_row = 0;
            let victim = &shard.slots[pos].packed;
            if listener.is_some() {
                evicted.push((victim.db(), Bytes::copy_from_slice(victim.key())));
            }
            let hash = hash_of(&self.hasher, victim.db(), victim.key());
            let weight = shard.remove_at(pos, hash, &self.hasher);
            self.bytes.fetch_sub(weight, Ordering::Relaxed);
            self.entries.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(listener) = listener {
            for (db, key) in evicted {
                listener.evicted(db, &key);
            }
        }
    }

    fn clear_matching(&self, db: Option<u8>) {
        for shard in self.shards.iter() {
            let mut shard = shard.write();
            let before = shard.slots.len();
            let mut freed = 0;
            shard.slots.retain(|s| {
                let keep = db.is_some_and(|d| s.packed.db() != d);
                if !keep {
                    freed += s.packed.weight();
                }
                keep
            });
            let removed = (before - shard.slots.len()) as u64;
            if removed == 0 {
                continue;
            }
            let Shard { index, slots, .. } = &mut *shard;
            index.clear();
            for (pos, slot) in slots.iter().enumerate() {
                let p = &slot.packed;
                let hash = hash_of(&self.hasher, p.db(), p.key());
                index.insert_unique(hash, pos as u32, |&i| {
                    let p = &slots[i as usize].packed;
                    hash_of(&self.hasher, p.db(), p.key())
                });
            }
            if slots.is_empty() {
                // Give the memory back after FLUSHALL instead of keeping the high-water mark.
                *slots = Vec::new();
                *index = HashTable::new();
            }
            self.bytes.fetch_sub(freed, Ordering::Relaxed);
            self.entries.fetch_sub(removed, Ordering::Relaxed);
        }
    }
}

impl LocalCache for MemoryCache {
    fn get_now(&self, key: &DbKey) -> Option<CachedValue> {
        self.lookup(key)
    }

    fn put_now(
        &self,
        key: &DbKey,
        value: &[u8],
        kind: Kind,
        expires_at: Option<u64>,
        cache_until: Option<u64>,
    ) {
        self.store(key, value, kind, expires_at, cache_until);
    }

    fn remove_now(&self, key: &DbKey) {
        self.discard(key);
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &DbKey) -> Result<Option<CachedValue>, CacheError> {
        Ok(self.lookup(key))
    }

    async fn put(&self, key: DbKey, value: CachedValue) -> Result<(), CacheError> {
        self.store(
            &key,
            &value.value,
            value.kind,
            value.expires_at,
            value.cache_until,
        );
        Ok(())
    }

    async fn remove(&self, key: &DbKey) -> Result<(), CacheError> {
        self.discard(key);
        Ok(())
    }

    async fn clear(&self, db: Option<u8>) -> Result<(), CacheError> {
        self.clear_matching(db);
        Ok(())
    }

    fn stats(&self) -> CacheStats {
        CacheStats {
            entries: self.entries.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            capacity: self.capacity,
        }
    }

    fn local(&self) -> Option<&dyn LocalCache> {
        Some(self)
    }

    fn on_evict(&self, listener: std::sync::Arc<dyn EvictionListener>) -> bool {
        // Installed once: a second listener is refused rather than silently replacing it.
        self.on_evict.set(listener).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;

    fn key(db: u8, k: &str) -> DbKey {
        DbKey {
            db,
            key: Bytes::copy_from_slice(k.as_bytes()),
        }
    }

    fn copy(v: &str, expires_at: Option<u64>, cache_until: Option<u64>) -> CachedValue {
        CachedValue {
            value: Bytes::copy_from_slice(v.as_bytes()),
            kind: Kind::String,
            expires_at,
            cache_until,
        }
    }

    fn put(c: &MemoryCache, k: &DbKey, v: &CachedValue) {
        c.put_now(k, &v.value, v.kind, v.expires_at, v.cache_until);
    }

    fn cache(capacity: u64) -> MemoryCache {
        MemoryCache::new(capacity, Arc::new(ManualClock::new(1_000)))
    }

    #[test]
    fn returns_exactly_what_was_put_with_every_deadline_combination() {
        let c = cache(1 << 20);
        let cases = [
            copy("plain", None, None),
            copy("ex", Some(5_000), None),
            copy("ttl", None, Some(7_000)),
            copy("both", Some(5_000), Some(7_000)),
            copy("", None, None),
        ];
        for (i, v) in cases.iter().enumerate() {
            let k = key(i as u8, &format!("k{i}"));
            put(&c, &k, v);
            assert_eq!(c.get_now(&k).as_ref(), Some(v));
        }
        // Same key bytes in another database is another key.
        assert_eq!(c.get_now(&key(9, "k0")), None);
    }

    #[test]
    fn overwrite_and_remove_keep_the_accounting_exact() {
        let c = cache(1 << 20);
        let k = key(0, "a");
        put(&c, &k, &copy("1", None, None));
        put(&c, &k, &copy("22222", None, None));
        assert_eq!(c.stats().entries, 1);
        assert_eq!(c.stats().bytes, 1 + 5 + ENTRY_OVERHEAD);
        c.remove_now(&k);
        assert_eq!(c.get_now(&k), None);
        assert_eq!(c.stats().entries, 0);
        assert_eq!(c.stats().bytes, 0);
    }

    #[test]
    fn removal_moves_slots_without_losing_any_other_key() {
        let c = cache(64 << 20);
        let keys: Vec<DbKey> = (0..5_000).map(|i| key(0, &format!("key:{i}"))).collect();
        for (i, k) in keys.iter().enumerate() {
            put(&c, k, &copy(&i.to_string(), None, None));
        }
        for k in keys.iter().step_by(3) {
            c.remove_now(k);
        }
        for (i, k) in keys.iter().enumerate() {
            let want = (i % 3 != 0).then(|| copy(&i.to_string(), None, None));
            assert_eq!(c.get_now(k), want, "key {i}");
        }
        assert_eq!(
            c.stats().entries,
            keys.len() as u64 - keys.len().div_ceil(3) as u64
        );
    }

    #[test]
    fn stays_within_capacity_and_keeps_recently_read_keys() {
        let c = cache(HOT_TEST_ENTRY * 1_000);
        write_beside_a_hot_key(&c, 20_000);
        assert!(c.stats().entries <= 1_000);
        assert!(c.stats().entries > 900);
    }

    #[test]
    fn recently_read_keys_are_kept_across_the_lru_clock_wrapping_around() {
        let c = cache(HOT_TEST_ENTRY * 1_000);
        // A few hundred writes before the u32 tick wraps: the hot key's stamp and the cold
        // keys' stamps straddle the wrap.
        c.tick.store(u32::MAX - 300, Ordering::Relaxed);
        write_beside_a_hot_key(&c, 5_000);
    }

    /// The weight of one entry of [`write_beside_a_hot_key`].
    const HOT_TEST_ENTRY: u64 = 9 + 10 + ENTRY_OVERHEAD;

    /// Writes `writes` cold keys, reading one hot key after each: the hot key must stay (a key
    /// read all the time is what an LRU keeps), and the cache within its capacity.
    fn write_beside_a_hot_key(c: &MemoryCache, writes: usize) {
        let hot = key(0, "hot:00000");
        put(c, &hot, &copy("0123456789", None, None));
        for i in 0..writes {
            put(
                c,
                &key(0, &format!("key:{i:05}")),
                &copy("0123456789", None, None),
            );
            assert!(
                c.get_now(&hot).is_some() || i < 50,
                "hot key evicted at {i}"
            );
            assert!(c.stats().bytes <= c.capacity, "over capacity at {i}");
        }
    }

    #[test]
    fn expired_copies_are_evicted_first() {
        let per_entry = 6 + 1 + ENTRY_OVERHEAD;
        let c = cache(per_entry * 6_400);
        // The live keys are the least recently used: plain LRU would evict them all.
        for i in 0..3_200 {
            put(&c, &key(0, &format!("l{i:05}")), &copy("x", None, None));
        }
        for i in 0..3_200 {
            put(
                &c,
                &key(0, &format!("e{i:05}")),
                &copy("x", None, Some(500)),
            );
        }
        for i in 0..3_200 {
            put(&c, &key(0, &format!("n{i:05}")), &copy("x", None, None));
        }
        // Sampling five per eviction misses the expired ones sometimes (more often as they
        // become rare), never mostly.
        let live_kept = (0..3_200)
            .filter(|i| c.get_now(&key(0, &format!("l{i:05}"))).is_some())
            .count();
        assert!(
            live_kept > 2_000,
            "only {live_kept} of 3200 live entries kept"
        );
    }

    #[test]
    fn an_entry_heavier_than_an_eighth_of_the_capacity_is_not_cached() {
        let c = cache(8_000);
        let k = key(0, "big");
        put(&c, &k, &copy("small", None, None));
        put(&c, &k, &copy(&"x".repeat(2_000), None, None));
        // The old copy must not survive a refused put: it would be stale.
        assert_eq!(c.get_now(&k), None);
    }

    #[test]
    fn clear_drops_one_database_or_all() {
        let c = cache(1 << 20);
        for db in 0..3u8 {
            for i in 0..100 {
                put(&c, &key(db, &format!("{i}")), &copy("v", None, None));
            }
        }
        c.clear_matching(Some(1));
        assert_eq!(c.stats().entries, 200);
        assert!(c.get_now(&key(1, "5")).is_none());
        assert!(c.get_now(&key(0, "5")).is_some());
        assert!(c.get_now(&key(2, "99")).is_some());
        c.clear_matching(None);
        assert_eq!(c.stats().entries, 0);
        assert_eq!(c.stats().bytes, 0);
    }

    #[test]
    fn a_cached_copy_does_not_share_the_request_buffer() {
        let c = cache(1 << 20);
        let frame = Bytes::from(vec![b'k'; 4096]);
        let k = DbKey {
            db: 0,
            key: frame.slice(0..8),
        };
        put(&c, &k, &copy("v", None, None));
        drop(k);
        // Only this handle refers to the frame now: the cache copied what it needed.
        assert!(frame.is_unique());
    }
}
