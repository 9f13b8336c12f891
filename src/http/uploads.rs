//! `POST /uploads`: a verified caller asks for a ticket, a POST form or a PUT URL as
//! the tenant says.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;

use super::answers;
use super::extract::{AppJson, Authorized};
use super::reply::{Handled, Reply};
use super::state::AppState;
use crate::policy::UploadRequest;
use crate::routes;
use crate::upload::ticket;

pub(super) fn router() -> Router<AppState> {
    Router::new().route(routes::UPLOADS, post(create_upload))
}

async fn create_upload(
    State(state): State<AppState>,
    who: Authorized,
    AppJson(body): AppJson<UploadRequest>,
) -> Reply {
    who.reply("ticket_issued", issue(&state, &who, &body).await)
}

async fn issue(state: &AppState, who: &Authorized, body: &UploadRequest) -> Handled {
    let ticket = ticket::issue(&state.deps(), who, body).await?;
    let bucket = who.rules().bucket.as_str();
    let response = answers::ticket(StatusCode::CREATED, &ticket, bucket)?;
    Ok((response, ticket.into_key()))
}
