//! The built-in scorers and their configuration: a scorer is written as a table with a `type`
//! (in a suite's `[[scorers]]` or an agent's online evals), `name`, `threshold` and
//! `min_pass_rate` common to all, and the type's own keys.
//!
//! | type | keys | score |
//! |---|---|---|
//! | `exact_match` | `expected?`, `ignore_case`, `trim` (default true) | 1 when equal |
//! | `contains` / `not_contains` | `value` or `values`, `ignore_case` | share of values (not) found |
//! | `regex` | `pattern` | 1 when it matches |
//! | `valid_json` | | 1 when the answer parses |
//! | `json_schema` | `schema` | 1 when it validates |
//! | `similarity` | `expected?`, `ignore_case` | normalized Levenshtein similarity |
//! | `tool_called` | `tool?`, `arguments?` | 1 called as expected, 0.5 other arguments, 0 not called |
//! | `latency` | `max_ms` | 1 within the limit |
//! | `cost` | `max_usd` | 1 within the limit |
//! | `tokens` | `max_tokens` | 1 within the limit |
//! | `no_pii` | | 1 when no personal data |
//! | `llm_judge` | `rubric`, `model` (a model id of glassbox.toml) | the judge's score |
//!
//! The default threshold is 1.0, except `similarity` (0.8) and `llm_judge` (0.5).

pub mod json;
pub mod judge;
pub mod limits;
pub mod pii;
pub mod text;
pub mod tools;

use std::sync::Arc;
use std::time::Duration;

use glassbox_core::LanguageModel;
use serde::Deserialize;
use serde_json::Value;

use crate::scorer::{ConfiguredScorer, Scorer};

