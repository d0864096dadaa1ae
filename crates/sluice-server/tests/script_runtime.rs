//! Differential test of the Lua scripting runtime against a real redis-server 7.0.
//!
//! Each script runs twice: with EVAL on redis, and through `sluice_server::script` with a
//! host that forwards `redis.call` to the same redis. The replies must match byte for byte,
//! for RESP2 and RESP3 clients. Needs `SLUICE_TEST_REDIS_URL` (e.g.
//! `redis://127.0.0.1:6379`); skipped with a message when unset.
//!
//! Only keys under `sluice:lua-test:` in db 9 are touched (deleted before each run).
//!
//! Every script here must end quickly on redis: a looping script blocks the shared server
//! (e.g. `load` with a reader that returns a number never ends there, as the number reads
//! as a string piece).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use sluice_server::frontend::frame::Frame;
use sluice_server::script::{LogLevel, LuaVm, Script, ScriptHost, VmOptions};

const PREFIX: &str = "sluice:lua-test:";
const DB: &str = "9";

struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn open(addr: &str, proto: u8) -> Conn {
        let s = TcpStream::connect(addr).expect("connect to redis");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut c = Conn {
            reader: BufReader::new(s.try_clone().expect("clone")),
            writer: s,
        };
        c.cmd(&[b"HELLO", proto.to_string().as_bytes()]);
        c.cmd(&[b"SELECT", DB.as_bytes()]);
        c
    }

    /// Sends a command and returns its reply: the raw bytes and the parsed frame.
    fn cmd(&mut self, argv: &[&[u8]]) -> (Vec<u8>, Frame) {
        let mut out = format!("*{}\r\n", argv.len()).into_bytes();
        for a in argv {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&out).expect("write");
        let mut raw = Vec::new();
        let f = read_frame(&mut self.reader, &mut raw);
        (raw, f)
    }
}

fn read_line(r: &mut BufReader<TcpStream>, raw: &mut Vec<u8>) -> Vec<u8> {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line).expect("read");
    raw.extend_from_slice(&line);
    line.truncate(line.len().saturating_sub(2));
    line
}

fn read_frame(r: &mut BufReader<TcpStream>, raw: &mut Vec<u8>) -> Frame {
    let line = read_line(r, raw);
    let (kind, rest) = (line[0], &line[1..]);
    let text = String::from_utf8_lossy(rest).into_owned();
    let num = || text.parse::<i64>().expect("number");
    let read_blob = |r: &mut BufReader<TcpStream>, raw: &mut Vec<u8>, n: i64| {
        let mut buf = vec![0u8; n as usize + 2];
        r.read_exact(&mut buf).expect("read");
        raw.extend_from_slice(&buf);
        buf.truncate(n as usize);
        buf
    };
    match kind {
        b'+' => Frame::Simple(text),
        b'-' => Frame::Error(Bytes::from(rest.to_vec())),
        b':' => Frame::Integer(num()),
        b'$' if num() < 0 => Frame::Null,
        b'$' => Frame::Bulk(Bytes::from(read_blob(r, raw, num()))),
        b'*' if num() < 0 => Frame::NullArray,
        b'*' => Frame::Array((0..num()).map(|_| read_frame(r, raw)).collect()),
        b'~' => Frame::Set((0..num()).map(|_| read_frame(r, raw)).collect()),
        b'%' => Frame::Map(
            (0..num())
                .map(|_| (read_frame(r, raw), read_frame(r, raw)))
                .collect(),
        ),
        b'_' => Frame::Null,
        b'#' => Frame::Boolean(rest == b"t"),
        b',' => Frame::Double(match text.as_str() {
            "inf" => f64::INFINITY,
            "-inf" => f64::NEG_INFINITY,
            t => t.parse().expect("double"),
        }),
        b'(' => Frame::BigNumber(Bytes::from(rest.to_vec())),
        b'=' => {
            let b = read_blob(r, raw, num());
            Frame::Verbatim(Bytes::from(b[4..].to_vec()))
        }
        other => panic!("unexpected reply type {}", other as char),
    }
}

/// Forwards `redis.call` to redis, on a RESP2 or RESP3 connection as the script asks, and
/// words the errors Redis gives for scripts where a plain connection words them otherwise.
struct ForwardHost {
    resp2: Conn,
    resp3: Conn,
    logs: Vec<(LogLevel, Vec<u8>)>,
}

impl ScriptHost for ForwardHost {
    fn call(&mut self, argv: &[Bytes], resp: u8) -> Frame {
        let args: Vec<&[u8]> = argv.iter().map(|a| a.as_ref()).collect();
        let conn = if resp == 3 {
            &mut self.resp3
        } else {
            &mut self.resp2
        };
        // Redis refuses these from scripts before running them; a host must too.
        let name = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
        if [
            "blpop",
            "brpop",
            "multi",
            "exec",
            "watch",
            "subscribe",
            "eval",
            "script",
        ]
        .contains(&name.as_str())
        {
            return Frame::error("ERR This Redis command is not allowed from script");
        }
        let (_, f) = conn.cmd(&args);
        match f {
            Frame::Error(e) if e.starts_with(b"ERR unknown command") => {
                Frame::error("ERR Unknown Redis command called from script")
            }
            Frame::Error(e) if e.starts_with(b"ERR wrong number of arguments for") => {
                Frame::error("ERR Wrong number of args calling Redis command from script")
            }
            other => other,
        }
    }

