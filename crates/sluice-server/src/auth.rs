//! Users, passwords and permissions, as Redis 6+ ACLs do it.
//!
//! The `default` user has the `[server] requirepass` password, or none (then every connection
//! starts authenticated as `default`). `[[user]]` entries add named users with a password, the
//! command categories they may run and the key patterns they may touch.
//!
//! A command needs one category, the most sensitive it belongs to: `admin`, then `dangerous`,
//! then `write`, then `read`. Commands in none of them (PING, SELECT, HELLO, AUTH...) are open
//! to every authenticated user, except the few that act on what every connection shares
//! (SCRIPT FLUSH and KILL, MEMORY PURGE), which need `admin`
//! (`frontend/cmd/acl.rs`).

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::config::ServerConfig;
use crate::glob::glob_match;
use sha2::{Digest, Sha256};

/// The categories a `[[user]]` may list.
pub const CATEGORIES: [&str; 4] = ["read", "write", "admin", "dangerous"];

/// One user.
#[derive(Debug)]
pub struct User {
    /// Name, as given to AUTH.
    pub name: String,
    /// SHA-256 of the password; `None`: no password (nopass).
    password_sha256: Option<[u8; 32]>,
    /// A disabled user cannot authenticate.
    pub enabled: bool,
    /// Allowed categories; `None`: all.
    categories: Option<BTreeSet<String>>,
    /// Allowed key patterns.
    key_patterns: Vec<Vec<u8>>,
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Bytes as lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in text.as_bytes().chunks(2).enumerate() {
        let s = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

/// Compares digests without an early exit, so timing reveals nothing about the password.
fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The category a command with these ACL categories (`@write`, ...) needs, or `None` when
/// every user may run it.
pub fn required_category(categories: &[&str]) -> Option<&'static str> {
    ["admin", "dangerous", "write", "read"]
        .into_iter()
        .find(|c| categories.iter().any(|sc| sc.strip_prefix('@') == Some(*c)))
}

impl User {
    /// Whether this user may run a command with these ACL categories.
    pub fn may_run(&self, categories: &[&str]) -> bool {
        let Some(allowed) = &self.categories else {
            return true;
        };
        required_category(categories).is_none_or(|needed| allowed.contains(needed))
    }

    /// Whether some command category is closed to this user.
    pub fn restricts_categories(&self) -> bool {
        self.categories.is_some()
    }

    /// Whether this user may touch every key (checked once per command, before any key).
    pub fn may_access_all(&self) -> bool {
        self.key_patterns.iter().any(|p| p.as_slice() == b"*")
    }

    /// Whether this user may touch `key`.
    pub fn may_access(&self, key: &[u8]) -> bool {
        // A lone `*` means every key, the empty key included (Redis's `allkeys`).
        self.key_patterns
            .iter()
            .any(|p| p.as_slice() == b"*" || glob_match(p, key))
    }

    /// Whether this user has a password (a nopass user takes any password, so proves nothing).
    pub fn has_password(&self) -> bool {
        self.password_sha256.is_some()
    }

    fn password_matches(&self, password: &[u8]) -> bool {
        match &self.password_sha256 {
            None => true,
            Some(digest) => same_digest(digest, &sha256(password)),
        }
    }

