//! HTTP plumbing shared by the OpenAI and Anthropic clients: client construction, deadlines,
//! status-to-error mapping, retries, and turning a server-sent-event body into a
//! [`ModelStream`].
//!
//! Deadlines: `connect_timeout` is reqwest's; the first-byte deadline starts with each attempt
//! and runs until the response headers and, for streams, until the first event; the total
//! deadline starts with the call, covers every attempt and backoff, and for a stream keeps
//! running inside the stream until its last event.
//!
//! Retries: only errors that [`ProviderError::is_retryable`] allows, at most `max_retries`
//! times, with exponential backoff and full jitter, or exactly the provider's `Retry-After`
//! (capped). A retry never happens once the caller has seen output: [`Transport::stream`]
//! returns the stream only when it holds the first output event.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Once;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures::{Stream, StreamExt};
use glassbox_core::{ModelEvent, ModelResponse, ModelStream, ProviderError, TimeoutPhase};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use tokio::time::Instant;

use crate::{BuildError, HttpModelSettings};

/// The first retry waits up to this long; each further retry doubles it.
pub(crate) const DEFAULT_RETRY_BASE: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// The longest `Retry-After` that is waited out; longer ones are cut to this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
const MAX_ERROR_MESSAGE_CHARS: usize = 500;
const USER_AGENT: &str = concat!("glassbox/", env!("CARGO_PKG_VERSION"));

/// Installs rustls's ring crypto provider as the process default, once. reqwest is built with
/// `rustls-no-provider` (to avoid compiling aws-lc) and panics without a default provider.
/// Every client in this crate calls it before building; a program or test that builds its own
/// reqwest client calls it first too.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // An error means the embedding program installed a provider already, which is fine.
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A reqwest client with rustls. `default_headers` go on every request, so per-request work
/// does not copy them.
pub(crate) fn build_client(
    connect_timeout: Option<Duration>,
    default_headers: HeaderMap,
) -> Result<reqwest::Client, BuildError> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .tls_backend_rustls()
        .tcp_nodelay(true)
        .user_agent(USER_AGENT)
        .default_headers(default_headers);
    if let Some(connect_timeout) = connect_timeout {
        builder = builder.connect_timeout(connect_timeout);
    }
    builder.build().map_err(|source| BuildError::Client { source })
}

