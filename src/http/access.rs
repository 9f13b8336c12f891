//! One access log line per request: method, path, status, latency, and what the handler
//! reports (tenant, outcome code, issued key), with the request id from the span.
//!
//! Handlers report through response extensions rather than by recording span fields:
//! a span's fields are re-formatted on every record, which cost more than the rest of
//! the request (measured in `bench/RESULTS.md`).

use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

use super::REQUEST_ID;

/// What a handler reports about a request for the access log.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The caller's tenant, once known.
    pub tenant: Option<String>,
    /// The stable outcome code: `ticket_issued`, or the error code.
    pub code: Option<&'static str>,
    /// The key a ticket was issued for.
    pub key: Option<String>,
}

/// Adds `outcome` to `response`, keeping what an inner layer already reported.
pub(super) fn report(response: &mut Response, outcome: Outcome) {
    let extensions = response.extensions_mut();
    match extensions.get_mut::<Outcome>() {
        Some(existing) => {
            existing.tenant = existing.tenant.take().or(outcome.tenant);
            existing.code = existing.code.or(outcome.code);
            existing.key = existing.key.take().or(outcome.key);
        }
        None => {
            extensions.insert(outcome);
        }
    }
}

/// The middleware: a span with the request id around the request, then the line.
pub(super) async fn log(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let span = tracing::info_span!("request", request_id = %id);
    let response = next.run(request).instrument(span.clone()).await;
    let outcome = response.extensions().get::<Outcome>();
    let _entered = span.enter();
    tracing::info!(
        %method,
        path,
        status = response.status().as_u16(),
        latency_us = started.elapsed().as_micros() as u64,
        tenant = outcome.and_then(|o| o.tenant.as_deref()),
        code = outcome.and_then(|o| o.code),
        key = outcome.and_then(|o| o.key.as_deref()),
        "request"
    );
    response
}
