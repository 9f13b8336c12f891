//! Differential test: our core against the real `@aws-sdk/s3-presigned-post`, run by
//! Node.js with a frozen clock. Byte equality of URL, field names, order and values
//! (Policy and X-Amz-Signature included) for every case the seed handles safely.

use serde_json::{Value, json};

use crate::support::{as_seed_shape, case, ours, seed};

/// Cases both must sign identically.
fn identical_cases() -> Vec<(&'static str, Value)> {
    let token = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ+session/token=";
    vec![
        ("plain", case(json!({}))),
        (
            "milliseconds are truncated",
            case(json!({"now": "2026-11-25T12:00:00.999Z"})),
        ),
        (
            "expiration crosses midnight and a year",
            case(json!({"now": "2026-12-31T23:59:59.999Z", "expires": 1})),
        ),
        ("seven-day expiry", case(json!({"expires": 604_800}))),
        (
            "content-length-range",
            case(json!({"conditions": [["content-length-range", 1, 26_214_400]]})),
        ),
        (
            "content-length-range up to 5 GiB",
            case(json!({"conditions": [["content-length-range", 0, 5_368_709_120_u64]]})),
        ),
        (
            "every condition kind",
            case(json!({
                "conditions": [
                    {"acl": "private"},
                    ["eq", "$Cache-Control", "max-age=60"],
                    ["starts-with", "$Content-Type", "image/"],
                    ["starts-with", "$x-amz-meta-tag", ""],
                    ["content-length-range", 2048, 2048]
                ],
                "fields": [["acl", "private"], ["Cache-Control", "max-age=60"], ["Content-Type", "image/png"]]
            })),
        ),
        (
            "duplicate conditions are dropped, first kept",
            case(json!({
                "conditions": [{"bucket": "acme-uploads"}, ["content-length-range", 1, 10], ["content-length-range", 1, 10]],
                "fields": [["acl", "private"]]
            })),
        ),
        (
            "${filename} key",
            case(json!({"key": "acme/user-42/${filename}"})),
        ),
        (
            "${filename} key with a starts-with condition on the key",
            case(json!({"key": "u/${filename}", "conditions": [["starts-with", "$key", ""]]})),
        ),
        (
            "declared SHA-256 checksum",
            case(json!({"fields": [
                ["Content-Type", "text/plain"],
                ["x-amz-checksum-algorithm", "SHA256"],
                ["x-amz-checksum-sha256", "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="]
            ]})),
        ),
        (
            "declared CRC-64/NVME checksum with a size range",
            case(json!({
                "conditions": [["content-length-range", 1, 1000]],
                "fields": [
                    ["x-amz-checksum-algorithm", "CRC64NVME"],
                    ["x-amz-checksum-crc64nvme", "794gEy4QBG4="]
                ]
            })),
        ),
        (
            "metadata",
            case(
                json!({"fields": [["x-amz-meta-album", "2026"], ["x-amz-meta-purpose", "avatar"]]}),
            ),
        ),
        (
            "acl, success_action_status, redirect, encryption",
            case(json!({"fields": [
                ["acl", "public-read"],
                ["success_action_status", "201"],
                ["success_action_redirect", "https://app.example.com/done?x=1&y=2"],
                ["x-amz-server-side-encryption", "aws:kms"],
                ["x-amz-server-side-encryption-aws-kms-key-id", "arn:aws:kms:us-east-1:111122223333:key/abcd"],
                ["tagging", "<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>"]
            ]})),
        ),
        (
            "session token",
            case(
                json!({"credentials": {"access_key_id": "ASIAEXAMPLE", "secret_access_key": "tmp/secret+key", "session_token": token}}),
            ),
        ),
        (
            "session token with fields and ${filename}",
            case(json!({
                "credentials": {"access_key_id": "ASIAEXAMPLE", "secret_access_key": "s", "session_token": token},
                "key": "t/${filename}",
                "fields": [["Content-Type", "application/pdf"]]
            })),
        ),
        (
            "custom endpoint, IP host: path style",
            case(json!({"endpoint": "http://127.0.0.1:9000"})),
        ),
        (
            "custom endpoint with a base path",
            case(json!({"endpoint": "http://127.0.0.1:9000/s3", "bucket": "uploads"})),
        ),
        (
            "custom endpoint, IPv6 host",
            case(json!({"endpoint": "http://[::1]:9000/"})),
        ),
        (
            "custom endpoint, host name: virtual-hosted",
            case(json!({"endpoint": "http://localhost:9000"})),
        ),
        (
            "custom endpoint, forced path style",
            case(json!({"endpoint": "https://minio.example.com/", "force_path_style": true})),
        ),
        (
            "custom endpoint, default port and upper-case host normalised",
            case(json!({"endpoint": "https://MinIO.Example.com:443/base/"})),
        ),
        (
            "custom http endpoint, dotted bucket: virtual-hosted",
            case(json!({"endpoint": "http://minio.example.com", "bucket": "abc.def.ghi"})),
        ),
        (
            "custom https endpoint, dotted bucket: path style",
            case(json!({"endpoint": "https://minio.example.com", "bucket": "abc.def.ghi"})),
        ),
        ("path style on AWS", case(json!({"force_path_style": true}))),
        (
            "dotted bucket on AWS: path style",
            case(json!({"bucket": "acme.uploads.example"})),
        ),
        (
            "legacy upper-case bucket: path style",
            case(json!({"bucket": "Legacy_Bucket"})),
        ),
        (
            "non-us-east-1 region",
            case(json!({"region": "eu-central-1"})),
        ),
        ("China partition", case(json!({"region": "cn-northwest-1"}))),
        (
            "GovCloud FIPS",
            case(json!({"region": "us-gov-west-1", "fips": true})),
        ),
        (
            "FIPS and dual-stack",
            case(json!({"region": "us-east-2", "fips": true, "dual_stack": true})),
        ),
        (
            "dual-stack",
            case(json!({"region": "ap-southeast-2", "dual_stack": true})),
        ),
        (
            "Transfer Acceleration",
            case(json!({"region": "eu-west-1", "accelerate": true})),
        ),
        (
            "Transfer Acceleration, dual-stack",
            case(json!({"region": "us-west-2", "accelerate": true, "dual_stack": true})),
        ),
        ("ISO partition", case(json!({"region": "us-iso-east-1"}))),
        (
            "ISOB partition, FIPS",
            case(json!({"region": "us-isob-east-1", "fips": true})),
        ),
        (
            "ISOE partition",
            case(json!({"region": "eu-isoe-west-1", "dual_stack": true})),
        ),
        ("ISOF partition", case(json!({"region": "us-isof-south-1"}))),
        (
            "European Sovereign Cloud",
            case(json!({"region": "eusc-de-east-1"})),
        ),
        (
            "region this table does not know",
            case(json!({"region": "zz-newregion-7"})),
        ),
        (
            "unicode key",
            case(json!({"key": "photos/été 2026/😀 \"quoted\" back\\slash ✓.jpg"})),
        ),
        (
            "values with quotes, controls and unicode are escaped like JSON.stringify",
            case(json!({"fields": [
                ["x-amz-meta-note", "line1\nline2\ttab \u{1} \u{7f} \u{2028} \"q\" \\ é"],
                ["Content-Disposition", "attachment; filename=\"r\u{e9}sum\u{e9}.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf"]
            ]})),
        ),
        (
            "empty field value",
            case(json!({"fields": [["x-amz-meta-empty", ""]]})),
        ),
        (
            "secret and key id other stores use",
            case(
                json!({"credentials": {"access_key_id": "GK31c2f218a2e44f485b94239e", "secret_access_key": "b892c0665f0ada8a4755dae98baa3b133590e11dae3bcc1f9d4cd4d4b4e9b2d"}}),
            ),
        ),
    ]
}

