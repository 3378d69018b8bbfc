//! The scenarios every store backend must pass, the deterministic data they use, and the
//! reference answers they are checked against.
//!
//! # Running the suite against a backend
//! Give [`conformance_tests!`] an expression that evaluates, inside an async test, to a fresh
//! [`Subject`]: an empty store of its own (no other test sees it) whose migrations have NOT
//! been applied yet (every scenario calls `migrate()` itself). It expands into one
//! `#[tokio::test]` per scenario, named after the scenario:
//! ```ignore
//! // tests/conformance/<backend>.rs
//! async fn fresh_store() -> Subject {
//!     let (store, guard) = /* a new database, and whatever must live as long as the test */;
//!     Subject::new(Arc::new(store), guard)
//! }
//! conformance_tests!(fresh_store().await);
//! ```
//! The keep-alive value (a temp dir, a handle that drops the test database, ...) is dropped
//! after the scenario. A scenario can also be called directly:
//! `suite::round_trip_spans(subject.backend.clone(), subject.reader.clone()).await`.
//!
//! # What the scenarios pin down (beyond the trait docs)
//! - Trace index rules (also in `migrations/sqlite/0003_trace_index.sql`): start = min span
//!   Timestamp; end = max(Timestamp + Duration); root span name = SpanName of the earliest span,
//!   ties to the smallest SpanId; agent / tenant = the non-empty `gen_ai.agent.name` /
//!   `glassbox.tenant` of the earliest span carrying one (ties: smallest SpanId), else "";
//!   has_error = any span with StatusCode Error; span_count = distinct spans; input/output
//!   tokens = sums of `gen_ai.usage.input_tokens` / `gen_ai.usage.output_tokens` over spans whose
//!   `gen_ai.operation.name` is `chat` (a non-number counts 0); cost = sum of `glassbox.cost_usd`
//!   (decimal string) over all spans in nano-USD; model filter = any chat span's
//!   `gen_ai.request.model`; API key filter = any span's `glassbox.api_key_id`. Spans of one
//!   trace may arrive over several batches, in any order.
//! - `list_traces`: newest first by (start desc, trace id desc); `range` matches the trace's
//!   start; `min_duration_ns` compares end - start; filters combine with AND; `limit` is capped
//!   at 1000 and 0 is `InvalidQuery`; `next` is `None` exactly when no trace follows.
//! - `trace_spans` / `trace_usage`: ordered by timestamp (the suite sorts ties by span id);
//!   attribute order within a span is not compared (the suite sorts attributes).
//! - `usage_by`: `[from, to)` on the call's timestamp; cost desc, then key asc (byte order);
//!   Day keys are UTC `YYYY-MM-DD`.
//! - `latency`: see `LatencyRow`'s doc; bucket 0 is `InvalidQuery`.
//! - A retried batch with the same token and rows writes nothing twice, trace index included.
//! - Hostile text (quotes, SQL, JSON, unicode, NUL, 100 KB) goes in and comes out unchanged.

#![allow(dead_code)]

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use glassbox_store::query::Cursor;
use glassbox_store::{
    Backend, LatencyBy, LatencyRow, PageRequest, SpanEvent, SpanLink, SpanRow, StatusCode, StoreError, TimeRange,
    RequestBucket, RequestStats, TraceFilter, TraceReader, TraceSummary, UsageBy, UsageGroup, UsageRow,
};

/// One backend under test, as the scenarios take it.
pub struct Subject {
    pub backend: Arc<dyn Backend>,
    pub reader: Arc<dyn TraceReader>,
    _keep_alive: Box<dyn Any + Send + Sync>,
}

impl Subject {
    pub fn new<S: Backend + TraceReader>(store: Arc<S>, keep_alive: impl Any + Send + Sync) -> Self {
        Self { backend: store.clone(), reader: store, _keep_alive: Box::new(keep_alive) }
    }
}

/// Expands into one `#[tokio::test]` per scenario of this suite; see the module doc.
macro_rules! conformance_tests {
    ($subject:expr) => {
        conformance_tests!(@each $subject;
            migrations_are_noop_second_time,
            empty_store_reads,
            invalid_queries_are_refused,
            round_trip_spans,
            round_trip_usage,
            trace_index_summaries,
            trace_index_merges_batches_in_any_order,
            trace_index_rules,
            filters_each_alone_and_combined,
            cursor_pagination_visits_every_trace_once,
            page_limit_is_capped_at_1000,
            usage_grouping_by_agent_model_tenant_day,
            latency_percentiles,
            request_stats_per_bucket_and_total,
            tenant_scoped_aggregates,
            dedup_token_makes_retries_idempotent,
            hostile_strings_round_trip,
        );
    };
    (@each $subject:expr; $($scenario:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                let subject: $crate::suite::Subject = $subject;
                $crate::suite::$scenario(subject.backend.clone(), subject.reader.clone()).await;
                drop(subject);
            }
        )+
    };
}

// ---------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------

pub async fn migrations_are_noop_second_time(backend: Arc<dyn Backend>, _reader: Arc<dyn TraceReader>) {
    let first = backend.migrate().await.expect("first migrate");
    let mut known: Vec<u32> = first.applied.iter().chain(&first.already_applied).copied().collect();
    known.sort_unstable();
    assert!(!known.is_empty(), "a backend has at least one migration");
    assert!(known.windows(2).all(|pair| pair[0] < pair[1]), "each version reported once: {first:?}");
    for _ in 0..2 {
        let again = backend.migrate().await.expect("repeated migrate");
        assert!(again.applied.is_empty(), "nothing is applied twice: {again:?}");
        assert_eq!(again.already_applied, known);
    }
}

pub async fn empty_store_reads(backend: Arc<dyn Backend>, reader: Arc<dyn TraceReader>) {
    migrate(&backend).await;
    backend.ping().await.expect("ping");
    backend.insert_spans(&[], "empty-spans").await.expect("empty span batch");
    backend.insert_usage(&[], "empty-usage").await.expect("empty usage batch");
    let page = reader.list_traces(&TraceFilter::default(), &page_of(50)).await.expect("list");
    assert!(page.items.is_empty() && page.next.is_none(), "{page:?}");
    assert!(reader.trace_spans(&"0".repeat(32)).await.expect("spans").is_empty());
    assert!(reader.trace_usage(&"0".repeat(32)).await.expect("usage").is_empty());
    for by in USAGE_BYS {
        assert!(reader.usage_by(by, &everything()).await.expect("usage_by").is_empty());
    }
    assert!(reader.latency(LatencyBy::Model, &everything(), 60).await.expect("latency").is_empty());
}

pub async fn invalid_queries_are_refused(backend: Arc<dyn Backend>, reader: Arc<dyn TraceReader>) {
    migrate(&backend).await;
    let zero = reader.list_traces(&TraceFilter::default(), &page_of(0)).await;
    assert!(matches!(zero, Err(StoreError::InvalidQuery { .. })), "limit 0: {zero:?}");
    let zero_bucket = reader.latency(LatencyBy::Agent, &everything(), 0).await;
    assert!(matches!(zero_bucket, Err(StoreError::InvalidQuery { .. })), "bucket 0: {zero_bucket:?}");
    // A reversed range is not an error, just empty.
    let reversed = TimeRange { from_ns: BASE_NS + DAY_NS, to_ns: BASE_NS };
    assert!(reader.usage_by(UsageBy::Agent, &reversed).await.expect("reversed range").is_empty());
}

pub async fn round_trip_spans(backend: Arc<dyn Backend>, reader: Arc<dyn TraceReader>) {
    migrate(&backend).await;
    let dataset = Dataset::standard();
    insert(&backend, &dataset, "round-trip").await;
    for trace_id in dataset.trace_ids() {
        let stored = reader.trace_spans(&trace_id).await.expect("trace_spans");
        assert_ordered_by_time(stored.iter().map(|span| span.timestamp_ns));
        assert_eq!(normalized_spans(stored), normalized_spans(dataset.spans_of(&trace_id)), "trace {trace_id}");
    }
}

pub async fn round_trip_usage(backend: Arc<dyn Backend>, reader: Arc<dyn TraceReader>) {
    migrate(&backend).await;
    let dataset = Dataset::standard();
    insert(&backend, &dataset, "round-trip").await;
    for trace_id in dataset.trace_ids() {
        let stored = reader.trace_usage(&trace_id).await.expect("trace_usage");
        assert_ordered_by_time(stored.iter().map(|usage| usage.timestamp_ns));
        assert_eq!(sorted_usage(stored), sorted_usage(dataset.usage_of(&trace_id)), "trace {trace_id}");
    }
}

pub async fn trace_index_summaries(backend: Arc<dyn Backend>, reader: Arc<dyn TraceReader>) {
    migrate(&backend).await;
    let dataset = Dataset::standard();
    insert(&backend, &dataset, "summaries").await;
    let page = reader.list_traces(&TraceFilter::default(), &page_of(1000)).await.expect("list");
    assert_eq!(page.next, None);
    assert_summaries_eq(&page.items, &dataset.expected_list(&TraceFilter::default()));
}

