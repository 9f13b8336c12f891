//! `GET /livez`, `GET /readyz`, `GET /metrics`, `GET /openapi.yaml`; with
//! `server.admin_listen`, readiness and metrics on the admin listener only.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::state::AppState;
use crate::routes;

/// The spec the server serves at `GET /openapi.yaml`.
pub const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

/// The public port's: readiness and metrics too, unless an admin listener serves them.
pub(super) fn router(admin_apart: bool) -> Router<AppState> {
    let public = Router::new()
        .route(routes::LIVEZ, get(livez))
        .route(routes::OPENAPI, get(openapi));
    match admin_apart {
        true => public,
        false => public.merge(probes()),
    }
}

/// The admin listener's.
pub(super) fn admin_router() -> Router<AppState> {
    Router::new()
        .route(routes::LIVEZ, get(livez))
        .merge(probes())
}

fn probes() -> Router<AppState> {
    Router::new()
        .route(routes::READYZ, get(readyz))
        .route(routes::METRICS, get(metrics))
}

/// The process is up.
async fn livez() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Ready to issue tickets: configuration loaded (it is, or the process would not run),
/// AWS credentials at hand, token keys loaded. The limits backend is reported but does
/// not make a replica unready: every replica shares it, so taking them all out of the
/// gateway would turn its outage into the whole service's (each tenant's
/// `on_limits_unavailable` decides instead).
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let credentials = state.credentials.current(state.clock.now()).is_some();
    let keys = state.verifier.is_ready();
    let limits = state.limits.unavailable().is_none();
    let ready = credentials && keys;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if ready { "ready" } else { "not_ready" },
            "checks": {
                "config": true, "credentials": credentials, "token_keys": keys, "limits": limits,
            },
        })),
    )
}

/// Prometheus text format. Counters kept as atomics elsewhere (cheaper on the request
/// path than a metric handle) are copied in here.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    metrics::counter!("upload_tickets_log_lines_dropped_total")
        .absolute(crate::telemetry::dropped_log_lines());
    if let Some(counts) = state.verifier.cache_counts() {
        metrics::counter!("upload_tickets_token_cache_hits_total").absolute(counts.hits);
        metrics::counter!("upload_tickets_token_cache_misses_total").absolute(counts.misses);
        metrics::counter!("upload_tickets_token_cache_evictions_total").absolute(counts.evictions);
        let (entries, bytes) = state.verifier.cache_size();
        metrics::gauge!("upload_tickets_token_cache_entries").set(entries as f64);
        metrics::gauge!("upload_tickets_token_cache_bytes").set(bytes as f64);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::telemetry::metrics().render(),
    )
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI_YAML)
}
