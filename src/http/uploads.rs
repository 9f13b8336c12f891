//! `POST /uploads`: a verified caller asks for a ticket.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use governor::clock::{Clock as _, DefaultClock};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::extract::AppJson;
use super::{ApiError, AppState};
use crate::auth::Caller;
use crate::credentials::LoadedCredentials;
use crate::policy::{self, TenantRules, UploadMethod, UploadRequest};
use crate::presign::PresignedPost;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/uploads", post(create_upload))
}

/// A POST ticket.
#[derive(Debug, Serialize)]
struct Ticket {
    method: &'static str,
    #[serde(flatten)]
    post: PresignedPost,
    key: String,
    bucket: String,
    expires_at: String,
    min_size: u64,
    max_size: u64,
}

/// A PUT ticket: the URL and the headers to send with exactly these values.
#[derive(Debug, Serialize)]
struct PutTicket {
    method: &'static str,
    url: String,
    headers: BTreeMap<String, String>,
    key: String,
    bucket: String,
    expires_at: String,
    min_size: u64,
    max_size: u64,
}

async fn create_upload(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(body): AppJson<UploadRequest>,
) -> Response {
    let tenant = caller.tenant.clone();
    super::access::finish(tenant, "ticket_issued", issue(&state, caller, body).await)
}

async fn issue(
    state: &AppState,
    caller: Caller,
    body: UploadRequest,
) -> Result<(Response, String), ApiError> {
    let rules = state
        .tenants
        .get(&caller.tenant)
        .ok_or(ApiError::TenantUnknown)?;
    check_rate(state, rules, &caller)?;
    let now = SystemTime::now();
    let credentials = state
        .credentials
        .current(now)
        .ok_or(ApiError::CredentialsUnavailable)?;

    let uuid = uuid::Uuid::new_v4().to_string();
    if rules.upload_method == UploadMethod::Put {
        let mut plan = policy::put_plan(rules, &caller.subject, &body, now, &uuid)?;
        let validity = usable_validity(plan.request.validity(), &credentials, now, None)?;
        plan.request = plan
            .request
            .expires_in(validity)
            .map_err(|_| ApiError::CredentialsUnavailable)?;
        let signed = state
            .presigner
            .presign_url(&credentials.credentials, &plan.request, now)
            .map_err(ApiError::internal)?;
        let key = plan.object.key.clone();
        let ticket = PutTicket {
            method: signed.method,
            url: signed.url,
            headers: signed.headers.into_iter().collect(),
            key: plan.object.key,
            bucket: rules.bucket.to_string(),
            expires_at: rfc3339(signed.expires_at)?,
            min_size: plan.object.min_size,
            max_size: plan.object.max_size,
        };
        return Ok((ticket_response(StatusCode::CREATED, &ticket)?, key));
    }
    let mut plan = policy::plan(rules, &caller.subject, &body, now, &uuid)?;
    let validity = usable_validity(plan.request.validity(), &credentials, now, None)?;
    if validity < plan.request.validity() {
        plan.request = plan
            .request
            .expires_in(validity)
            .map_err(|_| ApiError::CredentialsUnavailable)?;
    }
    let post = state
        .presigner
        .presign(&credentials.credentials, &plan.request, now)
        .map_err(ApiError::internal)?;
    let expires_at = rfc3339(post.expires_at())?;

    let key = plan.key.clone();
    let ticket = Ticket {
        method: "POST",
        key: plan.key,
        bucket: rules.bucket.to_string(),
        expires_at,
        min_size: plan.min_size,
        max_size: plan.max_size,
        post,
    };
    Ok((ticket_response(StatusCode::CREATED, &ticket)?, key))
}

/// What a ticket's JSON takes, with room to spare (a POST ticket is about 1.3 KiB).
const TICKET_BYTES: usize = 2048;

/// `ticket` as a JSON body that no cache may keep. Written into a buffer sized for a
/// ticket at once: axum's `Json` starts at 128 bytes and grows (and copies) it several
/// times on the way, a measurable share of a request.
pub(super) fn ticket_response<T: Serialize>(
    status: StatusCode,
    ticket: &T,
) -> Result<Response, ApiError> {
    let mut body = Vec::with_capacity(TICKET_BYTES);
    serde_json::to_writer(&mut body, ticket).map_err(ApiError::internal)?;
    let json = HeaderValue::from_static("application/json");
    Ok(no_store(
        (status, [(header::CONTENT_TYPE, json)], body).into_response(),
    ))
}

/// A ticket is a credential for one upload: no cache may keep it.
pub(super) fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// RFC 3339 in UTC, as the API writes times.
pub(super) fn rfc3339(time: SystemTime) -> Result<String, ApiError> {
    OffsetDateTime::from(time)
        .format(&Rfc3339)
        .map_err(ApiError::internal)
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

pub(super) fn check_rate(
    state: &AppState,
    rules: &TenantRules,
    caller: &Caller,
) -> Result<(), ApiError> {
    let Some(limiter) = state.limiters.get(&rules.id) else {
        return Ok(());
    };
    limiter.check_key(&caller.subject).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        ApiError::RateLimited {
            retry_after: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
        }
    })
}
