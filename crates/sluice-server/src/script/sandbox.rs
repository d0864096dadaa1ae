//! The sandbox: which globals a script sees, and Redis 7.0's read-only tables.
//!
//! Redis 7.0.15 patches its Lua so that tables can be marked read-only, and marks the
//! globals table and every table reachable from it. The vendored Lua here is stock 5.1.5,
//! so read-only tables are emulated with proxies: each protected table is replaced by an
//! empty proxy whose metatable reads through to the real table and refuses writes. The
//! functions that would see through a proxy (`next`, `pairs`, `ipairs`, `rawget`, `rawset`,
//! `setmetatable`) are replaced by C functions that map a proxy to its real table, so
//! `pairs(string)` or `rawget(_G, 'redis')` work as in Redis. Being C functions matters:
//! their argument errors then name the right function and point at the user's line.
//!
//! Errors raised by Rust natives go through [`native`]: the Rust function returns a status
//! first and a small C trampoline raises (Lua errors are longjmps, which must not cross Rust
//! frames that own anything).

use std::ffi::c_int;

use mlua::{ffi, Function, IntoLuaMulti, Lua, MultiValue, Value};

/// Name of the chunk holding the sandbox's own Lua code; the error handler skips its frames
/// so errors point at the user's script, as they do with Redis' C functions.
pub const INTERNAL_CHUNK: &str = "=sluice";

/// What a native function does when it returns.
pub enum Outcome {
    /// Return these values.
    Return(MultiValue),
    /// Raise this value as the error (Redis' error tables).
    Raise(Value),
    /// Raise this message prefixed with the caller's position, like `luaL_error`.
    RaiseWhere(String),
}

impl Outcome {
    pub fn ret(lua: &Lua, v: impl IntoLuaMulti) -> mlua::Result<Outcome> {
        Ok(Outcome::Return(v.into_lua_multi(lua)?))
    }
}

/// Registry key of the table mapping each read-only proxy to its real table.
const RO_KEY: &std::ffi::CStr = c"sluice.ro";
/// Registry key of Lua's own `next` (what `pairs` returns).
const NEXT_KEY: &std::ffi::CStr = c"sluice.next";
/// Registry key of Lua's own `ipairs`.
const IPAIRS_KEY: &std::ffi::CStr = c"sluice.ipairs";
const RO_MSG: &std::ffi::CStr = c"Attempt to modify a readonly table";

/// Past this many results a native returns them through a table (see `raise_trampoline`).
const MANY_RESULTS: usize = 64;

/// Wraps a Rust function so that it can raise errors the way Redis' C functions do.
pub fn native<F>(lua: &Lua, f: F) -> mlua::Result<Function>
where
    F: Fn(&Lua, MultiValue) -> mlua::Result<Outcome> + 'static,
{
    let inner = lua.create_function(move |lua, args: MultiValue| {
        let mut out = MultiValue::new();
        match f(lua, args)? {
            // Many values (cmsgpack.unpack) travel as a table: mlua's own stack checks
            // for callback results stop far below the C function limit Redis allows.
            Outcome::Return(vals) if vals.len() > MANY_RESULTS => {
                let n = vals.len();
                let t = lua.create_sequence_from(vals)?;
                out.push_back(Value::Integer(3));
                out.push_back(Value::Table(t));
                out.push_back(Value::Integer(n as i64));
            }
            Outcome::Return(vals) => {
                out.push_back(Value::Integer(0));
                out.extend(vals);
            }
            Outcome::Raise(v) => {
                out.push_back(Value::Integer(1));
                out.push_back(v);
            }
            Outcome::RaiseWhere(msg) => {
                out.push_back(Value::Integer(2));
                out.push_back(Value::String(lua.create_string(msg)?));
            }
        }
        Ok(out)
    })?;
    // SAFETY: the closure only pushes a C closure over the function passed as the single
    // argument, leaving it as the single result.
    unsafe {
        lua.exec_raw::<Function>(inner, |state| {
            ffi::lua_pushcclosure(state, raise_trampoline, 1);
        })
    }
}

