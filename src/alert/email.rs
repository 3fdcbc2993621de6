//! Email over SMTP with lettre: STARTTLS, implicit TLS, or plain for a
//! local relay; optional credentials; a multipart/alternative message with
//! a plain-text part and an HTML part.
//!
//! Addresses are parsed when the channel is built, so a typo in `to` is a
//! configuration error at start-up rather than an alert lost at 3 am. The
//! notification's idempotency key is the `Message-ID`, so a retried or
//! replayed notification is the same message to mail clients.

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};

use super::delivery::{Channel, ConfigError, DeliveryError, error_chain};
use super::notification::Notification;
use super::render;
use super::secret::Secret;

mod body;

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailTls {
    /// Plain connection upgraded with STARTTLS, which is required (no
    /// silent downgrade). Default port 587.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS). Default port 465.
    Tls,
    /// No encryption, for a relay on localhost or in the same pod.
    /// Default port 25.
    None,
}

impl EmailTls {
    fn default_port(self) -> u16 {
        match self {
            EmailTls::Starttls => 587,
            EmailTls::Tls => 465,
            EmailTls::None => 25,
        }
    }
}

/// Configuration of one email channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// Channel name in logs and metrics. Default `email`.
    #[serde(default = "default_name")]
    pub name: String,
    /// SMTP server host name; with TLS it must match the certificate.
    pub host: String,
    /// SMTP port. Default: 587, 465 or 25 according to `tls`.
    #[serde(default)]
    pub port: Option<u16>,
    /// `starttls` (default), `tls` or `none`.
    #[serde(default)]
    pub tls: EmailTls,
    /// Login name; set together with `password`, or neither.
    #[serde(default)]
    pub username: Option<String>,
    /// Login password; a secret.
    #[serde(default)]
    pub password: Option<Secret<String>>,
    /// Sender, e.g. `driftwarden <alerts@example.com>`.
    pub from: String,
    /// Recipients; at least one.
    pub to: Vec<String>,
    /// Bound on one attempt (connect, TLS, login, send). Default 30s.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_name() -> String {
    "email".to_owned()
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

impl EmailConfig {
    /// A config for `host` with STARTTLS, no login and default timeout.
    pub fn new(host: impl Into<String>, from: impl Into<String>, to: Vec<String>) -> Self {
        EmailConfig {
            name: default_name(),
            host: host.into(),
            port: None,
            tls: EmailTls::default(),
            username: None,
            password: None,
            from: from.into(),
            to,
            timeout: default_timeout(),
        }
    }

    /// The port in use: the configured one or the mode's default.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(self.tls.default_port())
    }

    /// Every problem with the config; empty when it is valid.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        if self.name.trim().is_empty() {
            problems.push(ConfigError::new("name", "must not be empty"));
        }
        if self.host.trim().is_empty() {
            problems.push(ConfigError::new("host", "must not be empty"));
        }
        if self.username.is_some() != self.password.is_some() {
            let reason = "username and password must be set together";
            problems.push(ConfigError::new("password", reason));
        }
        if self.timeout.is_zero() {
            problems.push(ConfigError::new("timeout", "must be greater than zero"));
        }
        if let Err(e) = self.mailboxes() {
            problems.extend(e);
        }
        problems
    }

    /// The parsed sender and recipients.
    fn mailboxes(&self) -> Result<(Mailbox, Vec<Mailbox>), Vec<ConfigError>> {
        let mut problems = Vec::new();
        let from = parse_mailbox("from", &self.from)
            .map_err(|e| problems.push(e))
            .ok();
        let mut to = Vec::new();
        for (i, address) in self.to.iter().enumerate() {
            match parse_mailbox(&format!("to[{i}]"), address) {
                Ok(mailbox) => to.push(mailbox),
                Err(e) => problems.push(e),
            }
        }
        if self.to.is_empty() {
            problems.push(ConfigError::new("to", "needs at least one recipient"));
        }
        match from {
            Some(from) if problems.is_empty() => Ok((from, to)),
            _ => Err(problems),
        }
    }
}

fn parse_mailbox(key: &str, address: &str) -> Result<Mailbox, ConfigError> {
    address
        .parse()
        .map_err(|e| ConfigError::new(key, format!("`{address}` is not a valid address ({e})")))
}

/// An email channel, ready to deliver.
pub struct EmailChannel {
    name: String,
    endpoint: String,
    timeout: Duration,
    from: Mailbox,
    to: Vec<Mailbox>,
    external_url: String,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl std::fmt::Debug for EmailChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not derived: lettre's transport Debug would print the credentials.
        f.debug_struct("EmailChannel")
            .field("name", &self.name)
            .field("endpoint", &self.endpoint)
            .field("to", &self.to.len())
            .finish_non_exhaustive()
    }
}

