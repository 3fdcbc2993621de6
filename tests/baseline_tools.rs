//! `baseline build` and `baseline inspect`: the same training data as CSV,
//! event-schema JSON lines and flat JSON lines builds the same
//! distributions; kinds are inferred and can be overridden; reservoir
//! samples are seeded and say so; broken input is reported with its line;
//! and the binary does all of it from the command line.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use driftwarden::baseline::builder::{self, BuildError, BuildOptions, Built, Input, InputFormat};
use driftwarden::baseline::inspect::{self, DistributionSummary};
use driftwarden::baseline::{Baseline, Distribution, MetricValue};
use serde_json::{Value, json};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "driftwarden-baseline-{name}-{}",
        std::process::id()
    ));
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A small deterministic generator (no external crate): a linear
/// congruential sequence is plenty for test data.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One training row: `age` (numeric, sometimes missing in several
/// spellings), `plan` (categorical), `charges` (decimal), `active`
/// (boolean), `zip` (integer-coded), a score and a 0/1 label.
struct Row {
    age: Option<u64>,
    plan: &'static str,
    charges: f64,
    active: bool,
    zip: u64,
    score: f64,
    label: u8,
}

fn rows(count: usize) -> Vec<Row> {
    let mut rng = Lcg(42);
    (0..count)
        .map(|_| {
            let age = (rng.below(20) != 0).then(|| 18 + rng.below(70));
            let score = rng.below(10_000) as f64 / 10_000.0;
            Row {
                age,
                plan: ["basic", "pro", "enterprise"][rng.below(3) as usize],
                charges: (rng.below(20_000) as f64) / 100.0,
                active: rng.below(2) == 1,
                zip: 10_000 + rng.below(5),
                score,
                label: u8::from(rng.below(10_000) as f64 / 10_000.0 < score),
            }
        })
        .collect()
}

const MISSING_SPELLINGS: [&str; 4] = ["", "NA", "NaN", "null"];

fn write_csv(path: &Path, rows: &[Row]) {
    let mut text = String::from("id,age,plan,charges,active,zip,prediction,label\n");
    for (i, r) in rows.iter().enumerate() {
        let age = r
            .age
            .map_or(MISSING_SPELLINGS[i % 4].to_string(), |a| a.to_string());
        let active = if r.active { "True" } else { "False" };
        text += &format!(
            "req-{i},{age},{},{},{active},{},{},{}\n",
            r.plan, r.charges, r.zip, r.score, r.label
        );
    }
    fs::write(path, text).unwrap();
}

fn features_json(r: &Row) -> serde_json::Map<String, Value> {
    let mut features = serde_json::Map::new();
    if let Some(age) = r.age {
        features.insert("age".into(), json!(age));
    }
    features.insert("plan".into(), json!(r.plan));
    features.insert("charges".into(), json!(r.charges));
    features.insert("active".into(), json!(r.active));
    features.insert("zip".into(), json!(r.zip));
    features
}

fn write_events(path: &Path, rows: &[Row]) {
    let mut text = String::new();
    for (i, r) in rows.iter().enumerate() {
        let mut features = features_json(r);
        if r.age.is_none() && i % 2 == 0 {
            features.insert("age".into(), Value::Null);
        }
        let event = json!({"model": "churn", "id": format!("req-{i}"), "features": features,
            "prediction": r.score, "label": r.label});
        text += &format!("{event}\n");
    }
    // Another model's events in the same log are skipped.
    text += "{\"model\":\"fraud\",\"features\":{\"age\":1000}}\n";
    fs::write(path, text).unwrap();
}

fn write_flat(path: &Path, rows: &[Row]) {
    let mut text = String::new();
    for r in rows {
        let mut row = features_json(r);
        row.insert("prediction".into(), json!(r.score));
        row.insert("label".into(), json!(r.label));
        text += &format!("{}\n", Value::Object(row));
    }
    fs::write(path, text).unwrap();
}

fn build_file(path: &Path, options: &BuildOptions) -> Result<Built, BuildError> {
    let out = path.with_extension("baseline.json");
    builder::build_command(&Input::Path(path.to_path_buf()), None, options, &out)
}

fn numeric(b: &Baseline, name: &str) -> (Vec<f64>, Option<u64>) {
    match &b.feature(name).unwrap().1.distribution {
        Distribution::Numeric { values, population } => (values.clone(), *population),
        other => panic!("{name} is not numeric: {other:?}"),
    }
}

