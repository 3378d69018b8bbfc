//! DESIGN.md's error table, one test per row this server has so far; after every bad request
//! the server still answers a good one.

use glassbox_server::HttpOptions;
use serde_json::{Value, json};

use crate::helpers::{BASE_CONFIG, TestApp, spawn_app, spawn_app_with};

async fn assert_still_serving(app: &TestApp) {
    let response = app.post_json("/api/agents/echo/generate", json!({"messages": "still there?"})).await;
    assert_eq!(response.status(), 200, "the server must keep serving after a bad request");
}

async fn error_of(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    assert!(response.headers().contains_key("traceparent"), "errors carry the trace id too");
    let body: Value = response.json().await.expect("errors are JSON");
    assert!(body["error"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(body["code"].is_string(), "{body}");
    body
}

#[tokio::test]
async fn malformed_json_is_400() {
    let app = spawn_app(BASE_CONFIG).await;
    let body = error_of(app.post_raw("/api/agents/echo/generate", "{\"messages\": \"hi\"").await, 400).await;
    assert_eq!(body["code"], "malformed_json");
    let body = error_of(app.post_raw("/api/agents/echo/generate", "{\"messages\": \"hi\"} trailing").await, 400).await;
    assert_eq!(body["code"], "malformed_json");
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn a_wrong_type_for_messages_is_400_naming_the_field() {
    let app = spawn_app(BASE_CONFIG).await;
    for (input, field) in [
        (json!({"messages": 42}), "messages"),
        (json!({"messages": [{"role": "bot", "content": "x"}]}), "messages[0].role"),
        (json!({"messages": [{"role": "user"}]}), "messages[0]"),
        (json!({"messages": [{"role": "user", "content": 7}]}), "messages[0].content"),
        (json!({"messages": []}), "messages"),
        (json!({"messages": "hi", "maxSteps": "many"}), "maxSteps"),
        (json!({"messages": "hi", "output": "not a schema"}), "output"),
        (json!({}), "messages"),
    ] {
        let body = error_of(app.post_json("/api/agents/echo/generate", input.clone()).await, 400).await;
        assert_eq!(body["code"], "invalid_body", "{input}: {body}");
        let message = body["error"].as_str().unwrap();
        assert!(message.contains(field) || body["details"]["field"] == field, "{input}: {body}");
    }
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn an_invalid_output_schema_is_400() {
    let app = spawn_app(BASE_CONFIG).await;
    let body = error_of(
        app.post_json("/api/agents/echo/generate", json!({"messages": "hi", "output": {"type": "nonsense"}})).await,
        400,
    )
    .await;
    assert_eq!(body["code"], "invalid_output_schema");
    assert_eq!(body["details"]["field"], "output");
}

#[tokio::test]
async fn an_unknown_agent_is_404() {
    let app = spawn_app(BASE_CONFIG).await;
    for path in ["/api/agents/nobody", "/api/agents/nobody/generate", "/api/agents/nobody/stream"] {
        let response = if path.ends_with("nobody") {
            app.client.get(app.url(path)).send().await.unwrap()
        } else {
            app.post_json(path, json!({"messages": "hi"})).await
        };
        let body = error_of(response, 404).await;
        assert_eq!(body["code"], "agent_not_found", "{path}");
        assert!(body["error"].as_str().unwrap().contains("nobody"));
    }
    let body = error_of(app.client.get(app.url("/api/nothing-here")).send().await.unwrap(), 404).await;
    assert_eq!(body["code"], "route_not_found");
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn an_oversized_body_is_413_at_the_configured_limit() {
    let app = spawn_app_with(BASE_CONFIG, HttpOptions { body_limit: 4096, ..HttpOptions::default() }, &|_| None).await;
    let big = json!({"messages": "x".repeat(5000)}).to_string();
    let body = error_of(app.post_raw("/api/agents/echo/generate", big).await, 413).await;
    assert_eq!(body["code"], "body_too_large");
    assert!(body["error"].as_str().unwrap().contains("4096"));
    let small = json!({"messages": "x".repeat(3000)}).to_string();
    assert_eq!(app.post_raw("/api/agents/echo/generate", small).await.status(), 200);
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn the_default_body_limit_is_one_mebibyte() {
    let app = spawn_app(BASE_CONFIG).await;
    let over = json!({"messages": "x".repeat(1024 * 1024)}).to_string();
    error_of(app.post_raw("/api/agents/echo/generate", over).await, 413).await;
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn a_provider_error_is_502_and_a_provider_timeout_504() {
    let config = r#"
[models.broken]
provider = "mock"
model = "mock-error"

[models.mock]
provider = "mock"
model = "mock-echo"

[agents.broken]
instructions = "x"
model = "broken"

[agents.echo]
instructions = "x"
model = "mock"
"#;
    let app = spawn_app(config).await;
    let body = error_of(app.post_json("/api/agents/broken/generate", json!({"messages": "hi"})).await, 502).await;
    assert_eq!(body["code"], "provider_error");
    let body = error_of(app.post_json("/api/agents/broken/stream", json!({"messages": "hi"})).await, 502).await;
    assert_eq!(body["code"], "provider_error");
    assert_still_serving(&app).await;
    // 504 needs a real provider with a deadline: see providers_e2e.
}
