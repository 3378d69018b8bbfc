//! The in-process `mock` provider: every behaviour chosen by model name, deterministic usage,
//! and its streams.

use std::sync::Arc;
use std::time::{Duration, Instant};

use glassbox_core::{
    FinishReason, LanguageModel, Message, ModelEvent, ModelRequest, OutputSchema, ProviderError, ToolSpec,
};
use glassbox_providers::{BuildError, MOCK_MODELS, MockModel};
use serde_json::{Value, json};

use crate::support::{collect, finish, streamed_text};

fn mock(name: &str) -> MockModel {
    MockModel::new(name).unwrap()
}

fn ask(text: &str) -> ModelRequest {
    ModelRequest { messages: vec![Message::user(text)], ..ModelRequest::default() }
}

fn search_tool() -> ToolSpec {
    ToolSpec {
        name: "search".into(),
        description: "Searches".into(),
        parameters: json!({
            "type": "object",
            "properties": {
                "query": {"type": "string"},
                "limit": {"type": "integer", "minimum": 1},
                "exact": {"type": "boolean"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "filters": {"type": "object", "properties": {"lang": {"type": "string"}}, "required": ["lang"]},
                "optional": {"type": "string"}
            },
            "required": ["query", "limit", "exact", "tags", "filters"]
        }),
    }
}

#[tokio::test]
async fn text_says_it_is_the_mock_and_counts_usage() {
    let model = mock("mock-text");
    assert_eq!(model.provider(), "mock");
    assert_eq!(model.model_name(), "mock-text");
    let response = model.generate(&ask("Hello there!")).await.unwrap();
    assert!(response.text.contains("Glassbox") && response.text.contains("mock") && response.text.contains("API key"));
    assert_eq!(response.finish_reason, FinishReason::Stop);
    // "Hello there!" is 12 characters -> 3 tokens.
    assert_eq!(response.usage.input_tokens, 3);
    assert_eq!(response.usage.output_tokens, response.text.chars().count().div_ceil(4) as u64);
    assert_eq!(model.generate(&ask("Hello there!")).await.unwrap(), response, "deterministic");

    let empty = model.generate(&ModelRequest::default()).await.unwrap();
    assert_eq!(empty.usage.input_tokens, 1, "at least one token");
}

#[tokio::test]
async fn echo_repeats_the_last_user_message() {
    let request = ModelRequest {
        messages: vec![Message::user("first"), Message::assistant("ok"), Message::user("second")],
        ..ModelRequest::default()
    };
    let response = mock("mock-echo").generate(&request).await.unwrap();
    assert_eq!(response.text, "You said: second");
    assert_eq!(response.usage.output_tokens, 4);
}

#[tokio::test]
async fn tool_calls_the_first_tool_then_summarizes_results() {
    let model = mock("mock-tool");
    let tool = search_tool();
    let mut request = ModelRequest { tools: Arc::from(vec![tool.clone()]), ..ask("rust news") };
    let first = model.generate(&request).await.unwrap();
    assert_eq!(first.finish_reason, FinishReason::ToolCalls);
    assert_eq!(first.text, "");
    let call = first.tool_calls[0].clone();
    assert_eq!(call.name, "search");
    assert_eq!(
        call.arguments,
        json!({"query": "rust news", "limit": 1, "exact": true, "tags": [], "filters": {"lang": "rust news"}})
    );
    assert!(jsonschema::is_valid(&tool.parameters, &call.arguments), "arguments satisfy the schema");

    request.messages.push(Message::Assistant { text: String::new(), tool_calls: vec![call.clone()] });
    request.messages.push(Message::Tool {
        call_id: call.id.clone(),
        name: "search".into(),
        content: r#"{"hits":2}"#.into(),
        is_error: false,
    });
    let second = model.generate(&request).await.unwrap();
    assert_eq!(second.finish_reason, FinishReason::Stop);
    assert_eq!(second.text, r#"search returned {"hits":2}"#);

    // A new user turn starts over with a fresh call id.
    request.messages.push(Message::assistant(second.text.clone()));
    request.messages.push(Message::user("more"));
    let third = model.generate(&request).await.unwrap();
    assert_eq!(third.finish_reason, FinishReason::ToolCalls);
    assert_ne!(third.tool_calls[0].id, call.id);

    let no_tools = model.generate(&ask("hi")).await.unwrap();
    assert_eq!(no_tools.finish_reason, FinishReason::Stop);
    assert!(no_tools.text.contains("hi"));
}

#[tokio::test]
async fn json_satisfies_the_output_schema() {
    let schema = json!({
        "type": "object",
        "properties": {
            "summary": {"type": "string"},
            "sentiment": {"enum": ["positive", "negative"]},
            "kind": {"const": "review"},
            "score": {"type": "number", "minimum": 3, "maximum": 5},
            "count": {"type": "integer", "minimum": 10},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
            "author": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
        },
        "required": ["summary", "sentiment"],
        "additionalProperties": false
    });
    let request = ModelRequest {
        output_schema: Some(OutputSchema { name: "review".into(), schema: schema.clone() }),
        ..ask("great product")
    };
    let response = mock("mock-json").generate(&request).await.unwrap();
    let value: Value = serde_json::from_str(&response.text).unwrap();
    assert!(jsonschema::is_valid(&schema, &value), "{value}");
    assert_eq!(
        value,
        json!({
            "summary": "great product", "sentiment": "positive", "kind": "review", "score": 3,
            "count": 10, "tags": ["great product", "great product"], "author": {"name": "great product"}
        })
    );

    let without_schema = mock("mock-json").generate(&ask("plain")).await.unwrap();
    assert_eq!(serde_json::from_str::<Value>(&without_schema.text).unwrap(), json!({"answer": "plain"}));
}

#[tokio::test]
async fn slow_waits_and_can_be_cancelled() {
    let started = Instant::now();
    let response = mock("mock-slow-50").generate(&ask("hi")).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert_eq!(response.text, mock("mock-text").generate(&ask("hi")).await.unwrap().text);

    let model = mock("mock-slow");
    let started = Instant::now();
    let cancelled = tokio::time::timeout(Duration::from_millis(20), model.generate(&ask("hi"))).await;
    assert!(cancelled.is_err());
    assert!(started.elapsed() < Duration::from_millis(1000), "dropping the call stops the wait");
}

#[tokio::test]
async fn error_fails_upstream() {
    let error = mock("mock-error").generate(&ask("hi")).await.unwrap_err();
    assert!(matches!(error, ProviderError::Upstream { status: 500, .. }), "{error:?}");
    let (events, error) = collect(mock("mock-error").stream(&ask("hi")).await).await;
    assert!(events.is_empty());
    assert!(matches!(error, Some(ProviderError::Upstream { status: 500, .. })));
}

#[tokio::test]
async fn stream_error_breaks_after_two_deltas() {
    let (events, error) = collect(mock("mock-stream-error").stream(&ask("hi")).await).await;
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|event| matches!(event, ModelEvent::TextDelta(_))));
    assert!(matches!(error, Some(ProviderError::StreamInterrupted { .. })), "{error:?}");
    let error = mock("mock-stream-error").generate(&ask("hi")).await.unwrap_err();
    assert!(matches!(error, ProviderError::StreamInterrupted { .. }));
}

