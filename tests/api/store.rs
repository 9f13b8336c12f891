//! A real S3-compatible store for end-to-end tests: s3s-fs 0.17.0 on loopback.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_sdk_s3::config::{BehaviorVersion, Credentials as S3Credentials, Region};

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
