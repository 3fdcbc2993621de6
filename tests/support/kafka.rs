//! A real Apache Kafka broker (4.4, KRaft, single node) for integration tests.
//!
//! Include this file from a test target (Cargo does not build `tests/support/` as a test
//! of its own):
//!
//! ```ignore
//! #[path = "support/kafka.rs"]
//! mod kafka;
//! use kafka::KafkaBroker;
//! ```
//!
//! It uses `rdkafka` (feature `tokio`) and `tokio`, which the crate depends on.
//!
//! Which broker:
//! - [`KafkaBroker::shared`]: the broker of this test binary, shared by all its tests. If
//!   `DRIFTWARDEN_TEST_KAFKA` holds a bootstrap address (`.ci/run` starts one broker for
//!   the whole run with `tools/kafka/start.sh`), that one. Otherwise a broker that
//!   `tools/kafka/start.sh` starts on first use (fetching Kafka with `tools/kafka/fetch.sh`
//!   on a cold cache) and that is stopped and deleted when the test process exits. Tests
//!   that share a broker keep apart by using their own topics ([`KafkaBroker::unique_topic`])
//!   and consumer groups ([`KafkaBroker::unique_group`]).
//! - [`KafkaBroker::start_private`]: a broker of the test's own, never the external one, for
//!   tests that take it down and bring it back ([`stop`](KafkaBroker::stop),
//!   [`kill`](KafkaBroker::kill), [`restart`](KafkaBroker::restart): same address, same
//!   topics and offsets). Stopped and deleted when dropped.
//!
//! Every broker this module starts has its own state dir under the temp dir, so test
//! binaries running in parallel (e.g. under nextest) do not clash. If the test process
//! dies without cleaning up (SIGKILL, abort), a watchdog started by `start.sh --watch-pid`
//! stops the broker within a second or two.
//!
//! Starting and stopping block (a fresh broker takes 3-10 s): from async code that has
//! other tasks to keep running meanwhile (an outage test with a producer in flight), call
//! them through `tokio::task::spawn_blocking` on an `Arc<KafkaBroker>`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;

/// Environment variable with the bootstrap address of an already running broker.
pub const ENV_BOOTSTRAP: &str = "DRIFTWARDEN_TEST_KAFKA";

/// A Kafka broker that tests can produce to and consume from.
#[derive(Debug)]
pub struct KafkaBroker {
    bootstrap: String,
    /// State dir (`start.sh --dir`) of a broker this process started; `None` for the
    /// broker named by `DRIFTWARDEN_TEST_KAFKA`, which this process does not own.
    dir: Option<PathBuf>,
}

static SHARED: OnceLock<Result<KafkaBroker, String>> = OnceLock::new();
static COUNTER: AtomicU64 = AtomicU64::new(0);

impl KafkaBroker {
    /// The broker shared by the tests of this binary (see the module docs). Panics if it
    /// cannot be started; every test that asks again gets the same error at once.
    pub fn shared() -> &'static KafkaBroker {
        let shared = SHARED.get_or_init(|| {
            if let Some(bootstrap) = external_bootstrap() {
                return Ok(KafkaBroker {
                    bootstrap,
                    dir: None,
                });
            }
            let broker = KafkaBroker::start_in(new_state_dir("shared"))?;
            // Statics are never dropped: stop the broker when the process exits. (The
            // watchdog would too, but a second later and only after the process is gone.)
            // SAFETY: registers a plain `extern "C" fn()` that takes no arguments.
            unsafe { atexit(stop_shared_broker_at_exit) };
            Ok(broker)
        });
        match shared {
            Ok(broker) => broker,
            Err(e) => panic!("no Kafka broker for tests: {e}"),
        }
    }

    /// A broker of its own (never the one in `DRIFTWARDEN_TEST_KAFKA`), for tests that stop,
    /// crash or restart it. Stopped and deleted on drop.
    pub fn start_private() -> KafkaBroker {
        KafkaBroker::start_in(new_state_dir("private"))
            .unwrap_or_else(|e| panic!("could not start a private Kafka broker: {e}"))
    }

    fn start_in(dir: PathBuf) -> Result<KafkaBroker, String> {
        let bootstrap = start_script(&dir)?;
        Ok(KafkaBroker {
            bootstrap,
            dir: Some(dir),
        })
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// True for the broker named by `DRIFTWARDEN_TEST_KAFKA`, which tests cannot stop.
    pub fn is_external(&self) -> bool {
        self.dir.is_none()
    }

    /// The state dir of a broker this process started: `server.properties`, `data/`, and
    /// `broker.log`, which is worth reading when a test fails.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// A client config with `bootstrap.servers` set, to add to and `create()`.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        config
    }

    /// A topic name no other test (in this or another process) uses:
    /// `<prefix>-<time>-<pid>-<n>`, with the prefix cut to Kafka's legal characters.
    pub fn unique_topic(&self, prefix: &str) -> String {
        unique_name(prefix)
    }

    /// A consumer group id no other test uses (same scheme as [`Self::unique_topic`]).
    pub fn unique_group(&self, prefix: &str) -> String {
        unique_name(prefix)
    }

    /// Creates a topic (replication factor 1) and waits until every partition has a
    /// leader, so that producing to it right away does not race its creation. A topic
    /// that already exists is fine. Panics on any other error.
    pub async fn create_topic(&self, name: &str, partitions: i32) {
        self.create_topic_with(name, partitions, &[]).await
    }

    /// [`Self::create_topic`] with topic configs, e.g. `&[("cleanup.policy", "compact")]`.
    pub async fn create_topic_with(&self, name: &str, partitions: i32, config: &[(&str, &str)]) {
        let admin: AdminClient<DefaultClientContext> = self
            .client_config()
            .create()
            .unwrap_or_else(|e| panic!("admin client for {}: {e}", self.bootstrap));
        let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        for (key, value) in config {
            topic = topic.set(key, value);
        }
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results = admin
            .create_topics([&topic], &options)
            .await
            .unwrap_or_else(|e| panic!("create topic {name} on {}: {e}", self.bootstrap));
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => panic!("create topic {topic} on {}: {code}", self.bootstrap),
            }
        }
        // Metadata requests block: keep them off the async worker.
        let name = name.to_owned();
        let bootstrap = self.bootstrap.clone();
        tokio::task::spawn_blocking(move || {
            wait_for_leaders(&admin, &name, partitions, &bootstrap)
        })
        .await
        .expect("wait_for_leaders panicked");
    }

    /// Stops the broker cleanly (controlled shutdown) and keeps its data, so that
    /// [`Self::restart`] brings it back. Panics for the external broker.
    pub fn stop(&self) {
        run_script("stop.sh", &self.owned_dir("stop"), &["--keep"])
            .unwrap_or_else(|e| panic!("stop Kafka broker: {e}"));
    }

    /// Kills the broker with SIGKILL (a crash) and keeps its data, so that
    /// [`Self::restart`] brings it back (recovering its logs). Panics for the external broker.
    pub fn kill(&self) {
        run_script("stop.sh", &self.owned_dir("kill"), &["--keep", "--kill"])
            .unwrap_or_else(|e| panic!("kill Kafka broker: {e}"));
    }

    /// Starts a stopped or killed broker again: same address, same topics, messages and
    /// committed offsets. Returns once it serves clients. A running broker is left as is.
    pub fn restart(&self) {
        let dir = self.owned_dir("restart");
        let bootstrap = start_script(&dir).unwrap_or_else(|e| panic!("restart Kafka broker: {e}"));
        assert_eq!(
            bootstrap, self.bootstrap,
            "restarted broker has another address"
        );
    }

    fn owned_dir(&self, what: &str) -> PathBuf {
        match &self.dir {
            Some(dir) => dir.clone(),
            None => panic!(
                "cannot {what} the external broker {} ({ENV_BOOTSTRAP}); use KafkaBroker::start_private()",
                self.bootstrap
            ),
        }
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            stop_and_delete(dir);
        }
    }
}

