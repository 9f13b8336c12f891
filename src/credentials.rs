//! AWS credentials from the default chain of `aws-config`.
//!
//! Environment variables, shared config and credentials files (profiles, SSO), web
//! identity, ECS and EC2 instance metadata, in the SDK's order. The presign core never
//! sees where they came from: it gets [`Credentials`].

use aws_config::BehaviorVersion;
use aws_credential_types::provider::ProvideCredentials as _;

use crate::presign::{Credentials, PresignError};

/// Why no credentials could be had.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The chain has no provider configured at all.
    #[error("no AWS credentials provider is configured")]
    NoProvider,
    /// Every provider of the chain failed.
    #[error("no AWS credentials could be loaded from the default chain")]
    Unavailable(#[source] aws_credential_types::provider::error::CredentialsError),
    /// The provider returned credentials that cannot sign.
    #[error("the AWS credentials cannot sign")]
    Unusable(#[source] PresignError),
}

/// The region and credentials of the default chain, resolved once.
#[derive(Debug)]
pub struct DefaultChain {
    /// The region the chain configures (`AWS_REGION`, profile), if any.
    pub region: Option<String>,
    /// The credentials.
    pub credentials: Credentials,
}

/// Resolves region and credentials from the default chain.
pub async fn load_default_chain() -> Result<DefaultChain, CredentialsError> {
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let provider = config
        .credentials_provider()
        .ok_or(CredentialsError::NoProvider)?;
    let resolved = provider
        .provide_credentials()
        .await
        .map_err(CredentialsError::Unavailable)?;
    let credentials = Credentials::new(
        resolved.access_key_id(),
        resolved.secret_access_key(),
        resolved.session_token().map(str::to_owned),
    )
    .map_err(CredentialsError::Unusable)?;
    Ok(DefaultChain {
        region: config.region().map(|r| r.as_ref().to_owned()),
        credentials,
    })
}
