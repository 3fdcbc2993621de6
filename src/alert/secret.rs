//! A wrapper for configuration values that must never be printed.
//!
//! Webhook URLs (Slack's and most receivers' carry a token in the path),
//! header values such as `Authorization`, and the SMTP password are secrets:
//! they are read from configuration like any string, but their `Debug`,
//! `Display` and `Serialize` forms are `"***"`, so a config dump, a log line
//! or a panic message cannot leak them.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a secret prints as, wherever it is printed.
const REDACTED: &str = "***";

/// A value that is read from configuration but never printed.
///
/// The only way to see the value is [`Secret::expose`], which makes every
/// place that handles the clear text easy to find.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The clear value, for the one place that must use it (a request, a
    /// login). Never pass it to a log macro or a formatted error.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret<String> {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let secret: Secret<String> = Secret::from("https://hooks.example/T000/B000/xyz");

        assert_eq!(format!("{secret}"), "***");
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"***\"");
        assert_eq!(secret.expose(), "https://hooks.example/T000/B000/xyz");
    }

    #[test]
    fn reads_the_clear_value() {
        let secret: Secret<String> = serde_json::from_str("\"hunter2\"").unwrap();

        assert_eq!(secret.expose(), "hunter2");
    }
}