fn categorical(b: &Baseline, name: &str) -> BTreeMap<String, u64> {
    match &b.feature(name).unwrap().1.distribution {
        Distribution::Categorical { counts } => counts.clone(),
        other => panic!("{name} is not categorical: {other:?}"),
    }
}

/// CSV, event-schema JSON lines and flat JSON lines of the same rows give
/// the same features, prediction and metrics; each snapshot reloads with
/// the same id, and inspect reports what is in it.
#[test]
fn csv_and_json_lines_round_trip_to_the_same_distributions() {
    let dir = scratch("round-trip");
    let data = rows(2_000);
    let (csv, events, flat) = (
        dir.join("train.csv"),
        dir.join("events.jsonl"),
        dir.join("flat.ndjson"),
    );
    write_csv(&csv, &data);
    write_events(&events, &data);
    write_flat(&flat, &data);
    let options = BuildOptions::new("churn");
    let built: Vec<Built> = [&csv, &events, &flat]
        .iter()
        .map(|p| build_file(p, &options).unwrap())
        .collect();

    for (b, path) in built.iter().zip([&csv, &events, &flat]) {
        let b = &b.baseline;
        let loaded = Baseline::load(&path.with_extension("baseline.json")).unwrap();
        assert_eq!(loaded.id, b.id);
        assert!(&loaded == b, "{} reloads differently", path.display());
        assert_eq!(b.source.rows, 2_000);
        let hash = b.source.content_hash.as_deref().unwrap();
        assert!(
            hash.starts_with("sha256:") && hash.len() == 7 + 64,
            "{hash}"
        );
    }
    let names: Vec<&str> = built[0]
        .baseline
        .features
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["age", "plan", "charges", "active", "zip"],
        "CSV header order"
    );
    let reference = &built[0].baseline;
    let by_name = |b: &Baseline| {
        let mut features = b.features.clone();
        features.sort_by(|x, y| x.name.cmp(&y.name));
        features
    };
    for other in &built[1..] {
        // JSON objects may list keys in another order; the content agrees.
        let same = |a: &Baseline, b: &Baseline| {
            by_name(a) == by_name(b) && a.prediction == b.prediction && a.metrics == b.metrics
        };
        assert!(
            same(&other.baseline, reference),
            "{} differs from the CSV's",
            other.baseline.source.input
        );
    }

    let missing_age = data.iter().filter(|r| r.age.is_none()).count() as u64;
    let age = reference.feature("age").unwrap().1;
    assert_eq!(age.missing, missing_age);
    assert_eq!(age.present(), 2_000 - missing_age);
    assert_eq!(
        categorical(reference, "active").keys().collect::<Vec<_>>(),
        ["false", "true"]
    );
    // Scores in [0, 1] against 0/1 labels: accuracy at 0.5, with n.
    let expected = data
        .iter()
        .filter(|r| (r.score > 0.5) == (r.label == 1))
        .count() as f64
        / 2_000.0;
    assert_eq!(
        reference.metrics.accuracy,
        Some(MetricValue {
            value: expected,
            n: 2_000
        })
    );
    assert!(
        built[0].notes.iter().any(|n| n.contains("above 0.5")),
        "{:?}",
        built[0].notes
    );
    assert!(
        built[1]
            .notes
            .iter()
            .any(|n| n.contains("skipped 1 events")),
        "{:?}",
        built[1].notes
    );

    let summary = inspect::inspect(&csv.with_extension("baseline.json")).unwrap();
    assert_eq!(summary.id, reference.id);
    let DistributionSummary::Numeric {
        present, min, max, ..
    } = summary.features[0].distribution
    else {
        panic!("age should be numeric")
    };
    assert_eq!(present, 2_000 - missing_age);
    let ages: Vec<u64> = data.iter().filter_map(|r| r.age).collect();
    assert_eq!(min, *ages.iter().min().unwrap() as f64);
    assert_eq!(max, *ages.iter().max().unwrap() as f64);
    let text = summary.to_string();
    for needle in [
        "churn",
        "age",
        "numeric",
        "categorical",
        "median",
        "accuracy",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    let _ = fs::remove_dir_all(dir);
}

