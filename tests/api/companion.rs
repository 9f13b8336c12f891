//! Uppy Companion's S3 routes in process, on the memory store: the requests
//! `@uppy/aws-s3` 5.x sends (read from its source), every refusal, and that no key,
//! upload id or part number from the browser reaches another subject's upload. Real
//! Uppy in Chromium against real stores is in `uppy.rs`.

use axum::http::Method;
use serde_json::{Value, json};
use upload_tickets::config::{Config, Settings, Source};

use crate::fake_store::{InProcess, in_process};
use crate::helpers::*;

const MIB: u64 = 1024 * 1024;

/// The store's own upload id, which only the handle (Uppy's "upload id") carries.
pub(crate) fn store_upload_id(handle: &str) -> String {
    let payload = handle.split('.').nth(1).unwrap();
    let claims: Value =
        serde_json::from_slice(&base64_simd::URL_SAFE_NO_PAD.decode_to_vec(payload).unwrap())
            .unwrap();
    claims["upload_id"].as_str().unwrap().to_owned()
}

pub(crate) fn enc(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

async fn get(app: &InProcess, path: &str, token: &str) -> (u16, Value) {
    app.call(Method::GET, path, token, Value::Null).await
}

/// Starts an upload the way Uppy does (no size unless `meta` has one).
pub(crate) async fn create(app: &InProcess, token: &str, meta: Value) -> Value {
    let body = json!({"filename": "big.bin", "type": "application/octet-stream", "metadata": meta});
    let (status, created) = app.post("/s3/multipart", token, body).await;
    assert_eq!(status, 200, "{created}");
    created
}

pub(crate) fn on(created: &Value, rest: &str) -> String {
    format!(
        "/s3/multipart/{}{rest}?key={}",
        created["uploadId"].as_str().unwrap(),
        enc(created["key"].as_str().unwrap())
    )
}

fn refused<'a>(status: u16, body: &'a Value, want: (u16, &str)) -> &'a Value {
    assert_eq!(
        (status, body["code"].as_str().unwrap_or("")),
        want,
        "{body}"
    );
    // Uppy's Dashboard shows `message`: the same words as `detail`.
    assert_eq!(body["message"], body["detail"], "{body}");
    body
}

#[tokio::test]
async fn params_answer_a_post_ticket_uppy_can_use_and_refuse_in_words() {
    let app = in_process().await;
    let alice = token("acme", "alice");
    let query = "filename=cat.png&type=image%2Fpng&metadata%5Bname%5D=cat.png\
                 &metadata%5Btype%5D=image%2Fpng&metadata%5Balbum%5D=pets";
    let (status, ticket) = get(&app, &format!("/s3/params?{query}"), &alice).await;
    assert_eq!(status, 200, "{ticket}");
    assert_eq!(ticket["method"], "POST");
    let key = ticket["fields"]["key"].as_str().unwrap();
    assert!(
        key.starts_with("acme/alice/") && key.ends_with("/cat.png"),
        "{key}"
    );
    assert_eq!(ticket["key"], key);
    // Uppy's own meta (name, type) is not object metadata; the rest is, by the rules.
    assert_eq!(ticket["fields"]["x-amz-meta-album"], "pets");
    assert!(
        ticket["fields"].get("x-amz-meta-name").is_none(),
        "{ticket}"
    );
    assert_eq!(ticket["fields"]["Content-Type"], "image/png");

    let cases = [
        (
            "filename=a.exe&type=application%2Fx-msdownload",
            (422, "content_type_not_allowed"),
        ),
        ("type=image%2Fpng", (400, "invalid_request")),
        (
            "filename=a.png&type=image%2Fpng&metadata%5Bcolour%5D=red",
            (422, "metadata_not_allowed"),
        ),
        (
            "filename=a.png&type=image%2Fpng&bucket=other",
            (400, "invalid_request"),
        ),
        (
            "filename=a.png&filename=b.png&type=image%2Fpng",
            (400, "invalid_request"),
        ),
        (
            "filename=a.png&type=image%2Fpng&metadata%5Bsize%5D=many",
            (400, "invalid_request"),
        ),
        (
            "filename=a.png&type=image%2Fpng&metadata%5Bsize%5D=2000000",
            (422, "file_too_large"),
        ),
    ];
    for (query, want) in cases {
        let (status, body) = get(&app, &format!("/s3/params?{query}"), &alice).await;
        refused(status, &body, want);
    }
    let (status, body) = get(&app, "/s3/params?filename=a.png", "not-a-token").await;
    refused(status, &body, (401, "invalid_token"));
}

