//! The store's side: does a posted form meet its policy? What a test, a proxy or an
//! S3-compatible store of your own can use to check a form before accepting the file.
//!
//! Run with `cargo run -p s3-presigned-post --example check_form`.

use std::time::{Duration, SystemTime};

use s3_presigned_post::evaluate::{PostedForm, Refusal, evaluate};
use s3_presigned_post::{
    Addressing, BucketName, Condition, Credentials, ObjectKey, PostRequest, Presigner, Region,
};

const SECRET: &str = "wJalr...EXAMPLEKEY";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let presigner = Presigner::new(Region::new("us-east-1")?, Addressing::aws())?;
    let credentials = Credentials::new("AKIAIOSFODNN7EXAMPLE", SECRET, None)?;
    let request = PostRequest::new(
        BucketName::new("acme-uploads")?,
        ObjectKey::new("u/42/a.png")?,
    )
    .condition(Condition::content_length_range(1, 1024)?)
    .field("Content-Type", "image/png")?
    .expires_in(Duration::from_secs(60))?;
    let now = SystemTime::now();
    let post = presigner.presign(&credentials, &request, now)?;
    let fields: Vec<(String, String)> = post
        .fields()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    let secret_for = |id: &str| (id == "AKIAIOSFODNN7EXAMPLE").then(|| SECRET.to_owned());

    // The form as the browser sends it: accepted.
    let form = PostedForm {
        bucket: "acme-uploads",
        fields: &fields,
        filename: "a.png",
        size: 512,
    };
    evaluate(&form, secret_for, now)?;
    println!("512 bytes: accepted");

    // Too large: refused, in words.
    let large = PostedForm { size: 4096, ..form };
    let refusal = evaluate(&large, secret_for, now).err();
    assert!(matches!(refusal, Some(Refusal::SizeOutOfRange { .. })));
    println!(
        "4096 bytes: {}",
        refusal.map(|r| r.to_string()).unwrap_or_default()
    );

    // Another content type: the signed policy pins it.
    let mut other = fields.clone();
    for (name, value) in &mut other {
        if name == "Content-Type" {
            *value = "text/html".to_owned();
        }
    }
    let refusal = evaluate(
        &PostedForm {
            fields: &other,
            ..form
        },
        secret_for,
        now,
    )
    .err();
    assert!(matches!(refusal, Some(Refusal::ConditionFailed { .. })));
    println!(
        "text/html: {}",
        refusal.map(|r| r.to_string()).unwrap_or_default()
    );

    // After the policy's expiration.
    let later = now + Duration::from_secs(61);
    let refusal = evaluate(&form, secret_for, later).err();
    assert!(matches!(refusal, Some(Refusal::Expired(_))));
    println!(
        "a minute later: {}",
        refusal.map(|r| r.to_string()).unwrap_or_default()
    );
    Ok(())
}
