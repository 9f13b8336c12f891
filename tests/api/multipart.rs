//! Large files and verified uploads against every real store the suite runs (s3s-fs,
//! Garage, SeaweedFS): multipart uploads bound to their owner, PUT tickets, and the
//! completion check with its webhook.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;
use crate::receiver::Receiver;
use crate::store::{Kind, Store, on_every_store};

const MIB: usize = 1024 * 1024;

struct Setup {
    store: Store,
    app: TestApp,
    hooks: Receiver,
}

async fn setup(kind: Kind) -> Setup {
    let store = Store::start(kind).await;
    for bucket in ["shared-uploads", "big-uploads", "put-uploads"] {
        store.create_bucket(bucket).await;
    }
    let hooks = Receiver::start().await;
    let hook_url = &hooks.url;
    let config = format!(
        r#"{}
[tenants.big]
bucket = "big-uploads"
max_size = 5497558138880
multipart_part_size = 5242880
content_types = ["application/octet-stream", "video/*"]
metadata_keys = ["album"]
completion_webhook_url = "{hook_url}"
completion_webhook_secret_env = "{WEBHOOK_SECRET_ENV}"

[tenants.putter]
bucket = "put-uploads"
upload_method = "put"
max_size = 1000
content_types = ["text/plain"]
metadata_keys = ["album"]
"#,
        base_config().replace("http://127.0.0.1:9000", &store.endpoint)
    );
    let app = spawn_app_keyed(&config, store.access_key, store.secret_key).await;
    Setup { store, app, hooks }
}

on_every_store!(
    a_multipart_upload_completes_reads_back_identical_and_is_reported,
    nobody_else_can_sign_parts_complete_abort_or_check_an_upload,
    the_declared_size_is_held_at_completion,
    put_tickets_upload_and_the_store_refuses_another_length_or_type,
    the_completion_check_reports_objects_that_break_the_rules,
);

/// `POST path` with a token and a JSON body.
pub(crate) async fn call(
    app: &TestApp,
    token: &str,
    path: &str,
    body: &Value,
) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("the server answers")
}

/// The JSON of a response with `status`, checked against the spec for `method` and the
/// path `template`.
pub(crate) async fn json_of(
    response: reqwest::Response,
    status: u16,
    method: &str,
    template: &str,
) -> Value {
    let code = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    assert_eq!(code, status, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    crate::openapi::assert_declared(
        &crate::openapi::spec(),
        method,
        template,
        code,
        &content_type,
        &body,
    );
    body
}

/// PUTs `bytes` to a presigned part URL and returns the part's ETag.
async fn put_part(url: &str, bytes: Vec<u8>) -> String {
    let response = reqwest::Client::new()
        .put(url)
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let etag = response
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_owned());
    assert!(status.is_success(), "{}", response.text().await.unwrap());
    etag.expect("an ETag")
}

/// `len` bytes that start as an MP4 file does (the uploads are checked: their first
/// bytes must be what their type says), then vary.
pub(crate) fn data(len: usize) -> Vec<u8> {
    const MP4: &[u8] = b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2";
    let mut bytes: Vec<u8> = (0..len).map(|i| (i * 31 % 253) as u8).collect();
    let head = MP4.len().min(len);
    bytes[..head].copy_from_slice(&MP4[..head]);
    bytes
}

