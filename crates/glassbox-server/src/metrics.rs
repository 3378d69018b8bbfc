//! Prometheus metrics: `GET /metrics` in the text exposition format.
//!
//! Metrics go through the `metrics` facade and one process-wide Prometheus recorder, installed
//! the first time a router is built ([`install`]); any code in the process can add its own with
//! `metrics::counter!` / `gauge!` / `histogram!` and they appear on `/metrics`. A host app
//! that installed its own recorder first keeps it, and `/metrics` then says so with a 404.
//!
//! Where each family comes from:
//! - `glassbox_http_requests_total`, `glassbox_http_request_duration_seconds`: the [`track`]
//!   middleware, labelled by matched route, method and status; the duration runs until the
//!   response body is sent, so a stream counts whole.
//! - `glassbox_model_*`: one update per model call, from the same place and the same numbers as
//!   the usage row ([`record_usage`], called by the telemetry span processor), so the counters
//!   agree with the `usage` table.
//! - `glassbox_pipeline_overhead_seconds`: the request's time minus the time its model calls
//!   took, measured by [`OverheadLayer`] on the request and `chat` spans; `telemetry::layer`
//!   installs it (so an embedding app's own `metrics` recorder gets this histogram too).
//! - `glassbox_telemetry_*`: the telemetry writer's [`WriterStats`], read at each scrape.
//! - `glassbox_journal_failed_appends_total`: the kill-safety journals
//!   ([`crate::usage_journal::UsageJournal::append`]), counted where an append fails.
//!
//! New families are added where their numbers are known, with a `describe_*!` line in
//! `describe()` so `/metrics` explains them: budgets, for instance, belong to the budget code
//! (`gauge!("glassbox_budget_spent_usd", "tenant" => .., "period" => ..).set(..)` next to
//! `glassbox_budget_limit_usd`, and `counter!("glassbox_budget_rejections_total", ..)` where a
//! 402 is answered).

use std::cell::RefCell;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex, OnceLock, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use foldhash::HashMap;
use glassbox_store::UsageRow;
use glassbox_store::writer::{TelemetryWriter, WriterStats};
use http_body::Frame;
use metrics::{Counter, Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing::span;
use tracing_subscriber::layer::Context as LayerContext;
use tracing_subscriber::registry::LookupSpan;

use crate::AppState;
use crate::error::ApiError;

/// Histogram buckets in seconds: from a fast in-process answer to a long agent run.
const SECONDS_BUCKETS: [f64; 16] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder as the process's `metrics` recorder, once. `None` when
/// another recorder was installed first (a host app's own).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = match PrometheusBuilder::new().set_buckets(&SECONDS_BUCKETS) {
                Ok(builder) => builder,
                Err(error) => {
                    tracing::warn!(%error, "invalid histogram buckets; metrics disabled");
                    return None;
                }
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if let Err(error) = metrics::set_global_recorder(recorder) {
                tracing::info!(%error, "a metrics recorder is installed already; GET /metrics is off");
                return None;
            }
            describe();
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    describe_counter!("glassbox_http_requests_total", "HTTP requests answered, by matched route, method and status");
    describe_histogram!(
        "glassbox_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request time until the response body was sent, by matched route and method"
    );
    describe_counter!("glassbox_model_calls_total", "Model calls, by agent, provider, model and status (ok, error)");
    describe_counter!(
        "glassbox_model_tokens_total",
        "Tokens of model calls, by agent, provider, model and type (input, output, cached_input, reasoning)"
    );
    describe_counter!(
        "glassbox_model_cost_nano_usd_total",
        "Cost of model calls in billionths of a US dollar (divide by 1e9 for dollars), by agent, provider and model"
    );
    describe_histogram!(
        "glassbox_model_call_duration_seconds",
        Unit::Seconds,
        "Time waiting on the model provider per call, by agent, provider and model"
    );
    describe_histogram!(
        "glassbox_pipeline_overhead_seconds",
        Unit::Seconds,
        "Request time minus the time spent waiting on model providers, by matched route"
    );
    describe_gauge!("glassbox_budget_used_tokens", "Tokens a tenant or key used this UTC day or month");
    describe_gauge!("glassbox_budget_used_usd", Unit::Count, "US dollars a tenant or key spent this UTC day or month");
    describe_gauge!("glassbox_budget_limit_tokens", "A tenant's or key's token budget for the period");
    describe_gauge!("glassbox_budget_limit_usd", Unit::Count, "A tenant's or key's budget in US dollars for the period");
    describe_gauge!("glassbox_budget_reserved_tokens", "Tokens reserved by a tenant's or key's runs in flight");
    describe_gauge!("glassbox_telemetry_queue_rows", "Telemetry rows accepted and not yet written, spooled or dropped");
    describe_gauge!("glassbox_telemetry_spool_bytes", "Bytes of telemetry batches waiting in the on-disk spool");
    describe_gauge!("glassbox_telemetry_spool_files", "Telemetry batch files waiting in the on-disk spool");
    describe_counter!("glassbox_telemetry_written_rows_total", "Telemetry rows inserted into the store from the queue");
    describe_counter!("glassbox_telemetry_spooled_rows_total", "Telemetry rows written to the on-disk spool");
    describe_counter!("glassbox_telemetry_replayed_rows_total", "Spooled telemetry rows inserted by replay");
    describe_counter!(
        "glassbox_telemetry_dropped_rows_total",
        "Telemetry rows lost because the spool could not take them; anything but 0 is a problem"
    );
    describe_counter!(
        "glassbox_journal_failed_appends_total",
        "Kill-safety journal appends that failed (a full disk), by journal (usage, spans): the rows still go to the store, but a kill would lose them"
    );
}

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(render))
}

