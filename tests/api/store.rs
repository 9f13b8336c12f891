//! Real S3-compatible stores for end-to-end tests, on loopback: s3s-fs 0.17.0 (strict
//! POST policies) and Garage 2.5.0 (CORS, for browsers; another implementation).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_sdk_s3::config::{BehaviorVersion, Credentials as S3Credentials, Region};
use aws_sdk_s3::types::{CorsConfiguration, CorsRule};

use crate::helpers::*;

/// A running s3s-fs on 127.0.0.1 with its own data folder; killed and removed on drop.
pub struct S3Server {
    pub endpoint: String,
    child: Child,
    dir: PathBuf,
    pub client: aws_sdk_s3::Client,
}

impl S3Server {
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("upload-tickets-s3s-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let child = Command::new(tool("bin/s3s-fs"))
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--access-key",
                ACCESS_KEY,
                "--secret-key",
                SECRET_KEY,
            ])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs starts");
        let endpoint = format!("http://127.0.0.1:{port}");
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&endpoint)
            .force_path_style(true)
            .credentials_provider(S3Credentials::new(
                ACCESS_KEY, SECRET_KEY, None, None, "test",
            ))
            .build();
        let server = Self {
            endpoint,
            child,
            dir,
            client: aws_sdk_s3::Client::from_conf(config),
        };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("s3s-fs did not start listening on {port}");
    }

    pub async fn create_bucket(&self, name: &str) {
        self.client
            .create_bucket()
            .bucket(name)
            .send()
            .await
            .expect("bucket created");
    }

    pub async fn exists(&self, bucket: &str, key: &str) -> bool {
        self.client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .is_ok()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub const BUCKET: &str = "browser-uploads";
/// Garage key ids are `GK` and 24 hex digits; secrets 64 hex digits.
pub const GARAGE_KEY: &str = "GK0123456789abcdef01234567";
pub const GARAGE_SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Garage 2.5.0, single node on loopback, with a default key and bucket; killed on drop.
pub struct Garage {
    pub endpoint: String,
    child: Child,
    dir: PathBuf,
    pub client: aws_sdk_s3::Client,
}

impl Garage {
    pub async fn start() -> Self {
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

    /// CORS on the bucket made at start: browsers of `origin` may POST and PUT to it.
    pub async fn allow_origin(&self, origin: &str) {
        let rule = CorsRule::builder()
            .allowed_origins(origin)
            .allowed_methods("POST")
            .allowed_methods("PUT")
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
