//! Multipart uploads and the completion check in process, on the in-memory store and a
//! clock the test moves: every error path, in milliseconds, with no store installed.
//! The same flows against real stores are in `multipart.rs`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{Method, Request};
use serde_json::{Value, json};
use tower::ServiceExt as _;
use upload_tickets::clock::ManualClock;
use upload_tickets::config::{Config, Settings, Source};
use upload_tickets::credentials::{CredentialSource, CredentialsCache};
use upload_tickets::http::{App, AppState, router};
use upload_tickets::policy::StoredObject;
use upload_tickets::store::memory::{Fault, MemoryStore};

use crate::helpers::*;

const MIB: u64 = 1024 * 1024;

/// The service's router on a memory store and a manual clock.
pub(crate) struct InProcess {
    pub(crate) router: upload_tickets::http::Service,
    pub(crate) store: Arc<MemoryStore>,
    pub(crate) clock: Arc<ManualClock>,
}

pub(crate) async fn in_process() -> InProcess {
    in_process_with(Arc::new(Switchable::new(true))).await
}

async fn in_process_with(source: Arc<dyn CredentialSource>) -> InProcess {
    let toml = tenants_toml();
    let store = Arc::new(MemoryStore::new());
    in_process_on(&toml, &[(SECRET_ENV, SECRET)], source, store).await
}

/// The service for `toml` with `env` as its environment, on `store`.
pub(crate) async fn in_process_on(
    toml: &str,
    env: &[(&str, &str)],
    source: Arc<dyn CredentialSource>,
    store: Arc<MemoryStore>,
) -> InProcess {
    let settings = Settings::load(&Source::Text(toml.to_owned())).unwrap();
    let config = Config::from_settings_with_env(settings, &|name| {
        env.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    })
    .unwrap();
    let credentials = Arc::new(CredentialsCache::new(source));
    let _ = credentials.refresh().await;
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let app = App::new(&config, credentials)
        .with_store(store.clone())
        .with_clock(clock.clone());
    let state = AppState(Arc::new(app));
    let router = router(
        state,
        &[],
        config.request_timeout(),
        upload_tickets::http::Extras {
            demo: &upload_tickets::http::Demo::Off,
            companion_prefix: &config.server.companion_prefix,
            admin_apart: false,
        },
    );
    InProcess {
        router,
        store,
        clock,
    }
}

/// The in-process tenants: the base configuration's and a few more.
pub(crate) fn tenants_toml() -> String {
    format!(
        "{}\n[tenants.big]\nbucket = \"big-uploads\"\nmax_size = 5497558138880\n\
         multipart_part_size = 5242880\nmetadata_keys = [\"album\"]\n\n\
         [tenants.strict]\nbucket = \"big-uploads\"\nmax_size = 5497558138880\n\
         multipart_part_size = 5242880\nrequire_checksum = [\"CRC64NVME\"]\n\n\
         [tenants.archive]\nbucket = \"big-uploads\"\nmax_size = 1000\nupload_method = \"put\"\n\
         prevent_overwrite = false\nstorage_class = \"STANDARD_IA\"\nrate_limit_per_minute = 1\n\n\
         [tenants.putter]\nbucket = \"put-uploads\"\nmax_size = 1000\nupload_method = \"put\"\n\
         content_types = [\"text/plain\"]\nmetadata_keys = [\"album\"]\n\n\
         [tenants.frugal]\nbucket = \"big-uploads\"\nmax_size = 5497558138880\n\
         multipart_part_size = 5242880\nstore_calls_per_minute = 3\n",
        base_config().replace("request_timeout_seconds = 5", "request_timeout_seconds = 1")
    )
}

impl InProcess {
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Value,
    ) -> (u16, Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    pub(crate) async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.call(Method::POST, path, token, body).await
    }

    /// Starts an upload of `size` bytes for `token`'s caller.
    pub(crate) async fn start(&self, token: &str, size: u64) -> Value {
        let (status, started) = self
            .post(
                "/uploads/multipart",
                token,
                json!({"filename": "big.bin", "size": size}),
            )
            .await;
        assert_eq!(status, 201, "{started}");
        started
    }

    /// Stores every part of `started` in full (`short` bytes fewer in the last one) and
    /// answers the completion body.
    pub(crate) fn upload_parts(&self, started: &Value, short: u64) -> Value {
        let id = started["upload_id"].as_str().unwrap();
        let (size, part_size) = (
            started["size"].as_u64().unwrap(),
            started["part_size"].as_u64().unwrap(),
        );
        let count = started["part_count"].as_u64().unwrap();
        let parts: Vec<Value> = (1..=count)
            .map(|n| {
                let mut len = part_size.min(size - (n - 1) * part_size);
                if n == count {
                    len -= short;
                }
                let etag = self.store.put_part(id, n as u16, len).unwrap();
                json!({"part_number": n, "etag": etag})
            })
            .collect();
        json!({ "parts": parts })
    }
}

