//! The rules on declared checksums and overwrites: what each ticket kind signs, what a
//! tenant requires, and how bad declarations are named.

use std::time::{Duration, UNIX_EPOCH};

use super::*;

const UUID: &str = "0f8c2d1e-5b7a-4c3e-9d2f-6a1b8e7c4d3f";
/// SHA-256 of the empty string.
const SHA256: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
const CRC64: &str = "AAAAAAAAAAA=";

fn rules(extra: &str) -> TenantRules {
    let settings: TenantSettings = toml::from_str(&format!(
        "bucket = \"acme-uploads\"\nmax_size = 100000000\n{extra}"
    ))
    .unwrap();
    TenantRules::from_settings("acme", &settings).unwrap()
}

fn request(algorithm: &str, value: Option<&str>) -> UploadRequest {
    UploadRequest {
        filename: "a.bin".to_owned(),
        size: Some(10),
        checksum: Some(ChecksumRequest {
            algorithm: algorithm.to_owned(),
            value: value.map(str::to_owned),
        }),
        ..UploadRequest::default()
    }
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_608_000)
}

fn refusal(result: Result<impl std::fmt::Debug, PolicyError>) -> String {
    match result {
        Err(PolicyError::ChecksumInvalid(message) | PolicyError::ChecksumRequired(message)) => {
            message
        }
        other => panic!("not a checksum refusal: {other:?}"),
    }
}

#[test]
fn post_tickets_pin_the_algorithm_and_the_value_as_fields() {
    let plan = plan(
        &rules(""),
        "u",
        &request("sha256", Some(SHA256)),
        now(),
        UUID,
    )
    .unwrap();
    let fields: Vec<(&str, &str)> = plan.request.fields().collect();
    assert_eq!(
        fields,
        [
            ("x-amz-checksum-algorithm", "SHA256"),
            ("x-amz-checksum-sha256", SHA256)
        ]
    );
}

#[test]
fn put_tickets_sign_the_checksum_and_if_none_match_unless_turned_off() {
    let rules_put = rules("upload_method = \"put\"");
    let plan = put_plan(
        &rules_put,
        "u",
        &request("CRC64NVME", Some(CRC64)),
        now(),
        UUID,
    );
    let presigner = s3_presigned_post::Presigner::new(
        s3_presigned_post::Region::new("us-east-1").unwrap(),
        s3_presigned_post::Addressing::aws(),
    )
    .unwrap();
    let credentials = s3_presigned_post::Credentials::new("AKIDEXAMPLE", "secret", None).unwrap();
    let signed = presigner
        .presign_url(&credentials, &plan.unwrap().request, now())
        .unwrap();
    let headers: Vec<(&str, &str)> = signed
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        headers,
        [
            ("content-length", "10"),
            ("x-amz-checksum-crc64nvme", CRC64),
            ("if-none-match", "*"),
        ]
    );
    assert!(
        signed
            .url
            .contains("if-none-match%3Bx-amz-checksum-crc64nvme")
    );

    let open = rules("upload_method = \"put\"\nprevent_overwrite = false");
    let plan = put_plan(&open, "u", &request("CRC64NVME", Some(CRC64)), now(), UUID).unwrap();
    let signed = presigner
        .presign_url(&credentials, &plan.request, now())
        .unwrap();
    assert!(!signed.headers.iter().any(|(n, _)| n == "if-none-match"));
}

#[test]
fn bad_declarations_are_named_by_field() {
    let rules = rules("");
    let cases = [
        (
            request("MD5", Some(SHA256)),
            "checksum.algorithm: \"MD5\" is not one of",
        ),
        (
            request("SHA256", Some(CRC64)),
            "checksum.value: invalid SHA256 checksum: a SHA-256 is 32 bytes",
        ),
        (
            request("SHA256", Some(&format!("{}=", "%".repeat(43)))),
            "checksum.value: invalid SHA256 checksum: not base64",
        ),
        (request("SHA256", None), "checksum.value is required"),
    ];
    for (request, expected) in cases {
        let message = refusal(plan(&rules, "u", &request, now(), UUID));
        assert!(message.starts_with(expected), "{message}");
    }
}

#[test]
fn a_tenant_can_require_one_of_its_algorithms() {
    let rules = rules("require_checksum = [\"SHA256\", \"crc64nvme\", \"SHA256\"]");
    assert_eq!(
        rules.require_checksum,
        [ChecksumAlgorithm::Sha256, ChecksumAlgorithm::Crc64Nvme]
    );
    let none = UploadRequest {
        checksum: None,
        ..request("SHA256", None)
    };
    assert_eq!(
        refusal(plan(&rules, "u", &none, now(), UUID)),
        "this tenant requires a declared checksum: SHA256 or CRC64NVME"
    );
    let crc32 = request("CRC32", Some("AAAAAA=="));
    assert_eq!(
        refusal(plan(&rules, "u", &crc32, now(), UUID)),
        "this tenant requires a SHA256 or CRC64NVME checksum, not CRC32"
    );
    assert!(plan(&rules, "u", &request("SHA256", Some(SHA256)), now(), UUID).is_ok());
    let bad: Result<TenantSettings, _> =
        toml::from_str("bucket = \"b-b-b\"\nmax_size = 1\nrequire_checksum = [\"MD5\"]");
    let error = TenantRules::from_settings("acme", &bad.unwrap()).unwrap_err();
    assert_eq!(error.setting, "require_checksum");
}

#[test]
fn multipart_takes_a_whole_object_value_only_for_the_crcs() {
    let rules = rules("");
    let crc = multipart_plan(&rules, "u", &request("CRC64NVME", Some(CRC64)), now(), UUID);
    let crc = crc.unwrap().object;
    assert_eq!(crc.checksum_algorithm, Some(ChecksumAlgorithm::Crc64Nvme));
    assert_eq!(crc.checksum.unwrap().value(), CRC64);
    // The algorithm alone is fine for every algorithm: parts carry their checksums.
    for algorithm in ChecksumAlgorithm::ALL {
        let alone = multipart_plan(&rules, "u", &request(algorithm.name(), None), now(), UUID);
        assert_eq!(alone.unwrap().object.checksum_algorithm, Some(algorithm));
    }
    let composite = request("SHA256", Some(SHA256));
    let message = refusal(multipart_plan(&rules, "u", &composite, now(), UUID));
    assert!(message.contains("verified part by part"), "{message}");
}
