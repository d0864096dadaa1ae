//! Every live connection, as CLIENT LIST / INFO show it and CLIENT KILL finds it.
//!
//! A connection's fields live in two places, by how often they change: what changes on a
//! command the client chose to run (name, database, protocol, user, the last command, the
//! MULTI queue) is copied into the registry under its lock when it changes; what changes on
//! every read (the query buffer, the time of the last read) is kept in relaxed atomics in the
//! connection's [`ClientHandle`], written once per batch of requests, never per command.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// What CLIENT LIST shows of a connection, as its session last published it.
#[derive(Clone, Debug, Default)]
pub struct ClientInfo {
    pub(crate) id: u64,
    pub(crate) addr: String,
    pub(crate) laddr: String,
    /// The socket's file descriptor; -1 where there is none (a test session).
    pub(crate) fd: i32,
    pub(crate) name: Option<Bytes>,
    pub(crate) db: u8,
    pub(crate) proto: u8,
    /// The authenticated user's name; `None` before AUTH.
    pub(crate) user: Option<String>,
    /// The last command run (`client|list` for a sub-command); `None` before the first.
    pub(crate) last_command: Option<String>,
    /// Commands queued after MULTI; `None` outside a transaction.
    pub(crate) multi: Option<usize>,
    /// Bytes queued after MULTI.
    pub(crate) multi_mem: usize,
    /// CLIENT NO-EVICT ON.
    pub(crate) no_evict: bool,
    /// Channels, patterns and shard channels subscribed to (`sub`, `psub`, `ssub`).
    pub(crate) subscriptions: [usize; 3],
    pub(crate) created: Option<Instant>,
}

/// The part of a connection other connections act on: CLIENT KILL's switch, and the fields
/// that change on every read, kept in relaxed atomics.
#[derive(Debug)]
pub struct ClientHandle {
    /// CLIENT KILL: close without sending the replies of the batch that was running.
    killed: AtomicBool,
    /// Shutdown: close once the replies of the batch that was running are written.
    closing: AtomicBool,
    kill: Notify,
    /// When it last sent something, in ms since the server started ([`Clock`]).
    last_read_ms: AtomicU64,
    /// Bytes waiting in the query buffer when the last batch of requests started.
    query_buffered: AtomicUsize,
    /// The query buffer's capacity then.
    query_capacity: AtomicUsize,
    /// Replies waiting for a client that does not read them.
    output_pending: AtomicUsize,
    /// Waiting for a CLIENT PAUSE to end (flag `b`).
    paused: AtomicBool,
    /// A wait on keys (BLPOP, BZPOPMIN, ...) that CLIENT UNBLOCK may end, in one word so that
    /// an UNBLOCK meant for one wait can never end the next: the wait's number (bits 9 and
    /// up), whether the client is blocked now ([`BLOCKED`]), and why CLIENT UNBLOCK ended it
    /// (the low byte: 0 it did not, [`UNBLOCK_TIMEOUT`] or [`UNBLOCK_ERROR`]).
    unblock_state: AtomicU64,
    unblock: Notify,
}

/// The bit of `ClientHandle::unblock_state` set while the client is blocked on keys.
const BLOCKED: u64 = 1 << 8;
/// One wait's number, in `ClientHandle::unblock_state`.
const WAIT: u64 = 1 << 9;

/// CLIENT UNBLOCK ... TIMEOUT: the blocked command answers as if it timed out.
pub const UNBLOCK_TIMEOUT: u8 = 1;
/// CLIENT UNBLOCK ... ERROR: the blocked command answers `-UNBLOCKED`.
pub const UNBLOCK_ERROR: u8 = 2;

impl ClientHandle {
    fn new(now_ms: u64) -> ClientHandle {
        ClientHandle {
            killed: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            kill: Notify::new(),
            last_read_ms: AtomicU64::new(now_ms),
            query_buffered: AtomicUsize::new(0),
            query_capacity: AtomicUsize::new(0),
            output_pending: AtomicUsize::new(0),
            paused: AtomicBool::new(false),
            unblock_state: AtomicU64::new(0),
            unblock: Notify::new(),
        }
    }

