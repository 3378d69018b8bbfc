//! Length limits in characters and in tokens (see [`super::tokens`]), for input messages and
//! for the model's answer (the "maximum output length" guardrail). `Redact` truncates.

use super::tokens::{TokenCounter, truncate_chars};
use super::{Processor, Stage, Strategy, Verdict};

#[derive(Debug, Clone)]
pub struct LengthLimit {
    id: String,
    strategy: Strategy,
    max_chars: Option<usize>,
    max_tokens: Option<usize>,
    counter: TokenCounter,
}

impl LengthLimit {
    /// `counter` counts tokens for `max_tokens` ([`TokenCounter::for_model`]).
    pub fn new(
        id: impl Into<String>,
        strategy: Strategy,
        max_chars: Option<usize>,
        max_tokens: Option<usize>,
        counter: TokenCounter,
    ) -> Self {
        if max_tokens.is_some() {
            counter.warm();
        }
        Self { id: id.into(), strategy, max_chars, max_tokens, counter }
    }
}

impl Processor for LengthLimit {
    fn id(&self) -> &str {
        &self.id
    }
    fn strategy(&self) -> Strategy {
        self.strategy
    }
    fn process(&self, text: &mut String, _stage: Stage) -> Verdict {
        let mut reasons = Vec::new();
        if let Some(max_chars) = self.max_chars {
            // A text of at most `max_chars` bytes has at most as many characters.
            if text.len() > max_chars {
                let n_chars = text.chars().count();
                if n_chars > max_chars {
                    reasons.push(format!("{n_chars} characters, over the limit of {max_chars}"));
                    if self.strategy == Strategy::Redact {
                        truncate_chars(text, max_chars);
                    }
                }
            }
        }
        if let Some(max_tokens) = self.max_tokens
            && let Some(n_tokens) = self.counter.exceeds(text, max_tokens)
        {
            let unit = if self.counter.is_exact() { "tokens" } else { "tokens (estimated)" };
            reasons.push(format!("{n_tokens} {unit}, over the limit of {max_tokens}"));
            if self.strategy == Strategy::Redact {
                self.counter.truncate(text, max_tokens);
            }
        }
        if reasons.is_empty() {
            return Verdict::Pass;
        }
        let mut reason = format!("text is {}", reasons.join(" and "));
        if self.strategy == Strategy::Redact {
            reason.push_str("; truncated");
        }
        Verdict::for_finding(self.strategy, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_blocks_and_warns() {
        let long = "abcdé ".repeat(100);
        let limit = |strategy| LengthLimit::new("length", strategy, Some(50), None, TokenCounter::Approximate);

        let mut text = long.clone();
        assert!(matches!(limit(Strategy::Redact).process(&mut text, Stage::Input), Verdict::Changed { .. }));
        assert_eq!(text.chars().count(), 50);

        let mut text = long.clone();
        let verdict = limit(Strategy::Block).process(&mut text, Stage::Input);
        assert!(matches!(verdict, Verdict::Block { ref reason } if reason.contains("600 characters")), "{verdict:?}");
        assert_eq!(text, long);

        let mut text = long.clone();
        assert!(matches!(limit(Strategy::Warn).process(&mut text, Stage::Input), Verdict::Warn { .. }));
        let mut short = "fine".to_owned();
        assert_eq!(limit(Strategy::Block).process(&mut short, Stage::Input), Verdict::Pass);
    }

    #[test]
    fn token_limit_uses_the_tokenizer() {
        let limit = LengthLimit::new("tokens", Strategy::Redact, None, Some(10), TokenCounter::O200k);
        let mut text = "The quick brown fox jumps over the lazy dog again and again and again.".to_owned();
        let verdict = limit.process(&mut text, Stage::Input);
        assert!(
            matches!(verdict, Verdict::Changed { ref reason } if reason.contains("over the limit of 10")),
            "{verdict:?}"
        );
        assert_eq!(TokenCounter::O200k.count(&text), 10);
    }
}
