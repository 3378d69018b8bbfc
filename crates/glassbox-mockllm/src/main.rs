//! `glassbox-mockllm`: runs the mock LLM server until interrupted, for scripts and manual tests.
//!
//! Prints `listening on http://ADDR` to stderr and the bare base URL on one line to stdout, so
//! a script can start it in the background and read where it listens.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use glassbox_mockllm::MockLlm;

/// A mock LLM server speaking the OpenAI chat-completions and Anthropic messages wire formats.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Delay before every response starts, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("glassbox-mockllm: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mock = MockLlm::start_on(args.listen).await.with_context(|| format!("while binding {}", args.listen))?;
    mock.set_latency(Duration::from_millis(args.latency_ms));
    // Nobody can read them from outside the process: kept, they grew by every request's body
    // (2.5 GB after a few minutes of a benchmark).
    mock.keep_requests(false);
    eprintln!("listening on {}", mock.base_url());
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", mock.base_url()).context("while printing the base URL")?;
    stdout.flush().context("while printing the base URL")?;
    drop(stdout);

    tokio::signal::ctrl_c().await.context("while waiting for ctrl-c")?;
    mock.shutdown().await;
    Ok(())
}
