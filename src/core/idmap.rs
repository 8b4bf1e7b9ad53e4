//! Dense ids of uuid contact keys, held in memory (`segplan.contact_ids` as a session knows it).
//!
//! A fresh condition over uuid-keyed contacts turns hundreds of thousands of keys into ids, each
//! a lookup among millions: one cache miss per key, which cost more than scanning the contacts.
//! [`IdMap`] is an open-addressing table (linear probing) whose batch lookup asks the CPU for the
//! slots of keys a few places ahead, so their misses overlap instead of following each other; and
//! [`collect`] turns the ids found into a bitmap without sorting them when they are dense (ids
//! come from a sequence).
use roaring::RoaringTreemap;

const EMPTY: u64 = u64::MAX;

/// The 16 bytes a text key is kept as beside uuid keys: the first half of its SHA-256. Two keys
/// with the same fingerprint would share an id, so it must not be possible to make one on
/// purpose (a key typed into a sign-up form): that takes ~2^64 tries, and no uuid is one by
/// chance (2^-128 per pair).
pub fn fingerprint(text: &[u8]) -> [u8; 16] {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(text);
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}
/// How many keys ahead a batch lookup prefetches.
const AHEAD: usize = 12;
/// Words per slot: the key's two halves (little-endian) and the id (`EMPTY` when free).
const SLOT: usize = 3;

fn halves(key: &[u8; 16]) -> (u64, u64) {
    let (a, b) = key.split_at(8);
    (u64::from_le_bytes(a.try_into().unwrap_or_default()), u64::from_le_bytes(b.try_into().unwrap_or_default()))
}

fn hash((a, b): (u64, u64)) -> u64 {
    // uuids of version 7 start with a timestamp: mix both halves
    (a ^ b.rotate_left(29)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn free_slots(n: usize) -> Vec<u64> {
    let mut words = vec![0u64; n * SLOT];
    words.chunks_exact_mut(SLOT).for_each(|s| s[2] = EMPTY);
    words
}

/// uuid (16 bytes) → id, owning its slots.
pub struct IdMap {
    /// `SLOT` words per slot, a power of two of slots
    words: Vec<u64>,
    len: usize,
    max: Option<u64>,
}

impl Default for IdMap {
    fn default() -> IdMap {
        IdMap { words: free_slots(16), len: 0, max: None }
    }
}

/// An [`IdMap`]'s slots as plain words, borrowed: from the map, or from a copy of
/// [`IdMap::words`] elsewhere (another process's view of shared memory).
#[derive(Clone, Copy)]
pub struct Table<'a> {
    words: &'a [u64],
    shift: u32,
}

impl<'a> Table<'a> {
    /// The table over `words` as [`IdMap::words`] gave them; `None` when they cannot be one.
    pub fn new(words: &'a [u64]) -> Option<Table<'a>> {
        let slots = words.len() / SLOT;
        (words.len() % SLOT == 0 && slots.is_power_of_two() && slots >= 2).then(|| Table { words, shift: 64 - slots.trailing_zeros() })
    }

    fn slots(&self) -> usize {
        self.words.len() / SLOT
    }

    fn home(&self, key: (u64, u64)) -> usize {
        // the high bits of the product are the well-mixed ones
        (hash(key) >> self.shift) as usize
    }

    pub fn get(&self, key: &[u8; 16]) -> Option<u64> {
        let key = halves(key);
        let mask = self.slots() - 1;
        let mut i = self.home(key);
        // a table made elsewhere may be full: stop after one lap
        for _ in 0..self.slots() {
            let s = &self.words[i * SLOT..i * SLOT + SLOT];
            if s[2] == EMPTY {
                return None;
            }
            if (s[0], s[1]) == key {
                return Some(s[2]);
            }
            i = (i + 1) & mask;
        }
        None
    }

    /// Every key and its id, in slot order.
    pub fn entries(&self) -> impl Iterator<Item = ([u8; 16], u64)> + 'a {
        self.words.chunks_exact(SLOT).filter(|s| s[2] != EMPTY).map(|s| {
            let mut k = [0u8; 16];
            k[..8].copy_from_slice(&s[0].to_le_bytes());
            k[8..].copy_from_slice(&s[1].to_le_bytes());
            (k, s[2])
        })
    }

    fn prefetch(&self, key: &[u8; 16]) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let slot = &self.words[self.home(halves(key)) * SLOT] as *const u64;
            // SAFETY: a prefetch is a hint; it reads nothing and the address is in the table
            unsafe { _mm_prefetch::<_MM_HINT_T0>(slot.cast()) };
        }
    }

    /// Looks up `key(n)` for each `n` in `0..count`, in order, calling `found(n, id)`; the slots of
    /// the keys [`AHEAD`] places on are prefetched meanwhile.
    pub fn get_each<'k>(&self, count: usize, key: impl Fn(usize) -> &'k [u8; 16], mut found: impl FnMut(usize, Option<u64>)) {
        for n in 0..count.min(AHEAD) {
            self.prefetch(key(n));
        }
        for n in 0..count {
            if n + AHEAD < count {
                self.prefetch(key(n + AHEAD));
            }
            found(n, self.get(key(n)));
        }
    }
}

