//! Contact sets as roaring bitmaps: the text form `{1,2,3}` and the portable serialization that
//! CRoaring and pg_roaringbitmap read and write (so bytea moves between them unchanged).
//! 32-bit values are PostgreSQL int4s: negative numbers are stored as their unsigned bit pattern
//! (so -1 sorts last), exactly as pg_roaringbitmap does.
//! The 64-bit form (`RoaringTreemap`) holds PostgreSQL int8s the same way, in the portable 64-bit
//! format of CRoaring (a count of 32-bit buckets, then each bucket's high half and bitmap).
pub use roaring::{RoaringBitmap, RoaringTreemap};

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

/// Reads either text form of a 64-bit bitmap: `{1,2,3}` or `\x…`.
pub fn parse_any64(s: &str) -> Result<RoaringTreemap, String> {
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

/// The portable 64-bit format.
pub fn to_bytes64(b: &RoaringTreemap) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.serialized_size());
    // writing to a Vec cannot fail
    let _ = b.serialize_into(&mut out);
    out
}

/// Reads the portable 64-bit format, validating it; anything else is an error, never a panic.
pub fn from_bytes64(bytes: &[u8]) -> Result<RoaringTreemap, String> {
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
        rest = after;
        let b = RoaringBitmap::deserialize_from(&mut rest).map_err(|e| format!("not a portable roaring bitmap: {e}"))?;
        buckets.push((key, b));
    }
    if !rest.is_empty() {
        return Err(format!("{} bytes left over after the roaring bitmap", rest.len()));
    }
    Ok(RoaringTreemap::from_bitmaps(buckets))
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
    let mut out = String::from("{");
    for (i, v) in values.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&v.to_string());
    }
    out.push('}');
    out
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
    let b = RoaringBitmap::deserialize_from(&mut reader).map_err(|e| format!("not a portable roaring bitmap: {e}"))?;
    if !reader.is_empty() {
        return Err(format!("{} bytes left over after the roaring bitmap", reader.len()));
    }
    Ok(b)
}

/// Reads portable bytes this code wrote or validated before (a stored value): the containers are
/// not checked again. Bytes that are cut short are still an error.
pub fn from_trusted_bytes(bytes: &[u8]) -> Result<RoaringBitmap, String> {
    RoaringBitmap::deserialize_unchecked_from(bytes).map_err(|e| e.to_string())
}

/// [`from_trusted_bytes`] for the 64-bit format.
pub fn from_trusted_bytes64(bytes: &[u8]) -> Result<RoaringTreemap, String> {
    RoaringTreemap::deserialize_unchecked_from(bytes).map_err(|e| e.to_string())
}

/// A bitmap an aggregate gathers one value at a time from a scan's rows. An insert searches the
/// containers, then the container, for every value; here values wait and go in together. Rows
/// mostly come in the order of their ids (a table's rows are mostly stored in the order they were
/// added), so each value above the last one waiting joins an ascending run, appended to the set
/// with no search (merged as a bitmap of its own where it is not past the set's largest value);
/// the few others are sorted apart and merged.
#[derive(Default, Clone, Debug)]
pub struct Gathered<S: Gather> {
    set: S,
    run: Vec<S::Value>,
    strays: Vec<S::Value>,
}

/// What [`Gathered`] needs of a bitmap type.
pub trait Gather: Default + Clone {
    type Value: Copy + Ord + std::fmt::Debug;
    /// Adds `values`, sorted and without repeats.
    fn add_sorted(&mut self, values: &[Self::Value]);
}

