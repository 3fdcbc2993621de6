//! The delivery section of the configuration: every channel plus the
//! shared queue and retry settings, and building a running
//! [`Dispatcher`] from it.
//!
//! ```toml
//! queue_capacity = 64
//! external_url = "http://driftwarden.ml.svc:8080"
//!
//! [retry]
//! max_attempts = 5
//! initial_backoff = "500ms"
//!
//! [[webhooks]]
//! url = "https://receiver.example.com/hook"
//! headers = { Authorization = "Bearer …" }
//!
//! [[slack]]
//! webhook_url = "https://hooks.slack.com/services/…"
//!
//! [[email]]
//! host = "smtp.example.com"
//! from = "driftwarden <alerts@example.com>"
//! to = ["ml-oncall@example.com"]
//! ```

use serde::{Deserialize, Serialize};

use super::delivery::{Channel, ConfigError, RetryPolicy};
use super::dispatcher::{DEFAULT_QUEUE_CAPACITY, Dispatcher, DispatcherBuilder};
use super::email::{EmailChannel, EmailConfig};
use super::slack::{SlackChannel, SlackConfig};
use super::webhook::{WebhookChannel, WebhookConfig};

/// Every alert channel and how deliveries to them are queued and retried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Notifications each channel may hold while its receiver is slow or
    /// down; past that, new ones are dropped for that channel. Default 64.
    pub queue_capacity: usize,
    /// Retry policy of every channel.
    pub retry: RetryPolicy,
    /// Where driftwarden's HTTP API is reachable from the receivers, for
    /// links in messages (`externalURL`, `generatorURL`). Default: none.
    pub external_url: Option<String>,
    /// Alertmanager-compatible webhooks.
    pub webhooks: Vec<WebhookConfig>,
    /// Slack incoming webhooks.
    pub slack: Vec<SlackConfig>,
    /// Email recipients lists, one SMTP relay each.
    pub email: Vec<EmailConfig>,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            retry: RetryPolicy::default(),
            external_url: None,
            webhooks: Vec::new(),
            slack: Vec::new(),
            email: Vec::new(),
        }
    }
}

impl DeliveryConfig {
    /// Every problem, keyed from this section (`email[0].to[1]`), without
    /// building anything: usable by `check-config` outside a runtime.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        if self.queue_capacity == 0 {
            problems.push(ConfigError::new("queue_capacity", "must be at least 1"));
        }
        problems.extend(self.retry.validate().into_iter().map(|e| e.within("retry")));
        let sections = [
            (
                "webhooks",
                self.webhooks
                    .iter()
                    .map(WebhookConfig::validate)
                    .collect::<Vec<_>>(),
            ),
            (
                "slack",
                self.slack.iter().map(SlackConfig::validate).collect(),
            ),
            (
                "email",
                self.email.iter().map(EmailConfig::validate).collect(),
            ),
        ];
        for (section, per_channel) in sections {
            for (i, channel_problems) in per_channel.into_iter().enumerate() {
                let prefix = format!("{section}[{i}]");
                problems.extend(channel_problems.into_iter().map(|e| e.within(&prefix)));
            }
        }
        problems.extend(self.duplicate_names());
        problems
    }

    /// Channel names must be unique: they key logs, metrics and outcomes.
    fn duplicate_names(&self) -> Vec<ConfigError> {
        let names = self.channel_names();
        let mut problems = Vec::new();
        for (i, (key, name)) in names.iter().enumerate() {
            if names[..i].iter().any(|(_, other)| other == name) {
                let reason = format!("channel name `{name}` is used more than once");
                problems.push(ConfigError::new(format!("{key}.name"), reason));
            }
        }
        problems
    }

    fn channel_names(&self) -> Vec<(String, &str)> {
        let webhooks = self
            .webhooks
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("webhooks[{i}]"), c.name.as_str()));
        let slack = self
            .slack
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("slack[{i}]"), c.name.as_str()));
        let email = self
            .email
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("email[{i}]"), c.name.as_str()));
        webhooks.chain(slack).chain(email).collect()
    }
}

impl Dispatcher {
    /// Validates `config`, builds every channel and starts their tasks.
    /// Every problem is reported at once, keyed from the section.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn from_config(config: &DeliveryConfig) -> Result<Dispatcher, Vec<ConfigError>> {
        let problems = config.validate();
        if !problems.is_empty() {
            return Err(problems);
        }
        let external_url = config.external_url.as_deref();

        let mut builder = DispatcherBuilder::new()
            .queue_capacity(config.queue_capacity)
            .retry(config.retry.clone());
        let mut problems = Vec::new();
        for (i, c) in config.webhooks.iter().enumerate() {
            let built = WebhookChannel::new(c, external_url);
            builder = add(builder, built, &format!("webhooks[{i}]"), &mut problems);
        }
        for (i, c) in config.slack.iter().enumerate() {
            let built = SlackChannel::new(c, external_url);
            builder = add(builder, built, &format!("slack[{i}]"), &mut problems);
        }
        for (i, c) in config.email.iter().enumerate() {
            let built = EmailChannel::new(c, external_url);
            builder = add(builder, built, &format!("email[{i}]"), &mut problems);
        }

        if !problems.is_empty() {
            return Err(problems);
        }
        builder.build()
    }
}

/// Adds a built channel, or keeps its problems under `key`.
fn add<C: Channel>(
    builder: DispatcherBuilder,
    built: Result<C, Vec<ConfigError>>,
    key: &str,
    problems: &mut Vec<ConfigError>,
) -> DispatcherBuilder {
    match built {
        Ok(channel) => builder.channel(channel),
        Err(errors) => {
            problems.extend(errors.into_iter().map(|e| e.within(key)));
            builder
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_toml_section_with_defaults() {
        let config: DeliveryConfig = toml::from_str(
            r#"
            queue_capacity = 8
            [retry]
            initial_backoff = "250ms"
            [[webhooks]]
            url = "http://127.0.0.1:9/hook"
            [[email]]
            host = "localhost"
            tls = "none"
            from = "dw@example.com"
            to = ["a@example.com"]
            "#,
        )
        .unwrap();

        assert_eq!(config.queue_capacity, 8);
        assert_eq!(config.retry.max_attempts, 5);
        assert_eq!(config.webhooks[0].name, "webhook");
        assert_eq!(config.email[0].port(), 25);
        assert!(config.validate().is_empty(), "{:?}", config.validate());
    }

    #[test]
    fn problems_are_keyed_from_the_section() {
        let mut config = DeliveryConfig {
            queue_capacity: 0,
            ..DeliveryConfig::default()
        };
        config
            .webhooks
            .push(WebhookConfig::new("http://127.0.0.1:9/a"));
        config.webhooks.push(WebhookConfig::new("nope"));
        config
            .email
            .push(EmailConfig::new("h", "dw@example.com", vec!["bad".into()]));

        let keys: Vec<String> = config.validate().into_iter().map(|e| e.key).collect();

        assert_eq!(
            keys,
            [
                "queue_capacity",
                "webhooks[1].url",
                "email[0].to[0]",
                "webhooks[1].name"
            ]
        );
    }

    #[test]
    fn secrets_do_not_survive_serialization() {
        let mut config = DeliveryConfig::default();
        config.slack.push(SlackConfig::new(
            "https://hooks.slack.com/services/T/B/token",
        ));

        let dumped = toml::to_string(&config).unwrap();

        assert!(!dumped.contains("token"), "{dumped}");
        assert!(dumped.contains("***"));
    }
}
