//! The OpenAI chat-completions wire format: plain and streamed answers, tool calls, usage and
//! the default replies.

use glassbox_mockllm::{MockLlm, Reply, ScriptedToolCall};
use serde_json::{Value, json};

use crate::helpers::{SseEvent, client, openai_request, parse_sse, post_openai};

/// Streams a request and returns its events, checking the framing every stream shares.
async fn stream_events(mock: &MockLlm, body: &Value) -> Vec<SseEvent> {
    let response = post_openai(mock, body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = parse_sse(&response.text().await.unwrap());
    assert!(events.iter().all(|event| event.event.is_none()), "OpenAI sends no event names");
    assert_eq!(events.last().unwrap().data, "[DONE]");
    assert_eq!(events.iter().filter(|event| event.data == "[DONE]").count(), 1);
    events
}

/// The JSON chunks of a stream, without `[DONE]`.
fn chunks(events: &[SseEvent]) -> Vec<Value> {
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(SseEvent::json).collect();
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], chunks[0]["id"]);
    }
    chunks
}

#[tokio::test]
async fn plain_text_answer_has_the_chat_completion_shape() {
    let mock = MockLlm::start().await.unwrap();
    let body = json!({
        "model": "gpt-test",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hello there"},
        ],
    });
    let response = post_openai(&mock, &body).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    assert_eq!(response.headers()["x-request-id"], "req_mock1");
    let completion: Value = response.json().await.unwrap();

    assert_eq!(completion["id"], "chatcmpl-mock1");
    assert_eq!(completion["object"], "chat.completion");
    assert!(completion["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(completion["model"], "gpt-test");
    let choices = completion["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 1);
    assert_eq!(choices[0]["index"], 0);
    assert_eq!(choices[0]["finish_reason"], "stop");
    assert_eq!(choices[0]["message"]["role"], "assistant");
    assert_eq!(choices[0]["message"]["content"], "Mock reply to: Hello there");
    assert!(choices[0]["message"].get("tool_calls").is_none());
    // 14 + 11 input characters -> 7 tokens; 26 answer characters -> 7 tokens.
    assert_eq!(
        completion["usage"],
        json!({
            "prompt_tokens": 7,
            "completion_tokens": 7,
            "total_tokens": 14,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        })
    );
}

#[tokio::test]
async fn content_parts_and_the_unversioned_path_are_understood() {
    let mock = MockLlm::start().await.unwrap();
    let body = json!({
        "model": "gpt-test",
        "messages": [
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": [
                {"type": "text", "text": "look at"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "text", "text": "this"},
            ]},
        ],
    });
    let response = client().post(format!("{}/chat/completions", mock.base_url())).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let completion: Value = response.json().await.unwrap();
    assert_eq!(completion["choices"][0]["message"]["content"], "Mock reply to: look at\nthis");
    // 14 + 12 + 7 + 4 characters; images do not count.
    assert_eq!(completion["usage"]["prompt_tokens"], 10);
    assert_eq!(mock.requests()[0].path, "/chat/completions");
}

