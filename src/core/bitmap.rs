//! Contact sets as roaring bitmaps: the text form `{1,2,3}` and the portable serialization that
//! CRoaring and pg_roaringbitmap read and write (so bytea moves between them unchanged).
//! 32-bit values are PostgreSQL int4s: negative numbers are stored as their unsigned bit pattern
//! (so -1 sorts last), exactly as pg_roaringbitmap does.
//! The 64-bit form (`RoaringTreemap`) holds PostgreSQL int8s the same way, in the portable 64-bit
//! format of CRoaring (a count of 32-bit buckets, then each bucket's high half and bitmap).
pub use roaring::{RoaringBitmap, RoaringTreemap};

use crate::frozen;

/// Reads either text form: `{1,2,3}`, or `\x…` (the portable bytes in hex, as the `bytea` output
/// format writes them).
pub fn parse_any(s: &str) -> Result<RoaringBitmap, String> {
    match s.trim().strip_prefix("\\x") {
        Some(hex) => from_bytes(&from_hex(hex)?),
        None => parse_text(s),
    }
}

/// `\x` followed by the portable bytes in lower-case hex.
pub fn to_hex(b: &RoaringBitmap) -> String {
    hex_of(&to_bytes(b))
}

/// Why text or bytes do not become a 64-bit bitmap.
#[derive(Debug, PartialEq)]
pub enum Unreadable {
    /// not in the format (the message says what is wrong)
    Invalid(String),
    /// in the format, but it would take this many bytes in memory, over [`crate::ranges::MAX_BYTES`]
    TooLarge(u64),
}

impl From<String> for Unreadable {
    fn from(s: String) -> Self {
        Unreadable::Invalid(s)
    }
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unreadable::Invalid(s) => f.write_str(s),
            Unreadable::TooLarge(n) => write!(f, "it would take {n} bytes in memory"),
        }
    }
}

/// Reads either text form of a 64-bit bitmap: `{1,2,3}` or `\x…`.
pub fn parse_any64(s: &str) -> Result<RoaringTreemap, Unreadable> {
    match s.trim().strip_prefix("\\x") {
        Some(hex) => from_bytes64(&from_hex(hex)?),
        None => Ok(parse_list::<i64>(s, "bigint")?.into_iter().map(|v| v as u64).collect()),
    }
}

pub fn to_hex64(b: &RoaringTreemap) -> String {
    hex_of(&to_bytes64(b))
}

/// `{1,2,3}`, in the bitmap's (unsigned) order, values shown as int8.
pub fn format_text64(b: &RoaringTreemap) -> String {
    format_list(b.iter().map(|v| v as i64))
}

/// `out` followed by a bitmap's portable bytes with their all-zero 8-byte words left out, for an
/// aggregate's partial state on its way from a parallel worker to the leader: each process scans
/// its share of the table's chunks (with two workers and the leader, one chunk in three), so most
/// words of a worker's bitset containers are zero, and a state that fits PostgreSQL's 64 KiB tuple
/// queue (at 1M contacts, 128 KiB of containers pack into ~50 KiB) is sent without waiting for the
/// leader to read. Layout: the length (u32, little-endian; a value is at most 1 GB), one bit per
/// word (set: the word follows; the last word padded with zeros), then the words that are not
/// zero. The bytes are packed as they are written, never held whole.
pub fn append_packed(out: Vec<u8>, b: &RoaringBitmap) -> Vec<u8> {
    let mut p = ZeroWordPacker::new(out, b.serialized_size());
    // the packer takes what it is given
    let _ = b.serialize_into(&mut p);
    p.finish()
}

/// [`append_packed`] of a 64-bit bitmap.
pub fn append_packed64(out: Vec<u8>, b: &RoaringTreemap) -> Vec<u8> {
    let mut p = ZeroWordPacker::new(out, b.serialized_size());
    let _ = b.serialize_into(&mut p);
    p.finish()
}

/// Packs bytes as they are written (`len` of them, the size the mask is made for).
struct ZeroWordPacker {
    out: Vec<u8>,
    mask_at: usize,
    words: usize,
    word: [u8; 8],
    in_word: usize,
}

impl ZeroWordPacker {
    /// A packer appending to `out`.
    fn new(mut out: Vec<u8>, len: usize) -> Self {
        out.reserve(4 + len.div_ceil(64) + len / 2);
        out.extend_from_slice(&(len as u32).to_le_bytes());
        let mask_at = out.len();
        out.resize(mask_at + len.div_ceil(64), 0);
        ZeroWordPacker { out, mask_at, words: 0, word: [0; 8], in_word: 0 }
    }

    fn push_word(&mut self, word: &[u8]) {
        if word.iter().fold(0, |any, b| any | b) != 0 {
            if let Some(m) = self.out.get_mut(self.mask_at + self.words / 8) {
                *m |= 1 << (self.words % 8);
            }
            self.out.extend_from_slice(word);
        }
        self.words += 1;
    }

