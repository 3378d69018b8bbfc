//! Client-side helpers shared by the test modules: an HTTP client and an SSE parser.

use std::sync::Once;

use serde_json::Value;

/// A plain-HTTP client. The workspace builds reqwest with `rustls-no-provider`, so a crypto
/// provider must be installed before any client is built, even one that never uses TLS.
pub fn client() -> reqwest::Client {
    static INSTALL_PROVIDER: Once = Once::new();
    INSTALL_PROVIDER.call_once(|| {
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder().build().unwrap()
}

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|error| panic!("event data is not JSON ({error}): {}", self.data))
    }
}

/// Parses a complete `text/event-stream` body; every event must end with a blank line.
pub fn parse_sse(body: &str) -> Vec<SseEvent> {
    assert!(body.ends_with("\n\n"), "stream does not end with a blank line: {body:?}");
    body.split("\n\n")
        .filter(|block| !block.is_empty())
        .map(|block| {
            let mut event = SseEvent { event: None, data: String::new() };
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event: ") {
                    event.event = Some(name.to_owned());
                } else if let Some(data) = line.strip_prefix("data: ") {
                    event.data.push_str(data);
                } else {
                    panic!("unexpected SSE line {line:?}");
                }
            }
            event
        })
        .collect()
}

pub fn openai_request(model: &str, user_text: &str) -> Value {
    serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": user_text}],
    })
}

pub fn anthropic_request(model: &str, user_text: &str) -> Value {
    serde_json::json!({
        "model": model,
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": user_text}],
    })
}

/// Posts an OpenAI chat-completions request.
pub async fn post_openai(mock: &glassbox_mockllm::MockLlm, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/chat/completions", mock.openai_base_url()))
        .bearer_auth("sk-test")
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Posts an Anthropic messages request with the required headers.
pub async fn post_anthropic(mock: &glassbox_mockllm::MockLlm, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/messages", mock.anthropic_base_url()))
        .header("x-api-key", "sk-ant-test")
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Reads a streamed body chunk by chunk until it ends or fails, returning what arrived and
/// whether it failed.
pub async fn read_until_error(response: reqwest::Response) -> (String, Option<reqwest::Error>) {
    use futures::StreamExt;
    let mut received = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        match chunk {
            Ok(chunk) => received.extend_from_slice(&chunk),
            Err(error) => return (String::from_utf8_lossy(&received).into_owned(), Some(error)),
        }
    }
    (String::from_utf8_lossy(&received).into_owned(), None)
}
