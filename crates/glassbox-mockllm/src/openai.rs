//! The OpenAI chat-completions wire format (`POST /v1/chat/completions`).
//!
//! A plain answer is one JSON object:
//! ```json
//! {"id":"chatcmpl-mock1","object":"chat.completion","created":1700000000,"model":"m",
//!  "choices":[{"index":0,"message":{"role":"assistant","content":"Hi","refusal":null,
//!    "annotations":[]},"logprobs":null,"finish_reason":"stop"}],
//!  "usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4,
//!    "prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},
//!    "completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,
//!      "accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},
//!  "service_tier":"default","system_fingerprint":"fp_mock"}
//! ```
//! A tool-call answer has `content: null` and `message.tool_calls:[{id, type:"function",
//! function:{name, arguments:"<JSON string>"}}]` with `finish_reason:"tool_calls"`; a text cut
//! by `max_completion_tokens`/`max_tokens` ends with `finish_reason:"length"`.
//!
//! With `"stream": true` the answer is `text/event-stream` of `data: <chunk>\n\n` lines, each
//! chunk an `object:"chat.completion.chunk"` with one choice carrying a `delta`:
//! 1. `{role:"assistant", content:"", refusal:null}`;
//! 2. the text, one word per delta (`{content:" word"}`), or per tool call a header delta
//!    `{tool_calls:[{index, id, type:"function", function:{name, arguments:""}}]}` followed by
//!    deltas `{tool_calls:[{index, function:{arguments:"<fragment>"}}]}` (two or more);
//! 3. an empty delta with the `finish_reason`;
//! 4. when `stream_options.include_usage` is set, a chunk with `choices:[]` and the `usage`
//!    (and every earlier chunk carries `usage:null`, as OpenAI does);
//! 5. `data: [DONE]`.
//!
//! Errors are `{"error":{"message", "type", "param":null, "code"}}`.

use bytes::Bytes;
use http::HeaderMap;
use serde_json::{Value, json};

use crate::answer::{Answer, AnswerContent, Finish, Usage, argument_fragments, word_pieces};
use crate::conversation::Conversation;
use crate::server::{ErrorKind, ResponseMeta, WireFormat, data_event};

pub(crate) struct OpenAi;

impl WireFormat for OpenAi {
    const REQUEST_ID_HEADER: &'static str = "x-request-id";

    fn check_headers(_headers: &HeaderMap) -> Result<(), String> {
        Ok(())
    }

    fn read_conversation(body: &Value) -> Result<Conversation, String> {
        Conversation::from_openai(body)
    }

    fn tool_call_id(seq: u64) -> String {
        format!("call_mock{seq}")
    }

    fn error_body(kind: ErrorKind, message: &str) -> Value {
        let (error_type, code) = match kind {
            ErrorKind::InvalidRequest => ("invalid_request_error", Value::Null),
            ErrorKind::Authentication => ("invalid_request_error", json!("invalid_api_key")),
            ErrorKind::NotFound => ("invalid_request_error", json!("unknown_url")),
            ErrorKind::RateLimited => ("requests", json!("rate_limit_exceeded")),
            ErrorKind::Server | ErrorKind::Overloaded => ("server_error", Value::Null),
        };
        json!({"error": {"message": message, "type": error_type, "param": null, "code": code}})
    }

