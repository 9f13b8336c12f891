//! The request path without HTTP: the JSON body parser, the tenant rules and the
//! presign core, on arbitrary input. Input: the token's subject, a newline, the body.
//!
//! Invariants: nothing panics; a refusal is a typed error of the rules (a plan the rules
//! accept is always signable: a refusal of the core there is a 500 of the service); a
//! ticket's key lies inside
//! the tenant's prefix and the subject's owner prefix, with exactly the template's
//! segments and no `.` or `..`; every returned field is pinned by an exact condition of
//! the signed policy; a PUT URL signs every header it hands out (and the length); a
//! multipart layout covers the size in at most 10 000 parts; a declared checksum that
//! passes is canonical base64 of its algorithm's length and travels pinned (POST),
//! signed (PUT) or with the upload (multipart), never dropped.
#![no_main]

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use upload_tickets::policy::{self, ChecksumRequest, TenantRules, TenantSettings, UploadRequest};
use s3_presigned_post::{Addressing, ChecksumAlgorithm, Credentials, Presigner, Region};

static RULES: LazyLock<TenantRules> = LazyLock::new(|| {
    let settings: TenantSettings = serde_json::from_value(json!({
        "bucket": "acme-uploads",
        "key_template": "{tenant}/{sub}/{uuid}/{filename}",
        "min_size": 1,
        "max_size": 26_214_400,
        "content_types": ["image/*", "application/pdf"],
        "metadata_keys": ["album", "purpose"],
        "content_disposition": "attachment",
        "acl": "private",
        "success_action_status": 201,
        "tagging": {"source": "fuzz"},
    }))
    .expect("fuzz tenant settings");
    TenantRules::from_settings("acme", &settings).expect("fuzz tenant rules")
});

static PRESIGNER: LazyLock<Presigner> = LazyLock::new(|| {
    Presigner::new(Region::new("us-east-1").expect("region"), Addressing::aws()).expect("presigner")
});

static CREDENTIALS: LazyLock<Credentials> = LazyLock::new(|| {
    Credentials::new(
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        Some("FwoGZXIvYXdzEXAMPLE".into()),
    )
    .expect("credentials")
});

const UUID: &str = "0f8c2d1e-5b7a-4c3e-9d2f-6a1b8e7c4d3f";

fuzz_target!(|data: &[u8]| {
    let Some(newline) = data.iter().position(|&b| b == b'\n') else {
        return;
    };
    let Ok(subject) = std::str::from_utf8(&data[..newline]) else {
        return;
    };
    let Ok(request) = serde_json::from_slice::<UploadRequest>(&data[newline + 1..]) else {
        return;
    };
    let now = UNIX_EPOCH + Duration::from_secs(1_795_608_000);
    check_put(subject, &request, now);
    check_multipart(subject, &request, now);
    let Ok(plan) = policy::plan(&RULES, subject, &request, now, UUID) else {
        return;
    };
    check_key(subject, plan.object.key.as_str());

    let post = PRESIGNER
        .presign(&CREDENTIALS, &plan.request, now)
        .expect("a POST plan the rules accept is signable");
    if let Some(declared) = &request.checksum {
        check_declared(declared);
        let algorithm = ChecksumAlgorithm::parse(&declared.algorithm).expect("a parsed algorithm");
        assert_eq!(post.field("x-amz-checksum-algorithm"), Some(algorithm.name()));
        assert_eq!(post.field(algorithm.field()), declared.value.as_deref());
    }
    let policy: Value = serde_json::from_str(post.policy().as_str()).expect("the policy is JSON");
    let conditions = policy["conditions"].as_array().expect("conditions");
    for (name, value) in post.fields() {
        if name == "Policy" || name == "X-Amz-Signature" {
            continue;
        }
        assert!(
            conditions.contains(&json!({ name: value })),
            "field {name} is not pinned"
        );
    }
});

/// The key stays in the tenant's and the subject's prefix, with the template's segments.
fn check_key(subject: &str, key: &str) {
    let owner = RULES
        .owner_prefix(subject)
        .expect("a planned subject is usable");
    assert!(key.starts_with(&owner), "key {key:?} left the owner prefix {owner:?}");
    assert!(key.starts_with(RULES.key_prefix()), "key {key:?} left the prefix");
    let segments: Vec<&str> = key.split('/').collect();
    assert_eq!(segments.len(), 4, "key {key:?}");
    assert_eq!(segments[0], "acme");
    assert_eq!(segments[2], UUID);
    assert!(
        segments
            .iter()
            .all(|s| !s.is_empty() && *s != "." && *s != ".."),
        "key {key:?}"
    );
}

/// A PUT ticket signs the length and every header it hands out.
fn check_put(subject: &str, request: &UploadRequest, now: SystemTime) {
    let Ok(plan) = policy::put_plan(&RULES, subject, request, now, UUID) else {
        return;
    };
    check_key(subject, plan.object.key.as_str());
    let signed = PRESIGNER
        .presign_url(&CREDENTIALS, &plan.request, now)
        .expect("a PUT plan the rules accept is signable");
    let (_, query) = signed.url.split_once('?').expect("a query");
    let signed_headers = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("X-Amz-SignedHeaders="))
        .expect("SignedHeaders")
        .replace("%3B", ";");
    let names: Vec<&str> = signed_headers.split(';').collect();
    assert!(names.contains(&"content-length") && names.contains(&"host"));
    assert!(names.contains(&"if-none-match"), "PUT tickets cannot overwrite");
    if let Some(declared) = &request.checksum {
        check_declared(declared);
        let algorithm = ChecksumAlgorithm::parse(&declared.algorithm).expect("a parsed algorithm");
        assert!(names.contains(&algorithm.field()), "the checksum is signed");
    }
    for (name, _) in &signed.headers {
        assert!(names.contains(&name.as_str()), "header {name} is not signed");
    }
}

/// A multipart layout covers the declared size in 1 to 10 000 parts.
fn check_multipart(subject: &str, request: &UploadRequest, now: SystemTime) {
    let Ok(plan) = policy::multipart_plan(&RULES, subject, request, now, UUID) else {
        return;
    };
    check_key(subject, plan.object.key.as_str());
    if let Some(declared) = &request.checksum {
        let algorithm = ChecksumAlgorithm::parse(&declared.algorithm);
        assert_eq!(plan.object.checksum_algorithm, algorithm);
        if let Some(value) = &declared.value {
            check_declared(declared);
            assert_eq!(plan.object.checksum.as_ref().map(|c| c.value()), Some(value.as_str()));
        }
    }
    let (size, part_size, count) = (plan.size, plan.part_size, u64::from(plan.part_count));
    assert!((1..=10_000).contains(&count), "{count} parts");
    assert!(count * part_size >= size && (count - 1) * part_size < size);
    assert!(size >= RULES.min_size && size <= RULES.max_size);
}

/// A declaration the rules let through is a known algorithm with a canonical value.
fn check_declared(declared: &ChecksumRequest) {
    let algorithm = ChecksumAlgorithm::parse(&declared.algorithm).expect("a known algorithm");
    let value = declared.value.as_deref().expect("single uploads carry the value");
    let decoded = base64_simd::STANDARD.decode_to_vec(value).expect("base64");
    assert_eq!(decoded.len(), algorithm.digest_len());
    assert_eq!(base64_simd::STANDARD.encode_to_string(&decoded), value);
}