impl EmailChannel {
    /// Validates `config` (addresses included) and sets up the transport.
    /// Must run inside a Tokio runtime: lettre's connection pool starts a
    /// background task.
    pub fn new(config: &EmailConfig, external_url: Option<&str>) -> Result<Self, Vec<ConfigError>> {
        let problems = config.validate();
        if !problems.is_empty() {
            return Err(problems);
        }
        let (from, to) = config.mailboxes()?;
        let transport = transport(config).map_err(|e| vec![e])?;
        let scheme = if config.tls == EmailTls::Tls {
            "smtps"
        } else {
            "smtp"
        };
        Ok(EmailChannel {
            name: config.name.clone(),
            endpoint: format!("{scheme}://{}:{}", config.host, config.port()),
            timeout: config.timeout,
            from,
            to,
            external_url: external_url
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_owned(),
            transport,
        })
    }

    /// The message this channel sends for `notification`.
    pub fn message(&self, notification: &Notification) -> Result<Message, DeliveryError> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(render::subject(notification))
            .message_id(Some(format!(
                "<{}@driftwarden>",
                notification.idempotency_key()
            )));
        for mailbox in &self.to {
            builder = builder.to(mailbox.clone());
        }
        let body = MultiPart::alternative_plain_html(
            body::plain_text(notification, &self.external_url),
            body::html(notification, &self.external_url),
        );
        builder.multipart(body).map_err(|e| DeliveryError::Render {
            channel: self.name.clone(),
            reason: e.to_string(),
        })
    }

    fn smtp_error(&self, error: lettre::transport::smtp::Error) -> DeliveryError {
        if error.is_timeout() {
            return DeliveryError::Timeout {
                channel: self.name.clone(),
                endpoint: self.endpoint.clone(),
                timeout: self.timeout,
            };
        }
        // A reply from the server, or our own client refusing (e.g. the
        // server offers no STARTTLS): the answer says whether to retry.
        // Anything else is the connection (network, TLS, garbled reply).
        if error.is_permanent() || error.is_transient() || error.is_client() {
            return DeliveryError::Smtp {
                channel: self.name.clone(),
                endpoint: self.endpoint.clone(),
                code: error.status().map(u16::from),
                retryable: error.is_transient(),
                source: error_chain(&error).into(),
            };
        }
        DeliveryError::Connection {
            channel: self.name.clone(),
            endpoint: self.endpoint.clone(),
            source: error_chain(&error).into(),
        }
    }
}

/// The lettre transport for the configured security mode.
fn transport(config: &EmailConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>, ConfigError> {
    type Transport = AsyncSmtpTransport<Tokio1Executor>;
    let builder = match config.tls {
        EmailTls::Starttls => Transport::starttls_relay(&config.host),
        EmailTls::Tls => Transport::relay(&config.host),
        EmailTls::None => Ok(Transport::builder_dangerous(&config.host)),
    }
    .map_err(|e| ConfigError::new("host", format!("cannot set up TLS: {e}")))?;

    let mut builder = builder.port(config.port()).timeout(Some(config.timeout));
    if let (Some(user), Some(password)) = (&config.username, &config.password) {
        builder = builder.credentials(Credentials::new(user.clone(), password.expose().clone()));
    }
    Ok(builder.build())
}

impl Channel for EmailChannel {
    fn name(&self) -> &str {
        &self.name
    }

    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    async fn deliver(&self, notification: &Notification) -> Result<(), DeliveryError> {
        let message = self.message(notification)?;
        self.transport
            .send(message)
            .await
            .map(|_response| ())
            .map_err(|e| self.smtp_error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::body::tests::notification;
    use super::*;

    fn config() -> EmailConfig {
        EmailConfig::new(
            "smtp.example.com",
            "driftwarden <dw@example.com>",
            vec!["oncall@example.com".into()],
        )
    }

    #[test]
    fn bad_addresses_are_config_errors() {
        let mut config = config();
        config.from = "not an address".into();
        config.to = vec!["ok@example.com".into(), "@@".into()];
        config.username = Some("dw".into());

        let keys: Vec<String> = config.validate().into_iter().map(|e| e.key).collect();

        assert_eq!(keys, ["password", "from", "to[1]"]);
        config.to.clear();
        assert!(config.validate().iter().any(|e| e.key == "to"));
    }

    #[test]
    fn ports_default_by_security_mode() {
        let mut config = config();
        assert_eq!(config.port(), 587);
        config.tls = EmailTls::Tls;
        assert_eq!(config.port(), 465);
        config.tls = EmailTls::None;
        assert_eq!(config.port(), 25);
        config.port = Some(2525);
        assert_eq!(config.port(), 2525);
    }

    #[tokio::test]
    async fn every_security_mode_builds_a_channel() {
        for tls in [EmailTls::Starttls, EmailTls::Tls, EmailTls::None] {
            let mut config = config();
            config.tls = tls;
            config.username = Some("dw".into());
            config.password = Some(Secret::from("hunter2"));

            let channel = EmailChannel::new(&config, None).unwrap();

            assert!(!format!("{channel:?}").contains("hunter2"));
            let message = channel.message(&notification(&["age"])).unwrap();
            let raw = String::from_utf8(message.formatted()).unwrap();
            assert!(raw.contains("Subject: [FIRING] churn: drift in 1 feature"));
            assert!(raw.contains("multipart/alternative"));
        }
    }
}
