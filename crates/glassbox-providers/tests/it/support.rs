//! Helpers: building clients against the mock LLM, collecting streams, common requests.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use glassbox_core::{
    LanguageModel, Message, ModelEvent, ModelRequest, ModelResponse, ModelStream, ProviderError, ToolSpec,
};
use glassbox_mockllm::MockLlm;
use glassbox_providers::{AnthropicModel, HttpModelSettings, OpenAiModel};
use serde_json::json;

/// Which wire format a scenario runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    OpenAi,
    Anthropic,
}

/// Short deadlines and a 1 ms backoff base, so fault tests stay fast.
pub fn settings(mock: &MockLlm, wire: Wire) -> HttpModelSettings {
    let base_url = match wire {
        Wire::OpenAi => mock.openai_base_url(),
        Wire::Anthropic => mock.anthropic_base_url(),
    };
    HttpModelSettings {
        model: "test-model".to_owned(),
        base_url,
        api_key: Some("sk-test-secret".to_owned()),
        connect_timeout: Duration::from_secs(2),
        first_byte_timeout: Duration::from_secs(5),
        total_timeout: Duration::from_secs(20),
        max_retries: 2,
        headers: vec![("x-glassbox-test".to_owned(), "yes".to_owned())],
    }
}

pub fn build(wire: Wire, settings: HttpModelSettings) -> Box<dyn LanguageModel> {
    let backoff = Duration::from_millis(1);
    match wire {
        Wire::OpenAi => Box::new(OpenAiModel::new(settings).unwrap().with_retry_backoff(backoff)),
        Wire::Anthropic => Box::new(AnthropicModel::new(settings).unwrap().with_retry_backoff(backoff)),
    }
}

pub async fn start() -> MockLlm {
    MockLlm::start().await.expect("mock llm starts")
}

pub fn model(mock: &MockLlm, wire: Wire) -> Box<dyn LanguageModel> {
    build(wire, settings(mock, wire))
}

pub fn simple_request(text: &str) -> ModelRequest {
    ModelRequest { messages: vec![Message::system("You are terse."), Message::user(text)], ..ModelRequest::default() }
}

pub fn weather_tool() -> ToolSpec {
    ToolSpec {
        name: "get_weather".to_owned(),
        description: "Current weather for a city".to_owned(),
        parameters: json!({
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city"]
        }),
    }
}

pub fn tool_request(text: &str) -> ModelRequest {
    ModelRequest { tools: Arc::from(vec![weather_tool()]), ..simple_request(text) }
}

/// All events of a stream and the error that ended it, if any: an error from `stream()`
/// itself counts as an error before any event. Checks that nothing follows an error.
pub async fn collect(started: Result<ModelStream, ProviderError>) -> (Vec<ModelEvent>, Option<ProviderError>) {
    let mut stream = match started {
        Ok(stream) => stream,
        Err(error) => return (Vec::new(), Some(error)),
    };
    let mut events = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => events.push(event),
            Err(error) => {
                assert!(stream.next().await.is_none(), "the stream must end after an error");
                return (events, Some(error));
            }
        }
    }
    (events, None)
}

/// The `Finish` response, checking that it is the last event and the only `Finish`.
pub fn finish(events: &[ModelEvent]) -> &ModelResponse {
    let n_finish = events.iter().filter(|event| matches!(event, ModelEvent::Finish(_))).count();
    assert_eq!(n_finish, 1, "exactly one Finish: {events:#?}");
    match events.last() {
        Some(ModelEvent::Finish(response)) => response,
        other => panic!("Finish must be last, got {other:?}"),
    }
}

/// The concatenated text deltas.
pub fn streamed_text(events: &[ModelEvent]) -> String {
    events
        .iter()
        .filter_map(|event| match event {
            ModelEvent::TextDelta(text) => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

/// A port on 127.0.0.1 with nothing listening.
pub async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    port
}
