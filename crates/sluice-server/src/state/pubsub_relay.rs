//! Pub/sub across nodes (`[cluster] relay_pubsub`): what a client publishes on one node
//! reaches the subscribers of every node sharing the NATS subject `pubsub_subject`.
//!
//! Each node keeps its own connection for this, opened with `no_echo`, so that NATS never
//! hands a node its own messages back (its subscribers got them at once, from
//! [`PubSub::publish`]). Messages travel on core NATS, not in a stream: like Redis's pub/sub,
//! delivery is at most once. One writer task publishes in the order PUBLISH ran, and one
//! reader task delivers in the order NATS received, so one client's messages reach another
//! node's subscriber in the order they were published.
//!
//! Memory stays bounded: messages waiting for NATS (while it is slow or unreachable) are
//! limited to [`QUEUE_LIMIT`] bytes, counted until the NATS client took them, and the client
//! holds at most [`CLIENT_CAPACITY`] more; past that, and for a message larger than the
//! server's `max_payload` (or than the queue), a message reaches only this node's
//! subscribers, and INFO `pubsub_relay_dropped` counts it (a warning is logged at most every
//! 10 s). Messages the client holds while it reconnects are sent late, or lost if the
//! reconnect fails. The tasks and the connection end when the server's state is dropped.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use sluice::config::ClusterConfig;
use tokio::sync::{mpsc, watch};
use tracing::warn;

use super::pubsub::{PubSub, Scope};

/// Bytes of relayed messages that may wait for NATS before more are dropped (Redis's own
/// `pubsub` hard limit per subscriber).
pub const QUEUE_LIMIT: usize = 32 << 20;

/// Messages the NATS client itself may hold (its command channel) beyond [`QUEUE_LIMIT`].
pub const CLIENT_CAPACITY: usize = 16;

/// The encoding's version byte: a node meeting another version drops the message and counts
/// it as malformed, instead of delivering garbage.
const VERSION: u8 = 1;
/// Version, scope, channel length.
const HEADER: usize = 1 + 1 + 4;

/// The sending half of the relay, held by [`PubSub`]; the counters INFO shows.
pub struct Relay {
    queue: mpsc::UnboundedSender<Bytes>,
    /// Dropped with the relay: the reader task then ends (the writer ends when `queue` does).
    _stop: watch::Sender<bool>,
    queued_bytes: AtomicUsize,
    /// The NATS server's `max_payload`: a larger message cannot travel.
    max_message: usize,
    /// Messages handed to NATS.
    pub sent: AtomicU64,
    /// Messages from other nodes delivered here.
    pub received: AtomicU64,
    /// Messages that reached only this node's subscribers (too large, NATS too slow or away).
    pub dropped: AtomicU64,
    /// Messages from other nodes that could not be decoded (another Sluice version?).
    pub malformed: AtomicU64,
    started: Instant,
    /// When a warning was last logged (ms since `started`; 0: never).
    warned_at_ms: AtomicU64,
}

impl Relay {
    /// Queues `channel` and `payload` for the other nodes; never waits.
    pub(super) fn forward(&self, scope: Scope, channel: &[u8], payload: &[u8]) {
        let len = HEADER + channel.len() + payload.len();
        if len > QUEUE_LIMIT {
            self.drop_one(format_args!(
                "a message of {len} bytes exceeds the relay's queue ({QUEUE_LIMIT} bytes); it reached this node's subscribers only"
            ));
            return;
        }
        if len > self.max_message {
            self.drop_one(format_args!(
                "a message of {len} bytes exceeds the NATS server's max_payload ({}); it reached this node's subscribers only (raise max_payload in nats-server's config to relay it)",
                self.max_message
            ));
            return;
        }
        let queued = self.queued_bytes.fetch_add(len, Ordering::Relaxed) + len;
        if queued > QUEUE_LIMIT {
            self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            self.drop_one(format_args!(
                "{queued} bytes of messages wait for NATS (limit {QUEUE_LIMIT}): NATS is unreachable or slow, so messages reach this node's subscribers only"
            ));
            return;
        }
        if let Err(mpsc::error::SendError(message)) =
            self.queue.send(encode(scope, channel, payload))
        {
            self.queued_bytes
                .fetch_sub(message.len(), Ordering::Relaxed);
            self.drop_one(format_args!(
                "the pub/sub relay's NATS connection is closed; messages reach this node's subscribers only"
            ));
        }
    }

