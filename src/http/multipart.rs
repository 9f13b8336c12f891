//! Multipart uploads (beyond 5 GiB, resumable) and the completion check.
//!
//! `POST /uploads/multipart` starts an upload under the caller's own key and returns a
//! signed handle; `POST /uploads/multipart/{handle}/parts` signs part URLs,
//! `.../complete` completes it once the parts add up to the declared size, and
//! `DELETE /uploads/multipart/{handle}` aborts it. No database: the handle carries the
//! binding, and every call checks it against the caller's token and key prefix.
//! `POST /uploads/complete` looks at a finished object under the caller's prefix and
//! says whether it keeps the tenant's rules (and tells the tenant's webhook).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::head_object::HeadObjectError;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, ObjectCannedAcl, ServerSideEncryption, StorageClass,
};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::extract::AppJson;
use super::uploads::{check_rate, rfc3339, ticket_response, usable_validity};
use super::{ApiError, AppState};
use crate::auth::Caller;
use crate::credentials::LoadedCredentials;
use crate::handle::Upload;
use crate::policy::{self, ContentTypePattern, TenantRules, UploadRequest};
use crate::presign::{BucketName, ObjectKey, UrlRequest};

/// Most part URLs one response carries; clients ask for the rest in batches.
const PART_BATCH: u16 = 100;

/// Largest completion body: 10 000 parts of about 100 bytes each.
const COMPLETE_BODY_BYTES: usize = 1024 * 1024;

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
        .route("/uploads/complete", post(check_object))
}

/// One signed part URL.
#[derive(Debug, Serialize)]
struct PartUrl {
    part_number: u16,
    url: String,
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
    caller: Caller,
    AppJson(body): AppJson<UploadRequest>,
) -> Response {
    let tenant = caller.tenant.clone();
    super::access::finish(
        tenant,
        "multipart_started",
        start_upload(&state, &caller, &body).await,
    )
}

async fn start_upload(
    state: &AppState,
    caller: &Caller,
    body: &UploadRequest,
) -> Result<(Response, String), ApiError> {
    let rules = state
        .tenants
        .get(&caller.tenant)
        .ok_or(ApiError::TenantUnknown)?;
    check_rate(state, rules, caller)?;
    let now = SystemTime::now();
    let credentials = state
        .credentials
        .current(now)
        .ok_or(ApiError::CredentialsUnavailable)?;
    let uuid = uuid::Uuid::new_v4().to_string();
    let plan = policy::multipart_plan(rules, &caller.subject, body, now, &uuid)?;

    let mut create = state
        .store()
        .create_multipart_upload()
        .bucket(rules.bucket.as_str())
        .key(&plan.object.key);
    for (name, value) in plan.object.headers(rules) {
        create = match name.as_str() {
            "content-type" => create.content_type(value),
            "content-disposition" => create.content_disposition(value),
            "cache-control" => create.cache_control(value),
            "x-amz-acl" => create.acl(ObjectCannedAcl::from(value.as_str())),
            "x-amz-storage-class" => create.storage_class(StorageClass::from(value.as_str())),
            "x-amz-server-side-encryption" => {
                create.server_side_encryption(ServerSideEncryption::from(value.as_str()))
            }
            "x-amz-server-side-encryption-aws-kms-key-id" => create.ssekms_key_id(value),
            "x-amz-tagging" => create.tagging(value),
            meta => match meta.strip_prefix("x-amz-meta-") {
                Some(meta) => create.metadata(meta, value),
                None => return Err(ApiError::internal(UnmappedHeader(name))),
            },
        };
    }
    let created = create.send().await.map_err(store_error)?;
    let upload_id = created
        .upload_id()
        .filter(|id| !id.is_empty())
        .ok_or_else(|| ApiError::Store("the store returned no upload id".into()))?
        .to_owned();
    let answer = started_answer(
        state,
        rules,
        caller,
        &plan,
        &credentials,
        upload_id.clone(),
        now,
    );
    if answer.is_err() {
        // Nobody will ever hold a handle for it: do not leave its parts behind.
        let _ = state
            .store()
            .abort_multipart_upload()
            .bucket(rules.bucket.as_str())
            .key(&plan.object.key)
            .upload_id(&upload_id)
            .send()
            .await;
    }
    answer
}

