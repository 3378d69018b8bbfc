//! One trace's summary row, built from its spans and merged batch by batch.
//!
//! The rules (shared with the ClickHouse backend, checked by the conformance suite):
//! start = min(Timestamp); end = max(Timestamp + Duration); root span name = SpanName of the
//! earliest span (ties: smallest SpanId); agent / tenant = the non-empty `gen_ai.agent.name` /
//! `glassbox.tenant` of the earliest span carrying one (ties: smallest SpanId); has_error =
//! any span with status Error; span count = distinct spans; input / output tokens = sums of
//! `gen_ai.usage.input_tokens` / `gen_ai.usage.output_tokens` over chat spans
//! (`gen_ai.operation.name` = `chat`), unparsable values counting 0; cost = sum of
//! `glassbox.cost_usd` (a decimal string) over all spans, in nano-USD; models = the set of
//! `gen_ai.request.model` of chat spans; API keys = the set of non-empty `glassbox.api_key_id`
//! of all spans.

use crate::rows::{SpanRow, StatusCode};

use super::codec::to_sql_int;

pub(super) const AGENT_ATTRIBUTE: &str = "gen_ai.agent.name";
pub(super) const TENANT_ATTRIBUTE: &str = "glassbox.tenant";
const API_KEY_ATTRIBUTE: &str = "glassbox.api_key_id";
const OPERATION_ATTRIBUTE: &str = "gen_ai.operation.name";
const MODEL_ATTRIBUTE: &str = "gen_ai.request.model";
const INPUT_TOKENS_ATTRIBUTE: &str = "gen_ai.usage.input_tokens";
const OUTPUT_TOKENS_ATTRIBUTE: &str = "gen_ai.usage.output_tokens";
const COST_ATTRIBUTE: &str = "glassbox.cost_usd";
const CHAT_OPERATION: &str = "chat";

/// A value taken from the earliest span that has one; `(timestamp_ns, span_id)` orders spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Earliest {
    pub timestamp_ns: i64,
    pub span_id: String,
    pub value: String,
}

impl Earliest {
    /// Keeps `other` instead if it is earlier.
    fn keep_earlier(&mut self, other: Self) {
        if (other.timestamp_ns, &other.span_id) < (self.timestamp_ns, &self.span_id) {
            *self = other;
        }
    }

    fn keep_earlier_of(slot: &mut Option<Self>, other: Option<Self>) {
        match (slot.as_mut(), other) {
            (Some(current), Some(other)) => current.keep_earlier(other),
            (None, other) => *slot = other,
            (Some(_), None) => {}
        }
    }
}

/// What the `trace_index` row of one trace holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TraceEntry {
    pub start_ns: i64,
    pub end_ns: i64,
    pub root: Earliest,
    pub agent: Option<Earliest>,
    pub tenant: Option<Earliest>,
    pub has_error: bool,
    pub span_count: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_nano_usd: i64,
    /// The distinct models of the trace's chat spans, sorted (the row's `Models`).
    pub models: Vec<String>,
    /// The distinct API key ids of the trace's spans, sorted (the row's `ApiKeys`).
    pub api_keys: Vec<String>,
}

impl TraceEntry {
    pub fn from_span(span: &SpanRow) -> Self {
        let earliest_with = |value: &str| Earliest {
            timestamp_ns: span.timestamp_ns,
            span_id: span.span_id.clone(),
            value: value.to_owned(),
        };
        let non_empty = |key: &str| span.attribute(key).filter(|value| !value.is_empty()).map(earliest_with);
        let is_chat = is_chat(span);
        let tokens = |key: &str| match is_chat {
            true => span.attribute(key).and_then(|value| value.parse::<u64>().ok()).map_or(0, to_sql_int),
            false => 0,
        };
        Self {
            start_ns: span.timestamp_ns,
            end_ns: span.timestamp_ns.saturating_add(to_sql_int(span.duration_ns)),
            root: earliest_with(&span.span_name),
            agent: non_empty(AGENT_ATTRIBUTE),
            tenant: non_empty(TENANT_ATTRIBUTE),
            has_error: span.status_code == StatusCode::Error,
            span_count: 1,
            input_tokens: tokens(INPUT_TOKENS_ATTRIBUTE),
            output_tokens: tokens(OUTPUT_TOKENS_ATTRIBUTE),
            cost_nano_usd: span.attribute(COST_ATTRIBUTE).map_or(0, parse_nano_usd),
            // The model a chat span asked for, for the trace's model set.
            models: span
                .attribute(MODEL_ATTRIBUTE)
                .filter(|model| is_chat && !model.is_empty())
                .map(|model| vec![model.to_owned()])
                .unwrap_or_default(),
            api_keys: span
                .attribute(API_KEY_ATTRIBUTE)
                .filter(|key| !key.is_empty())
                .map(|key| vec![key.to_owned()])
                .unwrap_or_default(),
        }
    }

