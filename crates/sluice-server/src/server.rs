//! Serving: the listeners, connection limits, TLS handshakes and graceful shutdown. The top
//! of the server crate: it uses the connection loop and the shared state; nothing uses it
//! but `main` and tests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use sluice::Sluice;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::config::ServerConfig;
use crate::frontend::connection;
use crate::state::Shared;
use crate::tls::{self, TlsListener};

/// A bound, running server.
pub struct Server {
    shared: Arc<Shared>,
    /// The plaintext listener; `None` with `tls_only`.
    listener: Option<TcpListener>,
    /// The TLS listener; `None` without `tls_port`.
    tls: Option<TlsListener>,
    /// The HTTP listener for metrics and probes; `None` without `[metrics] listen`.
    http: Option<TcpListener>,
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
    /// Binds `config`'s address (port 0 picks a free port) around an opened engine, and the
    /// TLS port when `tls_port` is set (beside the plaintext port, or alone with `tls_only`).
    /// Configuration errors, TLS files and users included, are `InvalidInput`.
    pub async fn bind(sluice: Sluice, config: ServerConfig) -> std::io::Result<Server> {
        // Certificates are loaded before anything is bound: a bad file is a config error.
        let acceptor = tls::acceptor_from_config(&config)?;
        let bind = config.bind.as_str();
        let listener = if config.tls_only {
            None
        } else {
            Some(listen(bind, config.port, "port").await?)
        };
        let tls = match (acceptor, config.tls_port) {
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
        let shared = Shared::new(sluice, config, port, tls_port)
            .map_err(|m| std::io::Error::new(std::io::ErrorKind::InvalidInput, m))?;
        // Before the first client: nothing published here may miss the other nodes.
        if let Some(cluster) = shared.sluice.config().cluster.as_ref() {
            if cluster.relay_pubsub {
                let start = crate::state::pubsub_relay::start(cluster, &shared.pubsub);
                match tokio::time::timeout(crate::state::pubsub_relay::START_TIMEOUT, start).await
                {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(std::io::Error::other(e)),
                    Err(_) => {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "pub/sub relay: NATS did not answer within 30 s; check [cluster] nats_urls, or set relay_pubsub = false",
                        ))
                    }
                }
            }
        }
        let http = crate::http::bind(&shared.config, &shared.users).await?;
        Ok(Server {
            shared,
            listener,
            tls,
            http,
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

    /// The metrics and probe address bound, when `[metrics] listen` is set.
    pub fn http_local_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
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
        let open_connections = Arc::new(AtomicUsize::new(0));
        let mut connections = tokio::task::JoinSet::new();
        let tls_acceptor = self.tls.as_ref().map(|t| t.acceptor.clone());
        let http = self
            .http
            .map(|listener| tokio::spawn(crate::http::serve(listener, shared.clone())));
        // CLIENT LIST's clock: connections stamp their reads with it instead of reading the
        // system clock per read.
        let ticker = {
            let shared = shared.clone();
            tokio::spawn(async move {
                loop {
                    shared.clients.clock.tick();
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            })
        };
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
            // The limit is read at each accept: CONFIG SET maxclients applies to the next one.
            let Some(slot) = Slot::take(&open_connections, shared.settings.maxclients()) else {
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
                    Some(acceptor) => serve_tls(shared, acceptor, stream, addr).await,
                }
                drop(slot);
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
        ticker.abort();
        let report = shared.sluice.shutdown().await;
        if let Some(http) = http {
            http.abort();
        }
        report
    }
}

/// One open connection's place under `maxclients`, given back when dropped.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// A place, if fewer than `limit` connections hold one.
    fn take(open: &Arc<AtomicUsize>, limit: usize) -> Option<Slot> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < limit).then_some(n + 1)
        })
        .ok()
        .map(|_| Slot(open.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Completes the TLS handshake of one accepted connection, then serves it. Gives up after
/// [`tls::HANDSHAKE_TIMEOUT`], on a failed handshake, or when the server starts shutting down.
async fn serve_tls(
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
    stream: TcpStream,
    addr: SocketAddr,
) {
    let _ = stream.set_nodelay(true);
    let laddr = stream.local_addr().unwrap_or(addr);
    let fd = connection::raw_fd(&stream);
    let mut shutdown = shared.shutdown_signal();
    let stream = tokio::select! {
        done = tls::handshake(&acceptor, stream) => match done {
            Ok(stream) => stream,
            Err(e) => {
                debug!("TLS handshake with {addr} failed: {e}");
                return;
            }
        },
        _ = async { let _ = shutdown.wait_for(|stop| *stop).await; } => return,
    };
    connection::serve_stream(shared, stream, (addr, laddr, fd)).await;
}
