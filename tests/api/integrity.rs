//! Integrity, store by store: declared checksums on POST forms, PUT URLs and multipart
//! uploads, tickets that cannot overwrite, and the completion check comparing checksums.
//!
//! Each store the suite runs (s3s-fs, Garage, SeaweedFS) gets the same flows, and what
//! it was seen to do is the table [`observed`]: the store matrix of docs/tickets.md is this
//! table. Where a store verifies, the test proves the refusal (nothing stored); where it
//! does not, the test proves what the service does instead.

use reqwest::StatusCode;
use s3_presigned_post::{Checksum, ChecksumAlgorithm};
use serde_json::{Value, json};

use crate::e2e::{fields_of, post};
use crate::helpers::*;
use crate::multipart::{call, data, json_of};
use crate::store::{BUCKET, Kind, Store};

const MIB: usize = 1024 * 1024;

/// What each store does beyond verifying checksums (all three verify POST fields, PUT
/// headers, part checksums and a full-object CRC at completion).
pub(crate) struct Observed {
    /// A second PUT signed with `If-None-Match: *` is refused (412).
    pub(crate) put_if_none_match: bool,
    /// `CompleteMultipartUpload` with `If-None-Match: *` over an object written since
    /// the upload started.
    complete_over_object: OverObject,
    /// Multipart uploads with a composite (SHA-1, SHA-256) checksum can be started.
    pub(crate) composite_multipart: bool,
}

/// What a store does with a completion over an object written meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OverObject {
    /// Refuses it: 412, the object stays (the service answers 409 `object_exists`).
    Refused,
    /// The write superseded the upload: it is gone (404 `upload_not_found`), the
    /// object stays.
    UploadGone,
}

pub(crate) fn observed(kind: Kind) -> Observed {
    match kind {
        Kind::S3sFs => Observed {
            put_if_none_match: true,
            complete_over_object: OverObject::Refused,
            composite_multipart: false,
        },
        Kind::Garage => Observed {
            put_if_none_match: false,
            complete_over_object: OverObject::UploadGone,
            composite_multipart: true,
        },
        Kind::SeaweedFs => Observed {
            put_if_none_match: true,
            complete_over_object: OverObject::Refused,
            composite_multipart: true,
        },
        // s3s-fs 0.14.1 keeps no full-object checksum of a multipart upload (it answers
        // none at completion): the dev store runs the e2e, multipart and dev suites,
        // not this matrix.
        Kind::Dev => panic!("the integrity matrix does not run on the dev store"),
        Kind::LocalStack => panic!("the integrity matrix does not run on LocalStack"),
    }
}

/// The checksum a client computes: CRCs big-endian, then base64.
pub(crate) fn digest(algorithm: ChecksumAlgorithm, bytes: &[u8]) -> Checksum {
    // The dev store's: held to the digests S3 documents by the test below.
    upload_tickets::devstore::digest(algorithm, bytes).expect("a digest of its length")
}

fn declared(checksum: &Checksum) -> Value {
    json!({"algorithm": checksum.algorithm().name(), "value": checksum.value()})
}

/// The digests S3 documents for these bytes, as boto3 and three stores computed them.
#[test]
fn test_digests_match_what_the_stores_compute() {
    let body = b"hello checksum world\n".repeat(10);
    let expected = [
        (ChecksumAlgorithm::Crc32, "FtmpAg=="),
        (ChecksumAlgorithm::Crc32c, "JwwnxQ=="),
        (ChecksumAlgorithm::Crc64Nvme, "794gEy4QBG4="),
        (ChecksumAlgorithm::Sha1, "7G3qdBuEVkSazBbF9hKAQ2HIgDc="),
        (
            ChecksumAlgorithm::Sha256,
            "xwGN7D1CJO8OjIrCG8yGDbcD126+dPE7yx5C2csNeso=",
        ),
    ];
    for (algorithm, value) in expected {
        assert_eq!(digest(algorithm, &body).value(), value, "{algorithm}");
    }
}

struct Setup {
    store: Store,
    app: TestApp,
}

