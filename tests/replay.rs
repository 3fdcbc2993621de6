//! `driftwarden replay` over generated streams whose `monthly_charges` and
//! `plan` drift for a while: the drifted features fire and resolve at the
//! right place, one JSON line is written per check, the output is
//! byte-identical run to run and whatever the file order, malformed lines
//! are counted by reason, CSV replays like JSON lines, and the verdicts are
//! exactly those of the live monitor applying the same events.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use driftwarden::alert::Notification;
use driftwarden::baseline::Baseline;
use driftwarden::config::{self, Config};
use driftwarden::demo::generator::{CATEGORICAL, DriftPlan, Generator, NUMERIC};
use driftwarden::event::{FeatureLayout, decode_event};
use driftwarden::monitor::{Outputs, Position};
use driftwarden::replay::timeline::{Change, TimelineEntry};
use driftwarden::replay::{self, Record, ReplayOptions, ReplaySummary, input, setup};
use serde_json::Value;

const START_MS: i64 = 1_796_292_000_000;
const EVENTS: usize = 7_000;
const DRIFT: std::ops::Range<usize> = 3_000..4_500;

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("driftwarden-replay-{name}-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Only the inputs drift, so exactly `monthly_charges` and `plan` should.
fn plan() -> DriftPlan {
    DriftPlan {
        prediction_follows_inputs: false,
        ..DriftPlan::default()
    }
}

fn baseline() -> Baseline {
    Generator::new(0xBA5E, START_MS, plan())
        .baseline(5_000)
        .unwrap()
}

/// The events as JSON lines, in time order.
fn event_lines() -> Vec<String> {
    let mut generator = Generator::new(17, START_MS, plan());
    (0..EVENTS)
        .map(|i| generator.event(DRIFT.contains(&i)).to_string())
        .collect()
}

/// The built-in defaults with the generated baseline written to `dir`.
fn setup_in(dir: &Path) -> (Config, PathBuf) {
    let path = dir.join("churn.json");
    baseline().save(&path).unwrap();
    (config::load_str("", std::iter::empty(), &[]).unwrap(), path)
}

/// Replays lines (numbered from 1) with the defaults; returns the summary
/// and the check lines written.
fn replay_lines(lines: &[String], config: &Config, baseline: &Path) -> (ReplaySummary, Vec<u8>) {
    let loaded = Baseline::load(baseline).unwrap();
    let mut monitor = setup::build_monitor(config, &[(baseline.to_path_buf(), loaded)]).unwrap();
    let records = lines.iter().enumerate().map(|(i, l)| Record {
        line: i as u64 + 1,
        bytes: l.as_bytes(),
    });
    let mut checks = Vec::new();
    let summary = replay::run(
        records,
        &mut monitor,
        &ReplayOptions::default(),
        Some(&mut checks),
    )
    .unwrap();
    (summary, checks)
}

struct Reference {
    summary: ReplaySummary,
    checks: Vec<u8>,
}

/// The sorted, clean stream replayed once and shared by the tests that
/// compare against it (each replay calibrates thresholds, which takes a
/// second or two).
fn reference() -> &'static Reference {
    static REFERENCE: OnceLock<Reference> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        let dir = scratch("reference");
        let (config, path) = setup_in(&dir);
        let (summary, checks) = replay_lines(&event_lines(), &config, &path);
        Reference { summary, checks }
    })
}

/// Line numbers (and the window offsets derived from them) depend on
/// the file's layout; everything else must not.
fn without_lines(entries: &[TimelineEntry]) -> Vec<TimelineEntry> {
    entries
        .iter()
        .cloned()
        .map(|e| TimelineEntry { line: 0, ..e })
        .collect()
}

fn without_offsets(notifications: &[Notification]) -> Vec<Notification> {
    let mut out = notifications.to_vec();
    for n in &mut out {
        for a in &mut n.alerts {
            a.evidence.offsets = None;
        }
    }
    out
}

fn features(entries: &[TimelineEntry], change: Change) -> BTreeSet<String> {
    entries
        .iter()
        .filter(|e| e.change == change)
        .flat_map(|e| e.alerts.iter().map(|a| a.feature.clone()))
        .collect()
}

