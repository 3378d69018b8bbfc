//! The dashboard: pages rendered from seeded telemetry in SQLite and in a real ClickHouse
//! engine, checked over HTTP (`pages`) and in real headless Chromium (`browser`).

mod browser;
mod grafana;
mod more_pages;
mod pages;
pub mod seed;
pub mod seed_pages;

use std::any::Any;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use glassbox_server::dashboard::{Access, Dashboard, PageSources};
use glassbox_server::{AgentRegistry, HttpOptions, serve};
use glassbox_store::clickhouse::{ClickHouseBackend, ClickHouseSettings};
use glassbox_store::sqlite::{SqliteBackend, SqliteSettings};
use glassbox_store::{Backend, EvalStore, RunStore, TraceReader};
use glassbox_testkit::ClickHouseFixture;

use seed::Expect;

pub const ADMIN_TOKEN: &str = "test-admin-token-5f2a9c";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    ClickHouse,
}

/// A server with only the dashboard (and the empty API) over a seeded store.
pub struct DashboardApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub expect: Expect,
    /// The figures of the Evals, Workflows and Budgets pages.
    pub pages: seed_pages::PagesExpect,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    _keep_alive: Box<dyn Any + Send>,
}

impl DashboardApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// GET with the admin token as a Bearer header.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).bearer_auth(ADMIN_TOKEN).send().await.expect("request")
    }

    pub async fn page(&self, path: &str) -> (u16, String) {
        let response = self.get(path).await;
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }
}

impl Drop for DashboardApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// A fresh store of `kind`: (backend, reader, name, keep-alive, evals, runs).
type Opened = (Arc<dyn Backend>, Arc<dyn TraceReader>, &'static str, Box<dyn Any + Send>, Arc<dyn EvalStore>, Arc<dyn RunStore>);

async fn open_store(kind: Kind) -> Opened {
    match kind {
        Kind::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let backend = Arc::new(
                SqliteBackend::open(SqliteSettings { path: dir.path().join("glassbox.db") }).await.expect("sqlite"),
            );
            (backend.clone(), backend.clone(), "sqlite", Box::new(dir), backend.clone(), backend)
        }
        Kind::ClickHouse => {
            let fixture =
                ClickHouseFixture::start().await.expect("the ClickHouse fixture must start (run ./tests/run.sh)");
            let database = fixture.fresh_database().await.expect("database");
            let backend = Arc::new(
                ClickHouseBackend::new(ClickHouseSettings {
                    url: fixture.url(),
                    database,
                    ..ClickHouseSettings::default()
                })
                .expect("clickhouse"),
            );
            (backend.clone(), backend.clone(), "clickhouse", Box::new(fixture), backend.clone(), backend)
        }
    }
}

pub fn now_ns() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos())
        .expect("ns")
}

/// `n_traces` traces over the last ~20 hours plus the hostile trace, served with `access`.
pub async fn spawn_seeded(kind: Kind, n_traces: u64, access: Access) -> DashboardApp {
    glassbox_providers::install_crypto_provider();
    let (backend, reader, store_name, keep_alive, evals, runs) = open_store(kind).await;
    backend.migrate().await.expect("migrate");
    let now = now_ns();
    let mut expect = Expect::default();
    let mut spans = Vec::new();
    let mut usage = Vec::new();
    let spacing = 20 * 3_600_000_000_000 / i64::try_from(n_traces.max(1)).expect("n");
    for index in 0..n_traces {
        let rows = seed::trace(index, now, spacing, &mut expect);
        spans.extend(rows.spans);
        usage.extend(rows.usage);
    }
    let rows = seed::hostile(now, &mut expect);
    spans.extend(rows.spans);
    usage.extend(rows.usage);
    let mut pages = seed_pages::PagesExpect::default();
    let workflow_spans = seed_pages::seed_workflows(runs.as_ref(), &spans, now, &mut expect, &mut pages).await;
    spans.extend(workflow_spans);
    let api_access = seed_pages::seed_evals_and_access(evals.as_ref(), now, &usage, &mut pages).await;
    for (index, batch) in spans.chunks(500).enumerate() {
        backend.insert_spans(batch, &format!("seed-spans-{index}")).await.expect("insert spans");
    }
    for (index, batch) in usage.chunks(500).enumerate() {
        backend.insert_usage(batch, &format!("seed-usage-{index}")).await.expect("insert usage");
    }
    let sources = PageSources { evals: Some(evals), runs: Some(runs), access: Some(api_access) };
    let dashboard = Dashboard { reader, access, store_name, sources };
    let app = glassbox_server::router_with_dashboard(AgentRegistry::default(), HttpOptions::default(), dashboard);
    let listener = serve::bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve::serve(
        listener,
        app,
        async move {
            let _ = shutdown_rx.await;
        },
        Duration::from_secs(1),
    ));
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    DashboardApp { addr, client, expect, pages, shutdown: Some(shutdown_tx), _keep_alive: keep_alive }
}
