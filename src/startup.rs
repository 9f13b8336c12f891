//! Build, bind and run: separate steps so tests can bind port 0 and stop the server.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::credentials::{CredentialSource, CredentialsCache};
use crate::http::{self, App, AppState};

/// Most HTTP/2 streams one connection may have open at once.
const MAX_CONCURRENT_STREAMS: u32 = 100;

/// A bound, ready-to-run server.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: http::Service,
    /// The admin listener and its router, when `server.admin_listen` is set.
    admin: Option<(TcpListener, axum::Router)>,
    grace: Duration,
    limits: Limits,
    background: Vec<JoinHandle<()>>,
    state: AppState,
}

impl Application {
    /// Binds `config.server.listen` and starts the background tasks (credentials,
    /// JWKS, rate-limiter upkeep). The first credentials and JWKS loads are awaited
    /// briefly so that a healthy start is ready at once; failures do not stop the start
    /// (the service answers 503 and `/readyz` says why until they recover).
    pub async fn build(config: Config, source: Arc<dyn CredentialSource>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(config.server.listen).await?;
        // Both bound before anything is started, so that a taken port leaves nothing running.
        let admin_listener = match config.server.admin_listen {
            Some(address) => Some(TcpListener::bind(address).await?),
            None => None,
        };
        crate::telemetry::metrics();
        let credentials = Arc::new(CredentialsCache::new(source));
        let first_load = tokio::time::timeout(Duration::from_secs(5), credentials.refresh()).await;
        if !matches!(first_load, Ok(Ok(()))) {
            tracing::warn!("no AWS credentials at start-up; retrying in the background");
        }
        let mut background = vec![
            tokio::spawn(Arc::clone(&credentials).run_refresh_loop()),
            // The recorder buffers histogram samples until drained: without this, a
            // server nobody scrapes grows by every request's latency sample. Every
            // second: under load that is a few hundred KiB at most.
            tokio::spawn(async {
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    crate::telemetry::metrics().run_upkeep();
                }
            }),
        ];
        if let Some(jwks) = config.verifier.jwks() {
            match tokio::time::timeout(Duration::from_secs(6), jwks.refresh()).await {
                Ok(Ok(keys)) => tracing::info!(keys, "JWKS loaded"),
                _ => tracing::warn!("no JWKS at start-up; retrying in the background"),
            }
            background.push(tokio::spawn(Arc::clone(jwks).run_refresh_loop()));
        }
        let timeout = config.request_timeout();
        if config.handle_key_is_random {
            tracing::warn!(
                "server.handle_secret_env is not set: multipart handles are signed with a random key, so they die with this process and work on this replica only"
            );
        }
        let app = App::new(&config, credentials);
        let state = AppState(Arc::new(app));
        background.push(state.limits.start());
        background.extend(crate::events::start(&state.0));
        let router = http::router(
            state.clone(),
            &config.server.cors_allowed_origins,
            timeout,
            http::Extras {
                demo: &if config.server.demo {
                    http::Demo::On {
                        token: config.demo_token.clone(),
                        events: config.demo_events.clone(),
                    }
                } else {
                    http::Demo::Off
                },
                companion_prefix: &config.server.companion_prefix,
                admin_apart: config.server.admin_listen.is_some(),
            },
        );
        let admin = admin_listener.map(|l| (l, http::admin_router(state.clone())));
        let header_timeout = Duration::from_secs(config.server.header_read_timeout_seconds);
        Ok(Self {
            listener,
            router,
            admin,
            grace: Duration::from_secs(config.server.shutdown_grace_seconds),
            limits: Limits {
                connections: connection_builder(header_timeout, config.server.max_header_bytes),
                header_timeout,
            },
            background,
            state,
        })
    }

    /// The bound address (the real port when the configuration asked for port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The admin listener's address, when there is one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// The shared state (tests inspect it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then stops accepting (new connections are
    /// refused), lets in-flight requests finish for at most the grace period, and stops
    /// the background tasks.
    ///
    /// Each connection is a task on the caller's runtime (the binary's has
    /// `server.workers` threads). hyper-util's connection builder rather than
    /// `axum::serve`: it bounds the time and the size of a request head.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let limits = self.limits;
        // The admin listener stops accepting with the public one, and drains with it.
        let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
        let admin = self.admin.map(|(listener, router)| {
            let limits = limits.clone();
            tokio::spawn(async move {
                let stopped = async {
                    let _ = admin_stopped.await;
                };
                accept_until(listener, router, &limits, stopped).await
            })
        });
        let graceful = accept_until(self.listener, self.router, &limits, shutdown).await;
        let _ = stop_admin.send(());
        tracing::info!("shutting down: draining in-flight requests");
        let drained = async {
            graceful.shutdown().await;
            if let Some(admin) = admin
                && let Ok(admin) = admin.await
            {
                admin.shutdown().await;
            }
        };
        tokio::select! {
            () = drained => {},
            () = tokio::time::sleep(self.grace) => {
                tracing::warn!(grace = ?self.grace, "grace period over; dropping the requests still running");
            }
        }
        for task in self.background {
            task.abort();
        }
        Ok(())
    }
}

