//! The `upload-tickets` command line.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::config::{Config, ConfigError, DEFAULT_CONFIG, Settings, Source};
use crate::credentials::{CredentialSource, CredentialsError, DefaultChain, StaticSource};
use crate::policy::template::Placeholder;
use crate::startup::{Application, shutdown_signal};
use crate::telemetry;
use s3_presigned_post::{
    Addressing, BucketName, Condition, Endpoint, ObjectKey, PostRequest, PresignError, Presigner,
    Region,
};

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
    /// Run the service with the embedded development configuration and its own
    /// S3-compatible store on 127.0.0.1:9000 (bucket "uploads"), a random HMAC key.
    /// Prints bearer tokens and a curl line. No cloud account needed.
    Dev(DevArgs),
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

/// Arguments of `upload-tickets dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Where the embedded store listens (port 0: any free port); default: the
    /// configured endpoint's port on 127.0.0.1 (9000). If another S3-compatible store
    /// already listens there, dev says so and uses it.
    #[arg(long, value_name = "ADDR")]
    pub store: Option<std::net::SocketAddr>,
    /// Keep the store's objects in DIR; default: a fresh directory under the OS temp
    /// directory, removed on exit.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Start no store: sign for whatever listens at the configured endpoint.
    #[arg(long, conflicts_with_all = ["store", "data"])]
    pub no_store: bool,
    /// Where the service listens; default 127.0.0.1:8080. Only this flag moves it (not
    /// UPLOAD_TICKETS__SERVER__LISTEN, which a container image sets for `serve`): a
    /// demo reachable from elsewhere gets no token on its page.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
}

/// The token `dev`'s demo page carries: none when it listens beyond loopback, where
/// anyone reaching the page would get it (paste one into the page instead).
fn demo_token(listen: std::net::SocketAddr, token: &str) -> Option<crate::auth::IssuedToken> {
    listen
        .ip()
        .is_loopback()
        .then(|| crate::auth::IssuedToken(token.to_owned()))
}

/// Where `dev` listens unless `--listen` says otherwise.
const DEV_LISTEN: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);

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
            Command::Dev(_) => Settings::load(&Source::Text(DEFAULT_CONFIG.to_owned())).ok(),
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
    /// The embedded dev store could not start.
    #[cfg(feature = "dev-store")]
    #[error(transparent)]
    DevStore(#[from] crate::devstore::DevStoreError),
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
            let mut note = String::new();
            if config.handle_key_is_random {
                note.push_str("\nnote: server.handle_secret_env is not set: multipart handles will be signed with a random key per process (set it when running more than one replica)");
            }
            let mut tenants: Vec<_> = config.tenants.values().collect();
            tenants.sort_by(|a, b| a.id().cmp(b.id()));
            for rules in tenants.iter().map(|t| &t.rules) {
                if !rules.template.uses(Placeholder::Uuid) {
                    note.push_str(&format!(
                        "\nwarning: tenants.{}.key_template {:?} has no {{uuid}}: two uploads of the same file name get the same key ({})",
                        rules.id,
                        rules.template.to_string(),
                        if rules.prevent_overwrite {
                            "prevent_overwrite refuses the second"
                        } else {
                            "the second replaces the first"
                        }
                    ));
                }
            }
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
        Command::Dev(args) => dev(args).await,
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

/// The tenant of the dev token, with POST tickets, and the one with PUT tickets.
const DEV_TENANT: &str = "dev";
const DEV_PUT_TENANT: &str = "dev-put";

async fn dev(args: DevArgs) -> Result<String, CliError> {
    let mut settings = Settings::load(&Source::Text(DEFAULT_CONFIG.to_owned()))?;
    let _logs = telemetry::init(settings.server.log_format)?;
    // The environment may say 0.0.0.0 (a container image does, for `serve`): dev's
    // token must not reach the network by that, so only its own flag moves it.
    let listen = args.listen.unwrap_or(DEV_LISTEN);
    if settings.server.listen != listen && args.listen.is_none() {
        tracing::warn!(
            ignored = %settings.server.listen,
            "dev listens on 127.0.0.1:8080 whatever the environment says; use --listen to move it"
        );
    }
    settings.server.listen = listen;
    let local_only = listen.ip().is_loopback();
    let secret_var = settings.auth.hmac_secret_env.clone().unwrap_or_default();
    // A fresh key each run: tokens from an earlier run stop working, as they should.
    let secret = std::env::var(&secret_var)
        .ok()
        .filter(|s| s.len() >= crate::auth::MIN_HMAC_SECRET_BYTES)
        .unwrap_or_else(random_secret);
    let auth = settings.auth.clone();
    // Held until the service stops: dropping it stops the store.
    let (_store, store_line) = dev_store(&args, &mut settings).await?;
    let mut config = Config::from_settings_with_env(settings, &|name| {
        (name == secret_var).then(|| secret.clone())
    })?;
    let endpoint = config.s3.endpoint.clone().unwrap_or_default();

    // The embedded store knows the dev key only; otherwise AWS credentials in the
    // environment win, for a store of one's own.
    let source: Arc<dyn CredentialSource> =
        if store_line.signs_with_dev_key || std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            let credentials =
                s3_presigned_post::Credentials::new(DEV_ACCESS_KEY, DEV_SECRET_KEY, None)?;
            Arc::new(StaticSource(credentials))
        } else {
            Arc::new(DefaultChain::new().await)
        };
    let token = dev_token(&auth, DEV_TENANT, &secret)?;
    let put_token = dev_token(&auth, DEV_PUT_TENANT, &secret)?;
    config.demo_token = demo_token(listen, &token);
    if !local_only {
        tracing::warn!(%listen, "dev listens beyond loopback: the demo page carries no token");
    }
    let app = Application::build(config, source).await?;
    let address = app.local_addr()?;
    tracing::info!(%address, "upload-tickets dev is listening");
    println!(
        "upload-tickets dev: http://{address}   demo page: http://{address}/demo\n\
         {}\n\n\
         Bearer token (tenant {DEV_TENANT:?}: POST tickets; valid 12 h):\n{token}\n\n\
         Bearer token (tenant {DEV_PUT_TENANT:?}: PUT tickets; valid 12 h):\n{put_token}\n\n\
         Try:\n  curl -s -X POST http://{address}/uploads \\\n    -H 'Authorization: Bearer {token}' \\\n    \
         -H 'Content-Type: application/json' \\\n    -d '{{\"filename\": \"hello.txt\", \"content_type\": \"text/plain\"}}'\n",
        store_line.text.replace("{endpoint}", &endpoint),
    );
    app.run_until(shutdown_signal()).await?;
    Ok("stopped".to_owned())
}

