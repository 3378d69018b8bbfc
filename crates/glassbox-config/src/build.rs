//! From the spanned document to [`Config`]: one function per section, then the checks that
//! span sections (references between agents, models and tools, model fallbacks).
//!
//! Every problem is reported and reading carries on; a section entry with problems yields
//! `None`, and a [`Config`] is only assembled when the whole file is free of problems.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use toml::de::DeTable;

use crate::config::{
    AgentConfig, CapturePolicy, ClickHouseConfig, Config, HttpMethod, HttpToolConfig, ModelConfig, OtlpConfig,
    OtlpProtocol, PricingConfig, ProviderKind, ServerConfig, StoreConfig, TelemetryConfig, WriterPolicy,
};
use crate::interpolate::is_env_name;
use crate::reader::{Cx, Field, Section};
use crate::schema::schema;

const ROOT_KEYS: &[&str] = &[
    "server", "store", "telemetry", "pricing", "models", "tools", "agents", "dashboard", "tenants", "keys",
    "online_evals", "workflows",
];
const STORE_KEYS: &[&str] = &[
    "sqlite_path",
    "clickhouse_url",
    "clickhouse_database",
    "clickhouse_user",
    "clickhouse_password_env",
    "clickhouse_cluster",
    "spool_dir",
    "flush_interval_ms",
    "batch_rows",
    "queue_max_bytes",
    "span_ttl_days",
    "writer_nice",
    "writer_policy",
];
const TELEMETRY_KEYS: &[&str] = &["service_name", "otlp_endpoint", "otlp_protocol"];
const PRICING_KEYS: &[&str] =
    &["pattern", "provider", "input_per_million", "output_per_million", "cached_input_per_million"];
const SERVER_KEYS: &[&str] =
    &["listen", "body_limit_bytes", "shutdown_grace_secs", "header_read_timeout_ms", "body_read_timeout_ms"];
const MODEL_KEYS: &[&str] = &[
    "provider",
    "model",
    "base_url",
    "api_key_env",
    "fallback",
    "connect_timeout_ms",
    "first_byte_timeout_ms",
    "total_timeout_ms",
    "max_retries",
    "headers",
];
const TOOL_KEYS: &[&str] = &["description", "url", "method", "parameters", "timeout_ms", "headers"];
const AGENT_KEYS: &[&str] = &[
    "name",
    "description",
    "instructions",
    "model",
    "tools",
    "max_steps",
    "temperature",
    "max_output_tokens",
    "output_schema",
    "capture",
    // The request pipeline: crate::pipeline.
    "processors",
    "guardrails",
    "budget",
    "on_block",
];

/// Timeouts are whole milliseconds from 1 ms to one day.
const TIMEOUT_MS: std::ops::RangeInclusive<i128> = 1..=86_400_000;
const MAX_RETRIES: std::ops::RangeInclusive<i128> = 0..=100;
const MAX_STEPS: std::ops::RangeInclusive<i128> = 1..=50;
const SHUTDOWN_GRACE_SECS: std::ops::RangeInclusive<i128> = 0..=86_400;
/// `[server]` read timeouts: up to an hour.
const READ_TIMEOUT_MS: std::ops::RangeInclusive<i128> = 1..=3_600_000;
const TEMPERATURE: std::ops::RangeInclusive<f64> = 0.0..=2.0;
/// Tool ids are function names for the model; OpenAI and Anthropic accept at most this many
/// characters.
const MAX_TOOL_ID_LEN: usize = 64;

