//! The `presence-gateway` binary: parse the command line, load and validate
//! the configuration (exit 64 before any port opens when it is wrong), init
//! tracing, run until SIGINT/SIGTERM, stop. Nothing else lives here.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use presence_gateway::config::Config;
use presence_gateway::simulator::{self, SimConfig};
use presence_gateway::{app, genesys::GenesysConfig};

/// presence-gateway: one Genesys Cloud connection, fanned out to every dashboard.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Log format on stderr: `text` or `json` (for `serve`, overrides
    /// `[log] format`). Colours only when stderr is a terminal.
    #[arg(long, global = true, env = "PRESENCE_GATEWAY_LOG_FORMAT", value_parser = ["text", "json"])]
    log_format: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway against Genesys Cloud (or any API base) from a config file.
    Serve {
        /// TOML configuration file (optional: everything has a default, and
        /// credentials usually come from GENESYSCLOUD_* variables).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Check a configuration file and the environment, then exit (0 valid, 64 not).
    CheckConfig {
        /// TOML configuration file.
        config: Option<PathBuf>,
    },
    /// Simulator with realistic churn plus a gateway wired to it: the demo.
    Demo {
        /// Where the gateway (API, streams, dashboard) listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Where the simulated Genesys Cloud listens.
        #[arg(long, default_value = "127.0.0.1:9000")]
        sim_listen: SocketAddr,
        /// Agents in the simulated org.
        #[arg(long, default_value_t = 500)]
        agents: usize,
        /// Presence changes per second in the simulated org.
        #[arg(long, default_value_t = 5.0)]
        churn: f64,
        /// Seed of the simulated org.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Send `modifiedDate` in the simulator's presence events (Genesys's
        /// example leaves it out; benchmarks send it to time presence changes).
        #[arg(long)]
        sim_presence_modified_date: bool,
    },
    /// Serve a simulated Genesys Cloud org (real API paths + /sim control API).
    Simulate(SimConfig),
}

/// Exit code for bad configuration or usage (sysexits EX_USAGE).
const EX_USAGE: u8 = 64;

