//! API keys, rate limits and period budgets, end to end: the whole server on 127.0.0.1:0 with
//! the telemetry pipeline writing to a real store (SQLite in a temp dir, or ClickHouse on the
//! fixture), so budgets are settled from real usage rows and rebuilt from the store.
//!
//! These tests run on a current-thread runtime with a thread-local subscriber, like
//! `telemetry.rs`, so the server's tasks share the test's tracing pipeline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use glassbox_server::access::Access;
use glassbox_server::telemetry::{self, Telemetry};
use glassbox_server::{AgentRegistry, HttpOptions, runtime, serve};
use glassbox_store::clickhouse::{ClickHouseBackend, ClickHouseSettings};
use glassbox_store::sqlite::{SqliteBackend, SqliteSettings};
use glassbox_store::writer::{TelemetryWriter, WriterConfig};
use glassbox_store::{Backend, KeyStore, PageRequest, StoredKey, TraceFilter, TraceReader};
use glassbox_testkit::ClickHouseFixture;
use serde_json::{Value, json};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

const CI_KEY: &str = "gbx_test_ci_key_0123456789abcdef0123456789abcdef";
const OPS_KEY: &str = "gbx_test_ops_key_fedcba9876543210fedcba9876543210";

/// Two mock agents; `ci` may only call `echo`; `ops` may call both. Both in tenant `acme`.
/// `extra` adds limits.
fn config(extra: &str) -> String {
    format!(
        r#"
[models.echo]
provider = "mock"
model = "mock-echo"

[models.slow]
provider = "mock"
model = "mock-slow-150"

[agents.echo]
instructions = "Repeat what the user says."
model = "echo"
max_output_tokens = 64

[agents.slow]
instructions = "Take your time."
model = "slow"
max_output_tokens = 64

[keys.ci]
tenant = "acme"
key_env = "CI_KEY"
agents = ["echo"]

[keys.ops]
tenant = "acme"
key_env = "OPS_KEY"

[[pricing]]
pattern = "mock-*"
input_per_million = 1000.0
output_per_million = 1000.0
{extra}
"#
    )
}

/// [`config`] without any key: open development mode unless the store has keys.
fn config_without_keys() -> String {
    let text = config("");
    let (agents, _) = text.split_once("[keys.ci]").unwrap();
    agents.to_owned() + "\n[[pricing]]\npattern = \"mock-*\"\ninput_per_million = 1.0\noutput_per_million = 1.0\n"
}

fn env(name: &str) -> Option<String> {
    match name {
        "CI_KEY" => Some(CI_KEY.to_owned()),
        "OPS_KEY" => Some(OPS_KEY.to_owned()),
        _ => None,
    }
}

/// The stores a test app writes to.
#[derive(Clone)]
enum StoreKind {
    Sqlite(std::path::PathBuf),
    ClickHouse { url: String, database: String },
}

impl StoreKind {
    async fn open(&self) -> (Arc<dyn Backend>, Arc<dyn TraceReader>, Arc<dyn KeyStore>) {
        match self {
            Self::Sqlite(path) => {
                let backend = Arc::new(SqliteBackend::open(SqliteSettings { path: path.clone() }).await.unwrap());
                (backend.clone(), backend.clone(), backend)
            }
            Self::ClickHouse { url, database } => {
                let backend = Arc::new(
                    ClickHouseBackend::new(ClickHouseSettings {
                        url: url.clone(),
                        database: database.clone(),
                        ..ClickHouseSettings::default()
                    })
                    .unwrap(),
                );
                (backend.clone(), backend.clone(), backend)
            }
        }
    }
}

struct App {
    addr: SocketAddr,
    client: reqwest::Client,
    telemetry: Telemetry,
    access: Arc<Access>,
    agents: AgentRegistry,
    reader: Arc<dyn TraceReader>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    _subscriber: tracing::subscriber::DefaultGuard,
}

impl App {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn call(&self, key: Option<&str>, agent: &str, route: &str, body: Value) -> reqwest::Response {
        let mut request = self.client.post(self.url(&format!("/api/agents/{agent}/{route}"))).json(&body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send().await.unwrap()
    }

