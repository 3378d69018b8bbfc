//! The common pattern: your own axum app, your own routes, and a Glassbox agent called from
//! your handlers — plus, if you want them, Glassbox's own routes nested under a prefix.
//!
//! `POST /api/assistant` takes `{"message": "..."}` and answers `{"reply": "..."}`;
//! `POST /api/assistant/stream` streams the reply as plain-text server-sent events.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use futures::{Stream, StreamExt};
use glassbox_core::{Agent, AgentChunk, GenerateOptions, LanguageModel, Message};
use glassbox_providers::{DEFAULT_OPENAI_BASE_URL, HttpModelSettings, MockModel, OpenAiModel};
use serde::{Deserialize, Serialize};

/// The agent: OpenAI when `OPENAI_API_KEY` is set, the deterministic mock otherwise.
pub fn build_agent(openai_api_key: Option<String>) -> anyhow::Result<Agent> {
    let model: Arc<dyn LanguageModel> = match openai_api_key {
        Some(key) => Arc::new(OpenAiModel::new(HttpModelSettings {
            model: "gpt-4o-mini".into(),
            base_url: DEFAULT_OPENAI_BASE_URL.into(),
            api_key: Some(key),
            connect_timeout: std::time::Duration::from_secs(5),
            first_byte_timeout: std::time::Duration::from_secs(60),
            total_timeout: std::time::Duration::from_secs(120),
            max_retries: 2,
            headers: Vec::new(),
        })?),
        None => Arc::new(MockModel::new("mock-echo")?),
    };
    Ok(Agent::builder("assistant", model)
        .name("Support assistant")
        .instructions("You answer customer questions about our product in two sentences.")
        .build()?)
}

#[derive(Deserialize)]
pub struct AssistantRequest {
    pub message: String,
}

#[derive(Serialize)]
pub struct AssistantReply {
    pub reply: String,
}

/// Your app: your routes, plus Glassbox's REST API under `/glassbox`.
pub fn app(agent: Agent) -> Router {
    let glassbox = glassbox_server::router(
        glassbox_server::AgentRegistry::new([agent.clone()]),
        glassbox_server::HttpOptions::default(),
    );
    Router::new()
        .route("/api/assistant", post(assistant))
        .route("/api/assistant/stream", post(assistant_stream))
        .with_state(agent)
        .nest("/glassbox", glassbox)
}

async fn assistant(State(agent): State<Agent>, Json(request): Json<AssistantRequest>) -> Response {
    match agent.generate(vec![Message::user(request.message)], GenerateOptions::default()).await {
        Ok(output) => Json(AssistantReply { reply: output.text }).into_response(),
        Err(error) => {
            tracing::warn!(%error, "assistant failed");
            (StatusCode::BAD_GATEWAY, Json(serde_json::json!({ "error": error.to_string() }))).into_response()
        }
    }
}

async fn assistant_stream(
    State(agent): State<Agent>,
    Json(request): Json<AssistantRequest>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let chunks = agent.stream(vec![Message::user(request.message)], GenerateOptions::default());
    Sse::new(chunks.filter_map(|chunk| async move {
        match chunk {
            Ok(AgentChunk::TextDelta(text)) => Some(Ok(Event::default().data(text))),
            Ok(AgentChunk::Finish(_)) => Some(Ok(Event::default().event("done").data(""))),
            Ok(_) => None,
            Err(error) => Some(Ok(Event::default().event("error").data(error.to_string()))),
        }
    }))
}
