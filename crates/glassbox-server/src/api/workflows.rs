//! The workflow routes of Mastra's server: list and describe workflows, create, start (in the
//! background or waiting), stream, resume and cancel runs, list runs and read one.
//!
//! Errors: unknown workflow or run 404; a run in the wrong state 409 with `details.status`;
//! an input or resume body that does not match its schema 400 with `details.field`
//! (`inputData.startDate`); a full run queue 503. The routes carry their own state (the
//! [`WorkflowHost`]), so they merge into the app's router without touching `AppState`.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use futures::{Stream, StreamExt};
use glassbox_core::workflow::{Node, RunSnapshot, StepRecord};
use glassbox_core::{RunStatus, Workflow};
use glassbox_store::query::TimeRange;
use glassbox_store::runs::MAX_RUNS_PAGE;
use glassbox_store::{RunFilter, StoreError};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::body::{BodyLimit, JsonBody};
use crate::error::ApiError;
use crate::workflow_host::{RunError, RunView, Started, StepEvent, WorkflowHost};

/// The workflow routes, with their state applied; merge into any router.
pub fn router<S: Clone + Send + Sync + 'static>(host: WorkflowHost) -> Router<S> {
    Router::new()
        .route("/api/workflows", get(list_workflows))
        .route("/api/workflows/{workflow_id}", get(get_workflow))
        .route("/api/workflows/{workflow_id}/create-run", post(create_run))
        .route("/api/workflows/{workflow_id}/start", post(start))
        .route("/api/workflows/{workflow_id}/start-async", post(start_async))
        .route("/api/workflows/{workflow_id}/stream", post(stream))
        .route("/api/workflows/{workflow_id}/resume", post(resume))
        .route("/api/workflows/{workflow_id}/resume-async", post(resume_async))
        .route("/api/workflows/{workflow_id}/runs", get(list_runs))
        .route("/api/workflows/{workflow_id}/runs/{run_id}", get(get_run))
        .route("/api/workflows/{workflow_id}/runs/{run_id}/cancel", post(cancel))
        .with_state(host)
}

/// A failure of a workflow route: a body problem (the shared [`ApiError`]) or a run problem.
#[derive(Debug)]
pub enum WorkflowApiError {
    Api(ApiError),
    Run(RunError),
    BadQuery { field: String, message: String },
}

impl From<ApiError> for WorkflowApiError {
    fn from(error: ApiError) -> Self {
        Self::Api(error)
    }
}

impl From<RunError> for WorkflowApiError {
    fn from(error: RunError) -> Self {
        Self::Run(error)
    }
}

impl WorkflowApiError {
    fn parts(&self) -> (StatusCode, &'static str, Option<Value>) {
        match self {
            Self::Api(_) => (StatusCode::INTERNAL_SERVER_ERROR, "", None),
            Self::BadQuery { field, .. } => (StatusCode::BAD_REQUEST, "invalid_query", Some(json!({ "field": field }))),
            Self::Run(error) => match error {
                RunError::WorkflowNotFound { .. } => (StatusCode::NOT_FOUND, "workflow_not_found", None),
                RunError::RunNotFound { .. } => (StatusCode::NOT_FOUND, "run_not_found", None),
                RunError::WrongState { status, .. } => {
                    (StatusCode::CONFLICT, "invalid_run_state", Some(json!({ "status": status })))
                }
                RunError::RunExists { .. } => (StatusCode::CONFLICT, "run_exists", None),
                RunError::InvalidInput { field, .. } => {
                    (StatusCode::BAD_REQUEST, "invalid_body", Some(json!({ "field": field })))
                }
                RunError::NotSuspended { suspended, .. } => (
                    StatusCode::BAD_REQUEST,
                    "step_not_suspended",
                    Some(json!({ "field": "step", "suspended": suspended })),
                ),
                RunError::QueueFull { .. } => (StatusCode::SERVICE_UNAVAILABLE, "queue_full", None),
                RunError::Store(StoreError::InvalidQuery { .. }) => (StatusCode::BAD_REQUEST, "invalid_query", None),
                RunError::Store(_) | RunError::Corrupt { .. } => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "internal_error", None)
                }
            },
        }
    }
}

