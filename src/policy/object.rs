//! Fixed object settings: what a tenant sets on every object it stores (ACL, storage
//! class, encryption, tags, cache control) and what S3 answers a browser's POST.
//!
//! One type, rendered three ways: POST form fields (each pinned by the policy), signed
//! PUT headers, and `CreateMultipartUpload` parameters (in `store::s3`). Every renderer
//! matches on [`ObjectSetting`] exhaustively, so a setting one of them forgets is a
//! compile error, not a refusal at run time.

use std::borrow::Cow;
use std::fmt::Write as _;

use percent_encoding::utf8_percent_encode;

use super::TenantSettings;
use crate::setting::InvalidSetting;
use s3_presigned_post::url::UNRESERVED;

/// One fixed setting of a tenant's objects, checked at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectSetting {
    /// A canned ACL: `private`, `public-read`, ...
    Acl(String),
    /// `Cache-Control` of the stored object.
    CacheControl(String),
    /// `STANDARD`, `STANDARD_IA`, `INTELLIGENT_TIERING`, ...
    StorageClass(String),
    /// `AES256`, `aws:kms` or `aws:kms:dsse`.
    ServerSideEncryption(String),
    /// The KMS key id or ARN, with `aws:kms` encryption.
    SseKmsKeyId(String),
    /// Object tags (1 to 10), as configured.
    Tagging(Vec<(String, String)>),
    /// 200, 201 or 204: S3's answer to the browser's POST. Form-only: a PUT or a
    /// multipart upload has no such thing.
    SuccessActionStatus(u16),
}

impl ObjectSetting {
    /// The POST form field and its value; the presign core pins each with an exact
    /// condition.
    pub fn post_field(&self) -> (&'static str, Cow<'_, str>) {
        match self {
            Self::Acl(v) => ("acl", Cow::Borrowed(v)),
            Self::CacheControl(v) => ("Cache-Control", Cow::Borrowed(v)),
            Self::StorageClass(v) => ("x-amz-storage-class", Cow::Borrowed(v)),
            Self::ServerSideEncryption(v) => ("x-amz-server-side-encryption", Cow::Borrowed(v)),
            Self::SseKmsKeyId(v) => (
                "x-amz-server-side-encryption-aws-kms-key-id",
                Cow::Borrowed(v),
            ),
            Self::Tagging(tags) => ("tagging", Cow::Owned(tagging_xml(tags))),
            Self::SuccessActionStatus(status) => {
                ("success_action_status", Cow::Owned(status.to_string()))
            }
        }
    }

    /// The header a PUT (signed) or a `CreateMultipartUpload` sets; `None` for the
    /// form-only setting.
    pub fn header(&self) -> Option<(&'static str, Cow<'_, str>)> {
        Some(match self {
            Self::Acl(v) => ("x-amz-acl", Cow::Borrowed(v.as_str())),
            Self::CacheControl(v) => ("cache-control", Cow::Borrowed(v.as_str())),
            Self::StorageClass(v) => ("x-amz-storage-class", Cow::Borrowed(v.as_str())),
            Self::ServerSideEncryption(v) => {
                ("x-amz-server-side-encryption", Cow::Borrowed(v.as_str()))
            }
            Self::SseKmsKeyId(v) => (
                "x-amz-server-side-encryption-aws-kms-key-id",
                Cow::Borrowed(v.as_str()),
            ),
            Self::Tagging(tags) => ("x-amz-tagging", Cow::Owned(tagging_query(tags))),
            Self::SuccessActionStatus(_) => return None,
        })
    }
}

const CANNED_ACLS: &[&str] = &[
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
];

