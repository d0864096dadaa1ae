//! Consumer groups as a property, with redis-server as the model: random sequences of XADD
//! (with trims), XDEL, XTRIM, XGROUP (every sub-command), XREADGROUP (`>`, history, NOACK,
//! COUNT, two streams), XACK, XCLAIM (FORCE, JUSTID, RETRYCOUNT, LASTID, IDLE), XAUTOCLAIM,
//! XPENDING, XINFO GROUPS / CONSUMERS / STREAM, DEL and COPY over two streams go to a
//! redis-server the test starts and to Sluice, whose server is restarted over the same data
//! every few dozen commands; every reply must match byte for byte (idle times excepted: they
//! are zeroed on both sides). The fixed corpus of edge cases is in `differential.rs`; blocking
//! reads in `blocking.rs`; SIGKILL in `crash.rs`.
//!
//! A failure prints its seed; `SLUICE_TEST_SEED=n` reruns that sequence alone.

mod common;

use std::fmt::Write as _;

use common::{elements, show, OwnRedis, RawClient, TestServer};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sluice::Durability;

const STREAMS: [&str; 2] = ["s0", "s1"];
const GROUPS: [&str; 2] = ["g0", "g1"];
const CONSUMERS: [&str; 3] = ["c0", "c1", "c2"];
const OPS_PER_SEQUENCE: usize = 400;
const RESTART_EVERY: usize = 70;

/// The random command sequence's state: the next XADD milliseconds, so IDs never depend on
/// either server's clock.
struct Gen {
    rng: StdRng,
    ms: u64,
    /// IDs seen in recent replies of group reads (delivered or pending ones), to ack and
    /// claim.
    seen: Vec<String>,
    /// The stream and group of the last XREADGROUP: most acks and claims go there.
    last_read: (&'static str, &'static str),
}

