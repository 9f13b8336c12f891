//! Multipart plans: the service's layout (the size declared, a part size that fits it
//! in at most [`MAX_PARTS`] parts) and the client's (Uppy picks its part size; the total
//! is held to the tenant's bounds at completion).

use std::time::SystemTime;

use super::{MAX_PARTS, ObjectPlan, PolicyError, TenantRules, UploadRequest, resolve};

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
    if let Some(algorithm) = object.checksum_algorithm
        && object.checksum.is_some()
        && !algorithm.has_full_object_multipart()
    {
        return Err(PolicyError::ChecksumInvalid(format!(
            "checksum.value: a multipart upload's {algorithm} is verified part by part (the \
             store keeps a checksum of the part checksums), so a whole-file {algorithm} cannot \
             be checked; declare the algorithm alone, or CRC64NVME, CRC32 or CRC32C with a value"
        )));
    }
    if size == 0 {
        return Err(PolicyError::FileTooSmall { size, min: 1 });
    }
    object.expires_in = object.expires_in.min(rules.multipart_expires_in);
    // The tenant's part size, or the smallest whole MiB that fits in 10 000 parts.
    const MIB: u64 = 1024 * 1024;
    let needed = size.div_ceil(u64::from(MAX_PARTS)).div_ceil(MIB) * MIB;
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

/// A multipart upload whose parts the client lays out (Uppy picks its own part size):
/// the size may be left undeclared, and the completion holds the total to the plan's
/// `min_size..=max_size` (the declared size, if there is one).
pub fn client_multipart_plan(
    rules: &TenantRules,
    subject: &str,
    request: &UploadRequest,
    now: SystemTime,
    uuid: &str,
) -> Result<ObjectPlan, PolicyError> {
    if request.size == Some(0) {
        return Err(PolicyError::FileTooSmall { size: 0, min: 1 });
    }
    let mut object = resolve(rules, subject, request, now, uuid)?;
    // S3 completes no upload without a part, and a part of no bytes is no file.
    object.min_size = object.min_size.max(1);
    object.expires_in = object.expires_in.min(rules.multipart_expires_in);
    Ok(object)
}
