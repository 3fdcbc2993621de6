//! From [`RawConfig`] to [`Config`]: every rule checked, every failure
//! collected with its full key, nothing returned unless all of them pass.
//!
//! Each section has a method on [`Checker`] that returns `None` when it
//! found a problem (after recording it), so one bad section never hides
//! the problems of another. The sections live in `service.rs`
//! (service, Kafka, retrain, checkpoint), `monitor.rs` (monitor settings
//! and models) and `channels.rs` (alerts, routes, channels).

mod channels;
mod monitor;
mod service;

use std::fmt::Display;
use std::num::{NonZeroU64, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use super::ConfigError;
use super::raw::RawConfig;
use super::schema::{ChannelsConfig, Config};
use super::types::Secret;
use monitor::ModelDefaults;

/// Validates `raw` as a whole.
pub fn validate(raw: RawConfig) -> Result<Config, Vec<ConfigError>> {
    let mut c = Checker::default();

    let service = c.service(raw.service);
    let kafka = c.kafka(raw.kafka);
    let monitor = c.monitor(&raw.monitor);
    let channels = c.channels(raw.channels);
    let enabled = channels.as_ref().map(ChannelsConfig::enabled);
    let alerts = c.alerts(raw.alerts, enabled.as_deref());
    let retrain = c.retrain(&raw.retrain);
    let checkpoint = c.checkpoint(raw.checkpoint);
    let baselines = c.baselines(raw.baselines);
    let telemetry = c.telemetry(raw.telemetry);
    let defaults = ModelDefaults {
        raw_monitor: &raw.monitor,
        monitor: monitor.as_ref(),
        route: alerts.as_ref().map(|a| a.channels.as_slice()),
        enabled: enabled.as_deref(),
    };
    let models = c.models(raw.models, &defaults);

    let sections = (
        service, kafka, monitor, alerts, channels, checkpoint, baselines, models, telemetry,
    );
    let (
        Some(service),
        Some(kafka),
        Some(monitor),
        Some(alerts),
        Some(channels),
        Some(checkpoint),
        Some(baselines),
        Some(models),
        Some(telemetry),
    ) = sections
    else {
        return Err(c.errors);
    };
    if !c.errors.is_empty() {
        return Err(c.errors);
    }
    Ok(Config {
        service,
        kafka,
        monitor,
        alerts,
        channels,
        retrain,
        checkpoint,
        baselines,
        telemetry,
        models,
    })
}

/// Collects problems while sections are checked.
#[derive(Debug, Default)]
struct Checker {
    errors: Vec<ConfigError>,
}

impl Checker {
    /// Records a problem at `key`.
    fn fail(&mut self, key: impl Display, message: impl Into<String>) {
        self.errors.push(ConfigError::new(key, message));
    }

    /// Records `message` at `key` unless `ok`; returns `ok`.
    fn ensure(&mut self, ok: bool, key: impl Display, message: impl Into<String>) -> bool {
        if !ok {
            self.fail(key, message);
        }
        ok
    }

    /// `Some(value)` when `result` is `Ok`, else records its error at `key`.
    fn parsed<T, E: Display>(&mut self, key: impl Display, result: Result<T, E>) -> Option<T> {
        result.map_err(|e| self.fail(key, e.to_string())).ok()
    }

    /// A duration that must be greater than zero.
    fn positive(&mut self, key: impl Display, value: Duration) -> Option<Duration> {
        self.ensure(!value.is_zero(), key, "must be greater than zero")
            .then_some(value)
    }

    /// A count that must be at least `min` (itself at least 1).
    fn count(&mut self, key: impl Display, value: u64, min: u64) -> Option<NonZeroUsize> {
        let fits = usize::try_from(value).ok().and_then(NonZeroUsize::new);
        let ok = value >= min && fits.is_some();
        self.ensure(ok, key, format!("must be at least {min}, got {value}"))
            .then_some(fits)
            .flatten()
    }

    /// Like [`Checker::count`] for 64-bit counts.
    fn count64(&mut self, key: impl Display, value: u64, min: u64) -> Option<NonZeroU64> {
        let ok = value >= min;
        self.ensure(ok, key, format!("must be at least {min}, got {value}"))
            .then(|| NonZeroU64::new(value))
            .flatten()
    }

    /// A text value that must not be blank.
    fn non_blank(&mut self, key: impl Display, value: &str) -> bool {
        self.ensure(!value.trim().is_empty(), key, "must not be empty")
    }

    /// A secret given inline at `key` or read from the file named by
    /// `{key}_file`; `None` when neither is set or there was a problem.
    fn secret(
        &mut self,
        key: &str,
        inline: Option<Secret>,
        file: Option<PathBuf>,
    ) -> Option<Secret> {
        let file_key = format!("{key}_file");
        let secret = match (inline, file) {
            (None, None) => return None,
            (Some(_), Some(_)) => {
                self.fail(
                    &file_key,
                    format!("set either {key} or {file_key}, not both"),
                );
                return None;
            }
            (Some(secret), None) => secret,
            (None, Some(path)) => self.read_secret(&file_key, &path)?,
        };
        self.ensure(!secret.expose().trim().is_empty(), key, "must not be empty")
            .then_some(secret)
    }

    /// Reads a secret file; a trailing newline (as `echo` writes) is not
    /// part of the secret.
    fn read_secret(&mut self, key: &str, path: &std::path::Path) -> Option<Secret> {
        match std::fs::read_to_string(path) {
            Ok(text) => Some(Secret::new(text.trim_end_matches(['\n', '\r']))),
            Err(e) => {
                self.fail(key, format!("cannot read {}: {e}", path.display()));
                None
            }
        }
    }
}
