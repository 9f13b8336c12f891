//! Extractors whose rejections are problem+json: the verified caller with their
//! tenant's rules, and the JSON body.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, MissingJsonContentType};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::access::TenantLabel;
use super::error::ApiError;
use super::reply::{Handled, Reply};
use super::state::AppState;
use crate::auth::{AuthError, bearer_token};
use crate::limits::rate_limit::Seen;
use crate::telemetry::traces::await_in_span;
use crate::upload::Actor;

/// A caller whose token verified, with their tenant and the time the request is judged
/// at (read once, from the state's clock): the use cases' [`Actor`], as an extractor.
#[derive(Debug, Clone)]
pub(super) struct Authorized(Actor);

impl std::ops::Deref for Authorized {
    type Target = Actor;
    fn deref(&self) -> &Actor {
        &self.0
    }
}

impl Authorized {
    /// The handler's `result`, reported as `code` on success.
    pub(super) fn reply(&self, code: &'static str, result: Handled) -> Reply {
        let seen = match &result {
            Ok(_) => self.counted.get().copied().map(Seen::Used),
            Err(ApiError::Limited {
                refused,
                retry_after,
            }) => Some(Seen::Refused(*refused, *retry_after)),
            Err(_) => None,
        };
        let mut reply = Reply::new(TenantLabel::Caller(Arc::clone(&self.caller)), code, result);
        if let (Some(seen), Some(policy)) = (seen, &self.tenant.rate_limit_policy) {
            reply = reply.with_rate_limit(policy.clone(), self.rules().quotas, seen);
        }
        reply
    }
}

impl FromRequestParts<AppState> for Authorized {
    /// A problem response; a known caller of an unknown tenant is logged with it.
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let now = state.clock.now();
        let header = parts.headers.get(AUTHORIZATION).map(|v| v.to_str());
        let verified = match header.transpose() {
            Ok(header) => match bearer_token(header) {
                // A trace shows each verification, and whether the cache answered.
                Ok(token) => await_in_span!(
                    state.verifier.verify(token, now),
                    "jwt.verify",
                    cache.hit = tracing::field::Empty
                ),
                Err(error) => Err(error),
            },
            Err(_) => Err(AuthError::Malformed),
        };
        let caller = verified.map_err(|e| ApiError::from(e).into_response())?;
        match state.tenants.get(&caller.tenant) {
            Some(tenant) => Ok(Self(Actor {
                tenant: Arc::clone(tenant),
                caller,
                now,
                counted: std::sync::OnceLock::new(),
            })),
            None => {
                // The claim is the issuer's, and every new value would be a new metric
                // label for ever: one label for all, the value in the log line only.
                tracing::info!(claimed = %caller.tenant, "the token names no configured tenant");
                Err(
                    Reply::refused(TenantLabel::Fixed(UNKNOWN_TENANT), ApiError::TenantUnknown)
                        .into_response(),
                )
            }
        }
    }
}

/// The tenant of requests whose token names none configured, in metrics and the access
/// log (not a tenant id: those have no parentheses).
pub(super) const UNKNOWN_TENANT: &str = "(unknown)";

/// `axum::Json` with problem+json rejections, and without its costs where the body is
/// good: `axum::Json` parses the content type into a `Mime` and tracks the path of every
/// field it reads (an allocation per key) for an error message most requests never need.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct AppJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        if !is_json(request.headers()) {
            return Err(JsonRejection::from(MissingJsonContentType::default()).into());
        }
        let body = Bytes::from_request(request, state)
            .await
            .map_err(JsonRejection::from)?;
        match serde_json::from_slice(&body) {
            Ok(value) => Ok(Self(value)),
            // Parsed again, the way `axum::Json` does, for its message with the path.
            Err(_) => match axum::Json::<T>::from_bytes(&body) {
                Ok(axum::Json(value)) => Ok(Self(value)),
                Err(rejection) => Err(rejection.into()),
            },
        }
    }
}

/// Whether the `Content-Type` is JSON as `axum::Json` reads it: `application/json` or
/// `application/<anything>+json`, any case, any parameters. The common value is
/// recognised as it is; any other is parsed into a `Mime` (which allocates) as axum does.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    value.eq_ignore_ascii_case("application/json")
        || value.parse::<mime::Mime>().is_ok_and(|mime| {
            mime.type_() == "application"
                && (mime.subtype() == "json" || mime.suffix().is_some_and(|s| s == "json"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, value.parse().unwrap());
        headers
    }

    /// Whether `axum::Json` takes a body of this type (through the router: its own
    /// judgement, not a copy of it).
    async fn axum_takes(value: &str) -> bool {
        use tower::ServiceExt as _;
        let router = axum::Router::new().route(
            "/",
            axum::routing::post(|_: axum::Json<serde_json::Value>| async {}),
        );
        let request = axum::http::Request::post("/")
            .header(CONTENT_TYPE, value)
            .body(axum::body::Body::from("{}"))
            .unwrap();
        router.oneshot(request).await.unwrap().status().is_success()
    }

    #[tokio::test]
    async fn json_is_what_axum_json_takes() {
        let corpus = [
            "application/json",
            "application/json; charset=utf-8",
            "application/json;charset=utf-8",
            "Application/JSON",
            "application/problem+json",
            "application/vnd.api+json;x=1",
            "application/cloudevents+JSON",
            "text/json",
            "application/jsonp",
            "application/json+xml",
            "application/+json",
            "application/json+",
            "application",
            "json",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/json/x",
        ];
        for value in corpus {
            assert_eq!(is_json(&typed(value)), axum_takes(value).await, "{value}");
        }
        assert!(is_json(&typed("application/json")));
        assert!(!is_json(&HeaderMap::new()));
    }
}
