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
    /// Redis `notify-keyspace-events`, as flag bits ([`keyspace_events`]). Stored and shown;
    /// no event is published yet.
    notify_keyspace_events: AtomicU32,
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

    /// Sets `notify-keyspace-events` from its flag bits.
    pub fn set_notify_keyspace_events(&self, flags: u32) {
        self.notify_keyspace_events.store(flags, Ordering::Relaxed);
    }
}

/// Redis's `notify-keyspace-events` classes, parsed and shown as `notify.c` does.
pub mod keyspace_events {
    const KEYSPACE: u32 = 1 << 0;
    const KEYEVENT: u32 = 1 << 1;
    const GENERIC: u32 = 1 << 2;
    const STRING: u32 = 1 << 3;
    const LIST: u32 = 1 << 4;
    const SET: u32 = 1 << 5;
    const HASH: u32 = 1 << 6;
    const ZSET: u32 = 1 << 7;
    const EXPIRED: u32 = 1 << 8;
    const EVICTED: u32 = 1 << 9;
    const STREAM: u32 = 1 << 10;
    const KEY_MISS: u32 = 1 << 11;
    const MODULE: u32 = 1 << 12;
    const NEW: u32 = 1 << 13;
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
