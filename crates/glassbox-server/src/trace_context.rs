//! The HTTP request span and W3C trace context of every request.
//!
//! An incoming `traceparent` is continued, so a backend's own trace runs on into Glassbox;
//! otherwise a new trace starts. The request span (`{METHOD} {route}`, kind server) is the
//! parent of everything the request does and lives until the response body is sent, so a
//! streamed answer stays inside it. The trace id goes back in the `traceparent` response
//! header and in JSON bodies as `traceId`.

use std::borrow::Cow;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use http_body::Frame;
use tracing::Instrument;

use crate::telemetry::{RemoteParent, SpanExt as _};

/// The trace this request belongs to and the server span's own id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub sampled: bool,
}

impl TraceContext {
    /// The ids Glassbox's telemetry layer gave `span`, when it is installed.
    pub fn from_span(span: &tracing::Span) -> Option<Self> {
        span.span_ids().map(|ids| Self { trace_id: ids.trace_id, span_id: ids.span_id, sampled: ids.sampled })
    }

    /// Without OpenTelemetry (a library user who set up no tracing): continues the caller's
    /// trace when `traceparent` is valid, otherwise starts a new one.
    pub fn from_traceparent(header: Option<&HeaderValue>) -> Self {
        let parent = header.and_then(|value| value.to_str().ok()).and_then(parse_traceparent);
        let span_id = random_nonzero::<8>();
        match parent {
            Some(Traceparent { trace_id, sampled, .. }) => Self { trace_id, span_id, sampled },
            None => Self { trace_id: new_trace_id(), span_id, sampled: true },
        }
    }

    pub fn trace_id_hex(&self) -> String {
        crate::access::secret::hex(&self.trace_id)
    }

    pub fn traceparent(&self) -> String {
        let mut out = String::with_capacity(55);
        out.push_str("00-");
        out.push_str(&crate::access::secret::hex(&self.trace_id));
        out.push('-');
        out.push_str(&crate::access::secret::hex(&self.span_id));
        out.push_str(if self.sampled { "-01" } else { "-00" });
        out
    }
}

/// The id of a trace Glassbox starts: the Unix time in milliseconds in the first 6 bytes
/// (big-endian), 10 random bytes after it, as AWS X-Ray's ids carry their start time.
///
/// Traces started close together sort together, so the stores' indexes keyed by trace id
/// (SQLite's span and usage keys, `trace_index`) take new rows at their right edge instead of
/// on a random page each: with random ids a benchmark request cost
/// 64.8 KB of SQLite writes (WAL frames and checkpoints), with these 24.7 KB. W3C trace context
/// asks randomness only of the last 7 bytes; online-eval sampling reads the last 8.
pub(crate) fn new_trace_id() -> [u8; 16] {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX));
    let mut id = [0_u8; 16];
    id[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    id[6..].copy_from_slice(&random_nonzero::<10>());
    id
}

fn random_nonzero<const N: usize>() -> [u8; N] {
    loop {
        let mut bytes = [0_u8; N];
        bytes.iter_mut().for_each(|byte| *byte = fastrand::u8(..));
        if bytes.iter().any(|&byte| byte != 0) {
            return bytes;
        }
    }
}

/// The fields of a W3C `traceparent` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Traceparent {
    trace_id: [u8; 16],
    parent_id: [u8; 8],
    sampled: bool,
}

/// The caller's span, from its `traceparent` and `tracestate` headers, if it is valid.
fn remote_parent(headers: &HeaderMap) -> Option<RemoteParent> {
    let traceparent = parse_traceparent(headers.get("traceparent")?.to_str().ok()?)?;
    // Normalized as OpenTelemetry's propagator did; an invalid list is dropped, not the trace.
    let trace_state = headers
        .get("tracestate")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<opentelemetry::trace::TraceState>().ok())
        .map(|state| state.header())
        .unwrap_or_default();
    Some(RemoteParent {
        trace_id: traceparent.trace_id,
        span_id: traceparent.parent_id,
        sampled: traceparent.sampled,
        trace_state,
    })
}

