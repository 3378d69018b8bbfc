//! `glassbox-bench`: the peer benchmark harness (issue 9).
//!
//! `glassbox-bench run` starts, on loopback, the mock LLM server, a bare pass-through proxy
//! (the floor), `glassbox serve` with the full pipeline (benchmarks/glassbox-bench.toml), and
//! the peers that are installed (LiteLLM's proxy, a minimal Mastra server), drives each with
//! the same oha load, and writes a Markdown table and the JSON of every figure to
//! benchmarks/results/. `benchmarks/run.sh` builds and installs everything first; see
//! BENCHMARKS.md. `glassbox-bench floor` is the floor itself, run as its own process.
//! `glassbox-bench ab` alternates builds or configs of Glassbox against the floor, round by
//! round, to judge one change.

mod ab;
mod floor;
mod http;
mod load;
mod procfs;
mod report;
mod run;
mod targets;

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

#[derive(Debug, Parser)]
#[command(version, about = "Glassbox's peer benchmark harness")]
enum Command {
    /// Measure every target and write the results.
    Run(Box<run::RunArgs>),
    /// Serve the bare pass-through proxy (the floor) until interrupted.
    Floor(floor::FloorArgs),
    /// Alternate builds or configs of Glassbox, round by round, against the floor.
    Ab(ab::AbArgs),
}

fn main() -> ExitCode {
    let result = match Command::parse() {
        Command::Run(args) => run_and_write(*args),
        Command::Floor(args) => floor::run(args),
        Command::Ab(args) => ab::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("glassbox-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_and_write(args: run::RunArgs) -> anyhow::Result<()> {
    let out_dir = args.out.clone();
    let smoke = args.smoke;
    let report = run::run(args)?;
    let markdown = report::markdown(&report);
    std::fs::create_dir_all(&out_dir).with_context(|| format!("while creating {}", out_dir.display()))?;
    let stem = format!("{}{}", report.started_utc.replace(':', ""), if smoke { "-smoke" } else { "" });
    let md_path = out_dir.join(format!("{stem}.md"));
    let json_path = out_dir.join(format!("{stem}.json"));
    std::fs::write(&md_path, &markdown).with_context(|| format!("while writing {}", md_path.display()))?;
    let json = serde_json::to_string_pretty(&report).context("while encoding the report")?;
    std::fs::write(&json_path, json).with_context(|| format!("while writing {}", json_path.display()))?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{markdown}\nwritten: {} and {}", md_path.display(), json_path.display())
        .context("while printing")?;
    if smoke {
        check_smoke(&report)?;
    }
    Ok(())
}

/// The smoke run passes when Glassbox and the floor answered every request of every run.
fn check_smoke(report: &run::Report) -> anyhow::Result<()> {
    for scenario in &report.scenarios {
        for target in &scenario.targets {
            if let Some(reason) = &target.skipped {
                anyhow::bail!("smoke: {} was not measured: {reason}", target.name);
            }
            for (what, measured) in [("closed loop", &target.closed), ("fixed rate", &target.fixed)] {
                let Some(measured) = measured else { anyhow::bail!("smoke: {} has no {what} figures", target.name) };
                if measured.ok == 0 || measured.failed > 0 {
                    anyhow::bail!(
                        "smoke: {} {what}: {} answered, {} failed ({})",
                        target.name,
                        measured.ok,
                        measured.failed,
                        measured.failures.join(", ")
                    );
                }
            }
        }
    }
    Ok(())
}
