//! Runs a suite: builds the target with its models and tools wrapped for the mode (replay,
//! record or live), runs the cases with bounded concurrency, scores each, and applies the
//! gate.
//!
//! Latency in replay is the recorded model latency, so `latency` scorers give the same answer
//! every time; live and record runs measure the wall time of the case.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt as _;
use glassbox_core::{Agent, GenerateOptions, LanguageModel, Tool};
use glassbox_store::pricing::{PricingTable, TokenCounts};
use serde_json::Value;

use crate::recording::{CaseContext, MeasuredModel, RecordedTool, RecordingModel, RecordingSink, Recordings, ReplayModel, StubTool};
use crate::report::{CaseReport, CaseScore, GateOutcome, Report, ScorerSummary, REPORT_FORMAT};
use crate::scorer::{ConfiguredScorer, Outcome, ScoreInput};
use crate::suite::{Suite, Target};

/// How model (and tool) calls are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// From the recordings only: no network, no key.
    Replay,
    /// By the real providers, saving every answer as the suite's recordings.
    Record,
    /// By the real providers, saving nothing.
    Live,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Replay => "replay",
            Self::Record => "record",
            Self::Live => "live",
        }
    }
}

/// What wraps every model and tool of a suite's target.
pub struct Layer {
    kind: LayerKind,
    stubs: BTreeMap<String, Value>,
}

enum LayerKind {
    Live,
    Record(Arc<RecordingSink>),
    Replay(Arc<Recordings>),
}

impl Layer {
    pub fn live() -> Self {
        Self { kind: LayerKind::Live, stubs: BTreeMap::new() }
    }
    pub fn record(sink: Arc<RecordingSink>) -> Self {
        Self { kind: LayerKind::Record(sink), stubs: BTreeMap::new() }
    }
    pub fn replay(recordings: Arc<Recordings>) -> Self {
        Self { kind: LayerKind::Replay(recordings), stubs: BTreeMap::new() }
    }
    pub fn with_stubs(mut self, stubs: BTreeMap<String, Value>) -> Self {
        self.stubs = stubs;
        self
    }

    pub fn model(&self, model: Arc<dyn LanguageModel>) -> Arc<dyn LanguageModel> {
        match &self.kind {
            LayerKind::Live => Arc::new(MeasuredModel::new(model)),
            LayerKind::Record(sink) => Arc::new(RecordingModel::new(model, Arc::clone(sink))),
            LayerKind::Replay(recordings) => Arc::new(ReplayModel::new(model.as_ref(), Arc::clone(recordings))),
        }
    }

    pub fn tool(&self, tool: Arc<dyn Tool>) -> Arc<dyn Tool> {
        if let Some(result) = self.stubs.get(&tool.spec().name) {
            return Arc::new(StubTool::new(tool.spec().clone(), result.clone()));
        }
        match &self.kind {
            LayerKind::Live => tool,
            LayerKind::Record(sink) => Arc::new(RecordedTool::recording(tool, Arc::clone(sink))),
            LayerKind::Replay(recordings) => Arc::new(RecordedTool::replaying(tool, Arc::clone(recordings))),
        }
    }
}

/// Where suites find their targets: the server implements this over glassbox.toml.
pub trait Targets: Send + Sync {
    /// The agent `id`, every model and tool passed through `layer`.
    fn agent(&self, id: &str, layer: &Layer) -> Result<Agent, String>;
    /// The model `id` (for judges), passed through `layer`.
    fn model(&self, id: &str, layer: &Layer) -> Result<Arc<dyn LanguageModel>, String>;
}

/// Hears about a run's progress (a progress bar, CI lines).
pub trait Progress: Send + Sync {
    fn start(&self, suite: &str, total: usize);
    fn case_done(&self, case: &CaseReport);
    fn finish(&self, report: &Report);
}

/// Progress that goes nowhere.
#[derive(Debug, Default)]
pub struct Quiet;

impl Progress for Quiet {
    fn start(&self, _suite: &str, _total: usize) {}
    fn case_done(&self, _case: &CaseReport) {}
    fn finish(&self, _report: &Report) {}
}

/// A suite that could not run at all (exit code 2), as opposed to one that ran and failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Suite(#[from] crate::suite::SuiteError),
    #[error(transparent)]
    Recordings(#[from] crate::recording::RecordingsError),
    #[error("{suite}: {target}: {message}")]
    Target { suite: String, target: String, message: String },
    #[error("{suite}: {source}")]
    Scorer {
        suite: String,
        #[source]
        source: crate::scorers::SpecError,
    },
    #[error("{suite}: gate.max_drop needs a baseline report (gate.baseline or --baseline)")]
    NoBaseline { suite: String },
    #[error("{suite}: baseline")]
    Baseline {
        suite: String,
        #[source]
        source: crate::report::ReportError,
    },
}

