//! Properties: whatever the input, the core returns a typed error or a well-formed,
//! fully pinned, verifiable ticket. It never panics.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use s3_presigned_post::evaluate::{PostedForm, evaluate};
use s3_presigned_post::{
    Addressing, BucketName, Checksum, ChecksumAlgorithm, Condition, Credentials, Endpoint,
    ObjectKey, PostRequest, PresignError, PresignedPost, Presigner, Region, SigningKey,
};
use serde_json::{Value, json};

/// Field names: mostly plausible, sometimes anything.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "(x-amz-meta-)?[A-Za-z][A-Za-z0-9_-]{0,20}",
        1 => prop::sample::select(vec![
            "key".to_owned(), "Key".to_owned(), "bucket".to_owned(), "Policy".to_owned(),
            "X-Amz-Signature".to_owned(), "x-amz-security-token".to_owned(), "file".to_owned(),
            "acl".to_owned(), "Content-Type".to_owned(), "x-amz-checksum-sha256".to_owned(),
            "X-Amz-Checksum-Algorithm".to_owned(),
        ]),
        1 => any::<String>(),
    ]
}

/// Any JSON a caller might pass as a condition.
fn condition_json() -> impl Strategy<Value = Value> {
    prop_oneof![
        (field_name(), any::<String>()).prop_map(|(f, v)| json!({ f: v })),
        (
            prop::sample::select(vec!["eq", "starts-with", "EQ", "in"]),
            field_name(),
            any::<String>()
        )
            .prop_map(|(op, f, v)| json!([op, format!("${f}"), v])),
        (any::<u64>(), any::<u64>()).prop_map(|(a, b)| json!(["content-length-range", a, b])),
        (0u64..100, 0u64..100).prop_map(|(a, b)| json!(["content-length-range", a, b])),
        any::<String>().prop_map(Value::String),
        (any::<i64>(), any::<f64>()).prop_map(|(a, b)| json!(["content-length-range", a, b])),
    ]
}

#[derive(Debug, Clone)]
struct Input {
    region: String,
    endpoint: Option<String>,
    flags: [bool; 4],
    bucket: String,
    key: String,
    conditions: Vec<Value>,
    fields: Vec<(String, String)>,
    expires: u64,
    now: u64,
    token: Option<String>,
}

fn input() -> impl Strategy<Value = Input> {
    (
        prop_oneof!["[a-z]{2}-[a-z]{4,9}-[1-9]", any::<String>()],
        prop::option::of(prop_oneof![
            Just("http://127.0.0.1:9000".to_owned()),
            Just("https://minio.example.com/base".to_owned()),
            any::<String>(),
        ]),
        any::<[bool; 4]>(),
        prop_oneof!["[a-z0-9][a-z0-9.-]{1,62}", any::<String>()],
        prop_oneof![
            "[a-z0-9/]{1,40}(\\$\\{filename\\})?",
            any::<String>(),
            ".{1000,1100}",
        ],
        prop::collection::vec(condition_json(), 0..6),
        prop::collection::vec((field_name(), any::<String>()), 0..6),
        prop_oneof![0u64..700_000, any::<u64>()],
        prop_oneof![0u64..300_000_000_000, any::<u64>()],
        // Real tokens are long; a one-letter token would "appear" in any Debug text.
        prop::option::of("[A-Za-z0-9/+=]{24,64}"),
    )
        .prop_map(
            |(region, endpoint, flags, bucket, key, conditions, fields, expires, now, token)| {
                Input {
                    region,
                    endpoint,
                    flags,
                    bucket,
                    key,
                    conditions,
                    fields,
                    expires,
                    now,
                    token,
                }
            },
        )
}

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn presign(input: &Input) -> Result<(PresignedPost, Region, SystemTime), PresignError> {
    let [path, dual, accel, fips] = input.flags;
    let addressing = match &input.endpoint {
        Some(url) => Addressing::custom(Endpoint::parse(url)?),
        None => Addressing::aws(),
    }
    .force_path_style(path)
    .dual_stack(dual)
    .accelerate(accel)
    .fips(fips);
    let region = Region::new(input.region.as_str())?;
    let presigner = Presigner::new(region.clone(), addressing)?;
    let credentials = Credentials::new("AKIDEXAMPLE", SECRET, input.token.clone())?;
    let mut request = PostRequest::new(
        BucketName::new(input.bucket.as_str())?,
        ObjectKey::new(input.key.as_str())?,
    )
    .expires_in(Duration::from_secs(input.expires))?;
    for condition in &input.conditions {
        request = request.condition(Condition::from_json(condition)?);
    }
    for (name, value) in &input.fields {
        request = request.field(name, value.as_str())?;
    }
    let now = UNIX_EPOCH
        .checked_add(Duration::from_secs(input.now))
        .ok_or(PresignError::InvalidTime)?;
    Ok((presigner.presign(&credentials, &request, now)?, region, now))
}