/// Spans of a trace arrive shuffled over many small batches: children before their root,
/// one trace spread over several batches.
pub async fn trace_index_merges_batches_in_any_order(backend: Arc<dyn Backend>, reader: Arc<dyn TraceReader>) {
    migrate(&backend).await;
    let dataset = Dataset::standard();
    let mut spans = dataset.spans.clone();
    Rng::new(99).shuffle(&mut spans);
    for (batch_index, batch) in spans.chunks(5).enumerate() {
        backend.insert_spans(batch, &format!("shuffled-{batch_index}")).await.expect("insert spans");
    }
    let page = reader.list_traces(&TraceFilter::default(), &page_of(1000)).await.expect("list");
    assert_summaries_eq(&page.items, &dataset.expected_list(&TraceFilter::default()));
    for model in dataset.models() {
        let filter = TraceFilter { model: Some(model.clone()), ..TraceFilter::default() };
        let page = reader.list_traces(&filter, &page_of(1000)).await.expect("list by model");
        assert_eq!(trace_ids_of(&page.items), trace_ids_of(&dataset.expected_list(&filter)), "model {model}");
    }
}

/// The tie-breaks and edge cases of the trace index rules, on hand-made traces.
pub async fn trace_index_rules(backend: Arc<dyn Backend>, reader: Arc<dyn TraceReader>) {
    migrate(&backend).await;
    let t0 = BASE_NS + 10 * HOUR_NS;
    let ms: i64 = 1_000_000;

    // Two spans start at the same instant: the smaller span id names the trace.
    let tie = "a1000000000000000000000000000001";
    let tie_spans = [
        span(tie, "bbbbbbbbbbbbbbbb", "", "second by id", t0, 5 * MS, vec![]),
        span(tie, "aaaaaaaaaaaaaaaa", "", "first by id", t0, 3 * MS, vec![]),
    ];

    // A workflow runs an agent that calls a sub-agent. The agent is the earliest span's
    // non-empty `gen_ai.agent.name`; the tenant appears only on a later span; a child ends
    // after the root; an error deep down marks the trace.
    let nested = "a1000000000000000000000000000002";
    let mut nested_spans = vec![
        span(
            nested,
            "1000000000000001",
            "",
            "invoke_workflow triage",
            t0,
            100 * MS,
            attrs(&[("gen_ai.agent.name", "")]),
        ),
        span(
            nested,
            "1000000000000002",
            "1000000000000001",
            "invoke_agent planner",
            t0 + ms,
            90 * MS,
            attrs(&[("gen_ai.operation.name", "invoke_agent"), ("gen_ai.agent.name", "planner")]),
        ),
        span(
            nested,
            "1000000000000003",
            "1000000000000002",
            "invoke_agent writer",
            t0 + 2 * ms,
            150 * MS,
            attrs(&[
                ("gen_ai.operation.name", "invoke_agent"),
                ("gen_ai.agent.name", "writer"),
                ("glassbox.tenant", "umbrella"),
            ]),
        ),
        span(
            nested,
            "1000000000000004",
            "1000000000000003",
            "chat gpt-4o-mini",
            t0 + 3 * ms,
            40 * MS,
            attrs(&[
                ("gen_ai.operation.name", "chat"),
                ("gen_ai.request.model", "gpt-4o-mini"),
                ("gen_ai.usage.input_tokens", "120"),
                ("gen_ai.usage.output_tokens", "30"),
                ("glassbox.cost_usd", "0.000036000"),
                ("glassbox.tenant", "ignored-later-tenant"),
            ]),
        ),
        // Not a chat span: its token attributes do not count, its cost does.
        span(
            nested,
            "1000000000000005",
            "1000000000000002",
            "execute_tool search",
            t0 + 50 * ms,
            20 * MS,
            attrs(&[
                ("gen_ai.operation.name", "execute_tool"),
                ("gen_ai.usage.input_tokens", "999"),
                ("gen_ai.usage.output_tokens", "999"),
                ("glassbox.cost_usd", "0.5"),
            ]),
        ),
        // A chat span with an unparsable token count (counts 0) and a whole-dollar cost.
        span(
            nested,
            "1000000000000006",
            "1000000000000003",
            "chat claude-sonnet-4-5",
            t0 + 80 * ms,
            60 * MS,
            attrs(&[
                ("gen_ai.operation.name", "chat"),
                ("gen_ai.request.model", "claude-sonnet-4-5"),
                ("gen_ai.usage.input_tokens", "n/a"),
                ("gen_ai.usage.output_tokens", "7"),
                ("glassbox.cost_usd", "2"),
            ]),
        ),
    ];
    nested_spans[4].status_code = StatusCode::Error;
    nested_spans[4].status_message = "search backend returned 503".into();

    // The later spans arrive first, the root last, one batch each.
    for (index, span) in tie_spans.iter().chain(&nested_spans).rev().enumerate() {
        backend.insert_spans(std::slice::from_ref(span), &format!("rules-{index}")).await.expect("insert");
    }

    let tie_summary = only_trace(&reader, tie).await;
    assert_eq!(tie_summary.root_span_name, "first by id");
    assert_eq!((tie_summary.start_ns, tie_summary.end_ns), (t0, t0 + 5 * ms));
    assert_eq!((tie_summary.agent.as_str(), tie_summary.tenant.as_str()), ("", ""));
    assert_eq!(tie_summary.span_count, 2);
    assert!(!tie_summary.has_error);

    let nested_summary = only_trace(&reader, nested).await;
    let expected = TraceSummary {
        trace_id: nested.into(),
        start_ns: t0,
        end_ns: t0 + 152 * ms,
        root_span_name: "invoke_workflow triage".into(),
        agent: "planner".into(),
        tenant: "umbrella".into(),
        has_error: true,
        span_count: 6,
        input_tokens: 120,
        output_tokens: 37,
        cost_nano_usd: 36_000 + 500_000_000 + 2_000_000_000,
    };
    assert_eq!(nested_summary, expected);
    // The reference model agrees with the hand-written expectation.
    let reference = Dataset { spans: tie_spans.iter().chain(&nested_spans).cloned().collect(), usage: vec![] };
    assert_summaries_eq(&[nested_summary, tie_summary], &reference.expected_list(&TraceFilter::default()));

    for (filter, expected_ids) in [
        (TraceFilter { agent: Some("planner".into()), ..TraceFilter::default() }, vec![nested]),
        (TraceFilter { agent: Some("writer".into()), ..TraceFilter::default() }, vec![]),
        (TraceFilter { tenant: Some("umbrella".into()), ..TraceFilter::default() }, vec![nested]),
        (TraceFilter { model: Some("claude-sonnet-4-5".into()), ..TraceFilter::default() }, vec![nested]),
        (TraceFilter { has_error: Some(false), ..TraceFilter::default() }, vec![tie]),
        (TraceFilter { min_duration_ns: Some(152 * MS), ..TraceFilter::default() }, vec![nested]),
        (TraceFilter { min_duration_ns: Some(152 * MS + 1), ..TraceFilter::default() }, vec![]),
    ] {
        let page = reader.list_traces(&filter, &page_of(10)).await.expect("list");
        assert_eq!(trace_ids_of(&page.items), expected_ids, "{filter:?}");
    }
}

