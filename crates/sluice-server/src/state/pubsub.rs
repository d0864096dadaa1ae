//! Pub/sub: who listens to which channel, pattern and shard channel, and each subscriber's
//! mailbox.
//!
//! A publisher never writes to a subscriber's socket: it appends the message to the
//! subscriber's [`Mailbox`] (a few reference counts: channel and payload are shared `Bytes`)
//! and wakes its connection, which encodes the messages for its own protocol (RESP2 arrays,
//! RESP3 pushes) between its replies. A mailbox that grows past the `pubsub` class of
//! `client-output-buffer-limit` (hard limit, or soft limit held for its seconds) closes its
//! client, as Redis does, so that one slow subscriber cannot hold the server's memory.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;
use tracing::warn;

use super::clients::ClientHandle;
use super::pubsub_relay::Relay;
use crate::frontend::Frame;
use crate::glob::glob_match;

/// The three namespaces of subscriptions, each with its own commands and replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// SUBSCRIBE / UNSUBSCRIBE / PUBLISH.
    Channel,
    /// PSUBSCRIBE / PUNSUBSCRIBE: glob patterns matched against PUBLISH's channel.
    Pattern,
    /// SSUBSCRIBE / SUNSUBSCRIBE / SPUBLISH (Redis 7 shard channels; one shard here).
    Shard,
}

impl Scope {
    /// The kind word of a subscription confirmation (`subscribe`, `psubscribe`, ...).
    pub fn subscribe_word(self) -> &'static str {
        match self {
            Scope::Channel => "subscribe",
            Scope::Pattern => "psubscribe",
            Scope::Shard => "ssubscribe",
        }
    }

    /// The kind word of an unsubscription confirmation.
    pub fn unsubscribe_word(self) -> &'static str {
        match self {
            Scope::Channel => "unsubscribe",
            Scope::Pattern => "punsubscribe",
            Scope::Shard => "sunsubscribe",
        }
    }
}

/// The `pubsub` class of `client-output-buffer-limit`: bytes a subscriber may leave unread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimits {
    /// Past this many bytes the client is closed at once (0: no limit).
    pub hard: usize,
    /// Past this many bytes for longer than `soft_for`, the client is closed (0: no limit).
    pub soft: usize,
    /// How long the soft limit may be exceeded.
    pub soft_for: Duration,
}

impl Default for OutputLimits {
    /// Redis 7.0's default: `pubsub 32mb 8mb 60`.
    fn default() -> OutputLimits {
        OutputLimits {
            hard: 32 << 20,
            soft: 8 << 20,
            soft_for: Duration::from_secs(60),
        }
    }
}

/// The subscribers of one channel, pattern or shard channel, by client id.
type Subscribers = HashMap<u64, Arc<Mailbox>>;

/// Every subscription of the server.
pub struct PubSub {
    channels: RwLock<HashMap<Bytes, Subscribers>>,
    patterns: RwLock<HashMap<Bytes, Subscribers>>,
    shard_channels: RwLock<HashMap<Bytes, Subscribers>>,
    /// The `pubsub` class of `client-output-buffer-limit` (CONFIG SET changes it): hard, soft
    /// (bytes) and how long the soft one may be exceeded (ms), read on every delivery.
    limits: [AtomicU64; 3],
    /// Measures how long a mailbox has been over the soft limit.
    epoch: Instant,
    /// With `[cluster] relay_pubsub`: what is published here also goes to the other nodes.
    relay: OnceLock<Arc<Relay>>,
}

impl Default for PubSub {
    fn default() -> PubSub {
        PubSub::new(OutputLimits::default())
    }
}

impl PubSub {
    /// No subscriptions; mailboxes bounded by `limits`.
    pub fn new(limits: OutputLimits) -> PubSub {
        PubSub {
            channels: RwLock::default(),
            patterns: RwLock::default(),
            shard_channels: RwLock::default(),
            limits: [
                AtomicU64::new(limits.hard as u64),
                AtomicU64::new(limits.soft as u64),
                AtomicU64::new(limits.soft_for.as_millis() as u64),
            ],
            epoch: Instant::now(),
            relay: OnceLock::new(),
        }
    }

    /// Sends what is published here from now on to the other nodes too (once, at start).
    pub fn set_relay(&self, relay: Arc<Relay>) {
        let _ = self.relay.set(relay);
    }

    /// The relay to the other nodes, when there is one.
    pub fn relay(&self) -> Option<&Arc<Relay>> {
        self.relay.get()
    }

