//! Bitmaps read straight from their portable bytes (CRoaring's "frozen view" idea): no container
//! is copied or allocated to answer membership (`rb_contains(bm, id)` costs a few binary searches
//! per row instead of a deserialization per row), cardinality (a sum over the headers), or to
//! intersect two bitmaps (only the containers whose keys both have are read, and the result is
//! written in the portable format directly).
//!
//! Reads both layouts of the portable format: without run containers (cookie 12346, offsets
//! always present — what this crate writes) and with them (cookie 12347, offsets from 4
//! containers on — what CRoaring and pg_roaringbitmap write after `rb_runoptimize`). Every read is
//! bounds-checked: bytes that are not in the format give `None`, and the caller falls back to the
//! validating deserializer (which reports the error). Writes the layout without run containers,
//! byte for byte what the `roaring` crate and CRoaring write for the same set.

const NO_RUNS: u32 = 12346;
pub(crate) const WITH_RUNS: u16 = 12347;
const NO_OFFSET_THRESHOLD: usize = 4;
const ARRAY_MAX: usize = 4096;
const BITSET_BYTES: usize = 8192;

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(i..i.checked_add(2)?)?.try_into().ok()?))
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(i..i.checked_add(4)?)?.try_into().ok()?))
}

fn u64_at(b: &[u8], i: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(i..i.checked_add(8)?)?.try_into().ok()?))
}

/// Binary search for `target` among `count` sorted u16 values at `base`, `stride` bytes apart:
/// `Ok(index)` when found, else `Err(where it would go)`.
fn search(b: &[u8], base: usize, stride: usize, count: usize, target: u16) -> Option<Result<usize, usize>> {
    let (mut lo, mut hi) = (0, count);
    while lo < hi {
        let mid = (lo + hi) / 2;
        match u16_at(b, base + stride * mid)?.cmp(&target) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => return Some(Ok(mid)),
        }
    }
    Some(Err(lo))
}

/// The headers of one 32-bit bitmap in portable bytes.
struct View<'a> {
    b: &'a [u8],
    n: usize,
    /// the run-container flags (one bit per container), with run containers only
    runs: Option<&'a [u8]>,
    /// where the (key, cardinality − 1) pairs start
    keys: usize,
    /// where the container offsets start, when the layout has them
    offsets: Option<usize>,
}

