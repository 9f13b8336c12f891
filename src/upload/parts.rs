//! The pure checks of a multipart upload's parts: the numbers a batch may sign, the list
//! a completion names, and what the store holds against what the upload declared.

use std::collections::BTreeSet;

use super::UploadError;
use super::checksums;
use crate::handle::Upload;
pub use crate::policy::MAX_PARTS;
use crate::store::{PartTag, StoredPart};

/// Most part URLs one answer carries; clients ask for the rest in batches.
pub const PART_BATCH: u16 = 100;

/// Longest ETag accepted (S3's are 34 to 42 characters with their quotes).
const MAX_ETAG_BYTES: usize = 64;

/// A part as a client lists it to complete an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientPart {
    /// 1 to 10 000.
    pub number: u16,
    /// The ETag the store answered the part's upload with.
    pub etag: String,
    /// The part's checksum, as the store answered its upload (else the store's list).
    pub checksum: Option<String>,
}

fn parts_invalid(reason: String) -> UploadError {
    UploadError::PartsInvalid(reason)
}

/// A batch of 1 to [`PART_BATCH`] distinct part numbers of an upload of `count` parts.
pub fn check_part_numbers(numbers: &[u16], count: u16) -> Result<(), UploadError> {
    if numbers.is_empty() || numbers.len() > usize::from(PART_BATCH) {
        return Err(UploadError::InvalidRequest(format!(
            "part_numbers: 1 to {PART_BATCH} numbers per request"
        )));
    }
    let unique: BTreeSet<u16> = numbers.iter().copied().collect();
    if unique.len() != numbers.len() {
        return Err(UploadError::InvalidRequest(
            "part_numbers: each number once".to_owned(),
        ));
    }
    if let Some(bad) = numbers.iter().find(|&&n| n == 0 || n > count) {
        return Err(parts_invalid(format!(
            "part {bad} does not exist: this upload has parts 1 to {count}"
        )));
    }
    Ok(())
}

/// A completion's part list: every part, in order, each once, with a plausible ETag
/// (and a well-formed checksum, if given). Where the client lays out the parts: any
/// ascending numbers S3 accepts.
pub fn listed(parts: Vec<ClientPart>, upload: &Upload) -> Result<Vec<PartTag>, UploadError> {
    let numbers: Vec<u16> = parts.iter().map(|p| p.number).collect();
    check_part_order(&numbers, upload)?;
    if parts.iter().any(|p| odd_etag(&p.etag)) {
        return Err(UploadError::InvalidRequest(
            "etag: each part's ETag as the store answered its upload".to_owned(),
        ));
    }
    let algorithm = upload.checksum_algorithm;
    parts
        .into_iter()
        .map(|p| {
            let checksum = checksums::listed_part(p.checksum.as_deref(), algorithm, p.number)?;
            Ok(PartTag {
                number: p.number,
                etag: p.etag,
                checksum,
            })
        })
        .collect()
}

/// Part numbers as a completion lists them: 1 to the part count, in order, each once;
/// where the client lays out the parts, any ascending numbers from 1 to 10 000.
fn check_part_order(numbers: &[u16], upload: &Upload) -> Result<(), UploadError> {
    let expected = usize::from(upload.part_count);
    let fits = match upload.client_parts {
        None => {
            numbers.len() == expected
                && numbers
                    .iter()
                    .enumerate()
                    .all(|(i, &n)| usize::from(n) == i + 1)
        }
        Some(_) => {
            !numbers.is_empty()
                && numbers.first().is_some_and(|&n| n >= 1)
                && numbers.last().is_some_and(|&n| n <= upload.part_count)
                && numbers.windows(2).all(|pair| pair[0] < pair[1])
        }
    };
    match (fits, upload.client_parts) {
        (true, _) => Ok(()),
        (false, None) => Err(parts_invalid(format!(
            "list parts 1 to {expected}, in order, each once"
        ))),
        (false, Some(_)) => Err(parts_invalid(format!(
            "list the uploaded parts in ascending order, each once, numbered 1 to {}",
            upload.part_count
        ))),
    }
}