    fn log(&mut self, level: LogLevel, msg: &[u8]) {
        self.logs.push((level, msg.to_vec()));
    }
}

struct Case {
    src: String,
    /// Commands run before each side (keys are prefixed where they start with `@`).
    setup: Vec<Vec<String>>,
}

fn case(src: &str) -> Case {
    Case {
        src: src.to_string(),
        setup: Vec::new(),
    }
}

fn with_setup(src: &str, setup: &[&[&str]]) -> Case {
    Case {
        src: src.to_string(),
        setup: setup
            .iter()
            .map(|c| c.iter().map(|s| s.to_string()).collect())
            .collect(),
    }
}

fn key(n: usize) -> String {
    format!("{PREFIX}k{n}")
}

fn reset(conn: &mut Conn, setup: &[Vec<String>]) {
    let keys: Vec<String> = (1..=3).map(key).collect();
    let mut del: Vec<&[u8]> = vec![b"DEL"];
    del.extend(keys.iter().map(|k| k.as_bytes()));
    conn.cmd(&del);
    for c in setup {
        let args: Vec<String> = c
            .iter()
            .map(|a| match a.strip_prefix('@') {
                Some(n) => format!("{PREFIX}{n}"),
                None => a.clone(),
            })
            .collect();
        let refs: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        conn.cmd(&refs);
    }
}

