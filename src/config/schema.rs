//! The validated configuration: what the rest of driftwarden reads.
//!
//! Every value here has passed validation, so consumers use it without
//! re-checking: window sizes are non-zero, α is in (0, 1), each model's
//! monitor settings already include its overrides, and a disabled channel is
//! simply `None`. `Debug` is safe to log: secrets print as `***`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::types::{Alpha, EmailAddress, Fraction, KafkaProperties, ModelName, Secret, TopicName};

/// The complete, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Process-level settings: HTTP API, shutdown, logging.
    pub service: ServiceConfig,
    /// Where events come from and where triggers go.
    pub kafka: KafkaConfig,
    /// Monitor settings every model starts from (`[monitor]`).
    pub monitor: MonitorSettings,
    /// Alert lifecycle and delivery policy.
    pub alerts: AlertsConfig,
    /// Notification channels; a channel without its URL or host is `None`.
    pub channels: ChannelsConfig,
    /// Retraining-trigger policy.
    pub retrain: RetrainConfig,
    /// Checkpoint location and cadence.
    pub checkpoint: CheckpointConfig,
    /// The baseline store and how baselines are reloaded.
    pub baselines: BaselinesConfig,
    /// OTLP export of metrics and spans.
    pub telemetry: TelemetryConfig,
    /// The monitored models, in file order, names unique.
    pub models: Vec<ModelConfig>,
}

impl Config {
    /// The model called `name`, if configured.
    pub fn model(&self, name: &str) -> Option<&ModelConfig> {
        self.models.iter().find(|m| m.name.as_str() == name)
    }
}

/// `[service]`
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    /// Address the HTTP API listens on.
    pub http_listen: SocketAddr,
    /// How long a graceful shutdown may take before the process exits.
    pub shutdown_deadline: Duration,
    /// Bearer token required by state-changing API calls; when `None` those
    /// calls are refused.
    pub api_token: Option<Secret>,
    /// Base URL under which receivers of notifications reach the HTTP API,
    /// for links in messages; `None` means "derive it from `http_listen`".
    pub external_url: Option<String>,
    /// Log line format.
    pub log_format: LogFormat,
    /// A `tracing` filter directive such as `info` or
    /// `info,driftwarden=debug` (already checked to parse).
    pub log_level: String,
}

impl ServiceConfig {
    /// The base URL for links in notifications: `external_url` without a
    /// trailing slash, or `http://` + `http_listen` when it is not set.
    pub fn external_url(&self) -> String {
        match &self.external_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.http_listen),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[kafka]`
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list, as librdkafka takes it.
    pub bootstrap_servers: String,
    /// Consumer group id.
    pub group_id: String,
    /// Topics carrying prediction events; at least one.
    pub prediction_topics: Vec<TopicName>,
    /// Topics carrying late label events; may be empty.
    pub label_topics: Vec<TopicName>,
    /// Where undecodable events are copied, if anywhere.
    pub dead_letter_topic: Option<TopicName>,
    /// Where retraining triggers are produced.
    pub retrain_topic: TopicName,
    /// Largest message accepted (librdkafka's `message.max.bytes`).
    pub max_message_bytes: NonZeroUsize,
    /// Where a group without committed offsets starts.
    pub auto_offset_reset: OffsetReset,
    /// Extra librdkafka properties, passed through.
    pub properties: KafkaProperties,
}

/// Where a consumer group without committed offsets starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OffsetReset {
    /// From the oldest retained message.
    Earliest,
    /// From new messages only.
    Latest,
}

impl OffsetReset {
    /// The librdkafka `auto.offset.reset` value.
    pub fn as_str(self) -> &'static str {
        match self {
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
        }
    }
}

/// How one model is monitored: `[monitor]` with the model's overrides
/// applied.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorSettings {
    /// The sliding window compared with the baseline.
    pub window: Window,
    /// No verdict is given before a window holds this many values.
    pub min_window: NonZeroUsize,
    /// Events between two checks.
    pub check_interval: NonZeroUsize,
    /// How a check decides that a feature drifted.
    pub decision: Decision,
    /// How long a drifted condition must hold before an alert fires.
    pub persistence: Persistence,
    /// Events without drift before a firing alert resolves (hysteresis),
    /// counted in whole checks.
    pub resolve_after_events: u64,
    /// PSI above which a categorical feature is flagged in reports (never
    /// alerts by itself).
    pub psi_warn: f64,
    /// Tolerated absolute increase of a feature's missing-value rate over
    /// the baseline's.
    pub missing_rate_tolerance: Fraction,
    /// Ground truth: performance window, checks and label join bounds.
    pub performance: PerformanceConfig,
}

/// Performance against labels, and the join of labels to predictions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerformanceConfig {
    /// Labelled predictions per model in the performance window.
    pub window: NonZeroUsize,
    /// No performance verdict before the window holds this many (≤ window).
    pub min_samples: NonZeroUsize,
    /// Accuracy: tolerated absolute drop below the baseline's.
    pub accuracy_tolerance: Fraction,
    /// MAE and RMSE: tolerated relative increase over the baseline's.
    pub error_tolerance: f64,
    /// Level of the one-sided performance tests.
    pub alpha: Alpha,
    /// Classes given precision/recall/F1 in a model's status.
    pub max_classes: usize,
    /// Predictions and labels waiting to be joined, per model.
    pub join_max_entries: NonZeroUsize,
    /// Event time an unjoined prediction or label waits.
    pub join_max_age: Duration,
}

/// The window of recent values compared with the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The last n events; n ≥ 2 and n ≥ `min_window`.
    Count(NonZeroUsize),
    /// Events within this span of event time before the newest one.
    Time(Duration),
}

/// How a check decides that a feature drifted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// Thresholds chosen so that, without drift, false alarms come no more
    /// often than once per `target_run_length` events for the model
    /// (at least 100).
    Calibrated {
        /// Expected events between false alarms, per model.
        target_run_length: NonZeroU64,
    },
    /// p < α per check, corrected across the model's features.
    Fixed {
        /// The per-check level.
        alpha: Alpha,
        /// The correction across features.
        correction: Correction,
    },
}

/// The decision mode as written in the file (`decision = "…"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecisionMode {
    /// See [`Decision::Calibrated`].
    Calibrated,
    /// See [`Decision::Fixed`].
    Fixed,
}

/// Correction for testing several features at once in fixed mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Correction {
    /// Family-wise error rate: each feature at α / F.
    Bonferroni,
    /// False discovery rate: Benjamini–Hochberg across the features.
    Bh,
    /// Each feature at α.
    None,
}

