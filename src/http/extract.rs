//! Extractors whose rejections are problem+json: the verified caller with their
//! tenant's rules, and the JSON body.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

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
        let mut reply = Reply::new(&self.caller.tenant, code, result);
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
                Err(Reply::refused(UNKNOWN_TENANT, ApiError::TenantUnknown).into_response())
            }
        }
    }
}

/// The tenant of requests whose token names none configured, in metrics and the access
/// log (not a tenant id: those have no parentheses).
pub(super) const UNKNOWN_TENANT: &str = "(unknown)";

/// `axum::Json` with problem+json rejections.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct AppJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let axum::Json(value) = axum::Json::<T>::from_request(request, state).await?;
        Ok(Self(value))
    }
}