    /// The output limits in force for subscribers.
    pub fn limits(&self) -> OutputLimits {
        let [hard, soft, soft_ms] = &self.limits;
        OutputLimits {
            hard: usize::try_from(hard.load(Ordering::Relaxed)).unwrap_or(usize::MAX),
            soft: usize::try_from(soft.load(Ordering::Relaxed)).unwrap_or(usize::MAX),
            soft_for: Duration::from_millis(soft_ms.load(Ordering::Relaxed)),
        }
    }

    /// Sets the output limits (CONFIG SET `client-output-buffer-limit`), from the next message.
    pub fn set_limits(&self, limits: OutputLimits) {
        let [hard, soft, soft_ms] = &self.limits;
        hard.store(limits.hard as u64, Ordering::Relaxed);
        soft.store(limits.soft as u64, Ordering::Relaxed);
        soft_ms.store(limits.soft_for.as_millis() as u64, Ordering::Relaxed);
    }

    fn map(&self, scope: Scope) -> &RwLock<HashMap<Bytes, Subscribers>> {
        match scope {
            Scope::Channel => &self.channels,
            Scope::Pattern => &self.patterns,
            Scope::Shard => &self.shard_channels,
        }
    }

    fn add(&self, scope: Scope, name: &Bytes, mailbox: &Arc<Mailbox>) {
        self.map(scope)
            .write()
            .entry(name.clone())
            .or_default()
            .insert(mailbox.client, mailbox.clone());
    }

    fn remove(&self, scope: Scope, name: &[u8], client: u64) {
        let mut map = self.map(scope).write();
        if let Some(subscribers) = map.get_mut(name) {
            subscribers.remove(&client);
            if subscribers.is_empty() {
                map.remove(name);
            }
        }
    }

    /// PUBLISH: delivers `payload` to the subscribers of `channel` and of every pattern
    /// matching it, here and (through the relay) on the other nodes; the number of deliveries
    /// here (a client matched by two patterns counts twice, as in Redis; like Redis Cluster,
    /// other nodes' subscribers are not counted).
    pub fn publish(&self, channel: &Bytes, payload: &Bytes) -> usize {
        if let Some(relay) = self.relay.get() {
            relay.forward(Scope::Channel, channel, payload);
        }
        self.publish_here(channel, payload)
    }

    /// PUBLISH's delivery to this node's subscribers only: for events that every node
    /// observes for itself (an expiry, an eviction from its own cache, a change capture), and
    /// for messages the relay brings from another node.
    pub fn publish_here(&self, channel: &Bytes, payload: &Bytes) -> usize {
        let mut delivered = 0;
        if let Some(subscribers) = self.channels.read().get(channel) {
            for mailbox in subscribers.values() {
                mailbox.deliver(self, Message::plain(channel, payload));
                delivered += 1;
            }
        }
        let patterns = self.patterns.read();
        for (pattern, subscribers) in patterns.iter() {
            if !glob_match(pattern, channel) {
                continue;
            }
            for mailbox in subscribers.values() {
                mailbox.deliver(
                    self,
                    Message {
                        kind: MessageKind::Pattern(pattern.clone()),
                        channel: channel.clone(),
                        payload: payload.clone(),
                    },
                );
                delivered += 1;
            }
        }
        delivered
    }

    /// SPUBLISH: delivers `payload` to the subscribers of shard channel `channel`, here and
    /// on the other nodes; the number of deliveries here.
    pub fn spublish(&self, channel: &Bytes, payload: &Bytes) -> usize {
        if let Some(relay) = self.relay.get() {
            relay.forward(Scope::Shard, channel, payload);
        }
        self.spublish_here(channel, payload)
    }

    /// SPUBLISH's delivery to this node's subscribers only.
    pub fn spublish_here(&self, channel: &Bytes, payload: &Bytes) -> usize {
        let shard = self.shard_channels.read();
        let Some(subscribers) = shard.get(channel) else {
            return 0;
        };
        for mailbox in subscribers.values() {
            mailbox.deliver(
                self,
                Message {
                    kind: MessageKind::Shard,
                    channel: channel.clone(),
                    payload: payload.clone(),
                },
            );
        }
        subscribers.len()
    }

    /// Whether anyone listens here: keyspace notifications are built only then (or when the
    /// relay may have listeners elsewhere, [`PubSub::relays`]).
    pub fn has_listeners(&self) -> bool {
        !self.channels.read().is_empty() || !self.patterns.read().is_empty()
    }

