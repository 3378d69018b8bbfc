//! Starting and stopping what the harness measures, each as its own process group on a free
//! loopback port: the mock LLM server, the floor, `glassbox serve`, LiteLLM's proxy and the
//! Mastra server. Each target's output goes to a log file in the run's work directory.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;

use crate::http;
use crate::load::Request;

/// The request every target gets: one user message, answered by one chat completion of the
/// mock (the floor and LiteLLM take OpenAI's shape with the system prompt Glassbox and
/// Mastra add from their agent's instructions).
pub const USER_TEXT: &str = "hello";
pub const SYSTEM_TEXT: &str = "You are a benchmark.";
/// The API key Glassbox is configured with and every Glassbox request sends.
pub const GLASSBOX_KEY: &str = "gbx_bench_0123456789abcdef";
/// LiteLLM's master key (it refuses to start without one and checks it on every request).
pub const LITELLM_KEY: &str = "sk-bench-master";

/// A process group the harness started; dropped means stopped.
pub struct Process {
    pub name: String,
    child: Child,
    pub log: PathBuf,
}

impl Process {
    /// Starts `command` in a new process group, its output appended to `log`.
    pub fn spawn(name: &str, mut command: Command, log: PathBuf) -> anyhow::Result<Self> {
        let out = std::fs::File::create(&log).with_context(|| format!("while creating {}", log.display()))?;
        let err = out.try_clone().context("while opening the log")?;
        command.stdin(Stdio::null()).stdout(out).stderr(err).process_group(0);
        let child = command.spawn().with_context(|| format!("while starting {name} ({command:?})"))?;
        Ok(Self { name: name.to_owned(), child, log })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An error with the log's tail when the process has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait() {
            Ok(Some(status)) => anyhow::bail!(
                "{} exited ({status}); its log ({}) ends:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log)
            ),
            Ok(None) => Ok(()),
            Err(error) => Err(error).context("while checking the process"),
        }
    }

    /// SIGTERM to the group, SIGKILL after five seconds.
    pub fn stop(&mut self) {
        let Some(group) = i32::try_from(self.child.id()).ok().and_then(rustix::process::Pid::from_raw) else { return };
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::TERM);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                // The leader is gone; make sure no worker of its group outlives it.
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The last lines of a log file.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Where the programs are (`Default`: none, for a run that starts only some of them).
#[derive(Debug, Clone, Default)]
pub struct Programs {
    pub bench: PathBuf,
    pub glassbox: PathBuf,
    pub mockllm: PathBuf,
    pub glassbox_config: PathBuf,
    /// Extra environment variables of `glassbox serve` (`glassbox-bench ab`'s variants).
    pub glassbox_env: Vec<(String, String)>,
    pub litellm: PathBuf,
    pub litellm_config: PathBuf,
    pub mastra_dir: PathBuf,
    pub node: PathBuf,
}

/// The mock LLM server with `latency` before each answer; returns it and its OpenAI base URL.
pub fn start_mock(programs: &Programs, work: &Path, latency: Duration) -> anyhow::Result<(Process, String)> {
    let port = http::free_port()?;
    let mut command = Command::new(&programs.mockllm);
    command.args(["--listen", &format!("127.0.0.1:{port}"), "--latency-ms", &latency.as_millis().to_string()]);
    let mut process = Process::spawn("mock", command, work.join("mock.log"))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // The mock answers 404 on `/`: any HTTP answer means it listens.
    http::wait_ready(addr, "/", 404, Duration::from_secs(20), &mut || process.check_alive())?;
    Ok((process, format!("http://{addr}/v1")))
}

/// A target ready for load.
pub struct Target {
    pub process: Process,
    pub addr: SocketAddr,
    /// The request of the scenario (streamed or not).
    pub request: Request,
    /// A text the answer must contain (proves it went through the mock).
    pub expect: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Floor,
    Glassbox,
    #[serde(rename = "glassbox-clickhouse")]
    GlassboxClickHouse,
    LiteLlm,
    Mastra,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Floor => "floor (bare pass-through proxy)",
            Kind::Glassbox => "Glassbox, full pipeline, SQLite store",
            Kind::GlassboxClickHouse => "Glassbox, full pipeline, ClickHouse store",
            Kind::LiteLlm => "LiteLLM proxy",
            Kind::Mastra => "Mastra server",
        }
    }

    pub fn short(self) -> &'static str {
        match self {
            Kind::Floor => "floor",
            Kind::Glassbox => "glassbox",
            Kind::GlassboxClickHouse => "glassbox-clickhouse",
            Kind::LiteLlm => "litellm",
            Kind::Mastra => "mastra",
        }
    }
}

