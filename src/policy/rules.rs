//! A tenant's rules: the checked form of its `[tenants.<id>]` settings (`settings.rs`)
//! that every ticket, multipart upload and completion check applies.

use std::time::Duration;

use mime::Mime;

use super::PolicyError;
use super::object::{self, ObjectSetting};
use super::sanitize;
use super::settings::{OnRejectedSetting, TenantSettings, UploadMethod, WhenUnavailable};
use super::template::KeyTemplate;
use super::tenant_id::TenantId;
use super::{MAX_METADATA_BYTES, MAX_OBJECT_SIZE, MAX_PART_SIZE, MIN_PART_SIZE};
use crate::setting::InvalidSetting;
use s3_presigned_post::checksum::{self, ChecksumAlgorithm};
use s3_presigned_post::{BucketName, Validity};

/// What a tenant may use; `None`: unlimited. Counted by `crate::limits`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quotas {
    /// Tickets per subject per minute.
    pub subject_per_minute: Option<u32>,
    /// Tickets per tenant per minute.
    pub tenant_per_minute: Option<u32>,
    /// Bytes per tenant per UTC day: the declared size, else the ticket's maximum.
    pub bytes_per_day: Option<u64>,
    /// Multipart uploads a subject may have open at once.
    pub open_uploads: Option<u32>,
    /// Calls a subject may make per minute that reach the store or the webhook (0: not
    /// limited, which the setting itself refuses).
    pub store_calls_per_minute: u32,
    /// What to do while the counters cannot be reached.
    pub when_unavailable: WhenUnavailable,
}

impl Quotas {
    /// Whether anything is limited (else no counter is touched).
    pub fn any(&self) -> bool {
        self.subject_per_minute.is_some()
            || self.tenant_per_minute.is_some()
            || self.bytes_per_day.is_some()
            || self.open_uploads.is_some()
    }
}

/// A tenant's rules, parsed and checked from its `[tenants.<id>]` settings.
#[derive(Debug, Clone)]
pub struct TenantRules {
    /// The tenant id (the `[tenants.<id>]` name and the value of the tenant claim).
    pub id: TenantId,
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
    pub default_expires_in: Validity,
    /// Longest validity a request may ask for; longer requests are capped to it.
    pub max_expires_in: Validity,
    /// `x-amz-meta-*` names (lower case) the client may set.
    pub metadata_keys: Vec<String>,
    /// Longest metadata value in bytes.
    pub metadata_value_max_bytes: usize,
    /// `attachment` or `inline`: adds a `Content-Disposition` with the original name.
    pub content_disposition: Option<String>,
    /// Settings every object of the tenant is stored with (POST fields, PUT headers).
    pub object_settings: Vec<ObjectSetting>,
    /// Tickets, bytes and open uploads it may use.
    pub quotas: Quotas,
    /// POST forms or PUT URLs for `POST /uploads`.
    pub upload_method: UploadMethod,
    /// Smallest part size of multipart uploads (raised for files that need it).
    pub part_size: u64,
    /// How long a multipart upload may take, from start to completion.
    pub multipart_expires_in: Validity,
    /// Checksum algorithms of which every upload must declare one; empty: optional.
    pub require_checksum: Vec<ChecksumAlgorithm>,
    /// PUT tickets sign `If-None-Match: *` and multipart completions send it: the
    /// store refuses to replace an object (a replayed ticket).
    pub prevent_overwrite: bool,
    /// What happens to an upload its verification refuses.
    pub on_rejected: OnRejected,
    prefix: String,
}

/// What happens to an upload its verification refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnRejected {
    /// Removed.
    Delete,
    /// Moved under this prefix (the key appended).
    Quarantine(String),
    /// Left where it is.
    Keep,
}

/// `on_rejected`, with a quarantine prefix no ticket of the tenant can write to.
fn on_rejected(t: &TenantSettings, tenant_prefix: &str) -> Result<OnRejected, InvalidSetting> {
    Ok(match t.on_rejected {
        OnRejectedSetting::Delete => OnRejected::Delete,
        OnRejectedSetting::Keep => OnRejected::Keep,
        OnRejectedSetting::Quarantine => {
            let prefix = &t.quarantine_prefix;
            let refuse =
                |why: &str| InvalidSetting::new("quarantine_prefix", format!("{prefix:?}: {why}"));
            if prefix.is_empty() || !prefix.ends_with('/') || prefix.starts_with('/') {
                return Err(refuse("a key prefix ending with \"/\""));
            }
            if s3_presigned_post::ObjectKey::new(format!("{prefix}x")).is_err() {
                return Err(refuse("not a valid key prefix"));
            }
            if prefix.starts_with(tenant_prefix) || tenant_prefix.starts_with(prefix.as_str()) {
                return Err(refuse(
                    "inside the keys this tenant's tickets write: a refused upload would stay within reach",
                ));
            }
            OnRejected::Quarantine(prefix.clone())
        }
    })
}

