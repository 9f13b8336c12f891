//! [`ObjectStore`] on `aws-sdk-s3`: the real store, reached with the same credentials
//! cache as the tickets, so a refresh serves both. The SDK's types and errors stay in
//! this file.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{self, ProvideCredentials, future};
use aws_sdk_s3::config::{BehaviorVersion, Region, retry::RetryConfig, timeout::TimeoutConfig};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::create_multipart_upload::builders::CreateMultipartUploadFluentBuilder;
use aws_sdk_s3::operation::head_object::HeadObjectError;
use aws_sdk_s3::types::{
    ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart, ExpirationStatus,
    ObjectCannedAcl, ServerSideEncryption, StorageClass,
};

use super::{
    AbortRule, CompletedObject, Completion, ListedObject, ObjectHead, ObjectStore, PartTag,
    StoreError, StoreFuture, StoredChecksum, StoredPart, UploadRef,
};
use crate::config::S3Settings;
use crate::credentials::CredentialsCache;
use crate::policy::object::tagging_query;
use crate::policy::{ObjectPlan, ObjectSetting, StoredObject};
use s3_presigned_post::ChecksumAlgorithm;

/// Hands the SDK whatever the cache holds now.
#[derive(Debug)]
struct CachedCredentials(Arc<CredentialsCache>);

impl ProvideCredentials for CachedCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let result = match self.0.current(SystemTime::now()) {
            Some(loaded) => Ok(aws_credential_types::Credentials::new(
                loaded.credentials.access_key_id(),
                loaded.credentials.secret_access_key(),
                loaded.credentials.session_token().map(str::to_owned),
                loaded.expires_at,
                "upload-tickets",
            )),
            None => Err(provider::error::CredentialsError::not_loaded(
                "no AWS credentials at hand yet",
            )),
        };
        future::ProvideCredentials::ready(result)
    }
}

/// A client for `[s3]` with bounded timeouts (a slow store must not hold requests
/// beyond the request timeout) and one retry.
fn client(s3: &S3Settings, credentials: Arc<CredentialsCache>) -> aws_sdk_s3::Client {
    let mut config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(s3.region.clone()))
        .credentials_provider(CachedCredentials(credentials))
        .force_path_style(s3.force_path_style)
        .use_dual_stack(s3.dual_stack)
        .use_fips(s3.fips)
        .accelerate(s3.accelerate)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(4))
                .operation_timeout(Duration::from_secs(8))
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(2));
    if let Some(endpoint) = s3.service_endpoint.as_ref().or(s3.endpoint.as_ref()) {
        config = config.endpoint_url(endpoint);
    }
    aws_sdk_s3::Client::from_conf(config.build())
}

/// The store `[s3]` names.
#[derive(Debug)]
pub struct S3Store {
    s3: S3Settings,
    credentials: Arc<CredentialsCache>,
    /// Made on first use: a service that only issues tickets never pays for it (its
    /// HTTP and TLS setup cost memory).
    client: OnceLock<aws_sdk_s3::Client>,
}

impl S3Store {
    /// The store of `s3`, signing with `credentials`.
    pub fn new(s3: &S3Settings, credentials: Arc<CredentialsCache>) -> Self {
        Self {
            s3: s3.clone(),
            credentials,
            client: OnceLock::new(),
        }
    }

    fn client(&self) -> &aws_sdk_s3::Client {
        self.client
            .get_or_init(|| client(&self.s3, Arc::clone(&self.credentials)))
    }
}

