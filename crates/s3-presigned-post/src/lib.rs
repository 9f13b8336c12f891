//! S3 presigned POST in Rust: browser-upload forms whose POST policy is signed with AWS
//! Signature Version 4, plus presigned PUT and multipart part URLs.
//!
//! What `createPresignedPost` of the npm package `@aws-sdk/s3-presigned-post` does, which
//! the AWS SDK for Rust does not (awslabs/aws-sdk-rust#863): a URL and form fields that
//! let a browser upload one file straight to S3 (or MinIO, Garage, SeaweedFS, LocalStack,
//! R2...) under rules the store itself enforces — the key, a size range, the content
//! type, every other field. Byte for byte the same as the npm package for the same
//! inputs and clock (a differential test runs it), and stricter where it lets through
//! tickets S3 would refuse or that are unsafe: see [`PresignError`] for every refusal.
//!
//! No I/O, no clock, no async runtime, no HTTP client: the caller passes the credentials
//! and `now`, so signing is deterministic, testable and cheap (a few microseconds), and
//! usable from any Rust program. Credentials can come from anywhere, the AWS SDK's
//! default chain included: [`Credentials`] converts from the SDK's own credentials
//! (`examples/sdk_config.rs` signs with what an `aws_config::SdkConfig` resolves).
//!
//! # Example: a POST ticket
//! ```
//! use std::time::{Duration, SystemTime};
//! use s3_presigned_post::*;
//!
//! let presigner = Presigner::new(Region::new("eu-west-1")?, Addressing::aws())?;
//! let credentials = Credentials::new("AKIAIOSFODNN7EXAMPLE", "wJalr...EXAMPLEKEY", None)?;
//! let request = PostRequest::new(BucketName::new("acme-uploads")?, ObjectKey::new("u/42/${filename}")?)
//!     .condition(Condition::content_length_range(1, 10 << 20)?)
//!     .field("Content-Type", "image/png")?
//!     .expires_in(Duration::from_secs(300))?;
//! let post = presigner.presign(&credentials, &request, SystemTime::now())?;
//! assert_eq!(post.url(), "https://acme-uploads.s3.eu-west-1.amazonaws.com/");
//! assert_eq!(post.field("Content-Type"), Some("image/png"));
//! // The browser sends every field, then the file last; `serde_json::to_string(&post)`
//! // gives `{"url": ..., "fields": {...}}`, what the npm package returns.
//! # Ok::<(), PresignError>(())
//! ```
//!
//! # Example: a PUT URL
//! A URL cannot carry a size range: it pins the exact value of every header it signs.
//! ```
//! use std::time::{Duration, SystemTime};
//! use s3_presigned_post::*;
//!
//! let presigner = Presigner::new(Region::new("us-east-1")?, Addressing::aws())?;
//! let credentials = Credentials::new("AKIAIOSFODNN7EXAMPLE", "wJalr...EXAMPLEKEY", None)?;
//! let request = UrlRequest::put_object(BucketName::new("acme-uploads")?, ObjectKey::new("u/42/a.png")?)?
//!     .header("content-length", "2048")?
//!     .header("content-type", "image/png")?
//!     .expires_in(Duration::from_secs(300))?;
//! let put = presigner.presign_url(&credentials, &request, SystemTime::now())?;
//! assert!(put.url.starts_with("https://acme-uploads.s3.us-east-1.amazonaws.com/u/42/a.png?"));
//! assert_eq!(put.headers[0], ("content-length".to_owned(), "2048".to_owned()));
//! # Ok::<(), PresignError>(())
//! ```
//!
//! More in `examples/`: a store of your own (path-style endpoint), temporary
//! credentials, multipart part URLs, checking a form against its policy, and signing
//! with the AWS SDK's credentials.
//!
//! # Layout
//! - [`names`]: parsed bucket names, object keys and form field names.
//! - [`validity`]: how long a signature is accepted (1 s to 7 days).
//! - [`checksum`]: declared checksums the store verifies.
//! - [`condition`]: policy conditions and their JSON text.
//! - [`post`]: what a POST ticket signs; [`presigned`]: the signed ticket;
//!   [`presigner`]: the signing itself.
//! - [`document`]: the policy document and its base64 form.
//! - [`signing`]: SigV4 dates, credential scope, signing keys and their cache.
//! - [`url`]: presigned URLs (PUT tickets, multipart parts, ListParts, GET).
//! - [`endpoint`]: regions, partitions and the URL a form is posted to.
//! - [`evaluate`]: the store's side: does a posted form meet its policy?
//! - [`credentials`]: the keys that sign; their secrets never show in `Debug`.

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod checksum;
pub mod condition;
pub mod credentials;
pub mod document;
pub mod endpoint;
pub mod error;
pub mod evaluate;
pub mod names;
pub mod post;
pub mod presigned;
pub mod presigner;
pub mod signing;
pub mod url;
pub mod validity;

use std::time::Duration;

pub use checksum::{Checksum, ChecksumAlgorithm};
pub use condition::{Condition, ExactForm};
pub use credentials::Credentials;
pub use document::{EncodedPolicy, MAX_ENCODED_POLICY_BYTES, PolicyDocument};
pub use endpoint::{Addressing, Endpoint, Partition, Region};
pub use error::PresignError;
pub use names::{BucketName, FieldName, ObjectKey};
pub use post::PostRequest;
pub use presigned::PresignedPost;
pub use presigner::Presigner;
pub use signing::{ALGORITHM, CredentialScope, SigningKey, SigningKeyCache, UtcSecond};
pub use url::{PresignedUrl, UrlRequest};
pub use validity::Validity;

/// Largest object a POST upload may carry: 5 GiB, S3's limit for a single upload.
pub const MAX_POST_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// Longest validity SigV4 allows: 7 days ([`Validity::MAX`]).
pub const MAX_EXPIRES_IN: Duration = Validity::MAX.get();

/// The seed's default validity: one hour ([`Validity::DEFAULT`]).
pub const DEFAULT_EXPIRES_IN: Duration = Validity::DEFAULT.get();

/// Form fields and headers of declared checksums start with this.
pub const CHECKSUM_FIELD_PREFIX: &str = "x-amz-checksum-";
