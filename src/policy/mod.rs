//! Tenant rules: from a verified caller and an upload request to a ticket plan.
//!
//! Pure like the presign core (the clock and the UUID are passed in). This is where the
//! service decides the key, the size range, the content type, the metadata, the fixed
//! fields and the expiry; the presign core then only signs what the plan says.
//!
//! Isolation rests on three things checked here and at start-up: the key comes from the
//! tenant's template, never from the client; every value put into it is sanitised so it
//! cannot add path segments (and the subject is escaped injectively); and tenants that
//! share a bucket have key prefixes that are not prefixes of one another.

pub mod sanitize;
pub mod template;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::num::NonZeroU32;
use std::time::{Duration, SystemTime};

use mime::Mime;

use crate::presign::{
    BucketName, Condition, MAX_EXPIRES_IN, MAX_POST_OBJECT_SIZE, ObjectKey, PostRequest,
    PresignError, UrlRequest, UtcSecond,
};
use template::{KeyTemplate, Placeholder, TemplateValues};

/// Longest tenant id.
pub const MAX_TENANT_ID_LEN: usize = 64;

/// S3's limit for all user metadata of an object (keys and values), in bytes.
pub const MAX_METADATA_BYTES: usize = 2048;

/// S3's largest object: 5 TiB, reachable only by multipart upload.
pub const MAX_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * 1024 * 1024;

/// S3's smallest part (all but the last), and the largest.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// S3's largest part.
pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// S3's most parts in one multipart upload.
pub const MAX_PARTS: u64 = 10_000;

/// How a tenant's single-request tickets upload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UploadMethod {
    /// A browser form POST with a signed policy (a size range, conditions).
    #[default]
    Post,
    /// A presigned PUT URL (exact size and type), for stores without POST uploads.
    Put,
}

/// A tenant's rules, parsed and checked from its `[tenants.<id>]` settings.
#[derive(Debug, Clone)]
pub struct TenantRules {
    /// The tenant id (the `[tenants.<id>]` name and the value of the tenant claim).
    pub id: String,
    /// Where its uploads go.
    pub bucket: BucketName,
    /// How its keys are made.
    pub template: KeyTemplate,
    /// Smallest upload in bytes.
    pub min_size: u64,
    /// Largest upload in bytes (at most 5 TiB; single-request tickets stop at 5 GiB).
    pub max_size: u64,
    /// Allowed content types; empty allows any (and then none is required).
    pub content_types: Vec<ContentTypePattern>,
    /// Validity when the request names none.
    pub default_expires_in: Duration,
    /// Longest validity a request may ask for; longer requests are capped to it.
    pub max_expires_in: Duration,
    /// `x-amz-meta-*` names (lower case) the client may set.
    pub metadata_keys: Vec<String>,
    /// Longest metadata value in bytes.
    pub metadata_value_max_bytes: usize,
    /// `attachment` or `inline`: adds a `Content-Disposition` with the original name.
    pub content_disposition: Option<String>,
    /// Fields every ticket of the tenant carries, each pinned by the policy.
    pub fixed_fields: Vec<(String, String)>,
    /// Tickets per minute per subject, if limited.
    pub rate_limit_per_minute: Option<NonZeroU32>,
    /// POST forms or PUT URLs for `POST /uploads`.
    pub upload_method: UploadMethod,
    /// Smallest part size of multipart uploads (raised for files that need it).
    pub part_size: u64,
    /// How long a multipart upload may take, from start to completion.
    pub multipart_expires_in: Duration,
    /// Object tags, as given.
    pub tags: Vec<(String, String)>,
    prefix: String,
}

