//! Multipart uploads (beyond 5 GiB, resumable).
//!
//! `POST /uploads/multipart` starts an upload under the caller's own key and returns a
//! signed handle; `POST /uploads/multipart/{handle}/parts` signs part URLs,
//! `.../complete` completes it once the parts add up to the declared size, and
//! `DELETE /uploads/multipart/{handle}` aborts it. No database: the handle carries the
//! binding, and every call checks it against the caller's token and key prefix.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use serde::{Deserialize, Serialize};

mod checksums;

use super::extract::{AppJson, Authorized};
use super::reply::{Handled, Reply};
use super::tickets::{self, new_uuid, rfc3339, usable_validity};
use super::{ApiError, AppState};
use crate::credentials::LoadedCredentials;
use crate::handle::Upload;
use crate::policy::{self, MultipartPlan, ObjectPlan, UploadRequest};
use crate::presign::{BucketName, Checksum, Credentials, ObjectKey, UrlRequest};
use crate::store::{CompletedObject, Completion, PartTag, StoredChecksum, StoredPart, UploadRef};

/// Most part URLs one response carries; clients ask for the rest in batches.
pub(super) const PART_BATCH: u16 = 100;

/// Largest completion body: 10 000 parts of about 100 bytes each.
pub(super) const COMPLETE_BODY_BYTES: usize = 1024 * 1024;

/// Longest ETag accepted (S3's are 34 to 42 characters with their quotes).
const MAX_ETAG_BYTES: usize = 64;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/uploads/multipart", post(start))
        .route("/uploads/multipart/{handle}/parts", post(sign_parts))
        .route(
            "/uploads/multipart/{handle}/complete",
            // Up to 10 000 parts with their ETags: more than the 16 KiB other bodies get.
            post(complete).layer(DefaultBodyLimit::max(COMPLETE_BODY_BYTES)),
        )
        .route("/uploads/multipart/{handle}", axum::routing::delete(abort))
}

/// One signed part URL, and the headers its PUT must carry (a declared checksum).
#[derive(Debug, Serialize)]
pub(super) struct PartUrl {
    pub part_number: u16,
    pub url: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    headers: BTreeMap<String, String>,
}

/// The answer to starting an upload.
#[derive(Debug, Serialize)]
struct Started {
    handle: String,
    upload_id: String,
    key: String,
    bucket: String,
    size: u64,
    part_size: u64,
    part_count: u16,
    /// When the handle (and so the upload) expires.
    expires_at: String,
    parts: Vec<PartUrl>,
    /// When the part URLs of this answer expire.
    parts_expire_at: String,
}

async fn start(
    State(state): State<AppState>,
    who: Authorized,
    AppJson(body): AppJson<UploadRequest>,
) -> Reply {
    who.reply("multipart_started", start_upload(&state, &who, &body).await)
}

async fn start_upload(state: &AppState, who: &Authorized, body: &UploadRequest) -> Handled {
    let plan = policy::multipart_plan(&who.rules, &who.caller.subject, body, who.now, &new_uuid())?;
    let (upload_id, credentials) = create_in_store(state, who, &plan.object, plan.size).await?;
    let answer = started(state, who, &plan, &credentials, &upload_id);
    if answer.is_err() {
        undo(state, who, &plan.object.key, &upload_id).await;
    }
    answer
}

/// Counts a new upload of up to `bytes` against the tenant's limits and starts it in
/// the store; answers its upload id and the credentials to sign its parts with. An
/// upload the store refuses frees its place among the subject's open ones again.
pub(super) async fn create_in_store(
    state: &AppState,
    who: &Authorized,
    object: &ObjectPlan,
    bytes: u64,
) -> Result<(String, Arc<LoadedCredentials>), ApiError> {
    let key = object.key.as_str();
    let deadline = who.now + who.rules.multipart_expires_in;
    let credentials = tickets::admit(state, who, bytes, Some((key, deadline))).await?;
    let bucket = who.rules.bucket.as_str();
    let settings = &who.rules.object_settings;
    match state.store.create_upload(bucket, object, settings).await {
        Ok(upload_id) => Ok((upload_id, credentials)),
        Err(error) => {
            release(state, who, key).await;
            Err(error.into())
        }
    }
}

