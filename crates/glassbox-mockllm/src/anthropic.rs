//! The Anthropic messages wire format (`POST /v1/messages`).
//!
//! Requests must carry an `anthropic-version` header (400 without it, as the real API does);
//! `x-api-key` is recorded but not checked. A plain answer is one JSON object:
//! ```json
//! {"id":"msg_mock1","type":"message","role":"assistant","model":"m",
//!  "content":[{"type":"text","text":"Hi"}],
//!  "stop_reason":"end_turn","stop_sequence":null,
//!  "usage":{"input_tokens":3,"output_tokens":1,
//!    "cache_creation_input_tokens":0,"cache_read_input_tokens":0}}
//! ```
//! A tool-call answer has one `{"type":"tool_use","id","name","input":{..}}` block per call and
//! `stop_reason:"tool_use"`; a text cut by `max_tokens` ends with `stop_reason:"max_tokens"`.
//!
//! With `"stream": true` the answer is `text/event-stream` of `event: <type>\ndata: <json>\n\n`:
//! `message_start` (the message with empty `content`, `stop_reason:null` and usage with the
//! input tokens and `output_tokens:1`), then per content block `content_block_start` (a `ping`
//! follows the first one), `content_block_delta`s (`text_delta` one word each, or
//! `input_json_delta` with two or more `partial_json` fragments), `content_block_stop`; then
//! `message_delta` (`delta:{stop_reason, stop_sequence:null}`, `usage:{output_tokens}`) and
//! `message_stop`.
//!
//! Errors are `{"type":"error","error":{"type", "message"}}` with the types
//! `invalid_request_error` (400), `authentication_error` (401), `not_found_error` (404),
//! `rate_limit_error` (429), `api_error` (500) and `overloaded_error` (503 here, 529 at Anthropic).

use bytes::Bytes;
use http::HeaderMap;
use serde_json::{Value, json};

use crate::answer::{Answer, AnswerContent, Finish, Usage, argument_fragments, word_pieces};
use crate::conversation::Conversation;
use crate::server::{ErrorKind, ResponseMeta, WireFormat, named_event};

pub(crate) struct Anthropic;

impl WireFormat for Anthropic {
    const REQUEST_ID_HEADER: &'static str = "request-id";

    fn check_headers(headers: &HeaderMap) -> Result<(), String> {
        if headers.contains_key("anthropic-version") {
            Ok(())
        } else {
            Err("anthropic-version: header is required".to_owned())
        }
    }

    fn read_conversation(body: &Value) -> Result<Conversation, String> {
        Conversation::from_anthropic(body)
    }

    fn tool_call_id(seq: u64) -> String {
        format!("toolu_mock{seq}")
    }

    fn error_body(kind: ErrorKind, message: &str) -> Value {
        let error_type = match kind {
            ErrorKind::InvalidRequest => "invalid_request_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::NotFound => "not_found_error",
            ErrorKind::RateLimited => "rate_limit_error",
            ErrorKind::Server => "api_error",
            ErrorKind::Overloaded => "overloaded_error",
        };
        json!({"type": "error", "error": {"type": error_type, "message": message}})
    }

    fn answer_body(answer: &Answer, meta: &ResponseMeta) -> Value {
        let content: Vec<Value> = match &answer.content {
            AnswerContent::Text(text) => vec![json!({"type": "text", "text": text})],
            AnswerContent::ToolCalls(calls) => calls
                .iter()
                .map(|call| {
                    json!({
                        "type": "tool_use",
                        "id": call.id,
                        "name": call.name,
                        "input": call.arguments,
                    })
                })
                .collect(),
        };
        json!({
            "id": message_id(meta),
            "type": "message",
            "role": "assistant",
            "model": meta.model,
            "content": content,
            "stop_reason": stop_reason(answer.finish),
            "stop_sequence": null,
            "usage": usage_json(answer.usage, answer.usage.output_tokens),
        })
    }