/// How connections are served: the protocols' limits and the first head's deadline.
#[derive(Clone, Debug)]
struct Limits {
    connections: auto::Builder<TokioExecutor>,
    /// How long a new connection may take to send its first request head.
    header_timeout: Duration,
}

/// Serves `router` on `listener` until `stop` completes (the listener is then closed:
/// new connections are refused); answers the watcher that drains the open ones.
async fn accept_until<S>(
    listener: TcpListener,
    router: S,
    limits: &Limits,
    stop: impl Future<Output = ()>,
) -> GracefulShutdown
where
    S: tower::Service<
            axum::extract::Request,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let stream = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Small request, small answer: do not wait for Nagle.
        let _ = stream.set_nodelay(true);
        // HTTP/1 bounds each head in time; HTTP/2 has no such bound in hyper, so a
        // connection whose first request head is not in within the header deadline
        // is closed here, whichever the protocol.
        let first = Arc::new(FirstRequest::default());
        let seen = Arc::clone(&first);
        let router = tower::ServiceBuilder::new()
            .map_request(move |request: axum::http::Request<_>| {
                seen.arrived();
                request.map(axum::body::Body::new)
            })
            .service(router.clone());
        let service = TowerToHyperService::new(router);
        let connection = limits
            .connections
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        let deadline = limits.header_timeout;
        tokio::spawn(async move {
            tokio::select! {
                result = connection => {
                    if let Err(error) = result {
                        tracing::debug!(error = %error, "connection ended with an error");
                    }
                }
                () = first.missed(deadline) => {
                    tracing::debug!("no request head within the header deadline: connection closed");
                }
            }
        });
    }
    drop(listener);
    graceful
}

/// Whether a connection's first request head has arrived.
#[derive(Debug, Default)]
struct FirstRequest {
    arrived: std::sync::atomic::AtomicBool,
    notify: tokio::sync::Notify,
}

impl FirstRequest {
    /// A request head is in (one atomic swap per request after the first).
    fn arrived(&self) {
        if !self
            .arrived
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            self.notify.notify_one();
        }
    }

    /// Completes when no request head has arrived within `deadline`; never otherwise.
    async fn missed(&self, deadline: Duration) {
        if tokio::time::timeout(deadline, self.notify.notified())
            .await
            .is_ok()
        {
            std::future::pending::<()>().await;
        }
    }
}

/// HTTP/1 and HTTP/2 (prior knowledge) with the limits a public endpoint needs:
/// a deadline for the request head (slow clients cannot hold connections) and a
/// bounded head size.
fn connection_builder(
    header_timeout: Duration,
    max_header_bytes: usize,
) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(max_header_bytes).unwrap_or(u32::MAX))
        // A ticket is one small request: 100 at once on one connection is plenty, and
        // bounds what one client can hold open.
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