/// Aborts an upload nobody will ever hold a handle for (its answer failed), so that its
/// parts are not left behind, and frees its place.
pub(super) async fn undo(state: &AppState, who: &Authorized, key: &str, upload_id: &str) {
    let upload = UploadRef {
        bucket: who.rules.bucket.as_str(),
        key,
        upload_id,
    };
    let _ = state.store.abort_upload(upload).await;
    release(state, who, key).await;
}

/// Frees the upload's place among its subject's open uploads.
pub(super) async fn release(state: &AppState, who: &Authorized, key: &str) {
    state
        .limits
        .release(&who.rules.id, &who.caller.subject, key)
        .await;
}

/// The handle and the first part URLs of a started upload.
fn started(
    state: &AppState,
    who: &Authorized,
    plan: &MultipartPlan,
    credentials: &LoadedCredentials,
    upload_id: &str,
) -> Handled {
    let upload = Upload {
        tenant: who.rules.id.clone(),
        sub: who.caller.subject.clone(),
        bucket: who.rules.bucket.to_string(),
        key: plan.object.key.clone(),
        upload_id: upload_id.to_owned(),
        size: plan.size,
        part_size: plan.part_size,
        part_count: plan.part_count,
        content_type: plan.object.content_type.clone(),
        checksum_algorithm: plan.object.checksum_algorithm,
        checksum: plan.object.checksum.as_ref().map(|c| c.value().to_owned()),
        client_parts: None,
        client_key: None,
    };
    let deadline = who.now + who.rules.multipart_expires_in;
    let handle = state
        .handles
        .sign(&upload, deadline)
        .map_err(ApiError::internal)?;
    // With a checksum algorithm every part must carry its checksum (S3 and Garage
    // refuse a part without): the client asks `/parts` with them.
    let first: Vec<u16> = match upload.checksum_algorithm {
        Some(_) => Vec::new(),
        None => (1..=plan.part_count.min(PART_BATCH)).collect(),
    };
    let validity = usable_validity(plan.object.expires_in, credentials, who.now, Some(deadline))?;
    let (parts, parts_expire_at) = part_urls(
        state,
        &credentials.credentials,
        &upload,
        &first,
        &BTreeMap::new(),
        validity,
        who.now,
    )?;
    let started = Started {
        handle,
        upload_id: upload.upload_id,
        key: upload.key.clone(),
        bucket: upload.bucket,
        size: upload.size,
        part_size: upload.part_size,
        part_count: upload.part_count,
        expires_at: rfc3339(deadline)?,
        parts,
        parts_expire_at: rfc3339(parts_expire_at)?,
    };
    Ok((tickets::json(StatusCode::CREATED, &started)?, upload.key))
}

pub(super) fn part_urls(
    state: &AppState,
    credentials: &Credentials,
    upload: &Upload,
    numbers: &[u16],
    checksums: &BTreeMap<u16, Checksum>,
    validity: Duration,
    now: SystemTime,
) -> Result<(Vec<PartUrl>, SystemTime), ApiError> {
    let bucket = BucketName::new(upload.bucket.as_str()).map_err(ApiError::internal)?;
    let key = ObjectKey::new(upload.key.as_str()).map_err(ApiError::internal)?;
    let mut parts = Vec::with_capacity(numbers.len());
    let mut expires_at = now + validity;
    for &number in numbers {
        let mut request =
            UrlRequest::upload_part(bucket.clone(), key.clone(), &upload.upload_id, number)
                .and_then(|r| r.expires_in(validity))
                .map_err(ApiError::internal)?;
        // A fixed layout pins each part's length: a part sent again, larger, after its
        // size was checked is refused by the store (the ETag check below is the other half).
        if let Some(len) = upload.part_len(number) {
            request = request
                .header("content-length", len.to_string())
                .map_err(ApiError::internal)?;
        }
        if let Some(checksum) = checksums.get(&number) {
            request = request.checksum(checksum).map_err(ApiError::internal)?;
        }
        let signed = state
            .presigner
            .presign_url(credentials, &request, now)
            .map_err(ApiError::internal)?;
        expires_at = signed.expires_at;
        parts.push(PartUrl {
            part_number: number,
            url: signed.url,
            headers: signed.headers.into_iter().collect(),
        });
    }
    Ok((parts, expires_at))
}

