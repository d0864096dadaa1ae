//! Authentication, ACL permissions and protected mode, with Redis's exact error strings.

mod common;

use common::{encode, TestServer};
use sluice_server::config::FileConfig;

const NOAUTH: &[u8] = b"-NOAUTH Authentication required.\r\n";
const WRONGPASS: &[u8] = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n";

fn secured() -> FileConfig {
    FileConfig::from_toml(
        r#"
        [server]
        requirepass = "topsecret"
        [[user]]
        name = "reader"
        password = "readpw"
        commands = ["read"]
        keys = ["app:*"]
        [[user]]
        name = "writer"
        password = "sha256:f52fbd32b2b3b86ff88ef6c490628285f482af15ddcb29541f94bcf526a3f6c7"
        commands = ["read", "write"]
        [[user]]
        name = "appwriter"
        password = "apppw"
        commands = ["read", "write"]
        keys = ["app:*"]
        [[user]]
        name = "gone"
        password = "x"
        enabled = false
        "#,
    )
    .expect("config")
}

async fn ask(c: &mut common::RawClient, args: &[&[u8]]) -> Vec<u8> {
    c.send(&encode(args)).await;
    c.reply().await
}

#[tokio::test]
async fn a_password_protected_server_refuses_everything_before_auth() {
    let server = TestServer::start_config(secured()).await;
    let mut c = server.client().await;
    assert_eq!(ask(&mut c, &[b"PING"]).await, NOAUTH);
    assert_eq!(ask(&mut c, &[b"GET", b"k"]).await, NOAUTH);
    // Unknown commands and wrong arity are reported before NOAUTH, as in Redis.
    assert_eq!(
        ask(&mut c, &[b"NOPE"]).await,
        b"-ERR unknown command 'NOPE', with args beginning with: \r\n"
    );
    assert_eq!(
        ask(&mut c, &[b"GET"]).await,
        b"-ERR wrong number of arguments for 'get' command\r\n"
    );
    assert_eq!(ask(&mut c, &[b"AUTH", b"wrong"]).await, WRONGPASS);
    assert_eq!(ask(&mut c, &[b"AUTH", b"topsecret"]).await, b"+OK\r\n");
    assert_eq!(ask(&mut c, &[b"PING"]).await, b"+PONG\r\n");
    assert_eq!(
        ask(&mut c, &[b"ACL", b"WHOAMI"]).await,
        b"$7\r\ndefault\r\n"
    );
    // RESET logs the connection out again.
    assert_eq!(ask(&mut c, &[b"RESET"]).await, b"+RESET\r\n");
    assert_eq!(ask(&mut c, &[b"PING"]).await, NOAUTH);
    server.stop().await;
}

#[tokio::test]
async fn named_users_authenticate_with_plain_and_hashed_passwords() {
    let server = TestServer::start_config(secured()).await;
    let mut c = server.client().await;
    assert_eq!(ask(&mut c, &[b"AUTH", b"reader", b"nope"]).await, WRONGPASS);
    assert_eq!(
        ask(&mut c, &[b"AUTH", b"nobody", b"readpw"]).await,
        WRONGPASS
    );
    assert_eq!(
        ask(&mut c, &[b"AUTH", b"gone", b"x"]).await,
        WRONGPASS,
        "disabled user"
    );
    assert_eq!(
        ask(&mut c, &[b"AUTH", b"a", b"b", b"c"]).await,
        b"-ERR syntax error\r\n"
    );
    assert_eq!(
        ask(&mut c, &[b"AUTH", b"writer", b"hunter2"]).await,
        b"+OK\r\n"
    );
    assert_eq!(ask(&mut c, &[b"ACL", b"WHOAMI"]).await, b"$6\r\nwriter\r\n");
    assert_eq!(ask(&mut c, &[b"SET", b"k", b"v"]).await, b"+OK\r\n");
    server.stop().await;
}

