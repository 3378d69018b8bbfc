//! LLM-as-judge: a configured model grades the answer against a rubric and answers a
//! structured verdict `{score, reason}`.
//!
//! The verdict is requested with an output schema (OpenAI's `response_format`, the mock's
//! schema-shaped answers), then parsed and checked here as well: a judge that answers
//! something else is a scorer error, never a silent pass.

use std::sync::Arc;

use async_trait::async_trait;
use glassbox_core::{LanguageModel, Message, ModelRequest, OutputSchema};
use serde_json::{Value, json};

use crate::scorer::{Score, ScoreInput, Scorer, ScorerError, strip_code_fence};
use crate::scorers::text::clip;

pub struct LlmJudge {
    pub rubric: String,
    pub model: Arc<dyn LanguageModel>,
}

const JUDGE_INSTRUCTIONS: &str = "You are an impartial evaluator. Grade the assistant's answer against the \
rubric. Reply with only a JSON object {\"score\": <number from 0 to 1>, \"reason\": <one sentence>}, where 1 \
means the rubric is fully met and 0 means it is not met at all.";

fn verdict_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "score": { "type": "number", "minimum": 0, "maximum": 1 },
            "reason": { "type": "string" }
        },
        "required": ["score", "reason"],
        "additionalProperties": false
    })
}

impl LlmJudge {
    fn request(&self, input: &ScoreInput) -> ModelRequest {
        let mut prompt = format!("Rubric:\n{}\n\nUser input:\n{}\n\nAssistant answer:\n{}\n", self.rubric, input.input, input.output);
        if let Some(expected) = &input.expected {
            let expected = match expected {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            prompt.push_str(&format!("\nReference answer:\n{expected}\n"));
        }
        ModelRequest {
            messages: vec![Message::system(JUDGE_INSTRUCTIONS), Message::user(prompt)],
            temperature: Some(0.0),
            output_schema: Some(OutputSchema { name: String::from("judge_verdict"), schema: verdict_schema() }),
            ..ModelRequest::default()
        }
    }
}

#[async_trait]
impl Scorer for LlmJudge {
    fn kind(&self) -> &str {
        "llm_judge"
    }
    async fn score(&self, input: &ScoreInput) -> Result<Score, ScorerError> {
        let response = self.model.generate(&self.request(input)).await.map_err(|error| ScorerError::Judge {
            message: format!("{} call failed", self.model.model_name()),
            source: Some(Box::new(error)),
        })?;
        parse_verdict(&response.text)
    }
}

/// Parses `{score, reason}`; a score outside `[0, 1]` or a missing field is an error.
pub(crate) fn parse_verdict(text: &str) -> Result<Score, ScorerError> {
    let unusable = |why: String| ScorerError::Judge { message: format!("{why}; the judge answered {:?}", clip(text)), source: None };
    let value: Value = serde_json::from_str(strip_code_fence(text.trim()))
        .map_err(|error| unusable(format!("the verdict is not JSON ({error})")))?;
    let score = value
        .get("score")
        .and_then(Value::as_f64)
        .ok_or_else(|| unusable(String::from("the verdict has no numeric `score`")))?;
    if !(0.0..=1.0).contains(&score) {
        return Err(unusable(format!("the verdict's score {score} is outside [0, 1]")));
    }
    let reason = value
        .get("reason")
        .and_then(Value::as_str)
        .ok_or_else(|| unusable(String::from("the verdict has no string `reason`")))?;
    Ok(Score::new(score, format!("judge: {reason}")))
}
