//! Uppy Companion's S3 routes, served on this service's rules: `@uppy/aws-s3` (4.x and
//! 5.x, option `endpoint`) pointed here works unchanged, the bearer token in its
//! `headers` option.
//!
//! The plugin sends back the key and the upload id it was given; neither is trusted.
//! The upload id it gets is the signed multipart handle, and every call checks it
//! against the caller exactly as the multipart routes do (same tenant, same subject,
//! key under the subject's prefix), and the key it sends against the handle's.
//!
//! Uppy chooses its own part size and sends no file size: these uploads take any part
//! layout S3 accepts, and their total is checked at completion (the declared size, when
//! the app puts `size` in the file's meta; else the tenant's bounds). Refusals are
//! problem+json, whose `message` Uppy's Dashboard shows.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use url::form_urlencoded;

use crate::handle::Upload;
use crate::http::answers;
use crate::http::error::ApiError;
use crate::http::extract::{AppJson, Authorized};
use crate::http::reply::{Handled, Reply};
use crate::http::state::{AppState, COMPLETE_BODY_BYTES};
use crate::policy::UploadRequest;
use crate::routes::companion as routes;
use crate::upload::multipart::{self, Claimed, ClientUpload};
use crate::upload::parts::{self, ClientPart, MAX_PARTS, PART_BATCH};
use crate::upload::ticket;
use crate::upload::urls;

/// Meta fields Uppy keeps for itself; they are not object metadata.
const UPPY_META: [&str; 3] = ["name", "type", "relativePath"];

/// The routes, relative to the configured prefix (`/s3` by default).
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(routes::PARAMS, get(params))
        .route(routes::MULTIPART, post(create))
        .route(routes::UPLOAD, get(list_parts).delete(abort))
        .route(routes::BATCH, get(sign_batch))
        .route(
            routes::COMPLETE,
            post(complete).layer(DefaultBodyLimit::max(COMPLETE_BODY_BYTES)),
        )
        .route(routes::PART, get(sign_part))
}

/// The query's pairs, each name once.
fn query_pairs(query: Option<&str>) -> Result<BTreeMap<String, String>, ApiError> {
    let mut pairs = BTreeMap::new();
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if pairs.insert(name.to_string(), value.into_owned()).is_some() {
            return Err(ApiError::InvalidRequest(format!(
                "{name}: given more than once"
            )));
        }
    }
    Ok(pairs)
}

/// The upload request Uppy's `filename`, `type` and file meta make: `size` in the meta
/// is the declared size, Uppy's own fields are dropped, the rest is object metadata
/// (held to the tenant's metadata rules).
fn upload_request(
    filename: Option<String>,
    content_type: Option<String>,
    meta: BTreeMap<String, String>,
) -> Result<UploadRequest, ApiError> {
    let filename = filename.filter(|f| !f.is_empty()).ok_or_else(|| {
        ApiError::InvalidRequest("filename: the file's name is required".to_owned())
    })?;
    let mut metadata = BTreeMap::new();
    let mut size = None;
    for (name, value) in meta {
        if name == "size" {
            let bytes = value.parse::<u64>().map_err(|_| {
                ApiError::InvalidRequest(format!("metadata.size: {value:?} is not a size in bytes"))
            })?;
            size = Some(bytes);
        } else if !UPPY_META.contains(&name.as_str()) {
            metadata.insert(name, value);
        }
    }
    Ok(UploadRequest {
        filename,
        // Uppy sends an empty type for a file the browser could not type.
        content_type: content_type.filter(|t| !t.is_empty()),
        size,
        metadata,
        expires_in: None,
        checksum: None,
    })
}

/// `GET /params?filename=&type=&metadata[name]=…`: a ticket of the tenant's method,
/// the same as `POST /uploads` answers (`method`, `url`, `fields` or `headers`, `key`).
async fn params(
    State(state): State<AppState>,
    who: Authorized,
    RawQuery(query): RawQuery,
) -> Reply {
    who.reply("ticket_issued", issue(&state, &who, query.as_deref()).await)
}

async fn issue(state: &AppState, who: &Authorized, query: Option<&str>) -> Handled {
    let request = params_request(query)?;
    let ticket = ticket::issue(&state.deps(), who, &request).await?;
    let bucket = who.rules().bucket.as_str();
    let response = answers::ticket(StatusCode::OK, &ticket, bucket)?;
    Ok((response, ticket.into_key()))
}

