//! Checks for `[monitor]` and `[[models]]`, and the resolution of each
//! model's overrides into its own [`MonitorSettings`].

use std::collections::{BTreeMap, HashMap};
use std::num::{NonZeroU64, NonZeroUsize};
use std::path::PathBuf;

use super::Checker;
use crate::config::layers::child_key;
use crate::config::raw::{RawModel, RawMonitor};
use crate::config::schema::{
    ChannelKind, Correction, Decision, DecisionMode, ModelConfig, MonitorSettings,
    PerformanceConfig, Persistence, Window,
};
use crate::config::types::{Alpha, Fraction, ModelName};

/// Below this, a calibrated threshold would alarm so often that the
/// setting is certainly a mistake (and calibration by simulation would be
/// meaningless).
const MIN_RUN_LENGTH: u64 = 100;

/// What every model inherits, as far as it validated.
pub(super) struct ModelDefaults<'a> {
    /// `[monitor]` as written, for the values a model override depends on.
    pub raw_monitor: &'a RawMonitor,
    /// `[monitor]` validated; `None` when it has problems of its own.
    pub monitor: Option<&'a MonitorSettings>,
    /// `alerts.channels`, validated.
    pub route: Option<&'a [ChannelKind]>,
    /// Configured channels; `None` when `[channels]` has problems.
    pub enabled: Option<&'a [ChannelKind]>,
}

impl Checker {
    pub(super) fn monitor(&mut self, raw: &RawMonitor) -> Option<MonitorSettings> {
        let errors_before = self.errors.len();
        let min_window = self.count("monitor.min_window", raw.min_window, 1);
        let window = self.window(raw, min_window);
        let check_interval = self.count("monitor.check_interval", raw.check_interval, 1);
        let decision = self.global_decision(raw);
        self.ensure(
            raw.psi_warn.is_finite() && raw.psi_warn > 0.0,
            "monitor.psi_warn",
            format!("must be a positive number, got {}", raw.psi_warn),
        );
        let tolerance = Fraction::new(raw.missing_rate_tolerance);
        let message = format!("must be in [0, 1], got {}", raw.missing_rate_tolerance);
        self.ensure(
            tolerance.is_some(),
            "monitor.missing_rate_tolerance",
            message,
        );
        let performance = self.performance(raw);

        let settings = MonitorSettings {
            window: window?,
            min_window: min_window?,
            check_interval: check_interval?,
            decision: decision?,
            persistence: Persistence {
                for_events: raw.for_events,
                for_duration: raw.for_duration,
            },
            resolve_after_events: raw.resolve_after_events,
            psi_warn: raw.psi_warn,
            missing_rate_tolerance: tolerance?,
            performance: performance?,
        };
        (self.errors.len() == errors_before).then_some(settings)
    }

    /// The `performance_*`, `max_classes_reported` and `label_join_*` keys.
    fn performance(&mut self, raw: &RawMonitor) -> Option<PerformanceConfig> {
        let window = self.count("monitor.performance_window", raw.performance_window, 2);
        let key = "monitor.performance_min_samples";
        let min_samples = self.count(key, raw.performance_min_samples, 2);
        if let (Some(w), Some(m)) = (window, min_samples) {
            let message = format!("must be at most monitor.performance_window ({w}), got {m}");
            self.ensure(m <= w, key, message);
        }
        let tolerance = Fraction::new(raw.performance_tolerance);
        let message = format!("must be in [0, 1], got {}", raw.performance_tolerance);
        self.ensure(
            tolerance.is_some(),
            "monitor.performance_tolerance",
            message,
        );
        let error_tolerance = raw.performance_error_tolerance;
        self.ensure(
            error_tolerance.is_finite() && error_tolerance >= 0.0,
            "monitor.performance_error_tolerance",
            format!("must be a non-negative number, got {error_tolerance}"),
        );
        let alpha = Alpha::new(raw.performance_alpha);
        let message = format!(
            "must be strictly between 0 and 1, got {}",
            raw.performance_alpha
        );
        self.ensure(alpha.is_some(), "monitor.performance_alpha", message);
        let key = "monitor.label_join_max_entries";
        let entries = self.count(key, raw.label_join_max_entries, 1);
        let age = self.positive("monitor.label_join_max_age", raw.label_join_max_age);

        Some(PerformanceConfig {
            window: window?,
            min_samples: min_samples?,
            accuracy_tolerance: tolerance?,
            error_tolerance,
            alpha: alpha?,
            max_classes: usize::try_from(raw.max_classes_reported).unwrap_or(usize::MAX),
            join_max_entries: entries?,
            join_max_age: age?,
        })
    }

