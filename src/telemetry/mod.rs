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
mod writer;

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
pub use json::{JsonFields, JsonLines};
pub use writer::{BatchWriter, WriterGuard};

/// Installs the global subscriber; a second call does nothing. Lines are written by a
/// background thread in batches so that request threads never wait on stderr; keep the
/// returned guard alive until exit, it writes what is left.
pub fn init(format: LogFormat) -> std::io::Result<WriterGuard> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (writer, guard) = BatchWriter::spawn(std::io::stderr())?;
    // Lines dropped when too much is pending show in /metrics, not silently nowhere.
    let _ = WRITER.set(writer.clone());
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
    Ok(guard)
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
