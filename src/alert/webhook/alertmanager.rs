//! The Alertmanager webhook payload (version 4): the JSON body, its
//! labels and annotations, and how a [`Notification`] maps onto it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::alert::notification::{Alert, AlertStatus, Notification};
use crate::alert::render::{self, ZERO_TIME};

/// The body of an Alertmanager webhook notification (version 4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerPayload {
    /// Always `"4"`.
    pub version: String,
    /// Identifies the group (here: the model) across notifications.
    pub group_key: String,
    /// Alerts left out of `alerts`; always 0, driftwarden sends them all.
    pub truncated_alerts: u64,
    /// `firing` or `resolved`.
    pub status: String,
    /// The channel's name.
    pub receiver: String,
    /// The labels the alerts are grouped by: `model`.
    pub group_labels: BTreeMap<String, String>,
    /// Labels with the same value in every alert.
    pub common_labels: BTreeMap<String, String>,
    /// Annotations with the same value in every alert.
    pub common_annotations: BTreeMap<String, String>,
    /// Where driftwarden is reachable; empty when not configured.
    #[serde(rename = "externalURL")]
    pub external_url: String,
    /// One entry per alert.
    pub alerts: Vec<AlertmanagerAlert>,
}

/// One alert in an [`AlertmanagerPayload`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerAlert {
    /// `firing` or `resolved`.
    pub status: String,
    /// `alertname`, `model`, `check`, `feature`, `severity`.
    pub labels: BTreeMap<String, String>,
    /// The evidence, as strings (Alertmanager's annotations are strings).
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339 time the alert started firing.
    pub starts_at: String,
    /// RFC 3339 time it resolved; `0001-01-01T00:00:00Z` while firing.
    pub ends_at: String,
    /// Link to the alert in driftwarden; empty without an external URL.
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    /// Stable identity of (model, check, feature).
    pub fingerprint: String,
}

/// Renders `notification` as Alertmanager would send it to `receiver`.
pub fn alertmanager_payload(
    notification: &Notification,
    receiver: &str,
    external_url: &str,
) -> AlertmanagerPayload {
    let alerts: Vec<AlertmanagerAlert> = notification
        .alerts
        .iter()
        .map(|alert| alertmanager_alert(alert, notification, external_url))
        .collect();
    AlertmanagerPayload {
        version: "4".to_owned(),
        group_key: notification.group_key(),
        truncated_alerts: 0,
        status: render::status_word(notification.status).to_owned(),
        receiver: receiver.to_owned(),
        group_labels: BTreeMap::from([("model".to_owned(), notification.model.clone())]),
        common_labels: common(alerts.iter().map(|a| &a.labels)),
        common_annotations: common(alerts.iter().map(|a| &a.annotations)),
        external_url: external_url.to_owned(),
        alerts,
    }
}

fn alertmanager_alert(
    alert: &Alert,
    notification: &Notification,
    external_url: &str,
) -> AlertmanagerAlert {
    let fingerprint = alert.fingerprint();
    let ends_at = match (alert.status, alert.ends_at_ms) {
        (AlertStatus::Firing, _) => ZERO_TIME.to_owned(),
        (AlertStatus::Resolved, Some(ms)) => render::rfc3339_ms(ms),
        (AlertStatus::Resolved, None) => render::rfc3339_ms(notification.decided_at_ms),
    };
    AlertmanagerAlert {
        status: render::status_word(alert.status).to_owned(),
        labels: labels(alert),
        annotations: annotations(alert),
        starts_at: render::rfc3339_ms(alert.starts_at_ms),
        ends_at,
        generator_url: generator_url(external_url, &fingerprint),
        fingerprint,
    }
}

/// Link to one alert in driftwarden's API. The fingerprint is hex, so it
/// needs no escaping, unlike model and feature names.
fn generator_url(external_url: &str, fingerprint: &str) -> String {
    if external_url.is_empty() {
        String::new()
    } else {
        format!("{external_url}/alerts/{fingerprint}")
    }
}

fn labels(alert: &Alert) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        (
            "alertname".to_owned(),
            render::alert_name(alert.check).to_owned(),
        ),
        ("model".to_owned(), alert.model.clone()),
        ("check".to_owned(), alert.check.as_str().to_owned()),
        ("feature".to_owned(), alert.feature.clone()),
        (
            "severity".to_owned(),
            render::severity(alert.check).to_owned(),
        ),
    ]);
    // Only for versions monitored against their own baseline: part of the
    // alert's identity, so receivers group and deduplicate by it.
    if let Some(version) = &alert.model_version {
        labels.insert("model_version".to_owned(), version.clone());
    }
    labels
}

