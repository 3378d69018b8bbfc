//! `KeyStore` scenarios (API keys and the spend query budgets are rebuilt from), run against
//! both backends: SQLite in a temp file and ClickHouse on the real engine of the fixture.

use std::sync::Arc;

use glassbox_store::{Backend, KeyStore, KeyUsage, StoredKey, TimeRange, UsageRow};

const DAY: i64 = 86_400 * 1_000_000_000;
/// 2025-06-15T00:00:00Z.
const BASE_NS: i64 = 20_254 * DAY;

fn key(id: &str, tenant: &str, agents: Option<&[&str]>) -> StoredKey {
    StoredKey {
        id: id.to_owned(),
        tenant: tenant.to_owned(),
        key_sha256: format!("{:0>64}", id.bytes().map(|b| format!("{b:02x}")).collect::<String>()),
        agents: agents.map(|agents| agents.iter().map(|a| (*a).to_owned()).collect()),
        workflows: None,
        created_ns: BASE_NS + 7,
    }
}

fn usage(span: &str, at_ns: i64, tenant: &str, key: &str, input: u64, output: u64, cost: i64) -> UsageRow {
    UsageRow {
        timestamp_ns: at_ns,
        trace_id: format!("{:0>32}", span),
        span_id: format!("{:0>16}", span),
        tenant: tenant.to_owned(),
        api_key_id: key.to_owned(),
        agent: "assistant".to_owned(),
        workflow: String::new(),
        provider: "openai".to_owned(),
        model: "gpt-4o-mini".to_owned(),
        input_tokens: input,
        output_tokens: output,
        cached_input_tokens: 0,
        reasoning_tokens: 0,
        cost_nano_usd: cost,
        cost_unknown: false,
        latency_ns: 1_000,
        time_to_first_token_ns: 0,
        status: "ok".to_owned(),
        error_type: String::new(),
    }
}

pub async fn keys_round_trip(backend: Arc<dyn Backend>, keys: Arc<dyn KeyStore>) {
    backend.migrate().await.expect("migrate");
    assert!(keys.list_keys().await.expect("list").is_empty());
    let mut with_workflows = key("k-b", "beta", None);
    with_workflows.workflows = Some(vec!["onboarding".to_owned()]);
    let stored = [key("k-c", "acme", Some(&["assistant", "extractor"])), with_workflows, key("k-a", "acme", Some(&[]))];
    for key in &stored {
        keys.insert_key(key).await.expect("insert key");
    }
    let listed = keys.list_keys().await.expect("list");
    let mut expected = stored.to_vec();
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(listed, expected, "ordered by id; None and an empty list stay apart");

    // The same id again replaces the key.
    let mut replaced = key("k-a", "gamma", None);
    replaced.key_sha256 = "f".repeat(64);
    keys.insert_key(&replaced).await.expect("replace key");
    let listed = keys.list_keys().await.expect("list");
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[0], replaced);
}

pub async fn usage_by_key_sums_per_tenant_and_key(backend: Arc<dyn Backend>, keys: Arc<dyn KeyStore>) {
    backend.migrate().await.expect("migrate");
    let rows = [
        usage("1", BASE_NS + 10, "acme", "k1", 100, 10, 1_000),
        usage("2", BASE_NS + 20, "acme", "k1", 200, 20, 2_000),
        usage("3", BASE_NS + 30, "acme", "k2", 5, 5, 7),
        usage("4", BASE_NS + 40, "beta", "", 1, 2, 3),
        // Outside the range on both sides.
        usage("5", BASE_NS - 1, "acme", "k1", 1_000_000, 0, 1_000_000),
        usage("6", BASE_NS + DAY, "acme", "k1", 1_000_000, 0, 1_000_000),
    ];
    backend.insert_usage(&rows, "usage-by-key").await.expect("insert usage");
    let day = TimeRange { from_ns: BASE_NS, to_ns: BASE_NS + DAY };
    let summed = keys.usage_by_key(&day).await.expect("usage by key");
    let row = |tenant: &str, key: &str, calls, input, output, cost| KeyUsage {
        tenant: tenant.to_owned(),
        api_key_id: key.to_owned(),
        calls,
        input_tokens: input,
        output_tokens: output,
        cost_nano_usd: cost,
    };
    assert_eq!(
        summed,
        [row("acme", "k1", 2, 300, 30, 3_000), row("acme", "k2", 1, 5, 5, 7), row("beta", "", 1, 1, 2, 3)]
    );
    let empty = TimeRange { from_ns: BASE_NS + 2 * DAY, to_ns: BASE_NS + 3 * DAY };
    assert!(keys.usage_by_key(&empty).await.expect("empty range").is_empty());
}

mod sqlite {
    use super::*;
    use glassbox_store::sqlite::{SqliteBackend, SqliteSettings};

    async fn fresh() -> (Arc<SqliteBackend>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let backend =
            SqliteBackend::open(SqliteSettings { path: dir.path().join("glassbox.db") }).await.expect("open sqlite");
        (Arc::new(backend), dir)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keys_round_trip() {
        let (store, _dir) = fresh().await;
        super::keys_round_trip(store.clone(), store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn usage_by_key_sums_per_tenant_and_key() {
        let (store, _dir) = fresh().await;
        super::usage_by_key_sums_per_tenant_and_key(store.clone(), store).await;
    }
}

mod clickhouse {
    use std::time::Duration;

    use super::*;
    use glassbox_store::clickhouse::{ClickHouseBackend, ClickHouseSettings};
    use glassbox_testkit::ClickHouseFixture;

    async fn fresh() -> (Arc<ClickHouseBackend>, ClickHouseFixture) {
        let fixture = match ClickHouseFixture::start().await {
            Ok(fixture) => fixture,
            Err(error) => panic!("the ClickHouse test fixture must start (never skipped): {error}"),
        };
        let database = fixture.fresh_database().await.expect("fresh database");
        let settings = ClickHouseSettings {
            url: fixture.url(),
            database,
            span_ttl_days: 10_000,
            request_timeout: Duration::from_secs(20),
            ..ClickHouseSettings::default()
        };
        (Arc::new(ClickHouseBackend::new(settings).expect("backend")), fixture)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keys_round_trip() {
        let (store, _fixture) = fresh().await;
        super::keys_round_trip(store.clone(), store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn usage_by_key_sums_per_tenant_and_key() {
        let (store, _fixture) = fresh().await;
        super::usage_by_key_sums_per_tenant_and_key(store.clone(), store).await;
    }
}
