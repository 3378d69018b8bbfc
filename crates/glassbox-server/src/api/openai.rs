//! The OpenAI-compatible facade: `POST /v1/chat/completions` and `GET /v1/models`, so any
//! OpenAI SDK can call an agent. `model` names the agent; the run goes through the same core
//! call, tracing and error mapping as `POST /api/agents/{agentId}/generate` and `/stream`.
//!
//! Wire format: OpenAI's chat completion object, and for `stream: true` its
//! `chat.completion.chunk` events (a first chunk with the assistant role, one per text delta,
//! a last one with `finish_reason`, then — with `stream_options.include_usage` — a chunk with
//! empty `choices` and the `usage`, every earlier chunk carrying `usage: null`), ending with
//! `data: [DONE]`. Errors use OpenAI's `{error: {message, type, param, code}}`: every error
//! response under `/v1/` is rewritten into that shape by [`error_shape`], whichever stage
//! produced it (body parsing, the agent, or a layer such as auth or rate limiting).

use std::convert::Infallible;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use futures::{Stream, StreamExt};
use glassbox_core::{AgentChunk, AgentError, FinishReason, GenerateOptions, Message, Usage};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::body::JsonBody;
use crate::AppState;
use crate::access::Caller;
use crate::error::ApiError;
use crate::evals::OnlineSample;
use crate::trace_context::TraceContext;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(list_models))
        .route("/v1/models/{model}", get(get_model))
}

/// `POST /v1/chat/completions`. Fields of OpenAI's request that an agent decides for itself
/// (`tools`, `temperature`, `max_tokens`, ...) are accepted and ignored, as unknown fields are
/// on the native routes.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChatCompletionRequest {
    /// The agent id (see `GET /v1/models`).
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// `{type: "json_schema", json_schema: {name, schema}}` asks for a structured answer, as
    /// `output` does on the native routes; other types are ignored.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub response_format: Option<Value>,
    /// Recorded as `gen_ai.conversation.id`, like `threadId` on the native routes.
    #[serde(default)]
    pub user: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// One message; `content` is a string or an array of `{type: "text", text}` parts.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChatMessage {
    pub role: ChatRole,
    #[serde(default)]
    #[schema(schema_with = chat_content_schema)]
    pub content: Option<ChatContent>,
}

/// The OpenAPI schema of `content`: what [`ChatContent`] accepts (or null).
fn chat_content_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
    let part = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("type", ObjectBuilder::new().schema_type(Type::String))
        .property("text", ObjectBuilder::new().schema_type(Type::String))
        .required("type");
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::String))
        .item(ArrayBuilder::new().items(part))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .build()
        .into()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    System,
    Developer,
    User,
    Assistant,
    /// Tool results of client-side tools have no place in an agent's run: the agent runs its
    /// own tools. They are refused with a 400 naming the message.
    Tool,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ChatContent {
    Text(String),
    Parts(Vec<ChatContentPart>),
}

#[derive(Debug, Deserialize)]
pub struct ChatContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
}

impl ChatContent {
    fn into_text(self, index: usize) -> Result<String, ApiError> {
        match self {
            Self::Text(text) => Ok(text),
            Self::Parts(parts) => {
                let mut text = String::new();
                for (part_index, part) in parts.into_iter().enumerate() {
                    match (part.kind.as_str(), part.text) {
                        ("text", Some(part_text)) => text.push_str(&part_text),
                        (kind, _) => {
                            return Err(ApiError::InvalidBody {
                                message: format!(
                                    "invalid request body: messages[{index}].content[{part_index}]: unsupported content part type \"{kind}\" (only \"text\")"
                                ),
                                field: Some(format!("messages[{index}].content[{part_index}].type")),
                            });
                        }
                    }
                }
                Ok(text)
            }
        }
    }
}

