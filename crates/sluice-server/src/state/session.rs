//! One connection's state, in one place: commands receive it as `&mut Session`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::clients::{ClientInfo, ClientRegistry};
use crate::auth::User;

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
    /// Whether the last command's reply is sent: SHUTDOWN closes without one, CLIENT REPLY
    /// OFF / SKIP suppress them. One field, so the connection loop checks one byte per
    /// command for all of them.
    pub reply: ReplyMode,
    /// The last command run, for CLIENT LIST.
    pub last_command: &'static str,
    /// The authenticated user; `None` until AUTH when a password is required.
    pub user: Option<Arc<User>>,
    /// MULTI: the commands queued for EXEC; `None` outside a transaction.
    pub multi: Option<MultiQueue>,
    /// WATCHed keys; `None` until the first WATCH.
    pub watch: Option<sluice::WatchSet>,
    /// Set by a script stopped (SCRIPT KILL, `script_timeout`) inside EXEC: the EXEC applies
    /// nothing and answers this error, rather than commit what the script had staged.
    pub discard_exec: Option<crate::frontend::Frame>,
    /// A command run inside this one (by EXEC or a script) answered an error, already counted
    /// in INFO errorstats: a script passing it on as its own reply does not count it again.
    pub inner_error_counted: bool,
    addr: String,
    laddr: String,
    created: Instant,
    /// Where CLIENT LIST reads this session (only the registry: a session never needs the
    /// rest of the server state).
    clients: Arc<ClientRegistry>,
}

/// What happens to the replies of a connection's commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyMode {
    /// Sent (CLIENT REPLY ON, the default).
    Send,
    /// SHUTDOWN: the connection closes without a reply.
    Close,
    /// CLIENT REPLY OFF: none is sent until CLIENT REPLY ON.
    Off,
    /// CLIENT REPLY SKIP was just run: neither its reply nor the next command's is sent.
    SkipThisAndNext,
    /// The command after CLIENT REPLY SKIP: its reply is not sent.
    SkipNext,
}

/// The commands a connection queued after MULTI.
#[derive(Debug, Default)]
pub struct MultiQueue {
    /// Each queued request, whole (`argv[0]` is the name).
    pub commands: Vec<Vec<Bytes>>,
    /// Bytes queued so far, held against [`MultiQueue::MAX_BYTES`].
    pub bytes: usize,
    /// A command was refused while queueing (unknown, wrong arity, no permission, queue
    /// full): EXEC must answer EXECABORT and run nothing.
    pub refused: bool,
}

impl MultiQueue {
    /// The most a transaction may queue, in argument bytes. Redis bounds it only by
    /// `maxmemory`; a cache in front of a database bounds every connection's memory, so one
    /// client cannot exhaust the server by never sending EXEC.
    pub const MAX_BYTES: usize = 512 << 20;

    /// Queues a request, or refuses it (and so the transaction) if the queue is full.
    pub fn push(&mut self, args: &[Bytes]) -> bool {
        let size: usize = args.iter().map(|a| a.len() + 16).sum();
        if self.bytes + size > Self::MAX_BYTES {
            self.refused = true;
            return false;
        }
        self.bytes += size;
        self.commands.push(args.to_vec());
        true
    }
}

impl Session {
    /// Ends MULTI and unwatches every key (EXEC, DISCARD, RESET).
    pub fn end_transaction(&mut self) {
        self.multi = None;
        if let Some(watch) = &mut self.watch {
            watch.unwatch();
        }
    }

    /// Sets the connection name.
    pub fn set_name(&mut self, name: Option<Bytes>) {
        self.name = name;
    }

    /// The client's `ip:port`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Publishes this session's visible fields to CLIENT LIST.
    pub fn publish(&self) {
        self.clients.put(ClientInfo {
            id: self.id,
            addr: self.addr.clone(),
            laddr: self.laddr.clone(),
            name: self.name.clone(),
            db: self.db,
            proto: self.proto,
            last_command: self.last_command,
            created: Some(self.created),
        });
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.clients.remove(self.id);
    }
}

impl Session {
    /// A session for a connection from `addr` to `laddr`, published to `clients` until it is
    /// dropped.
    pub(crate) fn new(
        id: u64,
        user: Option<Arc<User>>,
        addr: SocketAddr,
        laddr: SocketAddr,
        clients: Arc<ClientRegistry>,
    ) -> Session {
        let session = Session {
            id,
            db: 0,
            proto: 2,
            name: None,
            lib_name: None,
            lib_ver: None,
            close_after_reply: false,
            reply: ReplyMode::Send,
            last_command: "",
            user,
            multi: None,
            watch: None,
            discard_exec: None,
            inner_error_counted: false,
            addr: addr.to_string(),
            laddr: laddr.to_string(),
            created: Instant::now(),
            clients,
        };
        session.publish();
        session
    }
}