fn params_request(query: Option<&str>) -> Result<UploadRequest, ApiError> {
    let mut pairs = query_pairs(query)?;
    let filename = pairs.remove("filename");
    let content_type = pairs.remove("type");
    let mut meta = BTreeMap::new();
    for (name, value) in pairs {
        let field = name
            .strip_prefix("metadata[")
            .and_then(|rest| rest.strip_suffix(']'))
            .ok_or_else(|| {
                ApiError::InvalidRequest(format!(
                    "{name}: not a parameter here (filename, type, metadata[...])"
                ))
            })?;
        meta.insert(field.to_owned(), value);
    }
    upload_request(filename, content_type, meta)
}

/// The body of `POST /multipart`.
#[derive(Debug, Deserialize)]
struct CreateBody {
    filename: Option<String>,
    #[serde(rename = "type")]
    content_type: Option<String>,
    /// Uppy sends every value as a string; numbers and booleans are taken as written.
    #[serde(default)]
    metadata: BTreeMap<String, serde_json::Value>,
}

/// Companion's answer to a new upload: the upload id is the signed handle.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Created {
    key: String,
    upload_id: String,
    bucket: String,
}

async fn create(
    State(state): State<AppState>,
    who: Authorized,
    AppJson(body): AppJson<CreateBody>,
) -> Reply {
    who.reply("multipart_started", create_upload(&state, &who, body).await)
}

async fn create_upload(state: &AppState, who: &Authorized, body: CreateBody) -> Handled {
    let mut meta = BTreeMap::new();
    for (name, value) in body.metadata {
        let text = match value {
            serde_json::Value::Null => continue,
            serde_json::Value::String(text) => text,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => {
                return Err(ApiError::InvalidRequest(format!(
                    "metadata.{name}: a string, number or boolean"
                )));
            }
        };
        meta.insert(name, text);
    }
    let request = upload_request(body.filename, body.content_type, meta)?;
    let deps = state.deps();
    let ClientUpload { upload, handle } =
        multipart::start_client_upload(&deps, who, &request, None).await?;
    let created = Created {
        key: upload.key.to_string(),
        upload_id: handle,
        bucket: upload.bucket.into(),
    };
    Ok((answers::json(StatusCode::OK, &created)?, upload.key.into()))
}

/// The upload a Companion call names: the handle in its path, owned by the caller, and
/// the `key` of its query the handle's own.
fn named_upload(
    state: &AppState,
    who: &Authorized,
    handle: &str,
    query: Option<&str>,
) -> Result<(Upload, std::time::SystemTime, BTreeMap<String, String>), ApiError> {
    let (upload, deadline) = multipart::owned(&state.deps(), who, handle)?;
    let mut pairs = query_pairs(query)?;
    match pairs.remove("key") {
        Some(key) if upload.key == *key.as_str() => Ok((upload, deadline, pairs)),
        Some(_) => Err(ApiError::NotOwner),
        None => Err(ApiError::InvalidRequest(
            "key: the key this upload was started with".to_owned(),
        )),
    }
}

/// A part number as a path or list gives it.
fn part_number(text: &str) -> Result<u16, ApiError> {
    text.trim().parse::<u16>().map_err(|_| {
        ApiError::InvalidRequest(format!(
            "partNumber: {text:?} is not a part number (1 to {MAX_PARTS})"
        ))
    })
}

/// One part's URL, as Companion answers it (`expires` in seconds).
#[derive(Debug, Serialize)]
struct SignedPart {
    url: String,
    method: &'static str,
    expires: u64,
}

