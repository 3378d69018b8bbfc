//! Serving the router: TCP_NODELAY on every connection, a deadline for request headers, and
//! graceful shutdown — on SIGTERM or Ctrl-C stop accepting, let in-flight requests finish, and
//! give up after a grace period.
//!
//! Connections are served by hyper's HTTP/1 builder directly rather than by `axum::serve`,
//! because `axum::serve` sets no timer, so hyper's header read timeout never runs: a client
//! sending one header byte a minute (slowloris) would hold its connection forever. Slow bodies
//! are the JSON extractor's business (`api::body`, 408).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt as _;

/// Binds `addr`; port 0 picks a free port (read it back with `local_addr`).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Per-connection limits of [`serve_with_limits`].
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// A connection whose request headers are not complete this long after the request
    /// began is closed; hyper starts this clock when it waits for a request head, so it is
    /// also how long an idle keep-alive connection stays open.
    pub header_read_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self { header_read_timeout: Duration::from_secs(30) }
    }
}

/// Serves until `shutdown` resolves, then drains in-flight requests for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    serve_with_limits(listener, app, shutdown, grace, ConnectionLimits::default()).await
}

/// [`serve`] with explicit connection limits.
pub async fn serve_with_limits(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
    limits: ConnectionLimits,
) -> std::io::Result<()> {
    // Told to every connection when shutdown begins; each finishes its request in flight.
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    connections.spawn(serve_connection(stream, app.clone(), limits, closing_rx.clone()));
                }
                Err(error) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_finished) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    tracing::info!(grace_secs = grace.as_secs_f64(), "shutting down: no new connections, finishing in-flight requests");
    let _ = closing_tx.send(true);
    let drained = tokio::time::timeout(grace, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!("grace period over; closing the connections still open");
        connections.abort_all();
    }
    Ok(())
}

async fn serve_connection(stream: TcpStream, app: Router, limits: ConnectionLimits, mut closing: watch::Receiver<bool>) {
    // Without TCP_NODELAY, responses written in more than one segment (SSE, chunked bodies)
    // stall ~40 ms on Nagle plus delayed ACK.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "could not set TCP_NODELAY");
    }
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| app.clone().oneshot(request.map(Body::new)));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        served = connection.as_mut() => {
            if let Err(error) = served {
                tracing::debug!(%error, "connection ended with an error");
            }
            return;
        }
        _closing = closing.wait_for(|closing| *closing) => {}
    }
    // Shutdown: answer the request in flight, if any, then close (idle connections close now).
    connection.as_mut().graceful_shutdown();
    if let Err(error) = connection.await {
        tracing::debug!(%error, "connection ended with an error during shutdown");
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
