//! Guardrails for input and output: topic deny and allow lists, regex rules, and the output
//! JSON schema. (PII in the output is [`super::PiiProcessor`] at the output stage; the maximum
//! output length is [`super::LengthLimit`] there.)

use regex::Regex;
use serde_json::Value;

use super::{Processor, Stage, Strategy, Verdict};

/// An invalid pattern or schema in a guardrail's definition.
#[derive(Debug, thiserror::Error)]
pub enum GuardrailError {
    #[error("invalid regular expression")]
    Regex(#[from] regex::Error),
    #[error("invalid JSON schema: {message}")]
    Schema { message: String },
}

/// Topics as words or phrases, matched case-insensitively on word boundaries. A text that
/// mentions a denied topic is a finding; with an allow list, so is a text that mentions none
/// of the allowed topics. `Redact` replaces denied mentions with `[FILTERED]`.
#[derive(Debug, Clone)]
pub struct TopicGuardrail {
    id: String,
    strategy: Strategy,
    deny: Option<Regex>,
    allow: Option<Regex>,
}

fn phrase_set(phrases: &[String]) -> Result<Option<Regex>, GuardrailError> {
    if phrases.is_empty() {
        return Ok(None);
    }
    let alternatives: Vec<String> = phrases
        .iter()
        .map(|phrase| phrase.split_whitespace().map(regex::escape).collect::<Vec<_>>().join(r"\s+"))
        .collect();
    Ok(Some(Regex::new(&format!(r"(?i)\b(?:{})\b", alternatives.join("|")))?))
}

impl TopicGuardrail {
    pub fn new(
        id: impl Into<String>,
        strategy: Strategy,
        deny: &[String],
        allow: &[String],
    ) -> Result<Self, GuardrailError> {
        Ok(Self { id: id.into(), strategy, deny: phrase_set(deny)?, allow: phrase_set(allow)? })
    }
}

impl Processor for TopicGuardrail {
    fn id(&self) -> &str {
        &self.id
    }
    fn strategy(&self) -> Strategy {
        self.strategy
    }
    fn process(&self, text: &mut String, stage: Stage) -> Verdict {
        if let Some(deny) = &self.deny
            && let Some(found) = deny.find(text)
        {
            let reason = format!("mentions the denied topic {:?}", found.as_str().to_lowercase());
            if self.strategy == Strategy::Redact {
                *text = deny.replace_all(text, "[FILTERED]").into_owned();
            }
            return Verdict::for_finding(self.strategy, reason);
        }
        // An answer with tool calls has no topic to judge yet.
        if let Some(allow) = &self.allow
            && stage != (Stage::Output { final_answer: false })
            && !allow.is_match(text)
        {
            // Nothing to filter: an off-topic text is blocked under `Redact` too.
            let strategy = if self.strategy == Strategy::Redact { Strategy::Block } else { self.strategy };
            return Verdict::for_finding(strategy, "mentions none of the allowed topics".to_owned());
        }
        Verdict::Pass
    }
}

/// A regular expression that must not match; `Redact` replaces each match with `replacement`.
#[derive(Debug, Clone)]
pub struct RegexRule {
    id: String,
    strategy: Strategy,
    regex: Regex,
    replacement: String,
}

impl RegexRule {
    pub fn new(
        id: impl Into<String>,
        strategy: Strategy,
        pattern: &str,
        replacement: impl Into<String>,
    ) -> Result<Self, GuardrailError> {
        Ok(Self { id: id.into(), strategy, regex: Regex::new(pattern)?, replacement: replacement.into() })
    }
}

impl Processor for RegexRule {
    fn id(&self) -> &str {
        &self.id
    }
    fn strategy(&self) -> Strategy {
        self.strategy
    }
    fn process(&self, text: &mut String, _stage: Stage) -> Verdict {
        let n_matches = self.regex.find_iter(text).count();
        if n_matches == 0 {
            return Verdict::Pass;
        }
        // The pattern, not the matched text, goes into the reason: the match may be sensitive.
        let mut reason = format!("matches the rule {:?} {n_matches} time(s)", self.regex.as_str());
        if self.strategy == Strategy::Redact {
            *text = self.regex.replace_all(text, regex::NoExpand(&self.replacement)).into_owned();
            reason.push_str("; replaced");
        }
        Verdict::for_finding(self.strategy, reason)
    }
}

/// The final answer must be JSON matching a schema (a Markdown code fence is tolerated).
/// Runs on the final answer only; `Redact` acts as `Block`.
pub struct JsonSchemaGuardrail {
    id: String,
    strategy: Strategy,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for JsonSchemaGuardrail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonSchemaGuardrail").field("id", &self.id).finish_non_exhaustive()
    }
}