/// Runs one suite and applies its gate. `baseline` overrides the suite's own.
pub async fn run_suite(
    suite: &Suite,
    targets: &dyn Targets,
    mode: Mode,
    pricing: &PricingTable,
    progress: &dyn Progress,
    baseline: Option<&std::path::Path>,
) -> Result<(Report, Option<Arc<RecordingSink>>), RunError> {
    let sink = (mode == Mode::Record).then(RecordingSink::new);
    let layer = match (mode, &sink) {
        (Mode::Replay, _) => Layer::replay(Arc::new(Recordings::load(&suite.recordings_path)?)),
        (Mode::Record, Some(sink)) => Layer::record(Arc::clone(sink)),
        _ => Layer::live(),
    }
    .with_stubs(suite.tool_stubs.clone());
    let target_error = |message: String| RunError::Target { suite: suite.name.clone(), target: suite.target.to_string(), message };
    let agent = match &suite.target {
        Target::Agent(id) => targets.agent(id, &layer).map_err(target_error)?,
    };
    let mut scorers = Vec::with_capacity(suite.scorers.len());
    for (idx, spec) in suite.scorers.iter().enumerate() {
        let position = spec.name.clone().unwrap_or_else(|| format!("#{} ({})", idx + 1, spec.type_name()));
        let models = |id: &str| targets.model(id, &layer).ok();
        scorers.push(spec.build(&position, &models).map_err(|source| RunError::Scorer { suite: suite.name.clone(), source })?);
    }
    let baseline_path = baseline.map(std::path::Path::to_path_buf).or_else(|| suite.gate.baseline.clone());
    if suite.gate.max_drop.is_some() && baseline_path.is_none() {
        return Err(RunError::NoBaseline { suite: suite.name.clone() });
    }
    let baseline = match &baseline_path {
        Some(path) => Some(Report::load_for_suite(path, &suite.name).map_err(|source| RunError::Baseline { suite: suite.name.clone(), source })?),
        None => None,
    };

    progress.start(&suite.name, suite.cases.len());
    let started_at_unix_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64);
    let started = Instant::now();
    let mut cases: Vec<(usize, CaseReport)> = futures::stream::iter(suite.cases.iter().enumerate())
        .map(|(idx, case)| {
            let agent = &agent;
            let scorers = &scorers;
            async move {
                let report = run_case(suite, agent, scorers, mode, pricing, case).await;
                progress.case_done(&report);
                (idx, report)
            }
        })
        .buffer_unordered(suite.concurrency)
        .collect()
        .await;
    cases.sort_by_key(|(idx, _)| *idx);
    let cases: Vec<CaseReport> = cases.into_iter().map(|(_, case)| case).collect();
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;

    let report = assemble(suite, mode, &scorers, cases, started_at_unix_ms, duration_ms, baseline.as_ref(), baseline_path.as_deref());
    progress.finish(&report);
    Ok((report, sink))
}