    fn answer_events(answer: &Answer, _conversation: &Conversation, meta: &ResponseMeta) -> Vec<Bytes> {
        let mut events = vec![message_start(meta, answer.usage)];
        match &answer.content {
            AnswerContent::Text(text) => {
                events.push(content_block_start(0, json!({"type": "text", "text": ""})));
                events.push(ping());
                for piece in word_pieces(text) {
                    events.push(content_block_delta(0, json!({"type": "text_delta", "text": piece})));
                }
                events.push(content_block_stop(0));
            }
            AnswerContent::ToolCalls(calls) => {
                for (block_idx, call) in calls.iter().enumerate() {
                    let block = json!({
                        "type": "tool_use",
                        "id": call.id,
                        "name": call.name,
                        "input": {},
                    });
                    events.push(content_block_start(block_idx, block));
                    if block_idx == 0 {
                        events.push(ping());
                    }
                    for fragment in argument_fragments(&call.arguments_json) {
                        events.push(content_block_delta(
                            block_idx,
                            json!({"type": "input_json_delta", "partial_json": fragment}),
                        ));
                    }
                    events.push(content_block_stop(block_idx));
                }
            }
        }
        let message_delta = json!({
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason(answer.finish), "stop_sequence": null},
            "usage": {"output_tokens": answer.usage.output_tokens},
        });
        events.push(named_event("message_delta", &message_delta.to_string()));
        events.push(named_event("message_stop", r#"{"type":"message_stop"}"#));
        events
    }

    fn malformed_json(meta: &ResponseMeta) -> String {
        format!(
            r#"{{"id":"{}","type":"message","role":"assistant","content":[{{"type":"text","text":"Trunc"#,
            message_id(meta),
        )
    }

    fn malformed_events(meta: &ResponseMeta) -> Vec<Bytes> {
        let broken = format!(r#"{{"type":"message_start","message":{{"id":"{}","type":"message","#, message_id(meta),);
        vec![named_event("message_start", &broken), named_event("message_stop", r#"{"type":"message_stop"}"#)]
    }

    fn cut_stream_events(meta: &ResponseMeta) -> Vec<Bytes> {
        let usage = Usage { input_tokens: 1, output_tokens: 1, cached_input_tokens: 0 };
        vec![
            message_start(meta, usage),
            content_block_start(0, json!({"type": "text", "text": ""})),
            content_block_delta(0, json!({"type": "text_delta", "text": "Partial"})),
            content_block_delta(0, json!({"type": "text_delta", "text": " answer"})),
        ]
    }
}

fn message_id(meta: &ResponseMeta) -> String {
    format!("msg_mock{}", meta.seq)
}

fn stop_reason(finish: Finish) -> &'static str {
    match finish {
        Finish::Stop => "end_turn",
        Finish::ToolCalls => "tool_use",
        Finish::Length => "max_tokens",
    }
}

/// Anthropic's `input_tokens` excludes the tokens read from the prompt cache, which are
/// reported separately in `cache_read_input_tokens`.
fn usage_json(usage: Usage, output_tokens: u64) -> Value {
    json!({
        "input_tokens": usage.input_tokens - usage.cached_input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage.cached_input_tokens,
    })
}

/// `message_start` reports the input usage and, as Anthropic does, `output_tokens: 1`; the
/// real output count arrives in `message_delta`.
fn message_start(meta: &ResponseMeta, usage: Usage) -> Bytes {
    let message_start = json!({
        "type": "message_start",
        "message": {
            "id": message_id(meta),
            "type": "message",
            "role": "assistant",
            "model": meta.model,
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": usage_json(usage, 1),
        },
    });
    named_event("message_start", &message_start.to_string())
}

fn content_block_start(block_idx: usize, content_block: Value) -> Bytes {
    let event = json!({
        "type": "content_block_start",
        "index": block_idx,
        "content_block": content_block,
    });
    named_event("content_block_start", &event.to_string())
}

fn content_block_delta(block_idx: usize, delta: Value) -> Bytes {
    let event = json!({"type": "content_block_delta", "index": block_idx, "delta": delta});
    named_event("content_block_delta", &event.to_string())
}

fn content_block_stop(block_idx: usize) -> Bytes {
    let event = json!({"type": "content_block_stop", "index": block_idx});
    named_event("content_block_stop", &event.to_string())
}

fn ping() -> Bytes {
    named_event("ping", r#"{"type":"ping"}"#)
}
