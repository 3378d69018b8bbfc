//! The Evals pages: suite runs over time with the pass rate of each scorer (SVG lines per
//! suite), the latest runs, online scores by agent and scorer over the chosen range
//! (`/dashboard/evals`), and one run's cases with their failures and what changed against a
//! baseline run (`/dashboard/evals/runs/{run_id}`; the baseline is the suite's previous run
//! unless `baseline=` names one).
//!
//! Access: suite runs belong to no tenant, so they are shown to admins only (the run page
//! refuses anyone else); a tenant-scoped viewer sees the online scores of its own tenant's
//! traces (found through their usage rows) and nothing of the suites.

use std::collections::{BTreeMap, BTreeSet};

use askama::Template;
use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use glassbox_store::{EvalCaseRow, EvalResultRow, EvalRunRow, EvalScorerTally, EvalStore};
use serde::Deserialize;

use super::access::Viewer;
use super::chart::{HEIGHT, WIDTH};
use super::pages::Chrome;
use super::params::{self, PageQuery, Window};
use super::sources::{self, clip};
use super::{Dashboard, PageError, format, render};

/// Runs listed and charted by default, and at most.
const DEFAULT_RUNS: u32 = 30;
const MAX_RUNS: u32 = 500;
/// How far back the previous run of a suite is looked for.
const BASELINE_LOOKBACK: u32 = 200;
/// Characters of a reason or error shown per cell.
const MAX_REASON_CHARS: usize = 400;
/// A case's input, expected value and output are clipped to this many characters each.
const MAX_CASE_TEXT_CHARS: usize = 4_000;
/// An output diff shows at most this many lines.
const MAX_DIFF_LINES: usize = 200;
/// Space kept at the chart's edges for the dots, in SVG units.
const DOT_INSET: f64 = 4.0;
/// Colour classes of the chart lines (`series-0` … in the stylesheet), reused in turn.
const SERIES_CLASSES: usize = 6;