    /// Whether what is published here also goes to other nodes.
    pub fn relays(&self) -> bool {
        self.relay.get().is_some()
    }

    /// PUBSUB CHANNELS / SHARDCHANNELS: the channels with a subscriber, matching `pattern`.
    pub fn active(&self, scope: Scope, pattern: Option<&[u8]>) -> Vec<Bytes> {
        self.map(scope)
            .read()
            .keys()
            .filter(|name| pattern.is_none_or(|p| glob_match(p, name)))
            .cloned()
            .collect()
    }

    /// PUBSUB NUMSUB / SHARDNUMSUB: how many clients subscribe to `channel`.
    pub fn subscribers(&self, scope: Scope, channel: &[u8]) -> usize {
        self.map(scope).read().get(channel).map_or(0, HashMap::len)
    }

    /// PUBSUB NUMPAT: how many distinct patterns have a subscriber.
    pub fn patterns(&self) -> usize {
        self.patterns.read().len()
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }
}

/// What a published message is, for its reply shape.
#[derive(Debug, Clone)]
enum MessageKind {
    /// `message channel payload`.
    Plain,
    /// `pmessage pattern channel payload`.
    Pattern(Bytes),
    /// `smessage channel payload`.
    Shard,
}

/// A message waiting in a mailbox.
#[derive(Debug, Clone)]
struct Message {
    kind: MessageKind,
    channel: Bytes,
    payload: Bytes,
}

impl Message {
    fn plain(channel: &Bytes, payload: &Bytes) -> Message {
        Message {
            kind: MessageKind::Plain,
            channel: channel.clone(),
            payload: payload.clone(),
        }
    }

    /// What it costs its subscriber's output buffer, as Redis would count the encoded reply.
    fn size(&self) -> usize {
        let pattern = match &self.kind {
            MessageKind::Pattern(p) => p.len() + 16,
            _ => 0,
        };
        self.channel.len() + self.payload.len() + pattern + 40
    }

    fn frame(self) -> Frame {
        match self.kind {
            MessageKind::Plain => Frame::Push(vec![
                Frame::Bulk(Bytes::from_static(b"message")),
                Frame::Bulk(self.channel),
                Frame::Bulk(self.payload),
            ]),
            MessageKind::Pattern(pattern) => Frame::Push(vec![
                Frame::Bulk(Bytes::from_static(b"pmessage")),
                Frame::Bulk(pattern),
                Frame::Bulk(self.channel),
                Frame::Bulk(self.payload),
            ]),
            MessageKind::Shard => Frame::Push(vec![
                Frame::Bulk(Bytes::from_static(b"smessage")),
                Frame::Bulk(self.channel),
                Frame::Bulk(self.payload),
            ]),
        }
    }
}

/// One subscriber's messages not yet encoded into its replies.
pub struct Mailbox {
    client: u64,
    queue: Mutex<VecDeque<Message>>,
    /// Bytes waiting (queued here, or encoded and not yet written: see [`Mailbox::drain`]).
    waiting: AtomicUsize,
    /// When the soft limit was first exceeded (ms since [`PubSub`]'s epoch; 0: it is not).
    over_soft_since: AtomicU64,
    /// Set once the output limit closed the client: nothing more is queued.
    closed: AtomicBool,
    ready: Notify,
    handle: Arc<ClientHandle>,
}

impl Mailbox {
    fn new(client: u64, handle: Arc<ClientHandle>) -> Mailbox {
        Mailbox {
            client,
            queue: Mutex::default(),
            waiting: AtomicUsize::new(0),
            over_soft_since: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            ready: Notify::new(),
            handle,
        }
    }

    fn deliver(&self, hub: &PubSub, message: Message) {
        if self.closed.load(Ordering::Relaxed) {
            return;
        }
        let size = message.size();
        let waiting = self.waiting.fetch_add(size, Ordering::Relaxed) + size;
        let limits = hub.limits();
        if limits.hard > 0 && waiting > limits.hard {
            return self.overflow(waiting, "hard");
        }
        if limits.soft > 0 && waiting > limits.soft {
            let now = hub.now_ms();
            let since = self.over_soft_since.load(Ordering::Relaxed);
            if since == 0 {
                self.over_soft_since.store(now, Ordering::Relaxed);
            } else if now - since > limits.soft_for.as_millis() as u64 {
                return self.overflow(waiting, "soft");
            }
        } else {
            self.over_soft_since.store(0, Ordering::Relaxed);
        }
        self.queue.lock().push_back(message);
        self.ready.notify_one();
    }