/// Calls upvalue 1 with all arguments; its first result says whether to return the rest or
/// raise the second. Only FFI calls here: an error longjmps through this frame, which owns
/// nothing.
unsafe extern "C-unwind" fn raise_trampoline(state: *mut ffi::lua_State) -> c_int {
    let n = ffi::lua_gettop(state);
    ffi::lua_pushvalue(state, ffi::lua_upvalueindex(1));
    ffi::lua_insert(state, 1);
    ffi::lua_call(state, n, ffi::LUA_MULTRET);
    let status = ffi::lua_tointeger(state, 1);
    ffi::lua_remove(state, 1);
    match status {
        0 => ffi::lua_gettop(state),
        3 => {
            // (table, n): push the table's n values (nils included) as the results.
            let n = ffi::lua_tointeger(state, 2) as c_int;
            ffi::lua_settop(state, 1);
            // The plain C function: mlua-sys's compat wrapper asks for 20 more slots.
            ffi::luaL_checkstack_(state, n, c"too many results".as_ptr());
            for i in 1..=n {
                ffi::lua_rawgeti(state, 1, i as _);
            }
            ffi::lua_remove(state, 1);
            n
        }
        1 => {
            ffi::lua_settop(state, 1);
            ffi::lua_error(state)
        }
        _ => {
            ffi::lua_settop(state, 1);
            ffi::luaL_where(state, 1);
            ffi::lua_insert(state, 1);
            ffi::lua_concat(state, 2);
            ffi::lua_error(state)
        }
    }
}

/// Replaces the table at `idx` by the real table if it is a read-only proxy. Returns true
/// if it was one.
unsafe fn unproxy(state: *mut ffi::lua_State, idx: c_int) -> bool {
    ffi::lua_getfield(state, ffi::LUA_REGISTRYINDEX, RO_KEY.as_ptr());
    ffi::lua_pushvalue(state, idx);
    ffi::lua_rawget(state, -2);
    if ffi::lua_type(state, -1) == ffi::LUA_TTABLE {
        ffi::lua_replace(state, idx);
        ffi::lua_pop(state, 1);
        true
    } else {
        ffi::lua_pop(state, 2);
        false
    }
}

unsafe fn is_proxy(state: *mut ffi::lua_State, idx: c_int) -> bool {
    ffi::lua_getfield(state, ffi::LUA_REGISTRYINDEX, RO_KEY.as_ptr());
    ffi::lua_pushvalue(state, idx);
    ffi::lua_rawget(state, -2);
    let found = ffi::lua_isnil(state, -1) == 0;
    ffi::lua_pop(state, 2);
    found
}

unsafe fn raise_readonly(state: *mut ffi::lua_State) -> c_int {
    // No position: Redis raises this from inside the C API call.
    ffi::lua_pushstring(state, RO_MSG.as_ptr());
    ffi::lua_error(state)
}

unsafe extern "C-unwind" fn sb_next(state: *mut ffi::lua_State) -> c_int {
    ffi::luaL_checktype(state, 1, ffi::LUA_TTABLE);
    unproxy(state, 1);
    ffi::lua_settop(state, 2);
    if ffi::lua_next(state, 1) != 0 {
        2
    } else {
        ffi::lua_pushnil(state);
        1
    }
}

unsafe extern "C-unwind" fn sb_pairs(state: *mut ffi::lua_State) -> c_int {
    ffi::luaL_checktype(state, 1, ffi::LUA_TTABLE);
    unproxy(state, 1);
    ffi::lua_getfield(state, ffi::LUA_REGISTRYINDEX, NEXT_KEY.as_ptr());
    ffi::lua_pushvalue(state, 1);
    ffi::lua_pushnil(state);
    3
}

unsafe extern "C-unwind" fn sb_ipairs(state: *mut ffi::lua_State) -> c_int {
    ffi::luaL_checktype(state, 1, ffi::LUA_TTABLE);
    unproxy(state, 1);
    ffi::lua_settop(state, 1);
    ffi::lua_getfield(state, ffi::LUA_REGISTRYINDEX, IPAIRS_KEY.as_ptr());
    ffi::lua_insert(state, 1);
    ffi::lua_call(state, 1, 3);
    3
}

unsafe extern "C-unwind" fn sb_rawget(state: *mut ffi::lua_State) -> c_int {
    ffi::luaL_checktype(state, 1, ffi::LUA_TTABLE);
    ffi::luaL_checkany(state, 2);
    unproxy(state, 1);
    ffi::lua_settop(state, 2);
    ffi::lua_rawget(state, 1);
    1
}

unsafe extern "C-unwind" fn sb_rawset(state: *mut ffi::lua_State) -> c_int {
    ffi::luaL_checktype(state, 1, ffi::LUA_TTABLE);
    ffi::luaL_checkany(state, 2);
    ffi::luaL_checkany(state, 3);
    if is_proxy(state, 1) {
        return raise_readonly(state);
    }
    ffi::lua_settop(state, 3);
    ffi::lua_rawset(state, 1);
    1
}

