//! Text shared by every channel: headlines, numbers, times and safe
//! truncation, so a Slack message, an email and a webhook payload describe
//! the same notification with the same words and digits.

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat};

use super::notification::{Alert, AlertStatus, CheckKind, Notification};

/// The time Alertmanager writes for "not ended yet".
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// `FIRING` or `RESOLVED`, as Alertmanager's templates print the status.
pub fn status_tag(status: AlertStatus) -> &'static str {
    match status {
        AlertStatus::Firing => "FIRING",
        AlertStatus::Resolved => "RESOLVED",
    }
}

/// `firing` or `resolved`, as Alertmanager's JSON writes the status.
pub fn status_word(status: AlertStatus) -> &'static str {
    match status {
        AlertStatus::Firing => "firing",
        AlertStatus::Resolved => "resolved",
    }
}

/// One line that says what happened, e.g. `churn: drift in 2 features`.
///
/// A firing notification counts its firing alerts (it may also carry
/// alerts that resolved at the same decision point); a resolved one counts
/// them all. "Feature" is only said when every counted alert is feature
/// drift, because "drift in 1 feature" would be wrong for an accuracy drop.
pub fn headline(notification: &Notification) -> String {
    let counted: Vec<&Alert> = match notification.status {
        AlertStatus::Firing => notification.firing().collect(),
        AlertStatus::Resolved => notification.alerts.iter().collect(),
    };
    let n = counted.len();
    let all_features = counted.iter().all(|a| a.check == CheckKind::FeatureDrift);
    let model = &notification.model;
    match (notification.status, all_features) {
        (AlertStatus::Firing, true) => format!("{model}: drift in {}", plural(n, "feature")),
        (AlertStatus::Firing, false) => format!("{model}: {} firing", plural(n, "check")),
        (AlertStatus::Resolved, true) => {
            format!("{model}: drift resolved in {}", plural(n, "feature"))
        }
        (AlertStatus::Resolved, false) => format!("{model}: {} resolved", plural(n, "check")),
    }
}

/// The subject line of a message: `[FIRING] churn: drift in 2 features`.
pub fn subject(notification: &Notification) -> String {
    format!(
        "[{}] {}",
        status_tag(notification.status),
        headline(notification)
    )
}

/// `1 feature`, `2 features`.
pub fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Alertmanager-style alert name for a check kind.
pub fn alert_name(check: CheckKind) -> &'static str {
    match check {
        CheckKind::FeatureDrift => "DriftDetected",
        CheckKind::PredictionDrift => "PredictionDriftDetected",
        CheckKind::DataQuality => "DataQualityDegraded",
        CheckKind::Performance => "PerformanceDegraded",
    }
}

/// Severity label for a check kind. A performance drop is what users feel,
/// so it is critical; drift and data quality are early warnings.
pub fn severity(check: CheckKind) -> &'static str {
    match check {
        CheckKind::Performance => "critical",
        _ => "warning",
    }
}

/// An event time in ms since the epoch as RFC 3339 UTC with milliseconds.
/// A time outside chrono's range (only a corrupt event can produce one) is
/// written as the raw number rather than failing the whole notification.
pub fn rfc3339_ms(ms: i64) -> String {
    match DateTime::from_timestamp_millis(ms) {
        Some(time) => time.to_rfc3339_opts(SecondsFormat::Millis, true),
        None => format!("{ms}ms"),
    }
}

/// A statistic with four decimals, the precision scipy users compare.
pub fn number(x: f64) -> String {
    format!("{x:.4}")
}

/// A p-value: scientific notation when small, so 3e-12 does not print as
/// `0.0000`; `n/a` for tests without one.
pub fn p_value(p: Option<f64>) -> String {
    match p {
        None => "n/a".to_owned(),
        Some(p) if p != 0.0 && p.abs() < 1e-3 => format!("{p:.2e}"),
        Some(p) => format!("{p:.4}"),
    }
}

/// The window's event-time range, `start – end`.
pub fn window_range(alert: &Alert) -> String {
    format!(
        "{} – {}",
        rfc3339_ms(alert.evidence.window_start_ms),
        rfc3339_ms(alert.evidence.window_end_ms)
    )
}

/// One line of numbers for an alert, without the feature name:
/// `ks D=0.2130 p=4.20e-5 threshold=0.1200 n=500 m=10000`.
pub fn evidence_line(alert: &Alert) -> String {
    let e = &alert.evidence;
    let mut line = format!(
        "{} {}={} p={} threshold={} n={} m={}",
        e.test,
        statistic_symbol(&e.test),
        number(e.statistic),
        p_value(e.p_value),
        number(e.threshold),
        e.window_size,
        e.baseline_size
    );
    if let Some(psi) = e.psi {
        line.push_str(&format!(" psi={}", number(psi)));
    }
    line
}

/// `D` for KS, `χ²` for chi-square, else `stat`.
fn statistic_symbol(test: &str) -> &'static str {
    match test {
        "ks" => "D",
        "chi2" => "χ²",
        _ => "stat",
    }
}

/// Cuts `text` to at most `max` characters (not bytes), ending with `…`
/// when something was cut. Cutting at a char boundary keeps multi-byte
/// feature names valid UTF-8.
pub fn truncate_chars(text: &str, max: usize) -> Cow<'_, str> {
    if text.chars().count() <= max {
        return Cow::Borrowed(text);
    }
    let keep = max.saturating_sub(1);
    let end = text.char_indices().nth(keep).map_or(text.len(), |(i, _)| i);
    let mut cut = String::with_capacity(end + 3);
    cut.push_str(&text[..end]);
    if max > 0 {
        cut.push('…');
    }
    Cow::Owned(cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_char_boundaries_and_limit() {
        let text = "é".repeat(10);

        let cut = truncate_chars(&text, 4);

        assert_eq!(cut, "ééé…");
        assert_eq!(truncate_chars("short", 10), "short");
        assert_eq!(truncate_chars("abc", 0), "");
    }

    #[test]
    fn small_p_values_keep_their_digits() {
        assert_eq!(p_value(Some(3.2e-12)), "3.20e-12");
        assert_eq!(p_value(Some(0.0421)), "0.0421");
        assert_eq!(p_value(Some(0.0)), "0.0000");
        assert_eq!(p_value(None), "n/a");
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339_ms(1_764_756_000_123), "2025-12-03T10:00:00.123Z");
        assert_eq!(rfc3339_ms(i64::MAX), format!("{}ms", i64::MAX));
    }
}
