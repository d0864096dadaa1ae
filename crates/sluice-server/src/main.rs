//! `sluice`: a Redis-protocol write-through / write-back cache in front of a SQL database.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sluice::Sluice;
use sluice_server::config::{FileConfig, LogFormat};
use sluice_server::Server;
use tracing::info;

// mimalloc rather than glibc malloc, as Redis ships jemalloc: the cache is millions of small
// allocations, which glibc pads with a header each and keeps in per-thread arenas after
// they are freed (a drained write-back buffer never gave its memory back).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (v2 and v3 alike; libmimalloc-sys
/// names the options around it but not this one). Check after a mimalloc upgrade:
/// `MIMALLOC_VERBOSE=1 sluice --version` lists the options in enum order, and the 16th
/// (index 15) must be `purge_delay`.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed pages go back to the OS at once. mimalloc's default delays that until the thread
/// allocates again, so a server that went idle after a burst (a bulk load, a drained
/// write-back buffer) kept the burst's memory in RSS indefinitely. Redis purges in a jemalloc
/// background thread for the same reason.
fn release_freed_memory_promptly() {
    // SAFETY: sets a plain integer option; mimalloc documents mi_option_set as callable at
    // any time, from any thread.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "A write-through / write-back cache in front of a SQL database that speaks the Redis protocol",
    long_about = "Sluice serves Redis clients (RESP2 and RESP3) and keeps a SQL database in step with \
the cache according to each keyspace's policy: write-through, write-back (journaled) or \
invalidate. With no config it runs embedded: SQLite and a local journal in --data-dir."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log line format on stderr [default: `[server] log_format`, else text].
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (flags override the config file, which overrides the defaults).
    Serve {
        /// TOML config file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Address to bind [default: 127.0.0.1].
        #[arg(long)]
        bind: Option<String>,
        /// Port [default: 6380].
        #[arg(long)]
        port: Option<u16>,
        /// Directory for the embedded database, the journal and dead letters [default: ./sluice-data].
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Start even if the journal is corrupt before its tail, skipping and logging bad records.
        #[arg(long)]
        salvage: bool,
    },
    /// Measure latency, throughput, write amplification, database lag and writes at risk for
    /// each policy, on the configured store (default: a temp SQLite).
    Bench {
        /// TOML config file whose [store], [journal] and built-in keyspace knobs are used.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Run time per policy, e.g. 10s.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        duration: std::time::Duration,
        /// Concurrent clients.
        #[arg(long, default_value_t = 50)]
        clients: usize,
        /// Distinct keys (zipfian, s = 0.99).
        #[arg(long, default_value_t = 10_000)]
        keys: u64,
        /// Directory for summary.md and the SVG plots.
        #[arg(long, default_value = "bench-out")]
        out: PathBuf,
    },
    /// Show a running server's keyspaces (hits, misses, buffered writes, oldest unflushed
    /// write, dead letters, writes/s), redrawn every interval on a terminal.
    Status(sluice_server::status::StatusOptions),
    /// Validate a config file against its database and exit.
    CheckConfig {
        /// TOML config file.
        file: PathBuf,
    },
    /// Manage what change capture created in the database.
    Changes {
        #[command(subcommand)]
        action: ChangesAction,
    },
}

#[derive(Subcommand)]
enum ChangesAction {
    /// Remove a node's position in the change stream and, once no node follows it, the
    /// triggers and tables change capture created (run it with the server stopped).
    Drop {
        /// TOML config file (its [store] and [changes] node_name).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The node whose position to remove [default: [changes] node_name].
        #[arg(long)]
        node: Option<String>,
    },
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    sluice::config::parse_duration(s)
}

/// Logs to stderr: `RUST_LOG` if set, else the configured level, else `info`. Text is coloured
/// only on a terminal, so files and pipes get plain lines.
fn init_logging(format: LogFormat, configured_level: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let mut bad_rust_log = None;
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => match EnvFilter::try_new(&directives) {
            Ok(filter) => Some(filter),
            Err(e) => {
                bad_rust_log = Some(format!("RUST_LOG={directives:?} ignored: {e}"));
                None
            }
        },
        _ => None,
    };
    // The configured level was validated when the config was loaded.
    let filter = filter
        .or_else(|| configured_level.and_then(|l| EnvFilter::try_new(l).ok()))
        .unwrap_or_else(|| EnvFilter::new("info"));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => subscriber.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => subscriber.json().init(),
    }
    if let Some(warning) = bad_rust_log {
        tracing::warn!("{warning}");
    }
}

fn load_config(path: Option<&PathBuf>) -> anyhow::Result<FileConfig> {
    match path {
        Some(p) => FileConfig::from_file(p).map_err(anyhow::Error::from),
        None => Ok(FileConfig::default()),
    }
}