fn openai_body(stream: bool) -> String {
    serde_json::json!({
        "model": "bench-model",
        "messages": [{"role": "system", "content": SYSTEM_TEXT}, {"role": "user", "content": USER_TEXT}],
        "stream": stream,
    })
    .to_string()
}

fn agent_request(addr: SocketAddr, stream: bool, headers: Vec<(String, String)>) -> Request {
    let route = if stream { "stream" } else { "generate" };
    Request {
        url: format!("http://{addr}/api/agents/bench/{route}"),
        body: serde_json::json!({"messages": USER_TEXT}).to_string(),
        headers,
    }
}

/// Where a Glassbox target started by [`start`] in `work` keeps its store and spool.
pub fn data_dir(work: &Path, kind: Kind) -> PathBuf {
    work.join(format!("{}-data", kind.short()))
}

/// Removes the store and spool a Glassbox target left in `work`: a measured run leaves about
/// a gigabyte behind, and a few runs would fill the disk.
pub fn remove_store(work: &Path, kind: Kind) {
    let data = data_dir(work, kind);
    if let Err(error) = std::fs::remove_dir_all(&data) {
        eprintln!("glassbox-bench: could not remove {}: {error}", data.display());
    }
}

/// Starts `kind` in front of the mock at `mock_url` and waits until it answers.
pub fn start(
    kind: Kind,
    programs: &Programs,
    work: &Path,
    mock_url: &str,
    stream: bool,
    clickhouse_url: Option<&str>,
) -> anyhow::Result<Target> {
    let port = http::free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let log = work.join(format!("{}.log", kind.short()));
    let target = match kind {
        Kind::Floor => {
            let mut command = Command::new(&programs.bench);
            command.args(["floor", "--listen", &addr.to_string(), "--upstream", mock_url]);
            let mut process = Process::spawn(kind.short(), command, log)?;
            // The floor answers 405 to a GET of its only (POST) route.
            http::wait_ready(addr, "/v1/chat/completions", 405, Duration::from_secs(20), &mut || {
                process.check_alive()
            })?;
            let request = Request {
                url: format!("http://{addr}/v1/chat/completions"),
                body: openai_body(stream),
                headers: Vec::new(),
            };
            Target { process, addr, request, expect: "Mock" }
        }
        Kind::Glassbox | Kind::GlassboxClickHouse => {
            let data = data_dir(work, kind);
            std::fs::create_dir_all(&data).with_context(|| format!("while creating {}", data.display()))?;
            let mut command = Command::new(&programs.glassbox);
            command
                .args(["serve", "--config"])
                .arg(&programs.glassbox_config)
                .args(["--listen", &addr.to_string()])
                .env("BENCH_MOCK_URL", mock_url)
                .env("BENCH_DATA_DIR", &data)
                .env("BENCH_MOCK_API_KEY", "bench")
                .env("GLASSBOX_BENCH_KEY", GLASSBOX_KEY)
                .env_remove("GLASSBOX_CLICKHOUSE_URL")
                .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
                .envs(programs.glassbox_env.iter().map(|(name, value)| (name, value)));
            if let Some(url) = clickhouse_url.filter(|_| kind == Kind::GlassboxClickHouse) {
                command.env("GLASSBOX_CLICKHOUSE_URL", url).env("GLASSBOX_CLICKHOUSE_DATABASE", "glassbox_bench");
            }
            let mut process = Process::spawn(kind.short(), command, log)?;
            http::wait_ready(addr, "/readyz", 200, Duration::from_secs(120), &mut || process.check_alive())?;
            let request =
                agent_request(addr, stream, vec![("Authorization".to_owned(), format!("Bearer {GLASSBOX_KEY}"))]);
            Target { process, addr, request, expect: "Mock" }
        }
        Kind::LiteLlm => {
            if !programs.litellm.exists() {
                anyhow::bail!(
                    "LiteLLM is not installed at {} (benchmarks/run.sh installs it)",
                    programs.litellm.display()
                );
            }
            let mut command = Command::new(&programs.litellm);
            command
                .arg("--config")
                .arg(&programs.litellm_config)
                .args([
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &port.to_string(),
                    "--num_workers",
                    "2",
                    "--telemetry",
                    "False",
                ])
                // uvicorn kills a worker that has not answered its health check within 5 s, and
                // on a loaded 2-core machine importing LiteLLM takes longer than that: without
                // this the workers are killed and respawned forever.
                .args(["--timeout_worker_healthcheck", "600"])
                .env("BENCH_MOCK_URL", mock_url)
                .env("LITELLM_MASTER_KEY", LITELLM_KEY)
                // Otherwise it fetches a model cost map from the internet at start.
                .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
                .env("LITELLM_LOG", "ERROR")
                .env_remove("DATABASE_URL");
            let mut process = Process::spawn(kind.short(), command, log)?;
            http::wait_ready(addr, "/health/liveliness", 200, Duration::from_secs(600), &mut || process.check_alive())?;
            let request = Request {
                url: format!("http://{addr}/v1/chat/completions"),
                body: openai_body(stream),
                headers: vec![("Authorization".to_owned(), format!("Bearer {LITELLM_KEY}"))],
            };
            Target { process, addr, request, expect: "Mock" }
        }
        Kind::Mastra => {
            let entry = programs.mastra_dir.join(".mastra/output/index.mjs");
            if !entry.exists() {
                anyhow::bail!("the Mastra server is not built at {} (benchmarks/run.sh builds it)", entry.display());
            }
            let mut command = Command::new(&programs.node);
            command
                .arg(programs.mastra_dir.join("cluster.mjs"))
                .current_dir(&programs.mastra_dir)
                .env("MOCK_URL", mock_url)
                .env("PORT", port.to_string())
                .env("WORKERS", "2")
                .env("NODE_ENV", "production")
                .env("MASTRA_TELEMETRY_DISABLED", "1");
            let mut process = Process::spawn(kind.short(), command, log)?;
            http::wait_ready(addr, "/api/agents", 200, Duration::from_secs(180), &mut || process.check_alive())?;
            Target { process, addr, request: agent_request(addr, stream, Vec::new()), expect: "Mock" }
        }
    };
    Ok(target)
}

