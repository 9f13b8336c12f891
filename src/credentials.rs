//! AWS credentials from the default chain of `aws-config`, cached.
//!
//! Environment variables, shared config and credentials files (profiles, SSO), web
//! identity, ECS and EC2 instance metadata, in the SDK's order. A background task keeps
//! the cache fresh well before temporary credentials expire, so a request never waits
//! for a provider: it reads the current credentials with one atomic load, or gets
//! `None` (the service answers 503) while none can be had. Both recover by themselves.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use aws_config::BehaviorVersion;
use aws_credential_types::provider::{ProvideCredentials as _, SharedCredentialsProvider};
use tokio::sync::Notify;

use s3_presigned_post::{Credentials, PresignError};

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
    /// A test or custom source failed.
    #[error("{0}")]
    Other(String),
}

/// Credentials and when they stop working.
#[derive(Debug, Clone)]
pub struct LoadedCredentials {
    /// The key to sign with.
    pub credentials: Credentials,
    /// When temporary credentials expire; `None` for long-term keys.
    pub expires_at: Option<SystemTime>,
}

/// A future of a credentials load.
pub type CredentialsFuture<'a> =
    Pin<Box<dyn Future<Output = Result<LoadedCredentials, CredentialsError>> + Send + 'a>>;

/// Where credentials come from: the AWS chain in production, fixed ones in dev and tests.
pub trait CredentialSource: Send + Sync + fmt::Debug {
    /// Loads credentials (may take a while: network providers).
    fn load(&self) -> CredentialsFuture<'_>;
}

/// The AWS default chain.
#[derive(Debug)]
pub struct DefaultChain {
    provider: Option<SharedCredentialsProvider>,
    region: Option<String>,
}

impl DefaultChain {
    /// Resolves the chain's configuration (no credentials are loaded yet).
    pub async fn new() -> Self {
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Self {
            provider: config.credentials_provider(),
            region: config.region().map(|r| r.as_ref().to_owned()),
        }
    }

    /// The region the chain configures (`AWS_REGION`, profile), if any.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }
}

impl CredentialSource for DefaultChain {
    fn load(&self) -> CredentialsFuture<'_> {
        Box::pin(async move {
            let provider = self.provider.as_ref().ok_or(CredentialsError::NoProvider)?;
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
            Ok(LoadedCredentials {
                credentials,
                expires_at: resolved.expiry(),
            })
        })
    }
}

/// Fixed credentials (development mode).
#[derive(Debug, Clone)]
pub struct StaticSource(pub Credentials);

impl CredentialSource for StaticSource {
    fn load(&self) -> CredentialsFuture<'_> {
        let loaded = LoadedCredentials {
            credentials: self.0.clone(),
            expires_at: None,
        };
        Box::pin(async move { Ok(loaded) })
    }
}

/// Credentials are refreshed this long before they expire.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(10 * 60);
/// Long-term credentials are re-read this often (a profile file may change).
const REFRESH_LONG_TERM: Duration = Duration::from_secs(15 * 60);
/// Longest wait between two attempts while loading fails.
const MAX_RETRY: Duration = Duration::from_secs(10);
/// Credentials closer than this to expiry are not used: a ticket must outlive its use.
const USABLE_MARGIN: Duration = Duration::from_secs(30);

/// The current credentials, refreshed in the background.
#[derive(Debug)]
pub struct CredentialsCache {
    current: ArcSwapOption<LoadedCredentials>,
    source: Arc<dyn CredentialSource>,
    wake: Notify,
}

impl CredentialsCache {
    /// An empty cache over `source`; call [`CredentialsCache::refresh`] or run the loop.
    pub fn new(source: Arc<dyn CredentialSource>) -> Self {
        Self {
            current: ArcSwapOption::empty(),
            source,
            wake: Notify::new(),
        }
    }

    /// The credentials to sign with now, or `None` if there are none or they are about
    /// to expire. Lock-free.
    pub fn current(&self, now: SystemTime) -> Option<Arc<LoadedCredentials>> {
        let loaded = self.current.load_full()?;
        match loaded.expires_at {
            Some(expiry) if now + USABLE_MARGIN >= expiry => {
                // Wake the refresher early: it may be sleeping through a backoff.
                self.wake.notify_one();
                None
            }
            _ => Some(loaded),
        }
    }