async fn a_multipart_upload_completes_reads_back_identical_and_is_reported(kind: Kind) {
    let Setup {
        store, app, hooks, ..
    } = setup(kind).await;
    let alice = token("big", "alice");
    let bytes = data(11 * MIB);
    let started = json_of(
        call(
            &app,
            &alice,
            "/uploads/multipart",
            &json!({"filename": "film.mp4", "content_type": "video/mp4", "size": bytes.len(), "metadata": {"album": "2026"}}),
        )
        .await,
        201, "post", "/uploads/multipart",
    )
    .await;
    assert_eq!(started["part_size"], 5 * MIB);
    assert_eq!(started["part_count"], 3);
    assert_eq!(started["parts"].as_array().unwrap().len(), 3);
    let key = started["key"].as_str().unwrap().to_owned();
    assert!(
        key.starts_with("big/alice/") && key.ends_with("/film.mp4"),
        "{key}"
    );
    let handle = started["handle"].as_str().unwrap().to_owned();

    let mut etags = Vec::new();
    for (i, chunk) in bytes.chunks(5 * MIB).enumerate().take(2) {
        let url = started["parts"][i]["url"].as_str().unwrap();
        etags.push(put_part(url, chunk.to_vec()).await);
    }
    // The last part's URL again, from the batch endpoint (as after a resume).
    let signed = json_of(
        call(
            &app,
            &alice,
            &format!("/uploads/multipart/{handle}/parts"),
            &json!({"part_numbers": [3]}),
        )
        .await,
        200,
        "post",
        "/uploads/multipart/{handle}/parts",
    )
    .await;
    assert_eq!(signed["parts"][0]["part_number"], 3);
    etags.push(
        put_part(
            signed["parts"][0]["url"].as_str().unwrap(),
            bytes[10 * MIB..].to_vec(),
        )
        .await,
    );

    let parts: Vec<Value> = etags
        .iter()
        .enumerate()
        .map(|(i, etag)| json!({"part_number": i + 1, "etag": etag}))
        .collect();
    let done = json_of(
        call(
            &app,
            &alice,
            &format!("/uploads/multipart/{handle}/complete"),
            &json!({"parts": parts}),
        )
        .await,
        200,
        "post",
        "/uploads/multipart/{handle}/complete",
    )
    .await;
    assert_eq!(done["key"], key.as_str());
    assert_eq!(done["size"], bytes.len());

    let object = store
        .client
        .get_object()
        .bucket("big-uploads")
        .key(&key)
        .send()
        .await
        .expect("the object exists");
    assert_eq!(object.content_type(), Some("video/mp4"));
    assert_eq!(
        object
            .metadata()
            .and_then(|m| m.get("album"))
            .map(String::as_str),
        Some("2026")
    );
    let stored = object.body.collect().await.unwrap().into_bytes();
    assert!(stored.as_ref() == bytes.as_slice(), "the bytes differ");

    // The completion reported the upload, verified (its first bytes too): one signed
    // `upload.completed` event, with no call from the client.
    let delivered = hooks.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(delivered.len(), 1, "{:?}", hooks.attempts());
    let event = delivered[0].event();
    assert_eq!(event["type"], "upload.completed", "{event}");
    let data = &event["data"];
    assert_eq!(data["tenant"], "big");
    assert_eq!(data["subject"], "alice");
    assert_eq!(data["key"], key.as_str());
    assert_eq!(data["size"], bytes.len());
    assert_eq!(data["content_type"], "video/mp4");
    assert_eq!(data["metadata"]["album"], "2026");
    assert_eq!(data["found_by"], "multipart");
    assert_eq!(data["mismatches"], json!([]));
    assert!(delivered[0].id.starts_with("msg_"), "{}", delivered[0].id);

    // The client's check afterwards: a match, but reported already: no second event.
    let report = json_of(
        call(
            &app,
            &alice,
            "/uploads/complete",
            &json!({"key": key, "size": bytes.len(), "content_type": "video/mp4"}),
        )
        .await,
        200,
        "post",
        "/uploads/complete",
    )
    .await;
    assert_eq!(report["matches"], true, "{report}");
    assert_eq!(report["size"], bytes.len());
    assert_eq!(report["metadata"]["album"], "2026");
    assert_eq!(report["reported"], false, "{report}");
    assert_eq!(report["event_id"], Value::Null);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(hooks.accepted().len(), 1, "one event per upload");

    let metrics = app.get("/metrics").await.text().await.unwrap();
    for series in [
        r#"upload_tickets_operations_total{tenant="big",operation="multipart_started"}"#,
        r#"upload_tickets_operations_total{tenant="big",operation="parts_signed"}"#,
        r#"upload_tickets_operations_total{tenant="big",operation="multipart_completed"}"#,
        r#"upload_tickets_completion_checks_total{tenant="big",result="match"}"#,
        r#"upload_tickets_events_total{tenant="big",result="delivered"}"#,
        r#"upload_tickets_uploads_verified_total{tenant="big",result="accepted"}"#,
    ] {
        assert!(metrics.contains(series), "{series} is not in /metrics");
    }
}

