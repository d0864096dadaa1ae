//! The slow log (SLOWLOG): commands that ran at least `slowlog-log-slower-than` µs, newest
//! first, at most `slowlog-max-len`, recorded as Redis 7.0 records them.

use std::collections::VecDeque;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::Mutex;

use super::Settings;

/// Arguments an entry keeps; the last slot then says how many more there were.
const MAX_ARGS: usize = 32;
/// Bytes an argument keeps; the rest is counted.
const MAX_ARG_BYTES: usize = 128;

/// One slow command.
#[derive(Clone, Debug)]
pub struct SlowEntry {
    /// Increasing from 0 for the process's life (SLOWLOG RESET does not restart it).
    pub id: u64,
    /// When it was logged, in Unix seconds.
    pub unix_time: u64,
    /// How long it ran, µs.
    pub micros: u64,
    /// Its arguments, truncated as Redis truncates them.
    pub argv: Vec<Bytes>,
    /// The client's `ip:port`.
    pub addr: String,
    /// The client's name, empty if none.
    pub name: Bytes,
}

/// The slow log.
#[derive(Default)]
pub struct SlowLog {
    entries: Mutex<VecDeque<SlowEntry>>,
    next_id: Mutex<u64>,
}

/// A command being timed for the slow log: its start and its arguments as they were before it
/// ran (commands move arguments out of the request).
pub struct SlowCall {
    started: Instant,
    argv: Vec<Bytes>,
}

impl SlowCall {
    /// Starts timing a command; `None` when the slow log is off (a negative threshold).
    pub fn start(settings: &Settings, argv: &[Bytes]) -> Option<SlowCall> {
        if settings.slowlog_log_slower_than() < 0 {
            return None;
        }
        Some(SlowCall {
            started: Instant::now(),
            argv: truncated(argv),
        })
    }
}

/// Redis's `slowlogCreateEntry` truncation; secret arguments replaced by `(redacted)`.
fn truncated(argv: &[Bytes]) -> Vec<Bytes> {
    let kept = argv.len().min(MAX_ARGS);
    let secret = secret_positions(argv);
    (0..kept)
        .map(|i| {
            if kept != argv.len() && i == kept - 1 {
                Bytes::from(format!("... ({} more arguments)", argv.len() - kept + 1))
            } else if secret(i) {
                Bytes::from_static(b"(redacted)")
            } else if argv[i].len() > MAX_ARG_BYTES {
                let more = format!("... ({} more bytes)", argv[i].len() - MAX_ARG_BYTES);
                Bytes::from([&argv[i][..MAX_ARG_BYTES], more.as_bytes()].concat())
            } else {
                argv[i].clone()
            }
        })
        .collect()
}

/// Which arguments are passwords, as Redis redacts them: AUTH's, HELLO's after AUTH, and the
/// values of CONFIG SET requirepass / masterauth.
fn secret_positions(argv: &[Bytes]) -> impl Fn(usize) -> bool + '_ {
    let is = |i: usize, word: &str| {
        argv.get(i)
            .is_some_and(|a| a.eq_ignore_ascii_case(word.as_bytes()))
    };
    move |i: usize| {
        (is(0, "auth") && i > 0)
            || (is(0, "hello") && (1..i).any(|a| is(a, "auth") && (i == a + 1 || i == a + 2)))
            || (is(0, "config")
                && is(1, "set")
                && i >= 3
                && i % 2 == 1
                && (is(i - 1, "requirepass") || is(i - 1, "masterauth")))
    }
}

impl SlowLog {
    /// Records the call if it ran at least `slowlog-log-slower-than` µs (read now, so a CONFIG
    /// SET lowering it logs itself, as in Redis).
    pub fn finish(&self, settings: &Settings, call: SlowCall, addr: &str, name: Option<&Bytes>) {
        let micros = u64::try_from(call.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let threshold = settings.slowlog_log_slower_than();
        if threshold < 0 || micros < threshold.unsigned_abs() {
            return;
        }
        let unix_time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let id = {
            let mut next = self.next_id.lock();
            *next += 1;
            *next - 1
        };
        let mut entries = self.entries.lock();
        entries.push_front(SlowEntry {
            id,
            unix_time,
            micros,
            argv: call.argv,
            addr: addr.to_string(),
            name: name.cloned().unwrap_or_default(),
        });
        let max = usize::try_from(settings.slowlog_max_len()).unwrap_or(usize::MAX);
        entries.truncate(max);
    }

    /// The newest `count` entries, newest first.
    pub fn newest(&self, count: usize) -> Vec<SlowEntry> {
        self.entries.lock().iter().take(count).cloned().collect()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every entry (SLOWLOG RESET); ids keep increasing.
    pub fn reset(&self) {
        self.entries.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Bytes> {
        words.iter().map(|w| Bytes::from(w.to_string())).collect()
    }

    #[test]
    fn long_arguments_and_argument_lists_are_cut_as_redis_cuts_them() {
        let long = "x".repeat(130);
        let cut = truncated(&args(&["SET", "k", &long]));
        assert_eq!(
            cut[2],
            Bytes::from(format!("{}... (2 more bytes)", "x".repeat(128)))
        );
        let many: Vec<String> = (0..40).map(|i| i.to_string()).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let cut = truncated(&args(&many));
        assert_eq!(cut.len(), 32);
        assert_eq!(cut[30], Bytes::from("30"));
        assert_eq!(cut[31], Bytes::from("... (9 more arguments)"));
    }

    #[test]
    fn passwords_are_redacted() {
        let cut = truncated(&args(&["AUTH", "user", "pw"]));
        assert_eq!(cut, args(&["AUTH", "(redacted)", "(redacted)"]));
        let cut = truncated(&args(&[
            "CONFIG",
            "SET",
            "timeout",
            "5",
            "requirepass",
            "pw",
        ]));
        assert_eq!(
            cut,
            args(&["CONFIG", "SET", "timeout", "5", "requirepass", "(redacted)"])
        );
        let cut = truncated(&args(&["HELLO", "3", "AUTH", "u", "pw", "SETNAME", "n"]));
        assert_eq!(
            cut,
            args(&[
                "HELLO",
                "3",
                "AUTH",
                "(redacted)",
                "(redacted)",
                "SETNAME",
                "n"
            ])
        );
    }
}
