//! `/metrics`: the node's counters in the Prometheus text format, read at scrape time.
//!
//! Every figure here is one the engine and the server keep anyway (INFO shows the same), so
//! the scrape costs the request path nothing: no per-command recording, no extra atomics. A
//! fresh recorder per scrape renders them, so a keyspace that is gone leaves no stale series.

use std::sync::atomic::Ordering;

use metrics::{counter, describe_counter, describe_gauge, gauge, Unit};
use metrics_exporter_prometheus::PrometheusBuilder;

use crate::state::Shared;

/// The text format body of one scrape.
pub(super) fn render(shared: &Shared) -> String {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || record(shared));
    handle.render()
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
