//! `driftwarden replay`: loads the configuration and baselines, replays
//! the events file, writes per-check verdicts, prints the timeline and a
//! summary.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::baseline::Baseline;
use crate::baseline::builder::{InputFormat, progress};

use super::input::{Lines, csv_records};
use super::{ReplayError, ReplayOptions, ReplaySummary, VERDICT_SINK, run, setup};

/// What the command line asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplayArgs {
    /// The events file; `-` is standard input.
    pub events: PathBuf,
    /// Its format, when the extension does not say.
    pub format: Option<InputFormat>,
    /// Configuration file.
    pub config: Option<PathBuf>,
    /// `key=value` overrides of the configuration.
    pub overrides: Vec<(String, String)>,
    /// Baseline files adding or replacing models.
    pub baselines: Vec<PathBuf>,
    /// Where per-check verdicts go (JSON lines).
    pub output: Option<PathBuf>,
    /// Print only the timeline: no summary, no per-check verdicts.
    pub timeline_only: bool,
}

/// Runs the replay and prints the timeline (and, unless `timeline_only`,
/// the summary) to `out`.
pub fn replay(args: &ReplayArgs, out: &mut dyn Write) -> Result<ReplaySummary, ReplayError> {
    let config = setup::load_config(args.config.as_deref(), &args.overrides)?;
    let baselines = args
        .baselines
        .iter()
        .map(|path| Baseline::load(path).map(|b| (path.clone(), b)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut monitor = setup::build_monitor(&config, &baselines)?;
    let options = ReplayOptions {
        max_event_bytes: config.kafka.max_message_bytes.get(),
        progress: true,
    };
    let mut checks = match (&args.output, args.timeline_only) {
        (Some(path), false) => Some(create(path)?),
        _ => None,
    };
    let summary = {
        let sink = checks.as_mut().map(|w| w as &mut (dyn Write + Send));
        replay_file(args, &mut monitor, &options, sink).map_err(|e| name_output(e, args))?
    };
    if let (Some(writer), Some(path)) = (checks.as_mut(), &args.output) {
        writer.flush().map_err(|source| io_error(path, source))?;
    }
    print(args, &summary, out).map_err(|source| io_error(Path::new("<stdout>"), source))?;
    Ok(summary)
}

fn replay_file(
    args: &ReplayArgs,
    monitor: &mut crate::monitor::Monitor,
    options: &ReplayOptions,
    checks: Option<&mut (dyn Write + Send)>,
) -> Result<ReplaySummary, ReplayError> {
    let (reader, size, name) = open(&args.events)?;
    let bar = progress::bytes_bar(size, "reading");
    let mut reader = BufReader::with_capacity(1 << 16, bar.wrap_read(reader));
    let format = match args.format.or_else(|| InputFormat::from_path(&args.events)) {
        Some(format) => format,
        None => {
            let head = io::BufRead::fill_buf(&mut reader).map_err(|e| io_error(&args.events, e))?;
            InputFormat::sniff(head)
        }
    };
    let result = match format {
        InputFormat::JsonLines => {
            let mut lines = Lines::new(reader);
            let summary = run(&mut lines, monitor, options, checks);
            if let Some(error) = lines.take_error() {
                return Err(io_error(&args.events, error));
            }
            summary
        }
        InputFormat::Csv => {
            let records = csv_records(reader, &name, monitor)?;
            run(records, monitor, options, checks)
        }
    };
    bar.finish_and_clear();
    result
}

/// The library names the verdict sink generically; here it has a path.
fn name_output(error: ReplayError, args: &ReplayArgs) -> ReplayError {
    match (error, &args.output) {
        (ReplayError::Io { path, source }, Some(output)) if path == Path::new(VERDICT_SINK) => {
            io_error(output, source)
        }
        (error, _) => error,
    }
}

type Opened = (Box<dyn Read>, Option<u64>, String);

fn open(path: &Path) -> Result<Opened, ReplayError> {
    if path == Path::new("-") {
        return Ok((Box::new(io::stdin().lock()), None, "<stdin>".into()));
    }
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let size = file.metadata().ok().map(|m| m.len());
    Ok((Box::new(file), size, path.display().to_string()))
}

fn create(path: &Path) -> Result<BufWriter<File>, ReplayError> {
    File::create(path)
        .map(|f| BufWriter::with_capacity(1 << 20, f))
        .map_err(|e| io_error(path, e))
}

fn io_error(path: &Path, source: io::Error) -> ReplayError {
    ReplayError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn print(args: &ReplayArgs, summary: &ReplaySummary, out: &mut dyn Write) -> io::Result<()> {
    if summary.timeline.is_empty() {
        writeln!(out, "no alert would have fired")?;
    }
    for entry in &summary.timeline {
        write!(out, "{entry}")?;
    }
    if args.timeline_only {
        return Ok(());
    }
    writeln!(out)?;
    write!(out, "{summary}")?;
    match &args.output {
        Some(path) => writeln!(out, "  verdicts   written to {}", path.display()),
        None => writeln!(
            out,
            "  verdicts   not written (give --output FILE for one JSON line per check)"
        ),
    }
}
