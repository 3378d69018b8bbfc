//! Evals in the server and the binary: `glassbox eval run|record` (suites against the agents
//! of glassbox.toml, through `glassbox-evals`), and online evals after `generate` requests.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use glassbox_config::Config;
use glassbox_core::{Agent, AgentOutput, LanguageModel, Message};
use glassbox_evals::online::{AgentEvals, OnlineEvals, ScoredRequest};
use glassbox_evals::progress::ConsoleProgress;
use glassbox_evals::report::{self, Report};
use glassbox_evals::{Layer, Mode, ScoreInput, Suite, Targets};
use glassbox_store::{EvalCaseRow, EvalResultRow, EvalRunRow, EvalStore};
use tracing::Instrument as _;

use crate::runtime;
use crate::telemetry::SpanExt as _;
use crate::trace_context::TraceContext;

/// `glassbox eval ...`.
#[derive(Debug, clap::Subcommand)]
pub enum EvalCommand {
    /// Run suites: a suite file or every *.toml of a directory. Replays recorded model calls
    /// (no network, no key) unless --live.
    Run {
        /// A suite file or a directory of suites.
        path: PathBuf,
        #[arg(long, default_value = "glassbox.toml", env = "GLASSBOX_CONFIG")]
        config: PathBuf,
        /// Call the real providers instead of replaying.
        #[arg(long)]
        live: bool,
        #[command(flatten)]
        outputs: Outputs,
    },
    /// Run suites against the real providers and save every model (and tool) response as the
    /// suites' recordings.
    Record {
        path: PathBuf,
        #[arg(long, default_value = "glassbox.toml", env = "GLASSBOX_CONFIG")]
        config: PathBuf,
        #[command(flatten)]
        outputs: Outputs,
    },
}

#[derive(Debug, clap::Args)]
pub struct Outputs {
    /// Write a JUnit XML report here.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// Write the JSON report here (one report, or an array for several suites).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write a Markdown summary here (for a pull-request comment).
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// A JSON report to compare against (overrides the suites' gate.baseline).
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Do not write the runs to the store.
    #[arg(long)]
    no_store: bool,
}

/// Exit codes: the gate passed, it failed, the suite or config is broken.
const EXIT_PASSED: u8 = 0;
const EXIT_GATE_FAILED: u8 = 1;
const EXIT_BROKEN: u8 = 2;

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Targets from glassbox.toml, built through `runtime` with every model and tool wrapped.
pub struct ConfigTargets {
    pub config: Config,
}

struct LayerWrap<'a>(&'a Layer);

impl runtime::Wrap for LayerWrap<'_> {
    fn model(&self, model: Arc<dyn LanguageModel>) -> Arc<dyn LanguageModel> {
        self.0.model(model)
    }
    fn tool(&self, tool: Arc<dyn glassbox_core::Tool>) -> Arc<dyn glassbox_core::Tool> {
        self.0.tool(tool)
    }
}

impl Targets for ConfigTargets {
    fn agent(&self, id: &str, layer: &Layer) -> Result<Agent, String> {
        let (agents, _notices) =
            runtime::build_wrapped(&self.config, &env_var, &LayerWrap(layer)).map_err(|error| error.to_string())?;
        agents.get(id).cloned().ok_or_else(|| {
            let known: Vec<&str> = agents.all().iter().map(Agent::id).collect();
            format!("unknown agent {id:?} (the config has: {})", known.join(", "))
        })
    }

    fn model(&self, id: &str, layer: &Layer) -> Result<Arc<dyn LanguageModel>, String> {
        runtime::model(&self.config, id, &env_var).map(|model| layer.model(model))
    }
}

/// Runs `glassbox eval ...` and answers the process's exit code.
pub fn command(command: EvalCommand) -> ExitCode {
    let (mode, path, config, outputs) = match command {
        EvalCommand::Run { path, config, live, outputs } => (if live { Mode::Live } else { Mode::Replay }, path, config, outputs),
        EvalCommand::Record { path, config, outputs } => (Mode::Record, path, config, outputs),
    };
    ExitCode::from(execute(mode, &path, &config, &outputs))
}

