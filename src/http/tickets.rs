//! What every handler that signs needs: the credentials of the moment, validities that
//! never outlive them, the rate limit, and ticket bodies no cache may keep.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::extract::Authorized;
use super::{ApiError, AppState};
use crate::credentials::LoadedCredentials;
use crate::limits::Charge;

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

/// Hands the credentials to sign a ticket with and counts it against the tenant's
/// limits (`bytes` it may upload; a multipart upload's key and deadline): the last
/// step before signing, after every rule has been checked, so that a refused request
/// counts nothing. Without credentials nothing is counted either.
pub(super) async fn admit(
    state: &AppState,
    who: &Authorized,
    bytes: u64,
    upload: Option<(&str, SystemTime)>,
) -> Result<Arc<LoadedCredentials>, ApiError> {
    let credentials = credentials(state, who.now)?;
    let charge = Charge {
        tenant: &who.rules.id,
        subject: &who.caller.subject,
        bytes,
        upload,
    };
    state
        .limits
        .admit(&who.rules.quotas, charge, who.now)
        .await?;
    Ok(credentials)
}

/// Counts a call of the caller that reaches the store or the tenant's webhook against
/// the subject's `store_calls_per_minute` (a 429 `store_rate_limited` when none are left).
pub(super) async fn admit_store_call(state: &AppState, who: &Authorized) -> Result<(), ApiError> {
    state
        .limits
        .admit_store_call(
            &who.rules.quotas,
            &who.rules.id,
            &who.caller.subject,
            who.now,
        )
        .await?;
    Ok(())
}

/// A new UUID for a key's `{uuid}`.
pub(super) fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}
