//! The completion check: looks at a finished object under the caller's own prefix, says
//! whether it keeps the tenant's rules and what the ticket declared, and tells the
//! tenant's webhook.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Actor, Deps, UploadError, admit_store_call};
use crate::clock::rfc3339;
use crate::policy::{self, ChecksumRequest, Declared, StoredChecksum, TenantRules, UploadMethod};
use crate::store::ObjectHead;
use crate::webhook::Delivery;
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

/// What a stored object is, and whether it keeps the rules: the answer and the body
/// of the tenant's webhook.
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
}

impl Report {
    /// The object's key.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// A check's report and how its webhook delivery went (`None`: the tenant has none).
#[derive(Debug)]
pub struct Checked {
    /// What the check found.
    pub report: Report,
    /// The tenant's webhook, told.
    pub webhook: Option<Delivery>,
}

/// Why a POST upload may have been replaced since it was made.
const POST_OVERWRITE_NOTE: &str = "POST policies cannot refuse to replace an object (they have \
    no If-None-Match): the same form, replayed before it expires, overwrites this key; \
    this check sees the last write";

/// Why a PUT upload may have been replaced since it was made.
const PUT_OVERWRITE_NOTE: &str = "this tenant's PUT tickets do not sign If-None-Match \
    (prevent_overwrite = false): the same URL, replayed before it expires, overwrites this \
    key; this check sees the last write";

/// Checks the object `request` names against the caller's tenant's rules and what it
/// declares, and reports to the tenant's webhook.
pub async fn check(
    deps: &Deps<'_>,
    who: &Actor,
    request: CheckRequest,
) -> Result<Checked, UploadError> {
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
    let rules = who.rules();
    let head = deps
        .store
        .head_object(rules.bucket.as_str(), &request.key)
        .await?;
    let declared = Declared {
        size: request.size,
        content_type: request.content_type.as_deref(),
        checksum: declared_checksum.as_ref(),
    };
    let mismatches = policy::audit(rules, &head.object, declared);
    let report = report(rules, request.key, head, mismatches)?;
    let result = if report.matches { "match" } else { "mismatch" };
    metrics::counter!("upload_tickets_completion_checks_total", "tenant" => rules.id.to_string(), "result" => result)
        .increment(1);
    let webhook = match &who.tenant.webhook {
        Some(hook) => Some(hook.report(deps.webhook_client, &who.caller, &report).await),
        None => None,
    };
    Ok(Checked { report, webhook })
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
    mismatches: Vec<String>,
) -> Result<Report, UploadError> {
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
        matches: mismatches.is_empty(),
        mismatches,
        notes: overwrite_note(rules)
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