fn started_answer(
    state: &AppState,
    rules: &TenantRules,
    caller: &Caller,
    plan: &policy::MultipartPlan,
    credentials: &LoadedCredentials,
    upload_id: String,
    now: SystemTime,
) -> Result<(Response, String), ApiError> {
    let upload = Upload {
        tenant: rules.id.clone(),
        sub: caller.subject.clone(),
        bucket: rules.bucket.to_string(),
        key: plan.object.key.clone(),
        upload_id: upload_id.clone(),
        size: plan.size,
        part_size: plan.part_size,
        part_count: plan.part_count,
        content_type: plan.object.content_type.clone(),
    };
    let deadline = now + rules.multipart_expires_in;
    let handle = state
        .handles
        .sign(&upload, deadline)
        .map_err(ApiError::internal)?;
    let first: Vec<u16> = (1..=plan.part_count.min(PART_BATCH)).collect();
    let validity = usable_validity(plan.object.expires_in, credentials, now, Some(deadline))?;
    let (parts, parts_expire_at) = part_urls(
        state,
        &credentials.credentials,
        &upload,
        &first,
        validity,
        now,
    )?;
    let started = Started {
        handle,
        upload_id,
        key: upload.key.clone(),
        bucket: upload.bucket.clone(),
        size: upload.size,
        part_size: upload.part_size,
        part_count: upload.part_count,
        expires_at: rfc3339(deadline)?,
        parts,
        parts_expire_at: rfc3339(parts_expire_at)?,
    };
    Ok((ticket_response(StatusCode::CREATED, &started)?, upload.key))
}

#[derive(Debug, thiserror::Error)]
#[error("no CreateMultipartUpload parameter for header {0:?}")]
struct UnmappedHeader(String);

fn part_urls(
    state: &AppState,
    credentials: &crate::presign::Credentials,
    upload: &Upload,
    numbers: &[u16],
    validity: Duration,
    now: SystemTime,
) -> Result<(Vec<PartUrl>, SystemTime), ApiError> {
    let bucket = BucketName::new(upload.bucket.as_str()).map_err(ApiError::internal)?;
    let key = ObjectKey::new(upload.key.as_str()).map_err(ApiError::internal)?;
    let mut parts = Vec::with_capacity(numbers.len());
    let mut expires_at = now + validity;
    for &number in numbers {
        let request =
            UrlRequest::upload_part(bucket.clone(), key.clone(), &upload.upload_id, number)
                .and_then(|r| r.expires_in(validity))
                .map_err(ApiError::internal)?;
        let signed = state
            .presigner
            .presign_url(credentials, &request, now)
            .map_err(ApiError::internal)?;
        expires_at = signed.expires_at;
        parts.push(PartUrl {
            part_number: number,
            url: signed.url,
        });
    }
    Ok((parts, expires_at))
}