fn core_messages(messages: Vec<ChatMessage>) -> Result<Vec<Message>, ApiError> {
    if messages.is_empty() {
        return Err(ApiError::InvalidBody {
            message: "invalid request body: messages: must contain at least one message".to_owned(),
            field: Some("messages".to_owned()),
        });
    }
    messages
        .into_iter()
        .enumerate()
        .map(|(index, message)| {
            let text = match message.content {
                Some(content) => content.into_text(index)?,
                None => String::new(),
            };
            Ok(match message.role {
                ChatRole::System | ChatRole::Developer => Message::System { text },
                ChatRole::User => Message::User { text },
                ChatRole::Assistant => Message::Assistant { text, tool_calls: Vec::new() },
                ChatRole::Tool => {
                    return Err(ApiError::InvalidBody {
                        message: format!(
                            "invalid request body: messages[{index}].role: \"tool\" messages are not accepted; the agent runs its own tools"
                        ),
                        field: Some(format!("messages[{index}].role")),
                    });
                }
            })
        })
        .collect()
}

fn options(request: &mut ChatCompletionRequest) -> Result<GenerateOptions, ApiError> {
    let output_schema = match request.response_format.take() {
        Some(format) if format.get("type").and_then(Value::as_str) == Some("json_schema") => {
            match format.pointer("/json_schema/schema") {
                Some(schema @ (Value::Object(_) | Value::Bool(_))) => Some(schema.clone()),
                _ => {
                    return Err(ApiError::InvalidBody {
                        message:
                            "invalid request body: response_format.json_schema.schema: expected a JSON schema object"
                                .to_owned(),
                        field: Some("response_format.json_schema.schema".to_owned()),
                    });
                }
            }
        }
        _ => None,
    };
    Ok(GenerateOptions { output_schema, conversation_id: request.user.take(), ..GenerateOptions::default() })
}

/// OpenAI's finish reasons. The agent ran its tools itself, so a run never ends waiting for
/// the caller's tool results: a step limit reached mid-tools reads as `length`.
fn finish_reason(reason: &FinishReason) -> &'static str {
    match reason {
        FinishReason::Length | FinishReason::MaxSteps | FinishReason::BudgetExceeded => "length",
        // A processor or guardrail blocked the request: OpenAI's nearest reason.
        FinishReason::ContentFilter | FinishReason::Tripwire => "content_filter",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::Stop | FinishReason::Other(_) => "stop",
    }
}

/// The server's start, as `created` of the models (agents have no creation time of their own).
fn started_at() -> u64 {
    static STARTED: OnceLock<u64> = OnceLock::new();
    *STARTED.get_or_init(unix_seconds)
}

