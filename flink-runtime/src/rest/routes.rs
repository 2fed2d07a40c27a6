//! The REST API's routes and handlers. Every failure is an [`ApiError`] (a status and
//! a JSON body); nothing a client sends can panic the server.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use flink_core::checkpoint::StopMode;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use serde_json::{Value, json};

use super::api_error::ApiError;
use super::auth::authorize;
use super::job_view::JobView;
use super::{checkpoints_json, json_views, pipeline_json, prometheus, web_ui};

/// The largest request body accepted (the only bodies are small JSON objects).
pub(crate) const MAX_BODY_BYTES: usize = 4 * 1024;

#[derive(Clone)]
struct AppState {
    view: Arc<JobView>,
    token: Option<Arc<str>>,
    registry: Arc<Registry>,
}

/// Every route of the server.
pub(crate) fn router(view: Arc<JobView>, token: Option<String>) -> Router {
    let state = AppState {
        registry: Arc::new(prometheus::registry(view.clone())),
        view,
        token: token.map(Arc::from),
    };
    Router::new()
        .route("/overview", get(overview))
        .route("/jobs", get(jobs))
        .route("/jobs/overview", get(jobs_overview))
        .route("/jobs/{jid}", get(job).patch(cancel))
        .route("/jobs/{jid}/stop", post(stop))
        .route("/jobs/{jid}/plan", get(plan))
        .route("/jobs/{jid}/exceptions", get(exceptions))
        .route("/jobs/{jid}/checkpoints", get(checkpoints))
        .route("/jobs/{jid}/savepoints", post(trigger_savepoint))
        .route("/jobs/{jid}/savepoints/{rid}", get(savepoint_status))
        .route("/jobs/{jid}/bottleneck", get(bottleneck))
        .route("/jobs/{jid}/pipelines", get(pipelines))
        .route("/jobs/{jid}/vertices/{vid}", get(vertex))
        .route("/jobs/{jid}/vertices/{vid}/backpressure", get(backpressure))
        .route("/metrics", get(metrics))
        .merge(web_ui::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

type ApiResult<T = Json<Value>> = Result<T, ApiError>;

async fn overview(State(s): State<AppState>) -> Json<Value> {
    Json(json_views::overview(&s.view))
}

async fn jobs(State(s): State<AppState>) -> Json<Value> {
    Json(json_views::jobs(&s.view))
}

async fn jobs_overview(State(s): State<AppState>) -> Json<Value> {
    let (reading, _) = s.view.read();
    Json(json_views::jobs_overview(&s.view, &reading))
}

async fn job(State(s): State<AppState>, path: Result<Path<String>, PathRejection>) -> ApiResult {
    the_job(&s, path)?;
    let (reading, rates) = s.view.read();
    Ok(Json(json_views::job(&s.view, &reading, &rates)))
}

async fn plan(State(s): State<AppState>, path: Result<Path<String>, PathRejection>) -> ApiResult {
    the_job(&s, path)?;
    Ok(Json(json_views::plan(&s.view)))
}

async fn exceptions(
    State(s): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    the_job(&s, path)?;
    Ok(Json(json_views::exceptions(&s.view)))
}

async fn checkpoints(
    State(s): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    the_job(&s, path)?;
    checkpoints_json::checkpoints(&s.view)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound("the job takes no checkpoints".into()))
}

async fn bottleneck(
    State(s): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    the_job(&s, path)?;
    Ok(Json(json_views::bottleneck(&s.view)))
}

async fn pipelines(
    State(s): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    the_job(&s, path)?;
    Ok(Json(pipeline_json::pipelines(&s.view)))
}

async fn vertex(
    State(s): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult {
    let v = the_vertex(&s, path)?;
    let (reading, rates) = s.view.read();
    Ok(Json(json_views::vertex(&s.view, v, &reading, &rates)))
}

async fn backpressure(
    State(s): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult {
    let v = the_vertex(&s, path)?;
    let (_, rates) = s.view.read();
    Ok(Json(json_views::backpressure(&s.view, v, &rates)))
}

/// `PATCH /jobs/{id}?mode=cancel`, Flink's cancel (the default mode); `mode=stop`
/// stops with a drain, as `POST /jobs/{id}/stop`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelQuery {
    mode: Option<String>,
}

async fn cancel(
    State(s): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<CancelQuery>, QueryRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    authorize(s.token.as_deref(), &headers)?;
    the_job(&s, path)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let still_running = |verb: &str| -> Result<(), ApiError> {
        let state = s.view.state();
        if state.is_terminal() {
            return Err(ApiError::Conflict(format!(
                "cannot {verb} the job: it is already {}",
                state.as_str()
            )));
        }
        Ok(())
    };
    match query.mode.as_deref() {
        None | Some("cancel") => {
            still_running("cancel")?;
            tracing::info!(job = %s.view.id, "cancel requested through the REST API");
            s.view.control.cancel();
        }
        Some("stop") => {
            still_running("stop")?;
            tracing::info!(job = %s.view.id, "stop requested through the REST API");
            s.view.control.stop();
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown mode '{other}': use 'cancel' (or 'stop' to drain)"
            )));
        }
    }
    Ok((StatusCode::ACCEPTED, Json(json!({}))))
}

