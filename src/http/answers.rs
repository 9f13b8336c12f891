//! What the front doors answer with: JSON no cache may keep, written at once into a
//! buffer sized for a ticket, and the ticket bodies `POST /uploads` and Companion's
//! `/params` share.

use std::collections::BTreeMap;
use std::time::SystemTime;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::error::ApiError;
use crate::upload::ticket::{PostTicket, PutTicket, Ticket};
use s3_presigned_post::PresignedPost;

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
    crate::clock::rfc3339(time).map_err(ApiError::internal)
}

/// A POST ticket as the API answers it.
#[derive(Debug, Serialize)]
struct PostBody<'a> {
    method: &'static str,
    #[serde(flatten)]
    post: &'a PresignedPost,
    key: &'a str,
    bucket: &'a str,
    expires_at: String,
    min_size: u64,
    max_size: u64,
}

/// A PUT ticket as the API answers it: the URL and the headers to send with exactly
/// these values.
#[derive(Debug, Serialize)]
struct PutBody<'a> {
    method: &'static str,
    url: &'a str,
    headers: BTreeMap<&'a str, &'a str>,
    key: &'a str,
    bucket: &'a str,
    expires_at: String,
    min_size: u64,
    max_size: u64,
}

/// `ticket` as the API answers it, with `status`, for the tenant's `bucket`.
pub(super) fn ticket(
    status: StatusCode,
    ticket: &Ticket,
    bucket: &str,
) -> Result<Response, ApiError> {
    match ticket {
        Ticket::Post(ticket) => json(status, &post_body(ticket, bucket)?),
        Ticket::Put(ticket) => json(status, &put_body(ticket, bucket)?),
    }
}

fn post_body<'a>(ticket: &'a PostTicket, bucket: &'a str) -> Result<PostBody<'a>, ApiError> {
    Ok(PostBody {
        method: "POST",
        post: &ticket.post,
        key: ticket.key.as_str(),
        bucket,
        expires_at: rfc3339(ticket.post.expires_at())?,
        min_size: ticket.min_size,
        max_size: ticket.max_size,
    })
}

fn put_body<'a>(ticket: &'a PutTicket, bucket: &'a str) -> Result<PutBody<'a>, ApiError> {
    let signed = &ticket.signed;
    Ok(PutBody {
        method: signed.method,
        url: &signed.url,
        headers: signed
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect(),
        key: ticket.key.as_str(),
        bucket,
        expires_at: rfc3339(signed.expires_at)?,
        min_size: ticket.min_size,
        max_size: ticket.max_size,
    })
}
