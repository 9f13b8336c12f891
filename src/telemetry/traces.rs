//! OpenTelemetry traces over OTLP (HTTP/protobuf), off unless an endpoint is named.
//!
//! The spans are `tracing`'s: a `request` span per request (named for the exporter by
//! its route, continuing the gateway's `traceparent`), `debug` children for the parts
//! of a ticket (`jwt.verify`, `plan`, `admit`, `sign`, `settle`), the AWS SDK's own span
//! per store call, and `webhook.deliver` per attempt (passing `traceparent` on). The
//! children are made only in a sampled request ([`in_span`], [`await_in_span`]): with
//! traces off the ticket path costs what it did without them, and a request the sampler
//! leaves out pays for its own span only. A filter of the exporter's own lets them
//! through to it alone, not to the log (at `debug`, below the log's default level).
//!
//! Nothing secret leaves in a span: no token, URL query or header is recorded, and the
//! exporter redacts what looks like a presigned URL's signature, credential or session
//! token, or an `Authorization` value, in every attribute before it is sent (those
//! parameters are not in OpenTelemetry's own redaction list).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{Status, TraceContextExt as _, TracerProvider as _};
use opentelemetry::{KeyValue, StringValue, Value};
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Level, Metadata};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::{Context, Filter};

use crate::config::TelemetrySettings;

static ON: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported: request paths skip the work of naming spans for the
/// exporter, reading `traceparent` and writing trace ids into log lines when not.
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// `$body` in a `debug` span `$name` in a sampled request, and as it is otherwise: the
/// ticket path then neither makes the span nor carries it.
macro_rules! in_span {
    ($name:literal, $body:expr) => {
        if $crate::telemetry::traces::sampled() {
            ::tracing::debug_span!($name).in_scope(|| $body)
        } else {
            $body
        }
    };
}
pub(crate) use in_span;

/// `$future` awaited in a `debug` span `$name` in a sampled request (`$name, field =
/// value` names fields too), and awaited as it is otherwise.
macro_rules! await_in_span {
    ($future:expr, $($span:tt)+) => {
        if $crate::telemetry::traces::sampled() {
            ::tracing::Instrument::instrument($future, ::tracing::debug_span!($($span)+)).await
        } else {
            $future.await
        }
    };
}
pub(crate) use await_in_span;

tokio::task_local! {
    /// Whether the request this task serves is sampled: its spans are exported.
    static SAMPLED: bool;
}

/// Whether the request being served is traced and sampled. Requests a sampler leaves
/// out (`OTEL_TRACES_SAMPLER`) make no spans inside: sampling a hundredth of the
/// requests then costs about a hundredth of tracing them all.
pub fn sampled() -> bool {
    on() && SAMPLED.try_with(|sampled| *sampled).unwrap_or(false)
}

/// Serves `future` as a request whose span `span` is, sampled or not.
pub async fn serve_in<F: Future>(span: &tracing::Span, future: F) -> F::Output {
    let sampled = span.context().span().span_context().is_sampled();
    SAMPLED.scope(sampled, future).await
}