#[tokio::test]
async fn hello_authenticates_and_switches_protocol_at_once() {
    let server = TestServer::start_config(secured()).await;
    let mut c = server.client().await;
    let reply = ask(&mut c, &[b"HELLO", b"3"]).await;
    assert!(
        reply.starts_with(b"-NOAUTH HELLO must be called with the client already authenticated"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    assert_eq!(
        ask(&mut c, &[b"HELLO", b"3", b"AUTH", b"reader", b"bad"]).await,
        WRONGPASS
    );
    let reply = ask(&mut c, &[b"HELLO", b"3", b"AUTH", b"reader", b"readpw"]).await;
    assert!(
        reply.starts_with(b"%7\r\n"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    assert_eq!(ask(&mut c, &[b"ACL", b"WHOAMI"]).await, b"$6\r\nreader\r\n");
    server.stop().await;
}

#[tokio::test]
async fn acl_categories_and_key_patterns_are_enforced_with_noperm() {
    let server = TestServer::start_config(secured()).await;
    let mut admin = server.client().await;
    assert_eq!(ask(&mut admin, &[b"AUTH", b"topsecret"]).await, b"+OK\r\n");
    assert_eq!(
        ask(&mut admin, &[b"SET", b"app:1", b"one"]).await,
        b"+OK\r\n"
    );
    let mut c = server.client().await;
    assert_eq!(
        ask(&mut c, &[b"AUTH", b"reader", b"readpw"]).await,
        b"+OK\r\n"
    );
    assert_eq!(ask(&mut c, &[b"GET", b"app:1"]).await, b"$3\r\none\r\n");
    assert_eq!(
        ask(&mut c, &[b"SET", b"app:1", b"x"]).await,
        b"-NOPERM this user has no permissions to run the 'set' command\r\n"
    );
    assert_eq!(
        ask(&mut c, &[b"GET", b"secret:1"]).await,
        b"-NOPERM this user has no permissions to access one of the keys used as arguments\r\n"
    );
    assert_eq!(
        ask(&mut c, &[b"MGET", b"app:1", b"secret:1"]).await,
        b"-NOPERM this user has no permissions to access one of the keys used as arguments\r\n"
    );
    // Keys the command specs' positions miss, found as Redis's key specs find them: a
    // container's sub-command names its key after the sub-command.
    for request in [
        &[&b"XINFO"[..], b"STREAM", b"secret:1"][..],
        &[b"OBJECT", b"ENCODING", b"secret:1"],
    ] {
        assert_eq!(
            ask(&mut c, request).await,
            b"-NOPERM this user has no permissions to access one of the keys used as arguments\r\n",
            "{:?}",
            String::from_utf8_lossy(request[0])
        );
    }
    assert_eq!(
        ask(&mut c, &[b"OBJECT", b"ENCODING", b"app:1"]).await,
        b"$6\r\nembstr\r\n"
    );
    assert_eq!(
        ask(&mut c, &[b"FLUSHALL"]).await,
        b"-NOPERM this user has no permissions to run the 'flushall' command\r\n"
    );
    assert_eq!(
        ask(&mut c, &[b"ACL", b"LIST"]).await,
        b"-NOPERM this user has no permissions to run the 'acl|list' command\r\n"
    );
    for sub in [&b"KILL"[..], b"PAUSE"] {
        let reply = ask(&mut c, &[b"CLIENT", sub, b"1000"]).await;
        let name = String::from_utf8_lossy(sub).to_lowercase();
        assert_eq!(
            String::from_utf8_lossy(&reply),
            format!("-NOPERM this user has no permissions to run the 'client|{name}' command\r\n"),
            "closing or pausing others' connections is @admin"
        );
    }
    assert_eq!(
        ask(&mut c, &[b"PING"]).await,
        b"+PONG\r\n",
        "connection commands stay open"
    );
    // ACL LIST shows passwords only as SHA-256 digests.
    let list = ask(&mut admin, &[b"ACL", b"LIST"]).await;
    let text = String::from_utf8_lossy(&list);
    assert!(
        text.contains("user default on #") && text.contains("user reader on #"),
        "{text}"
    );
    assert!(
        !text.contains("topsecret") && !text.contains("readpw"),
        "{text}"
    );
    let cat = ask(&mut admin, &[b"ACL", b"CAT"]).await;
    let redis_7_0_categories = "keyspace read write set sortedset list hash string bitmap \
                                hyperloglog geo stream pubsub admin fast slow blocking dangerous \
                                connection transaction scripting";
    let mut want = b"*21\r\n".to_vec();
    for c in redis_7_0_categories.split_whitespace() {
        want.extend(format!("${}\r\n{c}\r\n", c.len()).as_bytes());
    }
    assert_eq!(
        String::from_utf8_lossy(&cat),
        String::from_utf8_lossy(&want)
    );
    // A category lists Sluice's commands in it, sub-commands by their full names and their own
    // categories; a container only if it is in the category itself (CLIENT and CONFIG are only
    // @slow in Redis 7.0, COMMAND is @connection).
    for (category, listed_names, unlisted_names) in [
        (
            &b"connection"[..],
            &[
                "ping",
                "client|kill",
                "client|setname",
                "command",
                "command|count",
            ][..],
            &["client", "config|get"][..],
        ),
        (
            b"admin",
            &["config|get", "config|set", "client|kill", "slowlog|get"],
            &["config", "client|setname", "xgroup|create"],
        ),
        (
            b"stream",
            &["xadd", "xgroup|create", "xinfo|stream"],
            &["xgroup", "xinfo"],
        ),
        (
            b"write",
            &["set", "xgroup|create", "xgroup|destroy"],
            &["xinfo|stream", "memory|usage"],
        ),
        (
            b"read",
            &["get", "xinfo|stream", "memory|usage", "object|encoding"],
            &["xgroup|create", "object"],
        ),
    ] {
        let text = String::from_utf8_lossy(&ask(&mut admin, &[b"ACL", b"CAT", category]).await)
            .into_owned();
        for name in listed_names {
            assert!(
                text.contains(&format!("\r\n{name}\r\n")),
                "{name:?} in {text}"
            );
        }
        for name in unlisted_names {
            assert!(
                !text.contains(&format!("\r\n{name}\r\n")),
                "{name:?} not in {text}"
            );
        }
    }
    assert_eq!(ask(&mut admin, &[b"ACL", b"CAT", b"geo"]).await, b"*0\r\n");
    server.stop().await;
}

/// A container's sub-commands are checked by their own ACL categories, as in Redis 7.0 (the
/// containers themselves are only `@slow`): a read-only user cannot change the configuration
/// or create a consumer group, but may look at a stream or a key's memory; and the keys a
/// sub-command, XREADGROUP or a script names are checked against the user's key patterns.
#[tokio::test]
async fn container_sub_commands_scripts_and_stream_groups_are_checked_like_redis() {
    let server = TestServer::start_config(secured()).await;
    let mut admin = server.client().await;
    for line in [
        "AUTH topsecret",
        "XGROUP CREATE app:s g $ MKSTREAM",
        "XGROUP CREATE secret:s g $ MKSTREAM",
        "SET app:1 one",
    ] {
        assert_eq!(admin.run(line).await, b"+OK\r\n", "{line}");
    }
    let noperm_run = |name: &str| {
        format!("-NOPERM this user has no permissions to run the '{name}' command\r\n")
    };
    let noperm_keys =
        "-NOPERM this user has no permissions to access one of the keys used as arguments\r\n";

    let mut reader = login(&server, "reader", "readpw").await;
    for (line, name) in [
        ("CONFIG GET maxmemory", "config|get"),
        ("CONFIG SET maxmemory 0", "config|set"),
        ("CONFIG RESETSTAT", "config|resetstat"),
        ("SLOWLOG RESET", "slowlog|reset"),
        ("XGROUP CREATE app:s h $", "xgroup|create"),
        ("XGROUP DESTROY app:s g", "xgroup|destroy"),
        ("XGROUP CREATECONSUMER app:s g c", "xgroup|createconsumer"),
        ("XREADGROUP GROUP g c STREAMS app:s >", "xreadgroup"),
        ("XACK app:s g 0-1", "xack"),
        // In none of Redis's four categories, but acting on every connection's state.
        ("SCRIPT FLUSH", "script|flush"),
        ("SCRIPT KILL", "script|kill"),
        ("MEMORY PURGE", "memory|purge"),
    ] {
        assert_reply(&mut reader, line, &noperm_run(name)).await;
    }
    // Other scripting and memory sub-commands stay open, as the connection commands do.
    assert_reply(
        &mut reader,
        "SCRIPT EXISTS 0000000000000000000000000000000000000000",
        "*1\r\n:0\r\n",
    )
    .await;
    // Read sub-commands run (their replies, not a refusal), on the user's keys only.
    for (line, start) in [
        ("MEMORY USAGE app:1", ":"),
        ("XINFO GROUPS app:s", "*1\r\n"),
        ("XPENDING app:s g", "*4\r\n"),
    ] {
        let reply = String::from_utf8_lossy(&reader.run(line).await).into_owned();
        assert!(reply.starts_with(start), "{line}: {reply}");
    }
    for line in [
        "MEMORY USAGE secret:1",
        "XINFO GROUPS secret:s",
        "XPENDING secret:s g",
    ] {
        assert_reply(&mut reader, line, noperm_keys).await;
    }
    // CLIENT SETNAME is @connection: open to every user.
    assert_reply(&mut reader, "CLIENT SETNAME r", "+OK\r\n").await;

    // A user who may write, on `app:*` only.
    let mut writer = login(&server, "appwriter", "apppw").await;
    assert_reply(&mut writer, "XGROUP CREATE app:s h $", "+OK\r\n").await;
    assert_reply(&mut writer, "SCRIPT FLUSH", &noperm_run("script|flush")).await;
    assert_reply(&mut admin, "SCRIPT FLUSH", "+OK\r\n").await;
    assert_reply(
        &mut writer,
        "CONFIG SET maxmemory 0",
        &noperm_run("config|set"),
    )
    .await;
    for line in [
        "XGROUP CREATE secret:s h $",
        "XREADGROUP GROUP g c STREAMS app:s secret:s > >",
        "EVAL return(1) 1 secret:1",
        "EVAL_RO return(1) 2 app:1 secret:1",
    ] {
        assert_reply(&mut writer, line, noperm_keys).await;
    }
    assert_reply(
        &mut writer,
        "XREADGROUP GROUP g c STREAMS app:s >",
        "*-1\r\n",
    )
    .await;
    assert_reply(
        &mut writer,
        "EVAL return(redis.call('SET',KEYS[1],'two')) 1 app:1",
        "+OK\r\n",
    )
    .await;
    server.stop().await;
}

/// A client of `server`, authenticated as `user`.
async fn login(server: &TestServer, user: &str, password: &str) -> common::RawClient {
    let mut c = server.client().await;
    assert_reply(&mut c, &format!("AUTH {user} {password}"), "+OK\r\n").await;
    c
}

/// Sends `line` (whitespace-separated arguments) and checks the whole reply.
async fn assert_reply(c: &mut common::RawClient, line: &str, want: &str) {
    assert_eq!(String::from_utf8_lossy(&c.run(line).await), want, "{line}");
}

#[tokio::test]
async fn without_a_password_auth_says_so_like_redis() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    assert_eq!(
        ask(&mut c, &[b"AUTH", b"x"]).await,
        b"-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n".to_vec()
    );
    assert_eq!(
        ask(&mut c, &[b"ACL", b"WHOAMI"]).await,
        b"$7\r\ndefault\r\n"
    );
    server.stop().await;
}

#[tokio::test]
async fn protected_mode_refuses_a_public_bind_without_a_password() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = FileConfig::default();
    config.server.bind = "0.0.0.0".into();
    config.server.port = 0;
    config.engine.data_dir = dir.path().to_path_buf();
    let sluice = sluice::Sluice::open(config.engine).await.expect("open");
    let err = match sluice_server::Server::bind(sluice.clone(), config.server).await {
        Ok(_) => panic!("protected mode let a public bind through"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("protected mode") && err.contains("requirepass") && err.contains("0.0.0.0"),
        "{err}"
    );
    sluice.shutdown().await;
}

#[tokio::test]
async fn info_and_config_never_show_secrets() {
    let server = TestServer::start_config(secured()).await;
    let mut c = server.client().await;
    assert_eq!(ask(&mut c, &[b"AUTH", b"topsecret"]).await, b"+OK\r\n");
    for args in [&[&b"INFO"[..]][..], &[b"CONFIG", b"GET", b"*"]] {
        let reply = ask(&mut c, args).await;
        let text = String::from_utf8_lossy(&reply);
        assert!(
            !text.contains("topsecret") && !text.contains("readpw"),
            "{text}"
        );
    }
    server.stop().await;
}
