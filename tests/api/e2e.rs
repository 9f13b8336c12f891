//! End to end against a real S3-compatible server (s3s-fs 0.17.0, which enforces POST
//! policies strictly), started on loopback by the test: tickets from the running service,
//! uploads as real multipart/form-data, and the store itself refusing every upload that
//! breaks the ticket.

use std::sync::Arc;
use std::time::Duration;

use s3_presigned_post::Credentials;
use s3_presigned_post::evaluate::{PostedForm, Refusal, evaluate};
use serde_json::{Value, json};
use upload_tickets::credentials::StaticSource;

use crate::helpers::*;
use crate::store::{Kind, Store, on_every_store};

struct Setup {
    store: Store,
    app: TestApp,
}

/// A store of `kind` with the test buckets, and the service signing with its key (and
/// `session_token`, if any).
async fn setup_with(kind: Kind, session_token: Option<&str>) -> Setup {
    let store = Store::start(kind).await;
    store.create_bucket("shared-uploads").await;
    store.create_bucket("other-bucket").await;
    let config = base_config().replace("http://127.0.0.1:9000", &store.endpoint);
    let credentials = Credentials::new(
        store.access_key,
        store.secret_key,
        session_token.map(str::to_owned),
    )
    .unwrap();
    let app = spawn_app_with(&config, Arc::new(StaticSource(credentials))).await;
    Setup { store, app }
}

async fn setup(kind: Kind) -> Setup {
    setup_with(kind, None).await
}

on_every_store!(
    a_ticket_uploads_to_a_real_store_and_reads_back_identical,
    the_store_refuses_every_upload_that_breaks_the_ticket,
    an_expired_ticket_is_refused_by_the_store,
);