/// A tenant's `[tenants.<id>]` settings as written in the configuration file.
///
/// Key names are a public contract (deployments write them); see `config/example.toml`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    /// The bucket uploads go to.
    pub bucket: String,
    /// The key template; default `{tenant}/{sub}/{uuid}/{filename}`.
    #[serde(default = "default_key_template")]
    pub key_template: String,
    /// Smallest upload in bytes; default 0.
    #[serde(default)]
    pub min_size: u64,
    /// Largest upload in bytes, at most 5 TiB (over 5 GiB: multipart only). Required.
    pub max_size: u64,
    /// Allowed media types (`image/*`, `application/pdf`); empty: any.
    #[serde(default)]
    pub content_types: Vec<String>,
    /// Validity in seconds when the request names none; default 300.
    #[serde(default = "default_expires_in")]
    pub default_expires_in: u64,
    /// Longest validity in seconds; default 3600, at most 604800.
    #[serde(default = "max_expires_in")]
    pub max_expires_in: u64,
    /// `x-amz-meta-*` names the client may set; default none.
    #[serde(default)]
    pub metadata_keys: Vec<String>,
    /// Longest metadata value in bytes; default 256.
    #[serde(default = "metadata_value_max_bytes")]
    pub metadata_value_max_bytes: usize,
    /// `attachment` or `inline`: a `Content-Disposition` with the original filename.
    pub content_disposition: Option<String>,
    /// Canned ACL (`private`, `public-read`, ...).
    pub acl: Option<String>,
    /// `Cache-Control` of stored objects.
    pub cache_control: Option<String>,
    /// `x-amz-storage-class` (`STANDARD`, `STANDARD_IA`, ...).
    pub storage_class: Option<String>,
    /// `AES256`, `aws:kms` or `aws:kms:dsse`.
    pub server_side_encryption: Option<String>,
    /// KMS key id or ARN, with `server_side_encryption = "aws:kms"`.
    pub sse_kms_key_id: Option<String>,
    /// Object tags (at most 10).
    #[serde(default)]
    pub tagging: BTreeMap<String, String>,
    /// `success_action_status`: 200, 201 or 204 (S3's default is 204).
    pub success_action_status: Option<u16>,
    /// Tickets per minute per subject; default unlimited.
    pub rate_limit_per_minute: Option<u32>,
    /// `post` (default) or `put`: what `POST /uploads` hands out.
    #[serde(default)]
    pub upload_method: UploadMethod,
    /// Multipart part size in bytes; default 16 MiB, 5 MiB to 5 GiB.
    #[serde(default = "default_part_size")]
    pub multipart_part_size: u64,
    /// Seconds a multipart upload may take to complete; default 86400, at most 604800.
    #[serde(default = "default_multipart_expires_in")]
    pub multipart_expires_in: u64,
    /// Where completion reports are POSTed (https, or http on a loopback host).
    pub completion_webhook_url: Option<String>,
    /// The variable holding the webhook's HMAC secret (at least 32 bytes).
    pub completion_webhook_secret_env: Option<String>,
}