pub async fn filters_each_alone_and_combined(backend: Arc<dyn Backend>, reader: Arc<dyn TraceReader>) {
    migrate(&backend).await;
    let dataset = Dataset::standard();
    insert(&backend, &dataset, "filters").await;
    let all = dataset.expected_list(&TraceFilter::default());
    let median = |mut values: Vec<i64>| {
        values.sort_unstable();
        values[values.len() / 2]
    };
    let median_duration = median(all.iter().map(|trace| trace.end_ns - trace.start_ns).collect()) as u64;
    let median_cost = median(all.iter().map(|trace| trace.cost_nano_usd).collect());
    let second_day = TimeRange { from_ns: BASE_NS + DAY_NS, to_ns: BASE_NS + 2 * DAY_NS };
    let some_trace = all[all.len() / 3].trace_id.clone();
    let none = TraceFilter::default();

    let mut filters = vec![
        TraceFilter { range: Some(second_day), ..none.clone() },
        TraceFilter { range: Some(TimeRange { from_ns: all[5].start_ns, to_ns: all[2].start_ns }), ..none.clone() },
        TraceFilter { has_error: Some(true), ..none.clone() },
        TraceFilter { has_error: Some(false), ..none.clone() },
        TraceFilter { min_duration_ns: Some(median_duration), ..none.clone() },
        TraceFilter { min_cost_nano_usd: Some(median_cost), ..none.clone() },
        TraceFilter { trace_id: Some(some_trace.clone()), ..none.clone() },
        TraceFilter { trace_id: Some("f".repeat(32)), ..none.clone() },
        TraceFilter { agent: Some("no-such-agent".into()), ..none.clone() },
    ];
    for agent in AGENTS {
        filters.push(TraceFilter { agent: Some(agent.into()), ..none.clone() });
    }
    for tenant in TENANTS {
        filters.push(TraceFilter { tenant: Some(tenant.into()), ..none.clone() });
    }
    for model in dataset.models() {
        filters.push(TraceFilter { model: Some(model), ..none.clone() });
    }
    let api_keys = dataset.api_keys();
    assert!(api_keys.len() >= 4, "the dataset uses several API keys: {api_keys:?}");
    for api_key_id in &api_keys {
        filters.push(TraceFilter { api_key_id: Some(api_key_id.clone()), ..none.clone() });
    }
    filters.extend([
        TraceFilter { api_key_id: Some("key_nobody".into()), ..none.clone() },
        TraceFilter { api_key_id: Some(api_keys[0].clone()), range: Some(second_day), ..none.clone() },
        TraceFilter {
            api_key_id: Some(api_keys[1].clone()),
            has_error: Some(false),
            min_cost_nano_usd: Some(1),
            ..none.clone()
        },
    ]);
    filters.extend([
        TraceFilter {
            agent: Some(AGENTS[0].into()),
            tenant: Some(TENANTS[1].into()),
            has_error: Some(false),
            ..none.clone()
        },
        TraceFilter {
            model: Some(MODELS[2].model.into()),
            range: Some(second_day),
            min_cost_nano_usd: Some(median_cost),
            ..none.clone()
        },
        TraceFilter {
            tenant: Some(TENANTS[0].into()),
            has_error: Some(true),
            min_duration_ns: Some(median_duration / 2),
            ..none.clone()
        },
        TraceFilter { trace_id: Some(some_trace), agent: Some("no-such-agent".into()), ..none.clone() },
        TraceFilter {
            range: Some(TimeRange { from_ns: BASE_NS, to_ns: BASE_NS + 3 * DAY_NS }),
            agent: Some(AGENTS[1].into()),
            tenant: Some(TENANTS[2].into()),
            model: Some(MODELS[0].model.into()),
            has_error: Some(false),
            min_duration_ns: Some(1),
            min_cost_nano_usd: Some(1),
            trace_id: None,
            api_key_id: None,
        },
    ]);

    let mut non_empty = 0;
    for filter in &filters {
        let expected = dataset.expected_list(filter);
        let page = reader.list_traces(filter, &page_of(1000)).await.expect("list");
        assert_eq!(page.next, None);
        assert_summaries_eq(&page.items, &expected);
        if !expected.is_empty() && expected.len() < all.len() {
            non_empty += 1;
        }
    }
    assert!(non_empty >= filters.len() / 2, "the dataset exercises the filters ({non_empty} selective)");
}

pub async fn cursor_pagination_visits_every_trace_once(backend: Arc<dyn Backend>, reader: Arc<dyn TraceReader>) {
    migrate(&backend).await;
    let dataset = Dataset::standard();
    insert(&backend, &dataset, "pages").await;
    let filters = [
        TraceFilter::default(),
        TraceFilter { tenant: Some(TENANTS[0].into()), ..TraceFilter::default() },
        TraceFilter { has_error: Some(false), ..TraceFilter::default() },
        // Time ranges: a backend may search them in windows from the end (ClickHouse does).
        TraceFilter { range: Some(everything()), ..TraceFilter::default() },
        TraceFilter {
            range: Some(TimeRange { from_ns: BASE_NS + HOUR_NS, to_ns: BASE_NS + 2 * DAY_NS + 20 * HOUR_NS }),
            ..TraceFilter::default()
        },
        TraceFilter {
            range: Some(TimeRange { from_ns: BASE_NS, to_ns: BASE_NS + 3 * DAY_NS }),
            tenant: Some(TENANTS[1].into()),
            ..TraceFilter::default()
        },
        // The API key filter (ClickHouse: a subquery on another table), with and without a range.
        TraceFilter { api_key_id: Some(RELAY_KEY.into()), ..TraceFilter::default() },
        TraceFilter {
            range: Some(TimeRange { from_ns: BASE_NS + HOUR_NS, to_ns: BASE_NS + 2 * DAY_NS + 20 * HOUR_NS }),
            api_key_id: Some(RELAY_KEY.into()),
            ..TraceFilter::default()
        },
    ];
    for filter in &filters {
        let expected = trace_ids_of(&dataset.expected_list(filter));
        for limit in [1, 2, 7, (expected.len() as u32).max(1), 1000] {
            let mut seen = Vec::new();
            let mut after: Option<Cursor> = None;
            loop {
                let page =
                    reader.list_traces(filter, &PageRequest { after: after.clone(), limit }).await.expect("page");
                assert!(page.items.len() <= limit as usize);
                seen.extend(trace_ids_of(&page.items));
                match page.next {
                    Some(next) => {
                        assert_eq!(page.items.len(), limit as usize, "only a last page is short");
                        let last = page.items.last().expect("a page with a cursor has items");
                        assert_eq!((next.start_ns, next.trace_id.as_str()), (last.start_ns, last.trace_id.as_str()));
                        after = Some(next);
                    }
                    None => break,
                }
                assert!(seen.len() <= expected.len(), "pagination does not loop");
            }
            assert_eq!(seen, expected, "limit {limit}, {filter:?}");
        }
    }
}

pub async fn page_limit_is_capped_at_1000(backend: Arc<dyn Backend>, reader: Arc<dyn TraceReader>) {
    migrate(&backend).await;
    let mut rng = Rng::new(7);
    let spans: Vec<SpanRow> = (0..1003)
        .map(|index| {
            span(&rng.hex(32), &rng.hex(16), "", "invoke_agent tiny", BASE_NS + index * 1_000_000, 1_000, vec![])
        })
        .collect();
    backend.insert_spans(&spans, "capped").await.expect("insert");
    let first = reader.list_traces(&TraceFilter::default(), &page_of(5000)).await.expect("first page");
    assert_eq!(first.items.len(), 1000);
    let next = first.next.expect("more follow");
    let second = reader.list_traces(&TraceFilter::default(), &PageRequest { after: Some(next), limit: 5000 }).await;
    let second = second.expect("second page");
    assert_eq!(second.items.len(), 3);
    assert_eq!(second.next, None);
}

pub async fn usage_grouping_by_agent_model_tenant_day(backend: Arc<dyn Backend>, reader: Arc<dyn TraceReader>) {
    migrate(&backend).await;
    let dataset = Dataset::standard();
    insert(&backend, &dataset, "usage-by").await;
    let ranges = [
        everything(),
        TimeRange { from_ns: BASE_NS + DAY_NS, to_ns: BASE_NS + 2 * DAY_NS },
        TimeRange { from_ns: BASE_NS + DAY_NS / 2, to_ns: BASE_NS + 2 * DAY_NS + DAY_NS / 3 },
        TimeRange { from_ns: BASE_NS, to_ns: BASE_NS },
    ];
    for range in &ranges {
        for by in USAGE_BYS {
            let groups = reader.usage_by(by, range).await.expect("usage_by");
            assert_eq!(groups, dataset.expected_usage_by(by, range), "{by:?} over {range:?}");
        }
    }
    let days = reader.usage_by(UsageBy::Day, &everything()).await.expect("by day");
    let mut keys: Vec<&str> = days.iter().map(|group| group.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["2026-11-02", "2026-11-03", "2026-11-04"]);
    // Equal costs are ordered by key: the two unpriced models cost 0.
    let models = reader.usage_by(UsageBy::Model, &everything()).await.expect("by model");
    let unpriced: Vec<&str> =
        models.iter().filter(|group| group.cost_nano_usd == 0).map(|group| group.key.as_str()).collect();
    assert_eq!(unpriced, ["llama-3.1-8b", "qwen2.5-7b"]);
}

pub async fn latency_percentiles(backend: Arc<dyn Backend>, reader: Arc<dyn TraceReader>) {
    migrate(&backend).await;
    let dataset = Dataset::standard();
    insert(&backend, &dataset, "latency").await;
    let ranges = [everything(), TimeRange { from_ns: BASE_NS + DAY_NS / 2, to_ns: BASE_NS + 2 * DAY_NS }];
    for range in &ranges {
        for by in [LatencyBy::Agent, LatencyBy::Model] {
            for bucket_secs in [60, 3600, 86_400, 7 * 86_400] {
                let rows = reader.latency(by, range, bucket_secs).await.expect("latency");
                let expected = dataset.expected_latency(by, range, bucket_secs);
                assert_latency_eq(&rows, &expected, &format!("{by:?} bucket {bucket_secs}s over {range:?}"));
            }
        }
    }
    // A hand-checked case: 20 calls of 1..=20 ms in one bucket.
    let calls: Vec<UsageRow> = (1..=20u64)
        .map(|index| {
            let mut usage = dataset.usage[0].clone();
            usage.span_id = format!("{index:016x}");
            usage.model = "percentile-model".into();
            usage.timestamp_ns = BASE_NS + 5 * DAY_NS + index as i64;
            usage.latency_ns = index * 1_000_000;
            usage
        })
        .collect();
    backend.insert_usage(&calls, "percentiles").await.expect("insert");
    let range = TimeRange { from_ns: BASE_NS + 5 * DAY_NS, to_ns: BASE_NS + 6 * DAY_NS };
    let rows = reader.latency(LatencyBy::Model, &range, 3600).await.expect("latency");
    let expected = [LatencyRow {
        key: "percentile-model".into(),
        bucket_start_ns: BASE_NS + 5 * DAY_NS,
        calls: 20,
        p50_ms: 11.0,
        p95_ms: 20.0,
        p99_ms: 20.0,
    }];
    assert_latency_eq(&rows, &expected, "1..=20 ms");
}

