//! Anthropic's messages API (`POST {base_url}/messages`, `anthropic-version: 2023-06-01`).
//!
//! Wire notes:
//! - System messages are lifted into the top-level `system` string (joined by blank lines).
//! - Assistant tool calls become `tool_use` blocks; tool results become `tool_result` blocks in
//!   a user message, consecutive results merged into one message as the API expects.
//! - `max_tokens` is mandatory here: [`DEFAULT_MAX_TOKENS`] when the request sets none.
//! - Structured output: the messages API has no `response_format`, so the schema is appended
//!   to the system prompt with an instruction to answer with JSON only. That works with every
//!   model and keeps tools usable (forcing a tool call would not). A Markdown code fence around
//!   the answer, which models still add at times, is removed from the assembled response's
//!   text; streamed text deltas are passed on as they came.
//! - Usage: Anthropic's `input_tokens` excludes cache reads and writes; Glassbox's input count
//!   includes both, and `cached_input_tokens` is the cache reads.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::time::Duration;

use async_trait::async_trait;
use eventsource_stream::Event;
use glassbox_core::{
    FinishReason, LanguageModel, Message, ModelEvent, ModelRequest, ModelResponse, ModelStream, OutputSchema,
    ProviderError, ToolCall, Usage,
};
use reqwest::header::{HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http::{self, SseDecoder, Transport, encode_body, malformed, parse_answer, parse_arguments, truncate};
use crate::{BuildError, HttpModelSettings};

const PROVIDER: &str = "anthropic";
const API_VERSION: &str = "2023-06-01";
/// The output cap sent when the request sets none (Anthropic requires one).
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// A model behind Anthropic's messages API.
pub struct AnthropicModel {
    transport: Transport,
    model: String,
}

impl AnthropicModel {
    pub fn new(settings: HttpModelSettings) -> Result<Self, BuildError> {
        let mut headers = HeaderMap::new();
        headers.insert("anthropic-version", HeaderValue::from_static(API_VERSION));
        if let Some(api_key) = settings.api_key.as_deref().filter(|key| !key.is_empty()) {
            let value = http::sensitive_value(api_key)
                .map_err(|source| BuildError::InvalidApiKey { source: Box::new(source) })?;
            headers.insert("x-api-key", value);
        }
        let transport = Transport::new(PROVIDER, &settings, "messages", headers)?;
        Ok(Self { transport, model: settings.model })
    }

    /// Sets the base delay of the exponential retry backoff (200 ms unless changed).
    pub fn with_retry_backoff(mut self, base: Duration) -> Self {
        self.transport.set_retry_base(base);
        self
    }

    fn wire_request<'a>(&'a self, request: &'a ModelRequest, stream: bool) -> MessagesRequest<'a> {
        let mut system_parts: Vec<&str> = Vec::new();
        let mut messages: Vec<WireMessage<'a>> = Vec::with_capacity(request.messages.len());
        // Whether the last wire message holds only tool results, so the next result joins it.
        let mut last_is_tool_results = false;
        for message in &request.messages {
            match message {
                Message::System { text } => system_parts.push(text),
                Message::User { text } => {
                    messages.push(WireMessage { role: "user", content: vec![Block::Text { text }] });
                    last_is_tool_results = false;
                }
                Message::Assistant { text, tool_calls } => {
                    let mut content = Vec::with_capacity(tool_calls.len() + 1);
                    // The API rejects empty text blocks.
                    if !text.is_empty() {
                        content.push(Block::Text { text });
                    }
                    content.extend(tool_calls.iter().map(|call| Block::ToolUse {
                        id: &call.id,
                        name: &call.name,
                        input: &call.arguments,
                    }));
                    if !content.is_empty() {
                        messages.push(WireMessage { role: "assistant", content });
                    }
                    last_is_tool_results = false;
                }
                Message::Tool { call_id, content, is_error, .. } => {
                    let block = Block::ToolResult { tool_use_id: call_id, content, is_error: *is_error };
                    match messages.last_mut() {
                        Some(last) if last_is_tool_results => last.content.push(block),
                        _ => messages.push(WireMessage { role: "user", content: vec![block] }),
                    }
                    last_is_tool_results = true;
                }
            }
        }
        MessagesRequest {
            model: &self.model,
            max_tokens: request.max_output_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            system: system_prompt(&system_parts, request.output_schema.as_ref()),
            messages,
            tools: request
                .tools
                .iter()
                .map(|tool| WireTool {
                    name: &tool.name,
                    description: &tool.description,
                    input_schema: &tool.parameters,
                })
                .collect(),
            temperature: request.temperature,
            stream,
        }
    }
}

/// The system messages, joined, plus the structured-output instruction when there is a schema.
/// Borrows when there is exactly one system message and no schema (the common case).
fn system_prompt<'a>(parts: &[&'a str], output_schema: Option<&OutputSchema>) -> Option<Cow<'a, str>> {
    let Some(schema) = output_schema else {
        return match parts {
            [] => None,
            [only] => Some(Cow::Borrowed(*only)),
            many => Some(Cow::Owned(many.join("\n\n"))),
        };
    };
    let mut prompt = parts.join("\n\n");
    if !prompt.is_empty() {
        prompt.push_str("\n\n");
    }
    prompt.push_str(&format!(
        "Answer with a single JSON value that satisfies the following JSON schema (named `{}`). \
         Output only the JSON: no prose before or after it and no Markdown code fence.\n{}",
        schema.name, schema.schema
    ));
    Some(Cow::Owned(prompt))
}

