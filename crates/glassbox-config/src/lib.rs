//! `glassbox.toml`: parsing, `${ENV}` interpolation and validation with file positions.
//!
//! [`load`] (or [`parse`]) turns the file into a [`Config`]: plain data with every default
//! applied and every reference checked. The server turns it into providers and agents; this
//! crate depends on no other glassbox crate. When the file has problems, the result is
//! [`ConfigError::Invalid`] with *every* problem found, each as `file:line:column: message`
//! (this is what `glassbox check` prints).
//!
//! # Format
//!
//! ```toml
//! [server]                          # optional, as is every key in it
//! listen = "127.0.0.1:8080"         # ip:port
//! body_limit_bytes = 1048576        # default 1 MiB, >= 1
//! shutdown_grace_secs = 10          # default 10, 0..=86400
//! header_read_timeout_ms = 30000    # default 30000: slow headers (or idle keep-alive) close the connection
//! body_read_timeout_ms = 30000      # default 30000: a slow body answers 408; 1..=3600000
//!
//! [models.gpt]                      # the model id is the table key: ^[A-Za-z0-9_.-]+$
//! provider = "openai"               # "openai" (any OpenAI-compatible server) | "anthropic" | "mock"
//! model = "gpt-4o-mini"             # the name sent to the provider; required, not empty
//! base_url = "https://api.openai.com/v1"  # http(s) URL; default per provider
//!                                   #   (openai: https://api.openai.com/v1,
//!                                   #    anthropic: https://api.anthropic.com/v1);
//!                                   #   not allowed for mock
//! api_key_env = "OPENAI_API_KEY"    # the NAME of the variable holding the key, never the key
//! fallback = "mock"                 # model used when api_key_env's variable is unset or empty;
//!                                   #   needs api_key_env; must be another model, without a
//!                                   #   fallback of its own
//! connect_timeout_ms = 5000         # default 5000      } all timeouts: 1..=86400000 ms
//! first_byte_timeout_ms = 60000     # default 60000     }
//! total_timeout_ms = 300000         # default 300000    }
//! max_retries = 2                   # default 2, 0..=100
//! headers = { "x-extra" = "v" }     # extra request headers (names: RFC 9110 token characters)
//!
//! [tools.get_weather]               # an HTTP tool; the id is the function name the model sees:
//!                                   #   ^[A-Za-z0-9_-]{1,64}$
//! description = "Current weather for a city"   # required
//! url = "http://127.0.0.1:9000/weather"        # required, http(s)
//! method = "POST"                   # GET | POST | PUT | PATCH | DELETE, default POST
//! parameters = { type = "object", properties = { city = { type = "string" } }, required = ["city"] }
//!                                   # required: a valid JSON schema with type = "object"
//! timeout_ms = 10000                # default 10000
//! headers = {}                      # optional
//!
//! [agents.assistant]                # the agent id: ^[A-Za-z0-9_.-]+$
//! name = "Assistant"                # default: the id
//! description = "..."               # default ""
//! instructions = "You are ..."      # required, not blank
//! model = "gpt"                     # required: a model id from [models]
//! tools = ["get_weather"]           # default []: tool ids from [tools], each at most once
//! max_steps = 5                     # default 5, 1..=50
//! temperature = 0.2                 # optional, 0.0..=2.0
//! max_output_tokens = 1024          # optional, >= 1
//! output_schema = { type = "object" }  # optional: a valid JSON schema for structured output
//! capture = "full"                  # prompts/completions in traces: full | redacted | none
//! processors = [{ type = "pii" }]   # input processors, guardrails, budget, on_block:
//!                                   #   see the `pipeline` module
//!
//! [store]                           # optional: the embedded SQLite store unless clickhouse_url
//! sqlite_path = ".glassbox/glassbox.db"
//! clickhouse_url = "http://localhost:8123"     # the ClickHouse HTTP interface
//! clickhouse_database = "glassbox"  # ^[A-Za-z0-9_]+$
//! clickhouse_user = "default"
//! clickhouse_password_env = "CLICKHOUSE_PASSWORD"  # the NAME of the variable
//! clickhouse_cluster = "prod"       # optional: ON CLUSTER migrations, Replicated engines
//! spool_dir = ".glassbox/spool"     # batches wait here while the store is down
//! flush_interval_ms = 1000
//! # batch_rows = 250                # 1..=1000000; unset: 250 for SQLite, 1000 for ClickHouse
//! queue_max_bytes = 16777216        # rows held in memory before the spool takes them; >= 1 MiB
//! span_ttl_days = 30                # 1..=36500
//! writer_nice = 0                   # 0..=19: the SQLite write thread's nice value (Linux)
//! writer_policy = "auto"            # auto | normal | idle: the write thread under SCHED_IDLE
//!                                   # (Linux; auto: where it may leave it to catch up)
//!
//! [telemetry]
//! service_name = "glassbox"
//! otlp_endpoint = "http://localhost:4317"      # optional: export spans over OTLP too
//! otlp_protocol = "grpc"            # grpc | http/protobuf
//!
//! [[pricing]]                       # overrides the shipped price list; longest match wins
//! pattern = "gpt-4o-mini*"          # glob on the model name
//! provider = "openai"               # optional
//! input_per_million = 0.15          # US dollars per million tokens
//! output_per_million = 0.60
//! cached_input_per_million = 0.075  # optional; default: the input price
//! ```
//!
//! `[tenants.<id>]` and `[keys.<id>]` (API keys, rate limits, budgets) are described in the
//! `access` module.
//! Workflows (`[workflows.<id>]` with `[[workflows.<id>.steps]]`): see [`workflows`].
//!
//! Unknown keys are errors everywhere (except inside `headers`, `parameters` and
//! `output_schema`, whose keys are the user's). Models, tools and agents keep file order.
//!
//! JSON schemas are written as TOML and converted: strings, integers, floats, booleans, arrays
//! and tables map to their JSON counterparts; datetimes, `nan` and `inf` are errors. Schemas are
//! checked against their meta-schema (draft 2020-12 unless `$schema` says otherwise) and must
//! compile (valid `pattern`s, resolvable `$ref`s).
//!
//! # Interpolation
//!
//! Every string value (also inside headers and schemas; never keys) is interpolated after
//! parsing, so positions stay those of the file: `${VAR}` is the variable's value, `${VAR:-text}`
//! is `text` when the variable is unset or empty, `$${` is a literal `${`. An unset variable
//! without a default is an error at the `${` that names it.
//!
//! # Diagnostics
//!
//! All problems are collected: TOML syntax errors (parsing recovers where it can; when the
//! syntax is broken nothing else is checked), unknown keys, wrong types, missing keys,
//! out-of-range numbers, bad ids, URLs, addresses, header names and values, schemas, and
//! references between sections (agent models and tools, model fallbacks). Messages are
//! lowercase and start with the dotted key they are about, e.g.
//! `agents.assistant.model: unknown model "gtp" (known: gpt, mock)`. Header values, URLs and
//! `api_key_env` values are never quoted in messages: they may hold secrets.