#[tokio::test]
async fn a_declared_size_in_the_meta_pins_the_ticket() {
    let app = in_process().await;
    let alice = token("acme", "alice");
    let query = "filename=a.png&type=image%2Fpng&metadata%5Bsize%5D=1234";
    let (status, ticket) = get(&app, &format!("/s3/params?{query}"), &alice).await;
    assert_eq!(status, 200, "{ticket}");
    assert_eq!(
        (ticket["min_size"].as_u64(), ticket["max_size"].as_u64()),
        (Some(1234), Some(1234))
    );
}

#[tokio::test]
async fn a_multipart_upload_in_uppys_own_layout_completes_and_reports_where_it_landed() {
    let app = in_process().await;
    let alice = token("big", "alice");
    let created = create(
        &app,
        &alice,
        json!({"name": "big.bin", "type": "application/octet-stream"}),
    )
    .await;
    let key = created["key"].as_str().unwrap();
    assert!(key.starts_with("big/alice/"), "{created}");
    assert_eq!(created["bucket"], "big-uploads");

    let (status, part) = get(&app, &on(&created, "/1"), &alice).await;
    assert_eq!(status, 200, "{part}");
    let url = part["url"].as_str().unwrap();
    assert!(
        url.contains("partNumber=1&") && url.contains("X-Amz-Signature="),
        "{url}"
    );
    assert!(part["expires"].as_u64().unwrap() > 0);

    let (status, batch) = get(
        &app,
        &format!("{}&partNumbers=2,3", on(&created, "/batch")),
        &alice,
    )
    .await;
    assert_eq!(status, 200, "{batch}");
    assert_eq!(
        batch["presignedUrls"].as_object().unwrap().len(),
        2,
        "{batch}"
    );
    assert!(
        batch["presignedUrls"]["3"]
            .as_str()
            .unwrap()
            .contains("partNumber=3&")
    );

    // Uppy's own part size (6 MiB here, not the tenant's 5), the last one short.
    let id = store_upload_id(created["uploadId"].as_str().unwrap());
    let sizes = [6 * MIB, 6 * MIB, 1000];
    let etags: Vec<String> = (1..=3u16)
        .map(|n| {
            app.store
                .put_part(&id, n, sizes[usize::from(n) - 1])
                .unwrap()
        })
        .collect();

    let (status, listed) = get(&app, &on(&created, ""), &alice).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(
        listed[0],
        json!({"PartNumber": 1, "Size": 6 * MIB, "ETag": etags[0]})
    );
    assert_eq!(listed.as_array().unwrap().len(), 3);

    // In whatever order the browser has them.
    let parts: Vec<Value> = [3usize, 1, 2]
        .iter()
        .map(|&n| json!({"PartNumber": n, "ETag": etags[n - 1]}))
        .collect();
    let (status, done) = app
        .post(&on(&created, "/complete"), &alice, json!({"parts": parts}))
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["key"], key);
    assert_eq!(done["size"], 12 * MIB + 1000);
    assert_eq!(
        done["location"],
        format!("http://127.0.0.1:9000/big-uploads/{key}")
    );
    assert!(app.store.open_uploads().is_empty());
}

