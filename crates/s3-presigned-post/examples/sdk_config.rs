//! Signing with the credentials of an `aws_config::SdkConfig`: the AWS SDK's default chain
//! (environment, profiles, SSO, web identity, ECS, IMDS) resolves them, this crate signs.
//! The SDK has no presigned POST (awslabs/aws-sdk-rust#863); this is the missing piece.
//!
//! Temporary credentials expire: sign nothing that outlives them (the validity below is
//! shortened to what they have left), and ask the provider again for each ticket (the
//! SDK caches and refreshes them).
//!
//! Run with credentials in the environment, for instance:
//! `AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=secret AWS_REGION=eu-west-1
//! cargo run -p s3-presigned-post --example sdk_config`

use std::time::{Duration, SystemTime};

use aws_config::BehaviorVersion;
use aws_credential_types::provider::ProvideCredentials;
use s3_presigned_post::{
    Addressing, BucketName, Condition, Credentials, ObjectKey, PostRequest, Presigner, Region,
    Validity,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sdk_config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let region = sdk_config
        .region()
        .map(|r| r.to_string())
        .ok_or("no region: set AWS_REGION (or a profile's region)")?;
    let provider = sdk_config
        .credentials_provider()
        .ok_or("the SDK config has no credentials provider")?;
    let sdk_credentials = provider.provide_credentials().await?;
    let credentials = Credentials::try_from(&sdk_credentials)?;

    let now = SystemTime::now();
    let mut validity = Validity::new(Duration::from_secs(600))?;
    if let Some(expiry) = sdk_credentials.expiry() {
        let left = expiry.duration_since(now).unwrap_or(Duration::ZERO);
        validity = validity
            .at_most(left)
            .ok_or("the credentials expire within a second")?;
    }

    let presigner = Presigner::new(Region::new(region)?, Addressing::aws())?;
    let request = PostRequest::new(
        BucketName::new("acme-uploads")?,
        ObjectKey::new("u/42/${filename}")?,
    )
    .condition(Condition::content_length_range(1, 10 << 20)?)
    .with_validity(validity);
    let post = presigner.presign(&credentials, &request, now)?;
    println!("{}", serde_json::to_string_pretty(&post)?);
    Ok(())
}