pub(crate) fn build(cx: &mut Cx<'_>, document: &DeTable<'_>) -> Option<Config> {
    let mut root = Section::root(document, ROOT_KEYS);

    let server = match root.get("server") {
        Some(field) => server(cx, &field),
        None => Some(ServerConfig::default()),
    };
    let store = match root.get("store") {
        Some(field) => store(cx, &field),
        None => Some(StoreConfig::default()),
    };
    let telemetry = match root.get("telemetry") {
        Some(field) => telemetry(cx, &field),
        None => Some(TelemetryConfig::default()),
    };
    let dashboard = match root.get("dashboard") {
        Some(field) => crate::dashboard::dashboard(cx, &field),
        None => Some(crate::dashboard::DashboardConfig::default()),
    };
    let pricing = match root.get("pricing") {
        Some(field) => pricing(cx, &field),
        None => Some(Vec::new()),
    };

    let model_fields = root.get("models").and_then(|field| cx.entries(&field)).unwrap_or_default();
    let tool_fields = root.get("tools").and_then(|field| cx.entries(&field)).unwrap_or_default();
    let agent_fields = root.get("agents").and_then(|field| cx.entries(&field)).unwrap_or_default();
    let tenant_fields = root.get("tenants").and_then(|field| cx.entries(&field)).unwrap_or_default();
    let key_fields = root.get("keys").and_then(|field| cx.entries(&field)).unwrap_or_default();
    let online_evals_field = root.get("online_evals");
    let workflow_fields = root.get("workflows").and_then(|field| cx.entries(&field)).unwrap_or_default();
    root.finish(cx);

    // References are checked against every declared id, even of entries with problems, so that
    // one mistake is not reported again at every reference to it.
    let model_ids: Vec<&str> = model_fields.iter().map(|field| field.key).collect();
    let tool_ids: Vec<&str> = tool_fields.iter().map(|field| field.key).collect();

    let mut models = Vec::new();
    let mut fallbacks = Vec::new();
    for field in &model_fields {
        check_id(cx, field, "model");
        let (model, fallback) = model(cx, field);
        models.push(model);
        fallbacks.extend(fallback);
    }
    check_fallbacks(cx, &fallbacks, &model_ids);

    let mut tools = Vec::new();
    for field in &tool_fields {
        check_tool_id(cx, field);
        tools.push(tool(cx, field));
    }

    let mut agents = Vec::new();
    for field in &agent_fields {
        check_id(cx, field, "agent");
        agents.push(agent(cx, field, &model_ids, &tool_ids));
    }

    let agent_ids: Vec<&str> = agent_fields.iter().map(|field| field.key).collect();
    let tenants = crate::access::tenants(cx, &tenant_fields);
    let keys = crate::access::keys(cx, &key_fields, &agent_ids);
    let online_evals = match &online_evals_field {
        Some(field) => crate::online_evals::online_evals(cx, field, &agent_ids),
        None => Some(Vec::new()),
    };
    let agent_refs: Vec<(&str, Option<&serde_json::Value>)> = agent_fields
        .iter()
        .zip(&agents)
        .map(|(field, agent)| (field.key, agent.as_ref().and_then(|agent| agent.output_schema.as_ref())))
        .collect();
    let mut workflows = Vec::new();
    for field in &workflow_fields {
        check_id(cx, field, "workflow");
        workflows.push(crate::workflows::workflow(cx, field, &agent_refs, &tool_ids));
    }

    if cx.n_problems() > 0 {
        return None;
    }
    Some(Config {
        tenants: tenants?,
        keys: keys?,
        server: server?,
        store: store?,
        telemetry: telemetry?,
        pricing: pricing?,
        dashboard: dashboard?,
        models: models.into_iter().collect::<Option<_>>()?,
        tools: tools.into_iter().collect::<Option<_>>()?,
        agents: agents.into_iter().collect::<Option<_>>()?,
        online_evals: online_evals?,
        workflows: workflows.into_iter().collect::<Option<_>>()?,
    })
}

fn server(cx: &mut Cx<'_>, field: &Field<'_>) -> Option<ServerConfig> {
    let mut section = cx.section(field, SERVER_KEYS)?;
    let defaults = ServerConfig::default();

    let listen = match section.get("listen") {
        Some(field) => cx.string(&field).and_then(|text| match text.parse::<SocketAddr>() {
            Ok(listen) => Some(listen),
            Err(_) => {
                cx.error(
                    field.offset(),
                    format!(
                        "{}: invalid socket address {text:?} (expected ip:port, \
                         e.g. 127.0.0.1:8080)",
                        field.path
                    ),
                );
                None
            }
        }),
        None => Some(defaults.listen),
    };
    let body_limit_bytes = match section.get("body_limit_bytes") {
        Some(field) => cx.integer(&field, 1..=i128::from(u64::MAX)).and_then(|value| usize::try_from(value).ok()),
        None => Some(defaults.body_limit_bytes),
    };
    let shutdown_grace = match section.get("shutdown_grace_secs") {
        Some(field) => {
            cx.integer(&field, SHUTDOWN_GRACE_SECS).and_then(|value| u64::try_from(value).ok()).map(Duration::from_secs)
        }
        None => Some(defaults.shutdown_grace),
    };
    let header_read_timeout = match section.get("header_read_timeout_ms") {
        Some(field) => cx.integer(&field, READ_TIMEOUT_MS).and_then(|value| u64::try_from(value).ok()).map(Duration::from_millis),
        None => Some(defaults.header_read_timeout),
    };
    let body_read_timeout = match section.get("body_read_timeout_ms") {
        Some(field) => cx.integer(&field, READ_TIMEOUT_MS).and_then(|value| u64::try_from(value).ok()).map(Duration::from_millis),
        None => Some(defaults.body_read_timeout),
    };
    section.finish(cx);

    Some(ServerConfig {
        listen: listen?,
        body_limit_bytes: body_limit_bytes?,
        shutdown_grace: shutdown_grace?,
        header_read_timeout: header_read_timeout?,
        body_read_timeout: body_read_timeout?,
    })
}

