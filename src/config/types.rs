//! Small value types that carry a configuration invariant: a secret that
//! never prints, a significance level in (0, 1), a Kafka topic name, and so
//! on. Each one is built only through a checking constructor, so a
//! validated [`Config`](super::Config) cannot hold an invalid value.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

/// What a secret prints as, wherever it is printed.
const REDACTED: &str = "***";

/// A configuration value that must never be printed: API token, webhook
/// and Slack URLs (they carry a token in the path), SMTP password, webhook
/// header values.
///
/// `Debug`, `Display` and `Serialize` all print `***`; [`Secret::expose`] is
/// the only way to the clear text, so every use of it is easy to find.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a clear-text value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The clear value, for the one place that must use it (a request, a
    /// login). Never pass it to a log macro or a formatted error.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

/// A per-check significance level, strictly between 0 and 1.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Alpha(f64);

impl Alpha {
    /// `Some` when `value` is in the open interval (0, 1).
    pub fn new(value: f64) -> Option<Self> {
        (value > 0.0 && value < 1.0).then_some(Alpha(value))
    }

    /// The level as a number.
    pub fn get(self) -> f64 {
        self.0
    }
}

/// A proportion in the closed interval [0, 1] (retry jitter, a tolerated
/// increase of a missing-value rate).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Fraction(f64);

impl Fraction {
    /// `Some` when `value` is in [0, 1] (NaN is rejected).
    pub fn new(value: f64) -> Option<Self> {
        (0.0..=1.0).contains(&value).then_some(Fraction(value))
    }

    /// The proportion as a number.
    pub fn get(self) -> f64 {
        self.0
    }
}

/// The name of a monitored model, as it appears in events' `model` field
/// and as a metric label.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ModelName(String);

impl ModelName {
    /// Checks that `name` is non-empty, has no surrounding whitespace and no
    /// control characters (it becomes a metric label and a Kafka key).
    pub fn new(name: &str) -> Result<Self, &'static str> {
        if name.is_empty() {
            return Err("must not be empty");
        }
        if name.trim() != name {
            return Err("must not start or end with whitespace");
        }
        if name.chars().any(char::is_control) {
            return Err("must not contain control characters");
        }
        Ok(ModelName(name.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Kafka topic name: 1 to 249 characters from `[A-Za-z0-9._-]`, as the
/// broker requires; checked here so a typo fails at start-up, not at the
/// first produce.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct TopicName(String);

impl TopicName {
    /// Checks the broker's naming rules.
    pub fn new(name: &str) -> Result<Self, &'static str> {
        let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if name.is_empty() {
            return Err("must not be empty");
        }
        if name.len() > 249 {
            return Err("must be at most 249 characters");
        }
        if name == "." || name == ".." {
            return Err("must not be \".\" or \"..\"");
        }
        if !name.chars().all(legal) {
            return Err("may contain only ASCII letters, digits, '.', '_' and '-'");
        }
        Ok(TopicName(name.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email mailbox, `drift@example.com` or `Drift <drift@example.com>`,
/// syntactically checked with lettre's parser so the sender can rely on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Checks the mailbox syntax.
    pub fn new(text: &str) -> Result<Self, String> {
        match text.parse::<lettre::message::Mailbox>() {
            Ok(_) => Ok(EmailAddress(text.to_owned())),
            Err(e) => Err(format!("not a valid email address {text:?}: {e}")),
        }
    }

    /// The mailbox as written in the configuration.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// librdkafka properties passed through unchanged (`security.protocol`,
/// `sasl.*`, `ssl.*`). Values whose key names a secret are redacted in
/// `Debug` and `Serialize`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct KafkaProperties(BTreeMap<String, String>);

impl KafkaProperties {
    /// Wraps a property map.
    pub fn new(properties: BTreeMap<String, String>) -> Self {
        KafkaProperties(properties)
    }

    /// Every property, clear text included, for building the client config.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether no property is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the value of property `key` must not be printed.
    pub fn is_secret_key(key: &str) -> bool {
        const MARKERS: [&str; 5] = ["password", "secret", "token", ".pem", "oauthbearer.config"];
        let key = key.to_ascii_lowercase();
        MARKERS.iter().any(|m| key.contains(m))
    }

    fn redacted(&self) -> BTreeMap<&str, &str> {
        self.iter()
            .map(|(k, v)| (k, if Self::is_secret_key(k) { REDACTED } else { v }))
            .collect()
    }
}

impl fmt::Debug for KafkaProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.redacted().fmt(f)
    }
}

impl Serialize for KafkaProperties {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.redacted().serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("hunter2");

        assert_eq!(format!("{secret} {secret:?}"), "*** ***");
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"***\"");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn secret_like_kafka_properties_are_redacted() {
        let props = KafkaProperties::new(BTreeMap::from([
            ("sasl.password".to_owned(), "hunter2".to_owned()),
            ("ssl.key.password".to_owned(), "hunter3".to_owned()),
            ("security.protocol".to_owned(), "SASL_SSL".to_owned()),
        ]));

        let shown = format!("{props:?}");

        assert!(!shown.contains("hunter"), "{shown}");
        assert!(shown.contains("SASL_SSL"), "{shown}");
    }

    #[test]
    fn ranges_are_enforced() {
        assert!(Alpha::new(0.0).is_none() && Alpha::new(1.0).is_none());
        assert!(Alpha::new(0.05).is_some());
        assert!(Fraction::new(1.0).is_some() && Fraction::new(f64::NAN).is_none());
        assert!(TopicName::new("driftwarden.retrain").is_ok());
        assert!(TopicName::new("bad topic").is_err());
        assert!(EmailAddress::new("Drift <drift@example.com>").is_ok());
        assert!(EmailAddress::new("drift-at-example.com").is_err());
    }
}
