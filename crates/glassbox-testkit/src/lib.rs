//! Test fixtures for Glassbox.
//!
//! [`ClickHouseFixture`] runs a real ClickHouse engine for one test: `tests/clickhouse/fixture.py`
//! puts one chDB session (the ClickHouse engine as an in-process library) behind ClickHouse's
//! HTTP interface, so the `clickhouse` crate and plain HTTP talk to it as to a server.
//!
//! ```no_run
//! # async fn demo() -> Result<(), glassbox_testkit::FixtureError> {
//! let fixture = glassbox_testkit::ClickHouseFixture::start().await?;
//! let db = fixture.fresh_database().await?;
//! let client = clickhouse::Client::default().with_url(fixture.url()).with_database(&db);
//! # let _ = client;
//! assert_eq!(fixture.query_text("SELECT 1").await?, "1\n");
//! # Ok(()) }
//! ```
//!
//! The Python side lives in a venv that `./tests/run.sh` creates (`--setup-only` does only
//! that). The fixture finds its interpreter through `$GLASSBOX_PYTHON`, else
//! `$HOME/.cache/glassbox/venv/bin/python`; when neither works, [`ClickHouseFixture::start`]
//! fails (it never skips) with a message that says so.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// How long the fixture may take to print `READY <port>` (the first chDB import of a cold
/// machine reads a ~500 MB library).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long [`ClickHouseFixture::stop`] waits after SIGTERM before it sends SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long [`ClickHouseFixture::restart`] keeps retrying while the old port is still busy.
const REBIND_TIMEOUT: Duration = Duration::from_secs(10);
/// Timeout of one [`ClickHouseFixture::query_text`] request.
const QUERY_TIMEOUT: Duration = Duration::from_secs(60);
/// Lines of the fixture's stderr kept for error messages.
const STDERR_TAIL: usize = 40;

const SETUP_HINT: &str = "run ./tests/run.sh (or ./tests/run.sh --setup-only) to create the \
     Python venv with chDB, or point GLASSBOX_PYTHON at a python that can `import chdb, lz4`";

/// What went wrong with the fixture.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// The Python side is missing: no interpreter, or chDB is not importable.
    #[error("the ClickHouse test fixture is not installed: {0}")]
    NotInstalled(String),
    /// The fixture process did not come up.
    #[error("the ClickHouse test fixture did not start: {0}")]
    Start(String),
    /// Spawning or talking to the process failed.
    #[error("the ClickHouse test fixture: {0}")]
    Io(#[from] std::io::Error),
    /// The HTTP request did not get an answer.
    #[error("HTTP request to the ClickHouse test fixture failed: {0}")]
    Http(#[from] reqwest::Error),
    /// ClickHouse answered with an error.
    #[error("ClickHouse error (HTTP {status}, code {code:?}): {message}")]
    Query {
        /// The HTTP status.
        status: u16,
        /// `X-ClickHouse-Exception-Code`, when the answer had one.
        code: Option<i32>,
        /// The body: `Code: N. DB::Exception: ... (NAME)`.
        message: String,
    },
}

/// A real ClickHouse engine (chDB behind ClickHouse's HTTP interface) for one test.
///
/// Owns the Python child process and its temporary data directory. Each fixture is independent
/// (its own process, port and data), so tests may run in parallel or in separate processes.
/// Dropping it kills the process and removes the data.
pub struct ClickHouseFixture {
    python: PathBuf,
    script: PathBuf,
    port: u16,
    /// Held open: the fixture stops itself when this pipe closes (the test process died).
    stdin: Option<ChildStdin>,
    child: Option<Child>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    http: reqwest::Client,
    data_dir: tempfile::TempDir,
}

impl std::fmt::Debug for ClickHouseFixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseFixture")
            .field("url", &self.url())
            .field("data_dir", &self.data_dir.path())
            .field("running", &self.child.is_some())
            .finish_non_exhaustive()
    }
}

impl ClickHouseFixture {
    /// Starts a fixture on a free port of 127.0.0.1 with an empty data directory.
    ///
    /// Fails, with a message that says to run `./tests/run.sh`, when the Python venv is missing
    /// or chDB cannot be imported.
    pub async fn start() -> Result<ClickHouseFixture, FixtureError> {
        Self::start_with_python(find_python()?).await
    }

    /// [`start`](Self::start) with this Python interpreter instead of the one found through
    /// `$GLASSBOX_PYTHON` or the default venv.
    pub async fn start_with_python(python: impl Into<PathBuf>) -> Result<ClickHouseFixture, FixtureError> {
        let python = python.into();
        if !python.is_file() {
            return Err(FixtureError::NotInstalled(format!("no Python at {}; {SETUP_HINT}", python.display())));
        }
        let script = fixture_script()?;
        let data_dir = tempfile::Builder::new().prefix("glassbox-clickhouse-").tempdir()?;
        let mut fixture = ClickHouseFixture {
            python,
            script,
            port: 0,
            stdin: None,
            child: None,
            stderr_tail: Arc::new(Mutex::new(VecDeque::new())),
            http: http_client()?,
            data_dir,
        };
        fixture.spawn(0).await?;
        Ok(fixture)
    }