unsafe extern "C-unwind" fn sb_setmetatable(state: *mut ffi::lua_State) -> c_int {
    let t = ffi::lua_type(state, 2);
    ffi::luaL_checktype(state, 1, ffi::LUA_TTABLE);
    if t != ffi::LUA_TNIL && t != ffi::LUA_TTABLE {
        ffi::luaL_argerror(state, 2, c"nil or table expected".as_ptr());
    }
    if is_proxy(state, 1) {
        return raise_readonly(state);
    }
    if ffi::luaL_getmetafield(state, 1, c"__metatable".as_ptr()) != 0 {
        ffi::luaL_error(state, c"cannot change a protected metatable".as_ptr());
    }
    ffi::lua_settop(state, 2);
    ffi::lua_setmetatable(state, 1);
    1
}

/// Registry key of Lua's own `loadstring`.
const LOADSTRING_KEY: &std::ffi::CStr = c"sluice.loadstring";

/// Pushes the error Redis' Lua gives for a chunk starting with ESC: its parser no longer
/// loads bytecode (a known way out of the 5.1 sandbox), so the lexer meets char(27). The
/// chunk name is shown as Lua's `luaO_chunkid` shows it. Uses a stack buffer only: nothing
/// here owns heap memory, so a Lua memory error can unwind through it.
unsafe fn push_bytecode_error(state: *mut ffi::lua_State, chunkname: *const std::ffi::c_char) {
    let name = std::ffi::CStr::from_ptr(chunkname).to_bytes();
    let mut buf = [0u8; 160];
    let mut n = 0usize;
    let mut put = |bytes: &[u8], n: &mut usize| {
        let take = bytes.len().min(buf.len() - *n);
        buf[*n..*n + take].copy_from_slice(&bytes[..take]);
        *n += take;
    };
    // luaO_chunkid with Redis' LUA_IDSIZE (80).
    const IDSIZE: usize = 80;
    let room = IDSIZE - " [string \"...\"] ".len() - 1;
    if let Some(rest) = name.strip_prefix(b"=") {
        put(&rest[..rest.len().min(IDSIZE - 1)], &mut n);
    } else if let Some(rest) = name.strip_prefix(b"@") {
        let keep = IDSIZE - " '...' ".len() - 1;
        if rest.len() > keep {
            put(b"...", &mut n);
            put(&rest[rest.len() - keep..], &mut n);
        } else {
            put(rest, &mut n);
        }
    } else {
        let line = name
            .iter()
            .position(|&c| c == b'\n' || c == b'\r')
            .unwrap_or(name.len());
        let len = line.min(room);
        put(b"[string \"", &mut n);
        put(&name[..len], &mut n);
        if len < name.len() {
            put(b"...", &mut n);
        }
        put(b"\"]", &mut n);
    }
    put(b":1: unexpected symbol near 'char(27)'", &mut n);
    ffi::lua_pushnil(state);
    ffi::lua_pushlstring(state, buf.as_ptr() as *const std::ffi::c_char, n);
}

unsafe extern "C-unwind" fn sb_loadstring(state: *mut ffi::lua_State) -> c_int {
    let mut len = 0usize;
    let s = ffi::luaL_checklstring(state, 1, &mut len);
    let chunkname = ffi::luaL_optlstring(state, 2, s, std::ptr::null_mut());
    if len > 0 && *s as u8 == 0x1b {
        push_bytecode_error(state, chunkname);
        return 2;
    }
    let n = ffi::lua_gettop(state);
    ffi::lua_getfield(state, ffi::LUA_REGISTRYINDEX, LOADSTRING_KEY.as_ptr());
    ffi::lua_insert(state, 1);
    ffi::lua_call(state, n, ffi::LUA_MULTRET);
    ffi::lua_gettop(state)
}

/// `load(reader [, chunkname])`: reads every piece, then loads the text as `loadstring`
/// does (refusing bytecode the same way).
unsafe extern "C-unwind" fn sb_load(state: *mut ffi::lua_State) -> c_int {
    ffi::luaL_checktype(state, 1, ffi::LUA_TFUNCTION);
    let chunkname = ffi::luaL_optlstring(state, 2, c"=(load)".as_ptr(), std::ptr::null_mut());
    ffi::lua_settop(state, 2);
    let mut pieces = 0;
    loop {
        ffi::lua_pushvalue(state, 1);
        ffi::lua_call(state, 0, 1);
        match ffi::lua_type(state, -1) {
            ffi::LUA_TNIL => {
                ffi::lua_pop(state, 1);
                break;
            }
            ffi::LUA_TSTRING => {
                if ffi::lua_objlen(state, -1) == 0 {
                    ffi::lua_pop(state, 1);
                    break;
                }
                pieces += 1;
            }
            _ => {
                ffi::lua_pushnil(state);
                ffi::lua_pushstring(state, c"reader function must return a string".as_ptr());
                return 2;
            }
        }
    }
    ffi::lua_concat(state, pieces);
    // Stack: reader, name, source. Call our loadstring(source, chunkname).
    ffi::lua_pushcfunction(state, sb_loadstring);
    ffi::lua_insert(state, 3);
    ffi::lua_pushstring(state, chunkname);
    ffi::lua_call(state, 2, ffi::LUA_MULTRET);
    ffi::lua_gettop(state) - 2
}

