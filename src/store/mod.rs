//! The one place that talks to the object store: what a ticket cannot do alone.
//!
//! Tickets and part URLs are signed offline by the presign core and need no store.
//! Starting, listing, completing and aborting multipart uploads, and looking at a
//! finished object, do: [`ObjectStore`] names those calls in the service's own terms,
//! [`s3::S3Store`] makes them with `aws-sdk-s3`, and [`memory::MemoryStore`] plays a
//! store in process, so that owner checks, part lists and store faults are tested in
//! milliseconds. Handlers see [`StoreError`], never an SDK type.

pub mod memory;
pub mod s3;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

pub use crate::policy::audit::StoredChecksum;
use crate::policy::{ObjectPlan, ObjectSetting, StoredObject};
use s3_presigned_post::{Checksum, ChecksumAlgorithm};

/// What a store call eventually answers.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// One multipart upload in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadRef<'a> {
    /// Its bucket.
    pub bucket: &'a str,
    /// The key the object will have.
    pub key: &'a str,
    /// The store's id of the upload.
    pub upload_id: &'a str,
}

/// A part the store holds for an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPart {
    /// 1 to 10 000.
    pub number: u16,
    /// Its size in bytes.
    pub size: u64,
    /// The ETag the store answered its upload with (a client resuming completes with it).
    pub etag: String,
    /// Its checksum, if the store lists one.
    pub checksum: Option<StoredChecksum>,
}

/// A part as the client names it at completion: its number and the ETag the store
/// answered its upload with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartTag {
    /// 1 to 10 000.
    pub number: u16,
    /// The ETag, quotes included, as the store sent it.
    pub etag: String,
    /// Its checksum in the upload's algorithm (S3 wants them listed for a composite
    /// checksum).
    pub checksum: Option<String>,
}

impl From<&StoredPart> for PartTag {
    /// The part as the store lists it: what a completion of every stored part names.
    fn from(part: &StoredPart) -> Self {
        Self {
            number: part.number,
            etag: part.etag.clone(),
            checksum: None,
        }
    }
}

/// How to complete an upload beyond its parts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Completion<'a> {
    /// The algorithm the upload was started with.
    pub algorithm: Option<ChecksumAlgorithm>,
    /// The whole object's checksum (full-object algorithms), which the store verifies.
    pub checksum: Option<&'a Checksum>,
    /// Refuse if the key already holds an object (`If-None-Match: *`).
    pub if_none_match: bool,
}

/// What a completed upload is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompletedObject {
    /// Its ETag.
    pub etag: Option<String>,
    /// Its checksum, as the store reports it.
    pub checksum: Option<StoredChecksum>,
}

/// What the store says about a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    /// Size, type and metadata: what the rules judge.
    pub object: StoredObject,
    /// Its ETag.
    pub etag: Option<String>,
    /// When it was last written.
    pub last_modified: Option<SystemTime>,
}

/// An object as a bucket listing names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    /// Its key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written.
    pub last_modified: Option<SystemTime>,
}

/// A bucket lifecycle rule that aborts incomplete multipart uploads: abandoned parts are
/// stored, and billed, until something aborts them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbortRule {
    /// The keys it applies to (empty: the whole bucket).
    pub prefix: String,
    /// Days after an upload starts that the store aborts it.
    pub days: u32,
}

/// Why a store call failed, in the terms the API answers with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The upload id is unknown: completed, aborted or expired.
    #[error("no such multipart upload")]
    NoSuchUpload,
    /// Nothing is stored under the key.
    #[error("no object under this key")]
    NoSuchObject,
    /// The store refused the part list (a missing part, a wrong ETag, a part too small).
    #[error("{0}")]
    PartsRefused(String),
    /// The store computed another checksum than the one declared.
    #[error("{0}")]
    ChecksumMismatch(String),
    /// The key holds an object and the call asked not to replace it.
    #[error("an object exists under the key")]
    ObjectExists,
    /// The store does not implement what was asked (its words).
    #[error("{0}")]
    Unsupported(String),
    /// Anything else: the store is down, slow, or answered what it should not. The
    /// cause is for the log only.
    #[error("the object store failed")]
    Failed(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// A failure with a cause in words.
    pub fn failed(reason: impl Into<String>) -> Self {
        Self::Failed(reason.into().into())
    }
}

/// The store calls the service makes. Implementations bound every call in time: a
/// slow store must not hold a request beyond its timeout.
pub trait ObjectStore: Send + Sync + fmt::Debug {
    /// Starts a multipart upload of `object` in `bucket`, stored with `settings`;
    /// answers the upload id.
    fn create_upload<'a>(
        &'a self,
        bucket: &'a str,
        object: &'a ObjectPlan,
        settings: &'a [ObjectSetting],
    ) -> StoreFuture<'a, String>;

    /// Every part the store holds for `upload`, in part order.
    fn list_parts<'a>(&'a self, upload: UploadRef<'a>) -> StoreFuture<'a, Vec<StoredPart>>;

    /// Completes `upload` from `parts` (all of them, in order) as `completion` says.
    fn complete_upload<'a>(
        &'a self,
        upload: UploadRef<'a>,
        parts: &'a [PartTag],
        completion: Completion<'a>,
    ) -> StoreFuture<'a, CompletedObject>;

    /// Aborts `upload`: the store drops its parts.
    fn abort_upload<'a>(&'a self, upload: UploadRef<'a>) -> StoreFuture<'a, ()>;

    /// Removes the object under `key` in `bucket` (nothing there is no error).
    fn delete_object<'a>(&'a self, bucket: &'a str, key: &'a str) -> StoreFuture<'a, ()>;

    /// Looks at the object under `key` in `bucket`, with its checksum.
    fn head_object<'a>(&'a self, bucket: &'a str, key: &'a str) -> StoreFuture<'a, ObjectHead>;

    /// The first `bytes` bytes (or fewer, if it is smaller) of the non-empty object under
    /// `key` in `bucket`: one ranged GET.
    fn read_start<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        bytes: u64,
    ) -> StoreFuture<'a, Vec<u8>>;

    /// Copies the object under `from` to `to`, in `bucket`.
    fn copy_object<'a>(
        &'a self,
        bucket: &'a str,
        from: &'a str,
        to: &'a str,
    ) -> StoreFuture<'a, ()>;

    /// The first `limit` objects in `bucket` whose keys start with `prefix`, in key order.
    fn list_objects<'a>(
        &'a self,
        bucket: &'a str,
        prefix: &'a str,
        limit: u16,
    ) -> StoreFuture<'a, Vec<ListedObject>>;

    /// The enabled lifecycle rules of `bucket` that abort incomplete multipart uploads
    /// (none when the bucket has no lifecycle configuration).
    fn abort_rules<'a>(&'a self, bucket: &'a str) -> StoreFuture<'a, Vec<AbortRule>>;
}
