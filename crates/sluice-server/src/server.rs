//! Serving: the listener, the shared state every connection sees, and graceful shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use sluice::{Config, Sluice};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tracing::{info, warn};

use crate::frontend::connection;
use crate::frontend::parse::Limits;
use crate::tls::{self, TlsListener};

/// The Redis version Sluice reports to clients (HELLO, INFO), chosen so client libraries
/// enable the Redis 7 features Sluice implements.
pub const REDIS_COMPAT_VERSION: &str = "7.0.15";

/// Server-wide counters.
#[derive(Default)]
pub struct ServerStats {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Commands run.
    pub commands: AtomicU64,
    /// Connections refused by `maxclients`.
    pub rejected: AtomicU64,
}

/// What CLIENT LIST shows of a connection.
#[derive(Clone, Debug, Default)]
pub struct ClientInfo {
    id: u64,
    addr: String,
    laddr: String,
    name: Option<Bytes>,
    lib_name: Option<Bytes>,
    lib_ver: Option<Bytes>,
    db: u8,
    proto: u8,
    last_command: &'static str,
    created: Option<Instant>,
}

/// Every live connection, for CLIENT LIST and INFO.
#[derive(Default)]
pub struct ClientRegistry {
    clients: Mutex<HashMap<u64, ClientInfo>>,
}

impl ClientRegistry {
    fn put(&self, info: ClientInfo) {
        self.clients.lock().insert(info.id, info);
    }

    fn remove(&self, id: u64) {
        self.clients.lock().remove(&id);
    }

    /// Live connections.
    pub fn count(&self) -> usize {
        self.clients.lock().len()
    }

    /// One connection's CLIENT INFO line.
    pub fn line(&self, id: u64) -> Option<String> {
        self.clients.lock().get(&id).map(format_client)
    }

    /// CLIENT LIST text.
    pub fn list(&self) -> String {
        let clients = self.clients.lock();
        let mut ids: Vec<&u64> = clients.keys().collect();
        ids.sort();
        ids.into_iter()
            .map(|id| format_client(&clients[id]))
            .collect()
    }
}

fn format_client(c: &ClientInfo) -> String {
    let text = |b: &Option<Bytes>| {
        b.as_ref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    };
    let age = c.created.map(|t| t.elapsed().as_secs()).unwrap_or(0);
    format!(
        "id={} addr={} laddr={} fd=0 name={} age={age} idle=0 flags=N db={} sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}\n",
        c.id,
        c.addr,
        c.laddr,
        text(&c.name),
        c.db,
        if c.last_command.is_empty() { "NULL" } else { c.last_command },
        c.proto,
        text(&c.lib_name),
        text(&c.lib_ver),
    )
}

/// One connection's state.
pub struct Session {
    /// CLIENT ID.
    pub id: u64,
    /// SELECTed database.
    pub db: u8,
    /// RESP version (2 or 3).
    pub proto: u8,
    /// CLIENT SETNAME.
    pub name: Option<Bytes>,
    /// CLIENT SETINFO LIB-NAME.
    pub lib_name: Option<Bytes>,
    /// CLIENT SETINFO LIB-VER.
    pub lib_ver: Option<Bytes>,
    /// QUIT: close once the reply is written.
    pub close_after_reply: bool,
    /// SHUTDOWN: close without a reply.
    pub close_without_reply: bool,
    /// The last command run, for CLIENT LIST.
    pub last_command: &'static str,
    /// The authenticated user; `None` until AUTH when a password is required.
    pub user: Option<Arc<crate::auth::User>>,
    addr: String,
    laddr: String,
    created: Instant,
    registry: Arc<Shared>,
}

impl Session {
    /// Sets the connection name.
    pub fn set_name(&mut self, name: Option<Bytes>) {
        self.name = name;
    }

    /// Publishes this session's visible fields to CLIENT LIST.
    pub fn publish(&self) {
        self.registry.clients.put(ClientInfo {
            id: self.id,
            addr: self.addr.clone(),
            laddr: self.laddr.clone(),
            name: self.name.clone(),
            lib_name: self.lib_name.clone(),
            lib_ver: self.lib_ver.clone(),
            db: self.db,
            proto: self.proto,
            last_command: self.last_command,
            created: Some(self.created),
        });
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.registry.clients.remove(self.id);
    }
}

/// What every connection shares.
pub struct Shared {
    /// The engine.
    pub sluice: Sluice,
    /// The configuration in force.
    pub config: Config,
    /// The plaintext port actually bound; 0 with `tls_only` (no plaintext listener).
    pub port: u16,
    /// The TLS port actually bound, when TLS is on.
    pub tls_port: Option<u16>,
    /// Live connections.
    pub clients: ClientRegistry,
    /// Counters.
    pub stats: ServerStats,
    /// Start time.
    pub started: Instant,
    /// Framing limits.
    pub limits: Limits,
    /// Users and their permissions.
    pub users: crate::auth::Users,
    next_id: AtomicU64,
    shutdown: watch::Sender<bool>,
}

impl Shared {
    /// Starts a graceful shutdown: stop accepting, close connections, drain, exit.
    pub fn trigger_shutdown(&self) {
        // `send_replace`, not `send`: `send` drops the value when no receiver exists yet (a
        // shutdown triggered before `run()` first subscribed), and the server would never stop.
        self.shutdown.send_replace(true);
    }

