//! The listener: accepts TCP connections and serves HTTP/1.1 and HTTP/2 on
//! them, so that no client can take the server away from the others by
//! holding connections it does not use.
//!
//! - Each connection runs the clocks of [`conn`]: idle connections close
//!   after [`Limits::idle_timeout`], a request head must arrive within
//!   [`Limits::header_read_timeout`] of its first byte (a header trickled a
//!   byte a second is cut however it trickles), and a request body or a
//!   response that makes no progress for [`Limits::body_timeout`] ends its
//!   connection. A slow transfer that moves never trips these.
//! - At most [`Limits::max_connections`] are served at once. A connection
//!   over the cap closes the one that has waited longest without a request in
//!   flight (idle, or still sending its head); when every connection is
//!   answering a request, the new one is closed at once and counted. The fd
//!   limit should sit above the cap (`berth serve` raises it to the hard limit
//!   and derives the default cap from it).
//! - On shutdown: no new connections; idle ones close, in-flight requests
//!   finish (the caller bounds how long that may take).

pub mod conn;
pub mod proxy;
pub mod tls;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::Registry;
use conn::{CloseReason, Conn, ProgressBody, TrackedBody, Watched};

/// How the server bounds what one client can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest time from the first byte of a request to the end of its head.
    pub header_read_timeout: Duration,
    /// Longest time a connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Longest time a request body may send nothing while it is read, or a
    /// client may take none of a response while it is written.
    pub body_timeout: Duration,
    /// Most connections served at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

impl Limits {
    /// The connection cap that fits under an fd limit of `nofile`: half of
    /// what remains after a reserve for the database, keys and logs, since a
    /// connection may hold a blob file open as well as its socket.
    pub fn max_connections_for(nofile: u64) -> usize {
        let usable = nofile.saturating_sub(64) / 2;
        usize::try_from(usable.clamp(16, 65_536)).unwrap_or(65_536)
    }
}

/// The open connections, for the cap and eviction.
struct Connections {
    epoch: Instant,
    open: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a new connection, evicting the longest-waiting idle one when
    /// the cap is reached. `None`: every connection is busy; refuse.
    fn admit(&self, max: usize) -> Option<(u64, Arc<Conn>)> {
        let mut open = self.lock();
        if open.len() >= max {
            let victim = open
                .iter()
                .filter_map(|(id, c)| c.evictable_since().map(|since| (since, *id)))
                .min()
                .map(|(_, id)| id);
            let victim = victim.and_then(|id| open.remove(&id))?;
            victim.set_reason(CloseReason::Evicted);
            victim.evict.notify_one();
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn::new(self.epoch));
        open.insert(id, Arc::clone(&conn));
        Some((id, conn))
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }
}

