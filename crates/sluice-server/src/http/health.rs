//! `/healthz` (the process answers) and `/readyz` (the node can take writes): JSON bodies that
//! say what is wrong, for orchestrators and load balancers.

use std::time::Duration;

use hyper::StatusCode;
use serde_json::json;

use super::{json, Reply};
use crate::state::Shared;

/// How long the store has to answer the readiness probe before it counts as unreachable.
const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// 200 whenever the process serves HTTP at all.
pub(super) fn healthz() -> Reply {
    json(StatusCode::OK, json!({ "status": "ok" }))
}

/// 200 when the store answers and the journal accepts writes; 503 otherwise, with each
/// failed check's reason. A node shutting down is not ready either.
pub(super) async fn readyz(shared: &Shared) -> Reply {
    let store = match tokio::time::timeout(STORE_PROBE_TIMEOUT, shared.sluice.probe_store()).await {
        Ok(Ok(())) => json!({ "ok": true }),
        Ok(Err(e)) => json!({ "ok": false, "error": e.to_string() }),
        Err(_) => json!({
            "ok": false,
            "error": format!("the store did not answer within {STORE_PROBE_TIMEOUT:?}"),
        }),
    };
    let journal = match shared.sluice.journal_stats().health.error() {
        None => json!({ "ok": true, "durability": shared.sluice.durability().as_str() }),
        Some(e) => json!({ "ok": false, "error": e.to_string() }),
    };
    let stopping = *shared.shutdown_signal().borrow();
    let shutdown = match stopping {
        false => json!({ "ok": true }),
        true => json!({ "ok": false, "error": "shutting down" }),
    };
    let ready = [&store, &journal, &shutdown]
        .iter()
        .all(|check| check["ok"] == true);
    let status = match ready {
        true => StatusCode::OK,
        false => StatusCode::SERVICE_UNAVAILABLE,
    };
    json(
        status,
        json!({
            "ready": ready,
            "checks": { "store": store, "journal": journal, "shutdown": shutdown },
        }),
    )
}
