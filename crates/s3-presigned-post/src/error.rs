//! The one error type of the presign core.

use std::time::Duration;

/// Why a POST ticket could not be built.
///
/// The core knows nothing of HTTP: the service maps these to status codes in one place.
/// Messages name the offending input but never a secret (credentials are only ever
/// described, not echoed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PresignError {
    /// The bucket name breaks S3's naming rules (or is a directory bucket, which POST
    /// uploads do not support).
    #[error("invalid bucket name {name:?}: {reason}")]
    InvalidBucket {
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The object key is empty, too long, or malformed.
    #[error("invalid object key: {reason}")]
    InvalidKey {
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The region is not a valid region name.
    #[error("invalid region {region:?}: {reason}")]
    InvalidRegion {
        /// The region as given.
        region: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The custom endpoint URL cannot be used.
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The addressing options cannot be combined (with each other, the region or the bucket).
    #[error("unsupported addressing: {0}")]
    UnsupportedAddressing(&'static str),
    /// A form field or condition names a field that is not a valid form field name.
    #[error("invalid field name {name:?}: {reason}")]
    InvalidFieldName {
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A form field that the presigner sets itself (`key`, `bucket`, `Policy`, `X-Amz-*`, ...).
    #[error("field {0:?} is set by the presigner and cannot be given")]
    ReservedField(String),
    /// The same form field was given twice (names compare case-insensitively, as S3 does).
    #[error("field {0:?} is given more than once")]
    DuplicateField(String),
    /// A condition is not one of the forms S3 accepts.
    #[error("invalid condition: {0}")]
    InvalidCondition(String),
    /// A `content-length-range` with min above max, or max above S3's 5 GiB POST limit.
    #[error(
        "invalid content-length-range [{min}, {max}]: needs min <= max <= {} bytes",
        crate::MAX_POST_OBJECT_SIZE
    )]
    InvalidContentLengthRange {
        /// Lower bound in bytes.
        min: u64,
        /// Upper bound in bytes.
        max: u64,
    },
    /// Two `content-length-range` conditions with different bounds.
    #[error("more than one content-length-range condition")]
    DuplicateContentLengthRange,
    /// A condition that the ticket's own fields cannot satisfy: S3 would refuse every upload.
    #[error("condition {condition} can never hold: field {field:?} is {value:?}")]
    ConflictingCondition {
        /// The condition, as it would appear in the policy.
        condition: String,
        /// The field it is about.
        field: String,
        /// The value the ticket gives that field.
        value: String,
    },
    /// The expiry is outside what SigV4 allows (1 second to 7 days).
    #[error("expiry must be between 1 second and 7 days, got {0:?}")]
    InvalidExpiry(Duration),
    /// The signing time or the expiration is outside the years 1970 to 9999.
    #[error("the signing time or the expiration is outside the years 1970 to 9999")]
    InvalidTime,
    /// The encoded policy is over S3's limit.
    #[error("the encoded policy would be over {limit} bytes")]
    PolicyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The credentials cannot sign (empty, or an access key id that would break the scope).
    #[error("invalid credentials: {0}")]
    InvalidCredentials(&'static str),
    /// A presigned URL request that S3 could not use (see the message).
    #[error("invalid URL request: {0}")]
    InvalidUrlRequest(&'static str),
    /// A declared checksum that S3 would refuse to compare.
    #[error("invalid {algorithm} checksum: {reason}")]
    InvalidChecksum {
        /// The algorithm it is declared for.
        algorithm: crate::ChecksumAlgorithm,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// `aws-sigv4` refused to sign (a malformed URL or header).
    #[error("signing failed: {0}")]
    Signing(String),
}
