//! What a client asks for, and why the rules refuse it.

use std::collections::BTreeMap;

use s3_presigned_post::{Checksum, ChecksumAlgorithm, PresignError, checksum};

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
    /// The file's checksum, for the store to verify.
    pub checksum: Option<ChecksumRequest>,
}

/// A declared checksum as the client sends it: `{"algorithm": "SHA256", "value": "<base64>"}`.
/// Checked by the rules, so that a bad one is refused naming the field.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChecksumRequest {
    /// `CRC32`, `CRC32C`, `CRC64NVME`, `SHA1` or `SHA256`.
    pub algorithm: String,
    /// The base64 digest of the whole file. Required for POST and PUT tickets; for a
    /// multipart upload it may come at completion instead (the CRCs) or not at all
    /// (SHA-1 and SHA-256, which the store verifies part by part).
    pub value: Option<String>,
}

impl ChecksumRequest {
    /// The algorithm and, if given, the value, checked for form; errors name the field.
    pub fn parse(&self) -> Result<(ChecksumAlgorithm, Option<Checksum>), PolicyError> {
        let algorithm = ChecksumAlgorithm::parse(&self.algorithm).ok_or_else(|| {
            PolicyError::ChecksumInvalid(format!(
                "checksum.algorithm: {:?} is not one of {}",
                self.algorithm,
                checksum::names()
            ))
        })?;
        let value = self.value.as_deref();
        let checksum = value
            .map(|value| Checksum::new(algorithm, value))
            .transpose()
            .map_err(|e| PolicyError::ChecksumInvalid(format!("checksum.value: {e}")))?;
        Ok((algorithm, checksum))
    }
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
    /// `invalid_request`: a checksum of the wrong form, naming the field.
    #[error("{0}")]
    ChecksumInvalid(String),
    /// `checksum_required`: the tenant requires one of its algorithms.
    #[error("{0}")]
    ChecksumRequired(String),
    /// `invalid_token`: the subject cannot name a key segment.
    #[error("the token's subject is empty or too long")]
    UnusableSubject,
    /// The core refused the plan: a configuration the start-up checks did not catch.
    #[error("the ticket could not be signed")]
    Presign(#[from] PresignError),
}