impl IntoResponse for WorkflowApiError {
    fn into_response(self) -> Response {
        let (status, code, details) = self.parts();
        match self {
            Self::Api(error) => error.into_response(),
            Self::BadQuery { message, .. } => error_response(status, code, message, details),
            Self::Run(error) => {
                let message = if status.is_server_error() {
                    tracing::error!(error = %crate::error::chain(&error), "workflow request failed");
                    "internal error".to_owned()
                } else {
                    crate::error::chain(&error)
                };
                error_response(status, code, message, details)
            }
        }
    }
}

fn error_response(status: StatusCode, code: &str, message: String, details: Option<Value>) -> Response {
    let mut body = json!({ "error": message, "code": code });
    if let Some(details) = details {
        body["details"] = details;
    }
    (status, Json(body)).into_response()
}

type Answer = Result<Response, WorkflowApiError>;

// ---------------------------------------------------------------------------------------
// Describing workflows
// ---------------------------------------------------------------------------------------

fn describe(workflow: &Workflow) -> Value {
    let steps: Map<String, Value> = workflow
        .steps()
        .into_iter()
        .map(|step| {
            let schema =
                |schema: Option<&glassbox_core::workflow::Schema>| schema.map(|schema| schema.source().clone());
            (
                step.id().to_owned(),
                json!({
                    "id": step.id(),
                    "description": step.get_description(),
                    "inputSchema": schema(step.get_input_schema()),
                    "outputSchema": schema(step.get_output_schema()),
                    "resumeSchema": schema(step.get_resume_schema()),
                }),
            )
        })
        .collect();
    json!({
        "id": workflow.id(),
        "name": workflow.id(),
        "description": workflow.description(),
        "inputSchema": workflow.input_schema().map(|schema| schema.source().clone()),
        "steps": steps,
        "stepGraph": workflow.nodes().iter().map(graph).collect::<Vec<_>>(),
    })
}

fn graph(node: &Node) -> Value {
    match node {
        Node::Step(step) => json!({ "type": "step", "id": step.id() }),
        Node::Parallel(children) => {
            json!({ "type": "parallel", "steps": children.iter().map(graph).collect::<Vec<_>>() })
        }
        Node::Branch(arms) => {
            json!({ "type": "branch", "steps": arms.iter().map(|(_, child)| graph(child)).collect::<Vec<_>>() })
        }
        Node::Foreach { node: child, concurrency } => {
            json!({ "type": "foreach", "step": graph(child), "concurrency": concurrency })
        }
        Node::Loop { node: child, max_iterations, .. } => {
            json!({ "type": node.kind(), "step": graph(child), "maxIterations": max_iterations })
        }
        Node::Sleep { id, duration } => {
            json!({ "type": "sleep", "id": id, "durationMs": u64::try_from(duration.as_millis()).unwrap_or(u64::MAX) })
        }
        Node::Map { id, .. } => json!({ "type": "map", "id": id }),
    }
}

/// Every workflow, as an object keyed by workflow id.
#[utoipa::path(
    get,
    path = "/api/workflows",
    tag = "workflows",
    responses(
        (status = 200, description = "Workflows keyed by id: `{id, name, description, inputSchema, steps, stepGraph}`", body = Object),
        (status = 401, description = "Missing or wrong API key", body = crate::error::ErrorBody),
    )
)]
pub async fn list_workflows(State(host): State<WorkflowHost>) -> Json<Value> {
    let all: Map<String, Value> =
        host.workflows().iter().map(|workflow| (workflow.id().to_owned(), describe(workflow))).collect();
    Json(Value::Object(all))
}