impl ObjectStore for S3Store {
    fn create_upload<'a>(
        &'a self,
        bucket: &'a str,
        object: &'a ObjectPlan,
        settings: &'a [ObjectSetting],
    ) -> StoreFuture<'a, String> {
        Box::pin(async move {
            let mut create = self
                .client()
                .create_multipart_upload()
                .bucket(bucket)
                .key(object.key.as_str())
                .set_content_type(object.content_type.clone())
                .set_content_disposition(object.content_disposition.clone());
            for (name, value) in &object.metadata {
                create = create.metadata(name, value);
            }
            for setting in settings {
                create = with_setting(create, setting);
            }
            if let Some(algorithm) = object.checksum_algorithm {
                create = create
                    .checksum_algorithm(sdk_algorithm(algorithm))
                    .checksum_type(checksum_type(algorithm));
            }
            let created = create.send().await.map_err(store_error)?;
            created
                .upload_id()
                .filter(|id| !id.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| StoreError::failed("the store returned no upload id"))
        })
    }

    fn list_parts<'a>(&'a self, upload: UploadRef<'a>) -> StoreFuture<'a, Vec<StoredPart>> {
        Box::pin(async move {
            let mut parts = Vec::new();
            let mut pages = self
                .client()
                .list_parts()
                .bucket(upload.bucket)
                .key(upload.key)
                .upload_id(upload.upload_id)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                for part in page.map_err(store_error)?.parts() {
                    parts.push(StoredPart {
                        number: part
                            .part_number()
                            .and_then(|n| u16::try_from(n).ok())
                            .unwrap_or(0),
                        size: part.size().and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                        etag: part.e_tag().unwrap_or_default().to_owned(),
                        checksum: reported([
                            part.checksum_crc32(),
                            part.checksum_crc32_c(),
                            part.checksum_crc64_nvme(),
                            part.checksum_sha1(),
                            part.checksum_sha256(),
                        ])
                        .map(|(algorithm, value)| StoredChecksum {
                            algorithm,
                            value,
                            kind: None,
                        }),
                    });
                }
            }
            Ok(parts)
        })
    }

    fn complete_upload<'a>(
        &'a self,
        upload: UploadRef<'a>,
        parts: &'a [PartTag],
        completion: Completion<'a>,
    ) -> StoreFuture<'a, CompletedObject> {
        Box::pin(async move {
            let parts = parts.iter().map(|p| {
                let part = CompletedPart::builder()
                    .part_number(i32::from(p.number))
                    .e_tag(&p.etag);
                match (completion.algorithm, &p.checksum) {
                    (Some(algorithm), Some(value)) => with_part_checksum(part, algorithm, value),
                    _ => part,
                }
                .build()
            });
            let mut complete = self
                .client()
                .complete_multipart_upload()
                .bucket(upload.bucket)
                .key(upload.key)
                .upload_id(upload.upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts.collect()))
                        .build(),
                );
            if let Some(checksum) = completion.checksum {
                let value = checksum.value();
                complete = match checksum.algorithm() {
                    ChecksumAlgorithm::Crc32 => complete.checksum_crc32(value),
                    ChecksumAlgorithm::Crc32c => complete.checksum_crc32_c(value),
                    ChecksumAlgorithm::Crc64Nvme => complete.checksum_crc64_nvme(value),
                    ChecksumAlgorithm::Sha1 => complete.checksum_sha1(value),
                    ChecksumAlgorithm::Sha256 => complete.checksum_sha256(value),
                }
                .checksum_type(checksum_type(checksum.algorithm()));
            }
            if completion.if_none_match {
                complete = complete.if_none_match("*");
            }
            let done = complete.send().await.map_err(store_error)?;
            let checksum = reported([
                done.checksum_crc32(),
                done.checksum_crc32_c(),
                done.checksum_crc64_nvme(),
                done.checksum_sha1(),
                done.checksum_sha256(),
            ]);
            Ok(CompletedObject {
                etag: done.e_tag().map(str::to_owned),
                checksum: checksum.map(|(algorithm, value)| StoredChecksum {
                    algorithm,
                    value,
                    kind: done.checksum_type().map(|t| t.as_str().to_owned()),
                }),
            })
        })
    }

    fn abort_upload<'a>(&'a self, upload: UploadRef<'a>) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.client()
                .abort_multipart_upload()
                .bucket(upload.bucket)
                .key(upload.key)
                .upload_id(upload.upload_id)
                .send()
                .await
                .map_err(store_error)?;
            Ok(())
        })
    }

    fn delete_object<'a>(&'a self, bucket: &'a str, key: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.client()
                .delete_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(store_error)?;
            Ok(())
        })
    }

    fn read_start<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        bytes: u64,
    ) -> StoreFuture<'a, Vec<u8>> {
        Box::pin(async move {
            let last = bytes.saturating_sub(1);
            let answer = self
                .client()
                .get_object()
                .bucket(bucket)
                .key(key)
                .range(format!("bytes=0-{last}"))
                .send()
                .await
                .map_err(|error| {
                    let status = error.raw_response().map(|r| r.status().as_u16());
                    if status == Some(404) {
                        StoreError::NoSuchObject
                    } else {
                        StoreError::Failed(Box::new(error))
                    }
                })?;
            // A store that ignores the range sends everything: read no more than asked.
            let limit = usize::try_from(bytes).unwrap_or(usize::MAX);
            let mut body = answer.body;
            let mut start = Vec::new();
            while start.len() < limit {
                match body.try_next().await {
                    Ok(Some(chunk)) => start.extend_from_slice(&chunk),
                    Ok(None) => break,
                    Err(error) => return Err(StoreError::Failed(Box::new(error))),
                }
            }
            start.truncate(limit);
            Ok(start)
        })
    }

    fn copy_object<'a>(
        &'a self,
        bucket: &'a str,
        from: &'a str,
        to: &'a str,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let source = format!(
                "{bucket}/{}",
                percent_encoding::utf8_percent_encode(from, COPY_SOURCE)
            );
            self.client()
                .copy_object()
                .bucket(bucket)
                .key(to)
                .copy_source(source)
                .send()
                .await
                .map_err(store_error)?;
            Ok(())
        })
    }

    fn head_object<'a>(&'a self, bucket: &'a str, key: &'a str) -> StoreFuture<'a, ObjectHead> {
        Box::pin(async move {
            let head = self
                .client()
                .head_object()
                .bucket(bucket)
                .key(key)
                .checksum_mode(ChecksumMode::Enabled)
                .send()
                .await
                .map_err(|error| {
                    let missing =
                        matches!(error.as_service_error(), Some(HeadObjectError::NotFound(_)))
                            || error.raw_response().map(|r| r.status().as_u16()) == Some(404);
                    if missing {
                        StoreError::NoSuchObject
                    } else {
                        StoreError::Failed(Box::new(error))
                    }
                })?;
            let metadata = head.metadata().into_iter().flatten();
            let checksum = reported([
                head.checksum_crc32(),
                head.checksum_crc32_c(),
                head.checksum_crc64_nvme(),
                head.checksum_sha1(),
                head.checksum_sha256(),
            ]);
            let kind = head.checksum_type().map(|t| t.as_str().to_owned());
            Ok(ObjectHead {
                object: StoredObject {
                    size: head
                        .content_length()
                        .and_then(|n| u64::try_from(n).ok())
                        .unwrap_or(0),
                    content_type: head.content_type().map(str::to_owned),
                    metadata: metadata
                        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                        .collect(),
                    checksum: checksum.map(|(algorithm, value)| StoredChecksum {
                        algorithm,
                        value,
                        kind,
                    }),
                },
                etag: head.e_tag().map(str::to_owned),
                last_modified: head
                    .last_modified()
                    .and_then(|t| SystemTime::try_from(*t).ok()),
            })
        })
    }

    fn list_objects<'a>(
        &'a self,
        bucket: &'a str,
        prefix: &'a str,
        limit: u16,
    ) -> StoreFuture<'a, Vec<ListedObject>> {
        Box::pin(async move {
            let listed = self
                .client()
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .max_keys(i32::from(limit))
                .send()
                .await
                .map_err(|error| StoreError::Failed(Box::new(error)))?;
            let mut objects: Vec<ListedObject> = listed
                .contents()
                .iter()
                .filter_map(|object| {
                    Some(ListedObject {
                        key: object.key()?.to_owned(),
                        size: object
                            .size()
                            .and_then(|n| u64::try_from(n).ok())
                            .unwrap_or(0),
                        last_modified: object
                            .last_modified()
                            .and_then(|t| SystemTime::try_from(*t).ok()),
                    })
                })
                .collect();
            // Some stores list in another order than S3's.
            objects.sort_by(|a, b| a.key.cmp(&b.key));
            objects.truncate(usize::from(limit));
            Ok(objects)
        })
    }

    fn abort_rules<'a>(&'a self, bucket: &'a str) -> StoreFuture<'a, Vec<AbortRule>> {
        Box::pin(async move {
            let answered = self
                .client()
                .get_bucket_lifecycle_configuration()
                .bucket(bucket)
                .send()
                .await;
            let configuration = match answered {
                Ok(configuration) => configuration,
                // S3's answer for a bucket without rules: none, rather than an error.
                Err(error) if error.code() == Some("NoSuchLifecycleConfiguration") => {
                    return Ok(Vec::new());
                }
                Err(error) => return Err(store_error(error)),
            };
            Ok(configuration
                .rules()
                .iter()
                .filter(|rule| *rule.status() == ExpirationStatus::Enabled)
                .filter_map(|rule| {
                    let days = rule
                        .abort_incomplete_multipart_upload()?
                        .days_after_initiation()?;
                    // The prefix sits in the filter, in an `And` of it, or (deprecated)
                    // on the rule itself, which older stores still answer with.
                    let filter = rule.filter();
                    #[allow(deprecated)]
                    let prefix = filter
                        .and_then(|f| f.prefix().or_else(|| f.and()?.prefix()))
                        .or_else(|| rule.prefix())
                        .unwrap_or_default();
                    Some(AbortRule {
                        prefix: prefix.to_owned(),
                        days: u32::try_from(days).ok()?,
                    })
                })
                .collect())
        })
    }
}

