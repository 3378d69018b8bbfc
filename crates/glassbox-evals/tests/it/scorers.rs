//! Every built-in scorer, built from its table as a suite writes it, with a passing and a
//! failing case; plus errors, panics and timeouts of custom scorers.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use glassbox_core::{ToolCall, Usage};
use glassbox_evals::scorer::Outcome;
use glassbox_evals::{ConfiguredScorer, Score, ScoreInput, Scorer, ScorerError, ScorerSpec};
use serde_json::{Value, json};

use crate::support::input;

fn build(table: Value) -> ConfiguredScorer {
    let spec = ScorerSpec::from_json(&table, "test").unwrap();
    spec.build("test", &|_| None).unwrap()
}

async fn run(table: Value, input: &ScoreInput) -> Outcome {
    build(table).score(input, Duration::from_secs(5)).await
}

async fn assert_pass(table: Value, input: &ScoreInput) {
    let outcome = run(table.clone(), input).await;
    assert!(outcome.passed, "{table} should pass: {outcome:?}");
    assert_eq!(outcome.value, Some(1.0), "{table}: {outcome:?}");
}

async fn assert_fail(table: Value, input: &ScoreInput) -> Outcome {
    let outcome = run(table.clone(), input).await;
    assert!(!outcome.passed, "{table} should fail: {outcome:?}");
    outcome
}

#[tokio::test]
async fn exact_match_text_and_json() {
    let mut case = input("Paris");
    case.expected = Some(json!("Paris"));
    assert_pass(json!({ "type": "exact_match" }), &case).await;
    assert_pass(json!({ "type": "exact_match", "expected": "paris", "ignore_case": true }), &case).await;
    let outcome = assert_fail(json!({ "type": "exact_match", "expected": "Lyon" }), &case).await;
    assert_eq!(outcome.reason, "the answer differs from the expected text:\n- Lyon\n+ Paris\n");

    let mut card = input("{\"name\": \"Ada\", \"email\": null}");
    card.expected = Some(json!({ "email": null, "name": "Ada" }));
    assert_pass(json!({ "type": "exact_match" }), &card).await;
    card.expected = Some(json!({ "email": null, "name": "Grace" }));
    let outcome = assert_fail(json!({ "type": "exact_match" }), &card).await;
    assert!(outcome.reason.contains("-   \"name\": \"Grace\"") && outcome.reason.contains("+   \"name\": \"Ada\""), "{}", outcome.reason);

    // No expected output anywhere: an error, never a pass.
    let outcome = run(json!({ "type": "exact_match" }), &input("x")).await;
    assert!(!outcome.passed && outcome.error.is_some() && outcome.value.is_none(), "{outcome:?}");
}

#[tokio::test]
async fn contains_and_not_contains_with_case_option() {
    let case = input("The capital of France is Paris.");
    assert_pass(json!({ "type": "contains", "value": "Paris" }), &case).await;
    assert_pass(json!({ "type": "contains", "values": ["capital", "PARIS"], "ignore_case": true }), &case).await;
    assert_fail(json!({ "type": "contains", "value": "PARIS" }), &case).await;
    let half = assert_fail(json!({ "type": "contains", "values": ["Paris", "Lyon"] }), &case).await;
    assert_eq!(half.value, Some(0.5));
    assert!(half.reason.contains("lacks [\"Lyon\"]"), "{}", half.reason);

    assert_pass(json!({ "type": "not_contains", "values": ["Berlin", "error"] }), &case).await;
    assert_pass(json!({ "type": "not_contains", "value": "paris" }), &case).await;
    let outcome = assert_fail(json!({ "type": "not_contains", "value": "paris", "ignore_case": true }), &case).await;
    assert!(outcome.reason.contains("contains [\"paris\"]"), "{}", outcome.reason);
}

#[tokio::test]
async fn regex() {
    let case = input("Order #12345 shipped");
    assert_pass(json!({ "type": "regex", "pattern": "#\\d{5}\\b" }), &case).await;
    assert_fail(json!({ "type": "regex", "pattern": "^shipped" }), &case).await;
    let bad = ScorerSpec::from_json(&json!({ "type": "regex", "pattern": "(" }), "#1").unwrap().build("#1", &|_| None);
    assert!(bad.unwrap_err().to_string().contains("invalid `pattern`"));
}

#[tokio::test]
async fn valid_json_and_json_schema() {
    let schema = json!({ "type": "object", "properties": { "age": { "type": "integer" } }, "required": ["age"] });
    let good = input("```json\n{\"age\": 36}\n```");
    assert_pass(json!({ "type": "valid_json" }), &good).await;
    assert_pass(json!({ "type": "json_schema", "schema": schema }), &good).await;
    assert_fail(json!({ "type": "valid_json" }), &input("age: 36")).await;
    let outcome = assert_fail(json!({ "type": "json_schema", "schema": schema }), &input("{\"age\": \"old\"}")).await;
    assert!(outcome.reason.contains("/age"), "{}", outcome.reason);
    assert_fail(json!({ "type": "json_schema", "schema": schema }), &input("not json")).await;
}

#[tokio::test]
async fn similarity_is_normalized_levenshtein() {
    let mut case = input("kitten");
    case.expected = Some(json!("sitting"));
    let outcome = run(json!({ "type": "similarity" }), &case).await;
    let expected = 1.0 - 3.0 / 7.0;
    assert!((outcome.value.unwrap() - expected).abs() < 1e-6, "{outcome:?}");
    assert!(!outcome.passed, "default threshold 0.8");
    let lenient = run(json!({ "type": "similarity", "threshold": 0.5 }), &case).await;
    assert!(lenient.passed);
    case.expected = Some(json!("kitten"));
    assert_pass(json!({ "type": "similarity" }), &case).await;
}

