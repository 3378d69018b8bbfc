//! The run called an expected tool, optionally with expected arguments.

use async_trait::async_trait;
use serde_json::Value;

use crate::scorer::{Score, ScoreInput, Scorer, ScorerError};

/// The run called `tool`. With `arguments`, a call must carry every given key with an equal
/// value (extra arguments are allowed): 1 for such a call, 0.5 when the tool was called only
/// with other arguments, 0 when it was not called. Without `tool`, the case's metadata
/// `expected_tool` (and `expected_arguments`) is used.
#[derive(Debug, Clone)]
pub struct ToolCalled {
    pub tool: Option<String>,
    pub arguments: Option<Value>,
}

/// Whether `actual` holds every key of `expected` with an equal value, recursively for objects.
pub(crate) fn json_subset(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(expected), Value::Object(actual)) => expected
            .iter()
            .all(|(key, value)| actual.get(key).is_some_and(|actual| json_subset(value, actual))),
        (Value::Number(expected), Value::Number(actual)) => match (expected.as_f64(), actual.as_f64()) {
            (Some(expected), Some(actual)) => (expected - actual).abs() < 1e-9,
            _ => expected == actual,
        },
        _ => expected == actual,
    }
}

#[async_trait]
impl Scorer for ToolCalled {
    fn kind(&self) -> &str {
        "tool_called"
    }
    async fn score(&self, input: &ScoreInput) -> Result<Score, ScorerError> {
        let tool = match (&self.tool, input.metadata.get("expected_tool").and_then(Value::as_str)) {
            (Some(tool), _) => tool.clone(),
            (None, Some(tool)) => tool.to_owned(),
            (None, None) => {
                return Err(ScorerError::MissingInput(String::from(
                    "tool_called needs `tool`, or `expected_tool` in the case's metadata",
                )));
            }
        };
        let arguments = self.arguments.as_ref().or_else(|| input.metadata.get("expected_arguments"));
        let calls: Vec<_> = input.tool_calls.iter().filter(|call| call.name == tool).collect();
        let called: Vec<String> = input.tool_calls.iter().map(|call| call.name.clone()).collect();
        if calls.is_empty() {
            return Ok(Score::fail(format!("`{tool}` was not called (calls: {called:?})")));
        }
        let Some(arguments) = arguments else {
            return Ok(Score::pass(format!("`{tool}` was called")));
        };
        if calls.iter().any(|call| json_subset(arguments, &call.arguments)) {
            Ok(Score::pass(format!("`{tool}` was called with {arguments}")))
        } else {
            let seen: Vec<String> = calls.iter().map(|call| call.arguments.to_string()).collect();
            Ok(Score::new(0.5, format!("`{tool}` was called, but with {} instead of {arguments}", seen.join(", "))))
        }
    }
}
