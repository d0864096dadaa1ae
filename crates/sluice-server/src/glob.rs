//! Redis glob patterns, shared by key commands (KEYS, SCAN) and ACL key patterns.

/// Glob matching exactly as Redis `stringmatchlen`: `*`, `?`, `[...]` with `^` and ranges,
/// and `\` escapes.
///
/// As in Redis 7 (CVE-2022-36021), once the rest of a pattern after a `*` matches nowhere in
/// the rest of the string, no earlier `*` retries a longer match (`skip`): without that cut a
/// pattern such as `*a*a*a*a*a*a*a*a*a*a*b` against a long run of `a` takes exponential time.
pub fn glob_match(pattern: &[u8], string: &[u8]) -> bool {
    fn inner(p: &[u8], s: &[u8], depth: usize, skip: &mut bool) -> bool {
        if depth > 1000 {
            return false;
        }
        let (mut p, mut s) = (p, s);
        while !p.is_empty() && !s.is_empty() {
            match p[0] {
                b'*' => {
                    while p.len() > 1 && p[1] == b'*' {
                        p = &p[1..];
                    }
                    if p.len() == 1 {
                        return true;
                    }
                    for i in 0..s.len() {
                        if inner(&p[1..], &s[i..], depth + 1, skip) {
                            return true;
                        }
                        if *skip {
                            return false;
                        }
                    }
                    *skip = true;
                    return false;
                }
                b'?' => {
                    s = &s[1..];
                }
                b'[' => {
                    p = &p[1..];
                    let not = p.first() == Some(&b'^');
                    if not {
                        p = &p[1..];
                    }
                    let mut matched = false;
                    loop {
                        if p.is_empty() {
                            break;
                        }
                        if p[0] == b'\\' && p.len() >= 2 {
                            p = &p[1..];
                            if p[0] == s[0] {
                                matched = true;
                            }
                        } else if p[0] == b']' {
                            break;
                        } else if p.len() >= 3 && p[1] == b'-' {
                            let (mut start, mut end) = (p[0], p[2]);
                            if start > end {
                                std::mem::swap(&mut start, &mut end);
                            }
                            if s[0] >= start && s[0] <= end {
                                matched = true;
                            }
                            p = &p[2..];
                        } else if p[0] == s[0] {
                            matched = true;
                        }
                        p = &p[1..];
                    }
                    if p.is_empty() {
                        // Redis treats an unterminated class as ending here.
                        if not {
                            matched = !matched;
                        }
                        if !matched {
                            return false;
                        }
                        s = &s[1..];
                        return p.is_empty() && s.is_empty();
                    }
                    if not {
                        matched = !matched;
                    }
                    if !matched {
                        return false;
                    }
                    s = &s[1..];
                }
                b'\\' if p.len() >= 2 => {
                    p = &p[1..];
                    if p[0] != s[0] {
                        return false;
                    }
                    s = &s[1..];
                }
                c => {
                    if c != s[0] {
                        return false;
                    }
                    s = &s[1..];
                }
            }
            p = &p[1..];
            if s.is_empty() {
                while p.first() == Some(&b'*') {
                    p = &p[1..];
                }
                break;
            }
        }
        p.is_empty() && s.is_empty()
    }
    inner(pattern, string, 0, &mut false)
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs() {
        assert!(glob_match(b"*", b"anything"));
        assert!(glob_match(b"h?llo", b"hello"));
        assert!(glob_match(b"h*llo", b"heeeello"));
        assert!(glob_match(b"h[ae]llo", b"hallo"));
        assert!(!glob_match(b"h[^e]llo", b"hello"));
        assert!(glob_match(b"h[a-b]llo", b"hbllo"));
        assert!(glob_match(b"user:\\*", b"user:*"));
        assert!(!glob_match(b"a", b""));
        // As `stringmatchlen`: nothing but an empty pattern matches the empty string (KEYS
        // and SCAN special-case a lone `*`).
        assert!(!glob_match(b"*", b""));
        assert!(glob_match(b"", b""));
    }

    /// Many `*` against a long string that almost matches: exponential before the `skip`
    /// cut (CVE-2022-36021 in Redis), immediate with it.
    #[test]
    fn stars_do_not_backtrack_exponentially() {
        let started = std::time::Instant::now();
        let key = [b'a'; 200];
        assert!(!glob_match(b"*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", &key));
        assert!(!glob_match(&b"*a".repeat(400), &key));
        assert!(glob_match(b"*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a", &key));
        assert!(glob_match(b"a*a*?a*[a]", &key));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        // The cut changes no answer.
        assert!(glob_match(b"*b*c", b"abxbyc"));
        assert!(!glob_match(b"*b*c", b"abxbyd"));
        assert!(glob_match(b"*ab*ab", b"aabxabab"));
        assert!(!glob_match(b"*a*b", b"bbba"));
    }
}