    fn answer_body(answer: &Answer, meta: &ResponseMeta) -> Value {
        let message = match &answer.content {
            AnswerContent::Text(text) => json!({
                "role": "assistant",
                "content": text,
                "refusal": null,
                "annotations": [],
            }),
            AnswerContent::ToolCalls(calls) => {
                let tool_calls: Vec<Value> = calls
                    .iter()
                    .map(|call| {
                        json!({
                            "id": call.id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": call.arguments_json},
                        })
                    })
                    .collect();
                json!({
                    "role": "assistant",
                    "content": null,
                    "refusal": null,
                    "annotations": [],
                    "tool_calls": tool_calls,
                })
            }
        };
        json!({
            "id": completion_id(meta),
            "object": "chat.completion",
            "created": meta.created_unix_secs,
            "model": meta.model,
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": null,
                "finish_reason": finish_reason(answer.finish),
            }],
            "usage": usage_json(answer.usage),
            "service_tier": "default",
            "system_fingerprint": "fp_mock",
        })
    }

    fn answer_events(answer: &Answer, conversation: &Conversation, meta: &ResponseMeta) -> Vec<Bytes> {
        let chunks = ChunkWriter { meta, include_usage: conversation.include_usage };
        let mut events = vec![chunks.delta(json!({"role": "assistant", "content": "", "refusal": null}), None)];
        match &answer.content {
            AnswerContent::Text(text) => {
                for piece in word_pieces(text) {
                    events.push(chunks.delta(json!({"content": piece}), None));
                }
            }
            AnswerContent::ToolCalls(calls) => {
                for (call_idx, call) in calls.iter().enumerate() {
                    let header = json!({"tool_calls": [{
                        "index": call_idx,
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": ""},
                    }]});
                    events.push(chunks.delta(header, None));
                    for fragment in argument_fragments(&call.arguments_json) {
                        let arguments = json!({"tool_calls": [{
                            "index": call_idx,
                            "function": {"arguments": fragment},
                        }]});
                        events.push(chunks.delta(arguments, None));
                    }
                }
            }
        }
        events.push(chunks.delta(json!({}), Some(finish_reason(answer.finish))));
        if conversation.include_usage {
            let usage_chunk = json!({
                "id": completion_id(meta),
                "object": "chat.completion.chunk",
                "created": meta.created_unix_secs,
                "model": meta.model,
                "service_tier": "default",
                "system_fingerprint": "fp_mock",
                "choices": [],
                "usage": usage_json(answer.usage),
            });
            events.push(data_event(&usage_chunk.to_string()));
        }
        events.push(data_event("[DONE]"));
        events
    }

    fn malformed_json(meta: &ResponseMeta) -> String {
        format!(
            r#"{{"id":"{}","object":"chat.completion","created":{},"choices":[{{"index":0,"message":{{"role":"assistant","content":"Trunc"#,
            completion_id(meta),
            meta.created_unix_secs,
        )
    }

    fn malformed_events(meta: &ResponseMeta) -> Vec<Bytes> {
        let broken = format!(
            r#"{{"id":"{}","object":"chat.completion.chunk","choices":[{{"index":0,"delta":{{"content":"Hel"#,
            completion_id(meta),
        );
        vec![data_event(&broken), data_event("[DONE]")]
    }

    fn cut_stream_events(meta: &ResponseMeta) -> Vec<Bytes> {
        let chunks = ChunkWriter { meta, include_usage: false };
        vec![
            chunks.delta(json!({"role": "assistant", "content": "", "refusal": null}), None),
            chunks.delta(json!({"content": "Partial"}), None),
            chunks.delta(json!({"content": " answer"}), None),
        ]
    }
}

fn completion_id(meta: &ResponseMeta) -> String {
    format!("chatcmpl-mock{}", meta.seq)
}

fn finish_reason(finish: Finish) -> &'static str {
    match finish {
        Finish::Stop => "stop",
        Finish::ToolCalls => "tool_calls",
        Finish::Length => "length",
    }
}

fn usage_json(usage: Usage) -> Value {
    json!({
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    })
}

/// Writes `chat.completion.chunk` events for one response.
struct ChunkWriter<'a> {
    meta: &'a ResponseMeta,
    include_usage: bool,
}

impl ChunkWriter<'_> {
    fn delta(&self, delta: Value, finish_reason: Option<&str>) -> Bytes {
        let mut chunk = json!({
            "id": completion_id(self.meta),
            "object": "chat.completion.chunk",
            "created": self.meta.created_unix_secs,
            "model": self.meta.model,
            "service_tier": "default",
            "system_fingerprint": "fp_mock",
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
        });
        if self.include_usage
            && let Some(chunk) = chunk.as_object_mut()
        {
            chunk.insert("usage".to_owned(), Value::Null);
        }
        data_event(&chunk.to_string())
    }
}