/// What `x-amz-copy-source` leaves unencoded in a key: the unreserved characters and
/// the `/` between segments.
const COPY_SOURCE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// `setting` as a `CreateMultipartUpload` parameter: the third rendering of
/// [`ObjectSetting`], as exhaustive as the other two.
fn with_setting(
    create: CreateMultipartUploadFluentBuilder,
    setting: &ObjectSetting,
) -> CreateMultipartUploadFluentBuilder {
    match setting {
        ObjectSetting::Acl(v) => create.acl(ObjectCannedAcl::from(v.as_str())),
        ObjectSetting::CacheControl(v) => create.cache_control(v),
        ObjectSetting::StorageClass(v) => create.storage_class(StorageClass::from(v.as_str())),
        ObjectSetting::ServerSideEncryption(v) => {
            create.server_side_encryption(ServerSideEncryption::from(v.as_str()))
        }
        ObjectSetting::SseKmsKeyId(v) => create.ssekms_key_id(v),
        ObjectSetting::Tagging(tags) => create.tagging(tagging_query(tags)),
        // The store's answer to a browser's form: nothing to set on an upload.
        ObjectSetting::SuccessActionStatus(_) => create,
    }
}

fn sdk_algorithm(algorithm: ChecksumAlgorithm) -> aws_sdk_s3::types::ChecksumAlgorithm {
    use aws_sdk_s3::types::ChecksumAlgorithm as Sdk;
    match algorithm {
        ChecksumAlgorithm::Crc32 => Sdk::Crc32,
        ChecksumAlgorithm::Crc32c => Sdk::Crc32C,
        ChecksumAlgorithm::Crc64Nvme => Sdk::Crc64Nvme,
        ChecksumAlgorithm::Sha1 => Sdk::Sha1,
        ChecksumAlgorithm::Sha256 => Sdk::Sha256,
    }
}