/// The error answers of starting a run (`start`, `start-async`, `stream`), documented once
/// for the OpenAPI document. Never constructed: handlers answer through [`ApiError`].
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum StartErrors {
    #[response(status = 400, description = "Malformed body, input not matching the input schema, or invalid `runId` (`details.field`)")]
    Invalid(crate::error::ErrorBody<'static>),
    #[response(status = 401, description = "Missing or wrong API key")]
    Unauthorized(crate::error::ErrorBody<'static>),
    #[response(status = 404, description = "Unknown workflow")]
    NotFound(crate::error::ErrorBody<'static>),
    #[response(status = 409, description = "The run exists and is not startable (`details.status`)")]
    Conflict(crate::error::ErrorBody<'static>),
    #[response(status = 413, description = "Body over the limit")]
    TooLarge(crate::error::ErrorBody<'static>),
    #[response(status = 503, description = "The run queue is full")]
    QueueFull(crate::error::ErrorBody<'static>),
}

/// The error answers of resuming a suspended run (`resume`, `resume-async`).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum ResumeErrors {
    #[response(status = 400, description = "Missing `runId`, malformed body, resume data not matching the step's resume schema, or a step that is not suspended (`details.field`)")]
    Invalid(crate::error::ErrorBody<'static>),
    #[response(status = 401, description = "Missing or wrong API key")]
    Unauthorized(crate::error::ErrorBody<'static>),
    #[response(status = 404, description = "Unknown workflow or run")]
    NotFound(crate::error::ErrorBody<'static>),
    #[response(status = 409, description = "The run is not suspended (`details.status`)")]
    Conflict(crate::error::ErrorBody<'static>),
    #[response(status = 413, description = "Body over the limit")]
    TooLarge(crate::error::ErrorBody<'static>),
    #[response(status = 503, description = "The run queue is full")]
    QueueFull(crate::error::ErrorBody<'static>),
}

/// One workflow: its input schema, its steps with their schemas, and its step graph.
#[utoipa::path(
    get,
    path = "/api/workflows/{workflow_id}",
    tag = "workflows",
    params(
        ("workflow_id" = String, Path, description = "The workflow id"),
    ),
    responses(
        (status = 200, description = "The workflow: `{id, name, description, inputSchema, steps, stepGraph}`", body = Object),
        (status = 401, description = "Missing or wrong API key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown workflow", body = crate::error::ErrorBody),
    )
)]
pub async fn get_workflow(State(host): State<WorkflowHost>, Path(workflow_id): Path<String>) -> Answer {
    Ok(Json(describe(host.workflow(&workflow_id)?)).into_response())
}

// ---------------------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------------------

fn millis(ns: i64) -> i64 {
    ns / 1_000_000
}

fn step_json(record: &StepRecord) -> Value {
    let mut object = json!({
        "status": record.status.as_str(),
        "payload": record.input,
        "startedAt": millis(record.started_ns),
        "endedAt": millis(record.ended_ns),
        "attempts": record.attempts,
    });
    let optional = [
        ("output", record.output.clone()),
        ("error", record.error.clone().map(Value::from)),
        ("suspendPayload", record.suspend_payload.clone()),
        ("resumePayload", record.resume_data.clone()),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            object[name] = value;
        }
    }
    object
}

fn steps_json(snapshot: &RunSnapshot) -> Value {
    Value::Object(snapshot.steps.iter().map(|(key, record)| (key.clone(), step_json(record))).collect())
}

fn parse_or_null(text: &str) -> Value {
    if text.is_empty() { Value::Null } else { serde_json::from_str(text).unwrap_or(Value::Null) }
}

fn run_json(view: &RunView) -> Value {
    let record = &view.record;
    let suspended: Vec<Value> = view
        .snapshot
        .suspended()
        .into_iter()
        .map(|(step, payload)| json!({ "step": step, "suspendPayload": payload }))
        .collect();
    let mut body = json!({
        "runId": record.run_id,
        "workflowId": record.workflow_id,
        "status": view.status.as_str(),
        "createdAt": millis(record.created_ns),
        "updatedAt": millis(record.updated_ns),
        "inputData": parse_or_null(&record.input),
        "steps": steps_json(&view.snapshot),
        "suspended": suspended,
    });
    if !record.result.is_empty() {
        body["result"] = parse_or_null(&record.result);
    }
    if !record.error.is_empty() {
        body["error"] = Value::from(record.error.clone());
    }
    body
}

/// `?runId=`: the id of the run to create, start or resume.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunQuery {
    run_id: Option<String>,
}

fn run_query(query: Result<Query<RunQuery>, QueryRejection>) -> Result<Option<String>, WorkflowApiError> {
    let Query(query) = query.map_err(|rejection| WorkflowApiError::BadQuery {
        field: "runId".to_owned(),
        message: format!("invalid query string: {}", rejection.body_text()),
    })?;
    match query.run_id {
        // Characters, not bytes: the spec's `maxLength` counts characters.
        Some(run_id) if run_id.is_empty() || run_id.chars().count() > 128 => Err(WorkflowApiError::BadQuery {
            field: "runId".to_owned(),
            message: "runId must be 1 to 128 characters".to_owned(),
        }),
        other => Ok(other),
    }
}

/// The body of start, start-async and stream.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartBody {
    /// The workflow's input; checked against its input schema.
    #[serde(default)]
    #[schema(value_type = Object)]
    input_data: Value,
}

/// The body of resume and resume-async.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResumeBody {
    /// The suspended step to resume: its id, or the path of ids to a nested step.
    step: Option<StepName>,
    /// The resume data; checked against the step's resume schema.
    #[serde(default)]
    #[schema(value_type = Object)]
    resume_data: Value,
}

/// Mastra's clients send a step id, or the path of ids to a nested step; the last is ours.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum StepName {
    One(String),
    Path(Vec<String>),
}

impl StepName {
    fn into_key(self) -> Option<String> {
        match self {
            Self::One(step) => Some(step),
            Self::Path(mut path) => path.pop(),
        }
    }
}

/// The body of start, start-async and stream: `{inputData}`, or nothing at all (input `null`).
fn start_body(body: Result<Bytes, BytesRejection>, limit: Option<Extension<BodyLimit>>) -> Result<StartBody, ApiError> {
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::BodyTooLarge { limit: limit.map(|Extension(limit)| limit.0).unwrap_or_default() }
        } else {
            ApiError::BodyUnreadable
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(StartBody::default());
    }
    super::body::parse(&bytes)
}

/// Creates a run without starting it.
#[utoipa::path(
    post,
    path = "/api/workflows/{workflow_id}/create-run",
    tag = "workflows",
    params(
        ("workflow_id" = String, Path, description = "The workflow id"),
        ("runId" = Option<String>, Query, description = "The run id to use (1 to 128 characters); a new UUID when absent", min_length = 1, max_length = 128),
    ),
    responses(
        (status = 200, description = "`{runId}`", body = Object),
        (status = 400, description = "Invalid `runId` (`details.field`)", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown workflow", body = crate::error::ErrorBody),
        (status = 409, description = "A run with this id exists", body = crate::error::ErrorBody),
    )
)]
pub async fn create_run(
    State(host): State<WorkflowHost>,
    Path(workflow_id): Path<String>,
    query: Result<Query<RunQuery>, QueryRejection>,
) -> Answer {
    let run_id = run_query(query)?;
    let view = host.create_run(&workflow_id, run_id).await?;
    Ok(Json(json!({ "runId": view.record.run_id })).into_response())
}

/// Starts a run in the background and answers at once.
#[utoipa::path(
    post,
    path = "/api/workflows/{workflow_id}/start",
    tag = "workflows",
    params(
        ("workflow_id" = String, Path, description = "The workflow id"),
        ("runId" = Option<String>, Query, description = "The run id to use (1 to 128 characters); a new UUID when absent", min_length = 1, max_length = 128),
    ),
    request_body(content = StartBody, description = "`{inputData}`, or an empty body (input `null`)", content_type = "application/json"),
    responses(
        (status = 200, description = "`{message, runId}`", body = Object),
        StartErrors,
    )
)]
pub async fn start(
    State(host): State<WorkflowHost>,
    Path(workflow_id): Path<String>,
    query: Result<Query<RunQuery>, QueryRejection>,
    limit: Option<Extension<BodyLimit>>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let run_id = run_query(query)?;
    let body = start_body(body, limit)?;
    let started = host.start(&workflow_id, run_id, body.input_data).await?;
    Ok(Json(json!({ "message": "Workflow run started", "runId": started.run_id })).into_response())
}