/// The binary replays a JSON lines file: the timeline names the drifted
/// features firing after the drift starts and resolving after it ends,
/// with statistic, p-value and threshold; one JSON line per check.
#[test]
fn replay_shows_the_drift_firing_and_resolving() {
    let dir = scratch("binary");
    let (_, baseline) = setup_in(&dir);
    let events = dir.join("events.jsonl");
    fs::write(&events, event_lines().join("\n") + "\n").unwrap();
    let checks = dir.join("checks.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_driftwarden"))
        .arg("replay")
        .arg(&events)
        .arg("--baseline")
        .arg(&baseline)
        .arg("--output")
        .arg(&checks)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let r = reference();
    let fired = features(&r.summary.timeline, Change::Fired);
    assert_eq!(
        fired,
        BTreeSet::from(["monthly_charges".into(), "plan".into()])
    );
    assert_eq!(features(&r.summary.timeline, Change::Resolved), fired);
    let first = r.summary.timeline.iter().find(|e| e.is_fired()).unwrap();
    assert!(
        first.event_index > DRIFT.start as u64 && first.event_index < DRIFT.start as u64 + 1_000,
        "fired at {}",
        first.event_index
    );
    assert!(
        first
            .alerts
            .iter()
            .all(|a| a.p_value.is_some_and(|p| p < 1e-6))
    );
    assert!(
        first.retrain.is_some(),
        "a retraining trigger with the first firing"
    );
    let resolved = r.summary.timeline.iter().find(|e| e.is_resolved()).unwrap();
    assert!(resolved.event_index > DRIFT.end as u64);

    for needle in [
        "FIRED",
        "RESOLVED",
        "monthly_charges",
        "plan",
        "threshold",
        "events/s",
    ] {
        assert!(stdout.contains(needle), "{needle} missing from:\n{stdout}");
    }
    let written = fs::read(&checks).unwrap();
    assert_eq!(
        written, r.checks,
        "the binary writes what the library computes"
    );
    let lines: Vec<Value> = written
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(Some(lines.len() as u64), r.summary.checks);
    let keys: Vec<&String> = lines[0].as_object().unwrap().keys().collect();
    let mut expected = [
        "model",
        "feature",
        "event_index",
        "timestamp",
        "n",
        "m",
        "statistic",
        "threshold",
        "drifted",
    ];
    expected.sort_unstable();
    assert_eq!(keys, expected);
    let drifted_charges = lines.iter().any(|l| {
        l["feature"] == "monthly_charges"
            && l["drifted"] == true
            && l["event_index"].as_u64() > Some(3_000)
    });
    assert!(drifted_charges);
    assert!(
        lines
            .iter()
            .filter(|l| l["event_index"].as_u64() < Some(3_000))
            .all(|l| l["drifted"] == false || l["feature"].as_str().unwrap().ends_with("rate")),
        "no feature drifts before the drift starts"
    );

    let timeline_only = Command::new(env!("CARGO_BIN_EXE_driftwarden"))
        .arg("replay")
        .arg(&events)
        .args(["--timeline-only", "--baseline"])
        .arg(&baseline)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&timeline_only.stdout);
    assert!(
        text.contains("FIRED") && !text.contains("events/s"),
        "{text}"
    );
    let _ = fs::remove_dir_all(dir);
}

/// The same events replayed twice give byte-identical output.
#[test]
fn replay_is_deterministic() {
    let dir = scratch("twice");
    let (config, path) = setup_in(&dir);
    let (summary, checks) = replay_lines(&event_lines(), &config, &path);
    let r = reference();
    assert!(checks == r.checks, "check lines differ between two replays");
    assert_eq!(summary.timeline, r.summary.timeline);
    assert_eq!(summary.notifications, r.summary.notifications);
    assert_eq!(summary.retrains, r.summary.retrains);
    let _ = fs::remove_dir_all(dir);
}

/// Events shuffled in the file but carrying their timestamps replay as the
/// sorted file does: the replay is in event-time order.
#[test]
fn shuffled_file_replays_in_event_time_order() {
    let dir = scratch("shuffled");
    let (config, path) = setup_in(&dir);
    let mut lines = event_lines();
    // Fisher–Yates with a fixed linear congruential sequence.
    let mut state = 99u64;
    for i in (1..lines.len()).rev() {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        lines.swap(i, (state >> 33) as usize % (i + 1));
    }
    let (summary, checks) = replay_lines(&lines, &config, &path);
    let r = reference();
    assert!(summary.reordered > 0);
    assert!(
        checks == r.checks,
        "check lines differ from the sorted file's"
    );
    assert_eq!(
        without_lines(&summary.timeline),
        without_lines(&r.summary.timeline)
    );
    assert_eq!(
        without_offsets(&summary.notifications),
        without_offsets(&r.summary.notifications)
    );
    let _ = fs::remove_dir_all(dir);
}