fn store(cx: &mut Cx<'_>, field: &Field<'_>) -> Option<StoreConfig> {
    let mut section = cx.section(field, STORE_KEYS)?;
    let defaults = StoreConfig::default();
    let path = |cx: &mut Cx<'_>, field: Option<Field<'_>>, default: PathBuf| match field {
        Some(field) => non_empty_string(cx, &field).map(PathBuf::from),
        None => Some(default),
    };
    let sqlite_path = path(cx, section.get("sqlite_path"), defaults.sqlite_path);
    let spool_dir = path(cx, section.get("spool_dir"), defaults.spool_dir);
    let url_field = section.get("clickhouse_url");
    let url = url_field.as_ref().map(|field| http_url(cx, field));
    let database = match section.get("clickhouse_database") {
        Some(field) => database_name(cx, &field),
        None => Some("glassbox".to_owned()),
    };
    let user = match section.get("clickhouse_user") {
        Some(field) => non_empty_string(cx, &field).map(Some),
        None => Some(None),
    };
    let password_env = match section.get("clickhouse_password_env") {
        Some(field) => env_name(cx, &field).map(Some),
        None => Some(None),
    };
    let cluster = match section.get("clickhouse_cluster") {
        Some(field) => database_name(cx, &field).map(Some),
        None => Some(None),
    };
    let flush_interval = millis(cx, &mut section, "flush_interval_ms", 1000);
    let batch_rows = match section.get("batch_rows") {
        Some(field) => cx.integer(&field, 1..=1_000_000).and_then(|value| usize::try_from(value).ok()).map(Some),
        None => Some(defaults.batch_rows),
    };
    let queue_max_bytes = match section.get("queue_max_bytes") {
        Some(field) => cx.integer(&field, 1 << 20..=1 << 40).and_then(|value| u64::try_from(value).ok()),
        None => Some(defaults.queue_max_bytes),
    };
    let span_ttl_days = match section.get("span_ttl_days") {
        Some(field) => cx.integer(&field, 1..=36_500).and_then(|value| u32::try_from(value).ok()),
        None => Some(defaults.span_ttl_days),
    };
    let writer_nice = match section.get("writer_nice") {
        Some(field) => cx.integer(&field, 0..=19).and_then(|value| i32::try_from(value).ok()),
        None => Some(defaults.writer_nice),
    };
    let writer_policy = match section.get("writer_policy") {
        Some(field) => cx.string(&field).and_then(|policy| match policy.as_str() {
            "auto" => Some(WriterPolicy::Auto),
            "normal" => Some(WriterPolicy::Normal),
            "idle" => Some(WriterPolicy::Idle),
            other => {
                let message =
                    format!("{}: unknown policy {other:?} (use \"auto\", \"normal\" or \"idle\")", field.path);
                cx.error(field.offset(), message);
                None
            }
        }),
        None => Some(defaults.writer_policy),
    };
    section.finish(cx);
    let clickhouse = match url {
        Some(url) => Some(ClickHouseConfig { url: url?, database: database?, user: user?, password_env: password_env?, cluster: cluster? }),
        None => None,
    };
    Some(StoreConfig {
        clickhouse,
        sqlite_path: sqlite_path?,
        spool_dir: spool_dir?,
        flush_interval: flush_interval?,
        batch_rows: batch_rows?,
        queue_max_bytes: queue_max_bytes?,
        span_ttl_days: span_ttl_days?,
        writer_nice: writer_nice?,
        writer_policy: writer_policy?,
    })
}

