//! Key routing between the nodes of a cluster (`[cluster] nodes`), as Redis Cluster routes:
//! a key's hash slot is CRC16 of the key (or of its `{hash tag}`) modulo 16384, the slots are
//! split evenly between the configured nodes in their order, and a node serves only its own
//! slots. Every key therefore has one node that reads and writes it, whatever its policy: a
//! write-back write is read back from that node's buffer before it is flushed, and a key's
//! writes are journalled, flushed and (if the node dies) taken over in one order.
//!
//! The map is static: every node is given the same list, and the database's journal mark
//! refuses a node with another one. A node serves its slots only while its claim on its node
//! name is valid ([`sluice::Sluice::may_serve`]): a node paused past its lease, whose journal
//! another node may have taken over, answers `CLUSTERDOWN` rather than from a cache that may
//! be stale.

use sluice::config::{SlotMap, HASH_SLOTS};

/// The hash slot of `key`: CRC16 (XMODEM) of its hash tag (the bytes between the first `{`
/// and the first `}` after it, when there are any) or of the whole key, modulo 16384.
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16(hashed) % HASH_SLOTS
}

/// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), Redis Cluster's key hash: one
/// table lookup per byte (every routed command hashes its keys).
fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &byte| {
        (crc << 8) ^ CRC16_TABLE[usize::from((crc >> 8) as u8 ^ byte)]
    })
}

/// The CRC of each byte value alone, shifted into the high byte: [`crc16`]'s eight steps of
/// a byte, done once at compile time.
const CRC16_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut byte = 0;
    while byte < 256 {
        let mut crc = (byte as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[byte] = crc;
        byte += 1;
    }
    table
};

/// One node of the map, as CLUSTER SLOTS, SHARDS and NODES show it.
#[derive(Debug, Clone)]
pub struct RoutedNode {
    /// `[cluster] node_name`.
    pub name: String,
    /// Its 40-hex-digit node ID (SHA-1 of its name, so every node gives it the same ID).
    pub id: String,
    /// The host clients reach it at.
    pub host: String,
    /// The port clients reach it at.
    pub port: u16,
    /// Its first and last slot.
    pub slots: (u16, u16),
}

/// Where a request's keys are served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Here (no keys, or all in one slot this node serves).
    Here,
    /// The keys are in more than one slot.
    CrossSlot,
    /// Another node serves the slot.
    Moved(u16, usize),
}

/// The slot map this node routes by.
#[derive(Debug, Clone)]
pub struct Routing {
    map: SlotMap,
    nodes: Vec<RoutedNode>,
}

impl Routing {
    /// The routing `map` describes.
    pub fn new(map: SlotMap) -> Routing {
        let nodes = map
            .nodes
            .iter()
            .enumerate()
            .map(|(i, (name, addr))| {
                let (host, port) = addr.rsplit_once(':').unwrap_or((addr.as_str(), "0"));
                RoutedNode {
                    name: name.clone(),
                    id: crate::script::sha1_hex(format!("sluice-node:{name}").as_bytes()),
                    host: host
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_string(),
                    port: port.parse().unwrap_or(0),
                    slots: map.range(i),
                }
            })
            .collect();
        Routing { map, nodes }
    }

    /// Every node, in the configured order.
    pub fn nodes(&self) -> &[RoutedNode] {
        &self.nodes
    }

    /// This node.
    pub fn own(&self) -> &RoutedNode {
        &self.nodes[self.map.own]
    }

    /// The node that serves `slot`.
    pub fn owner(&self, slot: u16) -> &RoutedNode {
        &self.nodes[self.map.owner(slot)]
    }

    /// Whether this node serves `slot`.
    pub fn owns(&self, slot: u16) -> bool {
        self.map.owner(slot) == self.map.own
    }