/// Parses an absolute http(s) URL.
pub(crate) fn parse_url(url: &str) -> Result<reqwest::Url, BuildError> {
    let parsed = reqwest::Url::parse(url).map_err(|source| BuildError::InvalidUrl {
        url: url.to_owned(),
        reason: source.to_string(),
        source: Some(Box::new(source)),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(BuildError::InvalidUrl {
            url: url.to_owned(),
            reason: "the scheme must be http or https".to_owned(),
            source: None,
        });
    }
    Ok(parsed)
}

/// `{base_url}/{endpoint}`, tolerating a trailing slash on the base.
pub(crate) fn endpoint_url(base_url: &str, endpoint: &str) -> Result<reqwest::Url, BuildError> {
    parse_url(&format!("{}/{endpoint}", base_url.trim_end_matches('/')))
}

/// Adds configured headers to `map`, marking every value sensitive so that reqwest's and
/// hyper's debug output never shows it.
pub(crate) fn extend_headers(map: &mut HeaderMap, pairs: &[(String, String)]) -> Result<(), BuildError> {
    for (name, value) in pairs {
        let invalid = |source: BoxError| BuildError::InvalidHeader { name: name.clone(), source };
        let header_name = HeaderName::from_bytes(name.as_bytes()).map_err(|err| invalid(Box::new(err)))?;
        let header_value = sensitive_value(value).map_err(|err| invalid(Box::new(err)))?;
        map.insert(header_name, header_value);
    }
    Ok(())
}

pub(crate) fn sensitive_value(value: &str) -> Result<HeaderValue, reqwest::header::InvalidHeaderValue> {
    let mut header_value = HeaderValue::from_str(value)?;
    header_value.set_sensitive(true);
    Ok(header_value)
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The deadlines one attempt works under.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadlines {
    pub(crate) first_byte: Instant,
    pub(crate) total: Instant,
}

/// One model endpoint with its client, deadlines and retry policy.
pub(crate) struct Transport {
    client: reqwest::Client,
    url: reqwest::Url,
    provider: &'static str,
    model: String,
    connect_timeout: Duration,
    first_byte_timeout: Duration,
    total_timeout: Duration,
    max_retries: u32,
    retry_base: Duration,
}

impl Transport {
    /// `auth_headers` are the provider's credential and protocol headers; the configured extra
    /// headers from `settings` are added after them and so may override them.
    pub(crate) fn new(
        provider: &'static str,
        settings: &HttpModelSettings,
        endpoint: &str,
        mut headers: HeaderMap,
    ) -> Result<Self, BuildError> {
        let url = endpoint_url(&settings.base_url, endpoint)?;
        extend_headers(&mut headers, &settings.headers)?;
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let client = build_client(Some(settings.connect_timeout), headers)?;
        Ok(Self {
            client,
            url,
            provider,
            model: settings.model.clone(),
            connect_timeout: settings.connect_timeout,
            first_byte_timeout: settings.first_byte_timeout,
            total_timeout: settings.total_timeout,
            max_retries: settings.max_retries,
            retry_base: DEFAULT_RETRY_BASE,
        })
    }

    pub(crate) fn url(&self) -> &reqwest::Url {
        &self.url
    }

    pub(crate) fn set_retry_base(&mut self, retry_base: Duration) {
        self.retry_base = retry_base;
    }

    /// A plain call: the whole body, read within the total deadline (retried as a whole).
    pub(crate) async fn post(&self, body: Bytes) -> Result<Bytes, ProviderError> {
        let body = &body;
        self.with_retries(|deadlines| async move {
            let response = self.send(body, deadlines).await?;
            response.bytes().await.map_err(|source| ProviderError::Connection { source: Box::new(source) })
        })
        .await
        .map(|(bytes, _)| bytes)
    }

    /// A streamed call. Returns once the decoder produced its first output event (or the
    /// provider's end marker), so everything before that can still be retried; after that the
    /// stream's errors end it.
    pub(crate) async fn stream<D, F>(&self, body: Bytes, new_decoder: F) -> Result<ModelStream, ProviderError>
    where
        D: SseDecoder,
        F: Fn() -> D,
    {
        let body = &body;
        let new_decoder = &new_decoder;
        let (started, deadlines) = self
            .with_retries(|deadlines| async move {
                let response = self.send(body, deadlines).await?;
                let events: SseEvents = Box::pin(response.bytes_stream().eventsource());
                start_stream(events, new_decoder(), deadlines, self.first_byte_timeout).await
            })
            .await?;
        Ok(started.into_model_stream(deadlines.total, self.total_timeout))
    }

    /// Runs `attempt` until it succeeds, fails for good, or runs out of retries or time.
    /// Returns the result with the deadlines of the successful attempt.
    async fn with_retries<T, F, Fut>(&self, mut attempt: F) -> Result<(T, Deadlines), ProviderError>
    where
        F: FnMut(Deadlines) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let started = Instant::now();
        let total = started + self.total_timeout;
        let mut retries_done = 0u32;
        loop {
            let deadlines = Deadlines { first_byte: Instant::now() + self.first_byte_timeout, total };
            tracing::debug!(
                provider = self.provider,
                model = %self.model,
                attempt = retries_done + 1,
                "sending model request"
            );
            let outcome = match tokio::time::timeout_at(total, attempt(deadlines)).await {
                Ok(outcome) => outcome,
                Err(_elapsed) => Err(ProviderError::Timeout { phase: TimeoutPhase::Total, after: self.total_timeout }),
            };
            let error = match outcome {
                Ok(value) => return Ok((value, deadlines)),
                Err(error) => error,
            };
            if !error.is_retryable() || retries_done >= self.max_retries {
                return Err(error);
            }
            let delay = self.retry_delay(&error, retries_done);
            let remaining = total.saturating_duration_since(Instant::now());
            if delay >= remaining {
                tracing::warn!(
                    provider = self.provider,
                    model = %self.model,
                    error.kind = error.kind(),
                    delay_ms = delay.as_millis() as u64,
                    remaining_ms = remaining.as_millis() as u64,
                    "not retrying model call: the wait would exceed the total timeout"
                );
                return Err(error);
            }
            retries_done += 1;
            tracing::warn!(
                provider = self.provider,
                model = %self.model,
                retry = retries_done,
                max_retries = self.max_retries,
                error.kind = error.kind(),
                error = %error,
                delay_ms = delay.as_millis() as u64,
                "retrying model call"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// `Retry-After` when the provider gave one (capped), else exponential backoff with full
    /// jitter: a uniform wait in `[0, min(base * 2^n, 10 s)]`.
    fn retry_delay(&self, error: &ProviderError, retries_done: u32) -> Duration {
        if let ProviderError::RateLimited { retry_after: Some(retry_after), .. } = error {
            return (*retry_after).min(MAX_RETRY_AFTER);
        }
        let ceiling = self.retry_base.saturating_mul(1u32 << retries_done.min(20)).min(MAX_BACKOFF);
        let ceiling_micros = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(fastrand::u64(0..=ceiling_micros))
    }

    /// Sends the request and waits for a successful status within the first-byte deadline.
    async fn send(&self, body: &Bytes, deadlines: Deadlines) -> Result<reqwest::Response, ProviderError> {
        let pending = self.client.post(self.url.clone()).body(body.clone()).send();
        let response = match tokio::time::timeout_at(deadlines.first_byte, pending).await {
            Err(_elapsed) => {
                return Err(ProviderError::Timeout { phase: TimeoutPhase::FirstByte, after: self.first_byte_timeout });
            }
            Ok(Err(error)) => return Err(self.send_error(error)),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = retry_after(response.headers());
        // The error body is best effort: a failure to read it must not hide the status.
        let body = response.text().await.unwrap_or_default();
        tracing::debug!(provider = self.provider, model = %self.model, status = status.as_u16(), "provider answered an error status");
        Err(status_error(status.as_u16(), retry_after, &body))
    }

    fn send_error(&self, error: reqwest::Error) -> ProviderError {
        if error.is_connect() && error.is_timeout() {
            ProviderError::Timeout { phase: TimeoutPhase::Connect, after: self.connect_timeout }
        } else {
            ProviderError::Connection { source: Box::new(error) }
        }
    }
}

/// Maps an error status to the typed error, with the provider's message from its body.
pub(crate) fn status_error(status: u16, retry_after: Option<Duration>, body: &str) -> ProviderError {
    let message = error_message(body);
    match status {
        401 | 403 => ProviderError::Auth { status, message },
        429 => ProviderError::RateLimited { retry_after, message },
        400..=499 => ProviderError::BadRequest { status, message },
        _ => ProviderError::Upstream { status, message },
    }
}

/// The human-readable message of an error body: OpenAI and Anthropic both use
/// `{"error": {"message": ..}}` (Anthropic adds `type`), some compatible servers use
/// `{"error": ".."}`, `{"message": ..}` or `{"detail": ..}`; anything else is the raw text.
pub(crate) fn error_message(body: &str) -> String {
    let from_json = serde_json::from_str::<serde_json::Value>(body).ok().and_then(|value| {
        let error = value.get("error");
        if let Some(message) = error.and_then(|error| error.get("message")).and_then(|m| m.as_str()) {
            return Some(match error.and_then(|error| error.get("type")).and_then(|t| t.as_str()) {
                Some(kind) => format!("{kind}: {message}"),
                None => message.to_owned(),
            });
        }
        [error, value.get("message"), value.get("detail")]
            .into_iter()
            .flatten()
            .find_map(|candidate| candidate.as_str().map(str::to_owned))
    });
    let message = from_json.unwrap_or_else(|| body.trim().to_owned());
    if message.is_empty() { "(empty error body)".to_owned() } else { truncate(&message, MAX_ERROR_MESSAGE_CHARS) }
}

/// At most `max_chars` characters, with an ellipsis when cut.
pub(crate) fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// `retry-after-ms` (OpenAI's, milliseconds) or `Retry-After` (seconds or an HTTP date).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).map(str::trim);
    if let Some(millis) = header("retry-after-ms").and_then(|value| value.parse::<f64>().ok())
        && millis.is_finite()
        && millis >= 0.0
    {
        return Some(Duration::from_secs_f64(millis / 1000.0));
    }
    let value = header("retry-after")?;
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

/// A provider's stream format: turns server-sent events into [`ModelEvent`]s and assembles the
/// final response.
pub(crate) trait SseDecoder: Send + 'static {
    /// Decodes one event, pushing any output to `out`. Returns `true` when the event was the
    /// provider's end marker (nothing after it is read).
    fn on_event(&mut self, event: &Event, out: &mut VecDeque<ModelEvent>) -> Result<bool, ProviderError>;
    /// Whether a body that ends now, without the end marker, still holds the whole answer.
    fn is_complete(&self) -> bool;
    /// The assembled response, after the end.
    fn finish(self) -> Result<ModelResponse, ProviderError>;
}

type SseEvents = Pin<Box<dyn Stream<Item = Result<Event, EventStreamError<reqwest::Error>>> + Send>>;

/// A stream that has produced its first output, ready to hand to the caller.
struct StartedStream<D> {
    events: SseEvents,
    decoder: D,
    pending: VecDeque<ModelEvent>,
    ended: bool,
}

/// Reads events until the decoder has output (or the stream ended), so that failures before
/// any output stay retryable. The first event must arrive before the first-byte deadline.
async fn start_stream<D: SseDecoder>(
    mut events: SseEvents,
    mut decoder: D,
    deadlines: Deadlines,
    first_byte_timeout: Duration,
) -> Result<StartedStream<D>, ProviderError> {
    let mut pending = VecDeque::new();
    let mut first = true;
    loop {
        let next = if first {
            first = false;
            match tokio::time::timeout_at(deadlines.first_byte, events.next()).await {
                Ok(next) => next,
                Err(_elapsed) => {
                    return Err(ProviderError::Timeout { phase: TimeoutPhase::FirstByte, after: first_byte_timeout });
                }
            }
        } else {
            // The caller's total deadline bounds this wait.
            events.next().await
        };
        let event = match next {
            None if decoder.is_complete() => return Ok(StartedStream { events, decoder, pending, ended: true }),
            None => return Err(ProviderError::StreamInterrupted { source: None }),
            // Nothing reached the caller yet, so a broken connection is still worth a retry.
            Some(Err(EventStreamError::Transport(source))) => {
                return Err(ProviderError::Connection { source: Box::new(source) });
            }
            Some(Err(error)) => return Err(sse_error(error)),
            Some(Ok(event)) => event,
        };
        let ended = decoder.on_event(&event, &mut pending)?;
        if ended || !pending.is_empty() {
            return Ok(StartedStream { events, decoder, pending, ended });
        }
    }
}

impl<D: SseDecoder> StartedStream<D> {
    fn into_model_stream(self, total_deadline: Instant, total_timeout: Duration) -> ModelStream {
        let StartedStream { mut events, mut decoder, mut pending, ended } = self;
        Box::pin(async_stream::stream! {
            let mut ended = ended;
            loop {
                while let Some(event) = pending.pop_front() {
                    yield Ok(event);
                }
                if ended {
                    yield decoder.finish().map(ModelEvent::Finish);
                    return;
                }
                let next = match tokio::time::timeout_at(total_deadline, events.next()).await {
                    Ok(next) => next,
                    Err(_elapsed) => {
                        yield Err(ProviderError::Timeout { phase: TimeoutPhase::Total, after: total_timeout });
                        return;
                    }
                };
                match next {
                    None if decoder.is_complete() => ended = true,
                    None => {
                        yield Err(ProviderError::StreamInterrupted { source: None });
                        return;
                    }
                    Some(Err(EventStreamError::Transport(source))) => {
                        yield Err(ProviderError::StreamInterrupted { source: Some(Box::new(source)) });
                        return;
                    }
                    Some(Err(error)) => {
                        yield Err(sse_error(error));
                        return;
                    }
                    Some(Ok(event)) => match decoder.on_event(&event, &mut pending) {
                        Ok(end_marker) => ended = end_marker,
                        Err(error) => {
                            // Deltas decoded before the failure are still delivered first.
                            while let Some(event) = pending.pop_front() {
                                yield Ok(event);
                            }
                            yield Err(error);
                            return;
                        }
                    },
                }
            }
        })
    }
}

/// A body that is not valid UTF-8 or not valid server-sent events.
pub(crate) fn sse_error<E>(error: EventStreamError<E>) -> ProviderError
where
    E: std::error::Error + Send + Sync + 'static,
{
    ProviderError::MalformedResponse {
        message: format!("invalid server-sent event stream: {error}"),
        source: Some(Box::new(error)),
    }
}

/// Parses a provider's JSON answer. A body that is valid UTF-8 as a whole is parsed as text, so
/// serde_json does not check each of its strings and keys again (some 30 in a chat answer:
/// 2,200 instructions per benchmark request); any other body goes through `from_slice`, whose
/// error names the bad bytes' place.
pub(crate) fn parse_answer<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(bytes),
    }
}

/// A chunk whose JSON does not parse.
pub(crate) fn malformed(what: &str, error: serde_json::Error) -> ProviderError {
    ProviderError::MalformedResponse { message: format!("{what}: {error}"), source: Some(Box::new(error)) }
}

/// Serializes a request body. The wire structs only hold strings, numbers and JSON values, so
/// this cannot fail in practice; if it did, the request never left and the caller is told so.
pub(crate) fn encode_body<T: serde::Serialize>(body: &T) -> Result<Bytes, ProviderError> {
    serde_json::to_vec(body).map(Bytes::from).map_err(|error| ProviderError::BadRequest {
        status: 0,
        message: format!("could not encode the request body: {error}"),
    })
}

/// Parses tool-call arguments sent as a JSON string; an empty string means no arguments.
pub(crate) fn parse_arguments(tool: &str, arguments: &str) -> Result<serde_json::Value, ProviderError> {
    if arguments.trim().is_empty() {
        return Ok(serde_json::Value::Object(serde_json::Map::new()));
    }
    serde_json::from_str(arguments).map_err(|error| ProviderError::MalformedResponse {
        message: format!("arguments of tool call `{tool}` are not valid JSON: {error}"),
        source: Some(Box::new(error)),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse_alike_as_text_and_as_bytes_and_bad_utf8_is_placed() {
        let answer = "{\"id\":\"c1\",\"text\":\"héllo \\u00e9\",\"n\":[1,2]}".as_bytes();
        let parsed: serde_json::Value = parse_answer(answer).unwrap();
        assert_eq!(parsed, serde_json::from_slice::<serde_json::Value>(answer).unwrap());
        assert_eq!(parsed["text"], "héllo é");

        let mut bad = b"{\"text\":\"ab".to_vec();
        bad.extend_from_slice(&[0xff, b'"', b'}']);
        let error = parse_answer::<serde_json::Value>(&bad).unwrap_err();
        let from_slice = serde_json::from_slice::<serde_json::Value>(&bad).unwrap_err();
        assert_eq!(error.to_string(), from_slice.to_string());
        assert_eq!(error.column(), from_slice.column());
    }

    #[test]
    fn error_message_prefers_the_providers_message() {
        assert_eq!(
            error_message(r#"{"error":{"message":"bad key","type":"invalid_request_error"}}"#),
            "invalid_request_error: bad key"
        );
        assert_eq!(error_message(r#"{"error":{"message":"nope"}}"#), "nope");
        assert_eq!(error_message(r#"{"error":"model not found"}"#), "model not found");
        assert_eq!(error_message(r#"{"object":"error","message":"vllm says no"}"#), "vllm says no");
        assert_eq!(error_message("  plain text  "), "plain text");
        assert_eq!(error_message(""), "(empty error body)");
        let long = "x".repeat(2000);
        assert_eq!(error_message(&long).chars().count(), MAX_ERROR_MESSAGE_CHARS + 1);
    }

    #[test]
    fn retry_after_reads_seconds_milliseconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert("retry-after-ms", HeaderValue::from_static("1500"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(1500)));

        let mut headers = HeaderMap::new();
        let in_a_minute = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(61));
        headers.insert("retry-after", HeaderValue::from_str(&in_a_minute).unwrap());
        let parsed = retry_after(&headers).unwrap();
        assert!(parsed > Duration::from_secs(55) && parsed <= Duration::from_secs(61), "{parsed:?}");

        headers.insert("retry-after", HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn statuses_map_to_typed_errors() {
        assert!(matches!(status_error(401, None, ""), ProviderError::Auth { status: 401, .. }));
        assert!(matches!(status_error(403, None, ""), ProviderError::Auth { status: 403, .. }));
        assert!(matches!(
            status_error(429, Some(Duration::from_secs(3)), ""),
            ProviderError::RateLimited { retry_after: Some(after), .. } if after == Duration::from_secs(3)
        ));
        assert!(matches!(status_error(404, None, ""), ProviderError::BadRequest { status: 404, .. }));
        assert!(matches!(status_error(529, None, ""), ProviderError::Upstream { status: 529, .. }));
        assert!(status_error(503, None, "").is_retryable());
    }

    #[test]
    fn backoff_stays_under_its_ceiling() {
        let settings = HttpModelSettings::new("m", "http://127.0.0.1:1/v1");
        let transport = Transport::new("openai", &settings, "chat/completions", HeaderMap::new()).unwrap();
        let error = ProviderError::Upstream { status: 500, message: String::new() };
        for retries_done in 0..40 {
            let delay = transport.retry_delay(&error, retries_done);
            assert!(delay <= MAX_BACKOFF);
            if retries_done == 0 {
                assert!(delay <= DEFAULT_RETRY_BASE);
            }
        }
        let limited =
            ProviderError::RateLimited { retry_after: Some(Duration::from_secs(3600)), message: String::new() };
        assert_eq!(transport.retry_delay(&limited, 0), MAX_RETRY_AFTER);
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("hé", 2), "hé");
    }
}