/// ClickHouse database and cluster names: `^[A-Za-z0-9_]+$`, so they can go into DDL.
fn database_name(cx: &mut Cx<'_>, field: &Field<'_>) -> Option<String> {
    let name = cx.string(field)?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        cx.error(field.offset(), format!("{}: invalid name {name:?} (use letters, digits and \"_\")", field.path));
        return None;
    }
    Some(name)
}

fn telemetry(cx: &mut Cx<'_>, field: &Field<'_>) -> Option<TelemetryConfig> {
    let mut section = cx.section(field, TELEMETRY_KEYS)?;
    let service_name = match section.get("service_name") {
        Some(field) => non_empty_string(cx, &field),
        None => Some(TelemetryConfig::default().service_name),
    };
    let endpoint = section.get("otlp_endpoint").map(|field| http_url(cx, &field));
    let protocol = match section.get("otlp_protocol") {
        Some(field) => cx.string(&field).and_then(|text| match text.as_str() {
            "grpc" => Some(OtlpProtocol::Grpc),
            "http/protobuf" => Some(OtlpProtocol::HttpProtobuf),
            _ => {
                cx.error(field.offset(), format!("{}: unknown protocol {text:?} (expected grpc or http/protobuf)", field.path));
                None
            }
        }),
        None => Some(OtlpProtocol::Grpc),
    };
    section.finish(cx);
    let otlp = match endpoint {
        Some(endpoint) => Some(OtlpConfig { endpoint: endpoint?, protocol: protocol? }),
        None => None,
    };
    Some(TelemetryConfig { service_name: service_name?, otlp })
}

fn pricing(cx: &mut Cx<'_>, field: &Field<'_>) -> Option<Vec<PricingConfig>> {
    let elements = cx.array(field)?;
    let mut entries = Vec::with_capacity(elements.len());
    for element in &elements {
        entries.push(pricing_entry(cx, element));
    }
    entries.into_iter().collect()
}

fn pricing_entry(cx: &mut Cx<'_>, field: &Field<'_>) -> Option<PricingConfig> {
    let mut section = cx.section(field, PRICING_KEYS)?;
    let pattern = section.require(cx, "pattern").and_then(|field| non_empty_string(cx, &field));
    let provider = match section.get("provider") {
        Some(field) => non_empty_string(cx, &field).map(Some),
        None => Some(None),
    };
    const PRICE: std::ops::RangeInclusive<f64> = 0.0..=1_000_000.0;
    let input = section.require(cx, "input_per_million").and_then(|field| cx.float(&field, PRICE));
    let output = section.require(cx, "output_per_million").and_then(|field| cx.float(&field, PRICE));
    let cached = match section.get("cached_input_per_million") {
        Some(field) => cx.float(&field, PRICE).map(Some),
        None => Some(None),
    };
    section.finish(cx);
    Some(PricingConfig {
        pattern: pattern?,
        provider: provider?,
        input_per_million: input?,
        output_per_million: output?,
        cached_input_per_million: cached?,
    })
}

/// A model's `fallback = "..."`, kept for the checks that need every model.
struct FallbackRef {
    model_id: String,
    target: String,
    offset: usize,
    path: String,
}

