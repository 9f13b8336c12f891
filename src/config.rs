//! Typed settings: a TOML file, then `UPLOAD_TICKETS__SECTION__KEY` environment
//! overrides, checked completely before anything starts.
//!
//! Secrets never live in the file: the JWT HMAC secret is read from the environment
//! variable the file names, AWS credentials come from the AWS default chain.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format as _, Toml};
use serde::Deserialize;

use crate::auth::{AuthSettings, Verifier};
use crate::handle::{HandleKey, MIN_HANDLE_KEY_BYTES};
use crate::policy::{TenantRules, TenantSettings};
use crate::setting::InvalidSetting;
use crate::tenant::Tenant;
use crate::webhook::Webhook;
use s3_presigned_post::{Addressing, Endpoint, Presigner, Region};

/// The embedded development configuration (`config/default.toml`).
pub const DEFAULT_CONFIG: &str = include_str!("../config/default.toml");

/// Prefix of environment overrides; `__` separates nesting levels.
pub const ENV_PREFIX: &str = "UPLOAD_TICKETS__";

/// Everything in the configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `[server]`.
    #[serde(default)]
    pub server: ServerSettings,
    /// `[s3]`.
    pub s3: S3Settings,
    /// `[auth]`.
    pub auth: AuthSettings,
    /// `[tenants.<id>]`.
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantSettings>,
    /// `[limits]`: where limits and quotas are counted.
    #[serde(default)]
    pub limits: crate::limits::LimitsSettings,
}

/// `[server]`: how the HTTP server runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to listen on; default `0.0.0.0:8080`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Where `/metrics`, `/readyz` (and `/livez`) are served apart from the public port,
    /// which then serves neither; default none (all on `listen`).
    pub admin_listen: Option<SocketAddr>,
    /// Origins allowed to call from browsers (exact, e.g. `https://app.example.com`).
    #[serde(default)]
    pub cors_allowed_origins: Vec<String>,
    /// Longest a request may take, in seconds; default 10.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_seconds: u64,
    /// How long in-flight requests may finish after SIGTERM, in seconds; default 20.
    #[serde(default = "default_grace")]
    pub shutdown_grace_seconds: u64,
    /// Log format: `json` (default) or `pretty`.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Serve the browser demo page at `/demo`; default false (on in `dev`).
    #[serde(default)]
    pub demo: bool,
    /// Longest a client may take to send a request's headers, in seconds; default 10.
    /// Without it, a client trickling headers would hold a connection for ever.
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout_seconds: u64,
    /// Largest request head (request line and headers), in bytes; default 64 KiB, near
    /// what gateways allow (nginx 4 x 8 KiB, Envoy 60 KiB): a bearer token over the
    /// verifier's 8 KiB still reaches it and gets a 401 with a reason, a larger head a 431.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    /// The variable holding the key that signs multipart upload handles (at least 32
    /// bytes). Unset: a random key, so handles die with the process and work on this
    /// replica only.
    pub handle_secret_env: Option<String>,
    /// The variable holding the previous handle key while it is rotated out: handles it
    /// signed still verify, new ones are signed with `handle_secret_env`'s. Unset once
    /// the uploads it signed are done (at most `multipart_expires_in`).
    pub handle_previous_secret_env: Option<String>,
    /// Threads of the runtime that serves requests (tokio's work-stealing scheduler);
    /// default one per CPU.
    pub workers: Option<usize>,
    /// Where Uppy Companion's S3 routes are served (`@uppy/aws-s3`'s `endpoint` is the
    /// service's URL); default `/s3`, empty to serve none.
    #[serde(default = "default_companion_prefix")]
    pub companion_prefix: String,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            admin_listen: None,
            cors_allowed_origins: Vec::new(),
            request_timeout_seconds: default_request_timeout(),
            shutdown_grace_seconds: default_grace(),
            log_format: LogFormat::default(),
            demo: false,
            header_read_timeout_seconds: default_header_read_timeout(),
            max_header_bytes: default_max_header_bytes(),
            handle_secret_env: None,
            handle_previous_secret_env: None,
            workers: None,
            companion_prefix: default_companion_prefix(),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (production).
    #[default]
    Json,
    /// Human-readable (development).
    Pretty,
}

fn default_companion_prefix() -> String {
    "/s3".to_owned()
}