/// Keys in the order of their ids ([`IdMap::write_keys_by_id`]): the key of id `i` in words `2i`
/// and `2i + 1`, zeros where no key has that id. Contacts are numbered in the order a scan meets
/// them (src/pg/dense_ids.rs), so a later scan meets ids mostly one after another: the id of a
/// row's key is then found a few places past the previous row's, in words read in line, where a
/// lookup in the [`Table`] costs a cache miss.
#[derive(Clone, Copy)]
pub struct ByIds<'a> {
    words: &'a [u64],
}

impl<'a> ByIds<'a> {
    /// The keys over `words` as [`IdMap::write_keys_by_id`] wrote them; `None` when they cannot be.
    pub fn new(words: &'a [u64]) -> Option<ByIds<'a>> {
        (words.len() % 2 == 0).then_some(ByIds { words })
    }

    /// The id of `key` if it is one of the `window` ids after `last` (the all-zero key is never
    /// found: zeros mark ids no key has).
    pub fn near(&self, last: u64, key: &[u8; 16], window: usize) -> Option<u64> {
        let k = halves(key);
        if k == (0, 0) {
            return None;
        }
        let from = usize::try_from(last).ok()?.checked_add(1)?;
        let to = from.saturating_add(window).min(self.words.len() / 2);
        (from..to).find(|i| (self.words[2 * i], self.words[2 * i + 1]) == k).map(|i| i as u64)
    }
}

impl IdMap {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The largest id held.
    pub fn max_id(&self) -> Option<u64> {
        self.max
    }

    /// The slots, for [`Table::new`] over a copy of them.
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    pub fn table(&self) -> Table<'_> {
        Table { words: &self.words, shift: 64 - (self.words.len() / SLOT).trailing_zeros() }
    }

    /// How many words [`IdMap::write_keys_by_id`] writes: two per id up to the largest; 0 when
    /// ids are too sparse for it (more than twice as many ids as keys).
    pub fn keys_by_id_words(&self) -> usize {
        match self.max {
            Some(max) if max < 2 * self.len as u64 + 1024 => (max as usize + 1) * 2,
            _ => 0,
        }
    }

    /// Writes the keys in the order of their ids into `out` (of [`IdMap::keys_by_id_words`] words),
    /// for [`ByIds`].
    pub fn write_keys_by_id(&self, out: &mut [u64]) {
        out.fill(0);
        for s in self.words.chunks_exact(SLOT).filter(|s| s[2] != EMPTY) {
            let i = s[2] as usize * 2;
            if let Some(w) = out.get_mut(i..i + 2) {
                w.copy_from_slice(&s[..2]);
            }
        }
    }

    /// Room for `more` keys without growing on the way.
    pub fn reserve(&mut self, more: usize) {
        let want = (self.len + more) * 8 / 5 + 1;
        if want > self.words.len() / SLOT {
            self.grow(want.next_power_of_two());
        }
    }

    fn grow(&mut self, size: usize) {
        let old = std::mem::replace(&mut self.words, free_slots(size));
        self.len = 0;
        for s in old.chunks_exact(SLOT).filter(|s| s[2] != EMPTY) {
            self.put((s[0], s[1]), s[2]);
        }
    }

    /// Sets the id of `key` (ids are never `u64::MAX`).
    pub fn insert(&mut self, key: [u8; 16], id: u64) {
        debug_assert_ne!(id, EMPTY);
        // load factor ≤ 5/8: short probe runs
        if (self.len + 1) * 8 > self.words.len() / SLOT * 5 {
            self.grow(self.words.len() / SLOT * 2);
        }
        self.put(halves(&key), id);
        self.max = self.max.max(Some(id));
    }