    fn write_bytes(&mut self, mut bytes: &[u8]) {
        if self.in_word > 0 {
            let take = bytes.len().min(8 - self.in_word);
            self.word[self.in_word..self.in_word + take].copy_from_slice(&bytes[..take]);
            self.in_word += take;
            bytes = &bytes[take..];
            if self.in_word < 8 {
                return;
            }
            let word = self.word;
            self.push_word(&word);
            self.in_word = 0;
        }
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.push_word(word);
        }
        let tail = words.remainder();
        self.word[..tail.len()].copy_from_slice(tail);
        self.in_word = tail.len();
    }

    fn finish(mut self) -> Vec<u8> {
        if self.in_word > 0 {
            let mut word = [0u8; 8];
            word[..self.in_word].copy_from_slice(&self.word[..self.in_word]);
            self.push_word(&word);
        }
        self.out
    }
}

impl std::io::Write for ZeroWordPacker {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_bytes(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The bytes [`append_packed`] packed (what follows `out`); anything else is an error, never a panic.
pub fn unpack_zero_words(packed: &[u8]) -> Result<Vec<u8>, String> {
    let bad = || format!("{} bytes are not a packed bitmap", packed.len());
    let (len, rest) = packed.split_first_chunk::<4>().ok_or_else(bad)?;
    let len = u32::from_le_bytes(*len) as usize;
    let (mask, mut words) = rest.split_at_checked(len.div_ceil(8).div_ceil(8)).ok_or_else(bad)?;
    if words.len() != 8 * mask.iter().map(|b| b.count_ones() as usize).sum::<usize>() {
        return Err(bad());
    }
    let mut out = vec![0u8; len.div_ceil(8) * 8];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        if mask[i / 8] >> (i % 8) & 1 == 1 {
            let (word, more) = words.split_at(8);
            chunk.copy_from_slice(word);
            words = more;
        }
    }
    out.truncate(len);
    Ok(out)
}

/// The portable 64-bit format.
pub fn to_bytes64(b: &RoaringTreemap) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.serialized_size());
    // writing to a Vec cannot fail
    let _ = b.serialize_into(&mut out);
    out
}

/// Reads the portable 64-bit format, validating it; anything else is an error, never a panic.
/// Run containers are read as arrays or bitsets, so bytes that would take more than
/// [`crate::ranges::MAX_BYTES`] in memory are refused before they are read.
pub fn from_bytes64(bytes: &[u8]) -> Result<RoaringTreemap, Unreadable> {
    match frozen::decoded_size64(bytes) {
        Some(n) if n > crate::ranges::MAX_BYTES => Err(Unreadable::TooLarge(n)),
        _ => Ok(read64(bytes, true)?),
    }
}

fn read64(bytes: &[u8], checked: bool) -> Result<RoaringTreemap, String> {
    let (head, mut rest) = bytes.split_at_checked(8).ok_or_else(|| format!("{} bytes is too short for a 64-bit roaring bitmap", bytes.len()))?;
    let n = u64::from_le_bytes(head.try_into().unwrap_or_default());
    // each bucket takes at least 12 bytes: its key and an empty bitmap's header
    if n > (rest.len() / 12) as u64 {
        return Err(format!("the header announces {n} buckets but only {} bytes follow", rest.len()));
    }
    let mut buckets = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let (key, after) = rest.split_at_checked(4).ok_or("a bucket is cut short")?;
        let key = u32::from_le_bytes(key.try_into().unwrap_or_default());
        if buckets.last().is_some_and(|(k, _)| *k >= key) {
            return Err("bucket keys are not in increasing order".into());
        }
        let start = after;
        rest = after;
        let mut b = if checked { RoaringBitmap::deserialize_from(&mut rest).map_err(|e| format!("not a portable roaring bitmap: {e}"))? } else { RoaringBitmap::deserialize_unchecked_from(&mut rest).map_err(|e| e.to_string())? };
        fix_runs(start, &mut b);
        buckets.push((key, b));
    }
    if checked && !rest.is_empty() {
        return Err(format!("{} bytes left over after the roaring bitmap", rest.len()));
    }
    Ok(RoaringTreemap::from_bitmaps(buckets))
}

/// Gives the crate a second look at the run containers it reads wrong ([`frozen::misread_runs`]):
/// taking a value out and putting it back makes it choose the container's store again.
fn fix_runs(bytes: &[u8], b: &mut RoaringBitmap) {
    if bytes.get(..2) == Some(&frozen::WITH_RUNS.to_le_bytes()) {
        for first in frozen::misread_runs(bytes) {
            b.remove(first);
            b.insert(first);
        }
    }
}

fn hex_of(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 + bytes.len() * 2);
    out.push_str("\\x");
    for x in bytes {
        out.push_str(&format!("{x:02x}"));
    }
    out
}

