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

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use url::form_urlencoded;

use crate::handle::Upload;
use crate::http::answers;
use crate::http::extract::{AppJson, Authorized};
use crate::http::reply::{Handled, Reply};
use crate::http::{ApiError, AppState, s3xml};
use crate::policy::{ChecksumRequest, UploadMethod, UploadRequest};
use crate::upload::multipart::{self, Claimed, ClientUpload};
use crate::upload::ticket;
use s3_presigned_post::PresignedPost;
use s3_presigned_post::names::MAX_KEY_BYTES;

/// How long a receipt's URL answers: Uppy calls it at once.
const RECEIPT_VALIDITY: Duration = Duration::from_secs(300);

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/uploads/uppy/sign", post(sign)).route(
        "/uploads/uppy/answer",
        get(answer).post(answer).delete(answer),
    )
}

/// What Uppy 6 hands `signRequest`, and the file (the app adds it for the first call).
/// Read from each published 6.x's `s3-client/types.ts` (6.0.0, 6.1.0, 6.3.1).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignBody {
    method: String,
    key: String,
    upload_id: Option<String>,
    part_number: Option<u16>,
    /// Uppy's own wish; the tenant's validity applies.
    #[serde(default)]
    expires_in: Option<u64>,
    /// The file's type on PutObject (6.3 on), which Uppy sends as `Content-Type`. Its
    /// presence also tells a plugin that sends the `headers` (6.2 on) and POST `fields`
    /// (6.3 on) a signer answers: 6.3.1 is the first published that does both.
    #[serde(default, deserialize_with = "present")]
    content_type: Option<Option<String>>,
    file: Option<FileBody>,
    /// Whatever a newer plugin adds: ignored if it cannot change what is signed.
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

/// A field that is there, even as `null` (`Some(None)`), apart from one that is not (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

impl SignBody {
    /// The plugin sends the headers (and fields) the answer names.
    fn takes_headers(&self) -> bool {
        self.content_type.is_some()
    }

    /// The type the object is stored with: the request's own, else the file's.
    fn object_type(&self) -> Option<String> {
        let file = self.file.as_ref().and_then(|f| f.content_type.clone());
        self.content_type
            .clone()
            .flatten()
            .or(file)
            .filter(|t| !t.is_empty())
    }
}

/// The file being uploaded, as `uppy.getFile(key)` has it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBody {
    name: String,
    #[serde(rename = "type", default)]
    content_type: Option<String>,
    size: Option<u64>,
    /// The file's checksum, for the store to verify (sent as a header by 6.2 on).
    #[serde(default)]
    checksum: Option<ChecksumRequest>,
}

/// What `signRequest` returns to Uppy: the URL, relative to the service's base URL when
/// it is the service's own, the key when the service picked it, and the headers Uppy
/// must send (6.2 on) with exactly these values.
#[derive(Debug, Serialize)]
struct Signed {
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    headers: BTreeMap<String, String>,
}

impl Signed {
    /// A URL to call with no headers of its own.
    fn url(url: String, key: Option<String>) -> Self {
        Self {
            url,
            key,
            headers: BTreeMap::new(),
        }
    }
}

/// A POST form for Uppy's PutObject (6.3 on): `{url, fields, key}`.
#[derive(Debug, Serialize)]
struct SignedPost {
    #[serde(flatten)]
    post: PresignedPost,
    key: String,
}

/// Names a newer plugin might send that would change what is signed: the object's
/// headers, its size, where it goes. Not understood, they are refused rather than
/// dropped, so that nothing the front end asked for is silently left unsigned.
const SIGNING_FIELDS: &[&str] = &[
    "acl",
    "body",
    "bucket",
    "cachecontrol",
    "checksum",
    "conditions",
    "content",
    "expires",
    "fields",
    "headers",
    "if",
    "length",
    "meta",
    "policy",
    "query",
    "region",
    "size",
    "sse",
    "serverside",
    "storageclass",
    "tagging",
    "versionid",
    "websiteredirect",
    "xamz",
];

/// Refuses an unknown field that could change what is signed; logs the others once.
fn check_other_fields(body: &SignBody) -> Result<(), ApiError> {
    for name in body.other.keys() {
        let folded: String = name
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if SIGNING_FIELDS.iter().any(|f| folded.starts_with(f)) {
            return Err(ApiError::InvalidRequest(format!(
                "{name}: this service does not know this field of Uppy's request and would \
                 sign without it; upgrade upload-tickets, or leave the field out"
            )));
        }
        first_sight(name);
    }
    Ok(())
}

/// Logs an ignored field the first time this process sees it (the first 64 names).
fn first_sight(name: &str) {
    static SEEN: std::sync::Mutex<BTreeSet<String>> = std::sync::Mutex::new(BTreeSet::new());
    let mut seen = SEEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if seen.len() < 64 && !seen.contains(name) {
        let shown: String = name.chars().take(64).collect();
        tracing::info!(field = %shown, "Uppy sent a request field this service does not know; ignored");
        seen.insert(name.to_owned());
    }
}