    /// The HTTP endpoint, `http://127.0.0.1:PORT`; the same across [`restart`](Self::restart).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The TCP port the fixture listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The chDB data directory (kept across [`stop`](Self::stop) and
    /// [`restart`](Self::restart), removed on drop).
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// Creates `test_<random>` and returns its name.
    pub async fn fresh_database(&self) -> Result<String, FixtureError> {
        let name = format!("test_{:016x}", fastrand::u64(..));
        self.query_text(&format!("CREATE DATABASE {name}")).await?;
        Ok(name)
    }

    /// Runs one query over plain HTTP (`POST /`, SQL in the body) and returns its output,
    /// TabSeparated unless the query says `FORMAT ...`.
    pub async fn query_text(&self, sql: &str) -> Result<String, FixtureError> {
        let response = self.http.post(format!("{}/", self.url())).body(sql.to_owned()).send().await?;
        let status = response.status();
        let code = response
            .headers()
            .get("X-ClickHouse-Exception-Code")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<i32>().ok());
        let text = response.text().await?;
        if status.is_success() && code.is_none() {
            Ok(text)
        } else {
            Err(FixtureError::Query { status: status.as_u16(), code, message: text.trim().to_owned() })
        }
    }

    /// Stops the process: SIGTERM, then SIGKILL if it lingers. The data directory is kept
    /// and the port is reused by [`restart`](Self::restart); until then, requests fail to
    /// connect.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()).and_then(rustix::process::Pid::from_raw) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        // The fixture also stops when its stdin closes.
        self.stdin = None;
        if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_err() {
            eprintln!("[clickhouse-fixture] still running {STOP_GRACE:?} after SIGTERM: killing it");
            let _ = child.kill().await;
        }
    }

    /// Freezes the process (SIGSTOP): it keeps its port and open connections but answers
    /// nothing, as a hung or overloaded server would. [`resume`](Self::resume) thaws it;
    /// [`kill`](Self::kill) and [`restart`](Self::restart) work on a frozen process too.
    pub fn pause(&self) {
        self.signal(rustix::process::Signal::STOP);
    }

    /// Thaws a process frozen by [`pause`](Self::pause) (SIGCONT).
    pub fn resume(&self) {
        self.signal(rustix::process::Signal::CONT);
    }

    fn signal(&self, signal: rustix::process::Signal) {
        let pid = self.child.as_ref().and_then(|child| child.id()).and_then(|id| i32::try_from(id).ok());
        if let Some(pid) = pid.and_then(rustix::process::Pid::from_raw) {
            let _ = rustix::process::kill_process(pid, signal);
        }
    }

    /// Kills the process at once (SIGKILL), as a crash would; the data directory is kept.
    pub async fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        self.stdin = None;
        let _ = child.kill().await;
    }

    /// Starts the process again on the same port and data directory (stopping it first if it
    /// still runs). Everything committed before is there again.
    pub async fn restart(&mut self) -> Result<(), FixtureError> {
        self.stop().await;
        let deadline = tokio::time::Instant::now() + REBIND_TIMEOUT;
        loop {
            match self.spawn(self.port).await {
                Err(FixtureError::Start(message))
                    if message.contains("cannot listen") && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => return other,
            }
        }
    }

    async fn spawn(&mut self, port: u16) -> Result<(), FixtureError> {
        if let Ok(mut tail) = self.stderr_tail.lock() {
            tail.clear();
        }
        let mut command = Command::new(&self.python);
        command
            .arg(&self.script)
            .arg("--data-dir")
            .arg(self.data_dir.path().join("chdb"))
            .arg("--port")
            .arg(port.to_string())
            .arg("--exit-on-stdin-eof")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|err| {
            FixtureError::NotInstalled(format!("cannot run {}: {err}; {SETUP_HINT}", self.python.display()))
        })?;
        let stdin = child.stdin.take();
        if let Some(stderr) = child.stderr.take() {
            let tail = Arc::clone(&self.stderr_tail);
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    eprintln!("[clickhouse-fixture] {line}");
                    if let Ok(mut tail) = tail.lock() {
                        if tail.len() == STDERR_TAIL {
                            tail.pop_front();
                        }
                        tail.push_back(line);
                    }
                }
            });
        }
        let Some(stdout) = child.stdout.take() else {
            return Err(FixtureError::Start("no stdout pipe".to_owned()));
        };
        match tokio::time::timeout(READY_TIMEOUT, wait_ready(stdout)).await {
            Ok(Ok(ready_port)) => {
                self.port = ready_port;
                self.stdin = stdin;
                self.child = Some(child);
                Ok(())
            }
            Ok(Err(err)) => {
                // stdout closed before READY: the process is exiting; tell why.
                let status = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
                // Let the stderr task drain the last lines.
                tokio::time::sleep(Duration::from_millis(50)).await;
                Err(self.start_failure(status.ok().and_then(Result::ok), &err))
            }
            Err(_) => {
                let _ = child.kill().await;
                Err(FixtureError::Start(format!(
                    "no READY line within {READY_TIMEOUT:?}; stderr: {}",
                    self.stderr_text()
                )))
            }
        }
    }

    fn start_failure(&self, status: Option<ExitStatus>, err: &std::io::Error) -> FixtureError {
        let stderr = self.stderr_text();
        let status_text = status.map_or_else(|| "unknown".to_owned(), |s| s.to_string());
        if status.and_then(|s| s.code()) == Some(3) || stderr.contains("No module named") {
            FixtureError::NotInstalled(format!(
                "{} cannot import chdb/lz4 ({status_text}); {SETUP_HINT}; stderr: {stderr}",
                self.python.display()
            ))
        } else {
            FixtureError::Start(format!("{err} ({status_text}); stderr: {stderr}"))
        }
    }

    fn stderr_text(&self) -> String {
        self.stderr_tail.lock().map(|tail| tail.iter().cloned().collect::<Vec<_>>().join("\n")).unwrap_or_default()
    }
}

