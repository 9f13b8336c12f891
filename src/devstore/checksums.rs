//! Checksums the dev store verifies itself before s3s-fs sees the bytes (s3s-fs 0.14
//! refuses a wrong one only after it has written the file): a PUT's or part's header,
//! a POST form's fields.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::MAX_POST_BYTES;
use crate::s3xml;
use s3_presigned_post::{Checksum, ChecksumAlgorithm, PresignError};

/// A PUT (object or part) that declares a checksum in a header: its algorithm and value.
pub(super) fn declared_header(request: &Request) -> Option<(ChecksumAlgorithm, String)> {
    if request.method() != Method::PUT {
        return None;
    }
    ChecksumAlgorithm::ALL.into_iter().find_map(|algorithm| {
        let value = request.headers().get(algorithm.field())?.to_str().ok()?;
        Some((algorithm, value.to_owned()))
    })
}

/// Passes a PUT on only if its body has the checksum it declares.
pub(super) async fn check_put_checksum(
    declared: (ChecksumAlgorithm, String),
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_POST_BYTES).await else {
        return s3xml::error(
            StatusCode::BAD_REQUEST,
            "EntityTooLarge",
            &format!("the dev store verifies checksums of uploads of up to {MAX_POST_BYTES} bytes"),
        );
    };
    if let Some(mismatch) = mismatch(&declared, &bytes) {
        return mismatch;
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// `BadDigest` unless `bytes` have the declared checksum (a malformed value is
/// `InvalidDigest`).
pub(super) fn mismatch(
    (algorithm, value): &(ChecksumAlgorithm, String),
    bytes: &[u8],
) -> Option<Response> {
    if Checksum::new(*algorithm, value).is_err() {
        let message = format!("{} is not a base64 {}", algorithm.field(), algorithm.name());
        return Some(s3xml::error(
            StatusCode::BAD_REQUEST,
            "InvalidDigest",
            &message,
        ));
    }
    let actual = match digest(*algorithm, bytes) {
        Ok(actual) => actual,
        Err(error) => {
            let message = error.to_string();
            return Some(s3xml::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                &message,
            ));
        }
    };
    (actual.value() != value).then(|| {
        let message = format!(
            "the {} of the bytes is {}, not the declared {value}",
            algorithm.name(),
            actual.value()
        );
        s3xml::error(StatusCode::BAD_REQUEST, "BadDigest", &message)
    })
}

/// The checksum of `bytes` as S3 computes it: the digest, big-endian for CRCs, base64.
/// (Each digest has its algorithm's length: the error cannot happen.)
pub fn digest(algorithm: ChecksumAlgorithm, bytes: &[u8]) -> Result<Checksum, PresignError> {
    use crc_fast::CrcAlgorithm as Crc;
    use sha2::Digest as _;
    let crc32 = |crc| {
        let value = u32::try_from(crc_fast::checksum(crc, bytes)).unwrap_or_default();
        value.to_be_bytes().to_vec()
    };
    let raw = match algorithm {
        ChecksumAlgorithm::Crc32 => crc32(Crc::Crc32IsoHdlc),
        ChecksumAlgorithm::Crc32c => crc32(Crc::Crc32Iscsi),
        ChecksumAlgorithm::Crc64Nvme => crc_fast::checksum(Crc::Crc64Nvme, bytes)
            .to_be_bytes()
            .to_vec(),
        ChecksumAlgorithm::Sha1 => sha1::Sha1::digest(bytes).to_vec(),
        ChecksumAlgorithm::Sha256 => sha2::Sha256::digest(bytes).to_vec(),
    };
    Checksum::from_digest(algorithm, &raw)
}
