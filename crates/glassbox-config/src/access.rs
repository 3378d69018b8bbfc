//! `[tenants.<id>]` and `[keys.<id>]`: who may call the API, how often, and how much they may
//! spend per day and month.
//!
//! ```toml
//! [tenants.acme]                    # the tenant id: ^[A-Za-z0-9_.-]+$
//! requests_per_minute = 600         # default rate of each key of this tenant (optional)
//! burst = 20                        # default: requests_per_minute; needs requests_per_minute
//! daily_tokens = 2000000            # optional budgets of the whole tenant, UTC day and month:
//! daily_usd = 10.0                  #   input + output tokens, US dollars
//! monthly_tokens = 50000000
//! monthly_usd = 200.0
//!
//! [keys.acme-ci]                    # the key id (never the key): ^[A-Za-z0-9_.-]+$
//! tenant = "acme"                   # required
//! key_env = "ACME_CI_KEY"           # the NAME of the variable holding the key, or
//! key_sha256 = "9f86d0..."          #   the SHA-256 of the key, 64 hex digits (exactly one)
//! agents = ["assistant"]            # optional: only these agents (default: all)
//! workflows = ["onboarding"]        # optional: only these workflows (default: all)
//! requests_per_minute = 60          # optional: overrides the tenant's default
//! burst = 5
//! daily_usd = 1.0                   # optional budgets of this key alone (same four keys)
//! ```
//!
//! Tenants need not be declared: a key's tenant is a label, and `[tenants.<id>]` only adds
//! limits. Keys created with `glassbox keys create` live in the store, not here.

use crate::build::{check_id, env_name, known_list, non_empty_string};
use crate::reader::{Cx, Field, Section};

pub(crate) const TENANT_KEYS: &[&str] =
    &["requests_per_minute", "burst", "daily_tokens", "daily_usd", "monthly_tokens", "monthly_usd"];
pub(crate) const KEY_KEYS: &[&str] = &[
    "tenant",
    "key_env",
    "key_sha256",
    "agents",
    "workflows",
    "requests_per_minute",
    "burst",
    "daily_tokens",
    "daily_usd",
    "monthly_tokens",
    "monthly_usd",
];

/// Requests per minute with a burst (the GCRA bucket size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    pub requests_per_minute: u32,
    pub burst: u32,
}

/// Period budgets; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BudgetConfig {
    pub daily_tokens: Option<u64>,
    pub daily_usd: Option<f64>,
    pub monthly_tokens: Option<u64>,
    pub monthly_usd: Option<f64>,
}

impl BudgetConfig {
    pub fn is_unlimited(&self) -> bool {
        *self == Self::default()
    }
}

/// `[tenants.<id>]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantConfig {
    pub id: String,
    /// The default rate of each key of the tenant.
    pub rate_limit: Option<RateLimitConfig>,
    pub budget: BudgetConfig,
}

/// How a configured key is recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySecret {
    /// The name of an environment variable holding the key; the server reads it at start.
    Env(String),
    /// The SHA-256 of the key, lower-case hex.
    Sha256(String),
}

/// `[keys.<id>]`.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyConfig {
    pub id: String,
    pub tenant: String,
    pub secret: KeySecret,
    /// `None`: every agent.
    pub agents: Option<Vec<String>>,
    /// `None`: every workflow.
    pub workflows: Option<Vec<String>>,
    pub rate_limit: Option<RateLimitConfig>,
    pub budget: BudgetConfig,
}

pub(crate) fn tenants(cx: &mut Cx<'_>, fields: &[Field<'_>]) -> Option<Vec<TenantConfig>> {
    let mut tenants = Vec::with_capacity(fields.len());
    for field in fields {
        check_id(cx, field, "tenant");
        tenants.push(tenant(cx, field));
    }
    tenants.into_iter().collect()
}

fn tenant(cx: &mut Cx<'_>, field: &Field<'_>) -> Option<TenantConfig> {
    let mut section = cx.section(field, TENANT_KEYS)?;
    let rate_limit = rate_limit(cx, &mut section, field);
    let budget = budget(cx, &mut section);
    section.finish(cx);
    Some(TenantConfig { id: field.key.to_owned(), rate_limit: rate_limit?, budget: budget? })
}

pub(crate) fn keys(cx: &mut Cx<'_>, fields: &[Field<'_>], agent_ids: &[&str]) -> Option<Vec<KeyConfig>> {
    let mut keys = Vec::with_capacity(fields.len());
    let mut hashes: Vec<String> = Vec::new();
    for field in fields {
        check_id(cx, field, "key");
        let key = key(cx, field, agent_ids);
        if let Some(KeyConfig { secret: KeySecret::Sha256(hash), .. }) = &key {
            if hashes.contains(hash) {
                cx.error(field.key_offset, format!("{}: the same key_sha256 is declared twice", field.path));
            }
            hashes.push(hash.clone());
        }
        keys.push(key);
    }
    keys.into_iter().collect()
}