    /// Closes the connection: at once if it waits (for input, for a pause, for a client
    /// that does not read), otherwise before its next batch of requests runs.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::Relaxed);
        // Every waiter: the connection's read wait and a command's pause wait may both be
        // registered, and `notify_one` would wake only the first.
        self.kill.notify_waiters();
    }

    /// Closes the connection for a shutdown: as [`ClientHandle::kill`], except that the
    /// replies of the batch running are written first.
    pub fn close(&self) {
        self.closing.store(true, Ordering::Relaxed);
        self.kill.notify_waiters();
    }

    /// Whether CLIENT KILL closed this connection.
    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Relaxed)
    }

    /// Completes once the connection is killed, or closed for a shutdown.
    pub async fn killed(&self) {
        // A `Notified` sees `notify_waiters` calls made after it was created, polled or not:
        // created before the flags are read, it cannot miss a kill in between.
        let notified = self.kill.notified();
        if !self.is_killed() && !self.closing.load(Ordering::Relaxed) {
            notified.await;
        }
    }

    /// Records a read: the time, and what the query buffer holds as a batch starts.
    pub fn note_read(&self, now_ms: u64, buffered: usize, capacity: usize) {
        self.last_read_ms.store(now_ms, Ordering::Relaxed);
        self.query_buffered.store(buffered, Ordering::Relaxed);
        self.query_capacity.store(capacity, Ordering::Relaxed);
    }

    /// Records what the query buffer holds once a batch has run (an incomplete request).
    pub fn note_consumed(&self, buffered: usize) {
        self.query_buffered.store(buffered, Ordering::Relaxed);
    }

    /// Records the replies waiting for a client that does not read them (0: none).
    pub fn note_output_pending(&self, bytes: usize) {
        self.output_pending.store(bytes, Ordering::Relaxed);
    }

    /// Records whether the connection waits for a CLIENT PAUSE to end.
    pub fn note_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
    }

    /// Records whether the connection is blocked on keys. Each wait is a new one: a CLIENT
    /// UNBLOCK that came too late for the last is forgotten.
    pub fn note_blocked(&self, blocked: bool) {
        let _ = self
            .unblock_state
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |state| {
                let wait = state & !(WAIT - 1);
                Some(match (blocked, state & BLOCKED != 0) {
                    // Already blocked (the connection confirms what the command began).
                    (true, true) => state,
                    (true, false) => wait.wrapping_add(WAIT) | BLOCKED,
                    (false, _) => wait,
                })
            });
    }

    /// CLIENT UNBLOCK: ends the connection's wait on keys with `reason`; false if it is not
    /// blocked on keys (or was unblocked already).
    fn unblock(&self, reason: u8) -> bool {
        let state = self.unblock_state.load(Ordering::SeqCst);
        if state & BLOCKED == 0 || state & 0xff != 0 {
            return false;
        }
        // Fails if the wait ended (or another began) meanwhile.
        let ended = self
            .unblock_state
            .compare_exchange(
                state,
                state | u64::from(reason),
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_ok();
        if ended {
            self.unblock.notify_one();
        }
        ended
    }

    /// Completes when CLIENT UNBLOCK ends the wait on keys: its reason. A wake-up left over
    /// from an earlier wait (the client was served first) is skipped.
    pub async fn unblocked(&self) -> u8 {
        loop {
            self.unblock.notified().await;
            let state = self.unblock_state.load(Ordering::SeqCst);
            match (state & BLOCKED != 0, (state & 0xff) as u8) {
                (true, reason) if reason != 0 => return reason,
                _ => continue,
            }
        }
    }
}

/// Milliseconds since the server started, advanced by a ticker rather than read from the
/// system per request: a connection stamps its reads with it (CLIENT LIST `idle`), and a clock
/// read per read would cost more than the GET it serves.
#[derive(Debug)]
pub struct Clock {
    started: Instant,
    now_ms: AtomicU64,
}

