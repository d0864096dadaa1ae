//! One Lua state: creation (sandbox), compilation cache, and running a script.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use bytes::Bytes;
use mlua::{
    chunk::ChunkMode, ffi, Function, HookTriggers, Lua, LuaOptions, StdLib, Table, Value, VmState,
};

use super::convert::{format_g, lua_to_frame, sanitize_line};
use super::sandbox::{base_overrides, ABORTED_KEY, PRELUDE};
use super::{redis_api, Frame, Script, ScriptAbort, ScriptHost};

/// Settings of a Lua state.
#[derive(Debug, Clone, Copy)]
pub struct VmOptions {
    /// Instructions between two [`ScriptHost::check_abort`] calls (Redis: 100000).
    pub hook_instructions: u32,
    /// Cap on the Lua heap in bytes (Redis has none); past it scripts fail with an
    /// out-of-memory error.
    pub memory_limit: Option<usize>,
}

impl Default for VmOptions {
    fn default() -> Self {
        VmOptions {
            hook_instructions: 100_000,
            memory_limit: None,
        }
    }
}

/// State shared between the running script and the native functions.
pub(crate) struct RunState {
    /// The host while a script runs. Lifetime-erased: set by `run` and cleared before it
    /// returns (see `HostGuard`); taken out while in use so it is never aliased.
    host: Cell<Option<*mut (dyn ScriptHost + 'static)>>,
    /// `redis.setresp` choice for this run.
    pub resp: Cell<u8>,
    /// Redis' `redisLrand48` state (48 bits) for `math.random`.
    pub rand: Cell<u64>,
    /// Set when the host aborted the script; the hook then fails at every call so that
    /// `pcall` cannot swallow the abort for long.
    pub aborted: RefCell<Option<ScriptAbort>>,
}

impl RunState {
    /// Runs `f` with the host, if a script is running.
    pub fn with_host<R>(&self, f: impl FnOnce(&mut dyn ScriptHost) -> R) -> Option<R> {
        let ptr = self.host.take()?;
        // SAFETY: the pointer was made from a `&mut dyn ScriptHost` that outlives the run
        // (`run` clears it before returning), and it is taken out of the cell for the
        // duration of `f`, so no second reference exists.
        let out = f(unsafe { &mut *ptr });
        self.host.set(Some(ptr));
        Some(out)
    }
}

/// Clears the host pointer when a run ends, however it ends.
struct HostGuard<'a>(&'a RunState);

impl Drop for HostGuard<'_> {
    fn drop(&mut self) {
        self.0.host.set(None);
    }
}

/// A sandboxed Lua state like the one Redis 7.0 runs scripts in.
pub struct LuaVm {
    lua: Lua,
    state: Rc<RunState>,
    /// The real globals table (the one scripts see is a read-only proxy of it).
    globals: Table,
    /// Calls a compiled script under the error handler: `(ok, value-or-error)`.
    runner: Function,
    /// Compiled scripts by SHA.
    compiled: HashMap<String, Function>,
    options: VmOptions,
}

impl LuaVm {
    /// A fresh state with Redis' libraries and sandbox.
    pub fn new(options: VmOptions) -> mlua::Result<LuaVm> {
        // SAFETY: `debug` is loaded only for the prelude, which keeps `getinfo` for the
        // error handler and removes the library from the globals.
        let lua = unsafe {
            Lua::unsafe_new_with(
                StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::DEBUG,
                LuaOptions::new(),
            )
        };
        if let Some(limit) = options.memory_limit {
            lua.set_memory_limit(limit)?;
        }
        let state = Rc::new(RunState {
            host: Cell::new(None),
            resp: Cell::new(2),
            rand: Cell::new(redis_api::LRAND48_INIT),
            aborted: RefCell::new(None),
        });
        let natives = lua.create_table()?;
        natives.raw_set("redis", redis_api::redis_table(&lua, &state)?)?;
        let (random, randomseed) = redis_api::math_random(&lua, &state)?;
        natives.raw_set("math_random", random)?;
        natives.raw_set("math_randomseed", randomseed)?;
        natives.raw_set("bit", super::lib_bit::table(&lua)?)?;
        natives.raw_set("cjson", super::lib_cjson::table(&lua)?)?;
        natives.raw_set("cmsgpack", super::lib_cmsgpack::table(&lua)?)?;
        natives.raw_set("struct", super::lib_struct::table(&lua)?)?;
        let overrides = lua.create_table()?;
        for (name, f) in base_overrides(&lua)? {
            overrides.raw_set(name, f)?;
        }
        natives.raw_set("overrides", overrides)?;
        natives.raw_set("table_insert", super::sandbox::table_insert(&lua)?)?;
        let (proxy, globals, runner): (Table, Table, Function) = lua
            .load(PRELUDE)
            .set_name(super::sandbox::INTERNAL_CHUNK)
            .call(natives)?;
        // SAFETY: replaces the thread's globals table with the proxy on the stack; scripts
        // compiled from now on get it as their environment.
        unsafe {
            lua.exec_raw::<()>(proxy, |state| {
                ffi::lua_replace(state, ffi::LUA_GLOBALSINDEX);
            })?;
        }
        let hook_state = Rc::clone(&state);
        lua.set_hook(
            HookTriggers::new().every_nth_instruction(options.hook_instructions.max(1)),
            move |lua, _debug| {
                if hook_state.aborted.borrow().is_some() {
                    return Err(mlua::Error::runtime("script aborted"));
                }
                let verdict = hook_state.with_host(|h| h.check_abort());
                if let Some(Err(abort)) = verdict {
                    *hook_state.aborted.borrow_mut() = Some(abort);
                    // Seen by pcall/xpcall, which then re-raise instead of catching.
                    lua.set_named_registry_value(ABORTED_KEY, true)?;
                    return Err(mlua::Error::runtime("script aborted"));
                }
                Ok(VmState::Continue)
            },
        )?;
        Ok(LuaVm {
            lua,
            state,
            globals,
            runner,
            compiled: HashMap::new(),
            options,
        })
    }

