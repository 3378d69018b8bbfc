//! The validated configuration: plain data, every default applied, every reference checked.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// A whole, valid `glassbox.toml`. Models, tools and agents are in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub telemetry: TelemetryConfig,
    /// `[[pricing]]` entries, in file order; they override the shipped prices.
    pub pricing: Vec<PricingConfig>,
    /// `[dashboard]`: the dashboard's admin credential.
    pub dashboard: crate::dashboard::DashboardConfig,
    pub models: Vec<ModelConfig>,
    pub tools: Vec<HttpToolConfig>,
    pub agents: Vec<AgentConfig>,
    /// `[tenants.<id>]`, in file order.
    pub tenants: Vec<crate::access::TenantConfig>,
    /// `[keys.<id>]`, in file order.
    pub keys: Vec<crate::access::KeyConfig>,
    /// `[online_evals.<agent>]`: scorers run after an agent's requests.
    pub online_evals: Vec<crate::online_evals::OnlineEvalConfig>,
    /// `[workflows.<id>]`, in file order.
    pub workflows: Vec<crate::workflows::WorkflowConfig>,
}

impl Config {
    /// The model declared as `[models.<id>]`.
    pub fn model(&self, id: &str) -> Option<&ModelConfig> {
        self.models.iter().find(|model| model.id == id)
    }

    /// The tool declared as `[tools.<id>]`.
    pub fn tool(&self, id: &str) -> Option<&HttpToolConfig> {
        self.tools.iter().find(|tool| tool.id == id)
    }

    /// The agent declared as `[agents.<id>]`.
    pub fn agent(&self, id: &str) -> Option<&AgentConfig> {
        self.agents.iter().find(|agent| agent.id == id)
    }
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub body_limit_bytes: usize,
    pub shutdown_grace: Duration,
    /// A connection that has not sent a request's complete headers this long after the server
    /// began waiting for them is closed (slow-header clients hold no connection forever); it
    /// is also how long an idle keep-alive connection stays open.
    pub header_read_timeout: Duration,
    /// A request body not received this long after its handler started answers 408.
    pub body_read_timeout: Duration,
}

impl ServerConfig {
    pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);
    pub const DEFAULT_BODY_LIMIT_BYTES: usize = 1024 * 1024;
    pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
    pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
    pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: Self::DEFAULT_LISTEN,
            body_limit_bytes: Self::DEFAULT_BODY_LIMIT_BYTES,
            shutdown_grace: Self::DEFAULT_SHUTDOWN_GRACE,
            header_read_timeout: Self::DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: Self::DEFAULT_BODY_READ_TIMEOUT,
        }
    }
}

/// `[store]`: where traces, usage and state go.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    /// `Some` when `clickhouse_url` is set: ClickHouse is the store. Otherwise the embedded
    /// SQLite store at `sqlite_path`. (`GLASSBOX_CLICKHOUSE_URL` in the environment overrides
    /// this; the server applies it.)
    pub clickhouse: Option<ClickHouseConfig>,
    pub sqlite_path: PathBuf,
    /// Where batches wait on disk while the store is down.
    pub spool_dir: PathBuf,
    pub flush_interval: Duration,
    /// Rows per insert; `None` (the default) is the store's own (`Backend::batch_rows` of
    /// glassbox-store: 250 for SQLite, 1000 for ClickHouse).
    pub batch_rows: Option<usize>,
    /// Estimated bytes of telemetry rows held in memory before rows spill to the spool.
    pub queue_max_bytes: u64,
    pub span_ttl_days: u32,
    /// The nice value (0..=19) of the SQLite store's write thread: its batch writes yield
    /// the CPU to request threads.
    pub writer_nice: i32,
    /// `writer_policy`: whether the SQLite store's write thread runs under Linux's
    /// `SCHED_IDLE` (only on CPU time nothing else wants, at `writer_nice` while it catches
    /// up after being starved). Default `"auto"`.
    pub writer_policy: WriterPolicy,
}

/// `store.writer_policy`: the scheduling policy of the SQLite store's write thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriterPolicy {
    /// `"auto"`: `SCHED_IDLE` where the thread may leave it again to catch up (`CAP_SYS_NICE`
    /// or a permissive `RLIMIT_NICE`), `SCHED_OTHER` elsewhere.
    #[default]
    Auto,
    /// `"normal"`: `SCHED_OTHER` at `writer_nice`.
    Normal,
    /// `"idle"`: `SCHED_IDLE` even where the thread cannot leave it to catch up.
    Idle,
}

impl StoreConfig {
    pub const DEFAULT_SQLITE_PATH: &'static str = ".glassbox/glassbox.db";
    pub const DEFAULT_SPOOL_DIR: &'static str = ".glassbox/spool";
    pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
    pub const DEFAULT_QUEUE_MAX_BYTES: u64 = 16 << 20;
    pub const DEFAULT_SPAN_TTL_DAYS: u32 = 30;
    pub const DEFAULT_WRITER_NICE: i32 = 0;
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            clickhouse: None,
            sqlite_path: PathBuf::from(Self::DEFAULT_SQLITE_PATH),
            spool_dir: PathBuf::from(Self::DEFAULT_SPOOL_DIR),
            flush_interval: Self::DEFAULT_FLUSH_INTERVAL,
            batch_rows: None,
            queue_max_bytes: Self::DEFAULT_QUEUE_MAX_BYTES,
            span_ttl_days: Self::DEFAULT_SPAN_TTL_DAYS,
            writer_nice: Self::DEFAULT_WRITER_NICE,
            writer_policy: WriterPolicy::Auto,
        }
    }
}

