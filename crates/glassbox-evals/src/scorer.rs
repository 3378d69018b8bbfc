//! The scorer interface: what a scorer sees of one run, and what it answers.
//!
//! A scorer turns one run (the input, the answer, the tool calls, usage, latency, cost and the
//! case's expected output) into a [`Score`]: a value in `[0, 1]` and a reason. Whether that
//! passes is decided outside the scorer, against the threshold configured with it
//! ([`ConfiguredScorer`]), so one scorer implementation serves strict and lenient suites.
//! Library users write their own scorers by implementing [`Scorer`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use glassbox_core::{ToolCall, Usage};
use serde_json::Value;

/// Everything a scorer may look at for one run. Owned, so online evals can score after the
/// request that produced it is gone.
#[derive(Debug, Clone, Default)]
pub struct ScoreInput {
    /// The last user message of the conversation.
    pub input: String,
    /// The final text of the answer.
    pub output: String,
    /// The parsed answer, when the run had an output schema.
    pub object: Option<Value>,
    /// The dataset's expected output (a string or any JSON value); `None` online.
    pub expected: Option<Value>,
    /// Every tool call of the run, in order.
    pub tool_calls: Vec<ToolCall>,
    pub usage: Usage,
    pub latency: Duration,
    /// US dollars; `None` when the model's price is unknown.
    pub cost_usd: Option<f64>,
    /// The dataset row's metadata (`Value::Null` when it has none).
    pub metadata: Value,
}

impl ScoreInput {
    /// The answer as JSON: the parsed object when there is one, else the text parsed as JSON.
    pub fn output_json(&self) -> Result<Value, serde_json::Error> {
        match &self.object {
            Some(object) => Ok(object.clone()),
            None => serde_json::from_str(strip_code_fence(self.output.trim())),
        }
    }
}

/// Models often wrap JSON in a Markdown fence; the agent loop tolerates it, so scorers do too.
pub(crate) use glassbox_core::agent::strip_code_fence;

/// A scorer's verdict on one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// In `[0, 1]`; values outside are clamped by [`ConfiguredScorer::score`].
    pub value: f64,
    /// Why, in a sentence (or a diff) a person can act on.
    pub reason: String,
}

impl Score {
    pub fn new(value: f64, reason: impl Into<String>) -> Self {
        Self { value, reason: reason.into() }
    }
    pub fn pass(reason: impl Into<String>) -> Self {
        Self::new(1.0, reason)
    }
    pub fn fail(reason: impl Into<String>) -> Self {
        Self::new(0.0, reason)
    }
    pub fn from_bool(passed: bool, pass_reason: impl Into<String>, fail_reason: impl Into<String>) -> Self {
        if passed { Self::pass(pass_reason) } else { Self::fail(fail_reason) }
    }
}

/// Why a scorer could not give a score (as opposed to giving a low one).
#[derive(Debug, thiserror::Error)]
pub enum ScorerError {
    /// The case lacks what the scorer needs (an expected output, say).
    #[error("{0}")]
    MissingInput(String),
    /// The judge model failed or answered something unusable.
    #[error("judge model failed: {message}")]
    Judge {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
    #[error("scorer panicked: {0}")]
    Panicked(String),
    #[error("scorer timed out after {0:?}")]
    TimedOut(Duration),
}

/// A scorer. Implement this for custom scorers; see the built-ins in [`crate::scorers`].
#[async_trait]
pub trait Scorer: Send + Sync {
    /// The scorer's kind (`contains`, `llm_judge`, ...), used as its default name.
    fn kind(&self) -> &str;
    async fn score(&self, input: &ScoreInput) -> Result<Score, ScorerError>;
}

/// A scorer with its name in reports and the threshold a score must reach to pass.
#[derive(Clone)]
pub struct ConfiguredScorer {
    pub name: String,
    /// A score passes when `value >= threshold`.
    pub threshold: f64,
    /// The minimum share of cases this scorer must pass for the suite's gate.
    pub min_pass_rate: Option<f64>,
    pub scorer: Arc<dyn Scorer>,
}

impl std::fmt::Debug for ConfiguredScorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfiguredScorer")
            .field("name", &self.name)
            .field("kind", &self.scorer.kind())
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

/// The outcome of one configured scorer on one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// `None` when the scorer errored.
    pub value: Option<f64>,
    pub passed: bool,
    pub reason: String,
    pub error: Option<String>,
}

impl ConfiguredScorer {
    pub fn new(name: impl Into<String>, threshold: f64, scorer: Arc<dyn Scorer>) -> Self {
        Self { name: name.into(), threshold, min_pass_rate: None, scorer }
    }

    /// Scores one run. A scorer that errors, panics or overruns `timeout` gives an errored
    /// outcome (never passing), never a panic in the caller.
    pub async fn score(&self, input: &ScoreInput, timeout: Duration) -> Outcome {
        use futures::FutureExt as _;
        let guarded = std::panic::AssertUnwindSafe(self.scorer.score(input)).catch_unwind();
        let result = match tokio::time::timeout(timeout, guarded).await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => Err(ScorerError::Panicked(panic_message(&panic))),
            Err(_) => Err(ScorerError::TimedOut(timeout)),
        };
        match result {
            Ok(score) => {
                let value = if score.value.is_nan() { 0.0 } else { score.value.clamp(0.0, 1.0) };
                Outcome { value: Some(value), passed: value >= self.threshold, reason: score.reason, error: None }
            }
            Err(error) => {
                let message = crate::error_chain(&error);
                Outcome { value: None, passed: false, reason: message.clone(), error: Some(message) }
            }
        }
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        String::from("a non-string panic payload")
    }
}
