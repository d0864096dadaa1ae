//! `sluice status`: a running server's keyspaces at a glance, read over the Redis protocol
//! (SLUICE.KEYSPACES and INFO) every interval and drawn as a table, redrawn in place on a
//! terminal. Rates (commands/s, writes/s) are the change between two samples.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use redis::aio::MultiplexedConnection;
use redis::Value;

/// Where the server is, and how to show it (`sluice status`'s flags).
#[derive(Debug, Clone, clap::Args)]
pub struct StatusOptions {
    /// Server host.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Server port.
    #[arg(long, default_value_t = 6380)]
    pub port: u16,
    /// ACL user [default: default].
    #[arg(long)]
    pub user: Option<String>,
    /// Password, when the server asks for one.
    #[arg(long)]
    pub password: Option<String>,
    /// Time between samples, e.g. 1s.
    #[arg(long, default_value = "1s", value_parser = sluice::config::parse_duration)]
    pub interval: Duration,
    /// Print one table (two samples an interval apart, for the rates) and exit.
    #[arg(long)]
    pub once: bool,
}

/// One sample of the server: INFO's fields and each keyspace's.
struct Sample {
    at: Instant,
    info: HashMap<String, String>,
    keyspaces: Vec<HashMap<String, String>>,
}

/// Connects and draws until interrupted (or once, with `once`).
pub async fn run(options: StatusOptions) -> anyhow::Result<()> {
    let target = format!("{}:{}", options.host, options.port);
    let info = redis::ConnectionInfo {
        addr: redis::ConnectionAddr::Tcp(options.host.clone(), options.port),
        redis: redis::RedisConnectionInfo {
            db: 0,
            username: options.user.clone(),
            password: options.password.clone(),
            ..Default::default()
        },
    };
    let client = redis::Client::open(info).with_context(|| format!("bad address {target}"))?;
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .with_context(|| format!("cannot connect to a Sluice at {target}"))?;
    let terminal = std::io::stdout().is_terminal() && !options.once;
    let mut previous = sample(&mut con).await?;
    loop {
        tokio::time::sleep(options.interval).await;
        let now = sample(&mut con).await?;
        let frame = render(&target, &previous, &now);
        let mut out = std::io::stdout().lock();
        if terminal {
            // Home and clear: the table is redrawn in place.
            write!(out, "\x1b[H\x1b[2J")?;
        }
        write!(out, "{frame}")?;
        out.flush()?;
        if options.once {
            return Ok(());
        }
        previous = now;
    }
}

async fn sample(con: &mut MultiplexedConnection) -> anyhow::Result<Sample> {
    let keyspaces: Value = redis::cmd("SLUICE.KEYSPACES")
        .query_async(con)
        .await
        .context("SLUICE.KEYSPACES failed (is this a Sluice server?)")?;
    // Not the keyspace section: it reads every key's TTL, which would count as reads.
    let info: Value = redis::cmd("INFO")
        .arg(&["server", "clients", "memory", "stats", "sluice"])
        .query_async(con)
        .await
        .context("INFO failed")?;
    let Value::Array(items) = keyspaces else {
        bail!("SLUICE.KEYSPACES answered {keyspaces:?}, not a list");
    };
    Ok(Sample {
        at: Instant::now(),
        info: parse_info(&text(&info)),
        keyspaces: items.iter().map(fields).collect(),
    })
}

/// A reply as text (bulk, simple, verbatim or integer).
fn text(value: &Value) -> String {
    match value {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::VerbatimString { text, .. } => text.clone(),
        Value::Int(n) => n.to_string(),
        Value::Double(d) => d.to_string(),
        Value::Okay => "OK".into(),
        _ => String::new(),
    }
}

