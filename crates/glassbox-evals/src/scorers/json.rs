//! Scorers on the answer as JSON: it parses, and it matches a JSON schema.

use async_trait::async_trait;

use crate::scorer::{Score, ScoreInput, Scorer, ScorerError};
use crate::scorers::text::clip;

/// The answer is JSON (a Markdown fence around it is tolerated).
#[derive(Debug, Clone, Default)]
pub struct ValidJson;

#[async_trait]
impl Scorer for ValidJson {
    fn kind(&self) -> &str {
        "valid_json"
    }
    async fn score(&self, input: &ScoreInput) -> Result<Score, ScorerError> {
        Ok(match input.output_json() {
            Ok(_) => Score::pass("the answer is valid JSON"),
            Err(error) => Score::fail(format!("the answer is not JSON ({error}); answer: {:?}", clip(&input.output))),
        })
    }
}

/// The answer is JSON that validates against a schema.
pub struct JsonSchema {
    pub validator: jsonschema::Validator,
}

#[async_trait]
impl Scorer for JsonSchema {
    fn kind(&self) -> &str {
        "json_schema"
    }
    async fn score(&self, input: &ScoreInput) -> Result<Score, ScorerError> {
        let value = match input.output_json() {
            Ok(value) => value,
            Err(error) => {
                return Ok(Score::fail(format!("the answer is not JSON ({error}); answer: {:?}", clip(&input.output))));
            }
        };
        let problems: Vec<String> = self
            .validator
            .iter_errors(&value)
            .take(5)
            .map(|error| format!("{error} at `{}`", error.instance_path()))
            .collect();
        Ok(Score::from_bool(
            problems.is_empty(),
            "the answer matches the schema",
            format!("the answer does not match the schema: {}", problems.join("; ")),
        ))
    }
}