/// `request_stats` equals what the reference computes from the rows by `RequestStats`'
/// definition: over the range's whole periods and its partial ones, for hourly, 6-hourly,
/// daily and half-hour buckets (ClickHouse: request rollup per minute, usage rollup per hour
/// or the rows) and 90 s buckets (the rows alone).
pub async fn request_stats_per_bucket_and_total(backend: Arc<dyn Backend>, reader: Arc<dyn TraceReader>) {
    migrate(&backend).await;
    let dataset = Dataset::standard().with_requests();
    insert(&backend, &dataset, "stats").await;
    let ranges = [
        everything(),
        TimeRange { from_ns: BASE_NS + DAY_NS / 2 + 17 * MS as i64, to_ns: BASE_NS + 2 * DAY_NS + 7 * HOUR_NS + 3 },
        TimeRange { from_ns: BASE_NS + HOUR_NS, to_ns: BASE_NS + 20 * HOUR_NS },
        TimeRange { from_ns: BASE_NS - 2 * DAY_NS, to_ns: BASE_NS - DAY_NS },
    ];
    for range in ranges {
        for bucket_secs in [3_600_u32, 6 * 3_600, 86_400, 1_800, 90] {
            let expected = dataset.expected_request_stats(&range, bucket_secs, None);
            let actual = reader.request_stats(&range, bucket_secs).await.expect("request stats");
            assert_eq!(actual, expected, "range {range:?}, bucket {bucket_secs}s");
        }
    }
    let stats = reader.request_stats(&everything(), 86_400).await.expect("request stats");
    assert!(stats.requests > 30 && stats.requests < 48, "unmarked server spans are not requests: {stats:?}");
    assert!(stats.errors > 0 && stats.refused > 0 && stats.blocked > 0, "{stats:?}");
    assert_eq!(stats.buckets.len(), 3, "{stats:?}");
    let zero = reader.request_stats(&everything(), 0).await;
    assert!(matches!(zero, Err(StoreError::InvalidQuery { .. })), "{zero:?}");
}

/// `usage_by_tenant`, `latency_of_tenant` and `request_stats_of_tenant` answer what the
/// unscoped queries answer over that tenant's usage rows / request spans alone; an unknown
/// tenant sees nothing.
pub async fn tenant_scoped_aggregates(backend: Arc<dyn Backend>, reader: Arc<dyn TraceReader>) {
    migrate(&backend).await;
    let dataset = Dataset::standard().with_requests();
    insert(&backend, &dataset, "tenants").await;
    let mut tenants: BTreeSet<String> = dataset.usage.iter().map(|usage| usage.tenant.clone()).collect();
    assert!(tenants.len() >= 2, "the dataset has several tenants: {tenants:?}");
    tenants.insert("no-such-tenant".into());
    let ranges = [
        everything(),
        TimeRange { from_ns: BASE_NS + DAY_NS, to_ns: BASE_NS + 2 * DAY_NS },
        TimeRange { from_ns: BASE_NS + DAY_NS / 2, to_ns: BASE_NS + 2 * DAY_NS + 7 * HOUR_NS },
    ];
    for tenant in &tenants {
        let only = Dataset {
            spans: dataset.spans.clone(),
            usage: dataset.usage.iter().filter(|usage| &usage.tenant == tenant).cloned().collect(),
        };
        for range in &ranges {
            for by in USAGE_BYS {
                let groups = reader.usage_by_tenant(by, range, Some(tenant)).await.expect("usage_by_tenant");
                assert_eq!(groups, only.expected_usage_by(by, range), "{tenant}: {by:?} over {range:?}");
            }
            for by in [LatencyBy::Agent, LatencyBy::Model] {
                let rows = reader.latency_of_tenant(by, range, 3600, Some(tenant)).await.expect("latency_of_tenant");
                let expected = only.expected_latency(by, range, 3600);
                assert_latency_eq(&rows, &expected, &format!("{tenant}: {by:?} over {range:?}"));
            }
            for bucket_secs in [3_600_u32, 86_400] {
                let expected = dataset.expected_request_stats(range, bucket_secs, Some(tenant));
                let actual = reader.request_stats_of_tenant(range, bucket_secs, Some(tenant)).await.expect("stats");
                assert_eq!(actual, expected, "{tenant}: range {range:?}, bucket {bucket_secs}s");
            }
        }
    }
    // `None` is every tenant: the unscoped answers.
    let all = reader.request_stats_of_tenant(&everything(), 86_400, None).await.expect("stats");
    assert_eq!(all, reader.request_stats(&everything(), 86_400).await.expect("stats"));
    assert_eq!(all, dataset.expected_request_stats(&everything(), 86_400, None));
    // Requests refused before their key was read carry no tenant: the empty tenant's.
    let anonymous = reader.request_stats_of_tenant(&everything(), 86_400, Some("")).await.expect("stats");
    assert!(anonymous.requests > 0, "{anonymous:?}");
    assert_eq!(anonymous, dataset.expected_request_stats(&everything(), 86_400, Some("")));
}

pub async fn dedup_token_makes_retries_idempotent(backend: Arc<dyn Backend>, reader: Arc<dyn TraceReader>) {
    migrate(&backend).await;
    let dataset = Dataset::standard();
    for attempt in 0..3 {
        for (index, batch) in dataset.spans.chunks(40).enumerate() {
            backend.insert_spans(batch, &format!("retry-spans-{index}")).await.expect("spans");
        }
        for (index, batch) in dataset.usage.chunks(40).enumerate() {
            backend.insert_usage(batch, &format!("retry-usage-{index}")).await.expect("usage");
        }
        let page = reader.list_traces(&TraceFilter::default(), &page_of(1000)).await.expect("list");
        assert_summaries_eq(&page.items, &dataset.expected_list(&TraceFilter::default()));
        for trace_id in dataset.trace_ids().iter().take(5) {
            assert_eq!(
                reader.trace_spans(trace_id).await.expect("spans").len(),
                dataset.spans_of(trace_id).len(),
                "attempt {attempt}"
            );
            assert_eq!(reader.trace_usage(trace_id).await.expect("usage").len(), dataset.usage_of(trace_id).len());
        }
        let groups = reader.usage_by(UsageBy::Tenant, &everything()).await.expect("usage_by");
        assert_eq!(groups, dataset.expected_usage_by(UsageBy::Tenant, &everything()), "attempt {attempt}");
        // The latency rollup (ClickHouse's `latency_hourly`) counts a retried batch once too.
        let latency = reader.latency(LatencyBy::Model, &everything(), 3600).await.expect("latency");
        assert_latency_eq(&latency, &dataset.expected_latency(LatencyBy::Model, &everything(), 3600), "retried");
        // So does the request rollup (ClickHouse's `requests_minutely`).
        let stats = reader.request_stats(&everything(), 3600).await.expect("request stats");
        assert_eq!(stats, dataset.expected_request_stats(&everything(), 3600, None), "attempt {attempt}");
    }
}

