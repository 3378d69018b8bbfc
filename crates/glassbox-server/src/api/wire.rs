//! JSON request and response bodies of the agent routes, in Mastra's shapes, and their
//! conversion to and from core types. Nothing outside the server sees these.

use std::fmt;

use glassbox_core::{AgentOutput, Message, ToolCall, ToolResult, Tripwire, Usage};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /api/agents/{agentId}/generate` and `/stream`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GenerateBody {
    /// A string (one user message), or an array of strings and `{role, content}` objects.
    #[schema(schema_with = input_messages_schema)]
    pub messages: InputMessages,
    /// Recorded on the trace as `gen_ai.conversation.id`; Glassbox keeps no conversation
    /// memory yet.
    #[serde(default)]
    pub thread_id: Option<String>,
    #[serde(default)]
    pub resource_id: Option<String>,
    #[serde(default)]
    pub max_steps: Option<u32>,
    /// A JSON schema the answer must match.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub output: Option<SchemaObject>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub request_context: Option<Value>,
}

/// The OpenAPI schema of `messages`: exactly what [`InputMessages`] accepts, so generated
/// clients and property-based tests send bodies the server takes.
fn input_messages_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
    let text = || ObjectBuilder::new().schema_type(Type::String);
    let text_part = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("type", ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["text"])))
        .property("text", text())
        .required("type")
        .required("text");
    let content = OneOfBuilder::new().item(text()).item(ArrayBuilder::new().items(text_part));
    let message = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("role", ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["user", "assistant", "system"])))
        .property("content", content)
        .required("role")
        .required("content");
    let item = OneOfBuilder::new().item(text()).item(message);
    OneOfBuilder::new().item(text()).item(ArrayBuilder::new().items(item).min_items(Some(1))).build().into()
}

/// A JSON schema, which must be an object (or the boolean schemas `true`/`false`).
#[derive(Debug)]
pub struct SchemaObject(pub Value);

impl<'de> Deserialize<'de> for SchemaObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        match value {
            Value::Object(_) | Value::Bool(_) => Ok(Self(value)),
            other => Err(de::Error::custom(format_args!("expected a JSON schema object, found {}", kind(&other)))),
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `messages`: a string (one user message), or an array of strings and `{role, content}`.
#[derive(Debug)]
pub struct InputMessages(pub Vec<Message>);

impl<'de> Deserialize<'de> for InputMessages {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MessagesVisitor;
        impl<'de> Visitor<'de> for MessagesVisitor {
            type Value = InputMessages;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of {role, content} messages")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(InputMessages(vec![Message::user(text)]))
            }
            fn visit_string<E: de::Error>(self, text: String) -> Result<Self::Value, E> {
                Ok(InputMessages(vec![Message::User { text }]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut messages = Vec::with_capacity(seq.size_hint().unwrap_or(1));
                while let Some(InputMessage(message)) = seq.next_element()? {
                    messages.push(message);
                }
                if messages.is_empty() {
                    return Err(de::Error::custom("must contain at least one message"));
                }
                Ok(InputMessages(messages))
            }
        }
        deserializer.deserialize_any(MessagesVisitor)
    }
}

struct InputMessage(Message);

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum InputRole {
    User,
    Assistant,
    System,
}

impl<'de> Deserialize<'de> for InputMessage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MessageVisitor;
        impl<'de> Visitor<'de> for MessageVisitor {
            type Value = InputMessage;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a {role, content} object")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(InputMessage(Message::user(text)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut role = None;
                let mut content: Option<Content> = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match key.as_ref() {
                        "role" => role = Some(map.next_value::<InputRole>()?),
                        "content" => content = Some(map.next_value()?),
                        // Clients send ids, timestamps and metadata; they do not change the run.
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                let role = role.ok_or_else(|| de::Error::missing_field("role"))?;
                let Content(text) = content.ok_or_else(|| de::Error::missing_field("content"))?;
                Ok(InputMessage(match role {
                    InputRole::User => Message::User { text },
                    InputRole::Assistant => Message::Assistant { text, tool_calls: Vec::new() },
                    InputRole::System => Message::System { text },
                }))
            }
        }
        deserializer.deserialize_any(MessageVisitor)
    }
}

/// `content`: a string, or an array of parts of which the `text` parts are joined.
struct Content(String);

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ContentVisitor;
        impl<'de> Visitor<'de> for ContentVisitor {
            type Value = Content;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of {type: \"text\", text} parts")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Content(text.to_owned()))
            }
            fn visit_string<E: de::Error>(self, text: String) -> Result<Self::Value, E> {
                Ok(Content(text))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut text = String::new();
                while let Some(part) = seq.next_element::<ContentPart>()? {
                    match part {
                        ContentPart::Text { text: part_text } => text.push_str(&part_text),
                    }
                }
                Ok(Content(text))
            }
        }
        deserializer.deserialize_any(ContentVisitor)
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ContentPart {
    Text { text: String },
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WireUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    pub cached_input_tokens: u64,
    pub reasoning_tokens: u64,
}

impl From<Usage> for WireUsage {
    fn from(usage: Usage) -> Self {
        Self {
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            total_tokens: usage.total_tokens(),
            cached_input_tokens: usage.cached_input_tokens,
            reasoning_tokens: usage.reasoning_tokens,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WireToolCall<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub tool_call_id: &'a str,
    pub tool_name: &'a str,
    #[schema(value_type = Object)]
    pub args: &'a Value,
}

impl<'a> From<&'a ToolCall> for WireToolCall<'a> {
    fn from(call: &'a ToolCall) -> Self {
        Self { kind: "tool-call", tool_call_id: &call.id, tool_name: &call.name, args: &call.arguments }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WireToolResult<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub tool_call_id: &'a str,
    pub tool_name: &'a str,
    #[schema(value_type = Object)]
    pub args: &'a Value,
    #[schema(value_type = serde_json::Value)]
    pub result: &'a Value,
    pub is_error: bool,
}

impl<'a> From<&'a ToolResult> for WireToolResult<'a> {
    fn from(result: &'a ToolResult) -> Self {
        Self {
            kind: "tool-result",
            tool_call_id: &result.call_id,
            tool_name: &result.name,
            args: &result.arguments,
            result: &result.result,
            is_error: result.is_error,
        }
    }
}

/// The answer of `generate`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GenerateResponse<'a> {
    pub text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<serde_json::Value>)]
    pub object: Option<&'a Value>,
    pub tool_calls: Vec<WireToolCall<'a>>,
    pub tool_results: Vec<WireToolResult<'a>>,
    pub usage: WireUsage,
    pub finish_reason: &'a str,
    pub trace_id: &'a str,
    /// Set when a processor, guardrail or budget blocked the request (Mastra's convention).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tripwire: Option<WireTripwire<'a>>,
}

/// `{reason, processorId}`: why a request was blocked.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WireTripwire<'a> {
    pub reason: &'a str,
    pub processor_id: &'a str,
}

impl<'a> From<&'a Tripwire> for WireTripwire<'a> {
    fn from(tripwire: &'a Tripwire) -> Self {
        Self { reason: &tripwire.reason, processor_id: &tripwire.processor_id }
    }
}

impl<'a> GenerateResponse<'a> {
    pub fn new(output: &'a AgentOutput, trace_id: &'a str) -> Self {
        Self {
            text: &output.text,
            object: output.object.as_ref(),
            tool_calls: output.tool_calls.iter().map(WireToolCall::from).collect(),
            tool_results: output.tool_results.iter().map(WireToolResult::from).collect(),
            usage: output.usage.into(),
            finish_reason: output.finish_reason.as_str(),
            trace_id,
            tripwire: output.tripwire.as_ref().map(WireTripwire::from),
        }
    }
}

/// One SSE chunk of `stream`: `{type, runId, from, payload}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamChunk<'a, P: Serialize> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub run_id: &'a str,
    pub from: &'static str,
    pub payload: P,
}
