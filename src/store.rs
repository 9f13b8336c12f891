//! The S3 client for what a ticket cannot do alone: start, complete and abort multipart
//! uploads, list their parts, and look at finished objects. It signs with the same
//! credentials cache as the tickets, so a refresh serves both.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{self, ProvideCredentials, future};
use aws_sdk_s3::config::{BehaviorVersion, Region, retry::RetryConfig, timeout::TimeoutConfig};

use crate::config::S3Settings;
use crate::credentials::CredentialsCache;

/// Hands the SDK whatever the cache holds now.
#[derive(Debug)]
struct CachedCredentials(Arc<CredentialsCache>);

impl ProvideCredentials for CachedCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let result = match self.0.current(SystemTime::now()) {
            Some(loaded) => Ok(aws_credential_types::Credentials::new(
                loaded.credentials.access_key_id(),
                loaded.credentials.secret_access_key(),
                loaded.credentials.session_token().map(str::to_owned),
                loaded.expires_at,
                "upload-tickets",
            )),
            None => Err(provider::error::CredentialsError::not_loaded(
                "no AWS credentials at hand yet",
            )),
        };
        future::ProvideCredentials::ready(result)
    }
}

/// A client for `[s3]` with bounded timeouts (a slow store must not hold requests
/// beyond the request timeout) and one retry.
pub fn client(s3: &S3Settings, credentials: Arc<CredentialsCache>) -> aws_sdk_s3::Client {
    let mut config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(s3.region.clone()))
        .credentials_provider(CachedCredentials(credentials))
        .force_path_style(s3.force_path_style)
        .use_dual_stack(s3.dual_stack)
        .use_fips(s3.fips)
        .accelerate(s3.accelerate)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(4))
                .operation_timeout(Duration::from_secs(8))
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(2));
    if let Some(endpoint) = s3.service_endpoint.as_ref().or(s3.endpoint.as_ref()) {
        config = config.endpoint_url(endpoint);
    }
    aws_sdk_s3::Client::from_conf(config.build())
}