/// How long a condition must hold before an alert fires; both must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Persistence {
    /// Events over which every check shows the condition (counted in whole
    /// checks: `for_events / check_interval`, rounded up).
    pub for_events: u64,
    /// Event time since the condition was first seen.
    pub for_duration: Duration,
}

/// `[alerts]`
#[derive(Debug, Clone, PartialEq)]
pub struct AlertsConfig {
    /// A firing group is re-notified no more often than this.
    pub repeat_interval: Duration,
    /// Whether resolution is notified too.
    pub send_resolved: bool,
    /// Events to wait after a model's alert group changes before notifying,
    /// so that features drifting together arrive in one message
    /// (Alertmanager's `group_wait`, counted in events).
    pub group_wait_events: u64,
    /// Capacity of the in-memory delivery queue in front of the outbox.
    pub queue_capacity: NonZeroUsize,
    /// The default route: channels a model's notifications go to. A channel
    /// named here may be disabled, in which case nothing is sent to it.
    pub channels: Vec<ChannelKind>,
    /// Retry policy for every channel.
    pub retry: RetryPolicy,
}

/// Retry with exponential back-off and jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included.
    pub max_attempts: NonZeroU32,
    /// Delay before the second attempt; positive.
    pub initial_backoff: Duration,
    /// Upper bound of any delay; at least `initial_backoff`.
    pub max_backoff: Duration,
    /// Growth factor between delays; at least 1.
    pub multiplier: f64,
    /// Each delay is drawn uniformly within ± this fraction of itself.
    pub jitter: Fraction,
}

/// A kind of notification channel, as named in routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChannelKind {
    /// `[channels.webhook]`
    Webhook,
    /// `[channels.slack]`
    Slack,
    /// `[channels.email]`
    Email,
}

impl ChannelKind {
    /// Every kind, in the order they are documented.
    pub const ALL: [ChannelKind; 3] =
        [ChannelKind::Webhook, ChannelKind::Slack, ChannelKind::Email];

    /// The name used in routes and section headers.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Slack => "slack",
            ChannelKind::Email => "email",
        }
    }

    /// The kind called `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// `[channels]`: `None` means the channel is not configured.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChannelsConfig {
    /// Generic webhook (Alertmanager-compatible JSON).
    pub webhook: Option<WebhookChannel>,
    /// Slack incoming webhook.
    pub slack: Option<SlackChannel>,
    /// SMTP.
    pub email: Option<EmailChannel>,
}

