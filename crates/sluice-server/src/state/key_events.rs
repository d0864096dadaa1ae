//! Keyspace notifications (`notify-keyspace-events`): what a command changed, published on
//! `__keyspace@<db>__:<key>` (the event as message) and `__keyevent@<db>__:<event>` (the key).
//!
//! A command stages its events in its session ([`Session::stage_key_event`]); `dispatch`
//! publishes them when the command it ran is done. Inside EXEC or a script they wait for
//! the transaction: its commit publishes them, a restart or an abort drops them, so a
//! subscriber never hears of a write that was not applied.

use bytes::Bytes;

use super::keyspace_events::{KEYEVENT, KEYSPACE};
use super::{Session, Shared};

/// One staged event.
#[derive(Debug, Clone)]
pub struct KeyEvent {
    db: u8,
    /// Its class: for a blocked client, the key's type after the change.
    class: u32,
    event: &'static str,
    key: Bytes,
    /// Published on the notification channels (its class is on); otherwise the event is
    /// staged only to wake the clients blocked on the key.
    notify: bool,
}

impl Session {
    /// Stages event `event` of class `class` on `key` in the selected database, if the class
    /// is on (one relaxed load when it is not).
    #[inline]
    pub fn stage_key_event(
        &mut self,
        shared: &Shared,
        class: u32,
        event: &'static str,
        key: &Bytes,
    ) {
        self.stage_key_event_in(shared, self.db, class, event, key);
    }

    /// [`Session::stage_key_event`] for a key of database `db` (COPY ... DB).
    pub fn stage_key_event_in(
        &mut self,
        shared: &Shared,
        db: u8,
        class: u32,
        event: &'static str,
        key: &Bytes,
    ) {
        // A changed key is also what wakes the clients blocked on it (BZPOPMIN ...), whether
        // or not notifications are on.
        let notify = shared.settings.notifies(class);
        if notify || shared.blocking.any_blocked() {
            self.key_events.push(KeyEvent {
                db,
                class,
                event,
                key: key.clone(),
                notify,
            });
        }
    }

    /// Drops the events staged by a transaction that did not commit.
    pub fn drop_key_events(&mut self) {
        self.key_events.clear();
    }
}

impl Shared {
    /// Publishes the events `session` staged, in order, and wakes the clients blocked on their
    /// keys.
    pub fn publish_key_events(&self, session: &mut Session) {
        let events = std::mem::take(&mut session.key_events);
        for event in &events {
            if event.notify {
                self.publish_key_event(event.db, event.event, &event.key, true);
            }
        }
        // Blocked clients are woken once every event of the command, EXEC or script is out,
        // as Redis serves them after it: a woken pop's events never come between them.
        if self.blocking.any_blocked() {
            for event in &events {
                // Redis wakes no blocked client for a change that adds nothing and leaves the
                // key: XSETID (a stream's last ID moved), XDEL, XTRIM, EXPIRE, PERSIST, or a
                // group created, moved or given consumers. A woken XREAD would be answered an
                // empty read, a woken XREADGROUP entries the group was moved back over: only
                // an XADD, a push, a deleted or replaced key or a destroyed group (answered
                // NOGROUP) ends a wait.
                if matches!(
                    event.event,
                    "xsetid" | "xdel" | "xtrim" | "expire" | "persist"
                ) || (event.event.starts_with("xgroup-") && event.event != "xgroup-destroy")
                {
                    continue;
                }
                let kind = match event.class {
                    super::keyspace_events::LIST => Some(super::BlockKind::List),
                    super::keyspace_events::ZSET => Some(super::BlockKind::ZSet),
                    super::keyspace_events::STREAM => Some(super::BlockKind::Stream),
                    _ => None,
                };
                self.blocking.signal(event.db, &event.key, kind);
            }
        }
    }

    /// Publishes one event, on the channels `notify-keyspace-events` asks for (the event is
    /// the engine's, or a staged command's whose class was checked when it was staged).
    /// `relay`: a command's event goes to every node's subscribers, as the command's PUBLISH
    /// would; an engine event (expiry, eviction, change capture) is one every node observes
    /// for itself, so it stays here and is never delivered twice.
    pub fn publish_key_event(&self, db: u8, event: &str, key: &[u8], relay: bool) {
        let relay = relay && self.pubsub.relays();
        // No channel or pattern subscriber anywhere: no channel name is built.
        if !relay && !self.pubsub.has_listeners() {
            return;
        }
        let publish = |channel: Bytes, payload: Bytes| {
            if relay {
                self.pubsub.publish(&channel, &payload);
            } else {
                self.pubsub.publish_here(&channel, &payload);
            }
        };
        let flags = self.settings.notify_flags();
        if flags & KEYSPACE != 0 {
            let channel = [format!("__keyspace@{db}__:").as_bytes(), key].concat();
            publish(
                Bytes::from(channel),
                Bytes::copy_from_slice(event.as_bytes()),
            );
        }
        if flags & KEYEVENT != 0 {
            let channel = format!("__keyevent@{db}__:{event}");
            publish(Bytes::from(channel), Bytes::copy_from_slice(key));
        }
    }
}

/// The engine's key events (expiry, eviction of a cached copy, a row changed in the
/// database) published as keyspace notifications: `expired` (class `x`), `evicted` (`e`),
/// and Sluice's own `changed` (the key's type class, `$` or `h`). Holds the server state
/// weakly: the engine that calls it lives inside it.
pub(super) struct EngineKeyEvents(pub(super) std::sync::Weak<Shared>);

fn class_and_name(event: sluice::KeyEvent) -> (u32, &'static str) {
    use super::keyspace_events::{EVICTED, EXPIRED, HASH, LIST, SET, STREAM, STRING, ZSET};
    match event {
        sluice::KeyEvent::Expired => (EXPIRED, "expired"),
        sluice::KeyEvent::Evicted => (EVICTED, "evicted"),
        sluice::KeyEvent::Changed(sluice::Kind::Hash) => (HASH, "changed"),
        sluice::KeyEvent::Changed(sluice::Kind::String) => (STRING, "changed"),
        sluice::KeyEvent::Changed(sluice::Kind::Set) => (SET, "changed"),
        sluice::KeyEvent::Changed(sluice::Kind::ZSet) => (ZSET, "changed"),
        sluice::KeyEvent::Changed(sluice::Kind::List) => (LIST, "changed"),
        sluice::KeyEvent::Changed(sluice::Kind::Stream) => (STREAM, "changed"),
    }
}

impl sluice::KeyEventSink for EngineKeyEvents {
    fn wants(&self, event: sluice::KeyEvent) -> bool {
        let (class, _) = class_and_name(event);
        self.0.upgrade().is_some_and(|shared| {
            shared.settings.notifies(class)
                || (event == sluice::KeyEvent::Expired && shared.blocking.any_blocked())
        })
    }

    /// Publishes the event if its class is wanted; an expiry also wakes the clients blocked on
    /// the key, as a deletion does (a blocked XREADGROUP answers that its key is gone).
    fn key_event(&self, db: u8, key: &[u8], event: sluice::KeyEvent) {
        let (class, name) = class_and_name(event);
        if let Some(shared) = self.0.upgrade() {
            if shared.settings.notifies(class) {
                shared.publish_key_event(db, name, key, false);
            }
            if event == sluice::KeyEvent::Expired && shared.blocking.any_blocked() {
                shared
                    .blocking
                    .signal(db, &Bytes::copy_from_slice(key), None);
            }
        }
    }
}
