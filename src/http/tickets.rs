//! What every handler that signs needs: the credentials of the moment, validities that
//! never outlive them, the rate limit, and ticket bodies no cache may keep.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock as _, DefaultClock};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::extract::Authorized;
use super::{ApiError, AppState};
use crate::credentials::LoadedCredentials;

/// What a ticket's JSON takes, with room to spare (a POST ticket is about 1.3 KiB).
const TICKET_BYTES: usize = 2048;

/// `body` as JSON with `status`, which no cache may keep. Written into a buffer sized
/// for a ticket at once: axum's `Json` starts at 128 bytes and grows (and copies) it
/// several times on the way, a measurable share of a request.
pub(super) fn json<T: Serialize>(status: StatusCode, body: &T) -> Result<Response, ApiError> {
    let mut bytes = Vec::with_capacity(TICKET_BYTES);
    serde_json::to_writer(&mut bytes, body).map_err(ApiError::internal)?;
    let json = HeaderValue::from_static("application/json");
    let mut response = (status, [(header::CONTENT_TYPE, json)], bytes).into_response();
    // A ticket is a credential for one upload, and the other answers name keys.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// RFC 3339 in UTC, as the API writes times.
pub(super) fn rfc3339(time: SystemTime) -> Result<String, ApiError> {
    OffsetDateTime::from(time)
        .format(&Rfc3339)
        .map_err(ApiError::internal)
}

/// The credentials to sign with at `now`, or 503 while there are none.
pub(super) fn credentials(
    state: &AppState,
    now: SystemTime,
) -> Result<Arc<LoadedCredentials>, ApiError> {
    state
        .credentials
        .current(now)
        .ok_or(ApiError::CredentialsUnavailable)
}

/// `wanted`, shortened so that a signature never outlives what signs it: temporary
/// credentials (less a margin) and, for parts, the upload's deadline.
pub(super) fn usable_validity(
    wanted: Duration,
    credentials: &LoadedCredentials,
    now: SystemTime,
    deadline: Option<SystemTime>,
) -> Result<Duration, ApiError> {
    let mut validity = wanted;
    if let Some(expiry) = credentials.expires_at {
        let left = expiry
            .duration_since(now)
            .unwrap_or_default()
            .saturating_sub(Duration::from_secs(5));
        validity = validity.min(left);
    }
    if let Some(deadline) = deadline {
        validity = validity.min(deadline.duration_since(now).unwrap_or_default());
    }
    if validity < Duration::from_secs(1) {
        return Err(ApiError::CredentialsUnavailable);
    }
    Ok(validity)
}

/// Counts a ticket against the caller's rate limit, if the tenant has one.
fn check_rate(state: &AppState, who: &Authorized) -> Result<(), ApiError> {
    let Some(limiter) = state.limiters.get(&who.rules.id) else {
        return Ok(());
    };
    limiter.check_key(&who.caller.subject).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        ApiError::RateLimited {
            retry_after: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
        }
    })
}

/// Lets one more ticket of the caller through the rate limit and hands the
/// credentials to sign it with: the first steps of every handler that issues one.
pub(super) fn admit(
    state: &AppState,
    who: &Authorized,
) -> Result<Arc<LoadedCredentials>, ApiError> {
    check_rate(state, who)?;
    credentials(state, who.now)
}

/// A new UUID for a key's `{uuid}`.
pub(super) fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}
