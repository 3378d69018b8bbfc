//! Model clients over reqwest (OpenAI-compatible chat completions, Anthropic messages), the
//! deterministic mock provider, and config-declared HTTP tools.
//!
//! Every client here implements [`glassbox_core::LanguageModel`]; the agent loop never sees a
//! wire format. The shared rules for all HTTP models live in `http`: one pooled client per
//! model, connect / first-byte / total deadlines, status-to-[`ProviderError`] mapping, and
//! retries with jittered exponential backoff that happen only before any output was yielded.
//!
//! Stream semantics (what the agent loop can rely on):
//! - `stream()` returns only after the provider's first server-sent event arrived, so every
//!   error that can still be retried (status codes, refused connections, a provider `error`
//!   event at the very start) is returned from `stream()` itself, after the retries.
//! - Inside the stream, an error ends it and is never retried: a transport failure or a stream
//!   that stops before the provider's end marker is [`ProviderError::StreamInterrupted`], an
//!   unparsable chunk is [`ProviderError::MalformedResponse`], the total deadline is
//!   [`ProviderError::Timeout`] with phase `Total`.
//! - A stream that completes ends with exactly one [`glassbox_core::ModelEvent::Finish`] holding
//!   the assembled response (text, parsed tool calls, usage, finish reason).
//!
//! [`ProviderError`]: glassbox_core::ProviderError
//! [`ProviderError::StreamInterrupted`]: glassbox_core::ProviderError::StreamInterrupted
//! [`ProviderError::MalformedResponse`]: glassbox_core::ProviderError::MalformedResponse
//! [`ProviderError::Timeout`]: glassbox_core::ProviderError::Timeout

mod anthropic;
mod captured;
mod http;
mod http_tool;
mod mock;
mod openai;
mod schema_instance;

use std::fmt;
use std::time::Duration;

pub use captured::{DecodedStream, StreamFormat, decode_stream};
pub use anthropic::{AnthropicModel, DEFAULT_MAX_TOKENS as ANTHROPIC_DEFAULT_MAX_TOKENS};
pub use http::install_crypto_provider;
pub use http_tool::{HttpMethod, HttpTool};
pub use mock::{MOCK_MODELS, MockModel};
pub use openai::OpenAiModel;

/// The official OpenAI API; any OpenAI-compatible server (Ollama, vLLM, llama.cpp) works with
/// its own base URL instead, e.g. `http://localhost:11434/v1`.
pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
/// The official Anthropic API.
pub const DEFAULT_ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com/v1";

/// How to reach one HTTP model, as the configuration declares it.
#[derive(Clone)]
pub struct HttpModelSettings {
    /// The model name sent to the provider.
    pub model: String,
    /// The API root, without the endpoint: `https://api.openai.com/v1`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer` (OpenAI) or `x-api-key` (Anthropic); never logged.
    pub api_key: Option<String>,
    /// Deadline for the TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Deadline from sending the request until the response headers arrive and, for streamed
    /// calls, until the first server-sent event arrives. For a plain call many providers send
    /// the headers only once the whole answer is ready, so this bounds generation time there.
    pub first_byte_timeout: Duration,
    /// Deadline for the whole call including retries; for a stream, until its last event.
    pub total_timeout: Duration,
    /// How many times a retryable failure (429, 5xx, connection errors) is retried.
    pub max_retries: u32,
    /// Extra request headers (for gateways, organisation ids, ...). Values are never logged.
    pub headers: Vec<(String, String)>,
}

impl HttpModelSettings {
    /// Settings with sensible defaults: 10 s connect, 60 s first byte, 10 min total, 2 retries,
    /// no API key and no extra headers.
    pub fn new(model: impl Into<String>, base_url: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            base_url: base_url.into(),
            api_key: None,
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(60),
            total_timeout: Duration::from_secs(600),
            max_retries: 2,
            headers: Vec::new(),
        }
    }
}

impl fmt::Debug for HttpModelSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key and header values are credentials more often than not: never print them.
        let header_names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("HttpModelSettings")
            .field("model", &self.model)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("connect_timeout", &self.connect_timeout)
            .field("first_byte_timeout", &self.first_byte_timeout)
            .field("total_timeout", &self.total_timeout)
            .field("max_retries", &self.max_retries)
            .field("headers", &header_names)
            .finish()
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a model client or tool could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid URL `{url}`: {reason}")]
    InvalidUrl {
        url: String,
        reason: String,
        #[source]
        source: Option<BoxError>,
    },
    /// The header's value is deliberately not part of the message: it may be a credential.
    #[error("invalid HTTP header `{name}`")]
    InvalidHeader {
        name: String,
        #[source]
        source: BoxError,
    },
    #[error("the API key contains characters that cannot be sent in an HTTP header")]
    InvalidApiKey {
        #[source]
        source: BoxError,
    },
    #[error("unknown mock model `{model}`; known mock models: {known}")]
    UnknownMockModel { model: String, known: String },
    #[error("could not build the HTTP client")]
    Client {
        #[source]
        source: reqwest::Error,
    },
}