    /// Where the keys of one request (or of a whole MULTI queue) are served.
    pub fn route<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>) -> Route {
        let mut slot = None;
        for key in keys {
            let this = key_slot(key);
            match slot {
                None => slot = Some(this),
                Some(s) if s != this => return Route::CrossSlot,
                Some(_) => {}
            }
        }
        match slot {
            Some(s) if !self.owns(s) => Route::Moved(s, self.map.owner(s)),
            _ => Route::Here,
        }
    }

    /// The `MOVED` error for `slot`, served by node `index`.
    pub fn moved(&self, slot: u16, index: usize) -> String {
        // `ip:port` as Redis writes it, an IPv6 address unbracketed too (clients split at the
        // last colon).
        let node = &self.nodes[index];
        format!("MOVED {slot} {}:{}", node.host, node.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table-driven CRC equals the bit-by-bit definition on every byte value and on keys
    /// of every length up to 64.
    #[test]
    fn the_crc_table_matches_the_bitwise_definition() {
        fn bitwise(bytes: &[u8]) -> u16 {
            let mut crc: u16 = 0;
            for &byte in bytes {
                crc ^= (byte as u16) << 8;
                for _ in 0..8 {
                    crc = if crc & 0x8000 != 0 {
                        (crc << 1) ^ 0x1021
                    } else {
                        crc << 1
                    };
                }
            }
            crc
        }
        for byte in 0..=255u8 {
            assert_eq!(crc16(&[byte]), bitwise(&[byte]));
        }
        let key: Vec<u8> = (0..64u8)
            .map(|i| i.wrapping_mul(151).wrapping_add(7))
            .collect();
        for len in 0..=key.len() {
            assert_eq!(crc16(&key[..len]), bitwise(&key[..len]), "{len}");
        }
    }

    #[test]
    fn slots_are_redis_clusters() {
        // Values from the Redis Cluster specification and redis-cli CLUSTER KEYSLOT.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b""), 0);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"{user1000}.followers"), key_slot(b"user1000"));
        // An empty tag hashes the whole key; only the first `{` counts.
        assert_eq!(key_slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % 16384);
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
    }

    fn map(n: usize, own: usize) -> SlotMap {
        SlotMap {
            nodes: (0..n)
                .map(|i| (format!("n{i}"), format!("127.0.0.1:{}", 7000 + i)))
                .collect(),
            own,
        }
    }

    #[test]
    fn every_slot_has_exactly_one_owner_and_ranges_are_even() {
        for n in [1, 2, 3, 5, 7, 16, 100] {
            let m = map(n, 0);
            let mut next = 0u32;
            for i in 0..n {
                let (first, last) = m.range(i);
                assert_eq!(
                    first as u32,
                    next,
                    "{n} nodes: node {i} starts where {} ended",
                    i.max(1) - 1
                );
                for slot in [first, last, first + (last - first) / 2] {
                    assert_eq!(m.owner(slot), i, "{n} nodes: slot {slot}");
                }
                let size = last as u32 - first as u32 + 1;
                assert!(size == 16384 / n as u32 || size == 16384 / n as u32 + 1);
                next = last as u32 + 1;
            }
            assert_eq!(next, 16384);
        }
        let three = map(3, 0);
        assert_eq!(
            (0..3).map(|i| three.range(i)).collect::<Vec<_>>(),
            vec![(0, 5460), (5461, 10921), (10922, 16383)]
        );
    }

    #[test]
    fn a_request_is_routed_by_its_keys() {
        let r = Routing::new(map(3, 0));
        // "bar" is slot 5061 (node 0), "foo" 12182 (node 2).
        assert_eq!(r.route([&b"bar"[..]]), Route::Here);
        assert_eq!(r.route([&b"foo"[..]]), Route::Moved(12182, 2));
        assert_eq!(r.moved(12182, 2), "MOVED 12182 127.0.0.1:7002");
        assert_eq!(r.route([&b"foo"[..], b"bar"]), Route::CrossSlot);
        assert_eq!(r.route([&b"{foo}a"[..], b"{foo}b"]), Route::Moved(12182, 2));
        assert_eq!(r.route(std::iter::empty::<&[u8]>()), Route::Here);
        assert_eq!(r.own().id.len(), 40);
        assert_ne!(r.nodes()[0].id, r.nodes()[1].id);
    }
}
