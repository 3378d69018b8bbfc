//! A `LanguageModel` that answers from a script and records every request it gets.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use glassbox_core::{
    FinishReason, LanguageModel, ModelEvent, ModelRequest, ModelResponse, ModelStream, ProviderError, ToolCall, Usage,
};
use serde_json::Value;

#[derive(Default)]
pub struct ScriptedModel {
    replies: Mutex<VecDeque<Result<ModelResponse, ProviderError>>>,
    pub requests: Mutex<Vec<ModelRequest>>,
}

pub fn text(text: &str) -> ModelResponse {
    ModelResponse {
        model: "scripted".into(),
        text: text.into(),
        tool_calls: Vec::new(),
        usage: Usage { input_tokens: 10, output_tokens: 5, cached_input_tokens: 2, reasoning_tokens: 1 },
        finish_reason: FinishReason::Stop,
    }
}

pub fn tool_calls(calls: &[(&str, &str, Value)]) -> ModelResponse {
    ModelResponse {
        model: "scripted".into(),
        text: String::new(),
        tool_calls: calls
            .iter()
            .map(|(id, name, arguments)| ToolCall { id: (*id).into(), name: (*name).into(), arguments: arguments.clone() })
            .collect(),
        usage: Usage { input_tokens: 20, output_tokens: 7, cached_input_tokens: 0, reasoning_tokens: 0 },
        finish_reason: FinishReason::ToolCalls,
    }
}

impl ScriptedModel {
    pub fn new(replies: impl IntoIterator<Item = ModelResponse>) -> Arc<Self> {
        Arc::new(Self { replies: Mutex::new(replies.into_iter().map(Ok).collect()), requests: Mutex::default() })
    }

    pub fn failing(error: ProviderError) -> Arc<Self> {
        Arc::new(Self { replies: Mutex::new(VecDeque::from([Err(error)])), requests: Mutex::default() })
    }

    pub fn requests(&self) -> Vec<ModelRequest> {
        self.requests.lock().unwrap().clone()
    }

    fn next(&self, request: &ModelRequest) -> Result<ModelResponse, ProviderError> {
        self.requests.lock().unwrap().push(request.clone());
        self.replies.lock().unwrap().pop_front().unwrap_or_else(|| panic!("script ran out of replies"))
    }
}

#[async_trait]
impl LanguageModel for ScriptedModel {
    fn provider(&self) -> &str {
        "scripted"
    }
    fn model_name(&self) -> &str {
        "scripted-1"
    }
    async fn generate(&self, request: &ModelRequest) -> Result<ModelResponse, ProviderError> {
        self.next(request)
    }
    async fn stream(&self, request: &ModelRequest) -> Result<ModelStream, ProviderError> {
        let response = self.next(request)?;
        let mut events: Vec<Result<ModelEvent, ProviderError>> = response
            .text
            .split_inclusive(' ')
            .map(|word| Ok(ModelEvent::TextDelta(word.to_owned())))
            .collect();
        events.push(Ok(ModelEvent::Finish(response)));
        Ok(Box::pin(futures::stream::iter(events)))
    }
}
