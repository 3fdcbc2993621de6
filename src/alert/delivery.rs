//! What every channel shares: the [`Channel`] trait, the [`DeliveryError`]
//! that says whether a retry can help, the [`RetryPolicy`] with its
//! back-off, and the [`ConfigError`] a channel reports at construction.
//!
//! The machinery that queues and retries deliveries is in
//! [`dispatcher`](super::dispatcher); the counters it keeps are in
//! [`stats`](super::stats).

use std::error::Error as StdError;
use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::notification::Notification;

// The dispatcher lives in its own module; these re-exports let callers
// import everything about delivery from here.
pub use super::dispatcher::{
    DeliveryOutcome, Dispatched, Dispatcher, DispatcherBuilder, Undelivered,
};
pub use super::stats::{ChannelStats, DeliveryStats};

/// A boxed error source, so transport crates' error types stay out of our
/// public enum.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// One destination for notifications: a webhook, a Slack webhook, an SMTP
/// relay, or anything else that can take a notification.
///
/// A channel makes exactly one attempt per call; the [`Dispatcher`] owns
/// timeouts, retries and queueing, so a channel stays a plain "render and
/// send". The retraining trigger (a Kafka producer) can implement it too.
pub trait Channel: Send + Sync + 'static {
    /// Unique name within a dispatcher; used in logs, metrics and outcomes.
    fn name(&self) -> &str;

    /// Where it delivers, without secrets (`https://hooks.slack.com`,
    /// `smtp://mail.example.com:587`); safe to log.
    fn endpoint(&self) -> &str;

    /// Upper bound of one attempt, enforced by the dispatcher.
    fn timeout(&self) -> Duration;

    /// Makes one delivery attempt.
    fn deliver(
        &self,
        notification: &Notification,
    ) -> impl Future<Output = Result<(), DeliveryError>> + Send;
}

/// Why one delivery attempt failed.
///
/// Every variant names the channel and, where there is one, the endpoint
/// without secrets, so the error can be logged as is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// No complete answer within the attempt's timeout.
    #[error("{channel}: no answer from {endpoint} within {timeout:?}")]
    Timeout {
        /// Channel name.
        channel: String,
        /// Endpoint without secrets.
        endpoint: String,
        /// The timeout that expired.
        timeout: Duration,
    },

    /// The connection could not be made or broke (DNS, refused, reset, TLS).
    #[error("{channel}: cannot reach {endpoint}: {source}")]
    Connection {
        /// Channel name.
        channel: String,
        /// Endpoint without secrets.
        endpoint: String,
        /// The transport's error, with any URL removed.
        source: BoxError,
    },

    /// The receiver answered with an HTTP status other than 2xx.
    #[error("{channel}: {endpoint} answered HTTP {status}: {body}")]
    Status {
        /// Channel name.
        channel: String,
        /// Endpoint without secrets.
        endpoint: String,
        /// HTTP status code.
        status: u16,
        /// The receiver's `Retry-After` in seconds, if it sent one.
        retry_after: Option<Duration>,
        /// The start of the response body, for diagnosis.
        body: String,
    },

    /// The SMTP server refused, or the SMTP exchange failed.
    #[error("{channel}: SMTP exchange with {endpoint} failed: {source}")]
    Smtp {
        /// Channel name.
        channel: String,
        /// Endpoint without secrets.
        endpoint: String,
        /// SMTP reply code, when the server sent one.
        code: Option<u16>,
        /// False for permanent (5xx) replies and client-side errors.
        retryable: bool,
        /// lettre's error.
        source: BoxError,
    },

    /// The notification could not be turned into a message. Retrying would
    /// render the same thing again.
    #[error("{channel}: cannot render the notification: {reason}")]
    Render {
        /// Channel name.
        channel: String,
        /// What went wrong.
        reason: String,
    },
}

