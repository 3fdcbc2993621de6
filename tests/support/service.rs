//! Runs the real service in-process for integration tests: writes a
//! configuration file, starts `driftwarden::service::run`, and offers
//! helpers to produce events and read the HTTP API.
//!
//! ```ignore
//! #[path = "support/service.rs"]
//! mod service;
//! ```

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use driftwarden::baseline::Baseline;
use driftwarden::demo::generator::{DriftPlan, Generator};
use driftwarden::service::{self, Handles, ServiceEvent};
use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

/// First event time of test streams.
pub const START_MS: i64 = 1_796_292_000_000;

/// A scratch directory removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "driftwarden-test-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released for a child process
/// or a backend to listen on).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The sample model's baseline, with a prediction that does not follow the
/// drifting inputs (so tests can count exactly which features drift).
pub fn sample_baseline(dir: &Path, rows: usize) -> (Baseline, PathBuf) {
    let baseline = Generator::new(0xBA5E, START_MS, test_plan())
        .baseline(rows)
        .unwrap();
    let path = dir.join("churn.json");
    baseline.save(&path).unwrap();
    (baseline, path)
}

/// Drift in `monthly_charges` (+1 sd) and `plan`'s mix only.
pub fn test_plan() -> DriftPlan {
    DriftPlan {
        prediction_follows_inputs: false,
        ..DriftPlan::default()
    }
}