/// The limits of `t`; zero is refused (it would refuse every ticket: leave it out
/// for none).
fn quotas(t: &TenantSettings) -> Result<Quotas, InvalidSetting> {
    let positive = |name: &'static str, value: Option<u64>| match value {
        Some(0) => Err(InvalidSetting::new(
            name,
            "0 would refuse every ticket; leave it out for no limit",
        )),
        _ => Ok(()),
    };
    positive(
        "rate_limit_per_minute",
        t.rate_limit_per_minute.map(u64::from),
    )?;
    positive(
        "tenant_rate_limit_per_minute",
        t.tenant_rate_limit_per_minute.map(u64::from),
    )?;
    positive("bytes_per_day", t.bytes_per_day)?;
    positive(
        "max_open_multipart_uploads",
        t.max_open_multipart_uploads.map(u64::from),
    )?;
    positive(
        "store_calls_per_minute",
        Some(u64::from(t.store_calls_per_minute)),
    )?;
    Ok(Quotas {
        store_calls_per_minute: t.store_calls_per_minute,
        subject_per_minute: t.rate_limit_per_minute,
        tenant_per_minute: t.tenant_rate_limit_per_minute,
        bytes_per_day: t.bytes_per_day,
        open_uploads: t.max_open_multipart_uploads,
        when_unavailable: t.on_limits_unavailable,
    })
}