impl<'a> View<'a> {
    fn new(b: &'a [u8]) -> Option<View<'a>> {
        let cookie = u32_at(b, 0)?;
        let (n, runs, keys) = if cookie == NO_RUNS {
            (u32_at(b, 4)? as usize, None, 8)
        } else if cookie as u16 == WITH_RUNS {
            let n = (cookie >> 16) as usize + 1;
            let flags = b.get(4..4 + n.div_ceil(8))?;
            (n, Some(flags), 4 + flags.len())
        } else {
            return None;
        };
        let offsets = (runs.is_none() || n >= NO_OFFSET_THRESHOLD).then(|| keys + 4 * n);
        // the headers must be there (n ≤ 65536, so this cannot overflow)
        if n > 65536 || b.len() < keys + 4 * n + if offsets.is_some() { 4 * n } else { 0 } {
            return None;
        }
        Some(View { b, n, runs, keys, offsets })
    }

    fn cardinality(&self, i: usize) -> Option<usize> {
        Some(u16_at(self.b, self.keys + 4 * i + 2)? as usize + 1)
    }

    fn is_run(&self, i: usize) -> bool {
        self.runs.is_some_and(|f| f[i / 8] >> (i % 8) & 1 == 1)
    }

    /// Bytes taken by container `i`, which starts at `at`.
    fn size(&self, i: usize, at: usize) -> Option<usize> {
        if self.is_run(i) {
            return Some(2 + 4 * u16_at(self.b, at)? as usize);
        }
        Some(stored_bytes(self.cardinality(i)?))
    }

    /// Where container `i` starts.
    fn start(&self, i: usize) -> Option<usize> {
        match self.offsets {
            Some(o) => Some(u32_at(self.b, o + 4 * i)? as usize),
            None => {
                let mut at = self.keys + 4 * self.n;
                for j in 0..i {
                    at = at.checked_add(self.size(j, at)?)?;
                }
                Some(at)
            }
        }
    }

    /// The number of bytes of this bitmap (where the next one starts in a 64-bit bitmap).
    fn len(&self) -> Option<usize> {
        if self.n == 0 {
            return Some(self.keys);
        }
        let last = self.n - 1;
        let at = self.start(last)?;
        let end = at.checked_add(self.size(last, at)?)?;
        (end <= self.b.len()).then_some(end)
    }

    fn contains(&self, v: u32) -> Option<bool> {
        match search(self.b, self.keys, 4, self.n, (v >> 16) as u16)? {
            Ok(i) => self.container_contains(i, v as u16),
            Err(_) => Some(false),
        }
    }

    fn container_contains(&self, i: usize, low: u16) -> Option<bool> {
        let at = self.start(i)?;
        if self.is_run(i) {
            // runs (start, length − 1) in order: the last run starting at or before `low`
            let last = match search(self.b, at + 2, 4, u16_at(self.b, at)? as usize, low)? {
                Ok(_) => return Some(true),
                Err(0) => return Some(false),
                Err(next) => next - 1,
            };
            let start = u16_at(self.b, at + 2 + 4 * last)? as u32;
            let length = u16_at(self.b, at + 4 + 4 * last)? as u32;
            Some(low as u32 <= start + length)
        } else if self.cardinality(i)? <= ARRAY_MAX {
            Some(search(self.b, at, 2, self.cardinality(i)?, low)?.is_ok())
        } else {
            let word = u64_at(self.b, at + 8 * (low as usize / 64))?;
            Some(word >> (low % 64) & 1 == 1)
        }
    }
}

/// One container, read in place.
enum Container<'a> {
    /// sorted values, 2 bytes each
    Array(&'a [u8]),
    /// 1024 words of 8 bytes
    Bitset(&'a [u8]),
    /// (start, length − 1) pairs, 4 bytes each
    Runs(&'a [u8]),
}

impl<'a> View<'a> {
    fn key(&self, i: usize) -> Option<u16> {
        u16_at(self.b, self.keys + 4 * i)
    }

    fn container(&self, i: usize) -> Option<Container<'a>> {
        let at = self.start(i)?;
        let size = self.size(i, at)?;
        if self.is_run(i) {
            return Some(Container::Runs(self.b.get(at + 2..at.checked_add(size)?)?));
        }
        let body = self.b.get(at..at.checked_add(size)?)?;
        Some(if self.cardinality(i)? > ARRAY_MAX { Container::Bitset(body) } else { Container::Array(body) })
    }

    fn total(&self) -> Option<u64> {
        (0..self.n).try_fold(0u64, |sum, i| Some(sum + self.cardinality(i)? as u64))
    }

    /// The memory its containers take once read (the Rust roaring crate keeps a run container
    /// as an array or a bitset, as its values would be written without runs).
    fn decoded(&self) -> Option<u64> {
        (0..self.n).try_fold(0u64, |sum, i| Some(sum + stored_bytes(self.cardinality(i)?) as u64))
    }

    /// The containers of `self ∩ other` (empty ones left out), read pairwise by key.
    fn and(&self, other: &View) -> Option<Vec<(u16, Owned)>> {
        let mut out = Vec::new();
        self.pairs(other, |key, x, y| {
            if let Some(c) = container_and(&x, &y) {
                out.push((key, c));
            }
            true
        })?;
        Some(out)
    }

    fn and_cardinality(&self, other: &View) -> Option<u64> {
        let mut n = 0;
        self.pairs(other, |_, x, y| {
            n += container_and_cardinality(&x, &y);
            true
        })?;
        Some(n)
    }

    /// Whether the two share a value: stops at the first pair of containers that do.
    fn intersects(&self, other: &View) -> Option<bool> {
        let mut found = false;
        self.pairs(other, |_, x, y| {
            found = container_and_cardinality(&x, &y) > 0;
            !found
        })?;
        Some(found)
    }

    /// Calls `f` with each key both bitmaps have and their two containers, until `f` says stop
    /// (returns false).
    fn pairs(&self, other: &View<'a>, mut f: impl FnMut(u16, Container<'a>, Container<'a>) -> bool) -> Option<()> {
        let (mut i, mut j) = (0, 0);
        while i < self.n && j < other.n {
            let (x, y) = (self.key(i)?, other.key(j)?);
            match x.cmp(&y) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    if !f(x, self.container(i)?, other.container(j)?) {
                        break;
                    }
                    i += 1;
                    j += 1;
                }
            }
        }
        Some(())
    }
}

/// The bytes of a container of `n` values written without runs: an array, or a bitset.
fn stored_bytes(n: usize) -> usize {
    if n <= ARRAY_MAX { 2 * n } else { BITSET_BYTES }
}

fn values(array: &[u8]) -> impl Iterator<Item = u16> + '_ {
    array.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]))
}

fn word(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes.try_into().unwrap_or_default())
}

/// A container's bits: a bitset's bytes as stored, or a run container's filled in.
enum Bits<'a> {
    Stored(&'a [u8]),
    Filled(Box<[u8; BITSET_BYTES]>),
}

