//! The service as a child process (`driftwarden run`), for tests that kill
//! it: SIGKILL (a crash), SIGTERM (an ordered stop), its resident memory,
//! its log, and its HTTP API.
//!
//! Include it from a test target:
//!
//! ```ignore
//! #[path = "support/process.rs"]
//! mod process;
//! ```

#![allow(dead_code)] // Each test target uses a different part.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::service::{Api, ConfigText, free_port};

/// A running `driftwarden run`; its HTTP API through `Deref`.
pub struct ServiceProcess {
    child: Child,
    /// Its HTTP API.
    pub api: Api,
    /// Where its stdout and stderr go (appended across restarts).
    pub log: PathBuf,
}

impl ServiceProcess {
    /// Starts `driftwarden run --config <config>` whose `http_listen` is
    /// `127.0.0.1:<port>`, and waits until `/healthz` answers.
    pub async fn start(config: &Path, port: u16, log: &Path) -> ServiceProcess {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let err = out.try_clone().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_driftwarden"))
            .arg("run")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn driftwarden");
        let mut process = ServiceProcess {
            child,
            api: Api {
                base: format!("http://127.0.0.1:{port}"),
            },
            log: log.to_path_buf(),
        };
        process.wait_healthy().await;
        process
    }

    async fn wait_healthy(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(response) = reqwest::get(format!("{}/healthz", self.api.base)).await
                && response.status().is_success()
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("driftwarden exited with {status}:\n{}", self.log_tail());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "driftwarden did not answer /healthz:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last lines of the log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// SIGKILL, as a crash: nothing is drained or written.
    pub async fn kill(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }

    /// SIGTERM, then waits for the ordered stop (within `within`); returns
    /// whether it exited successfully.
    pub async fn terminate(mut self, within: Duration) -> bool {
        let pid = self.pid().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM {pid}");
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(status) => status.unwrap().success(),
            Err(_) => panic!("no exit within {within:?} of SIGTERM:\n{}", self.log_tail()),
        }
    }

    /// Peak resident memory (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl std::ops::Deref for ServiceProcess {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl ServiceProcess {
    /// Waits until the API reports at least `n` events applied for
    /// `model`; the failure shows the end of the child's log.
    pub async fn wait_applied(&self, model: &str, n: u64, within: Duration) {
        self.api
            .wait_applied_or(model, n, within, &|| self.log_tail())
            .await
    }
}

/// What a child-process test sets in its configuration.
pub struct ChildSettings<'a> {
    /// Webhook URL (the route is `["webhook"]`).
    pub webhook: &'a str,
    /// `[alerts.retry] max_attempts`.
    pub max_attempts: u32,
    /// `[alerts] queue_capacity`.
    pub queue_capacity: usize,
    /// `[service] shutdown_deadline`.
    pub shutdown_deadline: &'a str,
    /// `[checkpoint] interval`.
    pub checkpoint_interval: &'a str,
    /// `[checkpoint] interval_events`.
    pub checkpoint_events: u64,
    /// `[monitor] window_size`.
    pub window: usize,
}

impl<'a> ChildSettings<'a> {
    /// Defaults for a test: quick checkpoints, six attempts.
    pub fn new(webhook: &'a str) -> ChildSettings<'a> {
        ChildSettings {
            webhook,
            max_attempts: 6,
            queue_capacity: 64,
            shutdown_deadline: "10s",
            checkpoint_interval: "500ms",
            checkpoint_events: 100_000,
            window: 500,
        }
    }
}

/// Writes `dir/driftwarden.toml` for a child process consuming `topic` as
/// `group` (static membership under the group's name, so a restarted child
/// gets its partition back at once), checkpointing to `dir/state`; returns
/// the path and the HTTP port.
pub fn write_config(
    dir: &Path,
    bootstrap: &str,
    topic: &str,
    group: &str,
    baseline: &Path,
    settings: &ChildSettings<'_>,
) -> (PathBuf, u16) {
    let port = free_port();
    let config = ConfigText {
        bootstrap: bootstrap.to_string(),
        group: group.to_string(),
        topic: topic.to_string(),
        retrain_topic: format!("{topic}-retrain"),
        baseline: baseline.to_path_buf(),
        routes: r#"["webhook"]"#.into(),
        channels: format!("[channels.webhook]\nurl = \"{}\"\n", settings.webhook),
        extra_kafka: format!(
            "properties = {{ \"group.instance.id\" = \"{group}\", \"session.timeout.ms\" = \"6000\" }}"
        ),
        window: settings.window,
    };
    let text = config
        .render()
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"))
        .replace(
            "shutdown_deadline = \"10s\"",
            &format!("shutdown_deadline = \"{}\"", settings.shutdown_deadline),
        )
        .replace(
            "max_backoff = \"1s\"",
            &format!(
                "max_backoff = \"1s\"\nmax_attempts = {}",
                settings.max_attempts
            ),
        )
        .replace(
            "group_wait_events = 200",
            &format!(
                "group_wait_events = 200\nqueue_capacity = {}",
                settings.queue_capacity
            ),
        )
        + &format!(
            "\n[checkpoint]\ndir = \"{}\"\ninterval = \"{}\"\ninterval_events = {}\n",
            dir.join("state").display(),
            settings.checkpoint_interval,
            settings.checkpoint_events
        );
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("driftwarden.toml");
    std::fs::write(&path, text).unwrap();
    (path, port)
}