fn unix_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChatCompletion {
    /// `chatcmpl-` and the request's trace id.
    pub id: String,
    /// Always `chat.completion`.
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChatChoice>,
    pub usage: CompletionUsage,
    #[schema(value_type = Option<String>)]
    pub system_fingerprint: Option<()>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChatChoice {
    pub index: u32,
    pub message: AssistantMessage,
    pub finish_reason: &'static str,
    #[schema(value_type = Option<Object>)]
    pub logprobs: Option<()>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssistantMessage {
    /// Always `assistant`.
    pub role: &'static str,
    pub content: String,
    #[schema(value_type = Option<String>)]
    pub refusal: Option<()>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CompletionUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub prompt_tokens_details: PromptTokensDetails,
    pub completion_tokens_details: CompletionTokensDetails,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PromptTokensDetails {
    pub cached_tokens: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CompletionTokensDetails {
    pub reasoning_tokens: u64,
}

impl From<Usage> for CompletionUsage {
    fn from(usage: Usage) -> Self {
        Self {
            prompt_tokens: usage.input_tokens,
            completion_tokens: usage.output_tokens,
            total_tokens: usage.total_tokens(),
            prompt_tokens_details: PromptTokensDetails { cached_tokens: usage.cached_input_tokens },
            completion_tokens_details: CompletionTokensDetails { reasoning_tokens: usage.reasoning_tokens },
        }
    }
}

/// One `chat.completion.chunk` event.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatCompletionChunk<'a> {
    pub id: &'a str,
    /// Always `chat.completion.chunk`.
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: Vec<ChunkChoice<'a>>,
    #[schema(value_type = Option<String>)]
    pub system_fingerprint: Option<()>,
    /// Present (as `null`, then on the last chunk) only with `stream_options.include_usage`.
    #[serde(skip_serializing_if = "ChunkUsage::is_absent")]
    #[schema(value_type = Option<CompletionUsage>)]
    pub usage: ChunkUsage,
}

#[derive(Debug)]
pub enum ChunkUsage {
    Absent,
    Null,
    Final(CompletionUsage),
}

impl ChunkUsage {
    fn is_absent(&self) -> bool {
        matches!(self, Self::Absent)
    }
}

impl Serialize for ChunkUsage {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Absent | Self::Null => serializer.serialize_none(),
            Self::Final(usage) => usage.serialize(serializer),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChunkChoice<'a> {
    pub index: u32,
    pub delta: ChunkDelta<'a>,
    #[schema(value_type = Option<Object>)]
    pub logprobs: Option<()>,
    pub finish_reason: Option<&'static str>,
}

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct ChunkDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'a str>,
}

/// `GET /v1/models`: the agents, as OpenAI's model list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelList<'a> {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<ModelEntry<'a>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelEntry<'a> {
    /// The agent id, to pass as `model`.
    pub id: &'a str,
    /// Always `model`.
    pub object: &'static str,
    pub created: u64,
    pub owned_by: &'static str,
}

/// OpenAI's error body, which every error under `/v1/` answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpenAiErrorBody {
    pub error: OpenAiError,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OpenAiError {
    pub message: String,
    /// `invalid_request_error`, `authentication_error`, `permission_error`, `not_found_error`,
    /// `rate_limit_error`, `insufficient_quota` or `api_error`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The offending field of the request, when one is to blame.
    pub param: Option<String>,
    /// Glassbox's machine code (`agent_not_found`, `provider_timeout`, ...).
    pub code: Option<String>,
}

/// The list of agents as OpenAI models.
#[utoipa::path(
    get,
    path = "/v1/models",
    tag = "openai",
    responses((status = 200, description = "The agents, as models", body = ModelList))
)]
pub async fn list_models(State(state): State<AppState>, caller: Caller) -> Response {
    let created = started_at();
    let data = state
        .agents
        .all()
        .iter()
        .filter(|agent| caller.ensure_agent(agent.id()).is_ok())
        .map(|agent| ModelEntry { id: agent.id(), object: "model", created, owned_by: "glassbox" })
        .collect();
    Json(ModelList { object: "list", data }).into_response()
}

/// One agent as an OpenAI model.
#[utoipa::path(
    get,
    path = "/v1/models/{model}",
    tag = "openai",
    params(("model" = String, Path, description = "The agent id")),
    responses(
        (status = 200, description = "The agent, as a model", body = ModelEntry),
        (status = 404, description = "Unknown agent", body = OpenAiErrorBody),
    )
)]
pub async fn get_model(
    State(state): State<AppState>,
    caller: Caller,
    axum::extract::Path(model): axum::extract::Path<String>,
) -> Result<Response, ApiError> {
    caller.ensure_agent(&model)?;
    let agent = state.agents.get(&model).ok_or(ApiError::AgentNotFound { agent_id: model })?;
    Ok(Json(ModelEntry { id: agent.id(), object: "model", created: started_at(), owned_by: "glassbox" })
        .into_response())
}