/// Serves `registry` on `listener` until `shutdown` completes, then lets
/// in-flight requests finish and returns when every connection has closed.
/// With `tls`, every connection is TLS (HTTP/2 or HTTP/1.1 by ALPN), and the
/// certificate files are watched for renewals meanwhile.
pub async fn serve(
    listener: TcpListener,
    registry: Registry,
    tls: Option<Arc<tls::CertStore>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = match &tls {
        Some(store) => Some(tokio_rustls::TlsAcceptor::from(
            store.server_config().map_err(std::io::Error::other)?,
        )),
        None => None,
    };
    let watcher = tls.map(|store| tokio::spawn(store.watch()));
    let limits = registry.config.limits;
    let trusted = Arc::new(registry.config.trusted_proxies.clone());
    let metrics = Arc::clone(&registry.metrics);
    let app = crate::http::router(registry);
    let connections = Arc::new(Connections {
        epoch: Instant::now(),
        open: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(0),
    });
    let tasks = TaskTracker::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut refused_logged: Option<Instant> = None;
    let mut accept_error_logged: Option<Instant> = None;
    tokio::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    if is_per_connection_error(&e) {
                        continue;
                    }
                    // Out of file descriptors, or the like: log once a
                    // second at most and let connections close meanwhile.
                    if once_per(&mut accept_error_logged, Duration::from_secs(1)) {
                        tracing::warn!(error = %e, "cannot accept connections");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some((id, conn)) = connections.admit(limits.max_connections) else {
            metrics.connection_refused();
            if once_per(&mut refused_logged, Duration::from_secs(60)) {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    "connection cap reached with every connection answering a request: \
                     refusing new connections (raise --max-connections if this is real load)"
                );
            }
            drop(stream);
            continue;
        };
        metrics.connection_opened();
        let app = app.clone();
        let connections = Arc::clone(&connections);
        let metrics = Arc::clone(&metrics);
        let stop = stop_rx.clone();
        let acceptor = acceptor.clone();
        let trusted = Arc::clone(&trusted);
        tasks.spawn(async move {
            let io = Watched::new(stream, Arc::clone(&conn), limits);
            match acceptor {
                None => {
                    serve_connection(io, peer, trusted, app, Arc::clone(&conn), limits, stop).await
                }
                Some(acceptor) => {
                    // The handshake runs under the head clock: its bytes are
                    // the start of the first request.
                    let handshake = tokio::select! {
                        handshake = acceptor.accept(io) => handshake,
                        () = conn.evict.notified() => return,
                    };
                    match handshake {
                        Ok(io) => {
                            serve_connection(
                                io,
                                peer,
                                trusted,
                                app,
                                Arc::clone(&conn),
                                limits,
                                stop,
                            )
                            .await;
                        }
                        Err(e) => {
                            tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                        }
                    }
                }
            }
            connections.remove(id);
            metrics.connection_closed(conn.reason());
        });
    }

    drop(listener);
    let _ = stop_tx.send(true);
    tasks.close();
    tasks.wait().await;
    if let Some(watcher) = watcher {
        watcher.abort();
    }
    Ok(())
}

/// Serves one connection until it ends, is evicted, or shutdown closes it
/// gracefully.
async fn serve_connection<S>(
    io: S,
    peer: SocketAddr,
    trusted: Arc<proxy::TrustedProxies>,
    app: Router,
    conn: Arc<Conn>,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let service_conn = Arc::clone(&conn);
    let trusted = Arc::clone(&trusted);
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let in_flight = service_conn.begin(request.version() == hyper::Version::HTTP_2);
        let body_conn = Arc::clone(&service_conn);
        let mut request =
            request.map(|body| Body::new(ProgressBody::new(body, limits.body_timeout, body_conn)));
        let client = trusted.client(peer.ip(), request.headers());
        request.extensions_mut().insert(ConnectInfo(peer));
        request.extensions_mut().insert(proxy::ClientAddr(client));
        let app = app.clone();
        async move {
            let response = match app.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            Ok::<_, Infallible>(response.map(|body| TrackedBody::new(body, in_flight)))
        }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = conn.evict.notified() => {
                tracing::debug!(peer = %peer, "connection evicted at the connection cap");
                return;
            }
            changed = stop.changed(), if !stopping => {
                if changed.is_err() || *stop.borrow() {
                    stopping = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Errors of `accept` that concern one connection only (the peer gave up
/// before it was accepted): accept the next.
fn is_per_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// Whether an event logged at `last` may be logged again now.
fn once_per(last: &mut Option<Instant>, interval: Duration) -> bool {
    let now = Instant::now();
    if last.is_some_and(|at| now.duration_since(at) < interval) {
        return false;
    }
    *last = Some(now);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_cap_leaves_room_under_the_fd_limit() {
        assert_eq!(Limits::max_connections_for(1024), 480);
        assert_eq!(Limits::max_connections_for(20_000), 9_968);
        assert_eq!(Limits::max_connections_for(0), 16);
        assert_eq!(Limits::max_connections_for(u64::MAX), 65_536);
    }
}
