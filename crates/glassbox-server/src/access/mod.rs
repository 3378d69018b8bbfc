//! Who may call the API, how often, and how much they may spend: API keys and tenants, per-key
//! rate limits, and per-key / per-tenant period budgets.
//!
//! - Keys come from `[keys.<id>]` in the config (a SHA-256 or an environment variable holding
//!   the key) and from the store (`glassbox keys create`). With no key anywhere the server runs
//!   in open development mode: nothing is checked, and [`Access::is_open`] says so.
//! - [`check`] (run by the server's `gate` middleware on every route behind keys) asks for
//!   `Authorization: Bearer <key>` (401 when missing or wrong), checks the key's agents and
//!   workflows (403, from the route's `agent_id` / `workflow_id` path parameter), then the
//!   key's rate limit (429 with `Retry-After`). Every
//!   answer of a checked request carries `RateLimit-Limit`, `-Remaining` and `-Reset`.
//! - Handlers call [`Access::reserve`] once the body is parsed: the estimated cost is held
//!   against the key's and tenant's budgets until the request ends (402 when one is spent).
//!   Actual usage is settled from the usage rows of the telemetry pipeline
//!   ([`Access::settle`]); the spend of the current day and month is rebuilt from the store at
//!   start ([`Access::restore_budgets`]).
//!
//! The tenant and key id go on the request span and, through [`Caller::label`], on the agent
//! run's and every model call's span, so usage rows carry them. The key itself is never
//! recorded anywhere; only its id is.

pub mod budget;
pub mod rate;
pub mod secret;

use std::sync::Arc;

use axum::extract::{FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use foldhash::HashMap;
use glassbox_config::{Config, KeyConfig, KeySecret, RateLimitConfig, TenantConfig};
use glassbox_core::{Agent, GenerateOptions, Message};
use glassbox_store::pricing::{PricingTable, TokenCounts};
use glassbox_store::{KeyStore, StoreError, StoredKey, UsageRow};
use subtle::ConstantTimeEq as _;

use self::budget::{Amount, Budgets, Limits, Period, Reservation, Scope, ScopeKind};
use self::rate::{RateLimit, RateState};
use crate::AppState;
use crate::error::ApiError;
use crate::telemetry::SpanExt as _;

/// Output tokens assumed for a request when the agent sets no `max_output_tokens`.
pub const DEFAULT_OUTPUT_ESTIMATE: u64 = 1024;

/// Where a key was declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    Config,
    Store,
}

/// One known key: who it belongs to and what it may do.
#[derive(Debug)]
pub struct KeyEntry {
    pub id: String,
    pub tenant: String,
    pub source: KeySource,
    hash: [u8; 32],
    /// `None`: every agent. Short lists: a linear scan beats hashing.
    agents: Option<Vec<String>>,
    workflows: Option<Vec<String>>,
    rate: Option<RateLimit>,
    rate_config: Option<RateLimitConfig>,
    key_budget: Arc<Scope>,
    tenant_budget: Option<Arc<Scope>>,
}

impl KeyEntry {
    pub fn may_use_agent(&self, agent_id: &str) -> bool {
        self.agents.as_ref().is_none_or(|agents| agents.iter().any(|agent| agent == agent_id))
    }

    pub fn may_use_workflow(&self, workflow_id: &str) -> bool {
        self.workflows.as_ref().is_none_or(|workflows| workflows.iter().any(|workflow| workflow == workflow_id))
    }

    pub fn agents(&self) -> Option<&[String]> {
        self.agents.as_deref()
    }

    pub fn rate_limit(&self) -> Option<RateLimitConfig> {
        self.rate_config
    }

    /// May use every agent and every workflow (no `agents` / `workflows` list).
    pub fn is_unrestricted(&self) -> bool {
        self.agents.is_none() && self.workflows.is_none()
    }

    /// The SHA-256 of the key (the key itself is not kept).
    pub fn sha256(&self) -> &[u8; 32] {
        &self.hash
    }
}

/// Who is calling: anyone (open mode) or the holder of one key. Handlers take it as an
/// extractor; on a route that [`check`] did not run on it answers 401 unless the server is
/// open, so a forgotten layer fails closed.
#[derive(Debug, Clone)]
pub enum Caller {
    Open,
    Key(Arc<KeyEntry>),
}