impl JsonSchemaGuardrail {
    pub fn new(id: impl Into<String>, strategy: Strategy, schema: &Value) -> Result<Self, GuardrailError> {
        let validator =
            jsonschema::validator_for(schema).map_err(|error| GuardrailError::Schema { message: error.to_string() })?;
        let strategy = if strategy == Strategy::Redact { Strategy::Block } else { strategy };
        Ok(Self { id: id.into(), strategy, validator })
    }
}

impl Processor for JsonSchemaGuardrail {
    fn id(&self) -> &str {
        &self.id
    }
    fn strategy(&self) -> Strategy {
        self.strategy
    }
    fn process(&self, text: &mut String, stage: Stage) -> Verdict {
        if stage != (Stage::Output { final_answer: true }) {
            return Verdict::Pass;
        }
        let trimmed = crate::agent::strip_code_fence(text.trim());
        let problem =
            match serde_json::from_str::<Value>(trimmed) {
                Err(error) => Some(format!("the answer is not JSON ({error})")),
                Ok(value) => self.validator.iter_errors(&value).next().map(|error| {
                    format!("the answer does not match the schema: {error} at `{}`", error.instance_path())
                }),
            };
        match problem {
            Some(reason) => Verdict::for_finding(self.strategy, reason),
            None => Verdict::Pass,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FINAL: Stage = Stage::Output { final_answer: true };

    #[test]
    fn topics_deny_allow_and_filter() {
        let guard =
            TopicGuardrail::new("topics", Strategy::Block, &["stock tips".into(), "crypto".into()], &[]).unwrap();
        let mut text = "Give me some Stock  Tips please".to_owned();
        assert!(
            matches!(guard.process(&mut text, Stage::Input), Verdict::Block { ref reason } if reason.contains("stock  tips"))
        );
        let mut text = "cryptography is fine".to_owned();
        assert_eq!(guard.process(&mut text, Stage::Input), Verdict::Pass, "word boundaries");

        let filter = TopicGuardrail::new("topics", Strategy::Redact, &["crypto".into()], &[]).unwrap();
        let mut text = "buy crypto now, CRYPTO!".to_owned();
        assert!(matches!(filter.process(&mut text, Stage::Input), Verdict::Changed { .. }));
        assert_eq!(text, "buy [FILTERED] now, [FILTERED]!");

        let allow = TopicGuardrail::new("topics", Strategy::Warn, &[], &["weather".into(), "forecast".into()]).unwrap();
        let mut text = "Tell me a joke".to_owned();
        assert!(matches!(allow.process(&mut text, Stage::Input), Verdict::Warn { .. }));
        let mut text = "What's the forecast?".to_owned();
        assert_eq!(allow.process(&mut text, Stage::Input), Verdict::Pass);
        let mut text = String::new();
        assert_eq!(allow.process(&mut text, Stage::Output { final_answer: false }), Verdict::Pass);
    }

    #[test]
    fn regex_rules_each_strategy() {
        let input = "order ORD-12345 and ORD-99999";
        for (strategy, expected_text) in
            [(Strategy::Block, input), (Strategy::Warn, input), (Strategy::Redact, "order [ORDER] and [ORDER]")]
        {
            let rule = RegexRule::new("orders", strategy, r"ORD-\d{5}", "[ORDER]").unwrap();
            let mut text = input.to_owned();
            let verdict = rule.process(&mut text, Stage::Input);
            assert_eq!(
                verdict.decision(),
                match strategy {
                    Strategy::Block => "block",
                    Strategy::Warn => "warn",
                    Strategy::Redact => "changed",
                }
            );
            assert_eq!(text, expected_text);
        }
        assert!(RegexRule::new("bad", Strategy::Block, "(", "").is_err());
    }

    #[test]
    fn json_schema_checks_the_final_answer_only() {
        let schema = serde_json::json!({"type": "object", "required": ["answer"]});
        let guard = JsonSchemaGuardrail::new("schema", Strategy::Block, &schema).unwrap();
        let mut good = "```json\n{\"answer\": 42}\n```".to_owned();
        assert_eq!(guard.process(&mut good, FINAL), Verdict::Pass);
        let mut missing = "{\"other\": 1}".to_owned();
        assert!(
            matches!(guard.process(&mut missing, FINAL), Verdict::Block { ref reason } if reason.contains("answer"))
        );
        let mut prose = "hello".to_owned();
        assert!(
            matches!(guard.process(&mut prose, FINAL), Verdict::Block { ref reason } if reason.contains("not JSON"))
        );
        assert_eq!(guard.process(&mut prose, Stage::Output { final_answer: false }), Verdict::Pass);
        let warn = JsonSchemaGuardrail::new("schema", Strategy::Warn, &schema).unwrap();
        assert!(matches!(warn.process(&mut prose, FINAL), Verdict::Warn { .. }));
    }
}
