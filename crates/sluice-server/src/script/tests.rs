//! Unit tests of the runtime with a scripted host (no server needed).

use bytes::Bytes;

use super::*;

/// Answers every command with a fixed reply and records what it was asked.
#[derive(Default)]
struct FakeHost {
    calls: Vec<Vec<Bytes>>,
    reply: Option<Frame>,
    logs: Vec<(LogLevel, Vec<u8>)>,
    abort_after: Option<usize>,
    checks: usize,
}

impl ScriptHost for FakeHost {
    fn call(&mut self, argv: &[Bytes], _resp: u8) -> Frame {
        self.calls.push(argv.to_vec());
        self.reply.clone().unwrap_or_else(Frame::ok)
    }
    fn log(&mut self, level: LogLevel, msg: &[u8]) {
        self.logs.push((level, msg.to_vec()));
    }
    fn check_abort(&mut self) -> Result<(), ScriptAbort> {
        self.checks += 1;
        match self.abort_after {
            Some(n) if self.checks > n => Err(ScriptAbort::killed()),
            _ => Ok(()),
        }
    }
}

fn run_with(src: &str, host: &mut FakeHost) -> Frame {
    let script = match Script::new(Bytes::from(src.to_string())) {
        Ok(s) => s,
        Err(f) => return f,
    };
    let mut vm = LuaVm::new(VmOptions::default()).expect("vm");
    vm.run(&script, &[Bytes::from("k1")], &[Bytes::from("a1")], host)
}

fn run(src: &str) -> Frame {
    run_with(src, &mut FakeHost::default())
}

fn err(s: &str) -> Frame {
    Frame::error(s)
}

