//! Seed data of the Evals, Workflows and Budgets pages, with the figures they must show
//! (computed here from the rows, not by the pages' code): eval suite runs whose verdicts
//! change from run to run, online scores, workflow runs (two of them linked to seeded traces
//! through extra `invoke_workflow` spans, counted into the traces' [`Expect`]), and keys and
//! budgets with usage settled against them. Hostile text goes into eval cases and reasons, a
//! workflow result and error, and a key id.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use glassbox_config::{BudgetConfig, KeyConfig, KeySecret, TenantConfig};
use glassbox_server::access::Access;
use glassbox_store::pricing::PricingTable;
use glassbox_store::{EvalCaseRow, EvalResultRow, EvalRunRow, EvalScoreRow, EvalStore, RunRecord, RunStore, SpanRow, UsageRow};

use super::seed::Expect;

pub const SUITE: &str = "assistant";
pub const OTHER_SUITE: &str = "extractor";
pub const HOSTILE_CASE: &str = "<script>window.pwned=3</script>";
pub const HOSTILE_REASON: &str = "\"><img src=x onerror=\"window.pwned=4\"> ' OR 1=1 --";
pub const HOSTILE_RESULT: &str = r#"{"summary":"</code><script>window.pwned=5</script>"}"#;
pub const HOSTILE_ERROR: &str = "step failed: <iframe src=javascript:window.pwned=7></iframe>";
pub const HOSTILE_OUTPUT: &str = "Sure.\n</pre><script>window.pwned=9</script>";
pub const HOSTILE_KEY: &str = "\"><svg onload=\"window.pwned=6\">";
pub const SECRET: &str = "sk-acme-secret-must-never-render";
const MINUTE_NS: i64 = 60_000_000_000;
const CASES: [&str; 6] = ["greeting", "refund-policy", "order-status", "escalation", "tone", HOSTILE_CASE];
const SCORERS: [&str; 2] = ["contains", "judge"];
/// Runs of the main suite, oldest first.
const N_RUNS: usize = 4;

/// What the three pages must show for the seeded data.
#[derive(Debug, Clone, Default)]
pub struct PagesExpect {
    /// Run ids of the main suite, oldest first.
    pub run_ids: Vec<String>,
    /// Pass rate of each run of the main suite, as the pages format it, oldest first.
    pub pass_rates: Vec<String>,
    /// The latest run against the one before it.
    pub latest_failing_cases: usize,
    pub latest_regressions: usize,
    pub latest_fixes: usize,
    /// The latest run against the oldest (`baseline=`).
    pub regressions_against_oldest: usize,
    /// Per scorer, the pass rate of the latest run.
    pub latest_scorer_rates: BTreeMap<String, String>,
    pub online_scored: u64,
    pub online_pass_rate: String,
    /// Online scores of acme's traces in the last 24 h (all passed).
    pub acme_online_scored: u64,
    /// A trace with one online score: `contains`, 1.0, passed.
    pub scored_trace: String,
    pub workflow_runs: usize,
    pub failed_runs: usize,
    /// (run id, its trace ids)
    pub traced_runs: Vec<(String, Vec<String>)>,
    /// `used / limit` and percent of acme's tokens today, acme-prod's tokens today, globex's
    /// dollars today (over its limit).
    pub acme_day_tokens: String,
    pub acme_day_percent: String,
    pub acme_key_day_tokens: String,
    pub acme_key_day_percent: String,
    pub globex_day_usd: String,
    pub globex_day_percent: String,
    pub key_ids: Vec<String>,
    pub secret_sha256: String,
}

/// Whether `scorer` passes `case` in run `run` (0 = oldest): a fixed pattern where verdicts
/// flip between runs.
fn verdict(run: usize, case: usize, scorer: usize) -> bool {
    !matches!(
        (run, case, scorer),
        (0, 1, 0) | (1, 2, 0) | (1, 1, 1) | (2, 2, 0) | (2, 3, 1) | (3, 4, 0) | (3, 5, 1) | (3, 1, 1) | (0, 4, 1)
    )
}

fn percent(part: usize, whole: usize) -> String {
    format!("{:.1}%", if whole == 0 { 0.0 } else { part as f64 * 100.0 / whole as f64 })
}

fn changes(results: &[Vec<Vec<bool>>], now: usize, then: usize) -> (usize, usize) {
    let mut regressions = 0;
    let mut fixes = 0;
    for (before, after) in results[then].iter().zip(&results[now]) {
        for (was, is) in before.iter().zip(after) {
            match (was, is) {
                (true, false) => regressions += 1,
                (false, true) => fixes += 1,
                _ => {}
            }
        }
    }
    (regressions, fixes)
}