#[derive(Debug, Default, Deserialize)]
pub struct EvalsQuery {
    suite: Option<String>,
    runs: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RunQuery {
    baseline: Option<String>,
    show: Option<String>,
}

fn eval_store(dashboard: &Dashboard) -> Result<&dyn EvalStore, PageError> {
    dashboard.sources.evals.as_deref().ok_or_else(|| PageError::NotFound("this server has no eval store".into()))
}

fn rate(passed: u64, total: u64) -> f64 {
    if total == 0 { 0.0 } else { passed as f64 / total as f64 }
}

fn percent_of(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

// ----------------------------------------------------------------------------------------
// Suite runs and online scores
// ----------------------------------------------------------------------------------------

/// One point of a pass-rate line, with its tooltip.
pub struct Dot {
    pub x: f64,
    pub y: f64,
    pub tip: String,
}

/// One scorer's pass rate (or the overall one) over a suite's runs.
pub struct RateLine {
    pub class: String,
    pub name: String,
    pub points: String,
    pub dots: Vec<Dot>,
}

/// Pass rates (0–100%) over a suite's runs, oldest left, runs evenly spaced.
pub struct SuiteChart {
    pub suite: String,
    pub href: String,
    pub lines: Vec<RateLine>,
    pub first_label: String,
    pub last_label: String,
    pub runs: usize,
}

fn round(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

impl SuiteChart {
    /// `runs`: the suite's runs, oldest first; `tallies`: per run id, per scorer.
    fn new(suite: &str, runs: &[&EvalRunRow], tallies: &BTreeMap<&str, Vec<&EvalScorerTally>>) -> Self {
        // Inset by the dots' radius, so the first and last dots and 0% / 100% are whole.
        let x = |index: usize| {
            if runs.len() <= 1 {
                WIDTH / 2.0
            } else {
                round(DOT_INSET + index as f64 / (runs.len() - 1) as f64 * (WIDTH - 2.0 * DOT_INSET))
            }
        };
        let y = |rate: f64| round(DOT_INSET + (1.0 - rate.clamp(0.0, 1.0)) * (HEIGHT - 2.0 * DOT_INSET));
        let scorers: BTreeSet<&str> = runs
            .iter()
            .filter_map(|run| tallies.get(run.run_id.as_str()))
            .flatten()
            .map(|tally| tally.scorer.as_str())
            .collect();
        let mut lines = Vec::new();
        let overall: Vec<(usize, f64, String)> = runs
            .iter()
            .enumerate()
            .map(|(index, run)| {
                let tip = format!("{} overall: {}", format::utc_minute(run.started_at_ns), percent_of(run.pass_rate));
                (index, run.pass_rate, tip)
            })
            .collect();
        lines.push(("overall".to_owned(), "series-overall".to_owned(), overall));
        for (index, scorer) in scorers.iter().enumerate() {
            let points: Vec<(usize, f64, String)> = runs
                .iter()
                .enumerate()
                .filter_map(|(run_index, run)| {
                    let tally = tallies.get(run.run_id.as_str())?.iter().find(|tally| tally.scorer == *scorer)?;
                    let rate = rate(tally.passed, tally.total);
                    let tip = format!(
                        "{} {scorer}: {} ({}/{})",
                        format::utc_minute(run.started_at_ns),
                        percent_of(rate),
                        tally.passed,
                        tally.total
                    );
                    Some((run_index, rate, tip))
                })
                .collect();
            lines.push(((*scorer).to_owned(), format!("series-{}", index % SERIES_CLASSES), points));
        }
        let lines = lines
            .into_iter()
            .map(|(name, class, points)| RateLine {
                points: points
                    .iter()
                    .map(|(index, rate, _)| format!("{},{}", x(*index), y(*rate)))
                    .collect::<Vec<_>>()
                    .join(" "),
                dots: points.into_iter().map(|(index, rate, tip)| Dot { x: x(index), y: y(rate), tip }).collect(),
                class,
                name,
            })
            .collect();
        Self {
            suite: suite.to_owned(),
            href: params::link("/dashboard/evals", &[("suite", suite.to_owned())]),
            lines,
            first_label: runs.first().map(|run| format::utc_minute(run.started_at_ns)).unwrap_or_default(),
            last_label: runs.last().map(|run| format::utc_minute(run.started_at_ns)).unwrap_or_default(),
            runs: runs.len(),
        }
    }
}

pub struct RunRowView {
    pub href: String,
    pub run_id: String,
    pub started: String,
    pub suite: String,
    pub suite_href: String,
    pub target: String,
    pub mode: String,
    pub total: u64,
    pub passed: u64,
    pub errored: u64,
    pub pass_rate: String,
    pub gate_passed: bool,
    pub duration: String,
}

impl RunRowView {
    fn new(run: &EvalRunRow) -> Self {
        Self {
            href: format!("/dashboard/evals/runs/{}", encode_segment(&run.run_id)),
            run_id: run.run_id.clone(),
            started: format::utc_time(run.started_at_ns),
            suite: run.suite.clone(),
            suite_href: params::link("/dashboard/evals", &[("suite", run.suite.clone())]),
            target: run.target.clone(),
            mode: run.mode.clone(),
            total: run.total,
            passed: run.passed,
            errored: run.errored,
            pass_rate: percent_of(run.pass_rate),
            gate_passed: run.gate_passed,
            duration: format::millis(run.duration_ms),
        }
    }
}

/// A run id as one URL path segment.
fn encode_segment(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>().replace('+', "%20")
}

pub struct OnlineRowView {
    pub agent: String,
    pub scorer: String,
    pub scored: u64,
    pub passed: u64,
    pub pass_rate: String,
    pub errored: u64,
    pub mean_score: String,
}

#[derive(Template)]
#[template(path = "evals.html")]
pub struct EvalsPage {
    chrome: Chrome,
    window: Window,
    suite: String,
    runs_limit: u32,
    charts: Vec<SuiteChart>,
    runs: Vec<RunRowView>,
    online: Vec<OnlineRowView>,
    online_scored: u64,
    online_pass_rate: String,
    /// The tenant a tenant-scoped viewer is limited to (no suite runs then).
    tenant: Option<String>,
}

pub async fn evals(
    State(dashboard): State<Dashboard>,
    Extension(viewer): Extension<Viewer>,
    page_query: Result<Query<PageQuery>, QueryRejection>,
    evals_query: Result<Query<EvalsQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let page_query = sources::query(page_query)?;
    let evals_query = sources::query(evals_query)?;
    let window = Window::parse(&page_query, sources::now_ns())?;
    let suite = sources::text_filter("suite", evals_query.suite.as_deref())?;
    let runs_limit = sources::count_filter("runs", evals_query.runs.as_deref(), DEFAULT_RUNS, MAX_RUNS)?;
    let store = eval_store(&dashboard)?;
    let tenant = viewer.forced_tenant();
    let (runs, tallies, online) = match tenant {
        // Suite runs belong to no tenant: not even queried for a tenant-scoped viewer.
        Some(tenant) => (Vec::new(), Vec::new(), store.online_score_summary(&window.range, Some(tenant)).await?),
        None => {
            let (runs, tallies, online) = tokio::join!(
                store.eval_runs(suite.as_deref(), runs_limit),
                store.eval_scorer_tallies(suite.as_deref(), runs_limit),
                store.online_score_summary(&window.range, None),
            );
            (runs?, tallies?, online?)
        }
    };

    let mut tallies_by_run: BTreeMap<&str, Vec<&EvalScorerTally>> = BTreeMap::new();
    for tally in &tallies {
        tallies_by_run.entry(tally.run_id.as_str()).or_default().push(tally);
    }
    // One chart per suite, its runs oldest first.
    let mut by_suite: BTreeMap<&str, Vec<&EvalRunRow>> = BTreeMap::new();
    for run in runs.iter().rev() {
        by_suite.entry(run.suite.as_str()).or_default().push(run);
    }
    let charts = by_suite.iter().map(|(suite, runs)| SuiteChart::new(suite, runs, &tallies_by_run)).collect();
    let online_scored: u64 = online.iter().map(|row| row.scored).sum();
    let online_passed: u64 = online.iter().map(|row| row.passed).sum();
    let page = EvalsPage {
        chrome: sources::chrome(&dashboard, &viewer, "evals"),
        suite: suite.unwrap_or_default(),
        runs_limit,
        charts,
        runs: runs.iter().map(RunRowView::new).collect(),
        online: online
            .iter()
            .map(|row| OnlineRowView {
                agent: if row.agent.is_empty() { "(none)".to_owned() } else { row.agent.clone() },
                scorer: row.scorer.clone(),
                scored: row.scored,
                passed: row.passed,
                pass_rate: percent_of(rate(row.passed, row.scored)),
                errored: row.errored,
                mean_score: row.mean_score.map_or_else(|| "–".to_owned(), |mean| format!("{mean:.3}")),
            })
            .collect(),
        online_scored,
        online_pass_rate: percent_of(rate(online_passed, online_scored)),
        tenant: tenant.map(str::to_owned),
        window,
    };
    Ok(render(StatusCode::OK, &page))
}

// ----------------------------------------------------------------------------------------
// One run against its baseline
// ----------------------------------------------------------------------------------------

/// How a case's verdict by one scorer moved from the baseline to this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Regressed,
    Fixed,
    Same,
    /// The baseline has no verdict for this case and scorer.
    New,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Regressed => "regressed",
            Self::Fixed => "fixed",
            Self::Same => "same",
            Self::New => "new",
        }
    }
}

