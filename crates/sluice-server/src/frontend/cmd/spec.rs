//! What a command declares about itself: its [`Spec`] (name, arity, flags, key positions, ACL
//! categories, summary, sub-commands) and its [`Handler`]. Each family file lists its commands'
//! specs beside their handlers; `cmd/mod.rs` assembles the table from those lists.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

use super::util::is;
use crate::frontend::Frame;
use crate::state::{Session, Shared};

/// What a command sees: the server-wide state, its own connection's, and the command table
/// (handed in, so that COMMAND and ACL CAT list the table without importing it).
pub struct Ctx<'a> {
    /// Server-wide state.
    pub shared: &'a Shared,
    /// This connection's state.
    pub session: &'a mut Session,
    /// Every command.
    pub table: &'static Table,
    /// Where the command reads and writes keys: straight on the engine, or staged in the
    /// transaction of an EXEC or a script. Commands reach keys only through it, never through
    /// `shared.sluice` (which would wait for the locks its own transaction holds).
    pub access: sluice::Access<'a>,
}

/// A hot write's keyspace-event staging, carried into its reply closure (the engine holds the
/// access meanwhile). Built only when events of the command's classes are listened to: the
/// reply closure of a write nobody listens to carries one empty option.
pub struct HotEvents<'a> {
    shared: &'a Shared,
    session: &'a mut Session,
    key: Bytes,
}

impl HotEvents<'_> {
    /// Stages `event` of `class` on the command's key.
    pub fn stage(&mut self, class: u32, event: &'static str) {
        self.session
            .stage_key_event(self.shared, class, event, &self.key);
    }
}

impl<'a> Ctx<'a> {
    /// For a hot write of `key`: the access, the selected database, and its event staging if
    /// any of `classes` is listened to (one relaxed load otherwise).
    pub fn for_hot_write(
        self,
        classes: u32,
        key: &Bytes,
    ) -> (sluice::Access<'a>, u8, Option<HotEvents<'a>>) {
        let db = self.session.db;
        let events = if self.shared.settings.notifies(classes) {
            Some(HotEvents {
                shared: self.shared,
                session: self.session,
                key: key.clone(),
            })
        } else {
            None
        };
        (self.access, db, events)
    }

    /// Stages keyspace notification `event` of class `class` (`state::keyspace_events`) on
    /// `key`, published once the command is applied (`state::key_events`). Call it after the
    /// write succeeded, once per event Redis 7.0 emits for it.
    #[inline]
    pub fn notify(&mut self, class: u32, event: &'static str, key: &Bytes) {
        self.session.stage_key_event(self.shared, class, event, key);
    }

    /// [`Ctx::notify`] for a key of database `db` (COPY ... DB).
    pub fn notify_in(&mut self, db: u8, class: u32, event: &'static str, key: &Bytes) {
        self.session
            .stage_key_event_in(self.shared, db, class, event, key);
    }

    /// Counts a read command's lookup of one key in INFO's `keyspace_hits` or
    /// `keyspace_misses`, as Redis's `lookupKeyRead` does: found, or found holding another
    /// type (`WRONGTYPE`), is a hit; absent a miss; any other error counts nothing.
    pub fn count_read(&self, found: Result<bool, &sluice::SluiceError>) {
        let found = match found {
            Ok(found) => found,
            Err(sluice::SluiceError::WrongType) => true,
            Err(_) => return,
        };
        self.shared.command_stats.keyspace_lookups(
            self.session.id,
            u64::from(found),
            u64::from(!found),
        );
    }
}

/// The command table: every family's specs, a case-insensitive index by name, and each
/// command's statistics slot.
pub struct Table {
    all: Vec<&'static Spec>,
    // A fixed table that clients only read: a fast unkeyed hash is safe here.
    by_name: HashMap<&'static [u8], (&'static Spec, StatSlot), foldhash::fast::FixedState>,
    /// Each slot's name as INFO commandstats shows it (`get`, `config|get`).
    slot_names: Vec<String>,
    /// Each slot's duration histogram (an index into [`FAMILY_NAMES`]).
    slot_families: Vec<usize>,
    /// Each container's sub-commands' full names (`client|list`), in its `subcommands` order.
    full_names: HashMap<&'static str, Vec<&'static str>, foldhash::fast::FixedState>,
}

