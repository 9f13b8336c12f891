//! A tenant's webhook receiver for the tests: a real HTTP server on loopback that keeps
//! every delivery (headers and body), answers a status it is told to (500 for the next
//! n attempts, then 200), and checks each signature on arrival with the secret the tests
//! configure (the browser tests check them with the Standard Webhooks reference library).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;
use upload_tickets::webhook::Webhook;

use crate::helpers::WEBHOOK_SECRET;

/// One attempt as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub timestamp: u64,
    pub signature: String,
    pub body: String,
    /// What the receiver answered.
    pub status: u16,
    /// The W3C `traceparent` the attempt carried, if any.
    pub traceparent: Option<String>,
}

impl Delivery {
    pub fn event(&self) -> Value {
        serde_json::from_str(&self.body).expect("an event is JSON")
    }
}

#[derive(Default)]
struct Shared {
    attempts: Mutex<Vec<Delivery>>,
    /// Attempts still to refuse with a 500.
    refuse: AtomicUsize,
}

/// The receiver; it stops when dropped.
pub struct Receiver {
    pub url: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
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
    let refuse = shared
        .refuse
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = if refuse {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    shared.attempts.lock().unwrap().push(Delivery {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp").parse().unwrap_or(0),
        signature: header("webhook-signature"),
        body,
        status: status.as_u16(),
        traceparent: headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    });
    status
}

impl Receiver {
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let router = Router::new()
            .route("/hook", post(receive))
            .with_state(Arc::clone(&shared));
        let (addr, server) = crate::helpers::serve_loopback(router).await;
        Self {
            url: format!("http://{addr}/hook"),
            shared,
            server,
        }
    }

    /// The next `n` attempts are answered 500.
    pub fn refuse_next(&self, n: usize) {
        self.shared.refuse.store(n, Ordering::SeqCst);
    }

    /// Every attempt so far.
    pub fn attempts(&self) -> Vec<Delivery> {
        self.shared.attempts.lock().unwrap().clone()
    }

    /// The attempts answered 200, each checked: signed with the test secret over its
    /// id, timestamp and body.
    pub fn accepted(&self) -> Vec<Delivery> {
        let hook = Webhook::new(&self.url, WEBHOOK_SECRET).unwrap();
        let accepted: Vec<Delivery> = self
            .attempts()
            .into_iter()
            .filter(|d| d.status == 200)
            .collect();
        let spec = crate::openapi::spec();
        for d in &accepted {
            crate::openapi::assert_event_declared(&spec, &d.event());
            assert_eq!(
                d.signature,
                hook.signature(&d.id, d.timestamp, d.body.as_bytes()),
                "a delivery's signature does not verify"
            );
        }
        accepted
    }

    /// Checks every accepted delivery with the Standard Webhooks reference library
    /// (`tests/browser/verify-webhooks.mjs`, npm `standardwebhooks`).
    pub async fn verify_with_reference_library(&self) {
        let accepted = self.accepted();
        let deliveries: Vec<serde_json::Value> = accepted
            .iter()
            .map(|d| {
                serde_json::json!({
                    "id": d.id, "timestamp": d.timestamp, "signature": d.signature, "body": d.body,
                })
            })
            .collect();
        let args = vec![
            WEBHOOK_SECRET.to_owned(),
            serde_json::to_string(&deliveries).unwrap(),
        ];
        let results =
            crate::browser::run_driver("verify-webhooks.mjs", args, "standardwebhooks").await;
        let results = results.as_array().expect("one result per delivery");
        assert_eq!(results.len(), accepted.len());
        for result in results {
            assert_eq!(result["verified"], true, "{result}");
            assert_eq!(result["tamperedRefused"], true, "{result}");
        }
    }

    /// Waits (up to `limit`) until `n` deliveries were accepted; answers them.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Delivery> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let accepted = self.accepted();
            if accepted.len() >= n || tokio::time::Instant::now() >= deadline {
                return accepted;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
