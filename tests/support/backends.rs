//! Real observability backends for the telemetry tests, each a child
//! process on 127.0.0.1 that is killed when dropped:
//!
//! - [`Prometheus`]: Debian's `prometheus` scraping one target every
//!   second, queried through its HTTP API.
//! - [`Collector`]: an OpenTelemetry Collector built by
//!   `tools/otelcol/build.sh` (OTLP/HTTP receiver, file exporter), whose
//!   output file the test reads. `DRIFTWARDEN_TEST_OTELCOL` may name the
//!   binary; otherwise the script is run (it returns the cached binary
//!   after the first build).
//!
//! Include it, with `support/service.rs` beside it, from a test target:
//!
//! ```ignore
//! #[path = "support/backends.rs"]
//! mod backends;
//! #[path = "support/service.rs"]
//! mod service;
//! ```

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::service::free_port;

/// Waits until something accepts connections on `port`.
async fn wait_listening(port: u16, child: &mut Child, what: &str, log: &Path) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited with {status}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not listen on {port} within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn spawn(program: &Path, args: &[&str], log: &Path) -> Child {
    let out = std::fs::File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()))
}

/// Debian's Prometheus scraping one target.
pub struct Prometheus {
    child: Child,
    port: u16,
}

impl Prometheus {
    /// Starts Prometheus in `dir`, scraping `target`'s `/metrics` every
    /// second.
    pub async fn start(dir: &Path, target: SocketAddr) -> Prometheus {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: driftwarden\n    static_configs:\n\
                 \x20     - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let data = dir.join("prometheus-data");
        let log = dir.join("prometheus.log");
        let mut child = spawn(
            Path::new("prometheus"),
            &[
                &format!("--config.file={}", config.display()),
                &format!("--storage.tsdb.path={}", data.display()),
                &format!("--web.listen-address={listen}"),
                "--log.level=warn",
            ],
            &log,
        );
        wait_listening(port, &mut child, "prometheus", &log).await;
        Prometheus { child, port }
    }

    /// An instant query's result vector (`data.result`).
    pub async fn query(&self, promql: &str) -> Vec<serde_json::Value> {
        let response: serde_json::Value = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{}/api/v1/query", self.port))
            .query(&[("query", promql)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(response["status"], "success", "{promql}: {response}");
        response["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Polls `promql` until `accept` takes its result, or panics after
    /// `within` with the last result.
    pub async fn wait_for(
        &self,
        promql: &str,
        within: Duration,
        accept: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let result = self.query(promql).await;
            if accept(&result) {
                return result;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{promql}: not as expected within {within:?}; last result {result:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Stops the process.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The value of the first sample of an instant-query result.
pub fn sample_value(result: &[serde_json::Value]) -> Option<f64> {
    result.first()?["value"][1].as_str()?.parse().ok()
}

/// An OpenTelemetry Collector receiving OTLP/HTTP and writing what it
/// receives as OTLP JSON lines to a file.
pub struct Collector {
    child: Child,
    port: u16,
    output: PathBuf,
}

/// The collector binary: `DRIFTWARDEN_TEST_OTELCOL`, or what
/// `tools/otelcol/build.sh` prints (building it on a cold cache).
fn collector_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("DRIFTWARDEN_TEST_OTELCOL") {
        return PathBuf::from(path);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/otelcol/build.sh");
    let output = std::process::Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        output.status.success(),
        "{} failed; see its output above",
        script.display()
    );
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

impl Collector {
    /// Starts the collector in `dir`.
    pub async fn start(dir: &Path) -> Collector {
        let port = free_port();
        let output = dir.join("otlp.jsonl");
        let config = dir.join("otelcol.yaml");
        std::fs::write(
            &config,
            format!(
                "receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: 127.0.0.1:{port}\n\
                 exporters:\n  file:\n    path: {out}\n    flush_interval: 100ms\n\
                 service:\n  telemetry:\n    metrics:\n      level: none\n\
                 \x20 pipelines:\n    metrics:\n      receivers: [otlp]\n      exporters: [file]\n\
                 \x20   traces:\n      receivers: [otlp]\n      exporters: [file]\n",
                out = output.display()
            ),
        )
        .unwrap();
        let log = dir.join("otelcol.log");
        let binary = collector_binary();
        let mut child = spawn(
            &binary,
            &[&format!("--config=file:{}", config.display())],
            &log,
        );
        wait_listening(port, &mut child, "otelcol", &log).await;
        Collector {
            child,
            port,
            output,
        }
    }

    /// The OTLP/HTTP base URL to export to.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every OTLP JSON document written so far.
    pub fn exported(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.output)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Stops the process.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