    /// The user as ACL LIST shows it (the password only as its SHA-256).
    pub fn describe(&self) -> String {
        let mut parts = vec![
            "user".to_string(),
            self.name.clone(),
            if self.enabled { "on" } else { "off" }.to_string(),
        ];
        match &self.password_sha256 {
            None => parts.push("nopass".into()),
            Some(d) => parts.push(format!("#{}", hex(d))),
        }
        for p in &self.key_patterns {
            parts.push(format!("~{}", String::from_utf8_lossy(p)));
        }
        match &self.categories {
            None => parts.push("+@all".into()),
            Some(cats) => parts.extend(cats.iter().map(|c| format!("+@{c}"))),
        }
        parts.join(" ")
    }
}

/// The `default` user with this password (`None` or empty: none).
fn default_user(password: Option<&str>) -> Arc<User> {
    Arc::new(User {
        name: "default".into(),
        password_sha256: password
            .filter(|p| !p.is_empty())
            .map(|p| sha256(p.as_bytes())),
        enabled: true,
        categories: None,
        key_patterns: vec![b"*".to_vec()],
    })
}

/// Every user of the server.
#[derive(Debug)]
pub struct Users {
    /// Replaced whole by `CONFIG SET requirepass`; connections already authenticated keep
    /// the `Arc` they hold, as in Redis.
    default: RwLock<Arc<User>>,
    named: HashMap<String, Arc<User>>,
}

impl Users {
    /// Builds the users from `[server] requirepass` and `[[user]]`; errors name the field.
    pub fn from_config(config: &ServerConfig) -> Result<Users, String> {
        let default = RwLock::new(default_user(config.requirepass.as_deref()));
        let mut named = HashMap::new();
        for (i, u) in config.users.iter().enumerate() {
            let at = |field: &str| format!("user[{i}] \"{}\".{field}", u.name);
            if u.name.is_empty() || u.name.contains(char::is_whitespace) {
                return Err(format!(
                    "{}: must be a non-empty name without spaces",
                    at("name")
                ));
            }
            if u.name == "default" || named.contains_key(&u.name) {
                return Err(format!(
                    "{}: \"{}\" is already defined; names must be unique and \"default\" is set by [server] requirepass",
                    at("name"),
                    u.name
                ));
            }
            let password_sha256 = match u.password.strip_prefix("sha256:") {
                Some(h) => Some(parse_hex32(h).ok_or_else(|| {
                    format!(
                        "{}: sha256: must be followed by 64 hex digits",
                        at("password")
                    )
                })?),
                None if u.password.is_empty() => {
                    return Err(format!(
                        "{}: is empty; give every user a password",
                        at("password")
                    ))
                }
                None => Some(sha256(u.password.as_bytes())),
            };
            let categories = if u.commands.iter().any(|c| c == "all") {
                None
            } else {
                let mut set = BTreeSet::new();
                for c in &u.commands {
                    if !CATEGORIES.contains(&c.as_str()) {
                        return Err(format!(
                            "{}: unknown category {c:?}; use read, write, admin, dangerous or all",
                            at("commands")
                        ));
                    }
                    set.insert(c.clone());
                }
                Some(set)
            };
            named.insert(
                u.name.clone(),
                Arc::new(User {
                    name: u.name.clone(),
                    password_sha256,
                    enabled: u.enabled,
                    categories,
                    key_patterns: u.keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
                }),
            );
        }
        Ok(Users { default, named })
    }

    /// True when a new connection must AUTH before running commands.
    pub fn auth_required(&self) -> bool {
        self.default.read().password_sha256.is_some()
    }

    /// True when any password is configured.
    pub fn any_password(&self) -> bool {
        self.auth_required() || !self.named.is_empty()
    }

    /// The user a new connection starts as, if it needs no AUTH.
    pub fn initial(&self) -> Option<Arc<User>> {
        let default = self.default.read();
        default.password_sha256.is_none().then(|| default.clone())
    }

    /// The `default` user.
    pub fn default_user(&self) -> Arc<User> {
        self.default.read().clone()
    }

    /// Gives the `default` user this password (`None` or empty: none), as `CONFIG SET
    /// requirepass` does; sessions already authenticated stay so.
    pub fn set_default_password(&self, password: Option<&str>) {
        *self.default.write() = default_user(password);
    }

    /// The user `name` if `password` is theirs and they are enabled.
    pub fn authenticate(&self, name: &[u8], password: &[u8]) -> Option<Arc<User>> {
        let name = std::str::from_utf8(name).ok()?;
        let user = if name == "default" {
            self.default_user()
        } else {
            self.named.get(name)?.clone()
        };
        (user.enabled && user.password_matches(password)).then_some(user)
    }

