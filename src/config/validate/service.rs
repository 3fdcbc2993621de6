//! Checks for `[service]`, `[kafka]`, `[retrain]` and `[checkpoint]`.

use std::net::SocketAddr;

use super::Checker;
use crate::config::layers::child_key;
use crate::config::raw::{
    RawBaselines, RawCheckpoint, RawKafka, RawRetrain, RawService, RawTelemetry,
};
use crate::config::schema::{
    BaselinesConfig, CheckpointConfig, KafkaConfig, RetrainConfig, ServiceConfig, TelemetryConfig,
};
use crate::config::types::TopicName;

/// Level names accepted on their own in `service.log_level`.
const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// librdkafka properties that driftwarden sets from its own keys, with the
/// key to use instead.
const RESERVED_PROPERTIES: [(&str, &str); 4] = [
    ("bootstrap.servers", "set kafka.bootstrap_servers instead"),
    ("group.id", "set kafka.group_id instead"),
    ("auto.offset.reset", "set kafka.auto_offset_reset instead"),
    (
        "enable.auto.commit",
        "driftwarden commits offsets itself, after each checkpoint",
    ),
];

/// Smallest and largest `message.max.bytes` librdkafka accepts.
const MESSAGE_BYTES_RANGE: std::ops::RangeInclusive<u64> = 1_000..=1_000_000_000;

impl Checker {
    pub(super) fn service(&mut self, raw: RawService) -> Option<ServiceConfig> {
        let http_listen = self.socket_addr("service.http_listen", &raw.http_listen);
        let shutdown_deadline = self.positive("service.shutdown_deadline", raw.shutdown_deadline);
        let api_token = self.secret("service.api_token", raw.api_token, raw.api_token_file);
        let external_url_ok = match &raw.external_url {
            Some(url) => self.http_url("service.external_url", url),
            None => true,
        };
        let log_level_ok = self.log_level("service.log_level", &raw.log_level);

        Some(ServiceConfig {
            http_listen: http_listen?,
            shutdown_deadline: shutdown_deadline?,
            api_token,
            external_url: external_url_ok.then_some(raw.external_url)?,
            log_format: raw.log_format,
            log_level: log_level_ok.then_some(raw.log_level)?,
        })
    }

    fn socket_addr(&mut self, key: &str, text: &str) -> Option<SocketAddr> {
        let parsed = text.parse::<SocketAddr>().ok();
        let message = format!("expected IP:port such as \"0.0.0.0:8080\", got {text:?}");
        self.ensure(parsed.is_some(), key, message);
        parsed
    }

    /// A `tracing` filter: level names, or `target=level` directives. A bare
    /// word that is not a level would silently mean "this target at
    /// TRACE", which is almost always a typo, so it is refused.
    fn log_level(&mut self, key: &str, text: &str) -> bool {
        if !self.non_blank(key, text) {
            return false;
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(text) {
            self.fail(key, format!("not a log filter: {e}"));
            return false;
        }
        let unknown = text
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty() && !d.contains('='))
            .find(|d| !LEVELS.contains(&d.to_ascii_lowercase().as_str()));
        let message = |d: &str| {
            format!(
                "unknown level {d:?} (expected one of {} or target=level)",
                LEVELS.join(", ")
            )
        };
        unknown.map(|d| self.fail(key, message(d))).is_none()
    }

    pub(super) fn kafka(&mut self, raw: RawKafka) -> Option<KafkaConfig> {
        let servers_ok = self.bootstrap_servers(&raw.bootstrap_servers);
        let group_ok = self.non_blank("kafka.group_id", &raw.group_id);
        let prediction_topics =
            self.topics("kafka.prediction_topics", &raw.prediction_topics, true);
        let label_topics = self.topics("kafka.label_topics", &raw.label_topics, false);
        let dead_letter_topic = match raw.dead_letter_topic.as_deref() {
            None => Some(None),
            Some(name) => self.topic("kafka.dead_letter_topic", name).map(Some),
        };
        let retrain_topic = self.topic("kafka.retrain_topic", &raw.retrain_topic);
        let max_message_bytes = self.message_bytes(raw.max_message_bytes);
        let properties_ok = self.properties(&raw);

        let config = KafkaConfig {
            bootstrap_servers: raw.bootstrap_servers,
            group_id: raw.group_id,
            prediction_topics: prediction_topics?,
            label_topics: label_topics?,
            dead_letter_topic: dead_letter_topic?,
            retrain_topic: retrain_topic?,
            max_message_bytes: max_message_bytes?,
            auto_offset_reset: raw.auto_offset_reset,
            properties: raw.properties,
        };
        let topics_ok = self.topic_roles(&config);
        (servers_ok && group_ok && properties_ok && topics_ok).then_some(config)
    }

    fn bootstrap_servers(&mut self, text: &str) -> bool {
        let key = "kafka.bootstrap_servers";
        self.non_blank(key, text)
            && self.ensure(
                text.split(',').all(|s| !s.trim().is_empty()),
                key,
                "empty entry in the comma-separated server list",
            )
    }