fn key(cx: &mut Cx<'_>, field: &Field<'_>, agent_ids: &[&str]) -> Option<KeyConfig> {
    let mut section = cx.section(field, KEY_KEYS)?;
    let tenant = section.require(cx, "tenant").and_then(|tenant| {
        let text = non_empty_string(cx, &tenant)?;
        let valid = text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !valid {
            cx.error(
                tenant.offset(),
                format!("{}: invalid tenant id {text:?} (use letters, digits, \"_\", \".\" and \"-\")", tenant.path),
            );
            return None;
        }
        Some(text)
    });
    let secret = match (section.get("key_env"), section.get("key_sha256")) {
        (Some(env), None) => env_name(cx, &env).map(KeySecret::Env),
        (None, Some(hash)) => {
            let text = cx.string(&hash)?;
            if text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit()) {
                Some(KeySecret::Sha256(text.to_ascii_lowercase()))
            } else {
                cx.error(hash.offset(), format!("{}: must be the SHA-256 of the key as 64 hex digits", hash.path));
                None
            }
        }
        (Some(env), Some(_)) => {
            cx.error(env.key_offset, format!("{}: set key_env or key_sha256, not both", field.path));
            None
        }
        (None, None) => {
            cx.error(field.key_offset, format!("{}: missing key_env or key_sha256", field.path));
            None
        }
    };
    let agents = match section.get("agents") {
        Some(list) => id_list(cx, &list, Some(agent_ids), "agent").map(Some),
        None => Some(None),
    };
    let workflows = match section.get("workflows") {
        Some(list) => id_list(cx, &list, None, "workflow").map(Some),
        None => Some(None),
    };
    let rate_limit = rate_limit(cx, &mut section, field);
    let budget = budget(cx, &mut section);
    section.finish(cx);
    Some(KeyConfig {
        id: field.key.to_owned(),
        tenant: tenant?,
        secret: secret?,
        agents: agents?,
        workflows: workflows?,
        rate_limit: rate_limit?,
        budget: budget?,
    })
}

/// A list of ids, each at most once; checked against `known` when given.
fn id_list(cx: &mut Cx<'_>, field: &Field<'_>, known: Option<&[&str]>, what: &str) -> Option<Vec<String>> {
    let elements = cx.array(field)?;
    let mut ok = true;
    let mut ids: Vec<String> = Vec::with_capacity(elements.len());
    for element in &elements {
        let Some(id) = non_empty_string(cx, element) else {
            ok = false;
            continue;
        };
        if let Some(known) = known.filter(|known| !known.contains(&id.as_str())) {
            cx.error(
                element.offset(),
                format!("{}: unknown {what} {id:?} ({})", element.path, known_list(known, &format!("{what}s"))),
            );
            ok = false;
        } else if ids.contains(&id) {
            cx.error(element.offset(), format!("{}: {what} {id:?} is listed more than once", element.path));
            ok = false;
        } else {
            ids.push(id);
        }
    }
    ok.then_some(ids)
}

fn rate_limit(cx: &mut Cx<'_>, section: &mut Section<'_>, owner: &Field<'_>) -> Option<Option<RateLimitConfig>> {
    const RATE: std::ops::RangeInclusive<i128> = 1..=1_000_000_000;
    let per_minute = section.get("requests_per_minute").map(|field| cx.integer(&field, RATE));
    let burst = section.get("burst").map(|field| (cx.integer(&field, RATE), field));
    match (per_minute, burst) {
        (None, None) => Some(None),
        (None, Some((_, field))) => {
            cx.error(field.key_offset, format!("{}: burst needs requests_per_minute", owner.path));
            None
        }
        (Some(per_minute), burst) => {
            let per_minute = u32::try_from(per_minute?).ok()?;
            let burst = match burst {
                Some((burst, _)) => u32::try_from(burst?).ok()?,
                None => per_minute,
            };
            Some(Some(RateLimitConfig { requests_per_minute: per_minute, burst }))
        }
    }
}

fn budget(cx: &mut Cx<'_>, section: &mut Section<'_>) -> Option<BudgetConfig> {
    const TOKENS: std::ops::RangeInclusive<i128> = 1..=(i64::MAX as i128);
    const USD: std::ops::RangeInclusive<f64> = 0.0..=1_000_000_000.0;
    let mut tokens = |cx: &mut Cx<'_>, key: &str| match section.get(key) {
        Some(field) => cx.integer(&field, TOKENS).and_then(|value| u64::try_from(value).ok()).map(Some),
        None => Some(None),
    };
    let daily_tokens = tokens(cx, "daily_tokens");
    let monthly_tokens = tokens(cx, "monthly_tokens");
    let mut usd = |cx: &mut Cx<'_>, key: &str| match section.get(key) {
        Some(field) => cx.float(&field, USD).map(Some),
        None => Some(None),
    };
    let daily_usd = usd(cx, "daily_usd");
    let monthly_usd = usd(cx, "monthly_usd");
    Some(BudgetConfig {
        daily_tokens: daily_tokens?,
        daily_usd: daily_usd?,
        monthly_tokens: monthly_tokens?,
        monthly_usd: monthly_usd?,
    })
}