fn code(body: &Value) -> &str {
    body["code"].as_str().unwrap_or("(no code)")
}

fn handle_path(started: &Value, rest: &str) -> String {
    format!(
        "/uploads/multipart/{}{rest}",
        started["handle"].as_str().unwrap()
    )
}

#[tokio::test]
async fn an_upload_completes_on_the_memory_store_and_the_object_is_checked() {
    let app = in_process().await;
    let alice = token("big", "alice");
    let started = app.start(&alice, 11 * MIB).await;
    assert_eq!(started["part_count"], 3);
    let parts = app.upload_parts(&started, 0);
    let (status, done) = app
        .post(&handle_path(&started, "/complete"), &alice, parts)
        .await;
    assert_eq!(status, 200, "{done}");
    let key = started["key"].as_str().unwrap();
    let (status, report) = app
        .post(
            "/uploads/complete",
            &alice,
            json!({"key": key, "size": 11 * MIB}),
        )
        .await;
    assert_eq!(
        (status, &report["matches"]),
        (200, &json!(true)),
        "{report}"
    );
    assert!(app.store.open_uploads().is_empty());
}

#[tokio::test]
async fn starting_an_upload_fails_cleanly_when_the_store_is_down_slow_or_credentials_are_gone() {
    let app = in_process().await;
    let alice = token("big", "alice");
    let body = json!({"filename": "big.bin", "size": 11 * MIB});
    app.store.set_fault(Some(Fault::Down));
    let (status, error) = app.post("/uploads/multipart", &alice, body.clone()).await;
    assert_eq!((status, code(&error)), (502, "store_error"), "{error}");
    assert!(
        !error.to_string().contains("memory store"),
        "no cause leaked"
    );

    app.store
        .set_fault(Some(Fault::Slow(Duration::from_secs(5))));
    let (status, error) = app.post("/uploads/multipart", &alice, body.clone()).await;
    assert_eq!((status, code(&error)), (503, "timeout"), "{error}");
    app.store.set_fault(None);

    let switch = Switchable::new(false);
    let offline = in_process_with(Arc::new(switch)).await;
    let (status, error) = offline.post("/uploads/multipart", &alice, body).await;
    assert_eq!((status, code(&error)), (503, "credentials_unavailable"));
    assert_eq!(
        offline.store.calls(),
        0,
        "nothing is started without credentials"
    );
}

#[tokio::test]
async fn refused_starts_never_reach_the_store() {
    let app = in_process().await;
    let alice = token("big", "alice");
    for (body, status, expected) in [
        (json!({"filename": "a.bin"}), 400, "invalid_request"),
        (
            json!({"filename": "a.bin", "size": 0}),
            422,
            "file_too_small",
        ),
        (
            json!({"filename": "a.bin", "size": 6 * 1024 * MIB * 1024}),
            422,
            "file_too_large",
        ),
        (
            json!({"filename": "a.bin", "size": 1, "key": "x"}),
            400,
            "invalid_request",
        ),
        (
            json!({"filename": "a.bin", "size": 1, "metadata": {"evil": "1"}}),
            422,
            "metadata_not_allowed",
        ),
    ] {
        let (got, error) = app.post("/uploads/multipart", &alice, body.clone()).await;
        assert_eq!((got, code(&error)), (status, expected), "{body}");
    }
    let stranger = token("nobody", "alice");
    let (got, error) = app
        .post(
            "/uploads/multipart",
            &stranger,
            json!({"filename": "a", "size": 1}),
        )
        .await;
    assert_eq!((got, code(&error)), (403, "tenant_unknown"));
    assert_eq!(app.store.calls(), 0);
}