/// A scorer's configuration, as written in a suite or in glassbox.toml.
#[derive(Debug, Clone, PartialEq)]
pub struct ScorerSpec {
    pub name: Option<String>,
    pub threshold: Option<f64>,
    pub min_pass_rate: Option<f64>,
    pub kind: ScorerKind,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScorerKind {
    ExactMatch {
        expected: Option<Value>,
        #[serde(default)]
        ignore_case: bool,
        #[serde(default = "yes")]
        trim: bool,
    },
    Contains {
        value: Option<String>,
        #[serde(default)]
        values: Vec<String>,
        #[serde(default)]
        ignore_case: bool,
    },
    NotContains {
        value: Option<String>,
        #[serde(default)]
        values: Vec<String>,
        #[serde(default)]
        ignore_case: bool,
    },
    Regex {
        pattern: String,
    },
    ValidJson {},
    JsonSchema {
        schema: Value,
    },
    Similarity {
        expected: Option<String>,
        #[serde(default)]
        ignore_case: bool,
    },
    ToolCalled {
        tool: Option<String>,
        arguments: Option<Value>,
    },
    Latency {
        max_ms: u64,
    },
    Cost {
        max_usd: f64,
    },
    Tokens {
        max_tokens: u64,
    },
    NoPii {},
    LlmJudge {
        rubric: String,
        model: String,
    },
}

fn yes() -> bool {
    true
}

/// A scorer table that cannot be used, with what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("scorer {position}: {message}")]
pub struct SpecError {
    /// `"contains"` or `#3`: how the message names the scorer.
    pub position: String,
    pub message: String,
}

impl ScorerSpec {
    /// Reads one scorer table. `position` names it in errors.
    pub fn from_json(value: &Value, position: &str) -> Result<Self, SpecError> {
        let error = |message: String| SpecError { position: position.to_owned(), message };
        let Value::Object(map) = value else {
            return Err(error(format!("expected a table, found {value}")));
        };
        let mut rest = map.clone();
        let name = match rest.remove("name") {
            Some(Value::String(name)) if !name.trim().is_empty() => Some(name),
            Some(other) => return Err(error(format!("`name` must be a non-empty string, found {other}"))),
            None => None,
        };
        let fraction = |key: &str, rest: &mut serde_json::Map<String, Value>| match rest.remove(key) {
            Some(value) => match value.as_f64() {
                Some(number) if (0.0..=1.0).contains(&number) => Ok(Some(number)),
                _ => Err(error(format!("`{key}` must be a number from 0 to 1, found {value}"))),
            },
            None => Ok(None),
        };
        let threshold = fraction("threshold", &mut rest)?;
        let min_pass_rate = fraction("min_pass_rate", &mut rest)?;
        if !rest.contains_key("type") {
            return Err(error(String::from("missing `type` (exact_match, contains, not_contains, regex, valid_json, json_schema, similarity, tool_called, latency, cost, tokens, no_pii, llm_judge)")));
        }
        let kind: ScorerKind = serde_json::from_value(Value::Object(rest)).map_err(|e| error(e.to_string()))?;
        Ok(Self { name, threshold, min_pass_rate, kind })
    }

    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            ScorerKind::ExactMatch { .. } => "exact_match",
            ScorerKind::Contains { .. } => "contains",
            ScorerKind::NotContains { .. } => "not_contains",
            ScorerKind::Regex { .. } => "regex",
            ScorerKind::ValidJson {} => "valid_json",
            ScorerKind::JsonSchema { .. } => "json_schema",
            ScorerKind::Similarity { .. } => "similarity",
            ScorerKind::ToolCalled { .. } => "tool_called",
            ScorerKind::Latency { .. } => "latency",
            ScorerKind::Cost { .. } => "cost",
            ScorerKind::Tokens { .. } => "tokens",
            ScorerKind::NoPii {} => "no_pii",
            ScorerKind::LlmJudge { .. } => "llm_judge",
        }
    }

    /// The model id an `llm_judge` needs, for the caller to resolve.
    pub fn judge_model(&self) -> Option<&str> {
        match &self.kind {
            ScorerKind::LlmJudge { model, .. } => Some(model),
            _ => None,
        }
    }

    /// Builds the scorer. `models` resolves a judge's model id.
    pub fn build(
        &self,
        position: &str,
        models: &dyn Fn(&str) -> Option<Arc<dyn LanguageModel>>,
    ) -> Result<ConfiguredScorer, SpecError> {
        let error = |message: String| SpecError { position: position.to_owned(), message };
        let values = |value: &Option<String>, values: &[String]| {
            let mut all: Vec<String> = value.iter().cloned().collect();
            all.extend(values.iter().cloned());
            all
        };
        let scorer: Arc<dyn Scorer> = match &self.kind {
            ScorerKind::ExactMatch { expected, ignore_case, trim } => {
                Arc::new(text::ExactMatch { expected: expected.clone(), ignore_case: *ignore_case, trim: *trim })
            }
            ScorerKind::Contains { value, values: many, ignore_case } => {
                Arc::new(text::Contains { values: values(value, many), ignore_case: *ignore_case, negate: false })
            }
            ScorerKind::NotContains { value, values: many, ignore_case } => {
                let all = values(value, many);
                if all.is_empty() {
                    return Err(error(String::from("not_contains needs `value` or `values`")));
                }
                Arc::new(text::Contains { values: all, ignore_case: *ignore_case, negate: true })
            }
            ScorerKind::Regex { pattern } => Arc::new(text::RegexMatch {
                regex: regex::Regex::new(pattern).map_err(|e| error(format!("invalid `pattern`: {e}")))?,
            }),
            ScorerKind::ValidJson {} => Arc::new(json::ValidJson),
            ScorerKind::JsonSchema { schema } => Arc::new(json::JsonSchema {
                validator: jsonschema::validator_for(schema).map_err(|e| error(format!("invalid `schema`: {e}")))?,
            }),
            ScorerKind::Similarity { expected, ignore_case } => {
                Arc::new(text::Similarity { expected: expected.clone(), ignore_case: *ignore_case })
            }
            ScorerKind::ToolCalled { tool, arguments } => {
                Arc::new(tools::ToolCalled { tool: tool.clone(), arguments: arguments.clone() })
            }
            ScorerKind::Latency { max_ms } => Arc::new(limits::LatencyUnder { max: Duration::from_millis(*max_ms) }),
            ScorerKind::Cost { max_usd } => {
                if !max_usd.is_finite() || *max_usd < 0.0 {
                    return Err(error(format!("`max_usd` must be a non-negative number, found {max_usd}")));
                }
                Arc::new(limits::CostUnder { max_usd: *max_usd })
            }
            ScorerKind::Tokens { max_tokens } => Arc::new(limits::TokensUnder { max: *max_tokens }),
            ScorerKind::NoPii {} => Arc::new(pii::NoPii),
            ScorerKind::LlmJudge { rubric, model } => {
                if rubric.trim().is_empty() {
                    return Err(error(String::from("`rubric` must not be empty")));
                }
                let model = models(model).ok_or_else(|| error(format!("unknown judge model {model:?} (not a model of glassbox.toml)")))?;
                Arc::new(judge::LlmJudge { rubric: rubric.clone(), model })
            }
        };
        let default_threshold = match &self.kind {
            ScorerKind::Similarity { .. } => 0.8,
            ScorerKind::LlmJudge { .. } => 0.5,
            _ => 1.0,
        };
        Ok(ConfiguredScorer {
            name: self.name.clone().unwrap_or_else(|| self.type_name().to_owned()),
            threshold: self.threshold.unwrap_or(default_threshold),
            min_pass_rate: self.min_pass_rate,
            scorer,
        })
    }
}
