//! Liveness and readiness probes for load balancers and orchestrators.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

/// The process is up and serving HTTP.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "`{status: \"ok\"}`", body = Object)))]
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The server is ready for traffic: the state it serves from was built at start-up, so a
/// server that answers is ready. Later dependencies (the store) add their checks here.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "`{status: \"ready\", agents}`", body = Object)))]
pub async fn readyz(axum::extract::State(state): axum::extract::State<AppState>) -> Json<Value> {
    Json(json!({ "status": "ready", "agents": state.agents.all().len() }))
}