    fn drop_one(&self, why: std::fmt::Arguments<'_>) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        self.warn_now_and_then(why);
    }

    /// Logs `why` unless a warning was logged in the last 10 s.
    fn warn_now_and_then(&self, why: std::fmt::Arguments<'_>) {
        let now = (self.started.elapsed().as_millis() as u64).max(1);
        let last = self.warned_at_ms.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= 10_000)
            && self
                .warned_at_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            warn!(
                dropped = self.dropped.load(Ordering::Relaxed),
                malformed = self.malformed.load(Ordering::Relaxed),
                "pub/sub relay: {why}"
            );
        }
    }

    /// Bytes waiting for NATS.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes.load(Ordering::Relaxed)
    }
}

fn encode(scope: Scope, channel: &[u8], payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER + channel.len() + payload.len());
    out.put_u8(VERSION);
    out.put_u8(match scope {
        Scope::Shard => 1,
        _ => 0,
    });
    out.put_u32(channel.len() as u32);
    out.put_slice(channel);
    out.put_slice(payload);
    out.freeze()
}

/// A relayed message: its scope (`Channel` or `Shard`), channel and payload, sliced out of
/// the NATS message without a copy; `None` for anything else.
fn decode(message: &Bytes) -> Option<(Scope, Bytes, Bytes)> {
    if message.len() < HEADER || message[0] != VERSION {
        return None;
    }
    let scope = match message[1] {
        0 => Scope::Channel,
        1 => Scope::Shard,
        _ => return None,
    };
    let channel_len = u32::from_be_bytes(message[2..6].try_into().ok()?) as usize;
    let channel_end = HEADER.checked_add(channel_len)?;
    if channel_end > message.len() {
        return None;
    }
    Some((
        scope,
        message.slice(HEADER..channel_end),
        message.slice(channel_end..),
    ))
}

