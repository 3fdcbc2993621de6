//! Checks for `[alerts]`, routes and `[channels.*]`.
//!
//! A channel is configured when its section says where to send: the
//! webhook's `url`, Slack's `webhook_url`, or any addressing key of email.
//! Settings given for a channel that is not configured are reported, since
//! they show an intent the configuration does not carry out.

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use reqwest::header::{HeaderName, HeaderValue};

use super::Checker;
use crate::config::layers::child_key;
use crate::config::raw::{RawAlerts, RawChannels, RawEmail, RawRetry, RawSlack, RawWebhook};
use crate::config::schema::{
    AlertsConfig, ChannelKind, ChannelsConfig, EmailChannel, RetryPolicy, SlackChannel,
    WebhookChannel,
};
use crate::config::types::{EmailAddress, Fraction, Secret};

impl Checker {
    pub(super) fn alerts(
        &mut self,
        raw: RawAlerts,
        enabled: Option<&[ChannelKind]>,
    ) -> Option<AlertsConfig> {
        let repeat_interval = self.positive("alerts.repeat_interval", raw.repeat_interval);
        let queue_capacity = self.count("alerts.queue_capacity", raw.queue_capacity, 1);
        let channels = self.route("alerts.channels", &raw.channels, enabled);
        let retry = self.retry(&raw.retry);

        Some(AlertsConfig {
            repeat_interval: repeat_interval?,
            send_resolved: raw.send_resolved,
            group_wait_events: raw.group_wait_events,
            queue_capacity: queue_capacity?,
            channels: channels?,
            retry: retry?,
        })
    }

