//! Build, bind and run: separate steps so tests can bind port 0 and stop the server.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::credentials::{CredentialSource, CredentialsCache};
use crate::http::{self, App, AppState};

/// A bound, ready-to-run server.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    grace: Duration,
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
        crate::telemetry::metrics();
        let credentials = Arc::new(CredentialsCache::new(source));
        let first_load = tokio::time::timeout(Duration::from_secs(5), credentials.refresh()).await;
        if !matches!(first_load, Ok(Ok(()))) {
            tracing::warn!("no AWS credentials at start-up; retrying in the background");
        }
        let mut background = vec![tokio::spawn(Arc::clone(&credentials).run_refresh_loop())];
        if let Some(jwks) = config.verifier.jwks() {
            match tokio::time::timeout(Duration::from_secs(6), jwks.refresh()).await {
                Ok(Ok(keys)) => tracing::info!(keys, "JWKS loaded"),
                _ => tracing::warn!("no JWKS at start-up; retrying in the background"),
            }
            background.push(tokio::spawn(Arc::clone(jwks).run_refresh_loop()));
        }
        let timeout = config.request_timeout();
        let app = App::new(
            config.presigner,
            config.verifier,
            config.tenants,
            credentials,
        );
        let state = AppState(Arc::new(app));
        if !state.limiters.is_empty() {
            let upkeep = state.clone();
            background.push(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    for limiter in upkeep.limiters.values() {
                        limiter.retain_recent();
                    }
                }
            }));
        }
        let router = http::router(
            state.clone(),
            &config.server.cors_allowed_origins,
            timeout,
            config.server.demo,
        );
        Ok(Self {
            listener,
            router,
            grace: Duration::from_secs(config.server.shutdown_grace_seconds),
            background,
            state,
        })
    }

    /// The bound address (the real port when the configuration asked for port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The shared state (tests inspect it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests
    /// finish for at most the grace period, and stops the background tasks.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, mut stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let mut graceful_rx = stop_rx.clone();
        let serve = axum::serve(self.listener, self.router).with_graceful_shutdown(async move {
            let _ = graceful_rx.wait_for(|stop| *stop).await;
            tracing::info!("shutting down: draining in-flight requests");
        });
        let grace = self.grace;
        let result = tokio::select! {
            result = serve.into_future() => result,
            () = async {
                let _ = stop_rx.wait_for(|stop| *stop).await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(?grace, "grace period over; dropping the requests still running");
                Ok(())
            }
        };
        for task in self.background {
            task.abort();
        }
        result
    }
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
