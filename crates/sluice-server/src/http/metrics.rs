//! `/metrics`: the node's counters in the Prometheus text format, read at scrape time.
//!
//! Every figure here is one the engine and the server keep anyway (INFO shows the same; the
//! histograms are relaxed-atomic buckets filled where they are measured), so the scrape adds
//! nothing to the request path. A fresh recorder per scrape renders the counters and gauges,
//! so a keyspace that is gone leaves no stale series; the histograms are written as text
//! after them ([`super::histograms`]).

use std::sync::atomic::Ordering;

use metrics::{counter, describe_counter, describe_gauge, gauge, Unit};
use metrics_exporter_prometheus::PrometheusBuilder;

use super::histograms::{self, Series};
use crate::frontend::cmd::{self, FAMILY_NAMES};
use crate::state::{Shared, COMMAND_BOUNDS_NS};

/// µs, as the engine measures, to seconds.
const MICROS: f64 = 1e-6;

/// The text format body of one scrape.
pub(super) fn render(shared: &Shared) -> String {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        record(shared);
        record_commands(shared);
    });
    let mut out = handle.render();
    write_histograms(shared, &mut out);
    out
}

/// Commands by name and outcome, and error replies by class (BUSY included).
fn record_commands(shared: &Shared) {
    describe_counter!(
        "sluice_commands_total",
        "Commands by name (sub-commands as container|sub) and outcome: ok, failed (ran and answered an error), rejected (refused before running: arity, permissions)."
    );
    describe_counter!(
        "sluice_errors_total",
        "Error replies by class, the error's first word as INFO errorstats counts it (ERR, WRONGTYPE, BUSY, NOPERM...)."
    );
    let stats = &shared.command_stats;
    for (slot, name) in cmd::table().slot_names().iter().enumerate() {
        let c = stats.counts(slot);
        for (outcome, n) in [
            ("ok", c.calls - c.failed.min(c.calls)),
            ("failed", c.failed),
            ("rejected", c.rejected),
        ] {
            if n > 0 {
                counter!("sluice_commands_total", "command" => name.clone(), "outcome" => outcome)
                    .absolute(n);
            }
        }
    }
    for (class, n) in stats.errors() {
        counter!("sluice_errors_total", "class" => String::from_utf8_lossy(&class).into_owned())
            .absolute(n);
    }
}

/// The histograms: command durations per family, each keyspace's flushes, store commits and
/// journal fsyncs.
fn write_histograms(shared: &Shared, out: &mut String) {
    let table = cmd::table();
    let stats = &shared.command_stats;
    let command_bounds: Vec<f64> = COMMAND_BOUNDS_NS.iter().map(|&b| b as f64 * 1e-9).collect();
    let families: Vec<Series> = FAMILY_NAMES
        .iter()
        .enumerate()
        .filter_map(|(family, name)| {
            let counts = stats.family_durations(family);
            if counts.iter().all(|&c| c == 0) {
                return None;
            }
            let nanos: u64 = table
                .slot_families()
                .iter()
                .enumerate()
                .filter(|(_, f)| **f == family)
                .map(|(slot, _)| stats.counts(slot).nanos)
                .sum();
            Some(Series {
                labels: vec![("family", name.to_string())],
                bounds: command_bounds.clone(),
                counts,
                sum: nanos as f64 * 1e-9,
            })
        })
        .collect();
    histograms::write(
        out,
        "sluice_command_duration_seconds",
        "Time commands took to run, by command family (Redis's command groups).",
        &families,
    );

    let keyspaces = shared.sluice.keyspaces();
    let labels = |ks: &sluice::KeyspaceInfo| {
        vec![
            ("keyspace", ks.name.clone()),
            ("policy", ks.policy.as_str().to_string()),
        ]
    };
    let flushes: Vec<Series> = keyspaces
        .iter()
        .filter(|ks| ks.flush_duration.count > 0)
        .map(|ks| Series::from_snapshot(labels(ks), &ks.flush_duration, MICROS))
        .collect();
    histograms::write(
        out,
        "sluice_keyspace_flush_duration_seconds",
        "Time each write-back flush took to store its batch (one database transaction).",
        &flushes,
    );
    let batches: Vec<Series> = keyspaces
        .iter()
        .filter(|ks| ks.flush_batch.count > 0)
        .map(|ks| Series::from_snapshot(labels(ks), &ks.flush_batch, 1.0))
        .collect();
    histograms::write(
        out,
        "sluice_keyspace_flush_batch_entries",
        "Entries each write-back flush stored.",
        &batches,
    );

    let engine = shared.sluice.metrics();
    for (name, help, histogram, scale) in [
        (
            "sluice_store_commit_duration_seconds",
            "Time each group commit of write-through and invalidate writes took (one database transaction).",
            &engine.store_commit,
            MICROS,
        ),
        (
            "sluice_store_commit_writes",
            "Writes each group commit stored.",
            &engine.store_commit_writes,
            1.0,
        ),
        (
            "sluice_journal_fsync_duration_seconds",
            "Time each fdatasync of the journal took.",
            &engine.journal_fsync,
            MICROS,
        ),
        (
            "sluice_journal_writes_per_fsync",
            "Appends each journal fsync made durable.",
            &engine.journal_writes_per_fsync,
            1.0,
        ),
        (
            "sluice_changes_delay_seconds",
            "Time from the database recording a changed row to Sluice applying it to the cache.",
            &engine.changes.delay,
            MICROS,
        ),
    ] {
        let snapshot = histogram.snapshot();
        if snapshot.count > 0 {
            histograms::write(
                out,
                name,
                help,
                &[Series::from_snapshot(Vec::new(), &snapshot, scale)],
            );
        }
    }
}