mod access;
mod build;
mod config;
mod dashboard;
mod diagnostics;
mod interpolate;
pub mod pipeline;
mod online_evals;
mod reader;
mod schema;
pub mod workflows;

use std::path::Path;

pub use config::{
    AgentConfig, CapturePolicy, ClickHouseConfig, Config, HttpMethod, HttpToolConfig, ModelConfig, OtlpConfig, OtlpProtocol,
    PricingConfig, ProviderKind, ServerConfig, StoreConfig, TelemetryConfig, WriterPolicy,
};
pub use dashboard::DashboardConfig;
pub use access::{BudgetConfig, KeyConfig, KeySecret, RateLimitConfig, TenantConfig};
pub use diagnostics::{ConfigError, Diagnostic, Diagnostics};
pub use online_evals::OnlineEvalConfig;
pub use workflows::{WorkflowConfig, WorkflowStepConfig, WorkflowStepKind};

/// Reads and validates the file at `path`, interpolating from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let source = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    parse(&source, &path.display().to_string(), &|name| std::env::var(name).ok())
}

/// Validates the text of a configuration file. `origin` names it in diagnostics (usually the
/// path); `env` looks up variables for `${VAR}` interpolation.
pub fn parse(source: &str, origin: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let mut cx = reader::Cx::new(source, env);
    let (document, syntax_errors) = toml::de::DeTable::parse_recoverable(source);
    if !syntax_errors.is_empty() {
        // A recovered document can be missing whatever followed the error; checking it would
        // only add noise, so report the syntax alone.
        for error in &syntax_errors {
            let offset = error.span().map_or(0, |span| span.start);
            cx.error(offset, error.message().trim_end_matches('.').replace('\n', "; "));
        }
        return Err(ConfigError::Invalid(Diagnostics(cx.into_diagnostics(origin))));
    }
    match build::build(&mut cx, document.get_ref()) {
        Some(config) if cx.n_problems() == 0 => Ok(config),
        _ => {
            if cx.n_problems() == 0 {
                // Every `None` on the way is meant to come with a reported problem; never let
                // a gap there turn into an error that lists nothing.
                cx.error(0, "invalid configuration");
            }
            Err(ConfigError::Invalid(Diagnostics(cx.into_diagnostics(origin))))
        }
    }
}
