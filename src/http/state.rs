//! What every handler shares: the application (the use cases' dependencies, the
//! tenants, the clock) behind one cheap handle, and the limits of a request body.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::Verifier;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::credentials::CredentialsCache;
use crate::handle::HandleKey;
use crate::limits::Limits;
use crate::store::ObjectStore;
use crate::store::s3::S3Store;
use crate::tenant::Tenant;
use crate::upload::Deps;
use s3_presigned_post::Presigner;

/// Largest request body, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Largest completion body: 10 000 parts of about 100 bytes each.
pub(super) const COMPLETE_BODY_BYTES: usize = 1024 * 1024;

/// Shared by all handlers: cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState(pub Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

/// What the handlers need.
pub struct App {
    /// Signs tickets.
    pub presigner: Arc<Presigner>,
    /// Verifies tokens.
    pub verifier: Arc<Verifier>,
    /// Tenants (rules and webhook) by id.
    pub tenants: HashMap<String, Arc<Tenant>>,
    /// AWS credentials.
    pub credentials: Arc<CredentialsCache>,
    /// The tenants' limits and quotas, and where they are counted.
    pub limits: Arc<Limits>,
    /// The object store, for what a ticket cannot do alone.
    pub store: Arc<dyn ObjectStore>,
    /// What handlers take as now.
    pub clock: Arc<dyn Clock>,
    /// Signs multipart handles.
    pub handles: Arc<HandleKey>,
    /// Delivers webhooks; only when a tenant has one.
    pub webhook_client: Option<reqwest::Client>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("tenants", &self.tenants.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl App {
    /// The state for `config`, signing with `credentials`: the limits backend, the store
    /// `[s3]` names (its client made on first use) and the system clock.
    pub fn new(config: &Config, credentials: Arc<CredentialsCache>) -> Self {
        let tenants = config.tenants.clone();
        let webhook_client = tenants
            .values()
            .any(|tenant| tenant.webhook.is_some())
            .then(|| {
                reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .inspect_err(|error| {
                        tracing::error!(%error, "no HTTP client for webhooks: deliveries will fail");
                    })
                    .ok()
            })
            .flatten();
        Self {
            presigner: Arc::clone(&config.presigner),
            verifier: Arc::clone(&config.verifier),
            store: Arc::new(S3Store::new(&config.s3, Arc::clone(&credentials))),
            clock: Arc::new(SystemClock),
            tenants,
            credentials,
            limits: Arc::clone(&config.limits),
            handles: Arc::clone(&config.handles),
            webhook_client,
        }
    }

    /// What the use cases of one request borrow.
    pub fn deps(&self) -> Deps<'_> {
        Deps {
            store: self.store.as_ref(),
            limits: &self.limits,
            handles: &self.handles,
            presigner: &self.presigner,
            credentials: &self.credentials,
            webhook_client: self.webhook_client.as_ref(),
        }
    }

    /// The same state with another store (tests: [`crate::store::memory::MemoryStore`]).
    pub fn with_store(self, store: Arc<dyn ObjectStore>) -> Self {
        Self { store, ..self }
    }

    /// The same state with another clock (tests: [`crate::clock::ManualClock`]).
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        Self { clock, ..self }
    }
}
