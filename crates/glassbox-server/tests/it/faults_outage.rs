//! Long outages under load: ClickHouse frozen and then down for 30 s while 16 clients keep
//! calling the API, and the server itself SIGKILLed while 16 clients call it. The API must
//! answer every request during the outage, and every row of every acknowledged request must
//! be stored exactly once once things are back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use glassbox_server::HttpOptions;
use glassbox_testkit::ClickHouseFixture;
use serde_json::json;

use crate::helpers::BASE_CONFIG;

pub(crate) const CLIENTS: usize = 16;

pub(crate) fn trace_id_of(response: &reqwest::Response) -> Option<String> {
    let traceparent = response.headers().get("traceparent")?.to_str().ok()?;
    traceparent.split('-').nth(1).map(str::to_owned)
}

/// What the clients saw: acknowledged (2xx, body read) trace ids, and everything else.
#[derive(Default)]
pub(crate) struct Seen {
    pub(crate) acknowledged: Vec<String>,
    /// Non-2xx statuses with their bodies.
    pub(crate) refused: Vec<String>,
    /// Requests that got no complete answer (connection errors).
    pub(crate) unanswered: Vec<String>,
}

/// `CLIENTS` clients calling `echo`'s generate and stream routes at `base` until `stop`, each
/// pausing `pace` between requests; `done` counts acknowledged requests.
pub(crate) fn spawn_clients(
    base: String,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    pace: Duration,
) -> Vec<tokio::task::JoinHandle<Seen>> {
    glassbox_providers::install_crypto_provider();
    // The server closes a keep-alive connection idle for 30 s (`header_read_timeout`); a
    // client that keeps idle connections longer (reqwest: 90 s) can send a request on one the
    // server is closing that instant and get "error sending request" for an answer that was
    // never refused. A client of this server keeps them for less, as clients of any server
    // with an idle timeout should. (Under full-suite load one request of one run in four got
    // "error sending request"; this race is the likely cause, not a confirmed one.)
    let client = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(10))
        .build()
        .expect("the load's HTTP client");
    (0..CLIENTS)
        .map(|worker| {
            let (client, base, stop, done) = (client.clone(), base.clone(), Arc::clone(&stop), Arc::clone(&done));
            tokio::spawn(async move {
                let mut seen = Seen::default();
                let mut n = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let route = if n.is_multiple_of(4) { "stream" } else { "generate" };
                    let sent = client
                        .post(format!("{base}/api/agents/echo/{route}"))
                        .json(&json!({"messages": format!("client {worker} request {n}")}))
                        .send()
                        .await;
                    match sent {
                        Ok(response) => {
                            let status = response.status();
                            let trace_id = trace_id_of(&response);
                            match (response.text().await, trace_id) {
                                (Ok(body), Some(trace_id)) if status.is_success() => {
                                    // A stream is acknowledged once it finished.
                                    if route == "generate" || body.contains("[DONE]") {
                                        seen.acknowledged.push(trace_id);
                                        done.fetch_add(1, Ordering::SeqCst);
                                    } else {
                                        seen.unanswered.push(format!("{route}: stream cut: {body}"));
                                    }
                                }
                                (Ok(body), _) => seen.refused.push(format!("{route}: {status}: {body}")),
                                (Err(error), _) => seen.unanswered.push(format!("{route}: {status}: body: {error:?}")),
                            }
                        }
                        Err(error) => seen.unanswered.push(format!("{route}: {error:?}")),
                    }
                    tokio::time::sleep(pace).await;
                }
                seen
            })
        })
        .collect()
}

pub(crate) async fn wait_for(done: &AtomicUsize, at_least: usize) {
    while done.load(Ordering::SeqCst) < at_least {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) async fn collect(workers: Vec<tokio::task::JoinHandle<Seen>>) -> Seen {
    let mut all = Seen::default();
    for worker in workers {
        let seen = worker.await.expect("a client panicked");
        all.acknowledged.extend(seen.acknowledged);
        all.refused.extend(seen.refused);
        all.unanswered.extend(seen.unanswered);
    }
    all
}

/// (spans, usage rows, distinct spans, distinct usage rows, distinct traces) in `database`.
pub(crate) async fn stored(fixture: &ClickHouseFixture, database: &str) -> Option<(u64, u64, u64, u64, u64)> {
    let query = format!(
        "SELECT (SELECT count() FROM {database}.spans), (SELECT count() FROM {database}.usage), \
         (SELECT uniqExact(TraceId, SpanId) FROM {database}.spans), (SELECT uniqExact(SpanId) FROM {database}.usage), \
         (SELECT uniqExact(TraceId) FROM {database}.spans) FORMAT TSV"
    );
    let text = fixture.query_text(&query).await.ok()?;
    let numbers: Vec<u64> = text.split_whitespace().filter_map(|n| n.parse().ok()).collect();
    match numbers[..] {
        [spans, usage, distinct_spans, distinct_usage, traces] => Some((spans, usage, distinct_spans, distinct_usage, traces)),
        _ => None,
    }
}

/// Usage rows per trace id in `database`.
pub(crate) async fn usage_per_trace(fixture: &ClickHouseFixture, database: &str) -> std::collections::HashMap<String, u64> {
    let text = fixture
        .query_text(&format!("SELECT TraceId, count() FROM {database}.usage GROUP BY TraceId FORMAT TSV"))
        .await
        .unwrap();
    text.lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(trace, n)| (trace.to_owned(), n.trim().parse().unwrap_or(0)))
        .collect()
}

