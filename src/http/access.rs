//! One access log line per request: method, path, status, latency, and what the handler
//! reports (tenant, outcome code, issued key), with the request id from the span.
//!
//! Handlers report through response extensions rather than by recording span fields:
//! a span's fields are re-formatted on every record, which cost more than the rest of
//! the request (measured in `bench/RESULTS.md`).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::Response;
use metrics::{Counter, Histogram};
use tower::{Layer, Service};
use tracing::Instrument as _;

use crate::auth::Caller;
use crate::telemetry::traces;

/// The header that carries a request's id, in and out.
pub(super) const REQUEST_ID: axum::http::HeaderName =
    axum::http::HeaderName::from_static("x-request-id");

/// Whose request it was, as the access log and the metrics name it: the verified
/// caller's tenant (shared with the caller, not copied) or a fixed label.
#[derive(Debug, Clone)]
pub enum TenantLabel {
    /// The tenant the caller's token names.
    Caller(Arc<Caller>),
    /// A label of requests whose tenant is not a configured one.
    Fixed(&'static str),
}

impl TenantLabel {
    /// The label's text.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Caller(caller) => &caller.tenant,
            Self::Fixed(label) => label,
        }
    }
}

/// What a handler reports about a request for the access log.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The caller's tenant, once known.
    pub tenant: Option<TenantLabel>,
    /// The stable outcome code: `ticket_issued`, `multipart_started`, ... on success, or
    /// the error code.
    pub code: Option<&'static str>,
    /// The key a ticket was issued for.
    pub key: Option<String>,
    /// The route the request took (its template), once the router has matched it.
    pub route: Option<MatchedPath>,
}

tokio::task_local! {
    /// What the request being served reported so far: set by the access log around
    /// each request, so that a report travels without a response extension (whose
    /// map, table and box were three allocations per request).
    static REPORTED: RefCell<Option<Outcome>>;
}

/// Adds `outcome` to what the request reported, keeping what was reported before (an
/// inner layer's, an error's): to the access log's record of the request, or to
/// `response` where no access log serves it (the admin listener).
pub(super) fn report(response: &mut Response, outcome: Outcome) {
    if REPORTED.try_with(|_| ()).is_ok() {
        REPORTED.with(|reported| {
            let mut reported = reported.borrow_mut();
            match reported.as_mut() {
                Some(existing) => existing.merge(outcome),
                None => *reported = Some(outcome),
            }
        });
        return;
    }
    let extensions = response.extensions_mut();
    match extensions.get_mut::<Outcome>() {
        Some(existing) => existing.merge(outcome),
        None => {
            extensions.insert(outcome);
        }
    }
}

impl Outcome {
    /// Each part of `later` where this one has none.
    fn merge(&mut self, later: Outcome) {
        self.tenant = self.tenant.take().or(later.tenant);
        self.code = self.code.or(later.code);
        self.key = self.key.take().or(later.key);
        self.route = self.route.take().or(later.route);
    }
}

/// The access log as a layer around the whole router: a span with the request id around
/// the request, then the line. Outside the router, so it sees every answer (CORS
/// preflights, unmatched paths) and is applied once, not cloned into every route.
#[derive(Debug, Clone, Copy)]
pub(super) struct AccessLogLayer;

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> AccessLog<S> {
        AccessLog { inner }
    }
}

/// See [`AccessLogLayer`].
#[derive(Debug, Clone)]
pub struct AccessLog<S> {
    inner: S,
}

impl<S, B, A> Service<axum::http::Request<B>> for AccessLog<S>
where
    S: Service<Request, Response = axum::http::Response<A>, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
    A: HttpBody<Data = Bytes> + Send + 'static,
    A::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: axum::http::Request<B>) -> Self::Future {
        // The request's id: the caller's (a gateway's), or a new one, set on the request
        // for the handlers and on the answer for the caller.
        let id = match request.headers().get(&REQUEST_ID) {
            Some(id) => id.clone(),
            None => {
                let id = new_request_id();
                request.headers_mut().insert(REQUEST_ID, id.clone());
                id
            }
        };
        let request = request.map(Body::new);
        let started = Instant::now();
        let method = request.method().clone();
        // Kept for an unmatched path, logged as sent (cut short): a shared handle, no copy.
        let uri = request.uri().clone();
        let traced = traces::on();
        let request_id = id.to_str().unwrap_or("-");
        let span = if traced {
            server_span(&request, request_id)
        } else {
            tracing::info_span!("request", request_id)
        };
        // Called here, where it was made ready (`poll_ready` above): the future owns
        // what it needs, so the stack below is not cloned for it.
        let answer = self.inner.call(request);
        Box::pin(log(
            Served {
                started,
                method,
                uri,
                id,
                span,
                traced,
            },
            answer,
        ))
    }
}

