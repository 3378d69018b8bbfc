//! What the mock answers: scripted replies, injected faults, and the deterministic default.
//!
//! A test pushes [`Reply`] values onto the server's FIFO; each model request pops one. When the
//! queue is empty the reply is chosen from the request alone, so configs and benchmarks can use
//! the mock without any script:
//!
//! - a model named `fault-<name>` answers with that [`Fault`] (see [`Fault::from_model_name`]);
//! - the model `mock-tool` calls the first offered tool (arguments built from its JSON schema)
//!   until the conversation holds a tool result, then answers `Tool result: <content>`;
//! - any other model answers `Mock reply to: <last user message text>`.
//!
//! Everything here is wire-format neutral; `openai` and `anthropic` render it.

use serde_json::{Map, Value};

use crate::conversation::{Conversation, OfferedTool};

/// One scripted answer to one model request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// An assistant turn with this text (finish reason `stop` / `end_turn`, or `length` /
    /// `max_tokens` when the request's output-token limit cuts it).
    Text(String),
    /// An assistant turn made of these tool calls (finish reason `tool_calls` / `tool_use`).
    ToolCalls(Vec<ScriptedToolCall>),
    /// A failure, shaped as the provider would send it.
    Fault(Fault),
}

/// A tool call the mock makes; `id` is sent as is in both wire formats.
#[derive(Debug, Clone)]
pub struct ScriptedToolCall {
    pub id: String,
    pub name: String,
    /// The call's arguments: OpenAI receives them serialized as a JSON string, Anthropic as the
    /// `input` object.
    pub arguments: serde_json::Value,
}

/// A failure the mock injects instead of an answer.
#[derive(Debug, Clone)]
pub enum Fault {
    /// 429 with a `Retry-After` header and a provider-shaped error body.
    RateLimited { retry_after_secs: u64 },
    /// 500 with a provider-shaped error body.
    ServerError,
    /// 503 with a provider-shaped error body (Anthropic type `overloaded_error`).
    Unavailable,
    /// 401 (OpenAI `invalid_api_key`, Anthropic `authentication_error`).
    Unauthorized,
    /// 400 with a provider-shaped `invalid_request_error` body.
    BadRequest,
    /// The request is read and never answered, until the client gives up or the mock stops.
    Hang,
    /// The request is read, then the TCP connection is reset with no response at all.
    Reset,
    /// 200 with `content-type: application/json` and a truncated, invalid JSON body.
    MalformedJson,
    /// 200 event stream whose data line is not valid JSON.
    MalformedSse,
    /// 200 event stream: a couple of valid text deltas, then the connection is cut (no
    /// `[DONE]` / `message_stop`, no final chunk of the chunked body).
    CutStream,
}

impl Fault {
    /// Every model name that selects a fault, for documentation and error messages.
    pub const MODEL_NAMES: [&'static str; 10] = [
        "fault-429",
        "fault-500",
        "fault-503",
        "fault-401",
        "fault-400",
        "fault-hang",
        "fault-reset",
        "fault-malformed-json",
        "fault-malformed-sse",
        "fault-cut-stream",
    ];

    /// The fault a `fault-...` model name selects when nothing is scripted; `fault-429`
    /// answers with `Retry-After: 1`.
    pub fn from_model_name(model: &str) -> Option<Fault> {
        let fault = match model {
            "fault-429" => Fault::RateLimited { retry_after_secs: 1 },
            "fault-500" => Fault::ServerError,
            "fault-503" => Fault::Unavailable,
            "fault-401" => Fault::Unauthorized,
            "fault-400" => Fault::BadRequest,
            "fault-hang" => Fault::Hang,
            "fault-reset" => Fault::Reset,
            "fault-malformed-json" => Fault::MalformedJson,
            "fault-malformed-sse" => Fault::MalformedSse,
            "fault-cut-stream" => Fault::CutStream,
            _ => return None,
        };
        Some(fault)
    }
}

/// The model name that makes the default reply call the first offered tool.
pub(crate) const TOOL_MODEL: &str = "mock-tool";

/// The reply for a request that found the script empty. `Err` carries the message of a 400
/// for a `fault-` model name that names no fault.
pub(crate) fn default_reply(
    conversation: &Conversation,
    tool_call_id: impl FnOnce() -> String,
) -> Result<Reply, String> {
    let model = conversation.model.as_str();
    if model.starts_with("fault-") {
        return Fault::from_model_name(model)
            .map(Reply::Fault)
            .ok_or_else(|| format!("unknown mock fault model `{model}`; known: {}", Fault::MODEL_NAMES.join(", ")));
    }
    if model == TOOL_MODEL {
        if let Some(tool_result) = &conversation.last_tool_result {
            return Ok(Reply::Text(format!("Tool result: {tool_result}")));
        }
        if let Some(tool) = &conversation.first_tool {
            return Ok(Reply::ToolCalls(vec![ScriptedToolCall {
                id: tool_call_id(),
                name: tool.name.clone(),
                arguments: arguments_for(tool),
            }]));
        }
    }
    Ok(Reply::Text(format!("Mock reply to: {}", conversation.last_user_text)))
}

/// Arguments that satisfy the simple schemas tests use: every required property gets the
/// first value of its `enum`, else a placeholder of its type (`"test"` for strings); optional
/// properties are left out.
fn arguments_for(tool: &OfferedTool) -> Value {
    let properties = tool.parameters.get("properties");
    let mut arguments = Map::new();
    let required = tool.parameters.get("required").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    for name in required.iter().filter_map(Value::as_str) {
        let schema = properties.and_then(|properties| properties.get(name));
        arguments.insert(name.to_owned(), placeholder_for(schema));
    }
    Value::Object(arguments)
}

fn placeholder_for(schema: Option<&Value>) -> Value {
    let Some(schema) = schema else {
        return Value::String("test".to_owned());
    };
    if let Some(first) = schema.get("enum").and_then(Value::as_array).and_then(|values| values.first()) {
        return first.clone();
    }
    let type_name = match schema.get("type") {
        Some(Value::String(type_name)) => type_name.as_str(),
        Some(Value::Array(type_names)) => type_names.first().and_then(Value::as_str).unwrap_or(""),
        _ => "",
    };
    match type_name {
        "integer" | "number" => Value::from(0),
        "boolean" => Value::Bool(false),
        "array" => Value::Array(Vec::new()),
        "object" => Value::Object(Map::new()),
        "null" => Value::Null,
        _ => Value::String("test".to_owned()),
    }
}
