//! The server SIGKILLed under load, twice over: ClickHouse dies midway so rows go to the spool,
//! then the server is killed with requests in flight. After both restart, the spool is
//! replayed exactly once, no row is doubled, and every acknowledged request has its complete
//! trace (its three spans) and its usage row, each exactly once: rows the writer still held in
//! memory come back from the journal (`span_journal`, whose segments carry the usage rows too),
//! rows already stored or spooled are not written again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use glassbox_testkit::ClickHouseFixture;

use crate::faults::{spooled_rows, write_spool_config};
use crate::faults_outage::{collect, spawn_clients, stored, usage_per_trace, wait_for};
use crate::helpers::start_server;

const PROVIDER_KEY: &str = "sk-fault-kill-provider-key-0a1b2c3d";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_under_load_replays_its_spool_once_and_keeps_every_acknowledged_trace_and_usage_row() {
    killed_under_load().await;
}

async fn killed_under_load() {
    let mock = glassbox_mockllm::MockLlm::start().await.unwrap();
    let mut fixture = ClickHouseFixture::start().await.expect("the ClickHouse fixture must start (run ./tests/run.sh)");
    let database = fixture.fresh_database().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let config = dir.path().join("glassbox.toml");
    write_spool_config(&config, &fixture.url(), &database, &spool, &mock.openai_base_url(), "kill-test-model");
    let envs = [("FAULT_TEST_PROVIDER_KEY", PROVIDER_KEY)];
    let mut server = start_server(&config, &envs).await;

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let workers = spawn_clients(server.url.clone(), Arc::clone(&stop), Arc::clone(&done), Duration::from_millis(5));
    wait_for(&done, 300).await;
    fixture.kill().await;
    let killed_at = done.load(Ordering::SeqCst);
    wait_for(&done, killed_at + 300).await;
    // Both kinds of rows must have reached the spool before the kill (a condition, not a delay).
    for _ in 0..600 {
        let (spans, usage) = spooled_rows(&spool);
        if spans > 0 && usage > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // SIGKILL with the clients still sending: some requests are cut mid-flight.
    server.child.start_kill().unwrap();
    let _ = server.child.wait().await;
    stop.store(true, Ordering::SeqCst);
    let seen = collect(workers).await;
    assert!(seen.refused.is_empty(), "non-2xx answers: {:?}", &seen.refused[..seen.refused.len().min(5)]);
    let n = seen.acknowledged.len() as u64;
    let cut = seen.unanswered.len() as u64;

    // What survived the kill: the rows ClickHouse took before it died, and the spool's batches.
    let spooled = spooled_rows(&spool);
    let span_batches = spooled_batches(&spool, "spans");
    let usage_batches = spooled_batches(&spool, "usage");
    fixture.restart().await.unwrap();
    let before = stored(&fixture, &database).await.expect("the store answers");
    assert!(spooled.0 > 0 && spooled.1 > 0, "the ClickHouse outage sent rows to the spool: {spooled:?}");
    // A batch ClickHouse committed just as it was killed is also in the spool (its answer
    // never came): its replay carries the same deduplication token and must add nothing.
    let already = (
        present(&fixture, &database, "spans", &span_batches).await,
        present(&fixture, &database, "usage", &usage_batches).await,
    );

    let journaled = journal_rows(&spool.join("journal"));
    let killed_segments: Vec<std::path::PathBuf> = std::fs::read_dir(spool.join("journal"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .collect();
    let left_over = || killed_segments.iter().filter(|path| path.exists()).count();
    let mut restarted = start_server(&config, &envs).await;
    // Spans and usage rows: what ClickHouse had plus the spool, each once, plus the rows the
    // journals bring back; every acknowledged request has its whole trace and one usage row.
    let expected_spans_at_least = before.0 + spooled.0 - already.0;
    let expected_usage_at_least = before.1 + spooled.1 - already.1;
    let mut last = before;
    let mut per_trace = std::collections::HashMap::new();
    let mut incomplete = Vec::new();
    for _ in 0..300 {
        last = stored(&fixture, &database).await.expect("the store answers");
        per_trace = usage_per_trace(&fixture, &database).await;
        incomplete = incomplete_traces(&fixture, &database, &seen.acknowledged).await;
        let all_acknowledged = seen.acknowledged.iter().all(|trace| per_trace.contains_key(trace.as_str()));
        if incomplete.is_empty()
            && all_acknowledged
            && spooled_rows(&spool) == (0, 0)
            && left_over() == 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Counted again: rows may have landed between the counts and the checks above.
    last = stored(&fixture, &database).await.unwrap_or(last);
    let (spans, usage, distinct_spans, distinct_usage, _traces) = last;
    let lost: Vec<&String> = seen.acknowledged.iter().filter(|trace| !per_trace.contains_key(trace.as_str())).collect();
    eprintln!(
        "acknowledged {n}, cut by the kill {cut}; rows in ClickHouse before it died {before:?}, spooled {spooled:?} \
         (already stored {already:?}), journaled (spans, usage rows) left by the killed server {journaled:?}; after the \
         restart: {spans} spans, {usage} usage rows, {} acknowledged requests without a usage row, {} without their \
         complete trace",
        lost.len(),
        incomplete.len()
    );
    assert!(
        spans >= expected_spans_at_least,
        "spans {spans} < before the kill + spooled {expected_spans_at_least} (before {before:?}, spooled {spooled:?}, of which already stored {already:?})"
    );
    assert!(
        incomplete.is_empty(),
        "{} of {n} acknowledged requests lack spans or have doubled ones: {:?}",
        incomplete.len(),
        &incomplete[..incomplete.len().min(10)]
    );
    assert!(usage >= expected_usage_at_least, "usage rows {usage} < before + spooled {expected_usage_at_least}");
    assert_eq!(spooled_rows(&spool), (0, 0), "the spool is empty once replayed");
    assert_eq!(left_over(), 0, "the killed server's journal segments are recovered and deleted: {killed_segments:?}");
    assert_eq!(spans, distinct_spans, "no span doubled");
    assert_eq!(usage, distinct_usage, "no usage row doubled");
    let doubled: Vec<_> = per_trace.iter().filter(|(_, rows)| **rows > 1).collect();
    assert!(doubled.is_empty(), "traces with more than one usage row: {doubled:?}");
    assert!(lost.is_empty(), "{} of {n} acknowledged requests lost their usage row: {:?}", lost.len(), &lost[..lost.len().min(10)]);
    assert!(usage <= n + cut, "usage rows {usage} > acknowledged {n} + cut {cut}");
    for table in ["spans", "usage"] {
        let dump = fixture.query_text(&format!("SELECT * FROM {database}.{table} FORMAT TSV")).await.unwrap();
        assert!(!dump.contains(PROVIDER_KEY), "the provider key leaked into {table}");
    }
    restarted.child.start_kill().unwrap();
    let _ = restarted.child.wait().await;
}

/// The batches of `kind` in the spool: file name and the span ids of its rows.
fn spooled_batches(spool: &std::path::Path, kind: &str) -> Vec<(String, Vec<String>)> {
    let mut batches = Vec::new();
    for entry in std::fs::read_dir(spool).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(&format!("{kind}-")) || !name.ends_with(".jsonl") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let ids = text
            .lines()
            .skip(1)
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter_map(|row| row["span_id"].as_str().map(str::to_owned))
            .collect();
        batches.push((name, ids));
    }
    batches.sort();
    batches
}

/// How many rows of `batches` `table` holds already.
async fn present(fixture: &ClickHouseFixture, database: &str, table: &str, batches: &[(String, Vec<String>)]) -> u64 {
    let mut total = 0;
    for (name, span_ids) in batches {
        let list = span_ids.iter().map(|id| format!("'{id}'")).collect::<Vec<_>>().join(",");
        let found = fixture
            .query_text(&format!("SELECT count() FROM {database}.{table} WHERE SpanId IN ({list}) FORMAT TSV"))
            .await
            .unwrap_or_else(|error| panic!("counting the rows of {name} in {table}: {error}"));
        let found: u64 = found.trim().parse().unwrap_or_else(|_| panic!("not a count: {found:?}"));
        assert!(found == 0 || found == span_ids.len() as u64, "{name}: {found} of its {} rows are in {table}: a batch is all or nothing", span_ids.len());
        if found > 0 {
            eprintln!("spooled batch {name}: {} rows, {found} stored before the replay", span_ids.len());
        }
        total += found;
    }
    total
}

/// The spans every acknowledged `echo` request has, by name, each exactly once.
fn complete_trace(route_span: &str) -> Vec<String> {
    vec![route_span.to_owned(), "invoke_agent echo".to_owned(), "chat kill-test-model".to_owned()]
}

/// The acknowledged traces that do not hold exactly the spans of [`complete_trace`] once each
/// (`POST /api/agents/{agent_id}/generate` or `…/stream` as the request's own span).
async fn incomplete_traces(fixture: &ClickHouseFixture, database: &str, acknowledged: &[String]) -> Vec<String> {
    let text = fixture
        .query_text(&format!(
            "SELECT TraceId, arrayStringConcat(arraySort(groupArray(SpanName)), '|') FROM {database}.spans GROUP BY TraceId FORMAT TSV"
        ))
        .await
        .unwrap();
    let per_trace: std::collections::HashMap<&str, Vec<String>> = text
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(trace, names)| (trace, names.split('|').map(str::to_owned).collect()))
        .collect();
    acknowledged
        .iter()
        .filter_map(|trace| {
            let mut names = per_trace.get(trace.as_str()).cloned().unwrap_or_default();
            names.sort();
            let complete = ["generate", "stream"].iter().any(|route| {
                let mut wanted = complete_trace(&format!("POST /api/agents/{{agent_id}}/{route}"));
                wanted.sort();
                names == wanted
            });
            (!complete).then(|| format!("{trace}: {names:?}"))
        })
        .collect()
}

/// (span rows, usage rows) in the journal segments of `dir`: the span journal's records
/// (spans and usage rows since one `write` carries both) and any usage JSON lines.
fn journal_rows(dir: &std::path::Path) -> (usize, usize) {
    let mut rows = (0, 0);
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let bytes = std::fs::read(entry.path()).unwrap_or_default();
        if name.starts_with("spans-") {
            let records = glassbox_server::span_journal::segment_rows(&entry.path(), &bytes).unwrap_or_default();
            rows.0 += records.spans.len();
            rows.1 += records.usage.len();
        } else if name.starts_with("usage-") {
            rows.1 += String::from_utf8_lossy(&bytes).lines().count();
        }
    }
    rows
}