fn from_hex(hex: &str) -> Result<Vec<u8>, String> {
    if !hex.len().is_multiple_of(2) {
        return Err("hex input has an odd number of digits".into());
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| hex.get(i..i + 2).and_then(|d| u8::from_str_radix(d, 16).ok()).ok_or_else(|| format!("\"{}\" is not hex", preview(&hex[i..]))))
        .collect()
}

/// Reads `{1,2,3}` (whitespace allowed, `{}` is empty).
pub fn parse_text(s: &str) -> Result<RoaringBitmap, String> {
    Ok(parse_list::<i32>(s, "int4")?.into_iter().map(|v| v as u32).collect())
}

fn parse_list<T: std::str::FromStr>(s: &str, what: &str) -> Result<Vec<T>, String> {
    let inner = s.trim().strip_prefix('{').and_then(|r| r.strip_suffix('}'))
        .ok_or_else(|| format!("a roaring bitmap is written like {{1,2,3}}, not \"{}\"", preview(s)))?;
    if inner.trim().is_empty() {
        return Ok(Vec::new());
    }
    inner.split(',').map(|item| item.trim().parse().map_err(|_| format!("\"{}\" is not an integer ({what})", preview(item.trim())))).collect()
}

fn preview(s: &str) -> String {
    s.chars().take(40).collect()
}

/// `{1,2,3}`, in the bitmap's (unsigned) order.
pub fn format_text(b: &RoaringBitmap) -> String {
    format_list(b.iter().map(|v| v as i32))
}

fn format_list<T: std::fmt::Display>(values: impl Iterator<Item = T>) -> String {
    crate::ranges::format_list(values, usize::MAX, &mut || {}).unwrap_or_default()
}

/// The portable roaring format.
pub fn to_bytes(b: &RoaringBitmap) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.serialized_size());
    // writing to a Vec cannot fail
    let _ = b.serialize_into(&mut out);
    out
}

/// Reads the portable format, validating it; anything else is an error, never a panic.
pub fn from_bytes(bytes: &[u8]) -> Result<RoaringBitmap, String> {
    if bytes.len() < 8 {
        return Err(format!("{} bytes is too short for a roaring bitmap", bytes.len()));
    }
    let mut reader = bytes;
    let mut b = RoaringBitmap::deserialize_from(&mut reader).map_err(|e| format!("not a portable roaring bitmap: {e}"))?;
    if !reader.is_empty() {
        return Err(format!("{} bytes left over after the roaring bitmap", reader.len()));
    }
    fix_runs(bytes, &mut b);
    Ok(b)
}

/// Reads portable bytes this code wrote or validated before (a stored value): the containers are
/// not checked again. Bytes that are cut short are still an error.
pub fn from_trusted_bytes(bytes: &[u8]) -> Result<RoaringBitmap, String> {
    let mut b = RoaringBitmap::deserialize_unchecked_from(bytes).map_err(|e| e.to_string())?;
    fix_runs(bytes, &mut b);
    Ok(b)
}

/// [`from_trusted_bytes`] for the 64-bit format.
pub fn from_trusted_bytes64(bytes: &[u8]) -> Result<RoaringTreemap, String> {
    read64(bytes, false)
}

/// The values whose bits are set in `bytes` (least significant bit first), from `offset` on (a
/// multiple of 65536): `RoaringBitmap::from_lsb0_bytes`, except that a container of exactly 4096
/// values is an array. roaring 0.10 keeps such a container as a bitmap, which its writer then
/// puts in the portable format as a bitmap, where a reader takes 4096 values for an array.
pub fn from_lsb0_bytes(offset: u32, bytes: &[u8]) -> RoaringBitmap {
    debug_assert_eq!(offset % 65536, 0);
    let mut b = RoaringBitmap::from_lsb0_bytes(offset, bytes);
    for (i, block) in bytes.chunks(8192).enumerate() {
        if block.iter().map(|x| x.count_ones()).sum::<u32>() == 4096 {
            let byte = block.iter().position(|x| *x != 0).unwrap_or(0);
            let first = offset + i as u32 * 65536 + byte as u32 * 8 + block[byte].trailing_zeros();
            // taken out, the container becomes an array; put back, it stays one
            b.remove(first);
            b.insert(first);
        }
    }
    b
}

