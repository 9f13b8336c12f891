//! Known answers: the AWS S3 API reference example "Browser-Based Upload using HTTP POST
//! (Using AWS Signature Version 4)", checked layer by layer.

use std::collections::BTreeSet;
use std::time::Duration;

use s3_presigned_post::{
    Addressing, BucketName, Checksum, ChecksumAlgorithm, Condition, CredentialScope, Credentials,
    ObjectKey, PostRequest, PresignError, Presigner, Region, SigningKey, SigningKeyCache,
};
use serde::Deserialize;
use serde_json::Value;

use crate::support::{parse_time, project_dir};

#[derive(Debug, Deserialize)]
struct Fixture {
    access_key_id: String,
    secret: String,
    date: String,
    amz_date: String,
    region: String,
    bucket: String,
    credential: String,
    string_to_sign: String,
    decoded_policy: String,
    expected_signature: String,
}

fn fixture() -> Fixture {
    let path = project_dir().join("tests/fixtures/aws-sigv4-post-example.json");
    let text = std::fs::read_to_string(&path).expect("the fixture is in the repository");
    serde_json::from_str(&text).expect("the fixture parses")
}

fn signing_time(f: &Fixture) -> std::time::SystemTime {
    // 20151229T000000Z -> 2015-12-29T00:00:00Z
    let a = &f.amz_date;
    parse_time(&format!(
        "{}-{}-{}T{}:{}:{}Z",
        &a[0..4],
        &a[4..6],
        &a[6..8],
        &a[9..11],
        &a[11..13],
        &a[13..15]
    ))
}

#[test]
fn the_published_policy_is_signed_verbatim_crlf_and_all() {
    let f = fixture();
    let decoded = base64_simd::STANDARD
        .decode_to_vec(&f.string_to_sign)
        .expect("the string to sign is base64");
    assert_eq!(String::from_utf8(decoded).unwrap(), f.decoded_policy);
    assert!(f.decoded_policy.contains("\r\n"));
}

#[test]
fn the_credential_scope_matches_the_example() {
    let f = fixture();
    let region = Region::new(f.region.as_str()).unwrap();
    assert_eq!(
        format!(
            "{}/{}",
            f.access_key_id,
            CredentialScope::new(&f.date, &region)
        ),
        f.credential
    );
}

#[test]
fn the_signature_matches_the_example() {
    let f = fixture();
    let region = Region::new(f.region.as_str()).unwrap();
    let key = SigningKey::derive(&f.secret, signing_time(&f), &region);
    assert_eq!(key.sign(f.string_to_sign.as_bytes()), f.expected_signature);
    assert_eq!(
        f.expected_signature,
        "8afdbf4008c03f22c2cd3cdb72e4afbb1f6a588f3255ac628749a66d7f09699e"
    );

    let credentials = Credentials::new(f.access_key_id.as_str(), f.secret.as_str(), None).unwrap();
    let cache = SigningKeyCache::new();
    for _ in 0..2 {
        let cached = cache.sign(
            &credentials,
            signing_time(&f),
            &f.date,
            &region,
            f.string_to_sign.as_bytes(),
        );
        assert_eq!(cached, f.expected_signature);
    }
}

/// One condition in a form where the two ways of writing an exact match, and the case
/// of field names, do not matter.
fn normalise(condition: &Value) -> String {
    match condition {
        Value::Object(map) => {
            let (k, v) = map.iter().next().unwrap();
            format!("eq {} {}", k.to_ascii_lowercase(), v)
        }
        Value::Array(items) => match items.as_slice() {
            [op, Value::String(field), v] if field.starts_with('$') => {
                format!(
                    "{} {} {}",
                    op.as_str().unwrap(),
                    field[1..].to_ascii_lowercase(),
                    v
                )
            }
            other => format!("{other:?}"),
        },
        other => panic!("not a condition: {other}"),
    }
}