/// A whole-object checksum where S3 can keep one (the CRCs), else one of the parts'.
fn checksum_type(algorithm: ChecksumAlgorithm) -> ChecksumType {
    if algorithm.has_full_object_multipart() {
        ChecksumType::FullObject
    } else {
        ChecksumType::Composite
    }
}

fn with_part_checksum(
    part: aws_sdk_s3::types::builders::CompletedPartBuilder,
    algorithm: ChecksumAlgorithm,
    value: &str,
) -> aws_sdk_s3::types::builders::CompletedPartBuilder {
    match algorithm {
        ChecksumAlgorithm::Crc32 => part.checksum_crc32(value),
        ChecksumAlgorithm::Crc32c => part.checksum_crc32_c(value),
        ChecksumAlgorithm::Crc64Nvme => part.checksum_crc64_nvme(value),
        ChecksumAlgorithm::Sha1 => part.checksum_sha1(value),
        ChecksumAlgorithm::Sha256 => part.checksum_sha256(value),
    }
}

/// The one checksum a store reports, given in [`ChecksumAlgorithm::ALL`]'s order.
fn reported(values: [Option<&str>; 5]) -> Option<(ChecksumAlgorithm, String)> {
    ChecksumAlgorithm::ALL
        .into_iter()
        .zip(values)
        .find_map(|(algorithm, value)| value.map(|v| (algorithm, v.to_owned())))
}

/// The store's refusals in the service's terms; anything unexpected is a failure.
fn store_error<E, R>(error: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match error.code() {
        Some("NoSuchUpload") => StoreError::NoSuchUpload,
        Some("InvalidPart" | "InvalidPartOrder" | "EntityTooSmall") => StoreError::PartsRefused(
            error
                .message()
                .unwrap_or("the store refused the part list")
                .to_owned(),
        ),
        // AWS says BadDigest; Garage InvalidDigest; some XAmzContentChecksumMismatch.
        Some("BadDigest" | "InvalidDigest" | "XAmzContentChecksumMismatch") => {
            StoreError::ChecksumMismatch(format!(
                "the store computed another checksum than the declared one: {}",
                error.message().unwrap_or("checksum mismatch")
            ))
        }
        Some("PreconditionFailed") => StoreError::ObjectExists,
        Some("NotImplemented") => StoreError::Unsupported(
            error
                .message()
                .unwrap_or("the store does not implement this request")
                .to_owned(),
        ),
        _ => StoreError::Failed(Box::new(error)),
    }
}
