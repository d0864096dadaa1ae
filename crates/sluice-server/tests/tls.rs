//! TLS: `tls_port` beside (or, with `tls_only`, instead of) the plaintext port, client
//! certificates with `tls_ca_cert`, and start-up errors for bad TLS settings. Certificates are
//! made here with rcgen: a CA, a server certificate for 127.0.0.1 and localhost, and client
//! certificates from that CA and from an unrelated one.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::{encode, reply_len, show, RawClient, TestServer};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use sluice::Sluice;
use sluice_server::config::FileConfig;
use sluice_server::Server;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// A CA and what it signed, as PEM files in a temporary directory.
struct Pki {
    dir: TempDir,
}

impl Pki {
    /// `ca.pem`; `server.pem`/`server.key` (127.0.0.1, localhost); `client.pem`/`client.key`
    /// signed by the CA; `rogue.pem`/`rogue.key`, a client certificate from another CA.
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("temp dir");
        let (ca, ca_key) = make_ca("Sluice test CA");
        let (rogue_ca, rogue_ca_key) = make_ca("Somebody else's CA");
        let write = |name: &str, text: String| {
            std::fs::write(dir.path().join(name), text).expect("write PEM");
        };
        write("ca.pem", ca.pem());
        let server = leaf(&ca, &ca_key, &["127.0.0.1", "localhost"], false);
        write("server.pem", server.0);
        write("server.key", server.1);
        let client = leaf(&ca, &ca_key, &["client"], true);
        write("client.pem", client.0);
        write("client.key", client.1);
        let rogue = leaf(&rogue_ca, &rogue_ca_key, &["client"], true);
        write("rogue.pem", rogue.0);
        write("rogue.key", rogue.1);
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).expect("read PEM")
    }

    /// A config serving TLS on an ephemeral port beside the plaintext one.
    fn config(&self, require_client_cert: bool) -> FileConfig {
        let mut config = FileConfig::default();
        config.server.tls_port = Some(0);
        config.server.tls_cert = Some(self.path("server.pem"));
        config.server.tls_key = Some(self.path("server.key"));
        if require_client_cert {
            config.server.tls_ca_cert = Some(self.path("ca.pem"));
        }
        config
    }
}

fn make_ca(name: &str) -> (rcgen::Certificate, KeyPair) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().expect("CA key");
    let cert = params.self_signed(&key).expect("CA certificate");
    (cert, key)
}

/// A certificate (PEM) and its key (PEM) signed by `ca`.
fn leaf(
    ca: &rcgen::Certificate,
    ca_key: &KeyPair,
    names: &[&str],
    client: bool,
) -> (String, String) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names.clone()).expect("leaf params");
    params
        .distinguished_name
        .push(DnType::CommonName, &names[0]);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![if client {
        ExtendedKeyUsagePurpose::ClientAuth
    } else {
        ExtendedKeyUsagePurpose::ServerAuth
    }];
    let key = KeyPair::generate().expect("leaf key");
    let cert = params
        .signed_by(&key, ca, ca_key)
        .expect("leaf certificate");
    (cert.pem(), key.serialize_pem())
}

/// A TLS client trusting `pki`'s CA, presenting `identity` ("client" or "rogue") if given.
async fn tls_connect(
    pki: &Pki,
    addr: SocketAddr,
    identity: Option<&str>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(&pki.read("ca.pem")) {
        roots.add(ca.expect("CA PEM")).expect("CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(name) => {
            let chain = CertificateDer::pem_slice_iter(&pki.read(&format!("{name}.pem")))
                .collect::<Result<Vec<_>, _>>()
                .expect("client PEM");
            let key = PrivateKeyDer::from_pem_slice(&pki.read(&format!("{name}.key")))
                .expect("client key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client auth")
        }
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("server name");
    connector.connect(name, tcp).await
}

/// Sends a command over any stream and reads one reply; an error if the connection fails or
/// closes first, or nothing comes within 10 s.
async fn ask<S>(stream: &mut S, args: &[&[u8]]) -> std::io::Result<Vec<u8>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    stream.write_all(&encode(args)).await?;
    stream.flush().await?;
    let mut buf = Vec::new();
    let read = async {
        loop {
            if !buf.is_empty() {
                if let Some(n) = reply_len(&buf) {
                    return Ok(buf[..n].to_vec());
                }
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("closed; got {}", show(&buf)),
                ));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no reply",
            ))
        })
}