async fn setup(kind: Kind) -> Setup {
    let store = Store::start(kind).await;
    let config = format!(
        r#"{}
[tenants.ipost]
bucket = "{BUCKET}"
max_size = 16777216

[tenants.iput]
bucket = "{BUCKET}"
upload_method = "put"
max_size = 16777216

[tenants.iputover]
bucket = "{BUCKET}"
upload_method = "put"
max_size = 16777216
prevent_overwrite = false

[tenants.irequire]
bucket = "{BUCKET}"
max_size = 16777216
require_checksum = ["SHA256", "CRC64NVME"]

[tenants.ibig]
bucket = "{BUCKET}"
max_size = 5497558138880
multipart_part_size = 5242880
"#,
        base_config().replace("http://127.0.0.1:9000", &store.endpoint)
    );
    let app = spawn_app_keyed(&config, store.access_key, store.secret_key).await;
    Setup { store, app }
}

async fn ticket(app: &TestApp, tenant: &str, body: Value) -> Value {
    json_of(
        app.upload(&token(tenant, "user-1"), &body).await,
        201,
        "post",
        "/uploads",
    )
    .await
}

/// PUTs `bytes` with every header the ticket signs (reqwest sets the length).
async fn put(url: &str, headers: &Value, bytes: Vec<u8>) -> reqwest::Response {
    let mut request = reqwest::Client::new().put(url);
    for (name, value) in headers.as_object().into_iter().flatten() {
        if name != "content-length" {
            request = request.header(name, value.as_str().unwrap());
        }
    }
    request.body(bytes).send().await.expect("the store answers")
}

async fn check(app: &TestApp, tenant: &str, key: &str, checksum: &Checksum) -> Value {
    let body = json!({"key": key, "checksum": declared(checksum)});
    json_of(
        call(app, &token(tenant, "user-1"), "/uploads/complete", &body).await,
        200,
        "post",
        "/uploads/complete",
    )
    .await
}

async fn post_tickets_carry_checksums_the_store_verifies(s: &Setup) {
    let body = b"hello checksum world\n".repeat(10);
    let other = b"other bytes of the same length, more or less....".repeat(4);
    for algorithm in ChecksumAlgorithm::ALL {
        let right = digest(algorithm, &body);
        let request = |checksum: &Checksum| json!({"filename": "a.txt", "size": body.len(), "checksum": declared(checksum)});

        // The fields, each pinned by the policy.
        let good = ticket(&s.app, "ipost", request(&right)).await;
        assert_eq!(good["fields"]["x-amz-checksum-algorithm"], algorithm.name());
        assert_eq!(good["fields"][algorithm.field()], right.value());
        let conditions = policy_of(&good)["conditions"].to_string();
        assert!(conditions.contains(&format!(
            r#"{{"{}":"{}"}}"#,
            algorithm.field(),
            right.value()
        )));
        let url = good["url"].as_str().unwrap();
        let response = post(url, &fields_of(&good), body.clone(), "text/plain").await;
        assert!(response.status().is_success(), "{algorithm}: {response:?}");
        let key = good["key"].as_str().unwrap();
        assert_eq!(s.store.read(key).await.as_deref(), Some(&body[..]));
        let report = check(&s.app, "ipost", key, &right).await;
        assert_eq!(report["matches"], true, "{report}");
        assert_eq!(
            report["checksum"]["algorithm"],
            algorithm.name(),
            "{report}"
        );
        assert_eq!(report["checksum"]["value"], right.value());
        // A POST tenant is told that its tickets could have been replayed.
        assert!(
            report["notes"][0]
                .as_str()
                .unwrap()
                .contains("If-None-Match")
        );

        // Other bytes than declared: the store refuses, nothing is stored.
        let ticket_for_other = ticket(&s.app, "ipost", request(&digest(algorithm, &other))).await;
        let response = post(
            url,
            &fields_of(&ticket_for_other),
            body.clone(),
            "text/plain",
        )
        .await;
        assert!(
            response.status().is_client_error(),
            "{algorithm}: {response:?}"
        );
        assert!(
            !s.store
                .exists(BUCKET, ticket_for_other["key"].as_str().unwrap())
                .await
        );

        // Another declaration in the form than in the policy: refused as well.
        let wrong = digest(algorithm, &other);
        let fresh = ticket(&s.app, "ipost", request(&right)).await;
        let mut fresh_fields = fields_of(&fresh);
        for (name, value) in &mut fresh_fields {
            if name == algorithm.field() {
                *value = wrong.value().to_owned();
            }
        }
        let response = post(url, &fresh_fields, other.clone(), "text/plain").await;
        assert!(
            response.status().is_client_error(),
            "{algorithm}: {response:?}"
        );
        assert!(!s.store.exists(BUCKET, fresh["key"].as_str().unwrap()).await);
    }
}