    fn window(&mut self, raw: &RawMonitor, min_window: Option<NonZeroUsize>) -> Option<Window> {
        let counted = raw.window_duration.is_none();
        let size = self.window_size("monitor.window_size", raw.window_size, min_window, counted);
        match raw.window_duration {
            None => size.map(Window::Count),
            Some(span) => {
                let span = self.positive("monitor.window_duration", span);
                size.and(span).map(Window::Time)
            }
        }
    }

    /// At least 2 (a KS test needs two values); for a count window also at
    /// least `min_window`, or no verdict could ever be given.
    fn window_size(
        &mut self,
        key: &str,
        value: u64,
        min_window: Option<NonZeroUsize>,
        counted: bool,
    ) -> Option<NonZeroUsize> {
        let size = self.count(key, value, 2)?;
        match min_window {
            Some(min) if counted && size < min => {
                self.fail(
                    key,
                    format!("must be at least monitor.min_window ({min}), got {size}"),
                );
                None
            }
            _ => Some(size),
        }
    }

    /// Both modes' parameters are checked whichever is selected, so that
    /// switching modes (or a model override) cannot reveal a bad value late.
    fn global_decision(&mut self, raw: &RawMonitor) -> Option<Decision> {
        let key = "monitor.target_run_length";
        let target = self.count64(key, raw.target_run_length, MIN_RUN_LENGTH);
        let alpha = Alpha::new(raw.alpha);
        let message = format!("must be strictly between 0 and 1, got {}", raw.alpha);
        self.ensure(alpha.is_some(), "monitor.alpha", message);

        Some(decision(raw.decision, target?, alpha?, raw.correction))
    }

    pub(super) fn models(
        &mut self,
        models: Vec<RawModel>,
        defaults: &ModelDefaults<'_>,
    ) -> Option<Vec<ModelConfig>> {
        let errors_before = self.errors.len();
        self.unique_names(&models);

        let checked: Vec<_> = models
            .into_iter()
            .enumerate()
            .map(|(i, model)| self.model(i, model, defaults))
            .collect();
        let all: Option<Vec<_>> = checked.into_iter().collect();
        all.filter(|_| self.errors.len() == errors_before)
    }

    fn unique_names(&mut self, models: &[RawModel]) {
        let mut first: HashMap<&str, usize> = HashMap::new();
        for (i, model) in models.iter().enumerate() {
            let Some(name) = model.name.as_deref() else {
                continue;
            };
            if let Some(j) = first.get(name) {
                let message = format!("duplicate model name {name:?} (also models[{j}])");
                self.fail(format!("models[{i}].name"), message);
            } else {
                first.insert(name, i);
            }
        }
    }

    fn model(
        &mut self,
        i: usize,
        raw: RawModel,
        defaults: &ModelDefaults<'_>,
    ) -> Option<ModelConfig> {
        let key = |field: &str| format!("models[{i}].{field}");
        let name = self.model_name(&key("name"), raw.name.as_deref());
        let baseline = self.baseline_path(&key("baseline"), raw.baseline.clone());
        let versions_ok = self.versions(&key("versions"), &raw.versions);
        let channels = match &raw.channels {
            Some(names) => self.route(&key("channels"), names, defaults.enabled),
            None => defaults.route.map(<[_]>::to_vec),
        };
        let monitor = self.model_monitor(i, &raw, defaults);

        let model = ModelConfig {
            name: name?,
            baseline: baseline?,
            versions: raw.versions,
            channels: channels?,
            monitor: monitor?,
            prediction: raw.prediction,
        };
        versions_ok.then_some(model)
    }