/// A `redis` crate client for `rediss://host:port`, trusting `pki`'s CA and presenting the
/// client certificate when `with_client_cert`.
fn redis_client(pki: &Pki, host: &str, port: u16, with_client_cert: bool) -> redis::Client {
    let client_tls = with_client_cert.then(|| redis::ClientTlsConfig {
        client_cert: pki.read("client.pem"),
        client_key: pki.read("client.key"),
    });
    redis::Client::build_with_tls(
        format!("rediss://{host}:{port}"),
        redis::TlsCertificates {
            client_tls,
            root_cert: Some(pki.read("ca.pem")),
        },
    )
    .expect("redis client")
}

/// SET then GET through the `redis` crate over TLS.
async fn redis_round_trip(client: &redis::Client, key: &str) -> redis::RedisResult<String> {
    let work = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("SET")
            .arg(key)
            .arg("over tls")
            .query_async::<()>(&mut conn)
            .await?;
        redis::cmd("GET").arg(key).query_async(&mut conn).await
    };
    tokio::time::timeout(Duration::from_secs(15), work)
        .await
        .expect("the redis client finishes within 15 s")
}

#[tokio::test]
async fn the_redis_crate_sets_and_gets_over_tls_beside_plaintext() {
    let pki = Pki::new();
    let server = TestServer::start_config(pki.config(false)).await;
    let tls = server.tls_addr.expect("TLS address");
    assert_ne!(tls.port(), server.addr.port());
    for host in ["127.0.0.1", "localhost"] {
        let client = redis_client(&pki, host, tls.port(), false);
        let key = format!("tls:{host}");
        assert_eq!(
            redis_round_trip(&client, &key).await.expect("round trip"),
            "over tls"
        );
        // The same data over plaintext: one server, two doors.
        let mut plain = server.client().await;
        assert_eq!(
            plain.cmd(&[b"GET", key.as_bytes()]).await,
            b"$8\r\nover tls\r\n"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn client_certificates_are_required_with_tls_ca_cert() {
    let pki = Pki::new();
    let server = TestServer::start_config(pki.config(true)).await;
    let tls = server.tls_addr.expect("TLS address");

    // With the CA's client certificate: served (the redis crate and a raw rustls client).
    let client = redis_client(&pki, "127.0.0.1", tls.port(), true);
    assert_eq!(
        redis_round_trip(&client, "mtls")
            .await
            .expect("mTLS round trip"),
        "over tls"
    );
    let mut good = tls_connect(&pki, tls, Some("client"))
        .await
        .expect("handshake with a client certificate");
    assert_eq!(
        ask(&mut good, &[b"PING"]).await.expect("PING"),
        b"+PONG\r\n"
    );

    // Without a certificate: refused. In TLS 1.3 the client may finish its side of the
    // handshake before the server's verdict arrives, so the refusal can show up at the first
    // read; either way no reply comes.
    let no_cert = redis_client(&pki, "127.0.0.1", tls.port(), false);
    let refused = redis_round_trip(&no_cert, "nocert").await;
    assert!(refused.is_err(), "no client certificate, yet {refused:?}");
    match tls_connect(&pki, tls, None).await {
        Err(_) => {}
        Ok(mut s) => {
            let r = ask(&mut s, &[b"PING"]).await;
            assert!(r.is_err(), "no client certificate, yet {r:?}");
        }
    }
    // With a certificate from another CA: refused as well.
    match tls_connect(&pki, tls, Some("rogue")).await {
        Err(_) => {}
        Ok(mut s) => {
            let r = ask(&mut s, &[b"PING"]).await;
            assert!(r.is_err(), "foreign client certificate, yet {r:?}");
        }
    }

    // The refusals hurt nobody: the authenticated client goes on.
    assert_eq!(
        ask(&mut good, &[b"GET", b"mtls"]).await.expect("GET"),
        b"$8\r\nover tls\r\n"
    );
    server.stop().await;
}

#[tokio::test]
async fn wrong_protocol_on_either_port_fails_without_hurting_the_server() {
    let pki = Pki::new();
    let server = TestServer::start_config(pki.config(false)).await;
    let tls = server.tls_addr.expect("TLS address");

    // A client that connects to the TLS port and never starts a handshake does not hold up
    // the accept loop: others are accepted and served meanwhile.
    // (The server gives a handshake 10 s; this client is allowed 3.)
    let silent = TcpStream::connect(tls).await.expect("connect");
    let mut tls_client = tokio::time::timeout(Duration::from_secs(3), tls_connect(&pki, tls, None))
        .await
        .expect("a silent client holds up the accept loop")
        .expect("handshake");
    assert_eq!(
        ask(&mut tls_client, &[b"PING"]).await.expect("PING"),
        b"+PONG\r\n"
    );

    // Plaintext on the TLS port: the handshake fails and the connection is closed; no reply.
    let mut plain_on_tls = RawClient::connect(tls).await;
    plain_on_tls.send(&encode(&[b"PING"])).await;
    let (got, closed) = plain_on_tls.read_until_close(Duration::from_secs(5)).await;
    assert!(closed, "plaintext on the TLS port stays open");
    assert!(
        !got.windows(5).any(|w| w == b"+PONG"),
        "plaintext on the TLS port answered: {}",
        show(&got)
    );

    // TLS on the plaintext port: the handshake fails (garbage back, or nothing before the
    // client gives up).
    let tls_on_plain =
        tokio::time::timeout(Duration::from_secs(3), tls_connect(&pki, server.addr, None)).await;
    assert!(
        !matches!(tls_on_plain, Ok(Ok(_))),
        "a TLS handshake succeeded on the plaintext port"
    );
    drop(tls_on_plain);

    // The server still answers on both ports, old connections and new.
    assert_eq!(
        ask(&mut tls_client, &[b"PING"]).await.expect("PING"),
        b"+PONG\r\n"
    );
    let mut again = tls_connect(&pki, tls, None).await.expect("handshake");
    assert_eq!(
        ask(&mut again, &[b"PING"]).await.expect("PING"),
        b"+PONG\r\n"
    );
    let mut plain = server.client().await;
    assert_eq!(plain.run("PING").await, b"+PONG\r\n");
    drop(silent);
    server.stop().await;
}

#[tokio::test]
async fn tls_only_leaves_nothing_listening_in_plaintext() {
    let pki = Pki::new();
    let data = tempfile::tempdir().expect("temp dir");
    // A port that was free a moment ago, as `port`: with tls_only nothing may bind it.
    let plain_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut config = pki.config(false);
    config.server.tls_only = true;
    config.server.port = plain_port;
    config.engine.data_dir = data.path().to_path_buf();
    let sluice = Sluice::open(config.engine).await.expect("open sluice");
    let server = Server::bind(sluice, config.server).await.expect("bind");
    assert!(
        server.local_addr().is_err(),
        "a plaintext address with tls_only"
    );
    let tls = server.tls_local_addr().expect("TLS address");
    let shared = server.shared();
    assert_eq!(shared.port, 0);
    assert_eq!(shared.tls_port, Some(tls.port()));
    let run = tokio::spawn(server.run());

    assert!(
        TcpStream::connect(("127.0.0.1", plain_port)).await.is_err(),
        "something listens in plaintext on port {plain_port} with tls_only"
    );
    let mut c = tls_connect(&pki, tls, None).await.expect("handshake");
    assert_eq!(
        ask(&mut c, &[b"SET", b"k", b"v"]).await.expect("SET"),
        b"+OK\r\n"
    );
    assert_eq!(
        ask(&mut c, &[b"GET", b"k"]).await.expect("GET"),
        b"$1\r\nv\r\n"
    );

    // TestServer copes with tls_only too: its `addr` is the TLS address.
    let mut config = pki.config(false);
    config.server.tls_only = true;
    let other = TestServer::start_config(config).await;
    assert_eq!(Some(other.addr), other.tls_addr);
    other.stop().await;

    shared.trigger_shutdown();
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("server stops")
        .expect("server task");
}

#[tokio::test]
async fn maxclients_counts_tls_connections_too() {
    let pki = Pki::new();
    let mut config = pki.config(false);
    config.server.maxclients = 1;
    let server = TestServer::start_config(config).await;
    let tls = server.tls_addr.expect("TLS address");
    let mut first = server.client().await;
    assert_eq!(first.run("PING").await, b"+PONG\r\n");
    // The refusal comes over TLS, readable by the client.
    let mut second = tls_connect(&pki, tls, None).await.expect("handshake");
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), second.read_to_end(&mut got)).await;
    assert_eq!(
        got,
        b"-ERR max number of clients reached\r\n",
        "got {}",
        show(&got)
    );
    drop(first);
    // The slot is back once the plaintext client is gone.
    let served = async {
        loop {
            let mut c = tls_connect(&pki, tls, None).await.expect("handshake");
            if let Ok(r) = ask(&mut c, &[b"PING"]).await {
                if r == b"+PONG\r\n" {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .expect("a TLS client is served once a slot is free");
    server.stop().await;
}

/// The error `Server::bind` gives for `config` (whose data dir it replaces).
async fn bind_error(mut config: FileConfig) -> std::io::Error {
    let data = tempfile::tempdir().expect("temp dir");
    config.server.port = 0;
    config.engine.data_dir = data.path().to_path_buf();
    let sluice = Sluice::open(config.engine).await.expect("open sluice");
    let result = Server::bind(sluice.clone(), config.server).await;
    sluice.shutdown().await;
    match result {
        Ok(_) => panic!("bind succeeded"),
        Err(e) => e,
    }
}

fn assert_invalid(e: &std::io::Error, needle: &str) {
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains(needle), "{e:?} lacks {needle:?}");
}

#[tokio::test]
async fn bad_tls_settings_are_start_up_errors_naming_the_field() {
    let pki = Pki::new();
    let missing = pki.path("missing.pem");
    let garbage = pki.path("garbage.pem");
    std::fs::write(&garbage, "not a PEM file\n").expect("write");

    let mut c = pki.config(false);
    c.server.tls_cert = Some(missing.clone());
    let e = bind_error(c).await;
    assert_invalid(&e, "[server] tls_cert: cannot read");
    assert_invalid(&e, &missing.display().to_string());

    let check = |config: FileConfig, needle: &str| {
        let e = sluice_server::tls::acceptor_from_config(&config.server)
            .err()
            .unwrap_or_else(|| panic!("no error; wanted {needle:?}"));
        assert_invalid(&e, needle);
    };
    let mut c = pki.config(false);
    c.server.tls_key = Some(missing.clone());
    check(c, "[server] tls_key: cannot read");
    let mut c = pki.config(true);
    c.server.tls_ca_cert = Some(missing.clone());
    check(c, "[server] tls_ca_cert: cannot read");
    let mut c = pki.config(false);
    c.server.tls_cert = Some(garbage.clone());
    check(c, "[server] tls_cert:");
    let mut c = pki.config(false);
    c.server.tls_key = Some(garbage.clone());
    check(c, "[server] tls_key:");
    let mut c = pki.config(true);
    c.server.tls_ca_cert = Some(garbage.clone());
    check(c, "[server] tls_ca_cert:");
    // A key that is not the certificate's.
    let mut c = pki.config(false);
    c.server.tls_key = Some(pki.path("client.key"));
    check(c, "tls_key");
    let mut c = pki.config(false);
    c.server.tls_key = None;
    check(c, "tls_cert and tls_key must be set together");
    let mut c = pki.config(false);
    c.server.tls_cert = None;
    check(c, "tls_cert and tls_key must be set together");
    let mut c = FileConfig::default();
    c.server.tls_port = Some(0);
    check(c, "tls_port requires tls_cert and tls_key");
    let mut c = FileConfig::default();
    c.server.tls_only = true;
    check(c, "tls_only requires tls_port");
    let mut c = pki.config(false);
    c.server.tls_port = Some(6380);
    c.server.port = 6380;
    check(c, "tls_port 6380 is also the plaintext port");
    // TLS off: nothing to load.
    assert!(
        sluice_server::tls::acceptor_from_config(&FileConfig::default().server)
            .expect("no TLS")
            .is_none()
    );
}

/// Whether `redis-cli` exists and was built with TLS.
async fn redis_cli_with_tls() -> bool {
    match tokio::process::Command::new("redis-cli")
        .arg("--help")
        .output()
        .await
    {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            text.contains("--tls")
        }
        Err(_) => false,
    }
}

/// `redis-cli --tls --cacert ca.pem -h 127.0.0.1 -p PORT [extra…] PING`: (success, output).
async fn redis_cli_ping(pki: &Pki, port: u16, extra: &[&Path]) -> (bool, String) {
    let mut cmd = tokio::process::Command::new("redis-cli");
    cmd.arg("--tls")
        .arg("--cacert")
        .arg(pki.path("ca.pem"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string()]);
    if let [cert, key] = extra {
        cmd.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    cmd.arg("PING")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(20), cmd.output())
        .await
        .expect("redis-cli finishes within 20 s")
        .expect("run redis-cli");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success() && text.trim() == "PONG", text)
}

#[tokio::test]
async fn redis_cli_pings_over_tls() {
    if !redis_cli_with_tls().await {
        eprintln!("SKIPPED redis_cli_pings_over_tls: redis-cli not found or built without TLS");
        return;
    }
    let pki = Pki::new();
    let server = TestServer::start_config(pki.config(false)).await;
    let port = server.tls_addr.expect("TLS address").port();
    let (ok, out) = redis_cli_ping(&pki, port, &[]).await;
    assert!(ok, "redis-cli --tls: {out}");
    server.stop().await;

    // Client certificates required: refused without one, served with one.
    let server = TestServer::start_config(pki.config(true)).await;
    let port = server.tls_addr.expect("TLS address").port();
    let (ok, out) = redis_cli_ping(&pki, port, &[]).await;
    assert!(
        !ok,
        "redis-cli without a client certificate was served: {out}"
    );
    let (cert, key) = (pki.path("client.pem"), pki.path("client.key"));
    let (ok, out) = redis_cli_ping(&pki, port, &[&cert, &key]).await;
    assert!(ok, "redis-cli --tls --cert --key: {out}");
    server.stop().await;
}