#[tokio::test]
async fn the_total_is_held_to_the_declared_size_and_the_tenants_bounds_at_completion() {
    let app = in_process().await;
    let alice = token("big", "alice");
    // Declared in the file's meta: the parts must add up to it.
    let created = create(&app, &alice, json!({"size": "7340032"})).await;
    let id = store_upload_id(created["uploadId"].as_str().unwrap());
    let etag = app.store.put_part(&id, 1, 5 * MIB).unwrap();
    let body = json!({"parts": [{"PartNumber": 1, "ETag": etag}]});
    let (status, body) = app.post(&on(&created, "/complete"), &alice, body).await;
    let detail = refused(status, &body, (422, "parts_invalid"))["detail"]
        .as_str()
        .unwrap();
    assert!(detail.contains("declared 7340032"), "{detail}");

    // A part listed but never uploaded.
    let body =
        json!({"parts": [{"PartNumber": 1, "ETag": etag}, {"PartNumber": 2, "ETag": "\"x\""}]});
    let (status, body) = app.post(&on(&created, "/complete"), &alice, body).await;
    refused(status, &body, (422, "parts_invalid"));

    // No size declared: the tenant's largest file bounds it (acme takes 1 MiB).
    let acme = token("acme", "alice");
    let body = json!({"filename": "a.png", "type": "image/png", "metadata": {}});
    let (status, created) = app.post("/s3/multipart", &acme, body).await;
    assert_eq!(status, 200, "{created}");
    let id = store_upload_id(created["uploadId"].as_str().unwrap());
    let etag = app.store.put_part(&id, 1, 2 * MIB).unwrap();
    let body = json!({"parts": [{"PartNumber": 1, "ETag": etag}]});
    let (status, body) = app.post(&on(&created, "/complete"), &acme, body).await;
    let detail = refused(status, &body, (422, "parts_invalid"))["detail"]
        .as_str()
        .unwrap();
    assert!(detail.contains("1 to 1048576 bytes"), "{detail}");
    assert_eq!(
        app.store.open_uploads().len(),
        2,
        "refused completions change nothing"
    );

    let cases = [
        (json!({"parts": []}), (422, "parts_invalid")),
        (
            json!({"parts": [{"PartNumber": 1, "ETag": etag}, {"PartNumber": 1, "ETag": etag}]}),
            (422, "parts_invalid"),
        ),
        (
            json!({"parts": [{"PartNumber": 0, "ETag": etag}]}),
            (422, "parts_invalid"),
        ),
        (
            json!({"parts": [{"PartNumber": 1, "ETag": ""}]}),
            (400, "invalid_request"),
        ),
        (
            json!({"parts": [{"PartNumber": "one", "ETag": etag}]}),
            (400, "invalid_request"),
        ),
        (json!({}), (400, "invalid_request")),
    ];
    for (body, want) in cases {
        let (status, answer) = app.post(&on(&created, "/complete"), &acme, body).await;
        refused(status, &answer, want);
    }
}

#[tokio::test]
async fn starting_refuses_what_the_rules_refuse_and_counts_nothing() {
    let app = in_process().await;
    let acme = token("acme", "alice");
    let cases = [
        (
            json!({"filename": "a.exe", "type": "application/x-msdownload"}),
            (422, "content_type_not_allowed"),
        ),
        (json!({"type": "image/png"}), (400, "invalid_request")),
        (
            json!({"filename": "a.png", "type": "image/png", "metadata": {"size": "0"}}),
            (422, "file_too_small"),
        ),
        (
            json!({"filename": "a.png", "type": "image/png", "metadata": {"size": 5000000}}),
            (422, "file_too_large"),
        ),
        (
            json!({"filename": "a.png", "type": "image/png", "metadata": {"colour": "red"}}),
            (422, "metadata_not_allowed"),
        ),
        (
            json!({"filename": "a.png", "type": "image/png", "metadata": {"album": ["a"]}}),
            (400, "invalid_request"),
        ),
    ];
    for (body, want) in cases {
        let (status, answer) = app.post("/s3/multipart", &acme, body).await;
        refused(status, &answer, want);
    }
    // A tenant that requires a checksum: Uppy declares none.
    let strict = token("strict", "alice");
    let (status, answer) = app
        .post(
            "/s3/multipart",
            &strict,
            json!({"filename": "a.bin", "metadata": {}}),
        )
        .await;
    refused(status, &answer, (422, "checksum_required"));
    assert!(app.store.open_uploads().is_empty());
}

