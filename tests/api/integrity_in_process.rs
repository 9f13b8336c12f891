//! Checksums and overwrites in process, on the in-memory store: a store that verifies
//! nothing (so the completion check is what catches a wrong object), and every bad
//! declaration refused before the store is called.

use s3_presigned_post::ChecksumAlgorithm;
use serde_json::{Value, json};
use upload_tickets::policy::{StoredChecksum, StoredObject};

use crate::fake_store::in_process;
use crate::helpers::*;

const MIB: u64 = 1024 * 1024;
const CRC64: &str = "794gEy4QBG4=";
const SHA256: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

fn start_body(checksum: Value) -> Value {
    json!({"filename": "big.bin", "size": 6 * MIB, "checksum": checksum})
}

#[tokio::test]
async fn bad_declarations_are_400s_that_never_reach_the_store() {
    let app = in_process().await;
    let alice = token("big", "alice");
    let bad = [
        json!({"algorithm": "MD5", "value": CRC64}),
        json!({"algorithm": "CRC64NVME", "value": SHA256}),
        json!({"algorithm": "CRC64NVME", "value": "794gEy4QBG5="}),
        json!({"algorithm": "SHA256", "value": null, "extra": 1}),
        json!({"value": CRC64}),
        json!(7),
    ];
    for checksum in bad {
        for path in ["/uploads/multipart", "/uploads"] {
            let (status, error) = app.post(path, &alice, start_body(checksum.clone())).await;
            assert_eq!(
                (status, error["code"].as_str()),
                (400, Some("invalid_request")),
                "{checksum} {error}"
            );
        }
    }
    // A whole-file SHA-256 cannot be checked on a multipart upload (composite).
    let composite = start_body(json!({"algorithm": "SHA256", "value": SHA256}));
    let (status, _) = app.post("/uploads/multipart", &alice, composite).await;
    assert_eq!(status, 400);
    assert_eq!(app.store.calls(), 0, "no bad declaration reached the store");
}

#[tokio::test]
async fn part_and_completion_checksums_are_checked_before_the_store() {
    let app = in_process().await;
    let alice = token("big", "alice");
    let (status, started) = app
        .post(
            "/uploads/multipart",
            &alice,
            start_body(json!({"algorithm": "CRC64NVME", "value": CRC64})),
        )
        .await;
    assert_eq!(status, 201, "{started}");
    assert_eq!(started["parts"], json!([]));
    let handle = started["handle"].as_str().unwrap();
    let parts_path = format!("/uploads/multipart/{handle}/parts");
    let calls = app.store.calls();
    for (body, detail) in [
        (json!({"part_numbers": [1, 2]}), "checksums.1"),
        (
            json!({"part_numbers": [1], "checksums": {"1": CRC64, "2": CRC64}}),
            "checksums.2: not a part of this batch",
        ),
        (
            json!({"part_numbers": [1], "checksums": {"one": CRC64}}),
            "checksums.one",
        ),
        (
            json!({"part_numbers": [1], "checksums": {"1": SHA256}}),
            "checksums.1: invalid CRC64NVME checksum",
        ),
    ] {
        let (status, error) = app.post(&parts_path, &alice, body).await;
        assert_eq!(status, 400, "{error}");
        assert!(
            error["detail"].as_str().unwrap().starts_with(detail),
            "{error}"
        );
    }
    let (status, signed) = app
        .post(
            &parts_path,
            &alice,
            json!({"part_numbers": [1, 2], "checksums": {"1": CRC64, "2": CRC64}}),
        )
        .await;
    assert_eq!(status, 200, "{signed}");
    assert_eq!(
        signed["parts"][0]["headers"]["x-amz-checksum-crc64nvme"],
        CRC64
    );
    assert!(
        signed["parts"][0]["url"]
            .as_str()
            .unwrap()
            .contains("x-amz-checksum-crc64nvme")
    );

    let mut body = app.upload_parts(&started, 0);
    let complete_path = format!("/uploads/multipart/{handle}/complete");
    body["checksum"] = json!("AAAAAAAAAAA=");
    let (status, error) = app.post(&complete_path, &alice, body.clone()).await;
    assert_eq!(status, 400, "{error}");
    assert!(
        error["detail"]
            .as_str()
            .unwrap()
            .contains("differs from the one declared")
    );
    body["checksum"] = json!("short");
    let (status, _) = app.post(&complete_path, &alice, body.clone()).await;
    assert_eq!(status, 400);
    body["checksum"] = Value::Null;
    body["parts"][0]["checksum"] = json!(SHA256);
    let (status, error) = app.post(&complete_path, &alice, body.clone()).await;
    assert_eq!(status, 400, "{error}");
    assert!(
        error["detail"]
            .as_str()
            .unwrap()
            .starts_with("parts.1.checksum")
    );
    assert_eq!(app.store.calls(), calls, "nothing reached the store");

    // Well formed: the whole-object checksum goes to the store with the completion.
    body["parts"][0]["checksum"] = json!(CRC64);
    let (status, done) = app.post(&complete_path, &alice, body).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(
        done["checksum"],
        json!({"algorithm": "CRC64NVME", "value": CRC64, "type": "FULL_OBJECT"})
    );
}

