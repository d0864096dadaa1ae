//! Taking over a dead node's journal (`[cluster] adopt_orphans`).
//!
//! A node that dies with its disk leaves its acknowledged write-back writes in its journal
//! subject on JetStream. Every node scans, every half `node_lease`, for journals that hold
//! records while nobody holds their node name (the dead node's claim ran out). It then opens
//! a second engine under the dead node's name, exactly as that node would restart on an empty
//! disk: claiming the name (JetStream's compare-and-set, so of several nodes scanning only one
//! takes it), replaying the records into that engine's buffers, flushing them to the shared
//! store with the usual retries, bisection and dead letters, checkpointing (which purges the
//! stored records) and releasing the name. Nothing new is learned by the adopting node's own
//! engine: a takeover is a restart of the dead node, done by a live one.
//!
//! What it does not give: an order between two nodes' writes of one key. The dead node's
//! writes are stored when it is taken over, as they would be at its restart, so if another
//! node wrote the same key and flushed it meanwhile, the dead node's older value lands last.
//! Nodes sharing keys need versioned stores (issue 16, item 2).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::backoff::Backoff;
use super::open::SluiceBuilder;
use super::Engine;
use crate::config::{Config, StoreConfig};
use crate::engine::deadletter::{DeadLetter, DeadLetterSelector};
use crate::error::{JournalError, OpenError};
use crate::metrics::EngineMetrics;
use crate::model::events::KeyEvent;
use crate::model::{DbKey, Kind};
use crate::tiers::journal::jetstream::OrphanScanner;
use futures_util::StreamExt as _;

use super::ReplayedKeys;

/// Starts the scan when `[cluster] adopt_orphans` is on and the store is one every node
/// shares; says at start why it is off otherwise.
pub(super) fn start(engine: &Arc<Engine>) {
    let Some(cluster) = engine.config.cluster.as_ref() else {
        return;
    };
    if !cluster.adopt_orphans {
        info!("[cluster] adopt_orphans = false: a dead node's writes wait until a node with its name starts");
        return;
    }
    if engine.config.store_url().starts_with("sqlite:") {
        info!("[cluster] adopt_orphans is off with a SQLite store: each node's database is its own, so a dead node's writes wait until a node with its name starts");
        return;
    }
    let task = tokio::spawn(scan(
        Arc::downgrade(engine),
        engine.config.clone(),
        engine.metrics.clone(),
        engine.shutdown_tx.subscribe(),
    ));
    engine.tasks.lock().push(task);
}

/// Scans until shutdown; a takeover in progress at shutdown is dropped (the dead node's
/// records stay in its journal, and its name is free again within `node_lease`).
async fn scan(
    engine: Weak<Engine>,
    config: Config,
    metrics: Arc<EngineMetrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(cluster) = config.cluster.clone() else {
        return;
    };
    let period = (cluster.node_lease / 2).max(Duration::from_secs(1));
    let mut scanner: Option<OrphanScanner> = None;
    let mut retries = TakeoverRetries::new(period);
    loop {
        // Jittered, so that nodes started together do not all scan at once.
        let pause = period.mul_f64(rand::thread_rng().gen_range(0.75..1.25));
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        if *shutdown.borrow() {
            return;
        }
        if scanner.is_none() {
            match OrphanScanner::connect(&cluster).await {
                Ok(s) => scanner = Some(s),
                Err(e) => {
                    warn!("cannot look for dead nodes' journals (retrying): {e}");
                    continue;
                }
            }
        }
        let Some(found) = scanner.as_ref() else {
            continue;
        };
        let orphans = match found.orphans().await {
            Ok(orphans) => orphans,
            Err(e) => {
                warn!("cannot look for dead nodes' journals (retrying): {e}");
                continue;
            }
        };
        retries.forget_stale(Instant::now());
        for node in orphans {
            if !retries.may_try(&node, Instant::now()) {
                continue;
            }
            let outcome = tokio::select! {
                _ = shutdown.changed() => return,
                outcome = adopt(&engine, &config, &node) => outcome,
            };
            match outcome {
                Ok(Takeover::Stored(records)) => {
                    metrics.adoptions.fetch_add(1, Ordering::Relaxed);
                    metrics
                        .adopted_records
                        .fetch_add(records, Ordering::Relaxed);
                }
                Ok(Takeover::Empty) => {
                    info!(node = %node, "the dead node's journal held only stored records: purged, nothing to replay");
                }
                Ok(Takeover::NameTaken) => {
                    info!(node = %node, "another process holds the dead node's name now (it came back, or another node took its journal over first)");
                }
                Err(e) => {
                    metrics.adoption_failures.fetch_add(1, Ordering::Relaxed);
                    let pause = retries.failed(&node, Instant::now());
                    warn!(node = %node, "taking over the dead node's journal failed (tried again in {pause:?}): {e}");
                    continue;
                }
            }
            retries.succeeded(&node);
        }
    }
}

