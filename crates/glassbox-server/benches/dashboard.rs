//! Server-side render time of every dashboard page on a large ClickHouse store: seeds the
//! ClickHouse test fixture (the real engine, chDB) with `BENCH_TRACES` traces (default
//! 100,000, about 10.5 spans each, spread over the last 7 days), then renders each page
//! `BENCH_REPEAT` times (default 5) through the router in-process (no network) and prints
//! min / median / max. Baseline in the same run: a `SELECT 1` round trip to the same store.
//!
//! The Evals, Workflows and Budgets pages get their own seed (`support/dashboard_pages.rs`),
//! scaled with `BENCH_TRACES`.
//!
//! Before timing, it waits for ClickHouse's background merges of the seed to finish
//! (`BENCH_SETTLE_SECS`), so the pages are timed on a settled store, not against a merge storm.
//!
//! Run: `GLASSBOX_PYTHON=... cargo bench -p glassbox-server --bench dashboard`.
//! The fixture serves ClickHouse through one Python process and one chDB session, so the
//! figures are an upper bound of what a real `clickhouse-server` gives.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "../tests/it/dashboard/seed.rs"]
mod seed;
#[path = "support/dashboard_pages.rs"]
mod dashboard_pages;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use glassbox_server::dashboard::{Access, Dashboard};
use glassbox_server::{AgentRegistry, HttpOptions};
use glassbox_store::clickhouse::{ClickHouseBackend, ClickHouseSettings};
use glassbox_store::{Backend, SpanRow, UsageRow};
use glassbox_testkit::ClickHouseFixture;
use tower::ServiceExt as _;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n_traces = env_number("BENCH_TRACES", 100_000);
    let repeat = env_number("BENCH_REPEAT", 5).max(1) as usize;
    let fixture = ClickHouseFixture::start().await.expect("the ClickHouse fixture must start (set GLASSBOX_PYTHON)");
    let database = fixture.fresh_database().await.unwrap();
    let database_name = database.clone();
    let backend = Arc::new(
        ClickHouseBackend::new(ClickHouseSettings {
            url: fixture.url(),
            database,
            request_timeout: Duration::from_secs(600),
            ..ClickHouseSettings::default()
        })
        .unwrap(),
    );
    backend.migrate().await.unwrap();

    let now =
        i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()).unwrap();
    let spacing = 7 * 86_400_000_000_000 / i64::try_from(n_traces).unwrap();
    let mut expect = seed::Expect::default();
    let seeding = Instant::now();
    let (mut n_spans, mut n_usage) = (0_usize, 0_usize);
    let chunk = 20_000_u64;
    let mut first = 0;
    while first < n_traces {
        let last = (first + chunk).min(n_traces);
        let mut spans: Vec<SpanRow> = Vec::new();
        let mut usage: Vec<UsageRow> = Vec::new();
        for index in first..last {
            let rows = seed::trace(index, now, spacing, &mut expect);
            spans.extend(rows.spans);
            usage.extend(rows.usage);
        }
        n_spans += spans.len();
        n_usage += usage.len();
        backend.insert_spans(&spans, &format!("bench-spans-{first}")).await.unwrap();
        backend.insert_usage(&usage, &format!("bench-usage-{first}")).await.unwrap();
        first = last;
    }
    let seeded = seeding.elapsed();
    println!(
        "seeded {n_traces} traces, {n_spans} spans, {n_usage} usage rows over 7 days in {:.1} s ({:.0} spans/s)",
        seeded.as_secs_f64(),
        n_spans as f64 / seeded.as_secs_f64()
    );

    let (sources, more_pages) = dashboard_pages::seed(&backend, now, n_traces).await;

    // A bulk load leaves ClickHouse merging the fresh parts for a while (minutes at a million
    // traces), and on two cores those merges would be timed as page renders: wait until the
    // database has none running (`BENCH_SETTLE_SECS`, default 900, bounds the wait; 0 skips it).
    let settle_limit = Duration::from_secs(env_number("BENCH_SETTLE_SECS", 900));
    let settling = Instant::now();
    let merges_sql = format!("SELECT count() FROM system.merges WHERE database = '{database_name}'");
    while settling.elapsed() < settle_limit {
        let running: u64 = fixture.query_text(&merges_sql).await.unwrap().trim().parse().unwrap_or(0);
        if running == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let parts_sql = format!("SELECT count() FROM system.parts WHERE database = '{database_name}' AND active");
    println!(
        "waited {:.1} s for background merges to finish (limit {} s); {} active parts",
        settling.elapsed().as_secs_f64(),
        settle_limit.as_secs(),
        fixture.query_text(&parts_sql).await.unwrap().trim()
    );
    let dashboard = Dashboard {
        reader: backend.clone(),
        access: Access::OpenDevelopment,
        store_name: "clickhouse",
        sources,
    };
    let app = glassbox_server::router_with_dashboard(AgentRegistry::default(), HttpOptions::default(), dashboard);
    let newest = expect.starts.iter().max().map(|(_, id)| id.clone()).unwrap();
    let pages = [
        ("overview, 24 h, hourly".to_owned(), "/dashboard?range=24h".to_owned()),
        ("overview, 7 d, daily".to_owned(), "/dashboard?range=7d".to_owned()),
        ("traces, 24 h, first page".to_owned(), "/dashboard/traces?range=24h".to_owned()),
        (
            "traces, 7 d, agent + status filter".to_owned(),
            "/dashboard/traces?range=7d&agent=billing-agent&status=error".to_owned(),
        ),
        ("traces, 7 d, min cost filter".to_owned(), "/dashboard/traces?range=7d&min_cost_usd=0.003".to_owned()),
        ("one trace".to_owned(), format!("/dashboard/traces/{newest}")),
        ("cost, 7 d".to_owned(), "/dashboard/cost?range=7d".to_owned()),
        ("cost CSV by model, 7 d".to_owned(), "/dashboard/cost.csv?range=7d&by=model".to_owned()),
        ("latency, 24 h, hourly".to_owned(), "/dashboard/latency?range=24h".to_owned()),
        ("latency, 7 d, daily".to_owned(), "/dashboard/latency?range=7d".to_owned()),
    ]
    .into_iter()
    .chain(more_pages)
    .collect::<Vec<_>>();

    let mut pings = Vec::new();
    for _ in 0..repeat.max(5) {
        let started = Instant::now();
        backend.ping().await.unwrap();
        pings.push(started.elapsed());
    }
    pings.sort();
    println!("\nbaseline: store ping (SELECT 1) median {:.2} ms", ms(pings[pings.len() / 2]));
    println!("\n{:<40} {:>9} {:>9} {:>9} {:>9}", "page (server-side render, ms)", "min", "median", "max", "bytes");
    for (name, path) in &pages {
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..repeat {
            let started = Instant::now();
            let response = app.clone().oneshot(Request::get(path.as_str()).body(Body::empty()).unwrap()).await.unwrap();
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
            times.push(started.elapsed());
            assert!(status.is_success(), "{path}: {status}: {}", String::from_utf8_lossy(&body));
            bytes = body.len();
        }
        times.sort();
        println!(
            "{name:<40} {:>9.1} {:>9.1} {:>9.1} {bytes:>9}",
            ms(times[0]),
            ms(times[times.len() / 2]),
            ms(times[times.len() - 1])
        );
    }
}
