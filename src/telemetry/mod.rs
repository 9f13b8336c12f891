//! Logging: `tracing` to stderr, JSON in production, pretty in development.
//!
//! The level comes from `RUST_LOG` (default `info`). Nothing logged anywhere holds a
//! token or a secret: secrets are redacted by their types, and handlers skip them.
//!
//! Metrics go to a Prometheus recorder rendered at `GET /metrics`. The names:
//! - `upload_tickets_tickets_issued_total{tenant}`
//! - `upload_tickets_refusals_total{tenant,code}` (`tenant="none"` before one is known)
//! - `upload_tickets_http_request_duration_seconds{method,route,status}` (histogram)
//! - `upload_tickets_credential_refreshes_total{result}` and `..._jwks_refreshes_total{result}`
//! - `upload_tickets_operations_total{tenant,operation}` (multipart and completion calls)
//! - `upload_tickets_completion_checks_total{tenant,result}`
//! - after the upload (`crate::events`, `crate::upload::found`):
//!   `upload_tickets_uploads_verified_total{tenant,result}`,
//!   `upload_tickets_uploads_rejected_total{tenant,reason}`,
//!   `upload_tickets_tickets_released_total{tenant}`,
//!   `upload_tickets_events_total{tenant,result}` and the gauges
//!   `upload_tickets_uploads_pending`, `_sweep_lag_seconds`, `_events_pending` (per tenant)
//! - `upload_tickets_log_lines_dropped_total` (the log writer fell behind)
//! - `upload_tickets_token_cache_{hits,misses,evictions}_total` and the gauges
//!   `upload_tickets_token_cache_entries` / `_bytes` (the verified-token cache)

mod json;
pub mod traces;
mod writer;

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::{LogFormat, TelemetrySettings};
pub use json::{JsonFields, JsonLines};
pub use writer::{BatchWriter, WriterGuard};

/// Installs the global subscriber; a second call does nothing. Lines are written by a
/// background thread in batches so that request threads never wait on stderr. With an
/// OTLP endpoint (`telemetry`, or the `OTEL_*` variables), spans are exported too. Keep
/// the returned guard alive until exit: it sends the spans and writes the lines left.
pub fn init(format: LogFormat, telemetry: &TelemetrySettings) -> std::io::Result<Telemetry> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (writer, guard) = BatchWriter::spawn(std::io::stderr())?;
    // Lines dropped when too much is pending show in /metrics, not silently nowhere.
    let _ = WRITER.set(writer.clone());
    let endpoint = traces::wanted(telemetry, &|name| std::env::var(name).ok());
    let Some(endpoint) = endpoint else {
        // Without traces, the subscriber the service has always had: one filter for all.
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(writer)
            .with_ansi(ansi);
        let _ = match format {
            LogFormat::Json => builder
                .fmt_fields(JsonFields)
                .event_format(JsonLines)
                .try_init(),
            LogFormat::Pretty => builder.compact().try_init(),
        };
        return Ok(Telemetry {
            provider: None,
            _lines: guard,
        });
    };
    let provider = traces::provider(&endpoint).map_err(std::io::Error::other)?;
    // The log keeps its own filter (`RUST_LOG`); the exporter has its own.
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi);
    let lines = match format {
        LogFormat::Json => lines
            .fmt_fields(JsonFields)
            .event_format(JsonLines)
            .with_filter(filter)
            .boxed(),
        LogFormat::Pretty => lines
            .event_format(json::WithTraceId(
                tracing_subscriber::fmt::format().compact(),
            ))
            .with_filter(filter)
            .boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(lines)
        .with(traces::layer(&provider))
        .try_init();
    tracing::info!(
        endpoint = match &endpoint {
            traces::Endpoint::Configured(url) => url.as_str(),
            traces::Endpoint::FromEnvironment => "(from OTEL_EXPORTER_OTLP_*)",
        },
        "traces are exported over OTLP"
    );
    Ok(Telemetry {
        provider: Some(provider),
        _lines: guard,
    })
}

/// What [`init`] started: the span exporter (flushed and stopped on drop, before the
/// log writer writes its last lines).
#[must_use = "dropping it stops the log writer and the span exporter"]
pub struct Telemetry {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
    _lines: WriterGuard,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("traces", &self.provider.is_some())
            .finish_non_exhaustive()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            // Bounded: a collector that does not answer does not hold the exit.
            if let Err(error) = provider.shutdown_with_timeout(std::time::Duration::from_secs(5)) {
                tracing::warn!(%error, "the last spans could not be sent");
            }
        }
    }
}

static WRITER: OnceLock<BatchWriter> = OnceLock::new();

/// Log lines dropped so far because the writer fell behind (0 before logging starts).
pub fn dropped_log_lines() -> u64 {
    WRITER.get().map_or(0, BatchWriter::dropped_lines)
}

/// Latency buckets, in seconds: a ticket takes well under a millisecond to make.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The process-wide Prometheus recorder, installed on first use. Every server in the
/// process (tests start several) reports to it.
pub fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("duration_seconds".to_owned()),
                LATENCY_BUCKETS,
            )
            .map(PrometheusBuilder::build_recorder);
        match recorder {
            Ok(recorder) => {
                let handle = recorder.handle();
                // Fails only if another recorder was installed first; metrics then go
                // there and this handle renders nothing, which /metrics shows.
                let _ = metrics::set_global_recorder(recorder);
                handle
            }
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        }
    })
}