pub async fn hostile_strings_round_trip(backend: Arc<dyn Backend>, reader: Arc<dyn TraceReader>) {
    migrate(&backend).await;
    let hostile = hostile_strings();
    let trace_id = "beef0000000000000000000000000001";
    let agent = "agent'); DROP TABLE trace_index; --";
    let tenant = "tenant \"quoted\" \\ 🚀 \u{0}";
    let model = "model' OR '1'='1";
    let root_id = "beef000000000001";
    let chat_id = "beef000000000002";
    let t0 = BASE_NS + 3 * HOUR_NS;

    let mut root_attributes: glassbox_store::Attributes =
        hostile.iter().enumerate().map(|(index, value)| (format!("hostile.{index}").into(), value.as_str().into())).collect();
    root_attributes.extend([
        ("gen_ai.agent.name".into(), agent.into()),
        ("glassbox.tenant".into(), tenant.into()),
        ("key with 'single' and \"double\" quotes".into(), "v".into()),
        ("ключ.🚀.\u{0}.key".into(), "unicode key".into()),
        ("'; DELETE FROM spans; --".into(), hostile[4].as_str().into()),
    ]);
    let mut root = span(trace_id, root_id, "", &hostile[3], t0, 2_000_000_000, root_attributes);
    root.service_name = hostile[9].clone();
    root.trace_state = hostile[1].clone();
    root.status_code = StatusCode::Error;
    root.status_message = hostile.join(" | ");
    root.resource_attributes = vec![("service.name".into(), hostile[0].as_str().into()), ("big".into(), hostile[11].as_str().into())];
    root.scope_name = hostile[6].clone();
    root.scope_version = hostile[10].clone();
    root.events = hostile
        .iter()
        .enumerate()
        .map(|(index, value)| SpanEvent {
            timestamp_ns: t0 + index as i64,
            name: value.as_str().into(),
            attributes: vec![(value.clone().into(), value.as_str().into())],
        })
        .collect();
    root.links = vec![SpanLink {
        trace_id: hostile[5].clone(),
        span_id: hostile[2].clone(),
        trace_state: hostile[7].clone(),
        attributes: vec![("link".into(), hostile[8].as_str().into())],
    }];
    let chat = span(
        trace_id,
        chat_id,
        root_id,
        &format!("chat {model}"),
        t0 + 1_000,
        500_000_000,
        attrs(&[
            ("gen_ai.operation.name", "chat"),
            ("gen_ai.request.model", model),
            ("gen_ai.usage.input_tokens", "10"),
            ("gen_ai.usage.output_tokens", "5"),
            ("glassbox.cost_usd", "0.000001000"),
        ]),
    );
    let usage = UsageRow {
        timestamp_ns: t0 + 1_000,
        trace_id: trace_id.into(),
        span_id: chat_id.into(),
        tenant: tenant.into(),
        api_key_id: hostile[4].clone(),
        agent: agent.into(),
        workflow: hostile[8].clone(),
        provider: hostile[9].clone(),
        model: model.into(),
        input_tokens: 10,
        output_tokens: 5,
        cached_input_tokens: 0,
        reasoning_tokens: 0,
        cost_nano_usd: 1_000,
        cost_unknown: false,
        latency_ns: 500_000_000,
        time_to_first_token_ns: 0,
        status: "error".into(),
        error_type: hostile[3].clone(),
    };
    let spans = vec![root, chat];
    backend.insert_spans(&spans, "hostile").await.expect("insert hostile spans");
    backend.insert_usage(std::slice::from_ref(&usage), "hostile").await.expect("insert hostile usage");

    let stored = reader.trace_spans(trace_id).await.expect("spans");
    assert_eq!(normalized_spans(stored), normalized_spans(spans));
    assert_eq!(reader.trace_usage(trace_id).await.expect("usage"), vec![usage]);

    let summary = only_trace(&reader, trace_id).await;
    assert_eq!((summary.agent.as_str(), summary.tenant.as_str()), (agent, tenant));
    assert_eq!(summary.root_span_name, hostile[3]);
    for filter in [
        TraceFilter { agent: Some(agent.into()), ..TraceFilter::default() },
        TraceFilter { tenant: Some(tenant.into()), ..TraceFilter::default() },
        TraceFilter { model: Some(model.into()), ..TraceFilter::default() },
    ] {
        let page = reader.list_traces(&filter, &page_of(10)).await.expect("list");
        assert_eq!(trace_ids_of(&page.items), [trace_id], "{filter:?}");
    }
    for filter in [
        TraceFilter { trace_id: Some("' OR '1'='1".into()), ..TraceFilter::default() },
        TraceFilter { agent: Some("%".into()), ..TraceFilter::default() },
        TraceFilter { tenant: Some("tenant%".into()), ..TraceFilter::default() },
        TraceFilter { model: Some("model_ OR 1=1".into()), ..TraceFilter::default() },
    ] {
        let page = reader.list_traces(&filter, &page_of(10)).await.expect("list");
        assert!(page.items.is_empty(), "{filter:?} matched {page:?}");
    }
    assert!(reader.trace_spans("' OR '1'='1").await.expect("spans").is_empty());
    let by_model = reader.usage_by(UsageBy::Model, &everything()).await.expect("usage_by");
    assert_eq!(by_model.iter().map(|group| group.key.as_str()).collect::<Vec<_>>(), [model]);
    let by_tenant = reader.usage_by(UsageBy::Tenant, &everything()).await.expect("usage_by");
    assert_eq!(by_tenant.iter().map(|group| group.key.as_str()).collect::<Vec<_>>(), [tenant]);
    let latency = reader.latency(LatencyBy::Agent, &everything(), 3600).await.expect("latency");
    assert_eq!(latency.iter().map(|row| row.key.as_str()).collect::<Vec<_>>(), [agent]);
}

/// Text that breaks naive quoting, escaping, JSON handling or C strings.
pub fn hostile_strings() -> Vec<String> {
    vec![
        "it's".into(),
        "say \"hi\"".into(),
        "back\\slash \\' \\\" \\\\".into(),
        "'; DROP TABLE spans; --".into(),
        "\") OR 1=1; /* comment */ --".into(),
        "%_*?[]^$ LIKE wildcards".into(),
        "{\"json\": [1, 2, {\"nested\": null}]}".into(),
        "$.SpanAttributes['gen_ai.agent.name']".into(),
        "line\nbreak\ttab\rreturn".into(),
        "emoji 🚀👩‍💻, 中文, עברית, e\u{301}, \u{feff}bom, \u{2028}sep".into(),
        "nul \u{0} inside \u{0}".into(),
        "x".repeat(100 * 1024),
        String::new(),
    ]
}

// ---------------------------------------------------------------------------------------
// The standard dataset and its reference answers
// ---------------------------------------------------------------------------------------

/// 2026-11-02T00:00:00Z.
pub const BASE_NS: i64 = days_from_civil(2026, 11, 2) * DAY_NS;
pub const HOUR_NS: i64 = 3_600_000_000_000;
pub const DAY_NS: i64 = 24 * HOUR_NS;
const MS: u64 = 1_000_000;

pub const AGENTS: [&str; 3] = ["support-bot", "research-assistant", "billing-agent"];
pub const TENANTS: [&str; 3] = ["acme", "globex", "initech"];
/// The API key of the first model call of every eighth trace (the others use their request's).
const RELAY_KEY: &str = "key_relay";
const TOOLS: [&str; 4] = ["search_docs", "lookup_invoice", "create_ticket", "fetch_url"];
const USAGE_BYS: [UsageBy; 4] = [UsageBy::Agent, UsageBy::Model, UsageBy::Tenant, UsageBy::Day];

pub struct ModelSpec {
    pub provider: &'static str,
    pub model: &'static str,
    /// Nano-USD per input and output token; `None` when the pricing table has no entry.
    pub price: Option<(u64, u64)>,
}

pub const MODELS: [ModelSpec; 5] = [
    ModelSpec { provider: "openai", model: "gpt-4o-mini", price: Some((150, 600)) },
    ModelSpec { provider: "openai", model: "gpt-4.1", price: Some((2_000, 8_000)) },
    ModelSpec { provider: "anthropic", model: "claude-sonnet-4-5", price: Some((3_000, 15_000)) },
    ModelSpec { provider: "ollama", model: "llama-3.1-8b", price: None },
    ModelSpec { provider: "ollama", model: "qwen2.5-7b", price: None },
];

/// Spans and usage rows of agent runs, generated from a seed: every run is an
/// `invoke_agent {agent}` root with `chat {model}` calls and `execute_tool {tool}` calls between
/// them, carrying the GenAI attributes Glassbox writes, plus one usage row per chat span.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub spans: Vec<SpanRow>,
    pub usage: Vec<UsageRow>,
}

#[derive(Clone, Copy, PartialEq)]
enum Failure {
    None,
    Tool,
    Chat,
}

impl Dataset {
    /// 48 runs over three UTC days (2026-11-02..04): every agent, tenant and model; failed
    /// tools and failed model calls; two traces that start at the same nanosecond; roots that
    /// end before their last child; links, events and a trace state.
    pub fn standard() -> Self {
        Self::generate(20261102, 48)
    }

    /// The dataset with the server's request marks: each trace's root (a `Server` span) is
    /// an API request (`glassbox.request`), except every 9th (a server span of another
    /// service, or a health check: not a request); some were refused (402, 429), some carry no
    /// tenant (refused before the key was read), the failed ones answered 502; every 4th
    /// trace's first model call carries a guardrail block, every 8th an empty tripwire
    /// attribute (not a block).
    pub fn with_requests(mut self) -> Self {
        let mut root_index = 0_usize;
        let mut first_chat: BTreeSet<String> = BTreeSet::new();
        let mut block_of: BTreeMap<String, usize> = BTreeMap::new();
        for span in &mut self.spans {
            if span.parent_span_id.is_empty() {
                let index = root_index;
                root_index += 1;
                block_of.insert(span.trace_id.clone(), index);
                if index.is_multiple_of(9) {
                    continue;
                }
                let status = match index % 7 {
                    2 => "429",
                    4 => "402",
                    _ if span.status_code == StatusCode::Error => "502",
                    _ => "200",
                };
                span.span_attributes.push(("glassbox.request".into(), "true".into()));
                span.span_attributes.push(("http.response.status_code".into(), status.into()));
                if index % 5 == 1 {
                    span.span_attributes.retain(|(key, _)| key != "glassbox.tenant");
                }
            }
        }
        for span in &mut self.spans {
            let Some(&index) = block_of.get(&span.trace_id) else { continue };
            if chat_model(span).is_none() || !first_chat.insert(span.trace_id.clone()) {
                continue;
            }
            if index % 4 == 3 {
                span.span_attributes.push(("glassbox.tripwire.processor".into(), "guardrail-topic".into()));
            } else if index % 8 == 1 {
                span.span_attributes.push(("glassbox.tripwire.processor".into(), Default::default()));
            }
        }
        self
    }