    /// Loads from the source now; on failure the cached credentials stay (until they expire).
    pub async fn refresh(&self) -> Result<(), CredentialsError> {
        let loaded = self.source.load().await;
        let result = if loaded.is_ok() { "ok" } else { "error" };
        metrics::counter!("upload_tickets_credential_refreshes_total", "result" => result)
            .increment(1);
        self.current.store(Some(Arc::new(loaded?)));
        Ok(())
    }

    /// Keeps the cache fresh forever (spawn it; it ends with the runtime).
    pub async fn run_refresh_loop(self: Arc<Self>) {
        let mut retry = Duration::from_millis(500);
        loop {
            let wait = match self.refresh().await {
                Ok(()) => {
                    retry = Duration::from_millis(500);
                    self.next_refresh_in(SystemTime::now())
                }
                Err(error) => {
                    tracing::warn!(error = %DisplayChain(&error), retry_in = ?retry, "loading AWS credentials failed");
                    let wait = retry;
                    retry = (retry * 2).min(MAX_RETRY);
                    wait
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.wake.notified() => {}
            }
        }
    }

    fn next_refresh_in(&self, now: SystemTime) -> Duration {
        let expires_at = self.current.load().as_ref().and_then(|c| c.expires_at);
        match expires_at {
            Some(expiry) => {
                let left = expiry.duration_since(now).unwrap_or_default();
                // Before the margin, or halfway for short-lived credentials.
                left.checked_sub(REFRESH_BEFORE_EXPIRY)
                    .unwrap_or(left / 2)
                    .max(Duration::from_secs(1))
            }
            None => REFRESH_LONG_TERM,
        }
    }
}

/// Shows an error with its causes, `a: b: c`.
#[derive(Debug)]
pub struct DisplayChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Debug)]
    struct Scripted(Mutex<Vec<Result<LoadedCredentials, String>>>);

    impl CredentialSource for Scripted {
        fn load(&self) -> CredentialsFuture<'_> {
            let next = self.0.lock().unwrap().remove(0);
            Box::pin(async move { next.map_err(CredentialsError::Other) })
        }
    }

    fn creds(expires_at: Option<SystemTime>) -> LoadedCredentials {
        LoadedCredentials {
            credentials: Credentials::new("AKID", "secret", None).unwrap(),
            expires_at,
        }
    }

    #[tokio::test]
    async fn the_cache_keeps_good_credentials_through_a_failed_refresh() {
        let now = SystemTime::now();
        let source = Scripted(Mutex::new(vec![
            Ok(creds(Some(now + Duration::from_secs(3600)))),
            Err("provider down".to_owned()),
        ]));
        let cache = CredentialsCache::new(Arc::new(source));
        assert!(cache.current(now).is_none());
        cache.refresh().await.unwrap();
        assert!(cache.current(now).is_some());
        assert!(cache.refresh().await.is_err());
        assert!(cache.current(now).is_some());
        // Expired (or nearly): not used.
        assert!(cache.current(now + Duration::from_secs(3590)).is_none());
    }

    #[tokio::test]
    async fn refreshes_are_scheduled_before_expiry() {
        let now = SystemTime::now();
        let source = Scripted(Mutex::new(vec![
            Ok(creds(Some(now + Duration::from_secs(3600)))),
            Ok(creds(Some(now + Duration::from_secs(120)))),
            Ok(creds(None)),
        ]));
        let cache = CredentialsCache::new(Arc::new(source));
        cache.refresh().await.unwrap();
        assert_eq!(cache.next_refresh_in(now), Duration::from_secs(3000));
        cache.refresh().await.unwrap();
        assert_eq!(cache.next_refresh_in(now), Duration::from_secs(60));
        cache.refresh().await.unwrap();
        assert_eq!(cache.next_refresh_in(now), REFRESH_LONG_TERM);
    }
}
