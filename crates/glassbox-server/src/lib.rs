//! The Glassbox HTTP server: the REST API of DESIGN.md on axum, and the `glassbox` binary.
//!
//! Library users get two ways in: nest [`router`] into their own axum app, or skip HTTP
//! entirely and call [`glassbox_core::Agent::generate`] from their own handlers.

pub mod access;
pub mod api;
pub mod dashboard;
pub mod error;
pub mod logging;
pub mod metrics;
pub mod pipeline;
pub mod evals;
pub mod runtime;
pub mod serve;
pub mod store;
pub mod telemetry;
pub mod trace_context;
pub mod span_journal;
pub mod usage_journal;
pub mod workflow_config;
pub mod workflow_host;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, RawPathParams, Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::Response;
use foldhash::HashMap;
use glassbox_core::Agent;

use crate::api::body::{BodyLimit, BodyReadTimeout};
use crate::error::ApiError;

/// The default request body limit, 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// The agents a server exposes, in a stable order, looked up by id.
#[derive(Debug, Default)]
pub struct AgentRegistry {
    agents: Vec<Agent>,
    index: HashMap<String, usize>,
}

impl AgentRegistry {
    /// Later agents with an id already present replace the earlier one.
    pub fn new(agents: impl IntoIterator<Item = Agent>) -> Self {
        let mut registry = Self::default();
        for agent in agents {
            registry.insert(agent);
        }
        registry
    }

    pub fn insert(&mut self, agent: Agent) {
        match self.index.get(agent.id()) {
            Some(&position) => self.agents[position] = agent,
            None => {
                self.index.insert(agent.id().to_owned(), self.agents.len());
                self.agents.push(agent);
            }
        }
    }

    pub fn get(&self, id: &str) -> Option<&Agent> {
        self.index.get(id).map(|&position| &self.agents[position])
    }

    pub fn all(&self) -> &[Agent] {
        &self.agents
    }
}

/// Shared state of every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    pub agents: Arc<AgentRegistry>,
    /// Keys, rate limits and budgets; `access.is_open()` is the open development mode.
    pub access: Arc<access::Access>,
}

/// Options of the HTTP layer.
#[derive(Debug, Clone, Copy)]
pub struct HttpOptions {
    pub body_limit: usize,
    /// A JSON request body not received this long after its handler started answers 408.
    pub body_read_timeout: std::time::Duration,
}

/// The default [`HttpOptions::body_read_timeout`], 30 s.
pub const DEFAULT_BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl Default for HttpOptions {
    fn default() -> Self {
        Self { body_limit: DEFAULT_BODY_LIMIT, body_read_timeout: DEFAULT_BODY_READ_TIMEOUT }
    }
}

/// The whole API as a router with its state applied, ready to serve or to nest into another
/// app (`Router::new().nest("/glassbox", glassbox_server::router(..))`).
pub fn router(agents: AgentRegistry, options: HttpOptions) -> Router {
    build_router(agents, options, RouterParts::default())
}

/// [`router`] with API keys, rate limits and budgets ([`access::Access::load`]).
pub fn router_with_access(agents: AgentRegistry, options: HttpOptions, access: Arc<access::Access>) -> Router {
    build_router(agents, options, RouterParts { access: Some(access), ..RouterParts::default() })
}

/// [`router`] plus the workflow routes of `workflows`.
pub fn router_with_workflows(agents: AgentRegistry, workflows: workflow_host::WorkflowHost, options: HttpOptions) -> Router {
    build_router(agents, options, RouterParts { workflows: Some(workflows), ..RouterParts::default() })
}

/// [`router`] plus the dashboard at `/dashboard`.
pub fn router_with_dashboard(agents: AgentRegistry, options: HttpOptions, dashboard: dashboard::Dashboard) -> Router {
    build_router(agents, options, RouterParts { dashboard: Some(dashboard), ..RouterParts::default() })
}

/// The optional parts of a server beyond its agents; `glassbox serve` uses them all.
#[derive(Default)]
pub struct RouterParts {
    /// Keys, rate limits and budgets; `None` is open development mode.
    pub access: Option<Arc<access::Access>>,
    pub workflows: Option<workflow_host::WorkflowHost>,
    pub dashboard: Option<dashboard::Dashboard>,
    /// Scorers run after agents' requests (`[online_evals.<agent>]`).
    pub online_evals: Option<Arc<glassbox_evals::online::OnlineEvals>>,
    /// The telemetry writer, for backpressure: agent, OpenAI-compatible and workflow
    /// requests wait up to [`INTAKE_MAX_WAIT`] while its queue is nearly full
    /// ([`TelemetryWriter::admit`](glassbox_store::writer::TelemetryWriter::admit)).
    pub telemetry: Option<glassbox_store::writer::TelemetryWriter>,
}

