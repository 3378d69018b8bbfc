//! OpenAI-compatible chat completions (`POST {base_url}/chat/completions`): OpenAI itself and
//! the servers that copy its API (Ollama, vLLM, llama.cpp, gateways).
//!
//! Wire notes:
//! - Assistant turns carry `tool_calls` with `arguments` as a JSON *string*; `content` is null
//!   when the turn has no text. Tool results are `tool` messages with `tool_call_id`.
//! - The output cap is sent as `max_completion_tokens` to `api.openai.com` (its reasoning models
//!   reject `max_tokens`) and as `max_tokens` to every other host, because Ollama, vLLM and
//!   llama.cpp only know `max_tokens`.
//! - An output schema becomes `response_format: {type: "json_schema", json_schema: {name,
//!   schema, strict: false}}`; `strict: false` because strict mode rejects most hand-written
//!   schemas (it needs `additionalProperties: false` and every property required).
//! - Streams ask for `stream_options.include_usage`, so the last chunk before `[DONE]` carries
//!   usage; tool-call fragments are assembled by their `index`.

use std::collections::VecDeque;
use std::time::Duration;

use async_trait::async_trait;
use eventsource_stream::Event;
use glassbox_core::{
    FinishReason, LanguageModel, Message, ModelEvent, ModelRequest, ModelResponse, ModelStream, ProviderError,
    ToolCall, Usage,
};
use reqwest::header::{AUTHORIZATION, HeaderMap};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::http::{self, SseDecoder, Transport, encode_body, malformed, parse_answer, parse_arguments};
use crate::{BuildError, HttpModelSettings};

const PROVIDER: &str = "openai";

/// A model behind an OpenAI-compatible chat completions endpoint.
pub struct OpenAiModel {
    transport: Transport,
    model: String,
    /// Whether the output cap goes out as `max_completion_tokens` (OpenAI's own API) rather
    /// than `max_tokens` (every compatible server).
    use_max_completion_tokens: bool,
}

impl OpenAiModel {
    pub fn new(settings: HttpModelSettings) -> Result<Self, BuildError> {
        let mut headers = HeaderMap::new();
        if let Some(api_key) = settings.api_key.as_deref().filter(|key| !key.is_empty()) {
            let value = http::sensitive_value(&format!("Bearer {api_key}"))
                .map_err(|source| BuildError::InvalidApiKey { source: Box::new(source) })?;
            headers.insert(AUTHORIZATION, value);
        }
        let transport = Transport::new(PROVIDER, &settings, "chat/completions", headers)?;
        let use_max_completion_tokens = transport.url().host_str() == Some("api.openai.com");
        Ok(Self { transport, model: settings.model, use_max_completion_tokens })
    }

    /// Sets the base delay of the exponential retry backoff (200 ms unless changed).
    pub fn with_retry_backoff(mut self, base: Duration) -> Self {
        self.transport.set_retry_base(base);
        self
    }

    fn wire_request<'a>(&'a self, request: &'a ModelRequest, stream: bool) -> ChatRequest<'a> {
        let (max_tokens, max_completion_tokens) = match self.use_max_completion_tokens {
            true => (None, request.max_output_tokens),
            false => (request.max_output_tokens, None),
        };
        ChatRequest {
            model: &self.model,
            messages: request.messages.iter().map(WireMessage::from_message).collect(),
            tools: request
                .tools
                .iter()
                .map(|tool| WireTool {
                    kind: "function",
                    function: WireFunction {
                        name: &tool.name,
                        description: &tool.description,
                        parameters: &tool.parameters,
                    },
                })
                .collect(),
            temperature: request.temperature,
            max_tokens,
            max_completion_tokens,
            response_format: request.output_schema.as_ref().map(|schema| ResponseFormat {
                kind: "json_schema",
                json_schema: JsonSchemaFormat { name: &schema.name, schema: &schema.schema, strict: false },
            }),
            stream,
            stream_options: stream.then_some(StreamOptions { include_usage: true }),
        }
    }
}