fn execute(mode: Mode, path: &Path, config_path: &Path, outputs: &Outputs) -> u8 {
    let config = match glassbox_config::load(config_path) {
        Ok(config) => config,
        Err(glassbox_config::ConfigError::Invalid(diagnostics)) => {
            eprintln!("{diagnostics}");
            eprintln!("{}: {} problem(s) found", config_path.display(), diagnostics.0.len());
            return EXIT_BROKEN;
        }
        Err(error) => {
            eprintln!("error: while loading {}: {}", config_path.display(), glassbox_evals::error_chain(&error));
            return EXIT_BROKEN;
        }
    };
    let suite_paths = match glassbox_evals::suite::discover(path) {
        Ok(paths) => paths,
        Err(error) => {
            eprintln!("error: {}", glassbox_evals::error_chain(&error));
            return EXIT_BROKEN;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: while starting the async runtime: {error}");
            return EXIT_BROKEN;
        }
    };
    if mode != Mode::Replay {
        glassbox_providers::install_crypto_provider();
    }
    runtime.block_on(async move {
        let pricing = crate::telemetry::pricing_table(&config.pricing);
        let store_config = config.store.clone();
        let targets = ConfigTargets { config };
        let progress = ConsoleProgress::new();
        let mut reports = Vec::new();
        let mut broken = false;
        let mut stdout = std::io::stdout().lock();
        for suite_path in suite_paths {
            let suite = match Suite::load(&suite_path) {
                Ok(suite) => suite,
                Err(error) => {
                    eprintln!("error: {}", glassbox_evals::error_chain(&error));
                    broken = true;
                    continue;
                }
            };
            let (report, sink) =
                match glassbox_evals::run_suite(&suite, &targets, mode, &pricing, &progress, outputs.baseline.as_deref()).await {
                    Ok(done) => done,
                    Err(error) => {
                        eprintln!("error: {}", glassbox_evals::error_chain(&error));
                        broken = true;
                        continue;
                    }
                };
            if let Some(sink) = sink {
                match sink.write(&suite.recordings_path) {
                    Ok(n) => eprintln!("eval {}: recorded {n} calls to {}", suite.name, suite.recordings_path.display()),
                    Err(error) => {
                        eprintln!("error: {}", glassbox_evals::error_chain(&error));
                        broken = true;
                    }
                }
            }
            let _ = write!(stdout, "{}", describe(&report));
            reports.push(report);
        }
        if let Err(message) = write_outputs(&reports, outputs) {
            eprintln!("error: {message}");
            broken = true;
        }
        if !outputs.no_store && !reports.is_empty() {
            store_runs(&store_config, &reports).await;
        }
        let gate_failed = reports.iter().any(|report| !report.gate.passed);
        if broken {
            EXIT_BROKEN
        } else if gate_failed {
            EXIT_GATE_FAILED
        } else {
            EXIT_PASSED
        }
    })
}

/// The terminal summary of one suite: the table, the failed cases with their reasons, the gate.
fn describe(report: &Report) -> String {
    let mut out = format!("\n== {} ({}, {}) ==\n", report.suite, report.target, report.mode);
    out.push_str(&report::summary_table(report));
    for case in report.cases.iter().filter(|case| !case.passed) {
        out.push_str(&format!("\nFAILED {}: input {:?}\n", case.id, case.input));
        for line in Report::failure_text(case).lines() {
            out.push_str("    ");
            out.push_str(line);
            out.push('\n');
        }
    }
    if report.gate.passed {
        out.push_str(&format!("gate passed: {}/{} cases\n", report.passed, report.total));
    } else {
        out.push_str("gate FAILED:\n");
        for failure in &report.gate.failures {
            out.push_str(&format!("  - {failure}\n"));
        }
    }
    out
}

