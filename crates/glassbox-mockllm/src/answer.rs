//! A successful answer, ready to render in either wire format, with its deterministic usage.
//!
//! Token counts follow one rule so tests can predict them: a token is four characters,
//! rounded up. Input tokens are `ceil(input_chars / 4)`, at least 1; output tokens are
//! `ceil(answer_chars / 4)`, where a tool call's characters are its name plus its arguments
//! serialized as JSON. A request with more than 4096 input characters reports half its input
//! tokens (rounded down) as read from the prompt cache; reasoning and cache-creation tokens are
//! always 0.

use serde_json::Value;

use crate::conversation::Conversation;
use crate::script::ScriptedToolCall;

/// Input characters above which half of the input tokens are reported as cached.
const CACHED_PROMPT_MIN_CHARS: usize = 4096;

#[derive(Debug)]
pub(crate) struct Answer {
    pub content: AnswerContent,
    pub finish: Finish,
    pub usage: Usage,
}

#[derive(Debug)]
pub(crate) enum AnswerContent {
    Text(String),
    ToolCalls(Vec<RenderedToolCall>),
}

/// A tool call with its arguments serialized once, since both wire formats stream that string.
#[derive(Debug)]
pub(crate) struct RenderedToolCall {
    pub id: String,
    pub name: String,
    pub arguments: Value,
    pub arguments_json: String,
}

/// Why the answer ended, named per format by the renderers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finish {
    /// OpenAI `stop`, Anthropic `end_turn`.
    Stop,
    /// OpenAI `tool_calls`, Anthropic `tool_use`.
    ToolCalls,
    /// OpenAI `length`, Anthropic `max_tokens`: the text was cut to the request's limit.
    Length,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
}

impl Usage {
    fn new(input_chars: usize, output_chars: usize) -> Usage {
        let input_tokens = tokens_for(input_chars).max(1);
        let cached_input_tokens = if input_chars > CACHED_PROMPT_MIN_CHARS { input_tokens / 2 } else { 0 };
        Usage { input_tokens, output_tokens: tokens_for(output_chars), cached_input_tokens }
    }
}

fn tokens_for(n_chars: usize) -> u64 {
    u64::try_from(n_chars.div_ceil(4)).unwrap_or(u64::MAX)
}

impl Answer {
    /// A text answer, cut to the request's output-token limit (4 characters a token).
    pub(crate) fn text(mut text: String, conversation: &Conversation) -> Answer {
        let mut n_chars = text.chars().count();
        let mut finish = Finish::Stop;
        if let Some(max_tokens) = conversation.max_output_tokens
            && tokens_for(n_chars) > max_tokens
        {
            let max_chars = usize::try_from(max_tokens.saturating_mul(4)).unwrap_or(usize::MAX);
            if let Some((byte_idx, _)) = text.char_indices().nth(max_chars) {
                text.truncate(byte_idx);
            }
            n_chars = max_chars;
            finish = Finish::Length;
        }
        Answer { usage: Usage::new(conversation.input_chars, n_chars), content: AnswerContent::Text(text), finish }
    }

    pub(crate) fn tool_calls(calls: Vec<ScriptedToolCall>, conversation: &Conversation) -> Answer {
        let calls: Vec<RenderedToolCall> = calls
            .into_iter()
            .map(|call| RenderedToolCall {
                arguments_json: call.arguments.to_string(),
                id: call.id,
                name: call.name,
                arguments: call.arguments,
            })
            .collect();
        let output_chars =
            calls.iter().map(|call| call.name.chars().count() + call.arguments_json.chars().count()).sum();
        Answer {
            usage: Usage::new(conversation.input_chars, output_chars),
            content: AnswerContent::ToolCalls(calls),
            finish: Finish::ToolCalls,
        }
    }
}

/// Splits text into word-sized deltas that concatenate back to it exactly: each piece is a
/// run of whitespace followed by a word.
pub(crate) fn word_pieces(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut piece_start = 0;
    let mut previous_was_space = true;
    for (byte_idx, ch) in text.char_indices() {
        let is_space = ch.is_whitespace();
        if is_space && !previous_was_space && byte_idx > piece_start {
            pieces.push(&text[piece_start..byte_idx]);
            piece_start = byte_idx;
        }
        previous_was_space = is_space;
    }
    if piece_start < text.len() {
        pieces.push(&text[piece_start..]);
    }
    pieces
}

/// Splits serialized tool arguments into at least two fragments (three when long enough), the
/// way providers stream them, so a client must concatenate before parsing.
pub(crate) fn argument_fragments(arguments_json: &str) -> Vec<&str> {
    let n_chars = arguments_json.chars().count();
    let n_fragments = n_chars.clamp(1, 3);
    let chars_per_fragment = n_chars.div_ceil(n_fragments).max(1);
    let mut fragments = Vec::with_capacity(n_fragments);
    let mut fragment_start = 0;
    for (char_idx, (byte_idx, _)) in arguments_json.char_indices().enumerate() {
        if char_idx > 0 && char_idx % chars_per_fragment == 0 {
            fragments.push(&arguments_json[fragment_start..byte_idx]);
            fragment_start = byte_idx;
        }
    }
    if fragment_start < arguments_json.len() {
        fragments.push(&arguments_json[fragment_start..]);
    }
    fragments
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_pieces_concatenate_back_to_the_text() {
        let text = "Mock reply to:  hello\nworld ";
        let pieces = word_pieces(text);
        assert_eq!(pieces, ["Mock", " reply", " to:", "  hello", "\nworld", " "]);
        assert_eq!(pieces.concat(), text);
        assert!(word_pieces("").is_empty());
    }

    #[test]
    fn argument_fragments_are_at_least_two_and_rejoin() {
        for json in ["{}", "null", r#"{"city":"Paris","unit":"c"}"#, r#"{"k":"é€"}"#] {
            let fragments = argument_fragments(json);
            assert!(fragments.len() >= 2, "{json}: {fragments:?}");
            assert_eq!(fragments.concat(), json);
        }
    }

    #[test]
    fn usage_rounds_up_and_caches_long_prompts() {
        assert_eq!(Usage::new(0, 5), Usage { input_tokens: 1, output_tokens: 2, cached_input_tokens: 0 });
        assert_eq!(Usage::new(4096, 0).cached_input_tokens, 0);
        assert_eq!(Usage::new(4097, 4), Usage { input_tokens: 1025, output_tokens: 1, cached_input_tokens: 512 });
    }
}
