//! The HTTP API (axum): health, readiness, Prometheus metrics, latency
//! quantiles (`/api/v1/stats`), drift episode announcements
//! (`POST /api/v1/episodes`), the monitor's status per model, and the
//! dashboard.
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
        .route("/api/v1/stats", get(stats))
        .route("/api/v1/episodes", axum::routing::post(episodes))
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
    // Degradations (a failing checkpoint) do not make the service unready:
    // it still monitors; they are listed for whoever looks.
    let degraded = readiness.degradations();
    if readiness.is_ready() {
        Json(json!({ "ready": true, "degraded": degraded })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "ready": false, "reasons": readiness.reasons(), "degraded": degraded })),
        )
            .into_response()
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let text = state.shared.metrics.render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// p50, p90, p99, p99.9 and max of processing time, event-time lag,
/// detection delay and delivery latency per channel.
async fn stats(State(state): State<AppState>) -> Response {
    Json(state.shared.metrics.latency_stats()).into_response()
}

/// `POST /api/v1/episodes` body: a drift episode whose start is known.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EpisodeStart {
    /// Model that drifts.
    model: String,
    /// Event time of the episode's first event (ms since the epoch).
    start_ms: i64,
}

/// Announces a drift episode, so that the delay until its alert is
/// measured. State-changing: requires `service.api_token` as a bearer
/// token, and is refused when none is configured.
async fn episodes(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(token) = &state.api_token else {
        return ApiError(
            StatusCode::FORBIDDEN,
            "no service.api_token is configured; state-changing calls are refused".into(),
        )
        .into_response();
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !given.is_some_and(|g| same_secret(g, token.expose())) {
        return ApiError(StatusCode::UNAUTHORIZED, "bearer token required".into()).into_response();
    }
    let start: EpisodeStart = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => return ApiError(StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let known = state
        .shared
        .monitor
        .lock()
        .map(|m| m.layout(&start.model, None).is_some())
        .unwrap_or(false);
    if !known {
        return ApiError(
            StatusCode::NOT_FOUND,
            format!("no model {:?} is monitored", start.model),
        )
        .into_response();
    }
    state.shared.episodes.start(&start.model, start.start_ms);
    (StatusCode::ACCEPTED, Json(json!({ "accepted": true }))).into_response()
}

/// Compares without stopping at the first difference, so the time taken
/// does not tell how much of a guessed token was right.
fn same_secret(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
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
