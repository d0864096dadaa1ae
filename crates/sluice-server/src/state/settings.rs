//! The server settings `CONFIG SET` changes at run time.
//!
//! Each is an atomic read where it is used (an accept, a read wait, a slow command), never on
//! the per-command path of GET/SET; the file's values are the starting point.

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::config::ServerConfig;

/// Settings `CONFIG SET` may change while the server runs.
pub struct Settings {
    /// Redis `maxclients`: connections beyond it are refused at accept.
    maxclients: AtomicUsize,
    /// Redis `timeout`, in ms (the config file takes durations below a second; CONFIG SET
    /// whole seconds): a client idle this long is closed; 0 never.
    timeout_ms: AtomicU64,
    /// Redis `slowlog-log-slower-than`, µs; negative: log nothing, 0: log every command.
    slowlog_log_slower_than: AtomicI64,
    /// Redis `slowlog-max-len`: entries the slow log keeps.
    slowlog_max_len: AtomicU64,
    /// Redis `notify-keyspace-events`, as flag bits ([`keyspace_events`]).
    notify_keyspace_events: AtomicU32,
    /// `client-output-buffer-limit`'s `normal` and `replica` classes as CONFIG SET last set
    /// them: shown by CONFIG GET, not enforced (normal clients are bounded by the config file's
    /// `client_output_buffer_limit`, and Sluice has no replicas). The `pubsub` class is
    /// enforced: it lives in `PubSub`.
    shown_output_limits: parking_lot::Mutex<[[u64; 3]; 2]>,
}

/// Redis's default `slowlog-log-slower-than` (µs).
pub const SLOWLOG_LOG_SLOWER_THAN: i64 = 10_000;
/// Redis's default `slowlog-max-len`.
pub const SLOWLOG_MAX_LEN: u64 = 128;

impl Settings {
    /// The settings the config file starts with.
    pub fn new(config: &ServerConfig) -> Settings {
        Settings {
            maxclients: AtomicUsize::new(config.maxclients),
            timeout_ms: AtomicU64::new(config.timeout.as_millis().min(u64::MAX as u128) as u64),
            slowlog_log_slower_than: AtomicI64::new(SLOWLOG_LOG_SLOWER_THAN),
            slowlog_max_len: AtomicU64::new(SLOWLOG_MAX_LEN),
            notify_keyspace_events: AtomicU32::new(0),
            shown_output_limits: parking_lot::Mutex::new([[0, 0, 0], [256 << 20, 64 << 20, 60]]),
        }
    }

    /// The `normal` and `replica` classes of `client-output-buffer-limit` as last set.
    pub fn shown_output_limits(&self) -> [[u64; 3]; 2] {
        *self.shown_output_limits.lock()
    }

    /// Sets the `normal` (0) or `replica` (1) class shown by CONFIG GET.
    pub fn set_shown_output_limit(&self, class: usize, limits: [u64; 3]) {
        if let Some(slot) = self.shown_output_limits.lock().get_mut(class) {
            *slot = limits;
        }
    }

    /// The connection limit in force.
    pub fn maxclients(&self) -> usize {
        self.maxclients.load(Ordering::Relaxed)
    }

    /// Sets the connection limit; connections already open stay, as in Redis.
    pub fn set_maxclients(&self, n: usize) {
        self.maxclients.store(n, Ordering::Relaxed);
    }

