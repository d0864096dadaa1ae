//! `sluice bench`: measures the seed's write-through / write-back trade-off table on the
//! user's own store, by driving an embedded server over RESP with a zipfian SET / GET / INCR
//! workload for each policy.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::{Buf, BytesMut};
use indicatif::{ProgressBar, ProgressStyle};
use plotters::prelude::*;
use rand::Rng;
use sluice::{Durability, KeyspaceConfig, Policy, Sluice};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::FileConfig;
use crate::Server;

const BENCH_DB: u8 = 15;

/// What to run.
pub struct BenchOptions {
    /// Base config (store, journal, keyspaces, server limits); `None`: a temp SQLite. Its
    /// data dir, bind address and port are replaced by a temp dir and an ephemeral local port.
    pub config: Option<FileConfig>,
    /// Run time per policy.
    pub duration: Duration,
    /// Concurrent clients.
    pub clients: usize,
    /// Where summary.md and the SVG plots go.
    pub out: PathBuf,
    /// Distinct keys in the zipfian key set.
    pub keys: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Get,
    Set,
    Incr,
}

/// One policy's measurements.
struct PolicyRun {
    policy: Policy,
    durability: Durability,
    ops: u64,
    elapsed: Duration,
    write_lat_us: Vec<u32>,
    read_lat_us: Vec<u32>,
    client_writes: u64,
    rows_stored: u64,
    /// (seconds since start, ops/s in the last interval, oldest buffered age ms, buffered)
    series: Vec<(f64, f64, u64, u64)>,
    errors: u64,
}

impl PolicyRun {
    fn percentile(sorted: &[u32], p: f64) -> f64 {
        if sorted.is_empty() {
            return 0.0;
        }
        let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
    }

    fn max_lag_ms(&self) -> u64 {
        self.series.iter().map(|s| s.2).max().unwrap_or(0)
    }

    fn max_at_risk(&self) -> u64 {
        match self.durability {
            // Acknowledged writes are on disk (fsync) or in the OS (os) before the ack; under
            // `none` every buffered write is at risk.
            Durability::None if self.policy == Policy::WriteBack => {
                self.series.iter().map(|s| s.3).max().unwrap_or(0)
            }
            _ => 0,
        }
    }
}

/// Zipf sampler over `1..=n` with exponent `s`, by inverse CDF over a precomputed table.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: u64, s: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n as usize);
        let mut total = 0.0;
        for k in 1..=n {
            total += 1.0 / (k as f64).powf(s);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Zipf { cdf }
    }

    fn sample(&self, rng: &mut impl Rng) -> u64 {
        let u: f64 = rng.gen();
        self.cdf.partition_point(|&c| c < u) as u64
    }
}

async fn read_reply(stream: &mut TcpStream, buf: &mut BytesMut) -> anyhow::Result<bool> {
    loop {
        if let Some(nl) = buf.windows(2).position(|w| w == b"\r\n") {
            let kind = buf[0];
            match kind {
                b'$' => {
                    let len: i64 = std::str::from_utf8(&buf[1..nl])?.parse()?;
                    let total = nl + 2 + if len >= 0 { len as usize + 2 } else { 0 };
                    if buf.len() >= total {
                        buf.advance(total);
                        return Ok(true);
                    }
                }
                b'-' => {
                    buf.advance(nl + 2);
                    return Ok(false);
                }
                _ => {
                    buf.advance(nl + 2);
                    return Ok(true);
                }
            }
        }
        if stream.read_buf(buf).await? == 0 {
            bail!("server closed the connection");
        }
    }
}

fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.clear();
    let _ = write!(VecWriter(out), "*{}\r\n", args.len());
    for a in args {
        let _ = write!(VecWriter(out), "${}\r\n", a.len());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

struct VecWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

struct ClientResult {
    write_lat_us: Vec<u32>,
    read_lat_us: Vec<u32>,
    writes: u64,
    errors: u64,
}

async fn client(
    addr: std::net::SocketAddr,
    zipf: Arc<Zipf>,
    stop: Arc<AtomicBool>,
    ops: Arc<AtomicU64>,
    seed: u64,
) -> anyhow::Result<ClientResult> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut rng: rand::rngs::StdRng = rand::SeedableRng::seed_from_u64(seed);
    let mut buf = BytesMut::with_capacity(4096);
    let mut req = Vec::with_capacity(128);
    let value = vec![b'v'; 32];
    let mut r = ClientResult {
        write_lat_us: Vec::new(),
        read_lat_us: Vec::new(),
        writes: 0,
        errors: 0,
    };
    command(&mut req, &[b"SELECT", BENCH_DB.to_string().as_bytes()]);
    stream.write_all(&req).await?;
    if !read_reply(&mut stream, &mut buf).await? {
        bail!("SELECT {BENCH_DB} failed");
    }
    while !stop.load(Ordering::Relaxed) {
        let k = zipf.sample(&mut rng);
        let roll: f64 = rng.gen();
        let op = if roll < 0.5 {
            Op::Get
        } else if roll < 0.9 {
            Op::Set
        } else {
            Op::Incr
        };
        let key = match op {
            Op::Incr => format!("bench:ctr:{k}"),
            _ => format!("bench:key:{k}"),
        };
        match op {
            Op::Get => command(&mut req, &[b"GET", key.as_bytes()]),
            Op::Set => command(&mut req, &[b"SET", key.as_bytes(), &value]),
            Op::Incr => command(&mut req, &[b"INCR", key.as_bytes()]),
        }
        let started = Instant::now();
        stream.write_all(&req).await?;
        let ok = read_reply(&mut stream, &mut buf).await?;
        let us = started.elapsed().as_micros().min(u32::MAX as u128) as u32;
        if !ok {
            r.errors += 1;
        }
        match op {
            Op::Get => r.read_lat_us.push(us),
            _ => {
                r.write_lat_us.push(us);
                r.writes += 1;
            }
        }
        ops.fetch_add(1, Ordering::Relaxed);
    }
    Ok(r)
}

async fn run_policy(
    opts: &BenchOptions,
    policy: Policy,
    bar: &ProgressBar,
) -> anyhow::Result<PolicyRun> {
    let dir = tempfile::tempdir().context("cannot create a temp dir")?;
    let FileConfig {
        engine: mut config,
        server: mut server_config,
    } = opts.config.clone().unwrap_or_default();
    server_config.port = 0;
    server_config.bind = "127.0.0.1".into();
    config.data_dir = dir.path().to_path_buf();
    let mut builtin = config
        .keyspaces
        .iter()
        .find(|k| k.is_builtin())
        .cloned()
        .unwrap_or_else(|| KeyspaceConfig::builtin(policy));
    builtin.policy = policy;
    config.keyspaces.retain(|k| !k.is_builtin());
    config.keyspaces.push(builtin);
    let sluice = Sluice::open(config)
        .await
        .context("cannot open the engine")?;
    // Benchmark keys live in database 15 of the built-in table, away from other data.
    let _ = sluice.flush_db(Some(BENCH_DB)).await;
    let durability = sluice.durability();
    let server = Server::bind(sluice.clone(), server_config).await?;
    let addr = server.local_addr()?;
    let shared = server.shared();
    let serving = tokio::spawn(server.run());

    let zipf = Arc::new(Zipf::new(opts.keys.max(1), 0.99));
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..opts.clients)
        .map(|i| {
            tokio::spawn(client(
                addr,
                zipf.clone(),
                stop.clone(),
                ops.clone(),
                i as u64 + 1,
            ))
        })
        .collect();
    let started = Instant::now();
    let mut series = Vec::new();
    let mut last_ops = 0;
    let mut last_t = started;
    let tick = Duration::from_millis(100);
    while started.elapsed() < opts.duration {
        tokio::time::sleep(tick).await;
        let now = Instant::now();
        let total = ops.load(Ordering::Relaxed);
        let rate = (total - last_ops) as f64 / now.duration_since(last_t).as_secs_f64();
        let ks = sluice.keyspaces();
        let builtin = ks.last();
        series.push((
            started.elapsed().as_secs_f64(),
            rate,
            builtin.map(|k| k.oldest_buffered_age_ms).unwrap_or(0),
            builtin.map(|k| k.buffered as u64).unwrap_or(0),
        ));
        last_ops = total;
        last_t = now;
        bar.set_message(format!("{} {:>8.0} ops/s", policy.as_str(), rate));
        bar.inc(tick.as_millis() as u64);
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let mut run = PolicyRun {
        policy,
        durability,
        ops: ops.load(Ordering::Relaxed),
        elapsed,
        write_lat_us: Vec::new(),
        read_lat_us: Vec::new(),
        client_writes: 0,
        rows_stored: 0,
        series,
        errors: 0,
    };
    for c in clients {
        let r = c.await??;
        run.write_lat_us.extend(r.write_lat_us);
        run.read_lat_us.extend(r.read_lat_us);
        run.client_writes += r.writes;
        run.errors += r.errors;
    }
    sluice.flush().await.context("final flush failed")?;
    run.rows_stored = sluice
        .keyspaces()
        .last()
        .map(|k| k.rows_stored)
        .unwrap_or(0);
    let _ = sluice.flush_db(Some(BENCH_DB)).await;
    run.write_lat_us.sort_unstable();
    run.read_lat_us.sort_unstable();
    shared.trigger_shutdown();
    let _ = serving.await;
    Ok(run)
}