/// `table.insert` (Lua 5.1's `tinsert`) refusing read-only tables at the write, as Redis'
/// patched `lua_rawseti` does: the stock one writes into a proxy's own slots.
unsafe extern "C-unwind" fn sb_tinsert(state: *mut ffi::lua_State) -> c_int {
    ffi::luaL_checktype(state, 1, ffi::LUA_TTABLE);
    let mut e = ffi::lua_objlen(state, 1) as c_int + 1;
    let pos = match ffi::lua_gettop(state) {
        2 => e,
        3 => {
            let pos = ffi::luaL_checkinteger(state, 2) as c_int;
            if pos > e {
                e = pos;
            }
            if is_proxy(state, 1) {
                return raise_readonly(state);
            }
            let mut i = e;
            while i > pos {
                ffi::lua_rawgeti(state, 1, (i - 1) as _);
                ffi::lua_rawseti(state, 1, i as _);
                i -= 1;
            }
            pos
        }
        _ => return ffi::luaL_error(state, c"wrong number of arguments to 'insert'".as_ptr()),
    };
    if is_proxy(state, 1) {
        return raise_readonly(state);
    }
    ffi::lua_rawseti(state, 1, pos as _);
    0
}

/// `table.insert`'s replacement.
pub fn table_insert(lua: &Lua) -> mlua::Result<Function> {
    // SAFETY: follows the Lua C API contract and owns no Rust values.
    unsafe { lua.create_c_function(sb_tinsert) }
}

/// Registry key of the flag set when the host aborts the running script.
pub const ABORTED_KEY: &str = "sluice.aborted";

/// True if the host aborted the running script: protected calls must not swallow that
/// error (Redis makes its hook fire on every line after SCRIPT KILL for the same reason).
unsafe fn aborted(state: *mut ffi::lua_State) -> bool {
    ffi::lua_getfield(state, ffi::LUA_REGISTRYINDEX, c"sluice.aborted".as_ptr());
    let set = ffi::lua_toboolean(state, -1) != 0;
    ffi::lua_pop(state, 1);
    set
}

/// Redis' `luaRedisPcall`: a caught error table comes back as its `err` message.
unsafe extern "C-unwind" fn sb_pcall(state: *mut ffi::lua_State) -> c_int {
    let argc = ffi::lua_gettop(state);
    if argc == 0 {
        // Redis calls lua_pcall with -1 arguments here, which calls its own placeholder.
        ffi::lua_pushboolean(state, 0);
        ffi::lua_pushstring(state, c"attempt to call a boolean value".as_ptr());
        return 2;
    }
    ffi::lua_pushboolean(state, 1);
    ffi::lua_insert(state, 1);
    if ffi::lua_pcall(state, argc - 1, ffi::LUA_MULTRET, 0) != 0 {
        if aborted(state) {
            ffi::lua_error(state);
        }
        ffi::lua_remove(state, 1);
        if ffi::lua_type(state, -1) == ffi::LUA_TTABLE {
            ffi::lua_getfield(state, -1, c"err".as_ptr());
            if ffi::lua_isstring(state, -1) != 0 {
                ffi::lua_replace(state, -2);
            }
        }
        ffi::lua_pushboolean(state, 0);
        ffi::lua_insert(state, 1);
    }
    ffi::lua_gettop(state)
}

/// Lua 5.1's `xpcall`, except that an abort is not caught.
unsafe extern "C-unwind" fn sb_xpcall(state: *mut ffi::lua_State) -> c_int {
    ffi::luaL_checkany(state, 2);
    ffi::lua_settop(state, 2);
    ffi::lua_insert(state, 1);
    let status = ffi::lua_pcall(state, 0, ffi::LUA_MULTRET, 1);
    if status != 0 && aborted(state) {
        ffi::lua_error(state);
    }
    ffi::lua_pushboolean(state, (status == 0) as c_int);
    ffi::lua_replace(state, 1);
    ffi::lua_gettop(state)
}

