//! The demo page in a real browser (Debian's Chromium, driven by playwright-core) uploads
//! a file straight to a real S3-compatible server that answers CORS (Garage, SeaweedFS), and shows
//! the store's refusal in plain words when the file breaks the ticket.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::helpers::*;
use crate::store::{BUCKET, Kind, Store};

/// Runs the driver `tests/browser/<script>` with `args` in Node, off the test's runtime
/// (the server under test runs on it), and answers the JSON it prints. `needs` is a
/// file under `tests/browser/node_modules` the driver cannot run without.
pub(crate) async fn run_driver(script: &str, args: Vec<String>, needs: &str) -> Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        dir.join("node_modules").join(needs).exists(),
        "{needs} is not installed: run scripts/install-test-deps.sh"
    );
    assert!(
        Path::new("/usr/bin/chromium").is_file(),
        "chromium is not installed: run scripts/install-test-deps.sh"
    );
    let script = dir.join(script);
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(&script)
            .args(&args)
            .output()
            .expect("node runs")
    })
    .await
    .expect("the browser driver thread");
    assert!(
        output.status.success(),
        "the browser run failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the driver prints JSON")
}

/// Runs tests/browser/demo.mjs and returns what the page showed.
async fn drive_demo(url: &str, token: &str, file: &Path, declare_size: bool) -> Value {
    let declare = if declare_size { "yes" } else { "no" };
    let args = vec![
        url.to_owned(),
        token.to_owned(),
        file.to_string_lossy().into_owned(),
        declare.to_owned(),
    ];
    run_driver("demo.mjs", args, "playwright-core").await
}

// s3s-fs answers no CORS (501), so a browser cannot use it.
#[tokio::test]
async fn the_demo_page_uploads_on_garage() {
    the_demo_page_uploads_with_a_ticket_and_shows_the_stores_refusal(Kind::Garage).await;
}

#[tokio::test]
async fn the_demo_page_uploads_on_seaweedfs() {
    the_demo_page_uploads_with_a_ticket_and_shows_the_stores_refusal(Kind::SeaweedFs).await;
}