#[test]
fn our_tickets_are_byte_identical_to_the_seeds() {
    let cases = identical_cases();
    assert!(cases.len() >= 20);
    let inputs: Vec<Value> = cases.iter().map(|(_, c)| c.clone()).collect();
    let theirs = seed(&inputs);
    for ((name, case), theirs) in cases.iter().zip(theirs) {
        assert!(
            theirs.get("error").is_none(),
            "{name}: the seed refused: {theirs}"
        );
        let ours = ours(case).unwrap_or_else(|e| panic!("{name}: we refused: {e}"));
        assert_eq!(as_seed_shape(&ours), theirs, "{name}");
    }
}

#[test]
fn combinations_the_seed_refuses_are_refused_too() {
    let cases = [
        case(json!({"accelerate": true, "fips": true})),
        case(json!({"accelerate": true, "force_path_style": true})),
        case(json!({"accelerate": true, "bucket": "my.bucket"})),
        case(json!({"accelerate": true, "region": "cn-north-1"})),
        case(json!({"fips": true, "region": "cn-north-1"})),
        case(json!({"endpoint": "http://127.0.0.1:9000", "dual_stack": true})),
        case(json!({"endpoint": "http://127.0.0.1:9000", "fips": true})),
        case(json!({"endpoint": "http://127.0.0.1:9000", "accelerate": true})),
        case(json!({"endpoint": "minio.example.com"})),
        case(json!({"region": "us_east_1"})),
        case(json!({"region": "us-east-1.evil"})),
    ];
    for (case, theirs) in cases.iter().zip(seed(&cases)) {
        assert!(theirs.get("error").is_some(), "the seed accepted {case}");
        assert!(ours(case).is_err(), "we accepted {case}");
    }
}

