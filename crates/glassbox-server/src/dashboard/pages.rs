//! The page handlers, each next to its template struct: parse the query string, ask the
//! store, shape the figures for the template.

use std::collections::BTreeMap;

use askama::Template;
use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use glassbox_store::{LatencyBy, LatencyRow, PageRequest, RequestBucket, TraceFilter, UsageBy, UsageGroup};

use super::access::{Access, Viewer};
use super::chart::{BarChart, LineChart};
use super::params::{self, Bucket, PRESETS, PageQuery, TracesParams, Window};
use super::waterfall::{self, SpanView, UsageView};
use super::{Dashboard, PageError, format, render};

/// Traces per page of the table.
const TRACES_PER_PAGE: u32 = 50;
/// Rows of the overview's top-agents and top-models tables.
const TOP_N: usize = 10;

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX))
}

fn query_or_error(query: Result<Query<PageQuery>, QueryRejection>) -> Result<PageQuery, PageError> {
    query
        .map(|Query(query)| query)
        .map_err(|rejection| PageError::BadRequest(format!("the query string is malformed: {}", rejection.body_text())))
}

/// What every page's frame shows: navigation, the store, the access mode, the range picker.
pub struct Chrome {
    pub active: &'static str,
    pub open_dev_mode: bool,
    pub signed_in: bool,
    pub store: &'static str,
    pub presets: Vec<(&'static str, &'static str)>,
}

impl Chrome {
    fn new(dashboard: &Dashboard, viewer: &Viewer, active: &'static str) -> Self {
        Self {
            active,
            open_dev_mode: matches!(dashboard.access, Access::OpenDevelopment),
            signed_in: viewer.signed_in,
            store: dashboard.store_name,
            presets: PRESETS.iter().map(|(name, label, _)| (*name, *label)).collect(),
        }
    }
}

fn bucket_label(bucket: Bucket, start_ns: i64) -> String {
    match bucket {
        Bucket::Hour => format::utc_minute(start_ns),
        Bucket::Day => format::utc_minute(start_ns)[..10].to_owned(),
    }
}

// ----------------------------------------------------------------------------------------
// Overview
// ----------------------------------------------------------------------------------------

pub struct GroupView {
    pub key: String,
    pub calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub cost: String,
    pub href: String,
}

impl GroupView {
    fn new(group: &UsageGroup, href: String) -> Self {
        Self {
            key: if group.key.is_empty() { "(none)".to_owned() } else { group.key.clone() },
            calls: group.calls,
            input_tokens: group.input_tokens,
            output_tokens: group.output_tokens,
            cached_input_tokens: group.cached_input_tokens,
            cost: format::usd(group.cost_nano_usd),
            href,
        }
    }
}

#[derive(Template)]
#[template(path = "overview.html")]
pub struct OverviewPage {
    chrome: Chrome,
    window: Window,
    requests: u64,
    errors: u64,
    error_rate: String,
    refused: u64,
    blocked: u64,
    p50: String,
    p95: String,
    p99: String,
    input_tokens: u64,
    output_tokens: u64,
    cost: String,
    charts: Vec<BarChart>,
    top_agents: Vec<GroupView>,
    top_models: Vec<GroupView>,
}

