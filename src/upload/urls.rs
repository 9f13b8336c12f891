//! The URLs on the store an upload's client uses: its parts' (each pinned to its length
//! where the service laid out the parts, with its checksum where one is given), the
//! `ListParts` of a client that resumes by asking the store, and where the object lands.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;

use super::parts;
use super::{Actor, Deps, UploadError, admit_store_call, checksums, credentials, usable_validity};
use crate::handle::Upload;
use s3_presigned_post::{Checksum, Credentials, UrlRequest, Validity};

/// One signed part URL, and the headers its PUT must carry (a declared checksum; the
/// length travels in the URL's signature).
#[derive(Debug, Serialize)]
pub struct PartUrl {
    /// The part's number.
    pub part_number: u16,
    /// Where to PUT it.
    pub url: String,
    /// Headers to send with exactly these values.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// Signed URLs of parts `numbers` of `upload`, each pinned to its length where the
/// service laid out the parts, with its checksum where one is given; and when they
/// expire.
pub fn part_urls(
    deps: &Deps<'_>,
    credentials: &Credentials,
    upload: &Upload,
    numbers: &[u16],
    checksums: &BTreeMap<u16, Checksum>,
    validity: Validity,
    now: SystemTime,
) -> Result<(Vec<PartUrl>, SystemTime), UploadError> {
    let (bucket, key) = (&upload.bucket, &upload.key);
    let mut parts = Vec::with_capacity(numbers.len());
    let mut expires_at = now + validity.get();
    for &number in numbers {
        let mut request =
            UrlRequest::upload_part(bucket.clone(), key.clone(), &upload.upload_id, number)
                .map(|r| r.with_validity(validity))
                .map_err(UploadError::internal)?;
        // A fixed layout pins each part's length: a part sent again, larger, after its
        // size was checked is refused by the store (the ETag check is the other half).
        if let Some(len) = upload.part_len(number) {
            request = request
                .header("content-length", len.to_string())
                .map_err(UploadError::internal)?;
        }
        if let Some(checksum) = checksums.get(&number) {
            request = request.checksum(checksum).map_err(UploadError::internal)?;
        }
        let signed = deps
            .presigner
            .presign_url(credentials, &request, now)
            .map_err(UploadError::internal)?;
        expires_at = signed.expires_at;
        parts.push(PartUrl {
            part_number: number,
            url: signed.url,
            headers: signed.headers.into_iter().collect(),
        });
    }
    Ok((parts, expires_at))
}

/// Part URLs of `numbers` for the caller's `upload` (until `deadline`), with their
/// checksums where the upload has an algorithm (then every part's is required).
pub async fn sign_parts(
    deps: &Deps<'_>,
    who: &Actor,
    upload: &Upload,
    deadline: SystemTime,
    numbers: &[u16],
    given_checksums: &BTreeMap<String, String>,
) -> Result<(Vec<PartUrl>, SystemTime), UploadError> {
    parts::check_part_numbers(numbers, upload.part_count)?;
    // Up to 100 signatures a call: counted like the calls that reach the store.
    admit_store_call(deps, who).await?;
    let checksums = checksums::for_parts(upload, numbers, given_checksums)?;
    let credentials = credentials(deps, who.now)?;
    let wanted = who.rules().default_expires_in;
    let validity = usable_validity(wanted, &credentials, who.now, Some(deadline))?;
    part_urls(
        deps,
        &credentials.credentials,
        upload,
        numbers,
        &checksums,
        validity,
        who.now,
    )
}

/// Part URLs of `numbers` for an upload whose client asks for them one or a batch at a
/// time without checksums (Uppy), and how long they stay valid. Not counted: Uppy signs
/// each part as it goes, and a batch is counted by its front door.
pub fn client_part_urls(
    deps: &Deps<'_>,
    who: &Actor,
    upload: &Upload,
    deadline: SystemTime,
    numbers: &[u16],
) -> Result<(Vec<PartUrl>, Validity), UploadError> {
    parts::check_part_numbers(numbers, upload.part_count)?;
    if upload.checksum_algorithm.is_some() {
        return Err(UploadError::InvalidRequest(
            "this upload verifies part checksums: sign its parts with POST /uploads/multipart/{handle}/parts".to_owned(),
        ));
    }
    let credentials = credentials(deps, who.now)?;
    let wanted = who.rules().default_expires_in;
    let validity = usable_validity(wanted, &credentials, who.now, Some(deadline))?;
    let (parts, _) = part_urls(
        deps,
        &credentials.credentials,
        upload,
        numbers,
        &BTreeMap::new(),
        validity,
        who.now,
    )?;
    Ok((parts, validity))
}

/// A signed `ListParts` URL of the caller's `upload`, for a client that resumes by asking
/// the store itself (Uppy 6).
pub fn list_parts_url(
    deps: &Deps<'_>,
    who: &Actor,
    upload: &Upload,
    deadline: SystemTime,
) -> Result<String, UploadError> {
    let credentials = credentials(deps, who.now)?;
    let wanted = who.rules().default_expires_in;
    let validity = usable_validity(wanted, &credentials, who.now, Some(deadline))?;
    let (bucket, key) = (upload.bucket.clone(), upload.key.clone());
    let request = UrlRequest::list_parts(bucket, key, &upload.upload_id)
        .map(|r| r.with_validity(validity))
        .map_err(UploadError::internal)?;
    let signed = deps
        .presigner
        .presign_url(&credentials.credentials, &request, who.now)
        .map_err(UploadError::internal)?;
    Ok(signed.url)
}

/// The object's plain URL, as S3's `Location` names it.
pub fn location(deps: &Deps<'_>, upload: &Upload) -> Result<String, UploadError> {
    deps.presigner
        .object_url(&upload.bucket, &upload.key)
        .map_err(UploadError::internal)
}