/// Trace ids of `wanted` that the usage table does not hold exactly once.
pub(crate) async fn missing_or_doubled(fixture: &ClickHouseFixture, database: &str, wanted: &[String]) -> Vec<String> {
    let per_trace = usage_per_trace(fixture, database).await;
    wanted
        .iter()
        .filter(|trace| per_trace.get(trace.as_str()).copied() != Some(1))
        .map(|trace| format!("{trace}: {} usage rows", per_trace.get(trace.as_str()).copied().unwrap_or(0)))
        .collect()
}

/// ClickHouse frozen (SIGSTOP: connections open, nothing answered) for 10 s, then killed and
/// left down for 20 s, then restarted, while 16 clients call the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_stopped_for_30_s_under_load_loses_nothing_and_the_api_keeps_answering() {
    let mut fixture = ClickHouseFixture::start().await.expect("the ClickHouse fixture must start (run ./tests/run.sh)");
    let database = fixture.fresh_database().await.unwrap();
    let spool = tempfile::tempdir().unwrap();
    // Half-second batches: fewer spool files to replay after 30 s of outage.
    let (writer, telemetry) = crate::faults::clickhouse_telemetry(
        &fixture,
        &database,
        spool.path(),
        Duration::from_millis(500),
        Duration::from_millis(500),
    )
    .await;
    let app = crate::helpers::spawn_app_with(BASE_CONFIG, HttpOptions::default(), &|_| None).await;

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let workers = spawn_clients(format!("http://{}", app.addr), Arc::clone(&stop), Arc::clone(&done), Duration::from_millis(30));
    wait_for(&done, 200).await;

    fixture.pause();
    let frozen_at = done.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let during_freeze = done.load(Ordering::SeqCst) - frozen_at;
    fixture.kill().await;
    let down_at = done.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(20)).await;
    let during_down = done.load(Ordering::SeqCst) - down_at;
    let spooled_while_down = writer.stats().spooled_rows;
    fixture.restart().await.expect("the fixture restarts on its data");
    let restarted_at = done.load(Ordering::SeqCst);
    wait_for(&done, restarted_at + 200).await;
    stop.store(true, Ordering::SeqCst);
    let seen = collect(workers).await;
    eprintln!(
        "acknowledged {} requests ({during_freeze} while frozen, {during_down} while down); {spooled_while_down} rows spooled",
        seen.acknowledged.len()
    );

    assert!(seen.refused.is_empty(), "non-2xx answers during the outage: {} {:?}", seen.refused.len(), &seen.refused[..seen.refused.len().min(5)]);
    assert!(seen.unanswered.is_empty(), "unanswered requests: {} {:?}", seen.unanswered.len(), &seen.unanswered[..seen.unanswered.len().min(5)]);
    assert!(during_freeze > 0 && during_down > 0, "the API answered while ClickHouse was frozen and while it was down");
    assert!(spooled_while_down > 0, "the outage sent rows to the spool: {:?}", writer.stats());

    let n = seen.acknowledged.len() as u64;
    let expected = (3 * n, n, 3 * n, n, n);
    let mut last = None;
    for _ in 0..600 {
        telemetry.flush().await;
        last = stored(&fixture, &database).await;
        if last.is_some_and(|(spans, usage, ..)| spans >= expected.0 && usage >= expected.1) && writer.stats().spool_files == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stats = writer.stats();
    assert_eq!(stats.dropped_rows, 0, "{stats:?}");
    assert_eq!(
        last,
        Some(expected),
        "(spans, usage, distinct spans, distinct usage, traces) after recovery; {stats:?}"
    );
    let wrong = missing_or_doubled(&fixture, &database, &seen.acknowledged).await;
    assert!(wrong.is_empty(), "acknowledged requests without exactly one usage row: {wrong:?}");
    telemetry.shutdown().await;
}