pub struct VerdictView {
    pub scorer: String,
    pub passed: bool,
    pub score: String,
    pub reason: String,
    pub error: String,
    pub baseline: String,
    pub change: &'static str,
    pub score_delta: String,
}

pub struct CaseView {
    pub case_id: String,
    pub passed: bool,
    pub changed: bool,
    pub verdicts: Vec<VerdictView>,
    /// What the case sent and got; `None` for runs stored before cases were.
    pub detail: Option<CaseDetail>,
}

/// A case's texts, and its output's line diff against the baseline's when they differ.
pub struct CaseDetail {
    pub input: String,
    pub expected: String,
    pub output: String,
    pub error: String,
    /// Empty when the baseline has no output for the case or the same one.
    pub diff: Vec<DiffLine>,
}

pub struct DiffLine {
    /// `same`, `added` or `removed` (a CSS class).
    pub kind: &'static str,
    pub text: String,
}

impl CaseDetail {
    fn new(case: &EvalCaseRow, baseline: Option<&EvalCaseRow>) -> Self {
        let diff = match baseline {
            Some(old) if old.output != case.output && old.error.is_empty() && case.error.is_empty() => {
                output_diff(&old.output, &case.output)
            }
            _ => Vec::new(),
        };
        Self {
            input: clip(&case.input, MAX_CASE_TEXT_CHARS),
            expected: clip(&case.expected, MAX_CASE_TEXT_CHARS),
            output: clip(&case.output, MAX_CASE_TEXT_CHARS),
            error: clip(&case.error, MAX_CASE_TEXT_CHARS),
            diff,
        }
    }
}