async fn seed_evals(store: &dyn EvalStore, now: i64, usage: &[UsageRow], expect: &mut PagesExpect) {
    let verdicts: Vec<Vec<Vec<bool>>> = (0..N_RUNS)
        .map(|run| {
            (0..CASES.len()).map(|case| (0..SCORERS.len()).map(|scorer| verdict(run, case, scorer)).collect()).collect()
        })
        .collect();
    for (run, cases) in verdicts.iter().enumerate() {
        let run_id = format!("run-{run}-of-{SUITE}");
        let passed = cases.iter().filter(|scorers| scorers.iter().all(|ok| *ok)).count();
        let results: Vec<EvalResultRow> = cases
            .iter()
            .enumerate()
            .flat_map(|(case, scorers)| {
                let run_id = run_id.clone();
                scorers.iter().enumerate().map(move |(scorer, ok)| EvalResultRow {
                    run_id: run_id.clone(),
                    case_id: CASES[case].to_owned(),
                    scorer: SCORERS[scorer].to_owned(),
                    score: Some(if *ok { 1.0 } else { 0.25 }),
                    passed: *ok,
                    reason: if case == 5 { HOSTILE_REASON.to_owned() } else { format!("case {case} scorer {scorer}") },
                    error: String::new(),
                    latency_ms: 3.5,
                })
            })
            .collect();
        let row = EvalRunRow {
            run_id: run_id.clone(),
            suite: SUITE.to_owned(),
            target: "agent support-bot".to_owned(),
            mode: "replay".to_owned(),
            started_at_ns: now - (N_RUNS - run) as i64 * 60 * MINUTE_NS,
            duration_ms: 1234.5,
            total: CASES.len() as u64,
            passed: passed as u64,
            errored: 0,
            pass_rate: passed as f64 / CASES.len() as f64,
            gate_passed: passed * 2 >= CASES.len(),
        };
        // Each case's texts; the middle line of every output names the run, so the run page
        // diffs it against the baseline's.
        let cases: Vec<EvalCaseRow> = CASES
            .iter()
            .enumerate()
            .map(|(case, case_id)| EvalCaseRow {
                run_id: run_id.clone(),
                case_id: (*case_id).to_owned(),
                input: format!("question {case}"),
                output: if case == 5 {
                    format!("{HOSTILE_OUTPUT}\nrun {run}")
                } else {
                    format!("Hello.\nrun {run} answers case {case}\nBye.")
                },
                expected: if case == 0 { r#"{"contains":"Hello"}"#.to_owned() } else { String::new() },
                error: String::new(),
            })
            .collect();
        store.insert_eval_cases(&cases).await.expect("insert eval cases");
        store.insert_eval_run(&row, &results).await.expect("insert eval run");
        expect.run_ids.push(run_id);
        expect.pass_rates.push(percent(passed, CASES.len()));
    }
    let latest = N_RUNS - 1;
    expect.latest_failing_cases = verdicts[latest].iter().filter(|scorers| !scorers.iter().all(|ok| *ok)).count();
    (expect.latest_regressions, expect.latest_fixes) = changes(&verdicts, latest, latest - 1);
    expect.regressions_against_oldest = changes(&verdicts, latest, 0).0;
    for (scorer, name) in SCORERS.iter().enumerate() {
        let passed = verdicts[latest].iter().filter(|scorers| scorers[scorer]).count();
        expect.latest_scorer_rates.insert((*name).to_owned(), percent(passed, CASES.len()));
    }
    // Another suite, one run.
    let other = EvalRunRow {
        run_id: "run-0-of-extractor".to_owned(),
        suite: OTHER_SUITE.to_owned(),
        target: "agent billing-agent".to_owned(),
        mode: "live".to_owned(),
        started_at_ns: now - 30 * MINUTE_NS,
        duration_ms: 99.0,
        total: 1,
        passed: 1,
        errored: 0,
        pass_rate: 1.0,
        gate_passed: true,
    };
    let result = EvalResultRow {
        run_id: other.run_id.clone(),
        case_id: "invoice".to_owned(),
        scorer: "valid_json".to_owned(),
        score: Some(1.0),
        passed: true,
        reason: String::new(),
        error: String::new(),
        latency_ms: 1.0,
    };
    store.insert_eval_run(&other, &[result]).await.expect("insert eval run");

    // Online scores: support-bot 5 (3 pass), billing-agent 2 (1 pass, 1 errored); one row
    // outside the default 24 h range. They score seeded traces: the first three (all passed)
    // traces of tenant acme, the others of other tenants.
    let traces_of = |acme: bool| {
        let mut traces: Vec<String> = Vec::new();
        for row in usage {
            if (row.tenant == "acme") == acme && !traces.contains(&row.trace_id) {
                traces.push(row.trace_id.clone());
            }
        }
        traces
    };
    let (acme_traces, other_traces) = (traces_of(true), traces_of(false));
    let (mut acme_used, mut other_used) = (0_usize, 0_usize);
    // With few seeded traces, unseeded ids stand in (scores of no tenant).
    let mut trace_of = |index: i64| -> String {
        let (traces, used) = if index < 3 { (&acme_traces, &mut acme_used) } else { (&other_traces, &mut other_used) };
        match traces.get(*used) {
            Some(trace) => {
                *used += 1;
                trace.clone()
            }
            None => format!("{index:032x}"),
        }
    };
    let mut scores = Vec::new();
    let mut push = |index: i64, agent: &str, scorer: &str, score: Option<f64>, age_ns: i64| {
        scores.push(EvalScoreRow {
            timestamp_ns: now - age_ns,
            trace_id: trace_of(index),
            span_id: format!("{index:016x}"),
            agent: agent.to_owned(),
            scorer: scorer.to_owned(),
            score,
            passed: score.is_some_and(|score| score >= 0.5),
            reason: HOSTILE_REASON.to_owned(),
            error: if score.is_none() { "judge timed out".to_owned() } else { String::new() },
        });
    };
    for index in 0..5 {
        push(index, "support-bot", "contains", Some(if index < 3 { 1.0 } else { 0.0 }), (index + 1) * MINUTE_NS);
    }
    push(10, "billing-agent", "judge", Some(0.9), 5 * MINUTE_NS);
    push(11, "billing-agent", "judge", None, 6 * MINUTE_NS);
    push(12, "billing-agent", "judge", Some(1.0), 3 * 24 * 60 * MINUTE_NS);
    store.insert_eval_scores(&scores).await.expect("insert eval scores");
    expect.scored_trace = scores[0].trace_id.clone();
    expect.online_scored = 7;
    expect.online_pass_rate = percent(4, 7);
    expect.acme_online_scored = acme_used as u64;
}

fn workflow_span(trace: &SpanRow, run_id: &str, n: u64) -> SpanRow {
    SpanRow {
        timestamp_ns: trace.timestamp_ns + 100_000,
        span_id: format!("{:016x}", 0xfeed_0000_u64 + n),
        parent_span_id: trace.span_id.clone(),
        span_name: "invoke_workflow onboarding".to_owned(),
        span_attributes: vec![
            ("glassbox.workflow.id".into(), "onboarding".into()),
            ("glassbox.workflow.run_id".into(), run_id.to_owned().into()),
        ],
        duration_ns: 50_000,
        status_message: String::new(),
        events: Vec::new(),
        links: Vec::new(),
        ..trace.clone()
    }
}

/// Workflow runs, and the spans that tie the first two to the three newest seeded traces
/// (the second run was resumed once, so it has two traces). `spans` are the seeded spans;
/// the returned spans are to be inserted with them.
pub async fn seed_workflows(
    store: &dyn RunStore,
    spans: &[SpanRow],
    now: i64,
    traces: &mut Expect,
    expect: &mut PagesExpect,
) -> Vec<SpanRow> {
    let newest = traces.newest_first();
    let root = |trace_id: &str| {
        spans
            .iter()
            .find(|span| span.trace_id == trace_id && span.parent_span_id.is_empty())
            .expect("root span")
            .clone()
    };
    let mut extra = Vec::new();
    let links = [("wf-run-0", vec![newest[0].clone()]), ("wf-run-1", vec![newest[1].clone(), newest[2].clone()])];
    for (run_id, trace_ids) in &links {
        for trace_id in trace_ids {
            extra.push(workflow_span(&root(trace_id), run_id, extra.len() as u64));
            *traces.spans_by_trace.get_mut(trace_id).expect("seeded trace") += 1;
        }
        expect.traced_runs.push(((*run_id).to_owned(), trace_ids.clone()));
    }
    let runs = [
        ("wf-run-0", "success", r#"{"welcome":"sent"}"#, ""),
        ("wf-run-1", "success", HOSTILE_RESULT, ""),
        ("wf-run-2", "failed", "", HOSTILE_ERROR),
        ("wf-run-3", "running", "", ""),
        ("wf-run-4", "suspended", "", ""),
    ];
    for (index, (run_id, status, result, error)) in runs.iter().enumerate() {
        let created = now - (index as i64 + 2) * 10 * MINUTE_NS;
        let record = RunRecord {
            run_id: (*run_id).to_owned(),
            workflow_id: "onboarding".to_owned(),
            status: (*status).to_owned(),
            input: r#"{"user":"u1"}"#.to_owned(),
            snapshot: "{}".to_owned(),
            result: (*result).to_owned(),
            error: (*error).to_owned(),
            created_ns: created,
            updated_ns: created + 2_500_000_000,
            version: 3,
        };
        store.save_run(&record).await.expect("save run");
    }
    // A run older than the default range.
    let old = RunRecord {
        run_id: "wf-run-old".to_owned(),
        workflow_id: "onboarding".to_owned(),
        status: "failed".to_owned(),
        input: "{}".to_owned(),
        snapshot: "{}".to_owned(),
        result: String::new(),
        error: "old".to_owned(),
        created_ns: now - 3 * 24 * 60 * MINUTE_NS,
        updated_ns: now - 3 * 24 * 60 * MINUTE_NS,
        version: 1,
    };
    store.save_run(&old).await.expect("save run");
    expect.workflow_runs = runs.len();
    expect.failed_runs = 1;
    extra
}

fn usage(tenant: &str, key: &str, input_tokens: u64, output_tokens: u64, cost_nano_usd: i64) -> UsageRow {
    UsageRow {
        timestamp_ns: super::now_ns(),
        trace_id: "f".repeat(32),
        span_id: "e".repeat(16),
        tenant: tenant.to_owned(),
        api_key_id: key.to_owned(),
        agent: "support-bot".to_owned(),
        workflow: String::new(),
        provider: "openai".to_owned(),
        model: "gpt-4o-mini".to_owned(),
        input_tokens,
        output_tokens,
        cached_input_tokens: 0,
        reasoning_tokens: 0,
        cost_nano_usd,
        cost_unknown: false,
        latency_ns: 1_000_000,
        time_to_first_token_ns: 0,
        status: "ok".to_owned(),
        error_type: String::new(),
    }
}

/// Keys and budgets: acme (10 000 tokens a day) with key acme-prod (2 000 a day), globex
/// ($0.01 a day) with key globex-ci, and a hostile key id of tenant initech.
pub fn access(expect: &mut PagesExpect) -> Arc<Access> {
    use sha2::{Digest, Sha256};
    let hash = |secret: &str| Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect::<String>();
    let tenant = |id: &str, budget: BudgetConfig| TenantConfig { id: id.to_owned(), rate_limit: None, budget };
    let key = |id: &str, tenant: &str, secret: &str, budget: BudgetConfig| KeyConfig {
        id: id.to_owned(),
        tenant: tenant.to_owned(),
        secret: KeySecret::Sha256(hash(secret)),
        agents: None,
        workflows: None,
        rate_limit: None,
        budget,
    };
    let tenants = [
        tenant(
            "acme",
            BudgetConfig {
                daily_tokens: Some(10_000),
                daily_usd: Some(1.0),
                monthly_tokens: Some(200_000),
                monthly_usd: None,
            },
        ),
        tenant("globex", BudgetConfig { daily_usd: Some(0.01), ..BudgetConfig::default() }),
    ];
    let keys = [
        key("acme-prod", "acme", SECRET, BudgetConfig { daily_tokens: Some(2_000), ..BudgetConfig::default() }),
        key("globex-ci", "globex", "sk-globex-other", BudgetConfig::default()),
        key(HOSTILE_KEY, "initech", "sk-initech-third", BudgetConfig::default()),
    ];
    let access = Access::build(&tenants, &keys, &[], &|_| None, Arc::new(PricingTable::shipped())).expect("keys");
    access.settle(&usage("acme", "acme-prod", 1_200, 300, 250_000_000));
    access.settle(&usage("globex", "globex-ci", 100, 50, 20_000_000));
    expect.acme_day_tokens = "1500 / 10000".to_owned();
    expect.acme_day_percent = "15.0%".to_owned();
    expect.acme_key_day_tokens = "1500 / 2000".to_owned();
    expect.acme_key_day_percent = "75.0%".to_owned();
    expect.globex_day_usd = "$0.020000 / $0.010000".to_owned();
    expect.globex_day_percent = "200.0%".to_owned();
    expect.key_ids = vec!["acme-prod".to_owned(), "globex-ci".to_owned(), HOSTILE_KEY.to_owned()];
    expect.secret_sha256 = hash(SECRET);
    Arc::new(access)
}

/// Seeds the eval store (online scores of the seeded traces whose `usage` rows are given)
/// and returns the keys and budgets.
pub async fn seed_evals_and_access(
    store: &dyn EvalStore,
    now: i64,
    usage: &[UsageRow],
    expect: &mut PagesExpect,
) -> Arc<Access> {
    seed_evals(store, now, usage, expect).await;
    access(expect)
}
