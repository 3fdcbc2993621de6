//! The configuration as written: every layer merged, parsed by serde, not
//! yet checked.
//!
//! Every struct denies unknown keys (typo protection) and takes its missing
//! fields from `Default`, which is where the built-in defaults live; the
//! documented `config/driftwarden.toml` must agree with them (a test checks
//! it). Numbers are wide and optional keys are `Option` here so that
//! validation, not serde, decides what is out of range or missing and can
//! say so with the key.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::schema::{
    Correction, DecisionMode, LogFormat, OffsetReset, OtlpProtocol, PredictionKind, SmtpTls,
};
use super::types::{KafkaProperties, Secret};

/// The whole file, before validation.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawConfig {
    pub service: RawService,
    pub kafka: RawKafka,
    pub monitor: RawMonitor,
    pub alerts: RawAlerts,
    pub channels: RawChannels,
    pub retrain: RawRetrain,
    pub checkpoint: RawCheckpoint,
    pub baselines: RawBaselines,
    pub telemetry: RawTelemetry,
    pub models: Vec<RawModel>,
}

/// `[service]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawService {
    pub http_listen: String,
    #[serde(with = "humantime_serde")]
    pub shutdown_deadline: Duration,
    pub api_token: Option<Secret>,
    pub api_token_file: Option<PathBuf>,
    pub external_url: Option<String>,
    pub log_format: LogFormat,
    pub log_level: String,
}

impl Default for RawService {
    fn default() -> Self {
        RawService {
            http_listen: "127.0.0.1:8080".to_owned(),
            shutdown_deadline: Duration::from_secs(30),
            api_token: None,
            api_token_file: None,
            external_url: None,
            log_format: LogFormat::Text,
            log_level: "info".to_owned(),
        }
    }
}

/// `[kafka]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawKafka {
    pub bootstrap_servers: String,
    pub group_id: String,
    pub prediction_topics: Vec<String>,
    pub label_topics: Vec<String>,
    pub dead_letter_topic: Option<String>,
    pub retrain_topic: String,
    pub max_message_bytes: u64,
    pub auto_offset_reset: OffsetReset,
    pub properties: KafkaProperties,
}

impl Default for RawKafka {
    fn default() -> Self {
        RawKafka {
            bootstrap_servers: "127.0.0.1:9092".to_owned(),
            group_id: "driftwarden".to_owned(),
            prediction_topics: vec!["predictions".to_owned()],
            label_topics: Vec::new(),
            dead_letter_topic: None,
            retrain_topic: "driftwarden.retrain".to_owned(),
            max_message_bytes: 1_048_576,
            auto_offset_reset: OffsetReset::Earliest,
            properties: KafkaProperties::default(),
        }
    }
}

/// `[monitor]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawMonitor {
    pub window_size: u64,
    #[serde(with = "humantime_serde::option")]
    pub window_duration: Option<Duration>,
    pub min_window: u64,
    pub check_interval: u64,
    pub decision: DecisionMode,
    pub target_run_length: u64,
    pub alpha: f64,
    pub correction: Correction,
    pub for_events: u64,
    #[serde(with = "humantime_serde")]
    pub for_duration: Duration,
    pub resolve_after_events: u64,
    pub psi_warn: f64,
    pub missing_rate_tolerance: f64,
    pub performance_window: u64,
    pub performance_min_samples: u64,
    pub performance_tolerance: f64,
    pub performance_error_tolerance: f64,
    pub performance_alpha: f64,
    pub max_classes_reported: u64,
    pub label_join_max_entries: u64,
    #[serde(with = "humantime_serde")]
    pub label_join_max_age: Duration,
}

impl Default for RawMonitor {
    fn default() -> Self {
        RawMonitor {
            window_size: 1000,
            window_duration: None,
            min_window: 100,
            check_interval: 1,
            decision: DecisionMode::Calibrated,
            target_run_length: 1_000_000,
            alpha: 0.01,
            correction: Correction::Bonferroni,
            for_events: 50,
            for_duration: Duration::ZERO,
            resolve_after_events: 200,
            psi_warn: 0.2,
            missing_rate_tolerance: 0.05,
            performance_window: 1000,
            performance_min_samples: 200,
            performance_tolerance: 0.02,
            performance_error_tolerance: 0.10,
            performance_alpha: 0.01,
            max_classes_reported: 20,
            label_join_max_entries: 100_000,
            label_join_max_age: Duration::from_secs(24 * 3600),
        }
    }
}