    /// Folds `other` (more spans of the same trace) into this entry, in place: a batch's entry
    /// stays in its map, a stored one is updated where it was read.
    pub fn merge(&mut self, other: Self) {
        self.start_ns = self.start_ns.min(other.start_ns);
        self.end_ns = self.end_ns.max(other.end_ns);
        self.root.keep_earlier(other.root);
        Earliest::keep_earlier_of(&mut self.agent, other.agent);
        Earliest::keep_earlier_of(&mut self.tenant, other.tenant);
        self.has_error |= other.has_error;
        self.span_count = self.span_count.saturating_add(other.span_count);
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.cost_nano_usd = self.cost_nano_usd.saturating_add(other.cost_nano_usd);
        merge_sets(&mut self.models, other.models);
        merge_sets(&mut self.api_keys, other.api_keys);
    }
}

/// Adds `other`'s values to the sorted set `set`.
fn merge_sets(set: &mut Vec<String>, other: Vec<String>) {
    for value in other {
        if let Err(at) = set.binary_search(&value) {
            set.insert(at, value);
        }
    }
}

fn is_chat(span: &SpanRow) -> bool {
    span.attribute(OPERATION_ATTRIBUTE) == Some(CHAT_OPERATION)
}

/// `"0.000123450"` -> 123450. An optional `-`, digits, optionally `.` and more digits; fraction
/// digits past the ninth are dropped (truncation, as a `Decimal(18, 9)` cast does). Anything
/// else (empty, exponents, spaces, overflow) counts 0.
pub(super) fn parse_nano_usd(text: &str) -> i64 {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let all_digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
        return 0;
    }
    let mut nanos: i64 = 0;
    for byte in whole.bytes().chain(fraction.bytes().chain(std::iter::repeat(b'0')).take(9)) {
        let digit = i64::from(byte - b'0');
        nanos = match nanos.checked_mul(10).and_then(|value| value.checked_add(digit)) {
            Some(value) => value,
            None => return 0,
        };
    }
    if negative { -nanos } else { nanos }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_models_stay_sorted_and_distinct() {
        let span = |span_id: &str, span_attributes| SpanRow {
            timestamp_ns: 1,
            trace_id: "t".to_owned(),
            span_id: span_id.to_owned(),
            span_name: "chat".to_owned(),
            span_kind: "Client".to_owned(),
            service_name: "glassbox".to_owned(),
            span_attributes,
            duration_ns: 1,
            ..SpanRow::default()
        };
        let chat = |span_id: &str, model: &str| {
            let attributes = vec![
                (OPERATION_ATTRIBUTE.into(), CHAT_OPERATION.into()),
                (MODEL_ATTRIBUTE.into(), model.into()),
            ];
            TraceEntry::from_span(&span(span_id, attributes))
        };
        let mut entry = chat("a", "gpt-4o");
        for (span_id, model) in [("b", "claude-3-haiku"), ("c", "gpt-4o"), ("d", "o3"), ("e", "claude-3-haiku")] {
            entry.merge(chat(span_id, model));
        }
        assert_eq!(entry.models, ["claude-3-haiku", "gpt-4o", "o3"]);
        entry.merge(TraceEntry::from_span(&span("f", vec![(MODEL_ATTRIBUTE.into(), "ignored".into())])));
        assert_eq!(entry.models, ["claude-3-haiku", "gpt-4o", "o3"], "only chat spans name a trace's models");
    }

    #[test]
    fn api_keys_are_the_set_of_every_span_s_non_empty_key() {
        let span = |span_id: &str, key: Option<&str>| SpanRow {
            timestamp_ns: 1,
            trace_id: "t".to_owned(),
            span_id: span_id.to_owned(),
            span_attributes: key.map(|key| vec![(API_KEY_ATTRIBUTE.into(), key.into())]).unwrap_or_default(),
            ..SpanRow::default()
        };
        let mut entry = TraceEntry::from_span(&span("a", Some("key_b")));
        for (span_id, key) in [("b", Some("key_a")), ("c", None), ("d", Some("")), ("e", Some("key_b"))] {
            entry.merge(TraceEntry::from_span(&span(span_id, key)));
        }
        assert_eq!(entry.api_keys, ["key_a", "key_b"]);
        assert!(TraceEntry::from_span(&span("f", Some(""))).api_keys.is_empty());
    }

    #[test]
    fn parses_decimal_cost_strings() {
        assert_eq!(parse_nano_usd("0.000123450"), 123_450);
        assert_eq!(parse_nano_usd("1"), 1_000_000_000);
        assert_eq!(parse_nano_usd("12.5"), 12_500_000_000);
        assert_eq!(parse_nano_usd("0.0000000019"), 1);
        assert_eq!(parse_nano_usd("-0.5"), -500_000_000);
        assert_eq!(parse_nano_usd("1."), 1_000_000_000);
        for bad in ["", ".5", "abc", "1e-6", " 1", "1.2.3", "-", "99999999999999999999"] {
            assert_eq!(parse_nano_usd(bad), 0, "{bad:?}");
        }
    }
}
