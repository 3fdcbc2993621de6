//! Cost of `baseline build` on a 1,000,000-row CSV with 8 columns (the
//! demo model's 5 numeric and 3 categorical features): one streaming pass
//! with reservoir sampling at the default 100,000 values per numeric
//! feature, category counts, missing counts and the SHA-256 of the input.
//!
//! Run with `cargo bench --bench baseline_build`. The input is generated
//! once (seeded, about 60 MB) into `target/bench-data/` and reused.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, Throughput};
use driftwarden::baseline::builder::{self, BuildOptions, InputFormat};
use driftwarden::demo::generator::{CATEGORICAL, DriftPlan, Generator, NUMERIC};

const ROWS: u64 = 1_000_000;

fn input() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    let path = dir.join("baseline_1m_8cols.csv");
    if !path.exists() {
        std::fs::create_dir_all(&dir).expect("create target/bench-data");
        write_input(&path);
    }
    path
}

/// Writes to a temporary name first so an interrupted run leaves no
/// truncated file behind to be reused.
fn write_input(path: &Path) {
    let tmp = path.with_extension("csv.tmp");
    let mut out = BufWriter::new(File::create(&tmp).expect("create bench input"));
    let columns: Vec<&str> = NUMERIC.into_iter().chain(CATEGORICAL).collect();
    writeln!(out, "{}", columns.join(",")).expect("write header");
    let mut generator = Generator::new(1, 0, DriftPlan::default());
    for _ in 0..ROWS {
        let (row, _) = generator.row(false);
        let cells: Vec<String> = columns
            .iter()
            .map(|c| match &row[c] {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        writeln!(out, "{}", cells.join(",")).expect("write row");
    }
    out.flush().expect("flush bench input");
    std::fs::rename(&tmp, path).expect("rename bench input");
}

fn bench_build(c: &mut Criterion) {
    let path = input();
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "input: {} ({:.1} MB, {ROWS} rows)",
        path.display(),
        size as f64 / 1e6
    );
    let options = BuildOptions::new("churn");
    let mut group = c.benchmark_group("baseline_build");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30))
        .throughput(Throughput::Elements(ROWS));
    group.bench_function("csv_1m_rows_8_columns", |b| {
        b.iter(|| {
            let file = BufReader::new(File::open(&path).expect("open bench input"));
            let built = builder::build(file, "bench.csv", InputFormat::Csv, &options)
                .expect("bench input builds");
            assert_eq!(built.baseline.source.rows, ROWS);
            built
        })
    });
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench_build(&mut criterion);
    criterion.final_summary();
}
