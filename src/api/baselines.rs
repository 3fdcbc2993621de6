//! Baseline routes: which baselines a model uses, replacing one, and
//! capturing one from live traffic.
//!
//! | route | does |
//! |---|---|
//! | `GET /api/v1/models/{model}/baseline` | active ids, their files, captures |
//! | `PUT /api/v1/models/{model}/baseline[?version=V]` | body: a baseline snapshot; written to its file, then used |
//! | `POST /api/v1/models/{model}/baseline/capture` | body: `{"version": V, "events": N?}` |
//!
//! The two changing routes need `Authorization: Bearer <service.api_token>`.
//! Without a configured token they are refused (403): a monitor whose
//! baseline anyone on the network can replace cannot be trusted.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::baseline::Baseline;
use crate::baseline::store::Slot;
use crate::service::baselines::InstallError;

use super::{ApiError, AppState};

/// The routes; `max_upload_bytes` bounds a PUT body.
pub(super) fn routes(max_upload_bytes: usize) -> axum::Router<AppState> {
    axum::Router::new()
        .route(
            "/api/v1/models/{model}/baseline",
            get(show)
                .put(replace)
                .layer(DefaultBodyLimit::max(max_upload_bytes)),
        )
        .route("/api/v1/models/{model}/baseline/capture", post(capture))
}

/// Refuses a state-changing call without the configured bearer token.
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = &state.api_token else {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "changing state through the API is disabled: set service.api_token".into(),
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    // Comparing digests keeps the time taken independent of how much of
    // the token matched.
    let matches =
        given.is_some_and(|g| Sha256::digest(g.as_bytes()) == Sha256::digest(token.expose()));
    if matches {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer <service.api_token>)".into(),
        ))
    }
}

fn install_error(e: InstallError) -> ApiError {
    let status = match &e {
        InstallError::UnknownModel(_) => StatusCode::NOT_FOUND,
        InstallError::Invalid(_) | InstallError::Monitor(_) => StatusCode::UNPROCESSABLE_ENTITY,
        InstallError::Write(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError(status, e.to_string())
}

fn unknown_model(model: &str) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        format!("no model {model:?} is monitored"),
    )
}

async fn show(State(state): State<AppState>, Path(model): Path<String>) -> Response {
    let files = &state.shared.baselines;
    if !files.knows_model(&model) {
        return unknown_model(&model).into_response();
    }
    let active: Vec<_> = state
        .shared
        .monitor
        .lock()
        .map(|m| {
            m.monitors()
                .filter(|x| x.baseline().model == model)
                .map(|x| json!({ "model_version": x.version(), "baseline_id": x.baseline().id }))
                .collect()
        })
        .unwrap_or_default();
    Json(json!({
        "model": model,
        "active": active,
        "files": files.status(&model),
        "store": files.dir(),
        "captures": files.captures(&model),
    }))
    .into_response()
}

#[derive(Deserialize)]
struct VersionQuery {
    version: Option<String>,
}

async fn replace(
    State(state): State<AppState>,
    Path(model): Path<String>,
    query: Result<Query<VersionQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let Query(query) = query.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let body = body.map_err(|e| ApiError(e.status(), e.body_text()))?;
    let baseline = Baseline::from_slice(&body, std::path::Path::new("<request body>"))
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    let slot = Slot {
        model,
        version: query.version.filter(|v| !v.is_empty()),
    };
    let (files, monitor) = (
        std::sync::Arc::clone(&state.shared.baselines),
        std::sync::Arc::clone(&state.shared.monitor),
    );
    let installed = tokio::task::spawn_blocking(move || files.install(&monitor, &slot, baseline))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(install_error)?;
    tracing::info!(model = %installed.model, version = installed.model_version.as_deref().unwrap_or("default"),
        baseline_id = %installed.baseline_id, "baseline replaced through the API");
    Ok(Json(installed).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaptureRequest {
    /// The model version the captured baseline is for.
    version: String,
    /// Capture the next N events instead of the current windows.
    events: Option<u64>,
}

async fn capture(
    State(state): State<AppState>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Result<Json<CaptureRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let Json(request) = body.map_err(|e| ApiError(e.status(), e.body_text()))?;
    let files = std::sync::Arc::clone(&state.shared.baselines);
    let monitor = std::sync::Arc::clone(&state.shared.monitor);
    match request.events {
        Some(events) => {
            let status = files
                .capture_next(&monitor, &model, &request.version, events)
                .map_err(install_error)?;
            Ok((StatusCode::ACCEPTED, Json(status)).into_response())
        }
        None => {
            let (installed, facts) = tokio::task::spawn_blocking(move || {
                files.capture(&monitor, &model, &request.version, None)
            })
            .await
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
            .map_err(install_error)?;
            Ok((
                StatusCode::CREATED,
                Json(json!({ "installed": installed, "captured": facts })),
            )
                .into_response())
        }
    }
}