pub async fn overview(
    State(dashboard): State<Dashboard>,
    Extension(viewer): Extension<Viewer>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let query = query_or_error(query)?;
    let window = Window::parse(&query, now_ns())?;
    let reader = &dashboard.reader;
    let tenant = viewer.forced_tenant();
    let (stats, agents, models) = tokio::join!(
        reader.request_stats_of_tenant(&window.range, window.bucket.secs(), tenant),
        reader.usage_by_tenant(UsageBy::Agent, &window.range, tenant),
        reader.usage_by_tenant(UsageBy::Model, &window.range, tenant),
    );
    let (stats, agents, models) = (stats?, agents?, models?);
    let buckets = every_bucket(&stats.buckets, &window);
    let labels: Vec<String> =
        buckets.iter().map(|bucket| bucket_label(window.bucket, bucket.bucket_start_ns)).collect();
    let series = |f: &dyn Fn(&RequestBucket) -> (f64, String)| -> Vec<(String, f64, String)> {
        buckets
            .iter()
            .zip(&labels)
            .map(|(bucket, label)| {
                let (value, text) = f(bucket);
                (label.clone(), value, text)
            })
            .collect()
    };
    let charts = vec![
        BarChart::new("Requests", &series(&|b| (b.requests as f64, b.requests.to_string()))),
        BarChart::new("Errors", &series(&|b| (b.errors as f64, b.errors.to_string()))),
        BarChart::new(
            "Tokens (input + output)",
            &series(&|b| {
                let tokens = b.input_tokens + b.output_tokens;
                (tokens as f64, tokens.to_string())
            }),
        ),
        BarChart::new("Cost", &series(&|b| (b.cost_nano_usd as f64, format::usd(b.cost_nano_usd)))),
    ];
    let window_pairs = window.pairs();
    let traces_link = |key: &str, value: &str| {
        let mut pairs = window_pairs.clone();
        pairs.push((key, value.to_owned()));
        params::link("/dashboard/traces", &pairs)
    };
    let page = OverviewPage {
        chrome: Chrome::new(&dashboard, &viewer, "overview"),
        requests: stats.requests,
        errors: stats.errors,
        error_rate: format::percent(stats.errors, stats.requests),
        refused: stats.refused,
        blocked: stats.blocked,
        p50: format::millis(stats.p50_ms),
        p95: format::millis(stats.p95_ms),
        p99: format::millis(stats.p99_ms),
        input_tokens: stats.input_tokens,
        output_tokens: stats.output_tokens,
        cost: format::usd(stats.cost_nano_usd),
        charts,
        top_agents: agents
            .iter()
            .take(TOP_N)
            .map(|group| GroupView::new(group, traces_link("agent", &group.key)))
            .collect(),
        top_models: models
            .iter()
            .take(TOP_N)
            .map(|group| GroupView::new(group, traces_link("model", &group.key)))
            .collect(),
        window,
    };
    Ok(render(StatusCode::OK, &page))
}

/// The store returns only buckets with something in them; the charts need every bucket of the
/// window, empty ones as zeros, so the time axis is linear.
fn every_bucket(found: &[RequestBucket], window: &Window) -> Vec<RequestBucket> {
    let bucket_ns = i64::from(window.bucket.secs()) * 1_000_000_000;
    let by_start: BTreeMap<i64, &RequestBucket> = found.iter().map(|bucket| (bucket.bucket_start_ns, bucket)).collect();
    let first = window.range.from_ns.div_euclid(bucket_ns) * bucket_ns;
    let mut buckets = Vec::new();
    let mut start = first;
    while start < window.range.to_ns {
        buckets.push(by_start.get(&start).map_or_else(
            || RequestBucket { bucket_start_ns: start, ..RequestBucket::default() },
            |bucket| (*bucket).clone(),
        ));
        start += bucket_ns;
    }
    buckets
}

// ----------------------------------------------------------------------------------------
// Traces
// ----------------------------------------------------------------------------------------

pub struct TraceRowView {
    pub scores: Vec<ScoreView>,
    pub href: String,
    pub trace_id: String,
    pub time: String,
    pub agent: String,
    pub root_name: String,
    pub tenant: String,
    pub status: &'static str,
    pub latency: String,
    pub spans: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost: String,
}

#[derive(Template)]
#[template(path = "traces.html")]
pub struct TracesPage {
    chrome: Chrome,
    window: Window,
    filters: TracesParams,
    rows: Vec<TraceRowView>,
    next_href: Option<String>,
    first_href: Option<String>,
}

pub async fn traces(
    State(dashboard): State<Dashboard>,
    Extension(viewer): Extension<Viewer>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let query = query_or_error(query)?;
    let window = Window::parse(&query, now_ns())?;
    let mut filters = TracesParams::parse(&query, &window)?;
    if let Some(tenant) = viewer.forced_tenant() {
        filters.filter.tenant = Some(tenant.to_owned());
        filters.tenant = tenant.to_owned();
    }
    let page = dashboard
        .reader
        .list_traces(&filters.filter, &PageRequest { after: filters.after.clone(), limit: TRACES_PER_PAGE })
        .await?;
    let ids: Vec<String> = page.items.iter().map(|summary| summary.trace_id.clone()).collect();
    let mut scores = scores_by_trace(&dashboard, &ids).await?;
    let mut base_pairs = window.pairs();
    base_pairs.extend(filters.pairs());
    let rows = page
        .items
        .iter()
        .map(|summary| TraceRowView {
            scores: scores.remove(&summary.trace_id).unwrap_or_default(),
            href: format!("/dashboard/traces/{}", summary.trace_id),
            trace_id: summary.trace_id.clone(),
            time: format::utc_time(summary.start_ns),
            agent: summary.agent.clone(),
            root_name: format::truncate(&summary.root_span_name, 120).0,
            tenant: summary.tenant.clone(),
            status: if summary.has_error { "error" } else { "ok" },
            latency: format::duration(u64::try_from(summary.end_ns - summary.start_ns).unwrap_or(0)),
            spans: summary.span_count,
            input_tokens: summary.input_tokens,
            output_tokens: summary.output_tokens,
            cost: format::usd(summary.cost_nano_usd),
        })
        .collect();
    let next_href = page.next.as_ref().map(|cursor| {
        let mut pairs = base_pairs.clone();
        pairs.push(("after", format!("{}-{}", cursor.start_ns, cursor.trace_id)));
        params::link("/dashboard/traces", &pairs)
    });
    let first_href = filters.after.is_some().then(|| params::link("/dashboard/traces", &base_pairs));
    let page =
        TracesPage { chrome: Chrome::new(&dashboard, &viewer, "traces"), window, filters, rows, next_href, first_href };
    Ok(render(StatusCode::OK, &page))
}