/// What the banner says of the store, and whether tickets must be signed for it.
struct StoreLine {
    text: String,
    signs_with_dev_key: bool,
}

impl StoreLine {
    fn none(why: &str) -> Self {
        Self {
            text: format!("store: none started ({why}); tickets are for {{endpoint}}"),
            signs_with_dev_key: false,
        }
    }
}

/// Starts the embedded store as `args` say, pointing `settings` at it.
#[cfg(feature = "dev-store")]
async fn dev_store(
    args: &DevArgs,
    settings: &mut Settings,
) -> Result<(Option<crate::devstore::DevStore>, StoreLine), CliError> {
    use crate::devstore::{self, Started};
    if args.no_store {
        return Ok((None, StoreLine::none("--no-store")));
    }
    let configured = settings.s3.endpoint.as_deref().and_then(loopback_address);
    let Some(listen) = args.store.or(configured) else {
        return Ok((None, StoreLine::none("the endpoint is not on this machine")));
    };
    let mut buckets: Vec<String> = settings
        .tenants
        .values()
        .map(|t| t.bucket.clone())
        .collect();
    buckets.dedup();
    let options = devstore::Options {
        listen,
        data: args.data.clone(),
        access_key: DEV_ACCESS_KEY.to_owned(),
        secret_key: DEV_SECRET_KEY.to_owned(),
        buckets: buckets.clone(),
        origins: settings.server.cors_allowed_origins.clone(),
    };
    let (store, text) = match devstore::start(options).await? {
        Started::Embedded(store) => {
            let kept = if store.removes_data() {
                "removed on exit; --data DIR keeps it"
            } else {
                "kept"
            };
            let text = format!(
                "store: embedded (s3s-fs, POST policies checked) at http://{}, bucket(s) {buckets:?}, key {DEV_ACCESS_KEY} / {DEV_SECRET_KEY}\n       \
                 data in {} ({kept})",
                store.address(),
                store.data().display(),
            );
            settings.s3.endpoint = Some(format!("http://{}", store.address()));
            (Some(store), text)
        }
        Started::Existing(address) => {
            settings.s3.endpoint = Some(format!("http://{address}"));
            let text = format!(
                "store: {address} is taken by another S3-compatible store: tickets go to it \
                 (it needs bucket(s) {buckets:?} and the key {DEV_ACCESS_KEY} / {DEV_SECRET_KEY})"
            );
            (None, text)
        }
    };
    Ok((
        store,
        StoreLine {
            text,
            signs_with_dev_key: true,
        },
    ))
}

/// Without the `dev-store` feature there is no store to start.
#[cfg(not(feature = "dev-store"))]
async fn dev_store(
    args: &DevArgs,
    _settings: &mut Settings,
) -> Result<(Option<()>, StoreLine), CliError> {
    let why = if args.no_store {
        "--no-store"
    } else {
        "this build has no embedded store: feature dev-store"
    };
    Ok((None, StoreLine::none(why)))
}

/// `127.0.0.1:<port>` for an `http://` endpoint on this machine.
#[cfg(feature = "dev-store")]
fn loopback_address(endpoint: &str) -> Option<std::net::SocketAddr> {
    let url = url::Url::parse(endpoint).ok()?;
    let local = matches!(url.host_str(), Some("127.0.0.1" | "localhost"));
    (url.scheme() == "http" && local)
        .then(|| std::net::SocketAddr::from(([127, 0, 0, 1], url.port().unwrap_or(80))))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_embeds_its_token_only_when_it_listens_on_loopback() {
        let at = |a: &str| a.parse::<std::net::SocketAddr>().unwrap();
        assert!(demo_token(at("127.0.0.1:8080"), "t").is_some());
        assert!(demo_token(at("[::1]:8080"), "t").is_some());
        assert!(demo_token(at("0.0.0.0:8080"), "t").is_none());
        assert!(demo_token(at("[::]:8080"), "t").is_none());
        assert!(demo_token(at("192.0.2.1:8080"), "t").is_none());
        assert_eq!(DEV_LISTEN, at("127.0.0.1:8080"));
    }
}