async fn nobody_else_can_sign_parts_complete_abort_or_check_an_upload(kind: Kind) {
    let Setup { store, app, .. } = setup(kind).await;
    let alice = token("big", "alice");
    let started = json_of(
        call(
            &app,
            &alice,
            "/uploads/multipart",
            &json!({"filename": "a.bin", "content_type": "application/octet-stream", "size": 6 * MIB}),
        )
        .await,
        201, "post", "/uploads/multipart",
    )
    .await;
    let handle = started["handle"].as_str().unwrap().to_owned();
    let key = started["key"].as_str().unwrap().to_owned();
    let etag = put_part(started["parts"][0]["url"].as_str().unwrap(), data(5 * MIB)).await;

    let parts = format!("/uploads/multipart/{handle}/parts");
    let complete = format!("/uploads/multipart/{handle}/complete");
    let delete = |t: &str| {
        app.client
            .delete(app.url(&format!("/uploads/multipart/{handle}")))
            .bearer_auth(t.to_owned())
            .send()
    };
    let parts_body = json!({"part_numbers": [1]});
    let complete_body =
        json!({"parts": [{"part_number": 1, "etag": etag}, {"part_number": 2, "etag": "\"x\""}]});
    // Another subject of the same tenant, a subject of the same name in another tenant,
    // and a subject whose escaped name starts like alice's.
    for other in [
        token("big", "bob"),
        token("acme", "alice"),
        token("big", "alice/x"),
    ] {
        problem(
            call(&app, &other, &parts, &parts_body).await,
            403,
            "not_owner",
        )
        .await;
        problem(
            call(&app, &other, &complete, &complete_body).await,
            403,
            "not_owner",
        )
        .await;
        problem(delete(&other).await.unwrap(), 403, "not_owner").await;
        problem(
            call(&app, &other, "/uploads/complete", &json!({"key": key})).await,
            403,
            "not_owner",
        )
        .await;
    }
    // A forged or tampered handle is no handle.
    let mut tampered = handle.clone();
    tampered.replace_range(tampered.len() - 3.., "AAA");
    for bad in [tampered.as_str(), "not-a-handle"] {
        problem(
            call(
                &app,
                &alice,
                &format!("/uploads/multipart/{bad}/parts"),
                &parts_body,
            )
            .await,
            404,
            "upload_not_found",
        )
        .await;
    }
    // Part numbers beyond the upload are refused.
    problem(
        call(&app, &alice, &parts, &json!({"part_numbers": [3]})).await,
        422,
        "parts_invalid",
    )
    .await;

    // The owner aborts: gone from the store, nothing stored.
    let response = delete(&alice).await.unwrap();
    assert_eq!(response.status(), 204);
    let response = call(&app, &alice, &complete, &complete_body).await;
    assert!(response.status().is_client_error() || response.status().is_server_error());
    assert!(!store.exists("big-uploads", &key).await);
}

