//! The `upload-tickets` command line.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

mod dev;
mod receiver;

use crate::config::{Config, ConfigError, DEFAULT_CONFIG, Settings, Source};
use crate::credentials::{CredentialSource, CredentialsCache, CredentialsError, DefaultChain};
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
    /// Probe what each tenant's store enforces (POST policies, signed PUT headers, the
    /// clock), with the service's own credentials, and say what to do about each gap.
    /// Writes under upload-tickets-doctor/ in each bucket and removes it afterwards.
    /// Exits non-zero when something a tenant's tickets depend on is not enforced.
    Doctor {
        /// The configuration file (then UPLOAD_TICKETS__SECTION__KEY overrides).
        #[arg(long, value_name = "PATH", default_value = "config/default.toml")]
        config: PathBuf,
        /// Only this tenant.
        #[arg(long, value_name = "NAME")]
        tenant: Option<String>,
        /// The report as JSON.
        #[arg(long)]
        json: bool,
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
    /// `doctor` could not run.
    #[error(transparent)]
    Doctor(#[from] crate::doctor::DoctorError),
    /// The command ran and found something wrong: its report, printed as its output
    /// (the exit status says the rest).
    #[error("{0}")]
    Findings(String),
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
            let _telemetry = telemetry::init(settings.server.log_format, &settings.telemetry)?;
            let config = Config::from_settings(settings)?;
            let source = Arc::new(DefaultChain::new().await);
            serve(config, source).await
        }
        Command::Dev(args) => dev::dev(args).await,
        Command::Doctor {
            config,
            tenant,
            json,
        } => doctor(&config, tenant.as_deref(), json).await,
        Command::Healthcheck { url } => healthcheck(&url).await,
    }
}

async fn serve(config: Config, source: Arc<dyn CredentialSource>) -> Result<String, CliError> {
    let require_store_checks = config.server.require_store_checks;
    let app = Application::build(config, source).await?;
    tracing::info!(address = %app.local_addr()?, "upload-tickets is listening");
    // What `doctor` checks cheaply (credentials, buckets, clocks), logged once: a wrong
    // bucket or a skewed clock shows at start, not at the first 403. In the background
    // (a start never waits for it) unless `server.require_store_checks` says to refuse.
    let state = Arc::clone(&app.state().0);
    if require_store_checks {
        let failed = log_store_checks(&state).await;
        if !failed.is_empty() {
            return Err(CliError::Usage(format!(
                "store checks failed (server.require_store_checks is on): {}; `upload-tickets doctor` says more",
                failed.join("; ")
            )));
        }
    } else {
        tokio::spawn(async move { log_store_checks(&state).await });
    }
    app.run_until(shutdown_signal()).await?;
    Ok("stopped".to_owned())
}

async fn doctor(config: &Path, tenant: Option<&str>, json: bool) -> Result<String, CliError> {
    let config = Config::from_settings(Settings::from_file(config)?)?;
    let credentials = Arc::new(CredentialsCache::new(Arc::new(DefaultChain::new().await)));
    let store = crate::store::s3::S3Store::new(&config.s3, Arc::clone(&credentials));
    let report = crate::doctor::examine(&config, &credentials, &store, tenant).await?;
    let output = if json {
        serde_json::to_string_pretty(&report).map_err(|e| CliError::Usage(e.to_string()))?
    } else {
        report.to_text()
    };
    if report.failed() {
        Err(CliError::Findings(output))
    } else {
        Ok(output)
    }
}

/// Runs and logs the cheap store checks; answers the failed ones (`tenant check: what`).
async fn log_store_checks(app: &crate::app::App) -> Vec<String> {
    let mut failed = Vec::new();
    for (tenant, finding) in crate::doctor::glance(app).await {
        let (check, observed) = (finding.check, finding.observed.as_str());
        match finding.verdict {
            crate::doctor::Verdict::Pass => {
                tracing::info!(tenant, check, observed, "store check passed");
            }
            verdict => {
                tracing::warn!(
                    tenant,
                    check,
                    observed,
                    fix = finding.fix.as_deref().unwrap_or(""),
                    "store check failed: run `upload-tickets doctor`"
                );
                if verdict == crate::doctor::Verdict::Fail {
                    failed.push(format!("{tenant} {check}: {observed}"));
                }
            }
        }
    }
    failed
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