impl ChannelsConfig {
    /// Whether channel `kind` is configured.
    pub fn is_enabled(&self, kind: ChannelKind) -> bool {
        match kind {
            ChannelKind::Webhook => self.webhook.is_some(),
            ChannelKind::Slack => self.slack.is_some(),
            ChannelKind::Email => self.email.is_some(),
        }
    }

    /// The configured channels, in documented order.
    pub fn enabled(&self) -> Vec<ChannelKind> {
        ChannelKind::ALL
            .into_iter()
            .filter(|&k| self.is_enabled(k))
            .collect()
    }
}

/// `[channels.webhook]`
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookChannel {
    /// Receiver URL (http or https).
    pub url: Secret,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Extra request headers; values are treated as secrets because they
    /// usually carry credentials.
    pub headers: BTreeMap<String, Secret>,
}

/// `[channels.slack]`
#[derive(Debug, Clone, PartialEq)]
pub struct SlackChannel {
    /// Incoming-webhook URL (http or https).
    pub webhook_url: Secret,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Channel override, if the webhook allows it.
    pub channel: Option<String>,
    /// Display name override.
    pub username: Option<String>,
}

/// `[channels.email]`
#[derive(Debug, Clone, PartialEq)]
pub struct EmailChannel {
    /// SMTP server host name.
    pub host: String,
    /// SMTP server port.
    pub port: u16,
    /// Transport security.
    pub tls: SmtpTls,
    /// Login name; no authentication when `None`.
    pub username: Option<String>,
    /// Login password; only set together with `username`.
    pub password: Option<Secret>,
    /// Sender mailbox.
    pub from: EmailAddress,
    /// Recipients; at least one.
    pub to: Vec<EmailAddress>,
    /// Per-message timeout.
    pub timeout: Duration,
}

/// SMTP transport security.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption; for a local mail catcher only.
    None,
}

/// `[retrain]`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrainConfig {
    /// Whether drift produces retraining triggers (on `kafka.retrain_topic`).
    pub enabled: bool,
    /// Minimum time between two triggers for one model.
    pub cooldown: Duration,
}

/// `[telemetry]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// Base URL of an OTLP/HTTP receiver (`http://127.0.0.1:4318`); the
    /// signal paths `/v1/metrics` and `/v1/traces` are appended. `None`
    /// exports nothing (metrics stay on `/metrics`).
    pub otlp_endpoint: Option<String>,
    /// Encoding of the OTLP requests.
    pub otlp_protocol: OtlpProtocol,
    /// How often metrics (and batched spans) are exported; positive.
    pub export_interval: Duration,
    /// Whether spans are exported (with an endpoint).
    pub traces: bool,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            otlp_protocol: OtlpProtocol::HttpProtobuf,
            export_interval: Duration::from_secs(10),
            traces: true,
        }
    }
}

/// OTLP transport and encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum OtlpProtocol {
    /// OTLP/HTTP with protobuf bodies (the OTLP default).
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// OTLP/HTTP with JSON bodies.
    #[serde(rename = "http/json")]
    HttpJson,
}

/// `[checkpoint]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointConfig {
    /// Directory holding checkpoints.
    pub dir: PathBuf,
    /// A checkpoint is taken after this many events…
    pub interval_events: NonZeroU64,
    /// …or after this much time, whichever comes first; positive.
    pub interval: Duration,
}

/// `[baselines]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaselinesConfig {
    /// The store: `<model>@<version>.json` files, one per model version
    /// with a baseline of its own; captures are written here.
    pub dir: PathBuf,
    /// How often baseline files are checked for changes; `None` when
    /// configured as zero (no reloading).
    pub reload_interval: Option<Duration>,
    /// Largest baseline accepted by `PUT /api/v1/models/{model}/baseline`.
    pub max_upload_bytes: usize,
}

/// One `[[models]]` entry with every default and override resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// The model's name, unique.
    pub name: ModelName,
    /// Baseline for events without a pinned `model_version`. Relative paths
    /// are relative to the working directory; existence is checked when
    /// baselines are loaded.
    pub baseline: PathBuf,
    /// Baselines for specific `model_version`s.
    pub versions: BTreeMap<String, PathBuf>,
    /// Where this model's notifications go.
    pub channels: Vec<ChannelKind>,
    /// Monitor settings with this model's overrides applied.
    pub monitor: MonitorSettings,
    /// Whether predictions are scores or classes; inferred from the baseline
    /// when `None`.
    pub prediction: Option<PredictionKind>,
}

/// What a model's `prediction` field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PredictionKind {
    /// A number (probability, score, regression output): tested with KS.
    Score,
    /// A class label: tested with chi-square.
    Class,
}