impl Default for Clock {
    fn default() -> Clock {
        Clock {
            started: Instant::now(),
            now_ms: AtomicU64::new(0),
        }
    }
}

impl Clock {
    /// The time at the last tick.
    pub fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::Relaxed)
    }

    /// Reads the system clock: run every 100 ms by the server.
    pub fn tick(&self) {
        let ms = self.started.elapsed().as_millis().min(u64::MAX as u128) as u64;
        self.now_ms.store(ms, Ordering::Relaxed);
    }
}

struct Entry {
    info: ClientInfo,
    handle: Arc<ClientHandle>,
}

/// Every live connection, for CLIENT LIST, INFO and KILL.
#[derive(Default)]
pub struct ClientRegistry {
    clients: Mutex<HashMap<u64, Entry>>,
    /// The coarse clock connections stamp their reads with.
    pub clock: Clock,
}

/// What CLIENT KILL's filter form matches; every given field must match.
#[derive(Debug, Default)]
pub struct KillFilter {
    /// ID.
    pub id: Option<u64>,
    /// ADDR: the client's `ip:port`.
    pub addr: Option<Bytes>,
    /// LADDR: the local `ip:port` it connected to.
    pub laddr: Option<Bytes>,
    /// USER.
    pub user: Option<Bytes>,
    /// TYPE other than `normal` (every Sluice client is `normal`): matches nobody.
    pub no_normal_clients: bool,
    /// MAXAGE (Redis 7.4): connections open longer than this many seconds.
    pub max_age_secs: Option<u64>,
    /// SKIPME yes: never the calling connection.
    pub skip_me: bool,
}

impl ClientRegistry {
    /// Registers a connection; its handle is what CLIENT KILL pulls.
    pub(crate) fn register(&self, info: ClientInfo) -> Arc<ClientHandle> {
        let handle = Arc::new(ClientHandle::new(self.clock.now_ms()));
        let entry = Entry {
            info,
            handle: handle.clone(),
        };
        self.clients.lock().insert(entry.info.id, entry);
        handle
    }

    /// Replaces a registered connection's published fields.
    pub(crate) fn put(&self, info: ClientInfo) {
        if let Some(entry) = self.clients.lock().get_mut(&info.id) {
            entry.info = info;
        }
    }

    /// Updates the fields a command changes as it runs (the last command, the MULTI queue).
    pub(crate) fn update(&self, id: u64, change: impl FnOnce(&mut ClientInfo)) {
        if let Some(entry) = self.clients.lock().get_mut(&id) {
            change(&mut entry.info);
        }
    }

    pub(crate) fn remove(&self, id: u64) {
        self.clients.lock().remove(&id);
    }

    /// Live connections.
    pub fn count(&self) -> usize {
        self.clients.lock().len()
    }

    /// One connection's CLIENT INFO line; `caller` is the asking connection's id and its
    /// command's argument bytes (`argv-mem`, which only the running command has).
    pub fn line(&self, id: u64, caller: (u64, usize)) -> Option<String> {
        let now = self.clock.now_ms();
        self.clients
            .lock()
            .get(&id)
            .map(|e| format_client(e, now, caller))
    }

    /// CLIENT LIST text: every connection, by id (`caller` as for [`ClientRegistry::line`]).
    pub fn list(&self, caller: (u64, usize)) -> String {
        let now = self.clock.now_ms();
        let clients = self.clients.lock();
        let mut entries: Vec<&Entry> = clients.values().collect();
        entries.sort_by_key(|e| e.info.id);
        entries
            .into_iter()
            .map(|e| format_client(e, now, caller))
            .collect()
    }

    /// CLIENT UNBLOCK: ends the wait of client `id` if it is blocked on keys, as `reason`
    /// says; whether it was.
    pub fn unblock(&self, id: u64, reason: u8) -> bool {
        self.clients
            .lock()
            .get(&id)
            .is_some_and(|entry| entry.handle.unblock(reason))
    }