/// Where a command (or a sub-command) counts its calls: its slot in
/// `state::CommandStats` and its family's duration histogram. A command's sub-commands
/// have the slots right after its own, in the order its spec lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatSlot {
    /// Index into the statistics slots.
    pub index: u16,
    /// Index into [`FAMILY_NAMES`].
    pub family: u8,
}

impl StatSlot {
    /// The slot of the sub-command at `position` in its container's spec.
    pub fn subcommand(self, position: usize) -> StatSlot {
        StatSlot {
            // Slots are fewer than `state::MAX_SLOTS` (`Table::new` checks).
            index: self.index.saturating_add(1 + position as u16),
            family: self.family,
        }
    }
}

/// The command families `/metrics` keeps a duration histogram for, named as Redis's command
/// groups.
pub const FAMILY_NAMES: [&str; 12] = [
    "string",
    "hash",
    "set",
    "sorted_set",
    "list",
    "stream",
    "bitmap",
    "generic",
    "connection",
    "transactions",
    "scripting",
    "server",
];

/// A command's family, from its ACL categories.
fn family_of(spec: &Spec) -> u8 {
    const BY_CATEGORY: [&str; 11] = [
        "@string",
        "@hash",
        "@set",
        "@sortedset",
        "@list",
        "@stream",
        "@bitmap",
        "@keyspace",
        "@connection",
        "@transaction",
        "@scripting",
    ];
    BY_CATEGORY
        .iter()
        .position(|c| spec.categories.contains(c))
        .unwrap_or(BY_CATEGORY.len()) as u8
}