    async fn generate(&self, key: Option<&str>, agent: &str) -> reqwest::Response {
        self.call(key, agent, "generate", json!({"messages": "hello there"})).await
    }

    async fn get(&self, key: Option<&str>, path: &str) -> reqwest::Response {
        let mut request = self.client.get(self.url(path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send().await.unwrap()
    }

    /// Stops serving, then writes (or spools) every span and usage row.
    async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let _ = (&mut self.server).await;
        self.telemetry.shutdown().await;
    }
}

async fn spawn(config_text: &str, store: &StoreKind, spool_dir: std::path::PathBuf) -> App {
    glassbox_providers::install_crypto_provider();
    let config = glassbox_config::parse(config_text, "test.toml", &env).unwrap_or_else(|error| panic!("{error}"));
    let (agents, _) = runtime::build(&config, &env).unwrap();
    let (for_estimates, _) = runtime::build(&config, &env).unwrap();
    let (backend, reader, keys) = store.open().await;
    backend.migrate().await.unwrap();
    let mut writer_config = WriterConfig::new(spool_dir);
    writer_config.flush_interval = Duration::from_millis(50);
    let writer = TelemetryWriter::start(Arc::clone(&backend), writer_config).await.unwrap();
    let pricing = Arc::new(telemetry::pricing_table(&config.pricing));
    let telemetry = Telemetry::new("glassbox-test", Some(writer), Arc::clone(&pricing), None).unwrap();
    let subscriber = tracing_subscriber::registry().with(telemetry::layer(&telemetry)).set_default();
    let access = Arc::new(Access::load(&config, keys.as_ref(), &env, pricing).await.unwrap());
    let settling = Arc::clone(&access);
    assert!(telemetry.observe_usage(Arc::new(move |row| settling.settle(row))));
    let app = glassbox_server::router_with_access(agents, HttpOptions::default(), Arc::clone(&access));
    let listener = serve::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve::serve(
        listener,
        app,
        async move {
            let _ = shutdown_rx.await;
        },
        Duration::from_secs(5),
    ));
    App {
        addr,
        client: reqwest::Client::new(),
        telemetry,
        access,
        agents: for_estimates,
        reader,
        shutdown: Some(shutdown_tx),
        server,
        _subscriber: subscriber,
    }
}

async fn sqlite_app(extra: &str) -> (App, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreKind::Sqlite(dir.path().join("glassbox.db"));
    (spawn(&config(extra), &store, dir.path().join("spool")).await, dir)
}

async fn error_body(response: reqwest::Response) -> Value {
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().is_some_and(|message| !message.is_empty()), "{body}");
    body
}

fn trace_id(response: &reqwest::Response) -> String {
    response.headers()["traceparent"].to_str().unwrap().split('-').nth(1).unwrap().to_owned()
}

