//! The OpenAI-compatible client against the mock LLM: the shared scenarios plus the request
//! body's OpenAI-specific shape.

use std::sync::Arc;

use glassbox_core::{Message, ModelRequest, OutputSchema, ToolCall};
use glassbox_mockllm::Reply;
use glassbox_providers::{BuildError, HttpModelSettings, OpenAiModel};
use serde_json::json;

use crate::support::{Wire, build, settings, start, weather_tool};

scenario_tests!(Wire::OpenAi);

fn conversation_with_tool_results() -> ModelRequest {
    ModelRequest {
        messages: vec![
            Message::system("You are terse."),
            Message::user("Weather in Oslo?"),
            Message::Assistant {
                text: String::new(),
                tool_calls: vec![ToolCall {
                    id: "call_1".into(),
                    name: "get_weather".into(),
                    arguments: json!({"city": "Oslo"}),
                }],
            },
            Message::Tool {
                call_id: "call_1".into(),
                name: "get_weather".into(),
                content: r#"{"celsius":3}"#.into(),
                is_error: false,
            },
            Message::Assistant { text: "It is 3 degrees.".into(), tool_calls: Vec::new() },
            Message::user("Thanks"),
        ],
        tools: Arc::from(vec![weather_tool()]),
        temperature: Some(0.5),
        max_output_tokens: Some(64),
        output_schema: Some(OutputSchema { name: "weather_answer".into(), schema: json!({"type": "object"}) }),
    }
}

#[tokio::test]
async fn request_body_has_the_openai_shape() {
    let mock = start().await;
    mock.push(Reply::Text("{}".to_owned()));
    build(Wire::OpenAi, settings(&mock, Wire::OpenAi)).generate(&conversation_with_tool_results()).await.unwrap();
    let body = &mock.requests()[0].body;
    assert_eq!(
        *body,
        json!({
            "model": "test-model",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Weather in Oslo?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "{\"celsius\":3}"},
                {"role": "assistant", "content": "It is 3 degrees."},
                {"role": "user", "content": "Thanks"}
            ],
            "tools": [{"type": "function", "function": {
                "name": "get_weather",
                "description": "Current weather for a city",
                "parameters": weather_tool().parameters
            }}],
            "temperature": 0.5,
            "max_tokens": 64,
            "response_format": {"type": "json_schema", "json_schema": {"name": "weather_answer", "schema": {"type": "object"}, "strict": false}}
        })
    );
}

#[tokio::test]
async fn no_api_key_sends_no_authorization_header() {
    let mock = start().await;
    let mut keyless = settings(&mock, Wire::OpenAi);
    keyless.api_key = None;
    build(Wire::OpenAi, keyless).generate(&crate::support::simple_request("hi")).await.unwrap();
    assert!(mock.requests()[0].headers.get("authorization").is_none());
}

#[tokio::test]
async fn base_url_with_a_trailing_slash_works() {
    let mock = start().await;
    let mut slashed = settings(&mock, Wire::OpenAi);
    slashed.base_url.push('/');
    build(Wire::OpenAi, slashed).generate(&crate::support::simple_request("hi")).await.unwrap();
    assert_eq!(mock.requests()[0].path, "/v1/chat/completions");
}

#[test]
fn invalid_settings_are_build_errors() {
    let bad_url = OpenAiModel::new(HttpModelSettings::new("m", "not a url"));
    assert!(matches!(bad_url, Err(BuildError::InvalidUrl { .. })), "{:?}", bad_url.err());
    let ftp = OpenAiModel::new(HttpModelSettings::new("m", "ftp://example.com/v1"));
    assert!(matches!(ftp, Err(BuildError::InvalidUrl { .. })));

    let mut bad_header = HttpModelSettings::new("m", "http://127.0.0.1:1/v1");
    bad_header.headers = vec![("x-secret".into(), "line\nbreak-secret".into())];
    let error = OpenAiModel::new(bad_header).err().unwrap();
    assert!(matches!(error, BuildError::InvalidHeader { ref name, .. } if name == "x-secret"));
    assert!(!error.to_string().contains("break-secret"), "header values stay out of messages");

    let mut bad_key = HttpModelSettings::new("m", "http://127.0.0.1:1/v1");
    bad_key.api_key = Some("sk-\nbroken".into());
    let error = OpenAiModel::new(bad_key).err().unwrap();
    assert!(matches!(error, BuildError::InvalidApiKey { .. }));
    assert!(!error.to_string().contains("broken"));
}

#[test]
fn settings_debug_hides_the_key_and_header_values() {
    let mut settings = HttpModelSettings::new("m", "http://127.0.0.1:1/v1");
    settings.api_key = Some("sk-very-secret".into());
    settings.headers = vec![("x-org".into(), "org-secret".into())];
    let printed = format!("{settings:?}");
    assert!(!printed.contains("sk-very-secret") && !printed.contains("org-secret"), "{printed}");
    assert!(printed.contains("x-org"));
}