/// Removes a Markdown code fence (```` ```json ... ``` ````) around a structured answer.
fn strip_code_fence(text: String) -> String {
    let trimmed = text.trim();
    let Some(inner) = trimmed.strip_prefix("```").and_then(|rest| rest.strip_suffix("```")) else {
        return text;
    };
    // Drop the info string (`json`) on the opening line.
    let body = match inner.split_once('\n') {
        Some((_info, body)) => body,
        None => inner,
    };
    body.trim().to_owned()
}

#[async_trait]
impl LanguageModel for AnthropicModel {
    fn provider(&self) -> &str {
        PROVIDER
    }

    fn model_name(&self) -> &str {
        &self.model
    }

    async fn generate(&self, request: &ModelRequest) -> Result<ModelResponse, ProviderError> {
        let body = encode_body(&self.wire_request(request, false))?;
        let bytes = self.transport.post(body).await?;
        let response: MessagesResponse =
            parse_answer(&bytes).map_err(|error| malformed("invalid messages response", error))?;
        assemble_response(response, &self.model, request.output_schema.is_some())
    }

    async fn stream(&self, request: &ModelRequest) -> Result<ModelStream, ProviderError> {
        let body = encode_body(&self.wire_request(request, true))?;
        let structured = request.output_schema.is_some();
        self.transport.stream(body, || StreamDecoder::new(&self.model, structured)).await
    }
}

// ---------------------------------------------------------------------------------------------
// Request wire types.

#[derive(Serialize)]
struct MessagesRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<Cow<'a, str>>,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: Vec<Block<'a>>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Text {
        text: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: &'a Value,
    },
    ToolResult {
        tool_use_id: &'a str,
        content: &'a str,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    },
}

#[derive(Serialize)]
struct WireTool<'a> {
    name: &'a str,
    description: &'a str,
    input_schema: &'a Value,
}

// ---------------------------------------------------------------------------------------------
// Response wire types.

#[derive(Deserialize)]
struct MessagesResponse {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    content: Vec<ResponseBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ResponseBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    /// Thinking, server tool results and whatever comes next: not part of the answer.
    #[serde(other)]
    Other,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
}

impl WireUsage {
    /// Fields present in `newer` replace those here (`message_delta` repeats some counts).
    fn update(&mut self, newer: &WireUsage) {
        self.input_tokens = newer.input_tokens.or(self.input_tokens);
        self.output_tokens = newer.output_tokens.or(self.output_tokens);
        self.cache_read_input_tokens = newer.cache_read_input_tokens.or(self.cache_read_input_tokens);
        self.cache_creation_input_tokens = newer.cache_creation_input_tokens.or(self.cache_creation_input_tokens);
    }

