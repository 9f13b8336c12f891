//! `spawn_app` and friends: a server per test on port 0, stopped on drop.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use s3_presigned_post::Credentials;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use upload_tickets::config::{Config, Settings, Source};
use upload_tickets::credentials::{
    CredentialSource, CredentialsError, CredentialsFuture, LoadedCredentials, StaticSource,
};

pub const SECRET: &str = "test-hmac-secret-of-at-least-32-bytes!!";
pub const SECRET_ENV: &str = "TEST_JWT_SECRET";
/// The tenants' webhook secret (Standard Webhooks: `whsec_` and base64 of 32 bytes).
pub const WEBHOOK_SECRET: &str = "whsec_dXBsb2FkLXRpY2tldHMtdGVzdC13ZWJob29rLWtleSE=";
pub const WEBHOOK_SECRET_ENV: &str = "TEST_WEBHOOK_SECRET";
pub const ISSUER: &str = "https://id.test/";
pub const AUDIENCE: &str = "upload-tickets";
pub const ACCESS_KEY: &str = "AKIDTESTEXAMPLE";
pub const SECRET_KEY: &str = "test-aws-secret-key-EXAMPLE";

/// A test tool installed by `scripts/install-test-deps.sh` under `$UPLOAD_TICKETS_TOOLS`
/// (default `~/.cache/upload-tickets-tools`); its absence fails the test, never skips it.
pub fn tool(relative: &str) -> PathBuf {
    let tools = std::env::var_os("UPLOAD_TICKETS_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/upload-tickets-tools")
        });
    let path = tools.join(relative);
    assert!(
        path.is_file(),
        "{} is not installed: run scripts/install-test-deps.sh",
        path.display()
    );
    path
}

/// Serves `router` on a free port of 127.0.0.1 until the handle is aborted (the test's
/// fake peers: webhook receivers, identity providers, collectors, proxies).
pub async fn serve_loopback(
    router: axum::Router,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (addr, server)
}

/// A port free on 127.0.0.1 right now, for servers that cannot bind port 0 themselves.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The configuration most tests use: HS256, two tenants sharing a bucket, one limited.
pub fn base_config() -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
cors_allowed_origins = ["https://app.example.com"]
request_timeout_seconds = 5
shutdown_grace_seconds = 5

[s3]
region = "us-east-1"
endpoint = "http://127.0.0.1:9000"
force_path_style = true

[auth]
issuer = "{ISSUER}"
audience = "{AUDIENCE}"
algorithms = ["HS256"]
hmac_secret_env = "{SECRET_ENV}"
required_scope = "uploads:write"
leeway_seconds = 5

[tenants.acme]
bucket = "shared-uploads"
min_size = 1
max_size = 1048576
content_types = ["image/*", "application/pdf"]
metadata_keys = ["album"]
success_action_status = 201

[tenants.globex]
bucket = "shared-uploads"
key_template = "globex/{{sub}}/{{uuid}}/{{filename}}"
max_size = 1000

[tenants.metered]
bucket = "metered-uploads"
max_size = 1000
content_types = ["text/plain"]

[tenants.limited]
bucket = "limited-uploads"
max_size = 1000
rate_limit_per_minute = 2
"#
    )
}

/// Credentials that can be switched off and on, to play a provider outage.
#[derive(Debug, Clone)]
pub struct Switchable {
    pub on: Arc<AtomicBool>,
    credentials: Credentials,
}

impl Switchable {
    pub fn new(on: bool) -> Self {
        Self {
            on: Arc::new(AtomicBool::new(on)),
            credentials: Credentials::new(ACCESS_KEY, SECRET_KEY, None).unwrap(),
        }
    }
}

impl CredentialSource for Switchable {
    fn load(&self) -> CredentialsFuture<'_> {
        let on = self.on.load(Ordering::SeqCst);
        let credentials = self.credentials.clone();
        Box::pin(async move {
            if on {
                Ok(LoadedCredentials {
                    credentials,
                    expires_at: None,
                })
            } else {
                Err(CredentialsError::Other(
                    "the test switched credentials off".to_owned(),
                ))
            }
        })
    }
}

pub struct TestApp {
    pub base: String,
    /// The admin listener's base URL, when the configuration has one.
    pub admin: Option<String>,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("the server answers")
    }

    /// `POST /uploads` with `token` and a JSON `body`.
    pub async fn upload(&self, token: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/uploads"))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("the server answers")
    }

    /// Stops the server and waits until it has.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.handle.take() {
            Some(handle) => handle.await.expect("the server task ends"),
            None => Ok(()),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_on(&base_config()).await
}

/// A server for `toml`, signing with the test key.
pub async fn spawn_app_on(toml: &str) -> TestApp {
    spawn_app_keyed(toml, ACCESS_KEY, SECRET_KEY).await
}

/// A server for `toml`, signing with a store's own key pair.
pub async fn spawn_app_keyed(toml: &str, access_key: &str, secret_key: &str) -> TestApp {
    let credentials = Credentials::new(access_key, secret_key, None).unwrap();
    spawn_app_with(toml, Arc::new(StaticSource(credentials))).await
}