impl TenantRules {
    /// Checks every rule of tenant `id`; the error names the offending setting
    /// (relative to `[tenants.<id>]`; empty for the id itself) and says what is wrong.
    pub fn from_settings(id: &str, t: &TenantSettings) -> Result<Self, InvalidSetting> {
        let tenant = TenantId::parse(id).map_err(|e| InvalidSetting::new("", e.to_string()))?;
        let bucket = BucketName::new(t.bucket.as_str())
            .map_err(|e| InvalidSetting::new("bucket", e.to_string()))?;
        let template = KeyTemplate::parse(&t.key_template)
            .map_err(|e| InvalidSetting::new("key_template", e.to_string()))?;
        if !t.keys_shared_by_users
            && template.owner_prefix(id, "a") == template.owner_prefix(id, "b")
        {
            return Err(InvalidSetting::new(
                "key_template",
                format!(
                    "{:?} gives every user of the tenant the same key prefix, so any of them could \
                     overwrite and check another's objects: put {{sub}} in a path segment of its own \
                     before {{uuid}} and {{filename}} (the default is \"{{tenant}}/{{sub}}/{{uuid}}/{{filename}}\"), \
                     or set keys_shared_by_users = true if they are meant to share",
                    t.key_template
                ),
            ));
        }
        let (min_size, max_size) = (t.min_size, t.max_size);
        if max_size > MAX_OBJECT_SIZE {
            return Err(InvalidSetting::new(
                "max_size",
                format!("{max_size} is over S3's 5 TiB ({MAX_OBJECT_SIZE} bytes) object limit"),
            ));
        }
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&t.multipart_part_size) {
            return Err(InvalidSetting::new(
                "multipart_part_size",
                format!(
                    "{}: must be 5 MiB ({MIN_PART_SIZE}) to 5 GiB ({MAX_PART_SIZE})",
                    t.multipart_part_size
                ),
            ));
        }
        let multipart_expires_in = Validity::new(Duration::from_secs(t.multipart_expires_in))
            .map_err(|_| {
                InvalidSetting::new(
                    "multipart_expires_in",
                    format!(
                        "{} s: must be 1 s to 7 days (604800 s)",
                        t.multipart_expires_in
                    ),
                )
            })?;
        if min_size > max_size {
            return Err(InvalidSetting::new(
                "min_size",
                format!("{min_size} is above max_size {max_size}"),
            ));
        }
        let content_types = t
            .content_types
            .iter()
            .map(|p| {
                ContentTypePattern::parse(p).ok_or_else(|| {
                    InvalidSetting::new(
                        "content_types",
                        format!("{p:?} is not a type/subtype pattern"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let max_expires = Validity::new(Duration::from_secs(t.max_expires_in)).map_err(|_| {
            InvalidSetting::new(
                "max_expires_in",
                format!("{} s: must be 1 s to 7 days (604800 s)", t.max_expires_in),
            )
        })?;
        let default_expires = Validity::new(Duration::from_secs(t.default_expires_in))
            .ok()
            .filter(|v| *v <= max_expires);
        let Some(default_expires) = default_expires else {
            return Err(InvalidSetting::new(
                "default_expires_in",
                format!(
                    "{} s: must be 1 s to max_expires_in ({} s)",
                    t.default_expires_in, t.max_expires_in
                ),
            ));
        };
        let mut keys = Vec::with_capacity(t.metadata_keys.len());
        for key in &t.metadata_keys {
            let lower = key.to_ascii_lowercase();
            if lower.is_empty()
                || lower.len() > 128
                || !lower
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(InvalidSetting::new(
                    "metadata_keys",
                    format!("{key:?}: use letters, digits, '-' and '_'"),
                ));
            }
            keys.push(lower);
        }
        if t.metadata_value_max_bytes == 0 || t.metadata_value_max_bytes > MAX_METADATA_BYTES {
            return Err(InvalidSetting::new(
                "metadata_value_max_bytes",
                format!("{}: must be 1 to 2048", t.metadata_value_max_bytes),
            ));
        }
        if let Some(d) = &t.content_disposition
            && d != "attachment"
            && d != "inline"
        {
            return Err(InvalidSetting::new(
                "content_disposition",
                format!("{d:?}: use \"attachment\" or \"inline\""),
            ));
        }
        let mut require_checksum = Vec::with_capacity(t.require_checksum.len());
        for name in &t.require_checksum {
            let algorithm = ChecksumAlgorithm::parse(name).ok_or_else(|| {
                InvalidSetting::new(
                    "require_checksum",
                    format!("{name:?} is not one of {}", checksum::names()),
                )
            })?;
            if !require_checksum.contains(&algorithm) {
                require_checksum.push(algorithm);
            }
        }
        let prefix = template.tenant_prefix(id);
        Ok(Self {
            on_rejected: on_rejected(t, &prefix)?,
            prefix,
            id: tenant,
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
            object_settings: object::object_settings(t)?,
            quotas: quotas(t)?,
            upload_method: t.upload_method,
            part_size: t.multipart_part_size,
            multipart_expires_in,
            require_checksum,
            prevent_overwrite: t.prevent_overwrite,
        })
    }

    /// Whether `size` is within the tenant's range: the rule a ticket pins and the
    /// completion check audits.
    pub fn check_size(&self, size: u64) -> Result<(), PolicyError> {
        if size > self.max_size {
            return Err(PolicyError::FileTooLarge {
                size,
                max: self.max_size,
            });
        }
        if size < self.min_size {
            return Err(PolicyError::FileTooSmall {
                size,
                min: self.min_size,
            });
        }
        Ok(())
    }

    /// Whether the tenant allows `mime` (its type and subtype): any when it lists none,
    /// but a type a browser runs (HTML, SVG, XML, script) only when listed by name.
    pub fn allows_type(&self, mime: &Mime) -> bool {
        if super::content::runs_in_browser(mime) {
            return self.names_type(mime.essence_str());
        }
        self.content_types.is_empty() || self.content_types.iter().any(|p| p.matches(mime))
    }

    /// Whether the tenant lists `essence` (`type/subtype`, lower case) by name, not by a
    /// wildcard.
    pub fn names_type(&self, essence: &str) -> bool {
        self.content_types.iter().any(|p| match p {
            ContentTypePattern::Exact(ty, sub) => {
                essence.split_once('/') == Some((ty.as_str(), sub.as_str()))
            }
            _ => false,
        })
    }

    /// Whether `name` (lower case) is a metadata key the tenant lets clients set.
    pub fn allows_metadata_key(&self, name: &str) -> bool {
        self.metadata_keys.iter().any(|key| key == name)
    }

    /// Whether a declared `algorithm` (or none) meets the tenant's checksum rule.
    pub fn check_checksum(&self, algorithm: Option<ChecksumAlgorithm>) -> Result<(), PolicyError> {
        if self.require_checksum.is_empty()
            || algorithm.is_some_and(|a| self.require_checksum.contains(&a))
        {
            return Ok(());
        }
        let wanted = self.require_checksum.iter().map(|a| a.name());
        let wanted = wanted.collect::<Vec<_>>().join(" or ");
        Err(PolicyError::ChecksumRequired(match algorithm {
            None => format!("this tenant requires a declared checksum: {wanted}"),
            Some(given) => format!("this tenant requires a {wanted} checksum, not {given}"),
        }))
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
        Ok(self.template.owner_prefix(self.id.as_str(), &sub))
    }
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
        // The essence keeps a suffix (`svg+xml`) that `subtype()` drops.
        let (ty, sub) = mime.essence_str().split_once('/')?;
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
            Self::Exact(ty, sub) => {
                mime.essence_str().split_once('/') == Some((ty.as_str(), sub.as_str()))
            }
        }
    }
}