    fn to_usage(self) -> Usage {
        let cache_read = self.cache_read_input_tokens.unwrap_or(0);
        Usage {
            input_tokens: self.input_tokens.unwrap_or(0) + cache_read + self.cache_creation_input_tokens.unwrap_or(0),
            output_tokens: self.output_tokens.unwrap_or(0),
            cached_input_tokens: cache_read,
            reasoning_tokens: 0,
        }
    }
}

fn assemble_response(
    response: MessagesResponse,
    configured_model: &str,
    structured: bool,
) -> Result<ModelResponse, ProviderError> {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in response.content {
        match block {
            ResponseBlock::Text { text: block_text } => text.push_str(&block_text),
            ResponseBlock::ToolUse { id, name, input } => {
                let arguments = match input {
                    Value::Null => Value::Object(serde_json::Map::new()),
                    input => input,
                };
                tool_calls.push(ToolCall { id, name, arguments });
            }
            ResponseBlock::Other => {}
        }
    }
    Ok(ModelResponse {
        model: response.model.unwrap_or_else(|| configured_model.to_owned()),
        text: if structured { strip_code_fence(text) } else { text },
        finish_reason: finish_reason(response.stop_reason.as_deref(), !tool_calls.is_empty()),
        tool_calls,
        usage: response.usage.unwrap_or_default().to_usage(),
    })
}

fn finish_reason(stop_reason: Option<&str>, has_tool_calls: bool) -> FinishReason {
    match stop_reason {
        Some("end_turn" | "stop_sequence") => FinishReason::Stop,
        Some("max_tokens" | "model_context_window_exceeded") => FinishReason::Length,
        Some("tool_use") => FinishReason::ToolCalls,
        Some("refusal") => FinishReason::ContentFilter,
        Some(other) => FinishReason::Other(other.to_owned()),
        None if has_tool_calls => FinishReason::ToolCalls,
        None => FinishReason::Stop,
    }
}

/// Maps the `type` of an `error` stream event to the error its HTTP status would have given.
fn stream_error(kind: &str, message: &str) -> ProviderError {
    let message = truncate(&format!("{kind}: {message}"), 500);
    match kind {
        "authentication_error" => ProviderError::Auth { status: 401, message },
        "permission_error" => ProviderError::Auth { status: 403, message },
        "rate_limit_error" => ProviderError::RateLimited { retry_after: None, message },
        "invalid_request_error" => ProviderError::BadRequest { status: 400, message },
        "not_found_error" => ProviderError::BadRequest { status: 404, message },
        "request_too_large" => ProviderError::BadRequest { status: 413, message },
        "overloaded_error" => ProviderError::Upstream { status: 529, message },
        _ => ProviderError::Upstream { status: 500, message },
    }
}

// ---------------------------------------------------------------------------------------------
// Streaming.

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamEvent {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        index: usize,
        content_block: StartBlock,
    },
    ContentBlockDelta {
        index: usize,
        delta: BlockDelta,
    },
    MessageDelta {
        #[serde(default)]
        delta: Option<MessageDeltaBody>,
        #[serde(default)]
        usage: Option<WireUsage>,
    },
    MessageStop,
    Error {
        error: StreamErrorBody,
    },
    /// `ping`, `content_block_stop` and event types added later.
    #[serde(other)]
    Ignored,
}

#[derive(Deserialize)]
struct StartMessage {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StartBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    /// Thinking and signature deltas.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct MessageDeltaBody {
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct StreamErrorBody {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: String,
}

struct PartialToolUse {
    /// The content block index this call arrives on.
    block_index: usize,
    id: String,
    name: String,
    arguments: String,
}

pub(crate) struct StreamDecoder {
    model: String,
    structured: bool,
    text: String,
    tool_uses: Vec<PartialToolUse>,
    usage: WireUsage,
    stop_reason: Option<String>,
    saw_message_delta: bool,
    saw_stop: bool,
}

impl StreamDecoder {
    pub(crate) fn new(model: &str, structured: bool) -> Self {
        Self {
            model: model.to_owned(),
            structured,
            text: String::new(),
            tool_uses: Vec::new(),
            usage: WireUsage::default(),
            stop_reason: None,
            saw_message_delta: false,
            saw_stop: false,
        }
    }

