//! The agent routes on the happy path: list, describe, generate, stream, trace ids.

use serde_json::{Value, json};

use crate::helpers::{BASE_CONFIG, parse_chunks, spawn_app, sse_data};

#[tokio::test]
async fn lists_and_describes_agents_in_config_order() {
    let app = spawn_app(BASE_CONFIG).await;
    let response = app.client.get(app.url("/api/agents")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.find("\"echo\"").unwrap() < text.find("\"slow\"").unwrap(), "config order: {text}");
    let agents: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(agents["echo"]["instructions"], "Repeat what the user says.");
    assert_eq!(agents["echo"]["provider"], "mock");
    assert_eq!(agents["echo"]["modelId"], "mock-echo");

    let one: Value = app.client.get(app.url("/api/agents/slow")).send().await.unwrap().json().await.unwrap();
    assert_eq!(one["id"], "slow");
    assert_eq!(one["modelId"], "mock-slow-300");
}

#[tokio::test]
async fn generate_answers_with_text_usage_finish_reason_and_trace_id() {
    let app = spawn_app(BASE_CONFIG).await;
    let response = app.post_json("/api/agents/echo/generate", json!({"messages": "hello"})).await;
    assert_eq!(response.status(), 200);
    let traceparent = response.headers()["traceparent"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert!(body["text"].as_str().unwrap().contains("hello"), "{body}");
    assert!(body["usage"]["inputTokens"].as_u64().unwrap() > 0);
    assert_eq!(
        body["usage"]["totalTokens"].as_u64().unwrap(),
        body["usage"]["inputTokens"].as_u64().unwrap() + body["usage"]["outputTokens"].as_u64().unwrap()
    );
    assert_eq!(body["finishReason"], "stop");
    let trace_id = body["traceId"].as_str().unwrap();
    assert_eq!(trace_id.len(), 32);
    assert!(traceparent.starts_with(&format!("00-{trace_id}-")), "{traceparent}");
}

#[tokio::test]
async fn generate_accepts_message_arrays_and_content_parts() {
    let app = spawn_app(BASE_CONFIG).await;
    let body = json!({
        "messages": [
            {"role": "system", "content": "extra rules"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "noted"},
            {"role": "user", "content": [{"type": "text", "text": "second "}, {"type": "text", "text": "part"}], "id": "m-1"}
        ],
        "threadId": "t-1", "resourceId": "u-1", "requestContext": {"tier": "gold"}
    });
    let response = app.post_json("/api/agents/echo/generate", body).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(body["text"].as_str().unwrap().contains("second part"), "{body}");
}

#[tokio::test]
async fn an_incoming_traceparent_is_continued() {
    let app = spawn_app(BASE_CONFIG).await;
    let response = app
        .client
        .post(app.url("/api/agents/echo/generate"))
        .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .json(&json!({"messages": "hi"}))
        .send()
        .await
        .unwrap();
    let header = response.headers()["traceparent"].to_str().unwrap().to_owned();
    assert!(header.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{header}");
    assert!(!header.contains("00f067aa0ba902b7"), "the server's span gets its own id");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
}

#[tokio::test]
async fn stream_sends_text_deltas_a_finish_chunk_and_done() {
    let app = spawn_app(BASE_CONFIG).await;
    let response = app.post_json("/api/agents/echo/stream", json!({"messages": "hello there friend"})).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    assert!(response.headers().contains_key("traceparent"));
    let data = sse_data(response).await;
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks = parse_chunks(&data);
    let deltas: Vec<&Value> = chunks.iter().filter(|c| c["type"] == "text-delta").collect();
    assert!(deltas.len() >= 2, "text arrives in several deltas: {chunks:?}");
    let text: String = deltas.iter().map(|c| c["payload"]["text"].as_str().unwrap()).collect();
    assert!(text.contains("hello there friend"), "{text}");
    for chunk in &chunks {
        assert_eq!(chunk["from"], "AGENT");
        assert_eq!(chunk["runId"].as_str().unwrap().len(), 32);
    }
    let finish = chunks.last().unwrap();
    assert_eq!(finish["type"], "finish");
    assert_eq!(finish["payload"]["stepResult"]["reason"], "stop");
    assert!(finish["payload"]["output"]["usage"]["totalTokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn requests_may_ask_for_structured_output() {
    let config = r#"
[models.json]
provider = "mock"
model = "mock-json"

[agents.extract]
instructions = "Extract."
model = "json"
"#;
    let app = spawn_app(config).await;
    let schema = json!({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}}, "required": ["name", "age"]});
    let response = app.post_json("/api/agents/extract/generate", json!({"messages": "Ada, 36", "output": schema})).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(body["object"]["name"].is_string(), "{body}");
    assert!(body["object"]["age"].is_u64(), "{body}");
}