    /// Closes every connection (shutdown), each once its running batch's replies are out.
    pub(crate) fn close_all(&self) {
        for entry in self.clients.lock().values() {
            entry.handle.close();
        }
    }

    /// Kills every connection `filter` matches, `me` being the caller; how many, and whether
    /// the caller was one of them (it closes after its reply, as in Redis).
    pub fn kill(&self, filter: &KillFilter, me: u64) -> (usize, bool) {
        if filter.no_normal_clients {
            return (0, false);
        }
        let clients = self.clients.lock();
        let (mut killed, mut me_too) = (0, false);
        for entry in clients.values() {
            let c = &entry.info;
            let same = |want: &Option<Bytes>, have: &str| {
                want.as_ref().is_none_or(|w| &w[..] == have.as_bytes())
            };
            let old_enough = filter
                .max_age_secs
                .is_none_or(|max| c.created.is_some_and(|t| t.elapsed().as_secs() > max));
            // A connection already killed is closing: it is not killed (or counted) again.
            let matches = !entry.handle.is_killed()
                && filter.id.is_none_or(|id| id == c.id)
                && same(&filter.addr, &c.addr)
                && same(&filter.laddr, &c.laddr)
                && filter.user.as_ref().is_none_or(|u| {
                    c.user
                        .as_ref()
                        .is_some_and(|name| name.as_bytes() == &u[..])
                })
                && old_enough
                && !(filter.skip_me && c.id == me);
            if matches {
                killed += 1;
                if c.id == me {
                    me_too = true;
                } else {
                    entry.handle.kill();
                }
            }
        }
        (killed, me_too)
    }
}

fn format_client(entry: &Entry, now_ms: u64, (me, my_argv_mem): (u64, usize)) -> String {
    let c = &entry.info;
    let argv_mem = if c.id == me { my_argv_mem } else { 0 };
    let h = &entry.handle;
    let name = c
        .name
        .as_ref()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    let age = c.created.map(|t| t.elapsed().as_secs()).unwrap_or(0);
    let idle = now_ms.saturating_sub(h.last_read_ms.load(Ordering::Relaxed)) / 1000;
    let mut flags = String::new();
    // In Redis's order (`getClientFlagsString`).
    if c.subscriptions.iter().any(|n| *n > 0) {
        flags.push('P');
    }
    if c.multi.is_some() {
        flags.push('x');
    }
    if h.paused.load(Ordering::Relaxed) {
        flags.push('b');
    }
    if h.is_killed() {
        flags.push('A');
    }
    if c.no_evict {
        flags.push('e');
    }
    if flags.is_empty() {
        flags.push('N');
    }
    let qbuf = h.query_buffered.load(Ordering::Relaxed);
    let rbs = h.query_capacity.load(Ordering::Relaxed);
    let qbuf_free = rbs.saturating_sub(qbuf);
    let omem = h.output_pending.load(Ordering::Relaxed);
    let (oll, events) = if omem > 0 { (1, "rw") } else { (0, "r") };
    // What this connection holds: its buffers, its MULTI queue, and its session (~1 KiB).
    let tot_mem = rbs + omem + c.multi_mem + argv_mem + 1024;
    format!(
        "id={} addr={} laddr={} fd={} name={name} age={age} idle={idle} flags={flags} db={} sub={} psub={} ssub={} multi={} qbuf={qbuf} qbuf-free={qbuf_free} argv-mem={argv_mem} multi-mem={} rbs={rbs} rbp={rbs} obl=0 oll={oll} omem={omem} tot-mem={tot_mem} events={events} cmd={} user={} redir=-1 resp={}\n",
        c.id,
        c.addr,
        c.laddr,
        c.fd,
        c.db,
        c.subscriptions[0],
        c.subscriptions[1],
        c.subscriptions[2],
        c.multi.map_or(-1, |n| n as i64),
        c.multi_mem,
        c.last_command.as_deref().unwrap_or("NULL"),
        c.user.as_deref().unwrap_or("default"),
        c.proto,
    )
}
