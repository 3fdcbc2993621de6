//! The baseline store and its API on a real HTTP server (the service's own
//! router and state, fed events directly): selection by model_version,
//! replacing a baseline while keeping windows, reloading a changed file,
//! capturing from traffic, and the bearer token, body limit and JSON errors
//! of the changing routes.

#[path = "support/service.rs"]
mod service;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use driftwarden::baseline::{Baseline, Distribution};
use driftwarden::demo::generator::Generator;
use driftwarden::event::decode_message;
use driftwarden::monitor::{Outputs, Position};
use driftwarden::service::{Readiness, Shared, setup};
use driftwarden::telemetry::Metrics;
use service::{START_MS, Scratch};

const TOKEN: &str = "s3cret-token";
const WINDOW: usize = 300;

/// The service's API over the monitor built from `config`, with no Kafka.
struct Api {
    address: SocketAddr,
    shared: Shared,
    _scratch: Scratch,
    store: std::path::PathBuf,
    baseline: Baseline,
    baseline_path: std::path::PathBuf,
}

impl Api {
    async fn start(name: &str, token: Option<&str>, extra: &str) -> Api {
        let scratch = Scratch::new(name);
        let (baseline, baseline_path) = service::sample_baseline(&scratch.0, 2000);
        let store = scratch.0.join("store");
        let token_line = token.map_or(String::new(), |t| format!("api_token = \"{t}\""));
        let text = format!(
            "[service]\nhttp_listen = \"127.0.0.1:0\"\n{token_line}\n\
             [monitor]\nwindow_size = {WINDOW}\nmin_window = 100\n\
             [baselines]\ndir = \"{}\"\nreload_interval = \"0s\"\n{extra}\n\
             [[models]]\nname = \"churn\"\nbaseline = \"{}\"\n",
            store.display(),
            baseline_path.display()
        );
        let config = driftwarden::config::load_str(&text, std::iter::empty(), &[])
            .unwrap_or_else(|e| panic!("{e}"));
        let (monitor, files) = setup::build_monitor(&config).unwrap();
        let shared = Shared {
            monitor: Arc::new(Mutex::new(monitor)),
            metrics: Arc::new(Metrics::new()),
            readiness: Arc::new(Readiness::default()),
            dispatcher: Arc::new(setup::build_dispatcher(&config).unwrap()),
            baselines: Arc::new(files),
            episodes: Arc::default(),
        };
        let history = driftwarden::api::spawn_history(shared.clone(), Duration::from_secs(1), 10);
        let app =
            driftwarden::api::router(shared.clone(), config.service.api_token.clone(), history);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Api {
            address,
            shared,
            _scratch: scratch,
            store,
            baseline,
            baseline_path,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Applies `n` generated events (all of model_version 2026-11-30).
    fn feed(&self, seed: u64, n: usize, drifted: bool) {
        let mut generator = Generator::new(seed, START_MS, service::test_plan());
        let mut monitor = self.shared.monitor.lock().unwrap();
        let mut out = Outputs::default();
        for i in 0..n {
            let payload = serde_json::to_vec(&generator.event(drifted)).unwrap();
            let events = {
                let lookup = |m: &str, v: Option<&str>| monitor.layout(m, v);
                decode_message(&payload, 0, 1 << 20, &lookup)
            };
            for event in events {
                let event = event.unwrap();
                let position = Position {
                    partition: 0,
                    offset: i as i64,
                };
                monitor.apply(&event, position, &mut out).unwrap();
            }
        }
    }

    async fn status(&self, path: &str) -> serde_json::Value {
        reqwest::get(self.url(path))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// The window fill of one feature in a model status document.
fn fill(status: &serde_json::Value, feature: &str) -> u64 {
    status["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == feature && c["test"] == "ks")
        .and_then(|c| c["n"].as_u64())
        .unwrap()
}

/// The sample baseline with `monthly_charges` shifted by `by`.
fn shifted(baseline: &Baseline, by: f64) -> Baseline {
    let mut next = baseline.clone();
    for feature in &mut next.features {
        if feature.name == "monthly_charges"
            && let Distribution::Numeric { values, .. } = &mut feature.distribution
        {
            values.iter_mut().for_each(|v| *v += by);
        }
    }
    next.id.clear();
    next.source.input = "shifted copy".into();
    Baseline::new(next).unwrap()
}

async fn error_of(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.expect("errors are JSON");
    (
        status,
        body["error"]
            .as_str()
            .expect("an error message")
            .to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_routes_refuse_requests_without_the_token() {
    let api = Api::start("api-auth", Some(TOKEN), "").await;
    let client = reqwest::Client::new();
    let capture = api.url("/api/v1/models/churn/baseline/capture");
    let body = serde_json::json!({ "version": "v9" });

    let (status, message) = error_of(client.post(&capture).json(&body).send().await.unwrap()).await;
    assert_eq!(status, 401, "{message}");
    assert!(message.contains("bearer token"), "{message}");
    let wrong = client
        .post(&capture)
        .bearer_auth("not-the-token")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(wrong).await.0, 401);
    let put = client
        .put(api.url("/api/v1/models/churn/baseline"))
        .body(serde_json::to_vec(&api.baseline).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(put).await.0, 401);
    assert!(!api.store.exists(), "nothing was written without the token");

    // Reading stays open.
    let shown = api.status("/api/v1/models/churn/baseline").await;
    assert_eq!(shown["active"][0]["baseline_id"], api.baseline.id.as_str());

    // Without a configured token, changing routes are disabled outright.
    let closed = Api::start("api-no-token", None, "").await;
    let refused = client
        .post(closed.url("/api/v1/models/churn/baseline/capture"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let (status, message) = error_of(refused).await;
    assert_eq!(status, 403);
    assert!(message.contains("service.api_token"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors_and_change_nothing() {
    let api = Api::start("api-bad", Some(TOKEN), "max_upload_bytes = 4096").await;
    let client = reqwest::Client::new();
    let put = |body: Vec<u8>, path: &str| {
        client
            .put(api.url(path))
            .bearer_auth(TOKEN)
            .body(body)
            .send()
    };
    let (status, message) = error_of(
        put(b"{not json".to_vec(), "/api/v1/models/churn/baseline")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(message.contains("<request body>"), "{message}");

    let big = serde_json::to_vec(&api.baseline).unwrap();
    assert!(big.len() > 4096);
    let (status, message) =
        error_of(put(big, "/api/v1/models/churn/baseline").await.unwrap()).await;
    assert_eq!(status, 413, "{message}");

    let mut other = api.baseline.clone();
    other.model = "fraud".into();
    other.features.truncate(1);
    if let Distribution::Numeric { values, .. } = &mut other.features[0].distribution {
        values.truncate(20);
    }
    other.prediction = None;
    other.id.clear();
    let other = Baseline::new(other).unwrap();
    let (status, message) = error_of(
        put(
            serde_json::to_vec(&other).unwrap(),
            "/api/v1/models/churn/baseline",
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 422);
    assert!(message.contains("\"fraud\""), "{message}");

    let (status, _) = error_of(
        put(
            serde_json::to_vec(&other).unwrap(),
            "/api/v1/models/fraud/baseline",
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 404);

    let capture = |body: serde_json::Value| {
        client
            .post(api.url("/api/v1/models/churn/baseline/capture"))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
    };
    let (status, message) = error_of(
        capture(serde_json::json!({ "version": "../escape" }))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422);
    assert!(message.contains("store file"), "{message}");
    let (status, message) = error_of(
        capture(serde_json::json!({ "version": "v2" }))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422, "an empty window cannot be captured");
    assert!(message.contains("no values"), "{message}");
    let (status, _) = error_of(
        capture(serde_json::json!({ "versio": "v2" }))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422, "unknown fields are refused");
    let (status, message) = error_of(
        capture(serde_json::json!({ "version": "v2", "events": WINDOW + 1 }))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422);
    assert!(message.contains("window size"), "{message}");

    let id = api.status("/api/v1/models/churn").await["baseline_id"].clone();
    assert_eq!(id, api.baseline.id.as_str(), "nothing changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_baseline_keeps_the_windows_and_is_written_to_its_file() {
    let api = Api::start("api-put", Some(TOKEN), "").await;
    api.feed(7, 500, false);
    let before = api.status("/api/v1/models/churn").await;
    assert_eq!(fill(&before, "monthly_charges"), WINDOW as u64);
    assert_eq!(
        before["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["drifted"] == true)
            .count(),
        0
    );

    let next = shifted(&api.baseline, 40.0);
    let response = reqwest::Client::new()
        .put(api.url("/api/v1/models/churn/baseline"))
        .bearer_auth(TOKEN)
        .body(serde_json::to_vec(&next).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let installed: serde_json::Value = response.json().await.unwrap();
    assert_eq!(installed["baseline_id"], next.id.as_str());
    assert_eq!(installed["previous_baseline_id"], api.baseline.id.as_str());

    let after = api.status("/api/v1/models/churn").await;
    assert_eq!(after["baseline_id"], next.id.as_str());
    assert_eq!(after["events"], before["events"]);
    assert_eq!(
        fill(&after, "monthly_charges"),
        WINDOW as u64,
        "the window was rebuilt from its values, not emptied"
    );
    // The file is the source of truth: a restart reads the new baseline.
    assert_eq!(Baseline::load(&api.baseline_path).unwrap().id, next.id);

    // The kept window now differs from the new baseline at the next check.
    api.feed(8, 1, false);
    let checked = api.status("/api/v1/models/churn").await;
    let charges = checked["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "monthly_charges")
        .unwrap()
        .clone();
    assert_eq!(charges["drifted"], true, "{charges}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_file_is_reloaded_and_a_broken_one_is_refused() {
    let api = Api::start("api-reload", Some(TOKEN), "").await;
    api.feed(9, 400, false);
    let files = Arc::clone(&api.shared.baselines);
    let monitor = Arc::clone(&api.shared.monitor);
    assert!(
        files.reload_changed(&monitor).is_empty(),
        "nothing changed yet"
    );

    // A broken file: reported, the baseline in use stays.
    std::fs::write(&api.baseline_path, b"{ truncated").unwrap();
    let reloads = files.reload_changed(&monitor);
    assert!(
        matches!(
            &reloads[..],
            [driftwarden::service::baselines::Reload::Failed { .. }]
        ),
        "{reloads:?}"
    );
    let status = api.status("/api/v1/models/churn").await;
    assert_eq!(status["baseline_id"], api.baseline.id.as_str());
    let shown = api.status("/api/v1/models/churn/baseline").await;
    assert!(
        shown["files"][0]["error"]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{shown}"
    );

    // A good file: swapped in, windows kept.
    let next = shifted(&api.baseline, 1.0);
    next.save(&api.baseline_path).unwrap();
    let reloads = files.reload_changed(&monitor);
    assert!(
        matches!(&reloads[..], [driftwarden::service::baselines::Reload::Replaced { id, .. }] if *id == next.id),
        "{reloads:?}"
    );
    let status = api.status("/api/v1/models/churn").await;
    assert_eq!(status["baseline_id"], next.id.as_str());
    assert_eq!(fill(&status, "monthly_charges"), WINDOW as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_becomes_the_baseline_of_its_version() {
    let api = Api::start("api-capture", Some(TOKEN), "").await;
    let client = reqwest::Client::new();
    api.feed(10, 500, true);
    let response = client
        .post(api.url("/api/v1/models/churn/baseline/capture"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "version": "2026-11-30" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["captured"]["values"]["monthly_charges"], WINDOW as u64);

    // Written to the store under the version, with the version inside.
    let path = api.store.join("churn@2026-11-30.json");
    let captured = Baseline::load(&path).unwrap();
    assert_eq!(body["installed"]["baseline_id"], captured.id.as_str());
    assert_eq!(captured.model_version.as_deref(), Some("2026-11-30"));
    assert_eq!(captured.features.len(), api.baseline.features.len());
    assert!(captured.metrics.accuracy.is_none());

    // Events of that version now go to its own monitor; the default keeps
    // its windows and its baseline.
    api.feed(11, 150, true);
    let version = api.status("/api/v1/models").await["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model_version"] == "2026-11-30")
        .cloned()
        .expect("a monitor for the version");
    assert_eq!(version["baseline_id"], captured.id.as_str());
    assert_eq!(version["events"], 150);
    assert_eq!(
        version["firing"], 0,
        "drifted traffic matches a baseline captured from it"
    );
    let default = api.status("/api/v1/models/churn").await;
    assert_eq!(default["baseline_id"], api.baseline.id.as_str());
    assert_eq!(default["events"], 500);

    // The next N events: accepted at once, done when they have arrived.
    let response = client
        .post(api.url("/api/v1/models/churn/baseline/capture"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "version": "2026-11-30", "events": 100 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pending = api.status("/api/v1/models/churn/baseline").await;
    assert_eq!(pending["captures"][0]["state"], "pending", "{pending}");
    api.feed(12, 100, false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let done = loop {
        let shown = api.status("/api/v1/models/churn/baseline").await;
        if shown["captures"][0]["state"] != "pending" {
            break shown;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "capture never finished: {shown}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done["captures"][0]["state"], "done", "{done}");
    let recaptured = Baseline::load(&path).unwrap();
    assert_eq!(
        done["captures"][0]["installed"]["baseline_id"],
        recaptured.id.as_str()
    );
    let charges = recaptured.feature("monthly_charges").unwrap().1;
    assert_eq!(charges.present(), 100, "exactly the next 100 events");
}

#[test]
fn store_files_of_other_models_or_versions_are_refused() {
    let scratch = Scratch::new("store-check");
    let (mut baseline, _) = service::sample_baseline(&scratch.0, 500);
    baseline.model_version = None;
    let slot = driftwarden::baseline::store::Slot {
        model: "churn".into(),
        version: Some("v2".into()),
    };
    let mut tagged = baseline.clone();
    tagged.model_version = Some("v1".into());
    let error = driftwarden::baseline::store::check_slot(&tagged, &slot, Path::new("x.json"))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("\"v1\"") && error.contains("\"v2\""),
        "{error}"
    );
    assert!(
        driftwarden::baseline::store::check_slot(&baseline, &slot, Path::new("x.json")).is_ok()
    );
}
