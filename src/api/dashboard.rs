//! The dashboard: one page served at `/` (HTML, CSS and hand-written JS
//! with SVG charts, embedded in the binary so it works offline) and the
//! JSON routes it reads.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the page |
//! | `GET /api/v1/overview` | per model: state, events, events/s, drifted and alert counts |
//! | `GET /api/v1/models/{model}/history?since=<ms>` | sampled series per check |
//! | `GET /api/v1/models/{model}/features/{feature}/ecdf?check=<kind>` | baseline vs window: ECDFs and D, or category shares |
//! | `GET /api/v1/alerts` | active alerts, recent state changes and notifications |

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::distribution::{self, Snapshot};
use super::{ApiError, AppState, History};
use crate::alert::CheckKind;
use crate::monitor::ModelStatus;
use crate::monitor::check::Test;

const INDEX_HTML: &str = include_str!("assets/index.html");
const DASHBOARD_CSS: &str = include_str!("assets/dashboard.css");
const DASHBOARD_JS: &str = include_str!("assets/dashboard.js");

/// Only the page's own files and API: nothing is fetched from elsewhere.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Rate points returned per model by the overview (enough for a sparkline).
const OVERVIEW_RATE_POINTS: usize = 120;

/// The dashboard's routes, merged into the API router.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/assets/dashboard.css", get(css))
        .route("/assets/dashboard.js", get(js))
        .route("/api/v1/overview", get(overview))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/models/{model}/history", get(history))
        .route(
            "/api/v1/models/{model}/features/{feature}/ecdf",
            get(feature_distribution),
        )
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", DASHBOARD_CSS)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", DASHBOARD_JS)
}

/// An embedded file; `no-cache` so a new binary's page is picked up.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Every model's status, or a 503 if the monitor is unusable (a panic
/// while applying an event poisoned its lock).
fn statuses(state: &AppState) -> Result<Vec<ModelStatus>, ApiError> {
    state
        .shared
        .monitor
        .lock()
        .map(|m| m.status())
        .map_err(|_| unavailable())
}

fn unavailable() -> ApiError {
    ApiError(
        StatusCode::SERVICE_UNAVAILABLE,
        "the monitor is unavailable".into(),
    )
}

fn no_model(model: &str) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        format!("no model {model:?} is monitored"),
    )
}

fn bad_query(rejection: QueryRejection) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, rejection.body_text())
}

/// The worst of a set of states: firing over pending over ok.
fn worst<'a>(states: impl Iterator<Item = &'a str>) -> &'static str {
    let mut worst = "ok";
    for s in states {
        match s {
            "firing" => return "firing",
            "pending" => worst = "pending",
            _ => {}
        }
    }
    worst
}

/// One model in the overview.
#[derive(Debug, Serialize)]
struct ModelOverview {
    model: String,
    baseline_id: String,
    /// Worst state over its checks.
    state: &'static str,
    events: u64,
    last_event_ms: Option<i64>,
    events_per_second: Option<f64>,
    /// Distribution checks (features and prediction) whose latest verdict
    /// is "drifted".
    drifted: usize,
    /// Distribution checks.
    checks: usize,
    firing: usize,
    pending: usize,
    /// Recent events/s samples, oldest first: [t_ms, per_second].
    rate: Vec<(i64, f64)>,
}

async fn overview(State(state): State<AppState>) -> Result<Response, ApiError> {
    let statuses = statuses(&state)?;
    let models: Vec<ModelOverview> = statuses
        .into_iter()
        .map(|status| model_overview(&state, status))
        .collect();
    Ok(Json(json!({ "models": models })).into_response())
}

fn model_overview(state: &AppState, status: ModelStatus) -> ModelOverview {
    let distribution = |c: &&crate::monitor::model::CheckStatus| c.check != CheckKind::DataQuality;
    let rate: Vec<(i64, f64)> = state
        .history
        .model(&status.model, None)
        .map(|h| h.rate.iter().map(|p| (p.t_ms, p.per_second)).collect())
        .unwrap_or_default();
    let skip = rate.len().saturating_sub(OVERVIEW_RATE_POINTS);
    ModelOverview {
        state: worst(status.checks.iter().map(|c| c.state)),
        events_per_second: rate.last().map(|p| p.1),
        drifted: status
            .checks
            .iter()
            .filter(distribution)
            .filter(|c| c.drifted)
            .count(),
        checks: status.checks.iter().filter(distribution).count(),
        firing: status.checks.iter().filter(|c| c.state == "firing").count(),
        pending: status
            .checks
            .iter()
            .filter(|c| c.state == "pending")
            .count(),
        rate: rate.into_iter().skip(skip).collect(),
        model: status.model,
        baseline_id: status.baseline_id,
        events: status.events,
        last_event_ms: status.last_event_ms,
    }
}

/// `?since=<ms>`: only points sampled after that wall time.
#[derive(Debug, Deserialize)]
struct HistoryQuery {
    since: Option<i64>,
}

