//! The Budgets and keys page (`/dashboard/budgets`): each tenant's and key's spend this UTC
//! day and month against its limits, with the reservations of runs in flight — the figures
//! `GET /api/budgets` and `/metrics` report, read from the same in-memory budgets.
//!
//! Keys are shown by their public id, tenant and origin only: the server keeps no secret
//! (only a hash, which this page never reads). A tenant-scoped viewer sees its own tenant and
//! that tenant's keys, whatever `tenant=` asks for.

use askama::Template;
use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::access::Viewer;
use super::pages::Chrome;
use super::sources;
use super::{Dashboard, PageError, format, render};
use crate::access::KeySource;
use crate::access::budget::{Amount, Limits, Scope, ScopeSnapshot};

#[derive(Debug, Default, Deserialize)]
pub struct BudgetsQuery {
    tenant: Option<String>,
}

/// One figure (tokens or dollars) of one period against its limit.
pub struct Meter {
    pub used: String,
    pub limit: String,
    /// Share of the limit used, 0–100 (capped), for the bar; `None` without a limit.
    pub fill: Option<f64>,
    pub percent: String,
    /// `ok`, `warn` (80% or more) or `over` (at or above the limit).
    pub level: &'static str,
}

impl Meter {
    fn new(used: f64, used_text: String, limit: Option<(f64, String)>) -> Self {
        match limit {
            None => {
                Self { used: used_text, limit: "no limit".to_owned(), fill: None, percent: String::new(), level: "ok" }
            }
            Some((limit, limit_text)) => {
                let share = if limit > 0.0 { used / limit } else { 1.0 };
                Self {
                    used: used_text,
                    limit: limit_text,
                    fill: Some((share * 100.0).clamp(0.0, 100.0)),
                    percent: format!("{:.1}%", share * 100.0),
                    level: if share >= 1.0 {
                        "over"
                    } else if share >= 0.8 {
                        "warn"
                    } else {
                        "ok"
                    },
                }
            }
        }
    }
}

pub struct PeriodView {
    pub tokens: Meter,
    pub usd: Meter,
    pub resets: String,
}

fn period(used: Amount, reset_ns: i64, token_limit: Option<u64>, usd_limit: Option<i64>) -> PeriodView {
    PeriodView {
        tokens: Meter::new(
            used.tokens as f64,
            used.tokens.to_string(),
            token_limit.map(|limit| (limit as f64, limit.to_string())),
        ),
        usd: Meter::new(
            used.nano_usd as f64,
            format::usd(used.nano_usd),
            usd_limit.map(|limit| (limit as f64, format::usd(limit))),
        ),
        resets: format::utc_minute(reset_ns),
    }
}

pub struct ScopeView {
    pub id: String,
    pub tenant: String,
    pub source: &'static str,
    pub rate_limit: String,
    pub day: PeriodView,
    pub month: PeriodView,
    pub reserved_tokens: u64,
    pub reserved_usd: String,
}

fn scope_view(scope: &Scope, snapshot: ScopeSnapshot, tenant: &str) -> ScopeView {
    let Limits { daily_tokens, daily_nano_usd, monthly_tokens, monthly_nano_usd } = scope.limits;
    ScopeView {
        id: scope.id.clone(),
        tenant: tenant.to_owned(),
        source: "",
        rate_limit: String::new(),
        day: period(snapshot.day.1, snapshot.day.0.to_ns, daily_tokens, daily_nano_usd),
        month: period(snapshot.month.1, snapshot.month.0.to_ns, monthly_tokens, monthly_nano_usd),
        reserved_tokens: snapshot.reserved.tokens,
        reserved_usd: format::usd(snapshot.reserved.nano_usd),
    }
}

#[derive(Template)]
#[template(path = "budgets.html")]
pub struct BudgetsPage {
    chrome: Chrome,
    tenant: String,
    /// The viewer is limited to one tenant (the filter is fixed).
    forced: bool,
    open_mode: bool,
    tenants: Vec<ScopeView>,
    keys: Vec<ScopeView>,
}

pub async fn budgets(
    State(dashboard): State<Dashboard>,
    Extension(viewer): Extension<Viewer>,
    query: Result<Query<BudgetsQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let query = sources::query(query)?;
    let requested = sources::text_filter("tenant", query.tenant.as_deref())?;
    let tenant = match viewer.forced_tenant() {
        Some(forced) => Some(forced.to_owned()),
        None => requested,
    };
    let visible = |id: &str| tenant.as_deref().is_none_or(|only| only == id);
    let now = sources::now_ns();
    let (open_mode, tenants, keys) = match &dashboard.sources.access {
        None => (true, Vec::new(), Vec::new()),
        Some(access) => {
            let budgets = access.budgets();
            let mut tenants: Vec<ScopeView> = budgets
                .tenants
                .iter()
                .filter(|(id, _)| visible(id))
                .map(|(id, scope)| scope_view(scope, scope.snapshot(now), id))
                .collect();
            tenants.sort_by(|a, b| a.id.cmp(&b.id));
            let keys = access
                .keys()
                .iter()
                .filter(|key| visible(&key.tenant))
                .filter_map(|key| {
                    let scope = budgets.keys.get(&key.id)?;
                    let mut view = scope_view(scope, scope.snapshot(now), &key.tenant);
                    view.source = match key.source {
                        KeySource::Config => "config",
                        KeySource::Store => "store",
                    };
                    view.rate_limit = key.rate_limit().map_or_else(
                        || "none".to_owned(),
                        |rate| format!("{}/min, burst {}", rate.requests_per_minute, rate.burst),
                    );
                    Some(view)
                })
                .collect();
            (access.is_open(), tenants, keys)
        }
    };
    let page = BudgetsPage {
        chrome: sources::chrome(&dashboard, &viewer, "budgets"),
        forced: viewer.forced_tenant().is_some(),
        tenant: tenant.unwrap_or_default(),
        open_mode,
        tenants,
        keys,
    };
    Ok(render(StatusCode::OK, &page))
}