/// `POST /jobs/{id}/stop`: the body, optional, is `{"drain": true}` (a stop with a
/// drain, the default here), `{"drain": false, "targetDirectory": "..."}` (a stop
/// with a savepoint, without drain, as Flink's `flink stop`; answered with a
/// `request-id`) or `{"drain": true, "targetDirectory": "..."}` (a stop with a
/// savepoint and a drain, as `flink stop --drain`; answered with a `request-id`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StopRequest {
    #[serde(default = "yes")]
    drain: bool,
    #[serde(rename = "targetDirectory")]
    target_directory: Option<String>,
}

fn yes() -> bool {
    true
}

async fn stop(
    State(s): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    authorize(s.token.as_deref(), &headers)?;
    the_job(&s, path)?;
    let body = body.map_err(|e| ApiError::Client(e.status(), e.body_text()))?;
    let request: StopRequest = if body.iter().all(u8::is_ascii_whitespace) {
        StopRequest {
            drain: true,
            target_directory: None,
        }
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("malformed stop request: {e}")))?
    };
    match (request.drain, request.target_directory) {
        (true, None) => {}
        (drain, Some(directory)) => {
            running(&s, "stop")?;
            let mode = if drain {
                StopMode::Drain
            } else {
                StopMode::NoDrain
            };
            tracing::info!(job = %s.view.id, %directory, ?mode, "stop with a savepoint requested through the REST API");
            return start_savepoint(&s, directory, Some(mode));
        }
        (false, None) => {
            return Err(ApiError::bad_request(
                "a stop without drain takes a savepoint: give its targetDirectory, or use {\"drain\": true}",
            ));
        }
    }
    let state = s.view.state();
    if state.is_terminal() {
        return Err(ApiError::Conflict(format!(
            "cannot stop the job: it is already {}",
            state.as_str()
        )));
    }
    tracing::info!(job = %s.view.id, "stop (drain) requested through the REST API");
    s.view.control.stop();
    Ok((StatusCode::ACCEPTED, Json(json!({ "drain": true }))))
}

/// `POST /jobs/{id}/savepoints`: `{"target-directory": "...", "cancel-job": false}`
/// as Flink's; `cancel-job: true` stops the job with the savepoint.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SavepointRequest {
    #[serde(rename = "target-directory")]
    target_directory: String,
    #[serde(rename = "cancel-job", default)]
    cancel_job: bool,
}

async fn trigger_savepoint(
    State(s): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    authorize(s.token.as_deref(), &headers)?;
    the_job(&s, path)?;
    let body = body.map_err(|e| ApiError::Client(e.status(), e.body_text()))?;
    let request: SavepointRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("malformed savepoint request: {e}")))?;
    running(&s, "take a savepoint of")?;
    tracing::info!(job = %s.view.id, directory = %request.target_directory, "savepoint requested through the REST API");
    // Flink's `cancel-job` ends the job right after the savepoint: no drain.
    let stop = request.cancel_job.then_some(StopMode::NoDrain);
    start_savepoint(&s, request.target_directory, stop)
}

async fn savepoint_status(
    State(s): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult {
    let Path((jid, rid)) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    known_job(&s, &jid)?;
    s.view
        .savepoints
        .status(&rid)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no savepoint request {rid}")))
}

/// A `409` unless the job still runs.
fn running(s: &AppState, verb: &str) -> Result<(), ApiError> {
    let state = s.view.state();
    if state.is_terminal() {
        return Err(ApiError::Conflict(format!(
            "cannot {verb} the job: it is already {}",
            state.as_str()
        )));
    }
    Ok(())
}

fn start_savepoint(
    s: &AppState,
    directory: String,
    stop: Option<StopMode>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if directory.trim().is_empty() {
        return Err(ApiError::bad_request("the target directory is empty"));
    }
    let id = s
        .view
        .savepoints
        .trigger(&s.view.control, directory.into(), stop)
        .map_err(|e| {
            ApiError::Client(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot start the savepoint: {e}"),
            )
        })?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "request-id": id }))))
}

async fn metrics(State(s): State<AppState>) -> Response {
    match prometheus::encode(&s.registry) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(prometheus::CONTENT_TYPE),
            )],
            text,
        )
            .into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "errors": ["the metrics could not be encoded"] })),
        )
            .into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint; see docs/rest-api.md".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::Client(
        StatusCode::METHOD_NOT_ALLOWED,
        "this endpoint does not take that method".into(),
    )
}

/// Checks that the path names this server's job.
fn the_job(s: &AppState, path: Result<Path<String>, PathRejection>) -> Result<(), ApiError> {
    let Path(jid) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    known_job(s, &jid)
}

fn known_job(s: &AppState, jid: &str) -> Result<(), ApiError> {
    if jid == s.view.id {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!("job {jid} not found")))
    }
}

/// The vertex index the path names, in this server's job.
fn the_vertex(
    s: &AppState,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<usize, ApiError> {
    let Path((jid, vid)) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    known_job(s, &jid)?;
    s.view
        .vertex(&vid)
        .ok_or_else(|| ApiError::NotFound(format!("vertex {vid} not found in job {jid}")))
}
