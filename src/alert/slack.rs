//! Slack: an incoming-webhook message with a plain-text fallback (`text`,
//! used by notifications and clients without blocks) and Block Kit
//! `blocks`: a header, one section per alert, and a context line with the
//! baseline.
//!
//! Slack rejects a message that breaks its limits (`invalid_blocks`), and
//! a rejected alert is a lost alert, so every limit is enforced here: at
//! most 50 blocks (alerts beyond that are summarised in a last section), at
//! most 3,000 characters per section text, at most 150 in the header.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::delivery::{Channel, ConfigError, DeliveryError};
use super::http::{HttpTarget, check_timeout, parse_url};
use super::notification::{Alert, AlertStatus, Notification};
use super::render::{self, plural, truncate_chars};
use super::secret::Secret;

/// Slack's limit on blocks per message.
pub const MAX_BLOCKS: usize = 50;
/// Slack's limit on the text of a section (and of a context element).
pub const MAX_SECTION_CHARS: usize = 3000;
/// Slack's limit on a header's text.
pub const MAX_HEADER_CHARS: usize = 150;
/// Feature names are cut to this before escaping, so one absurd name
/// cannot push the numbers out of its section.
const MAX_NAME_CHARS: usize = 200;
/// Alerts listed in the plain-text fallback.
const FALLBACK_ALERTS: usize = 10;
/// Baseline ids listed in the context line.
const CONTEXT_BASELINES: usize = 5;

/// Configuration of one Slack incoming webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// Channel name in logs and metrics. Default `slack`.
    #[serde(default = "default_name")]
    pub name: String,
    /// The incoming-webhook URL; a secret (its path is the token).
    pub webhook_url: Secret<String>,
    /// Bound on one attempt. Default 10s.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Overrides the webhook's channel (`#ml-alerts`); only legacy
    /// webhooks honour it. Default: the webhook's own channel.
    #[serde(default)]
    pub channel: Option<String>,
    /// Overrides the poster's name; only legacy webhooks honour it.
    #[serde(default)]
    pub username: Option<String>,
}

fn default_name() -> String {
    "slack".to_owned()
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl SlackConfig {
    /// A config for `webhook_url` with defaults elsewhere.
    pub fn new(webhook_url: impl Into<String>) -> Self {
        SlackConfig {
            name: default_name(),
            webhook_url: Secret::new(webhook_url.into()),
            timeout: default_timeout(),
            channel: None,
            username: None,
        }
    }

    /// Every problem with the config; empty when it is valid.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        if self.name.trim().is_empty() {
            problems.push(ConfigError::new("name", "must not be empty"));
        }
        if let Err(e) = parse_url("webhook_url", &self.webhook_url) {
            problems.push(e);
        }
        problems.extend(check_timeout(self.timeout));
        problems
    }
}

/// A Slack channel, ready to deliver.
#[derive(Debug)]
pub struct SlackChannel {
    config: SlackConfig,
    external_url: String,
    target: HttpTarget,
}

impl SlackChannel {
    /// Validates `config` and builds the HTTP client. `external_url` is
    /// where driftwarden's own API is reachable, linked from the message.
    pub fn new(config: &SlackConfig, external_url: Option<&str>) -> Result<Self, Vec<ConfigError>> {
        let problems = config.validate();
        if !problems.is_empty() {
            return Err(problems);
        }
        let url = parse_url("webhook_url", &config.webhook_url).map_err(|e| vec![e])?;
        let target = HttpTarget::new(&config.name, url, Default::default(), config.timeout)
            .map_err(|e| vec![ConfigError::new("webhook_url", e.reason)])?;
        Ok(SlackChannel {
            config: config.clone(),
            external_url: external_url
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_owned(),
            target,
        })
    }

    /// The message this channel sends for `notification`.
    pub fn message(&self, notification: &Notification) -> Value {
        message(notification, &self.config, &self.external_url)
    }
}

impl Channel for SlackChannel {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn endpoint(&self) -> &str {
        self.target.endpoint()
    }

    fn timeout(&self) -> Duration {
        self.config.timeout
    }

