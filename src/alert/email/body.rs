//! The two parts of an alert email: plain text, and HTML with every value
//! from the model's data escaped.

use std::fmt::Write as _;

use crate::alert::notification::{Alert, Notification};
use crate::alert::render;

/// The plain-text part: the subject, then one paragraph per alert.
pub(super) fn plain_text(notification: &Notification, external_url: &str) -> String {
    let mut text = render::subject(notification);
    text.push('\n');
    for alert in &notification.alerts {
        let _ = write!(
            text,
            "\n{} ({}, {})\n  {}\n  window {}\n  baseline {}\n",
            alert.feature,
            alert.check.as_str(),
            render::status_word(alert.status),
            render::evidence_line(alert),
            render::window_range(alert),
            alert.evidence.baseline_id
        );
    }
    if !external_url.is_empty() {
        let _ = write!(text, "\n{external_url}\n");
    }
    text
}

/// The HTML part: the subject and a table with one row per alert. Every
/// value from the model's data is escaped: feature names are user input.
pub(super) fn html(notification: &Notification, external_url: &str) -> String {
    let subject = escape(&render::subject(notification));
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{subject}</title></head>\n\
         <body style=\"font-family: sans-serif\">\n<h2>{subject}</h2>\n\
         <table cellpadding=\"4\" border=\"1\" style=\"border-collapse: collapse\">\n\
         <tr><th>feature</th><th>check</th><th>status</th><th>test</th><th>statistic</th>\
         <th>p-value</th><th>threshold</th><th>n</th><th>m</th><th>window</th>\
         <th>baseline</th></tr>\n"
    );
    for alert in &notification.alerts {
        html.push_str(&html_row(alert));
    }
    html.push_str("</table>\n");
    if !external_url.is_empty() {
        let url = escape(external_url);
        let _ = writeln!(html, "<p><a href=\"{url}\">Open driftwarden</a></p>");
    }
    html.push_str("</body></html>\n");
    html
}

fn html_row(alert: &Alert) -> String {
    let e = &alert.evidence;
    let cells = [
        escape(&alert.feature),
        alert.check.as_str().to_owned(),
        render::status_word(alert.status).to_owned(),
        escape(&e.test),
        render::number(e.statistic),
        render::p_value(e.p_value),
        render::number(e.threshold),
        e.window_size.to_string(),
        e.baseline_size.to_string(),
        render::window_range(alert),
        escape(&e.baseline_id),
    ];
    let mut row = String::from("<tr>");
    for cell in cells {
        let _ = write!(row, "<td>{cell}</td>");
    }
    row.push_str("</tr>\n");
    row
}

/// HTML escaping for text and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::alert::notification::{AlertStatus, CheckKind, Evidence};

    pub(in crate::alert::email) fn notification(features: &[&str]) -> Notification {
        let alerts = features
            .iter()
            .map(|f| Alert {
                model: "churn".into(),
                model_version: None,
                check: CheckKind::FeatureDrift,
                feature: (*f).into(),
                status: AlertStatus::Firing,
                starts_at_ms: 0,
                ends_at_ms: None,
                evidence: Evidence {
                    test: "ks".into(),
                    statistic: 0.2,
                    p_value: Some(0.001),
                    threshold: 0.1,
                    psi: None,
                    window_size: 100,
                    baseline_size: 1000,
                    window_start_ms: 0,
                    window_end_ms: 60_000,
                    offsets: None,
                    baseline_id: "b-1".into(),
                },
            })
            .collect();
        Notification {
            model: "churn".into(),
            model_version: None,
            status: AlertStatus::Firing,
            alerts,
            decided_at_ms: 60_000,
            sequence: 3,
        }
    }

    #[test]
    fn html_escapes_feature_names() {
        let n = notification(&["<script>alert(1)</script>", "a&b"]);

        let page = html(&n, "");

        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("<td>a&amp;b</td>"));
    }

    #[test]
    fn plain_text_lists_every_feature() {
        let n = notification(&["age", "plan"]);

        let text = plain_text(&n, "http://dw");

        assert!(text.starts_with("[FIRING] churn: drift in 2 features\n"));
        assert!(text.contains("\nage (feature_drift, firing)"));
        assert!(text.contains("\nplan (feature_drift, firing)"));
        assert!(text.contains("http://dw"));
    }
}