fn default_key_template() -> String {
    "{tenant}/{sub}/{uuid}/{filename}".to_owned()
}
fn default_expires_in() -> u64 {
    300
}
fn max_expires_in() -> u64 {
    3600
}
fn metadata_value_max_bytes() -> usize {
    256
}
fn default_part_size() -> u64 {
    16 * 1024 * 1024
}
fn default_multipart_expires_in() -> u64 {
    86_400
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

impl TenantRules {
    /// Checks every rule of tenant `id`; the error names the offending setting
    /// (relative to `[tenants.<id>]`) and says what is wrong.
    pub fn from_settings(id: &str, t: &TenantSettings) -> Result<Self, (&'static str, String)> {
        if id.is_empty()
            || id.len() > MAX_TENANT_ID_LEN
            || !id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err((
                "",
                format!("tenant id {id:?}: 1 to 64 lower-case letters, digits, '-' or '_'"),
            ));
        }
        let bucket = BucketName::new(t.bucket.as_str()).map_err(|e| ("bucket", e.to_string()))?;
        let template =
            KeyTemplate::parse(&t.key_template).map_err(|e| ("key_template", e.to_string()))?;
        let (min_size, max_size) = (t.min_size, t.max_size);
        if max_size > MAX_OBJECT_SIZE {
            return Err((
                "max_size",
                format!("{max_size} is over S3's 5 TiB ({MAX_OBJECT_SIZE} bytes) object limit"),
            ));
        }
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&t.multipart_part_size) {
            return Err((
                "multipart_part_size",
                format!(
                    "{}: must be 5 MiB ({MIN_PART_SIZE}) to 5 GiB ({MAX_PART_SIZE})",
                    t.multipart_part_size
                ),
            ));
        }
        if t.multipart_expires_in == 0
            || Duration::from_secs(t.multipart_expires_in) > MAX_EXPIRES_IN
        {
            return Err((
                "multipart_expires_in",
                format!(
                    "{} s: must be 1 s to 7 days (604800 s)",
                    t.multipart_expires_in
                ),
            ));
        }
        if min_size > max_size {
            return Err((
                "min_size",
                format!("{min_size} is above max_size {max_size}"),
            ));
        }
        let content_types = t
            .content_types
            .iter()
            .map(|p| {
                ContentTypePattern::parse(p).ok_or((
                    "content_types",
                    format!("{p:?} is not a type/subtype pattern"),
                ))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let max_expires = Duration::from_secs(t.max_expires_in);
        let default_expires = Duration::from_secs(t.default_expires_in);
        if t.max_expires_in == 0 || max_expires > MAX_EXPIRES_IN {
            return Err((
                "max_expires_in",
                format!("{} s: must be 1 s to 7 days (604800 s)", t.max_expires_in),
            ));
        }
        if t.default_expires_in == 0 || default_expires > max_expires {
            return Err((
                "default_expires_in",
                format!(
                    "{} s: must be 1 s to max_expires_in ({} s)",
                    t.default_expires_in, t.max_expires_in
                ),
            ));
        }
        let mut keys = Vec::with_capacity(t.metadata_keys.len());
        for key in &t.metadata_keys {
            let lower = key.to_ascii_lowercase();
            if lower.is_empty()
                || lower.len() > 128
                || !lower
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err((
                    "metadata_keys",
                    format!("{key:?}: use letters, digits, '-' and '_'"),
                ));
            }
            keys.push(lower);
        }
        if t.metadata_value_max_bytes == 0 || t.metadata_value_max_bytes > MAX_METADATA_BYTES {
            return Err((
                "metadata_value_max_bytes",
                format!("{}: must be 1 to 2048", t.metadata_value_max_bytes),
            ));
        }
        if let Some(d) = &t.content_disposition
            && d != "attachment"
            && d != "inline"
        {
            return Err((
                "content_disposition",
                format!("{d:?}: use \"attachment\" or \"inline\""),
            ));
        }
        Ok(Self {
            prefix: template.tenant_prefix(id),
            id: id.to_owned(),
            bucket,
            template,
            min_size,
            max_size,
            content_types,
            default_expires_in: default_expires,
            max_expires_in: max_expires,
            metadata_keys: keys,
            metadata_value_max_bytes: t.metadata_value_max_bytes,
            content_disposition: t.content_disposition.clone(),
            fixed_fields: fixed_fields(t)?,
            rate_limit_per_minute: t.rate_limit_per_minute.and_then(NonZeroU32::new),
            upload_method: t.upload_method,
            part_size: t.multipart_part_size,
            multipart_expires_in: Duration::from_secs(t.multipart_expires_in),
            tags: t
                .tagging
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }

    /// The part every key of this tenant starts with.
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// The part every key of `subject` starts with: up to the last `/` before the
    /// first per-upload placeholder. It names the subject when the template puts
    /// `{sub}` in a whole segment before `{uuid}`, `{date}` and `{filename}` (the
    /// default does); otherwise it is the tenant's prefix, and only the tenant binds.
    pub fn owner_prefix(&self, subject: &str) -> Result<String, PolicyError> {
        let sub = sanitize::escape_subject(subject).ok_or(PolicyError::UnusableSubject)?;
        Ok(self.template.owner_prefix(&self.id, &sub))
    }
}

fn fixed_fields(fixed: &TenantSettings) -> Result<Vec<(String, String)>, (&'static str, String)> {
    let mut fields = Vec::new();
    let plain = |v: &str| !v.is_empty() && v.len() <= 1024 && !v.chars().any(char::is_control);
    if let Some(acl) = &fixed.acl {
        if !CANNED_ACLS.contains(&acl.as_str()) {
            return Err((
                "acl",
                format!("{acl:?} is not a canned ACL ({})", CANNED_ACLS.join(", ")),
            ));
        }
        fields.push(("acl".to_owned(), acl.clone()));
    }
    if let Some(v) = &fixed.cache_control {
        if !plain(v) {
            return Err((
                "cache_control",
                "must be 1 to 1024 characters without controls".to_owned(),
            ));
        }
        fields.push(("Cache-Control".to_owned(), v.clone()));
    }
    if let Some(v) = &fixed.storage_class {
        if !v.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') || v.is_empty() {
            return Err((
                "storage_class",
                format!("{v:?}: e.g. STANDARD, STANDARD_IA, INTELLIGENT_TIERING"),
            ));
        }
        fields.push(("x-amz-storage-class".to_owned(), v.clone()));
    }
    match (&fixed.server_side_encryption, &fixed.sse_kms_key_id) {
        (Some(sse), kms) => {
            if !["AES256", "aws:kms", "aws:kms:dsse"].contains(&sse.as_str()) {
                return Err((
                    "server_side_encryption",
                    format!("{sse:?}: use AES256, aws:kms or aws:kms:dsse"),
                ));
            }
            fields.push(("x-amz-server-side-encryption".to_owned(), sse.clone()));
            if let Some(kms) = kms {
                if !sse.starts_with("aws:kms") || !plain(kms) {
                    return Err((
                        "sse_kms_key_id",
                        "needs server_side_encryption = \"aws:kms\" and a key id or ARN".to_owned(),
                    ));
                }
                fields.push((
                    "x-amz-server-side-encryption-aws-kms-key-id".to_owned(),
                    kms.clone(),
                ));
            }
        }
        (None, Some(_)) => {
            return Err((
                "sse_kms_key_id",
                "needs server_side_encryption = \"aws:kms\"".to_owned(),
            ));
        }
        (None, None) => {}
    }
    if !fixed.tagging.is_empty() {
        if fixed.tagging.len() > 10 {
            return Err(("tagging", "S3 allows at most 10 tags".to_owned()));
        }
        let mut xml = String::from("<Tagging><TagSet>");
        for (k, v) in &fixed.tagging {
            if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
                return Err((
                    "tagging",
                    format!("tag {k:?}: keys 1 to 128, values up to 256 characters"),
                ));
            }
            let _ = write!(
                xml,
                "<Tag><Key>{}</Key><Value>{}</Value></Tag>",
                xml_escape(k),
                xml_escape(v)
            );
        }
        xml.push_str("</TagSet></Tagging>");
        fields.push(("tagging".to_owned(), xml));
    }
    if let Some(status) = fixed.success_action_status {
        if ![200, 201, 204].contains(&status) {
            return Err((
                "success_action_status",
                format!("{status}: use 200, 201 or 204"),
            ));
        }
        fields.push(("success_action_status".to_owned(), status.to_string()));
    }
    Ok(fields)
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// An allowed content type: `type/subtype`, `type/*` or `*/*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentTypePattern {
    /// `*/*`.
    Any,
    /// `type/*`.
    AnySubtype(String),
    /// `type/subtype`.
    Exact(String, String),
}

