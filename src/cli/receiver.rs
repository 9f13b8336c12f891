//! `dev`'s own webhook receiver: the dev tenants' events go to it, on a loopback port of
//! its own, and the demo page shows what it got (`GET /demo/events`). It checks every
//! signature as a tenant's receiver would, with the secret `dev` made for the run.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

use crate::webhook::Webhook;
use crate::webhook::received::{EventLog, ReceivedEvent};

/// The receiver, running until dropped.
#[derive(Debug)]
pub(super) struct Receiver {
    /// Where events go.
    pub url: String,
    /// What it got.
    pub log: Arc<EventLog>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

struct Shared {
    hook: Webhook,
    log: Arc<EventLog>,
}

impl Receiver {
    /// Binds a loopback port and serves the receiver, checking signatures with
    /// `secret` (`whsec_...`).
    pub(super) async fn start(secret: &str) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/events", listener.local_addr()?);
        let hook = Webhook::new(&url, secret).map_err(|e| std::io::Error::other(e.to_string()))?;
        let log = Arc::new(EventLog::default());
        let shared = Arc::new(Shared {
            hook,
            log: Arc::clone(&log),
        });
        let router = Router::new()
            .route("/events", post(receive))
            .with_state(shared);
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::warn!(%error, "dev's webhook receiver stopped");
            }
        });
        Ok(Self { url, log, server })
    }
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (id, timestamp, signature) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let verified = timestamp.parse::<u64>().is_ok_and(|at| {
        let expected = shared.hook.signature(&id, at, body.as_bytes());
        signature
            .split(' ')
            .any(|s| expected.split(' ').any(|e| e == s))
    });
    let event: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let tenant = event["data"]["tenant"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    shared.log.push(ReceivedEvent {
        id,
        timestamp,
        signature,
        verified,
        tenant,
        event,
    });
    if verified {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::UNAUTHORIZED
    }
}
