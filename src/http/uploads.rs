//! `POST /uploads`: a verified caller asks for a ticket, a POST form or a PUT URL as
//! the tenant says.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde::Serialize;

use super::extract::{AppJson, Authorized};
use super::reply::{Handled, Reply};
use super::tickets::{self, new_uuid, rfc3339, usable_validity};
use super::{ApiError, AppState};
use crate::policy::{self, PutPlan, UploadMethod, UploadRequest};
use crate::presign::PresignedPost;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/uploads", post(create_upload))
}

/// A POST ticket.
#[derive(Debug, Serialize)]
pub(super) struct Ticket {
    method: &'static str,
    #[serde(flatten)]
    pub post: PresignedPost,
    pub key: String,
    bucket: String,
    expires_at: String,
    min_size: u64,
    max_size: u64,
}

/// A PUT ticket: the URL and the headers to send with exactly these values.
#[derive(Debug, Serialize)]
pub(super) struct PutTicket {
    method: &'static str,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub key: String,
    bucket: String,
    expires_at: String,
    min_size: u64,
    max_size: u64,
}

async fn create_upload(
    State(state): State<AppState>,
    who: Authorized,
    AppJson(body): AppJson<UploadRequest>,
) -> Reply {
    let issued = ticket(&state, &who, &body, StatusCode::CREATED).await;
    who.reply("ticket_issued", issued)
}

/// A ticket of the tenant's method for `body`, answered with `status`.
pub(super) async fn ticket(
    state: &AppState,
    who: &Authorized,
    body: &UploadRequest,
    status: StatusCode,
) -> Handled {
    match who.rules.upload_method {
        UploadMethod::Post => post_ticket(state, who, body, status).await,
        UploadMethod::Put => put_ticket(state, who, body, status).await,
    }
}

async fn post_ticket(
    state: &AppState,
    who: &Authorized,
    body: &UploadRequest,
    status: StatusCode,
) -> Handled {
    let ticket = sign_post(state, who, body).await?;
    let key = ticket.key.clone();
    Ok((tickets::json(status, &ticket)?, key))
}

/// The tenant's POST ticket for `body`, counted against its limits and signed.
pub(super) async fn sign_post(
    state: &AppState,
    who: &Authorized,
    body: &UploadRequest,
) -> Result<Ticket, ApiError> {
    let mut plan = policy::plan(&who.rules, &who.caller.subject, body, who.now, &new_uuid())?;
    let credentials = tickets::admit(state, who, plan.max_size, None).await?;
    let validity = usable_validity(plan.request.validity(), &credentials, who.now, None)?;
    if validity < plan.request.validity() {
        plan.request = plan
            .request
            .expires_in(validity)
            .map_err(|_| ApiError::CredentialsUnavailable)?;
    }
    let post = state
        .presigner
        .presign(&credentials.credentials, &plan.request, who.now)
        .map_err(ApiError::internal)?;
    Ok(Ticket {
        method: "POST",
        expires_at: rfc3339(post.expires_at())?,
        key: plan.key,
        bucket: who.rules.bucket.to_string(),
        min_size: plan.min_size,
        max_size: plan.max_size,
        post,
    })
}

async fn put_ticket(
    state: &AppState,
    who: &Authorized,
    body: &UploadRequest,
    status: StatusCode,
) -> Handled {
    let ticket = sign_put(state, who, put_plan(who, body)?).await?;
    let key = ticket.key.clone();
    Ok((tickets::json(status, &ticket)?, key))
}

/// The PUT ticket the tenant's rules make of `body`, not yet counted nor signed.
pub(super) fn put_plan(who: &Authorized, body: &UploadRequest) -> Result<PutPlan, ApiError> {
    Ok(policy::put_plan(
        &who.rules,
        &who.caller.subject,
        body,
        who.now,
        &new_uuid(),
    )?)
}

/// `plan` signed, counted against the tenant's limits.
pub(super) async fn sign_put(
    state: &AppState,
    who: &Authorized,
    mut plan: PutPlan,
) -> Result<PutTicket, ApiError> {
    let credentials = tickets::admit(state, who, plan.object.max_size, None).await?;
    let validity = usable_validity(plan.request.validity(), &credentials, who.now, None)?;
    plan.request = plan
        .request
        .expires_in(validity)
        .map_err(|_| ApiError::CredentialsUnavailable)?;
    let signed = state
        .presigner
        .presign_url(&credentials.credentials, &plan.request, who.now)
        .map_err(ApiError::internal)?;
    Ok(PutTicket {
        method: signed.method,
        url: signed.url,
        headers: signed.headers.into_iter().collect(),
        key: plan.object.key,
        bucket: who.rules.bucket.to_string(),
        expires_at: rfc3339(signed.expires_at)?,
        min_size: plan.object.min_size,
        max_size: plan.object.max_size,
    })
}
