//! OpenTelemetry traces: the real binary exports its spans over OTLP/HTTP to a collector
//! this test runs, decoded with OpenTelemetry's own protobuf definitions
//! (`opentelemetry-proto`). A ticket, a multipart start and a completion check with its
//! webhook, each sent with a gateway's `traceparent`: each continues its trace, the
//! webhook carries it on, and no attribute holds a token, signature or credential.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;
use serde_json::{Value, json};

use crate::events::{QUICK_EVENTS, png};
use crate::helpers::*;
use crate::receiver::Receiver;
use crate::store::{Kind, Store};

/// An OTLP/HTTP collector on loopback: keeps every span of every export, and the
/// resource attributes they came with.
struct Collector {
    url: String,
    received: Arc<Mutex<Received>>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Received {
    spans: Vec<Span>,
    resources: Vec<KeyValue>,
    content_types: Vec<String>,
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn export(
    State(received): State<Arc<Mutex<Received>>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> (StatusCode, [(&'static str, &'static str); 1], Vec<u8>) {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (
            StatusCode::BAD_REQUEST,
            [("content-type", "text/plain")],
            Vec::new(),
        );
    };
    let mut received = received.lock().unwrap();
    received.content_types.push(
        headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
    );
    for resource_spans in request.resource_spans {
        if let Some(resource) = resource_spans.resource {
            received.resources.extend(resource.attributes);
        }
        for scope in resource_spans.scope_spans {
            received.spans.extend(scope.spans);
        }
    }
    // An empty ExportTraceServiceResponse: everything accepted.
    (
        StatusCode::OK,
        [("content-type", "application/x-protobuf")],
        Vec::new(),
    )
}

impl Collector {
    async fn start() -> Self {
        let received = Arc::new(Mutex::new(Received::default()));
        let router = Router::new()
            .route("/v1/traces", post(export))
            .with_state(Arc::clone(&received));
        let (addr, server) = serve_loopback(router).await;
        Self {
            url: format!("http://{addr}"),
            received,
            server,
        }
    }

    fn spans(&self) -> Vec<Span> {
        self.received.lock().unwrap().spans.clone()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An attribute's value as text (arrays joined), for searching and comparing.
fn text(value: &Option<AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::ArrayValue(a)) => a
            .values
            .iter()
            .map(|v| text(&Some(v.clone())))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| text(&kv.value))
}

/// Every text a span carries: its name, attributes, events and links, and the
/// status message.
fn everything_in(span: &Span) -> Vec<String> {
    let mut all = vec![span.name.clone()];
    let mut add = |attributes: &[KeyValue]| {
        for kv in attributes {
            all.push(format!("{}={}", kv.key, text(&kv.value)));
        }
    };
    add(&span.attributes);
    for event in &span.events {
        add(&event.attributes);
    }
    for link in &span.links {
        add(&link.attributes);
    }
    if let Some(status) = &span.status {
        all.push(status.message.clone());
    }
    all
}

/// A gateway's `traceparent`: a fresh trace id and parent span id.
fn gateway_traceparent() -> (String, String, String) {
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let span_id = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
    let header = format!("00-{trace_id}-{span_id}-01");
    (header, trace_id, span_id)
}

/// The spans of trace `trace_id` under (transitively) the span `root`.
fn descendants<'a>(spans: &'a [Span], root: &Span) -> Vec<&'a Span> {
    let mut found: Vec<&Span> = Vec::new();
    let mut parents = vec![root.span_id.clone()];
    while let Some(parent) = parents.pop() {
        for span in spans
            .iter()
            .filter(|s| s.trace_id == root.trace_id && s.parent_span_id == parent)
        {
            parents.push(span.span_id.clone());
            found.push(span);
        }
    }
    found
}

