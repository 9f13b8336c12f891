//! After the bytes land, on Garage and SeaweedFS: every ticket recorded, every upload
//! found (by the client's call, a multipart completion or the sweeper), verified against
//! its ticket (its first bytes too), acted on, reported once to the tenant's webhook as
//! a Standard Webhooks event, and the day's bytes settled to what landed.

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use serde_json::{Value, json};

use crate::e2e::post;
use crate::helpers::*;
use crate::multipart::{call, json_of};
use crate::receiver::Receiver;
use crate::store::{BUCKET, Kind, Store};

/// One test per strict store for `async fn $name(kind: Kind)`.
macro_rules! on_garage_and_seaweedfs {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn garage() {
                super::$name(crate::store::Kind::Garage).await;
            }
            #[tokio::test]
            async fn seaweedfs() {
                super::$name(crate::store::Kind::SeaweedFs).await;
            }
        }
    )+};
}
pub(crate) use on_garage_and_seaweedfs;

on_garage_and_seaweedfs!(
    uploads_nobody_reports_are_found_verified_reported_once_and_settled,
    an_object_larger_than_its_ticket_allowed_is_refused_though_the_store_took_it,
    a_receiver_that_fails_three_times_gets_the_event_once_under_one_id,
);

/// A PNG's first bytes: what the content check looks for.
pub(crate) const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

/// `len` bytes that start as a PNG.
pub(crate) fn png(len: usize) -> Vec<u8> {
    let mut bytes = PNG.to_vec();
    bytes.resize(len.max(PNG.len()), 7);
    bytes
}

pub(crate) struct Setup {
    pub store: Store,
    pub app: TestApp,
    pub hooks: Receiver,
}

/// The `[events]` of these tests: the sweeper every second, no grace, quick retries.
pub(crate) const QUICK_EVENTS: &str = r#"
[events]
sweep_interval_seconds = 1
grace_seconds = 0
max_attempts = 5
retry_initial_seconds = 1
retry_max_seconds = 4
"#;

async fn setup(kind: Kind) -> Setup {
    let store = Store::start(kind).await;
    let hooks = Receiver::start().await;
    let url = &hooks.url;
    let config = format!(
        r#"{}{QUICK_EVENTS}
[tenants.photos]
bucket = "{BUCKET}"
max_size = 100000
content_types = ["image/png", "image/jpeg"]
metadata_keys = ["album"]
default_expires_in = 2
bytes_per_day = 10000000
completion_webhook_url = "{url}"
completion_webhook_secret_env = "{WEBHOOK_SECRET_ENV}"

[tenants.vault]
bucket = "{BUCKET}"
upload_method = "put"
max_size = 100000
content_types = ["image/png"]
on_rejected = "quarantine"
completion_webhook_url = "{url}"
completion_webhook_secret_env = "{WEBHOOK_SECRET_ENV}"
"#,
        base_config().replace("http://127.0.0.1:9000", &store.endpoint)
    );
    let app = spawn_app_keyed(&config, store.access_key, store.secret_key).await;
    Setup { store, app, hooks }
}

/// A POST ticket of `tenant` for `body`.
async fn ticket(app: &TestApp, tenant: &str, body: Value) -> Value {
    let response = app.upload(&token(tenant, "user-1"), &body).await;
    json_of(response, 201, "post", "/uploads").await
}

