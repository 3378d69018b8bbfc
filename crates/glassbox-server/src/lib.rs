//! The Glassbox HTTP server: the REST API of DESIGN.md on axum, and the `glassbox` binary.
//!
//! Library users get two ways in: nest [`router`] into their own axum app, or skip HTTP
//! entirely and call [`glassbox_core::Agent::generate`] from their own handlers.

pub mod api;
pub mod error;
pub mod runtime;
pub mod serve;
pub mod store;
pub mod telemetry;
pub mod trace_context;
pub mod workflow_config;
pub mod workflow_host;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::Method;
use axum::middleware::{self, Next};
use glassbox_core::Agent;

use crate::api::body::BodyLimit;
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
}

/// Options of the HTTP layer.
#[derive(Debug, Clone, Copy)]
pub struct HttpOptions {
    pub body_limit: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self { body_limit: DEFAULT_BODY_LIMIT }
    }
}

/// The whole API as a router with its state applied, ready to serve or to nest into another
/// app (`Router::new().nest("/glassbox", glassbox_server::router(..))`).
pub fn router(agents: AgentRegistry, options: HttpOptions) -> Router {
    build_router(agents, None, options)
}

/// [`router`] plus the workflow routes of `workflows`.
pub fn router_with_workflows(agents: AgentRegistry, workflows: workflow_host::WorkflowHost, options: HttpOptions) -> Router {
    build_router(agents, Some(workflows), options)
}

fn build_router(agents: AgentRegistry, workflows: Option<workflow_host::WorkflowHost>, options: HttpOptions) -> Router {
    let state = AppState { agents: Arc::new(agents) };
    let body_limit = options.body_limit;
    let mut routes = Router::new().merge(api::agents::router()).merge(api::health::router());
    if let Some(workflows) = workflows {
        routes = routes.merge(api::workflows::router(workflows));
    }
    routes
        .route_layer(middleware::from_fn(trace_context::name_route))
        .fallback(not_found)
        .with_state(state)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(move |mut request: Request, next: Next| {
            request.extensions_mut().insert(BodyLimit(body_limit));
            next.run(request)
        }))
        .layer(middleware::from_fn(trace_context::layer))
}

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::RouteNotFound { method: method.to_string(), path: uri.path().to_owned() }
}
