//! One access log line per request: method, path, status, latency, and what the handler
//! reports (tenant, outcome code, issued key), with the request id from the span.
//!
//! Handlers report through response extensions rather than by recording span fields:
//! a span's fields are re-formatted on every record, which cost more than the rest of
//! the request (measured in `bench/RESULTS.md`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Counter, Histogram};
use tracing::Instrument as _;

use crate::telemetry::traces;

/// The header that carries a request's id, in and out.
pub(super) const REQUEST_ID: axum::http::HeaderName =
    axum::http::HeaderName::from_static("x-request-id");

/// What a handler reports about a request for the access log.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The caller's tenant, once known.
    pub tenant: Option<String>,
    /// The stable outcome code: `ticket_issued`, `multipart_started`, ... on success, or
    /// the error code.
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
    // Routes log and count by their template: a path parameter (a multipart handle)
    // is a capability and stays out of logs, and metric labels stay few. Unmatched
    // paths are logged as sent, cut short.
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    let path: Cow<'_, str> = match &matched {
        Some(template) => Cow::Borrowed(template.as_str()),
        None => Cow::Owned(request.uri().path().chars().take(128).collect()),
    };
    let id = request.headers().get(&REQUEST_ID).cloned();
    let request_id = id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("-");
    let traced = traces::on();
    let span = if traced {
        server_span(&request, request_id, route)
    } else {
        tracing::info_span!("request", request_id)
    };
    let response = if traced {
        traces::serve_in(&span, next.run(request).instrument(span.clone())).await
    } else {
        next.run(request).instrument(span.clone()).await
    };
    let outcome = response.extensions().get::<Outcome>();
    let latency = started.elapsed();
    record_metrics(&method, route, response.status().as_u16(), latency, outcome);
    if traced {
        finish_server_span(&span, response.status(), outcome);
    }
    let _entered = span.enter();
    tracing::info!(
        %method,
        path = &*path,
        status = response.status().as_u16(),
        latency_us = latency.as_micros() as u64,
        tenant = outcome.and_then(|o| o.tenant.as_deref()),
        code = outcome.and_then(|o| o.code),
        key = outcome.and_then(|o| o.key.as_deref()),
        "request"
    );
    response
}

/// The request's span as the trace exporter sees it: named `METHOD /route` (the
/// template: a path parameter is a capability), a server span continuing the
/// gateway's `traceparent`. Never the query string or a header's value.
fn server_span(request: &Request, request_id: &str, route: &str) -> tracing::Span {
    let method = request.method().as_str();
    let span = tracing::info_span!(
        "request",
        request_id,
        otel.name = format_args!("{method} {route}"),
        otel.kind = "server",
    );
    traces::continue_from(&span, request.headers());
    traces::attribute(&span, "http.request.method", method.to_owned());
    traces::attribute(&span, "http.route", route.to_owned());
    span
}

/// What the exporter learns once the answer is known.
fn finish_server_span(span: &tracing::Span, status: StatusCode, outcome: Option<&Outcome>) {
    traces::attribute(
        span,
        "http.response.status_code",
        i64::from(status.as_u16()),
    );
    if let Some(outcome) = outcome {
        if let Some(tenant) = &outcome.tenant {
            traces::attribute(span, "upload_tickets.tenant", tenant.clone());
        }
        if let Some(code) = outcome.code {
            traces::attribute(span, "upload_tickets.outcome", code);
        }
    }
    if status.is_server_error() {
        traces::failed(span, status.as_str().to_owned());
    }
}

fn record_metrics(
    method: &Method,
    route: &str,
    status: u16,
    latency: Duration,
    outcome: Option<&Outcome>,
) {
    HANDLES.with_borrow_mut(|handles| {
        handles.record_duration(method, route, status, latency.as_secs_f64());
        let Some(outcome) = outcome else { return };
        let tenant = outcome.tenant.as_deref().unwrap_or("none");
        let kind = match outcome.code {
            Some("ticket_issued") => Kind::Issued,
            Some(code) if status < 400 => Kind::Operation(code),
            Some(code) => Kind::Refusal(code),
            None => return,
        };
        handles.count(tenant, kind);
    });
}

/// The method as a label: a client can send any token as a method, and each would be a
/// new time series kept for ever.
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::DELETE, "DELETE"),
        (Method::HEAD, "HEAD"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::PATCH, "PATCH"),
        (Method::TRACE, "TRACE"),
        (Method::CONNECT, "CONNECT"),
    ];
    KNOWN
        .iter()
        .find(|(known, _)| known == method)
        .map_or("other", |(_, label)| label)
}

/// What a counted outcome counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Issued,
    Operation(&'static str),
    Refusal(&'static str),
}

thread_local! {
    static HANDLES: std::cell::RefCell<Handles> = std::cell::RefCell::default();
}

/// Metric handles by label values, per thread. Registering a labelled metric builds its
/// key (an allocation per label) and looks it up in the shared registry: more than the
/// rest of the access log path. Label values are few (routes are templates, tenants come
/// from verified tokens), and so are the handles kept here.
#[derive(Default)]
struct Handles {
    durations: HashMap<String, Vec<(&'static str, u16, Histogram)>>,
    counters: HashMap<String, Vec<(Kind, Counter)>>,
}

impl Handles {
    fn record_duration(&mut self, method: &Method, route: &str, status: u16, seconds: f64) {
        let method = method_label(method);
        let known = self.durations.get(route).and_then(|entries| {
            entries
                .iter()
                .find(|(m, s, _)| *s == status && *m == method)
        });
        if let Some((_, _, histogram)) = known {
            histogram.record(seconds);
            return;
        }
        let histogram = metrics::histogram!(
            "upload_tickets_http_request_duration_seconds",
            "method" => method,
            "route" => route.to_owned(),
            "status" => status.to_string(),
        );
        histogram.record(seconds);
        self.durations
            .entry(route.to_owned())
            .or_default()
            .push((method, status, histogram));
    }

    fn count(&mut self, tenant: &str, kind: Kind) {
        let known = self
            .counters
            .get(tenant)
            .and_then(|entries| entries.iter().find(|(k, _)| *k == kind));
        if let Some((_, counter)) = known {
            counter.increment(1);
            return;
        }
        let label = tenant.to_owned();
        let counter = match kind {
            Kind::Issued => {
                metrics::counter!("upload_tickets_tickets_issued_total", "tenant" => label)
            }
            Kind::Operation(code) => {
                metrics::counter!("upload_tickets_operations_total", "tenant" => label, "operation" => code)
            }
            Kind::Refusal(code) => {
                metrics::counter!("upload_tickets_refusals_total", "tenant" => label, "code" => code)
            }
        };
        counter.increment(1);
        self.counters
            .entry(tenant.to_owned())
            .or_default()
            .push((kind, counter));
    }
}