async fn put_tickets_sign_checksums_and_cannot_be_replayed(s: &Setup, observed: &Observed) {
    let body = b"put me exactly once\n".repeat(7);
    for algorithm in ChecksumAlgorithm::ALL {
        let right = digest(algorithm, &body);
        let request = |checksum: &Checksum| json!({"filename": "p.txt", "size": body.len(), "checksum": declared(checksum)});
        let good = ticket(&s.app, "iput", request(&right)).await;
        assert_eq!(good["headers"][algorithm.field()], right.value());
        assert_eq!(good["headers"]["if-none-match"], "*");
        let url = good["url"].as_str().unwrap();
        let response = put(url, &good["headers"], body.clone()).await;
        assert!(response.status().is_success(), "{algorithm}: {response:?}");
        let key = good["key"].as_str().unwrap();
        assert_eq!(s.store.read(key).await.as_deref(), Some(&body[..]));

        // The same URL replayed exactly: refused where the store evaluates
        // If-None-Match, and the first bytes stay.
        let replay = put(url, &good["headers"], body.clone()).await;
        if observed.put_if_none_match {
            assert_eq!(
                replay.status(),
                StatusCode::PRECONDITION_FAILED,
                "{algorithm}"
            );
            assert_eq!(s.store.read(key).await.as_deref(), Some(&body[..]));
        } else {
            assert!(replay.status().is_success(), "{algorithm}: {replay:?}");
        }

        let bad = ticket(&s.app, "iput", request(&digest(algorithm, b"nope"))).await;
        let url = bad["url"].as_str().unwrap();
        let response = put(url, &bad["headers"], body.clone()).await;
        assert!(
            response.status().is_client_error(),
            "{algorithm}: {response:?}"
        );
        assert!(!s.store.exists(BUCKET, bad["key"].as_str().unwrap()).await);
    }

    // A ticket with headers it did not sign (`x-amz-acl: public-read`, an
    // `x-amz-copy-source`) is refused by every store, and nothing is written: what
    // `doctor`'s put.unsigned-* checks say of them.
    let fresh = ticket(
        &s.app,
        "iput",
        json!({"filename": "u.txt", "size": body.len()}),
    )
    .await;
    let url = fresh["url"].as_str().unwrap();
    for (name, value) in [
        ("x-amz-acl", "public-read".to_owned()),
        (
            "x-amz-copy-source",
            format!("/{BUCKET}/{}", fresh["key"].as_str().unwrap()),
        ),
    ] {
        let mut headers = fresh["headers"].clone();
        headers[name] = json!(value);
        let response = put(url, &headers, body.clone()).await;
        // 403 (s3s-fs, SeaweedFS) or 400 InvalidRequest (Garage).
        assert!(response.status().is_client_error(), "{name}: {response:?}");
    }
    assert!(!s.store.exists(BUCKET, fresh["key"].as_str().unwrap()).await);

    // With prevent_overwrite = false a URL may be used again: every store takes it.
    let open = ticket(
        &s.app,
        "iputover",
        json!({"filename": "o.txt", "size": body.len()}),
    )
    .await;
    assert!(open["headers"].get("if-none-match").is_none());
    for _ in 0..2 {
        let response = put(
            open["url"].as_str().unwrap(),
            &open["headers"],
            body.clone(),
        )
        .await;
        assert!(response.status().is_success(), "{response:?}");
    }
}

