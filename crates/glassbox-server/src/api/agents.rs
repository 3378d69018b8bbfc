//! The agent routes of Mastra's server: list, describe, generate and stream.

use std::convert::Infallible;

use axum::extract::{Path, State};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use futures::{Stream, StreamExt};
use glassbox_core::{Agent, AgentChunk, AgentError, GenerateOptions};
use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::{Value, json};

use super::body::JsonBody;
use super::wire::{GenerateBody, GenerateResponse, StreamChunk, WireToolCall, WireToolResult, WireTripwire, WireUsage};
use crate::AppState;
use crate::access::Caller;
use crate::error::ApiError;
use crate::evals::OnlineSample;
use crate::trace_context::TraceContext;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/agents", get(list_agents))
        .route("/api/agents/{agent_id}", get(get_agent))
        .route("/api/agents/{agent_id}/generate", post(generate))
        .route("/api/agents/{agent_id}/stream", post(stream))
}

/// An agent as `GET /api/agents` describes it.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentDescription<'a> {
    id: &'a str,
    name: &'a str,
    description: &'a str,
    instructions: &'a str,
    provider: &'a str,
    model_id: &'a str,
    /// Keyed by tool id: `{id, description, inputSchema}`.
    #[schema(value_type = Object)]
    tools: ToolMap<'a>,
    max_steps: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    output_schema: Option<&'a Value>,
}

impl<'a> AgentDescription<'a> {
    fn new(agent: &'a Agent) -> Self {
        Self {
            id: agent.id(),
            name: agent.name(),
            description: agent.description(),
            instructions: agent.instructions(),
            provider: agent.model().provider(),
            model_id: agent.model().model_name(),
            tools: ToolMap(agent),
            max_steps: agent.max_steps(),
            output_schema: agent.output_schema(),
        }
    }
}

/// Mastra lists tools as an object keyed by tool id.
pub struct ToolMap<'a>(&'a Agent);

impl Serialize for ToolMap<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let tools = self.0.tools();
        let mut map = serializer.serialize_map(Some(tools.len()))?;
        for spec in tools {
            map.serialize_entry(
                &spec.name,
                &json!({ "id": spec.name, "description": spec.description, "inputSchema": spec.parameters }),
            )?;
        }
        map.end()
    }
}

/// Mastra answers an object keyed by agent id; ours keeps the config's order.
struct AgentMap<'a>(&'a [Agent]);

impl Serialize for AgentMap<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for agent in self.0 {
            map.serialize_entry(agent.id(), &AgentDescription::new(agent))?;
        }
        map.end()
    }
}

/// Every agent, as an object keyed by agent id in config order.
#[utoipa::path(
    get,
    path = "/api/agents",
    tag = "agents",
    responses((status = 200, description = "Agents keyed by id", body = std::collections::HashMap<String, AgentDescription>))
)]
pub async fn list_agents(State(state): State<AppState>) -> Response {
    Json(AgentMap(state.agents.all())).into_response()
}

/// One agent.
#[utoipa::path(
    get,
    path = "/api/agents/{agent_id}",
    tag = "agents",
    params(("agent_id" = String, Path, description = "The agent id")),
    responses(
        (status = 200, description = "The agent", body = AgentDescription),
        (status = 404, description = "Unknown agent", body = crate::error::ErrorBody),
    )
)]
pub async fn get_agent(State(state): State<AppState>, Path(agent_id): Path<String>) -> Result<Response, ApiError> {
    let agent = state.agents.get(&agent_id).ok_or(ApiError::AgentNotFound { agent_id })?;
    Ok(Json(AgentDescription::new(agent)).into_response())
}

fn options(body: &mut GenerateBody, caller: &Caller) -> GenerateOptions {
    let mut options = GenerateOptions {
        max_steps: body.max_steps,
        output_schema: body.output.take().map(|schema| schema.0),
        conversation_id: body.thread_id.take(),
        ..GenerateOptions::default()
    };
    caller.label(&mut options);
    options
}

/// Runs the agent to completion and answers its result.
#[utoipa::path(
    post,
    path = "/api/agents/{agent_id}/generate",
    tag = "agents",
    params(("agent_id" = String, Path, description = "The agent id")),
    request_body = GenerateBody,
    responses(
        (status = 200, description = "The run's result", body = GenerateResponse),
        (status = 400, description = "Malformed or invalid body (the field is named)", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown agent", body = crate::error::ErrorBody),
        (status = 413, description = "Body over the limit", body = crate::error::ErrorBody),
        (status = 502, description = "The model provider failed", body = crate::error::ErrorBody),
        (status = 504, description = "The model provider timed out", body = crate::error::ErrorBody),
    )
)]
pub async fn generate(
    State(state): State<AppState>,
    Path(agent_id): Path<String>,
    Extension(trace): Extension<TraceContext>,
    caller: Caller,
    online_evals: Option<Extension<std::sync::Arc<glassbox_evals::online::OnlineEvals>>>,
    JsonBody(mut body): JsonBody<GenerateBody>,
) -> Result<Response, ApiError> {
    let agent = state.agents.get(&agent_id).ok_or(ApiError::AgentNotFound { agent_id })?;
    let options = options(&mut body, &caller);
    // Held until the run ends; actual usage is settled from its usage rows.
    let _reservation = state.access.reserve(&caller, agent, &body.messages.0)?;
    let trace_id = trace.trace_id_hex();
    let online = OnlineSample::take(online_evals.as_ref().map(|Extension(online)| online), agent, &trace, &body.messages.0);
    let output = agent.generate(body.messages.0, options).await?;
    if let Some(online) = online {
        online.score(&output);
    }
    Ok(Json(GenerateResponse::new(&output, &trace_id)).into_response())
}

