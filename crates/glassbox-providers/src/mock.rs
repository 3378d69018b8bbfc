//! The deterministic in-process `mock` provider: same input, same answer, no network and no API
//! key. Its behaviour is chosen by the model name, so a config or a test picks a scenario by
//! naming it:
//!
//! | model | behaviour |
//! |---|---|
//! | `mock-text` | a fixed sentence saying it is Glassbox's mock model |
//! | `mock-echo` | `You said: <last user text>` |
//! | `mock-tool` | calls the first offered tool with arguments built from its schema; once tool results follow the last user message, summarizes them |
//! | `mock-json` | a JSON value satisfying the request's output schema (`{"answer": ..}` without one) |
//! | `mock-slow`, `mock-slow-<ms>` | waits (2000 ms by default), then answers like `mock-text` |
//! | `mock-error` | fails with an upstream 500 |
//! | `mock-stream-error` | streams two text deltas, then the stream is interrupted |
//!
//! Usage is deterministic too: a quarter of the characters, rounded up, at least 1.

use std::time::Duration;

use async_trait::async_trait;
use glassbox_core::{
    FinishReason, LanguageModel, Message, ModelEvent, ModelRequest, ModelResponse, ModelStream, ProviderError,
    ToolCall, Usage,
};

use crate::BuildError;
use crate::schema_instance::{self, Properties};

/// The mock models by name (besides `mock-slow-<ms>`, `mock-slow` with a delay).
pub const MOCK_MODELS: &[&str] =
    &["mock-text", "mock-echo", "mock-tool", "mock-json", "mock-slow", "mock-error", "mock-stream-error"];

const PROVIDER: &str = "mock";
const DEFAULT_SLOW_DELAY: Duration = Duration::from_millis(2000);
const MOCK_TEXT: &str = "Hello! I am Glassbox's mock model: no API key is configured, so this fixed answer \
                         stands in for a real language model.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Text,
    Echo,
    Tool,
    Json,
    Slow(Duration),
    Error,
    StreamError,
}

/// The deterministic mock provider.
#[derive(Debug, Clone)]
pub struct MockModel {
    model: String,
    behaviour: Behaviour,
}

impl MockModel {
    pub fn new(model: &str) -> Result<Self, BuildError> {
        let behaviour = match model {
            "mock-text" => Behaviour::Text,
            "mock-echo" => Behaviour::Echo,
            "mock-tool" => Behaviour::Tool,
            "mock-json" => Behaviour::Json,
            "mock-slow" => Behaviour::Slow(DEFAULT_SLOW_DELAY),
            "mock-error" => Behaviour::Error,
            "mock-stream-error" => Behaviour::StreamError,
            other => match other.strip_prefix("mock-slow-").and_then(|millis| millis.parse::<u64>().ok()) {
                Some(millis) => Behaviour::Slow(Duration::from_millis(millis)),
                None => {
                    return Err(BuildError::UnknownMockModel {
                        model: model.to_owned(),
                        known: format!("{}, mock-slow-<ms>", MOCK_MODELS.join(", ")),
                    });
                }
            },
        };
        Ok(Self { model: model.to_owned(), behaviour })
    }

    /// The answer, computed without waiting; `Err` for the failing behaviours.
    fn answer(&self, request: &ModelRequest) -> Result<ModelResponse, ProviderError> {
        let last_user_text = last_user_text(&request.messages);
        let answer = match self.behaviour {
            Behaviour::Text | Behaviour::Slow(_) => Answer::Text(MOCK_TEXT.to_owned()),
            Behaviour::Echo => Answer::Text(format!("You said: {last_user_text}")),
            Behaviour::Tool => tool_answer(request, last_user_text),
            Behaviour::Json => {
                let value = match &request.output_schema {
                    Some(schema) => schema_instance::instance(&schema.schema, last_user_text, Properties::All),
                    None => serde_json::json!({ "answer": last_user_text }),
                };
                Answer::Text(value.to_string())
            }
            Behaviour::Error => return Err(injected_upstream_error()),
            Behaviour::StreamError => return Err(injected_interruption()),
        };
        let input_chars: usize = request.messages.iter().map(message_chars).sum();
        let (text, tool_calls, output_chars, finish_reason) = match answer {
            Answer::Text(text) => {
                let chars = text.chars().count();
                (text, Vec::new(), chars, FinishReason::Stop)
            }
            Answer::ToolCall(call) => {
                let chars = call.name.chars().count() + call.arguments.to_string().chars().count();
                (String::new(), vec![call], chars, FinishReason::ToolCalls)
            }
        };
        Ok(ModelResponse {
            model: self.model.clone(),
            text,
            tool_calls,
            usage: Usage {
                input_tokens: quarter_tokens(input_chars),
                output_tokens: quarter_tokens(output_chars),
                cached_input_tokens: 0,
                reasoning_tokens: 0,
            },
            finish_reason,
        })
    }
}

enum Answer {
    Text(String),
    ToolCall(ToolCall),
}

