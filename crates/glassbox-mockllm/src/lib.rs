//! A mock LLM server speaking the OpenAI and Anthropic wire formats, with scripted answers and
//! injected faults, for tests and benchmarks.
//!
//! [`MockLlm::start`] binds a real HTTP server on `127.0.0.1:0`. Point an OpenAI client at
//! [`MockLlm::openai_base_url`] (it posts `{base}/chat/completions`) or an Anthropic client at
//! [`MockLlm::anthropic_base_url`] (it posts `{base}/messages`). Each model request pops the
//! next [`Reply`] pushed with [`MockLlm::push`]; with nothing scripted, the request's `model`
//! picks a deterministic default: `fault-429`, `fault-500`, ... inject a [`Fault`] (see
//! [`Fault::from_model_name`]), `mock-tool` calls the first offered tool and then answers
//! `Tool result: <content>`, anything else answers `Mock reply to: <last user message text>`.
//!
//! Every request is recorded ([`MockLlm::requests`]), including invalid ones and unknown paths.
//! Usage is deterministic, four characters a token rounded up: input tokens are
//! `ceil(chars of all message texts, system prompt and tool results / 4)` (at least 1), output
//! tokens `ceil(answer chars / 4)` (a tool call counts its name plus its JSON arguments);
//! prompts over 4096 characters report half their input tokens as cache reads.
//!
//! The server runs on the tokio runtime that started it and stops when the handle is shut
//! down or dropped; requests still hanging then see their connection closed.

mod answer;
mod anthropic;
mod conversation;
mod openai;
mod script;
mod server;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

pub use crate::script::{Fault, Reply, ScriptedToolCall};

/// One request the mock received, in arrival order.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The URI path, without the query (`/v1/chat/completions`).
    pub path: String,
    pub headers: http::HeaderMap,
    /// The JSON body; the raw text as a JSON string when the body was not JSON, `Null` when
    /// it was empty.
    pub body: serde_json::Value,
}

/// A running mock LLM server; it stops when shut down or dropped.
pub struct MockLlm {
    addr: SocketAddr,
    shared: Arc<server::Shared>,
    server_task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for MockLlm {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("MockLlm").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl MockLlm {
    /// Starts a server on `127.0.0.1` with an OS-assigned port and no latency.
    pub async fn start() -> std::io::Result<MockLlm> {
        MockLlm::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Starts a server on `addr` (port 0 picks a free port) with no latency.
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<MockLlm> {
        let shared = Arc::new(server::Shared::default());
        let (addr, server_task) = server::spawn(addr, Arc::clone(&shared)).await?;
        Ok(MockLlm { addr, shared, server_task })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `{base_url}/v1`; an OpenAI client posts `{this}/chat/completions`.
    pub fn openai_base_url(&self) -> String {
        format!("{}/v1", self.base_url())
    }

    /// `{base_url}/v1`; an Anthropic client posts `{this}/messages`.
    pub fn anthropic_base_url(&self) -> String {
        format!("{}/v1", self.base_url())
    }

    /// Queues a reply; each valid model request pops the oldest one (FIFO). A request that
    /// answers 400 for being invalid does not consume the script.
    pub fn push(&self, reply: Reply) {
        self.shared.push(reply);
    }

    /// Every request received so far (since the last [`MockLlm::clear_requests`]), in arrival
    /// order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests()
    }

    /// How many requests are kept (since the last [`MockLlm::clear_requests`]; none while
    /// [`MockLlm::keep_requests`] is off).
    pub fn request_count(&self) -> usize {
        self.shared.request_count()
    }

    /// Forgets the recorded requests, so a long benchmark does not keep every body in memory.
    /// Response ids keep counting up.
    pub fn clear_requests(&self) {
        self.shared.clear_requests();
    }

    /// Whether requests are kept for [`MockLlm::requests`] (the default) or only counted and
    /// numbered; `false` also forgets those kept so far. A process serving a long load test
    /// that nobody reads the requests of keeps its memory flat this way.
    pub fn keep_requests(&self, keep: bool) {
        self.shared.keep_requests(keep);
    }

    /// Sets the delay between receiving a request and starting its response (faults
    /// included); applies to requests that arrive afterwards.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.set_latency(latency);
    }

    /// Stops accepting connections and closes every open one, then returns.
    pub async fn shutdown(mut self) {
        self.server_task.abort();
        // The task never finishes on its own, so this only waits for the abort to land.
        let _cancelled = (&mut self.server_task).await;
    }
}

impl Drop for MockLlm {
    fn drop(&mut self) {
        self.server_task.abort();
    }
}
