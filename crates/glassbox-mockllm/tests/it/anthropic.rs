//! The Anthropic messages wire format: plain and streamed answers, tool use, usage, required
//! headers and the default replies.

use glassbox_mockllm::{MockLlm, Reply, ScriptedToolCall};
use serde_json::{Value, json};

use crate::helpers::{SseEvent, anthropic_request, client, parse_sse, post_anthropic};

/// Streams a request and returns its events, checking that every event's name matches the
/// `type` of its data.
async fn stream_events(mock: &MockLlm, body: &Value) -> Vec<(String, Value)> {
    let response = post_anthropic(mock, body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    parse_sse(&response.text().await.unwrap())
        .iter()
        .map(|event: &SseEvent| {
            let name = event.event.clone().expect("every Anthropic event is named");
            let data = event.json();
            assert_eq!(data["type"], name.as_str());
            (name, data)
        })
        .collect()
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(name, _)| name.as_str()).collect()
}

#[tokio::test]
async fn plain_text_answer_has_the_message_shape() {
    let mock = MockLlm::start().await.unwrap();
    let body = json!({
        "model": "claude-test",
        "max_tokens": 1024,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello there"}]}],
    });
    let response = post_anthropic(&mock, &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["request-id"], "req_mock1");
    let message: Value = response.json().await.unwrap();
    assert_eq!(
        message,
        json!({
            "id": "msg_mock1",
            "type": "message",
            "role": "assistant",
            "model": "claude-test",
            "content": [{"type": "text", "text": "Mock reply to: Hello there"}],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": {
                "input_tokens": 7,
                "output_tokens": 7,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        })
    );
    let recorded = &mock.requests()[0];
    assert_eq!(recorded.path, "/v1/messages");
    assert_eq!(recorded.headers["x-api-key"], "sk-ant-test");
    assert_eq!(recorded.headers["anthropic-version"], "2023-06-01");
}