// ---------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "current_thread")]
async fn without_keys_the_server_is_open_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let app =
        spawn(&config_without_keys(), &StoreKind::Sqlite(dir.path().join("glassbox.db")), dir.path().join("spool"))
            .await;
    assert!(app.access.is_open());
    let response = app.generate(None, "echo").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("ratelimit-limit").is_none());
    let budgets: Value = app.get(None, "/api/budgets").await.json().await.unwrap();
    assert_eq!(budgets["openMode"], true);
    app.stop().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_missing_malformed_or_wrong_key_is_401_and_probes_stay_open() {
    let (app, _dir) = sqlite_app("").await;
    assert!(!app.access.is_open());
    for (key, expected) in [
        (None, "missing Authorization header"),
        (Some("gbx_not_a_key"), "invalid API key"),
        (Some(&CI_KEY[..CI_KEY.len() - 1]), "invalid API key"),
    ] {
        let response = app.generate(key, "echo").await;
        assert_eq!(response.status(), 401, "{key:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let body = error_body(response).await;
        assert_eq!(body["code"], "unauthorized");
        assert!(body["error"].as_str().unwrap().contains(expected), "{body}");
    }
    let malformed = app
        .client
        .post(app.url("/api/agents/echo/generate"))
        .header("authorization", format!("Basic {CI_KEY}"))
        .json(&json!({"messages": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 401);
    assert!(error_body(malformed).await["error"].as_str().unwrap().contains("malformed Authorization header"));
    for listing in ["/api/agents", "/api/agents/echo", "/api/budgets"] {
        assert_eq!(app.get(None, listing).await.status(), 401, "{listing}");
    }
    for probe in ["/healthz", "/readyz"] {
        assert_eq!(app.get(None, probe).await.status(), 200, "{probe}");
    }
    // The right key passes, for generate and stream alike.
    assert_eq!(app.generate(Some(CI_KEY), "echo").await.status(), 200);
    let stream = app.call(Some(CI_KEY), "echo", "stream", json!({"messages": "hi"})).await;
    assert_eq!(stream.status(), 200);
    assert!(stream.text().await.unwrap().contains("[DONE]"));
    app.stop().await;
}

#[tokio::test(flavor = "current_thread")]
async fn an_agent_the_key_may_not_use_is_403() {
    let (app, _dir) = sqlite_app("").await;
    for (method_path, response) in [
        ("POST generate", app.generate(Some(CI_KEY), "slow").await),
        ("POST stream", app.call(Some(CI_KEY), "slow", "stream", json!({"messages": "hi"})).await),
        ("GET agent", app.get(Some(CI_KEY), "/api/agents/slow").await),
    ] {
        assert_eq!(response.status(), 403, "{method_path}");
        let body = error_body(response).await;
        assert_eq!(body["code"], "forbidden");
        assert_eq!(body["details"], json!({"resource": "agent", "id": "slow", "keyId": "ci"}));
    }
    // The other key of the tenant may.
    assert_eq!(app.get(Some(OPS_KEY), "/api/agents/slow").await.status(), 200);
    app.stop().await;
}

/// Tenant and key id reach the request span, the run's span and every usage row; the key
/// itself reaches nothing (checked byte for byte in the SQLite file and the spool).
#[tokio::test(flavor = "current_thread")]
async fn usage_rows_carry_tenant_and_key_id_and_the_key_is_never_written_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreKind::Sqlite(dir.path().join("glassbox.db"));
    let app = spawn(&config(""), &store, dir.path().join("spool")).await;
    let response = app.generate(Some(CI_KEY), "echo").await;
    assert_eq!(response.status(), 200);
    let trace = trace_id(&response);
    let streamed = app.call(Some(OPS_KEY), "slow", "stream", json!({"messages": "hi"})).await;
    let stream_trace = trace_id(&streamed);
    assert!(streamed.text().await.unwrap().contains("[DONE]"));
    let reader = Arc::clone(&app.reader);
    app.stop().await;

    let usage = reader.trace_usage(&trace).await.unwrap();
    assert_eq!(usage.len(), 1);
    assert_eq!((usage[0].tenant.as_str(), usage[0].api_key_id.as_str()), ("acme", "ci"));
    let usage = reader.trace_usage(&stream_trace).await.unwrap();
    assert_eq!((usage[0].tenant.as_str(), usage[0].api_key_id.as_str()), ("acme", "ops"));
    let spans = reader.trace_spans(&trace).await.unwrap();
    for name in ["POST /api/agents/{agent_id}/generate", "invoke_agent echo", "chat mock-echo"] {
        let span = spans.iter().find(|span| span.span_name == name).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(span.attribute("glassbox.tenant"), Some("acme"), "{name}");
        assert_eq!(span.attribute("glassbox.api_key_id"), Some("ci"), "{name}");
    }
    // The traces list finds each request under the key it was made with.
    for (key, expected) in [("ci", &trace), ("ops", &stream_trace), ("nobody", &String::new())] {
        let filter = TraceFilter { api_key_id: Some(key.into()), ..TraceFilter::default() };
        let listed = reader.list_traces(&filter, &PageRequest { after: None, limit: 10 }).await.unwrap();
        let ids: Vec<&str> = listed.items.iter().map(|trace| trace.trace_id.as_str()).collect();
        let expected: Vec<&str> = Some(expected.as_str()).filter(|id| !id.is_empty()).into_iter().collect();
        assert_eq!(ids, expected, "the traces of key {key}");
    }
    assert!(files_without_keys(dir.path()) >= 1, "the store file was checked");
}

/// Checks that no file under `dir` (the store, its journals, the spool) holds a key; returns
/// how many files it read.
fn files_without_keys(dir: &std::path::Path) -> usize {
    let mut checked = 0;
    let mut pending = vec![dir.to_owned()];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|entry| entry.unwrap().path()));
        } else {
            let bytes = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            for key in [CI_KEY, OPS_KEY] {
                assert!(!bytes.contains(key), "an API key was written to {}", path.display());
            }
            checked += 1;
        }
    }
    checked
}

