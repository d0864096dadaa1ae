//! The state commands see: what every connection shares ([`Shared`]) and what one
//! connection owns ([`Session`]).
//!
//! This layer sits below the commands and the connection loop and above the leaves (auth,
//! framing limits, the engine): it imports neither commands nor listeners, so a command can
//! be tested against a `Shared` made from an engine, with no socket bound.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use sluice::Sluice;
use tokio::sync::watch;

use crate::auth::Users;
use crate::config::ServerConfig;
use crate::frontend::parse::Limits;

mod blocking;
mod clients;
mod key_events;
mod pause;
mod pubsub;
pub mod pubsub_relay;
pub mod routing;
mod scripting;
mod session;
mod settings;
mod slowlog;
mod stats;

pub use blocking::{BlockKind, BlockTicket, Blocking};
pub use clients::{
    ClientHandle, ClientInfo, ClientRegistry, Clock, KillFilter, UNBLOCK_ERROR, UNBLOCK_TIMEOUT,
};
pub use key_events::KeyEvent;
pub use pause::{Pause, PauseMode};
pub use pubsub::{Mailbox, OutputLimits, PubSub, Scope, Subscriptions};
pub use scripting::{RunningScript, Scripting};
pub use session::{Blocked, MultiQueue, ReplyMode, Session};
pub use settings::{keyspace_events, output_limits, Settings};
pub use slowlog::{SlowCall, SlowEntry, SlowLog};
pub use stats::{
    CommandCounts, CommandStats, ReplyKind, COMMAND_BOUNDS_NS, MAX_FAMILIES, MAX_SLOTS,
};

/// The Redis version Sluice reports to clients (HELLO, INFO), chosen so client libraries
/// enable the Redis 7 features Sluice implements.
pub const REDIS_COMPAT_VERSION: &str = "7.0.15";

/// Server-wide counters (INFO stats; CONFIG RESETSTAT zeroes them).
#[derive(Default)]
pub struct ServerStats {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Commands run.
    pub commands: AtomicU64,
    /// Connections refused by `maxclients`.
    pub rejected: AtomicU64,
}

impl ServerStats {
    /// Zeroes every counter, as CONFIG RESETSTAT does.
    pub fn reset(&self) {
        for counter in [&self.connections, &self.commands, &self.rejected] {
            counter.store(0, Ordering::Relaxed);
        }
    }
}

/// The process's resident memory in bytes (0 where `/proc` is missing).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

/// What every connection shares.
pub struct Shared {
    /// The engine.
    pub sluice: Sluice,
    /// The server's configuration as loaded (`[server]` and `[[user]]`); the engine's is
    /// `sluice.config()`. What CONFIG SET changes is in `settings`.
    pub config: ServerConfig,
    /// The settings CONFIG SET changes at run time (`maxclients`, `timeout`, slow log, ...).
    pub settings: Settings,
    /// SLOWLOG's entries.
    pub slowlog: SlowLog,
    /// The plaintext port actually bound; 0 with `tls_only` (no plaintext listener).
    pub port: u16,
    /// The TLS port actually bound, when TLS is on.
    pub tls_port: Option<u16>,
    /// Live connections.
    pub clients: Arc<ClientRegistry>,
    /// Counters.
    pub stats: ServerStats,
    /// Per-command and per-error counters (INFO commandstats, errorstats).
    pub command_stats: CommandStats,
    /// Start time.
    pub started: Instant,
    /// Framing limits.
    pub limits: Limits,
    /// Users and their permissions.
    pub users: Users,
    /// Loaded Lua scripts and the ones running.
    pub scripting: Scripting,
    /// CLIENT PAUSE.
    pub pause: Pause,
    /// Pub/sub subscriptions and keyspace notifications.
    pub pubsub: Arc<PubSub>,
    /// Clients blocked on keys (BZPOPMIN ...).
    pub blocking: Arc<Blocking>,
    /// Key routing between the cluster's nodes (`[cluster] nodes`); `None` when every node
    /// serves every key.
    pub routing: Option<routing::Routing>,
    next_id: AtomicU64,
    shutdown: watch::Sender<bool>,
}

impl Shared {
    /// Starts a graceful shutdown: stop accepting, close connections, drain, exit.
    pub fn trigger_shutdown(&self) {
        // `send_replace`, not `send`: `send` drops the value when no receiver exists yet (a
        // shutdown triggered before `run()` first subscribed), and the server would never stop.
        self.shutdown.send_replace(true);
        // After the flag: a session registered once this has run sees it (`new_session`).
        self.clients.close_all();
    }

    /// A receiver that changes when shutdown starts.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// A new session for a connection from `addr` to `laddr` on socket `fd` (-1: none); it
    /// shows in CLIENT LIST until dropped.
    pub fn new_session(&self, addr: SocketAddr, laddr: SocketAddr, fd: i32) -> Session {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let session = Session::new(
            id,
            self.users.initial(),
            (addr, laddr, fd),
            self.clients.clone(),
        );
        // Registered before the check: either `trigger_shutdown`'s `close_all` found this
        // session, or this sees the flag it set first.
        if *self.shutdown.borrow() {
            session.handle().close();
        }
        session
    }

    /// The state for an opened engine and the server's configuration, with its users and
    /// framing limits, and no listener: the server binds around it, and command tests use it
    /// directly. `port` and `tls_port` are what the listeners bound (INFO and CONFIG report
    /// them). A user list or protected-mode setting that cannot be used is an error.
    pub fn new(
        sluice: Sluice,
        config: ServerConfig,
        port: u16,
        tls_port: Option<u16>,
    ) -> Result<Arc<Shared>, String> {
        let limits = Limits {
            max_bulk_len: config.proto_max_bulk_len,
            max_multibulk_len: config.proto_max_multibulk_len,
            max_inline_len: config.proto_inline_max_size as usize,
        };
        let users = Users::from_config(&config)?;
        if let Some(refusal) = crate::auth::protected_mode_refusal(&config, &users) {
            return Err(refusal);
        }
        let (shutdown, _) = watch::channel(false);
        let routing = sluice
            .config()
            .cluster
            .as_ref()
            .and_then(|c| c.slot_map())
            .map(routing::Routing::new);
        if let Some(own) = routing.as_ref().map(routing::Routing::own) {
            if port != 0 && own.port != port && tls_port != Some(own.port) {
                tracing::warn!(
                    node = %own.name,
                    "[cluster] nodes gives this node the address {}:{}, but it listens on port {port}: other nodes send clients (MOVED) to the address in the list",
                    own.host,
                    own.port
                );
            }
        }
        let shared = Arc::new(Shared {
            routing,
            settings: Settings::new(&config),
            slowlog: SlowLog::default(),
            users,
            sluice,
            config,
            port,
            tls_port,
            clients: Arc::default(),
            stats: ServerStats::default(),
            command_stats: CommandStats::default(),
            started: Instant::now(),
            limits,
            scripting: Scripting::default(),
            pause: Pause::default(),
            pubsub: Arc::default(),
            blocking: Arc::default(),
            next_id: AtomicU64::new(0),
            shutdown,
        });
        // Expiry, eviction and change-capture events reach keyspace notifications.
        let events = key_events::EngineKeyEvents(Arc::downgrade(&shared));
        shared.sluice.set_key_event_sink(Arc::new(events));
        Ok(shared)
    }
}
