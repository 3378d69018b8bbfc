//! The HTTP side: the accept loop, the router, and the request flow both wire formats share.
//!
//! Connections are served by hand (hyper's HTTP/1 server over each accepted socket, with
//! `TCP_NODELAY`) rather than by `axum::serve`, because [`Fault::Reset`] must reach the socket:
//! each connection's requests carry a [`ConnectionControl`] whose reset makes the connection
//! task take the socket back from hyper and close it with `SO_LINGER` 0, which sends a TCP RST
//! and no HTTP response at all.
//!
//! Every request to a model route is recorded, then waits out the configured latency, then is
//! validated, then pops the next scripted [`Reply`] (or takes the default one), and is answered
//! in the route's [`WireFormat`]. An invalid request answers 400 without consuming the script.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use futures::StreamExt;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::RecordedRequest;
use crate::answer::Answer;
use crate::anthropic::Anthropic;
use crate::conversation::Conversation;
use crate::openai::OpenAi;
use crate::script::{Fault, Reply, default_reply};

/// Request bodies above this size are refused; far above any test prompt.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// State shared by the [`crate::MockLlm`] handle and every request.
#[derive(Default)]
pub(crate) struct Shared {
    script: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<RecordedRequest>>,
    /// Set by `keep_requests(false)`: requests are counted and numbered but not kept.
    forget_requests: AtomicBool,
    /// Requests received since start, unaffected by `clear_requests`; numbers response ids.
    n_received: AtomicU64,
    latency_nanos: AtomicU64,
}

impl Shared {
    pub(crate) fn push(&self, reply: Reply) {
        lock(&self.script).push_back(reply);
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).clone()
    }

    pub(crate) fn request_count(&self) -> usize {
        lock(&self.requests).len()
    }

    pub(crate) fn clear_requests(&self) {
        lock(&self.requests).clear();
    }

    pub(crate) fn keep_requests(&self, keep: bool) {
        self.forget_requests.store(!keep, Ordering::Relaxed);
        if !keep {
            self.clear_requests();
        }
    }

    pub(crate) fn set_latency(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.latency_nanos.store(nanos, Ordering::Relaxed);
    }

    /// Records a request and returns its sequence number, starting at 1.
    fn record(&self, request: RecordedRequest) -> u64 {
        if !self.forget_requests.load(Ordering::Relaxed) {
            lock(&self.requests).push(request);
        }
        self.n_received.fetch_add(1, Ordering::Relaxed) + 1
    }

    async fn wait_latency(&self) {
        let nanos = self.latency_nanos.load(Ordering::Relaxed);
        if nanos > 0 {
            tokio::time::sleep(Duration::from_nanos(nanos)).await;
        }
    }

    fn next_reply(&self, conversation: &Conversation, tool_call_id: impl FnOnce() -> String) -> Result<Reply, String> {
        let scripted = lock(&self.script).pop_front();
        match scripted {
            Some(reply) => Ok(reply),
            None => default_reply(conversation, tool_call_id),
        }
    }
}

/// A poisoned lock only means a test panicked mid-push; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Binds `addr` and serves until the returned task is aborted; aborting it also aborts every
/// connection task, so hanging requests end with it.
pub(crate) async fn spawn(
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
) -> std::io::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    let server_task = tokio::spawn(accept_loop(listener, router(shared)));
    Ok((local_addr, server_task))
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(handle_model_request::<OpenAi>))
        .route("/chat/completions", post(handle_model_request::<OpenAi>))
        .route("/v1/messages", post(handle_model_request::<Anthropic>))
        .route("/messages", post(handle_model_request::<Anthropic>))
        .fallback(handle_unknown_route)
        .with_state(shared)
}

async fn accept_loop(listener: TcpListener, router: Router) {
    // Owned by this task: when the task is aborted the set is dropped, aborting every
    // connection with it.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    connections.spawn(serve_connection(stream, router.clone()));
                }
                Err(error) => {
                    // Typically out of file descriptors; back off instead of spinning.
                    tracing::warn!(%error, "mock llm: accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            Some(_finished) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Lets a request handler reset the TCP connection it arrived on.
#[derive(Clone, Default)]
pub(crate) struct ConnectionControl(Arc<Notify>);

impl ConnectionControl {
    fn reset(&self) {
        self.0.notify_one();
    }
}

async fn serve_connection(stream: TcpStream, router: Router) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "mock llm: setting TCP_NODELAY failed");
    }
    let control = ConnectionControl::default();
    let request_control = control.clone();
    let service = hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
        request.extensions_mut().insert(request_control.clone());
        router.clone().oneshot(request)
    });
    let mut connection = hyper::server::conn::http1::Builder::new()
        .header_read_timeout(None)
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        served = &mut connection => {
            if let Err(error) = served {
                tracing::debug!(%error, "mock llm: connection ended with an error");
            }
        }
        () = control.0.notified() => {
            let stream = connection.into_parts().io.into_inner();
            if let Err(error) = stream.set_zero_linger() {
                tracing::debug!(%error, "mock llm: setting SO_LINGER 0 failed");
            }
            drop(stream);
        }
    }
}