impl Bits<'_> {
    fn of<'b>(c: &Container<'b>) -> Option<Bits<'b>> {
        match *c {
            Container::Array(_) => None,
            Container::Bitset(b) => Some(Bits::Stored(b)),
            Container::Runs(r) => {
                let mut bits = Box::new([0u8; BITSET_BYTES]);
                for run in r.chunks_exact(4) {
                    let start = u16::from_le_bytes([run[0], run[1]]) as usize;
                    let end = (start + u16::from_le_bytes([run[2], run[3]]) as usize).min(65535);
                    for v in start..=end {
                        bits[v / 8] |= 1 << (v % 8);
                    }
                }
                Some(Bits::Filled(bits))
            }
        }
    }

    /// The 8192 bytes (bit `v` is bit `v % 8` of byte `v / 8`, as in the little-endian words).
    fn bytes(&self) -> &[u8] {
        match self {
            Bits::Stored(b) => b,
            Bits::Filled(b) => &b[..],
        }
    }

    fn has(&self, v: u16) -> bool {
        self.bytes()[v as usize / 8] >> (v % 8) & 1 == 1
    }
}

/// A container of a result, as its portable bytes.
enum Owned {
    /// sorted values, 2 bytes each
    Array(Vec<u8>),
    /// the 8192 bytes and the number of bits set
    Bitset(Box<[u8; BITSET_BYTES]>, usize),
}

impl Owned {
    fn cardinality(&self) -> usize {
        match self {
            Owned::Array(v) => v.len() / 2,
            Owned::Bitset(_, n) => *n,
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Owned::Array(v) => v,
            Owned::Bitset(b, _) => &b[..],
        }
    }
}

/// `a ∩ b` of two arrays, as array bytes (`out` is `None` to count only).
fn merge(a: &[u8], b: &[u8], mut out: Option<&mut Vec<u8>>) -> usize {
    let (mut x, mut y) = (values(a).peekable(), values(b).peekable());
    let mut n = 0;
    while let (Some(&p), Some(&q)) = (x.peek(), y.peek()) {
        match p.cmp(&q) {
            std::cmp::Ordering::Less => drop(x.next()),
            std::cmp::Ordering::Greater => drop(y.next()),
            std::cmp::Ordering::Equal => {
                if let Some(out) = out.as_deref_mut() {
                    out.extend_from_slice(&p.to_le_bytes());
                }
                n += 1;
                x.next();
                y.next();
            }
        }
    }
    n
}

/// The values of an array that are set in `bits`, as array bytes.
fn filter(array: &[u8], bits: &Bits) -> Vec<u8> {
    let bits = bits.bytes();
    let mut out = Vec::with_capacity(array.len());
    for c in array.chunks_exact(2) {
        let v = u16::from_le_bytes([c[0], c[1]]) as usize;
        if bits[v / 8] >> (v % 8) & 1 == 1 {
            out.extend_from_slice(c);
        }
    }
    out
}

/// The intersection of two containers, as the roaring crate and CRoaring keep it (an array up to
/// 4096 values, a bitset above); `None` when empty.
fn container_and(x: &Container, y: &Container) -> Option<Owned> {
    let out = match (x, y, Bits::of(x), Bits::of(y)) {
        (Container::Array(a), Container::Array(b), ..) => {
            let mut out = Vec::with_capacity(a.len().min(b.len()));
            merge(a, b, Some(&mut out));
            Owned::Array(out)
        }
        (Container::Array(a), _, _, Some(bits)) | (_, Container::Array(a), Some(bits), _) => Owned::Array(filter(a, &bits)),
        (_, _, Some(p), Some(q)) => {
            let mut both = Box::new([0u8; BITSET_BYTES]);
            let mut n = 0;
            for ((o, x), y) in both.chunks_exact_mut(8).zip(p.bytes().chunks_exact(8)).zip(q.bytes().chunks_exact(8)) {
                let w = word(x) & word(y);
                n += w.count_ones() as usize;
                o.copy_from_slice(&w.to_le_bytes());
            }
            if n > ARRAY_MAX {
                Owned::Bitset(both, n)
            } else {
                Owned::Array(set_bits(&both[..]).flat_map(u16::to_le_bytes).collect())
            }
        }
        _ => return None,
    };
    (out.cardinality() > 0).then_some(out)
}

fn set_bits(bits: &[u8]) -> impl Iterator<Item = u16> + '_ {
    bits.chunks_exact(8).enumerate().flat_map(|(i, w)| {
        let mut rest = word(w);
        std::iter::from_fn(move || {
            (rest != 0).then(|| {
                let bit = rest.trailing_zeros();
                rest &= rest - 1;
                (i * 64) as u16 + bit as u16
            })
        })
    })
}

