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

pub mod audit;
pub mod content;
pub mod multipart;
pub mod object;
pub mod request;
pub mod rules;
pub mod sanitize;
pub mod settings;
pub mod template;
pub mod tenant_id;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use mime::Mime;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

pub use audit::{Declared, StoredChecksum, StoredObject, audit};
pub use multipart::{MultipartPlan, client_multipart_plan, multipart_plan};
pub use object::ObjectSetting;
#[cfg(feature = "service")]
pub(crate) use object::xml_escape;
pub use request::{ChecksumRequest, PolicyError, UploadRequest};
pub use rules::{ContentTypePattern, OnRejected, Quotas, TenantRules};
use s3_presigned_post::{
    Checksum, ChecksumAlgorithm, Condition, MAX_POST_OBJECT_SIZE, ObjectKey, PostRequest,
    UrlRequest, UtcSecond, Validity,
};
pub use settings::{OnRejectedSetting, TenantSettings, UploadMethod, WhenUnavailable};
use template::{Placeholder, TemplateValues};
pub use tenant_id::TenantId;

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
pub const MAX_PARTS: u16 = 10_000;

/// What the rules decided for one object, whatever the upload method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectPlan {
    /// The object key.
    pub key: ObjectKey,
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
    pub expires_in: Validity,
    /// The declared checksum's algorithm, if any.
    pub checksum_algorithm: Option<ChecksumAlgorithm>,
    /// The declared checksum of the whole file, if its value was given.
    pub checksum: Option<Checksum>,
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
        let fixed = rules
            .object_settings
            .iter()
            .filter_map(ObjectSetting::header);
        headers.extend(fixed.map(|(name, value)| (name.to_owned(), value.into_owned())));
        headers
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
    let (checksum_algorithm, checksum) = match &request.checksum {
        Some(declared) => declared.parse().map(|(a, c)| (Some(a), c))?,
        None => (None, None),
    };
    rules.check_checksum(checksum_algorithm)?;
    let expires_in = match request.expires_in {
        Some(0) => return Err(PolicyError::InvalidExpiry),
        // Anything longer than the tenant's maximum is capped to it (and so to 7 days).
        Some(seconds) => rules
            .max_expires_in
            .at_most(Duration::from_secs(seconds))
            .ok_or(PolicyError::InvalidExpiry)?,
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
        tenant: rules.id.as_str(),
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
        key: ObjectKey::new(key)?,
        content_type,
        metadata,
        content_disposition,
        min_size,
        max_size,
        expires_in,
        checksum_algorithm,
        checksum,
    })
}

/// A ticket to sign, and what the response reports about it.
#[derive(Debug, Clone)]
pub struct TicketPlan {
    /// What the presign core signs.
    pub request: PostRequest,
    /// The object: key, size bounds, what was declared.
    pub object: ObjectPlan,
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
    let mut post = PostRequest::new(rules.bucket.clone(), object.key.clone())
        .condition(Condition::content_length_range(
            object.min_size,
            object.max_size,
        )?)
        .with_validity(object.expires_in);
    if let Some(content_type) = &object.content_type {
        post = post.field("Content-Type", content_type.as_str())?;
    }
    for (name, value) in &object.metadata {
        post = post.field(&format!("x-amz-meta-{name}"), value.as_str())?;
    }
    if let Some(disposition) = &object.content_disposition {
        post = post.field("Content-Disposition", disposition.as_str())?;
    }
    for setting in &rules.object_settings {
        let (name, value) = setting.post_field();
        post = post.field(name, value)?;
    }
    if let Some(checksum) = object.checksum {
        post = post.checksum(checksum)?;
    }
    Ok(TicketPlan {
        request: post,
        object,
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
    if object.checksum_algorithm.is_some() && object.checksum.is_none() {
        return Err(PolicyError::ChecksumInvalid(
            "checksum.value is required: a single-request upload declares the file's checksum up front"
                .to_owned(),
        ));
    }
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
    // A PUT sends metadata as headers, and SigV4 signs only printable ASCII there (S3's
    // REST rule for user metadata too); a POST form carries any UTF-8.
    if let Some((key, _)) = object
        .metadata
        .iter()
        .find(|(_, v)| !s3_presigned_post::url::is_signable_header_value(v))
    {
        return Err(PolicyError::MetadataNotAllowed(format!(
            "metadata {key:?}: this tenant's PUT tickets send it as a header, which takes printable ASCII only"
        )));
    }
    let mut put = UrlRequest::put_object(rules.bucket.clone(), object.key.clone())?
        .with_validity(object.expires_in)
        .header("content-length", size.to_string())?;
    for (name, value) in object.headers(rules) {
        put = put.header(&name, value)?;
    }
    if let Some(checksum) = &object.checksum {
        put = put.checksum(checksum)?;
    }
    if rules.prevent_overwrite {
        // The store refuses the PUT if the key holds an object: a replayed URL cannot
        // replace what was checked after the first upload.
        put = put.header("if-none-match", "*")?;
    }
    Ok(PutPlan {
        request: put,
        object,
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
    if !rules.allows_type(&mime) {
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
        Some(size) => rules.check_size(size).map(|()| (size, size)),
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
        if !rules.allows_metadata_key(&lower) {
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
        // Metadata travels as `x-amz-meta-*` headers, which HTTP trims: a value with
        // spaces at either end could not be sent as signed (PUT, parts) nor read back.
        if value.trim_matches([' ', '\t']) != value {
            return Err(PolicyError::MetadataNotAllowed(format!(
                "metadata {key:?} starts or ends with a space, which HTTP headers drop"
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

/// What RFC 5987 keeps unencoded in `filename*` (its `attr-char`).
const ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

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
    let encoded = utf8_percent_encode(filename, ATTR_CHAR);
    format!("{disposition}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod integrity_tests;
#[cfg(test)]
mod tests;