    fn topic(&mut self, key: &str, name: &str) -> Option<TopicName> {
        let result = TopicName::new(name).map_err(|e| format!("topic name {name:?} {e}"));
        self.parsed(key, result)
    }

    fn topics(&mut self, key: &str, names: &[String], required: bool) -> Option<Vec<TopicName>> {
        let mut topics = Vec::new();
        let mut ok = self.ensure(
            !required || !names.is_empty(),
            key,
            "at least one topic is required",
        );
        for (i, name) in names.iter().enumerate() {
            let item = format!("{key}[{i}]");
            match self.topic(&item, name) {
                Some(topic) if topics.contains(&topic) => {
                    ok = self.ensure(false, item, format!("topic {name:?} is listed twice"));
                }
                Some(topic) => topics.push(topic),
                None => ok = false,
            }
        }
        ok.then_some(topics)
    }

    /// Input and output topics must differ: consuming our own retraining
    /// triggers or dead letters would feed garbage back into the windows.
    fn topic_roles(&mut self, kafka: &KafkaConfig) -> bool {
        let inputs = &kafka.prediction_topics;
        let mut ok = true;
        for (i, topic) in kafka.label_topics.iter().enumerate() {
            let clash = inputs.contains(topic);
            let key = format!("kafka.label_topics[{i}]");
            ok &= self.ensure(!clash, key, format!("{topic:?} is also a prediction topic"));
        }
        let inputs: Vec<_> = inputs.iter().chain(&kafka.label_topics).collect();
        let outputs = [
            ("kafka.retrain_topic", Some(&kafka.retrain_topic)),
            ("kafka.dead_letter_topic", kafka.dead_letter_topic.as_ref()),
        ];
        for (key, topic) in outputs {
            let Some(topic) = topic else { continue };
            let clash = inputs.contains(&topic);
            ok &= self.ensure(!clash, key, format!("{topic:?} is also an input topic"));
        }
        ok
    }

    fn message_bytes(&mut self, value: u64) -> Option<std::num::NonZeroUsize> {
        let (lo, hi) = (MESSAGE_BYTES_RANGE.start(), MESSAGE_BYTES_RANGE.end());
        let message = format!("must be between {lo} and {hi} (librdkafka's limits), got {value}");
        let ok = self.ensure(
            MESSAGE_BYTES_RANGE.contains(&value),
            "kafka.max_message_bytes",
            message,
        );
        ok.then(|| self.count("kafka.max_message_bytes", value, 1))
            .flatten()
    }

    fn properties(&mut self, raw: &RawKafka) -> bool {
        let mut ok = true;
        for (name, _) in raw.properties.iter() {
            let key = child_key("kafka.properties", name);
            ok &= self.non_blank(&key, name);
            if let Some((_, hint)) = RESERVED_PROPERTIES.iter().find(|(p, _)| *p == name) {
                ok &= self.ensure(false, key, *hint);
            }
        }
        ok
    }

    pub(super) fn retrain(&mut self, raw: &RawRetrain) -> RetrainConfig {
        RetrainConfig {
            enabled: raw.enabled,
            cooldown: raw.cooldown,
        }
    }

    pub(super) fn baselines(&mut self, raw: RawBaselines) -> Option<BaselinesConfig> {
        let dir_ok = self.non_blank("baselines.dir", &raw.dir.to_string_lossy());
        let limit = self.count("baselines.max_upload_bytes", raw.max_upload_bytes, 1024);
        Some(BaselinesConfig {
            dir: dir_ok.then_some(raw.dir)?,
            reload_interval: (!raw.reload_interval.is_zero()).then_some(raw.reload_interval),
            max_upload_bytes: limit?.get(),
        })
    }

    pub(super) fn telemetry(&mut self, raw: RawTelemetry) -> Option<TelemetryConfig> {
        let interval = self.positive("telemetry.export_interval", raw.export_interval);
        let endpoint = match raw.otlp_endpoint {
            None => Some(None),
            Some(url) => {
                let ok = reqwest::Url::parse(&url)
                    .map(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                    .unwrap_or(false);
                self.ensure(
                    ok,
                    "telemetry.otlp_endpoint",
                    "expected an http:// or https:// URL such as http://127.0.0.1:4318",
                )
                .then_some(Some(url))
            }
        };
        Some(TelemetryConfig {
            otlp_endpoint: endpoint?,
            otlp_protocol: raw.otlp_protocol,
            export_interval: interval?,
            traces: raw.traces,
        })
    }

    pub(super) fn checkpoint(&mut self, raw: RawCheckpoint) -> Option<CheckpointConfig> {
        let dir_ok = self.non_blank("checkpoint.dir", &raw.dir.to_string_lossy());
        let interval_events = self.count64("checkpoint.interval_events", raw.interval_events, 1);
        let interval = self.positive("checkpoint.interval", raw.interval);

        Some(CheckpointConfig {
            dir: dir_ok.then_some(raw.dir)?,
            interval_events: interval_events?,
            interval: interval?,
        })
    }
}
