//! Settings checked and turned into what the service runs with: each section's checks,
//! the tenants (rules and webhook) kept apart, the presigner, the handle key.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use super::{ConfigError, S3Settings, ServerSettings, Settings, check_companion_prefix};
use crate::auth::Verifier;
use crate::handle::{HandleKey, MIN_HANDLE_KEY_BYTES};
use crate::policy::{TenantRules, TenantSettings};
use crate::tenant::Tenant;
use crate::webhook::Webhook;
use s3_presigned_post::{Addressing, Endpoint, Presigner, Region};

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
    /// Where the tenants' limits are counted, and upload records and events kept.
    pub limits: Arc<crate::limits::Limits>,
    /// `[events]`.
    pub events: crate::limits::EventSettings,
    /// The token the demo page comes with (`dev` sets its own; never read from a file).
    pub demo_token: Option<crate::auth::IssuedToken>,
    /// What `dev`'s own webhook receiver got, for the demo page (`dev` sets it).
    pub demo_events: Option<Arc<crate::webhook::received::EventLog>>,
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
        let written = settings.written.clone();
        Self::build(settings, env)
            .map_err(|e| e.placed(written.as_deref(), &|v| std::env::var(v).ok()))
    }

    fn build(
        settings: Settings,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let server = settings.server;
        check_server(&server)?;
        let shared = settings
            .limits
            .with_redis(&settings.redis)
            .map_err(|reason| ConfigError::invalid("redis", reason))?;
        let limits = crate::limits::Limits::from_settings(&shared)
            .map_err(|reason| ConfigError::invalid("limits", reason))?;
        settings
            .events
            .check()
            .map_err(|(name, reason)| ConfigError::invalid(format!("events.{name}"), reason))?;
        settings
            .telemetry
            .endpoint()
            .map_err(|reason| ConfigError::invalid("telemetry.otlp_endpoint", reason))?;
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
            events: settings.events,
            demo_token: None,
            demo_events: None,
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
    check_origins("server.cors_allowed_origins", &server.cors_allowed_origins)?;
    Ok(())
}

/// Each of `origins` (what `setting` lists) is a browser origin: scheme and host, no path.
fn check_origins(setting: &str, origins: &[String]) -> Result<(), ConfigError> {
    for origin in origins {
        let ok = url::Url::parse(origin).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.path() == "/"
                && !origin.ends_with('/')
                && u.query().is_none()
        });
        if !ok {
            return Err(ConfigError::invalid(
                setting,
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
        check_origins(
            &format!("tenants.{id}.front_end_origins"),
            &tenant.front_end_origins,
        )?;
        tenants.insert(
            id.clone(),
            Arc::new(Tenant {
                rate_limit_policy: crate::limits::rate_limit::policy_header(&rules.quotas),
                rules,
                webhook,
                front_end_origins: tenant.front_end_origins.clone(),
            }),
        );
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
            let hook =
                Webhook::new(url, &secret).map_err(|e| e.in_section(&format!("tenants.{id}")))?;
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
    all.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
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