/// `[alerts]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawAlerts {
    #[serde(with = "humantime_serde")]
    pub repeat_interval: Duration,
    pub send_resolved: bool,
    pub group_wait_events: u64,
    pub queue_capacity: u64,
    pub channels: Vec<String>,
    pub retry: RawRetry,
}

impl Default for RawAlerts {
    fn default() -> Self {
        RawAlerts {
            repeat_interval: Duration::from_secs(4 * 3600),
            send_resolved: true,
            group_wait_events: 100,
            queue_capacity: 1024,
            channels: vec!["webhook".to_owned()],
            retry: RawRetry::default(),
        }
    }
}

/// `[alerts.retry]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawRetry {
    pub max_attempts: u64,
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    pub multiplier: f64,
    pub jitter: f64,
}

impl Default for RawRetry {
    fn default() -> Self {
        RawRetry {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            multiplier: 2.0,
            jitter: 0.2,
        }
    }
}

/// `[channels]`: one section per channel kind.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawChannels {
    pub webhook: RawWebhook,
    pub slack: RawSlack,
    pub email: RawEmail,
}

/// `[channels.webhook]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawWebhook {
    pub url: Option<Secret>,
    pub url_file: Option<PathBuf>,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub headers: BTreeMap<String, Secret>,
}

impl Default for RawWebhook {
    fn default() -> Self {
        RawWebhook {
            url: None,
            url_file: None,
            timeout: Duration::from_secs(10),
            headers: BTreeMap::new(),
        }
    }
}

/// `[channels.slack]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawSlack {
    pub webhook_url: Option<Secret>,
    pub webhook_url_file: Option<PathBuf>,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub channel: Option<String>,
    pub username: Option<String>,
}

impl Default for RawSlack {
    fn default() -> Self {
        RawSlack {
            webhook_url: None,
            webhook_url_file: None,
            timeout: Duration::from_secs(10),
            channel: None,
            username: None,
        }
    }
}

/// `[channels.email]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawEmail {
    pub host: Option<String>,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
    pub from: Option<String>,
    pub to: Vec<String>,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for RawEmail {
    fn default() -> Self {
        RawEmail {
            host: None,
            port: 587,
            tls: SmtpTls::Starttls,
            username: None,
            password: None,
            password_file: None,
            from: None,
            to: Vec::new(),
            timeout: Duration::from_secs(30),
        }
    }
}

/// `[retrain]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawRetrain {
    pub enabled: bool,
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
}

impl Default for RawRetrain {
    fn default() -> Self {
        RawRetrain {
            enabled: true,
            cooldown: Duration::from_secs(3600),
        }
    }
}

/// `[telemetry]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawTelemetry {
    pub otlp_endpoint: Option<String>,
    pub otlp_protocol: OtlpProtocol,
    #[serde(with = "humantime_serde")]
    pub export_interval: Duration,
    pub traces: bool,
}

impl Default for RawTelemetry {
    fn default() -> Self {
        RawTelemetry {
            otlp_endpoint: None,
            otlp_protocol: OtlpProtocol::HttpProtobuf,
            export_interval: Duration::from_secs(10),
            traces: true,
        }
    }
}

/// `[checkpoint]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawCheckpoint {
    pub dir: PathBuf,
    pub interval_events: u64,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
}

impl Default for RawCheckpoint {
    fn default() -> Self {
        RawCheckpoint {
            dir: PathBuf::from("state"),
            interval_events: 100_000,
            interval: Duration::from_secs(30),
        }
    }
}

/// `[baselines]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawBaselines {
    pub dir: PathBuf,
    #[serde(with = "humantime_serde")]
    pub reload_interval: Duration,
    pub max_upload_bytes: u64,
}

impl Default for RawBaselines {
    fn default() -> Self {
        RawBaselines {
            dir: PathBuf::from("baselines"),
            reload_interval: Duration::from_secs(5),
            max_upload_bytes: 64 << 20,
        }
    }
}

/// One `[[models]]` entry. Everything is optional here so that a missing
/// `name` or `baseline` is reported by validation with its index.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawModel {
    pub name: Option<String>,
    pub baseline: Option<PathBuf>,
    pub versions: BTreeMap<String, PathBuf>,
    pub channels: Option<Vec<String>>,
    pub window_size: Option<u64>,
    pub decision: Option<DecisionMode>,
    pub target_run_length: Option<u64>,
    pub for_events: Option<u64>,
    pub prediction: Option<PredictionKind>,
}