fn model(cx: &mut Cx<'_>, model_field: &Field<'_>) -> (Option<ModelConfig>, Option<FallbackRef>) {
    let Some(mut section) = cx.section(model_field, MODEL_KEYS) else {
        return (None, None);
    };

    let provider = section.require(cx, "provider").and_then(|field| {
        let text = cx.string(&field)?;
        let provider = ProviderKind::from_config_str(&text);
        if provider.is_none() {
            cx.error(
                field.offset(),
                format!("{}: unknown provider {text:?} (expected openai, anthropic or mock)", field.path),
            );
        }
        provider
    });
    let model_name = section.require(cx, "model").and_then(|field| non_empty_string(cx, &field));

    let base_url = match (section.get("base_url"), provider) {
        (Some(field), Some(ProviderKind::Mock)) => {
            cx.error(field.offset(), format!("{}: not allowed for a mock model (it makes no requests)", field.path));
            None
        }
        (Some(field), _) => http_url(cx, &field).map(Some),
        (None, Some(provider)) => Some(provider.default_base_url().map(str::to_owned)),
        // The provider is wrong, which is reported already.
        (None, None) => None,
    };

    let api_key_env_field = section.get("api_key_env");
    let api_key_env = match &api_key_env_field {
        Some(field) => env_name(cx, field).map(Some),
        None => Some(None),
    };

    let fallback_field = section.get("fallback");
    let fallback_target = fallback_field.as_ref().and_then(|field| cx.string(field));
    // Recorded even when this model has other problems, so that a chain through it is caught.
    let fallback_ref = fallback_field.as_ref().zip(fallback_target.as_ref()).map(|(field, target)| FallbackRef {
        model_id: model_field.key.to_owned(),
        target: target.clone(),
        offset: field.offset(),
        path: field.path.clone(),
    });
    let fallback = match (&fallback_field, fallback_target) {
        (None, _) => Some(None),
        // Not a string, which is reported already.
        (Some(_), None) => None,
        (Some(field), Some(_)) if api_key_env_field.is_none() => {
            cx.error(
                field.offset(),
                format!(
                    "{}: has no effect without api_key_env (the fallback is used when that variable is unset or \
                     empty)",
                    field.path
                ),
            );
            None
        }
        (Some(_), Some(target)) => Some(Some(target)),
    };

    let connect_timeout = millis(cx, &mut section, "connect_timeout_ms", 5_000);
    let first_byte_timeout = millis(cx, &mut section, "first_byte_timeout_ms", 60_000);
    let total_timeout = millis(cx, &mut section, "total_timeout_ms", 300_000);
    let max_retries = match section.get("max_retries") {
        Some(field) => cx.integer(&field, MAX_RETRIES).and_then(|value| u32::try_from(value).ok()),
        None => Some(2),
    };
    let headers = match section.get("headers") {
        Some(field) => headers(cx, &field),
        None => Some(Vec::new()),
    };
    section.finish(cx);

    let (
        Some(provider),
        Some(model),
        Some(base_url),
        Some(api_key_env),
        Some(fallback),
        Some(connect_timeout),
        Some(first_byte_timeout),
        Some(total_timeout),
        Some(max_retries),
        Some(headers),
    ) = (
        provider,
        model_name,
        base_url,
        api_key_env,
        fallback,
        connect_timeout,
        first_byte_timeout,
        total_timeout,
        max_retries,
        headers,
    )
    else {
        return (None, fallback_ref);
    };
    let config = ModelConfig {
        id: model_field.key.to_owned(),
        provider,
        model,
        base_url,
        api_key_env,
        fallback,
        connect_timeout,
        first_byte_timeout,
        total_timeout,
        max_retries,
        headers,
    };
    (Some(config), fallback_ref)
}

/// Fallbacks must name another model that has no fallback of its own.
fn check_fallbacks(cx: &mut Cx<'_>, fallbacks: &[FallbackRef], model_ids: &[&str]) {
    for fallback in fallbacks {
        if fallback.target == fallback.model_id {
            cx.error(fallback.offset, format!("{}: a model cannot fall back to itself", fallback.path));
        } else if !model_ids.contains(&fallback.target.as_str()) {
            cx.error(
                fallback.offset,
                format!("{}: unknown model {:?} ({})", fallback.path, fallback.target, known_list(model_ids, "models")),
            );
        } else if fallbacks.iter().any(|other| other.model_id == fallback.target) {
            cx.error(
                fallback.offset,
                format!(
                    "{}: model {:?} has a fallback of its own (fallbacks do not chain)",
                    fallback.path, fallback.target
                ),
            );
        }
    }
}

fn tool(cx: &mut Cx<'_>, tool_field: &Field<'_>) -> Option<HttpToolConfig> {
    let mut section = cx.section(tool_field, TOOL_KEYS)?;
    let description = section.require(cx, "description").and_then(|field| cx.string(&field));
    let url = section.require(cx, "url").and_then(|field| http_url(cx, &field));
    let method = match section.get("method") {
        Some(field) => cx.string(&field).and_then(|text| {
            let method = HttpMethod::from_config_str(&text);
            if method.is_none() {
                cx.error(
                    field.offset(),
                    format!("{}: unknown method {text:?} (expected GET, POST, PUT, PATCH or DELETE)", field.path),
                );
            }
            method
        }),
        None => Some(HttpMethod::Post),
    };
    let parameters = section.require(cx, "parameters").and_then(|field| schema(cx, &field, true));
    let timeout = millis(cx, &mut section, "timeout_ms", 10_000);
    let headers = match section.get("headers") {
        Some(field) => headers(cx, &field),
        None => Some(Vec::new()),
    };
    section.finish(cx);

    Some(HttpToolConfig {
        id: tool_field.key.to_owned(),
        description: description?,
        url: url?,
        method: method?,
        parameters: parameters?,
        timeout: timeout?,
        headers: headers?,
    })
}

