//! What happens to a key without a client command asking for it: Redis's keyspace
//! notifications for those (`expired`, `evicted`) and Sluice's own (`changed`). The engine
//! reports them to a [`KeyEventSink`] the front end installs
//! ([`Sluice::set_key_event_sink`](crate::Sluice::set_key_event_sink)).

use super::Kind;

/// An event on a key that no command caused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyEvent {
    /// A built-in key reached its expiry and was deleted (by a read that found it expired,
    /// or by the reaper), as Redis's `expired`: once per deleted row.
    Expired,
    /// The cache dropped its copy to stay within its capacity. The key itself is still in
    /// the store (or the write-back buffer): only the copy went. Redis's `evicted`.
    Evicted,
    /// The database row behind a mapped key changed, as change capture saw it (any writer's
    /// commit, Sluice's own included). The key holds this type.
    Changed(Kind),
}

/// Where the engine reports [`KeyEvent`]s. Called on the engine's own tasks (eviction: on the
/// writer's thread, after the cache released its locks): it must not block.
pub trait KeyEventSink: Send + Sync + 'static {
    /// Whether events like `event` are wanted now; the engine builds nothing otherwise.
    fn wants(&self, event: KeyEvent) -> bool;
    /// `event` happened to `key` in database `db`.
    fn key_event(&self, db: u8, key: &[u8], event: KeyEvent);
}