fn record(shared: &Shared) {
    describe();
    let sluice = &shared.sluice;
    gauge!("sluice_uptime_seconds").set(shared.started.elapsed().as_secs_f64());
    gauge!("sluice_connected_clients").set(shared.clients.count() as f64);
    gauge!("sluice_memory_rss_bytes").set(crate::state::rss_bytes() as f64);
    let stats = &shared.stats;
    counter!("sluice_connections_received_total")
        .absolute(stats.connections.load(Ordering::Relaxed));
    counter!("sluice_connections_rejected_total").absolute(stats.rejected.load(Ordering::Relaxed));
    counter!("sluice_commands_processed_total").absolute(stats.commands.load(Ordering::Relaxed));

    let cache = sluice.cache_stats();
    gauge!("sluice_cache_entries").set(cache.entries as f64);
    gauge!("sluice_cache_bytes").set(cache.bytes as f64);
    gauge!("sluice_cache_capacity_bytes").set(cache.capacity as f64);

    let journal = sluice.journal_stats();
    let durability = sluice.durability().as_str();
    gauge!("sluice_journal_bytes").set(journal.bytes as f64);
    gauge!("sluice_journal_segments").set(journal.segments as f64);
    counter!("sluice_journal_appends_total").absolute(journal.appends);
    counter!("sluice_journal_fsyncs_total").absolute(journal.syncs);
    gauge!("sluice_journal_failed", "durability" => durability).set(
        if journal.health.error().is_some() {
            1.0
        } else {
            0.0
        },
    );

    let engine = sluice.metrics();
    gauge!("sluice_journal_replay_records")
        .set(engine.replay_records.load(Ordering::Relaxed) as f64);
    gauge!("sluice_journal_replay_buffer_seconds")
        .set(engine.replay_buffer_us.load(Ordering::Relaxed) as f64 * MICROS);
    gauge!("sluice_journal_replay_flush_seconds")
        .set(engine.replay_flush_us.load(Ordering::Relaxed) as f64 * MICROS);
    let changes = &engine.changes;
    gauge!("sluice_changes_enabled").set(changes.enabled.load(Ordering::Relaxed) as f64);
    for (name, value) in [
        ("sluice_changes_applied_total", &changes.applied),
        ("sluice_changes_replaced_total", &changes.replaced),
        ("sluice_changes_removed_total", &changes.removed),
        ("sluice_changes_unchanged_total", &changes.unchanged),
        ("sluice_changes_lost_total", &changes.lost),
        ("sluice_changes_errors_total", &changes.errors),
    ] {
        counter!(name).absolute(value.load(Ordering::Relaxed));
    }
    gauge!("sluice_changes_lag_seconds")
        .set(changes.lag_ms.load(Ordering::Relaxed) as f64 / 1000.0);
    gauge!("sluice_changes_position").set(changes.position.load(Ordering::Relaxed) as f64);
    gauge!("sluice_changes_retained").set(changes.retained.load(Ordering::Relaxed) as f64);
    gauge!("sluice_changes_retained_wal_bytes")
        .set(changes.retained_bytes.load(Ordering::Relaxed) as f64);
    if let Some(pool) = sluice.store_pool() {
        gauge!("sluice_store_pool_max_connections").set(pool.max as f64);
        gauge!("sluice_store_pool_open_connections").set(pool.open as f64);
        gauge!("sluice_store_pool_idle_connections").set(pool.idle as f64);
        gauge!("sluice_store_pool_waiting").set(pool.waiting as f64);
    }

    for ks in sluice.keyspaces() {
        let labels = [
            ("keyspace", ks.name.clone()),
            ("policy", ks.policy.as_str().to_string()),
        ];
        gauge!("sluice_keyspace_buffered_entries", &labels).set(ks.buffered as f64);
        gauge!("sluice_keyspace_buffered_bytes", &labels).set(ks.buffered_bytes as f64);
        gauge!("sluice_keyspace_oldest_unflushed_age_seconds", &labels)
            .set(ks.oldest_buffered_age_ms as f64 / 1000.0);
        gauge!("sluice_keyspace_dead_letters", &labels).set(ks.dead_letters as f64);
        gauge!("sluice_keyspace_last_flush_duration_seconds", &labels)
            .set(ks.last_flush_us as f64 / 1e6);
        counter!("sluice_keyspace_writes_total", &labels).absolute(ks.writes);
        counter!("sluice_keyspace_flushes_total", &labels).absolute(ks.flushes);
        counter!("sluice_keyspace_rows_stored_total", &labels).absolute(ks.rows_stored);
        counter!("sluice_keyspace_store_errors_total", &labels).absolute(ks.store_errors);
        counter!("sluice_keyspace_flush_retries_total", &labels).absolute(ks.retries);
        counter!("sluice_keyspace_read_hits_total", &labels).absolute(ks.read_hits);
        counter!("sluice_keyspace_read_misses_total", &labels).absolute(ks.read_misses);
    }
}