impl DeliveryError {
    /// Whether another attempt can succeed: timeouts, connection errors,
    /// HTTP 5xx, 429 and 408, and transient SMTP replies can; other 4xx,
    /// permanent SMTP replies (a rejected address) and rendering errors
    /// cannot.
    pub fn is_retryable(&self) -> bool {
        match self {
            DeliveryError::Timeout { .. } | DeliveryError::Connection { .. } => true,
            DeliveryError::Status { status, .. } => {
                *status >= 500 || *status == 429 || *status == 408
            }
            DeliveryError::Smtp { retryable, .. } => *retryable,
            DeliveryError::Render { .. } => false,
        }
    }

    /// The channel the error happened on.
    pub fn channel(&self) -> &str {
        match self {
            DeliveryError::Timeout { channel, .. }
            | DeliveryError::Connection { channel, .. }
            | DeliveryError::Status { channel, .. }
            | DeliveryError::Smtp { channel, .. }
            | DeliveryError::Render { channel, .. } => channel,
        }
    }

    /// The HTTP status or SMTP reply code, if the receiver answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            DeliveryError::Status { status, .. } => Some(*status),
            DeliveryError::Smtp { code, .. } => *code,
            _ => None,
        }
    }

    /// How long the receiver asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            DeliveryError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A short, bounded label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            DeliveryError::Timeout { .. } => "timeout",
            DeliveryError::Connection { .. } => "connection",
            DeliveryError::Status { status: 429, .. } => "http_429",
            DeliveryError::Status { status, .. } if *status >= 500 => "http_5xx",
            DeliveryError::Status { .. } => "http_4xx",
            DeliveryError::Smtp {
                retryable: true, ..
            } => "smtp_transient",
            DeliveryError::Smtp { code: Some(_), .. } => "smtp_permanent",
            DeliveryError::Smtp { code: None, .. } => "smtp_client",
            DeliveryError::Render { .. } => "render",
        }
    }
}

/// An error and its sources on one line (`a: b: c`), so a log line shows
/// the root cause ("connection refused") and not only "error sending
/// request". Callers strip secrets (URLs) from `error` first.
pub(crate) fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        // Some errors (lettre's) already print their source; don't repeat it.
        let text = cause.to_string();
        if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}

/// A configuration problem, with the key that caused it (relative to the
/// section that was validated; the config layer prefixes its own path).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ConfigError {
    /// Dotted key, e.g. `email[0].to[1]`.
    pub key: String,
    /// What is wrong with it. Never contains a secret's value.
    pub reason: String,
}

impl ConfigError {
    /// A problem with `key`.
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// The same problem seen from an enclosing section.
    pub fn within(mut self, prefix: &str) -> Self {
        self.key = format!("{prefix}.{}", self.key);
        self
    }
}

