//! Scorers on the answer's text: exact match, contains / not-contains, regex, and normalized
//! Levenshtein similarity.

use async_trait::async_trait;
use serde_json::Value;

use crate::diff::text_diff;
use crate::scorer::{Score, ScoreInput, Scorer, ScorerError};

/// The expected value: the scorer's own, else the case's.
fn expected<'a>(own: &'a Option<Value>, input: &'a ScoreInput, kind: &str) -> Result<&'a Value, ScorerError> {
    own.as_ref().or(input.expected.as_ref()).ok_or_else(|| {
        ScorerError::MissingInput(format!("{kind} needs an expected output: give the case `expected` or the scorer `expected`"))
    })
}

fn fold(text: &str, ignore_case: bool, trim: bool) -> String {
    let text = if trim { text.trim() } else { text };
    if ignore_case { text.to_lowercase() } else { text.to_owned() }
}

/// The answer equals the expected output. A string is compared with the text; any other JSON
/// value with the answer parsed as JSON (the structured output when there is one).
#[derive(Debug, Clone)]
pub struct ExactMatch {
    pub expected: Option<Value>,
    pub ignore_case: bool,
    pub trim: bool,
}

#[async_trait]
impl Scorer for ExactMatch {
    fn kind(&self) -> &str {
        "exact_match"
    }
    async fn score(&self, input: &ScoreInput) -> Result<Score, ScorerError> {
        match expected(&self.expected, input, "exact_match")? {
            Value::String(expected) => {
                let same = fold(expected, self.ignore_case, self.trim) == fold(&input.output, self.ignore_case, self.trim);
                Ok(Score::from_bool(
                    same,
                    "the answer equals the expected text",
                    format!("the answer differs from the expected text:\n{}", text_diff(expected, &input.output)),
                ))
            }
            expected => match input.output_json() {
                Ok(actual) if &actual == expected => Ok(Score::pass("the answer equals the expected JSON")),
                Ok(actual) => Ok(Score::fail(format!(
                    "the answer differs from the expected JSON:\n{}",
                    text_diff(&pretty(expected), &pretty(&actual))
                ))),
                Err(error) => Ok(Score::fail(format!("expected JSON, but the answer is not JSON ({error})"))),
            },
        }
    }
}

pub(crate) fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// The answer contains (or, negated, contains none of) the given strings. With several
/// strings the score is the share satisfied.
#[derive(Debug, Clone)]
pub struct Contains {
    pub values: Vec<String>,
    pub ignore_case: bool,
    pub negate: bool,
}

#[async_trait]
impl Scorer for Contains {
    fn kind(&self) -> &str {
        if self.negate { "not_contains" } else { "contains" }
    }
    async fn score(&self, input: &ScoreInput) -> Result<Score, ScorerError> {
        let values: Vec<String> = if self.values.is_empty() {
            match &input.expected {
                Some(Value::String(expected)) => vec![expected.clone()],
                _ => {
                    return Err(ScorerError::MissingInput(format!(
                        "{} needs `value`/`values`, or a string `expected` in the case",
                        self.kind()
                    )));
                }
            }
        } else {
            self.values.clone()
        };
        let haystack = fold(&input.output, self.ignore_case, false);
        let mut wrong = Vec::new();
        for value in &values {
            let found = haystack.contains(&fold(value, self.ignore_case, false));
            if found == self.negate {
                wrong.push(value.as_str());
            }
        }
        let value = (values.len() - wrong.len()) as f64 / values.len().max(1) as f64;
        let reason = match (wrong.is_empty(), self.negate) {
            (true, false) => format!("the answer contains {values:?}"),
            (true, true) => format!("the answer contains none of {values:?}"),
            (false, false) => format!("the answer lacks {wrong:?}; answer: {:?}", clip(&input.output)),
            (false, true) => format!("the answer contains {wrong:?}; answer: {:?}", clip(&input.output)),
        };
        Ok(Score::new(value, reason))
    }
}

/// At most 200 characters of a text, for reasons that quote the answer.
pub(crate) fn clip(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// The answer matches a regular expression.
#[derive(Debug, Clone)]
pub struct RegexMatch {
    pub regex: regex::Regex,
}

#[async_trait]
impl Scorer for RegexMatch {
    fn kind(&self) -> &str {
        "regex"
    }
    async fn score(&self, input: &ScoreInput) -> Result<Score, ScorerError> {
        Ok(Score::from_bool(
            self.regex.is_match(&input.output),
            format!("the answer matches /{}/", self.regex.as_str()),
            format!("the answer does not match /{}/; answer: {:?}", self.regex.as_str(), clip(&input.output)),
        ))
    }
}

/// Normalized Levenshtein similarity between the answer and the expected text (1 = equal).
#[derive(Debug, Clone)]
pub struct Similarity {
    pub expected: Option<String>,
    pub ignore_case: bool,
}

#[async_trait]
impl Scorer for Similarity {
    fn kind(&self) -> &str {
        "similarity"
    }
    async fn score(&self, input: &ScoreInput) -> Result<Score, ScorerError> {
        let expected = match (&self.expected, &input.expected) {
            (Some(own), _) => own.clone(),
            (None, Some(Value::String(expected))) => expected.clone(),
            (None, Some(other)) => other.to_string(),
            (None, None) => {
                return Err(ScorerError::MissingInput(String::from(
                    "similarity needs an expected text: give the case `expected` or the scorer `expected`",
                )));
            }
        };
        let a = fold(&expected, self.ignore_case, true);
        let b = fold(&input.output, self.ignore_case, true);
        let value = strsim::normalized_levenshtein(&a, &b);
        let reason = if value >= 1.0 {
            String::from("the answer equals the expected text")
        } else {
            format!("similarity {value:.3} to the expected text:\n{}", text_diff(&expected, &input.output))
        };
        Ok(Score::new(value, reason))
    }
}