    async fn deliver(&self, notification: &Notification) -> Result<(), DeliveryError> {
        let body =
            serde_json::to_vec(&self.message(notification)).map_err(|e| DeliveryError::Render {
                channel: self.config.name.clone(),
                reason: e.to_string(),
            })?;
        // Slack ignores an idempotency header, so none is sent.
        self.target.post_json(body, None).await
    }
}

/// The incoming-webhook payload for `notification`.
pub fn message(notification: &Notification, config: &SlackConfig, external_url: &str) -> Value {
    let mut payload = json!({
        "text": fallback_text(notification),
        "blocks": blocks(notification, external_url),
    });
    if let Some(channel) = &config.channel {
        payload["channel"] = json!(channel);
    }
    if let Some(username) = &config.username {
        payload["username"] = json!(username);
    }
    payload
}

/// Header, one section per alert up to the limit, a summary section for
/// the rest, and the context line: never more than [`MAX_BLOCKS`].
fn blocks(notification: &Notification, external_url: &str) -> Vec<Value> {
    let alerts = &notification.alerts;
    let room = MAX_BLOCKS - 2;
    let shown = if alerts.len() > room {
        room - 1
    } else {
        alerts.len()
    };

    let mut blocks = Vec::with_capacity(shown + 3);
    blocks.push(header(notification));
    blocks.extend(alerts[..shown].iter().map(|a| section(&alert_text(a))));
    if alerts.len() > shown {
        let rest = plural(alerts.len() - shown, "more feature");
        blocks.push(section(&format!("…and {rest}")));
    }
    blocks.push(context(notification, external_url));
    blocks
}

fn header(notification: &Notification) -> Value {
    let icon = match notification.status {
        AlertStatus::Firing => ":rotating_light:",
        AlertStatus::Resolved => ":white_check_mark:",
    };
    let text = format!("{icon} {}", render::subject(notification));
    json!({
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": truncate_chars(&text, MAX_HEADER_CHARS),
            "emoji": true,
        },
    })
}

fn section(text: &str) -> Value {
    json!({
        "type": "section",
        "text": { "type": "mrkdwn", "text": truncate_chars(text, MAX_SECTION_CHARS) },
    })
}

fn alert_text(alert: &Alert) -> String {
    let icon = match alert.status {
        AlertStatus::Firing => ":red_circle:",
        AlertStatus::Resolved => ":large_green_circle:",
    };
    format!(
        "{icon} *{}* · {}\n{}\nwindow {}",
        escape(&truncate_chars(&alert.feature, MAX_NAME_CHARS)),
        alert.check.as_str(),
        escape(&render::evidence_line(alert)),
        render::window_range(alert)
    )
}

/// The baselines compared against, and a link to driftwarden if known.
fn context(notification: &Notification, external_url: &str) -> Value {
    let mut ids: Vec<&str> = Vec::new();
    for alert in &notification.alerts {
        if !ids.contains(&alert.evidence.baseline_id.as_str()) {
            ids.push(&alert.evidence.baseline_id);
        }
    }
    let mut baselines = ids
        .iter()
        .take(CONTEXT_BASELINES)
        .map(|id| format!("`{}`", escape(id)))
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > CONTEXT_BASELINES {
        baselines.push_str(&format!(" and {} more", ids.len() - CONTEXT_BASELINES));
    }

    let mut elements = vec![mrkdwn(&format!("baseline {baselines}"))];
    if !external_url.is_empty() {
        elements.push(mrkdwn(&format!("<{}|driftwarden>", escape(external_url))));
    }
    json!({ "type": "context", "elements": elements })
}

fn mrkdwn(text: &str) -> Value {
    json!({ "type": "mrkdwn", "text": truncate_chars(text, MAX_SECTION_CHARS) })
}

/// The plain-text fallback: the subject and the first alerts.
fn fallback_text(notification: &Notification) -> String {
    let mut text = render::subject(notification);
    for alert in notification.alerts.iter().take(FALLBACK_ALERTS) {
        text.push_str(&format!(
            "\n• {}: {}",
            truncate_chars(&alert.feature, MAX_NAME_CHARS),
            render::evidence_line(alert)
        ));
    }
    if notification.alerts.len() > FALLBACK_ALERTS {
        let rest = notification.alerts.len() - FALLBACK_ALERTS;
        text.push_str(&format!("\n…and {}", plural(rest, "more feature")));
    }
    truncate_chars(&escape(&text), MAX_SECTION_CHARS).into_owned()
}