fn encode(f: &Frame, proto: u8) -> Vec<u8> {
    let mut out = BytesMut::new();
    f.encode(proto, &mut out);
    out.to_vec()
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    // Lua -> RESP conversions.
    for expr in [
        "1",
        "-1",
        "0",
        "3.99",
        "-3.99",
        "1e20",
        "-1e20",
        "0/0",
        "1/0",
        "2^53",
        "2^63",
        "-2^63",
        "123456789012345678",
        "'x'",
        "''",
        "'a\\0b'",
        "true",
        "false",
        "nil",
        "{}",
        "{1,2,3}",
        "{1,2,nil,3}",
        "{nil,1}",
        "{'a',{'b',{'c',{}}}}",
        "{ok='fine'}",
        "{err='bad'}",
        "{err='a\\nb'}",
        "{ok='a\\r\\nb'}",
        "{ok=1}",
        "{err=1}",
        "{err='x', ok='y'}",
        "{1, ok='y'}",
        "{a=1,b=2}",
        "{1,2,a=1}",
        "{true,false,1}",
        "{0.5, 1.5, -0.5}",
        "{double=3.14}",
        "{double=1/0}",
        "{double=-1/0}",
        "{double=0.1}",
        "{double='x'}",
        "{double=3}",
        "{big_number='123456789012345678901234567890'}",
        "{big_number=5}",
        "{big_number='1\\r\\n2'}",
        "{map={a=1}}",
        "{map={}}",
        "{map={[1]=2}}",
        "{map={a={1,2}}}",
        "{map=5}",
        "{set={a=true}}",
        "{set={}}",
        "{set={[1]=true}}",
        "{set=1}",
        "{verbatim_string={format='txt', string='hello'}}",
        "{verbatim_string={format='txt'}}",
        "{verbatim_string='x'}",
        "{map={k={map={a=true}}}}",
        "{{map={x=false}}}",
        "{1, {set={z=true}}, {double=2.5}}",
        "redis",
        "print",
        "type",
        "function() end",
        "coroutine.create(function() end)",
        "cjson.null",
        "{cjson.null, 1}",
        "math.huge",
        "-math.huge",
        "math.pi",
        "tostring(0.1)",
        "tostring(1e15)",
        "tostring(1e100)",
        "tostring(-0)",
        "tostring(2^53)",
        "tostring(1/3)",
        "string.format('%d', 3.7)",
        "string.format('%5.2f', 3.14159)",
        "('x'):rep(3)",
        "#KEYS",
        "#ARGV",
        "KEYS",
        "ARGV",
        "ARGV[2] + 1",
        "ARGV[3] * 2",
        "ARGV[2] .. ARGV[3]",
        "tonumber('0x10')",
        "tonumber('  5  ')",
        "tonumber('5x')",
        "tonumber('1e2')",
        "_VERSION",
        "type(_G)",
        "select('#', 1, 2, 3)",
        "unpack({1, 2, 3})",
        "string.byte('A')",
        "string.char(72, 105)",
        "table.concat({1, 2, 3}, ',')",
        "math.floor(-3.5)",
        "math.fmod(7, 3)",
        "math.max(1, 5, 3)",
        "string.len('abc')",
        "string.sub('hello', 2, 3)",
        "string.upper('abc')",
        "string.gsub('hello', 'l', 'L')",
        "string.find('hello', 'll')",
        "string.match('key:123', '%d+')",
    ] {
        v.push(case(&format!("return {expr}")));
        v.push(case(&format!("redis.setresp(3) return {expr}")));
    }
    // RESP -> Lua conversions of command replies, in both script protocols.
    let replies: &[(&str, &[&[&str]])] = &[
        ("redis.call('set', KEYS[1], 'v')", &[]),
        ("redis.call('get', KEYS[1])", &[&["SET", "@k1", "hello"]]),
        ("redis.call('get', KEYS[1])", &[]),
        ("redis.call('incr', KEYS[1])", &[]),
        ("redis.call('incrbyfloat', KEYS[1], '1.5')", &[]),
        (
            "redis.call('hgetall', KEYS[1])",
            &[&["HSET", "@k1", "a", "1", "b", "2"]],
        ),
        ("redis.call('hgetall', KEYS[1])", &[]),
        ("redis.call('smembers', KEYS[1])", &[&["SADD", "@k1", "x"]]),
        (
            "redis.call('zscore', KEYS[1], 'm')",
            &[&["ZADD", "@k1", "1.5", "m"]],
        ),
        (
            "redis.call('zrange', KEYS[1], 0, -1, 'withscores')",
            &[&["ZADD", "@k1", "1.5", "m", "2", "n"]],
        ),
        (
            "redis.call('mget', KEYS[1], KEYS[2])",
            &[&["SET", "@k1", "x"]],
        ),
        ("redis.call('exists', KEYS[1])", &[]),
        ("redis.call('ping')", &[]),
        ("redis.call('echo', 'hi')", &[]),
        ("redis.call('lpop', KEYS[1])", &[]),
        ("redis.call('lpop', KEYS[1], 2)", &[]),
        (
            "redis.call('lrange', KEYS[1], 0, -1)",
            &[&["RPUSH", "@k1", "a", "b", "c"]],
        ),
        ("redis.call('blpop', KEYS[1], 0.01)", &[]),
        (
            "redis.call('hrandfield', KEYS[1], 1, 'withvalues')",
            &[&["HSET", "@k1", "a", "1"]],
        ),
        ("redis.call('type', KEYS[1])", &[&["SET", "@k1", "x"]]),
        (
            "redis.call('getrange', KEYS[1], 0, 1)",
            &[&["SET", "@k1", "xyz"]],
        ),
        ("redis.call('set', KEYS[1], 0.1)", &[]),
        ("redis.call('set', KEYS[1], 1e300)", &[]),
        ("redis.call('set', KEYS[1], -0.0)", &[]),
        ("redis.call('set', KEYS[1], 12345678901234567890)", &[]),
        (
            "redis.call('set', KEYS[1], 1e17) and redis.call('get', KEYS[1])",
            &[],
        ),
        (
            "redis.call('set', KEYS[1], 2^53) and redis.call('get', KEYS[1])",
            &[],
        ),
        (
            "redis.call('set', KEYS[1], -1e16) and redis.call('get', KEYS[1])",
            &[],
        ),
        (
            "redis.call('set', KEYS[1], 1e15 + 0.5) and redis.call('get', KEYS[1])",
            &[],
        ),
        (
            "redis.call('set', KEYS[1], 100) and redis.call('get', KEYS[1])",
            &[],
        ),
        ("redis.sha1hex(1e15)", &[]),
        (
            "redis.call('set', KEYS[1], 1e-300) and redis.call('get', KEYS[1])",
            &[],
        ),
        (
            "redis.call('set', KEYS[1], -0.0) and redis.call('get', KEYS[1])",
            &[],
        ),
        (
            "redis.call('set', KEYS[1], 1e-17) and redis.call('get', KEYS[1])",
            &[],
        ),
        ("redis.sha1hex(1e-300)", &[]),
        ("cjson.encode(1e-20)", &[]),
        ("cjson.encode({1e-20, {x = -1e-300}})", &[]),
        ("{double = 1e-20}", &[]),
        ("{1e-20, -1e-20, 1e-300 * 1e300}", &[]),
        (
            "struct.unpack('d', struct.pack('d', 1e-300)) == 1e-300",
            &[],
        ),
        ("cmsgpack.unpack(cmsgpack.pack(1e-300)) == 1e-300", &[]),
        ("cmsgpack.unpack(cmsgpack.pack({1e-300}))[1] == 1e-300", &[]),
        ("redis.sha1hex(123456789012345678)", &[]),
        ("redis.call('zadd', KEYS[1], 1, 'a')", &[]),
        ("redis.call('sismember', KEYS[1], 'a')", &[]),
        ("redis.call('xadd', KEYS[1], '1-1', 'f', 'v')", &[]),
        (
            "redis.call('xrange', KEYS[1], '-', '+')",
            &[&["XADD", "@k1", "1-1", "f", "v"]],
        ),
    ];
    for (call, setup) in replies {
        for wrap in [
            "return {CALL}",
            "redis.setresp(3) return {CALL}",
            "local r = {CALL} return type(r)",
            "redis.setresp(3) local r = {CALL} return type(r)",
            "local r = {CALL} if type(r) == 'table' then local o = {} for k, v in pairs(r) do o[#o+1] = tostring(k) o[#o+1] = type(v) end table.sort(o) return o end return tostring(r)",
            "redis.setresp(3) local r = {CALL} if type(r) == 'table' then local o = {} for k, v in pairs(r) do o[#o+1] = tostring(k) o[#o+1] = type(v) end table.sort(o) return o end return tostring(r)",
            "redis.setresp(3) local r = {CALL} redis.setresp(2) return r",
        ] {
            v.push(with_setup(&wrap.replace("{CALL}", call), setup));
        }
    }
    // Errors.
    for src in [
        "return a",
        "return 1 + nil",
        "error('boom')",
        "error('a\\nb')",
        "error({err='XX boom'})",
        "error({err='no code'})",
        "error(5)",
        "error(nil)",
        "error(true)",
        "error('lvl0', 0)",
        "error('lvl2', 2)",
        "local function f() error('inner') end f()",
        "local function f() error('inner', 2) end\nf()",
        "\n\nreturn 1 + {}",
        "return redis.call()",
        "return redis.pcall()",
        "return redis.call('set', {})",
        "return redis.pcall('set', {})",
        "return redis.call('get', nil)",
        "return redis.call('get', true)",
        "return redis.call('nosuchcmd')",
        "return redis.pcall('nosuchcmd')",
        "return redis.call('get', 'a', 'b')",
        "return redis.pcall('get', 'a', 'b')",
        "local t = redis.pcall('get', 'a', 'b') local r = {} for k, v in pairs(t) do r[#r+1] = k r[#r+1] = tostring(v) end table.sort(r) return r",
        "return redis.call('incr', KEYS[1])",
        "return redis.pcall('incr', KEYS[1])",
        "return {redis.pcall('incr', KEYS[1])}",
        "local ok, e = pcall(redis.call, 'incr', KEYS[1]) return {tostring(ok), e}",
        "local ok, e = pcall(function() return redis.call('incr', KEYS[1]) end) return e",
        "local ok, e = pcall(error, {err='X'}) return e",
        "local ok, e = pcall(error, {err=5}) return e",
        "local ok, e = pcall(error, {x=5}) return type(e)",
        "local ok, e = pcall(error, 'plain') return e",
        "local ok, e = pcall(function() x = 1 end) return e",
        "local ok, e = pcall(function() return x end) return e",
        "return pcall(function() return 1 end)",
        "return {pcall(function() return 1, 2 end)}",
        "return {xpcall(function() error('q') end, function(m) return 'handled: ' .. m end)}",
        "return redis.error_reply('x')",
        "return redis.error_reply('-MY thing')",
        "return redis.error_reply('MY thing')",
        "return redis.error_reply('')",
        "return redis.error_reply(5)",
        "return redis.error_reply()",
        "return redis.status_reply('fine')",
        "return redis.status_reply(5)",
        "return redis.status_reply('a', 'b')",
        "local t = redis.error_reply('-E1 m') return t.err",
        "return redis.sha1hex('')",
        "return redis.sha1hex('abc')",
        "return redis.sha1hex(123)",
        "return redis.sha1hex()",
        "return redis.sha1hex('a', 'b')",
        "return redis.log(1)",
        "return redis.log('x', 'y')",
        "return redis.log(9, 'y')",
        "return redis.log(redis.LOG_DEBUG, 'quiet')",
        "return redis.log(redis.LOG_DEBUG, 1e15, {}, 'x')",
        "error({err = 'at line', line = 1e15})",
        "local t = {} t[1e15] = 1 return cjson.encode(t)",
        "return redis.setresp(4)",
        "return redis.setresp()",
        "return redis.setresp('3')",
        "return redis.set_repl(9)",
        "return redis.set_repl()",
        "return redis.set_repl(redis.REPL_ALL)",
        "return {redis.replicate_commands(), redis.breakpoint(), redis.debug('x')}",
        "return {redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL}",
        "return {redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING}",
        "return redis.REDIS_VERSION .. ' ' .. redis.REDIS_VERSION_NUM",
        "return +",
        "return 'unfinished",
        "x = ",
        "for",
        "return 1 end",
        "local t = {} t[1] = t return #t",
        "#!lua\nreturn 1",
        "#!lua flags=no-writes\nreturn a",
        "#!lua flags=no-writes,allow-stale\nreturn 2",
        "#!lua flags=bogus\nreturn 1",
        "#!lua x\nreturn 1",
        "#!python\nreturn 1",
        "#!lua",
        "return math.random(0)",
        "return math.random(1, 2, 3)",
        "return math.random('x')",
        "return math.random(5, 1)",
        "return math.randomseed()",
        "return string.rep()",
        "return ('x'):bad()",
        "return nil .. 'x'",
        "return #nil",
        "return {} < {}",
        "local t = setmetatable({}, {__index = function(t, k) error('idx ' .. k) end}) return t.foo",
        "return tostring(nil) .. tostring(true)",
        "return unpack({1, 2}, 1, 3)",
        "return loadstring('return 1 +')",
        "return {loadstring('return 1 +')}",
        "return loadstring('return 40 + 2')()",
        "return loadstring('return undefinedvar')()",
        "return loadstring('x = 1')()",
    ] {
        v.push(case(src));
    }
    // Sandbox and global protection.
    for src in [
        "a = 5",
        "string.foo = 1 return 1",
        "string.rep = nil return 1",
        "math.pi = 3 return 1",
        "redis.call = nil return 1",
        "redis.newfield = 1 return 1",
        "cjson.encode = nil return 1",
        "_G.x = 1 return 1",
        "_G['redis'] = nil return 1",
        "rawset(_G, 'x', 1) return 1",
        "rawset(string, 'x', 1) return 1",
        "table.insert(string, 'x') return 1",
        "table.insert(_G, 1, 'x') return 1",
        "return table.insert(nil, 1)",
        "return table.insert({}, 1, 2, 3)",
        "return table.insert({})",
        "return table.insert({}, 'x', 1)",
        "local t = {1, 2, 3} table.insert(t, 4) table.insert(t, 1, 0) table.insert(t, 9, 'far') return {#t, t[1], t[5], t[9]}",
        "table.sort(_G) return 1",
        "return table.remove(string)",
        "return #string",
        "setmetatable(_G, nil) return 1",
        "setmetatable(string, {}) return 1",
        "return rawget(_G, 'nothing') == nil",
        "return type(rawget(_G, 'redis'))",
        "return type(rawget(string, 'rep'))",
        "return os.exit()",
        "return io.open('/etc/passwd')",
        "return require('os')",
        "return package.loaded",
        "return debug.getinfo(1)",
        "return dofile('/etc/passwd')",
        "return loadfile('/etc/passwd')",
        "return setfenv(1, {})",
        "return getfenv(1)",
        "return newproxy(true)",
        "return module('x')",
        "return print('x')",
        "return type(loadstring)",
        "return type(load)",
        "return type(coroutine)",
        "return type(gcinfo)",
        "return type(collectgarbage)",
        "return type(__redis__err__handler)",
        "return type(__redis__compare_helper)",
        "local r = {} for _, n in ipairs({'os','io','loadstring','require','package','debug','coroutine','loadfile','dofile','setfenv','getfenv','newproxy','gcinfo','module','print','collectgarbage','unpack','load','rawset','rawget','rawequal','_G','__redis__err__handler','bit','struct','cmsgpack','cjson','xpcall','pcall','select','tonumber','tostring','ipairs','pairs','next','type','assert','error','getmetatable','setmetatable','_VERSION','string','table','math','redis','KEYS','ARGV'}) do r[#r+1] = n .. '=' .. type(rawget(_G, n)) end return r",
        "local r = {} for k in pairs(redis) do r[#r+1] = k end table.sort(r) return r",
        "local r = {} for k in pairs(string) do r[#r+1] = k end table.sort(r) return r",
        "local r = {} for k in pairs(math) do r[#r+1] = k end table.sort(r) return r",
        "local r = {} for k in pairs(table) do r[#r+1] = k end table.sort(r) return r",
        "local r = {} for k in pairs(bit) do r[#r+1] = k end table.sort(r) return r",
        "local r = {} for k in next, cjson do r[#r+1] = k end table.sort(r) return r",
        "local r = {} for k in pairs(coroutine) do r[#r+1] = k end table.sort(r) return r",
        "local s = getmetatable('').__index return s == string",
        "return getmetatable(_G) == nil",
        "return type(getmetatable(_G))",
        "return getmetatable('').__index.upper('abc')",
        "return ('abc'):upper()",
        "return pairs(nil)",
        "return ipairs(nil)",
        "return next(nil)",
        "return rawget(nil, 1)",
        "return rawset({}, nil, 1)",
        "return setmetatable(1, {})",
        "return {next({})}",
        "local n = 0 for i, v in ipairs({1, 2, 3}) do n = n + v end return n",
        "local t = {} rawset(t, 'a', 1) return rawget(t, 'a')",
        "local t = setmetatable({}, {__index = function() return 7 end}) return t.x",
        "KEYS[1] = 'changed' return KEYS[1]",
        "KEYS = {} return 1",
        "local t = {} t.x = 1 return t.x",
        "return _G == _G._G",
        "return string == _G.string",
        "return {string.dump ~= nil}",
        "return loadstring(string.dump(function() return 1 end))",
        "local f = loadstring('return 1') return type(f)",
        "return pcall(loadstring, 'syntax error here')",
        "local f, e = loadstring(string.dump(function() return 1 end)) return {type(f), e}",
        "local f, e = loadstring('\\27Lua') return {type(f), e}",
        "local f, e = loadstring('\\27Lua', 'named') return {type(f), e}",
        "local f, e = loadstring('\\27Lua', '=eq') return {type(f), e}",
        "local f, e = loadstring('\\27' .. string.rep('x', 80)) return {type(f), e}",
        "local f, e = loadstring('return 1 +', 'chunk') return {type(f), e}",
        "local f, e = loadstring('return 1 +', '=chunk') return {type(f), e}",
        "return loadstring()",
        "return loadstring(nil)",
        "return loadstring(5)",
        "local f, e = load(function() return nil end) return {type(f), e}",
        "local n = 0 local f = load(function() n = n + 1 if n == 1 then return 'return ' elseif n == 2 then return '42' end end) return f()",
        "local s = string.dump(function() return 1 end) local f, e = load(function() local r = s s = nil return r end) return {type(f), e}",
        "return load()",
        "return load('x')",
        "local function f() return f() + 1 end return f()",
        "local function f()\n  return redis.call('incr', KEYS[1])\nend\n\nreturn f()",
        "local function f()\n  error('deep')\nend\nlocal function g()\n  f()\nend\ng()",
        "local function f()\n  error({err = 'TBL deep'})\nend\nf()",
        "local t = {}\nt.x.y = 1",
        "local s = 'x'\nreturn s:nosuch()",
        "return table.concat({1, {}, 3})",
        "return string.format('%d', 'x')",
        "return ('x'):rep(-1)",
        "return tostring(redis.call('ping').ok)",
        "return redis.call('ping', 'x')",
        "local ok, e = pcall(redis.call) return e",
        "local ok, e = pcall(redis.call, 'set', {}) return e",
        "local r = {pcall(redis.pcall, 'incr', KEYS[1])} return {tostring(r[1]), type(r[2])}",
        "local ok, e = pcall(function() local ok2, e2 = pcall(error, {err='IN'}) error(e2, 0) end) return e",
        "return select(2, pcall(error))",
        "return {pcall()}",
        "return {pcall(1)}",
        "return {xpcall()}",
        "return {xpcall(function() return 1 end)}",
        "return {xpcall(function() return 1, 2 end, print)}",
        "return {xpcall(function() error({err='T'}) end, function(e) return e end)}",
        "return select(2, pcall(error, nil))",
        "return {pcall(error, {err={1}})}",
        "local t = redis.error_reply('x') t.err = 'CHANGED y' return t",
        "local t = redis.status_reply('x') return t.ok",
        "error(redis.error_reply('NOPE no'))",
        "return redis.call('set', KEYS[1], 'x', 'badopt')",
        "redis.call('set', KEYS[1], 'x') return redis.call('lpush', KEYS[1], 'y')",
        "redis.call('set', KEYS[1], 'x') return redis.pcall('lpush', KEYS[1], 'y')",
        "redis.call('set', KEYS[1], 'x') local r = redis.pcall('lpush', KEYS[1], 'y') return r.err",
        "local ok, e = pcall(string.rep) return e",
        "return coroutine.wrap(function() coroutine.yield(1) end)()",
        "return collectgarbage('count') > 0",
    ] {
        v.push(case(src));
    }
    // Deterministic math.random (after seeding, as Redis' state is shared).
    for seed in ["0", "1", "7", "-5", "123456789", "2147483647"] {
        v.push(case(&format!(
            "math.randomseed({seed}) return {{math.random(100), math.random(1, 6), math.random(1000000), math.random(-10, 10), tostring(math.random())}}"
        )));
    }
    // bit.
    for expr in [
        "bit.tobit(0xffffffff)",
        "bit.tobit(2^32 + 5)",
        "bit.tobit(-1)",
        "bit.tobit(1.5)",
        "bit.tobit(2.5)",
        "bit.tobit('7')",
        "bit.bnot(0)",
        "bit.band(0xff, 0x0f)",
        "bit.band(1, 3, 7)",
        "bit.bor(1, 2, 4)",
        "bit.bxor(5, 3)",
        "bit.lshift(1, 31)",
        "bit.lshift(1, 32)",
        "bit.rshift(-1, 28)",
        "bit.arshift(-256, 4)",
        "bit.rol(0x12345678, 8)",
        "bit.ror(0x12345678, 8)",
        "bit.bswap(0x12345678)",
        "bit.tohex(255)",
        "bit.tohex(-1)",
        "bit.tohex(255, 2)",
        "bit.tohex(255, -4)",
        "bit.tohex(0x12345678, 12)",
        "bit.band()",
        "bit.band('x')",
        "bit.bor(1, {})",
        "bit.tobit(nil)",
        "bit.lshift(1)",
        "bit.tobit(2^52)",
    ] {
        v.push(case(&format!("return {expr}")));
    }
    // cjson.
    for expr in [
        "cjson.encode({1, 2, 3})",
        "cjson.encode({a = 1})",
        "cjson.encode({})",
        "cjson.encode('x')",
        "cjson.encode(1.5)",
        "cjson.encode(1e20)",
        "cjson.encode(0.1)",
        "cjson.encode(-0)",
        "cjson.encode(true)",
        "cjson.encode(nil)",
        "cjson.encode(cjson.null)",
        "cjson.encode('a\"b\\\\c/d\\n\\t\\r\\b\\f\\1\\127\\200')",
        "cjson.encode({1, nil, 3})",
        "cjson.encode({[1] = 1, [3] = 3})",
        "cjson.encode({[1] = 1, [20] = 3})",
        "cjson.encode({[1.5] = 1})",
        "cjson.encode({[-1] = 1})",
        "cjson.encode({{}, {{}}})",
        "cjson.encode({a = {b = {c = {1, 2}}}})",
        "cjson.encode({1, 'two', false, cjson.null})",
        "cjson.encode(1/0)",
        "cjson.encode(0/0)",
        "cjson.encode(print)",
        "cjson.encode({[true] = 1})",
        "cjson.encode()",
        "cjson.encode(1, 2)",
        "cjson.encode({x = print})",
        "cjson.decode('[1,2,3]')",
        "cjson.decode('{\"a\":1}').a",
        "cjson.decode('\"x\"')",
        "cjson.decode('1.5')",
        "cjson.decode('-0')",
        "cjson.decode('1e2')",
        "cjson.decode('true')",
        "cjson.decode('false')",
        "cjson.decode('null') == cjson.null",
        "cjson.decode('[1,null,3]')",
        "type(cjson.decode('[1,null,3]')[2])",
        "cjson.decode('\"\\\\u00e9\\\\ud83d\\\\ude00\"')",
        "cjson.decode('\"\\\\n\\\\t\\\\/\"')",
        "cjson.decode('  [ 1 , 2 ]  ')",
        "cjson.decode('')",
        "cjson.decode('[')",
        "cjson.decode('[1,]')",
        "cjson.decode('{1:2}')",
        "cjson.decode('{\"a\" 1}')",
        "cjson.decode('{\"a\":1,}')",
        "cjson.decode('[1 2]')",
        "cjson.decode('nul')",
        "cjson.decode('\"abc')",
        "cjson.decode('\"\\\\x\"')",
        "cjson.decode('\"\\\\uzzzz\"')",
        "cjson.decode('1 2')",
        "cjson.decode('0x10')",
        "cjson.decode('01')",
        "cjson.decode('+1')",
        "cjson.decode('inf')",
        "cjson.decode('[nan]')",
        "cjson.decode('.5')",
        "cjson.decode()",
        "cjson.decode({})",
        "cjson.decode(5)",
        "cjson.decode(string.rep('[', 1001) .. string.rep(']', 1001))",
        "cjson.encode(cjson.decode('{\"a\":[1,2,{\"b\":null}],\"c\":\"d\"}'))",
        "cjson.decode('{\"a\":{\"b\":[1,{\"c\":true}]}}').a.b[2].c",
        "cjson.encode({cjson.decode('[]')})",
        "cjson.encode(string.rep('x', 3))",
        "cjson.encode({['k'] = 'v', [2] = 'two'})",
        "cjson._NAME .. cjson._VERSION",
    ] {
        v.push(case(&format!("return {expr}")));
    }
    // cmsgpack (packed bytes shown as hex so the reply is comparable text).
    let hex = "local function hex(s) return (s:gsub('.', function(c) return string.format('%02x', string.byte(c)) end)) end ";
    for expr in [
        "nil",
        "true",
        "false",
        "0",
        "1",
        "127",
        "128",
        "255",
        "256",
        "65535",
        "65536",
        "4294967295",
        "4294967296",
        "-1",
        "-32",
        "-33",
        "-128",
        "-129",
        "-32768",
        "-32769",
        "-2147483648",
        "-2147483649",
        "2^53",
        "2^63",
        "-2^63",
        "1.5",
        "0.1",
        "-0.25",
        "1e300",
        "1/0",
        "-1/0",
        "''",
        "'abc'",
        "string.rep('x', 31)",
        "string.rep('x', 32)",
        "string.rep('x', 255)",
        "string.rep('x', 256)",
        "string.rep('x', 65536)",
        "{}",
        "{1, 2, 3}",
        "{a = 1}",
        "{1, nil, 3}",
        "{[1] = 'a', [3] = 'c'}",
        "{[0] = 1}",
        "{[1.5] = 1}",
        "{{{{{{{{{{{{{{{{{{{1}}}}}}}}}}}}}}}}}}}",
        "{x = {y = {z = true}}}",
        "print",
        "1, 2, 'three'",
        "{string.rep('a', 20), {1, 2}, false}",
    ] {
        v.push(case(&format!("{hex} return hex(cmsgpack.pack({expr}))")));
        v.push(case(&format!(
            "return {{cmsgpack.unpack(cmsgpack.pack({expr}))}}"
        )));
    }
    for expr in [
        "cmsgpack.pack()",
        "cmsgpack.unpack('')",
        "cmsgpack.unpack('\\145')",
        "cmsgpack.unpack('\\193')",
        "cmsgpack.unpack('\\205\\1')",
        "cmsgpack.unpack('\\1\\2\\3')",
        "{cmsgpack.unpack('\\1\\2\\3')}",
        "{cmsgpack.unpack_one('\\1\\2\\3')}",
        "{cmsgpack.unpack_one('\\1\\2\\3', 1)}",
        "{cmsgpack.unpack_one('\\1\\2\\3', 2)}",
        "{cmsgpack.unpack_limit('\\1\\2\\3', 2)}",
        "{cmsgpack.unpack_limit('\\1\\2\\3', 2, 1)}",
        "cmsgpack.unpack_one('\\1', 5)",
        "cmsgpack.unpack_one('\\1', -1)",
        "cmsgpack.unpack(nil)",
        "cmsgpack.unpack({})",
        "cmsgpack.unpack('\\196\\2hi')",
        "{cmsgpack.unpack('\\130\\161a\\1\\161b\\2')}",
        "cmsgpack.unpack('\\203\\64\\9\\33\\251\\84\\68\\45\\24')",
        "cmsgpack.unpack('\\207\\255\\255\\255\\255\\255\\255\\255\\255')",
        "cmsgpack.unpack('\\211\\128\\0\\0\\0\\0\\0\\0\\0')",
        "{pcall(cmsgpack.unpack, string.rep('\\145', 10000) .. '\\1')}",
        "cmsgpack.unpack(string.rep('\\145', 10000) .. '\\1')",
        "{pcall(cmsgpack.unpack, string.rep('\\1', 10000))}",
        "select('#', cmsgpack.unpack(string.rep('\\1', 7998)))",
        "select('#', cmsgpack.unpack(string.rep('\\1', 7999)))",
        "select('#', cmsgpack.unpack(string.rep('\\1', 8000)))",
        "{pcall(cmsgpack.unpack, string.rep('\\129\\1', 500) .. '\\1')}",
        "type(cmsgpack.unpack(string.rep('\\145', 100) .. '\\1'))",
    ] {
        v.push(case(&format!("return {expr}")));
    }
    // struct.
    for expr in [
        "struct.pack('b', 1)",
        "struct.pack('B', 255)",
        "struct.pack('h', -2)",
        "struct.pack('>h', -2)",
        "struct.pack('H', 65535)",
        "struct.pack('i', 1)",
        "struct.pack('>i', 1)",
        "struct.pack('<I', 3)",
        "struct.pack('l', -1)",
        "struct.pack('L', 2^40)",
        "struct.pack('T', 7)",
        "struct.pack('i3', 70000)",
        "struct.pack('i16', -1)",
        "struct.pack('f', 1.5)",
        "struct.pack('>d', 1.5)",
        "struct.pack('d', 0.1)",
        "struct.pack('c3', 'abcd')",
        "struct.pack('c0', 'abcd')",
        "struct.pack('s', 'ab')",
        "struct.pack('x')",
        "struct.pack('!4 b i', 1, 2)",
        "struct.pack('!2 b h', 1, 2)",
        "struct.pack('!8 b d', 1, 2)",
        "struct.pack('bxb', 1, 2)",
        "struct.pack('> b h i', 1, 2, 3)",
        "struct.pack('i', 1.9)",
        "struct.pack('i', -1.9)",
        "struct.pack('b', 300)",
        "struct.pack('B', -1)",
        "struct.pack('i', 2^40)",
    ] {
        v.push(case(&format!("{hex} return hex({expr})")));
    }
    for expr in [
        "struct.unpack('b', '\\255')",
        "struct.unpack('B', '\\255')",
        "struct.unpack('>h', '\\255\\254')",
        "struct.unpack('<H', '\\1\\2')",
        "struct.unpack('i', struct.pack('i', -5))",
        "struct.unpack('I', struct.pack('i', -5))",
        "struct.unpack('>I3', '\\1\\2\\3')",
        "struct.unpack('d', struct.pack('d', 0.1)) == 0.1",
        "struct.unpack('f', struct.pack('f', 0.5))",
        "struct.unpack('c2', 'abc')",
        "struct.unpack('s', 'ab\\0cd')",
        "struct.unpack('bc0', '\\2xyz')",
        "struct.unpack('b', '\\1\\2', 2)",
        "struct.unpack('b', '\\1', 2)",
        "struct.unpack('b', '\\1', 0)",
        "struct.unpack('i', 'ab')",
        "struct.unpack('s', 'ab')",
        "struct.unpack('c0', 'ab')",
        "struct.unpack('!4 b i', struct.pack('!4 b i', 1, 2))",
        "struct.unpack('l', struct.pack('l', 2^53))",
        "struct.size('i')",
        "struct.size('bhilfd')",
        "struct.size('!4 b i')",
        "struct.size('c10')",
        "struct.size('s')",
        "struct.size('c0')",
        "struct.pack('y', 1)",
        "struct.pack('i')",
        "struct.pack('i', 'x')",
        "struct.pack('c5', 'ab')",
        "struct.pack('!3 i', 1)",
        "struct.pack('i33', 1)",
        "struct.pack()",
        "struct.unpack('i')",
        "{struct.unpack('bb', '\\1\\2')}",
    ] {
        v.push(case(&format!("return {expr}")));
    }
    v
}

