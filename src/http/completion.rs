//! `POST /uploads/complete`: looks at a finished object under the caller's own prefix,
//! says whether it keeps the tenant's rules and what the ticket declared, and tells
//! the tenant's webhook.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde::{Deserialize, Serialize};

use super::extract::{AppJson, Authorized};
use super::reply::{Handled, Reply};
use super::tickets::{self, rfc3339};
use super::{ApiError, AppState};
use crate::policy::{self, ChecksumRequest, Declared, StoredChecksum, TenantRules, UploadMethod};
use crate::presign::ObjectKey;
use crate::store::ObjectHead;
use crate::webhook::Delivery;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/uploads/complete", post(check_object))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckRequest {
    key: String,
    /// The size the ticket was for, if the caller wants it compared.
    size: Option<u64>,
    /// The content type the ticket was for, if the caller wants it compared.
    content_type: Option<String>,
    /// The checksum the ticket declared, if the caller wants it compared.
    checksum: Option<ChecksumRequest>,
}

/// What a stored object is, and whether it keeps the rules.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    key: String,
    bucket: String,
    size: u64,
    content_type: Option<String>,
    etag: Option<String>,
    metadata: BTreeMap<String, String>,
    checksum: Option<StoredChecksum>,
    last_modified: Option<String>,
    matches: bool,
    mismatches: Vec<String>,
    /// What this check cannot see, in words.
    notes: Vec<String>,
}

/// Why a POST upload may have been replaced since it was made.
const POST_OVERWRITE_NOTE: &str = "POST policies cannot refuse to replace an object (they have \
    no If-None-Match): the same form, replayed before it expires, overwrites this key; \
    this check sees the last write";

/// Why a PUT upload may have been replaced since it was made.
const PUT_OVERWRITE_NOTE: &str = "this tenant's PUT tickets do not sign If-None-Match \
    (prevent_overwrite = false): the same URL, replayed before it expires, overwrites this \
    key; this check sees the last write";

#[derive(Debug, Serialize)]
struct CheckAnswer {
    #[serde(flatten)]
    report: Report,
    webhook: Option<Delivery>,
}

async fn check_object(
    State(state): State<AppState>,
    who: Authorized,
    AppJson(body): AppJson<CheckRequest>,
) -> Reply {
    who.reply("upload_checked", check(&state, &who, body).await)
}

async fn check(state: &AppState, who: &Authorized, body: CheckRequest) -> Handled {
    check_owner(who, &body.key)?;
    let declared_checksum = match &body.checksum {
        Some(declared) => match declared.parse()? {
            (_, Some(checksum)) => Some(checksum),
            (_, None) => {
                return Err(ApiError::InvalidRequest(
                    "checksum.value is required to compare a checksum".to_owned(),
                ));
            }
        },
        None => None,
    };
    tickets::admit_store_call(state, who).await?;
    let head = state
        .store
        .head_object(who.rules.bucket.as_str(), &body.key)
        .await?;
    let declared = Declared {
        size: body.size,
        content_type: body.content_type.as_deref(),
        checksum: declared_checksum.as_ref(),
    };
    let mismatches = policy::audit(&who.rules, &head.object, declared);
    let report = report(who, body.key, head, mismatches)?;
    let result = if report.matches { "match" } else { "mismatch" };
    metrics::counter!("upload_tickets_completion_checks_total", "tenant" => who.rules.id.clone(), "result" => result)
        .increment(1);
    let webhook = match state.webhooks.get(&who.rules.id) {
        Some(hook) => Some(hook.report(state.http.as_ref(), &who.caller, &report).await),
        None => None,
    };
    let key = report.key.clone();
    Ok((
        tickets::json(StatusCode::OK, &CheckAnswer { report, webhook })?,
        key,
    ))
}

/// Only keys under the caller's own prefix, and only keys this service could have
/// made: never with empty, `.` or `..` segments, which a store that maps keys to files
/// might resolve out of the prefix.
fn check_owner(who: &Authorized, key: &str) -> Result<(), ApiError> {
    ObjectKey::new(key).map_err(|e| ApiError::InvalidRequest(format!("key: {e}")))?;
    let odd_segment = key
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..");
    if odd_segment || !key.starts_with(&who.rules.owner_prefix(&who.caller.subject)?) {
        return Err(ApiError::NotOwner);
    }
    Ok(())
}

fn report(
    who: &Authorized,
    key: String,
    head: ObjectHead,
    mismatches: Vec<String>,
) -> Result<Report, ApiError> {
    let last_modified = head.last_modified.map(rfc3339).transpose()?;
    Ok(Report {
        key,
        bucket: who.rules.bucket.to_string(),
        size: head.object.size,
        content_type: head.object.content_type,
        etag: head.etag,
        metadata: head.object.metadata,
        checksum: head.object.checksum,
        last_modified,
        matches: mismatches.is_empty(),
        mismatches,
        notes: overwrite_note(&who.rules)
            .map(str::to_owned)
            .into_iter()
            .collect(),
    })
}

/// Whether a ticket of `rules` could have been replayed over the object.
fn overwrite_note(rules: &TenantRules) -> Option<&'static str> {
    match rules.upload_method {
        UploadMethod::Post => Some(POST_OVERWRITE_NOTE),
        UploadMethod::Put if !rules.prevent_overwrite => Some(PUT_OVERWRITE_NOTE),
        UploadMethod::Put => None,
    }
}