impl Table {
    /// The table of these families' commands, in order.
    ///
    /// Panics if the commands and sub-commands outnumber `state::MAX_SLOTS`: a fixed table
    /// that tests build, never input.
    pub fn new(families: &[&'static [Spec]]) -> Table {
        let all: Vec<&'static Spec> = families.iter().flat_map(|f| f.iter()).collect();
        let mut by_name = HashMap::default();
        let mut slot_names = Vec::new();
        let mut slot_families = Vec::new();
        for spec in &all {
            let family = family_of(spec);
            let slot = StatSlot {
                index: slot_names.len() as u16,
                family,
            };
            by_name.insert(spec.name.as_bytes(), (*spec, slot));
            slot_names.push(spec.name.to_string());
            slot_families.push(family.into());
            for (sub, _) in spec.subcommands {
                slot_names.push(format!("{}|{sub}", spec.name));
                slot_families.push(family.into());
            }
        }
        assert!(
            slot_names.len() <= crate::state::MAX_SLOTS
                && FAMILY_NAMES.len() <= crate::state::MAX_FAMILIES,
            "raise state::MAX_SLOTS or MAX_FAMILIES"
        );
        // Built once per table (the server's is static): CLIENT LIST shows the last command
        // by these names, so a command stores a `&'static str` rather than formats one.
        let full_names = all
            .iter()
            .filter(|s| !s.subcommands.is_empty())
            .map(|s| {
                let names = s
                    .subcommands
                    .iter()
                    .map(|(sub, _)| &*Box::leak(format!("{}|{sub}", s.name).into_boxed_str()))
                    .collect();
                (s.name, names)
            })
            .collect();
        Table {
            all,
            by_name,
            slot_names,
            slot_families,
            full_names,
        }
    }

    /// The full name (`client|list`) of `spec`'s sub-command at `index` of its list; the
    /// container's own name for an index out of range.
    pub fn subcommand_name(&self, spec: &'static Spec, index: usize) -> &'static str {
        self.full_names
            .get(spec.name)
            .and_then(|names| names.get(index))
            .copied()
            .unwrap_or(spec.name)
    }

    /// Every command.
    pub fn all(&self) -> &[&'static Spec] {
        &self.all
    }

    /// The spec of a command name, case-insensitively.
    pub fn lookup(&self, name: &[u8]) -> Option<&'static Spec> {
        self.lookup_slot(name).map(|(spec, _)| spec)
    }

    /// The spec of a command name, case-insensitively, and its statistics slot.
    pub fn lookup_slot(&self, name: &[u8]) -> Option<(&'static Spec, StatSlot)> {
        let mut lower = [0u8; 32];
        let lower = lower.get_mut(..name.len())?;
        for (l, c) in lower.iter_mut().zip(name) {
            *l = c.to_ascii_lowercase();
        }
        self.by_name.get(&*lower).copied()
    }

    /// The statistics slot of a request for `spec`: its sub-command's when it names one
    /// `spec` has, else its own.
    pub fn slot_of(&self, spec: &Spec, args: &[Bytes]) -> Option<StatSlot> {
        let (_, slot) = self.by_name.get(spec.name.as_bytes())?;
        let sub = args.get(1).filter(|_| !spec.subcommands.is_empty());
        Some(
            match sub.and_then(|s| spec.subcommands.iter().position(|(n, _)| is(s, n))) {
                Some(position) => slot.subcommand(position),
                None => *slot,
            },
        )
    }

    /// Each slot's name (`get`, `config|get`), by slot index.
    pub fn slot_names(&self) -> &[String] {
        &self.slot_names
    }

    /// Each slot's family (an index into [`FAMILY_NAMES`]), by slot index.
    pub fn slot_families(&self) -> &[usize] {
        &self.slot_families
    }
}

/// A command's future, boxed so that the dispatcher's own future stays small.
pub type BoxFrame<'a> = Pin<Box<dyn Future<Output = Frame> + Send + 'a>>;

/// A command that needs no await.
pub type SyncHandler = for<'a> fn(Ctx<'a>, &'a mut [Bytes]) -> Frame;

/// A command that awaits the engine, behind a box.
pub type AsyncHandler = for<'a> fn(Ctx<'a>, &'a mut [Bytes]) -> BoxFrame<'a>;

/// How a command runs. The argument slice holds the whole request (`argv[0]` is the name); a
/// handler may move arguments out of it, so it is only fit for recycling afterwards.
#[derive(Clone, Copy)]
pub enum Handler {
    /// Runs to completion without awaiting.
    Sync(SyncHandler),
    /// Awaits the engine behind a boxed future: the default for a command that awaits.
    Async(AsyncHandler),
    /// One of the commands on every benchmark's hot path, awaited in place with no box (see
    /// [`Hot`]).
    Hot(Hot),
}

/// The commands awaited in place by `cmd::run_hot`. A boxed future costs an allocation and an
/// indirect call per command, which is a measurable share of a GET; the per-command future is
/// also moved on every command, so only a few small ones are awaited in place; GET, SET and
/// INCR/DECR(BY) build no future at all when the engine answers at once (`sluice::Access::get_now`).
/// A new command belongs here only if `bench/callgrind.sh` shows that it matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hot {
    Get,
    Set,
    SetNx,
    SetEx(TimeUnit),
    MGet,
    StrLen,
    /// INCR (+1) and DECR (-1).
    IncrByOne(Sign),
    /// INCRBY and DECRBY.
    IncrBy(Sign),
    /// DEL and UNLINK.
    Del,
    /// EXISTS and TOUCH.
    Exists,
    /// EXPIRE and PEXPIRE.
    Expire(TimeUnit),
    /// TTL and PTTL.
    Ttl(TimeUnit),
}

/// The unit of a time argument or reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    /// EXPIRE, SETEX, TTL, EXPIRETIME.
    Seconds,
    /// PEXPIRE, PSETEX, PTTL, PEXPIRETIME.
    Millis,
}

/// What a relative time argument counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpireBase {
    /// From now: EXPIRE, PEXPIRE, SET EX/PX.
    Now,
    /// A Unix timestamp: EXPIREAT, PEXPIREAT, SET EXAT/PXAT.
    UnixEpoch,
}

