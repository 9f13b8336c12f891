//! The checksums of a multipart upload: each part's, signed into its URL and listed at
//! completion, and the whole object's, which the store verifies at completion.

use std::collections::BTreeMap;

use super::UploadError;
use crate::handle::Upload;
use crate::policy::{PolicyError, TenantRules};
use crate::store::{PartTag, StoredPart};
use s3_presigned_post::{Checksum, ChecksumAlgorithm};

/// The part checksums of a `/parts` request, checked: each for a part of the batch,
/// in the upload's algorithm, and all of them when the upload has one.
pub fn for_parts(
    upload: &Upload,
    numbers: &[u16],
    given: &BTreeMap<String, String>,
) -> Result<BTreeMap<u16, Checksum>, UploadError> {
    let invalid = |message: String| UploadError::InvalidRequest(message);
    let Some(algorithm) = upload.checksum_algorithm else {
        return match given.is_empty() {
            true => Ok(BTreeMap::new()),
            false => Err(invalid(
                "checksums: this upload was started without a checksum algorithm".to_owned(),
            )),
        };
    };
    let mut checksums = BTreeMap::new();
    for (number, value) in given {
        let part = number
            .parse::<u16>()
            .ok()
            .filter(|n| numbers.contains(n))
            .ok_or_else(|| invalid(format!("checksums.{number}: not a part of this batch")))?;
        let checksum = Checksum::new(algorithm, value)
            .map_err(|e| invalid(format!("checksums.{number}: {e}")))?;
        checksums.insert(part, checksum);
    }
    if let Some(missing) = numbers.iter().find(|n| !checksums.contains_key(n)) {
        return Err(invalid(format!(
            "checksums.{missing}: this {algorithm} upload's store verifies every part; give each part's {algorithm}"
        )));
    }
    Ok(checksums)
}

/// The whole object's checksum to complete with: declared at the start or now (the
/// same, if both), for algorithms S3 keeps one of; required where the tenant
/// requires a checksum.
pub fn whole(
    rules: &TenantRules,
    upload: &Upload,
    given: Option<&str>,
) -> Result<Option<Checksum>, UploadError> {
    let invalid = |message: String| UploadError::InvalidRequest(message);
    let Some(algorithm) = upload.checksum_algorithm else {
        return match given {
            None => Ok(None),
            Some(_) => Err(invalid(
                "checksum: this upload was started without a checksum algorithm".to_owned(),
            )),
        };
    };
    if !algorithm.has_full_object_multipart() {
        return match given {
            None => Ok(None),
            Some(_) => Err(invalid(format!(
                "checksum: a multipart {algorithm} is verified part by part; there is no whole-object {algorithm} to give"
            ))),
        };
    }
    let value = match (upload.checksum.as_deref(), given) {
        (Some(started), Some(now)) if started != now => {
            return Err(invalid(
                "checksum: differs from the one declared when the upload started".to_owned(),
            ));
        }
        (started, now) => started.or(now),
    };
    match value {
        Some(value) => Checksum::new(algorithm, value)
            .map(Some)
            .map_err(|e| invalid(format!("checksum: {e}"))),
        None if !rules.require_checksum.is_empty() => {
            Err(UploadError::Rules(PolicyError::ChecksumRequired(format!(
                "this tenant requires a checksum: give the whole object's {algorithm} (checksum) to complete"
            ))))
        }
        None => Ok(None),
    }
}

/// A part's checksum as the completion body gives it, checked for the upload's algorithm.
pub fn listed_part(
    value: Option<&str>,
    algorithm: Option<ChecksumAlgorithm>,
    number: u16,
) -> Result<Option<String>, UploadError> {
    match (value, algorithm) {
        (None, _) => Ok(None),
        (Some(value), Some(algorithm)) => Checksum::new(algorithm, value)
            .map(|c| Some(c.value().to_owned()))
            .map_err(|e| UploadError::InvalidRequest(format!("parts.{number}.checksum: {e}"))),
        (Some(_), None) => Err(UploadError::InvalidRequest(
            "parts.checksum: this upload was started without a checksum algorithm".to_owned(),
        )),
    }
}

/// Parts without a checksum in the body get the one the store lists, in the upload's
/// algorithm (in whatever order it lists them: s3s-fs does not sort).
pub fn fill_from_store(
    parts: &mut [PartTag],
    stored: Vec<StoredPart>,
    algorithm: Option<ChecksumAlgorithm>,
) {
    for listed in stored {
        let Some(checksum) = listed.checksum else {
            continue;
        };
        let part = parts.iter_mut().find(|p| p.number == listed.number);
        if let Some(part) = part
            && part.checksum.is_none()
            && Some(checksum.algorithm) == algorithm
        {
            part.checksum = Some(checksum.value);
        }
    }
}