impl ContentTypePattern {
    /// Parses a pattern (parameters are not allowed in patterns).
    pub fn parse(pattern: &str) -> Option<Self> {
        let mime: Mime = pattern.parse().ok()?;
        if mime.params().next().is_some() {
            return None;
        }
        let (ty, sub) = (mime.type_().as_str(), mime.subtype().as_str());
        Some(match (ty, sub) {
            ("*", "*") => Self::Any,
            ("*", _) => return None,
            (ty, "*") => Self::AnySubtype(ty.to_owned()),
            (ty, sub) => Self::Exact(ty.to_owned(), sub.to_owned()),
        })
    }

    /// Whether `mime` (its type and subtype; parameters do not matter) is allowed.
    pub fn matches(&self, mime: &Mime) -> bool {
        match self {
            Self::Any => true,
            Self::AnySubtype(ty) => mime.type_() == ty.as_str(),
            Self::Exact(ty, sub) => mime.type_() == ty.as_str() && mime.subtype() == sub.as_str(),
        }
    }
}

/// What the client asks for: the body of `POST /uploads`, parsed as is. Unknown fields
/// are refused; in particular a client cannot send a key.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    /// The file's name as the user has it.
    pub filename: String,
    /// Its media type.
    pub content_type: Option<String>,
    /// Its exact size in bytes, if declared.
    pub size: Option<u64>,
    /// `x-amz-meta-*` values by name.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Requested validity in seconds.
    pub expires_in: Option<u64>,
}

