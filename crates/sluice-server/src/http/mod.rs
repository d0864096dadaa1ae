//! The HTTP listener (`[metrics] listen`): `/metrics` in the Prometheus text format,
//! `/healthz` and `/readyz` for probes, and the status page (`/`, its data at `/status.json`,
//! its dead-letter buttons at `POST /deadletters/{retry,drop}`). A front end beside the RESP
//! one: it reads the shared state and the engine's counters, and nothing below imports it.
//!
//! Access follows the RESP port's rules: beyond loopback a password must be set (protected
//! mode), and whenever one is set `/metrics`, `/` and `/status.json` ask for HTTP basic auth
//! with an ACL user's name and password. The probes answer anyone: they say whether the node
//! works, not what it holds. The actions ask more (see `actions.rs`).

mod actions;
mod health;
mod histograms;
mod metrics;
mod status;

use std::convert::Infallible;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing::{debug, warn};

use crate::auth::Users;
use crate::config::ServerConfig;
use crate::state::Shared;

type Reply = Response<Full<Bytes>>;

/// Binds `[metrics] listen`, or returns `None` when it is unset. A listener beyond loopback
/// with no password set is refused (`InvalidInput`), as the RESP port is in protected mode.
pub async fn bind(config: &ServerConfig, users: &Users) -> std::io::Result<Option<TcpListener>> {
    let Some(listen) = config.metrics.listen.as_deref() else {
        return Ok(None);
    };
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("{listen} ([metrics] listen): {e}")))?;
    let addr = listener.local_addr()?;
    if config.protected_mode && !users.any_password() && !addr.ip().is_loopback() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "refusing to start: [metrics] listen = {listen:?} exposes the node's figures to the network and no password is set (protected mode). \
                 Set [server] requirepass (or add [[user]] entries), listen on 127.0.0.1, or set [server] protected_mode = false if the network is trusted."
            ),
        ));
    }
    Ok(Some(listener))
}

/// Serves HTTP on `listener` until the server shuts down, and samples the status page's
/// history meanwhile (only then: a node with no listener keeps none).
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let history = Arc::new(status::History::default());
    tokio::spawn(status::sample(shared.clone(), history.clone()));
    let mut shutdown = shared.shutdown_signal();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = async { let _ = shutdown.wait_for(|stop| *stop).await; } => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                warn!("metrics listener: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let shared = shared.clone();
        let history = history.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let shared = shared.clone();
                let history = history.clone();
                async move { Ok::<_, Infallible>(route(&shared, &history, req).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!("metrics listener: connection from {peer}: {e}");
            }
        });
    }
}

async fn route(shared: &Shared, history: &status::History, req: Request<Incoming>) -> Reply {
    let path = req.uri().path();
    if req.method() == Method::POST {
        return match path {
            "/deadletters/retry" => {
                actions::dead_letters(shared, &req, actions::Action::Retry).await
            }
            "/deadletters/drop" => actions::dead_letters(shared, &req, actions::Action::Drop).await,
            _ => text(
                StatusCode::METHOD_NOT_ALLOWED,
                "POST is served only at /deadletters/retry and /deadletters/drop\n",
            ),
        };
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET is served (and POST for the dead-letter actions)\n",
        );
    }
    match path {
        "/healthz" => health::healthz(),
        "/readyz" => health::readyz(shared).await,
        "/metrics" | "/" | "/status.json" if !authorized(shared, &req) => unauthorized(),
        "/metrics" => {
            let mut reply = text(StatusCode::OK, metrics::render(shared));
            reply.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            reply
        }
        "/" => status::page(shared),
        "/status.json" => status::status_json(shared, history),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; served here: / (status page), /status.json, /metrics, /healthz, /readyz\n",
        ),
    }
}

/// 401 with the challenge that makes a browser ask for a name and password.
fn unauthorized() -> Reply {
    let mut reply = text(
        StatusCode::UNAUTHORIZED,
        "a password is set: log in with an ACL user's name and password (HTTP basic auth)\n",
    );
    reply.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"sluice\", charset=\"UTF-8\""),
    );
    reply
}

/// Whether the request may read `/metrics` and the status page: always when no password is
/// set, else with the basic-auth credentials of an enabled ACL user.
fn authorized(shared: &Shared, req: &Request<Incoming>) -> bool {
    if !shared.users.auth_required() {
        return true;
    }
    credentials(req)
        .is_some_and(|(name, password)| shared.users.authenticate(&name, &password).is_some())
}

/// The name and password of the request's HTTP basic auth, if it has any.
fn credentials(req: &Request<Incoming>) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut credentials = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })?;
    let colon = credentials.iter().position(|&b| b == b':')?;
    let password = credentials.split_off(colon + 1);
    credentials.truncate(colon);
    Some((credentials, password))
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    let mut reply = Response::new(Full::new(body.into()));
    *reply.status_mut() = status;
    reply
}

fn json(status: StatusCode, body: serde_json::Value) -> Reply {
    let mut reply = text(status, body.to_string());
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    reply
}