/// Paths of the service's own routes, which Companion's may not shadow.
const OWN_PATHS: [&str; 6] = [
    "/uploads",
    "/livez",
    "/readyz",
    "/metrics",
    "/openapi.yaml",
    "/demo",
];

/// `prefix` as a place for Companion's routes: `/` and path segments of unreserved
/// characters, no trailing slash, not over or under one of the service's own paths.
fn check_companion_prefix(prefix: &str) -> Result<(), ConfigError> {
    if prefix.is_empty() {
        return Ok(());
    }
    let segments_ok = prefix.strip_prefix('/').is_some_and(|rest| {
        rest.split('/').all(|segment| {
            !segment.is_empty()
                && segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c))
        })
    });
    if !segments_ok {
        return Err(ConfigError::invalid(
            "server.companion_prefix",
            format!("{prefix:?} is not a path like /s3 (empty serves no Companion routes)"),
        ));
    }
    let clashes = |own: &str| {
        let under = |a: &str, b: &str| a == b || a.starts_with(&format!("{b}/"));
        under(prefix, own) || under(own, prefix)
    };
    if let Some(own) = OWN_PATHS.into_iter().find(|own| clashes(own)) {
        return Err(ConfigError::invalid(
            "server.companion_prefix",
            format!("{prefix:?} overlaps the service's own {own}"),
        ));
    }
    Ok(())
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8080))
}
fn default_request_timeout() -> u64 {
    10
}
fn default_grace() -> u64 {
    20
}
fn default_header_read_timeout() -> u64 {
    10
}
fn default_max_header_bytes() -> usize {
    64 * 1024
}

/// `[s3]`: where tickets point.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    /// The signing region, e.g. `us-east-1`.
    pub region: String,
    /// A custom endpoint (MinIO, LocalStack, Garage, ...); default AWS.
    pub endpoint: Option<String>,
    /// Where the service itself reaches the store (multipart calls, completion checks)
    /// when that differs from what browsers use, e.g. inside a container network;
    /// default `endpoint`.
    pub service_endpoint: Option<String>,
    /// Address buckets in the path; default false (dotted names use it anyway).
    #[serde(default)]
    pub force_path_style: bool,
    /// AWS dual-stack endpoints; default false.
    #[serde(default)]
    pub dual_stack: bool,
    /// S3 Transfer Acceleration; default false.
    #[serde(default)]
    pub accelerate: bool,
    /// FIPS endpoints; default false.
    #[serde(default)]
    pub fips: bool,
}

/// A configuration error: which setting and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read or parsed, or a value has the wrong type.
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    /// A value is out of range or inconsistent; the setting is named by its path in
    /// the file, e.g. `tenants.acme.max_size`.
    #[error("configuration: {0}")]
    Invalid(#[from] InvalidSetting),
}

impl ConfigError {
    pub(crate) fn invalid(setting: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid(InvalidSetting::new(setting, reason))
    }
}

/// Where settings come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A TOML file.
    File(PathBuf),
    /// TOML text (the embedded default).
    Text(String),
}

impl Settings {
    /// Reads `source`, then applies `UPLOAD_TICKETS__…` overrides from the environment.
    pub fn load(source: &Source) -> Result<Self, ConfigError> {
        let figment = match source {
            Source::File(path) => Figment::from(Toml::file_exact(path)),
            Source::Text(text) => Figment::from(Toml::string(text)),
        };
        figment
            .merge(Env::prefixed(ENV_PREFIX).split("__"))
            .extract()
            .map_err(|e| ConfigError::Load(Box::new(e)))
    }

    /// Reads the file at `path` (see [`Settings::load`]).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        Self::load(&Source::File(path.to_owned()))
    }
}

/// Settings checked and turned into what the service runs with.
#[derive(Debug)]
pub struct Config {
    /// `[server]`.
    pub server: ServerSettings,
    /// The presigner for `[s3]`.
    pub presigner: Arc<Presigner>,
    /// The token verifier for `[auth]` (JWKS keys are fetched later, at start-up).
    pub verifier: Arc<Verifier>,
    /// `[s3]`, for the store client.
    pub s3: S3Settings,
    /// Signs multipart handles.
    pub handles: Arc<HandleKey>,
    /// Whether that key is random (handles then live as long as the process).
    pub handle_key_is_random: bool,
    /// Tenants (rules and webhook) by id.
    pub tenants: HashMap<String, Arc<Tenant>>,
    /// Where the tenants' limits are counted.
    pub limits: Arc<crate::limits::Limits>,
    /// The token the demo page comes with (`dev` sets its own; never read from a file).
    pub demo_token: Option<crate::auth::IssuedToken>,
}

