//! One trace as a waterfall: the span tree flattened depth-first (children by start time),
//! each span with its offset and duration relative to the trace, its attributes, events, the
//! captured prompt and completion, and the usage row of a model call.
//!
//! Spans come from any OpenTelemetry source, so nothing here trusts their shape: a missing
//! parent makes a span a root, a cycle is cut, and values are shown as text, cut to a size a
//! page can hold, with credential-like attributes redacted.

use std::collections::{HashMap, HashSet};

use glassbox_store::{AttributeKey, AttributeText, SpanRow, StatusCode, UsageRow};

use super::format;

/// Attribute values longer than this are cut (the rest is counted, not shown).
const MAX_ATTRIBUTE_CHARS: usize = 4_000;
/// Prompts and completions are cut later.
const MAX_MESSAGE_CHARS: usize = 100_000;
/// Deeper spans are drawn at this depth.
const MAX_DEPTH_CLASS: usize = 15;
const PROMPT_KEYS: [&str; 2] = ["gen_ai.input.messages", "gen_ai.system_instructions"];
const COMPLETION_KEY: &str = "gen_ai.output.messages";

#[derive(Debug, Clone)]
pub struct Text {
    pub text: String,
    /// Characters left out.
    pub cut: usize,
}

impl Text {
    fn new(value: &str, max_chars: usize) -> Self {
        let (text, cut) = format::truncate(value, max_chars);
        Self { text, cut }
    }
}

#[derive(Debug, Clone)]
pub struct Attribute {
    pub key: String,
    pub value: Text,
}

#[derive(Debug, Clone)]
pub struct EventView {
    pub offset: String,
    pub name: String,
    pub attributes: Vec<Attribute>,
}

#[derive(Debug, Clone)]
pub struct UsageView {
    pub model: String,
    pub provider: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub reasoning_tokens: u64,
    pub cost: String,
    pub cost_unknown: bool,
    pub latency: String,
    pub time_to_first_token: String,
    pub status: String,
    pub error_type: String,
}