#[tokio::test]
async fn streams_words_and_argument_fragments_then_finish() {
    let request = ask("say something");
    let (events, error) = collect(mock("mock-echo").stream(&request).await).await;
    assert!(error.is_none());
    assert_eq!(events.len(), 5, "four words and Finish: {events:?}");
    assert_eq!(streamed_text(&events), "You said: say something");
    assert_eq!(*finish(&events), mock("mock-echo").generate(&request).await.unwrap());

    let request = ModelRequest { tools: Arc::from(vec![search_tool()]), ..ask("q") };
    let (events, error) = collect(mock("mock-tool").stream(&request).await).await;
    assert!(error.is_none());
    let response = finish(&events);
    let fragments: Vec<(&Option<String>, &str)> = events
        .iter()
        .filter_map(|event| match event {
            ModelEvent::ToolCallDelta { index: 0, id, arguments_delta, .. } => Some((id, arguments_delta.as_str())),
            _ => None,
        })
        .collect();
    assert!(fragments.len() >= 2);
    assert_eq!(fragments[0].0.as_deref(), Some(response.tool_calls[0].id.as_str()));
    let joined: String = fragments.iter().map(|(_, fragment)| *fragment).collect();
    assert_eq!(serde_json::from_str::<Value>(&joined).unwrap(), response.tool_calls[0].arguments);
}

#[test]
fn unknown_names_list_the_known_ones() {
    let error = MockModel::new("mock-nope").unwrap_err();
    assert!(matches!(error, BuildError::UnknownMockModel { .. }));
    let message = error.to_string();
    for known in MOCK_MODELS {
        assert!(message.contains(known), "{message}");
    }
    assert!(message.contains("mock-slow-<ms>"));
}
