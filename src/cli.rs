//! The `upload-tickets` command line.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::config::{Config, ConfigError, DEFAULT_CONFIG, Settings, Source};
use crate::credentials::{CredentialSource, CredentialsError, DefaultChain, StaticSource};
use crate::presign::{
    Addressing, BucketName, Condition, Endpoint, ObjectKey, PostRequest, PresignError, Presigner,
    Region,
};
use crate::startup::{Application, shutdown_signal};
use crate::telemetry;

/// Short-lived S3 upload tickets (presigned POST) for front ends.
#[derive(Debug, Parser)]
#[command(name = "upload-tickets", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service.
    Serve {
        /// The configuration file (then UPLOAD_TICKETS__SECTION__KEY overrides).
        #[arg(long, value_name = "PATH", default_value = "config/default.toml")]
        config: PathBuf,
    },
    /// Run the service with the embedded development configuration: a local
    /// S3-compatible store on 127.0.0.1:9000, bucket "uploads", a random HMAC key.
    /// Prints a bearer token and a curl line. No cloud account needed.
    Dev,
    /// Exit 0 when the service at URL answers 200 (the container's HEALTHCHECK: the
    /// runtime image has no curl).
    Healthcheck {
        /// What to probe.
        #[arg(
            long,
            value_name = "URL",
            default_value = "http://127.0.0.1:8080/livez"
        )]
        url: String,
    },
    /// Check a configuration file without serving.
    CheckConfig {
        /// The configuration file (then UPLOAD_TICKETS__SECTION__KEY overrides).
        #[arg(long, value_name = "PATH", default_value = "config/default.toml")]
        config: PathBuf,
    },
    /// Print a presigned POST ({url, fields}) as JSON, like createPresignedPost.
    ///
    /// Credentials come from the AWS default chain (AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, profiles, SSO, web identity, ECS, IMDS).
    Presign(PresignArgs),
}

/// Arguments of `upload-tickets presign`.
#[derive(Debug, Args)]
pub struct PresignArgs {
    /// The bucket.
    #[arg(long)]
    pub bucket: String,
    /// The object key; may end with ${filename}.
    #[arg(long)]
    pub key: String,
    /// A policy condition as JSON, e.g. '["content-length-range",1,1048576]'. Repeatable.
    #[arg(long = "condition", value_name = "JSON")]
    pub conditions: Vec<String>,
    /// A form field, pinned in the policy. Repeatable.
    #[arg(long = "field", value_name = "NAME=VALUE")]
    pub fields: Vec<String>,
    /// Validity in seconds, 1 to 604800 (7 days).
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    pub expires: u64,
    /// The region; defaults to the one the AWS chain configures.
    #[arg(long)]
    pub region: Option<String>,
    /// A custom endpoint (MinIO, LocalStack, ...), e.g. http://127.0.0.1:9000.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Address the bucket in the path rather than the host name.
    #[arg(long)]
    pub force_path_style: bool,
    /// Use the dual-stack (IPv6) AWS endpoint.
    #[arg(long)]
    pub dual_stack: bool,
    /// Use S3 Transfer Acceleration.
    #[arg(long)]
    pub accelerate: bool,
    /// Use the FIPS AWS endpoint.
    #[arg(long)]
    pub fips: bool,
    /// Sign as of this time instead of now (RFC 3339), for reproducible output.
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<String>,
}