/// When each dead node's journal may be taken over again after failed tries. A failed takeover
/// is tried again only after a growing pause (from the scan period, doubling with jitter, at
/// most [`TAKEOVER_RETRY_MAX`]): each try replays (and may store) its records again, and a
/// store that refuses them would otherwise be hit every scan. Times are passed in, so the
/// schedule is tested without waiting.
struct TakeoverRetries {
    period: Duration,
    /// Per node that failed and was not taken over since: its backoff and when it may be
    /// tried again.
    failing: HashMap<String, (Backoff, Instant)>,
}

impl TakeoverRetries {
    fn new(period: Duration) -> TakeoverRetries {
        TakeoverRetries {
            period,
            failing: HashMap::new(),
        }
    }

    /// Forgets the nodes whose next try is twice the longest pause past: they came back, or
    /// another node stored their journal. A node listed again before that keeps its pause.
    fn forget_stale(&mut self, now: Instant) {
        self.failing.retain(|_, (_, next_try)| {
            now.saturating_duration_since(*next_try) < TAKEOVER_RETRY_MAX * 2
        });
    }

    /// Whether `node`'s journal may be tried now.
    fn may_try(&self, node: &str, now: Instant) -> bool {
        self.failing
            .get(node)
            .is_none_or(|(_, next_try)| now >= *next_try)
    }

    /// Records a failed try at `now`; returns the pause before the next.
    fn failed(&mut self, node: &str, now: Instant) -> Duration {
        let (backoff, next_try) = self
            .failing
            .entry(node.to_string())
            .or_insert_with(|| (Backoff::new(self.period, TAKEOVER_RETRY_MAX), now));
        let pause = backoff.fail();
        *next_try = now + pause;
        pause
    }

    /// `node`'s journal was taken over (or found taken, or empty): no pause for it any more.
    fn succeeded(&mut self, node: &str) {
        self.failing.remove(node);
    }
}

/// Longest pause before a failed takeover is tried again.
const TAKEOVER_RETRY_MAX: Duration = Duration::from_secs(300);

/// What taking one journal over came to.
enum Takeover {
    /// Its records were replayed, stored and purged.
    Stored(u64),
    /// It held nothing past its checkpoint (what was left is purged now).
    Empty,
    /// Another process held the name: nothing was done.
    NameTaken,
}