pub async fn spawn_app_with(toml: &str, source: Arc<dyn CredentialSource>) -> TestApp {
    init_logs();
    let settings = Settings::load(&Source::Text(toml.to_owned())).expect("test settings load");
    let config = Config::from_settings_with_env(settings, &|name| match name {
        SECRET_ENV => Some(SECRET.to_owned()),
        WEBHOOK_SECRET_ENV => Some(WEBHOOK_SECRET.to_owned()),
        _ => None,
    })
    .expect("test settings are valid");
    let app = upload_tickets::startup::Application::build(config, source)
        .await
        .expect("the server binds");
    let addr = app.local_addr().unwrap();
    let admin = app.admin_addr().map(|a| format!("http://{a}"));
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    TestApp {
        base: format!("http://{addr}"),
        admin,
        client: reqwest::Client::new(),
        stop: Some(stop),
        handle: Some(handle),
    }
}

/// Logs only when TEST_LOG is set.
fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        // Tests run to the end of the process: the writer may live as long.
        std::mem::forget(
            upload_tickets::telemetry::init(
                upload_tickets::config::LogFormat::Pretty,
                &Default::default(),
            )
            .expect("the log writer starts"),
        );
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Valid claims for `tenant` and `sub`.
pub fn claims(tenant: &str, sub: &str) -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "tenant": tenant,
        "scope": "openid uploads:write", "iat": now(), "exp": now() + 600,
    })
}

pub fn hs256(claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        None,
    )
}

pub fn token(tenant: &str, sub: &str) -> String {
    hs256(&claims(tenant, sub))
}

pub fn sign(alg: Algorithm, claims: &Value, key: &EncodingKey, kid: Option<&str>) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("test tokens sign")
}

pub fn rsa_key(name: &str) -> EncodingKey {
    EncodingKey::from_rsa_pem(&std::fs::read(fixture(&format!("jwt/{name}-private.pem"))).unwrap())
        .unwrap()
}

/// A problem+json body, checked for shape.
pub async fn problem(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let body: Value = response.json().await.expect("a JSON problem");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status);
    assert_eq!(body["type"], format!("urn:upload-tickets:problem:{code}"));
    assert!(body["title"].is_string() && body["detail"].is_string());
    body
}

/// Decodes a ticket's policy.
pub fn policy_of(ticket: &Value) -> Value {
    let b64 = ticket["fields"]["Policy"].as_str().expect("a Policy field");
    let json = base64_simd::STANDARD.decode_to_vec(b64).expect("base64");
    serde_json::from_slice(&json).expect("policy JSON")
}

/// The lines a child writes to `stream`, as they come, read by a thread of their own
/// to the end, also once nobody listens: a child never blocks on a full pipe or fails
/// writing to a closed one.
pub fn lines_of(stream: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead as _;
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stream)
            .lines()
            .map_while(Result::ok)
        {
            // Nobody listening is not a reason to stop reading.
            let _ = tx.send(line);
        }
    });
    lines
}

/// The real binary serving a configuration, with its JSON log lines; killed on drop,
/// also when the test fails.
pub struct Binary {
    child: std::process::Child,
    /// The address it logged it listens on.
    pub address: String,
    /// Log lines read so far.
    pub lines: Vec<String>,
    incoming: std::sync::mpsc::Receiver<String>,
    dir: PathBuf,
}

impl Binary {
    /// Starts `upload-tickets serve` on `toml` with a clean environment plus `env`
    /// (static AWS credentials and the HMAC secret are always set).
    pub fn start(toml: &str, env: &[(&str, &str)]) -> Self {
        use std::io::Write as _;
        let dir = std::env::temp_dir().join(format!("upload-tickets-bin-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config.toml");
        std::fs::File::create(&config)
            .unwrap()
            .write_all(toml.as_bytes())
            .unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_upload-tickets"))
            .args(["serve", "--config"])
            .arg(&config)
            .env_clear()
            .env(SECRET_ENV, SECRET)
            .env(WEBHOOK_SECRET_ENV, WEBHOOK_SECRET)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("UPLOAD_TICKETS__SERVER__LOG_FORMAT", "json")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the binary runs");
        let incoming = lines_of(child.stderr.take().expect("stderr is piped"));
        let mut binary = Self {
            child,
            address: String::new(),
            lines: Vec::new(),
            incoming,
            dir,
        };
        binary.address = loop {
            let line = binary
                .incoming
                .recv_timeout(std::time::Duration::from_secs(30))
                .expect("the server logs its address");
            let parsed: Value = serde_json::from_str(&line).unwrap_or_default();
            binary.lines.push(line);
            if let Some(address) = parsed["address"].as_str() {
                break address.to_owned();
            }
        };
        binary
    }

    /// Sends SIGTERM to the process (by its PID).
    pub fn terminate(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "SIGTERM delivered");
    }

    /// Kills the process at once (SIGKILL): no shutdown, nothing flushed.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `limit` for the process to exit and returns its status.
    pub fn wait(&mut self, limit: std::time::Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("the child can be waited for") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not exit within {limit:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Stops the process as a supervisor does (SIGTERM, then waiting for it: the log
    /// writer flushes on the way out) and returns every log line it wrote.
    pub fn stop_and_collect(mut self) -> Vec<String> {
        self.terminate();
        self.wait(std::time::Duration::from_secs(30));
        // The reader thread ends at EOF, which closes the channel.
        while let Ok(line) = self
            .incoming
            .recv_timeout(std::time::Duration::from_secs(10))
        {
            self.lines.push(line);
        }
        std::mem::take(&mut self.lines)
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
