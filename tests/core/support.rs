//! Shared by the core tests: a case format that both the seed driver and our core read.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use s3_presigned_post::{
    Addressing, BucketName, Checksum, ChecksumAlgorithm, Condition, Credentials, Endpoint,
    ObjectKey, PostRequest, PresignError, PresignedPost, Presigner, Region,
};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub const ACCESS_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
pub const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

pub fn project_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A case with the defaults filled in; `overrides` replaces or adds keys.
pub fn case(overrides: Value) -> Value {
    let mut case = json!({
        "now": "2026-11-25T12:00:00.000Z",
        "region": "us-east-1",
        "credentials": { "access_key_id": ACCESS_KEY_ID, "secret_access_key": SECRET },
        "bucket": "acme-uploads",
        "key": "acme/user-42/photo.jpg",
    });
    if let (Some(case), Value::Object(overrides)) = (case.as_object_mut(), overrides) {
        case.extend(overrides);
    }
    case
}

pub fn parse_time(text: &str) -> SystemTime {
    SystemTime::from(OffsetDateTime::parse(text, &Rfc3339).expect("case times are RFC 3339"))
}

/// Runs our core on a case.
pub fn ours(case: &Value) -> Result<PresignedPost, PresignError> {
    let flag = |name: &str| case[name].as_bool().unwrap_or(false);
    let addressing = match case["endpoint"].as_str() {
        Some(url) => Addressing::custom(Endpoint::parse(url)?),
        None => Addressing::aws(),
    }
    .force_path_style(flag("force_path_style"))
    .dual_stack(flag("dual_stack"))
    .accelerate(flag("accelerate"))
    .fips(flag("fips"));
    let presigner = Presigner::new(Region::new(str_of(&case["region"]))?, addressing)?;

    let creds = &case["credentials"];
    let credentials = Credentials::new(
        str_of(&creds["access_key_id"]),
        str_of(&creds["secret_access_key"]),
        creds["session_token"].as_str().map(str::to_owned),
    )?;

    let mut request = PostRequest::new(
        BucketName::new(str_of(&case["bucket"]))?,
        ObjectKey::new(str_of(&case["key"]))?,
    );
    for condition in case["conditions"].as_array().into_iter().flatten() {
        request = request.condition(Condition::from_json(condition)?);
    }
    // A declared checksum is two fields to the seed, one call to us.
    let mut fields = case["fields"].as_array().into_iter().flatten().peekable();
    while let Some(pair) = fields.next() {
        let (name, value) = (str_of(&pair[0]), str_of(&pair[1]));
        match ChecksumAlgorithm::parse(value).filter(|_| name == "x-amz-checksum-algorithm") {
            Some(algorithm) => {
                let given = fields
                    .next()
                    .expect("the checksum value follows its algorithm");
                assert_eq!(str_of(&given[0]), algorithm.field());
                request = request.checksum(Checksum::new(algorithm, str_of(&given[1]))?)?;
            }
            None => request = request.field(name, value)?,
        }
    }
    if let Some(seconds) = case["expires"].as_u64() {
        request = request.expires_in(Duration::from_secs(seconds))?;
    }
    presigner.presign(&credentials, &request, parse_time(str_of(&case["now"])))
}

fn str_of(value: &Value) -> &str {
    value.as_str().expect("case strings are strings")
}

/// The seed's answer to each case, in order: `{url, fields: [[n, v]...]}` or `{error}`.
///
/// Node.js and the seed package are test dependencies: `scripts/install-test-deps.sh`
/// installs them, and their absence fails the test.
pub fn seed(cases: &[Value]) -> Vec<Value> {
    let dir = project_dir().join("tests/seed");
    let installed: PathBuf = dir.join("node_modules/@aws-sdk/s3-presigned-post/package.json");
    assert!(
        installed.is_file(),
        "the seed package is not installed: run scripts/install-test-deps.sh (npm ci in tests/seed)"
    );
    let mut child = Command::new("node")
        .arg(dir.join("seed.mjs"))
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node must be installed to run the seed (scripts/install-test-deps.sh)");
    let input = serde_json::to_vec(cases).expect("cases serialise");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(&input)
        .expect("the seed reads its cases");
    let output = child.wait_with_output().expect("the seed runs");
    assert!(
        output.status.success(),
        "the seed failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&output.stdout).expect("the seed prints JSON");
    assert_eq!(results.len(), cases.len());
    results
}

/// Our output in the seed driver's shape.
pub fn as_seed_shape(post: &PresignedPost) -> Value {
    json!({
        "url": post.url(),
        "fields": post.fields().map(|(n, v)| json!([n, v])).collect::<Vec<_>>(),
    })
}