/// `values` (sorted, no repeats) as a bitmap built from their bits, when those bits take no more
/// room than the values themselves (ids numbered in a row are dense): setting a bit is cheaper
/// than placing a value in its container.
fn dense(values: &[u32]) -> Option<RoaringBitmap> {
    let (first, last) = (*values.first()?, *values.last()?);
    let base = first & !7;
    let len = ((last - base) / 8 + 1) as usize;
    if len > values.len() * 8 {
        return None;
    }
    let mut bytes = vec![0u8; len];
    for v in values {
        let bit = v - base;
        bytes[(bit / 8) as usize] |= 1 << (bit % 8);
    }
    Some(RoaringBitmap::from_lsb0_bytes(base, &bytes))
}

impl Gather for RoaringBitmap {
    type Value = u32;
    fn add_sorted(&mut self, values: &[u32]) {
        if values.is_empty() {
            return;
        }
        if let Some(bits) = dense(values) {
            *self |= bits;
            return;
        }
        let past = self.max().map_or(0, |max| values.partition_point(|v| *v <= max));
        let (within, after) = values.split_at(past);
        // within: sorted, no repeats; after: sorted, past the largest value (neither can fail)
        if !within.is_empty() {
            *self |= RoaringBitmap::from_sorted_iter(within.iter().copied()).expect("sorted values");
        }
        self.append(after.iter().copied()).expect("values past the largest");
    }
}

impl Gather for RoaringTreemap {
    type Value = u64;
    fn add_sorted(&mut self, values: &[u64]) {
        if values.is_empty() {
            return;
        }
        let (first, last) = (values[0] >> 32, values[values.len() - 1] >> 32);
        if first == last {
            let low: Vec<u32> = values.iter().map(|v| *v as u32).collect();
            if let Some(bits) = dense(&low) {
                *self |= RoaringTreemap::from_bitmaps([(first as u32, bits)]);
                return;
            }
        }
        let past = self.max().map_or(0, |max| values.partition_point(|v| *v <= max));
        let (within, after) = values.split_at(past);
        if !within.is_empty() {
            *self |= RoaringTreemap::from_sorted_iter(within.iter().copied()).expect("sorted values");
        }
        self.append(after.iter().copied()).expect("values past the largest");
    }
}

impl<S: Gather> Gathered<S> {
    /// Values wait in runs of this many (a run of u64 is 16 KB, in the cache while it fills).
    const RUN: usize = 2048;

    pub fn add(&mut self, v: S::Value) {
        match self.run.last() {
            Some(last) if v <= *last => self.strays.push(v),
            _ => self.run.push(v),
        }
        if self.run.len() + self.strays.len() >= Self::RUN {
            self.settle();
        }
    }

    fn settle(&mut self) {
        self.set.add_sorted(&self.run);
        self.run.clear();
        if !self.strays.is_empty() {
            self.strays.sort_unstable();
            self.strays.dedup();
            self.set.add_sorted(&self.strays);
            self.strays.clear();
        }
    }

    /// The set, with every value added so far.
    pub fn set(&mut self) -> &mut S {
        self.settle();
        &mut self.set
    }

    /// The set with every value added so far, copied only when some are still waiting.
    pub fn settled(&self) -> std::borrow::Cow<'_, S> {
        if self.run.is_empty() && self.strays.is_empty() {
            std::borrow::Cow::Borrowed(&self.set)
        } else {
            std::borrow::Cow::Owned(self.clone().into_set())
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
        *self.set() |= &other.set;
        other.run.iter().chain(&other.strays).for_each(|v| self.add(*v));
    }
}

impl<S: Gather> From<S> for Gathered<S> {
    fn from(set: S) -> Self {
        Gathered { set, run: Vec::new(), strays: Vec::new() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    proptest! {
        #[test]
        fn gathered_holds_what_inserts_hold(runs in prop::collection::vec((any::<u64>(), 0u64..5000, any::<bool>()), 0..6), more in prop::collection::vec(0u64..200_000, 0..3000)) {
            // ascending runs (a scan in id order), descending runs, values anywhere, repeats
            let mut values: Vec<u64> = Vec::new();
            for (start, len, up) in runs {
                let run = (0..len).map(move |i| start.wrapping_add(i * 3));
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