/// The server span that continued `(trace_id, parent)`; fails unless exactly one did.
fn server_span<'a>(spans: &'a [Span], trace_id: &str, parent: &str, name: &str) -> &'a Span {
    let matching: Vec<&Span> = spans
        .iter()
        .filter(|s| hex(&s.trace_id) == trace_id && hex(&s.parent_span_id) == parent)
        .collect();
    assert_eq!(matching.len(), 1, "one span continues {trace_id}/{parent}");
    let span = matching[0];
    assert_eq!(span.name, name);
    assert_eq!(span.kind, SpanKind::Server as i32);
    span
}

fn names(spans: &[&Span]) -> Vec<String> {
    let mut names: Vec<String> = spans.iter().map(|s| s.name.clone()).collect();
    names.sort();
    names
}

// Two threads: the collector answers the last export while the test waits for the
// server to exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_a_multipart_start_and_a_completion_are_traced_through_the_gateway_and_the_webhook()
 {
    let store = Store::start(Kind::S3sFs).await;
    for bucket in ["photo-uploads", "big-uploads"] {
        store.create_bucket(bucket).await;
    }
    let hooks = Receiver::start().await;
    let collector = Collector::start().await;
    let config = format!(
        r#"{base}{QUICK_EVENTS}
[telemetry]
otlp_endpoint = "{collector}"

[tenants.photos]
bucket = "photo-uploads"
max_size = 100000
content_types = ["image/png"]
completion_webhook_url = "{hook}"
completion_webhook_secret_env = "{WEBHOOK_SECRET_ENV}"

[tenants.films]
bucket = "big-uploads"
max_size = 5497558138880
multipart_part_size = 5242880
content_types = ["video/*"]
"#,
        base = base_config().replace("http://127.0.0.1:9000", &store.endpoint),
        collector = collector.url,
        hook = hooks.url,
    );
    let server = Binary::start(
        &config,
        &[
            ("AWS_ACCESS_KEY_ID", store.access_key),
            ("AWS_SECRET_ACCESS_KEY", store.secret_key),
            // Spans leave every 200 ms; the rest is flushed at exit.
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ],
    );
    let base = format!("http://{}", server.address);
    let client = reqwest::Client::new();
    let photos = token("photos", "alice");
    let films = token("films", "bob");

    // A POST ticket, and the upload it allows.
    let (ticket_parent, ticket_trace, ticket_parent_id) = gateway_traceparent();
    let file = png(500);
    let ticket: Value = client
        .post(format!("{base}/uploads"))
        .bearer_auth(&photos)
        .header("traceparent", &ticket_parent)
        .json(&json!({"filename": "p.png", "content_type": "image/png", "size": file.len()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = ticket["key"].as_str().expect("a ticket").to_owned();
    let stored = crate::e2e::post(
        ticket["url"].as_str().unwrap(),
        &crate::e2e::fields_of(&ticket),
        file,
        "image/png",
    )
    .await;
    assert!(stored.status().is_success(), "{stored:?}");

    // A multipart start (its store call is the AWS SDK's span).
    let (start_parent, start_trace, start_parent_id) = gateway_traceparent();
    let started = client
        .post(format!("{base}/uploads/multipart"))
        .bearer_auth(&films)
        .header("traceparent", &start_parent)
        .json(&json!({"filename": "f.mp4", "content_type": "video/mp4", "size": 6 * 1024 * 1024}))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 201);
    let started: Value = started.json().await.unwrap();

    // The completion check, whose event goes to the webhook in the same trace; the
    // same token as the ticket's: its verification comes from the cache.
    let (check_parent, check_trace, check_parent_id) = gateway_traceparent();
    let checked = client
        .post(format!("{base}/uploads/complete"))
        .bearer_auth(&photos)
        .header("traceparent", &check_parent)
        .json(&json!({"key": key}))
        .send()
        .await
        .unwrap();
    assert_eq!(checked.status(), 200);
    // A ticket the gateway's trace does not sample (flags 00): the default sampler
    // follows it, and nothing of it is exported, not even its children.
    let (unsampled_parent, unsampled_trace, _) = gateway_traceparent();
    let unsampled_parent = format!("{}-00", unsampled_parent.strip_suffix("-01").unwrap());
    let unsampled = client
        .post(format!("{base}/uploads"))
        .bearer_auth(&photos)
        .header("traceparent", &unsampled_parent)
        .json(&json!({"filename": "q.png", "content_type": "image/png", "size": 600}))
        .send()
        .await
        .unwrap();
    assert_eq!(unsampled.status(), 201);
    // A `traceparent` that is not one: the ticket is issued, in a trace of its own.
    let garbled = client
        .post(format!("{base}/uploads"))
        .bearer_auth(&photos)
        .header("traceparent", "00-not-a-trace-01")
        .json(&json!({"filename": "r.png", "content_type": "image/png", "size": 700}))
        .send()
        .await
        .unwrap();
    assert_eq!(garbled.status(), 201);
    let delivered = hooks.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(delivered.len(), 1, "{:?}", hooks.attempts());
    let lines = tokio::task::spawn_blocking(move || server.stop_and_collect())
        .await
        .unwrap();

    let spans = collector.spans();
    let received = collector.received.lock().unwrap();
    assert!(
        received
            .content_types
            .iter()
            .all(|t| t == "application/x-protobuf"),
        "OTLP/HTTP with protobuf bodies: {:?}",
        received.content_types
    );
    let resource: HashMap<String, String> = received
        .resources
        .iter()
        .map(|kv| (kv.key.clone(), text(&kv.value)))
        .collect();
    assert_eq!(resource["service.name"], "upload-tickets");
    assert_eq!(resource["service.version"], env!("CARGO_PKG_VERSION"));
    drop(received);

    assert!(
        !spans.iter().any(|s| hex(&s.trace_id) == unsampled_trace),
        "an unsampled request exports nothing"
    );
    let roots: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "POST /uploads" && s.parent_span_id.is_empty())
        .collect();
    assert_eq!(
        roots.len(),
        1,
        "the garbled traceparent's ticket starts its own trace"
    );

    // The ticket: the gateway's trace continued, a child per part of the work.
    let request = server_span(&spans, &ticket_trace, &ticket_parent_id, "POST /uploads");
    assert_eq!(
        attribute(request, "http.route").as_deref(),
        Some("/uploads")
    );
    assert_eq!(
        attribute(request, "http.request.method").as_deref(),
        Some("POST")
    );
    assert_eq!(
        attribute(request, "http.response.status_code").as_deref(),
        Some("201")
    );
    assert_eq!(
        attribute(request, "upload_tickets.tenant").as_deref(),
        Some("photos")
    );
    let children = descendants(&spans, request);
    assert_eq!(names(&children), ["admit", "jwt.verify", "plan", "sign"]);
    let verify = children.iter().find(|s| s.name == "jwt.verify").unwrap();
    assert_eq!(attribute(verify, "cache.hit").as_deref(), Some("false"));
    for child in &children {
        assert_eq!(child.parent_span_id, request.span_id, "{}", child.name);
        assert!(child.start_time_unix_nano >= request.start_time_unix_nano);
        assert!(child.end_time_unix_nano <= request.end_time_unix_nano);
    }

    // The multipart start: the store call is the SDK's span, under the request's.
    let request = server_span(
        &spans,
        &start_trace,
        &start_parent_id,
        "POST /uploads/multipart",
    );
    let children = descendants(&spans, request);
    let names_of_start = names(&children);
    for wanted in [
        "S3.CreateMultipartUpload",
        "admit",
        "jwt.verify",
        "plan",
        "sign",
    ] {
        assert!(
            names_of_start.iter().any(|n| n == wanted),
            "{wanted} in {names_of_start:?}"
        );
    }
    let create = children
        .iter()
        .find(|s| s.name == "S3.CreateMultipartUpload")
        .unwrap();
    assert_eq!(
        attribute(create, "rpc.method").as_deref(),
        Some("CreateMultipartUpload")
    );

    // The completion check: its store calls, and the delivery of its event.
    let request = server_span(
        &spans,
        &check_trace,
        &check_parent_id,
        "POST /uploads/complete",
    );
    let children = descendants(&spans, request);
    let names_of_check = names(&children);
    assert!(
        names_of_check.iter().any(|n| n == "S3.HeadObject"),
        "{names_of_check:?}"
    );
    let verify = children.iter().find(|s| s.name == "jwt.verify").unwrap();
    assert_eq!(attribute(verify, "cache.hit").as_deref(), Some("true"));
    let delivery = spans
        .iter()
        .find(|s| s.name == "webhook.deliver")
        .expect("a delivery span");
    assert_eq!(
        hex(&delivery.trace_id),
        check_trace,
        "the delivery continues the check's trace"
    );
    assert_eq!(delivery.kind, SpanKind::Client as i32);
    assert!(
        children
            .iter()
            .any(|s| s.span_id == delivery.parent_span_id),
        "the delivery's parent is a span of the check"
    );
    assert_eq!(
        attribute(delivery, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        attribute(delivery, "url.full").as_deref(),
        Some(hooks.url.as_str())
    );
    // What the receiver got: the trace, naming the delivery's span as its parent.
    assert_eq!(
        delivered[0].traceparent.as_deref(),
        Some(format!("00-{check_trace}-{}-01", hex(&delivery.span_id)).as_str()),
        "the webhook request carries the trace on"
    );

    // Log lines carry the trace id of the request they are about.
    let line_of = |trace_id: &str| {
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["message"] == "request" && l["trace_id"] == trace_id)
    };
    for (trace_id, path) in [
        (&ticket_trace, "/uploads"),
        (&start_trace, "/uploads/multipart"),
        (&check_trace, "/uploads/complete"),
    ] {
        let line = line_of(trace_id).unwrap_or_else(|| panic!("a log line of {trace_id}"));
        assert_eq!(line["path"], path);
        assert!(line["span_id"].as_str().is_some_and(|s| s.len() == 16));
        assert!(
            line["span"].get("otel.name").is_none(),
            "span names for the exporter stay out of the log: {line}"
        );
    }

    // Nothing secret in any span: tokens, keys, signatures, credentials, capabilities.
    let mut secrets: Vec<String> = vec![
        photos.clone(),
        films.clone(),
        SECRET.to_owned(),
        store.secret_key.to_owned(),
        WEBHOOK_SECRET.to_owned(),
        started["handle"].as_str().unwrap().to_owned(),
    ];
    secrets.push(
        ticket["fields"]["X-Amz-Signature"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    secrets.push(
        ticket["fields"]["X-Amz-Credential"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    secrets.push(ticket["fields"]["Policy"].as_str().unwrap().to_owned());
    for part in started["parts"].as_array().unwrap() {
        let url = url::Url::parse(part["url"].as_str().unwrap()).unwrap();
        for (name, value) in url.query_pairs() {
            if name.eq_ignore_ascii_case("X-Amz-Signature")
                || name.eq_ignore_ascii_case("X-Amz-Credential")
            {
                secrets.push(value.into_owned());
            }
        }
    }
    assert!(spans.len() >= 15, "{} spans", spans.len());
    for span in &spans {
        for text in everything_in(span) {
            for secret in &secrets {
                assert!(
                    !text.contains(secret.as_str()),
                    "a secret in span {}: {text}",
                    span.name
                );
            }
            let lower = text.to_ascii_lowercase();
            for parameter in [
                "x-amz-signature=",
                "x-amz-credential=",
                "x-amz-security-token=",
            ] {
                if let Some(at) = lower.find(parameter) {
                    assert!(
                        text[at + parameter.len()..].starts_with("REDACTED"),
                        "{parameter} in span {}: {text}",
                        span.name
                    );
                }
            }
            assert!(
                !lower.contains("bearer "),
                "a bearer token in {}: {text}",
                span.name
            );
        }
    }
}
