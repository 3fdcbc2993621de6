//! Writes the benchmark workload (`driftwarden::workload`) to a directory:
//! `events.jsonl` (one event per line) and `baseline.json` (the model's
//! baseline snapshot), for `driftwarden replay`, the broker bench and the
//! comparison scripts in `benches/compare/`.
//!
//! `cargo run --release --example workload -- DIR [EVENTS]`

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;
use driftwarden::workload::{Workload, WorkloadSpec};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().context("usage: workload DIR [EVENTS]")?);
    let events = match args.next() {
        Some(text) => text.parse().context("EVENTS must be a whole number")?,
        None => WorkloadSpec::default().events,
    };
    let workload = Workload::new(WorkloadSpec::with_events(events));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    let baseline = workload.baseline()?;
    baseline.save(&dir.join("baseline.json"))?;

    let path = dir.join("events.jsonl");
    let mut out = BufWriter::new(File::create(&path).with_context(|| path.display().to_string())?);
    workload.write_jsonl(&mut out)?;
    out.flush()?;

    let spec = workload.spec();
    println!(
        "{{\"events\": {}, \"change_at\": {}, \"drifted\": {:?}, \"numeric\": {}, \"categorical\": {}, \"baseline_rows\": {}, \"shift_sd\": {}}}",
        spec.events,
        spec.change_at,
        spec.drifted
            .iter()
            .map(|&i| WorkloadSpec::numeric_name(i))
            .collect::<Vec<_>>(),
        spec.numeric,
        spec.categorical,
        spec.baseline_rows,
        spec.shift_sd
    );
    Ok(())
}