/// A bitmap an aggregate gathers one value at a time from a scan's rows. An insert searches the
/// containers, then the container, for every value; here values go in together. Rows mostly come
/// in the order of their ids (a table's rows are mostly stored in the order they were added), so
/// the values of a 64Ki-block of ids are set as bits of that block, which joins the set as one
/// container when the values move on to a later block. Blocks that hold few values (ids far
/// apart) would cost a container each for a handful of values: after one, values wait in
/// ascending runs instead, appended to the set with no search, until a run is dense again. Values
/// below the current block or run (a scan's strays) are sorted apart and merged.
#[derive(Clone, Debug)]
pub struct Gathered<S: Gather> {
    set: S,
    /// the 64Ki-block whose values are in `bits` ([`NO_BLOCK`]: none)
    block: u64,
    /// its bits (least significant first), 8 KiB once used
    bits: Vec<u8>,
    /// values set in `bits` (repeats counted)
    in_block: usize,
    /// after a sparse block: values wait in `run` instead of `bits`
    sparse: bool,
    run: Vec<S::Value>,
    strays: Vec<S::Value>,
    /// bytes the set may have grown by since it was last measured ([`Gathered::grow`]), and how
    /// many more before it is measured again
    grown: u64,
    measure_at: u64,
}

const NO_BLOCK: u64 = u64::MAX;

impl<S: Gather> Default for Gathered<S> {
    fn default() -> Self {
        S::default().into()
    }
}

/// What [`Gathered`] needs of a bitmap type.
pub trait Gather: Default + Clone {
    type Value: Copy + Ord + Into<u64> + std::fmt::Debug;
    /// Adds `values`, sorted and without repeats.
    fn add_sorted(&mut self, values: &[Self::Value]);
    /// Adds the values of 64Ki-block `block` (values `block << 16 ..`) whose bits are set in
    /// `bits` (8192 bytes, least significant bit first).
    fn add_block(&mut self, block: u64, bits: &[u8]);
    /// The memory it takes, about (a walk over its containers, see [`memory`]).
    fn memory(&self) -> u64;
}

impl Gather for RoaringBitmap {
    type Value = u32;
    fn add_sorted(&mut self, values: &[u32]) {
        let past = self.max().map_or(0, |max| values.partition_point(|v| *v <= max));
        let (within, after) = values.split_at(past);
        // within: sorted, no repeats; after: sorted, past the largest value (neither can fail)
        if !within.is_empty() {
            *self |= RoaringBitmap::from_sorted_iter(within.iter().copied()).expect("sorted values");
        }
        self.append(after.iter().copied()).expect("values past the largest");
    }

    fn add_block(&mut self, block: u64, bits: &[u8]) {
        *self |= from_lsb0_bytes((block << 16) as u32, bits);
    }

    fn memory(&self) -> u64 {
        memory(self)
    }
}

impl Gather for RoaringTreemap {
    type Value = u64;
    fn add_sorted(&mut self, values: &[u64]) {
        let past = self.max().map_or(0, |max| values.partition_point(|v| *v <= max));
        let (within, after) = values.split_at(past);
        if !within.is_empty() {
            *self |= RoaringTreemap::from_sorted_iter(within.iter().copied()).expect("sorted values");
        }
        self.append(after.iter().copied()).expect("values past the largest");
    }

    fn add_block(&mut self, block: u64, bits: &[u8]) {
        let low = from_lsb0_bytes(((block & 0xFFFF) << 16) as u32, bits);
        *self |= RoaringTreemap::from_bitmaps([((block >> 16) as u32, low)]);
    }

    fn memory(&self) -> u64 {
        self.bitmaps().map(|(_, b)| 64 + memory(b)).sum()
    }
}

/// What `b` takes in memory, about: 8 KiB per bitset, an array's capacity, and what a container
/// and its allocation cost beside them (the Rust roaring crate keeps no run containers).
pub fn memory(b: &RoaringBitmap) -> u64 {
    let s = b.statistics();
    // n_bytes_array_containers counts 4 bytes per value an array has room for; it holds u16s
    s.n_containers as u64 * 64 + s.n_bytes_array_containers / 2 + s.n_bitset_containers as u64 * 8192
}

impl<S: Gather> Gathered<S> {
    /// Values wait in runs of this many (a run of u64 is 16 KB, in the cache while it fills).
    const RUN: usize = 2048;
    /// A block with fewer values than this is sparse (a container for so few costs more than a
    /// run's appends); a run of [`Self::RUN`] values within this many blocks is dense again.
    const DENSE: usize = 256;
    /// What one value added from a run or the strays may add to the set's memory (a container of
    /// its own under a high key of its own), and what one block may.
    const VALUE_BYTES: u64 = 128;
    const BLOCK_BYTES: u64 = 8192 + 128;

    /// Counts `added` bytes (what an operation on the set may have added to its memory, on top of
    /// the values added through [`Gathered::add`], counted here) and returns the set's memory
    /// when it is over `limit`. The set is measured (a walk over its containers) only once what
    /// was added since could have made it a quarter larger, or taken it over the limit: an
    /// aggregate pays next to nothing for the check, and overshoots the limit by about 1 MiB.
    pub fn grow(&mut self, added: u64, limit: u64) -> Option<u64> {
        self.grown = self.grown.saturating_add(added);
        if self.grown < self.measure_at {
            return None;
        }
        let size = self.set.memory();
        self.grown = 0;
        self.measure_at = (size / 4).min(limit.saturating_sub(size)).max(1 << 20);
        (size > limit).then_some(size)
    }

