//! Uppy 6's `signRequest`: `@uppy/aws-s3` 6.x calls the store directly with a URL the
//! app signs for each S3 request (`PutObject`, `CreateMultipartUpload`, `UploadPart`,
//! `ListParts`, `CompleteMultipartUpload`, `AbortMultipartUpload`); the app asks this
//! service for it, with the user's token, at `POST /uploads/uppy/sign`.
//!
//! Bytes go to the store (a PUT ticket, part URLs, a ListParts URL). The calls that
//! decide something happen here, at signing, for the verified caller: starting an
//! upload (under a key the service picks, with the tenant's rules and limits),
//! completing it (once the store holds parts that add up, with `If-None-Match`),
//! aborting it. The URL Uppy then gets for those is `uploads/uppy/answer?r=<receipt>`,
//! which echoes what was done in the XML S3 would answer; a receipt is signed and
//! short-lived, and only says what happened, so that URL needs no token.

mod body;
mod receipt;

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};

use crate::handle::Upload;
use crate::http::answers;
use crate::http::error::ApiError;
use crate::http::extract::{AppJson, Authorized};
use crate::http::reply::{Handled, Reply};
use crate::http::state::AppState;
use crate::policy::UploadMethod;
use crate::routes;
use crate::upload::multipart::{self, Claimed, ClientUpload};
use crate::upload::ticket;
use crate::upload::urls;
use body::{SignBody, Signed, SignedPost, check_other_fields, upload_request};
use receipt::{Receipt, answer, answer_with};
use s3_presigned_post::names::MAX_KEY_BYTES;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(routes::UPPY_SIGN, post(sign))
        .route(routes::UPPY_ANSWER, get(answer).post(answer).delete(answer))
}

async fn sign(
    State(state): State<AppState>,
    who: Authorized,
    AppJson(body): AppJson<SignBody>,
) -> Reply {
    if let Err(error) = check_other_fields(&body) {
        return who.reply("refused", Err(error));
    }
    let (code, result) = match (body.method.as_str(), &body.upload_id, body.part_number) {
        ("PUT", None, None) => ("ticket_issued", put_object(&state, &who, &body).await),
        ("POST", None, None) => ("multipart_started", start(&state, &who, &body).await),
        ("PUT", Some(handle), Some(number)) => {
            ("parts_signed", part(&state, &who, &body, handle, number))
        }
        ("GET", Some(handle), None) => ("parts_listed", list(&state, &who, &body, handle)),
        ("POST", Some(handle), None) => (
            "multipart_completed",
            complete(&state, &who, &body, handle).await,
        ),
        ("DELETE", Some(handle), None) => (
            "multipart_aborted",
            abort(&state, &who, &body, handle).await,
        ),
        _ => (
            "refused",
            Err(ApiError::InvalidRequest(format!(
                "method {:?} with{} uploadId and{} partNumber is no request Uppy signs here \
                 (PutObject, CreateMultipartUpload, UploadPart, ListParts, \
                 CompleteMultipartUpload, AbortMultipartUpload)",
                body.method,
                if body.upload_id.is_some() { "" } else { "out" },
                if body.part_number.is_some() {
                    ""
                } else {
                    "out"
                },
            ))),
        ),
    };
    who.reply(code, result)
}

/// `PutObject`: the tenant's ticket. A plugin that sends the headers the answer names
/// (6.2 on) gets every signed header (`If-None-Match: *`, a checksum, the type) and, for
/// a POST tenant, the form's fields (6.3 on). An older one sends a `Content-Type` and no
/// other header: a ticket that signs more cannot work for it, refused in words.
async fn put_object(state: &AppState, who: &Authorized, body: &SignBody) -> Handled {
    let request = upload_request(body)?;
    let current = body.takes_headers();
    if who.rules().upload_method == UploadMethod::Post {
        if !current {
            return Err(ApiError::ClientUnsupported(
                "this version of @uppy/aws-s3 uploads a small file with PUT, and this tenant \
                 hands out POST forms: use @uppy/aws-s3 6.3 or later (it takes the form's \
                 fields), give the tenant upload_method = \"put\", or use 5.x with the \
                 Companion routes"
                    .to_owned(),
            ));
        }
        let ticket = ticket::post(&state.deps(), who, &request).await?;
        let key = ticket.key.clone();
        let signed = SignedPost {
            post: ticket.post,
            key: ticket.key.to_string(),
        };
        return Ok((answers::json(StatusCode::OK, &signed)?, key.into()));
    }
    if who.rules().prevent_overwrite && !current {
        return Err(ApiError::ClientUnsupported(
            "this version of @uppy/aws-s3 sends no If-None-Match header, which this tenant's \
             PUT tickets sign (prevent_overwrite): use @uppy/aws-s3 6.3 or later, set \
             prevent_overwrite = false for the tenant, or use 5.x with the Companion routes"
                .to_owned(),
        ));
    }
    let plan = ticket::put_plan(who, &request)?;
    // An older plugin sets Content-Type and nothing else; the browser sends the length
    // itself. Checked before signing, so a refused request is not counted.
    let unsendable = plan
        .request
        .header_names()
        .find(|name| !matches!(*name, "content-type" | "content-length"));
    if let (Some(name), false) = (unsendable, current) {
        return Err(ApiError::ClientUnsupported(format!(
            "this tenant's PUT tickets sign the header {name}, which this version of \
             @uppy/aws-s3 does not send: use 6.3 or later"
        )));
    }
    let ticket = ticket::put(&state.deps(), who, plan).await?;
    // The browser sets the length from the body, and refuses to have it set.
    let headers = match current {
        true => ticket
            .signed
            .headers
            .into_iter()
            .filter(|(name, _)| name != "content-length")
            .collect(),
        false => BTreeMap::new(),
    };
    let signed = Signed {
        url: ticket.signed.url,
        key: Some(ticket.key.to_string()),
        headers,
    };
    Ok((answers::json(StatusCode::OK, &signed)?, ticket.key.into()))
}

