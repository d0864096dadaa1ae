//! Sluice's own CONFIG parameters: the write-back keyspaces' run-time settings, under a
//! `sluice-` prefix so no Redis parameter is shadowed.
//!
//! - `sluice-<keyspace>-flush_interval` (milliseconds), `sluice-<keyspace>-flush_batch` and
//!   `sluice-<keyspace>-max_dirty`: one write-back keyspace's setting;
//! - `sluice-flush_interval`, `sluice-flush_batch`, `sluice-max_dirty`: every write-back
//!   keyspace at once (CONFIG GET shows it while every keyspace has the same value).
//!
//! The setting names match case-insensitively, as Redis's do; the keyspace's name exactly
//! first, then case-insensitively.

use std::time::Duration;

use sluice::{KeyspaceSetting, KeyspaceSettings, Sluice};

/// Which setting a parameter names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Setting {
    FlushInterval,
    FlushBatch,
    MaxDirty,
}

const SETTINGS: [(Setting, &str); 3] = [
    (Setting::FlushInterval, "flush_interval"),
    (Setting::FlushBatch, "flush_batch"),
    (Setting::MaxDirty, "max_dirty"),
];

impl Setting {
    fn of(settings: &KeyspaceSettings, setting: Setting) -> u64 {
        match setting {
            Setting::FlushInterval => settings.flush_interval.as_millis() as u64,
            Setting::FlushBatch => settings.flush_batch as u64,
            Setting::MaxDirty => settings.max_dirty as u64,
        }
    }
}

/// A Sluice parameter CONFIG SET names: one keyspace's setting, or every keyspace's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    /// The keyspace; `None`: every write-back keyspace.
    keyspace: Option<String>,
    setting: Setting,
}

/// A checked value for a [`Param`].
#[derive(Clone, Copy, Debug)]
pub struct Value(u64);

/// The parameter `name` stands for, if it is one of Sluice's.
pub fn param(sluice: &Sluice, name: &[u8]) -> Option<Param> {
    let name = std::str::from_utf8(name).ok()?;
    let rest = strip_prefix_ignore_case(name, "sluice-")?;
    for (setting, suffix) in SETTINGS {
        if rest.eq_ignore_ascii_case(suffix) {
            return Some(Param {
                keyspace: None,
                setting,
            });
        }
        let Some(keyspace) = strip_suffix_ignore_case(rest, suffix)
            .and_then(|k| k.strip_suffix('-'))
            .filter(|k| !k.is_empty())
        else {
            continue;
        };
        let keyspaces = sluice.keyspace_settings();
        let found = keyspaces.iter().find(|k| k.name == keyspace).or_else(|| {
            keyspaces
                .iter()
                .find(|k| k.name.eq_ignore_ascii_case(keyspace))
        })?;
        return Some(Param {
            keyspace: Some(found.name.clone()),
            setting,
        });
    }
    None
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn strip_suffix_ignore_case<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let at = s.len().checked_sub(suffix.len())?;
    let tail = s.get(at..)?;
    tail.eq_ignore_ascii_case(suffix).then(|| &s[..at])
}

impl Param {
    /// Whether two names stand for the same parameter (a repeated one fails CONFIG SET).
    pub fn same(&self, other: &Param) -> bool {
        self == other
    }

    /// The value to set, checked as Redis checks a numeric parameter, or why it is refused.
    pub fn parse(&self, value: &[u8]) -> Result<Value, String> {
        let max = match self.setting {
            Setting::FlushInterval | Setting::FlushBatch => i32::MAX as i64,
            Setting::MaxDirty => i64::MAX,
        };
        let n = sluice::numeric::parse_strict_i64(value)
            .ok_or("argument couldn't be parsed into an integer")?;
        if !(1..=max).contains(&n) {
            return Err(format!("argument must be between 1 and {max} inclusive"));
        }
        Ok(Value(n as u64))
    }

    /// Applies a checked value to its keyspace, or to every write-back keyspace.
    pub fn apply(&self, sluice: &Sluice, Value(n): Value) {
        let setting = match self.setting {
            Setting::FlushInterval => KeyspaceSetting::FlushInterval(Duration::from_millis(n)),
            Setting::FlushBatch => KeyspaceSetting::FlushBatch(n as usize),
            Setting::MaxDirty => KeyspaceSetting::MaxDirty(n as usize),
        };
        let names: Vec<String> = match &self.keyspace {
            Some(name) => vec![name.clone()],
            None => sluice
                .keyspace_settings()
                .into_iter()
                .map(|k| k.name)
                .collect(),
        };
        for name in names {
            sluice.set_keyspace_setting(&name, setting);
        }
    }
}

/// Every Sluice parameter with its value now: the three for all keyspaces (while they
/// agree), then each write-back keyspace's three.
pub fn parameters(sluice: &Sluice) -> Vec<(String, String)> {
    let keyspaces = sluice.keyspace_settings();
    let mut out = Vec::new();
    for (setting, suffix) in SETTINGS {
        let mut values = keyspaces.iter().map(|k| Setting::of(k, setting));
        if let Some(first) = values.next() {
            if values.all(|v| v == first) {
                out.push((format!("sluice-{suffix}"), first.to_string()));
            }
        }
    }
    for k in &keyspaces {
        for (setting, suffix) in SETTINGS {
            out.push((
                format!("sluice-{}-{suffix}", k.name),
                Setting::of(k, setting).to_string(),
            ));
        }
    }
    out
}