/// Inputs the seed signs although the ticket is unsafe or can never be used; we refuse
/// them, as the documentation of `PresignError` says.
#[test]
fn we_are_stricter_where_the_seed_is_unsafe() {
    let long_key = "k".repeat(1025);
    let cases = [
        ("expiry over 7 days", case(json!({"expires": 604_801}))),
        ("expiry of zero", case(json!({"expires": 0}))),
        (
            "min above max",
            case(json!({"conditions": [["content-length-range", 10, 1]]})),
        ),
        (
            "max over 5 GiB",
            case(json!({"conditions": [["content-length-range", 0, 5_368_709_121_u64]]})),
        ),
        (
            "two different size ranges",
            case(
                json!({"conditions": [["content-length-range", 0, 10], ["content-length-range", 0, 20]]}),
            ),
        ),
        ("key over 1024 bytes", case(json!({"key": long_key}))),
        (
            "${filename} inside the key",
            case(json!({"key": "a/${filename}/b"})),
        ),
        ("empty bucket", case(json!({"bucket": ""}))),
        ("bucket with a space", case(json!({"bucket": "my bucket"}))),
        (
            "directory bucket",
            case(json!({"bucket": "dir-bucket--usw2-az1--x-s3"})),
        ),
        ("upper-case region", case(json!({"region": "US-EAST-1"}))),
        ("pseudo-region", case(json!({"region": "aws-global"}))),
        (
            "caller sets key",
            case(json!({"fields": [["key", "elsewhere/x"]]})),
        ),
        (
            "caller sets a signing field",
            case(json!({"fields": [["X-Amz-Credential", "x"]]})),
        ),
        (
            "condition contradicts a field",
            case(json!({"fields": [["acl", "private"]], "conditions": [{"acl": "public-read"}]})),
        ),
        (
            "condition contradicts the key",
            case(json!({"conditions": [["starts-with", "$key", "other-tenant/"]]})),
        ),
        (
            "endpoint with a query",
            case(json!({"endpoint": "http://127.0.0.1:9000/?x=1"})),
        ),
        (
            "policy over 20 KiB",
            case(json!({"fields": [["x-amz-meta-big", "x".repeat(16 * 1024)]]})),
        ),
    ];
    let inputs: Vec<Value> = cases.iter().map(|(_, c)| c.clone()).collect();
    for ((name, case), theirs) in cases.iter().zip(seed(&inputs)) {
        assert!(
            theirs.get("error").is_none(),
            "{name}: the seed refuses too: {theirs}"
        );
        assert!(ours(case).is_err(), "{name}: we accepted it");
    }
}