/// Opens an engine as `node` (claiming its name at once or not at all, replaying and flushing
/// its journal), drains it and releases the name.
async fn adopt(engine: &Weak<Engine>, own: &Config, node: &str) -> Result<Takeover, String> {
    let mut config = own.clone();
    // The same store (the default SQLite path would follow data_dir); a directory of its own
    // for the dead node's dead letters; no change feed (the main engine has its own).
    config.store = Some(StoreConfig {
        url: own.store_url(),
    });
    config.data_dir = own.data_dir.join("adopted").join(node);
    config.changes.enabled = false;
    if let Some(cluster) = config.cluster.as_mut() {
        cluster.node_name = node.to_string();
    }
    info!(
        node,
        "a dead node's journal holds records and nobody holds its name: taking it over"
    );
    let replayed: ReplayedKeys = Arc::default();
    let adopted = match SluiceBuilder::new(config)
        .adopting(replayed.clone())
        .open_engine()
        .await
    {
        Ok(adopted) => adopted,
        Err(OpenError::Journal(JournalError::NodeNameInUse { .. })) => {
            return Ok(Takeover::NameTaken)
        }
        Err(e) => {
            // The replay may have stored some records before the open failed.
            refresh_own_copies(engine, &replayed).await;
            return Err(e.to_string());
        }
    };
    let records = adopted.metrics.replay_records.load(Ordering::Relaxed);
    let report = adopted.shutdown(adopted.config.shutdown_timeout).await;
    // Whatever it stored (all of it, or the part flushed before a failure) is news to this
    // node's own cache.
    refresh_own_copies(engine, &replayed).await;
    // Whatever happens next, the letters go where they are seen: the drain's checkpoint may
    // already have purged their records, so no later takeover would bring them back.
    let letters_moved = move_dead_letters(engine, &adopted, node);
    // A checkpoint, purge or release that failed leaves the records for the next look.
    if let Some(e) = adopted.journal.health().error() {
        return Err(format!("its journal failed while it was drained: {e}"));
    }
    if report.unflushed > 0 {
        return Err(format!(
            "{} of its writes could not be stored within shutdown_timeout; they stay in its journal",
            report.unflushed
        ));
    }
    // Done with: the takeover's directory holds nothing anyone needs once its dead letters
    // are this node's (kept, with the letters, when they could not be moved).
    let dir = adopted.config.data_dir.clone();
    drop(adopted);
    if letters_moved && dir.parent() == Some(own.data_dir.join("adopted").as_path()) {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            warn!(node, dir = %dir.display(), "cannot remove the finished takeover's directory: {e}");
        }
    }
    if records == 0 {
        return Ok(Takeover::Empty);
    }
    info!(
        node,
        records, "the dead node's journal is stored and purged, and its name released"
    );
    Ok(Takeover::Stored(records))
}

/// Refreshes this node's cached copies of the keys a takeover stored, as change capture
/// refreshes a row another program changed (version moved, copy replaced by the database's
/// value or removed; a key this node buffered a write for keeps only its buffer): this node
/// did not make those writes, so a copy it cached before them would otherwise stay stale
/// until its TTL. Each key is also a changed key to this node's clients: a WATCH of it
/// refuses its EXEC (even when the value stored equals the copy: a write was made), and a
/// `changed` keyspace notification goes out once the cache holds the new state. Other nodes'
/// copies are refreshed only by change capture. Refreshes run `REFRESHES_IN_FLIGHT` at a
/// time (each reads its row only when this node holds a copy).
async fn refresh_own_copies(engine: &Weak<Engine>, replayed: &ReplayedKeys) {
    let mut keys: Vec<(DbKey, Option<Kind>)> = std::mem::take(&mut *replayed.lock());
    let Some(engine) = engine.upgrade() else {
        return;
    };
    // The newest write of a key is the last one listed for it: keep that one's type.
    keys.reverse();
    keys.sort_by(|a, b| (a.0.db, &a.0.key).cmp(&(b.0.db, &b.0.key)));
    keys.dedup_by(|a, b| a.0 == b.0);
    futures_util::stream::iter(keys)
        .for_each_concurrent(REFRESHES_IN_FLIGHT, |(key, kind)| {
            let engine = &engine;
            async move {
                let route = engine.route(key.db, key.key);
                engine.watches.touch(&route.key);
                engine.refresh_changed(&route, None).await;
                let kind = kind.or_else(|| route.ks.holds_only()).unwrap_or_default();
                engine.key_event(route.key.db, &route.key.key, KeyEvent::Changed(kind));
            }
        })
        .await;
}

/// Most refreshes of the adopting node's copies at once (as change capture's).
const REFRESHES_IN_FLIGHT: usize = 32;