#[tokio::test]
async fn no_key_upload_id_or_part_number_from_the_browser_reaches_another_subjects_upload() {
    let app = in_process().await;
    let alice = token("big", "alice");
    let created = create(&app, &alice, json!({})).await;
    let id = store_upload_id(created["uploadId"].as_str().unwrap());
    let etag = app.store.put_part(&id, 1, 6 * MIB).unwrap();
    let complete = json!({"parts": [{"PartNumber": 1, "ETag": etag}]});

    // Other callers with alice's upload id and key: every route.
    for (other, code) in [
        (token("big", "bob"), (403, "not_owner")),
        (token("strict", "alice"), (403, "not_owner")),
        (token("big", "alice-2"), (403, "not_owner")),
    ] {
        for path in [
            on(&created, "/1"),
            on(&created, ""),
            format!("{}&partNumbers=1", on(&created, "/batch")),
        ] {
            let (status, body) = get(&app, &path, &other).await;
            refused(status, &body, code);
        }
        let (status, body) = app
            .post(&on(&created, "/complete"), &other, complete.clone())
            .await;
        refused(status, &body, code);
        let (status, body) = app
            .call(Method::DELETE, &on(&created, ""), &other, Value::Null)
            .await;
        refused(status, &body, code);
    }

    // Alice naming another key, or none, with her own upload id.
    let handle = created["uploadId"].as_str().unwrap();
    let bobs_key = enc("big/bob/00000000-0000-0000-0000-000000000000/big.bin");
    let (status, body) = get(
        &app,
        &format!("/s3/multipart/{handle}/1?key={bobs_key}"),
        &alice,
    )
    .await;
    refused(status, &body, (403, "not_owner"));
    let (status, body) = get(&app, &format!("/s3/multipart/{handle}/1"), &alice).await;
    refused(status, &body, (400, "invalid_request"));
    // A store upload id or a forged one in place of the handle.
    let key = enc(created["key"].as_str().unwrap());
    for forged in [id.clone(), format!("{handle}x"), "..".to_owned()] {
        let (status, body) = get(
            &app,
            &format!("/s3/multipart/{}/1?key={key}", enc(&forged)),
            &alice,
        )
        .await;
        assert!(matches!(status, 404 | 400), "{forged}: {status} {body}");
    }
    // Part numbers S3 has no place for.
    for bad in ["0", "10001", "x", "-1"] {
        let (status, body) = get(&app, &on(&created, &format!("/{bad}")), &alice).await;
        assert!(matches!(status, 400 | 422), "{bad}: {status} {body}");
        assert_eq!(body["message"], body["detail"]);
    }
    for bad in ["", "1,1", "0,1", "1,x"] {
        let path = format!("{}&partNumbers={bad}", on(&created, "/batch"));
        let (status, body) = get(&app, &path, &alice).await;
        assert!(matches!(status, 400 | 422), "{bad:?}: {status} {body}");
    }
    assert_eq!(
        app.store.open_uploads().len(),
        1,
        "nothing reached the upload"
    );

    // Alice aborts her own; Uppy reads a JSON body.
    let (status, body) = app
        .call(Method::DELETE, &on(&created, ""), &alice, Value::Null)
        .await;
    assert_eq!((status, &body), (200, &json!({})));
    assert!(app.store.open_uploads().is_empty());
    let (status, body) = get(&app, &on(&created, ""), &alice).await;
    refused(status, &body, (404, "upload_not_found"));
}

async fn config_error(toml: String) -> String {
    let settings = Settings::load(&Source::Text(toml)).unwrap();
    Config::from_settings_with_env(settings, &|name| {
        (name == SECRET_ENV).then(|| SECRET.to_owned())
    })
    .unwrap_err()
    .to_string()
}