    /// The reference for `request_stats`, from the rows by `RequestStats`' definition.
    pub fn expected_request_stats(&self, range: &TimeRange, bucket_secs: u32, tenant: Option<&str>) -> RequestStats {
        let bucket_ns = i64::from(bucket_secs) * 1_000_000_000;
        let in_range = |at: i64| at >= range.from_ns && at < range.to_ns;
        let mut buckets: BTreeMap<i64, RequestBucket> = BTreeMap::new();
        fn bucket(buckets: &mut BTreeMap<i64, RequestBucket>, bucket_ns: i64, at: i64) -> &mut RequestBucket {
            let bucket_start_ns = at.div_euclid(bucket_ns) * bucket_ns;
            buckets.entry(bucket_start_ns).or_insert_with(|| RequestBucket { bucket_start_ns, ..RequestBucket::default() })
        }
        let mut durations = Vec::new();
        for span in self.spans.iter().filter(|span| in_range(span.timestamp_ns)) {
            let attribute =
                |key: &str| span.span_attributes.iter().find(|(k, _)| k == key).map_or("", |(_, value)| value.as_str());
            if tenant.is_some_and(|tenant| attribute("glassbox.tenant") != tenant) {
                continue;
            }
            let is_request = span.span_kind == "Server" && !attribute("glassbox.request").is_empty();
            let is_block = !attribute("glassbox.tripwire.processor").is_empty();
            if !is_request && !is_block {
                continue;
            }
            let entry = bucket(&mut buckets, bucket_ns, span.timestamp_ns);
            entry.blocked += u64::from(is_block);
            if is_request {
                entry.requests += 1;
                entry.errors += u64::from(span.status_code == StatusCode::Error);
                entry.refused += u64::from(matches!(attribute("http.response.status_code"), "402" | "429"));
                durations.push(span.duration_ns);
            }
        }
        for usage in self.usage.iter().filter(|usage| in_range(usage.timestamp_ns)) {
            if tenant.is_some_and(|tenant| usage.tenant != tenant) {
                continue;
            }
            let entry = bucket(&mut buckets, bucket_ns, usage.timestamp_ns);
            entry.input_tokens += usage.input_tokens;
            entry.output_tokens += usage.output_tokens;
            entry.cost_nano_usd += usage.cost_nano_usd;
        }
        let mut stats = RequestStats::default();
        for entry in buckets.values() {
            stats.requests += entry.requests;
            stats.errors += entry.errors;
            stats.refused += entry.refused;
            stats.blocked += entry.blocked;
            stats.input_tokens += entry.input_tokens;
            stats.output_tokens += entry.output_tokens;
            stats.cost_nano_usd += entry.cost_nano_usd;
        }
        durations.sort_unstable();
        let quantile = |p: f64| {
            if durations.is_empty() {
                return 0.0;
            }
            let index = ((p * durations.len() as f64) as usize).min(durations.len() - 1);
            durations[index] as f64 / 1_000_000.0
        };
        (stats.p50_ms, stats.p95_ms, stats.p99_ms) = (quantile(0.5), quantile(0.95), quantile(0.99));
        stats.buckets = buckets.into_values().collect();
        stats
    }

    pub fn generate(seed: u64, n_traces: usize) -> Self {
        let mut rng = Rng::new(seed);
        let mut dataset = Dataset { spans: Vec::new(), usage: Vec::new() };
        let mut previous_root: Option<(String, String)> = None;
        let mut previous_start = BASE_NS;
        for trace_index in 0..n_traces {
            let day = (trace_index % 3) as i64;
            let start = if trace_index % 16 == 5 {
                previous_start
            } else {
                BASE_NS + day * DAY_NS + rng.range(0, (DAY_NS - HOUR_NS) as u64) as i64
            };
            previous_start = start;
            let agent = AGENTS[rng.below(AGENTS.len() as u64) as usize];
            let tenant = TENANTS[rng.below(TENANTS.len() as u64) as usize];
            let api_key_id = format!("key_{tenant}_{}", rng.below(3));
            let failure = match trace_index % 6 {
                3 => Failure::Tool,
                5 => Failure::Chat,
                _ => Failure::None,
            };
            let trace_id = rng.hex(32);
            let root_id = rng.hex(16);
            let root_position = dataset.spans.len();
            let steps = rng.range(1, 4);
            let mut clock = start + rng.range(MS, 20 * MS) as i64;
            let mut run_failed = false;
            for step in 0..steps {
                let last_step = step + 1 == steps;
                let spec = &MODELS[rng.below(MODELS.len() as u64) as usize];
                let chat_id = rng.hex(16);
                let input_tokens = rng.range(50, 4_000);
                let chat_failed = failure == Failure::Chat && last_step;
                let output_tokens = if chat_failed { 0 } else { rng.range(10, 1_200) };
                let cached_input_tokens = if rng.below(3) == 0 { input_tokens / 2 } else { 0 };
                let reasoning_tokens = if spec.model == "gpt-4.1" { rng.range(0, 300) } else { 0 };
                let latency_ns = rng.range(150 * MS, 4_000 * MS);
                let streamed = rng.below(2) == 0;
                let time_to_first_token_ns = if streamed { rng.range(50 * MS, latency_ns) } else { 0 };
                let cost_nano_usd = spec.price.map_or(0, |(input_price, output_price)| {
                    (input_tokens * input_price + output_tokens * output_price) as i64
                });
                // Some traces carry a second key: their first model call relayed under another.
                let relayed = trace_index % 8 == 7 && step == 0;
                let call_key = if relayed { RELAY_KEY.to_owned() } else { api_key_id.clone() };
                let mut attributes = attrs(&[
                    ("gen_ai.operation.name", "chat"),
                    ("gen_ai.provider.name", spec.provider),
                    ("gen_ai.request.model", spec.model),
                    ("gen_ai.agent.name", agent),
                    ("glassbox.tenant", tenant),
                    ("glassbox.api_key_id", &call_key),
                ]);
                attributes.extend([
                    ("gen_ai.response.model".into(), format!("{}-2026-08-01", spec.model).into()),
                    (
                        "gen_ai.response.finish_reasons".into(),
                        if last_step { "[\"stop\"]" } else { "[\"tool_calls\"]" }.into(),
                    ),
                    ("gen_ai.usage.input_tokens".into(), input_tokens.to_string().into()),
                    ("gen_ai.usage.output_tokens".into(), output_tokens.to_string().into()),
                    ("gen_ai.usage.cache_read.input_tokens".into(), cached_input_tokens.to_string().into()),
                ]);
                if spec.price.is_some() {
                    attributes.push(("glassbox.cost_usd".into(), format_usd(cost_nano_usd).into()));
                }
                let mut chat =
                    span(&trace_id, &chat_id, &root_id, &format!("chat {}", spec.model), clock, latency_ns, attributes);
                chat.span_kind = "Client".into();
                if chat_failed {
                    run_failed = true;
                    chat.status_code = StatusCode::Error;
                    chat.status_message = "provider timed out after 30s".into();
                    chat.events = vec![SpanEvent {
                        timestamp_ns: clock + latency_ns as i64,
                        name: "exception".into(),
                        attributes: attrs(&[
                            ("exception.type", "ProviderTimeout"),
                            ("exception.message", "no response within 30s"),
                        ]),
                    }];
                }
                dataset.spans.push(chat);
                dataset.usage.push(UsageRow {
                    timestamp_ns: clock,
                    trace_id: trace_id.clone(),
                    span_id: chat_id,
                    tenant: tenant.into(),
                    api_key_id: call_key,
                    agent: agent.into(),
                    workflow: String::new(),
                    provider: spec.provider.into(),
                    model: spec.model.into(),
                    input_tokens,
                    output_tokens,
                    cached_input_tokens,
                    reasoning_tokens,
                    cost_nano_usd,
                    cost_unknown: spec.price.is_none(),
                    latency_ns,
                    time_to_first_token_ns,
                    status: if chat_failed { "error" } else { "ok" }.into(),
                    error_type: if chat_failed { "provider_timeout" } else { "" }.into(),
                });
                clock += (latency_ns + rng.range(MS, 5 * MS)) as i64;
                if !last_step {
                    let tool = TOOLS[rng.below(TOOLS.len() as u64) as usize];
                    let duration = rng.range(2 * MS, 800 * MS);
                    let mut attributes =
                        attrs(&[("gen_ai.operation.name", "execute_tool"), ("gen_ai.tool.name", tool)]);
                    attributes.push(("gen_ai.tool.call.id".into(), format!("call_{}", rng.hex(12)).into()));
                    let mut call = span(
                        &trace_id,
                        &rng.hex(16),
                        &root_id,
                        &format!("execute_tool {tool}"),
                        clock,
                        duration,
                        attributes,
                    );
                    if failure == Failure::Tool && step == 0 {
                        call.status_code = StatusCode::Error;
                        call.status_message = format!("{tool} failed: connection refused");
                    }
                    dataset.spans.push(call);
                    clock += (duration + rng.range(MS, 5 * MS)) as i64;
                }
            }
            let run_ns = (clock - start) as u64;
            let root_duration = if trace_index % 7 == 6 { run_ns / 2 } else { run_ns + rng.range(MS, 10 * MS) };
            let mut attributes = attrs(&[
                ("gen_ai.operation.name", "invoke_agent"),
                ("gen_ai.agent.name", agent),
                ("glassbox.tenant", tenant),
                ("glassbox.api_key_id", &api_key_id),
            ]);
            attributes.push(("gen_ai.conversation.id".into(), format!("conv_{}", rng.hex(8)).into()));
            let mut root =
                span(&trace_id, &root_id, "", &format!("invoke_agent {agent}"), start, root_duration, attributes);
            root.span_kind = "Server".into();
            root.status_code = if run_failed { StatusCode::Error } else { StatusCode::Ok };
            if run_failed {
                root.status_message = "agent run failed: provider_timeout".into();
            }
            if let Some((linked_trace, linked_span)) = previous_root.as_ref().filter(|_| trace_index % 9 == 4) {
                root.links = vec![SpanLink {
                    trace_id: linked_trace.clone(),
                    span_id: linked_span.clone(),
                    trace_state: String::new(),
                    attributes: attrs(&[("glassbox.link.kind", "retry_of")]),
                }];
            }
            if trace_index == 7 {
                root.trace_state = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7".into();
            }
            if trace_index % 5 == 1 {
                root.resource_attributes.push(("host.name".into(), "worker-2".into()));
            }
            // A batch's rows differ in every column the SQLite writer binds only on a change.
            if trace_index % 7 == 3 {
                root.service_name = "glassbox-worker".into();
                root.scope_name = "glassbox-server".into();
                root.scope_version = "0.2.0".into();
            }
            previous_root = Some((trace_id.clone(), root_id.clone()));
            dataset.spans.insert(root_position, root);
        }
        dataset
    }