/// The line diff of a case's output from the baseline's (the eval reports' `text_diff`: three
/// lines of context around each change), clipped.
fn output_diff(old: &str, new: &str) -> Vec<DiffLine> {
    let diff = glassbox_evals::diff::text_diff(&clip(old, MAX_CASE_TEXT_CHARS), &clip(new, MAX_CASE_TEXT_CHARS));
    diff.lines()
        .take(MAX_DIFF_LINES)
        .map(|line| {
            let (kind, text) = match line.split_at_checked(2) {
                Some(("- ", text)) => ("removed", text),
                Some(("+ ", text)) => ("added", text),
                Some((_, text)) => ("same", text),
                None => ("same", line),
            };
            DiffLine { kind, text: text.to_owned() }
        })
        .collect()
}

pub struct ScorerView {
    pub scorer: String,
    pub pass_rate: String,
    pub baseline_pass_rate: String,
    pub delta: String,
}

#[derive(Template)]
#[template(path = "eval_run.html")]
pub struct EvalRunPage {
    chrome: Chrome,
    run: RunRowView,
    baseline: Option<RunRowView>,
    baseline_input: String,
    show_all: bool,
    all_href: String,
    failures_href: String,
    cases: Vec<CaseView>,
    failing_cases: usize,
    total_cases: usize,
    regressions: usize,
    fixes: usize,
    scorers: Vec<ScorerView>,
}

fn signed_points(delta: f64) -> String {
    format!("{:+.1} pts", delta * 100.0)
}