async fn sign_part(
    State(state): State<AppState>,
    who: Authorized,
    Path((handle, number)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Reply {
    let result = (|| {
        let (upload, deadline, _) = named_upload(&state, &who, &handle, query.as_deref())?;
        let number = part_number(&number)?;
        let deps = state.deps();
        let (mut parts, validity) =
            urls::client_part_urls(&deps, &who, &upload, deadline, &[number])?;
        let url = parts
            .pop()
            .map(|p| p.url)
            .ok_or_else(|| ApiError::Internal("no URL signed for the part".into()))?;
        let part = SignedPart {
            url,
            method: "PUT",
            expires: validity.get().as_secs(),
        };
        Ok((answers::json(StatusCode::OK, &part)?, upload.key.into()))
    })();
    who.reply("parts_signed", result)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SignedBatch {
    presigned_urls: BTreeMap<u16, String>,
}

/// `GET /multipart/{uploadId}/batch?key=&partNumbers=1,2,3`.
async fn sign_batch(
    State(state): State<AppState>,
    who: Authorized,
    Path(handle): Path<String>,
    RawQuery(query): RawQuery,
) -> Reply {
    let result = async {
        let (upload, deadline, mut pairs) = named_upload(&state, &who, &handle, query.as_deref())?;
        let listed = pairs.remove("partNumbers").unwrap_or_default();
        let numbers = listed
            .split(',')
            .filter(|n| !n.trim().is_empty())
            .map(part_number)
            .collect::<Result<Vec<u16>, ApiError>>()?;
        if numbers.is_empty() {
            return Err(ApiError::InvalidRequest(format!(
                "partNumbers: 1 to {PART_BATCH} part numbers, separated by commas"
            )));
        }
        let deps = state.deps();
        // Up to 100 signatures a call: counted like the calls that reach the store.
        crate::upload::admit_store_call(&deps, &who).await?;
        let (parts, _) = urls::client_part_urls(&deps, &who, &upload, deadline, &numbers)?;
        let presigned_urls = parts.into_iter().map(|p| (p.part_number, p.url)).collect();
        let batch = SignedBatch { presigned_urls };
        Ok((answers::json(StatusCode::OK, &batch)?, upload.key.into()))
    };
    who.reply("parts_signed", result.await)
}

/// A part the store holds, as Companion lists it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListedPart {
    part_number: u16,
    size: u64,
    #[serde(rename = "ETag")]
    etag: String,
}

async fn list_parts(
    State(state): State<AppState>,
    who: Authorized,
    Path(handle): Path<String>,
    RawQuery(query): RawQuery,
) -> Reply {
    let result = async {
        let (upload, _, _) = named_upload(&state, &who, &handle, query.as_deref())?;
        let stored = multipart::stored_parts(&state.deps(), &who, &upload).await?;
        let listed: Vec<ListedPart> = stored
            .into_iter()
            .map(|p| ListedPart {
                part_number: p.number,
                size: p.size,
                etag: p.etag,
            })
            .collect();
        Ok((answers::json(StatusCode::OK, &listed)?, upload.key.into()))
    };
    who.reply("parts_listed", result.await)
}

/// The body of `POST /multipart/{uploadId}/complete`.
#[derive(Debug, Deserialize)]
struct CompleteBody {
    parts: Vec<CompletedPart>,
}

#[derive(Debug, Deserialize)]
struct CompletedPart {
    #[serde(rename = "PartNumber")]
    part_number: u16,
    #[serde(rename = "ETag")]
    etag: String,
}

#[derive(Debug, Serialize)]
struct Completed {
    location: String,
    key: String,
    bucket: String,
    size: u64,
}

async fn complete(
    State(state): State<AppState>,
    who: Authorized,
    Path(handle): Path<String>,
    RawQuery(query): RawQuery,
    AppJson(body): AppJson<CompleteBody>,
) -> Reply {
    let result = async {
        let (upload, _, _) = named_upload(&state, &who, &handle, query.as_deref())?;
        // The browser's order means nothing; S3 wants them ascending.
        let mut listed = body.parts;
        listed.sort_by_key(|p| p.part_number);
        let listed = listed.into_iter().map(|p| ClientPart {
            number: p.part_number,
            etag: p.etag,
            checksum: None,
        });
        let deps = state.deps();
        let claimed = Claimed::Listed(parts::listed(listed.collect(), &upload)?);
        let done = multipart::complete(&deps, &who, &upload, claimed, None).await?;
        let location = urls::location(&deps, &upload)?;
        let completed = Completed {
            location,
            key: upload.key.to_string(),
            bucket: upload.bucket.into(),
            size: done.size,
        };
        Ok((
            answers::json(StatusCode::OK, &completed)?,
            upload.key.into(),
        ))
    };
    who.reply("multipart_completed", result.await)
}

async fn abort(
    State(state): State<AppState>,
    who: Authorized,
    Path(handle): Path<String>,
    RawQuery(query): RawQuery,
) -> Reply {
    let result = async {
        let (upload, _, _) = named_upload(&state, &who, &handle, query.as_deref())?;
        multipart::abort(&state.deps(), &who, &upload).await?;
        // Uppy reads a JSON body from every answer, an abort's too.
        let empty = serde_json::json!({});
        Ok((answers::json(StatusCode::OK, &empty)?, upload.key.into()))
    };
    who.reply("multipart_aborted", result.await)
}