#[tokio::test]
async fn missing_version_header_or_max_tokens_is_a_400() {
    let mock = MockLlm::start().await.unwrap();
    let response = client()
        .post(format!("{}/messages", mock.anthropic_base_url()))
        .header("x-api-key", "sk-ant-test")
        .json(&anthropic_request("claude-test", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(
        error,
        json!({"type": "error", "error": {
            "type": "invalid_request_error",
            "message": "anthropic-version: header is required",
        }})
    );

    let body = json!({"model": "claude-test", "messages": [{"role": "user", "content": "hi"}]});
    let response = post_anthropic(&mock, &body).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["message"], "max_tokens: Field required");
    assert_eq!(mock.request_count(), 2);
}

#[tokio::test]
async fn streamed_text_follows_the_event_sequence() {
    let mock = MockLlm::start().await.unwrap();
    let mut body = anthropic_request("claude-test", "stream this");
    body["stream"] = json!(true);
    let events = stream_events(&mock, &body).await;
    assert_eq!(
        names(&events),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    let message = &events[0].1["message"];
    assert_eq!(message["id"], "msg_mock1");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["model"], "claude-test");
    assert_eq!(message["content"], json!([]));
    assert_eq!(message["stop_reason"], Value::Null);
    assert_eq!(message["usage"]["input_tokens"], 3);
    assert_eq!(message["usage"]["output_tokens"], 1);
    assert_eq!(events[1].1["content_block"], json!({"type": "text", "text": ""}));
    assert_eq!(events[1].1["index"], 0);

    let text: String = events
        .iter()
        .filter(|(name, _)| name == "content_block_delta")
        .map(|(_, data)| {
            assert_eq!(data["delta"]["type"], "text_delta");
            data["delta"]["text"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(text, "Mock reply to: stream this");
    let message_delta = &events[events.len() - 2].1;
    assert_eq!(message_delta["delta"], json!({"stop_reason": "end_turn", "stop_sequence": null}));
    // "Mock reply to: stream this" is 26 characters.
    assert_eq!(message_delta["usage"], json!({"output_tokens": 7}));
}

fn lookup_calls() -> Vec<ScriptedToolCall> {
    vec![
        ScriptedToolCall {
            id: "toolu_a".to_owned(),
            name: "lookup".to_owned(),
            arguments: json!({"query": "rust async", "limit": 3}),
        },
        ScriptedToolCall { id: "toolu_b".to_owned(), name: "noop".to_owned(), arguments: json!({}) },
    ]
}

#[tokio::test]
async fn scripted_tool_calls_are_tool_use_blocks() {
    let mock = MockLlm::start().await.unwrap();
    mock.push(Reply::ToolCalls(lookup_calls()));
    let message: Value = post_anthropic(&mock, &anthropic_request("claude-test", "find")).await.json().await.unwrap();
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(
        message["content"],
        json!([
            {"type": "tool_use", "id": "toolu_a", "name": "lookup",
             "input": {"query": "rust async", "limit": 3}},
            {"type": "tool_use", "id": "toolu_b", "name": "noop", "input": {}},
        ])
    );
}

#[tokio::test]
async fn streamed_input_json_fragments_reassemble_to_the_input() {
    let mock = MockLlm::start().await.unwrap();
    mock.push(Reply::ToolCalls(lookup_calls()));
    let mut body = anthropic_request("claude-test", "find");
    body["stream"] = json!(true);
    let events = stream_events(&mock, &body).await;

    let mut blocks: Vec<(Value, String, usize)> = Vec::new();
    let mut open_block = None;
    for (name, data) in &events {
        match name.as_str() {
            "content_block_start" => {
                assert_eq!(open_block, None);
                assert_eq!(data["index"], blocks.len());
                assert_eq!(data["content_block"]["type"], "tool_use");
                assert_eq!(data["content_block"]["input"], json!({}));
                open_block = Some(blocks.len());
                blocks.push((data["content_block"].clone(), String::new(), 0));
            }
            "content_block_delta" => {
                let block_idx = open_block.unwrap();
                assert_eq!(data["index"], block_idx);
                assert_eq!(data["delta"]["type"], "input_json_delta");
                blocks[block_idx].1.push_str(data["delta"]["partial_json"].as_str().unwrap());
                blocks[block_idx].2 += 1;
            }
            "content_block_stop" => {
                assert_eq!(data["index"], open_block.take().unwrap());
            }
            _ => {}
        }
    }
    let expected = lookup_calls();
    assert_eq!(blocks.len(), expected.len());
    for ((block, partial_json, n_fragments), expected) in blocks.iter().zip(&expected) {
        assert_eq!(block["id"], expected.id.as_str());
        assert_eq!(block["name"], expected.name.as_str());
        assert!(*n_fragments >= 2, "input of {} arrived in one piece", expected.name);
        assert_eq!(serde_json::from_str::<Value>(partial_json).unwrap(), expected.arguments);
    }
    let message_delta = &events[events.len() - 2].1;
    assert_eq!(message_delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(events.last().unwrap().0, "message_stop");
}

#[tokio::test]
async fn mock_tool_model_calls_the_first_tool_then_reports_its_result() {
    let mock = MockLlm::start().await.unwrap();
    let tools = json!([{
        "name": "search",
        "description": "Search the docs",
        "input_schema": {
            "type": "object",
            "properties": {"query": {"type": "string"}, "page": {"type": "integer"}},
            "required": ["query"],
        },
    }]);
    let first = json!({
        "model": "mock-tool",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "find tokio docs"}],
        "tools": tools,
    });
    let message: Value = post_anthropic(&mock, &first).await.json().await.unwrap();
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(
        message["content"],
        json!([{"type": "tool_use", "id": "toolu_mock1", "name": "search",
                "input": {"query": "test"}}])
    );

    let second = json!({
        "model": "mock-tool",
        "max_tokens": 1024,
        "messages": [
            {"role": "user", "content": "find tokio docs"},
            {"role": "assistant", "content": message["content"]},
            {"role": "user", "content": [{
                "type": "tool_result",
                "tool_use_id": "toolu_mock1",
                "content": [{"type": "text", "text": "tokio.rs"}],
            }]},
        ],
        "tools": tools,
    });
    let message: Value = post_anthropic(&mock, &second).await.json().await.unwrap();
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(message["content"][0]["text"], "Tool result: tokio.rs");
    // "find tokio docs" and "tokio.rs": 15 + 8 characters.
    assert_eq!(message["usage"]["input_tokens"], 6);
}

#[tokio::test]
async fn max_tokens_cuts_the_text_with_stop_reason_max_tokens() {
    let mock = MockLlm::start().await.unwrap();
    mock.push(Reply::Text("one two three four five".to_owned()));
    let mut body = anthropic_request("claude-test", "hi");
    body["max_tokens"] = json!(2);
    let message: Value = post_anthropic(&mock, &body).await.json().await.unwrap();
    assert_eq!(message["content"][0]["text"], "one two ");
    assert_eq!(message["stop_reason"], "max_tokens");
    assert_eq!(message["usage"]["output_tokens"], 2);
}

#[tokio::test]
async fn long_prompts_report_cache_reads() {
    let mock = MockLlm::start().await.unwrap();
    let body = json!({
        "model": "claude-test",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": "s".repeat(3000)}],
        "messages": [{"role": "user", "content": "u".repeat(3000)}],
    });
    let message: Value = post_anthropic(&mock, &body).await.json().await.unwrap();
    assert_eq!(message["usage"]["input_tokens"], 750, "cache reads are not part of input_tokens");
    assert_eq!(message["usage"]["cache_read_input_tokens"], 750);
    assert_eq!(message["usage"]["cache_creation_input_tokens"], 0);
}
