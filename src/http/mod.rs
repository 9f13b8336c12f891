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
mod health;
mod multipart;
mod reply;
pub(crate) mod s3xml;
mod uploads;
mod uppy;
mod usage;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::IntoResponse;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};

use crate::auth::Verifier;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::credentials::CredentialsCache;
use crate::handle::HandleKey;
use crate::limits::Limits;
use crate::store::ObjectStore;
use crate::store::s3::S3Store;
use crate::tenant::Tenant;
use crate::upload::Deps;
pub use access::Outcome;
pub use demo::Demo;
pub use error::ApiError;
use s3_presigned_post::Presigner;

/// Largest request body, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Largest completion body: 10 000 parts of about 100 bytes each.
const COMPLETE_BODY_BYTES: usize = 1024 * 1024;

/// The spec the server serves at `GET /openapi.yaml`.
pub const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Shared by all handlers: cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState(pub Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

/// What the handlers need.
pub struct App {
    /// Signs tickets.
    pub presigner: Arc<Presigner>,
    /// Verifies tokens.
    pub verifier: Arc<Verifier>,
    /// Tenants (rules and webhook) by id.
    pub tenants: HashMap<String, Arc<Tenant>>,
    /// AWS credentials.
    pub credentials: Arc<CredentialsCache>,
    /// The tenants' limits and quotas, and where they are counted.
    pub limits: Arc<Limits>,
    /// The object store, for what a ticket cannot do alone.
    pub store: Arc<dyn ObjectStore>,
    /// What handlers take as now.
    pub clock: Arc<dyn Clock>,
    /// Signs multipart handles.
    pub handles: Arc<HandleKey>,
    /// Delivers webhooks; only when a tenant has one.
    pub webhook_client: Option<reqwest::Client>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("tenants", &self.tenants.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl App {
    /// The state for `config`, signing with `credentials`: the limits backend, the store
    /// `[s3]` names (its client made on first use) and the system clock.
    pub fn new(config: &Config, credentials: Arc<CredentialsCache>) -> Self {
        let tenants = config.tenants.clone();
        let webhook_client = tenants
            .values()
            .any(|tenant| tenant.webhook.is_some())
            .then(|| {
                reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .inspect_err(|error| {
                        tracing::error!(%error, "no HTTP client for webhooks: deliveries will fail");
                    })
                    .ok()
            })
            .flatten();
        Self {
            presigner: Arc::clone(&config.presigner),
            verifier: Arc::clone(&config.verifier),
            store: Arc::new(S3Store::new(&config.s3, Arc::clone(&credentials))),
            clock: Arc::new(SystemClock),
            tenants,
            credentials,
            limits: Arc::clone(&config.limits),
            handles: Arc::clone(&config.handles),
            webhook_client,
        }
    }

    /// What the use cases of one request borrow.
    pub fn deps(&self) -> Deps<'_> {
        Deps {
            store: self.store.as_ref(),
            limits: &self.limits,
            handles: &self.handles,
            presigner: &self.presigner,
            credentials: &self.credentials,
            webhook_client: self.webhook_client.as_ref(),
        }
    }

    /// The same state with another store (tests: [`crate::store::memory::MemoryStore`]).
    pub fn with_store(self, store: Arc<dyn ObjectStore>) -> Self {
        Self { store, ..self }
    }

    /// The same state with another clock (tests: [`crate::clock::ManualClock`]).
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        Self { clock, ..self }
    }
}

/// A random UUID for requests that come without an id. Formatted on the stack:
/// `tower-http`'s `MakeRequestUuid` goes through `to_string` and a parse, two
/// allocations on every request.
#[derive(Debug, Clone, Copy)]
struct NewRequestId;

impl MakeRequestId for NewRequestId {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
        HeaderValue::from_str(id).ok().map(RequestId::new)
    }
}

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

/// The router with every layer: request id, tracing, CORS, body limit, timeout,
/// panic catching. `cors_origins` are exact origins.
pub fn router(
    state: AppState,
    cors_origins: &[String],
    timeout: Duration,
    extras: Extras<'_>,
) -> Router {
    let origins: Vec<HeaderValue> = cors_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, REQUEST_ID])
        .expose_headers([REQUEST_ID, header::RETRY_AFTER, header::WWW_AUTHENTICATE])
        .max_age(Duration::from_secs(600));

    let mut routes = Router::new();
    if !extras.companion_prefix.is_empty() {
        routes = routes.nest(extras.companion_prefix, uppy::companion::router());
    }
    routes
        .merge(uploads::router())
        .merge(usage::router())
        .merge(uppy::signrequest::router())
        .merge(multipart::router())
        .merge(completion::router())
        .merge(health::router(extras.admin_apart))
        .merge(demo::router(extras.demo, cors_origins))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, NewRequestId))
                .layer(axum::middleware::from_fn(access::log))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(cors)
                .layer(CatchPanicLayer::custom(
                    |_panic: Box<dyn std::any::Any + Send>| {
                        ApiError::Internal("a handler panicked".into()).into_response()
                    },
                ))
                .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                    ApiError::Timeout
                }))
                .timeout(timeout),
        )
}
