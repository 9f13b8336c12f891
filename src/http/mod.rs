//! The HTTP API: router, state, layers. The front doors are thin adapters of the use
//! cases in `crate::upload`, side by side, never importing each other: our own routes
//! (one file per resource: `uploads`, `multipart`, `completion`, `usage`, `health`,
//! `demo`) and Uppy's two (`uppy/`). `error` is the one place errors get a status.

mod access;
mod answers;
mod completion;
pub mod demo;
pub mod error;
mod extract;
mod guard;
mod health;
mod multipart;
mod reply;
mod state;
mod uploads;
mod uppy;
mod usage;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, header};
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, Cors, CorsLayer};
use tower_http::set_header::{SetResponseHeader, SetResponseHeaderLayer};

use access::REQUEST_ID;
pub use access::{Outcome, TenantLabel};
pub use demo::Demo;
pub use error::ApiError;
pub use health::OPENAPI_YAML;
pub use state::{App, AppState, MAX_BODY_BYTES};

/// What answers depend on besides the URL, for caches: the CORS request headers (what
/// `tower-http`'s CORS layer would say, as one value).
const VARY: &str = "origin, access-control-request-method, access-control-request-headers";

/// What the router serves beyond the API itself.
#[derive(Debug, Clone, Copy)]
pub struct Extras<'a> {
    /// `GET /demo` and `GET /demo/objects`.
    pub demo: &'a Demo,
    /// Where Uppy Companion's S3 routes are (`/s3`); empty: nowhere. Checked by the
    /// configuration (a path that overlaps the API's own would panic here).
    pub companion_prefix: &'a str,
    /// `/metrics` and `/readyz` are served by the admin listener ([`admin_router`]),
    /// not here.
    pub admin_apart: bool,
}

/// The admin listener's router (`server.admin_listen`): `/livez`, `/readyz` and
/// `/metrics`, for probes and scrapers on a port the public never reaches.
pub fn admin_router(state: AppState) -> Router {
    health::admin_router()
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
}

/// The public listener's service: the router inside the layers every request crosses
/// (access log and request id, `Vary`, CORS, panic catching, timeout, body limit),
/// applied once around it. `Router::layer` would wrap each route in them instead, and axum clones
/// a route's whole stack for every request it serves.
pub type Service = access::AccessLog<SetResponseHeader<Cors<guard::Guard<Limited>>, HeaderValue>>;

/// The router with the body limit every extractor reads.
type Limited = <DefaultBodyLimit as tower::Layer<Router>>::Service;

/// The public listener's [`Service`]. `cors_origins` are exact origins.
pub fn router(
    state: AppState,
    cors_origins: &[String],
    timeout: Duration,
    extras: Extras<'_>,
) -> Service {
    // The layers are cloned for every request (tower's services serve one call each):
    // the origins sit behind one `Arc`, not in a list copied each time.
    let origins: Arc<[HeaderValue]> = cors_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| {
            origins.contains(origin)
        }))
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, REQUEST_ID])
        .expose_headers([
            REQUEST_ID,
            header::RETRY_AFTER,
            header::WWW_AUTHENTICATE,
            crate::limits::rate_limit::RATELIMIT_POLICY,
            crate::limits::rate_limit::RATELIMIT,
        ])
        .max_age(Duration::from_secs(600))
        // Its `Vary` would be joined anew for every answer: `VARY` below, made once.
        .vary([]);

    let mut routes = Router::new();
    if !extras.companion_prefix.is_empty() {
        routes = routes.nest(extras.companion_prefix, uppy::companion::router());
    }
    let routes = routes
        .merge(uploads::router())
        .merge(usage::router())
        .merge(uppy::signrequest::router())
        .merge(multipart::router())
        .merge(completion::router())
        .merge(health::router(extras.admin_apart))
        .merge(demo::router(extras.demo, cors_origins))
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        // The one layer inside: what only the router knows, the route a request took
        // (a 405 too: it matched a path).
        .layer(access::StampRouteLayer)
        .fallback(|| async { ApiError::NotFound })
        .with_state(state);
    ServiceBuilder::new()
        .layer(access::AccessLogLayer)
        .layer(SetResponseHeaderLayer::appending(
            header::VARY,
            HeaderValue::from_static(VARY),
        ))
        .layer(cors)
        .layer(guard::GuardLayer { timeout })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .service(routes)
}