impl Config {
    /// Checks every setting; reads the HMAC secret variable and the PEM file it names.
    pub fn from_settings(settings: Settings) -> Result<Self, ConfigError> {
        Self::from_settings_with_env(settings, &|name| std::env::var(name).ok())
    }

    /// As [`Config::from_settings`], with secrets looked up by `env` instead of the
    /// process environment (development mode generates its own).
    pub fn from_settings_with_env(
        settings: Settings,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let server = settings.server;
        check_server(&server)?;
        let limits = crate::limits::Limits::from_settings(&settings.limits)
            .map_err(|reason| ConfigError::invalid("limits", reason))?;
        let presigner = presigner(&settings.s3)?;
        if let Some(url) = &settings.s3.service_endpoint {
            Endpoint::parse(url)
                .map_err(|e| ConfigError::invalid("s3.service_endpoint", e.to_string()))?;
        }
        let verifier =
            Verifier::from_settings(&settings.auth, env).map_err(|e| e.in_section("auth"))?;
        let tenants = tenants(&settings.tenants, &presigner, env)?;
        let (handles, handle_key_is_random) = handle_key(&server, env)?;
        Ok(Self {
            server,
            presigner,
            verifier: Arc::new(verifier),
            s3: settings.s3,
            handles: Arc::new(handles),
            handle_key_is_random,
            tenants,
            limits: Arc::new(limits),
            demo_token: None,
        })
    }

    /// How long a request may take.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.server.request_timeout_seconds)
    }
}

/// `[server]`'s numbers within their ranges, its prefix and its origins well formed.
fn check_server(server: &ServerSettings) -> Result<(), ConfigError> {
    if server.request_timeout_seconds == 0 || server.request_timeout_seconds > 300 {
        return Err(ConfigError::invalid(
            "server.request_timeout_seconds",
            "must be 1 to 300",
        ));
    }
    if server.shutdown_grace_seconds > 600 {
        return Err(ConfigError::invalid(
            "server.shutdown_grace_seconds",
            "must be at most 600",
        ));
    }
    if server.header_read_timeout_seconds == 0 || server.header_read_timeout_seconds > 300 {
        return Err(ConfigError::invalid(
            "server.header_read_timeout_seconds",
            "must be 1 to 300",
        ));
    }
    if server.workers.is_some_and(|n| !(1..=256).contains(&n)) {
        return Err(ConfigError::invalid(
            "server.workers",
            "must be 1 to 256 (or unset: one per CPU)",
        ));
    }
    if !(16 * 1024..=16 * 1024 * 1024).contains(&server.max_header_bytes) {
        return Err(ConfigError::invalid(
            "server.max_header_bytes",
            "must be 16384 to 16777216",
        ));
    }
    check_companion_prefix(&server.companion_prefix)?;
    for origin in &server.cors_allowed_origins {
        let ok = url::Url::parse(origin).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.path() == "/"
                && !origin.ends_with('/')
                && u.query().is_none()
        });
        if !ok {
            return Err(ConfigError::invalid(
                "server.cors_allowed_origins",
                format!("{origin:?} is not an origin like https://app.example.com"),
            ));
        }
    }
    Ok(())
}