/// The upload a handle names, if the caller owns it: same tenant, same subject, and
/// the key under the subject's prefix in the tenant's bucket.
pub(super) fn owned_upload(
    state: &AppState,
    who: &Authorized,
    handle: &str,
) -> Result<(Upload, SystemTime), ApiError> {
    let (upload, deadline) = state
        .handles
        .verify(handle, who.now)
        .map_err(|_| ApiError::UploadNotFound)?;
    let prefix = who.rules.owner_prefix(&who.caller.subject)?;
    let owned = upload.tenant == who.caller.tenant
        && upload.sub == who.caller.subject
        && upload.bucket == who.rules.bucket.as_str()
        && upload.key.starts_with(&prefix);
    if !owned {
        return Err(ApiError::NotOwner);
    }
    Ok((upload, deadline))
}

pub(super) fn store_ref(upload: &Upload) -> UploadRef<'_> {
    UploadRef {
        bucket: &upload.bucket,
        key: &upload.key,
        upload_id: &upload.upload_id,
    }
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
    let (upload, deadline) = owned_upload(state, who, handle)?;
    check_part_numbers(&body.part_numbers, upload.part_count)?;
    // Up to 100 signatures a call: counted like the calls that reach the store.
    tickets::admit_store_call(state, who).await?;
    let checksums = checksums::for_parts(&upload, &body.part_numbers, &body.checksums)?;
    let credentials = tickets::credentials(state, who.now)?;
    let wanted = who.rules.default_expires_in;
    let validity = usable_validity(wanted, &credentials, who.now, Some(deadline))?;
    let numbers = &body.part_numbers;
    let (parts, expires_at) = part_urls(
        state,
        &credentials.credentials,
        &upload,
        numbers,
        &checksums,
        validity,
        who.now,
    )?;
    let expires_at = rfc3339(expires_at)?;
    let signed = SignedParts { parts, expires_at };
    Ok((tickets::json(StatusCode::OK, &signed)?, upload.key))
}

/// A batch of 1 to [`PART_BATCH`] distinct part numbers of an upload of `count` parts.
pub(super) fn check_part_numbers(numbers: &[u16], count: u16) -> Result<(), ApiError> {
    if numbers.is_empty() || numbers.len() > usize::from(PART_BATCH) {
        return Err(ApiError::InvalidRequest(format!(
            "part_numbers: 1 to {PART_BATCH} numbers per request"
        )));
    }
    let unique: BTreeSet<u16> = numbers.iter().copied().collect();
    if unique.len() != numbers.len() {
        return Err(ApiError::InvalidRequest(
            "part_numbers: each number once".to_owned(),
        ));
    }
    if let Some(bad) = numbers.iter().find(|&&n| n == 0 || n > count) {
        return Err(ApiError::PartsInvalid(format!(
            "part {bad} does not exist: this upload has parts 1 to {count}"
        )));
    }
    Ok(())
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
        complete_upload(&state, &who, &handle, &body).await,
    )
}

async fn complete_upload(
    state: &AppState,
    who: &Authorized,
    handle: &str,
    body: &CompleteRequest,
) -> Handled {
    let (upload, _) = owned_upload(state, who, handle)?;
    let parts = part_list(body, &upload)?;
    let checksum = checksums::whole(&who.rules, &upload, body.checksum.as_deref())?;
    let claimed = Claimed::Listed(parts);
    let (done, size) = finish(state, who, &upload, claimed, checksum.as_ref()).await?;
    let completed = Completed {
        key: upload.key.clone(),
        bucket: upload.bucket,
        size,
        etag: done.etag,
        checksum: done.checksum,
    };
    Ok((tickets::json(StatusCode::OK, &completed)?, upload.key))
}

/// Which parts a completion names.
pub(super) enum Claimed {
    /// The parts the client lists, with the ETags its uploads were answered with.
    Listed(Vec<PartTag>),
    /// Every part the store holds (a client that lists none itself).
    Stored,
}

