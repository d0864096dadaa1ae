//! The status page (`/`) and its data (`/status.json`): each keyspace's figures, the dead
//! letters, and 15 minutes of history for the charts.
//!
//! The history is sampled here, once a second, by a task [`serve`](super::serve) starts only
//! when the HTTP listener is configured: the engine keeps no history and the request path pays
//! nothing for it. A sample holds totals over every keyspace (the charts show the node); rates
//! come from the difference between two samples' counters.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::StatusCode;
use parking_lot::Mutex;
use serde_json::{json, Value};
use sluice::{DeadLetter, KeyspaceInfo};

use super::{json, text, Reply};
use crate::state::Shared;

/// Samples kept: one a second for 15 minutes.
pub(super) const HISTORY_SAMPLES: usize = 900;

/// How often the sampler looks at the counters.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Dead letters the page lists at most (the count is always whole).
const LISTED_DEAD_LETTERS: usize = 200;

/// One second of the node, over every keyspace.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Unix ms when taken.
    at_ms: u64,
    /// The oldest unflushed write-back write's age, over every keyspace.
    oldest_unflushed_ms: u64,
    /// Write-back entries not yet stored.
    buffered: u64,
    /// Writes taken per second since the previous sample.
    writes_per_s: f64,
    /// Rows stored per second since the previous sample.
    rows_stored_per_s: f64,
}

/// The last [`HISTORY_SAMPLES`] samples, oldest first. Lives in the HTTP listener, never in
/// the engine.
#[derive(Default)]
pub(super) struct History {
    samples: Mutex<VecDeque<Sample>>,
}