unsafe extern "C" {
    fn atexit(callback: extern "C" fn()) -> std::ffi::c_int;
}

extern "C" fn stop_shared_broker_at_exit() {
    if let Some(Ok(KafkaBroker { dir: Some(dir), .. })) = SHARED.get() {
        stop_and_delete(dir);
    }
}

/// `stop.sh --dir DIR`. Only reports errors: it runs in `drop` and at exit, where a
/// panic would abort.
fn stop_and_delete(dir: &Path) {
    if let Err(e) = run_script("stop.sh", dir, &[]) {
        eprintln!(
            "warning: stopping the Kafka broker in {}: {e}",
            dir.display()
        );
    }
}

fn external_bootstrap() -> Option<String> {
    let value = std::env::var(ENV_BOOTSTRAP).ok()?;
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tools")
        .join("kafka")
}

/// A state dir that no other broker uses: the pid keeps test processes apart, the
/// counter the brokers of one process.
fn new_state_dir(kind: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "driftwarden-kafka-{kind}-{}-{n}",
        std::process::id()
    ));
    if dir.exists() {
        // Left behind by an earlier process that had the same pid.
        stop_and_delete(&dir);
    }
    dir
}

/// Runs `start.sh --dir DIR --watch-pid <this process>` and returns the bootstrap address.
fn start_script(dir: &Path) -> Result<String, String> {
    let pid = std::process::id().to_string();
    let stdout = run_script("start.sh", dir, &["--watch-pid", &pid])?;
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("KAFKA_BOOTSTRAP="))
        .map(str::to_owned)
        .ok_or_else(|| format!("start.sh printed no KAFKA_BOOTSTRAP= line: {stdout:?}"))
}

/// Runs `tools/kafka/<script> --dir DIR <args>`; returns its stdout, or an error with its
/// stderr (which ends with the broker's last log lines when a start failed).
fn run_script(script: &str, dir: &Path, args: &[&str]) -> Result<String, String> {
    let path = tools_dir().join(script);
    // Its children (the broker, the watchdog) get no pipe of ours: start.sh redirects
    // them, so `output()` returns when the script does.
    let output: Output = Command::new("bash")
        .arg(&path)
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "{} failed ({}):\n{stderr}",
            path.display(),
            output.status
        ))
    }
}

fn unique_name(prefix: &str) -> String {
    let prefix: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(150)
        .collect();
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{secs:x}-{}-{n}", std::process::id())
}

fn wait_for_leaders(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    partitions: i32,
    bootstrap: &str,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while Instant::now() < deadline {
        match admin
            .inner()
            .fetch_metadata(Some(topic), Duration::from_secs(5))
        {
            Ok(metadata) => {
                let ready = metadata.topics().iter().any(|t| {
                    t.name() == topic
                        && t.error().is_none()
                        && t.partitions().len() == partitions as usize
                        && t.partitions()
                            .iter()
                            .all(|p| p.error().is_none() && p.leader() >= 0)
                });
                if ready {
                    return;
                }
                last = format!(
                    "{:?}",
                    metadata
                        .topics()
                        .iter()
                        .map(|t| (t.name(), t.error()))
                        .collect::<Vec<_>>()
                );
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("topic {topic} on {bootstrap}: partitions without a leader after 30 s (last: {last})");
}