fn container_and_cardinality(x: &Container, y: &Container) -> u64 {
    match (x, y, Bits::of(x), Bits::of(y)) {
        (Container::Array(a), Container::Array(b), ..) => merge(a, b, None) as u64,
        (Container::Array(a), _, _, Some(bits)) | (_, Container::Array(a), Some(bits), _) => values(a).filter(|v| bits.has(*v)).count() as u64,
        (_, _, Some(p), Some(q)) => p.bytes().chunks_exact(8).zip(q.bytes().chunks_exact(8)).map(|(x, y)| (word(x) & word(y)).count_ones() as u64).sum(),
        _ => 0,
    }
}

/// A bitmap computed from stored ones, to be written in the portable format (without run
/// containers): byte for byte what the `roaring` crate and CRoaring write for the same set.
pub struct Computed {
    /// a 64-bit bitmap (a count of buckets, each with its high 32 bits), or a 32-bit one (its
    /// only bucket is written without a key)
    wide: bool,
    buckets: Vec<(u32, Vec<(u16, Owned)>)>,
}

impl Computed {
    fn bucket_size(containers: &[(u16, Owned)]) -> usize {
        8 + 8 * containers.len() + containers.iter().map(|(_, c)| c.bytes().len()).sum::<usize>()
    }

    /// The number of bytes [`Computed::write`] writes.
    pub fn size(&self) -> usize {
        if self.wide {
            8 + self.buckets.iter().map(|(_, c)| 4 + Self::bucket_size(c)).sum::<usize>()
        } else {
            self.buckets.iter().map(|(_, c)| Self::bucket_size(c)).sum()
        }
    }

    /// Writes the portable bytes into `out`, which has [`Computed::size`] bytes.
    pub fn write(&self, out: &mut [u8]) {
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            out[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        if self.wide {
            put(&(self.buckets.len() as u64).to_le_bytes());
        }
        for (high, containers) in &self.buckets {
            if self.wide {
                put(&high.to_le_bytes());
            }
            put(&NO_RUNS.to_le_bytes());
            put(&(containers.len() as u32).to_le_bytes());
            for (key, c) in containers {
                put(&key.to_le_bytes());
                put(&((c.cardinality() - 1) as u16).to_le_bytes());
            }
            let mut offset = 8 + 8 * containers.len();
            for (_, c) in containers {
                put(&(offset as u32).to_le_bytes());
                offset += c.bytes().len();
            }
            containers.iter().for_each(|(_, c)| put(c.bytes()));
        }
    }

    /// The portable bytes, in a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = vec![0; self.size()];
        self.write(&mut out);
        out
    }
}

/// The buckets of a 64-bit bitmap in portable bytes, in order.
struct Buckets<'a> {
    b: &'a [u8],
    left: u64,
    at: usize,
}

impl<'a> Buckets<'a> {
    fn new(b: &'a [u8]) -> Option<Buckets<'a>> {
        Some(Buckets { b, left: u64_at(b, 0)?, at: 8 })
    }

    /// The next bucket's high 32 bits and bitmap: `Some(None)` after the last, `None` when the
    /// bytes are not in the format.
    fn next(&mut self) -> Option<Option<(u32, View<'a>)>> {
        if self.left == 0 {
            return Some(None);
        }
        let key = u32_at(self.b, self.at)?;
        let view = View::new(self.b.get(self.at + 4..)?)?;
        self.at = self.at.checked_add(4 + view.len()?)?;
        self.left -= 1;
        Some(Some((key, view)))
    }

    fn all(mut self) -> Option<Vec<(u32, View<'a>)>> {
        let mut out = Vec::new();
        while let Some(bucket) = self.next()? {
            out.push(bucket);
        }
        Some(out)
    }
}

/// Calls `f` with each high half both 64-bit bitmaps have and their two bitmaps.
fn bucket_pairs<'a>(a: &'a [u8], b: &'a [u8], mut f: impl FnMut(u32, &View<'a>, &View<'a>) -> Option<()>) -> Option<()> {
    let (x, y) = (Buckets::new(a)?.all()?, Buckets::new(b)?.all()?);
    let (mut i, mut j) = (0, 0);
    while i < x.len() && j < y.len() {
        match x[i].0.cmp(&y[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                f(x[i].0, &x[i].1, &y[j].1)?;
                i += 1;
                j += 1;
            }
        }
    }
    Some(())
}

