//! The monitor a replay runs: the configuration's models with the
//! service's own settings (`service::setup::monitor_settings`), plus
//! baseline files given on the command line, which add a model or replace
//! a configured model's baseline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::baseline::Baseline;
use crate::config::{self, Config, ModelConfig, ModelName};
use crate::monitor::{Monitor, MonitorSettings};
use crate::service::setup::monitor_settings;

use super::ReplayError;

/// The configuration at `path` (with the `DRIFTWARDEN_…` environment and
/// `overrides`, as `run` reads it), or the built-in defaults when no path
/// is given (the environment and overrides still apply; the default file
/// is not read implicitly, so a replay never picks up a production
/// configuration by accident).
pub fn load_config(
    path: Option<&Path>,
    overrides: &[(String, String)],
) -> Result<Config, ReplayError> {
    let loaded = match path {
        Some(path) => config::load(Some(path), std::env::vars(), overrides),
        None => config::load_str("", std::env::vars(), overrides),
    };
    loaded.map_err(ReplayError::Config)
}

/// A monitor for every configured model and every baseline file. A
/// baseline file for a configured model replaces its baseline and keeps its
/// settings (its configured baseline is then not read at all); one for
/// another model gets the configuration's `[monitor]` defaults.
pub fn build_monitor(
    config: &Config,
    baselines: &[(PathBuf, Baseline)],
) -> Result<Monitor, ReplayError> {
    check_unique(baselines)?;
    let mut monitor = Monitor::new(MonitorSettings::default().seed);
    for model in &config.models {
        if baselines
            .iter()
            .any(|(_, b)| b.model == model.name.as_str())
        {
            continue;
        }
        let baseline = Baseline::load(&model.baseline)?;
        if baseline.model != model.name.as_str() {
            return Err(ReplayError::Setup(format!(
                "baseline {} describes model {:?}, but is configured for {:?}",
                model.baseline.display(),
                baseline.model,
                model.name.as_str()
            )));
        }
        add(&mut monitor, config, model, baseline)?;
    }
    for (path, baseline) in baselines {
        let model = model_config(config, path, baseline)?;
        add(&mut monitor, config, &model, baseline.clone())?;
    }
    if monitor.models().next().is_none() {
        return Err(ReplayError::Setup(
            "no model to replay: give --baseline FILE, or a --config with [[models]]".into(),
        ));
    }
    Ok(monitor)
}

fn check_unique(baselines: &[(PathBuf, Baseline)]) -> Result<(), ReplayError> {
    let mut seen: BTreeMap<&str, &Path> = BTreeMap::new();
    for (path, baseline) in baselines {
        if let Some(first) = seen.insert(&baseline.model, path) {
            return Err(ReplayError::Setup(format!(
                "{} and {} both describe model {:?}; give one baseline per model",
                first.display(),
                path.display(),
                baseline.model
            )));
        }
    }
    Ok(())
}

fn add(
    monitor: &mut Monitor,
    config: &Config,
    model: &ModelConfig,
    baseline: Baseline,
) -> Result<(), ReplayError> {
    let name = model.name.as_str();
    let settings =
        monitor_settings(config, model).map_err(|e| ReplayError::Setup(format!("{e:#}")))?;
    monitor
        .set_baseline(Arc::new(baseline), settings)
        .map_err(|e| ReplayError::Setup(format!("model {name}: {e}")))
}

/// The configured model with this baseline, or a new model with the
/// configuration's defaults.
fn model_config(
    config: &Config,
    path: &Path,
    baseline: &Baseline,
) -> Result<ModelConfig, ReplayError> {
    if let Some(configured) = config.model(&baseline.model) {
        return Ok(ModelConfig {
            baseline: path.to_path_buf(),
            ..configured.clone()
        });
    }
    let name = ModelName::new(&baseline.model).map_err(|reason| {
        ReplayError::Setup(format!(
            "{}: model name {:?} {reason}",
            path.display(),
            baseline.model
        ))
    })?;
    Ok(ModelConfig {
        name,
        baseline: path.to_path_buf(),
        versions: BTreeMap::new(),
        channels: config.alerts.channels.clone(),
        monitor: config.monitor.clone(),
        prediction: None,
    })
}