/// Starts a multipart upload of `bytes` on `ibig` with `checksum` (a JSON declaration).
async fn start(s: &Setup, bytes: &[u8], checksum: Value) -> Value {
    let body = json!({"filename": "big.bin", "size": bytes.len(), "checksum": checksum});
    let response = call(
        &s.app,
        &token("ibig", "user-1"),
        "/uploads/multipart",
        &body,
    )
    .await;
    json_of(response, 201, "post", "/uploads/multipart").await
}

async fn sign_parts(s: &Setup, handle: &str, body: Value) -> reqwest::Response {
    let path = format!("/uploads/multipart/{handle}/parts");
    call(&s.app, &token("ibig", "user-1"), &path, &body).await
}

/// Part URLs for parts 1, 2, ... signed with `checksums`, one each, in order.
async fn signed_with(s: &Setup, handle: &str, checksums: &[&Checksum]) -> Vec<Value> {
    let numbers: Vec<usize> = (1..=checksums.len()).collect();
    let given: serde_json::Map<String, Value> = checksums
        .iter()
        .zip(&numbers)
        .map(|(c, n)| (n.to_string(), json!(c.value())))
        .collect();
    let body = json!({"part_numbers": numbers, "checksums": given});
    let signed = sign_parts(s, handle, body).await;
    let signed = json_of(signed, 200, "post", "/uploads/multipart/{handle}/parts").await;
    signed["parts"].as_array().unwrap().clone()
}

async fn complete(s: &Setup, handle: &str, body: Value) -> reqwest::Response {
    let path = format!("/uploads/multipart/{handle}/complete");
    call(&s.app, &token("ibig", "user-1"), &path, &body).await
}

/// PUTs each part to its URL (with its headers) and answers the completion's part list.
async fn upload_parts(parts: &[Value], chunks: &[&[u8]], checksums: &[Option<Checksum>]) -> Value {
    let mut list = Vec::new();
    for ((part, chunk), checksum) in parts.iter().zip(chunks).zip(checksums) {
        let response = put(
            part["url"].as_str().unwrap(),
            &part["headers"],
            chunk.to_vec(),
        )
        .await;
        assert!(response.status().is_success(), "{response:?}");
        let etag = response.headers()["etag"].to_str().unwrap().to_owned();
        let mut entry = json!({"part_number": part["part_number"], "etag": etag});
        if let Some(checksum) = checksum {
            entry["checksum"] = json!(checksum.value());
        }
        list.push(entry);
    }
    json!(list)
}