    fn put(&mut self, key: (u64, u64), id: u64) {
        let mask = self.words.len() / SLOT - 1;
        let mut i = self.table().home(key);
        loop {
            let s = &mut self.words[i * SLOT..i * SLOT + SLOT];
            if s[2] == EMPTY {
                s.copy_from_slice(&[key.0, key.1, id]);
                self.len += 1;
                return;
            }
            if (s[0], s[1]) == key {
                s[2] = id;
                return;
            }
            i = (i + 1) & mask;
        }
    }

    pub fn get(&self, key: &[u8; 16]) -> Option<u64> {
        self.table().get(key)
    }

    /// Sets the ids of many keys (`pairs`, in any order): the room is made first, and the slots
    /// of the keys [`AHEAD`] places on are prefetched meanwhile, as in [`Table::get_each`] — a
    /// session reading a million ids otherwise waits for a cache miss per key.
    pub fn insert_all(&mut self, pairs: &[([u8; 16], u64)]) {
        self.reserve(pairs.len());
        for p in pairs.iter().take(AHEAD) {
            self.table().prefetch(&p.0);
        }
        for (n, (key, id)) in pairs.iter().enumerate() {
            if let Some(ahead) = pairs.get(n + AHEAD) {
                self.table().prefetch(&ahead.0);
            }
            self.insert(*key, *id);
        }
    }

    /// [`Table::get_each`] over this map.
    pub fn get_each<'k>(&self, count: usize, key: impl Fn(usize) -> &'k [u8; 16], found: impl FnMut(usize, Option<u64>)) {
        self.table().get_each(count, key, found)
    }
}

