//! The HTTP API (axum): health, readiness, Prometheus metrics, the
//! monitor's status per model, and the dashboard.
//!
//! | module | owns |
//! |---|---|
//! | [`dashboard`] | the page at `/` and the JSON routes it reads |
//! | [`history`] | the sampler that keeps recent series for the page |
//! | [`distribution`] | ECDFs with the KS gap, category shares |
//! | `baselines` | a model's baselines: show, replace (PUT), capture from traffic |
//!
//! Errors come back as JSON `{"error": "..."}` with a fitting status code.

mod baselines;
mod dashboard;
pub mod distribution;
pub mod history;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::config::Secret;
use crate::service::Shared;
use crate::telemetry::names;

pub use history::{History, spawn_history};

/// Largest request body accepted by any route.
pub const BODY_LIMIT: usize = 1 << 20;

/// State of the routes.
#[derive(Clone)]
struct AppState {
    shared: Shared,
    /// Required as a bearer token by state-changing routes.
    api_token: Option<Secret>,
    /// Recent series for the dashboard.
    history: History,
}

/// The API's routes; `history` feeds the dashboard (see [`spawn_history`]).
pub fn router(shared: Shared, api_token: Option<Secret>, history: History) -> Router {
    let max_upload_bytes = shared.baselines.max_upload_bytes();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/models", get(models))
        .route("/api/v1/models/{model}", get(model))
        .merge(dashboard::routes())
        .merge(baselines::routes(max_upload_bytes))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(AppState {
            shared,
            api_token,
            history,
        })
}

/// An error response: status plus `{"error": message}`.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> Response {
    let readiness = &state.shared.readiness;
    if readiness.is_ready() {
        Json(json!({ "ready": true })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "ready": false, "reasons": readiness.reasons() })),
        )
            .into_response()
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    refresh_gauges(&state.shared);
    let mut text = state.shared.metrics.render();
    text.push_str(&delivery_text(&state.shared));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Gauges derived from the monitor at scrape time rather than per event.
fn refresh_gauges(shared: &Shared) {
    let statuses = shared
        .monitor
        .lock()
        .map(|m| m.status())
        .unwrap_or_default();
    for status in statuses {
        let drifted = status.checks.iter().filter(|c| c.drifted).count();
        shared
            .metrics
            .set(names::DRIFTED_FEATURES, &[&status.model], drifted as f64);
        shared
            .metrics
            .set(names::ALERTS_FIRING, &[&status.model], status.firing as f64);
    }
}

fn delivery_text(shared: &Shared) -> String {
    let mut out = String::new();
    let families = [
        (
            names::DELIVERIES,
            "counter",
            "Notifications by final delivery outcome.",
        ),
        (
            names::DELIVERY_ATTEMPTS,
            "counter",
            "Delivery attempts, retries included.",
        ),
        (
            names::DELIVERY_QUEUE,
            "gauge",
            "Notifications waiting in a channel's queue.",
        ),
    ];
    let stats = shared.dispatcher.stats().snapshot();
    for (name, kind, help) in families {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for c in &stats {
            let series: Vec<(&str, u64)> = match name {
                names::DELIVERIES => vec![
                    ("delivered", c.delivered),
                    ("failed", c.failed),
                    ("dropped_queue_full", c.dropped_queue_full),
                    ("dropped_closed", c.dropped_closed),
                    ("abandoned", c.abandoned),
                ],
                names::DELIVERY_ATTEMPTS => vec![("", c.attempts)],
                _ => vec![("", c.queued)],
            };
            for (outcome, value) in series {
                let outcome = if outcome.is_empty() {
                    String::new()
                } else {
                    format!(",outcome=\"{outcome}\"")
                };
                out.push_str(&format!(
                    "{name}{{channel=\"{}\"{outcome}}} {value}\n",
                    c.channel
                ));
            }
        }
    }
    out
}

async fn models(State(state): State<AppState>) -> Response {
    let statuses = state
        .shared
        .monitor
        .lock()
        .map(|m| m.status())
        .unwrap_or_default();
    Json(json!({ "models": statuses })).into_response()
}

async fn model(State(state): State<AppState>, Path(model): Path<String>) -> Response {
    let status = state
        .shared
        .monitor
        .lock()
        .ok()
        .and_then(|m| m.model_status(&model));
    match status {
        Some(status) => Json(status).into_response(),
        None => ApiError(
            StatusCode::NOT_FOUND,
            format!("no model {model:?} is monitored"),
        )
        .into_response(),
    }
}

async fn not_found() -> Response {
    ApiError(StatusCode::NOT_FOUND, "no such route".into()).into_response()
}
