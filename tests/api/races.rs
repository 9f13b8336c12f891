//! A part uploaded again while its upload is being completed must not carry the object
//! past the bounds that were checked. In process, the memory store replaces a part right
//! after the service's listing (and can ignore ETags, as some stores do); end to end, a
//! proxy in front of a real store holds the store's ListParts answer while the test
//! sends a larger part through its own URL.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::companion::{create, on, sign, start6, store_upload_id};
use crate::fake_store::in_process;
use crate::helpers::*;
use crate::store::{BUCKET, Kind, Store};

const MIB: u64 = 1024 * 1024;

fn code(body: &Value) -> &str {
    body["code"].as_str().unwrap_or("(no code)")
}

fn complete_path(started: &Value) -> String {
    format!(
        "/uploads/multipart/{}/complete",
        started["handle"].as_str().unwrap()
    )
}

#[tokio::test]
async fn part_urls_of_a_fixed_layout_pin_each_parts_length() {
    let app = in_process().await;
    let alice = token("big", "alice");
    let started = app.start(&alice, 11 * MIB).await;
    let lengths: Vec<&str> = started["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["headers"]["content-length"].as_str().unwrap())
        .collect();
    assert_eq!(lengths, ["5242880", "5242880", "1048576"], "{started}");
    for part in started["parts"].as_array().unwrap() {
        let url = part["url"].as_str().unwrap();
        assert!(
            url.contains("X-Amz-SignedHeaders=content-length%3Bhost"),
            "{url}"
        );
    }
    // Signed again in a batch: the same lengths.
    let path = format!(
        "/uploads/multipart/{}/parts",
        started["handle"].as_str().unwrap()
    );
    let (status, signed) = app
        .post(&path, &alice, json!({"part_numbers": [3, 1]}))
        .await;
    assert_eq!(status, 200, "{signed}");
    assert_eq!(signed["parts"][0]["headers"]["content-length"], "1048576");
    assert_eq!(signed["parts"][1]["headers"]["content-length"], "5242880");
}

/// How the race goes in process: whether the client names the replacement's ETag, and
/// whether the store compares ETags at completion.
#[derive(Clone, Copy)]
struct Race {
    client_names_the_replacement: bool,
    store_ignores_etags: bool,
}

/// Alice's 11 MiB upload in three parts, part 2 replaced by 9 MiB right after the
/// service's listing, then completed: the completion's detail, once it is checked to be
/// a 422 `parts_invalid` that left no object behind.
async fn race_in_process(race: Race) -> String {
    let app = in_process().await;
    let alice = token("big", "alice");
    let started = app.start(&alice, 11 * MIB).await;
    let id = started["upload_id"].as_str().unwrap();
    let mut parts = app.upload_parts(&started, 0);
    app.store.ignore_etags(race.store_ignores_etags);
    let again = app.store.replace_part_after_listing(id, 2, 9 * MIB);
    if race.client_names_the_replacement {
        parts["parts"][1]["etag"] = json!(again);
    }

    let (status, error) = app.post(&complete_path(&started), &alice, parts).await;

    assert_eq!((status, code(&error)), (422, "parts_invalid"), "{error}");
    let key = started["key"].as_str().unwrap();
    assert!(
        app.store.object("big-uploads", key).is_none(),
        "nothing stored"
    );
    error["detail"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_completion_naming_a_part_uploaded_after_the_listing_is_refused() {
    // The client names the ETag of the larger part it sends while the service lists.
    for store_ignores_etags in [false, true] {
        let detail = race_in_process(Race {
            client_names_the_replacement: true,
            store_ignores_etags,
        })
        .await;
        assert!(detail.contains("part 2 is stored with ETag"), "{detail}");
    }
}

#[tokio::test]
async fn a_part_replaced_after_the_listing_is_refused_by_a_store_that_checks_etags() {
    let detail = race_in_process(Race {
        client_names_the_replacement: false,
        store_ignores_etags: false,
    })
    .await;
    assert!(detail.contains("not stored with ETag"), "{detail}");
}

#[tokio::test]
async fn an_object_completed_from_a_replaced_part_by_a_store_that_ignores_etags_is_removed() {
    let detail = race_in_process(Race {
        client_names_the_replacement: false,
        store_ignores_etags: true,
    })
    .await;
    assert!(
        detail.contains(&(15 * MIB).to_string()) && detail.contains("removed"),
        "{detail}"
    );
}

#[tokio::test]
async fn parts_of_another_length_than_the_layout_are_refused_even_when_the_total_fits() {
    let app = in_process().await;
    let alice = token("big", "alice");
    let started = app.start(&alice, 11 * MIB).await;
    let id = started["upload_id"].as_str().unwrap();
    // 5 + 5 + 1 MiB declared; 6 + 4 + 1 stored.
    let etags: Vec<String> = [6 * MIB, 4 * MIB, MIB]
        .iter()
        .zip(1u16..)
        .map(|(&len, n)| app.store.put_part(id, n, len).unwrap())
        .collect();
    let parts: Vec<Value> = etags
        .iter()
        .zip(1..)
        .map(|(etag, n)| json!({"part_number": n, "etag": etag}))
        .collect();

    let (status, error) = app
        .post(&complete_path(&started), &alice, json!({"parts": parts}))
        .await;

    assert_eq!((status, code(&error)), (422, "parts_invalid"), "{error}");
    assert!(
        error["detail"].as_str().unwrap().contains("part 1 holds"),
        "{error}"
    );
}

#[tokio::test]
async fn companion_completions_race_no_part_past_the_checked_total() {
    let app = in_process().await;
    let alice = token("big", "alice");
    for ignore_etags in [false, true] {
        app.store.ignore_etags(ignore_etags);
        let created = create(&app, &alice, json!({"size": "6291457"})).await;
        let id = store_upload_id(created["uploadId"].as_str().unwrap());
        let first = app.store.put_part(&id, 1, 6 * MIB).unwrap();
        let second = app.store.put_part(&id, 2, 1).unwrap();
        // Named by the client: refused before completing.
        let again = app.store.replace_part_after_listing(&id, 2, 9 * MIB);
        let parts = json!({"parts": [
            {"PartNumber": 1, "ETag": first}, {"PartNumber": 2, "ETag": again}
        ]});
        let (status, error) = app.post(&on(&created, "/complete"), &alice, parts).await;
        assert_eq!((status, code(&error)), (422, "parts_invalid"), "{error}");

        // Replaced behind the listed ETags: refused by the store, or removed after.
        let second_again = app.store.put_part(&id, 2, 1).unwrap();
        assert_eq!(second_again, second);
        app.store.replace_part_after_listing(&id, 2, 9 * MIB);
        let parts = json!({"parts": [
            {"PartNumber": 1, "ETag": first}, {"PartNumber": 2, "ETag": second}
        ]});
        let (status, error) = app.post(&on(&created, "/complete"), &alice, parts).await;
        assert_eq!((status, code(&error)), (422, "parts_invalid"), "{error}");
        let key = created["key"].as_str().unwrap();
        assert!(
            app.store.object("big-uploads", key).is_none(),
            "ignore_etags = {ignore_etags}"
        );
    }
}

#[tokio::test]
async fn uppy_6_completions_complete_the_parts_of_the_listing_that_was_checked() {
    let app = in_process().await;
    let alice = token("big", "alice");
    for ignore_etags in [false, true] {
        app.store.ignore_etags(ignore_etags);
        let file = json!({"name": "film.mp4", "type": "video/mp4", "size": 6 * MIB + 1});
        let (handle, key, _) = start6(&app, &alice, &file).await;
        let id = store_upload_id(&handle);
        app.store.put_part(&id, 1, 6 * MIB).unwrap();
        app.store.put_part(&id, 2, 1).unwrap();
        app.store.replace_part_after_listing(&id, 2, 9 * MIB);

        let request = json!({"method": "POST", "key": key, "uploadId": handle});
        let (status, error) = sign(&app, &alice, request).await;

        assert_eq!((status, code(&error)), (422, "parts_invalid"), "{error}");
        assert!(
            app.store.object("big-uploads", &key).is_none(),
            "ignore_etags = {ignore_etags}"
        );
    }
}

/// A proxy in front of a store that, once armed, holds the next ListParts answer until
/// the test lets it go (after telling the test it holds it).
struct HoldingProxy {
    endpoint: String,
    arm: mpsc::UnboundedSender<(oneshot::Sender<()>, oneshot::Receiver<()>)>,
    server: tokio::task::JoinHandle<()>,
}

type Armed = Arc<Mutex<mpsc::UnboundedReceiver<(oneshot::Sender<()>, oneshot::Receiver<()>)>>>;

#[derive(Clone)]
struct ProxyState {
    store: String,
    client: reqwest::Client,
    armed: Armed,
}

impl HoldingProxy {
    async fn start(store: &str) -> Self {
        let (arm, armed) = mpsc::unbounded_channel();
        let state = ProxyState {
            store: store.to_owned(),
            client: reqwest::Client::new(),
            armed: Arc::new(Mutex::new(armed)),
        };
        let router = axum::Router::new().fallback(forward).with_state(state);
        let (addr, server) = crate::helpers::serve_loopback(router).await;
        Self {
            endpoint: format!("http://{addr}"),
            arm,
            server,
        }
    }

    /// Holds the next ListParts answer: the first receiver fires when it is held, the
    /// sender lets it go.
    fn hold_next_listing(&self) -> (oneshot::Receiver<()>, oneshot::Sender<()>) {
        let (held, on_held) = oneshot::channel();
        let (release, on_release) = oneshot::channel();
        self.arm.send((held, on_release)).unwrap();
        (on_held, release)
    }
}

impl Drop for HoldingProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Forwards the request as it came (the Host header too: the signature covers it).
async fn forward(State(proxy): State<ProxyState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let query = parts.uri.query().unwrap_or_default().to_owned();
    let listing = parts.method == Method::GET
        && query.split('&').any(|p| p.starts_with("uploadId="))
        && !query.contains("partNumber=");
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let mut outgoing = proxy
        .client
        .request(parts.method, format!("{}{path}", proxy.store));
    for (name, value) in &parts.headers {
        if name != "transfer-encoding" && name != "connection" {
            outgoing = outgoing.header(name, value);
        }
    }
    let answer = outgoing.body(body).send().await.unwrap();
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = answer.bytes().await.unwrap();
    if listing {
        let armed = proxy.armed.lock().await.try_recv();
        if let Ok((held, release)) = armed {
            let _ = held.send(());
            let _ = release.await;
        }
    }
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if name != "transfer-encoding" {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}

async fn put_part(url: &str, bytes: Vec<u8>) -> reqwest::Response {
    reqwest::Client::new()
        .put(url)
        .body(bytes)
        .send()
        .await
        .unwrap()
}

/// The race of the review, on a real store: the service lists the parts (2 parts, 6 MiB
/// and 1 byte as declared), and while that answer is held the caller sends part 2 again,
/// 9 MiB, through its own part URL. In a tenant whose `max_size` is 8 MiB, no 15 MiB
/// object may be left: the completion is refused and nothing is stored, or the object
/// is exactly the bytes that were checked. Played twice: the caller completing with the
/// ETag of the larger part (an MD5 it computes beforehand), then with the listed ones.
async fn a_part_raced_past_the_listing_never_lands(kind: Kind) {
    let store = Store::start(kind).await;
    let proxy = HoldingProxy::start(&store.endpoint).await;
    let config = format!(
        "{}\n[tenants.small]\nbucket = \"{BUCKET}\"\nmax_size = 8388608\n\
         multipart_part_size = 5242880\n",
        base_config().replace("http://127.0.0.1:9000", &store.endpoint)
    )
    .replace(
        "force_path_style = true",
        &format!(
            "force_path_style = true\nservice_endpoint = \"{}\"",
            proxy.endpoint
        ),
    );
    let app = spawn_app_keyed(&config, store.access_key, store.secret_key).await;
    for name_the_larger_part in [true, false] {
        let (status, body, key) = race(&app, &proxy, name_the_larger_part).await;
        let stored = store.read(&key).await;
        match status {
            422 => {
                assert_eq!(code(&body), "parts_invalid", "{body}");
                assert!(stored.is_none(), "nothing is left under {key}");
            }
            200 => {
                assert!(!name_the_larger_part, "{body}");
                let mut checked = vec![b'a'; 6 * MIB as usize];
                checked.push(b'b');
                assert!(stored == Some(checked), "the object is the checked parts");
            }
            _ => panic!("{status} {body}"),
        }
    }
}

/// One raced completion through Companion's routes (the client lays out the parts):
/// the completion's status and body, and the key.
async fn race(
    app: &TestApp,
    proxy: &HoldingProxy,
    name_the_larger_part: bool,
) -> (u16, Value, String) {
    let alice = token("small", "alice");
    let declared = 6 * MIB + 1;
    let created = app
        .client
        .post(app.url("/s3/multipart"))
        .bearer_auth(&alice)
        .json(
            &json!({"filename": "a.bin", "type": "application/octet-stream",
                      "metadata": {"size": declared.to_string()}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    let created: Value = created.json().await.unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    let query = format!("?key={}", crate::companion::enc(&key));
    let base = format!("/s3/multipart/{}", created["uploadId"].as_str().unwrap());
    let signed: Value = app
        .client
        .get(app.url(&format!("{base}/batch{query}&partNumbers=1,2")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let urls = &signed["presignedUrls"];
    let (one, two) = (urls["1"].as_str().unwrap(), urls["2"].as_str().unwrap());
    let first = put_part(one, vec![b'a'; 6 * MIB as usize]).await;
    assert!(first.status().is_success(), "{first:?}");
    let first = first.headers()["etag"].to_str().unwrap().to_owned();
    let second = put_part(two, vec![b'b']).await;
    assert!(second.status().is_success(), "{second:?}");
    let second = second.headers()["etag"].to_str().unwrap().to_owned();
    let larger = vec![b'c'; 9 * MIB as usize];
    let named = if name_the_larger_part {
        format!(
            "\"{}\"",
            hex::encode(<md5::Md5 as md5::Digest>::digest(&larger))
        )
    } else {
        second
    };

    let (held, release) = proxy.hold_next_listing();
    let completion = {
        let request = app
            .client
            .post(app.url(&format!("{base}/complete{query}")))
            .bearer_auth(&alice)
            .json(&json!({"parts": [
                {"PartNumber": 1, "ETag": first}, {"PartNumber": 2, "ETag": named}
            ]}));
        tokio::spawn(async move { request.send().await.unwrap() })
    };
    held.await.expect("the service lists the parts");
    let raced = put_part(two, larger).await;
    assert!(raced.status().is_success(), "{raced:?}");
    release.send(()).unwrap();
    let answer = completion.await.unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap(), key)
}

#[tokio::test]
async fn a_part_raced_past_the_listing_never_lands_on_seaweedfs() {
    a_part_raced_past_the_listing_never_lands(Kind::SeaweedFs).await;
}

#[tokio::test]
async fn a_part_raced_past_the_listing_never_lands_on_s3s_fs() {
    a_part_raced_past_the_listing_never_lands(Kind::S3sFs).await;
}

/// Where the service lays out the parts, the store itself refuses the larger part: its
/// URL signs the part's length.
#[tokio::test]
async fn a_part_of_another_length_is_refused_by_the_store() {
    let store = Store::start(Kind::SeaweedFs).await;
    store.create_bucket("big-uploads").await;
    let config = format!(
        "{}\n[tenants.small]\nbucket = \"big-uploads\"\nmax_size = 8388608\n\
         multipart_part_size = 5242880\n",
        base_config().replace("http://127.0.0.1:9000", &store.endpoint)
    );
    let app = spawn_app_keyed(&config, store.access_key, store.secret_key).await;
    let alice = token("small", "alice");
    let started: Value = app
        .client
        .post(app.url("/uploads/multipart"))
        .bearer_auth(&alice)
        .json(&json!({"filename": "a.bin", "size": 5 * MIB + 1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let two = started["parts"][1]["url"].as_str().unwrap();
    assert_eq!(started["parts"][1]["headers"]["content-length"], "1");
    let larger = put_part(two, vec![b'c'; 3 * MIB as usize]).await;
    assert!(larger.status().is_client_error(), "{larger:?}");
    let exact = put_part(two, vec![b'c']).await;
    assert!(exact.status().is_success(), "{exact:?}");
}

/// The dev store lists no ETags and completes from the parts it holds: the size of the
/// completed object is the guard there.
#[tokio::test]
async fn a_part_raced_past_the_listing_never_lands_on_the_dev_store() {
    a_part_raced_past_the_listing_never_lands(Kind::Dev).await;
}

#[tokio::test]
async fn a_part_raced_past_the_listing_never_lands_on_garage() {
    a_part_raced_past_the_listing_never_lands(Kind::Garage).await;
}