async fn serve(
    config: FileConfig,
    bind: Option<String>,
    port: Option<u16>,
    data_dir: Option<PathBuf>,
    salvage: bool,
) -> anyhow::Result<()> {
    let FileConfig {
        engine: mut engine_config,
        server: mut server_config,
    } = config;
    if let Some(b) = bind {
        server_config.bind = b;
    }
    if let Some(p) = port {
        server_config.port = p;
    }
    if let Some(d) = data_dir {
        engine_config.data_dir = d;
    }
    let sluice = Sluice::builder(engine_config)
        .salvage(salvage)
        .open()
        .await
        .context("cannot start")?;
    // Registered before the port answers: a SIGTERM sent as soon as the server is reachable
    // must start the drain, not kill the process with the default action.
    let signals = shutdown_signals();
    let server = match Server::bind(sluice.clone(), server_config).await {
        Ok(server) => server,
        Err(e) => {
            sluice.shutdown().await;
            if e.kind() == std::io::ErrorKind::InvalidInput {
                anyhow::bail!("{e}");
            }
            // The error names the address and the setting (`port` or `tls_port`).
            anyhow::bail!("cannot listen on {e}; pick another port or stop what is using it");
        }
    };
    let mut listening = Vec::new();
    if let Ok(addr) = server.local_addr() {
        listening.push(addr.to_string());
    }
    if let Some(addr) = server.tls_local_addr() {
        listening.push(format!("{addr} (TLS)"));
    }
    if let Some(addr) = server.http_local_addr() {
        listening.push(format!("{addr} (HTTP: /metrics, /healthz, /readyz)"));
    }
    info!(
        "sluice {} listening on {}, store {}, journal {}, keyspaces: {}",
        env!("CARGO_PKG_VERSION"),
        listening.join(" and "),
        sluice.store_description(),
        sluice.durability().as_str(),
        sluice.keyspace_summaries().join("; ")
    );
    let shared = server.shared();
    tokio::spawn(async move {
        signals.await;
        info!("signal received");
        shared.trigger_shutdown();
    });
    let report = server.run().await;
    if report.unflushed > 0 && !report.kept_in_journal {
        anyhow::bail!(
            "{} acknowledged write-back writes were lost at shutdown",
            report.unflushed
        );
    }
    info!("bye");
    Ok(())
}

/// Installs the SIGTERM and SIGINT handlers now; the future resolves on the first of them.
fn shutdown_signals() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        let (Ok(mut term), Ok(mut int)) = handlers else {
            std::future::pending::<()>().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
}

fn main() -> ExitCode {
    release_freed_memory_promptly();
    let cli = Cli::parse();
    // `serve` reads its config before the runtime exists: the runtime's thread count is in it.
    let serve_config = match &cli.command {
        Command::Serve { config, .. } => match load_config(config.as_ref()) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    let server_settings = serve_config.as_ref().map(|c| &c.server);
    init_logging(
        cli.log_format
            .or(server_settings.map(|s| s.log_format))
            .unwrap_or_default(),
        server_settings.and_then(|s| s.log_level.as_deref()),
    );
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    // `bench` and `check-config` keep tokio's default of one worker per core (`bench` runs its
    // load generator in this process too).
    if let Some(c) = &serve_config {
        builder.worker_threads(c.server.resolved_io_threads());
    }
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve {
                bind,
                port,
                data_dir,
                salvage,
                ..
            } => match serve_config {
                Some(config) => serve(config, bind, port, data_dir, salvage).await,
                None => Err(anyhow::anyhow!(
                    "internal error: the serve configuration was not loaded"
                )),
            },
            Command::Bench {
                config,
                duration,
                clients,
                keys,
                out,
            } => {
                let config = match config {
                    Some(path) => Some(load_config(Some(&path))?),
                    None => None,
                };
                sluice_server::bench::run(sluice_server::bench::BenchOptions {
                    config,
                    duration,
                    clients,
                    out,
                    keys,
                })
                .await
            }
            Command::Status(options) => sluice_server::status::run(options).await,
            Command::CheckConfig { file } => {
                let config = load_config(Some(&file))?;
                let lines = sluice::check_config(&config.engine).await?;
                println!("{}: OK", file.display());
                for l in lines {
                    if l.starts_with("changes:") {
                        println!("  {l}");
                    } else {
                        println!("  keyspace {l}");
                    }
                }
                Ok(())
            }
            Command::Changes {
                action: ChangesAction::Drop { config, node },
            } => {
                let config = load_config(config.as_ref())?;
                let node = node.unwrap_or_else(|| config.engine.changes.node_name.clone());
                let done = sluice::drop_change_objects(&config.engine.store_url(), &node).await?;
                println!("{done}");
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