/// Whether a counter command adds or subtracts its amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sign {
    /// INCR, INCRBY.
    Plus,
    /// DECR, DECRBY.
    Minus,
}

/// Where a command's keys are, as COMMAND reports them (`first` 0: no keys; `last` -1: the
/// last argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPositions {
    /// First key position.
    pub first: i32,
    /// Last key position; negative counts from the end.
    pub last: i32,
    /// Step between keys.
    pub step: i32,
    /// Where the argument counting the keys is, for a command whose keys follow such a count
    /// (SINTERCARD's `numkeys`); 0 for none. COMMAND shows such a command's positions as 0
    /// (`movablekeys`), as Redis does.
    pub numkeys_at: u8,
    /// The keys are the first half of the arguments after a `STREAMS` keyword (XREAD); COMMAND
    /// shows such a command's positions as 0 (`movablekeys`), as Redis does.
    pub after_streams: bool,
}

impl KeyPositions {
    /// No keys.
    pub const NONE: KeyPositions = KeyPositions::new(0, 0, 0);
    /// One key, the first argument.
    pub const FIRST: KeyPositions = KeyPositions::new(1, 1, 1);
    /// Every argument is a key.
    pub const ALL: KeyPositions = KeyPositions::new(1, -1, 1);
    /// Key and value pairs (MSET).
    pub const PAIRS: KeyPositions = KeyPositions::new(1, -1, 2);
    /// The first two arguments (RENAME).
    pub const FIRST_TWO: KeyPositions = KeyPositions::new(1, 2, 1);
    /// Every argument from the second on (BITOP).
    pub const FROM_SECOND: KeyPositions = KeyPositions::new(2, -1, 1);
    /// `numkeys key [key ...]` from the first argument (SINTERCARD).
    pub const COUNTED: KeyPositions = KeyPositions {
        numkeys_at: 1,
        ..KeyPositions::NONE
    };
    /// `numkeys key [key ...]` from the second argument (BZMPOP, after its timeout).
    pub const COUNTED_AT_SECOND: KeyPositions = KeyPositions {
        numkeys_at: 2,
        ..KeyPositions::NONE
    };
    /// Every argument but the last (BZPOPMIN's keys, before its timeout).
    pub const ALL_BUT_LAST: KeyPositions = KeyPositions::new(1, -2, 1);
    /// The first half of the arguments after `STREAMS` (XREAD).
    pub const AFTER_STREAMS: KeyPositions = KeyPositions {
        after_streams: true,
        ..KeyPositions::NONE
    };
    /// A destination key, then `numkeys key [key ...]` (ZUNIONSTORE).
    pub const DEST_THEN_COUNTED: KeyPositions = KeyPositions {
        numkeys_at: 2,
        ..KeyPositions::FIRST
    };

    const fn new(first: i32, last: i32, step: i32) -> KeyPositions {
        KeyPositions {
            first,
            last,
            step,
            numkeys_at: 0,
            after_streams: false,
        }
    }

    /// The keys a request names (none past a `numkeys` that is not a count of arguments
    /// there).
    pub fn of<'a>(&self, args: &'a [Bytes]) -> impl Iterator<Item = &'a Bytes> {
        if self.after_streams {
            let rest = args
                .iter()
                .skip(1)
                .position(|a| a.eq_ignore_ascii_case(b"streams"))
                .map_or(&[][..], |at| &args[at + 2..]);
            let none: &[Bytes] = &[];
            return rest[..rest.len() / 2].iter().chain(none).step_by(1);
        }
        if self.numkeys_at > 0 {
            let at = self.numkeys_at as usize;
            let keys = args
                .get(at)
                .and_then(|n| std::str::from_utf8(n).ok()?.parse::<usize>().ok())
                .and_then(|n| args.get(at + 1..(at + 1).checked_add(n)?))
                .unwrap_or_default();
            // Keys at fixed positions before the count (a destination) come first.
            let fixed = if self.first > 0 {
                args.get(self.first as usize..at).unwrap_or_default()
            } else {
                &[]
            };
            return fixed.iter().chain(keys).step_by(1);
        }
        let first = self.first.max(0) as usize;
        let last = if self.last < 0 {
            (args.len() as i32 + self.last).max(0) as usize
        } else {
            self.last as usize
        };
        let step = self.step.max(1) as usize;
        let range = if first == 0 || args.is_empty() {
            0..0
        } else {
            first.min(args.len())..last.min(args.len() - 1) + 1
        };
        let none: &[Bytes] = &[];
        args.get(range)
            .unwrap_or_default()
            .iter()
            .chain(none)
            .step_by(step)
    }
}