    /// Trace ids in first-seen order.
    pub fn trace_ids(&self) -> Vec<String> {
        let mut seen = BTreeSet::new();
        self.spans.iter().filter(|span| seen.insert(span.trace_id.clone())).map(|span| span.trace_id.clone()).collect()
    }

    pub fn spans_of(&self, trace_id: &str) -> Vec<SpanRow> {
        self.spans.iter().filter(|span| span.trace_id == trace_id).cloned().collect()
    }

    pub fn usage_of(&self, trace_id: &str) -> Vec<UsageRow> {
        self.usage.iter().filter(|usage| usage.trace_id == trace_id).cloned().collect()
    }

    /// Every requested model of a chat span, sorted.
    pub fn models(&self) -> Vec<String> {
        let models: BTreeSet<String> =
            self.spans.iter().filter_map(|span| chat_model(span).map(str::to_owned)).collect();
        models.into_iter().collect()
    }

    /// Every API key id a span carries, sorted.
    pub fn api_keys(&self) -> Vec<String> {
        let keys: BTreeSet<String> = self.spans.iter().filter_map(|span| api_key(span).map(str::to_owned)).collect();
        keys.into_iter().collect()
    }

    /// What `list_traces(filter)` must answer, all pages together, by the rules in the
    /// module doc.
    pub fn expected_list(&self, filter: &TraceFilter) -> Vec<TraceSummary> {
        let mut by_trace: BTreeMap<&str, Vec<&SpanRow>> = BTreeMap::new();
        for span in &self.spans {
            by_trace.entry(&span.trace_id).or_default().push(span);
        }
        let mut summaries: Vec<TraceSummary> = by_trace
            .values()
            .filter(|spans| {
                let summary = summarize(spans);
                let models: BTreeSet<&str> = spans.iter().filter_map(|span| chat_model(span)).collect();
                let api_keys: BTreeSet<&str> = spans.iter().filter_map(|span| api_key(span)).collect();
                filter.range.is_none_or(|range| range.from_ns <= summary.start_ns && summary.start_ns < range.to_ns)
                    && filter.agent.as_ref().is_none_or(|agent| &summary.agent == agent)
                    && filter.tenant.as_ref().is_none_or(|tenant| &summary.tenant == tenant)
                    && filter.model.as_ref().is_none_or(|model| models.contains(model.as_str()))
                    && filter.api_key_id.as_ref().is_none_or(|key| api_keys.contains(key.as_str()))
                    && filter.has_error.is_none_or(|has_error| summary.has_error == has_error)
                    && filter.min_duration_ns.is_none_or(|min| (summary.end_ns - summary.start_ns) as u64 >= min)
                    && filter.min_cost_nano_usd.is_none_or(|min| summary.cost_nano_usd >= min)
                    && filter.trace_id.as_ref().is_none_or(|trace_id| &summary.trace_id == trace_id)
            })
            .map(|spans| summarize(spans))
            .collect();
        summaries.sort_by(|a, b| (b.start_ns, &b.trace_id).cmp(&(a.start_ns, &a.trace_id)));
        summaries
    }

    /// What `usage_by(by, range)` must answer.
    pub fn expected_usage_by(&self, by: UsageBy, range: &TimeRange) -> Vec<UsageGroup> {
        let mut groups: BTreeMap<String, UsageGroup> = BTreeMap::new();
        for usage in self.usage.iter().filter(|usage| in_range(range, usage.timestamp_ns)) {
            let key = match by {
                UsageBy::Agent => usage.agent.clone(),
                UsageBy::Model => usage.model.clone(),
                UsageBy::Tenant => usage.tenant.clone(),
                UsageBy::Day => utc_day(usage.timestamp_ns),
            };
            let group = groups.entry(key.clone()).or_insert_with(|| UsageGroup {
                key,
                calls: 0,
                input_tokens: 0,
                output_tokens: 0,
                cached_input_tokens: 0,
                cost_nano_usd: 0,
            });
            group.calls += 1;
            group.input_tokens += usage.input_tokens;
            group.output_tokens += usage.output_tokens;
            group.cached_input_tokens += usage.cached_input_tokens;
            group.cost_nano_usd += usage.cost_nano_usd;
        }
        let mut groups: Vec<UsageGroup> = groups.into_values().collect();
        groups.sort_by(|a, b| b.cost_nano_usd.cmp(&a.cost_nano_usd).then_with(|| a.key.cmp(&b.key)));
        groups
    }

    /// What `latency(by, range, bucket_secs)` must answer.
    pub fn expected_latency(&self, by: LatencyBy, range: &TimeRange, bucket_secs: u32) -> Vec<LatencyRow> {
        let bucket_ns = i64::from(bucket_secs) * 1_000_000_000;
        let mut groups: BTreeMap<(String, i64), Vec<u64>> = BTreeMap::new();
        for usage in self.usage.iter().filter(|usage| in_range(range, usage.timestamp_ns)) {
            let key = match by {
                LatencyBy::Agent => usage.agent.clone(),
                LatencyBy::Model => usage.model.clone(),
            };
            let bucket = usage.timestamp_ns.div_euclid(bucket_ns) * bucket_ns;
            groups.entry((key, bucket)).or_default().push(usage.latency_ns);
        }
        groups
            .into_iter()
            .map(|((key, bucket_start_ns), mut latencies)| {
                latencies.sort_unstable();
                let quantile = |p: f64| {
                    let index = ((p * latencies.len() as f64).floor() as usize).min(latencies.len() - 1);
                    latencies[index] as f64 / 1e6
                };
                LatencyRow {
                    key,
                    bucket_start_ns,
                    calls: latencies.len() as u64,
                    p50_ms: quantile(0.50),
                    p95_ms: quantile(0.95),
                    p99_ms: quantile(0.99),
                }
            })
            .collect()
    }
}

/// The trace index rules, written plainly over all of a trace's spans.
fn summarize(spans: &[&SpanRow]) -> TraceSummary {
    let earliest = |key: Option<&str>| {
        spans
            .iter()
            .filter_map(|span| match key {
                None => Some((span.timestamp_ns, &span.span_id, span.span_name.as_str())),
                Some(key) => span
                    .attribute(key)
                    .filter(|value| !value.is_empty())
                    .map(|value| (span.timestamp_ns, &span.span_id, value)),
            })
            .min()
            .map(|(_, _, value)| value.to_owned())
            .unwrap_or_default()
    };
    let chat_sum = |key: &str| -> u64 {
        spans
            .iter()
            .filter(|span| span.attribute("gen_ai.operation.name") == Some("chat"))
            .map(|span| span.attribute(key).and_then(|value| value.parse::<u64>().ok()).unwrap_or(0))
            .sum()
    };
    TraceSummary {
        trace_id: spans[0].trace_id.clone(),
        start_ns: spans.iter().map(|span| span.timestamp_ns).min().unwrap_or_default(),
        end_ns: spans.iter().map(|span| span.timestamp_ns + span.duration_ns as i64).max().unwrap_or_default(),
        root_span_name: earliest(None),
        agent: earliest(Some("gen_ai.agent.name")),
        tenant: earliest(Some("glassbox.tenant")),
        has_error: spans.iter().any(|span| span.status_code == StatusCode::Error),
        span_count: spans.len() as u64,
        input_tokens: chat_sum("gen_ai.usage.input_tokens"),
        output_tokens: chat_sum("gen_ai.usage.output_tokens"),
        cost_nano_usd: spans.iter().filter_map(|span| span.attribute("glassbox.cost_usd")).map(parse_usd).sum(),
    }
}

