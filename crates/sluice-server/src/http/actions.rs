//! The status page's buttons: `POST /deadletters/retry` and `POST /deadletters/drop`, for one
//! key (`?db=N&key=HEX`) or a whole keyspace (`?keyspace=NAME`).
//!
//! An action changes data, so it asks more than reading does. In order:
//! - the request carries `X-Sluice-Action: 1`: a cross-site form cannot set a custom header,
//!   and a cross-site `fetch` that sets one needs a CORS preflight this listener never grants,
//!   so another site cannot make a logged-in browser act here (CSRF);
//! - a password is set: with none, anyone who reaches the port would act, so the action is
//!   refused (403) and the reply says to set one;
//! - HTTP basic auth names an enabled ACL user who has a password (a nopass user takes any
//!   password, so it proves nothing), may run @admin commands, and may touch the key (every key,
//!   for a whole keyspace).

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use sluice::{Bytes, DeadLetterSelector};

use super::{credentials, text, unauthorized, Reply};
use crate::state::Shared;

/// The header a request must carry to act.
pub(super) const ACTION_HEADER: &str = "x-sluice-action";

/// What to do with the selected dead letters.
#[derive(Debug, Clone, Copy)]
pub(super) enum Action {
    /// Write them again as new writes.
    Retry,
    /// Forget them.
    Drop,
}

/// Runs `action` on the dead letters the query selects, if the request may.
pub(super) async fn dead_letters(
    shared: &Shared,
    req: &Request<Incoming>,
    action: Action,
) -> Reply {
    if req.headers().get(ACTION_HEADER).map(|v| v.as_bytes()) != Some(b"1") {
        return text(
            StatusCode::FORBIDDEN,
            "actions need the header X-Sluice-Action: 1 (the status page sends it)\n",
        );
    }
    if !shared.users.any_password() {
        return text(
            StatusCode::FORBIDDEN,
            "no password is set, so nobody can be told apart: set [server] requirepass (or CONFIG SET requirepass) \
             and log in as a user allowed @admin to retry or drop dead letters\n",
        );
    }
    let Some((name, password)) = credentials(req) else {
        return unauthorized();
    };
    let Some(user) = shared
        .users
        .authenticate(&name, &password)
        .filter(|u| u.has_password())
    else {
        return unauthorized();
    };
    let selector = match selector(req.uri().query().unwrap_or("")) {
        Ok(selector) => selector,
        Err(reason) => return text(StatusCode::BAD_REQUEST, format!("{reason}\n")),
    };
    let keys_allowed = match &selector {
        DeadLetterSelector::Key { key, .. } => user.may_access(key),
        _ => user.may_access_all(),
    };
    if !user.may_run(&["@admin"]) || !keys_allowed {
        return text(
            StatusCode::FORBIDDEN,
            format!(
                "user {} may not do this: it needs @admin and access to the keys\n",
                user.name
            ),
        );
    }
    let done = match action {
        Action::Retry => shared.sluice.retry_dead_letters(&selector).await,
        Action::Drop => shared.sluice.drop_dead_letters(&selector),
    };
    match (done, action) {
        (Ok(n), Action::Retry) => text(StatusCode::OK, format!("retried {n}\n")),
        (Ok(n), Action::Drop) => text(StatusCode::OK, format!("dropped {n}\n")),
        (Err(e), _) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

/// The selector a query names: `keyspace=NAME`, or `db=N&key=HEX` (the key's bytes in hex, so
/// any binary key can be named).
fn selector(query: &str) -> Result<DeadLetterSelector, String> {
    let mut keyspace = None;
    let mut db = None;
    let mut key = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value).ok_or("a query value is not valid percent-encoding")?;
        match name {
            "keyspace" => keyspace = Some(String::from_utf8_lossy(&value).into_owned()),
            "db" => {
                db = Some(
                    std::str::from_utf8(&value)
                        .ok()
                        .and_then(|d| d.parse::<u8>().ok())
                        .ok_or("db must be a database number")?,
                )
            }
            "key" => key = Some(unhex(&value).ok_or("key must be the key's bytes in hex")?),
            _ => return Err(format!("unknown parameter {name:?}")),
        }
    }
    match (keyspace, db, key) {
        (Some(name), None, None) => Ok(DeadLetterSelector::Keyspace(name)),
        (None, db, Some(key)) => Ok(DeadLetterSelector::Key {
            db: db.unwrap_or(0),
            key: Bytes::from(key),
        }),
        _ => Err("name either keyspace=NAME or db=N&key=HEX".to_string()),
    }
}

fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

fn unhex(text: &[u8]) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_selects_a_key_in_hex_or_a_keyspace() {
        match selector("db=2&key=6b3a00ff") {
            Ok(DeadLetterSelector::Key { db, key }) => {
                assert_eq!((db, &key[..]), (2, &b"k:\x00\xff"[..]))
            }
            other => panic!("{other:?}"),
        }
        match selector("keyspace=user%20rows") {
            Ok(DeadLetterSelector::Keyspace(name)) => assert_eq!(name, "user rows"),
            other => panic!("{other:?}"),
        }
        assert!(selector("").is_err());
        assert!(selector("key=6").is_err());
        assert!(selector("keyspace=a&key=00").is_err());
        assert!(selector("db=300&key=00").is_err());
        assert!(selector("key=%zz").is_err());
    }
}