#[tokio::test]
async fn handles_bind_uploads_to_their_owner_and_expire() {
    let app = in_process().await;
    let alice = token("big", "alice");
    let started = app.start(&alice, 11 * MIB).await;
    let calls = app.store.calls();
    let parts = json!({"part_numbers": [1]});
    for (who, expected) in [
        (token("big", "bob"), "not_owner"),
        (token("acme", "alice"), "not_owner"),
        (token("big", "alice-2"), "not_owner"),
    ] {
        for (method, rest, body) in [
            (Method::POST, "/parts", parts.clone()),
            (Method::POST, "/complete", json!({"parts": []})),
            (Method::DELETE, "", Value::Null),
        ] {
            let path = handle_path(&started, rest);
            let (status, error) = app.call(method, &path, &who, body).await;
            assert_eq!((status, code(&error)), (403, expected), "{path}");
        }
    }
    let forged = format!("{}x", started["handle"].as_str().unwrap());
    let (status, error) = app
        .post(
            &format!("/uploads/multipart/{forged}/parts"),
            &alice,
            parts.clone(),
        )
        .await;
    assert_eq!((status, code(&error)), (404, "upload_not_found"));
    assert_eq!(app.store.calls(), calls, "refusals never reach the store");

    // A day later (the tenant's multipart_expires_in) the handle is dead.
    app.clock.advance(Duration::from_secs(86_401));
    let later = upload_tickets_token_at(&app, "big", "alice");
    let (status, error) = app
        .post(&handle_path(&started, "/parts"), &later, parts)
        .await;
    assert_eq!((status, code(&error)), (404, "upload_not_found"), "{error}");
}

/// A token valid at the app's (moved) clock.
fn upload_tickets_token_at(app: &InProcess, tenant: &str, sub: &str) -> String {
    let now = upload_tickets::clock::Clock::now(app.clock.as_ref())
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut claims = claims(tenant, sub);
    claims["iat"] = json!(now);
    claims["exp"] = json!(now + 600);
    hs256(&claims)
}

#[tokio::test]
async fn part_batches_are_checked_before_signing() {
    let app = in_process().await;
    let alice = token("big", "alice");
    let started = app.start(&alice, 11 * MIB).await;
    let path = handle_path(&started, "/parts");
    for (numbers, status, expected) in [
        (json!([]), 400, "invalid_request"),
        (json!([1, 1]), 400, "invalid_request"),
        (json!([0]), 422, "parts_invalid"),
        (json!([4]), 422, "parts_invalid"),
        (
            json!((1..=101).collect::<Vec<u16>>()),
            400,
            "invalid_request",
        ),
        (json!([-1]), 400, "invalid_request"),
    ] {
        let (got, error) = app
            .post(&path, &alice, json!({"part_numbers": numbers}))
            .await;
        assert_eq!((got, code(&error)), (status, expected), "{numbers}");
    }
    let (status, signed) = app
        .post(&path, &alice, json!({"part_numbers": [3, 1]}))
        .await;
    assert_eq!(status, 200, "{signed}");
    assert_eq!(signed["parts"][0]["part_number"], 3);
}

#[tokio::test]
async fn completion_refuses_part_lists_the_upload_does_not_hold() {
    let app = in_process().await;
    let alice = token("big", "alice");
    let started = app.start(&alice, 11 * MIB).await;
    let complete = handle_path(&started, "/complete");

    // The client's list: wrong count, wrong order, an odd ETag.
    let good = app.upload_parts(&started, 0);
    let mut reversed = good.clone();
    reversed["parts"].as_array_mut().unwrap().reverse();
    let mut two = good.clone();
    two["parts"].as_array_mut().unwrap().pop();
    let mut odd_etag = good.clone();
    odd_etag["parts"][0]["etag"] = json!("");
    for (body, status, expected) in [
        (reversed, 422, "parts_invalid"),
        (two, 422, "parts_invalid"),
        (odd_etag, 400, "invalid_request"),
    ] {
        let (got, error) = app.post(&complete, &alice, body).await;
        assert_eq!((got, code(&error)), (status, expected), "{error}");
    }

    // The store's parts: an ETag it never gave.
    let mut wrong_etag = good.clone();
    wrong_etag["parts"][1]["etag"] = json!("\"not-it\"");
    let (status, error) = app.post(&complete, &alice, wrong_etag).await;
    assert_eq!((status, code(&error)), (422, "parts_invalid"), "{error}");

    // Parts that do not add up to the declared size: the upload stays open.
    let short = app.upload_parts(&started, 1);
    let (status, error) = app.post(&complete, &alice, short).await;
    assert_eq!((status, code(&error)), (422, "parts_invalid"), "{error}");
    assert!(
        error["detail"]
            .as_str()
            .unwrap()
            .contains("declared 3 parts")
    );
    assert_eq!(app.store.open_uploads().len(), 1);
    let key = started["key"].as_str().unwrap();
    assert!(
        app.store.object("big-uploads", key).is_none(),
        "nothing stored"
    );
}

