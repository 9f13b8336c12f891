//! The one answer type of every handler: the response or the error, with what the
//! access log records (tenant, outcome code, issued key) attached by itself.

use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};

use super::access::{Outcome, TenantLabel, report};
use super::error::ApiError;
use crate::limits::rate_limit::{self, Seen};
use crate::policy::Quotas;

/// What a handler did: a response and the key it concerns, or why not.
pub(super) type Handled = Result<(Response, String), ApiError>;

/// A handler's answer, reported for the access log when it becomes a response: on
/// success the handler's outcome code and the key, otherwise the error's own code;
/// the caller's tenant either way.
#[derive(Debug)]
pub(super) struct Reply {
    tenant: TenantLabel,
    code: &'static str,
    result: Handled,
    /// The tenant's `RateLimit-Policy`, its quotas and what the counters said.
    rate_limit: Option<(HeaderValue, Quotas, Seen)>,
}

impl Reply {
    /// `result` of a request by `tenant` whose success is reported as `code`.
    pub(super) fn new(tenant: TenantLabel, code: &'static str, result: Handled) -> Self {
        Self {
            tenant,
            code,
            result,
            rate_limit: None,
        }
    }

    /// The same answer, with the tenant's `policy` and the `RateLimit` of `quotas` after
    /// `seen`.
    pub(super) fn with_rate_limit(
        mut self,
        policy: HeaderValue,
        quotas: Quotas,
        seen: Seen,
    ) -> Self {
        self.rate_limit = Some((policy, quotas, seen));
        self
    }

    /// A request by `tenant` refused before any handler ran.
    pub(super) fn refused(tenant: TenantLabel, error: ApiError) -> Self {
        Self::new(tenant, "refused", Err(error))
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let (mut response, code, key) = match self.result {
            Ok((response, key)) => (response, Some(self.code), Some(key)),
            // The error reports its own code as it becomes a response.
            Err(error) => (error.into_response(), None, None),
        };
        let outcome = Outcome {
            tenant: Some(self.tenant),
            code,
            key,
            route: None,
        };
        report(&mut response, outcome);
        if let Some((policy, quotas, seen)) = &self.rate_limit {
            rate_limit::insert(response.headers_mut(), policy, quotas, *seen);
        }
        response
    }
}
