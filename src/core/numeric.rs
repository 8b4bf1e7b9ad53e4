//! Exact decimals and PostgreSQL's stored `numeric` layout, so amounts can be summed exactly in
//! Rust without a conversion per row (RFM's monetary totals).
//!
//! A stored numeric (after the varlena header) is a 16-bit header — short form: sign, display
//! scale and a 7-bit weight packed together; long form: sign + display scale, then a 16-bit
//! weight — followed by base-10000 digits (native-endian `i16`), most significant first. The value
//! is Σ digit[i] × 10000^(weight − i); leading and trailing zero digits are not stored, and zero has
//! no digits. NaN and ±Infinity use the "special" sign bits. (PostgreSQL's `numeric.c`.)

/// `units` × 10^−`scale`, exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Decimal {
    pub units: i128,
    pub scale: u16,
}

/// Why a stored numeric cannot be a [`Decimal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumericError {
    /// NaN, Infinity or −Infinity
    NotFinite,
    /// more than 38 significant digits
    OutOfRange,
    /// bytes that are not a stored numeric
    Malformed,
}

const SIGN_MASK: u16 = 0xC000;
const NEG: u16 = 0x4000;
const SHORT: u16 = 0x8000;
const SPECIAL: u16 = 0xC000;
const SHORT_SIGN: u16 = 0x2000;
const SHORT_DSCALE_MASK: u16 = 0x1F80;
const SHORT_DSCALE_SHIFT: u16 = 7;
const SHORT_WEIGHT_SIGN: u16 = 0x0040;
const SHORT_WEIGHT_MASK: u16 = 0x003F;
const DSCALE_MASK: u16 = 0x3FFF;
const SHORT_DSCALE_MAX: u16 = 63;
const SHORT_WEIGHT_MIN: i32 = -64;
const SHORT_WEIGHT_MAX: i32 = 63;
/// The most digits after the point a [`Decimal`] carries (10^38 < i128::MAX < 10^39).
pub const MAX_SCALE: u16 = 38;

fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

impl Decimal {
    /// The same value with `scale` digits after the point (only ever more digits).
    pub fn rescaled(self, scale: u16) -> Option<Decimal> {
        debug_assert!(scale >= self.scale);
        let units = self.units.checked_mul(pow10(u32::from(scale - self.scale))?)?;
        Some(Decimal { units, scale })
    }
}

/// Reads a stored numeric (the bytes after its varlena header).
pub fn decode(b: &[u8]) -> Result<Decimal, NumericError> {
    let word = |at: usize| b.get(at..at + 2).map(|w| u16::from_ne_bytes([w[0], w[1]])).ok_or(NumericError::Malformed);
    let header = word(0)?;
    let (neg, dscale, weight, start) = match header & SIGN_MASK {
        SPECIAL => return Err(NumericError::NotFinite),
        SHORT => {
            let low = i32::from(header & SHORT_WEIGHT_MASK);
            let weight = if header & SHORT_WEIGHT_SIGN != 0 { low - 64 } else { low };
            (header & SHORT_SIGN != 0, (header & SHORT_DSCALE_MASK) >> SHORT_DSCALE_SHIFT, weight, 2)
        }
        sign => (sign == NEG, header & DSCALE_MASK, i32::from(word(2)? as i16), 4),
    };
    let digits = &b[start..];
    if digits.len() % 2 != 0 {
        return Err(NumericError::Malformed);
    }
    let mut acc: i128 = 0;
    for d in digits.chunks_exact(2).map(|d| i16::from_ne_bytes([d[0], d[1]])) {
        if !(0..10_000).contains(&d) {
            return Err(NumericError::Malformed);
        }
        acc = acc.checked_mul(10_000).and_then(|a| a.checked_add(i128::from(d))).ok_or(NumericError::OutOfRange)?;
    }
    let ndigits = (digits.len() / 2) as i32;
    if ndigits == 0 {
        return Ok(Decimal { units: 0, scale: dscale.min(MAX_SCALE) });
    }
    // acc × 10000^−frac: frac base-10000 digits lie after the point
    let frac = ndigits - 1 - weight;
    let shift = i32::from(dscale) - 4 * frac;
    let (units, scale) = if shift >= 0 {
        (acc.checked_mul(pow10(shift as u32).ok_or(NumericError::OutOfRange)?).ok_or(NumericError::OutOfRange)?, dscale)
    } else {
        let p = pow10((-shift) as u32).ok_or(NumericError::OutOfRange)?;
        if acc % p == 0 { (acc / p, dscale) } else { (acc, (4 * frac) as u16) }
    };
    if scale > MAX_SCALE {
        return Err(NumericError::OutOfRange);
    }
    Ok(Decimal { units: if neg { -units } else { units }, scale })
}