/// Runs an agent, OpenAI style. With `stream: true` the answer is a stream of
/// `chat.completion.chunk` server-sent events ending with `data: [DONE]`.
#[utoipa::path(
    post,
    path = "/v1/chat/completions",
    tag = "openai",
    request_body = ChatCompletionRequest,
    responses(
        (status = 200, description = "The completion; with `stream: true`, `text/event-stream` of `chat.completion.chunk` events, then `data: [DONE]`",
            content((ChatCompletion = "application/json"), (crate::api::openapi::ServerSentEvent = "text/event-stream"))),
        (status = 400, description = "Malformed or invalid body", body = OpenAiErrorBody),
        (status = 404, description = "Unknown agent", body = OpenAiErrorBody),
        (status = 413, description = "Body over the limit", body = OpenAiErrorBody),
        (status = 502, description = "The model provider failed", body = OpenAiErrorBody),
        (status = 504, description = "The model provider timed out", body = OpenAiErrorBody),
    )
)]
pub async fn chat_completions(
    State(state): State<AppState>,
    Extension(trace): Extension<TraceContext>,
    caller: Caller,
    online_evals: Option<Extension<std::sync::Arc<glassbox_evals::online::OnlineEvals>>>,
    JsonBody(mut request): JsonBody<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    let agent_id = std::mem::take(&mut request.model);
    // The agent is named in the body, not the path, so the key's agent list is checked here.
    caller.ensure_agent(&agent_id)?;
    let agent = state.agents.get(&agent_id).ok_or_else(|| ApiError::AgentNotFound { agent_id: agent_id.clone() })?;
    let mut options = options(&mut request)?;
    caller.label(&mut options);
    let messages = core_messages(std::mem::take(&mut request.messages))?;
    // Held until the run ends (for a stream: until it ends or the client leaves).
    let reservation = state.access.reserve(&caller, agent, &messages)?;
    // The run itself is the native routes' call, `agent.generate` / `agent.stream` with the
    // same options; whatever wraps those calls in `agents::generate` and `agents::stream`
    // (the pipeline's stages) wraps these too.
    let id = format!("chatcmpl-{}", trace.trace_id_hex());
    let created = unix_seconds();
    let online = OnlineSample::take(online_evals.as_ref().map(|Extension(online)| online), agent, &trace, &messages);
    if !request.stream {
        let output = agent.generate(messages, options).await?;
        if let Some(online) = online {
            online.score(&output);
        }
        let completion = ChatCompletion {
            id,
            object: "chat.completion",
            created,
            model: agent_id,
            choices: vec![ChatChoice {
                index: 0,
                message: AssistantMessage { role: "assistant", content: output.text, refusal: None },
                finish_reason: finish_reason(&output.finish_reason),
                logprobs: None,
            }],
            usage: output.usage.into(),
            system_fingerprint: None,
        };
        return Ok(Json(completion).into_response());
    }
    // As on the native stream route: the first chunk is awaited before answering, so a run
    // that fails before any output answers with its real status.
    let mut chunks = crate::api::agents::score_on_finish(agent.stream(messages, options), online);
    let first = match chunks.next().await {
        Some(Ok(chunk)) => chunk,
        Some(Err(error)) => return Err(error.into()),
        None => {
            return Err(ApiError::Agent(AgentError::Provider(glassbox_core::ProviderError::StreamInterrupted {
                source: None,
            })));
        }
    };
    let include_usage = request.stream_options.is_some_and(|options| options.include_usage);
    let chunks = futures::stream::once(async move { Ok(first) }).chain(chunks).map(move |chunk| {
        let _held = &reservation;
        chunk
    });
    let encoder = ChunkEncoder { id, created, model: agent_id, include_usage };
    Ok(Sse::new(sse_events(chunks, encoder)).into_response())
}

struct ChunkEncoder {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
}

impl ChunkEncoder {
    fn encode(&self, delta: ChunkDelta<'_>, finish_reason: Option<&'static str>) -> Event {
        let chunk = ChatCompletionChunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: vec![ChunkChoice { index: 0, delta, logprobs: None, finish_reason }],
            system_fingerprint: None,
            usage: if self.include_usage { ChunkUsage::Null } else { ChunkUsage::Absent },
        };
        event(&chunk)
    }

    fn usage(&self, usage: Usage) -> Event {
        let chunk = ChatCompletionChunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: Vec::new(),
            system_fingerprint: None,
            usage: ChunkUsage::Final(usage.into()),
        };
        event(&chunk)
    }
}

fn event<T: Serialize>(value: &T) -> Event {
    Event::default().data(serde_json::to_string(value).unwrap_or_else(|_| String::from("{}")))
}