/// Waits for the run to finish or suspend, up to the configured timeout; then answers 202
/// with the run id, and the run goes on in the background.
async fn wait(host: &WorkflowHost, started: Started) -> Response {
    let Started { run_id, mut done, .. } = started;
    let limit = host.limits().wait_timeout;
    let finished = tokio::time::timeout(limit, done.wait_for(Option::is_some)).await;
    match finished {
        Ok(Ok(view)) => match view.as_ref() {
            Some(view) => {
                let mut body = run_json(view);
                body["result"] = parse_or_null(&view.record.result);
                Json(body).into_response()
            }
            None => accepted(&run_id, limit),
        },
        _ => accepted(&run_id, limit),
    }
}

fn accepted(run_id: &str, limit: Duration) -> Response {
    let body = json!({
        "runId": run_id,
        "status": RunStatus::Running.as_str(),
        "message": format!("the run did not finish within {} ms; poll GET .../runs/{run_id}", limit.as_millis()),
    });
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

/// Starts a run and waits for it to finish or suspend, up to the wait timeout.
#[utoipa::path(
    post,
    path = "/api/workflows/{workflow_id}/start-async",
    tag = "workflows",
    params(
        ("workflow_id" = String, Path, description = "The workflow id"),
        ("runId" = Option<String>, Query, description = "The run id to use (1 to 128 characters); a new UUID when absent", min_length = 1, max_length = 128),
    ),
    request_body(content = StartBody, description = "`{inputData}`, or an empty body (input `null`)", content_type = "application/json"),
    responses(
        (status = 200, description = "The run: `{runId, workflowId, status, createdAt, updatedAt, inputData, steps, suspended, result?, error?}`", body = Object),
        (status = 202, description = "The run did not finish within the wait timeout and goes on in the background: `{runId, status, message}`", body = Object),
        StartErrors,
    )
)]
pub async fn start_async(
    State(host): State<WorkflowHost>,
    Path(workflow_id): Path<String>,
    query: Result<Query<RunQuery>, QueryRejection>,
    limit: Option<Extension<BodyLimit>>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let run_id = run_query(query)?;
    let body = start_body(body, limit)?;
    let started = host.start(&workflow_id, run_id, body.input_data).await?;
    Ok(wait(&host, started).await)
}