async fn multipart_uploads_verify_whole_and_part_checksums(s: &Setup, observed: &Observed) {
    let bytes = data(5 * MIB + 1000);
    let (first, second) = bytes.split_at(5 * MIB);
    let crc = ChecksumAlgorithm::Crc64Nvme;
    let whole = digest(crc, &bytes);

    // Full-object CRC-64 declared at the start; the parts signed with their own.
    let started = start(s, &bytes, declared(&whole)).await;
    assert_eq!(
        started["parts"],
        json!([]),
        "parts wait for their checksums"
    );
    let handle = started["handle"].as_str().unwrap();
    let without = sign_parts(s, handle, json!({"part_numbers": [1, 2]})).await;
    problem(without, 400, "invalid_request").await;
    let (part_one, part_two) = (digest(crc, first), digest(crc, second));
    let parts = signed_with(s, handle, &[&part_one, &part_two]).await;
    assert_eq!(parts[1]["headers"][crc.field()], part_two.value());
    // Part 1's checksum left for the service to take from the store's list.
    let list = upload_parts(&parts, &[first, second], &[None, Some(part_two)]).await;
    let done = complete(s, handle, json!({"parts": list})).await;
    let template = "/uploads/multipart/{handle}/complete";
    let done = json_of(done, 200, "post", template).await;
    assert_eq!(done["checksum"]["algorithm"], "CRC64NVME", "{done}");
    assert_eq!(done["checksum"]["value"], whole.value());
    let key = done["key"].as_str().unwrap();
    assert_eq!(s.store.read(key).await.as_deref(), Some(&bytes[..]));

    // The whole-object value given at completion, wrong: the store refuses it.
    let started = start(s, &bytes, json!({"algorithm": "CRC64NVME"})).await;
    let handle = started["handle"].as_str().unwrap();
    let parts = signed_with(s, handle, &[&part_one, &part_two]).await;
    let list = upload_parts(&parts, &[first, second], &[None, None]).await;
    let wrong = digest(crc, b"another file");
    let body = json!({"parts": list, "checksum": wrong.value()});
    let refused = problem(complete(s, handle, body).await, 422, "checksum_mismatch").await;
    assert!(refused["detail"].as_str().unwrap().contains("checksum"));
    assert!(
        !s.store
            .exists(BUCKET, started["key"].as_str().unwrap())
            .await
    );

    // A part whose bytes are not its declared checksum: the store refuses the part.
    let started = start(s, &bytes, json!({"algorithm": "CRC32C"})).await;
    let handle = started["handle"].as_str().unwrap();
    let lie = digest(ChecksumAlgorithm::Crc32c, b"not part one");
    let parts = signed_with(s, handle, &[&lie]).await;
    let part = &parts[0];
    let response = put(
        part["url"].as_str().unwrap(),
        &part["headers"],
        first.to_vec(),
    )
    .await;
    assert!(response.status().is_client_error(), "{response:?}");

    // SHA-256: verified part by part; every part URL needs the part's checksum.
    let sha = ChecksumAlgorithm::Sha256;
    let body =
        json!({"filename": "big.bin", "size": bytes.len(), "checksum": {"algorithm": "SHA256"}});
    let response = call(
        &s.app,
        &token("ibig", "user-1"),
        "/uploads/multipart",
        &body,
    )
    .await;
    if !observed.composite_multipart {
        let refused = problem(response, 422, "store_unsupported").await;
        assert!(refused["detail"].as_str().unwrap().contains("store"));
    } else {
        let started = json_of(response, 201, "post", "/uploads/multipart").await;
        assert_eq!(started["parts"], json!([]));
        let handle = started["handle"].as_str().unwrap();
        let without = sign_parts(s, handle, json!({"part_numbers": [1, 2]})).await;
        problem(without, 400, "invalid_request").await;
        let sums = [digest(sha, first), digest(sha, second)];
        let parts = signed_with(s, handle, &[&sums[0], &sums[1]]).await;
        let [one, two] = sums;
        let list = upload_parts(&parts, &[first, second], &[Some(one), Some(two)]).await;
        let done = complete(s, handle, json!({"parts": list})).await;
        let done = json_of(done, 200, "post", template).await;
        assert_eq!(done["checksum"]["algorithm"], "SHA256", "{done}");
        assert!(
            done["checksum"]["value"].as_str().unwrap().ends_with("-2"),
            "{done}"
        );
        let key = done["key"].as_str().unwrap();
        assert_eq!(s.store.read(key).await.as_deref(), Some(&bytes[..]));
    }
}

async fn completion_does_not_replace_an_object(s: &Setup, observed: &Observed) {
    let bytes = data(5 * MIB + 10);
    let (first, second) = bytes.split_at(5 * MIB);
    let started = start(s, &bytes, Value::Null).await;
    let handle = started["handle"].as_str().unwrap();
    let key = started["key"].as_str().unwrap();
    let parts = started["parts"].as_array().unwrap();
    let list = upload_parts(parts, &[first, second], &[None, None]).await;
    // Something else wrote the key meanwhile.
    s.store
        .client
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(b"first".to_vec().into())
        .send()
        .await
        .unwrap();
    let response = complete(s, handle, json!({"parts": list})).await;
    let (status, code) = match observed.complete_over_object {
        OverObject::Refused => (409, "object_exists"),
        OverObject::UploadGone => (404, "upload_not_found"),
    };
    problem(response, status, code).await;
    assert_eq!(s.store.read(key).await.as_deref(), Some(&b"first"[..]));
}

