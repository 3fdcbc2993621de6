//! The `driftwarden` command line. Thin: each subcommand hands over to the
//! library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Watches ML models in production: consumes prediction events from Kafka,
/// tests each feature's sliding window against a baseline (KS, chi-square),
/// and alerts (webhook, Slack, email) and triggers retraining on drift.
#[derive(Parser)]
#[command(name = "driftwarden", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service: consume prediction events from Kafka, monitor
    /// every configured model, deliver alerts, serve the HTTP API.
    ///
    /// Configuration layers: built-in defaults, the TOML file, DRIFTWARDEN_*
    /// environment variables (nested keys joined by `__`, e.g.
    /// DRIFTWARDEN_KAFKA__BOOTSTRAP_SERVERS), then --set flags.
    Run {
        /// Configuration file [default: config/driftwarden.toml if present].
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Override any key, e.g. --set kafka.group_id=monitor-2 (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// Run everything on this machine with nothing installed: an in-process
    /// Kafka broker, a sample model whose inputs drift half-way, the monitor,
    /// the HTTP API, and local receivers that print the alerts and the
    /// retraining trigger.
    Demo {
        /// Events to generate (the in-process broker holds ~100k).
        #[arg(long, default_value_t = 40_000)]
        events: usize,
        /// Event at which the drift starts [default: half of --events].
        #[arg(long)]
        drift_at: Option<usize>,
        /// Address of the HTTP API.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Keep running after the summary so the API can be explored.
        #[arg(long)]
        keep_running: bool,
    },
    /// Validate a configuration: print every problem with its key and exit
    /// non-zero if there is any, else print a short summary.
    CheckConfig {
        /// Configuration file [default: config/driftwarden.toml].
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Override any key, as for `run`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run { config, overrides } => run(config, overrides),
        Command::Demo {
            events,
            drift_at,
            listen,
            keep_running,
        } => demo(events, drift_at, listen, keep_running),
        Command::CheckConfig { config, overrides } => check_config(config, overrides),
    }
}

fn parse_overrides(raw: &[String]) -> Result<Vec<(String, String)>, String> {
    raw.iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .ok_or_else(|| format!("--set {kv}: expected KEY=VALUE"))
        })
        .collect()
}

fn run(path: Option<PathBuf>, overrides: Vec<String>) -> ExitCode {
    let overrides = match parse_overrides(&overrides) {
        Ok(o) => o,
        Err(e) => return fail(&e),
    };
    let config = match driftwarden::config::load_from_process_env(path.as_deref(), &overrides) {
        Ok(c) => c,
        Err(errors) => return fail(&format!("invalid configuration:\n{errors}")),
    };
    driftwarden::telemetry::init_logging(
        if config.service.log_format == driftwarden::config::LogFormat::Json {
            "json"
        } else {
            "text"
        },
        &config.service.log_level,
    );
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    runtime.block_on(async {
        let handles = driftwarden::service::Handles::default();
        driftwarden::service::cancel_on_signals(handles.shutdown.clone());
        match driftwarden::service::run(config, handles).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&format!("{e:#}")),
        }
    })
}

fn demo(
    events: usize,
    drift_at: Option<usize>,
    listen: SocketAddr,
    keep_running: bool,
) -> ExitCode {
    driftwarden::telemetry::init_logging("text", "warn");
    let options = driftwarden::demo::DemoOptions {
        events,
        drift_at: drift_at.unwrap_or(events / 2),
        listen,
        keep_running,
        ..Default::default()
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    match runtime.block_on(driftwarden::demo::run(options)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("{e:#}")),
    }
}

fn check_config(path: Option<PathBuf>, overrides: Vec<String>) -> ExitCode {
    let overrides = match parse_overrides(&overrides) {
        Ok(o) => o,
        Err(e) => return fail(&e),
    };
    let (report, ok) = driftwarden::config::check_config_report(path.as_deref(), &overrides);
    println!("{report}");
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("driftwarden: {message}");
    ExitCode::FAILURE
}
