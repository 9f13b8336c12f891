//! Typed settings: a TOML file, then `UPLOAD_TICKETS__SECTION__KEY` environment
//! overrides, checked completely before anything starts.
//!
//! Secrets never live in the file: the JWT HMAC secret is read from the environment
//! variable the file names, AWS credentials come from the AWS default chain.

mod checked;
pub mod problems;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format as _, Toml};
use serde::Deserialize;

use crate::auth::AuthSettings;
use crate::policy::TenantSettings;
use crate::setting::InvalidSetting;
pub use problems::{Problem, Problems, Written};

pub use checked::Config;

/// The embedded development configuration (`config/default.toml`).
pub const DEFAULT_CONFIG: &str = include_str!("../../config/default.toml");

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
    /// `[limits]`: where limits and quotas are counted (its `redis_url` is the older
    /// name of `[redis] url`).
    #[serde(default)]
    pub limits: crate::limits::LimitsSettings,
    /// `[redis]`: the Redis or Valkey the replicas share (limits, records, events).
    #[serde(default)]
    pub redis: crate::limits::RedisSettings,
    /// `[events]`: the sweeper and the delivery of upload events.
    #[serde(default)]
    pub events: crate::limits::EventSettings,
    /// `[telemetry]`: where traces go, if anywhere.
    #[serde(default)]
    pub telemetry: TelemetrySettings,
    /// The file these came from, to place a problem found later at its line.
    #[serde(skip)]
    pub written: Option<std::sync::Arc<problems::Written>>,
}

/// `[telemetry]`: OpenTelemetry traces, off unless an OTLP endpoint is named here or by
/// the standard `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    /// The collector's OTLP/HTTP base URL (`http://collector:4318`; `/v1/traces` is
    /// added), as `OTEL_EXPORTER_OTLP_ENDPOINT` would be; it wins over that variable.
    pub otlp_endpoint: Option<String>,
}

impl TelemetrySettings {
    /// The configured endpoint, if it is an http(s) URL without query or credentials.
    pub fn endpoint(&self) -> Result<Option<&str>, String> {
        let Some(endpoint) = self.otlp_endpoint.as_deref() else {
            return Ok(None);
        };
        let ok = url::Url::parse(endpoint).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.query().is_none()
                && u.username().is_empty()
                && u.password().is_none()
        });
        if ok {
            Ok(Some(endpoint))
        } else {
            Err(format!(
                "{endpoint:?} is not a collector URL like http://collector:4318 (headers such as credentials go in OTEL_EXPORTER_OTLP_HEADERS)"
            ))
        }
    }
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
    /// Refuse to start when a cheap store check (credentials, a tenant's bucket, the
    /// clock) fails; default false: `serve` logs them and starts anyway.
    #[serde(default)]
    pub require_store_checks: bool,
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
            require_store_checks: false,
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
    if let Some(own) = crate::routes::ROOTS.into_iter().find(|own| clashes(own)) {
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

/// A configuration error: which setting, where it was written, and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read or parsed, or values have the wrong type or name.
    #[error("{0}")]
    Load(Problems),
    /// A value is out of range or inconsistent; the setting is named by its path in
    /// the file, e.g. `tenants.acme.max_size`.
    #[error("configuration: {0}")]
    Invalid(Problem),
}

impl ConfigError {
    pub(crate) fn invalid(setting: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::from(InvalidSetting::new(setting, reason))
    }

    /// The same error, placed where its setting was written: the environment variable
    /// that set it, or its line in `file`.
    fn placed(
        self,
        file: Option<&problems::Written>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Self {
        match self {
            Self::Invalid(mut problem) if problem.place.is_none() => {
                let key = problem.key.clone().unwrap_or_default();
                let path: Vec<&str> = key.split('.').filter(|k| !k.is_empty()).collect();
                let variable = problems::variable_of(&path);
                problem.place = if env(&variable).is_some() {
                    Some(variable)
                } else {
                    file.map(|f| f.place_of(&path))
                };
                Self::Invalid(problem)
            }
            other => other,
        }
    }
}

impl From<InvalidSetting> for ConfigError {
    fn from(invalid: InvalidSetting) -> Self {
        Self::Invalid(Problem {
            place: None,
            key: (!invalid.setting.is_empty()).then_some(invalid.setting),
            message: invalid.reason,
        })
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
        let (text, name) = match source {
            Source::File(path) => {
                let name = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|error| {
                    ConfigError::Load(Problems(vec![Problem {
                        place: Some(name.clone()),
                        key: None,
                        message: format!("cannot read the file: {error}"),
                    }]))
                })?;
                (text, name)
            }
            Source::Text(text) => (text.clone(), "the configuration text".to_owned()),
        };
        let written = Written { name, text };
        let syntax = written.syntax_errors();
        if !syntax.is_empty() {
            return Err(ConfigError::Load(Problems(syntax)));
        }
        let env = Env::prefixed(ENV_PREFIX).split("__");
        let env_name = figment::Provider::metadata(&env).name;
        let mut settings: Self = Figment::from(Toml::string(&written.text))
            .merge(env)
            .extract()
            .map_err(|error| {
                let from_env = |m: &figment::Metadata| m.name == env_name;
                ConfigError::Load(problems::from_figment(error, Some(&written), &from_env))
            })?;
        settings.written = Some(std::sync::Arc::new(written));
        Ok(settings)
    }

    /// Reads the file at `path` (see [`Settings::load`]).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        Self::load(&Source::File(path.to_owned()))
    }
}