/// Starts a run and streams its events as server-sent events until it finishes or suspends.
#[utoipa::path(
    post,
    path = "/api/workflows/{workflow_id}/stream",
    tag = "workflows",
    operation_id = "stream_workflow",
    params(
        ("workflow_id" = String, Path, description = "The workflow id"),
        ("runId" = Option<String>, Query, description = "The run id to use (1 to 128 characters); a new UUID when absent", min_length = 1, max_length = 128),
    ),
    request_body(content = StartBody, description = "`{inputData}`, or an empty body (input `null`)", content_type = "application/json"),
    responses(
        (status = 200, description = "Server-sent events: `data: {type, runId, from, payload}` (`step-start`, `step-result`, `suspended`, `finish`), then `data: [DONE]`", content_type = "text/event-stream", body = crate::api::openapi::ServerSentEvent),
        StartErrors,
    )
)]
pub async fn stream(
    State(host): State<WorkflowHost>,
    Path(workflow_id): Path<String>,
    query: Result<Query<RunQuery>, QueryRejection>,
    limit: Option<Extension<BodyLimit>>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let run_id = run_query(query)?;
    let body = start_body(body, limit)?;
    let started = host.start(&workflow_id, run_id, body.input_data).await?;
    Ok(Sse::new(sse_events(started)).into_response())
}

/// Every event of the run until it finishes (or suspends), then `[DONE]`.
fn sse_events(started: Started) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    let Started { run_id, events, .. } = started;
    let events = tokio_stream_from(events);
    events
        .scan(false, |finished, event| {
            if *finished {
                return futures::future::ready(None);
            }
            *finished = matches!(event, StepEvent::Finished { .. });
            futures::future::ready(Some(event))
        })
        .map(move |event| Ok(Event::default().data(event_json(&run_id, event).to_string())))
        .chain(futures::stream::once(async { Ok(Event::default().data("[DONE]")) }))
}