/// The ClickHouse part of `[store]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClickHouseConfig {
    /// The HTTP interface, e.g. `http://localhost:8123`.
    pub url: String,
    pub database: String,
    pub user: Option<String>,
    /// The NAME of the variable holding the password.
    pub password_env: Option<String>,
    /// With a cluster name, migrations use `ON CLUSTER` and Replicated engines.
    pub cluster: Option<String>,
}

/// `[telemetry]`: the OpenTelemetry side.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// `service.name` of the spans.
    pub service_name: String,
    /// Export spans over OTLP too. The standard `OTEL_EXPORTER_OTLP_*` variables also enable
    /// it; the server applies them.
    pub otlp: Option<OtlpConfig>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self { service_name: "glassbox".to_owned(), otlp: None }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OtlpConfig {
    pub endpoint: String,
    pub protocol: OtlpProtocol,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OtlpProtocol {
    Grpc,
    HttpProtobuf,
}

/// One `[[pricing]]` entry: list prices in US dollars per million tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct PricingConfig {
    /// A glob on the model name (`gpt-4o-mini*`).
    pub pattern: String,
    pub provider: Option<String>,
    pub input_per_million: f64,
    pub output_per_million: f64,
    pub cached_input_per_million: Option<f64>,
}

/// What of prompts and completions is kept in traces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CapturePolicy {
    #[default]
    Full,
    /// Kept with personal data replaced by placeholders.
    Redacted,
    None,
}

/// Which wire protocol a model speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    /// OpenAI chat completions, or any server compatible with it.
    OpenAi,
    /// Anthropic messages.
    Anthropic,
    /// The deterministic in-process mock provider.
    Mock,
}

impl ProviderKind {
    /// The spelling used in the file (`provider = "openai"`).
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Mock => "mock",
        }
    }

    /// The base URL used when a model does not set `base_url`; `None` for the mock.
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            ProviderKind::OpenAi => Some("https://api.openai.com/v1"),
            ProviderKind::Anthropic => Some("https://api.anthropic.com/v1"),
            ProviderKind::Mock => None,
        }
    }

    pub(crate) fn from_config_str(text: &str) -> Option<Self> {
        match text {
            "openai" => Some(ProviderKind::OpenAi),
            "anthropic" => Some(ProviderKind::Anthropic),
            "mock" => Some(ProviderKind::Mock),
            _ => None,
        }
    }
}

/// `[models.<id>]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub id: String,
    pub provider: ProviderKind,
    /// The model name sent to the provider.
    pub model: String,
    /// Always `Some` for `openai` and `anthropic` (the provider's default when the file does not
    /// set one), always `None` for `mock`.
    pub base_url: Option<String>,
    /// The NAME of the environment variable that holds the API key.
    pub api_key_env: Option<String>,
    /// The id of the model to use instead when `api_key_env`'s variable is unset or empty. Only
    /// set together with `api_key_env`; the fallback model has no fallback of its own.
    pub fallback: Option<String>,
    pub connect_timeout: Duration,
    pub first_byte_timeout: Duration,
    pub total_timeout: Duration,
    pub max_retries: u32,
    /// Extra request headers, in file order. Values may hold secrets: never log them.
    pub headers: Vec<(String, String)>,
}

/// The HTTP method of a tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpMethod {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl HttpMethod {
    /// The method as sent on the wire (`"POST"`).
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
        }
    }

    pub(crate) fn from_config_str(text: &str) -> Option<Self> {
        match text {
            "GET" => Some(HttpMethod::Get),
            "POST" => Some(HttpMethod::Post),
            "PUT" => Some(HttpMethod::Put),
            "PATCH" => Some(HttpMethod::Patch),
            "DELETE" => Some(HttpMethod::Delete),
            _ => None,
        }
    }
}

/// `[tools.<id>]`: a tool the model can call, served by an HTTP endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpToolConfig {
    /// The function name shown to the model.
    pub id: String,
    pub description: String,
    pub url: String,
    pub method: HttpMethod,
    /// JSON schema of the arguments; an object schema (`"type": "object"`).
    pub parameters: serde_json::Value,
    pub timeout: Duration,
    /// Extra request headers, in file order. Values may hold secrets: never log them.
    pub headers: Vec<(String, String)>,
}

/// `[agents.<id>]`.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    pub id: String,
    pub name: String,
    pub description: String,
    pub instructions: String,
    /// The id of a model in [`Config::models`].
    pub model: String,
    /// Ids of tools in [`Config::tools`], without duplicates, in file order.
    pub tools: Vec<String>,
    pub max_steps: u32,
    pub temperature: Option<f32>,
    pub max_output_tokens: Option<u32>,
    /// JSON schema for structured output.
    pub output_schema: Option<serde_json::Value>,
    /// What of prompts and completions this agent's traces keep.
    pub capture: CapturePolicy,
    /// Processors, guardrails, per-request budget and block answer ([`crate::pipeline`]).
    pub pipeline: crate::pipeline::PipelineConfig,
}
