//! Real S3-compatible stores for end-to-end tests, on loopback, each started by the test
//! in its own temp folder and killed (by its PID) on drop: s3s-fs 0.17.0 (strict POST
//! policies), Garage 2.5.0 (CORS, for browsers; another implementation), SeaweedFS
//! 4.48 (`weed mini`; strict, and it evaluates `If-None-Match`), and the store
//! `upload-tickets dev` embeds (s3s-fs 0.14.1 behind our POST-policy evaluator, in this
//! process). See `../shared/s3-test-server.md` for what each enforces.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_sdk_s3::config::{BehaviorVersion, Credentials as S3Credentials, Region};
use aws_sdk_s3::types::{CorsConfiguration, CorsRule};

use crate::helpers::*;

/// The bucket every store holds from the start (Garage makes it with its default key,
/// the only way its CORS rules hold; the others get it through the S3 API).
pub const BUCKET: &str = "browser-uploads";
/// Garage key ids are `GK` and 24 hex digits; secrets 64 hex digits.
pub const GARAGE_KEY: &str = "GK0123456789abcdef01234567";
pub const GARAGE_SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// One test per store for `async fn $name(kind: Kind)`: `$name::s3s_fs`,
/// `$name::garage`, `$name::seaweedfs` and `$name::dev_store`, run like any other test.
macro_rules! on_every_store {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn s3s_fs() {
                super::$name(crate::store::Kind::S3sFs).await;
            }
            #[tokio::test]
            async fn garage() {
                super::$name(crate::store::Kind::Garage).await;
            }
            #[tokio::test]
            async fn seaweedfs() {
                super::$name(crate::store::Kind::SeaweedFs).await;
            }
            #[tokio::test]
            async fn dev_store() {
                super::$name(crate::store::Kind::Dev).await;
            }
        }
    )+};
}
pub(crate) use on_every_store;

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    S3sFs,
    Garage,
    SeaweedFs,
    /// `upload-tickets dev`'s own store, started in the test's process.
    Dev,
    /// LocalStack's S3 in process on loopback: it checks no POST signature, so it runs
    /// only where a store that does not is the point (`doctor`).
    LocalStack,
}

/// What serves a store: a child process, or the dev store in this process.
enum Running {
    Child(Child),
    #[allow(dead_code, reason = "held: dropping it stops the store")]
    Dev(upload_tickets::devstore::DevStore),
}

/// A running store; killed and its folder removed on drop, also when a test fails.
pub struct Store {
    pub endpoint: String,
    pub access_key: &'static str,
    pub secret_key: &'static str,
    pub client: aws_sdk_s3::Client,
    running: Running,
    dir: PathBuf,
}

impl Store {
    pub async fn start(kind: Kind) -> Self {
        Self::start_with(kind, None, Default::default()).await
    }

    /// The dev store with the POST checks `lax` names switched off: a lax store.
    pub async fn start_lax(lax: upload_tickets::devstore::Lax) -> Self {
        Self::start_with(Kind::Dev, None, lax).await
    }

    /// s3s-fs answering to the given key pair (a test that plays a deployment's).
    pub async fn start_keyed(kind: Kind, access_key: String, secret_key: String) -> Self {
        assert_eq!(
            kind,
            Kind::S3sFs,
            "only s3s-fs takes its keys from the test"
        );
        // Leaked: a few bytes once per test, so the store's keys stay `&'static`.
        Self::start_with(
            kind,
            Some((access_key.leak(), secret_key.leak())),
            Default::default(),
        )
        .await
    }

    async fn start_with(
        kind: Kind,
        keys: Option<(&'static str, &'static str)>,
        lax: upload_tickets::devstore::Lax,
    ) -> Self {
        // A store that died at start (a port taken between our probe and its bind) or
        // never came up is started again, on other ports, in a fresh folder.
        const ATTEMPTS: u32 = 3;
        for attempt in 1..=ATTEMPTS {
            let mut store = Self::spawn(kind, keys, lax).await;
            // SeaweedFS takes about 10 s to elect itself, over a minute on a loaded
            // machine (the whole suite on 2 cores): a generous bound, not a wait.
            let patience = Duration::from_secs(if attempt < ATTEMPTS { 120 } else { 180 });
            if store.came_up(kind, patience).await {
                return store;
            }
            eprintln!(
                "{kind:?} at {} did not come up (attempt {attempt}): starting it again",
                store.endpoint
            );
        }
        panic!("{kind:?} did not come up with bucket {BUCKET} in {ATTEMPTS} attempts");
    }

    async fn spawn(
        kind: Kind,
        keys: Option<(&'static str, &'static str)>,
        lax: upload_tickets::devstore::Lax,
    ) -> Self {
        let name = format!("{kind:?}").to_lowercase();
        let dir =
            std::env::temp_dir().join(format!("upload-tickets-{name}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let (port, running, access_key, secret_key) = match kind {
            Kind::S3sFs => spawn_s3s(&dir, keys.unwrap_or((ACCESS_KEY, SECRET_KEY))),
            Kind::Garage => spawn_garage(&dir),
            Kind::SeaweedFs => spawn_seaweed(&dir),
            Kind::Dev => start_dev_store(&dir, lax).await,
            Kind::LocalStack => spawn_localstack(&dir),
        };
        let endpoint = format!("http://127.0.0.1:{port}");
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&endpoint)
            .force_path_style(true)
            .credentials_provider(S3Credentials::new(
                access_key, secret_key, None, None, "test",
            ))
            .build();
        Self {
            endpoint,
            access_key,
            secret_key,
            client: aws_sdk_s3::Client::from_conf(config),
            running,
            dir,
        }
    }