#[tokio::test(flavor = "current_thread")]
async fn the_key_is_never_written_to_clickhouse_but_its_id_is() {
    let fixture = ClickHouseFixture::start().await.expect("the ClickHouse fixture must start (run ./tests/run.sh)");
    let database = fixture.fresh_database().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = StoreKind::ClickHouse { url: fixture.url(), database: database.clone() };
    let app = spawn(&config(""), &store, dir.path().join("spool")).await;
    assert_eq!(app.generate(Some(CI_KEY), "echo").await.status(), 200);
    assert_eq!(app.call(Some(OPS_KEY), "slow", "stream", json!({"messages": "hi"})).await.status(), 200);
    app.stop().await;
    let tables = fixture.query_text(&format!("SHOW TABLES FROM {database}")).await.unwrap();
    let mut ids_seen = 0;
    for table in tables.lines().filter(|table| !table.ends_with("_mv")) {
        let dump = fixture.query_text(&format!("SELECT * FROM {database}.{table} FORMAT TSV")).await.unwrap();
        for key in [CI_KEY, OPS_KEY] {
            assert!(!dump.contains(key), "an API key leaked into {table}");
        }
        ids_seen += usize::from(dump.contains("\tci\t") || dump.contains("'ci'"));
    }
    assert!(ids_seen >= 1, "the key id reached the tables");
    let usage = fixture
        .query_text(&format!("SELECT Tenant, ApiKeyId FROM {database}.usage ORDER BY ApiKeyId FORMAT TSV"))
        .await
        .unwrap();
    files_without_keys(dir.path());
    let spool = std::fs::read_dir(dir.path().join("spool")).unwrap();
    let spooled: Vec<_> = spool.flatten().map(|entry| entry.file_name()).collect();
    assert_eq!(usage, "acme\tci\nacme\tops\n", "usage rows in ClickHouse; the spool holds {spooled:?}");
}

// ---------------------------------------------------------------------------------------
// Rate limits
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "current_thread")]
async fn over_the_rate_is_429_with_retry_after_and_ratelimit_headers() {
    // ci: its own limit, 1 a minute with a burst of 2; ops: the tenant's default.
    let extra = "[tenants.acme]\nrequests_per_minute = 600\nburst = 50\n";
    let text = config(extra).replace("agents = [\"echo\"]", "agents = [\"echo\"]\nrequests_per_minute = 1\nburst = 2");
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(&text, &StoreKind::Sqlite(dir.path().join("glassbox.db")), dir.path().join("spool")).await;
    for expected_remaining in ["1", "0"] {
        let response = app.generate(Some(CI_KEY), "echo").await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["ratelimit-limit"], "2");
        assert_eq!(response.headers()["ratelimit-remaining"], expected_remaining);
        let reset: u64 = response.headers()["ratelimit-reset"].to_str().unwrap().parse().unwrap();
        assert!((1..=120).contains(&reset), "{reset}");
    }
    let refused = app.generate(Some(CI_KEY), "echo").await;
    assert_eq!(refused.status(), 429);
    let headers = refused.headers().clone();
    let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "one request a minute: retry within a minute, got {retry_after}");
    assert_eq!(headers["ratelimit-limit"], "2");
    assert_eq!(headers["ratelimit-remaining"], "0");
    assert_eq!(headers["ratelimit-reset"].to_str().unwrap(), retry_after.to_string());
    let body = error_body(refused).await;
    assert_eq!(body["code"], "rate_limited");
    assert_eq!(body["details"], json!({"limit": 2, "remaining": 0, "retryAfterSeconds": retry_after}));
    // Every key has its own bucket: ops (the tenant's default) is not affected.
    let other = app.generate(Some(OPS_KEY), "echo").await;
    assert_eq!(other.status(), 200);
    assert_eq!(other.headers()["ratelimit-limit"], "50");
    assert_eq!(other.headers()["ratelimit-remaining"], "49");
    app.stop().await;
}

