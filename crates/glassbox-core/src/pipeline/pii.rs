//! The PII processor and output guardrail: finds personal data and secrets with
//! [`crate::pii`] and redacts them (placeholder, mask or hash), blocks, or warns. Reasons name
//! only the kinds and counts found, never the values, since reasons reach traces.

use crate::pii::{PiiKind, RedactionMode, detect_kinds, replace_matches};

use super::{Processor, Stage, Strategy, Verdict};

#[derive(Debug, Clone)]
pub struct PiiProcessor {
    id: String,
    strategy: Strategy,
    mode: RedactionMode,
    kinds: Vec<PiiKind>,
}

impl PiiProcessor {
    /// `kinds` empty means every kind.
    pub fn new(id: impl Into<String>, strategy: Strategy, mode: RedactionMode, kinds: Vec<PiiKind>) -> Self {
        let kinds = if kinds.is_empty() { PiiKind::ALL.to_vec() } else { kinds };
        Self { id: id.into(), strategy, mode, kinds }
    }
}

impl Processor for PiiProcessor {
    fn id(&self) -> &str {
        &self.id
    }
    fn strategy(&self) -> Strategy {
        self.strategy
    }
    fn process(&self, text: &mut String, _stage: Stage) -> Verdict {
        let matches = detect_kinds(text, &self.kinds);
        if matches.is_empty() {
            return Verdict::Pass;
        }
        let mut counts: Vec<(PiiKind, usize)> = Vec::new();
        for m in &matches {
            match counts.iter_mut().find(|(kind, _)| *kind == m.kind) {
                Some((_, count)) => *count += 1,
                None => counts.push((m.kind, 1)),
            }
        }
        let found: Vec<String> = counts.iter().map(|(kind, count)| format!("{count} {}", kind.as_str())).collect();
        let mut reason = format!("personal data found: {}", found.join(", "));
        if self.strategy == Strategy::Redact {
            *text = replace_matches(text, &matches, self.mode);
            reason.push_str("; redacted");
        }
        Verdict::for_finding(self.strategy, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_strategy() {
        let input = "Reach me at ada@example.com or +44 20 7946 0958, SSN 123-45-6789.";
        let mut text = input.to_owned();
        let redact = PiiProcessor::new("pii", Strategy::Redact, RedactionMode::Placeholder, vec![]);
        let verdict = redact.process(&mut text, Stage::Input);
        assert_eq!(text, "Reach me at [EMAIL] or [PHONE], SSN [US_SSN].");
        assert!(
            matches!(verdict, Verdict::Changed { ref reason } if reason == "personal data found: 1 email, 1 phone, 1 us_ssn; redacted"),
            "{verdict:?}"
        );

        let mut text = input.to_owned();
        let block = PiiProcessor::new("pii", Strategy::Block, RedactionMode::Placeholder, vec![PiiKind::UsSsn]);
        assert!(matches!(block.process(&mut text, Stage::Input), Verdict::Block { .. }));
        assert_eq!(text, input);

        let mut text = input.to_owned();
        let warn = PiiProcessor::new("pii", Strategy::Warn, RedactionMode::Placeholder, vec![PiiKind::CreditCard]);
        assert_eq!(warn.process(&mut text, Stage::Input), Verdict::Pass, "no card in the text");
    }
}