/// Streams the run as server-sent events. The first chunk is awaited before the response
/// starts, so a run that fails before any output (a provider error, say) still answers with
/// the right status and the JSON error shape; later errors become an `error` chunk.
#[utoipa::path(
    post,
    path = "/api/agents/{agent_id}/stream",
    tag = "agents",
    params(("agent_id" = String, Path, description = "The agent id")),
    request_body = GenerateBody,
    responses(
        (status = 200, description = "Server-sent events: `data: {type, runId, from, payload}` chunks (`text-delta`, \
            `tool-call`, `tool-result`, `step-finish`, `finish`, `error`), then `data: [DONE]`",
            content_type = "text/event-stream", body = crate::api::openapi::ServerSentEvent),
        (status = 400, description = "Malformed or invalid body (the field is named)", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown agent", body = crate::error::ErrorBody),
        (status = 413, description = "Body over the limit", body = crate::error::ErrorBody),
        (status = 502, description = "The model provider failed before any output", body = crate::error::ErrorBody),
        (status = 504, description = "The model provider timed out before any output", body = crate::error::ErrorBody),
    )
)]
pub async fn stream(
    State(state): State<AppState>,
    Path(agent_id): Path<String>,
    Extension(trace): Extension<TraceContext>,
    caller: Caller,
    online_evals: Option<Extension<std::sync::Arc<glassbox_evals::online::OnlineEvals>>>,
    JsonBody(mut body): JsonBody<GenerateBody>,
) -> Result<Response, ApiError> {
    let agent = state.agents.get(&agent_id).ok_or(ApiError::AgentNotFound { agent_id })?;
    let options = options(&mut body, &caller);
    let reservation = state.access.reserve(&caller, agent, &body.messages.0)?;
    let online = OnlineSample::take(online_evals.as_ref().map(|Extension(online)| online), agent, &trace, &body.messages.0);
    let mut chunks = score_on_finish(agent.stream(body.messages.0, options), online);
    let first = match chunks.next().await {
        Some(Ok(chunk)) => chunk,
        Some(Err(error)) => return Err(error.into()),
        None => return Err(ApiError::Agent(AgentError::Provider(glassbox_core::ProviderError::StreamInterrupted { source: None }))),
    };
    let run_id = trace.trace_id_hex();
    // The reservation lives as long as the stream: until the run ends or the client leaves.
    let events = futures::stream::once(async move { Ok(first) }).chain(chunks).map(move |chunk| {
        let _held = &reservation;
        chunk
    });
    Ok(Sse::new(sse_events(events, run_id)).into_response())
}

/// Online evals score a streamed run when its `Finish` chunk passes; the stream's consumer
/// never waits for them.
pub(crate) fn score_on_finish(chunks: glassbox_core::AgentStream, online: Option<OnlineSample>) -> glassbox_core::AgentStream {
    let Some(online) = online else { return chunks };
    let mut online = Some(online);
    Box::pin(chunks.inspect(move |chunk| {
        if let Ok(AgentChunk::Finish(output)) = chunk
            && let Some(online) = online.take()
        {
            online.score(output);
        }
    }))
}

/// Maps each agent chunk to one SSE event; after the run ends (or fails) sends `[DONE]`.
fn sse_events(
    chunks: impl Stream<Item = Result<AgentChunk, AgentError>> + Send + 'static,
    run_id: String,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    let mut failed = false;
    chunks
        .take_while(move |chunk| {
            // Nothing follows an error or a tripwire: the run is over.
            let keep = !failed;
            failed |= matches!(chunk, Err(_) | Ok(AgentChunk::Tripwire(_)));
            futures::future::ready(keep)
        })
        .map(move |chunk| Ok(chunk_event(chunk, &run_id)))
        .chain(futures::stream::once(async { Ok(Event::default().data("[DONE]")) }))
}

fn chunk_event(chunk: Result<AgentChunk, AgentError>, run_id: &str) -> Event {
    let json = match chunk {
        Ok(AgentChunk::TextDelta(text)) => encode("text-delta", run_id, json!({ "text": text })),
        Ok(AgentChunk::ToolCall(call)) => encode("tool-call", run_id, WireToolCall::from(&call)),
        Ok(AgentChunk::ToolResult(result)) => encode("tool-result", run_id, WireToolResult::from(&result)),
        Ok(AgentChunk::StepFinish { step, usage, finish_reason }) => encode(
            "step-finish",
            run_id,
            json!({ "step": step, "stepResult": { "reason": finish_reason.as_str() }, "output": { "usage": WireUsage::from(usage) } }),
        ),
        Ok(AgentChunk::Tripwire(tripwire)) => encode("tripwire", run_id, WireTripwire::from(&tripwire)),
        Ok(AgentChunk::Finish(output)) => encode(
            "finish",
            run_id,
            json!({
                "stepResult": { "reason": output.finish_reason.as_str() },
                "output": { "text": output.text, "object": output.object, "usage": WireUsage::from(output.usage) },
                "metadata": { "traceId": run_id },
            }),
        ),
        Err(error) => {
            tracing::warn!(error = %crate::error::chain(&error), "stream failed after output began");
            encode("error", run_id, ApiError::Agent(error).body())
        }
    };
    Event::default().data(json)
}

fn encode<P: Serialize>(kind: &'static str, run_id: &str, payload: P) -> String {
    serde_json::to_string(&StreamChunk { kind, run_id, from: "AGENT", payload })
        .unwrap_or_else(|_| String::from("{\"type\":\"error\"}"))
}
