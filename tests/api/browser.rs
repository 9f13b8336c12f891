//! The demo page in a real browser (Debian's Chromium, driven by playwright-core) uploads
//! a file straight to a real S3-compatible server that answers CORS (Garage), and shows
//! the store's refusal in plain words when the file breaks the ticket.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::{BehaviorVersion, Credentials as S3Credentials, Region};
use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
use serde_json::Value;
use upload_tickets::credentials::StaticSource;
use upload_tickets::presign::Credentials;

use crate::helpers::*;

const BUCKET: &str = "browser-uploads";
/// Garage key ids are `GK` and 24 hex digits; secrets 64 hex digits.
const GARAGE_KEY: &str = "GK0123456789abcdef01234567";
const GARAGE_SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A single-node Garage on loopback with a default key and bucket; killed on drop.
struct Garage {
    endpoint: String,
    child: Child,
    dir: PathBuf,
    client: aws_sdk_s3::Client,
}

impl Garage {
    async fn start() -> Self {
        let dir =
            std::env::temp_dir().join(format!("upload-tickets-garage-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let (s3_port, rpc_port) = (free_port(), free_port());
        let config = dir.join("garage.toml");
        std::fs::write(
            &config,
            format!(
                "metadata_dir = {meta:?}\ndata_dir = {data:?}\ndb_engine = \"lmdb\"\nreplication_factor = 1\n\
                 rpc_bind_addr = \"127.0.0.1:{rpc_port}\"\nrpc_public_addr = \"127.0.0.1:{rpc_port}\"\n\
                 rpc_secret = \"{secret}\"\n\n[s3_api]\ns3_region = \"us-east-1\"\n\
                 api_bind_addr = \"127.0.0.1:{s3_port}\"\nroot_domain = \".s3.localhost\"\n",
                meta = dir.join("meta"),
                data = dir.join("data"),
                secret = GARAGE_SECRET,
            ),
        )
        .unwrap();
        let child = Command::new(tool("bin/garage"))
            .arg("-c")
            .arg(&config)
            .args([
                "server",
                "--single-node",
                "--default-access-key",
                "--default-bucket",
            ])
            .env("GARAGE_DEFAULT_ACCESS_KEY", GARAGE_KEY)
            .env("GARAGE_DEFAULT_SECRET_KEY", GARAGE_SECRET)
            .env("GARAGE_DEFAULT_BUCKET", BUCKET)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("garage starts");
        let endpoint = format!("http://127.0.0.1:{s3_port}");
        let s3 = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&endpoint)
            .force_path_style(true)
            .credentials_provider(S3Credentials::new(
                GARAGE_KEY,
                GARAGE_SECRET,
                None,
                None,
                "test",
            ))
            .build();
        let garage = Self {
            endpoint,
            child,
            dir,
            client: aws_sdk_s3::Client::from_conf(s3),
        };
        for _ in 0..150 {
            if garage
                .client
                .head_bucket()
                .bucket(BUCKET)
                .send()
                .await
                .is_ok()
            {
                return garage;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("garage did not come up with bucket {BUCKET}");
    }

    /// CORS on the bucket made at start: browsers of `origin` may POST to it.
    async fn allow_origin(&self, origin: &str) {
        let rule = CorsRule::builder()
            .allowed_origins(origin)
            .allowed_methods("POST")
            .allowed_methods("GET")
            .allowed_headers("*")
            .expose_headers("ETag")
            .max_age_seconds(600)
            .build()
            .unwrap();
        self.client
            .put_bucket_cors()
            .bucket(BUCKET)
            .cors_configuration(
                CorsConfiguration::builder()
                    .cors_rules(rule)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("CORS set");
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs tests/browser/demo.mjs off the test's runtime (the server under test runs on
/// it) and returns what the page showed.
async fn drive_demo(url: &str, token: &str, file: &Path, declare_size: bool) -> Value {
    let (url, token, file) = (url.to_owned(), token.to_owned(), file.to_owned());
    tokio::task::spawn_blocking(move || drive_demo_blocking(&url, &token, &file, declare_size))
        .await
        .expect("the browser driver thread")
}

fn drive_demo_blocking(url: &str, token: &str, file: &Path, declare_size: bool) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/demo.mjs");
    assert!(
        script
            .with_file_name("node_modules/playwright-core")
            .is_dir(),
        "playwright-core is not installed: run scripts/install-test-deps.sh"
    );
    assert!(
        Path::new("/usr/bin/chromium").is_file(),
        "chromium is not installed: run scripts/install-test-deps.sh"
    );
    let output = Command::new("node")
        .arg(&script)
        .args([url, token])
        .arg(file)
        .arg(if declare_size { "yes" } else { "no" })
        .output()
        .expect("node runs");
    assert!(
        output.status.success(),
        "the browser run failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the driver prints JSON")
}

#[tokio::test]
async fn the_demo_page_uploads_with_a_ticket_and_shows_the_stores_refusal() {
    let garage = Garage::start().await;
    let config = base_config()
        .replace("http://127.0.0.1:9000", &garage.endpoint)
        .replace(
            "shutdown_grace_seconds = 5",
            "shutdown_grace_seconds = 5\ndemo = true",
        )
        .replace(
            "[tenants.limited]",
            &format!(
                "[tenants.browser]\nbucket = \"{BUCKET}\"\nmax_size = 4096\n\n[tenants.limited]"
            ),
        );
    let app = spawn_app_with(
        &config,
        Arc::new(StaticSource(
            Credentials::new(GARAGE_KEY, GARAGE_SECRET, None).unwrap(),
        )),
    )
    .await;
    garage.allow_origin(&app.base).await;
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
    let key = shown["status"]
        .as_str()
        .unwrap()
        .strip_prefix("Uploaded: ")
        .expect("the page shows the key");
    assert!(
        key.starts_with("browser/user-42/") && key.ends_with("/hello_report.txt"),
        "{key}"
    );
    let object = garage
        .client
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .expect("the object exists");
    assert_eq!(
        object.body.collect().await.unwrap().into_bytes().as_ref(),
        data.as_slice()
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
    let listed = garage
        .client
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.contents().len(), 1, "only the good upload is stored");

    let _ = std::fs::remove_dir_all(&dir);
}