/// Why a request is refused by the tenant's rules. Each maps to one API error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// `invalid_filename`.
    #[error("the filename has no usable characters")]
    InvalidFilename,
    /// `content_type_not_allowed`: the tenant restricts types and none was given.
    #[error("content_type is required: this tenant allows only {0}")]
    ContentTypeRequired(String),
    /// `invalid_request`: not a media type.
    #[error("content_type {0:?} is not a media type (type/subtype)")]
    ContentTypeInvalid(String),
    /// `content_type_not_allowed`.
    #[error("content type {given} is not allowed; allowed: {allowed}")]
    ContentTypeNotAllowed {
        /// The type asked for.
        given: String,
        /// The tenant's patterns.
        allowed: String,
    },
    /// `file_too_large`.
    #[error("{size} bytes is over this tenant's maximum of {max} bytes")]
    FileTooLarge {
        /// Declared size.
        size: u64,
        /// Tenant maximum.
        max: u64,
    },
    /// `file_too_small`.
    #[error("{size} bytes is under this tenant's minimum of {min} bytes")]
    FileTooSmall {
        /// Declared size.
        size: u64,
        /// Tenant minimum.
        min: u64,
    },
    /// `metadata_not_allowed`.
    #[error("{0}")]
    MetadataNotAllowed(String),
    /// `invalid_request`: `expires_in` of zero.
    #[error("expires_in must be at least 1 second")]
    InvalidExpiry,
    /// `invalid_request`: this kind of ticket needs the exact size.
    #[error("size is required for {0}")]
    SizeRequired(&'static str),
    /// `file_too_large`: over what one request can upload.
    #[error(
        "{size} bytes is over the 5 GiB a single upload can carry; use POST /uploads/multipart"
    )]
    NeedsMultipart {
        /// Declared size.
        size: u64,
    },
    /// `invalid_token`: the subject cannot name a key segment.
    #[error("the token's subject is empty or too long")]
    UnusableSubject,
    /// The core refused the plan: a configuration the start-up checks did not catch.
    #[error("the ticket could not be signed")]
    Presign(#[from] PresignError),
}

/// What the rules decided for one object, whatever the upload method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectPlan {
    /// The object key.
    pub key: String,
    /// The exact content type to store, if any.
    pub content_type: Option<String>,
    /// `x-amz-meta-*` values by lower-case name.
    pub metadata: BTreeMap<String, String>,
    /// `Content-Disposition`, if the tenant sets one.
    pub content_disposition: Option<String>,
    /// Smallest size allowed.
    pub min_size: u64,
    /// Largest size allowed.
    pub max_size: u64,
    /// Validity of the ticket.
    pub expires_in: Duration,
}