impl Caller {
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Self::Open => None,
            Self::Key(key) => Some(&key.tenant),
        }
    }

    pub fn key_id(&self) -> Option<&str> {
        match self {
            Self::Open => None,
            Self::Key(key) => Some(&key.id),
        }
    }

    /// 403 unless the caller may use `agent_id`: for routes that name the agent elsewhere than
    /// in an `agent_id` path parameter (the OpenAI facade's `model`, say).
    pub fn ensure_agent(&self, agent_id: &str) -> Result<(), ApiError> {
        match self {
            Self::Key(key) if !key.may_use_agent(agent_id) => {
                Err(ApiError::Forbidden { resource: "agent", id: agent_id.to_owned(), key_id: key.id.clone() })
            }
            _ => Ok(()),
        }
    }

    /// 403 unless the caller may run `workflow_id`.
    pub fn ensure_workflow(&self, workflow_id: &str) -> Result<(), ApiError> {
        match self {
            Self::Key(key) if !key.may_use_workflow(workflow_id) => {
                Err(ApiError::Forbidden { resource: "workflow", id: workflow_id.to_owned(), key_id: key.id.clone() })
            }
            _ => Ok(()),
        }
    }

    /// Puts the tenant and key id on the run, so its spans and usage rows carry them.
    pub fn label(&self, options: &mut GenerateOptions) {
        if let Self::Key(key) = self {
            options.tenant = Some(key.tenant.clone());
            options.api_key_id = Some(key.id.clone());
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Caller>() {
            Some(caller) => Ok(caller.clone()),
            None if state.access.is_open() => Ok(Caller::Open),
            None => Err(ApiError::Unauthorized { reason: "this route needs an API key" }),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("keys.{key_id}: environment variable {variable} is not set")]
    KeyEnvUnset { key_id: String, variable: String },
    #[error("key {key_id}: the stored hash is not 64 hex digits")]
    StoredHashInvalid { key_id: String },
    #[error("key {key_id} is declared twice (or two keys have the same value)")]
    Duplicate { key_id: String },
    #[error("could not read the keys or usage from the store")]
    Store(#[from] StoreError),
}

/// The keys, limits and budgets of a server. Fixed after start apart from the budgets'
/// counters; looking up a key takes no lock.
#[derive(Debug)]
pub struct Access {
    by_hash: HashMap<[u8; 32], Arc<KeyEntry>>,
    /// Every key, in declaration order (config first, then the store's, by id).
    keys: Vec<Arc<KeyEntry>>,
    budgets: Budgets,
    pricing: Arc<PricingTable>,
}

impl Access {
    /// Open development mode: no keys, no limits, no budgets.
    pub fn open() -> Self {
        Self {
            by_hash: HashMap::default(),
            keys: Vec::new(),
            budgets: Budgets::default(),
            pricing: Arc::new(PricingTable::shipped()),
        }
    }

    /// Builds the key table. `env` reads the variables named by `key_env`.
    pub fn build(
        tenants: &[TenantConfig],
        keys: &[KeyConfig],
        stored: &[StoredKey],
        env: &dyn Fn(&str) -> Option<String>,
        pricing: Arc<PricingTable>,
    ) -> Result<Self, AccessError> {
        // Every tenant and key gets a scope, limited or not, so `GET /api/budgets` shows the
        // spend of each; only scopes with limits are reserved against.
        let mut budgets = Budgets::default();
        for tenant in tenants {
            let limits = Limits::from_config(&tenant.budget);
            budgets
                .tenants
                .insert(tenant.id.clone(), Arc::new(Scope::new(ScopeKind::Tenant, tenant.id.clone(), limits)));
        }
        let tenant_ids = keys.iter().map(|key| &key.tenant).chain(stored.iter().map(|key| &key.tenant));
        for tenant in tenant_ids {
            budgets
                .tenants
                .entry(tenant.clone())
                .or_insert_with(|| Arc::new(Scope::new(ScopeKind::Tenant, tenant.clone(), Limits::default())));
        }
        let tenant_rate = |tenant: &str| tenants.iter().find(|t| t.id == tenant).and_then(|t| t.rate_limit);
        let mut access = Self { by_hash: HashMap::default(), keys: Vec::new(), budgets, pricing };

        for key in keys {
            let hash = match &key.secret {
                KeySecret::Sha256(hex) => secret::parse_sha256(hex)
                    .ok_or_else(|| AccessError::StoredHashInvalid { key_id: key.id.clone() })?,
                KeySecret::Env(variable) => {
                    let value = env(variable).filter(|value| !value.trim().is_empty()).ok_or_else(|| {
                        AccessError::KeyEnvUnset { key_id: key.id.clone(), variable: variable.clone() }
                    })?;
                    secret::sha256(value.trim())
                }
            };
            let key_budget = access.key_scope(&key.id, Limits::from_config(&key.budget));
            let rate_config = key.rate_limit.or_else(|| tenant_rate(&key.tenant));
            access.insert(KeyEntry {
                id: key.id.clone(),
                tenant: key.tenant.clone(),
                source: KeySource::Config,
                hash,
                agents: key.agents.clone(),
                workflows: key.workflows.clone(),
                rate: rate_config.map(RateLimit::new),
                rate_config,
                key_budget,
                tenant_budget: access.budgets.tenants.get(&key.tenant).cloned(),
            })?;
        }
        for key in stored {
            let hash = secret::parse_sha256(&key.key_sha256)
                .ok_or_else(|| AccessError::StoredHashInvalid { key_id: key.id.clone() })?;
            let rate_config = tenant_rate(&key.tenant);
            let key_budget = access.key_scope(&key.id, Limits::default());
            access.insert(KeyEntry {
                id: key.id.clone(),
                tenant: key.tenant.clone(),
                source: KeySource::Store,
                hash,
                agents: key.agents.clone(),
                workflows: key.workflows.clone(),
                rate: rate_config.map(RateLimit::new),
                rate_config,
                key_budget,
                tenant_budget: access.budgets.tenants.get(&key.tenant).cloned(),
            })?;
        }
        Ok(access)
    }

    fn key_scope(&mut self, key_id: &str, limits: Limits) -> Arc<Scope> {
        let scope = Arc::new(Scope::new(ScopeKind::Key, key_id.to_owned(), limits));
        self.budgets.keys.insert(key_id.to_owned(), Arc::clone(&scope));
        scope
    }

    fn insert(&mut self, entry: KeyEntry) -> Result<(), AccessError> {
        if self.by_hash.contains_key(&entry.hash) || self.keys.iter().any(|key| key.id == entry.id) {
            return Err(AccessError::Duplicate { key_id: entry.id });
        }
        let entry = Arc::new(entry);
        self.by_hash.insert(entry.hash, Arc::clone(&entry));
        self.keys.push(entry);
        Ok(())
    }

    /// The config's keys plus the store's, with budgets rebuilt from the store's usage rows.
    pub async fn load(
        config: &Config,
        key_store: &dyn KeyStore,
        env: &dyn Fn(&str) -> Option<String>,
        pricing: Arc<PricingTable>,
    ) -> Result<Self, AccessError> {
        let stored = key_store.list_keys().await?;
        let access = Self::build(&config.tenants, &config.keys, &stored, env, pricing)?;
        access.restore_budgets(key_store).await?;
        Ok(access)
    }

    /// Sets the spend of the current day and month from the store's usage rows.
    pub async fn restore_budgets(&self, key_store: &dyn KeyStore) -> Result<(), StoreError> {
        if self.budgets.is_empty() {
            return Ok(());
        }
        let now = budget::now_ns();
        for period in [Period::Day, Period::Month] {
            let range = period.bounds(now);
            let usage = key_store.usage_by_key(&range).await?;
            self.budgets.restore(period, range, &usage, now);
        }
        Ok(())
    }

    /// No key is configured anywhere: every request is let through unchecked.
    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn keys(&self) -> &[Arc<KeyEntry>] {
        &self.keys
    }

    pub fn budgets(&self) -> &Budgets {
        &self.budgets
    }

    /// The key a request's `Authorization: Bearer <key>` names.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<KeyEntry>, ApiError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::Unauthorized { reason: "missing Authorization header (expected: Bearer <API key>)" });
        };
        let presented = value
            .to_str()
            .ok()
            .and_then(|text| text.strip_prefix("Bearer ").or_else(|| text.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|key| !key.is_empty())
            .ok_or(ApiError::Unauthorized { reason: "malformed Authorization header (expected: Bearer <API key>)" })?;
        let hash = secret::sha256(presented);
        match self.by_hash.get(&hash) {
            Some(entry) if bool::from(entry.hash.ct_eq(&hash)) => Ok(Arc::clone(entry)),
            _ => Err(ApiError::Unauthorized { reason: "invalid API key" }),
        }
    }

    /// Settles one model call against its tenant's and key's budgets.
    pub fn settle(&self, row: &UsageRow) {
        self.budgets.settle(row);
    }

    /// What a run is expected to cost: the prompt's tokens (a quarter of its characters,
    /// rounded up) plus the agent's `max_output_tokens` (or [`DEFAULT_OUTPUT_ESTIMATE`]),
    /// priced for the agent's model.
    pub fn estimate(&self, agent: &Agent, messages: &[Message]) -> Amount {
        let chars: usize = agent.instructions().chars().count()
            + messages
                .iter()
                .map(|message| match message {
                    Message::System { text } | Message::User { text } => text.chars().count(),
                    Message::Assistant { text, tool_calls } => {
                        text.chars().count()
                            + tool_calls.iter().map(|call| call.arguments.to_string().len()).sum::<usize>()
                    }
                    Message::Tool { content, .. } => content.chars().count(),
                })
                .sum::<usize>();
        let input = (chars as u64).div_ceil(4).max(1);
        let output = agent.max_output_tokens().map_or(DEFAULT_OUTPUT_ESTIMATE, u64::from);
        let model = agent.model();
        let cost = self.pricing.cost(
            model.provider(),
            model.model_name(),
            TokenCounts { input, output, cached_input: 0, reasoning: 0 },
        );
        Amount { tokens: input + output, nano_usd: cost.nano_usd }
    }

    /// Holds the run's estimated cost against the caller's budgets until the returned
    /// reservation is dropped; 402 when a budget of the current period is spent.
    pub fn reserve(
        &self,
        caller: &Caller,
        agent: &Agent,
        messages: &[Message],
    ) -> Result<Option<Reservation>, ApiError> {
        let Caller::Key(key) = caller else { return Ok(None) };
        let scopes: Vec<&Arc<Scope>> = std::iter::once(&key.key_budget)
            .chain(key.tenant_budget.iter())
            .filter(|scope| !scope.limits.is_unlimited())
            .collect();
        if scopes.is_empty() {
            return Ok(None);
        }
        let amount = self.estimate(agent, messages);
        budget::reserve(&scopes, amount, budget::now_ns())
            .map(Some)
            .map_err(|refusal| ApiError::BudgetExhausted(Box::new(refusal)))
    }
}

/// The access middleware (run by `crate::gate` on every route behind keys): marks the request
/// span as an API request, checks the key, the agent / workflow it names and its rate limit,
/// then runs `inner` with the [`Caller`] in the request. A route added to the API gets it by
/// going through `gate` in `crate::build_router`.
pub(crate) async fn check<F: Future<Output = Response>>(
    state: &AppState,
    params: &RawPathParams,
    mut request: Request,
    inner: impl FnOnce(Request) -> F,
) -> Response {
    // The request span (this middleware runs inside it) is an API request from here on,
    // whatever the answer: the dashboard's overview counts these spans (`RequestStats`).
    let span = tracing::Span::current();
    span.set_attribute(glassbox_store::REQUEST_ATTRIBUTE, true);
    for (name, value) in params {
        match name {
            "agent_id" | "agentId" => span.set_attribute("glassbox.agent", value.to_owned()),
            "workflow_id" | "workflowId" => span.set_attribute("glassbox.workflow", value.to_owned()),
            _ => {}
        }
    }
    let access = &state.access;
    if access.is_open() {
        request.extensions_mut().insert(Caller::Open);
        return inner(request).await;
    }
    let key = match access.authenticate(request.headers()) {
        Ok(key) => key,
        Err(error) => return error.into_response(),
    };
    span.set_attribute("glassbox.tenant", key.tenant.clone());
    span.set_attribute("glassbox.api_key_id", key.id.clone());
    for (name, value) in params {
        let refused = match name {
            "agent_id" | "agentId" => (!key.may_use_agent(value)).then_some("agent"),
            "workflow_id" | "workflowId" => (!key.may_use_workflow(value)).then_some("workflow"),
            _ => None,
        };
        if let Some(resource) = refused {
            return ApiError::Forbidden { resource, id: value.to_owned(), key_id: key.id.clone() }.into_response();
        }
    }
    let rate_state = match &key.rate {
        Some(rate) => match rate.check() {
            Ok(state) => Some(state),
            Err(state) => {
                span.set_attribute("glassbox.rate_limited", true);
                return ApiError::RateLimited(state).into_response();
            }
        },
        None => None,
    };
    request.extensions_mut().insert(Caller::Key(key));
    let mut response = inner(request).await;
    if let Some(state) = rate_state {
        rate_limit_headers(response.headers_mut(), &state);
    }
    response
}

/// `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (seconds).
pub fn rate_limit_headers(headers: &mut HeaderMap, state: &RateState) {
    headers.insert("ratelimit-limit", HeaderValue::from(state.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(state.remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(state.reset_secs));
}
