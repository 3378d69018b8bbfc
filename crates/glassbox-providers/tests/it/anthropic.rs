//! The Anthropic client against the mock LLM: the shared scenarios plus the request body's
//! Anthropic-specific shape (top-level system, tool results as user blocks, structured output
//! through the system prompt).

use std::sync::Arc;

use glassbox_core::{Message, ModelRequest, OutputSchema, ToolCall};
use glassbox_mockllm::Reply;
use serde_json::json;

use crate::support::{Wire, build, collect, finish, settings, simple_request, start, weather_tool};

scenario_tests!(Wire::Anthropic);

#[tokio::test]
async fn request_body_has_the_anthropic_shape() {
    let mock = start().await;
    mock.push(Reply::Text("done".to_owned()));
    let request = ModelRequest {
        messages: vec![
            Message::system("You are terse."),
            Message::user("Weather in Oslo and Bergen?"),
            Message::Assistant {
                text: "Let me check.".into(),
                tool_calls: vec![
                    ToolCall { id: "toolu_1".into(), name: "get_weather".into(), arguments: json!({"city": "Oslo"}) },
                    ToolCall { id: "toolu_2".into(), name: "get_weather".into(), arguments: json!({"city": "Bergen"}) },
                ],
            },
            Message::Tool {
                call_id: "toolu_1".into(),
                name: "get_weather".into(),
                content: "3".into(),
                is_error: false,
            },
            Message::Tool {
                call_id: "toolu_2".into(),
                name: "get_weather".into(),
                content: "unknown city".into(),
                is_error: true,
            },
            Message::system("Answer in English."),
        ],
        tools: Arc::from(vec![weather_tool()]),
        temperature: Some(0.5),
        max_output_tokens: None,
        output_schema: None,
    };
    build(Wire::Anthropic, settings(&mock, Wire::Anthropic)).generate(&request).await.unwrap();
    let body = &mock.requests()[0].body;
    assert_eq!(
        *body,
        json!({
            "model": "test-model",
            "max_tokens": 4096,
            "system": "You are terse.\n\nAnswer in English.",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Weather in Oslo and Bergen?"}]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Bergen"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "3"},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": "unknown city", "is_error": true}
                ]}
            ],
            "tools": [{"name": "get_weather", "description": "Current weather for a city", "input_schema": weather_tool().parameters}],
            "temperature": 0.5
        })
    );
}

#[tokio::test]
async fn structured_output_asks_for_json_in_the_system_prompt_and_strips_fences() {
    let mock = start().await;
    let fenced = "```json\n{\"city\":\"Oslo\",\"celsius\":3}\n```";
    mock.push(Reply::Text(fenced.to_owned()));
    mock.push(Reply::Text(fenced.to_owned()));
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}, "celsius": {"type": "number"}}});
    let mut request = simple_request("Weather in Oslo?");
    request.output_schema = Some(OutputSchema { name: "weather".into(), schema: schema.clone() });
    let model = build(Wire::Anthropic, settings(&mock, Wire::Anthropic));

    let response = model.generate(&request).await.unwrap();
    assert_eq!(response.text, r#"{"city":"Oslo","celsius":3}"#);

    let (events, error) = collect(model.stream(&request).await).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(finish(&events).text, r#"{"city":"Oslo","celsius":3}"#);

    let system = mock.requests()[0].body["system"].as_str().unwrap().to_owned();
    assert!(system.starts_with("You are terse.\n\n"), "{system}");
    assert!(
        system.contains("JSON") && system.contains("`weather`") && system.contains(&schema.to_string()),
        "{system}"
    );
    assert!(mock.requests()[0].body.get("response_format").is_none());
}

#[tokio::test]
async fn no_api_key_sends_no_key_header() {
    let mock = start().await;
    let mut keyless = settings(&mock, Wire::Anthropic);
    keyless.api_key = None;
    build(Wire::Anthropic, keyless).generate(&simple_request("hi")).await.unwrap();
    let headers = &mock.requests()[0].headers;
    assert!(headers.get("x-api-key").is_none());
    assert_eq!(headers["anthropic-version"], "2023-06-01");
}