/// What a receipt's URL answers, as S3 would.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "did", rename_all = "snake_case")]
enum Receipt {
    /// `InitiateMultipartUploadResult`; the upload id is the signed handle.
    Started {
        bucket: String,
        key: String,
        upload_id: String,
    },
    /// `CompleteMultipartUploadResult`.
    Completed {
        location: String,
        bucket: String,
        key: String,
        etag: Option<String>,
    },
    /// An abort answers nothing.
    Aborted,
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

/// The file of a first call, as an upload request.
fn upload_request(body: &SignBody) -> Result<UploadRequest, ApiError> {
    let file = body.file.as_ref().ok_or_else(|| {
        ApiError::InvalidRequest(
            "file: the file's {name, type, size} (uppy.getFile(key)) is required to start an upload"
                .to_owned(),
        )
    })?;
    Ok(UploadRequest {
        filename: file.name.clone(),
        content_type: body.object_type(),
        size: file.size,
        metadata: Default::default(),
        expires_in: body.expires_in,
        checksum: file.checksum.clone(),
    })
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
            key: ticket.key,
        };
        return Ok((answers::json(StatusCode::OK, &signed)?, key));
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
        key: Some(ticket.key.clone()),
        headers,
    };
    Ok((answers::json(StatusCode::OK, &signed)?, ticket.key))
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
        bucket: upload.bucket.clone(),
        key: upload.key.clone(),
        upload_id: handle,
    };
    answer_with(state, who, &receipt, upload.key)
}

/// The caller's upload named by `handle`, with the key Uppy sends the handle's own.
fn named(
    state: &AppState,
    who: &Authorized,
    body: &SignBody,
    handle: &str,
) -> Result<(Upload, std::time::SystemTime), ApiError> {
    let (upload, deadline) = multipart::owned(&state.deps(), who, handle)?;
    if body.key != upload.key && upload.client_key.as_deref() != Some(body.key.as_str()) {
        return Err(ApiError::NotOwner);
    }
    Ok((upload, deadline))
}

/// `UploadPart`: a part URL on the store.
fn part(state: &AppState, who: &Authorized, body: &SignBody, handle: &str, number: u16) -> Handled {
    let (upload, deadline) = named(state, who, body, handle)?;
    let (mut parts, _) =
        multipart::client_part_urls(&state.deps(), who, &upload, deadline, &[number])?;
    let url = parts
        .pop()
        .map(|p| p.url)
        .ok_or_else(|| ApiError::Internal("no URL signed for the part".into()))?;
    let signed = Signed::url(url, None);
    Ok((answers::json(StatusCode::OK, &signed)?, upload.key))
}

/// `ListParts`: a URL on the store (Uppy resuming reads its XML).
fn list(state: &AppState, who: &Authorized, body: &SignBody, handle: &str) -> Handled {
    let (upload, deadline) = named(state, who, body, handle)?;
    let url = multipart::list_parts_url(&state.deps(), who, &upload, deadline)?;
    let signed = Signed::url(url, None);
    Ok((answers::json(StatusCode::OK, &signed)?, upload.key))
}

/// `CompleteMultipartUpload`: completed here with the parts the store holds, once they
/// add up; Uppy asks for the URL only when every part is in. One listing, the one
/// checked, names the parts completed.
async fn complete(state: &AppState, who: &Authorized, body: &SignBody, handle: &str) -> Handled {
    let (upload, _) = named(state, who, body, handle)?;
    let deps = state.deps();
    let done = multipart::complete(&deps, who, &upload, Claimed::Stored, None).await?;
    let location = multipart::location(&deps, &upload)?;
    let receipt = Receipt::Completed {
        location,
        bucket: upload.bucket.clone(),
        key: upload.key.clone(),
        etag: done.object.etag,
    };
    answer_with(state, who, &receipt, upload.key)
}

/// `AbortMultipartUpload`: aborted here.
async fn abort(state: &AppState, who: &Authorized, body: &SignBody, handle: &str) -> Handled {
    let (upload, _) = named(state, who, body, handle)?;
    multipart::abort(&state.deps(), who, &upload).await?;
    answer_with(state, who, &Receipt::Aborted, upload.key)
}

/// The answer URL of `receipt`, relative to the service's base URL.
fn answer_with(state: &AppState, who: &Authorized, receipt: &Receipt, key: String) -> Handled {
    let signed = state
        .handles
        .sign_receipt(receipt, who.now + RECEIPT_VALIDITY)
        .map_err(ApiError::internal)?;
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("r", &signed)
        .finish();
    let started = matches!(receipt, Receipt::Started { .. });
    let signed = Signed::url(
        format!("uploads/uppy/answer?{query}"),
        started.then(|| key.clone()),
    );
    Ok((answers::json(StatusCode::OK, &signed)?, key))
}

/// `uploads/uppy/answer?r=<receipt>`: the XML S3 answers for what the receipt says was
/// done. GET, POST or DELETE (Uppy POSTs, or DELETEs); no token: the receipt is the proof, and
/// it only repeats what its holder was told.
async fn answer(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let receipt = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "r")
        .map(|(_, value)| value.into_owned());
    let now = state.clock.now();
    let receipt = receipt.and_then(|r| state.handles.verify_receipt::<Receipt>(&r, now).ok());
    let Some(receipt) = receipt else {
        return s3xml::error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "the receipt is invalid or has expired: sign the request again",
        );
    };
    let body = match receipt {
        Receipt::Started {
            bucket,
            key,
            upload_id,
        } => format!(
            "<InitiateMultipartUploadResult><Bucket>{}</Bucket><Key>{}</Key><UploadId>{}</UploadId></InitiateMultipartUploadResult>",
            s3xml::escape(&bucket),
            s3xml::escape(&key),
            s3xml::escape(&upload_id)
        ),
        Receipt::Completed {
            location,
            bucket,
            key,
            etag,
        } => format!(
            "<CompleteMultipartUploadResult><Location>{}</Location><Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></CompleteMultipartUploadResult>",
            s3xml::escape(&location),
            s3xml::escape(&bucket),
            s3xml::escape(&key),
            s3xml::escape(etag.as_deref().unwrap_or_default())
        ),
        Receipt::Aborted => return StatusCode::NO_CONTENT.into_response(),
    };
    s3xml::document(StatusCode::OK, &body)
}