/// The upload a handle names, if the caller owns it: same tenant, same subject, and
/// the key under the subject's prefix in the tenant's bucket.
fn owned_upload<'a>(
    state: &'a AppState,
    caller: &Caller,
    handle: &str,
) -> Result<(&'a TenantRules, Upload, SystemTime), ApiError> {
    let (upload, deadline) = state
        .handles
        .verify(handle)
        .map_err(|_| ApiError::UploadNotFound)?;
    let rules = state
        .tenants
        .get(&caller.tenant)
        .ok_or(ApiError::TenantUnknown)?;
    let prefix = rules.owner_prefix(&caller.subject)?;
    let owned = upload.tenant == caller.tenant
        && upload.sub == caller.subject
        && upload.bucket == rules.bucket.as_str()
        && upload.key.starts_with(&prefix);
    if !owned {
        return Err(ApiError::NotOwner);
    }
    Ok((rules, upload, deadline))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartsRequest {
    part_numbers: Vec<u16>,
}

#[derive(Debug, Serialize)]
struct SignedParts {
    parts: Vec<PartUrl>,
    expires_at: String,
}

async fn sign_parts(
    State(state): State<AppState>,
    caller: Caller,
    Path(handle): Path<String>,
    AppJson(body): AppJson<PartsRequest>,
) -> Response {
    let tenant = caller.tenant.clone();
    let result = (|| {
        let (rules, upload, deadline) = owned_upload(&state, &caller, &handle)?;
        let numbers = &body.part_numbers;
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
        if let Some(bad) = numbers.iter().find(|&&n| n == 0 || n > upload.part_count) {
            return Err(ApiError::PartsInvalid(format!(
                "part {bad} does not exist: this upload has parts 1 to {}",
                upload.part_count
            )));
        }
        let now = SystemTime::now();
        let credentials = state
            .credentials
            .current(now)
            .ok_or(ApiError::CredentialsUnavailable)?;
        let validity =
            usable_validity(rules.default_expires_in, &credentials, now, Some(deadline))?;
        let (parts, expires_at) = part_urls(
            &state,
            &credentials.credentials,
            &upload,
            numbers,
            validity,
            now,
        )?;
        let signed = SignedParts {
            parts,
            expires_at: rfc3339(expires_at)?,
        };
        Ok((ticket_response(StatusCode::OK, &signed)?, upload.key))
    })();
    super::access::finish(tenant, "parts_signed", result)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompleteRequest {
    parts: Vec<CompletedPartBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompletedPartBody {
    part_number: u16,
    etag: String,
}

#[derive(Debug, Serialize)]
struct Completed {
    key: String,
    bucket: String,
    size: u64,
    etag: Option<String>,
}

async fn complete(
    State(state): State<AppState>,
    caller: Caller,
    Path(handle): Path<String>,
    AppJson(body): AppJson<CompleteRequest>,
) -> Response {
    let tenant = caller.tenant.clone();
    let result = complete_upload(&state, &caller, &handle, body).await;
    super::access::finish(tenant, "multipart_completed", result)
}

async fn complete_upload(
    state: &AppState,
    caller: &Caller,
    handle: &str,
    body: CompleteRequest,
) -> Result<(Response, String), ApiError> {
    let (_, upload, _) = owned_upload(state, caller, handle)?;
    let expected = usize::from(upload.part_count);
    let in_order = body
        .parts
        .iter()
        .enumerate()
        .all(|(i, p)| usize::from(p.part_number) == i + 1);
    if body.parts.len() != expected || !in_order {
        return Err(ApiError::PartsInvalid(format!(
            "list parts 1 to {expected}, in order, each once"
        )));
    }
    if body.parts.iter().any(|p| {
        p.etag.is_empty() || p.etag.len() > MAX_ETAG_BYTES || p.etag.chars().any(char::is_control)
    }) {
        return Err(ApiError::InvalidRequest(
            "etag: the ETag the store returned for the part".to_owned(),
        ));
    }

    // The store accepts parts of any size: hold the upload to its declared size here.
    let mut stored = 0u64;
    let mut count = 0usize;
    let mut pages = state
        .store()
        .list_parts()
        .bucket(&upload.bucket)
        .key(&upload.key)
        .upload_id(&upload.upload_id)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(store_error)?;
        for part in page.parts() {
            count += 1;
            stored += u64::try_from(part.size().unwrap_or(0)).unwrap_or(0);
        }
    }
    if count != expected || stored != upload.size {
        return Err(ApiError::PartsInvalid(format!(
            "the store holds {count} parts of {stored} bytes; this upload declared {expected} parts of {} bytes",
            upload.size
        )));
    }

    let parts = body
        .parts
        .iter()
        .map(|p| {
            CompletedPart::builder()
                .part_number(i32::from(p.part_number))
                .e_tag(&p.etag)
                .build()
        })
        .collect();
    let done = state
        .store()
        .complete_multipart_upload()
        .bucket(&upload.bucket)
        .key(&upload.key)
        .upload_id(&upload.upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .map_err(store_error)?;
    let completed = Completed {
        key: upload.key.clone(),
        bucket: upload.bucket,
        size: upload.size,
        etag: done.e_tag().map(str::to_owned),
    };
    Ok((Json(completed).into_response(), upload.key))
}

async fn abort(
    State(state): State<AppState>,
    caller: Caller,
    Path(handle): Path<String>,
) -> Response {
    let tenant = caller.tenant.clone();
    let result = async {
        let (_, upload, _) = owned_upload(&state, &caller, &handle)?;
        state
            .store()
            .abort_multipart_upload()
            .bucket(&upload.bucket)
            .key(&upload.key)
            .upload_id(&upload.upload_id)
            .send()
            .await
            .map_err(store_error)?;
        Ok((StatusCode::NO_CONTENT.into_response(), upload.key))
    }
    .await;
    super::access::finish(tenant, "multipart_aborted", result)
}

/// Maps the store's refusals to API errors; anything unexpected is a 502.
fn store_error<E, R>(error: SdkError<E, R>) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match error.code() {
        Some("NoSuchUpload") => ApiError::UploadNotFound,
        Some("InvalidPart" | "InvalidPartOrder" | "EntityTooSmall") => ApiError::PartsInvalid(
            error
                .message()
                .unwrap_or("the store refused the part list")
                .to_owned(),
        ),
        _ => ApiError::Store(Box::new(error)),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckRequest {
    key: String,
    /// The size the ticket was for, if the caller wants it compared.
    size: Option<u64>,
    /// The content type the ticket was for, if the caller wants it compared.
    content_type: Option<String>,
}

/// What a stored object is, and whether it keeps the rules.
#[derive(Debug, Serialize)]
struct Report {
    key: String,
    bucket: String,
    size: u64,
    content_type: Option<String>,
    etag: Option<String>,
    metadata: BTreeMap<String, String>,
    last_modified: Option<String>,
    matches: bool,
    mismatches: Vec<String>,
}

#[derive(Debug, Serialize)]
struct CheckAnswer {
    #[serde(flatten)]
    report: Report,
    webhook: Option<crate::webhook::Delivery>,
}

async fn check_object(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(body): AppJson<CheckRequest>,
) -> Response {
    let tenant = caller.tenant.clone();
    let result = check(&state, &caller, body).await;
    super::access::finish(tenant, "upload_checked", result)
}

async fn check(
    state: &AppState,
    caller: &Caller,
    body: CheckRequest,
) -> Result<(Response, String), ApiError> {
    let rules = state
        .tenants
        .get(&caller.tenant)
        .ok_or(ApiError::TenantUnknown)?;
    ObjectKey::new(body.key.as_str()).map_err(|e| ApiError::InvalidRequest(format!("key: {e}")))?;
    // Keys this service makes never have empty, `.` or `..` segments; a store that maps
    // keys to files might resolve them out of the caller's prefix.
    let odd_segment = body
        .key
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..");
    if odd_segment || !body.key.starts_with(&rules.owner_prefix(&caller.subject)?) {
        return Err(ApiError::NotOwner);
    }
    let head = state
        .store()
        .head_object()
        .bucket(rules.bucket.as_str())
        .key(&body.key)
        .send()
        .await
        .map_err(|error| {
            let missing = matches!(error.as_service_error(), Some(HeadObjectError::NotFound(_)))
                || error.raw_response().map(|r| r.status().as_u16()) == Some(404);
            if missing {
                ApiError::ObjectNotFound
            } else {
                ApiError::Store(Box::new(error))
            }
        })?;
    let size = u64::try_from(head.content_length().unwrap_or(0)).unwrap_or(0);
    let content_type = head.content_type().map(str::to_owned);
    let metadata: BTreeMap<String, String> = head
        .metadata()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect()
        })
        .unwrap_or_default();

    let mut mismatches = Vec::new();
    if size < rules.min_size || size > rules.max_size {
        mismatches.push(format!(
            "size {size} is outside this tenant's {} to {} bytes",
            rules.min_size, rules.max_size
        ));
    }
    if let Some(expected) = body.size
        && expected != size
    {
        mismatches.push(format!("size {size} is not the declared {expected}"));
    }
    let essence = content_type
        .as_deref()
        .and_then(|t| t.parse::<mime::Mime>().ok());
    if !rules.content_types.is_empty() {
        let allowed = essence.as_ref().is_some_and(|m| {
            rules
                .content_types
                .iter()
                .any(|p: &ContentTypePattern| p.matches(m))
        });
        if !allowed {
            mismatches.push(format!(
                "content type {} is not allowed for this tenant",
                content_type.as_deref().unwrap_or("(none)")
            ));
        }
    }
    if let Some(expected) = &body.content_type {
        let same = match (expected.parse::<mime::Mime>(), &essence) {
            (Ok(e), Some(m)) => e.essence_str() == m.essence_str(),
            _ => false,
        };
        if !same {
            mismatches.push(format!(
                "content type {} is not the declared {expected}",
                content_type.as_deref().unwrap_or("(none)")
            ));
        }
    }
    for name in metadata.keys() {
        if !rules.metadata_keys.contains(name) {
            mismatches.push(format!("metadata {name:?} is not allowed for this tenant"));
        }
    }
    let report = Report {
        key: body.key.clone(),
        bucket: rules.bucket.to_string(),
        size,
        content_type,
        etag: head.e_tag().map(str::to_owned),
        metadata,
        last_modified: head
            .last_modified()
            .and_then(|t| t.fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime).ok()),
        matches: mismatches.is_empty(),
        mismatches,
    };
    let result = if report.matches { "match" } else { "mismatch" };
    metrics::counter!("upload_tickets_completion_checks_total", "tenant" => rules.id.clone(), "result" => result)
        .increment(1);

    let webhook = match state.webhooks.get(&rules.id) {
        Some(hook) => {
            #[derive(Serialize)]
            struct Event<'a> {
                event: &'static str,
                tenant: &'a str,
                subject: &'a str,
                #[serde(flatten)]
                report: &'a Report,
            }
            let event = Event {
                event: "upload.checked",
                tenant: &rules.id,
                subject: &caller.subject,
                report: &report,
            };
            let body = serde_json::to_vec(&event).map_err(ApiError::internal)?;
            let delivery = match &state.http {
                Some(client) => hook.deliver(client, body).await,
                None => crate::webhook::Delivery {
                    delivered: false,
                    status: None,
                },
            };
            let label = if delivery.delivered {
                "delivered"
            } else {
                "failed"
            };
            metrics::counter!("upload_tickets_webhook_deliveries_total", "tenant" => rules.id.clone(), "result" => label)
                .increment(1);
            Some(delivery)
        }
        None => None,
    };
    let key = report.key.clone();
    Ok((Json(CheckAnswer { report, webhook }).into_response(), key))
}