#[tokio::test]
async fn the_prefix_is_configurable_off_and_checked() {
    let with = |prefix: &str| {
        base_config().replace(
            "shutdown_grace_seconds = 5",
            &format!("shutdown_grace_seconds = 5\ncompanion_prefix = \"{prefix}\""),
        )
    };
    for bad in [
        "s3",
        "/s3/",
        "/uploads",
        "/uploads/s3",
        "/",
        "/a b",
        "/demo",
    ] {
        let error = config_error(with(bad)).await;
        assert!(error.contains("server.companion_prefix"), "{bad}: {error}");
    }
    let alice = token("acme", "alice");
    let path = "/companion/s3/params?filename=a.png&type=image%2Fpng";
    let app = spawn_app_on(&with("/companion/s3")).await;
    let response = app
        .client
        .get(app.url(path))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = app
        .client
        .get(app.url("/s3/params?filename=a.png"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    problem(response, 404, "not_found").await;
    app.stop().await.unwrap();

    let app = spawn_app_on(&with("")).await;
    let response = app
        .client
        .get(app.url("/s3/params?filename=a.png"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    problem(response, 404, "not_found").await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn uppys_preflight_is_answered_for_the_companion_routes() {
    let app = spawn_app().await;
    let response = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/s3/multipart"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,accept",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let allowed = response.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        allowed.contains("authorization") && allowed.contains("content-type"),
        "{allowed}"
    );
    app.stop().await.unwrap();
}

// Uppy 6's signRequest: `POST /uploads/uppy/sign` and the receipts it answers with.

pub(crate) async fn sign(app: &InProcess, token: &str, body: Value) -> (u16, Value) {
    app.post("/uploads/uppy/sign", token, body).await
}

/// What the receipt URL of `signed` answers: status, content type, body.
async fn answer(app: &InProcess, method: Method, signed: &Value) -> (u16, String, String) {
    let path = format!("/{}", signed["url"].as_str().unwrap());
    assert!(path.starts_with("/uploads/uppy/answer?r="), "{signed}");
    let request = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/xml")
        .body(axum::body::Body::from("<CompleteMultipartUpload/>"))
        .unwrap();
    let response = tower::ServiceExt::oneshot(app.router.clone(), request)
        .await
        .unwrap();
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, kind, String::from_utf8(bytes.to_vec()).unwrap())
}

fn between<'a>(xml: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let start = xml
        .find(&open)
        .unwrap_or_else(|| panic!("no <{tag}> in {xml}"))
        + open.len();
    let end = xml[start..].find(&format!("</{tag}>")).unwrap() + start;
    &xml[start..end]
}

/// Starts an upload of `file` the way Uppy 6 does: signing, then its receipt's URL.
/// Answers the handle (Uppy's upload id), the key and the signing's answer.
pub(crate) async fn start6(app: &InProcess, token: &str, file: &Value) -> (String, String, Value) {
    let body = json!({"method": "POST", "key": "uppy-file-id", "file": file});
    let (status, signed) = sign(app, token, body).await;
    assert_eq!(status, 200, "{signed}");
    let (status, kind, xml) = answer(app, Method::POST, &signed).await;
    assert_eq!((status, kind.as_str()), (200, "application/xml"), "{xml}");
    let key = signed["key"].as_str().unwrap().to_owned();
    assert_eq!(between(&xml, "Key"), key);
    (between(&xml, "UploadId").to_owned(), key, signed)
}

#[tokio::test]
async fn uppy_6_multipart_starts_completes_and_aborts_at_the_service() {
    let app = in_process().await;
    let alice = token("big", "alice");
    let file = json!({"name": "film.mp4", "type": "video/mp4", "size": 12 * MIB + 5});
    let (handle, key, signed) = start6(&app, &alice, &file).await;
    assert!(
        key.starts_with("big/alice/") && key.ends_with("/film.mp4"),
        "{signed}"
    );
    assert_eq!(app.store.open_uploads().len(), 1);

    // Parts: store URLs; the listing: a ListParts URL on the store.
    let id = store_upload_id(&handle);
    for n in 1..=3u16 {
        let request = json!({"method": "PUT", "key": key, "uploadId": handle, "partNumber": n});
        let (status, part) = sign(&app, &alice, request).await;
        assert_eq!(status, 200, "{part}");
        let url = part["url"].as_str().unwrap();
        assert!(
            url.starts_with("http://127.0.0.1:9000/big-uploads/")
                && url.contains(&format!("partNumber={n}&")),
            "{url}"
        );
        assert!(part.get("key").is_none());
        app.store
            .put_part(&id, n, if n < 3 { 6 * MIB } else { 5 })
            .unwrap();
    }
    let (status, listed) = sign(
        &app,
        &alice,
        json!({"method": "GET", "key": key, "uploadId": handle}),
    )
    .await;
    assert_eq!(status, 200, "{listed}");
    assert!(
        listed["url"]
            .as_str()
            .unwrap()
            .contains(&format!("uploadId={}", enc(&id))),
        "{listed}"
    );

    // Completion: at the service, with what the store holds; the receipt echoes it.
    let request = json!({"method": "POST", "key": key, "uploadId": handle});
    let (status, done) = sign(&app, &alice, request.clone()).await;
    assert_eq!(status, 200, "{done}");
    assert!(app.store.open_uploads().is_empty(), "completed at signing");
    let (status, _, xml) = answer(&app, Method::POST, &done).await;
    assert_eq!(status, 200, "{xml}");
    assert_eq!(
        between(&xml, "Location"),
        format!("http://127.0.0.1:9000/big-uploads/{key}")
    );
    assert_eq!(between(&xml, "Key"), key);
    // Once completed, there is nothing to complete again.
    let (status, again) = sign(&app, &alice, request).await;
    assert_eq!(status, 404, "{again}");

    // Abort: at the service; the receipt answers 204.
    let (handle, key, _) = start6(&app, &alice, &file).await;
    let (status, aborted) = sign(
        &app,
        &alice,
        json!({"method": "DELETE", "key": key, "uploadId": handle}),
    )
    .await;
    assert_eq!(status, 200, "{aborted}");
    assert!(app.store.open_uploads().is_empty());
    let (status, _, body) = answer(&app, Method::DELETE, &aborted).await;
    assert_eq!((status, body.as_str()), (204, ""));
}

#[tokio::test]
async fn uppy_6_totals_are_checked_and_sizes_held_at_completion() {
    let app = in_process().await;
    let alice = token("big", "alice");
    let file = json!({"name": "film.mp4", "type": "video/mp4", "size": 7 * MIB});
    let (handle, key, _) = start6(&app, &alice, &file).await;
    let request = json!({"method": "POST", "key": key, "uploadId": handle});
    let (status, body) = sign(&app, &alice, request.clone()).await;
    refused(status, &body, (422, "parts_invalid"));
    app.store
        .put_part(&store_upload_id(&handle), 1, 5 * MIB)
        .unwrap();
    let (status, body) = sign(&app, &alice, request).await;
    let detail = refused(status, &body, (422, "parts_invalid"))["detail"]
        .as_str()
        .unwrap();
    assert!(detail.contains("declared 7340032"), "{detail}");
    assert_eq!(app.store.open_uploads().len(), 1);
}

#[tokio::test]
async fn uppy_6_signing_refuses_what_it_cannot_serve_and_other_callers() {
    let app = in_process().await;
    let alice = token("big", "alice");
    let file = json!({"name": "a.bin", "size": 10});
    let (handle, key, signed) = start6(&app, &alice, &file).await;

    for (who, body, want) in [
        // Someone else with alice's upload id and key, every kind.
        (
            token("big", "bob"),
            json!({"method": "PUT", "key": key, "uploadId": handle, "partNumber": 1}),
            (403, "not_owner"),
        ),
        (
            token("strict", "alice"),
            json!({"method": "POST", "key": key, "uploadId": handle}),
            (403, "not_owner"),
        ),
        (
            token("big", "bob"),
            json!({"method": "GET", "key": key, "uploadId": handle}),
            (403, "not_owner"),
        ),
        (
            token("big", "bob"),
            json!({"method": "DELETE", "key": key, "uploadId": handle}),
            (403, "not_owner"),
        ),
        // Alice with another key, the store's own id, a receipt, or nothing usable.
        (
            alice.clone(),
            json!({"method": "PUT", "key": "big/bob/x/a.bin", "uploadId": handle, "partNumber": 1}),
            (403, "not_owner"),
        ),
        (
            alice.clone(),
            json!({"method": "PUT", "key": key, "uploadId": store_upload_id(&handle), "partNumber": 1}),
            (404, "upload_not_found"),
        ),
        (
            alice.clone(),
            json!({"method": "POST", "key": key, "uploadId": signed["url"].as_str().unwrap().trim_start_matches("uploads/uppy/answer?r=")}),
            (404, "upload_not_found"),
        ),
        (
            alice.clone(),
            json!({"method": "PUT", "key": key, "uploadId": handle, "partNumber": 0}),
            (422, "parts_invalid"),
        ),
        (
            alice.clone(),
            json!({"method": "PUT", "key": key, "uploadId": handle, "partNumber": 10001}),
            (422, "parts_invalid"),
        ),
        (
            alice.clone(),
            json!({"method": "PATCH", "key": key}),
            (400, "invalid_request"),
        ),
        (
            alice.clone(),
            json!({"method": "GET", "key": key}),
            (400, "invalid_request"),
        ),
        (
            alice.clone(),
            json!({"method": "POST", "key": "k"}),
            (400, "invalid_request"),
        ),
        (
            alice.clone(),
            json!({"method": "POST", "key": "k", "bucket": "x", "file": file}),
            (400, "invalid_request"),
        ),
        // A PUT ticket for a tenant whose tickets Uppy 6 cannot send.
        (
            alice.clone(),
            json!({"method": "PUT", "key": "k", "file": file}),
            (422, "client_unsupported"),
        ),
        (
            token("acme", "alice"),
            json!({"method": "PUT", "key": "k", "file": {"name": "a.png", "type": "image/png", "size": 10}}),
            (422, "client_unsupported"),
        ),
    ] {
        let (status, answer) = sign(&app, &who, body.clone()).await;
        refused(status, &answer, want);
    }
    assert_eq!(
        app.store.open_uploads().len(),
        1,
        "nothing reached the upload"
    );

    // A forged, altered or missing receipt answers S3's AccessDenied.
    let forged = json!({"url": format!("uploads/uppy/answer?r={}", enc(&handle))});
    let (status, kind, xml) = answer(&app, Method::POST, &forged).await;
    assert_eq!((status, kind.as_str()), (403, "application/xml"), "{xml}");
    assert_eq!(between(&xml, "Code"), "AccessDenied");
    let altered = json!({"url": format!("{}x", signed["url"].as_str().unwrap())});
    assert_eq!(answer(&app, Method::POST, &altered).await.0, 403);
}

#[tokio::test]
async fn uppys_routes_count_against_the_same_limits_as_the_api() {
    // `limited`: two tickets a minute (fixed UTC minutes: five tries meet the limit even
    // when a minute turns between them).
    let app = in_process().await;
    let caller = token("limited", "alice");
    let mut statuses = Vec::new();
    for n in 0..5 {
        let (status, body) = if n % 2 == 0 {
            get(&app, "/s3/params?filename=a.bin", &caller).await
        } else {
            app.post("/s3/multipart", &caller, json!({"filename": "a.bin"}))
                .await
        };
        if status == 429 {
            assert_eq!(body["code"], "rate_limited", "{body}");
            assert_eq!(body["message"], body["detail"]);
        }
        statuses.push(status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        statuses.len() - statuses.iter().filter(|&&s| s == 429).count(),
        "every answer a ticket or the limit: {statuses:?}"
    );
}

#[tokio::test]
async fn a_put_ticket_uppy_6_cannot_send_is_refused_before_it_is_counted() {
    // `archive`: PUT tickets that sign x-amz-storage-class, one ticket a minute.
    let app = in_process().await;
    let caller = token("archive", "alice");
    let file = json!({"name": "a.bin", "type": "application/octet-stream", "size": 10});
    for _ in 0..3 {
        let (status, answer) = sign(
            &app,
            &caller,
            json!({"method": "PUT", "key": "k", "file": file}),
        )
        .await;
        let problem = refused(status, &answer, (422, "client_unsupported"));
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("x-amz-storage-class"),
            "{problem}"
        );
    }
    // Refusals were not tickets: the one a minute is still there (a minute may turn in
    // between, which only gives another).
    let body = json!({"filename": "a.bin", "content_type": "application/octet-stream", "size": 10});
    let (status, ticket) = app.post("/uploads", &caller, body).await;
    assert_eq!(status, 201, "{ticket}");
    assert_eq!(
        ticket["headers"]["x-amz-storage-class"], "STANDARD_IA",
        "{ticket}"
    );
}

// What each published @uppy/aws-s3 6.x sends with PutObject: 6.0 and 6.1 `{method, key}`
// and take only `url` and `key` back; 6.3 adds `contentType` and sends the `headers`
// (and POST `fields`) it is answered with.

fn put6(content_type: Option<&str>, file: Value) -> Value {
    let mut body = json!({"method": "PUT", "key": "uppy-file-id", "file": file});
    if let Some(t) = content_type {
        body["contentType"] = json!(t);
    }
    body
}

#[tokio::test]
async fn uppy_6_3_gets_every_signed_header_so_no_overwrite_holds() {
    let app = in_process().await;
    let alice = token("putter", "alice");
    let file = json!({"name": "note.txt", "type": "text/plain", "size": 11});

    let (status, signed) = sign(&app, &alice, put6(Some("text/plain"), file.clone())).await;

    assert_eq!(status, 200, "{signed}");
    assert_eq!(
        signed["headers"],
        json!({"content-type": "text/plain", "if-none-match": "*"}),
        "the browser sets the length itself"
    );
    let url = signed["url"].as_str().unwrap();
    assert!(
        url.contains("X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost%3Bif-none-match"),
        "{url}"
    );
    let key = signed["key"].as_str().unwrap();
    assert!(
        key.starts_with("putter/alice/") && key.ends_with("/note.txt"),
        "{key}"
    );

    // 6.0 and 6.1 cannot send If-None-Match: refused in words, nothing counted.
    let (status, body) = sign(&app, &alice, put6(None, file.clone())).await;
    let detail = refused(status, &body, (422, "client_unsupported"))["detail"]
        .as_str()
        .unwrap();
    assert!(detail.contains("6.3"), "{detail}");
}

#[tokio::test]
async fn uppy_6_3_content_type_is_the_objects_type_under_the_tenants_rules() {
    let app = in_process().await;
    let alice = token("putter", "alice");
    let file = json!({"name": "note.txt", "type": "text/plain", "size": 11});
    let (status, body) = sign(&app, &alice, put6(Some("image/png"), file)).await;
    refused(status, &body, (422, "content_type_not_allowed"));

    // Without a type in the file, the request's own is the object's.
    let file = json!({"name": "note", "size": 11});
    let (status, signed) = sign(&app, &alice, put6(Some("text/plain"), file)).await;
    assert_eq!(status, 200, "{signed}");
    assert_eq!(signed["headers"]["content-type"], "text/plain");
}

#[tokio::test]
async fn uppy_6_3_gets_a_post_form_from_a_post_tenant_and_older_ones_are_told_to_upgrade() {
    let app = in_process().await;
    let alice = token("acme", "alice");
    let file = json!({"name": "cat.png", "type": "image/png", "size": 1234});

    let (status, signed) = sign(&app, &alice, put6(Some("image/png"), file.clone())).await;

    assert_eq!(status, 200, "{signed}");
    let key = signed["key"].as_str().unwrap();
    assert!(
        key.starts_with("acme/alice/") && key.ends_with("/cat.png"),
        "{key}"
    );
    let fields = &signed["fields"];
    assert_eq!(fields["key"], key, "{signed}");
    assert_eq!(fields["Content-Type"], "image/png");
    assert!(fields["Policy"].is_string() && fields["X-Amz-Signature"].is_string());
    assert!(signed.get("headers").is_none(), "{signed}");
    assert!(
        signed["url"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:9000/")
    );

    let (status, body) = sign(&app, &alice, put6(None, file)).await;
    let detail = refused(status, &body, (422, "client_unsupported"))["detail"]
        .as_str()
        .unwrap();
    assert!(detail.contains("6.3 or later"), "{detail}");
}

#[tokio::test]
async fn uppy_6_3_sends_a_declared_checksum_and_the_tenants_fixed_headers() {
    let app = in_process().await;
    let archivist = token("archive", "alice");
    let checksum = json!({"algorithm": "SHA256",
                          "value": "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg="});
    let file = json!({"name": "a.txt", "type": "text/plain", "size": 1, "checksum": checksum});

    let (status, signed) = sign(&app, &archivist, put6(Some("text/plain"), file.clone())).await;

    assert_eq!(status, 200, "{signed}");
    let headers = &signed["headers"];
    assert_eq!(
        headers["x-amz-checksum-sha256"], checksum["value"],
        "{signed}"
    );
    assert_eq!(headers["x-amz-storage-class"], "STANDARD_IA", "{signed}");
    assert!(headers.get("content-length").is_none());

    // 6.1 would send neither header: refused before it is counted.
    let (status, body) = sign(&app, &archivist, put6(None, file)).await;
    refused(status, &body, (422, "client_unsupported"));
}

#[tokio::test]
async fn uppy_fields_that_change_nothing_signed_are_ignored_and_others_refused_in_words() {
    let app = in_process().await;
    let alice = token("putter", "alice");
    let file = json!({"name": "note.txt", "type": "text/plain", "size": 11});
    let mut harmless = put6(Some("text/plain"), file.clone());
    harmless["attempt"] = json!(2);
    harmless["requestId"] = json!("abc");
    let (status, signed) = sign(&app, &alice, harmless).await;
    assert_eq!(status, 200, "{signed}");

    for (name, value) in [
        ("contentDisposition", json!("attachment")),
        ("headers", json!({"x-amz-acl": "public-read"})),
        ("metadata", json!({"a": "b"})),
        ("checksumSHA256", json!("x")),
        ("bucket", json!("other")),
        ("contentLength", json!(5)),
    ] {
        let mut body = put6(Some("text/plain"), file.clone());
        body[name] = value;
        let (status, answer) = sign(&app, &alice, body).await;
        let detail = refused(status, &answer, (400, "invalid_request"))["detail"]
            .as_str()
            .unwrap();
        assert!(detail.starts_with(name), "{detail}");
    }
}

#[tokio::test]
async fn uppy_6_0_may_name_an_upload_by_the_key_it_proposed_and_by_no_other() {
    // 6.0 ignores the key the service picks and keeps sending its own.
    let app = in_process().await;
    let alice = token("big", "alice");
    let file = json!({"name": "film.mp4", "type": "video/mp4", "size": 12 * MIB});
    let (handle, key, _) = start6(&app, &alice, &file).await;
    assert_ne!(key, "uppy-file-id");
    for (named, want) in [
        ("uppy-file-id", 200),
        (key.as_str(), 200),
        ("uppy-other-id", 403),
    ] {
        let request = json!({"method": "PUT", "key": named, "uploadId": handle, "partNumber": 1});
        let (status, answer) = sign(&app, &alice, request).await;
        assert_eq!(status, want, "{named}: {answer}");
    }
    // Nobody else, by either key.
    let request =
        json!({"method": "PUT", "key": "uppy-file-id", "uploadId": handle, "partNumber": 1});
    let (status, answer) = sign(&app, &token("big", "bob"), request).await;
    refused(status, &answer, (403, "not_owner"));
}
