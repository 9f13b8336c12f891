//! `POST /uploads`: a verified caller asks for a ticket.

use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use governor::clock::{Clock as _, DefaultClock};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::extract::AppJson;
use super::{ApiError, AppState};
use crate::auth::Caller;
use crate::policy::{self, TenantRules, UploadRequest};
use crate::presign::PresignedPost;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/uploads", post(create_upload))
}

/// The ticket.
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

async fn create_upload(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(body): AppJson<UploadRequest>,
) -> Response {
    let tenant = caller.tenant.clone();
    let (mut response, key) = match issue(&state, caller, body).await {
        Ok((response, key)) => (response, Some(key)),
        Err(error) => (error.into_response(), None),
    };
    let code = key.is_some().then_some("ticket_issued");
    super::access::report(
        &mut response,
        super::Outcome {
            tenant: Some(tenant),
            code,
            key,
        },
    );
    response
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
    let mut plan = policy::plan(rules, &caller.subject, &body, now, &uuid)?;
    // A ticket signed with temporary credentials dies with them: never promise longer.
    if let Some(expiry) = credentials.expires_at {
        let left = expiry
            .duration_since(now)
            .unwrap_or_default()
            .saturating_sub(Duration::from_secs(5));
        if plan.request.validity() > left {
            plan.request = plan
                .request
                .expires_in(left)
                .map_err(|_| ApiError::CredentialsUnavailable)?;
        }
    }
    let post = state
        .presigner
        .presign(&credentials.credentials, &plan.request, now)
        .map_err(ApiError::internal)?;
    let expires_at = OffsetDateTime::from(post.expires_at())
        .format(&Rfc3339)
        .map_err(ApiError::internal)?;

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
    let mut response = (StatusCode::CREATED, Json(ticket)).into_response();
    // A ticket is a credential for one upload: no cache may keep it.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok((response, key))
}

fn check_rate(state: &AppState, rules: &TenantRules, caller: &Caller) -> Result<(), ApiError> {
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