/// Completes `upload` once the store holds the claimed parts and they add up to what the
/// upload declared; frees its place among the subject's open uploads. Answers the
/// store's completion and the object's size.
///
/// A part sent again between the listing and the completion must not slip past the size
/// check: the completion names exactly the ETags of the listing that was checked (a
/// client ETag that differs is refused, a store that checks ETags refuses a part replaced
/// since), and the object is looked at once completed and removed if its size is not the
/// one checked (a store that ignores ETags).
pub(super) async fn finish(
    state: &AppState,
    who: &Authorized,
    upload: &Upload,
    claimed: Claimed,
    checksum: Option<&Checksum>,
) -> Result<(CompletedObject, u64), ApiError> {
    tickets::admit_store_call(state, who).await?;
    let stored = state.store.list_parts(store_ref(upload)).await?;
    let mut parts = match claimed {
        Claimed::Listed(parts) => as_listed(parts, &stored)?,
        Claimed::Stored => {
            // s3s-fs lists in no order; S3 completes ascending.
            let mut all: Vec<PartTag> = stored.iter().map(PartTag::from).collect();
            all.sort_by_key(|p| p.number);
            all
        }
    };
    if parts.is_empty() {
        return Err(ApiError::PartsInvalid(
            "the store holds no part of this upload yet".to_owned(),
        ));
    }
    let size = check_stored_parts(upload, &parts, &stored)?;
    checksums::fill_from_store(&mut parts, stored, upload.checksum_algorithm);
    let completion = Completion {
        algorithm: upload.checksum_algorithm,
        checksum,
        if_none_match: who.rules.prevent_overwrite,
    };
    let done = state
        .store
        .complete_upload(store_ref(upload), &parts, completion)
        .await?;
    release(state, who, &upload.key).await;
    check_completed_size(state, upload, size).await?;
    Ok((done, size))
}

/// The client's part list with the ETags of the store's listing; a part whose ETag is
/// not the listed one changed after the client's upload (or never was), and is refused.
/// A store that lists no ETags (s3s-fs 0.14, the dev store) leaves the client's: the
/// size of the completed object is then the only guard.
fn as_listed(parts: Vec<PartTag>, stored: &[StoredPart]) -> Result<Vec<PartTag>, ApiError> {
    parts
        .into_iter()
        .map(|mut part| {
            let Some(held) = stored.iter().find(|s| s.number == part.number) else {
                return Err(ApiError::PartsInvalid(format!(
                    "part {} is not in the store: upload it before completing",
                    part.number
                )));
            };
            if held.etag.is_empty() {
                return Ok(part);
            }
            if unquoted(&held.etag) != unquoted(&part.etag) {
                return Err(ApiError::PartsInvalid(format!(
                    "part {} is stored with ETag {}, not {}: it was uploaded again; complete with the ETag of its last upload",
                    part.number, held.etag, part.etag
                )));
            }
            part.etag.clone_from(&held.etag);
            Ok(part)
        })
        .collect()
}

/// An ETag without its quotes (clients pass them on either way; S3 takes both).
fn unquoted(etag: &str) -> &str {
    etag.trim_matches('"')
}

/// The completed object is the size that was checked, or it is removed: a store that
/// completes from parts replaced after the listing would otherwise keep an object past
/// the upload's bounds and the tenant's quota.
async fn check_completed_size(
    state: &AppState,
    upload: &Upload,
    size: u64,
) -> Result<(), ApiError> {
    let head = state.store.head_object(&upload.bucket, &upload.key).await?;
    if head.object.size == size {
        return Ok(());
    }
    tracing::warn!(
        key = %upload.key,
        checked = size,
        stored = head.object.size,
        "a completed upload is not the size its parts were checked at: removed"
    );
    state
        .store
        .delete_object(&upload.bucket, &upload.key)
        .await?;
    Err(ApiError::PartsInvalid(format!(
        "the completed object holds {} bytes, not the {size} its parts held when checked: a part was replaced during the completion; the object was removed",
        head.object.size
    )))
}

/// The completion's part list: every part, in order, each once, with a plausible ETag
/// (and a well-formed checksum, if given). Where the client lays out the parts: any
/// ascending numbers S3 accepts.
fn part_list(body: &CompleteRequest, upload: &Upload) -> Result<Vec<PartTag>, ApiError> {
    let numbers: Vec<u16> = body.parts.iter().map(|p| p.part_number).collect();
    check_part_order(&numbers, upload)?;
    if body.parts.iter().any(|p| odd_etag(&p.etag)) {
        return Err(ApiError::InvalidRequest(
            "etag: the ETag the store returned for the part".to_owned(),
        ));
    }
    let algorithm = upload.checksum_algorithm;
    let tags = body.parts.iter().map(|p| {
        Ok(PartTag {
            number: p.part_number,
            etag: p.etag.clone(),
            checksum: checksums::listed_part(p.checksum.as_deref(), algorithm, p.part_number)?,
        })
    });
    tags.collect()
}

