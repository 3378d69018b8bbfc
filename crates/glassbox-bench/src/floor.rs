//! The floor: a bare pass-through proxy, the least any gateway in front of the mock can cost.
//!
//! axum with TCP_NODELAY on accepted sockets and one pooled `reqwest` client; the request body
//! goes to the upstream unparsed and the answer comes back unparsed, streamed chunk by chunk
//! (so a server-sent-event answer streams through). It runs as its own process, like every
//! other target, so its CPU time and memory are measured the same way.

use std::net::SocketAddr;

use anyhow::Context;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt as _;
use futures::TryStreamExt as _;

/// `glassbox-bench floor`: serve the pass-through proxy until interrupted.
#[derive(Debug, clap::Args)]
pub struct FloorArgs {
    /// Address to listen on.
    #[arg(long)]
    pub listen: SocketAddr,
    /// The upstream's OpenAI base URL (`http://127.0.0.1:PORT/v1`); `POST /v1/chat/completions`
    /// goes to `{upstream}/chat/completions`.
    #[arg(long)]
    pub upstream: String,
}

#[derive(Clone)]
struct Proxy {
    client: reqwest::Client,
    url: std::sync::Arc<str>,
}

pub fn run(args: FloorArgs) -> anyhow::Result<()> {
    // reqwest is built without a TLS provider of its own (the workspace's choice); plain HTTP
    // still needs one installed before a client is built.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("while starting the runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: FloorArgs) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1024)
        .build()
        .context("while building the HTTP client")?;
    let url = format!("{}/chat/completions", args.upstream.trim_end_matches('/'));
    let app = axum::Router::new()
        .route("/v1/chat/completions", post(forward))
        .with_state(Proxy { client, url: url.clone().into() });
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("while binding {}", args.listen))?;
    let listener = listener.tap_io(|stream| {
        // Without it, answers written in more than one piece stall on delayed ACKs.
        let _ = stream.set_nodelay(true);
    });
    eprintln!("floor listening on http://{} -> {url}", args.listen);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("while serving")
}

async fn forward(State(proxy): State<Proxy>, headers: HeaderMap, body: Bytes) -> Response {
    let mut request = proxy.client.post(&*proxy.url).body(body);
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    match request.send().await {
        Ok(upstream) => {
            let status = StatusCode::from_u16(upstream.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let content_type = upstream
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|value| HeaderValue::from_bytes(value.as_bytes()).ok())
                .unwrap_or(HeaderValue::from_static("application/json"));
            let body = Body::from_stream(upstream.bytes_stream().map_err(std::io::Error::other));
            (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        Err(error) => (StatusCode::BAD_GATEWAY, format!("upstream: {error}")).into_response(),
    }
}