/// The service's HTTP API, for a service in this process ([`Running`]) or
/// a child process (`support/process.rs`).
#[derive(Debug, Clone)]
pub struct Api {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

impl Api {
    /// GET a JSON document from the API.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        reqwest::get(format!("{}{path}", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// GET text from the API.
    pub async fn get_text(&self, path: &str) -> String {
        reqwest::get(format!("{}{path}", self.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Events applied for `model`, from the API.
    pub async fn events_applied(&self, model: &str) -> u64 {
        let status = self.get_json(&format!("/api/v1/models/{model}")).await;
        status["events"].as_u64().unwrap_or(0)
    }

    /// Waits until the API reports `n` events applied for `model`.
    pub async fn wait_applied(&self, model: &str, n: u64, within: Duration) {
        self.wait_applied_or(model, n, within, &String::new).await
    }

    /// [`Self::wait_applied`], with `explain()` added to the failure (a
    /// child's log, say).
    pub async fn wait_applied_or(
        &self,
        model: &str,
        n: u64,
        within: Duration,
        explain: &dyn Fn() -> String,
    ) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let applied = self.events_applied(model).await;
            if applied >= n {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {applied} of {n} events applied within {within:?}\n{}",
                explain()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The sum of the Prometheus samples of the family `name` that carry
    /// every label pair of `labels`.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        sample(&self.get_text("/metrics").await, name, labels)
    }
}

/// The sum of the samples of `name` in a Prometheus exposition that carry
/// every label pair of `labels`.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (family, rest) = series.split_once('{').unwrap_or((series, ""));
            let all = family == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            all.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// A running service.
pub struct Running {
    pub address: SocketAddr,
    /// Its HTTP API (also reached through `Deref`).
    pub api: Api,
    pub events: broadcast::Receiver<ServiceEvent>,
    pub handles: Handles,
    pub task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Starts the service with the configuration text `toml` (written to
    /// `dir`) and waits until its API listens. Without a `[checkpoint]`
    /// section, checkpoints go to `dir/state`, so that tests never share
    /// (or restore) each other's state.
    pub async fn start(dir: &Path, toml: &str) -> Running {
        let path = dir.join("driftwarden.toml");
        let mut toml = toml.to_string();
        if !toml.contains("[checkpoint]") {
            toml.push_str(&format!(
                "\n[checkpoint]\ndir = \"{}\"\n",
                dir.join("state").display()
            ));
        }
        std::fs::write(&path, toml).unwrap();
        let config = driftwarden::config::load(Some(&path), std::iter::empty(), &[])
            .unwrap_or_else(|e| panic!("test configuration invalid:\n{e}"));
        let handles = Handles::default();
        let mut events = handles.events.subscribe();
        let task = tokio::spawn(service::run(
            config,
            Handles {
                shutdown: handles.shutdown.clone(),
                events: handles.events.clone(),
                episodes: std::sync::Arc::clone(&handles.episodes),
            },
        ));
        let address = loop {
            match tokio::time::timeout(Duration::from_secs(60), events.recv()).await {
                Ok(Ok(ServiceEvent::Listening(a))) => break a,
                Ok(Ok(_)) => continue,
                other => panic!("service did not start listening: {other:?}"),
            }
        };
        Running {
            address,
            api: Api {
                base: format!("http://{address}"),
            },
            events,
            handles,
            task,
        }
    }

    /// Stops the service (ordered drain) and waits for it.
    pub async fn stop(self) {
        self.handles.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

impl std::ops::Deref for Running {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

/// Produces JSON payloads to `topic`, keyed by model, and waits for every
/// acknowledgement.
pub async fn produce(bootstrap: &str, topic: &str, payloads: &[Vec<u8>]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "10")
        .set("message.max.bytes", "20000000")
        .create()
        .unwrap();
    // `send_result` enqueues at once; `send` would only enqueue when its
    // future is first polled, so awaiting a list of them one by one would
    // send one message per linger interval.
    let mut pending = Vec::with_capacity(payloads.len());
    for payload in payloads {
        let mut record = FutureRecord::to(topic).key("churn").payload(payload);
        loop {
            match producer.send_result(record) {
                Ok(delivery) => break pending.push(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((error, _)) => panic!("cannot enqueue a test message: {error}"),
            }
        }
    }
    for p in pending {
        p.await.unwrap().unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// `clean` undrifted events, then `drifted` drifted ones, then `after`
/// undrifted ones, as JSON payloads.
pub fn stream(seed: u64, clean: usize, drifted: usize, after: usize) -> Vec<Vec<u8>> {
    let mut generator = Generator::new(seed, START_MS, test_plan());
    let mut out = Vec::with_capacity(clean + drifted + after);
    for i in 0..clean + drifted + after {
        let is_drifted = i >= clean && i < clean + drifted;
        out.push(serde_json::to_vec(&generator.event(is_drifted)).unwrap());
    }
    out
}

/// Event index (1-based) of an event time in a test stream.
pub fn index_of(ms: i64) -> i64 {
    (ms - START_MS) / 10 + 1
}

/// A configuration for the sample model against `bootstrap`.
pub struct ConfigText {
    pub bootstrap: String,
    pub group: String,
    pub topic: String,
    pub retrain_topic: String,
    pub baseline: PathBuf,
    pub channels: String,
    pub routes: String,
    pub extra_kafka: String,
    pub window: usize,
}

impl ConfigText {
    pub fn render(&self) -> String {
        format!(
            r#"
[service]
http_listen = "127.0.0.1:0"
shutdown_deadline = "10s"

[kafka]
bootstrap_servers = "{bootstrap}"
group_id = "{group}"
prediction_topics = ["{topic}"]
retrain_topic = "{retrain}"
{extra_kafka}

[monitor]
window_size = {window}
min_window = {window}
check_interval = 1
decision = "calibrated"
target_run_length = 1000000
for_events = 25
resolve_after_events = 200

[alerts]
group_wait_events = 200
channels = {routes}

[alerts.retry]
initial_backoff = "100ms"
max_backoff = "1s"

{channels}

[[models]]
name = "churn"
baseline = "{baseline}"
"#,
            bootstrap = self.bootstrap,
            group = self.group,
            topic = self.topic,
            retrain = self.retrain_topic,
            extra_kafka = self.extra_kafka,
            window = self.window,
            channels = self.channels,
            routes = self.routes,
            baseline = self.baseline.display(),
        )
    }
}