#[test]
fn scripts_match_redis() {
    let Ok(url) = std::env::var("SLUICE_TEST_REDIS_URL") else {
        eprintln!("SLUICE_TEST_REDIS_URL is not set: skipping the Lua differential test");
        return;
    };
    let addr = url
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_string();
    let mut vm = LuaVm::new(VmOptions::default()).expect("vm");
    let mut failures = Vec::new();
    let all = cases();
    let mut compared = 0;
    for proto in [2u8, 3u8] {
        let mut client = Conn::open(&addr, proto);
        let mut host = ForwardHost {
            resp2: Conn::open(&addr, 2),
            resp3: Conn::open(&addr, 3),
            logs: Vec::new(),
        };
        let keys: Vec<String> = (1..=2).map(key).collect();
        let argv = ["a1", "2", "3.5"];
        for c in &all {
            reset(&mut client, &c.setup);
            let mut eval: Vec<&[u8]> = vec![b"EVAL", c.src.as_bytes(), b"2"];
            eval.extend(keys.iter().map(|k| k.as_bytes()));
            eval.extend(argv.iter().map(|a| a.as_bytes()));
            let (expected, _) = client.cmd(&eval);

            reset(&mut client, &c.setup);
            let got = match Script::new(Bytes::from(c.src.clone())) {
                Ok(script) => {
                    let keys: Vec<Bytes> = keys.iter().map(|k| Bytes::from(k.clone())).collect();
                    let argv: Vec<Bytes> =
                        argv.iter().map(|a| Bytes::from(a.to_string())).collect();
                    vm.run(&script, &keys, &argv, &mut host)
                }
                Err(reply) => reply,
            };
            let got = encode(&got, proto);
            compared += 1;
            if got != expected {
                failures.push(format!(
                    "RESP{proto} {:?}\n  redis:  {:?}\n  sluice: {:?}",
                    c.src,
                    String::from_utf8_lossy(&expected),
                    String::from_utf8_lossy(&got)
                ));
            }
        }
    }
    reset(&mut Conn::open(&addr, 2), &[]);
    for f in &failures {
        eprintln!("{f}");
    }
    eprintln!("{compared} replies compared, {} differ", failures.len());
    assert!(
        failures.is_empty(),
        "{} of {compared} replies differ",
        failures.len()
    );
}
