//! The model-provider interface: what the agent loop sends to a language model and what it
//! gets back, independent of any vendor's wire format.
//!
//! Providers (`glassbox-providers`) translate [`ModelRequest`] into OpenAI or Anthropic JSON and
//! translate the answer back. A streamed call yields [`ModelEvent`]s and always ends with one
//! [`ModelEvent::Finish`] that carries the assembled response, so the agent loop never has to
//! re-assemble tool-call argument deltas itself.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::Stream;
use serde_json::Value;

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Instructions. Providers that take the system prompt separately (Anthropic) lift these out.
    System { text: String },
    User { text: String },
    /// A model turn: text, tool calls, or both.
    Assistant { text: String, tool_calls: Vec<ToolCall> },
    /// The result of one tool call, fed back to the model.
    Tool { call_id: String, name: String, content: String, is_error: bool },
}

impl Message {
    pub fn system(text: impl Into<String>) -> Self {
        Self::System { text: text.into() }
    }
    pub fn user(text: impl Into<String>) -> Self {
        Self::User { text: text.into() }
    }
    pub fn assistant(text: impl Into<String>) -> Self {
        Self::Assistant { text: text.into(), tool_calls: Vec::new() }
    }
}

/// A tool call requested by the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The provider's call id (`call_...` for OpenAI, `toolu_...` for Anthropic).
    pub id: String,
    pub name: String,
    /// The parsed JSON arguments. Malformed argument JSON from a provider is a
    /// [`ProviderError::MalformedResponse`].
    pub arguments: Value,
}

/// What the model is told about one tool.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON schema of the arguments object.
    pub parameters: Value,
}

/// A JSON schema the final answer must satisfy (`response_format` for OpenAI).
#[derive(Debug, Clone, PartialEq)]
pub struct OutputSchema {
    /// A name for the schema, as OpenAI's `json_schema.name` requires (`^[a-zA-Z0-9_-]+$`).
    pub name: String,
    pub schema: Value,
}

/// One call to a language model.
#[derive(Debug, Clone, Default)]
pub struct ModelRequest {
    pub messages: Vec<Message>,
    /// Shared between all steps of a run, hence the `Arc`.
    pub tools: Arc<[ToolSpec]>,
    pub temperature: Option<f32>,
    pub max_output_tokens: Option<u32>,
    pub output_schema: Option<OutputSchema>,
}

/// Token usage of one call, or summed over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Input tokens served from the provider's prompt cache (a subset of `input_tokens`).
    pub cached_input_tokens: u64,
    /// Reasoning tokens (a subset of `output_tokens`).
    pub reasoning_tokens: u64,
}

impl Usage {
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, rhs: Self) {
        self.input_tokens += rhs.input_tokens;
        self.output_tokens += rhs.output_tokens;
        self.cached_input_tokens += rhs.cached_input_tokens;
        self.reasoning_tokens += rhs.reasoning_tokens;
    }
}

/// Why the model stopped, normalized across providers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
    /// The agent loop hit its step limit while the model still wanted tools.
    MaxSteps,
    /// A processor or guardrail blocked the run (see the output's tripwire).
    Tripwire,
    /// The run's token or cost budget was spent; the text is what was produced until then.
    BudgetExceeded,
    /// Anything else a provider reports, verbatim.
    Other(String),
}

impl FinishReason {
    /// The wire name, as Mastra and the AI SDK spell it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::ToolCalls => "tool-calls",
            Self::ContentFilter => "content-filter",
            Self::MaxSteps => "max-steps",
            Self::Tripwire => "tripwire",
            Self::BudgetExceeded => "budget_exceeded",
            Self::Other(other) => other,
        }
    }
}

impl fmt::Display for FinishReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The complete answer of one model call.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelResponse {
    /// The model that answered, as the provider reports it.
    pub model: String,
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
    pub usage: Usage,
    pub finish_reason: FinishReason,
}

/// One event of a streamed model call.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelEvent {
    TextDelta(String),
    /// A fragment of a tool call's JSON arguments, as it arrives. `index` orders calls within
    /// the response; `id` and `name` are set on the first fragment of each call.
    ToolCallDelta { index: usize, id: Option<String>, name: Option<String>, arguments_delta: String },
    /// The last event: the assembled response with usage.
    Finish(ModelResponse),
}

pub type ModelStream = Pin<Box<dyn Stream<Item = Result<ModelEvent, ProviderError>> + Send>>;

/// A language model behind some provider: one configured model entry.
///
/// Implementations retry transient failures themselves, but only before any output has been
/// yielded; once a stream has produced an event, an error ends it.
#[async_trait]
pub trait LanguageModel: Send + Sync {
    /// The provider's name as OpenTelemetry spells it (`openai`, `anthropic`, `mock`).
    fn provider(&self) -> &str;
    /// The model name sent to the provider.
    fn model_name(&self) -> &str;
    async fn generate(&self, request: &ModelRequest) -> Result<ModelResponse, ProviderError>;
    /// Starts a streamed call. Errors before the first byte of output (connection refused, a
    /// 4xx/5xx status after retries) are returned here, not inside the stream.
    async fn stream(&self, request: &ModelRequest) -> Result<ModelStream, ProviderError>;
}

/// Which deadline ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutPhase {
    Connect,
    FirstByte,
    Total,
}

impl fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connect => "connect",
            Self::FirstByte => "first byte",
            Self::Total => "total",
        })
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A failed model call, typed so the server can pick the right status (502 or 504).
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("provider rejected the credentials (status {status}): {message}")]
    Auth { status: u16, message: String },
    #[error("provider rate limited the request{}: {message}", fmt_retry_after(*.retry_after))]
    RateLimited { retry_after: Option<Duration>, message: String },
    #[error("provider rejected the request as invalid (status {status}): {message}")]
    BadRequest { status: u16, message: String },
    #[error("provider failed (status {status}): {message}")]
    Upstream { status: u16, message: String },
    #[error("provider call timed out waiting for {phase} after {after:?}")]
    Timeout { phase: TimeoutPhase, after: Duration },
    #[error("could not reach the provider")]
    Connection {
        #[source]
        source: BoxError,
    },
    #[error("provider sent a malformed response: {message}")]
    MalformedResponse {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    #[error("provider stream ended before the response was complete")]
    StreamInterrupted {
        #[source]
        source: Option<BoxError>,
    },
}

fn fmt_retry_after(retry_after: Option<Duration>) -> String {
    retry_after.map(|after| format!(" (retry after {after:?})")).unwrap_or_default()
}

impl ProviderError {
    /// A stable machine-readable name, used as `error.type` and the API's `code`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Auth { .. } => "provider_auth",
            Self::RateLimited { .. } => "provider_rate_limited",
            Self::BadRequest { .. } => "provider_bad_request",
            Self::Upstream { .. } => "provider_error",
            Self::Timeout { .. } => "provider_timeout",
            Self::Connection { .. } => "provider_unreachable",
            Self::MalformedResponse { .. } => "provider_malformed_response",
            Self::StreamInterrupted { .. } => "provider_stream_interrupted",
        }
    }

    /// Whether a retry (before any output reached the client) may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::RateLimited { .. } | Self::Connection { .. } => true,
            Self::Upstream { status, .. } => *status >= 500,
            Self::Timeout { phase, .. } => *phase == TimeoutPhase::Connect,
            _ => false,
        }
    }
}
