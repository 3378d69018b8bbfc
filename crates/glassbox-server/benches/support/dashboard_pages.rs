//! Seed data of the Evals, Workflows and Budgets pages for the dashboard benchmark, scaled
//! with the traces: `n_traces / 1000` suite runs (at least 20) of two suites, 100 cases and 3
//! scorers each; online scores of every tenth trace by 2 scorers; `n_traces / 100` workflow
//! runs (at least 100) over the last 7 days, each with its `invoke_workflow` span; 50 keys
//! of 10 tenants with usage settled. Returns the page sources and the pages to time.

use std::sync::Arc;

use glassbox_config::{BudgetConfig, KeyConfig, KeySecret, TenantConfig};
use glassbox_server::access::Access;
use glassbox_server::dashboard::PageSources;
use glassbox_store::clickhouse::ClickHouseBackend;
use glassbox_store::pricing::PricingTable;
use glassbox_store::{
    Backend, EvalResultRow, EvalRunRow, EvalScoreRow, EvalStore, RunRecord, RunStore, SpanRow, StatusCode, UsageRow,
};

const MINUTE_NS: i64 = 60_000_000_000;

pub async fn seed(backend: &Arc<ClickHouseBackend>, now: i64, n_traces: u64) -> (PageSources, Vec<(String, String)>) {
    // Suite runs, newest last, evenly over 7 days.
    let n_runs = (n_traces / 1000).max(20);
    let mut latest_run = String::new();
    for run in 0..n_runs {
        let suite = if run % 2 == 0 { "assistant" } else { "extractor" };
        let run_id = format!("bench-run-{run:06}");
        let mut passed = 0;
        let mut results = Vec::with_capacity(300);
        for case in 0..100_u64 {
            let mut all = true;
            for (index, scorer) in ["contains", "judge", "valid_json"].iter().enumerate() {
                let ok = !(case * 7 + run * 3 + index as u64).is_multiple_of(10);
                all &= ok;
                results.push(EvalResultRow {
                    run_id: run_id.clone(),
                    case_id: format!("case-{case:03}"),
                    scorer: (*scorer).to_owned(),
                    score: Some(if ok { 1.0 } else { 0.2 }),
                    passed: ok,
                    reason: format!("case {case} scored by {scorer}"),
                    error: String::new(),
                    latency_ms: 12.0,
                });
            }
            passed += u64::from(all);
        }
        let row = EvalRunRow {
            run_id: run_id.clone(),
            suite: suite.to_owned(),
            target: "agent support-bot".to_owned(),
            mode: "replay".to_owned(),
            started_at_ns: now
                - i64::try_from(n_runs - run).unwrap() * 7 * 24 * 60 * MINUTE_NS / i64::try_from(n_runs).unwrap(),
            duration_ms: 2000.0,
            total: 100,
            passed,
            errored: 0,
            pass_rate: passed as f64 / 100.0,
            gate_passed: passed >= 50,
        };
        backend.insert_eval_run(&row, &results).await.unwrap();
        latest_run = run_id;
    }

    // Online scores of every tenth trace, over 7 days.
    let n_scored = n_traces / 10;
    let spacing = 7 * 24 * 60 * MINUTE_NS / i64::try_from(n_scored.max(1)).unwrap();
    let agents = ["support-bot", "research-assistant", "billing-agent"];
    let mut scores = Vec::new();
    for index in 0..n_scored {
        for scorer in ["contains", "judge"] {
            let value = ((index * 13) % 10) as f64 / 10.0;
            scores.push(EvalScoreRow {
                timestamp_ns: now - i64::try_from(index).unwrap() * spacing,
                trace_id: format!("{index:032x}"),
                span_id: format!("{index:016x}"),
                agent: agents[(index % 3) as usize].to_owned(),
                scorer: scorer.to_owned(),
                score: Some(value),
                passed: value >= 0.3,
                reason: String::new(),
                error: String::new(),
            });
        }
        if scores.len() >= 20_000 {
            backend.insert_eval_scores(&scores).await.unwrap();
            scores.clear();
        }
    }
    backend.insert_eval_scores(&scores).await.unwrap();

    // Workflow runs with their spans.
    let n_workflow_runs = (n_traces / 100).max(100);
    let spacing = 7 * 24 * 60 * MINUTE_NS / i64::try_from(n_workflow_runs).unwrap();
    let statuses = ["success", "success", "success", "failed", "running", "suspended"];
    let mut spans = Vec::new();
    for index in 0..n_workflow_runs {
        let created = now - i64::try_from(index).unwrap() * spacing - MINUTE_NS;
        let run_id = format!("bench-wf-{index:06}");
        backend
            .save_run(&RunRecord {
                run_id: run_id.clone(),
                workflow_id: "onboarding".to_owned(),
                status: statuses[(index % 6) as usize].to_owned(),
                input: "{}".to_owned(),
                snapshot: "{}".to_owned(),
                result: r#"{"ok":true}"#.to_owned(),
                error: String::new(),
                created_ns: created,
                updated_ns: created + 3_000_000_000,
                version: 1,
            })
            .await
            .unwrap();
        spans.push(SpanRow {
            timestamp_ns: created + 1_000_000,
            trace_id: format!("{:032x}", 0xbeef_0000_0000_u64 + index),
            span_id: format!("{index:016x}"),
            parent_span_id: String::new(),
            trace_state: String::new(),
            span_name: "invoke_workflow onboarding".to_owned(),
            span_kind: "Internal".to_owned(),
            service_name: "glassbox".to_owned(),
            resource_attributes: Vec::new(),
            scope_name: "glassbox-core".to_owned(),
            scope_version: "0.1.0".to_owned(),
            span_attributes: vec![
                ("glassbox.workflow.id".into(), "onboarding".into()),
                ("glassbox.workflow.run_id".into(), run_id.into()),
            ],
            duration_ns: 2_000_000_000,
            status_code: StatusCode::Ok,
            status_message: String::new(),
            events: Vec::new(),
            links: Vec::new(),
        });
    }
    backend.insert_spans(&spans, "bench-workflow-spans").await.unwrap();

    // 50 keys of 10 tenants, with limits and some usage.
    let tenants: Vec<TenantConfig> = (0..10)
        .map(|tenant| TenantConfig {
            id: format!("tenant-{tenant}"),
            rate_limit: None,
            budget: BudgetConfig { daily_tokens: Some(1_000_000), daily_usd: Some(10.0), ..BudgetConfig::default() },
        })
        .collect();
    let keys: Vec<KeyConfig> = (0..50)
        .map(|key| KeyConfig {
            id: format!("key-{key}"),
            tenant: format!("tenant-{}", key % 10),
            secret: KeySecret::Sha256(format!("{key:064x}")),
            agents: None,
            workflows: None,
            rate_limit: None,
            budget: BudgetConfig { monthly_tokens: Some(5_000_000), ..BudgetConfig::default() },
        })
        .collect();
    let access = Access::build(&tenants, &keys, &[], &|_| None, Arc::new(PricingTable::shipped())).unwrap();
    for key in 0..50 {
        access.settle(&UsageRow {
            timestamp_ns: now,
            trace_id: "f".repeat(32),
            span_id: "e".repeat(16),
            tenant: format!("tenant-{}", key % 10),
            api_key_id: format!("key-{key}"),
            agent: "support-bot".to_owned(),
            workflow: String::new(),
            provider: "openai".to_owned(),
            model: "gpt-4o-mini".to_owned(),
            input_tokens: 1000 * key,
            output_tokens: 100,
            cached_input_tokens: 0,
            reasoning_tokens: 0,
            cost_nano_usd: 1_000_000,
            cost_unknown: false,
            latency_ns: 1,
            time_to_first_token_ns: 0,
            status: "ok".to_owned(),
            error_type: String::new(),
        });
    }
    println!(
        "seeded {n_runs} eval runs ({} results), {} online scores, {n_workflow_runs} workflow runs, 50 keys",
        n_runs * 300,
        n_scored * 2
    );

    let sources = PageSources {
        evals: Some(backend.clone() as Arc<dyn EvalStore>),
        runs: Some(backend.clone() as Arc<dyn RunStore>),
        access: Some(Arc::new(access)),
    };
    let pages = vec![
        ("evals, 30 runs, 24 h online".to_owned(), "/dashboard/evals?range=24h".to_owned()),
        ("evals, up to 500 runs, 7 d online".to_owned(), "/dashboard/evals?range=7d&runs=500".to_owned()),
        ("one eval run vs its baseline".to_owned(), format!("/dashboard/evals/runs/{latest_run}?show=all")),
        ("workflows, 24 h".to_owned(), "/dashboard/workflows?range=24h".to_owned()),
        ("workflows, 7 d, 1000 runs".to_owned(), "/dashboard/workflows?range=7d&limit=1000".to_owned()),
        ("budgets and keys".to_owned(), "/dashboard/budgets".to_owned()),
    ];
    (sources, pages)
}