fn init_tracing(format: &str, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn usage_error(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(EX_USAGE)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_format = cli.log_format;
    match cli.command {
        Command::CheckConfig { config } => {
            match Config::load(config.as_deref(), std::env::vars()).and_then(|c| {
                presence_gateway::auth::exposure_check(&c.auth, c.server.listen)
                    .map_err(presence_gateway::config::ConfigError::Invalid)
            }) {
                Ok(_) => {
                    println!("configuration is valid");
                    ExitCode::SUCCESS
                }
                Err(e) => usage_error(e),
            }
        }
        Command::Serve { config } => {
            let cfg = match Config::load(config.as_deref(), std::env::vars()) {
                Ok(c) => c,
                Err(e) => return usage_error(e),
            };
            if let Err(e) = presence_gateway::auth::exposure_check(&cfg.auth, cfg.server.listen) {
                return usage_error(e);
            }
            // A store that cannot be opened (or migrated) is a configuration
            // error: exit 64 naming the path, before any port opens.
            if !cfg.store.is_postgres() {
                if let Err(e) = cfg.store.connect() {
                    return usage_error(e);
                }
            }
            init_tracing(
                log_format.as_deref().unwrap_or(&cfg.log.format),
                &cfg.log.level,
            );
            let grace = std::time::Duration::from_secs(cfg.server.drain_secs);
            run(async move {
                let gw = app::start(cfg).await?;
                let signal = shutdown_signal();
                println!("READY gateway={}", gw.base_url());
                let deposed = tokio::select! {
                    _ = signal => false,
                    _ = gw.deposed() => true,
                };
                // The drain bounds itself; this is the backstop.
                if tokio::time::timeout(grace, gw.shutdown()).await.is_err() {
                    tracing::warn!("drain overran server.drain_secs; stopping now");
                    gw.stop().await;
                }
                if deposed {
                    // Another node leads now: this one's supervisor restarts
                    // it as a follower (docs/scaling.md).
                    return Err(Deposed.into());
                }
                Ok(())
            })
        }
        Command::Demo {
            listen,
            sim_listen,
            agents,
            churn,
            seed,
            sim_presence_modified_date,
        } => {
            let sim_cfg = SimConfig {
                listen: sim_listen,
                agents,
                seed,
                churn,
                presence_events_without_modified_date: !sim_presence_modified_date,
                ..SimConfig::default()
            };
            if let Err(e) = sim_cfg.validate() {
                return usage_error(e);
            }
            init_tracing(log_format.as_deref().unwrap_or("text"), "info");
            run(async move {
                let sim = simulator::start(sim_cfg.clone()).await?;
                let mut cfg = Config {
                    genesys: GenesysConfig {
                        api_base: Some(sim.base_url()),
                        client_id: sim_cfg.client_id.clone(),
                        client_secret: sim_cfg.client_secret.clone(),
                        ..GenesysConfig::default()
                    },
                    ..Config::default()
                };
                cfg.server.listen = listen;
                // The demo has no credentials: loopback only.
                presence_gateway::auth::exposure_check(&cfg.auth, listen)
                    .map_err(anyhow::Error::msg)?;
                // Each demo run keeps its store (audit log, leases, history)
                // in a directory of its own under the temp dir, removed when
                // the run ends (`store_dir` is dropped after the drain):
                // runs never share history, concurrent ones included.
                let store_dir = tempfile::Builder::new()
                    .prefix("presence-gateway-demo-")
                    .tempdir()?;
                cfg.store.path = store_dir.path().join("store.db");
                cfg.validate().map_err(anyhow::Error::msg)?;
                let gw = app::start(cfg).await?;
                let signal = shutdown_signal();
                println!(
                    "READY gateway={} simulator={}",
                    gw.base_url(),
                    sim.base_url()
                );
                println!("Dashboard:     {}/", gw.base_url());
                println!(
                    "Agent desktop: {}/desktop.html?agent=<agent id>   (click a tile: its detail shows the id and an \"Open agent desktop\" link)",
                    gw.base_url()
                );
                println!(
                    "Store:         {}   (this run only; removed on exit)",
                    store_dir.path().display()
                );
                println!(
                    "Simulator:     {}/sim/state   (Ctrl-C stops)",
                    sim.base_url()
                );
                signal.await;
                gw.shutdown().await;
                sim.stop().await;
                store_dir.close()?;
                Ok(())
            })
        }
        Command::Simulate(cfg) => {
            if let Err(e) = cfg.validate() {
                return usage_error(e);
            }
            init_tracing(log_format.as_deref().unwrap_or("text"), "info");
            run(async move {
                let handle = simulator::start(cfg).await?;
                let signal = shutdown_signal();
                println!("READY simulator={}", handle.base_url());
                signal.await;
                handle.stop().await;
                Ok(())
            })
        }
    }
}

/// Registers the SIGINT and SIGTERM handlers now, so that a signal sent
/// right after the `READY` line is not lost, and returns a future that
/// resolves on either. Call it inside the runtime, before printing `READY`.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, Signal, SignalKind};
        async fn recv(s: Option<Signal>) {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            tokio::select! {
                _ = recv(term) => {}
                _ = recv(int) => {}
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// A cluster leader lost its lease to another node (exit 75, EX_TEMPFAIL).
#[derive(Debug, thiserror::Error)]
#[error("another node took the leader lease; exiting so that this node restarts as a follower")]
struct Deposed;

/// Exit code of a deposed cluster leader (sysexits EX_TEMPFAIL).
const EX_TEMPFAIL: u8 = 75;

/// Runs a future on an actix system and maps its result to an exit code.
fn run(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    match actix_web::rt::System::new().block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<Deposed>() => {
            eprintln!("error: {e}");
            ExitCode::from(EX_TEMPFAIL)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