/// Posts `file` with the ticket's fields (its type as the file part's).
async fn upload(ticket: &Value, file: Vec<u8>) -> u16 {
    let fields: Vec<(String, String)> = ticket["fields"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    let response = post(ticket["url"].as_str().unwrap(), &fields, file, "image/png").await;
    response.status().as_u16()
}

async fn bytes_today(app: &TestApp, tenant: &str) -> u64 {
    let response = app
        .client
        .get(app.url("/uploads/usage"))
        .bearer_auth(token(tenant, "user-1"))
        .send()
        .await
        .unwrap();
    let usage = json_of(response, 200, "get", "/uploads/usage").await;
    usage["day"]["bytes"]["used"]
        .as_u64()
        .unwrap_or_else(|| panic!("no day.bytes.used in {usage}"))
}

/// Waits (up to 30 s) until the tenant's bytes today are `expected`.
async fn settles_to(app: &TestApp, tenant: &str, expected: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = bytes_today(app, tenant).await;
        if now == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "bytes today stay {now}, not {expected}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The accepted event about `key`.
fn event_of(events: &[crate::receiver::Delivery], key: &str) -> Value {
    let matching: Vec<Value> = events
        .iter()
        .map(|d| d.event())
        .filter(|e| e["data"]["key"] == key)
        .collect();
    assert_eq!(matching.len(), 1, "one event for {key}: {matching:?}");
    matching.into_iter().next().unwrap()
}

async fn uploads_nobody_reports_are_found_verified_reported_once_and_settled(kind: Kind) {
    let Setup { store, app, hooks } = setup(kind).await;
    let good = png(3000);
    let a = ticket(
        &app,
        "photos",
        json!({"filename": "a.png", "content_type": "image/png", "metadata": {"album": "x"}}),
    )
    .await;
    let html = b"<!DOCTYPE html><html><script>alert(document.domain)</script></html>".to_vec();
    let b = ticket(
        &app,
        "photos",
        json!({"filename": "b.png", "content_type": "image/png", "size": html.len()}),
    )
    .await;
    let c = ticket(
        &app,
        "photos",
        json!({"filename": "c.png", "content_type": "image/png", "size": 5000}),
    )
    .await;
    // Reserved at issue: A's maximum, B's and C's declared sizes.
    assert_eq!(
        bytes_today(&app, "photos").await,
        100_000 + html.len() as u64 + 5000
    );
    assert!(matches!(upload(&a, good.clone()).await, 200..=204));
    assert!(matches!(upload(&b, html.clone()).await, 200..=204));
    let (key_a, key_b) = (a["key"].as_str().unwrap(), b["key"].as_str().unwrap());
    assert!(store.exists(BUCKET, key_b).await, "the store took the HTML");

    // No call from the client: the sweeper finds both once their tickets expired.
    let events = hooks.wait_for(2, Duration::from_secs(30)).await;
    assert_eq!(events.len(), 2, "{:?}", hooks.attempts());
    let completed = event_of(&events, key_a);
    assert_eq!(completed["type"], "upload.completed", "{completed}");
    let data = &completed["data"];
    assert_eq!(data["tenant"], "photos");
    assert_eq!(data["subject"], "user-1");
    assert_eq!(data["bucket"], BUCKET);
    assert_eq!(data["size"], good.len());
    assert_eq!(data["content_type"], "image/png");
    assert_eq!(data["metadata"]["album"], "x");
    assert_eq!(data["found_by"], "sweeper");
    assert_eq!(data["mismatches"], json!([]));
    assert!(completed["timestamp"].as_str().unwrap().ends_with('Z'));

    let rejected = event_of(&events, key_b);
    assert_eq!(rejected["type"], "upload.rejected", "{rejected}");
    assert_eq!(
        rejected["data"]["reasons"],
        json!(["content"]),
        "{rejected}"
    );
    assert!(
        rejected["data"]["mismatches"][0]
            .as_str()
            .unwrap()
            .contains("HTML"),
        "{rejected}"
    );
    assert_eq!(rejected["data"]["action"], "deleted");
    assert!(!store.exists(BUCKET, key_b).await, "the HTML is gone");
    assert!(store.exists(BUCKET, key_a).await);
    let ids: std::collections::HashSet<&str> = events.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids.len(), 2);

    // Settled: A counts what landed, B (removed) and C (never used) nothing.
    settles_to(&app, "photos", good.len() as u64).await;
    let _ = c;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(hooks.accepted().len(), 2, "nothing is reported twice");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for series in [
        r#"upload_tickets_uploads_verified_total{tenant="photos",result="accepted"}"#,
        r#"upload_tickets_uploads_verified_total{tenant="photos",result="rejected"}"#,
        r#"upload_tickets_uploads_rejected_total{tenant="photos",reason="content"}"#,
        r#"upload_tickets_tickets_released_total{tenant="photos"}"#,
        r#"upload_tickets_events_total{tenant="photos",result="delivered"}"#,
        r#"upload_tickets_uploads_pending{tenant="photos"}"#,
    ] {
        let ours: Vec<&str> = metrics.lines().filter(|l| l.contains("photos")).collect();
        assert!(
            metrics.contains(series),
            "{series} is not in /metrics: {ours:#?}"
        );
    }
}

async fn an_object_larger_than_its_ticket_allowed_is_refused_though_the_store_took_it(kind: Kind) {
    let Setup { store, app, hooks } = setup(kind).await;
    let user = token("vault", "user-1");
    // A PUT ticket for 100 bytes; the key is written with the store's own credentials.
    let ticket = json_of(
        app.upload(
            &user,
            &json!({"filename": "p.png", "content_type": "image/png", "size": 100}),
        )
        .await,
        201,
        "post",
        "/uploads",
    )
    .await;
    let key = ticket["key"].as_str().unwrap();
    store
        .client
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .content_type("image/png")
        .body(ByteStream::from(png(5000)))
        .send()
        .await
        .expect("the store's own key writes anything");
    let report = json_of(
        call(&app, &user, "/uploads/complete", &json!({"key": key})).await,
        200,
        "post",
        "/uploads/complete",
    )
    .await;
    assert_eq!(report["matches"], false, "{report}");
    assert!(
        report["mismatches"][0]
            .as_str()
            .unwrap()
            .contains("outside its ticket's 100 to 100 bytes"),
        "{report}"
    );
    let quarantine_key = format!("quarantine/{key}");
    assert_eq!(report["action"], "quarantined", "{report}");
    assert_eq!(report["quarantine_key"], quarantine_key.as_str());
    assert_eq!(report["reported"], true);
    assert!(!store.exists(BUCKET, key).await, "moved away");
    assert!(
        store.exists(BUCKET, &quarantine_key).await,
        "kept in quarantine"
    );

    let events = hooks.wait_for(1, Duration::from_secs(20)).await;
    let event = event_of(&events, key);
    assert_eq!(event["type"], "upload.rejected");
    assert_eq!(event["data"]["reasons"], json!(["size"]));
    assert_eq!(event["data"]["found_by"], "client");
    assert_eq!(event["data"]["quarantine_key"], quarantine_key.as_str());
    assert_eq!(events[0].id, report["event_id"].as_str().unwrap());

    // Asked again: reported already, nothing done twice.
    let again = call(&app, &user, "/uploads/complete", &json!({"key": key})).await;
    assert_eq!(again.status(), 404, "the key holds nothing now");
}

async fn a_receiver_that_fails_three_times_gets_the_event_once_under_one_id(kind: Kind) {
    let Setup {
        store: _store,
        app,
        hooks,
    } = setup(kind).await;
    hooks.refuse_next(3);
    let t = ticket(
        &app,
        "photos",
        json!({"filename": "r.png", "content_type": "image/png", "size": 200}),
    )
    .await;
    assert!(matches!(upload(&t, png(200)).await, 200..=204));
    let user = token("photos", "user-1");
    let report = json_of(
        call(&app, &user, "/uploads/complete", &json!({"key": t["key"]})).await,
        200,
        "post",
        "/uploads/complete",
    )
    .await;
    assert_eq!(report["matches"], true, "{report}");
    let id = report["event_id"].as_str().unwrap().to_owned();
    // Retried after 1, 2 and 4 seconds.
    let accepted = hooks.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(accepted.len(), 1, "{:?}", hooks.attempts());
    let attempts = hooks.attempts();
    assert_eq!(attempts.len(), 4, "{attempts:?}");
    assert!(
        attempts.iter().all(|a| a.id == id),
        "one id on every try: {attempts:?}"
    );
    assert_eq!(
        attempts.iter().map(|a| a.status).collect::<Vec<_>>(),
        [500, 500, 500, 200]
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(hooks.attempts().len(), 4, "delivered: no more attempts");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"upload_tickets_events_total{tenant="photos",result="retried"}"#),
        "{metrics}"
    );
}

/// A receiver that never accepts: after `max_attempts` the event is dead-lettered,
/// counted, and attempted no more.
#[tokio::test]
async fn an_event_never_accepted_is_dead_lettered_after_its_attempts() {
    let store = Store::start(Kind::Garage).await;
    let hooks = Receiver::start().await;
    hooks.refuse_next(usize::MAX);
    let url = &hooks.url;
    let config = format!(
        r#"{}
[events]
sweep_interval_seconds = 1
grace_seconds = 0
max_attempts = 2
retry_initial_seconds = 1

[tenants.deadletters]
bucket = "{BUCKET}"
max_size = 1000
completion_webhook_url = "{url}"
completion_webhook_secret_env = "{WEBHOOK_SECRET_ENV}"
"#,
        base_config().replace("http://127.0.0.1:9000", &store.endpoint)
    );
    let app = spawn_app_keyed(&config, store.access_key, store.secret_key).await;
    let t = ticket(
        &app,
        "deadletters",
        json!({"filename": "d.png", "size": 100}),
    )
    .await;
    assert!(matches!(upload(&t, png(100)).await, 200..=204));
    let user = token("deadletters", "user-1");
    let report = json_of(
        call(&app, &user, "/uploads/complete", &json!({"key": t["key"]})).await,
        200,
        "post",
        "/uploads/complete",
    )
    .await;
    assert_eq!(report["reported"], true, "{report}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let dead = r#"upload_tickets_events_total{tenant="deadletters",result="dead_lettered"}"#;
    loop {
        let metrics = app.get("/metrics").await.text().await.unwrap();
        if metrics.contains(dead) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not dead-lettered: {:?}",
            hooks.attempts()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let attempts = hooks.attempts();
    assert_eq!(attempts.len(), 2, "two attempts, then none: {attempts:?}");
    assert!(
        attempts
            .iter()
            .all(|a| a.id == report["event_id"].as_str().unwrap())
    );
}
