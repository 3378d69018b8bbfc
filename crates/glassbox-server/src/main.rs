//! The `glassbox` command: `serve` and `check`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use glassbox_server::{HttpOptions, runtime, serve};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "glassbox", version, about = "Observability-first agent platform")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the REST API.
    Serve {
        #[arg(long, default_value = "glassbox.toml", env = "GLASSBOX_CONFIG")]
        config: PathBuf,
        /// Overrides `server.listen` of the config.
        #[arg(long, env = "GLASSBOX_LISTEN")]
        listen: Option<SocketAddr>,
    },
    /// Validate the config and print every problem with its position.
    Check {
        #[arg(long, default_value = "glassbox.toml", env = "GLASSBOX_CONFIG")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Serve { config, listen } => run_serve(&config, listen),
        Command::Check { config } => run_check(&config),
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

/// Loads and validates the config and builds the runtime, printing every problem found.
fn load(path: &Path) -> anyhow::Result<Option<(glassbox_config::Config, glassbox_server::AgentRegistry, Vec<runtime::Notice>)>> {
    let config = match glassbox_config::load(path) {
        Ok(config) => config,
        Err(glassbox_config::ConfigError::Invalid(diagnostics)) => {
            eprintln!("{diagnostics}");
            eprintln!("{}: {} problem(s) found", path.display(), diagnostics.0.len());
            return Ok(None);
        }
        Err(error) => return Err(error).with_context(|| format!("while loading {}", path.display())),
    };
    match runtime::build(&config, &env_var) {
        Ok((agents, notices)) => Ok(Some((config, agents, notices))),
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
    let Some((config, _agents, notices)) = load(path)? else { return Ok(ExitCode::FAILURE) };
    for notice in &notices {
        eprintln!("note: {}", notice.0);
    }
    eprintln!(
        "{}: ok ({} models, {} tools, {} agents)",
        path.display(),
        config.models.len(),
        config.tools.len(),
        config.agents.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn run_serve(path: &Path, listen: Option<SocketAddr>) -> anyhow::Result<ExitCode> {
    let Some((config, agents, notices)) = load(path)? else {
        eprintln!("refusing to serve an invalid config");
        return Ok(ExitCode::FAILURE);
    };
    for notice in &notices {
        tracing::warn!("{}", notice.0);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("while starting the async runtime")?;
    runtime.block_on(async move {
        let addr = listen.unwrap_or(config.server.listen);
        let listener = serve::bind(addr).await.with_context(|| format!("while binding {addr}"))?;
        let local = listener.local_addr().context("while reading the bound address")?;
        let agent_ids: Vec<&str> = agents.all().iter().map(|agent| agent.id()).collect();
        tracing::info!(agents = ?agent_ids, "glassbox listening on http://{local}");
        let app = glassbox_server::router(agents, HttpOptions { body_limit: config.server.body_limit_bytes });
        serve::serve(listener, app, serve::shutdown_signal(), config.server.shutdown_grace)
            .await
            .context("while serving")?;
        tracing::info!("stopped");
        anyhow::Ok(ExitCode::SUCCESS)
    })
}