#[tokio::test]
async fn tool_called_with_arguments() {
    let mut case = input("It is 21 degrees");
    case.tool_calls = vec![ToolCall { id: "c1".into(), name: "get_weather".into(), arguments: json!({ "latitude": 48.85, "longitude": 2.35, "units": "c" }) }];
    assert_pass(json!({ "type": "tool_called", "tool": "get_weather" }), &case).await;
    assert_pass(json!({ "type": "tool_called", "tool": "get_weather", "arguments": { "latitude": 48.85, "longitude": 2.35 } }), &case).await;
    let wrong_args = assert_fail(json!({ "type": "tool_called", "tool": "get_weather", "arguments": { "latitude": 0 } }), &case).await;
    assert_eq!(wrong_args.value, Some(0.5));
    let not_called = assert_fail(json!({ "type": "tool_called", "tool": "search" }), &case).await;
    assert_eq!(not_called.value, Some(0.0));
    assert!(not_called.reason.contains("`search` was not called"), "{}", not_called.reason);
    // From the case's metadata.
    case.metadata = json!({ "expected_tool": "get_weather", "expected_arguments": { "units": "c" } });
    assert_pass(json!({ "type": "tool_called" }), &case).await;
}

#[tokio::test]
async fn latency_cost_and_tokens_limits() {
    let mut case = input("ok");
    case.latency = Duration::from_millis(120);
    case.cost_usd = Some(0.002);
    case.usage = Usage { input_tokens: 300, output_tokens: 50, ..Usage::default() };
    assert_pass(json!({ "type": "latency", "max_ms": 200 }), &case).await;
    assert_fail(json!({ "type": "latency", "max_ms": 100 }), &case).await;
    assert_pass(json!({ "type": "cost", "max_usd": 0.01 }), &case).await;
    assert_fail(json!({ "type": "cost", "max_usd": 0.001 }), &case).await;
    assert_pass(json!({ "type": "tokens", "max_tokens": 350 }), &case).await;
    let over = assert_fail(json!({ "type": "tokens", "max_tokens": 349 }), &case).await;
    assert_eq!(over.reason, "350 tokens, over the 349 limit");
    case.cost_usd = None;
    let unknown = assert_fail(json!({ "type": "cost", "max_usd": 1.0 }), &case).await;
    assert!(unknown.reason.contains("unknown"), "{}", unknown.reason);
}

#[tokio::test]
async fn no_pii() {
    assert_pass(json!({ "type": "no_pii" }), &input("Your order ships tomorrow.")).await;
    let outcome = assert_fail(json!({ "type": "no_pii" }), &input("Write to jane.doe@example.com or call +1 415 555 0100")).await;
    assert!(outcome.reason.contains("[EMAIL]"), "{}", outcome.reason);
    assert!(!outcome.reason.contains("jane.doe"), "the reason must not copy the personal data: {}", outcome.reason);
}

#[test]
fn bad_tables_are_named() {
    let error = ScorerSpec::from_json(&json!({ "type": "contains", "valeu": "x" }), "#2").unwrap_err();
    assert!(error.to_string().starts_with("scorer #2: unknown field `valeu`"), "{error}");
    let error = ScorerSpec::from_json(&json!({ "value": "x" }), "#1").unwrap_err();
    assert!(error.to_string().contains("missing `type`"), "{error}");
    let error = ScorerSpec::from_json(&json!({ "type": "no_pii", "threshold": 2 }), "#1").unwrap_err();
    assert!(error.to_string().contains("`threshold` must be a number from 0 to 1"), "{error}");
    let spec = ScorerSpec::from_json(&json!({ "type": "llm_judge", "rubric": "r", "model": "nope" }), "judge").unwrap();
    assert!(spec.build("judge", &|_| None).unwrap_err().to_string().contains("unknown judge model \"nope\""));
}

struct Custom(fn() -> Result<Score, ScorerError>, Duration);

#[async_trait]
impl Scorer for Custom {
    fn kind(&self) -> &str {
        "custom"
    }
    async fn score(&self, _input: &ScoreInput) -> Result<Score, ScorerError> {
        tokio::time::sleep(self.1).await;
        (self.0)()
    }
}

#[tokio::test]
async fn custom_scorers_errors_panics_and_timeouts() {
    let case = input("x");
    let good = ConfiguredScorer::new("mine", 0.7, Arc::new(Custom(|| Ok(Score::new(0.75, "fine")), Duration::ZERO)));
    let outcome = good.score(&case, Duration::from_secs(1)).await;
    assert!(outcome.passed && outcome.value == Some(0.75));
    let clamped = ConfiguredScorer::new("mine", 1.0, Arc::new(Custom(|| Ok(Score::new(7.0, "too much")), Duration::ZERO)));
    assert_eq!(clamped.score(&case, Duration::from_secs(1)).await.value, Some(1.0));

    let panicking = ConfiguredScorer::new("boom", 0.0, Arc::new(Custom(|| panic!("scorer exploded"), Duration::ZERO)));
    let outcome = panicking.score(&case, Duration::from_secs(1)).await;
    assert!(!outcome.passed && outcome.value.is_none());
    assert_eq!(outcome.error.as_deref(), Some("scorer panicked: scorer exploded"));

    let slow = ConfiguredScorer::new("slow", 0.0, Arc::new(Custom(|| Ok(Score::pass("late")), Duration::from_secs(60))));
    let outcome = slow.score(&case, Duration::from_millis(20)).await;
    assert!(!outcome.passed);
    assert_eq!(outcome.error.as_deref(), Some("scorer timed out after 20ms"));
}