/// The per-format half of the request flow: how requests are read and answers written.
pub(crate) trait WireFormat {
    /// The response header carrying the request id (`x-request-id` / `request-id`).
    const REQUEST_ID_HEADER: &'static str;

    /// Checks headers the provider insists on; `Err` is the 400 message.
    fn check_headers(headers: &HeaderMap) -> Result<(), String>;
    fn read_conversation(body: &Value) -> Result<Conversation, String>;
    /// The id of a tool call the default reply makes.
    fn tool_call_id(seq: u64) -> String;
    fn error_body(kind: ErrorKind, message: &str) -> Value;
    fn answer_body(answer: &Answer, meta: &ResponseMeta) -> Value;
    /// The complete event stream of an answer, one event per item.
    fn answer_events(answer: &Answer, conversation: &Conversation, meta: &ResponseMeta) -> Vec<Bytes>;
    /// A JSON body cut off in the middle.
    fn malformed_json(meta: &ResponseMeta) -> String;
    /// A complete event stream in which one event's data is not JSON.
    fn malformed_events(meta: &ResponseMeta) -> Vec<Bytes>;
    /// The valid start of a text stream (a couple of deltas), after which the body is cut.
    fn cut_stream_events(meta: &ResponseMeta) -> Vec<Bytes>;
}

/// What is fixed for one response: its sequence number (for ids), model and creation time.
#[derive(Debug)]
pub(crate) struct ResponseMeta {
    pub seq: u64,
    pub model: String,
    pub created_unix_secs: u64,
}

/// The provider errors the mock sends, named per format by [`WireFormat::error_body`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    InvalidRequest,
    Authentication,
    NotFound,
    RateLimited,
    Server,
    Overloaded,
}

impl ErrorKind {
    fn status(self) -> StatusCode {
        match self {
            ErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Authentication => StatusCode::UNAUTHORIZED,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Server => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

async fn handle_model_request<F: WireFormat>(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let control = parts.extensions.get::<ConnectionControl>().cloned();
    let body_bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body_bytes) => body_bytes,
        Err(error) => {
            tracing::debug!(%error, "mock llm: reading a request body failed");
            let message = format!("could not read the request body: {error}");
            return error_response::<F>(ErrorKind::InvalidRequest, &message, None);
        }
    };

    // Read everything needed from the body before recording it, so the recorded body is
    // moved, not cloned, on the hot path.
    let header_check = F::check_headers(&parts.headers);
    let body_json = serde_json::from_slice::<Value>(&body_bytes);
    let conversation = match &body_json {
        Ok(body_json) => F::read_conversation(body_json),
        Err(error) => Err(format!("We could not parse the JSON body of your request: {error}")),
    };
    let seq = shared.record(RecordedRequest {
        path: parts.uri.path().to_owned(),
        headers: parts.headers,
        body: recorded_body(body_json, &body_bytes),
    });

    shared.wait_latency().await;
    if let Err(message) = header_check {
        return error_response::<F>(ErrorKind::InvalidRequest, &message, Some(seq));
    }
    let conversation = match conversation {
        Ok(conversation) => conversation,
        Err(message) => return error_response::<F>(ErrorKind::InvalidRequest, &message, Some(seq)),
    };
    let reply = match shared.next_reply(&conversation, || F::tool_call_id(seq)) {
        Ok(reply) => reply,
        Err(message) => return error_response::<F>(ErrorKind::InvalidRequest, &message, Some(seq)),
    };
    let meta = ResponseMeta {
        seq,
        model: conversation.model.clone(),
        created_unix_secs: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since_epoch| since_epoch.as_secs()),
    };
    let answer = match reply {
        Reply::Text(text) => Answer::text(text, &conversation),
        Reply::ToolCalls(calls) => Answer::tool_calls(calls, &conversation),
        Reply::Fault(fault) => return fault_response::<F>(fault, &meta, control).await,
    };
    let mut response = if conversation.stream {
        event_stream_response(F::answer_events(&answer, &conversation, &meta))
    } else {
        axum::Json(F::answer_body(&answer, &meta)).into_response()
    };
    insert_request_id::<F>(&mut response, seq);
    response
}

