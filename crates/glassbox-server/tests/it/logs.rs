//! The `glassbox` binary's logs: `--log-format json` prints one JSON object per line, every
//! line logged inside a request carries that request's trace id, `RUST_LOG` chooses what is
//! logged, and the default text format ends its lines with the request's `trace_id=`.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const CONFIG: &str = r#"
[models.broken]
provider = "mock"
model = "mock-error"

[agents.broken]
instructions = "Fail."
model = "broken"
"#;

struct Server {
    child: Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts `glassbox serve` on a free port with `args` and `rust_log`; returns it with the
    /// address it announced.
    async fn start(args: &[&str], rust_log: &str) -> (Self, String) {
        Self::start_in(tempfile::tempdir().unwrap(), args, rust_log).await
    }

    /// [`start`](Self::start) with its store and spool in `dir` (`glassbox.db`, `spool/`).
    async fn start_in(dir: tempfile::TempDir, args: &[&str], rust_log: &str) -> (Self, String) {
        let config = dir.path().join("glassbox.toml");
        let store = format!(
            "[store]\nsqlite_path = \"{}\"\nspool_dir = \"{}\"\n",
            dir.path().join("glassbox.db").display(),
            dir.path().join("spool").display()
        );
        std::fs::write(&config, format!("{store}{CONFIG}")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_glassbox"))
            .args(args)
            .args(["serve", "--config", config.to_str().unwrap(), "--listen", "127.0.0.1:0"])
            .env("RUST_LOG", rust_log)
            .env_remove("GLASSBOX_LOG_FORMAT")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("GLASSBOX_CLICKHOUSE_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (sender, lines) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Self { child, lines, seen: Vec::new(), _dir: dir };
        let line = server.wait_for(|line| line.contains("glassbox listening on http://")).await;
        let addr = line.split("http://").nth(1).unwrap().split(['"', ' ']).next().unwrap().to_owned();
        (server, addr)
    }

    /// The first line (from now on, or already seen) that matches; fails after 30 s with
    /// every line seen.
    async fn wait_for(&mut self, matches: impl Fn(&str) -> bool) -> String {
        if let Some(line) = self.seen.iter().find(|line| matches(line)) {
            return line.clone();
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                _ => panic!("no matching log line; saw:\n{}", self.seen.join("\n")),
            }
        }
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

async fn failing_request(addr: &str, trace_id: &str) {
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/api/agents/broken/generate"))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&json!({"messages": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
}

#[tokio::test]
async fn json_logs_carry_the_trace_id_of_their_request() {
    glassbox_providers::install_crypto_provider();
    // RUST_LOG keeps the start-up line and warnings only: the request span itself is below the
    // filter, and its warning must still name the trace.
    let (mut server, addr) = Server::start(&["--log-format", "json"], "warn,glassbox=info").await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    failing_request(&addr, trace_id).await;
    let line = server.wait_for(|line| line.contains("request failed")).await;
    let record: Value = serde_json::from_str(&line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}"));
    assert_eq!(record["trace_id"], trace_id, "{record}");
    assert_eq!(record["level"], "WARN");
    assert_eq!(record["code"], "provider_error");
    assert!(record["timestamp"].as_str().is_some_and(|time| time.ends_with('Z')), "{record}");
    assert!(record["error"].as_str().is_some_and(|error| error.contains("500")), "the cause chain is logged: {record}");
    // Every line is JSON; none outside a request has a trace id; the filter held.
    for line in &server.seen {
        let record: Value = serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}"));
        assert!(record["level"] == "WARN" || record["level"] == "ERROR" || record["target"] == "glassbox", "{record}");
        if record["message"] != "request failed" {
            assert!(record.get("trace_id").is_none(), "{record}");
        }
    }
    server.stop().await;
}

/// What the store logs while it opens, before the server listens, is logged too: here the
/// notice that an earlier run left telemetry in the spool.
#[tokio::test]
async fn what_the_store_logs_while_it_opens_is_logged() {
    glassbox_providers::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let spool = glassbox_store::spool::Spool::open(dir.path().join("spool"), 1 << 20).unwrap();
    let row = glassbox_store::UsageRow { trace_id: "0af7651916cd43dd8448eb211c80319c".into(), ..Default::default() };
    spool.write_usage("earlier-run", &[row]).unwrap();
    let (mut server, _addr) = Server::start_in(dir, &[], "warn,glassbox=info,glassbox_store=info").await;
    let line = server.wait_for(|line| line.contains("telemetry spool has batches from an earlier run")).await;
    assert!(line.contains("files=1"), "{line}");
    server.stop().await;
}

#[tokio::test]
async fn text_logs_are_the_default_and_show_the_trace_id() {
    glassbox_providers::install_crypto_provider();
    let (mut server, addr) = Server::start(&[], "info").await;
    assert!(serde_json::from_str::<Value>(&server.seen[0]).is_err(), "text by default: {}", server.seen[0]);
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    failing_request(&addr, trace_id).await;
    let line = server.wait_for(|line| line.contains("request failed")).await;
    assert!(line.contains("trace_id=") && line.contains(trace_id), "{line}");
    assert!(!line.contains('\u{1b}'), "no colours when standard error is not a terminal: {line}");
    server.stop().await;
}