/// Where traces go: the configured endpoint (it wins, as the exporter's own settings
/// do), else the standard variables; none when the SDK or the exporter is switched off
/// by `OTEL_SDK_DISABLED=true` / `OTEL_TRACES_EXPORTER=none`.
pub(super) fn wanted(
    settings: &TelemetrySettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<Endpoint> {
    let set = |name: &str| env(name).is_some_and(|v| !v.trim().is_empty());
    if env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        || env("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim().eq_ignore_ascii_case("none"))
    {
        return None;
    }
    match settings.endpoint() {
        Ok(Some(base)) => Some(Endpoint::Configured(format!(
            "{}/v1/traces",
            base.trim_end_matches('/')
        ))),
        // A bad URL is reported with its line by the configuration check that follows.
        Err(_) => None,
        Ok(None)
            if set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") || set("OTEL_EXPORTER_OTLP_ENDPOINT") =>
        {
            Some(Endpoint::FromEnvironment)
        }
        Ok(None) => None,
    }
}

/// Where the exporter sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Endpoint {
    /// The traces URL made of `[telemetry] otlp_endpoint`.
    Configured(String),
    /// As the `OTEL_EXPORTER_OTLP_*` variables say (the exporter reads them).
    FromEnvironment,
}

/// The tracer provider: a batch of spans at a time, from a thread of its own, through
/// the redacting exporter. `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
/// `OTEL_TRACES_SAMPLER(_ARG)`, `OTEL_BSP_*` and `OTEL_EXPORTER_OTLP_{HEADERS,TIMEOUT}`
/// are read by the SDK.
pub(super) fn provider(endpoint: &Endpoint) -> Result<SdkTracerProvider, String> {
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary);
    if let Endpoint::Configured(url) = endpoint {
        exporter = exporter.with_endpoint(url.clone());
    }
    let exporter = exporter.build().map_err(|e| e.to_string())?;
    let mut resource = Resource::builder()
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    let named = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.is_empty())
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| v.contains("service.name="));
    if !named {
        resource = resource.with_service_name("upload-tickets");
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(Redacting(exporter))
        .with_resource(resource.build())
        .build())
}

/// The layer that hands spans to `provider`, behind the filter that picks them.
pub(super) fn layer<S>(provider: &SdkTracerProvider) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::Layer as _;
    ON.store(true, Ordering::Relaxed);
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("upload-tickets"))
        // Thread names, source lines, targets and busy/idle times say nothing a reader
        // of the trace needs, and each costs every span (the last a clock read on
        // every poll).
        .with_threads(false)
        .with_location(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        .with_filter(Exported)
}

/// What goes to the exporter: this crate's spans down to `debug`, the AWS SDK's
/// operation spans (one per store call), and this crate's warnings and errors (span
/// events). Decided per call site, once.
#[derive(Debug, Clone, Copy)]
struct Exported;

impl Exported {
    fn wants(metadata: &Metadata<'_>) -> bool {
        let target = metadata.target();
        let ours = target == "upload_tickets" || target.starts_with("upload_tickets::");
        if metadata.is_span() {
            (ours && *metadata.level() <= Level::DEBUG)
                || target.starts_with("aws_sdk_s3::operation::")
        } else {
            ours && *metadata.level() <= Level::WARN
        }
    }
}

impl<S> Filter<S> for Exported {
    fn enabled(&self, metadata: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        Self::wants(metadata)
    }

    fn callsite_enabled(&self, metadata: &'static Metadata<'static>) -> Interest {
        if Self::wants(metadata) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::DEBUG)
    }
}

/// Makes `span` continue the trace of the request's `traceparent`, if it has one.
pub fn continue_from(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    let parent =
        TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(headers));
    if parent.span().span_context().is_valid() {
        // Fails only where there is no exporter: then there is no trace to continue.
        let _ = span.set_parent(parent);
    }
}

/// Makes `span` continue the trace a `traceparent` value names (one kept with an event).
pub fn continue_traceparent(span: &tracing::Span, traceparent: &str) {
    let mut headers = axum::http::HeaderMap::new();
    if let Ok(value) = axum::http::HeaderValue::from_str(traceparent) {
        headers.insert("traceparent", value);
        continue_from(span, &headers);
    }
}

/// The `traceparent` that names `span` to whom it calls next (none with traces off).
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    if !on() {
        return None;
    }
    let mut headers = axum::http::HeaderMap::new();
    TraceContextPropagator::new().inject_context(
        &span.context(),
        &mut opentelemetry_http::HeaderInjector(&mut headers),
    );
    let value = headers.get("traceparent")?.to_str().ok()?;
    Some(value.to_owned())
}

/// Sets attribute `key` of `span` for the exporter (the log never sees it).
pub fn attribute(span: &tracing::Span, key: &'static str, value: impl Into<Value>) {
    span.set_attribute(key, value);
}

