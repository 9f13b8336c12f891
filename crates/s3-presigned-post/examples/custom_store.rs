//! A POST form for a store of your own (MinIO, Garage, SeaweedFS, LocalStack...): a custom
//! endpoint with path-style addressing, temporary credentials (their session token is
//! sent and pinned), and a size range with a key prefix the browser's filename fills in.
//!
//! Run with `cargo run -p s3-presigned-post --example custom_store`.

use std::time::{Duration, SystemTime};

use s3_presigned_post::{
    Addressing, BucketName, Condition, Credentials, Endpoint, ObjectKey, PostRequest, PresignError,
    Presigner, Region,
};

fn main() -> Result<(), PresignError> {
    let store = Endpoint::parse("http://127.0.0.1:9000")?;
    let presigner = Presigner::new(
        Region::new("us-east-1")?,
        Addressing::custom(store).force_path_style(true),
    )?;
    // What STS, SSO or a container role hands out: the token travels with the form.
    let credentials = Credentials::new(
        "ASIAEXAMPLEEXAMPLE00",
        "example-secret-access-key",
        Some("example-session-token".to_owned()),
    )?;
    let request = PostRequest::new(
        BucketName::new("uploads")?,
        // `${filename}`: the store puts the file part's own name there.
        ObjectKey::new("user-42/${filename}")?,
    )
    .condition(Condition::content_length_range(1, 5 << 20)?)
    .field("Content-Type", "image/jpeg")?
    .field("x-amz-meta-album", "2026")?
    .expires_in(Duration::from_secs(120))?;
    let post = presigner.presign(&credentials, &request, SystemTime::now())?;

    assert_eq!(post.url(), "http://127.0.0.1:9000/uploads");
    assert_eq!(
        post.field("X-Amz-Security-Token"),
        Some("example-session-token")
    );
    // What a front end needs: `{url, fields}`; it sends every field, then the file.
    println!(
        "{}",
        serde_json::to_string_pretty(&post).unwrap_or_default()
    );
    println!("curl:");
    let mut curl = format!("curl -sS {}", post.url());
    for (name, value) in post.fields() {
        curl.push_str(&format!(" -F '{name}={value}'"));
    }
    println!("{curl} -F 'file=@photo.jpg'");
    Ok(())
}
