//! The sizes of Redis's listpack encoding (`listpack.c`): what MEMORY USAGE models, and where
//! a stream's nodes end (see [`super::stream`]). No listpack is ever built here; only its
//! byte counts are computed, so that answers which depend on them match Redis's.

/// Bytes of a listpack's header (total bytes, element count) and end byte.
pub const OVERHEAD: usize = 6 + 1;

/// Bytes an element whose encoding (type and data) takes `encoded` bytes spends, its
/// back-length included (`lpEncodeBacklen`).
fn with_backlen(encoded: usize) -> usize {
    let backlen = match encoded {
        0..=127 => 1,
        128..=16_382 => 2,
        16_383..=2_097_150 => 3,
        2_097_151..=268_435_454 => 4,
        _ => 5,
    };
    encoded + backlen
}

/// Bytes an integer element takes.
pub fn int_size(v: i64) -> usize {
    with_backlen(match v {
        0..=127 => 1,
        -4096..=4095 => 2,
        -32_768..=32_767 => 3,
        -8_388_608..=8_388_607 => 4,
        -2_147_483_648..=2_147_483_647 => 5,
        _ => 9,
    })
}

/// Bytes a string element takes: one that reads as a canonical 64-bit integer (no leading
/// zero or `+`, not `-0`) is stored as that integer, as `lpStringToInt64` decides.
pub fn entry_size(element: &[u8]) -> usize {
    match stored_integer(element) {
        Some(n) => int_size(n),
        _ => with_backlen(match element.len() {
            0..=63 => 1 + element.len(),
            64..=4095 => 2 + element.len(),
            _ => 5 + element.len(),
        }),
    }
}

/// The integer a listpack stores a string as (`lpStringToInt64`): at most 20 bytes, decimal,
/// an optional `-`, no leading zero or `+`, not `-0`, within 64 bits.
fn stored_integer(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let digits = s.strip_prefix(b"-").unwrap_or(s);
    if !matches!(digits.first(), Some(b'1'..=b'9')) || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_redis_s_encodings() {
        assert_eq!(entry_size(b"127"), 2);
        assert_eq!(entry_size(b"0127"), 6);
        assert_eq!(entry_size(b"-0"), 4);
        assert_eq!(entry_size(b"4095"), 3);
        assert_eq!(entry_size(b"abc"), 5);
        assert_eq!(entry_size(&[b'a'; 64]), 66 + 1);
        assert_eq!(entry_size(b"9223372036854775808"), 21);
        assert_eq!(entry_size(b"-9223372036854775808"), 10);
        assert_eq!(entry_size(b"+5"), 4);
        assert_eq!(int_size(-1), 3);
    }
}
