//! Per-request token and cost budgets.
//!
//! A run may be limited in input tokens (checked before the first model call: a prompt over the
//! limit is refused with a tripwire and no call is made), in total tokens and in cost summed
//! over every model call of the run. When the total or the cost is spent the loop stops before
//! its next model call (and before running the tools that call would answer) and finishes with
//! `finish_reason = budget_exceeded` and the text produced so far.
//!
//! Cost needs prices, which core does not know: the agent gets a [`CostModel`] (the server's
//! is the store's pricing table).

use crate::model::{Message, ToolSpec, Usage};
use crate::pipeline::TokenCounter;

/// Limits for one run; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Budget {
    pub max_input_tokens: Option<u64>,
    pub max_total_tokens: Option<u64>,
    pub max_cost_usd: Option<f64>,
}

impl Budget {
    pub fn is_unlimited(&self) -> bool {
        self.max_input_tokens.is_none() && self.max_total_tokens.is_none() && self.max_cost_usd.is_none()
    }
}

/// Prices a model call.
pub trait CostModel: Send + Sync {
    /// US dollars for `usage` on `model` of `provider`; `None` when the model has no price.
    fn cost_usd(&self, provider: &str, model: &str, usage: &Usage) -> Option<f64>;
}

/// Chat formats add a few tokens per message (role markers); OpenAI documents 3 to 4.
const TOKENS_PER_MESSAGE: u64 = 4;

fn message_texts(message: &Message) -> (&str, Option<&[crate::model::ToolCall]>) {
    match message {
        Message::System { text } | Message::User { text } => (text, None),
        Message::Assistant { text, tool_calls } => (text, Some(tool_calls)),
        Message::Tool { content, .. } => (content, None),
    }
}

/// The input tokens of a request, or `None` when the byte length already shows it is at most
/// `limit` (every token is at least one byte), which spares the tokenizer on most requests.
pub(crate) fn input_tokens_over(
    counter: TokenCounter,
    messages: &[Message],
    tools: &[ToolSpec],
    limit: u64,
) -> Option<u64> {
    let tool_json: Vec<String> =
        tools.iter().map(|tool| format!("{} {} {}", tool.name, tool.description, tool.parameters)).collect();
    let n_bytes: u64 = messages
        .iter()
        .map(|message| {
            let (text, calls) = message_texts(message);
            text.len() as u64
                + calls.map_or(0, |calls| calls.iter().map(|c| c.arguments.to_string().len() as u64).sum())
        })
        .sum::<u64>()
        + tool_json.iter().map(|json| json.len() as u64).sum::<u64>();
    let overhead = TOKENS_PER_MESSAGE * messages.len() as u64;
    if n_bytes + overhead <= limit {
        return None;
    }
    let mut count = overhead;
    for message in messages {
        let (text, calls) = message_texts(message);
        count += counter.count(text) as u64;
        for call in calls.unwrap_or_default() {
            count += counter.count(&call.arguments.to_string()) as u64;
        }
    }
    count += tool_json.iter().map(|json| counter.count(json) as u64).sum::<u64>();
    (count > limit).then_some(count)
}

/// Why the run's budget is spent, if it is.
pub(crate) fn spent(budget: &Budget, usage: &Usage, cost_usd: f64) -> Option<String> {
    if let Some(max) = budget.max_total_tokens
        && usage.total_tokens() >= max
    {
        return Some(format!("{} tokens used, budget {max}", usage.total_tokens()));
    }
    if let Some(max) = budget.max_cost_usd
        && cost_usd >= max
    {
        return Some(format!("${cost_usd:.6} spent, budget ${max:.6}"));
    }
    None
}
