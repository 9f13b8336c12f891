//! The completion check: the client says its upload is done. The object under the
//! caller's own prefix is found ([`found::settle`]): verified against its tickets, the
//! tenant's rules and what the client declares, acted on and reported (once: a second
//! call, or the sweeper later, reports nothing again), and the report answered.

use std::collections::BTreeMap;

use serde::Serialize;

use super::found::{self, Action, FoundBy, Outcome, Verdict};
use super::{Actor, Deps, UploadError, admit_store_call};
use crate::clock::rfc3339;
use crate::limits::LimitError;
use crate::policy::{ChecksumRequest, Declared, StoredChecksum, TenantRules, UploadMethod};
use crate::store::{ObjectHead, StoreError};
use crate::telemetry::traces::await_in_span;
use s3_presigned_post::ObjectKey;

/// What the caller asks to have checked: the key, and what its ticket declared.
#[derive(Debug, Clone, Default)]
pub struct CheckRequest {
    /// The object's key (under the caller's own prefix).
    pub key: String,
    /// The size the ticket was for, if it is to be compared.
    pub size: Option<u64>,
    /// The content type the ticket was for, if it is to be compared.
    pub content_type: Option<String>,
    /// The checksum the ticket declared, if it is to be compared.
    pub checksum: Option<ChecksumRequest>,
}

/// What a stored object is, whether it keeps the rules, and what became of it.
#[derive(Debug, Serialize)]
pub struct Report {
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
    /// What was done with the object (a refused one: deleted, quarantined or kept).
    #[serde(flatten)]
    action: Action,
    /// Whether this call reported the upload (false: it was reported before, by
    /// another call, a multipart completion or the sweeper, or never recorded).
    reported: bool,
    /// The event queued for the tenant's webhook, if any.
    event_id: Option<String>,
}

impl Report {
    /// The object's key.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// Why a POST upload may have been replaced since it was made.
const POST_OVERWRITE_NOTE: &str = "POST policies cannot refuse to replace an object (they have \
    no If-None-Match): the same form, replayed before it expires, overwrites this key; \
    this check sees the last write";

/// Why a PUT upload may have been replaced since it was made.
const PUT_OVERWRITE_NOTE: &str = "this tenant's PUT tickets do not sign If-None-Match \
    (prevent_overwrite = false): the same URL, replayed before it expires, overwrites this \
    key; this check sees the last write";

/// Checks the object `request` names against its tickets, the caller's tenant's rules
/// and what the request declares, and reports it if nobody has yet.
pub async fn check(
    deps: &Deps<'_>,
    who: &Actor,
    request: CheckRequest,
) -> Result<Report, UploadError> {
    check_owner(who, &request.key)?;
    let declared_checksum = match &request.checksum {
        Some(declared) => match declared.parse()? {
            (_, Some(checksum)) => Some(checksum),
            (_, None) => {
                return Err(UploadError::InvalidRequest(
                    "checksum.value is required to compare a checksum".to_owned(),
                ));
            }
        },
        None => None,
    };
    admit_store_call(deps, who).await?;
    let tickets = deps
        .limits
        .tickets_of(who.tenant.id(), &request.key)
        .await
        .map_err(LimitError::Unavailable)?;
    let declared = Declared {
        size: request.size,
        content_type: request.content_type.as_deref(),
        checksum: declared_checksum.as_ref(),
    };
    let outcome = await_in_span!(
        found::settle(
            deps,
            &who.tenant,
            &request.key,
            &tickets,
            FoundBy::Client,
            declared,
            who.now,
        ),
        "settle"
    )?;
    let Outcome::Found(head, verdict) = outcome else {
        return Err(StoreError::NoSuchObject.into());
    };
    let rules = who.rules();
    let report = report(rules, request.key, *head, verdict)?;
    let result = if report.matches { "match" } else { "mismatch" };
    metrics::counter!("upload_tickets_completion_checks_total", "tenant" => rules.id.to_string(), "result" => result)
        .increment(1);
    Ok(report)
}

/// Only keys under the caller's own prefix, and only keys this service could have
/// made: never with empty, `.` or `..` segments, which a store that maps keys to files
/// might resolve out of the prefix.
fn check_owner(who: &Actor, key: &str) -> Result<(), UploadError> {
    ObjectKey::new(key).map_err(|e| UploadError::InvalidRequest(format!("key: {e}")))?;
    let odd_segment = key
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..");
    if odd_segment || !key.starts_with(&who.rules().owner_prefix(&who.caller.subject)?) {
        return Err(UploadError::NotOwner);
    }
    Ok(())
}

fn report(
    rules: &TenantRules,
    key: String,
    head: ObjectHead,
    verdict: Verdict,
) -> Result<Report, UploadError> {
    let matches = verdict.accepted();
    let mismatches = verdict.mismatches.into_iter().map(|m| m.words).collect();
    let last_modified = head
        .last_modified
        .map(rfc3339)
        .transpose()
        .map_err(UploadError::internal)?;
    Ok(Report {
        key,
        bucket: rules.bucket.to_string(),
        size: head.object.size,
        content_type: head.object.content_type,
        etag: head.etag,
        metadata: head.object.metadata,
        checksum: head.object.checksum,
        last_modified,
        matches,
        mismatches,
        notes: overwrite_note(rules)
            .map(str::to_owned)
            .into_iter()
            .collect(),
        action: verdict.action,
        reported: verdict.reported,
        event_id: verdict.event_id,
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
