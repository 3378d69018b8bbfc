//! The bundled dashboard at `/dashboard`: server-rendered askama pages (templates and the
//! stylesheet live in `dashboards/` at the top of the repository) over the store's
//! [`TraceReader`], so every page works on ClickHouse and on SQLite alike.
//!
//! Rules the pages keep:
//! - No JavaScript at all: filters are plain GET forms, so the URL holds the whole view;
//!   charts are SVG drawn by the templates.
//! - Everything rendered is escaped by askama (HTML escaping is on for every `.html`
//!   template, SVG included); nothing is marked `|safe`.
//! - Every response carries a Content-Security-Policy that allows no script, no inline style
//!   and nothing from another origin.
//! - Dashboard views are not traced into the store (the router sits outside the API's request
//!   tracing), so looking at traces does not add traces.

mod access;
mod budgets_page;
mod chart;
mod evals_page;
pub mod format;
mod keys;
mod pages;
mod params;
mod sources;
mod waterfall;
mod workflows_page;

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Form, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use glassbox_store::{StoreError, TraceReader};
use serde::Deserialize;

pub use access::{Access, ResolveViewer, Scope, Viewer};
pub use sources::PageSources;
pub use keys::KeyViewers;

/// The policy of every dashboard response: same-origin styles and forms, `data:` images (the
/// empty favicon), no scripts, no framing.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLESHEET: &str = include_str!("../../../../dashboards/static/dashboard.css");

/// What the dashboard needs: the store's read side and the access rule.
#[derive(Clone)]
pub struct Dashboard {
    pub reader: Arc<dyn TraceReader>,
    pub access: Access,
    /// `clickhouse` or `sqlite`, shown in the footer.
    pub store_name: &'static str,
    /// Evals, workflow runs, keys and budgets, for their pages.
    pub sources: PageSources,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard").field("access", &self.access).field("store", &self.store_name).finish()
    }
}

/// The dashboard's routes, with their state applied, to merge next to the API.
pub fn router(dashboard: Dashboard) -> Router {
    let pages = Router::new()
        .route("/dashboard", get(pages::overview))
        .route("/dashboard/", get(pages::overview))
        .route("/dashboard/traces", get(pages::traces))
        .route("/dashboard/traces/{trace_id}", get(pages::trace))
        .route("/dashboard/cost", get(pages::cost))
        .route("/dashboard/cost.csv", get(pages::cost_csv))
        .route("/dashboard/latency", get(pages::latency))
        .route("/dashboard/evals", get(evals_page::evals))
        .route("/dashboard/evals/runs/{run_id}", get(evals_page::eval_run))
        .route("/dashboard/workflows", get(workflows_page::workflows))
        .route("/dashboard/budgets", get(budgets_page::budgets))
        .route("/dashboard/logout", axum::routing::post(logout))
        .route_layer(middleware::from_fn_with_state(dashboard.clone(), access::require_viewer));
    Router::new()
        .merge(pages)
        .route("/dashboard/login", get(login_form).post(login))
        .route("/dashboard/static/dashboard.css", get(stylesheet))
        .with_state(dashboard)
        .layer(middleware::from_fn(security_headers))
}

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.entry(CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

async fn stylesheet() -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8")),
            (CACHE_CONTROL, HeaderValue::from_static("public, max-age=300")),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// Why a page could not be shown; rendered as an error page with its status.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("{0}")]
    BadRequest(String),
    #[error("sign in to see the dashboard")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("the store is unavailable; try again shortly")]
    Unavailable(#[source] StoreError),
    #[error("the page could not be shown")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<StoreError> for PageError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::InvalidQuery { message } => Self::BadRequest(message),
            error if error.is_retryable() => Self::Unavailable(error),
            error => Self::Internal(Box::new(error)),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    status: u16,
    reason: String,
    message: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            // The detail goes to the log, never to the page.
            let error: &dyn std::error::Error = &self;
            let mut chain = String::new();
            let mut source = error.source();
            while let Some(cause) = source {
                chain.push_str(": ");
                chain.push_str(&cause.to_string());
                source = cause.source();
            }
            tracing::error!(status = status.as_u16(), "dashboard page failed: {self}{chain}");
        }
        let page = ErrorPage {
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("Error").to_owned(),
            message: self.to_string(),
        };
        render(status, &page)
    }
}

/// Renders a template; a rendering failure (which askama only has for broken `Display`
/// impls) becomes a plain 500.
pub(crate) fn render(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            tracing::error!(%error, "dashboard template failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    failed: bool,
    closed: bool,
}

async fn login_form(State(dashboard): State<Dashboard>) -> Response {
    if matches!(dashboard.access, Access::OpenDevelopment) {
        return Redirect::to("/dashboard").into_response();
    }
    let page = LoginPage { failed: false, closed: matches!(dashboard.access, Access::Closed) };
    render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(dashboard): State<Dashboard>,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return PageError::BadRequest("the login form needs a `token` field".into()).into_response();
    };
    match dashboard.access.login(form.token.trim()) {
        Some(cookie) => {
            let cookie = format!("{}={cookie}; Path=/dashboard; HttpOnly; SameSite=Strict", access::COOKIE_NAME);
            let mut response = Redirect::to("/dashboard").into_response();
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(SET_COOKIE, value);
            }
            response
        }
        None => {
            let page = LoginPage { failed: true, closed: matches!(dashboard.access, Access::Closed) };
            render(StatusCode::UNAUTHORIZED, &page)
        }
    }
}

async fn logout() -> Response {
    let mut response = Redirect::to("/dashboard/login").into_response();
    let expired = format!("{}=; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=0", access::COOKIE_NAME);
    if let Ok(value) = HeaderValue::from_str(&expired) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    response
}
