//! One connection's state, in one place: commands receive it as `&mut Session`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::clients::{ClientHandle, ClientInfo, ClientRegistry};
use super::pubsub::Subscriptions;
use crate::auth::User;

/// A blocked command's wait (see [`Session::blocked`]).
pub struct Blocked {
    /// Its place in the queues of its keys.
    pub ticket: super::BlockTicket,
    /// When it gives up and answers nil; `None`: it waits for ever (timeout 0).
    pub deadline: Option<tokio::time::Instant>,
}

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
    /// The last command run (`client|list` for a sub-command), for CLIENT LIST.
    pub last_command: &'static str,
    /// CLIENT NO-EVICT ON: shown as flag `e` (Sluice evicts no client for memory).
    pub no_evict: bool,
    /// A script's `redis.call` is running the command (XREAD refuses BLOCK there, as Redis
    /// 7.0 does).
    pub in_script: bool,
    /// With `[cluster] nodes`, while a script runs: the one hash slot its keys may be in
    /// (its declared keys', or the first its calls reached), and whether its
    /// `allow-cross-slot-keys` flag lifts that rule (Redis 7.0's `original_c->slot`).
    pub script_slot: Option<u16>,
    /// See `script_slot`.
    pub script_cross_slot: bool,
    /// The authenticated user; `None` until AUTH when a password is required.
    pub user: Option<Arc<User>>,
    /// MULTI: the commands queued for EXEC; `None` outside a transaction.
    pub multi: Option<MultiQueue>,
    /// WATCHed keys; `None` until the first WATCH.
    pub watch: Option<sluice::WatchSet>,
    /// Channels, patterns and shard channels subscribed to, and the mailbox their messages
    /// wait in; `None` until the first SUBSCRIBE (kept after the last UNSUBSCRIBE, so that
    /// messages that arrived before it are still sent).
    pub pubsub: Option<Box<Subscriptions>>,
    /// Keyspace notifications staged by the running command (or its EXEC or script),
    /// published by `dispatch` when it is done (`state::key_events`).
    pub key_events: Vec<super::KeyEvent>,
    /// A blocking command (BZPOPMIN ...) waiting for its keys: its place in their queues and
    /// when it gives up (`None`: never). Dropped (leaving the queues) when it is served, times
    /// out or the connection closes.
    pub blocked: Option<Blocked>,
    /// Set by a blocking command that found nothing to take: the connection writes the
    /// replies before it, waits for a key of `blocked`, then runs the command again.
    pub block_now: bool,
    /// Set by a script stopped (SCRIPT KILL, `script_timeout`) inside EXEC: the EXEC applies
    /// nothing and answers this error, rather than commit what the script had staged.
    pub discard_exec: Option<crate::frontend::Frame>,
    /// A command run inside this one (by EXEC or a script) answered an error, already counted
    /// in INFO errorstats: a script passing it on as its own reply does not count it again.
    pub inner_error_counted: bool,
    addr: String,
    laddr: String,
    fd: i32,
    created: Instant,
    /// What CLIENT KILL pulls, and the per-read fields CLIENT LIST shows.
    handle: Arc<ClientHandle>,
    /// The last command and MULTI queue length last copied to the registry.
    published: (&'static str, Option<usize>),
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

    /// Whether the connection is subscribed to anything: in RESP2 it may then run only the
    /// (un)subscribe commands, PING, QUIT and RESET.
    pub fn subscribed(&self) -> bool {
        self.pubsub.as_ref().is_some_and(|s| s.any())
    }

    /// The client's `ip:port`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// This connection's kill switch and per-read fields.
    pub fn handle(&self) -> &Arc<ClientHandle> {
        &self.handle
    }

    fn info(&self) -> ClientInfo {
        ClientInfo {
            id: self.id,
            addr: self.addr.clone(),
            laddr: self.laddr.clone(),
            fd: self.fd,
            name: self.name.clone(),
            db: self.db,
            proto: self.proto,
            user: self.user.as_ref().map(|u| u.name.clone()),
            last_command: (!self.last_command.is_empty()).then(|| self.last_command.to_string()),
            multi: self.multi.as_ref().map(|m| m.commands.len()),
            multi_mem: self.multi.as_ref().map_or(0, |m| m.bytes),
            no_evict: self.no_evict,
            subscriptions: self.pubsub.as_ref().map_or([0; 3], |s| s.counts()),
            created: Some(self.created),
        }
    }

    /// Publishes this session's visible fields to CLIENT LIST (after a command changed the
    /// name, database, protocol, user...).
    pub fn publish(&mut self) {
        self.published = (
            self.last_command,
            self.multi.as_ref().map(|m| m.commands.len()),
        );
        self.clients.put(self.info());
    }

    /// Publishes the last command and the MULTI queue if they changed since the last call:
    /// run once per batch of requests, it costs two comparisons when they did not.
    pub fn publish_progress(&mut self) {
        let multi = self.multi.as_ref().map(|m| m.commands.len());
        let (command, queued) = self.published;
        if std::ptr::eq(command, self.last_command) && queued == multi {
            return;
        }
        self.published = (self.last_command, multi);
        let last_command = self.last_command.to_string();
        let multi_mem = self.multi.as_ref().map_or(0, |m| m.bytes);
        self.clients.update(self.id, |info| {
            info.last_command = Some(last_command);
            info.multi = multi;
            info.multi_mem = multi_mem;
        });
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.clients.remove(self.id);
    }
}

impl Session {
    /// A session for a connection from `addr` to `laddr` on socket `fd` (-1: none), published
    /// to `clients` until it is dropped.
    pub(crate) fn new(
        id: u64,
        user: Option<Arc<User>>,
        (addr, laddr, fd): (SocketAddr, SocketAddr, i32),
        clients: Arc<ClientRegistry>,
    ) -> Session {
        let placeholder = ClientInfo::default();
        let handle = clients.register(ClientInfo { id, ..placeholder });
        let mut session = Session {
            id,
            db: 0,
            proto: 2,
            name: None,
            lib_name: None,
            lib_ver: None,
            close_after_reply: false,
            reply: ReplyMode::Send,
            last_command: "",
            no_evict: false,
            in_script: false,
            script_slot: None,
            script_cross_slot: false,
            user,
            multi: None,
            watch: None,
            pubsub: None,
            key_events: Vec::new(),
            blocked: None,
            block_now: false,
            discard_exec: None,
            inner_error_counted: false,
            addr: addr.to_string(),
            laddr: laddr.to_string(),
            fd,
            created: Instant::now(),
            handle,
            published: ("", None),
            clients,
        };
        session.publish();
        session
    }
}