impl History {
    fn push(&self, sample: Sample) {
        let mut samples = self.samples.lock();
        if samples.len() == HISTORY_SAMPLES {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    fn to_json(&self) -> Value {
        let samples = self.samples.lock();
        Value::Array(
            samples
                .iter()
                .map(|s| {
                    json!({
                        "t": s.at_ms,
                        "oldest_unflushed_ms": s.oldest_unflushed_ms,
                        "buffered": s.buffered,
                        "writes_per_s": s.writes_per_s,
                        "rows_stored_per_s": s.rows_stored_per_s,
                    })
                })
                .collect(),
        )
    }
}

/// Counter totals at one instant, to turn two of them into rates.
struct Totals {
    at: Instant,
    writes: u64,
    rows_stored: u64,
}

fn totals(keyspaces: &[KeyspaceInfo]) -> Totals {
    Totals {
        at: Instant::now(),
        writes: keyspaces.iter().map(|k| k.writes).sum(),
        rows_stored: keyspaces.iter().map(|k| k.rows_stored).sum(),
    }
}

/// Samples the node into `history` every second until the server shuts down.
pub(super) async fn sample(shared: Arc<Shared>, history: Arc<History>) {
    let mut shutdown = shared.shutdown_signal();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut previous = totals(&shared.sluice.keyspaces());
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = async { let _ = shutdown.wait_for(|stop| *stop).await; } => return,
        }
        let keyspaces = shared.sluice.keyspaces();
        let now = totals(&keyspaces);
        let seconds = now.at.duration_since(previous.at).as_secs_f64();
        let rate = |now: u64, before: u64| match seconds > 0.0 {
            true => now.saturating_sub(before) as f64 / seconds,
            false => 0.0,
        };
        history.push(Sample {
            at_ms: unix_ms(),
            oldest_unflushed_ms: keyspaces
                .iter()
                .map(|k| k.oldest_buffered_age_ms)
                .max()
                .unwrap_or(0),
            buffered: keyspaces.iter().map(|k| k.buffered as u64).sum(),
            writes_per_s: rate(now.writes, previous.writes),
            rows_stored_per_s: rate(now.rows_stored, previous.rows_stored),
        });
        previous = now;
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The share of reads answered without the database, or `None` before the first read.
fn hit_rate(k: &KeyspaceInfo) -> Option<f64> {
    let reads = k.read_hits + k.read_misses;
    (reads > 0).then(|| k.read_hits as f64 / reads as f64)
}

fn keyspace_json(k: &KeyspaceInfo) -> Value {
    json!({
        "name": k.name,
        "policy": k.policy.as_str(),
        "template": k.template,
        "table": k.table,
        "hit_rate": hit_rate(k),
        "read_hits": k.read_hits,
        "read_misses": k.read_misses,
        "buffered": k.buffered,
        "buffered_bytes": k.buffered_bytes,
        "oldest_unflushed_ms": k.oldest_buffered_age_ms,
        "dead_letters": k.dead_letters,
        "writes": k.writes,
        "rows_stored": k.rows_stored,
        "store_errors": k.store_errors,
        "last_error": k.last_error,
    })
}

fn dead_letter_json(l: &DeadLetter) -> Value {
    json!({
        "keyspace": l.keyspace,
        "db": l.db,
        "key": String::from_utf8_lossy(&l.key),
        "key_hex": crate::auth::hex(&l.key),
        "error": l.error,
        "failed_at_ms": l.failed_at_ms,
    })
}

/// `/status.json`: what the page shows, for its script.
pub(super) fn status_json(shared: &Shared, history: &History) -> Reply {
    let keyspaces = shared.sluice.keyspaces();
    let journal = shared.sluice.journal_stats();
    let (dead_letters, dead_letters_error) =
        match shared.sluice.first_dead_letters(None, LISTED_DEAD_LETTERS) {
            Ok(letters) => (letters, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
    // The keyspaces' counts, not a read of every letter (a letter of a keyspace no longer
    // configured is counted only when listed).
    let dead_letters_total = keyspaces
        .iter()
        .map(|k| k.dead_letters as usize)
        .sum::<usize>()
        .max(dead_letters.len());
    let mut reply = json(
        StatusCode::OK,
        json!({
            "now_ms": unix_ms(),
            "uptime_s": shared.started.elapsed().as_secs(),
            "durability": shared.sluice.durability().as_str(),
            "journal": {
                "bytes": journal.bytes,
                "segments": journal.segments,
                "error": journal.health.error().map(|e| e.to_string()),
            },
            "keyspaces": keyspaces.iter().map(keyspace_json).collect::<Vec<_>>(),
            "dead_letters_total": dead_letters_total,
            "dead_letters": dead_letters.iter().map(dead_letter_json).collect::<Vec<_>>(),
            "dead_letters_error": dead_letters_error,
            "history": history.to_json(),
        }),
    );
    reply
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    reply
}

/// `/`: the page, rendered with the figures as they are now; its script then redraws it from
/// `/status.json` every second.
pub(super) fn page(shared: &Shared) -> Reply {
    let keyspaces = shared.sluice.keyspaces();
    let mut rows = String::new();
    for k in &keyspaces {
        let _ = writeln!(
            rows,
            "<tr data-keyspace=\"{name}\"><td data-field=\"name\">{name}</td><td data-field=\"policy\">{policy}</td>\
             <td data-field=\"table\">{table}</td><td data-field=\"hit_rate\" class=\"num\">{hit_rate}</td>\
             <td data-field=\"writes\" class=\"num\">{writes}</td><td data-field=\"buffered\" class=\"num\">{buffered}</td>\
             <td data-field=\"oldest_unflushed\" class=\"num\">{oldest}</td><td data-field=\"dead_letters\" class=\"num\">{dead}</td></tr>",
            name = escape(&k.name),
            policy = k.policy.as_str(),
            table = escape(&k.table),
            hit_rate = hit_rate(k).map_or_else(|| "–".to_string(), |r| format!("{:.1}%", r * 100.0)),
            writes = k.writes,
            buffered = k.buffered,
            oldest = format_args!("{:.1} s", k.oldest_buffered_age_ms as f64 / 1000.0),
            dead = k.dead_letters,
        );
    }
    let mut reply = text(
        StatusCode::OK,
        // The rows last: a keyspace's name must never be read as a placeholder.
        PAGE.replace("{{style}}", STYLE)
            .replace("{{script}}", SCRIPT)
            .replace("{{version}}", env!("CARGO_PKG_VERSION"))
            .replace("{{keyspace_rows}}", &rows),
    );
    let headers = reply.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Everything is inline and same-origin; nothing may be loaded from elsewhere, and no other
    // site may frame the page (its buttons act).
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        ),
    );
    reply
}

/// Text made safe inside HTML elements and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const PAGE: &str = include_str!("status.html");
const STYLE: &str = include_str!("status.css");
const SCRIPT: &str = include_str!("status.js");

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_ms: u64) -> Sample {
        Sample {
            at_ms,
            oldest_unflushed_ms: 0,
            buffered: 0,
            writes_per_s: 0.0,
            rows_stored_per_s: 0.0,
        }
    }

    #[test]
    fn history_keeps_the_last_900_samples() {
        let history = History::default();
        for t in 0..HISTORY_SAMPLES as u64 + 5 {
            history.push(sample(t));
        }
        let json = history.to_json();
        let samples = json.as_array().expect("array");
        assert_eq!(samples.len(), HISTORY_SAMPLES);
        assert_eq!(samples[0]["t"], 5);
        assert_eq!(
            samples[HISTORY_SAMPLES - 1]["t"],
            HISTORY_SAMPLES as u64 + 4
        );
    }

    #[test]
    fn escape_leaves_no_markup() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