/// Moves the dead letters of a takeover's engine into this node's registry, where INFO,
/// `/status`, SLUICE.DEADLETTERS and the retry and drop actions see them, instead of a
/// directory nobody looks at. Their sequence numbers are set to 0: they are older than
/// anything this node writes, so a later write of the key stored here supersedes them, and a
/// retry never brings one back over a newer buffered write. Left where they are (and logged)
/// if they cannot be moved.
fn move_dead_letters(engine: &Weak<Engine>, adopted: &Engine, node: &str) -> bool {
    let letters = match adopted.dead_letters.list(None) {
        Ok(letters) if letters.is_empty() => return true,
        Ok(letters) => letters,
        Err(e) => {
            error!(
                node,
                "cannot read the dead letters of the taken-over journal: {e}"
            );
            return false;
        }
    };
    let Some(engine) = engine.upgrade() else {
        return false;
    };
    let letters: Vec<DeadLetter> = letters
        .into_iter()
        .map(|mut letter| {
            letter.seq = 0;
            letter
        })
        .collect();
    match engine.dead_letters.park(&letters) {
        Ok(()) => {
            error!(
                node,
                dead_letters = letters.len(),
                "the store refused some of the dead node's writes: they are dead letters of this node now (SLUICE.DEADLETTERS)"
            );
            match adopted.dead_letters.take(&DeadLetterSelector::All) {
                Ok(_) => true,
                Err(e) => {
                    warn!(node, "the dead node's dead letters were copied here but not removed from its takeover directory: {e}");
                    false
                }
            }
        }
        Err(e) => {
            error!(
                node,
                dead_letters = letters.len(),
                dir = %engine.config.data_dir.join("adopted").join(node).display(),
                "the store refused some of the dead node's writes, and they could not be moved into this node's dead letters ({e}); they stay in that directory"
            );
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_takeover_waits_a_doubling_jittered_pause_up_to_the_cap() {
        let period = Duration::from_secs(2);
        let mut retries = TakeoverRetries::new(period);
        let mut now = Instant::now();
        assert!(
            retries.may_try("n1", now),
            "a node never tried is tried at once"
        );
        let mut expected = period;
        for _ in 0..12 {
            let pause = retries.failed("n1", now);
            // Backoff's jitter: 0.75 to 1.25 of the step, never past the cap.
            assert!(
                pause >= expected.mul_f64(0.75)
                    && pause <= expected.mul_f64(1.25).min(TAKEOVER_RETRY_MAX),
                "pause {pause:?} for a step of {expected:?}"
            );
            assert!(!retries.may_try("n1", now), "tried again at once");
            assert!(!retries.may_try("n1", now + pause - Duration::from_millis(1)));
            assert!(
                retries.may_try("n2", now),
                "another node's pause is its own"
            );
            now += pause;
            assert!(
                retries.may_try("n1", now),
                "tried again once the pause is over"
            );
            expected = (expected * 2).min(TAKEOVER_RETRY_MAX);
        }
        assert_eq!(expected, TAKEOVER_RETRY_MAX, "the pause reached its cap");
    }

    #[test]
    fn a_takeover_that_succeeds_or_is_long_forgotten_starts_again_from_the_period() {
        let period = Duration::from_secs(2);
        let mut retries = TakeoverRetries::new(period);
        let now = Instant::now();
        for _ in 0..5 {
            retries.failed("n1", now);
        }
        retries.succeeded("n1");
        assert!(retries.may_try("n1", now));
        assert!(retries.failed("n1", now) <= period.mul_f64(1.25));

        for _ in 0..5 {
            retries.failed("n2", now);
        }
        // Its next try is within a minute of `now`: still remembered five minutes on.
        retries.forget_stale(now + TAKEOVER_RETRY_MAX);
        assert!(
            retries.failed("n2", now) > period.mul_f64(1.25),
            "a node listed again within twice the longest pause keeps its pause"
        );
        retries.forget_stale(now + TAKEOVER_RETRY_MAX * 5);
        assert!(
            retries.may_try("n2", now),
            "forgotten after twice the longest pause"
        );
        assert!(retries.failed("n2", now) <= period.mul_f64(1.25));
    }
}