    /// Whether the store answers for [`BUCKET`] within `patience`; `false` at once if its
    /// process has ended.
    async fn came_up(&mut self, kind: Kind, patience: Duration) -> bool {
        let deadline = std::time::Instant::now() + patience;
        while std::time::Instant::now() < deadline {
            if let Running::Child(child) = &mut self.running
                && child.try_wait().ok().flatten().is_some()
            {
                return false;
            }
            if kind != Kind::Garage {
                let _ = self.client.create_bucket().bucket(BUCKET).send().await;
            }
            if self
                .client
                .head_bucket()
                .bucket(BUCKET)
                .send()
                .await
                .is_ok()
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
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

    /// The bytes under `key` in [`BUCKET`], if any.
    pub async fn read(&self, key: &str) -> Option<Vec<u8>> {
        let object = self
            .client
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .ok()?;
        Some(object.body.collect().await.ok()?.to_vec())
    }

    /// CORS on [`BUCKET`]: browsers of `origin` may POST and PUT to it, and read the
    /// ETag and Location of the answer (Uppy reads both).
    pub async fn allow_origin(&self, origin: &str) {
        let rule = CorsRule::builder()
            .allowed_origins(origin)
            .allowed_methods("POST")
            .allowed_methods("PUT")
            .allowed_methods("GET")
            .allowed_headers("*")
            .expose_headers("ETag")
            .expose_headers("Location")
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

impl Drop for Store {
    fn drop(&mut self) {
        if let Running::Child(child) = &mut self.running {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

type Spawned = (u16, Running, &'static str, &'static str);

async fn start_dev_store(dir: &std::path::Path, lax: upload_tickets::devstore::Lax) -> Spawned {
    use upload_tickets::devstore::{self, Started};
    let options = devstore::Options {
        listen: "127.0.0.1:0".parse().unwrap(),
        data: Some(dir.join("data")),
        access_key: ACCESS_KEY.to_owned(),
        secret_key: SECRET_KEY.to_owned(),
        buckets: vec![BUCKET.to_owned()],
        origins: Vec::new(),
        lax,
    };
    match devstore::start(options)
        .await
        .expect("the dev store starts")
    {
        Started::Embedded(store) => (
            store.address().port(),
            Running::Dev(store),
            ACCESS_KEY,
            SECRET_KEY,
        ),
        Started::Existing(address) => panic!("port 0 gave a taken address {address}"),
    }
}

fn spawn_s3s(
    dir: &std::path::Path,
    (access_key, secret_key): (&'static str, &'static str),
) -> Spawned {
    let port = free_port();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let child = Command::new(tool("bin/s3s-fs"))
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", access_key, "--secret-key", secret_key])
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("s3s-fs starts");
    (port, Running::Child(child), access_key, secret_key)
}

fn spawn_garage(dir: &std::path::Path) -> Spawned {
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
    (s3_port, Running::Child(child), GARAGE_KEY, GARAGE_SECRET)
}

/// `weed mini` with every port given (each also takes its port + 10000 for gRPC) and
/// every bind on loopback; one identity, so anonymous requests are refused.
fn spawn_seaweed(dir: &std::path::Path) -> Spawned {
    let ports: Vec<u16> = (0..5).map(|_| free_port_with_grpc()).collect();
    let identities = dir.join("s3.json");
    std::fs::write(
        &identities,
        serde_json::json!({"identities": [{
            "name": "admin",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]})
        .to_string(),
    )
    .unwrap();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let child = Command::new(tool("seaweedfs-venv/bin/weed"))
        .args(["mini", "-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
        .arg(format!("-dir={}", data.display()))
        .arg(format!("-s3.config={}", identities.display()))
        .arg(format!("-s3.port={}", ports[0]))
        .arg(format!("-master.port={}", ports[1]))
        .arg(format!("-volume.port={}", ports[2]))
        .arg(format!("-filer.port={}", ports[3]))
        .arg(format!("-admin.port={}", ports[4]))
        .args(["-admin.ui=false", "-webdav=false"])
        .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("weed starts");
    (ports[0], Running::Child(child), ACCESS_KEY, SECRET_KEY)
}

/// LocalStack's runtime in host mode (not the container's paths), S3 only, bound to
/// loopback (hypercorn: its default server binds every address), asking nothing of the
/// internet; every file under `dir`. It takes any key pair.
fn spawn_localstack(dir: &std::path::Path) -> Spawned {
    let port = free_port();
    let child = Command::new(tool("localstack-venv/bin/python"))
        .args(["-m", "localstack.runtime.main"])
        .env("GATEWAY_LISTEN", format!("127.0.0.1:{port}"))
        .env("GATEWAY_SERVER", "hypercorn")
        .env("DNS_ADDRESS", "0")
        .env("SERVICES", "s3")
        .env("OVERRIDE_IN_DOCKER", "0")
        .env("FILESYSTEM_ROOT", dir)
        .env("SKIP_SSL_CERT_DOWNLOAD", "1")
        .env("DISABLE_EVENTS", "1")
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("LocalStack starts");
    (port, Running::Child(child), ACCESS_KEY, SECRET_KEY)
}

/// A free port whose gRPC twin (+10000) is free too.
fn free_port_with_grpc() -> u16 {
    loop {
        let port = free_port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}