fn agent(cx: &mut Cx<'_>, agent_field: &Field<'_>, model_ids: &[&str], tool_ids: &[&str]) -> Option<AgentConfig> {
    let mut section = cx.section(agent_field, AGENT_KEYS)?;
    let name = match section.get("name") {
        Some(field) => non_empty_string(cx, &field),
        None => Some(agent_field.key.to_owned()),
    };
    let description = match section.get("description") {
        Some(field) => cx.string(&field),
        None => Some(String::new()),
    };
    let instructions = section.require(cx, "instructions").and_then(|field| non_empty_string(cx, &field));
    let model = section.require(cx, "model").and_then(|field| {
        let model = cx.string(&field)?;
        if model_ids.contains(&model.as_str()) {
            Some(model)
        } else {
            cx.error(
                field.offset(),
                format!("{}: unknown model {model:?} ({})", field.path, known_list(model_ids, "models")),
            );
            None
        }
    });
    let tools = match section.get("tools") {
        Some(field) => agent_tools(cx, &field, tool_ids),
        None => Some(Vec::new()),
    };
    let max_steps = match section.get("max_steps") {
        Some(field) => cx.integer(&field, MAX_STEPS).and_then(|value| u32::try_from(value).ok()),
        None => Some(5),
    };
    let temperature = match section.get("temperature") {
        Some(field) => cx.float(&field, TEMPERATURE).map(|value| Some(value as f32)),
        None => Some(None),
    };
    let max_output_tokens = match section.get("max_output_tokens") {
        Some(field) => {
            cx.integer(&field, 1..=i128::from(u32::MAX)).and_then(|value| u32::try_from(value).ok()).map(Some)
        }
        None => Some(None),
    };
    let output_schema = match section.get("output_schema") {
        Some(field) => schema(cx, &field, false).map(Some),
        None => Some(None),
    };
    let capture = match section.get("capture") {
        Some(field) => cx.string(&field).and_then(|text| match text.as_str() {
            "full" => Some(CapturePolicy::Full),
            "redacted" => Some(CapturePolicy::Redacted),
            "none" => Some(CapturePolicy::None),
            _ => {
                cx.error(field.offset(), format!("{}: unknown capture policy {text:?} (expected full, redacted or none)", field.path));
                None
            }
        }),
        None => Some(CapturePolicy::default()),
    };
    let pipeline = crate::pipeline::agent_pipeline(cx, &mut section, model_ids);
    section.finish(cx);

    Some(AgentConfig {
        id: agent_field.key.to_owned(),
        name: name?,
        description: description?,
        instructions: instructions?,
        model: model?,
        tools: tools?,
        max_steps: max_steps?,
        temperature: temperature?,
        max_output_tokens: max_output_tokens?,
        output_schema: output_schema?,
        capture: capture?,
        pipeline: pipeline?,
    })
}

/// An agent's `tools`: known tool ids, each at most once.
fn agent_tools(cx: &mut Cx<'_>, field: &Field<'_>, tool_ids: &[&str]) -> Option<Vec<String>> {
    let elements = cx.array(field)?;
    let mut ok = true;
    let mut tools: Vec<String> = Vec::with_capacity(elements.len());
    for element in &elements {
        let Some(tool) = cx.string(element) else {
            ok = false;
            continue;
        };
        if !tool_ids.contains(&tool.as_str()) {
            cx.error(
                element.offset(),
                format!("{}: unknown tool {tool:?} ({})", element.path, known_list(tool_ids, "tools")),
            );
            ok = false;
        } else if tools.contains(&tool) {
            cx.error(element.offset(), format!("{}: tool {tool:?} is listed more than once", element.path));
            ok = false;
        } else {
            tools.push(tool);
        }
    }
    ok.then_some(tools)
}