#[test]
fn sha1_of_script() {
    assert_eq!(sha1_hex(b""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    let s = Script::new(Bytes::from("return 1")).expect("script");
    assert_eq!(s.sha(), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
}

#[test]
fn shebang_flags() {
    let s = Script::new(Bytes::from("#!lua flags=no-writes,allow-stale\nreturn 1")).expect("ok");
    assert!(s.flags().no_writes && s.flags().allow_stale && !s.flags().eval_compat);
    assert!(
        Script::new(Bytes::from("return 1"))
            .expect("ok")
            .flags()
            .eval_compat
    );
    let e = |src: &str| Script::new(Bytes::from(src.to_string())).err();
    assert_eq!(
        e("#!lua flags=bogus\n"),
        Some(err("ERR Unexpected flag in script shebang: bogus"))
    );
    assert_eq!(
        e("#!python\n"),
        Some(err("ERR Unexpected engine in script shebang: #!python"))
    );
    assert_eq!(e("#!lua"), Some(err("ERR Invalid script shebang")));
    assert_eq!(
        e("#!lua x=1\n"),
        Some(err("ERR Unknown lua shebang option: x=1"))
    );
    // Line numbers count the shebang line.
    let f = run("#!lua\nreturn a");
    assert!(
        matches!(&f, Frame::Error(m) if m.ends_with(b"on @user_script:2.")),
        "{f:?}"
    );
}

#[test]
fn cache_is_case_insensitive() {
    let cache = ScriptCache::new();
    let sha = cache.insert(Script::new(Bytes::from("return 1")).expect("ok"));
    assert!(cache.exists(sha.to_uppercase().as_bytes()));
    assert_eq!(cache.len(), 1);
    cache.flush();
    assert!(cache.is_empty());
}

#[test]
fn conversions() {
    assert_eq!(run("return 3.99"), Frame::Integer(3));
    assert_eq!(
        run("return {1,2,nil,3}"),
        Frame::Array(vec![Frame::Integer(1), Frame::Integer(2)])
    );
    assert_eq!(run("return {ok='fine'}"), Frame::Simple("fine".into()));
    assert_eq!(run("return {err='bad'}"), err("bad"));
    assert_eq!(run("return true"), Frame::Integer(1));
    assert_eq!(run("return false"), Frame::Null);
    assert_eq!(run("redis.setresp(3) return false"), Frame::Boolean(false));
    assert_eq!(run("return KEYS[1] .. ARGV[1]"), Frame::bulk("k1a1"));
}

#[test]
fn sandbox_globals() {
    assert_eq!(
        run("return a"),
        err("ERR user_script:1: Script attempted to access nonexistent global variable 'a' script: bbfcd1ececc90deec823f7fb730e4bfb2a4ba625, on @user_script:1.")
    );
    assert!(
        matches!(run("a = 5"), Frame::Error(m) if m.starts_with(b"ERR user_script:1: Attempt to modify a readonly table script:"))
    );
    assert!(
        matches!(run("string.rep = nil"), Frame::Error(m) if m.starts_with(b"ERR user_script:1: Attempt to modify a readonly table"))
    );
    assert!(
        matches!(run("rawset(_G, 'x', 1)"), Frame::Error(m) if m.starts_with(b"ERR Attempt to modify a readonly table script:"))
    );
    for lib in [
        "os", "io", "require", "package", "debug", "dofile", "loadfile", "setfenv", "getfenv",
        "print",
    ] {
        assert_eq!(
            run(&format!("return type(rawget(_G, '{lib}'))")),
            Frame::bulk("nil"),
            "{lib}"
        );
    }
    assert_eq!(
        run("local n = 0 for k in pairs(string) do n = n + 1 end return n"),
        Frame::Integer(15)
    );
    assert_eq!(
        run("return getmetatable('').__index == string"),
        Frame::Integer(1)
    );
}

#[test]
fn redis_call_and_errors() {
    let mut host = FakeHost::default();
    assert_eq!(
        run_with("return redis.call('set', KEYS[1], 0.1)", &mut host),
        Frame::Simple("OK".into())
    );
    assert_eq!(
        host.calls[0],
        vec![
            Bytes::from("set"),
            Bytes::from("k1"),
            Bytes::from("0.10000000000000001")
        ]
    );
    let mut host = FakeHost {
        reply: Some(err("WRONGTYPE Operation against a key")),
        ..FakeHost::default()
    };
    assert_eq!(
        run_with("return redis.call('get', 'x')", &mut host),
        err("WRONGTYPE Operation against a key script: 3e7c9ebd31cd0a9d2fd76c4d2d8a4a4f0b3a4c1c, on @user_script:1.")
            .clone()
            .pipe_sha("return redis.call('get', 'x')")
    );
    assert_eq!(
        run_with("return redis.pcall('get', 'x')", &mut host),
        err("WRONGTYPE Operation against a key")
    );
    assert_eq!(
        run("return redis.pcall()"),
        err("ERR Please specify at least one argument for this redis lib call")
    );
    assert_eq!(
        run("return redis.pcall('x', {})"),
        err("ERR Lua redis lib command arguments must be strings or integers")
    );
}

trait PipeSha {
    fn pipe_sha(self, src: &str) -> Frame;
}

impl PipeSha for Frame {
    /// Puts the real SHA of `src` in an expected error (the one written above is a stand-in).
    fn pipe_sha(self, src: &str) -> Frame {
        match self {
            Frame::Error(m) => {
                let text = String::from_utf8_lossy(&m).into_owned();
                let start = text.find("script: ").map(|i| i + 8).unwrap_or(0);
                let fixed = format!(
                    "{}{}{}",
                    &text[..start],
                    sha1_hex(src.as_bytes()),
                    &text[start + 40..]
                );
                Frame::error(fixed)
            }
            other => other,
        }
    }
}

#[test]
fn log_and_abort() {
    let mut host = FakeHost::default();
    run_with("redis.log(redis.LOG_WARNING, 'a', 1, 'b')", &mut host);
    assert_eq!(host.logs, vec![(LogLevel::Warning, b"a 1 b".to_vec())]);
    let mut host = FakeHost {
        abort_after: Some(1),
        ..FakeHost::default()
    };
    let src = "local i = 0\nwhile true do pcall(function() i = i + 1 end) end";
    let f = run_with(src, &mut host);
    assert!(
        matches!(&f, Frame::Error(m) if m.starts_with(b"ERR Script killed by user with SCRIPT KILL... script: ")),
        "{f:?}"
    );
}

#[test]
fn compile_errors() {
    let s = Script::new(Bytes::from("return +")).expect("ok");
    assert_eq!(
        compile_check(&s),
        Err(err(
            "ERR Error compiling script (new function): user_script:1: unexpected symbol near '+'"
        ))
    );
}

#[test]
fn thread_vm_is_reused() {
    let s = Script::new(Bytes::from("return 7")).expect("ok");
    let mut host = FakeHost::default();
    let a = with_thread_vm(|vm| Ok(vm.run(&s, &[], &[], &mut host)));
    assert_eq!(a, Ok(Frame::Integer(7)));
    let n = with_thread_vm(|vm| Ok(vm.compiled_len()));
    assert_eq!(n, Ok(1));
}

/// A host that answers with RESP3-only frames whatever the script's protocol.
struct Resp3Host;

impl ScriptHost for Resp3Host {
    fn call(&mut self, _argv: &[Bytes], _resp: u8) -> Frame {
        Frame::Array(vec![
            Frame::Map(vec![(Frame::bulk("k"), Frame::Double(1.5))]),
            Frame::Set(vec![Frame::bulk("m")]),
            Frame::Boolean(true),
            Frame::Null,
            Frame::Verbatim(Bytes::from("txt")),
            Frame::BigNumber(Bytes::from("12345678901234567890")),
        ])
    }
    fn log(&mut self, _level: LogLevel, _msg: &[u8]) {}
}

#[test]
fn resp3_frames_downgrade_in_resp2_scripts() {
    let run3 = |src: &str| {
        let script = Script::new(Bytes::from(src.to_string())).expect("script");
        let mut vm = LuaVm::new(VmOptions::default()).expect("vm");
        vm.run(&script, &[], &[], &mut Resp3Host)
    };
    // RESP2: map flattened, set as array, double as string, true as 1, null as false.
    assert_eq!(
        run3("local r = redis.call('x') return {r[1][1], r[1][2], r[2][1], r[3], type(r[4]), r[5], r[6]}"),
        Frame::Array(vec![
            Frame::bulk("k"),
            Frame::bulk("1.5"),
            Frame::bulk("m"),
            Frame::Integer(1),
            Frame::bulk("boolean"),
            Frame::bulk("txt"),
            Frame::bulk("12345678901234567890"),
        ])
    );
    // RESP3: typed tables, and back out as the same frames.
    assert_eq!(
        run3("redis.setresp(3) local r = redis.call('x') return {r[1].map.k.double, r[3], type(r[4]), r[5].verbatim_string.string, r[6].big_number}"),
        Frame::Array(vec![
            Frame::Integer(1),
            Frame::Boolean(true),
            Frame::bulk("nil"),
            Frame::bulk("txt"),
            Frame::bulk("12345678901234567890"),
        ])
    );
    assert_eq!(
        run3("redis.setresp(3) return redis.call('x')[6]"),
        Frame::BigNumber(Bytes::from("12345678901234567890"))
    );
}

#[test]
fn sandbox_escapes_are_closed() {
    for src in [
        "return os.exit()",
        "return io.open('/etc/passwd')",
        "return require('os')",
        "return debug.getinfo(1)",
        "return package.loadlib",
    ] {
        assert!(
            matches!(run(src), Frame::Error(m) if m.starts_with(b"ERR user_script:1: Script attempted to access nonexistent global variable")),
            "{src}"
        );
    }
    // Bytecode is refused: loading it is a known way out of a Lua 5.1 sandbox.
    assert_eq!(
        run("local f, e = loadstring(string.dump(function() return 1 end)) return {type(f), e}"),
        Frame::Array(vec![
            Frame::bulk("nil"),
            Frame::bulk("[string \"\x1bLuaQ\"]:1: unexpected symbol near 'char(27)'"),
        ])
    );
    // The real globals are not reachable through the proxies' metatables.
    assert!(
        matches!(run("getmetatable(_G).__index.x = 1"), Frame::Error(m) if m.starts_with(b"ERR user_script:1: Attempt to modify a readonly table"))
    );
    assert!(
        matches!(run("rawset(getmetatable(_G), 'x', 1)"), Frame::Error(m) if m.starts_with(b"ERR Attempt to modify a readonly table"))
    );
    // Scripts cannot leave state behind for later scripts on the same VM.
    let mut vm = LuaVm::new(VmOptions::default()).expect("vm");
    let mut host = FakeHost::default();
    let first = Script::new(Bytes::from("pcall(function() leaked = 1 end) return 1")).expect("ok");
    let second = Script::new(Bytes::from("return rawget(_G, 'leaked') == nil")).expect("ok");
    vm.run(&first, &[], &[], &mut host);
    assert_eq!(vm.run(&second, &[], &[], &mut host), Frame::Integer(1));
}

#[test]
fn memory_limit_stops_a_script() {
    let mut vm = LuaVm::new(VmOptions {
        memory_limit: Some(8 << 20),
        ..VmOptions::default()
    })
    .expect("vm");
    let script = Script::new(Bytes::from(
        "local t = {} for i = 1, 1e7 do t[i] = string.rep('x', 100) .. i end return #t",
    ))
    .expect("ok");
    let f = vm.run(&script, &[], &[], &mut FakeHost::default());
    assert_eq!(
        f,
        Frame::error(format!(
            "ERR Error running script {}, not enough memory",
            script.sha()
        ))
    );
    // The VM stays usable.
    let ok = Script::new(Bytes::from("return 1")).expect("ok");
    assert_eq!(
        vm.run(&ok, &[], &[], &mut FakeHost::default()),
        Frame::Integer(1)
    );
}

#[test]
fn thread_vms_run_concurrently() {
    let handles: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let s = Script::new(Bytes::from(format!("return {i} + tonumber(ARGV[1])")))
                    .expect("ok");
                let mut host = FakeHost::default();
                (0..50)
                    .map(|_| {
                        with_thread_vm(|vm| Ok(vm.run(&s, &[], &[Bytes::from("1")], &mut host)))
                    })
                    .all(|r| r == Ok(Frame::Integer(i + 1)))
            })
        })
        .collect();
    for h in handles {
        assert!(h.join().expect("thread"));
    }
}

#[test]
fn deep_and_cyclic_replies_are_cut_not_crashed() {
    fn depth(f: &Frame) -> usize {
        match f {
            Frame::Array(items) => 1 + items.first().map_or(0, depth),
            _ => 0,
        }
    }
    let deep = run("local t = {} local c = t for i = 1, 5000 do c[1] = {} c = c[1] end return t");
    assert!(
        depth(&deep) > 500 && depth(&deep) <= 1001,
        "{}",
        depth(&deep)
    );
    let cyclic = run("local t = {} t[1] = t return t");
    assert!(depth(&cyclic) <= 1001);
    let json = run(
        "local t = {} local c = t for i = 1, 5000 do c[1] = {} c = c[1] end return cjson.encode(t)",
    );
    assert!(
        matches!(json, Frame::Error(m) if m.starts_with(b"ERR user_script:1: Cannot serialise, excessive nesting (1001)"))
    );
}