    /// Closes a subscriber that does not keep up, dropping what it has not read, as Redis's
    /// `closeClientOnOutputBufferLimitReached` does.
    #[cold]
    fn overflow(&self, waiting: usize, which: &str) {
        if self.closed.swap(true, Ordering::Relaxed) {
            return;
        }
        warn!(
            client = self.client,
            bytes = waiting,
            "closing a pub/sub client over its {which} client-output-buffer-limit: it does not read its messages fast enough"
        );
        self.queue.lock().clear();
        self.handle.kill();
    }

    /// Encodes every waiting message into `out` for protocol `proto`, oldest first. Their
    /// bytes stay counted until [`Mailbox::written`]: a client that does not read what is
    /// written to it is still over its limit.
    pub fn drain(&self, proto: u8, out: &mut BytesMut) -> usize {
        let taken = std::mem::take(&mut *self.queue.lock());
        let mut bytes = 0;
        for message in taken {
            bytes += message.size();
            message.frame().encode(proto, out);
        }
        bytes
    }

    /// The bytes [`Mailbox::drain`] encoded were written to the socket.
    pub fn written(&self, bytes: usize) {
        if bytes > 0 {
            self.waiting.fetch_sub(bytes, Ordering::Relaxed);
        }
    }

    /// Waits until a message arrives (at once if one arrived since the last wait).
    pub async fn arrived(&self) {
        self.ready.notified().await;
    }

    /// Whether messages wait to be encoded.
    pub fn has_mail(&self) -> bool {
        !self.queue.lock().is_empty()
    }
}

/// One connection's subscriptions; dropping them unsubscribes it from everything.
pub struct Subscriptions {
    hub: Arc<PubSub>,
    mailbox: Arc<Mailbox>,
    channels: HashSet<Bytes>,
    patterns: HashSet<Bytes>,
    shard_channels: HashSet<Bytes>,
}

impl Subscriptions {
    /// No subscriptions yet for client `client`, whose `handle` closes it on overflow.
    pub fn new(hub: Arc<PubSub>, client: u64, handle: Arc<ClientHandle>) -> Subscriptions {
        Subscriptions {
            hub,
            mailbox: Arc::new(Mailbox::new(client, handle)),
            channels: HashSet::new(),
            patterns: HashSet::new(),
            shard_channels: HashSet::new(),
        }
    }

    fn set(&mut self, scope: Scope) -> &mut HashSet<Bytes> {
        match scope {
            Scope::Channel => &mut self.channels,
            Scope::Pattern => &mut self.patterns,
            Scope::Shard => &mut self.shard_channels,
        }
    }

    /// Subscribes to `name`; false if it already was.
    pub fn subscribe(&mut self, scope: Scope, name: &Bytes) -> bool {
        if !self.set(scope).insert(name.clone()) {
            return false;
        }
        self.hub.add(scope, name, &self.mailbox);
        true
    }

    /// Unsubscribes from `name`; false if it was not subscribed.
    pub fn unsubscribe(&mut self, scope: Scope, name: &[u8]) -> bool {
        if !self.set(scope).remove(name) {
            return false;
        }
        self.hub.remove(scope, name, self.mailbox.client);
        true
    }

    /// The names subscribed in `scope`, in no particular order (as Redis's dictionary).
    pub fn names(&self, scope: Scope) -> Vec<Bytes> {
        match scope {
            Scope::Channel => self.channels.iter().cloned().collect(),
            Scope::Pattern => self.patterns.iter().cloned().collect(),
            Scope::Shard => self.shard_channels.iter().cloned().collect(),
        }
    }

    /// The count a confirmation shows: channels and patterns together, or shard channels.
    pub fn count(&self, scope: Scope) -> usize {
        match scope {
            Scope::Channel | Scope::Pattern => self.channels.len() + self.patterns.len(),
            Scope::Shard => self.shard_channels.len(),
        }
    }

    /// CLIENT LIST's `sub`, `psub` and `ssub`.
    pub fn counts(&self) -> [usize; 3] {
        [
            self.channels.len(),
            self.patterns.len(),
            self.shard_channels.len(),
        ]
    }

    /// Whether any subscription is left (RESP2's subscribed mode).
    pub fn any(&self) -> bool {
        !(self.channels.is_empty() && self.patterns.is_empty() && self.shard_channels.is_empty())
    }