#[tokio::test]
async fn streamed_text_arrives_word_by_word_and_ends_with_done() {
    let mock = MockLlm::start().await.unwrap();
    let mut body = openai_request("gpt-test", "stream this please");
    body["stream"] = json!(true);
    let events = stream_events(&mock, &body).await;
    let chunks = chunks(&events);

    assert_eq!(chunks[0]["choices"][0]["delta"], json!({"role": "assistant", "content": "", "refusal": null}));
    let content_deltas: Vec<&str> = chunks[1..chunks.len() - 1]
        .iter()
        .map(|chunk| chunk["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(content_deltas, ["Mock", " reply", " to:", " stream", " this", " please"]);
    for chunk in &chunks[..chunks.len() - 1] {
        assert_eq!(chunk["choices"][0]["finish_reason"], Value::Null);
    }
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["delta"], json!({}));
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert!(chunks.iter().all(|chunk| chunk.get("usage").is_none()));
}

#[tokio::test]
async fn include_usage_adds_a_usage_chunk_with_no_choices() {
    let mock = MockLlm::start().await.unwrap();
    let mut body = openai_request("gpt-test", "count me");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let events = stream_events(&mock, &body).await;
    let chunks = chunks(&events);

    let (usage_chunk, earlier) = chunks.split_last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], 2);
    // "Mock reply to: count me" is 23 characters.
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 6);
    assert_eq!(usage_chunk["usage"]["total_tokens"], 8);
    assert_eq!(usage_chunk["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(usage_chunk["usage"]["completion_tokens_details"]["reasoning_tokens"], 0);
    assert!(earlier.iter().all(|chunk| chunk["usage"].is_null() && chunk.get("usage").is_some()));
    assert_eq!(earlier.last().unwrap()["choices"][0]["finish_reason"], "stop");
}

fn weather_calls() -> Vec<ScriptedToolCall> {
    vec![
        ScriptedToolCall {
            id: "call_a".to_owned(),
            name: "get_weather".to_owned(),
            arguments: json!({"city": "Paris", "unit": "celsius"}),
        },
        ScriptedToolCall {
            id: "call_b".to_owned(),
            name: "get_time".to_owned(),
            arguments: json!({"zone": "Europe/Paris"}),
        },
    ]
}

#[tokio::test]
async fn scripted_tool_calls_carry_arguments_as_json_strings() {
    let mock = MockLlm::start().await.unwrap();
    mock.push(Reply::ToolCalls(weather_calls()));
    let completion: Value = post_openai(&mock, &openai_request("gpt-test", "weather?")).await.json().await.unwrap();
    let choice = &completion["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let tool_calls = choice["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(tool_calls.len(), 2);
    assert_eq!(tool_calls[0]["id"], "call_a");
    assert_eq!(tool_calls[0]["type"], "function");
    assert_eq!(tool_calls[0]["function"]["name"], "get_weather");
    let arguments: Value = serde_json::from_str(tool_calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"city": "Paris", "unit": "celsius"}));
    assert_eq!(tool_calls[1]["function"]["name"], "get_time");
    // (11 + 33) + (8 + 23) characters of names and arguments -> 19 tokens.
    assert_eq!(completion["usage"]["completion_tokens"], 19);
}

#[tokio::test]
async fn streamed_tool_call_fragments_reassemble_to_the_arguments() {
    let mock = MockLlm::start().await.unwrap();
    mock.push(Reply::ToolCalls(weather_calls()));
    let mut body = openai_request("gpt-test", "weather?");
    body["stream"] = json!(true);
    let events = stream_events(&mock, &body).await;
    let chunks = chunks(&events);

    let mut calls: Vec<(Value, String, usize)> = Vec::new();
    for chunk in &chunks[1..chunks.len() - 1] {
        let delta = &chunk["choices"][0]["delta"];
        let tool_calls = delta["tool_calls"].as_array().unwrap();
        assert_eq!(tool_calls.len(), 1);
        let tool_call = &tool_calls[0];
        let index = usize::try_from(tool_call["index"].as_u64().unwrap()).unwrap();
        if tool_call.get("id").is_some() {
            assert_eq!(index, calls.len(), "a new call starts at the next index");
            assert_eq!(tool_call["type"], "function");
            assert_eq!(tool_call["function"]["arguments"], "");
            calls.push((tool_call.clone(), String::new(), 0));
        } else {
            let fragment = tool_call["function"]["arguments"].as_str().unwrap();
            calls[index].1.push_str(fragment);
            calls[index].2 += 1;
        }
    }
    let expected = weather_calls();
    assert_eq!(calls.len(), expected.len());
    for ((header, arguments, n_fragments), expected) in calls.iter().zip(&expected) {
        assert_eq!(header["id"], expected.id.as_str());
        assert_eq!(header["function"]["name"], expected.name.as_str());
        assert!(*n_fragments >= 2, "arguments of {} arrived in one piece", expected.name);
        assert_eq!(serde_json::from_str::<Value>(arguments).unwrap(), expected.arguments);
    }
    assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn mock_tool_model_calls_the_first_tool_then_reports_its_result() {
    let mock = MockLlm::start().await.unwrap();
    let tools = json!([
        {"type": "function", "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "unit": {"type": "string", "enum": ["c", "f"]},
                    "days": {"type": "integer"},
                    "verbose": {"type": "boolean"},
                },
                "required": ["city", "unit", "days"],
            },
        }},
        {"type": "function", "function": {"name": "other", "parameters": {"type": "object"}}},
    ]);
    let first = json!({
        "model": "mock-tool",
        "messages": [{"role": "user", "content": "weather in Paris?"}],
        "tools": tools,
    });
    let completion: Value = post_openai(&mock, &first).await.json().await.unwrap();
    let tool_call = &completion["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(completion["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(tool_call["id"], "call_mock1");
    assert_eq!(tool_call["function"]["name"], "get_weather");
    let arguments: Value = serde_json::from_str(tool_call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"city": "test", "unit": "c", "days": 0}));

    let second = json!({
        "model": "mock-tool",
        "messages": [
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [tool_call]},
            {"role": "tool", "tool_call_id": "call_mock1", "content": "sunny, 21C"},
        ],
        "tools": tools,
    });
    let completion: Value = post_openai(&mock, &second).await.json().await.unwrap();
    assert_eq!(completion["choices"][0]["finish_reason"], "stop");
    assert_eq!(completion["choices"][0]["message"]["content"], "Tool result: sunny, 21C");

    // Without tools the same model just answers.
    let completion: Value = post_openai(&mock, &openai_request("mock-tool", "hi")).await.json().await.unwrap();
    assert_eq!(completion["choices"][0]["message"]["content"], "Mock reply to: hi");
}

