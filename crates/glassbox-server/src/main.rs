//! The `glassbox` command: `serve`, `check`, `migrate` and `eval`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use glassbox_config::Config;
use glassbox_server::logging::{self, LogFormat};
use glassbox_server::telemetry::{OtlpTarget, Telemetry};
use glassbox_server::access::Access;
use glassbox_server::{AgentRegistry, HttpOptions, runtime, serve, store};
use glassbox_store::writer::{TelemetryWriter, WriterConfig};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// jemalloc rather than glibc's malloc: telemetry rows are made on the request threads and
/// freed on the store's write thread, a pattern glibc's arenas handle poorly (fastbin
/// consolidation, `malloc` + `free` were a fifth of the server's CPU). Against glibc, alternated
/// at half peak: -31% CPU per request, +36% peak throughput, the added p99 halved, peak RSS
/// 71 against 63 MB (mimalloc: 103 MB). BENCHMARKS.md has the runs. Library users keep their own.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "glassbox", version, about = "Observability-first agent platform")]
struct Cli {
    /// Log lines as human-readable text or as JSON objects, one per line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormatArg::Text, env = "GLASSBOX_LOG_FORMAT")]
    log_format: LogFormatArg,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

impl From<LogFormatArg> for glassbox_server::logging::LogFormat {
    fn from(format: LogFormatArg) -> Self {
        match format {
            LogFormatArg::Text => Self::Text,
            LogFormatArg::Json => Self::Json,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Serve the REST API (applies the store's migrations first).
    Serve {
        #[arg(long, default_value = "glassbox.toml", env = "GLASSBOX_CONFIG")]
        config: PathBuf,
        /// Overrides `server.listen` of the config.
        #[arg(long, env = "GLASSBOX_LISTEN")]
        listen: Option<SocketAddr>,
        #[command(flatten)]
        workflow_limits: WorkflowLimitArgs,
    },
    /// Validate the config and print every problem with its position.
    Check {
        #[arg(long, default_value = "glassbox.toml", env = "GLASSBOX_CONFIG")]
        config: PathBuf,
    },
    /// Run or record eval suites (exit code 0: gate passed, 1: gate failed, 2: broken suite).
    Eval {
        #[command(subcommand)]
        command: glassbox_server::evals::EvalCommand,
    },
    /// Apply the store's migrations and exit.
    Migrate {
        #[arg(long, default_value = "glassbox.toml", env = "GLASSBOX_CONFIG")]
        config: PathBuf,
    },
    /// Manage API keys kept in the store.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key for a tenant; prints the key once (only its SHA-256 is stored).
    Create {
        #[arg(long)]
        tenant: String,
        /// Agents the key may call, comma-separated (default: all).
        #[arg(long, value_delimiter = ',')]
        agents: Option<Vec<String>>,
        /// Workflows the key may run, comma-separated (default: all).
        #[arg(long, value_delimiter = ',')]
        workflows: Option<Vec<String>>,
        #[arg(long, default_value = "glassbox.toml", env = "GLASSBOX_CONFIG")]
        config: PathBuf,
    },
    /// List the stored keys (ids, tenants and agents; never the keys).
    List {
        #[arg(long, default_value = "glassbox.toml", env = "GLASSBOX_CONFIG")]
        config: PathBuf,
    },
}

mod keys {
    //! `glassbox keys create` and `glassbox keys list`.

    use std::io::Write as _;
    use std::process::ExitCode;

    use anyhow::Context as _;
    use glassbox_server::access::secret;
    use glassbox_store::StoredKey;

    use super::{KeysCommand, env_var, load, runtime};

    pub(super) fn run(command: KeysCommand) -> anyhow::Result<ExitCode> {
        match command {
            KeysCommand::Create { tenant, agents, workflows, config } => create(tenant, agents, workflows, &config),
            KeysCommand::List { config } => list(&config),
        }
    }

    fn valid_id(text: &str) -> bool {
        !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    }

    fn create(
        tenant: String,
        agents: Option<Vec<String>>,
        workflows: Option<Vec<String>>,
        config_path: &std::path::Path,
    ) -> anyhow::Result<ExitCode> {
        let Some((config, _agents, _notices, _workflows)) = load(config_path)? else { return Ok(ExitCode::FAILURE) };
        if !valid_id(&tenant) {
            anyhow::bail!("--tenant {tenant:?}: use letters, digits, \"_\", \".\" and \"-\"");
        }
        for agent in agents.iter().flatten() {
            if config.agent(agent).is_none() {
                let known: Vec<&str> = config.agents.iter().map(|agent| agent.id.as_str()).collect();
                anyhow::bail!("--agents: unknown agent {agent:?} (known: {})", known.join(", "));
            }
        }
        let (key, id) = secret::generate().context("while generating the key")?;
        let stored = StoredKey {
            id: id.clone(),
            tenant: tenant.clone(),
            key_sha256: secret::hex(&secret::sha256(&key)),
            agents,
            workflows,
            created_ns: glassbox_server::access::budget::now_ns(),
        };
        runtime()?.block_on(async {
            let store = glassbox_server::store::open(&config.store, &env_var).await.context("while opening the store")?;
            store.backend.migrate().await.with_context(|| format!("while migrating {}", store.description))?;
            let key_store = glassbox_server::store::open_key_store(&config.store, &env_var).await.context("while opening the store")?;
            key_store.insert_key(&stored).await.with_context(|| format!("while storing the key in {}", store.description))?;
            anyhow::Ok(())
        })?;
        eprintln!("created API key {id} for tenant {tenant}; it is shown once, store it now (restart running servers to pick it up)");
        // The one place the key is ever shown: stdout, so it can be piped into a secret store.
        writeln!(std::io::stdout().lock(), "{key}").context("while printing the key")?;
        Ok(ExitCode::SUCCESS)
    }

    fn list(config_path: &std::path::Path) -> anyhow::Result<ExitCode> {
        let Some((config, _agents, _notices, _workflows)) = load(config_path)? else { return Ok(ExitCode::FAILURE) };
        let keys = runtime()?.block_on(async {
            let store = glassbox_server::store::open(&config.store, &env_var).await.context("while opening the store")?;
            store.backend.migrate().await.with_context(|| format!("while migrating {}", store.description))?;
            let key_store = glassbox_server::store::open_key_store(&config.store, &env_var).await.context("while opening the store")?;
            key_store.list_keys().await.context("while reading the keys")
        })?;
        let mut out = std::io::stdout().lock();
        for key in config.keys.iter().map(|key| (key.id.clone(), key.tenant.clone(), key.agents.clone(), "config")) {
            writeln!(out, "{}\t{}\t{}\t{}", key.0, key.1, key.2.map_or("*".to_owned(), |a| a.join(",")), key.3)?;
        }
        for key in keys {
            writeln!(out, "{}\t{}\t{}\tstore", key.id, key.tenant, key.agents.map_or("*".to_owned(), |a| a.join(",")))?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Background execution of workflow runs.
#[derive(clap::Args)]
struct WorkflowLimitArgs {
    /// Workflow runs executing at once; more wait in the queue.
    #[arg(long, default_value_t = 32, env = "GLASSBOX_WORKFLOW_CONCURRENCY")]
    workflow_concurrency: usize,
    /// Workflow runs waiting for a slot before starts are refused (503).
    #[arg(long, default_value_t = 1024, env = "GLASSBOX_WORKFLOW_QUEUE")]
    workflow_queue: usize,
    /// How long start-async and resume-async wait before answering 202 with the run id.
    #[arg(long, default_value_t = 30, env = "GLASSBOX_WORKFLOW_WAIT_SECS")]
    workflow_wait_secs: u64,
}

/// Without `RUST_LOG`: the server's own lines at info; the per-request processor, guardrail and
/// budget decisions stay in the traces (as span events), not on the terminal.
const DEFAULT_LOG_FILTER: &str = "info,glassbox_core=warn";

fn env_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_format = cli.log_format.into();
    let result = match cli.command {
        Command::Serve { config, listen, workflow_limits } => run_serve(&config, listen, log_format, &workflow_limits),
        Command::Check { config } => run_check(&config),
        Command::Migrate { config } => run_migrate(&config, log_format),
        Command::Keys { command } => keys::run(command),
        Command::Eval { command } => Ok(glassbox_server::evals::command(command)),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("while starting the async runtime")
}

/// Loads and validates the config and builds the agents, printing every problem found.
type Loaded = (Config, AgentRegistry, Vec<runtime::Notice>, Vec<glassbox_core::Workflow>);

fn load(path: &Path) -> anyhow::Result<Option<Loaded>> {
    let config = match glassbox_config::load(path) {
        Ok(config) => config,
        Err(glassbox_config::ConfigError::Invalid(diagnostics)) => {
            eprintln!("{diagnostics}");
            eprintln!("{}: {} problem(s) found", path.display(), diagnostics.0.len());
            return Ok(None);
        }
        Err(error) => return Err(error).with_context(|| format!("while loading {}", path.display())),
    };
    match runtime::build(&config, &env_var)
        .and_then(|(agents, notices)| Ok((glassbox_server::workflow_config::build(&config, &agents)?, agents, notices)))
    {
        Ok((workflows, agents, notices)) => Ok(Some((config, agents, notices, workflows))),
        Err(error) => {
            for problem in &error.problems {
                eprintln!("{}: {problem}", path.display());
            }
            eprintln!("{}: {} problem(s) found", path.display(), error.problems.len());
            Ok(None)
        }
    }
}

fn run_check(path: &Path) -> anyhow::Result<ExitCode> {
    let Some((config, _agents, notices, workflows)) = load(path)? else { return Ok(ExitCode::FAILURE) };
    if let Err(problems) = glassbox_server::evals::online_evals(&config, None, &env_var) {
        for problem in &problems {
            eprintln!("{}: {problem}", path.display());
        }
        return Ok(ExitCode::FAILURE);
    }
    for notice in &notices {
        eprintln!("note: {}", notice.0);
    }
    eprintln!(
        "{}: ok ({} models, {} tools, {} agents, {} workflows)",
        path.display(),
        config.models.len(),
        config.tools.len(),
        config.agents.len(),
        workflows.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn run_migrate(path: &Path, log_format: LogFormat) -> anyhow::Result<ExitCode> {
    let log_layer = logging::fmt_layer(log_format).with_filter(logging::fmt_filter(env_filter()));
    tracing_subscriber::registry().with(log_layer).init();
    let Some((config, _agents, _notices, _workflows)) = load(path)? else { return Ok(ExitCode::FAILURE) };
    runtime()?.block_on(async move {
        let store = store::open(&config.store, &env_var).await.context("while opening the store")?;
        let report = store.backend.migrate().await.with_context(|| format!("while migrating {}", store.description))?;
        tracing::info!(applied = ?report.applied, already_applied = ?report.already_applied, "migrated {}", store.description);
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

fn otlp_target(config: &Config) -> Option<OtlpTarget> {
    match &config.telemetry.otlp {
        Some(otlp) => Some(match otlp.protocol {
            glassbox_config::OtlpProtocol::Grpc => OtlpTarget::Grpc { endpoint: Some(otlp.endpoint.clone()) },
            glassbox_config::OtlpProtocol::HttpProtobuf => {
                OtlpTarget::HttpProtobuf { endpoint: Some(otlp.endpoint.clone()) }
            }
        }),
        None => OtlpTarget::from_env(&env_var),
    }
}

fn run_serve(
    path: &Path,
    listen: Option<SocketAddr>,
    log_format: LogFormat,
    limits: &WorkflowLimitArgs,
) -> anyhow::Result<ExitCode> {
    let Some((config, agents, notices, workflows)) = load(path)? else {
        eprintln!("refusing to serve an invalid config");
        return Ok(ExitCode::FAILURE);
    };
    runtime()?.block_on(async move {
        // The subscriber first, the store writer attached once it runs: what the store logs
        // while it opens (a spool left to replay, its threads' priorities) is logged too.
        let pricing = Arc::new(glassbox_server::telemetry::pricing_table(&config.pricing));
        let telemetry = Telemetry::new(&config.telemetry.service_name, None, Arc::clone(&pricing), otlp_target(&config))
            .context("while setting up OpenTelemetry")?;
        tracing_subscriber::registry()
            .with(logging::TraceIdLayer)
            .with(glassbox_server::telemetry::layer_with_logs(&telemetry, logging::LogLines::stderr(log_format), env_filter()))
            .init();
        let store = store::open(&config.store, &env_var).await.context("while opening the store")?;
        let report = store.backend.migrate().await.with_context(|| format!("while migrating {}", store.description))?;
        let mut writer_config = WriterConfig::new(config.store.spool_dir.clone());
        writer_config.flush_interval = config.store.flush_interval;
        writer_config.batch_rows = config.store.batch_rows;
        writer_config.max_queued_bytes = config.store.queue_max_bytes;
        let writer = TelemetryWriter::start(Arc::clone(&store.backend), writer_config)
            .await
            .context("while starting the telemetry writer")?;
        telemetry.attach_writer(writer);
        let key_store = store::open_key_store(&config.store, &env_var).await.context("while opening the key store")?;
        // Keys from the config and the store; budgets rebuilt from the store's usage rows and
        // settled from every new usage row.
        let access = Arc::new(
            Access::load(&config, key_store.as_ref(), &env_var, pricing)
                .await
                .context("while loading API keys and budgets")?,
        );
        let settling = Arc::clone(&access);
        let settle: glassbox_server::telemetry::UsageObserver = Arc::new(move |row| settling.settle(row));
        telemetry.observe_usage(Arc::clone(&settle));
        // Spans and usage rows survive a kill: journaled before the response (a request's in
        // one write), recovered at the next start (`span_journal`). Usage journal segments of
        // JSON lines, which versions before wrote, are among the leftovers too.
        let (span_journal, leftover) = glassbox_server::span_journal::open(config.store.spool_dir.join("journal"))
            .context("while opening the span journal")?;
        telemetry.journal_spans(Arc::clone(&span_journal));
        if let Some(writer) = telemetry.writer() {
            glassbox_server::metrics::watch_writer(writer);
            glassbox_server::usage_journal::spawn_rotation(Arc::clone(&span_journal), writer.clone());
            if !leftover.is_empty() {
                tokio::spawn(glassbox_server::span_journal::recover(
                    leftover,
                    config.store.spool_dir.clone(),
                    Arc::clone(&store.reader),
                    writer.clone(),
                    Some(settle),
                ));
            }
        }
        tracing::info!(applied = ?report.applied, "store: {}", store.description);
        for notice in &notices {
            tracing::warn!("{}", notice.0);
        }
        if access.is_open() {
            tracing::warn!(
                "no API keys configured ([keys] in the config or `glassbox keys create`): open development mode, \
                 every request is accepted without a key"
            );
        } else {
            tracing::info!(keys = access.keys().len(), "API keys required");
        }

        let addr = listen.unwrap_or(config.server.listen);
        let listener = serve::bind(addr).await.with_context(|| format!("while binding {addr}"))?;
        let local = listener.local_addr().context("while reading the bound address")?;
        let agent_ids: Vec<&str> = agents.all().iter().map(|agent| agent.id()).collect();
        tracing::info!(agents = ?agent_ids, "glassbox listening on http://{local}");
        let online_evals = glassbox_server::evals::online_evals(&config, Some(Arc::clone(&store.evals)), &env_var)
            .map_err(|problems| anyhow::anyhow!("invalid online evals:\n{}", problems.join("\n")))?;
        // Without an admin token the dashboard is open only in open development mode (no API
        // keys anywhere), and its pages say so.
        // API keys that may use every agent and workflow also open the dashboard, limited to
        // their tenant (dashboard/keys.rs); the admin token stays admin.
        let admin_token = config.dashboard.admin_token_env.as_deref().and_then(env_var).filter(|t| !t.trim().is_empty());
        let key_viewers = glassbox_server::dashboard::KeyViewers::new(admin_token.as_deref(), &access)
            .context("while preparing the dashboard's key sessions")?;
        let dashboard_access = match glassbox_server::dashboard::Access::from_config(&config.dashboard, &env_var) {
            _ if key_viewers.key_count() > 0 => glassbox_server::dashboard::Access::Resolver(Arc::new(key_viewers)),
            glassbox_server::dashboard::Access::Closed if access.is_open() => {
                glassbox_server::dashboard::Access::OpenDevelopment
            }
            other => other,
        };
        let mut dashboard = glassbox_server::dashboard::Dashboard {
            reader: Arc::clone(&store.reader),
            access: dashboard_access,
            store_name: store.backend.name(),
            sources: glassbox_server::dashboard::PageSources {
                evals: Some(Arc::clone(&store.evals)),
                runs: None,
                access: Some(Arc::clone(&access)),
            },
        };
        match dashboard.access {
            glassbox_server::dashboard::Access::Token { .. } | glassbox_server::dashboard::Access::Resolver(_) => {
                tracing::info!("dashboard at http://{local}/dashboard")
            }
            glassbox_server::dashboard::Access::OpenDevelopment => {
                tracing::warn!("dashboard at http://{local}/dashboard is OPEN (open development mode, no admin token)")
            }
            glassbox_server::dashboard::Access::Closed => {
                tracing::warn!("dashboard closed: no admin token ([dashboard] admin_token_env names no set variable)")
            }
        }
        let run_store = glassbox_server::workflow_host::open_run_store(&config.store, &env_var)
            .await
            .context("while opening the workflow run store")?;
        dashboard.sources.runs = Some(Arc::clone(&run_store));
        let limits = glassbox_server::workflow_host::WorkflowLimits {
            max_concurrent_runs: limits.workflow_concurrency,
            queue_capacity: limits.workflow_queue,
            wait_timeout: std::time::Duration::from_secs(limits.workflow_wait_secs),
        };
        let workflow_host = glassbox_server::workflow_host::WorkflowHost::new(workflows, run_store, limits);
        // Runs a crash or a kill left `running` continue from their last completed step. In the
        // background, retried while the store is unreachable: agents keep serving meanwhile.
        let workflow_ids: Vec<&str> = workflow_host.workflows().iter().map(|workflow| workflow.id()).collect();
        tracing::info!(workflows = ?workflow_ids, "workflows ready");
        let recovering = workflow_host.clone();
        tokio::spawn(async move {
            let mut delay = std::time::Duration::from_millis(500);
            loop {
                match recovering.recover().await {
                    Ok(continued) => {
                        tracing::info!(continued = continued.len(), "continued interrupted workflow runs");
                        break;
                    }
                    Err(error) => {
                        tracing::warn!(error = %glassbox_server::error::chain(&error), retry_in = ?delay,
                            "cannot continue interrupted workflow runs yet");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(std::time::Duration::from_secs(30));
                    }
                }
            }
        });
        let scores = online_evals.clone();
        let app = glassbox_server::build_router(
            agents,
            HttpOptions { body_limit: config.server.body_limit_bytes, body_read_timeout: config.server.body_read_timeout },
            glassbox_server::RouterParts {
                access: Some(access),
                workflows: Some(workflow_host),
                dashboard: Some(dashboard),
                online_evals,
                telemetry: telemetry.writer().cloned(),
            },
        );
        let limits = serve::ConnectionLimits { header_read_timeout: config.server.header_read_timeout };
        let served =
            serve::serve_with_limits(listener, app, serve::shutdown_signal(), config.server.shutdown_grace, limits).await;
        // Whatever happened to the listener, the telemetry of finished requests is written or spooled
        // (online eval scores first: those of requests still being scored, within the shutdown
        // grace, and those waiting for their group).
        if let Some(scores) = scores {
            scores.flush(config.server.shutdown_grace).await;
        }
        telemetry.shutdown().await;
        span_journal.remove_current();
        served.context("while serving")?;
        tracing::info!("stopped");
        anyhow::Ok(ExitCode::SUCCESS)
    })
}