pub async fn eval_run(
    State(dashboard): State<Dashboard>,
    Extension(viewer): Extension<Viewer>,
    Path(run_id): Path<String>,
    query: Result<Query<RunQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    viewer.require_admin()?;
    let query = sources::query(query)?;
    let run_id = sources::text_filter("run id", Some(&run_id))?.unwrap_or_default();
    let baseline_id = sources::text_filter("baseline", query.baseline.as_deref())?;
    let show_all = match query.show.as_deref().map(str::trim) {
        None | Some("") | Some("failures") => false,
        Some("all") => true,
        Some(_) => return Err(PageError::BadRequest("the filter `show` must be failures or all".into())),
    };
    let store = eval_store(&dashboard)?;
    let run = store.eval_run(&run_id).await?.ok_or_else(|| PageError::NotFound("no such eval run".into()))?;
    let baseline = match &baseline_id {
        Some(id) => {
            Some(store.eval_run(id).await?.ok_or_else(|| PageError::NotFound("no such baseline eval run".into()))?)
        }
        // The suite's run just before this one.
        None => store
            .eval_runs(Some(&run.suite), BASELINE_LOOKBACK)
            .await?
            .into_iter()
            .find(|other| (other.started_at_ns, &other.run_id) < (run.started_at_ns, &run.run_id)),
    };
    // The baseline's rows (none without a baseline), read in the same round as the run's.
    let baseline_run = baseline.as_ref().map(|baseline| baseline.run_id.as_str());
    let (results, baseline_results, run_cases, baseline_cases) = tokio::join!(
        store.eval_results(&run.run_id),
        async { if let Some(id) = baseline_run { store.eval_results(id).await } else { Ok(Vec::new()) } },
        store.eval_cases(&run.run_id),
        async { if let Some(id) = baseline_run { store.eval_cases(id).await } else { Ok(Vec::new()) } },
    );
    let (results, baseline_results, run_cases, baseline_cases) =
        (results?, baseline_results?, run_cases?, baseline_cases?);
    let case_texts: BTreeMap<&str, &EvalCaseRow> = run_cases.iter().map(|case| (case.case_id.as_str(), case)).collect();
    let baseline_texts: BTreeMap<&str, &EvalCaseRow> =
        baseline_cases.iter().map(|case| (case.case_id.as_str(), case)).collect();
    let before: BTreeMap<(&str, &str), &EvalResultRow> =
        baseline_results.iter().map(|row| ((row.case_id.as_str(), row.scorer.as_str()), row)).collect();

    let mut cases: Vec<CaseView> = Vec::new();
    let (mut regressions, mut fixes) = (0, 0);
    let mut by_case: BTreeMap<&str, Vec<&EvalResultRow>> = BTreeMap::new();
    for row in &results {
        by_case.entry(row.case_id.as_str()).or_default().push(row);
    }
    for (case_id, rows) in &by_case {
        let verdicts: Vec<VerdictView> = rows
            .iter()
            .map(|row| {
                let old = before.get(&(row.case_id.as_str(), row.scorer.as_str()));
                let change = match old {
                    None => Change::New,
                    Some(old) if old.passed && !row.passed => Change::Regressed,
                    Some(old) if !old.passed && row.passed => Change::Fixed,
                    Some(_) => Change::Same,
                };
                VerdictView {
                    scorer: row.scorer.clone(),
                    passed: row.passed,
                    score: format::score(row.score, 3),
                    reason: clip(&row.reason, MAX_REASON_CHARS),
                    error: clip(&row.error, MAX_REASON_CHARS),
                    baseline: match old {
                        None => "–".to_owned(),
                        Some(old) => format!("{} {}", if old.passed { "pass" } else { "fail" }, format::score(old.score, 3)),
                    },
                    change: change.as_str(),
                    score_delta: match (old.and_then(|old| old.score), row.score) {
                        (Some(old), Some(new)) if (new - old).abs() > f64::EPSILON => format!("{:+.3}", new - old),
                        _ => String::new(),
                    },
                }
            })
            .collect();
        regressions += verdicts.iter().filter(|verdict| verdict.change == "regressed").count();
        fixes += verdicts.iter().filter(|verdict| verdict.change == "fixed").count();
        let passed = verdicts.iter().all(|verdict| verdict.passed);
        let changed = verdicts.iter().any(|verdict| matches!(verdict.change, "regressed" | "fixed"));
        let detail = case_texts
            .get(case_id)
            .map(|case| CaseDetail::new(case, baseline_texts.get(case_id).copied()));
        cases.push(CaseView { case_id: (*case_id).to_owned(), passed, changed, verdicts, detail });
    }
    let total_cases = cases.len();
    let failing_cases = cases.iter().filter(|case| !case.passed).count();
    let scorer_rate = |rows: &[EvalResultRow], scorer: &str| {
        let (passed, total) = rows
            .iter()
            .filter(|row| row.scorer == scorer)
            .fold((0_u64, 0_u64), |(passed, total), row| (passed + u64::from(row.passed), total + 1));
        (total > 0).then(|| rate(passed, total))
    };
    let scorer_names: BTreeSet<&str> = results.iter().map(|row| row.scorer.as_str()).collect();
    let scorers = scorer_names
        .iter()
        .map(|scorer| {
            let now = scorer_rate(&results, scorer).unwrap_or(0.0);
            let then = scorer_rate(&baseline_results, scorer);
            ScorerView {
                scorer: (*scorer).to_owned(),
                pass_rate: percent_of(now),
                baseline_pass_rate: then.map_or_else(|| "–".to_owned(), percent_of),
                delta: then.map(|then| signed_points(now - then)).unwrap_or_default(),
            }
        })
        .collect();
    if !show_all {
        cases.retain(|case| !case.passed || case.changed);
    }
    let run_path = format!("/dashboard/evals/runs/{}", encode_segment(&run.run_id));
    let mut keep: Vec<(&str, String)> = Vec::new();
    if let Some(id) = &baseline_id {
        keep.push(("baseline", id.clone()));
    }
    let with_show = |show: &str| {
        let mut pairs = keep.clone();
        pairs.push(("show", show.to_owned()));
        params::link(&run_path, &pairs)
    };
    let page = EvalRunPage {
        chrome: sources::chrome(&dashboard, &viewer, "evals"),
        all_href: with_show("all"),
        failures_href: with_show("failures"),
        run: RunRowView::new(&run),
        baseline: baseline.as_ref().map(RunRowView::new),
        baseline_input: baseline_id.unwrap_or_default(),
        show_all,
        cases,
        failing_cases,
        total_cases,
        regressions,
        fixes,
        scorers,
    };
    Ok(render(StatusCode::OK, &page))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(run_id: &str, started_at_ns: i64, pass_rate: f64) -> EvalRunRow {
        EvalRunRow {
            run_id: run_id.to_owned(),
            suite: "s".to_owned(),
            target: String::new(),
            mode: "replay".to_owned(),
            started_at_ns,
            duration_ms: 1.0,
            total: 4,
            passed: 0,
            errored: 0,
            pass_rate,
            gate_passed: true,
        }
    }

    fn tally(run_id: &str, scorer: &str, passed: u64) -> EvalScorerTally {
        EvalScorerTally { run_id: run_id.to_owned(), scorer: scorer.to_owned(), total: 4, passed, errored: 0 }
    }

    #[test]
    fn pass_rates_are_drawn_from_0_to_100_percent_per_scorer() {
        let (a, b) = (run("a", 1, 1.0), run("b", 2, 0.0));
        let tallies = [tally("a", "judge", 4), tally("b", "judge", 2), tally("b", "contains", 0)];
        let mut by_run: BTreeMap<&str, Vec<&EvalScorerTally>> = BTreeMap::new();
        for tally in &tallies {
            by_run.entry(tally.run_id.as_str()).or_default().push(tally);
        }
        let chart = SuiteChart::new("s", &[&a, &b], &by_run);
        let names: Vec<&str> = chart.lines.iter().map(|line| line.name.as_str()).collect();
        assert_eq!(names, ["overall", "contains", "judge"]);
        let overall = &chart.lines[0];
        assert_eq!((overall.dots[0].x, overall.dots[0].y), (DOT_INSET, DOT_INSET), "100% at the top left");
        assert_eq!((overall.dots[1].x, overall.dots[1].y), (WIDTH - DOT_INSET, HEIGHT - DOT_INSET), "0% at the bottom");
        // A scorer missing from a run has no point there.
        assert_eq!(chart.lines[1].dots.len(), 1);
        assert_eq!(chart.lines[2].dots[1].y, HEIGHT / 2.0, "judge at 50% in run b");
        assert!(chart.lines[2].dots[1].tip.contains("judge: 50.0% (2/4)"));
    }
}