#[tokio::test]
async fn aborted_uploads_are_gone_and_store_failures_are_502s() {
    let app = in_process().await;
    let alice = token("big", "alice");
    let started = app.start(&alice, 11 * MIB).await;
    let parts = app.upload_parts(&started, 0);
    let abort = handle_path(&started, "");

    app.store.set_fault(Some(Fault::Down));
    for (method, rest, body) in [
        (Method::POST, "/complete", parts.clone()),
        (Method::DELETE, "", Value::Null),
    ] {
        let path = handle_path(&started, rest);
        let (status, error) = app.call(method, &path, &alice, body).await;
        assert_eq!((status, code(&error)), (502, "store_error"), "{path}");
    }
    app.store.set_fault(None);

    let (status, _) = app.call(Method::DELETE, &abort, &alice, Value::Null).await;
    assert_eq!(status, 204);
    assert!(app.store.open_uploads().is_empty());
    let (status, error) = app.call(Method::DELETE, &abort, &alice, Value::Null).await;
    assert_eq!((status, code(&error)), (404, "upload_not_found"));
    let (status, error) = app
        .post(&handle_path(&started, "/complete"), &alice, parts)
        .await;
    assert_eq!((status, code(&error)), (404, "upload_not_found"));
}

#[tokio::test]
async fn the_completion_check_covers_missing_foreign_broken_and_unreachable_objects() {
    let app = in_process().await;
    let alice = token("big", "alice");
    let check = |key: &str| json!({"key": key});

    let (status, error) = app
        .post("/uploads/complete", &alice, check("big/alice/x/a"))
        .await;
    assert_eq!((status, code(&error)), (404, "object_not_found"));
    for outside in [
        "big/bob/x/a",
        "acme/alice/x/a",
        "big/alice/../bob/a",
        "big/alice//a",
    ] {
        let (status, error) = app.post("/uploads/complete", &alice, check(outside)).await;
        assert_eq!((status, code(&error)), (403, "not_owner"), "{outside}");
    }
    let (status, error) = app.post("/uploads/complete", &alice, check("")).await;
    assert_eq!((status, code(&error)), (400, "invalid_request"));

    let planted = StoredObject {
        size: 3,
        content_type: Some("text/plain".to_owned()),
        metadata: [("evil".to_owned(), "1".to_owned())].into(),
        checksum: None,
    };
    app.store
        .put_object("big-uploads", "big/alice/p/a.txt", planted);
    let body = json!({"key": "big/alice/p/a.txt", "size": 4, "content_type": "text/html"});
    let (status, report) = app.post("/uploads/complete", &alice, body.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(report["matches"], false);
    assert_eq!(
        report["mismatches"].as_array().unwrap().len(),
        3,
        "{report}"
    );
    assert_eq!(report["last_modified"], "1970-01-01T00:00:00Z");

    app.store.set_fault(Some(Fault::Down));
    let (status, error) = app.post("/uploads/complete", &alice, body.clone()).await;
    assert_eq!((status, code(&error)), (502, "store_error"));
    app.store
        .set_fault(Some(Fault::Slow(Duration::from_secs(5))));
    let (status, error) = app.post("/uploads/complete", &alice, body).await;
    assert_eq!((status, code(&error)), (503, "timeout"));
}

#[tokio::test]
async fn calls_that_reach_the_store_have_a_per_subject_limit_of_their_own() {
    let app = in_process().await;
    let ann = token("frugal", "ann");
    let started = app.start(&ann, 11 * MIB).await;
    let key = started["key"].as_str().unwrap().to_owned();
    // Three calls that count: a completion check, a part batch, a completion (one
    // refused before the store is asked counts nothing); the fourth is refused.
    let (status, _) = app
        .post("/uploads/complete", &ann, json!({"key": key}))
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .post(
            &handle_path(&started, "/parts"),
            &ann,
            json!({"part_numbers": [1]}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .post(
            &handle_path(&started, "/complete"),
            &ann,
            json!({"parts": []}),
        )
        .await;
    assert_eq!(status, 422);
    let (status, _) = app
        .post(
            &handle_path(&started, "/complete"),
            &ann,
            app.upload_parts(&started, 0),
        )
        .await;
    assert_eq!(status, 200, "the 3rd call that counted");
    let calls = app.store.calls();
    let (status, refused) = app
        .post("/uploads/complete", &ann, json!({"key": key}))
        .await;
    assert_eq!(
        (status, code(&refused)),
        (429, "store_rate_limited"),
        "{refused}"
    );
    assert_eq!(app.store.calls(), calls, "the store was not asked");
    // Another subject has its own count; tickets are counted apart.
    let (status, _) = app
        .post(
            "/uploads/complete",
            &token("frugal", "bob"),
            json!({"key": "frugal/bob/x/a"}),
        )
        .await;
    assert_eq!(status, 404);
    app.start(&ann, 11 * MIB).await;
    // The next minute opens again.
    app.clock.advance(Duration::from_secs(60));
    let (status, _) = app
        .post("/uploads/complete", &ann, json!({"key": key}))
        .await;
    assert_eq!(status, 200);
}
