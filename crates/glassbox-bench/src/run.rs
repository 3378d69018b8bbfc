//! `glassbox-bench run`: every scenario, every target, the same load, one report.
//!
//! For each scenario (the mock answering at once; the mock waiting 200 ms and the answer
//! streamed) a fresh mock starts, then each target in turn: Glassbox first (its closed-loop
//! peak sets the fixed rate of the scenario: half of it), then the floor and the peers. Each
//! target gets a warm-up, a closed-loop run at 32 connections and a fixed-rate run, with its
//! process tree's CPU time read before and after each run, its peak RSS at the end, and the
//! load average at its start and end. Targets run one at a time, so they never compete.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use crate::load::{self, Measured};
use crate::procfs;
use crate::targets::{self, Kind, Programs};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Targets, in order after Glassbox (which always runs first: its peak sets the rate).
    #[arg(long, value_delimiter = ',', default_values_t = vec!["glassbox".to_owned(), "floor".to_owned(), "litellm".to_owned(), "mastra".to_owned()])]
    pub targets: Vec<String>,
    /// Scenarios: `zero` (mock answers at once, not streamed) and `stream200` (the mock waits
    /// 200 ms, the answer is streamed).
    #[arg(long, value_delimiter = ',', default_values_t = vec!["zero".to_owned(), "stream200".to_owned()])]
    pub scenarios: Vec<String>,
    /// Connections of both loads.
    #[arg(long, default_value_t = 32)]
    pub connections: u32,
    /// Seconds of each measured run.
    #[arg(long, default_value_t = 15)]
    pub seconds: u64,
    /// Seconds of closed-loop warm-up before the measured runs (not measured).
    #[arg(long, default_value_t = 5)]
    pub warmup_seconds: u64,
    /// The fixed rate as a share of Glassbox's closed-loop peak in the same scenario.
    #[arg(long, default_value_t = 0.5)]
    pub rate_share: f64,
    /// After the `zero` scenario's targets: this many rounds alternating the floor and Glassbox
    /// at the fixed rate, fresh processes each, for the added-p99 aim's figure (the median of
    /// the differences of the rounds on a steady floor: `report::judge_rounds`). One fixed-rate
    /// run of each, minutes apart, is at the mercy of whatever else the machine does in either.
    /// Five, so that one or two disturbed rounds leave enough to judge. 0 skips them; `--smoke`
    /// runs one.
    #[arg(long, default_value_t = 5)]
    pub tail_rounds: usize,
    /// A quick check of the harness itself: floor and Glassbox, zero latency, 1 s warm-up,
    /// 2 s runs; fails unless both answered every request.
    #[arg(long)]
    pub smoke: bool,
    /// Also measure Glassbox with ClickHouse as the store, at this URL (e.g. the chDB fixture).
    #[arg(long)]
    pub clickhouse_url: Option<String>,
    /// Where the Markdown and JSON results go.
    #[arg(long, default_value = "benchmarks/results")]
    pub out: PathBuf,
    /// Where logs and the targets' data go (a fresh directory per run is made inside).
    #[arg(long, default_value = "target/bench-work")]
    pub work: PathBuf,
    #[arg(long, default_value = "oha")]
    pub oha: PathBuf,
    #[arg(long, default_value = "target/release/glassbox")]
    pub glassbox: PathBuf,
    #[arg(long, default_value = "target/release/glassbox-mockllm")]
    pub mockllm: PathBuf,
    #[arg(long, default_value = "benchmarks/glassbox-bench.toml")]
    pub glassbox_config: PathBuf,
    /// LiteLLM's `litellm` command (in the venv benchmarks/run.sh makes).
    #[arg(long, env = "BENCH_LITELLM", default_value = "~/.cache/glassbox/bench-venv/bin/litellm")]
    pub litellm: String,
    #[arg(long, default_value = "benchmarks/peers/litellm/config.yaml")]
    pub litellm_config: PathBuf,
    /// The built Mastra project (benchmarks/run.sh copies benchmarks/peers/mastra there).
    #[arg(long, env = "BENCH_MASTRA_DIR", default_value = "~/.cache/glassbox/bench-mastra")]
    pub mastra_dir: String,
    #[arg(long, env = "BENCH_NODE", default_value = "node")]
    pub node: PathBuf,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Scenario {
    pub name: &'static str,
    pub mock_latency_ms: u64,
    pub stream: bool,
}

