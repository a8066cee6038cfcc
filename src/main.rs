//! The `presence-gateway` binary: parse the command line, load config, run.
//! Nothing else lives here.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use presence_gateway::simulator::{self, SimConfig};

/// presence-gateway: one Genesys Cloud connection, fanned out to every dashboard.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format: text or json.
    #[arg(
        long,
        global = true,
        default_value = "text",
        env = "PRESENCE_GATEWAY_LOG_FORMAT"
    )]
    log_format: String,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a simulated Genesys Cloud org (real API paths + /sim control API).
    Simulate(SimConfig),
}

/// Exit code for bad configuration or usage (sysexits EX_USAGE).
const EX_USAGE: u8 = 64;

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.log_format != "text" && cli.log_format != "json" {
        eprintln!(
            "error: --log-format must be text or json, got {:?}",
            cli.log_format
        );
        return ExitCode::from(EX_USAGE);
    }
    init_tracing(&cli.log_format);
    match cli.command {
        Command::Simulate(cfg) => {
            if let Err(e) = cfg.validate() {
                eprintln!("error: {e}");
                return ExitCode::from(EX_USAGE);
            }
            run(async move {
                let handle = simulator::start(cfg).await?;
                println!("READY simulator={}", handle.base_url());
                tokio::signal::ctrl_c().await?;
                handle.stop().await;
                Ok(())
            })
        }
    }
}

/// Runs a future on an actix system and maps its result to an exit code.
fn run(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    match actix_web::rt::System::new().block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