/// A command's static description, as COMMAND reports it, and how it runs.
pub struct Spec {
    /// Lower-case name.
    pub name: &'static str,
    /// Redis arity: positive is exact, negative is a minimum.
    pub arity: i32,
    /// Command flags.
    pub flags: &'static [&'static str],
    /// Key positions.
    pub keys: KeyPositions,
    /// ACL categories.
    pub categories: &'static [&'static str],
    /// Short summary for COMMAND DOCS.
    pub summary: &'static str,
    /// Sub-commands (name, arity) of a container command.
    pub subcommands: &'static [(&'static str, i32)],
    /// How it runs.
    pub handler: Handler,
}

impl Spec {
    /// The sub-command `name` (any case) of a container: its place in [`Spec::subcommands`]
    /// (which the stats slot and the full name follow), its name and its arity.
    pub(crate) fn subcommand(&self, name: &[u8]) -> Option<(usize, &'static str, i32)> {
        self.subcommands
            .iter()
            .position(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))
            .map(|i| (i, self.subcommands[i].0, self.subcommands[i].1))
    }

    /// The keys a request names, found as Redis 7.0's key specs find them (also for XGROUP,
    /// XINFO, OBJECT, MEMORY USAGE, XREADGROUP and the scripts, whose keys the spec's positions
    /// miss): what routing, the ACL key check, EXEC's locks and COMMAND GETKEYS use. `None` for
    /// a command that takes no keys.
    pub(crate) fn request_keys<'a>(&self, request: &'a [Bytes]) -> Option<Vec<&'a Bytes>> {
        match self.name {
            // `numkeys` keys after the script (or function); a bad count names none.
            "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro" => {
                let keys = request
                    .get(2)
                    .and_then(|n| super::util::int_arg(n).ok())
                    .and_then(|n| usize::try_from(n).ok())
                    .and_then(|n| request.get(3..n.checked_add(3)?));
                Some(keys.map(|k| k.iter().collect()).unwrap_or_default())
            }
            "memory" if request.get(1).is_some_and(|s| is(s, "usage")) => {
                Some(request.get(2).into_iter().collect())
            }
            // Containers whose sub-commands (all but HELP) name one key, after the sub-command.
            "xgroup" | "xinfo" | "object" => match request.get(1) {
                Some(sub) if !is(sub, "help") => Some(request.get(2).into_iter().collect()),
                _ => None,
            },
            // Redis looks for `STREAMS` from the fourth argument on, past `GROUP group consumer`
            // (either of which may be named `streams`).
            "xreadgroup" => {
                let rest = request.get(4..).unwrap_or_default();
                let at = rest.iter().position(|a| is(a, "streams"))?;
                let keys = &rest[at + 1..];
                Some(keys[..keys.len() / 2].iter().collect())
            }
            _ if self.keys == KeyPositions::NONE => None,
            _ => Some(self.keys.of(request).collect()),
        }
    }

    /// The fields a spec rarely sets (`..Spec::DEFAULT`).
    pub const DEFAULT: Spec = Spec {
        name: "",
        arity: 1,
        flags: &[],
        keys: KeyPositions::NONE,
        categories: &[],
        summary: "",
        subcommands: &[],
        // Every spec names its handler; one that forgot would answer this, never a silent nil.
        handler: Handler::Sync(|_, _| Frame::error("ERR command has no handler")),
    };
}

