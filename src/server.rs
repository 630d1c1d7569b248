//! Serving HTTP: the TLS accept loop for the webhooks (handshake timeout, TCP_NODELAY, HTTP/1.1
//! and HTTP/2 by ALPN, header-read timeout) and plain HTTP for monitoring, both with graceful
//! shutdown that lets in-flight requests finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// Timeouts of a server.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// How long a client may take to send the request headers (HTTP/1.1).
    pub header_read: Duration,
    /// How long a TLS handshake may take.
    pub handshake: Duration,
    /// How long shutdown waits for in-flight requests.
    pub drain: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            header_read: Duration::from_secs(10),
            handshake: Duration::from_secs(10),
            drain: Duration::from_secs(30),
        }
    }
}

/// Binds a TCP listener, naming the flag on failure.
pub async fn bind(flag: &str, addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("{flag} {addr}: cannot listen: {e}"))
}

fn builder(t: Timeouts) -> Builder<TokioExecutor> {
    let mut b = Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(t.header_read)
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)));
    b
}

async fn drain(graceful: GracefulShutdown, t: Timeouts, what: &str) {
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!(server = what, "all connections drained"),
        _ = tokio::time::sleep(t.drain) => tracing::warn!(server = what, "drain timeout; closing remaining connections"),
    }
}

/// Serves `router` over TLS on `listener` until `shutdown` flips, then drains.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    t: Timeouts,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    let service = TowerToHyperService::new(router);
    let builder = Arc::new(builder(t));
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let service = service.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(t.handshake, acceptor.accept(stream)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drain(graceful, t, "https").await;
}

/// Serves `router` over plain HTTP (monitoring) until `shutdown` flips.
pub async fn serve_plain(
    listener: TcpListener,
    router: Router,
    t: Timeouts,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let service = TowerToHyperService::new(router);
    let builder = Arc::new(builder(t));
    loop {
        let (stream, _peer): (TcpStream, SocketAddr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue; }
            },
            _ = shutdown.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service.clone())
            .into_owned();
        let fut = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = fut.await;
        });
    }
    drain(graceful, t, "monitoring").await;
}