impl Cli {
    /// Threads for the runtime the command runs on: `server.workers` of the settings a
    /// server runs with (read here and again by [`run`], which reports their errors),
    /// else one per CPU; one for the commands that serve nothing.
    pub fn worker_threads(&self) -> usize {
        let settings = match &self.command {
            Command::Serve { config } => Settings::from_file(config).ok(),
            Command::Dev => Settings::load(&Source::Text(DEFAULT_CONFIG.to_owned())).ok(),
            _ => return 1,
        };
        settings.and_then(|s| s.server.workers).unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// An argument is malformed.
    #[error("{0}")]
    Usage(String),
    /// The ticket could not be built.
    #[error(transparent)]
    Presign(#[from] PresignError),
    /// No credentials.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The server could not bind or failed.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs the command and returns what it prints last.
pub async fn run(cli: Cli) -> Result<String, CliError> {
    match cli.command {
        Command::Presign(args) => presign(args).await,
        Command::CheckConfig { config } => {
            let config = Config::from_settings(Settings::from_file(&config)?)?;
            let note = if config.handle_key_is_random {
                "\nnote: server.handle_secret_env is not set: multipart handles will be signed with a random key per process (set it when running more than one replica)"
            } else {
                ""
            };
            Ok(format!(
                "configuration OK: {} tenant(s), listening on {}{note}",
                config.tenants.len(),
                config.server.listen
            ))
        }
        Command::Serve { config } => {
            let settings = Settings::from_file(&config)?;
            let _logs = telemetry::init(settings.server.log_format)?;
            let config = Config::from_settings(settings)?;
            let source = Arc::new(DefaultChain::new().await);
            serve(config, source).await
        }
        Command::Dev => dev().await,
        Command::Healthcheck { url } => healthcheck(&url).await,
    }
}

async fn serve(config: Config, source: Arc<dyn CredentialSource>) -> Result<String, CliError> {
    let app = Application::build(config, source).await?;
    tracing::info!(address = %app.local_addr()?, "upload-tickets is listening");
    app.run_until(shutdown_signal()).await?;
    Ok("stopped".to_owned())
}

/// Development credentials: MinIO's defaults, so a stock local MinIO accepts the tickets.
const DEV_ACCESS_KEY: &str = "minioadmin";
const DEV_SECRET_KEY: &str = "minioadmin";

async fn dev() -> Result<String, CliError> {
    let settings = Settings::load(&Source::Text(DEFAULT_CONFIG.to_owned()))?;
    let _logs = telemetry::init(settings.server.log_format)?;
    let secret_var = settings.auth.hmac_secret_env.clone().unwrap_or_default();
    // A fresh key each run: tokens from an earlier run stop working, as they should.
    let secret = std::env::var(&secret_var)
        .ok()
        .filter(|s| s.len() >= crate::auth::MIN_HMAC_SECRET_BYTES)
        .unwrap_or_else(random_secret);
    let auth = settings.auth.clone();
    let tenant = settings.tenants.keys().next().cloned().unwrap_or_default();
    let config = Config::from_settings_with_env(settings, &|name| {
        (name == secret_var).then(|| secret.clone())
    })?;

    let source: Arc<dyn CredentialSource> = if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        Arc::new(DefaultChain::new().await)
    } else {
        let credentials = crate::presign::Credentials::new(DEV_ACCESS_KEY, DEV_SECRET_KEY, None)?;
        Arc::new(StaticSource(credentials))
    };
    let token = dev_token(&auth, &tenant, &secret)?;
    let app = Application::build(config, source).await?;
    let address = app.local_addr()?;
    tracing::info!(%address, "upload-tickets dev is listening");
    println!(
        "upload-tickets dev: http://{address}  (tickets for bucket \"uploads\" at http://127.0.0.1:9000)\n\n\
         Bearer token (tenant {tenant:?}, valid 12 h):\n{token}\n\n\
         Try:\n  curl -s -X POST http://{address}/uploads \\\n    -H 'Authorization: Bearer {token}' \\\n    \
         -H 'Content-Type: application/json' \\\n    -d '{{\"filename\": \"hello.txt\", \"content_type\": \"text/plain\"}}'\n"
    );
    app.run_until(shutdown_signal()).await?;
    Ok("stopped".to_owned())
}

async fn healthcheck(url: &str) -> Result<String, CliError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let status = client
        .get(url)
        .send()
        .await
        .map_err(|e| CliError::Usage(format!("{url}: {e}")))?
        .status();
    if status.is_success() {
        Ok(format!("{url}: {status}"))
    } else {
        Err(CliError::Usage(format!("{url}: {status}")))
    }
}

fn random_secret() -> String {
    use rand::RngExt as _;
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn dev_token(
    auth: &crate::auth::AuthSettings,
    tenant: &str,
    secret: &str,
) -> Result<String, CliError> {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|e| CliError::Usage(e.to_string()))?
        .as_secs();
    let claims = serde_json::json!({
        "iss": auth.issuer, "aud": auth.audience, "sub": "dev-user", auth.tenant_claim.as_str(): tenant,
        "scope": auth.required_scope.clone().unwrap_or_else(|| "uploads:write".to_owned()),
        "iat": now, "exp": now + 12 * 3600,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| CliError::Usage(format!("could not make the dev token: {e}")))
}

async fn presign(args: PresignArgs) -> Result<String, CliError> {
    let now = match &args.now {
        Some(text) => parse_now(text)?,
        None => SystemTime::now(),
    };
    let request = post_request(&args)?;
    let addressing = addressing(&args)?;
    let chain = DefaultChain::new().await;
    let region = args
        .region
        .clone()
        .or_else(|| chain.region().map(str::to_owned))
        .ok_or_else(|| CliError::Usage("no region: pass --region or set AWS_REGION".to_owned()))?;
    let presigner = Presigner::new(Region::new(region)?, addressing)?;
    let loaded = chain.load().await?;
    let post = presigner.presign(&loaded.credentials, &request, now)?;
    serde_json::to_string_pretty(&post).map_err(|e| CliError::Usage(e.to_string()))
}

/// The request the arguments describe.
pub fn post_request(args: &PresignArgs) -> Result<PostRequest, CliError> {
    let mut request = PostRequest::new(
        BucketName::new(args.bucket.as_str())?,
        ObjectKey::new(args.key.as_str())?,
    )
    .expires_in(Duration::from_secs(args.expires))?;
    for text in &args.conditions {
        request = request.condition(text.parse::<Condition>()?);
    }
    for pair in &args.fields {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| CliError::Usage(format!("--field {pair:?}: expected NAME=VALUE")))?;
        request = request.field(name, value)?;
    }
    Ok(request)
}

/// The addressing the arguments describe.
pub fn addressing(args: &PresignArgs) -> Result<Addressing, CliError> {
    let base = match &args.endpoint {
        Some(url) => Addressing::custom(Endpoint::parse(url)?),
        None => Addressing::aws(),
    };
    Ok(base
        .force_path_style(args.force_path_style)
        .dual_stack(args.dual_stack)
        .accelerate(args.accelerate)
        .fips(args.fips))
}

fn parse_now(text: &str) -> Result<SystemTime, CliError> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map(SystemTime::from)
        .map_err(|e| CliError::Usage(format!("--now {text:?}: not an RFC 3339 time ({e})")))
}