fn summary(runs: &[PolicyRun], opts: &BenchOptions, store: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# sluice bench\n\nStore: `{store}`; {} clients; {:?} per policy; {} zipfian keys (s = 0.99); 50% GET, 40% SET, 10% INCR.\n",
        opts.clients, opts.duration, opts.keys
    );
    let header: Vec<String> = runs.iter().map(|r| r.policy.as_str().to_string()).collect();
    let _ = writeln!(s, "| dimension | {} |", header.join(" | "));
    let _ = writeln!(s, "|---|{}", "---|".repeat(runs.len()));
    let row = |s: &mut String, name: &str, f: &dyn Fn(&PolicyRun) -> String| {
        let cells: Vec<String> = runs.iter().map(f).collect();
        let _ = writeln!(s, "| {name} | {} |", cells.join(" | "));
    };
    row(&mut s, "write latency p50 / p99 / p999 (ms)", &|r| {
        format!(
            "{:.3} / {:.3} / {:.3}",
            PolicyRun::percentile(&r.write_lat_us, 0.5),
            PolicyRun::percentile(&r.write_lat_us, 0.99),
            PolicyRun::percentile(&r.write_lat_us, 0.999)
        )
    });
    row(&mut s, "read latency p50 / p99 / p999 (ms)", &|r| {
        format!(
            "{:.3} / {:.3} / {:.3}",
            PolicyRun::percentile(&r.read_lat_us, 0.5),
            PolicyRun::percentile(&r.read_lat_us, 0.99),
            PolicyRun::percentile(&r.read_lat_us, 0.999)
        )
    });
    row(&mut s, "throughput (ops/s)", &|r| {
        format!("{:.0}", r.ops as f64 / r.elapsed.as_secs_f64())
    });
    row(
        &mut s,
        "write amplification (row writes per client write)",
        &|r| {
            format!(
                "{:.4}",
                r.rows_stored as f64 / r.client_writes.max(1) as f64
            )
        },
    );
    row(
        &mut s,
        "data freshness: max age of oldest unflushed write (ms)",
        &|r| r.max_lag_ms().to_string(),
    );
    row(&mut s, "writes at risk (acked, not durable), max", &|r| {
        format!("{} (journal {})", r.max_at_risk(), r.durability.as_str())
    });
    row(&mut s, "errors", &|r| r.errors.to_string());
    let _ = writeln!(
        s,
        "\nPlots: `latency_cdf.svg`, `throughput.svg`, `db_lag.svg`. Rerun: `sluice bench --duration {:?} --clients {} --out DIR`.",
        opts.duration, opts.clients
    );
    s
}