/// The fixed settings of `t`, in the order tickets carry them.
pub(super) fn object_settings(t: &TenantSettings) -> Result<Vec<ObjectSetting>, InvalidSetting> {
    let mut settings = Vec::new();
    let plain = |v: &str| !v.is_empty() && v.len() <= 1024 && !v.chars().any(char::is_control);
    if let Some(acl) = &t.acl {
        if !CANNED_ACLS.contains(&acl.as_str()) {
            return Err(InvalidSetting::new(
                "acl",
                format!("{acl:?} is not a canned ACL ({})", CANNED_ACLS.join(", ")),
            ));
        }
        settings.push(ObjectSetting::Acl(acl.clone()));
    }
    if let Some(v) = &t.cache_control {
        if !plain(v) {
            return Err(InvalidSetting::new(
                "cache_control",
                "must be 1 to 1024 characters without controls",
            ));
        }
        settings.push(ObjectSetting::CacheControl(v.clone()));
    }
    if let Some(v) = &t.storage_class {
        if !v.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') || v.is_empty() {
            return Err(InvalidSetting::new(
                "storage_class",
                format!("{v:?}: e.g. STANDARD, STANDARD_IA, INTELLIGENT_TIERING"),
            ));
        }
        settings.push(ObjectSetting::StorageClass(v.clone()));
    }
    match (&t.server_side_encryption, &t.sse_kms_key_id) {
        (Some(sse), kms) => {
            if !["AES256", "aws:kms", "aws:kms:dsse"].contains(&sse.as_str()) {
                return Err(InvalidSetting::new(
                    "server_side_encryption",
                    format!("{sse:?}: use AES256, aws:kms or aws:kms:dsse"),
                ));
            }
            settings.push(ObjectSetting::ServerSideEncryption(sse.clone()));
            if let Some(kms) = kms {
                if !sse.starts_with("aws:kms") || !plain(kms) {
                    return Err(InvalidSetting::new(
                        "sse_kms_key_id",
                        "needs server_side_encryption = \"aws:kms\" and a key id or ARN",
                    ));
                }
                settings.push(ObjectSetting::SseKmsKeyId(kms.clone()));
            }
        }
        (None, Some(_)) => {
            return Err(InvalidSetting::new(
                "sse_kms_key_id",
                "needs server_side_encryption = \"aws:kms\"",
            ));
        }
        (None, None) => {}
    }
    if !t.tagging.is_empty() {
        if t.tagging.len() > 10 {
            return Err(InvalidSetting::new("tagging", "S3 allows at most 10 tags"));
        }
        if let Some((k, _)) = t
            .tagging
            .iter()
            .find(|(k, v)| k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256)
        {
            return Err(InvalidSetting::new(
                "tagging",
                format!("tag {k:?}: keys 1 to 128, values up to 256 characters"),
            ));
        }
        let tags = t.tagging.iter().map(|(k, v)| (k.clone(), v.clone()));
        settings.push(ObjectSetting::Tagging(tags.collect()));
    }
    if let Some(status) = t.success_action_status {
        if ![200, 201, 204].contains(&status) {
            return Err(InvalidSetting::new(
                "success_action_status",
                format!("{status}: use 200, 201 or 204"),
            ));
        }
        settings.push(ObjectSetting::SuccessActionStatus(status));
    }
    Ok(settings)
}

/// Tags as a POST form wants them: S3's `<Tagging>` XML document.
fn tagging_xml(tags: &[(String, String)]) -> String {
    let mut xml = String::from("<Tagging><TagSet>");
    for (k, v) in tags {
        let _ = write!(
            xml,
            "<Tag><Key>{}</Key><Value>{}</Value></Tag>",
            xml_escape(k),
            xml_escape(v)
        );
    }
    xml.push_str("</TagSet></Tagging>");
    xml
}

/// Tags as the `x-amz-tagging` header wants them: a URL query string.
pub fn tagging_query(tags: &[(String, String)]) -> String {
    let mut out = String::new();
    for (k, v) in tags {
        if !out.is_empty() {
            out.push('&');
        }
        out.extend(utf8_percent_encode(k, UNRESERVED));
        out.push('=');
        out.extend(utf8_percent_encode(v, UNRESERVED));
    }
    out
}

/// XML text: the five characters XML reserves, escaped.
pub(crate) fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}
