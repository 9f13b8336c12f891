//! Real Uppy (Dashboard + `@uppy/aws-s3` 4.x and 5.x, from npm) in Debian's Chromium,
//! switched from Companion to upload-tickets by its endpoint and a token header, uploads
//! to a real store: a small file (POST tenant and PUT tenant) and one of three parts,
//! read back identical; a refused file type shows the service's words in the Dashboard;
//! another tenant's token cannot complete the upload.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::browser::run_driver;
use crate::events::QUICK_EVENTS;
use crate::helpers::*;
use crate::receiver::Receiver;
use crate::store::{BUCKET, Kind, Store};

const MIB: usize = 1024 * 1024;

/// Runs tests/browser/uppy.mjs with `test` and answers what Uppy reported and its
/// Dashboard showed.
async fn drive_uppy(test: Value) -> Value {
    let version = test["version"].as_str().unwrap();
    let bundle = format!("uppy{version}/dist/uppy.min.js");
    run_driver("uppy.mjs", vec![test.to_string()], &bundle).await
}

struct Files {
    dir: PathBuf,
}

impl Files {
    fn new() -> Self {
        let dir =
            std::env::temp_dir().join(format!("upload-tickets-uppy-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir }
    }

    /// A file of `len` bytes that differ from part to part, so that a misplaced part shows.
    fn write(&self, name: &str, len: usize) -> (String, Vec<u8>) {
        let data: Vec<u8> = (0..len)
            .map(|i| (i % 251) as u8 ^ (i / MIB) as u8)
            .collect();
        let path = self.dir.join(name);
        std::fs::write(&path, &data).unwrap();
        (path.to_string_lossy().into_owned(), data)
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn successful<'a>(shown: &'a Value, name: &str) -> &'a Value {
    shown["successful"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("{name} did not upload: {shown}"))
}

async fn keys_under(store: &Store, prefix: &str) -> Vec<String> {
    let listed = store
        .client
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn uppy_5_uploads_through_upload_tickets_on_garage() {
    uppy_uploads_through_upload_tickets("5", Kind::Garage).await;
}

#[tokio::test]
async fn uppy_4_uploads_through_upload_tickets_on_seaweedfs() {
    uppy_uploads_through_upload_tickets("4", Kind::SeaweedFs).await;
}

/// Asserts the Dashboard shows the service's refusal of a PNG, in its words.
fn shows_the_refused_type(shown: &Value) {
    assert_eq!(shown["successful"], json!([]), "{shown}");
    let text = shown["shown"].as_str().unwrap();
    assert!(
        text.contains(
            "content type image/png is not allowed; allowed: text/plain, application/octet-stream"
        ),
        "the Dashboard shows the service's detail: {text}"
    );
}

/// A store of `kind`, the service on it with the tenants in `tenants` (TOML), both
/// open to the test page's own origin.
struct Setup {
    store: Store,
    app: TestApp,
    page_port: u16,
    service: String,
    /// Every tenant's webhook receiver.
    hooks: Receiver,
}

/// `tenants` (TOML), each with the receiver's webhook and tickets valid 5 seconds (the
/// sweeper finds what Uppy uploads alone soon after).
fn with_webhooks(tenants: &str, hook: &str) -> String {
    tenants
        .lines()
        .map(|line| match line.starts_with("[tenants.") {
            true => format!(
                "{line}\ncompletion_webhook_url = \"{hook}\"\n\
                 completion_webhook_secret_env = \"{WEBHOOK_SECRET_ENV}\"\ndefault_expires_in = 5\n"
            ),
            false => format!("{line}\n"),
        })
        .collect()
}

/// Waits for one `upload.completed` per key in `keys` and nothing else, each signature
/// checked with the Standard Webhooks reference library.
async fn reported_once_each(hooks: &Receiver, keys: &[String]) {
    let delivered = hooks.wait_for(keys.len(), Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let delivered_after = hooks.accepted();
    assert_eq!(
        delivered.len(),
        delivered_after.len(),
        "one event per upload"
    );
    let mut reported: Vec<String> = delivered_after
        .iter()
        .map(|d| {
            let event = d.event();
            assert_eq!(event["type"], "upload.completed", "{event}");
            event["data"]["key"].as_str().unwrap().to_owned()
        })
        .collect();
    reported.sort();
    let mut expected = keys.to_vec();
    expected.sort();
    assert_eq!(reported, expected);
    hooks.verify_with_reference_library().await;
}

async fn setup(kind: Kind, tenants: &str) -> Setup {
    let store = Store::start(kind).await;
    let hooks = Receiver::start().await;
    let tenants = format!("{}{QUICK_EVENTS}", with_webhooks(tenants, &hooks.url));
    // The page's own origin, allowed by the service and the bucket.
    let page_port = free_port();
    let page_origin = format!("http://localhost:{page_port}");
    let config = base_config()
        .replace("http://127.0.0.1:9000", &store.endpoint)
        .replace(
            r#"cors_allowed_origins = ["https://app.example.com"]"#,
            &format!(r#"cors_allowed_origins = ["{page_origin}"]"#),
        )
        .replace(
            "[tenants.limited]",
            &format!("{tenants}\n[tenants.limited]"),
        );
    let app = spawn_app_keyed(&config, store.access_key, store.secret_key).await;
    store.allow_origin(&page_origin).await;
    let service = app.base.clone();
    Setup {
        store,
        app,
        page_port,
        service,
        hooks,
    }
}

async fn uppy_uploads_through_upload_tickets(version: &str, kind: Kind) {
    let tenants = format!(
        "[tenants.uppy]\nbucket = \"{BUCKET}\"\nmax_size = 67108864\n\
         content_types = [\"text/plain\", \"application/octet-stream\"]\n\n\
         [tenants.uppyput]\nbucket = \"{BUCKET}\"\nmax_size = 67108864\nupload_method = \"put\"\n"
    );
    let Setup {
        store,
        app,
        page_port,
        service,
        hooks,
    } = setup(kind, &tenants).await;
    let files = Files::new();
    let (small, small_data) = files.write("notes.txt", 3000);
    let (big, big_data) = files.write("big.bin", 11 * MIB);
    let over = 5 * MIB;

    // POST tenant: the small file with a POST ticket, the big one in three parts
    // (Uppy's own 5 MiB), in one Uppy run, bytes read back identical.
    let shown = drive_uppy(json!({
        "version": version, "service": service, "pagePort": page_port, "token": token("uppy", "user-1"),
        "files": [small, big], "multipartOver": over, "declareSize": false,
    }))
    .await;
    assert_eq!(shown["failed"], json!([]), "{shown}");
    let small_key = successful(&shown, "notes.txt")["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        small_key.starts_with("uppy/user-1/") && small_key.ends_with("/notes.txt"),
        "{shown}"
    );
    assert_eq!(
        store.read(&small_key).await.as_deref(),
        Some(small_data.as_slice())
    );
    let big_file = successful(&shown, "big.bin");
    let big_key = big_file["key"].as_str().unwrap().to_owned();
    assert!(big_key.starts_with("uppy/user-1/"), "{shown}");
    assert!(
        big_file["uploadURL"].as_str().unwrap().ends_with(&big_key),
        "{shown}"
    );
    assert_eq!(
        store.read(&big_key).await.as_deref(),
        Some(big_data.as_slice())
    );
    let calls: Vec<&str> = shown["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        calls.iter().any(|c| c.starts_with("GET /s3/params")),
        "{calls:?}"
    );
    assert!(calls.contains(&"POST /s3/multipart"), "{calls:?}");
    let part_calls = calls
        .iter()
        .filter(|c| c.starts_with("GET /s3/multipart/") && !c.contains("/batch"))
        .count();
    assert_eq!(part_calls, 3, "one signed URL per part: {calls:?}");
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("POST /s3/multipart/") && c.ends_with("/complete")),
        "{calls:?}"
    );

    // PUT tenant: the app puts the size in the file's meta (PUT URLs sign one length).
    let shown = drive_uppy(json!({
        "version": version, "service": service, "pagePort": page_port, "token": token("uppyput", "user-2"),
        "files": [small], "multipartOver": over, "declareSize": true,
    }))
    .await;
    assert_eq!(shown["failed"], json!([]), "{shown}");
    // Uppy reads a key from POST fields only; a PUT's is in the URL it reports.
    let url = successful(&shown, "notes.txt")["uploadURL"]
        .as_str()
        .unwrap();
    let path = url.split_once(&format!("/{BUCKET}/")).unwrap().1;
    let put_key = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .unwrap()
        .into_owned();
    assert!(put_key.starts_with("uppyput/user-2/"), "{shown}");
    assert_eq!(
        store.read(&put_key).await.as_deref(),
        Some(small_data.as_slice())
    );

    // A type the tenant refuses: the Dashboard shows the service's detail.
    let (photo, _) = files.write("photo.png", 2000);
    let shown = drive_uppy(json!({
        "version": version, "service": service, "pagePort": page_port, "token": token("uppy", "user-3"),
        "files": [photo], "multipartOver": over, "declareSize": false,
    }))
    .await;
    shows_the_refused_type(&shown);
    assert_eq!(
        keys_under(&store, "uppy/user-3/").await,
        Vec::<String>::new()
    );

    // Another tenant's token on the completion of user-4's upload: refused in words,
    // nothing stored.
    let shown = drive_uppy(json!({
        "version": version, "service": service, "pagePort": page_port, "token": token("uppy", "user-4"),
        "files": [big], "multipartOver": over, "declareSize": false,
        "completeAs": token("uppyput", "user-4"),
    }))
    .await;
    assert_eq!(shown["successful"], json!([]), "{shown}");
    let text = shown["shown"].as_str().unwrap();
    assert!(text.contains("belongs to someone else"), "{text}");
    assert_eq!(
        keys_under(&store, "uppy/user-4/").await,
        Vec::<String>::new()
    );

    // With no call beyond Uppy's own, the tenants hear of each upload once: the POST and
    // PUT files from the sweeper, the multipart one from its completion.
    reported_once_each(&hooks, &[small_key, big_key, put_key]).await;
    app.stop().await.unwrap();
}

/// The key a file landed under, from the URL Uppy reports (its query dropped).
fn key_of_upload_url(file: &Value) -> String {
    let url = file["uploadURL"].as_str().unwrap();
    let url = url.split('?').next().unwrap();
    let path = url.split_once(&format!("/{BUCKET}/")).unwrap().1;
    percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .unwrap()
        .into_owned()
}

/// Which Uppy 6 runs the `signRequest` recipe of docs/front-ends.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Uppy6 {
    /// The `uppy@6.0.1` bundle (`@uppy/aws-s3` 6.1.0), the recipe in its page.
    Bundle,
    /// The separate packages, newest published (`@uppy/aws-s3` 6.3.1), the docs'
    /// recipe itself bundled with esbuild.
    Latest,
    /// The same with `@uppy/aws-s3` 6.0.0.
    AwsS3_6_0,
}

impl Uppy6 {
    /// Sends the headers the service answers (6.2 on).
    fn takes_headers(self) -> bool {
        self == Self::Latest
    }

    async fn drive(self, mut test: Value) -> Value {
        match self {
            Self::Bundle => {
                test["version"] = json!("6");
                drive_uppy(test).await
            }
            Self::Latest | Self::AwsS3_6_0 => {
                let variant = if self == Self::Latest {
                    "latest"
                } else {
                    "aws-s3-6.0"
                };
                test["packages"] = json!(variant);
                let needs = "../uppy-packages/node_modules/@uppy/aws-s3";
                run_driver("uppy.mjs", vec![test.to_string()], needs).await
            }
        }
    }
}

#[tokio::test]
async fn uppy_6_1_in_the_uppy_bundle_uploads_with_the_sign_request_recipe_on_seaweedfs() {
    uppy_6_uploads_with_the_sign_request_recipe(Uppy6::Bundle).await;
}

#[tokio::test]
async fn uppy_6_3_newest_packages_upload_with_the_readmes_recipe_on_seaweedfs() {
    uppy_6_uploads_with_the_sign_request_recipe(Uppy6::Latest).await;
}

#[tokio::test]
async fn uppy_6_0_packages_upload_with_the_readmes_recipe_on_seaweedfs() {
    uppy_6_uploads_with_the_sign_request_recipe(Uppy6::AwsS3_6_0).await;
}

/// Uppy 6 with the `signRequest` recipe of docs/front-ends.md: bytes to the store, starting,
/// completing and aborting at the service for the verified caller. A plugin that sends
/// the answered headers (6.3) gets no-overwrite PUTs and POST forms; older ones a PUT
/// tenant without If-None-Match, and a POST tenant's refusal in words.
async fn uppy_6_uploads_with_the_sign_request_recipe(uppy: Uppy6) {
    let overwrite = if uppy.takes_headers() {
        ""
    } else {
        "prevent_overwrite = false\n"
    };
    let tenants = format!(
        "[tenants.uppy6]\nbucket = \"{BUCKET}\"\nmax_size = 67108864\nupload_method = \"put\"\n\
         {overwrite}content_types = [\"text/plain\", \"application/octet-stream\"]\n\n\
         [tenants.uppy6post]\nbucket = \"{BUCKET}\"\nmax_size = 67108864\n"
    );
    let Setup {
        store,
        app,
        page_port,
        service,
        hooks,
    } = setup(Kind::SeaweedFs, &tenants).await;
    let mut uploaded = Vec::new();
    let files = Files::new();
    let (small, small_data) = files.write("notes.txt", 3000);
    let (big, big_data) = files.write("big.bin", 12 * MIB);
    let over = 5 * MIB;
    let run = |token: String, files: Vec<String>, complete_as: Option<String>| {
        uppy.drive(json!({
            "service": service, "pagePort": page_port, "token": token,
            "files": files, "multipartOver": over, "declareSize": false, "completeAs": complete_as,
        }))
    };

    let shown = run(
        token("uppy6", "user-1"),
        vec![small.clone(), big.clone()],
        None,
    )
    .await;
    assert_eq!(shown["failed"], json!([]), "{shown}");
    if uppy != Uppy6::Bundle {
        let version = if uppy == Uppy6::Latest {
            "6.3.1"
        } else {
            "6.0.0"
        };
        assert_eq!(shown["awsS3"], version, "the plugin under test");
    }
    for (name, data) in [("notes.txt", &small_data), ("big.bin", &big_data)] {
        let file = successful(&shown, name);
        let key = key_of_upload_url(file);
        assert!(
            key.starts_with("uppy6/user-1/") && key.ends_with(name),
            "{shown}"
        );
        if uppy != Uppy6::AwsS3_6_0 {
            // 6.1 on take the key the service picked; 6.0 reports the one it proposed.
            assert_eq!(file["key"], key, "{shown}");
        }
        assert_eq!(
            store.read(&key).await.as_deref(),
            Some(data.as_slice()),
            "{name}"
        );
        uploaded.push(key);
    }
    let calls: Vec<&str> = shown["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    // PutObject, Create, three parts, Complete: six signatures, two receipts.
    let signs = calls
        .iter()
        .filter(|c| **c == "POST /uploads/uppy/sign")
        .count();
    assert_eq!(signs, 6, "{calls:?}");
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.ends_with("/uploads/uppy/answer"))
            .count(),
        2,
        "{calls:?}"
    );

    // The small file's PUT: with 6.3 it signed If-None-Match, and the store refuses the
    // same URL a second time.
    let put = shown["signed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["request"]["method"] == "PUT" && s["request"].get("uploadId").is_none())
        .unwrap_or_else(|| panic!("no PutObject signed: {shown}"));
    if uppy.takes_headers() {
        assert_eq!(put["request"]["contentType"], "text/plain", "{put}");
        assert_eq!(put["answer"]["headers"]["if-none-match"], "*", "{put}");
        let mut again = reqwest::Client::new().put(put["answer"]["url"].as_str().unwrap());
        for (name, value) in put["answer"]["headers"].as_object().unwrap() {
            again = again.header(name, value.as_str().unwrap());
        }
        let again = again.body(small_data.clone()).send().await.unwrap();
        assert_eq!(
            again.status(),
            412,
            "no overwrite: {:?}",
            again.text().await
        );
    } else {
        assert!(put["request"].get("contentType").is_none(), "{put}");
        assert!(put["answer"].get("headers").is_none(), "{put}");
    }

    // What the service refuses shows in the Dashboard in its words.
    let (photo, _) = files.write("photo.png", 2000);
    let shown = run(token("uppy6", "user-3"), vec![photo], None).await;
    shows_the_refused_type(&shown);

    // A POST tenant: a form for 6.3, the store enforcing its size range; refused in
    // words for older plugins.
    let shown = run(token("uppy6post", "user-5"), vec![small.clone()], None).await;
    if uppy.takes_headers() {
        assert_eq!(shown["failed"], json!([]), "{shown}");
        let key = key_of_upload_url(successful(&shown, "notes.txt"));
        assert!(key.starts_with("uppy6post/user-5/"), "{shown}");
        assert_eq!(
            store.read(&key).await.as_deref(),
            Some(small_data.as_slice())
        );
        uploaded.push(key);
        let signed = &shown["signed"][0]["answer"];
        assert!(signed["fields"]["Policy"].is_string(), "{signed}");
    } else {
        let text = shown["shown"].as_str().unwrap();
        assert!(text.contains("this tenant hands out POST forms"), "{text}");
        assert_eq!(keys_under(&store, "uppy6post/").await, Vec::<String>::new());
    }

    // Another tenant's token on the completion: refused, nothing stored.
    let shown = run(
        token("uppy6", "user-4"),
        vec![big],
        Some(token("uppy6post", "user-4")),
    )
    .await;
    assert_eq!(shown["successful"], json!([]), "{shown}");
    let text = shown["shown"].as_str().unwrap();
    assert!(text.contains("belongs to someone else"), "{text}");
    for prefix in ["uppy6/user-3/", "uppy6/user-4/"] {
        assert_eq!(
            keys_under(&store, prefix).await,
            Vec::<String>::new(),
            "{prefix}"
        );
    }
    reported_once_each(&hooks, &uploaded).await;
    app.stop().await.unwrap();
}