    /// A list of channel names. Each must name a configured channel, except
    /// that when no channel is configured at all any known name is accepted
    /// (alerts are then visible through the API only, and the default route
    /// must stay valid).
    pub(super) fn route(
        &mut self,
        key: &str,
        names: &[String],
        enabled: Option<&[ChannelKind]>,
    ) -> Option<Vec<ChannelKind>> {
        let errors_before = self.errors.len();
        let mut route = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let item = format!("{key}[{i}]");
            match ChannelKind::from_name(name) {
                Some(kind) if route.contains(&kind) => {
                    self.fail(item, format!("{name:?} is listed twice"))
                }
                Some(kind) if is_usable(kind, enabled) => route.push(kind),
                Some(_) => self.fail(
                    item,
                    format!(
                        "channel {name:?} is not configured ({})",
                        configured(enabled)
                    ),
                ),
                None => self.fail(
                    item,
                    format!("unknown channel {name:?} ({})", configured(enabled)),
                ),
            }
        }
        (self.errors.len() == errors_before).then_some(route)
    }

    fn retry(&mut self, raw: &RawRetry) -> Option<RetryPolicy> {
        let key = |field: &str| format!("alerts.retry.{field}");
        let attempts = u32::try_from(raw.max_attempts)
            .ok()
            .and_then(NonZeroU32::new);
        let message = format!(
            "must be between 1 and {}, got {}",
            u32::MAX,
            raw.max_attempts
        );
        self.ensure(attempts.is_some(), key("max_attempts"), message);
        let initial_backoff = self.positive(key("initial_backoff"), raw.initial_backoff);
        let ordered = raw.max_backoff >= raw.initial_backoff;
        self.ensure(
            ordered,
            key("max_backoff"),
            "must be at least alerts.retry.initial_backoff",
        );
        let multiplier_ok = raw.multiplier.is_finite() && raw.multiplier >= 1.0;
        let message = format!("must be at least 1, got {}", raw.multiplier);
        self.ensure(multiplier_ok, key("multiplier"), message);
        let jitter = Fraction::new(raw.jitter);
        let message = format!("must be in [0, 1], got {}", raw.jitter);
        self.ensure(jitter.is_some(), key("jitter"), message);

        let policy = RetryPolicy {
            max_attempts: attempts?,
            initial_backoff: initial_backoff?,
            max_backoff: raw.max_backoff,
            multiplier: raw.multiplier,
            jitter: jitter?,
        };
        (ordered && multiplier_ok).then_some(policy)
    }

    pub(super) fn channels(&mut self, raw: RawChannels) -> Option<ChannelsConfig> {
        let errors_before = self.errors.len();
        let webhook = self.webhook(raw.webhook);
        let slack = self.slack(raw.slack);
        let email = self.email(raw.email);
        let channels = ChannelsConfig {
            webhook,
            slack,
            email,
        };
        (self.errors.len() == errors_before).then_some(channels)
    }

    fn webhook(&mut self, raw: RawWebhook) -> Option<WebhookChannel> {
        let key = "channels.webhook.url";
        let url = self.secret(key, raw.url, raw.url_file);
        let timeout = self.positive("channels.webhook.timeout", raw.timeout);
        let headers_ok = self.headers(&raw.headers);
        let Some(url) = url else {
            self.unused("channels.webhook.headers", !raw.headers.is_empty(), key);
            return None;
        };
        let url_ok = self.http_url(key, url.expose());

        let channel = WebhookChannel {
            url,
            timeout: timeout?,
            headers: raw.headers,
        };
        (url_ok && headers_ok).then_some(channel)
    }

    fn headers(&mut self, headers: &BTreeMap<String, Secret>) -> bool {
        let mut ok = true;
        for (name, value) in headers {
            let key = child_key("channels.webhook.headers", name);
            let name_ok = HeaderName::from_bytes(name.as_bytes()).is_ok();
            ok &= self.ensure(name_ok, &key, "not a valid HTTP header name");
            let value_ok = HeaderValue::from_str(value.expose()).is_ok();
            ok &= self.ensure(value_ok, &key, "value is not a valid HTTP header value");
        }
        ok
    }

    fn slack(&mut self, raw: RawSlack) -> Option<SlackChannel> {
        let key = "channels.slack.webhook_url";
        let url = self.secret(key, raw.webhook_url, raw.webhook_url_file);
        let timeout = self.positive("channels.slack.timeout", raw.timeout);
        let Some(url) = url else {
            self.unused("channels.slack.channel", raw.channel.is_some(), key);
            self.unused("channels.slack.username", raw.username.is_some(), key);
            return None;
        };
        let url_ok = self.http_url(key, url.expose());

        let channel = SlackChannel {
            webhook_url: url,
            timeout: timeout?,
            channel: raw.channel,
            username: raw.username,
        };
        url_ok.then_some(channel)
    }

    fn email(&mut self, raw: RawEmail) -> Option<EmailChannel> {
        let key = |field: &str| format!("channels.email.{field}");
        let configured = is_email_configured(&raw);
        let password = self.secret(&key("password"), raw.password, raw.password_file);
        let timeout = self.positive(key("timeout"), raw.timeout);
        if !configured {
            return None;
        }
        let host = self.required_text(&key("host"), raw.host.as_deref());
        self.ensure(raw.port != 0, key("port"), "must be between 1 and 65535");
        let from = self.mailbox(&key("from"), raw.from.as_deref());
        let to = self.recipients(&key("to"), &raw.to);
        let login_ok = raw.username.is_some() || password.is_none();
        self.ensure(
            login_ok,
            key("password"),
            "set without channels.email.username",
        );

        let channel = EmailChannel {
            host: host?,
            port: raw.port,
            tls: raw.tls,
            username: raw.username,
            password,
            from: from?,
            to: to?,
            timeout: timeout?,
        };
        (raw.port != 0 && login_ok).then_some(channel)
    }

    fn required_text(&mut self, key: &str, value: Option<&str>) -> Option<String> {
        let value = value.unwrap_or_default();
        let message = "required when the email channel is configured";
        self.ensure(!value.trim().is_empty(), key, message)
            .then(|| value.to_owned())
    }

    fn mailbox(&mut self, key: &str, value: Option<&str>) -> Option<EmailAddress> {
        let text = self.required_text(key, value)?;
        self.parsed(key, EmailAddress::new(&text))
    }

    fn recipients(&mut self, key: &str, values: &[String]) -> Option<Vec<EmailAddress>> {
        let message = "at least one recipient is required";
        let mut ok = self.ensure(!values.is_empty(), key, message);
        let mut to = Vec::new();
        for (i, value) in values.iter().enumerate() {
            match self.parsed(format!("{key}[{i}]"), EmailAddress::new(value)) {
                Some(address) => to.push(address),
                None => ok = false,
            }
        }
        ok.then_some(to)
    }

    /// An absolute http(s) URL. The message never includes the URL, which
    /// is usually a secret.
    pub(super) fn http_url(&mut self, key: &str, url: &str) -> bool {
        match reqwest::Url::parse(url) {
            Err(e) => self.ensure(false, key, format!("not a valid URL: {e}")),
            Ok(url) => {
                let scheme = url.scheme();
                let message = format!("must be an http or https URL, not {scheme:?}");
                self.ensure(matches!(scheme, "http" | "https"), key, message)
            }
        }
    }

    /// Reports a setting of a channel that is not configured.
    fn unused(&mut self, key: &str, set: bool, enabling_key: &str) {
        self.ensure(
            !set,
            key,
            format!("set, but the channel is disabled: {enabling_key} is not set"),
        );
    }
}

fn is_email_configured(raw: &RawEmail) -> bool {
    raw.host.is_some()
        || raw.from.is_some()
        || !raw.to.is_empty()
        || raw.username.is_some()
        || raw.password.is_some()
        || raw.password_file.is_some()
}

fn is_usable(kind: ChannelKind, enabled: Option<&[ChannelKind]>) -> bool {
    match enabled {
        Some([]) | None => true,
        Some(enabled) => enabled.contains(&kind),
    }
}

fn configured(enabled: Option<&[ChannelKind]>) -> String {
    let names = match enabled {
        Some([]) => "none".to_owned(),
        Some(kinds) => kinds
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        None => ChannelKind::ALL.map(ChannelKind::as_str).join(", "),
    };
    match enabled {
        None => format!("channels: {names}"),
        Some(_) => format!("configured: {names}"),
    }
}