/// Connects to `config`'s NATS servers, subscribes to its `pubsub_subject` and makes `hub`
/// relay what is published here from now on. An error names the servers and what failed.
pub async fn start(config: &ClusterConfig, hub: &Arc<PubSub>) -> Result<Arc<Relay>, String> {
    let mut addresses = Vec::with_capacity(config.nats_urls.len());
    for url in &config.nats_urls {
        let address: async_nats::ServerAddr = url
            .parse()
            .map_err(|e| format!("cluster.nats_urls: cannot parse {url:?}: {e}"))?;
        addresses.push(address);
    }
    let servers = config.nats_urls.join(", ");
    let client = async_nats::ConnectOptions::new()
        .name(format!("sluice {} pubsub", config.node_name))
        .connection_timeout(config.connect_timeout)
        .client_capacity(CLIENT_CAPACITY)
        .no_echo()
        .connect(addresses)
        .await
        .map_err(|e| {
            format!("pub/sub relay: cannot connect to the NATS servers {servers}: {e}; check [cluster] nats_urls, or set relay_pubsub = false")
        })?;
    let subject = config.pubsub_subject();
    let mut inbound = client
        .subscribe(subject.clone())
        .await
        .map_err(|e| format!("pub/sub relay: cannot subscribe to {subject:?} on {servers}: {e}"))?;
    let (queue, mut outbound) = mpsc::unbounded_channel::<Bytes>();
    let (stop, mut stopped) = watch::channel(false);
    let relay = Arc::new(Relay {
        queue,
        _stop: stop,
        queued_bytes: AtomicUsize::new(0),
        max_message: client.server_info().max_payload,
        sent: AtomicU64::new(0),
        received: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        malformed: AtomicU64::new(0),
        started: Instant::now(),
        warned_at_ms: AtomicU64::new(0),
    });
    {
        // Weak: the relay (and with it the queue's sender) is dropped with the server's state,
        // which ends this loop.
        let relay = Arc::downgrade(&relay);
        let client = client.clone();
        let subject = subject.clone();
        tokio::spawn(async move {
            while let Some(message) = outbound.recv().await {
                let len = message.len();
                // Waits while the client's own buffer is full (NATS slow or away); until then
                // the message still counts against the queue's byte limit.
                let published = client.publish(subject.clone(), message).await;
                let Some(relay) = relay.upgrade() else { break };
                relay.queued_bytes.fetch_sub(len, Ordering::Relaxed);
                match published {
                    Ok(()) => {
                        relay.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => relay.drop_one(format_args!("publishing to NATS failed: {e}")),
                }
            }
        });
    }
    {
        let relay = Arc::downgrade(&relay);
        let hub = Arc::downgrade(hub);
        tokio::spawn(async move {
            // The subscription survives reconnects (the client subscribes again); the loop
            // ends when the relay is dropped with the server's state.
            loop {
                let message = tokio::select! {
                    message = inbound.next() => message,
                    _ = stopped.changed() => None,
                };
                let Some(message) = message else { break };
                let (Some(hub), Some(relay)) = (hub.upgrade(), relay.upgrade()) else {
                    break;
                };
                match decode(&message.payload) {
                    Some((Scope::Shard, channel, payload)) => {
                        hub.spublish_here(&channel, &payload);
                        relay.received.fetch_add(1, Ordering::Relaxed);
                    }
                    Some((_, channel, payload)) => {
                        hub.publish_here(&channel, &payload);
                        relay.received.fetch_add(1, Ordering::Relaxed);
                    }
                    None => {
                        relay.malformed.fetch_add(1, Ordering::Relaxed);
                        relay.warn_now_and_then(format_args!(
                            "a message on {:?} is not a Sluice pub/sub message (another Sluice version, or another program publishing there?); it was dropped",
                            message.subject.as_str()
                        ));
                    }
                }
            }
        });
    }
    // Waits for the subscription to reach the server: a message published by another node
    // once this returns is delivered here.
    client.flush().await.map_err(|e| {
        format!("pub/sub relay: NATS {servers} did not confirm the subscription: {e}")
    })?;
    hub.set_relay(relay.clone());
    Ok(relay)
}

/// How long start-up gives the relay's connection; the journal's own connection has already
/// proved the servers reachable.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_survive_the_encoding_and_garbage_is_refused() {
        for (scope, channel, payload) in [
            (Scope::Channel, &b"news"[..], &b"hello"[..]),
            (Scope::Shard, b"", b""),
            (Scope::Channel, b"\x00\r\n\xff", b"\x00\x01"),
        ] {
            let encoded = encode(scope, channel, payload);
            let (s, c, p) = decode(&encoded).expect("decodes");
            assert_eq!(s, scope);
            assert_eq!(&c[..], channel);
            assert_eq!(&p[..], payload);
        }
        let good = encode(Scope::Channel, b"news", b"hello");
        for bad in [
            Bytes::new(),
            good.slice(..5),
            Bytes::from_static(b"\x02\x00\x00\x00\x00\x00"),
            Bytes::from_static(b"\x01\x07\x00\x00\x00\x00"),
            Bytes::from_static(b"\x01\x00\xff\xff\xff\xffabc"),
            Bytes::from_static(b"\x01\x00\x00\x00\x00\x09abc"),
        ] {
            assert!(decode(&bad).is_none(), "{bad:?}");
        }
    }
}