    /// The idle limit in force; zero: none.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.load(Ordering::Relaxed))
    }

    /// Sets the idle limit, in seconds.
    pub fn set_timeout_secs(&self, secs: u64) {
        self.timeout_ms
            .store(secs.saturating_mul(1000), Ordering::Relaxed);
    }

    /// `slowlog-log-slower-than` in µs.
    pub fn slowlog_log_slower_than(&self) -> i64 {
        self.slowlog_log_slower_than.load(Ordering::Relaxed)
    }

    /// Sets `slowlog-log-slower-than` (µs).
    pub fn set_slowlog_log_slower_than(&self, micros: i64) {
        self.slowlog_log_slower_than
            .store(micros, Ordering::Relaxed);
    }

    /// `slowlog-max-len`.
    pub fn slowlog_max_len(&self) -> u64 {
        self.slowlog_max_len.load(Ordering::Relaxed)
    }

    /// Sets `slowlog-max-len`.
    pub fn set_slowlog_max_len(&self, len: u64) {
        self.slowlog_max_len.store(len, Ordering::Relaxed);
    }

    /// `notify-keyspace-events` as Redis shows it (`AKE`, `gx`, ...).
    pub fn notify_keyspace_events(&self) -> String {
        keyspace_events::to_string(self.notify_keyspace_events.load(Ordering::Relaxed))
    }

    /// Whether keyspace notifications of `class` ([`keyspace_events`]) are published: the
    /// class is on, and so is at least one of `K` and `E`. One relaxed load.
    #[inline]
    pub fn notifies(&self, class: u32) -> bool {
        let flags = self.notify_keyspace_events.load(Ordering::Relaxed);
        flags & class != 0 && flags & (keyspace_events::KEYSPACE | keyspace_events::KEYEVENT) != 0
    }

    /// The `notify-keyspace-events` flag bits.
    pub fn notify_flags(&self) -> u32 {
        self.notify_keyspace_events.load(Ordering::Relaxed)
    }

    /// Sets `notify-keyspace-events` from its flag bits.
    pub fn set_notify_keyspace_events(&self, flags: u32) {
        self.notify_keyspace_events.store(flags, Ordering::Relaxed);
    }
}

/// Redis's `notify-keyspace-events` classes, parsed and shown as `notify.c` does.
pub mod keyspace_events {
    pub const KEYSPACE: u32 = 1 << 0;
    pub const KEYEVENT: u32 = 1 << 1;
    pub const GENERIC: u32 = 1 << 2;
    pub const STRING: u32 = 1 << 3;
    pub const LIST: u32 = 1 << 4;
    pub const SET: u32 = 1 << 5;
    pub const HASH: u32 = 1 << 6;
    pub const ZSET: u32 = 1 << 7;
    pub const EXPIRED: u32 = 1 << 8;
    pub const EVICTED: u32 = 1 << 9;
    pub const STREAM: u32 = 1 << 10;
    pub const KEY_MISS: u32 = 1 << 11;
    pub const MODULE: u32 = 1 << 12;
    pub const NEW: u32 = 1 << 13;
    /// `A`: every class but key misses and new keys.
    const ALL: u32 =
        GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

    /// The flags of a class string, or `None` for a character Redis refuses.
    pub fn parse(classes: &[u8]) -> Option<u32> {
        classes.iter().try_fold(0, |flags, c| {
            let class = match c {
                b'A' => ALL,
                b'g' => GENERIC,
                b'$' => STRING,
                b'l' => LIST,
                b's' => SET,
                b'h' => HASH,
                b'z' => ZSET,
                b'x' => EXPIRED,
                b'e' => EVICTED,
                b'K' => KEYSPACE,
                b'E' => KEYEVENT,
                b't' => STREAM,
                b'm' => KEY_MISS,
                b'd' => MODULE,
                b'n' => NEW,
                _ => return None,
            };
            Some(flags | class)
        })
    }

    /// The class string Redis shows for these flags (`A` for all, then `K`, `E`, `m`).
    pub fn to_string(flags: u32) -> String {
        let mut out = String::new();
        if flags & ALL == ALL {
            out.push('A');
        } else {
            for (bit, c) in [
                (GENERIC, 'g'),
                (STRING, '$'),
                (LIST, 'l'),
                (SET, 's'),
                (HASH, 'h'),
                (ZSET, 'z'),
                (EXPIRED, 'x'),
                (EVICTED, 'e'),
                (STREAM, 't'),
                (MODULE, 'd'),
                (NEW, 'n'),
            ] {
                if flags & bit != 0 {
                    out.push(c);
                }
            }
        }
        for (bit, c) in [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (KEY_MISS, 'm')] {
            if flags & bit != 0 {
                out.push(c);
            }
        }
        out
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn classes_are_shown_as_redis_7_0_shows_them() {
            let shown = |s: &str| to_string(parse(s.as_bytes()).unwrap());
            assert_eq!(shown("KEA"), "AKE");
            assert_eq!(shown("Kn"), "nK");
            assert_eq!(shown("Agn"), "A");
            assert_eq!(shown("gn"), "gn");
            assert_eq!(shown("Kg$lshzxetdn"), "AK");
            assert_eq!(shown("KEm"), "KEm");
            assert_eq!(shown(""), "");
            assert_eq!(parse(b"q"), None);
        }
    }
}