const SCENARIOS: [Scenario; 2] = [
    Scenario { name: "zero", mock_latency_ms: 0, stream: false },
    Scenario { name: "stream200", mock_latency_ms: 200, stream: true },
];

/// One target in one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct TargetResult {
    pub target: Kind,
    pub name: &'static str,
    /// Why it was not measured (not installed, failed to start, ...).
    pub skipped: Option<String>,
    pub closed: Option<Measured>,
    pub fixed: Option<Measured>,
    /// CPU time of the target's processes per answered request, in milliseconds.
    pub cpu_ms_per_request_closed: Option<f64>,
    pub cpu_ms_per_request_fixed: Option<f64>,
    /// Sum of the target's processes' VmHWM at the end, in MB (10^6 bytes).
    pub peak_rss_mb: Option<f64>,
    pub processes: usize,
    pub load_average_start: [f64; 3],
    pub load_average_end: [f64; 3],
    /// Glassbox's `glassbox_telemetry_*` counters after its runs.
    pub telemetry: Vec<(String, f64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    pub scenario: Scenario,
    pub fixed_rate_rps: Option<f64>,
    pub targets: Vec<TargetResult>,
    /// The alternated fixed-rate rounds of the floor and Glassbox (`--tail-rounds`).
    pub tail: Option<TailRounds>,
}

/// Glassbox's added p99 at the fixed rate, round by round against the floor measured in the
/// same round (fresh mock, floor and server each round).
#[derive(Debug, Clone, Serialize)]
pub struct TailRounds {
    pub added_p99_ms: Vec<f64>,
    pub floor_p99_ms: Vec<f64>,
    /// The aim's figure and verdict from these rounds (`median_added_p99_ms`, `steady`,
    /// `verdict` in the JSON).
    #[serde(flatten)]
    pub judged: crate::report::JudgedRounds,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub started_utc: String,
    pub smoke: bool,
    pub connections: u32,
    pub seconds: u64,
    pub warmup_seconds: u64,
    pub rate_share: f64,
    pub machine: Machine,
    pub versions: Vec<(String, String)>,
    pub scenarios: Vec<ScenarioResult>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub kernel: String,
    pub load_average_start: [f64; 3],
    pub load_average_end: [f64; 3],
}

fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

fn kind_of(name: &str) -> anyhow::Result<Kind> {
    Ok(match name {
        "floor" => Kind::Floor,
        "glassbox" => Kind::Glassbox,
        "litellm" => Kind::LiteLlm,
        "mastra" => Kind::Mastra,
        other => anyhow::bail!("unknown target {other:?} (floor, glassbox, litellm, mastra)"),
    })
}