async fn the_demo_page_uploads_with_a_ticket_and_shows_the_stores_refusal(kind: Kind) {
    let store = Store::start(kind).await;
    let config = base_config()
        .replace("http://127.0.0.1:9000", &store.endpoint)
        .replace(
            "shutdown_grace_seconds = 5",
            "shutdown_grace_seconds = 5\ndemo = true",
        )
        .replace(
            "[tenants.limited]",
            &format!(
                "[tenants.browser]\nbucket = \"{BUCKET}\"\nmax_size = 4096\n\n\
                 [tenants.browserput]\nbucket = \"{BUCKET}\"\nmax_size = 4096\nupload_method = \"put\"\n\n\
                 [tenants.limited]"
            ),
        );
    let app = spawn_app_keyed(&config, store.access_key, store.secret_key).await;
    store.allow_origin(&app.base).await;
    let token = token("browser", "user-42");
    let dir = std::env::temp_dir().join(format!("upload-tickets-browser-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();

    // A file within the ticket: uploaded, the page names its key, the bytes are stored.
    let good = dir.join("hello report.txt");
    let data: Vec<u8> = (0..3000u32).map(|i| b'a' + (i % 26) as u8).collect();
    std::fs::write(&good, &data).unwrap();
    let shown = drive_demo(&app.url("/demo"), &token, &good, true).await;
    assert_eq!(shown["outcome"], "ok", "{shown}");
    assert_eq!(shown["progress"], 100.0);
    let key = uploaded_key(&shown);
    assert!(
        key.starts_with("browser/user-42/") && key.ends_with("/hello_report.txt"),
        "{key}"
    );
    assert_eq!(store.read(key).await.as_deref(), Some(data.as_slice()));
    // The page declared the file's SHA-256 (Web Crypto); the store verified and kept it.
    let sha256 = crate::integrity::digest(s3_presigned_post::ChecksumAlgorithm::Sha256, &data);
    assert!(
        shown["digest"].as_str().unwrap().contains(sha256.value()),
        "{shown}"
    );
    assert_eq!(
        stored_sha256(&store, key).await.as_deref(),
        Some(sha256.value())
    );

    // A file over the tenant's 4096 bytes, its size not declared: the ticket allows
    // 1..=4096 and the store refuses; the page says so in plain words.
    let big = dir.join("big.bin");
    std::fs::write(&big, vec![7u8; 5000]).unwrap();
    let shown = drive_demo(&app.url("/demo"), &token, &big, false).await;
    assert_eq!(shown["outcome"], "error", "{shown}");
    assert!(
        shown["status"]
            .as_str()
            .unwrap()
            .starts_with("The store refused the upload"),
        "{shown}"
    );
    let listed = store
        .client
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.contents().len(), 1, "only the good upload is stored");

    // A tenant with PUT tickets: the same page sends the file with the signed headers.
    let put_token = crate::helpers::token("browserput", "user-7");
    let shown = drive_demo(&app.url("/demo"), &put_token, &good, true).await;
    assert_eq!(shown["outcome"], "ok", "{shown}");
    let key = uploaded_key(&shown).to_owned();
    assert!(key.starts_with("browserput/user-7/"), "{key}");
    let object = store
        .client
        .get_object()
        .bucket(BUCKET)
        .key(&key)
        .send()
        .await
        .expect("the PUT object exists");
    assert_eq!(object.content_type(), Some("text/plain"));
    assert_eq!(
        object.body.collect().await.unwrap().into_bytes().as_ref(),
        data.as_slice()
    );
    assert_eq!(
        stored_sha256(&store, &key).await.as_deref(),
        Some(sha256.value())
    );

    let _ = std::fs::remove_dir_all(&dir);
}

/// The key the page says it uploaded.
fn uploaded_key(shown: &Value) -> &str {
    shown["status"]
        .as_str()
        .unwrap()
        .strip_prefix("Uploaded: ")
        .expect("the page shows the key")
}

/// The SHA-256 the store keeps for `key`, if any.
async fn stored_sha256(store: &Store, key: &str) -> Option<String> {
    let head = store
        .client
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .expect("the object exists");
    head.checksum_sha256().map(str::to_owned)
}

/// `upload-tickets dev` and nothing else, as a newcomer opens it: the page comes with
/// the token, uploads to dev's own store, and shows the store's answer, what landed and
/// a download link that gives the same bytes back.
#[tokio::test]
async fn the_dev_demo_page_uploads_to_its_own_store_and_lists_it() {
    let dev = crate::dev::Dev::start(&[]).await;
    let dir = std::env::temp_dir().join(format!("upload-tickets-devdemo-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("first upload.txt");
    let data: Vec<u8> = (0..3000u32).map(|i| b'a' + (i % 26) as u8).collect();
    std::fs::write(&file, &data).unwrap();

    let shown = drive_demo(&dev.url("/demo"), "-", &file, true).await;
    assert_eq!(
        shown["prefilled"],
        dev.token.as_str(),
        "the page comes with the dev token"
    );
    assert_eq!(shown["outcome"], "ok", "{shown}");
    assert_eq!(shown["consoleErrors"], serde_json::json!([]), "{shown}");
    let key = uploaded_key(&shown);
    assert!(
        key.starts_with("dev/dev-user/") && key.ends_with("/first_upload.txt"),
        "{key}"
    );
    let answer = shown["answer"].as_str().unwrap();
    assert!(
        answer.starts_with("HTTP 201\n"),
        "the store's answer: {answer}"
    );
    assert!(answer.contains(&format!("<Key>{key}</Key>")), "{answer}");
    assert_eq!(
        shown["stored"], "Stored: 3000 bytes, type text/plain; it keeps the tenant's rules.",
        "{shown}"
    );
    // The whole contract on one page: the event dev's own receiver got, verified.
    let event = shown["event"].as_str().unwrap();
    assert!(
        event.starts_with("The tenant's webhook got upload.completed (webhook-id msg_")
            && event.ends_with("its signature verified with the tenant's secret."),
        "{shown}"
    );
    let delivery = shown["delivery"].as_str().unwrap();
    assert!(delivery.contains("webhook-signature: v1,"), "{delivery}");
    assert!(
        delivery.contains(&format!("\"key\": \"{key}\"")),
        "{delivery}"
    );
    assert!(delivery.contains("\"found_by\": \"client\""), "{delivery}");
    let objects = shown["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 1, "{shown}");
    assert_eq!(
        (objects[0]["key"].as_str(), objects[0]["size"].as_u64()),
        (Some(key), Some(3000))
    );
    let download = reqwest::get(objects[0]["href"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(download.bytes().await.unwrap().as_ref(), data.as_slice());

    let _ = std::fs::remove_dir_all(&dir);
}

/// The typed client in a real browser (the demo page imports it): a file of three parts
/// in parallel, read back identical; a type the tenant refuses, in the service's words;
/// another tenant's token on the completion refused, nothing stored.
#[tokio::test]
async fn the_typed_client_uploads_in_parts_in_chromium_and_refuses_in_words() {
    let store = Store::start(Kind::Garage).await;
    let config = base_config()
        .replace("http://127.0.0.1:9000", &store.endpoint)
        .replace(
            "shutdown_grace_seconds = 5",
            "shutdown_grace_seconds = 5\ndemo = true",
        )
        .replace(
            "[tenants.limited]",
            &format!(
                "[tenants.client]\nbucket = \"{BUCKET}\"\nmax_size = 67108864\n\
                 multipart_part_size = 5242880\n\
                 content_types = [\"text/plain\", \"application/octet-stream\"]\n\n\
                 [tenants.limited]"
            ),
        );
    let app = spawn_app_keyed(&config, store.access_key, store.secret_key).await;
    store.allow_origin(&app.base).await;
    let dir = std::env::temp_dir().join(format!("upload-tickets-client-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = app.url("/demo");
    let run = |token: String, file: std::path::PathBuf, more: Value| {
        let args = vec![
            page.clone(),
            token,
            file.to_string_lossy().into_owned(),
            "yes".to_owned(),
            "yes".to_owned(),
            more.to_string(),
        ];
        run_driver("demo.mjs", args, "playwright-core")
    };

    // 11 MiB from 5 MiB on: three parts of the tenant's 5 MiB, two at a time.
    let big = dir.join("big.bin");
    let data: Vec<u8> = (0..11 * 1024 * 1024u32)
        .map(|i| (i % 251) as u8 ^ (i >> 20) as u8)
        .collect();
    std::fs::write(&big, &data).unwrap();
    let shown = run(
        token("client", "user-1"),
        big.clone(),
        serde_json::json!({"multipartMiB": 5}),
    )
    .await;
    assert_eq!(shown["outcome"], "ok", "{shown}");
    assert_eq!(shown["progress"], 100.0);
    let key = uploaded_key(&shown).to_owned();
    assert!(key.starts_with("client/user-1/"), "{key}");
    assert_eq!(store.read(&key).await.as_deref(), Some(data.as_slice()));
    assert_eq!(
        shown["stored"],
        "Stored: 11534336 bytes, type application/octet-stream; it keeps the tenant's rules.",
        "{shown}"
    );
    assert_eq!(
        shown["digest"], "",
        "no whole-file SHA-256 for a multipart upload"
    );

    // A refused type: the service's detail and code on the page.
    let photo = dir.join("photo.png");
    std::fs::write(&photo, [0u8; 100]).unwrap();
    let shown = run(token("client", "user-2"), photo, serde_json::json!({})).await;
    assert_eq!(shown["outcome"], "error", "{shown}");
    assert_eq!(
        shown["status"],
        "The service refused: content type image/png is not allowed; allowed: text/plain, \
         application/octet-stream (content_type_not_allowed)"
    );

    // Another tenant's token on the completion: refused; the client aborts the upload.
    let other = token("acme", "user-3");
    let shown = run(
        token("client", "user-3"),
        big,
        serde_json::json!({"multipartMiB": 5, "completeAs": other}),
    )
    .await;
    assert_eq!(shown["outcome"], "error", "{shown}");
    assert_eq!(
        shown["status"],
        "The service refused: this upload belongs to someone else (not_owner)"
    );
    let listed = store
        .client
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("client/user-3/")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.contents().len(), 0, "nothing stored");
    let open = store
        .client
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert_eq!(open.uploads().len(), 0, "and no upload left open");

    let _ = std::fs::remove_dir_all(&dir);
    app.stop().await.unwrap();
}