impl Gen {
    fn pick(&mut self, from: &[&'static str]) -> &'static str {
        from[self.rng.gen_range(0..from.len())]
    }

    /// An ID near the ones added: mostly among the newest (where the pending entries are),
    /// often one that exists, sometimes not.
    fn id(&mut self) -> String {
        if !self.seen.is_empty() && self.rng.gen_bool(0.6) {
            return self.seen[self.rng.gen_range(0..self.seen.len())].clone();
        }
        let ms = if self.rng.gen_bool(0.8) {
            self.rng.gen_range(self.ms.saturating_sub(6)..=self.ms)
        } else {
            self.rng.gen_range(0..=self.ms + 1)
        };
        format!("{ms}-{}", self.rng.gen_range(0..2))
    }

    /// Keeps the IDs a reply names (bulk strings `ms-seq`), the newest 24.
    fn remember_ids(&mut self, reply: &[u8]) {
        let text = String::from_utf8_lossy(reply);
        for word in text.split("\r\n") {
            let mut parts = word.split('-');
            let is_id = matches!(
                (parts.next(), parts.next(), parts.next()),
                (Some(a), Some(b), None) if !a.is_empty() && !b.is_empty()
                    && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
            );
            if is_id && !self.seen.iter().any(|s| s == word) {
                self.seen.push(word.to_string());
            }
        }
        let excess = self.seen.len().saturating_sub(24);
        self.seen.drain(..excess);
    }

    fn command(&mut self) -> String {
        let mut s = self.pick(&STREAMS);
        let mut g = self.pick(&GROUPS);
        let c = self.pick(&CONSUMERS);
        let roll = self.rng.gen_range(0..100);
        if (55..=85).contains(&roll) && self.rng.gen_bool(0.7) {
            (s, g) = self.last_read;
        } else if (35..=54).contains(&roll) {
            self.last_read = (s, g);
        }
        match roll {
            0..=21 => {
                self.ms += self.rng.gen_range(0..3);
                let trim = match self.rng.gen_range(0..8) {
                    0 => " MAXLEN ~ 3".to_string(),
                    1 => " MAXLEN = 6".to_string(),
                    2 => format!(" MINID = {}", self.ms.saturating_sub(8)),
                    _ => String::new(),
                };
                let value = self.rng.gen_range(0..1000);
                format!("XADD {s}{trim} {}-* f {value}", self.ms)
            }
            22..=24 => format!("XDEL {s} {} {}", self.id(), self.id()),
            25 => format!("XTRIM {s} MAXLEN {}", self.rng.gen_range(0..6)),
            26..=30 => {
                let id = match self.rng.gen_range(0..4) {
                    0 => "$".to_string(),
                    1 => "0".to_string(),
                    _ => self.id(),
                };
                let mk = if self.rng.gen_bool(0.5) {
                    " MKSTREAM"
                } else {
                    ""
                };
                let read = if self.rng.gen_bool(0.2) {
                    format!(" ENTRIESREAD {}", self.rng.gen_range(0..5))
                } else {
                    String::new()
                };
                format!("XGROUP CREATE {s} {g} {id}{mk}{read}")
            }
            31 => {
                let id = if self.rng.gen_bool(0.3) {
                    "$".to_string()
                } else {
                    self.id()
                };
                format!("XGROUP SETID {s} {g} {id}")
            }
            32 => format!("XGROUP DESTROY {s} {g}"),
            33 => format!("XGROUP CREATECONSUMER {s} {g} {c}"),
            34 => format!("XGROUP DELCONSUMER {s} {g} {c}"),
            35..=54 => {
                let count = match self.rng.gen_range(0..3) {
                    0 => String::new(),
                    n => format!(" COUNT {n}"),
                };
                let noack = if self.rng.gen_bool(0.15) {
                    " NOACK"
                } else {
                    ""
                };
                let id = match self.rng.gen_range(0..6) {
                    0 => "0".to_string(),
                    1 => self.id(),
                    _ => ">".to_string(),
                };
                if self.rng.gen_bool(0.15) {
                    format!("XREADGROUP GROUP {g} {c}{count}{noack} STREAMS s0 s1 {id} >")
                } else if self.rng.gen_bool(0.05) {
                    format!("XREADGROUP GROUP {g} {c}{count}{noack} STREAMS {s} {s} > {id}")
                } else {
                    format!("XREADGROUP GROUP {g} {c}{count}{noack} STREAMS {s} {id}")
                }
            }
            55..=64 => format!("XACK {s} {g} {} {}", self.id(), self.id()),
            65..=71 => {
                let mut line = format!("XCLAIM {s} {g} {c} 0 {} {}", self.id(), self.id());
                for (p, opt) in [
                    (0.2, " JUSTID".to_string()),
                    (0.2, " FORCE".to_string()),
                    (0.15, format!(" RETRYCOUNT {}", self.rng.gen_range(0..4))),
                    (0.1, format!(" LASTID {}", self.id())),
                    (0.1, " IDLE 5000".to_string()),
                ] {
                    if self.rng.gen_bool(p) {
                        line.push_str(&opt);
                    }
                }
                line
            }
            72..=77 => {
                let start = if self.rng.gen_bool(0.5) {
                    "0".to_string()
                } else {
                    self.id()
                };
                let count = self.rng.gen_range(1..4);
                let justid = if self.rng.gen_bool(0.3) {
                    " JUSTID"
                } else {
                    ""
                };
                format!("XAUTOCLAIM {s} {g} {c} 0 {start} COUNT {count}{justid}")
            }
            78..=81 => format!("XPENDING {s} {g}"),
            82..=85 => {
                let consumer = if self.rng.gen_bool(0.4) {
                    format!(" {c}")
                } else {
                    String::new()
                };
                format!(
                    "XPENDING {s} {g} - + {}{consumer}",
                    self.rng.gen_range(0..5)
                )
            }
            86..=88 => format!("XINFO GROUPS {s}"),
            89..=90 => format!("XINFO CONSUMERS {s} {g}"),
            91..=92 => format!("XINFO STREAM {s}"),
            93 => format!("XRANGE {s} - +"),
            94 => format!("DEL {s}"),
            95 => format!(
                "COPY {s} {} REPLACE",
                STREAMS[1 - STREAMS.iter().position(|x| *x == s).unwrap_or(0)]
            ),
            _ => format!("XLEN {s}"),
        }
    }
}

/// The reply with its idle times zeroed: XPENDING's extended form (each entry's third item)
/// and XINFO CONSUMERS (each consumer's `idle`, its sixth item).
fn without_idle(line: &str, reply: Vec<u8>) -> Vec<u8> {
    let words: Vec<&str> = line.split(' ').collect();
    let position = match (words[0], words.get(1)) {
        ("XPENDING", _) if words.len() > 3 => 2,
        ("XINFO", Some(&"CONSUMERS")) => 5,
        _ => return reply,
    };
    if reply.first() != Some(&b'*') {
        return reply;
    }
    let items = elements(&reply);
    let mut out = format!("*{}\r\n", items.len()).into_bytes();
    for item in items {
        let mut fields = elements(&item);
        if let Some(idle) = fields.get_mut(position) {
            *idle = b":0\r\n".to_vec();
        }
        out.extend(format!("*{}\r\n", fields.len()).into_bytes());
        out.extend(fields.concat());
    }
    out
}

/// How often each command answered with something (not an error, nil or empty array), over
/// the sequences run: printed, so a generator that stopped reaching a case shows.
type Served = std::collections::BTreeMap<String, (u32, u32)>;

/// One sequence: every command to both servers, Sluice restarted now and then.
async fn run_sequence(seed: u64, redis: &mut RawClient, served: &mut Served) {
    for key in STREAMS {
        redis.run(&format!("DEL {key}")).await;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = TestServer::start_in(dir.path(), Durability::Fsync).await;
    let mut sluice = server.client().await;
    let mut gen = Gen {
        rng: StdRng::seed_from_u64(seed),
        ms: 1,
        seen: Vec::new(),
        last_read: (STREAMS[0], GROUPS[0]),
    };
    let mut history = String::new();
    for step in 0..OPS_PER_SEQUENCE {
        if step > 0 && step % RESTART_EVERY == 0 {
            server.stop().await;
            server = TestServer::start_in(dir.path(), Durability::Fsync).await;
            sluice = server.client().await;
            history.push_str("  -- restart --\n");
        }
        let line = gen.command();
        let on_redis = without_idle(&line, redis.run(&line).await);
        if line.starts_with("XREADGROUP") || line.starts_with("XPENDING") {
            gen.remember_ids(&on_redis);
        }
        let on_sluice = without_idle(&line, sluice.run(&line).await);
        let _ = writeln!(history, "  {line}\n    -> {}", show(&on_redis));
        let name = line.split(' ').take(2).collect::<Vec<_>>().join(" ");
        let name =
            if name.starts_with("X") && !name.starts_with("XGROUP") && !name.starts_with("XINFO") {
                line.split(' ').next().unwrap_or_default().to_string()
            } else {
                name
            };
        let tally = served.entry(name).or_default();
        tally.1 += 1;
        if !matches!(
            &on_redis[..],
            [b'-', ..] | b"*0\r\n" | b"*-1\r\n" | b":0\r\n" | b"$-1\r\n"
        ) {
            tally.0 += 1;
        }
        assert!(
            on_redis == on_sluice,
            "seed {seed}, step {step}: {line}\n  redis:  {}\n  sluice: {}\nhistory:\n{history}",
            show(&on_redis),
            show(&on_sluice)
        );
    }
    if let Ok(path) = std::env::var("SLUICE_TEST_HISTORY") {
        std::fs::write(format!("{path}.{seed}"), &history).expect("history written");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_group_commands_answer_as_redis_across_restarts() {
    let Some(redis) = OwnRedis::start().await else {
        println!("skipped: no redis-server binary to start");
        return;
    };
    let mut on_redis = RawClient::try_connect(&redis.addr).await.expect("redis");
    let seeds: Vec<u64> = match std::env::var("SLUICE_TEST_SEED") {
        Ok(seed) => vec![seed.parse().expect("SLUICE_TEST_SEED is a number")],
        Err(_) => (1..=30).collect(),
    };
    let mut served = Served::new();
    for seed in seeds {
        run_sequence(seed, &mut on_redis, &mut served).await;
    }
    for (command, (answered, sent)) in served {
        eprintln!("{command}: {answered} of {sent} answered with something");
    }
}

/// WATCH on a stream, then a group command from another connection (alone, then inside its
/// own MULTI), then EXEC: Redis lets every group command pass the WATCH (the groups are not
/// the key's value), except an XGROUP CREATE MKSTREAM that creates the key; Sluice answers
/// each EXEC as Redis does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commands_leave_a_watch_of_the_stream_alone() {
    let Some(redis) = OwnRedis::start().await else {
        println!("skipped: no redis-server binary to start");
        return;
    };
    let server = TestServer::start().await;
    let mut failures = Vec::new();
    for other in [
        "XGROUP CREATE w g2 0",
        "XGROUP SETID w g 0",
        "XGROUP CREATECONSUMER w g new",
        "XGROUP DELCONSUMER w g c",
        "XREADGROUP GROUP g c STREAMS w >",
        "XREADGROUP GROUP g c STREAMS w 0",
        "XACK w g 1-0",
        "XCLAIM w g d 0 1-0",
        "XAUTOCLAIM w g d 0 0",
        "XGROUP DESTROY w g",
        "XGROUP CREATE fresh g $ MKSTREAM",
        "XADD w 9 a b",
    ] {
        for (in_multi, side, addr) in [false, true].into_iter().flat_map(|m| {
            [("redis", redis.addr.clone()), ("sluice", server.url())]
                .map(|(side, addr)| (m, side, addr))
        }) {
            let addr = addr.trim_start_matches("redis://").to_string();
            let mut watcher = RawClient::try_connect(&addr).await.expect("connect");
            let mut writer = RawClient::try_connect(&addr).await.expect("connect");
            for setup in [
                "DEL w fresh",
                "XADD w 1 a b",
                "XGROUP CREATE w g 0",
                "XREADGROUP GROUP g c STREAMS w >",
            ] {
                writer.run(setup).await;
            }
            let key = if other.contains("fresh") {
                "fresh"
            } else {
                "w"
            };
            watcher.run(&format!("WATCH {key}")).await;
            // Alone, or inside a MULTI (a transaction's commit is another path).
            if in_multi {
                writer.run("MULTI").await;
                writer.run(other).await;
                writer.run("EXEC").await;
            } else {
                writer.run(other).await;
            }
            watcher.run("MULTI").await;
            watcher.run("PING").await;
            let exec = watcher.run("EXEC").await;
            failures.push((format!("{other} (in MULTI: {in_multi})"), side, exec));
        }
    }
    let mut report = String::new();
    for pair in failures.chunks(2) {
        let (other, _, redis_exec) = &pair[0];
        let (_, _, sluice_exec) = &pair[1];
        if redis_exec != sluice_exec {
            let _ = writeln!(
                report,
                "{other}: redis {} sluice {}",
                show(redis_exec),
                show(sluice_exec)
            );
        }
    }
    assert!(report.is_empty(), "{report}");
    server.stop().await;
}
