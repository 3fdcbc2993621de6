//! The text `driftwarden check-config` prints: every problem, or "OK" with
//! a short summary of what the configuration will do.

use std::fmt::Write as _;
use std::path::Path;

use humantime_serde::re::humantime::format_duration;

use super::schema::{ChannelKind, Config, Decision, ModelConfig, Window};
use super::{ConfigErrors, DEFAULT_PATH};

/// Loads the configuration as `driftwarden run` would (process environment
/// included) and renders the outcome. The flag is `true` when it is valid.
pub fn check_config_report(path: Option<&Path>, overrides: &[(String, String)]) -> (String, bool) {
    let result = super::load_from_process_env(path, overrides);
    render_report(&source_name(path), &result)
}

fn source_name(path: Option<&Path>) -> String {
    match path {
        Some(path) => path.display().to_string(),
        None if Path::new(DEFAULT_PATH).exists() => DEFAULT_PATH.to_owned(),
        None => format!("built-in defaults ({DEFAULT_PATH} not found)"),
    }
}

/// Renders a load result; `source` names where the file layer came from.
pub fn render_report(source: &str, result: &Result<Config, ConfigErrors>) -> (String, bool) {
    match result {
        Ok(config) => (summary(source, config), true),
        Err(errors) => (problems(source, errors), false),
    }
}

fn problems(source: &str, errors: &ConfigErrors) -> String {
    let count = errors.errors().len();
    let noun = if count == 1 { "problem" } else { "problems" };
    let mut out = format!("{source}: {count} {noun}\n");
    for error in errors.errors() {
        let _ = writeln!(out, "  {error}");
    }
    out
}

fn summary(source: &str, config: &Config) -> String {
    let mut out = format!("OK: {source}\n");
    let kafka = &config.kafka;
    let topics = names(kafka.prediction_topics.iter().map(|t| t.as_str()));
    let _ = writeln!(
        out,
        "kafka: {} (group {}), predictions from {topics}",
        kafka.bootstrap_servers, kafka.group_id
    );
    let _ = writeln!(out, "channels: {}", channel_summary(config));
    let _ = writeln!(out, "models: {}", config.models.len());
    for model in &config.models {
        let _ = writeln!(out, "  {}", model_summary(model));
    }
    for warning in warnings(config) {
        let _ = writeln!(out, "note: {warning}");
    }
    out
}

fn channel_summary(config: &Config) -> String {
    let enabled = config.channels.enabled();
    let disabled = ChannelKind::ALL.iter().filter(|k| !enabled.contains(k));
    let enabled = names(enabled.iter().map(|k| k.as_str()));
    match names(disabled.map(|k| k.as_str())) {
        off if off == "none" => enabled,
        off => format!("{enabled} (not configured: {off})"),
    }
}

fn model_summary(model: &ModelConfig) -> String {
    let settings = &model.monitor;
    let window = match settings.window {
        Window::Count(n) => format!("last {n} events"),
        Window::Time(span) => format!("last {} of event time", format_duration(span)),
    };
    let decision = match settings.decision {
        Decision::Calibrated { target_run_length } => {
            format!("calibrated to 1 false alarm per {target_run_length} events")
        }
        Decision::Fixed { alpha, correction } => {
            format!("fixed alpha {} ({correction:?})", alpha.get())
        }
    };
    let versions = match model.versions.len() {
        0 => String::new(),
        n => format!(" +{n} pinned version(s)"),
    };
    let route = names(model.channels.iter().map(|k| k.as_str()));
    format!(
        "{}: baseline {}{versions}; {window}; {decision}; alerts to {route}",
        model.name,
        model.baseline.display()
    )
}

fn warnings(config: &Config) -> Vec<String> {
    let mut notes = Vec::new();
    if config.models.is_empty() {
        notes.push("no [[models]] configured: nothing will be monitored".to_owned());
    }
    if config.channels.enabled().is_empty() {
        notes
            .push("no channel configured: alerts are visible through the HTTP API only".to_owned());
    }
    if config.service.api_token.is_none() {
        notes.push("service.api_token not set: state-changing API calls are refused".to_owned());
    }
    notes
}

fn names<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let list: Vec<&str> = items.collect();
    if list.is_empty() {
        "none".to_owned()
    } else {
        list.join(", ")
    }
}
