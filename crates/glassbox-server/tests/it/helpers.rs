//! `spawn_app`: the whole server from a config text, on a random port.

use std::net::SocketAddr;
use std::time::Duration;

use glassbox_server::{HttpOptions, runtime, serve};
use serde_json::Value;

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl TestApp {
    /// A server the test spawned itself (a router built by hand).
    pub fn from_parts(
        addr: SocketAddr,
        shutdown: tokio::sync::oneshot::Sender<()>,
        server: tokio::task::JoinHandle<std::io::Result<()>>,
    ) -> Self {
        Self { addr, client: reqwest::Client::new(), shutdown: Some(shutdown), server }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn post_json(&self, path: &str, body: Value) -> reqwest::Response {
        self.client.post(self.url(path)).json(&body).send().await.expect("request failed")
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request failed")
    }

    /// Sends SIGTERM's equivalent: the server stops accepting and drains.
    pub fn begin_shutdown(&mut self) {
        if let Some(sender) = self.shutdown.take() {
            let _ = sender.send(());
        }
    }
}

/// The example agents' shape with the mock provider, plus whatever `extra` adds.
pub const BASE_CONFIG: &str = r#"
[models.mock]
provider = "mock"
model = "mock-echo"

[models.slow]
provider = "mock"
model = "mock-slow-300"

[agents.echo]
instructions = "Repeat what the user says."
model = "mock"

[agents.slow]
instructions = "Take your time."
model = "slow"
"#;

pub async fn spawn_app(config_text: &str) -> TestApp {
    spawn_app_with(config_text, HttpOptions::default(), &|_| None).await
}

pub async fn spawn_app_with(config_text: &str, options: HttpOptions, env: &dyn Fn(&str) -> Option<String>) -> TestApp {
    // The test's own reqwest client needs a TLS provider even when no model built one.
    glassbox_providers::install_crypto_provider();
    let config = glassbox_config::parse(config_text, "test.toml", env).unwrap_or_else(|error| panic!("invalid test config:\n{error}"));
    let (agents, _notices) = runtime::build(&config, env).unwrap_or_else(|error| panic!("cannot build test config:\n{error}"));
    let listener = serve::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    let app = glassbox_server::router(agents, options);
    let server = tokio::spawn(serve::serve(
        listener,
        app,
        async move {
            let _ = shutdown_rx.await;
        },
        Duration::from_secs(5),
    ));
    TestApp { addr, client: reqwest::Client::new(), shutdown: Some(shutdown_tx), server }
}

/// Reads an SSE body into its `data:` payloads.
pub async fn sse_data(response: reqwest::Response) -> Vec<String> {
    let body = response.text().await.expect("stream body");
    body.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event.lines().filter_map(|line| line.strip_prefix("data:")).map(str::trim_start).collect();
            (!data.is_empty()).then(|| data.join("\n"))
        })
        .collect()
}

pub fn parse_chunks(data: &[String]) -> Vec<Value> {
    data.iter().filter(|d| d.as_str() != "[DONE]").map(|d| serde_json::from_str(d).expect("chunk is JSON")).collect()
}

/// A weather service for HTTP tools: answers `{city, celsius: 21}` for the city it is asked
/// about. Returns the tool's URL.
pub async fn spawn_tool_server() -> String {
    let app = axum::Router::new().route(
        "/weather",
        axum::routing::post(|axum::Json(args): axum::Json<Value>| async move {
            axum::Json(serde_json::json!({"city": args["city"], "celsius": 21}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/weather")
}

/// The `glassbox` binary on a config, its address read from its log.
pub struct ServerProcess {
    pub child: tokio::process::Child,
    pub url: String,
}

pub async fn start_server(config: &std::path::Path, envs: &[(&str, &str)]) -> ServerProcess {
    use tokio::io::AsyncBufReadExt as _;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_glassbox"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .envs(envs.iter().copied())
        .env_remove("GLASSBOX_CLICKHOUSE_URL")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let url = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            eprintln!("[glassbox] {line}");
            if let Some(at) = line.find("listening on http://") {
                return line[at + "listening on ".len()..].split_whitespace().next().unwrap().to_owned();
            }
        }
        panic!("the server exited before listening");
    })
    .await
    .expect("the server starts within 30 s");
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("[glassbox] {line}");
        }
    });
    ServerProcess { child, url }
}