#[async_trait]
impl LanguageModel for OpenAiModel {
    fn provider(&self) -> &str {
        PROVIDER
    }

    fn model_name(&self) -> &str {
        &self.model
    }

    async fn generate(&self, request: &ModelRequest) -> Result<ModelResponse, ProviderError> {
        let body = encode_body(&self.wire_request(request, false))?;
        let bytes = self.transport.post(body).await?;
        let response: ChatResponse =
            parse_answer(&bytes).map_err(|error| malformed("invalid chat completion", error))?;
        assemble_response(response, &self.model)
    }

    async fn stream(&self, request: &ModelRequest) -> Result<ModelStream, ProviderError> {
        let body = encode_body(&self.wire_request(request, true))?;
        self.transport.stream(body, || StreamDecoder::new(&self.model)).await
    }
}

// ---------------------------------------------------------------------------------------------
// Request wire types: borrowed from the ModelRequest, serialized once per call.

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<ResponseFormat<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
enum WireMessage<'a> {
    System {
        content: &'a str,
    },
    User {
        content: &'a str,
    },
    Assistant {
        content: Option<&'a str>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<WireToolCall<'a>>,
    },
    Tool {
        tool_call_id: &'a str,
        content: &'a str,
    },
}

impl<'a> WireMessage<'a> {
    fn from_message(message: &'a Message) -> Self {
        match message {
            Message::System { text } => Self::System { content: text },
            Message::User { text } => Self::User { content: text },
            Message::Assistant { text, tool_calls } => Self::Assistant {
                content: (!text.is_empty()).then_some(text.as_str()),
                tool_calls: tool_calls
                    .iter()
                    .map(|call| WireToolCall {
                        id: &call.id,
                        kind: "function",
                        function: WireFunctionCall { name: &call.name, arguments: &call.arguments },
                    })
                    .collect(),
            },
            Message::Tool { call_id, content, .. } => Self::Tool { tool_call_id: call_id, content },
        }
    }
}

#[derive(Serialize)]
struct WireToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunctionCall<'a>,
}

#[derive(Serialize)]
struct WireFunctionCall<'a> {
    name: &'a str,
    #[serde(serialize_with = "json_as_string")]
    arguments: &'a Value,
}

/// OpenAI wants tool-call arguments as a string holding JSON; this writes the value's compact
/// JSON as that string without an intermediate allocation.
fn json_as_string<S: Serializer>(value: &&Value, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(*value)
}

#[derive(Serialize)]
struct WireTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunction<'a>,
}

#[derive(Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a Value,
}

#[derive(Serialize)]
struct ResponseFormat<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    json_schema: JsonSchemaFormat<'a>,
}

#[derive(Serialize)]
struct JsonSchemaFormat<'a> {
    name: &'a str,
    schema: &'a Value,
    strict: bool,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

// ---------------------------------------------------------------------------------------------
// Response wire types. Lenient where compatible servers differ: most fields may be missing or
// null.

#[derive(Deserialize)]
struct ChatResponse {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Option<Vec<Choice>>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ResponseMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ResponseMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ResponseToolCall>>,
}

#[derive(Deserialize)]
struct ResponseToolCall {
    #[serde(default)]
    id: Option<String>,
    function: ResponseFunction,
}

#[derive(Deserialize)]
struct ResponseFunction {
    name: String,
    /// A JSON string per the spec; some compatible servers send the object itself.
    #[serde(default)]
    arguments: Value,
}

#[derive(Deserialize, Default)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptTokensDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionTokensDetails>,
}

#[derive(Deserialize)]
struct PromptTokensDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct CompletionTokensDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl WireUsage {
    fn to_usage(&self) -> Usage {
        Usage {
            input_tokens: self.prompt_tokens.unwrap_or(0),
            output_tokens: self.completion_tokens.unwrap_or(0),
            cached_input_tokens: self.prompt_tokens_details.as_ref().and_then(|d| d.cached_tokens).unwrap_or(0),
            reasoning_tokens: self.completion_tokens_details.as_ref().and_then(|d| d.reasoning_tokens).unwrap_or(0),
        }
    }
}