/// A broadcast receiver as a stream; a slow reader that lagged skips what it missed.
fn tokio_stream_from(
    receiver: tokio::sync::broadcast::Receiver<StepEvent>,
) -> impl Stream<Item = StepEvent> + Send + 'static {
    futures::stream::unfold(receiver, |mut receiver| async move {
        loop {
            match receiver.recv().await {
                Ok(event) => return Some((event, receiver)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(skipped)) => {
                    tracing::warn!(skipped, "a workflow stream reader fell behind");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}

fn event_json(run_id: &str, event: StepEvent) -> Value {
    let (kind, payload) = match event {
        StepEvent::StepStart { step, attempt } => ("step-start", json!({ "id": step, "attempt": attempt })),
        StepEvent::StepResult { step, status, output, error } => {
            ("step-result", json!({ "id": step, "status": status, "output": output, "error": error }))
        }
        StepEvent::Suspended { steps } => (
            "suspended",
            json!({ "steps": steps.into_iter().map(|(step, payload)| json!({ "id": step, "suspendPayload": payload })).collect::<Vec<_>>() }),
        ),
        StepEvent::Finished { status, result, error } => {
            ("finish", json!({ "status": status.as_str(), "result": result, "error": error }))
        }
    };
    json!({ "type": kind, "runId": run_id, "from": "WORKFLOW", "payload": payload })
}

async fn resume_started(
    host: &WorkflowHost,
    workflow_id: &str,
    query: Result<Query<RunQuery>, QueryRejection>,
    body: JsonBody<ResumeBody>,
) -> Result<Started, WorkflowApiError> {
    let run_id = run_query(query)?.ok_or_else(|| WorkflowApiError::BadQuery {
        field: "runId".to_owned(),
        message: "resume needs the run's id: ?runId=...".to_owned(),
    })?;
    let JsonBody(body) = body;
    let step = body.step.and_then(StepName::into_key);
    Ok(host.resume(workflow_id, &run_id, step, body.resume_data).await?)
}

/// Resumes a suspended run in the background and answers at once.
#[utoipa::path(
    post,
    path = "/api/workflows/{workflow_id}/resume",
    tag = "workflows",
    params(
        ("workflow_id" = String, Path, description = "The workflow id"),
        ("runId" = String, Query, description = "The id of the suspended run to resume", min_length = 1, max_length = 128),
    ),
    request_body(content = ResumeBody, description = "`{step, resumeData}`; `step` may be omitted when one step is suspended", content_type = "application/json"),
    responses(
        (status = 200, description = "`{message, runId}`", body = Object),
        ResumeErrors,
    )
)]
pub async fn resume(
    State(host): State<WorkflowHost>,
    Path(workflow_id): Path<String>,
    query: Result<Query<RunQuery>, QueryRejection>,
    body: JsonBody<ResumeBody>,
) -> Answer {
    let started = resume_started(&host, &workflow_id, query, body).await?;
    Ok(Json(json!({ "message": "Workflow run resumed", "runId": started.run_id })).into_response())
}

/// Resumes a suspended run and waits for it to finish or suspend again, up to the wait timeout.
#[utoipa::path(
    post,
    path = "/api/workflows/{workflow_id}/resume-async",
    tag = "workflows",
    params(
        ("workflow_id" = String, Path, description = "The workflow id"),
        ("runId" = String, Query, description = "The id of the suspended run to resume", min_length = 1, max_length = 128),
    ),
    request_body(content = ResumeBody, description = "`{step, resumeData}`; `step` may be omitted when one step is suspended", content_type = "application/json"),
    responses(
        (status = 200, description = "The run: `{runId, workflowId, status, createdAt, updatedAt, inputData, steps, suspended, result?, error?}`", body = Object),
        (status = 202, description = "The run did not finish within the wait timeout and goes on in the background: `{runId, status, message}`", body = Object),
        ResumeErrors,
    )
)]
pub async fn resume_async(
    State(host): State<WorkflowHost>,
    Path(workflow_id): Path<String>,
    query: Result<Query<RunQuery>, QueryRejection>,
    body: JsonBody<ResumeBody>,
) -> Answer {
    let started = resume_started(&host, &workflow_id, query, body).await?;
    Ok(wait(&host, started).await)
}