/// Slack's mrkdwn escaping: `&`, `<` and `>` would otherwise start
/// entities, links and mentions (`<!channel>` in a feature name would page
/// everyone).
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::notification::{CheckKind, Evidence};

    fn alert(feature: String) -> Alert {
        Alert {
            model: "churn".into(),
            model_version: None,
            check: CheckKind::FeatureDrift,
            feature,
            status: AlertStatus::Firing,
            starts_at_ms: 1_764_756_000_000,
            ends_at_ms: None,
            evidence: Evidence {
                test: "ks".into(),
                statistic: 0.31,
                p_value: Some(1e-9),
                threshold: 0.1,
                psi: None,
                window_size: 500,
                baseline_size: 10_000,
                window_start_ms: 1_764_755_700_000,
                window_end_ms: 1_764_756_000_000,
                offsets: None,
                baseline_id: "b-1".into(),
            },
        }
    }

    fn notification(features: impl IntoIterator<Item = String>) -> Notification {
        Notification {
            model: "m".repeat(400),
            model_version: None,
            status: AlertStatus::Firing,
            alerts: features.into_iter().map(alert).collect(),
            decided_at_ms: 1_764_756_000_000,
            sequence: 1,
        }
    }

    fn texts_of(blocks: &[Value], kind: &str) -> Vec<String> {
        blocks
            .iter()
            .filter(|b| b["type"] == kind)
            .map(|b| b["text"]["text"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn two_hundred_long_features_stay_within_slack_limits() {
        let long = |i: usize| format!("fé<&>{i}_{}", "ü".repeat(10_000));
        let n = notification((0..200).map(long));

        let payload = message(&n, &SlackConfig::new("https://hooks.example/x"), "");
        let blocks = payload["blocks"].as_array().unwrap();

        assert_eq!(blocks.len(), MAX_BLOCKS);
        let header = &texts_of(blocks, "header")[0];
        assert!(header.chars().count() <= MAX_HEADER_CHARS);
        let sections = texts_of(blocks, "section");
        assert!(
            sections
                .iter()
                .all(|t| t.chars().count() <= MAX_SECTION_CHARS)
        );
        assert_eq!(sections.last().unwrap(), "…and 153 more features");
        assert!(payload["text"].as_str().unwrap().chars().count() <= MAX_SECTION_CHARS);
    }

    #[test]
    fn a_few_features_get_a_section_each() {
        let n = notification(["age".to_owned(), "plan".to_owned()]);

        let payload = message(
            &n,
            &SlackConfig::new("https://hooks.example/x"),
            "http://dw",
        );
        let blocks = payload["blocks"].as_array().unwrap();

        assert_eq!(blocks.len(), 4);
        let sections = texts_of(blocks, "section");
        assert!(sections[0].contains("*age*"));
        assert!(sections[0].contains("D=0.3100"));
        assert!(sections[0].contains("n=500 m=10000"));
        assert!(
            payload["text"]
                .as_str()
                .unwrap()
                .contains("drift in 2 features")
        );
        let context = blocks[3]["elements"].to_string();
        assert!(context.contains("b-1") && context.contains("http://dw"));
    }

    #[test]
    fn feature_names_cannot_mention_or_link() {
        let n = notification(["<!channel> & co".to_owned()]);

        let payload = message(&n, &SlackConfig::new("https://hooks.example/x"), "");

        let rendered = payload.to_string();
        assert!(!rendered.contains("<!channel>"));
        assert!(rendered.contains("&lt;!channel&gt; &amp; co"));
    }

    #[test]
    fn channel_and_username_are_optional() {
        let n = notification(["age".to_owned()]);
        let mut config = SlackConfig::new("https://hooks.example/x");

        assert!(message(&n, &config, "").get("channel").is_none());
        config.channel = Some("#ml".into());
        config.username = Some("driftwarden".into());
        let payload = message(&n, &config, "");
        assert_eq!(
            (payload["channel"].as_str(), payload["username"].as_str()),
            (Some("#ml"), Some("driftwarden"))
        );
    }
}