/// Writes `d` as PostgreSQL stores it (display scale = `d.scale`), short form when it fits.
pub fn encode(d: Decimal) -> Vec<u8> {
    // base-10000 groups, least significant first, aligned on the point: the lowest fraction group
    // holds the last (4 − pad) digits followed by pad zeros
    let scale = u32::from(d.scale);
    let pad = (4 - scale % 4) % 4;
    let frac_groups = ((scale + pad) / 4) as i32;
    let mut mag = d.units.unsigned_abs();
    let mut groups: Vec<i16> = Vec::with_capacity(12);
    if pad > 0 {
        let p = 10u128.pow(4 - pad);
        groups.push(((mag % p) * 10u128.pow(pad)) as i16);
        mag /= p;
    }
    while mag > u128::from(u64::MAX) {
        groups.push((mag % 10_000) as i16);
        mag /= 10_000;
    }
    let mut small = mag as u64;
    while small > 0 {
        groups.push((small % 10_000) as i16);
        small /= 10_000;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    let weight = if groups.is_empty() { 0 } else { groups.len() as i32 - 1 - frac_groups };
    let low_zeros = groups.iter().take_while(|&&g| g == 0).count();
    let neg = d.units < 0 && !groups.is_empty();
    let dscale = d.scale & DSCALE_MASK;
    let mut out = Vec::with_capacity(4 + 2 * groups.len());
    if dscale <= SHORT_DSCALE_MAX && (SHORT_WEIGHT_MIN..=SHORT_WEIGHT_MAX).contains(&weight) {
        let w = if weight < 0 { SHORT_WEIGHT_SIGN | ((weight + 64) as u16 & SHORT_WEIGHT_MASK) } else { weight as u16 };
        let header = SHORT | if neg { SHORT_SIGN } else { 0 } | (dscale << SHORT_DSCALE_SHIFT) | w;
        out.extend(header.to_ne_bytes());
    } else {
        out.extend((if neg { NEG } else { 0 } | dscale).to_ne_bytes());
        out.extend((weight as i16).to_ne_bytes());
    }
    for g in groups[low_zeros..].iter().rev() {
        out.extend(g.to_ne_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ne(words: &[u16]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_ne_bytes()).collect()
    }

    #[test]
    fn known_layouts() {
        // 1.50: short, dscale 2, weight 0, digits 1 5000
        assert_eq!(encode(Decimal { units: 150, scale: 2 }), ne(&[0x8100, 1, 5000]));
        assert_eq!(decode(&ne(&[0x8100, 1, 5000])), Ok(Decimal { units: 150, scale: 2 }));
        // −123456.7: weight 1 (12 3456), one fraction group 7000, dscale 1
        assert_eq!(encode(Decimal { units: -1_234_567, scale: 1 }), ne(&[0x8000 | 0x2000 | (1 << 7) | 1, 12, 3456, 7000]));
        // 0.0001: weight −1 is written as sign bit + 63
        assert_eq!(encode(Decimal { units: 1, scale: 4 }), ne(&[0x8000 | (4 << 7) | 0x40 | 0x3F, 1]));
        // zero keeps its display scale, has no digits and is never negative
        assert_eq!(encode(Decimal { units: 0, scale: 2 }), ne(&[0x8100]));
        assert_eq!(decode(&ne(&[0x8100])), Ok(Decimal { units: 0, scale: 2 }));
        // 10000: one digit, weight 1, no trailing zero groups stored
        assert_eq!(encode(Decimal { units: 10_000, scale: 0 }), ne(&[0x8001, 1]));
        assert_eq!(decode(&ne(&[0x8001, 1])), Ok(Decimal { units: 10_000, scale: 0 }));
        // long form: dscale 70 does not fit the short header
        assert_eq!(decode(&ne(&[70, 0, 1])).unwrap_err(), NumericError::OutOfRange);
        let long = ne(&[0x4000 | 2, 0, 7, 2500]);
        assert_eq!(decode(&long), Ok(Decimal { units: -725, scale: 2 }));
    }

    #[test]
    fn special_and_malformed() {
        assert_eq!(decode(&ne(&[0xC000])), Err(NumericError::NotFinite));
        assert_eq!(decode(&ne(&[0xD000])), Err(NumericError::NotFinite));
        assert_eq!(decode(&[]), Err(NumericError::Malformed));
        assert_eq!(decode(&[0x00]), Err(NumericError::Malformed));
        assert_eq!(decode(&ne(&[0x8000, 10_000])), Err(NumericError::Malformed));
        let mut odd = ne(&[0x8000, 1]);
        odd.push(0);
        assert_eq!(decode(&odd), Err(NumericError::Malformed));
        // 11 digits of 9999 = 44 decimal digits: more than i128 holds
        let mut big = vec![0x8000 | 10];
        big.extend([9999; 11]);
        assert_eq!(decode(&ne(&big)), Err(NumericError::OutOfRange));
    }

    #[test]
    fn digits_past_the_display_scale_are_kept() {
        // 1.23456 stored with dscale 2 (not rounded by whoever wrote it): nothing is lost
        assert_eq!(decode(&ne(&[0x8100, 1, 2345, 6000])), Ok(Decimal { units: 123_456_000, scale: 8 }));
    }

    #[test]
    fn rescaling_is_exact_or_refused() {
        assert_eq!(Decimal { units: 3, scale: 1 }.rescaled(3), Some(Decimal { units: 300, scale: 3 }));
        assert_eq!(Decimal { units: i128::MAX / 5, scale: 0 }.rescaled(1), None);
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_the_identity(units in any::<i128>().prop_map(|u| u / 1000), scale in 0u16..=38) {
            // decode needs room for the pad digits of the last group (hence / 1000); encode takes any
            // i128 without panicking
            let _ = encode(Decimal { units: units.saturating_mul(1000), scale });
            let d = Decimal { units, scale };
            prop_assert_eq!(decode(&encode(d)), Ok(d));
        }

        #[test]
        fn small_values_round_trip(units in -10_000_000i128..10_000_000, scale in 0u16..=12) {
            let d = Decimal { units, scale };
            prop_assert_eq!(decode(&encode(d)), Ok(d));
        }

        #[test]
        fn decode_never_panics(words in proptest::collection::vec(any::<u16>(), 0..14)) {
            let _ = decode(&ne(&words));
        }
    }
}