/// The filters of the run list.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunsQuery {
    /// One status or several, comma-separated.
    status: Option<String>,
    /// RFC 3339 (`2025-06-01T00:00:00Z`), a date (`2025-06-01`) or Unix milliseconds.
    from_date: Option<String>,
    to_date: Option<String>,
    limit: Option<u32>,
}

/// The workflow's runs, newest first, filtered by status and creation time.
#[utoipa::path(
    get,
    path = "/api/workflows/{workflow_id}/runs",
    tag = "workflows",
    params(
        ("workflow_id" = String, Path, description = "The workflow id"),
        ("status" = Option<String>, Query, description = "One status or several, comma-separated (`running,suspended`)"),
        ("fromDate" = Option<String>, Query, description = "Created at or after: RFC 3339 UTC, `YYYY-MM-DD` or Unix milliseconds"),
        ("toDate" = Option<String>, Query, description = "Created before: RFC 3339 UTC, `YYYY-MM-DD` or Unix milliseconds"),
        ("limit" = Option<u32>, Query, description = "At most this many runs (default 100)", minimum = 1, maximum = 1000),
    ),
    responses(
        (status = 200, description = "`{runs: [run], total}`", body = Object),
        (status = 400, description = "Invalid query (`details.field`)", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown workflow", body = crate::error::ErrorBody),
    )
)]
pub async fn list_runs(
    State(host): State<WorkflowHost>,
    Path(workflow_id): Path<String>,
    query: Result<Query<RunsQuery>, QueryRejection>,
) -> Answer {
    let Query(query) = query.map_err(|rejection| WorkflowApiError::BadQuery {
        field: "query".to_owned(),
        message: format!("invalid query string: {}", rejection.body_text()),
    })?;
    host.workflow(&workflow_id)?;
    let mut statuses = Vec::new();
    for status in query.status.iter().flat_map(|text| text.split(',')).map(str::trim).filter(|s| !s.is_empty()) {
        let known = RunStatus::parse(status).ok_or_else(|| WorkflowApiError::BadQuery {
            field: "status".to_owned(),
            message: format!("unknown status {status:?}; one of {}", RunStatus::ALL.map(RunStatus::as_str).join(", ")),
        })?;
        statuses.push(known.as_str().to_owned());
    }
    let from = query.from_date.as_deref().map(|text| parse_time("fromDate", text)).transpose()?;
    let to = query.to_date.as_deref().map(|text| parse_time("toDate", text)).transpose()?;
    let created = match (from, to) {
        (None, None) => None,
        (from, to) => Some(TimeRange { from_ns: from.unwrap_or(i64::MIN), to_ns: to.unwrap_or(i64::MAX) }),
    };
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_RUNS_PAGE {
        return Err(WorkflowApiError::BadQuery {
            field: "limit".to_owned(),
            message: format!("limit must be 1 to {MAX_RUNS_PAGE}"),
        });
    }
    let filter = RunFilter { workflow_id: Some(workflow_id), statuses, created, limit };
    let runs: Vec<Value> = host.list_runs(filter).await?.iter().map(run_json).collect();
    let total = runs.len();
    Ok(Json(json!({ "runs": runs, "total": total })).into_response())
}

/// One run, with its steps.
#[utoipa::path(
    get,
    path = "/api/workflows/{workflow_id}/runs/{run_id}",
    tag = "workflows",
    params(
        ("workflow_id" = String, Path, description = "The workflow id"),
        ("run_id" = String, Path, description = "The run id"),
    ),
    responses(
        (status = 200, description = "The run: `{runId, workflowId, status, createdAt, updatedAt, inputData, steps, suspended, result?, error?}`", body = Object),
        (status = 401, description = "Missing or wrong API key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown workflow or run", body = crate::error::ErrorBody),
    )
)]
pub async fn get_run(State(host): State<WorkflowHost>, Path((workflow_id, run_id)): Path<(String, String)>) -> Answer {
    Ok(Json(run_json(&host.get_run(&workflow_id, &run_id).await?)).into_response())
}