// ---------------------------------------------------------------------------------------
// Budgets
// ---------------------------------------------------------------------------------------

/// The next UTC midnight, as RFC 3339.
fn next_midnight() -> String {
    let now = glassbox_server::access::budget::now_ns();
    glassbox_server::access::budget::rfc3339(glassbox_server::access::budget::Period::Day.bounds(now).to_ns)
}

#[tokio::test(flavor = "current_thread")]
async fn a_spent_daily_token_budget_of_a_key_is_402_with_limit_usage_and_reset() {
    let text = config("").replace("agents = [\"echo\"]", "agents = [\"echo\"]\ndaily_tokens = 10");
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(&text, &StoreKind::Sqlite(dir.path().join("glassbox.db")), dir.path().join("spool")).await;
    // Nothing spent yet: the first request runs, and its usage (more than 10 tokens) is settled.
    assert_eq!(app.generate(Some(CI_KEY), "echo").await.status(), 200);
    for route in ["generate", "stream"] {
        let refused = app.call(Some(CI_KEY), "echo", route, json!({"messages": "again"})).await;
        assert_eq!(refused.status(), 402, "{route}");
        let body = error_body(refused).await;
        assert_eq!(body["code"], "budget_exhausted");
        let details = &body["details"];
        assert_eq!((details["scope"].as_str(), details["id"].as_str()), (Some("key"), Some("ci")));
        assert_eq!((details["period"].as_str(), details["metric"].as_str()), (Some("day"), Some("tokens")));
        assert_eq!(details["limit"], 10);
        assert!(details["used"].as_u64().unwrap() >= 10, "{details}");
        assert_eq!(details["resetAt"], next_midnight());
        assert!((1..=86_400).contains(&details["resetInSeconds"].as_u64().unwrap()), "{details}");
    }
    // The tenant's other key has no budget of its own, and the tenant none either.
    assert_eq!(app.generate(Some(OPS_KEY), "echo").await.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_spent_usd_budget_of_a_tenant_refuses_all_its_keys_and_shows_in_api_budgets() {
    // $0.001 per token: one request of more than 10 tokens spends the tenant's $0.01.
    let extra = "[tenants.acme]\ndaily_usd = 0.01\nmonthly_tokens = 100000\n";
    let (app, _dir) = sqlite_app(extra).await;
    assert_eq!(app.generate(Some(OPS_KEY), "echo").await.status(), 200);
    for key in [CI_KEY, OPS_KEY] {
        let refused = app.generate(Some(key), "echo").await;
        assert_eq!(refused.status(), 402);
        let details = error_body(refused).await["details"].clone();
        assert_eq!(details["scope"], "tenant");
        assert_eq!(details["id"], "acme");
        assert_eq!(details["metric"], "usd");
        assert_eq!(details["limit"], 0.01);
        assert!(details["used"].as_f64().unwrap() >= 0.01, "{details}");
    }
    let budgets: Value = app.get(Some(CI_KEY), "/api/budgets").await.json().await.unwrap();
    assert_eq!(budgets["openMode"], false);
    let tenant = &budgets["tenants"][0];
    assert_eq!(tenant["id"], "acme");
    assert_eq!(tenant["limits"]["dailyUsd"], 0.01);
    assert_eq!(tenant["limits"]["monthlyTokens"], 100_000);
    assert_eq!(tenant["day"]["resetAt"], next_midnight());
    let used_tokens = tenant["day"]["usedTokens"].as_u64().unwrap();
    assert!(used_tokens > 10, "{tenant}");
    assert_eq!(tenant["month"]["usedTokens"].as_u64().unwrap(), used_tokens);
    assert_eq!(tenant["month"]["remainingTokens"].as_u64().unwrap(), 100_000 - used_tokens);
    assert_eq!(tenant["reserved"]["tokens"], 0);
    let keys: Vec<&str> = budgets["keys"].as_array().unwrap().iter().map(|key| key["id"].as_str().unwrap()).collect();
    assert_eq!(keys, ["ci", "ops"]);
    assert_eq!(budgets["keys"][1]["day"]["usedTokens"].as_u64().unwrap(), used_tokens, "all of it was ops'");
    assert_eq!(budgets["keys"][0]["day"]["usedTokens"], 0);
    app.stop().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_monthly_budget_refuses_once_spent() {
    let (app, _dir) = sqlite_app("[tenants.acme]\nmonthly_tokens = 5\n").await;
    assert_eq!(app.generate(Some(CI_KEY), "echo").await.status(), 200);
    let refused = app.generate(Some(CI_KEY), "echo").await;
    assert_eq!(refused.status(), 402);
    let details = error_body(refused).await["details"].clone();
    assert_eq!((details["period"].as_str(), details["limit"].as_u64()), (Some("month"), Some(5)));
    assert!(details["resetAt"].as_str().unwrap().ends_with("-01T00:00:00Z"), "{details}");
    app.stop().await;
}

/// After a restart, a tenant that spent its daily budget is still refused: the spend is
/// rebuilt from the store's usage rows.
#[tokio::test(flavor = "current_thread")]
async fn a_restart_does_not_reset_a_spent_daily_budget() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreKind::Sqlite(dir.path().join("glassbox.db"));
    let text = config("[tenants.acme]\ndaily_tokens = 10\n");
    let first = spawn(&text, &store, dir.path().join("spool")).await;
    assert_eq!(first.generate(Some(CI_KEY), "echo").await.status(), 200);
    assert_eq!(first.generate(Some(CI_KEY), "echo").await.status(), 402);
    first.stop().await;

    let second = spawn(&text, &store, dir.path().join("spool")).await;
    let refused = second.generate(Some(OPS_KEY), "echo").await;
    assert_eq!(refused.status(), 402, "the spend survived the restart");
    let details = error_body(refused).await["details"].clone();
    assert_eq!((details["scope"].as_str(), details["limit"].as_u64()), (Some("tenant"), Some(10)));
    assert!(details["used"].as_u64().unwrap() >= 10, "{details}");
    second.stop().await;

    // A fresh store starts from zero, so the refusal above came from the rows.
    let other_dir = tempfile::tempdir().unwrap();
    let other = StoreKind::Sqlite(other_dir.path().join("glassbox.db"));
    let fresh = spawn(&text, &other, other_dir.path().join("spool")).await;
    assert_eq!(fresh.generate(Some(OPS_KEY), "echo").await.status(), 200);
    fresh.stop().await;
}

/// Many concurrent requests against a tight budget: the spend ends at or above the limit (it
/// was used up) and overshoots it by less than one reservation, far less than the
/// reservations that were in flight.
#[tokio::test(flavor = "current_thread")]
async fn concurrent_requests_overshoot_a_tight_budget_by_less_than_the_reservations_in_flight() {
    const LIMIT: u64 = 400;
    const CONCURRENCY: usize = 12;
    // Both keys of the tenant may call the slow agent here: the tenant's budget is shared.
    let text = config(&format!("[tenants.acme]\ndaily_tokens = {LIMIT}\n"))
        .replace("agents = [\"echo\"]", "agents = [\"echo\", \"slow\"]");
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(&text, &StoreKind::Sqlite(dir.path().join("glassbox.db")), dir.path().join("spool")).await;
    let agent = app.agents.get("slow").unwrap();
    let messages = vec![glassbox_core::Message::user("hello there")];
    let estimate = app.access.estimate(agent, &messages).tokens;

    let (mut admitted, mut refused) = (0_u64, 0_u64);
    let mut waves = 0;
    loop {
        waves += 1;
        assert!(waves <= 50, "the budget was never used up");
        let responses = futures::future::join_all(
            (0..CONCURRENCY).map(|index| app.generate(Some(if index % 2 == 0 { CI_KEY } else { OPS_KEY }), "slow")),
        )
        .await;
        let statuses: Vec<u16> = responses.iter().map(|response| response.status().as_u16()).collect();
        assert!(statuses.iter().all(|status| *status == 200 || *status == 402), "{statuses:?}");
        let ok = statuses.iter().filter(|status| **status == 200).count() as u64;
        admitted += ok;
        refused += CONCURRENCY as u64 - ok;
        // A wave where everything was refused while nothing else ran: the budget is spent.
        if ok == 0 {
            break;
        }
    }
    let budgets: Value = app.get(Some(OPS_KEY), "/api/budgets").await.json().await.unwrap();
    let used = budgets["tenants"][0]["day"]["usedTokens"].as_u64().unwrap();
    assert_eq!(budgets["tenants"][0]["reserved"]["tokens"], 0, "every reservation was released");
    let reader = Arc::clone(&app.reader);
    app.stop().await;
    let stored = reader
        .usage_by(
            glassbox_store::UsageBy::Tenant,
            &glassbox_server::access::budget::Period::Day.bounds(glassbox_server::access::budget::now_ns()),
        )
        .await
        .unwrap();
    let stored_tokens = stored[0].input_tokens + stored[0].output_tokens;
    assert_eq!(stored_tokens, used, "settlement agrees with the usage rows");
    eprintln!(
        "budget {LIMIT} tokens: {waves} waves of {CONCURRENCY}, admitted {admitted}, refused {refused}, used {used}, one reservation {estimate}"
    );
    assert!(refused > 0 && admitted > 0);
    assert!(used >= LIMIT, "the budget was used up: {used} of {LIMIT}");
    let in_flight_reservations = CONCURRENCY as u64 * estimate;
    assert!(
        used - LIMIT <= in_flight_reservations,
        "overshoot {} > in-flight reservations {in_flight_reservations}",
        used - LIMIT
    );
    assert!(used - LIMIT < estimate, "overshoot {} is below one reservation ({estimate})", used - LIMIT);
}

// ---------------------------------------------------------------------------------------
// `glassbox keys create`
// ---------------------------------------------------------------------------------------

/// Runs the `glassbox` binary with `--config path`, off the async thread.
async fn glassbox(args: &[&str], config_path: &std::path::Path) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_glassbox"));
    command.args(args).arg("--config").arg(config_path);
    tokio::task::spawn_blocking(move || command.output()).await.unwrap().unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn keys_create_prints_a_key_once_and_stores_only_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("glassbox.db");
    // No keys in the config: the store's key is the only one.
    let text = config_without_keys();
    let config_path = dir.path().join("glassbox.toml");
    std::fs::write(
        &config_path,
        format!("[store]\nsqlite_path = {:?}\nspool_dir = {:?}\n{text}", db, dir.path().join("spool")),
    )
    .unwrap();
    let output = glassbox(&["keys", "create", "--tenant", "beta", "--agents", "echo"], &config_path).await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let key = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("gbx_") && key.len() == 68, "{key}");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(stderr.contains("tenant beta") && !stderr.contains(&key), "{stderr}");

    let unknown = glassbox(&["keys", "create", "--tenant", "beta", "--agents", "nope"], &config_path).await;
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown agent \"nope\""));

    let store = StoreKind::Sqlite(db.clone());
    let (_, _, keys) = store.open().await;
    let stored: Vec<StoredKey> = keys.list_keys().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].tenant, "beta");
    assert_eq!(stored[0].agents.as_deref(), Some(&["echo".to_owned()][..]));
    assert_eq!(
        stored[0].key_sha256,
        glassbox_server::access::secret::hex(&glassbox_server::access::secret::sha256(&key))
    );

    let app = spawn(&text, &store, dir.path().join("spool")).await;
    assert!(!app.access.is_open(), "a stored key ends open mode");
    let ok = app.generate(Some(&key), "echo").await;
    assert_eq!(ok.status(), 200);
    let trace = trace_id(&ok);
    assert_eq!(app.generate(Some(&key), "slow").await.status(), 403);
    assert_eq!(app.generate(None, "echo").await.status(), 401);
    let reader = Arc::clone(&app.reader);
    app.stop().await;
    let usage = reader.trace_usage(&trace).await.unwrap();
    assert_eq!((usage[0].tenant.as_str(), usage[0].api_key_id.as_str()), ("beta", stored[0].id.as_str()));
    let bytes = String::from_utf8_lossy(&std::fs::read(&db).unwrap()).into_owned();
    assert!(!bytes.contains(&key), "the key itself is not in the store");
}