    fn push_text(&mut self, text: String, out: &mut VecDeque<ModelEvent>) {
        if !text.is_empty() {
            self.text.push_str(&text);
            out.push_back(ModelEvent::TextDelta(text));
        }
    }
}

impl SseDecoder for StreamDecoder {
    fn on_event(&mut self, event: &Event, out: &mut VecDeque<ModelEvent>) -> Result<bool, ProviderError> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(false);
        }
        let parsed: StreamEvent =
            serde_json::from_str(data).map_err(|error| malformed("invalid stream event", error))?;
        match parsed {
            StreamEvent::MessageStart { message } => {
                if let Some(model) = message.model.filter(|model| !model.is_empty()) {
                    self.model = model;
                }
                if let Some(usage) = &message.usage {
                    self.usage.update(usage);
                }
            }
            StreamEvent::ContentBlockStart { index, content_block } => match content_block {
                StartBlock::Text { text } => self.push_text(text, out),
                StartBlock::ToolUse { id, name } => {
                    let call_idx = self.tool_uses.len();
                    self.tool_uses.push(PartialToolUse {
                        block_index: index,
                        id: id.clone(),
                        name: name.clone(),
                        arguments: String::new(),
                    });
                    out.push_back(ModelEvent::ToolCallDelta {
                        index: call_idx,
                        id: Some(id),
                        name: Some(name),
                        arguments_delta: String::new(),
                    });
                }
                StartBlock::Other => {}
            },
            StreamEvent::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::TextDelta { text } => self.push_text(text, out),
                BlockDelta::InputJsonDelta { partial_json } => {
                    let call_idx =
                        self.tool_uses.iter().position(|call| call.block_index == index).ok_or_else(|| {
                            ProviderError::MalformedResponse {
                                message: format!("input_json_delta for content block {index}, which is not a tool_use"),
                                source: None,
                            }
                        })?;
                    if !partial_json.is_empty() {
                        if let Some(call) = self.tool_uses.get_mut(call_idx) {
                            call.arguments.push_str(&partial_json);
                        }
                        out.push_back(ModelEvent::ToolCallDelta {
                            index: call_idx,
                            id: None,
                            name: None,
                            arguments_delta: partial_json,
                        });
                    }
                }
                BlockDelta::Other => {}
            },
            StreamEvent::MessageDelta { delta, usage } => {
                self.saw_message_delta = true;
                if let Some(stop_reason) = delta.and_then(|delta| delta.stop_reason) {
                    self.stop_reason = Some(stop_reason);
                }
                if let Some(usage) = &usage {
                    self.usage.update(usage);
                }
            }
            StreamEvent::MessageStop => {
                self.saw_stop = true;
                return Ok(true);
            }
            StreamEvent::Error { error } => return Err(stream_error(&error.kind, &error.message)),
            StreamEvent::Ignored => {}
        }
        Ok(false)
    }

    /// `message_stop` ends a stream; without it, the `message_delta` with the stop reason and
    /// final usage is enough (only the terminator is missing).
    fn is_complete(&self) -> bool {
        self.saw_stop || (self.saw_message_delta && self.stop_reason.is_some())
    }

    fn finish(self) -> Result<ModelResponse, ProviderError> {
        let tool_calls = self
            .tool_uses
            .into_iter()
            .map(|call| {
                let arguments = parse_arguments(&call.name, &call.arguments)?;
                Ok(ToolCall { id: call.id, name: call.name, arguments })
            })
            .collect::<Result<Vec<_>, ProviderError>>()?;
        Ok(ModelResponse {
            model: self.model,
            text: if self.structured { strip_code_fence(self.text) } else { self.text },
            finish_reason: finish_reason(self.stop_reason.as_deref(), !tool_calls.is_empty()),
            tool_calls,
            usage: self.usage.to_usage(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use glassbox_core::ToolSpec;
    use serde_json::json;

    use super::*;

    #[test]
    fn request_body_lifts_system_and_merges_tool_results() {
        let mut settings = HttpModelSettings::new("claude-test", crate::DEFAULT_ANTHROPIC_BASE_URL);
        settings.api_key = Some("sk-ant".into());
        let model = AnthropicModel::new(settings).unwrap();
        let request = ModelRequest {
            messages: vec![
                Message::system("one"),
                Message::user("hi"),
                Message::system("two"),
                Message::Assistant {
                    text: String::new(),
                    tool_calls: vec![
                        ToolCall { id: "toolu_1".into(), name: "a".into(), arguments: json!({"x": 1}) },
                        ToolCall { id: "toolu_2".into(), name: "b".into(), arguments: json!({}) },
                    ],
                },
                Message::Tool { call_id: "toolu_1".into(), name: "a".into(), content: "1".into(), is_error: false },
                Message::Tool { call_id: "toolu_2".into(), name: "b".into(), content: "boom".into(), is_error: true },
                Message::user("and?"),
            ],
            tools: Arc::from(vec![ToolSpec {
                name: "a".into(),
                description: "d".into(),
                parameters: json!({"type": "object"}),
            }]),
            temperature: None,
            max_output_tokens: None,
            output_schema: None,
        };
        let body = serde_json::to_value(model.wire_request(&request, false)).unwrap();
        assert_eq!(
            body,
            json!({
                "model": "claude-test",
                "max_tokens": 4096,
                "system": "one\n\ntwo",
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                    {"role": "assistant", "content": [
                        {"type": "tool_use", "id": "toolu_1", "name": "a", "input": {"x": 1}},
                        {"type": "tool_use", "id": "toolu_2", "name": "b", "input": {}}
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "1"},
                        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "boom", "is_error": true}
                    ]},
                    {"role": "user", "content": [{"type": "text", "text": "and?"}]}
                ],
                "tools": [{"name": "a", "description": "d", "input_schema": {"type": "object"}}]
            })
        );
    }

    #[test]
    fn structured_output_goes_into_the_system_prompt() {
        let schema = OutputSchema { name: "answer".into(), schema: json!({"type": "object"}) };
        let prompt = system_prompt(&[], Some(&schema)).unwrap();
        assert!(prompt.contains("{\"type\":\"object\"}") && prompt.contains("`answer`"), "{prompt}");
        let prompt = system_prompt(&["be nice"], Some(&schema)).unwrap();
        assert!(prompt.starts_with("be nice\n\nAnswer with a single JSON value"), "{prompt}");
        assert!(matches!(system_prompt(&["only"], None), Some(Cow::Borrowed("only"))));
        assert_eq!(system_prompt(&[], None), None);
    }

    #[test]
    fn code_fences_are_stripped() {
        assert_eq!(strip_code_fence("```json\n{\"a\":1}\n```".into()), "{\"a\":1}");
        assert_eq!(strip_code_fence("  ```\n[1]\n```  ".into()), "[1]");
        assert_eq!(strip_code_fence("{\"a\":1}".into()), "{\"a\":1}");
    }

    #[test]
    fn response_ignores_unknown_blocks_and_counts_cache_as_input() {
        let response: MessagesResponse = serde_json::from_value(json!({
            "model": "claude-x",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "text", "text": "hello"},
                {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"q": "x"}}
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 7}
        }))
        .unwrap();
        let assembled = assemble_response(response, "m", false).unwrap();
        assert_eq!(assembled.text, "hello");
        assert_eq!(assembled.finish_reason, FinishReason::ToolCalls);
        assert_eq!(
            assembled.usage,
            Usage { input_tokens: 117, output_tokens: 5, cached_input_tokens: 100, reasoning_tokens: 0 }
        );
    }

    #[test]
    fn stop_reasons_are_normalized() {
        assert_eq!(finish_reason(Some("end_turn"), false), FinishReason::Stop);
        assert_eq!(finish_reason(Some("stop_sequence"), false), FinishReason::Stop);
        assert_eq!(finish_reason(Some("max_tokens"), false), FinishReason::Length);
        assert_eq!(finish_reason(Some("tool_use"), true), FinishReason::ToolCalls);
        assert_eq!(finish_reason(Some("refusal"), false), FinishReason::ContentFilter);
        assert_eq!(finish_reason(Some("pause_turn"), false), FinishReason::Other("pause_turn".into()));
    }
}