/// Redis's `client-output-buffer-limit` value: `<class> <hard> <soft> <soft seconds>` groups,
/// parsed as Redis 7.0's `updateClientOutputBufferLimit` does.
pub mod output_limits {
    /// A client class of `client-output-buffer-limit`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Class {
        /// `normal`.
        Normal,
        /// `replica` (or `slave`).
        Replica,
        /// `pubsub`.
        PubSub,
    }

    /// The groups of `value`, each class with its hard and soft limits (bytes) and soft
    /// seconds, or Redis's reason for refusing it.
    pub fn parse(value: &[u8]) -> Result<Vec<(Class, [u64; 3])>, &'static str> {
        let words: Vec<&[u8]> = value
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
            .collect();
        if !words.len().is_multiple_of(4) {
            return Err("Wrong number of arguments in buffer limit configuration.");
        }
        words
            .chunks(4)
            .map(|group| {
                let class = match group[0].to_ascii_lowercase().as_slice() {
                    b"normal" => Class::Normal,
                    b"slave" | b"replica" => Class::Replica,
                    b"pubsub" => Class::PubSub,
                    _ => {
                        return Err("Invalid client class specified in buffer limit configuration.")
                    }
                };
                let bad =
                    "Error in hard, soft or soft_seconds setting in buffer limit configuration.";
                let hard = bytes_with_unit(group[1]).ok_or(bad)?;
                let soft = bytes_with_unit(group[2]).ok_or(bad)?;
                let secs = std::str::from_utf8(group[3])
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                    .filter(|s| *s >= 0)
                    .ok_or(bad)?;
                Ok((class, [hard, soft, secs.unsigned_abs()]))
            })
            .collect()
    }

    /// A size as Redis's `memtoull`: digits, then `b`, `k`, `kb`, `m`, `mb`, `g` or `gb` in any
    /// case (`k` is 1000, `kb` 1024).
    fn bytes_with_unit(word: &[u8]) -> Option<u64> {
        let lower = word.to_ascii_lowercase();
        let digits_end = lower
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(lower.len());
        let (digits, unit) = lower.split_at(digits_end);
        let multiple: u64 = match unit {
            b"" | b"b" => 1,
            b"k" => 1000,
            b"kb" => 1024,
            b"m" => 1000 * 1000,
            b"mb" => 1024 * 1024,
            b"g" => 1000 * 1000 * 1000,
            b"gb" => 1024 * 1024 * 1024,
            _ => return None,
        };
        let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
        n.checked_mul(multiple)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn groups_parse_as_redis_7_0_parses_them() {
            assert_eq!(
                parse(b"pubsub 32mb 8MB 60 NORMAL 1k 1kb 0"),
                Ok(vec![
                    (Class::PubSub, [32 << 20, 8 << 20, 60]),
                    (Class::Normal, [1000, 1024, 0]),
                ])
            );
            assert_eq!(parse(b""), Ok(vec![]));
            assert!(parse(b"pubsub 1 2")
                .unwrap_err()
                .starts_with("Wrong number"));
            assert!(parse(b"master 1 2 3")
                .unwrap_err()
                .starts_with("Invalid client class"));
            for bad in [
                &b"pubsub 1x 2 3"[..],
                b"pubsub 1 2 -3",
                b"pubsub -1 2 3",
                b"pubsub mb 2 3",
            ] {
                assert!(
                    parse(bad).unwrap_err().starts_with("Error in hard"),
                    "{bad:?}"
                );
            }
        }
    }
}