async fn run_case(
    suite: &Suite,
    agent: &Agent,
    scorers: &[ConfiguredScorer],
    mode: Mode,
    pricing: &PricingTable,
    case: &crate::suite::Case,
) -> CaseReport {
    let context = CaseContext::new(case.id.clone());
    let started = Instant::now();
    let messages = case.messages().unwrap_or_default();
    let run = context.scope(agent.generate(messages, GenerateOptions::default()));
    let outcome = tokio::time::timeout(suite.case_timeout, run).await;
    let wall = started.elapsed();
    let latency = if mode == Mode::Replay { context.model_latency() } else { wall };
    let calls = context.calls();
    let mut cost_nano = 0_i64;
    let mut cost_known = true;
    for call in &calls {
        let cost = pricing.cost(
            &call.provider,
            &call.model,
            TokenCounts {
                input: call.usage.input_tokens,
                output: call.usage.output_tokens,
                cached_input: call.usage.cached_input_tokens,
                reasoning: call.usage.reasoning_tokens,
            },
        );
        cost_known &= !cost.unknown;
        cost_nano += cost.nano_usd;
    }
    let cost_usd = cost_known.then_some(cost_nano as f64 / 1e9);
    let output = match outcome {
        Ok(Ok(output)) => Ok(output),
        Ok(Err(error)) => Err(crate::error_chain(&error)),
        Err(_) => Err(format!("the run did not finish within {:?}", suite.case_timeout)),
    };
    let mut report = CaseReport {
        id: case.id.clone(),
        input: case.input_text(),
        output: String::new(),
        expected: case.expected.clone(),
        passed: false,
        error: None,
        latency_ms: round3(latency.as_secs_f64() * 1000.0),
        input_tokens: 0,
        output_tokens: 0,
        cost_usd,
        tool_calls: Vec::new(),
        scores: Vec::with_capacity(scorers.len()),
    };
    let output = match output {
        Ok(output) => output,
        Err(error) => {
            // A failed run fails every scorer: a broken case must not raise any pass rate.
            for scorer in scorers {
                report.scores.push(CaseScore {
                    scorer: scorer.name.clone(),
                    value: None,
                    passed: false,
                    reason: String::from("the run failed"),
                    error: Some(String::from("the run failed")),
                });
            }
            report.error = Some(error);
            return report;
        }
    };
    report.output = output.text.clone();
    report.input_tokens = output.usage.input_tokens;
    report.output_tokens = output.usage.output_tokens;
    report.tool_calls = output.tool_calls.iter().map(|call| format!("{}({})", call.name, call.arguments)).collect();
    let input = ScoreInput {
        input: report.input.clone(),
        output: output.text,
        object: output.object,
        expected: case.expected.clone(),
        tool_calls: output.tool_calls,
        usage: output.usage,
        latency: Duration::from_secs_f64(report.latency_ms / 1000.0),
        cost_usd,
        metadata: case.metadata.clone(),
    };
    // Judges replay under their own case id, so their calls never shift the agent's steps.
    let judging = CaseContext::new(format!("{}#judge", case.id));
    for scorer in scorers {
        let Outcome { value, passed, reason, error } = judging.scope(scorer.score(&input, suite.scorer_timeout)).await;
        report.scores.push(CaseScore { scorer: scorer.name.clone(), value: value.map(round6), passed, reason, error });
    }
    report.passed = report.scores.iter().all(|score| score.passed);
    report
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

fn round6(value: f64) -> f64 {
    (value * 1e6).round() / 1e6
}

#[allow(clippy::too_many_arguments)]
fn assemble(
    suite: &Suite,
    mode: Mode,
    scorers: &[ConfiguredScorer],
    cases: Vec<CaseReport>,
    started_at_unix_ms: u64,
    duration_ms: f64,
    baseline: Option<&Report>,
    baseline_path: Option<&std::path::Path>,
) -> Report {
    let total = cases.len();
    let passed = cases.iter().filter(|case| case.passed).count();
    let errored = cases.iter().filter(|case| case.error.is_some()).count();
    let rate = |n: usize| if total == 0 { 0.0 } else { round6(n as f64 / total as f64) };
    let summaries: Vec<ScorerSummary> = scorers
        .iter()
        .enumerate()
        .map(|(idx, scorer)| {
            let scores: Vec<&CaseScore> = cases.iter().filter_map(|case| case.scores.get(idx)).collect();
            let n_passed = scores.iter().filter(|score| score.passed).count();
            let n_errored = scores.iter().filter(|score| score.error.is_some()).count();
            let values: Vec<f64> = scores.iter().filter_map(|score| score.value).collect();
            ScorerSummary {
                name: scorer.name.clone(),
                kind: scorer.scorer.kind().to_owned(),
                threshold: scorer.threshold,
                min_pass_rate: scorer.min_pass_rate,
                passed: n_passed,
                failed: scores.len() - n_passed,
                errored: n_errored,
                pass_rate: rate(n_passed),
                mean_score: (!values.is_empty()).then(|| round6(values.iter().sum::<f64>() / values.len() as f64)),
            }
        })
        .collect();
    let pass_rate = rate(passed);
    let mut failures = Vec::new();
    if pass_rate < suite.gate.min_pass_rate {
        failures.push(format!(
            "{passed}/{total} cases passed ({:.1}%), below the gate's minimum of {:.1}%",
            pass_rate * 100.0,
            suite.gate.min_pass_rate * 100.0
        ));
    }
    for summary in &summaries {
        if let Some(min) = summary.min_pass_rate
            && summary.pass_rate < min
        {
            failures.push(format!(
                "scorer {} passed {:.1}% of cases, below its minimum of {:.1}%",
                summary.name,
                summary.pass_rate * 100.0,
                min * 100.0
            ));
        }
    }
    if let (Some(baseline), Some(max_drop)) = (baseline, suite.gate.max_drop) {
        let drop = baseline.pass_rate - pass_rate;
        if drop > max_drop + 1e-9 {
            failures.push(format!(
                "the pass rate fell from {:.1}% (baseline) to {:.1}%, more than the allowed drop of {:.1} points",
                baseline.pass_rate * 100.0,
                pass_rate * 100.0,
                max_drop * 100.0
            ));
        }
        for summary in &summaries {
            if let Some(before) = baseline.scorers.iter().find(|before| before.name == summary.name)
                && before.pass_rate - summary.pass_rate > max_drop + 1e-9
            {
                failures.push(format!(
                    "scorer {} fell from {:.1}% (baseline) to {:.1}%, more than the allowed drop of {:.1} points",
                    summary.name,
                    before.pass_rate * 100.0,
                    summary.pass_rate * 100.0,
                    max_drop * 100.0
                ));
            }
        }
    }
    Report {
        format: REPORT_FORMAT,
        run_id: uuid::Uuid::now_v7().to_string(),
        suite: suite.name.clone(),
        target: suite.target.to_string(),
        mode: mode.as_str().to_owned(),
        started_at_unix_ms,
        duration_ms: round3(duration_ms),
        total,
        passed,
        failed: total - passed,
        errored,
        pass_rate,
        scorers: summaries,
        gate: GateOutcome {
            passed: failures.is_empty(),
            min_pass_rate: suite.gate.min_pass_rate,
            max_drop: suite.gate.max_drop,
            baseline: baseline_path.map(|path| path.display().to_string()),
            failures,
        },
        cases,
    }
}