/// The metrics in Prometheus's text exposition format (version 0.0.4).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain; version=0.0.4"),
        (status = 404, description = "Another metrics recorder owns this process", body = crate::api::openapi::ErrorBody),
    )
)]
pub async fn render(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    let Some(handle) = install() else {
        return ApiError::RouteNotFound { method: "GET".to_owned(), path: "/metrics".to_owned() }.into_response();
    };
    refresh_writer_gauges();
    refresh_budget_gauges(&state.access);
    handle.run_upkeep();
    let text = handle.render();
    ([(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"))], text)
        .into_response()
}

/// Budget use of every tenant and key with a budget, read at each scrape: used and limit per
/// UTC day and month, and what runs in flight hold.
fn refresh_budget_gauges(access: &crate::access::Access) {
    let now = crate::access::budget::now_ns();
    let budgets = access.budgets();
    for (kind, scopes) in [("tenant", &budgets.tenants), ("key", &budgets.keys)] {
        for scope in scopes.values() {
            let snapshot = scope.snapshot(now);
            let limits = &scope.limits;
            for (period, used, token_limit, usd_limit) in [
                ("day", snapshot.day.1, limits.daily_tokens, limits.daily_nano_usd),
                ("month", snapshot.month.1, limits.monthly_tokens, limits.monthly_nano_usd),
            ] {
                let labels = [("scope", kind.to_owned()), ("id", scope.id.clone()), ("period", period.to_owned())];
                gauge!("glassbox_budget_used_tokens", &labels).set(used.tokens as f64);
                gauge!("glassbox_budget_used_usd", &labels).set(used.nano_usd as f64 / 1e9);
                if let Some(limit) = token_limit {
                    gauge!("glassbox_budget_limit_tokens", &labels).set(limit as f64);
                }
                if let Some(limit) = usd_limit {
                    gauge!("glassbox_budget_limit_usd", &labels).set(limit as f64 / 1e9);
                }
            }
            let labels = [("scope", kind.to_owned()), ("id", scope.id.clone())];
            gauge!("glassbox_budget_reserved_tokens", &labels).set(snapshot.reserved.tokens as f64);
        }
    }
}

/// Writers whose stats `/metrics` reports (normally the one of `glassbox serve`).
static WRITERS: Mutex<Vec<TelemetryWriter>> = Mutex::new(Vec::new());

/// Reports `writer`'s queue, spool and row counts on `/metrics` from now on.
pub fn watch_writer(writer: &TelemetryWriter) {
    WRITERS.lock().unwrap_or_else(PoisonError::into_inner).push(writer.clone());
}

fn refresh_writer_gauges() {
    let writers = WRITERS.lock().unwrap_or_else(PoisonError::into_inner).clone();
    if writers.is_empty() {
        return;
    }
    let total = writers.iter().map(TelemetryWriter::stats).fold(WriterStats::default(), |mut sum, stats| {
        sum.queued_rows += stats.queued_rows;
        sum.written_rows += stats.written_rows;
        sum.spooled_rows += stats.spooled_rows;
        sum.replayed_rows += stats.replayed_rows;
        sum.dropped_rows += stats.dropped_rows;
        sum.spool_bytes += stats.spool_bytes;
        sum.spool_files += stats.spool_files;
        sum
    });
    gauge!("glassbox_telemetry_queue_rows").set(total.queued_rows as f64);
    gauge!("glassbox_telemetry_spool_bytes").set(total.spool_bytes as f64);
    gauge!("glassbox_telemetry_spool_files").set(total.spool_files as f64);
    counter!("glassbox_telemetry_written_rows_total").absolute(total.written_rows);
    counter!("glassbox_telemetry_spooled_rows_total").absolute(total.spooled_rows);
    counter!("glassbox_telemetry_replayed_rows_total").absolute(total.replayed_rows);
    counter!("glassbox_telemetry_dropped_rows_total").absolute(total.dropped_rows);
}

/// Metric handles by their label values, registered once: a request then costs atomic adds,
/// not building and hashing label sets (a dozen allocations per model call before). Label
/// values are bounded (configured agents and models, matched routes, status codes), and the
/// cache stops growing at [`MAX_CACHED_LABEL_SETS`] anyway. Handles are only cached once
/// Glassbox's recorder is installed, so none is bound to the no-op recorder.
struct HandleCache<H> {
    handles: LazyLock<RwLock<HashMap<String, H>>>,
}

const MAX_CACHED_LABEL_SETS: usize = 10_000;

impl<H: Clone> HandleCache<H> {
    const fn new() -> Self {
        Self { handles: LazyLock::new(|| RwLock::new(HashMap::default())) }
    }

    fn get(&self, labels: &[&str], register: impl FnOnce() -> H) -> H {
        thread_local! {
            static KEY: RefCell<String> = const { RefCell::new(String::new()) };
        }
        KEY.with_borrow_mut(|key| {
            key.clear();
            for label in labels {
                key.push_str(label);
                key.push('\u{1f}');
            }
            if let Some(handle) = self.handles.read().unwrap_or_else(PoisonError::into_inner).get(key.as_str()) {
                return handle.clone();
            }
            let handle = register();
            if HANDLE.get().is_some_and(Option::is_some) {
                let mut handles = self.handles.write().unwrap_or_else(PoisonError::into_inner);
                if handles.len() < MAX_CACHED_LABEL_SETS {
                    handles.entry(key.clone()).or_insert_with(|| handle.clone());
                }
            }
            handle
        })
    }
}

/// The model-call families of one agent, provider and model.
struct ModelHandles {
    calls_ok: Counter,
    calls_error: Counter,
    /// Input, output, cached input, reasoning.
    tokens: [Counter; 4],
    cost: Counter,
    duration: Histogram,
}

static MODEL_HANDLES: HandleCache<Arc<ModelHandles>> = HandleCache::new();

/// Counts one model call from its usage row: calls, tokens by type, cost and provider time.
pub fn record_usage(row: &UsageRow) {
    let handles = MODEL_HANDLES.get(&[&row.agent, &row.provider, &row.model], || {
        let labels = [("agent", row.agent.clone()), ("provider", row.provider.clone()), ("model", row.model.clone())];
        let with = |name: &'static str, value: &'static str| {
            let mut labels = labels.to_vec();
            labels.push((name, value.to_owned()));
            labels
        };
        Arc::new(ModelHandles {
            calls_ok: counter!("glassbox_model_calls_total", &with("status", "ok")),
            calls_error: counter!("glassbox_model_calls_total", &with("status", "error")),
            tokens: ["input", "output", "cached_input", "reasoning"]
                .map(|kind| counter!("glassbox_model_tokens_total", &with("type", kind))),
            cost: counter!("glassbox_model_cost_nano_usd_total", &labels),
            duration: histogram!("glassbox_model_call_duration_seconds", &labels),
        })
    });
    if row.status == "ok" { &handles.calls_ok } else { &handles.calls_error }.increment(1);
    let [input, output, cached_input, reasoning] = &handles.tokens;
    input.increment(row.input_tokens);
    output.increment(row.output_tokens);
    cached_input.increment(row.cached_input_tokens);
    reasoning.increment(row.reasoning_tokens);
    handles.cost.increment(u64::try_from(row.cost_nano_usd).unwrap_or(0));
    handles.duration.record(row.latency_ns as f64 / 1e9);
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware around `inner` (run by `crate::edge`, where the matched route is known): counts
/// the request by route, method and status when the response starts, and records its duration
/// when the body has been sent. Unmatched paths share the route label `unmatched`, so a
/// scanner cannot blow up the label set.
pub async fn track<F: Future<Output = Response>>(request: Request, inner: impl FnOnce(Request) -> F) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = method_label(request.method());
    let response = inner(request).await;
    let status = response.status();
    let handles = HTTP_HANDLES.get(&[&route, method, status.as_str()], || HttpHandles {
        requests: counter!(
            "glassbox_http_requests_total",
            "route" => route.clone(),
            "method" => method,
            "status" => status.as_str().to_owned(),
        ),
        duration: histogram!("glassbox_http_request_duration_seconds", "route" => route.clone(), "method" => method),
    });
    handles.requests.increment(1);
    let recorder = DurationOnDrop { started, duration: handles.duration };
    response.map(|body| Body::new(TimedBody { inner: body, _recorder: recorder }))
}

/// The request families of one route, method and status.
#[derive(Clone)]
struct HttpHandles {
    requests: Counter,
    duration: Histogram,
}

static HTTP_HANDLES: HandleCache<HttpHandles> = HandleCache::new();

struct DurationOnDrop {
    started: Instant,
    duration: Histogram,
}

impl Drop for DurationOnDrop {
    fn drop(&mut self) {
        self.duration.record(self.started.elapsed().as_secs_f64());
    }
}

/// A response body that records the request's duration when it is dropped (sent or abandoned).
struct TimedBody {
    inner: Body,
    _recorder: DurationOnDrop,
}

impl http_body::Body for TimedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Per request span: when it started, its route, and the provider time of its model calls.
struct RequestTiming {
    started: Instant,
    route: Option<String>,
    provider_wait: Duration,
}

/// Per `chat` span: when the model call started.
struct ChatStarted(Instant);

/// The `tracing` layer behind `glassbox_pipeline_overhead_seconds`. It watches the request
/// span (`http_request`, from the server) and the model-call spans (`chat`, from the core);
/// `telemetry::layer` installs it with the span recorder under one filter (the Glassbox crates'
/// `INFO` spans, whatever `RUST_LOG` says); `serve` (`telemetry::layer_with_logs`) without
/// one, behind a gate that enables only those spans.
pub(crate) struct OverheadLayer;

static OVERHEAD_HANDLES: HandleCache<Histogram> = HandleCache::new();

struct RouteVisitor<'a>(&'a mut Option<String>);

impl tracing::field::Visit for RouteVisitor<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "http.route" {
            *self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "http.route" {
            *self.0 = Some(format!("{value:?}"));
        }
    }
}

impl<S> tracing_subscriber::Layer<S> for OverheadLayer
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    // The registry is searched only for the spans and fields this layer keeps: a request
    // records some twenty values on its spans, one of them the route.
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: LayerContext<'_, S>) {
        match attrs.metadata().name() {
            "http_request" => {
                if let Some(span) = ctx.span(id) {
                    // The route, when the request matched one, is a field from the start.
                    let mut route = None;
                    attrs.record(&mut RouteVisitor(&mut route));
                    span.extensions_mut().insert(RequestTiming { started: Instant::now(), route, provider_wait: Duration::ZERO });
                }
            }
            "chat" => {
                if let Some(span) = ctx.span(id) {
                    span.extensions_mut().insert(ChatStarted(Instant::now()));
                }
            }
            _ => {}
        }
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: LayerContext<'_, S>) {
        let mut route = None;
        values.record(&mut RouteVisitor(&mut route));
        if let Some(route) = route
            && let Some(span) = ctx.span(id)
            && let Some(timing) = span.extensions_mut().get_mut::<RequestTiming>()
        {
            timing.route = Some(route);
        }
    }

    fn on_close(&self, id: span::Id, ctx: LayerContext<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let chat_started = span.extensions().get::<ChatStarted>().map(|started| started.0);
        if let Some(started) = chat_started {
            let waited = started.elapsed();
            for ancestor in span.scope().skip(1) {
                if let Some(timing) = ancestor.extensions_mut().get_mut::<RequestTiming>() {
                    timing.provider_wait += waited;
                    break;
                }
            }
            return;
        }
        let extensions = span.extensions();
        if let Some(timing) = extensions.get::<RequestTiming>() {
            let overhead = timing.started.elapsed().saturating_sub(timing.provider_wait);
            let route = timing.route.as_deref().unwrap_or("unmatched");
            OVERHEAD_HANDLES
                .get(&[route], || histogram!("glassbox_pipeline_overhead_seconds", "route" => route.to_owned()))
                .record(overhead.as_secs_f64());
        }
    }
}