impl ObjectPlan {
    /// The headers a PUT or `CreateMultipartUpload` sets to store the object as a POST
    /// ticket would: type, disposition, metadata and the tenant's fixed settings.
    pub fn headers(&self, rules: &TenantRules) -> Vec<(String, String)> {
        let mut headers = Vec::new();
        if let Some(content_type) = &self.content_type {
            headers.push(("content-type".to_owned(), content_type.clone()));
        }
        if let Some(disposition) = &self.content_disposition {
            headers.push(("content-disposition".to_owned(), disposition.clone()));
        }
        for (name, value) in &self.metadata {
            headers.push((format!("x-amz-meta-{name}"), value.clone()));
        }
        for (name, value) in &rules.fixed_fields {
            match name.as_str() {
                "acl" => headers.push(("x-amz-acl".to_owned(), value.clone())),
                "tagging" => headers.push(("x-amz-tagging".to_owned(), tagging_query(&rules.tags))),
                // A form-only field: S3's answer to the browser's POST.
                "success_action_status" => {}
                other => headers.push((other.to_ascii_lowercase(), value.clone())),
            }
        }
        headers
    }
}

/// Tags as the `x-amz-tagging` header wants them: a URL query string.
fn tagging_query(tags: &[(String, String)]) -> String {
    let mut out = String::new();
    for (k, v) in tags {
        if !out.is_empty() {
            out.push('&');
        }
        percent_encode_into(&mut out, k);
        out.push('=');
        percent_encode_into(&mut out, v);
    }
    out
}