async fn the_completion_check_catches_what_the_store_let_through(s: &Setup) {
    // A ticket with a SHA-256, then the object replaced by other means (a leaked key,
    // a store that verifies nothing): the check says so in words.
    let body = b"checked after the fact\n".to_vec();
    let right = digest(ChecksumAlgorithm::Sha256, &body);
    let request = json!({"filename": "c.txt", "size": body.len(), "checksum": declared(&right)});
    let good = ticket(&s.app, "ipost", request).await;
    let url = good["url"].as_str().unwrap();
    let response = post(url, &fields_of(&good), body.clone(), "text/plain").await;
    assert!(response.status().is_success(), "{response:?}");
    let key = good["key"].as_str().unwrap();
    s.store
        .client
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(b"checked after the fact?".to_vec().into())
        .send()
        .await
        .unwrap();
    let report = check(&s.app, "ipost", key, &right).await;
    assert_eq!(report["matches"], false, "{report}");
    let mismatches = report["mismatches"].to_string();
    assert!(mismatches.contains("SHA256"), "{report}");
}

async fn tenants_can_require_a_checksum_and_bad_ones_are_named(s: &Setup) {
    let user = token("irequire", "user-1");
    let body = b"required".to_vec();
    let sha = digest(ChecksumAlgorithm::Sha256, &body);
    let crc32 = digest(ChecksumAlgorithm::Crc32, &body);
    let base = json!({"filename": "r.txt", "size": body.len()});
    let detail = problem(s.app.upload(&user, &base).await, 422, "checksum_required").await;
    assert!(
        detail["detail"]
            .as_str()
            .unwrap()
            .contains("SHA256 or CRC64NVME")
    );
    let with = |checksum: Value| {
        let mut body = base.clone();
        body["checksum"] = checksum;
        body
    };
    problem(
        s.app.upload(&user, &with(declared(&crc32))).await,
        422,
        "checksum_required",
    )
    .await;
    let good = ticket(&s.app, "irequire", with(declared(&sha))).await;
    let url = good["url"].as_str().unwrap();
    let response = post(url, &fields_of(&good), body.clone(), "text/plain").await;
    assert!(response.status().is_success(), "{response:?}");

    for (checksum, field) in [
        (
            json!({"algorithm": "MD5", "value": sha.value()}),
            "checksum.algorithm",
        ),
        (
            json!({"algorithm": "SHA256", "value": crc32.value()}),
            "checksum.value",
        ),
        (
            json!({"algorithm": "SHA256", "value": "not base64!"}),
            "checksum.value",
        ),
        (json!({"algorithm": "SHA256"}), "checksum.value"),
    ] {
        let refused = problem(
            s.app.upload(&user, &with(checksum)).await,
            400,
            "invalid_request",
        )
        .await;
        assert!(
            refused["detail"].as_str().unwrap().contains(field),
            "{refused}"
        );
    }
    for unknown in [
        json!({"algorithm": "SHA256", "value": sha.value(), "x": 1}),
        json!("SHA256"),
    ] {
        problem(
            s.app.upload(&user, &with(unknown)).await,
            400,
            "invalid_request",
        )
        .await;
    }
}

async fn matrix(kind: Kind) {
    let s = setup(kind).await;
    let observed = observed(kind);
    post_tickets_carry_checksums_the_store_verifies(&s).await;
    put_tickets_sign_checksums_and_cannot_be_replayed(&s, &observed).await;
    multipart_uploads_verify_whole_and_part_checksums(&s, &observed).await;
    completion_does_not_replace_an_object(&s, &observed).await;
    the_completion_check_catches_what_the_store_let_through(&s).await;
    tenants_can_require_a_checksum_and_bad_ones_are_named(&s).await;
}

#[tokio::test]
async fn integrity_holds_on_s3s_fs() {
    matrix(Kind::S3sFs).await;
}

#[tokio::test]
async fn integrity_holds_on_garage() {
    matrix(Kind::Garage).await;
}

#[tokio::test]
async fn integrity_holds_on_seaweedfs() {
    matrix(Kind::SeaweedFs).await;
}