async fn history(
    State(state): State<AppState>,
    Path(model): Path<String>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    let known = state
        .shared
        .monitor
        .lock()
        .map_err(|_| unavailable())?
        .model_status(&model)
        .is_some();
    if !known {
        return Err(no_model(&model));
    }
    // A model not sampled yet has an empty history, not a missing one.
    let view = state.history.model(&model, query.since);
    Ok(match view {
        Some(view) => Json(view).into_response(),
        None => Json(json!({ "model": model, "rate": [], "checks": [] })).into_response(),
    })
}

/// `?check=feature_drift|prediction_drift` picks between a feature and the
/// prediction when both are named `prediction`.
#[derive(Debug, Deserialize)]
struct DistributionQuery {
    check: Option<CheckKind>,
}

/// What the distribution route reports beside the curves.
#[derive(Debug, Serialize)]
struct CheckHead {
    model: String,
    feature: String,
    check: CheckKind,
    test: &'static str,
    state: &'static str,
    statistic: Option<f64>,
    threshold: Option<f64>,
    drifted: bool,
}

async fn feature_distribution(
    State(state): State<AppState>,
    Path((model, feature)): Path<(String, String)>,
    query: Result<Query<DistributionQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    let (head, snapshot) = snapshot(&state, &model, &feature, query.check)?;
    let body = match snapshot {
        Snapshot::Numeric { window, reference } => {
            let view = distribution::numeric_view(&window, &reference);
            json!({ "kind": "numeric", "head": head, "numeric": view })
        }
        Snapshot::Categorical {
            names,
            window,
            baseline,
        } => {
            let view = distribution::categorical_view(&names, &window, &baseline);
            json!({ "kind": "categorical", "head": head, "categorical": view })
        }
    };
    Ok(Json(body).into_response())
}

/// Copies one check's distributions out of the monitor.
fn snapshot(
    state: &AppState,
    model: &str,
    feature: &str,
    kind: Option<CheckKind>,
) -> Result<(CheckHead, Snapshot), ApiError> {
    let monitor = state.shared.monitor.lock().map_err(|_| unavailable())?;
    let monitored = monitor
        .models()
        .find(|m| m.baseline().model == model)
        .ok_or_else(|| no_model(model))?;
    let check = monitored
        .checks()
        .iter()
        .find(|c| c.name == feature && kind.is_none_or(|k| k == c.kind))
        .ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                format!("model {model:?} has no distribution check for {feature:?}"),
            )
        })?;
    let head = CheckHead {
        model: model.to_string(),
        feature: feature.to_string(),
        check: check.kind,
        test: match check.test {
            Test::Ks { .. } => "ks",
            Test::ChiSquare { .. } => "chi2",
        },
        state: check.phase.name(),
        statistic: check.last.map(|o| o.statistic),
        threshold: check.last.map(|o| o.threshold),
        drifted: check.last.is_some_and(|o| o.drifted),
    };
    Ok((head, Snapshot::of(monitored, check)))
}

/// A check in state pending or firing.
#[derive(Debug, Serialize)]
struct ActiveAlert {
    model: String,
    check: CheckKind,
    feature: String,
    test: &'static str,
    state: &'static str,
    statistic: Option<f64>,
    threshold: Option<f64>,
    n: u64,
    m: u64,
    /// Wall time the sampler first saw this state, if it has.
    since_ms: Option<i64>,
}

async fn alerts(State(state): State<AppState>) -> Result<Response, ApiError> {
    let active = active_alerts(statuses(&state)?, &state.history);
    let (changes, notifications) = state.history.recent();
    Ok(Json(json!({
        "active": active,
        "changes": changes,
        "notifications": notifications,
    }))
    .into_response())
}

/// Checks in state pending or firing: firing first, then by model and
/// feature.
fn active_alerts(statuses: Vec<ModelStatus>, history: &History) -> Vec<ActiveAlert> {
    let mut active = Vec::new();
    for status in statuses {
        let since = history.state_since(&status.model);
        let model = status.model;
        for c in status.checks {
            if c.state != "firing" && c.state != "pending" {
                continue;
            }
            active.push(ActiveAlert {
                since_ms: since.get(&(c.check, c.name.clone())).copied(),
                model: model.clone(),
                check: c.check,
                feature: c.name,
                test: c.test,
                state: c.state,
                statistic: c.statistic,
                threshold: c.threshold,
                n: c.n,
                m: c.m,
            });
        }
    }
    active.sort_by(|a, b| {
        let (ka, kb) = (a.state != "firing", b.state != "firing");
        (ka, &a.model, &a.feature).cmp(&(kb, &b.model, &b.feature))
    });
    active
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_state_orders_firing_over_pending_over_ok() {
        assert_eq!(worst(["ok", "pending", "ok"].into_iter()), "pending");
        assert_eq!(worst(["pending", "firing"].into_iter()), "firing");
        assert_eq!(worst(std::iter::empty()), "ok");
    }

    #[test]
    fn page_loads_nothing_from_elsewhere() {
        for (name, text) in [
            ("index.html", INDEX_HTML),
            ("dashboard.css", DASHBOARD_CSS),
            ("dashboard.js", DASHBOARD_JS),
        ] {
            for scheme in ["http:", "https:", "@import"] {
                assert!(!text.contains(scheme), "{name} mentions {scheme}");
            }
        }
    }
}
