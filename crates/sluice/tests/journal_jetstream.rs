//! The JetStream journal (`tiers::journal::jetstream`) through the `Journal` trait, against a
//! real nats-server.
//!
//! - Records come back after a reopen in append order, past the checkpoint only; the highest
//!   sequence number survives a checkpoint that purged everything; a transaction group comes
//!   back whole, also one larger than a NATS message.
//! - A record larger than a NATS message is refused at once, nothing queued.
//! - A second live process with the same node name is refused; after a graceful close the
//!   name is free at once.
//! - A server gone past `publish_timeout` takes the journal out of service: the append fails,
//!   later appends fail at once, and the records it did store read back, never the failed
//!   one, even when the client delivered it once the server came back, and after a reopen.
//!
//! The first three need `SLUICE_TEST_NATS_URL`; the last starts a nats-server of its own
//! (skipped when `nats-server` is not installed).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use sluice::config::ClusterConfig;
use sluice::error::JournalError;
use sluice::model::StoreWrite;
use sluice::tiers::journal::jetstream::JetStreamJournal;
use sluice::tiers::journal::{Journal, JournalOp, JournalRecord, TxnGroup};

fn nats_url() -> Option<String> {
    match std::env::var("SLUICE_TEST_NATS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped: SLUICE_TEST_NATS_URL is not set (a nats-server with -js)");
            None
        }
    }
}

/// A configuration on a stream and subject no other run uses.
fn cluster(url: &str, tag: &str) -> ClusterConfig {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let unique = format!("{tag}{}x{nanos}", std::process::id());
    let mut c = ClusterConfig::new("n1", vec![url.to_string()]);
    c.journal_stream = format!("SLUICE_JT_{unique}");
    c.journal_subject = format!("sluicejt{unique}");
    c.node_lease = Duration::from_secs(5);
    c
}

async fn delete_streams(url: &str, c: &ClusterConfig) {
    if let Ok(client) = async_nats::connect(url).await {
        let js = async_nats::jetstream::new(client);
        let _ = js.delete_stream(&c.journal_stream).await;
        let _ = js
            .delete_stream(format!("{}_NODES", c.journal_stream))
            .await;
    }
}

