//! The `driftwarden` command line. Thin: each subcommand hands over to the
//! library.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use driftwarden::baseline::builder::{self, BuildOptions, Input, InputFormat};
use driftwarden::replay::ReplayError;
use driftwarden::replay::command::ReplayArgs;

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
    /// Build or inspect baseline snapshots.
    #[command(subcommand)]
    Baseline(BaselineCommand),
    /// Backtest: run the monitor over a file of historical events, in
    /// event-time order, and print what would have fired and resolved.
    ///
    /// EVENTS is JSON lines in the event schema, or CSV with a header whose
    /// columns are features plus optional model, model_version, id,
    /// timestamp, prediction and label. Label events ({"model", "id",
    /// "label"} without features or prediction) are joined by id, as from a
    /// label topic. Models and settings come from
    /// --config (as `run` reads it) and --baseline files, which add models
    /// or replace a configured model's baseline.
    Replay {
        /// Events file (.jsonl, .ndjson, .json or .csv; `-` for stdin).
        events: PathBuf,
        /// Input format, when the extension does not say.
        #[arg(long, value_parser = parse_format)]
        format: Option<InputFormat>,
        /// Configuration file [default: built-in defaults].
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Override any configuration key, as for `run` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// A baseline snapshot; adds its model, or replaces the configured
        /// baseline of that model (repeatable).
        #[arg(long = "baseline", value_name = "FILE")]
        baselines: Vec<PathBuf>,
        /// Write one JSON line per check verdict here.
        #[arg(long, short, value_name = "FILE", conflicts_with = "timeline_only")]
        output: Option<PathBuf>,
        /// Print only the alert timeline (no summary, no verdicts).
        #[arg(long)]
        timeline_only: bool,
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

#[derive(Subcommand)]
enum BaselineCommand {
    /// Build a baseline from training data: CSV with a header row, or JSON
    /// lines (events or flat rows). Numeric columns keep up to
    /// --max-sample values (a seeded reservoir sample beyond), categorical
    /// ones their counts; missing values (empty, null, NA, NaN, …) are
    /// counted per feature.
    Build(Box<BuildArgs>),
    /// Summarise a baseline: source, per-feature kind, counts, quantiles or
    /// top categories, prediction, metrics.
    Inspect {
        /// The snapshot file.
        file: PathBuf,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `baseline build` flags.
#[derive(Args)]
struct BuildArgs {
    /// The model the baseline describes.
    #[arg(long)]
    model: String,
    /// The model version.
    #[arg(long)]
    version: Option<String>,
    /// Training data (`-` for stdin).
    #[arg(long, short, value_name = "FILE")]
    input: PathBuf,
    /// Input format [default: from the extension, else sniffed].
    #[arg(long, value_parser = parse_format)]
    format: Option<InputFormat>,
    /// The features, in this order [default: every column but the
    /// label, the prediction, model, model_version, id and timestamp].
    #[arg(long, value_delimiter = ',', value_name = "A,B,…")]
    features: Option<Vec<String>>,
    /// Columns to treat as categorical whatever their values.
    #[arg(long, value_delimiter = ',', value_name = "X,Y,…")]
    categorical: Vec<String>,
    /// Columns to treat as numeric (a non-number is then an error).
    #[arg(long, value_delimiter = ',', value_name = "X,Y,…")]
    numeric: Vec<String>,
    /// The label column [default: `label`, if present].
    #[arg(long, value_name = "C")]
    label_column: Option<String>,
    /// The prediction column [default: `prediction`, if present].
    #[arg(long, value_name = "P")]
    prediction_column: Option<String>,
    /// Values kept per numeric feature before reservoir sampling.
    #[arg(long, value_name = "N", default_value_t = builder::DEFAULT_MAX_SAMPLE)]
    max_sample: usize,
    /// Seed of the reservoir samples.
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
    /// Where to write the snapshot (`-` for stdout).
    #[arg(long, short, value_name = "FILE")]
    output: PathBuf,
}

fn parse_format(s: &str) -> Result<InputFormat, String> {
    s.parse()
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
        Command::Baseline(BaselineCommand::Build(args)) => {
            let BuildArgs {
                model,
                version,
                input,
                format,
                features,
                categorical,
                numeric,
                label_column,
                prediction_column,
                max_sample,
                seed,
                output,
            } = *args;
            let options = BuildOptions {
                model,
                model_version: version,
                features,
                categorical,
                numeric,
                label_column,
                prediction_column,
                max_sample,
                seed,
            };
            baseline_build(&Input::parse(&input), format, &options, &output)
        }
        Command::Baseline(BaselineCommand::Inspect { file, json }) => baseline_inspect(&file, json),
        Command::Replay {
            events,
            format,
            config,
            overrides,
            baselines,
            output,
            timeline_only,
        } => {
            let overrides = match parse_overrides(&overrides) {
                Ok(o) => o,
                Err(e) => return fail(&e),
            };
            replay(ReplayArgs {
                events,
                format,
                config,
                overrides,
                baselines,
                output,
                timeline_only,
            })
        }
    }
}

fn baseline_build(
    input: &Input,
    format: Option<InputFormat>,
    options: &BuildOptions,
    output: &Path,
) -> ExitCode {
    match builder::build_command(input, format, options, output) {
        Ok(built) => {
            eprint!("{built}");
            if output != Path::new("-") {
                eprintln!("wrote {}", output.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string()),
    }
}

fn baseline_inspect(file: &Path, json: bool) -> ExitCode {
    let summary = match driftwarden::baseline::inspect::inspect(file) {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string()),
    };
    let text = if json {
        match serde_json::to_string_pretty(&summary) {
            Ok(text) => text + "\n",
            Err(e) => return fail(&e.to_string()),
        }
    } else {
        summary.to_string()
    };
    print_stdout(&text)
}

/// Prints to stdout; a closed pipe (`| head`) is not a failure.
fn print_stdout(text: &str) -> ExitCode {
    use std::io::Write as _;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => fail(&format!("cannot write to stdout: {e}")),
    }
}

fn replay(args: ReplayArgs) -> ExitCode {
    match driftwarden::replay::command::replay(&args, &mut std::io::stdout().lock()) {
        Ok(_) => ExitCode::SUCCESS,
        // A closed pipe (`| head`) is not a failure.
        Err(ReplayError::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string()),
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
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    let format = if config.service.log_format == driftwarden::config::LogFormat::Json {
        "json"
    } else {
        "text"
    };
    // The span exporter sends its requests on the runtime.
    let tracer = {
        let _runtime = runtime.enter();
        driftwarden::telemetry::init_service_tracing(
            format,
            &config.service.log_level,
            &config.telemetry,
        )
    };
    let tracer = match tracer {
        Ok(t) => t,
        Err(e) => return fail(&format!("cannot set up span export: {e:#}")),
    };
    let code = runtime.block_on(async {
        let handles = driftwarden::service::Handles::default();
        driftwarden::service::cancel_on_signals(handles.shutdown.clone());
        match driftwarden::service::run(config, handles).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&format!("{e:#}")),
        }
    });
    // The runtime's workers still run the last export's request.
    if let Some(tracer) = tracer {
        driftwarden::telemetry::shutdown_tracing(tracer);
    }
    code
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
