//! The `glassbox` command: `serve`, `check` and `migrate`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use glassbox_config::Config;
use glassbox_server::telemetry::{OtlpTarget, Telemetry};
use glassbox_server::{AgentRegistry, HttpOptions, runtime, serve, store};
use glassbox_store::writer::{TelemetryWriter, WriterConfig};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

#[derive(Parser)]
#[command(name = "glassbox", version, about = "Observability-first agent platform")]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
    /// Apply the store's migrations and exit.
    Migrate {
        #[arg(long, default_value = "glassbox.toml", env = "GLASSBOX_CONFIG")]
        config: PathBuf,
    },
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

fn env_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config, listen, workflow_limits } => run_serve(&config, listen, &workflow_limits),
        Command::Check { config } => run_check(&config),
        Command::Migrate { config } => run_migrate(&config),
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

fn run_migrate(path: &Path) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt().with_env_filter(env_filter()).with_writer(std::io::stderr).init();
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

fn run_serve(path: &Path, listen: Option<SocketAddr>, limits: &WorkflowLimitArgs) -> anyhow::Result<ExitCode> {
    let Some((config, agents, notices, workflows)) = load(path)? else {
        eprintln!("refusing to serve an invalid config");
        return Ok(ExitCode::FAILURE);
    };
    runtime()?.block_on(async move {
        let store = store::open(&config.store, &env_var).await.context("while opening the store")?;
        let report = store.backend.migrate().await.with_context(|| format!("while migrating {}", store.description))?;
        let mut writer_config = WriterConfig::new(config.store.spool_dir.clone());
        writer_config.flush_interval = config.store.flush_interval;
        writer_config.batch_rows = config.store.batch_rows;
        let writer = TelemetryWriter::start(Arc::clone(&store.backend), writer_config)
            .await
            .context("while starting the telemetry writer")?;
        let telemetry = Telemetry::new(
            &config.telemetry.service_name,
            Some(writer),
            Arc::new(glassbox_server::telemetry::pricing_table(&config.pricing)),
            otlp_target(&config),
        )
        .context("while setting up OpenTelemetry")?;
        tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(env_filter()))
            .with(glassbox_server::telemetry::layer(&telemetry))
            .init();
        tracing::info!(applied = ?report.applied, "store: {}", store.description);
        for notice in &notices {
            tracing::warn!("{}", notice.0);
        }

        let addr = listen.unwrap_or(config.server.listen);
        let listener = serve::bind(addr).await.with_context(|| format!("while binding {addr}"))?;
        let local = listener.local_addr().context("while reading the bound address")?;
        let agent_ids: Vec<&str> = agents.all().iter().map(|agent| agent.id()).collect();
        tracing::info!(agents = ?agent_ids, "glassbox listening on http://{local}");
        let run_store = glassbox_server::workflow_host::open_run_store(&config.store, &env_var)
            .await
            .context("while opening the workflow run store")?;
        let limits = glassbox_server::workflow_host::WorkflowLimits {
            max_concurrent_runs: limits.workflow_concurrency,
            queue_capacity: limits.workflow_queue,
            wait_timeout: std::time::Duration::from_secs(limits.workflow_wait_secs),
        };
        let workflow_host = glassbox_server::workflow_host::WorkflowHost::new(workflows, run_store, limits);
        // Runs a crash or a kill left `running` continue from their last completed step.
        let continued = workflow_host.recover().await.context("while continuing interrupted workflow runs")?;
        let workflow_ids: Vec<&str> = workflow_host.workflows().iter().map(|workflow| workflow.id()).collect();
        tracing::info!(workflows = ?workflow_ids, continued = continued.len(), "workflows ready");
        let app = glassbox_server::router_with_workflows(
            agents,
            workflow_host,
            HttpOptions { body_limit: config.server.body_limit_bytes },
        );
        let served = serve::serve(listener, app, serve::shutdown_signal(), config.server.shutdown_grace).await;
        // Whatever happened to the listener, the telemetry of finished requests is written or spooled.
        telemetry.shutdown().await;
        served.context("while serving")?;
        tracing::info!("stopped");
        anyhow::Ok(ExitCode::SUCCESS)
    })
}