fn put(seq: u64, key: &str, value: Vec<u8>, group: Option<TxnGroup>) -> JournalRecord {
    JournalRecord {
        seq,
        keyspace: "default".into(),
        db: 0,
        key: Bytes::copy_from_slice(key.as_bytes()),
        op: JournalOp::Write(StoreWrite::string(Bytes::from(value), None)),
        group,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_come_back_past_the_checkpoint_in_order() {
    let Some(url) = nats_url() else { return };
    let config = cluster(&url, "order");
    let journal = JetStreamJournal::open(&config).await.expect("open");
    assert!(journal.take_recovered().is_empty());
    // 100 single records, appended without waiting (they share messages), then a group
    // larger than one NATS message (1 MiB by default): it spans messages.
    let acks: Vec<_> = (1..=100)
        .map(|seq| journal.append(put(seq, &format!("k{seq}"), vec![b'v'; 100], None)))
        .collect();
    for ack in acks {
        ack.await.expect("durable");
    }
    let group = TxnGroup {
        first_seq: 101,
        len: 5,
    };
    let records: Vec<_> = (101..=105)
        .map(|seq| put(seq, &format!("g{seq}"), vec![b'g'; 400_000], Some(group)))
        .collect();
    journal
        .append_group(records.clone())
        .await
        .expect("group durable");
    journal.checkpoint(40).await.expect("checkpoint");
    journal.close().await.expect("close");

    let journal = JetStreamJournal::open(&config).await.expect("reopen");
    let recovered = journal.take_recovered();
    let seqs: Vec<u64> = recovered.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (41..=105).collect::<Vec<_>>());
    assert_eq!(&recovered[60..], &records[..]);
    assert_eq!(journal.last_seq(), 105);
    // Everything stored: the stream is emptied of records, and the sequence survives.
    journal.checkpoint(105).await.expect("checkpoint all");
    assert_eq!(journal.stats().segments, 0, "no live message left");
    journal.close().await.expect("close");
    let journal = JetStreamJournal::open(&config).await.expect("reopen");
    assert!(journal.take_recovered().is_empty());
    assert_eq!(journal.last_seq(), 105);
    journal.close().await.expect("close");
    delete_streams(&url, &config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_larger_than_a_message_is_refused_at_once() {
    let Some(url) = nats_url() else { return };
    let config = cluster(&url, "large");
    let journal = JetStreamJournal::open(&config).await.expect("open");
    let ack = journal.append(put(1, "big", vec![0; 2 << 20], None));
    assert!(
        matches!(ack.failed_at_once(), Some(JournalError::TooLarge { .. })),
        "a 2 MiB record must be refused before it is queued"
    );
    let _ = ack.await;
    // The journal stays in service.
    journal
        .append(put(2, "small", b"v".to_vec(), None))
        .await
        .expect("a small record after it");
    journal.close().await.expect("close");
    delete_streams(&url, &config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_name_serves_one_live_process() {
    let Some(url) = nats_url() else { return };
    let mut config = cluster(&url, "lease");
    config.publish_timeout = Duration::from_secs(2);
    config.node_lease = Duration::from_secs(3);
    let first = JetStreamJournal::open(&config).await.expect("open");
    // Renewed every second (a third of the lease): the second waits out twice the lease and
    // the publish timeout, then gives up.
    match JetStreamJournal::open(&config).await {
        Err(JournalError::NodeNameInUse { node, holder }) => {
            assert_eq!(node, "n1");
            assert!(
                holder.contains(&format!("pid {}", std::process::id())),
                "{holder}"
            );
        }
        Err(e) => panic!("expected NodeNameInUse, got {e}"),
        Ok(_) => panic!("two live journals under one node name"),
    }
    assert!(first.health().is_ok(), "the first keeps its name");
    first.close().await.expect("close");
    // Released on close: taken at once.
    let started = std::time::Instant::now();
    let second = JetStreamJournal::open(&config)
        .await
        .expect("the name is free");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited {:?}: the claim was not released (it would have run out after up to 3 s)",
        started.elapsed()
    );
    second.close().await.expect("close");
    delete_streams(&url, &config).await;
}

/// A renewal JetStream stored but whose acknowledgement never reached the node (a timeout, a
/// dropped connection) leaves the node's next compare-and-set naming a message that is no
/// longer the last. The node finds its own message there and renews over it: its journal
/// stays in service. Simulated by storing the node's own claim once more from another
/// connection, exactly what a lost-ack renewal leaves behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_whose_acknowledgement_was_lost_keeps_the_name() {
    let Some(url) = nats_url() else { return };
    let mut config = cluster(&url, "lostack");
    config.node_lease = Duration::from_secs(3);
    let journal = JetStreamJournal::open(&config).await.expect("open");
    let js = async_nats::jetstream::new(async_nats::connect(&url).await.expect("connect"));
    let nodes = js
        .get_stream(format!("{}_NODES", config.journal_stream))
        .await
        .expect("the node-name stream");
    let subject = format!("{}_nodes.n1", config.journal_subject);
    // Writes `payload` over the claim's last message, as a renewal would.
    let overwrite_claim = |payload: Option<Bytes>| {
        let (js, nodes, subject) = (&js, &nodes, &subject);
        async move {
            let last = nodes
                .get_last_raw_message_by_subject(subject)
                .await
                .expect("the claim");
            js.send_publish(
                subject.clone(),
                async_nats::jetstream::message::PublishMessage::build()
                    .payload(payload.unwrap_or(last.payload))
                    .expected_last_subject_sequence(last.sequence),
            )
            .await
            .expect("publish")
            .await
            .expect("stored");
        }
    };
    for _ in 0..3 {
        // The node's own claim once more.
        overwrite_claim(None).await;
        // Past the next renewal (every third of the lease).
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(
            journal.health().is_ok(),
            "the journal gave its name up over its own renewal: {:?}",
            journal.health()
        );
    }
    journal
        .append(put(1, "k", b"v".to_vec(), None))
        .await
        .expect("an append after the renewals");
    // Another process's claim is still another process's: renewing over it is refused.
    overwrite_claim(Some(Bytes::from_static(b"pid 1 nonce 1 since then"))).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while journal.health().is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the journal kept a name another process claimed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        journal
            .append(put(2, "k", b"w".to_vec(), None))
            .await
            .is_err(),
        "an append after the name was lost"
    );
    let _ = journal.close().await;
    delete_streams(&url, &config).await;
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind")
        .port()
}

fn nats_server_bin() -> Option<PathBuf> {
    ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .or_else(|| {
            eprintln!("skipped: nats-server is not installed");
            None
        })
}

/// A nats-server of the test's own; SIGKILLed on drop.
struct NatsServer(Child);

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_nats(bin: &Path, port: u16, store: &Path) -> NatsServer {
    let child = Command::new(bin)
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(store)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn nats-server");
    NatsServer(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_gone_past_publish_timeout_takes_the_journal_out_of_service() {
    let Some(bin) = nats_server_bin() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let server = start_nats(&bin, port, dir.path());
    let url = format!("nats://127.0.0.1:{port}");
    let mut config = cluster(&url, "outage");
    config.publish_timeout = Duration::from_secs(2);
    // Longer than the publish timeout: the publish gives up first, not the claim.
    config.node_lease = Duration::from_secs(20);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let journal = loop {
        match JetStreamJournal::open(&config).await {
            Ok(j) => break j,
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("waiting for the test's nats-server: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("the test's nats-server never served a journal: {e}"),
        }
    };
    journal
        .append(put(1, "before", b"v".to_vec(), None))
        .await
        .expect("stored");
    drop(server);
    let failed = journal.append(put(2, "during", b"v".to_vec(), None)).await;
    assert!(failed.is_err(), "an append with no server must fail");
    assert!(!journal.health().is_ok(), "the journal is out of service");
    let at_once = journal.append(put(3, "after", b"v".to_vec(), None));
    assert!(
        at_once.failed_at_once().is_some(),
        "later appends fail at once"
    );
    assert!(journal.barrier().await.is_err());
    // The server comes back: what it stored reads back, the failed record not.
    let _server = start_nats(&bin, port, dir.path());
    let mut reread = journal.reread_acknowledged().await;
    for _ in 0..10 {
        if reread.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        reread = journal.reread_acknowledged().await;
    }
    let reread = reread.expect("read back");
    let keys: Vec<&[u8]> = reread.iter().map(|r| &r.key[..]).collect();
    // "during" may have reached the stream after all (the client sends what it buffered when
    // it reconnects), but its writer was told it failed: it is never read back, not now and
    // not after a restart.
    assert_eq!(keys, vec![&b"before"[..]]);
    let _ = journal.close().await;
    let reopened = JetStreamJournal::open(&config).await.expect("reopen");
    let keys: Vec<Bytes> = reopened
        .take_recovered()
        .into_iter()
        .map(|r| r.key)
        .collect();
    assert_eq!(keys, vec![Bytes::from_static(b"before")]);
    assert!(reopened.last_seq() >= 2, "numbered above the voided append");
    reopened.close().await.expect("close");
}