/// Whether the 32-bit bitmap in portable bytes `b` holds `v`; `None` if `b` is not readable as
/// that format.
pub fn contains(b: &[u8], v: u32) -> Option<bool> {
    View::new(b)?.contains(v)
}

/// Whether the 64-bit bitmap in portable bytes `b` (a count of buckets, then each bucket's high
/// 32 bits and its 32-bit bitmap, in increasing order) holds `v`; `None` if `b` is not readable.
pub fn contains64(b: &[u8], v: u64) -> Option<bool> {
    let high = (v >> 32) as u32;
    let mut buckets = Buckets::new(b)?;
    while let Some((key, view)) = buckets.next()? {
        if key == high {
            return view.contains(v as u32);
        }
        if key > high {
            break;
        }
    }
    Some(false)
}

/// The number of values of the 32-bit bitmap in `b` (read from its headers).
pub fn cardinality(b: &[u8]) -> Option<u64> {
    View::new(b)?.total()
}

/// The number of values of the 64-bit bitmap in `b`.
pub fn cardinality64(b: &[u8]) -> Option<u64> {
    let mut buckets = Buckets::new(b)?;
    let mut n = 0;
    while let Some((_, view)) = buckets.next()? {
        n += view.total()?;
    }
    Some(n)
}

/// The memory the 64-bit bitmap in `b` takes once read (from its headers): a few bytes of run
/// containers can stand for terabytes of bitsets.
pub fn decoded_size64(b: &[u8]) -> Option<u64> {
    let mut buckets = Buckets::new(b)?;
    let mut n = 0u64;
    while let Some((_, view)) = buckets.next()? {
        n = n.saturating_add(view.decoded()?);
    }
    Some(n)
}

/// `|a ∩ b|` of two 32-bit bitmaps, nothing materialized.
pub fn and_cardinality(a: &[u8], b: &[u8]) -> Option<u64> {
    View::new(a)?.and_cardinality(&View::new(b)?)
}

pub fn and_cardinality64(a: &[u8], b: &[u8]) -> Option<u64> {
    let mut n = 0;
    bucket_pairs(a, b, |_, x, y| {
        n += x.and_cardinality(y)?;
        Some(())
    })?;
    Some(n)
}

/// The first value of each run container that roaring 0.10 reads wrong: one holding more than 4096
/// values in runs whose lengths (each one less than its run's values) add up to 4096 or less. The
/// crate sizes the container by those lengths, keeps it as an array, and later writes it as an
/// array of more than 4096 values, which every reader takes for a bitset (pg_roaringbitmap's
/// `rb_runoptimize` writes such containers: 4097 ids in a row are one run).
pub fn misread_runs(b: &[u8]) -> Vec<u32> {
    let Some(v) = View::new(b) else { return Vec::new() };
    (0..v.n)
        .filter(|&i| v.is_run(i))
        .filter_map(|i| {
            let Container::Runs(r) = v.container(i)? else { return None };
            let lengths: usize = r.chunks_exact(4).map(|c| u16::from_le_bytes([c[2], c[3]]) as usize).sum();
            (lengths <= ARRAY_MAX && lengths + r.len() / 4 > ARRAY_MAX).then(|| Some((v.key(i)? as u32) << 16 | u16_at(r, 0)? as u32))?
        })
        .collect()
}

/// Whether two 32-bit bitmaps share a value (`&&`): stops at the first shared container.
pub fn intersects(a: &[u8], b: &[u8]) -> Option<bool> {
    View::new(a)?.intersects(&View::new(b)?)
}

pub fn intersects64(a: &[u8], b: &[u8]) -> Option<bool> {
    let mut found = false;
    bucket_pairs(a, b, |_, x, y| {
        if !found {
            found = x.intersects(y)?;
        }
        Some(())
    })?;
    Some(found)
}

/// How two bitmaps overlap: their cardinalities and that of their intersection, from which every
/// other fused count between them follows (nothing materialized). Saturating, so that even values
/// whose headers disagree with their contents give an answer, not a panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overlap {
    pub a: u64,
    pub b: u64,
    pub both: u64,
}

impl Overlap {
    /// `|a ∪ b|`
    pub fn union(&self) -> u64 {
        self.a.saturating_add(self.b).saturating_sub(self.both)
    }

    /// `|a ⊕ b|`
    pub fn xor(&self) -> u64 {
        self.a.saturating_add(self.b).saturating_sub(self.both.saturating_mul(2))
    }

    /// `|a − b|`
    pub fn andnot(&self) -> u64 {
        self.a.saturating_sub(self.both)
    }

    /// the same set
    pub fn equal(&self) -> bool {
        self.a == self.b && self.both == self.a
    }

