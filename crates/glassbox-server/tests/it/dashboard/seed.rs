//! Deterministic telemetry for the dashboard's tests and benchmark: API requests (the
//! server's request span) running agents with model calls, tool calls, processor spans,
//! failures and guardrail blocks, and requests refused by a budget or rate limit, spread back
//! in time from `now`, plus one hostile trace. While generating, it keeps the figures the pages must show (computed from
//! the rows by the trace index's rules, independently of the store), so tests compare the
//! rendered pages against the data.

#![allow(dead_code)]

use std::collections::BTreeMap;

use glassbox_store::{SpanEvent, SpanRow, StatusCode, UsageRow};

pub const AGENTS: [&str; 3] = ["support-bot", "research-assistant", "billing-agent"];
pub const TENANTS: [&str; 4] = ["acme", "globex", "initech", "umbrella"];
/// (model, provider, nano-USD per input token, per output token)
pub const MODELS: [(&str, &str, i64, i64); 3] = [
    ("gpt-4o-mini", "openai", 150, 600),
    ("claude-3-5-haiku", "anthropic", 800, 4000),
    ("llama-3.1-8b", "openai", 50, 100),
];
const MS: u64 = 1_000_000;

/// The hostile trace's id and the strings it carries.
pub const HOSTILE_TRACE_ID: &str = "0badc0de0badc0de0badc0de0badc0de";
pub const HOSTILE_AGENT: &str = "<script>window.pwned=1;alert(1)</script>";
pub const HOSTILE_TENANT: &str = "\"><img src=x onerror=\"window.pwned=2\">";
pub const HOSTILE_MODEL: &str = "x' OR '1'='1'; DROP TABLE spans; --";

/// What the pages must show for the seeded data.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    /// Traces; each holds one API request (its root `Server` span), so also the requests.
    pub traces: u64,
    pub error_traces: u64,
    /// Requests refused with 402 or 429 (a trace of the request span alone).
    pub refused: u64,
    /// Agent runs ended by a guardrail (`glassbox.tripwire.processor`).
    pub blocked: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_nano_usd: i64,
    /// Model calls (usage rows) and their cost.
    pub calls: u64,
    pub usage_cost_nano_usd: i64,
    /// Trace durations (end - start, the request span's duration), for the percentiles.
    pub durations_ns: Vec<u64>,
    /// (start, trace id) of every trace.
    pub starts: Vec<(i64, String)>,
    pub traces_by_agent: BTreeMap<String, u64>,
    pub error_traces_by_agent: BTreeMap<String, u64>,
    /// Spans of each trace, by id.
    pub spans_by_trace: BTreeMap<String, usize>,
    pub cost_by_trace: BTreeMap<String, i64>,
    /// The same figures for each tenant's traces and calls alone.
    pub by_tenant: BTreeMap<String, TenantExpect>,
}

/// What a viewer limited to one tenant must see.
#[derive(Debug, Clone, Default)]
pub struct TenantExpect {
    pub traces: u64,
    pub error_traces: u64,
    pub refused: u64,
    pub blocked: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_nano_usd: i64,
    pub calls: u64,
    pub usage_cost_nano_usd: i64,
    /// Trace ids of the tenant.
    pub trace_ids: Vec<String>,
}

impl Expect {
    /// Trace ids, newest first (start desc, id desc), as the traces table lists them.
    pub fn newest_first(&self) -> Vec<String> {
        let mut starts = self.starts.clone();
        starts.sort_by(|a, b| b.cmp(a));
        starts.into_iter().map(|(_, id)| id).collect()
    }