/// One online eval score, as the traces table and the trace page show it.
pub struct ScoreView {
    pub scorer: String,
    /// `pass`, `fail` or `error` (also the CSS class).
    pub verdict: &'static str,
    pub score: String,
    pub reason: String,
    pub error: String,
}

impl ScoreView {
    fn new(row: &glassbox_store::EvalScoreRow) -> Self {
        let verdict = match (row.error.is_empty(), row.passed) {
            (false, _) => "error",
            (true, true) => "pass",
            (true, false) => "fail",
        };
        Self {
            scorer: row.scorer.clone(),
            verdict,
            score: format::score(row.score, 2),
            reason: format::truncate(&row.reason, 500).0,
            error: format::truncate(&row.error, 500).0,
        }
    }
}

/// The online scores of some traces, by trace id; none when the server has no eval store.
async fn scores_by_trace(dashboard: &Dashboard, trace_ids: &[String]) -> Result<BTreeMap<String, Vec<ScoreView>>, PageError> {
    let mut by_trace: BTreeMap<String, Vec<ScoreView>> = BTreeMap::new();
    let Some(evals) = dashboard.sources.evals.as_ref() else { return Ok(by_trace) };
    for row in evals.eval_scores(trace_ids).await? {
        by_trace.entry(row.trace_id.clone()).or_default().push(ScoreView::new(&row));
    }
    Ok(by_trace)
}

// ----------------------------------------------------------------------------------------
// One trace
// ----------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "trace.html")]
pub struct TracePage {
    chrome: Chrome,
    trace_id: String,
    time: String,
    duration: String,
    agent: String,
    tenant: String,
    root_name: String,
    status: &'static str,
    span_count: usize,
    input_tokens: u64,
    output_tokens: u64,
    cost: String,
    usage: Vec<UsageView>,
    scores: Vec<ScoreView>,
    spans: Vec<SpanView>,
}

pub async fn trace(
    State(dashboard): State<Dashboard>,
    Extension(viewer): Extension<Viewer>,
    Path(trace_id): Path<String>,
) -> Result<Response, PageError> {
    let not_found = || PageError::NotFound("no trace with this id".to_owned());
    if trace_id.is_empty() || trace_id.len() > 64 || !trace_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(not_found());
    }
    let trace_id = trace_id.to_ascii_lowercase();
    // The tenant goes into the store's query (a bound parameter), and is checked again below.
    let filter = TraceFilter {
        trace_id: Some(trace_id.clone()),
        tenant: viewer.forced_tenant().map(str::to_owned),
        ..TraceFilter::default()
    };
    let summary = dashboard.reader.list_traces(&filter, &PageRequest { after: None, limit: 1 }).await?;
    let Some(summary) = summary.items.into_iter().next() else {
        return Err(not_found());
    };
    // A tenant-scoped viewer gets the same answer for another tenant's trace as for none.
    if viewer.forced_tenant().is_some_and(|tenant| tenant != summary.tenant) {
        return Err(not_found());
    }
    let ids = [trace_id.clone()];
    let (spans, usage, scores) = tokio::join!(
        dashboard.reader.trace_spans(&trace_id),
        dashboard.reader.trace_usage(&trace_id),
        scores_by_trace(&dashboard, &ids),
    );
    let (spans, usage, mut scores) = (spans?, usage?, scores?);
    let views = waterfall::layout(&spans, &usage, summary.start_ns, summary.end_ns);
    let page = TracePage {
        chrome: Chrome::new(&dashboard, &viewer, "traces"),
        time: format::utc_time(summary.start_ns),
        duration: format::duration(u64::try_from(summary.end_ns - summary.start_ns).unwrap_or(0)),
        agent: summary.agent,
        tenant: summary.tenant,
        root_name: format::truncate(&summary.root_span_name, 200).0,
        status: if summary.has_error { "error" } else { "ok" },
        span_count: spans.len(),
        input_tokens: summary.input_tokens,
        output_tokens: summary.output_tokens,
        cost: format::usd(summary.cost_nano_usd),
        usage: usage.iter().map(UsageView::new).collect(),
        scores: scores.remove(&trace_id).unwrap_or_default(),
        spans: views,
        trace_id,
    };
    Ok(render(StatusCode::OK, &page))
}