/// An ETag no store answers with: empty, overlong or with control characters.
fn odd_etag(etag: &str) -> bool {
    etag.is_empty() || etag.len() > MAX_ETAG_BYTES || etag.chars().any(char::is_control)
}

/// The client's part list with the ETags of the store's listing; a part whose ETag is
/// not the listed one changed after the client's upload (or never was), and is refused.
/// A store that lists no ETags (s3s-fs 0.14, the dev store) leaves the client's: the
/// size of the completed object is then the only guard.
pub fn as_listed(parts: Vec<PartTag>, stored: &[StoredPart]) -> Result<Vec<PartTag>, UploadError> {
    parts
        .into_iter()
        .map(|mut part| {
            let Some(held) = stored.iter().find(|s| s.number == part.number) else {
                return Err(not_stored(part.number));
            };
            if held.etag.is_empty() {
                return Ok(part);
            }
            if unquoted(&held.etag) != unquoted(&part.etag) {
                return Err(parts_invalid(format!(
                    "part {} is stored with ETag {}, not {}: it was uploaded again; complete with the ETag of its last upload",
                    part.number, held.etag, part.etag
                )));
            }
            part.etag.clone_from(&held.etag);
            Ok(part)
        })
        .collect()
}

/// Every part the store holds, ascending (s3s-fs lists in no order; S3 completes ascending).
pub fn all_stored(stored: &[StoredPart]) -> Vec<PartTag> {
    let mut all: Vec<PartTag> = stored.iter().map(PartTag::from).collect();
    all.sort_by_key(|p| p.number);
    all
}

fn not_stored(number: u16) -> UploadError {
    parts_invalid(format!(
        "part {number} is not in the store: upload it before completing"
    ))
}

/// An ETag without its quotes (clients pass them on either way; S3 takes both).
fn unquoted(etag: &str) -> &str {
    etag.trim_matches('"')
}

/// The store accepts parts of any size: hold the upload to its declared size here
/// (where the client lays out the parts: every listed part stored, and their total
/// within the upload's bounds). Answers the total.
pub fn check_stored(
    upload: &Upload,
    listed: &[PartTag],
    stored: &[StoredPart],
) -> Result<u64, UploadError> {
    let Some(bounds) = upload.client_parts else {
        let count = stored.len();
        let bytes = stored
            .iter()
            .fold(0u64, |sum, p| sum.saturating_add(p.size));
        let expected = usize::from(upload.part_count);
        if count != expected || bytes != upload.size {
            return Err(parts_invalid(format!(
                "the store holds {count} parts of {bytes} bytes; this upload declared {expected} parts of {} bytes",
                upload.size
            )));
        }
        // The same total from other part sizes is not the layout that was signed.
        if let Some(odd) = stored
            .iter()
            .find(|p| upload.part_len(p.number) != Some(p.size))
        {
            return Err(parts_invalid(format!(
                "part {} holds {} bytes; this upload's parts are {} bytes, the last the rest",
                odd.number, odd.size, upload.part_size
            )));
        }
        return Ok(bytes);
    };
    let mut bytes = 0u64;
    for part in listed {
        let held = stored.iter().find(|s| s.number == part.number);
        let Some(held) = held else {
            return Err(not_stored(part.number));
        };
        bytes = bytes.saturating_add(held.size);
    }
    if upload.size > 0 && bytes != upload.size {
        return Err(parts_invalid(format!(
            "the listed parts hold {bytes} bytes; this upload declared {} bytes",
            upload.size
        )));
    }
    if bytes < bounds.min || bytes > bounds.max {
        return Err(parts_invalid(format!(
            "the listed parts hold {bytes} bytes; this tenant takes {} to {} bytes",
            bounds.min, bounds.max
        )));
    }
    Ok(bytes)
}
