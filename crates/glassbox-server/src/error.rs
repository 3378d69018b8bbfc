//! The one error type of the HTTP API: every failure answers `{error, code, details?}` with
//! the status of DESIGN.md's table. Client errors say what was wrong; internal errors answer a
//! generic message and keep the detail for the log line.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use glassbox_core::{AgentError, ProviderError};
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    InvalidBody { message: String, field: Option<String> },
    #[error("request body is not valid JSON: {message}")]
    MalformedJson { message: String },
    #[error("request body is larger than the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("could not read the request body")]
    BodyUnreadable,
    #[error("the request body was not received within {} ms", .after.as_millis())]
    BodyTimeout { after: std::time::Duration },
    #[error("unknown agent \"{agent_id}\"")]
    AgentNotFound { agent_id: String },
    #[error("no route for {method} {path}")]
    RouteNotFound { method: String, path: String },
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error("unauthorized: {reason}")]
    Unauthorized { reason: &'static str },
    #[error("API key {key_id} may not use {resource} \"{id}\"")]
    Forbidden { resource: &'static str, id: String, key_id: String },
    #[error("rate limit exceeded: retry in {} s", .0.reset_secs)]
    RateLimited(crate::access::rate::RateState),
    #[error("{} budget of {} \"{}\" is spent for this {}", .0.metric.as_str(), .0.scope.as_str(), .0.id, .0.period.as_str())]
    BudgetExhausted(Box<crate::access::budget::BudgetRefusal>),
}

/// The error body of every route outside `/v1/`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    /// What went wrong, for a person.
    pub error: String,
    /// A stable machine-readable code (`invalid_body`, `agent_not_found`, `provider_timeout`, ...).
    pub code: &'a str,
    /// More about it, such as `{field}` naming the offending field of the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidBody { .. } | Self::MalformedJson { .. } | Self::BodyUnreadable => StatusCode::BAD_REQUEST,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::AgentNotFound { .. } | Self::RouteNotFound { .. } => StatusCode::NOT_FOUND,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::BudgetExhausted(_) => StatusCode::PAYMENT_REQUIRED,
            Self::Agent(error) => match error {
                AgentError::InvalidOutputSchema { .. } | AgentError::EmptyConversation => StatusCode::BAD_REQUEST,
                AgentError::Provider(ProviderError::Timeout { .. }) => StatusCode::GATEWAY_TIMEOUT,
                AgentError::Provider(_) | AgentError::StructuredOutput { .. } => StatusCode::BAD_GATEWAY,
                AgentError::InvalidTool { .. } | AgentError::InvalidBudget { .. } => StatusCode::INTERNAL_SERVER_ERROR,
                AgentError::Blocked(_) => StatusCode::UNPROCESSABLE_ENTITY,
            },
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidBody { .. } => "invalid_body",
            Self::MalformedJson { .. } => "malformed_json",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::BodyUnreadable => "body_unreadable",
            Self::BodyTimeout { .. } => "body_timeout",
            Self::AgentNotFound { .. } => "agent_not_found",
            Self::RouteNotFound { .. } => "route_not_found",
            Self::Agent(error) => error.kind(),
            Self::Unauthorized { .. } => "unauthorized",
            Self::Forbidden { .. } => "forbidden",
            Self::RateLimited(_) => "rate_limited",
            Self::BudgetExhausted(_) => "budget_exhausted",
        }
    }

    /// The message shown to the client: the whole cause chain for client and provider errors
    /// (they hold no secrets: provider messages are the provider's own error text).
    pub fn client_message(&self) -> String {
        if self.status() == StatusCode::INTERNAL_SERVER_ERROR {
            return "internal error".to_owned();
        }
        let mut message = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            let cause_text = cause.to_string();
            if !message.contains(&cause_text) {
                message.push_str(": ");
                message.push_str(&cause_text);
            }
            source = cause.source();
        }
        message
    }

    fn details(&self) -> Option<Value> {
        match self {
            Self::InvalidBody { field: Some(field), .. } => Some(serde_json::json!({ "field": field })),
            Self::Agent(AgentError::InvalidOutputSchema { .. }) => Some(serde_json::json!({ "field": "output" })),
            Self::Agent(AgentError::EmptyConversation) => Some(serde_json::json!({ "field": "messages" })),
            Self::Agent(AgentError::Provider(ProviderError::RateLimited { retry_after: Some(after), .. })) => {
                Some(serde_json::json!({ "providerRetryAfterSeconds": after.as_secs_f64() }))
            }
            Self::Agent(AgentError::StructuredOutput { text, .. }) => Some(serde_json::json!({ "text": text })),
            Self::BodyTimeout { after } => Some(serde_json::json!({ "timeoutMs": after.as_millis() as u64 })),
            Self::Forbidden { resource, id, key_id } => {
                Some(serde_json::json!({ "resource": resource, "id": id, "keyId": key_id }))
            }
            Self::RateLimited(state) => Some(serde_json::json!({
                "limit": state.limit, "remaining": state.remaining, "retryAfterSeconds": state.reset_secs,
            })),
            Self::BudgetExhausted(refusal) => Some(budget_details(refusal)),
            Self::Agent(AgentError::Blocked(tripwire)) => {
                Some(serde_json::json!({ "tripwire": { "reason": tripwire.reason, "processorId": tripwire.processor_id } }))
            }
            _ => None,
        }
    }

    /// The JSON body, also used for `error` chunks of a stream.
    pub fn body(&self) -> Value {
        let body = ErrorBody { error: self.client_message(), code: self.code(), details: self.details() };
        serde_json::to_value(body).unwrap_or(Value::Null)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %crate::error::chain(&self), code = self.code(), "request failed");
        }
        let mut response = (status, Json(self.body())).into_response();
        match &self {
            Self::Unauthorized { .. } => {
                response.headers_mut().insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
            }
            Self::RateLimited(state) => {
                response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(state.reset_secs));
                crate::access::rate_limit_headers(response.headers_mut(), state);
            }
            _ => {}
        }
        response
    }
}

/// The limit, the usage and the reset time of a spent budget; dollars as numbers of USD.
fn budget_details(refusal: &crate::access::budget::BudgetRefusal) -> Value {
    use crate::access::budget::{Metric, rfc3339};
    let amount = |value: i128| match refusal.metric {
        Metric::Tokens => serde_json::json!(value),
        Metric::Usd => serde_json::json!(value as f64 / 1e9),
    };
    serde_json::json!({
        "scope": refusal.scope.as_str(),
        "id": refusal.id,
        "period": refusal.period.as_str(),
        "metric": refusal.metric.as_str(),
        "limit": amount(refusal.limit),
        "used": amount(refusal.used),
        "resetAt": rfc3339(refusal.reset_ns),
        "resetInSeconds": ((refusal.reset_ns - refusal.now_ns).max(0) as u64).div_ceil(1_000_000_000),
    })
}

/// Formats an error with its whole cause chain, for log lines.
pub fn chain(error: &dyn std::error::Error) -> String {
    glassbox_core::error_chain(error)
}
