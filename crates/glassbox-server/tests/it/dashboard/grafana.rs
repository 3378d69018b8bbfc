//! `dashboards/grafana/*.json`: every panel's SQL, with Grafana's ClickHouse macros expanded
//! as the data source plugin does, runs against the migrated schema in the real ClickHouse
//! engine on seeded data, and the headline figures match the data.

use std::path::Path;
use std::sync::Arc;

use glassbox_store::Backend;
use glassbox_store::clickhouse::{ClickHouseBackend, ClickHouseSettings};
use glassbox_testkit::ClickHouseFixture;
use serde_json::Value;

use super::now_ns;
use super::seed::{self, Expect};

/// Expands the plugin's macros for the last 24 hours and the dashboard variables.
fn expand(sql: &str, database: &str, trace_id: &str) -> String {
    let mut out = sql
        .replace("${database}", database)
        .replace("${trace_id}", trace_id)
        .replace("${agent}", "")
        .replace("$__fromTime", "toDateTime(now() - INTERVAL 1 DAY)")
        .replace("$__toTime", "toDateTime(now() + INTERVAL 1 MINUTE)");
    for (name, expansion) in [
        ("$__timeFilter(", "({0} >= now() - INTERVAL 1 DAY AND {0} <= now() + INTERVAL 1 MINUTE)"),
        ("$__timeInterval(", "toStartOfInterval(toDateTime({0}), INTERVAL 300 second)"),
    ] {
        while let Some(start) = out.find(name) {
            let args_start = start + name.len();
            let end = args_start + out[args_start..].find(')').expect("macro closes");
            let column = out[args_start..end].trim().to_owned();
            out.replace_range(start..=end, &expansion.replace("{0}", &column));
        }
    }
    assert!(!out.contains('$'), "an unexpanded macro or variable in: {out}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_grafana_panel_query_runs_on_the_schema_and_counts_right() {
    let fixture = ClickHouseFixture::start().await.expect("the ClickHouse fixture must start (run ./tests/run.sh)");
    let database = fixture.fresh_database().await.expect("database");
    let backend = Arc::new(
        ClickHouseBackend::new(ClickHouseSettings {
            url: fixture.url(),
            database: database.clone(),
            ..ClickHouseSettings::default()
        })
        .expect("clickhouse"),
    );
    backend.migrate().await.expect("migrate");
    let mut expect = Expect::default();
    let now = now_ns();
    let (mut spans, mut usage) = (Vec::new(), Vec::new());
    for index in 0..60 {
        let rows = seed::trace(index, now, 20 * 60_000_000_000, &mut expect);
        spans.extend(rows.spans);
        usage.extend(rows.usage);
    }
    backend.insert_spans(&spans, "grafana-spans").await.expect("spans");
    backend.insert_usage(&usage, "grafana-usage").await.expect("usage");
    let trace_id = expect.newest_first()[0].clone();

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dashboards/grafana");
    let mut n_queries = 0;
    let mut files: Vec<_> =
        std::fs::read_dir(&dir).expect("dashboards/grafana").map(|entry| entry.expect("entry").path()).collect();
    files.sort();
    assert_eq!(files.len(), 4, "overview, cost, latency, traces: {files:?}");
    for file in files {
        let dashboard: Value = serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("valid JSON");
        assert!(dashboard["uid"].as_str().is_some_and(|uid| uid.starts_with("glassbox-")), "{file:?}");
        for panel in dashboard["panels"].as_array().expect("panels") {
            for target in panel["targets"].as_array().expect("targets") {
                assert_eq!(target["datasource"]["type"], "grafana-clickhouse-datasource");
                let sql = expand(target["rawSql"].as_str().expect("rawSql"), &database, &trace_id);
                let result = fixture
                    .query_text(&format!("{sql} FORMAT TSV"))
                    .await
                    .unwrap_or_else(|error| panic!("{file:?} panel {:?} fails: {error}\n{sql}", panel["title"]));
                n_queries += 1;
                let title = panel["title"].as_str().unwrap_or_default();
                if title == "Requests" {
                    assert_eq!(result.trim(), expect.traces.to_string(), "API request spans in the last 24 hours");
                }
                if title == "Model calls" {
                    assert_eq!(result.trim(), expect.calls.to_string());
                }
                if title == "Model calls of the trace" || title == "Trace ${trace_id}" {
                    assert!(!result.trim().is_empty(), "{title} finds the trace");
                }
            }
        }
    }
    assert!(n_queries >= 25, "{n_queries} queries checked");
}