    /// `LatencyRow`'s quantile rule over the trace durations, in ms.
    pub fn duration_quantile_ms(&self, p: f64) -> f64 {
        let mut sorted = self.durations_ns.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return 0.0;
        }
        let index = ((p * sorted.len() as f64) as usize).min(sorted.len() - 1);
        sorted[index] as f64 / 1e6
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn usd_text(nano: i64) -> String {
    format!("{}.{:09}", nano / 1_000_000_000, nano % 1_000_000_000)
}

fn attrs(pairs: &[(&str, String)]) -> glassbox_store::Attributes {
    pairs.iter().map(|(key, value)| ((*key).to_owned().into(), value.as_str().into())).collect()
}

fn span(
    trace_id: &str,
    span_id: String,
    parent: &str,
    name: String,
    at: i64,
    duration: u64,
    attributes: glassbox_store::Attributes,
) -> SpanRow {
    SpanRow {
        timestamp_ns: at,
        trace_id: trace_id.to_owned(),
        span_id,
        parent_span_id: parent.to_owned(),
        trace_state: String::new(),
        span_name: name,
        span_kind: "Internal".into(),
        service_name: "glassbox".into(),
        resource_attributes: vec![("service.name".into(), "glassbox".into())],
        scope_name: "glassbox-core".into(),
        scope_version: "0.1.0".into(),
        span_attributes: attributes,
        duration_ns: duration,
        status_code: StatusCode::Unset,
        status_message: String::new(),
        events: Vec::new(),
        links: Vec::new(),
    }
}

/// One trace's rows, with the bookkeeping of [`Expect`].
pub struct TraceRows {
    pub spans: Vec<SpanRow>,
    pub usage: Vec<UsageRow>,
}

/// Trace `index` (0 is the newest), starting `index * spacing_ns` plus a little before `now_ns`.
pub fn trace(index: u64, now_ns: i64, spacing_ns: i64, expect: &mut Expect) -> TraceRows {
    let h = splitmix(index);
    let trace_id = format!("{:016x}{:016x}", splitmix(h), index);
    let agent = AGENTS[(h % 3) as usize];
    let tenant = TENANTS[((h >> 8) % 4) as usize];
    let failed = index % 11 == 3;
    let start = now_ns - 60_000_000_000 - i64::try_from(index).unwrap_or(0) * spacing_ns - (h % 1000) as i64 * 1000;
    if index % 17 == 9 {
        return refused(&trace_id, agent, tenant, start, h, expect);
    }
    let n_chats = 1 + (h >> 16) % 3;
    let n_tools = (h >> 20) % 3;
    build(&trace_id, agent, tenant, start, n_chats, n_tools, failed, h, expect)
}

/// The server's request span (`trace_context::in_request_span` with the access check's
/// attributes).
fn request_span(trace_id: &str, span_id: String, agent: &str, tenant: &str, start: i64, duration: u64, status: u16) -> SpanRow {
    let mut request = span(
        trace_id,
        span_id,
        "",
        "POST /api/agents/:agentId/generate".into(),
        start,
        duration,
        attrs(&[
            ("http.request.method", "POST".into()),
            ("http.route", "/api/agents/:agentId/generate".into()),
            ("url.path", format!("/api/agents/{agent}/generate")),
            ("glassbox.request", "true".into()),
            ("glassbox.agent", agent.into()),
            ("glassbox.tenant", tenant.into()),
            ("glassbox.api_key_id", api_key_of(tenant)),
            ("http.response.status_code", status.to_string()),
        ]),
    );
    request.span_kind = "Server".into();
    request.scope_name = "glassbox-server".into();
    if status >= 500 {
        request.status_code = StatusCode::Error;
    }
    request
}

/// The API key id a tenant's requests are made with.
pub fn api_key_of(tenant: &str) -> String {
    format!("key_{tenant}")
}

/// A request refused before any agent ran (budget exhausted or rate limited): a trace of its
/// request span alone.
fn refused(trace_id: &str, agent: &str, tenant: &str, start: i64, h: u64, expect: &mut Expect) -> TraceRows {
    let status = if h.is_multiple_of(2) { 402 } else { 429 };
    let duration = 200_000 + h % 300_000;
    let request = request_span(trace_id, format!("{:016x}", splitmix(h ^ 2)), agent, tenant, start, duration, status);
    expect.traces += 1;
    expect.refused += 1;
    let of_tenant = expect.by_tenant.entry(tenant.to_owned()).or_default();
    of_tenant.traces += 1;
    of_tenant.refused += 1;
    of_tenant.trace_ids.push(trace_id.to_owned());
    expect.durations_ns.push(duration);
    expect.starts.push((start, trace_id.to_owned()));
    expect.spans_by_trace.insert(trace_id.to_owned(), 1);
    expect.cost_by_trace.insert(trace_id.to_owned(), 0);
    TraceRows { spans: vec![request], usage: Vec::new() }
}

#[allow(clippy::too_many_arguments)]
fn build(
    trace_id: &str,
    agent: &str,
    tenant: &str,
    start: i64,
    n_chats: u64,
    n_tools: u64,
    failed: bool,
    h: u64,
    expect: &mut Expect,
) -> TraceRows {
    let root_id = format!("{:016x}", splitmix(h ^ 1));
    let mut spans = Vec::new();
    let mut usage = Vec::new();
    let mut at = start + 200_000;
    let mut cost_total = 0_i64;
    // Input processors and guardrails (a full pipeline: with the request, the agent run, the
    // model and tool calls and the output guardrail, about 10.5 spans a trace).
    let processor = |step: u64, name: &str, at: &mut i64, spans: &mut Vec<SpanRow>| {
        let duration = 150_000 + (h >> (step * 4)) % 200_000;
        spans.push(span(
            trace_id,
            format!("{:016x}", splitmix(h ^ (10 + step))),
            &root_id,
            name.to_owned(),
            *at,
            duration,
            attrs(&[("glassbox.processor", name.to_owned()), ("glassbox.guardrail.decision", "allow".into())]),
        ));
        *at += i64::try_from(duration).unwrap_or(0);
    };
    let inputs = ["process_input normalize", "process_input length", "process_input pii", "guardrail injection", "guardrail topic"];
    for (step, name) in inputs.iter().enumerate() {
        processor(step as u64, name, &mut at, &mut spans);
    }
    for call in 0..n_chats {
        let (model, provider, price_in, price_out) = MODELS[((h >> (24 + call * 2)) % 3) as usize];
        let input_tokens = 100 + (h >> (call * 7)) % 900;
        let output_tokens = 20 + (h >> (call * 5 + 3)) % 300;
        let latency = (40 + (h >> (call * 3 + 11)) % 400) * MS;
        let cost =
            i64::try_from(input_tokens).unwrap_or(0) * price_in + i64::try_from(output_tokens).unwrap_or(0) * price_out;
        let error = failed && call == n_chats - 1;
        let span_id = format!("{:016x}", splitmix(h ^ (100 + call)));
        let mut chat = span(
            trace_id,
            span_id.clone(),
            &root_id,
            format!("chat {model}"),
            at,
            latency,
            attrs(&[
                ("gen_ai.operation.name", "chat".into()),
                ("gen_ai.provider.name", provider.into()),
                ("gen_ai.request.model", model.into()),
                ("gen_ai.response.model", model.into()),
                ("gen_ai.usage.input_tokens", input_tokens.to_string()),
                ("gen_ai.usage.output_tokens", output_tokens.to_string()),
                ("glassbox.cost_usd", usd_text(cost)),
                (
                    "gen_ai.input.messages",
                    format!(
                        r#"[{{"role":"user","parts":[{{"type":"text","content":"question {call} for {agent}"}}]}}]"#
                    ),
                ),
                (
                    "gen_ai.output.messages",
                    format!(r#"[{{"role":"assistant","parts":[{{"type":"text","content":"answer {call}"}}]}}]"#),
                ),
            ]),
        );
        chat.span_kind = "Client".into();
        chat.events.push(SpanEvent {
            timestamp_ns: at + 1_000_000,
            name: "gen_ai.first_token".into(),
            attributes: Vec::new(),
        });
        if error {
            chat.status_code = StatusCode::Error;
            chat.status_message = "provider timed out".into();
        }
        spans.push(chat);
        usage.push(UsageRow {
            timestamp_ns: at,
            trace_id: trace_id.to_owned(),
            span_id,
            tenant: tenant.into(),
            api_key_id: String::new(),
            agent: agent.into(),
            workflow: String::new(),
            provider: provider.into(),
            model: model.into(),
            input_tokens,
            output_tokens,
            cached_input_tokens: 0,
            reasoning_tokens: 0,
            cost_nano_usd: cost,
            cost_unknown: false,
            latency_ns: latency,
            time_to_first_token_ns: 0,
            status: if error { "error".into() } else { "ok".into() },
            error_type: if error { "provider_timeout".into() } else { String::new() },
        });
        expect.calls += 1;
        expect.usage_cost_nano_usd += cost;
        let of_tenant = expect.by_tenant.entry(tenant.to_owned()).or_default();
        of_tenant.calls += 1;
        of_tenant.usage_cost_nano_usd += cost;
        of_tenant.input_tokens += input_tokens;
        of_tenant.output_tokens += output_tokens;
        expect.input_tokens += input_tokens;
        expect.output_tokens += output_tokens;
        cost_total += cost;
        at += i64::try_from(latency).unwrap_or(0);
        if call < n_tools {
            let duration = (5 + (h >> (call + 30)) % 50) * MS;
            spans.push(span(
                trace_id,
                format!("{:016x}", splitmix(h ^ (200 + call))),
                &root_id,
                "execute_tool search_docs".into(),
                at,
                duration,
                attrs(&[("gen_ai.operation.name", "execute_tool".into()), ("gen_ai.tool.name", "search_docs".into())]),
            ));
            at += i64::try_from(duration).unwrap_or(0);
        }
    }
    processor(inputs.len() as u64, "guardrail pii-out", &mut at, &mut spans);
    let end = at + 100_000;
    // The request span from `start` to `end`; the agent run inside it, 50 µs in at each end.
    let request_id = format!("{:016x}", splitmix(h ^ 2));
    let duration = u64::try_from(end - start).unwrap_or(0);
    let request = request_span(trace_id, request_id.clone(), agent, tenant, start, duration, if failed { 502 } else { 200 });
    let mut root = span(
        trace_id,
        root_id.clone(),
        &request_id,
        format!("invoke_agent {agent}"),
        start + 50_000,
        duration - 100_000,
        attrs(&[
            ("gen_ai.operation.name", "invoke_agent".into()),
            ("gen_ai.agent.name", agent.into()),
            ("glassbox.tenant", tenant.into()),
        ]),
    );
    if failed {
        root.status_code = StatusCode::Error;
    }
    // Some runs that did not fail were ended by the injection guardrail.
    let blocked = !failed && (h >> 40) % 9 == 4;
    if blocked {
        root.span_attributes.push(("glassbox.tripwire.processor".into(), "guardrail injection".into()));
        root.span_attributes.push(("glassbox.tripwire.reason".into(), "prompt injection detected".into()));
    }
    spans.insert(0, root);
    spans.insert(0, request);
    expect.traces += 1;
    expect.error_traces += u64::from(failed);
    expect.blocked += u64::from(blocked);
    let of_tenant = expect.by_tenant.entry(tenant.to_owned()).or_default();
    of_tenant.traces += 1;
    of_tenant.error_traces += u64::from(failed);
    of_tenant.blocked += u64::from(blocked);
    of_tenant.cost_nano_usd += cost_total;
    of_tenant.trace_ids.push(trace_id.to_owned());
    expect.cost_nano_usd += cost_total;
    expect.durations_ns.push(u64::try_from(end - start).unwrap_or(0));
    expect.starts.push((start, trace_id.to_owned()));
    *expect.traces_by_agent.entry(agent.to_owned()).or_default() += 1;
    *expect.error_traces_by_agent.entry(agent.to_owned()).or_default() += u64::from(failed);
    expect.spans_by_trace.insert(trace_id.to_owned(), spans.len());
    expect.cost_by_trace.insert(trace_id.to_owned(), cost_total);
    TraceRows { spans, usage }
}

/// A trace whose every text is an attack or a mess: script tags, attribute breakouts, SQL,
/// 200 KB values, replacement characters from invalid UTF-8, control and bidi characters.
pub fn hostile(now_ns: i64, expect: &mut Expect) -> TraceRows {
    let invalid_utf8 = String::from_utf8_lossy(&[0x66, 0x6f, 0xff, 0xfe, 0xc3, 0x28, 0xe2, 0x82, 0x6f]).into_owned();
    let long = "A<b>".repeat(50_000);
    let mut rows = build(
        HOSTILE_TRACE_ID,
        HOSTILE_AGENT,
        HOSTILE_TENANT,
        now_ns - 30 * 60_000_000_000,
        1,
        1,
        true,
        0x5eed,
        expect,
    );
    for span in &mut rows.spans {
        span.span_name = format!("{} </title><script>window.pwned=3</script>", span.span_name);
        span.span_attributes.push(("x.breakout".into(), "\" onmouseover=\"window.pwned=4\" x=\"".into()));
        span.span_attributes.push(("x.long".into(), long.as_str().into()));
        span.span_attributes.push(("x.invalid_utf8".into(), invalid_utf8.as_str().into()));
        span.span_attributes.push(("x.controls".into(), "nul\u{0}bell\u{7}rtl\u{202e}txt.exe".into()));
        span.span_attributes.push(("<svg onload=window.pwned=5>".into(), "key is hostile".into()));
        span.span_attributes
            .push(("http.request.header.authorization".into(), "Bearer sk-live-must-never-render".into()));
        span.events.push(SpanEvent {
            timestamp_ns: span.timestamp_ns,
            name: "<iframe src=javascript:alert(6)>".into(),
            attributes: vec![("</li><script>".into(), "<style>body{display:none}</style>".into())],
        });
        if let Some((_, value)) = span.span_attributes.iter_mut().find(|(key, _)| key == "gen_ai.input.messages") {
            *value = format!("</pre><script>window.pwned=7</script>{invalid_utf8}{}", "x".repeat(150_000)).into();
        }
    }
    for row in &mut rows.usage {
        row.model = HOSTILE_MODEL.into();
    }
    rows
}
