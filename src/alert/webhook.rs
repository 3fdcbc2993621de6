//! The generic webhook: a notification rendered as the JSON that
//! Alertmanager's webhook receiver sends (payload version 4), so receivers
//! written for Alertmanager work unchanged.
//!
//! Every attempt carries the same `Idempotency-Key` header, the
//! notification's idempotency key, so a receiver can drop the duplicates
//! that retries and replays produce.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::delivery::{Channel, ConfigError, DeliveryError};
use super::http::{HttpTarget, check_timeout, parse_headers, parse_url};
use super::notification::Notification;
use super::secret::Secret;

mod alertmanager;

pub use alertmanager::{AlertmanagerAlert, AlertmanagerPayload, alertmanager_payload};

/// Configuration of one webhook receiver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Channel name in logs, metrics and the payload's `receiver`.
    /// Default `webhook`.
    #[serde(default = "default_name")]
    pub name: String,
    /// Where to POST. A secret: receivers often take a token in the URL.
    pub url: Secret<String>,
    /// Bound on one attempt (connect, send, answer). Default 10s.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Extra headers sent with every request, e.g. `Authorization`. Their
    /// values are secrets. `Content-Type` and `Idempotency-Key` are set by
    /// driftwarden and override headers of the same name.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret<String>>,
}

fn default_name() -> String {
    "webhook".to_owned()
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl WebhookConfig {
    /// A config for `url` with default name, timeout and no headers.
    pub fn new(url: impl Into<String>) -> Self {
        WebhookConfig {
            name: default_name(),
            url: Secret::new(url.into()),
            timeout: default_timeout(),
            headers: BTreeMap::new(),
        }
    }

    /// Every problem with the config; empty when it is valid.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        if self.name.trim().is_empty() {
            problems.push(ConfigError::new("name", "must not be empty"));
        }
        if let Err(e) = parse_url("url", &self.url) {
            problems.push(e);
        }
        problems.extend(check_timeout(self.timeout));
        if let Err(header_problems) = parse_headers(&self.headers) {
            problems.extend(header_problems);
        }
        problems
    }
}

/// A webhook channel, ready to deliver.
#[derive(Debug)]
pub struct WebhookChannel {
    name: String,
    timeout: Duration,
    external_url: String,
    target: HttpTarget,
}

impl WebhookChannel {
    /// Validates `config` and builds the HTTP client. `external_url` is
    /// where driftwarden's own API is reachable, for links in the payload.
    pub fn new(
        config: &WebhookConfig,
        external_url: Option<&str>,
    ) -> Result<Self, Vec<ConfigError>> {
        let problems = config.validate();
        if !problems.is_empty() {
            return Err(problems);
        }
        let url = parse_url("url", &config.url).map_err(|e| vec![e])?;
        let headers = parse_headers(&config.headers)?;
        let target =
            HttpTarget::new(&config.name, url, headers, config.timeout).map_err(|e| vec![e])?;
        Ok(WebhookChannel {
            name: config.name.clone(),
            timeout: config.timeout,
            external_url: external_url
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_owned(),
            target,
        })
    }

    /// The payload this channel sends for `notification`.
    pub fn payload(&self, notification: &Notification) -> AlertmanagerPayload {
        alertmanager_payload(notification, &self.name, &self.external_url)
    }
}

impl Channel for WebhookChannel {
    fn name(&self) -> &str {
        &self.name
    }

    fn endpoint(&self) -> &str {
        self.target.endpoint()
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    async fn deliver(&self, notification: &Notification) -> Result<(), DeliveryError> {
        let body =
            serde_json::to_vec(&self.payload(notification)).map_err(|e| DeliveryError::Render {
                channel: self.name.clone(),
                reason: e.to_string(),
            })?;
        let key = notification.idempotency_key();
        self.target.post_json(body, Some(&key)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_problems_are_all_reported() {
        let mut config = WebhookConfig::new("not a url");
        config.name = String::new();
        config.timeout = Duration::ZERO;

        let keys: Vec<String> = config.validate().into_iter().map(|e| e.key).collect();

        assert_eq!(keys, ["name", "url", "timeout"]);
    }
}
