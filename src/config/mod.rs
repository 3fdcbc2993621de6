//! Layered configuration: built-in defaults, then the TOML file, then
//! `DRIFTWARDEN_…` environment variables, then `key.path=value` overrides
//! from the command line; validated as a whole into a [`Config`] that
//! cannot hold an invalid value.
//!
//! # Layers
//!
//! 1. Defaults: the `Default` impls in `raw.rs`, documented key by key in
//!    `config/driftwarden.toml`.
//! 2. The file: [`DEFAULT_PATH`] unless a path is given; the default file
//!    may be absent, an explicitly given one may not.
//! 3. The environment: `DRIFTWARDEN_` + the key path in upper case with `__`
//!    between levels, e.g. `DRIFTWARDEN_KAFKA__BOOTSTRAP_SERVERS` or
//!    `DRIFTWARDEN_CHANNELS__EMAIL__PASSWORD`. A numeric level indexes an
//!    array (`DRIFTWARDEN_MODELS__0__WINDOW_SIZE`). Under
//!    `kafka.properties` `_` stands for `.`
//!    (`DRIFTWARDEN_KAFKA__PROPERTIES__SASL_PASSWORD`), under
//!    `channels.webhook.headers` for `-`. Names without `__` (such as
//!    `DRIFTWARDEN_CONFIG`) are not configuration keys.
//! 4. Overrides: `kafka.group_id=x`, `models[0].window_size=500`,
//!    `kafka.properties."sasl.mechanism"=PLAIN`.
//!
//! Values in layers 3 and 4 are read as TOML values when they parse as one
//! (`500`, `true`, `["a", "b"]`) and as strings otherwise; a key that wants
//! a string keeps the text as typed (`group_id=123`). Tables merge key by
//! key; arrays and scalars replace.
//!
//! # Validation
//!
//! Every problem is collected, each with the full key that caused it
//! (`models[1].baseline`, `alerts.retry.jitter`), and reported at once as
//! [`ConfigErrors`]. Unknown keys are errors. Secrets (`service.api_token`,
//! `channels.webhook.url`, `channels.slack.webhook_url`,
//! `channels.email.password`) may instead be read from a file named by the
//! same key with `_file` appended; they are held as [`Secret`] and never
//! printed.

mod decode;
mod layers;
mod raw;
mod report;
mod schema;
mod types;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

pub use layers::ENV_PREFIX;
pub use report::{check_config_report, render_report};
pub use schema::{
    AlertsConfig, BaselinesConfig, ChannelKind, ChannelsConfig, CheckpointConfig, Config,
    Correction, Decision, DecisionMode, EmailChannel, KafkaConfig, LogFormat, ModelConfig,
    MonitorSettings, OffsetReset, OtlpProtocol, PerformanceConfig, Persistence, PredictionKind,
    RetrainConfig, RetryPolicy, ServiceConfig, SlackChannel, SmtpTls, TelemetryConfig,
    WebhookChannel, Window,
};
pub use types::{Alpha, EmailAddress, Fraction, KafkaProperties, ModelName, Secret, TopicName};

use layers::{Layered, Provenance};

/// The file read when no path is given (relative to the working directory).
pub const DEFAULT_PATH: &str = "config/driftwarden.toml";

/// One configuration problem and the key that caused it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    /// Full key path (`models[1].baseline`), or the file location for a
    /// syntax error (`config/driftwarden.toml:3:7`).
    pub key: String,
    /// What is wrong, never including a secret's value.
    pub message: String,
}

impl ConfigError {
    /// A problem at `key`.
    pub fn new(key: impl fmt::Display, message: impl Into<String>) -> Self {
        ConfigError {
            key: key.to_string(),
            message: message.into(),
        }
    }
}

/// Every problem found in a configuration; never empty. Displays one
/// problem per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(Vec<ConfigError>);

impl ConfigErrors {
    /// The problems, in the order found (document order within a stage).
    pub fn errors(&self) -> &[ConfigError] {
        &self.0
    }

    /// Whether some problem is reported at exactly `key`.
    pub fn has_key(&self, key: &str) -> bool {
        self.0.iter().any(|e| e.key == key)
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Loads the configuration from the file at `path` (or [`DEFAULT_PATH`]
/// when it exists), the variables in `env` and the CLI's `overrides`
/// (`("kafka.group_id", "x")`), in that order of precedence.
pub fn load(
    path: Option<&Path>,
    env: impl Iterator<Item = (String, String)>,
    overrides: &[(String, String)],
) -> Result<Config, ConfigErrors> {
    let file = match path {
        Some(path) => layers::read_file(path, true),
        None => layers::read_file(Path::new(DEFAULT_PATH), false),
    };
    let doc = file.map_err(|e| ConfigErrors(vec![e]))?;
    from_document(doc.unwrap_or_default(), env, overrides)
}

/// [`load`] with the process environment.
pub fn load_from_process_env(
    path: Option<&Path>,
    overrides: &[(String, String)],
) -> Result<Config, ConfigErrors> {
    load(path, std::env::vars(), overrides)
}

/// Like [`load`], with the file's content given as text (for embedded
/// configurations such as the demo's); `""` yields the defaults.
pub fn load_str(
    text: &str,
    env: impl Iterator<Item = (String, String)>,
    overrides: &[(String, String)],
) -> Result<Config, ConfigErrors> {
    let doc = layers::parse_document(text, "(config text)").map_err(|e| ConfigErrors(vec![e]))?;
    from_document(doc, env, overrides)
}

fn from_document(
    doc: toml::Table,
    env: impl Iterator<Item = (String, String)>,
    overrides: &[(String, String)],
) -> Result<Config, ConfigErrors> {
    let mut errors = Vec::new();
    let mut layered = Layered {
        doc,
        provenance: Provenance::default(),
    };
    layers::apply_env(&mut layered, env, &mut errors);
    layers::apply_overrides(&mut layered, overrides, &mut errors);

    let raw = decode::decode(layered.doc, &layered.provenance, &mut errors);
    match validate::validate(raw) {
        Ok(config) if errors.is_empty() => Ok(config),
        Ok(_) => Err(annotate(errors, &layered.provenance)),
        Err(more) => {
            merge_errors(&mut errors, more);
            Err(annotate(errors, &layered.provenance))
        }
    }
}

/// Appends validation errors, except at keys already reported while
/// decoding: a key that could not be read took its default, and a
/// complaint about that default would only confuse.
fn merge_errors(errors: &mut Vec<ConfigError>, more: Vec<ConfigError>) {
    let reported: HashSet<String> = errors.iter().map(|e| e.key.clone()).collect();
    errors.extend(more.into_iter().filter(|e| !reported.contains(&e.key)));
}

/// Says which variable or override set a bad value, since the file may not
/// contain the key at all.
fn annotate(mut errors: Vec<ConfigError>, provenance: &Provenance) -> ConfigErrors {
    for error in &mut errors {
        if let Some(origin) = provenance.covering(&error.key) {
            error.message = format!("{} (from {})", error.message, origin.label);
        }
    }
    ConfigErrors(errors)
}