/// Parses `00-<32 hex>-<16 hex>-<2 hex>`; all-zero ids are invalid per the W3C spec.
fn parse_traceparent(value: &str) -> Option<Traceparent> {
    let mut parts = value.trim().split('-');
    let version = parts.next()?;
    let trace_id = parts.next()?;
    let parent_id = parts.next()?;
    let flags = parts.next()?;
    if version.len() != 2 || version == "ff" || trace_id.len() != 32 || parent_id.len() != 16 || flags.len() != 2 {
        return None;
    }
    // Version 00 has exactly four fields; later versions may append more.
    if version == "00" && parts.next().is_some() {
        return None;
    }
    let trace = decode_hex::<16>(trace_id)?;
    let parent = decode_hex::<8>(parent_id)?;
    let flags = decode_hex::<1>(flags)?;
    decode_hex::<1>(version)?;
    if trace.iter().all(|&b| b == 0) || parent.iter().all(|&b| b == 0) {
        return None;
    }
    Some(Traceparent { trace_id: trace, parent_id: parent, sampled: flags[0] & 1 == 1 })
}

fn decode_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = text.as_bytes();
    if bytes.len() != N * 2 || bytes.iter().any(u8::is_ascii_uppercase) {
        return None;
    }
    let mut out = [0_u8; N];
    for (index, pair) in bytes.chunks_exact(2).enumerate() {
        let high = (pair[0] as char).to_digit(16)?;
        let low = (pair[1] as char).to_digit(16)?;
        out[index] = (high * 16 + low) as u8;
    }
    Some(out)
}

/// Middleware around `inner`: the request span (named after the matched route, when there is
/// one), its [`TraceContext`] in the request, `traceparent` on the response.
pub async fn in_request_span<F: Future<Output = Response>>(
    mut request: Request,
    inner: impl FnOnce(Request) -> F,
) -> Response {
    let method = request.method().as_str();
    let route = request.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
    let name = match route {
        Some(route) => Cow::Owned([method, " ", route].concat()),
        None => Cow::Borrowed(method),
    };
    let span = tracing::info_span!(
        "http_request",
        otel.name = &*name,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = method,
        url.path = request.uri().path(),
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    if let Some(parent) = remote_parent(request.headers()) {
        span.set_remote_parent(&parent);
    }
    let context =
        TraceContext::from_span(&span).unwrap_or_else(|| TraceContext::from_traceparent(request.headers().get("traceparent")));
    request.extensions_mut().insert(context);
    // For log lines: every line inside the request carries its trace id (see `logging`).
    span.record("trace_id", context.trace_id_hex().as_str());

    let mut response = inner(request).instrument(span.clone()).await;
    let status = response.status();
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    if let Ok(value) = HeaderValue::from_str(&context.traceparent()) {
        response.headers_mut().insert("traceparent", value);
    }
    // The span ends when the body has been sent, not when the handler returned.
    response.map(|body| Body::new(SpanBody { inner: body, _span: span }))
}

/// A response body that keeps the request span open until it is dropped.
struct SpanBody {
    inner: Body,
    _span: tracing::Span,
}

impl http_body::Body for SpanBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continues_a_valid_traceparent() {
        let header = HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let context = TraceContext::from_traceparent(Some(&header));
        assert_eq!(context.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(crate::access::secret::hex(&context.span_id), "00f067aa0ba902b7");
        assert!(context.sampled);
    }

    #[test]
    fn new_trace_ids_start_with_their_millisecond_and_end_random() {
        let millis = || {
            let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        };
        let before = millis();
        let ids: Vec<[u8; 16]> = (0..64).map(|_| new_trace_id()).collect();
        let after = millis();
        for id in &ids {
            let mut prefix = [0_u8; 8];
            prefix[2..].copy_from_slice(&id[..6]);
            let at = u64::from_be_bytes(prefix);
            assert!((before..=after).contains(&at), "{at} not in {before}..={after}");
        }
        // Hex (how the stores keep them) sorts by time: a later id never sorts first.
        let later = new_trace_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let latest = new_trace_id();
        assert!(crate::access::secret::hex(&later) < crate::access::secret::hex(&latest));
        // The random part differs between ids of the same millisecond.
        let tails: std::collections::HashSet<[u8; 10]> =
            ids.iter().map(|id| id[6..].try_into().unwrap_or_default()).collect();
        assert_eq!(tails.len(), ids.len());
    }

    #[test]
    fn rejects_malformed_traceparents() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "garbage",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_traceparent() {
        let context = TraceContext { trace_id: [0xab; 16], span_id: [0x01; 8], sampled: true };
        assert_eq!(context.traceparent(), format!("00-{}-{}-01", "ab".repeat(16), "01".repeat(8)));
    }
}