/// One keyspace's fields: a map in RESP3, a flat list of names and values in RESP2.
fn fields(value: &Value) -> HashMap<String, String> {
    match value {
        Value::Map(pairs) => pairs.iter().map(|(k, v)| (text(k), text(v))).collect(),
        Value::Array(flat) => flat
            .chunks(2)
            .filter_map(|pair| match pair {
                [k, v] => Some((text(k), text(v))),
                _ => None,
            })
            .collect(),
        _ => HashMap::new(),
    }
}

/// INFO's `name:value` lines.
fn parse_info(info: &str) -> HashMap<String, String> {
    info.lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim_end().to_string()))
        .collect()
}

fn number(fields: &HashMap<String, String>, name: &str) -> u64 {
    fields.get(name).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// `n` per second between two readings `seconds` apart.
fn rate(before: u64, after: u64, seconds: f64) -> String {
    if seconds <= 0.0 {
        return "-".into();
    }
    format!("{:.0}", after.saturating_sub(before) as f64 / seconds)
}

fn age(ms: u64) -> String {
    match ms {
        0 => "-".into(),
        1..=999 => format!("{ms}ms"),
        1000..=59_999 => format!("{:.1}s", ms as f64 / 1000.0),
        _ => format!("{}m{}s", ms / 60_000, ms % 60_000 / 1000),
    }
}

fn bytes(n: u64) -> String {
    match n {
        0..=1023 => format!("{n}B"),
        1024..=1_048_575 => format!("{:.1}K", n as f64 / 1024.0),
        1_048_576..=1_073_741_823 => format!("{:.1}M", n as f64 / 1_048_576.0),
        _ => format!("{:.1}G", n as f64 / 1_073_741_824.0),
    }
}

/// The whole screen: a header line from INFO, then one row per keyspace.
fn render(target: &str, before: &Sample, now: &Sample) -> String {
    let seconds = now.at.duration_since(before.at).as_secs_f64();
    let info = &now.info;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "sluice {} at {target}  up {}s  clients {}  commands/s {}  memory {}  store {}  journal {} ({})",
        info.get("sluice_version").map_or("?", String::as_str),
        number(info, "uptime_in_seconds"),
        number(info, "connected_clients"),
        rate(
            number(&before.info, "total_commands_processed"),
            number(info, "total_commands_processed"),
            seconds
        ),
        bytes(number(info, "used_memory")),
        info.get("store").map_or("?", String::as_str),
        info.get("journal_durability").map_or("?", String::as_str),
        info.get("journal_state").map_or("?", String::as_str),
    );
    out.push('\n');
    let header = [
        "KEYSPACE", "POLICY", "TABLE", "HITS", "MISSES", "HIT%", "BUFFERED", "OLDEST", "DEAD",
        "WRITES/S",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for ks in &now.keyspaces {
        let name = ks.get("name").cloned().unwrap_or_default();
        let earlier = before
            .keyspaces
            .iter()
            .find(|k| k.get("name") == Some(&name));
        let (hits, misses) = (number(ks, "hits"), number(ks, "misses"));
        let hit_rate = match hits + misses {
            0 => "-".to_string(),
            reads => format!("{:.1}", hits as f64 * 100.0 / reads as f64),
        };
        rows.push(vec![
            name,
            ks.get("policy").cloned().unwrap_or_default(),
            ks.get("table").cloned().unwrap_or_default(),
            hits.to_string(),
            misses.to_string(),
            hit_rate,
            format!(
                "{} ({})",
                number(ks, "buffered"),
                bytes(number(ks, "buffered_bytes"))
            ),
            age(number(ks, "oldest_buffered_age_ms")),
            number(ks, "dead_letters").to_string(),
            rate(
                earlier.map_or(number(ks, "writes"), |e| number(e, "writes")),
                number(ks, "writes"),
                seconds,
            ),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    for ks in &now.keyspaces {
        if let Some(error) = ks.get("last_error").filter(|e| !e.is_empty()) {
            let name = ks.get("name").map_or("?", String::as_str);
            let _ = writeln!(out, "\n{name}: last store error: {error}");
        }
    }
    out
}