async fn ticket(app: &TestApp, tenant: &str, body: Value) -> Value {
    let response = app.upload(&token(tenant, "user-42"), &body).await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

/// Posts the form: every field in order, the file last.
pub(crate) async fn post(
    url: &str,
    fields: &[(String, String)],
    file: Vec<u8>,
    content_type: &str,
) -> reqwest::Response {
    let mut form = reqwest::multipart::Form::new();
    for (name, value) in fields {
        form = form.text(name.clone(), value.clone());
    }
    let part = reqwest::multipart::Part::bytes(file)
        .file_name("upload.bin")
        .mime_str(content_type)
        .unwrap();
    form = form.part("file", part);
    reqwest::Client::new()
        .post(url)
        .multipart(form)
        .send()
        .await
        .expect("the store answers")
}

/// The presign core's evaluator on what the store received: the verdict the store's
/// must equal (the differential test of `presign::evaluate`, on this file's corpus).
fn our_verdict(
    store: &Store,
    url: &str,
    fields: &[(String, String)],
    size: usize,
) -> Result<(), Refusal> {
    // Path-style: the bucket is the URL's first path segment.
    let path = url.split_once("://").map_or(url, |(_, rest)| rest);
    let bucket = path.split('/').nth(1).unwrap_or_default();
    let form = PostedForm {
        bucket,
        fields,
        filename: "upload.bin",
        size: size as u64,
    };
    let (id, secret) = (store.access_key, store.secret_key);
    evaluate(
        &form,
        |key| (key == id).then(|| secret.to_owned()),
        std::time::SystemTime::now(),
    )
}

/// Breaks a ticket: its fields, the file, the URL.
type Breaker = dyn Fn(&mut Vec<(String, String)>, &mut Vec<u8>, &mut String);

pub(crate) fn fields_of(ticket: &Value) -> Vec<(String, String)> {
    ticket["fields"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect()
}

fn set(fields: &mut [(String, String)], name: &str, value: &str) {
    fields
        .iter_mut()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no field {name}"))
        .1 = value.to_owned();
}

async fn a_ticket_uploads_to_a_real_store_and_reads_back_identical(kind: Kind) {
    let Setup { store, app } = setup(kind).await;
    let data: Vec<u8> = (0..2048u32).map(|i| (i * 7 % 251) as u8).collect();
    let ticket = ticket(&app, "acme", json!({"filename": "holiday photo.png", "content_type": "image/png", "size": data.len(), "metadata": {"album": "2026"}})).await;
    let url = ticket["url"].as_str().unwrap();
    assert_eq!(
        our_verdict(&store, url, &fields_of(&ticket), data.len()),
        Ok(())
    );
    let response = post(
        ticket["url"].as_str().unwrap(),
        &fields_of(&ticket),
        data.clone(),
        "image/png",
    )
    .await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());

    let key = ticket["key"].as_str().unwrap();
    let object = store
        .client
        .get_object()
        .bucket("shared-uploads")
        .key(key)
        .send()
        .await
        .expect("the object exists");
    assert_eq!(object.content_type(), Some("image/png"));
    assert_eq!(
        object
            .metadata()
            .and_then(|m| m.get("album"))
            .map(String::as_str),
        Some("2026")
    );
    let bytes = object.body.collect().await.unwrap().into_bytes();
    assert_eq!(bytes.as_ref(), data.as_slice());
}

async fn the_store_refuses_every_upload_that_breaks_the_ticket(kind: Kind) {
    let Setup { store, app } = setup(kind).await;
    let data = vec![b'x'; 100];
    let good = || json!({"filename": "a.png", "content_type": "image/png", "size": 100, "metadata": {"album": "a"}});

    // Each case: a ticket, a way to break it, and the check that nothing was stored.
    let mut refused = 0;
    let cases: Vec<(&str, Box<Breaker>)> = vec![
        (
            "larger than declared",
            Box::new(|_, file, _| file.push(b'x')),
        ),
        (
            "smaller than declared",
            Box::new(|_, file, _| {
                file.pop();
            }),
        ),
        (
            "another key",
            Box::new(|f, _, _| set(f, "key", "globex/user-42/x/a.png")),
        ),
        (
            "another content type",
            Box::new(|f, _, _| set(f, "Content-Type", "text/html")),
        ),
        (
            "an unlisted extra field",
            Box::new(|f, _, _| f.insert(0, ("x-amz-meta-owner".to_owned(), "evil".to_owned()))),
        ),
        (
            "a missing field",
            Box::new(|f, _, _| f.retain(|(n, _)| n != "x-amz-meta-album")),
        ),
        (
            "other metadata",
            Box::new(|f, _, _| set(f, "x-amz-meta-album", "b")),
        ),
        (
            "a tampered policy",
            Box::new(|f, _, _| {
                let policy = f.iter().find(|(n, _)| n == "Policy").unwrap().1.clone();
                let text = String::from_utf8(base64_simd::STANDARD.decode_to_vec(&policy).unwrap())
                    .unwrap();
                let widened = text.replace(
                    "[\"content-length-range\",100,100]",
                    "[\"content-length-range\",0,1000000]",
                );
                assert_ne!(text, widened);
                set(
                    f,
                    "Policy",
                    &base64_simd::STANDARD.encode_to_string(widened.as_bytes()),
                );
            }),
        ),
        (
            "a forged signature",
            Box::new(|f, _, _| set(f, "X-Amz-Signature", &"0".repeat(64))),
        ),
        (
            "another bucket",
            Box::new(|f, _, url| {
                set(f, "bucket", "other-bucket");
                *url = url.replace("/shared-uploads", "/other-bucket");
            }),
        ),
    ];
    for (what, break_it) in &cases {
        let ticket = ticket(&app, "acme", good()).await;
        let mut fields = fields_of(&ticket);
        let mut file = data.clone();
        let mut url = ticket["url"].as_str().unwrap().to_owned();
        break_it(&mut fields, &mut file, &mut url);
        let ours = our_verdict(&store, &url, &fields, file.len());
        assert!(
            ours.is_err(),
            "{what}: the evaluator accepts what the store refuses"
        );
        let response = post(&url, &fields, file, "image/png").await;
        let status = response.status().as_u16();
        assert!(
            (400..500).contains(&status),
            "{what}: the store answered {status}: {}",
            response.text().await.unwrap()
        );
        let key = ticket["key"].as_str().unwrap();
        assert!(
            !store.exists("shared-uploads", key).await,
            "{what}: the object was stored"
        );
        assert!(
            !store.exists("other-bucket", key).await,
            "{what}: the object was stored elsewhere"
        );
        refused += 1;
    }
    assert_eq!(refused, cases.len());

    // A tenant's maximum without a declared size: over it is refused, under it accepted.
    let small = ticket(&app, "globex", json!({"filename": "b.bin"})).await;
    let small_url = small["url"].as_str().unwrap();
    assert!(our_verdict(&store, small_url, &fields_of(&small), 1001).is_err());
    assert_eq!(
        our_verdict(&store, small_url, &fields_of(&small), 1000),
        Ok(())
    );
    let response = post(
        small["url"].as_str().unwrap(),
        &fields_of(&small),
        vec![0; 1001],
        "application/octet-stream",
    )
    .await;
    assert!(
        response.status().is_client_error(),
        "over max_size: {}",
        response.status()
    );
    let response = post(
        small["url"].as_str().unwrap(),
        &fields_of(&small),
        vec![0; 1000],
        "application/octet-stream",
    )
    .await;
    assert!(
        response.status().is_success(),
        "at max_size: {}",
        response.text().await.unwrap()
    );
}

async fn an_expired_ticket_is_refused_by_the_store(kind: Kind) {
    let Setup { store, app } = setup(kind).await;
    let ticket = ticket(
        &app,
        "acme",
        json!({"filename": "a.png", "content_type": "image/png", "expires_in": 1}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let url = ticket["url"].as_str().unwrap();
    let ours = our_verdict(&store, url, &fields_of(&ticket), 10);
    assert!(matches!(ours, Err(Refusal::Expired(_))), "{ours:?}");
    let response = post(
        ticket["url"].as_str().unwrap(),
        &fields_of(&ticket),
        vec![1; 10],
        "image/png",
    )
    .await;
    assert!(
        response.status().is_client_error(),
        "expired: {}",
        response.status()
    );
    assert!(
        !store
            .exists("shared-uploads", ticket["key"].as_str().unwrap())
            .await
    );
}

#[tokio::test]
async fn tickets_of_temporary_credentials_carry_and_pin_the_session_token() {
    // No local store checks a session token (see ../shared/s3-test-server.md); s3s-fs
    // accepts the ticket that carries and pins one.
    let token = Some("FwoGZXIvYXdzEXAMPLE/session+token=");
    let Setup { store, app } = setup_with(Kind::S3sFs, token).await;
    let ticket = ticket(
        &app,
        "acme",
        json!({"filename": "a.png", "content_type": "image/png"}),
    )
    .await;
    assert_eq!(
        ticket["fields"]["X-Amz-Security-Token"],
        "FwoGZXIvYXdzEXAMPLE/session+token="
    );
    let policy = policy_of(&ticket);
    assert!(
        policy["conditions"]
            .as_array()
            .unwrap()
            .contains(&json!({"X-Amz-Security-Token": "FwoGZXIvYXdzEXAMPLE/session+token="}))
    );
    let response = post(
        ticket["url"].as_str().unwrap(),
        &fields_of(&ticket),
        vec![1; 10],
        "image/png",
    )
    .await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    assert!(
        store
            .exists("shared-uploads", ticket["key"].as_str().unwrap())
            .await
    );
}