/// A random UUID as a request id: formatted on the stack and shared, not copied, by
/// the request and the answer that carry it.
fn new_request_id() -> HeaderValue {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
    HeaderValue::from_maybe_shared(Bytes::from_owner(text))
        .unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// The route template a request matched, put on its answer for the access log (which
/// runs outside the router and never sees the routed request). A layer of every route.
#[derive(Debug, Clone, Copy)]
pub(super) struct StampRouteLayer;

impl<S> Layer<S> for StampRouteLayer {
    type Service = StampRoute<S>;

    fn layer(&self, inner: S) -> StampRoute<S> {
        StampRoute { inner }
    }
}

/// See [`StampRouteLayer`].
#[derive(Debug, Clone)]
pub(super) struct StampRoute<S> {
    inner: S,
}

impl<S> Service<Request> for StampRoute<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Stamped<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let route = request.extensions().get::<MatchedPath>().cloned();
        Stamped {
            answer: self.inner.call(request),
            route,
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer of a [`StampRoute`], with its route.
    pub(super) struct Stamped<F> {
        #[pin]
        answer: F,
        route: Option<MatchedPath>,
    }
}

impl<F, E> Future for Stamped<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = std::task::ready!(this.answer.poll(cx))?;
        if let Some(route) = this.route.take() {
            // With what the handler reported, where it did: one extension, not two.
            report(
                &mut response,
                Outcome {
                    route: Some(route),
                    ..Outcome::default()
                },
            );
        }
        Poll::Ready(Ok(response))
    }
}

/// What the access log keeps of a request while it is served.
struct Served {
    started: Instant,
    method: Method,
    uri: axum::http::Uri,
    id: HeaderValue,
    span: tracing::Span,
    traced: bool,
}

/// One request under the access log: its `answer`, then the line.
async fn log<F, A>(request: Served, answer: F) -> Result<Response, Infallible>
where
    F: Future<Output = Result<axum::http::Response<A>, Infallible>>,
    A: HttpBody<Data = Bytes> + Send + 'static,
    A::Error: Into<axum::BoxError>,
{
    let Served {
        started,
        method,
        uri,
        id,
        span,
        traced,
    } = request;
    // The answer, and what was reported on the way to it.
    let reported = REPORTED.scope(RefCell::new(None), async {
        let answered = answer.await;
        (answered, REPORTED.with(|reported| reported.take()))
    });
    let (answered, reported) = if traced {
        traces::serve_in(&span, reported.instrument(span.clone())).await
    } else {
        reported.instrument(span.clone()).await
    };
    // Into the body type every layer above and the tests read.
    let Ok(mut response) = answered.map(|response| response.map(Body::new));
    if !response.headers().contains_key(&REQUEST_ID) {
        response.headers_mut().insert(REQUEST_ID, id);
    }
    // Routes log and count by their template: a path parameter (a multipart handle)
    // is a capability and stays out of logs, and metric labels stay few. Unmatched
    // paths are logged as sent, cut short.
    let reported = reported.or_else(|| response.extensions_mut().remove::<Outcome>());
    let outcome = reported.as_ref();
    let matched = outcome.and_then(|o| o.route.as_ref());
    let route = matched.map_or("unmatched", MatchedPath::as_str);
    let path: Cow<'_, str> = match matched {
        Some(template) => Cow::Borrowed(template.as_str()),
        None => Cow::Owned(uri.path().chars().take(128).collect()),
    };
    let latency = started.elapsed();
    record_metrics(&method, route, response.status().as_u16(), latency, outcome);
    if traced {
        finish_server_span(&span, &method, route, response.status(), outcome);
    }
    span.in_scope(|| {
        tracing::info!(
            %method,
            path = &*path,
            status = response.status().as_u16(),
            latency_us = latency.as_micros() as u64,
            tenant = outcome.and_then(|o| o.tenant.as_ref()).map(TenantLabel::as_str),
            code = outcome.and_then(|o| o.code),
            key = outcome.and_then(|o| o.key.as_deref()),
            "request"
        );
    });
    Ok(response)
}

/// The request's span as the trace exporter sees it: a server span continuing the
/// gateway's `traceparent`, named once the route is known. Never the query string or a
/// header's value.
fn server_span(request: &Request, request_id: &str) -> tracing::Span {
    let span = tracing::info_span!("request", request_id, otel.kind = "server");
    traces::continue_from(&span, request.headers());
    traces::attribute(
        &span,
        "http.request.method",
        request.method().as_str().to_owned(),
    );
    span
}

/// What the exporter learns once the answer is known: the span's name `METHOD /route`
/// (the template: a path parameter is a capability), the route, the status, the outcome.
fn finish_server_span(
    span: &tracing::Span,
    method: &Method,
    route: &str,
    status: StatusCode,
    outcome: Option<&Outcome>,
) {
    traces::rename(span, format!("{method} {route}"));
    traces::attribute(span, "http.route", route.to_owned());
    traces::attribute(
        span,
        "http.response.status_code",
        i64::from(status.as_u16()),
    );
    if let Some(outcome) = outcome {
        if let Some(tenant) = &outcome.tenant {
            traces::attribute(span, "upload_tickets.tenant", tenant.as_str().to_owned());
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
        let tenant = outcome.tenant.as_ref().map_or("none", TenantLabel::as_str);
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
