//! Token counting for length limits and input budgets.
//!
//! OpenAI models are counted exactly with their tokenizer (tiktoken-rs: `o200k_base` for the
//! GPT-4o, GPT-4.1, GPT-5 and o-series families, `cl100k_base` for GPT-4 and GPT-3.5). Other
//! models (Anthropic, local models) have no public tokenizer in Rust; they are estimated as one
//! token per four characters, rounded up — OpenAI's and Anthropic's own rule of thumb for
//! English text; it under-counts dense scripts such as Chinese, so set limits with headroom.
//!
//! Every token is at least one byte long, so a text of at most `n` bytes has at most `n`
//! tokens: callers check that bound first and only run the tokenizer when it is not enough.

use tiktoken_rs::CoreBPE;

/// How tokens of a model are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCounter {
    /// OpenAI's `o200k_base` encoding.
    O200k,
    /// OpenAI's `cl100k_base` encoding.
    Cl100k,
    /// `ceil(chars / 4)`.
    Approximate,
}

impl TokenCounter {
    /// The counter for a model name as the provider spells it.
    pub fn for_model(model: &str) -> Self {
        let model = model.to_ascii_lowercase();
        let model = model.rsplit('/').next().unwrap_or(&model);
        let starts = |prefixes: &[&str]| prefixes.iter().any(|prefix| model.starts_with(prefix));
        if starts(&["gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o", "gpt-oss"]) {
            Self::O200k
        } else if starts(&["gpt-4", "gpt-3.5", "text-embedding-3", "text-embedding-ada"]) {
            Self::Cl100k
        } else {
            Self::Approximate
        }
    }

    pub fn is_exact(self) -> bool {
        self != Self::Approximate
    }

    fn bpe(self) -> Option<&'static CoreBPE> {
        match self {
            Self::O200k => Some(tiktoken_rs::o200k_base_singleton()),
            Self::Cl100k => Some(tiktoken_rs::cl100k_base_singleton()),
            Self::Approximate => None,
        }
    }

    /// Loads the tokenizer's tables now (they take a moment), not on the first request.
    pub fn warm(self) {
        let _ = self.bpe();
    }

    pub fn count(self, text: &str) -> usize {
        match self.bpe() {
            Some(bpe) => bpe.encode_ordinary(text).len(),
            None => text.chars().count().div_ceil(4),
        }
    }

    /// Whether `text` has more than `max` tokens, running the tokenizer only when the byte
    /// length does not already settle it.
    pub fn exceeds(self, text: &str, max: usize) -> Option<usize> {
        if text.len() <= max {
            return None;
        }
        let count = self.count(text);
        (count > max).then_some(count)
    }

    /// Cuts `text` to its first `max` tokens (on a character boundary).
    pub fn truncate(self, text: &mut String, max: usize) {
        match self.bpe() {
            Some(bpe) => {
                let tokens = bpe.encode_ordinary(text);
                if tokens.len() <= max {
                    return;
                }
                // A token can end inside a multi-byte character; drop up to three more tokens
                // until the prefix decodes.
                for keep in (max.saturating_sub(3)..=max).rev() {
                    if let Ok(prefix) = bpe.decode(&tokens[..keep]) {
                        *text = prefix;
                        return;
                    }
                }
                text.clear();
            }
            None => truncate_chars(text, max.saturating_mul(4)),
        }
    }
}

/// Cuts `text` to its first `max` characters.
pub(crate) fn truncate_chars(text: &mut String, max: usize) {
    if let Some((offset, _)) = text.char_indices().nth(max) {
        text.truncate(offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_tokenizer_by_model() {
        assert_eq!(TokenCounter::for_model("gpt-4o-mini"), TokenCounter::O200k);
        assert_eq!(TokenCounter::for_model("openai/gpt-5"), TokenCounter::O200k);
        assert_eq!(TokenCounter::for_model("gpt-4-turbo"), TokenCounter::Cl100k);
        assert_eq!(TokenCounter::for_model("claude-sonnet-4-5"), TokenCounter::Approximate);
    }

    #[test]
    fn counts_and_truncates() {
        let text = "Hello world, this is a test of the tokenizer.";
        let exact = TokenCounter::O200k.count(text);
        assert!((8..=12).contains(&exact), "{exact}");
        assert_eq!(TokenCounter::Approximate.count(text), text.chars().count().div_ceil(4));
        let mut cut = text.to_owned();
        TokenCounter::O200k.truncate(&mut cut, 3);
        assert_eq!(TokenCounter::O200k.count(&cut), 3);
        assert!(text.starts_with(&cut));
        let mut multibyte = "ééééé日本語".repeat(20);
        TokenCounter::Cl100k.truncate(&mut multibyte, 7);
        assert!(TokenCounter::Cl100k.count(&multibyte) <= 7);
    }

    #[test]
    fn byte_bound_short_circuits() {
        assert_eq!(TokenCounter::O200k.exceeds("short", 5), None);
        assert!(TokenCounter::O200k.exceeds(&"word ".repeat(100), 10).is_some());
    }
}