/// The C replacements for base functions, by global name.
pub fn base_overrides(lua: &Lua) -> mlua::Result<Vec<(&'static str, Function)>> {
    // SAFETY: each function follows the Lua C API contract and owns no Rust values.
    unsafe {
        Ok(vec![
            ("next", lua.create_c_function(sb_next)?),
            ("pairs", lua.create_c_function(sb_pairs)?),
            ("ipairs", lua.create_c_function(sb_ipairs)?),
            ("rawget", lua.create_c_function(sb_rawget)?),
            ("rawset", lua.create_c_function(sb_rawset)?),
            ("setmetatable", lua.create_c_function(sb_setmetatable)?),
            ("loadstring", lua.create_c_function(sb_loadstring)?),
            ("pcall", lua.create_c_function(sb_pcall)?),
            ("xpcall", lua.create_c_function(sb_xpcall)?),
            ("load", lua.create_c_function(sb_load)?),
        ])
    }
}

/// Builds the script environment. Runs once per VM with the full standard library loaded
/// (including `debug`, which only the error handler keeps). `N` holds the native functions.
/// Returns the proxy to install as the globals table, the real globals table (where each
/// run sets KEYS and ARGV) and the runner, which calls a compiled script under the error
/// handler.
pub const PRELUDE: &str = r#"
local N = ...
local G = _G
local dbg = debug
local type, tostring, error, xpcall = type, tostring, error, xpcall
local raw_setmetatable, raw_next = setmetatable, next
local reg = dbg.getregistry()

-- What Redis 7.0 does not offer.
for _, name in ipairs({'debug', 'loadfile', 'dofile', 'setfenv', 'getfenv', 'newproxy',
                       'module', 'require', 'package', 'print', 'os', 'io'}) do
  G[name] = nil
end

table.insert = N.table_insert
math.random = N.math_random
math.randomseed = N.math_randomseed
G.bit = N.bit
G.cjson = N.cjson
G.cmsgpack = N.cmsgpack
G.struct = N.struct
G.redis = N.redis

-- Redis' handler: the error as a table with the user's source and line. Redis skips one C
-- frame (the function that raised); the sandbox's own Lua frames are skipped too.
local function err_handler(err)
  local level = 2
  local i = dbg.getinfo(level, 'nSl')
  if i and i.what == 'C' then
    level = level + 1
    i = dbg.getinfo(level, 'nSl')
  end
  while i and i.source == '=sluice' do
    level = level + 1
    i = dbg.getinfo(level, 'nSl')
  end
  if type(err) ~= 'table' then
    err = {err = 'ERR ' .. tostring(err)}
  end
  if i then
    err['source'] = i.source
    err['line'] = i.currentline
  end
  return err
end
G.__redis__err__handler = err_handler

reg['sluice.next'] = raw_next
reg['sluice.ipairs'] = ipairs
reg['sluice.loadstring'] = loadstring
for name, f in raw_next, N.overrides do G[name] = f end

-- Read-only tables (see sandbox.rs).
local ro = raw_setmetatable({}, {__mode = 'k'})
reg['sluice.ro'] = ro
local function deny() error('Attempt to modify a readonly table', 2) end
local protect
protect = function(real, seen)
  local p = seen[real]
  if p then return p end
  p = {}
  seen[real] = p
  local keys = {}
  for k, v in raw_next, real do
    if type(v) == 'table' then keys[#keys + 1] = k end
  end
  for _, k in ipairs(keys) do real[k] = protect(real[k], seen) end
  local shown = {__index = real, __newindex = deny}
  local mt = {__index = real, __newindex = deny, __metatable = shown}
  ro[p] = real
  raw_setmetatable(p, mt)
  -- What getmetatable() shows: read-only too, and never the real table.
  local sp = {}
  ro[sp] = shown
  shown.__index = p
  raw_setmetatable(sp, {__index = shown, __newindex = deny})
  mt.__metatable = sp
  return p
end

-- Reading a missing global is an error (Redis' luaProtectedTableError).
raw_setmetatable(G, {__index = function(_, k)
  error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
end})
local seen = {}
local proxy = protect(G, seen)
-- The string metatable is not reachable from the globals: Redis leaves it writable, and
-- its __index is the (read-only) string library.
dbg.getmetatable('').__index = seen[string] or G.string

local function runner(f)
  return xpcall(f, err_handler)
end
return proxy, G, runner
"#;
