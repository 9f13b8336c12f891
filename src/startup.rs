//! Build, bind and run: separate steps so tests can bind port 0 and stop the server.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::UnboundedSender;
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
    connections: auto::Builder<TokioExecutor>,
    workers: usize,
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
            connections: connection_builder(
                Duration::from_secs(config.server.header_read_timeout_seconds),
                config.server.max_header_bytes,
            ),
            workers: config.server.workers.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
            }),
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

    /// Serves until `shutdown` completes, then stops accepting (new connections are
    /// refused), lets in-flight requests finish for at most the grace period, and stops
    /// the background tasks.
    ///
    /// Connections are served by `server.workers` threads, each with a single-threaded
    /// event loop: this task accepts and hands each connection to the worker serving
    /// the fewest, and the connection and its requests stay there. With tokio's
    /// work-stealing scheduler, tasks and wake-ups crossed threads on every request;
    /// this serves about 14 % more tickets per second (`bench/RESULTS.md`). Accepting
    /// and the background tasks stay on the caller's runtime.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let mut workers = Vec::with_capacity(self.workers);
        let mut finished = Vec::with_capacity(self.workers);
        for n in 0..self.workers {
            let (handoff, streams) = tokio::sync::mpsc::unbounded_channel();
            let load = Arc::new(AtomicUsize::new(0));
            let worker = Worker {
                streams,
                load: Arc::clone(&load),
                router: self.router.clone(),
                connections: self.connections.clone(),
                grace: self.grace,
            };
            let (done, done_rx) = tokio::sync::oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("http-worker-{n}"))
                .spawn(move || {
                    worker.run();
                    let _ = done.send(());
                });
            if let Err(error) = thread {
                // The workers already running stop when their senders drop.
                drop(workers);
                for done in finished {
                    let _ = done.await;
                }
                return Err(error);
            }
            workers.push((handoff, load));
            finished.push(done_rx);
        }

        let mut shutdown = std::pin::pin!(shutdown);
        let mut all_workers_gone = false;
        loop {
            let stream = tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
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
            let Ok(stream) = stream.into_std() else {
                continue;
            };
            if !hand_off(&mut workers, stream) {
                all_workers_gone = true;
                break;
            }
        }
        drop(self.listener);
        tracing::info!("shutting down: draining in-flight requests");
        // Closing the hand-off channels tells the workers to drain and stop.
        drop(workers);
        // A worker that ends (or panics) drops its sender: either way it is done.
        for done in finished {
            let _ = done.await;
        }
        for task in self.background {
            task.abort();
        }
        if all_workers_gone {
            return Err(std::io::Error::other("every serving thread stopped"));
        }
        Ok(())
    }
}

/// Gives `stream` to the worker serving the fewest connections. A worker that is gone
/// (its thread panicked) is forgotten and the next one tried; false when none is left.
fn hand_off(
    workers: &mut Vec<(UnboundedSender<std::net::TcpStream>, Arc<AtomicUsize>)>,
    mut stream: std::net::TcpStream,
) -> bool {
    loop {
        let Some(at) = (0..workers.len()).min_by_key(|&i| workers[i].1.load(Ordering::Relaxed))
        else {
            return false;
        };
        let (handoff, load) = &workers[at];
        load.fetch_add(1, Ordering::Relaxed);
        match handoff.send(stream) {
            Ok(()) => return true,
            Err(returned) => {
                tracing::error!("a serving thread is gone");
                stream = returned.0;
                workers.swap_remove(at);
            }
        }
    }
}

/// One serving thread: its own event loop, serving the connections handed to it until
/// the hand-off closes, then draining them for at most the grace period.
struct Worker {
    streams: tokio::sync::mpsc::UnboundedReceiver<std::net::TcpStream>,
    /// Connections open on this worker, for the hand-off's choice.
    load: Arc<AtomicUsize>,
    router: axum::Router,
    connections: auto::Builder<TokioExecutor>,
    grace: Duration,
}

impl Worker {
    fn run(self) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                tracing::error!(%error, "a serving thread could not start its event loop");
                return;
            }
        };
        runtime.block_on(self.serve());
    }

    async fn serve(mut self) {
        let graceful = GracefulShutdown::new();
        while let Some(stream) = self.streams.recv().await {
            let stream = match TcpStream::from_std(stream) {
                Ok(stream) => stream,
                Err(error) => {
                    self.load.fetch_sub(1, Ordering::Relaxed);
                    tracing::warn!(%error, "a connection could not be served");
                    continue;
                }
            };
            let service = TowerToHyperService::new(self.router.clone());
            let connection = self
                .connections
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            let connection = graceful.watch(connection);
            // Counted down however the task ends: done, failed, or dropped at exit.
            let open = Open(Arc::clone(&self.load));
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(error = %error, "connection ended with an error");
                }
                drop(open);
            });
        }
        tokio::select! {
            () = graceful.shutdown() => {},
            () = tokio::time::sleep(self.grace) => {
                tracing::warn!(grace = ?self.grace, "grace period over; dropping the requests still running");
            }
        }
    }
}

/// One open connection on a worker's count.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
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
        .keep_alive_interval(Duration::from_secs(30));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> (std::net::TcpStream, std::net::TcpListener) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        (stream, listener)
    }

    #[test]
    fn connections_go_to_the_least_loaded_worker_that_is_still_there() {
        let (a, mut a_streams) = tokio::sync::mpsc::unbounded_channel();
        let (b, b_streams) = tokio::sync::mpsc::unbounded_channel();
        let (a_load, b_load) = (Arc::new(AtomicUsize::new(3)), Arc::new(AtomicUsize::new(1)));
        let mut workers = vec![(a, Arc::clone(&a_load)), (b, Arc::clone(&b_load))];
        let (one, _l1) = stream();
        let (two, _l2) = stream();

        // b serves fewer, but its thread is gone: a gets the connection, b is forgotten.
        drop(b_streams);
        assert!(hand_off(&mut workers, one));
        assert_eq!(workers.len(), 1);
        assert!(a_streams.try_recv().is_ok());
        assert_eq!(a_load.load(Ordering::Relaxed), 4);

        drop(a_streams);
        assert!(!hand_off(&mut workers, two), "no worker left");
        assert!(workers.is_empty());
    }
}