impl Drop for ClickHouseFixture {
    fn drop(&mut self) {
        self.stdin = None;
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            // Reap it so that the data directory is not in use while it is removed.
            for _ in 0..100 {
                match child.try_wait() {
                    Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                    _ => break,
                }
            }
        }
        // `data_dir` (a TempDir) removes itself after this.
    }
}

/// Reads the fixture's stdout up to `READY <port>`, then keeps draining it to stderr.
async fn wait_ready(stdout: ChildStdout) -> Result<u16, std::io::Error> {
    let mut lines = BufReader::new(stdout).lines();
    while let Some(line) = lines.next_line().await? {
        if let Some(port) = line.strip_prefix("READY ") {
            let port = port.trim().parse::<u16>().map_err(|err| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad READY line {line:?}: {err}"))
            })?;
            tokio::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    eprintln!("[clickhouse-fixture stdout] {line}");
                }
            });
            return Ok(port);
        }
        eprintln!("[clickhouse-fixture stdout] {line}");
    }
    Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the fixture exited before printing READY"))
}

/// `$GLASSBOX_PYTHON`, else `$HOME/.cache/glassbox/venv/bin/python`.
fn find_python() -> Result<PathBuf, FixtureError> {
    let (python, origin) = match std::env::var_os("GLASSBOX_PYTHON").filter(|v| !v.is_empty()) {
        Some(python) => (PathBuf::from(python), "GLASSBOX_PYTHON"),
        None => {
            let home = std::env::var_os("HOME").filter(|v| !v.is_empty()).ok_or_else(|| {
                FixtureError::NotInstalled(format!("neither GLASSBOX_PYTHON nor HOME is set; {SETUP_HINT}"))
            })?;
            (PathBuf::from(home).join(".cache/glassbox/venv/bin/python"), "the default venv")
        }
    };
    if python.is_file() {
        Ok(python)
    } else {
        Err(FixtureError::NotInstalled(format!("no Python at {} ({origin}); {SETUP_HINT}", python.display())))
    }
}

/// `tests/clickhouse/fixture.py` of this workspace (or `$GLASSBOX_CLICKHOUSE_FIXTURE`).
fn fixture_script() -> Result<PathBuf, FixtureError> {
    let script = std::env::var_os("GLASSBOX_CLICKHOUSE_FIXTURE")
        .filter(|v| !v.is_empty())
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/clickhouse/fixture.py"), PathBuf::from);
    if script.is_file() {
        Ok(script)
    } else {
        Err(FixtureError::NotInstalled(format!("the fixture script {} is missing", script.display())))
    }
}

fn http_client() -> Result<reqwest::Client, FixtureError> {
    static TLS_PROVIDER: Once = Once::new();
    TLS_PROVIDER.call_once(|| {
        // Another part of the process may have installed one already; either is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    Ok(reqwest::Client::builder().no_proxy().tcp_nodelay(true).timeout(QUERY_TIMEOUT).build()?)
}

/// What a log layer writes, kept in memory: hand `logs.writer()` to
/// `tracing_subscriber::fmt::layer().with_writer(...)` (or anything taking a `MakeWriter`)
/// and read it back with [`CapturedLogs::text`] or [`CapturedLogs::lines`].
#[derive(Debug, Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut captured = self.0.lock().map_err(|_| std::io::Error::other("the captured logs' lock is poisoned"))?;
        captured.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    /// A `MakeWriter`: every writer it makes appends here.
    pub fn writer(&self) -> impl Fn() -> Self + Send + Sync + 'static {
        let logs = self.clone();
        move || logs.clone()
    }

    /// Everything written so far (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        self.0.lock().map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).unwrap_or_default()
    }

    /// [`CapturedLogs::text`] line by line.
    pub fn lines(&self) -> Vec<String> {
        self.text().lines().map(str::to_owned).collect()
    }
}