/// Names `span` for the exporter, once what names it is known (a request's route is
/// known only after the router matched it). The span has started by then (its sampling
/// was read), and `tracing-opentelemetry` takes a late `otel.name` only before.
pub fn rename(span: &tracing::Span, name: String) {
    span.context().span().update_name(name);
}

/// Marks `span` failed, with `why` (no secret: a status or a reason in words).
pub fn failed(span: &tracing::Span, why: impl Into<std::borrow::Cow<'static, str>>) {
    span.set_status(Status::error(why));
}

/// The trace and span ids of the span entered on this thread, as hex, for log lines.
pub(super) fn current_ids() -> Option<(String, String)> {
    let context = opentelemetry::Context::current();
    let span = context.span();
    let ids = span.span_context();
    ids.is_valid()
        .then(|| (ids.trace_id().to_string(), ids.span_id().to_string()))
}

/// A URL as a span may carry it: scheme, host, port and path (no credentials, no
/// query, no fragment: a webhook URL may hold a token in its query).
pub fn url_without_query(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) => "(unparsable URL)".to_owned(),
    }
}

/// Query parameters whose values are secrets or capabilities: SigV4's presigned-URL
/// parameters and those OpenTelemetry's conventions already name.
const SECRET_PARAMETERS: [&str; 7] = [
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "awsaccesskeyid",
    "signature",
    "sig",
    "x-goog-signature",
];

/// What a redacted value is replaced with.
const REDACTED: &str = "REDACTED";

/// `text` with every secret query parameter's value replaced, and wholly replaced if
/// it holds an `Authorization` value; `None` when nothing in it is secret.
pub fn redacted(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    if lower.contains("bearer ") || lower.contains("aws4-hmac-sha256 ") {
        return Some(REDACTED.to_owned());
    }
    let mut out = String::new();
    let mut copied = 0;
    let mut at = 0;
    while let Some(found) = lower[at..].find('=').map(|i| at + i) {
        // The parameter's name: back to `?`, `&`, `;`, whitespace or the start.
        let start = lower[..found]
            .rfind(|c: char| matches!(c, '?' | '&' | ';') || c.is_whitespace())
            .map_or(0, |i| i + 1);
        let name = &lower[start..found];
        let end = lower[found + 1..]
            .find(|c: char| matches!(c, '&' | '#' | '"' | '\'') || c.is_whitespace())
            .map_or(lower.len(), |i| found + 1 + i);
        if SECRET_PARAMETERS.contains(&name) && &text[found + 1..end] != REDACTED {
            out.push_str(&text[copied..=found]);
            out.push_str(REDACTED);
            copied = end;
        }
        at = end.max(found + 1);
    }
    (copied > 0).then(|| {
        out.push_str(&text[copied..]);
        out
    })
}

/// Redacts the string values of `attributes` in place.
fn redact_all(attributes: &mut [KeyValue]) {
    for attribute in attributes {
        if let Some(value) = redacted_value(&attribute.value) {
            attribute.value = value;
        }
    }
}

fn redacted_value(value: &Value) -> Option<Value> {
    match value {
        Value::String(text) => redacted(text.as_str()).map(Value::from),
        Value::Array(opentelemetry::Array::String(items)) => {
            let changed: Vec<Option<String>> = items.iter().map(|s| redacted(s.as_str())).collect();
            changed.iter().any(Option::is_some).then(|| {
                let items = items
                    .iter()
                    .zip(changed)
                    .map(|(item, changed)| changed.map_or_else(|| item.clone(), StringValue::from))
                    .collect::<Vec<StringValue>>();
                Value::Array(opentelemetry::Array::String(items))
            })
        }
        _ => None,
    }
}

/// The OTLP exporter behind a pass that redacts every span's attributes, its events'
/// and its links' (on the exporter's thread: request threads pay nothing for it).
#[derive(Debug)]
struct Redacting<E>(E);

