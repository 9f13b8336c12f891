//! A tenant's settings as the configuration file writes them, with their defaults; the
//! rules (`rules.rs`) are what they become once checked.

use std::collections::BTreeMap;

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
    /// The tenant's users share one key space: set when `key_template` puts no `{sub}`
    /// in a key's prefix on purpose. Then any user may overwrite, check and list (with
    /// the demo) another's objects, so a template like that is refused without it.
    /// Default false.
    #[serde(default)]
    pub keys_shared_by_users: bool,
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
    /// Tickets per minute for the whole tenant; default unlimited.
    pub tenant_rate_limit_per_minute: Option<u32>,
    /// Calls per minute per subject that reach the store or the tenant's webhook
    /// (completions, completion checks, part listings, part batches, aborts): counted
    /// apart from tickets, so that one token cannot flood either; default 120.
    #[serde(default = "default_store_calls_per_minute")]
    pub store_calls_per_minute: u32,
    /// Bytes per UTC day for the whole tenant (declared sizes, else tickets' maxima);
    /// default unlimited.
    pub bytes_per_day: Option<u64>,
    /// Multipart uploads a subject may have open at once; default unlimited.
    pub max_open_multipart_uploads: Option<u32>,
    /// `deny` (default: 503 `limits_unavailable`) or `allow` (uncounted) while the
    /// limits backend cannot be reached.
    #[serde(default)]
    pub on_limits_unavailable: WhenUnavailable,
    /// `post` (default) or `put`: what `POST /uploads` hands out.
    #[serde(default)]
    pub upload_method: UploadMethod,
    /// Multipart part size in bytes; default 16 MiB, 5 MiB to 5 GiB.
    #[serde(default = "default_part_size")]
    pub multipart_part_size: u64,
    /// Seconds a multipart upload may take to complete; default 86400, at most 604800.
    #[serde(default = "default_multipart_expires_in")]
    pub multipart_expires_in: u64,
    /// Checksum algorithms (`SHA256`, `CRC64NVME`, ...) of which every upload must
    /// declare one; default none (a checksum is optional).
    #[serde(default)]
    pub require_checksum: Vec<String>,
    /// Whether PUT tickets and multipart completions refuse to replace an object
    /// (`If-None-Match: *`); default true. POST policies cannot express it.
    #[serde(default = "default_true")]
    pub prevent_overwrite: bool,
    /// The browser origins the tenant's front ends run on (`https://app.example.com`):
    /// what the bucket's CORS rule must allow, which `doctor` checks; default
    /// `server.cors_allowed_origins`.
    #[serde(default)]
    pub front_end_origins: Vec<String>,
    /// Where upload events are POSTed (https, or http on a loopback host).
    pub completion_webhook_url: Option<String>,
    /// The variable holding the webhook's Standard Webhooks secret (`whsec_<base64>`),
    /// or two separated by a space while rotating.
    pub completion_webhook_secret_env: Option<String>,
    /// What happens to an upload its verification refuses: `delete` (default),
    /// `quarantine` (moved under `quarantine_prefix`) or `keep`.
    #[serde(default)]
    pub on_rejected: OnRejectedSetting,
    /// Where refused uploads go with `on_rejected = "quarantine"`; default
    /// `quarantine/`, outside every key the tenant's template makes.
    #[serde(default = "default_quarantine_prefix")]
    pub quarantine_prefix: String,
}

fn default_quarantine_prefix() -> String {
    "quarantine/".to_owned()
}

/// `on_rejected` as written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnRejectedSetting {
    /// Remove the object.
    #[default]
    Delete,
    /// Move it under the quarantine prefix.
    Quarantine,
    /// Leave it (the event still says it was refused).
    Keep,
}

fn default_store_calls_per_minute() -> u32 {
    120
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
fn default_true() -> bool {
    true
}
fn default_multipart_expires_in() -> u64 {
    86_400
}

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

/// `on_limits_unavailable`: refuse (503 `limits_unavailable`) or let tickets through
/// uncounted while the counters cannot be reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WhenUnavailable {
    /// Refuse: a limit that cannot be checked is not kept (the default).
    #[default]
    Deny,
    /// Issue tickets uncounted.
    Allow,
}
