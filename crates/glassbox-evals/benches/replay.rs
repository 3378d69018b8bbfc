//! Replaying a 1,000-case suite with three deterministic scorers (exact_match, contains,
//! tokens): the time CI spends per suite run. Baseline in the same run: the same suite live
//! against the in-process mock provider (no recordings to load or hash).
//!
//! `cargo bench -p glassbox-evals --bench replay` (`BENCH_CASES`, `BENCH_ROUNDS` change the
//! defaults of 1000 cases and 5 rounds). Prints figures; asserts nothing about speed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use glassbox_core::{Agent, LanguageModel};
use glassbox_evals::runner::Quiet;
use glassbox_evals::{Layer, Mode, Suite, Targets, run_suite};
use glassbox_store::pricing::PricingTable;

struct Mock;

impl Targets for Mock {
    fn agent(&self, id: &str, layer: &Layer) -> Result<Agent, String> {
        let model: Arc<dyn LanguageModel> = Arc::new(glassbox_providers::MockModel::new("mock-echo").unwrap());
        Agent::builder(id, layer.model(model)).instructions("Answer briefly.").build().map_err(|e| e.to_string())
    }
    fn model(&self, id: &str, _layer: &Layer) -> Result<Arc<dyn LanguageModel>, String> {
        Err(format!("no model {id}"))
    }
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

fn stats(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    (times[0].as_secs_f64(), times[times.len() / 2].as_secs_f64())
}

fn main() {
    // `cargo test --benches` and nextest list benches: answer at once.
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let n_cases = env_number("BENCH_CASES", 1000);
    let rounds = env_number("BENCH_ROUNDS", 5).max(1);
    let dir = tempfile::tempdir().unwrap();
    let rows: String = (0..n_cases)
        .map(|i| format!("{{\"id\": \"case-{i:05}\", \"input\": \"question {i} about the product\", \"expected\": \"You said: question {i} about the product\"}}\n"))
        .collect();
    std::fs::write(dir.path().join("cases.jsonl"), rows).unwrap();
    let suite_path = dir.path().join("bench.toml");
    std::fs::write(
        &suite_path,
        "target = { agent = \"bench\" }\ndataset = \"cases.jsonl\"\nconcurrency = 8\n\
         [[scorers]]\ntype = \"exact_match\"\n[[scorers]]\ntype = \"contains\"\nvalue = \"question\"\n[[scorers]]\ntype = \"tokens\"\nmax_tokens = 500\n",
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let pricing = PricingTable::shipped();
    runtime.block_on(async {
        let suite = Suite::load(&suite_path).unwrap();
        let (_, sink) = run_suite(&suite, &Mock, Mode::Record, &pricing, &Quiet, None).await.unwrap();
        let n_recorded = sink.unwrap().write(&suite.recordings_path).unwrap();
        let size = std::fs::metadata(&suite.recordings_path).unwrap().len();

        let mut replay_times = Vec::with_capacity(rounds);
        let mut live_times = Vec::with_capacity(rounds);
        let mut load_times = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let started = Instant::now();
            let suite = Suite::load(&suite_path).unwrap();
            let (report, _) = run_suite(&suite, &Mock, Mode::Replay, &pricing, &Quiet, None).await.unwrap();
            replay_times.push(started.elapsed());
            assert_eq!(report.passed, n_cases, "every replayed case passes");

            let started = Instant::now();
            glassbox_evals::recording::Recordings::load(&suite.recordings_path).unwrap();
            load_times.push(started.elapsed());

            let started = Instant::now();
            let (report, _) = run_suite(&suite, &Mock, Mode::Live, &pricing, &Quiet, None).await.unwrap();
            live_times.push(started.elapsed());
            assert_eq!(report.passed, n_cases);
        }
        let (replay_min, replay_median) = stats(replay_times);
        let (live_min, live_median) = stats(live_times);
        let (load_min, load_median) = stats(load_times);
        println!("replay benchmark: {n_cases} cases, 3 deterministic scorers, {rounds} rounds, {n_recorded} recordings ({:.1} MiB)", size as f64 / 1048576.0);
        println!("  replay (load suite + recordings, run, score, gate): min {replay_min:.3} s, median {replay_median:.3} s ({:.0} cases/s)", n_cases as f64 / replay_median);
        println!("    of which loading the recordings:                  min {load_min:.3} s, median {load_median:.3} s");
        println!("  baseline: live against the in-process mock model:   min {live_min:.3} s, median {live_median:.3} s");
        println!("  replay / live: {:.2}x; aim: replay under 5 s", replay_median / live_median);
    });
}
