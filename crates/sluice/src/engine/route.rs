//! Routing: which keyspace owns a key, and which lock stripe guards it.

use std::sync::Arc;

use bytes::Bytes;

use super::keyspace::Keyspace;
use super::locks::Stripe;
use super::Engine;
use crate::model::DbKey;

/// Where a key lives.
pub(crate) struct Route<'a> {
    pub ks: &'a Arc<Keyspace>,
    pub stripe: Stripe,
    pub key: DbKey,
    /// Whether a write here fails the transactions WATCHing the key: every write but a change
    /// to a stream's consumer groups, which Redis lets pass a WATCH.
    pub wakes_watchers: bool,
}

impl Route<'_> {
    /// Whether a collection made at a key that reads as absent replaces whatever rows the key
    /// has: on the built-in table an expired, not yet purged value may still have member rows,
    /// which must not come back. A mapped table has no expiry, so a key that reads as absent
    /// has no rows Sluice knows of, and rows another program inserts meanwhile are not Sluice's
    /// to delete: the write stores its members only.
    pub(crate) fn fresh_key_replaces(&self) -> bool {
        self.ks.is_builtin()
    }
}

impl Engine {
    /// The keyspace owning `key` in `db`. Mapped keyspaces live in database 0 only.
    ///
    /// Takes the key by value: the route keeps it, and a caller that owns it (a command that
    /// moved it out of its request) pays no reference count for it.
    pub(crate) fn route(&self, db: u8, key: Bytes) -> Route<'_> {
        Route {
            ks: self.keyspace_of(db, &key),
            stripe: self.locks.stripe(db, &key),
            key: DbKey { db, key },
            wakes_watchers: true,
        }
    }

    /// The keyspace owning `key` in `db`, for callers that need nothing else of the route.
    pub(crate) fn keyspace_of(&self, db: u8, key: &[u8]) -> &Arc<Keyspace> {
        if db == 0 {
            self.keyspaces.iter().find(|ks| {
                ks.template
                    .as_ref()
                    .is_some_and(|t| t.capture(key).is_some())
            })
        } else {
            None
        }
        .unwrap_or_else(|| self.builtin())
    }

    /// The built-in keyspace (always last).
    pub(crate) fn builtin(&self) -> &Arc<Keyspace> {
        self.keyspaces
            .last()
            .expect("the engine always has the built-in keyspace")
    }
}