fn percent_encode_into(out: &mut String, text: &str) {
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// Applies the rules shared by every upload method.
pub fn resolve(
    rules: &TenantRules,
    subject: &str,
    request: &UploadRequest,
    now: SystemTime,
    uuid: &str,
) -> Result<ObjectPlan, PolicyError> {
    let sub = sanitize::escape_subject(subject).ok_or(PolicyError::UnusableSubject)?;
    let filename =
        sanitize::sanitize_filename(&request.filename).ok_or(PolicyError::InvalidFilename)?;
    let content_type = content_type(rules, request.content_type.as_deref())?;
    let (min_size, max_size) = sizes(rules, request.size)?;
    let metadata = metadata(rules, &request.metadata)?;
    let expires_in = match request.expires_in {
        Some(0) => return Err(PolicyError::InvalidExpiry),
        Some(seconds) => Duration::from_secs(seconds).min(rules.max_expires_in),
        None => rules.default_expires_in,
    };

    let date = if rules.template.uses(Placeholder::Date) {
        let day = UtcSecond::from_system_time(now)?.iso8601();
        format!("{}/{}/{}", &day[0..4], &day[5..7], &day[8..10])
    } else {
        String::new()
    };
    let ext = sanitize::extension(&filename);
    let key = rules.template.render(&TemplateValues {
        tenant: &rules.id,
        sub: &sub,
        uuid,
        date: &date,
        filename: &filename,
        ext: &ext,
    });
    // Defence in depth: the template guarantees this; a bug here must not cross tenants.
    if !key.starts_with(rules.key_prefix()) {
        return Err(PolicyError::InvalidFilename);
    }
    let content_disposition = rules
        .content_disposition
        .as_deref()
        .map(|disposition| content_disposition(disposition, &filename));
    Ok(ObjectPlan {
        key,
        content_type,
        metadata,
        content_disposition,
        min_size,
        max_size,
        expires_in,
    })
}

/// A ticket to sign, and what the response reports about it.
#[derive(Debug, Clone)]
pub struct TicketPlan {
    /// What the presign core signs.
    pub request: PostRequest,
    /// The object key.
    pub key: String,
    /// Smallest size the policy allows.
    pub min_size: u64,
    /// Largest size the policy allows.
    pub max_size: u64,
}

/// Applies `rules` to `request` from `subject`, as of `now`, with `uuid` for `{uuid}`:
/// a POST ticket.
pub fn plan(
    rules: &TenantRules,
    subject: &str,
    request: &UploadRequest,
    now: SystemTime,
    uuid: &str,
) -> Result<TicketPlan, PolicyError> {
    let object = single_request(rules, subject, request, now, uuid)?;
    let mut post = PostRequest::new(rules.bucket.clone(), ObjectKey::new(object.key.as_str())?)
        .condition(Condition::content_length_range(
            object.min_size,
            object.max_size,
        )?)
        .expires_in(object.expires_in)?;
    if let Some(content_type) = &object.content_type {
        post = post.field("Content-Type", content_type.as_str())?;
    }
    for (name, value) in &object.metadata {
        post = post.field(&format!("x-amz-meta-{name}"), value.as_str())?;
    }
    if let Some(disposition) = &object.content_disposition {
        post = post.field("Content-Disposition", disposition.as_str())?;
    }
    for (name, value) in &rules.fixed_fields {
        post = post.field(name, value.as_str())?;
    }
    Ok(TicketPlan {
        request: post,
        key: object.key,
        min_size: object.min_size,
        max_size: object.max_size,
    })
}

/// The rules for a single-request upload (POST or PUT): at most 5 GiB.
fn single_request(
    rules: &TenantRules,
    subject: &str,
    request: &UploadRequest,
    now: SystemTime,
    uuid: &str,
) -> Result<ObjectPlan, PolicyError> {
    if let Some(size) = request.size
        && size > MAX_POST_OBJECT_SIZE
        && size <= rules.max_size
    {
        return Err(PolicyError::NeedsMultipart { size });
    }
    let mut object = resolve(rules, subject, request, now, uuid)?;
    if object.min_size > MAX_POST_OBJECT_SIZE {
        return Err(PolicyError::NeedsMultipart {
            size: object.min_size,
        });
    }
    object.max_size = object.max_size.min(MAX_POST_OBJECT_SIZE);
    Ok(object)
}

/// A PUT ticket to sign.
#[derive(Debug, Clone)]
pub struct PutPlan {
    /// What the presign core signs.
    pub request: UrlRequest,
    /// The object.
    pub object: ObjectPlan,
}

/// A PUT ticket: the exact size is required, since a URL pins one `Content-Length`.
pub fn put_plan(
    rules: &TenantRules,
    subject: &str,
    request: &UploadRequest,
    now: SystemTime,
    uuid: &str,
) -> Result<PutPlan, PolicyError> {
    let size = request.size.ok_or(PolicyError::SizeRequired(
        "PUT tickets (a URL signs one exact length)",
    ))?;
    let object = single_request(rules, subject, request, now, uuid)?;
    let mut put =
        UrlRequest::put_object(rules.bucket.clone(), ObjectKey::new(object.key.as_str())?)?
            .expires_in(object.expires_in)?
            .header("content-length", size.to_string())?;
    for (name, value) in object.headers(rules) {
        put = put.header(&name, value)?;
    }
    Ok(PutPlan {
        request: put,
        object,
    })
}

/// A multipart upload to start.
#[derive(Debug, Clone)]
pub struct MultipartPlan {
    /// The object.
    pub object: ObjectPlan,
    /// Its exact size.
    pub size: u64,
    /// Every part but the last has this size.
    pub part_size: u64,
    /// How many parts.
    pub part_count: u16,
}

/// A multipart upload: the exact size is required (it fixes the part count, and the
/// completion checks it).
pub fn multipart_plan(
    rules: &TenantRules,
    subject: &str,
    request: &UploadRequest,
    now: SystemTime,
    uuid: &str,
) -> Result<MultipartPlan, PolicyError> {
    let size = request
        .size
        .ok_or(PolicyError::SizeRequired("multipart uploads"))?;
    let mut object = resolve(rules, subject, request, now, uuid)?;
    if size == 0 {
        return Err(PolicyError::FileTooSmall { size, min: 1 });
    }
    object.expires_in = object.expires_in.min(rules.multipart_expires_in);
    // The tenant's part size, or the smallest whole MiB that fits in 10 000 parts.
    const MIB: u64 = 1024 * 1024;
    let needed = size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
    let part_size = rules.part_size.max(needed);
    let part_count =
        u16::try_from(size.div_ceil(part_size)).map_err(|_| PolicyError::FileTooLarge {
            size,
            max: rules.max_size,
        })?;
    Ok(MultipartPlan {
        object,
        size,
        part_size,
        part_count,
    })
}

fn content_type(rules: &TenantRules, given: Option<&str>) -> Result<Option<String>, PolicyError> {
    let allowed = || {
        rules
            .content_types
            .iter()
            .map(|p| match p {
                ContentTypePattern::Any => "*/*".to_owned(),
                ContentTypePattern::AnySubtype(t) => format!("{t}/*"),
                ContentTypePattern::Exact(t, s) => format!("{t}/{s}"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(given) = given else {
        return if rules.content_types.is_empty() {
            Ok(None)
        } else {
            Err(PolicyError::ContentTypeRequired(allowed()))
        };
    };
    let mime: Mime = given
        .parse()
        .map_err(|_| PolicyError::ContentTypeInvalid(given.to_owned()))?;
    if mime.type_() == "*" || mime.subtype() == "*" || given.len() > 255 {
        return Err(PolicyError::ContentTypeInvalid(given.to_owned()));
    }
    if !rules.content_types.is_empty() && !rules.content_types.iter().any(|p| p.matches(&mime)) {
        return Err(PolicyError::ContentTypeNotAllowed {
            given: mime.essence_str().to_owned(),
            allowed: allowed(),
        });
    }
    // The normalised form: lower-case type and subtype, parameters as given.
    Ok(Some(mime.to_string()))
}

fn sizes(rules: &TenantRules, size: Option<u64>) -> Result<(u64, u64), PolicyError> {
    match size {
        None => Ok((rules.min_size, rules.max_size)),
        Some(size) if size > rules.max_size => Err(PolicyError::FileTooLarge {
            size,
            max: rules.max_size,
        }),
        Some(size) if size < rules.min_size => Err(PolicyError::FileTooSmall {
            size,
            min: rules.min_size,
        }),
        Some(size) => Ok((size, size)),
    }
}

fn metadata(
    rules: &TenantRules,
    given: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, PolicyError> {
    let mut out = BTreeMap::new();
    let mut total = 0;
    for (key, value) in given {
        let lower = key.to_ascii_lowercase();
        if !rules.metadata_keys.contains(&lower) {
            return Err(PolicyError::MetadataNotAllowed(
                if rules.metadata_keys.is_empty() {
                    format!("metadata key {key:?} is not allowed: this tenant allows no metadata")
                } else {
                    format!(
                        "metadata key {key:?} is not allowed; allowed: {}",
                        rules.metadata_keys.join(", ")
                    )
                },
            ));
        }
        if value.len() > rules.metadata_value_max_bytes {
            return Err(PolicyError::MetadataNotAllowed(format!(
                "metadata {key:?} is over {} bytes",
                rules.metadata_value_max_bytes
            )));
        }
        if value.chars().any(char::is_control) {
            return Err(PolicyError::MetadataNotAllowed(format!(
                "metadata {key:?} has control characters"
            )));
        }
        if out.insert(lower.clone(), value.clone()).is_some() {
            return Err(PolicyError::MetadataNotAllowed(format!(
                "metadata key {key:?} is given twice (names are case-insensitive)"
            )));
        }
        total += lower.len() + value.len();
    }
    if total > MAX_METADATA_BYTES {
        return Err(PolicyError::MetadataNotAllowed(format!(
            "metadata is {total} bytes; S3 allows {MAX_METADATA_BYTES}"
        )));
    }
    Ok(out)
}

/// `attachment; filename="ascii"; filename*=UTF-8''percent-encoded` (RFC 6266): the
/// original name for browsers, a safe ASCII one for everything else.
fn content_disposition(disposition: &str, filename: &str) -> String {
    let ascii: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::with_capacity(filename.len() * 3);
    for b in filename.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            let _ = write!(encoded, "%{b:02X}");
        }
    }
    format!("{disposition}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests;