/// Malformed lines are counted by reason with their first line, and do
/// not change what the good ones decide.
#[test]
fn malformed_lines_are_counted_not_fatal() {
    let dir = scratch("malformed");
    let (config, path) = setup_in(&dir);
    let mut lines = event_lines();
    let bad = [
        (10, "{not json"),
        (20, r#"{"model":"fraud","features":{}}"#),
        (30, r#"{"features":{"age":3}}"#),
        (40, r#"{"model":"churn","features":{"age":"old"}}"#),
        (50, r#"{"model":"churn","timestamp":"yesterday"}"#),
        (60, "42"),
        (70, "{not json either"),
    ];
    for (at, line) in bad {
        lines.insert(at, line.to_string());
    }
    let (summary, checks) = replay_lines(&lines, &config, &path);
    let count = |reason: &str| {
        summary
            .rejected
            .get(reason)
            .map(|r| (r.count, r.first_line))
    };
    assert_eq!(count("invalid_json"), Some((2, 11)));
    assert_eq!(count("unknown_model"), Some((1, 21)));
    assert_eq!(count("missing_model"), Some((1, 31)));
    assert_eq!(count("wrong_type"), Some((1, 41)));
    assert_eq!(count("bad_timestamp"), Some((1, 51)));
    assert_eq!(count("not_an_object"), Some((1, 61)));
    assert_eq!(summary.rejected_total(), 7);
    assert_eq!(summary.applied, EVENTS as u64);
    assert!(checks == reference().checks);
    let text = summary.to_string();
    assert!(
        text.contains("invalid_json") && text.contains("first at line 11"),
        "{text}"
    );
    let _ = fs::remove_dir_all(dir);
}

/// The same events as CSV (features as columns plus model, id, timestamp
/// and prediction) replay exactly as the JSON lines do.
#[test]
fn csv_events_replay_like_json_lines() {
    let dir = scratch("csv");
    let (config, path) = setup_in(&dir);
    let columns: Vec<&str> = ["model", "id", "timestamp", "prediction"]
        .into_iter()
        .chain(NUMERIC)
        .chain(CATEGORICAL)
        .collect();
    let mut text = columns.join(",") + "\n";
    for line in event_lines() {
        let event: Value = serde_json::from_str(&line).unwrap();
        let cells: Vec<String> = columns
            .iter()
            .map(|c| {
                let v = event.get(*c).unwrap_or_else(|| &event["features"][*c]);
                v.as_str().map_or_else(|| v.to_string(), str::to_string)
            })
            .collect();
        text += &(cells.join(",") + "\n");
    }
    let loaded = Baseline::load(&path).unwrap();
    let mut monitor = setup::build_monitor(&config, &[(path.clone(), loaded)]).unwrap();
    let records = input::csv_records(text.as_bytes(), "events.csv", &monitor).unwrap();
    let mut checks = Vec::new();
    let summary = replay::run(
        records,
        &mut monitor,
        &ReplayOptions::default(),
        Some(&mut checks),
    )
    .unwrap();
    assert_eq!(summary.rejected_total(), 0, "{:?}", summary.rejected);
    assert!(
        checks == reference().checks,
        "CSV replay differs from JSON lines"
    );
    let _ = fs::remove_dir_all(dir);
}

/// The replay decides exactly what the live monitor decides when the
/// service's own set-up applies the same events one by one.
#[test]
fn replay_matches_the_live_monitor() {
    let dir = scratch("live");
    let (_, path) = setup_in(&dir);
    let text = format!(
        "[[models]]\nname = \"churn\"\nbaseline = {:?}\n",
        path.display().to_string()
    );
    let config = config::load_str(&text, std::iter::empty(), &[]).unwrap();
    let (mut live, _files) = driftwarden::service::setup::build_monitor(&config).unwrap();
    let mut out = Outputs::default();
    for (i, line) in event_lines().iter().enumerate() {
        let event = {
            let lookup = |m: &str, v: Option<&str>| -> Option<&FeatureLayout> { live.layout(m, v) };
            decode_event(line.as_bytes(), 0, &lookup).unwrap()
        };
        let position = Position {
            partition: 0,
            offset: i as i64 + 1,
        };
        live.apply(&event, position, &mut out).unwrap();
    }
    let mut replayed = setup::build_monitor(&config, &[]).unwrap();
    let records = event_lines().into_iter().enumerate().map(|(i, l)| Record {
        line: i as u64 + 1,
        bytes: l,
    });
    let summary = replay::run(records, &mut replayed, &ReplayOptions::default(), None).unwrap();
    assert!(!out.notifications.is_empty());
    assert_eq!(summary.notifications, out.notifications);
    assert_eq!(summary.retrains, out.retrains);
    assert_eq!(summary.checks, None, "no verdicts recorded without a sink");
    let _ = fs::remove_dir_all(dir);
}

/// Label events in the same file (`{"model", "id", "label"}`, as a label
/// topic carries them) go to the monitor's label join, not its windows.
#[test]
fn label_lines_are_joined_not_counted_as_events() {
    let dir = scratch("labels");
    let (config, path) = setup_in(&dir);
    let mut lines: Vec<String> = event_lines().into_iter().take(900).collect();
    for i in 1..=300 {
        let time = START_MS + 10 * (i as i64 - 1) + 5;
        lines.push(format!(
            r#"{{"model":"churn","id":"req-{i}","label":{},"timestamp":{time}}}"#,
            i % 2
        ));
    }
    let (summary, _) = replay_lines(&lines, &config, &path);
    assert_eq!(summary.applied, 900);
    assert_eq!(summary.labels, 300);
    assert_eq!(summary.rejected_total(), 0, "{:?}", summary.rejected);
    assert!(
        summary.reordered > 0,
        "labels were sorted in among the events"
    );
    let _ = fs::remove_dir_all(dir);
}