pub fn run(mut args: RunArgs) -> anyhow::Result<Report> {
    if args.smoke {
        args.targets = vec!["glassbox".to_owned(), "floor".to_owned()];
        args.scenarios = vec!["zero".to_owned()];
        args.seconds = 2;
        args.warmup_seconds = 1;
        args.tail_rounds = 1;
    }
    let mut kinds = vec![Kind::Glassbox];
    if args.clickhouse_url.is_some() {
        kinds.push(Kind::GlassboxClickHouse);
    }
    for name in &args.targets {
        let kind = kind_of(name)?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    let scenarios: Vec<Scenario> = args
        .scenarios
        .iter()
        .map(|name| {
            SCENARIOS
                .iter()
                .find(|s| s.name == name)
                .copied()
                .with_context(|| format!("unknown scenario {name:?} (zero, stream200)"))
        })
        .collect::<anyhow::Result<_>>()?;

    let programs = Programs {
        bench: std::env::current_exe().context("while locating glassbox-bench")?,
        glassbox: args.glassbox.clone(),
        mockllm: args.mockllm.clone(),
        glassbox_config: args.glassbox_config.clone(),
        litellm: expand_home(&args.litellm),
        litellm_config: args.litellm_config.clone(),
        mastra_dir: expand_home(&args.mastra_dir),
        node: args.node.clone(),
        ..Programs::default()
    };
    for (what, path) in [
        ("glassbox", &programs.glassbox),
        ("glassbox-mockllm", &programs.mockllm),
        ("the Glassbox bench config", &programs.glassbox_config),
    ] {
        if !path.exists() {
            anyhow::bail!("{what} not found at {} (benchmarks/run.sh builds it)", path.display());
        }
    }
    let oha_version = load::version(&args.oha);
    if oha_version == "unknown" {
        anyhow::bail!(
            "oha not found ({}): install it with `cargo install oha --locked` (benchmarks/run.sh does)",
            args.oha.display()
        );
    }

    let started_utc = utc_now();
    let work = args.work.join(started_utc.replace(':', ""));
    std::fs::create_dir_all(&work).with_context(|| format!("while creating {}", work.display()))?;
    let work = work.canonicalize().context("while resolving the work directory")?;
    let ticks = procfs::clock_ticks_per_second();
    let load_start = procfs::load_average();
    let mut versions = vec![("oha".to_owned(), oha_version.trim_start_matches("oha ").to_owned())];
    versions.extend(peer_versions(&programs));

    let mut results = Vec::new();
    for scenario in scenarios {
        eprintln!(
            "== scenario {} (mock latency {} ms, stream {})",
            scenario.name, scenario.mock_latency_ms, scenario.stream
        );
        let (mut mock, mock_url) =
            targets::start_mock(&programs, &work, Duration::from_millis(scenario.mock_latency_ms))?;
        let mut fixed_rate = None;
        let mut target_results = Vec::new();
        for &kind in &kinds {
            let result = measure(kind, &args, &programs, &work, &mock_url, scenario, &mut fixed_rate, ticks);
            let result = match result {
                Ok(result) => result,
                Err(error) if kind == Kind::Glassbox => return Err(error.context("Glassbox could not be measured")),
                Err(error) => {
                    eprintln!("   {}: not measured: {error:#}", kind.short());
                    TargetResult {
                        target: kind,
                        name: kind.name(),
                        skipped: Some(format!("{error:#}")),
                        closed: None,
                        fixed: None,
                        cpu_ms_per_request_closed: None,
                        cpu_ms_per_request_fixed: None,
                        peak_rss_mb: None,
                        processes: 0,
                        load_average_start: procfs::load_average(),
                        load_average_end: procfs::load_average(),
                        telemetry: Vec::new(),
                    }
                }
            };
            target_results.push(result);
        }
        mock.stop();
        // Glassbox was measured (else the run ended above); the rounds need the floor too.
        let floor_measured = target_results.iter().any(|t| t.target == Kind::Floor && t.fixed.is_some());
        let tail = match fixed_rate {
            Some(rate) if scenario.name == "zero" && args.tail_rounds > 0 && floor_measured => {
                Some(tail_rounds(&args, &programs, &work, rate)?)
            }
            _ => None,
        };
        results.push(ScenarioResult { scenario, fixed_rate_rps: fixed_rate, targets: target_results, tail });
    }

    Ok(Report {
        started_utc,
        smoke: args.smoke,
        connections: args.connections,
        seconds: args.seconds,
        warmup_seconds: args.warmup_seconds,
        rate_share: args.rate_share,
        machine: Machine {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned(),
            load_average_start: load_start,
            load_average_end: procfs::load_average(),
        },
        versions,
        scenarios: results,
    })
}

#[allow(clippy::too_many_arguments)]
fn measure(
    kind: Kind,
    args: &RunArgs,
    programs: &Programs,
    work: &std::path::Path,
    mock_url: &str,
    scenario: Scenario,
    fixed_rate: &mut Option<f64>,
    ticks: f64,
) -> anyhow::Result<TargetResult> {
    let load_average_start = procfs::load_average();
    eprintln!("-- {} (load average {:.2})", kind.name(), load_average_start[0]);
    let mut target = targets::start(kind, programs, work, mock_url, scenario.stream, args.clickhouse_url.as_deref())?;
    target.verify()?;
    let duration = Duration::from_secs(args.seconds);
    load::run(&args.oha, &target.request, args.connections, Duration::from_secs(args.warmup_seconds), None)
        .context("warm-up")?;

    let root = target.process.pid();
    let per_request = |cpu_ms: Option<f64>, ok: u64| cpu_ms.map(|cpu_ms| cpu_ms / ok.max(1) as f64);
    let (closed, cpu_closed) = procfs::tree_cpu_ms(root, ticks, || {
        load::run(&args.oha, &target.request, args.connections, duration, None).context("closed-loop run")
    });
    let closed = closed?;
    let cpu_closed = per_request(cpu_closed, closed.ok);
    eprintln!(
        "   closed loop: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} failed",
        closed.rps, closed.p50_ms, closed.p99_ms, closed.failed
    );

    let rate = *fixed_rate.get_or_insert(closed.rps * args.rate_share);
    let (fixed, cpu_fixed) = procfs::tree_cpu_ms(root, ticks, || {
        load::run(&args.oha, &target.request, args.connections, duration, Some(rate)).context("fixed-rate run")
    });
    let fixed = fixed?;
    let cpu_fixed = per_request(cpu_fixed, fixed.ok);
    eprintln!(
        "   fixed rate {rate:.0}/s: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} failed",
        fixed.rps, fixed.p50_ms, fixed.p99_ms, fixed.failed
    );

    let telemetry = if matches!(kind, Kind::Glassbox | Kind::GlassboxClickHouse) {
        // The writer flushes every second: let the last batch land before reading the counters.
        std::thread::sleep(Duration::from_millis(1500));
        target.telemetry_counters()
    } else {
        Vec::new()
    };
    let pids = procfs::tree(target.process.pid());
    let peak_rss_mb = procfs::peak_rss_kib(&pids) as f64 * 1024.0 / 1e6;
    target.process.stop();
    if matches!(kind, Kind::Glassbox | Kind::GlassboxClickHouse) {
        targets::remove_store(work, kind);
    }
    Ok(TargetResult {
        target: kind,
        name: kind.name(),
        skipped: None,
        closed: Some(closed),
        fixed: Some(fixed),
        cpu_ms_per_request_closed: cpu_closed,
        cpu_ms_per_request_fixed: cpu_fixed,
        peak_rss_mb: Some(peak_rss_mb),
        processes: pids.len(),
        load_average_start,
        load_average_end: procfs::load_average(),
        telemetry,
    })
}

/// `--tail-rounds`: `glassbox-bench ab`'s rounds with Glassbox as the one variant, at the
/// scenario's fixed rate, without the closed loop.
fn tail_rounds(args: &RunArgs, programs: &Programs, work: &std::path::Path, rate: f64) -> anyhow::Result<TailRounds> {
    eprintln!("-- the added p99: {} rounds alternating the floor and Glassbox at {rate:.0} req/s", args.tail_rounds);
    let ab = crate::ab::AbArgs {
        variants: Vec::new(),
        rounds: args.tail_rounds,
        rate,
        stream: false,
        connections: args.connections,
        warmup_seconds: args.warmup_seconds,
        closed_seconds: 0,
        fixed_seconds: args.seconds,
        oha: args.oha.clone(),
        mockllm: programs.mockllm.clone(),
        work: work.join("tail"),
    };
    let variants = [crate::ab::Variant { name: "glassbox".to_owned(), programs: programs.clone() }];
    let rounds = crate::ab::alternate(&ab, programs, &variants, &ab.work, &mut std::io::stderr())
        .context("the alternated fixed-rate rounds")?;
    let added_p99_ms: Vec<f64> = rounds.rows.iter().flatten().map(|row| row.added_p99).collect();
    let judged = crate::report::judge_rounds(&added_p99_ms, &rounds.floor_p99);
    Ok(TailRounds { added_p99_ms, floor_p99_ms: rounds.floor_p99, judged })
}

/// Versions of what was measured, for the record.
fn peer_versions(programs: &Programs) -> Vec<(String, String)> {
    let mut versions = Vec::new();
    if let Some(python) = programs.litellm.parent().map(|bin| bin.join("python")).filter(|python| python.exists()) {
        let output = std::process::Command::new(python)
            .args(["-c", "import importlib.metadata as m; print(m.version('litellm'))"])
            .output();
        if let Ok(output) = output {
            versions.push(("litellm".to_owned(), String::from_utf8_lossy(&output.stdout).trim().to_owned()));
        }
    }
    for package in ["@mastra/core", "@ai-sdk/openai", "mastra"] {
        let manifest = programs.mastra_dir.join("node_modules").join(package).join("package.json");
        if let Some(version) = std::fs::read_to_string(manifest)
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|json| json.get("version").and_then(|v| v.as_str()).map(str::to_owned))
        {
            versions.push((package.to_owned(), version));
        }
    }
    if let Ok(output) = std::process::Command::new(&programs.node).arg("--version").output() {
        versions.push(("node".to_owned(), String::from_utf8_lossy(&output.stdout).trim().to_owned()));
    }
    if let Ok(output) = std::process::Command::new("git").args(["rev-parse", "--short", "HEAD"]).output() {
        versions.push(("glassbox commit".to_owned(), String::from_utf8_lossy(&output.stdout).trim().to_owned()));
    }
    versions
}

/// Now in UTC as `YYYY-MM-DDTHH:MM:SSZ` (civil-from-days, no date crate needed).
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}
