//! `GET /api/budgets`: each tenant's and key's spend this UTC day and month against its limits.
//! A key sees its own tenant and that tenant's keys; open mode shows everything.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::AppState;
use crate::access::Caller;
use crate::access::budget::{Amount, Limits, Scope, ScopeSnapshot, now_ns, rfc3339};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/budgets", get(budgets))
}

fn usd(nano_usd: i64) -> Value {
    json!(nano_usd as f64 / 1e9)
}

fn limits_json(limits: &Limits) -> Value {
    json!({
        "dailyTokens": limits.daily_tokens,
        "dailyUsd": limits.daily_nano_usd.map(usd),
        "monthlyTokens": limits.monthly_tokens,
        "monthlyUsd": limits.monthly_nano_usd.map(usd),
    })
}

fn period_json(
    (range, used): (glassbox_store::TimeRange, Amount),
    token_limit: Option<u64>,
    usd_limit: Option<i64>,
) -> Value {
    json!({
        "start": rfc3339(range.from_ns),
        "resetAt": rfc3339(range.to_ns),
        "usedTokens": used.tokens,
        "usedUsd": usd(used.nano_usd),
        "remainingTokens": token_limit.map(|limit| limit.saturating_sub(used.tokens)),
        "remainingUsd": usd_limit.map(|limit| usd((limit - used.nano_usd).max(0))),
    })
}

fn scope_json(scope: &Scope, snapshot: ScopeSnapshot) -> Value {
    json!({
        "id": scope.id,
        "limits": limits_json(&scope.limits),
        "day": period_json(snapshot.day, scope.limits.daily_tokens, scope.limits.daily_nano_usd),
        "month": period_json(snapshot.month, scope.limits.monthly_tokens, scope.limits.monthly_nano_usd),
        "reserved": { "tokens": snapshot.reserved.tokens, "usd": usd(snapshot.reserved.nano_usd) },
    })
}

/// Each tenant's and key's usage this UTC day and month against its limits, with the
/// reservations of runs in flight. A key sees its own tenant only.
#[utoipa::path(
    get,
    path = "/api/budgets",
    tag = "budgets",
    responses(
        (status = 200, description = "`{tenants: [{id, limits, day, month, reserved, keys: [...]}]}`; amounts in \
            tokens and USD, periods with `start`, `resetAt`, `used*` and `remaining*`", body = Object),
        (status = 401, description = "Missing or wrong API key", body = crate::error::ErrorBody),
    )
)]
pub async fn budgets(State(state): State<AppState>, caller: Caller) -> Json<Value> {
    let now = now_ns();
    let visible = |tenant: &str| caller.tenant().is_none_or(|own| own == tenant);
    let budgets = state.access.budgets();
    let mut tenants: Vec<(&String, Value)> = budgets
        .tenants
        .iter()
        .filter(|(id, _)| visible(id))
        .map(|(id, scope)| (id, scope_json(scope, scope.snapshot(now))))
        .collect();
    tenants.sort_by(|a, b| a.0.cmp(b.0));
    let keys: Vec<Value> = state
        .access
        .keys()
        .iter()
        .filter(|key| visible(&key.tenant))
        .filter_map(|key| {
            let scope = budgets.keys.get(&key.id)?;
            let mut value = scope_json(scope, scope.snapshot(now));
            value["tenant"] = json!(key.tenant);
            value["rateLimit"] = match key.rate_limit() {
                Some(rate) => json!({ "requestsPerMinute": rate.requests_per_minute, "burst": rate.burst }),
                None => Value::Null,
            };
            Some(value)
        })
        .collect();
    Json(json!({
        "openMode": state.access.is_open(),
        "tenants": tenants.into_iter().map(|(_, value)| value).collect::<Vec<_>>(),
        "keys": keys,
    }))
}