/// How a failed delivery is retried.
///
/// The n-th retry waits `initial_backoff × multiplier^(n−1)`, drawn
/// uniformly within ± `jitter` of itself so that many instances retrying
/// one receiver spread out, and never longer than `max_backoff`. A
/// receiver's `Retry-After` lengthens the wait (still capped at
/// `max_backoff`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in total, the first included; 1 means never retry.
    /// Default 5.
    pub max_attempts: u32,
    /// Wait before the first retry. Default 500ms.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// Longest wait between attempts. Default 30s.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Growth factor of the wait per retry, at least 1. Default 2.
    pub multiplier: f64,
    /// Fraction in [0, 1]: each wait is drawn uniformly within ± this
    /// fraction of itself. Default 0.2.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// Every problem with the policy; empty when it is valid.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        if self.max_attempts == 0 {
            problems.push(ConfigError::new("max_attempts", "must be at least 1"));
        }
        if self.initial_backoff > self.max_backoff {
            problems.push(ConfigError::new(
                "initial_backoff",
                "must not exceed max_backoff",
            ));
        }
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0) {
            problems.push(ConfigError::new("multiplier", "must be a number ≥ 1"));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            problems.push(ConfigError::new("jitter", "must be in [0, 1]"));
        }
        problems
    }

    /// The wait after `failures` failed attempts (1 for the first retry),
    /// before jitter.
    pub fn backoff(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(i32::MAX as u32) as i32;
        let secs = self.initial_backoff.as_secs_f64() * self.multiplier.powi(exponent);
        // An overflowing product (a huge multiplier) means "the cap".
        Duration::try_from_secs_f64(secs)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }

    /// The wait after `failures` failed attempts, given the error and a
    /// uniform random number `unit` in [0, 1).
    pub fn delay(&self, failures: u32, error: &DeliveryError, unit: f64) -> Duration {
        let spread = self.jitter.clamp(0.0, 1.0) * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        let jittered = self.backoff(failures).mul_f64(1.0 + spread);
        let asked = error.retry_after().unwrap_or_default();
        jittered.max(asked).min(self.max_backoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> DeliveryError {
        DeliveryError::Status {
            channel: "hook".into(),
            endpoint: "http://127.0.0.1:1".into(),
            status: code,
            retry_after: None,
            body: String::new(),
        }
    }

    #[test]
    fn retryable_statuses_are_5xx_429_and_408() {
        for code in [500, 502, 503, 429, 408] {
            assert!(status(code).is_retryable(), "{code}");
        }
        for code in [400, 401, 403, 404, 410, 422] {
            assert!(!status(code).is_retryable(), "{code}");
        }
    }

    #[test]
    fn render_errors_are_final() {
        let error = DeliveryError::Render {
            channel: "mail".into(),
            reason: "no recipients".into(),
        };

        assert!(!error.is_retryable());
        assert_eq!(error.reason(), "render");
    }

    #[test]
    fn error_chain_shows_causes_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        #[derive(Debug, thiserror::Error)]
        #[error("wrapper: {0}")]
        struct Echoing(#[source] std::io::Error);
        let refused = || std::io::Error::other("connection refused");

        assert_eq!(error_chain(&Outer(refused())), "outer: connection refused");
        assert_eq!(
            error_chain(&Echoing(refused())),
            "wrapper: connection refused"
        );
    }

    #[test]
    fn backoff_grows_geometrically_up_to_the_cap() {
        let policy = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
            multiplier: 2.0,
            ..RetryPolicy::default()
        };

        let waits: Vec<u128> = (1..=5).map(|n| policy.backoff(n).as_millis()).collect();

        assert_eq!(waits, [100, 200, 400, 500, 500]);
        assert_eq!(policy.backoff(u32::MAX), Duration::from_millis(500));
    }

    #[test]
    fn jitter_spreads_within_its_fraction_and_under_the_cap() {
        let policy = RetryPolicy {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_millis(1100),
            jitter: 0.25,
            ..RetryPolicy::default()
        };
        let error = status(503);

        assert_eq!(policy.delay(1, &error, 0.0), Duration::from_millis(750));
        assert_eq!(policy.delay(1, &error, 0.5), Duration::from_secs(1));
        assert_eq!(
            policy.delay(1, &error, 0.999_999),
            Duration::from_millis(1100)
        );
    }

    #[test]
    fn retry_after_lengthens_the_wait_but_not_past_the_cap() {
        let policy = RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::default()
        };
        let mut error = status(429);
        if let DeliveryError::Status { retry_after, .. } = &mut error {
            *retry_after = Some(Duration::from_secs(3600));
        }

        assert_eq!(policy.delay(1, &error, 0.5), policy.max_backoff);
    }

    #[test]
    fn invalid_policies_report_every_key() {
        let policy = RetryPolicy {
            max_attempts: 0,
            initial_backoff: Duration::from_secs(60),
            max_backoff: Duration::from_secs(1),
            multiplier: 0.5,
            jitter: 1.5,
        };

        let keys: Vec<String> = policy.validate().into_iter().map(|e| e.key).collect();

        assert_eq!(
            keys,
            ["max_attempts", "initial_backoff", "multiplier", "jitter"]
        );
    }

    #[test]
    fn durations_read_as_humantime() {
        let policy: RetryPolicy =
            serde_json::from_str(r#"{"initial_backoff": "250ms", "max_backoff": "1m"}"#).unwrap();

        assert_eq!(policy.initial_backoff, Duration::from_millis(250));
        assert_eq!(policy.max_backoff, Duration::from_secs(60));
        assert_eq!(policy.max_attempts, 5);
    }
}
