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

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::Method;
use axum::middleware::{self, Next};
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

/// Backpressure in front of the routes that make telemetry (see [`RouterParts::telemetry`]).
fn with_intake(router: Router<AppState>, writer: Option<&glassbox_store::writer::TelemetryWriter>) -> Router<AppState> {
    let Some(writer) = writer.cloned() else { return router };
    router.route_layer(middleware::from_fn(move |request: Request, next: Next| {
        let writer = writer.clone();
        async move {
            writer.admit(INTAKE_MAX_WAIT).await;
            next.run(request).await
        }
    }))
}

/// The whole server: the API with its layers, and the dashboard beside it.
pub fn build_router(agents: AgentRegistry, options: HttpOptions, parts: RouterParts) -> Router {
    let access = parts.access.unwrap_or_else(|| Arc::new(access::Access::open()));
    let state = AppState { agents: Arc::new(agents), access };
    metrics::install();
    let body_limit = options.body_limit;
    let body_read_timeout = options.body_read_timeout;
    let mut routes = Router::new()
        .merge(access::protect(with_intake(api::agents::router(), parts.telemetry.as_ref()), &state))
        .merge(access::protect(api::budgets::router(), &state))
        .merge(access::protect(with_intake(api::openai::router(), parts.telemetry.as_ref()), &state))
        .merge(api::health::router())
        .merge(api::openapi::router())
        .merge(metrics::router());
    if let Some(workflows) = parts.workflows {
        routes = routes.merge(access::protect(with_intake(api::workflows::router(workflows), parts.telemetry.as_ref()), &state));
    }
    let api = routes
        .route_layer(middleware::from_fn(trace_context::name_route))
        .fallback(not_found)
        .with_state(state)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(move |mut request: Request, next: Next| {
            request.extensions_mut().insert(BodyLimit(body_limit));
            request.extensions_mut().insert(BodyReadTimeout(body_read_timeout));
            next.run(request)
        }))
        .layer(middleware::from_fn(metrics::track))
        .layer(middleware::from_fn(trace_context::layer))
        // Outermost, so errors of every layer under `/v1/` answer in OpenAI's shape.
        .layer(middleware::from_fn(api::openai::error_shape));
    let api = match parts.online_evals {
        Some(online_evals) => api.layer(axum::Extension(online_evals)),
        None => api,
    };
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
