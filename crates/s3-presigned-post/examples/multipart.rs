//! Presigned URLs for a multipart upload's parts, each pinned to its length, and for
//! ListParts. Starting and completing the upload are calls of your own S3 client (they
//! need no URL of ours); the upload id below is what `CreateMultipartUpload` returned.
//!
//! Run with `cargo run -p s3-presigned-post --example multipart`.

use std::time::{Duration, SystemTime};

use s3_presigned_post::{
    Addressing, BucketName, Credentials, ObjectKey, PresignError, Presigner, Region, UrlRequest,
};

/// 8 MiB parts: S3 wants at least 5 MiB for every part but the last.
const PART_SIZE: u64 = 8 << 20;

fn main() -> Result<(), PresignError> {
    let presigner = Presigner::new(Region::new("eu-central-1")?, Addressing::aws())?;
    let credentials = Credentials::new("AKIAIOSFODNN7EXAMPLE", "wJalr...EXAMPLEKEY", None)?;
    let bucket = BucketName::new("acme-uploads")?;
    let key = ObjectKey::new("videos/user-42/clip.mp4")?;
    let upload_id = "VXBsb2FkIElEIGZvciBlbHZpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA";
    let size: u64 = 20 << 20;

    let now = SystemTime::now();
    let parts = size.div_ceil(PART_SIZE);
    for number in 1..=parts {
        let length = PART_SIZE.min(size - (number - 1) * PART_SIZE);
        let part_number = u16::try_from(number)
            .map_err(|_| PresignError::InvalidUrlRequest("part numbers are 1 to 10000"))?;
        let request = UrlRequest::upload_part(bucket.clone(), key.clone(), upload_id, part_number)?
            // Signed: the store refuses a part of any other length.
            .header("content-length", length.to_string())?
            .expires_in(Duration::from_secs(900))?;
        let url = presigner.presign_url(&credentials, &request, now)?;
        assert!(url.url.contains(&format!("partNumber={number}")));
        println!("part {number} ({length} bytes): {} {}", url.method, url.url);
    }
    let list =
        UrlRequest::list_parts(bucket, key, upload_id)?.expires_in(Duration::from_secs(900))?;
    let list = presigner.presign_url(&credentials, &list, now)?;
    println!("list parts: {} {}", list.method, list.url);
    Ok(())
}
