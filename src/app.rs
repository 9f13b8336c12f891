//! The application: what the use cases depend on (the store, the limits and records,
//! the signers, the credentials), the tenants and the clock, made once from the
//! configuration. The HTTP handlers borrow it per request; the background work (the
//! sweeper, the delivery of events) holds it too.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::Verifier;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::credentials::CredentialsCache;
use crate::handle::HandleKey;
use crate::limits::EventSettings;
use crate::limits::Limits;
use crate::store::ObjectStore;
use crate::store::s3::S3Store;
use crate::tenant::Tenant;
use crate::upload::Deps;
use s3_presigned_post::Presigner;

/// What the handlers and the background work need.
pub struct App {
    /// Signs tickets.
    pub presigner: Arc<Presigner>,
    /// Verifies tokens.
    pub verifier: Arc<Verifier>,
    /// Tenants (rules and webhook) by id.
    pub tenants: HashMap<String, Arc<Tenant>>,
    /// AWS credentials.
    pub credentials: Arc<CredentialsCache>,
    /// The tenants' limits and quotas, the upload records and pending events, and
    /// where they are kept.
    pub limits: Arc<Limits>,
    /// The object store, for what a ticket cannot do alone.
    pub store: Arc<dyn ObjectStore>,
    /// What handlers take as now.
    pub clock: Arc<dyn Clock>,
    /// Signs multipart handles.
    pub handles: Arc<HandleKey>,
    /// How uploads are found and events delivered.
    pub events: EventSettings,
    /// Wakes the delivery of events when one is queued.
    pub outbox: tokio::sync::Notify,
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
    /// The application for `config`, signing with `credentials`: the limits backend,
    /// the store `[s3]` names (its client made on first use) and the system clock.
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
                        tracing::error!(%error, "no HTTP client for webhooks: deliveries will wait");
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
            events: config.events.clone(),
            outbox: tokio::sync::Notify::new(),
            webhook_client,
        }
    }

    /// What the use cases borrow.
    pub fn deps(&self) -> Deps<'_> {
        Deps {
            store: self.store.as_ref(),
            limits: &self.limits,
            handles: &self.handles,
            presigner: &self.presigner,
            credentials: &self.credentials,
            events: &self.events,
            outbox: &self.outbox,
        }
    }

    /// The same application with another store (tests:
    /// [`crate::store::memory::MemoryStore`]).
    pub fn with_store(self, store: Arc<dyn ObjectStore>) -> Self {
        Self { store, ..self }
    }

    /// The same application with another clock (tests: [`crate::clock::ManualClock`]).
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        Self { clock, ..self }
    }
}