    /// Compiles `script` (or finds it compiled). `Err` is the reply for a compile error.
    pub fn compile(&mut self, script: &Script) -> Result<Function, Frame> {
        if let Some(f) = self.compiled.get(script.sha()) {
            return Ok(f.clone());
        }
        let loaded = self
            .lua
            .load(script.body())
            .set_name("@user_script")
            .set_mode(ChunkMode::Text)
            .into_function();
        match loaded {
            Ok(f) => {
                self.compiled.insert(script.sha().to_string(), f.clone());
                Ok(f)
            }
            Err(e) => {
                let msg = match e {
                    mlua::Error::SyntaxError { message, .. } => message,
                    mlua::Error::MemoryError(m) => m,
                    other => other.to_string(),
                };
                let line = format!("ERR Error compiling script (new function): {msg}");
                Err(Frame::Error(sanitize_line(line.as_bytes())))
            }
        }
    }

    /// Number of compiled scripts held.
    pub fn compiled_len(&self) -> usize {
        self.compiled.len()
    }

    /// Runs `script` with `KEYS` and `ARGV` and returns its reply (errors included).
    pub fn run(
        &mut self,
        script: &Script,
        keys: &[Bytes],
        argv: &[Bytes],
        host: &mut dyn ScriptHost,
    ) -> Frame {
        let f = match self.compile(script) {
            Ok(f) => f,
            Err(reply) => return reply,
        };
        if let Err(e) = self.set_args(keys, argv) {
            return Frame::error(format!("ERR {e}"));
        }
        self.state.resp.set(2);
        *self.state.aborted.borrow_mut() = None;
        let ptr: *mut (dyn ScriptHost + '_) = host;
        // SAFETY: only the lifetime is erased; HostGuard clears the pointer before `host`'s
        // borrow ends.
        let ptr: *mut (dyn ScriptHost + 'static) = unsafe { std::mem::transmute(ptr) };
        self.state.host.set(Some(ptr));
        let guard = HostGuard(&self.state);
        let result = self.runner.call::<(Value, Value)>(f);
        drop(guard);
        let aborted = self.state.aborted.borrow_mut().take();
        if aborted.is_some() {
            let _ = self.lua.set_named_registry_value(ABORTED_KEY, false);
        }
        if let Some(limit) = self.options.memory_limit {
            if !matches!(result, Ok((Value::Boolean(true), _))) {
                // A script stopped by the memory limit leaves its garbage behind, and the
                // collector itself needs a little memory: lift the limit (0 = none) while
                // collecting so the next script gets the whole budget.
                let _ = self.lua.set_memory_limit(0);
                let _ = self.lua.gc_collect();
                let _ = self.lua.set_memory_limit(limit);
            }
        }
        match result {
            Ok((Value::Boolean(true), v)) => lua_to_frame(&v, self.state.resp.get()),
            Ok((_, err)) => error_reply(script.sha(), &err, aborted),
            Err(e) => {
                let msg = e.to_string();
                let msg: String = msg.chars().take(100).collect();
                let line = format!("ERR Error running script {}, {msg}", script.sha());
                Frame::Error(sanitize_line(line.as_bytes()))
            }
        }
    }

    fn set_args(&self, keys: &[Bytes], argv: &[Bytes]) -> mlua::Result<()> {
        for (name, items) in [("KEYS", keys), ("ARGV", argv)] {
            let t = self.lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i as i64 + 1, self.lua.create_string(item)?)?;
            }
            self.globals.raw_set(name, t)?;
        }
        Ok(())
    }
}

/// The reply for a script that raised `err` (Redis' `luaCallFunction`): the error table's
/// message, then ` script: <sha>, on <source>:<line>.` when the handler found the line.
fn error_reply(sha: &str, err: &Value, aborted: Option<ScriptAbort>) -> Frame {
    let Value::Table(t) = err else {
        let msg = match err {
            Value::String(s) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
            _ => "execution failure".into(),
        };
        let msg: String = msg.chars().take(100).collect();
        let line = format!("ERR Error running script {sha}, {msg}");
        return Frame::Error(sanitize_line(line.as_bytes()));
    };
    let text = |k: &str| -> Option<Vec<u8>> {
        match t.raw_get::<Value>(k).ok()? {
            Value::String(s) => Some(s.as_bytes().to_vec()),
            Value::Number(n) => Some(format_g(n, 14).into_bytes()),
            Value::Integer(i) => Some(format_g(i as f64, 14).into_bytes()),
            _ => None,
        }
    };
    let mut out = match aborted {
        Some(abort) => abort.message.into_bytes(),
        None => text("err").unwrap_or_default(),
    };
    if let (Some(source), Some(line)) = (text("source"), text("line")) {
        out.extend_from_slice(b" script: ");
        out.extend_from_slice(sha.as_bytes());
        out.extend_from_slice(b", on ");
        out.extend_from_slice(&source);
        out.push(b':');
        out.extend_from_slice(&line);
        out.push(b'.');
    }
    Frame::Error(sanitize_line(&out))
}
