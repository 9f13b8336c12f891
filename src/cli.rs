//! The `upload-tickets` command line.

use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::credentials::{CredentialsError, load_default_chain};
use crate::presign::{
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
}

/// Runs the command and returns what it prints.
pub async fn run(cli: Cli) -> Result<String, CliError> {
    match cli.command {
        Command::Presign(args) => presign(args).await,
    }
}

async fn presign(args: PresignArgs) -> Result<String, CliError> {
    let now = match &args.now {
        Some(text) => parse_now(text)?,
        None => SystemTime::now(),
    };
    let request = post_request(&args)?;
    let addressing = addressing(&args)?;
    let chain = load_default_chain().await?;
    let region =
        args.region.clone().or(chain.region).ok_or_else(|| {
            CliError::Usage("no region: pass --region or set AWS_REGION".to_owned())
        })?;
    let presigner = Presigner::new(Region::new(region)?, addressing)?;
    let post = presigner.presign(&chain.credentials, &request, now)?;
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