fn tool_answer(request: &ModelRequest, last_user_text: &str) -> Answer {
    // Tool results since the last user message answer this turn's call.
    let turn_start = request.messages.iter().rposition(|message| matches!(message, Message::User { .. }));
    let this_turn = &request.messages[turn_start.map_or(0, |idx| idx + 1)..];
    let results: Vec<String> = this_turn
        .iter()
        .filter_map(|message| match message {
            Message::Tool { name, content, is_error: false, .. } => Some(format!("{name} returned {content}")),
            Message::Tool { name, content, is_error: true, .. } => Some(format!("{name} failed: {content}")),
            _ => None,
        })
        .collect();
    if !results.is_empty() {
        return Answer::Text(results.join("; "));
    }
    let Some(tool) = request.tools.first() else {
        return Answer::Text(format!("No tools were offered, so I answer directly. You said: {last_user_text}"));
    };
    // Distinct per step of a run, the same for the same conversation.
    let step = request.messages.iter().filter(|message| matches!(message, Message::Assistant { .. })).count();
    Answer::ToolCall(ToolCall {
        id: format!("call_mock_{}", step + 1),
        name: tool.name.clone(),
        arguments: schema_instance::instance(&tool.parameters, last_user_text, Properties::Required),
    })
}

fn last_user_text(messages: &[Message]) -> &str {
    messages
        .iter()
        .rev()
        .find_map(|message| match message {
            Message::User { text } => Some(text.as_str()),
            _ => None,
        })
        .unwrap_or("")
}

fn message_chars(message: &Message) -> usize {
    match message {
        Message::System { text } | Message::User { text } => text.chars().count(),
        Message::Assistant { text, tool_calls } => {
            text.chars().count()
                + tool_calls
                    .iter()
                    .map(|call| call.name.chars().count() + call.arguments.to_string().chars().count())
                    .sum::<usize>()
        }
        Message::Tool { content, .. } => content.chars().count(),
    }
}

/// `ceil(chars / 4)`, at least 1: roughly a tokenizer's count, and never zero.
fn quarter_tokens(chars: usize) -> u64 {
    (chars.div_ceil(4).max(1)) as u64
}

fn injected_upstream_error() -> ProviderError {
    ProviderError::Upstream { status: 500, message: "mock-error: injected upstream failure".to_owned() }
}

fn injected_interruption() -> ProviderError {
    ProviderError::StreamInterrupted { source: Some("mock-stream-error: injected stream interruption".into()) }
}

/// Text as word deltas (each word with its following whitespace), tool calls as an id/name
/// delta with the first half of the arguments and a second delta with the rest, then `Finish`.
fn stream_events(response: ModelResponse) -> Vec<ModelEvent> {
    let mut events: Vec<ModelEvent> =
        response.text.split_inclusive(char::is_whitespace).map(|word| ModelEvent::TextDelta(word.to_owned())).collect();
    for (call_idx, call) in response.tool_calls.iter().enumerate() {
        let arguments = call.arguments.to_string();
        let half = arguments.char_indices().nth(arguments.chars().count() / 2).map_or(arguments.len(), |(cut, _)| cut);
        let (first, rest) = arguments.split_at(half);
        events.push(ModelEvent::ToolCallDelta {
            index: call_idx,
            id: Some(call.id.clone()),
            name: Some(call.name.clone()),
            arguments_delta: first.to_owned(),
        });
        events.push(ModelEvent::ToolCallDelta {
            index: call_idx,
            id: None,
            name: None,
            arguments_delta: rest.to_owned(),
        });
    }
    events.push(ModelEvent::Finish(response));
    events
}

#[async_trait]
impl LanguageModel for MockModel {
    fn provider(&self) -> &str {
        PROVIDER
    }

    fn model_name(&self) -> &str {
        &self.model
    }

    async fn generate(&self, request: &ModelRequest) -> Result<ModelResponse, ProviderError> {
        if let Behaviour::Slow(delay) = self.behaviour {
            // Dropping the future cancels the wait.
            tokio::time::sleep(delay).await;
        }
        self.answer(request)
    }

    async fn stream(&self, request: &ModelRequest) -> Result<ModelStream, ProviderError> {
        match self.behaviour {
            Behaviour::StreamError => {
                let events = vec![
                    Ok(ModelEvent::TextDelta("This stream ".to_owned())),
                    Ok(ModelEvent::TextDelta("will break ".to_owned())),
                    Err(injected_interruption()),
                ];
                return Ok(Box::pin(futures::stream::iter(events)));
            }
            Behaviour::Slow(delay) => tokio::time::sleep(delay).await,
            _ => {}
        }
        let response = self.answer(request)?;
        Ok(Box::pin(futures::stream::iter(stream_events(response).into_iter().map(Ok))))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn quarter_tokens_rounds_up_with_a_floor_of_one() {
        assert_eq!(quarter_tokens(0), 1);
        assert_eq!(quarter_tokens(4), 1);
        assert_eq!(quarter_tokens(5), 2);
    }

    #[test]
    fn slow_models_parse_their_delay() {
        assert_eq!(MockModel::new("mock-slow-50").unwrap().behaviour, Behaviour::Slow(Duration::from_millis(50)));
        assert_eq!(MockModel::new("mock-slow").unwrap().behaviour, Behaviour::Slow(DEFAULT_SLOW_DELAY));
        assert!(MockModel::new("mock-slow-abc").is_err());
    }

    #[test]
    fn every_listed_model_builds() {
        for name in MOCK_MODELS {
            assert_eq!(MockModel::new(name).unwrap().model_name(), *name);
        }
    }
}