impl Target {
    /// Sends the benchmark's request once and checks the answer (status and text), so a
    /// misconfigured target fails here, not as a table of errors.
    pub fn verify(&mut self) -> anyhow::Result<()> {
        let path = self.request.url.split_once(&self.addr.to_string()).map_or("/", |(_, path)| path).to_owned();
        let mut headers = self.request.headers.clone();
        headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
        let answer = http::request(self.addr, "POST", &path, &headers, &self.request.body, Duration::from_secs(120))
            .with_context(|| format!("{}: the first request failed", self.process.name))?;
        if answer.status != 200 || !answer.body.contains(self.expect) {
            self.process.check_alive()?;
            anyhow::bail!(
                "{}: the first request answered {} without {:?}: {}",
                self.process.name,
                answer.status,
                self.expect,
                answer.body.chars().take(500).collect::<String>()
            );
        }
        Ok(())
    }

    /// Glassbox's telemetry counters from `/metrics` (rows written, spooled, dropped), as
    /// proof the store was written during the run.
    pub fn telemetry_counters(&self) -> Vec<(String, f64)> {
        let Ok(answer) = http::request(self.addr, "GET", "/metrics", &[], "", Duration::from_secs(10)) else {
            return Vec::new();
        };
        answer
            .body
            .lines()
            .filter(|line| line.starts_with("glassbox_telemetry_") && !line.starts_with('#'))
            .filter_map(|line| {
                let (name, value) = line.rsplit_once(' ')?;
                Some((name.to_owned(), value.parse().ok()?))
            })
            .collect()
    }
}