/// `headers = { name = "value", ... }`. Values may be secrets, so no message quotes them.
fn headers(cx: &mut Cx<'_>, field: &Field<'_>) -> Option<Vec<(String, String)>> {
    let entries = cx.entries(field)?;
    let mut ok = true;
    let mut headers: Vec<(String, String)> = Vec::with_capacity(entries.len());
    let mut seen: HashSet<String> = HashSet::new();
    for entry in &entries {
        let name = entry.key;
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            cx.error(
                entry.key_offset,
                format!("{}: invalid header name (use letters, digits and !#$%&'*+-.^_`|~)", entry.path),
            );
            ok = false;
        } else if !seen.insert(name.to_ascii_lowercase()) {
            cx.error(
                entry.key_offset,
                format!("{}: header {name:?} is set more than once (header names ignore case)", entry.path),
            );
            ok = false;
        }
        let Some(value) = cx.string(entry) else {
            ok = false;
            continue;
        };
        if !value.bytes().all(|byte| byte == b'\t' || (0x20..0x7f).contains(&byte)) {
            cx.error(
                entry.offset(),
                format!(
                    "{}: invalid header value (only visible ascii characters, spaces and tabs \
                     are allowed)",
                    entry.path
                ),
            );
            ok = false;
            continue;
        }
        headers.push((name.to_owned(), value));
    }
    ok.then_some(headers)
}

/// `tchar` of RFC 9110: the characters of a header name.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// An absolute `http://` or `https://` URL. The URL itself is not quoted in messages: it may
/// carry credentials.
fn http_url(cx: &mut Cx<'_>, field: &Field<'_>) -> Option<String> {
    let text = cx.string(field)?;
    match url::Url::parse(&text) {
        Ok(url) if !matches!(url.scheme(), "http" | "https") => {
            cx.error(
                field.offset(),
                format!("{}: must be an http or https url, not {:?}", field.path, format!("{}:", url.scheme())),
            );
            None
        }
        Ok(url) if url.host_str().is_none_or(str::is_empty) => {
            cx.error(field.offset(), format!("{}: invalid url: no host", field.path));
            None
        }
        Ok(_) => Some(text),
        Err(error) => {
            cx.error(field.offset(), format!("{}: invalid url: {error}", field.path));
            None
        }
    }
}

/// The name (not the value) of an environment variable.
pub(crate) fn env_name(cx: &mut Cx<'_>, field: &Field<'_>) -> Option<String> {
    let name = cx.string(field)?;
    if is_env_name(&name) {
        return Some(name);
    }
    // Never quote the value: it may well be the key itself.
    cx.error(
        field.offset(),
        format!(
            "{}: must be the name of an environment variable (letters, digits and \"_\", not \
             starting with a digit), not the key itself",
            field.path
        ),
    );
    None
}

pub(crate) fn non_empty_string(cx: &mut Cx<'_>, field: &Field<'_>) -> Option<String> {
    let text = cx.string(field)?;
    if text.trim().is_empty() {
        cx.error(field.offset(), format!("{}: must not be empty", field.path));
        return None;
    }
    Some(text)
}

/// A `*_ms` key as a duration, or `default_ms` when absent.
fn millis(cx: &mut Cx<'_>, section: &mut Section<'_>, key: &str, default_ms: u64) -> Option<Duration> {
    match section.get(key) {
        Some(field) => {
            cx.integer(&field, TIMEOUT_MS).and_then(|value| u64::try_from(value).ok()).map(Duration::from_millis)
        }
        None => Some(Duration::from_millis(default_ms)),
    }
}

/// Model and agent ids: `^[A-Za-z0-9_.-]+$`.
pub(crate) fn check_id(cx: &mut Cx<'_>, field: &Field<'_>, what: &str) {
    let is_valid =
        !field.key.is_empty() && field.key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !is_valid {
        cx.error(
            field.key_offset,
            format!("{}: invalid {what} id {:?} (use letters, digits, \"_\", \".\" and \"-\")", field.path, field.key),
        );
    }
}

/// Tool ids are the function names the model sees, so they follow the providers' rule for
/// function names: `^[A-Za-z0-9_-]{1,64}$`.
fn check_tool_id(cx: &mut Cx<'_>, field: &Field<'_>) {
    let is_valid = !field.key.is_empty()
        && field.key.len() <= MAX_TOOL_ID_LEN
        && field.key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    if !is_valid {
        cx.error(
            field.key_offset,
            format!(
                "{}: invalid tool id {:?} (a tool id is the function name the model sees: \
                 letters, digits, \"_\" and \"-\", at most {MAX_TOOL_ID_LEN} characters)",
                field.path, field.key
            ),
        );
    }
}

/// `known: a, b` (or `no <what> declared`) for "unknown ..." messages.
pub(crate) fn known_list(ids: &[&str], what: &str) -> String {
    if ids.is_empty() { format!("no {what} declared") } else { format!("known: {}", ids.join(", ")) }
}
