//! Key events no command caused (expiry, eviction of a cached copy, a row changed in the
//! database), reported to the front end's [`KeyEventSink`] for keyspace notifications.
//! Without a sink, or while it wants none, reporting costs one lock-free check.

use std::sync::Arc;

use crate::model::events::{KeyEvent, KeyEventSink};
use crate::tiers::cache::EvictionListener;

use super::Engine;

/// The cache's evictions, told to the sink as [`KeyEvent::Evicted`].
struct Evictions(Arc<dyn KeyEventSink>);

impl EvictionListener for Evictions {
    fn wanted(&self) -> bool {
        self.0.wants(KeyEvent::Evicted)
    }

    fn evicted(&self, db: u8, key: &[u8]) {
        self.0.key_event(db, key, KeyEvent::Evicted);
    }
}

/// The installed sink, if any.
#[derive(Default)]
pub(crate) struct KeyEvents {
    sink: std::sync::OnceLock<Arc<dyn KeyEventSink>>,
}

impl Engine {
    /// Installs `sink`; false if one was installed already. Cache evictions reach it too when
    /// the cache can report them.
    pub(crate) fn set_key_event_sink(&self, sink: Arc<dyn KeyEventSink>) -> bool {
        if self.key_events.sink.set(sink.clone()).is_err() {
            return false;
        }
        self.cache.on_evict(Arc::new(Evictions(sink)));
        true
    }

    /// The sink, if it wants events like `event`: for a task that reports later.
    pub(crate) fn key_event_sink(&self, event: KeyEvent) -> Option<Arc<dyn KeyEventSink>> {
        self.key_events
            .sink
            .get()
            .filter(|s| s.wants(event))
            .cloned()
    }

    /// Reports `event` on `key` of `db`, if it is wanted.
    pub(crate) fn key_event(&self, db: u8, key: &[u8], event: KeyEvent) {
        if let Some(sink) = self.key_events.sink.get() {
            if sink.wants(event) {
                sink.key_event(db, key, event);
            }
        }
    }
}