impl UsageView {
    pub fn new(row: &UsageRow) -> Self {
        Self {
            model: row.model.clone(),
            provider: row.provider.clone(),
            input_tokens: row.input_tokens,
            output_tokens: row.output_tokens,
            cached_input_tokens: row.cached_input_tokens,
            reasoning_tokens: row.reasoning_tokens,
            cost: format::usd(row.cost_nano_usd),
            cost_unknown: row.cost_unknown,
            latency: format::duration(row.latency_ns),
            time_to_first_token: if row.time_to_first_token_ns == 0 {
                "–".to_owned()
            } else {
                format::duration(row.time_to_first_token_ns)
            },
            status: row.status.clone(),
            error_type: row.error_type.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SpanView {
    pub depth_class: String,
    pub name: Text,
    pub span_id: String,
    pub kind: String,
    pub service: String,
    pub offset: String,
    pub duration: String,
    /// Bar position and width in a 1000-unit-wide SVG.
    pub bar_x: f64,
    pub bar_width: f64,
    /// `ok`, `error` or `unset`: the CSS class of the bar and badge.
    pub status: &'static str,
    pub status_message: Text,
    pub attributes: Vec<Attribute>,
    pub prompt: Vec<Attribute>,
    pub completion: Option<Text>,
    pub events: Vec<EventView>,
    pub usage: Option<UsageView>,
}

/// Keys whose values may be credentials (from other instrumentation; Glassbox records none).
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    if key.ends_with("_id") || key.ends_with(".id") {
        return false;
    }
    ["authorization", "api_key", "apikey", "api-key", "password", "passwd", "secret", "cookie", "bearer", "credential"]
        .iter()
        .any(|needle| key.contains(needle))
}

fn attributes(pairs: &[(AttributeKey, AttributeText)], skip: &[&str]) -> Vec<Attribute> {
    let mut out: Vec<Attribute> = pairs
        .iter()
        .filter(|(key, _)| !skip.contains(&key.as_ref()))
        .map(|(key, value)| Attribute {
            key: format::truncate(key, 200).0,
            value: if is_secret_key(key) {
                Text { text: "[redacted]".to_owned(), cut: 0 }
            } else {
                Text::new(value, MAX_ATTRIBUTE_CHARS)
            },
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

/// JSON is shown indented; anything else as it came.
fn message_text(value: &str) -> Text {
    let pretty =
        serde_json::from_str::<serde_json::Value>(value).ok().and_then(|json| serde_json::to_string_pretty(&json).ok());
    Text::new(pretty.as_deref().unwrap_or(value), MAX_MESSAGE_CHARS)
}

/// The waterfall rows, depth-first. `start_ns`/`end_ns` bound the trace.
pub fn layout(spans: &[SpanRow], usage: &[UsageRow], start_ns: i64, end_ns: i64) -> Vec<SpanView> {
    let total = (end_ns - start_ns).max(1) as f64;
    let ids: HashSet<&str> = spans.iter().map(|span| span.span_id.as_str()).collect();
    let mut children: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for (index, span) in spans.iter().enumerate() {
        if span.parent_span_id.is_empty()
            || span.parent_span_id == span.span_id
            || !ids.contains(span.parent_span_id.as_str())
        {
            roots.push(index);
        } else {
            children.entry(span.parent_span_id.as_str()).or_default().push(index);
        }
    }
    let usage_by_span: HashMap<&str, &UsageRow> = usage.iter().map(|row| (row.span_id.as_str(), row)).collect();
    let mut rows = Vec::with_capacity(spans.len());
    let mut visited = vec![false; spans.len()];
    // Depth-first with an explicit stack (a hostile trace can be deep).
    let mut stack: Vec<(usize, usize)> = roots.iter().rev().map(|&index| (index, 0)).collect();
    while let Some((index, depth)) = stack.pop() {
        if std::mem::replace(&mut visited[index], true) {
            continue;
        }
        let span = &spans[index];
        rows.push(view(span, depth, start_ns, total, usage_by_span.get(span.span_id.as_str()).copied()));
        if let Some(kids) = children.get(span.span_id.as_str()) {
            for &kid in kids.iter().rev() {
                stack.push((kid, depth + 1));
            }
        }
    }
    // Spans only reachable through a cycle: shown as roots, never lost.
    for (index, span) in spans.iter().enumerate() {
        if !visited[index] {
            rows.push(view(span, 0, start_ns, total, usage_by_span.get(span.span_id.as_str()).copied()));
        }
    }
    rows
}

fn view(span: &SpanRow, depth: usize, start_ns: i64, total: f64, usage: Option<&UsageRow>) -> SpanView {
    let offset_ns = span.timestamp_ns.saturating_sub(start_ns).max(0);
    let bar_x = (offset_ns as f64 / total * 1000.0).clamp(0.0, 1000.0);
    let bar_width = (span.duration_ns as f64 / total * 1000.0).clamp(2.0, (1000.0 - bar_x).max(2.0));
    let skip: Vec<&str> = PROMPT_KEYS.iter().copied().chain([COMPLETION_KEY]).collect();
    SpanView {
        depth_class: format!("d{}", depth.min(MAX_DEPTH_CLASS)),
        name: Text::new(&span.span_name, 200),
        span_id: span.span_id.clone(),
        kind: span.span_kind.clone(),
        service: span.service_name.clone(),
        offset: format::duration(offset_ns as u64),
        duration: format::duration(span.duration_ns),
        bar_x: (bar_x * 10.0).round() / 10.0,
        bar_width: (bar_width * 10.0).round() / 10.0,
        status: match span.status_code {
            StatusCode::Ok => "ok",
            StatusCode::Error => "error",
            StatusCode::Unset => "unset",
        },
        status_message: Text::new(&span.status_message, MAX_ATTRIBUTE_CHARS),
        attributes: attributes(&span.span_attributes, &skip),
        prompt: PROMPT_KEYS
            .iter()
            .filter_map(|key| {
                span.attribute(key).map(|value| Attribute { key: (*key).to_owned(), value: message_text(value) })
            })
            .collect(),
        completion: span.attribute(COMPLETION_KEY).map(message_text),
        events: span
            .events
            .iter()
            .map(|event| EventView {
                offset: format::duration(event.timestamp_ns.saturating_sub(start_ns).max(0) as u64),
                name: format::truncate(&event.name, 200).0,
                attributes: attributes(&event.attributes, &[]),
            })
            .collect(),
        usage: usage.map(UsageView::new),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: &str, parent: &str, at: i64, duration: u64) -> SpanRow {
        SpanRow {
            timestamp_ns: at,
            trace_id: "t".into(),
            span_id: id.into(),
            parent_span_id: parent.into(),
            trace_state: String::new(),
            span_name: format!("span {id}"),
            span_kind: "Internal".into(),
            service_name: "glassbox".into(),
            resource_attributes: Vec::new(),
            scope_name: String::new(),
            scope_version: String::new(),
            span_attributes: vec![("http.request.header.authorization".into(), "Bearer sk-live".into())],
            duration_ns: duration,
            status_code: StatusCode::Unset,
            status_message: String::new(),
            events: Vec::new(),
            links: Vec::new(),
        }
    }

    #[test]
    fn tree_is_depth_first_with_orphans_and_cycles_kept() {
        let spans = vec![
            span("a", "", 0, 100),
            span("b", "a", 10, 50),
            span("c", "b", 20, 10),
            span("d", "a", 70, 30),
            span("e", "missing", 5, 5),
            span("x", "y", 1, 1),
            span("y", "x", 2, 1),
        ];
        let rows = layout(&spans, &[], 0, 100);
        let order: Vec<(&str, &str)> =
            rows.iter().map(|row| (row.span_id.as_str(), row.depth_class.as_str())).collect();
        assert_eq!(order, [("a", "d0"), ("b", "d1"), ("c", "d2"), ("d", "d1"), ("e", "d0"), ("x", "d0"), ("y", "d0")]);
        assert_eq!(rows[1].bar_x, 100.0);
        assert_eq!(rows[1].bar_width, 500.0);
        assert_eq!(rows[0].attributes[0].value.text, "[redacted]");
    }
}