/// The bitmap of `ids` (in any order, maybe repeated), whose largest is `max`: when they are
/// dense (the bitmap of 0..=max takes no more than the ids' own list), set as bits and read out
/// by 64Ki-blocks, else sorted.
pub fn collect(mut ids: Vec<u64>, max: u64) -> RoaringTreemap {
    if ids.is_empty() {
        return RoaringTreemap::new();
    }
    if max / 64 >= ids.len() as u64 {
        ids.sort_unstable();
        ids.dedup();
        return RoaringTreemap::from_sorted_iter(ids).unwrap_or_default();
    }
    let mut bits = vec![0u8; (max / 8 + 1) as usize];
    for id in ids {
        bits[(id / 8) as usize] |= 1 << (id % 8);
    }
    // one 32-bit bitmap per 2^32 ids
    let buckets = bits.chunks(1 << 29).enumerate().map(|(hi, bytes)| (hi as u32, crate::bitmap::from_lsb0_bytes(0, bytes)));
    RoaringTreemap::from_bitmaps(buckets.filter(|(_, b)| !b.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn key(n: u64) -> [u8; 16] {
        let mut k = [0u8; 16];
        // version-7-like: a slowly growing prefix, so equal high halves are common
        k[..8].copy_from_slice(&(n / 1000).to_be_bytes());
        k[8..].copy_from_slice(&n.to_le_bytes());
        k
    }

    #[test]
    fn fingerprints_are_sha256_halves() {
        // echo -n 'alice@example.com' | sha256sum
        let hex: String = fingerprint(b"alice@example.com").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "ff8d9819fc0e12bf0d24892e45987e24");
        assert_ne!(fingerprint(b""), fingerprint(b" "));
    }

    #[test]
    fn a_table_lists_what_its_map_holds() {
        let mut m = IdMap::default();
        let pairs: Vec<([u8; 16], u64)> = (0..5000u64).map(|n| (key(n), n + 7)).collect();
        m.insert_all(&pairs);
        let mut listed: Vec<([u8; 16], u64)> = Table::new(m.words()).unwrap().entries().collect();
        listed.sort_by_key(|p| p.1);
        assert_eq!(listed, pairs);
        let mut copy = IdMap::default();
        copy.insert_all(&listed);
        assert_eq!((copy.len(), copy.max_id(), copy.get(&key(42))), (5000, Some(5006), Some(49)));
    }

    #[test]
    fn holds_a_million_keys() {
        let mut m = IdMap::default();
        for n in 0..1_000_000u64 {
            m.insert(key(n), n * 3);
        }
        assert_eq!(m.len(), 1_000_000);
        assert_eq!(m.max_id(), Some(2_999_997));
        let which: Vec<usize> = (0..2_000_000).step_by(7).collect();
        let keys: Vec<[u8; 16]> = (0..2_000_000u64).map(key).collect();
        let mut seen = 0;
        m.get_each(which.len(), |n| &keys[which[n]], |n, id| {
            let i = which[n];
            assert_eq!(id, (i < 1_000_000).then_some(i as u64 * 3), "{i}");
            seen += 1;
        });
        assert_eq!(seen, which.len());
    }

    #[test]
    fn a_table_from_other_words() {
        assert!(Table::new(&[]).is_none());
        assert!(Table::new(&[0; 5]).is_none());
        assert!(Table::new(&[0; 9]).is_none(), "3 slots is not a power of two");
        // every slot taken and none the key's: the lookup ends
        let full = [1u64, 2, 3, 4, 5, 6];
        assert_eq!(Table::new(&full).unwrap().get(&[9; 16]), None);
        assert_eq!(Table::new(&full).unwrap().get(&{
            let mut k = [0u8; 16];
            k[..8].copy_from_slice(&4u64.to_le_bytes());
            k[8..].copy_from_slice(&5u64.to_le_bytes());
            k
        }), Some(6));
    }

    #[test]
    fn keys_by_id_find_the_next_ids() {
        let mut m = IdMap::default();
        for n in 0..1000u64 {
            if n % 7 != 3 {
                m.insert(key(n), n);
            }
        }
        let mut words = vec![1u64; m.keys_by_id_words()];
        assert_eq!(words.len(), 2000);
        m.write_keys_by_id(&mut words);
        let b = ByIds::new(&words).unwrap();
        assert_eq!(b.near(10, &key(11), 1), Some(11));
        assert_eq!(b.near(9, &key(11), 8), Some(11), "past id 10, which no key has");
        assert_eq!(b.near(9, &key(10), 8), None, "key 10 has no id");
        assert_eq!(b.near(9, &key(14), 8), Some(14));
        assert_eq!(b.near(9, &key(30), 8), None, "beyond the window");
        assert_eq!(b.near(11, &key(11), 8), None, "not after last");
        assert_eq!(b.near(9, &key(10), 0), None);
        assert_eq!(b.near(995, &key(999), 100), Some(999));
        assert_eq!(b.near(999, &key(999), 100), None, "past the largest id");
        assert_eq!(b.near(u64::MAX, &key(1), 8), None);
        // an id no key has holds zeros, and the zero key is never found
        assert_eq!(b.near(2, &[0; 16], 8), None);
        // ids far apart: no copy
        let mut sparse = IdMap::default();
        sparse.insert(key(1), 1);
        sparse.insert(key(2), 1 << 40);
        assert_eq!(sparse.keys_by_id_words(), 0);
        assert_eq!(IdMap::default().keys_by_id_words(), 0);
    }

    proptest! {
        #[test]
        fn same_as_a_hash_map(pairs in prop::collection::vec((0u64..500, 0u64..10_000), 0..400), probes in prop::collection::vec(0u64..600, 0..100)) {
            let (mut m, mut reference) = (IdMap::default(), HashMap::new());
            if pairs.len() % 2 == 0 {
                m.reserve(pairs.len());
            }
            let all: Vec<([u8; 16], u64)> = pairs.iter().map(|(k, id)| (key(*k), *id)).collect();
            // a third of the maps in one batch, the others one key at a time
            if pairs.len() % 3 == 0 {
                m.insert_all(&all);
            } else {
                all.iter().for_each(|(k, id)| m.insert(*k, *id));
            }
            for (k, id) in &all {
                reference.insert(*k, *id);
            }
            prop_assert_eq!(m.len(), reference.len());
            prop_assert_eq!(m.max_id(), pairs.iter().map(|p| p.1).max());
            let copy = m.words().to_vec();
            let table = Table::new(&copy).unwrap();
            for p in probes {
                prop_assert_eq!(m.get(&key(p)), reference.get(&key(p)).copied());
                prop_assert_eq!(table.get(&key(p)), reference.get(&key(p)).copied());
            }
        }

        #[test]
        fn collect_is_the_set_of_ids(ids in prop::collection::vec(0u64..300_000, 0..3000), far in prop::option::of(0u64..(3 << 32))) {
            let mut ids = ids;
            ids.extend(far);
            let max = ids.iter().copied().max().unwrap_or(0);
            let expected: RoaringTreemap = ids.iter().copied().collect();
            prop_assert_eq!(collect(ids.clone(), max), expected.clone());
            // dense: many repeats of a small range take the bitset path
            let dense: Vec<u64> = ids.iter().map(|i| i % 1000).chain(0..1000).collect();
            prop_assert_eq!(collect(dense.clone(), 999), dense.into_iter().collect::<RoaringTreemap>());
        }
    }
}
