//! The process around the API: graceful shutdown, and the `glassbox` command refusing a bad
//! config with every problem and its position.

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::helpers::{BASE_CONFIG, spawn_app};

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_and_refuses_new_ones() {
    let mut app = spawn_app(BASE_CONFIG).await;
    let client = app.client.clone();
    let url = app.url("/api/agents/slow/generate");
    let in_flight = tokio::spawn(async move { client.post(url).json(&json!({"messages": "take your time"})).send().await });
    // Let the slow request reach the model before shutting down.
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.begin_shutdown();
    let response = in_flight.await.unwrap().expect("the in-flight request completes");
    assert_eq!(response.status(), 200);
    let finished = tokio::time::timeout(Duration::from_secs(5), &mut app.server).await;
    assert!(matches!(finished, Ok(Ok(Ok(())))), "server stops after draining: {finished:?}");
    let refused = app.client.get(app.url("/healthz")).send().await;
    assert!(refused.is_err(), "no new connections after shutdown");
}

fn glassbox() -> Command {
    Command::new(env!("CARGO_BIN_EXE_glassbox"))
}

fn write_config(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("glassbox.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[test]
fn check_prints_every_problem_with_its_position() {
    let (_dir, path) = write_config(
        "[models.m]\nprovider = \"mock\"\nmodel = \"mock-echo\"\ncolour = \"red\"\n\n[agents.a]\ninstructions = \"x\"\nmodel = \"nope\"\n",
    );
    let output = glassbox().args(["check", "--config"]).arg(&path).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("glassbox.toml:4:1:"), "unknown key with position: {stderr}");
    assert!(stderr.contains("colour"), "{stderr}");
    assert!(stderr.contains("glassbox.toml:8:"), "bad model reference with position: {stderr}");
    assert!(stderr.contains("nope"), "{stderr}");
}

#[test]
fn serve_refuses_an_invalid_config_with_the_same_messages() {
    let (_dir, path) = write_config("[agents.a]\ninstructions = \"x\"\nmodel = \"nope\"\n");
    let check = glassbox().args(["check", "--config"]).arg(&path).output().unwrap();
    let serve = glassbox().args(["serve", "--listen", "127.0.0.1:0", "--config"]).arg(&path).output().unwrap();
    assert_eq!(serve.status.code(), Some(1));
    let check_err = String::from_utf8_lossy(&check.stderr);
    let serve_err = String::from_utf8_lossy(&serve.stderr);
    let first_problem = check_err.lines().next().unwrap();
    assert!(serve_err.contains(first_problem), "serve: {serve_err}\ncheck: {check_err}");
    assert!(serve_err.contains("refusing to serve"), "{serve_err}");
}

#[test]
fn the_example_config_is_valid_without_any_api_key() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../glassbox.toml");
    let output = glassbox()
        .args(["check", "--config"])
        .arg(&path)
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_API_KEY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("OPENAI_API_KEY is not set"), "says it falls back to the mock: {stderr}");
}

#[tokio::test]
async fn a_client_disconnect_stops_the_run() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use glassbox_core::{Agent, FnTool, LanguageModel};
    use glassbox_providers::MockModel;

    let started = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let (started_flag, finished_flag) = (Arc::clone(&started), Arc::clone(&finished));
    let slow_tool = FnTool::new(
        "slow_lookup",
        "Takes a while",
        json!({"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}),
        move |_| {
            let (started, finished) = (Arc::clone(&started_flag), Arc::clone(&finished_flag));
            async move {
                started.store(true, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(500)).await;
                finished.store(true, Ordering::SeqCst);
                Ok(json!({"answer": 42}))
            }
        },
    );
    let model: Arc<dyn LanguageModel> = Arc::new(MockModel::new("mock-tool").unwrap());
    let agent = Agent::builder("tooling", model).instructions("Use the tool.").tool(slow_tool).build().unwrap();
    let app = glassbox_server::router(
        glassbox_server::AgentRegistry::new([agent]),
        glassbox_server::HttpOptions::default(),
    );
    let listener = glassbox_server::serve::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(glassbox_server::serve::serve(listener, app, std::future::pending(), Duration::from_secs(1)));

    glassbox_providers::install_crypto_provider();
    for route in ["generate", "stream"] {
        started.store(false, Ordering::SeqCst);
        finished.store(false, Ordering::SeqCst);
        let client = reqwest::Client::builder().timeout(Duration::from_millis(200)).build().unwrap();
        let request = client.post(format!("http://{addr}/api/agents/tooling/{route}")).json(&json!({"messages": "look it up"}));
        // A stream's headers go out before the tool runs; the body is what times out.
        let outcome = match request.send().await {
            Ok(response) => response.bytes().await.map(|_| ()),
            Err(error) => Err(error),
        };
        assert!(outcome.is_err(), "{route}: the client gives up before the tool finishes");
        drop(client);
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert!(started.load(Ordering::SeqCst), "{route}: the run reached the tool");
        assert!(!finished.load(Ordering::SeqCst), "{route}: the disconnect must cancel the running tool");
    }
}

/// Online eval scores wait in memory for their group (one insert per flush interval); a
/// server stopped by SIGTERM stores the waiting ones before it exits.
#[tokio::test]
async fn scores_waiting_for_their_group_are_stored_when_the_server_stops() {
    let mock = glassbox_mockllm::MockLlm::start().await.unwrap();
    mock.push(glassbox_mockllm::Reply::Text("Sunny in Oslo.".into()));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("glassbox.db");
    let config = dir.path().join("glassbox.toml");
    // A flush interval far longer than the test: the scores would otherwise wait for it.
    let text = format!(
        "[store]\nsqlite_path = {db:?}\nspool_dir = {spool:?}\nflush_interval_ms = 600000\n\
         [models.main]\nprovider = \"openai\"\nmodel = \"test-model\"\nbase_url = \"{base}\"\napi_key_env = \"KEY\"\n\
         max_retries = 0\n[agents.assistant]\ninstructions = \"Be brief.\"\nmodel = \"main\"\n\
         [online_evals.assistant]\nsample_rate = 1.0\nscorers = [{{ type = \"contains\", value = \"Oslo\" }}]\n",
        spool = dir.path().join("spool"),
        base = mock.openai_base_url(),
    );
    std::fs::write(&config, text).unwrap();
    let mut server = crate::helpers::start_server(&config, &[("KEY", "sk-test")]).await;
    glassbox_providers::install_crypto_provider();
    let response = reqwest::Client::new()
        .post(format!("{}/api/agents/assistant/generate", server.url))
        .json(&json!({ "messages": "weather in Oslo?" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    let trace_id = body["traceId"].as_str().unwrap().to_owned();
    // The scorer runs after the answer; give it time to queue its row.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let scores = |db: &std::path::Path| -> i64 {
        let connection = rusqlite::Connection::open(db).unwrap();
        connection
            .query_row("SELECT count(*) FROM eval_scores WHERE TraceId = ?1 AND Passed = 1", [&trace_id], |row| row.get(0))
            .unwrap()
    };
    assert_eq!(scores(&db), 0, "the score waits for its group (the flush interval)");

    let pid = server.child.id().expect("the server runs").to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success(), "kill -TERM {pid}");
    let exit = tokio::time::timeout(Duration::from_secs(20), server.child.wait()).await.expect("stops within 20 s").unwrap();
    assert!(exit.success(), "exit status {exit:?}");
    assert_eq!(scores(&db), 1, "the waiting score is stored at shutdown");
    mock.shutdown().await;
}
