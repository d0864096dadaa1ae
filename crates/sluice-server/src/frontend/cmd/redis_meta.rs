//! Redis 7.0's own description of the commands Sluice shares with it: each one's COMMAND INFO
//! entry (tips, key specs and sub-commands included) and COMMAND DOCS map, exactly as a
//! redis-server 7.0 answers them.
//!
//! The replies live in `redis_meta.resp`, RESP3 as the server sent it, written by
//! `tools/gen_command_meta.py` (run it against a redis-server 7.0 after adding a command or a
//! sub-command). They are parsed once, on first use, into frames that encode alike in RESP2 and
//! RESP3, as Redis's replies do (maps and sets become flat arrays in RESP2).

use std::collections::HashMap;
use std::sync::OnceLock;

use bytes::Bytes;

use crate::frontend::Frame;

/// One text frame (the header), then for each command the reply to `COMMAND INFO name` and the
/// reply to `COMMAND DOCS name`.
const DATA: &[u8] = include_bytes!("redis_meta.resp");

/// What Redis says about one command or sub-command.
#[derive(Debug, Default)]
pub struct Meta {
    /// COMMAND INFO's entry, all ten elements; a container's last lists all of Redis's
    /// sub-commands.
    pub info: Vec<Frame>,
    /// COMMAND DOCS's map, without a container's `subcommands` entry.
    pub docs: Vec<(Frame, Frame)>,
    /// A container's sub-commands, by full name (`client|list`).
    pub subcommands: HashMap<String, Meta>,
}

/// Redis's description of a command (lower-case name), if Redis 7.0 has it.
pub fn get(name: &str) -> Option<&'static Meta> {
    all().get(name)
}

impl Meta {
    /// The ACL categories of COMMAND INFO (`@admin`, `@slow`, ...).
    pub fn acl_categories(&self) -> Vec<&str> {
        self.words(6)
    }

    /// The flags of COMMAND INFO (`write`, `readonly`, ...).
    pub fn flags(&self) -> Vec<&str> {
        self.words(2)
    }

    /// The simple strings of COMMAND INFO's set at `index`.
    fn words(&self, index: usize) -> Vec<&str> {
        match self.info.get(index) {
            Some(Frame::Set(words) | Frame::Array(words)) => words
                .iter()
                .filter_map(|w| match w {
                    Frame::Simple(w) => Some(w.as_str()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// What Redis 7.0 says of a sub-command (`config|set`), if it has it: a container's
/// sub-commands each have their own flags and categories (CONFIG GET is `@admin`, XINFO STREAM
/// `@read`, XGROUP CREATE a `write`), which ACLs and CLIENT PAUSE WRITE go by rather than the
/// container's.
pub fn subcommand(full_name: &str) -> Option<&'static Meta> {
    let (container, _) = full_name.split_once('|')?;
    get(container)?.subcommands.get(full_name)
}

/// The ACL categories Redis 7.0 gives a sub-command, if it has it ([`subcommand`]).
pub fn subcommand_categories(full_name: &str) -> Option<Vec<&'static str>> {
    Some(subcommand(full_name)?.acl_categories())
}

/// Every command of `redis_meta.resp`, by name; empty if the file were malformed (a test
/// parses it).
pub fn all() -> &'static HashMap<String, Meta> {
    static ALL: OnceLock<HashMap<String, Meta>> = OnceLock::new();
    ALL.get_or_init(|| parse_all(DATA).unwrap_or_default())
}

fn parse_all(data: &'static [u8]) -> Option<HashMap<String, Meta>> {
    let mut at = 0;
    parse(data, &mut at)?; // The header.
    let mut all = HashMap::new();
    while at < data.len() {
        let Frame::Array(mut info) = parse(data, &mut at)? else {
            return None;
        };
        let Frame::Array(fields) = info.pop()? else {
            return None;
        };
        let Frame::Map(mut docs) = parse(data, &mut at)? else {
            return None;
        };
        let (_, Frame::Map(doc)) = docs.pop()? else {
            return None;
        };
        let (name, meta) = meta(fields, doc)?;
        all.insert(name, meta);
    }
    Some(all)
}

/// A command's name and [`Meta`] from its COMMAND INFO entry and COMMAND DOCS map.
fn meta(info: Vec<Frame>, doc: Vec<(Frame, Frame)>) -> Option<(String, Meta)> {
    let name = text(info.first()?)?;
    let mut sub_docs = HashMap::new();
    let mut docs = Vec::new();
    for (key, value) in doc {
        match (text(&key).as_deref(), value) {
            (Some("subcommands"), Frame::Map(subs)) => {
                for (sub, doc) in subs {
                    let Frame::Map(doc) = doc else { return None };
                    sub_docs.insert(text(&sub)?, doc);
                }
            }
            (_, value) => docs.push((key, value)),
        }
    }
    let mut subcommands = HashMap::new();
    if let Some(Frame::Array(subs)) = info.get(9) {
        for sub in subs {
            let Frame::Array(fields) = sub else {
                return None;
            };
            let sub_name = text(fields.first()?)?;
            let doc = sub_docs.remove(&sub_name)?;
            let (sub_name, sub_meta) = meta(fields.clone(), doc)?;
            subcommands.insert(sub_name, sub_meta);
        }
    }
    let meta = Meta {
        info,
        docs,
        subcommands,
    };
    Some((name, meta))
}

fn text(frame: &Frame) -> Option<String> {
    match frame {
        Frame::Bulk(b) => String::from_utf8(b.to_vec()).ok(),
        Frame::Simple(s) => Some(s.clone()),
        _ => None,
    }
}

/// The RESP3 frame at `*at` (the types COMMAND INFO and DOCS use), moving `*at` past it.
fn parse(data: &'static [u8], at: &mut usize) -> Option<Frame> {
    let rest = data.get(*at..)?;
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    let (kind, line) = rest[..end].split_first()?;
    let line = std::str::from_utf8(line).ok()?;
    *at += end + 2;
    let mut items = |n: usize| -> Option<Vec<Frame>> { (0..n).map(|_| parse(data, at)).collect() };
    Some(match kind {
        b'+' => Frame::Simple(line.to_string()),
        b':' => Frame::Integer(line.parse().ok()?),
        b'_' => Frame::Null,
        b'$' => {
            let n: usize = line.parse().ok()?;
            let bulk = data.get(*at..at.checked_add(n)?)?;
            *at += n + 2;
            Frame::Bulk(Bytes::from_static(bulk))
        }
        b'*' => Frame::Array(items(line.parse().ok()?)?),
        b'~' => Frame::Set(items(line.parse().ok()?)?),
        b'%' => {
            let flat = items(line.parse::<usize>().ok()?.checked_mul(2)?)?;
            let mut pairs = Vec::with_capacity(flat.len() / 2);
            let mut flat = flat.into_iter();
            while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
                pairs.push((k, v));
            }
            Frame::Map(pairs)
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_captured_replies_parse() {
        let parsed = parse_all(DATA).expect("redis_meta.resp parses");
        assert_eq!(parsed.len(), all().len());
        let all = parsed;
        let get = &all["get"];
        assert_eq!(get.info.len(), 10);
        assert_eq!(get.info[0], Frame::bulk("get"));
        assert!(get.subcommands.is_empty());
        let client = &all["client"];
        assert_eq!(client.subcommands["client|list"].info.len(), 10);
        assert!(!client.subcommands["client|list"].docs.is_empty());
    }
}