// ----------------------------------------------------------------------------------------
// Cost
// ----------------------------------------------------------------------------------------

pub struct CostTable {
    pub title: &'static str,
    pub by: &'static str,
    pub csv_href: String,
    pub groups: Vec<GroupView>,
}

#[derive(Template)]
#[template(path = "cost.html")]
pub struct CostPage {
    chrome: Chrome,
    window: Window,
    total_calls: u64,
    total_input_tokens: u64,
    total_output_tokens: u64,
    total_cost: String,
    chart: BarChart,
    tables: Vec<CostTable>,
}

const COST_GROUPINGS: [(UsageBy, &str, &str); 4] = [
    (UsageBy::Agent, "agent", "By agent"),
    (UsageBy::Model, "model", "By model"),
    (UsageBy::Tenant, "tenant", "By tenant"),
    (UsageBy::Day, "day", "By day (UTC)"),
];

pub async fn cost(
    State(dashboard): State<Dashboard>,
    Extension(viewer): Extension<Viewer>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let query = query_or_error(query)?;
    let window = Window::parse(&query, now_ns())?;
    let reader = &dashboard.reader;
    let only = viewer.forced_tenant();
    let (agent, model, tenant, day) = tokio::join!(
        reader.usage_by_tenant(UsageBy::Agent, &window.range, only),
        reader.usage_by_tenant(UsageBy::Model, &window.range, only),
        reader.usage_by_tenant(UsageBy::Tenant, &window.range, only),
        reader.usage_by_tenant(UsageBy::Day, &window.range, only),
    );
    let results = [agent?, model?, tenant?, day?];
    let totals = &results[0];
    let mut by_day = results[3].clone();
    by_day.sort_by(|a, b| a.key.cmp(&b.key));
    let chart = BarChart::new(
        "Cost per day",
        &by_day
            .iter()
            .map(|group| (group.key.clone(), group.cost_nano_usd as f64, format::usd(group.cost_nano_usd)))
            .collect::<Vec<_>>(),
    );
    let window_pairs = window.pairs();
    let tables = COST_GROUPINGS
        .iter()
        .zip(&results)
        .map(|((_, by, title), groups)| {
            let mut csv_pairs = window_pairs.clone();
            csv_pairs.push(("by", (*by).to_owned()));
            let link_for = |group: &UsageGroup| match *by {
                "day" => String::new(),
                key => {
                    let mut pairs = window_pairs.clone();
                    pairs.push((if key == "tenant" { "tenant" } else { key }, group.key.clone()));
                    params::link("/dashboard/traces", &pairs)
                }
            };
            CostTable {
                title,
                by,
                csv_href: params::link("/dashboard/cost.csv", &csv_pairs),
                groups: groups.iter().map(|group| GroupView::new(group, link_for(group))).collect(),
            }
        })
        .collect();
    let page = CostPage {
        chrome: Chrome::new(&dashboard, &viewer, "cost"),
        total_calls: totals.iter().map(|group| group.calls).sum(),
        total_input_tokens: totals.iter().map(|group| group.input_tokens).sum(),
        total_output_tokens: totals.iter().map(|group| group.output_tokens).sum(),
        total_cost: format::usd(totals.iter().map(|group| group.cost_nano_usd).sum()),
        chart,
        tables,
        window,
    };
    Ok(render(StatusCode::OK, &page))
}

/// A CSV cell: quoted, quotes doubled, and a leading formula character neutralised so a
/// spreadsheet does not run a hostile agent name as a formula.
fn csv_cell(text: &str) -> String {
    let guarded = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}") } else { text.to_owned() };
    format!("\"{}\"", guarded.replace('"', "\"\""))
}