async fn the_declared_size_is_held_at_completion(kind: Kind) {
    let Setup { store, app, .. } = setup(kind).await;
    let alice = token("big", "alice");
    let size = 5 * MIB + 10;
    let started = json_of(
        call(
            &app,
            &alice,
            "/uploads/multipart",
            &json!({"filename": "a.bin", "content_type": "application/octet-stream", "size": size}),
        )
        .await,
        201,
        "post",
        "/uploads/multipart",
    )
    .await;
    let handle = started["handle"].as_str().unwrap();
    let first = put_part(started["parts"][0]["url"].as_str().unwrap(), data(5 * MIB)).await;
    // The last part carries 20 bytes instead of 10: its URL signs its length, and the
    // store refuses it.
    assert_eq!(started["parts"][1]["headers"]["content-length"], "10");
    let longer = reqwest::Client::new()
        .put(started["parts"][1]["url"].as_str().unwrap())
        .body(data(20))
        .send()
        .await
        .unwrap();
    assert!(
        longer.status().is_client_error(),
        "{}",
        longer.text().await.unwrap()
    );
    // Completing without it: the part is not in the store.
    let body = problem(
        call(
            &app,
            &alice,
            &format!("/uploads/multipart/{handle}/complete"),
            &json!({"parts": [{"part_number": 1, "etag": first}, {"part_number": 2, "etag": "\"0f343b0931126a20f133d67c2b018a3b\""}]}),
        )
        .await,
        422,
        "parts_invalid",
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("part 2"),
        "{body}"
    );
    let second = put_part(started["parts"][1]["url"].as_str().unwrap(), data(10)).await;
    assert!(
        !store
            .exists("big-uploads", started["key"].as_str().unwrap())
            .await
    );

    // Missing parts or parts out of order are refused before the store is asked.
    problem(
        call(
            &app,
            &alice,
            &format!("/uploads/multipart/{handle}/complete"),
            &json!({"parts": [{"part_number": 2, "etag": second}, {"part_number": 1, "etag": first}]}),
        )
        .await,
        422,
        "parts_invalid",
    )
    .await;
    // A size is required, and held to the tenant's rules.
    problem(
        call(
            &app,
            &alice,
            "/uploads/multipart",
            &json!({"filename": "a.bin", "content_type": "video/mp4"}),
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    problem(
        call(
            &app,
            &alice,
            "/uploads/multipart",
            &json!({"filename": "a.exe", "content_type": "application/x-msdownload", "size": 10}),
        )
        .await,
        422,
        "content_type_not_allowed",
    )
    .await;
    problem(
        call(&app, &alice, "/uploads/multipart", &json!({"filename": "a.bin", "content_type": "video/mp4", "size": 5_497_558_138_881u64})).await,
        422,
        "file_too_large",
    )
    .await;
    // Over 5 GiB a single-request ticket is refused with the way out in the detail.
    let body = problem(
        app.upload(
            &alice,
            &json!({"filename": "a.mp4", "content_type": "video/mp4", "size": 6u64 << 30}),
        )
        .await,
        422,
        "file_too_large",
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("/uploads/multipart"),
        "{body}"
    );
}

async fn put_tickets_upload_and_the_store_refuses_another_length_or_type(kind: Kind) {
    let Setup { store, app, .. } = setup(kind).await;
    let user = token("putter", "u1");
    let text = b"hello world".to_vec();
    let ticket = |size: usize| {
        let user = user.clone();
        let app = &app;
        async move {
            json_of(
                app.upload(&user, &json!({"filename": "note.txt", "content_type": "text/plain", "size": size, "metadata": {"album": "x"}}))
                    .await,
                201, "post", "/uploads",
            )
            .await
        }
    };
    let put = |ticket: &Value, body: Vec<u8>, content_type: &str| {
        let mut request = reqwest::Client::new()
            .put(ticket["url"].as_str().unwrap())
            .body(body);
        for (name, value) in ticket["headers"].as_object().unwrap() {
            // The length comes from the body; the type is the one under test.
            if name != "content-length" && name != "content-type" {
                request = request.header(name, value.as_str().unwrap());
            }
        }
        request
            .header("content-type", content_type.to_owned())
            .send()
    };

    let good = ticket(text.len()).await;
    assert_eq!(good["method"], "PUT");
    assert_eq!(good["headers"]["content-length"], "11");
    assert_eq!(good["headers"]["content-type"], "text/plain");
    assert_eq!(good["headers"]["x-amz-meta-album"], "x");
    let response = put(&good, text.clone(), "text/plain").await.unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );
    let object = store
        .client
        .get_object()
        .bucket("put-uploads")
        .key(good["key"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(object.content_type(), Some("text/plain"));
    assert_eq!(
        object.body.collect().await.unwrap().into_bytes().as_ref(),
        text.as_slice()
    );

    // One byte more than signed: refused by the store, nothing stored.
    let other = ticket(text.len()).await;
    let response = put(&other, b"hello world!".to_vec(), "text/plain")
        .await
        .unwrap();
    assert!(response.status().is_client_error(), "{}", response.status());
    let response = put(&other, text.clone(), "text/html").await.unwrap();
    assert!(response.status().is_client_error(), "{}", response.status());
    assert!(
        !store
            .exists("put-uploads", other["key"].as_str().unwrap())
            .await
    );

    // A PUT ticket needs the size, and the tenant's rules still apply.
    problem(
        app.upload(
            &user,
            &json!({"filename": "note.txt", "content_type": "text/plain"}),
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    problem(
        app.upload(
            &user,
            &json!({"filename": "note.txt", "content_type": "text/plain", "size": 1001}),
        )
        .await,
        422,
        "file_too_large",
    )
    .await;
}

async fn the_completion_check_reports_objects_that_break_the_rules(kind: Kind) {
    let Setup { store, app, .. } = setup(kind).await;
    let alice = token("acme", "alice");
    // Something put there by other means: too big, a forbidden type, odd metadata.
    let key = "acme/alice/planted/a.exe";
    store
        .client
        .put_object()
        .bucket("shared-uploads")
        .key(key)
        .content_type("application/x-msdownload")
        .metadata("evil", "1")
        .body(data(2 * MIB).into())
        .send()
        .await
        .unwrap();
    let report = json_of(
        call(
            &app,
            &alice,
            "/uploads/complete",
            &json!({"key": key, "size": 10}),
        )
        .await,
        200,
        "post",
        "/uploads/complete",
    )
    .await;
    assert_eq!(report["matches"], false);
    let mismatches = report["mismatches"].as_array().unwrap();
    // Its size, type, metadata, the declared size, and its bytes (an MP4, not an .exe).
    assert_eq!(mismatches.len(), 5, "{report}");
    assert!(
        mismatches[4]
            .as_str()
            .unwrap()
            .contains("the content is video/mp4"),
        "{report}"
    );
    // No ticket of this service wrote it: reported by nobody, left as it is.
    assert_eq!(report["reported"], false, "{report}");
    assert_eq!(report["action"], "kept");
    assert!(report["event_id"].is_null());
    assert!(store.exists("shared-uploads", key).await);

    problem(
        call(
            &app,
            &alice,
            "/uploads/complete",
            &json!({"key": "acme/alice/none/a.pdf"}),
        )
        .await,
        404,
        "object_not_found",
    )
    .await;
    // Outside the prefix, or inside it only as text: a store mapping keys to files
    // could resolve `..` out of it.
    for outside in [
        "acme/bob/x/a.pdf",
        "globex/alice/x",
        "acme/alice",
        "acme/alice/../bob/x/a.pdf",
        "acme/alice/./x",
        "acme/alice//x",
    ] {
        let response = call(&app, &alice, "/uploads/complete", &json!({"key": outside})).await;
        assert_eq!(response.status(), 403, "{outside}");
        problem(response, 403, "not_owner").await;
    }
}

#[tokio::test]
async fn the_service_reaches_the_store_at_its_own_endpoint_and_tickets_name_the_public_one() {
    let store = Store::start(Kind::S3sFs).await;
    store.create_bucket("shared-uploads").await;
    // Browsers would use http://localhost:9 (nothing listens there); the service uses
    // the store's real address.
    let config = base_config()
        .replace("http://127.0.0.1:9000", "http://localhost:9")
        .replace(
            "force_path_style = true",
            &format!(
                "force_path_style = true\nservice_endpoint = \"{}\"",
                store.endpoint
            ),
        );
    let app = spawn_app_on(&config).await;
    let alice = token("acme", "alice");
    let started = json_of(
        call(
            &app,
            &alice,
            "/uploads/multipart",
            &json!({"filename": "a.pdf", "content_type": "application/pdf", "size": 1000}),
        )
        .await,
        201,
        "post",
        "/uploads/multipart",
    )
    .await;
    let url = started["parts"][0]["url"].as_str().unwrap();
    assert!(
        url.starts_with("http://localhost:9/shared-uploads/acme/alice/"),
        "{url}"
    );
    let response = app
        .client
        .delete(app.url(&format!(
            "/uploads/multipart/{}",
            started["handle"].as_str().unwrap()
        )))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
}