/// `CreateMultipartUpload`: started here; Uppy's URL answers the handle as the upload id.
async fn start(state: &AppState, who: &Authorized, body: &SignBody) -> Handled {
    let request = upload_request(body)?;
    // 6.0 keeps naming the upload by the key it proposed.
    if body.key.len() > MAX_KEY_BYTES {
        return Err(ApiError::InvalidRequest(format!(
            "key: at most {MAX_KEY_BYTES} bytes"
        )));
    }
    let ClientUpload { upload, handle } =
        multipart::start_client_upload(&state.deps(), who, &request, Some(&body.key)).await?;
    let receipt = Receipt::Started {
        bucket: upload.bucket.to_string(),
        key: upload.key.to_string(),
        upload_id: handle,
    };
    answer_with(state, who, &receipt, upload.key.into())
}

/// The caller's upload named by `handle`, with the key Uppy sends the handle's own.
fn named(
    state: &AppState,
    who: &Authorized,
    body: &SignBody,
    handle: &str,
) -> Result<(Upload, std::time::SystemTime), ApiError> {
    let (upload, deadline) = multipart::owned(&state.deps(), who, handle)?;
    if upload.key != *body.key.as_str() && upload.client_key.as_deref() != Some(body.key.as_str()) {
        return Err(ApiError::NotOwner);
    }
    Ok((upload, deadline))
}

/// `UploadPart`: a part URL on the store.
fn part(state: &AppState, who: &Authorized, body: &SignBody, handle: &str, number: u16) -> Handled {
    let (upload, deadline) = named(state, who, body, handle)?;
    let (mut parts, _) = urls::client_part_urls(&state.deps(), who, &upload, deadline, &[number])?;
    let url = parts
        .pop()
        .map(|p| p.url)
        .ok_or_else(|| ApiError::Internal("no URL signed for the part".into()))?;
    let signed = Signed::url(url, None);
    Ok((answers::json(StatusCode::OK, &signed)?, upload.key.into()))
}

/// `ListParts`: a URL on the store (Uppy resuming reads its XML).
fn list(state: &AppState, who: &Authorized, body: &SignBody, handle: &str) -> Handled {
    let (upload, deadline) = named(state, who, body, handle)?;
    let url = urls::list_parts_url(&state.deps(), who, &upload, deadline)?;
    let signed = Signed::url(url, None);
    Ok((answers::json(StatusCode::OK, &signed)?, upload.key.into()))
}

/// `CompleteMultipartUpload`: completed here with the parts the store holds, once they
/// add up; Uppy asks for the URL only when every part is in. One listing, the one
/// checked, names the parts completed.
async fn complete(state: &AppState, who: &Authorized, body: &SignBody, handle: &str) -> Handled {
    let (upload, _) = named(state, who, body, handle)?;
    let deps = state.deps();
    let done = multipart::complete(&deps, who, &upload, Claimed::Stored, None).await?;
    let location = urls::location(&deps, &upload)?;
    let receipt = Receipt::Completed {
        location,
        bucket: upload.bucket.to_string(),
        key: upload.key.to_string(),
        etag: done.object.etag,
    };
    answer_with(state, who, &receipt, upload.key.into())
}

/// `AbortMultipartUpload`: aborted here.
async fn abort(state: &AppState, who: &Authorized, body: &SignBody, handle: &str) -> Handled {
    let (upload, _) = named(state, who, body, handle)?;
    multipart::abort(&state.deps(), who, &upload).await?;
    answer_with(state, who, &Receipt::Aborted, upload.key.into())
}