fn write_outputs(reports: &[Report], outputs: &Outputs) -> Result<(), String> {
    let write = |path: &Path, text: String| {
        std::fs::write(path, text).map_err(|error| format!("could not write {}: {error}", path.display()))
    };
    if let Some(path) = &outputs.json {
        let text = match reports {
            [one] => one.to_json(),
            many => serde_json::to_string_pretty(many).unwrap_or_default(),
        };
        write(path, text)?;
    }
    if let Some(path) = &outputs.junit {
        write(path, report::junit(reports))?;
    }
    if let Some(path) = &outputs.markdown {
        write(path, report::markdown(reports))?;
    }
    Ok(())
}

/// Writes the runs to the store for the dashboard's history. A store that is unavailable is
/// reported, not fatal: the run's verdict is the gate's.
async fn store_runs(config: &glassbox_config::StoreConfig, reports: &[Report]) {
    let store = match crate::store::open(config, &env_var).await {
        Ok(store) => store,
        Err(error) => {
            eprintln!("warning: eval runs not stored: {}", glassbox_evals::error_chain(&error));
            return;
        }
    };
    if let Err(error) = store.backend.migrate().await {
        eprintln!("warning: eval runs not stored: {}", glassbox_evals::error_chain(&error));
        return;
    }
    for report in reports {
        let (run, cases, results) = rows(report);
        // Cases first: the run row makes the run (and so its cases) visible.
        let stored = match store.evals.insert_eval_cases(&cases).await {
            Ok(()) => store.evals.insert_eval_run(&run, &results).await,
            Err(error) => Err(error),
        };
        if let Err(error) = stored {
            eprintln!("warning: eval run {} not stored: {}", report.run_id, glassbox_evals::error_chain(&error));
        }
    }
}

/// A report as store rows: the run, its cases, and one result per case and scorer.
pub fn rows(report: &Report) -> (EvalRunRow, Vec<EvalCaseRow>, Vec<EvalResultRow>) {
    let run = EvalRunRow {
        run_id: report.run_id.clone(),
        suite: report.suite.clone(),
        target: report.target.clone(),
        mode: report.mode.clone(),
        started_at_ns: i64::try_from(report.started_at_unix_ms).unwrap_or(i64::MAX).saturating_mul(1_000_000),
        duration_ms: report.duration_ms,
        total: report.total as u64,
        passed: report.passed as u64,
        errored: report.errored as u64,
        pass_rate: report.pass_rate,
        gate_passed: report.gate.passed,
    };
    let results = report
        .cases
        .iter()
        .flat_map(|case| {
            case.scores.iter().map(move |score| EvalResultRow {
                run_id: report.run_id.clone(),
                case_id: case.id.clone(),
                scorer: score.scorer.clone(),
                score: score.value,
                passed: score.passed,
                reason: score.reason.clone(),
                error: case.error.clone().or_else(|| score.error.clone()).unwrap_or_default(),
                latency_ms: case.latency_ms,
            })
        })
        .collect();
    let cases = report
        .cases
        .iter()
        .map(|case| EvalCaseRow {
            run_id: report.run_id.clone(),
            case_id: case.id.clone(),
            input: case.input.clone(),
            output: case.output.clone(),
            expected: case.expected.as_ref().map(serde_json::Value::to_string).unwrap_or_default(),
            error: case.error.clone().unwrap_or_default(),
        })
        .collect();
    (run, cases, results)
}