    /// The memory of the values that joined the set (not those waiting), about.
    pub fn memory(&self) -> u64 {
        self.set.memory()
    }

    pub fn add(&mut self, v: S::Value) {
        if !self.add_in_block(v) {
            self.add_elsewhere(v, v.into() >> 16);
        }
    }

    /// Adds `v` when it falls in the current block, the common case of a scan; false (and nothing
    /// done) otherwise. Cannot panic, so an aggregate's step can call it before any error handling
    /// is set up.
    #[inline]
    pub fn add_in_block(&mut self, v: S::Value) -> bool {
        let w: u64 = v.into();
        if w >> 16 != self.block {
            return false;
        }
        let i = (w & 0xFFFF) as usize;
        match self.bits.get_mut(i >> 3) {
            Some(byte) => {
                *byte |= 1 << (i & 7);
                self.in_block += 1;
                true
            }
            None => false,
        }
    }

    /// A value outside the current block (of number `block`).
    fn add_elsewhere(&mut self, v: S::Value, block: u64) {
        let later = self.block == NO_BLOCK || block > self.block;
        if !self.sparse && later {
            let was_sparse = self.block != NO_BLOCK && self.in_block < Self::DENSE;
            self.end_block();
            if !was_sparse {
                self.block = block;
                self.bits.resize(8192, 0);
                return self.add(v);
            }
            self.sparse = true;
        }
        match self.run.last() {
            Some(last) if v <= *last => self.strays.push(v),
            _ if later => self.run.push(v),
            _ => self.strays.push(v),
        }
        if self.run.len() + self.strays.len() >= Self::RUN {
            self.settle_waiting();
        }
    }

    /// The current block joins the set.
    fn end_block(&mut self) {
        if self.in_block > 0 {
            self.grown = self.grown.saturating_add(Self::BLOCK_BYTES);
            self.set.add_block(self.block, &self.bits);
            self.bits.fill(0);
            self.in_block = 0;
        }
        self.block = NO_BLOCK;
    }

    /// The values waiting in the run and among the strays join the set; a dense run ends the
    /// sparse mode.
    fn settle_waiting(&mut self) {
        if let (Some(first), Some(last)) = (self.run.first(), self.run.last()) {
            let span = ((*last).into() >> 16) - ((*first).into() >> 16);
            self.sparse = self.run.len() < Self::RUN || span as usize * Self::DENSE > Self::RUN;
        }
        self.grown = self.grown.saturating_add(Self::VALUE_BYTES * (self.run.len() + self.strays.len()) as u64);
        self.set.add_sorted(&self.run);
        self.run.clear();
        if !self.strays.is_empty() {
            self.strays.sort_unstable();
            self.strays.dedup();
            self.set.add_sorted(&self.strays);
            self.strays.clear();
        }
    }

    fn settle(&mut self) {
        self.end_block();
        self.settle_waiting();
    }

    fn waiting(&self) -> bool {
        self.in_block > 0 || !self.run.is_empty() || !self.strays.is_empty()
    }

    /// The set, with every value added so far.
    pub fn set(&mut self) -> &mut S {
        self.settle();
        &mut self.set
    }

    /// The set with every value added so far, copied only when some are still waiting.
    pub fn settled(&self) -> std::borrow::Cow<'_, S> {
        if self.waiting() {
            std::borrow::Cow::Owned(self.clone().into_set())
        } else {
            std::borrow::Cow::Borrowed(&self.set)
        }
    }

    pub fn into_set(mut self) -> S {
        self.settle();
        self.set
    }

    /// Adds everything `other` holds.
    pub fn absorb(&mut self, other: &Self)
    where
        for<'a> S: std::ops::BitOrAssign<&'a S>,
    {
        let set = self.set();
        *set |= &other.set;
        if other.in_block > 0 {
            set.add_block(other.block, &other.bits);
        }
        other.run.iter().chain(&other.strays).for_each(|v| self.add(*v));
    }
}