/// Kinds follow the inference rule and give way to --categorical and
/// --numeric; --features picks and orders the features.
#[test]
fn kinds_are_inferred_and_overridden() {
    let dir = scratch("kinds");
    let csv = dir.join("train.csv");
    write_csv(&csv, &rows(500));
    let built = build_file(&csv, &BuildOptions::new("churn"))
        .unwrap()
        .baseline;
    assert!(matches!(
        built.feature("zip").unwrap().1.distribution,
        Distribution::Numeric { .. }
    ));

    let options = BuildOptions {
        categorical: vec!["zip".into()],
        numeric: vec!["active".into()],
        features: Some(vec!["zip".into(), "active".into(), "plan".into()]),
        ..BuildOptions::new("churn")
    };
    let built = build_file(&csv, &options).unwrap().baseline;
    let names: Vec<&str> = built.features.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["zip", "active", "plan"]);
    let zips = categorical(&built, "zip");
    assert_eq!(zips.len(), 5);
    assert!(zips.contains_key("10000"), "{zips:?}");
    // A boolean read as a number is 1 or 0, as the event decoder reads it.
    let (active, _) = numeric(&built, "active");
    assert!(active.iter().all(|v| *v == 0.0 || *v == 1.0));

    // A text value makes a column categorical; --numeric makes it an error
    // that names the line and the column.
    let mixed = dir.join("mixed.csv");
    fs::write(&mixed, "age,plan\n30,a\n31,b\nforty,a\n").unwrap();
    let built = build_file(&mixed, &BuildOptions::new("m"))
        .unwrap()
        .baseline;
    assert_eq!(categorical(&built, "age").len(), 3);
    let options = BuildOptions {
        numeric: vec!["age".into()],
        ..BuildOptions::new("m")
    };
    let err = build_file(&mixed, &options).unwrap_err().to_string();
    assert!(
        err.contains("mixed.csv:4:") && err.contains("\"age\"") && err.contains("forty"),
        "{err}"
    );
    let _ = fs::remove_dir_all(dir);
}

/// Beyond --max-sample a numeric feature keeps a uniform reservoir sample:
/// the same seed gives the same sample, another seed another one, and the
/// file records the population.
#[test]
fn reservoir_samples_are_seeded_and_record_the_population() {
    let dir = scratch("reservoir");
    let csv = dir.join("big.csv");
    let mut text = String::from("x,y\n");
    for i in 0..50_000 {
        text += &format!("{i},{}\n", i % 7);
    }
    fs::write(&csv, text).unwrap();
    let options = |seed| BuildOptions {
        max_sample: 1_000,
        seed,
        ..BuildOptions::new("m")
    };
    let a = build_file(&csv, &options(1)).unwrap();
    let b = build_file(&csv, &options(1)).unwrap();
    let c = build_file(&csv, &options(2)).unwrap();
    let (xa, population) = numeric(&a.baseline, "x");
    assert_eq!(xa.len(), 1_000);
    assert_eq!(population, Some(50_000));
    assert_eq!(a.baseline.id, b.baseline.id, "same seed, same baseline");
    assert_ne!(
        numeric(&c.baseline, "x").0,
        xa,
        "another seed, another sample"
    );
    // Uniform over 0..50000: the sample mean is near 25000 (sd ≈ 456).
    let mean = xa.iter().sum::<f64>() / 1_000.0;
    assert!((mean - 25_000.0).abs() < 2_500.0, "{mean}");
    assert!(a.notes.iter().any(|n| n.contains("sampled 1000 of 50000")));
    // The missing rate compares the population, not the sample, with the
    // missing count.
    assert_eq!(a.baseline.feature("x").unwrap().1.present(), 50_000);

    let loaded = Baseline::load(&csv.with_extension("baseline.json")).unwrap();
    let summary = inspect::summarize(&loaded).to_string();
    assert!(summary.contains("sampled 1,000 of 50,000"), "{summary}");
    let _ = fs::remove_dir_all(dir);
}