    /// `a ⊇ b`
    pub fn contains(&self) -> bool {
        self.both == self.b
    }

    /// `a ⊆ b`
    pub fn contained(&self) -> bool {
        self.both == self.a
    }

    /// `1 − |a ∩ b| / |a ∪ b|` (0 for two empty sets)
    pub fn jaccard_dist(&self) -> f64 {
        match self.union() {
            0 => 0.0,
            u => 1.0 - self.both as f64 / u as f64,
        }
    }
}

/// The [`Overlap`] of two 32-bit bitmaps.
pub fn overlap(a: &[u8], b: &[u8]) -> Option<Overlap> {
    Some(Overlap { a: cardinality(a)?, b: cardinality(b)?, both: and_cardinality(a, b)? })
}

/// The [`Overlap`] of two 64-bit bitmaps.
pub fn overlap64(a: &[u8], b: &[u8]) -> Option<Overlap> {
    Some(Overlap { a: cardinality64(a)?, b: cardinality64(b)?, both: and_cardinality64(a, b)? })
}

/// `a ∩ b` of two 32-bit bitmaps.
pub fn and(a: &[u8], b: &[u8]) -> Option<Computed> {
    Some(Computed { wide: false, buckets: vec![(0, View::new(a)?.and(&View::new(b)?)?)] })
}

