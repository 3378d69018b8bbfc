//! Schemathesis against the real `glassbox` binary: property-based requests generated from the
//! server's own `/openapi.json` (valid and invalid bodies, parameters and headers), with a
//! bounded number of examples per operation. Every response must be no 5xx (hook
//! `no_server_error` in tests/schemathesis/glassbox_hooks.py: only a 502 for a model that could
//! not meet the caller's output schema is allowed), have a documented status, content type and
//! headers, and match its documented schema (server-sent events included, event by event).
//!
//! The server runs with an API key (so the auth layer is in the path) on mock models, the
//! embedded store in a temporary directory, and a workflow with an agent step and a suspension.

use std::path::PathBuf;
use std::time::Instant;

use crate::helpers::start_server;
use crate::openai_facade::{python, repo_path};

const API_KEY: &str = "gb-schemathesis-0123456789abcdef0123456789abcdef";

/// Examples per operation and phase: ~1,000 requests in all, under a minute here.
const MAX_EXAMPLES: &str = "25";

fn config(data_dir: &std::path::Path) -> String {
    format!(
        r#"
[server]
body_limit_bytes = 65536

[store]
sqlite_path = "{data}/glassbox.db"
spool_dir = "{data}/spool"

[models.mock]
provider = "mock"
model = "mock-echo"

[models.mock-json]
provider = "mock"
model = "mock-json"

[agents.assistant]
instructions = "You are a helpful assistant."
model = "mock"
processors = [{{ type = "normalize" }}, {{ type = "pii", strategy = "redact" }}, {{ type = "injection", threshold = 0.5, strategy = "block" }}]
budget = {{ max_input_tokens = 8000 }}

[agents.extractor]
instructions = "Extract a contact."
model = "mock-json"
output_schema = {{ type = "object", properties = {{ name = {{ type = ["string", "null"] }} }} }}

[keys.ci]
tenant = "acme"
key_env = "GLASSBOX_ST_KEY"

[workflows.greet]
description = "Greets, then waits for approval"
input_schema = {{ type = "object", properties = {{ name = {{ type = "string" }} }}, required = ["name"] }}

[[workflows.greet.steps]]
id = "hello"
agent = "assistant"
prompt = "Say hello to {{{{input.name}}}}"

[[workflows.greet.steps]]
id = "approve"
suspend = {{ reason = "check" }}
resume_schema = {{ type = "object", properties = {{ approved = {{ type = "boolean" }} }}, required = ["approved"] }}

[[workflows.greet.steps]]
id = "done"
template = {{ greeting = "{{{{steps.hello.text}}}}" }}
"#,
        data = data_dir.display()
    )
}

/// Path parameters that exist, so generated requests reach the handlers, not only the 404s.
const SCHEMATHESIS_CONFIG: &str = r#"
[parameters]
agent_id = "assistant"
workflow_id = "greet"
model = "assistant"
"#;

/// The `st` command next to the test Python; fails saying how to install it when missing.
fn schemathesis_cli() -> PathBuf {
    let python = python();
    let cli = python.with_file_name("st");
    assert!(
        cli.exists(),
        "schemathesis is missing ({} not found): run ./tests/run.sh --setup-only, or \
         {} -m pip install -r tests/schemathesis/requirements.txt",
        cli.display(),
        python.display()
    );
    cli
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_spec_mismatch() {
    let cli = schemathesis_cli();
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("glassbox.toml");
    std::fs::write(&config_path, config(dir.path())).unwrap();
    let st_config = dir.path().join("schemathesis.toml");
    std::fs::write(&st_config, SCHEMATHESIS_CONFIG).unwrap();
    let server = start_server(&config_path, &[("GLASSBOX_ST_KEY", API_KEY)]).await;

    // A fixed seed keeps CI reproducible; GLASSBOX_ST_SEED explores other inputs.
    let seed = std::env::var("GLASSBOX_ST_SEED").unwrap_or_else(|_| "20261128".to_owned());
    let started = Instant::now();
    let output = tokio::process::Command::new(&cli)
        .arg("--config-file")
        .arg(&st_config)
        .args(["run", &format!("{}/openapi.json", server.url)])
        .args(["--header", &format!("Authorization: Bearer {API_KEY}")])
        .args([
            "--checks",
            "no_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,\
             response_schema_conformance",
            "--max-examples",
            MAX_EXAMPLES,
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--workers",
            "2",
            "--seed",
            &seed,
            "--no-color",
            "--request-timeout",
            "30",
        ])
        .env("SCHEMATHESIS_HOOKS", "glassbox_hooks")
        .env("PYTHONPATH", repo_path("tests/schemathesis"))
        .current_dir(dir.path())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", cli.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let summary = stdout.find("SUMMARY").map_or("(no summary)", |at| &stdout[at..]);
    eprintln!("schemathesis (seed {seed}) in {:.1} s:\n{summary}", started.elapsed().as_secs_f64());
    assert!(
        output.status.success(),
        "schemathesis found failures (seed {seed}; replay with GLASSBOX_ST_SEED={seed}):\n{stdout}\n{stderr}"
    );
    // A run that tested nothing must not pass.
    assert!(stdout.contains("Tested: "), "schemathesis did not report any tested operation:\n{stdout}\n{stderr}");
    assert!(!stdout.contains("Tested: 0"), "schemathesis tested no operation:\n{stdout}");
}
