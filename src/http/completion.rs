//! `POST /uploads/complete`: the completion check of an object under the caller's own
//! prefix (`upload::check`): verified, reported once, answered.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde::Deserialize;

use super::answers;
use super::extract::{AppJson, Authorized};
use super::reply::{Handled, Reply};
use super::state::AppState;
use crate::policy::ChecksumRequest;
use crate::routes;
use crate::upload::check::{self, CheckRequest};

pub(super) fn router() -> Router<AppState> {
    Router::new().route(routes::UPLOADS_COMPLETE, post(check_object))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckBody {
    key: String,
    /// The size the ticket was for, if the caller wants it compared.
    size: Option<u64>,
    /// The content type the ticket was for, if the caller wants it compared.
    content_type: Option<String>,
    /// The checksum the ticket declared, if the caller wants it compared.
    checksum: Option<ChecksumRequest>,
}

async fn check_object(
    State(state): State<AppState>,
    who: Authorized,
    AppJson(body): AppJson<CheckBody>,
) -> Reply {
    who.reply("upload_checked", checked(&state, &who, body).await)
}

async fn checked(state: &AppState, who: &Authorized, body: CheckBody) -> Handled {
    let request = CheckRequest {
        key: body.key,
        size: body.size,
        content_type: body.content_type,
        checksum: body.checksum,
    };
    let report = check::check(&state.deps(), who, request).await?;
    let key = report.key().to_owned();
    Ok((answers::json(StatusCode::OK, &report)?, key))
}