/// `a ∩ b` of two 64-bit bitmaps: buckets whose intersection is empty are left out.
pub fn and64(a: &[u8], b: &[u8]) -> Option<Computed> {
    let mut buckets = Vec::new();
    bucket_pairs(a, b, |high, x, y| {
        let containers = x.and(y)?;
        if !containers.is_empty() {
            buckets.push((high, containers));
        }
        Some(())
    })?;
    Some(Computed { wide: true, buckets })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitmap::{from_bytes, to_bytes, to_bytes64, RoaringBitmap, RoaringTreemap};
    use proptest::prelude::*;

    /// The portable format with run containers, as CRoaring writes it after run optimization:
    /// containers whose `as_runs` bit is set are written as runs.
    fn with_runs(b: &RoaringBitmap, as_runs: &[bool]) -> Vec<u8> {
        let mut groups: Vec<(u16, Vec<u16>)> = Vec::new();
        for v in b.iter() {
            let (k, l) = ((v >> 16) as u16, v as u16);
            match groups.last_mut() {
                Some((key, values)) if *key == k => values.push(l),
                _ => groups.push((k, vec![l])),
            }
        }
        let n = groups.len();
        assert!(n > 0);
        let run = |i: usize| as_runs.get(i).copied().unwrap_or(false);
        let mut out = ((WITH_RUNS as u32) | ((n as u32 - 1) << 16)).to_le_bytes().to_vec();
        let mut flags = vec![0u8; n.div_ceil(8)];
        (0..n).filter(|i| run(*i)).for_each(|i| flags[i / 8] |= 1 << (i % 8));
        out.extend(flags);
        for (k, values) in &groups {
            out.extend(k.to_le_bytes());
            out.extend(((values.len() - 1) as u16).to_le_bytes());
        }
        let bodies: Vec<Vec<u8>> = groups
            .iter()
            .enumerate()
            .map(|(i, (_, values))| {
                let mut body = Vec::new();
                if run(i) {
                    let mut runs: Vec<(u16, u16)> = Vec::new();
                    for &v in values {
                        match runs.last_mut() {
                            Some((s, len)) if *s as u32 + *len as u32 + 1 == v as u32 => *len += 1,
                            _ => runs.push((v, 0)),
                        }
                    }
                    body.extend((runs.len() as u16).to_le_bytes());
                    runs.iter().for_each(|(s, l)| { body.extend(s.to_le_bytes()); body.extend(l.to_le_bytes()) });
                } else if values.len() <= ARRAY_MAX {
                    values.iter().for_each(|v| body.extend(v.to_le_bytes()));
                } else {
                    let mut words = [0u64; 1024];
                    values.iter().for_each(|v| words[*v as usize / 64] |= 1 << (v % 64));
                    words.iter().for_each(|w| body.extend(w.to_le_bytes()));
                }
                body
            })
            .collect();
        if n >= NO_OFFSET_THRESHOLD {
            let mut at = out.len() + 4 * n;
            for body in &bodies {
                out.extend((at as u32).to_le_bytes());
                at += body.len();
            }
        }
        bodies.into_iter().for_each(|body| out.extend(body));
        out
    }

    /// Sets with array and bitset containers of every density, sharing some keys.
    fn sets() -> impl Strategy<Value = RoaringBitmap> {
        (prop::collection::vec(0u32..400_000, 0..300), prop::collection::vec((0u32..400_000, 0u32..9000), 0..5), prop::collection::vec((0u32..6, 1u32..5), 0..3)).prop_map(|(points, ranges, strided)| {
            let mut b: RoaringBitmap = points.into_iter().collect();
            for (s, len) in ranges {
                b.insert_range(s..s + len);
            }
            for (key, step) in strided {
                b.extend((key << 16..(key + 1) << 16).step_by(step as usize));
            }
            b
        })
    }

    fn probes(b: &RoaringBitmap, extra: &[u32]) -> Vec<u32> {
        let mut p: Vec<u32> = b.iter().take(300).collect();
        for v in b.iter().take(300) {
            p.extend([v.wrapping_add(1), v.wrapping_sub(1)]);
        }
        p.extend(extra);
        p.extend([0, 1, 65535, 65536, u32::MAX]);
        p
    }

    #[test]
    fn reads_the_bytes_croaring_writes() {
        // pg_roaringbitmap: SELECT '{1,2,3}'::roaringbitmap::bytea, and after rb_runoptimize
        let plain = hex("3a300000010000000000020010000000010002000300");
        let runs = hex("3b3000000100000200010001000200");
        for b in [&plain, &runs] {
            assert_eq!((0..6).map(|v| contains(b, v).unwrap()).collect::<Vec<_>>(), [false, true, true, true, false, false]);
        }
        assert_eq!(from_bytes(&runs).unwrap(), from_bytes(&plain).unwrap());
        assert_eq!(contains(&hex("3a30000000000000"), 0), Some(false));
        for bad in ["", "3a30", "3a300000010000", "00000000", "3b30"] {
            assert_eq!(contains(&hex(bad), 1), None, "{bad}");
        }
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    proptest! {
        #[test]
        fn same_answers_as_the_deserialized_bitmap(
            points in prop::collection::vec(any::<u32>(), 0..300),
            ranges in prop::collection::vec((0u32..400_000, 0u32..9000), 0..6),
            as_runs in prop::collection::vec(any::<bool>(), 0..12),
            extra in prop::collection::vec(any::<u32>(), 0..50),
        ) {
            let mut b: RoaringBitmap = points.into_iter().collect();
            for (s, len) in ranges {
                b.insert_range(s..s + len);
            }
            let plain = to_bytes(&b);
            for v in probes(&b, &extra) {
                prop_assert_eq!(contains(&plain, v), Some(b.contains(v)), "plain {}", v);
            }
            if !b.is_empty() {
                let runs = with_runs(&b, &as_runs);
                prop_assert_eq!(from_bytes(&runs).unwrap(), b.clone());
                for v in probes(&b, &extra) {
                    prop_assert_eq!(contains(&runs, v), Some(b.contains(v)), "runs {}", v);
                }
            }
        }

        #[test]
        fn same_answers_64(values in prop::collection::vec(any::<u64>(), 0..200), low in prop::collection::vec(0u64..(3 << 32), 0..300), extra in prop::collection::vec(any::<u64>(), 0..50)) {
            let b: RoaringTreemap = values.into_iter().chain(low).collect();
            let bytes = to_bytes64(&b);
            let probes: Vec<u64> = b.iter().take(400).flat_map(|v| [v, v.wrapping_add(1), v.wrapping_sub(1)]).chain(extra).chain([0, u64::MAX, 1 << 32]).collect();
            for v in probes {
                prop_assert_eq!(contains64(&bytes, v), Some(b.contains(v)), "{}", v);
            }
        }

        #[test]
        fn intersections_as_the_deserialized_bitmaps(
            a in sets(),
            b in sets(),
            runs_a in prop::collection::vec(any::<bool>(), 0..12),
            runs_b in prop::collection::vec(any::<bool>(), 0..12),
        ) {
            let both = &a & &b;
            let mut layouts = vec![(to_bytes(&a), to_bytes(&b))];
            if !a.is_empty() && !b.is_empty() {
                layouts.push((with_runs(&a, &runs_a), with_runs(&b, &runs_b)));
            }
            for (x, y) in layouts {
                prop_assert_eq!(cardinality(&x), Some(a.len()));
                prop_assert_eq!(and_cardinality(&x, &y), Some(both.len()));
                prop_assert_eq!(intersects(&x, &y), Some(!both.is_empty()));
                for (o, p, q) in [(overlap(&x, &y).unwrap(), &a, &b), (overlap(&y, &x).unwrap(), &b, &a), (overlap(&x, &x).unwrap(), &a, &a)] {
                    prop_assert_eq!(o.union(), p.union_len(q));
                    prop_assert_eq!(o.xor(), p.symmetric_difference_len(q));
                    prop_assert_eq!(o.andnot(), p.difference_len(q));
                    prop_assert_eq!(o.equal(), p == q);
                    prop_assert_eq!(o.contains(), q.is_subset(p));
                    prop_assert_eq!(o.contained(), p.is_subset(q));
                    let union = p.union_len(q);
                    prop_assert_eq!(o.jaccard_dist(), if union == 0 { 0.0 } else { 1.0 - p.intersection_len(q) as f64 / union as f64 });
                }
                // byte for byte what the roaring crate writes for the same set
                prop_assert_eq!(and(&x, &y).map(|c| c.to_vec()), Some(to_bytes(&both)));
            }
        }

        #[test]
        fn intersections_64(a in prop::collection::vec(0u64..(4 << 32), 0..400), b in prop::collection::vec(0u64..(4 << 32), 0..400), dense in 0u64..(3 << 32)) {
            let mut a: RoaringTreemap = a.into_iter().collect();
            let b: RoaringTreemap = b.into_iter().collect();
            a.insert_range(dense..dense + 70_000);
            let both = &a & &b;
            let (x, y) = (to_bytes64(&a), to_bytes64(&b));
            prop_assert_eq!(cardinality64(&x), Some(a.len()));
            prop_assert_eq!(and_cardinality64(&x, &y), Some(both.len()));
            prop_assert_eq!(intersects64(&x, &y), Some(!both.is_empty()));
            let o = overlap64(&x, &y).unwrap();
            prop_assert_eq!((o.union(), o.xor(), o.andnot()), (a.union_len(&b), a.symmetric_difference_len(&b), a.difference_len(&b)));
            prop_assert_eq!((o.equal(), o.contains(), o.contained()), (a == b, b.is_subset(&a), a.is_subset(&b)));
            prop_assert!(overlap64(&y, &y).unwrap().equal());
            prop_assert_eq!(and64(&x, &y).map(|c| c.to_vec()), Some(to_bytes64(&both)));
            prop_assert_eq!(and64(&y, &y).map(|c| c.to_vec()), Some(y.clone()));
        }

        #[test]
        fn garbage_gives_none_or_an_answer_never_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..300), v in any::<u64>()) {
            let _ = contains(&bytes, v as u32);
            let _ = contains64(&bytes, v);
            let _ = (cardinality(&bytes), cardinality64(&bytes));
            let _ = (and(&bytes, &bytes), and64(&bytes, &bytes), and_cardinality(&bytes, &bytes), and_cardinality64(&bytes, &bytes));
            let _ = (intersects(&bytes, &bytes), intersects64(&bytes, &bytes));
            let _ = (overlap(&bytes, &bytes).map(|o| (o.union(), o.xor(), o.andnot(), o.jaccard_dist())), overlap64(&bytes, &bytes).map(|o| o.xor()));
        }

        #[test]
        fn corrupted_bytes_never_panic(values in prop::collection::vec(0u64..(1 << 34), 1..300), at in any::<usize>(), x in any::<u8>(), v in any::<u64>()) {
            let b: RoaringTreemap = values.into_iter().collect();
            let mut bytes = to_bytes64(&b);
            let i = at % bytes.len();
            bytes[i] ^= x | 1;
            let _ = contains64(&bytes, v);
            let _ = contains64(&bytes[..i], v);
            let whole = to_bytes64(&b);
            let _ = (and64(&bytes, &whole), and_cardinality64(&whole, &bytes), cardinality64(&bytes));
            let _ = overlap64(&bytes, &whole).map(|o| (o.union(), o.xor(), o.andnot(), o.jaccard_dist()));
            let _ = (and64(&bytes[..i], &whole), and_cardinality64(&whole, &bytes[..i]));
        }

        #[test]
        fn corrupted_32_bit_bytes_never_panic(a in sets(), at in any::<usize>(), x in any::<u8>(), runs in prop::collection::vec(any::<bool>(), 0..12)) {
            prop_assume!(!a.is_empty());
            for whole in [to_bytes(&a), with_runs(&a, &runs)] {
                let mut bytes = whole.clone();
                let i = at % bytes.len();
                bytes[i] ^= x | 1;
                let _ = (and(&bytes, &whole), and_cardinality(&whole, &bytes), cardinality(&bytes));
                let _ = overlap(&whole, &bytes).map(|o| (o.union(), o.xor(), o.andnot(), o.jaccard_dist()));
                let _ = (and(&whole, &bytes[..i]), and_cardinality(&bytes[..i], &whole));
            }
        }
    }
}