/// A stream releases its reservation when it ends; its usage is settled like a generate's and
/// stays within the estimate.
#[tokio::test(flavor = "current_thread")]
async fn a_stream_releases_its_reservation_when_it_ends_and_is_settled() {
    let (app, _dir) = sqlite_app("[tenants.acme]\ndaily_tokens = 100000\n").await;
    let response = app.call(Some(OPS_KEY), "slow", "stream", json!({"messages": "hi"})).await;
    assert_eq!(response.status(), 200);
    let agent = app.agents.get("slow").unwrap();
    let estimate = app.access.estimate(agent, &[glassbox_core::Message::user("hi")]).tokens;
    assert!(response.text().await.unwrap().contains("[DONE]"));
    let after: Value = app.get(Some(OPS_KEY), "/api/budgets").await.json().await.unwrap();
    assert_eq!(after["tenants"][0]["reserved"]["tokens"], 0, "{after}");
    let used = after["tenants"][0]["day"]["usedTokens"].as_u64().unwrap();
    assert!(used > 0 && used <= estimate, "settled {used}, estimated {estimate}");
    app.stop().await;
}

/// While a run is in flight its estimate is held against the tenant's and key's budgets.
#[tokio::test(flavor = "current_thread")]
async fn a_run_in_flight_holds_its_estimate() {
    let text = config("[tenants.acme]\ndaily_tokens = 100000\n")
        .replace("key_env = \"OPS_KEY\"", "key_env = \"OPS_KEY\"\ndaily_tokens = 100000");
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(&text, &StoreKind::Sqlite(dir.path().join("glassbox.db")), dir.path().join("spool")).await;
    let agent = app.agents.get("slow").unwrap();
    let estimate = app.access.estimate(agent, &[glassbox_core::Message::user("hello there")]).tokens;
    let watch = async {
        // The slow model answers after 150 ms; look until the reservation shows.
        for _ in 0..100 {
            let budgets: Value = app.get(Some(OPS_KEY), "/api/budgets").await.json().await.unwrap();
            let reserved = budgets["tenants"][0]["reserved"]["tokens"].as_u64().unwrap();
            if reserved > 0 {
                return (reserved, budgets["keys"][1]["reserved"]["tokens"].as_u64().unwrap());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("no reservation seen while the run was in flight");
    };
    let (response, (tenant_reserved, key_reserved)) = tokio::join!(app.generate(Some(OPS_KEY), "slow"), watch);
    assert_eq!(response.status(), 200);
    assert_eq!((tenant_reserved, key_reserved), (estimate, estimate));
    let after: Value = app.get(Some(OPS_KEY), "/api/budgets").await.json().await.unwrap();
    assert_eq!(after["tenants"][0]["reserved"]["tokens"], 0);
    assert_eq!(after["keys"][1]["reserved"]["tokens"], 0);
    app.stop().await;
}

/// `/metrics` reports each budget's use against its limit, as `/api/budgets` does.
#[tokio::test(flavor = "current_thread")]
async fn metrics_report_budget_use_against_limits() {
    let (app, _dir) = sqlite_app("[tenants.acme]\ndaily_tokens = 100000\n").await;
    let response = app.call(Some(OPS_KEY), "echo", "generate", json!({"messages": "count me"})).await;
    assert_eq!(response.status(), 200);
    let budgets: Value = app.get(Some(OPS_KEY), "/api/budgets").await.json().await.unwrap();
    let used = budgets["tenants"][0]["day"]["usedTokens"].as_u64().unwrap();
    assert!(used > 0, "{budgets}");
    let metrics = app.get(None, "/metrics").await.text().await.unwrap();
    let line = |name: &str| {
        metrics
            .lines()
            .find(|line| line.starts_with(name) && line.contains("scope=\"tenant\"") && line.contains("id=\"acme\"") && line.contains("period=\"day\""))
            .unwrap_or_else(|| panic!("no {name} for tenant acme:\n{metrics}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse::<f64>()
            .unwrap()
    };
    assert_eq!(line("glassbox_budget_limit_tokens"), 100000.0);
    assert_eq!(line("glassbox_budget_used_tokens"), used as f64);
    app.stop().await;
}