const COLORS: [RGBColor; 3] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
];

fn plot_cdf(runs: &[PolicyRun], path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let max_ms = runs
        .iter()
        .filter_map(|r| r.write_lat_us.last())
        .copied()
        .max()
        .unwrap_or(1) as f64
        / 1000.0;
    let mut chart = ChartBuilder::on(&root)
        .caption("write latency CDF", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((0.001f64..max_ms.max(0.01)).log_scale(), 0f64..1f64)?;
    chart
        .configure_mesh()
        .x_desc("latency (ms)")
        .y_desc("fraction")
        .draw()?;
    for (i, r) in runs.iter().enumerate() {
        let n = r.write_lat_us.len().max(1) as f64;
        let step = (r.write_lat_us.len() / 500).max(1);
        let points: Vec<(f64, f64)> = r
            .write_lat_us
            .iter()
            .enumerate()
            .step_by(step)
            .map(|(j, us)| ((*us as f64 / 1000.0).max(0.001), (j + 1) as f64 / n))
            .collect();
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(points, &color))?
            .label(r.policy.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart.configure_series_labels().border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

fn plot_series(
    runs: &[PolicyRun],
    path: &Path,
    title: &str,
    y_desc: &str,
    value: impl Fn(&(f64, f64, u64, u64)) -> f64,
) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let max_x = runs
        .iter()
        .filter_map(|r| r.series.last().map(|s| s.0))
        .fold(1.0, f64::max);
    let max_y = runs
        .iter()
        .flat_map(|r| r.series.iter().map(&value))
        .fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..max_x, 0f64..max_y * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc(y_desc)
        .draw()?;
    for (i, r) in runs.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                r.series.iter().map(|s| (s.0, value(s))),
                &color,
            ))?
            .label(r.policy.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart.configure_series_labels().border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

/// Registers a system TrueType font for plot labels; without one the plots have no text.
fn register_plot_font() {
    const CANDIDATES: [&str; 3] = [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
    ];
    for path in CANDIDATES {
        if let Ok(bytes) = std::fs::read(path) {
            // The font lives as long as the process; plotters needs a 'static slice.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return;
            }
        }
    }
    eprintln!(
        "note: no TrueType font found (install fonts-dejavu-core); plots will have no labels"
    );
}

/// Runs the benchmark and writes `summary.md` and the plots into `opts.out`.
pub async fn run(opts: BenchOptions) -> anyhow::Result<()> {
    register_plot_font();
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create {}", opts.out.display()))?;
    let policies = [Policy::WriteThrough, Policy::WriteBack, Policy::Invalidate];
    let bar = ProgressBar::new(opts.duration.as_millis() as u64 * policies.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let store = opts
        .config
        .as_ref()
        .and_then(|c| c.engine.store.as_ref().map(|s| s.url.clone()))
        .unwrap_or_else(|| "temporary SQLite".into());
    let mut runs = Vec::new();
    for policy in policies {
        runs.push(run_policy(&opts, policy, &bar).await?);
    }
    bar.finish_and_clear();
    let text = summary(&runs, &opts, &store);
    std::fs::write(opts.out.join("summary.md"), &text)?;
    plot_cdf(&runs, &opts.out.join("latency_cdf.svg"))?;
    plot_series(
        &runs,
        &opts.out.join("throughput.svg"),
        "throughput",
        "ops/s",
        |s| s.1,
    )?;
    plot_series(
        &runs,
        &opts.out.join("db_lag.svg"),
        "database lag: age of the oldest unflushed write",
        "ms",
        |s| s.2 as f64,
    )?;
    println!("{text}");
    println!("written to {}", opts.out.display());
    Ok(())
}