/// Part numbers as a completion lists them: 1 to the part count, in order, each once;
/// where the client lays out the parts, any ascending numbers from 1 to 10 000.
pub(super) fn check_part_order(numbers: &[u16], upload: &Upload) -> Result<(), ApiError> {
    let expected = usize::from(upload.part_count);
    let fits = match upload.client_parts {
        None => {
            numbers.len() == expected
                && numbers
                    .iter()
                    .enumerate()
                    .all(|(i, &n)| usize::from(n) == i + 1)
        }
        Some(_) => {
            !numbers.is_empty()
                && numbers.first().is_some_and(|&n| n >= 1)
                && numbers.last().is_some_and(|&n| n <= upload.part_count)
                && numbers.windows(2).all(|pair| pair[0] < pair[1])
        }
    };
    match (fits, upload.client_parts) {
        (true, _) => Ok(()),
        (false, None) => Err(ApiError::PartsInvalid(format!(
            "list parts 1 to {expected}, in order, each once"
        ))),
        (false, Some(_)) => Err(ApiError::PartsInvalid(format!(
            "list the uploaded parts in ascending order, each once, numbered 1 to {}",
            upload.part_count
        ))),
    }
}

/// An ETag no store answers with: empty, overlong or with control characters.
pub(super) fn odd_etag(etag: &str) -> bool {
    etag.is_empty() || etag.len() > MAX_ETAG_BYTES || etag.chars().any(char::is_control)
}

/// The store accepts parts of any size: hold the upload to its declared size here
/// (where the client lays out the parts: every listed part stored, and their total
/// within the upload's bounds). Answers the total.
fn check_stored_parts(
    upload: &Upload,
    listed: &[PartTag],
    stored: &[StoredPart],
) -> Result<u64, ApiError> {
    let Some(bounds) = upload.client_parts else {
        let count = stored.len();
        let bytes = stored
            .iter()
            .fold(0u64, |sum, p| sum.saturating_add(p.size));
        let expected = usize::from(upload.part_count);
        if count != expected || bytes != upload.size {
            return Err(ApiError::PartsInvalid(format!(
                "the store holds {count} parts of {bytes} bytes; this upload declared {expected} parts of {} bytes",
                upload.size
            )));
        }
        // The same total from other part sizes is not the layout that was signed.
        if let Some(odd) = stored
            .iter()
            .find(|p| upload.part_len(p.number) != Some(p.size))
        {
            return Err(ApiError::PartsInvalid(format!(
                "part {} holds {} bytes; this upload's parts are {} bytes, the last the rest",
                odd.number, odd.size, upload.part_size
            )));
        }
        return Ok(bytes);
    };
    let mut bytes = 0u64;
    for part in listed {
        let held = stored.iter().find(|s| s.number == part.number);
        let Some(held) = held else {
            return Err(ApiError::PartsInvalid(format!(
                "part {} is not in the store: upload it before completing",
                part.number
            )));
        };
        bytes = bytes.saturating_add(held.size);
    }
    if upload.size > 0 && bytes != upload.size {
        return Err(ApiError::PartsInvalid(format!(
            "the listed parts hold {bytes} bytes; this upload declared {} bytes",
            upload.size
        )));
    }
    if bytes < bounds.min || bytes > bounds.max {
        return Err(ApiError::PartsInvalid(format!(
            "the listed parts hold {bytes} bytes; this tenant takes {} to {} bytes",
            bounds.min, bounds.max
        )));
    }
    Ok(bytes)
}

async fn abort(
    State(state): State<AppState>,
    who: Authorized,
    Path(handle): Path<String>,
) -> Reply {
    who.reply(
        "multipart_aborted",
        abort_upload(&state, &who, &handle).await,
    )
}

async fn abort_upload(state: &AppState, who: &Authorized, handle: &str) -> Handled {
    let (upload, _) = owned_upload(state, who, handle)?;
    abort_owned(state, who, &upload).await?;
    Ok((StatusCode::NO_CONTENT.into_response(), upload.key))
}

/// Aborts the caller's `upload` and frees its place among the subject's open uploads.
pub(super) async fn abort_owned(
    state: &AppState,
    who: &Authorized,
    upload: &Upload,
) -> Result<(), ApiError> {
    tickets::admit_store_call(state, who).await?;
    state.store.abort_upload(store_ref(upload)).await?;
    release(state, who, &upload.key).await;
    Ok(())
}