    /// Where this connection's messages wait.
    pub fn mailbox(&self) -> &Arc<Mailbox> {
        &self.mailbox
    }
}

impl Drop for Subscriptions {
    fn drop(&mut self) {
        let client = self.mailbox.client;
        for (scope, names) in [
            (Scope::Channel, &self.channels),
            (Scope::Pattern, &self.patterns),
            (Scope::Shard, &self.shard_channels),
        ] {
            for name in names {
                self.hub.remove(scope, name, client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle() -> Arc<ClientHandle> {
        let registry = super::super::ClientRegistry::default();
        registry.register(super::super::ClientInfo::default())
    }

    fn drained(subs: &Subscriptions) -> String {
        let mut out = BytesMut::new();
        let bytes = subs.mailbox().drain(2, &mut out);
        subs.mailbox().written(bytes);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn a_message_reaches_channel_and_pattern_subscribers_once_per_subscription() {
        let hub = Arc::new(PubSub::default());
        let mut a = Subscriptions::new(hub.clone(), 1, handle());
        let mut b = Subscriptions::new(hub.clone(), 2, handle());
        assert!(a.subscribe(Scope::Channel, &Bytes::from("news")));
        assert!(!a.subscribe(Scope::Channel, &Bytes::from("news")));
        assert!(b.subscribe(Scope::Pattern, &Bytes::from("n*")));
        assert!(b.subscribe(Scope::Pattern, &Bytes::from("*s")));
        assert_eq!(hub.publish(&Bytes::from("news"), &Bytes::from("hi")), 3);
        assert_eq!(
            drained(&a),
            "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
        );
        let b_got = drained(&b);
        assert!(b_got.contains("$8\r\npmessage\r\n$2\r\nn*\r\n"), "{b_got}");
        assert!(b_got.contains("$8\r\npmessage\r\n$2\r\n*s\r\n"), "{b_got}");
        assert_eq!(hub.patterns(), 2);
        drop(b);
        assert_eq!(hub.patterns(), 0);
        assert_eq!(hub.publish(&Bytes::from("news"), &Bytes::from("x")), 1);
        assert!(a.unsubscribe(Scope::Channel, b"news"));
        assert_eq!(hub.publish(&Bytes::from("news"), &Bytes::from("x")), 0);
        assert!(hub.active(Scope::Channel, None).is_empty());
    }

    #[test]
    fn a_subscriber_that_does_not_read_is_closed_at_the_hard_limit() {
        let hub = Arc::new(PubSub::new(OutputLimits {
            hard: 10_000,
            soft: 0,
            soft_for: Duration::ZERO,
        }));
        let client = handle();
        let mut subs = Subscriptions::new(hub.clone(), 1, client.clone());
        subs.subscribe(Scope::Shard, &Bytes::from("c"));
        let payload = Bytes::from(vec![b'x'; 1000]);
        for _ in 0..9 {
            assert_eq!(hub.spublish(&Bytes::from("c"), &payload), 1);
        }
        assert!(!client.is_killed());
        hub.spublish(&Bytes::from("c"), &payload);
        assert!(client.is_killed(), "closed past 10 000 bytes");
        assert!(
            !subs.mailbox().has_mail(),
            "what it had not read is dropped"
        );
    }

    #[test]
    fn the_soft_limit_closes_only_when_held_for_its_time() {
        let hub = Arc::new(PubSub::new(OutputLimits {
            hard: 0,
            soft: 1_000,
            soft_for: Duration::from_millis(50),
        }));
        let client = handle();
        let mut subs = Subscriptions::new(hub.clone(), 1, client.clone());
        subs.subscribe(Scope::Channel, &Bytes::from("c"));
        let payload = Bytes::from(vec![b'x'; 600]);
        hub.publish(&Bytes::from("c"), &payload);
        hub.publish(&Bytes::from("c"), &payload);
        assert!(!client.is_killed(), "over the soft limit, not for long yet");
        // Read in time: back under the limit, the clock starts again.
        drained(&subs);
        hub.publish(&Bytes::from("c"), &payload);
        std::thread::sleep(Duration::from_millis(80));
        hub.publish(&Bytes::from("c"), &payload);
        assert!(!client.is_killed(), "just over again");
        std::thread::sleep(Duration::from_millis(80));
        hub.publish(&Bytes::from("c"), &payload);
        assert!(
            client.is_killed(),
            "over the soft limit for longer than its time"
        );
    }
}
