//! Turning the validated configuration into running parts: monitor
//! settings and baselines, alert channels, loop settings.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::alert::channels::DeliveryConfig;
use crate::alert::delivery::RetryPolicy;
use crate::alert::dispatcher::Dispatcher;
use crate::alert::email::{EmailConfig, EmailTls};
use crate::alert::slack::SlackConfig;
use crate::alert::webhook::WebhookConfig;
use crate::config::{self, Config, ModelConfig};
use crate::monitor::{self, Monitor, MonitorSettings, Persistence};

use super::baselines::BaselineFiles;
use super::ingest::IngestSettings;

/// The monitor's settings for one model, from its (override-merged)
/// configuration and the global alert and retraining settings.
pub fn monitor_settings(config: &Config, model: &ModelConfig) -> anyhow::Result<MonitorSettings> {
    let m = &model.monitor;
    let (window_size, window_duration_ms) = match m.window {
        config::Window::Count(n) => (n.get(), None),
        // The structures are laid out for the default count; the span
        // decides what stays in the window.
        config::Window::Time(span) => (DEFAULT_NOMINAL_WINDOW, Some(millis(span))),
    };
    let decision = match m.decision {
        config::Decision::Calibrated { target_run_length } => monitor::Decision::Calibrated {
            target_run_length: target_run_length.get(),
        },
        config::Decision::Fixed { alpha, correction } => monitor::Decision::Fixed {
            alpha: alpha.get(),
            correction: match correction {
                config::Correction::None => monitor::Correction::None,
                config::Correction::Bonferroni => monitor::Correction::Bonferroni,
                config::Correction::Bh => monitor::Correction::Bh,
            },
        },
    };
    let check_interval = m.check_interval.get() as u64;
    Ok(MonitorSettings {
        window_size,
        window_duration_ms,
        min_window: m.min_window.get(),
        check_interval,
        decision,
        persistence: Persistence {
            for_checks: checks_for(m.persistence.for_events, check_interval),
            for_duration_ms: millis(m.persistence.for_duration),
            resolve_after_checks: checks_for(m.resolve_after_events, check_interval),
        },
        group_wait_events: config.alerts.group_wait_events,
        repeat_interval_ms: millis(config.alerts.repeat_interval),
        send_resolved: config.alerts.send_resolved,
        retrain_cooldown_ms: config
            .retrain
            .enabled
            .then(|| millis(config.retrain.cooldown)),
        missing_rate_tolerance: m.missing_rate_tolerance.get(),
        seed: MonitorSettings::default().seed,
        performance: performance_settings(&m.performance),
    })
}

fn performance_settings(p: &config::PerformanceConfig) -> monitor::PerformanceSettings {
    monitor::PerformanceSettings {
        window: p.window.get(),
        min_samples: p.min_samples.get(),
        accuracy_tolerance: p.accuracy_tolerance.get(),
        error_tolerance: p.error_tolerance,
        alpha: p.alpha.get(),
        max_classes: p.max_classes,
        join: monitor::join::JoinBounds {
            max_entries: p.join_max_entries.get(),
            max_age_ms: millis(p.join_max_age),
        },
    }
}

/// Window structures' nominal size for event-time windows.
const DEFAULT_NOMINAL_WINDOW: usize = 1000;

/// Persistence is configured in events; the lifecycle counts checks.
fn checks_for(events: u64, check_interval: u64) -> u32 {
    events
        .div_ceil(check_interval)
        .clamp(1, u64::from(u32::MAX)) as u32
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Loads every model's baselines (defaults, configured versions, the
/// store) and builds the monitor; the files are kept for reloading.
pub fn build_monitor(config: &Config) -> anyhow::Result<(Monitor, BaselineFiles)> {
    let (files, loaded) = BaselineFiles::open(config)?;
    let mut monitor = Monitor::new(MonitorSettings::default().seed);
    for (slot, baseline) in loaded {
        let Some(model) = config.model(&slot.model) else {
            continue;
        };
        let settings = monitor_settings(config, model)?;
        monitor
            .set_baseline_for(slot.version.as_deref(), Arc::new(baseline), settings)
            .with_context(|| format!("baseline of {slot}"))?;
    }
    Ok((monitor, files))
}

/// The alert channels and their delivery queues: the validated channel
/// settings handed to the delivery layer's own configuration type.
pub fn build_dispatcher(config: &Config) -> anyhow::Result<Dispatcher> {
    Dispatcher::from_config(&delivery_config(config)).map_err(config_errors)
}

/// The delivery layer's view of the configuration.
pub fn delivery_config(config: &Config) -> DeliveryConfig {
    let retry = &config.alerts.retry;
    let channels = &config.channels;
    DeliveryConfig {
        queue_capacity: config.alerts.queue_capacity.get(),
        retry: RetryPolicy {
            max_attempts: retry.max_attempts.get(),
            initial_backoff: retry.initial_backoff,
            max_backoff: retry.max_backoff,
            multiplier: retry.multiplier,
            jitter: retry.jitter.get(),
        },
        external_url: config.service.external_url.clone(),
        webhooks: channels.webhook.iter().map(webhook).collect(),
        slack: channels.slack.iter().map(slack).collect(),
        email: channels.email.iter().map(email).collect(),
    }
}

fn webhook(c: &config::WebhookChannel) -> WebhookConfig {
    let mut out = WebhookConfig::new(c.url.expose());
    out.timeout = c.timeout;
    out.headers = c
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.expose().to_string().into()))
        .collect();
    out
}

fn slack(c: &config::SlackChannel) -> SlackConfig {
    let mut out = SlackConfig::new(c.webhook_url.expose());
    out.timeout = c.timeout;
    out.channel = c.channel.clone();
    out.username = c.username.clone();
    out
}

fn email(c: &config::EmailChannel) -> EmailConfig {
    let to = c.to.iter().map(|a| a.as_str().to_string()).collect();
    let mut out = EmailConfig::new(c.host.clone(), c.from.as_str(), to);
    out.port = Some(c.port);
    out.tls = match c.tls {
        config::SmtpTls::Starttls => EmailTls::Starttls,
        config::SmtpTls::Tls => EmailTls::Tls,
        config::SmtpTls::None => EmailTls::None,
    };
    out.username = c.username.clone();
    out.password = c.password.as_ref().map(|p| p.expose().to_string().into());
    out.timeout = c.timeout;
    out
}

fn config_errors(errors: Vec<crate::alert::delivery::ConfigError>) -> anyhow::Error {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    anyhow::anyhow!("invalid channel configuration:\n{}", lines.join("\n"))
}

/// Loop settings from the configuration.
pub fn ingest_settings(config: &Config) -> IngestSettings {
    IngestSettings {
        max_message_bytes: config.kafka.max_message_bytes.get(),
        dead_letter_topic: config
            .kafka
            .dead_letter_topic
            .as_ref()
            .map(|t| t.as_str().to_string()),
        retrain_topic: config
            .retrain
            .enabled
            .then(|| config.kafka.retrain_topic.as_str().to_string()),
        reject_log_interval: Duration::from_secs(10),
        prediction_topics: topic_names(&config.kafka.prediction_topics),
        label_topics: topic_names(&config.kafka.label_topics)
            .into_iter()
            .collect(),
        routes: config
            .models
            .iter()
            .map(|m| {
                let channels = m.channels.iter().map(|c| c.as_str().to_string()).collect();
                (m.name.as_str().to_string(), channels)
            })
            .collect(),
    }
}

fn topic_names(topics: &[config::TopicName]) -> Vec<String> {
    topics.iter().map(|t| t.as_str().to_string()).collect()
}