impl<E: SpanExporter> SpanExporter for Redacting<E> {
    fn export(&self, mut batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        for span in &mut batch {
            redact_span(span);
        }
        self.0.export(batch)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource);
    }
}

fn redact_span(span: &mut SpanData) {
    redact_all(&mut span.attributes);
    for event in &mut span.events.events {
        redact_all(&mut event.attributes);
    }
    for link in &mut span.links.links {
        redact_all(&mut link.attributes);
    }
    if let Status::Error { description } = &span.status
        && let Some(clean) = redacted(description)
    {
        span.status = Status::error(clean);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presigned_url_secrets_are_redacted_and_the_rest_kept() {
        let url = "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20260101T000000Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host&X-Amz-Security-Token=FQoG&x-amz-signature=abc123";
        let clean = redacted(url).expect("secrets found");
        assert_eq!(
            clean,
            "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=REDACTED&X-Amz-Date=20260101T000000Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host&X-Amz-Security-Token=REDACTED&x-amz-signature=REDACTED"
        );
        assert_eq!(redacted(&clean), None, "redacting twice changes nothing");
        assert_eq!(
            redacted("see https://h/p?a=1&Signature=s#frag and ?sig=x y").as_deref(),
            Some("see https://h/p?a=1&Signature=REDACTED#frag and ?sig=REDACTED y")
        );
        assert_eq!(redacted("Bearer eyJhbGciOi.x.y").as_deref(), Some(REDACTED));
        assert_eq!(
            redacted("AWS4-HMAC-SHA256 Credential=AKIA/x, Signature=f").as_deref(),
            Some(REDACTED)
        );
        // Names that merely end like a secret parameter are not one.
        assert_eq!(redacted("https://h/p?design=1&xsig=2&key=a=b"), None);
        assert_eq!(redacted("no query at all"), None);
    }

    #[test]
    fn every_attribute_of_a_span_is_redacted() {
        let mut attributes = vec![
            KeyValue::new("url.full", "https://h/k?X-Amz-Signature=s"),
            KeyValue::new("n", 3),
            KeyValue::new(
                "urls",
                Value::Array(opentelemetry::Array::String(vec![
                    "a".into(),
                    "?sig=1".into(),
                ])),
            ),
        ];
        redact_all(&mut attributes);
        assert_eq!(
            attributes[0].value.as_str(),
            "https://h/k?X-Amz-Signature=REDACTED"
        );
        assert_eq!(attributes[1].value, Value::I64(3));
        assert_eq!(
            attributes[2].value,
            Value::Array(opentelemetry::Array::String(vec![
                "a".into(),
                "?sig=REDACTED".into()
            ]))
        );
    }

    #[test]
    fn traces_are_wanted_where_an_endpoint_is_named_and_not_switched_off() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let none = TelemetrySettings::default();
        let configured = TelemetrySettings {
            otlp_endpoint: Some("http://collector:4318/".to_owned()),
        };
        assert_eq!(wanted(&none, &env(&[])), None);
        assert_eq!(
            wanted(
                &configured,
                &env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x:1")])
            ),
            Some(Endpoint::Configured(
                "http://collector:4318/v1/traces".to_owned()
            ))
        );
        assert_eq!(
            wanted(
                &none,
                &env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x:1")])
            ),
            Some(Endpoint::FromEnvironment)
        );
        assert_eq!(
            wanted(
                &none,
                &env(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://x:1/t")])
            ),
            Some(Endpoint::FromEnvironment)
        );
        assert_eq!(
            wanted(&none, &env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])),
            None
        );
        for off in [
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ] {
            let pairs: &'static [(&str, &str)] = Box::leak(Box::new([off]));
            assert_eq!(wanted(&configured, &env(pairs)), None, "{off:?}");
        }
        let bad = TelemetrySettings {
            otlp_endpoint: Some("http://user:pw@collector:4318".to_owned()),
        };
        assert!(bad.endpoint().is_err());
        assert_eq!(wanted(&bad, &env(&[])), None);
    }
}