impl<S: Gather> From<S> for Gathered<S> {
    fn from(set: S) -> Self {
        Gathered { set, block: NO_BLOCK, bits: Vec::new(), in_block: 0, sparse: false, run: Vec::new(), strays: Vec::new(), grown: 0, measure_at: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pack_zero_words(bytes: &[u8]) -> Vec<u8> {
        let mut p = ZeroWordPacker::new(Vec::new(), bytes.len());
        p.write_bytes(bytes);
        p.finish()
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn portable_bytes_match_croaring() {
        // pg_roaringbitmap: SELECT '{1,2,3}'::roaringbitmap::bytea
        let b = parse_text("{1,2,3}").unwrap();
        assert_eq!(hex(&to_bytes(&b)), "3a300000010000000000020010000000010002000300");
        assert_eq!(from_bytes(&to_bytes(&b)).unwrap(), b);
        // the empty bitmap
        assert_eq!(hex(&to_bytes(&RoaringBitmap::new())), "3a30000000000000");
    }

    #[test]
    fn zero_words_pack_away() {
        assert_eq!(hex(&pack_zero_words(&[])), "00000000");
        // 11 bytes: a non-zero word, then a zero 3-byte tail
        assert_eq!(hex(&pack_zero_words(&[0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0])), "0b000000010000000000000007");
        assert_eq!(unpack_zero_words(&pack_zero_words(&[0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0])).unwrap(), vec![0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0]);
        // a parallel worker's share of 300k of 1M ids (chunks of 928 ids, every third one) in
        // 15 bitset containers: 120 KiB, packed under PostgreSQL's 64 KiB tuple queue
        let share: RoaringTreemap = (0..1_000_000u64).filter(|v| (v / 928) % 3 == 0 && v * 7 % 10 < 3).collect();
        let bytes = to_bytes64(&share);
        assert!(bytes.len() > 120 * 1024, "{}", bytes.len());
        assert!(pack_zero_words(&bytes).len() < 60 * 1024, "{}", pack_zero_words(&bytes).len());
        for bad in [&[1u8, 0, 0][..], &[9, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6, 7, 8], &[8, 0, 0, 0, 1], &[0, 0, 0, 0, 0]] {
            assert!(unpack_zero_words(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_block_of_4096_values_writes_as_an_array() {
        for (offset, step) in [(0u32, 1u32), (65536 * 3, 16), (0, 7)] {
            let values: Vec<u32> = (0..4096).map(|i| offset + i * step).filter(|v| v - offset < 65536).collect();
            let mut bytes = vec![0u8; 8192];
            values.iter().for_each(|v| bytes[((v - offset) / 8) as usize] |= 1 << ((v - offset) % 8));
            let b = from_lsb0_bytes(offset, &bytes);
            assert_eq!(b, values.iter().copied().collect::<RoaringBitmap>());
            assert_eq!(from_bytes(&to_bytes(&b)).unwrap(), b, "{} values", values.len());
        }
        // what the crate's own constructor gets wrong (fixed upstream, the test says when)
        let bytes: Vec<u8> = (0..8192).map(|i| (i % 2 == 0) as u8).collect();
        assert!(from_bytes(&to_bytes(&RoaringBitmap::from_lsb0_bytes(0, &bytes))).is_err());
    }

    #[test]
    fn runs_of_more_than_4096_values_read_as_a_bitset() {
        // rb_runoptimize's bytes: one run 0..=4096; two runs 0..=2047 and 4000..=6049 (lengths 4096)
        let one = from_hex("3b3000000100000010010000000010").unwrap();
        let two = from_hex("3b300000010000011002000000ff07a00f0108").unwrap();
        for (bytes, values) in [(&one, (0..4097).collect::<RoaringBitmap>()), (&two, (0..2048).chain(4000..6050).collect())] {
            for b in [from_bytes(bytes).unwrap(), from_trusted_bytes(bytes).unwrap()] {
                assert_eq!(b, values);
                assert_eq!(from_bytes(&to_bytes(&b)).unwrap(), values);
            }
            let mut in64 = [1u64.to_le_bytes().as_slice(), &[0; 4], bytes].concat();
            for b in [from_bytes64(&in64).unwrap(), from_trusted_bytes64(&in64).unwrap()] {
                assert_eq!(from_bytes64(&to_bytes64(&b)).unwrap(), b);
                assert_eq!(b.iter().map(|v| v as u32).collect::<RoaringBitmap>(), values);
            }
            in64.push(0);
            assert!(from_bytes64(&in64).is_err(), "a byte left over");
        }
        // what the crate itself gets wrong (fixed upstream, the test says when)
        let crate_read = RoaringBitmap::deserialize_from(&one[..]).unwrap();
        assert!(from_bytes(&to_bytes(&crate_read)).is_err());
    }

    #[test]
    fn hex_form_reads_back() {
        let b = parse_text("{1,2,3}").unwrap();
        assert_eq!(to_hex(&b), "\\x3a300000010000000000020010000000010002000300");
        assert_eq!(parse_any(&to_hex(&b)).unwrap(), b);
        assert_eq!(parse_any("{1,2,3}").unwrap(), b);
        for bad in ["\\x3a3", "\\xzz", "\\x", "\\x3a30000001"] {
            assert!(parse_any(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_edges() {
        let b = parse_text(" { 0, 2147483647 , -1,-2147483648 } ").unwrap();
        assert_eq!(format_text(&b), "{0,2147483647,-2147483648,-1}");
        assert_eq!(parse_text("{}").unwrap().len(), 0);
        for bad in ["", "{", "1,2", "{1,,2}", "{2147483648}", "{a}", "{1}x"] {
            assert!(parse_text(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn portable_64_bit_bytes() {
        // CRoaring roaring64_bitmap_portable_serialize of {1, 2^32}: 2 buckets (high 0 and 1)
        let b = parse_any64("{1,4294967296}").unwrap();
        assert_eq!(
            hex(&to_bytes64(&b)),
            "0200000000000000000000003a3000000100000000000000100000000100010000003a3000000100000000000000100000000000"
        );
        assert_eq!(from_bytes64(&to_bytes64(&b)).unwrap(), b);
        assert_eq!(hex(&to_bytes64(&RoaringTreemap::new())), "0000000000000000");
        assert_eq!(format_text64(&parse_any64("{-1, 0, 9223372036854775807}").unwrap()), "{0,9223372036854775807,-1}");
        assert_eq!(parse_any64(&to_hex64(&b)).unwrap(), b);
        for bad in ["{1,}", "{9223372036854775808}", "\\x00", "\\x0100000000000000"] {
            assert!(parse_any64(bad).is_err(), "{bad}");
        }
    }

    /// A 32-bit bitmap in portable bytes whose `n` containers are each one full run (65536
    /// values in 4 bytes).
    fn full_runs(n: usize) -> Vec<u8> {
        let mut b = (((n as u32 - 1) << 16) | frozen::WITH_RUNS as u32).to_le_bytes().to_vec();
        b.extend((0..n.div_ceil(8)).map(|i| if i < n / 8 { 0xff } else { (1u8 << (n % 8)) - 1 }));
        for key in 0..n {
            b.extend((key as u16).to_le_bytes());
            b.extend(u16::MAX.to_le_bytes());
        }
        let offsets = b.len() + if n >= 4 { 4 * n } else { 0 };
        if n >= 4 {
            b.extend((0..n).flat_map(|i| ((offsets + 6 * i) as u32).to_le_bytes()));
        }
        for _ in 0..n {
            b.extend([1, 0, 0, 0, 0xff, 0xff]);
        }
        b
    }

    #[test]
    fn run_containers_that_would_not_fit_in_memory_are_refused() {
        let bucket = full_runs(65536);
        assert_eq!(frozen::cardinality(&bucket), Some(1 << 32));
        let many = |buckets: u32| -> Vec<u8> {
            let mut b = u64::from(buckets).to_le_bytes().to_vec();
            for key in 0..buckets {
                b.extend(key.to_le_bytes());
                b.extend(&bucket);
            }
            b
        };
        // three buckets: 1.2 MB of bytes, 1.5 GB of bitsets once read
        assert_eq!(frozen::decoded_size64(&many(3)), Some(3 << 29));
        assert_eq!(from_bytes64(&many(3)), Err(Unreadable::TooLarge(3 << 29)));
        assert_eq!(parse_any64(&hex_of(&many(3))), Err(Unreadable::TooLarge(3 << 29)));
        let small = [&1u64.to_le_bytes()[..], &[0; 4], &full_runs(3)].concat();
        assert_eq!(frozen::decoded_size64(&small), Some(3 * 8192));
        assert_eq!(from_bytes64(&small).map(|b| b.len()), Ok(3 * 65536));
    }

    #[test]
    fn a_gathered_set_is_measured_and_refused_past_the_limit() {
        let limit = 4 << 20;
        // far-apart values: a container each
        let mut g = Gathered::<RoaringTreemap>::default();
        let refused = (0..2_000_000u64).find_map(|i| {
            g.add(i << 20);
            g.grow(0, limit)
        });
        let size = refused.expect("refused");
        assert!(size > limit && size <= limit + (1 << 20) + 64 * 1024, "{size}");
        assert_eq!(size, g.memory());
        // unions: what the operand adds is counted by the caller
        let mut u = Gathered::<RoaringTreemap>::default();
        let refused = (0..64u64).find_map(|i| {
            let b = RoaringTreemap::from_iter((i << 40)..(i << 40) + (1 << 22));
            let n = b.memory();
            *u.set() |= b;
            u.grow(n, limit)
        });
        assert_eq!(refused, Some(u.memory()));
        // a set that stays small is never refused, however many values come again
        let mut d = Gathered::<RoaringTreemap>::default();
        for i in 0..1_000_000u64 {
            d.add((i * 7919) % 5000 * 65536);
            assert_eq!(d.grow(0, 1 << 20), None);
        }
    }

    proptest! {
        #[test]
        fn gathered_holds_what_inserts_hold(runs in prop::collection::vec((any::<u64>(), 0u64..5000, any::<bool>(), prop::sample::select(vec![1u64, 3, 40, 300, 70_000])), 0..6),
                                            more in prop::collection::vec(0u64..200_000, 0..3000)) {
            // ascending runs (a scan in id order) of dense and sparse ids, descending runs,
            // values anywhere, repeats
            let mut values: Vec<u64> = Vec::new();
            for (start, len, up, step) in runs {
                let run = (0..len).map(move |i| start.wrapping_add(i * step));
                if up { values.extend(run) } else { values.extend(run.collect::<Vec<_>>().into_iter().rev()) }
            }
            values.extend(&more);
            values.extend(more.iter().take(100));
            let (mut g64, mut g32) = (Gathered::<RoaringTreemap>::default(), Gathered::<RoaringBitmap>::default());
            for v in &values {
                g64.add(*v);
                g32.add(*v as u32);
            }
            let (halves, other) = (Gathered::from(values.iter().step_by(2).copied().collect::<RoaringTreemap>()), g64.clone());
            prop_assert_eq!(&*g64.settled(), &values.iter().copied().collect::<RoaringTreemap>());
            // what it holds is a valid bitmap (its bytes pass the checks of stored input)
            prop_assert!(from_bytes64(&to_bytes64(&g64.settled())).is_ok());
            prop_assert!(from_bytes(&to_bytes(&g32.settled())).is_ok());
            prop_assert_eq!(g64.into_set(), values.iter().copied().collect::<RoaringTreemap>());
            prop_assert_eq!(g32.set().clone(), values.iter().map(|v| *v as u32).collect::<RoaringBitmap>());
            let mut merged = halves;
            merged.absorb(&other);
            prop_assert_eq!(merged.into_set(), values.iter().copied().collect::<RoaringTreemap>());
        }

        #[test]
        fn round_trips_64(values in prop::collection::vec(any::<u64>(), 0..500), low in prop::collection::vec(0u64..300_000, 0..500)) {
            let b: RoaringTreemap = values.into_iter().chain(low).collect();
            prop_assert_eq!(from_bytes64(&to_bytes64(&b)).unwrap(), b.clone());
            prop_assert_eq!(from_trusted_bytes64(&to_bytes64(&b)).unwrap(), b.clone());
            prop_assert_eq!(parse_any64(&format_text64(&b)).unwrap(), b);
        }

        #[test]
        fn corrupted_64_bit_bitmaps_are_errors_not_panics(values in prop::collection::vec(any::<u64>(), 1..200), at in any::<usize>(), x in any::<u8>()) {
            let b: RoaringTreemap = values.into_iter().collect();
            let mut bytes = to_bytes64(&b);
            let i = at % bytes.len();
            bytes[i] ^= x | 1;
            let _ = from_bytes64(&bytes);
            let _ = from_bytes64(&bytes[..i]);
        }

        #[test]
        fn round_trips(values in prop::collection::vec(any::<u32>(), 0..2000), dense in 0u32..70000) {
            let mut b: RoaringBitmap = values.into_iter().collect();
            b.insert_range(0..dense);
            prop_assert_eq!(from_bytes(&to_bytes(&b)).unwrap(), b.clone());
            let bytes = to_bytes(&b);
            prop_assert_eq!(from_trusted_bytes(&bytes).unwrap(), b.clone());
            prop_assert!(from_trusted_bytes(&bytes[..bytes.len() - 1]).is_err(), "cut short");
            prop_assert_eq!(parse_text(&format_text(&b)).unwrap(), b);
        }

        #[test]
        fn garbage_is_an_error_not_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            let _ = from_bytes(&bytes);
            let _ = unpack_zero_words(&bytes);
        }

        #[test]
        fn packed_bytes_unpack_to_themselves(values in prop::collection::vec(0u64..300_000, 0..3000), every in 1u64..5, cut in 0usize..9) {
            // a worker's share of a scan: every `every`-th run of 900 ids
            let b: RoaringTreemap = values.into_iter().filter(|v| (v / 900) % every == 0).collect();
            let bytes = to_bytes64(&b);
            let bytes = &bytes[..bytes.len() - cut.min(bytes.len())];
            let packed = pack_zero_words(bytes);
            prop_assert_eq!(unpack_zero_words(&packed).unwrap(), bytes.to_vec());
            if cut == 0 {
                prop_assert_eq!(&append_packed64(Vec::new(), &b), &packed);
                let low: RoaringBitmap = b.iter().map(|v| v as u32).collect();
                prop_assert_eq!(append_packed(vec![1], &low), [&[1u8][..], &pack_zero_words(&to_bytes(&low))].concat());
            }
            prop_assert!(unpack_zero_words(&packed[..packed.len() - 1]).is_err(), "cut short");
            let mut longer = packed.clone();
            longer.push(0);
            prop_assert!(unpack_zero_words(&longer).is_err(), "a byte too many");
        }

        #[test]
        fn corrupted_bitmaps_are_errors_not_panics(values in prop::collection::vec(any::<u32>(), 1..300), at in any::<usize>(), x in any::<u8>()) {
            let b: RoaringBitmap = values.into_iter().collect();
            let mut bytes = to_bytes(&b);
            let i = at % bytes.len();
            bytes[i] ^= x | 1;
            let _ = from_bytes(&bytes);
            let _ = from_bytes(&bytes[..i]);
        }
    }
}