    /// A receiver that changes when shutdown starts.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// A new session for a connection.
    pub fn new_session(self: &Arc<Self>, addr: SocketAddr, laddr: SocketAddr) -> Session {
        let session = Session {
            id: self.next_id.fetch_add(1, Ordering::Relaxed) + 1,
            db: 0,
            proto: 2,
            name: None,
            lib_name: None,
            lib_ver: None,
            close_after_reply: false,
            close_without_reply: false,
            last_command: "",
            user: self.users.initial(),
            addr: addr.to_string(),
            laddr: laddr.to_string(),
            created: Instant::now(),
            registry: self.clone(),
        };
        session.publish();
        session
    }
}

/// A bound, running server.
pub struct Server {
    shared: Arc<Shared>,
    /// The plaintext listener; `None` with `tls_only`.
    listener: Option<TcpListener>,
    /// The TLS listener; `None` without `tls_port`.
    tls: Option<TlsListener>,
}

/// Accepts from `listener`, or waits forever if there is none.
async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Binds `bind:port`; an error names the address (and which setting it came from).
async fn listen(bind: &str, port: u16, what: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind((bind, port))
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("{bind}:{port} ({what}): {e}")))
}

impl Server {
    /// Binds the configured address (port 0 picks a free port) around an opened engine, and
    /// the TLS port when `tls_port` is set (beside the plaintext port, or alone with
    /// `tls_only`). Configuration errors, TLS files included, are `InvalidInput`.
    pub async fn bind(sluice: Sluice) -> std::io::Result<Server> {
        let config = sluice.config().clone();
        // Certificates are loaded before anything is bound: a bad file is a config error.
        let acceptor = tls::acceptor_from_config(&config.server)?;
        let bind = config.server.bind.as_str();
        let listener = if config.server.tls_only {
            None
        } else {
            Some(listen(bind, config.server.port, "port").await?)
        };
        let tls = match (acceptor, config.server.tls_port) {
            (Some(acceptor), Some(tls_port)) => Some(TlsListener {
                listener: listen(bind, tls_port, "tls_port").await?,
                acceptor,
            }),
            _ => None,
        };
        let port = match &listener {
            Some(l) => l.local_addr()?.port(),
            None => 0,
        };
        let tls_port = match &tls {
            Some(t) => Some(t.listener.local_addr()?.port()),
            None => None,
        };
        let limits = Limits {
            max_bulk_len: config.server.proto_max_bulk_len,
            max_multibulk_len: config.server.proto_max_multibulk_len,
            max_inline_len: config.server.proto_inline_max_size as usize,
        };
        let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
        let users = crate::auth::Users::from_config(&config).map_err(invalid)?;
        if let Some(refusal) = crate::auth::protected_mode_refusal(&config, &users) {
            return Err(invalid(refusal));
        }
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            users,
            sluice,
            config,
            port,
            tls_port,
            clients: ClientRegistry::default(),
            stats: ServerStats::default(),
            started: Instant::now(),
            limits,
            next_id: AtomicU64::new(0),
            shutdown,
        });
        Ok(Server {
            shared,
            listener,
            tls,
        })
    }

    /// The plaintext address bound; an error (`NotConnected`) with `tls_only`.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match &self.listener {
            Some(l) => l.local_addr(),
            None => Err(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "no plaintext listener (tls_only)",
            )),
        }
    }

    /// The TLS address bound, when TLS is on.
    pub fn tls_local_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().and_then(|t| t.listener.local_addr().ok())
    }

    /// The shared state (to trigger a shutdown from outside).
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Serves until a shutdown is triggered, then drains the engine. Returns what the drain
    /// left unflushed.
    pub async fn run(self) -> sluice::ShutdownReport {
        let shared = self.shared;
        let mut shutdown = shared.shutdown_signal();
        let slots = Arc::new(Semaphore::new(shared.config.server.maxclients));
        let mut connections = tokio::task::JoinSet::new();
        let tls_acceptor = self.tls.as_ref().map(|t| t.acceptor.clone());
        loop {
            // Which listener accepted: `None` plaintext, `Some(acceptor)` TLS.
            let (accepted, tls) = tokio::select! {
                accepted = accept(self.listener.as_ref()) => (accepted, None),
                accepted = accept(self.tls.as_ref().map(|t| &t.listener)) => {
                    (accepted, tls_acceptor.clone())
                }
                // `wait_for` also sees a shutdown triggered before this receiver existed. Its
                // `Ref` is dropped inside the block: held across the select it would make this
                // future `!Send`, and `run()` could no longer be spawned.
                _ = async { let _ = shutdown.wait_for(|stop| *stop).await; } => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            };
            let (stream, addr) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            shared.stats.connections.fetch_add(1, Ordering::Relaxed);
            // TLS connections take their slot before the handshake: pending handshakes count
            // against `maxclients` too.
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                shared.stats.rejected.fetch_add(1, Ordering::Relaxed);
                const FULL: &str = "ERR max number of clients reached";
                match tls {
                    None => tokio::spawn(connection::refuse(stream, FULL)),
                    Some(acceptor) => tokio::spawn(tls::refuse(acceptor, stream, FULL)),
                };
                continue;
            };
            let shared = shared.clone();
            connections.spawn(async move {
                match tls {
                    None => connection::serve(shared, stream, addr).await,
                    Some(acceptor) => tls::serve(shared, acceptor, stream, addr).await,
                }
                drop(permit);
            });
        }
        info!("shutting down: no new connections; closing clients and draining write-back buffers");
        drop(self.listener);
        drop(self.tls);
        let close_deadline = tokio::time::sleep(std::time::Duration::from_secs(5));
        tokio::pin!(close_deadline);
        loop {
            tokio::select! {
                next = connections.join_next() => if next.is_none() { break },
                _ = &mut close_deadline => { connections.abort_all(); break }
            }
        }
        shared.sluice.shutdown().await
    }
}
