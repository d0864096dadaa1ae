//! Number parsing and formatting exactly as Redis 7 does it, so counters and mapped numeric
//! columns accept and print the same text a Redis client expects.

use std::ffi::c_char;

use bytes::Bytes;

/// Parses a decimal 64-bit integer as Redis `string2ll` does: optional `-`, no `+`, no spaces,
/// no leading zeros, and `-0` refused.
pub fn parse_strict_i64(bytes: &[u8]) -> Option<i64> {
    // One pass, no UTF-8 check or str::parse: this reads every `*N` and `$N` of the protocol.
    let (negative, digits) = match bytes {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, bytes),
    };
    // 19 digits always fit in a u64; 20 or more never fit in an i64.
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    if digits[0] == b'0' {
        // "0" only: no leading zeros, no "-0" (Redis string2ll).
        return (digits.len() == 1 && !negative).then_some(0);
    }
    let mut magnitude: u64 = 0;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        magnitude = magnitude * 10 + u64::from(d);
    }
    if negative {
        (magnitude <= i64::MIN.unsigned_abs()).then(|| (magnitude as i64).wrapping_neg())
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// The decimal text of `n` as [`Bytes`], in a single allocation that clones share. (A `Bytes`
/// made from a `String` allocates twice: the string, then a shared header at its first clone,
/// and every written value is cloned once into the write-back buffer.)
pub fn int_bytes(n: i64) -> Bytes {
    /// `i64::MIN` is the longest: 20 characters.
    struct Decimal {
        digits: [u8; 20],
        len: u8,
    }
    impl AsRef<[u8]> for Decimal {
        fn as_ref(&self) -> &[u8] {
            &self.digits[..self.len as usize]
        }
    }
    let mut printer = itoa::Buffer::new();
    let text = printer.format(n).as_bytes();
    let mut d = Decimal {
        digits: [0; 20],
        len: text.len() as u8,
    };
    d.digits[..text.len()].copy_from_slice(text);
    Bytes::from_owner(d)
}

/// Parses a finite decimal number (no hex, no `inf`, no `nan`, no spaces).
pub fn parse_finite_f64(bytes: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(bytes).ok()?;
    if s.is_empty()
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
    {
        return None;
    }
    let v: f64 = s.parse().ok()?;
    v.is_finite().then_some(v)
}

/// Parses a boolean as databases accept it: `0`, `1`, `true`, `false`, `t`, `f` (any case).
pub fn parse_bool(bytes: &[u8]) -> Option<bool> {
    match std::str::from_utf8(bytes)
        .ok()?
        .to_ascii_lowercase()
        .as_str()
    {
        "1" | "true" | "t" => Some(true),
        "0" | "false" | "f" => Some(false),
        _ => None,
    }
}

/// Why an INCRBYFLOAT could not be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatIncrError {
    /// The current value or the increment is not a float.
    NotFloat,
    /// The result is NaN or infinite.
    NanOrInfinity,
}

extern "C" {
    fn sluice_string2d(s: *const c_char, slen: usize, dp: *mut f64) -> i32;
    fn sluice_range_strtod(s: *const c_char, slen: usize, dp: *mut f64) -> i32;
    fn sluice_incrbyfloat(
        cur: *const c_char,
        curlen: usize,
        has_cur: i32,
        incr: *const c_char,
        incrlen: usize,
        out: *mut c_char,
        outcap: usize,
        outlen: *mut usize,
    ) -> i32;
}

/// INCRBYFLOAT as Redis computes it: both operands parsed with `strtold`, added in `long
/// double`, printed with `%.17Lf` and trailing zeros removed. Rust has no `long double`, so a
/// small C helper does the arithmetic; this is what makes `0.1 + 0.2` print `0.3` as in Redis.
pub fn incr_by_float(current: Option<&[u8]>, increment: &[u8]) -> Result<Vec<u8>, FloatIncrError> {
    let mut out = vec![0u8; 5 * 1024];
    let mut len = 0usize;
    let cur = current.unwrap_or(b"");
    // SAFETY: every pointer is valid for the length passed with it; the helper writes at most
    // `outcap` bytes into `out` and stores the length written in `len`.
    let rc = unsafe {
        sluice_incrbyfloat(
            cur.as_ptr() as *const c_char,
            cur.len(),
            current.is_some() as i32,
            increment.as_ptr() as *const c_char,
            increment.len(),
            out.as_mut_ptr() as *mut c_char,
            out.len(),
            &mut len,
        )
    };
    match rc {
        0 => {
            out.truncate(len);
            Ok(out)
        }
        3 => Err(FloatIncrError::NanOrInfinity),
        _ => Err(FloatIncrError::NotFloat),
    }
}

/// A sorted-set score, increment or weight as Redis 7.0 reads one (`string2d`: `strtod` over
/// the whole text, so `inf`, `-inf`, `1e3` and hex floats are scores; no leading space, no
/// overflow, not NaN).
pub fn parse_score(bytes: &[u8]) -> Option<f64> {
    let mut value = 0.0;
    // SAFETY: the pointer is valid for `bytes.len()` bytes; the helper copies them and writes
    // only `value`.
    let ok = unsafe { sluice_string2d(bytes.as_ptr() as *const c_char, bytes.len(), &mut value) };
    (ok == 1).then_some(value)
}