/// Every tenant, each with its rules (its bucket addressable by `presigner`) and its
/// webhook; tenants kept apart from each other.
fn tenants(
    settings: &BTreeMap<String, TenantSettings>,
    presigner: &Presigner,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<HashMap<String, Arc<Tenant>>, ConfigError> {
    if settings.is_empty() {
        return Err(ConfigError::invalid("tenants", "no tenant is configured"));
    }
    let mut tenants = HashMap::new();
    for (id, tenant) in settings {
        let rules = TenantRules::from_settings(id, tenant)
            .map_err(|e| e.in_section(&format!("tenants.{id}")))?;
        presigner
            .addressing()
            .url(presigner.region(), &rules.bucket)
            .map_err(|e| ConfigError::invalid(format!("tenants.{id}.bucket"), e.to_string()))?;
        let webhook = webhook(id, tenant, env)?;
        tenants.insert(id.clone(), Arc::new(Tenant { rules, webhook }));
    }
    check_isolation(&tenants)?;
    Ok(tenants)
}

/// Tenant `id`'s completion webhook, if it has one (its URL and secret go together).
fn webhook(
    id: &str,
    tenant: &TenantSettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Webhook>, ConfigError> {
    let setting = |field: &str| format!("tenants.{id}.{field}");
    match (
        &tenant.completion_webhook_url,
        &tenant.completion_webhook_secret_env,
    ) {
        (Some(url), Some(var)) => {
            let secret = env(var).ok_or_else(|| {
                ConfigError::invalid(
                    setting("completion_webhook_secret_env"),
                    format!("environment variable {var} is not set"),
                )
            })?;
            let hook = Webhook::new(url, secret.as_bytes())
                .map_err(|e| e.in_section(&format!("tenants.{id}")))?;
            Ok(Some(hook))
        }
        (None, None) => Ok(None),
        _ => Err(ConfigError::invalid(
            setting("completion_webhook_url"),
            "set completion_webhook_url and completion_webhook_secret_env together",
        )),
    }
}

/// The key that signs multipart handles (with the one it replaces, while rotated), and
/// whether it is random (handles then live as long as the process).
fn handle_key(
    server: &ServerSettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(HandleKey, bool), ConfigError> {
    // A key of at least the minimum length from the variable `var` that `setting` names.
    let key_in = |setting: &'static str, var: &str| {
        let secret = env(var).ok_or_else(|| {
            ConfigError::invalid(setting, format!("environment variable {var} is not set"))
        })?;
        if secret.len() < MIN_HANDLE_KEY_BYTES {
            return Err(ConfigError::invalid(
                setting,
                format!("the secret in {var} is shorter than {MIN_HANDLE_KEY_BYTES} bytes"),
            ));
        }
        Ok(secret)
    };
    let previous = server
        .handle_previous_secret_env
        .as_deref()
        .map(|var| key_in("server.handle_previous_secret_env", var))
        .transpose()?;
    match (&server.handle_secret_env, previous) {
        (Some(var), previous) => {
            let key = HandleKey::new(key_in("server.handle_secret_env", var)?.as_bytes());
            match previous {
                Some(previous) => Ok((key.with_previous(previous.as_bytes()), false)),
                None => Ok((key, false)),
            }
        }
        (None, Some(_)) => Err(ConfigError::invalid(
            "server.handle_previous_secret_env",
            "a previous key needs a current one: set server.handle_secret_env",
        )),
        (None, None) => Ok((HandleKey::random(), true)),
    }
}

fn presigner(s3: &S3Settings) -> Result<Arc<Presigner>, ConfigError> {
    let region = Region::new(s3.region.as_str())
        .map_err(|e| ConfigError::invalid("s3.region", e.to_string()))?;
    let addressing = match &s3.endpoint {
        Some(url) => Addressing::custom(
            Endpoint::parse(url).map_err(|e| ConfigError::invalid("s3.endpoint", e.to_string()))?,
        ),
        None => Addressing::aws(),
    }
    .force_path_style(s3.force_path_style)
    .dual_stack(s3.dual_stack)
    .accelerate(s3.accelerate)
    .fips(s3.fips);
    Presigner::new(region, addressing)
        .map(Arc::new)
        .map_err(|e| ConfigError::invalid("s3", e.to_string()))
}

/// Tenants sharing a bucket must have key prefixes that are not prefixes of one
/// another, or one tenant's keys could fall under the other's.
fn check_isolation(tenants: &HashMap<String, Arc<Tenant>>) -> Result<(), ConfigError> {
    let mut all: Vec<&TenantRules> = tenants.values().map(|t| &t.rules).collect();
    all.sort_by(|a, b| a.id.cmp(&b.id));
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            if a.bucket == b.bucket
                && (a.key_prefix().starts_with(b.key_prefix())
                    || b.key_prefix().starts_with(a.key_prefix()))
            {
                return Err(ConfigError::invalid(
                    format!("tenants.{}.key_template", b.id),
                    format!(
                        "tenants {} and {} share bucket {} and their key prefixes {:?} and {:?} \
                         overlap: start the template with \"{{tenant}}/\"",
                        a.id,
                        b.id,
                        a.bucket,
                        a.key_prefix(),
                        b.key_prefix()
                    ),
                ));
            }
        }
    }
    Ok(())
}