/// Every field but `Policy` and `X-Amz-Signature` has an exact condition, the key has
/// its condition, the policy is JSON and the signature recomputes.
fn assert_well_formed(post: &PresignedPost, region: &Region, now: SystemTime, input: &Input) {
    let policy_b64 = post.field("Policy").expect("a Policy field");
    let policy_json = base64_simd::STANDARD
        .decode_to_vec(policy_b64)
        .expect("Policy is base64");
    assert_eq!(policy_json, post.policy().as_str().as_bytes());
    let policy: Value = serde_json::from_slice(&policy_json).expect("the policy is JSON");
    let conditions = policy["conditions"].as_array().expect("a conditions array");
    assert!(policy["expiration"].is_string());

    for (name, value) in post.fields() {
        if name == "Policy" || name == "X-Amz-Signature" {
            continue;
        }
        if name == "key" && input.key.ends_with("${filename}") {
            let prefix = &value[..value.len() - "${filename}".len()];
            assert!(conditions.contains(&json!(["starts-with", "$key", prefix])));
            continue;
        }
        let pinned = conditions.contains(&json!({ name: value }))
            || conditions.contains(&json!(["eq", format!("${name}"), value]));
        assert!(pinned, "field {name:?} is not pinned: {policy}");
    }
    assert_eq!(post.field("key"), Some(input.key.as_str()));
    assert_eq!(post.field("X-Amz-Security-Token"), input.token.as_deref());
    let signature = SigningKey::derive(SECRET, now, region).sign(policy_b64.as_bytes());
    assert_eq!(post.field("X-Amz-Signature"), Some(signature.as_str()));
    assert!(post.url().starts_with("https://") || post.url().starts_with("http://"));
    assert!(policy_b64.len() <= s3_presigned_post::MAX_ENCODED_POLICY_BYTES);
    let shown = format!("{post:?}");
    if let Some(token) = &input.token {
        assert!(!shown.contains(token.as_str()), "Debug shows the token");
    }
    assert!(!shown.contains(SECRET));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_input_gives_an_error_or_a_pinned_verifiable_ticket(input in input()) {
        if let Ok((post, region, now)) = presign(&input) {
            assert_well_formed(&post, &region, now, &input);
        }
    }

    #[test]
    fn plausible_input_mostly_succeeds(
        bucket in "[a-z0-9][a-z0-9-]{2,40}[a-z0-9]",
        key in "[a-zA-Z0-9 ./_-]{1,100}",
        values in prop::collection::vec(any::<String>(), 0..4),
        now in 0u64..250_000_000_000,
    ) {
        let input = Input {
            region: "us-east-1".to_owned(),
            endpoint: None,
            flags: [false; 4],
            bucket,
            key,
            conditions: vec![json!(["content-length-range", 1, 1000])],
            fields: values.into_iter().enumerate().map(|(i, v)| (format!("x-amz-meta-m{i}"), v)).collect(),
            expires: 3600,
            now,
            token: None,
        };
        let (post, region, now) = presign(&input).expect("a plausible request is signed");
        assert_well_formed(&post, &region, now, &input);
        // The store's side agrees: the form as the ticket says is accepted, one byte over
        // the range is not.
        let fields: Vec<(String, String)> = post.fields().map(|(n, v)| (n.to_owned(), v.to_owned())).collect();
        let form = |size| PostedForm { bucket: &input.bucket, fields: &fields, filename: "f", size };
        let secret = |id: &str| (id == "AKIDEXAMPLE").then(|| SECRET.to_owned());
        prop_assert_eq!(evaluate(&form(1000), secret, now), Ok(()));
        prop_assert!(evaluate(&form(1001), secret, now).is_err());
    }

    #[test]
    fn condition_text_is_what_serde_json_writes(field in "[A-Za-z][A-Za-z0-9-]{0,10}", value in any::<String>()) {
        let exact = Condition::exact(&field, value.as_str()).unwrap();
        prop_assert_eq!(exact.to_string(), serde_json::to_string(&json!({ field.clone(): value })).unwrap());
        let starts = Condition::starts_with(&field, value.as_str()).unwrap();
        prop_assert_eq!(starts.to_string(), serde_json::to_string(&json!(["starts-with", format!("${field}"), value])).unwrap());
    }

    #[test]
    fn checksum_values_are_refused_or_exactly_a_digest(
        which in 0usize..5,
        value in prop_oneof![
            any::<String>(),
            "[A-Za-z0-9+/]{0,60}={0,2}",
            "[A-Za-z0-9+/]{6}==",
            "[A-Za-z0-9+/]{11}=",
            "[A-Za-z0-9+/]{27}=",
            "[A-Za-z0-9+/]{43}=",
            "[A-Za-z0-9+/=]{44}",
        ],
    ) {
        let algorithm = ChecksumAlgorithm::ALL[which];
        // The reference: base64-simd's decoder, then its encoder giving back the text.
        let canonical = base64_simd::STANDARD
            .decode_to_vec(&value)
            .ok()
            .filter(|d| d.len() == algorithm.digest_len())
            .is_some_and(|d| base64_simd::STANDARD.encode_to_string(&d) == value);
        match Checksum::new(algorithm, &value) {
            Ok(checksum) => {
                prop_assert!(canonical, "accepted {:?}", value);
                prop_assert_eq!(checksum.value(), value.as_str());
            }
            Err(error) => {
                prop_assert!(!canonical, "refused {:?}: {}", value, error);
                let refused = matches!(error, PresignError::InvalidChecksum { .. });
                prop_assert!(refused, "{}", error);
            }
        }
    }

    #[test]
    fn any_digest_gives_a_ticket_that_pins_it(
        which in 0usize..5,
        bytes in prop::collection::vec(any::<u8>(), 32),
        now in 0u64..250_000_000_000,
    ) {
        let algorithm = ChecksumAlgorithm::ALL[which];
        let checksum = Checksum::from_digest(algorithm, &bytes[..algorithm.digest_len()]).unwrap();
        prop_assert_eq!(&Checksum::new(algorithm, checksum.value()).unwrap(), &checksum);
        let request = PostRequest::new(BucketName::new("acme-uploads").unwrap(), ObjectKey::new("k").unwrap())
            .checksum(checksum)
            .unwrap();
        // Once per ticket.
        prop_assert!(request.clone().checksum(checksum).is_err());
        let presigner = Presigner::new(Region::new("us-east-1").unwrap(), Addressing::aws()).unwrap();
        let credentials = Credentials::new("AKIDEXAMPLE", SECRET, None).unwrap();
        let post = presigner
            .presign(&credentials, &request, UNIX_EPOCH + Duration::from_secs(now))
            .unwrap();
        let policy: Value = serde_json::from_str(post.policy().as_str()).unwrap();
        let conditions = policy["conditions"].as_array().unwrap();
        let pinned_algorithm = json!({"x-amz-checksum-algorithm": algorithm.name()});
        let pinned_value = json!({ algorithm.field(): checksum.value() });
        prop_assert!(conditions.contains(&pinned_algorithm), "{}", policy);
        prop_assert!(conditions.contains(&pinned_value), "{}", policy);
        prop_assert_eq!(post.field(algorithm.field()), Some(checksum.value()));
    }
}
