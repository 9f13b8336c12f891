use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::{
    Addressing, BucketName, Checksum, ChecksumAlgorithm, Condition, Credentials, ObjectKey,
    PostRequest, Presigner,
};

const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_608_000)
}

/// A ticket's fields, as a browser posts them.
fn form_fields(key: &str, token: Option<&str>) -> Vec<(String, String)> {
    let presigner = Presigner::new(Region::new("us-east-1").unwrap(), Addressing::aws()).unwrap();
    let credentials = Credentials::new(KEY_ID, SECRET, token.map(str::to_owned)).unwrap();
    let request = PostRequest::new(
        BucketName::new("acme-uploads").unwrap(),
        ObjectKey::new(key).unwrap(),
    )
    .condition(Condition::content_length_range(10, 100).unwrap())
    .condition(Condition::starts_with("Content-Type", "image/").unwrap())
    .field("Content-Type", "image/png")
    .unwrap()
    .field("x-amz-meta-album", "2026")
    .unwrap()
    .checksum(Checksum::new(ChecksumAlgorithm::Crc32, "FtmpAg==").unwrap())
    .unwrap()
    .expires_in(Duration::from_secs(300))
    .unwrap();
    let post = presigner.presign(&credentials, &request, now()).unwrap();
    post.fields()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

fn check(
    fields: &[(String, String)],
    bucket: &str,
    size: u64,
    at: SystemTime,
) -> Result<(), Refusal> {
    let form = PostedForm {
        bucket,
        fields,
        filename: "photo.png",
        size,
    };
    evaluate(&form, |id| (id == KEY_ID).then(|| SECRET.to_owned()), at)
}

fn set(fields: &mut [(String, String)], name: &str, value: &str) {
    fields.iter_mut().find(|(n, _)| n == name).unwrap().1 = value.to_owned();
}

#[test]
fn a_form_as_the_ticket_says_is_accepted() {
    let fields = form_fields("u/42/a.png", None);
    assert_eq!(check(&fields, "acme-uploads", 50, now()), Ok(()));
    // ${filename} takes the file's name; a session token is just another pinned field.
    let fields = form_fields("u/42/${filename}", Some("FwoGZXIvYXdzEXAMPLE"));
    assert_eq!(check(&fields, "acme-uploads", 10, now()), Ok(()));
    // Names compare case-insensitively; x-ignore- fields are free.
    let mut fields = form_fields("u/42/a.png", None);
    fields[0].0 = "content-type".to_owned();
    fields.push(("x-ignore-tracking".to_owned(), "1".to_owned()));
    assert_eq!(check(&fields, "acme-uploads", 100, now()), Ok(()));
}

#[test]
fn each_broken_rule_is_named() {
    let good = form_fields("u/42/a.png", None);
    let refused = |fields: &[(String, String)], bucket: &str, size: u64, at: SystemTime| {
        check(fields, bucket, size, at).unwrap_err().to_string()
    };
    assert_eq!(
        check(&good, "acme-uploads", 101, now()),
        Err(Refusal::SizeOutOfRange {
            size: 101,
            min: 10,
            max: 100
        })
    );
    assert!(refused(&good, "acme-uploads", 101, now()).contains("the file is 101 bytes"));
    assert!(refused(&good, "acme-uploads", 9, now()).contains("the file is 9 bytes"));
    assert!(refused(&good, "other-bucket", 50, now()).contains("\"bucket\" is \"other-bucket\""));
    assert!(
        refused(&good, "acme-uploads", 50, now() + Duration::from_secs(300))
            .starts_with("the policy expired")
    );

    let mut other_key = good.clone();
    set(&mut other_key, "key", "u/43/a.png");
    assert!(refused(&other_key, "acme-uploads", 50, now()).contains("\"key\" is \"u/43/a.png\""));
    let mut other_type = good.clone();
    set(&mut other_type, "Content-Type", "text/html");
    assert!(refused(&other_type, "acme-uploads", 50, now()).contains("text/html"));
    let mut other_checksum = good.clone();
    set(&mut other_checksum, "x-amz-checksum-crc32", "AAAAAA==");
    assert!(refused(&other_checksum, "acme-uploads", 50, now()).contains("x-amz-checksum-crc32"));
    let mut extra = good.clone();
    extra.insert(0, ("x-amz-meta-owner".to_owned(), "evil".to_owned()));
    assert_eq!(
        check(&extra, "acme-uploads", 50, now()),
        Err(Refusal::UnlistedField("x-amz-meta-owner".to_owned()))
    );
    let mut missing = good.clone();
    missing.retain(|(n, _)| n != "x-amz-meta-album");
    assert!(refused(&missing, "acme-uploads", 50, now()).contains("has no \"x-amz-meta-album\""));
    let mut forged = good.clone();
    set(&mut forged, "X-Amz-Signature", &"0".repeat(64));
    assert_eq!(
        check(&forged, "acme-uploads", 50, now()),
        Err(Refusal::SignatureMismatch)
    );
    let mut tampered = good.clone();
    let policy = good.iter().find(|(n, _)| n == "Policy").unwrap().1.clone();
    let text = String::from_utf8(base64_simd::STANDARD.decode_to_vec(&policy).unwrap()).unwrap();
    let widened = text.replace(
        "[\"content-length-range\",10,100]",
        "[\"content-length-range\",0,1000]",
    );
    set(
        &mut tampered,
        "Policy",
        &base64_simd::STANDARD.encode_to_string(widened),
    );
    assert_eq!(
        check(&tampered, "acme-uploads", 500, now()),
        Err(Refusal::SignatureMismatch)
    );
    let mut unsigned = good.clone();
    unsigned.retain(|(n, _)| n != "X-Amz-Signature");
    assert_eq!(
        check(&unsigned, "acme-uploads", 50, now()),
        Err(Refusal::MissingField("x-amz-signature"))
    );
    let form = PostedForm {
        bucket: "acme-uploads",
        fields: &good,
        filename: "a",
        size: 50,
    };
    assert_eq!(
        evaluate(&form, |_| None, now()),
        Err(Refusal::UnknownAccessKey(KEY_ID.to_owned()))
    );
}

#[test]
fn malformed_signing_fields_and_policies_are_refused_not_panicked_on() {
    let good = form_fields("u/42/a.png", None);
    for credential in [
        "",
        "a/b/c",
        "AKID/2026131/us-east-1/s3/aws4_request",
        "AKID/20261399/us-east-1/s3/aws4_request",
        "AKID/20261125/us-east-1/s4/aws4_request",
    ] {
        let mut fields = good.clone();
        set(&mut fields, "X-Amz-Credential", credential);
        assert!(
            matches!(
                check(&fields, "acme-uploads", 50, now()),
                Err(Refusal::BadSigningFields(_))
            ),
            "{credential:?}"
        );
    }
    let mut fields = good.clone();
    set(&mut fields, "X-Amz-Algorithm", "AWS4-HMAC-SHA1");
    assert!(matches!(
        check(&fields, "acme-uploads", 50, now()),
        Err(Refusal::BadSigningFields(_))
    ));
    // A policy that is signed but not a policy: each is malformed, in words.
    let region = Region::new("us-east-1").unwrap();
    let key = SigningKey::derive(SECRET, now(), &region);
    for text in [
        "not json",
        "[]",
        r#"{"conditions":[]}"#,
        r#"{"expiration":"2027-01-01T00:00:00Z"}"#,
        r#"{"expiration":"2027-01-01T00:00:00Z","conditions":[["in","$key","x"]]}"#,
        r#"{"expiration":"2027-01-01T00:00:00Z","conditions":[["content-length-range",-1,5]]}"#,
    ] {
        let policy = base64_simd::STANDARD.encode_to_string(text);
        let mut fields = good.clone();
        set(&mut fields, "Policy", &policy);
        set(&mut fields, "X-Amz-Signature", &key.sign(policy.as_bytes()));
        assert!(
            matches!(
                check(&fields, "acme-uploads", 50, now()),
                Err(Refusal::MalformedPolicy(_))
            ),
            "{text}"
        );
    }
}
