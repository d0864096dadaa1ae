//! Every live connection, as CLIENT LIST and INFO show it.

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;

/// What CLIENT LIST shows of a connection.
#[derive(Clone, Debug, Default)]
pub struct ClientInfo {
    pub(crate) id: u64,
    pub(crate) addr: String,
    pub(crate) laddr: String,
    pub(crate) name: Option<Bytes>,
    pub(crate) db: u8,
    pub(crate) proto: u8,
    pub(crate) last_command: &'static str,
    pub(crate) created: Option<Instant>,
}

/// Every live connection, for CLIENT LIST and INFO.
#[derive(Default)]
pub struct ClientRegistry {
    clients: Mutex<HashMap<u64, ClientInfo>>,
}

impl ClientRegistry {
    pub(crate) fn put(&self, info: ClientInfo) {
        self.clients.lock().insert(info.id, info);
    }

    pub(crate) fn remove(&self, id: u64) {
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
        "id={} addr={} laddr={} fd=0 name={} age={age} idle=0 flags=N db={} sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp={}\n",
        c.id,
        c.addr,
        c.laddr,
        text(&c.name),
        c.db,
        if c.last_command.is_empty() { "NULL" } else { c.last_command },
        c.proto,
    )
}