/// Maps agent chunks to OpenAI chunk events: the role first, text deltas, the finish reason,
/// the usage when asked for, `[DONE]`. Tool calls and results stay inside the agent's run
/// (and its trace); an OpenAI client sees only the assistant's text. An error after output
/// began becomes OpenAI's in-stream `{error}` event.
fn sse_events(
    chunks: impl Stream<Item = Result<AgentChunk, AgentError>> + Send + 'static,
    encoder: ChunkEncoder,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    let role = encoder.encode(ChunkDelta { role: Some("assistant"), content: Some("") }, None);
    let mut failed = false;
    let body = chunks
        .take_while(move |chunk| {
            // Nothing follows an error: the run is over.
            let keep = !failed;
            failed |= chunk.is_err();
            futures::future::ready(keep)
        })
        .filter_map(move |chunk| {
            let events: Option<Vec<Event>> = match chunk {
                Ok(AgentChunk::TextDelta(text)) => {
                    Some(vec![encoder.encode(ChunkDelta { role: None, content: Some(&text) }, None)])
                }
                Ok(AgentChunk::Finish(output)) => {
                    let mut events =
                        vec![encoder.encode(ChunkDelta::default(), Some(finish_reason(&output.finish_reason)))];
                    if encoder.include_usage {
                        events.push(encoder.usage(output.usage));
                    }
                    Some(events)
                }
                // A tripwire ends the run; its finish chunk says `content_filter`.
                Ok(
                    AgentChunk::ToolCall(_)
                    | AgentChunk::ToolResult(_)
                    | AgentChunk::StepFinish { .. }
                    | AgentChunk::Tripwire(_),
                ) => None,
                Err(error) => {
                    tracing::warn!(error = %crate::error::chain(&error), "stream failed after output began");
                    Some(vec![event(&openai_error(&ApiError::Agent(error).body(), StatusCode::BAD_GATEWAY))])
                }
            };
            futures::future::ready(events.map(|events| futures::stream::iter(events.into_iter().map(Ok))))
        })
        .flatten();
    futures::stream::once(async move { Ok(role) })
        .chain(body)
        .chain(futures::stream::once(async { Ok(Event::default().data("[DONE]")) }))
}

/// OpenAI's error `type` for a status.
fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        402 => "insufficient_quota",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// Glassbox's `{error, code, details?}` as OpenAI's `{error: {message, type, param, code}}`.
pub fn openai_error(body: &Value, status: StatusCode) -> OpenAiErrorBody {
    let message = body.get("error").and_then(Value::as_str).unwrap_or("request failed").to_owned();
    let code = body.get("code").and_then(Value::as_str).map(str::to_owned);
    let param = body.pointer("/details/field").and_then(Value::as_str).map(str::to_owned);
    OpenAiErrorBody { error: OpenAiError { message, kind: error_type(status), param, code } }
}

/// The largest error body rewritten; error bodies are a few hundred bytes.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Middleware for everything under `/v1/`: an error response in Glassbox's shape (or axum's
/// own plain-text errors) that `inner` answers is rewritten into OpenAI's, keeping its status
/// and headers (`Retry-After`, `traceparent`, `Allow`). The server runs it outside every other
/// stage (`crate::edge`), so errors of auth, rate limits and budgets are rewritten too.
pub async fn error_shape<F: Future<Output = Response>>(request: Request, inner: impl FnOnce(Request) -> F) -> Response {
    let is_facade = request.uri().path().starts_with("/v1/");
    let response = inner(request).await;
    let status = response.status();
    if !is_facade || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_ERROR_BODY).await {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::warn!(%error, "could not read an error body to rewrite it");
            Bytes::new()
        }
    };
    let original: Value = if is_json {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    } else {
        // A plain-text or empty error of axum itself (405 Method Not Allowed, ...): its text, or
        // the status's reason, becomes the message.
        let text = String::from_utf8_lossy(&bytes);
        let message = match text.trim() {
            "" => status.canonical_reason().unwrap_or("request failed").to_owned(),
            text => text.to_owned(),
        };
        json!({ "error": message })
    };
    // Already OpenAI-shaped (an object under `error`): leave it.
    if original.get("error").is_some_and(Value::is_object) {
        return Response::from_parts(parts, Body::from(bytes));
    }
    let rewritten = serde_json::to_vec(&openai_error(&original, status))
        .unwrap_or_else(|_| json!({"error": {"message": "request failed"}}).to_string().into_bytes());
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, Body::from(rewritten))
}