#[tokio::test]
async fn max_tokens_cuts_the_text_with_finish_reason_length() {
    let mock = MockLlm::start().await.unwrap();
    mock.push(Reply::Text("abcdefghijklmnopqrstuvwxyz".to_owned()));
    let mut body = openai_request("gpt-test", "hi");
    body["max_completion_tokens"] = json!(2);
    let completion: Value = post_openai(&mock, &body).await.json().await.unwrap();
    assert_eq!(completion["choices"][0]["message"]["content"], "abcdefgh");
    assert_eq!(completion["choices"][0]["finish_reason"], "length");
    assert_eq!(completion["usage"]["completion_tokens"], 2);

    mock.push(Reply::Text("abcdefghijklmnopqrstuvwxyz".to_owned()));
    let mut body = openai_request("gpt-test", "hi");
    body["max_tokens"] = json!(3);
    body["stream"] = json!(true);
    let events = stream_events(&mock, &body).await;
    let chunks = chunks(&events);
    assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "abcdefghijkl");
    assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "length");
}

#[tokio::test]
async fn long_prompts_report_half_their_input_tokens_as_cached() {
    let mock = MockLlm::start().await.unwrap();
    let long_text = "x".repeat(5000);
    let completion: Value = post_openai(&mock, &openai_request("gpt-test", &long_text)).await.json().await.unwrap();
    assert_eq!(completion["usage"]["prompt_tokens"], 1250);
    assert_eq!(completion["usage"]["prompt_tokens_details"]["cached_tokens"], 625);

    let completion: Value =
        post_openai(&mock, &openai_request("gpt-test", &"x".repeat(4096))).await.json().await.unwrap();
    assert_eq!(completion["usage"]["prompt_tokens"], 1024);
    assert_eq!(completion["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
}

#[tokio::test]
async fn invalid_requests_answer_400_and_leave_the_script_alone() {
    let mock = MockLlm::start().await.unwrap();
    mock.push(Reply::Text("scripted".to_owned()));

    let response = client()
        .post(format!("{}/chat/completions", mock.openai_base_url()))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(error["error"]["param"], Value::Null);
    assert!(error["error"]["message"].as_str().unwrap().contains("parse the JSON body"));
    assert!(error["error"].get("code").is_some());

    let response = post_openai(&mock, &json!({"model": "gpt-test"})).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["message"], "messages: Field required");

    let completion: Value = post_openai(&mock, &openai_request("gpt-test", "hi")).await.json().await.unwrap();
    assert_eq!(completion["choices"][0]["message"]["content"], "scripted");
    assert_eq!(mock.requests()[0].body, json!("{not json"));
}
