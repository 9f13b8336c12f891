//! What Uppy 6 sends to `signRequest` and what it is answered: the request as each
//! published 6.x writes it, the fields a newer plugin may add, and the signed answer.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::http::error::ApiError;
use crate::policy::{ChecksumRequest, UploadRequest};
use s3_presigned_post::PresignedPost;

/// What Uppy 6 hands `signRequest`, and the file (the app adds it for the first call).
/// Read from each published 6.x's `s3-client/types.ts` (6.0.0, 6.1.0, 6.3.1).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SignBody {
    pub(super) method: String,
    pub(super) key: String,
    pub(super) upload_id: Option<String>,
    pub(super) part_number: Option<u16>,
    /// Uppy's own wish; the tenant's validity applies.
    #[serde(default)]
    pub(super) expires_in: Option<u64>,
    /// The file's type on PutObject (6.3 on), which Uppy sends as `Content-Type`. Its
    /// presence also tells a plugin that sends the `headers` (6.2 on) and POST `fields`
    /// (6.3 on) a signer answers: 6.3.1 is the first published that does both.
    #[serde(default, deserialize_with = "present")]
    pub(super) content_type: Option<Option<String>>,
    pub(super) file: Option<FileBody>,
    /// Whatever a newer plugin adds: ignored if it cannot change what is signed.
    #[serde(flatten)]
    pub(super) other: BTreeMap<String, serde_json::Value>,
}

/// A field that is there, even as `null` (`Some(None)`), apart from one that is not (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

impl SignBody {
    /// The plugin sends the headers (and fields) the answer names.
    pub(super) fn takes_headers(&self) -> bool {
        self.content_type.is_some()
    }

    /// The type the object is stored with: the request's own, else the file's.
    pub(super) fn object_type(&self) -> Option<String> {
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
pub(super) struct FileBody {
    pub(super) name: String,
    #[serde(rename = "type", default)]
    pub(super) content_type: Option<String>,
    pub(super) size: Option<u64>,
    /// The file's checksum, for the store to verify (sent as a header by 6.2 on).
    #[serde(default)]
    pub(super) checksum: Option<ChecksumRequest>,
}

/// What `signRequest` returns to Uppy: the URL, relative to the service's base URL when
/// it is the service's own, the key when the service picked it, and the headers Uppy
/// must send (6.2 on) with exactly these values.
#[derive(Debug, Serialize)]
pub(super) struct Signed {
    pub(super) url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) key: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(super) headers: BTreeMap<String, String>,
}

impl Signed {
    /// A URL to call with no headers of its own.
    pub(super) fn url(url: String, key: Option<String>) -> Self {
        Self {
            url,
            key,
            headers: BTreeMap::new(),
        }
    }
}

/// A POST form for Uppy's PutObject (6.3 on): `{url, fields, key}`.
#[derive(Debug, Serialize)]
pub(super) struct SignedPost {
    #[serde(flatten)]
    pub(super) post: PresignedPost,
    pub(super) key: String,
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
pub(super) fn check_other_fields(body: &SignBody) -> Result<(), ApiError> {
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

/// The file of a first call, as an upload request.
pub(super) fn upload_request(body: &SignBody) -> Result<UploadRequest, ApiError> {
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