pub async fn cost_csv(
    State(dashboard): State<Dashboard>,
    Extension(viewer): Extension<Viewer>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let query = query_or_error(query)?;
    let window = Window::parse(&query, now_ns())?;
    let by_name = query.by.as_deref().unwrap_or("agent");
    let Some((by, by_name, _)) = COST_GROUPINGS.iter().find(|(_, name, _)| *name == by_name) else {
        return Err(PageError::BadRequest("the filter `by` must be agent, model, tenant or day".into()));
    };
    let groups = dashboard.reader.usage_by_tenant(*by, &window.range, viewer.forced_tenant()).await?;
    let mut body = format!("{by_name},calls,input_tokens,output_tokens,cached_input_tokens,cost_usd\n");
    for group in &groups {
        body.push_str(&format!(
            "{},{},{},{},{},{}\n",
            csv_cell(&group.key),
            group.calls,
            group.input_tokens,
            group.output_tokens,
            group.cached_input_tokens,
            format::usd_plain(group.cost_nano_usd)
        ));
    }
    let disposition = format!("attachment; filename=\"glassbox-cost-by-{by_name}.csv\"");
    let mut response = body.into_response();
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        response.headers_mut().insert(CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

// ----------------------------------------------------------------------------------------
// Latency
// ----------------------------------------------------------------------------------------

pub struct LatencyRowView {
    pub bucket: String,
    pub calls: u64,
    pub p50: String,
    pub p95: String,
    pub p99: String,
}

pub struct LatencyGroupView {
    pub key: String,
    pub chart: LineChart,
    pub rows: Vec<LatencyRowView>,
}

pub struct LatencySection {
    pub title: &'static str,
    pub groups: Vec<LatencyGroupView>,
}

#[derive(Template)]
#[template(path = "latency.html")]
pub struct LatencyPage {
    chrome: Chrome,
    window: Window,
    sections: Vec<LatencySection>,
}

fn latency_groups(rows: &[LatencyRow], window: &Window) -> Vec<LatencyGroupView> {
    let mut groups: BTreeMap<&str, Vec<&LatencyRow>> = BTreeMap::new();
    for row in rows {
        groups.entry(row.key.as_str()).or_default().push(row);
    }
    groups
        .into_iter()
        .map(|(key, rows)| {
            let xs: Vec<i64> = rows.iter().map(|row| row.bucket_start_ns).collect();
            let chart = LineChart::new(
                (window.range.from_ns, window.range.to_ns),
                &xs,
                vec![
                    ("p50", "p50", rows.iter().map(|row| row.p50_ms).collect()),
                    ("p95", "p95", rows.iter().map(|row| row.p95_ms).collect()),
                    ("p99", "p99", rows.iter().map(|row| row.p99_ms).collect()),
                ],
                format::millis,
                |ns| bucket_label(window.bucket, ns),
            );
            LatencyGroupView {
                key: if key.is_empty() { "(none)".to_owned() } else { key.to_owned() },
                chart,
                rows: rows
                    .iter()
                    .map(|row| LatencyRowView {
                        bucket: bucket_label(window.bucket, row.bucket_start_ns),
                        calls: row.calls,
                        p50: format::millis(row.p50_ms),
                        p95: format::millis(row.p95_ms),
                        p99: format::millis(row.p99_ms),
                    })
                    .collect(),
            }
        })
        .collect()
}

pub async fn latency(
    State(dashboard): State<Dashboard>,
    Extension(viewer): Extension<Viewer>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let query = query_or_error(query)?;
    let window = Window::parse(&query, now_ns())?;
    let bucket_secs = window.bucket.secs();
    let tenant = viewer.forced_tenant();
    let (by_agent, by_model) = tokio::join!(
        dashboard.reader.latency_of_tenant(LatencyBy::Agent, &window.range, bucket_secs, tenant),
        dashboard.reader.latency_of_tenant(LatencyBy::Model, &window.range, bucket_secs, tenant),
    );
    let sections = vec![
        LatencySection { title: "By agent", groups: latency_groups(&by_agent?, &window) },
        LatencySection { title: "By model", groups: latency_groups(&by_model?, &window) },
    ];
    let page = LatencyPage { chrome: Chrome::new(&dashboard, &viewer, "latency"), window, sections };
    Ok(render(StatusCode::OK, &page))
}