/// The evidence as annotations. Numbers use Rust's shortest round-trip
/// form, so a receiver parses back exactly the values that were decided on.
fn annotations(alert: &Alert) -> BTreeMap<String, String> {
    let e = &alert.evidence;
    let mut map = BTreeMap::from([
        ("summary".to_owned(), summary(alert)),
        ("description".to_owned(), description(alert)),
        ("test".to_owned(), e.test.clone()),
        ("statistic".to_owned(), e.statistic.to_string()),
        ("threshold".to_owned(), e.threshold.to_string()),
        ("window_size".to_owned(), e.window_size.to_string()),
        ("baseline_size".to_owned(), e.baseline_size.to_string()),
        ("baseline_id".to_owned(), e.baseline_id.clone()),
        (
            "window_start".to_owned(),
            render::rfc3339_ms(e.window_start_ms),
        ),
        ("window_end".to_owned(), render::rfc3339_ms(e.window_end_ms)),
    ]);
    if let Some(p) = e.p_value {
        map.insert("p_value".to_owned(), p.to_string());
    }
    if let Some(psi) = e.psi {
        map.insert("psi".to_owned(), psi.to_string());
    }
    if let Some((first, last)) = e.offsets {
        map.insert("offsets".to_owned(), format!("{first}-{last}"));
    }
    map
}

fn summary(alert: &Alert) -> String {
    format!(
        "{}/{}: {}",
        alert.model,
        alert.feature,
        render::evidence_line(alert)
    )
}

fn description(alert: &Alert) -> String {
    let e = &alert.evidence;
    let state = match alert.status {
        AlertStatus::Firing => "is firing",
        AlertStatus::Resolved => "has resolved",
    };
    format!(
        "{} check on `{}` of model {} {state}: {} statistic {} against threshold {} (p={}) \
         over {} events from {}; baseline {} has {} values.",
        alert.check.as_str(),
        alert.feature,
        alert.model,
        e.test,
        render::number(e.statistic),
        render::number(e.threshold),
        render::p_value(e.p_value),
        e.window_size,
        render::window_range(alert),
        e.baseline_id,
        e.baseline_size
    )
}

/// The entries with the same value in every map, as Alertmanager computes
/// `commonLabels` and `commonAnnotations`; empty for no maps.
fn common<'a>(
    mut maps: impl Iterator<Item = &'a BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let Some(first) = maps.next() else {
        return BTreeMap::new();
    };
    let mut shared = first.clone();
    for map in maps {
        shared.retain(|key, value| map.get(key) == Some(value));
    }
    shared
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::notification::{CheckKind, Evidence};

    fn alert(feature: &str, status: AlertStatus) -> Alert {
        Alert {
            model: "churn".into(),
            model_version: None,
            check: CheckKind::FeatureDrift,
            feature: feature.into(),
            status,
            starts_at_ms: 1_764_756_000_000,
            ends_at_ms: None,
            evidence: Evidence {
                test: "ks".into(),
                statistic: 0.213,
                p_value: Some(4.2e-5),
                threshold: 0.12,
                psi: None,
                window_size: 500,
                baseline_size: 10_000,
                window_start_ms: 1_764_755_700_000,
                window_end_ms: 1_764_756_000_000,
                offsets: Some((100, 599)),
                baseline_id: "b-1".into(),
            },
        }
    }

    fn notification(alerts: Vec<Alert>) -> Notification {
        Notification {
            model: "churn".into(),
            model_version: None,
            status: AlertStatus::Firing,
            alerts,
            decided_at_ms: 1_764_756_000_000,
            sequence: 7,
        }
    }

    #[test]
    fn payload_has_alertmanager_shape() {
        let n = notification(vec![
            alert("age", AlertStatus::Firing),
            alert("plan", AlertStatus::Firing),
        ]);

        let json =
            serde_json::to_value(alertmanager_payload(&n, "hook", "http://dw:8080")).unwrap();

        assert_eq!(json["version"], "4");
        assert_eq!(json["groupKey"], "{}:{model=\"churn\"}");
        assert_eq!(json["truncatedAlerts"], 0);
        assert_eq!(json["status"], "firing");
        assert_eq!(json["groupLabels"]["model"], "churn");
        assert_eq!(json["commonLabels"]["alertname"], "DriftDetected");
        assert!(json["commonLabels"].get("feature").is_none());
        assert_eq!(json["commonAnnotations"]["baseline_id"], "b-1");
        assert_eq!(json["externalURL"], "http://dw:8080");
        let first = &json["alerts"][0];
        assert_eq!(first["endsAt"], ZERO_TIME);
        assert_eq!(first["startsAt"], "2025-12-03T10:00:00.000Z");
        assert_eq!(first["annotations"]["p_value"], "0.000042");
        assert_eq!(first["annotations"]["offsets"], "100-599");
        assert_eq!(first["fingerprint"], n.alerts[0].fingerprint());
        assert_eq!(
            first["generatorURL"],
            format!("http://dw:8080/alerts/{}", n.alerts[0].fingerprint())
        );
    }

    #[test]
    fn resolved_alerts_end_at_their_resolution() {
        let mut resolved = alert("age", AlertStatus::Resolved);
        resolved.ends_at_ms = Some(1_764_756_060_000);
        let n = notification(vec![resolved, alert("plan", AlertStatus::Resolved)]);

        let payload = alertmanager_payload(&n, "hook", "");

        assert_eq!(payload.alerts[0].ends_at, "2025-12-03T10:01:00.000Z");
        assert_eq!(payload.alerts[1].ends_at, "2025-12-03T10:00:00.000Z");
        assert_eq!(payload.alerts[0].generator_url, "");
    }
}