#[tokio::test]
async fn uploads_without_an_algorithm_take_no_checksums_and_composites_no_whole_value() {
    let app = in_process().await;
    let alice = token("big", "alice");
    let plain = app.start(&alice, 6 * MIB).await;
    let handle = plain["handle"].as_str().unwrap();
    let (status, error) = app
        .post(
            &format!("/uploads/multipart/{handle}/parts"),
            &alice,
            json!({"part_numbers": [1], "checksums": {"1": CRC64}}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        error["detail"]
            .as_str()
            .unwrap()
            .contains("without a checksum algorithm")
    );
    let mut body = app.upload_parts(&plain, 0);
    body["checksum"] = json!(CRC64);
    let (status, _) = app
        .post(
            &format!("/uploads/multipart/{handle}/complete"),
            &alice,
            body,
        )
        .await;
    assert_eq!(status, 400);

    let (status, sha) = app
        .post(
            "/uploads/multipart",
            &alice,
            start_body(json!({"algorithm": "SHA256"})),
        )
        .await;
    assert_eq!(status, 201, "{sha}");
    let handle = sha["handle"].as_str().unwrap();
    let mut body = app.upload_parts(&sha, 0);
    body["checksum"] = json!(SHA256);
    let (status, error) = app
        .post(
            &format!("/uploads/multipart/{handle}/complete"),
            &alice,
            body,
        )
        .await;
    assert_eq!(status, 400);
    assert!(error["detail"].as_str().unwrap().contains("part by part"));
}

#[tokio::test]
async fn completion_does_not_replace_an_object_the_key_already_holds() {
    let app = in_process().await;
    let alice = token("big", "alice");
    let started = app.start(&alice, 6 * MIB).await;
    let key = started["key"].as_str().unwrap();
    app.store.put_object(
        "big-uploads",
        key,
        StoredObject {
            size: 1,
            ..StoredObject::default()
        },
    );
    let body = app.upload_parts(&started, 0);
    let handle = started["handle"].as_str().unwrap();
    let (status, error) = app
        .post(
            &format!("/uploads/multipart/{handle}/complete"),
            &alice,
            body,
        )
        .await;
    assert_eq!(
        (status, error["code"].as_str()),
        (409, Some("object_exists")),
        "{error}"
    );
    assert_eq!(app.store.object("big-uploads", key).unwrap().object.size, 1);
}

#[tokio::test]
async fn the_completion_check_catches_a_checksum_the_store_did_not_verify() {
    let app = in_process().await;
    let alice = token("big", "alice");
    let key = "big/alice/x/a.bin";
    let stored = |value: &str| StoredObject {
        size: 10,
        checksum: Some(StoredChecksum {
            algorithm: ChecksumAlgorithm::Sha256,
            value: value.to_owned(),
            kind: None,
        }),
        ..StoredObject::default()
    };
    let check = json!({"key": key, "checksum": {"algorithm": "SHA256", "value": SHA256}});
    // The store kept what it was told, without looking at the bytes.
    app.store.put_object("big-uploads", key, stored(SHA256));
    let (status, report) = app.post("/uploads/complete", &alice, check.clone()).await;
    assert_eq!(
        (status, &report["matches"]),
        (200, &json!(true)),
        "{report}"
    );
    assert_eq!(report["checksum"]["value"], SHA256);

    // Other bytes landed: the store's checksum says so.
    let other = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    app.store.put_object("big-uploads", key, stored(other));
    let (_, report) = app.post("/uploads/complete", &alice, check.clone()).await;
    assert_eq!(report["matches"], false);
    assert_eq!(
        report["mismatches"],
        json!([format!(
            "SHA256 checksum {other} is not the declared {SHA256}"
        )])
    );

    // A store that keeps no checksum cannot confirm one.
    app.store.put_object(
        "big-uploads",
        key,
        StoredObject {
            size: 10,
            ..StoredObject::default()
        },
    );
    let (_, report) = app.post("/uploads/complete", &alice, check).await;
    assert_eq!(report["matches"], false);
    assert!(
        report["mismatches"][0]
            .as_str()
            .unwrap()
            .contains("unconfirmed"),
        "{report}"
    );
    // Bad declarations to the check are 400s too.
    let bad = json!({"key": key, "checksum": {"algorithm": "SHA256", "value": CRC64}});
    let (status, _) = app.post("/uploads/complete", &alice, bad).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_tenant_that_requires_a_checksum_gets_the_whole_value_before_completing() {
    let app = in_process().await;
    let bob = token("strict", "bob");
    let (status, error) = app
        .post(
            "/uploads/multipart",
            &bob,
            json!({"filename": "s.bin", "size": 6 * MIB}),
        )
        .await;
    assert_eq!(
        (status, error["code"].as_str()),
        (422, Some("checksum_required"))
    );
    let (status, started) = app
        .post(
            "/uploads/multipart",
            &bob,
            start_body(json!({"algorithm": "CRC64NVME"})),
        )
        .await;
    assert_eq!(status, 201, "{started}");
    let handle = started["handle"].as_str().unwrap();
    let mut body = app.upload_parts(&started, 0);
    let path = format!("/uploads/multipart/{handle}/complete");
    let calls = app.store.calls();
    let (status, error) = app.post(&path, &bob, body.clone()).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (422, Some("checksum_required")),
        "{error}"
    );
    assert!(error["detail"].as_str().unwrap().contains("CRC64NVME"));
    assert_eq!(app.store.calls(), calls, "refused before the store");
    body["checksum"] = json!(CRC64);
    let (status, done) = app.post(&path, &bob, body).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["checksum"]["value"], CRC64);
}