#[test]
fn our_policy_for_the_same_rules_states_the_same_conditions_and_verifies() {
    let f = fixture();
    let published: Value = serde_json::from_str(&f.decoded_policy).unwrap();
    let region = Region::new(f.region.as_str()).unwrap();
    let presigner = Presigner::new(region.clone(), Addressing::aws()).unwrap();
    let credentials = Credentials::new(f.access_key_id.as_str(), f.secret.as_str(), None).unwrap();
    let request = PostRequest::new(
        BucketName::new(f.bucket.as_str()).unwrap(),
        ObjectKey::new("user/user1/${filename}").unwrap(),
    )
    .field("acl", "public-read")
    .unwrap()
    .field(
        "success_action_redirect",
        "http://sigv4examplebucket.s3.amazonaws.com/successful_upload.html",
    )
    .unwrap()
    .condition(Condition::starts_with("Content-Type", "image/").unwrap())
    .field("x-amz-meta-uuid", "14365123651274")
    .unwrap()
    .field("x-amz-server-side-encryption", "AES256")
    .unwrap()
    .condition(Condition::starts_with("x-amz-meta-tag", "").unwrap())
    .expires_in(Duration::from_secs(36 * 3600))
    .unwrap();

    let post = presigner
        .presign(&credentials, &request, signing_time(&f))
        .unwrap();

    let ours: Value = serde_json::from_str(post.policy().as_str()).unwrap();
    assert_eq!(ours["expiration"], "2015-12-30T12:00:00Z");
    // The published one has milliseconds; the instant is the same.
    assert_eq!(published["expiration"], "2015-12-30T12:00:00.000Z");
    let set = |v: &Value| -> BTreeSet<String> {
        v["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(normalise)
            .collect()
    };
    assert_eq!(set(&ours), set(&published));
    assert_eq!(post.field("X-Amz-Credential"), Some(f.credential.as_str()));
    assert_eq!(post.field("X-Amz-Date"), Some(f.amz_date.as_str()));
    let policy = post.field("Policy").unwrap();
    assert_eq!(
        post.field("X-Amz-Signature").unwrap(),
        SigningKey::derive(&f.secret, signing_time(&f), &region).sign(policy.as_bytes())
    );
}

/// The checksum known answer: a ticket declaring a SHA-256, as the seed signs it.
#[derive(Debug, Deserialize)]
struct ChecksumFixture {
    now: String,
    region: String,
    access_key_id: String,
    secret: String,
    bucket: String,
    key: String,
    content_type: String,
    max_size: u64,
    expires: u64,
    checksum_algorithm: String,
    checksum: String,
    decoded_policy: String,
    policy: String,
    expected_signature: String,
}

#[test]
fn a_declared_checksum_is_signed_as_the_seed_signs_it() {
    let path = project_dir().join("tests/fixtures/checksum-post.json");
    let f: ChecksumFixture = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let region = Region::new(f.region.as_str()).unwrap();
    let presigner = Presigner::new(region.clone(), Addressing::aws()).unwrap();
    let credentials = Credentials::new(f.access_key_id.as_str(), f.secret.as_str(), None).unwrap();
    let algorithm = ChecksumAlgorithm::parse(&f.checksum_algorithm).unwrap();
    let checksum = Checksum::new(algorithm, &f.checksum).unwrap();
    let request = PostRequest::new(
        BucketName::new(f.bucket.as_str()).unwrap(),
        ObjectKey::new(f.key.as_str()).unwrap(),
    )
    .condition(Condition::content_length_range(1, f.max_size).unwrap())
    .field("Content-Type", f.content_type.as_str())
    .unwrap()
    .checksum(checksum)
    .unwrap()
    .expires_in(Duration::from_secs(f.expires))
    .unwrap();
    let now = parse_time(&f.now);
    let post = presigner.presign(&credentials, &request, now).unwrap();

    // Layer by layer: the policy text, its base64, the signature.
    assert_eq!(post.policy().as_str(), f.decoded_policy);
    assert_eq!(post.field("Policy"), Some(f.policy.as_str()));
    let key = SigningKey::derive(&f.secret, now, &region);
    assert_eq!(key.sign(f.policy.as_bytes()), f.expected_signature);
    assert_eq!(
        post.field("X-Amz-Signature"),
        Some(f.expected_signature.as_str())
    );
    assert_eq!(post.field("x-amz-checksum-algorithm"), Some("SHA256"));
    assert_eq!(
        post.field("x-amz-checksum-sha256"),
        Some(f.checksum.as_str())
    );

    // Checksum fields come only from `checksum`, which checks them.
    for name in ["x-amz-checksum-sha256", "X-Amz-Checksum-Algorithm"] {
        let direct = PostRequest::new(
            BucketName::new(f.bucket.as_str()).unwrap(),
            ObjectKey::new(f.key.as_str()).unwrap(),
        )
        .field(name, "x");
        assert!(
            matches!(direct, Err(PresignError::ReservedField(_))),
            "{name}"
        );
    }
}