impl std::fmt::Debug for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spec").field("name", &self.name).finish()
    }
}

/// Command flags, as COMMAND reports them.
pub mod flags {
    /// A write that may grow memory.
    pub const WRITE: &[&str] = &["write", "denyoom"];
    /// A fast read.
    pub const READ: &[&str] = &["readonly", "fast"];
    /// A fast write that does not grow memory.
    pub const WRITE_FAST: &[&str] = &["write", "fast"];
    /// A fast write that may grow memory.
    pub const WRITE_GROW_FAST: &[&str] = &["write", "denyoom", "fast"];
    /// A connection command a client may send before AUTH (AUTH, HELLO, QUIT, RESET).
    pub const NO_AUTH: &[&str] = &[
        "noscript",
        "loading",
        "stale",
        "fast",
        "no_auth",
        "allow_busy",
    ];
}

/// Redis 7.0's ACL categories, in the order ACL CAT lists them (and COMMAND INFO orders a
/// command's).
pub const ACL_CATEGORIES: [&str; 21] = [
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

impl Spec {
    /// The ACL categories COMMAND INFO and ACL CAT show: the spec's own, and those Redis's
    /// `setImplicitACLCategories` derives from its flags (`write` → @write, `readonly` →
    /// @read unless @scripting, `admin` → @admin @dangerous, `fast` → @fast, else @slow), in
    /// Redis's order.
    pub fn acl_categories(&self) -> Vec<&'static str> {
        let has_flag = |f: &str| self.flags.contains(&f);
        let has = |c: &str| {
            self.categories
                .iter()
                .any(|s| s.strip_prefix('@') == Some(c))
        };
        ACL_CATEGORIES
            .iter()
            .copied()
            .filter(|c| {
                has(c)
                    || match *c {
                        "write" => has_flag("write"),
                        "read" => has_flag("readonly") && !has("scripting"),
                        "admin" | "dangerous" => has_flag("admin"),
                        "fast" => has_flag("fast"),
                        "slow" => !has_flag("fast") && !has("fast"),
                        _ => false,
                    }
            })
            .collect()
    }
}

/// ACL categories.
pub mod categories {
    /// A string write.
    pub const STRING_WRITE: &[&str] = &["@write", "@string"];
    /// A fast string read.
    pub const STRING_READ: &[&str] = &["@read", "@string", "@fast"];
    /// A keyspace write.
    pub const KEY_WRITE: &[&str] = &["@write", "@keyspace"];
    /// A keyspace read.
    pub const KEY_READ: &[&str] = &["@read", "@keyspace"];
    /// A connection command.
    pub const CONNECTION: &[&str] = &["@fast", "@connection"];
    /// An administrative command.
    pub const ADMIN: &[&str] = &["@admin", "@slow", "@dangerous"];
}

/// A [`Handler::Async`] for an `async fn(Ctx, &mut [Bytes]) -> Frame`.
macro_rules! boxed {
    ($f:path) => {{
        fn boxed<'a>(
            ctx: $crate::frontend::cmd::Ctx<'a>,
            args: &'a mut [bytes::Bytes],
        ) -> $crate::frontend::cmd::spec::BoxFrame<'a> {
            Box::pin($f(ctx, args))
        }
        $crate::frontend::cmd::Handler::Async(boxed)
    }};
}
pub(crate) use boxed;

/// A family's command spec from its name, arity, flags, key positions, ACL categories,
/// handler and summary, the rest left at [`Spec::DEFAULT`].
macro_rules! cmdspec {
    ($name:literal, $arity:expr, $flags:expr, $keys:expr, $cats:expr, $handler:ident, $summary:literal) => {
        $crate::frontend::cmd::spec::Spec {
            name: $name,
            arity: $arity,
            flags: $flags,
            keys: $keys,
            categories: $cats,
            summary: $summary,
            handler: $crate::frontend::cmd::spec::boxed!($handler),
            ..$crate::frontend::cmd::spec::Spec::DEFAULT
        }
    };
}
pub(crate) use cmdspec;