/// The body as recorded: the JSON value, or the raw text when it is not JSON (`Null` when
/// empty), so a test can still see what a broken client sent.
fn recorded_body(body_json: Result<Value, serde_json::Error>, body_bytes: &Bytes) -> Value {
    match body_json {
        Ok(body_json) => body_json,
        Err(_) if body_bytes.is_empty() => Value::Null,
        Err(_) => Value::String(String::from_utf8_lossy(body_bytes).into_owned()),
    }
}

async fn fault_response<F: WireFormat>(
    fault: Fault,
    meta: &ResponseMeta,
    control: Option<ConnectionControl>,
) -> Response {
    let seq = Some(meta.seq);
    match fault {
        Fault::RateLimited { retry_after_secs } => {
            let message = "Rate limit reached for requests (mock fault). Please try again later.";
            let mut response = error_response::<F>(ErrorKind::RateLimited, message, seq);
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
            response
        }
        Fault::ServerError => {
            let message = "The server had an error while processing your request (mock fault).";
            error_response::<F>(ErrorKind::Server, message, seq)
        }
        Fault::Unavailable => {
            let message = "The server is overloaded or not ready yet (mock fault).";
            error_response::<F>(ErrorKind::Overloaded, message, seq)
        }
        Fault::Unauthorized => {
            let message = "Incorrect API key provided (mock fault).";
            error_response::<F>(ErrorKind::Authentication, message, seq)
        }
        Fault::BadRequest => {
            let message = "Invalid request (mock fault).";
            error_response::<F>(ErrorKind::InvalidRequest, message, seq)
        }
        Fault::Hang => std::future::pending().await,
        Fault::Reset => match control {
            Some(control) => {
                control.reset();
                std::future::pending().await
            }
            None => {
                tracing::warn!("mock llm: reset requested outside the mock's own accept loop");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        },
        Fault::MalformedJson => {
            ([(CONTENT_TYPE, HeaderValue::from_static("application/json"))], F::malformed_json(meta)).into_response()
        }
        Fault::MalformedSse => event_stream_response(F::malformed_events(meta)),
        Fault::CutStream => {
            let events = futures::stream::iter(F::cut_stream_events(meta).into_iter().map(Ok));
            let cut = futures::stream::once(async {
                // Let hyper flush the valid events before the error aborts the connection.
                tokio::time::sleep(Duration::from_millis(5)).await;
                Err(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "mock fault: stream cut"))
            });
            event_stream_headers(Body::from_stream(events.chain(cut)))
        }
    }
}

fn error_response<F: WireFormat>(kind: ErrorKind, message: &str, seq: Option<u64>) -> Response {
    let mut response = (kind.status(), axum::Json(F::error_body(kind, message))).into_response();
    if let Some(seq) = seq {
        insert_request_id::<F>(&mut response, seq);
    }
    response
}

fn insert_request_id<F: WireFormat>(response: &mut Response, seq: u64) {
    if let Ok(request_id) = HeaderValue::try_from(format!("req_mock{seq}")) {
        response.headers_mut().insert(HeaderName::from_static(F::REQUEST_ID_HEADER), request_id);
    }
}

fn event_stream_response(events: Vec<Bytes>) -> Response {
    let events = futures::stream::iter(events.into_iter().map(Ok::<Bytes, Infallible>));
    event_stream_headers(Body::from_stream(events))
}

fn event_stream_headers(body: Body) -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static("text/event-stream")),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// Unknown routes are recorded too (a wrong path is a client bug worth seeing in a test) and
/// answer an OpenAI-shaped 404.
async fn handle_unknown_route(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body_bytes = axum::body::to_bytes(body, MAX_BODY_BYTES).await.unwrap_or_default();
    let message = format!("Unknown request URL: {} {}", parts.method, parts.uri.path());
    let seq = shared.record(RecordedRequest {
        path: parts.uri.path().to_owned(),
        headers: parts.headers,
        body: recorded_body(serde_json::from_slice(&body_bytes), &body_bytes),
    });
    error_response::<OpenAi>(ErrorKind::NotFound, &message, Some(seq))
}

/// One server-sent event with only a data line: `data: <data>\n\n`.
pub(crate) fn data_event(data: &str) -> Bytes {
    Bytes::from(format!("data: {data}\n\n"))
}

/// One server-sent event with a name: `event: <name>\ndata: <data>\n\n`.
pub(crate) fn named_event(name: &str, data: &str) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}