fn api_key(span: &SpanRow) -> Option<&str> {
    span.attribute("glassbox.api_key_id").filter(|key| !key.is_empty())
}

fn chat_model(span: &SpanRow) -> Option<&str> {
    if span.attribute("gen_ai.operation.name") != Some("chat") {
        return None;
    }
    span.attribute("gen_ai.request.model").filter(|model| !model.is_empty())
}

/// Whole dollars and up to nine decimals, the format the suite writes.
fn parse_usd(text: &str) -> i64 {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let whole: i64 = whole.parse().expect("the suite writes well-formed costs");
    let fraction: i64 = format!("{fraction:0<9}").parse().expect("the suite writes well-formed costs");
    whole * 1_000_000_000 + fraction
}

fn format_usd(nano_usd: i64) -> String {
    format!("{}.{:09}", nano_usd / 1_000_000_000, nano_usd % 1_000_000_000)
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

pub async fn migrate(backend: &Arc<dyn Backend>) {
    backend.migrate().await.expect("migrate");
}

/// Inserts a dataset in batches of 64, each with its own token.
pub async fn insert(backend: &Arc<dyn Backend>, dataset: &Dataset, label: &str) {
    for (index, batch) in dataset.spans.chunks(64).enumerate() {
        backend.insert_spans(batch, &format!("{label}-spans-{index}")).await.expect("insert spans");
    }
    for (index, batch) in dataset.usage.chunks(64).enumerate() {
        backend.insert_usage(batch, &format!("{label}-usage-{index}")).await.expect("insert usage");
    }
}

pub fn page_of(limit: u32) -> PageRequest {
    PageRequest { after: None, limit }
}

pub fn everything() -> TimeRange {
    TimeRange { from_ns: i64::MIN, to_ns: i64::MAX }
}

fn in_range(range: &TimeRange, timestamp_ns: i64) -> bool {
    range.from_ns <= timestamp_ns && timestamp_ns < range.to_ns
}

pub fn attrs(pairs: &[(&str, &str)]) -> glassbox_store::Attributes {
    pairs.iter().map(|(key, value)| ((*key).to_owned().into(), (*value).into())).collect()
}

/// A span with the fields every scenario sets; the rest plain.
pub fn span(
    trace_id: &str,
    span_id: &str,
    parent_span_id: &str,
    name: &str,
    timestamp_ns: i64,
    duration_ns: u64,
    span_attributes: glassbox_store::Attributes,
) -> SpanRow {
    SpanRow {
        timestamp_ns,
        trace_id: trace_id.into(),
        span_id: span_id.into(),
        parent_span_id: parent_span_id.into(),
        trace_state: String::new(),
        span_name: name.into(),
        span_kind: "Internal".into(),
        service_name: "glassbox".into(),
        resource_attributes: attrs(&[("service.name", "glassbox"), ("service.version", "0.1.0")]),
        scope_name: "glassbox-core".into(),
        scope_version: "0.1.0".into(),
        span_attributes,
        duration_ns,
        status_code: StatusCode::Unset,
        status_message: String::new(),
        events: Vec::new(),
        links: Vec::new(),
    }
}

async fn only_trace(reader: &Arc<dyn TraceReader>, trace_id: &str) -> TraceSummary {
    let filter = TraceFilter { trace_id: Some(trace_id.into()), ..TraceFilter::default() };
    let mut page = reader.list_traces(&filter, &page_of(10)).await.expect("list");
    assert_eq!(page.items.len(), 1, "trace {trace_id}: {page:?}");
    page.items.remove(0)
}

fn trace_ids_of(summaries: &[TraceSummary]) -> Vec<String> {
    summaries.iter().map(|summary| summary.trace_id.clone()).collect()
}

pub fn assert_summaries_eq(actual: &[TraceSummary], expected: &[TraceSummary]) {
    assert_eq!(trace_ids_of(actual), trace_ids_of(expected), "trace order");
    for (actual, expected) in actual.iter().zip(expected) {
        assert_eq!(actual, expected);
    }
}

fn assert_ordered_by_time(timestamps: impl Iterator<Item = i64>) {
    let timestamps: Vec<i64> = timestamps.collect();
    assert!(timestamps.windows(2).all(|pair| pair[0] <= pair[1]), "ordered by time: {timestamps:?}");
}

fn assert_latency_eq(actual: &[LatencyRow], expected: &[LatencyRow], context: &str) {
    let keys = |rows: &[LatencyRow]| -> Vec<(String, i64, u64)> {
        rows.iter().map(|row| (row.key.clone(), row.bucket_start_ns, row.calls)).collect()
    };
    assert_eq!(keys(actual), keys(expected), "{context}");
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
    for (actual, expected) in actual.iter().zip(expected) {
        assert!(
            close(actual.p50_ms, expected.p50_ms)
                && close(actual.p95_ms, expected.p95_ms)
                && close(actual.p99_ms, expected.p99_ms),
            "{context}: {actual:?} != {expected:?}"
        );
    }
}

/// Spans sorted by (time, id), with every attribute list sorted: the suite does not compare
/// attribute order.
fn normalized_spans(mut spans: Vec<SpanRow>) -> Vec<SpanRow> {
    for span in &mut spans {
        span.resource_attributes.sort();
        span.span_attributes.sort();
        for event in &mut span.events {
            event.attributes.sort();
        }
        for link in &mut span.links {
            link.attributes.sort();
        }
    }
    spans.sort_by(|a, b| (a.timestamp_ns, &a.span_id).cmp(&(b.timestamp_ns, &b.span_id)));
    spans
}

fn sorted_usage(mut rows: Vec<UsageRow>) -> Vec<UsageRow> {
    rows.sort_by(|a, b| (a.timestamp_ns, &a.span_id).cmp(&(b.timestamp_ns, &b.span_id)));
    rows
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
const fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// `YYYY-MM-DD` of a timestamp, in UTC.
fn utc_day(timestamp_ns: i64) -> String {
    let days = timestamp_ns.div_euclid(DAY_NS) + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// splitmix64: a tiny seeded generator, so the dataset never changes under a dependency bump.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }

    /// A value in `[low, high)`.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low)
    }

    /// Lower-case hex of `chars` characters.
    pub fn hex(&mut self, chars: usize) -> String {
        (0..chars).map(|_| char::from_digit(self.below(16) as u32, 16).unwrap_or('0')).collect()
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for index in (1..items.len()).rev() {
            items.swap(index, self.below(index as u64 + 1) as usize);
        }
    }
}

#[test]
fn calendar_helpers_agree() {
    assert_eq!(utc_day(BASE_NS), "2026-11-02");
    assert_eq!(utc_day(BASE_NS - 1), "2026-11-01");
    assert_eq!(utc_day(0), "1970-01-01");
    assert_eq!(utc_day(-1), "1969-12-31");
    assert_eq!(days_from_civil(2000, 3, 1) * DAY_NS, 951_868_800 * 1_000_000_000);
}

#[test]
fn standard_dataset_is_stable_and_varied() {
    let dataset = Dataset::standard();
    assert_eq!(dataset.trace_ids().len(), 48);
    let summaries = dataset.expected_list(&TraceFilter::default());
    assert!(summaries.iter().any(|summary| summary.has_error) && summaries.iter().any(|summary| !summary.has_error));
    let starts: BTreeSet<i64> = summaries.iter().map(|summary| summary.start_ns).collect();
    assert!(starts.len() < summaries.len(), "some traces share a start time");
    assert_eq!(dataset.models().len(), MODELS.len());
    let keys_of = |trace_id: &str| -> BTreeSet<&str> {
        dataset.spans.iter().filter(|span| span.trace_id == trace_id).filter_map(|span| api_key(span)).collect()
    };
    assert!(summaries.iter().any(|summary| keys_of(&summary.trace_id).len() == 2), "some traces carry two keys");
    let span_ids: BTreeSet<&str> = dataset.spans.iter().map(|span| span.span_id.as_str()).collect();
    assert_eq!(span_ids.len(), dataset.spans.len(), "span ids are unique");
    // Within one batch of `insert` (64 rows), some row differs from the one before it in each
    // column the SQLite writer binds only on a change, and some row is the same again after it.
    let first_batch = &dataset.spans[..64];
    type Same = fn(&SpanRow, &SpanRow) -> bool;
    let columns: [(&str, Same); 6] = [
        ("trace state", |a, b| a.trace_state == b.trace_state),
        ("service", |a, b| a.service_name == b.service_name),
        ("resource", |a, b| a.resource_attributes == b.resource_attributes),
        ("scope", |a, b| a.scope_name == b.scope_name),
        ("scope version", |a, b| a.scope_version == b.scope_version),
        ("links", |a, b| a.links == b.links),
    ];
    for (column, same) in columns {
        let changes = first_batch.windows(2).filter(|pair| !same(&pair[0], &pair[1])).count();
        assert!(changes >= 2, "{column} changes {changes} times in the first batch");
    }
    assert!(summaries.iter().any(|summary| {
        let root =
            dataset.spans.iter().find(|span| span.trace_id == summary.trace_id && span.parent_span_id.is_empty());
        root.is_some_and(|root| summary.end_ns > root.timestamp_ns + root.duration_ns as i64)
    }));
}