/// The longest a request waits for the telemetry writer to make room before it runs anyway
/// (its rows then go through the spool): a store that falls behind costs at most this much
/// latency per request, never a failure.
pub const INTAKE_MAX_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

/// What [`gate`] runs in front of a group of API routes.
#[derive(Clone)]
struct Gate {
    state: AppState,
    /// Backpressure in front of the routes that make telemetry (see [`RouterParts::telemetry`]).
    intake: Option<glassbox_store::writer::TelemetryWriter>,
}

/// The access check ([`access::check`]) and then, for routes that make telemetry, the intake's
/// backpressure, as one route middleware.
///
/// The stages of a request are plain functions run by two middlewares (this and [`edge`])
/// rather than one `axum::middleware::from_fn` each: every such layer clones the whole service
/// stack inside it, boxed, on every request; seven of them cost a benchmark request 87
/// allocations, these two 14 (ARCHITECTURE.md).
fn gate(
    router: Router<AppState>,
    state: &AppState,
    intake: Option<&glassbox_store::writer::TelemetryWriter>,
) -> Router<AppState> {
    let gate = Gate { state: state.clone(), intake: intake.cloned() };
    router.route_layer(middleware::from_fn_with_state(gate, run_gate))
}

async fn run_gate(State(gate): State<Gate>, params: RawPathParams, request: Request, next: Next) -> Response {
    access::check(&gate.state, &params, request, |request| async {
        if let Some(writer) = &gate.intake {
            writer.admit(INTAKE_MAX_WAIT).await;
        }
        next.run(request).await
    })
    .await
}

/// What [`edge`] adds to every API request.
#[derive(Clone)]
struct Edge {
    body_limit: usize,
    body_read_timeout: std::time::Duration,
    online_evals: Option<Arc<glassbox_evals::online::OnlineEvals>>,
}

/// The stages every API request goes through, outermost first: OpenAI's error shape under
/// `/v1/` ([`api::openai::error_shape`]), the request span ([`trace_context::in_request_span`]),
/// the HTTP metrics ([`metrics::track`]), and the request's body limits and online evals as
/// extensions.
async fn edge(State(edge): State<Edge>, request: Request, next: Next) -> Response {
    api::openai::error_shape(request, |request| {
        trace_context::in_request_span(request, |request| {
            metrics::track(request, |mut request| {
                let extensions = request.extensions_mut();
                extensions.insert(BodyLimit(edge.body_limit));
                extensions.insert(BodyReadTimeout(edge.body_read_timeout));
                if let Some(online_evals) = edge.online_evals {
                    extensions.insert(online_evals);
                }
                next.run(request)
            })
        })
    })
    .await
}

/// The whole server: the API with its layers, and the dashboard beside it.
pub fn build_router(agents: AgentRegistry, options: HttpOptions, parts: RouterParts) -> Router {
    let access = parts.access.unwrap_or_else(|| Arc::new(access::Access::open()));
    let state = AppState { agents: Arc::new(agents), access };
    metrics::install();
    let body_limit = options.body_limit;
    let body_read_timeout = options.body_read_timeout;
    let intake = parts.telemetry.as_ref();
    let mut routes = Router::new()
        .merge(gate(api::agents::router(), &state, intake))
        .merge(gate(api::budgets::router(), &state, None))
        .merge(gate(api::openai::router(), &state, intake))
        .merge(api::health::router())
        .merge(api::openapi::router())
        .merge(metrics::router());
    if let Some(workflows) = parts.workflows {
        routes = routes.merge(gate(api::workflows::router(workflows), &state, intake));
    }
    let edge_state = Edge { body_limit, body_read_timeout, online_evals: parts.online_evals };
    let api = routes
        .fallback(not_found)
        .with_state(state)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(edge_state, edge));
    // The dashboard sits outside the API's request tracing and body limits: page views are not
    // agent traffic and must not fill the traces table.
    match parts.dashboard {
        Some(dashboard) => api.merge(dashboard::router(dashboard)),
        None => api,
    }
}

/// [`router`] with online evals: sampled `generate` requests are scored after the response.
pub fn router_with_evals(
    agents: AgentRegistry,
    options: HttpOptions,
    online_evals: Option<Arc<glassbox_evals::online::OnlineEvals>>,
) -> Router {
    build_router(agents, options, RouterParts { online_evals, ..RouterParts::default() })
}

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::RouteNotFound { method: method.to_string(), path: uri.path().to_owned() }
}