/// Builds the online evals of `config` (`[online_evals.<agent>]`); `None` when there are none.
/// Judges use the config's models as they are (live).
pub fn online_evals(
    config: &Config,
    store: Option<Arc<dyn EvalStore>>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Arc<OnlineEvals>>, Vec<String>> {
    if config.online_evals.is_empty() {
        return Ok(None);
    }
    let mut agents = HashMap::new();
    let mut problems = Vec::new();
    for entry in &config.online_evals {
        let models = |id: &str| runtime::model(config, id, env).ok();
        match AgentEvals::from_tables(entry.sample_rate, entry.timeout, &entry.scorers, &models) {
            Ok(evals) => {
                agents.insert(entry.agent.clone(), evals);
            }
            Err(error) => problems.push(format!("online_evals.{}: {error}", entry.agent)),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let pricing = Arc::new(crate::telemetry::pricing_table(&config.pricing));
    // Score rows are stored like spans, at most once per flush interval (`OnlineEvals::with_linger`).
    Ok(Some(Arc::new(OnlineEvals::new(agents, store, pricing).with_linger(config.store.flush_interval))))
}

/// A request sampled for online evals, with what its scorers need, taken before the run. The
/// decision is by trace id, so an unsampled request pays nothing. Every agent route (native
/// `generate` and `stream`, the OpenAI-compatible `chat/completions`) goes through it.
pub struct OnlineSample {
    evals: Arc<OnlineEvals>,
    agent: Agent,
    trace: TraceContext,
    input: String,
    /// The request span: a stream finishes outside the handler, so it is kept, not looked up.
    request_span: tracing::Span,
    started: std::time::Instant,
}

impl OnlineSample {
    /// `Some` when `online` scores `agent` and samples this trace; call right before the run.
    pub fn take(online: Option<&Arc<OnlineEvals>>, agent: &Agent, trace: &TraceContext, messages: &[Message]) -> Option<Self> {
        let evals = online.filter(|evals| evals.sampled(agent.id(), &trace.trace_id_hex()))?;
        Some(Self {
            evals: Arc::clone(evals),
            agent: agent.clone(),
            trace: *trace,
            input: last_user_text(messages),
            request_span: tracing::Span::current(),
            started: std::time::Instant::now(),
        })
    }

    /// Spawns the scorers on the finished run's output, in a span of the request's trace.
    /// Returns at once: the response never waits for scoring.
    pub fn score(self, output: &AgentOutput) {
        let latency = self.started.elapsed();
        spawn_online_in(&self.request_span, self.evals, &self.agent, &self.trace, self.input, output, latency);
    }
}

/// The last user text of a conversation, what online scorers see as the input.
pub fn last_user_text(messages: &[Message]) -> String {
    messages
        .iter()
        .rev()
        .find_map(|message| match message {
            Message::User { text } => Some(text.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// Spawns the online scorers of a finished request in a span of its trace, under
/// `request_span` (see [`OnlineSample`]).
fn spawn_online_in(
    request_span: &tracing::Span,
    online: Arc<OnlineEvals>,
    agent: &Agent,
    trace: &TraceContext,
    input: String,
    output: &AgentOutput,
    latency: Duration,
) {
    let request = ScoredRequest {
        agent: agent.id().to_owned(),
        trace_id: crate::access::secret::hex(&trace.trace_id),
        span_id: crate::access::secret::hex(&trace.span_id),
        provider: agent.model().provider().to_owned(),
        model: agent.model().model_name().to_owned(),
        input: ScoreInput {
            input,
            output: output.text.clone(),
            object: output.object.clone(),
            expected: None,
            tool_calls: output.tool_calls.clone(),
            usage: output.usage,
            latency,
            cost_usd: None,
            metadata: serde_json::Value::Null,
        },
    };
    // No registry parent (its trace parent is set below): the scorers outlive the request,
    // and a child would keep the request span, and its journal lines, open until they finish.
    let span =
        tracing::info_span!(parent: None, "online_evals", otel.name = "online_evals", gen_ai.agent.name = request.agent.as_str());
    span.set_parent_span(request_span);
    // Its evaluation spans' journal lines go out with its own, in one write: it ends with its
    // last scorer, each bounded by the agent's eval timeout.
    span.gather_journal_lines();
    tokio::spawn(online.evaluate(request).instrument(span));
}