fn assemble_response(response: ChatResponse, configured_model: &str) -> Result<ModelResponse, ProviderError> {
    let choice = response.choices.and_then(|choices| choices.into_iter().next()).ok_or_else(|| {
        ProviderError::MalformedResponse { message: "chat completion has no choices".to_owned(), source: None }
    })?;
    let tool_calls = choice
        .message
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(call_idx, call)| {
            let arguments = match call.function.arguments {
                Value::String(arguments) => parse_arguments(&call.function.name, &arguments)?,
                Value::Null => Value::Object(serde_json::Map::new()),
                object @ Value::Object(_) => object,
                other => {
                    return Err(ProviderError::MalformedResponse {
                        message: format!(
                            "arguments of tool call `{}` are not a JSON object: {other}",
                            call.function.name
                        ),
                        source: None,
                    });
                }
            };
            Ok(ToolCall {
                id: call.id.unwrap_or_else(|| synthetic_call_id(call_idx)),
                name: call.function.name,
                arguments,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let text = match choice.message.content {
        Some(content) if !content.is_empty() => content,
        // A structured-output refusal arrives here instead of `content`.
        _ => choice.message.refusal.unwrap_or_default(),
    };
    let finish_reason = finish_reason(choice.finish_reason.as_deref(), !tool_calls.is_empty());
    Ok(ModelResponse {
        model: response.model.unwrap_or_else(|| configured_model.to_owned()),
        text,
        tool_calls,
        usage: response.usage.unwrap_or_default().to_usage(),
        finish_reason,
    })
}

/// Some local servers omit tool-call ids; the agent loop needs one to pair results.
fn synthetic_call_id(call_idx: usize) -> String {
    format!("call_{call_idx}")
}

/// Normalizes OpenAI's finish reason. A response with tool calls is `ToolCalls` even when the
/// server says `stop` (older Ollama versions do), so the agent loop can rely on it.
fn finish_reason(reason: Option<&str>, has_tool_calls: bool) -> FinishReason {
    match reason {
        Some("stop") | None if has_tool_calls => FinishReason::ToolCalls,
        Some("stop") | None => FinishReason::Stop,
        Some("length") => FinishReason::Length,
        Some("tool_calls" | "function_call") => FinishReason::ToolCalls,
        Some("content_filter") => FinishReason::ContentFilter,
        Some(other) => FinishReason::Other(other.to_owned()),
    }
}

// ---------------------------------------------------------------------------------------------
// Streaming.

#[derive(Deserialize)]
struct ChatChunk {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Option<Vec<ChunkChoice>>,
    #[serde(default)]
    usage: Option<WireUsage>,
    /// Some compatible servers (vLLM, gateways) report a failure mid-stream this way.
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    delta: Option<ChunkDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChunkDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ChunkToolCall>>,
}

#[derive(Deserialize)]
struct ChunkToolCall {
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<ChunkFunction>,
}

#[derive(Deserialize)]
struct ChunkFunction {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<Value>,
}

struct PartialCall {
    /// The `index` the server gave this call.
    wire_index: Option<usize>,
    id: String,
    name: String,
    arguments: String,
}

pub(crate) struct StreamDecoder {
    model: String,
    text: String,
    calls: Vec<PartialCall>,
    usage: Option<Usage>,
    finish_reason: Option<String>,
    saw_done: bool,
}

impl StreamDecoder {
    pub(crate) fn new(model: &str) -> Self {
        Self {
            model: model.to_owned(),
            text: String::new(),
            calls: Vec::new(),
            usage: None,
            finish_reason: None,
            saw_done: false,
        }
    }

    fn on_tool_call_delta(&mut self, delta: ChunkToolCall, out: &mut VecDeque<ModelEvent>) {
        let (name, arguments) = match delta.function {
            Some(function) => (function.name, function.arguments),
            None => (None, None),
        };
        let arguments = match arguments {
            Some(Value::String(fragment)) => fragment,
            Some(Value::Null) | None => String::new(),
            // A server that sends the arguments object whole, not as a string.
            Some(object) => object.to_string(),
        };
        let existing = match delta.index {
            Some(wire_index) => self.calls.iter().position(|call| call.wire_index == Some(wire_index)),
            // Without an index, a fragment with an id starts a new call; others continue the last.
            None if delta.id.is_some() => None,
            None => self.calls.len().checked_sub(1),
        };
        match existing {
            Some(call_idx) => {
                if arguments.is_empty() {
                    return;
                }
                if let Some(call) = self.calls.get_mut(call_idx) {
                    call.arguments.push_str(&arguments);
                }
                out.push_back(ModelEvent::ToolCallDelta {
                    index: call_idx,
                    id: None,
                    name: None,
                    arguments_delta: arguments,
                });
            }
            None => {
                let call_idx = self.calls.len();
                let id = delta.id.unwrap_or_else(|| synthetic_call_id(call_idx));
                let name = name.unwrap_or_default();
                self.calls.push(PartialCall {
                    wire_index: delta.index,
                    id: id.clone(),
                    name: name.clone(),
                    arguments: arguments.clone(),
                });
                out.push_back(ModelEvent::ToolCallDelta {
                    index: call_idx,
                    id: Some(id),
                    name: Some(name),
                    arguments_delta: arguments,
                });
            }
        }
    }
}

impl SseDecoder for StreamDecoder {
    fn on_event(&mut self, event: &Event, out: &mut VecDeque<ModelEvent>) -> Result<bool, ProviderError> {
        let data = event.data.trim();
        if data == "[DONE]" {
            self.saw_done = true;
            return Ok(true);
        }
        if data.is_empty() {
            return Ok(false);
        }
        let chunk: ChatChunk = serde_json::from_str(data).map_err(|error| malformed("invalid stream chunk", error))?;
        if let Some(error) = &chunk.error {
            let status = error
                .get("code")
                .and_then(Value::as_u64)
                .and_then(|code| u16::try_from(code).ok())
                .filter(|code| (400..600).contains(code))
                .unwrap_or(500);
            return Err(http::status_error(status, None, data));
        }
        if let Some(model) = chunk.model.filter(|model| !model.is_empty()) {
            self.model = model;
        }
        if let Some(usage) = &chunk.usage {
            self.usage = Some(usage.to_usage());
        }
        // Glassbox asks for one choice; any other index is ignored.
        let choice = chunk.choices.unwrap_or_default().into_iter().find(|choice| choice.index.unwrap_or(0) == 0);
        if let Some(choice) = choice {
            if let Some(delta) = choice.delta {
                let text = delta.content.filter(|text| !text.is_empty());
                if let Some(text) = text.or(delta.refusal.filter(|text| !text.is_empty())) {
                    self.text.push_str(&text);
                    out.push_back(ModelEvent::TextDelta(text));
                }
                for tool_call in delta.tool_calls.unwrap_or_default() {
                    self.on_tool_call_delta(tool_call, out);
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.finish_reason = Some(reason);
            }
        }
        Ok(false)
    }

    /// `[DONE]` ends a stream; some servers omit it, which is accepted once both the finish
    /// reason and the usage chunk arrived (nothing of the answer can be missing then).
    fn is_complete(&self) -> bool {
        self.saw_done || (self.finish_reason.is_some() && self.usage.is_some())
    }

    fn finish(self) -> Result<ModelResponse, ProviderError> {
        let tool_calls = self
            .calls
            .into_iter()
            .map(|call| {
                let arguments = parse_arguments(&call.name, &call.arguments)?;
                Ok(ToolCall { id: call.id, name: call.name, arguments })
            })
            .collect::<Result<Vec<_>, ProviderError>>()?;
        if self.usage.is_none() {
            tracing::debug!(model = %self.model, "stream ended without a usage chunk; usage reported as zero");
        }
        Ok(ModelResponse {
            finish_reason: finish_reason(self.finish_reason.as_deref(), !tool_calls.is_empty()),
            model: self.model,
            text: self.text,
            tool_calls,
            usage: self.usage.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use glassbox_core::{OutputSchema, ToolSpec};
    use serde_json::json;

    use super::*;

    fn model(base_url: &str) -> OpenAiModel {
        let mut settings = HttpModelSettings::new("gpt-test", base_url);
        settings.api_key = Some("sk-test".to_owned());
        OpenAiModel::new(settings).unwrap()
    }

    #[test]
    fn request_body_has_the_wire_shape() {
        let request = ModelRequest {
            messages: vec![
                Message::system("be brief"),
                Message::user("weather?"),
                Message::Assistant {
                    text: String::new(),
                    tool_calls: vec![ToolCall {
                        id: "call_1".into(),
                        name: "weather".into(),
                        arguments: json!({"city": "Oslo"}),
                    }],
                },
                Message::Tool {
                    call_id: "call_1".into(),
                    name: "weather".into(),
                    content: "{\"c\":3}".into(),
                    is_error: false,
                },
            ],
            tools: Arc::from(vec![ToolSpec {
                name: "weather".into(),
                description: "d".into(),
                parameters: json!({"type": "object"}),
            }]),
            temperature: Some(0.5),
            max_output_tokens: Some(100),
            output_schema: Some(OutputSchema { name: "answer".into(), schema: json!({"type": "object"}) }),
        };
        let local = model("http://localhost:11434/v1");
        let body: Value = serde_json::to_value(local.wire_request(&request, true)).unwrap();
        assert_eq!(
            body,
            json!({
                "model": "gpt-test",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "weather?"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "{\"c\":3}"}
                ],
                "tools": [{"type": "function", "function": {"name": "weather", "description": "d", "parameters": {"type": "object"}}}],
                "temperature": 0.5,
                "max_tokens": 100,
                "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": false}},
                "stream": true,
                "stream_options": {"include_usage": true}
            })
        );
        let official = model(crate::DEFAULT_OPENAI_BASE_URL);
        let body: Value = serde_json::to_value(official.wire_request(&request, false)).unwrap();
        assert_eq!(body["max_completion_tokens"], 100);
        assert!(body.get("max_tokens").is_none());
        assert!(body.get("stream").is_none());
    }

    #[test]
    fn finish_reasons_are_normalized() {
        assert_eq!(finish_reason(Some("stop"), false), FinishReason::Stop);
        assert_eq!(finish_reason(Some("stop"), true), FinishReason::ToolCalls);
        assert_eq!(finish_reason(Some("length"), false), FinishReason::Length);
        assert_eq!(finish_reason(Some("tool_calls"), true), FinishReason::ToolCalls);
        assert_eq!(finish_reason(Some("content_filter"), false), FinishReason::ContentFilter);
        assert_eq!(finish_reason(Some("eos"), false), FinishReason::Other("eos".into()));
    }

    #[test]
    fn object_arguments_from_lenient_servers_are_accepted() {
        let response: ChatResponse = serde_json::from_value(json!({
            "choices": [{"message": {"content": null, "tool_calls": [
                {"function": {"name": "f", "arguments": {"a": 1}}}
            ]}, "finish_reason": "tool_calls"}]
        }))
        .unwrap();
        let assembled = assemble_response(response, "m").unwrap();
        assert_eq!(assembled.model, "m");
        assert_eq!(assembled.tool_calls[0].arguments, json!({"a": 1}));
        assert_eq!(assembled.tool_calls[0].id, "call_0");
    }
}