    fn model_name(&mut self, key: &str, name: Option<&str>) -> Option<ModelName> {
        let Some(name) = name else {
            self.fail(key, "required");
            return None;
        };
        self.parsed(key, ModelName::new(name))
    }

    /// Only presence is checked here; the baseline loader reports a file
    /// that is missing or malformed.
    fn baseline_path(&mut self, key: &str, path: Option<PathBuf>) -> Option<PathBuf> {
        let Some(path) = path else {
            self.fail(key, "required: the baseline snapshot file for this model");
            return None;
        };
        self.non_blank(key, &path.to_string_lossy()).then_some(path)
    }

    fn versions(&mut self, key: &str, versions: &BTreeMap<String, PathBuf>) -> bool {
        let mut ok = true;
        for (version, path) in versions {
            let item = child_key(key, version);
            ok &= self.non_blank(&item, version);
            ok &= self.non_blank(&item, &path.to_string_lossy());
        }
        ok
    }

    /// `[monitor]` with the model's overrides applied. Overrides are
    /// checked even when `[monitor]` itself is invalid, so their problems
    /// are reported in the same run.
    fn model_monitor(
        &mut self,
        i: usize,
        raw: &RawModel,
        defaults: &ModelDefaults<'_>,
    ) -> Option<MonitorSettings> {
        let global = defaults.raw_monitor;
        let window = self.model_window(i, raw.window_size, defaults);
        let mode = raw.decision.unwrap_or(global.decision);
        let target = self.model_run_length(i, raw.target_run_length, mode);

        let mut settings = defaults.monitor?.clone();
        if let Some(size) = window? {
            settings.window = Window::Count(size);
        }
        if let Some(n) = raw.for_events {
            settings.persistence.for_events = n;
        }
        let target = target?.or(NonZeroU64::new(global.target_run_length))?;
        let alpha = Alpha::new(global.alpha)?;
        settings.decision = decision(mode, target, alpha, global.correction);
        Some(settings)
    }

    /// `Some(None)` when the model keeps the global window.
    fn model_window(
        &mut self,
        i: usize,
        size: Option<u64>,
        defaults: &ModelDefaults<'_>,
    ) -> Option<Option<NonZeroUsize>> {
        let Some(size) = size else { return Some(None) };
        let key = format!("models[{i}].window_size");
        let timed = defaults.raw_monitor.window_duration.is_some();
        let message = "has no effect while monitor.window_duration is set";
        if !self.ensure(!timed, &key, message) {
            return None;
        }
        let min_window = defaults.monitor.map(|m| m.min_window);
        self.window_size(&key, size, min_window, true).map(Some)
    }

    /// `Some(None)` when the model keeps the global target.
    fn model_run_length(
        &mut self,
        i: usize,
        target: Option<u64>,
        mode: DecisionMode,
    ) -> Option<Option<NonZeroU64>> {
        let Some(target) = target else {
            return Some(None);
        };
        let key = format!("models[{i}].target_run_length");
        let calibrated = mode == DecisionMode::Calibrated;
        if !self.ensure(calibrated, &key, "has no effect with decision = \"fixed\"") {
            return None;
        }
        self.count64(&key, target, MIN_RUN_LENGTH).map(Some)
    }
}

fn decision(
    mode: DecisionMode,
    target: NonZeroU64,
    alpha: Alpha,
    correction: Correction,
) -> Decision {
    match mode {
        DecisionMode::Calibrated => Decision::Calibrated {
            target_run_length: target,
        },
        DecisionMode::Fixed => Decision::Fixed { alpha, correction },
    }
}
