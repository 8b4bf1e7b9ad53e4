//! Membership read straight from a bitmap's portable bytes (CRoaring's "frozen view" idea): no
//! container is copied or allocated, so a filter `rb_contains(bm, id)` costs a few binary searches
//! per row instead of a deserialization of the whole bitmap per row.
//!
//! Reads both layouts of the portable format: without run containers (cookie 12346, offsets
//! always present — what this crate writes) and with them (cookie 12347, offsets from 4
//! containers on — what CRoaring and pg_roaringbitmap write after `rb_runoptimize`). Every read is
//! bounds-checked: bytes that are not in the format give `None`, and the caller falls back to the
//! validating deserializer (which reports the error).

const NO_RUNS: u32 = 12346;
const WITH_RUNS: u16 = 12347;
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
        let n = self.cardinality(i)?;
        Some(if n <= ARRAY_MAX { 2 * n } else { BITSET_BYTES })
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

/// Whether the 32-bit bitmap in portable bytes `b` holds `v`; `None` if `b` is not readable as
/// that format.
pub fn contains(b: &[u8], v: u32) -> Option<bool> {
    View::new(b)?.contains(v)
}

/// Whether the 64-bit bitmap in portable bytes `b` (a count of buckets, then each bucket's high
/// 32 bits and its 32-bit bitmap, in increasing order) holds `v`; `None` if `b` is not readable.
pub fn contains64(b: &[u8], v: u64) -> Option<bool> {
    let buckets = u64_at(b, 0)?;
    let high = (v >> 32) as u32;
    let mut at = 8usize;
    for _ in 0..buckets {
        let key = u32_at(b, at)?;
        let view = View::new(b.get(at + 4..)?)?;
        if key == high {
            return view.contains(v as u32);
        }
        if key > high {
            return Some(false);
        }
        at = at.checked_add(4 + view.len()?)?;
    }
    Some(false)
}

/// The content of a CBOR byte string that is the whole of `b` (how the PostgreSQL bitmap types
/// keep their portable bytes on disk); `None` for anything else.
pub fn cbor_bytes(b: &[u8]) -> Option<&[u8]> {
    let first = *b.first()?;
    if first >> 5 != 2 {
        return None;
    }
    let (head, len) = match first & 31 {
        n @ 0..=23 => (1, n as u64),
        24 => (2, *b.get(1)? as u64),
        25 => (3, u16::from_be_bytes(b.get(1..3)?.try_into().ok()?) as u64),
        26 => (5, u32::from_be_bytes(b.get(1..5)?.try_into().ok()?) as u64),
        27 => (9, u64::from_be_bytes(b.get(1..9)?.try_into().ok()?)),
        _ => return None,
    };
    let rest = &b[head..];
    (rest.len() as u64 == len).then_some(rest)
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
            out.extend((values.len() as u16 - 1).to_le_bytes());
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

    #[test]
    fn cbor_byte_strings() {
        assert_eq!(cbor_bytes(&[0x43, 1, 2, 3]), Some(&[1u8, 2, 3][..]));
        assert_eq!(cbor_bytes(&[0x40]), Some(&[][..]));
        let long = [vec![0x59, 0x01, 0x00], vec![7u8; 256]].concat();
        assert_eq!(cbor_bytes(&long).map(<[u8]>::len), Some(256));
        let mut four = vec![0x5a, 0, 0, 0, 2, 9, 9];
        assert_eq!(cbor_bytes(&four), Some(&[9u8, 9][..]));
        four.push(0);
        assert_eq!(cbor_bytes(&four), None, "a byte string followed by more");
        for bad in [&[][..], &[0x44, 1][..], &[0x63, b'a', b'b', b'c'][..], &[0x5f][..]] {
            assert_eq!(cbor_bytes(bad), None, "{bad:?}");
        }
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
        fn garbage_gives_none_or_an_answer_never_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..300), v in any::<u64>()) {
            let _ = contains(&bytes, v as u32);
            let _ = contains64(&bytes, v);
            let _ = cbor_bytes(&bytes);
        }

        #[test]
        fn corrupted_bytes_never_panic(values in prop::collection::vec(0u64..(1 << 34), 1..300), at in any::<usize>(), x in any::<u8>(), v in any::<u64>()) {
            let b: RoaringTreemap = values.into_iter().collect();
            let mut bytes = to_bytes64(&b);
            let i = at % bytes.len();
            bytes[i] ^= x | 1;
            let _ = contains64(&bytes, v);
            let _ = contains64(&bytes[..i], v);
        }
    }
}