    /// Whether a user of this name exists (CLIENT KILL USER).
    pub fn exists(&self, name: &[u8]) -> bool {
        name == b"default" || std::str::from_utf8(name).is_ok_and(|n| self.named.contains_key(n))
    }

    /// ACL LIST lines, `default` first.
    pub fn list(&self) -> Vec<String> {
        let mut names: Vec<&String> = self.named.keys().collect();
        names.sort();
        std::iter::once(self.default_user().describe())
            .chain(names.into_iter().map(|n| self.named[n].describe()))
            .collect()
    }
}

/// Why protected mode refuses to start, if it does: bound beyond loopback with no password.
pub fn protected_mode_refusal(config: &ServerConfig, users: &Users) -> Option<String> {
    if !config.protected_mode || users.any_password() {
        return None;
    }
    let bind = config.bind.trim();
    let loopback = bind == "localhost"
        || bind
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false);
    (!loopback).then(|| {
        format!(
            "refusing to start: binding to {bind} exposes the data behind Sluice to the network, and no password is set (protected mode). \
             Set [server] requirepass (or add [[user]] entries), bind to 127.0.0.1, or set [server] protected_mode = false if the network is trusted."
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> ServerConfig {
        crate::config::FileConfig::from_toml(text).unwrap().server
    }

    #[test]
    fn default_user_needs_no_password_unless_requirepass() {
        let users = Users::from_config(&config("")).unwrap();
        assert!(!users.auth_required());
        assert!(users.initial().is_some());
        let users = Users::from_config(&config("[server]\nrequirepass = \"pw\"\n")).unwrap();
        assert!(users.auth_required());
        assert!(users.authenticate(b"default", b"pw").is_some());
        assert!(users.authenticate(b"default", b"nope").is_none());
    }

    #[test]
    fn named_users_with_plain_and_hashed_passwords() {
        let digest = hex(&sha256(b"hunter2"));
        let users = Users::from_config(&config(&format!(
            "[[user]]\nname = \"a\"\npassword = \"pa\"\ncommands = [\"read\"]\nkeys = [\"app:*\"]\n\
             [[user]]\nname = \"b\"\npassword = \"sha256:{digest}\"\n\
             [[user]]\nname = \"c\"\npassword = \"pc\"\nenabled = false\n"
        )))
        .unwrap();
        let a = users.authenticate(b"a", b"pa").unwrap();
        assert!(a.may_access(b"app:1") && !a.may_access(b"other"));
        assert!(users.authenticate(b"b", b"hunter2").is_some());
        assert!(users.authenticate(b"c", b"pc").is_none(), "disabled");
        assert!(users.authenticate(b"nobody", b"x").is_none());
        assert!(users.list()[1].contains("~app:*"));
    }

    #[test]
    fn bad_users_are_refused_with_the_field() {
        let err = Users::from_config(&config(
            "[[user]]\nname = \"a\"\npassword = \"p\"\ncommands = [\"everything\"]\n",
        ))
        .unwrap_err();
        assert!(err.contains("user[0] \"a\".commands"), "{err}");
        let err = Users::from_config(&config(
            "[[user]]\nname = \"a\"\npassword = \"sha256:zz\"\n",
        ))
        .unwrap_err();
        assert!(err.contains("64 hex digits"), "{err}");
    }

    #[test]
    fn protected_mode_refuses_public_binds_without_password() {
        let cfg = config("[server]\nbind = \"0.0.0.0\"\n");
        let users = Users::from_config(&cfg).unwrap();
        assert!(protected_mode_refusal(&cfg, &users)
            .unwrap()
            .contains("requirepass"));
        let cfg = config("[server]\nbind = \"0.0.0.0\"\nrequirepass = \"x\"\n");
        assert!(protected_mode_refusal(&cfg, &Users::from_config(&cfg).unwrap()).is_none());
        let cfg = config("[server]\nbind = \"127.0.0.1\"\n");
        assert!(protected_mode_refusal(&cfg, &Users::from_config(&cfg).unwrap()).is_none());
    }
}
