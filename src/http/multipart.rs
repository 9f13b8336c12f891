//! Our multipart routes (beyond 5 GiB, resumable): `POST /uploads/multipart` starts an
//! upload under the caller's own key and answers a signed handle with the first part
//! URLs; `POST /uploads/multipart/{handle}/parts` signs more; `.../complete` completes
//! it once the parts add up to the declared size; `DELETE /uploads/multipart/{handle}`
//! aborts it. The use case is `upload::multipart`; this is its HTTP face.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use serde::{Deserialize, Serialize};

use super::answers::{self, rfc3339};
use super::extract::{AppJson, Authorized};
use super::reply::{Handled, Reply};
use super::state::{AppState, COMPLETE_BODY_BYTES};
use crate::policy::UploadRequest;
use crate::routes;
use crate::store::StoredChecksum;
use crate::upload::multipart::{self, Claimed};
use crate::upload::parts::{self, ClientPart};
use crate::upload::urls::{self, PartUrl};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(routes::MULTIPART, post(start))
        .route(routes::MULTIPART_PARTS, post(sign_parts))
        .route(
            routes::MULTIPART_COMPLETE,
            // Up to 10 000 parts with their ETags: more than the 16 KiB other bodies get.
            post(complete).layer(DefaultBodyLimit::max(COMPLETE_BODY_BYTES)),
        )
        .route(routes::MULTIPART_UPLOAD, axum::routing::delete(abort))
}

/// The answer to starting an upload.
#[derive(Debug, Serialize)]
struct Started<'a> {
    handle: &'a str,
    upload_id: &'a str,
    key: &'a str,
    bucket: &'a str,
    size: u64,
    part_size: u64,
    part_count: u16,
    /// When the handle (and so the upload) expires.
    expires_at: String,
    parts: &'a [PartUrl],
    /// When the part URLs of this answer expire.
    parts_expire_at: String,
}

async fn start(
    State(state): State<AppState>,
    who: Authorized,
    AppJson(body): AppJson<UploadRequest>,
) -> Reply {
    who.reply("multipart_started", started(&state, &who, &body).await)
}

async fn started(state: &AppState, who: &Authorized, body: &UploadRequest) -> Handled {
    let started = multipart::start(&state.deps(), who, body).await?;
    let upload = &started.upload;
    let answer = Started {
        handle: &started.handle,
        upload_id: &upload.upload_id,
        key: upload.key.as_str(),
        bucket: upload.bucket.as_str(),
        size: upload.size,
        part_size: upload.part_size,
        part_count: upload.part_count,
        expires_at: rfc3339(started.deadline)?,
        parts: &started.parts,
        parts_expire_at: rfc3339(started.parts_expire_at)?,
    };
    Ok((
        answers::json(StatusCode::CREATED, &answer)?,
        upload.key.to_string(),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartsRequest {
    part_numbers: Vec<u16>,
    /// Each part's checksum in the upload's algorithm, by part number: signed into
    /// its URL, so the store refuses other bytes. Required when the upload has one.
    #[serde(default)]
    checksums: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
struct SignedParts {
    parts: Vec<PartUrl>,
    expires_at: String,
}

async fn sign_parts(
    State(state): State<AppState>,
    who: Authorized,
    Path(handle): Path<String>,
    AppJson(body): AppJson<PartsRequest>,
) -> Reply {
    who.reply(
        "parts_signed",
        signed_parts(&state, &who, &handle, &body).await,
    )
}

async fn signed_parts(
    state: &AppState,
    who: &Authorized,
    handle: &str,
    body: &PartsRequest,
) -> Handled {
    let deps = state.deps();
    let (upload, deadline) = multipart::owned(&deps, who, handle)?;
    let numbers = &body.part_numbers;
    let (parts, expires_at) =
        urls::sign_parts(&deps, who, &upload, deadline, numbers, &body.checksums).await?;
    let expires_at = rfc3339(expires_at)?;
    let signed = SignedParts { parts, expires_at };
    Ok((answers::json(StatusCode::OK, &signed)?, upload.key.into()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompleteRequest {
    parts: Vec<CompletedPartBody>,
    /// The whole object's checksum (CRC algorithms), if not declared at the start.
    checksum: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompletedPartBody {
    part_number: u16,
    etag: String,
    /// The part's checksum, as the store answered its PUT (else the store's list).
    checksum: Option<String>,
}

#[derive(Debug, Serialize)]
struct Completed {
    key: String,
    bucket: String,
    size: u64,
    etag: Option<String>,
    /// The object's checksum as the store reports it.
    checksum: Option<StoredChecksum>,
}

async fn complete(
    State(state): State<AppState>,
    who: Authorized,
    Path(handle): Path<String>,
    AppJson(body): AppJson<CompleteRequest>,
) -> Reply {
    who.reply(
        "multipart_completed",
        completed(&state, &who, &handle, body).await,
    )
}

async fn completed(
    state: &AppState,
    who: &Authorized,
    handle: &str,
    body: CompleteRequest,
) -> Handled {
    let deps = state.deps();
    let (upload, _) = multipart::owned(&deps, who, handle)?;
    let listed = body.parts.into_iter().map(|p| ClientPart {
        number: p.part_number,
        etag: p.etag,
        checksum: p.checksum,
    });
    let claimed = Claimed::Listed(parts::listed(listed.collect(), &upload)?);
    let checksum = multipart::whole_checksum(who, &upload, body.checksum.as_deref())?;
    let done = multipart::complete(&deps, who, &upload, claimed, checksum.as_ref()).await?;
    let completed = Completed {
        key: upload.key.to_string(),
        bucket: upload.bucket.into(),
        size: done.size,
        etag: done.object.etag,
        checksum: done.object.checksum,
    };
    Ok((
        answers::json(StatusCode::OK, &completed)?,
        upload.key.into(),
    ))
}

async fn abort(
    State(state): State<AppState>,
    who: Authorized,
    Path(handle): Path<String>,
) -> Reply {
    who.reply("multipart_aborted", aborted(&state, &who, &handle).await)
}

async fn aborted(state: &AppState, who: &Authorized, handle: &str) -> Handled {
    let deps = state.deps();
    let (upload, _) = multipart::owned(&deps, who, handle)?;
    multipart::abort(&deps, who, &upload).await?;
    Ok((StatusCode::NO_CONTENT.into_response(), upload.key.into()))
}