/// Broken input is an error that names the file and line (and, for JSON,
/// the column); nothing is written.
#[test]
fn malformed_input_names_the_line() {
    let dir = scratch("malformed");
    let csv = dir.join("bad.csv");
    fs::write(&csv, "a,b,c\n1,2,3\n4,5,6\n7,8\n").unwrap();
    let err = build_file(&csv, &BuildOptions::new("m")).unwrap_err();
    assert!(
        matches!(
            err,
            BuildError::FieldCount {
                line: 4,
                expected: 3,
                found: 2,
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.starts_with(&format!("{}:4:", csv.display())), "{text}");
    assert!(!csv.with_extension("baseline.json").exists());

    let jsonl = dir.join("bad.jsonl");
    fs::write(&jsonl, "{\"a\": 1}\n\n{\"a\": 2,, }\n").unwrap();
    let err = build_file(&jsonl, &BuildOptions::new("m")).unwrap_err();
    assert!(
        matches!(
            err,
            BuildError::Syntax {
                line: 3,
                column: Some(9),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("bad.jsonl:3:9: invalid JSON"),
        "{err}"
    );

    let nested = dir.join("nested.jsonl");
    fs::write(&nested, "{\"a\": 1}\n{\"a\": [1]}\n").unwrap();
    let err = build_file(&nested, &BuildOptions::new("m"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nested.jsonl:2: column \"a\": expected a number"),
        "{err}"
    );

    let empty = dir.join("empty.csv");
    fs::write(&empty, "").unwrap();
    let err = build_file(&empty, &BuildOptions::new("m")).unwrap_err();
    assert!(matches!(err, BuildError::Empty { .. }), "{err:?}");
    fs::write(&empty, "a,b\n").unwrap();
    let err = build_file(&empty, &BuildOptions::new("m")).unwrap_err();
    assert!(err.to_string().contains("no data rows"), "{err}");

    let options = BuildOptions {
        label_column: Some("target".into()),
        ..BuildOptions::new("m")
    };
    let err = build_file(&dir.join("bad.csv"), &options).unwrap_err();
    assert!(
        err.to_string()
            .contains("--label-column names column \"target\""),
        "{err}"
    );
    assert!(err.to_string().contains("it has: a, b, c"), "{err}");
    let _ = fs::remove_dir_all(dir);
}

/// Missing values in every spelling are counted, never sampled: empty
/// cells, pandas' NA tokens, NaN and inf in CSV; null, absent keys and
/// Python's bare NaN in JSON lines.
#[test]
fn missing_values_are_counted_per_feature() {
    let dir = scratch("missing");
    let csv = dir.join("m.csv");
    fs::write(&csv, "x,c\n1,a\n,b\nNA,\nNaN,None\ninf,a\n2,n/a\n").unwrap();
    let b = build_file(&csv, &BuildOptions::new("m")).unwrap().baseline;
    let x = b.feature("x").unwrap().1;
    assert_eq!((x.present(), x.missing), (2, 4));
    assert_eq!(numeric(&b, "x").0, [1.0, 2.0]);
    let c = b.feature("c").unwrap().1;
    assert_eq!((c.present(), c.missing), (3, 3));

    let jsonl = dir.join("m.jsonl");
    fs::write(
        &jsonl,
        "{\"x\": 1, \"c\": \"a\"}\n{\"x\": null}\n{\"x\": NaN, \"c\": \"b\"}\n{\"x\": 3, \"new\": true}\n",
    )
    .unwrap();
    let b = build_file(&jsonl, &BuildOptions::new("m"))
        .unwrap()
        .baseline;
    let get = |name| {
        let f = b.feature(name).unwrap().1;
        (f.present(), f.missing)
    };
    assert_eq!(get("x"), (2, 2));
    assert_eq!(get("c"), (2, 2));
    assert_eq!(
        get("new"),
        (1, 3),
        "a column first seen late was missing before"
    );
    let _ = fs::remove_dir_all(dir);
}

/// A column that has shown more distinct numbers than are counted, then a
/// text, is an error pointing at --categorical rather than thousands of
/// useless categories.
#[test]
fn a_late_text_in_a_high_cardinality_numeric_column_is_an_error() {
    let dir = scratch("late-text");
    let csv = dir.join("t.csv");
    let mut text = String::from("amount\n");
    for i in 0..(builder::NUMERIC_CATEGORY_LIMIT + 5) {
        text += &format!("{i}.5\n");
    }
    text += "forty\n";
    fs::write(&csv, text).unwrap();
    let err = build_file(&csv, &BuildOptions::new("m"))
        .unwrap_err()
        .to_string();
    let line = builder::NUMERIC_CATEGORY_LIMIT + 7;
    assert!(
        err.contains(&format!(
            "t.csv:{line}: column \"amount\": expected a number"
        )),
        "{err}"
    );
    assert!(err.contains("--categorical amount"), "{err}");
    let _ = fs::remove_dir_all(dir);
}

/// Regression metrics when predictions and labels are real numbers.
#[test]
fn regression_metrics_from_real_predictions() {
    let dir = scratch("regression");
    let csv = dir.join("r.csv");
    fs::write(&csv, "x,y_hat,y\n1,2.5,2\n2,3.0,4\n3,,5\n").unwrap();
    let options = BuildOptions {
        prediction_column: Some("y_hat".into()),
        label_column: Some("y".into()),
        ..BuildOptions::new("m")
    };
    let b = build_file(&csv, &options).unwrap().baseline;
    assert_eq!(b.metrics.mae, Some(MetricValue { value: 0.75, n: 2 }));
    let rmse = ((0.25f64 + 1.0) / 2.0).sqrt();
    assert_eq!(b.metrics.rmse, Some(MetricValue { value: rmse, n: 2 }));
    assert_eq!(b.features.len(), 1);
    assert!(matches!(b.prediction, Some(Distribution::Numeric { .. })));
    let _ = fs::remove_dir_all(dir);
}

/// The command line builds from a file and from stdin and inspects, as
/// text and as JSON.
#[test]
fn the_binary_builds_and_inspects() {
    let dir = scratch("binary");
    let csv = dir.join("train.csv");
    write_csv(&csv, &rows(300));
    let out = dir.join("b.json");
    let status = Command::new(env!("CARGO_BIN_EXE_driftwarden"))
        .args(["baseline", "build", "--model", "churn", "--version", "v7"])
        .args(["--categorical", "zip", "--max-sample", "100", "--seed", "3"])
        .arg("--input")
        .arg(&csv)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert!(status.status.success(), "{stderr}");
    assert!(stderr.contains("5 features from 300 rows"), "{stderr}");
    let b = Baseline::load(&out).unwrap();
    assert_eq!(b.model_version.as_deref(), Some("v7"));
    assert_eq!(numeric(&b, "age").0.len(), 100);

    let inspect = Command::new(env!("CARGO_BIN_EXE_driftwarden"))
        .args(["baseline", "inspect"])
        .arg(&out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(inspect.status.success());
    assert!(
        text.contains(&b.id) && text.contains("sampled 100 of"),
        "{text}"
    );
    assert!(
        text.contains("zip") && text.contains("categorical"),
        "{text}"
    );

    let json = Command::new(env!("CARGO_BIN_EXE_driftwarden"))
        .args(["baseline", "inspect", "--json"])
        .arg(&out)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["id"], json!(b.id));
    assert_eq!(v["features"][0]["kind"], json!("numeric"));

    // stdin, format sniffed; an error exits non-zero with the line.
    let mut child = Command::new(env!("CARGO_BIN_EXE_driftwarden"))
        .args(["baseline", "build", "--model", "m", "-i", "-", "-o"])
        .arg(dir.join("stdin.json"))
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"x\": 1}\n{\"x\": }\n")
        .unwrap();
    let failed = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success());
    assert!(stderr.contains("<stdin>:2:"), "{stderr}");
    let _ = fs::remove_dir_all(dir);
}

/// The format can be forced, and the inference of the format by extension
/// covers the usual names.
#[test]
fn formats_by_extension_and_override() {
    assert_eq!(
        InputFormat::from_path(Path::new("a.CSV")),
        Some(InputFormat::Csv)
    );
    assert_eq!(
        InputFormat::from_path(Path::new("a.ndjson")),
        Some(InputFormat::JsonLines)
    );
    assert_eq!(InputFormat::from_path(Path::new("a.txt")), None);
    let dir = scratch("format");
    let txt = dir.join("rows.txt");
    fs::write(&txt, "{\"x\": 1}\n{\"x\": 2}\n").unwrap();
    let b = build_file(&txt, &BuildOptions::new("m")).unwrap().baseline;
    assert_eq!(numeric(&b, "x").0, [1.0, 2.0]);
    let forced = builder::build_command(
        &Input::Path(txt.clone()),
        Some(InputFormat::Csv),
        &BuildOptions::new("m"),
        &dir.join("forced.json"),
    )
    .unwrap()
    .baseline;
    // Read as CSV, the first line is the header.
    assert_eq!(forced.features[0].name, "{\"x\": 1}");
    let _ = fs::remove_dir_all(dir);
}