/// One end of a score range as Redis 7.0's `zslParseRange` reads it (after any `(`): `strtod`
/// up to the first NUL byte, which must be where it stopped, so an empty text is 0 and a
/// leading space is allowed; not NaN.
pub fn parse_range_score(bytes: &[u8]) -> Option<f64> {
    let mut value = 0.0;
    // SAFETY: as in `parse_score`.
    let ok =
        unsafe { sluice_range_strtod(bytes.as_ptr() as *const c_char, bytes.len(), &mut value) };
    (ok == 1).then_some(value)
}

/// Checks that `bytes` is a float Redis accepts (`strtold` over the whole string, no leading
/// space, not NaN, no overflow).
pub fn is_redis_float(bytes: &[u8]) -> bool {
    !matches!(
        incr_by_float(Some(bytes), b"0"),
        Err(FloatIncrError::NotFloat)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_parse_as_redis_reads_them() {
        assert_eq!(parse_score(b"1.5"), Some(1.5));
        assert_eq!(parse_score(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_score(b"0x10"), Some(16.0));
        for bad in [
            &b""[..],
            b" 1",
            b"1 ",
            b"nan",
            b"1e400",
            b"1e-400",
            b"abc",
            b"1\x002",
        ] {
            assert_eq!(parse_score(bad), None, "{bad:?}");
        }
        assert_eq!(parse_range_score(b""), Some(0.0));
        assert_eq!(parse_range_score(b" 2"), Some(2.0));
        assert_eq!(parse_range_score(b"2\x00junk"), Some(2.0));
        assert_eq!(parse_range_score(b"1e400"), Some(f64::INFINITY));
        assert_eq!(parse_range_score(b"nan"), None);
        assert_eq!(parse_range_score(b"2x"), None);
    }

    #[test]
    fn strict_integers() {
        assert_eq!(parse_strict_i64(b"42"), Some(42));
        assert_eq!(parse_strict_i64(b"-42"), Some(-42));
        assert_eq!(parse_strict_i64(b"0"), Some(0));
        assert_eq!(parse_strict_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b"+1"[..],
            b"01",
            b" 1",
            b"1 ",
            b"",
            b"-",
            b"-0",
            b"abc",
            b"9223372036854775808",
        ] {
            assert_eq!(
                parse_strict_i64(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    /// What `string2ll` accepts, written the slow obvious way.
    fn reference_strict_i64(bytes: &[u8]) -> Option<i64> {
        let s = std::str::from_utf8(bytes).ok()?;
        let digits = s.strip_prefix('-').unwrap_or(s);
        if digits.is_empty()
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || (digits.len() > 1 && digits.starts_with('0'))
            || s == "-0"
        {
            return None;
        }
        s.parse().ok()
    }

    proptest::proptest! {
        #[test]
        fn strict_integers_match_the_reference(
            s in "-?[0-9]{0,22}|-?9223372036854775[0-9]{3}|[ -~]{0,6}",
            raw in proptest::collection::vec(proptest::num::u8::ANY, 0..24),
        ) {
            proptest::prop_assert_eq!(parse_strict_i64(s.as_bytes()), reference_strict_i64(s.as_bytes()));
            proptest::prop_assert_eq!(parse_strict_i64(&raw), reference_strict_i64(&raw));
        }

        #[test]
        fn int_bytes_prints_what_to_string_prints(n in proptest::num::i64::ANY) {
            let printed = int_bytes(n);
            proptest::prop_assert_eq!(printed, Bytes::from(n.to_string()));
        }
    }

    #[test]
    fn int_bytes_at_the_edges() {
        for n in [0, -1, 9, 10, i64::MAX, i64::MIN] {
            let b = int_bytes(n);
            assert_eq!(&b[..], n.to_string().as_bytes());
            assert_eq!(&b.clone()[..], &b[..]);
        }
    }

    #[test]
    fn finite_floats() {
        assert_eq!(parse_finite_f64(b"7.5"), Some(7.5));
        assert_eq!(parse_finite_f64(b"1e3"), Some(1000.0));
        assert_eq!(parse_finite_f64(b"inf"), None);
        assert_eq!(parse_finite_f64(b"nan"), None);
        assert_eq!(parse_finite_f64(b"1e999"), None);
    }

    #[test]
    fn incrbyfloat_matches_redis_long_double_printing() {
        assert_eq!(incr_by_float(Some(b"0.1"), b"0.2").unwrap(), b"0.3");
        assert_eq!(incr_by_float(Some(b"10.50"), b"0.1").unwrap(), b"10.6");
        assert_eq!(incr_by_float(None, b"5.0e3").unwrap(), b"5000");
        assert_eq!(incr_by_float(Some(b"3"), b"-3").unwrap(), b"0");
        assert_eq!(incr_by_float(Some(b"-0.5"), b"0.25").unwrap(), b"-0.25");
        assert_eq!(
            incr_by_float(Some(b"abc"), b"1"),
            Err(FloatIncrError::NotFloat)
        );
        assert_eq!(
            incr_by_float(Some(b"1"), b" 1"),
            Err(FloatIncrError::NotFloat)
        );
        assert_eq!(
            incr_by_float(Some(b"1"), b"nan"),
            Err(FloatIncrError::NotFloat)
        );
        assert_eq!(
            incr_by_float(Some(b"1"), b"inf"),
            Err(FloatIncrError::NanOrInfinity)
        );
        assert_eq!(
            incr_by_float(Some(b""), b"1"),
            Err(FloatIncrError::NotFloat)
        );
    }
}