/// Cancels a run that has not finished.
#[utoipa::path(
    post,
    path = "/api/workflows/{workflow_id}/runs/{run_id}/cancel",
    tag = "workflows",
    params(
        ("workflow_id" = String, Path, description = "The workflow id"),
        ("run_id" = String, Path, description = "The run id"),
    ),
    responses(
        (status = 200, description = "The canceled run, with `message`", body = Object),
        (status = 401, description = "Missing or wrong API key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown workflow or run", body = crate::error::ErrorBody),
        (status = 409, description = "The run has finished (`details.status`)", body = crate::error::ErrorBody),
    )
)]
pub async fn cancel(State(host): State<WorkflowHost>, Path((workflow_id, run_id)): Path<(String, String)>) -> Answer {
    let view = host.cancel(&workflow_id, &run_id).await?;
    let mut body = run_json(&view);
    body["message"] = Value::from("Workflow run canceled");
    Ok(Json(body).into_response())
}

/// Unix nanoseconds from RFC 3339 UTC (`Z` or `+00:00`, optional fraction), a plain date, or
/// Unix milliseconds.
fn parse_time(field: &str, text: &str) -> Result<i64, WorkflowApiError> {
    let bad = || WorkflowApiError::BadQuery {
        field: field.to_owned(),
        message: format!("{field} {text:?} is not an RFC 3339 UTC time, a YYYY-MM-DD date or Unix milliseconds"),
    };
    if let Ok(millis) = text.parse::<i64>() {
        return Ok(millis.saturating_mul(1_000_000));
    }
    let (date, time) = match text.split_once('T') {
        Some((date, time)) => (date, Some(time)),
        None => (text, None),
    };
    let mut parts = date.splitn(3, '-').map(str::parse::<i64>);
    let (Some(Ok(year)), Some(Ok(month)), Some(Ok(day))) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err(bad());
    }
    let mut seconds = days_from_civil(year, month, day) * 86_400;
    let mut nanos = 0i64;
    if let Some(time) = time {
        let time = time.strip_suffix('Z').or_else(|| time.strip_suffix("+00:00")).ok_or_else(bad)?;
        let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
        let mut clock_parts = clock.split(':').map(str::parse::<i64>);
        let (Some(Ok(hour)), Some(Ok(minute)), Some(Ok(second)), None) =
            (clock_parts.next(), clock_parts.next(), clock_parts.next(), clock_parts.next())
        else {
            return Err(bad());
        };
        if hour > 23 || minute > 59 || second > 60 || hour < 0 || minute < 0 || second < 0 {
            return Err(bad());
        }
        seconds += hour * 3600 + minute * 60 + second;
        if !fraction.is_empty() {
            if fraction.len() > 9 || !fraction.chars().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            let padded = format!("{fraction:0<9}");
            nanos = padded.parse().map_err(|_| bad())?;
        }
    }
    // Times past 2262 (the end of i64 nanoseconds) mean "forever".
    Ok(seconds.saturating_mul(1_000_000_000).saturating_add(nanos))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse() {
        assert_eq!(parse_time("f", "1970-01-01").ok(), Some(0));
        assert_eq!(parse_time("f", "2025-06-15T00:00:00Z").ok(), Some(1_749_945_600_000_000_000));
        assert_eq!(parse_time("f", "2025-06-15T00:00:01.5+00:00").ok(), Some(1_749_945_601_500_000_000));
        assert_eq!(parse_time("f", "1749945600000").ok(), Some(1_749_945_600_000_000_000));
        for bad in ["", "2025-13-01", "2025-06-15T00:00:00", "yesterday", "2025-06-15T25:00:00Z"] {
            assert!(parse_time("f", bad).is_err(), "{bad}");
        }
    }
}