fn describe() {
    describe_gauge!(
        "sluice_uptime_seconds",
        Unit::Seconds,
        "Time since the server started."
    );
    describe_gauge!("sluice_connected_clients", "Open client connections.");
    describe_gauge!(
        "sluice_memory_rss_bytes",
        Unit::Bytes,
        "Resident memory of the process."
    );
    describe_counter!("sluice_connections_received_total", "Connections accepted.");
    describe_counter!(
        "sluice_connections_rejected_total",
        "Connections refused because maxclients was reached."
    );
    describe_counter!("sluice_commands_processed_total", "Commands run.");
    describe_gauge!(
        "sluice_changes_enabled",
        "1 while Sluice follows the database's changes ([changes] enabled)."
    );
    describe_counter!(
        "sluice_changes_applied_total",
        "Changed rows applied to the cache, once per keyspace mapped on the row's table."
    );
    describe_counter!(
        "sluice_changes_replaced_total",
        "Cached copies a changed row replaced with the database's value."
    );
    describe_counter!(
        "sluice_changes_removed_total",
        "Cached copies a changed row removed (the row is gone or a write-back write waits)."
    );
    describe_counter!(
        "sluice_changes_unchanged_total",
        "Changed rows whose cached copy already held the database's value (Sluice's own writes)."
    );
    describe_counter!(
        "sluice_changes_lost_total",
        "Times the change stream broke and every cached copy was dropped."
    );
    describe_counter!(
        "sluice_changes_errors_total",
        "Failures of the change feed, each retried with backoff."
    );
    describe_gauge!(
        "sluice_changes_lag_seconds",
        Unit::Seconds,
        "From the database recording the last applied change to Sluice applying it."
    );
    describe_gauge!(
        "sluice_changes_position",
        "The last position of the change stream this node confirmed."
    );
    describe_gauge!(
        "sluice_changes_retained",
        "Changes the database keeps because not every node following them has confirmed them."
    );
    describe_gauge!(
        "sluice_changes_retained_wal_bytes",
        Unit::Bytes,
        "WAL the node's PostgreSQL replication slot holds back (an unattended slot can fill the disk)."
    );
    describe_gauge!(
        "sluice_journal_replay_records",
        "Journal records replayed into the write-back buffers at open (0: nothing to replay)."
    );
    describe_gauge!(
        "sluice_journal_replay_buffer_seconds",
        Unit::Seconds,
        "Time the replay at open took to put the journal's records into the write-back buffers."
    );
    describe_gauge!(
        "sluice_journal_replay_flush_seconds",
        Unit::Seconds,
        "Time the flush after the replay at open took to store them (0 if it failed and was left to the flushers)."
    );
    describe_gauge!(
        "sluice_store_pool_max_connections",
        "Most connections the store's pool opens (PostgreSQL)."
    );
    describe_gauge!(
        "sluice_store_pool_open_connections",
        "Connections the store's pool holds open (PostgreSQL)."
    );
    describe_gauge!(
        "sluice_store_pool_idle_connections",
        "Open connections idle in the store's pool (PostgreSQL)."
    );
    describe_gauge!(
        "sluice_store_pool_waiting",
        "Callers waiting for a connection from the store's pool (PostgreSQL)."
    );
    describe_gauge!("sluice_cache_entries", "Entries in the cache.");
    describe_gauge!("sluice_cache_bytes", Unit::Bytes, "Bytes the cache holds.");
    describe_gauge!(
        "sluice_cache_capacity_bytes",
        Unit::Bytes,
        "The cache's capacity."
    );
    describe_gauge!(
        "sluice_journal_bytes",
        Unit::Bytes,
        "Bytes in the journal's segments."
    );
    describe_gauge!("sluice_journal_segments", "Journal segment files.");
    describe_counter!(
        "sluice_journal_appends_total",
        "Records appended to the journal."
    );
    describe_counter!("sluice_journal_fsyncs_total", "fsyncs of the journal.");
    describe_gauge!(
        "sluice_journal_failed",
        "1 when a journal write or fsync failed: write-back writes are refused until a restart."
    );
    describe_gauge!(
        "sluice_keyspace_buffered_entries",
        "Write-back writes acknowledged and not yet stored in the database."
    );
    describe_gauge!(
        "sluice_keyspace_buffered_bytes",
        Unit::Bytes,
        "Bytes of write-back writes not yet stored."
    );
    describe_gauge!(
        "sluice_keyspace_oldest_unflushed_age_seconds",
        Unit::Seconds,
        "Age of the oldest write-back write not yet stored: how far the database is behind."
    );
    describe_gauge!(
        "sluice_keyspace_dead_letters",
        "Writes the database refused for good, parked for SLUICE.DEADLETTERS."
    );
    describe_gauge!(
        "sluice_keyspace_last_flush_duration_seconds",
        Unit::Seconds,
        "Duration of the last flush transaction."
    );
    describe_counter!(
        "sluice_keyspace_writes_total",
        "Client writes the keyspace took, including ones that then failed."
    );
    describe_counter!(
        "sluice_keyspace_flushes_total",
        "Flush transactions committed."
    );
    describe_counter!(
        "sluice_keyspace_rows_stored_total",
        "Rows stored by flushes."
    );
    describe_counter!(
        "sluice_keyspace_store_errors_total",
        "Store errors seen by flushes."
    );
    describe_counter!(
        "sluice_keyspace_flush_retries_total",
        "Flush retries after an error."
    );
    describe_counter!(
        "sluice_keyspace_read_hits_total",
        "Reads answered from the write-back buffer or the cache."
    );
    describe_counter!(
        "sluice_keyspace_read_misses_total",
        "Reads that asked the database."
    );
}
